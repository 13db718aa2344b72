#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Regenerates the seed inputs of fuzz/corpus/ (the committed corpora also hold
# inputs found by fuzzing and regress-* files: this script only (re)writes the
# seed-* files). Needs GNU tar, gzip, zstd, python3, setfattr, mkfs.erofs
# (Debian 12's erofs-utils 1.5) and, for images of our own writer, an
# erofs-layer binary:
#
#   fuzz/make-seeds.sh [--erofs-layer build/src/tools/erofs-layer]
#
# Every seed is kept under 16 KiB: tars use 512-byte records (-b1), trees are
# tiny, timestamps and owners are fixed so that reruns give the same bytes.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
erofs_layer=
while [ $# -gt 0 ]; do
	case $1 in
	--erofs-layer) erofs_layer=$2; shift 2 ;;
	*) echo "usage: $0 [--erofs-layer PATH]" >&2; exit 2 ;;
	esac
done

ctar="$here/corpus/fuzz-tar"
cconv="$here/corpus/fuzz-convert"
cimg="$here/corpus/fuzz-image"
mkdir -p "$ctar" "$cconv" "$cimg"
rm -f "$ctar"/seed-* "$cconv"/seed-* "$cimg"/seed-*

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TZ=UTC LC_ALL=C
tarflags=(--sort=name --owner=0 --group=0 --numeric-owner --mtime=@1700000000 -b1)

# The tree: a long name, a symlink with a long target, a hard link, an OCI
# whiteout and an opaque marker, an xattr, an empty dir, a fifo, a device.
t="$work/tree"
mkdir -p "$t/etc" "$t/opq" "$t/empty" "$t/d1"
echo hello > "$t/etc/hello"
ln "$t/etc/hello" "$t/etc/hard"
ln -s ../etc/hello "$t/etc/link"
long=$(printf 'n%.0s' $(seq 1 150))
echo long > "$t/d1/$long"
ln -s "$(printf 't%.0s' $(seq 1 120))/target" "$t/d1/longlink"
: > "$t/etc/.wh.x"
: > "$t/opq/.wh..wh..opq"
: > "$t/opq/kept"
mkfifo "$t/etc/fifo"
chmod 4755 "$t/etc/hello"
chmod 1777 "$t/empty"
setfattr -n user.seed -v value "$t/etc/hello" 2>/dev/null || true
mknod "$t/etc/null" c 1 3 2>/dev/null || true # needs root

# ustar cannot hold a 150-byte name: its tree splits a long path instead.
u="$work/ustar"
mkdir -p "$u/$(printf 'p%.0s' $(seq 1 80))"
echo split > "$u/$(printf 'p%.0s' $(seq 1 80))/$(printf 'q%.0s' $(seq 1 60))"
ln -s hello "$u/link"
: > "$u/.wh.gone"

tar -C "$t" "${tarflags[@]}" --format=gnu -cf "$ctar/seed-gnu.tar" .
tar -C "$t" "${tarflags[@]}" --format=posix --xattrs --xattrs-include='*' \
	--pax-option=delete=atime,delete=ctime -cf "$ctar/seed-pax.tar" .
tar -C "$u" "${tarflags[@]}" --format=ustar -cf "$ctar/seed-ustar.tar" .
tar -C "$u" "${tarflags[@]}" --format=v7 --exclude="./p*" -cf "$ctar/seed-v7.tar" .

# Sparse files: old GNU 'S' headers and the three PAX sparse versions.
s="$work/sparse"
mkdir -p "$s"
truncate -s 3M "$s/sp"
printf 'A' | dd of="$s/sp" bs=1 seek=4096 conv=notrunc status=none
printf 'B' | dd of="$s/sp" bs=1 seek=$((1 << 20)) conv=notrunc status=none
printf 'C' | dd of="$s/sp" bs=1 seek=$(((3 << 20) - 1)) conv=notrunc status=none
tar -C "$s" "${tarflags[@]}" --sparse --format=gnu -cf "$ctar/seed-sparse-gnu.tar" .
for v in 0.0 0.1 1.0; do
	tar -C "$s" "${tarflags[@]}" --sparse --sparse-version=$v --format=posix \
		--pax-option=delete=atime,delete=ctime -cf "$ctar/seed-sparse-pax$v.tar" .
done

# Hand-made PAX records GNU tar does not write (python's tarfile).
python3 - "$ctar" <<'EOF'
import io, sys, tarfile, base64
out = sys.argv[1]

def add(tf, name, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.mtime = 1700000000
    for k, v in kw.items():
        setattr(ti, k, v)
    ti.size = len(data) if ti.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    tf.addfile(ti, io.BytesIO(data) if ti.size else None)

# SCHILY and LIBARCHIVE xattrs, a global header, sub-second mtimes, a large uid.
b = io.BytesIO()
with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT,
                  pax_headers={"comment": "global"}) as tf:
    add(tf, "x/file", b"data", pax_headers={
        "SCHILY.xattr.user.a": "1",
        "SCHILY.xattr.security.capability": "\x01\x00\x00\x02",
        "LIBARCHIVE.xattr.user.b": base64.b64encode(b"two").decode(),
        "mtime": "1700000000.123456789",
        "uid": "4000000000",
    })
    add(tf, "x/.wh..wh..opq")
    add(tf, "x/.wh.old")
    add(tf, "x/dir", type=tarfile.DIRTYPE, mode=0o2755)
    add(tf, "x/hl", type=tarfile.LNKTYPE, linkname="x/file")
    add(tf, "x/blk", type=tarfile.BLKTYPE, devmajor=8, devminor=1)
