#!/usr/bin/env python3
# The demo's sample image, built offline and deterministically: an OCI image
# layout of three gzip layers (a file changed in a later layer, a whiteout,
# an opaque directory, a hard link, a 3 MiB file) and its config.
# usage: sample-image.py OUTDIR  (then: tar -cf image.tar -C OUTDIR .)
import hashlib, io, json, os, random, sys, tarfile, gzip
out = sys.argv[1]
def layer(files):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in files:
            ti = tarfile.TarInfo(name); ti.mtime = 1700000000
            if kind == "dir": ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
            elif kind == "link": ti.type = tarfile.LNKTYPE; ti.linkname = data; t.addfile(ti)
            else: ti.size = len(data); ti.mode = 0o755 if name.startswith("bin/") else 0o644; t.addfile(ti, io.BytesIO(data))
    raw = b.getvalue()
    gz = gzip.compress(raw, mtime=0)
    return raw, gz
layers = [
  [("bin", "dir", None), ("bin/hello", "file", b"#!/bin/sh\necho hello from a merged EROFS image\n"), ("etc", "dir", None), ("etc/version", "file", b"1\n"), ("etc/gone", "file", b"x\n"), ("dir", "dir", None), ("dir/old", "file", b"old\n"), ("share", "dir", None), ("share/a", "file", b"a"*100000), ("share/a-link", "link", "share/a")],
  [("etc", "dir", None), ("etc/version", "file", b"2\n"), ("etc/.wh.gone", "file", b""), ("dir", "dir", None), ("dir/.wh..wh..opq", "file", b""), ("dir/new", "file", b"new\n")],
  [("share", "dir", None), ("share/big", "file", random.Random(7).randbytes(3 << 20))],
]
os.makedirs(out + "/blobs/sha256", exist_ok=True)
def blob(data):
    d = hashlib.sha256(data).hexdigest(); open(f"{out}/blobs/sha256/{d}", "wb").write(data); return "sha256:" + d
ldescs, diffids = [], []
for files in layers:
    raw, gz = layer(files)
    diffids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    ldescs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(gz), "size": len(gz)})
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/hello"]}, "rootfs": {"type": "layers", "diff_ids": diffids}}).encode()
cdesc = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": blob(config), "size": len(config)}
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cdesc, "layers": ldescs}).encode()
mdesc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": blob(manifest), "size": len(manifest), "annotations": {"io.containerd.image.name": "docker.io/library/demo:latest", "org.opencontainers.image.ref.name": "latest"}, "platform": {"architecture": "amd64", "os": "linux"}}
json.dump({"schemaVersion": 2, "manifests": [mdesc]}, open(out + "/index.json", "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(out + "/oci-layout", "w"))
