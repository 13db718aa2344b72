#!/usr/bin/env bash
# The main job of the README, on a built-in default:
#  1. builds the project, makes a sample OCI layer offline (gzip tar with a
#     whiteout, an opaque directory, xattrs, hard and symbolic links),
#     converts it with `erofs-layer convert`, shows the image with the
#     user-space readers and has the kernel mount it;
#  2. starts a private containerd and spin-erofs-snapshotter, imports a
#     three-layer sample image built offline through our snapshotter, prints
#     the mounts a VM runtime gets and the VMDK, mounts the merged view the
#     way a guest would, and stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
el=build/src/tools/erofs-layer

work=$(mktemp -d /tmp/erofs-layer-demo.XXXXXX)
mnt=""
lab_started=0
cleanup() {
	if [ -n "$mnt" ] && mountpoint -q "$mnt"; then umount "$mnt"; fi
	if [ "$lab_started" = 1 ]; then lab_stop || true; fi
	# committed layers carry the immutable flag (--set-immutable)
	[ -d "$work/lab/sn" ] && chattr -R -i "$work/lab/sn" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

echo "== a sample layer, built offline"
src=$work/rootfs
mkdir -p "$src"/{etc,bin,usr/share/doc/demo,var/cache/opaque,home/user}
printf 'NAME="demo"\nVERSION_ID=1\n' >"$src/etc/os-release"
printf '#!/bin/sh\necho "hello from an EROFS layer"\n' >"$src/bin/hello"
chmod 0755 "$src/bin/hello"
ln "$src/bin/hello" "$src/bin/hello-again"
ln -s ../../bin/hello "$src/usr/share/doc/demo/link-to-hello"
head -c 100000 /dev/zero | tr '\0' 'x' >"$src/usr/share/doc/demo/big.txt"
: >"$src/etc/.wh.removed-in-this-layer"
: >"$src/var/cache/opaque/.wh..wh..opq"
setfattr -n user.demo -v "an xattr" "$src/etc/os-release" 2>/dev/null || true
tar --format=pax --xattrs --xattrs-include='user.*' --numeric-owner --owner=0 --group=0 \
	--mtime=@1700000000 --sort=name -C "$src" -cf - . | gzip -6 >"$work/layer.tar.gz"
ls -l "$work/layer.tar.gz"

echo
echo "== erofs-layer convert"
"$el" convert -o "$work/layer.erofs" "$work/layer.tar.gz"

echo
echo "== erofs-layer check"
"$el" check "$work/layer.erofs"
echo
echo "== erofs-layer ls -l -R (user space, no mount)"
"$el" ls -l -R "$work/layer.erofs"
echo
echo "== erofs-layer cat /bin/hello"
"$el" cat "$work/layer.erofs" /bin/hello

if [ "$(id -u)" = 0 ] && grep -qw erofs /proc/filesystems 2>/dev/null || modprobe erofs 2>/dev/null; then
	echo
	echo "== the kernel mounts it (mount -t erofs -o ro,loop)"
	mnt=$work/mnt
	mkdir -p "$mnt"
	mount -t erofs -o ro,loop "$work/layer.erofs" "$mnt"
	(cd "$mnt" && ls -lan . etc bin var/cache/opaque)
	echo "trusted.overlay.opaque on var/cache/opaque: $(getfattr --only-values -n trusted.overlay.opaque "$mnt/var/cache/opaque" 2>/dev/null)"
	echo "fsck.erofs: $(fsck.erofs "$work/layer.erofs" >/dev/null 2>&1 && echo ok || echo FAILED)"
	umount "$mnt"
	mnt=""
fi

if [ "$(id -u)" != 0 ] || ! command -v containerd >/dev/null; then
	echo "(the containerd part needs root and containerd: skipped)"
	exit 0
fi

echo
echo "== a private containerd with spin-erofs-snapshotter as its proxy snapshotter"
# shellcheck source=../tests/integration/lab.sh
. tests/integration/lab.sh
lab_start "$work/lab"
lab_started=1

echo "== a three-layer sample image, built offline, imported through our snapshotter"
python3 scripts/sample-image.py "$work/layout"
tar -cf "$work/image.tar" -C "$work/layout" .
lab_ctr images import --snapshotter spin-erofs "$work/image.tar"
lab_ctr snapshots --snapshotter spin-erofs tree

# the top of the chain: the committed snapshot nothing else has as parent
top=$(lab_ctr snapshots --snapshotter spin-erofs ls | awk 'NR > 1 && $NF == "Committed" {k[$1] = 1; if ($2 != "") p[$2] = 1}
	END {for (x in k) if (!(x in p)) print x}')
echo
echo "== an active snapshot for a container: the mounts a VM runtime receives"
lab_ctr snapshots --snapshotter spin-erofs prepare demo-container "$top"
lab_ctr snapshots --snapshotter spin-erofs mounts /rootfs demo-container
fsmeta=$(lab_ctr snapshots --snapshotter spin-erofs mounts /rootfs demo-container |
	awk '$3 == "erofs" {print $4; exit}')
vmdk=$(dirname "$fsmeta")/merged.vmdk
echo
echo "== $vmdk: the guest sees fsmeta.erofs and the layers as one disk"
cat "$vmdk"

echo
echo "== the merged view as a guest kernel mounts that disk (here: the host's kernel, on the concatenation)"
# shellcheck disable=SC2046
cat $(awk '/^RW/ {gsub(/"/, "", $4); print $4}' "$vmdk" | uniq) >"$work/disk.img"
mnt=$work/merged
mkdir -p "$mnt"
mount -t erofs -o ro,loop "$work/disk.img" "$mnt"
(cd "$mnt" && find . | sort)
echo "etc/version (1 in layer 1, 2 in layer 2): $(cat "$mnt/etc/version")"
echo "etc/gone (whited out in layer 2): $([ -e "$mnt/etc/gone" ] && echo present || echo absent)"
echo "dir/ (opaque in layer 2): $(ls "$mnt/dir")"
echo "bin/hello says: $(sh "$mnt/bin/hello")"
umount "$mnt"
mnt=""

echo
echo "== stopping containerd and the snapshotter"
lab_ctr snapshots --snapshotter spin-erofs rm demo-container
lab_stop
lab_started=0
echo "done"
