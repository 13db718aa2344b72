#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# import-bench.sh: `ctr images import` with client-side unpack (--local) of a
# 2-layer, ~1.2 GB (uncompressed) image of this machine's /usr, into our
# snapshotter + differ and into containerd's overlayfs snapshotter with its
# walking differ, in the same run, on containerd 1.7 (Debian 13's package,
# unpacked by scripts/fetch-debs.sh). Also: the import alone (--no-unpack),
# and each Apply of ours against isa-l's raw inflate of the same blob,
# measured just before it. Each import starts on a settled machine (disk
# written back, CPUs idle), as what a removal leaves behind would otherwise
# land in the next measurement.
#
#   bench/import-bench.sh [--build DIR] [--work DIR] [--runs N] [--fs ext4|here]
#                         [--report FILE]
#
# --fs ext4 (default): each run's lab (containerd's root and ours) lives on a
# fresh 8 GiB ext4 (mkfs defaults, journal included) on a loop device with
# direct I/O, made and removed by the run; --fs here: in WORK's own file
# system (on a journal-less ext4 such as this lab's /var/tmp, every new inode
# is checked against recently deleted ones, so overlayfs's figures grow with
# the churn of earlier runs).
#
# Needs root (containerd, overlayfs). Everything it starts is stopped.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$repo/build
work=/var/tmp/import-bench
runs=3
fs=ext4
report=

die() { echo "import-bench: $*" >&2; exit 1; }
log() { echo "import-bench: $*" >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(cd "$2" && pwd); shift 2 ;;
	--work) work=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--fs) fs=$2; shift 2 ;;
	--report) report=$2; shift 2 ;;
	-h|--help) sed -n '3,24p' "$0"; exit 0 ;;
	*) die "unknown argument $1" ;;
	esac
done
[ "$(id -u)" = 0 ] || die "needs root"
case $fs in ext4|here) ;; *) die "--fs takes ext4 or here" ;; esac
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

# the raw inflate floor of one blob (page cache warm, as containerd's copy
# will be): the median of 3
floor_of() {
	cat "$work/$1" > /dev/null
	median $(for _ in 1 2 3; do "$floor" "$work/$1" | awk '{ print $2 }'; done)
}

# shellcheck source=lib.sh
. "$here/lib.sh"

# ---- the lab -----------------------------------------------------------------
export LAB_DIFFER=1 LAB_CONTAINERD=$ctd_dir/usr/bin/containerd LAB_CTR=$ctr
export SPIN_EROFS_SNAPSHOTTER=$daemon LAB_CONTAINERD_LOG_LEVEL=warn
# shellcheck source=../tests/integration/lab.sh
. "$repo/tests/integration/lab.sh"
loopdev=
# a lab on a fresh file system (--fs ext4) or in $work (--fs here)
lab_up() {
	if [ "$fs" = ext4 ]; then
		fallocate -l 8G "$work/lab-fs.img"
		# inode tables and journal zeroed now, not during the measurement
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/lab-fs.img"
		loopdev=$(losetup -f --show --direct-io=on "$work/lab-fs.img")
		mkdir -p "$work/lab-fs"
		mount "$loopdev" "$work/lab-fs"
		lab=$work/lab-fs/lab
	else
		lab=$work/lab
		if [ -d "$lab/sn" ]; then chattr -R -i "$lab/sn" 2>/dev/null || true; fi
		rm -rf "$lab"
	fi
	lab_start "$lab" >/dev/null
}
lab_down() {
	lab_stop >/dev/null 2>&1 || true
	if [ -d "$lab/sn" ]; then chattr -R -i "$lab/sn" 2>/dev/null || true; fi
	if [ -n "$loopdev" ]; then
		umount "$work/lab-fs" 2>/dev/null || umount -l "$work/lab-fs" 2>/dev/null || true
		losetup -d "$loopdev" 2>/dev/null || true
		loopdev=
		rm -f "$work/lab-fs.img"
	else
		rm -rf "$lab"
	fi
}
lab=
trap 'lab_down' EXIT

now() { date +%s.%N; }
timed() { local t0; t0=$(now); "$@" >/dev/null; echo "$(now) - $t0" | bc; }
remove() { lab_ctr images rm --sync docker.io/library/usrbench:1 >/dev/null 2>&1 || true; }

