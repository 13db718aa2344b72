"""Fixture tars, all made at run time in the work directory.

Three families:
  gnutar-*  GNU tar archives of source trees made here (mknod, xattrs, ...);
  py-*      archives written by Python's tarfile module (PAX, GNU, USTAR);
  sparse-*  GNU tar --sparse archives (PAX 0.0/0.1/1.0 and old GNU 'S'),
            including one of a 5 GiB file;
  edge-*    hand-made archives (tarraw), header by header.

Each Fixture knows how to build its tar (cached), whether GNU tar's own
extraction is a usable reference (`tar_ref`), which compressed variants to
check, and whether the converter must print a warning.
"""

import io
import os
import random
import stat
import tarfile

import tarraw as T

SEC = 10**9
CAP = bytes.fromhex("0100000200200000000000000000000000000000")


def rnd(seed, n):
    return random.Random(seed).randbytes(n)


class Fixture:
    def __init__(self, name, builder, *, tar_ref=False, compress=(), warn=False,
                 big=False, desc=""):
        self.name = name
        self.builder = builder
        self.tar_ref = tar_ref
        self.compress = compress
        self.warn = warn
        self.big = big
        self.desc = desc

    def path(self, ctx):
        p = os.path.join(ctx.fixdir, self.name + ".tar")
        if not os.path.exists(p):
            tmp = p + ".part"
            self.builder(ctx, tmp)
            os.rename(tmp, p)
        return p


# ---------------------------------------------------------------------------
# source trees for GNU tar

class TreeMaker:
    """Creates files, then applies owner, mode, xattrs and mtimes in an order
    that keeps them (chown clears setuid and capabilities; children change a
    directory's mtime)."""

    def __init__(self, root):
        self.root = root
        self.meta = []   # (path, uid, gid, mode or None, xattrs, mtime_ns, is_dir)
        self.n = 0
        os.makedirs(root)

    def _p(self, rel):
        return os.path.join(self.root, rel)

    def _auto_mtime(self):
        self.n += 1
        return (1600000000 + self.n * 1000) * SEC + self.n

    def _record(self, rel, uid, gid, mode, xattrs, mtime, is_dir=False):
        self.meta.append((self._p(rel), uid, gid, mode, xattrs or {},
                          self._auto_mtime() if mtime is None else mtime, is_dir))

    def dir(self, rel, mode=0o755, uid=0, gid=0, xattrs=None, mtime=None):
        os.makedirs(self._p(rel), exist_ok=True)
        self._record(rel, uid, gid, mode, xattrs, mtime, True)

    def file(self, rel, data=b"", mode=0o644, uid=0, gid=0, xattrs=None, mtime=None):
        with open(self._p(rel), "wb") as f:
            f.write(data)
        self._record(rel, uid, gid, mode, xattrs, mtime)

    def symlink(self, rel, target, uid=0, gid=0, xattrs=None, mtime=None):
        os.symlink(target, self._p(rel))
        self._record(rel, uid, gid, None, xattrs, mtime)

    def node(self, rel, kind, major=0, minor=0, mode=0o644, uid=0, gid=0, xattrs=None,
             mtime=None):
        fmt = {"chr": stat.S_IFCHR, "blk": stat.S_IFBLK, "fifo": stat.S_IFIFO}[kind]
        os.mknod(self._p(rel), fmt | 0o600, os.makedev(major, minor))
        self._record(rel, uid, gid, mode, xattrs, mtime)

    def link(self, rel, target):
        os.link(self._p(target), self._p(rel))

    def finish(self, root_mode=0o755, root_mtime=1500000000 * SEC):
        self.meta.append((self.root, 0, 0, root_mode, {}, root_mtime, True))
        for path, uid, gid, mode, xattrs, _, _ in self.meta:
            os.lchown(path, uid, gid)
            if mode is not None:
                os.chmod(path, mode)
            for k, v in xattrs.items():
                os.setxattr(path, k, v, follow_symlinks=False)
        files = [m for m in self.meta if not m[6]]
        dirs = sorted((m for m in self.meta if m[6]), key=lambda m: -m[0].count("/"))
        for path, _, _, _, _, mtime, _ in files + dirs:
            os.utime(path, ns=(mtime, mtime), follow_symlinks=False)


