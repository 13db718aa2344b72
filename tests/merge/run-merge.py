#!/usr/bin/python3
"""Merge tests of `erofs-layer merge`: multi-layer fixtures (OCI layer tars
made here, converted with `erofs-layer convert`) merged into fsmeta.erofs +
merged.vmdk, judged against the host kernel's overlayfs over the same layer
images, file by file and attribute by attribute, in four ways:
  (a) fsmeta mounted with device=/dev/loopN per layer;
  (b) fsmeta + layers concatenated, mounted as one loop device;
  (c) qemu-img: the VMDK read as raw equals that concatenation;
  (d) the --flat fsmeta (no device table) concatenated with the layers.
Plus refusals (exit 4), corrupt and hostile layer images (exit 0/3/4, no
crash, no hang, nothing left behind) and a final check that the run left no
loop device or mount behind.

    run-merge.py --erofs-layer PATH --workdir DIR [--only PATTERN]... [--keep] [-v]

Prints `ok NAME`, `FAIL NAME: reason` or `skip NAME: reason` per case (and
sub-check), then `N passed, M failed[, K skipped]`. Exit 0 all passed, 1 some
failed, 77 cannot run here (not root, no erofs/overlay, no loop devices).
"""

import argparse
import fnmatch
import json
import os
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mergelib as M  # noqa: E402
from mergelib import T0, Tar  # noqa: E402

MAX_DETAILS = 10
CAP_NET_BIND = struct.pack("<IIIII", 0x02000001, 1 << 10, 0, 0, 0)  # VFS_CAP_REVISION_2


class CaseFailed(Exception):
    def __init__(self, reason, details=()):
        super().__init__(reason)
        self.reason = reason
        self.details = list(details)


class CaseSkipped(Exception):
    pass


def fail(reason, details=()):
    raise CaseFailed(reason, details)


def tail(b, n=300):
    s = b.decode("utf-8", "replace") if isinstance(b, bytes) else str(b)
    s = s.strip().replace("\n", " | ")
    return s if len(s) <= n else "..." + s[-n:]


def rc_text(p):
    return "killed by signal %d" % -p.returncode if p.returncode < 0 else "exit %d" % p.returncode


def fields(stdout):
    out = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        k, _, v = line.partition(" ")
        out[k] = v.strip()
    return out


# ---------------------------------------------------------------------------

