"""Helpers of the merge suite: layer tars written header by header, a small
EROFS reader/patcher for crafting hostile images, tree snapshots that cope
with paths longer than PATH_MAX, and the VMDK text the merge must write.

Python 3.11 standard library only. The tar headers come from
tests/golden/tarraw.py (shared with the golden suite)."""

import hashlib
import os
import stat
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "golden"))

import tarraw as T  # noqa: E402
import treecmp  # noqa: E402

BLK = 4096
SB_OFF = 1024
SB_MAGIC = 0xE0F5E1E2
T0 = 1700000000  # default mtime of fixture entries

# ---------------------------------------------------------------------------
# layer tars


def _b(s):
    return s if isinstance(s, bytes) else s.encode("utf-8", "surrogateescape")


class Tar:
    """An OCI layer tar built entry by entry. Paths are relative ('a/b');
    directories get a trailing slash in the archive. Entries that need more
    than ustar (long names and link targets, xattrs, nanoseconds, negative or
    huge times, big ids) get a PAX 'x' header first."""

    def __init__(self):
        self.parts = []

    def _add(self, path, *, typeflag, mode, uid=0, gid=0, mtime=T0, nsec=0, data=b"",
             link=b"", major=0, minor=0, xattrs=None):
        path, link = _b(path), _b(link)
        recs = []
        if len(path) > 100:
            recs.append(("path", path))
        if len(link) > 100:
            recs.append(("linkpath", link))
        if nsec or mtime < 0 or mtime >= 8 ** 11:
            if nsec:
                if mtime < 0:
                    # PAX times are a decimal fraction: -1.25 is 1.25 s before 1970
                    whole, frac = -mtime - 1, 10 ** 9 - nsec
                    recs.append(("mtime", b"-%d.%09d" % (whole, frac)))
                else:
                    recs.append(("mtime", b"%d.%09d" % (mtime, nsec)))
            else:
                recs.append(("mtime", b"%d" % mtime))
        for f, v in (("uid", uid), ("gid", gid)):
            if v >= 8 ** 7:
                recs.append((f, b"%d" % v))
        for k, v in sorted((xattrs or {}).items()):
            recs.append(("SCHILY.xattr." + k, _b(v)))
        if recs:
            self.parts.append(T.pax(recs, name=b"PaxHeaders/" + path[-80:]))
        hdr_mtime = mtime if 0 <= mtime < 8 ** 11 else 0
        self.parts.append(T.entry(path[:100], data, typeflag=typeflag, mode=mode,
                                  uid=uid if uid < 8 ** 7 else 0,
                                  gid=gid if gid < 8 ** 7 else 0, mtime=hdr_mtime,
                                  linkname=link[:100], devmajor=major, devminor=minor,
                                  size=len(data) if typeflag == b"0" else 0))

    def dir(self, path, mode=0o755, **kw):
        p = _b(path)
        self._add(p if p.endswith(b"/") else p + b"/", typeflag=b"5", mode=mode, **kw)
        return self

    def root(self, mode=0o755, **kw):
        return self.dir("./", mode=mode, **kw)

    def file(self, path, data=b"", mode=0o644, **kw):
        self._add(path, typeflag=b"0", mode=mode, data=_b(data), **kw)
        return self

    def hardlink(self, path, target, **kw):
        self._add(path, typeflag=b"1", mode=0o644, link=target, **kw)
        return self

    def symlink(self, path, target, **kw):
        self._add(path, typeflag=b"2", mode=0o777, link=target, **kw)
        return self

    def chr(self, path, major, minor, mode=0o600, **kw):
        self._add(path, typeflag=b"3", mode=mode, major=major, minor=minor, **kw)
        return self

    def blk(self, path, major, minor, mode=0o600, **kw):
        self._add(path, typeflag=b"4", mode=mode, major=major, minor=minor, **kw)
        return self

    def fifo(self, path, mode=0o644, **kw):
        self._add(path, typeflag=b"6", mode=mode, **kw)
        return self

    def whiteout(self, path, **kw):
        d, _, base = _b(path).rpartition(b"/")
        self._add((d + b"/" if d else b"") + b".wh." + base, typeflag=b"0", mode=0o644, **kw)
        return self

    def opaque(self, dirpath, **kw):
        self._add(_b(dirpath).rstrip(b"/") + b"/.wh..wh..opq", typeflag=b"0", mode=0o644, **kw)
        return self

    def bytes(self):
        data = b"".join(self.parts) + T.END
        return data + bytes(-len(data) % 10240)

    def write(self, path):
        with open(path, "wb") as f:
            f.write(self.bytes())
        return path


