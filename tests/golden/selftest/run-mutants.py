#!/usr/bin/python3
"""Checks that the golden suite catches bugs: runs run-golden.py --self-test
against the fake converter with one deliberate bug at a time
(GOLDEN_FAKE_BUG) and expects the named case to FAIL; also checks that
treecmp.compare reports every kind of difference.

    selftest/run-mutants.py --workdir DIR [--with-big]

Exit 0 when every mutant is caught.
"""

import argparse
import copy
import os
import subprocess
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.dirname(HERE)
sys.path.insert(0, GOLDEN)

import treecmp  # noqa: E402

# (bug, case that must fail)
MUTANTS = [
    ("ignore-whiteouts", "edge-whiteouts"),
    ("no-origin", "edge-whiteouts"),
    ("drop-nsec", "gnutar-pax"),
    ("drop-trusted", "gnutar-pax"),
    ("uid16", "py-gnu"),
    ("flip-4097", "gnutar-gnu"),
    ("break-hardlinks", "edge-hardlinks"),
    ("inodes-off", "edge-root"),
    ("no-warning", "edge-typeflags"),
    ("gzip-differs", "edge-dups"),
    ("ignore-trailing", "edge-trailing"),
    ("random-uuid", "reproducible"),
    ("epoch-ignored", "uuid-epoch"),
    ("ls-missing", "tools-ls-cat-check"),
    ("cat-short", "tools-ls-cat-check"),
    ("check-always-ok", "check-rejects-corrupt"),
    ("rc1", "bad-paths"),
    ("no-offset", "bad-hardlinks"),
    ("leave-temp", "bad-checksum"),
    ("accept-truncated-gzip", "bad-compressed"),
]
BIG = [("big-tail", "sparse-5g-pax")]


def compare_selfcheck():
    """Every field of a record, changed alone, must produce a difference."""
    base = {
        "": {"kind": "dir", "perm": 0o755, "uid": 0, "gid": 0, "size": None, "digest": None,
             "target": None, "rdev": None, "xattrs": {}, "mtime": (1, 0), "ino": 1,
             "nlink": None},
        "f": {"kind": "reg", "perm": 0o644, "uid": 1, "gid": 2, "size": 3,
              "digest": treecmp.digest_bytes(b"abc"), "target": None, "rdev": None,
              "xattrs": {"user.a": b"1"}, "mtime": (5, 6), "ino": 2, "nlink": 2},
        "g": {"kind": "reg", "perm": 0o644, "uid": 1, "gid": 2, "size": 3,
              "digest": treecmp.digest_bytes(b"abc"), "target": None, "rdev": None,
              "xattrs": {"user.a": b"1"}, "mtime": (5, 6), "ino": 2, "nlink": 2},
        "s": {"kind": "sym", "perm": 0o777, "uid": 0, "gid": 0, "size": 1, "digest": None,
              "target": "f", "rdev": None, "xattrs": {}, "mtime": (7, 8), "ino": 3, "nlink": 1},
        "c": {"kind": "chr", "perm": 0o600, "uid": 0, "gid": 0, "size": None, "digest": None,
              "target": None, "rdev": (1, 3), "xattrs": {}, "mtime": (9, 0), "ino": 4,
              "nlink": 1},
    }
    problems = []
    if treecmp.compare(base, copy.deepcopy(base), "x"):
        problems.append("identical snapshots compare unequal")
    muts = [
        ("f", "perm", 0o4644), ("f", "uid", 9), ("f", "gid", 9), ("f", "size", 4),
        ("f", "digest", treecmp.digest_bytes(b"abd")), ("f", "xattrs", {}),
        ("f", "xattrs", {"user.a": b"2"}), ("f", "xattrs", {"user.a": b"1", "user.b": b""}),
        ("f", "mtime", (5, 7)), ("f", "mtime", (4, 6)), ("f", "kind", "fifo"),
        ("s", "target", "g"), ("c", "rdev", (1, 4)), ("c", "rdev", (2, 3)),
        ("", "perm", 0o700), ("", "xattrs", {"trusted.overlay.origin": b""}),
        ("g", "ino", 5), ("f", "nlink", 1),
    ]
    for path, field, val in muts:
        act = copy.deepcopy(base)
        act[path][field] = val
        if not treecmp.compare(base, act, "x"):
            problems.append("change of %s.%s not reported" % (path or "/", field))
    act = copy.deepcopy(base)
    del act["c"]
    if not treecmp.compare(base, act, "x"):
        problems.append("missing path not reported")
    act = copy.deepcopy(base)
    act["new"] = copy.deepcopy(base["c"])
    act["new"]["ino"] = 99
    if not treecmp.compare(base, act, "x"):
        problems.append("unexpected path not reported")
    # optional xattr: absent ok, right value ok, wrong value reported
    exp = copy.deepcopy(base)
    exp[""]["optx"] = {"trusted.overlay.origin": b""}
    act = copy.deepcopy(base)
    if treecmp.compare(exp, act, "x"):
        problems.append("absent optional xattr reported")
    act[""]["xattrs"] = {"trusted.overlay.origin": b""}
    if treecmp.compare(exp, act, "x"):
        problems.append("present optional xattr reported")
    act[""]["xattrs"] = {"trusted.overlay.origin": b"x"}
    if not treecmp.compare(exp, act, "x"):
        problems.append("wrong optional xattr value not reported")
    # the content digest ignores how zeros are stored, nothing else
    d = treecmp.ContentDigest(3 << 20)
    d.feed(5, b"x")
    d.feed((2 << 20) + 7, b"\0y")
    whole = bytearray(3 << 20)
    whole[5] = ord("x")
    whole[(2 << 20) + 8] = ord("y")
    if d.hexdigest() != treecmp.digest_bytes(bytes(whole)):
        problems.append("ContentDigest depends on how zeros are fed")
    whole[-1] = 1
    if treecmp.digest_bytes(bytes(whole)) == d.hexdigest():
        problems.append("ContentDigest misses a change in the last byte")
    if treecmp.digest_bytes(b"") == treecmp.digest_bytes(b"\0"):
        problems.append("ContentDigest ignores the size")
    return problems


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--with-big", action="store_true", help="also the 5 GiB mutant (~25 s)")
    args = ap.parse_args()
    failures = compare_selfcheck()
    for p in failures:
        print("FAIL compare: %s" % p)
    if not failures:
        print("ok compare self-check")
    runner = os.path.join(GOLDEN, "run-golden.py")
    for bug, case in MUTANTS + (BIG if args.with_big else []):
        env = dict(os.environ, GOLDEN_FAKE_BUG=bug)
        p = subprocess.run([sys.executable, runner, "--self-test", "--workdir", args.workdir,
                            "--only", case], env=env, capture_output=True, text=True)
        lines = p.stdout.splitlines()
        caught = [l for l in lines if l.startswith("FAIL %s:" % case)]
        if p.returncode == 1 and caught:
            detail = next((l.strip() for l in lines[lines.index(caught[0]) + 1:][:1]), "")
            print("ok mutant %s caught by %s: %s %s" % (bug, case, caught[0][len(case) + 6:],
                                                        detail[:100]))
        else:
            failures.append(bug)
            print("FAIL mutant %s not caught by %s (exit %d)\n%s" % (bug, case, p.returncode,
                                                                    p.stdout[-2000:]))
    print("%d mutants, %d escaped" % (len(MUTANTS) + (len(BIG) if args.with_big else 0),
                                      len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
