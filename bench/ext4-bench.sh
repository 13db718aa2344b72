#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# ext4-bench.sh: container-commit conversion speed. A ~1 GB tree copied from
# /usr is put into an ext4 image with `mkfs.ext4 -d` (as upper/ of a
# rwlayer.img), then converted to EROFS by `erofs-layer convert --ext4
# IMAGE:upper` (libext2fs, no mount) and, for reference, by `erofs-layer
# convert --dir` from the same tree on the host file system. Also times
# `e2fsck -f -p` on the image (what --fsck adds). Runs as root or not.
#
# Builds nothing of the project: give it an erofs-layer binary. Inputs are
# prepared once in the work directory and reused by later runs.
set -euo pipefail

prog=$(basename "$0")

usage() {
	cat <<EOF
usage: $prog [options]
  --erofs-layer PATH  the binary to measure (default build/src/tools/erofs-layer)
  --workdir DIR       inputs, outputs and logs (default /var/tmp/erofs-ext4-bench)
  --repeat N          runs of each measurement, the median is reported (default 3)
  --cold              drop the page cache before each run (root only)
  --report FILE       also write the results as Markdown to FILE
  --prepare-only      prepare the tree and the image, measure nothing
  -h, --help
EOF
}

erofs_layer=build/src/tools/erofs-layer
work=/var/tmp/erofs-ext4-bench
repeat=3
cold=0
report=
prepare_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--erofs-layer) erofs_layer=$2; shift 2 ;;
	--workdir) work=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--cold) cold=1; shift ;;
	--report) report=$2; shift 2 ;;
	--prepare-only) prepare_only=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done

die() { echo "$prog: $*" >&2; exit 1; }
log() { echo "$prog: $*" >&2; }

[ -x "$erofs_layer" ] || die "no erofs-layer binary at '$erofs_layer' (build it, or give --erofs-layer)"
erofs_layer=$(realpath "$erofs_layer")
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install time)"
command -v mkfs.ext4 >/dev/null || die "mkfs.ext4 is needed (e2fsprogs)"
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "--repeat needs a positive number"
[ "$cold" = 0 ] || [ -w /proc/sys/vm/drop_caches ] || die "--cold needs root"
e2fsck=
for p in /usr/sbin/e2fsck /sbin/e2fsck; do
	[ -x $p ] && { e2fsck=$p; break; }
done
if [ -n "$report" ]; then
	: >"$report" || die "cannot write $report"
	report=$(realpath "$report")
fi
mkdir -p "$work/out" "$work/logs"
work=$(realpath "$work")
tree=$work/tree
image=$work/rwlayer.img

# ---- inputs ----

prepare() {
	if [ ! -e "$tree/.complete" ]; then
		rm -rf "$tree"
		mkdir -p "$tree/upper/usr" "$tree/work"
		local dirs=()
		for d in bin sbin libexec include lib/gcc lib/python3 lib/python3.11 share/man share/perl; do
			[ -d "/usr/$d" ] && dirs+=("$d")
		done
		log "copying /usr/{${dirs[*]}} to $tree/upper/usr"
		(cd /usr && cp -a --parents "${dirs[@]}" "$tree/upper/usr/") 2>"$work/logs/copy.err" ||
			log "cp reported errors (see $work/logs/copy.err); going on"
		touch "$tree/.complete"
	fi
	if [ ! -s "$image" ] || [ "$image" -ot "$tree/.complete" ]; then
		local bytes size
		bytes=$(du -sb "$tree" | cut -f1)
		size=$(((bytes * 14 / 10 + (256 << 20)) / 4096 * 4096))
		log "making $image ($((size >> 20)) MiB) with mkfs.ext4 -d"
		rm -f "$image"
		truncate -s "$size" "$image"
		mkfs.ext4 -q -F -b 4096 -d "$tree" "$image"
	fi
}

prepare
[ "$prepare_only" = 1 ] && exit 0

# ---- measurements ----

median() {
	tr ' ' '\n' <<<"$*" | grep . | sort -g | awk '{a[NR] = $1} END {
		if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2];
		else printf "%.2f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# run NAME CMD...: appends "wall rss_kib" of one run to $work/logs/NAME.times
run() {
	local name=$1 tf lf
	shift
	tf=$(mktemp)
	lf=$work/logs/$name
	[ "$cold" = 1 ] && { sync; echo 3 >/proc/sys/vm/drop_caches; }
	if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$lf.out" 2>"$lf.err"; then
		cat "$lf.err" >&2
		rm -f "$tf"
		die "$name failed"
	fi
	tail -n1 "$tf" >>"$lf.times"
	rm -f "$tf"
}

rm -f "$work"/logs/*.times
for i in $(seq "$repeat"); do
	log "run $i of $repeat"
	run ext4 "$erofs_layer" convert --ext4 "$image:upper" -o "$work/out/ext4.erofs" \
		--uuid 00000000000000000000000000000001 --epoch 0
	run dir "$erofs_layer" convert --dir "$tree/upper" -o "$work/out/dir.erofs" \
		--uuid 00000000000000000000000000000001 --epoch 0
	if [ -n "$e2fsck" ]; then
		run e2fsck "$e2fsck" -f -p "$image"
	fi
done

tree_mb=$(($(du -sb "$tree/upper" | cut -f1) >> 20))
entries=$(awk '$1 == "entries" {print $2}' "$work/logs/ext4.out")
line() { printf '| %s | %s | %s | %s |\n' "$@"; }
{
	echo "tree: $tree_mb MiB, $entries entries; image $(($(stat -c %s "$image") >> 20)) MiB;" \
		"$(nproc) CPUs; $([ "$cold" = 1 ] && echo 'cold cache' || echo 'warm cache'); median of $repeat"
	echo
	line "what" "wall s" "peak RSS MiB" "EROFS image MiB"
	line "---" "---" "---" "---"
	for name in ext4 dir e2fsck; do
		[ -s "$work/logs/$name.times" ] || continue
		walls=$(cut -d' ' -f1 "$work/logs/$name.times" | tr '\n' ' ')
		rss=$(cut -d' ' -f2 "$work/logs/$name.times" | tr '\n' ' ')
		img=-
		[ -e "$work/out/$name.erofs" ] && img=$(($(stat -c %s "$work/out/$name.erofs") >> 20))
		case $name in
		ext4) label="convert --ext4 IMAGE:upper" ;;
		dir) label="convert --dir (host tree)" ;;
		e2fsck) label="e2fsck -f -p IMAGE" ;;
		esac
		line "$label" "$(median "$walls")" "$(($(median "$rss" | cut -d. -f1) >> 10))" "$img"
	done
} | tee ${report:+"$report"}