# ---------------------------------------------------------------------------
# EROFS images: the few structures the suite reads or patches


def crc32c_raw(data, crc=0xFFFFFFFF):
    """Castagnoli CRC without the final inversion (docs/erofs-format.md)."""
    tab = _crc_table()
    for b in data:
        crc = tab[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


_TAB = None


def _crc_table():
    global _TAB
    if _TAB is None:
        t = []
        for i in range(256):
            c = i
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            t.append(c)
        _TAB = t
    return _TAB


class Super:
    def __init__(self, buf):
        sb = buf[SB_OFF:SB_OFF + 128]
        (self.magic, self.checksum, self.compat, self.blkszbits, self.extslots,
         self.root_nid, self.inos, self.epoch, self.fixed_nsec, self.blocks,
         self.meta_blkaddr, self.xattr_blkaddr) = struct.unpack_from("<IIIBBHQQIIII", sb, 0)
        self.uuid = bytes(sb[48:64])
        self.incompat, _, self.extra_devices, self.devt_slotoff = struct.unpack_from("<IHHH", sb, 80)
        self.blksz = 1 << self.blkszbits


def fix_checksum(buf):
    """Recomputes the superblock CRC of a bytearray image if it carries one."""
    sb = Super(buf)
    if not sb.compat & 1:
        return
    end = sb.blksz if sb.blksz > SB_OFF else SB_OFF + sb.blksz
    struct.pack_into("<I", buf, SB_OFF + 4, 0)
    struct.pack_into("<I", buf, SB_OFF + 4, crc32c_raw(bytes(buf[SB_OFF:end])))


def device_slots(buf):
    sb = Super(buf)
    out = []
    if not sb.incompat & 0x8:
        return out
    for i in range(sb.extra_devices):
        off = sb.devt_slotoff * 128 + i * 128
        tag = bytes(buf[off:off + 64]).split(b"\0", 1)[0].decode("ascii", "replace")
        blocks, uniaddr = struct.unpack_from("<II", buf, off + 64)
        out.append((tag, blocks, uniaddr))
    return out


class Inode:
    def __init__(self, buf, sb, nid):
        self.nid = nid
        self.off = sb.meta_blkaddr * sb.blksz + nid * 32
        fmt, icount, mode = struct.unpack_from("<HHH", buf, self.off)
        self.extended = fmt & 1
        self.layout = (fmt >> 1) & 7
        self.mode = mode
        if self.extended:
            self.size, self.u = struct.unpack_from("<QI", buf, self.off + 8)
            self.isize = 64
        else:
            self.size, _, self.u = struct.unpack_from("<III", buf, self.off + 8)
            self.isize = 32
        self.xsize = 12 + 4 * (icount - 1) if icount else 0


def dir_blocks(buf, sb, ino):
    """(byte offset, length) of each block of a FLAT_PLAIN / FLAT_INLINE
    directory's data."""
    out = []
    nfull = ino.size // sb.blksz
    tail = ino.size % sb.blksz
    if ino.layout == 0:
        nfull = (ino.size + sb.blksz - 1) // sb.blksz
        tail = 0
    for i in range(nfull):
        out.append(((ino.u + i) * sb.blksz, min(sb.blksz, ino.size - i * sb.blksz)))
    if ino.layout == 2 and tail:
        out.append((ino.off + ino.isize + ino.xsize, tail))
    elif ino.layout not in (0, 2):
        raise ValueError("directory layout %d" % ino.layout)
    return out


def dirents(buf, sb, ino):
    """[(name bytes, nid, file_type, byte offset of the dirent)]"""
    out = []
    for off, ln in dir_blocks(buf, sb, ino):
        blk = bytes(buf[off:off + ln])
        n = struct.unpack_from("<H", blk, 8)[0] // 12
        ents = [struct.unpack_from("<QHBB", blk, i * 12) for i in range(n)]
        for i, (nid, nameoff, ft, _) in enumerate(ents):
            end = ents[i + 1][1] if i + 1 < n else ln
            name = blk[nameoff:end].split(b"\0", 1)[0]
            out.append((name, nid, ft, off + i * 12))
    return out


def lookup(buf, path):
    sb = Super(buf)
    nid = sb.root_nid
    for comp in [c for c in _b(path).split(b"/") if c]:
        ino = Inode(buf, sb, nid)
        for name, cnid, _, _ in dirents(buf, sb, ino):
            if name == comp:
                nid = cnid
                break
        else:
            raise KeyError(path)
    return nid


def set_dirent_nid(buf, dirpath, name, nid):
    sb = Super(buf)
    dino = Inode(buf, sb, lookup(buf, dirpath))
    for n, _, _, off in dirents(buf, sb, dino):
        if n == _b(name):
            struct.pack_into("<Q", buf, off, nid)
            return
    raise KeyError(name)


def craft_512_image(path):
    """A valid EROFS image with 512-byte blocks (Debian's mkfs.erofs 1.5 has
    no block-size option): root directory with `.`, `..` and a 5-byte regular
    file `f`, FLAT_PLAIN at block 3. 4 blocks, no checksum."""
    buf = bytearray(2048)
    root_nid, f_nid = 36, 40          # bytes 1152 and 1280
    names = [(b".", root_nid, 2), (b"..", root_nid, 2), (b"f", f_nid, 1)]
    dirent = b""
    nameoff = 12 * len(names)
    namebuf = b""
    for name, nid, ft in names:
        dirent += struct.pack("<QHBB", nid, nameoff + len(namebuf), ft, 0)
        namebuf += name
    dirdata = dirent + namebuf
    # compact inode: format, icount, mode, nlink, size, mtime, u, ino, uid, gid, reserved
    struct.pack_into("<HHHHIIIIHHI", buf, 1152, 2 << 1, 0, stat.S_IFDIR | 0o755, 2,
                     len(dirdata), 0, 0, 1, 0, 0, 0)
    buf[1184:1184 + len(dirdata)] = dirdata
    struct.pack_into("<HHHHIIIIHHI", buf, 1280, 0, 0, stat.S_IFREG | 0o644, 1,
                     5, 0, 3, 2, 0, 0, 0)
    buf[1536:1541] = b"hello"
    struct.pack_into("<IIIBBHQQIIII", buf, SB_OFF, SB_MAGIC, 0, 0x2, 9, 0, root_nid, 2,
                     T0, 0, 4, 0, 0)
    buf[SB_OFF + 48:SB_OFF + 64] = bytes(range(1, 17))
    with open(path, "wb") as f:
        f.write(buf)
    return path


# ---------------------------------------------------------------------------
# tree snapshots (treecmp records), walking with directory fds so that paths
# longer than PATH_MAX work

BIG = 256 << 20
WINDOW = 1 << 20


def sampled_digest(fd, size):
    """For files too big to read whole in the time budget: sha256 over fixed
    windows (the same for every file of a size), which land on both sides of
    the 2 GiB and 4 GiB marks and on the written regions of the fixtures."""
    offs = {0, size - WINDOW, (2 << 30) - WINDOW // 2, (4 << 30) - WINDOW // 2, 3000 << 20}
    offs |= {i * (size // 16) for i in range(16)}
    h = hashlib.sha256()
    for off in sorted(o for o in offs if 0 <= o < size):
        n = min(WINDOW, size - off)
        data = os.pread(fd, n, off)
        if len(data) != n:
            raise OSError("short read at %d" % off)
        h.update(struct.pack("<QQ", off, n))
        h.update(data)
    h.update(struct.pack("<Q", size))
    return "sampled:" + h.hexdigest()


def snapshot(root):
    """{rel: record} like treecmp.snapshot_dir, plus 'dir_nlink' on dirs."""
    snap = {}
    rootfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)

    def xattrs(path):
        return {n: os.getxattr(path, n, follow_symlinks=False)
                for n in os.listxattr(path, follow_symlinks=False)}

    def visit(dirfd, name, rel):
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        kind = treecmp._kind(st.st_mode)
        proc = "/proc/self/fd/%d/%s" % (dirfd, name) if dirfd is not None else root
        rec = {
            "kind": kind, "perm": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
            "gid": st.st_gid, "size": None, "digest": None, "target": None, "rdev": None,
            "xattrs": xattrs(proc),
            "mtime": (st.st_mtime_ns // 10 ** 9, st.st_mtime_ns % 10 ** 9),
            "ino": (st.st_dev, st.st_ino),
            "nlink": None if kind == "dir" else st.st_nlink,
            "dir_nlink": st.st_nlink if kind == "dir" else None,
        }
        snap[rel] = rec
        if kind == "reg":
            rec["size"] = st.st_size
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=dirfd)
            try:
                rec["digest"] = (sampled_digest(fd, st.st_size) if st.st_size > BIG
                                 else treecmp.digest_fd(fd, st.st_size))
            except OSError as e:
                rec["digest"] = "unreadable"
                rec["read_error"] = e.strerror or str(e)
            finally:
                os.close(fd)
        elif kind == "sym":
            rec["target"] = os.readlink(name, dir_fd=dirfd)
            rec["size"] = st.st_size
        elif kind in ("chr", "blk"):
            rec["rdev"] = (os.major(st.st_rdev), os.minor(st.st_rdev))
        elif kind == "dir":
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dirfd) \
                if dirfd is not None else os.dup(rootfd)
            try:
                for child in sorted(os.listdir(fd)):
                    visit(fd, child, rel + "/" + child if rel else child)
            finally:
                os.close(fd)

    try:
        visit(None, root, "")
    finally:
        os.close(rootfd)
    return snap


def view_problems(snap, label):
    """What a merged view must never show, and its own link counts."""
    out = []
    subdirs = {}
    groups = {}
    for rel, r in snap.items():
        base = rel.rpartition("/")[2]
        if r.get("read_error"):
            out.append("[%s] /%s: reading fails: %s" % (label, rel, r["read_error"]))
        if base.startswith(".wh."):
            out.append("[%s] /%s: an OCI whiteout name in the merged view" % (label, rel))
        if r["kind"] == "chr" and r["rdev"] == (0, 0):
            out.append("[%s] /%s: an overlay whiteout (chr 0:0) in the merged view" % (label, rel))
        for x in r["xattrs"]:
            if x.startswith("trusted.overlay."):
                out.append("[%s] /%s: xattr %s in the merged view" % (label, rel, x))
        if rel:
            parent = rel.rpartition("/")[0]
            if r["kind"] == "dir":
                subdirs[parent] = subdirs.get(parent, 0) + 1
        if r["kind"] != "dir":
            groups.setdefault(r["ino"], []).append(rel)
    for rel, r in snap.items():
        if r["kind"] == "dir" and r["dir_nlink"] != 2 + subdirs.get(rel, 0):
            out.append("[%s] /%s: directory nlink %d, expected 2 + %d subdirectories"
                       % (label, rel, r["dir_nlink"], subdirs.get(rel, 0)))
    for members in groups.values():
        n = snap[members[0]]["nlink"]
        if n != len(members):
            out.append("[%s] /%s: nlink %d but %d name(s) in the merged view"
                       % (label, members[0], n, len(members)))
    return out


def expected_from_overlay(snap):
    """The overlay view as the reference: overlayfs reports the lower inode's
    nlink (and 1 for merged directories), which a merged image cannot and
    need not copy; link groups are compared instead."""
    for r in snap.values():
        r["nlink"] = None
    return snap


# ---------------------------------------------------------------------------
# VMDK (docs/vm-runtime-contract.md, docs/erofs-format.md)

MAX_EXTENT = 4194304


def vmdk_text(extents, cid):
    """extents: [(absolute path, bytes)]"""
    lines = ["# Disk DescriptorFile", "version=1", "CID=%08x" % cid, "parentCID=ffffffff",
             'createType="twoGbMaxExtentFlat"', "", "# Extent description"]
    total = 0
    for path, size in extents:
        sectors = size // 512
        off = 0
        while off < sectors:
            k = min(MAX_EXTENT, sectors - off)
            lines.append('RW %d FLAT "%s" %d' % (k, path, off))
            off += k
        total += sectors
    lines += ["", "# The Disk Data Base", "#DDB", "", 'ddb.virtualHWVersion = "4"',
              'ddb.geometry.cylinders = "%d"' % -(-total // (63 * 16)),
              'ddb.geometry.heads = "16"', 'ddb.geometry.sectors = "63"',
              'ddb.adapterType = "ide"']
    return "\n".join(lines) + "\n"


def vmdk_problems(text, extents):
    """Rule checks independent of the exact text."""
    out = []
    lines = text.split("\n")
    want = []
    for path, size in extents:
        sectors = size // 512
        off = 0
        while off < sectors:
            want.append((min(MAX_EXTENT, sectors - off), path, off))
            off += MAX_EXTENT
    got = []
    for i, line in enumerate(lines):
        if line.startswith(("RW ", "RDONLY ", "NOACCESS ")):
            if i > 0 and lines[i - 1].strip() == "":
                out.append("blank line directly before extent line %d" % (i + 1))
            parts = line.split(" ")
            if parts[0] != "RW":
                out.append("extent line %d is %s, not RW" % (i + 1, parts[0]))
            try:
                q1 = line.index('"')
                q2 = line.index('"', q1 + 1)
                path = line[q1 + 1:q2]
                sectors = int(parts[1])
                off = int(line[q2 + 1:].strip())
            except ValueError:
                out.append("malformed extent line %d: %r" % (i + 1, line))
                continue
            if parts[2] != "FLAT":
                out.append("extent line %d is not FLAT" % (i + 1))
            if not path.startswith("/"):
                out.append("relative path in extent line %d: %r" % (i + 1, path))
            if sectors > MAX_EXTENT:
                out.append("extent line %d has %d sectors (> 2 GiB)" % (i + 1, sectors))
            got.append((sectors, path, off))
    if got != want:
        out.append("extents %r, expected %r" % (got[:6], want[:6]))
    if not text.startswith("# Disk DescriptorFile\n"):
        out.append("does not start with '# Disk DescriptorFile'")
    if 'createType="twoGbMaxExtentFlat"' not in lines:
        out.append("createType is not twoGbMaxExtentFlat")
    return out


# ---------------------------------------------------------------------------
# sparse-aware file operations (the 5 GiB fixtures)


def _data_segments(fd, size):
    segs = []
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            break
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        segs.append((start, end))
        pos = end
    return segs


def sparse_concat(out, parts):
    """cat parts > out, keeping holes."""
    with open(out, "wb") as o:
        base = 0
        for p in parts:
            fd = os.open(p, os.O_RDONLY)
            try:
                size = os.fstat(fd).st_size
                for start, end in _data_segments(fd, size):
                    off = start
                    while off < end:
                        n = min(end - off, 8 << 20)
                        data = os.pread(fd, n, off)
                        os.pwrite(o.fileno(), data, base + off)
                        off += len(data)
            finally:
                os.close(fd)
            base += size
        o.truncate(base)
    return out


def files_equal(a, b):
    """Byte equality of two possibly sparse files, reading only where either
    has data (holes read as zeros in both)."""
    fa, fb = os.open(a, os.O_RDONLY), os.open(b, os.O_RDONLY)
    try:
        sa, sb = os.fstat(fa).st_size, os.fstat(fb).st_size
        if sa != sb:
            return "sizes %d and %d" % (sa, sb)
        segs = sorted(_data_segments(fa, sa) + _data_segments(fb, sb))
        merged = []
        for s, e in segs:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        for s, e in merged:
            off = s
            while off < e:
                n = min(e - off, 8 << 20)
                x, y = os.pread(fa, n, off), os.pread(fb, n, off)
                if x != y:
                    for i in range(min(len(x), len(y))):
                        if x[i] != y[i]:
                            return "first difference at byte %d" % (off + i)
                    return "short read at %d" % off
                off += n
        return None
    finally:
        os.close(fa)
        os.close(fb)


def file_data_blocks(buf):
    """Blocks holding regular-file data (FLAT_PLAIN) of a sound image, so
    that fuzzing can aim at metadata."""
    sb = Super(buf)
    out = set()
    todo = [sb.root_nid]
    seen = set()
    while todo:
        nid = todo.pop()
        if nid in seen:
            continue
        seen.add(nid)
        ino = Inode(buf, sb, nid)
        if stat.S_ISDIR(ino.mode):
            for name, cnid, _, _ in dirents(buf, sb, ino):
                if name not in (b".", b".."):
                    todo.append(cnid)
        elif stat.S_ISREG(ino.mode) and ino.layout == 0 and ino.size:
            out.update(range(ino.u, ino.u + (ino.size + sb.blksz - 1) // sb.blksz))
    return out
