#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# run.sh DAEMON [go test flags...]
#
# containerd's snapshotter conformance suite against the spin-erofs-snapshotter
# binary DAEMON (README in this folder). The test binary is built by build.sh
# once per content of this folder and kept under $SPIN_CONFORMANCE_CACHE.
# Exits 77 (a visible skip) where the machine cannot mount: not root, no
# loop devices, no erofs or overlay.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
daemon=$(realpath "${1:?usage: run.sh DAEMON [go test flags]}")
shift

if [ "$(id -u)" != 0 ]; then echo "conformance: skip: needs root (it mounts)"; exit 77; fi
if [ ! -e /dev/loop-control ]; then echo "conformance: skip: no /dev/loop-control"; exit 77; fi
for fs in erofs overlay ext4; do
	grep -qw "$fs" /proc/filesystems || modprobe "$fs" 2>/dev/null || true
	grep -qw "$fs" /proc/filesystems || { echo "conformance: skip: the kernel has no $fs"; exit 77; }
done

cache=${SPIN_CONFORMANCE_CACHE:-/var/tmp/spin-conformance}
key=$(cat "$here"/*.go "$here/build.sh" | sha256sum | cut -c1-16)
bin=$cache/$key/conformance.test
if [ ! -x "$bin" ]; then
	mkdir -p "$cache/$key"
	"$here/build.sh" "$bin.tmp"
	mv "$bin.tmp" "$bin"
fi

loops_before=$(losetup -n -l -O NAME | sort)
log=$(mktemp /tmp/spin-conformance-log.XXXXXX)
trap 'rm -f "$log"' EXIT
rc=0
SPIN_DAEMON=$daemon "$bin" -test.v -test.parallel 2 -test.timeout 15m "$@" >"$log" 2>&1 || rc=$?
# the cases' outcomes, then everything each failing case logged
grep -E '^\s*--- (PASS|FAIL|SKIP)|^guest:' "$log" | sort -u || true
if [ "$rc" != 0 ]; then
	echo "conformance: failed (exit $rc); the suite's output:"
	cat "$log"
fi
pass=$(grep -cE '^\s+--- PASS' "$log" || true)
fail=$(grep -cE '^\s+--- FAIL' "$log" || true)
skip=$(grep -cE '^\s+--- SKIP' "$log" || true)
# new ones only: a device someone else detached meanwhile is no leak of ours
leaked=$(comm -13 <(echo "$loops_before") <(losetup -n -l -O NAME | sort))
if [ -n "$leaked" ]; then
	echo "conformance: loop devices left attached:"
	echo "$leaked"
	rc=1
fi
echo "conformance: containerd's snapshotter suite: $pass passed, $fail failed, $skip skipped"
[ "$skip" = 0 ] || rc=1
exit "$rc"
