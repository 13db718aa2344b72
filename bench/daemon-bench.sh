#!/bin/bash
# Daemon benchmark: load on a running spin-erofs-snapshotter through its gRPC
# socket, the way containerd drives it (bench/daemon-bench.c does the calls).
# This script starts a daemon on a temporary --root, runs daemon-bench against
# it and stops it (SIGTERM; the daemon must exit 0).
#
#   bench/daemon-bench.sh [--build DIR] [--workdir DIR] [--fs ext4|here]
#                         [--runs N] [--keep] [--log-level L]
#                         [-- DAEMON-BENCH OPTIONS...]
#
#   --build DIR      where spin-erofs-snapshotter and daemon-bench were built
#                    (default build; an optimised build without sanitizers:
#                    `ninja -C build src/daemon/spin-erofs-snapshotter
#                    bench/daemon-bench`)
#   --workdir DIR    parent of the temporary root and socket (default /var/tmp)
#   --fs ext4        (default) the daemon's root on a fresh ext4 file system
#                    (mkfs.ext4 defaults, journal included, as /var/lib is on
#                    most hosts), a 4 GiB sparse image under DIR on a loop
#                    device, made and removed by each run: figures that do
#                    not depend on what DIR's file system went through before
#   --fs here        the root straight in DIR's file system (on an ext4
#                    without a journal, as this lab's /var/tmp, each new
#                    inode is checked against recently deleted ones, so
#                    figures drift with the churn of earlier runs)
#   --runs N         N runs (default 1), then the median over the runs of
#                    each p99 (and of the daemon's CPU per cycle)
#   --keep           keep the root, the socket directory and daemon.log
#   --log-level L    the daemon's --log-level (default warn: one line per call
#                    at debug level would be measured too)
#
# daemon-bench options (after --):
#   --threads N        concurrent clients (default 16)
#   --iterations N     cycles per client (default 200) of Prepare(extract key,
#                      parent = the committed base) / Stat / Mounts /
#                      Commit / View(base) / Mounts(view) / Remove(view) /
#                      Remove(committed)
#   --commit-layer     the client puts a layer.erofs beside the extract
#                      snapshot's fs/ before Commit, as our differ's Apply
#                      does: Commit converts nothing (default: it converts
#                      the empty upperdir)
#   --apply-syncs      ... and syncs it as Apply does (file, directory,
#                      snapshots/): Apply's cost, off by default
#   --flat             the cycle's extract snapshots have no parent (a first
#                      layer): Commit merges no chain (default: on base, so
#                      Commit writes fsmeta.erofs + merged.vmdk)
#   --views N          views made on the base, then Stat-ed, Listed and
#                      removed (default 10000)
#   --base-layers N    length of the committed base chain (default 1; 2 or
#                      more exercises fsmeta.erofs + merged.vmdk mounts)
#   --mixed-actives N  clients preparing actives (8 each: rwlayer.img) while
#                      the others make views (default 4; 0 skips that phase)
#   --load             instead of the benchmark, the load test of issue 4
#                      (tests/integration's load-direct runs it): --threads
#                      clients × --iterations rounds of Prepare(extract) / a
#                      file written into the upperdir / Prepare again
#                      (AlreadyExists) / Commit (converts, merges) / View /
#                      Mounts / Remove, every 4th round an active child and a
#                      refused Remove of its parent; every --keep-every N'th
#                      layer (default 10) is kept and listed in --report FILE
#                      (client, round, layer.erofs, name); List must hold
#                      exactly the base and the kept layers afterwards
#   --remove-prefix P  only remove every snapshot named P..., children first
#   --snapshotter S, --namespace NS, --lease ID
#                      talk to containerd's own Snapshots service (--socket
#                      its socket) for snapshotter S, in namespace NS, under
#                      lease ID
#
# Output: a Markdown table of p50/p99/max latency per method (client side,
# round trip over the unix socket), the throughput, and the daemon's VmRSS
# idle (after start, before any call), after the cycle, with N views, after
# List and at the end. Every reply is checked (mount shapes, Stat's name,
# kind and parent, List counts with and without a filter, the error codes
# expected); any error or mismatch makes the exit status 1.
#
# Targets: p99 < 5 ms for Prepare, View, Commit (without conversion or merge:
# --commit-layer --flat), Remove, Mounts and Stat with 16 clients; idle RSS
# < 32 MiB.
set -euo pipefail

BUILD=build
WORKDIR=/var/tmp
FS=ext4
RUNS=1
KEEP=0
LEVEL=warn
while [ $# -gt 0 ]; do
	case "$1" in
	--build) BUILD=$2; shift 2 ;;
	--workdir) WORKDIR=$2; shift 2 ;;
	--fs) FS=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--log-level) LEVEL=$2; shift 2 ;;
	--) shift; break ;;
	-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "daemon-bench: unknown argument $1 (daemon-bench options go after --)" >&2; exit 2 ;;
	esac
