# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# What the containerd benchmarks (pull-bench.sh, import-bench.sh) share.
# Sourced; the caller defines log().

# busy and idle ticks of all CPUs since boot
cpu_ticks() { awk 'NR == 1 { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }

# Waits until the disk is written back and both CPUs are idle (under 5% busy
# over half a second), at most 30 s: a removal or a previous measurement
# leaves deletions, discards and writeback behind, which would otherwise run
# during the next one.
settle() {
	local i a b
	sync
	for ((i = 0; i < 60; i++)); do
		a=$(cpu_ticks)
		sleep 0.5
		b=$(cpu_ticks)
		if awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y)
			busy = y[1] - x[1]; idle = y[2] - x[2]
			exit !(busy + idle > 0 && busy / (busy + idle) < 0.05) }'; then
			return 0
		fi
	done
	log "the CPUs did not settle within 30 s (load: $(cut -d' ' -f1-3 /proc/loadavg))"
}