class Env:
    def __init__(self, args):
        self.args = args
        self.el = os.path.realpath(args.erofs_layer)
        self.workdir = os.path.realpath(args.workdir)
        # short mount points: 128 lowerdirs and 128 device= options must fit
        # in one page of mount options
        self.mroot = tempfile.mkdtemp(prefix="mg", dir="/tmp")
        self.mounts = []
        self.loops = []
        self.mseq = 0
        self.qemu_img = None if args.no_qemu_img else shutil.which("qemu-img")
        self.mkfs_erofs = shutil.which("mkfs.erofs")
        self.gnutar = shutil.which("tar")
        self.sub_skips = []
        self._empty = None
        self.verity = False  # layers and fsmeta with dm-verity trees
        # AddressSanitizer reserves terabytes of address space: under it the
        # memory cap on hostile merges cannot apply (the time limit still does)
        with open(self.el, "rb") as f:
            self.asan = b"__asan_init" in f.read()

    # -- processes ---------------------------------------------------------
    def run(self, args, *, timeout=300, check=True, cwd=None, limit=False, stdin=None):
        def pre():
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if limit and not self.asan:
                resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        try:
            p = subprocess.run([str(a) for a in args], capture_output=True, timeout=timeout,
                               cwd=cwd, preexec_fn=pre, stdin=stdin or subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            fail("timed out after %ds: %s" % (timeout, " ".join(map(str, args[:4]))))
        if check and p.returncode != 0:
            fail("%s: %s: %s" % (" ".join(map(str, args[:3])), rc_text(p), tail(p.stderr)))
        return p

    def elrun(self, *args, **kw):
        return self.run([self.el] + list(args), **kw)

    # -- mounts and loop devices (every one registered for cleanup) --------
    def mp(self):
        self.mseq += 1
        p = os.path.join(self.mroot, str(self.mseq))
        os.mkdir(p)
        return p

    def mount(self, src, fstype, opts):
        mp = self.mp()
        try:
            self.run(["mount", "-t", fstype, "-o", opts, src, mp], timeout=120)
        except CaseFailed:
            os.rmdir(mp)
            raise
        self.mounts.append(mp)
        return mp

    def umount(self, mp):
        last = b""
        for _ in range(50):
            p = subprocess.run(["umount", mp], capture_output=True)
            if p.returncode == 0 or b"not mounted" in p.stderr:
                break
            last = p.stderr
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", mp], capture_output=True)
            self.mounts.remove(mp)
            fail("umount %s: %s" % (mp, tail(last)))
        self.mounts.remove(mp)
        try:
            os.rmdir(mp)
        except OSError:
            pass

    def losetup(self, path):
        dev = self.run(["losetup", "-r", "--show", "-f", path]).stdout.decode().strip()
        self.loops.append(dev)
        return dev

    def lodel(self, dev):
        self.run(["losetup", "-d", dev], check=False)
        self.loops.remove(dev)

    def cleanup(self):
        errors = []
        for mp in reversed(list(self.mounts)):
            try:
                self.umount(mp)
            except CaseFailed as e:
                errors.append(e.reason)
        for dev in reversed(list(self.loops)):
            self.lodel(dev)
        return errors

    # -- fixtures ----------------------------------------------------------
    def casedir(self, name):
        d = os.path.join(self.workdir, name)
        if os.path.exists(d):
            shutil.rmtree(d)
        for sub in ("tars", "layers", "out"):
            os.makedirs(os.path.join(d, sub))
        return d

    def convert(self, tar, out):
        self.elrun("convert", "-o", out, tar, *(["--dm-verity"] if self.verity else []),
                   timeout=300)
        return out

    def layers(self, d, tars):
        """Tar objects (or paths of ready tars), oldest first -> layer images."""
        out = []
        for i, t in enumerate(tars):
            tp = t if isinstance(t, str) else t.write(os.path.join(d, "tars", "l%d.tar" % i))
            out.append(self.convert(tp, os.path.join(d, "layers", "l%d.erofs" % i)))
        return out

    def empty_layer(self):
        if not self._empty:
            d = os.path.join(self.workdir, "_empty")
            os.makedirs(d, exist_ok=True)
            tp = Tar().write(os.path.join(d, "empty.tar"))
            self._empty = self.convert(tp, os.path.join(d, "empty.erofs"))
        return self._empty

    def drop(self, *paths):
        if self.args.keep:
            return
        for p in paths:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


# ---------------------------------------------------------------------------
# the views

def overlay_view(env, layers):
    """The host overlayfs over the layer images (the reference). overlayfs
    needs two lower layers without an upper: one layer goes over an empty
    one, which only contributes its root, hidden below the top's."""
    lay = layers if len(layers) > 1 else [env.empty_layer()] + list(layers)
    # mount -o loop reuses the loop device of an image already attached
    # read-only, and overlayfs refuses a layer twice: use copies for repeats
    seen = set()
    copies = []
    for i, img in enumerate(lay):
        if img in seen:
            cp = "%s.copy%d" % (img, i)
            shutil.copyfile(img, cp)
            copies.append(cp)
            lay = lay[:i] + [cp] + lay[i + 1:]
        seen.add(img)
    mps = []
    omp = None
    try:
        for img in lay:
            mps.append(env.mount(img, "erofs", "ro,loop"))
        omp = env.mount("overlay", "overlay", "ro,lowerdir=" + ":".join(reversed(mps)))
        return M.expected_from_overlay(M.snapshot(omp))
    finally:
        if omp:
            env.umount(omp)
        for mp in reversed(mps):
            env.umount(mp)
        env.drop(*copies)


def devices_view(env, fsmeta, layers):
    devs = []
    mp = None
    try:
        for img in layers:
            devs.append(env.losetup(img))
        mp = env.mount(fsmeta, "erofs", "ro,loop," + ",".join("device=" + d for d in devs))
        return M.snapshot(mp)
    finally:
        if mp:
            env.umount(mp)
        for d in reversed(devs):
            env.lodel(d)


def disk_view(env, disk):
    mp = env.mount(disk, "erofs", "ro,loop")
    try:
        return M.snapshot(mp)
    finally:
        env.umount(mp)


def compare(expected, actual, label):
    diffs = M.treecmp.compare(expected, actual, label)
    return diffs + M.view_problems(actual, label)


# ---------------------------------------------------------------------------
# merging

def merge(env, d, layers, *, out="fsmeta.erofs", vmdk="merged.vmdk", flat=False, epoch=None,
          absolute=False, timeout=120):
    """Runs merge with paths relative to the case directory (or absolute from
    /), checks the exit status and the printed numbers."""
    base = "/" if absolute else d
    rel = (lambda p: p) if absolute else (lambda p: os.path.relpath(p, d))
    args = ["merge", "-o", rel(os.path.join(d, "out", out))]
    if vmdk:
        args += ["--vmdk", rel(os.path.join(d, "out", vmdk))]
    if flat:
        args.append("--flat")
    if epoch is not None:
        args += ["--epoch", str(epoch)]
    if env.verity:
        args.append("--dm-verity")
    args += [rel(p) for p in layers]
    p = env.elrun(*args, cwd=base, timeout=timeout, check=False)
    if p.returncode != 0:
        fail("merge %s: %s" % (rc_text(p), tail(p.stderr)))
    f = fields(p.stdout)
    fs = os.path.join(d, "out", out)
    size = os.path.getsize(fs)
    total = size // M.BLK + sum(os.path.getsize(l) // M.BLK for l in layers)
    probs = []
    if size % M.BLK:
        probs.append("fsmeta is %d bytes, not whole blocks" % size)
    want = {"layers": str(len(layers)), "fsmeta_blocks": str(erofs_blocks(fs)),
            "total_blocks": str(total)}
    for k, v in want.items():
        if f.get(k) != v:
            probs.append("printed %s %s, expected %s" % (k, f.get(k), v))
    if probs:
        fail("merge output", probs)
    return fs, (os.path.join(d, "out", vmdk) if vmdk else None), f


def read(path):
    with open(path, "rb") as f:
        return f.read()


def sb_of(path):
    with open(path, "rb") as f:
        return f.read(M.BLK)


def uuid_hex(path):
    return M.Super(sb_of(path)).uuid.hex()


def erofs_blocks(path):
    """Blocks of the EROFS image in PATH: the whole file, or up to its
    dm-verity tree when a sidecar names one."""
    try:
        with open(path + ".dmverity") as f:
            return json.load(f)["hashoffset"] // M.BLK
    except FileNotFoundError:
        return os.path.getsize(path) // M.BLK


def check_fsmeta_sb(fsmeta, layers, flat):
    buf = bytearray(read(fsmeta)) if os.path.getsize(fsmeta) < (64 << 20) else bytearray(sb_of(fsmeta))
    sb = M.Super(buf)
    probs = []
    fs_blocks = erofs_blocks(fsmeta)
    if sb.magic != M.SB_MAGIC or sb.blkszbits != 12:
        probs.append("bad magic or block size")
    if sb.blocks != fs_blocks:
        probs.append("superblock blocks %d, file has %d" % (sb.blocks, fs_blocks))
    extra = struct.unpack_from("<H", buf, 1024 + 86)[0]
    if flat:
        if sb.incompat & 0x8:
            probs.append("--flat fsmeta has incompat DEVICE_TABLE (0x8) set")
        if extra != 0:
            probs.append("--flat fsmeta has extra_devices %d" % extra)
        return probs
    if not sb.incompat & 0x8:
        probs.append("fsmeta lacks incompat DEVICE_TABLE")
    if extra != len(layers):
        probs.append("extra_devices %d, expected %d" % (extra, len(layers)))
    uni = os.path.getsize(fsmeta) // M.BLK  # the layers follow the whole file
    for i, (slot, img) in enumerate(zip(M.device_slots(buf), layers)):
        tag, blocks, uniaddr = slot
        lb = os.path.getsize(img) // M.BLK
        if tag != uuid_hex(img):
            probs.append("slot %d tag %r, expected the layer UUID %s" % (i, tag, uuid_hex(img)))
        if blocks != lb or uniaddr != uni:
            probs.append("slot %d blocks %d uniaddr %d, expected %d and %d"
                         % (i, blocks, uniaddr, lb, uni))
        uni += lb
    return probs


def check_vmdk(env, d, vmdk, fsmeta, layers, disk):
    probs = []
    text = read(vmdk).decode("utf-8", "replace")
    extents = [(fsmeta, os.path.getsize(fsmeta))] + [(os.path.realpath(l), os.path.getsize(l))
                                                      for l in layers]
    probs += ["vmdk: " + p for p in M.vmdk_problems(text, extents)]
    uu = M.Super(sb_of(fsmeta)).uuid
    cid = 0
    for i in range(4):
        cid ^= struct.unpack_from("<I", uu, 4 * i)[0]
    want = M.vmdk_text(extents, cid)
    if text != want:
        tl, wl = text.split("\n"), want.split("\n")
        for i in range(max(len(tl), len(wl))):
            a = tl[i] if i < len(tl) else "<end>"
            b = wl[i] if i < len(wl) else "<end>"
            if a != b:
                probs.append("vmdk line %d is %r, expected %r" % (i + 1, a, b))
                break
    if not env.qemu_img:
        env.sub_skips.append("qemu-img not installed: VMDK not read with qemu-img")
        return probs
    info = json.loads(env.run([env.qemu_img, "info", "--output=json", vmdk]).stdout)
    total = sum(s for _, s in extents)
    if info.get("virtual-size") != total:
        probs.append("qemu-img info: virtual size %s, expected %d" % (info.get("virtual-size"), total))
    raw = os.path.join(d, "out", "vmdk.raw")
    env.run([env.qemu_img, "convert", "-O", "raw", vmdk, raw], timeout=600)
    if total < (256 << 20):
        p = env.run(["cmp", raw, disk], check=False)
        if p.returncode != 0:
            probs.append("qemu-img convert of the VMDK differs from the concatenation: "
                         + tail(p.stdout + p.stderr))
    else:
        why = M.files_equal(raw, disk)
        if why:
            probs.append("qemu-img convert of the VMDK differs from the concatenation: " + why)
    env.drop(raw)
    return probs


def verify_stack(env, d, layers, *, expected=None, epoch_views=(), label=""):
    """All the merge checks of one layer stack; returns (problems, expected)."""
    probs = []
    if expected is None:
        expected = overlay_view(env, layers)
    fsmeta, vmdk, f = merge(env, d, layers)
    first = (read(fsmeta), read(vmdk))
    probs += check_fsmeta_sb(fsmeta, layers, flat=False)
    p = env.elrun("check", fsmeta, check=False, timeout=120)
    if p.returncode != 0:
        probs.append("check fsmeta: %s: %s" % (rc_text(p), tail(p.stdout + p.stderr)))
    # (a) device= mount
    va = devices_view(env, fsmeta, layers)
    probs += compare(expected, va, "device=")
    ninodes = len({r["ino"] for r in va.values()})
    sb = M.Super(sb_of(fsmeta))
    if f.get("inodes") != str(ninodes) or sb.inos != ninodes:
        probs.append("inodes printed %s, superblock %d, the merged view has %d"
                     % (f.get("inodes"), sb.inos, ninodes))
    # (b) one concatenated disk
    disk = M.sparse_concat(os.path.join(d, "out", "disk.img"), [fsmeta] + list(layers))
    probs += compare(expected, disk_view(env, disk), "concat")
    p = env.elrun("check", disk, check=False, timeout=300)
    if p.returncode != 0:
        probs.append("check fsmeta + layers: %s: %s" % (rc_text(p), tail(p.stdout + p.stderr)))
    # (c) the VMDK
    probs += check_vmdk(env, d, vmdk, fsmeta, layers, disk)
    env.drop(disk)
    # reproducible (second run from / with absolute paths)
    merge(env, d, layers, absolute=True)
    if read(fsmeta) != first[0]:
        probs.append("merging twice gave different fsmeta bytes")
    if read(vmdk) != first[1]:
        probs.append("merging twice gave different VMDK bytes")
    # (d) --flat
    flat, _, _ = merge(env, d, layers, out="flat.erofs", vmdk=None, flat=True)
    flat_bytes = read(flat)
    probs += ["flat: " + x for x in check_fsmeta_sb(flat, layers, flat=True)]
    # a --flat fsmeta alone names blocks past its own end (there is no device
    # table to tell they are the layers'): check judges it with the layers
    p = env.elrun("check", flat, check=False, timeout=120)
    if p.returncode not in (0, 3):
        probs.append("check flat fsmeta alone: %s: %s" % (rc_text(p), tail(p.stdout + p.stderr)))
    disk = M.sparse_concat(os.path.join(d, "out", "flat-disk.img"), [flat] + list(layers))
    p = env.elrun("check", disk, check=False, timeout=300)
    if p.returncode != 0:
        probs.append("check flat fsmeta + layers: %s: %s" % (rc_text(p), tail(p.stdout + p.stderr)))
    probs += compare(expected, disk_view(env, disk), "flat")
    env.drop(disk)
    merge(env, d, layers, out="flat.erofs", vmdk=None, flat=True, absolute=True)
    if read(flat) != flat_bytes:
        probs.append("merging --flat twice gave different bytes")
    for ep in epoch_views:
        fs2, _, _ = merge(env, d, layers, out="epoch.erofs", vmdk=None, epoch=ep)
        p = env.elrun("check", fs2, check=False)
        if p.returncode != 0:
            probs.append("check --epoch %d fsmeta: %s" % (ep, tail(p.stdout + p.stderr)))
        probs += compare(expected, devices_view(env, fs2, layers), "epoch=%d" % ep)
    if label:
        probs = ["%s: %s" % (label, x) for x in probs]
    return probs, expected


def stack_case(env, name, tars, *, check_expected=None, epoch_views=()):
    d = env.casedir(name)
    layers = env.layers(d, tars)
    expected = overlay_view(env, layers)
    pre = check_expected(expected) if check_expected else []
    probs, _ = verify_stack(env, d, layers, expected=expected, epoch_views=epoch_views)
    probs = ["overlay reference: " + x for x in pre] + probs
    if probs:
        fail("%d difference(s)" % len(probs), probs)


def expect_paths(present=(), absent=()):
    """A sanity check of the reference itself (the fixture does what it
    says), so that a broken reference cannot make a case pass."""
    def chk(snap):
        out = []
        for p in present:
            if p not in snap:
                out.append("/%s missing" % p)
        for p in absent:
            if p in snap:
                out.append("/%s present" % p)
        return out
    return chk


# ---------------------------------------------------------------------------
# cases

CASES = []


def case(name, desc):
    def deco(fn):
        CASES.append((name, desc, fn))
        return fn
    return deco


@case("whiteouts", "whiteout of a file and of a directory (with a subtree)")
def c_whiteouts(env):
    l1 = (Tar().root().dir("a").file("a/x", "x1").file("a/y", "y1")
          .dir("b").file("b/z", "z").dir("b/sub").file("b/sub/w", "w")
          .file("top.txt", "top").file("keep", "keep"))
    l2 = Tar().whiteout("a/x").whiteout("b").whiteout("top.txt").file("new", "n")
    stack_case(env, "whiteouts", [l1, l2],
               check_expected=expect_paths(["a/y", "keep", "new"], ["a/x", "b", "top.txt"]))


def verity_problems(env, path, alone=True):
    """PATH's tree judged by veritysetup and by check --verity, with the
    root hash and offset of its sidecar (a --flat fsmeta is no image alone:
    veritysetup only)."""
    with open(path + ".dmverity") as f:
        side = json.load(f)
    p = env.run(["veritysetup", "verify", path, path, side["roothash"],
                 "--hash-offset=%d" % side["hashoffset"]], check=False)
    probs = []
    if p.returncode != 0:
        probs.append("veritysetup verify %s: %s" % (os.path.basename(path), tail(p.stdout + p.stderr)))
    p = env.elrun("check", "--verity", path, check=False) if alone else p
    if p.returncode != 0:
        probs.append("check --verity %s: %s" % (os.path.basename(path), tail(p.stderr)))
    return probs


@case("dm-verity", "layers and fsmeta with dm-verity trees: device=, concatenation, VMDK, "
      "veritysetup, a flipped byte found")
def c_verity(env):
    l1 = (Tar().root().dir("a").file("a/x", "x1").file("a/big", "B" * 300000)
          .file("keep", "keep", xattrs={"user.k": "v"}))
    l2 = Tar().whiteout("a/x").dir("d").opaque("d").file("d/new", "n" * 5000).hardlink("d/link", "d/new")
    l3 = Tar().file("a/big", "C" * 70000).symlink("s", "a/big")
    env.verity = True
    try:
        d = env.casedir("dm-verity")
        layers = env.layers(d, [l1, l2, l3])
        expected = overlay_view(env, layers)
        probs = expect_paths(["a/big", "keep", "d/new", "d/link", "s"], ["a/x"])(expected)
        p2, _ = verify_stack(env, d, layers, expected=expected)
        probs += p2
    finally:
        env.verity = False
    fsmeta = os.path.join(d, "out", "fsmeta.erofs")
    for path in layers + [fsmeta, os.path.join(d, "out", "flat.erofs")]:
        if os.path.getsize(path) <= erofs_blocks(path) * M.BLK:
            probs.append("%s has no tree after its image" % os.path.basename(path))
        probs += verity_problems(env, path, alone=not path.endswith("flat.erofs"))
    # one byte of the middle layer's data changed: both judges refuse, ours
    # names the block
    with open(layers[1] + ".dmverity") as f:
        side = json.load(f)
    with open(layers[1], "r+b") as f:
        f.seek(M.BLK + 100)
        b = f.read(1)
        f.seek(M.BLK + 100)
        f.write(bytes([b[0] ^ 0xFF]))
    bad = verity_problems(env, layers[1])
    if len(bad) != 2:
        probs.append("a flipped byte in layer 1 went unnoticed: %s" % bad)
    elif "data block 1 " not in bad[1]:
        probs.append("check --verity does not name data block 1: %s" % bad[1])
    if side["hashoffset"] != erofs_blocks(layers[1]) * M.BLK:
        probs.append("sidecar hashoffset %d" % side["hashoffset"])
    if probs:
        fail("%d problem(s)" % len(probs), probs)


@case("opaque", "opaque directories hide everything below, at several depths")
def c_opaque(env):
    l1 = (Tar().dir("d").file("d/old1", "1").file("d/old2", "2").dir("d/sub").file("d/sub/deep", "x")
          .dir("e").file("e/f", "f").dir("g").dir("g/h").file("g/h/i", "i"))
    l2 = (Tar().dir("d", mode=0o750).opaque("d").file("d/new1", "n1")
          .dir("e").opaque("e").dir("g").dir("g/h", mode=0o700, xattrs={"user.o": "1"}).opaque("g/h"))
    l3 = Tar().dir("d").file("d/new2", "n2").file("g/h/j", "j")
    stack_case(env, "opaque", [l1, l2, l3],
               check_expected=expect_paths(["d/new1", "d/new2", "e", "g/h/j"],
                                           ["d/old1", "d/sub", "e/f", "g/h/i"]))


@case("opaque-old-new", "L1 dir/old + L2 opaque dir + L3 dir/new: only new shows")
def c_opaque_old_new(env):
    l1 = Tar().dir("dir").file("dir/old", "old")
    l2 = Tar().dir("dir").opaque("dir")
    l3 = Tar().dir("dir").file("dir/new", "new")
    stack_case(env, "opaque-old-new", [l1, l2, l3],
               check_expected=expect_paths(["dir/new"], ["dir/old"]))


@case("type-changes", "a file replacing a directory, a directory replacing a file, and back")
def c_type_changes(env):
    l1 = (Tar().dir("p").file("p/a", "a").dir("p/sub").file("p/sub/b", "b").file("q", "q-file")
          .symlink("r", "target").dir("s").file("s/t", "t").fifo("u"))
    l2 = (Tar().file("p", "p is a file now").dir("q").file("q/inner", "inner")
          .dir("r").file("r/x", "x").symlink("s", "/elsewhere").dir("u").file("u/v", "v"))
    l3 = (Tar().dir("p").file("p/c", "c").file("q/inner2", "i2").file("r", "r-file")
          .dir("s").file("s/new", "n").chr("u", 1, 3))
    stack_case(env, "type-changes", [l1, l2, l3],
               check_expected=expect_paths(["p/c", "q/inner", "q/inner2", "s/new"],
                                           ["p/a", "p/sub", "s/t", "u/v"]))


@case("recreate", "re-creation after a whiteout (file, and directory without opaque)")
def c_recreate(env):
    l1 = Tar().dir("r").file("r/a", "a").file("r/b", "b").file("s", "s-old").dir("t").file("t/x", "x")
    l2 = Tar().whiteout("r").whiteout("s").whiteout("t")
    l3 = Tar().dir("r").file("r/c", "c").file("s", "s-new").file("t/y", "y")
    stack_case(env, "recreate", [l1, l2, l3],
               check_expected=expect_paths(["r/c", "s", "t/y"], ["r/a", "r/b", "t/x"]))


@case("whiteout-under-recreated", "whiteouts under a directory re-created in an upper layer")
def c_whiteout_recreated(env):
    l1 = (Tar().dir("dir").file("dir/a", "a").file("dir/b", "b").file("dir/k", "k")
          .dir("e").file("e/a", "a"))
    l2 = Tar().dir("dir").whiteout("dir/a").file("dir/c", "c").file("e", "e is a file")
    l3 = Tar().whiteout("dir")
    l4 = (Tar().dir("dir").whiteout("dir/b").file("dir/d", "d").whiteout("dir/k")
          .dir("e").whiteout("e/a").file("e/z", "z"))
    l5 = Tar().dir("dir").whiteout("dir/d").file("dir/a", "a again")
    stack_case(env, "whiteout-under-recreated", [l1, l2, l3, l4, l5],
               check_expected=expect_paths(["dir/a", "e/z"],
                                           ["dir/b", "dir/c", "dir/d", "dir/k", "e/a"]))


@case("merged-dirs", "directories merged across layers with no whiteouts anywhere")
def c_merged_dirs(env):
    l1 = (Tar().root(mtime=T0 - 5).dir("d", mtime=T0 - 10).file("d/a", "a1").file("d/b", "b")
          .dir("d/s").file("d/s/x", "x").dir("only1").file("only1/f", "f"))
    l2 = (Tar().dir("d", mtime=T0 + 10, mode=0o711).file("d/c", "c").dir("d/s").file("d/s/y", "y")
          .dir("only2").file("only2/f", "f2"))
    l3 = Tar().dir("d", mtime=T0 + 20, nsec=7).file("d/a", "a3").dir("d/s/t").file("d/s/t/z", "z")
    stack_case(env, "merged-dirs", [l1, l2, l3],
               check_expected=expect_paths(["d/a", "d/b", "d/c", "d/s/x", "d/s/y", "d/s/t/z"]))


@case("hardlinks", "hard-link groups within a layer, partially whited out and replaced above")
def c_hardlinks(env):
    l1 = (Tar().dir("h").file("h/f1", "group one").hardlink("h/f2", "h/f1")
          .dir("other").hardlink("other/f3", "h/f1").hardlink("h/f4", "h/f1")
          .file("h/g1", "group two").hardlink("h/g2", "h/g1")
          .symlink("h/s1", "f1").hardlink("h/s2", "h/s1")
          .fifo("h/p1").hardlink("h/p2", "h/p1")
          .chr("h/c1", 1, 5).hardlink("h/c2", "h/c1")
          .file("h/e1", "").hardlink("h/e2", "h/e1"))
    l2 = (Tar().dir("h").whiteout("h/f2").whiteout("other").file("h/g2", "replaced")
          .file("h/n1", "new group").hardlink("h/n2", "h/n1").dir("h/sub").hardlink("h/sub/n3", "h/n1"))
    l3 = Tar().dir("h").file("h/f2", "f2 re-created").whiteout("h/e1")
    stack_case(env, "hardlinks", [l1, l2, l3],
               check_expected=expect_paths(["h/f1", "h/f4", "h/n2", "h/sub/n3", "h/e2"],
                                           ["other"]))


def xattr_layers():
    big = "v" * 3000
    l1 = (Tar().root(xattrs={"user.root": "r1"})
          .dir("x", uid=1, gid=2, xattrs={"user.a": "1", "trusted.t": "2", "user.gone": "g"})
          .file("x/f", "f", xattrs={"user.f": "foo", "trusted.foo": "bar",
                                    "security.capability": CAP_NET_BIND})
          .file("x/big", "b", xattrs={"user.big": big})
          .file("x/many", "m", xattrs={"user.k%02d" % i: "val%d" % i for i in range(40)})
          .file("x/suid", "s", mode=0o4755).file("x/sgid", "s", mode=0o2711)
          .dir("x/tmp", mode=0o1777).file("x/ids", "i", uid=70000, gid=4000000)
          .file("x/nsec", "n", mtime=T0, nsec=123456789)
          .file("x/neg", "n", mtime=-86400 * 3, nsec=250000000)
          .file("x/zero", "z", mtime=0)
          .file("x/maxid", "m", uid=4294967294, gid=65536)
          .dir("z", xattrs={"user.z": "z1", "trusted.zz": "z2"}).file("z/f", "f")
          .dir("o").file("o/old", "o"))
    l2 = (Tar().root(mode=0o750, mtime=T0 + 1, xattrs={"user.root": "r2"})
          .dir("x", mode=0o700, uid=5, gid=6, mtime=T0 + 100, nsec=5,
               xattrs={"user.a": "changed", "user.b": "new", "security.selinux": "ctx\0"})
          .file("x/f2", "f2", xattrs={"trusted.overlay.opaque": "y", "user.ok": "1"})
          .dir("o", xattrs={"user.opq": "kept"}).opaque("o").file("o/new", "n"))
    l3 = Tar().dir("z", mode=0o755, mtime=T0 + 200).file("z/g", "g")
    return [l1, l2, l3]


@case("xattrs-meta", "xattrs (user, trusted, security.capability), modes, ids, times; directory metadata changed above")
def c_xattrs(env):
    def chk(snap):
        out = []
        if snap.get("x", {}).get("xattrs", {}).get("user.a") != b"changed":
            out.append("/x: upper xattrs not visible")
        if snap.get("z", {}).get("xattrs"):
            out.append("/z: xattrs of the lower directory still visible")
        if "security.capability" not in snap.get("x/f", {}).get("xattrs", {}):
            out.append("/x/f: no security.capability")
        return out
    stack_case(env, "xattrs-meta", xattr_layers(), check_expected=chk, epoch_views=(T0, 12345))


@case("specials", "char/block devices, fifos, symlinks (short, > 100 bytes, 4095 bytes)")
def c_specials(env):
    long_t = "/" + "/".join("component%03d" % i for i in range(12))
    max_t = ("x" * 254 + "/") * 16
    max_t = max_t[:4095]
    l1 = (Tar().dir("dev").chr("dev/null", 1, 3, mode=0o666).chr("dev/big", 4095, 1048575)
          .blk("dev/sda", 8, 0, mode=0o660, gid=6).blk("dev/nvme", 259, 65536)
          .fifo("dev/fifo", mode=0o600).symlink("short", "dev/null")
          .symlink("long", long_t).symlink("max", max_t).symlink("dirlink", "dev")
          .chr("dev/tty", 5, 0))
    l2 = (Tar().dir("dev").fifo("dev/sda").blk("dev/fifo", 7, 1).symlink("dev/null", "/dev/zero")
          .whiteout("dev/tty").symlink("long", long_t + "/again"))
    stack_case(env, "specials", [l1, l2],
               check_expected=expect_paths(["dev/big", "max", "dev/nvme"], ["dev/tty"]))


@case("big-file", "a 5 GiB sparse file (tar --sparse) over 4 GiB; VMDK extents split at 2 GiB")
def c_big_file(env):
    if not env.gnutar:
        raise CaseSkipped("GNU tar not found")
    d = env.casedir("big-file")
    src = os.path.join(d, "src")
    os.makedirs(src)
    big = os.path.join(src, "big")
    with open(big, "wb") as f:
        f.truncate(5 << 30)
        for off, data in ((1000, b"hello"), (3000 << 20, b"middle" * 1000),
                          ((2 << 30) - 3, b"across-2G"), ((4 << 30) - 2, b"across-4G"),
                          ((5 << 30) - 3, b"end")):
            f.seek(off)
            f.write(data)
    os.utime(big, ns=(T0 * 10 ** 9, T0 * 10 ** 9))
    with open(os.path.join(src, "small"), "wb") as f:
        f.write(b"small")
    os.utime(src, ns=(T0 * 10 ** 9, T0 * 10 ** 9))
    t1 = os.path.join(d, "tars", "l0.tar")
    env.run([env.gnutar, "--sparse", "--numeric-owner", "--owner=0", "--group=0",
             "-C", src, "-cf", t1, "."])
    shutil.rmtree(src)
    l2 = Tar().file("small", "small v2").file("other", "o")
    layers = env.layers(d, [t1, l2])
    if os.path.getsize(layers[0]) <= (2 << 30):
        fail("the 5 GiB layer image is only %d bytes" % os.path.getsize(layers[0]))
    expected = overlay_view(env, layers)
    pre = expect_paths(["big", "small", "other"])(expected)
    if expected.get("big", {}).get("size") != 5 << 30:
        pre.append("/big is not 5 GiB in the reference")
    probs, _ = verify_stack(env, d, layers, expected=expected)
    vm = read(os.path.join(d, "out", "merged.vmdk")).decode()
    if vm.count('l0.erofs"') < 3:
        probs.append("the > 2 GiB layer is not split into 3 extents")
    probs = ["overlay reference: " + x for x in pre] + probs
    if probs:
        fail("%d difference(s)" % len(probs), probs)


@case("deep-tree", "a tree 60 directories deep (3.9 KiB paths), changed at several depths")
def c_deep(env):
    # 60 x 65 bytes: as deep and as long as convert takes (paths up to 4096 bytes)
    comp = ["d%02d_" % i + "n" * 60 for i in range(60)]

    def at(k):
        return "/".join(comp[:k])
    l1 = Tar()
    for k in range(1, 61):
        l1.dir(at(k), mtime=T0 + k)
        l1.file(at(k) + "/f", "file at depth %d" % k)
    l1.file(at(60) + "/leaf", "leaf")
    l2 = Tar().whiteout(at(30) + "/f").file(at(60) + "/leaf2", "l2").dir(at(20), mode=0o700)
    l3 = Tar().dir(at(45)).opaque(at(45)).file(at(45) + "/after", "a")
    stack_case(env, "deep-tree", [l1, l2, l3],
               check_expected=expect_paths([at(44) + "/f", at(45) + "/after"],
                                           [at(30) + "/f", at(46), at(60)]))


@case("one-layer", "a single layer (its whiteouts and opaque markers do not show)")
def c_one_layer(env):
    l1 = (Tar().root(mode=0o755, mtime=T0).dir("a", xattrs={"user.a": "1"}).file("a/f", "f")
          .whiteout("a/gone").dir("o").opaque("o").file("o/x", "x").symlink("s", "a/f")
          .file("h1", "h").hardlink("h2", "h1").chr("c", 4, 64).fifo("p"))
    stack_case(env, "one-layer", [l1],
               check_expected=expect_paths(["a/f", "o/x", "h2"], ["a/gone"]))


@case("bigdir", "large directories (multi-block in fsmeta), names sorting around '.', 255-byte names")
def c_bigdir(env):
    rng = random.Random(7)
    names = ["f%04d_%s" % (i, "x" * rng.randrange(0, 60)) for i in range(700)]
    names += ["-dash", "!bang", "#hash", "%pct", "+plus", ",comma", "(paren", "'q", "~tilde",
              "a" * 255, "b" * 254 + "c", "\u00e9t\u00e9", "sp ace"]
    l1 = Tar().dir("big")
    for n in names:
        l1.file("big/" + n, n[:10])
    l2 = Tar().dir("big")
    for i, n in enumerate(names):
        if i % 3 == 0:
            l2.whiteout("big/" + n)
    for i in range(300):
        l2.file("big/g%04d" % i, "g")
    stack_case(env, "bigdir", [l1, l2],
               check_expected=expect_paths(["big/-dash", "big/g0299", "big/" + "a" * 255]))


@case("root-opaque", "an opaque marker on a layer's root directory ('./.wh..wh..opq')")
def c_root_opaque(env):
    l1 = Tar().root().file("a", "a").dir("d").file("d/x", "x")
    l2 = Tar().root().opaque(".").file("b", "b")
    stack_case(env, "root-opaque", [l1, l2])


def many_layers(n, seed):
    """n small layers touching overlapping paths: new and changed files,
    whiteouts of files and directories, opaque directories, type changes,
    hard links, symlinks, devices, directory metadata and xattrs."""
    rng = random.Random(seed)
    dirs = ["d%d" % i for i in range(6)]
    tars = []
    for k in range(n):
        t = Tar()
        if k % 7 == 0:
            t.root(mode=0o755, mtime=T0 + k)
        for d in rng.sample(dirs, 4):
            op = rng.randrange(11)
            f = "%s/f%d" % (d, rng.randrange(8))
            if op <= 2:
                t.file(f, "layer %d %s\n" % (k, f) * rng.randrange(1, 50), mtime=T0 + k)
            elif op == 3:
                t.whiteout(f)
                t.file("%s/s%d/g%d" % (d, rng.randrange(3), rng.randrange(3)), "g%d" % k)
            elif op == 4:
                t.whiteout("%s/s%d" % (d, rng.randrange(3)))
            elif op == 5:
                t.dir(d, mode=rng.choice([0o755, 0o700, 0o775]), mtime=T0 + k,
                      xattrs={"user.layer": str(k)} if rng.random() < 0.5 else None)
                t.opaque(d)
                t.file(d + "/f%d" % rng.randrange(8), "opaque %d" % k)
            elif op == 6:
                t.whiteout(d) if rng.random() < 0.5 else t.file(d, "file over dir %d" % k)
            elif op == 7:
                t.file(f, "linked %d" % k)
                t.hardlink("%s/s0/h%d" % (d, k), f)
            elif op == 8:
                t.symlink(f, "../%s/f%d" % (rng.choice(dirs), rng.randrange(8)))
            elif op == 9:
                t.dir(d, mode=0o750, uid=k, gid=k, mtime=T0 + 1000 + k,
                      xattrs={"user.meta": "m%d" % k})
                t.dir("%s/s%d" % (d, rng.randrange(3)), mtime=T0 + 2000 + k)
            else:
                if rng.random() < 0.5:
                    t.chr("%s/c%d" % (d, rng.randrange(3)), 1, k)
                else:
                    t.fifo("%s/c%d" % (d, rng.randrange(3)))
        tars.append(t)
    return tars


@case("same-layer-twice", "one layer image given twice in a stack (L1, L2, L1)")
def c_same_twice(env):
    d = env.casedir("same-layer-twice")
    l1, l2 = env.layers(d, [Tar().dir("a").file("a/f", "f1").file("h1", "h").hardlink("h2", "h1"),
                            Tar().dir("a").opaque("a").file("a/g", "g").whiteout("h2")])
    probs, _ = verify_stack(env, d, [l1, l2, l1])
    if probs:
        fail("%d difference(s)" % len(probs), probs)


@case("two-layers-random", "2 generated layers (quick form of the 128-layer case)")
def c_two_random(env):
    stack_case(env, "two-layers-random", many_layers(2, 11))


@case("128-layers", "128 small layers touching overlapping paths")
def c_128(env):
    stack_case(env, "128-layers", many_layers(128, 5))


# -- refusals -------------------------------------------------------------

def expect_refusal(env, d, layers, codes, *, name_in_msg=None, vmdk=True, what=""):
    """Runs merge and expects one of `codes`, a message naming the culprit
    and nothing at all left in the output directory."""
    out = os.path.join(d, "refuse-out")
    os.makedirs(out, exist_ok=True)
    args = ["merge", "-o", os.path.join(out, "fsmeta.erofs")]
    if vmdk:
        args += ["--vmdk", os.path.join(out, "merged.vmdk")]
    p = env.elrun(*(args + list(layers)), check=False, timeout=10, limit=True)
    probs = []
    if p.returncode not in codes:
        probs.append("%s: %s, expected exit %s (%s)" % (what, rc_text(p), "/".join(map(str, codes)),
                                                        tail(p.stderr)))
    elif name_in_msg and name_in_msg not in p.stderr.decode("utf-8", "replace"):
        probs.append("%s: the message does not name %s: %s" % (what, name_in_msg, tail(p.stderr)))
    left = os.listdir(out)
    if left and p.returncode != 0:
        probs.append("%s: left %s behind after failing" % (what, ", ".join(left)))
    shutil.rmtree(out)
    return probs, p


@case("refuse-blksz-512", "a layer with 512-byte blocks (hand-made, mountable) -> exit 4 naming it")
def c_refuse_512(env):
    d = env.casedir("refuse-blksz-512")
    img = M.craft_512_image(os.path.join(d, "layers", "b512.erofs"))
    probs = []
    mp = env.mount(img, "erofs", "ro,loop")
    try:
        with open(os.path.join(mp, "f"), "rb") as f:
            if f.read() != b"hello":
                probs.append("the hand-made 512-byte image does not read back (fixture broken)")
    finally:
        env.umount(mp)
    good = env.layers(d, [Tar().file("a", "a")])[0]
    for layers in ([img], [good, img], [img, good]):
        pr, _ = expect_refusal(env, d, layers, (4,), name_in_msg="b512.erofs",
                               what="merge %s" % " ".join(os.path.basename(l) for l in layers))
        probs += pr
    # a 4 KiB layer whose blkszbits says 512: corrupt, or refused
    buf = bytearray(read(good))
    buf[M.SB_OFF + 12] = 9
    M.fix_checksum(buf)
    patched = os.path.join(d, "layers", "patched.erofs")
    with open(patched, "wb") as f:
        f.write(buf)
    pr, _ = expect_refusal(env, d, [good, patched], (3, 4), what="patched blkszbits 9")
    probs += pr
    if probs:
        fail("%d problem(s)" % len(probs), probs)


@case("refuse-inline", "a layer whose small files are FLAT_INLINE (mkfs.erofs 1.5 default) -> exit 4 naming it")
def c_refuse_inline(env):
    if not env.mkfs_erofs:
        raise CaseSkipped("mkfs.erofs not found")
    d = env.casedir("refuse-inline")
    src = os.path.join(d, "src")
    os.makedirs(src)
    with open(os.path.join(src, "small"), "wb") as f:
        f.write(b"a small file gets an inline tail\n")
    img = os.path.join(d, "layers", "mkfs-inline.erofs")
    env.run([env.mkfs_erofs, "-T%d" % T0, img, src])
    good = env.layers(d, [Tar().file("a", "a")])[0]
    probs = []
    for layers in ([img], [good, img]):
        pr, _ = expect_refusal(env, d, layers, (4,), name_in_msg="mkfs-inline.erofs",
                               what="merge %s" % " ".join(os.path.basename(l) for l in layers))
        probs += pr
    if probs:
        fail("%d problem(s)" % len(probs), probs)


@case("refuse-devices", "layers with devices of their own (an fsmeta; a --flat fsmeta) are refused")
def c_refuse_devices(env):
    d = env.casedir("refuse-devices")
    layers = env.layers(d, [Tar().file("a", "a" * 5000), Tar().file("b", "b")])
    fsmeta, _, _ = merge(env, d, layers)
    flat, _, _ = merge(env, d, layers, out="flat.erofs", vmdk=None, flat=True)
    probs = []
    pr, _ = expect_refusal(env, d, [layers[0], fsmeta], (4,), name_in_msg="fsmeta.erofs",
                           what="fsmeta as a layer")
    probs += pr
    pr, _ = expect_refusal(env, d, [layers[0], flat], (3, 4), name_in_msg="flat.erofs",
                           what="flat fsmeta as a layer")
    probs += pr
    if probs:
        fail("%d problem(s)" % len(probs), probs)


@case("refuse-misc", "bad inputs: missing layer, not EROFS, truncated, bad checksum, '\"' in a path, no output dir")
def c_refuse_misc(env):
    d = env.casedir("refuse-misc")
    good = env.layers(d, [Tar().file("a", "a" * 5000).dir("b").file("b/c", "c")])[0]
    probs = []
    pr, _ = expect_refusal(env, d, [good, os.path.join(d, "nope.erofs")], (1,), what="missing layer")
    probs += pr
    tarf = os.path.join(d, "tars", "l0.tar")
    pr, _ = expect_refusal(env, d, [good, tarf], (3,), what="a tar as a layer", name_in_msg="l0.tar")
    probs += pr
    empty = os.path.join(d, "layers", "empty.erofs")
    open(empty, "wb").close()
    pr, _ = expect_refusal(env, d, [empty], (3,), what="an empty file as a layer")
    probs += pr
    data = read(good)
    for cut in (M.BLK, len(data) - M.BLK, 2000):
        trunc = os.path.join(d, "layers", "trunc%d.erofs" % cut)
        with open(trunc, "wb") as f:
            f.write(data[:cut])
        pr, _ = expect_refusal(env, d, [good, trunc], (3,), what="layer truncated to %d bytes" % cut,
                               name_in_msg=os.path.basename(trunc))
        probs += pr
    # a flipped byte in block 0 behind the superblock: the kernel refuses to
    # mount such an image ("invalid checksum"), so must merge
    buf = bytearray(data)
    if M.Super(buf).compat & 1:
        buf[M.BLK - 96] ^= 0x55
        badsum = os.path.join(d, "layers", "badsum.erofs")
        with open(badsum, "wb") as f:
            f.write(buf)
        pr, _ = expect_refusal(env, d, [good, badsum], (3,), what="superblock checksum mismatch",
                               name_in_msg="badsum.erofs")
        probs += pr
    else:
        probs.append("the fixture layer has no superblock checksum")
    quoted = os.path.join(d, "layers", 'has"quote.erofs')
    shutil.copy(good, quoted)
    pr, p = expect_refusal(env, d, [good, quoted], (1, 3, 4), what="'\"' in a layer path with --vmdk")
    probs += pr
    if p.returncode == 0:
        probs.append("a '\"' in a layer path was accepted into the VMDK")
    out = os.path.join(d, "q-out")
    os.makedirs(out)
    p = env.elrun("merge", "-o", os.path.join(out, "fs.erofs"), good, quoted, check=False)
    if p.returncode != 0:
        probs.append("'\"' in a layer path without --vmdk: %s (%s)" % (rc_text(p), tail(p.stderr)))
    p = env.elrun("merge", "-o", os.path.join(d, "no", "such", "dir", "fs.erofs"),
                  "--vmdk", os.path.join(d, "out", "m.vmdk"), good, check=False)
    if p.returncode != 1 or os.listdir(os.path.join(d, "out")):
        probs.append("output in a missing directory: %s, left %s" % (rc_text(p), os.listdir(os.path.join(d, "out"))))
    p = env.elrun("merge", "-o", os.path.join(d, "out", "fs.erofs"),
                  "--vmdk", os.path.join(d, "no", "such", "m.vmdk"), good, check=False)
    if p.returncode == 0 or os.listdir(os.path.join(d, "out")):
        probs.append("VMDK in a missing directory: %s, left %s" % (rc_text(p), os.listdir(os.path.join(d, "out"))))
    p = env.elrun("merge", "-o", os.path.join(d, "out", "fs.erofs"), check=False)
    if p.returncode == 0 or os.listdir(os.path.join(d, "out")):
        probs.append("no layers: %s" % rc_text(p))
    if probs:
        fail("%d problem(s)" % len(probs), probs)


# -- hostile inputs -----------------------------------------------------------

def rich_layer():
    return (Tar().root(xattrs={"user.r": "1"}).dir("a", xattrs={"user.a": "x" * 100})
            .file("a/f", "data" * 3000, xattrs={"trusted.t": "t", "security.capability": CAP_NET_BIND})
            .hardlink("a/f2", "a/f").dir("a/b").file("a/b/g", "g").symlink("a/s", "f")
            .symlink("a/long", "L" * 300).chr("a/c", 1, 3).blk("a/bl", 8, 1).fifo("a/p")
            .whiteout("a/gone").dir("o").opaque("o").file("o/x", "x" * 10000)
            .dir("many").file("many/e", "").file("many/n", "n", mtime=T0, nsec=5))


def hostile_merge(env, d, layers):
    """Merges possibly hostile layers (10 s, 2 GiB of address space): None
    when it behaved (exit 0 with an fsmeta that check accepts, or exit 3/4
    with nothing left behind), else what went wrong; and the exit code."""
    out = os.path.join(d, "hostile-out")
    os.makedirs(out, exist_ok=True)
    fs, vm = os.path.join(out, "fsmeta.erofs"), os.path.join(out, "merged.vmdk")
    t = time.time()
    try:
        try:
            p = env.run([env.el, "merge", "-o", fs, "--vmdk", vm] + list(layers), check=False,
                        timeout=10, limit=True)
        except CaseFailed:
            return "merge did not finish within 10 s", "hang"
        if p.returncode not in (0, 3, 4):
            return "merge %s after %.1fs: %s" % (rc_text(p), time.time() - t,
                                                 tail(p.stderr, 200)), p.returncode
        if p.returncode != 0 and os.listdir(out):
            return "merge exit %d left %s" % (p.returncode, os.listdir(out)), p.returncode
        if p.returncode == 0:
            c = env.elrun("check", fs, check=False, timeout=10, limit=True)
            if c.returncode != 0:
                return "merge succeeded but check of its fsmeta says %s: %s" % (
                    rc_text(c), tail(c.stdout + c.stderr, 200)), 0
        return None, p.returncode
    finally:
        shutil.rmtree(out)


def fuzz_case(env, name, copies, flips, seed):
    d = env.casedir(name)
    base, img, upper = env.layers(d, [Tar().dir("a").file("a/under", "u").file("top", "t"),
                                      rich_layer(),
                                      Tar().dir("a").whiteout("a/f2").file("a/up", "u")])
    data = read(img)
    # aim at metadata: skip the blocks of file data (flips there are harmless)
    skip = M.file_data_blocks(bytearray(data))
    meta = [b for b in range(len(data) // M.BLK) if b not in skip]
    rng = random.Random(seed)
    probs = []
    codes = {}
    for i in range(copies):
        buf = bytearray(data)
        for _ in range(flips(rng)):
            off = rng.choice(meta) * M.BLK + rng.randrange(M.BLK)
            buf[off] ^= rng.randrange(1, 256)
        path = os.path.join(d, "layers", "fuzz.erofs")
        with open(path, "wb") as f:
            f.write(buf)
        # the corrupted image alone, above a valid layer, below a valid layer
        why, code = hostile_merge(env, d, ([path], [base, path], [path, upper])[i % 3])
        if why:
            probs.append("copy %d: %s" % (i, why))
            if env.args.keep:
                shutil.copyfile(path, os.path.join(d, "failed-%d.erofs" % i))
        codes[code] = codes.get(code, 0) + 1
    if env.args.verbose:
        print("#   %s exit codes: %s" % (name, codes))
    if probs:
        fail("%d of %d corrupted copies misbehaved" % (len(probs), copies), probs)


@case("hostile-flips-few", "150 copies of a layer with 1-8 random byte flips each (seed 1)")
def c_flips_few(env):
    fuzz_case(env, "hostile-flips-few", 150, lambda r: r.randrange(1, 9), 1)


@case("hostile-flips-many", "30 copies of a layer with 300 random byte flips each (seed 2)")
def c_flips_many(env):
    fuzz_case(env, "hostile-flips-many", 30, lambda r: 300, 2)


def chain_image(env, d, depth):
    """A layer whose directories c/a/a/.../a each also hold an empty dir b."""
    t = Tar()
    path = "c"
    t.dir(path)
    for _ in range(depth):
        t.dir(path + "/b")
        t.file(path + "/f", "f")
        path += "/a"
        t.dir(path)
    return env.layers(d, [t])[0]


def hostile_case(env, name, patch, above_valid):
    d = env.casedir(name)
    img = chain_image(env, d, 30)
    buf = bytearray(read(img))
    patch(buf)
    M.fix_checksum(buf)
    bad = os.path.join(d, "layers", "bad.erofs")
    with open(bad, "wb") as f:
        f.write(buf)
    probs = []
    why, _ = hostile_merge(env, d, [img, bad] if above_valid else [bad])
    if why:
        probs.append(why)
    c = env.elrun("check", bad, check=False, timeout=10, limit=True)
    if c.returncode == 0:
        probs.append("erofs-layer check accepts the crafted image (expected a refusal)")
    if probs:
        fail("%d problem(s)" % len(probs), probs)


@case("hostile-dir-cycle", "a directory entry pointing back at an ancestor (cycle) -> exit 3, no hang")
def c_cycle(env):
    def patch(buf):
        M.set_dirent_nid(buf, "c/a/a/a", "b", M.lookup(buf, "c/a"))
    hostile_case(env, "hostile-dir-cycle", patch, False)


@case("hostile-dir-dag", "30 nested directories each reachable under two names (2^30 paths) -> bounded")
def c_dag(env):
    def patch(buf):
        path = "c"
        for _ in range(30):
            M.set_dirent_nid(buf, path, "b", M.lookup(buf, path + "/a"))
            path += "/a"
    hostile_case(env, "hostile-dir-dag", patch, True)


# ---------------------------------------------------------------------------

def loop_lines():
    p = subprocess.run(["losetup", "-a"], capture_output=True)
    return set(p.stdout.decode("utf-8", "replace").splitlines())


def mount_points():
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            out.add(line.split()[4])
    return out


def preflight():
    if os.geteuid() != 0:
        return "not root"
    for fs in ("erofs", "overlay"):
        with open("/proc/filesystems") as f:
            have = any(l.split()[-1] == fs for l in f if l.strip())
        if not have:
            subprocess.run(["modprobe", fs], capture_output=True)
            with open("/proc/filesystems") as f:
                if not any(l.split()[-1] == fs for l in f if l.strip()):
                    return "no %s in this kernel" % fs
    if not os.path.exists("/dev/loop-control") or not shutil.which("losetup"):
        return "no loop devices"
    p = subprocess.run(["losetup", "-f"], capture_output=True)
    if p.returncode != 0:
        return "no free loop device: " + tail(p.stderr)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--erofs-layer", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--only", action="append", default=[], help="glob of case names (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--no-qemu-img", action="store_true",
                    help="act as if qemu-img were missing (tests the visible skip)")
    args = ap.parse_args()
    if args.list:
        for name, desc, _ in CASES:
            print("%-26s %s" % (name, desc))
        return 0
    why = preflight()
    if why:
        print("skip: cannot run the merge tests here: %s" % why)
        print("0 passed, 0 failed, 1 skipped")
        return 77
    if not os.access(args.erofs_layer, os.X_OK):
        print("FAIL setup: %s is not executable" % args.erofs_layer)
        print("0 passed, 1 failed")
        return 1
    os.makedirs(args.workdir, exist_ok=True)
    loops0, mounts0 = loop_lines(), mount_points()
    env = Env(args)
    passed = failed = skipped = 0
    t_all = time.time()
    try:
        for name, desc, fn in CASES:
            if args.only and not any(fnmatch.fnmatch(name, pat) for pat in args.only):
                continue
            t = time.time()
            env.sub_skips = []
            try:
                fn(env)
                errs = env.cleanup()
                if errs:
                    raise CaseFailed("cleanup", errs)
                print("ok %s" % name)
                passed += 1
            except CaseSkipped as e:
                env.cleanup()
                print("skip %s: %s" % (name, e))
                skipped += 1
            except CaseFailed as e:
                env.cleanup()
                print("FAIL %s: %s" % (name, e.reason))
                for det in e.details[:MAX_DETAILS]:
                    print("#   %s" % det)
                if len(e.details) > MAX_DETAILS:
                    print("#   ... and %d more" % (len(e.details) - MAX_DETAILS))
                failed += 1
            except Exception:
                env.cleanup()
                print("FAIL %s: internal error: %s" % (name, tail(traceback.format_exc(), 1500)))
                failed += 1
            for s in sorted(set(env.sub_skips)):
                print("skip %s/qemu-img: %s" % (name, s))
                skipped += 1
            if args.verbose:
                print("#   %s: %.1fs" % (name, time.time() - t))
            sys.stdout.flush()
            if not args.keep:
                shutil.rmtree(os.path.join(env.workdir, name), ignore_errors=True)
    finally:
        env.cleanup()
        for name in os.listdir(env.mroot):
            try:
                os.rmdir(os.path.join(env.mroot, name))  # empty mount points only
            except OSError:
                pass
        try:
            os.rmdir(env.mroot)
        except OSError:
            pass
    # final sanity: nothing of ours left mounted or attached
    deadline = time.time() + 5
    ours = (env.workdir, env.mroot)
    while True:
        new_loops = [l for l in loop_lines() - loops0 if any(o in l for o in ours)]
        new_mounts = [m for m in mount_points() - mounts0 if any(m.startswith(o) for o in ours)]
        if (not new_loops and not new_mounts) or time.time() > deadline:
            break
        time.sleep(0.2)
    if new_loops or new_mounts:
        print("FAIL no-leftovers: %s" % "; ".join(new_loops + new_mounts))
        failed += 1
    elif os.path.exists(env.mroot):
        print("FAIL no-leftovers: mount root %s not removable" % env.mroot)
        failed += 1
    else:
        print("ok no-leftovers")
        passed += 1
    if not args.keep:
        shutil.rmtree(os.path.join(env.workdir, "_empty"), ignore_errors=True)
    if args.verbose:
        print("#   total %.1fs" % (time.time() - t_all))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