declare -A t floor_s apply_ms
for ((i = 1; i <= runs; i++)); do
	lab_up
	t[noun,$i]=$(timed lab_ctr images import --local --no-unpack "$image")
	remove
	settle
	# the floors just before the Applies they are compared with
	while read -r name _; do
		floor_s[$name,$i]=$(floor_of "$name")
	done < "$work/layers.txt"
	t[ours,$i]=$(timed lab_ctr images import --local --snapshotter spin-erofs "$image")
	while read -r name digest _; do
		apply_ms[$name,$i]=$(grep 'msg=applied' "$lab/sn.log" | grep "digest=$digest" |
			sed -n 's/.* ms=\([0-9.]*\).*/\1/p' | tail -1)
		[ -n "${apply_ms[$name,$i]}" ] || die "run $i: no Apply of $name in the daemon's log"
	done < "$work/layers.txt"
	remove
	settle
	t[ov,$i]=$(timed lab_ctr images import --local --snapshotter overlayfs "$image")
	remove
	lab_down
	log "run $i: import only ${t[noun,$i]} s, ours ${t[ours,$i]} s, overlayfs ${t[ov,$i]} s"
done

m_noun=$(median $(for ((i = 1; i <= runs; i++)); do echo "${t[noun,$i]}"; done))
m_ours=$(median $(for ((i = 1; i <= runs; i++)); do echo "${t[ours,$i]}"; done))
m_ov=$(median $(for ((i = 1; i <= runs; i++)); do echo "${t[ov,$i]}"; done))

# each Apply of ours (the daemon's log) against the raw inflate of its blob
# measured just before; the median of the runs' ratios, and their range
apply_rows=
while read -r name _ size _; do
	ratios=() fl=() ap=()
	for ((i = 1; i <= runs; i++)); do
		fl+=("${floor_s[$name,$i]}")
		ap+=("$(awk -v m="${apply_ms[$name,$i]}" 'BEGIN { print m / 1000 }')")
		ratios+=("$(awk -v s="${floor_s[$name,$i]}" -v m="${apply_ms[$name,$i]}" 'BEGIN { print 100 * s / (m / 1000) }')")
	done
	apply_rows+="| $name | $((size / 1000000)) MB | $(printf '%.2f s' "$(median "${fl[@]}")") | $(printf '%.2f s' "$(median "${ap[@]}")") | $(printf '%.0f%%' "$(median "${ratios[@]}")") ($(printf '%s\n' "${ratios[@]}" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo, hi }')) |"$'\n'
done < "$work/layers.txt"

out=$(cat <<EOF
import-bench: $(($(stat -c %s "$image") / 1000000)) MB image, 2 gzip layers, $((raw / 1000000)) MB uncompressed; containerd $("$ctr" --version | awk '{ print $3 }'); medians of $runs; lab on $([ "$fs" = ext4 ] && echo "a fresh ext4 each run" || echo "$work")

| ctr images import --local | time | ratio to overlayfs |
|---|---:|---:|
| no unpack (content only) | $(printf '%.2f' "$m_noun") s | |
| ours (spin-erofs + spin-erofs-diff) | $(printf '%.2f' "$m_ours") s | $(awk -v a="$m_ours" -v b="$m_ov" 'BEGIN { printf "%.2f", a / b }') |
| overlayfs + walking differ | $(printf '%.2f' "$m_ov") s | 1.00 |
| unpack alone, ours / overlayfs | $(awk -v a="$m_ours" -v n="$m_noun" 'BEGIN { printf "%.2f s", a - n }') / $(awk -v a="$m_ov" -v n="$m_noun" 'BEGIN { printf "%.2f s", a - n }') | $(awk -v a="$m_ours" -v b="$m_ov" -v n="$m_noun" 'BEGIN { printf "%.2f", (a - n) / (b - n) }') |

| layer blob | size | isa-l raw inflate | our Apply | Apply speed / inflate speed (range) |
|---|---:|---:|---:|---:|
$apply_rows
EOF
)
echo "$out"
[ -z "$report" ] || echo "$out" > "$report"
