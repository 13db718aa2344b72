#!/usr/bin/python3
"""Golden tests of `erofs-layer`: OCI layer tars -> EROFS images, judged by
fsck.erofs, by the kernel (loop mount) and by a Python model of the layer
(and GNU tar's own extraction where it applies).

    run-golden.py --erofs-layer PATH --workdir DIR [--only PATTERN]... [--keep]
    run-golden.py --self-test --workdir DIR     (harness check, see README.md)

Exit status: 0 all passed, 1 some failed, 77 cannot run here (not root, no
loop devices, no erofs in the kernel, a required tool missing).
"""

import argparse
import fnmatch
import hashlib
import os
import random
import re
import shutil
import signal
import struct
import sys
import time
import traceback
import uuid as uuidlib

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fixtures  # noqa: E402
import model as modellib  # noqa: E402
import tarraw  # noqa: E402
import treecmp  # noqa: E402
from sysutil import CmdError, Mounted, Mounts, loops_backed_by, mounts_under, run, tail, umount  # noqa: E402

SUBDIRS = ("fixtures", "src", "ref", "img", "mnt", "out", "tmp")
MAX_DETAILS = 12
SB = 1024
SB_MAGIC = 0xE0F5E1E2


class CaseFailed(Exception):
    def __init__(self, reason, details=()):
        super().__init__(reason)
        self.reason = reason
        self.details = list(details)


class CaseSkipped(Exception):
    pass


def fail(reason, details=()):
    raise CaseFailed(reason, details)


# ---------------------------------------------------------------------------

class Ctx:
    def __init__(self, args):
        self.args = args
        self.workdir = os.path.realpath(args.workdir)
        for d in SUBDIRS:
            setattr(self, d + "dir", os.path.join(self.workdir, d))
        self.fixdir = self.fixturesdir
        self.mounts = Mounts()
        if args.self_test:
            self.el = [sys.executable, os.path.join(HERE, "selftest", "fake-erofs-layer.py")]
        else:
            self.el = [os.path.realpath(args.erofs_layer)]
        self._models = {}
        self._refs = {}
        self._images = {}
        self._seq = 0
        self._t = time.time()

    def run(self, args, **kw):
        return run(args, **kw)

    def phase(self, label):
        """--verbose: print how long the step that just ended took."""
        now = time.time()
        if label and self.args.verbose:
            print("#   %-36s %6.2fs" % (label, now - self._t), flush=True)
        self._t = now

    def seq(self):
        self._seq += 1
        return self._seq

    # -- cached products ---------------------------------------------------
    def model(self, fx):
        if fx.name not in self._models:
            self._models[fx.name] = modellib.build(fx.path(self))
        return self._models[fx.name]

    def ref_snapshot(self, fx):
        """GNU tar's extraction of the fixture, as a snapshot."""
        if fx.name not in self._refs:
            d = os.path.join(self.refdir, fx.name)
            if os.path.exists(d):
                shutil.rmtree(d)
            os.makedirs(d)
            os.chmod(d, 0o755)
            os.chown(d, 0, 0)
            run(["tar", "-x", "--xattrs", "--xattrs-include=*", "--numeric-owner",
                 "--same-permissions", "-C", d, "-f", fx.path(self)], timeout=600)
            self._refs[fx.name] = treecmp.snapshot_dir(d)
            if not self.args.keep:
                shutil.rmtree(d)
        return self._refs[fx.name]

    def compressed(self, fx, comp):
        src = fx.path(self)
        dst = src + {"gzip": ".gz", "zstd": ".zst"}[comp]
        if not os.path.exists(dst):
            with open(src, "rb") as fin:
                cmd = ["gzip", "-n", "-c"] if comp == "gzip" else ["zstd", "-q", "-c"]
                p = run(cmd, stdin=fin)
            with open(dst + ".part", "wb") as f:
                f.write(p.stdout)
            os.rename(dst + ".part", dst)
        return dst

    def image(self, fx):
        """A converted image of the fixture, made once (for the tool cases)."""
        if fx.name not in self._images:
            img = os.path.join(self.imgdir, "shared-%s.erofs" % fx.name)
            convert_ok(self, fx.path(self), img)
            self._images[fx.name] = img
        return self._images[fx.name]

    def drop(self, *paths):
        if self.args.keep:
            return
        for p in paths:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


# ---------------------------------------------------------------------------
# running the converter

def sha256_file(path):
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
    return h.hexdigest(), n


def parse_fields(stdout):
    fields = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            fields[parts[0]] = parts[1].strip()
    return fields


