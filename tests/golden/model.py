"""The expected tree of a layer tar, computed in Python from the tarfile module.

Layer semantics (the contract of `erofs-layer convert`):
- entries apply in order; a later entry for the same path wins: a file
  replaces a file, a directory entry on an existing directory updates its
  metadata and keeps its children, a non-directory replaces a directory and
  its whole subtree, a directory replaces a non-directory;
- hard links ('1') point at the inode an earlier entry created; a missing
  target (or a directory) is an error;
- `.wh.NAME` becomes a character device 0:0 NAME with mode 0o020000 exactly,
  and its directory gets trusted.overlay.origin="" (empty value);
- `DIR/.wh..wh..opq` gives DIR trusted.overlay.opaque="y" and is not stored;
- paths: leading '/' and './' dropped, '.' and empty components dropped,
  '..' removes the previous component, a '..' escaping the root is an error;
- './' (or '/') sets the root's metadata;
- implicit parents are directories 0755 root:root (their mtime is not
  compared);
- unknown typeflags are skipped (the converter must warn).

Fields the contract leaves open are marked in each record's `skip` set:
whiteouts' uid/gid/mtime, implicit directories' mtime. A directory with an
opaque marker but no whiteout, or holding a literal character device 0:0 (an
overlay whiteout too), may or may not carry trusted.overlay.origin="".
"""

import base64
import tarfile
import urllib.parse

from treecmp import ContentDigest

OPQ = ".wh..wh..opq"
WH = ".wh."

REG_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE, tarfile.GNUTYPE_SPARSE)
KINDS = {
    tarfile.SYMTYPE: "sym", tarfile.CHRTYPE: "chr", tarfile.BLKTYPE: "blk",
    tarfile.DIRTYPE: "dir", tarfile.FIFOTYPE: "fifo",
}


class ModelError(Exception):
    def __init__(self, msg, offset):
        super().__init__("%s (entry at byte %d)" % (msg, offset))
        self.offset = offset


class Node:
    def __init__(self, kind, perm=0o755, uid=0, gid=0, mtime=(0, 0)):
        self.kind = kind
        self.perm = perm
        self.uid = uid
        self.gid = gid
        self.mtime = mtime
        self.xattrs = {}
        self.size = None
        self.digest = None
        self.target = None
        self.rdev = None
        self.implicit = False
        self.whiteout = False
        self.opaque = False
        self.has_whiteout = False


def normalize(path, offset):
    parts = []
    for c in path.split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if not parts:
                raise ModelError("path %r escapes the root" % path, offset)
            parts.pop()
            continue
        parts.append(c)
    return "/".join(parts)


def parse_pax_time(s):
    """Exact decimal seconds -> (sec, nsec), flooring for negative values."""
    s = s.strip()
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    ip, _, fp = s.partition(".")
    ns = int(ip or "0") * 10**9 + int((fp + "000000000")[:9])
    if neg:
        ns = -ns
    return ns // 10**9, ns % 10**9


def _xattrs_of(m):
    out = {}
    for k, v in m.pax_headers.items():
        if k.startswith("SCHILY.xattr."):
            out[k[len("SCHILY.xattr."):]] = v.encode("utf-8", "surrogateescape")
        elif k.startswith("LIBARCHIVE.xattr."):
            name = urllib.parse.unquote(k[len("LIBARCHIVE.xattr."):])
            raw = v.encode("ascii")
            out[name] = base64.b64decode(raw + b"=" * (-len(raw) % 4))
    return out


