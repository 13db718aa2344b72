#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Differ tests: spin-erofs-snapshotter as containerd 2.x's (and 1.7's) proxy differ.

    run-differ.py --daemon PATH --erofs-layer PATH --diff-probe PATH --workdir DIR
                  [--containerd 2.1|1.7] [--only GLOB]... [--keep] [-v] [--list]

containerd 2.1.9 is Debian sid's package (the default), 1.7.24 Debian 13's,
fetched and unpacked by scripts/fetch-debs.sh (docs/containerd-contract.md; cached in
/var/tmp/spin-debs, or $SPIN_DEBS). On 2.1 the lab's config is version 3 and
a private registry (Debian's docker-registry on 127.0.0.1, images pushed by
skopeo) serves pulls: pull-registry (every layer through our Apply, the
view against overlayfs), pull-refused (a broken layer fails the pull with
our message), and containerd restarted with the seed's version 2 config
and with docs/containerd-config.toml (version 3), each used verbatim. The lab (tests/integration/lab.sh with LAB_DIFFER=1) registers
our socket as the proxy snapshotter `spin-erofs` and the proxy differ
`spin-erofs-diff`, first in the diff service's list and in the transfer
service's unpack_config.

Cases: imports through our Apply, client-side (--local) and through the
transfer service, proven by the daemon's log (an `applied` line per layer,
no conversion of fs/) and compared with containerd's overlayfs snapshotter
(whose mounts our differ refuses with UNIMPLEMENTED, so containerd's walking
differ unpacks them: the fallback); then Apply called directly by
diff-probe with what containerd would never send: unknown media types,
mounts that are not ours, a missing blob, another namespace's blob, a wrong
size, a corrupt or truncated gzip, a tampered blob, native EROFS blobs good
and bad, a client that goes away midway. Every failure must leave the
snapshot's directory as it was. The daemon reads blobs from containerd's
local store (read=file in its log); apply-stream restarts it with
--local-content=false and runs the bad blobs and the cancelled Apply again
through the Content service's Read stream.

