#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# fetch-mkfs-erofs.sh [--suite SUITE] [--dest DIR]
#
# Builds mkfs.erofs from Debian SUITE's (default sid) erofs-utils SOURCE
# package, for the benchmarks to compare with (bench/README.md). Installs
# nothing of erofs-utils: a private apt configuration in DEST.apt/ (its own
# sources list, a deb-src entry for SUITE on the mirror this machine already
# uses, its own lists, cache and status; the system's sources are never
# edited) runs `apt-get source --download-only erofs-utils`; `dpkg-source -x`
# unpacks it (Debian's patches applied) and it is built in place with
# `./autogen.sh && ./configure --disable-fuse --without-selinux && make`.
# Missing build dependencies are installed from the system's own (Debian 12)
# sources with apt-get; an optional library bookworm lacks is configured off.
#
# Prints the path of the built mkfs.erofs on stdout (its version on stderr).
# Cached: when DEST/mkfs.erofs exists, it only prints its path.
#
# Default DEST: ${SPIN_DEBS:-/var/tmp/spin-debs}/erofs-utils-SUITE.
set -euo pipefail

suite=sid
dest=
while [ $# -gt 0 ]; do
	case $1 in
	--suite) suite=$2; shift 2 ;;
	--dest) dest=$2; shift 2 ;;
	-h | --help) sed -n '3,20p' "$0"; exit 0 ;;
	*) echo "fetch-mkfs-erofs: unknown argument $1" >&2; exit 2 ;;
	esac
done
: "${dest:=${SPIN_DEBS:-/var/tmp/spin-debs}/erofs-utils-$suite}"

die() { echo "fetch-mkfs-erofs: $*" >&2; exit 1; }
log() { echo "fetch-mkfs-erofs: $*" >&2; }

if [ -x "$dest/mkfs.erofs" ]; then
	log "$(cat "$dest/VERSION" 2>/dev/null || echo "cached"): $dest/mkfs.erofs"
	echo "$dest/mkfs.erofs"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "needs root (apt-get for the build dependencies)"

# ---- the source package, through a private apt configuration ----
apt=$dest.apt
# shellcheck source=scripts/private-apt.sh
. "$(dirname "$0")/../scripts/private-apt.sh"
private_apt_setup "$apt" "$suite" deb-src || exit 1
uri=$PRIVATE_APT_URI opts=("${PRIVATE_APT_OPTS[@]}")
log "erofs-utils source from $suite at $uri"
apt-get "${opts[@]}" -q update >"$apt/update.log" 2>&1 ||
	die "apt-get update of $suite (deb-src) failed, see $apt/update.log"
rm -rf "$apt/src"
mkdir -p "$apt/src"
(cd "$apt/src" && apt-get "${opts[@]}" -q source --download-only erofs-utils) >"$apt/source.log" 2>&1 ||
	die "apt-get source erofs-utils failed, see $apt/source.log"
dsc=$(ls "$apt/src"/erofs-utils_*.dsc 2>/dev/null | head -1)
[ -n "$dsc" ] || die "no erofs-utils .dsc in $apt/src"
version=$(awk '$1 == "Version:" { print $2; exit }' "$dsc")
log "erofs-utils $version ($(basename "$dsc"))"

# ---- build dependencies (Debian 12's own packages) ----
missing=()
for p in build-essential autoconf automake libtool pkg-config uuid-dev liblz4-dev liblzma-dev \
	zlib1g-dev libzstd-dev libdeflate-dev libxxhash-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing build dependencies: ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
		>"$apt/build-deps.log" 2>&1; then
		apt-get update -q >>"$apt/build-deps.log" 2>&1 || true
		# what bookworm cannot give is configured off below
		for p in "${missing[@]}"; do
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$p" \
				>>"$apt/build-deps.log" 2>&1 || log "build dependency $p not installed"
		done
	fi
fi
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for p in autoconf automake libtool pkg-config uuid-dev liblz4-dev zlib1g-dev; do
	have "$p" || die "build dependency $p is missing (see $apt/build-deps.log)"
done

# ---- unpack and build ----
src=$dest.build
rm -rf "$src" "$dest.tmp"
dpkg-source -x "$dsc" "$src" >"$apt/dpkg-source.log" 2>&1 ||
	die "dpkg-source -x failed, see $apt/dpkg-source.log"
cfg=(--disable-fuse --without-selinux --with-uuid --enable-lz4 --enable-lzma)
have zlib1g-dev && cfg+=(--with-zlib)
have libdeflate-dev && cfg+=(--with-libdeflate) || cfg+=(--without-libdeflate)
have libzstd-dev && cfg+=(--with-libzstd) || cfg+=(--without-libzstd)
have libxxhash-dev && cfg+=(--with-xxhash) || cfg+=(--without-xxhash)
# keep only the options this configure knows
known=()
(cd "$src" && ./autogen.sh) >"$apt/build.log" 2>&1 || die "autogen.sh failed, see $apt/build.log"
help=$(cd "$src" && ./configure --help)
for o in "${cfg[@]}"; do
	name=${o%%=*}
	base=${name#--}
	base=${base#with-}
	base=${base#without-}
	base=${base#enable-}
	base=${base#disable-}
	if grep -qE -- "--(with|without|enable|disable)-$base([= ]|\$)" <<<"$help"; then
		known+=("$o")
	else
		log "configure has no option for '$base': $o left out"
	fi
done
log "configure ${known[*]}"
(cd "$src" && ./configure "${known[@]}" && make -j"$(nproc)") >>"$apt/build.log" 2>&1 ||
	die "the build failed, see $apt/build.log"
bin=$src/mkfs/mkfs.erofs
[ -x "$bin" ] || die "no mkfs/mkfs.erofs after make"
# a libtool wrapper script would not survive a copy
file -L "$bin" 2>/dev/null | grep -q ELF || [ "$(head -c 4 "$bin" | od -An -c | tr -d ' ')" = 177ELF ] ||
	die "$bin is not an ELF executable (a libtool wrapper?)"

mkdir -p "$dest.tmp"
cp "$bin" "$dest.tmp/mkfs.erofs"
[ -x "$src/fsck/fsck.erofs" ] && cp "$src/fsck/fsck.erofs" "$dest.tmp/fsck.erofs"
v=$("$dest.tmp/mkfs.erofs" --version 2>&1 | head -1 || true)
echo "erofs-utils $version from $suite: ${v:-mkfs.erofs}" >"$dest.tmp/VERSION"
printf '%s\n' "${known[@]}" >"$dest.tmp/CONFIGURE"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
log "$(cat "$dest/VERSION"): $dest/mkfs.erofs"
echo "$dest/mkfs.erofs"