done

DAEMON=$BUILD/src/daemon/spin-erofs-snapshotter
BENCH=$BUILD/bench/daemon-bench
for b in "$DAEMON" "$BENCH"; do
	[ -x "$b" ] || { echo "daemon-bench: $b is missing: build it first" >&2; exit 2; }
done
command -v mkfs.ext4 >/dev/null || { echo "daemon-bench: mkfs.ext4 is missing" >&2; exit 2; }

case "$FS" in
ext4|here) ;;
*) echo "daemon-bench: --fs ext4 or here, not $FS" >&2; exit 2 ;;
esac
case "$RUNS" in
''|*[!0-9]*|0) echo "daemon-bench: --runs wants a positive number" >&2; exit 2 ;;
esac

W=$(mktemp -d "$WORKDIR/daemon-bench.XXXXXX")
SOCK=$W/snapshotter.sock
PID=""
MNT=""
stop_daemon() {
	if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
		kill -TERM "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	PID=""
}
drop_root() {
	# committed layers carry the immutable flag (--set-immutable defaults to true)
	chattr -R -i "$W/root" 2>/dev/null || true
	if [ -n "$MNT" ]; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
		MNT=""
		rm -f "$W/fs.img"
	fi
	rm -rf "$W/root"
}
cleanup() {
	stop_daemon
	if [ "$KEEP" = 0 ]; then
		drop_root
		rm -rf "$W"
	else
		echo "daemon-bench: kept $W"
	fi
}
trap cleanup EXIT

# one run: a daemon on a fresh root, daemon-bench against it; its output
# goes to $W/run-N.txt and the terminal
one_run() {
	local n=$1 rc=0 drc=0
	drop_root
	mkdir -p "$W/root"
	if [ "$FS" = ext4 ]; then
		truncate -s 4G "$W/fs.img"
		# inode tables and journal zeroed now, not by the kernel's
		# lazy-init thread in the middle of the measurement
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$W/fs.img"
		mount -o loop "$W/fs.img" "$W/root"
		MNT=$W/root
	fi
	"$DAEMON" --root "$W/root/sn" --address "$SOCK" --log-level "$LEVEL" 2>"$W/daemon.log" &
	PID=$!
	for _ in $(seq 100); do
		[ -S "$SOCK" ] && break
		kill -0 "$PID" 2>/dev/null || { echo "daemon-bench: the daemon exited:" >&2; cat "$W/daemon.log" >&2; return 1; }
		sleep 0.1
	done
	[ -S "$SOCK" ] || { echo "daemon-bench: no socket after 10 s" >&2; return 1; }
	sleep 1 # idle: let start-up settle before the first RSS reading

	echo "daemon: $DAEMON (pid $PID), root $W/root/sn ($([ "$FS" = ext4 ] && echo "a fresh ext4 on a loop device" || echo "in $WORKDIR")), run $n of $RUNS"
	"$BENCH" --socket "$SOCK" --pid "$PID" "$@" | tee "$W/run-$n.txt" || rc=$?
	[ "${PIPESTATUS[0]}" = 0 ] || rc=1

	kill -TERM "$PID"
	wait "$PID" || drc=$?
	PID=""
	if [ "$drc" != 0 ]; then
		echo "daemon-bench: the daemon exited with status $drc" >&2
		rc=1
	fi
	if grep -q 'level=error' "$W/daemon.log"; then
		echo "daemon-bench: the daemon logged errors:" >&2
		grep 'level=error' "$W/daemon.log" | head -20 >&2
		rc=1
	fi
	return $rc
}

rc=0
for n in $(seq "$RUNS"); do
	one_run "$n" "$@" || rc=1
done
if [ "$RUNS" -gt 1 ]; then
	# the median over the runs of each p99 column of the table, and of the
	# daemon's CPU per cycle
	python3 - "$W" "$RUNS" <<'PY'
import re, statistics, sys
w, runs = sys.argv[1], int(sys.argv[2])
p99, cpu = {}, []
for n in range(1, runs + 1):
    for line in open("%s/run-%d.txt" % (w, n)):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and re.match(r"^[\d.]+$", cells[3]):
            p99.setdefault(cells[0], []).append(float(cells[3]))
        m = re.search(r"daemon [\d.]+ s \((\d+) us a cycle\)", line)
        if m:
            cpu.append(int(m.group(1)))
print("\nmedian of %d runs:\n\n| method | p99 ms (median) | p99 ms (min - max) |\n|---|---:|---:|" % runs)
for k, v in p99.items():
    print("| %s | %.3f | %.3f - %.3f |" % (k, statistics.median(v), min(v), max(v)))
if cpu:
    print("\ndaemon CPU a cycle: median %d us (%d - %d)" % (statistics.median(cpu), min(cpu), max(cpu)))
PY
fi
exit $rc