def make_full_tree(root, ctx):
    t = TreeMaker(root)
    # mkfs.erofs 1.5 (used by --self-test only) cannot write 255-byte names
    name_max = 254 if ctx.args.self_test else 255
    t.dir("a")
    t.dir("a/b", mode=0o750, uid=1000, gid=1000)
    for d in ("a/b/c", "a/b/c/d", "a/b/c/d/e"):
        t.dir(d)
    t.file("a/b/c/d/e/deep.txt", b"deep\n")
    t.dir("sizes")
    for n in (0, 1, 4095, 4096, 4097, 8192, 65537, (1 << 20) + 7):
        t.file("sizes/%d" % n, rnd(n, n))
    t.dir("modes")
    for name, mode in (("0000", 0o000), ("0777", 0o777), ("suid", 0o4755),
                       ("sgid", 0o2755), ("sticky", 0o1644), ("7777", 0o7777),
                       ("0400", 0o400)):
        t.file("modes/" + name, name.encode(), mode=mode)
    t.dir("modes/sgid-dir", mode=0o2775, gid=50)
    t.dir("modes/sticky-dir", mode=0o1777)
    t.dir("modes/zero-dir", mode=0o000)
    t.file("modes/zero-dir/inside", b"in a 0000 dir\n")
    t.dir("modes/private", mode=0o700, uid=1001, gid=1001)
    t.dir("owners")
    for uid, gid in ((65535, 65534), (65536, 65537), (100000, 100001),
                     (2097152, 3000000), (4000000000, 4000000001)):
        t.file("owners/u%d" % uid, b"owned\n", uid=uid, gid=gid)
    t.symlink("owners/sym1234", "u65536", uid=1234, gid=4321)
    t.dir("owners/dir70000", uid=70000, gid=70001)
    # long names: components of 200 and 255 bytes, paths over 100 and 255
    t.dir("long")
    l1 = "long/" + "x" * 200
    l2 = l1 + "/" + "y" * 200
    t.dir(l1)
    t.dir(l2)
    t.file(l2 + "/f", b"long path file\n")
    t.file("long/" + "z" * name_max, b"255-byte name\n")
    deep = "long/" + "/".join(["d%03d" % i + "q" * 96 for i in range(4)])
    p = "long"
    for comp in deep.split("/")[1:]:
        p += "/" + comp
        t.dir(p)
    t.file(deep + "/file-in-deep-path", b"deep long\n")
    # symlinks
    t.dir("links")
    t.symlink("links/rel", "../sizes/1")
    t.symlink("links/abs", "/etc/passwd")
    t.symlink("links/dangling", "nowhere/at/all")
    t.symlink("links/long", "x" * 150 + "/" + "y" * 150)
    t.symlink("links/dir", "../a")
    t.symlink("links/xattr", "rel", xattrs={"trusted.sym": b"on a symlink"})
    # hard links (several groups, including special files)
    t.dir("hard")
    t.file("hard/one", b"hard link group of three\n", mode=0o640, uid=7, gid=8)
    t.link("hard/two", "hard/one")
    t.link("a/b/three", "hard/one")
    t.file("hard/e1", b"")
    t.link("hard/e2", "hard/e1")
    t.node("hard/fifo1", "fifo", mode=0o600)
    t.link("hard/fifo2", "hard/fifo1")
    t.link("zlink-to-long", l2 + "/f")   # linkname > 100 bytes (sorts after long/)
    # devices and fifos
    t.dir("dev")
    t.node("dev/null", "chr", 1, 3, mode=0o666)
    t.node("dev/loop200", "blk", 7, 200, mode=0o660, gid=6)
    t.node("dev/maxdev", "chr", 4095, 1048575)
    t.node("dev/zero-zero", "chr", 0, 0, mode=0o644)
    t.node("dev/fifo", "fifo", mode=0o600)
    # xattrs
    t.dir("xattr", xattrs={"user.dir": b"on a dir", "trusted.dir": b"t"})
    t.file("xattr/file", b"x\n", xattrs={
        "user.foo": b"bar", "user.empty": b"", "user.bin": b"\x00\x01\xfe\xff",
        "trusted.t": b"trusted value"})
    t.file("xattr/cap", b"#!/bin/true\n", mode=0o755, xattrs={"security.capability": CAP})
    t.file("xattr/many", b"", xattrs={"user.k%02d" % i: b"v" * i for i in range(24)})
    t.file("xattr/bigval", b"", xattrs={"user.big": rnd(7, 1500)})
    for i in range(3):
        t.file("xattr/shared%d" % i, b"%d" % i, xattrs={"user.same": b"shared value",
                                                       "trusted.same": b"y"})
    t.node("xattr/fifo", "fifo", xattrs={"trusted.fifo": b"on a fifo"})
    # mtimes
    t.dir("times", mtime=1234567890 * SEC + 987654321)
    t.file("times/frac", b"", mtime=1234567890 * SEC + 123456789)
    t.file("times/neg", b"", mtime=-315619200 * SEC)
    t.file("times/neg-frac", b"", mtime=-2 * SEC + 500000000)
    t.file("times/zero", b"", mtime=0)
    t.file("times/y2038", b"", mtime=2147483648 * SEC)
    t.file("times/y2100", b"", mtime=4102444800 * SEC + 1)
    t.file("times/y2400", b"", mtime=13569465600 * SEC)  # > 8^11: base-256 in GNU
    t.symlink("times/sym-frac", "frac", mtime=1000000000 * SEC + 5)
    t.finish(root_mode=0o755, root_mtime=1500000000 * SEC + 42)


