#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Picks a small corpus from a libFuzzer merge control file.

libFuzzer's -merge=1 adds, smallest first, every input that brings one new
feature: after a run that gives hundreds of files. To keep the committed
corpora small (about 60 files, 1 MiB per target), this does a greedy set
cover instead: the seed-* and regress-* inputs are always kept, then the
input covering the most edges not yet covered is added (the smaller one on a
tie) until nothing new is covered or a limit is reached; leftover slots go to
inputs adding new features (edge hit-count buckets, comparisons).

    FUZZER -merge=1 -merge_control_file=MCF EMPTY_DIR CORPUS_DIRS...
    fuzz/select-corpus.py MCF --max-files 60 --max-bytes 1048576 > list

Prints the chosen paths, one per line, and a summary on stderr.
"""
import argparse
import os
import sys


def parse(path):
    with open(path) as f:
        lines = f.read().splitlines()
    n = int(lines[0])
    files = lines[2:2 + n]
    size, ft, cov = {}, {}, {}
    for line in lines[2 + n:]:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "STARTED":
            size[int(parts[1])] = int(parts[2])
        elif parts[0] == "FT":
            ft[int(parts[1])] = set(map(int, parts[2:]))
        elif parts[0] == "COV":
            cov[int(parts[1])] = set(map(int, parts[2:]))
    return files, size, ft, cov


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mcf")
    ap.add_argument("--max-files", type=int, default=60)
    ap.add_argument("--max-bytes", type=int, default=1 << 20)
    args = ap.parse_args()

    files, size, ft, cov = parse(args.mcf)
    done = [i for i in range(len(files)) if i in ft]  # inputs that ran to the end
    keep = [i for i in done
            if os.path.basename(files[i]).startswith(("seed-", "regress-"))]
    # regress-* inputs crash the unfixed library and may not have finished:
    # keep them whatever the control file says.
    keep += [i for i in range(len(files)) if i not in ft and
             os.path.basename(files[i]).startswith("regress-")]
    # The same seed may sit in several of the merged directories: once.
    seen, chosen = set(), []
    for i in keep:
        name = os.path.basename(files[i])
        if name not in seen:
            seen.add(name)
            chosen.append(i)
    keep_names = seen
    got_cov = set().union(*(cov.get(i, set()) for i in chosen))
    got_ft = set().union(*(ft.get(i, set()) for i in chosen))
    nbytes = sum(size.get(i, 0) for i in chosen)
    rest = [i for i in done if i not in set(chosen) and
            os.path.basename(files[i]) not in keep_names]

    for universe, got in (("cov", got_cov), ("ft", got_ft)):
        table = cov if universe == "cov" else ft
        while len(chosen) < args.max_files and rest:
            best = max(rest, key=lambda i: (len(table.get(i, set()) - got), -size.get(i, 0)))
            gain = len(table.get(best, set()) - got)
            if gain == 0 or nbytes + size.get(best, 0) > args.max_bytes:
                break
            chosen.append(best)
            rest.remove(best)
            nbytes += size.get(best, 0)
            got_cov |= cov.get(best, set())
            got_ft |= ft.get(best, set())

    all_cov = set().union(*cov.values()) if cov else set()
    all_ft = set().union(*ft.values()) if ft else set()
    print(f"select-corpus: {len(chosen)} of {len(files)} inputs, {nbytes} bytes, "
          f"{len(got_cov)}/{len(all_cov)} edges, {len(got_ft)}/{len(all_ft)} features",
          file=sys.stderr)
    for i in chosen:
        print(files[i])


if __name__ == "__main__":
    main()
