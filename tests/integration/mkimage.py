#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Multi-layer OCI image archives, built offline from a declarative spec.

    mkimage.py SPEC.json -o IMAGE.tar          a spec of your own (JSON)
    mkimage.py --builtin NAME -o IMAGE.tar     one of the specs below (--list)
    mkimage.py --builtin NAME --print-spec     the spec as JSON, to start from

then `ctr images import --snapshotter spin-erofs IMAGE.tar`. It prints the
image name, each layer's diffID and chainID and the archive's size.

The archive is an OCI image layout in a tar (oci-layout, index.json whose
manifest descriptor carries `io.containerd.image.name` and
`org.opencontainers.image.ref.name`, the manifest, an image config whose
`rootfs.diff_ids` are the uncompressed layer digests, the layer blobs). Same
spec, same bytes: every timestamp, owner and order is fixed, gzip headers
carry no time, pseudo-random content comes from SHAKE-128 of a seed (fast:
~300 MB/s; a layer over 100 MB is a few seconds at gzip level 1).

Spec (JSON; a Python dict when imported):
  {"name": "docker.io/library/demo:latest",
   "mtime": 1700000000,              default mtime of every entry
   "layers": [
     {"compression": "gzip" | "none", "level": 0-9 (gzip, default 6),
      "auto_parents": true,          emit missing parent directories
                                     (0755 root, default mtime) before use
      "entries": [ENTRY, ...]}, ...]}

  ENTRY (every key but path and type is optional):
    {"path": "a/b", "type": T, "mode": 0o644 or "0644", "uid": 0, "gid": 0,
     "mtime": 1700000000 or 1700000000.25 or -86400,
     "xattrs": {"user.k": VALUE, "security.capability": {"hex": "01000002..."}}}
    T = "file"     "data": VALUE (default empty)
        "dir"
        "symlink"  "target": "../x"
        "hardlink" "target": "path/of/an/earlier/file/in/this/layer"
        "char" | "block"  "major": 1, "minor": 3
        "fifo"
        "whiteout" path is what it deletes: writes DIR/.wh.NAME
        "opaque"   path is the directory: writes DIR/.wh..wh..opq
        "many"     "count": N files path/f00000..., "size": S (each file
                   is 0..S bytes of seeded pseudo-random data), "seed": "x"
  VALUE = "text" (UTF-8) | {"hex": "00ff"} | {"b64": "..."} | {"zeros": N}
        | {"random": N, "seed": "s"} | {"repeat": "text", "count": N}

