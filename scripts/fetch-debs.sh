#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# fetch-debs.sh SUITE DEST PACKAGE...
#
# Downloads PACKAGEs (amd64) from another Debian suite (trixie,
# bookworm-backports, ...) of the mirror this machine already uses, and
# unpacks them together into DEST with dpkg -x. Nothing is installed and the
# system's apt sources are never touched: a private apt configuration lives in
# DEST.apt/ (docs/containerd-contract.md). DEST/PACKAGES lists the .deb files unpacked; when it
# exists and names the same packages, nothing is fetched again.
#
# Environment: FETCH_DEBS_QUIET=1 keeps apt's output in DEST.apt/*.log only.
set -euo pipefail

die() { echo "fetch-debs: $*" >&2; exit 1; }

[ $# -ge 3 ] || die "usage: fetch-debs.sh SUITE DEST PACKAGE..."
suite=$1 dest=$2
shift 2
pkgs=("$@")
apt=$dest.apt
want=$(printf '%s\n' "${pkgs[@]}" | sort | tr '\n' ' ')

if [ -f "$dest/PACKAGES.wanted" ] && [ "$(cat "$dest/PACKAGES.wanted")" = "$want" ]; then
	exit 0
fi

# shellcheck source=scripts/private-apt.sh
. "$(dirname "$0")/private-apt.sh"
private_apt_setup "$apt" "$suite" deb || exit 1
mkdir -p "$apt/debs"
uri=$PRIVATE_APT_URI opts=("${PRIVATE_APT_OPTS[@]}")
echo "fetch-debs: ${pkgs[*]} from $suite at $uri" >&2
apt-get "${opts[@]}" -q update >"$apt/update.log" 2>&1 ||
	die "apt-get update of $suite failed, see $apt/update.log"
rm -f "$apt/debs"/*.deb
(cd "$apt/debs" && apt-get "${opts[@]}" -q download "${pkgs[@]}") >"$apt/download.log" 2>&1 ||
	die "apt-get download from $suite failed, see $apt/download.log"

rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
for deb in "$apt/debs"/*.deb; do
	dpkg -x "$deb" "$dest.tmp"
done
(cd "$apt/debs" && ls) > "$dest.tmp/PACKAGES"
printf '%s' "$want" > "$dest.tmp/PACKAGES.wanted"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
