#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Integration tests: spin-erofs-snapshotter behind a real containerd (1.6).

    run-integration.py --daemon PATH --erofs-layer PATH --workdir DIR
                       [--only GLOB]... [--keep] [-v] [--list]

Two daemons run in DIR: the lab (tests/integration/lab.sh: our daemon as
containerd's proxy snapshotter `spin-erofs`, and a private containerd), and a
solo daemon no containerd talks to (ctr pointed straight at its socket: keys
arrive exactly as given, and containerd's garbage collector, which removes
every backend snapshot its metadata does not know, stays away).

Images are made offline by mkimage.py (cached in DIR/images, rebuilt when the
spec or the generator changes) and imported with `ctr images import`. The
ground truth is containerd's own overlayfs snapshotter: the same image is
unpacked into it, both views are mounted on the host (ours as the kernel's
erofs with device= loop devices) and compared attribute by attribute.

Prints `ok NAME`, `FAIL NAME: reason` (details indented below) or
`skip NAME: reason` per case, then `N passed, M failed[, K skipped]`.
Exit 0 all passed, 1 some failed, 77 cannot run here (not root, no
containerd/ctr, no erofs/overlay/loop devices).

Everything started is stopped at the end, whatever happened, and the last
case checks that nothing leaked: processes, mounts, loop devices, snapshot
directories of removed snapshots, temporary files.
"""

import argparse
import fcntl
import fnmatch
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "golden"))

import mkimage  # noqa: E402
import treecmp  # noqa: E402

LAB_SH = os.path.join(HERE, "lab.sh")
SN = "spin-erofs"
MAX_DETAILS = 12
DEFAULT_SIZE = 64 << 20
SB_OFF = 1024
SB_MAGIC = 0xE0F5E1E2
FS_IOC_GETFLAGS = 0x80086601
FS_IMMUTABLE_FL = 0x10
LOG_LINE = re.compile(r'^time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z" '
                      r'level=(debug|info|warning|error) msg=("([^"\\]|\\.)*"|[^ "]+)'
                      r'( [A-Za-z_][A-Za-z0-9_.-]*=("([^"\\]|\\.)*"|[^ "]*))*$')
SNAPSHOT_FILES = {".erofslayer", ".nomerge", "fs", "work", "lower", "layer.erofs", "fsmeta.erofs",
                  "merged.vmdk", "rwlayer.img", "layer.erofs.dmverity", "fsmeta.erofs.dmverity"}


def veritysetup_problem(image, sidecar):
    """What veritysetup verify says of IMAGE's tree and SIDECAR's root hash
    (None: accepted): the outside judge of the dm-verity layout."""
    try:
        with open(sidecar) as f:
            side = json.load(f)
    except (OSError, ValueError) as e:
        return "%s: %s" % (sidecar, e)
    r = run(["veritysetup", "verify", image, image, side["roothash"],
             "--hash-offset=%d" % side["hashoffset"]], check=False, timeout=300)
    return None if r.rc == 0 else "veritysetup verify %s: %s" % (image, tail(r.err or r.out))


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


def tail(s, n=300):
    if isinstance(s, bytes):
        s = s.decode("utf-8", "replace")
    s = str(s).strip().replace("\n", " | ")
    return s if len(s) <= n else "..." + s[-n:]


class Result:
    def __init__(self, args, rc, out, err):
        self.args, self.rc, self.out, self.err = args, rc, out, err

    def __repr__(self):
        return "%s -> %d: %s %s" % (" ".join(self.args[:6]), self.rc, tail(self.out, 200),
                                    tail(self.err, 200))


def run(args, *, timeout=120, check=True, env=None, input=None):
    args = [str(a) for a in args]
    try:
        p = subprocess.run(args, capture_output=True, timeout=timeout, env=env, input=input)
    except subprocess.TimeoutExpired:
        fail("timed out after %ds: %s" % (timeout, " ".join(args)[:200]))
    r = Result(args, p.returncode, p.stdout.decode("utf-8", "replace"),
               p.stderr.decode("utf-8", "replace"))
    if check and r.rc != 0:
        fail("%s exited %d: %s" % (" ".join(args[:5])[:160], r.rc, tail(r.err or r.out)))
    return r


# ---- host resources: mounts and loop devices we make ---------------------------

class Host:
    def __init__(self, mnt_dir):
        self.mnt_dir = mnt_dir
        self.mounts = []   # mount points, in mount order
        self.loops = []    # loop devices we attached
        self.seq = 0

    def mountpoint(self, label):
        self.seq += 1
        mp = os.path.join(self.mnt_dir, "%s-%d" % (re.sub(r"[^A-Za-z0-9]+", "-", label), self.seq))
        os.makedirs(mp, exist_ok=True)
        return mp

    def losetup(self, path):
        dev = run(["losetup", "-r", "-f", "--show", path], timeout=60).out.strip()
        self.loops.append(dev)
        return dev

    def detach(self, dev):
        run(["losetup", "-d", dev], check=False, timeout=30)
        if dev in self.loops:
            self.loops.remove(dev)

    def mount(self, args, mp):
        run(["mount"] + args + [mp], timeout=120)
        self.mounts.append(mp)
        return mp

    def mount_snapshot(self, mounts, label, rw=False):
        """Mounts what a snapshotter returned (one mount: erofs, overlay or
        bind) on a fresh mount point; device= paths become loop devices."""
        check(len(mounts) == 1, "expected one mount, got %d: %s" % (len(mounts), mounts))
        m = mounts[0]
        mp = self.mountpoint(label)
        t, src, opts = m["Type"], m["Source"], list(m.get("Options") or [])
        if t == "bind":
            return self.mount(["--bind", "-o", ",".join(o for o in opts if o != "rbind"), src], mp)
        if t == "erofs":
            out = []
            for o in opts:
                if o.startswith("device="):
                    out.append("device=" + self.losetup(o[len("device="):]))
                elif o.startswith("X-containerd.dmverity="):
                    # containerd 2.3's erofs mount handler puts a dm-verity
                    # device under the source; this host has no
                    # device-mapper: the same check, in user space
                    why = veritysetup_problem(src, o[len("X-containerd.dmverity="):])
                    check(why is None, "the mount's dm-verity: %s" % why)
                else:
                    out.append(o)
            return self.mount(["-t", "erofs", "-o", ",".join(out), src], mp)
        return self.mount(["-t", t, "-o", ",".join(opts), src], mp)

    def umount(self, mp):
        last = ""
        for _ in range(50):
            p = subprocess.run(["umount", mp], capture_output=True)
            if p.returncode == 0 or b"not mounted" in p.stderr:
                break
            last = p.stderr.decode("utf-8", "replace")
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", mp], capture_output=True)
            if mp in self.mounts:
                self.mounts.remove(mp)
            fail("umount %s: %s" % (mp, tail(last)))
        if mp in self.mounts:
            self.mounts.remove(mp)
        try:
            os.rmdir(mp)
        except OSError:
            pass

    def release_loops(self):
        for dev in list(self.loops):
            self.detach(dev)

    def cleanup(self):
        errors = []
        for mp in reversed(list(self.mounts)):
            try:
                self.umount(mp)
            except CaseFailed as e:
                errors.append(e.reason)
        self.release_loops()
        return errors


class Mounted:
    """with Mounted(host, mounts, label) as mp: ... (loop devices released after)"""

    def __init__(self, host, mounts, label):
        self.host, self.mounts, self.label = host, mounts, label

    def __enter__(self):
        self.loops_before = list(self.host.loops)
        self.mp = self.host.mount_snapshot(self.mounts, self.label)
        return self.mp

    def __exit__(self, *exc):
        self.host.umount(self.mp)
        for dev in list(self.host.loops):
            if dev not in self.loops_before:
                self.host.detach(dev)
        return False


# ---- the lab (lab.sh) and the solo daemon ----------------------------------------

class Lab:
    """Our daemon + a private containerd, through lab.sh's functions."""

    DAEMON_FLAGS = ("--default-size", "64M")

    def __init__(self, env):
        self.env = env
        self.dir = env.lab_dir
        self.sock = os.path.join(self.dir, "containerd.sock")
        self.sn_sock = os.path.join(self.dir, "sn.sock")
        self.root = os.path.join(self.dir, "sn")
        self.log = os.path.join(self.dir, "sn.log")
        self.started = False

    def sh(self, *fn_args, timeout=120, check=True):
        e = dict(os.environ, LAB_DIR=self.dir, SPIN_EROFS_SNAPSHOTTER=self.env.daemon,
                 LAB_CTR=self.env.ctr, LAB_CONTAINERD=self.env.containerd, LAB_TIMEOUT="30",
                 LAB_STOP_TIMEOUT="20", LAB_CONTAINERD_LOG_LEVEL=os.environ.get(
                     "LAB_CONTAINERD_LOG_LEVEL", "debug"))
        return run(["bash", "-c", '. "$0" && "$@"', LAB_SH] + list(fn_args), timeout=timeout,
                   check=check, env=e)

    def start(self):
        self.started = True
        return self.sh("lab_start", self.dir, *self.DAEMON_FLAGS)

    def pid(self, name):
        try:
            with open(os.path.join(self.dir, name + ".pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def rc(self, name):
        try:
            with open(os.path.join(self.dir, name + ".rc")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def running(self, name):
        pid = self.pid(name)
        return pid is not None and self.rc(name) is None and os.path.exists("/proc/%d" % pid)

    def ctr(self, *args, timeout=300, check=True):
        return run([self.env.ctr, "--address", self.sock] + list(args), timeout=timeout,
                   check=check)

    def sn(self, *args, **kw):
        return self.ctr("snapshots", "--snapshotter", SN, *args, **kw)

    def ov(self, *args, **kw):
        return self.ctr("snapshots", "--snapshotter", "overlayfs", *args, **kw)

    def direct(self, *args, **kw):
        """ctr straight at the daemon's socket (keys as containerd stores them)."""
        return run([self.env.ctr, "--address", self.sn_sock, "snapshots", "--snapshotter", SN]
                   + list(args), timeout=kw.get("timeout", 120), check=kw.get("check", True))

    def log_size(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def log_since(self, off):
        with open(self.log, "rb") as f:
            f.seek(off)
            return f.read().decode("utf-8", "replace")

    def wait_snapshotter(self, timeout=20):
        """containerd reconnects to a restarted daemon by itself (docs/containerd-contract.md)."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.sn("ls", check=False, timeout=30)
            if last.rc == 0:
                return time.time()
            time.sleep(0.2)
        fail("containerd did not reach the restarted daemon within %ds: %s" % (timeout, tail(last.err)))


class Solo:
    """A daemon of our own with no containerd: for lifecycle, bad input, load."""

    def __init__(self, env, name="solo"):
        self.env = env
        self.dir = os.path.join(env.work, name)
        self.root = os.path.join(self.dir, "root")
        self.sock = os.path.join(self.dir, "sn.sock")
        self.log = os.path.join(self.dir, "sn.log")
        self.proc = None

    def start(self, *extra, wait=True):
        os.makedirs(self.dir, exist_ok=True)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [self.env.daemon, "--root", self.root, "--address", self.sock, "--log-level", "debug"]
            + list(extra), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        logf.close()
        self.env.procs.append(self.proc)
        if wait:
            deadline = time.time() + 30
            while not sock_answers(self.sock):
                if self.proc.poll() is not None:
                    fail("the solo daemon exited %d while starting: %s" % (
                        self.proc.returncode, tail(read_tail(self.log))))
                if time.time() > deadline:
                    fail("the solo daemon did not answer within 30 s")
                time.sleep(0.02)
        return self.proc

    def stop(self, expect_zero=True):
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            fail("the solo daemon ignored SIGTERM for 20 s")
        if expect_zero and rc != 0:
            fail("the solo daemon exited %d on SIGTERM, expected 0: %s" % (rc, tail(read_tail(self.log))))
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait(10)

    def ctr(self, *args, timeout=120, check=True):
        return run([self.env.ctr, "--address", self.sock, "snapshots", "--snapshotter", SN]
                   + list(args), timeout=timeout, check=check)


def sock_answers(path):
    import socket
    if not os.path.exists(path):
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def read_from(path, off):
    """PATH's text from byte OFF on."""
    with open(path, encoding="utf-8", errors="replace") as f:
        f.seek(off)
        return f.read()


def read_tail(path, n=2000):
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - n))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# ---- containerd releases ------------------------------------------------------------

# The containerd releases the suites run on (docs/containerd-contract.md): 1.6 is Debian 12's
# package, 1.7 Debian 13's and 2.1 Debian sid's, both unpacked by
# scripts/fetch-debs.sh into SPIN_DEBS (default /var/tmp/spin-debs), never
# installed.
CONTAINERD_SUITES = {"1.7": ("trixie", "containerd-trixie"), "2.1": ("sid", "containerd-sid")}
CONTAINERD_RELEASES = ("1.6",) + tuple(CONTAINERD_SUITES)


def containerd_release(release):
    """(containerd, ctr) of RELEASE, fetched once."""
    if release == "1.6":
        c, t = shutil.which("containerd"), shutil.which("ctr")
        check(c and t, "no containerd/ctr on PATH (Debian 12's containerd package)")
        return c, t
    suite, name = CONTAINERD_SUITES[release]
    dest = os.path.join(os.environ.get("SPIN_DEBS", "/var/tmp/spin-debs"), name)
    r = run([os.path.join(REPO, "scripts", "fetch-debs.sh"), suite, dest, "containerd"],
            timeout=600, check=False)
    check(r.rc == 0, "cannot fetch containerd %s from Debian %s: %s" % (release, suite, tail(r.err)))
    bin_dir = os.path.join(dest, "usr", "bin")
    return os.path.join(bin_dir, "containerd"), os.path.join(bin_dir, "ctr")


# ---- the environment and its memo of done work ------------------------------------

class Env:
    def __init__(self, a):
        self.daemon = os.path.abspath(a.daemon)
        self.erofs_layer = os.path.abspath(a.erofs_layer)
        # run-differ.py sets these itself
        self.release = getattr(a, "containerd", "1.6")
        self.containerd, self.ctr = containerd_release(self.release)
        self.work = os.path.abspath(a.workdir)
        self.lab_dir = os.path.join(self.work, "lab")
        self.img_dir = os.path.join(self.work, "images")
        self.verbose = a.verbose
        self.load_rounds = a.load_rounds
        # run-differ.py makes an Env of its own arguments, without these
        self.full_load_rounds = getattr(a, "full_load_rounds", 200)
        self.containerd_load_rounds = getattr(a, "containerd_load_rounds", 50)
        self.host = Host(os.path.join(self.work, "mnt"))
        self.lab = Lab(self)
        self.solo = Solo(self)
        self.procs = []
        self.memo = {}
        self.images = {}
        self.uniq = 0
        self.gc_done = False

    def name(self, prefix):
        self.uniq += 1
        return "%s-%d" % (prefix, self.uniq)

    def once(self, key, fn):
        """fn() the first time; its result (or its failure) afterwards."""
        if key in self.memo:
            ok, v = self.memo[key]
            if ok:
                return v
            fail("%s failed earlier: %s" % (key, v))
        try:
            v = fn()
        except CaseFailed as e:
            self.memo[key] = (False, e.reason)
            raise
        self.memo[key] = (True, v)
        return v

    def image(self, name):
        def build():
            os.makedirs(self.img_dir, exist_ok=True)
            spec = mkimage.BUILTIN[name]()
            path = os.path.join(self.img_dir, name + ".tar")
            info = mkimage.build_cached(spec, path)
            info["path"] = path
            return info
        return self.once("image " + name, build)

    def lab_up(self):
        def start():
            r = self.lab.start()
            return r
        return self.once("lab start", start)

    def imported(self, name, snapshotter=SN, local=False):
        """The image NAME imported (once) into SNAPSHOTTER; with LOCAL,
        unpacked client-side (--local, the diff service's list of differs)
        rather than by the transfer service (ctr's default in 1.7 and 2.x)."""
        def imp():
            self.lab_up()
            info = self.image(name)
            args = ["images", "import", "--snapshotter", snapshotter] + (
                ["--local"] if local else []) + [info["path"]]
            r = self.lab.ctr(*args, timeout=600, check=False)
            check(r.rc == 0, "ctr %s exited %d: %s"
                  % (" ".join(args[:-1] + [name]), r.rc, tail(r.err or r.out)))
            return info
        return self.once("import %s into %s" % (name, snapshotter), imp)


# ---- snapshot helpers ---------------------------------------------------------------

def parse_mounts(text):
    try:
        m = json.loads(text)
    except ValueError:
        fail("cannot parse mounts from ctr: %s" % tail(text))
    # ctr 2.x prints an empty Target too; 1.x leaves it out
    for x in m or []:
        if x.get("Target") == "":
            del x["Target"]
    return m or []


def with_dir(rows):
    """How many of ls_table's ROWS have a snapshot directory: all but the
    views with a parent, which the daemon mounts from the parent's files."""
    return sum(1 for parent, kind in rows.values() if not (kind == "View" and parent))


def ls_table(text):
    """`ctr snapshots ls` rows as {key: (parent, kind)}."""
    rows = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 2:
            rows[parts[0]] = ("", parts[1])
        else:
            rows[parts[0]] = (parts[1], parts[-1])
    return rows


def ts_ns(text):
    """ctr's RFC 3339 time (nanoseconds, trailing zeros trimmed) as ns."""
    import calendar
    m = re.match(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z$", text or "")
    check(m is not None, "cannot parse the time %r" % text)
    sec = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    return sec * 10**9 + int((m.group(7) or "0").ljust(9, "0"))


def snap_id(path):
    m = re.search(r"/snapshots/(\d+)(/|$)", path)
    check(m is not None, "%s is not inside a snapshot directory" % path)
    return int(m.group(1))


def sb_inos(path):
    with open(path, "rb") as f:
        f.seek(SB_OFF)
        sb = f.read(24)
    magic, = struct.unpack_from("<I", sb, 0)
    check(magic == SB_MAGIC, "%s: no EROFS superblock" % path)
    return struct.unpack_from("<Q", sb, 16)[0]


def immutable(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        buf = fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))
        return bool(struct.unpack_from("<i", buf, 0)[0] & FS_IMMUTABLE_FL)
    finally:
        os.close(fd)


def view(lab, ctl, key, parent):
    """A view through containerd, kept from its garbage collector: ctr's
    view adds no gc.root label (its prepare does), so a collection that runs
    between the view and the label below removes it; then make it again."""
    for _ in range(10):
        args = ["view", "--mounts", key] + ([parent] if parent else [])
        r = ctl(*args)
        lr = ctl("label", key, "containerd.io/gc.root=integration", check=False)
        if lr.rc == 0:
            return parse_mounts(r.out)
        if not lr.err.strip().endswith("not found"):
            fail("ctr snapshots label %s: %s" % (key, tail(lr.err)))
    fail("containerd's garbage collector removed the view %s ten times in a row" % key)


def compare_trees(host, exp_mounts, act_mounts, label):
    with Mounted(host, exp_mounts, label + "-expected") as emp:
        expected = treecmp.snapshot_dir(emp)
    with Mounted(host, act_mounts, label + "-ours") as amp:
        actual = treecmp.snapshot_dir(amp)
    leaked = sorted(p for p, r in actual.items() if any(k.startswith("trusted.overlay.")
                                                         for k in r["xattrs"]))
    for snap in (expected, actual):
        for rec in snap.values():
            rec["xattrs"] = {k: v for k, v in rec["xattrs"].items()
                             if not k.startswith("trusted.overlay.")}
    # the root's mtime is the time of extraction (containerd skips "./"
    # entries); link counts: overlayfs shows a lower inode's own count,
    # a merge counts the names it keeps (the hard-link groups are compared)
    skip = {p: {"nlink"} for p in expected}
    skip[""] = {"nlink", "mtime"}
    diffs = treecmp.compare(expected, actual, label, extra_skip=skip)
    if leaked and len(act_mounts) == 1 and "device=" in ",".join(act_mounts[0].get("Options") or []):
        diffs.append("[%s] overlay xattrs in the merged view: %s" % (label, leaked[:3]))
    return diffs, expected, actual


def multi_expectations(snap, label):
    """What the 4-layer image must look like (guards the comparison against
    both sides being wrong the same way)."""
    probs = []

    def rec(p):
        return snap.get(p)

    def kids(p):
        pre = p + "/"
        return {q[len(pre):] for q in snap if q.startswith(pre) and "/" not in q[len(pre):]}

    def want(cond, what):
        if not cond:
            probs.append("[%s] %s" % (label, what))

    cap = bytes.fromhex(mkimage.CAP_NET_BIND_V2)
    r = rec("etc/caps")
    want(r and r["xattrs"].get("security.capability") == cap and
         r["xattrs"].get("user.mime_type") == b"text/plain", "etc/caps xattrs: %s" % (r and r["xattrs"]))
    r = rec("share")
    want(r and r["xattrs"] == {"user.dir": b"no"}, "share xattrs (from layer 4): %s" % (r and r["xattrs"]))
    want(kids("dir") == {"new", "new2"}, "dir/ (opaque in layer 2) holds %s" % sorted(kids("dir")))
    want(rec("dir") and rec("dir")["perm"] == 0o755, "dir/ mode")
    want(kids("redo") == {"fresh"}, "redo/ (re-created over a whiteout) holds %s" % sorted(kids("redo")))
    want(kids("opq3") == {"new"}, "opq3/ holds %s" % sorted(kids("opq3")))
    want(kids("freshopq") == {"child"}, "freshopq/ holds %s" % sorted(kids("freshopq")))
    for gone in ("gonedir", "etc/gone", "etc/version", "nothing-here", "many/f00007", "redo/stale"):
        want(gone not in snap, "%s should be deleted" % gone)
    want(rec("swap/file-to-dir") and rec("swap/file-to-dir")["kind"] == "dir" and
         kids("swap/file-to-dir") == {"y"}, "swap/file-to-dir")
    want(rec("swap/dir-to-file") and rec("swap/dir-to-file")["kind"] == "reg", "swap/dir-to-file")
    a, al, al2 = rec("share/a"), rec("share/a-link"), rec("share/a-link2")
    want(a and al and a["ino"] == al["ino"], "share/a and share/a-link are not one inode")
    want(al2 and a and al2["ino"] != a["ino"] and al2["size"] == len("no longer a link\n"),
         "share/a-link2 (replaced in layer 2)")
    one, two = rec("l2hard/one"), rec("l2hard/two")
    want(one and two and one["ino"] == two["ino"] and one["perm"] == 0o640,
         "l2hard hard links: %s" % [(r["ino"], oct(r["perm"])) for r in (one, two) if r])
    for p, kind, rdev in (("dev/null", "chr", (1, 3)), ("dev/loop9", "blk", (7, 9)),
                          ("dev/big", "chr", (240, 300000))):
        r = rec(p)
        want(r and r["kind"] == kind and r["rdev"] == rdev, "%s: %s" % (p, r and (r["kind"], r["rdev"])))
    want(rec("dev/fifo") and rec("dev/fifo")["kind"] == "fifo", "dev/fifo")
    for p, perm in (("bin/su", 0o4755), ("bin/wall", 0o2755), ("tmp", 0o1777), ("etc/keep", 0o644)):
        want(rec(p) and rec(p)["perm"] == perm, "%s mode %s" % (p, rec(p) and oct(rec(p)["perm"])))
    want(rec("etc/bigids") and (rec("etc/bigids")["uid"], rec("etc/bigids")["gid"]) == (3000000, 4000000),
         "etc/bigids owner")
    # containerd's Apply clamps times before 1970 to 0 (archive.boundTime)
    want(rec("etc/old") and rec("etc/old")["mtime"] == (0, 0),
         "etc/old mtime %s (1969 in the tar, clamped to 0 by containerd)" % (rec("etc/old") and (rec("etc/old")["mtime"],)))
    want(rec("etc/nanos") and rec("etc/nanos")["mtime"] == (1700000000, 250000000), "etc/nanos mtime")
    want(rec("many/f00008") and rec("many/f00008")["mtime"] == (1600000000, 0), "many/f00008")
    want(rec("bin/hello") and rec("bin/hello")["target"] == "../share/a", "bin/hello symlink")
    want(rec("dir/new2") and rec("dir/new2")["xattrs"].get("user.k") == b"\x00\xff\x80", "dir/new2 xattr")
    want(rec("long/" + "n" * 150 + "/" + "f" * 255) is not None, "the long name")
    want(len(kids("many2")) == 3000, "many2/ holds %d files" % len(kids("many2")))
    wh = [p for p, r in snap.items() if r["kind"] == "chr" and r["rdev"] == (0, 0)]
    want(not wh, "whiteouts in the merged view: %s" % wh[:3])
    return probs


def erofs_check(env, path):
    r = run([env.erofs_layer, "check", path], check=False, timeout=300)
    return None if r.rc == 0 else "%s: erofs-layer check exited %d: %s" % (path, r.rc, tail(r.err or r.out))


def snapshot_dir_problems(root, allow_extract=True):
    """Temporary or foreign files under ROOT/snapshots: names starting with
    '.' (.tmp-*, .trash-*, .*.tmp), non-numeric entries, directories without
    the marker, leftovers of the extract directories beside a layer."""
    probs = []
    sdir = os.path.join(root, "snapshots")
    for name in sorted(os.listdir(sdir)):
        p = os.path.join(sdir, name)
        if not name.isdigit():
            probs.append("leftover %s" % p)
            continue
        entries = set(os.listdir(p))
        if ".erofslayer" not in entries:
            probs.append("%s has no .erofslayer marker" % p)
        for e in sorted(entries):
            if e not in SNAPSHOT_FILES:
                probs.append("unexpected %s/%s" % (p, e))
        if "layer.erofs" in entries and ({"fs", "work"} & entries):
            probs.append("%s is committed but keeps %s" % (p, sorted({"fs", "work"} & entries)))
        if not allow_extract and "fs" in entries:
            probs.append("%s: extract directory left" % p)
    return probs


def numeric_dirs(root):
    sdir = os.path.join(root, "snapshots")
    return sorted(int(n) for n in os.listdir(sdir) if n.isdigit())


def loops_under(prefix):
    r = run(["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"], check=False)
    out = []
    try:
        for d in json.loads(r.out or "{}").get("loopdevices", []):
            bf = d.get("back-file") or ""
            if bf.startswith(prefix + "/") or bf.startswith(prefix + " "):
                out.append("%s (%s)" % (d["name"], bf))
    except ValueError:
        pass
    return out


def mounts_under(prefix):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            mp = fields[4].encode().decode("unicode_escape")
            sep = fields.index("-")
            src = fields[sep + 2]
            if mp == prefix or mp.startswith(prefix + "/") or src.startswith(prefix + "/"):
                out.append("%s on %s" % (src, mp))
    return out


def procs_mentioning(text):
    out = []
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in cmd:
            out.append("%s: %s" % (pid, cmd[:160]))
    return out


def poll(fn, timeout, interval=0.2):
    deadline = time.time() + timeout
    while True:
        v = fn()
        if v or time.time() > deadline:
            return v
        time.sleep(interval)


# ---- cases ---------------------------------------------------------------------------

CASES = []


def case(name):
    def deco(fn):
        CASES.append((name, fn))
        return fn
    return deco


@case("daemon-flags")
def t_flags(env):
    """--version, --help, usage errors (exit 2), unusable paths (exit 1)."""
    r = run([env.daemon, "--version"], check=False)
    check(r.rc == 0 and re.match(r"^spin-erofs-snapshotter \S+\n?$", r.out),
          "--version: exit %d, %r" % (r.rc, r.out))
    r = run([env.daemon, "--help"], check=False)
    check(r.rc == 0, "--help exited %d" % r.rc)
    for flag in ("--root", "--address", "--log-level", "--default-size", "--set-immutable",
                 "--containerd-address", "--version"):
        check(flag in r.out, "--help does not mention %s" % flag)
    for bad in (["--no-such-flag"], ["--log-level", "loud"], ["--default-size", "1M"],
                ["--default-size", "12Q"], ["--set-immutable=maybe"], ["extra-argument"]):
        r = run([env.daemon] + bad + ["--root", os.path.join(env.work, "never"),
                                      "--address", os.path.join(env.work, "never.sock")],
                check=False, timeout=10)
        check(r.rc == 2, "%s: exit %d, expected 2 (usage)" % (" ".join(bad), r.rc))
    check(not os.path.exists(os.path.join(env.work, "never")),
          "a refused command line created its --root")
    # unusable paths: a clean refusal (exit 1 and a message), not a crash
    afile = os.path.join(env.work, "a-file")
    open(afile, "w").close()
    for args, why in ((["--root", afile, "--address", os.path.join(env.work, "x.sock")], "root"),
                      (["--root", os.path.join(env.work, "r-long"),
                        "--address", os.path.join(env.work, "s" * 120 + ".sock")], "address")):
        r = run([env.daemon] + args, check=False, timeout=30)
        check(r.rc == 1 and "level=error" in r.err, "an unusable %s: exit %d, %s" % (why, r.rc, tail(r.err)))
    shutil.rmtree(os.path.join(env.work, "r-long"), ignore_errors=True)
    os.unlink(afile)


@case("lifecycle-solo")
def t_lifecycle(env):
    """SIGTERM → 0, socket 0660, logfmt lines, a second instance on the
    socket refused, kill -9 then a start: the stale socket replaced and the
    debris of half-made or half-removed snapshots swept (immutable files
    too), a non-socket file at --address kept."""
    solo = env.solo
    solo.start()
    st = os.stat(solo.sock)
    check(stat.S_ISSOCK(st.st_mode), "%s is not a socket" % solo.sock)
    check(stat.S_IMODE(st.st_mode) == 0o660, "socket mode %04o, expected 0660" % stat.S_IMODE(st.st_mode))
    solo.ctr("prepare", "life/active")
    solo.ctr("prepare", "life/extract-1")
    solo.ctr("commit", "life-c", "life/extract-1")

    # a second instance on the same socket (another root): refused, the
    # running one unaffected
    other = os.path.join(solo.dir, "other-root")
    r = run([env.daemon, "--root", other, "--address", solo.sock, "--log-level", "debug"],
            check=False, timeout=30)
    check(r.rc != 0, "a second instance on a live socket started (exit 0)")
    check("another instance" in r.err, "the refusal does not say why: %s" % tail(r.err))
    check(solo.proc.poll() is None, "the running instance died")
    check(sock_answers(solo.sock), "the running instance's socket no longer answers")
    solo.ctr("info", "life-c")
    shutil.rmtree(other, ignore_errors=True)

    # SIGTERM: exit 0, then a restart sees the same snapshots
    solo.stop()
    lines = open(solo.log, encoding="utf-8", errors="replace").read().splitlines()
    bad = [l for l in lines if not LOG_LINE.match(l)]
    check(not bad, "log lines not in time=… level=… msg=… form", bad[:5])
    check(any("level=info msg=serving" in l for l in lines), "no 'serving' line in the log")
    check(any("shutting down" in l for l in lines), "no 'shutting down' line on SIGTERM")
    check(any("level=debug msg=rpc method=/containerd.services.snapshots.v1.Snapshots/Prepare" in l
              for l in lines), "debug level does not log each rpc")

    # kill -9 leaves the socket file; the next start removes it and serves,
    # and sweeps what a crash leaves: a half-made directory (.tmp-<id>), a
    # half-removed one (.trash-<id>, with an immutable layer), a numeric
    # directory no record owns
    solo.start()
    live = numeric_dirs(solo.root)
    solo.kill9()
    check(os.path.exists(solo.sock) and not sock_answers(solo.sock),
          "after kill -9 the socket file should be stale")
    sdir = os.path.join(solo.root, "snapshots")
    debris = [os.path.join(sdir, n) for n in (".tmp-900", ".trash-901", "902")]
    for d in debris:
        os.makedirs(os.path.join(d, "fs", "sub"))
        open(os.path.join(d, ".erofslayer"), "w").close()
    layer = os.path.join(sdir, ".trash-901", "layer.erofs")
    with open(layer, "wb") as f:
        f.write(b"x" * 8192)
    run(["chattr", "+i", layer], check=False)
    solo.start()
    rows = ls_table(solo.ctr("ls").out)
    check(set(rows) == {"life/active", "life-c"}, "after restarts: %s" % sorted(rows))
    left = [d for d in debris if os.path.lexists(d)]
    check(not left, "the start-up sweep left %s" % left)
    check(numeric_dirs(solo.root) == live, "snapshot directories %s, expected %s" % (
        numeric_dirs(solo.root), live))

    # a regular file where the socket should be: refused and kept
    plain = os.path.join(solo.dir, "not-a-socket")
    with open(plain, "w") as f:
        f.write("precious\n")
    r = run([env.daemon, "--root", os.path.join(solo.dir, "r2"), "--address", plain], check=False,
            timeout=30)
    check(r.rc != 0, "started on a regular file's path")
    check(open(plain).read() == "precious\n", "the regular file at --address was replaced")
    solo.ctr("rm", "life/active")
    solo.ctr("rm", "life-c")
    check(numeric_dirs(solo.root) == [], "directories left after removing everything: %s"
          % numeric_dirs(solo.root))


@case("second-instance-same-root")
def t_second_same_root(env):
    """A second instance on the running one's socket and root refuses, and
    the running one is unaffected, even with Prepares in flight while the
    second one opens the root (its start-up sweep runs under the store's
    writer lock, which a Prepare holds from its directory to its record)."""
    solo = env.solo
    if not solo.proc or solo.proc.poll() is not None:
        solo.start()
    solo.ctr("prepare", "second/extract-1")
    solo.ctr("commit", "second-c", "second/extract-1")
    solo.ctr("prepare", "second-a", "second-c")
    sdir = os.path.join(solo.root, "snapshots")

    def state():
        out = {}
        for d in numeric_dirs(solo.root):
            for n in sorted(os.listdir(os.path.join(sdir, str(d)))):
                p = os.path.join(sdir, str(d), n)
                out["%d/%s" % (d, n)] = None if os.path.isdir(p) else \
                    treecmp.digest_path(p, os.path.getsize(p))
        return out

    before = state()
    rows_before = ls_table(solo.ctr("ls").out)
    probs = []
    for i in range(4):
        # a Prepare (mkfs.ext4 under the writer lock) and the second instance at once
        pp = subprocess.Popen([env.ctr, "--address", solo.sock, "snapshots", "--snapshotter", SN,
                               "prepare", "second-inflight-%d" % i, "second-c"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.005 * i)
        r = run([env.daemon, "--root", solo.root, "--address", solo.sock, "--log-level", "debug"],
                check=False, timeout=60)
        err = pp.communicate(timeout=60)[1]
        if r.rc == 0:
            probs.append("a second instance on the same socket and root started (exit 0)")
        if "another instance" not in r.err:
            probs.append("the refusal does not say why: %s" % tail(r.err))
        if pp.returncode:
            probs.append("a Prepare in flight failed: %s" % tail(err))
    check(solo.proc.poll() is None, "the running instance died")
    rows = ls_table(solo.ctr("ls").out)
    for i in range(4):
        k = "second-inflight-%d" % i
        if k in rows:
            solo.ctr("rm", k)
        rows.pop(k, None)
    if rows != rows_before:
        probs.append("the snapshots changed: %s, then %s" % (sorted(rows_before), sorted(rows)))
    after = state()
    if after != before:
        probs.append("the running instance's files changed: %s" % sorted(
            k for k in set(before) | set(after) if before.get(k, 1) != after.get(k, 1))[:6])
    for k in ("second-a", "second-c"):
        solo.ctr("rm", k)
    check(not probs, "%d problems" % len(probs), probs)


@case("bad-input-direct")
def t_bad_direct(env):
    """Error codes straight from the daemon, as ctr prints them."""
    solo = env.solo
    if not solo.proc or solo.proc.poll() is not None:
        solo.start()
    solo.ctr("prepare", "bad/extract-base")
    solo.ctr("commit", "bad-base", "bad/extract-base")
    solo.ctr("prepare", "bad-child", "bad-base")
    solo.ctr("view", "bad-view", "bad-base")
    solo.ctr("prepare", "bad-active")
    off = os.path.getsize(solo.log)
    cases = [
        (["prepare", ""], "invalid argument"),
        (["view", ""], "invalid argument"),
        (["prepare", "k" * 5000], "invalid argument"),
        (["view", "v" * 5000, "bad-base"], "invalid argument"),
        (["prepare", "bad-x", "no-such-parent"], "not found"),
        (["view", "bad-y", "no-such-parent"], "not found"),
        (["prepare", "bad-z", "bad-active"], "invalid argument"),   # parent not committed
        (["prepare", "bad-active"], "already exists"),
        (["view", "bad-view", "bad-base"], "already exists"),
        (["commit", "bad-c2", "bad-view"], "failed precondition"),  # committing a view
        (["commit", "bad-c3", "bad-base"], "failed precondition"),  # committing a committed
        (["commit", "bad-c4", "no-such-key"], "not found"),
        (["commit", "bad-base", "bad-active"], None),               # name taken (see below)
        (["rm", "bad-base"], "failed precondition"),                # has children
        (["rm", "no-such-key"], "not found"),
        (["info", "no-such-key"], "not found"),
        (["usage", "no-such-key"], "not found"),
        (["mounts", "/tmp/x", "no-such-key"], "not found"),
        (["label", "no-such-key", "a=b"], "not found"),
    ]
    problems = []
    for args, want in cases:
        call_off = os.path.getsize(solo.log)
        r = solo.ctr(*args, check=False)
        shown = " ".join(a if len(a) < 40 else a[:8] + "...(%d bytes)" % len(a) for a in args)
        # committing to a name that exists: AlreadyExists (the container's
        # layer is converted first, then the name refused)
        p = refusal_problem(shown, r, want or "already exists", lambda: read_from(solo.log, call_off))
        if p:
            problems.append(p)
    # a request for another snapshotter (containerd sends its proxy plugin's name)
    for args in (["ls"], ["prepare", "bad-other"], ["info", "bad-base"], ["rm", "bad-base"]):
        r = run([env.ctr, "--address", solo.sock, "snapshots", "--snapshotter", "someone-else"] + args,
                check=False)
        if r.rc == 0 or "this is the snapshotter spin-erofs, the request is for someone-else" not in r.err:
            problems.append("%s for snapshotter someone-else: exit %d, %s" % (args[0], r.rc, tail(r.err)))
    # commit to an existing name through an extract snapshot: AlreadyExists
    solo.ctr("prepare", "bad/extract-dup")
    call_off = os.path.getsize(solo.log)
    r = solo.ctr("commit", "bad-base", "bad/extract-dup", check=False)
    p = refusal_problem("commit to an existing name", r, "already exists",
                        lambda: read_from(solo.log, call_off))
    if p:
        problems.append(p)
    # everything is as it was
    rows = ls_table(solo.ctr("ls").out)
    want_rows = {"bad-base", "bad-child", "bad-view", "bad-active", "bad/extract-dup"}
    if set(rows) != want_rows:
        problems.append("after the refusals the snapshots are %s, expected %s" % (sorted(rows), sorted(want_rows)))
    log = open(solo.log, encoding="utf-8", errors="replace").read()[off:]
    for code in ("INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "FAILED_PRECONDITION"):
        if "code=%s" % code not in log:
            problems.append("the daemon log has no 'rpc failed ... code=%s' line" % code)
    if "level=error" in log:
        problems.append("bad input logged at level error: %s" % [l for l in log.splitlines() if "level=error" in l][:2])
    for k in ("bad-view", "bad-child", "bad/extract-dup", "bad-active", "bad-base"):
        solo.ctr("rm", k)
    check(numeric_dirs(solo.root) == [], "directories left: %s" % numeric_dirs(solo.root))
    if problems:
        fail("%d wrong answers" % len(problems), problems)


# errdefs kinds as ctr prints them, and the status codes the daemon logs
KIND_CODES = {"invalid argument": "INVALID_ARGUMENT", "not found": "NOT_FOUND",
              "already exists": "ALREADY_EXISTS", "failed precondition": "FAILED_PRECONDITION"}


def refusal_problem(shown, r, want, read_log):
    """None if ctr's failed call R was refused as WANT (an errdefs kind),
    else what is wrong. ctr 1.x prints the kind after the message; ctr 2.x
    (errdefs 1.0) prints the message alone, so for a refusal of ours the
    kind is the code of the daemon's "rpc failed" line of that call (the
    log since the call, from READ_LOG); containerd's own refusals still end
    with the kind. The daemon writes that line once its answer has been
    sent, so it may come a moment after ctr has exited: the log is read
    again for up to 5 s before the line counts as missing."""
    if r.rc == 0:
        return "%s: succeeded, expected %s" % (shown, want)
    if r.err.strip().endswith(want):
        return None
    deadline = time.monotonic() + 5
    while True:
        codes = re.findall(r'msg="rpc failed" method=\S+ code=(\w+)', read_log())
        if codes or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if codes and codes[-1] == KIND_CODES[want]:
        return None
    return "%s: %s (daemon's codes %s), expected ...: %s" % (shown, tail(r.err, 160), codes, want)


@case("load-smoke-direct")
def t_load_direct(env):
    """16 concurrent clients × 3 (--load-rounds) rounds of Prepare(extract)/
    Commit/View/Mounts/Usage/Remove straight at the daemon through ctr (one
    process per call; the full 16×200 load is load-direct's, a C client)."""
    solo = env.solo
    if not solo.proc or solo.proc.poll() is not None:
        solo.start()
    clients, rounds = 16, env.load_rounds
    errors = []
    lock = threading.Lock()

    def client(t):
        try:
            for i in range(rounds):
                base = "load/%d/%d" % (t, i)
                r = solo.ctr("prepare", "--mounts", base + "/extract-x", check=False)
                if r.rc:
                    raise RuntimeError("prepare: " + tail(r.err))
                m = json.loads(r.out)
                if m[0]["Type"] != "overlay":
                    raise RuntimeError("extract shape %s" % m)
                name = "load-%d-%d" % (t, i)
                for args in (["commit", name, base + "/extract-x"],
                             ["view", "--mounts", name + "-v", name],
                             ["mounts", "/mnt", name + "-v"],
                             ["usage", "-b", name],
                             ["rm", name + "-v"],
                             ["rm", name]):
                    r = solo.ctr(*args, check=False)
                    if r.rc:
                        raise RuntimeError("%s: %s" % (" ".join(args), tail(r.err)))
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append("client %d: %s" % (t, e))

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(t,)) for t in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    took = time.time() - t0
    if env.verbose:
        print("  %d×%d rounds in %.1f s" % (clients, rounds, took))
    check(not errors, "%d clients failed" % len(errors), errors)
    check(solo.proc.poll() is None, "the daemon died under load")
    rows = ls_table(solo.ctr("ls").out)
    check(not rows, "snapshots left after the load: %s" % sorted(rows)[:5])
    check(numeric_dirs(solo.root) == [], "directories left: %s" % numeric_dirs(solo.root)[:10])
    probs = snapshot_dir_problems(solo.root)
    check(not probs, "temporary files left", probs)


# ---- the full load (issue 4): bench/daemon-bench.c --load ------------------------

def daemon_bench(env):
    """daemon-bench (bench/meson.build), given as --daemon-bench."""
    p = getattr(env, "daemon_bench", None)
    if not p or not os.access(p, os.X_OK):
        raise CaseSkipped("no daemon-bench: give its path as --daemon-bench")
    return p


def round_content(t, i):
    """What client t wrote in round i (daemon-bench.c's round_content)."""
    return ("t%d-r%d\n" % (t, i)).encode() * (1 + (31 * t + 7 * i) % 300)


def run_load(env, bench, label, rounds, args, report):
    """daemon-bench --load: 16 clients × rounds; the layers it kept, as
    (t, i, layer path, name), and the seconds it took."""
    clients = 16
    t0 = time.time()
    r = run([bench, "--threads", clients, "--iterations", rounds, "--load", "--keep-every", 10,
             "--report", report] + args, timeout=900, check=False)
    took = time.time() - t0
    print("  %s: %d clients × %d rounds in %.1f s" % (label, clients, rounds, took))
    if env.verbose:
        print("\n".join("    " + l for l in r.out.splitlines() if l.startswith("|")))
    errs = [l for l in r.err.splitlines() if l.strip()]
    check(r.rc == 0, "daemon-bench --load exited %d" % r.rc, errs or [tail(r.out)])
    check("errors: 0" in r.out, "daemon-bench reported errors", errs)
    kept = []
    with open(report) as f:
        for line in f:
            t, i, layer, name = line.rstrip("\n").split("\t")
            kept.append((int(t), int(i), layer, name))
    want = clients * (rounds // 10)
    check(len(kept) == want, "%d layers kept, expected %d" % (len(kept), want))
    return kept, took


def kept_layer_problems(env, kept):
    """Every kept layer passes erofs-layer check and holds exactly what its
    client wrote into the upperdir."""
    import concurrent.futures

    def one(k):
        t, i, layer, name = k
        probs = []
        e = erofs_check(env, layer)
        if e:
            return [e]
        r = run([env.erofs_layer, "cat", layer, "t%d-r%d" % (t, i)], check=False)
        if r.rc != 0 or r.out.encode() != round_content(t, i):
            probs.append("%s (%s): t%d-r%d differs from what was written" % (layer, name, t, i))
        r = run([env.erofs_layer, "cat", layer, "d%d/f%d" % (t, i)], check=False)
        if r.rc != 0 or r.out != "x\n":
            probs.append("%s (%s): d%d/f%d differs from what was written" % (layer, name, t, i))
        r = run([env.erofs_layer, "ls", "-R", layer], check=False)
        names = sorted(l.strip() for l in r.out.splitlines() if l.strip())
        if r.rc != 0 or names != sorted(["/t%d-r%d" % (t, i), "/d%d" % t, "/d%d/f%d" % (t, i)]):
            probs.append("%s (%s): holds %s" % (layer, name, names[:6]))
        return probs

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as ex:
        return [p for ps in ex.map(one, kept) for p in ps]


def log_problems(text):
    return [l[:240] for l in text.splitlines() if "level=error" in l or "level=warning" in l]


@case("load-direct")
def t_load_full_direct(env):
    """16 clients × 200 (--full-load-rounds) rounds of Prepare(extract)/a file
    written into the upperdir/Prepare again (AlreadyExists)/Commit/View/
    Mounts/Remove, every 4th with an active child and a refused Remove of its
    parent, straight at the daemon (daemon-bench --load, a C client): no
    error; then List is exactly the base and the kept layers, each kept layer
    passes erofs-layer check and holds what was written, no orphan directory
    or temporary file, a restart sweeps nothing, and everything is removed."""
    bench = daemon_bench(env)
    solo = env.solo
    if not solo.proc or solo.proc.poll() is not None:
        solo.start()
    report = os.path.join(solo.dir, "load-direct.tsv")
    off = os.path.getsize(solo.log)
    kept, took = run_load(env, bench, "direct", env.full_load_rounds,
                          ["--socket", solo.sock, "--pid", solo.proc.pid, "--prefix", "fload"],
                          report)
    check(solo.proc.poll() is None, "the daemon died under load")
    probs = kept_layer_problems(env, kept)
    check(not probs, "%d kept layers are wrong" % len(probs), probs)

    def state():
        rows = ls_table(solo.ctr("ls").out)
        mine = {k for k in rows if k.startswith("fload/")}
        want = {"fload/base/sha256:base0"} | {k[3] for k in kept}
        out = []
        if mine != want:
            out.append("List: %d snapshots, %d unexpected (%s), %d missing (%s)" % (
                len(mine), len(mine - want), sorted(mine - want)[:3],
                len(want - mine), sorted(want - mine)[:3]))
        dirs = numeric_dirs(solo.root)
        if len(dirs) != with_dir(rows):
            out.append("%d snapshot directories for %d snapshots with one" % (len(dirs),
                                                                             with_dir(rows)))
        for t, i, layer, name in kept:
            if snap_id(layer) not in dirs:
                out.append("%s: its directory %s is gone" % (name, os.path.dirname(layer)))
        return out + snapshot_dir_problems(solo.root)

    probs = state()
    check(not probs, "after the load", probs)
    with open(solo.log, "rb") as f:
        f.seek(off)
        log = f.read().decode("utf-8", "replace")
    probs = log_problems(log)
    check(not probs, "the daemon logged %d warnings or errors under load" % len(probs), probs)

    # a restart finds nothing to sweep and the same snapshots
    solo.stop()
    off = os.path.getsize(solo.log)
    solo.start()
    with open(solo.log, "rb") as f:
        f.seek(off)
        log = f.read().decode("utf-8", "replace")
    check("leftover" not in log, "the restart swept something: %s" % tail(log))
    probs = state()
    check(not probs, "after a restart", probs)

    r = run([bench, "--socket", solo.sock, "--remove-prefix", "fload/"], timeout=300, check=False)
    check(r.rc == 0, "daemon-bench --remove-prefix exited %d" % r.rc, r.err.splitlines())
    rows = ls_table(solo.ctr("ls").out)
    mine = [k for k in rows if k.startswith("fload/")]
    check(not mine, "snapshots left after removing them all: %s" % mine[:5])
    check(len(numeric_dirs(solo.root)) == len(rows), "%d directories for %d snapshots: %s" % (
        len(numeric_dirs(solo.root)), len(rows), numeric_dirs(solo.root)[:10]))
    probs = snapshot_dir_problems(solo.root)
    check(not probs, "temporary files left", probs)


@case("kill9-during-mkfs")
def t_kill_mkfs(env):
    """kill -9 while the first active Prepare runs mkfs.ext4 for the
    rwlayer.img template: the restarted daemon sweeps the half-made
    directory, the key is free again."""
    solo = env.solo
    if not solo.proc or solo.proc.poll() is not None:
        solo.start()
    hit = False
    for attempt in range(8):
        pid = solo.proc.pid
        key = "mkfs-%d" % attempt
        p = subprocess.Popen([env.ctr, "--address", solo.sock, "snapshots", "--snapshotter", SN,
                              "prepare", key], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 5
        while time.time() < deadline and p.poll() is None:
            kids = children(pid)
            if any(comm_of(k).startswith("mkfs") for k in kids):
                solo.kill9()
                hit = True
                break
            time.sleep(0.0005)
        p.wait(30)
        if hit:
            break
        solo.ctr("rm", key)
    if not hit:
        raise CaseSkipped("never caught mkfs.ext4 running in 8 tries")
    orphans = [k for k in all_pids() if comm_of(k).startswith("mkfs") and
               solo.dir in cmdline_of(k)]
    solo.start()
    # the orphaned mkfs.ext4 ends by itself
    poll(lambda: not [k for k in orphans if os.path.exists("/proc/%d" % k)], 20)
    call_off = os.path.getsize(solo.log)
    r = solo.ctr("info", key, check=False)
    check(not refusal_problem("info", r, "not found", lambda: read_from(solo.log, call_off)),
          "the interrupted Prepare left a snapshot: %s" % tail(r.out or r.err))
    left = poll(lambda: numeric_dirs(solo.root) == [] or None, 5)
    probs = snapshot_dir_problems(solo.root)
    check(left and not probs, "the half-made directory was not swept: %s" % numeric_dirs(solo.root), probs)
    solo.ctr("prepare", key)
    solo.ctr("rm", key)
    check(numeric_dirs(solo.root) == [], "directories left: %s" % numeric_dirs(solo.root))


def children(pid):
    out = []
    for t in glob.glob("/proc/%d/task/*/children" % pid):
        try:
            out += [int(x) for x in open(t).read().split()]
        except OSError:
            pass
    return out


def comm_of(pid):
    try:
        return open("/proc/%d/comm" % pid).read().strip()
    except OSError:
        return ""


def cmdline_of(pid):
    try:
        return open("/proc/%d/cmdline" % pid, "rb").read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


@case("daemon-options")
def t_options(env):
    """--default-size sizes rwlayer.img; --set-immutable=false leaves
    layer.erofs, fsmeta.erofs and merged.vmdk mutable."""
    solo = Solo(env, "solo-options")
    solo.start("--default-size", "32M", "--set-immutable=false")
    try:
        m = parse_mounts(solo.ctr("prepare", "--mounts", "opt-active").out)
        img = m[0]["Source"]
        check(os.path.getsize(img) == 32 << 20, "rwlayer.img is %d bytes with --default-size 32M"
              % os.path.getsize(img))
        solo.ctr("prepare", "opt/extract-1")
        solo.ctr("commit", "opt-1", "opt/extract-1")
        solo.ctr("prepare", "opt/extract-2", "opt-1")
        solo.ctr("commit", "opt-2", "opt/extract-2")
        vm = parse_mounts(solo.ctr("view", "--mounts", "opt-view", "opt-2").out)
        fsmeta = vm[0]["Source"]
        files = [fsmeta, os.path.join(os.path.dirname(fsmeta), "merged.vmdk")] + \
            [o[len("device="):] for o in vm[0]["Options"] if o.startswith("device=")]
        check(len(files) == 4, "view of a 2-layer chain: %s" % vm)
        frozen = [f for f in files if immutable(f)]
        check(not frozen, "immutable with --set-immutable=false: %s" % frozen)
        for k in ("opt-view", "opt-2", "opt-1", "opt-active"):
            solo.ctr("rm", k)
        check(numeric_dirs(solo.root) == [], "directories left: %s" % numeric_dirs(solo.root))
    finally:
        solo.stop()


@case("solo-stop")
def t_solo_stop(env):
    """The solo daemon stops on SIGTERM with exit 0 and leaves a clean root."""
    solo = env.solo
    if solo.proc and solo.proc.poll() is None:
        solo.stop()
    probs = snapshot_dir_problems(solo.root) if os.path.isdir(os.path.join(solo.root, "snapshots")) else []
    check(not probs, "leftovers in the solo root", probs)


@case("lab-start")
def t_lab_start(env):
    """lab_start: both answer, socket 0660, containerd lists spin-erofs as ok."""
    env.lab_up()
    lab = env.lab
    check(lab.running("sn") and lab.running("containerd"), "lab.sh did not leave both running")
    st = os.stat(lab.sn_sock)
    check(stat.S_IMODE(st.st_mode) == 0o660, "socket mode %04o" % stat.S_IMODE(st.st_mode))
    r = lab.ctr("plugins", "ls")
    check(re.search(r"io\.containerd\.snapshotter\.v1\s+spin-erofs\s+\S+\s+ok", r.out),
          "containerd does not list the proxy snapshotter as ok", [l for l in r.out.splitlines() if "snapshotter" in l])
    r = lab.sn("ls")
    check(ls_table(r.out) == {}, "a fresh lab has snapshots: %s" % r.out)


@case("import-multi")
def t_import_multi(env):
    """ctr images import --snapshotter spin-erofs of a 4-layer image: chain
    keys, kinds and parents, extract+convert per layer, merges, info, tree,
    layer.erofs checked and immutable."""
    lab = env.lab
    env.lab_up()
    off = lab.log_size()
    info = env.imported("multi")
    log = lab.log_since(off)
    r = lab.ctr("images", "ls", "-q")
    check(info["name"] in r.out.split(), "%s not in ctr images ls" % info["name"])
    rows = ls_table(lab.sn("ls").out)
    chain = info["chain_ids"]
    probs = []
    for i, c in enumerate(chain):
        if c not in rows:
            probs.append("chain %d (%s) missing from ctr snapshots ls" % (i, c[:19]))
            continue
        parent, kind = rows[c]
        if kind != "Committed":
            probs.append("%s is %s" % (c[:19], kind))
        if parent != (chain[i - 1] if i else ""):
            probs.append("%s has parent %r" % (c[:19], parent))
    extra = set(rows) - set(chain)
    if extra:
        probs.append("unexpected snapshots after the import: %s" % sorted(extra))
    # each layer went through an extract snapshot with the overlay shape:
    # containerd's walking differ wrote into <id>/fs and Commit converted it
    conv = re.findall(r'msg="converted (\S+)/snapshots/(\d+)/fs: (\d+) entries', log)
    if len(conv) != len(chain):
        probs.append("%d 'converted .../fs' lines in the log for %d layers" % (len(conv), len(chain)))
    # the top's chain is merged after its Commit, on the merge thread; the
    # chains below it were steps of the unpack (each had an extract
    # snapshot prepared on it at once): not merged until a mount asks
    deadline = time.monotonic() + 30
    while True:
        log = lab.log_since(off)
        merged = re.findall(r'msg="merged (\d+) layers into snapshot', log)
        if merged or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if [int(m) for m in merged] != [len(chain)]:
        probs.append("merge lines %s, expected one, of the whole chain of %d" % (merged, len(chain)))
    for l in log.splitlines():
        if "level=error" in l or "level=warning" in l or "rpc failed" in l:
            probs.append("log: " + l[:200])
    # info and tree
    top = chain[-1]
    i = json.loads(lab.sn("info", top).out)
    if i.get("Kind") != "Committed" or i.get("Parent") != chain[-2] or i.get("Name") != top:
        probs.append("info %s: %s" % (top[:19], i))
    tree = lab.sn("tree").out
    depth = {}
    for line in tree.splitlines():
        m = re.match(r"^(\s*)(\\_ )?(\S+)$", line)
        if m:
            depth[m.group(3)] = len(m.group(1))
    ds = [depth.get(c) for c in chain]
    if None in ds or ds != sorted(ds) or len(set(ds)) != len(ds):
        probs.append("tree does not nest the chain: %s" % tail(tree))
    # the layer files on disk
    ids = sorted(int(d) for _, d, _ in [(a, b, c) for a, b, c in conv])
    for d in ids:
        p = os.path.join(lab.root, "snapshots", str(d), "layer.erofs")
        if not os.path.exists(p):
            probs.append("%s missing" % p)
            continue
        e = erofs_check(env, p)
        if e:
            probs.append(e)
        if not immutable(p):
            probs.append("%s is not immutable (--set-immutable defaults to true)" % p)
    probs += snapshot_dir_problems(lab.root)
    check(not probs, "%d problems" % len(probs), probs)


def layer_dirs_of_chain(env, name):
    """The snapshot directory of each layer of an imported image, oldest
    first, from the mounts of a view of each chain prefix."""
    def find():
        lab = env.lab
        info = env.imported(name)
        dirs = []
        for k, c in enumerate(info["chain_ids"]):
            key = env.name("chainview-%s-%d" % (name, k))
            m = view(lab, lab.sn, key, c)
            src = m[0]["Source"]
            dirs.append(os.path.dirname(src))
            lab.sn("rm", key)
        return dirs
    return env.once("layer dirs of " + name, find)


@case("shape-chain")
def t_shape_chain(env):
    """Views of a 1..4-layer chain: {erofs, layer.erofs, [ro, loop]}, then
    {erofs, <top>/fsmeta.erofs, [ro, loop, device=<oldest>...<newest>]} with
    merged.vmdk beside it (qemu-img reads it as the concatenation)."""
    lab = env.lab
    info = env.imported("multi")
    dirs = layer_dirs_of_chain(env, "multi")
    probs = []
    for k, c in enumerate(info["chain_ids"]):
        key = env.name("shape-%d" % k)
        m = view(lab, lab.sn, key, c)
        if k == 0:
            want = [{"Type": "erofs", "Source": os.path.join(dirs[0], "layer.erofs"),
                     "Options": ["ro", "loop"]}]
        else:
            want = [{"Type": "erofs", "Source": os.path.join(dirs[k], "fsmeta.erofs"),
                     "Options": ["ro", "loop"] + ["device=" + os.path.join(d, "layer.erofs")
                                                  for d in dirs[:k + 1]]}]
        if m != want:
            probs.append("view of chain %d: %s, expected %s" % (k + 1, m, want))
        again = view(lab, lab.sn, key + "-again", c)
        lab.sn("rm", key + "-again")
        if again != m:
            probs.append("a second view of chain %d mounts differently: %s" % (k + 1, again))
        lab.sn("rm", key)
        if k >= 1:
            probs += vmdk_problems(env, os.path.join(dirs[k], "fsmeta.erofs"),
                                   [os.path.join(d, "layer.erofs") for d in dirs[:k + 1]],
                                   convert=(k == len(dirs) - 1))
            e = erofs_check(env, os.path.join(dirs[k], "fsmeta.erofs"))
            if e and env.verbose:
                print("  note: " + e)
    check(not probs, "%d problems" % len(probs), probs)


def vmdk_problems(env, fsmeta, layers, convert):
    probs = []
    vmdk = os.path.join(os.path.dirname(fsmeta), "merged.vmdk")
    if not os.path.exists(vmdk):
        return ["no merged.vmdk beside %s" % fsmeta]
    text = open(vmdk, encoding="utf-8", errors="replace").read()
    extents = re.findall(r'^RW (\d+) FLAT "([^"]+)" (\d+)$', text, re.M)
    parts = [fsmeta] + layers
    # extents are split every 2 GiB: join consecutive ones of a file
    seen = []
    for sectors, path, offset in extents:
        if seen and seen[-1][0] == path:
            seen[-1][1] += int(sectors)
        else:
            seen.append([path, int(sectors)])
    if [p for p, _ in seen] != parts:
        probs.append("%s extents %s, expected %s" % (vmdk, [p for p, _ in seen], parts))
    for p, sectors in seen:
        if os.path.exists(p) and sectors * 512 != os.path.getsize(p):
            probs.append("%s: extent of %d sectors for a %d-byte file" % (vmdk, sectors, os.path.getsize(p)))
    if not text.startswith("# Disk DescriptorFile") or 'createType="twoGbMaxExtentFlat"' not in text:
        probs.append("%s: not a twoGbMaxExtentFlat descriptor" % vmdk)
    if shutil.which("qemu-img"):
        r = run(["qemu-img", "info", "--output=json", vmdk], check=False)
        if r.rc:
            probs.append("qemu-img info %s: %s" % (vmdk, tail(r.err)))
        else:
            qi = json.loads(r.out)
            total = sum(os.path.getsize(p) for p in parts)
            if qi.get("format") != "vmdk" or qi.get("virtual-size") != total:
                probs.append("qemu-img info: format %s, virtual size %s, expected vmdk, %d"
                             % (qi.get("format"), qi.get("virtual-size"), total))
        if convert:
            raw = os.path.join(env.work, "vmdk.raw")
            r = run(["qemu-img", "convert", "-O", "raw", vmdk, raw], check=False, timeout=300)
            if r.rc:
                probs.append("qemu-img convert: %s" % tail(r.err))
            else:
                h = hashlib.sha256()
                for p in parts:
                    with open(p, "rb") as f:
                        for b in iter(lambda: f.read(1 << 20), b""):
                            h.update(b)
                h2 = hashlib.sha256()
                with open(raw, "rb") as f:
                    for b in iter(lambda: f.read(1 << 20), b""):
                        h2.update(b)
                if h.digest() != h2.digest():
                    probs.append("qemu-img's raw view of merged.vmdk is not fsmeta + layers")
                os.unlink(raw)
    return probs


@case("groundtruth-multi")
def t_gt_multi(env):
    """Every chain prefix of the 4-layer image: our view (single erofs, then
    fsmeta with device= loop devices) equals overlayfs's view of the same
    layers unpacked by containerd's overlayfs snapshotter."""
    lab = env.lab
    info = env.imported("multi")
    env.imported("multi", "overlayfs")
    diffs = []
    for k, c in enumerate(info["chain_ids"]):
        ov_key, our_key = env.name("gt-ov-%d" % k), env.name("gt-sn-%d" % k)
        om = view(lab, lab.ov, ov_key, c)
        sm = view(lab, lab.sn, our_key, c)
        d, e, a = compare_trees(env.host, om, sm, "chain%d" % (k + 1))
        if env.verbose:
            print("  chain %d: %d entries, %d differences" % (k + 1, len(e), len(d)))
        if k == len(info["chain_ids"]) - 1:
            check(len(e) > 3500, "the reference view has only %d entries" % len(e))
            diffs += multi_expectations(e, "overlayfs") + multi_expectations(a, "ours")
        diffs += d
        lab.ov("rm", ov_key)
        lab.sn("rm", our_key)
    check(not diffs, "%d differences from overlayfs" % len(diffs), diffs)


@case("groundtruth-single")
def t_gt_single(env):
    """A 1-layer image: a plain erofs loop mount equal to overlayfs's view."""
    lab = env.lab
    info = env.imported("single")
    env.imported("single", "overlayfs")
    c = info["chain_ids"][0]
    ov_key, our_key = env.name("gt1-ov"), env.name("gt1-sn")
    om = view(lab, lab.ov, ov_key, c)
    sm = view(lab, lab.sn, our_key, c)
    check(len(sm) == 1 and sm[0]["Type"] == "erofs" and sm[0]["Options"] == ["ro", "loop"]
          and sm[0]["Source"].endswith("/layer.erofs"), "single-layer view: %s" % sm)
    d, e, _ = compare_trees(env.host, om, sm, "single")
    lab.ov("rm", ov_key)
    lab.sn("rm", our_key)
    check(not d, "%d differences from overlayfs" % len(d), d)


@case("shape-active")
def t_shape_active(env):
    """Active with parents: the chain's lower mount then {ext4, rwlayer.img,
    [rw, loop]}; without: the ext4 mount alone. rwlayer.img is a sparse
    --default-size ext4 image with upper/ and work/ at its root; Usage is its
    allocated bytes."""
    lab = env.lab
    info = env.imported("multi")
    dirs = layer_dirs_of_chain(env, "multi")
    probs = []
    key = env.name("active")
    m = parse_mounts(lab.sn("prepare", "--mounts", key, info["chain_ids"][-1]).out)
    lower = {"Type": "erofs", "Source": os.path.join(dirs[-1], "fsmeta.erofs"),
             "Options": ["ro", "loop"] + ["device=" + os.path.join(d, "layer.erofs") for d in dirs]}
    if len(m) != 2 or m[0] != lower:
        probs.append("active with parents: %s, expected the chain's mount then the ext4 one" % m)
    rw = m[-1]
    if rw.get("Type") != "ext4" or rw.get("Options") != ["rw", "loop"] or \
            not rw.get("Source", "").endswith("/rwlayer.img"):
        probs.append("writable mount %s" % rw)
    img = rw["Source"]
    if snap_id(img) in [snap_id(d) for d in dirs]:
        probs.append("rwlayer.img inside a layer's directory: %s" % img)
    probs += rwlayer_problems(env, lab, key, img)
    key0 = env.name("active0")
    m0 = parse_mounts(lab.sn("prepare", "--mounts", key0).out)
    if len(m0) != 1 or m0[0]["Type"] != "ext4" or m0[0]["Options"] != ["rw", "loop"] or \
            not m0[0]["Source"].endswith("/rwlayer.img"):
        probs.append("active without parents: %s" % m0)
    lab.sn("rm", key)
    lab.sn("rm", key0)
    check(not probs, "%d problems" % len(probs), probs)


def rwlayer_problems(env, lab, key, img):
    probs = []
    st = os.stat(img)
    if st.st_size != DEFAULT_SIZE:
        probs.append("rwlayer.img is %d bytes, expected --default-size %d" % (st.st_size, DEFAULT_SIZE))
    if st.st_blocks * 512 > st.st_size // 4:
        probs.append("rwlayer.img is not sparse: %d of %d bytes allocated" % (st.st_blocks * 512, st.st_size))
    r = run(["dumpe2fs", "-h", img], check=False)
    if r.rc or "0xEF53" not in r.out or not re.search(r"^Filesystem features:.*\bextent\b", r.out, re.M):
        probs.append("dumpe2fs -h: not an ext4 image: %s" % tail(r.err or r.out))
    r = run(["debugfs", "-R", "ls -p /", img], check=False)
    names = {}
    for line in r.out.splitlines():
        f = line.strip().strip("/").split("/")
        if len(f) >= 5:
            names[f[4]] = (f[1], f[2], f[3])
    for d in ("upper", "work"):
        if d not in names or not names[d][0].startswith("04") or names[d][1:] != ("0", "0"):
            probs.append("rwlayer.img root: %s is %s, expected a root-owned directory" % (d, names.get(d)))
    # Usage: the allocated bytes of rwlayer.img
    u = usage(lab.sn, key)
    alloc = os.stat(img).st_blocks * 512
    if u[0] != alloc:
        probs.append("usage of the active snapshot: %d bytes, rwlayer.img allocates %d" % (u[0], alloc))
    # the guest's view: mount it, write, the allocation (and Usage) grows
    mp = env.host.mountpoint("rwlayer")
    env.host.mount(["-t", "ext4", "-o", "rw,loop", img], mp)
    try:
        for d in ("upper", "work"):
            if not os.path.isdir(os.path.join(mp, d)):
                probs.append("mounted rwlayer.img has no %s/" % d)
        with open(os.path.join(mp, "upper", "payload"), "wb") as f:
            f.write(mkimage.random_bytes("payload", 0, 4 << 20))
    finally:
        env.host.umount(mp)
    u2 = usage(lab.sn, key)
    alloc2 = os.stat(img).st_blocks * 512
    if u2[0] != alloc2 or alloc2 < alloc + (4 << 20):
        probs.append("after writing 4 MiB: usage %d, allocated %d (was %d)" % (u2[0], alloc2, alloc))
    return probs


def usage(ctl, key):
    r = ctl("usage", "-b", key)
    rows = [l.split() for l in r.out.splitlines()[1:] if l.strip()]
    check(len(rows) == 1 and len(rows[0]) == 3, "usage output: %s" % tail(r.out))
    return int(rows[0][1]), int(rows[0][2])


@case("shape-view-empty")
def t_view_empty(env):
    """A view with no parent: a read-only bind of an empty directory."""
    lab = env.lab
    env.lab_up()
    key = env.name("view0")
    m = view(lab, lab.sn, key, "")
    check(len(m) == 1 and m[0]["Type"] == "bind" and m[0]["Options"] == ["ro", "rbind"]
          and m[0]["Source"].endswith("/lower"), "view without parent: %s" % m)
    src = m[0]["Source"]
    check(os.path.isdir(src) and os.listdir(src) == [], "%s is not an empty directory" % src)
    with Mounted(env.host, m, "view0") as mp:
        check(os.listdir(mp) == [], "the bind mount is not empty")
        try:
            open(os.path.join(mp, "x"), "w").close()
            fail("the view's mount is writable")
        except OSError:
            pass
    check(usage(lab.sn, key) == (0, 0), "usage of an empty view: %s" % (usage(lab.sn, key),))
    lab.sn("rm", key)


@case("shape-extract")
def t_extract(env):
    """A key ending in extract-…: {overlay, overlay, [upperdir=<id>/fs,
    workdir=<id>/work, lowerdir=<id>/lower]}; what is written through it
    becomes layer.erofs at Commit (usage: its bytes and inodes), seen again
    in a view of the committed layer and on top of a 4-layer chain."""
    lab = env.lab
    info = env.imported("multi")
    probs = []
    for parent in ("", info["chain_ids"][-1]):
        key = env.name("probe") + "/extract-%d" % len(parent)
        args = ["prepare", "--mounts", key] + ([parent] if parent else [])
        m = parse_mounts(lab.sn(*args).out)
        check(len(m) == 1 and m[0]["Type"] == "overlay" and m[0]["Source"] == "overlay",
              "extract shape: %s" % m)
        d = os.path.dirname(m[0]["Options"][0].split("=", 1)[1])
        want = ["upperdir=%s/fs" % d, "workdir=%s/work" % d, "lowerdir=%s/lower" % d]
        if m[0]["Options"] != want:
            probs.append("extract options %s, expected %s" % (m[0]["Options"], want))
        mp = env.host.mount_snapshot(m, "extract")
        try:
            write_sample_tree(mp)
            expected = treecmp.snapshot_dir(mp)
        finally:
            env.host.umount(mp)
        u = usage(lab.sn, key)
        if u[1] < len(expected) - 1 or u[0] <= 0:
            probs.append("usage of the extract snapshot %s for %d entries" % (u, len(expected)))
        name = env.name("probe-layer")
        lab.sn("commit", name, key)
        layer = os.path.join(d, "layer.erofs")
        if not os.path.exists(layer):
            fail("no %s after Commit" % layer)
        for sub in ("fs", "work"):
            if os.path.exists(os.path.join(d, sub)):
                probs.append("%s/%s left after Commit" % (d, sub))
        e = erofs_check(env, layer)
        if e:
            probs.append(e)
        u = usage(lab.sn, name)
        want_u = (dir_files_bytes(d), sb_inos(layer))
        if u != want_u:
            probs.append("usage of the committed layer %s, expected (bytes of layer.erofs, fsmeta.erofs and "
                         "merged.vmdk, inodes of layer.erofs) %s" % (u, want_u))
        vkey = env.name("probe-view")
        vm = view(lab, lab.sn, vkey, name)
        if not parent:
            if vm != [{"Type": "erofs", "Source": layer, "Options": ["ro", "loop"]}]:
                probs.append("view of the committed probe: %s" % vm)
            with Mounted(env.host, vm, "probe-view") as vmp:
                actual = treecmp.snapshot_dir(vmp)
            for snap in (expected, actual):
                for rec in snap.values():
                    rec["xattrs"] = {k: v for k, v in rec["xattrs"].items()
                                     if not k.startswith("trusted.overlay.")}
            skip = {"": {"mtime"}}
            probs += treecmp.compare(expected, actual, "probe", extra_skip=skip)
        else:
            devs = [o for o in vm[0]["Options"] if o.startswith("device=")]
            if len(devs) != 5 or devs[-1] != "device=" + layer or vm[0]["Source"] != os.path.join(d, "fsmeta.erofs"):
                probs.append("view of a 5-layer chain: %s" % vm)
            with Mounted(env.host, vm, "probe-view5") as vmp:
                got = open(os.path.join(vmp, "probe", "hello"), "rb").read()
                if got != b"hello from the probe\n":
                    probs.append("the probe's file on top of the chain reads %r" % got)
                if not os.path.exists(os.path.join(vmp, "many2", "f02999")):
                    probs.append("the chain's files are not below the probe layer")
        lab.sn("rm", vkey)
        lab.sn("rm", name)
    check(not probs, "%d problems" % len(probs), probs)


def write_sample_tree(mp):
    os.makedirs(os.path.join(mp, "probe", "sub"))
    with open(os.path.join(mp, "probe", "hello"), "w") as f:
        f.write("hello from the probe\n")
    with open(os.path.join(mp, "probe", "blob"), "wb") as f:
        f.write(mkimage.random_bytes("probe", 0, 300000))
    os.link(os.path.join(mp, "probe", "hello"), os.path.join(mp, "probe", "sub", "hello-link"))
    os.symlink("../hello", os.path.join(mp, "probe", "sub", "sym"))
    os.mkfifo(os.path.join(mp, "probe", "fifo"))
    os.mknod(os.path.join(mp, "probe", "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.setxattr(os.path.join(mp, "probe", "hello"), "user.probe", b"\x00\x01xyz")
    os.chmod(os.path.join(mp, "probe", "blob"), 0o4711)
    os.chown(os.path.join(mp, "probe", "sub"), 1234, 5678)
    os.utime(os.path.join(mp, "probe", "blob"), ns=(0, 1234567890123456789))
    os.utime(os.path.join(mp, "probe", "sub"), ns=(0, 1600000000000000000))


@case("snapshots-cli")
def t_cli(env):
    """ls, info, tree, label (containerd.io/snapshot/* reaches the daemon,
    other labels stay in containerd), usage of committed layers, prepare,
    view, commit, rm through containerd."""
    lab = env.lab
    info = env.imported("multi")
    dirs = layer_dirs_of_chain(env, "multi")
    top = info["chain_ids"][-1]
    probs = []
    # usage of every committed layer: the bytes of its layer.erofs and of the
    # chain's fsmeta.erofs and merged.vmdk beside it, the layer's inodes
    for c, d in zip(info["chain_ids"], dirs):
        layer = os.path.join(d, "layer.erofs")
        u = usage(lab.sn, c)
        if u != (dir_files_bytes(d), sb_inos(layer)):
            probs.append("usage %s of %s, its files have %d bytes, layer.erofs %d inodes" % (
                u, c[:19], dir_files_bytes(d), sb_inos(layer)))
    # labels
    drows = ls_table(lab.direct("ls").out)
    backend = [k for k in drows if k.endswith("/" + top)]
    check(len(backend) == 1, "the daemon does not hold %s once: %s" % (top[:19], backend))
    bkey = backend[0]
    lab.sn("label", top, "containerd.io/snapshot/integration=yes", "plain=stays-in-containerd")
    ci = json.loads(lab.sn("info", top).out)
    di = json.loads(lab.direct("info", bkey).out)
    if ci.get("Labels", {}).get("containerd.io/snapshot/integration") != "yes" or \
            ci.get("Labels", {}).get("plain") != "stays-in-containerd":
        probs.append("containerd's info after label: %s" % ci.get("Labels"))
    if di.get("Labels", {}).get("containerd.io/snapshot/integration") != "yes":
        probs.append("the snapshot label did not reach the daemon: %s" % di.get("Labels"))
    if "plain" in (di.get("Labels") or {}):
        probs.append("a plain label reached the daemon")
    lab.sn("label", top, "containerd.io/snapshot/integration=")
    di = json.loads(lab.direct("info", bkey).out)
    if "containerd.io/snapshot/integration" in (di.get("Labels") or {}):
        probs.append("removing a label did not reach the daemon: %s" % di.get("Labels"))
    lab.sn("label", top, "plain=")
    # mounts: the command line of the view's mount
    mv = env.name("cli-mounts")
    vm = view(lab, lab.sn, mv, top)
    line = lab.sn("mounts", "/target", mv).out.strip()
    want = "mount -t erofs %s /target -o %s" % (vm[0]["Source"], ",".join(vm[0]["Options"]))
    if line != want:
        probs.append("ctr snapshots mounts: %r, expected %r" % (line, want))
    lab.sn("rm", mv)
    # direct label semantics: add two, remove one, the other stays
    lab.direct("label", bkey, "a=1", "b=2")
    lab.direct("label", bkey, "a=")
    dl = json.loads(lab.direct("info", bkey).out).get("Labels") or {}
    if dl.get("b") != "2" or "a" in dl:
        probs.append("direct label add/remove: %s" % dl)
    lab.direct("label", bkey, "b=")
    ti = json.loads(lab.direct("info", bkey).out)
    if not (ts_ns(ti.get("Updated")) > ts_ns(ti.get("Created"))):
        probs.append("Update does not move updated_at past created_at: %s / %s"
                     % (ti.get("Created"), ti.get("Updated")))
    # prepare / commit / view / rm through containerd, and ls/tree/info see them
    a = env.name("cli-extract") + "/extract-1"
    lab.sn("prepare", a, top)
    n = env.name("cli-committed")
    lab.sn("commit", n, a)
    v = env.name("cli-view")
    view(lab, lab.sn, v, n)
    rows = ls_table(lab.sn("ls").out)
    if rows.get(n) != (top, "Committed") or rows.get(v) != (n, "View") or a in rows:
        probs.append("ls after prepare/commit/view: %s" % {k: rows.get(k) for k in (n, v, a)})
    iv = json.loads(lab.sn("info", v).out)
    if iv.get("Kind") != "View" or iv.get("Parent") != n:
        probs.append("info of the view: %s" % iv)
    tree = lab.sn("tree").out
    if not re.search(r"\\_ %s\n(.*\n)*?\s+\\_ %s" % (re.escape(n), re.escape(v)), tree + "\n"):
        probs.append("tree does not show the view under the new layer: %s" % tail(tree, 600))
    lab.sn("rm", v)
    lab.sn("rm", n)
    rows = ls_table(lab.sn("ls").out)
    if n in rows or v in rows:
        probs.append("rm left %s" % [k for k in (n, v) if k in rows])
    check(not probs, "%d problems" % len(probs), probs)


@case("bad-input-containerd")
def t_bad_ctd(env):
    """Bad requests through containerd: its checks or ours, the right code."""
    lab = env.lab
    info = env.imported("multi")
    top = info["chain_ids"][-1]
    act = env.name("bad-act")
    lab.sn("prepare", act)
    vw = env.name("bad-view")
    view(lab, lab.sn, vw, top)
    rows_before = ls_table(lab.sn("ls").out)
    off = lab.log_size()
    probs = []
    cases = [
        (["prepare", "k" * 5000], "invalid argument"),
        (["prepare", env.name("bad"), "no-such-parent"], "not found"),
        (["prepare", act], "already exists"),
        (["commit", env.name("bad-c"), vw], "failed precondition"),
        (["rm", info["chain_ids"][-2]], "failed precondition"),
        (["rm", "no-such-key"], "not found"),
        (["info", "no-such-key"], "not found"),
        (["prepare", env.name("bad-p"), act], "invalid argument"),
    ]
    for args, want in cases:
        call_off = lab.log_size()
        r = lab.sn(*args, check=False)
        shown = " ".join(a if len(a) < 40 else a[:8] + "...(%d bytes)" % len(a) for a in args)
        p = refusal_problem(shown, r, want, lambda: lab.log_since(call_off))
        if p:
            probs.append(p)
    r = lab.sn("prepare", "", check=False)
    if r.rc == 0:
        probs.append("an empty key was accepted")
    log = lab.log_since(off)
    if "code=INVALID_ARGUMENT" not in log or "code=FAILED_PRECONDITION" not in log:
        probs.append("the daemon's own refusals are not in its log")
    rows = ls_table(lab.sn("ls").out)
    if rows != rows_before:
        probs.append("the refusals changed the snapshots: %s appeared, %s went" % (
            sorted(set(rows) - set(rows_before)), sorted(set(rows_before) - set(rows))))
    lab.sn("rm", act)
    lab.sn("rm", vw)
    check(not probs, "%d wrong answers" % len(probs), probs)


@case("load-smoke-containerd")
def t_load_ctd(env):
    """16 concurrent clients × 3 rounds through containerd (its garbage
    collector runs alongside: Remove and Cleanup against new Prepares)."""
    lab = env.lab
    info = env.imported("multi")
    parent = info["chain_ids"][1]
    clients, rounds = 16, 3
    errors = []
    lock = threading.Lock()
    off = lab.log_size()

    def client(t):
        try:
            for i in range(rounds):
                key = "cload/%d/%d/extract-x" % (t, i)
                name = "cload-%d-%d" % (t, i)
                for args in (["prepare", key, parent], ["commit", name, key], ["info", name],
                             ["prepare", name + "-a", name], ["usage", "-b", name + "-a"],
                             ["rm", name + "-a"], ["rm", name]):
                    r = lab.sn(*args, check=False)
                    if r.rc:
                        raise RuntimeError("%s: %s" % (" ".join(args), tail(r.err)))
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append("client %d: %s" % (t, e))

    threads = [threading.Thread(target=client, args=(t,)) for t in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    check(lab.running("sn"), "the daemon died under load")
    log = lab.log_since(off)
    internal = [l[:200] for l in log.splitlines() if "level=error" in l]
    check(not errors and not internal, "%d clients failed" % len(errors), errors + internal)


@case("load-containerd")
def t_load_full_ctd(env):
    """The same load (16 clients × 50 rounds, --containerd-load-rounds: at
    16×200 containerd's own metadata commits make it take minutes) through
    containerd's Snapshots API (its own socket, a namespace of its own and a
    lease: containerd keys the snapshots, proxies each call and collects
    garbage alongside): no error; List through containerd is exactly the
    base and the kept layers, each kept layer passes erofs-layer check and
    holds what was written, the daemon's records and directories agree;
    after removing them and the lease, containerd's collection leaves
    nothing of them in the daemon."""
    bench = daemon_bench(env)
    lab = env.lab
    env.lab_up()
    report = os.path.join(lab.dir, "load-containerd.tsv")
    lease = lab.ctr("-n", "load", "leases", "create").out.split()[0]
    off = lab.log_size()
    common = ["--socket", lab.sock, "--snapshotter", SN, "--namespace", "load", "--lease", lease]
    kept, took = run_load(env, bench, "through containerd", env.containerd_load_rounds,
                          common + ["--prefix", "cload"], report)
    check(lab.running("sn"), "the daemon died under load")
    probs = kept_layer_problems(env, kept)
    check(not probs, "%d kept layers are wrong" % len(probs), probs)
    probs = consistency_problems(lab)
    check(not probs, "after the load", probs)
    probs = [l[:240] for l in lab.log_since(off).splitlines() if "level=error" in l]
    check(not probs, "the daemon logged %d errors under load" % len(probs), probs)

    r = run([bench] + common + ["--remove-prefix", "cload/"], timeout=300, check=False)
    check(r.rc == 0, "daemon-bench --remove-prefix exited %d" % r.rc, r.err.splitlines())
    lab.ctr("-n", "load", "leases", "delete", "--sync", lease)

    def backend_left():
        return [k for k in ls_table(lab.direct("ls").out) if "/cload/" in k]
    left = backend_left()
    if left:
        # a collection in flight when the lease went: the next one takes them
        k = env.name("load-probe")
        lab.sn("prepare", k)
        lab.sn("rm", k)
        l2 = lab.ctr("leases", "create").out.split()[0]
        lab.ctr("leases", "delete", "--sync", l2)
        poll(lambda: not backend_left(), 20)
        left = backend_left()
    check(not left, "%d snapshots left in the daemon after the collection: %s" % (
        len(left), left[:3]))
    probs = consistency_problems(lab)
    check(not probs, "after the collection", probs)


@case("cleanup-while-serving")
def t_cleanup_serving(env):
    """Cleanup, which containerd's garbage collector calls while the daemon
    serves, removes every directory no record owns: a removed snapshot's
    numeric directory, .trash-<id>, .tmp-<id>, a directory past the id
    counter (it sweeps under the store's writer lock, so no Prepare is in
    flight), and nothing else."""
    lab = env.lab
    env.lab_up()

    def collect(off):
        """Marks spin-erofs dirty (a removed snapshot) and has containerd
        collect now; True once a Cleanup reached the daemon after off."""
        k = env.name("cleanup-probe")
        m = parse_mounts(lab.sn("prepare", "--mounts", k).out)
        lab.sn("rm", k)
        lease = lab.ctr("leases", "create").out.split()[0]
        lab.ctr("leases", "delete", "--sync", lease)
        ok = poll(lambda: "Snapshots/Cleanup" in lab.log_since(off), 20, 0.1)
        return ok, snap_id(m[0]["Source"])

    # a collection right after a removal: let it pass before planting
    ok, removed_id = collect(lab.log_size())
    check(ok, "no Cleanup reached the daemon after a synchronous collection")
    check(not os.path.exists(os.path.join(lab.root, "snapshots", str(removed_id))),
          "the removed snapshot's directory %d is still there" % removed_id)
    sdir = os.path.join(lab.root, "snapshots")
    live = numeric_dirs(lab.root)
    far = max(live + [removed_id]) + 1000
    debris = [os.path.join(sdir, n) for n in
              (str(removed_id), ".trash-%d" % removed_id, ".tmp-%d" % far, str(far + 1))]
    for d in debris:
        os.makedirs(os.path.join(d, "fs"))
        open(os.path.join(d, ".erofslayer"), "w").close()
    ok, _ = collect(lab.log_size())
    kept = [os.path.basename(d) for d in debris if os.path.exists(d)]
    for d in debris:
        shutil.rmtree(d, ignore_errors=True)
    check(ok, "no Cleanup reached the daemon after a synchronous collection")
    check(not kept, "Cleanup left %s" % kept)
    check(set(live) <= set(numeric_dirs(lab.root)), "Cleanup removed live directories %s"
          % sorted(set(live) - set(numeric_dirs(lab.root))))
    probs = consistency_problems(lab)
    check(not probs, "after Cleanup", probs)


def consistency_problems(lab, settle=15):
    """Every snapshot the daemon holds has its directory, and the reverse,
    and no temporary file is left, once containerd's collections in flight
    (their Removes pass through .trash-<id>) have settled."""
    def probs():
        drows = ls_table(lab.direct("ls").out)
        nd = numeric_dirs(lab.root)
        out = []
        if len(nd) != with_dir(drows):
            out.append("%d snapshot directories for %d snapshots with one (%d in all)"
                       % (len(nd), with_dir(drows), len(drows)))
        return out + snapshot_dir_problems(lab.root)
    last = probs()
    deadline = time.time() + settle
    while last and time.time() < deadline:
        time.sleep(0.2)
        last = probs()
    return last


@case("cleanup-vs-prepare")
def t_cleanup_vs_prepare(env):
    """Prepares (mkfs.ext4) from 8 clients while containerd collects in a
    loop (Remove, Cleanup): no Prepare fails, every snapshot keeps its
    directory."""
    lab = env.lab
    info = env.imported("multi")
    parent = info["chain_ids"][0]
    errors = []
    stop = threading.Event()
    lock = threading.Lock()

    def client(t):
        try:
            for i in range(12):
                k = "cvp-%d-%d" % (t, i)
                for args in (["prepare", k, parent], ["rm", k]) if i % 2 else (["prepare", k],):
                    r = lab.sn(*args, check=False)
                    if r.rc:
                        raise RuntimeError("%s: %s" % (" ".join(args), tail(r.err)))
        except Exception as e:  # noqa: BLE001
            with lock:
                errors.append("client %d: %s" % (t, e))

    collections = [0]

    def collector():
        while not stop.is_set():
            r = lab.ctr("leases", "create", check=False)
            if r.rc == 0:
                lab.ctr("leases", "delete", "--sync", r.out.split()[0], check=False)
                collections[0] += 1

    off = lab.log_size()
    gc_thread = threading.Thread(target=collector)
    gc_thread.start()
    threads = [threading.Thread(target=client, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stop.set()
    gc_thread.join()
    cleanups = lab.log_since(off).count("Snapshots/Cleanup")
    if env.verbose:
        print("  %d collections, %d Cleanups reached the daemon" % (collections[0], cleanups))
    check(not errors, "%d clients failed" % len(errors), errors)
    check(cleanups > 0, "no Cleanup ran during the Prepares")
    rows = ls_table(lab.sn("ls").out)
    for t in range(8):
        for i in range(0, 12, 2):
            k = "cvp-%d-%d" % (t, i)
            if k not in rows:
                errors.append("%s is gone" % k)
            else:
                lab.sn("rm", k)
    probs = consistency_problems(lab)
    check(not errors and not probs, "after the race", errors + probs)


@case("restart")
def t_restart(env):
    """SIGTERM → exit 0; the restarted daemon serves the same snapshots with
    the same mounts; containerd reconnects by itself."""
    lab = env.lab
    info = env.imported("multi")
    top = info["chain_ids"][-1]
    key = env.name("restart-view")
    before = view(lab, lab.sn, key, top)
    rows_before = ls_table(lab.sn("ls").out)
    lab.sh("lab_restart_daemon", timeout=120)
    check(lab.rc("sn") is None and lab.running("sn"), "the daemon is not running after lab_restart_daemon")
    t0 = time.time()
    lab.wait_snapshotter()
    if env.verbose:
        print("  containerd reached the restarted daemon in %.1f s" % (time.time() - t0))
    after = parse_mounts(lab.sn("view", "--mounts", key + "-2", top).out)
    lab.sn("rm", key + "-2")
    r = lab.ctr("snapshots", "--snapshotter", SN, "mounts", "/mnt", key)
    check(before == after, "mounts changed across the restart: %s / %s" % (before, after))
    check(before[0]["Source"] in r.out, "Mounts after the restart: %s" % tail(r.out))
    rows_after = ls_table(lab.sn("ls").out)
    rows_before.pop(key + "-2", None)
    check(rows_before == rows_after, "snapshots changed across the restart")
    lab.sn("rm", key)


def kill_during_import(env, name, trigger, label):
    """Starts `ctr images import` of image name, kills the daemon with -9
    when trigger(lab, pid) says so; the import must fail. Then restarts the
    daemon, waits for containerd to reconnect and imports again."""
    lab = env.lab
    info = env.image(name)
    pid = lab.pid("sn")
    p = subprocess.Popen([env.ctr, "--address", lab.sock, "images", "import", "--snapshotter", SN,
                          info["path"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    env.procs.append(p)
    killed = False
    t0 = time.time()
    deadline = time.time() + 120
    try:
        while p.poll() is None and time.time() < deadline:
            if trigger(lab, pid):
                if label == "prepare":
                    lab.sh("lab_kill9_daemon", timeout=30)
                else:
                    os.kill(pid, signal.SIGKILL)
                killed = True
                kill_t = time.time()
                break
            time.sleep(0.002)
        out, err = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        fail("ctr images import hung after the daemon was killed")
    if not killed:
        # the import won the race: undo it so that the caller can retry
        return None
    deadline = time.time() + 10
    while lab.rc("sn") is None and time.time() < deadline:
        time.sleep(0.05)
    check(lab.rc("sn") == 137, "the killed daemon's status: %s" % lab.rc("sn"))
    check(p.returncode != 0, "the import succeeded although the daemon was killed (%s)" % label)
    if env.verbose:
        print("  killed %.2f s into the import (%s); ctr: %s" % (kill_t - t0, label, tail(err, 160)))
    leftovers = [l for l in mounts_under(lab.dir)] + loops_under(lab.dir)
    lab.sh("lab_start_daemon", timeout=60)
    lab.wait_snapshotter(30)
    r = lab.ctr("images", "import", "--snapshotter", SN, info["path"], timeout=600, check=False)
    check(r.rc == 0, "the import after the restart failed: %s" % tail(r.err or r.out))
    return leftovers


def remove_image_and_wait(env, name, snapshotter=SN):
    lab = env.lab
    info = env.image(name)
    lab.ctr("images", "rm", "--sync", info["name"], check=False)
    ctl = lab.sn if snapshotter == SN else lab.ov

    def gone():
        rows = ls_table(ctl("ls").out)
        return not (set(info["chain_ids"]) & set(rows))
    check(poll(gone, 60), "the garbage collector left the snapshots of %s" % name)
    for k in list(env.memo):
        if k.startswith("import %s into" % name) or k == "layer dirs of " + name:
            del env.memo[k]


def fs_blob_growing(lab, pid):
    return bool(glob.glob(os.path.join(lab.root, "snapshots", "*", "fs", "data", "blob")))


def converting(lab, pid):
    """Commit is converting the big layer: the daemon reads its fs/data/blob
    or writes a file (layer.erofs, or an unnamed temporary one) in the
    directory whose fs/ holds it."""
    prefix = os.path.join(lab.root, "snapshots") + "/"
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return False
    for fd in fds:
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if not t.startswith(prefix):
            continue
        if t.endswith("/fs/data/blob"):
            return True
        m = re.match(re.escape(prefix) + r"(\d+)/", t)
        if m and ("(deleted)" in t or "layer.erofs" in t) and \
                os.path.exists(os.path.join(prefix, m.group(1), "fs", "data", "blob")):
            return True
    return False


@case("kill9-import-apply")
def t_kill_apply(env):
    """kill -9 while containerd writes the 110 MiB layer into the extract
    snapshot; restart; the import succeeds; nothing leaks."""
    env.lab_up()
    env.image("big")
    if "import big into %s" % SN in env.memo:
        remove_image_and_wait(env, "big")
    leftovers = kill_during_import(env, "big", fs_blob_growing, "prepare")
    check(leftovers is not None, "the import finished before the 110 MiB layer was written")
    env.memo["import big into %s" % SN] = (True, env.image("big"))
    check(not leftovers, "mounts or loop devices after the kill", leftovers)
    fault_aftercheck(env)


@case("kill9-import-commit")
def t_kill_commit(env):
    """kill -9 while Commit converts the 110 MiB layer to EROFS."""
    env.lab_up()
    for attempt in range(3):
        if "import big into %s" % SN in env.memo:
            remove_image_and_wait(env, "big")
        leftovers = kill_during_import(env, "big", converting, "commit")
        env.memo["import big into %s" % SN] = (True, env.image("big"))
        if leftovers is not None:
            break
    else:
        raise CaseSkipped("never caught the daemon converting in 3 imports")
    check(not leftovers, "mounts or loop devices after the kill", leftovers)
    fault_aftercheck(env)


def fault_aftercheck(env):
    lab = env.lab
    # every directory is a snapshot the daemon knows; stale extract
    # snapshots of the failed import may remain until containerd's GC
    probs = consistency_problems(lab)
    for d in numeric_dirs(lab.root):
        p = os.path.join(lab.root, "snapshots", str(d), "layer.erofs")
        if os.path.exists(p):
            e = erofs_check(env, p)
            if e:
                probs.append(e)
    probs += ["leftover " + x for x in mounts_under(lab.dir) + loops_under(lab.dir)]
    check(not probs, "%d problems after the fault" % len(probs), probs)


@case("groundtruth-big")
def t_gt_big(env):
    """The image with a 110 MiB layer (imported after the faults) against
    overlayfs."""
    lab = env.lab
    info = env.imported("big")
    env.imported("big", "overlayfs")
    top = info["chain_ids"][-1]
    ov_key, our_key = env.name("gtb-ov"), env.name("gtb-sn")
    om = view(lab, lab.ov, ov_key, top)
    sm = view(lab, lab.sn, our_key, top)
    d, e, a = compare_trees(env.host, om, sm, "big")
    lab.ov("rm", ov_key)
    lab.sn("rm", our_key)
    check(not d, "%d differences from overlayfs" % len(d), d)
    big = [r for p, r in a.items() if p == "data/blob"]
    check(big and big[0]["size"] == 110 << 20, "data/blob is not 110 MiB in our view")


@case("gc")
def t_gc(env):
    """ctr images rm + containerd's garbage collector: every snapshot of
    ours goes (Remove child-first, Cleanup), and so do their directories."""
    lab = env.lab
    env.lab_up()
    chains = set()
    for k, (ok, v) in env.memo.items():
        if k.startswith("image ") and ok:
            chains |= set(v["chain_ids"])
    # first what the cases made outside images (gc roots), children first
    for ctl in (lab.sn, lab.ov):
        for _ in range(20):
            rows = ls_table(ctl("ls").out)
            debris = {k: v for k, v in rows.items() if k not in chains}
            if not debris:
                break
            for k in debris:
                if not any(p == k for p, _ in rows.values()):
                    ctl("rm", k, check=False)
    rows = ls_table(lab.sn("ls").out)
    check(rows and set(rows) <= chains, "before removing the images: %s" % sorted(rows)[:6])
    check(numeric_dirs(lab.root), "no snapshot directories before removing the images")
    t0 = time.time()
    # --sync: collect now (containerd 1.6 spaces its collections by their
    # cost, /0.02: one slowed by a dead daemon defers the next by minutes)
    for n in lab.ctr("images", "ls", "-q").out.split():
        lab.ctr("images", "rm", "--sync", n)
    gone = poll(lambda: not ls_table(lab.sn("ls").out), 60)
    if not gone:
        gc_log = [l[:220] for l in open(os.path.join(lab.dir, "containerd.log"), errors="replace")
                  if "garbage" in l][-6:]
        fail("snapshots left 60 s after removing every image: %s"
             % sorted(ls_table(lab.sn("ls").out))[:6], ["containerd.log: " + l for l in gc_log])
    ovgone = poll(lambda: not ls_table(lab.ov("ls").out), 60)
    check(ovgone, "overlayfs snapshots left: %s" % sorted(ls_table(lab.ov("ls").out))[:4])
    gone = poll(lambda: (not ls_table(lab.direct("ls").out)) and numeric_dirs(lab.root) == [], 60)
    if env.verbose:
        print("  garbage collected in %.1f s" % (time.time() - t0))
    check(gone, "the daemon still holds %s; directories %s" % (
        sorted(ls_table(lab.direct("ls").out))[:4], numeric_dirs(lab.root)[:10]))
    probs = snapshot_dir_problems(lab.root)
    check(not probs, "leftovers in the snapshots directory", probs)
    for n in env.memo_import_keys():
        del env.memo[n]
    env.gc_done = True


@case("lab-stop")
def t_lab_stop(env):
    """lab_stop: containerd, then the daemon (SIGTERM, exit 0)."""
    lab = env.lab
    if not lab.started:
        raise CaseSkipped("the lab was not started")
    r = lab.sh("lab_stop", timeout=120, check=False)
    check(r.rc == 0, "lab_stop failed: %s" % tail(r.err))
    check(lab.rc("sn") == 0, "the daemon's exit status %s, expected 0" % lab.rc("sn"))
    check(lab.rc("containerd") is not None, "containerd still runs")
    lab.started = False


@case("no-leaks")
def t_no_leaks(env):
    """Nothing this run started is left: processes, mounts, loop devices,
    snapshot directories, temporary files."""
    final_cleanup(env)
    probs = []
    probs += ["process " + p for p in procs_mentioning(env.work)]
    probs += ["mount " + m for m in mounts_under(env.work)]
    probs += ["loop device " + l for l in loops_under(env.work)]
    for root in (env.lab.root, env.solo.root):
        if os.path.isdir(os.path.join(root, "snapshots")):
            probs += snapshot_dir_problems(root)
            nd = numeric_dirs(root)
            # containerd removes backend snapshots at its next collection:
            # the lab's root is empty only after the gc case
            if nd and (root == env.solo.root or env.gc_done):
                probs.append("%s/snapshots still holds %s" % (root, nd[:10]))
    check(not probs, "%d leaks" % len(probs), probs)


def final_cleanup(env):
    """Stop what runs, unmount, detach: always, in this order."""
    errors = env.host.cleanup()
    if env.lab.started or env.lab.running("containerd") or env.lab.running("sn"):
        r = env.lab.sh("lab_stop", timeout=120, check=False)
        if r.rc:
            errors.append("lab_stop: " + tail(r.err))
        env.lab.started = False
    if env.solo.proc and env.solo.proc.poll() is None:
        try:
            env.solo.stop(expect_zero=False)
        except CaseFailed as e:
            errors.append(e.reason)
    for p in env.procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    return errors


def _memo_import_keys(self):
    return [k for k in self.memo if k.startswith("import ") or k.startswith("layer dirs of ")]


Env.memo_import_keys = _memo_import_keys


# ---- main ---------------------------------------------------------------------------

def cannot_run():
    if os.geteuid() != 0:
        return "not root"
    for tool in ("containerd", "ctr", "losetup", "mount", "mkfs.ext4"):
        if not shutil.which(tool):
            return "no %s" % tool
    if not os.path.exists("/dev/loop-control"):
        return "no loop devices"
    fss = open("/proc/filesystems").read()
    for fs in ("erofs", "overlay"):
        if fs not in fss:
            subprocess.run(["modprobe", fs], capture_output=True)
            if fs not in open("/proc/filesystems").read():
                return "the kernel has no %s" % fs
    return None


def prepare_workdir(env, keep_images=True):
    """A fresh lab under workdir: what a previous run left (processes of
    ours, mounts, loop devices, immutable files) goes first."""
    os.makedirs(env.work, exist_ok=True)
    for name in ("lab/sn.pid", "lab/containerd.pid"):
        p = os.path.join(env.work, name)
        try:
            pid = int(open(p).read())
        except (OSError, ValueError):
            continue
        if env.work in cmdline_of(pid):
            os.kill(pid, signal.SIGKILL)
    for line in procs_mentioning(env.work):
        pid = int(line.split(":")[0])
        if comm_of(pid) in ("spin-erofs-snap", "containerd", "mkfs.ext4"):
            os.kill(pid, signal.SIGKILL)
    for m in sorted(mounts_under(env.work), key=lambda s: -len(s)):
        subprocess.run(["umount", "-l", m.split(" on ", 1)[1]], capture_output=True)
    for l in loops_under(env.work):
        subprocess.run(["losetup", "-d", l.split()[0]], capture_output=True)
    for d in ("lab", "solo", "mnt"):
        p = os.path.join(env.work, d)
        if os.path.exists(p):
            subprocess.run(["chattr", "-R", "-i", p], capture_output=True)
            shutil.rmtree(p)
    os.makedirs(env.host.mnt_dir)
    if len(env.lab_dir) > 80:
        fail("workdir %s is too long for unix socket paths" % env.work)


def dir_files_bytes(d):
    """What a committed snapshot's Usage counts: its layer.erofs and, on a
    chain of two or more, the chain's fsmeta.erofs and merged.vmdk."""
    return sum(os.path.getsize(os.path.join(d, f)) for f in ("layer.erofs", "fsmeta.erofs", "merged.vmdk")
               if os.path.isfile(os.path.join(d, f)))


def run_cases(env, cases, a, always=(), after_each=None, before_cleanup=None, remove_lab=False):
    """Runs the cases of `cases` ((name, fn) pairs) that a.only selects (all
    when empty; those named in `always` in any case, except lab-stop and
    no-leaks under a.keep), each fn(env) passing, failing (CaseFailed, any
    exception) or skipping (CaseSkipped); after_each(env) returns a list of
    problems a case left (its own failure). Then, unless a.keep:
    before_cleanup(env), final_cleanup, the immutable flag cleared in the lab
    and, with remove_lab, the lab removed when all passed. Prints one line per
    case and the totals; returns the exit status (130 when interrupted)."""
    passed = failed = skipped = 0
    selected = [(n, f) for n, f in cases
                if not a.only or any(fnmatch.fnmatch(n, g) for g in a.only) or n in always]
    interrupted = False
    try:
        for name, fn in selected:
            if name in ("lab-stop", "no-leaks") and a.keep:
                continue
            t0 = time.time()
            try:
                fn(env)
            except CaseFailed as e:
                failed += 1
                print("FAIL %s: %s" % (name, e.reason))
                for d in e.details[:MAX_DETAILS]:
                    print("    " + str(d))
                if len(e.details) > MAX_DETAILS:
                    print("    ... and %d more" % (len(e.details) - MAX_DETAILS))
            except CaseSkipped as e:
                skipped += 1
                print("skip %s: %s" % (name, e))
            except KeyboardInterrupt:
                interrupted = True
                print("FAIL %s: interrupted" % name)
                failed += 1
                break
            except Exception as e:  # noqa: BLE001
                failed += 1
                print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
                for line in traceback.format_exc().splitlines()[-8:]:
                    print("    " + line)
            else:
                passed += 1
                print("ok %s%s" % (name, " (%.1f s)" % (time.time() - t0) if a.verbose else ""))
            errs = after_each(env) if after_each else []
            if errs:
                failed += 1
                print("FAIL %s-cleanup: %s" % (name, "; ".join(errs)))
            sys.stdout.flush()
    finally:
        if not a.keep:
            if before_cleanup:
                before_cleanup(env)
            errs = final_cleanup(env)
            if errs:
                failed += 1
                print("FAIL final-cleanup: %s" % "; ".join(errs))
            # layer.erofs files are immutable (--set-immutable): clear the
            # flag so that the work directory can be deleted
            if remove_lab and os.path.isdir(env.lab_dir):
                subprocess.run(["chattr", "-R", "-i", env.lab_dir], capture_output=True)
                if not failed:
                    shutil.rmtree(env.lab_dir, ignore_errors=True)
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line)
    if interrupted:
        return 130
    return 0 if failed == 0 else 1

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--erofs-layer", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--daemon-bench", help="bench/daemon-bench.c's binary, for load-direct")
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--keep", action="store_true", help="leave the lab running at the end (debugging)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--containerd", choices=CONTAINERD_RELEASES, default="2.1",
                    help="the containerd release the lab runs (default %(default)s)")
    ap.add_argument("--load-rounds", type=int, default=3,
                    help="rounds per client of load-smoke-direct (16 clients, one ctr process "
                         "per call; default 3: load-direct is the real load)")
    ap.add_argument("--full-load-rounds", type=int, default=200,
                    help="rounds per client of load-direct (16 clients, daemon-bench --load; "
                         "default 200, issue 4)")
    ap.add_argument("--containerd-load-rounds", type=int, default=50,
                    help="rounds per client of load-containerd (16 clients; default 50)")
    a = ap.parse_args()
    if a.list:
        for name, fn in CASES:
            print("%-24s %s" % (name, (fn.__doc__ or "").strip().split("\n")[0]))
        return 0
    why = cannot_run()
    if why:
        print("skip integration: %s" % why)
        return 77
    try:
        env = Env(a)
        env.daemon_bench = os.path.abspath(a.daemon_bench) if a.daemon_bench else None
    except CaseFailed as e:
        print("FAIL setup: %s" % e.reason)
        print("0 passed, 1 failed")
        return 1
    for path in (env.daemon, env.erofs_layer):
        if not os.access(path, os.X_OK):
            print("FAIL setup: %s is not executable" % path)
            print("0 passed, 1 failed")
            return 1
    try:
        prepare_workdir(env)
    except (CaseFailed, OSError) as e:
        print("FAIL setup: %s" % e)
        print("0 passed, 1 failed")
        return 1
    return run_cases(env, CASES, a, always=("no-leaks",),
                     after_each=lambda env: env.host.cleanup())


if __name__ == "__main__":
    sys.exit(main())
