#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Regenerates the seed images of fuzz/corpus/fuzz-ext4/ (seed-*; inputs found
# by fuzzing and regress-* files stay): small ext4 images shaped like a
# guest's rwlayer.img (upper/ and work/ at the root), made with mkfs.ext4 -d
# (Debian 12's e2fsprogs 1.47) from a tree holding what an overlay upper
# holds: whiteouts (0:0 character devices, one of them hard-linked), an
# opaque directory, xattrs (user., trusted., an ACL), hard links, a deep
# tree, a file of several extents, a sparse file, a symlink of each kind, a
# fifo. Each image is 256 KiB with 1 KiB blocks and no journal (a journal
# would take 1 MiB, the inputs' bound), in three layouts: extents, inline
# data, and ext2-style block maps (fixed UUID, hash seed and file times;
# mkfs still varies a few bytes a run). Needs root (trusted. xattrs, devices).
#
#   fuzz/make-ext4-seeds.sh
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out="$here/corpus/fuzz-ext4"
mkdir -p "$out"
rm -f "$out"/seed-*
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export TZ=UTC LC_ALL=C E2FSPROGS_FAKE_TIME=1700000000

t="$work/tree"
u="$t/upper"
mkdir -p "$u/etc" "$u/opq" "$u/a/b/c/d/e/f" "$t/work"
echo hello > "$u/etc/hello"
ln "$u/etc/hello" "$u/etc/hard"
ln -s hello "$u/etc/fast"
ln -s "$(printf 'l%.0s' $(seq 1 100))/target" "$u/etc/slow"
mknod "$u/etc/gone" c 0 0
ln "$u/etc/gone" "$u/etc/gone-too"
mkfifo "$u/etc/fifo"
setfattr -n trusted.overlay.opaque -v y "$u/opq"
echo kept > "$u/opq/kept"
setfattr -n user.origin -v container "$u/etc/hello"
setfacl -m u:1000:r "$u/etc/hello" 2>/dev/null || true
echo deep > "$u/a/b/c/d/e/f/leaf"
# several extents: blocks written apart, then the gaps
python3 - "$u/extents" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    for i in (0, 8, 3, 12, 5):
        f.seek(i * 1024)
        f.write(bytes([65 + i]) * 1024)
PY
truncate -s 1M "$u/sparse"
printf 'end' | dd of="$u/sparse" bs=1 seek=600000 conv=notrunc status=none
chmod 4755 "$u/etc/hello"
find "$t" -exec touch -h -d @1700000000 {} +

mk() {
	local name=$1
	shift
	local img="$out/seed-$name"
	truncate -s 256K "$img"
	mkfs.ext4 -q -F -b 1024 -N 64 -U 6b9e4a51-5c6e-4d7e-9d34-1b3c5f2e6a10 \
		-E root_owner=0:0,hash_seed=0d0b1f52-7f3a-4c55-9a8e-2f6c1d4e5b70 "$@" -d "$t" "$img"
}
mk extents -O ^has_journal,^resize_inode
mk inline -O ^has_journal,^resize_inode,inline_data
mk blockmap -t ext2 -O ^resize_inode,^dir_index
ls -l "$out"
