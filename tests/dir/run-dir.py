#!/usr/bin/python3
"""Tests of `erofs-layer convert --dir`: host directory trees -> EROFS images,
judged by `erofs-layer check`, fsck.erofs and the kernel (the image mounted
with `mount -t erofs -o ro,loop` and compared with the source tree attribute by
attribute), and an overlay upper directory (`--overlay-upper`) judged by the
overlayfs view it reproduces when stacked on the old layer.

    run-dir.py --erofs-layer PATH --workdir DIR [--only PATTERN]... [--keep]
               [--no-big] [--list] [--verbose]

Prints `ok NAME` or `FAIL NAME: reason` (with details) per case, then
`N passed, M failed[, K skipped]`. Exit status: 0 all passed, 1 some failed,
77 cannot run here (not root, no loop devices, no erofs or overlay in the
kernel, a tool missing). Python 3 standard library only.
"""

import argparse
import contextlib
import fnmatch
import hashlib
import os
import random
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "golden"))

import treecmp  # noqa: E402
from sysutil import CmdError, loops_backed_by, mounts_under, run, tail, umount  # noqa: E402

SUBDIRS = ("src", "img", "mnt", "tmp")
MAX_DETAILS = 12
SB = 1024
SB_UUID = SB + 48
EXIT_BADINPUT = 3
EXIT_USAGE = 2
GIB = 1 << 30


class CaseFailed(Exception):
    def __init__(self, reason, details=()):
        super().__init__(reason)
        self.reason = reason
        self.details = list(details)


class CaseSkipped(Exception):
    pass


def fail(reason, details=()):
    raise CaseFailed(reason, details)


def check(cond, reason, details=()):
    if not cond:
        fail(reason, details)


# ---------------------------------------------------------------------------

class Ctx:
    def __init__(self, args):
        self.args = args
        self.workdir = os.path.realpath(args.workdir)
        for d in SUBDIRS:
            setattr(self, d + "dir", os.path.join(self.workdir, d))
        self.el = os.path.realpath(args.erofs_layer)
        self.mounts = []
        self.seq = 0
        self.t0 = time.time()

    def log(self, msg):
        if self.args.verbose:
            print("#   %6.1fs %s" % (time.time() - self.t0, msg), flush=True)

    # -- mounts (every one registered, so that every exit path unmounts) --
    def mp(self, name):
        self.seq += 1
        p = os.path.join(self.mntdir, "%s.%d" % (name, self.seq))
        os.makedirs(p)
        return p

    def mount(self, fstype, src, mp, opts):
        args = ["mount", "-t", fstype] + (["-o", opts] if opts else []) + [src, mp]
        run(args, timeout=120)
        self.mounts.append(mp)
        return mp

    def bind(self, src, mp):
        run(["mount", "--bind", src, mp], timeout=60)
        self.mounts.append(mp)
        return mp

    def umount(self, mp):
        try:
            umount(mp)
        finally:
            if mp in self.mounts:
                self.mounts.remove(mp)

    def umount_all(self):
        errors = []
        for mp in list(reversed(self.mounts)):
            try:
                self.umount(mp)
            except CmdError as e:
                errors.append(str(e))
        return errors

    @contextlib.contextmanager
    def mounted(self, image, name="img"):
        mp = self.mount("erofs", image, self.mp(name), "ro,loop")
        try:
            yield mp
        finally:
            self.umount(mp)

    # -- the tool --
    def convert(self, src, out, *extra, ok=True):
        p = run([self.el, "convert", "--dir", src, "-o", out] + list(extra), check=False,
                timeout=600)
        if ok and p.returncode != 0:
            fail("convert --dir %s exited %d" % (os.path.basename(src), p.returncode),
                 [tail(p.stderr)])
        return p

    def check_image(self, image):
        p = run([self.el, "check", image], check=False, timeout=600)
        check(p.returncode == 0, "erofs-layer check exited %d" % p.returncode,
              [tail(p.stdout + p.stderr)])
        # fsck.erofs 1.5 recurses with a path buffer per level: a deep
        # tree overflows the default 8 MiB stack
        p = subprocess.run(["fsck.erofs", image], capture_output=True, timeout=600,
                           preexec_fn=big_stack)
        check(p.returncode == 0, "fsck.erofs exited %d" % p.returncode,
              [tail(p.stdout + p.stderr)])

    def fresh(self, name):
        """An empty source directory for a case."""
        d = os.path.join(self.srcdir, name)
        if os.path.lexists(d):
            rmtree(d)
        os.makedirs(d)
        return d

    def image(self, name):
        return os.path.join(self.imgdir, name + ".erofs")


def big_stack():
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    want = 1 << 30
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    if soft == resource.RLIM_INFINITY or soft < want:
        resource.setrlimit(resource.RLIMIT_STACK, (want, hard))


def rmtree(path):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        shutil.rmtree(path)
    finally:
        sys.setrecursionlimit(old)


def fields(stdout):
    out = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(" ")
        out[k] = v
    return out


def snapshot(root):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, 20000))
    try:
        return treecmp.snapshot_dir(root)
    finally:
        sys.setrecursionlimit(old)


