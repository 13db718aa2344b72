#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Guest tests: the mounts our snapshotter returns (docs/vm-runtime-contract.md), made here
without containerd or the daemon, booted by tests/guest/guest.py in QEMU (TCG)
with Debian's 6.12 (bookworm-backports) kernel, Debian 12's 6.1 for the
--flat form, and Debian sid's 7.x for the main shapes again (the *-sid
cases); the guest prints the merged view and writes to the ext4 layer,
which is then read on the host with debugfs (never mounted).

    run-guest.py --erofs-layer PATH --workdir DIR [--cache DIR] [--only GLOB]... [--keep] [-v]

Prints `ok NAME`, `FAIL NAME: reason` or `skip NAME: reason` per case, a
`#   boot ... total ...` line per boot, then `N passed, M failed[, K skipped]`.
Exit 0 all passed, 1 some failed, 77 only when qemu-system-x86_64 is missing.
A kernel that cannot be fetched (no mirror) is a failure, not a skip; only the
6.1 and 7.x (sid) kernels may be skipped, when their download failed and the
6.12 one could be fetched. A kernel that was fetched but cannot be used (a
package layout the resolver does not know) is a failure.
"""

import argparse
import fnmatch
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import guest  # noqa: E402

T0 = 1700000000
APPLETS = ["sh", "cat", "ls", "rm", "mkdir", "sleep", "stat", "true", "false", "sync", "head",
           "md5sum"]
# A file of the verity stack's lowest layer, large enough that its data sits
# in whole blocks of its own (the block a test changes on the host).
BIG = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(2048))
BOOTS = []  # (case, boot, total, cpu) of every boot


class CaseFailed(Exception):
    pass


class CaseSkipped(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CaseFailed(msg)


def sh(argv, **kw):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    if p.returncode != 0:
        raise CaseFailed("%s exited %d: %s" % (" ".join(argv), p.returncode,
                                               p.stderr.decode("utf-8", "replace").strip()[-500:]))
    return p.stdout.decode("utf-8", "replace")


# ---- layers ------------------------------------------------------------------

class Layer:
    """An OCI layer tar built in memory (whiteouts as `.wh.` entries)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, type_, mode):
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = type_, mode, T0, 0, 0
        ti.uname = ti.gname = "root"
        return ti

    def dir(self, name, mode=0o755):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))
        return self

    def file(self, name, data, mode=0o644):
        data = data.encode() if isinstance(data, str) else data
        ti = self._info(name, tarfile.REGTYPE, mode)
        ti.size = len(data)
        self.tar.addfile(ti, io.BytesIO(data))
        return self

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)
        return self

    def whiteout(self, path):
        d, _, base = path.rpartition("/")
        return self.file((d + "/" if d else "") + ".wh." + base, b"")

    def opaque(self, d):
        return self.file(d + "/.wh..wh..opq", b"")

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def with_busybox(layer):
    """A static busybox and a few applet links, so the chroot has a shell."""
    with open(guest.BUSYBOX, "rb") as f:
        layer.file("bin/busybox", f.read(), 0o755)
    for a in APPLETS:
        layer.symlink("bin/" + a, "busybox")
    return layer


def stack_layers(big=False):
    l1 = Layer()
    if big:
        l1.dir("data").file("data/big", BIG)
    for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "gonedir", "gonedir/sub", "opq"):
        l1.dir(d)
    with_busybox(l1)
    l1.file("etc/changed", "v1\n").file("etc/gone", "gone\n").file("etc/keep", "keep\n")
    l1.file("etc/deleteme", "delete me\n").file("gonedir/a", "a\n").file("gonedir/sub/b", "b\n")
    l1.file("opq/old1", "old1\n").file("opq/old2", "old2\n")
    l2 = Layer().dir("etc").file("etc/changed", "v2\n").whiteout("etc/gone").whiteout("gonedir")
    l2.dir("opq").opaque("opq").file("opq/new2", "new2\n").file("etc/l2", "l2\n")
    # a directory re-created above its whiteout starts empty
    l3 = Layer().dir("etc").file("etc/changed", "v3\n").dir("opq").file("opq/new3", "new3\n")
    l3.dir("gonedir").file("gonedir/fresh", "fresh\n")
    return [l1.bytes(), l2.bytes(), l3.bytes()]