Output and exit status as run-integration.py's.
"""

import argparse
import hashlib
import importlib.util
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zlib

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
_spec = importlib.util.spec_from_file_location("ri", os.path.join(HERE, "run-integration.py"))
ri = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ri)
CaseFailed, CaseSkipped, check, fail, run, tail = (
    ri.CaseFailed, ri.CaseSkipped, ri.check, ri.fail, ri.run, ri.tail)

SN = ri.SN
DIFFER = "spin-erofs-diff"
MEDIA_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_EROFS = "application/vnd.erofs.layer.v1"
NS = "default"

CASES = []
RELEASES = ("2.1", "1.7")  # containerd releases with a proxy differ (1.7.4+)
# the daemon's socket as the seed's and the README's configs name it
CONFIG_SOCKET = "/run/spin-stack/erofs-snapshotter.sock"


def case(name, releases=RELEASES):
    """A case, run on the containerd releases named (the others do not list
    it: a registry pull and the version 3 configs need 2.x)."""
    def deco(fn):
        CASES.append((name, fn, releases))
        return fn
    return deco


# ---- helpers -----------------------------------------------------------------

def applied_lines(log):
    return re.findall(r'msg=applied dir=(\S+) digest=(\S+) diffid=(\S+)', log)


def read_sources(log):
    """Where each Apply read its blob: file (containerd's local store) or
    stream (the Content service's Read stream)."""
    return re.findall(r'msg=applied .* read=(\S+)', log)


def restart_daemon(env, *flags):
    """The daemon again, with the lab's flags and these."""
    lab = env.lab
    r = lab.sh("lab_stop_daemon", check=False)
    check(r.rc == 0, "lab_stop_daemon: %s" % tail(r.err))
    r = lab.sh("lab_start_daemon", *lab.DAEMON_FLAGS, *flags, check=False)
    check(r.rc == 0, "lab_start_daemon %s: %s" % (" ".join(flags), tail(r.err)))
    lab.wait_snapshotter()


def converted_lines(log):
    return re.findall(r'msg="converted (\S+)/fs: ', log)


def snapshot_dir_listing(d):
    return sorted(os.listdir(d))


def mounts_for_probe(mounts):
    """containerd's mount list as diff-probe's lines."""
    return "\n".join("%s\t%s\t%s" % (m["Type"], m["Source"], ",".join(m.get("Options") or []))
                     for m in mounts)


def probe_apply(env, media_type, digest, size, mounts, timeout_ms=None):
    args = [env.diff_probe, "apply", env.lab.sn_sock, NS, media_type, digest, str(size),
            mounts_for_probe(mounts)]
    if timeout_ms is not None:
        args.append(str(timeout_ms))
    r = run(args, timeout=300)
    try:
        return json.loads(r.out)
    except ValueError:
        fail("diff-probe printed %s" % tail(r.out))


def ingest(env, data, label, ns=NS):
    """Puts a blob into containerd's content store (kept from its collector).

    `ctr content ingest` commits without a lease, so containerd's collector
    may take the blob before `ctr content label` pins it with a gc.root (CI
    saw it once). Another attempt then ingests it again."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    lab = env.lab
    for attempt in range(5):
        r = subprocess.run([env.ctr, "--address", lab.sock, "--namespace", ns, "content", "ingest",
                            "--expected-size", str(len(data)), "--expected-digest", digest,
                            "probe-%s-%d" % (label, attempt)],
                           input=data, capture_output=True, timeout=120)
        check(r.returncode == 0 or b"already exists" in r.stderr,
              "ctr content ingest %s: %s" % (label, tail(r.stderr)))
        r = lab.ctr("--namespace", ns, "content", "label", digest, "containerd.io/gc.root=differ-test",
                    check=False)
        if r.rc == 0:
            return digest, len(data)
        check("not found" in r.out + r.err, "ctr content label %s: %s" % (label, tail(r.err)))
    fail("blob %s was collected before it could be labelled, 5 times" % label)


def blob_path(env, digest):
    return os.path.join(env.lab.dir, "containerd", "root", "io.containerd.content.v1.content",
                        "blobs", "sha256", digest.split(":")[1])


def make_tar(entries):
    """entries: (name, bytes) regular files; returns the tar bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1700000000
            ti.mode = 0o644
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data, level=6):
    z = zlib.compressobj(level, zlib.DEFLATED, 31, 9)
    return z.compress(data) + z.flush()


def extract_snapshot(env, label):
    """An extract snapshot made straight on our socket, as containerd's
    unpacker would make it; returns (key, mounts, its directory)."""
    key = "%s/%d/extract-%s" % (NS, 900 + env.uniq, label)
    env.uniq += 1
    m = ri.parse_mounts(env.lab.direct("prepare", "--mounts", key).out)
    check(len(m) == 1 and m[0]["Type"] == "overlay", "extract mounts: %s" % m)
    upper = [o for o in m[0]["Options"] if o.startswith("upperdir=")][0][len("upperdir="):]
    return key, m, os.path.dirname(upper)


def untouched(d, before):
    """The snapshot directory holds what it held before (nothing half-made)."""
    now = snapshot_dir_listing(d)
    probs = []
    if now != before:
        probs.append("%s now holds %s (was %s)" % (d, now, before))
    for sub in ("fs", "work"):
        p = os.path.join(d, sub)
        if os.path.isdir(p) and os.listdir(p):
            probs.append("%s is not empty: %s" % (p, os.listdir(p)[:5]))
    return probs


# ---- cases -------------------------------------------------------------------

@case("lab-start")
def t_lab_start(env):
    """containerd (2.1 by default, --containerd 1.7) with our snapshotter and
    differ: both plugins ok; the config's form follows the release."""
    env.lab_up()
    v = env.lab.ctr("version").out
    check(re.search(r"Server:\s*\n\s*Version:\s*v?%s\." % re.escape(env.release), v),
          "containerd's server is not %s: %s" % (env.release, tail(v)))
    with open(os.path.join(env.lab.dir, "config.toml")) as f:
        form = re.search(r"^version = (\d+)", f.read(), re.M)
    want = "3" if env.release.startswith("2.") else "2"
    check(form and form.group(1) == want, "config version %s, expected %s for containerd %s"
          % (form and form.group(1), want, env.release))
    plugins = env.lab.ctr("plugins", "ls").out
    for typ, name in (("io.containerd.snapshotter.v1", SN), ("io.containerd.differ.v1", DIFFER)):
        rows = [l for l in plugins.splitlines() if typ in l and (" %s " % name) in l]
        check(rows and rows[0].split()[-1] == "ok", "plugin %s %s: %s" % (typ, name, rows))


def import_through_apply(env, image, local):
    env.lab_up()
    info = env.image(image)
    args = ["images", "import", "--snapshotter", SN] + (["--local"] if local else []) + [info["path"]]
    return unpack_through_apply(env, info, args, "import %s into %s" % (image, SN))


def unpack_through_apply(env, info, args, memo_key):
    """ctr ARGS (an import or a pull) unpacks every layer of INFO through
    our Apply: an applied line per layer with the image's diffIDs, the blobs
    read from containerd's files, no fallback, every layer.erofs checked,
    the chain committed, nothing left behind."""
    lab = env.lab
    off = lab.log_size()
    r = lab.ctr(*args, timeout=900, check=False)
    check(r.rc == 0, "ctr %s exited %d: %s" % (" ".join(args[:5]), r.rc, tail(r.err or r.out)))
    log = lab.log_since(off)
    probs = []
    ap = applied_lines(log)
    if [d for _, _, d in ap] != info["diff_ids"]:
        probs.append("applied diffIDs %s, the image's %s" % ([d[:19] for _, _, d in ap],
                                                             [d[:19] for d in info["diff_ids"]]))
    if [b for _, b, _ in ap] != [l["digest"] for l in info["layers"]]:
        probs.append("applied blobs %s" % [b[:19] for _, b, _ in ap])
    sources = read_sources(log)
    if sources != ["file"] * len(ap):
        probs.append("blobs read from %s, expected containerd's files (read=file)" % sources)
    conv = converted_lines(log)
    if conv:
        probs.append("the walking differ's fallback was taken: %d fs/ conversions" % len(conv))
    for l in log.splitlines():
        if "level=error" in l or "level=warning" in l or "rpc failed" in l:
            probs.append("log: " + l[:240])
    for d, _, _ in ap:
        p = os.path.join(d, "layer.erofs")
        e = ri.erofs_check(env, p) if os.path.exists(p) else "%s missing" % p
        if e:
            probs.append(e)
    rows = ri.ls_table(lab.sn("ls").out)
    for c in info["chain_ids"]:
        if rows.get(c, ("", ""))[1] != "Committed":
            probs.append("chain %s is %s" % (c[:19], rows.get(c)))
    probs += ri.snapshot_dir_problems(lab.root)
    check(not probs, "%d problems" % len(probs), probs)
    env.memo[memo_key] = (True, info)
    return info


def groundtruth(env, image, expectations=None):
    """Our view of the whole chain equals overlayfs's (unpacked by the
    walking differ after ours refused its mounts)."""
    lab = env.lab
    off = lab.log_size()
    info = env.imported(image, "overlayfs", local=True)
    log = lab.log_since(off)
    refused = re.findall(r'msg="rpc failed" method=/containerd.services.diff.v1.Diff/Apply code=UNIMPLEMENTED', log)
    probs = []
    if len(refused) < len(info["layers"]):
        probs.append("%d Apply calls refused with UNIMPLEMENTED for %d overlayfs layers"
                     % (len(refused), len(info["layers"])))
    if applied_lines(log):
        probs.append("our differ applied a layer of the overlayfs snapshotter")
    top = info["chain_ids"][-1]
    om = ri.view(lab, lab.ov, env.name("gt-ov"), top)
    sm = ri.view(lab, lab.sn, env.name("gt-sn"), top)
    d, e, a = ri.compare_trees(env.host, om, sm, image)
    probs += d
    if expectations:
        probs += expectations(e, "overlayfs") + expectations(a, "ours")
    check(not probs, "%d problems" % len(probs), probs)


@case("apply-local")
def t_apply_local(env):
    """ctr images import --local (client-side unpack, the diff service's
    default list): every layer of the 4-layer image through our Apply, the
    diffIDs accepted, the merged view equal to overlayfs's."""
    import_through_apply(env, "multi", local=True)
    groundtruth(env, "multi", ri.multi_expectations)


@case("apply-transfer")
def t_apply_transfer(env):
    """The transfer service (ctr's default in 1.7) with unpack_config naming
    our plugins: plain, zstd and Docker-named gzip layers through our Apply."""
    import_through_apply(env, "mixed", local=False)

    def mixed_expect(snap, label):
        probs = []
        if "etc/gone" in snap:
            probs.append("[%s] etc/gone is not whited out" % label)
        kids = sorted(p for p in snap if p.startswith("opt/tree/"))
        if kids != ["opt/tree/only"]:
            probs.append("[%s] opt/tree holds %s" % (label, kids[:5]))
        z = snap.get("etc/zstd")
        if not z or z["xattrs"].get("user.enc") != b"zstd" or z["size"] != 300000:
            probs.append("[%s] etc/zstd: %s" % (label, z))
        return probs
    groundtruth(env, "mixed", mixed_expect)


@case("apply-big")
def t_apply_big(env):
    """A layer over 100 MB through our Apply (transfer service)."""
    t0 = time.time()
    import_through_apply(env, "big", local=False)
    if env.verbose:
        print("  big: %.1f s" % (time.time() - t0))


@case("apply-refusals")
def t_apply_refusals(env):
    """UNIMPLEMENTED for mounts that are not ours and for unknown media
    types (so that containerd may fall back); nothing written."""
    env.lab_up()
    tar = make_tar([("hello", b"hi\n")])
    digest, size = ingest(env, tar, "refusal")
    key, m, d = extract_snapshot(env, "refusal")
    before = snapshot_dir_listing(d)
    probs = []
    for label, mt, mounts in (
            ("unknown media type", "application/vnd.example.layer.v1+foo", m),
            ("a bind mount", MEDIA_TAR, [{"Type": "bind", "Source": d + "/fs", "Options": ["rbind"]}]),
            ("overlay without marker", MEDIA_TAR,
             [{"Type": "overlay", "Source": "overlay",
               "Options": ["upperdir=%s/fs" % env.work, "workdir=%s/w" % env.work, "lowerdir=/"]}]),
            ("no mounts", MEDIA_TAR, [])):
        res = probe_apply(env, mt, digest, size, mounts)
        if res["status"] != "UNIMPLEMENTED":
            probs.append("%s: %s (%s), expected UNIMPLEMENTED" % (label, res["status"], res["message"]))
        elif not res["message"]:
            probs.append("%s: no message" % label)
    probs += untouched(d, before)
    env.lab.direct("rm", key)
    check(not probs, "%d problems" % len(probs), probs)


@case("apply-bad-blobs")
def t_apply_bad(env):
    """A missing blob, a wrong size, a corrupt and a truncated gzip, a blob
    tampered with in containerd's store (digest mismatch), a bad native
    EROFS blob: a clear error each, and the snapshot directory as it was.
    Then the good blob applies, and again is AlreadyExists."""
    bad_blobs(env, "file")


def bad_blobs(env, source):
    """t_apply_bad, with the blobs read from `source` (file or stream)."""
    env.lab_up()
    rnd = random.Random(7)
    payload = bytes(rnd.getrandbits(8) for _ in range(200000))
    tar = make_tar([("a/file", payload), ("a/small", b"small\n")])
    gz = gzip_bytes(tar)
    good, good_size = ingest(env, gz, "good")
    corrupt = bytearray(gz)
    for i in range(len(corrupt) // 3, len(corrupt) // 3 + 64):
        corrupt[i] ^= 0x5A
    corrupt_d, corrupt_n = ingest(env, bytes(corrupt), "corrupt")
    trunc_d, trunc_n = ingest(env, gz[:len(gz) // 2], "truncated")
    # its own blob for each source: a second flip would undo the first
    tamper_src = gzip_bytes(make_tar([("t", b"tamper me" * 1000), (source, b"")]))
    tamper_d, tamper_n = ingest(env, tamper_src, "tampered")
    with open(blob_path(env, tamper_d), "r+b") as f:
        f.seek(tamper_n // 2)
        b = f.read(1)
        f.seek(tamper_n // 2)
        f.write(bytes([b[0] ^ 1]))
    junk_d, junk_n = ingest(env, bytes(rnd.getrandbits(8) for _ in range(65536)), "junk-erofs")
    missing = "sha256:" + "0" * 64
    # in containerd's store (a file there), but not in our namespace
    other_d, other_n = ingest(env, gzip_bytes(make_tar([("o", b"other ns")])), "other-ns", ns="other")

    key, m, d = extract_snapshot(env, "bad-" + source)
    before = snapshot_dir_listing(d)
    off = env.lab.log_size()
    probs = []
    for label, mt, dg, n, want, words in (
            ("missing blob", MEDIA_GZIP, missing, 10, "NOT_FOUND", "not found"),
            ("another namespace's blob", MEDIA_GZIP, other_d, other_n, "NOT_FOUND", "not found"),
            ("size too small", MEDIA_GZIP, good, good_size - 1, "INVALID_ARGUMENT", "longer than"),
            ("size too large", MEDIA_GZIP, good, good_size + 1, "INVALID_ARGUMENT", "ended after"),
            ("bad digest syntax", MEDIA_GZIP, "md5:abc", 3, "INVALID_ARGUMENT", "digest"),
            ("corrupt gzip", MEDIA_GZIP, corrupt_d, corrupt_n, None, "byte"),
            ("truncated gzip", MEDIA_GZIP, trunc_d, trunc_n, None, "byte"),
            ("tampered blob", MEDIA_GZIP, tamper_d, tamper_n, "INVALID_ARGUMENT", "digest mismatch"),
            ("junk as EROFS", MEDIA_EROFS, junk_d, junk_n, "INVALID_ARGUMENT", "not an EROFS image")):
        res = probe_apply(env, mt, dg, n, m)
        ok = res["code"] != 0 and (want is None or res["status"] == want) and \
            words.lower() in res["message"].lower() and res["status"] != "UNIMPLEMENTED"
        if not ok:
            probs.append("%s: %s: %s" % (label, res["status"], res["message"][:200]))
        elif env.verbose:
            print("  %s: %s: %s" % (label, res["status"], res["message"][:160]))
        probs += ["after %s: %s" % (label, p) for p in untouched(d, before)]

    res = probe_apply(env, MEDIA_GZIP, good, good_size, m)
    want = "sha256:" + hashlib.sha256(tar).hexdigest()
    if res["code"] != 0 or res["digest"] != want or res["size"] != len(tar) or \
            res["media_type"] != MEDIA_TAR:
        probs.append("the good blob: %s, expected diffID %s size %d" % (res, want[:19], len(tar)))
    else:
        e = ri.erofs_check(env, os.path.join(d, "layer.erofs"))
        if e:
            probs.append(e)
        r = run([env.erofs_layer, "cat", os.path.join(d, "layer.erofs"), "a/file"], check=False)
        if r.rc != 0:
            probs.append("erofs-layer cat a/file: %s" % tail(r.err))
        # published immutable (--set-immutable), before any Commit
        r = run(["lsattr", "-d", os.path.join(d, "layer.erofs")], check=False)
        if r.rc != 0 or "i" not in r.out.split()[0]:
            probs.append("layer.erofs after Apply is not immutable: %s" % (r.out or r.err).strip())
        again = probe_apply(env, MEDIA_GZIP, good, good_size, m)
        if again["status"] != "ALREADY_EXISTS":
            probs.append("a second Apply: %s %s" % (again["status"], again["message"]))
    sources = read_sources(env.lab.log_since(off))
    if sources != [source]:
        probs.append("the good blob was read from %s, expected %s" % (sources, source))
    env.lab.direct("rm", key)
    check(not probs, "%d problems" % len(probs), probs)


@case("apply-erofs-native")
def t_apply_erofs(env):
    """A native EROFS layer blob: checked, copied, its digest as diffID."""
    env.lab_up()
    work = os.path.join(env.work, "native")
    os.makedirs(work, exist_ok=True)
    tar = make_tar([("n/one", b"1\n"), ("n/two", b"2" * 9000)])
    tp = os.path.join(work, "l.tar")
    with open(tp, "wb") as f:
        f.write(tar)
    img = os.path.join(work, "l.erofs")
    run([env.erofs_layer, "convert", "-o", img, tp])
    data = open(img, "rb").read()
    digest, size = ingest(env, data, "native")
    key, m, d = extract_snapshot(env, "native")
    res = probe_apply(env, MEDIA_EROFS, digest, size, m)
    probs = []
    if res["code"] != 0 or res["digest"] != digest or res["size"] != size or \
            res["media_type"] != MEDIA_EROFS:
        probs.append("native apply: %s" % res)
    else:
        out = open(os.path.join(d, "layer.erofs"), "rb").read()
        if out != data:
            probs.append("layer.erofs differs from the blob")
    env.lab.direct("rm", key)
    shutil.rmtree(work, ignore_errors=True)
    check(not probs, "%d problems" % len(probs), probs)


@case("apply-cancel")
def t_apply_cancel(env):
    """A client that goes away midway (a 100 ms deadline on a 240 MB layer):
    the daemon stops the work and leaves nothing behind."""
    cancel_midway(env)


def cancel_midway(env):
    env.lab_up()
    if "cancel blob" not in env.memo:
        rnd = random.Random(11)
        chunk = bytes(rnd.getrandbits(8) for _ in range(1 << 20))
        tar = make_tar([("big/%03d" % i, chunk) for i in range(240)])
        env.memo["cancel blob"] = ingest(env, gzip_bytes(tar, 1), "cancel")
    digest, size = env.memo["cancel blob"]
    key, m, d = extract_snapshot(env, "cancel")
    before = snapshot_dir_listing(d)
    off = env.lab.log_size()
    t0 = time.time()
    res = probe_apply(env, MEDIA_GZIP, digest, size, m, timeout_ms=100)
    probs = []
    if res["status"] != "DEADLINE_EXCEEDED":
        probs.append("the probe saw %s %s" % (res["status"], res["message"]))
    # the daemon notices within its polling interval and cleans up
    line = ri.poll(lambda: re.search(r'msg="apply failed".*cancel', env.lab.log_since(off)), 30)
    if not line:
        probs.append("no cancelled Apply in the daemon's log: %s" % tail(env.lab.log_since(off)))
    elif env.verbose:
        print("  stopped %.1f s after the start" % (time.time() - t0))
    probs += untouched(d, before)
    tmp = [f for f in os.listdir(d) if f.startswith(".")]
    if tmp != [".erofslayer"]:
        probs.append("hidden files left: %s" % tmp)
    env.lab.direct("rm", key)
    check(not probs, "%d problems" % len(probs), probs)



@case("apply-stream")
def t_apply_stream(env):
    """--local-content=false: Apply reads every blob through the Content
    service's Read stream; the bad blobs and the cancelled Apply again."""
    env.lab_up()
    restart_daemon(env, "--local-content=false")
    try:
        bad_blobs(env, "stream")
        cancel_midway(env)
    finally:
        restart_daemon(env)


@case("apply-verity")
def t_apply_verity(env):
    """--dm-verity=mounts: each layer.erofs an Apply writes ends with a
    dm-verity tree in containerd 2.3's layout beside its .dmverity sidecar,
    and so does the chain's fsmeta.erofs; veritysetup accepts each; the
    mounts name the sidecars (X-containerd.dmverity=) and give the image's
    files; each committed layer's label spin-erofs.dmverity.roothash is its
    sidecar's root hash (ctr snapshots info); a byte changed in a layer is
    found and its block named."""
    env.lab_up()
    restart_daemon(env, "--dm-verity=mounts")
    try:
        verity_checks(env)
    finally:
        restart_daemon(env)


def verity_checks(env):
    lab = env.lab
    off = lab.log_size()
    info = import_through_apply(env, "verity", local=False)
    ap = applied_lines(lab.log_since(off))
    roots = re.findall(r'msg=applied .* roothash=([0-9a-f]{64})', lab.log_since(off))
    probs = []
    if len(roots) != len(ap):
        probs.append("%d applied lines name a root hash, of %d" % (len(roots), len(ap)))
    for (d, _, _), root in zip(ap, roots):
        layer = os.path.join(d, "layer.erofs")
        side = layer + ".dmverity"
        why = ri.veritysetup_problem(layer, side)
        if why:
            probs.append(why)
        elif json.load(open(side))["roothash"] != root:
            probs.append("%s: the log's root hash is not the sidecar's" % side)
        r = run([env.erofs_layer, "check", "--verity", layer], check=False)
        if r.rc != 0:
            probs.append("check --verity %s: %s" % (layer, tail(r.err)))
    for (d, _, _), chain in zip(ap, info["chain_ids"]):
        labels = json.loads(lab.sn("info", chain).out).get("Labels") or {}
        want = json.load(open(os.path.join(d, "layer.erofs.dmverity")))["roothash"]
        if labels.get("spin-erofs.dmverity.roothash") != want:
            probs.append("snapshot %s: label spin-erofs.dmverity.roothash is %r, the sidecar's "
                         "root hash %s" % (chain[:19], labels.get("spin-erofs.dmverity.roothash"),
                                           want[:16]))
    top = info["chain_ids"][-1]
    vkey = env.name("verity-view")
    m = ri.view(lab, lab.sn, vkey, top)
    src = m[0]["Source"] if m else ""
    opts = m[0].get("Options") or [] if m else []
    want = "X-containerd.dmverity=%s.dmverity" % src
    if not src.endswith("/fsmeta.erofs") or want not in opts:
        probs.append("the chain's mount does not name fsmeta's sidecar: %s" % m)
    else:
        why = ri.veritysetup_problem(src, src + ".dmverity")
        if why:
            probs.append(why)
        with ri.Mounted(env.host, m, "verity") as mp:
            if open(os.path.join(mp, "etc/tag")).read() != "verity\n":
                probs.append("etc/tag through the verity mount: %r"
                             % open(os.path.join(mp, "etc/tag")).read())
    lab.sn("rm", vkey)
    # a byte of the top layer's data changed behind the daemon's back
    layer = os.path.join(ap[-1][0], "layer.erofs")
    run(["chattr", "-i", layer])
    with open(layer, "r+b") as f:
        f.seek(4096 + 7)
        b = f.read(1)
        f.seek(4096 + 7)
        f.write(bytes([b[0] ^ 0x55]))
    r = run([env.erofs_layer, "check", "--verity", layer], check=False)
    if r.rc != 3 or "data block 1 does not match its hash" not in r.err:
        probs.append("check --verity of a changed layer: exit %d, %s" % (r.rc, tail(r.err)))
    if ri.veritysetup_problem(layer, layer + ".dmverity") is None:
        probs.append("veritysetup accepts a changed layer")
    with open(layer, "r+b") as f:
        f.seek(4096 + 7)
        f.write(b)
    run(["chattr", "+i", layer])
    check(not probs, "%d problems" % len(probs), probs)


def content_size(env, digest):
    r = env.lab.ctr("content", "ls")
    for line in r.out.splitlines()[1:]:
        parts = line.split()
        if parts and parts[0] == digest:
            return parts[1]
    return None


def blob_bytes(env, digest):
    return subprocess.run([env.ctr, "--address", env.lab.sock, "content", "get", digest],
                          capture_output=True, timeout=120, check=True).stdout


def guest_changes(mp):
    """What a container would do in its writable layer: add, change, delete,
    replace a directory by a file, delete a directory, re-create one (opaque),
    change only metadata, add an xattr and a hard link."""
    os.makedirs(os.path.join(mp, "new/deep"))
    with open(os.path.join(mp, "new/deep/added.txt"), "w") as f:
        f.write("added by the container\n")
    with open(os.path.join(mp, "etc/plain"), "w") as f:
        f.write("changed by the container\n")
    os.unlink(os.path.join(mp, "etc/zstd"))
    shutil.rmtree(os.path.join(mp, "opt/tree"))
    with open(os.path.join(mp, "opt/tree"), "w") as f:
        f.write("a file where a directory was\n")
    shutil.rmtree(os.path.join(mp, "lib"))
    os.makedirs(os.path.join(mp, "lib"))  # re-created: opaque in the upper
    with open(os.path.join(mp, "lib/fresh"), "w") as f:
        f.write("fresh\n")
    os.chmod(os.path.join(mp, "etc"), 0o750)
    os.setxattr(os.path.join(mp, "new/deep/added.txt"), "user.origin", b"container")
    os.link(os.path.join(mp, "new/deep/added.txt"), os.path.join(mp, "new/hard"))
    long_dir = os.path.join(mp, "n" * 120)
    os.makedirs(long_dir)
    with open(os.path.join(long_dir, "f" * 200), "w") as f:
        f.write("long path\n")


@case("compare-commit")
def t_compare(env):
    """ctr snapshots diff of an active snapshot whose rwlayer.img a
    "container" changed (an overlay over our mounts, as a guest would make):
    our Compare writes the layer tar (whiteouts, opaque dir, PAX long names,
    xattrs, hard links) into containerd's content store with its diffID
    label; applying it to the parent gives the changed tree."""
    lab = env.lab
    info = env.imported("mixed")
    top = info["chain_ids"][-1]
    key = env.name("cmp-active")
    m = ri.parse_mounts(lab.sn("prepare", "--mounts", key, top).out)
    check(len(m) == 2 and m[1]["Type"] == "ext4", "active mounts: %s" % m)
    host = env.host
    # the guest's view, made on the host for the test only (the daemon
    # never mounts rwlayer.img)
    lower = host.mount_snapshot([m[0]], "cmp-lower")
    rw = host.mount(["-t", "ext4", "-o", "loop", m[1]["Source"]], host.mountpoint("cmp-rw"))
    ov = host.mount(["-t", "overlay", "-o", "lowerdir=%s,upperdir=%s/upper,workdir=%s/work"
                     % (lower, rw, rw), "overlay"], host.mountpoint("cmp-ov"))
    guest_changes(ov)
    expected = ri.treecmp.snapshot_dir(ov)
    for mp in (ov, rw, lower):
        host.umount(mp)
    host.release_loops()

    off = lab.log_size()
    # ctr writes the diff's bytes to stdout (under a lease of its own,
    # which reaches us as the containerd-lease header); --keep keeps them
    p = subprocess.run([env.ctr, "--address", lab.sock, "snapshots", "--snapshotter", SN, "diff",
                        "--keep", "--label", "test=compare", key], capture_output=True, timeout=300)
    check(p.returncode == 0, "ctr snapshots diff: %s" % tail(p.stderr))
    log = lab.log_since(off)
    d = re.findall(r'msg=diffed image=\S+ digest=(\S+) diffid=(\S+)', log)
    check(len(d) == 1, "%d 'diffed' lines in the log: %s" % (len(d), tail(log)))
    digest = d[0][0]
    probs = []
    if "sha256:" + hashlib.sha256(p.stdout).hexdigest() != digest:
        probs.append("ctr printed %d bytes that do not hash to %s" % (len(p.stdout), digest))
    if "rpc failed" in log:
        probs.append("log: %s" % [l for l in log.splitlines() if "rpc failed" in l][:2])
    blob = blob_bytes(env, digest)
    if "sha256:" + hashlib.sha256(blob).hexdigest() != digest:
        probs.append("the stored blob does not hash to %s" % digest)
    tar_bytes = zlib.decompress(blob, 31)
    diffid = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    if d and d[0][1] != diffid:
        probs.append("the log's diffID %s, the tar's %s" % (d[0][1], diffid))
    labels = lab.ctr("content", "ls").out
    row = [l for l in labels.splitlines() if l.startswith(digest)]
    if not row or "containerd.io/uncompressed=" + diffid not in row[0] or "test=compare" not in row[0]:
        probs.append("content labels: %s" % row)
    names = tarfile.open(fileobj=io.BytesIO(tar_bytes)).getnames()
    for want in ("etc/.wh.zstd", "lib/.wh..wh..opq", "opt/tree", "new/deep/added.txt",
                 "new/hard", "n" * 120 + "/" + "f" * 200):
        if want not in names:
            probs.append("%s missing from the tar" % want)
    if any(n.startswith("./") or n.startswith("/") for n in names):
        probs.append("names with ./ or /: %s" % names[:3])

    # apply it to the parent (our Apply into a fresh extract snapshot)
    ext = "cmp/%s/extract-1" % key
    em = ri.parse_mounts(lab.sn("prepare", "--mounts", ext, top).out)
    res = probe_apply(env, MEDIA_GZIP, digest, len(blob), em)
    if res["code"] != 0 or res["digest"] != diffid:
        probs.append("applying the diff: %s" % res)
    else:
        name = env.name("cmp-committed")
        lab.sn("commit", name, ext)
        vm = ri.view(lab, lab.sn, env.name("cmp-view"), name)
        with ri.Mounted(host, vm, "cmp-view") as vmp:
            actual = ri.treecmp.snapshot_dir(vmp)
        for snap in (expected, actual):
            for rec in snap.values():
                rec["xattrs"] = {k: v for k, v in rec["xattrs"].items()
                                 if not k.startswith("trusted.overlay.")}
        # layer tars carry whole seconds (containerd's writer truncates too)
        for rec in expected.values():
            rec["mtime"] = (rec["mtime"][0], 0)
        skip = {p: {"nlink", "ino"} for p in expected}
        skip[""] = {"nlink", "mtime", "ino"}
        probs += ri.treecmp.compare(expected, actual, "applied diff", extra_skip=skip)
        a, h = actual.get("new/deep/added.txt"), actual.get("new/hard")
        if not a or not h or a["ino"] != h["ino"]:
            probs.append("new/hard is not a hard link of new/deep/added.txt")
    lab.sn("rm", key)
    check(not probs, "%d problems" % len(probs), probs)


@case("compare-refusals")
def t_compare_refusals(env):
    """Diff of mounts that are not ours answers UNIMPLEMENTED (containerd's
    walking differ takes overlayfs snapshots); a left side that is not the
    active snapshot's lower, an unknown media type: UNIMPLEMENTED too; zstd
    and plain tars and source_date_epoch through diff-probe; a writable
    layer in use, with a redirect, with a journal to recover (left
    unwritten: Compare only reads) or corrupt is refused."""
    lab = env.lab
    info = env.imported("single")
    top = info["chain_ids"][-1]
    probs = []
    # overlayfs: the walking differ makes the diff
    env.imported("single", "overlayfs")
    ok = env.name("cmp-ov")
    lab.ov("prepare", ok, top)
    off = lab.log_size()
    r = lab.ov("diff", ok, check=False)
    if r.rc != 0:
        probs.append("overlayfs diff through the fallback: %s" % tail(r.err))
    if "Diff/Diff code=UNIMPLEMENTED" not in lab.log_since(off):
        probs.append("our differ did not refuse the overlayfs mounts")
    lab.ov("rm", ok)
    # ours, straight through diff-probe
    key = env.name("cmp-probe")
    m = ri.parse_mounts(lab.sn("prepare", "--mounts", key, top).out)
    left, right = m[:1], m
    rw = env.host.mount(["-t", "ext4", "-o", "loop", m[1]["Source"]], env.host.mountpoint("cmp-rw2"))
    with open(os.path.join(rw, "upper", "stamp"), "w") as f:
        f.write("now\n")
    env.host.umount(rw)
    # blobs written without a lease are garbage at containerd's next
    # collection: the lease header we forward is what keeps them
    lease = env.name("probe-lease")
    lab.ctr("leases", "create", "--id", lease)

    def probe_diff(l, r_, mt, epoch=""):
        out = run([env.diff_probe, "diff", lab.sn_sock, NS, mounts_for_probe(l), mounts_for_probe(r_),
                   mt, env.name("probe-ref"), epoch, lease], timeout=300).out
        return json.loads(out)
    for label, l, mt in (("left not the lower", [], MEDIA_GZIP),
                         ("unknown media type", left, "application/x-foo")):
        res = probe_diff(l, right, mt)
        if res["status"] != "UNIMPLEMENTED":
            probs.append("%s: %s %s" % (label, res["status"], res["message"]))
    for mt, unpack in ((MEDIA_TAR, lambda b: b),
                       ("application/vnd.oci.image.layer.v1.tar+zstd",
                        lambda b: subprocess.run(["zstd", "-d", "-c"], input=b, capture_output=True,
                                                 check=True).stdout)):
        res = probe_diff(left, right, mt, "1000")
        if res["code"] != 0 or res["media_type"] != mt:
            probs.append("%s: %s" % (mt, res))
            continue
        # a collection (removing a snapshot triggers one): the leased blob stays
        gc_key = env.name("gc-trigger")
        lab.ov("prepare", gc_key, top)
        lab.ov("rm", gc_key)
        lab.ctr("images", "ls")
        tb = unpack(blob_bytes(env, res["digest"]))
        members = tarfile.open(fileobj=io.BytesIO(tb)).getmembers()
        if [(t.name, t.mtime) for t in members] != [("stamp", 1000)]:
            probs.append("%s with source_date_epoch 1000: %s" % (
                mt, [(t.name, t.mtime) for t in members]))
    # what the guest wrote cannot be diffed: the image still in use on the
    # host (FAILED_PRECONDITION, naming the loop device), an upper with an
    # overlay redirect, a corrupt image (INVALID_ARGUMENT, not UNIMPLEMENTED:
    # no fallback differ could read them either)
    img = m[1]["Source"]
    loop = env.host.losetup(img)
    res = probe_diff(left, right, MEDIA_GZIP)
    env.host.detach(loop)
    if res["status"] != "FAILED_PRECONDITION" or os.path.basename(loop) not in res["message"]:
        probs.append("in use on %s: %s %s" % (loop, res["status"], res["message"]))
    rw = env.host.mount(["-t", "ext4", "-o", "loop", img], env.host.mountpoint("cmp-rw3"))
    os.makedirs(os.path.join(rw, "upper", "moved"))
    os.setxattr(os.path.join(rw, "upper", "moved"), "trusted.overlay.redirect", b"/orig")
    env.host.umount(rw)
    res = probe_diff(left, right, MEDIA_GZIP)
    if res["status"] != "INVALID_ARGUMENT" or "redirect" not in res["message"]:
        probs.append("redirect upper: %s %s" % (res["status"], res["message"]))
    # Compare only reads: a journal left to recover (the guest did not
    # unmount) is refused, and the image is not replayed or repaired
    run(["debugfs", "-w", "-R", "feature needs_recovery", img])
    before = hashlib.sha256(open(img, "rb").read()).hexdigest()
    res = probe_diff(left, right, MEDIA_GZIP)
    if res["status"] != "INVALID_ARGUMENT" or "recovery" not in res["message"]:
        probs.append("journal to recover: %s %s" % (res["status"], res["message"]))
    if hashlib.sha256(open(img, "rb").read()).hexdigest() != before:
        probs.append("Compare wrote to the image whose journal needs recovery")
    with open(img, "r+b") as f:
        f.seek(1024)
        f.write(b"\0" * 1024)  # the primary superblock
        f.seek(0)
    res = probe_diff(left, right, MEDIA_GZIP)
    if res["status"] != "INVALID_ARGUMENT":
        probs.append("corrupt image: %s %s" % (res["status"], res["message"]))
    lab.sn("rm", key)
    lab.ctr("leases", "rm", lease)
    check(not probs, "%d problems" % len(probs), probs)

def snapshot_dir(mounts):
    """The snapshot directory behind an extract snapshot's mounts."""
    for o in (mounts[0].get("Options") or []) if mounts else []:
        if o.startswith("upperdir="):
            return os.path.dirname(o[len("upperdir="):])
    return os.path.dirname(mounts[0]["Source"]) if mounts else None


@case("apply-enospc")
def t_apply_enospc(env):
    """A full disk: a daemon of its own whose --root is a small loop-mounted
    ext4, nearly filled with a ballast file. Apply of the 110 MB layer
    answers RESOURCE_EXHAUSTED with the byte offset where the write failed,
    and leaves nothing in the snapshot's directory (no layer.erofs, no
    temporary file, no sidecar); with the ballast gone the same Apply works,
    and with --dm-verity=on the sidecar's tree too (ENOSPC in the tree)."""
    lab = env.lab
    info = env.imported("big")
    big = max(range(len(info["layers"])), key=lambda i: info["layers"][i]["size"])
    layer = info["layers"][big]
    solo = ri.Solo(env, "enospc")
    img = os.path.join(env.work, "enospc.img")
    if os.path.ismount(solo.root):
        run(["umount", solo.root])
    if os.path.exists(solo.dir):
        subprocess.run(["chattr", "-R", "-i", solo.dir], capture_output=True)
        shutil.rmtree(solo.dir)
    os.makedirs(solo.root)
    with open(img, "wb") as f:
        f.truncate(192 << 20)
    run(["mkfs.ext4", "-q", "-F", "-m", "0", img])
    run(["mount", "-o", "loop", img, solo.root])
    probs = []
    try:
        for verity in ("off", "on"):
            solo.start("--containerd-address", lab.sock, "--dm-verity", verity)
            key = "enospc/%s/extract-0 %s" % (verity, info["chain_ids"][big])
            m = ri.parse_mounts(solo.ctr("prepare", "--mounts", key).out)
            snapdir = snapshot_dir(m)
            st = os.statvfs(solo.root)
            ballast = os.path.join(solo.root, "ballast")
            # leave 24 MiB free: the store's next writes fit, the layer does not
            run(["fallocate", "-l", str(st.f_bavail * st.f_frsize - (24 << 20)), ballast])
            res = json.loads(run([env.diff_probe, "apply", solo.sock, NS, layer["mediaType"],
                                  layer["digest"], str(layer["size"]), mounts_for_probe(m)],
                                 timeout=300).out)
            if res.get("status") != "RESOURCE_EXHAUSTED" or "No space left" not in res.get("message", "") \
                    or not re.search(r"at byte \d+", res.get("message", "")):
                probs.append("%s: Apply on a full disk: %s %r" % (verity, res.get("status"),
                                                                   res.get("message")))
            left = []
            for d in [x for x in (snapdir, os.path.join(solo.root, "snapshots")) if x and os.path.isdir(x)]:
                for dp, _, fs in os.walk(d):
                    left += [os.path.join(dp, f) for f in fs
                             if f.startswith("layer.erofs") or ".tmp" in f or f.endswith(".dmverity")]
            if left:
                probs.append("%s: left after the failed Apply: %s" % (verity, left))
            os.unlink(ballast)
            res = json.loads(run([env.diff_probe, "apply", solo.sock, NS, layer["mediaType"],
                                  layer["digest"], str(layer["size"]), mounts_for_probe(m)],
                                 timeout=300).out)
            if res.get("code") != 0 or res.get("digest") != info["diff_ids"][big]:
                probs.append("%s: Apply once the space is back: %s" % (verity, res))
            elif verity == "on":
                lay = os.path.join(snapdir, "layer.erofs")
                why = ri.veritysetup_problem(lay, lay + ".dmverity")
                if why:
                    probs.append(why)
            solo.ctr("rm", key)
            solo.stop()
    finally:
        solo.stop(expect_zero=False)
        subprocess.run(["chattr", "-R", "-i", solo.root], capture_output=True)
        run(["umount", solo.root], check=False)
        os.unlink(img)
    check(not probs, "%d problems" % len(probs), probs)


@case("rebase-2.2")
def t_rebase(env):
    """containerd 2.2's parallel unpack (the rebase capability), with our own
    client following its protocol: every layer of an image prepared without
    parent (the top first, so each has a newer id than the layer below it),
    applied, then committed onto the layer below (CommitSnapshotRequest.parent,
    field 5), on a daemon of its own that reads the blobs from the lab's
    containerd. The chain's fsmeta.erofs is byte for byte the one a sequential
    unpack made, the parents are linked, and a restart keeps them."""
    lab = env.lab
    info = env.imported("multi")  # its blobs in containerd's store, its chain unpacked in order
    solo = ri.Solo(env, "rebase")
    if os.path.exists(solo.dir):  # what an earlier run left (layers are immutable)
        subprocess.run(["chattr", "-R", "-i", solo.dir], capture_output=True)
        shutil.rmtree(solo.dir)
    solo.start("--containerd-address", lab.sock)
    probs = []
    keys = []
    n = len(info["layers"])
    for i in reversed(range(n)):
        keys.insert(0, "rb/%d/extract-%d %s" % (i, i, info["chain_ids"][i]))
        m = ri.parse_mounts(solo.ctr("prepare", "--mounts", keys[0]).out)
        l = info["layers"][i]
        a = run([env.diff_probe, "apply", solo.sock, NS, l["mediaType"], l["digest"], str(l["size"]),
                 mounts_for_probe(m)], timeout=300)
        res = json.loads(a.out)
        if res.get("code") != 0 or res.get("digest") != info["diff_ids"][i]:
            probs.append("apply of layer %d: %s" % (i, res))
    check(not probs, "%d problems" % len(probs), probs)
    for i in range(n):
        c = run([env.diff_probe, "commit", solo.sock, NS, info["chain_ids"][i], keys[i],
                 info["chain_ids"][i - 1] if i else ""])
        res = json.loads(c.out)
        if res.get("code") != 0:
            probs.append("commit of layer %d onto its parent: %s" % (i, res))
    check(not probs, "%d problems" % len(probs), probs)
    # a parent that does not exist, or is not committed: refused, nothing changes
    solo.ctr("prepare", "rb/x/extract-x sha256:x")
    for parent, code in (("sha256:none", ri.KIND_CODES["not found"]),
                         ("rb/x/extract-x sha256:x", ri.KIND_CODES["invalid argument"])):
        res = json.loads(run([env.diff_probe, "commit", solo.sock, NS, "rb-x", "rb/x/extract-x sha256:x",
                              parent]).out)
        if res.get("status") != code:
            probs.append("commit onto %s: %s, expected %s" % (parent, res, code))
    solo.ctr("rm", "rb/x/extract-x sha256:x")

    def state():
        out = []
        for i, c in enumerate(info["chain_ids"]):
            st = json.loads(solo.ctr("info", c).out)
            if st.get("Parent", "") != (info["chain_ids"][i - 1] if i else "") or \
                    str(st.get("Kind")).lower() != "committed":
                out.append("%s: %s" % (c[:19], st))
        return out
    probs += state()
    sdirs = ri.layer_dirs_of_chain(env, "multi")
    theirs = os.path.join(sdirs[-1], "fsmeta.erofs")
    view = ri.parse_mounts(solo.ctr("view", "--mounts", "rb-view", info["chain_ids"][-1]).out)
    ours = view[0]["Source"] if view else ""
    if not ours.endswith("/fsmeta.erofs") or len(view[0]["Options"]) != 2 + n:
        probs.append("the rebased chain's view: %s" % view)
    elif hashlib.sha256(open(ours, "rb").read()).digest() != hashlib.sha256(open(theirs, "rb").read()).digest():
        probs.append("the rebased chain's fsmeta.erofs differs from the sequential unpack's")
    solo.stop()
    solo.start("--containerd-address", lab.sock)
    probs += ["after a restart: " + p for p in state()]
    solo.ctr("rm", "rb-view")
    for c in reversed(info["chain_ids"]):
        solo.ctr("rm", c)
    solo.stop()
    probs += ri.snapshot_dir_problems(solo.root)
    check(not probs, "%d problems" % len(probs), probs)


# ---- containerd 2.x: a registry, the configs users write -----------------------

def registry(env):
    """The lab's registry (Debian's docker-registry on 127.0.0.1), once."""
    def start():
        env.lab_up()
        r = env.lab.sh("lab_registry_start", check=False)
        check(r.rc == 0, "lab_registry_start: %s" % tail(r.err))
        return r.out.strip()
    return env.once("registry", start)


def pushed(env, image):
    """IMAGE (a builtin of mkimage.py) pushed to the lab's registry with
    skopeo, once; its reference."""
    def push():
        registry(env)
        info = env.image(image)
        r = env.lab.sh("lab_registry_push", info["path"], "%s:1" % image, timeout=300, check=False)
        check(r.rc == 0, "skopeo copy of %s: %s" % (image, tail(r.err)))
        return r.out.strip()
    return env.once("pushed " + image, push)


def pull_args(snapshotter, ref, local=False):
    return ["images", "pull", "--plain-http", "--snapshotter", snapshotter] + (
        ["--local"] if local else []) + [ref]


def scrape_metrics(path):
    """GET /metrics from the daemon's --metrics-address unix socket."""
    import socket
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    check(head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0],
          "metrics: %r" % head[:200])
    return body.decode()


@case("pull-registry", releases=("2.1",))
def t_pull_registry(env):
    """ctr images pull from a real registry (the transfer service, which
    calls exactly the differ its unpack_config names): every layer of a
    gzip/zstd/Docker-gzip image through our Apply, and the merged view equal
    to the same image pulled into overlayfs by the walking differ; the
    daemon's --metrics-address counts those Applies."""
    ref = pushed(env, "pulled")
    info = env.image("pulled")
    msock = os.path.join(env.work, "metrics.sock")
    restart_daemon(env, "--metrics-address", msock)
    try:
        unpack_through_apply(env, info, pull_args(SN, ref), "import pulled into %s" % SN)
        text = scrape_metrics(msock)
    finally:
        restart_daemon(env)
    n = len(info["layers"])
    want = ('spin_erofs_apply_total{result="ok"} %d' % n,
            'spin_erofs_rpc_requests_total{method="/containerd.services.diff.v1.Diff/Apply",'
            'code="OK"} %d' % n)
    for w in want:
        check(w in text.splitlines(), "metrics after the pull of %d layers lack %r: %s"
              % (n, w, [ln for ln in text.splitlines() if "apply" in ln.lower()][:12]))
    r = env.lab.ctr(*pull_args("overlayfs", ref), timeout=600, check=False)
    check(r.rc == 0, "pull into overlayfs: %s" % tail(r.err or r.out))
    env.memo["import pulled into overlayfs"] = (True, info)
    lab = env.lab
    top = info["chain_ids"][-1]
    om = ri.view(lab, lab.ov, env.name("pull-ov"), top)
    sm = ri.view(lab, lab.sn, env.name("pull-sn"), top)
    d, e, a = ri.compare_trees(env.host, om, sm, "pulled")
    probs = list(d)
    for snap, label in ((e, "overlayfs"), (a, "ours")):
        if "usr/share/doc/f00003" in snap or "usr/share/doc/f00004" not in snap:
            probs.append("[%s] the whiteout of usr/share/doc/f00003 is not applied" % label)
        if sorted(p for p in snap if p.startswith("var/cache/")) != ["var/cache/fresh"]:
            probs.append("[%s] var/cache is not opaque" % label)
    check(not probs, "%d problems" % len(probs), probs)


@case("pull-refused", releases=("2.1",))
def t_pull_refused(env):
    """A layer our differ cannot take fails the pull with our message (the
    transfer service has no fallback): the broken tar header's byte offset,
    InvalidArgument, nothing of that layer left behind."""
    ref = pushed(env, "broken")
    info = env.image("broken")
    lab = env.lab
    off = lab.log_size()
    r = lab.ctr(*pull_args(SN, ref), timeout=300, check=False)
    log = lab.log_since(off)
    out = r.err + r.out
    probs = []
    if r.rc == 0:
        probs.append("the pull of a broken layer succeeded")
    if "header checksum mismatch" not in out or "at byte 148 of the tar stream" not in out:
        probs.append("ctr does not show our message: %s" % tail(out, 400))
    if not re.search(r'msg="rpc failed" method=/containerd\.services\.diff\.v1\.Diff/Apply '
                     r'code=INVALID_ARGUMENT', log):
        probs.append("no Apply answered INVALID_ARGUMENT in our log")
    if len(applied_lines(log)) != 1:
        probs.append("%d layers applied, expected the good one only" % len(applied_lines(log)))
    rows = ri.ls_table(lab.sn("ls").out)
    if info["chain_ids"][1] in rows:
        probs.append("the broken layer's snapshot exists: %s" % (rows[info["chain_ids"][1]],))
    # The good layer was committed; once the pull has failed, its lease is
    # gone and containerd's garbage collector may remove the snapshot at any
    # moment (it did, under the sanitizer build), through our Remove: one
    # more than the broken layer's extract snapshot, which the unpacker
    # removes itself. containerd drops the record first and calls Remove
    # after, so the call may come a little later.
    def rpc_ok(method):
        return len(re.findall(r'msg=rpc method=/containerd\.services\.snapshots\.v1\.Snapshots/%s ' % method,
                              lab.log_since(off)))
    if rpc_ok("Commit") != 1:
        probs.append("%d Commits answered, expected the good layer's only" % rpc_ok("Commit"))
    good = rows.get(info["chain_ids"][0], ("", ""))[1]
    if good != "Committed":
        deadline = time.monotonic() + 5
        while not good and rpc_ok("Remove") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        if good or rpc_ok("Remove") < 2:
            probs.append("the good layer is neither committed nor removed by containerd: %r" % (good,))
    probs += ri.snapshot_dir_problems(lab.root)
    check(not probs, "%d problems" % len(probs), probs)


def config_socket_free():
    """CONFIG_SOCKET may be ours to point at the lab's daemon: nothing else
    answers there."""
    if os.path.lexists(CONFIG_SOCKET):
        check(not ri.sock_answers(CONFIG_SOCKET) or os.path.islink(CONFIG_SOCKET),
              "another daemon answers on %s" % CONFIG_SOCKET)
        os.unlink(CONFIG_SOCKET)


def with_config(env, config, body):
    """containerd restarted with CONFIG used verbatim (its socket path made a
    link to the lab's daemon), BODY(env) run, then the lab's own config back."""
    lab = env.lab
    config_socket_free()
    os.makedirs(os.path.dirname(CONFIG_SOCKET), exist_ok=True)
    os.symlink(lab.sn_sock, CONFIG_SOCKET)
    try:
        r = lab.sh("lab_stop_containerd", check=False)
        check(r.rc == 0, "lab_stop_containerd: %s" % tail(r.err))
        off = os.path.getsize(os.path.join(lab.dir, "containerd.log"))
        os.environ["LAB_CONFIG"] = config
        try:
            r = lab.sh("lab_start_containerd", check=False)
        finally:
            del os.environ["LAB_CONFIG"]
        check(r.rc == 0, "containerd with %s: %s" % (config, tail(r.err)))
        with open(os.path.join(lab.dir, "containerd.log"), errors="replace") as f:
            f.seek(off)
            ctd_log = f.read()
        lab.wait_snapshotter()
        body(env, ctd_log)
    finally:
        r = lab.sh("lab_stop_containerd", check=False)
        if os.path.islink(CONFIG_SOCKET):
            os.unlink(CONFIG_SOCKET)
        r2 = lab.sh("lab_start_containerd", check=False)
        check(r.rc == 0 and r2.rc == 0, "containerd back on the lab's config: %s %s"
              % (tail(r.err), tail(r2.err)))
        lab.wait_snapshotter()


def config_pull(env, image, ctd_log, migrated):
    probs = []
    warned = "Configuration migrated from version 2" in ctd_log
    if warned != migrated:
        probs.append("containerd %s the migration warning" % ("did not print" if migrated else "printed"))
    plugins = env.lab.ctr("plugins", "ls").out
    for typ, name in (("io.containerd.snapshotter.v1", SN), ("io.containerd.differ.v1", DIFFER),
                      ("io.containerd.cri.v1", "images")):
        rows = [l for l in plugins.splitlines() if typ in l and (" %s " % name) in l]
        if not rows or rows[0].split()[-1] != "ok":
            probs.append("plugin %s %s: %s" % (typ, name, rows))
    check(not probs, "%d problems" % len(probs), probs)
    ref = pushed(env, image)
    unpack_through_apply(env, env.image(image), pull_args(SN, ref), "import %s into %s" % (image, SN))


@case("config-seed-v2", releases=("2.1",))
def t_config_seed(env):
    """The seed's configuration verbatim (version 2: containerd 2.x migrates
    it, with a warning): both proxy plugins and CRI's images plugin load, and
    a registry pull unpacks every layer through our Apply."""
    with_config(env, os.path.join(HERE, "seed-config.toml"),
                lambda e, log: config_pull(e, "cfg-seed", log, migrated=True))


@case("config-readme-v3", releases=("2.1",))
def t_config_readme(env):
    """docs/containerd-config.toml verbatim, the version 3 form the README
    shows: no migration, both proxy plugins and CRI's images plugin load, a
    registry pull goes through our Apply."""
    with_config(env, os.path.join(REPO, "docs", "containerd-config.toml"),
                lambda e, log: config_pull(e, "cfg-readme", log, migrated=False))


@case("gc")
def t_gc(env):
    """Removing every image: containerd's collector removes our snapshots
    (those our Apply and Compare made included) and their directories."""
    lab = env.lab
    env.lab_up()
    # the tests' own snapshots (views carry a gc.root label), leaves first
    for ctl in (lab.sn, lab.ov):
        for _ in range(20):
            rows = ri.ls_table(ctl("ls").out)
            parents = {p for p, _ in rows.values()}
            leaves = [k for k in rows if not k.startswith("sha256:") and k not in parents]
            if not leaves:
                break
            for k in leaves:
                ctl("rm", k)
    names = lab.ctr("images", "ls", "-q").out.split()
    if names:
        lab.ctr("images", "rm", "--sync", *names, timeout=300)
    left = ri.poll(lambda: not [r for r in ri.ls_table(lab.sn("ls").out)], 60)
    rows = ri.ls_table(lab.sn("ls").out)
    check(left or not rows, "snapshots left after removing every image: %s" % sorted(rows)[:5])
    gone = ri.poll(lambda: not ri.numeric_dirs(lab.root), 30)
    check(gone, "snapshot directories left: %s" % ri.numeric_dirs(lab.root)[:10])


@case("lab-stop")
def t_lab_stop(env):
    """containerd, then the daemon (SIGTERM, exit 0)."""
    ri.t_lab_stop(env)


@case("no-leaks")
def t_no_leaks(env):
    """Nothing left running, mounted or attached."""
    ri.final_cleanup(env)
    probs = ["process " + p for p in ri.procs_mentioning(env.work)]
    probs += ["mount " + m for m in ri.mounts_under(env.work)]
    probs += ["loop device " + l for l in ri.loops_under(env.work)]
    if os.path.isdir(os.path.join(env.lab.root, "snapshots")):
        probs += ri.snapshot_dir_problems(env.lab.root)
    check(not probs, "%d leaks" % len(probs), probs)


# ---- main ----------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--erofs-layer", required=True)
    ap.add_argument("--diff-probe", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--containerd", choices=RELEASES, default=RELEASES[0],
                    help="the containerd release to run on (default %(default)s)")
    a = ap.parse_args()
    cases = [(n, f) for n, f, rel in CASES if a.containerd in rel]
    if a.list:
        for name, fn in cases:
            print("%-24s %s" % (name, (fn.__doc__ or "").strip().split("\n")[0]))
        return 0
    why = ri.cannot_run()
    if why:
        print("skip differ: %s" % why)
        return 77
    a.load_rounds = 0
    try:
        env = ri.Env(a)  # containerd of release a.containerd, fetched once
        env.diff_probe = os.path.abspath(a.diff_probe)
        ri.prepare_workdir(env)
    except (CaseFailed, OSError) as e:
        print("FAIL setup: %s" % (e.reason if isinstance(e, CaseFailed) else e))
        print("0 passed, 1 failed")
        return 1
    os.environ["LAB_DIFFER"] = "1"
    return ri.run_cases(env, cases, a, always=("gc", "lab-stop", "no-leaks"), remove_lab=True)


if __name__ == "__main__":
    sys.exit(main())
