#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Guest harness: boot the mounts our snapshotter returns in a QEMU VM, the way
a VM runtime would, and run one command inside (docs/vm-runtime-contract.md).

Python 3.11 standard library only. As a module:

    import guest
    k = guest.kernel("bookworm-backports")          # fetched once, then cached
    k7 = guest.kernel(guest.SID_SUITE)              # Debian sid's 7.x ("sid")
    r = guest.run(mounts, ["/bin/sh", "-c", "cat /etc/os-release"], kern=k)
    r.output, r.status, r.boot_time, r.total_time, r.console

As a command (prints the command's output, exits with its status):

    guest.py run --mounts FILE|- [--suite S] [--erofs-mode vmdk|devices|concat] [-v] -- CMD...
    guest.py plan --mounts FILE|-       (the disks and the guest job, no boot)
    guest.py kernel [--suite S]         (fetch/resolve; prints version and paths)
                                        S: bookworm-backports (6.12, the default),
                                        bookworm (6.1) or sid (7.x)
    guest.py initramfs [--suite S]      (build the cached base initramfs; prints its path)

Mount translation (mounts are JSON lists of {type, source, options} with any
key case, as `ctr snapshots prepare --mounts` prints them, or the
`mount -t TYPE SOURCE TARGET -o OPTS` lines of `ctr snapshots mounts`):

  erofs + device= options   fsmeta with its layers: `merged.vmdk` beside the
                            fsmeta attached as ONE read-only virtio disk,
                            format=vmdk (needs a guest kernel >= 6.4).
                            --erofs-mode devices: fsmeta and each layer as
                            separate raw disks, mounted with device=/dev/vdX
                            (works on 6.1); concat: fsmeta + layers copied
                            into one raw file (for runtimes without VMDK).
  erofs, no devices         one read-only raw disk.  Several erofs mounts
                            (the per-layer fallback) come oldest first, as the
                            daemon returns them and as device= options are
                            ordered: the first is the LOWEST overlay layer.
                            A flat disk (`erofs-layer merge --flat` fsmeta
                            with its layers concatenated, for 6.1 kernels)
                            is such a single raw erofs mount.
  ext4 (rwlayer.img)        a writable raw virtio disk; upper/ and work/ at
                            its root become overlay's upperdir and workdir.
  bind of an empty dir      (a View/Active without parents) no disk at all.
  overlay (extract)         refused: not a VM runtime's business.

In the guest every disk is found by its virtio serial, erofs disks are mounted
read-only, ext4 on /rw, overlay on /root when there is a writable disk (or
several lowers), then `chroot ROOT ARGV` runs with its output between console
markers; init then kills leftovers, syncs, unmounts the ext4 cleanly and powers
off.
"""

import argparse
import dataclasses
import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import resource
import secrets
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_CACHE = os.environ.get("SPIN_GUEST_CACHE", "/var/tmp/spin-guest")
DEFAULT_SUITE = "bookworm-backports"   # Linux 6.12
BOOKWORM_SUITE = "bookworm"            # Linux 6.1: no single-disk (VMDK) erofs mount
SID_SUITE = "sid"                      # Linux 7.x, split into linux-binary/-modules/-base
# The suites the tests use and the kernel each gives (any other Debian suite
# with a linux-image-amd64 works too)
SUITES = {DEFAULT_SUITE: "6.12", BOOKWORM_SUITE: "6.1", SID_SUITE: "7.x"}
FETCH_DEBS = os.environ.get("SPIN_FETCH_DEBS", os.path.join(REPO, "scripts", "fetch-debs.sh"))
INIT_SH = os.path.join(HERE, "init.sh")
BUSYBOX = "/bin/busybox"
QEMU = "qemu-system-x86_64"

# Modules the guest needs, in the order we ask for them; each one's
# dependencies come from modules.dep. crc32c_generic is the softdep
# ("crypto-crc32c") of libcrc32c (erofs) and ext4: without a userspace
# modprobe the kernel cannot load it on demand, so it is loaded first.
# Built-in ones (virtio_pci is built into Debian's 6.12 and 7.x) are skipped.
# From 6.15 on there is no crc32c_generic (the crypto API wrapper became
# crc32c-cryptoapi) and no libcrc32c: erofs, ext4 and jbd2 call the crc32c
# library, built in, so Debian's 7.x needs none of it.
WANTED_MODULES = ["crc32c_generic", "virtio_pci", "virtio_blk", "erofs", "ext4", "overlay"]
OPTIONAL_MODULES = {"crc32c_generic"}
# Loaded by the guest only when a job sets up dm-verity (dm_mod, dm_bufio and
# reed_solomon come from modules.dep; sha256 is built into 6.1, 6.12 and 7.x).
VERITY_MODULES = ["dm_verity"]

# The guest's device-mapper tool (no dmsetup in the initramfs), built once
# per source with the host's compiler, statically.
DMCREATE_SRC = os.path.join(HERE, "dmcreate.c")
CC = os.environ.get("CC", "cc")

# dm-verity as containerd 2.3 writes it (docs/verity.md): sha256, 4 KiB
# data and hash blocks, hash type 1, 32 zero bytes of salt, one superblock
# block at hashoffset before the tree.
VERITY_BLOCK = 4096
VERITY_SALT = "00" * 32
VERITY_OPTION = "X-containerd.dmverity="
VERITY_SUFFIX = ".dmverity"
VERITY_MODES = ("auto", "on", "off")

KERNEL_CMDLINE = [
    "console=ttyS0", "panic=-1", "quiet", "loglevel=4",
    # skip hardware the harness never uses: probing it costs seconds under TCG
    "i8042.noaux", "i8042.nokbd", "i8042.nopnp", "8250.nr_uarts=1",
    "tsc=reliable", "no_timer_check", "mitigations=off", "random.trust_cpu=on",
    "nomodeset", "noresume",
]


class GuestError(Exception):
    """The guest could not be prepared, booted, or it failed before the
    command's end marker. .console holds what the serial console showed."""

    def __init__(self, msg, console=b""):
        self.console = console or b""
        tailtext = console_tail(self.console)
        super().__init__(msg + ("\n--- console tail ---\n" + tailtext if tailtext else ""))


class GuestTimeout(GuestError):
    pass


class GuestFetchError(GuestError):
    """A kernel package could not be downloaded from the Debian mirror (as
    opposed to one that was fetched but is not usable)."""


def console_tail(console, lines=25):
    if not console:
        return ""
    text = console.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def log(verbose, msg):
    if verbose:
        print("guest: " + msg, file=sys.stderr, flush=True)


class _Lock:
    """An exclusive flock on PATH for the duration of a with block."""

    def __init__(self, path):
        self.path = path
        self.fd = -1

    def __enter__(self):
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise GuestError("cache %s: %s" % (os.path.dirname(self.path), e.strerror)) from e
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


def _write_atomic(path, data):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)