def compare(expected, actual, label):
    diffs = treecmp.compare(expected, actual, label)
    if diffs:
        fail("%s: %d difference(s)" % (label, len(diffs)), diffs)


def drop(snap, *paths):
    """The snapshot without these paths and everything below them."""
    out = {}
    for p, r in snap.items():
        if any(p == q or p.startswith(q + "/") for q in paths):
            continue
        out[p] = r
    return out


def convert_and_compare(ctx, src, name, expected=None, extra=(), warn_expect=()):
    """Convert src, check the image, mount it and compare with `expected`
    (default: the snapshot of src). Returns (stdout fields, stderr text)."""
    if expected is None:
        expected = snapshot(src)
    img = ctx.image(name)
    ctx.log("convert %s" % name)
    p = ctx.convert(src, img, *extra)
    f = fields(p.stdout)
    err = p.stderr.decode("utf-8", "replace")
    for k in ("entries", "data_bytes", "inodes", "image_bytes"):
        check(k in f and f[k].isdigit(), "stdout lacks a numeric '%s' line" % k,
              [tail(p.stdout)])
    check(int(f["image_bytes"]) == os.path.getsize(img),
          "image_bytes %s but the file has %d bytes" % (f["image_bytes"],
                                                        os.path.getsize(img)))
    for w in warn_expect:
        check(w in err, "no warning mentioning %r" % w, [tail(err)])
    ctx.log("check %s" % name)
    ctx.check_image(img)
    ctx.log("mount %s" % name)
    with ctx.mounted(img) as mp:
        actual = snapshot(mp)
    ctx.log("compare %s" % name)
    compare(expected, actual, name)
    check(int(f["inodes"]) == treecmp.distinct_inodes(actual),
          "inodes %s but the mounted tree has %d" % (f["inodes"],
                                                      treecmp.distinct_inodes(actual)))
    return f, err, img


# ---------------------------------------------------------------------------
# building trees

def write(path, data=b"", mode=None, dir_fd=None):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644,
                 dir_fd=dir_fd)
    try:
        if data:
            os.write(fd, data)
    finally:
        os.close(fd)
    if mode is not None:
        os.chmod(path, mode, dir_fd=dir_fd)


def acl(entries):
    """A POSIX ACL xattr value: version 2, (tag, perm, id) entries."""
    out = struct.pack("<I", 2)
    for tag, perm, ident in entries:
        out += struct.pack("<HHI", tag, perm, ident)
    return out


UNDEF = 0xFFFFFFFF
ACL_FILE = acl([(0x01, 6, UNDEF), (0x02, 4, 1000), (0x04, 4, UNDEF), (0x10, 4, UNDEF),
                (0x20, 4, UNDEF)])
ACL_DIR = acl([(0x01, 7, UNDEF), (0x04, 5, UNDEF), (0x08, 5, 100), (0x10, 5, UNDEF),
               (0x20, 5, UNDEF)])
# VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, permitted CAP_NET_BIND_SERVICE
CAPS = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)

MTIMES = [
    (1700000000, 0), (1700000000, 0), (1700000000, 0),
    (1700000000, 123456789), (0, 0), (-1, 5), (4102444800, 999999999),
    (1234567890, 1), (2147483647, 0), (2147483648, 500),
]


def set_times(root, seed=1):
    """Deterministic mtimes (sec+nsec, some before 1970 or after 2038) on
    every entry, chosen by relative path, directories bottom-up, the root
    last."""
    broot = os.fsencode(root)

    def t(path):
        rel = os.path.relpath(os.fsencode(path), broot)
        h = hashlib.sha256(b"%d:" % seed + rel).digest()
        sec, nsec = MTIMES[h[0] % len(MTIMES)]
        ns = sec * 10**9 + nsec
        os.utime(path, ns=(ns, ns), follow_symlinks=False)

    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for n in sorted(filenames) + sorted(x for x in dirnames
                                            if os.path.islink(os.path.join(dirpath, x))):
            p = os.path.join(dirpath, n)
            if not stat.S_ISSOCK(os.lstat(p).st_mode):
                t(p)
        for n in sorted(dirnames):
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                t(p)
    t(root)