Whiteouts and opaque markers are written as OCI spells them (empty regular
files); xattrs as PAX `SCHILY.xattr.NAME` records (binary values through
`hdrcharset=BINARY`); long names, big ids, nanosecond and negative mtimes
as PAX records (Python's tarfile in PAX format).
"""

import argparse
import base64
import copy
import hashlib
import io
import json
import os
import sys
import subprocess
import tarfile
import tempfile
import zlib

MEDIA_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
CHUNK = 1 << 20
DEFAULT_MTIME = 1700000000


class SpecError(Exception):
    pass


# ---- content -----------------------------------------------------------------

def random_bytes(seed, offset, n):
    """n bytes at offset of the pseudo-random stream named seed: chunk i of
    1 MiB is SHAKE-128("seed:i")."""
    out = bytearray()
    while n > 0:
        idx, within = divmod(offset, CHUNK)
        want = min(CHUNK, within + n)
        chunk = hashlib.shake_128(("%s:%d" % (seed, idx)).encode()).digest(want)
        piece = chunk[within:want]
        out += piece
        offset += len(piece)
        n -= len(piece)
    return bytes(out)


class Content(io.RawIOBase):
    """A file-like reader over a VALUE, generated as it is read (a 100 MB
    file never sits in memory)."""

    def __init__(self, value):
        self.pos = 0
        self.kind = "bytes"
        if value is None:
            self.data = b""
        elif isinstance(value, str):
            self.data = value.encode("utf-8")
        elif isinstance(value, (bytes, bytearray)):
            self.data = bytes(value)
        elif isinstance(value, dict) and "hex" in value:
            self.data = bytes.fromhex(value["hex"])
        elif isinstance(value, dict) and "b64" in value:
            self.data = base64.b64decode(value["b64"])
        elif isinstance(value, dict) and "repeat" in value:
            self.data = value["repeat"].encode("utf-8") * int(value.get("count", 1))
        elif isinstance(value, dict) and "zeros" in value:
            self.kind = "zeros"
            self.size = int(value["zeros"])
        elif isinstance(value, dict) and "random" in value:
            self.kind = "random"
            self.size = int(value["random"])
            self.seed = str(value.get("seed", "0"))
        else:
            raise SpecError("bad data value %r" % (value,))
        if self.kind == "bytes":
            self.size = len(self.data)

    def readable(self):
        return True

    def read(self, n=-1):
        left = self.size - self.pos
        if n is None or n < 0 or n > left:
            n = left
        if n <= 0:
            return b""
        if self.kind == "bytes":
            b = self.data[self.pos:self.pos + n]
        elif self.kind == "zeros":
            b = bytes(n)
        else:
            b = random_bytes(self.seed, self.pos, n)
        self.pos += len(b)
        return b


def value_bytes(value):
    c = Content(value)
    return c.read()


# ---- one layer -----------------------------------------------------------------

class LayerSink:
    """tarfile writes here: sha256 of the tar (the diffID), then gzip (no
    name, no time) or nothing, then sha256 of the blob and the blob file."""

    def __init__(self, out, compression, level, damage=None):
        self.out = out
        # {"offset": N, "byte": B}: the tar byte at N is B (a broken layer
        # whose blob and diffID still match what the image says)
        self.damage = damage
        self.diff = hashlib.sha256()
        self.blob = hashlib.sha256()
        self.tar_size = 0
        self.blob_size = 0
        self.zstd = None
        if compression == "gzip":
            self.z = zlib.compressobj(level, zlib.DEFLATED, 31, 9)
        elif compression == "none":
            self.z = None
        elif compression == "zstd":
            # the zstd tool (Python 3.11 has no zstd module), straight into out
            self.z = None
            out.flush()
            self.zstd = subprocess.Popen(["zstd", "-q", "-%d" % level, "-c"],
                                         stdin=subprocess.PIPE, stdout=out)
        else:
            raise SpecError("unknown compression %r" % compression)

    def _emit(self, b):
        if b:
            self.blob.update(b)
            self.out.write(b)
            self.blob_size += len(b)

    def write(self, b):
        b = bytes(b)
        if self.damage and self.tar_size <= self.damage["offset"] < self.tar_size + len(b):
            k = self.damage["offset"] - self.tar_size
            b = b[:k] + bytes([self.damage["byte"]]) + b[k + 1:]
        self.diff.update(b)
        self.tar_size += len(b)
        if self.zstd:
            self.zstd.stdin.write(b)
        else:
            self._emit(self.z.compress(b) if self.z else b)
        return len(b)

    def tell(self):
        return self.tar_size

    def finish(self):
        if self.z:
            self._emit(self.z.flush())
        if self.zstd:
            self.zstd.stdin.close()
            if self.zstd.wait() != 0:
                raise SpecError("zstd failed")
            with open(self.out.name, "rb") as f:
                while True:
                    b = f.read(CHUNK)
                    if not b:
                        break
                    self.blob.update(b)
                    self.blob_size += len(b)


def parse_mode(v, default):
    if v is None:
        return default
    if isinstance(v, str):
        return int(v, 8)
    return int(v)


def norm(path):
    p = "/".join(c for c in path.split("/") if c not in ("", "."))
    if not p or ".." in p.split("/"):
        raise SpecError("bad path %r" % path)
    return p


def xattr_headers(xattrs):
    pax = {}
    for name, value in sorted((xattrs or {}).items()):
        # tarfile encodes values as UTF-8, or, when one holds surrogates,
        # as raw bytes under hdrcharset=BINARY
        pax["SCHILY.xattr." + name] = value_bytes(value).decode("utf-8", "surrogateescape")
    return pax


def expand_entries(layer, default_mtime):
    """The layer's entries as (TarInfo fields, Content or None) in tar order."""
    entries = []
    for e in layer.get("entries", []):
        if e.get("type") == "many":
            base = norm(e["path"])
            seed = str(e.get("seed", base))
            size = int(e.get("size", 512))
            entries.append({"path": base, "type": "dir", "mode": e.get("mode", 0o755),
                            "mtime": e.get("mtime")})
            for i in range(int(e["count"])):
                h = hashlib.sha256(("%s:%d" % (seed, i)).encode()).digest()
                n = int.from_bytes(h[:4], "little") % (size + 1)
                entries.append({"path": "%s/f%05d" % (base, i), "type": "file",
                                "data": {"random": n, "seed": "%s/%d" % (seed, i)},
                                "mode": e.get("mode_files", 0o644), "mtime": e.get("mtime")})
        else:
            entries.append(e)

    explicit_dirs = {norm(e["path"]) for e in entries if e.get("type") == "dir"}
    emitted = set()
    files = {}  # path -> fields of the regular files so far (hard link defaults)
    out = []
    auto = layer.get("auto_parents", True)
    for e in entries:
        t = e.get("type")
        path = norm(e["path"])
        if t == "whiteout":
            d, _, base = path.rpartition("/")
            name = (d + "/" if d else "") + ".wh." + base
        elif t == "opaque":
            name = path + "/.wh..wh..opq"
        else:
            name = path
        if auto:
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                p = "/".join(parts[:i])
                if p not in emitted and p not in explicit_dirs:
                    out.append((dict(name=p, type=tarfile.DIRTYPE, mode=0o755, uid=0, gid=0,
                                     mtime=default_mtime), None, {}))
                    emitted.add(p)
        mtime = e.get("mtime")
        if mtime is None:
            mtime = default_mtime
        f = dict(name=name, uid=int(e.get("uid", 0)), gid=int(e.get("gid", 0)), mtime=mtime)
        data = None
        if t in ("file", "whiteout", "opaque"):
            f["type"] = tarfile.REGTYPE
            f["mode"] = parse_mode(e.get("mode"), 0o644)
            if t == "file":
                data = Content(e.get("data"))
        elif t == "dir":
            f["type"] = tarfile.DIRTYPE
            f["mode"] = parse_mode(e.get("mode"), 0o755)
            emitted.add(name)
        elif t == "symlink":
            f["type"] = tarfile.SYMTYPE
            f["mode"] = parse_mode(e.get("mode"), 0o777)
            f["linkname"] = e["target"]
        elif t == "hardlink":
            # like GNU tar: the link's header repeats its target's metadata
            # (containerd chmods the shared inode to the link's mode)
            target = files.get(norm(e["target"]), {})
            f["type"] = tarfile.LNKTYPE
            f["mode"] = parse_mode(e.get("mode"), target.get("mode", 0o644))
            for k in ("uid", "gid", "mtime"):
                if k not in e and k in target:
                    f[k] = target[k]
            f["linkname"] = norm(e["target"])
        elif t in ("char", "block"):
            f["type"] = tarfile.CHRTYPE if t == "char" else tarfile.BLKTYPE
            f["mode"] = parse_mode(e.get("mode"), 0o600)
            f["devmajor"] = int(e.get("major", 0))
            f["devminor"] = int(e.get("minor", 0))
        elif t == "fifo":
            f["type"] = tarfile.FIFOTYPE
            f["mode"] = parse_mode(e.get("mode"), 0o644)
        else:
            raise SpecError("%s: unknown type %r" % (path, t))
        if t == "file":
            files[name] = f
        out.append((f, data, xattr_headers(e.get("xattrs"))))
    return out


def write_layer(layer, default_mtime, out):
    """Writes the layer blob to the file object out; returns its descriptor
    fields and diffID."""
    compression = layer.get("compression", "gzip")
    sink = LayerSink(out, compression, int(layer.get("level", 3 if compression == "zstd" else 6)),
                     layer.get("damage"))
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT,
                      encoding="utf-8") as tar:
        tar.copybufsize = CHUNK
        for f, data, pax in expand_entries(layer, default_mtime):
            ti = tarfile.TarInfo(f["name"])
            ti.type = f["type"]
            ti.mode = f["mode"]
            ti.uid, ti.gid = f["uid"], f["gid"]
            ti.uname = ti.gname = ""
            ti.mtime = f["mtime"]
            ti.linkname = f.get("linkname", "")
            ti.devmajor = f.get("devmajor", 0)
            ti.devminor = f.get("devminor", 0)
            ti.pax_headers = pax
            if data is not None:
                ti.size = data.size
                tar.addfile(ti, data)
            else:
                ti.size = 0
                tar.addfile(ti)
    sink.finish()
    return {
        "mediaType": layer.get("media_type") or {"gzip": MEDIA_GZIP, "zstd": MEDIA_ZSTD}.get(
            compression, MEDIA_TAR),
        "digest": "sha256:" + sink.blob.hexdigest(),
        "size": sink.blob_size,
        "diff_id": "sha256:" + sink.diff.hexdigest(),
        "tar_size": sink.tar_size,
    }


