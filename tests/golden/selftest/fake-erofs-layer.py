#!/usr/bin/python3
"""A stand-in for erofs-layer, used only by `run-golden.py --self-test` to
prove the harness: NOT the product, and slow.

convert: strict tar block walk (checksums, truncation, end marker, sizes),
         then the Python model (model.py) materialised as a directory and
         packed by Debian's mkfs.erofs 1.5 (SOURCE_DATE_EPOCH for a fixed
         build time, -U for the UUID); atomic publish in OUT's directory.
ls/cat:  loop-mount the image read-only.
check:   fsck.erofs.
"""

import hashlib
import os
import stat
import struct
import subprocess
import sys
import tempfile
import uuid
import zlib

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import model  # noqa: E402
import tarraw  # noqa: E402

EXIT_USAGE = 2
EXIT_BADINPUT = 3

# Deliberate bugs, one at a time, for selftest/run-mutants.py: the golden
# suite must catch each of them.
BUG = os.environ.get("GOLDEN_FAKE_BUG", "")


class Bad(Exception):
    def __init__(self, msg, offset, what="tar stream"):
        super().__init__("%s (at byte %d of %s)" % (msg, offset, what))


def decompress(data):
    if data[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(31)
        try:
            out = d.decompress(data)
        except zlib.error as e:
            raise Bad("corrupt gzip stream: %s" % e, 0, "gzip stream")
        if not d.eof and BUG != "accept-truncated-gzip":
            raise Bad("truncated gzip stream", len(data), "gzip stream")
        if d.unused_data:
            raise Bad("data after the gzip stream", len(data) - len(d.unused_data), "gzip stream")
        return out
    if data[:4] == b"\x28\xb5\x2f\xfd":
        p = subprocess.run(["zstd", "-d", "-c", "-q"], input=data, capture_output=True)
        if p.returncode != 0:
            raise Bad("corrupt zstd stream: %s" % p.stderr.decode().strip(), len(data),
                      "zstd stream")
        return p.stdout
    return data


def validate(tar):
    """Block-level strictness the tarfile module lacks."""
    off = 0
    pax_size = None
    while True:
        if off + 512 > len(tar):
            raise Bad("truncated: no complete header or end marker", off)
        h = tar[off:off + 512]
        if h == bytes(512):
            if len(tar) < off + 1024 or tar[off + 512:off + 1024] != bytes(512):
                raise Bad("incomplete end-of-archive marker", off)
            return
        try:
            stored = int(h[148:156].split(b"\0", 1)[0].strip() or b"x", 8)
        except ValueError:
            raise Bad("bad header checksum field", off + 148)
        if stored not in tarraw.checksums(h):
            raise Bad("header checksum mismatch", off)
        tf = h[156:157]
        try:
            size = tarraw.parse_num(h[124:136])
        except ValueError:
            raise Bad("bad size field", off + 124)
        dstart = off + 512
        if tf == b"S" and h[482]:
            while True:
                if dstart + 512 > len(tar):
                    raise Bad("truncated sparse header", dstart)
                ext = tar[dstart:dstart + 512]
                dstart += 512
                if not ext[504]:
                    break
        if pax_size is not None and tf not in (b"x", b"g", b"L", b"K"):
            size, pax_size = pax_size, None
        if size < 0 or size > 1 << 40:
            raise Bad("absurd size %d" % size, off + 124)
        if tf == b"x":
            if dstart + size > len(tar):
                raise Bad("truncated pax header", len(tar))
            try:
                for line in tarraw._pax_lines(tar[dstart:dstart + size]):
                    k, _, v = line.partition(b"=")
                    if k == b"size":
                        pax_size = int(v)
                        if pax_size < 0 or pax_size > 1 << 40:
                            raise Bad("absurd pax size", dstart)
            except ValueError:
                raise Bad("bad pax record", dstart)
        stored_len = 0 if tf in (b"1", b"2", b"3", b"4", b"5", b"6") else size
        nxt = dstart + stored_len + (-stored_len % 512)
        if nxt > len(tar):
            raise Bad("truncated entry data", len(tar))
        off = nxt


def convert(argv):
    out = None
    uid = None
    epoch = 0
    inp = None
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "-o":
            out = argv[i + 1]
            i += 2
        elif a == "--uuid":
            uid = str(uuid.UUID(argv[i + 1]))
            i += 2
        elif a == "--epoch":
            epoch = int(argv[i + 1])
            i += 2
        else:
            inp = a
            i += 1
    if not out:
        print("convert: -o OUT required", file=sys.stderr)
        return EXIT_USAGE
    if inp in (None, "-"):
        data = sys.stdin.buffer.read()
    else:
        with open(inp, "rb") as f:
            data = f.read()
    # tmpfs keeps 64-bit timestamps (ext4 stops in 2446)
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(prefix="fake-el-", dir=shm) as tmp:
        try:
            tar = decompress(data)
            validate(tar)
            tpath = os.path.join(tmp, "in.tar")
            with open(tpath, "wb") as f:
                f.write(tar)
            try:
                m = model.build(tpath)
            except model.ModelError as e:
                raise Bad(str(e), e.offset)
            except Exception as e:
                raise Bad("tar: %s" % e, 0)
        except Bad as e:
            if BUG == "no-offset":
                print("erofs-layer convert: bad input", file=sys.stderr)
            else:
                print("erofs-layer convert: %s" % e, file=sys.stderr)
            if BUG == "leave-temp":
                open(os.path.join(os.path.dirname(os.path.abspath(out)), ".tmp-left"), "w").close()
            return 1 if BUG == "rc1" else EXIT_BADINPUT
        for off, tf in (m.skipped if BUG != "no-warning" else ()):
            print("warning: skipped entry of unknown typeflag %r (at byte %d of tar stream)"
                  % (tf, off), file=sys.stderr)
        diffid = hashlib.sha256(tar).hexdigest()
        if BUG == "ignore-trailing":
            end = [x for x in tarraw.walk(tar) if x[0] == "END"][0][1]
            diffid = hashlib.sha256(tar[:end + 1024]).hexdigest()
        if uid is None:
            uid = str(uuid.UUID(bytes=hashlib.sha256(diffid.encode()).digest()[:16]))
            if BUG == "random-uuid" or (BUG == "gzip-differs" and data[:2] == b"\x1f\x8b"):
                uid = str(uuid.uuid4())
        if BUG == "epoch-ignored":
            epoch = 0
        if BUG == "break-hardlinks":
            import copy
            for p in m.tree:
                m.tree[p] = copy.copy(m.tree[p])
        root = os.path.join(tmp, "root")
        model.materialize(m, tpath, root)
        mutate_tree(root)
        outdir = os.path.dirname(os.path.abspath(out))
        fd, tmpimg = tempfile.mkstemp(dir=outdir, prefix="." + os.path.basename(out) + ".")
        os.close(fd)
        try:
            # mkfs.erofs 1.5 clamps mtimes to SOURCE_DATE_EPOCH and -T fixes
            # them all; without either, the build time is "now", which only
            # the superblock (and compact inodes of files whose mtime is
            # exactly now: none here) records. Overwrite it afterwards.
            env = dict(os.environ)
            env.pop("SOURCE_DATE_EPOCH", None)
            p = subprocess.run(["mkfs.erofs", "--quiet", "--preserve-mtime", "-U" + uid,
                                tmpimg, root], capture_output=True, env=env)
            if p.returncode != 0:
                print("mkfs.erofs failed: %s" % p.stderr.decode(), file=sys.stderr)
                return 1
            patch_epoch(tmpimg, epoch)
            os.rename(tmpimg, out)
        finally:
            if os.path.exists(tmpimg):
                os.unlink(tmpimg)
    print("diffid sha256:%s" % diffid)
    print("tar_bytes %d" % len(tar))
    print("entries %d" % m.entries)
    print("inodes %d" % (m.inode_count() + (BUG == "inodes-off")))
    print("image_bytes %d" % os.path.getsize(out))
    return 0


def mutate_tree(root):
    """Post-process the materialised tree for the file-level bugs."""
    if BUG not in ("drop-nsec", "drop-trusted", "no-origin", "ignore-whiteouts", "uid16",
                   "big-tail", "flip-4097"):
        return
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames + ([] if dirpath != root else []):
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if BUG == "drop-nsec":
                ns = st.st_mtime_ns - st.st_mtime_ns % 10**9
                os.utime(p, ns=(ns, ns), follow_symlinks=False)
            elif BUG == "drop-trusted":
                for k in os.listxattr(p, follow_symlinks=False):
                    if k.startswith("trusted.") and not k.startswith("trusted.overlay."):
                        os.removexattr(p, k, follow_symlinks=False)
            elif BUG == "no-origin":
                if "trusted.overlay.origin" in os.listxattr(p, follow_symlinks=False):
                    os.removexattr(p, "trusted.overlay.origin", follow_symlinks=False)
            elif BUG == "ignore-whiteouts":
                if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and stat.S_IMODE(st.st_mode) == 0:
                    os.unlink(p)
                    open(os.path.join(dirpath, ".wh." + name), "w").close()
            elif BUG == "uid16":
                if st.st_uid > 0xFFFF:
                    os.lchown(p, st.st_uid & 0xFFFF, -1)
            elif BUG == "big-tail":
                if stat.S_ISREG(st.st_mode) and st.st_size > 1 << 32:
                    with open(p, "r+b") as f:
                        f.seek(st.st_size - 1)
                        f.write(b"\x01")
                    os.utime(p, ns=(st.st_mtime_ns, st.st_mtime_ns))
            elif BUG == "flip-4097":
                if name == "4097" and stat.S_ISREG(st.st_mode):
                    with open(p, "r+b") as f:
                        f.seek(4096)
                        b = f.read(1)
                        f.seek(4096)
                        f.write(bytes([b[0] ^ 1]))
                    os.utime(p, ns=(st.st_mtime_ns, st.st_mtime_ns))


def _crc32c(data, c=0xFFFFFFFF):
    table = []
    for i in range(256):
        x = i
        for _ in range(8):
            x = (x >> 1) ^ 0x82F63B78 if x & 1 else x >> 1
        table.append(x)
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c


def patch_epoch(path, epoch):
    with open(path, "r+b") as f:
        f.seek(1024)
        sb = bytearray(f.read(4096 - 1024))
        struct.pack_into("<QI", sb, 24, epoch, 0)
        compat, = struct.unpack_from("<I", sb, 8)
        if compat & 1:   # EROFS_FEATURE_COMPAT_SB_CHKSUM
            blk = 1 << sb[12]
            sb[4:8] = bytes(4)
            struct.pack_into("<I", sb, 4, _crc32c(bytes(sb[:blk - 1024])))
        f.seek(1024)
        f.write(sb)


class Mount:
    def __init__(self, image):
        self.image = image

    def __enter__(self):
        self.dir = tempfile.mkdtemp(prefix="fake-el-mnt-")
        subprocess.run(["mount", "-t", "erofs", "-o", "ro,loop", self.image, self.dir],
                       check=True, capture_output=True)
        return self.dir

    def __exit__(self, *a):
        subprocess.run(["umount", self.dir], check=True)
        os.rmdir(self.dir)


def ls(argv):
    long = "-l" in argv
    argv = [a for a in argv if a != "-l"]
    image, path = argv[0], (argv[1] if len(argv) > 1 else "/")
    with Mount(image) as mnt:
        d = os.path.join(mnt, path.lstrip("/"))
        if not os.path.isdir(d) or os.path.islink(d):
            print("ls: %s: not a directory" % path, file=sys.stderr)
            return 1
        names = sorted(os.listdir(d))
        if BUG == "ls-missing":
            names = names[:-1]
        for name in names:
            if not long:
                print(name)
                continue
            st = os.lstat(os.path.join(d, name))
            line = "%s %d %d %d %s" % (stat.filemode(st.st_mode), st.st_uid, st.st_gid,
                                       st.st_size, name)
            if stat.S_ISLNK(st.st_mode):
                line += " -> " + os.readlink(os.path.join(d, name))
            print(line)
    return 0


def cat(argv):
    image, path = argv
    with Mount(image) as mnt:
        p = os.path.join(mnt, path.lstrip("/"))
        if not os.path.isfile(p) or os.path.islink(p):
            print("cat: %s: not a regular file" % path, file=sys.stderr)
            return 1
        with open(p, "rb") as f:
            data = f.read()
        sys.stdout.buffer.write(data[:-1] if BUG == "cat-short" and data else data)
    return 0


def check(argv):
    if BUG == "check-always-ok":
        return 0
    p = subprocess.run(["fsck.erofs", argv[0]], capture_output=True)
    if p.returncode != 0:
        sys.stderr.buffer.write(p.stderr)
        return EXIT_BADINPUT
    return 0


def main():
    if len(sys.argv) < 2:
        return EXIT_USAGE
    cmd = {"convert": convert, "ls": ls, "cat": cat, "check": check}.get(sys.argv[1])
    if cmd is None:
        return EXIT_USAGE
    return cmd(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