def build_all_types(root):
    """Every file type, mode bit, owner, xattr namespace and name shape."""
    j = lambda *a: os.path.join(root, *a)  # noqa: E731
    rnd = random.Random(7)
    # regular files, sizes around block and chunk boundaries
    write(j("empty"))
    write(j("one"), b"1")
    for n in (4095, 4096, 4097, (1 << 20) + 1):
        write(j("b%d" % n), bytes(rnd.getrandbits(8) for _ in range(min(n, 5000))) * (n // 5000)
              + bytes(rnd.getrandbits(8) for _ in range(n % 5000)))
    write(j("rand3m"), rnd.randbytes(3 << 20))
    # a small sparse file: hole, data, hole
    fd = os.open(j("sparse-small"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.pwrite(fd, b"x" * 5000, (3 << 20) + 7)
    os.ftruncate(fd, 10 << 20)
    os.close(fd)
    # modes and owners (chown first: it clears set-id bits)
    for name, mode, owner in (("setuid", 0o4755, None), ("setgid", 0o2755, (0, 100)),
                              ("all-bits", 0o7777, None), ("no-bits", 0o000, None),
                              ("owned", 0o640, (1000, 100)),
                              ("big-ids", 0o644, (4294967294, 65537))):
        write(j(name), name.encode())
        if owner:
            os.chown(j(name), *owner)
        os.chmod(j(name), mode)
    os.mkdir(j("tmp"))
    os.chmod(j("tmp"), 0o1777)
    os.mkdir(j("private"), 0o700)
    os.chown(j("private"), 123, 456)
    os.mkdir(j("emptydir"))
    # hard links across directories, the first name not the first in any order
    os.makedirs(j("sub", "deeper"))
    write(j("sub", "m-first"), b"linked data\n")
    os.link(j("sub", "m-first"), j("a-hard"))
    os.link(j("sub", "m-first"), j("sub", "deeper", "z-hard"))
    # a hard-linked symlink and fifo
    os.symlink("somewhere", j("sub", "sl"))
    os.link(j("sub", "sl"), j("sub", "sl-link"), follow_symlinks=False)
    os.mkfifo(j("sub", "fifo"))
    os.link(j("sub", "fifo"), j("sub", "fifo-link"))
    # symlinks
    os.symlink("target/with/slashes", j("sl"))
    os.symlink("/etc/passwd", j("sl-abs"))
    os.symlink("../../outside", j("sl-dotdot"))
    os.symlink("t" * 4095, j("sl-long"))
    os.symlink("emptydir", j("sl-dir"))
    # devices and fifos
    os.mknod(j("null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(j("bigdev"), 0o600 | stat.S_IFCHR, os.makedev(4095, 1048575))
    os.mknod(j("blk"), 0o660 | stat.S_IFBLK, os.makedev(7, 200))
    os.mkfifo(j("fifo"), 0o640)
    # a character device 0:0 in a plain tree: stored as is (it is what a
    # whiteout is), so its directory gets the overlay origin marker
    os.mkdir(j("wh"))
    os.mknod(j("wh", "gone"), stat.S_IFCHR, os.makedev(0, 0))
    write(j("wh", "kept"), b"k")
    # names: long, non-UTF-8, control characters, OCI whiteout-like (plain
    # mode: ordinary names)
    write(j("n" * 255), b"long name")
    os.mkdir(j("D" * 255))
    write(j("D" * 255, "f" * 255), b"long path")
    write(os.path.join(os.fsencode(root), b"latin-\xff\xfe"), b"bytes")
    write(j("new\nline"), b"nl")
    write(j(" space "), b"sp")
    os.mkdir(j("whnames"))
    write(j("whnames", ".wh.ghost"), b"not a whiteout")
    write(j("whnames", ".wh..wh..opq"), b"not opaque")
    os.mkdir(j("whnames", ".wh.dir"))
    # xattrs of every namespace the image keeps, on every type
    write(j("x-user"))
    os.setxattr(j("x-user"), "user.a", b"1")
    os.setxattr(j("x-user"), "user.empty", b"")
    os.setxattr(j("x-user"), "user.big", bytes(range(256)) * 11)
    write(j("x-trusted"))
    os.setxattr(j("x-trusted"), "trusted.foo", b"bar")
    os.setxattr(j("x-trusted"), "trusted.overlay.origin", b"\x00\xfb\x21\x01")
    os.mkdir(j("x-dir"))
    os.setxattr(j("x-dir"), "user.d", b"dir")
    os.setxattr(j("x-dir"), "trusted.overlay.opaque", b"y")
    write(j("x-dir", "inside"), b"i")
    write(j("x-cap"), b"cap")
    os.chmod(j("x-cap"), 0o755)
    os.setxattr(j("x-cap"), "security.capability", CAPS)
    write(j("x-acl"), b"acl")
    os.setxattr(j("x-acl"), "system.posix_acl_access", ACL_FILE)
    os.mkdir(j("x-acldir"))
    os.setxattr(j("x-acldir"), "system.posix_acl_default", ACL_DIR)
    os.symlink("x-user", j("x-sl"))
    os.setxattr(j("x-sl"), "trusted.sl", b"s", follow_symlinks=False)
    os.mkfifo(j("x-fifo"))
    os.setxattr(j("x-fifo"), "trusted.f", b"f")
    os.mknod(j("x-chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    os.setxattr(j("x-chr"), "trusted.c", b"c")
    os.setxattr(root, "user.root", b"r")
    os.chmod(root, 0o750)
    os.chown(root, 11, 22)
    # a socket: skipped with a warning
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(j("sock"))
    finally:
        s.close()
    set_times(root)


def case_all_types(ctx):
    src = ctx.fresh("all-types")
    build_all_types(src)
    exp = drop(snapshot(src), "sock")
    exp["wh"]["xattrs"]["trusted.overlay.origin"] = b""
    f, err, _ = convert_and_compare(ctx, src, "all-types", exp, warn_expect=("sock",))
    # entries: every path walked (the socket is not one)
    check(int(f["entries"]) == len(exp), "entries %s, expected %d" % (f["entries"], len(exp)))


def build_wide(root, names, order):
    os.makedirs(os.path.join(root, "wide"))
    for i in order:
        n = names[i]
        p = os.path.join(root, "wide", n)
        if i % 7 == 0:
            os.mkdir(p)
            write(os.path.join(p, "f"), n.encode())
        elif i % 11 == 0:
            os.symlink(n, p)
        else:
            write(p, n.encode() * (i % 5))
        if i % 13 == 0:
            os.setxattr(p, "trusted.i", str(i).encode(), follow_symlinks=False)
    for i in (1, 2, 3, 4, 5, 6, 8):
        n = names[i]
        os.link(os.path.join(root, "wide", n), os.path.join(root, "hl-" + n))
    write(os.path.join(root, "top"), b"top")
    os.chmod(root, 0o755)
    set_times(root, seed=3)


def wide_names():
    rnd = random.Random(11)
    names = set()
    while len(names) < 3000:
        n = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyzABC0123_-.") for _ in
                    range(rnd.randrange(1, 40)))
        if n not in (".", ".."):
            names.add(n)
    return sorted(names)


def case_wide_reproducible(ctx):
    """Many names in one directory; the same tree made in a different order on
    another file system (tmpfs lists in creation order, ext4 in hash order)
    gives the same image bytes; so does converting twice."""
    names = wide_names()
    order = list(range(len(names)))
    random.Random(5).shuffle(order)
    a = ctx.fresh("wide-a")
    build_wide(a, names, order)
    convert_and_compare(ctx, a, "wide-a")
    tm = ctx.mount("tmpfs", "tmpfs", ctx.mp("tmpfs"), "size=256m,mode=0755")
    b = os.path.join(tm, "wide-b")
    os.mkdir(b)
    build_wide(b, names, list(reversed(order)))
    la = os.listdir(os.path.join(a, "wide"))
    lb = os.listdir(os.path.join(b, "wide"))
    check(la != lb, "readdir orders are the same: the case proves nothing")
    compare(snapshot(a), snapshot(b), "trees a and b")
    imgs = []
    for i, src in enumerate((a, b, a)):
        img = ctx.image("wide-rep%d" % i)
        ctx.convert(src, img)
        imgs.append(img)
    digests = [hashlib.sha256(open(p, "rb").read()).hexdigest() for p in imgs]
    check(len(set(digests)) == 1, "images differ", ["%s %s" % (os.path.basename(p), d)
                                                   for p, d in zip(imgs, digests)])
    ctx.umount(tm)


def case_sparse_5g(ctx):
    if ctx.args.no_big:
        raise CaseSkipped("--no-big")
    src = ctx.fresh("sparse-5g")
    p = os.path.join(src, "big")
    write_sparse_5g(p)
    write(os.path.join(src, "small"), b"small")
    set_times(src, seed=9)
    f, _, img = convert_and_compare(ctx, src, "sparse-5g")
    used = os.stat(img).st_blocks * 512
    check(used < 64 << 20, "the image uses %d bytes on disk: holes were written" % used)
    check(int(f["data_bytes"]) < 64 << 20, "data_bytes %s: holes were read" % f["data_bytes"])
    os.unlink(img)
    os.unlink(p)


def make_chain(root, depth, name="d"):
    """root/d/d/.../d (depth levels), made relative to directory fds; returns
    an fd of the deepest directory."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        nfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd


def case_deep(ctx):
    """A tree about 2000 levels deep: paths near the 4096-byte limit, far
    more directories than open files allowed at once."""
    src = ctx.fresh("deep")
    longest = max(len(src), len(os.path.join(ctx.mntdir, "img.999")))
    depth = (4090 - longest - len("/bottom")) // 2
    fd = make_chain(src, depth)
    try:
        write("bottom", b"at the bottom\n", dir_fd=fd)
        os.symlink("bottom", "sl", dir_fd=fd)
    finally:
        os.close(fd)
    # a hard link between the bottom and the top (breadth first, the top
    # name is met first), and a second chain beside the first
    fd = make_chain(src, 100, "e")
    os.close(fd)
    os.link(os.path.join(src, "d" * 1 + "/d" * (depth - 1), "bottom"),
            os.path.join(src, "top-link"))
    write(os.path.join(src, "z-top"), b"z")
    f, _, _ = convert_and_compare(ctx, src, "deep")
    check(int(f["entries"]) == depth + 100 + 5, "entries %s, expected %d"
          % (f["entries"], depth + 100 + 5))
    rmtree(src)


def case_path_limit(ctx):
    """A path of exactly 4096 bytes converts; one of 4097 fails, naming it,
    and leaves no output behind."""
    src = ctx.fresh("path-limit")
    comp = ["%c" % (ord("a") + i) * 240 for i in range(17)]  # 17*240 + 16 = 4096
    fd = make_chain_names(src, comp[:16])
    try:
        write(comp[16], b"limit\n", dir_fd=fd)
    finally:
        os.close(fd)
    img = ctx.image("path-limit")
    ctx.convert(src, img)
    ctx.check_image(img)
    with ctx.mounted(img) as mp:
        fd = os.open(mp, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for c in comp[:16]:
                nfd = os.open(c, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = nfd
            rfd = os.open(comp[16], os.O_RDONLY, dir_fd=fd)
            data = os.read(rfd, 100)
            os.close(rfd)
        finally:
            os.close(fd)
    check(data == b"limit\n", "the 4096-byte path reads %r" % data)
    # one byte more
    fd = make_chain_names(src, comp[:16])
    try:
        write("Z" * 241, b"over\n", dir_fd=fd)
    finally:
        os.close(fd)
    outdir = os.path.join(ctx.tmpdir, "path-limit-out")
    os.makedirs(outdir, exist_ok=True)
    p = ctx.convert(src, os.path.join(outdir, "img.erofs"), ok=False)
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode == EXIT_BADINPUT, "exit %d, expected %d" % (p.returncode, EXIT_BADINPUT),
          [tail(err)])
    check("Z" * 40 in err and "4097" in err and comp[0][:40] in err,
          "the error does not name the path and its length", [tail(err)])
    check(os.listdir(outdir) == [], "left behind: %s" % os.listdir(outdir))
    rmtree(src)


def make_chain_names(root, names):
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for n in names:
        try:
            os.mkdir(n, dir_fd=fd)
        except FileExistsError:
            pass
        nfd = os.open(n, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd


def case_mounts_skipped(ctx):
    """Another file system mounted inside, and bind mounts of the same file
    system (same st_dev): all skipped with a warning, never entered."""
    src = ctx.fresh("mounts")
    j = lambda *a: os.path.join(src, *a)  # noqa: E731
    for d in ("tmpfs-mp", "bind-dir", "real", "other"):
        os.mkdir(j(d))
    write(j("real", "file"), b"real")
    write(j("other", "o"), b"o")
    write(j("bind-file"), b"under the bind")
    write(j("source-file"), b"bound")
    set_times(src, seed=4)
    exp = drop(snapshot(src), "tmpfs-mp", "bind-dir", "bind-file")
    ctx.mount("tmpfs", "tmpfs", j("tmpfs-mp"), "size=1m")
    write(j("tmpfs-mp", "hidden"), b"h")
    ctx.bind(j("other"), j("bind-dir"))
    ctx.bind(j("source-file"), j("bind-file"))
    check(os.lstat(j("bind-dir")).st_dev == os.lstat(src).st_dev, "bind mount changed st_dev")
    convert_and_compare(ctx, src, "mounts", exp,
                        warn_expect=("tmpfs-mp: skipped", "bind-dir: skipped",
                                     "bind-file: skipped"))


def case_uuid_epoch(ctx):
    src = ctx.fresh("uuid")
    write(os.path.join(src, "f"), b"f")
    set_times(src)
    img = ctx.image("uuid")
    u = "0123456789abcdef0011223344556677"
    ctx.convert(src, img, "--uuid", u, "--epoch", "1700000000")
    with open(img, "rb") as f:
        f.seek(SB_UUID)
        got = f.read(16).hex()
    check(got == u, "superblock uuid %s, expected %s" % (got, u))
    convert_and_compare(ctx, src, "uuid2", extra=("--uuid", u, "--epoch", "0"))
    # derived: version 5 layout, stable, different for different content
    ctx.convert(src, img)
    with open(img, "rb") as f:
        f.seek(SB_UUID)
        u1 = f.read(16)
    check(u1[6] >> 4 == 5 and u1[8] >> 6 == 2, "derived uuid %s is not a v5 layout" % u1.hex())
    write(os.path.join(src, "f"), b"g")
    os.utime(os.path.join(src, "f"), ns=(0, 0))
    os.utime(src, ns=(0, 0))
    ctx.convert(src, img)
    with open(img, "rb") as f:
        f.seek(SB_UUID)
        u2 = f.read(16)
    check(u1 != u2, "different content, same derived uuid %s" % u1.hex())


def case_bad_input(ctx):
    out = os.path.join(ctx.tmpdir, "bad-out")
    os.makedirs(out, exist_ok=True)
    p = ctx.convert(os.path.join(ctx.srcdir, "does-not-exist"), os.path.join(out, "x.erofs"),
                    ok=False)
    check(p.returncode == EXIT_BADINPUT, "missing dir: exit %d" % p.returncode, [tail(p.stderr)])
    f = os.path.join(ctx.tmpdir, "a-file")
    write(f, b"x")
    p = ctx.convert(f, os.path.join(out, "x.erofs"), ok=False)
    check(p.returncode == EXIT_BADINPUT, "a file as --dir: exit %d" % p.returncode,
          [tail(p.stderr)])
    p = run([ctx.el, "convert", "--overlay-upper", "-o", os.path.join(out, "x.erofs"), f],
            check=False)
    check(p.returncode == EXIT_USAGE, "--overlay-upper without --dir: exit %d" % p.returncode)
    p = run([ctx.el, "convert", "--dir", ctx.srcdir, "-o", os.path.join(out, "x.erofs"), f],
            check=False)
    check(p.returncode == EXIT_USAGE, "--dir and an INPUT: exit %d" % p.returncode)
    # a failure in the middle of the walk leaves nothing behind
    src = ctx.fresh("bad-redirect")
    write(os.path.join(src, "f"), b"f")
    os.mkdir(os.path.join(src, "up"))
    os.setxattr(os.path.join(src, "up"), "trusted.overlay.redirect", b"/elsewhere")
    p = ctx.convert(src, os.path.join(out, "x.erofs"), "--overlay-upper", ok=False)
    check(p.returncode == EXIT_BADINPUT and b"up: " in p.stderr and b"redirect" in p.stderr,
          "redirect xattr: exit %d" % p.returncode, [tail(p.stderr)])
    check(os.listdir(out) == [], "left behind: %s" % os.listdir(out))


def case_overlay_xattrs(ctx):
    """A hand-made upper directory: which trusted.overlay.* xattrs survive."""
    src = ctx.fresh("ovl-xattrs")
    j = lambda *a: os.path.join(src, *a)  # noqa: E731
    os.mkdir(j("impure"))
    os.setxattr(j("impure"), "trusted.overlay.impure", b"y")
    os.setxattr(j("impure"), "trusted.overlay.origin", b"\x00\xfb\x1d\x01\x81")
    write(j("impure", "copied"), b"c")
    os.setxattr(j("impure", "copied"), "trusted.overlay.origin", b"\x00\xfb\x1d\x01\x82")
    os.setxattr(j("impure", "copied"), "trusted.overlay.nlink", b"U+1")
    os.setxattr(j("impure", "copied"), "user.keep", b"k")
    os.setxattr(j("impure", "copied"), "trusted.overlay.overlay.esc", b"escaped")
    os.mkdir(j("opq"))
    os.setxattr(j("opq"), "trusted.overlay.opaque", b"y")
    write(j("opq", "new"), b"n")
    os.mkdir(j("withwh"))
    os.mknod(j("withwh", "gone"), stat.S_IFCHR, os.makedev(0, 0))
    os.mknod(j("withwh", "gone2"), stat.S_IFCHR, os.makedev(0, 0))
    os.setxattr(src, "trusted.overlay.origin", b"\x00\xfb\x1d\x01\x80")
    set_times(src, seed=5)
    exp = snapshot(src)
    for p in ("", "impure", "impure/copied"):
        for x in list(exp[p]["xattrs"]):
            if x.startswith("trusted.overlay.") and not x.startswith("trusted.overlay.overlay."):
                del exp[p]["xattrs"][x]
    exp["withwh"]["xattrs"]["trusted.overlay.origin"] = b""
    convert_and_compare(ctx, src, "ovl-xattrs", exp, extra=("--overlay-upper",))
    # the same directory as a plain tree: everything kept
    exp = snapshot(src)
    exp["withwh"]["xattrs"]["trusted.overlay.origin"] = b""
    convert_and_compare(ctx, src, "ovl-xattrs-plain", exp)
    # metacopy: the data is elsewhere
    os.setxattr(j("opq", "new"), "trusted.overlay.metacopy", b"")
    out = ctx.image("ovl-metacopy")
    p = ctx.convert(src, out, "--overlay-upper", ok=False)
    check(p.returncode == EXIT_BADINPUT and b"opq/new: " in p.stderr and b"metacopy" in p.stderr,
          "metacopy xattr: exit %d" % p.returncode, [tail(p.stderr)])
    check(not os.path.exists(out), "an image was left at %s" % out)


# -- overlay upper: a real overlayfs, changed, its upper directory converted --

def build_lower(root):
    j = lambda *a: os.path.join(root, *a)  # noqa: E731
    os.makedirs(j("a"))
    write(j("a", "file1"), b"one\n")
    write(j("a", "file2"), b"two\n")
    os.makedirs(j("d", "sub"))
    write(j("d", "x"), b"x\n")
    write(j("d", "sub", "y"), b"y\n")
    os.makedirs(j("r"))
    write(j("r", "z"), b"z\n")
    os.makedirs(j("o", "deep"))
    write(j("o", "old1"), b"old1\n")
    write(j("o", "old2"), b"old2\n")
    write(j("o", "deep", "old3"), b"old3\n")
    os.makedirs(j("keep"))
    write(j("keep", "k"), b"keep\n")
    write(j("keep", "chmod-me"), b"mode\n")
    write(j("keep", "xattr-me"), b"xattr\n")
    write(j("f"), b"top file\n")
    os.symlink("a/file2", j("link"))
    set_times(root, seed=6)


def make_tar(src, out):
    """A layer tar of src (GNU tar, pax, numeric owners, xattrs, sorted)."""
    run(["tar", "--format=pax", "--numeric-owner", "--xattrs", "--xattrs-include=*",
         "--sort=name", "-C", src, "-cf", out, "."])


def case_overlay_upper(ctx):
    lower_src = ctx.fresh("ovl-lower")
    build_lower(lower_src)
    tarf = os.path.join(ctx.tmpdir, "ovl-lower.tar")
    make_tar(lower_src, tarf)
    old = ctx.image("ovl-old")
    run([ctx.el, "convert", "-o", old, tarf])
    lower_mp = ctx.mount("erofs", old, ctx.mp("ovl-lower"), "ro,loop")
    tm = ctx.mount("tmpfs", "tmpfs", ctx.mp("ovl-tmpfs"), "size=64m,mode=0755")
    upper, work = os.path.join(tm, "upper"), os.path.join(tm, "work")
    os.mkdir(upper)
    os.mkdir(work)
    merged = ctx.mount("overlay", "overlay", ctx.mp("ovl-merged"),
                       "lowerdir=%s,upperdir=%s,workdir=%s,redirect_dir=off,metacopy=off"
                       % (lower_mp, upper, work))
    j = lambda *a: os.path.join(merged, *a)  # noqa: E731
    os.unlink(j("a", "file1"))                      # delete a file
    shutil.rmtree(j("d"))                           # delete a directory
    shutil.rmtree(j("r"))                           # replace a directory by a file
    write(j("r"), b"now a file\n")
    shutil.rmtree(j("o"))                           # make a directory opaque
    os.mkdir(j("o"))
    write(j("o", "new"), b"new in opaque\n")
    os.mkdir(j("o", "deep"))
    write(j("a", "file3"), b"three\n")              # add files
    os.makedirs(j("newdir", "nested"))
    write(j("newdir", "nested", "n1"), b"n1\n")
    os.link(j("newdir", "nested", "n1"), j("newdir", "n1-link"))
    os.symlink("../a/file2", j("newdir", "sl"))
    os.mknod(j("newdir", "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.setxattr(j("newdir"), "user.new", b"dir")
    with open(j("keep", "k"), "ab") as f:           # copy-ups
        f.write(b"appended\n")
    os.chmod(j("keep", "chmod-me"), 0o4711)
    os.setxattr(j("keep", "xattr-me"), "user.added", b"yes")
    os.setxattr(j("keep", "xattr-me"), "trusted.added", b"t")
    os.unlink(j("link"))
    os.symlink("a/file3", j("link"))
    os.utime(j("a"), ns=(1600000000123456789, 1600000000123456789))
    os.chmod(merged, 0o711)
    expected = snapshot(merged)
    ctx.umount(merged)

    # overlayfs may link all its whiteouts to one inode; the image keeps
    # them apart, as a tar would
    for p in ("a/file1", "d"):
        st = os.lstat(os.path.join(upper, p))
        check(stat.S_ISCHR(st.st_mode) and st.st_rdev == 0,
              "the upper directory lacks the whiteout %s" % p)

    new = ctx.image("ovl-new")
    p = ctx.convert(upper, new, "--overlay-upper")
    ctx.check_image(new)
    # the new layer alone: overlay form, none of the upper's bookkeeping
    with ctx.mounted(new, "ovl-new-alone") as mp:
        alone = snapshot(mp)
    diffs = []
    for path in ("a/file1", "d"):
        r = alone.get(path)
        if not r or r["kind"] != "chr" or r["rdev"] != (0, 0):
            diffs.append("%s: not a whiteout: %r" % (path, r and r["kind"]))
        elif r["nlink"] != 1:
            diffs.append("%s: whiteout with nlink %d" % (path, r["nlink"]))
    for path, want in (("o", {"trusted.overlay.opaque": b"y"}),
                       ("", {"trusted.overlay.origin": b""}),
                       ("a", {"trusted.overlay.origin": b""})):
        got = {k: v for k, v in alone[path]["xattrs"].items() if k.startswith("trusted.overlay.")}
        if got != want:
            diffs.append("/%s: overlay xattrs %r, expected %r" % (path, got, want))
    for path, r in alone.items():
        if path in ("", "a", "o"):
            continue
        bad = [k for k in r["xattrs"] if k.startswith("trusted.overlay.")]
        if bad:
            diffs.append("/%s: left-over %s" % (path, ", ".join(bad)))
    check(not diffs, "the new layer is not in overlay form", diffs)

    # stacked on the old layer, it shows what the overlay showed
    new_mp = ctx.mount("erofs", new, ctx.mp("ovl-new"), "ro,loop")
    view = ctx.mount("overlay", "overlay", ctx.mp("ovl-view"),
                     "ro,lowerdir=%s:%s" % (new_mp, lower_mp))
    actual = snapshot(view)
    compare(expected, actual, "overlay-upper")
    ctx.umount(view)
    ctx.umount(new_mp)
    ctx.umount(lower_mp)
    ctx.umount(tm)


def case_cleanup_sanity(ctx):
    left = mounts_under(ctx.workdir)
    check(not left, "still mounted: %s" % ", ".join(left))
    loops = loops_backed_by(ctx.workdir)
    check(not loops, "loop devices left: %s" % "; ".join(loops))


CASES = [
    ("all-types", case_all_types, "every type, mode bit, owner, xattr namespace, name shape"),
    ("wide-reproducible", case_wide_reproducible, "3000 names; same bytes whatever readdir order"),
    ("sparse-5g", case_sparse_5g, "a 5 GiB sparse file stays sparse"),
    ("deep", case_deep, "~2000 levels, paths near 4096 bytes"),
    ("path-limit", case_path_limit, "4096-byte path converts, 4097 fails naming it"),
    ("mounts-skipped", case_mounts_skipped, "tmpfs and bind mounts inside are skipped"),
    ("uuid-epoch", case_uuid_epoch, "--uuid, --epoch, derived uuid"),
    ("bad-input", case_bad_input, "missing dir, a file, usage errors, nothing left behind"),
    ("overlay-xattrs", case_overlay_xattrs, "trusted.overlay.* kept, dropped or refused"),
    ("overlay-upper", case_overlay_upper, "a real overlayfs upper dir, restacked"),
    ("cleanup-sanity", case_cleanup_sanity, "nothing mounted, no loop device left"),
]


def environment_problem():
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists("/dev/loop-control"):
        return "no /dev/loop-control"
    with open("/proc/filesystems") as f:
        fs = f.read().split()
    for need in ("erofs", "overlay", "tmpfs"):
        if need not in fs:
            return "no %s in /proc/filesystems" % need
    for tool in ("fsck.erofs", "mount", "umount", "losetup", "tar"):
        if not shutil.which(tool):
            return "%s not found" % tool
    return None


def suite_main(suite, cases, args, problem, make_ctx, width):
    """What a suite's main does once its arguments are parsed: --list, the
    checks of the environment (exit 77: skipped) and of the binary, then
    the cases. problem() says why the suite cannot run here, or None."""
    if args.list:
        for name, _, desc in cases:
            print("%-*s %s" % (width, name, desc))
        return 0
    why = problem()
    if why:
        print("skip %s: cannot run here: %s" % (suite, why))
        print("0 passed, 0 failed, %d skipped" % len(cases))
        return 77
    if not os.access(args.erofs_layer, os.X_OK):
        print("FAIL setup: %s is not an executable" % args.erofs_layer)
        print("0 passed, 1 failed")
        return 1
    os.umask(0o022)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    return run_suite(make_ctx(args), cases, args)


def write_sparse_5g(path):
    """A 5 GiB sparse file with data at its head, across 4 GiB and at its
    tail."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"head", 0)
        os.pwrite(fd, b"across 4 GiB" * 1000, (4 << 30) - 5000)
        os.pwrite(fd, b"tail", 5 * GIB - 4)
    finally:
        os.close(fd)


def run_suite(ctx, cases, args):
    """Runs the selected cases (cleanup-sanity always) in ctx's fresh work
    directory, one line each, unmounting after every case; prints the
    summary line and returns the exit status. run-ext4.py uses it too."""
    os.makedirs(ctx.workdir, exist_ok=True)
    for mp in mounts_under(ctx.workdir):
        umount(mp)
    for d in SUBDIRS:
        p = os.path.join(ctx.workdir, d)
        if os.path.lexists(p):
            rmtree(p)
        os.makedirs(p)

    selected = [c for c in cases
                if not args.only or any(fnmatch.fnmatchcase(c[0], p) for p in args.only)
                or c[0] == "cleanup-sanity"]
    passed = failed = skipped = 0
    try:
        for name, fn, _ in selected:
            t0 = time.time()
            try:
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
            except CmdError as e:
                failed += 1
                print("FAIL %s: %s" % (name, e), flush=True)
            except Exception as e:
                failed += 1
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e), flush=True)
                for line in traceback.format_exc().rstrip().splitlines()[-6:]:
                    print("    %s" % line)
            else:
                passed += 1
                print("ok %s" % name, flush=True)
            finally:
                for e in ctx.umount_all():
                    print("    cleanup: %s" % e)
                if args.verbose:
                    print("# %s took %.1fs" % (name, time.time() - t0), flush=True)
    finally:
        for e in ctx.umount_all():
            print("    cleanup: %s" % e)
        if not args.keep:
            for d in SUBDIRS:
                try:
                    rmtree(os.path.join(ctx.workdir, d))
                except OSError:
                    pass
    summary = "%d passed, %d failed" % (passed, failed)
    if skipped:
        summary += ", %d skipped" % skipped
    print(summary, flush=True)
    return 1 if failed else 0



def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--erofs-layer", help="the erofs-layer binary under test")
    ap.add_argument("--workdir", help="scratch directory (created)")
    ap.add_argument("--only", action="append", default=[], metavar="PATTERN")
    ap.add_argument("--keep", action="store_true", help="keep the work directory's files")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--no-big", action="store_true", help="skip the 5 GiB case")
    ap.add_argument("--verbose", action="store_true", help="print the time of each step")
    args = ap.parse_args()
    if not args.list and (not args.workdir or not args.erofs_layer):
        ap.error("--erofs-layer and --workdir are required")
    return suite_main("dir", CASES, args, environment_problem, Ctx, 20)

if __name__ == "__main__":
    sys.exit(main())
