#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The demo's sample image, built offline and deterministically with
tests/integration/mkimage.py: an OCI image archive of three layers, with the
host's static busybox so that a guest can run something from it.

    sample-image.py IMAGE.tar        (then: ctr images import IMAGE.tar)

  layer 1 (base)    busybox and its applet links, /etc/os-release (version 1),
                    /etc/motd, /etc/obsolete, /var/cache/app/{old-1,old-2}
  layer 2 (update)  /etc/os-release replaced (version 2), /etc/obsolete whited
                    out, /var/cache/app made opaque with a new entry, /app/hello
  layer 3 (app)     /app/data (1 MiB), /var/cache/app/fresh, /etc/app.conf

Prints the image name and, per layer, its diffID, chainID and blob digest.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.dont_write_bytecode = True
import mkimage  # noqa: E402

NAME = "docker.io/library/spin-demo:latest"
BUSYBOX = "/bin/busybox"
APPLETS = ["sh", "cat", "ls", "echo", "rm", "mkdir", "test", "[", "head", "wc", "sort", "uname",
           "date", "md5sum", "sync", "true", "false", "stat", "printf", "df", "mount", "find"]


def os_release(version):
    return ('PRETTY_NAME="Spin demo %d (an EROFS image in a VM)"\nNAME="Spin demo"\n'
            'ID=spin-demo\nVERSION_ID=%d\n' % (version, version))


def spec():
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    base = [{"path": d, "type": "dir"} for d in ("bin", "etc", "proc", "sys", "dev", "tmp",
                                                 "root", "var/cache/app")]
    base += [{"path": "bin/busybox", "type": "file", "mode": 0o755, "data": busybox}]
    base += [{"path": "bin/" + a, "type": "symlink", "target": "busybox"} for a in APPLETS]
    base += [
        {"path": "etc/os-release", "type": "file", "data": os_release(1)},
        {"path": "etc/motd", "type": "file", "data": "Welcome! (from layer 1)\n"},
        {"path": "etc/obsolete", "type": "file", "data": "deleted by layer 2\n"},
        {"path": "var/cache/app/old-1", "type": "file", "data": "hidden by layer 2\n"},
        {"path": "var/cache/app/old-2", "type": "file", "data": "hidden by layer 2\n"},
    ]
    update = [
        {"path": "etc", "type": "dir"},
        {"path": "etc/os-release", "type": "file", "data": os_release(2)},
        {"path": "etc/obsolete", "type": "whiteout"},
        {"path": "var/cache/app", "type": "dir"},
        {"path": "var/cache/app", "type": "opaque"},
        {"path": "var/cache/app/from-layer-2", "type": "file", "data": "2\n"},
        {"path": "app", "type": "dir"},
        {"path": "app/hello", "type": "file", "mode": 0o755,
         "data": '#!/bin/sh\necho "hello from /app/hello, running on $(uname -s) $(uname -r)"\n'},
    ]
    app = [
        {"path": "app", "type": "dir"},
        {"path": "app/data", "type": "file", "data": {"random": 1 << 20, "seed": "demo"}},
        {"path": "etc", "type": "dir"},
        {"path": "etc/app.conf", "type": "file", "data": "greeting=hello\n"},
        {"path": "var/cache/app", "type": "dir"},
        {"path": "var/cache/app/fresh", "type": "file", "data": "3\n"},
    ]
    return {"name": NAME, "layers": [
        {"compression": "gzip", "entries": base},
        {"compression": "gzip", "entries": update},
        {"compression": "gzip", "entries": app},
    ]}


def main():
    if len(sys.argv) != 2:
        print("usage: sample-image.py IMAGE.tar", file=sys.stderr)
        return 2
    if not os.path.exists(BUSYBOX):
        print("sample-image: %s is missing (apt-get install busybox-static)" % BUSYBOX,
              file=sys.stderr)
        return 1
    info = mkimage.build(spec(), sys.argv[1])
    print("image %s, %d bytes" % (info["name"], info["size"]))
    for i, (d, c, l) in enumerate(zip(info["diff_ids"], info["chain_ids"], info["layers"]), 1):
        print("  layer %d: diffID %s…  chainID %s…  blob %d bytes"
              % (i, d[:19], c[:19], l["size"]))
    print("top chainID %s" % info["chain_ids"][-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