class Model:
    def __init__(self):
        root = Node("dir")
        root.implicit = True
        self.tree = {"": root}
        self.entries = 0      # tar members seen (pax/GNU pseudo-headers merged)
        self.skipped = []     # (offset, typeflag) of unknown typeflags skipped

    # -- building --------------------------------------------------------
    def _remove_subtree(self, path):
        if path in self.tree:
            del self.tree[path]
        prefix = path + "/"
        for p in [p for p in self.tree if p.startswith(prefix)]:
            del self.tree[p]

    def _parent(self, path, offset):
        """Make sure all ancestors of path exist as directories; return the parent."""
        if not path:
            return None
        parts = path.split("/")[:-1]
        cur = ""
        node = self.tree[""]
        for c in parts:
            cur = cur + "/" + c if cur else c
            node = self.tree.get(cur)
            if node is None:
                node = Node("dir", 0o755, 0, 0)
                node.implicit = True
                self.tree[cur] = node
            elif node.kind != "dir":
                raise ModelError("parent %r of %r is not a directory" % (cur, path), offset)
        return node

    def _place(self, path, node):
        old = self.tree.get(path)
        if old is not None and old.kind == "dir":
            self._remove_subtree(path)
        self.tree[path] = node

    def add(self, tf, m):
        self.entries += 1
        off = m.offset
        path = normalize(m.name, off)
        base = path.rpartition("/")[2]
        if m.type not in REG_TYPES and m.type != tarfile.LNKTYPE and m.type not in KINDS:
            self.skipped.append((off, m.type))
            return
        if base == OPQ:
            self._parent(path, off).opaque = True
            return
        if base.startswith(WH):
            parent = self._parent(path, off)
            name = base[len(WH):]
            wpath = path[: len(path) - len(base)] + name
            n = Node("chr", 0, m.uid, m.gid)
            n.rdev = (0, 0)
            n.whiteout = True
            self._place(wpath, n)
            parent.has_whiteout = True
            return
        if "mtime" in m.pax_headers:
            mtime = parse_pax_time(m.pax_headers["mtime"])
        else:
            mtime = (int(m.mtime), 0)
        if m.type == tarfile.LNKTYPE:
            target = normalize(m.linkname, off)
            tnode = self.tree.get(target)
            if tnode is None:
                raise ModelError("hard link %r to missing %r" % (path, target), off)
            if tnode.kind == "dir" or target == path:
                raise ModelError("hard link %r to directory or itself %r" % (path, target), off)
            if not path:
                raise ModelError("hard link as root", off)
            self._parent(path, off)
            self._place(path, tnode)
            return
        kind = "reg" if m.type in REG_TYPES else KINDS[m.type]
        if kind == "dir":
            old = self.tree.get(path)
            if old is not None and old.kind == "dir":
                node = old
            else:
                if path:
                    self._parent(path, off)
                node = Node("dir")
                self._place(path, node)
            node.perm = m.mode & 0o7777
            node.uid, node.gid = m.uid, m.gid
            node.mtime = mtime
            node.xattrs = _xattrs_of(m)
            node.implicit = False
            return
        if not path:
            raise ModelError("non-directory root entry", off)
        self._parent(path, off)
        node = Node(kind, m.mode & 0o7777, m.uid, m.gid, mtime)
        node.xattrs = _xattrs_of(m)
        if kind == "reg":
            node.member = m
            node.size = m.size
            node.digest = _file_digest(tf, m)
        elif kind == "sym":
            node.target = m.linkname
            node.size = len(m.linkname.encode("utf-8", "surrogateescape"))
        elif kind in ("chr", "blk"):
            node.rdev = (m.devmajor, m.devminor)
        self._place(path, node)

    # -- output ----------------------------------------------------------
    def snapshot(self):
        """The expected snapshot (see treecmp)."""
        count = {}
        for n in self.tree.values():
            count[id(n)] = count.get(id(n), 0) + 1
        # a literal character device 0:0 is a whiteout to overlayfs too (and
        # to erofs-utils): its directory may get the origin xattr
        zero_dev_dirs = {p.rpartition("/")[0] for p, n in self.tree.items()
                         if n.kind == "chr" and n.rdev == (0, 0) and not n.whiteout}
        snap = {}
        for path, n in self.tree.items():
            xattrs = dict(n.xattrs)
            optx = {}
            skip = set()
            if n.kind == "dir":
                if n.opaque:
                    xattrs["trusted.overlay.opaque"] = b"y"
                if n.has_whiteout:
                    xattrs["trusted.overlay.origin"] = b""
                elif n.opaque or path in zero_dev_dirs:
                    optx["trusted.overlay.origin"] = b""
                if n.implicit:
                    skip.add("mtime")
            if n.whiteout:
                skip |= {"uid", "gid", "mtime"}
            snap[path] = {
                "kind": n.kind, "perm": n.perm, "uid": n.uid, "gid": n.gid,
                "size": n.size, "digest": n.digest, "target": n.target,
                "rdev": n.rdev, "xattrs": xattrs, "mtime": n.mtime,
                "ino": id(n), "nlink": None if n.kind == "dir" else count[id(n)],
                "skip": skip, "optx": optx,
            }
        return snap

    def implicit_paths(self):
        return {p for p, n in self.tree.items() if n.kind == "dir" and n.implicit}

    def inode_count(self):
        return len({id(n) for n in self.tree.values()})


