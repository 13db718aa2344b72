#!/usr/bin/python3
"""Tests of `erofs-layer convert --ext4`: host trees put into ext4 images by
`mkfs.ext4 -d` (as the guest's rwlayer.img holds `upper/`), read back without
mounting them, converted to EROFS, then judged by `erofs-layer check`,
fsck.erofs and the kernel (the EROFS image mounted and compared with the
source tree attribute by attribute, with tests/dir/run-dir.py's helpers);
`--overlay-upper` against `--dir --overlay-upper` on the same directory (the
same bytes); hostile images (debugfs and raw corruptions, then random byte
flips) that must be refused cleanly, with or without e2fsck.

    run-ext4.py --erofs-layer PATH --workdir DIR [--only PATTERN]... [--keep]
                [--no-big] [--fuzz-seconds N] [--fuzz-seed N] [--list] [--verbose]

Prints `ok NAME` or `FAIL NAME: reason` (with details) per case, then
`N passed, M failed[, K skipped]`. Exit status: 0 all passed, 1 some failed,
77 cannot run here (not root, no loop devices, no erofs or overlay in the
kernel, mkfs.ext4/debugfs/e2fsck missing). Python 3 standard library only.
"""

import argparse
import hashlib
import importlib.util
import os
import random
import shutil
import stat
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# tests/dir/run-dir.py: its tree builders, snapshot and comparison helpers,
# context (mounts, checks) and failure types are reused as they are
rd = _load("run_dir", os.path.join(TESTS, "dir", "run-dir.py"))
treecmp = rd.treecmp
run, tail = rd.run, rd.tail
CaseFailed, CaseSkipped, fail, check = rd.CaseFailed, rd.CaseSkipped, rd.fail, rd.check
snapshot, compare, drop, write = rd.snapshot, rd.compare, rd.drop, rd.write

EXIT_BADINPUT = rd.EXIT_BADINPUT
EXIT_USAGE = rd.EXIT_USAGE
SB_UUID = rd.SB_UUID
UUID = "00112233445566778899aabbccddeeff"


class Ctx(rd.Ctx):
    def convert_ext4(self, spec, out, *extra, ok=True, env=None, timeout=600):
        p = run([self.el, "convert", "--ext4", spec, "-o", out] + list(extra), check=False,
                timeout=timeout, env=env)
        if ok and p.returncode != 0:
            fail("convert --ext4 %s exited %d" % (os.path.basename(spec), p.returncode),
                 [tail(p.stderr)])
        return p

    def ext4(self, name):
        return os.path.join(self.imgdir, name + ".ext4")


# ---------------------------------------------------------------------------
# ext4 images

def mkfs(ctx, img, template, *opts, size=256 << 20):
    """An ext4 image of `size` bytes made by mkfs.ext4 -d template."""
    if os.path.exists(img):
        os.unlink(img)
    with open(img, "wb") as f:
        f.truncate(size)
    # mkfs.ext4 -d recurses once per level: a deep tree needs a big stack
    p = subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0"]
                       + list(opts) + ["-d", template, img], capture_output=True, timeout=600,
                       preexec_fn=rd.big_stack)
    check(p.returncode == 0, "mkfs.ext4 %s exited %d" % (" ".join(opts), p.returncode),
          [tail(p.stderr)])
    return img


def debugfs(img, *cmds, write=True):
    """Runs debugfs commands (bytes or str) from a command file; returns
    stdout. Fails when debugfs reports an error for one of them."""
    cf = img + ".cmds"
    with open(cf, "wb") as f:
        for c in cmds:
            f.write((c.encode() if isinstance(c, str) else c) + b"\n")
    p = run(["debugfs"] + (["-w"] if write else []) + ["-f", cf, img], check=False,
            timeout=600)
    os.unlink(cf)
    err = [l for l in p.stderr.decode("utf-8", "replace").splitlines()
           if l.strip() and not l.startswith("debugfs ")]
    check(p.returncode == 0 and not err, "debugfs failed", err[:5] + [tail(p.stderr)])
    # with -f, debugfs echoes each command as "debugfs: CMD"
    return "\n".join(l for l in p.stdout.decode("utf-8", "surrogateescape").splitlines()
                     if not l.startswith("debugfs: "))


def s32(v):
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def representable(name):
    return b"\n" not in name and b'"' not in name


def tame_names(root):
    """Entries whose names debugfs commands cannot quote get an mtime that
    mkfs.ext4 -d stores exactly (whole seconds, 32 bits)."""
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            if not representable(n) and not stat.S_ISSOCK(os.lstat(p).st_mode):
                os.utime(p, ns=(1700000000 * 10**9, 1700000000 * 10**9),
                         follow_symlinks=False)


def patch_times(img, src, prefix, small=False, sizes=False):
    """mkfs.ext4 1.47 -d keeps neither nanoseconds nor dates past 2038:
    writes the source's mtimes into the image's inodes with debugfs (the
    low 32 bits, then nsec << 2 | epoch bits in the extra field unless the
    inodes are 128 bytes). sizes: also the sizes of regular files (with
    -O inline_data, mkfs.ext4 1.47.0 -d drops a sparse file's trailing
    hole: i_size ends at its last data block)."""
    cmds = []
    bsrc = os.fsencode(src)
    for dirpath, dirnames, filenames in os.walk(bsrc):
        for p in [dirpath] + [os.path.join(dirpath, n) for n in dirnames + filenames]:
            st = os.lstat(p)
            rel = os.path.relpath(p, bsrc)
            name = os.fsencode(prefix) if rel == b"." else os.fsencode(prefix) + b"/" + rel
            if stat.S_ISSOCK(st.st_mode) or not representable(name):
                continue
            sec, nsec = divmod(st.st_mtime_ns, 10**9)
            low = sec & 0xFFFFFFFF
            cmds.append(b'sif "%s" mtime 0x%x' % (name, low))
            if sizes and stat.S_ISREG(st.st_mode):
                cmds.append(b'sif "%s" size %d' % (name, st.st_size))
            if not small:
                epoch = ((sec - s32(low)) >> 32) & 3
                cmds.append(b'sif "%s" mtime_extra 0x%x' % (name, nsec << 2 | epoch))
    debugfs(img, *cmds)