open(f"{out}/seed-pax-xattrs.tar", "wb").write(b.getvalue())

# GNU long name and long link ('L', 'K') and base-256 numbers.
b = io.BytesIO()
with tarfile.open(fileobj=b, mode="w", format=tarfile.GNU_FORMAT) as tf:
    add(tf, "g/" + "L" * 200, b"x")
    add(tf, "g/sl", type=tarfile.SYMTYPE, linkname="K" * 300)
    add(tf, "g/big-uid", b"", uid=1 << 30, gid=(1 << 31) + 5)  # base-256
open(f"{out}/seed-gnu-longlink.tar", "wb").write(b.getvalue())

# Entries out of order: a file before its directory, a path given twice,
# a directory replaced by a file, '..' and './' components.
b = io.BytesIO()
with tarfile.open(fileobj=b, mode="w", format=tarfile.USTAR_FORMAT) as tf:
    add(tf, "a/b/c", b"first")
    add(tf, "a", type=tarfile.DIRTYPE, mode=0o700)
    add(tf, "a/b/c", b"second")
    add(tf, "./a/./b/../b/d", b"dots")
    add(tf, "a/b", b"now a file")
    add(tf, "a/.wh.b")
open(f"{out}/seed-ordering.tar", "wb").write(b.getvalue())
EOF

# fuzz-convert: compressed layers (and a few plain ones through its own dir).
gzip -9nc "$ctar/seed-pax.tar" > "$cconv/seed-pax.tar.gz"
zstd -q -3 -c "$ctar/seed-gnu.tar" > "$cconv/seed-gnu.tar.zst"
gzip -9nc "$ctar/seed-sparse-pax1.0.tar" > "$cconv/seed-sparse.tar.gz"
cp "$ctar/seed-pax-xattrs.tar" "$cconv/seed-pax-xattrs.tar"
# Two gzip members back to back, and bytes after the end marker.
head -c 1024 "$ctar/seed-ustar.tar" | gzip -9nc > "$cconv/seed-multimember.tar.gz"
tail -c +1025 "$ctar/seed-ustar.tar" | gzip -9nc >> "$cconv/seed-multimember.tar.gz"
{ cat "$ctar/seed-ustar.tar"; printf 'trailing bytes after the end marker'; } \
	> "$cconv/seed-trailing.tar"

# fuzz-image: mkfs.erofs 1.5 images of a tiny tree, in its main layouts.
m="$work/mtree"
mkdir -p "$m/d/sub"
echo small > "$m/d/inline"
head -c 5000 /dev/zero | tr '\0' 'z' > "$m/d/twoblk"
ln -s inline "$m/d/sl"
mkfifo "$m/d/fifo"
setfattr -n user.k -v v "$m/d/inline" 2>/dev/null || true
setfattr -n trusted.overlay.opaque -v y "$m/d/sub" 2>/dev/null || true
mk() { # name, options...
	local name=$1; shift
	mkfs.erofs --quiet -T1700000000 -U 6b9e4a51-5c6e-4d7e-9d34-1b3c5f2e6a10 "$@" \
		"$cimg/seed-$name.erofs" "$m" >/dev/null
}
mk plain
mk compact -Eforce-inode-compact
mk extended -Eforce-inode-extended
mk lz4 -zlz4
mk lz4hc-ztail -zlz4hc -Eztailpacking
mk nosbcrc -Enosbcrc
# Layouts that give every file its own blocks: a smaller tree.
m="$work/mtree2"
mkdir -p "$m/sub"
head -c 4096 /dev/zero | tr '\0' 'b' > "$m/blk"
ln -s blk "$m/sl"
mk noinline -Enoinline_data
mk chunked --chunksize=4096
mk chunk-indexes --chunksize=4096 -Eforce-chunk-indexes
mk blockmap --chunksize=4096 -Eforce-inode-blockmap

# Images of our own writer, when a binary is at hand.
if [ -n "$erofs_layer" ]; then
	for f in seed-ustar seed-pax-xattrs seed-ordering seed-gnu-longlink; do
		"$erofs_layer" convert -T 1700000000 -o "$cimg/$f.erofs" "$ctar/$f.tar" >/dev/null 2>&1 ||
			rm -f "$cimg/$f.erofs"
	done
fi

# Keep the corpora small.
for f in "$ctar"/seed-* "$cconv"/seed-* "$cimg"/seed-*; do
	if [ "$(stat -c %s "$f")" -ge 16384 ]; then
		echo "$0: $f is $(stat -c %s "$f") bytes (>= 16 KiB), dropped" >&2
		rm -f "$f"
	fi
done
ls -l "$ctar" "$cconv" "$cimg"