def convert(ctx, src, out, extra=(), stdin_file=None, no_input_arg=False, timeout=600):
    """Run `erofs-layer convert`. src None with stdin_file: read from stdin
    ('-' unless no_input_arg)."""
    args = ctx.el + ["convert", "-o", out] + list(extra)
    if src is not None:
        args.append(src)
    elif not no_input_arg:
        args.append("-")
    if stdin_file is not None:
        with open(stdin_file, "rb") as f:
            return run(args, stdin=f, check=False, timeout=timeout)
    return run(args, check=False, timeout=timeout, stdin=open(os.devnull, "rb"))


def describe_rc(p):
    if p.returncode < 0:
        return "killed by signal %d" % -p.returncode
    return "exit %d" % p.returncode


def convert_ok(ctx, src, out, extra=(), stdin_file=None, no_input_arg=False,
               raw_path=None, timeout=600):
    """Convert and check the exit status and the stdout fields; returns
    (fields, stderr). raw_path: the uncompressed tar, for diffid/tar_bytes."""
    t0 = time.time()
    outdir = os.path.dirname(os.path.abspath(out))
    before = set(os.listdir(outdir))
    p = convert(ctx, src, out, extra, stdin_file, no_input_arg, timeout)
    left = set(os.listdir(outdir)) - before - {os.path.basename(out)}
    if left:
        fail("convert left files in OUT's directory: %s" % ", ".join(sorted(left)))
    if p.returncode != 0:
        fail("convert %s: %s: %s" % (os.path.basename(src or stdin_file), describe_rc(p),
                                     tail(p.stderr)))
    if not os.path.exists(out):
        fail("convert exited 0 but wrote no %s" % out)
    fields = parse_fields(p.stdout)
    problems = []
    for key in ("diffid", "tar_bytes", "entries", "inodes", "image_bytes"):
        if key not in fields:
            problems.append("stdout lacks a '%s' line (stdout: %s)" % (key, tail(p.stdout, 300)))
    for key in ("tar_bytes", "entries", "inodes", "image_bytes"):
        if key in fields and not re.fullmatch(r"\d+", fields[key]):
            problems.append("stdout '%s %s' is not a number" % (key, fields[key]))
    raw = raw_path or src
    if raw is not None and "diffid" in fields:
        digest, n = sha256_file(raw)
        if fields["diffid"] != "sha256:" + digest:
            problems.append("diffid %s, expected sha256:%s" % (fields["diffid"], digest))
        if fields.get("tar_bytes") != str(n):
            problems.append("tar_bytes %s, expected %d" % (fields.get("tar_bytes"), n))
    size = os.path.getsize(out)
    if fields.get("image_bytes") != str(size):
        problems.append("image_bytes %s, but %s has %d bytes" % (fields.get("image_bytes"),
                                                                 os.path.basename(out), size))
    if problems:
        fail("convert output", problems)
    fields["_stderr"] = p.stderr
    fields["_seconds"] = time.time() - t0
    return fields