def expected_of(src, small=False, sockets=("sock",)):
    """The source snapshot as an ext4 image carries it: no sockets; symlinks
    never hard-linked (mkfs.ext4 -d makes one inode per symlink); with
    128-byte inodes, mtimes in signed 32-bit seconds; a directory holding a
    char 0:0 gets the writer's origin marker."""
    exp = drop(snapshot(src), *sockets)
    for p, r in exp.items():
        if r["kind"] == "sym":
            r["nlink"] = 1
            r["ino"] = ("sym", p)
        if small:
            r["mtime"] = (s32(r["mtime"][0]), 0)
    for p, r in list(exp.items()):
        if r["kind"] == "chr" and r["rdev"] == (0, 0):
            exp[p.rpartition("/")[0]]["xattrs"]["trusted.overlay.origin"] = b""
    return exp


def fields(stdout):
    return rd.fields(stdout)


def convert_and_compare(ctx, img, name, expected, extra=(), warn_expect=(), subdir="upper"):
    out = ctx.image(name)
    ctx.log("convert %s" % name)
    p = ctx.convert_ext4("%s:%s" % (img, subdir), out, *extra)
    f = fields(p.stdout)
    err = p.stderr.decode("utf-8", "replace")
    for k in ("entries", "data_bytes", "inodes", "image_bytes"):
        check(k in f and f[k].isdigit(), "stdout lacks a numeric '%s' line" % k,
              [tail(p.stdout)])
    check(int(f["image_bytes"]) == os.path.getsize(out),
          "image_bytes %s but the file has %d bytes" % (f["image_bytes"], os.path.getsize(out)))
    for w in warn_expect:
        check(w in err, "no warning mentioning %r" % w, [tail(err)])
    ctx.check_image(out)
    with ctx.mounted(out) as mp:
        actual = snapshot(mp)
    compare(expected, actual, name)
    check(int(f["inodes"]) == treecmp.distinct_inodes(actual),
          "inodes %s but the mounted tree has %d" % (f["inodes"],
                                                      treecmp.distinct_inodes(actual)))
    return f, err, out


def template(ctx, name):
    """A fresh mkfs.ext4 -d template: NAME/upper and NAME/work."""
    t = ctx.fresh(name)
    os.mkdir(os.path.join(t, "upper"))
    os.mkdir(os.path.join(t, "work"))
    return t, os.path.join(t, "upper")