def chain_ids(diff_ids):
    out = []
    for d in diff_ids:
        out.append(d if not out else
                   "sha256:" + hashlib.sha256((out[-1] + " " + d).encode()).hexdigest())
    return out


# ---- the image -------------------------------------------------------------------

def _json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build(spec, out_path):
    """Builds the image archive at out_path (atomically). Returns a dict:
    name, diff_ids, chain_ids, layers (descriptors), manifest digest, size."""
    name = spec.get("name", "docker.io/library/test:latest")
    mtime = spec.get("mtime", DEFAULT_MTIME)
    outdir = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(outdir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".mkimage-", dir=outdir) as tmp:
        blobs = {}  # digest -> file path

        def add_blob(data):
            d = "sha256:" + hashlib.sha256(data).hexdigest()
            p = os.path.join(tmp, d.split(":")[1])
            with open(p, "wb") as f:
                f.write(data)
            blobs[d] = p
            return {"digest": d, "size": len(data)}

        layers = []
        for i, layer in enumerate(spec["layers"]):
            p = os.path.join(tmp, "layer-%d" % i)
            with open(p, "wb") as f:
                desc = write_layer(layer, mtime, f)
            blob = os.path.join(tmp, desc["digest"].split(":")[1])
            os.rename(p, blob)
            blobs[desc["digest"]] = blob
            layers.append(desc)
        diff_ids = [l["diff_id"] for l in layers]
        config = {
            "architecture": "amd64", "os": "linux",
            "created": "2023-11-14T22:13:20Z",
            "config": spec.get("config", {"Cmd": ["/bin/sh"]}),
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "mkimage layer %d" % i}
                        for i in range(len(layers))],
        }
        cdesc = dict(mediaType=MEDIA_CONFIG, **add_blob(_json(config)))
        manifest = {
            "schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": cdesc,
            "layers": [{"mediaType": l["mediaType"], "digest": l["digest"], "size": l["size"]}
                       for l in layers],
        }
        mdesc = dict(mediaType=MEDIA_MANIFEST, **add_blob(_json(manifest)))
        mdesc["annotations"] = {"io.containerd.image.name": name,
                                "org.opencontainers.image.ref.name": name.rpartition(":")[2]}
        mdesc["platform"] = {"architecture": "amd64", "os": "linux"}
        index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [mdesc]}

        tmp_tar = os.path.join(tmp, "image.tar")
        with tarfile.open(tmp_tar, "w", format=tarfile.PAX_FORMAT) as tar:
            tar.copybufsize = CHUNK

            def add(name, data=None, path=None, dir=False):
                ti = tarfile.TarInfo(name)
                ti.mtime = 0
                ti.uname = ti.gname = ""
                if dir:
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    tar.addfile(ti)
                elif path:
                    ti.mode = 0o644
                    ti.size = os.path.getsize(path)
                    with open(path, "rb") as f:
                        tar.addfile(ti, f)
                else:
                    ti.mode = 0o644
                    ti.size = len(data)
                    tar.addfile(ti, io.BytesIO(data))

            add("oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
            add("index.json", _json(index))
            add("blobs", dir=True)
            add("blobs/sha256", dir=True)
            for d in sorted(blobs):
                add("blobs/sha256/" + d.split(":")[1], path=blobs[d])
        os.rename(tmp_tar, out_path)
    return {"name": name, "diff_ids": diff_ids, "chain_ids": chain_ids(diff_ids),
            "layers": layers, "manifest": mdesc["digest"], "size": os.path.getsize(out_path)}


# ---- built-in specs ----------------------------------------------------------------

CAP_NET_BIND_V2 = "0100000200040000000000000000000000000000"  # VFS_CAP_REVISION_2, cap 10


def spec_multi():
    """Four layers: every kind of entry, whiteouts, opaque directories, hard
    links, xattrs, devices, odd modes and times, long and UTF-8 names, many
    small files, and the overlay corner cases (a directory re-created above
    a whiteout, opaque then new, file<->directory replacement)."""
    l1 = [
        {"path": "bin", "type": "dir"},
        {"path": "bin/hello", "type": "file", "mode": 0o755, "data": "#!/bin/sh\necho hello\n"},
        {"path": "bin/su", "type": "file", "mode": 0o4755, "data": "setuid\n"},
        {"path": "bin/wall", "type": "file", "mode": 0o2755, "gid": 5, "data": "setgid\n"},
        {"path": "tmp", "type": "dir", "mode": 0o1777},
        {"path": "etc", "type": "dir"},
        {"path": "etc/version", "type": "file", "data": "1\n"},
        {"path": "etc/gone", "type": "file", "data": "to be deleted\n"},
        {"path": "etc/keep", "type": "file", "mode": 0o600, "uid": 1000, "gid": 1000, "data": "keep\n"},
        {"path": "etc/caps", "type": "file", "mode": 0o755, "data": "cap\n",
         "xattrs": {"security.capability": {"hex": CAP_NET_BIND_V2},
                    "user.mime_type": "text/plain"}},
        {"path": "etc/bigids", "type": "file", "uid": 3000000, "gid": 4000000, "data": "ids\n"},
        {"path": "etc/old", "type": "file", "mtime": -86400, "data": "1969\n"},
        {"path": "etc/nanos", "type": "file", "mtime": 1700000000.25, "data": "ns\n"},
        {"path": "dir", "type": "dir", "mode": 0o750, "uid": 2, "gid": 3},
        {"path": "dir/old", "type": "file", "data": "old\n"},
        {"path": "dir/sub", "type": "dir"},
        {"path": "dir/sub/deep", "type": "file", "data": "deep\n"},
        {"path": "share", "type": "dir", "xattrs": {"user.dir": "yes", "trusted.app": "1"}},
        {"path": "share/a", "type": "file", "data": {"repeat": "abcdefghij", "count": 10000}},
        {"path": "share/a-link", "type": "hardlink", "target": "share/a"},
        {"path": "share/a-link2", "type": "hardlink", "target": "share/a"},
        {"path": "share/empty", "type": "file"},
        {"path": "share/zeros", "type": "file", "data": {"zeros": (1 << 20) + 5}},
        {"path": "share/rand", "type": "file", "data": {"random": 3 * CHUNK + 77, "seed": "rand"}},
        {"path": "share/\u00fcn\u00efc\u00f8d\u00e9 \u2713.txt", "type": "file", "data": "utf-8\n"},
        {"path": "long/" + "n" * 150 + "/" + "f" * 255, "type": "file", "data": "long name\n"},
        {"path": "sym", "type": "dir"},
        {"path": "sym/rel", "type": "symlink", "target": "../etc/version"},
        {"path": "sym/abs", "type": "symlink", "target": "/etc/keep"},
        {"path": "sym/dangling", "type": "symlink", "target": "nowhere/at/all"},
        {"path": "sym/dir", "type": "symlink", "target": "../share"},
        {"path": "sym/long", "type": "symlink", "target": "t" * 300},
        {"path": "dev", "type": "dir"},
        {"path": "dev/null", "type": "char", "major": 1, "minor": 3, "mode": 0o666},
        {"path": "dev/loop9", "type": "block", "major": 7, "minor": 9, "mode": 0o660, "gid": 6},
        {"path": "dev/big", "type": "char", "major": 240, "minor": 300000, "mode": 0o600},
        {"path": "dev/fifo", "type": "fifo", "mode": 0o640},
        {"path": "gonedir", "type": "dir"},
        {"path": "gonedir/a", "type": "file", "data": "a\n"},
        {"path": "gonedir/sub/b", "type": "file", "data": "b\n"},
        {"path": "redo", "type": "dir", "mode": 0o700},
        {"path": "redo/stale", "type": "file", "data": "stale\n"},
        {"path": "opq3", "type": "dir"},
        {"path": "opq3/old", "type": "file", "data": "old\n"},
        {"path": "swap/file-to-dir", "type": "file", "data": "f\n"},
        {"path": "swap/dir-to-file", "type": "dir"},
        {"path": "swap/dir-to-file/x", "type": "file", "data": "x\n"},
        {"path": "many", "type": "many", "count": 500, "size": 3000, "seed": "m1"},
    ]
    l2 = [
        {"path": "etc", "type": "dir"},
        {"path": "etc/version", "type": "file", "data": "2\n"},
        {"path": "etc/gone", "type": "whiteout"},
        {"path": "gonedir", "type": "whiteout"},
        {"path": "dir", "type": "dir", "mode": 0o755},
        {"path": "dir", "type": "opaque"},
        {"path": "dir/new", "type": "file", "data": "new\n"},
        {"path": "redo", "type": "whiteout"},
        {"path": "opq3", "type": "dir"},
        {"path": "opq3", "type": "opaque"},
        {"path": "swap", "type": "dir"},
        {"path": "swap/file-to-dir", "type": "dir"},
        {"path": "swap/file-to-dir/y", "type": "file", "data": "y\n"},
        {"path": "swap/dir-to-file", "type": "file", "data": "now a file\n"},
        {"path": "share", "type": "dir", "xattrs": {"user.dir": "yes", "trusted.app": "1"}},
        {"path": "share/a-link2", "type": "file", "data": "no longer a link\n"},
        {"path": "many2", "type": "many", "count": 3000, "size": 1500, "seed": "m2"},
        {"path": "l2hard", "type": "dir"},
        {"path": "l2hard/one", "type": "file", "data": "linked in layer 2\n", "mode": 0o640},
        {"path": "l2hard/two", "type": "hardlink", "target": "l2hard/one"},
    ]
    l3 = [
        {"path": "redo", "type": "dir", "mode": 0o755},
        {"path": "redo/fresh", "type": "file", "data": "fresh\n"},
        {"path": "opq3", "type": "dir"},
        {"path": "opq3/new", "type": "file", "data": "new\n"},
        {"path": "bin", "type": "dir"},
        {"path": "bin/hello", "type": "symlink", "target": "../share/a"},
        {"path": "dir", "type": "dir", "mode": 0o755},
        {"path": "dir/new2", "type": "file", "data": "new2\n", "xattrs": {"user.k": {"hex": "00ff80"}}},
        {"path": "etc", "type": "dir"},
        {"path": "etc/keep", "type": "file", "mode": 0o644, "uid": 1000, "gid": 1000, "data": "keep\n"},
    ]
    l4 = [
        {"path": "etc", "type": "dir"},
        {"path": "etc/version", "type": "whiteout"},
        {"path": "nothing-here", "type": "whiteout"},
        {"path": "freshopq", "type": "dir"},
        {"path": "freshopq", "type": "opaque"},
        {"path": "freshopq/child", "type": "file", "data": "child\n"},
        {"path": "share", "type": "dir", "xattrs": {"user.dir": "no"}},
        {"path": "share/rand", "type": "file", "data": {"random": 200000, "seed": "rand4"}},
        {"path": "many", "type": "dir"},
        {"path": "many/f00007", "type": "whiteout"},
        {"path": "many/f00008", "type": "file", "data": "replaced\n", "mtime": 1600000000},
    ]
    return {"name": "docker.io/library/multi:latest", "layers": [
        {"compression": "gzip", "entries": l1},
        {"compression": "gzip", "level": 9, "entries": l2},
        {"compression": "none", "entries": l3},
        {"compression": "gzip", "level": 1, "entries": l4},
    ]}


def spec_single():
    """One layer: the plain erofs loop mount."""
    return {"name": "docker.io/library/single:latest", "layers": [{"entries": [
        {"path": "bin", "type": "dir"},
        {"path": "bin/tool", "type": "file", "mode": 0o755, "data": "#!/bin/sh\n"},
        {"path": "bin/tool-link", "type": "hardlink", "target": "bin/tool"},
        {"path": "etc", "type": "dir", "mode": 0o711},
        {"path": "etc/conf", "type": "file", "data": {"random": 70000, "seed": "conf"},
         "xattrs": {"user.a": "1", "user.b": {"hex": "deadbeef"}}},
        {"path": "etc/link", "type": "symlink", "target": "conf"},
        {"path": "dev", "type": "dir"},
        {"path": "dev/tty", "type": "char", "major": 5, "minor": 0, "mode": 0o666},
        {"path": "var/lib/empty", "type": "dir", "mode": 0o700, "uid": 101, "gid": 102},
    ]}]}


def spec_big():
    """Two layers, the second over 100 MB (110 MiB + 5 MiB of pseudo-random
    bytes, gzip level 1)."""
    return {"name": "docker.io/library/big:latest", "layers": [
        {"entries": [
            {"path": "bin", "type": "dir"},
            {"path": "bin/sh", "type": "file", "mode": 0o755, "data": "#!sh\n"},
            {"path": "data", "type": "dir"},
            {"path": "data/readme", "type": "file", "data": "big data below\n"},
        ]},
        {"level": 1, "entries": [
            {"path": "data", "type": "dir"},
            {"path": "data/blob", "type": "file", "data": {"random": 110 * CHUNK, "seed": "big"}},
            {"path": "data/second", "type": "file", "data": {"random": 5 * CHUNK + 1234, "seed": "b2"}},
            {"path": "data/small", "type": "many", "count": 200, "size": 4096, "seed": "bs"},
        ]},
    ]}


def spec_mixed():
    """Three layers in three encodings and media-type spellings: a plain tar,
    zstd, and gzip under Docker's name; the last whites out and replaces."""
    return {"name": "docker.io/library/mixed:latest", "layers": [
        {"compression": "none", "entries": [
            {"path": "etc", "type": "dir"},
            {"path": "etc/plain", "type": "file", "data": "from a plain tar\n"},
            {"path": "etc/gone", "type": "file", "data": "whited out later\n"},
            {"path": "opt/tree", "type": "many", "count": 300, "size": 700, "seed": "mx1"},
        ]},
        {"compression": "zstd", "entries": [
            {"path": "etc/zstd", "type": "file", "data": {"random": 300000, "seed": "mz"},
             "xattrs": {"user.enc": "zstd"}},
            {"path": "etc/plain", "type": "file", "data": "replaced in the zstd layer\n"},
            {"path": "lib/link", "type": "symlink", "target": "../etc/zstd"},
        ]},
        {"compression": "gzip", "media_type": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "entries": [
            {"path": "etc/gone", "type": "whiteout"},
            {"path": "opt/tree", "type": "opaque"},
            {"path": "opt/tree/only", "type": "file", "data": "alone\n"},
        ]},
    ]}


def spec_pulled():
    """Three layers for registry pulls (gzip, zstd, Docker-named gzip): hard
    links, symlinks, xattrs, a device, many small files, a whiteout and an
    opaque directory; chain ids of their own (no other image shares them)."""
    return {"name": "docker.io/library/pulled:latest", "layers": [
        {"compression": "gzip", "entries": [
            {"path": "usr/bin/tool", "type": "file", "mode": 0o755, "data": {"random": 90000, "seed": "p1"}},
            {"path": "usr/bin/tool2", "type": "hardlink", "target": "usr/bin/tool"},
            {"path": "usr/lib/link", "type": "symlink", "target": "../bin/tool"},
            {"path": "usr/share/doc", "type": "many", "count": 400, "size": 900, "seed": "pd"},
            {"path": "etc/cap", "type": "file", "data": "cap\n",
             "xattrs": {"security.capability": {"hex": "0000000200200000000000000000000000000000"}}},
            {"path": "dev/null", "type": "char", "major": 1, "minor": 3, "mode": 0o666},
            {"path": "var/cache", "type": "dir", "mode": 0o1777},
        ]},
        {"compression": "zstd", "entries": [
            {"path": "usr/share/doc/f00003", "type": "whiteout"},
            {"path": "var/cache", "type": "opaque"},
            {"path": "var/cache/fresh", "type": "file", "data": "fresh\n", "uid": 33, "gid": 33},
            {"path": "opt/data", "type": "file", "data": {"random": 2 * CHUNK + 17, "seed": "p2"}},
        ]},
        {"compression": "gzip", "media_type": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "entries": [
            {"path": "etc/cap", "type": "file", "data": "replaced\n", "mode": 0o600},
            {"path": "home/user", "type": "dir", "mode": 0o700, "uid": 1000, "gid": 1000},
        ]},
    ]}


def spec_broken():
    """Two layers; the second's first tar header has a byte changed in its
    checksum field (its blob digest and diffID still match the manifest, so
    only the unpacking can tell)."""
    return {"name": "docker.io/library/broken:latest", "layers": [
        {"entries": [{"path": "ok", "type": "file", "data": "the good layer\n"}]},
        {"damage": {"offset": 150, "byte": 0x37}, "entries": [
            {"path": "bad", "type": "file", "data": "never unpacked\n"}]},
    ]}


def spec_tagged(tag):
    """Two small layers of their own, named by TAG (an image whose chain no
    other image shares, for a pull that must unpack)."""
    def spec():
        return {"name": "docker.io/library/%s:latest" % tag, "layers": [
            {"entries": [{"path": "etc/tag", "type": "file", "data": tag + "\n"}]},
            {"compression": "zstd", "entries": [
                {"path": "usr/data", "type": "file", "data": {"random": 300000, "seed": tag}}]},
        ]}
    spec.__doc__ = spec_tagged.__doc__.replace("TAG", tag)
    return spec


BUILTIN = {"multi": spec_multi, "single": spec_single, "big": spec_big, "mixed": spec_mixed,
           "pulled": spec_pulled, "broken": spec_broken,
           "cfg-seed": spec_tagged("cfg-seed"), "cfg-readme": spec_tagged("cfg-readme"),
           "verity": spec_tagged("verity")}


def spec_digest(spec):
    """Identifies a spec together with this generator (for caches)."""
    h = hashlib.sha256(_json(spec))
    with open(os.path.abspath(__file__), "rb") as f:
        h.update(f.read())
    return h.hexdigest()[:16]


def build_cached(spec, out_path):
    """build(), unless out_path was already built from the same spec by the
    same generator (an info file beside it says so)."""
    info_path = out_path + ".json"
    digest = spec_digest(spec)
    try:
        with open(info_path) as f:
            info = json.load(f)
        if info.get("spec_digest") == digest and os.path.getsize(out_path) == info["size"]:
            return info
    except (OSError, ValueError, KeyError):
        pass
    info = build(spec, out_path)
    info["spec_digest"] = digest
    with open(info_path + ".tmp", "w") as f:
        json.dump(info, f, indent=1)
    os.rename(info_path + ".tmp", info_path)
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("spec", nargs="?", help="spec file (JSON)")
    ap.add_argument("--builtin", choices=sorted(BUILTIN))
    ap.add_argument("-o", "--output")
    ap.add_argument("--name", help="override the image name")
    ap.add_argument("--print-spec", action="store_true")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for k in sorted(BUILTIN):
            print("%-8s %s" % (k, BUILTIN[k].__doc__.split("\n")[0]))
        return 0
    if bool(a.spec) == bool(a.builtin):
        ap.error("give a spec file or --builtin NAME")
    if a.builtin:
        spec = BUILTIN[a.builtin]()
    else:
        with open(a.spec) as f:
            spec = json.load(f)
    spec = copy.deepcopy(spec)
    if a.name:
        spec["name"] = a.name
    if a.print_spec:
        json.dump(spec, sys.stdout, indent=1, ensure_ascii=False)
        print()
        return 0
    if not a.output:
        ap.error("-o IMAGE.tar is needed")
    try:
        info = build(spec, a.output)
    except (SpecError, KeyError) as e:
        print("mkimage: %s" % e, file=sys.stderr)
        return 2
    print("name %s" % info["name"])
    for i, (d, c, l) in enumerate(zip(info["diff_ids"], info["chain_ids"], info["layers"])):
        print("layer %d diff_id %s chain_id %s blob %s %d" % (i, d, c, l["digest"], l["size"]))
    print("manifest %s" % info["manifest"])
    print("size %d" % info["size"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
