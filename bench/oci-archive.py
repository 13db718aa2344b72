#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Wraps ready-made layer blobs into an OCI image archive for `ctr images import`.

    oci-archive.py -o IMAGE.tar --name REF LAYER.tar[.gz|.zst]...

Layers are given oldest first; the media type follows the file name
(.gz: tar+gzip, .zst: tar+zstd, else tar). The diffIDs are the sha256 of the
decompressed streams (gzip with Python's zlib, zstd with the zstd tool).
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import zlib

CHUNK = 1 << 20


def digests(path):
    blob = hashlib.sha256()
    diff = hashlib.sha256()
    size = 0
    if path.endswith(".zst"):
        p = subprocess.Popen(["zstd", "-q", "-d", "-c", path], stdout=subprocess.PIPE)
        while True:
            b = p.stdout.read(CHUNK)
            if not b:
                break
            diff.update(b)
        if p.wait() != 0:
            sys.exit("zstd -d %s failed" % path)
    with open(path, "rb") as f:
        z = zlib.decompressobj(31) if path.endswith(".gz") else None
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            blob.update(b)
            size += len(b)
            if z:
                diff.update(z.decompress(b))
            elif not path.endswith(".zst"):
                diff.update(b)
        if z:
            diff.update(z.flush())
    media = {".gz": "+gzip", ".zst": "+zstd"}.get(os.path.splitext(path)[1], "")
    return ("application/vnd.oci.image.layer.v1.tar" + media, "sha256:" + blob.hexdigest(), size,
            "sha256:" + diff.hexdigest())


def js(o):
    return json.dumps(o, sort_keys=True, separators=(",", ":")).encode()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("layers", nargs="+")
    a = ap.parse_args()

    layers = [(p,) + digests(p) for p in a.layers]
    config = js({"architecture": "amd64", "os": "linux",
                 "rootfs": {"type": "layers", "diff_ids": [l[4] for l in layers]},
                 "config": {"Cmd": ["/bin/sh"]}})
    cdig = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = js({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                              "digest": cdig, "size": len(config)},
                   "layers": [{"mediaType": l[1], "digest": l[2], "size": l[3]} for l in layers]})
    mdig = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = js({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "digest": mdig, "size": len(manifest),
                               "platform": {"architecture": "amd64", "os": "linux"},
                               "annotations": {"io.containerd.image.name": a.name,
                                               "org.opencontainers.image.ref.name":
                                                   a.name.rpartition(":")[2]}}]})
    tmp = a.output + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        def add_bytes(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            import io
            tar.addfile(ti, io.BytesIO(data))
        add_bytes("oci-layout", js({"imageLayoutVersion": "1.0.0"}))
        add_bytes("index.json", index)
        add_bytes("blobs/sha256/" + cdig[7:], config)
        add_bytes("blobs/sha256/" + mdig[7:], manifest)
        for p, _, d, _, _ in layers:
            tar.add(p, arcname="blobs/sha256/" + d[7:])
    os.rename(tmp, a.output)
    for p, media, d, size, diff in layers:
        print("%s %s %d %s %s" % (os.path.basename(p), d, size, diff, media))


if __name__ == "__main__":
    main()