# ---------------------------------------------------------------------------
# Kernels: Debian packages unpacked with scripts/fetch-debs.sh, never installed

@dataclasses.dataclass
class Kernel:
    suite: str
    package: str          # e.g. linux-image-6.12.95+deb12-amd64
    version: str          # e.g. 6.12.95+deb12-amd64 (the modules directory)
    root: str             # the unpacked package (sid: with its split parts)
    vmlinuz: str          # boot/vmlinuz-V, or usr/lib/modules/V/vmlinuz (sid)

    image: str = ""       # what -kernel gets: the PVH vmlinux when there is one
    modroot: str = "lib/modules"  # relative to root; usr/lib/modules for sid's 7.x

    @property
    def moddir(self):
        return os.path.join(self.root, self.modroot, self.version)


# Where Debian's kernel packages put the modules: lib/modules/V up to Debian
# 13 (with boot/vmlinuz-V and boot/config-V); usr/lib/modules/V in sid's split
# 7.x packages, which also hold vmlinuz, config and System.map there, no /boot.
MODULE_ROOTS = ("lib/modules", "usr/lib/modules")
# sid's linux-image-V is empty; it Depends on these, V being the same
SPLIT_PARTS = ("linux-binary-", "linux-modules-", "linux-base-")


def _kernel_tree(root, package):
    """(version, modroot, vmlinuz) of the kernel unpacked at ROOT, in either
    layout (MODULE_ROOTS)."""
    found = []
    for rel in MODULE_ROOTS:
        d = os.path.join(root, rel)
        if os.path.isdir(d):
            found += [(v, rel) for v in sorted(os.listdir(d))]
    if len(found) != 1:
        raise GuestError("%s: expected one modules directory under %s, found %s"
                         % (root, " or ".join(MODULE_ROOTS), [r + "/" + v for v, r in found]))
    version, rel = found[0]
    for vmlinuz in (os.path.join(root, "boot", "vmlinuz-" + version),
                    os.path.join(root, rel, version, "vmlinuz")):
        if os.path.exists(vmlinuz):
            return version, rel, vmlinuz
    raise GuestError("%s has neither boot/vmlinuz-%s nor %s/%s/vmlinuz"
                     % (package, version, rel, version))


def _pvh_vmlinux(root, version, vmlinuz, verbose):
    """The uncompressed ELF kernel inside VMLINUZ, when the kernel has a PVH
    entry (CONFIG_PVH): QEMU then enters it directly, skipping the real-mode
    setup and the decompression (about 1 s of CPU under TCG). None when it
    cannot be had; the bzImage is used then. The vmlinux goes beside
    VMLINUZ: boot/vmlinux-V.pvh, or usr/lib/modules/V/vmlinux.pvh (sid)."""
    kdir, kname = os.path.split(vmlinuz)
    out = os.path.join(kdir, kname.replace("vmlinuz", "vmlinux", 1) + ".pvh")
    if os.path.exists(out):
        return out
    # boot/config-V, or config beside vmlinuz (usr/lib/modules/V/config)
    for config in (os.path.join(root, "boot", "config-" + version), os.path.join(kdir, "config")):
        try:
            with open(config) as f:
                if "CONFIG_PVH=y\n" not in f.read():
                    return None
            break
        except OSError:
            continue
    else:
        return None
    with open(vmlinuz, "rb") as f:
        bz = f.read()
    # x86 boot protocol: setup_sects at 0x1f1, "HdrS" at 0x202, payload
    # offset and length at 0x248 (from the protected-mode code at
    # (setup_sects + 1) * 512); the payload's last 4 bytes are its size
    if len(bz) < 0x250 or bz[0x202:0x206] != b"HdrS":
        return None
    poff, plen = int.from_bytes(bz[0x248:0x24c], "little"), int.from_bytes(bz[0x24c:0x250], "little")
    start = ((bz[0x1f1] or 4) + 1) * 512 + poff
    payload = bz[start:start + plen]
    try:
        if payload[:4] == b"\x28\xb5\x2f\xfd":
            elf = _zstd(payload[:-4], vmlinuz)
        elif payload[:6] == b"\xfd7zXZ\0":
            elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
        elif payload[:2] == b"\x1f\x8b":
            elf = gzip.GzipFile(fileobj=io.BytesIO(payload)).read()
        else:
            return None
    except (GuestError, lzma.LZMAError, OSError, EOFError) as e:
        log(verbose, "cannot unpack %s (%s): booting the bzImage" % (vmlinuz, e))
        return None
    if elf[:4] != b"\x7fELF":
        return None
    log(verbose, "unpacked %s for a PVH boot" % out)
    _write_atomic(out, elf)
    return out