# What the guest prints of the merged view, and what it must look like.
VIEW_SCRIPT = r"""
echo "changed=$(cat /etc/changed)"
[ -e /etc/gone ] && echo gone=present || echo gone=absent
echo "gonedir:" $(ls -1 /gonedir)
echo "opq:" $(ls -1 /opq)
echo "keep=$(cat /etc/keep) l2=$(cat /etc/l2)"
"""
VIEW_EXPECTED = b"changed=v3\ngone=absent\ngonedir: fresh\nopq: new2 new3\nkeep=keep l2=l2\n"
WRITE_SCRIPT = r"""
echo hello-from-guest > /etc/newfile && echo wrote
rm /etc/deleteme && echo deleted
[ -e /etc/deleteme ] && echo still-there
exit 7
"""
WRITE_EXPECTED = b"wrote\ndeleted\n"


# ---- the environment ---------------------------------------------------------

class Env:
    def __init__(self, args):
        self.args = args
        self.el = os.path.abspath(args.erofs_layer)
        self.workdir = os.path.abspath(args.workdir)
        self.cache = args.cache
        self._kernels = {}
        self._stacks = {}
        self.tampered = None  # (layer, offset of the changed byte)

    def kernel(self, suite):
        if suite not in self._kernels:
            try:
                self._kernels[suite] = guest.kernel(suite, self.cache, verbose=self.args.verbose)
            except guest.GuestError as e:
                self._kernels[suite] = e
        k = self._kernels[suite]
        if isinstance(k, guest.GuestError):
            msg = "cannot get the %s kernel: %s" % (suite, str(k).splitlines()[0])
            if suite != guest.DEFAULT_SUITE and isinstance(k, guest.GuestFetchError):
                # a mirror that serves 6.12 but not this suite (sid moves):
                # visible skip; fetched but unusable stays a failure
                try:
                    self.kernel(guest.DEFAULT_SUITE)
                except CaseFailed:
                    raise CaseFailed(msg) from None
                raise CaseSkipped(msg)
            raise CaseFailed(msg)
        return k

    def boot(self, case, mounts, argv, suite=guest.DEFAULT_SUITE, **kw):
        k = self.kernel(suite)
        r = guest.run(mounts, argv, kern=k, cache_dir=self.cache, verbose=self.args.verbose, **kw)
        BOOTS.append((case, k.version, r.boot_time, r.total_time, r.cpu_time))
        print("#   %s: %s boot %.2f s, total %.2f s (QEMU cpu %.2f s)"
              % (case, k.version, r.boot_time, r.total_time, r.cpu_time))
        return r

    def stack(self, verity=False, tamper=False):
        """L1..L3 converted and merged, in the daemon's layout (docs/durability.md):
        snapshots/<n>/layer.erofs, fsmeta.erofs and merged.vmdk in the top's.
        VERITY: each file with its dm-verity tree and sidecar, and L1 holding
        /data/big; TAMPER: then one byte of /data/big changed in L1 (its tree
        and sidecar still describe the original)."""
        key = (verity, tamper)
        if key in self._stacks:
            return self._stacks[key]
        root = os.path.join(self.workdir, "snapshots" + ("-verity" if verity else "") +
                            ("-tampered" if tamper else ""))
        shutil.rmtree(root, ignore_errors=True)
        flag = ["--dm-verity"] if verity else []
        layers = []
        for i, data in enumerate(stack_layers(big=verity), 1):
            d = os.path.join(root, str(i))
            os.makedirs(d)
            tarp = os.path.join(d, "layer.tar")
            with open(tarp, "wb") as f:
                f.write(data)
            sh([self.el, "convert"] + flag + ["-o", os.path.join(d, "layer.erofs"), tarp])
            os.unlink(tarp)
            layers.append(os.path.join(d, "layer.erofs"))
        if tamper:
            self.tampered = (layers[0], flip_in(layers[0], BIG[40000:40064]))
        top = os.path.dirname(layers[-1])
        fsmeta, vmdk = os.path.join(top, "fsmeta.erofs"), os.path.join(top, "merged.vmdk")
        sh([self.el, "merge"] + flag + ["-o", fsmeta, "--vmdk", vmdk] + layers)
        self._stacks[key] = (layers, fsmeta, vmdk)
        return self._stacks[key]

    def rwlayer(self, name, upper_files=None):
        """A sparse 64 MiB ext4 like the daemon's (src/daemon/ext4.c), with
        upper/ and work/ at its root (and UPPER_FILES in upper/)."""
        d = os.path.join(self.workdir, name)
        tmpl = d + ".tmpl"
        shutil.rmtree(tmpl, ignore_errors=True)
        os.makedirs(os.path.join(tmpl, "upper"))
        os.makedirs(os.path.join(tmpl, "work"))
        for path, (data, mode) in (upper_files or {}).items():
            p = os.path.join(tmpl, "upper", path)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            if isinstance(data, tuple):  # ("symlink", target)
                os.symlink(data[1], p)
                continue
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, mode)
        os.makedirs(d, exist_ok=True)
        img = os.path.join(d, "rwlayer.img")
        if os.path.exists(img):
            os.unlink(img)
        with open(img, "wb") as f:
            f.truncate(64 << 20)
        sh(["mkfs.ext4", "-q", "-F", "-b", "4096", "-O", "metadata_csum_seed", "-d", tmpl,
            "-E", "root_owner=0:0,lazy_itable_init=1,lazy_journal_init=1", img])
        shutil.rmtree(tmpl)
        return img