def make_ustar_tree(root, ctx):
    """Only what plain ustar can carry (no xattrs, ids < 2^21, names <= 100
    plus a 155-byte prefix, targets <= 100, times in 0..8^11)."""
    t = TreeMaker(root)
    t.dir("u")
    t.dir("u/" + "p" * 90)
    t.file("u/" + "p" * 90 + "/" + "n" * 99, b"prefix and name\n")
    t.file("u/small", b"small\n", mode=0o600, uid=1000, gid=100)
    t.file("u/4097", rnd(4097, 4097))
    t.file("u/suid", b"s", mode=0o4711)
    t.file("u/big-ids", b"", uid=2097151, gid=1048576)
    t.symlink("u/sym", "t" * 100)
    t.file("u/h1", b"hard\n")
    t.link("u/h2", "u/h1")
    t.node("u/chr", "chr", 136, 2)
    t.node("u/blk", "blk", 259, 65536)
    t.node("u/fifo", "fifo")
    t.dir("u/sticky", mode=0o1777)
    t.file("u/zero-time", b"", mtime=0)
    t.file("u/max-time", b"", mtime=(8**11 - 1) * SEC)
    t.finish(root_mode=0o711, root_mtime=1400000000 * SEC)


def _tree(ctx, name, maker):
    root = os.path.join(ctx.srcdir, name)
    if not os.path.exists(root + ".done"):
        maker(root, ctx)
        open(root + ".done", "w").close()
    return root


def gnutar(maker_name, maker, fmt, *extra):
    def build(ctx, out):
        src = _tree(ctx, maker_name, maker)
        args = ["tar", "-C", src, "--sort=name", "--numeric-owner",
                "--format=" + fmt, "-cf", out]
        if fmt in ("pax", "posix"):
            args[1:1] = ["--xattrs", "--xattrs-include=*"]
        ctx.run(args + list(extra) + ["."])
    return build


# ---------------------------------------------------------------------------
# sparse files

