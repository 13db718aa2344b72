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

# The mirror the system already uses.
uri=$(awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }' \
	/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [ -z "$uri" ]; then
	uri=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
[ -n "$uri" ] || die "no Debian mirror found in /etc/apt/sources.list{,.d}"

mkdir -p "$apt/etc/sources.list.d" "$apt/etc/preferences.d" "$apt/state/lists/partial" \
	"$apt/cache/archives/partial" "$apt/debs"
cat > "$apt/etc/sources.list.d/$suite.sources" <<EOF
Types: deb
URIs: $uri
Suites: $suite
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
: > "$apt/state/status"
opts=(
	-o "Dir::Etc::SourceList=/dev/null"
	-o "Dir::Etc::SourceParts=$apt/etc/sources.list.d"
	-o "Dir::Etc::Preferences=/dev/null"
	-o "Dir::Etc::PreferencesParts=$apt/etc/preferences.d"
	-o "Dir::State=$apt/state"
	-o "Dir::State::Lists=$apt/state/lists"
	-o "Dir::State::status=$apt/state/status"
	-o "Dir::Cache=$apt/cache"
	-o "APT::Architecture=amd64"
	-o "APT::Architectures::=amd64"
	-o "APT::Sandbox::User=root"
	-o "Acquire::Languages=none"
)
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