def flip_in(path, needle):
    """Change one bit of PATH where NEEDLE (a file's data) is; its offset."""
    with open(path, "r+b") as f:
        data = f.read()
        off = data.find(needle)
        check(off >= 0 and data.find(needle, off + 1) < 0, "%s holds the data %s times"
              % (path, data.count(needle)))
        f.seek(off)
        f.write(bytes([data[off] ^ 0x10]))
    return off


def debugfs(img, cmd):
    return sh(["debugfs", "-R", cmd, img])


def check_upper(img, deleted="/upper/etc/deleteme", new="/upper/etc/newfile",
                content="hello-from-guest\n"):
    """On the host, without mounting: the new file and a 0:0 whiteout in
    upper/, and a clean file system."""
    got = debugfs(img, "cat " + new)
    check(got == content, "%s in the ext4 holds %r, expected %r" % (new, got, content))
    st = debugfs(img, "stat " + deleted)
    check("Type: character special" in st and "Device major/minor number: 00:00" in st,
          "%s is not a 0:0 whiteout: %s" % (deleted, " | ".join(st.splitlines()[:3])))
    listing = debugfs(img, "ls -l " + os.path.dirname(deleted))
    check("keep" not in listing.split(), "an untouched lower file was copied up: %s" % listing)
    state = subprocess.run(["dumpe2fs", "-h", img], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL).stdout.decode()
    check("Filesystem state:         clean" in state,
          "the ext4 was not unmounted cleanly: %s" %
          [ln for ln in state.splitlines() if ln.startswith("Filesystem state")])
    p = subprocess.run(["e2fsck", "-fn", img], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    check(p.returncode == 0, "e2fsck -fn: %s" % p.stdout.decode()[-400:])


def expect_run(r, output, status, what):
    check(r.output == output, "%s: output %r, expected %r" % (what, r.output, output))
    check(r.status == status, "%s: exit status %d, expected %d" % (what, r.status, status))
    check(r.clean, "%s: the guest did not tear down cleanly" % what)


def mounts_active(layers, fsmeta, rwimg, verity=False):
    """docs/vm-runtime-contract.md, an Active with parents: fsmeta with device= options (oldest
    first), then the ext4. VERITY: fsmeta's mount names its sidecar as the daemon's
    --dm-verity=mounts does (the layers' are found by name)."""
    extra = ["X-containerd.dmverity=%s.dmverity" % fsmeta] if verity else []
    m = [{"type": "erofs", "source": fsmeta,
          "options": ["ro", "loop"] + ["device=" + p for p in layers] + extra}]
    if rwimg:
        m.append({"type": "ext4", "source": rwimg, "options": ["rw", "loop"]})
    return m


# ---- cases ---------------------------------------------------------------------

def case_translate(env):
    """Mount translation, without booting."""
    layers, fsmeta, vmdk = env.stack()
    rw = env.rwlayer("translate")
    # ctr's JSON keys (Type/Source/Options) and the device= form → one vmdk
    text = json.dumps([{"Type": m["type"], "Source": m["source"], "Options": m["options"]}
                       for m in mounts_active(layers, fsmeta, rw)])
    p = guest.translate(text)
    check([(d.path, d.format, d.readonly) for d in p.disks] == [(vmdk, "vmdk", True), (rw, "raw", False)],
          "active: disks %s" % p.disks)
    check(p.lowers == [("L0", [])] and p.rw == "RW", "active: lowers %s rw %s" % (p.lowers, p.rw))
    # `ctr snapshots mounts` lines
    lines = "mount -t erofs %s /target -o ro,loop\n" % layers[0]
    p = guest.translate(lines)
    check([(d.path, d.format, d.readonly) for d in p.disks] == [(layers[0], "raw", True)] and p.rw is None,
          "view from ctr lines: %s" % p.disks)
    # the per-layer fallback: one raw disk each, the first the lowest
    p = guest.translate([{"type": "erofs", "source": x, "options": ["ro", "loop"]} for x in layers])
    check([d.path for d in p.disks] == layers and [s for s, _ in p.lowers] == ["L0", "L1", "L2"],
          "fallback: %s" % p.disks)
    check('lower L0\nlower L1\nlower L2\n' in p.job(["x"], "N"), "fallback job: %r" % p.job(["x"], "N"))
    # devices mode: fsmeta, then each layer, named for the device= options
    p = guest.translate(mounts_active(layers, fsmeta, rw), erofs_mode="devices")
    check([d.path for d in p.disks] == [fsmeta] + layers + [rw] and
          p.lowers == [("L0", ["L0D1", "L0D2", "L0D3"])], "devices: %s %s" % (p.disks, p.lowers))
    # an Active without parents: the ext4 alone; a View without parents:
    # the bind of an empty directory, nothing to boot
    empty = os.path.join(env.workdir, "translate", "lower")
    os.makedirs(empty, exist_ok=True)
    p = guest.translate([{"type": "ext4", "source": rw, "options": ["rw", "loop"]}])
    check(len(p.disks) == 1 and p.lowers == [] and p.rw == "RW", "active, no parents: %s" % p.disks)
    for bad, why in (
            ([{"type": "bind", "source": empty, "options": ["ro", "rbind"]}], "nothing to boot"),
            ([{"type": "bind", "source": env.workdir, "options": ["ro", "rbind"]}], "empty directory"),
            ([{"type": "overlay", "source": "overlay", "options": ["lowerdir=/x"]}], "extract"),
            ([{"type": "erofs", "source": layers[0], "options": ["ro", "device=" + layers[1]]}],
             "no merged.vmdk"),
            ([{"type": "ext4", "source": rw, "options": []},
              {"type": "erofs", "source": layers[0], "options": []}], "after the writable"),
            ([{"type": "erofs", "source": "/no/such.erofs", "options": ["ro"]}], "does not exist")):
        try:
            guest.translate(bad)
        except guest.GuestError as e:
            check(why in str(e), "%s: message %r lacks %r" % (bad, str(e), why))
        else:
            raise CaseFailed("accepted %s" % bad)
    # argv survives the trip through job.sh quoting
    job = guest.translate(lines).job(["/bin/sh", "-c", "echo 'a b' \"$x\"\n;"], "N")
    check("run /bin/sh -c 'echo '\"'\"'a b'\"'\"' \"$x\"\n;'\n" in job, "job quoting: %r" % job)


def case_active_vmdk(env, name="active-vmdk", suite=guest.DEFAULT_SUITE):
    """Active with parents as docs/vm-runtime-contract.md returns it: merged.vmdk as one
    read-only disk, rwlayer.img writable; merged view, a write, a delete."""
    k = env.kernel(suite)
    layers, fsmeta, _ = env.stack()
    rw = env.rwlayer(name)
    r = env.boot(name, mounts_active(layers, fsmeta, rw),
                 ["/bin/sh", "-c", VIEW_SCRIPT + WRITE_SCRIPT], suite=k.suite)
    expect_run(r, VIEW_EXPECTED + WRITE_EXPECTED, 7, name)
    check_upper(rw)


def case_view_single_cli(env, name="view-single-cli", suite=guest.DEFAULT_SUITE):
    """A one-layer View as `ctr snapshots mounts` prints it, through the
    CLI: a raw read-only disk, no writable one; raw output bytes."""
    env.kernel(suite)  # fetched (or skipped) here, not inside the CLI's timing
    layers, _, _ = env.stack()
    mf = os.path.join(env.workdir, name + ".mounts")
    with open(mf, "w") as f:
        f.write("mount -t erofs %s /target -o ro,loop\n" % layers[0])
    script = ("cat /etc/changed; (echo x > /etc/x) 2>/dev/null && echo wrote || echo read-only; "
              "printf 'a\\tb\\r\\nno newline'; exit 3")
    t = time.monotonic()
    p = subprocess.run([sys.executable, os.path.join(HERE, "guest.py"), "run", "--times",
                        "--cache", env.cache, "--suite", suite, "--mounts", mf,
                        "--", "/bin/sh", "-c", script],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode == 3, "CLI exit %d, expected 3: %s" % (p.returncode, err[-800:]))
    want = b"v1\nread-only\na\tb\r\nno newline"
    check(p.stdout == want, "CLI output %r, expected %r" % (p.stdout, want))
    line = [ln for ln in err.splitlines() if ln.startswith("guest: boot ")]
    check(line, "no timing line from --times: %s" % err[-400:])
    print("#   %s: %s (wall %.2f s with python)" % (name, line[0][len("guest: "):],
                                                 time.monotonic() - t))
    w = line[0].split()
    BOOTS.append((name, "%s (CLI)" % guest.SUITES.get(suite, suite), float(w[2]), float(w[5]),
                  float("nan")))


def case_active_fallback(env, name="active-fallback", suite=guest.DEFAULT_SUITE):
    """The per-layer fallback (one erofs mount per layer, oldest first) plus
    the ext4: one raw disk each, stacked by the guest's overlayfs, which
    reads the layers' own whiteouts and opaque xattrs."""
    k = env.kernel(suite)
    layers, _, _ = env.stack()
    rw = env.rwlayer(name)
    mounts = [{"type": "erofs", "source": x, "options": ["ro", "loop"]} for x in layers]
    mounts.append({"type": "ext4", "source": rw, "options": ["rw", "loop"]})
    r = env.boot(name, mounts, ["/bin/sh", "-c", VIEW_SCRIPT + WRITE_SCRIPT], suite=k.suite)
    expect_run(r, VIEW_EXPECTED + WRITE_EXPECTED, 7, name)
    check_upper(rw)


def case_view_devices(env):
    """A View of the stack with --erofs-mode devices: fsmeta and each layer
    as separate disks, mounted with device=/dev/vdX (read-only overlay-less
    root)."""
    layers, fsmeta, _ = env.stack()
    mounts = [{"type": "erofs", "source": fsmeta,
               "options": ["ro", "loop"] + ["device=" + p for p in layers]}]
    r = env.boot("view-devices", mounts, ["/bin/sh", "-c", VIEW_SCRIPT], erofs_mode="devices")
    expect_run(r, VIEW_EXPECTED, 0, "view-devices")


def case_active_no_parents(env):
    """An Active without parents: the ext4 alone, lowerdir an empty
    directory; the shell comes from the upper layer itself."""
    with open(guest.BUSYBOX, "rb") as f:
        bb = f.read()
    files = {"bin/busybox": (bb, 0o755), "bin/sh": (("symlink", "busybox"), 0),
             "bin/cat": (("symlink", "busybox"), 0), "etc/seed": (b"seed\n", 0o644),
             "etc/deleteme": (b"x\n", 0o644)}
    rw = env.rwlayer("active-no-parents", files)
    r = env.boot("active-no-parents", [{"type": "ext4", "source": rw, "options": ["rw", "loop"]}],
                 ["/bin/sh", "-c", "cat /etc/seed; echo hello-from-guest > /etc/newfile; "
                                   "rm /etc/deleteme; echo done"])
    expect_run(r, b"seed\ndone\n", 0, "active-no-parents")
    got = debugfs(rw, "cat /upper/etc/newfile")
    check(got == "hello-from-guest\n", "upper/etc/newfile: %r" % got)
    # deleting an upper-only file leaves no whiteout (nothing below it)
    check("File not found" in subprocess.run(["debugfs", "-R", "stat /upper/etc/deleteme", rw],
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
          .stdout.decode(), "upper/etc/deleteme is still there")


def case_flat_61(env, name="flat-6.1", suite=guest.BOOKWORM_SUITE):
    """Debian 12's 6.1 kernel: `erofs-layer merge --flat` fsmeta with the
    layers concatenated as one raw disk, plus the ext4."""
    k = env.kernel(suite)  # skip (visibly) only if 6.12 worked and this one cannot be fetched
    layers, _, _ = env.stack()
    d = os.path.join(env.workdir, name)
    os.makedirs(d, exist_ok=True)
    flat = os.path.join(d, "fsmeta-flat.erofs")
    sh([env.el, "merge", "--flat", "-o", flat] + layers)
    disk = os.path.join(d, "flat.img")
    guest._concat([flat] + layers, disk)
    rw = env.rwlayer(name)
    r = env.boot(name, [{"type": "erofs", "source": disk, "options": ["ro", "loop"]},
                        {"type": "ext4", "source": rw, "options": ["rw", "loop"]}],
                 ["/bin/sh", "-c", VIEW_SCRIPT + WRITE_SCRIPT], suite=k.suite)
    expect_run(r, VIEW_EXPECTED + WRITE_EXPECTED, 7, name)
    check_upper(rw)


def case_vmdk_61_refused(env):
    """docs/erofs-format.md: 6.1 cannot mount the device-table fsmeta as one disk; the
    harness reports the guest's mount failure as an error, with the console."""
    k = env.kernel(guest.BOOKWORM_SUITE)
    layers, fsmeta, _ = env.stack()
    mounts = [{"type": "erofs", "source": fsmeta,
               "options": ["ro", "loop"] + ["device=" + p for p in layers]}]
    t = time.monotonic()
    try:
        guest.run(mounts, ["/bin/true"], kern=k, cache_dir=env.cache)
    except guest.GuestError as e:
        check("mount -t erofs" in str(e) and "console tail" in str(e),
              "unexpected error: %s" % str(e)[:300])
        print("#   vmdk-6.1-refused: %s, after %.2f s" % (str(e).splitlines()[0],
                                                       time.monotonic() - t))
        return
    raise CaseFailed("6.1 mounted the device-table fsmeta as one disk")


def case_active_vmdk_sid(env):
    """active-vmdk with Debian sid's 7.x kernel (split into linux-binary,
    linux-modules and linux-base packages): merged.vmdk (device-table
    fsmeta) as one disk plus the written rwlayer.img, checked on the host."""
    case_active_vmdk(env, "active-vmdk-sid", guest.SID_SUITE)


def case_active_devices_sid(env):
    """7.x (sid), --erofs-mode devices: fsmeta and each layer as separate
    disks mounted with device=/dev/vdX, plus the writable ext4 (the 6.12
    case view-devices has no writable layer)."""
    k = env.kernel(guest.SID_SUITE)
    layers, fsmeta, _ = env.stack()
    rw = env.rwlayer("active-devices-sid")
    r = env.boot("active-devices-sid", mounts_active(layers, fsmeta, rw),
                 ["/bin/sh", "-c", VIEW_SCRIPT + WRITE_SCRIPT], suite=k.suite,
                 erofs_mode="devices")
    expect_run(r, VIEW_EXPECTED + WRITE_EXPECTED, 7, "active-devices-sid")
    check_upper(rw)


def case_view_single_cli_sid(env):
    """view-single-cli with `guest.py run --suite sid`: a one-layer View on
    7.x, the command run in the read-only erofs mount itself (no overlay)."""
    case_view_single_cli(env, "view-single-cli-sid", guest.SID_SUITE)


def case_flat_sid(env):
    """flat-6.1's form (`merge --flat`, one raw disk without a device
    table) on 7.x (sid): still mounted by later kernels."""
    case_flat_61(env, "flat-sid", guest.SID_SUITE)


def case_active_fallback_sid(env):
    """active-fallback with 7.x (sid): 7.x's overlayfs stacks the per-layer
    erofs disks (their whiteouts, opaque and origin xattrs) over the ext4."""
    case_active_fallback(env, "active-fallback-sid", guest.SID_SUITE)


# ---- dm-verity: the sidecars of docs/verity.md, set up in the guest --------------

VERITY_SCRIPT = "md5sum /data/big\n"
TAMPER_SCRIPT = "cat /data/big >/dev/null; echo big=$?; echo keep=$(cat /etc/keep)\n"


def verity_targets(mounts, erofs_mode):
    return guest.translate(mounts, erofs_mode, verity="on").job(["true"], "N").count(" verity 1 ")


def case_verity_translate(env):
    """dm-verity in the mount translation, without booting: one verity target
    per file in both erofs modes, the sidecar found by name or by the mount's
    X-containerd.dmverity=, verity=on refusing an image without one, and a
    broken sidecar named with its key."""
    layers, fsmeta, vmdk = env.stack(verity=True)
    m = mounts_active(layers, fsmeta, None, verity=True)
    for mode in ("vmdk", "devices"):
        n = verity_targets(m, mode)
        check(n == 4, "%s: %d verity targets, expected 4 (fsmeta and 3 layers)" % (mode, n))
    job = guest.translate(m, "vmdk").job(["true"], "N")
    check(job.count("dm pL0_") == 4 and 'lower "$DM_vL0"' in job, "vmdk job: %s" % job)
    # the option wins over the name: a copy of the sidecar elsewhere
    other = os.path.join(env.workdir, "elsewhere.dmverity")
    shutil.copy(fsmeta + ".dmverity", other)
    p = guest.translate([{"type": "erofs", "source": fsmeta,
                          "options": ["ro", "X-containerd.dmverity=" + other]}])
    check(p.disks[0].verity and p.disks[0].verity.sidecar == other, "sidecar %s" % p.disks[0])
    # an unverified stack: nothing with auto, refused with on
    plain, pfsmeta, _ = env.stack()
    check(verity_targets_auto(mounts_active(plain, pfsmeta, None)) == 0, "auto on a plain stack")
    try:
        guest.translate(mounts_active(plain, pfsmeta, None), verity="on")
        raise CaseFailed("verity=on accepted images without sidecars")
    except guest.GuestError as e:
        check("no dm-verity sidecar" in str(e), "message: %s" % e)
    for doc, key in (('{"roothash": "AB", "hashoffset": 4096}', "roothash"),
                     ('{"roothash": "%s", "hashoffset": 4095}' % ("0" * 64), "hashoffset"),
                     ('{"roothash": "%s", "hashoffset": 1073741824}' % ("0" * 64), "too short"),
                     ('[1]', "not a JSON object")):
        with open(other, "w") as f:
            f.write(doc)
        try:
            guest.translate([{"type": "erofs", "source": fsmeta,
                              "options": ["X-containerd.dmverity=" + other]}])
            raise CaseFailed("sidecar %s accepted" % doc)
        except guest.GuestError as e:
            check(key in str(e) and other in str(e), "sidecar %s: %s" % (doc, e))


def verity_targets_auto(mounts):
    return guest.translate(mounts, "devices").job(["true"], "N").count(" verity 1 ")


def case_verity_good(env, name="verity-vmdk", suite=guest.DEFAULT_SUITE, erofs_mode="vmdk"):
    """Active with parents, every file under dm-verity in the guest (verity=on):
    the composite device over merged.vmdk (a linear and a verity device per
    file, stitched at the same sectors), the merged view, /data/big whole,
    the writes; check --verity passes on the host for every file."""
    k = env.kernel(suite)
    layers, fsmeta, _ = env.stack(verity=True)
    for f in layers + [fsmeta]:
        sh([env.el, "check", "--verity", f])
    rw = env.rwlayer(name)
    r = env.boot(name, mounts_active(layers, fsmeta, rw, verity=True),
                 ["/bin/sh", "-c", VIEW_SCRIPT + VERITY_SCRIPT + WRITE_SCRIPT], suite=k.suite,
                 erofs_mode=erofs_mode, verity="on")
    md5 = ("%s  /data/big\n" % hashlib.md5(BIG).hexdigest()).encode()
    expect_run(r, VIEW_EXPECTED + md5 + WRITE_EXPECTED, 7, name)
    check_upper(rw)


def case_verity_tampered(env, name="verity-tampered", suite=guest.DEFAULT_SUITE,
                         erofs_mode="devices"):
    """One bit of /data/big changed in the lowest layer on the host after the
    layer was made: check --verity names the block, and in the guest the read
    of that file fails with EIO while the rest of the image reads."""
    k = env.kernel(suite)
    layers, fsmeta, _ = env.stack(verity=True, tamper=True)
    bad, off = env.tampered
    p = subprocess.run([env.el, "check", "--verity", bad], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    err = p.stderr.decode("utf-8", "replace")
    check(p.returncode != 0 and "data block %d " % (off // 4096) in err,
          "check --verity of the changed layer: exit %d, %s" % (p.returncode, err.strip()))
    for f in layers[1:] + [fsmeta]:
        sh([env.el, "check", "--verity", f])
    r = env.boot(name, mounts_active(layers, fsmeta, None, verity=True),
                 ["/bin/sh", "-c", TAMPER_SCRIPT], suite=k.suite, erofs_mode=erofs_mode,
                 verity="on")
    check(r.clean, "%s: the guest did not tear down cleanly" % name)
    check(r.status == 0 and b"Input/output error" in r.output and b"big=1\n" in r.output
          and r.output.endswith(b"keep=keep\n"),
          "%s: status %d, output %r (expected EIO for /data/big, /etc/keep read)"
          % (name, r.status, r.output))


def case_verity_devices_sid(env):
    """verity-vmdk's checks on 7.x (sid) with --erofs-mode devices: one
    verity device per disk, mounted with device=/dev/dm-N."""
    case_verity_good(env, "verity-devices-sid", guest.SID_SUITE, "devices")


def case_verity_tampered_sid(env):
    """verity-tampered on 7.x (sid) through merged.vmdk: the changed block
    under the composite device still fails with EIO."""
    case_verity_tampered(env, "verity-tampered-sid", guest.SID_SUITE, "vmdk")


def case_timeout(env):
    """A command that never ends: QEMU is killed at the timeout and the
    error carries the console tail."""
    layers, _, _ = env.stack()
    k = env.kernel(guest.DEFAULT_SUITE)
    t = time.monotonic()
    try:
        guest.run([{"type": "erofs", "source": layers[0], "options": ["ro"]}],
                  ["/bin/sh", "-c", "echo sleeping; sleep 1000"], kern=k, cache_dir=env.cache,
                  timeout=30)
    except guest.GuestTimeout as e:
        el = time.monotonic() - t
        check(el < 40, "the timeout took %.1f s" % el)
        check("within 30 s" in str(e) and "console tail" in str(e), "message: %s" % str(e)[:300])
        check(b"SPIN-GUEST-BEGIN" in e.console, "the command never started within 30 s")
        return
    raise CaseFailed("no timeout")


CASES = [
    ("translate", case_translate),
    ("active-vmdk", case_active_vmdk),
    ("view-single-cli", case_view_single_cli),
    ("active-fallback", case_active_fallback),
    ("view-devices", case_view_devices),
    ("active-no-parents", case_active_no_parents),
    ("flat-6.1", case_flat_61),
    ("vmdk-6.1-refused", case_vmdk_61_refused),
    ("active-vmdk-sid", case_active_vmdk_sid),
    ("active-devices-sid", case_active_devices_sid),
    ("active-fallback-sid", case_active_fallback_sid),
    ("view-single-cli-sid", case_view_single_cli_sid),
    ("flat-sid", case_flat_sid),
    ("verity-translate", case_verity_translate),
    ("verity-vmdk", case_verity_good),
    ("verity-tampered", case_verity_tampered),
    ("verity-devices-sid", case_verity_devices_sid),
    ("verity-tampered-sid", case_verity_tampered_sid),
    ("timeout", case_timeout),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--erofs-layer", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cache", default=guest.DEFAULT_CACHE, help="kernel and initramfs cache")
    ap.add_argument("--only", action="append", default=[], help="glob of case names (repeatable)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="show the guest consoles")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for name, fn in CASES:
            print("%-20s %s" % (name, " ".join(fn.__doc__.split())))
        return 0
    if shutil.which(guest.QEMU) is None:
        print("skip: %s is not installed (qemu-system-x86)" % guest.QEMU)
        print("0 passed, 0 failed, 1 skipped")
        return 77
    missing = [t for t in ("mkfs.ext4", "debugfs", "dumpe2fs", "e2fsck", "dpkg-deb", "depmod")
               if shutil.which(t) is None and not os.path.exists("/usr/sbin/" + t)]
    if not os.access(args.erofs_layer, os.X_OK) or missing or not os.path.exists(guest.BUSYBOX):
        print("FAIL setup: needs %s" % ", ".join(
            missing + ([args.erofs_layer] if not os.access(args.erofs_layer, os.X_OK) else []) +
            ([guest.BUSYBOX + " (busybox-static)"] if not os.path.exists(guest.BUSYBOX) else [])))
        print("0 passed, 1 failed")
        return 1
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    env = Env(args)
    passed = failed = skipped = 0
    for name, fn in CASES:
        if args.only and not any(fnmatch.fnmatch(name, pat) for pat in args.only):
            continue
        t = time.monotonic()
        try:
            fn(env)
            print("ok %s (%.1f s)" % (name, time.monotonic() - t))
            passed += 1
        except CaseSkipped as e:
            print("skip %s: %s" % (name, e))
            skipped += 1
        except CaseFailed as e:
            print("FAIL %s: %s" % (name, e))
            failed += 1
        except guest.GuestError as e:
            print("FAIL %s: %s" % (name, str(e).replace("\n", "\n#   ")))
            failed += 1
        except Exception:
            print("FAIL %s: internal error: %s" % (name, traceback.format_exc()))
            failed += 1
        sys.stdout.flush()
    if BOOTS:
        print("# boot times (QEMU start to the command's begin marker) and totals (to QEMU's exit):")
        for case, ver, b, tot, cpu in BOOTS:
            print("#   %-20s %-24s boot %5.2f s  total %5.2f s" % (case, ver, b, tot))
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
