#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# import-bench.sh: `ctr images import` with client-side unpack (--local) of a
# 2-layer, ~1.2 GB (uncompressed) image of this machine's /usr, into our
# snapshotter + differ and into containerd's overlayfs snapshotter with its
# walking differ, in the same run, on containerd 1.7 (Debian 13's package,
# unpacked by scripts/fetch-debs.sh). Also: the import alone (--no-unpack),
# and each Apply of ours against isa-l's raw inflate of the same blob.
#
#   bench/import-bench.sh [--build DIR] [--work DIR] [--runs N] [--report FILE]
#
# Needs root (containerd, overlayfs). Everything it starts is stopped.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$repo/build
work=/var/tmp/import-bench
runs=3
report=

die() { echo "import-bench: $*" >&2; exit 1; }
log() { echo "import-bench: $*" >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(cd "$2" && pwd); shift 2 ;;
	--work) work=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--report) report=$2; shift 2 ;;
	-h|--help) sed -n '3,14p' "$0"; exit 0 ;;
	*) die "unknown argument $1" ;;
	esac
done
[ "$(id -u)" = 0 ] || die "needs root"
daemon=$build/src/daemon/spin-erofs-snapshotter
[ -x "$daemon" ] || die "no daemon at $daemon (ninja -C $build)"
mkdir -p "$work"
work=$(cd "$work" && pwd)

# ---- inputs -----------------------------------------------------------------
ctd_dir=${SPIN_DEBS:-/var/tmp/spin-debs}/containerd-trixie
"$repo/scripts/fetch-debs.sh" trixie "$ctd_dir" containerd
ctr=$ctd_dir/usr/bin/ctr

image=$work/usr-image.tar
if [ ! -s "$image" ]; then
	log "making the layers from /usr (pigz -6)"
	tar -C / -cf - usr/bin usr/libexec 2>/dev/null | pigz -6 > "$work/l1.tar.gz"
	tar -C / -cf - usr/lib/gcc usr/share/doc usr/share/locale usr/share/man 2>/dev/null |
		pigz -6 > "$work/l2.tar.gz"
	python3 "$here/oci-archive.py" -o "$image" --name docker.io/library/usrbench:1 \
		"$work/l1.tar.gz" "$work/l2.tar.gz" > "$work/layers.txt"
fi
floor=$work/inflate-floor
if [ ! -x "$floor" ] || [ "$here/inflate-floor.c" -nt "$floor" ]; then
	gcc -O2 -Wall -o "$floor" "$here/inflate-floor.c" -lisal || die "cannot build inflate-floor"
fi
raw=0
for l in "$work"/l1.tar.gz "$work"/l2.tar.gz; do
	raw=$((raw + $(gzip -l "$l" | awk 'NR==2 { print $2 }')))
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# the raw inflate floor of each blob, before anything else runs (after the
# imports, containerd may still be deleting unpacked trees), median of 5
declare -A floor_s
while read -r name _; do
	cat "$work/$name" > /dev/null # in the page cache, as containerd's copy will be
	floor_s[$name]=$(median $(for _ in 1 2 3 4 5; do "$floor" "$work/$name" | awk '{ print $2 }'; done))
done < "$work/layers.txt"

# ---- the lab -----------------------------------------------------------------
export LAB_DIFFER=1 LAB_CONTAINERD=$ctd_dir/usr/bin/containerd LAB_CTR=$ctr
export SPIN_EROFS_SNAPSHOTTER=$daemon LAB_CONTAINERD_LOG_LEVEL=warn
# shellcheck source=../tests/integration/lab.sh
. "$repo/tests/integration/lab.sh"
lab=$work/lab
if [ -d "$lab/sn" ]; then chattr -R -i "$lab/sn" 2>/dev/null || true; fi
rm -rf "$lab"
lab_start "$lab" >/dev/null
trap 'lab_stop >/dev/null 2>&1 || true' EXIT

now() { date +%s.%N; }
timed() { local t0; t0=$(now); "$@" >/dev/null; echo "$(now) - $t0" | bc; }
remove() { lab_ctr images rm --sync docker.io/library/usrbench:1 >/dev/null 2>&1 || true; }

declare -A t
for ((i = 1; i <= runs; i++)); do
	remove
	t[noun,$i]=$(timed lab_ctr images import --local --no-unpack "$image")
	remove
	sync
	t[ours,$i]=$(timed lab_ctr images import --local --snapshotter spin-erofs "$image")
	remove
	sync
	t[ov,$i]=$(timed lab_ctr images import --local --snapshotter overlayfs "$image")
	remove
	sync
	log "run $i: import only ${t[noun,$i]} s, ours ${t[ours,$i]} s, overlayfs ${t[ov,$i]} s"
done

m_noun=$(median $(for ((i = 1; i <= runs; i++)); do echo "${t[noun,$i]}"; done))
m_ours=$(median $(for ((i = 1; i <= runs; i++)); do echo "${t[ours,$i]}"; done))
m_ov=$(median $(for ((i = 1; i <= runs; i++)); do echo "${t[ov,$i]}"; done))

# each Apply of ours (the daemon's log: one a run, median) against the raw
# inflate of its blob (measured first)
applies=$(grep 'msg=applied' "$lab/sn.log")
apply_rows=
while read -r name digest size diffid _; do
	ms=$(median $(grep "digest=$digest" <<<"$applies" | sed -n 's/.* ms=\([0-9.]*\).*/\1/p'))
	fl=${floor_s[$name]}
	apply_rows+="| $name | $((size / 1000000)) MB | $(awk -v s="$fl" 'BEGIN { printf "%.2f s", s }') | $(awk -v m="$ms" 'BEGIN { printf "%.2f s", m / 1000 }') | $(awk -v s="$fl" -v m="$ms" 'BEGIN { printf "%.0f%%", 100 * s / (m / 1000) }') |"$'\n'
done < "$work/layers.txt"

out=$(cat <<EOF
import-bench: $(($(stat -c %s "$image") / 1000000)) MB image, 2 gzip layers, $((raw / 1000000)) MB uncompressed; containerd $("$ctr" --version | awk '{ print $3 }'); medians of $runs

| ctr images import --local | time | ratio to overlayfs |
|---|---:|---:|
| no unpack (content only) | $(printf '%.2f' "$m_noun") s | |
| ours (spin-erofs + spin-erofs-diff) | $(printf '%.2f' "$m_ours") s | $(awk -v a="$m_ours" -v b="$m_ov" 'BEGIN { printf "%.2f", a / b }') |
| overlayfs + walking differ | $(printf '%.2f' "$m_ov") s | 1.00 |
| unpack alone, ours / overlayfs | $(awk -v a="$m_ours" -v n="$m_noun" 'BEGIN { printf "%.2f s", a - n }') / $(awk -v a="$m_ov" -v n="$m_noun" 'BEGIN { printf "%.2f s", a - n }') | $(awk -v a="$m_ours" -v b="$m_ov" -v n="$m_noun" 'BEGIN { printf "%.2f", (a - n) / (b - n) }') |

| layer blob | size | isa-l raw inflate | our Apply | Apply speed / inflate speed |
|---|---:|---:|---:|---:|
$apply_rows
EOF
)
echo "$out"
[ -z "$report" ] || echo "$out" > "$report"
