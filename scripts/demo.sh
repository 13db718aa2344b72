#!/usr/bin/env bash
# The main job of the README, on a built-in default: builds the project,
# makes a sample OCI layer offline (gzip tar with a whiteout, an opaque
# directory, xattrs, hard and symbolic links), converts it with
# `erofs-layer convert`, shows the image with the user-space readers, and
# has the kernel mount it (root only) to show the same tree.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
el=build/src/tools/erofs-layer

work=$(mktemp -d /tmp/erofs-layer-demo.XXXXXX)
mnt=""
cleanup() {
	if [ -n "$mnt" ] && mountpoint -q "$mnt"; then umount "$mnt"; fi
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