def _file_digest(tf, m):
    d = ContentDigest(m.size)
    if m.sparse is not None:
        f = tf.fileobj
        pos = m.offset_data
        for off, n in m.sparse:
            f.seek(pos)
            done = 0
            while done < n:
                chunk = f.read(min(n - done, 1 << 20))
                if not chunk:
                    raise ModelError("short sparse data", m.offset)
                d.feed(off + done, chunk)
                done += len(chunk)
            pos += n
        return d.hexdigest()
    f = tf.extractfile(m)
    off = 0
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            break
        d.feed(off, chunk)
        off += len(chunk)
    if off != m.size:
        raise ModelError("short data", m.offset)
    return d.hexdigest()


def build(tar_path):
    """Model of a plain (uncompressed) tar file. Raises ModelError on the
    semantic errors of the contract (escaping '..', missing hard link target)."""
    model = Model()
    with tarfile.open(tar_path, "r:", errors="surrogateescape") as tf:
        for m in tf:
            model.add(tf, m)
    return model


def materialize(model, tar_path, dest):
    """Write the model out as a real directory tree at dest (which must not
    exist): used by the self-test converter to feed mkfs.erofs."""
    import os
    import stat as st
    os.mkdir(dest)
    first = {}
    paths = sorted(model.tree, key=lambda p: (p.count("/"), p))
    with tarfile.open(tar_path, "r:", errors="surrogateescape") as tf:
        for p in paths:
            n = model.tree[p]
            fp = os.path.join(dest, p) if p else dest
            if id(n) in first:
                os.link(first[id(n)], fp)
                continue
            first[id(n)] = fp
            if n.kind == "dir":
                if p:
                    os.mkdir(fp)
            elif n.kind == "reg":
                with open(fp, "wb") as out:
                    m = n.member
                    if m.sparse is not None:
                        pos = m.offset_data
                        for off, cnt in m.sparse:
                            tf.fileobj.seek(pos)
                            out.seek(off)
                            out.write(tf.fileobj.read(cnt))
                            pos += cnt
                        out.truncate(m.size)
                    else:
                        src = tf.extractfile(m)
                        while True:
                            b = src.read(1 << 20)
                            if not b:
                                break
                            out.write(b)
            elif n.kind == "sym":
                os.symlink(n.target, fp)
            elif n.kind in ("chr", "blk"):
                fmt = st.S_IFCHR if n.kind == "chr" else st.S_IFBLK
                os.mknod(fp, fmt | 0o600, os.makedev(*n.rdev))
            elif n.kind == "fifo":
                os.mkfifo(fp, 0o600)
    snap = model.snapshot()
    done = set()
    order = sorted(model.tree, key=lambda p: (model.tree[p].kind == "dir", -p.count("/")))
    for p in order:
        n = model.tree[p]
        if id(n) in done:
            continue
        done.add(id(n))
        fp = os.path.join(dest, p) if p else dest
        os.lchown(fp, n.uid, n.gid)
        if n.kind != "sym":
            os.chmod(fp, n.perm)
        for k, v in snap[p]["xattrs"].items():
            os.setxattr(fp, k, v, follow_symlinks=False)
        ns = n.mtime[0] * 10**9 + n.mtime[1]
        os.utime(fp, ns=(ns, ns), follow_symlinks=False)