def _fetch_debs(suite, dest, packages, verbose):
    if not os.path.exists(FETCH_DEBS):
        raise GuestError("%s is missing" % FETCH_DEBS)
    env = dict(os.environ)
    if not verbose:
        env["FETCH_DEBS_QUIET"] = "1"
    p = subprocess.run(["bash", FETCH_DEBS, suite, dest] + packages, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        # fetch-debs's own complaint, then apt's errors and warnings (a
        # mirror that cannot be reached shows as update warnings followed by
        # "Unable to locate package")
        why = [ln for ln in p.stderr.decode("utf-8", "replace").splitlines()
               if ln.strip() and " at http" not in ln]
        for name in ("update.log", "download.log"):
            lp = os.path.join(dest + ".apt", name)
            if os.path.exists(lp):
                with open(lp, "rb") as f:
                    why += [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()
                            if ln.startswith(("E:", "W: Failed", "Err:"))][:3]
        raise GuestFetchError("cannot fetch %s from Debian %s (is the Debian mirror reachable?): %s"
                         % (" ".join(packages), suite, " / ".join(why) or "fetch-debs failed"))


def _resolve_meta(suite, cache, verbose):
    """The real package behind the linux-image-amd64 meta package of SUITE:
    its .deb's Depends field names it (linux-image-6.12.95+deb12-amd64; in
    sid linux-image-7.2.13+deb14-amd64, beside linux-base-amd64)."""
    dest = os.path.join(cache, "meta-" + suite)
    _fetch_debs(suite, dest, ["linux-image-amd64"], verbose)
    debdir = os.path.join(dest + ".apt", "debs")
    debs = [d for d in os.listdir(debdir) if d.startswith("linux-image-amd64_")] \
        if os.path.isdir(debdir) else []
    if len(debs) != 1:
        raise GuestError("expected one linux-image-amd64 .deb in %s, found %s" % (debdir, debs))
    p = subprocess.run(["dpkg-deb", "-f", os.path.join(debdir, debs[0]), "Depends"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        raise GuestError("dpkg-deb -f %s: %s" % (debs[0], p.stderr.decode().strip()))
    for dep in p.stdout.decode().split(","):
        name = dep.strip().split(" ")[0]
        if re.fullmatch(r"linux-image-[0-9].*-amd64(-unsigned)?", name):
            return name
    raise GuestError("no kernel package in the Depends of %s: %r" % (debs[0], p.stdout.decode()))


def _apt_depends(apt, package):
    """The package names in PACKAGE's Depends (alternatives included), from
    the lists of the private apt configuration fetch-debs keeps in APT
    (DEST.apt/, the same options as scripts/fetch-debs.sh); None when that
    configuration does not know PACKAGE."""
    opts = []
    for k, v in (("Dir::Etc::SourceList", "/dev/null"),
                 ("Dir::Etc::SourceParts", apt + "/etc/sources.list.d"),
                 ("Dir::Etc::Preferences", "/dev/null"),
                 ("Dir::Etc::PreferencesParts", apt + "/etc/preferences.d"),
                 ("Dir::State", apt + "/state"), ("Dir::State::Lists", apt + "/state/lists"),
                 ("Dir::State::status", apt + "/state/status"), ("Dir::Cache", apt + "/cache"),
                 ("APT::Architecture", "amd64"), ("APT::Architectures::", "amd64")):
        opts += ["-o", "%s=%s" % (k, v)]
    p = subprocess.run(["apt-cache"] + opts + ["show", "--no-all-versions", package],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0:
        return None
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("Depends:"):
            return [alt.strip().split(" ")[0] for dep in line[len("Depends:"):].split(",")
                    for alt in dep.split("|") if alt.strip()]
    return []


def _kernel_parts(suite, kdir, package, verbose):
    """The packages to unpack together for PACKAGE: itself, and when it is
    Debian sid's empty linux-image-V (7.x), the linux-binary-V (vmlinuz),
    linux-modules-V and linux-base-V (config, System.map, modules.builtin)
    it Depends on. Up to Debian 13 linux-image-V holds everything. The
    Depends come from the private apt lists of the suite's meta package
    fetch (CACHE/kernels/meta-SUITE.apt), fetched first when there are none
    and refreshed once when they do not know PACKAGE; if even then they do
    not, PACKAGE alone (fetch-debs will say what is wrong)."""
    if not package.startswith("linux-image-"):
        return [package]
    flavour = package[len("linux-image-"):]
    meta = os.path.join(kdir, "meta-" + suite)
    lists = os.path.join(meta + ".apt", "state", "lists")
    depends = None
    for attempt in range(2):
        if attempt or not (os.path.isdir(lists) and
                           any("_Packages" in n for n in os.listdir(lists))):
            if attempt:  # make fetch-debs update the lists again
                try:
                    os.unlink(os.path.join(meta, "PACKAGES.wanted"))
                except FileNotFoundError:
                    pass
            _fetch_debs(suite, meta, ["linux-image-amd64"], verbose)
        depends = _apt_depends(meta + ".apt", package)
        if depends is not None:
            break
        log(verbose, "the %s lists in %s.apt do not know %s" % (suite, meta, package))
    parts = [n for n in depends or [] if any(n == part + flavour for part in SPLIT_PARTS)]
    if parts:
        log(verbose, "%s is split into %s" % (package, " ".join(parts)))
    return [package] + parts


def _depmod(root, version, verbose, modroot="lib/modules"):
    """Debian generates modules.dep in the postinst; we were never installed,
    so run the host's depmod on the unpacked tree (it reads .ko.xz). Debian
    12's depmod (kmod 30) has no --moduledir and looks in BASE/lib/modules
    (later kmods may look in BASE/usr/lib/modules), so it gets a scratch
    BASE whose lib/modules and usr/lib/modules both lead to ROOT/MODROOT."""
    moddir = os.path.join(root, modroot, version)
    if os.path.exists(os.path.join(moddir, "modules.dep")):
        return
    depmod = shutil.which("depmod") or next(
        (p for p in ("/usr/sbin/depmod", "/sbin/depmod") if os.path.exists(p)), None)
    if not depmod:
        raise GuestError("depmod (package kmod) is needed to resolve the guest kernel's modules")
    base = tempfile.mkdtemp(prefix=".depmod-", dir=os.path.dirname(os.path.abspath(root)))
    try:
        for rel in MODULE_ROOTS:
            os.makedirs(os.path.join(base, os.path.dirname(rel)), exist_ok=True)
            os.symlink(os.path.join(os.path.abspath(root), modroot), os.path.join(base, rel))
        log(verbose, "depmod -b %s %s (%s)" % (base, version, moddir))
        p = subprocess.run([depmod, "-b", base, version], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    if p.returncode != 0 or not os.path.exists(os.path.join(moddir, "modules.dep")):
        raise GuestError("depmod for %s failed: %s" % (moddir, p.stderr.decode().strip()))


def kernel(suite=DEFAULT_SUITE, cache_dir=DEFAULT_CACHE, package=None, pvh=True, verbose=False):
    """The kernel of Debian SUITE (bookworm-backports: 6.12; bookworm: 6.1;
    sid: 7.x, see SUITES), fetched and unpacked under CACHE_DIR/kernels on
    first use; later calls do not touch the network (CACHE_DIR/kernels/
    resolved-SUITE pins the package: delete it to move to a newer kernel).
    PACKAGE pins a linux-image-* package instead of the suite's
    linux-image-amd64. A split kernel (sid's linux-image-V with its
    linux-binary-V, linux-modules-V and linux-base-V, modules under
    usr/lib/modules) is unpacked into one tree. PVH: boot the unpacked
    vmlinux when possible."""
    kdir = os.path.join(cache_dir, "kernels")
    os.makedirs(kdir, exist_ok=True)
    with _Lock(os.path.join(kdir, ".lock")):
        resolved = os.path.join(kdir, "resolved-" + suite)
        if package is None and os.path.exists(resolved):
            with open(resolved) as f:
                package = f.read().strip()
        if package is None or not os.path.exists(os.path.join(kdir, package, "PACKAGES.wanted")):
            if package is None:
                package = _resolve_meta(suite, kdir, verbose)
                log(verbose, "%s's linux-image-amd64 is %s" % (suite, package))
            parts = _kernel_parts(suite, kdir, package, verbose)
            _fetch_debs(suite, os.path.join(kdir, package), parts, verbose)
            # the unpacked tree is what we use; the .debs are ~100 MB of duplicate
            debs = os.path.join(kdir, package + ".apt", "debs")
            for d in os.listdir(debs) if os.path.isdir(debs) else []:
                if d.endswith(".deb"):
                    os.unlink(os.path.join(debs, d))
        root = os.path.join(kdir, package)
        version, modroot, vmlinuz = _kernel_tree(root, package)
        _depmod(root, version, verbose, modroot)
        if not os.path.exists(resolved):
            _write_atomic(resolved, (package + "\n").encode())
        image = (_pvh_vmlinux(root, version, vmlinuz, verbose) if pvh else None) or vmlinuz
        return Kernel(suite, package, version, root, vmlinuz, image, modroot)


# ---------------------------------------------------------------------------
# initramfs: newc cpio written here (no cpio tool, no root, reproducible)

class Cpio:
    """A newc ("070701") archive; the kernel accepts several back to back."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0), nlink=1):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join("%08X" % v for v in (
            self.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1], len(nb), 0))
        self.ino += 1
        self.buf.write(hdr.encode() + nb)
        self.buf.write(b"\0" * (-(110 + len(nb)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name, mode=0o755):
        self._entry(name, 0o040000 | mode, nlink=2)

    def file(self, name, data, mode=0o644):
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self._entry(name, 0o120000 | 0o777, target.encode())

    def chardev(self, name, major, minor, mode=0o600):
        self._entry(name, 0o020000 | mode, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0, nlink=1)
        self.buf.write(b"\0" * (-self.buf.tell() % 512))
        return self.buf.getvalue()


def _module_plan(kern, wanted=WANTED_MODULES, skip=()):
    """Module files (relative to moddir) in load order: WANTED and their
    dependencies from modules.dep, dependencies first, without those in
    SKIP (already loaded by an earlier list)."""
    deps, byname = {}, {}
    with open(os.path.join(kern.moddir, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            path = path.strip()
            deps[path] = rest.split()
            byname[_modname(path)] = path
    builtin = set()
    bpath = os.path.join(kern.moddir, "modules.builtin")
    if os.path.exists(bpath):
        with open(bpath) as f:
            builtin = {_modname(line.strip()) for line in f if line.strip()}
    order, seen = [], set(skip)

    def visit(path):
        if path in seen:
            return
        seen.add(path)
        for d in deps.get(path, []):
            visit(d)
        order.append(path)

    for name in wanted:
        if name in byname:
            visit(byname[name])
        elif name not in builtin and name not in OPTIONAL_MODULES:
            raise GuestError("kernel %s has no module %s (neither loadable nor built in)"
                             % (kern.version, name))
    return order


def _modname(path):
    base = os.path.basename(path)
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


SIG_MAGIC = b"~Module signature appended~\n"


def _module_bytes(path):
    """The module decompressed (busybox insmod takes plain ELF) and without
    its signature: the kernel does not enforce them (MODULE_SIG_FORCE is off)
    and checking them costs time under TCG."""
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        data = lzma.decompress(data)
    elif path.endswith(".gz"):
        data = gzip.decompress(data)
    elif path.endswith(".zst"):
        data = _zstd(data, path)
    if data.endswith(SIG_MAGIC) and len(data) > len(SIG_MAGIC) + 12:
        # struct module_signature (12 bytes) precedes the magic; for PKCS#7
        # signer_len and key_id_len are 0 and sig_len (be32) is the last field
        info = data[-len(SIG_MAGIC) - 12:-len(SIG_MAGIC)]
        total = len(SIG_MAGIC) + 12 + info[3] + info[4] + int.from_bytes(info[8:12], "big")
        if total < len(data):
            data = data[:-total]
    return data


def _zstd(data, what):
    p = subprocess.run(["zstd", "-dc"], input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if p.returncode != 0 or not p.stdout:
        raise GuestError("zstd -d %s: %s" % (what, p.stderr.decode().strip()))
    return p.stdout


def _elf_interp(data):
    """Whether the 64-bit little-endian ELF DATA has a PT_INTERP (is dynamic)."""
    if data[:5] != b"\x7fELF\x02":
        return False
    phoff = int.from_bytes(data[0x20:0x28], "little")
    phentsize = int.from_bytes(data[0x36:0x38], "little")
    phnum = int.from_bytes(data[0x38:0x3a], "little")
    return any(int.from_bytes(data[phoff + i * phentsize:phoff + i * phentsize + 4], "little") == 3
               for i in range(phnum))


def _made_once(out, make):
    """OUT, made by MAKE(OUT) unless it exists, under its cache directory's
    lock (several test processes may share the cache)."""
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with _Lock(os.path.join(os.path.dirname(out), ".lock")):
        if not os.path.exists(out):
            make(out)
    return out


def dmcreate(cache_dir=DEFAULT_CACHE, verbose=False):
    """The static dmcreate binary (tests/guest/dmcreate.c), compiled once per
    source into CACHE/tools/. Returns its path."""
    with open(DMCREATE_SRC, "rb") as f:
        src = f.read()
    out = os.path.join(cache_dir, "tools", "dmcreate-%s" % hashlib.sha256(src).hexdigest()[:12])

    def build(out):
        log(verbose, "building %s" % out)
        tmp = out + ".tmp"
        p = subprocess.run([CC, "-static", "-Os", "-s", "-Wall", "-o", tmp, DMCREATE_SRC],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise GuestError("cannot build the guest's dmcreate with %s -static (libc6-dev has "
                             "libc.a):\n%s" % (CC, p.stdout.decode(errors="replace")))
        os.rename(tmp, out)
    return _made_once(out, build)


def initramfs(kern, cache_dir=DEFAULT_CACHE, verbose=False):
    """The base initramfs for KERN (busybox, /init, the modules, uncompressed:
    unpacking is cheaper than decompressing under TCG), cached per kernel
    version and contents. Returns its path."""
    with open(INIT_SH, "rb") as f:
        init = f.read()
    with open(BUSYBOX, "rb") as f:
        busybox = f.read()
    if _elf_interp(busybox):
        raise GuestError("%s is dynamically linked; the guest needs busybox-static" % BUSYBOX)
    mods = _module_plan(kern)
    vmods = _module_plan(kern, VERITY_MODULES, skip=mods)
    with open(dmcreate(cache_dir, verbose), "rb") as f:
        dmtool = f.read()
    h = hashlib.sha256()
    with open(os.path.abspath(__file__), "rb") as f:
        me = f.read()  # how the archive is made
    for part in (init, busybox, "\n".join(mods + ["-"] + vmods).encode(), kern.package.encode(),
                 me, dmtool):
        h.update(hashlib.sha256(part).digest())
    idir = os.path.join(cache_dir, "initramfs")
    out = os.path.join(idir, "base-%s-%s.cpio" % (kern.version, h.hexdigest()[:12]))

    def build(out):
        log(verbose, "building %s (%s)" % (out, " ".join(_modname(m) for m in mods)))
        c = Cpio()
        for d in ("bin", "dev", "proc", "sys", "root", "lower", "rw", "empty", "tmp", "lib",
                  "lib/modules"):
            c.dir(d)
        c.chardev("dev/console", 5, 1)
        c.chardev("dev/null", 1, 3, 0o666)
        c.file("bin/busybox", busybox, 0o755)
        c.symlink("bin/sh", "busybox")
        c.file("bin/dmcreate", dmtool, 0o755)
        c.file("init", init, 0o755)
        # the init script loads the modules of modules.list at start, in
        # this order, and those of modules-verity.list before a dm device
        for lst, plan in (("modules.list", mods), ("modules-verity.list", vmods)):
            names = []
            for m in plan:
                n = _modname(m)
                c.file("lib/modules/%s.ko" % n, _module_bytes(os.path.join(kern.moddir, m)))
                names.append(n)
            c.file(lst, "".join(n + "\n" for n in names).encode())
        _write_atomic(out, c.finish())
        for old in os.listdir(idir):  # older builds for this kernel
            if old.startswith("base-%s-" % kern.version) and old != os.path.basename(out):
                os.unlink(os.path.join(idir, old))
    return _made_once(out, build)


# ---------------------------------------------------------------------------
# Mounts → disks

@dataclasses.dataclass
class Verity:
    """A dm-verity sidecar (docs/verity.md): the tree sits in the image file
    at HASHOFFSET, after the HASHOFFSET/4096 data blocks and one superblock."""
    sidecar: str
    roothash: str
    hashoffset: int

    @property
    def data_blocks(self):
        return self.hashoffset // VERITY_BLOCK

    @property
    def hash_start(self):  # in 4 KiB blocks, past the superblock
        return self.data_blocks + 1

    def target(self, dev, start=0):
        """The dm table line of a verity target over DEV (data and tree)."""
        return "%d %d verity 1 %s %s %d %d %d %d sha256 %s %s" % (
            start, self.data_blocks * 8, dev, dev, VERITY_BLOCK, VERITY_BLOCK,
            self.data_blocks, self.hash_start, self.roothash, VERITY_SALT)


def read_sidecar(path, image):
    """The sidecar at PATH of IMAGE, checked against the image's size."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise GuestError("dm-verity sidecar %s: %s" % (path, e))
    if not isinstance(doc, dict):
        raise GuestError("dm-verity sidecar %s: not a JSON object" % path)
    root, off = doc.get("roothash"), doc.get("hashoffset")
    if not isinstance(root, str) or not re.fullmatch(r"[0-9a-f]{64}", root):
        raise GuestError("dm-verity sidecar %s: key roothash is not 64 lowercase hex digits" % path)
    if type(off) is not int or off <= 0 or off % VERITY_BLOCK:
        raise GuestError("dm-verity sidecar %s: key hashoffset %r is not a positive multiple of %d"
                         % (path, off, VERITY_BLOCK))
    size = os.path.getsize(image)
    if size < off + 2 * VERITY_BLOCK:
        raise GuestError("dm-verity sidecar %s: %s is %d bytes, too short for a tree at %d"
                         % (path, image, size, off))
    return Verity(os.path.abspath(path), root, off)


@dataclasses.dataclass
class Part:
    """One file of a disk that concatenates several (merged.vmdk, concat):
    where it starts on the disk and how long it is, in 512-byte sectors."""
    path: str
    start: int
    sectors: int
    verity: Verity | None


@dataclasses.dataclass
class Disk:
    path: str
    format: str       # raw | vmdk
    readonly: bool
    serial: str       # how the guest finds it (/sys/block/vdX/serial)
    verity: Verity | None = None  # the whole disk is one image with its tree
    parts: list = dataclasses.field(default_factory=list)  # [Part]: some carry a tree


def _dm_setup(disk):
    """Job lines that put dm-verity under DISK; returns them and the shell
    word that names the verified device in the guest."""
    s = disk.serial
    if disk.verity:
        return ["dev %s" % s, 'dm v%s "%s"' % (s, disk.verity.target("$DEV_%s" % s))], '"$DM_v%s"' % s
    if not any(p.verity for p in disk.parts):
        return [], shlex.quote(s)
    # A disk of concatenated files: each verified file gets a linear device
    # over its span and a verity device over that; one device stitches them
    # back at the same sectors (EROFS addresses the disk as a whole), with
    # the trees and the unverified files passed through.
    lines, targets = ["dev %s" % s], []
    for i, p in enumerate(disk.parts):
        if not p.verity:
            targets.append("%d %d linear $DEV_%s %d" % (p.start, p.sectors, s, p.start))
            continue
        span, v = "p%s_%d" % (s, i), "v%s_%d" % (s, i)
        lines.append('dm %s "0 %d linear $DEV_%s %d"' % (span, p.sectors, s, p.start))
        lines.append('dm %s "%s"' % (v, p.verity.target("$DM_%s" % span)))
        data = p.verity.data_blocks * 8
        targets.append("%d %d linear $DM_%s 0" % (p.start, data, v))
        targets.append("%d %d linear $DEV_%s %d" % (p.start + data, p.sectors - data, s, p.start + data))
    lines.append("dm v%s %s" % (s, " ".join('"%s"' % t for t in targets)))
    return lines, '"$DM_v%s"' % s


@dataclasses.dataclass
class Plan:
    disks: list       # [Disk]
    lowers: list      # [(serial, [device serials])], oldest (lowest) first
    rw: str | None    # serial of the writable ext4 disk
    notes: list       # what each mount became, for humans

    def job(self, argv, nonce):
        lines = ["GUEST_NONCE=%s" % nonce]
        by_serial = {d.serial: d for d in self.disks}
        for serial, devs in self.lowers:
            words = []
            for s in [serial] + devs:
                setup, word = _dm_setup(by_serial[s]) if s in by_serial else ([], shlex.quote(s))
                lines += setup
                words.append(word)
            lines.append("lower " + " ".join(words))
        if self.rw:
            lines.append("rw %s" % shlex.quote(self.rw))
        lines.append("run " + " ".join(shlex.quote(a) for a in argv))
        return "\n".join(lines) + "\n"


def parse_mounts(src):
    """Mounts from a list of dicts (any key case), a JSON text, or the
    `mount -t TYPE SOURCE TARGET -o OPTS` lines of `ctr snapshots mounts`."""
    if isinstance(src, (bytes, bytearray)):
        src = src.decode()
    if isinstance(src, str):
        text = src.strip()
        if text.startswith("[") or text.startswith("{") or text == "null" or not text:
            src = json.loads(text) if text else []
            if src is None:
                src = []
            if isinstance(src, dict):
                src = [src]
        else:
            src = []
            for line in text.splitlines():
                w = shlex.split(line)
                if not w:
                    continue
                if len(w) < 4 or w[0] != "mount" or w[1] != "-t":
                    raise GuestError("cannot parse mount line %r" % line)
                opts = w[w.index("-o") + 1] if "-o" in w and w.index("-o") + 1 < len(w) else ""
                src.append({"type": w[2], "source": w[3],
                            "options": [o for o in opts.split(",") if o]})
    out = []
    for m in src:
        low = {k.lower(): v for k, v in m.items()}
        out.append({"type": low.get("type") or "", "source": low.get("source") or "",
                    "options": list(low.get("options") or [])})
    return out


def _sidecar(image, explicit, verity):
    """IMAGE's dm-verity sidecar as a runtime finds it: the mount's
    X-containerd.dmverity= option, else IMAGE.dmverity beside it. VERITY:
    auto (use one when there is one), on (require it), off (ignore)."""
    if verity == "off":
        return None
    side = explicit or image + VERITY_SUFFIX
    if explicit or os.path.exists(side):
        return read_sidecar(side, image)
    if verity == "on":
        raise GuestError("%s has no dm-verity sidecar (%s), and verity is on" % (image, side))
    return None


def _vmdk_extents(vmdk):
    """[(path, sectors)] of a flat VMDK descriptor, in disk order."""
    out = []
    with open(vmdk) as f:
        for line in f:
            m = re.match(r'\s*RW\s+(\d+)\s+FLAT\s+"([^"]*)"\s+(\d+)\s*$', line)
            if m:
                if int(m.group(3)) != 0:
                    raise GuestError("%s: extent %s starts inside its file" % (vmdk, m.group(2)))
                out.append((m.group(2), int(m.group(1))))
    if not out:
        raise GuestError("%s: no FLAT extents" % vmdk)
    return out


def _parts(files, verity, explicit):
    """Parts (see Part) of a disk made of FILES [(path, sectors)] end to end;
    EXPLICIT: {path: sidecar} from mount options."""
    parts, start = [], 0
    for path, sectors in files:
        v = _sidecar(path, explicit.get(path), verity)
        if v and (v.data_blocks * 8 > sectors or sectors % 8):
            raise GuestError("%s: %d sectors on the disk, but its tree starts at block %d"
                             % (path, sectors, v.data_blocks))
        parts.append(Part(os.path.abspath(path), start, sectors, v))
        start += sectors
    return parts


def translate(mounts, erofs_mode="vmdk", workdir=None, verity="auto"):
    """The disks a VM runtime attaches for MOUNTS (see the module doc), with
    dm-verity under every erofs image that has a sidecar (VERITY auto), must
    have one (on), or never (off)."""
    if erofs_mode not in ("vmdk", "devices", "concat"):
        raise GuestError("erofs_mode must be vmdk, devices or concat")
    if verity not in VERITY_MODES:
        raise GuestError("verity must be one of %s" % ", ".join(VERITY_MODES))
    mounts = parse_mounts(mounts)
    disks, lowers, rw, notes = [], [], None, []

    def add(path, fmt, ro, serial, v=None, parts=()):
        if not os.path.exists(path):
            raise GuestError("%s does not exist" % path)
        disks.append(Disk(os.path.abspath(path), fmt, ro, serial, v, list(parts)))
        return serial

    def verified(n_verity, n_files):
        if not n_verity:
            return ""
        return ", %d of %d under dm-verity" % (n_verity, n_files)

    for i, m in enumerate(mounts):
        t, src, opts = m["type"], m["source"], m["options"]
        if rw is not None:
            raise GuestError("mount %d (%s) comes after the writable layer" % (i, t))
        if t == "erofs":
            devs = [o[len("device="):] for o in opts if o.startswith("device=")]
            side = [o[len(VERITY_OPTION):] for o in opts if o.startswith(VERITY_OPTION)]
            explicit = {src: side[-1]} if side else {}
            n = len(lowers)
            if not devs:
                v = _sidecar(src, explicit.get(src), verity)
                lowers.append((add(src, "raw", True, "L%d" % n, v), []))
                notes.append("%s: read-only raw disk%s" % (src, verified(bool(v), 1)))
            elif erofs_mode == "vmdk":
                vmdk = os.path.join(os.path.dirname(src), "merged.vmdk")
                if not os.path.exists(vmdk):
                    raise GuestError("%s has device= options but no merged.vmdk beside it" % src)
                ext = _vmdk_extents(vmdk)
                if [os.path.abspath(p) for p, _ in ext] != [os.path.abspath(p) for p in [src] + devs]:
                    raise GuestError("%s describes %s, not the mount's %s"
                                     % (vmdk, [p for p, _ in ext], [src] + devs))
                parts = _parts(ext, verity, explicit)
                lowers.append((add(vmdk, "vmdk", True, "L%d" % n, parts=parts), []))
                notes.append("%s + %d layers: %s as one read-only vmdk disk%s"
                             % (src, len(devs), vmdk, verified(sum(bool(p.verity) for p in parts),
                                                               len(parts))))
            elif erofs_mode == "devices":
                vs = [_sidecar(p, explicit.get(p), verity) for p in [src] + devs]
                main = add(src, "raw", True, "L%d" % n, vs[0])
                lowers.append((main, [add(d, "raw", True, "L%dD%d" % (n, j + 1), vs[j + 1])
                                      for j, d in enumerate(devs)]))
                notes.append("%s + %d layers: %d raw disks, mounted with device=%s" %
                             (src, len(devs), len(devs) + 1, verified(sum(map(bool, vs)), len(vs))))
            else:
                if workdir is None:
                    raise GuestError("erofs_mode concat needs a work directory")
                img = os.path.join(workdir, "concat-%d.img" % n)
                files = [src] + devs
                for p in files:
                    if os.path.getsize(p) % 512:
                        raise GuestError("%s is not a whole number of sectors" % p)
                parts = _parts([(p, os.path.getsize(p) // 512) for p in files], verity, explicit)
                _concat(files, img)
                lowers.append((add(img, "raw", True, "L%d" % n, parts=parts), []))
                notes.append("%s + %d layers: concatenated into %s, one raw disk%s"
                             % (src, len(devs), img, verified(sum(bool(p.verity) for p in parts),
                                                              len(parts))))
        elif t == "ext4":
            rw = add(src, "raw", "ro" in opts, "RW")
            notes.append("%s: writable raw disk (upper/, work/)" % src)
        elif t == "bind":
            if not os.path.isdir(src) or os.listdir(src):
                raise GuestError("bind mount of %s: only an empty directory (a snapshot without "
                                 "parents) can be handed to a VM" % src)
            notes.append("%s: empty lower, no disk" % src)
        elif t == "overlay":
            raise GuestError("an overlay mount (an extract snapshot) is not for a VM runtime")
        else:
            raise GuestError("mount type %r cannot become a disk" % t)
    if not lowers and rw is None:
        raise GuestError("nothing to boot: the mounts give no lower disk and no writable disk")
    return Plan(disks, lowers, rw, notes)


def _concat(paths, out):
    """Concatenate PATHS into OUT, keeping holes (layers are block-aligned)."""
    with open(out, "wb") as o:
        for p in paths:
            with open(p, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                done = 0
                while done < size:
                    n = os.copy_file_range(f.fileno(), o.fileno(), size - done)
                    if n <= 0:
                        raise GuestError("short copy of %s" % p)
                    done += n


# ---------------------------------------------------------------------------
# QEMU

@dataclasses.dataclass
class Result:
    output: bytes         # the command's stdout+stderr, raw
    status: int           # its exit status (128+N: killed by signal N)
    boot_time: float      # seconds from starting QEMU to the begin marker
    total_time: float     # seconds from starting QEMU to its exit
    cpu_time: float       # CPU seconds QEMU used (less noisy than the wall clock)
    console: bytes        # the whole serial console
    clean: bool           # the guest unmounted everything (DONE marker)
    argv: list            # the QEMU command line


def qemu_argv(kern, initrd, plan, memory=512, smp=1, machine="q35", cpu="max", append=()):
    argv = [QEMU, "-nodefaults", "-no-user-config", "-machine", machine + ",accel=tcg",
            "-cpu", cpu, "-m", str(memory), "-smp", str(smp),
            "-display", "none", "-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
            "-no-reboot", "-kernel", kern.image or kern.vmlinuz, "-initrd", initrd,
            "-append", " ".join(KERNEL_CMDLINE + list(append))]
    for i, d in enumerate(plan.disks):
        drive = "file=%s,if=none,id=d%d,format=%s" % (d.path.replace(",", ",,"), i, d.format)
        drive += ",readonly=on" if d.readonly else ",cache=unsafe"
        argv += ["-drive", drive, "-device", "virtio-blk-pci,drive=d%d,serial=%s" % (i, d.serial)]
    return argv


def run(mounts, argv, kern=None, cache_dir=DEFAULT_CACHE, timeout=120, memory=512, smp=1,
        erofs_mode="vmdk", machine="q35", cpu="max", append=(), verbose=False, workdir=None,
        verity="auto"):
    """Boot MOUNTS (see translate) and run ARGV in the guest. Returns a
    Result; raises GuestTimeout after TIMEOUT seconds (QEMU is killed) and
    GuestError when the guest fails before the command's end marker."""
    if shutil.which(QEMU) is None:
        raise GuestError("%s is not installed (package qemu-system-x86)" % QEMU)
    if not argv:
        raise GuestError("no command to run")
    if kern is None:
        kern = kernel(cache_dir=cache_dir, verbose=verbose)
    base = initramfs(kern, cache_dir, verbose)
    own_work = workdir is None
    if own_work:
        workdir = tempfile.mkdtemp(prefix="spin-guest-")
    try:
        plan = translate(mounts, erofs_mode, workdir, verity)
        for n in plan.notes:
            log(verbose, n)
        nonce = secrets.token_hex(8)
        job = Cpio()
        job.file("job.sh", plan.job(argv, nonce).encode(), 0o644)
        initrd = os.path.join(workdir, "initrd-%s.cpio" % nonce)
        with open(initrd, "wb") as o, open(base, "rb") as b:
            shutil.copyfileobj(b, o)
            o.write(job.finish())
        qargv = qemu_argv(kern, initrd, plan, memory, smp, machine, cpu, append)
        log(verbose, " ".join(shlex.quote(a) for a in qargv))
        try:
            return _boot(qargv, nonce, timeout, verbose)
        finally:
            os.unlink(initrd)
    finally:
        if own_work:
            shutil.rmtree(workdir, ignore_errors=True)


def _boot(qargv, nonce, timeout, verbose):
    begin_re = re.compile(rb"@@SPIN-GUEST-BEGIN " + nonce.encode() + rb"@@(\r?\n)")
    end_re = re.compile(rb"(\r?\n)@@SPIN-GUEST-END " + nonce.encode() + rb" (\d+)@@")
    done_tag = b"@@SPIN-GUEST-DONE " + nonce.encode() + b"@@"
    error_re = re.compile(rb"@@SPIN-GUEST-ERROR " + nonce.encode() + rb" ([^@]*)@@")

    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.Popen(qargv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, start_new_session=True)
    console, err = bytearray(), bytearray()
    t_begin = None
    sel = selectors.DefaultSelector()
    sel.register(p.stdout, selectors.EVENT_READ, console)
    sel.register(p.stderr, selectors.EVENT_READ, err)
    open_fds = 2
    try:
        while open_fds:
            left = t0 + timeout - time.monotonic()
            if left <= 0:
                raise GuestTimeout("the guest did not finish within %g s (QEMU killed)" % timeout,
                                   bytes(console))
            for key, _ in sel.select(min(left, 1.0)):
                chunk = os.read(key.fileobj.fileno(), 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_fds -= 1
                    continue
                key.data.extend(chunk)
                if key.data is console:
                    if verbose:
                        sys.stderr.buffer.write(chunk)
                        sys.stderr.buffer.flush()
                    if t_begin is None and begin_re.search(console):
                        t_begin = time.monotonic()
        left = t0 + timeout - time.monotonic()
        try:
            p.wait(max(left, 0.1))
        except subprocess.TimeoutExpired:
            raise GuestTimeout("QEMU did not exit within %g s (killed)" % timeout, bytes(console))
    finally:
        sel.close()
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        p.stdout.close()
        p.stderr.close()
    t_end = time.monotonic()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_time = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    console = bytes(console)
    qerr = err.decode("utf-8", "replace").strip()
    b = begin_re.search(console)
    e = end_re.search(console, b.end()) if b else None
    m = error_re.search(console)
    if not b or not e:
        why = m.group(1).decode("utf-8", "replace") if m else None
        if why:
            msg = "the guest failed: " + why
        elif p.returncode != 0:
            msg = "QEMU exited with status %d: %s" % (p.returncode, qerr or "(no message)")
        else:
            msg = "the guest stopped before the command %s" % ("ended" if b else "started")
        raise GuestError(msg, console)
    if m:  # the command ran, but teardown failed (e.g. the ext4 stayed busy)
        raise GuestError("the guest failed after the command: " +
                         m.group(1).decode("utf-8", "replace"), console)
    output = console[b.end():e.start()]
    if b.group(1) == b"\r\n":  # no raw console: undo the tty's \n -> \r\n
        output = output.replace(b"\r\n", b"\n")
    return Result(output=output, status=int(e.group(2)), boot_time=t_begin - t0,
                  total_time=t_end - t0, cpu_time=cpu_time, console=console,
                  clean=done_tag in console[e.end():], argv=qargv)


# ---------------------------------------------------------------------------
# CLI

def _read_mounts(arg):
    if arg == "-":
        return parse_mounts(sys.stdin.read())
    with open(arg) as f:
        return parse_mounts(f.read())


def main(args=None):
    ap = argparse.ArgumentParser(prog="guest.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common(sp):
        sp.add_argument("--cache", default=DEFAULT_CACHE, help="cache directory (%(default)s)")
        sp.add_argument("--suite", default=DEFAULT_SUITE,
                        help="Debian suite of the kernel: %s (default %%(default)s)"
                        % ", ".join("%s (%s)" % kv for kv in SUITES.items()))
        sp.add_argument("--package", help="a linux-image-* package instead of the suite's default")
        sp.add_argument("--no-pvh", action="store_true", help="boot the bzImage, not the PVH vmlinux")
        sp.add_argument("-v", "--verbose", action="store_true", help="show the console and steps")

    sp = sub.add_parser("run", help="boot MOUNTS and run CMD in the guest")
    common(sp)
    sp.add_argument("--mounts", required=True, help="JSON or `ctr snapshots mounts` lines; - for stdin")
    sp.add_argument("--erofs-mode", default="vmdk", choices=("vmdk", "devices", "concat"))
    sp.add_argument("--verity", default="auto", choices=VERITY_MODES,
                    help="dm-verity under images with a sidecar (auto), required (on) or never (off)")
    sp.add_argument("--timeout", type=float, default=120)
    sp.add_argument("--memory", type=int, default=512, help="MiB")
    sp.add_argument("--smp", type=int, default=1)
    sp.add_argument("--machine", default="q35")
    sp.add_argument("--cpu", default="max")
    sp.add_argument("--append", action="append", default=[], help="extra kernel parameter")
    sp.add_argument("--times", action="store_true", help="print boot and total time to stderr")
    sp.add_argument("command", nargs=argparse.REMAINDER)
    sp = sub.add_parser("plan", help="print the disks and the guest job for MOUNTS")
    sp.add_argument("--mounts", required=True)
    sp.add_argument("--erofs-mode", default="vmdk", choices=("vmdk", "devices"))
    sp.add_argument("--verity", default="auto", choices=VERITY_MODES)
    sp.add_argument("command", nargs=argparse.REMAINDER)
    sp = sub.add_parser("kernel", help="fetch (once) and print the kernel")
    common(sp)
    sp = sub.add_parser("initramfs", help="build (once) and print the base initramfs")
    common(sp)
    a = ap.parse_args(args)

    try:
        if a.cmd == "plan":
            plan = translate(_read_mounts(a.mounts), a.erofs_mode, verity=a.verity)
            for n in plan.notes:
                print("# " + n)
            for d in plan.disks:
                print("disk serial=%s format=%s %s %s" % (d.serial, d.format,
                                                         "ro" if d.readonly else "rw", d.path))
            cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
            print(plan.job(cmd or ["/bin/sh"], "NONCE"), end="")
            return 0
        k = kernel(a.suite, a.cache, a.package, not a.no_pvh, a.verbose)
        if a.cmd == "kernel":
            print("package %s\nversion %s\nvmlinuz %s\nimage %s\nmodules %s"
                  % (k.package, k.version, k.vmlinuz, k.image, k.moddir))
            return 0
        if a.cmd == "initramfs":
            print(initramfs(k, a.cache, a.verbose))
            return 0
        cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
        if not cmd:
            ap.error("run: no command given")
        r = run(_read_mounts(a.mounts), cmd, kern=k, cache_dir=a.cache, timeout=a.timeout,
                memory=a.memory, smp=a.smp, erofs_mode=a.erofs_mode, machine=a.machine,
                cpu=a.cpu, append=a.append, verbose=a.verbose, verity=a.verity)
    except GuestError as e:
        print("guest: %s" % e, file=sys.stderr)
        return 125
    sys.stdout.buffer.write(r.output)
    sys.stdout.buffer.flush()
    if a.times or a.verbose:
        print("guest: boot %.2f s, total %.2f s, exit status %d%s"
              % (r.boot_time, r.total_time, r.status, "" if r.clean else " (teardown not clean)"),
              file=sys.stderr)
    return r.status


if __name__ == "__main__":
    sys.exit(main())
