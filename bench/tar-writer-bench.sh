#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# tar-writer-bench.sh: speed of the tar writer (the differ's Compare) on real
# file data, against the usual compressors on the same tar.
#
# The source is the first LIMIT bytes of file data under SOURCE (default
# 1 GiB of /usr), walked by tarw-driver (tests/tar-writer/, built with the
# tests). Rows:
#   sha256          `openssl dgst -sha256` of the plain tar: one hash pass
#   ours none       walk + read every file + tar + one sha256 (diffID = digest)
#   ours gzip       ... + isa-l deflate level 1 + sha256 of both streams
#   ours zstd       ... + zstd level 3 + sha256 of both streams
#   gzip -1, pigz -1 -p1, zstd -3 -T1: compress the plain tar (from the page
#                   cache) to /dev/null, no hashing
# Every row writes to /dev/null. Each row runs --repeat times and the best
# (lowest) wall and CPU times are reported (--stat median for the median):
# on a shared machine the best run is the one least disturbed. CPU time is
# user + sys of the process and its threads. Ratios are "tool time / our
# time".
#
# Builds nothing: give it a tarw-driver from an optimised build without
# sanitizers.
set -euo pipefail

prog=$(basename "$0")

usage() {
	cat <<EOF
usage: $prog [options]
  --driver PATH   tarw-driver to measure (default build/tests/tar-writer/tarw-driver)
  --source DIR    directory to walk (default /usr)
  --limit BYTES   file data to take from it (default 1073741824)
  --workdir DIR   the plain tar and logs (default /var/tmp/tar-writer-bench)
  --repeat N      runs of each measurement (default 3)
  --stat S        min (default) or median of the runs
  --report FILE   also write the results as Markdown to FILE
  -h, --help
EOF
}

driver=build/tests/tar-writer/tarw-driver
source=/usr
limit=1073741824
work=/var/tmp/tar-writer-bench
repeat=3
stat=min
report=

while [ $# -gt 0 ]; do
	case "$1" in
	--driver) driver=$2; shift 2 ;;
	--source) source=$2; shift 2 ;;
	--limit) limit=$2; shift 2 ;;
	--workdir) work=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--stat) stat=$2; shift 2 ;;
	--report) report=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

for t in openssl gzip pigz zstd /usr/bin/time; do
	command -v "$t" >/dev/null || { echo "$prog: $t is missing" >&2; exit 1; }
done
[ -x "$driver" ] || { echo "$prog: no driver at $driver (build the tests first)" >&2; exit 1; }
mkdir -p "$work"
tar="$work/src.tar"

echo "preparing: $limit bytes of file data from $source ..."
"$driver" --limit "$limit" -o "$tar" "$source" 2>"$work/prepare.log"
# a second walk: the files and the tar are in the page cache for every row
"$driver" --limit "$limit" -o /dev/null "$source" 2>/dev/null
cat "$tar" >/dev/null
tar_bytes=$(stat -c %s "$tar")
load=$(cut -d' ' -f1-3 /proc/loadavg)
entries=$(sed -n 's/^entries=//p' "$work/prepare.log")
data=$(sed -n 's/^data=//p' "$work/prepare.log")
echo "plain tar: $tar_bytes bytes, $entries entries, $data bytes of file data"

# pick: the min or the median of numbers on stdin
pick() {
	if [ "$stat" = median ]; then
		sort -g | sed -n "$(((repeat + 1) / 2))p"
	else
		sort -g | head -1
	fi
}

# measure NAME OUTFILE-FOR-SIZE CMD...: runs CMD $repeat times under
# /usr/bin/time; records the picked wall and CPU seconds and the output size
declare -A wall cpu size
names=()
measure() {
	local name=$1 sizefile=$2
	shift 2
	local walls=() cpus=()
	for _ in $(seq "$repeat"); do
		/usr/bin/time -f '%e %U %S' -o "$work/time" "$@" >"$work/out" 2>"$work/err" || {
			echo "$prog: '$name' failed:" >&2
			cat "$work/err" >&2
			exit 1
		}
		read -r w u s <"$work/time"
		walls+=("$w")
		cpus+=("$(echo "$u + $s" | bc)")
	done
	wall[$name]=$(printf '%s\n' "${walls[@]}" | pick)
	cpu[$name]=$(printf '%s\n' "${cpus[@]}" | pick)
	if [ "$sizefile" = out ]; then
		size[$name]=$(stat -c %s "$work/out")
	elif [ "$sizefile" = driver ]; then
		size[$name]=$(sed -n 's/^size=//p' "$work/err")
	else
		size[$name]=$tar_bytes
	fi
	names+=("$name")
	printf '%-14s wall %7.2f s  cpu %7.2f s  %10s bytes\n' "$name" "${wall[$name]}" \
		"${cpu[$name]}" "${size[$name]}"
}

# the driver writes its result to stderr and the archive to -o
measure "sha256" none openssl dgst -sha256 "$tar"
measure "ours none" driver "$driver" --limit "$limit" -o /dev/null "$source"
measure "ours gzip" driver "$driver" --gzip --limit "$limit" -o /dev/null "$source"
measure "ours zstd" driver "$driver" --zstd --limit "$limit" -o /dev/null "$source"
measure "gzip -1" out gzip -1 -c "$tar"
measure "pigz -1 -p1" out pigz -1 -p 1 -c "$tar"
measure "zstd -3 -T1" out zstd -3 -T1 -q -c "$tar"

mbs() { echo "scale=0; $tar_bytes / $1 / 1000000" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }

table() {
	echo "| row | wall s | cpu s | MB/s (wall) | MB/s (cpu) | output bytes | ratio |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for n in "${names[@]}"; do
		echo "| $n | ${wall[$n]} | ${cpu[$n]} | $(mbs "${wall[$n]}") | $(mbs "${cpu[$n]}") |" \
			"${size[$n]} | $(ratio "${size[$n]}" "$tar_bytes") |"
	done
	echo
	echo "| comparison | wall: tool / ours | cpu: tool / ours |"
	echo "|---|---:|---:|"
	for pair in "gzip -1:ours gzip" "pigz -1 -p1:ours gzip" "zstd -3 -T1:ours zstd"; do
		local t=${pair%%:*} o=${pair#*:}
		echo "| $t vs $o | $(ratio "${wall[$t]}" "${wall[$o]}") | $(ratio "${cpu[$t]}" "${cpu[$o]}") |"
	done
}

echo
echo "source: $source, $data bytes of file data, $entries entries, plain tar $tar_bytes bytes;" \
	"$stat of $repeat runs; $(nproc) CPUs: $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"; echo "load average before: $load"
table
if [ -n "$report" ]; then
	{
		echo "# tar writer benchmark"
		echo
		echo "source: \`$source\`, $data bytes of file data, $entries entries, plain tar" \
			"$tar_bytes bytes; $stat of $repeat runs; $(nproc) CPUs; load average" \
			"before: $load"
		echo
		table
	} >"$report"
fi
