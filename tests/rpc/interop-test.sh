#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The rpc layer against a real containerd (1.6.20 on Debian 12), both ways:
#  - as a server: containerd's proxy snapshotter plugin calls
#    rpc-echo-snapshotter (Prepare, Stat, List, Remove, Cleanup, and an
#    UNIMPLEMENTED Mounts) when driven with ctr;
#  - as a client: rpc-content-probe writes, reads and aborts content through
#    containerd's Content service under a lease.
# A private containerd runs from a temp dir (config, root, state, socket) and
# is stopped by its PID (no systemd here).
#
#   interop-test.sh ECHO_SNAPSHOTTER CONTENT_PROBE
#
# Exit 77 (skip) without containerd, ctr or root.
set -euo pipefail

echo_bin=$1
probe_bin=$2

skip() { echo "SKIP: $*"; exit 77; }
command -v containerd >/dev/null || skip "containerd is not installed"
command -v ctr >/dev/null || skip "ctr is not installed"
[ "$(id -u)" = 0 ] || skip "containerd needs root"

tmp=$(mktemp -d /tmp/rpc-interop.XXXXXX)
cpid=
epid=
cleanup() {
	status=$?
	[ -n "$cpid" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
	[ -n "$epid" ] && kill "$epid" 2>/dev/null && wait "$epid" 2>/dev/null
	if [ "$status" != 0 ] && [ "$status" != 77 ]; then
		echo "---- containerd log (tail)"
		tail -n 40 "$tmp/containerd.log" 2>/dev/null || true
		echo "---- echo snapshotter log"
		cat "$tmp/echo.log" 2>/dev/null || true
	fi
	rm -rf "$tmp"
	exit "$status"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; exit 1; }

wait_for() { # wait_for SECONDS COMMAND...
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

sock=$tmp/echo.sock
csock=$tmp/containerd.sock

"$echo_bin" "$sock" >"$tmp/echo.log" 2>&1 &
epid=$!
wait_for 10 test -S "$sock" || fail "the echo snapshotter did not start"

# Only what the test needs: no CRI, no btrfs/zfs/devmapper/aufs noise.
cat >"$tmp/config.toml" <<EOF
version = 2
root = "$tmp/root"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$csock"

[ttrpc]
  address = "$csock.ttrpc"

[debug]
  address = "$csock.debug"
  level = "debug"

[metrics]
  address = ""

[proxy_plugins.test]
  type = "snapshot"
  address = "$sock"
EOF

containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
cpid=$!
ctr() { command ctr --address "$csock" "$@"; }
wait_for 30 ctr version || fail "containerd did not come up"
echo "containerd $(ctr version | awk '/Server:/{s=1} s && /Version:/{print $2; exit}') up"

ctr plugins ls | grep -E '^io\.containerd\.snapshotter\.v1\s+test\s' | grep -q ok ||
	fail "proxy plugin 'test' not loaded: $(ctr plugins ls | grep test || true)"

# ---- containerd → our server --------------------------------------------
sn() { ctr snapshots --snapshotter test "$@"; }

out=$(sn prepare interop-key 2>&1) || fail "prepare: $out"
wait_for 5 grep -q '^rpc Prepare OK' "$tmp/echo.log" || fail "Prepare did not reach the server"
echo "ok prepare: Prepare reached the server"

out=$(sn ls 2>&1) || fail "ls: $out"
echo "$out"
echo "$out" | grep -E '^interop-key\s.*\sActive\s*$' >/dev/null ||
	fail "ls does not show interop-key as Active (the kind comes from our Stat)"
wait_for 5 grep -q '^rpc Stat OK' "$tmp/echo.log" || fail "ls did not call Stat"
echo "ok ls: Stat answered by the server"

out=$(sn info interop-key 2>&1) || fail "info: $out"
echo "$out"
echo "$out" | grep -q '"containerd.io/snapshot/echo.served-by": "c-rpc"' ||
	fail "info does not carry the label our Stat returned"
echo "$out" | grep -q '"Kind": "Active"' || fail "info: kind is not Active"
echo "ok info: our Stat reply shows up"

sn usage interop-key >"$tmp/usage.out" 2>&1 || fail "usage: $(cat "$tmp/usage.out")"
grep -q 'interop-key' "$tmp/usage.out" || fail "usage output: $(cat "$tmp/usage.out")"
wait_for 5 grep -q '^rpc Usage OK' "$tmp/echo.log" || fail "Usage did not reach the server"
echo "ok usage: $(tail -n1 "$tmp/usage.out")"

# Mounts is not implemented by the echo server: containerd passes our
# UNIMPLEMENTED back (errdefs.ErrNotImplemented).
if out=$(sn mounts /mnt interop-key 2>&1); then
	fail "mounts succeeded against an unimplemented method: $out"
fi
echo "$out" | grep -qi 'not implemented\|unimplemented' || fail "mounts error: $out"
wait_for 5 grep -q '^rpc Mounts UNIMPLEMENTED' "$tmp/echo.log" || fail "Mounts did not reach the server"
echo "ok mounts: UNIMPLEMENTED reaches ctr ($out)"

# Removal: containerd drops its record, then its garbage collector walks us
# with List (a server stream), removes what it does not know (our key, and
# the orphan the echo server started with) and calls Cleanup.
sn rm interop-key || fail "rm"
wait_for 30 grep -q '^rpc Cleanup OK' "$tmp/echo.log" || fail "no Cleanup after rm (GC)"
wait_for 5 grep -q '^rpc List OK' "$tmp/echo.log" || fail "GC did not call List"
grep -q '^removed default/[0-9]*/interop-key$' "$tmp/echo.log" ||
	fail "GC did not remove the key (namespaced by containerd as <ns>/<id>/<key>)"
grep -q '^removed echo-orphan$' "$tmp/echo.log" ||
	fail "GC did not remove the orphan it could only know of through List"
echo "ok rm: GC called List, Remove ×$(grep -c '^rpc Remove OK' "$tmp/echo.log"), Cleanup"

# ---- our client → containerd's Content service ---------------------------
ctr leases create --id rpc-probe-lease >/dev/null || fail "lease"
"$probe_bin" "$csock" default rpc-probe-lease | tee "$tmp/probe.out" || fail "content probe"
blob=$(awk '/^blob /{print $2}' "$tmp/probe.out")
ctr content ls | grep -q "$blob" || fail "the blob we wrote is not in ctr content ls"
ctr leases ls | grep rpc-probe-lease >/dev/null || fail "lease gone"
echo "ok ctr content ls shows $blob"

# The echo server stops cleanly on SIGTERM (graceful rpc_server_shutdown;
# in ASan builds a leak would make this exit non-zero).
kill -TERM "$epid"
erc=0
wait "$epid" || erc=$?
epid=
[ "$erc" = 0 ] || fail "the echo snapshotter exited with $erc"
grep -q '^stopped$' "$tmp/echo.log" || fail "the echo snapshotter did not shut down"
echo "ok echo snapshotter stopped cleanly"

echo "---- echo snapshotter log"
cat "$tmp/echo.log"
echo "PASS"
