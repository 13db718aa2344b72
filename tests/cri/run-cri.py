#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""CRI tests: the Kubernetes path, containerd 2.1's CRI image service on spin-erofs.

    run-cri.py --daemon PATH --erofs-layer PATH --workdir DIR
               [--only GLOB]... [--keep] [-v] [--list]

The kubelet talks to containerd through the CRI (runtime.v1.ImageService on
containerd's own socket in 2.x). This test does the same with a Python gRPC
client made at run time: the CRI api.proto of Debian sid's
golang-k8s-cri-api-dev (fetched by scripts/fetch-debs.sh into
/var/tmp/spin-debs/cri-api, or $SPIN_DEBS), cleaned of what Debian 12's
grpc-tools protoc cannot read (gogoproto imports and options, field
options), compiled with `python3 -m grpc_tools.protoc` into DIR/cri-api.

The lab is tests/integration/lab.sh with LAB_DIFFER=1 and LAB_CRI=1:
containerd 2.1.9 (Debian sid's, unpacked), CRI enabled, its images on the
proxy snapshotter spin-erofs (exports.root = the daemon's --root), our proxy
differ in the transfer service's unpack_config. LAB_CONFIG_EXTRA adds the
registry's hosts directory (config_path; a hosts.toml for the lab's
plain-HTTP registry), stats_collect_period = 1 (CRI's snapshot usage sync,
10 s by default) and keeps NRI's socket and CNI's conf_dir inside the lab.

Cases, in the kubelet's order: PullImage of a 4-layer image from the lab's
registry (every layer through our Apply, the chain committed in namespace
k8s.io), ImageStatus (verbose) and ListImages, ImageFsInfo (our --root's
file system, the bytes and inodes our daemon reports as Usage, summed the
way CRI sums them), RemoveImage (containerd's collector removes our
snapshots and their directories), then nothing left running, mounted or
attached.

Output and exit status as tests/integration/run-integration.py's: `ok NAME`,
`FAIL NAME: reason` (details indented), `skip NAME: reason`, then
`N passed, M failed[, K skipped]`; exit 77 when the machine cannot run it
(not root, no loop devices/erofs/overlay, no python3-grpcio or
python3-grpc-tools, no skopeo or docker-registry).
"""

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import time
import tomllib
import urllib.request

# The gRPC modules are Debian's packages (python3-grpcio, python3-grpc-tools),
# importable by Debian's interpreter only: started by another python3 (a
# pyenv on PATH, which meson's find_program may pick), run again under it.
DEBIAN_PYTHON = "/usr/bin/python3"
if (importlib.util.find_spec("grpc") is None and os.path.realpath(sys.executable)
        != os.path.realpath(DEBIAN_PYTHON) and os.access(DEBIAN_PYTHON, os.X_OK)
        and not os.environ.get("SPIN_CRI_REEXEC")):
    os.environ["SPIN_CRI_REEXEC"] = "1"
    os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON] + sys.argv)

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
_spec = importlib.util.spec_from_file_location(
    "ri", os.path.join(REPO, "tests", "integration", "run-integration.py"))
ri = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ri)
CaseFailed, CaseSkipped, check, fail, run, tail = (
    ri.CaseFailed, ri.CaseSkipped, ri.check, ri.fail, ri.run, ri.tail)

SN = ri.SN
NS = "k8s.io"  # CRI's containerd namespace
IMAGE = "multi"  # mkimage.py's 4-layer image
CRI_API_PKG = "golang-k8s-cri-api-dev"
CRI_API_PROTO = "usr/share/gocode/src/k8s.io/cri-api/pkg/apis/runtime/v1/api.proto"
STATS_PERIOD = 1  # seconds; [plugins."io.containerd.cri.v1.images"] stats_collect_period
RPC_TIMEOUT = 120

CASES = []


def case(name):
    def deco(fn):
        CASES.append((name, fn))
        return fn
    return deco


# ---- the CRI client ------------------------------------------------------------

def clean_proto(text):
    """api.proto as grpc-tools 1.14's protoc (libprotoc 3.5) reads it: no
    gogoproto imports or options, no field options ([debug_redact = true],
    [(gogoproto.x) = y], [deprecated = true]), no proto3 `optional`. Comments
    are kept as they are."""
    out = []
    for line in text.splitlines():
        code, sep, comment = line.partition("//")
        if re.match(r'\s*import\s+(public\s+|weak\s+)?"[^"]*gogo', code):
            continue
        if re.match(r"\s*option\s+\(gogoproto\.", code):
            continue
        code = re.sub(r"\s*\[[^\]]*\]\s*;", ";", code)
        code = re.sub(r"^(\s*)optional\s+", r"\1", code)
        out.append(code + sep + comment)
    return "\n".join(out) + "\n"


def cri_modules(env):
    """(messages, stubs): the CRI API compiled into WORK/cri-api, once."""
    def build():
        debs = os.environ.get("SPIN_DEBS", "/var/tmp/spin-debs")
        dest = os.path.join(debs, "cri-api")
        r = run([os.path.join(REPO, "scripts", "fetch-debs.sh"), "sid", dest, CRI_API_PKG],
                timeout=600, check=False)
        check(r.rc == 0, "cannot fetch %s from Debian sid: %s" % (CRI_API_PKG, tail(r.err)))
        src = os.path.join(dest, CRI_API_PROTO)
        check(os.path.isfile(src), "no %s in %s" % (CRI_API_PROTO, CRI_API_PKG))
        out = os.path.join(env.work, "cri-api")
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        with open(src) as f:
            text = clean_proto(f.read())
        with open(os.path.join(out, "cri.proto"), "w") as f:
            f.write(text)
        r = run([sys.executable, "-m", "grpc_tools.protoc", "-I", out, "--python_out", out,
                 "--grpc_python_out", out, os.path.join(out, "cri.proto")], timeout=120, check=False)
        check(r.rc == 0, "protoc on the cleaned api.proto: %s" % tail(r.err or r.out, 600))
        sys.path.insert(0, out)
        import cri_pb2
        import cri_pb2_grpc
        check(cri_pb2.DESCRIPTOR.package == "runtime.v1", "api.proto's package is %s"
              % cri_pb2.DESCRIPTOR.package)
        return cri_pb2, cri_pb2_grpc
    return env.once("cri api", build)


class Cri:
    """The kubelet's two CRI clients on containerd's socket."""

    def __init__(self, env):
        import grpc
        self.grpc = grpc
        self.pb, pg = cri_modules(env)
        self.channel = grpc.insecure_channel("unix://" + env.lab.sock)
        self.image = pg.ImageServiceStub(self.channel)
        self.runtime = pg.RuntimeServiceStub(self.channel)

    def call(self, stub, method, req, timeout=RPC_TIMEOUT):
        try:
            return getattr(stub, method)(req, timeout=timeout)
        except self.grpc.RpcError as e:
            fail("CRI %s: %s: %s" % (method, e.code().name, tail(e.details() or "", 600)))

    def spec(self, ref):
        return self.pb.ImageSpec(image=ref)

    def pull(self, ref):
        # as the kubelet sends it: the pod's sandbox config with the image
        sandbox = self.pb.PodSandboxConfig(
            metadata=self.pb.PodSandboxMetadata(name="cri-test", uid="cri-test-uid",
                                                namespace="default", attempt=0))
        return self.call(self.image, "PullImage",
                         self.pb.PullImageRequest(image=self.spec(ref), sandbox_config=sandbox),
                         timeout=600)

    def status(self, ref, verbose=False):
        return self.call(self.image, "ImageStatus",
                         self.pb.ImageStatusRequest(image=self.spec(ref), verbose=verbose))

    def list(self):
        return self.call(self.image, "ListImages", self.pb.ListImagesRequest()).images

    def fsinfo(self):
        return self.call(self.image, "ImageFsInfo", self.pb.ImageFsInfoRequest())

    def remove(self, ref):
        return self.call(self.image, "RemoveImage", self.pb.RemoveImageRequest(image=self.spec(ref)),
                         timeout=300)

    def close(self):
        self.channel.close()


def cri(env):
    if getattr(env, "cri", None) is None:
        env.lab_up()
        env.cri = Cri(env)
    return env.cri


# ---- the lab, the registry, the image ----------------------------------------

def write_config_extra(env):
    """LAB_CONFIG_EXTRA: the hosts directory for the plain-HTTP registry,
    NRI's socket and CNI's conf_dir in the lab
    (by default /run/nri/nri.sock and /etc/cni/net.d, outside it); and
    LAB_CRI_IMAGES_EXTRA: a quick snapshot usage sync."""
    lab = env.lab
    keys = os.path.join(env.work, "cri-images-extra.toml")
    with open(keys, "w") as f:
        # LAB_CRI_IMAGES_EXTRA: keys of lab.sh's own table
        # [plugins."io.containerd.cri.v1.images"] (snapshotter = "spin-erofs")
        f.write("    stats_collect_period = %d\n" % STATS_PERIOD)
    os.environ["LAB_CRI_IMAGES_EXTRA"] = keys
    path = os.path.join(env.work, "config-extra.toml")
    with open(path, "w") as f:
        # lab-start checks what containerd made of it with `config dump`
        f.write("""\
  [plugins."io.containerd.cri.v1.images".registry]
    config_path = "%(hosts)s"

  [plugins."io.containerd.cri.v1.runtime".cni]
    conf_dir = "%(lab)s/cni/net.d"

  [plugins."io.containerd.nri.v1.nri"]
    socket_path = "%(lab)s/nri.sock"
""" % {"hosts": hosts_dir(env), "lab": lab.dir})
    return path


def hosts_dir(env):
    return os.path.join(env.lab.dir, "certs.d")


def registry(env):
    """The lab's registry and its hosts.toml (read at each pull), once."""
    def start():
        env.lab_up()
        r = env.lab.sh("lab_registry_start", check=False)
        check(r.rc == 0, "lab_registry_start: %s" % tail(r.err))
        addr = r.out.strip()
        d = os.path.join(hosts_dir(env), addr)
        os.makedirs(d, exist_ok=True)
        # containerd's docs/hosts.md: server is the default host; [host] entries
        # are tried first; plain http because the URL says so
        with open(os.path.join(d, "hosts.toml"), "w") as f:
            f.write('server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n'
                    % (addr, addr))
        return addr
    return env.once("registry", start)


def pushed(env, image):
    """(reference, the registry's manifest facts) of IMAGE pushed with skopeo."""
    def push():
        addr = registry(env)
        info = env.image(image)
        r = env.lab.sh("lab_registry_push", info["path"], "%s:1" % image, timeout=300, check=False)
        check(r.rc == 0, "skopeo copy of %s: %s" % (image, tail(r.err)))
        ref = r.out.strip()
        check(ref == "%s/%s:1" % (addr, image), "lab_registry_push printed %r" % ref)
        req = urllib.request.Request("http://%s/v2/%s/manifests/1" % (addr, image), headers={
            "Accept": "application/vnd.oci.image.manifest.v1+json, "
                      "application/vnd.docker.distribution.manifest.v2+json"})
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no http_proxy
        with direct.open(req, timeout=30) as resp:
            body = resp.read()
        m = json.loads(body)
        return ref, {
            "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
            "manifest_size": len(body),
            "config": m["config"]["digest"],
            "config_size": m["config"]["size"],
            "layers": [l["digest"] for l in m["layers"]],
            "layer_sizes": [l["size"] for l in m["layers"]],
        }
    return env.once("pushed " + image, push)


def pulled(env):
    """The image pulled through CRI (case pull), for the later cases."""
    def need():
        fail("the CRI pull did not succeed (case pull)")
    return env.once("cri pull", need)


def usage_rows(text):
    """`ctr snapshots usage -b` as {key: (bytes, inodes)}."""
    rows = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if not parts:
            continue
        check(len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit(),
              "usage row %r" % line)
        rows[parts[0]] = (int(parts[1]), int(parts[2]))
    return rows


def k8s_sn(lab, *args, **kw):
    return lab.ctr("--namespace", NS, "snapshots", "--snapshotter", SN, *args, **kw)


def ours_in_k8s(lab):
    """What our daemon itself reports as Usage for namespace k8s.io's
    snapshots (asked on its own socket: keys as containerd stores them,
    k8s.io/<n>/<name>), as {name: (bytes, inodes)}."""
    out = {}
    for key, v in usage_rows(lab.direct("usage", "-b").out).items():
        parts = key.split("/", 2)
        if len(parts) == 3 and parts[0] == NS:
            out[parts[2]] = v
    return out


def applied_lines(log):
    return re.findall(r'msg=applied dir=(\S+) digest=(\S+) diffid=(\S+)', log)


# ---- cases -------------------------------------------------------------------------

@case("lab-start")
def t_lab_start(env):
    """containerd 2.1 with CRI (images on spin-erofs) and our snapshotter and
    differ: the plugins load, CRI's image filesystem path is our --root, the
    CRI socket answers Version and an empty ListImages."""
    env.lab_up()
    lab = env.lab
    probs = []
    v = lab.ctr("version").out
    if not re.search(r"Server:\s*\n\s*Version:\s*v?2\.1\.", v):
        probs.append("containerd's server is not 2.1: %s" % tail(v))
    plugins = lab.ctr("plugins", "ls").out
    for typ, name in (("io.containerd.snapshotter.v1", SN), ("io.containerd.differ.v1", "spin-erofs-diff"),
                      ("io.containerd.cri.v1", "images"), ("io.containerd.cri.v1", "runtime"),
                      ("io.containerd.grpc.v1", "cri")):
        rows = [l for l in plugins.splitlines() if typ in l and (" %s " % name) in l]
        if not rows or rows[0].split()[-1] != "ok":
            probs.append("plugin %s %s: %s" % (typ, name, rows))
    # the config as containerd reads it (LAB_CONFIG_EXTRA's keys in their tables)
    r = run([env.containerd, "--config", os.path.join(lab.dir, "config.toml"), "config", "dump"],
            check=False)
    try:
        cfg = tomllib.loads(r.out)["plugins"]
    except (ValueError, KeyError):
        cfg = {}
        probs.append("containerd config dump: %s" % tail(r.err or r.out))
    images = cfg.get("io.containerd.cri.v1.images", {})
    for what, got, want in (
            ("images snapshotter", images.get("snapshotter"), SN),
            ("images stats_collect_period", images.get("stats_collect_period"), STATS_PERIOD),
            ("images registry.config_path", images.get("registry", {}).get("config_path"), hosts_dir(env)),
            ("runtime cni.conf_dir", cfg.get("io.containerd.cri.v1.runtime", {}).get("cni", {}).get("conf_dir"),
             os.path.join(lab.dir, "cni", "net.d")),
            ("nri socket_path", cfg.get("io.containerd.nri.v1.nri", {}).get("socket_path"),
             os.path.join(lab.dir, "nri.sock"))):
        if got != want:
            probs.append("config %s = %r, expected %r" % (what, got, want))
    log = ri.read_from(os.path.join(lab.dir, "containerd.log"), 0)
    want = 'Get image filesystem path \\"%s\\" for snapshotter \\"%s\\"' % (lab.root, SN)
    if want not in log:
        probs.append("containerd's log lacks: %s" % want)
    c = cri(env)
    ver = c.call(c.runtime, "Version", c.pb.VersionRequest(version="v1"))
    if ver.runtime_name != "containerd" or not re.match(r"v?2\.1\.", ver.runtime_version) \
            or ver.runtime_api_version != "v1":
        probs.append("CRI Version: %s" % str(ver).replace("\n", " "))
    imgs = c.list()
    if imgs:
        probs.append("a fresh lab lists images: %s" % [list(i.repo_tags) for i in imgs])
    if not os.path.exists(os.path.join(lab.dir, "nri.sock")):
        probs.append("NRI's socket is not in the lab (socket_path not applied)")
    check(not probs, "%d problems" % len(probs), probs)


@case("pull")
def t_pull(env):
    """PullImage of a 4-layer image from the lab's plain-HTTP registry (the
    hosts.toml): ImageStatus empty before it, as the kubelet checks; CRI used
    the transfer service with snapshotter spin-erofs; an `applied` line per
    layer in our log (blobs and diffIDs of the image, read from containerd's
    files, no conversion of fs/); the chain Committed in namespace k8s.io;
    each layer.erofs checked; nothing half-made left."""
    c = cri(env)
    lab = env.lab
    info = env.image(IMAGE)
    ref, reg = pushed(env, IMAGE)
    st = c.status(ref)
    check(not st.HasField("image"), "ImageStatus before the pull: %s" % str(st.image).replace("\n", " "))
    off = lab.log_size()
    ctd_log = os.path.join(lab.dir, "containerd.log")
    ctd_off = os.path.getsize(ctd_log)
    t0 = time.time()
    r = c.pull(ref)
    took = time.time() - t0
    log = lab.log_since(off)
    clog = ri.read_from(ctd_log, ctd_off)
    probs = []
    if r.image_ref != reg["config"]:
        probs.append("PullImage returned %s, the image's config is %s" % (r.image_ref, reg["config"]))
    if 'PullImage \\"%s\\" with snapshotter %s using transfer service' % (ref, SN) not in clog:
        probs.append("containerd's log does not show the pull on %s through the transfer service" % SN)
    # (the registry's blobs are not all the archive's: skopeo gzips a plain
    # tar layer on its way to a registry; the diffIDs stay)
    if len(reg["layers"]) != len(info["diff_ids"]):
        probs.append("the registry's manifest has %d layers, the image %d"
                     % (len(reg["layers"]), len(info["diff_ids"])))
    ap = applied_lines(log)
    if [d for _, _, d in ap] != info["diff_ids"]:
        probs.append("applied diffIDs %s, the image's %s" % ([d[:19] for _, _, d in ap],
                                                             [d[:19] for d in info["diff_ids"]]))
    if [b for _, b, _ in ap] != reg["layers"]:
        probs.append("applied blobs %s, the manifest's %s" % ([b[:19] for _, b, _ in ap],
                                                              [b[:19] for b in reg["layers"]]))
    sources = re.findall(r'msg=applied .* read=(\S+)', log)
    if sources != ["file"] * len(ap):
        probs.append("blobs read from %s, expected containerd's files (read=file)" % sources)
    conv = re.findall(r'msg="converted (\S+)/fs: ', log)
    if conv:
        probs.append("Commit converted fs/ (a walking-differ unpack, not ours): %s" % conv)
    for l in log.splitlines():
        if "level=error" in l or "level=warning" in l or "rpc failed" in l:
            probs.append("log: " + l[:200])
    rows = ri.ls_table(k8s_sn(lab, "ls").out)
    chain = info["chain_ids"]
    for i, cid in enumerate(chain):
        if cid not in rows:
            probs.append("chain %d (%s) missing in namespace %s" % (i, cid[:19], NS))
            continue
        parent, kind = rows[cid]
        if kind != "Committed":
            probs.append("%s is %s" % (cid[:19], kind))
        if parent != (chain[i - 1] if i else ""):
            probs.append("%s has parent %r" % (cid[:19], parent))
    if set(rows) - set(chain):
        probs.append("other snapshots in %s: %s" % (NS, sorted(set(rows) - set(chain))))
    default_rows = ri.ls_table(lab.sn("ls").out)
    if default_rows:
        probs.append("snapshots in namespace default: %s" % sorted(default_rows)[:4])
    for d, _, _ in ap:
        p = os.path.join(d, "layer.erofs")
        if not os.path.isfile(p):
            probs.append("%s missing" % p)
            continue
        e = ri.erofs_check(env, p)
        if e:
            probs.append(e)
    probs += ri.snapshot_dir_problems(lab.root, allow_extract=False)
    check(not probs, "%d problems" % len(probs), probs)
    env.memo["cri pull"] = (True, (ref, reg, info, sorted(int(os.path.basename(d)) for d, _, _ in ap)))
    if env.verbose:
        print("    pull took %.2f s" % took)


@case("status")
def t_status(env):
    """ImageStatus (verbose) by tag, digest reference and id: the image's id
    (its config), repo tags and digests, size (manifest + config + layers, as
    CRI counts), the chain id and diffIDs in the verbose info; ListImages
    lists exactly it; an unknown reference is no error, just no image."""
    c = cri(env)
    ref, reg, info, _ = pulled(env)
    repo = ref.rsplit(":", 1)[0]
    want_digests = ["%s@%s" % (repo, reg["digest"])]
    want_size = reg["manifest_size"] + reg["config_size"] + sum(reg["layer_sizes"])
    probs = []

    def image_problems(img, what):
        p = []
        if img.id != reg["config"]:
            p.append("%s: id %s, expected %s" % (what, img.id, reg["config"]))
        if list(img.repo_tags) != [ref]:
            p.append("%s: repo_tags %s, expected [%s]" % (what, list(img.repo_tags), ref))
        if list(img.repo_digests) != want_digests:
            p.append("%s: repo_digests %s, expected %s" % (what, list(img.repo_digests), want_digests))
        if img.size != want_size:
            p.append("%s: size %d, expected %d (manifest %d + config %d + layers %s)"
                     % (what, img.size, want_size, reg["manifest_size"], reg["config_size"],
                        reg["layer_sizes"]))
        return p

    st = c.status(ref, verbose=True)
    if not st.HasField("image"):
        fail("ImageStatus(%s) found no image" % ref)
    probs += image_problems(st.image, "ImageStatus(tag)")
    try:
        vi = json.loads(st.info["info"])
    except (KeyError, ValueError):
        vi = {}
        probs.append("no verbose info: %s" % dict(st.info))
    if vi.get("chainID") != info["chain_ids"][-1]:
        probs.append("verbose chainID %s, expected %s" % (vi.get("chainID"), info["chain_ids"][-1]))
    got_diff_ids = vi.get("imageSpec", {}).get("rootfs", {}).get("diff_ids")
    if got_diff_ids != info["diff_ids"]:
        probs.append("verbose diff_ids %s" % got_diff_ids)
    for other in (want_digests[0], reg["config"]):
        s = c.status(other)
        if not s.HasField("image"):
            probs.append("ImageStatus(%s) found no image" % other)
        else:
            probs += image_problems(s.image, "ImageStatus(%s)" % other[:40])
        if s.info:
            probs.append("ImageStatus(%s) without verbose returned info" % other[:40])
    imgs = c.list()
    if len(imgs) != 1:
        probs.append("ListImages: %d images %s" % (len(imgs), [list(i.repo_tags) for i in imgs]))
    for img in imgs:
        probs += image_problems(img, "ListImages")
    s = c.status("%s/nonexistent:1" % registry(env))
    if s.HasField("image"):
        probs.append("ImageStatus of an unknown image: %s" % str(s.image).replace("\n", " "))
    check(not probs, "%d problems" % len(probs), probs)


@case("imagefs")
def t_imagefs(env):
    """ImageFsInfo: one image filesystem, its mountpoint our --root (what
    exports.root says; not containerd's plugin directory), on the same file
    system; after CRI's periodic usage sync, used bytes and inodes equal to
    the sum of the Usage our daemon reports for namespace k8s.io's
    snapshots in spin-erofs (CRI walks them all, committed or not), non-zero,
    and the committed snapshots' Usage equal to their layer, fsmeta and VMDK files."""
    c = cri(env)
    lab = env.lab
    ref, reg, info, ids = pulled(env)
    chain = info["chain_ids"]
    probs = []
    # what our daemon reports, through containerd and on its own socket
    via_ctd = usage_rows(k8s_sn(lab, "usage", "-b").out)
    direct = ours_in_k8s(lab)
    if via_ctd != direct:
        probs.append("Usage through containerd %s != the daemon's own %s" % (via_ctd, direct))
    if sorted(direct) != sorted(chain):
        probs.append("the daemon's k8s.io snapshots %s, expected the chain" % sorted(direct))
    want_bytes = sum(b for b, _ in direct.values())
    want_inodes = sum(n for _, n in direct.values())
    if not want_bytes or not want_inodes or any(not b or not n for b, n in direct.values()):
        probs.append("zero Usage: %s" % direct)
    # the committed snapshots' Usage is what their directories hold: each
    # layer.erofs, and the fsmeta.erofs and merged.vmdk of a chain's top
    on_disk = 0
    for i in ids:
        d = os.path.join(lab.root, "snapshots", str(i))
        on_disk += sum(os.path.getsize(os.path.join(d, f))
                       for f in ("layer.erofs", "fsmeta.erofs", "merged.vmdk")
                       if os.path.isfile(os.path.join(d, f)))
    if want_bytes != on_disk:
        probs.append("Usage %d bytes, but the snapshot directories' layer.erofs, fsmeta.erofs and "
                     "merged.vmdk hold %d" % (want_bytes, on_disk))

    def synced():
        fs = c.fsinfo()
        u = fs.image_filesystems[0] if fs.image_filesystems else None
        return fs if u and u.used_bytes.value == want_bytes and u.inodes_used.value == want_inodes \
            else None
    t0 = time.time()
    fs = ri.poll(synced, 5 * STATS_PERIOD + 10, interval=0.25)
    if not fs:
        fs = c.fsinfo()
        probs.append("ImageFsInfo after %.0f s: %s; expected used_bytes %d, inodes_used %d"
                     % (time.time() - t0, str(fs).replace("\n", " "), want_bytes, want_inodes))
    if len(fs.image_filesystems) != 1:
        probs.append("%d image filesystems" % len(fs.image_filesystems))
    if fs.container_filesystems:
        probs.append("container filesystems: %s" % str(fs.container_filesystems).replace("\n", " "))
    u = fs.image_filesystems[0]
    mp = u.fs_id.mountpoint
    theirs = os.path.join(lab.dir, "containerd", "root", "io.containerd.snapshotter.v1." + SN)
    if mp != lab.root:
        probs.append("mountpoint %r, expected our --root %s%s"
                     % (mp, lab.root, " (containerd's plugin directory)" if mp == theirs else ""))
    elif os.stat(mp).st_dev != os.stat(os.path.join(lab.root, "snapshots")).st_dev:
        probs.append("%s is not the file system of our snapshots" % mp)
    if not u.timestamp or abs(u.timestamp / 1e9 - time.time()) > 60:
        probs.append("timestamp %d" % u.timestamp)
    check(not probs, "%d problems" % len(probs), probs)
    if env.verbose:
        print("    ImageFsInfo %d bytes %d inodes after %.1f s; the snapshot directories' files %d bytes"
              % (want_bytes, want_inodes, time.time() - t0, on_disk))


@case("remove")
def t_remove(env):
    """RemoveImage: ImageStatus and ListImages no longer show it; containerd's
    collector (run synchronously for the last reference) removes our
    snapshots of it and their directories under --root; ImageFsInfo drops to
    zero at the next sync; removing it again is no error."""
    c = cri(env)
    lab = env.lab
    ref, reg, info, ids = pulled(env)
    off = lab.log_size()
    c.remove(ref)
    probs = []
    for r in (ref, reg["config"]):
        s = c.status(r)
        if s.HasField("image"):
            probs.append("ImageStatus(%s) after RemoveImage: %s" % (r[:40], s.image.id))
    if c.list():
        probs.append("ListImages after RemoveImage: %s" % [list(i.repo_tags) for i in c.list()])
    left = lab.ctr("--namespace", NS, "images", "ls", "-q").out.split()
    if left:
        probs.append("containerd still has images in %s: %s" % (NS, left))

    def gone():
        return not (set(info["chain_ids"]) & set(ri.ls_table(k8s_sn(lab, "ls").out)))
    if not ri.poll(gone, 60):
        probs.append("the collector left %s" % sorted(ri.ls_table(k8s_sn(lab, "ls").out)))
    if not ri.poll(lambda: not ours_in_k8s(lab), 30):
        probs.append("the daemon still has %s" % sorted(ours_in_k8s(lab)))
    dirs = ri.poll(lambda: not (set(ids) & set(ri.numeric_dirs(lab.root))), 30)
    if not dirs:
        probs.append("snapshot directories left: %s" % sorted(set(ids) & set(ri.numeric_dirs(lab.root))))
    removed = re.findall(r'msg=rpc method=/containerd\.services\.snapshots\.v1\.Snapshots/Remove ',
                         lab.log_since(off))
    if len(removed) != len(info["chain_ids"]):
        probs.append("%d Remove calls in our log for %d snapshots" % (len(removed), len(info["chain_ids"])))

    def zero():
        fs = c.fsinfo()
        u = fs.image_filesystems[0]
        return fs if u.used_bytes.value == 0 and u.inodes_used.value == 0 else None
    if not ri.poll(zero, 5 * STATS_PERIOD + 10, interval=0.25):
        probs.append("ImageFsInfo after the removal: %s" % str(c.fsinfo()).replace("\n", " "))
    c.remove(ref)
    probs += ri.snapshot_dir_problems(lab.root)
    check(not probs, "%d problems" % len(probs), probs)


@case("lab-stop")
def t_lab_stop(env):
    """containerd, then the daemon (SIGTERM, exit 0), then the registry."""
    if getattr(env, "cri", None) is not None:
        env.cri.close()
        env.cri = None
    ri.t_lab_stop(env)


@case("no-leaks")
def t_no_leaks(env):
    """Nothing left running, mounted or loop-attached; no snapshot directory
    left under --root."""
    ri.final_cleanup(env)
    probs = ["process " + p for p in ri.procs_mentioning(env.work)]
    probs += ["mount " + m for m in ri.mounts_under(env.work)]
    probs += ["loop device " + l for l in ri.loops_under(env.work)]
    if os.path.isdir(os.path.join(env.lab.root, "snapshots")):
        probs += ri.snapshot_dir_problems(env.lab.root)
        nd = ri.numeric_dirs(env.lab.root)
        if nd:
            probs.append("%s/snapshots still holds %s" % (env.lab.root, nd[:10]))
    check(not probs, "%d leaks" % len(probs), probs)


# ---- main ----------------------------------------------------------------------

def cannot_run():
    why = ri.cannot_run()
    if why:
        return why
    for tool in ("skopeo", "docker-registry", "curl"):
        if not shutil.which(tool):
            return "no %s" % tool
    for mod, pkg in (("grpc", "python3-grpcio"), ("grpc_tools.protoc", "python3-grpc-tools")):
        if importlib.util.find_spec(mod.split(".")[0]) is None:
            return "no Python module %s for %s (Debian's %s)" % (mod, sys.executable, pkg)
    return None


def short_workdir(work):
    """WORK, or a short stand-in under /tmp (the same one for the same WORK)
    when WORK/lab would be too long for unix socket paths."""
    work = os.path.abspath(work)
    if len(os.path.join(work, "lab")) <= 80:
        return work
    return "/tmp/spin-cri-%s" % hashlib.sha256(work.encode()).hexdigest()[:12]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--erofs-layer", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--keep", action="store_true", help="leave the lab running at the end (debugging)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for name, fn in CASES:
            print("%-12s %s" % (name, (fn.__doc__ or "").strip().split("\n")[0]))
        return 0
    why = cannot_run()
    if why:
        print("skip cri: %s" % why)
        return 77
    a.containerd = "2.1"
    a.load_rounds = 0
    a.workdir = short_workdir(a.workdir)
    try:
        env = ri.Env(a)  # containerd 2.1.9 (Debian sid's), fetched once
        for path in (env.daemon, env.erofs_layer):
            check(os.access(path, os.X_OK), "%s is not executable" % path)
        ri.prepare_workdir(env)
        env.cri = None
        os.environ.update(LAB_DIFFER="1", LAB_CRI="1", LAB_CONFIG_EXTRA=write_config_extra(env))
        os.environ.pop("LAB_CONFIG", None)
        cri_modules(env)
    except (CaseFailed, OSError) as e:
        print("FAIL setup: %s" % (e.reason if isinstance(e, CaseFailed) else e))
        print("0 passed, 1 failed")
        return 1
    if env.verbose:
        print("    workdir %s" % env.work)

    def close_client(env):
        if env.cri is not None:
            env.cri.close()
    return ri.run_cases(env, CASES, a, always=("lab-stop", "no-leaks"), before_cleanup=close_client,
                        remove_lab=True)


if __name__ == "__main__":
    sys.exit(main())