def first_difference(a, b):
    """Offset of the first differing byte of two files, or None if equal."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while True:
            x = fa.read(1 << 20)
            y = fb.read(1 << 20)
            if x != y:
                n = min(len(x), len(y))
                for i in range(n):
                    if x[i] != y[i]:
                        return off + i
                return off + n
            if not x:
                return None
            off += len(x)


def fsck(ctx, img):
    p = run(["fsck.erofs", img], check=False, timeout=600)
    if p.returncode != 0:
        return ["fsck.erofs %s: %s: %s" % (os.path.basename(img), describe_rc(p),
                                            tail(p.stdout + p.stderr))]
    return []


def el_check(ctx, img):
    p = run(ctx.el + ["check", img], check=False, timeout=600)
    if p.returncode != 0:
        return ["erofs-layer check %s: %s: %s" % (os.path.basename(img), describe_rc(p),
                                                   tail(p.stdout + p.stderr))]
    return []


def mounted_snapshot(ctx, img, name):
    mp = os.path.join(ctx.mntdir, "%s-%d" % (name, ctx.seq()))
    try:
        with Mounted(ctx.mounts, img, mp) as root:
            return treecmp.snapshot_dir(root)
    except CmdError as e:
        fail("mount failed: %s" % e)


def compare_to_expectations(ctx, fx, actual):
    m = ctx.model(fx)
    exp = m.snapshot()
    diffs = treecmp.compare(exp, actual, "model")
    if fx.tar_ref:
        skip = {p: {"mtime"} for p in m.implicit_paths()}
        optx = {p: r["optx"] for p, r in exp.items() if r.get("optx")}
        diffs += treecmp.compare(ctx.ref_snapshot(fx), actual, "tar -x", extra_skip=skip,
                                 extra_optx=optx)
    return diffs


def read_sb(img):
    with open(img, "rb") as f:
        f.seek(SB)
        sb = f.read(128)
    if len(sb) < 128:
        fail("%s: no superblock" % img)
    magic, = struct.unpack_from("<I", sb, 0)
    epoch, = struct.unpack_from("<Q", sb, 24)
    return {"magic": magic, "epoch": epoch, "uuid": sb[48:64]}


# ---------------------------------------------------------------------------
# cases

CASES = []


def case(name, desc=""):
    def deco(fn):
        CASES.append((name, fn, desc))
        return fn
    return deco


def fixture_case(fx):
    def fn(ctx):
        tar = fx.path(ctx)
        try:
            mdl = ctx.model(fx)
        except modellib.ModelError as e:
            fail("fixture %s cannot be modelled: %s" % (fx.name, e))
        img = os.path.join(ctx.imgdir, fx.name + ".erofs")
        try:
            check_fixture(ctx, fx, mdl, img)
        finally:
            ctx.drop(img)   # big images go at once, pass or fail (--keep keeps them)
    return fn


def check_fixture(ctx, fx, mdl, img):
    """Convert (plain and compressed), fsck, check, mount, compare."""
    tar = fx.path(ctx)
    ctx.phase(None)
    fields = convert_ok(ctx, tar, img, timeout=900 if fx.big else 300)
    ctx.phase("convert")
    details = []
    if fx.warn and not fields["_stderr"].strip():
        details.append("no warning on stderr, but the tar holds entries of unknown "
                       "typeflags %s that must be skipped with a warning"
                       % ", ".join(repr(t) for _, t in mdl.skipped))
    for comp in fx.compress:
        cimg = os.path.join(ctx.imgdir, "%s.%s.erofs" % (fx.name, comp))
        cf = convert_ok(ctx, ctx.compressed(fx, comp), cimg, raw_path=tar)
        diff = first_difference(img, cimg)
        if diff is not None:
            details.append("image from %s input differs from the plain one at byte %d"
                           % (comp, diff))
        if cf["diffid"] != fields["diffid"]:
            details.append("diffid from %s input %s != plain %s" % (comp, cf["diffid"],
                                                                   fields["diffid"]))
        ctx.drop(cimg)
    ctx.phase("compressed inputs")
    details += fsck(ctx, img)
    ctx.phase("fsck.erofs")
    details += el_check(ctx, img)
    ctx.phase("erofs-layer check")
    actual = mounted_snapshot(ctx, img, fx.name)
    ctx.phase("mount and walk")
    details += compare_to_expectations(ctx, fx, actual)
    ctx.phase("model, tar -x reference, compare")
    n = treecmp.distinct_inodes(actual)
    if fields["inodes"] != str(n):
        details.append("stdout says inodes %s, the mounted tree has %d" % (fields["inodes"], n))
    if details:
        fail("%d problem(s)" % len(details), details)


for _fx in fixtures.FIXTURES:
    case(_fx.name, _fx.desc)(fixture_case(_fx))


@case("trailing-data-image", "data after the end marker: same tree, same image but the UUID")
def _trailing(ctx):
    fx = fixtures.BY_NAME["edge-trailing"]
    base = os.path.join(ctx.tmpdir, "trailing-base.tar")
    with open(base, "wb") as f:
        f.write(fixtures.edge_trailing_base())
    a = os.path.join(ctx.imgdir, "trailing-with.erofs")
    b = os.path.join(ctx.imgdir, "trailing-without.erofs")
    fa = convert_ok(ctx, fx.path(ctx), a)
    fb = convert_ok(ctx, base, b)
    details = []
    if fa["diffid"] == fb["diffid"]:
        details.append("trailing data did not change the diffid")
    da, db = bytearray(open(a, "rb").read()), bytearray(open(b, "rb").read())
    # the UUID may derive from the diffid; its bytes and the superblock
    # checksum (which covers them) are the only ones allowed to differ
    for buf in (da, db):
        if len(buf) >= SB + 128:
            buf[SB + 4:SB + 8] = bytes(4)
            buf[SB + 48:SB + 64] = bytes(16)
    if da != db:
        n = next((i for i in range(min(len(da), len(db))) if da[i] != db[i]), min(len(da), len(db)))
        details.append("images differ at byte %d (outside the superblock uuid and checksum)" % n)
    sa = mounted_snapshot(ctx, a, "trailing-with")
    sb_ = mounted_snapshot(ctx, b, "trailing-without")
    details += treecmp.compare(sb_, sa, "without vs with trailing data")
    if details:
        fail("%d problem(s)" % len(details), details)
    ctx.drop(a, b)


@case("convert-stdin", "input from stdin ('-' and no argument), plain and gzip")
def _stdin(ctx):
    fx = fixtures.BY_NAME["edge-dups"]
    tar = fx.path(ctx)
    ref = os.path.join(ctx.imgdir, "stdin-ref.erofs")
    convert_ok(ctx, tar, ref)
    details = []
    for label, src, no_arg in (("stdin '-'", tar, False), ("stdin, no INPUT", tar, True),
                               ("gzip on stdin", ctx.compressed(fx, "gzip"), False),
                               ("zstd on stdin", ctx.compressed(fx, "zstd"), False)):
        out = os.path.join(ctx.imgdir, "stdin-%d.erofs" % ctx.seq())
        convert_ok(ctx, None, out, stdin_file=src, no_input_arg=no_arg, raw_path=tar)
        d = first_difference(ref, out)
        if d is not None:
            details.append("%s: image differs from the file-input one at byte %d" % (label, d))
        ctx.drop(out)
    if details:
        fail("%d problem(s)" % len(details), details)
    ctx.drop(ref)


@case("reproducible", "same input twice, and different inputs get different UUIDs")
def _repro(ctx):
    details = []
    uuids = {}
    for name in ("gnutar-pax", "py-pax", "edge-whiteouts", "sparse-pax-1.0"):
        fx = fixtures.BY_NAME[name]
        a = os.path.join(ctx.imgdir, "repro-%s-1.erofs" % name)
        b = os.path.join(ctx.imgdir, "repro-%s-2.erofs" % name)
        convert_ok(ctx, fx.path(ctx), a)
        time.sleep(1.05)   # a build time taken from the clock would show
        convert_ok(ctx, fx.path(ctx), b)
        d = first_difference(a, b)
        if d is not None:
            details.append("%s: two conversions differ at byte %d" % (name, d))
        sb = read_sb(a)
        if sb["magic"] != SB_MAGIC:
            details.append("%s: bad superblock magic %#x" % (name, sb["magic"]))
        uuids[name] = sb["uuid"]
        ctx.drop(a, b)
    if len(set(uuids.values())) != len(uuids):
        details.append("different inputs share a UUID: %s" % ", ".join(
            "%s=%s" % (k, v.hex()) for k, v in uuids.items()))
    if any(u == bytes(16) for u in uuids.values()):
        details.append("a default UUID is all zeros")
    if details:
        fail("%d problem(s)" % len(details), details)


@case("uuid-epoch", "--uuid and --epoch change the image, deterministically")
def _uuid_epoch(ctx):
    fx = fixtures.BY_NAME["edge-order"]
    tar = fx.path(ctx)
    details = []
    imgs = {}
    variants = {
        "default": [],
        "uuid1": ["--uuid", "01234567-89ab-cdef-0123-456789abcdef"],
        "uuid1b": ["--uuid", "01234567-89ab-cdef-0123-456789abcdef"],
        "uuid2": ["--uuid", "fedcba98-7654-3210-fedc-ba9876543210"],
        "epoch1": ["--epoch", "1700000000"],
        "epoch1b": ["--epoch", "1700000000"],
        "epoch2": ["--epoch", "1600000000"],
    }
    for name, extra in variants.items():
        out = os.path.join(ctx.imgdir, "ue-%s.erofs" % name)
        convert_ok(ctx, tar, out, extra=extra)
        imgs[name] = out

    def same(x, y):
        return first_difference(imgs[x], imgs[y]) is None

    for x, y in (("uuid1", "uuid1b"), ("epoch1", "epoch1b")):
        if not same(x, y):
            details.append("%s and %s (same options) differ" % (x, y))
    for x, y in (("default", "uuid1"), ("uuid1", "uuid2"), ("epoch1", "epoch2")):
        if same(x, y):
            details.append("%s and %s are identical" % (x, y))
    for name, u in (("uuid1", "01234567-89ab-cdef-0123-456789abcdef"),
                    ("uuid2", "fedcba98-7654-3210-fedc-ba9876543210")):
        got = read_sb(imgs[name])["uuid"]
        if got != uuidlib.UUID(u).bytes:
            details.append("%s: superblock uuid %s, expected %s" % (name, got.hex(), u))
    for name, e in (("epoch1", 1700000000), ("epoch2", 1600000000)):
        got = read_sb(imgs[name])["epoch"]
        if got != e:
            details.append("%s: superblock epoch %d, expected %d" % (name, got, e))
    # the options must not change the tree (tar mtimes survive any epoch)
    for name in ("uuid2", "epoch1", "epoch2"):
        details += fsck(ctx, imgs[name])
        actual = mounted_snapshot(ctx, imgs[name], "ue-" + name)
        details += ["%s: %s" % (name, d) for d in compare_to_expectations(ctx, fx, actual)]
    if details:
        fail("%d problem(s)" % len(details), details)
    ctx.drop(*imgs.values())


def _ls_names(out, long):
    names = []
    for line in out.decode("utf-8", "surrogateescape").splitlines():
        line = line.rstrip()
        if not line.strip() or (long and re.match(r"total\s+\d+$", line)):
            continue
        if long:
            if " -> " in line:
                line = line.split(" -> ", 1)[0]
            line = line.split()[-1]
        name = os.path.basename(line.strip().rstrip("/")) or line.strip()
        if name not in (".", ".."):
            names.append(name)
    return names


@case("tools-ls-cat-check", "erofs-layer ls, cat and check agree with the kernel mount")
def _tools(ctx):
    details = []
    fx = fixtures.BY_NAME["gnutar-pax"]
    sfx = fixtures.BY_NAME["sparse-pax-1.0"]
    img = ctx.image(fx)
    simg = ctx.image(sfx)
    mp = os.path.join(ctx.mntdir, "tools-%d" % ctx.seq())
    smp = os.path.join(ctx.mntdir, "tools-%d" % ctx.seq())
    details += el_check(ctx, img)
    with Mounted(ctx.mounts, img, mp) as root, Mounted(ctx.mounts, simg, smp) as sroot:
        for long, path in ((False, None), (False, "/"), (False, "sizes"), (True, "/links"),
                           (True, "hard"), (True, "dev"), (False, "a/b/c/d/e")):
            args = ctx.el + ["ls"] + (["-l"] if long else []) + [img] + ([path] if path else [])
            p = run(args, check=False, timeout=120)
            label = "ls%s %s" % (" -l" if long else "", path or "(root)")
            if p.returncode != 0:
                details.append("%s: %s: %s" % (label, describe_rc(p), tail(p.stderr)))
                continue
            want = sorted(os.listdir(os.path.join(root, (path or "").lstrip("/"))))
            got = sorted(_ls_names(p.stdout, long))
            if got != want:
                details.append("%s lists %s, expected %s" % (label, got[:20], want[:20]))
        zname = next(n for n in os.listdir(os.path.join(root, "long")) if n.startswith("zz"))
        for image, base, rel in [(img, root, r) for r in (
                "sizes/0", "sizes/1", "sizes/4097", "sizes/1048583", "/hard/two",
                "a/b/three", "/a/b/c/d/e/deep.txt", "long/" + zname,
                "long/" + "x" * 200 + "/" + "y" * 200 + "/f", "xattr/cap", "modes/0000",
                "times/y2400")] + [(simg, sroot, "holes"), (simg, sroot, "/tail")]:
            p = run(ctx.el + ["cat", image, rel], check=False, timeout=120)
            with open(os.path.join(base, rel.lstrip("/")), "rb") as f:
                want = f.read()
            short = rel if len(rel) < 60 else rel[:57] + "..."
            if p.returncode != 0:
                details.append("cat %s: %s: %s" % (short, describe_rc(p), tail(p.stderr)))
            elif p.stdout != want:
                details.append("cat %s: %d bytes differ from the mount's %d" % (
                    short, len(p.stdout), len(want)))
        for rel in ("no/such/file", "sizes/missing"):
            p = run(ctx.el + ["cat", img, rel], check=False, timeout=60)
            if p.returncode <= 0:
                details.append("cat %s (missing): %s, expected a failure exit" % (rel, describe_rc(p)))
        p = run(ctx.el + ["ls", img, "no/such/dir"], check=False, timeout=60)
        if p.returncode <= 0:
            details.append("ls no/such/dir: %s, expected a failure exit" % describe_rc(p))
    if details:
        fail("%d problem(s)" % len(details), details)


@case("check-rejects-corrupt", "erofs-layer check fails (cleanly) on broken images")
def _check_corrupt(ctx):
    img = ctx.image(fixtures.BY_NAME["gnutar-pax"])
    data = open(img, "rb").read()
    details = []
    bad = {
        "bad-magic": data[:SB] + b"\0\0\0\0" + data[SB + 4:],
        "truncated-to-4096": data[:4096],
        "truncated-to-1100": data[:1100],
        "empty": b"",
    }
    for name, content in bad.items():
        p_ = os.path.join(ctx.tmpdir, "corrupt-%s.erofs" % name)
        with open(p_, "wb") as f:
            f.write(content)
        p = run(ctx.el + ["check", p_], check=False, timeout=120)
        if p.returncode <= 0:
            details.append("check %s: %s, expected a failure exit" % (name, describe_rc(p)))
        ctx.drop(p_)
    if details:
        fail("%d problem(s)" % len(details), details)


# -- bad inputs ----------------------------------------------------------------

BYTE_RE = re.compile(rb"byte\D{0,24}?(\d+)")


def expect_reject(ctx, label, data, *, lo=0, hi=None, stdin=False):
    """Feed bad input; return the problems found (empty list = correct
    rejection). The reported offset must lie in [lo, hi]."""
    n = ctx.seq()
    inp = os.path.join(ctx.tmpdir, "bad-%d.in" % n)
    with open(inp, "wb") as f:
        f.write(data)
    outdir = os.path.join(ctx.outdir, "bad-%d" % n)
    os.makedirs(outdir)
    out = os.path.join(outdir, "out.erofs")
    if stdin:
        p = convert(ctx, None, out, stdin_file=inp, timeout=120)
    else:
        p = convert(ctx, inp, out, timeout=120)
    problems = []
    if p.returncode == 0:
        problems.append("accepted (exit 0)")
    elif p.returncode != 3:
        problems.append("%s, expected exit 3 (malformed input)" % describe_rc(p))
    if p.returncode != 0:
        m = BYTE_RE.search(p.stderr)
        if not m:
            problems.append("stderr names no byte offset: %r" % tail(p.stderr, 200))
        else:
            off = int(m.group(1))
            if off < lo or (hi is not None and off > hi):
                problems.append("reported byte %d, expected within [%d, %s] (stderr: %s)"
                                % (off, lo, hi, tail(p.stderr, 200)))
    left = os.listdir(outdir)
    if left:
        problems.append("left behind in OUT's directory: %s" % ", ".join(sorted(left)))
    if not problems:
        ctx.drop(inp)
        shutil.rmtree(outdir, ignore_errors=True)
    return ["%s: %s" % (label, x) for x in problems]


def _truncation_offsets(tar):
    items = list(tarraw.walk(tar))
    end = items[-1][1]
    hdrs = items[:-1]
    cand = set()
    # a spread of entries: the first ones, pax headers, data-carrying ones, the last
    picks = hdrs[:3] + [h for h in hdrs if h[1] == b"x"][3:6] + \
        sorted((h for h in hdrs if h[2] > 0 and h[1] == b"0"), key=lambda h: -h[2])[:3] + hdrs[-2:]
    for off, tf, size, dstart, nxt in picks:
        cand |= {off + 1, off + 148, off + 511, dstart, nxt}
        if size > 1 and tf not in (b"1", b"2", b"3", b"4", b"5", b"6"):
            cand |= {dstart + size // 2, dstart + size - 1}
    cand |= {end, end + 1, end + 511}   # no end marker / inside its first block
    cand = sorted(c for c in cand if 0 < c < end + 512)
    r = random.Random(1234)
    must = {end, end + 1, end + 511, picks[0][0] + 1, picks[0][3]}
    rest = [c for c in cand if c not in must]
    chosen = sorted(must | set(r.sample(rest, min(len(rest), 30 - len(must)))))
    return chosen


@case("bad-truncated", "a real tar cut at ~30 offsets, plain and via stdin")
def _bad_trunc(ctx):
    tar = open(fixtures.BY_NAME["gnutar-pax"].path(ctx), "rb").read()
    problems = []
    offs = _truncation_offsets(tar)
    bad = 0
    for i, t in enumerate(offs):
        pr = expect_reject(ctx, "cut at %d%s" % (t, " (stdin)" if i % 5 == 4 else ""), tar[:t],
                           hi=t, stdin=(i % 5 == 4))
        bad += bool(pr)
        problems += pr
    if problems:
        fail("%d of %d truncations mishandled" % (bad, len(offs)), problems)


def _entry_headers(tar):
    """(entry_start, header_offset) of each real entry (after its pax/GNU headers)."""
    out = []
    start = None
    for it in tarraw.walk(tar):
        if it[0] == "END":
            break
        off, tf = it[0], it[1]
        if start is None:
            start = off
        if tf in (b"x", b"g", b"L", b"K"):
            continue
        out.append((start, off, tf))
        start = None
    return out


@case("bad-checksum", "corrupted header checksums")
def _bad_cksum(ctx):
    problems = []
    for fxname in ("gnutar-pax", "gnutar-gnu"):
        tar = open(fixtures.BY_NAME[fxname].path(ctx), "rb").read()
        ents = [e for e in _entry_headers(tar) if e[2] == b"0"]
        start, h, _ = ents[len(ents) // 2]
        b = bytearray(tar)
        b[h + 104] ^= 1                       # a mode digit changes, checksum doesn't
        problems += expect_reject(ctx, "%s mode byte flipped at %d" % (fxname, h), bytes(b),
                                  lo=start, hi=h + 511)
        b = bytearray(tar)
        b[h + 148:h + 156] = b"zzzzzz\0 "     # not octal at all
        problems += expect_reject(ctx, "%s checksum not octal at %d" % (fxname, h), bytes(b),
                                  lo=start, hi=h + 511)
        b = bytearray(tar)
        b[h + 148:h + 156] = b"000000\0 "     # plausible but wrong
        problems += expect_reject(ctx, "%s checksum zero at %d" % (fxname, h), bytes(b),
                                  lo=start, hi=h + 511)
    first = bytearray(open(fixtures.BY_NAME["edge-root"].path(ctx), "rb").read())
    first[0] ^= 0x20
    problems += expect_reject(ctx, "first header", bytes(first), lo=0, hi=511)
    if problems:
        fail("%d problem(s)" % len(problems), problems)


@case("bad-size", "absurd sizes: octal 77777777777 with no data, base-256 huge and negative")
def _bad_size(ctx):
    ok = tarraw.entry("ok", b"fine\n")
    problems = []
    h = tarraw.header("big", raw={"size": b"77777777777\0"})
    problems += expect_reject(ctx, "octal 77777777777", ok + h + tarraw.END, lo=0,
                              hi=len(ok) + len(h) + 1024)
    h = tarraw.header("huge", size=1 << 94, b256=("size",))
    problems += expect_reject(ctx, "base-256 2^94", ok + h + tarraw.END, lo=0,
                              hi=len(ok) + len(h) + 1024)
    h = tarraw.header("neg", size=-512, b256=("size",))
    problems += expect_reject(ctx, "base-256 negative", ok + h + tarraw.END, lo=0,
                              hi=len(ok) + len(h) + 1024)
    h = tarraw.header("bigpax")
    data = ok + tarraw.pax([("size", "99999999999999999999")]) + h + tarraw.END
    problems += expect_reject(ctx, "pax size 10^20", data, lo=0, hi=len(data))
    if problems:
        fail("%d problem(s)" % len(problems), problems)


@case("bad-paths", "'..' escaping the root, in names, pax paths and link targets")
def _bad_paths(ctx):
    ok = tarraw.entry("d/", typeflag=b"5") + tarraw.entry("d/f", b"f\n")
    problems = []
    for name in ("../evil", "d/../../evil", "/../evil", "./d/./../../evil"):
        e = tarraw.entry(name, b"evil\n")
        problems += expect_reject(ctx, repr(name), ok + e + tarraw.END, lo=len(ok),
                                  hi=len(ok) + 511)
    px = tarraw.pax([("path", "d/../../pax-evil")])
    e = tarraw.entry("harmless", b"x")
    problems += expect_reject(ctx, "pax path d/../../pax-evil", ok + px + e + tarraw.END,
                              lo=len(ok), hi=len(ok) + len(px) + 511)
    e = tarraw.entry("d/link", typeflag=b"1", linkname="../../d/f")
    problems += expect_reject(ctx, "hard link to ../../d/f", ok + e + tarraw.END, lo=len(ok),
                              hi=len(ok) + 511)
    if problems:
        fail("%d problem(s)" % len(problems), problems)


@case("bad-hardlinks", "hard links to missing or later targets")
def _bad_links(ctx):
    ok = tarraw.entry("f", b"f\n")
    problems = []
    e = tarraw.entry("link", typeflag=b"1", linkname="nowhere")
    problems += expect_reject(ctx, "missing target", ok + e + tarraw.END, lo=len(ok),
                              hi=len(ok) + 511)
    e = tarraw.entry("early", typeflag=b"1", linkname="late")
    late = tarraw.entry("late", b"too late\n")
    problems += expect_reject(ctx, "target only later", ok + e + late + tarraw.END,
                              lo=len(ok), hi=len(ok) + 511)
    if problems:
        fail("%d problem(s)" % len(problems), problems)


@case("bad-compressed", "garbage and truncation in gzip and zstd streams")
def _bad_comp(ctx):
    r = random.Random(99)
    fx = fixtures.BY_NAME["gnutar-pax"]
    gz = open(ctx.compressed(fx, "gzip"), "rb").read()
    zs = open(ctx.compressed(fx, "zstd"), "rb").read()
    problems = []
    problems += expect_reject(ctx, "gzip magic + random", b"\x1f\x8b" + r.randbytes(4096))
    problems += expect_reject(ctx, "gzip header + random deflate",
                              b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + r.randbytes(4096))
    problems += expect_reject(ctx, "gzip cut in half", gz[:len(gz) // 2])
    problems += expect_reject(ctx, "gzip without its 8-byte trailer", gz[:-8])
    problems += expect_reject(ctx, "gzip cut 3 bytes short", gz[:-3])
    b = bytearray(gz)
    b[-8] ^= 0xff
    problems += expect_reject(ctx, "gzip with a wrong CRC", bytes(b))
    problems += expect_reject(ctx, "zstd magic + random", b"\x28\xb5\x2f\xfd" + r.randbytes(4096))
    problems += expect_reject(ctx, "zstd cut in half", zs[:len(zs) // 2])
    problems += expect_reject(ctx, "zstd cut 3 bytes short", zs[:-3])
    problems += expect_reject(ctx, "zstd cut in half, stdin", zs[:len(zs) // 2], stdin=True)
    if problems:
        fail("%d problem(s)" % len(problems), problems)


# ---------------------------------------------------------------------------

def sanity(ctx):
    errors = ctx.mounts.umount_all()
    left = mounts_under(ctx.workdir)
    if left:
        errors.append("still mounted: %s" % ", ".join(left))
    loops = loops_backed_by(ctx.workdir)
    if loops:
        errors.append("loop devices left: %s" % "; ".join(loops))
    return errors


def environment_problem(args):
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control"

    def has_erofs():
        with open("/proc/filesystems") as f:
            return any(l.split()[-1] == "erofs" for l in f if l.strip())
    if not has_erofs():
        run(["modprobe", "erofs"], check=False)
        if not has_erofs():
            return "no erofs in /proc/filesystems"
    for tool in ("tar", "gzip", "zstd", "fsck.erofs", "mount", "umount", "losetup"):
        if not shutil.which(tool):
            return "%s not found" % tool
    if args.self_test and not shutil.which("mkfs.erofs"):
        return "mkfs.erofs not found (needed by --self-test)"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--erofs-layer", help="the erofs-layer binary under test")
    ap.add_argument("--workdir", help="scratch directory (created)")
    ap.add_argument("--only", action="append", default=[], metavar="PATTERN",
                    help="run only the cases matching this name or glob (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory's files")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--self-test", action="store_true",
                    help="test the harness with selftest/fake-erofs-layer.py (mkfs.erofs based)")
    ap.add_argument("--no-big", action="store_true", help="skip the 5 GiB cases")
    ap.add_argument("--verbose", action="store_true", help="print the time of each step")
    args = ap.parse_args()
    if args.list:
        for name, _, desc in CASES:
            print("%-24s %s" % (name, desc))
        return 0
    if not args.workdir:
        ap.error("--workdir is required")
    if not args.self_test and not args.erofs_layer:
        ap.error("--erofs-layer is required (or --self-test)")
    why = environment_problem(args)
    if why:
        print("skip golden: cannot run here: %s" % why)
        print("0 passed, 0 failed, %d skipped" % len(CASES))
        return 77
    if not args.self_test and not os.access(args.erofs_layer, os.X_OK):
        print("FAIL setup: %s is not an executable" % args.erofs_layer)
        print("0 passed, 1 failed")
        return 1
    os.umask(0o022)
    # meson's timeout sends SIGTERM: unwind through the finally clauses so
    # that everything gets unmounted
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ctx = Ctx(args)
    os.makedirs(ctx.workdir, exist_ok=True)
    for mp in mounts_under(ctx.workdir):
        umount(mp)
    for d in SUBDIRS:
        shutil.rmtree(os.path.join(ctx.workdir, d), ignore_errors=True)
        os.makedirs(os.path.join(ctx.workdir, d))

    selected = [c for c in CASES
                if not args.only or any(fnmatch.fnmatchcase(c[0], p) for p in args.only)]
    if args.only and not selected:
        print("no case matches %s (see --list)" % " ".join(args.only))
        return 1
    passed = failed = skipped = 0
    t_start = time.time()
    try:
        for name, fn, _ in selected:
            t0 = time.time()
            try:
                if args.no_big and name in [f.name for f in fixtures.FIXTURES if f.big]:
                    raise CaseSkipped("--no-big")
                fn(ctx)
            except CaseSkipped as e:
                skipped += 1
                print("skip %s: %s" % (name, e), flush=True)
                continue
            except CaseFailed as e:
                failed += 1
                print("FAIL %s: %s" % (name, e.reason), flush=True)
                for d in e.details[:MAX_DETAILS]:
                    print("    %s" % d)
                if len(e.details) > MAX_DETAILS:
                    print("    ... and %d more" % (len(e.details) - MAX_DETAILS))
                sys.stdout.flush()
            except (KeyboardInterrupt, SystemExit):
                failed += 1
                print("FAIL %s: interrupted" % name, flush=True)
                raise
            except CmdError as e:    # a command failed or timed out
                failed += 1
                print("FAIL %s: %s" % (name, e), flush=True)
            except Exception as e:   # a harness or environment error: still a failure
                failed += 1
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
                for line in traceback.format_exc().rstrip().splitlines()[-6:]:
                    print("    %s" % line)
            else:
                passed += 1
                print("ok %s" % name, flush=True)
            finally:
                for e in ctx.mounts.umount_all():
                    print("    cleanup: %s" % e)
                if args.verbose:
                    print("# %s took %.1fs" % (name, time.time() - t0), flush=True)
    finally:
        errors = sanity(ctx)
        if errors:
            failed += 1
            print("FAIL cleanup-sanity: %s" % errors[0])
            for e in errors[1:]:
                print("    %s" % e)
        else:
            passed += 1
            print("ok cleanup-sanity")
        if not args.keep and not errors:
            for d in SUBDIRS:
                shutil.rmtree(os.path.join(ctx.workdir, d), ignore_errors=True)
        print("# %.0fs" % (time.time() - t_start))
        summary = "%d passed, %d failed" % (passed, failed)
        if skipped:
            summary += ", %d skipped" % skipped
        print(summary, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
