#!/usr/bin/python3
"""The tar writer judged by other tar implementations: a source tree with
every entry kind (devices, fifo, hard and symbolic links, long names and link
targets, big owners, mtimes outside the octal fields, binary xattrs, sparse
files) is written by tarw-driver as plain, gzip and zstd tars; then

  - GNU tar (--xattrs --xattrs-include='*') extracts the plain tar, without a
    word on stderr, to a tree equal to the source (mtimes cut to seconds, the
    way the writer documents it; xattrs included);
  - Python's tarfile extracts it to the same tree (it restores no xattrs and
    no symlink mtimes: those are compared against its pax_headers instead);
  - gzip -t and zstd -t accept the compressed forms, which decompress to the
    plain tar byte for byte, and the digests the driver prints are the sha256
    of the files (digest) and of the plain tar (diffID);
  - another read size gives the same bytes; --epoch clamps the mtimes.

    run-tar-writer.py --driver PATH --workdir DIR [--keep]

Prints `ok NAME` or `FAIL NAME: reason` per case, then a summary. Exit
status: 0 all passed, 1 some failed, 77 cannot run here (not root, a tool
missing). Python 3 standard library only.
"""

import argparse
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "golden"))

import treecmp  # noqa: E402

MIB = 1 << 20
MAX_DETAILS = 15


class CaseFailed(Exception):
    def __init__(self, reason, details=()):
        super().__init__(reason)
        self.reason = reason
        self.details = list(details)


def check(cond, reason, details=()):
    if not cond:
        raise CaseFailed(reason, details)


def rnd(seed, n):
    out = bytearray()
    h = hashlib.sha256(b"%d" % seed).digest()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h
    return bytes(out[:n])


# ---------------------------------------------------------------------------
# the source tree

CAP_V2 = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)  # cap_net_bind_service+ep
LONG_TARGET = "../" + "t" * 297
LONG_COMPONENT = "n" * 255


