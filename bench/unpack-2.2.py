#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The unpack containerd 2.2 does with a snapshotter that declares the rebase
capability, driven by our own client (no 2.2 is packaged): every layer of an
image prepared without a parent and applied, --jobs at a time, each committed
onto the layer below as soon as it and the layers below are (Commit with
CommitSnapshotRequest.parent, which diff-probe sends); then a container's
snapshot on the top, as its first start makes it.

    unpack-2.2.py --ctr CTR --sock DAEMON_SOCK --probe DIFF_PROBE
                  --layers LAYERS_TXT [--jobs N] [--ns NAMESPACE] [--tag T]

LAYERS_TXT: "file digest size diffid media" per layer, oldest first (what
pull-bench.sh writes). The blobs must be in containerd's content store (the
daemon reads them there). Prints one JSON object: per-layer Apply seconds,
the whole unpack's seconds. Exit 1 on any failure, with the call's answer.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration"))
from mkimage import chain_ids  # noqa: E402 - the tests' ChainID, one definition


def run(args, timeout=600):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        sys.exit("unpack-2.2: %s failed: %s" % (" ".join(args[:4]), (r.stderr or r.stdout)[-400:]))
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ctr", required=True)
    ap.add_argument("--sock", required=True)
    ap.add_argument("--probe", required=True)
    ap.add_argument("--layers", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--ns", default="default")
    ap.add_argument("--tag", default="b")
    a = ap.parse_args()

    layers = [line.split() for line in open(a.layers) if line.strip()]
    chains = chain_ids([l[3] for l in layers])
    keys = ["%s/%d/extract-%s-%d %s" % (a.ns, i, a.tag, i, c) for i, c in enumerate(chains)]
    snctr = [a.ctr, "--address", a.sock, "snapshots", "--snapshotter", "spin-erofs"]
    applied = [None] * len(layers)
    done = threading.Condition()
    failures = []

    def apply_one(i):
        _, digest, size, diffid, media = layers[i]
        mounts = json.loads(run(snctr + ["prepare", "--mounts", keys[i]])) or []
        lines = "\n".join("%s\t%s\t%s" % (m["Type"], m["Source"], ",".join(m.get("Options") or []))
                          for m in mounts)
        t0 = time.monotonic()
        res = json.loads(run([a.probe, "apply", a.sock, a.ns, media, digest, size, lines]))
        t1 = time.monotonic()
        with done:
            if res.get("code") != 0 or res.get("digest") != diffid:
                failures.append("apply of layer %d: %s" % (i, res))
            applied[i] = t1 - t0
            done.notify_all()

    nxt = [0]
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(layers):
                return
            try:
                apply_one(i)
            except BaseException as e:  # noqa: BLE001 - reported below
                with done:
                    failures.append("layer %d: %s" % (i, e))
                    applied[i] = -1
                    done.notify_all()

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(max(1, a.jobs))]
    for t in threads:
        t.start()
    # commits in order, each as soon as its layer is applied
    for i in range(len(layers)):
        with done:
            while applied[i] is None:
                done.wait()
        if failures:
            break
        res = json.loads(run([a.probe, "commit", a.sock, a.ns, chains[i], keys[i],
                              chains[i - 1] if i else ""]))
        if res.get("code") != 0:
            failures.append("commit of layer %d onto its parent: %s" % (i, res))
            break
    for t in threads:
        t.join()
    if failures:
        sys.exit("unpack-2.2: " + "; ".join(failures))
    run(snctr + ["prepare", "%s/ctr/bench-ctr-%s" % (a.ns, a.tag), chains[-1]])
    t1 = time.monotonic()
    print(json.dumps({"seconds": t1 - t0, "apply": {layers[i][1]: applied[i] for i in range(len(layers))}}))


if __name__ == "__main__":
    main()
