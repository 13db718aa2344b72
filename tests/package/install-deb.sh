#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the packages scripts/build-deb.sh made, checks what they put where,
# runs the programs, then removes and purges them and checks that nothing of
# them is left. Needs root and a machine where installing is fine; the
# service is never started (a policy-rc.d refusing it is put in place while
# the packages are installed, as scripts/deps.sh does).
#   tests/package/install-deb.sh [DEBDIR] [-- CMD...]   (default build-deb/)
# CMD, when given, runs while the packages are installed (.ci/run: a registry
# pull through containerd 2.1 against the installed daemon); its failure is
# this test's.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
debarg=
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
	debarg=$1
	shift
fi
[ "${1:-}" != "--" ] || shift
while_installed=("$@")
debdir=$(cd "${debarg:-$src/build-deb}" && pwd)
pkgs=(spin-erofs-snapshotter libspin-erofs-layer0 libspin-erofs-layer-dev)
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)
unit=/lib/systemd/system/spin-erofs-snapshotter.service
wants=/etc/systemd/system/multi-user.target.wants/spin-erofs-snapshotter.service
failed=0
t0=$(date +%s.%N)

fail() { echo "FAIL: $*"; failed=1; }
ok() { echo "ok $*"; }

[ "$(id -u)" = 0 ] || { echo "skip: needs root"; exit 77; }
debs=()
for p in "${pkgs[@]}"; do
	f="$debdir/${p}_${version}_${arch}.deb"
	[ -f "$f" ] || { echo "no $f: run scripts/build-deb.sh first"; exit 1; }
	debs+=("$f")
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		echo "$p is installed already: this test would remove it; not touching it"
		exit 1
	fi
done

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	trap 'rm -f "$policy"' EXIT
fi

echo "== dpkg -i"
dpkg -i "${debs[@]}" >/dev/null
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}\n' "$p" | grep -q "install ok installed" || fail "$p not installed"
done

echo "== files"
expect_main=(
	/usr/sbin/spin-erofs-snapshotter
	/usr/bin/erofs-layer
	/usr/share/man/man8/spin-erofs-snapshotter.8.gz
	/usr/share/man/man1/erofs-layer.1.gz
	"$unit"
	/usr/share/doc/spin-erofs-snapshotter/examples/containerd-spin-erofs.toml
	/usr/share/doc/spin-erofs-snapshotter/copyright
)
multi=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)
expect_lib=("$multi/libspin-erofs-layer.so.0")
expect_dev=("$multi/libspin-erofs-layer.so" "$multi/libspin-erofs-layer.a"
	    "$multi/pkgconfig/spin-erofs-layer.pc" /usr/include/erofs-layer/merge.h)
check_listed() {
	local p=$1
	shift
	local listed
	listed=$(dpkg -L "$p")
	for f in "$@"; do
		grep -qxF "$f" <<<"$listed" || fail "dpkg -L $p does not list $f"
		[ -e "$f" ] || fail "$f is missing"
	done
}
check_listed spin-erofs-snapshotter "${expect_main[@]}"
check_listed libspin-erofs-layer0 "${expect_lib[@]}"
check_listed libspin-erofs-layer-dev "${expect_dev[@]}"
# what the packages hold, for the purge check below
mapfile -t owned < <(for p in "${pkgs[@]}"; do dpkg -L "$p"; done | sort -u)
ok "${#owned[@]} paths listed, the expected ones present"

echo "== programs"
out=$(/usr/sbin/spin-erofs-snapshotter --version)
[ "$out" = "spin-erofs-snapshotter $version" ] || fail "--version says '$out', not $version"
out=$(/usr/bin/erofs-layer --version)
[ "$out" = "erofs-layer $version" ] || fail "erofs-layer --version says '$out'"
/usr/sbin/spin-erofs-snapshotter --help | grep -q -- --log-file || fail "daemon --help lacks --log-file"
ok "--version: $version"
pkg-config --exists spin-erofs-layer || fail "pkg-config does not find spin-erofs-layer"
[ "$(pkg-config --modversion spin-erofs-layer)" = "$version" ] || fail "pkg-config version"
ok "pkg-config spin-erofs-layer $version"

echo "== unit"
[ -L "$wants" ] || fail "the unit is not enabled ($wants)"
if command -v systemd-analyze >/dev/null; then
	man=no
	command -v man >/dev/null && man=yes
	vout=$(SYSTEMD_LOG_TARGET=console systemd-analyze verify --man=$man "$unit" 2>&1) ||
		fail "systemd-analyze verify: $vout"
	[ -z "$vout" ] || fail "systemd-analyze verify says: $vout"
	ok "installed unit verified (man=$man), enabled"
fi
python3 "$src/tests/package/unit-start.py" "$unit" || fail "the unit's ExecStart"

if ((${#while_installed[@]})); then
	echo "== while installed: ${while_installed[*]}"
	if "${while_installed[@]}"; then
		ok "while installed: ${while_installed[0]} passed"
	else
		fail "while installed: ${while_installed[*]} failed"
	fi
fi

echo "== dpkg -r"
dpkg -r "${pkgs[@]}" >/dev/null
for f in "${expect_main[@]}" "${expect_lib[@]}" "${expect_dev[@]}"; do
	[ ! -e "$f" ] || fail "$f is still there after dpkg -r"
done
ok "removed: $(dpkg-query -W -f='${db:Status-Abbrev}' spin-erofs-snapshotter 2>/dev/null || echo gone)"

echo "== dpkg -P"
# those without conffiles or maintainer scripts are gone already
purge=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^rc' && purge+=("$p")
done
dpkg -P "${purge[@]}" >/dev/null
for p in "${pkgs[@]}"; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -qv "not-installed"; then
		fail "$p is still known to dpkg: $(dpkg-query -W -f='${Status}' "$p")"
	fi
done
left=()
for f in "${owned[@]}"; do
	# directories shared with other packages (/usr/bin, ...) stay, as they
	# should; so do /lib and the like, symbolic links to /usr/lib
	[ -d "$f" ] && continue
	[ -e "$f" ] || [ -L "$f" ] && left+=("$f")
done
for f in "$wants" /var/lib/systemd/deb-systemd-helper-enabled/spin-erofs-snapshotter.service.dsh-also \
	 /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/spin-erofs-snapshotter.service \
	 /usr/share/doc/spin-erofs-snapshotter /usr/include/erofs-layer; do
	[ -e "$f" ] || [ -L "$f" ] && left+=("$f")
done
if ((${#left[@]})); then
	fail "left after purge: ${left[*]}"
else
	ok "purged, nothing left (the unit's StateDirectory, made when it runs, is the admin's data)"
fi

echo "install-deb: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
exit $failed
