#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""End-to-end test: an image built offline → containerd 2.1 with our
snapshotter and differ → an active snapshot booted in a QEMU guest → the
container's changes committed by the daemon → a view of the committed chain
booted again.

    run-e2e.py --daemon PATH --erofs-layer PATH --workdir DIR [--cache DIR]
               [--no-flat] [--keep] [-v]

The steps, each printed as `ok STEP`, `FAIL STEP: reason` (details indented)
or `skip STEP: reason`:

  image      a 3-layer OCI image made by tests/integration/mkimage.py: a static
             busybox (the host's /bin/busybox) and applet links; a file changed
             in layers 2 and 3, a file and a directory whited out in layer 2, an
             opaque directory with new entries in layers 2 and 3
  lab        containerd 2.1 (Debian sid's, scripts/fetch-debs.sh) and the daemon
             as its proxy snapshotter `spin-erofs` and differ `spin-erofs-diff`
             (tests/integration/lab.sh, LAB_DIFFER=1)
  import     `ctr images import --local --snapshotter spin-erofs`: the daemon's
             log shows one `msg=applied` line per layer with the image's
             diffIDs, no walking-differ fallback, every chain ID committed
  prepare    `ctr snapshots prepare --mounts` on the top chain ID: the erofs
             fsmeta mount with one device= per layer (oldest first) and
             merged.vmdk beside it, then the ext4 rwlayer.img (docs/vm-runtime-contract.md)
  boot       tests/guest/guest.py boots those mounts (6.12 kernel, merged.vmdk as
             one disk, rwlayer.img writable) and runs the image's busybox: the
             merged view, then a new file written and a lower file deleted;
             on the host rwlayer.img holds the file and a 0:0 whiteout
  commit     `ctr snapshots commit`: the daemon turns upper/ of rwlayer.img into
             a layer.erofs (container commit) that holds the new file and the
             whiteout
  view       `ctr snapshots view --mounts` of the committed snapshot: one fsmeta
             over the four layers
  reboot     the view booted: the new file there, the deleted one gone, the
             rest of the merged view unchanged
  flat-6.1   the image's chain as `erofs-layer merge --flat` + its layers, one
             raw disk, under Debian 12's 6.1 kernel: the same merged view
             (--no-flat leaves it out)
  teardown   the snapshots removed, containerd and the daemon stopped (the
             daemon exits 0), nothing left running, mounted or attached; the
             lab's directory is deleted after a run that passed (kept, without
             immutable flags, after one that failed: its logs are in DIR/lab)

A step whose input failed is skipped, visibly; the run fails if any step
failed. The last line is `figures: ...` (boot times, the import, the commit,
the end-to-end time from the import to the second boot's end, and the whole
run); -v also prints each step's time and the guest's output.

Exit 0 all passed, 1 some failed, 77 cannot run here (not root, no containerd
tools, loop devices, erofs/overlay, or qemu-system-x86_64).
"""

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# run-differ.py loads run-integration.py itself: one module, one CaseFailed
rd = _load("rd", os.path.join(TESTS, "integration", "run-differ.py"))
ri = rd.ri
rg = _load("rg", os.path.join(TESTS, "guest", "run-guest.py"))
guest = rg.guest
mkimage = ri.mkimage
CaseFailed, check, fail, run, tail = ri.CaseFailed, ri.check, ri.fail, ri.run, ri.tail

SN = ri.SN
IMAGE = "docker.io/library/spin-e2e:latest"
CONTAINER = "e2e-container"
COMMITTED = "e2e-committed"
VIEW = "e2e-view"
APPLETS = ["sh", "cat", "ls", "echo", "rm", "test", "[", "mkdir", "stat", "true", "false",
           "sync", "head", "sort", "printf"]
T0 = 1700000000

# ---- the image ------------------------------------------------------------------


def image_spec():
    """Three layers; the busybox comes from the host (guest.BUSYBOX)."""
    with open(guest.BUSYBOX, "rb") as f:
        busybox = f.read()
    l1 = [{"path": d, "type": "dir"} for d in ("bin", "etc", "proc", "sys", "dev", "tmp", "root",
                                               "gonedir", "gonedir/sub", "opq")]
    l1 += [{"path": "bin/busybox", "type": "file", "mode": 0o755, "data": busybox}]
    l1 += [{"path": "bin/" + a, "type": "symlink", "target": "busybox"} for a in APPLETS]
    l1 += [
        {"path": "etc/os-release", "type": "file",
         "data": 'NAME="spin e2e"\nID=spin-e2e\nVERSION_ID=1\n'},
        {"path": "etc/changed", "type": "file", "data": "v1\n"},
        {"path": "etc/gone", "type": "file", "data": "gone\n"},
        {"path": "etc/keep", "type": "file", "data": "keep\n"},
        {"path": "etc/deleteme", "type": "file", "data": "delete me\n"},
        {"path": "gonedir/a", "type": "file", "data": "a\n"},
        {"path": "gonedir/sub/b", "type": "file", "data": "b\n"},
        {"path": "opq/old1", "type": "file", "data": "old1\n"},
        {"path": "opq/old2", "type": "file", "data": "old2\n"},
    ]
    l2 = [
        {"path": "etc", "type": "dir"},
        {"path": "etc/changed", "type": "file", "data": "v2\n"},
        {"path": "etc/gone", "type": "whiteout"},
        {"path": "etc/l2", "type": "file", "data": "l2\n"},
        {"path": "gonedir", "type": "whiteout"},
        {"path": "opq", "type": "dir"},
        {"path": "opq", "type": "opaque"},
        {"path": "opq/new2", "type": "file", "data": "new2\n"},
        {"path": "etc/os-release", "type": "file",
         "data": 'NAME="spin e2e"\nID=spin-e2e\nVERSION_ID=2\n'},
    ]
    l3 = [
        {"path": "etc", "type": "dir"},
        {"path": "etc/changed", "type": "file", "data": "v3\n"},
        {"path": "opq", "type": "dir"},
        {"path": "opq/new3", "type": "file", "data": "new3\n"},
    ]
    return {"name": IMAGE, "mtime": T0, "layers": [
        {"compression": "gzip", "entries": l1},
        {"compression": "gzip", "level": 9, "entries": l2},
        {"compression": "none", "entries": l3},
    ]}


# What the guest prints of the merged view, and what it must look like.
VIEW_SCRIPT = r"""
echo "release: $(. /etc/os-release; echo $ID $VERSION_ID)"
echo "changed=$(cat /etc/changed)"
[ -e /etc/gone ] && echo gone=present || echo gone=absent
[ -e /gonedir ] && echo gonedir=present || echo gonedir=absent
echo "opq:" $(ls -1 /opq)
echo "keep=$(cat /etc/keep) l2=$(cat /etc/l2)"
"""
VIEW_EXPECTED = (b"release: spin-e2e 2\nchanged=v3\ngone=absent\ngonedir=absent\n"
                 b"opq: new2 new3\nkeep=keep l2=l2\n")
ETC_SCRIPT = 'echo "etc:" $(ls -1 /etc)\n'
ETC_BEFORE = b"etc: changed deleteme keep l2 os-release\n"
ETC_AFTER = b"etc: changed keep l2 newfile os-release\n"
WRITE_SCRIPT = r"""
echo hello-from-guest > /etc/newfile && echo wrote
rm /etc/deleteme && echo deleted
[ -e /etc/deleteme ] && echo still-there
sync
"""
WRITE_EXPECTED = b"wrote\ndeleted\n"
AFTER_SCRIPT = r"""
echo "newfile=$(cat /etc/newfile)"
[ -e /etc/deleteme ] && echo deleteme=present || echo deleteme=absent
"""
AFTER_EXPECTED = b"newfile=hello-from-guest\ndeleteme=absent\n"


# ---- the run ----------------------------------------------------------------------


class Args:
    """What ri.Env reads from its command line; the load rounds are not ours."""

    def __init__(self, a):
        self.daemon, self.erofs_layer, self.workdir = a.daemon, a.erofs_layer, a.workdir
        self.verbose = a.verbose
        self.containerd = "2.1"  # the release the lab runs

    def __getattr__(self, name):
        return 0


class E2E:
    def __init__(self, a):
        self.a = a
        self.env = ri.Env(Args(a))
        self.verbose = a.verbose
        self.cache = a.cache
        self.el = self.env.erofs_layer
        self.guest_work = os.path.join(self.env.work, "guest")
        self.state = {}
        self.figures = []     # (label, text)
        self.t_start = time.monotonic()

    def say(self, msg):
        if self.verbose:
            print("  " + msg)
            sys.stdout.flush()

    def kernel(self, suite):
        try:
            return guest.kernel(suite, self.cache, verbose=False)
        except guest.GuestError as e:
            fail("cannot get the %s kernel: %s" % (suite, str(e).splitlines()[0]))

    def boot(self, label, mounts, script, suite=guest.DEFAULT_SUITE):
        k = self.kernel(suite)
        os.makedirs(self.guest_work, exist_ok=True)
        try:
            r = guest.run(mounts, ["/bin/busybox", "sh", "-c", script], kern=k,
                          cache_dir=self.cache, timeout=300, workdir=self.guest_work)
        except guest.GuestError as e:
            fail("the guest failed: %s" % str(e).splitlines()[0],
                 str(e).splitlines()[1:][-ri.MAX_DETAILS:])
        self.figures.append((label, "%.2f s to the command, %.2f s in all (%s)" % (
            r.boot_time, r.total_time, k.version.split("-")[0])))
        self.say("%s: %s boot %.2f s, total %.2f s, QEMU cpu %.2f s, exit status %d" % (
            label, k.version, r.boot_time, r.total_time, r.cpu_time, r.status))
        if self.verbose:
            for line in r.output.decode("utf-8", "replace").splitlines():
                print("  | " + line)
        return r


def expect_output(r, want, what):
    probs = []
    if r.output != want:
        probs.append("%s printed:" % what)
        probs += ["  | " + l for l in r.output.decode("utf-8", "replace").splitlines()]
        probs.append("expected:")
        probs += ["  | " + l for l in want.decode().splitlines()]
    if r.status != 0:
        probs.append("%s: exit status %d, expected 0" % (what, r.status))
    if not r.clean:
        probs.append("%s: the guest did not tear down cleanly" % what)
    check(not probs, "the guest's view is wrong", probs)


def layer_dirs(mounts):
    """The layer directories of an erofs fsmeta mount's device= options."""
    return [os.path.dirname(o[len("device="):]) for o in mounts[0].get("Options") or []
            if o.startswith("device=")]


def chain_mount_problems(m, dirs, what):
    """{erofs, <top>/fsmeta.erofs, [ro, loop, device=<oldest>, ..., device=<newest>]},
    merged.vmdk beside fsmeta (docs/vm-runtime-contract.md)."""
    want = {"Type": "erofs", "Source": os.path.join(dirs[-1], "fsmeta.erofs"),
            "Options": ["ro", "loop"] + ["device=" + os.path.join(d, "layer.erofs") for d in dirs]}
    probs = []
    got = {k: v for k, v in m.items() if k != "Target" or v}  # ctr 1.7 prints Target ""
    if got != want:
        probs.append("%s: %s, expected %s" % (what, got, want))
    vmdk = os.path.join(dirs[-1], "merged.vmdk")
    if not os.path.exists(vmdk):
        probs.append("%s: no %s" % (what, vmdk))
    else:
        r = run(["qemu-img", "info", "--output=json", vmdk], check=False)
        if r.rc != 0 or '"format": "vmdk"' not in r.out:
            probs.append("qemu-img info %s: %s" % (vmdk, tail(r.err or r.out)))
        extents = re.findall(r'^RW \d+ FLAT "([^"]+)" \d+$', open(vmdk).read(), re.M)
        files = []
        for e in extents:
            if not files or files[-1] != e:
                files.append(e)
        want_files = [want["Source"]] + [o[len("device="):] for o in want["Options"][2:]]
        if files != want_files:
            probs.append("%s extents name %s, expected %s" % (vmdk, files, want_files))
    return probs


def log_problems(text):
    return [l[:240] for l in text.splitlines() if "level=error" in l or "level=warning" in l]


# ---- steps ------------------------------------------------------------------------

def s_image(e):
    os.makedirs(e.env.img_dir, exist_ok=True)
    path = os.path.join(e.env.img_dir, "e2e.tar")
    t = time.monotonic()
    info = mkimage.build(image_spec(), path)
    info["path"] = path
    e.state["image"] = info
    e.say("%s: %d layers, %d bytes, in %.1f s" % (path, len(info["layers"]), info["size"],
                                                   time.monotonic() - t))
    # the kernels now, so that fetching them (once) counts in no figure
    e.kernel(guest.DEFAULT_SUITE)


def s_lab(e):
    os.environ["LAB_DIFFER"] = "1"
    e.env.lab_up()
    r = e.env.lab.ctr("plugins", "ls")
    for typ, name in (("io.containerd.snapshotter.v1", SN), ("io.containerd.differ.v1", rd.DIFFER)):
        rows = [l for l in r.out.splitlines() if typ in l and (" %s " % name) in l]
        check(rows and rows[0].split()[-1] == "ok", "plugin %s %s: %s" % (typ, name, rows))


def s_import(e):
    lab, info = e.env.lab, e.state["image"]
    off = lab.log_size()
    t = time.monotonic()
    r = lab.ctr("images", "import", "--local", "--snapshotter", SN, info["path"], timeout=600,
                check=False)
    e.t_import = t
    took = time.monotonic() - t
    check(r.rc == 0, "ctr images import exited %d: %s" % (r.rc, tail(r.err or r.out)))
    e.figures.append(("import", "%.2f s" % took))
    log = lab.log_since(off)
    ap = rd.applied_lines(log)
    probs = []
    if len(ap) != len(info["layers"]):
        probs.append("%d msg=applied lines for %d layers" % (len(ap), len(info["layers"])))
    if [d for _, _, d in ap] != info["diff_ids"]:
        probs.append("applied diffIDs %s, the image's %s" % ([d[:19] for _, _, d in ap],
                                                             [d[:19] for d in info["diff_ids"]]))
    if [b for _, b, _ in ap] != [l["digest"] for l in info["layers"]]:
        probs.append("applied blobs %s" % [b[:19] for _, b, _ in ap])
    if rd.converted_lines(log):
        probs.append("the walking differ's fallback was taken: %d fs/ conversions"
                     % len(rd.converted_lines(log)))
    probs += ["log: " + l for l in log_problems(log)]
    rows = ri.ls_table(lab.sn("ls").out)
    for c in info["chain_ids"]:
        if rows.get(c, ("", ""))[1] != "Committed":
            probs.append("chain %s is %s" % (c[:19], rows.get(c)))
    check(not probs, "%d problems" % len(probs), probs)
    e.say("import: %.2f s, %d msg=applied lines" % (took, len(ap)))
    if e.verbose:
        for d, b, i in ap:
            print("  | applied %s blob %s diffid %s" % (d, b[:19], i[:19]))


def s_prepare(e):
    lab, info = e.env.lab, e.state["image"]
    r = lab.sn("prepare", "--mounts", CONTAINER, info["chain_ids"][-1])
    m = ri.parse_mounts(r.out)
    check(len(m) == 2 and m[0].get("Type") == "erofs",
          "active with parents: %d mounts, expected fsmeta then ext4: %s" % (len(m), m))
    dirs = layer_dirs(m)
    check(len(dirs) == len(info["layers"]), "%d device= options for %d layers: %s"
          % (len(dirs), len(info["layers"]), m[0]))
    probs = chain_mount_problems(m[0], dirs, "the lower mount")
    rw = m[1]
    if rw.get("Type") != "ext4" or rw.get("Options") != ["rw", "loop"] or \
            not rw.get("Source", "").endswith("/rwlayer.img") or not os.path.exists(rw["Source"]):
        probs.append("the writable mount: %s" % rw)
    check(not probs, "%d problems" % len(probs), probs)
    e.state["mounts"], e.state["dirs"] = m, dirs
    if e.verbose:
        for x in m:
            print("  | %s %s %s" % (x["Type"], x["Source"], ",".join(x.get("Options") or [])))


def s_boot(e):
    m = e.state["mounts"]
    r = e.boot("boot", m, VIEW_SCRIPT + ETC_SCRIPT + WRITE_SCRIPT)
    e.state["boot"] = r
    expect_output(r, VIEW_EXPECTED + ETC_BEFORE + WRITE_EXPECTED, "the container")
    # on the host, without mounting: the new file and the whiteout in upper/
    try:
        rg.check_upper(m[1]["Source"])
    except rg.CaseFailed as x:
        fail("rwlayer.img after the guest: %s" % x)


def s_commit(e):
    lab, info = e.env.lab, e.state["image"]
    off = lab.log_size()
    t = time.monotonic()
    r = lab.sn("commit", COMMITTED, CONTAINER, check=False, timeout=300)
    took = time.monotonic() - t
    check(r.rc == 0, "ctr snapshots commit %s %s exited %d: %s" % (COMMITTED, CONTAINER, r.rc,
                                                                  tail(r.err or r.out)))
    e.figures.append(("commit", "%.2f s" % took))
    probs = []
    rows = ri.ls_table(lab.sn("ls").out)
    if rows.get(COMMITTED) != (info["chain_ids"][-1], "Committed"):
        probs.append("%s is %s, expected committed on %s" % (COMMITTED, rows.get(COMMITTED),
                                                            info["chain_ids"][-1][:19]))
    if CONTAINER in rows:
        probs.append("the active snapshot %s is still listed" % CONTAINER)
    probs += ["log: " + l for l in log_problems(lab.log_since(off))]
    check(not probs, "%d problems" % len(probs), probs)
    e.say("commit: %.2f s" % took)


def s_view(e):
    lab = e.env.lab
    m = ri.view(lab, lab.sn, VIEW, COMMITTED)
    check(len(m) == 1 and m[0].get("Type") == "erofs", "the view: %s" % m)
    dirs = layer_dirs(m)
    probs = []
    if dirs[:-1] != e.state["dirs"]:
        probs.append("the view's lower layers %s, expected the image's %s and the committed one"
                     % (dirs, e.state["dirs"]))
    probs += chain_mount_problems(m[0], dirs, "the view's mount")
    check(not probs, "%d problems" % len(probs), probs)
    # the committed layer: a valid image holding the new file and a 0:0
    # whiteout for the deleted one, nothing else of the container's
    layer = os.path.join(dirs[-1], "layer.erofs")
    err = ri.erofs_check(e.env, layer)
    check(err is None, err)
    got = run([e.el, "cat", layer, "/etc/newfile"], check=False)
    if got.rc != 0 or got.out != "hello-from-guest\n":
        probs.append("erofs-layer cat %s /etc/newfile: %s" % (layer, tail(got.err or got.out)))
    ls = run([e.el, "ls", "-l", "-R", layer]).out
    names = sorted(l.split()[-1] for l in ls.splitlines() if l.strip())
    if names != ["/etc", "/etc/deleteme", "/etc/newfile"]:
        probs.append("the committed layer holds %s, expected /etc, /etc/deleteme (whiteout), "
                     "/etc/newfile" % names)
    wh = [l for l in ls.splitlines() if l.split() and l.split()[-1] == "/etc/deleteme"]
    if not wh or not wh[0].startswith("c") or not re.search(r"\b0,\s*0\b", wh[0]):
        probs.append("/etc/deleteme is not a 0:0 character device: %s" % wh)
    check(not probs, "%d problems" % len(probs), probs)
    e.state["view"] = m
    if e.verbose:
        print("  | %s %s %s" % (m[0]["Type"], m[0]["Source"], ",".join(m[0]["Options"])))
        for l in ls.splitlines():
            print("  | " + l)


def s_reboot(e):
    r = e.boot("reboot", e.state["view"], VIEW_SCRIPT + ETC_SCRIPT + AFTER_SCRIPT)
    e.t_reboot_end = time.monotonic()
    expect_output(r, VIEW_EXPECTED + ETC_AFTER + AFTER_EXPECTED, "the view of the commit")


def s_flat(e):
    k = e.kernel("bookworm")
    d = os.path.join(e.env.work, "flat")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    layers = [os.path.join(x, "layer.erofs") for x in e.state["dirs"]]
    flat = os.path.join(d, "flat.erofs")
    run([e.el, "merge", "--flat", "-o", flat] + layers)
    disk = os.path.join(d, "disk.img")
    guest._concat([flat] + layers, disk)
    r = e.boot("flat-6.1", [{"type": "erofs", "source": disk, "options": ["ro", "loop"]}],
               VIEW_SCRIPT, suite=k.suite)
    expect_output(r, VIEW_EXPECTED, "the flat chain on 6.1")
    shutil.rmtree(d)


def s_teardown(e):
    lab = e.env.lab
    probs = []
    if lab.started:
        rows = ri.ls_table(lab.sn("ls").out)
        for key in (VIEW, CONTAINER, COMMITTED):
            if key in rows:
                r = lab.sn("rm", key, check=False)
                if r.rc != 0:
                    probs.append("ctr snapshots rm %s: %s" % (key, tail(r.err)))
        r = lab.sh("lab_stop", timeout=120, check=False)
        if r.rc != 0:
            probs.append("lab_stop: %s" % tail(r.err))
        if lab.rc("sn") != 0:
            probs.append("the daemon's exit status %s, expected 0" % lab.rc("sn"))
        lab.started = False
    probs += ri.final_cleanup(e.env)
    if os.path.isdir(os.path.join(lab.root, "snapshots")):
        probs += ri.snapshot_dir_problems(lab.root)
    probs += ["process " + p for p in ri.procs_mentioning(e.env.work)]
    probs += ["mount " + m for m in ri.mounts_under(e.env.work)]
    probs += ["loop device " + l for l in ri.loops_under(e.env.work)]
    shutil.rmtree(e.guest_work, ignore_errors=True)
    check(not probs, "%d problems" % len(probs), probs)


# name, function, the steps it needs
STEPS = [
    ("image", s_image, []),
    ("lab", s_lab, []),
    ("import", s_import, ["image", "lab"]),
    ("prepare", s_prepare, ["import"]),
    ("boot", s_boot, ["prepare"]),
    ("commit", s_commit, ["boot"]),
    ("view", s_view, ["commit"]),
    ("reboot", s_reboot, ["view"]),
    ("flat-6.1", s_flat, ["prepare"]),
    ("teardown", s_teardown, []),
]


def cannot_run():
    why = ri.cannot_run()
    if why:
        return why
    for tool in ("qemu-system-x86_64", "qemu-img", "debugfs", "dumpe2fs", "e2fsck"):
        if not shutil.which(tool):
            return "no %s" % tool
    if not os.path.exists(guest.BUSYBOX):
        return "no %s (busybox-static)" % guest.BUSYBOX
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--erofs-layer", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--cache", default=guest.DEFAULT_CACHE, help="guest kernels (%(default)s)")
    ap.add_argument("--no-flat", action="store_true", help="leave out the 6.1 flat boot")
    ap.add_argument("--keep", action="store_true", help="leave the lab running at the end")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    why = cannot_run()
    if why:
        print("skip e2e: %s" % why)
        return 77
    try:
        e = E2E(a)  # fetches containerd 2.1 once
    except CaseFailed as x:
        print("FAIL setup: %s" % x.reason)
        print("0 passed, 1 failed")
        return 1
    for path in (e.env.daemon, e.env.erofs_layer):
        if not os.access(path, os.X_OK):
            print("FAIL setup: %s is not executable" % path)
            print("0 passed, 1 failed")
            return 1
    try:
        ri.prepare_workdir(e.env)
    except (CaseFailed, OSError) as x:
        print("FAIL setup: %s" % (x.reason if isinstance(x, CaseFailed) else x))
        print("0 passed, 1 failed")
        return 1
    done, passed, failed, skipped = set(), 0, 0, 0
    try:
        for name, fn, needs in STEPS:
            if name == "flat-6.1" and a.no_flat:
                continue
            if name == "teardown" and a.keep:
                continue
            missing = [n for n in needs if n not in done]
            if missing:
                skipped += 1
                print("skip %s: %s did not pass" % (name, ", ".join(missing)))
                continue
            t = time.monotonic()
            try:
                fn(e)
                done.add(name)
                passed += 1
                print("ok %s%s" % (name, " (%.1f s)" % (time.monotonic() - t) if a.verbose else ""))
            except CaseFailed as x:
                failed += 1
                print("FAIL %s: %s" % (name, x.reason))
                for d in x.details[:3 * ri.MAX_DETAILS]:
                    print("    " + str(d))
            except Exception:  # noqa: BLE001
                failed += 1
                print("FAIL %s: exception" % name)
                traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()
    except KeyboardInterrupt:
        failed += 1
        print("FAIL: interrupted")
    finally:
        if not a.keep:
            ri.final_cleanup(e.env)
            # committed layers are immutable (--set-immutable): clear the flag so
            # that the build directory can be deleted; keep the lab's logs only
            # when something failed
            if os.path.isdir(e.env.lab_dir):
                subprocess.run(["chattr", "-R", "-i", e.env.lab_dir], capture_output=True)
                if not failed and not skipped:
                    shutil.rmtree(e.env.lab_dir, ignore_errors=True)
    figs = [("%s %s" % f) for f in e.figures]
    if "reboot" in done:
        figs.append("end-to-end (import to the second boot's end, flat-6.1 excluded) %.1f s"
                    % (e.t_reboot_end - e.t_import))
    figs.append("whole run %.1f s" % (time.monotonic() - e.t_start))
    print("figures: " + "; ".join(figs))
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""))
    return 1 if failed or skipped else 0


if __name__ == "__main__":
    sys.exit(main())
