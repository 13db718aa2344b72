#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes a deterministic tar of many small files (convert-bench.sh input 2).

Defaults: 200,000 regular files (~520 MB of tar) in 2,000 directories
(40 top-level directories of 50 each). File sizes come from a seeded
distribution: 95% log-uniform in 100 B..8 KiB, 4% below 100 B, 1% in
8..16 KiB. Contents are slices of a seeded random pool (incompressible, so
that a gzip of it would not be trivially small). Entries are grouped by
directory, as in a tar of a real tree; every run with the same arguments
writes the same bytes.
"""
import argparse
import io
import math
import os
import random
import tarfile

MTIME = 1700000000


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("--files", type=int, default=200000)
    ap.add_argument("--dirs", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=20240501)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    pool = rng.randbytes(8 << 20)
    top = max(1, int(math.sqrt(args.dirs / 1.25)))  # 40 for 2000
    per = max(1, args.dirs // top)
    dirs = [f"d{i:02d}/s{j:03d}" for i in range(top) for j in range(per)]

    lo, hi = math.log(100), math.log(8192)
    by_dir = [[] for _ in dirs]
    for n in range(args.files):
        r = rng.random()
        if r < 0.95:
            size = int(math.exp(rng.uniform(lo, hi)))
        elif r < 0.99:
            size = rng.randrange(0, 100)
        else:
            size = rng.randrange(8192, 16384)
        by_dir[rng.randrange(len(dirs))].append((n, size, rng.randrange(len(pool) - size)))

    def info(name, kind, size=0, mode=0o644):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.size = size
        ti.mode = mode
        ti.mtime = MTIME
        ti.uname = ti.gname = "root"
        return ti

    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        with tarfile.open(fileobj=f, mode="w", format=tarfile.GNU_FORMAT) as tf:
            done_top = set()
            for d, files in zip(dirs, by_dir):
                t = d.split("/")[0]
                if t not in done_top:
                    done_top.add(t)
                    tf.addfile(info(t + "/", tarfile.DIRTYPE, mode=0o755))
                tf.addfile(info(d + "/", tarfile.DIRTYPE, mode=0o755))
                for n, size, off in files:
                    tf.addfile(info(f"{d}/f{n:06d}", tarfile.REGTYPE, size),
                               io.BytesIO(pool[off:off + size]))
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