def make_sparse_tree(root, ctx):
    os.makedirs(root)

    def sparse(name, size, regions):
        with open(os.path.join(root, name), "wb") as f:
            f.truncate(size)
            for off, data in regions:
                f.seek(off)
                f.write(data)
        os.utime(os.path.join(root, name), ns=(1500000000 * SEC, 1500000000 * SEC))

    mib = 1 << 20
    sparse("holes", 40 * mib, [(0, b"a" * 4096), (5 * mib, rnd(1, 10000)),
                               (20 * mib + 123, rnd(2, 3000)), (30 * mib, rnd(3, 70000))])
    sparse("tail", 3 * mib, [(3 * mib - 100, rnd(4, 100))])
    sparse("allhole", 8 * mib, [])
    sparse("head", 2 * mib, [(0, rnd(5, 8192))])
    with open(os.path.join(root, "plain"), "wb") as f:
        f.write(b"not sparse\n")
    os.utime(os.path.join(root, "plain"), ns=(1500000000 * SEC, 1500000000 * SEC))
    os.utime(root, ns=(1500000000 * SEC, 1500000000 * SEC))


BIG_SIZE = 5 << 30


def make_big_tree(root, ctx):
    os.makedirs(root)
    gib = 1 << 30
    regions = [(0, rnd(10, 65536)), (1 * gib + 12345, rnd(11, 100000)),
               (2 * gib, b"\xff" * 4096), (3 * gib + 7, rnd(12, 777)),
               (4 * gib - 50000, rnd(13, 100000)),  # crosses 4 GiB
               (BIG_SIZE - 9000, rnd(14, 4000))]    # then a hole to the end
    p = os.path.join(root, "big5g")
    with open(p, "wb") as f:
        f.truncate(BIG_SIZE)
        for off, data in regions:
            f.seek(off)
            f.write(data)
    with open(os.path.join(root, "note"), "wb") as f:
        f.write(b"a 5 GiB sparse file lives here\n")
    for q in (p, os.path.join(root, "note"), root):
        os.utime(q, ns=(1500000000 * SEC, 1500000000 * SEC))


def sparse_tar(maker_name, maker, fmt, version=None):
    def build(ctx, out):
        src = _tree(ctx, maker_name, maker)
        args = ["tar", "-C", src, "--sort=name", "--numeric-owner", "--format=" + fmt]
        args.append("--sparse-version=" + version if version else "--sparse")
        ctx.run(args + ["-cf", out, "."])
    return build


# ---------------------------------------------------------------------------
# Python tarfile