def build_extra(root):
    """What build_all_types lacks: a sparse file with several holes and data
    at odd offsets, a file of many extents (an extent tree of depth 2), a
    slow symlink just past the fast limit, uids above 65535 on a directory."""
    j = lambda *a: os.path.join(root, *a)  # noqa: E731
    rnd = random.Random(3)
    fd = os.open(j("holes"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for off in (0, 70000, 1 << 20, (5 << 20) + 4095, (9 << 20) + 1):
            os.pwrite(fd, rnd.randbytes(5000), off)
        os.ftruncate(fd, 12 << 20)
    finally:
        os.close(fd)
    fd = os.open(j("frag"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for i in range(1500):  # > 4 * 340 extents: depth 2
            os.pwrite(fd, bytes([i & 0xFF]) * 4096, i * 8192)
    finally:
        os.close(fd)
    os.symlink("s" * 60, j("sl-60"))
    os.symlink("s" * 59, j("sl-59"))
    os.mkdir(j("bigowner"))
    os.chown(j("bigowner"), 100000, 200000)


# ---------------------------------------------------------------------------
# cases

def all_types_case(ctx, name, *mkfs_opts, small=False, sizes=False):
    t, up = template(ctx, name)
    rd.build_all_types(up)
    build_extra(up)
    rd.set_times(up, seed=2)
    tame_names(up)
    img = mkfs(ctx, ctx.ext4(name), t, *mkfs_opts)
    patch_times(img, up, "upper", small=small, sizes=sizes)
    exp = expected_of(up, small=small)
    f, _, out = convert_and_compare(ctx, img, name, exp, warn_expect=("sock: skipped",))
    check(int(f["entries"]) == len(exp), "entries %s, expected %d" % (f["entries"], len(exp)))
    return img, out, f


def case_all_types(ctx):
    img, out, f = all_types_case(ctx, "all-types")
    # the same image converted again: the same bytes
    again = ctx.image("all-types-again")
    ctx.convert_ext4(img + ":upper", again)
    check(open(out, "rb").read() == open(again, "rb").read(),
          "converting the same image twice gave different bytes")
    with open(out, "rb") as fh:
        fh.seek(SB_UUID)
        u = fh.read(16)
    check(u[6] >> 4 == 5 and u[8] >> 6 == 2, "derived uuid %s is not a v5 layout" % u.hex())
    check(int(f["data_bytes"]) < 16 << 20,
          "data_bytes %s: holes were read" % f["data_bytes"])


def case_inline_data(ctx):
    img, _, _ = all_types_case(ctx, "inline-data", "-O", "inline_data", sizes=True)
    st = debugfs(img, "stat upper/one", "stat upper/wh", write=False)
    check("Size of inline data" in st, "no inline data in the image: the case proves nothing",
          [st[:300]])


def case_small_inodes(ctx):
    all_types_case(ctx, "small-inodes", "-I", "128", small=True)


def case_block_mapped(ctx):
    """ext3-style block maps (no extents), 1 KiB blocks: direct, indirect and
    double-indirect blocks, holes between them."""
    t, up = template(ctx, "block-mapped")
    j = lambda *a: os.path.join(up, *a)  # noqa: E731
    rnd = random.Random(9)
    write(j("small"), b"small\n")
    write(j("one-block"), rnd.randbytes(1024))
    write(j("ind"), rnd.randbytes(200 * 1024 + 17))
    fd = os.open(j("dind-sparse"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for off in (5000, 13 * 1024, 300 * 1024 + 3, 70 << 20):
            os.pwrite(fd, rnd.randbytes(3000), off)
    finally:
        os.close(fd)
    os.symlink("l" * 900, j("slow-link"))
    os.symlink("fast", j("fast-link"))
    os.mkdir(j("d"))
    for i in range(300):  # a directory over many blocks
        write(j("d", "entry-%04d-%s" % (i, "x" * (i % 40))), b"%d" % i)
    os.link(j("ind"), j("d", "ind-link"))
    os.setxattr(j("small"), "user.k", b"v")
    rd.set_times(up, seed=7)
    img = mkfs(ctx, ctx.ext4("block-mapped"), t, "-b", "1024", "-O",
               "^extent,^flex_bg,^64bit,^metadata_csum,^huge_file,^dir_nlink,^extra_isize",
               "-I", "256", size=128 << 20)
    patch_times(img, up, "upper")
    st = debugfs(img, "stat upper/dind-sparse", write=False)
    check("EXTENTS" not in st and "DIND" in st, "the file is not block-mapped as planned",
          [st[:300]])
    convert_and_compare(ctx, img, "block-mapped", expected_of(up))


def build_upper(root):
    """A hand-made overlay upper directory: whiteouts linked to one inode as
    overlayfs makes them, an opaque directory, the upper's bookkeeping
    xattrs, an escaped xattr; plus every entry type."""
    j = lambda *a: os.path.join(root, *a)  # noqa: E731
    rd.build_all_types(root)
    os.unlink(j("sock"))
    os.mkdir(j("gone"))
    os.mknod(j("gone", "w1"), stat.S_IFCHR, os.makedev(0, 0))
    os.link(j("gone", "w1"), j("gone", "w2"))
    os.link(j("gone", "w1"), j("w3"))
    os.mkdir(j("opq"))
    os.setxattr(j("opq"), "trusted.overlay.opaque", b"y")
    write(j("opq", "new"), b"new")
    os.mkdir(j("impure"))
    os.setxattr(j("impure"), "trusted.overlay.impure", b"y")
    os.setxattr(j("impure"), "trusted.overlay.origin", b"\x00\xfb\x1d\x01\x81")
    write(j("impure", "copied"), b"c")
    os.setxattr(j("impure", "copied"), "trusted.overlay.nlink", b"U+1")
    os.setxattr(j("impure", "copied"), "trusted.overlay.overlay.esc", b"escaped")
    rd.set_times(root, seed=5)
    tame_names(root)


def case_overlay_upper(ctx):
    """--ext4 IMAGE:upper --overlay-upper gives the tree --dir upper
    --overlay-upper gives (every attribute, xattr and hard-link group, as
    the kernel shows them; the same image size); redirect and metacopy are
    refused, leaving nothing behind."""
    t, up = template(ctx, "ovl")
    build_upper(up)
    img = mkfs(ctx, ctx.ext4("ovl"), t)
    patch_times(img, up, "upper")
    a, b = ctx.image("ovl-ext4"), ctx.image("ovl-dir")
    fix = ("--overlay-upper", "--uuid", UUID, "--epoch", "1700000000")
    ctx.convert_ext4(img + ":upper", a, *fix)
    # mkfs.ext4 -d keeps no hard-linked symlink: neither may the directory
    sub_ns = os.lstat(os.path.join(up, "sub")).st_mtime_ns
    for sl in ("sub/sl", "sub/sl-link"):
        p = os.path.join(up, sl)
        target = os.readlink(p)
        st = os.lstat(p)
        os.unlink(p)
        os.symlink(target, p)
        os.utime(p, ns=(st.st_mtime_ns, st.st_mtime_ns), follow_symlinks=False)
    os.utime(os.path.join(up, "sub"), ns=(sub_ns, sub_ns))
    ctx.convert(up, b, *fix)
    # not byte-equal: file data lands in walk order, breadth first for
    # --dir, depth first for --ext4; the trees must be equal to the byte
    ctx.check_image(a)
    with ctx.mounted(a) as mp:
        alone = snapshot(mp)
    with ctx.mounted(b) as mp:
        by_dir = snapshot(mp)
    compare(by_dir, alone, "ext4-vs-dir")
    check(os.path.getsize(a) == os.path.getsize(b), "image sizes differ: %d and %d"
          % (os.path.getsize(a), os.path.getsize(b)))
    diffs = []
    for p in ("gone/w1", "gone/w2", "w3"):
        r = alone.get(p)
        if not r or r["kind"] != "chr" or r["rdev"] != (0, 0) or r["nlink"] != 1:
            diffs.append("%s: not a lone whiteout: %r" % (p, r and (r["kind"], r["nlink"])))
    for p, want in (("opq", {"trusted.overlay.opaque": b"y"}),
                    ("impure", {}), ("impure/copied", {"trusted.overlay.overlay.esc": b"escaped"}),
                    ("gone", {"trusted.overlay.origin": b""})):
        got = {k: v for k, v in alone[p]["xattrs"].items() if k.startswith("trusted.overlay.")}
        if got != want:
            diffs.append("/%s: overlay xattrs %r, expected %r" % (p, got, want))
    check(not diffs, "the layer is not in overlay form", diffs)

    # refusals, naming the path; nothing left behind
    outdir = os.path.join(ctx.tmpdir, "ovl-refused")
    os.makedirs(outdir, exist_ok=True)
    for what, cmd in (("redirect", 'ea_set upper/opq trusted.overlay.redirect "/x"'),
                      ("metacopy", "ea_set upper/opq/new trusted.overlay.metacopy y")):
        bad = ctx.ext4("ovl-" + what)
        shutil.copyfile(img, bad)
        debugfs(bad, cmd)
        p = ctx.convert_ext4(bad + ":upper", os.path.join(outdir, "x.erofs"), "--overlay-upper",
                             ok=False)
        check(p.returncode == EXIT_BADINPUT and b"opq" in p.stderr and what.encode() in p.stderr,
              "%s xattr: exit %d" % (what, p.returncode), [tail(p.stderr)])
        check(os.listdir(outdir) == [], "left behind: %s" % os.listdir(outdir))
        # without --overlay-upper the xattr is kept as it is
        ctx.convert_ext4(bad + ":upper", os.path.join(outdir, "plain.erofs"))
        os.unlink(os.path.join(outdir, "plain.erofs"))


def case_overlay_live(ctx):
    """The real thing: an ext4 image with upper/ and work/, loop-mounted on
    the host only to play the guest, used as an overlayfs upper over an
    EROFS layer; changed, unmounted uncleanly-safe, then converted with
    --fsck --overlay-upper: stacked on the old layer, the new one shows what
    the live overlay showed."""
    lower_src = ctx.fresh("live-lower")
    rd.build_lower(lower_src)
    tarf = os.path.join(ctx.tmpdir, "live-lower.tar")
    rd.make_tar(lower_src, tarf)
    old = ctx.image("live-old")
    run([ctx.el, "convert", "-o", old, tarf])
    t, _ = template(ctx, "live-tmpl")
    img = mkfs(ctx, ctx.ext4("live"), t, size=128 << 20)
    lower_mp = ctx.mount("erofs", old, ctx.mp("live-lower"), "ro,loop")
    e4 = ctx.mount("ext4", img, ctx.mp("live-ext4"), "loop")
    merged = ctx.mount("overlay", "overlay", ctx.mp("live-merged"),
                       "lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,metacopy=off"
                       % (lower_mp, os.path.join(e4, "upper"), os.path.join(e4, "work")))
    j = lambda *a: os.path.join(merged, *a)  # noqa: E731
    os.unlink(j("a", "file1"))
    os.unlink(j("a", "file2"))
    shutil.rmtree(j("d"))
    shutil.rmtree(j("o"))
    os.mkdir(j("o"))
    write(j("o", "fresh"), b"fresh\n")
    write(j("r", "z"), b"rewritten\n")
    os.makedirs(j("n", "m"))
    write(j("n", "m", "big"), os.urandom(3 << 20))
    os.link(j("n", "m", "big"), j("n", "big-link"))
    os.symlink("x" * 200, j("n", "slow"))
    os.mknod(j("n", "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    # unwritten extents read as zeros: the blocks fallocate gives may hold
    # the data of a file deleted just before
    write(j("n", "stale"), os.urandom(8 << 20))
    os.sync()
    os.unlink(j("n", "stale"))
    os.sync()
    fd = os.open(j("n", "falloc"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, 8 << 20)
        os.pwrite(fd, b"written", 3 << 20)
    finally:
        os.close(fd)
    # a directory the kernel indexes (htree, checksummed dx blocks)
    os.mkdir(j("n", "many"))
    for i in range(3000):
        write(j("n", "many", "entry-%05d-%s" % (i, "m" * (i % 50))), b"")
    os.setxattr(j("keep", "xattr-me"), "user.added", b"yes")
    os.chmod(j("keep", "chmod-me"), 0o4711)
    os.chown(j("n"), 70000, 80000)
    os.utime(j("a"), ns=(1600000000123456789, 1600000000123456789))
    expected = snapshot(merged)
    ctx.umount(merged)
    st = run(["lsattr", "-d", os.path.join(e4, "upper", "n", "many")]).stdout
    check(b"I" in st.split()[0], "n/many is not an indexed directory", [tail(st)])
    ctx.umount(e4)
    new = ctx.image("live-new")
    p = ctx.convert_ext4(img + ":upper", new, "--fsck", "--overlay-upper")
    check(b"fsck 0" in p.stdout, "e2fsck did not find the image clean", [tail(p.stdout)])
    ctx.check_image(new)
    new_mp = ctx.mount("erofs", new, ctx.mp("live-new"), "ro,loop")
    view = ctx.mount("overlay", "overlay", ctx.mp("live-view"),
                     "ro,lowerdir=%s:%s" % (new_mp, lower_mp))
    compare(expected, snapshot(view), "overlay-live")


def case_sparse_5g(ctx):
    if ctx.args.no_big:
        raise CaseSkipped("--no-big")
    t, up = template(ctx, "sparse-5g")
    rd.write_sparse_5g(os.path.join(up, "big"))
    rd.set_times(up, seed=9)
    img = mkfs(ctx, ctx.ext4("sparse-5g"), t, size=64 << 20)
    patch_times(img, up, "upper")
    f, _, out = convert_and_compare(ctx, img, "sparse-5g", expected_of(up))
    used = os.stat(out).st_blocks * 512
    check(used < 64 << 20, "the image uses %d bytes on disk: holes were written" % used)
    check(int(f["data_bytes"]) < 1 << 20, "data_bytes %s: holes were read" % f["data_bytes"])
    os.unlink(out)


def case_deep(ctx):
    """About 900 levels and paths near 4096 bytes, a hard link between the
    bottom and the top; a path of exactly 4096 bytes converts, one byte more
    fails, naming the path. (mkfs.ext4 1.47.0 -d aborts with a corrupted heap
    past about 1000 levels: 900 short names, then long ones; debugfs adds
    the last names.)"""
    t, up = template(ctx, "deep")
    names = ["d"] * 900 + [chr(ord("a") + i) * 200 for i in range(11)]
    depth = len(names)
    fd = rd.make_chain_names(up, names)
    top = os.open(up, os.O_RDONLY | os.O_DIRECTORY)
    try:
        write("bottom", b"at the bottom\n", dir_fd=fd)
        os.symlink("bottom", "sl", dir_fd=fd)
        os.link("bottom", "top-link", src_dir_fd=fd, dst_dir_fd=top)
    finally:
        os.close(fd)
        os.close(top)
    img = mkfs(ctx, ctx.ext4("deep"), t, size=128 << 20)
    exp = expected_of(up)
    for p in exp:  # mkfs.ext4 -d keeps seconds only
        exp[p]["mtime"] = (s32(exp[p]["mtime"][0]), 0)
    f, _, _ = convert_and_compare(ctx, img, "deep", exp)
    check(int(f["entries"]) == depth + 4, "entries %s, expected %d" % (f["entries"], depth + 4))
    # a name that makes the path 4096 bytes converts, one byte longer fails
    dlen = sum(len(n) for n in names) + depth - 1
    n = 4096 - dlen - 1
    check(0 < n < 255, "no room for the limit test (%d)" % n)
    local = os.path.join(ctx.tmpdir, "deep-local")
    write(local, b"limit\n")
    cd = ["cd upper"] + ["cd %s" % x for x in names]
    ok_img, over_img = ctx.ext4("deep-4096"), ctx.ext4("deep-4097")
    shutil.copyfile(img, ok_img)
    debugfs(ok_img, *(cd + ["write %s %s" % (local, "x" * n)]))
    shutil.copyfile(img, over_img)
    debugfs(over_img, *(cd + ["write %s %s" % (local, "y" * (n + 1))]))
    out = ctx.image("deep-4096")
    p = ctx.convert_ext4(ok_img + ":upper", out)
    check(int(fields(p.stdout)["entries"]) == depth + 5, "the 4096-byte path is missing")
    ctx.check_image(out)
    outdir = os.path.join(ctx.tmpdir, "deep-out")
    os.makedirs(outdir, exist_ok=True)
    p = ctx.convert_ext4(over_img + ":upper", os.path.join(outdir, "x.erofs"), ok=False)
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode == EXIT_BADINPUT and "4097" in err and "y" * 40 in err,
          "a 4097-byte path: exit %d" % p.returncode, [tail(err)])
    check(os.listdir(outdir) == [], "left behind: %s" % os.listdir(outdir))
    rd.rmtree(t)


# -- hostile images ----------------------------------------------------------

def dir_blocks(img, path):
    out = debugfs(img, "blocks %s" % path, write=False)
    return [int(x) for x in out.split()]


def find_dirent(img, path, name, bs=4096):
    """(byte offset of the entry, its inode) of `name` in directory `path`."""
    with open(img, "rb") as f:
        for b in dir_blocks(img, path):
            f.seek(b * bs)
            blk = f.read(bs)
            pos = 0
            while pos + 8 <= bs:
                ino, rec_len, nl = struct.unpack_from("<IHB", blk, pos)
                if rec_len < 8:
                    break
                if ino and blk[pos + 8:pos + 8 + nl] == name:
                    return b * bs + pos, ino
                pos += rec_len
    fail("no entry %r in %s" % (name, path))


def poke(img, off, data):
    with open(img, "r+b") as f:
        f.seek(off)
        f.write(data)


def etb_blocks(img, path):
    st = debugfs(img, "stat %s" % path, write=False)
    out = {}
    for tok in st.replace(",", " ").split():
        if tok.startswith("(ETB"):
            lvl, _, blk = tok[4:].partition("):")
            out.setdefault(int(lvl), []).append(int(blk))
    return out


def hostile_base(ctx, name, *mkfs_opts):
    t, up = template(ctx, name)
    j = lambda *a: os.path.join(up, *a)  # noqa: E731
    os.makedirs(j("a", "b"))
    os.mkdir(j("c"))
    write(j("a", "b", "f"), b"data\n" * 1000)
    write(j("a", "victim"), b"v")
    write(j("c", "g"), os.urandom(100000))
    fd = os.open(j("frag"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for i in range(1500):
            os.pwrite(fd, b"f" * 4096, i * 8192)
    finally:
        os.close(fd)
    rd.set_times(up, seed=8)
    return up, mkfs(ctx, ctx.ext4(name), t, *mkfs_opts, size=64 << 20)


def case_hostile(ctx):
    """Corruptions made with debugfs or by hand. Without fsck, each is refused
    with exit 3, a message naming the path and what is wrong, and nothing
    left behind (or, for the harmless ones, converted exactly). With --fsck,
    e2fsck -p either repairs the image (which then converts) or refuses it
    (exit 3 quoting e2fsck)."""
    up, base = hostile_base(ctx, "hostile", "-O", "^metadata_csum")
    _, csum = hostile_base(ctx, "hostile-csum")
    outdir = os.path.join(ctx.tmpdir, "hostile-out")
    os.makedirs(outdir, exist_ok=True)
    out = os.path.join(outdir, "x.erofs")

    def dirent_inode(img, d, n, ino):
        off, _ = find_dirent(img, d, n)
        poke(img, off, struct.pack("<I", ino))

    def name_byte(img, d, n, i, byte):
        off, _ = find_dirent(img, d, n)
        poke(img, off + 8 + i, bytes([byte]))

    def dot_elsewhere(img):
        off, _ = find_dirent(img, "upper/a", b".")
        _, c_ino = find_dirent(img, "upper", b"c")
        poke(img, off, struct.pack("<I", c_ino))
        off, _ = find_dirent(img, "upper/a", b"..")
        poke(img, off, struct.pack("<I", c_ino))

    def etb_loop(img):
        etb = etb_blocks(img, "upper/frag")
        check(0 in etb and 1 in etb, "frag has no 2-level extent tree", [repr(etb)])
        idx = etb[0][0]
        # the second index entry of the depth-1 node points at the node itself
        poke(img, idx * 4096 + 12 + 12 + 4, struct.pack("<I", idx))

    def etb_shared(img):
        etb = etb_blocks(img, "upper/frag")
        idx = etb[0][0]
        with open(img, "rb") as f:
            f.seek(idx * 4096 + 12 + 4)
            first_leaf = f.read(4)
        poke(img, idx * 4096 + 12 + 12 + 4, first_leaf)

    cases = [
        # name, image, corruption, message without fsck (None: converts)
        ("dir-loop", csum, lambda i: debugfs(i, "link upper/a upper/a/b/loop"),
         "a/b/loop: directory already met at 'a'"),
        ("dir-twice", csum, lambda i: debugfs(i, "link upper/a upper/c/a2"),
         "c/a2: directory already met at 'a'"),
        ("root-loop", base, lambda i: dirent_inode(i, "upper/c", b"g", 2),
         "directory already met"),
        ("dot-elsewhere", base, dot_elsewhere, None),
        ("slash-in-name", base, lambda i: name_byte(i, "upper/a", b"victim", 2, ord("/")),
         "a: a name holding '/'"),
        ("nul-in-name", base, lambda i: name_byte(i, "upper/a", b"victim", 1, 0),
         "a: a name holding 'NUL'"),
        ("reserved-inode", base, lambda i: dirent_inode(i, "upper/a", b"victim", 8),
         "a/victim: names a reserved inode"),
        ("inode-out-of-range", base, lambda i: dirent_inode(i, "upper/a", b"victim", 0x7fffffff),
         "a/victim: inode number out of range"),
        ("huge-size", csum, lambda i: debugfs(i, "sif upper/a/b/f size 0x1000000000000"),
         "a/b/f: absurd size"),
        ("bad-extent", csum, lambda i: debugfs(i, "sif upper/c/g block[5] 0x7ffffff0"),
         "c/g: extent points outside the image"),
        ("extent-loop", base, etb_loop, "frag: "),
        ("extent-shared", base, etb_shared, "frag: extent tree out of order"),
        ("csum-inode", csum, lambda i: debugfs(i, "sif upper/a/victim checksum 0x1234"),
         "a/victim: cannot read the inode"),
        ("needs-recovery", csum, lambda i: debugfs(i, "feature needs_recovery"),
         "the journal needs recovery"),
        ("errors-fs", csum, lambda i: debugfs(i, "ssv state 2"),
         "marked as having errors"),
    ]
    diffs = []
    for name, src_img, corrupt, msg in cases:
        if ctx.args.only_hostile and name not in ctx.args.only_hostile:
            continue
        img = ctx.ext4("h-" + name)
        shutil.copyfile(src_img, img)
        corrupt(img)
        t0 = time.time()
        p = ctx.convert_ext4(img + ":upper", out, ok=False, timeout=60)
        err = p.stderr.decode("utf-8", "replace")
        ctx.log("%s: exit %d in %.2fs: %s" % (name, p.returncode, time.time() - t0, tail(err)))
        if msg is None:
            if p.returncode != 0:
                diffs.append("%s: exit %d: %s" % (name, p.returncode, tail(err)))
            else:
                with ctx.mounted(out) as mp:
                    d = treecmp.compare(expected_of(up), snapshot(mp), name)
                # mkfs.ext4 -d keeps whole seconds only
                d = [x for x in d if ": mtime " not in x]
                diffs += d
                os.unlink(out)
        elif p.returncode != EXIT_BADINPUT or msg not in err:
            diffs.append("%s: exit %d, expected %d with %r: %s"
                         % (name, p.returncode, EXIT_BADINPUT, msg, tail(err)))
        if os.path.exists(out) and msg is not None:
            diffs.append("%s: an image was left behind" % name)
            os.unlink(out)
        # with e2fsck first
        p = ctx.convert_ext4(img + ":upper", out, "--fsck", ok=False, timeout=120)
        err = p.stderr.decode("utf-8", "replace")
        ctx.log("%s --fsck: exit %d: %s" % (name, p.returncode, tail(err)))
        if p.returncode == 0:
            ctx.check_image(out)
            os.unlink(out)
        elif p.returncode != EXIT_BADINPUT or "e2fsck" not in err or \
                os.path.basename(img) not in err:
            diffs.append("%s --fsck: exit %d: %s" % (name, p.returncode, tail(err)))
        if os.path.exists(out):
            os.unlink(out)
    check(not diffs, "%d hostile image(s) mishandled" % len(diffs), diffs)


def fuzz_image(ctx, name, *mkfs_opts):
    """A small image with a bit of everything, and the byte ranges worth
    flipping: group metadata and inode tables, directory, extent-tree and
    xattr blocks."""
    t, up = template(ctx, name)
    j = lambda *a: os.path.join(up, *a)  # noqa: E731
    rnd = random.Random(1)  # the same images every run: a seed reproduces a failure
    os.makedirs(j("d", "e"))
    write(j("d", "small"), b"tiny")
    write(j("d", "e", "f"), rnd.randbytes(20000))
    os.link(j("d", "e", "f"), j("hl"))
    os.symlink("t" * 100, j("slow"))
    os.symlink("fast", j("d", "fast"))
    os.mknod(j("d", "wh"), stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(j("blk"), 0o600 | stat.S_IFBLK, os.makedev(300, 70000))
    os.setxattr(j("d"), "user.big", rnd.randbytes(600))
    os.setxattr(j("d", "small"), "system.posix_acl_access", rd.ACL_FILE)
    os.setxattr(j("d", "e"), "trusted.overlay.opaque", b"y")
    fd = os.open(j("frag"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for i in range(60):
            os.pwrite(fd, b"z" * 1024, i * 2048)
    finally:
        os.close(fd)
    for i in range(40):
        write(j("d", "n%02d" % i), b"%d" % i)
    rd.set_times(up, seed=1)
    img = mkfs(ctx, ctx.ext4(name), t, "-b", "1024", "-N", "128", "-U",
               "6a1c7a2e-3b5d-4c1e-9f00-123456789abc", "-E", "hash_seed=" +
               "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", *mkfs_opts, size=4 << 20)
    ranges = []
    dump = run(["dumpe2fs", img], check=False).stdout.decode("utf-8", "replace")
    end = 0
    for line in dump.splitlines():
        if "Inode table at " in line:
            end = max(end, int(line.split("Inode table at ")[1].split()[0].split("-")[1]) + 1)
    ranges.append((1024, end * 1024, 4))  # superblock .. inode tables (weight 4)
    blocks = set()
    for d in ("upper", "upper/d", "upper/d/e"):
        blocks.update(dir_blocks(img, d))
    for p in ("upper/frag", "upper/d", "upper/d/small", "upper/slow"):
        st = debugfs(img, "stat %s" % p, write=False)
        for tok in st.replace(",", " ").split():
            if tok.startswith("(ETB"):
                blocks.add(int(tok.partition("):")[2]))
        for line in st.splitlines():
            if line.startswith("File ACL:") and int(line.split()[2]):
                blocks.add(int(line.split()[2]))
    for p in ("upper/slow",):
        blocks.update(dir_blocks(img, p))
    for b in sorted(blocks):
        ranges.append((b * 1024, b * 1024 + 1024, 2))
    return img, ranges


def case_fuzz(ctx):
    """Random byte flips over the metadata of small images (with and without
    checksums, inline data, block maps), converted without fsck (and some
    with --fsck): never a crash, a sanitizer report, a hang or an exit
    status other than 0, 1 or 3; every image produced passes our check."""
    seed = ctx.args.fuzz_seed if ctx.args.fuzz_seed is not None else int(time.time())
    rnd = random.Random(seed)
    bases = [fuzz_image(ctx, "fz-csum"),
             fuzz_image(ctx, "fz-nocsum", "-O", "^metadata_csum"),
             fuzz_image(ctx, "fz-inline", "-O", "^metadata_csum,inline_data"),
             fuzz_image(ctx, "fz-blockmap", "-O", "^metadata_csum,^extent,^64bit,^flex_bg")]
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "exitcode=99:" + env.get("ASAN_OPTIONS", "")
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:exitcode=98:" + \
        env.get("UBSAN_OPTIONS", "")
    work = ctx.ext4("fz-work")
    out = os.path.join(ctx.tmpdir, "fz.erofs")
    stats = {}
    bad = []
    deadline = time.time() + ctx.args.fuzz_seconds
    n = 0
    while time.time() < deadline:
        n += 1
        img, ranges = bases[n % len(bases)]
        shutil.copyfile(img, work)
        flips = []
        total = sum(w for _, _, w in ranges)
        with open(work, "r+b") as f:
            for _ in range(rnd.randint(1, 4)):
                pick = rnd.uniform(0, total)
                for lo, hi, w in ranges:
                    if pick < w:
                        break
                    pick -= w
                off = rnd.randrange(lo, hi)
                val = rnd.randrange(256) if rnd.random() < 0.5 else None
                f.seek(off)
                old = f.read(1)[0]
                new = val if val is not None else old ^ (1 << rnd.randrange(8))
                f.seek(off)
                f.write(bytes([new]))
                flips.append("%d:%02x->%02x" % (off, old, new))
        extra = ["--fsck"] if n % 8 == 0 else []
        try:
            p = subprocess.run([ctx.el, "convert", "--ext4", work + ":upper", "-o", out] + extra,
                               capture_output=True, timeout=30, env=env)
        except subprocess.TimeoutExpired:
            bad.append("run %d (%s %s): timed out" % (n, os.path.basename(img), " ".join(flips)))
            continue
        err = p.stderr.decode("utf-8", "replace")
        stats[p.returncode] = stats.get(p.returncode, 0) + 1
        if p.returncode not in (0, 1, EXIT_BADINPUT) or "Sanitizer" in err or \
                "runtime error" in err:
            bad.append("run %d (%s %s%s): exit %d: %s" % (
                n, os.path.basename(img), " ".join(flips), " --fsck" if extra else "",
                p.returncode, tail(err, 600)))
        elif p.returncode == 0:
            c = run([ctx.el, "check", out], check=False)
            if c.returncode != 0:
                bad.append("run %d (%s %s): our image fails check: %s"
                           % (n, os.path.basename(img), " ".join(flips), tail(c.stdout + c.stderr)))
        if os.path.exists(out):
            os.unlink(out)
    ctx.log("fuzz: seed %d, %d runs, exit statuses %r" % (seed, n, stats))
    print("#   fuzz: seed %d, %d runs in %ds, exit statuses %s"
          % (seed, n, ctx.args.fuzz_seconds, dict(sorted(stats.items()))), flush=True)
    check(not bad, "%d of %d fuzzed images mishandled (seed %d)" % (len(bad), n, seed), bad)
    check(n >= 50, "only %d runs in %ds" % (n, ctx.args.fuzz_seconds))


def case_bad_input(ctx):
    out = os.path.join(ctx.tmpdir, "bad-out")
    os.makedirs(out, exist_ok=True)
    x = os.path.join(out, "x.erofs")
    zeros = os.path.join(ctx.tmpdir, "zeros.img")
    with open(zeros, "wb") as f:
        f.truncate(8 << 20)
    t, up = template(ctx, "bad")
    write(os.path.join(up, "file"), b"f")
    img = mkfs(ctx, ctx.ext4("bad"), t, size=32 << 20)
    for args, code, msg in (
            ([zeros], EXIT_BADINPUT, "not an ext2/3/4 file system"),
            ([os.path.join(ctx.tmpdir, "missing.img")], EXIT_BADINPUT, "missing.img"),
            ([img + ":nope"], EXIT_BADINPUT, "no 'nope' in the image"),
            ([img + ":upper/file"], EXIT_BADINPUT, "not a directory"),
            ([img + ":upper/../work"], EXIT_BADINPUT, "'.' and '..'"),
            ([zeros, "--fsck"], EXIT_BADINPUT, "e2fsck")):
        p = run([ctx.el, "convert", "--ext4"] + args[:1] + ["-o", x] + args[1:], check=False)
        err = p.stderr.decode("utf-8", "replace")
        check(p.returncode == code and msg in err,
              "%s: exit %d, expected %d with %r" % (" ".join(args), p.returncode, code, msg),
              [tail(err)])
        check(os.listdir(out) == [], "left behind: %s" % os.listdir(out))
    for args in (["--fsck", "--dir", up], ["--ext4", img, "--dir", up], ["--fsck", zeros]):
        p = run([ctx.el, "convert", "-o", x] + args, check=False)
        check(p.returncode == EXIT_USAGE, "%s: exit %d" % (" ".join(args), p.returncode))
    # the whole file system: lost+found, upper and work
    p = ctx.convert_ext4(img, x)
    with ctx.mounted(x) as mp:
        names = sorted(os.listdir(mp))
    check(names == ["lost+found", "upper", "work"], "the root holds %r" % names)


CASES = [
    ("all-types", case_all_types, "every type, mode, owner, xattr, name; twice: same bytes"),
    ("inline-data", case_inline_data, "the same with -O inline_data"),
    ("small-inodes", case_small_inodes, "the same with -I 128 (no nsec, 32-bit times)"),
    ("block-mapped", case_block_mapped, "ext3-style block maps, 1 KiB blocks"),
    ("overlay-upper", case_overlay_upper, "--ext4 --overlay-upper == --dir --overlay-upper"),
    ("overlay-live", case_overlay_live, "a real overlayfs upper in an ext4 image, restacked"),
    ("sparse-5g", case_sparse_5g, "a 5 GiB sparse file stays sparse"),
    ("deep", case_deep, "~2000 levels, 4096-byte paths; 4097 refused"),
    ("hostile", case_hostile, "debugfs and raw corruptions, with and without e2fsck"),
    ("fuzz", case_fuzz, "random byte flips over the metadata, bounded time"),
    ("bad-input", case_bad_input, "not ext4, missing, bad subdir, usage errors"),
    ("cleanup-sanity", rd.case_cleanup_sanity, "nothing mounted, no loop device left"),
]


def environment_problem():
    why = rd.environment_problem()
    if why:
        return why
    with open("/proc/filesystems") as f:
        if "ext4" not in f.read().split():
            return "no ext4 in /proc/filesystems"
    for tool in ("mkfs.ext4", "debugfs", "dumpe2fs"):
        if not shutil.which(tool):
            return "%s not found" % tool
    if not any(os.access(p, os.X_OK) for p in ("/usr/sbin/e2fsck", "/sbin/e2fsck")):
        return "e2fsck not found"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--erofs-layer", help="the erofs-layer binary under test")
    ap.add_argument("--workdir", help="scratch directory (created)")
    ap.add_argument("--only", action="append", default=[], metavar="PATTERN")
    ap.add_argument("--only-hostile", action="append", default=[], metavar="NAME",
                    help="run only these corruptions of the hostile case")
    ap.add_argument("--keep", action="store_true", help="keep the work directory's files")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--no-big", action="store_true", help="skip the 5 GiB case")
    ap.add_argument("--fuzz-seconds", type=int, default=20)
    ap.add_argument("--fuzz-seed", type=int)
    ap.add_argument("--verbose", action="store_true", help="print the time of each step")
    args = ap.parse_args()
    if not args.list and (not args.workdir or not args.erofs_layer):
        ap.error("--erofs-layer and --workdir are required")
    return rd.suite_main("ext4", CASES, args, environment_problem, Ctx, 16)

if __name__ == "__main__":
    sys.exit(main())