def build_tree(root):
    """Every kind of entry; returns notes on what could not be made."""
    notes = []
    os.makedirs(root)

    def p(rel):
        return os.path.join(root, rel)

    def write(rel, data, mode=0o644):
        with open(p(rel), "wb") as f:
            f.write(data)
        os.chmod(p(rel), mode)

    def xattr(rel, name, value, follow=True):
        try:
            os.setxattr(p(rel), name, value, follow_symlinks=follow)
        except OSError as e:
            notes.append("setxattr %s on %s: %s" % (name, rel, e))

    for d in ("a", "a/b", "dev", "run", "owners", "times", "names", "links"):
        os.makedirs(p(d))
    os.mkdir(p("private"), 0o700)
    os.mkdir(p("sticky"))
    os.chmod(p("sticky"), 0o1777)
    os.mkdir(p("setgid"))
    os.chmod(p("setgid"), 0o2755)

    write("a/zero", b"")
    write("a/one", b"1")
    for n in (511, 512, 513):
        write("a/b/%d" % n, rnd(n, n))
    text = b"".join(b"line %d of a text file\n" % i for i in range(100000))
    write("a/big", text[:MIB] + rnd(7, 2 * MIB) + text[:MIB // 2 + 3])
    with open(p("a/sparse"), "wb") as f:
        f.seek(3 * MIB)
        f.write(rnd(9, 70000))
        f.seek(9 * MIB)
        f.write(b"tail")
        f.truncate(10 * MIB + 5)
    write("a/setuid", b"#!/bin/sh\n", 0o4755)
    write("a/none", b"x", 0o000)
    write("a/all", b"x", 0o7777)

    os.symlink("b/512", p("a/link"))
    os.symlink(LONG_TARGET, p("a/longlink"))
    os.symlink("/etc/passwd", p("a/abslink"))
    os.link(p("a/one"), p("a/hard"))

    # paths: > 100 (splittable into ustar prefix/name), > 256 (pax), a
    # 255-byte component, non-ASCII and unusual bytes
    deep = "names/" + "/".join(["d" * 60] * 2)
    os.makedirs(p(deep))
    write(deep + "/f" * 1, b"deep")
    deeper = deep + "/" + "/".join(["e" * 90] * 3)
    os.makedirs(p(deeper))
    write(deeper + "/file-in-a-very-deep-directory", rnd(3, 3000))
    write("names/" + LONG_COMPONENT, b"long component")
    write("names/\u00fcn\u00efc\u00f6d\u00e9-\u540d\u524d", b"utf-8")
    write("names/with space", b"space")
    write("names/new\nline", b"newline")
    write(os.fsdecode(b"names/latin1-\xe9"), b"not utf-8")
    # a path in a pax record that is not UTF-8 (no hdrcharset is written)
    binlong = os.fsdecode(b"names/" + b"\xe9" * 150)
    os.makedirs(p(binlong))
    write(binlong + "/" + "x" * 150, b"binary pax path")
    # hard links across long paths, both ways
    os.link(p(deeper + "/file-in-a-very-deep-directory"), p("links/to-deep"))
    write("links/short", b"short target")
    os.link(p("links/short"), p(deeper + "/link-to-short"))

    os.mknod(p("dev/null"), 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(p("dev/sda1"), 0o660 | 0o060000, os.makedev(8, 1))
    os.mknod(p("dev/max"), 0o600 | 0o020000, os.makedev(4095, 1048575))
    os.chmod(p("dev/null"), 0o666)
    os.mkfifo(p("run/fifo"), 0o620)
    os.chmod(p("run/fifo"), 0o620)

    write("owners/big", b"o")
    os.chown(p("owners/big"), 3000000, 4000000)
    write("owners/max", b"o")
    os.chown(p("owners/max"), 4294967294, 2097152)
    write("owners/octal-max", b"o")
    os.chown(p("owners/octal-max"), 2097151, 2097151)
    os.symlink("big", p("owners/link"))
    os.chown(p("owners/link"), 70000, 70001, follow_symlinks=False)

    xattr("a/big", "user.bin", b"\x00\x01\n=\xff\x00")
    xattr("a/big", "user.empty", b"")
    xattr("a/big", "user.long", b"v" * 2000)  # ext4: all in one block
    xattr("a/setuid", "security.capability", CAP_V2)
    xattr("private", "trusted.overlay.opaque", b"y")
    xattr("a/longlink", "trusted.sym", b"on a symlink", follow=False)
    xattr("dev/null", "trusted.dev", b"\x00")
    xattr(deeper + "/file-in-a-very-deep-directory", "user.deep", b"1")

    # mtimes last (directories change as entries are added): nanoseconds,
    # the epoch, before it (pax), past the 11-digit octal field (pax)
    times = {
        "times": None,
        "a/one": (1700000000, 123456789),
        "a/zero": (0, 0),
        "a/b/511": (-86400 * 365, 0),
        "a/b/512": (10 ** 10, 999999999),
        "a/b/513": (8589934591, 0),
        "a/link": (1600000000, 5),
        "a/longlink": (1500000000, 0),
        "dev/null": (1234567890, 1),
    }
    for rel, t in times.items():
        if t:
            os.utime(p(rel), ns=(t[0] * 10 ** 9 + t[1],) * 2, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                os.utime(full, ns=(1690000000 * 10 ** 9 + 42,) * 2)
    return notes


# ---------------------------------------------------------------------------

class Ctx:
    def __init__(self, args):
        self.args = args
        self.driver = os.path.realpath(args.driver)
        self.work = os.path.realpath(args.workdir)
        self.src = os.path.join(self.work, "src")
        self.seq = 0
        self.outputs = {}

    def path(self, name):
        return os.path.join(self.work, name)

    def fresh(self, name):
        d = self.path(name)
        if os.path.lexists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        return d


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def drive(ctx, out, *opts):
    p = run([ctx.driver, *opts, "-o", out, ctx.src])
    check(p.returncode == 0, "tarw-driver %s failed (%d)" % (" ".join(opts), p.returncode),
          p.stderr.decode(errors="replace").splitlines())
    res = {}
    for line in p.stderr.decode().splitlines():
        k, _, v = line.partition("=")
        res[k] = v
    return res


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def expected_snapshot(ctx, epoch=None):
    snap = treecmp.snapshot_dir(ctx.src)
    del snap[""]  # the root is not an entry of a layer
    for rec in snap.values():
        sec = rec["mtime"][0]
        if epoch is not None and sec > epoch:
            sec = epoch
        rec["mtime"] = (sec, 0)
    return snap


def compare(expected, dest, label, skip_kinds=None, no_xattrs=False):
    actual = treecmp.snapshot_dir(dest)
    del actual[""]
    extra = {}
    for path, rec in expected.items():
        s = set()
        if skip_kinds and rec["kind"] in skip_kinds:
            s |= skip_kinds[rec["kind"]]
        if no_xattrs:
            s.add("xattrs")
        if s:
            extra[path] = s
    diffs = treecmp.compare(expected, actual, label, extra_skip=extra)
    check(not diffs, "%d differences with the source" % len(diffs), diffs)


def gnu_extract(ctx, tar, dest, extra=()):
    # the source has mtimes before 1970 and past 2242 on purpose
    p = run(["tar", "--xattrs", "--xattrs-include=*", "--numeric-owner",
             "--warning=no-timestamp", "-xpf", tar, "-C", dest, *extra])
    check(p.returncode == 0 and not p.stderr,
          "GNU tar -x: exit %d" % p.returncode, p.stderr.decode(errors="replace").splitlines())


def plain(ctx):
    out = ctx.path("plain.tar")
    if out not in ctx.outputs:
        ctx.outputs[out] = drive(ctx, out)
    return out, ctx.outputs[out]


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def gnu_tar_extracts_the_source_tree(ctx):
    tar, res = plain(ctx)
    check(res["diffid"] == sha256_file(tar), "diffid is not the sha256 of the tar",
          [res["diffid"], sha256_file(tar)])
    check(res["digest"] == res["diffid"], "plain tar: digest != diffid")
    check(int(res["size"]) == os.path.getsize(tar), "size is not the file size")
    p = run(["tar", "--xattrs", "-tvf", tar])
    check(p.returncode == 0 and not p.stderr, "GNU tar -t complains",
          p.stderr.decode(errors="replace").splitlines())
    dest = ctx.fresh("gnu")
    gnu_extract(ctx, tar, dest)
    compare(expected_snapshot(ctx), dest, "GNU tar")


@case
def python_tarfile_extracts_the_source_tree(ctx):
    tar, _ = plain(ctx)
    dest = ctx.fresh("python")
    with tarfile.open(tar, "r:") as tf:
        members = tf.getmembers()
        kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
        tf.extractall(dest, numeric_owner=True, **kw)
    # tarfile restores neither xattrs nor symlink times: compare those with
    # what it parsed
    compare(expected_snapshot(ctx), dest, "tarfile", skip_kinds={"sym": {"mtime"}},
            no_xattrs=True)
    src = treecmp.snapshot_dir(ctx.src)
    diffs = []
    for m in members:
        name = m.name.rstrip("/")
        want = src[name]["xattrs"]
        got = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
               for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
        if got != want:
            diffs.append("%s: xattrs %r, expected %r" % (treecmp.show(name), got, want))
        if src[name]["kind"] == "sym" and m.mtime != src[name]["mtime"][0]:
            diffs.append("%s: mtime %s, expected %s" % (treecmp.show(name), m.mtime,
                                                        src[name]["mtime"][0]))
        unknown = set(m.pax_headers) - {"path", "linkpath", "uid", "gid", "size", "mtime"} \
            - {k for k in m.pax_headers if k.startswith("SCHILY.xattr.")}
        if unknown:
            diffs.append("%s: pax keys %s" % (treecmp.show(name), sorted(unknown)))
    check(not diffs, "%d differences in tarfile's headers" % len(diffs), diffs)


@case
def compressed_forms(ctx):
    tar, pres = plain(ctx)
    with open(tar, "rb") as f:
        want = f.read()
    for flag, tool in (("--gzip", "gzip"), ("--zstd", "zstd")):
        for level in ([], ["--level", "3" if tool == "gzip" else "19"]):
            out = ctx.path("out" + flag + "".join(level) + "." + tool)
            res = drive(ctx, out, flag, *level)
            p = run([tool, "-t", out])
            check(p.returncode == 0, "%s -t rejects %s" % (tool, os.path.basename(out)),
                  p.stderr.decode(errors="replace").splitlines())
            p = run([tool, "-dc", out])
            check(p.returncode == 0 and p.stdout == want,
                  "%s -dc of %s is not the plain tar" % (tool, os.path.basename(out)))
            check(res["digest"] == sha256_file(out), "%s: digest is not the file's sha256" % out)
            check(res["diffid"] == pres["diffid"], "%s: diffid differs from the plain tar's" % out)
            check(int(res["size"]) == os.path.getsize(out), "%s: size" % out)
            check(int(res["uncompressed"]) == len(want), "%s: uncompressed size" % out)
            check(os.path.getsize(out) < len(want) // 2, "%s: hardly compressed" % out)
            # GNU tar through its own decompressor
            dest = ctx.fresh("x-" + tool)
            gnu_extract(ctx, out, dest, ["--" + tool])
            compare(expected_snapshot(ctx), dest, "GNU tar --" + tool)


@case
def same_bytes_with_other_read_sizes(ctx):
    for flag in ([], ["--gzip"], ["--zstd"]):
        outs = []
        for rs in ("1000", "4194304"):
            out = ctx.path("repro-%s%s" % (rs, "".join(flag)))
            drive(ctx, out, "--read-size", rs, *flag)
            with open(out, "rb") as f:
                outs.append(f.read())
        check(outs[0] == outs[1], "%s: read size changes the output" % (flag or "plain"))


@case
def epoch_clamps_mtimes(ctx):
    epoch = 1650000000
    out = ctx.path("epoch.tar")
    drive(ctx, out, "--epoch", str(epoch))
    dest = ctx.fresh("epoch")
    gnu_extract(ctx, out, dest)
    compare(expected_snapshot(ctx, epoch), dest, "GNU tar, --epoch")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: needs root (devices, owners, trusted.* xattrs)")
        return 77
    for tool in ("tar", "gzip", "zstd"):
        if not shutil.which(tool):
            print("SKIP: %s is missing" % tool)
            return 77
    ctx = Ctx(args)
    if os.path.exists(ctx.work):
        shutil.rmtree(ctx.work)
    os.makedirs(ctx.work)
    notes = build_tree(ctx.src)
    for n in notes:
        print("note: " + n)
    passed = failed = 0
    for fn in CASES:
        name = fn.__name__
        try:
            fn(ctx)
        except CaseFailed as e:
            failed += 1
            print("FAIL %s: %s" % (name, e.reason))
            for d in e.details[:MAX_DETAILS]:
                print("    " + d)
            if len(e.details) > MAX_DETAILS:
                print("    ... and %d more" % (len(e.details) - MAX_DETAILS))
        except Exception:
            failed += 1
            print("FAIL %s: exception" % name)
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print("ok %s" % name)
    print("%d passed, %d failed" % (passed, failed))
    if not args.keep and not failed:
        shutil.rmtree(ctx.work)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