def _ti(name, type_=tarfile.REGTYPE, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.mode = kw.pop("mode", 0o644)
    ti.mtime = kw.pop("mtime", 1600000000)
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def py_members(fmt):
    pax = fmt == tarfile.PAX_FORMAT
    gnu = fmt == tarfile.GNU_FORMAT
    ustar = fmt == tarfile.USTAR_FORMAT
    m = []

    def add(ti, data=None):
        if data is not None:
            ti.size = len(data)
        m.append((ti, data))

    add(_ti("py", tarfile.DIRTYPE, mode=0o755, mtime=1500000000.5 if pax else 1500000000))
    add(_ti("py/sub", tarfile.DIRTYPE, mode=0o2750, uid=1000, gid=1000))
    if gnu:
        # right after its directory: GNU tar -x fixes a directory's mtime when
        # it leaves it, so a later child would spoil the reference
        add(_ti("py/sub/after-gnu", uid=2**31, gid=2**32 - 2), b"")
    for n in (0, 1, 4096, 10000):
        add(_ti("py/size%d" % n, uid=1, gid=2), rnd(100 + n, n))
    if ustar:
        longname = "py/" + "q" * 90 + "/" + "r" * 99
        add(_ti("py/" + "q" * 90, tarfile.DIRTYPE))
    else:
        longname = "py/" + "L" * 150 + "/" + "M" * 150 + "/file"
    add(_ti(longname, mode=0o600), b"long name via tarfile\n")
    target = "T" * 100 if ustar else "T" * 200
    add(_ti("py/longsym", tarfile.SYMTYPE, linkname=target, mode=0o777))
    add(_ti("py/hardlong", tarfile.LNKTYPE, linkname="py/size1" if ustar else longname))
    add(_ti("py/chr", tarfile.CHRTYPE, devmajor=10, devminor=200, mode=0o620))
    add(_ti("py/blk", tarfile.BLKTYPE, devmajor=8, devminor=1, mode=0o660))
    add(_ti("py/fifo", tarfile.FIFOTYPE, mode=0o644))
    add(_ti("py/bigid", uid=100000 if ustar else 3000000,
            gid=200000 if ustar else 5000000), b"ids\n")
    add(_ti("py/\u00fcn\u00efc\u00f6d\u00e9"), "utf-8 name\n".encode())
    if not ustar:
        add(_ti("py/neg-mtime", mtime=-1000), b"")
        add(_ti("py/big-mtime", mtime=10000000000), b"")
    if pax:
        add(_ti("py/frac", mtime=1700000000.25), b"")
        ti = _ti("py/xattrs")
        ti.pax_headers = {"SCHILY.xattr.user.foo": "bar",
                          "SCHILY.xattr.user.utf8": "h\u00e9llo",
                          "SCHILY.xattr.trusted.nul": "a\x00b"}
        add(ti, b"with xattrs\n")
        ti = _ti("py/sub", tarfile.DIRTYPE, mode=0o2750, uid=1000, gid=1000)
        ti.pax_headers = {"SCHILY.xattr.user.dir": "x"}
        add(ti)  # same directory again, now with an xattr
    return m


def py_tar(fmt):
    def build(ctx, out):
        kw = {}
        if fmt == tarfile.PAX_FORMAT:
            kw["pax_headers"] = {"comment": "golden pax global header"}
        with tarfile.open(out, "w", format=fmt, **kw) as tf:
            for ti, data in py_members(fmt):
                tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return build


# ---------------------------------------------------------------------------
# hand-made

M0 = 1600000000


def _write(out, data):
    with open(out, "wb") as f:
        f.write(data)


def edge_root(ctx, out):
    _write(out, b"".join([
        T.entry("./", typeflag=b"5", mode=0o700, uid=1234, gid=4321, mtime=1111111111),
        T.entry("./f", b"root file\n", uid=1234),
        T.entry("./d/", typeflag=b"5", mode=0o751, mtime=M0 + 1),
        T.entry("./d/g", b"g\n", mtime=M0 + 2),
        T.END]))


def edge_order(ctx, out):
    _write(out, b"".join([
        T.entry("x/y/z/file", b"before its dirs\n", mtime=M0 + 1),
        T.entry("b", b"b\n", mtime=M0 + 2),
        T.entry("a", b"a\n", mtime=M0 + 3),
        T.entry("x/", typeflag=b"5", mode=0o750, uid=5, gid=6, mtime=M0 + 4),
        T.entry("x/y/", typeflag=b"5", mode=0o711, mtime=M0 + 5),
        T.entry("q/r", b"implicit q\n", mtime=M0 + 6),
        T.entry("s/t/u", typeflag=b"2", linkname="whatever", mode=0o777, mtime=M0 + 7),
        T.entry("dev/c", typeflag=b"3", devmajor=5, devminor=1, mode=0o600, mtime=M0 + 8),
        T.entry("x/y/z/file2", b"implicit z, explicit x and y\n", mtime=M0 + 9),
        T.END]))


def edge_dups(ctx, out):
    _write(out, b"".join([
        # file then file
        T.entry("ff", b"first", mode=0o600, uid=1, mtime=M0 + 1),
        # dir then dir, other mode: metadata updated, children kept
        T.entry("dd/", typeflag=b"5", mode=0o700, uid=1, mtime=M0 + 2),
        T.entry("dd/child", b"kept\n", mtime=M0 + 3),
        # file then dir
        T.entry("fd", b"becomes a dir", mtime=M0 + 4),
        # dir with children then file
        T.entry("df/", typeflag=b"5", mtime=M0 + 5),
        T.entry("df/kid1", b"gone\n", mtime=M0 + 6),
        T.entry("df/sub/kid2", b"gone too\n", mtime=M0 + 7),
        # symlink then file, file then symlink
        T.entry("sl", typeflag=b"2", linkname="a", mode=0o777, mtime=M0 + 8),
        T.entry("hf", b"replaced by a symlink", mtime=M0 + 9),
        # file replaced by a hard link to another file
        T.entry("rep", b"old content", mtime=M0 + 10),
        T.entry("src", b"link source\n", mode=0o640, uid=9, mtime=M0 + 11),
        # device then fifo
        T.entry("nod", typeflag=b"3", devmajor=1, devminor=1, mtime=M0 + 12),
        # now the later entries
        T.entry("ff", b"second, longer", mode=0o640, uid=2, gid=3, mtime=M0 + 20),
        T.entry("dd/", typeflag=b"5", mode=0o755, uid=3, gid=4, mtime=M0 + 21),
        T.entry("fd/", typeflag=b"5", mode=0o750, mtime=M0 + 22),
        T.entry("fd/kid", b"in the new dir\n", mtime=M0 + 23),
        T.entry("df", b"a file now\n", mode=0o604, mtime=M0 + 24),
        T.entry("sl", b"a file replacing a symlink\n", mtime=M0 + 25),
        T.entry("hf", typeflag=b"2", linkname="target-of-hf", mode=0o777, mtime=M0 + 26),
        T.entry("rep", typeflag=b"1", linkname="src", mtime=M0 + 27),
        T.entry("nod", typeflag=b"6", mode=0o640, mtime=M0 + 28),
        T.entry("dd/child2", b"after the second dir entry\n", mtime=M0 + 29),
        T.END]))


def edge_hardlinks(ctx, out):
    _write(out, b"".join([
        T.entry("h/", typeflag=b"5", mtime=M0),
        T.entry("h/target", b"shared inode\n", mode=0o640, uid=7, gid=8, mtime=M0 + 1),
        # the link entries' own metadata is ignored: the inode is the target's
        T.entry("h/l1", typeflag=b"1", linkname="h/target", mode=0o777, uid=99, mtime=M0 + 50),
        T.entry("h/l2", typeflag=b"1", linkname="./h/target", mtime=M0 + 51),
        T.entry("h/l3", typeflag=b"1", linkname="/h/l1", mtime=M0 + 52),
        T.entry("other/l4", typeflag=b"1", linkname="h/target", mtime=M0 + 53),
        T.entry("h/sym", typeflag=b"2", linkname="target", mode=0o777, mtime=M0 + 2),
        T.entry("h/sym-hard", typeflag=b"1", linkname="h/sym", mtime=M0 + 54),
        T.entry("h/dev", typeflag=b"3", devmajor=1, devminor=7, mode=0o600, mtime=M0 + 3),
        T.entry("h/dev-hard", typeflag=b"1", linkname="h/dev", mtime=M0 + 55),
        T.entry("h/empty", b"", mtime=M0 + 4),
        T.entry("h/empty2", typeflag=b"1", linkname="h/empty", mtime=M0 + 56),
        T.END]))


def edge_whiteouts(ctx, out):
    _write(out, b"".join([
        T.entry("wd/", typeflag=b"5", mtime=M0),
        T.entry("wd/keep", b"kept\n", mtime=M0 + 1),
        T.entry("wd/.wh.gone", b"", mtime=M0 + 2),
        T.entry(".wh.rootgone", b"", mtime=M0 + 3),
        T.entry("opq/", typeflag=b"5", mode=0o750, mtime=M0 + 4),
        T.entry("opq/.wh..wh..opq", b"", mtime=M0 + 5),
        T.entry("opq/keep", b"in an opaque dir\n", mtime=M0 + 6),
        T.entry("opq2/", typeflag=b"5", mtime=M0 + 7),
        T.entry("opq2/.wh..wh..opq", b"", mtime=M0 + 8),
        T.entry("opq2/.wh.x", b"", mtime=M0 + 9),
        T.entry("imp/.wh.y", b"", mtime=M0 + 10),
        T.entry("deep/a/b/.wh..wh..opq", b"", mtime=M0 + 11),
        T.entry("wd/sub/", typeflag=b"5", mtime=M0 + 12),
        T.entry("wd/sub/.wh.z", b"", mode=0o600, mtime=M0 + 13),
        T.END]))


def edge_paths(ctx, out):
    _write(out, b"".join([
        T.entry("/abs/file", b"leading slash\n", mtime=M0 + 1),
        T.entry("./dot/file", b"leading dot-slash\n", mtime=M0 + 2),
        T.entry("a/", typeflag=b"5", mtime=M0 + 3),
        T.entry("a/./b", b"a/./b\n", mtime=M0 + 4),
        T.entry("a/../c", b"a/../c\n", mtime=M0 + 5),
        T.entry("p//q", b"double slash\n", mtime=M0 + 6),
        T.entry("trail//", typeflag=b"5", mode=0o700, mtime=M0 + 7),
        T.entry("././dd/./ee/", typeflag=b"5", mode=0o711, mtime=M0 + 8),
        T.entry("/./abs2/../abs3/x", b"mixed\n", mtime=M0 + 9),
        T.END]))


def edge_typeflags(ctx, out):
    _write(out, b"".join([
        T.entry("volume label", typeflag=b"V", mtime=M0),
        T.entry("nul-type", b"typeflag NUL\n", typeflag=b"\0", mtime=M0 + 1),
        T.entry("seven", b"typeflag 7\n", typeflag=b"7", mode=0o755, mtime=M0 + 2),
        T.entry("vendor", rnd(77, 700), typeflag=b"Q", mtime=M0 + 3),
        T.entry("after", b"after the skipped entries\n", mtime=M0 + 4),
        T.END]))


def edge_encodings(ctx, out):
    longp = "pax/" + "P" * 200 + "/" + "Q" * 100
    longt = "/" + "t" * 299
    gnul = "gnul/" + "G" * 200
    _write(out, b"".join([
        T.entry("b256-size", b"12345", b256=("size",), mtime=M0 + 1),
        T.entry("b256-ids", b"", uid=3000000, gid=70000, b256=("uid", "gid"), mtime=M0 + 2),
        T.entry("b256-small", b"", uid=7, gid=8, b256=("uid", "gid"), mtime=M0 + 3),
        T.entry("b256-neg-mtime", b"", mtime=-100000, b256=("mtime",)),
        T.entry("b256-big-mtime", b"", mtime=1 << 34, b256=("mtime",)),
        T.entry("caf\u00e9-signed", b"signed checksum\n", chksum="signed", mtime=M0 + 4),
        T.entry(b"caf\xe9-unsigned", b"unsigned, latin-1 name\n", mtime=M0 + 5),
        T.entry("spaces", b"hello", raw={"mode": b"000644 \0", "size": b"00000000005 ",
                                         "uid": b"      0 ", "mtime": b"13727410000 "}),
        T.entry("gnumagic", b"gnu magic\n", magic=T.GNU_MAGIC, mtime=M0 + 6),
        T.pax([("path", longp), ("uid", "5000000"), ("gid", "6000000"),
               ("mtime", "1700000000.987654321"), ("atime", "1.5"), ("ctime", "2"),
               ("GOLDEN.ignored", "1"), ("comment", "hi"),
               ("SCHILY.xattr.user.x", "1"), ("LIBARCHIVE.xattr.user.lib", "bGlidmFs")]),
        T.entry("pax/PPPP", b"long pax path\n", mtime=M0 + 7),
        T.pax([("size", "11")]),
        T.entry("pax-size", b"eleven byte", size=0, mtime=M0 + 8),
        T.pax([("linkpath", longt)]),
        T.entry("pax-sym", typeflag=b"2", linkname="short", mode=0o777, mtime=M0 + 9),
        T.pax([("comment", "a global header in the middle")], typeflag=b"g"),
        T.gnu_long(gnul),
        T.gnu_long(longt + "/gnu", typeflag=b"K"),
        T.entry("gnul/GGG", typeflag=b"2", linkname="x", mode=0o777, magic=T.GNU_MAGIC,
                mtime=M0 + 10),
        T.gnu_long("gnul/" + "F" * 200),
        T.entry("gnul/file", b"gnu long name\n", magic=T.GNU_MAGIC, mtime=M0 + 11),
        T.END]))


def edge_trailing_base():
    return b"".join([
        T.entry("t/", typeflag=b"5", mtime=M0),
        T.entry("t/file", b"content\n", mtime=M0 + 1),
        T.END])


def edge_trailing(ctx, out):
    _write(out, edge_trailing_base() + b"trailing garbage after the end marker\n" * 80
           + bytes(100) + b"\xff")


# ---------------------------------------------------------------------------

COMP = ("gzip", "zstd")

FIXTURES = [
    Fixture("gnutar-pax", gnutar("full", make_full_tree, "pax"), tar_ref=True, compress=COMP,
            desc="GNU tar --format=pax --xattrs of the full tree"),
    Fixture("gnutar-gnu", gnutar("full", make_full_tree, "gnu"), tar_ref=True, compress=COMP,
            desc="GNU tar --format=gnu (L/K long names, base-256 ids and times)"),
    Fixture("gnutar-ustar", gnutar("ustar", make_ustar_tree, "ustar"), tar_ref=True,
            desc="GNU tar --format=ustar (prefix field)"),
    Fixture("gnutar-forced", gnutar("ustar", make_ustar_tree, "gnu", "--mtime=@1500000000",
                                    "--owner=+4242", "--group=+4343"), tar_ref=True,
            desc="GNU tar --mtime --owner --group"),
    Fixture("py-pax", py_tar(tarfile.PAX_FORMAT), tar_ref=True, compress=COMP,
            desc="tarfile PAX_FORMAT with a global header and SCHILY.xattr"),
    Fixture("py-gnu", py_tar(tarfile.GNU_FORMAT), tar_ref=True,
            desc="tarfile GNU_FORMAT (L/K, base-256)"),
    Fixture("py-ustar", py_tar(tarfile.USTAR_FORMAT), tar_ref=True,
            desc="tarfile USTAR_FORMAT"),
    Fixture("sparse-pax-1.0", sparse_tar("sparse", make_sparse_tree, "pax"), tar_ref=True,
            compress=COMP, desc="GNU tar --sparse, PAX sparse 1.0"),
    Fixture("sparse-pax-0.0", sparse_tar("sparse", make_sparse_tree, "pax", "0.0"),
            tar_ref=True, desc="PAX sparse 0.0"),
    Fixture("sparse-pax-0.1", sparse_tar("sparse", make_sparse_tree, "pax", "0.1"),
            tar_ref=True, desc="PAX sparse 0.1"),
    Fixture("sparse-gnu", sparse_tar("sparse", make_sparse_tree, "gnu"), tar_ref=True,
            desc="old GNU sparse 'S'"),
    Fixture("sparse-5g-pax", sparse_tar("big", make_big_tree, "pax"), tar_ref=True, big=True,
            desc="5 GiB sparse file, PAX sparse 1.0"),
    Fixture("sparse-5g-gnu", sparse_tar("big", make_big_tree, "gnu"), tar_ref=True, big=True,
            desc="5 GiB sparse file, old GNU sparse 'S' with extension blocks"),
    Fixture("edge-root", edge_root, desc="'./' root entry: mode 0700, uid 1234"),
    Fixture("edge-order", edge_order, desc="entries before their directories"),
    Fixture("edge-dups", edge_dups, compress=COMP, desc="later entries win"),
    Fixture("edge-hardlinks", edge_hardlinks, desc="hard links to earlier entries"),
    Fixture("edge-whiteouts", edge_whiteouts, compress=COMP, desc="OCI whiteouts, opaque dirs"),
    Fixture("edge-paths", edge_paths, desc="path normalisation"),
    Fixture("edge-typeflags", edge_typeflags, warn=True,
            desc="typeflags NUL and 7; unknown V and Q skipped with a warning"),
    Fixture("edge-encodings", edge_encodings,
            desc="base-256, checksum variants, pax and GNU long names, LIBARCHIVE.xattr"),
    Fixture("edge-trailing", edge_trailing, compress=COMP,
            desc="data after the end-of-archive marker"),
]

BY_NAME = {f.name: f for f in FIXTURES}
