#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# convert-bench.sh: tar → EROFS conversion speed, memory and image size of
# `erofs-layer convert` against the floor (`cat tar > out`) and, when they are
# available, mkfs.erofs in tar mode: Debian 13's 1.8.6 and the version built
# from Debian sid's source by fetch-mkfs-erofs.sh (docs/architecture.md). See
# bench/README.md.
#
# Builds nothing of the project: give it an erofs-layer binary. Inputs are
# prepared once in the work directory and reused by later runs.
set -euo pipefail

prog=$(basename "$0")
here=$(cd "$(dirname "$0")" && pwd)

usage() {
	cat <<EOF
usage: $prog [options]
  --erofs-layer PATH  the binary to measure (default build/src/tools/erofs-layer)
  --workdir DIR       inputs, outputs and logs (default /var/tmp/erofs-bench)
  --report FILE       also write the results as Markdown to FILE
  --repeat N          runs of each measurement, the median is reported (default 3)
  --inputs LIST       comma-separated subset of usr,small,gzip,zstd (default all)
  --mkfs PATH         a mkfs.erofs with --tar to compare with (default: the one
                      --fetch-mkfs unpacked, else the system's if it has --tar)
  --fetch-mkfs        fetch Debian 13's erofs-utils and its libraries into the
                      work dir (apt-get download with a private apt config),
                      and build sid's mkfs.erofs from source (fetch-mkfs-erofs.sh)
  --mkfs-sid PATH     the second mkfs.erofs (default: the one fetch-mkfs-erofs.sh
                      built, if it did)
  --no-mkfs           do not measure mkfs.erofs
  --prepare-only      prepare the inputs (and --fetch-mkfs), measure nothing
  -h, --help
EOF
}

erofs_layer=build/src/tools/erofs-layer
work=/var/tmp/erofs-bench
report=
repeat=3
inputs=usr,small,gzip,zstd
mkfs_path=
mkfs_sid_path=
fetch=0
no_mkfs=0
prepare_only=0
while [ $# -gt 0 ]; do
	case $1 in
	--erofs-layer) erofs_layer=$2; shift 2 ;;
	--workdir) work=$2; shift 2 ;;
	--report) report=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--inputs) inputs=$2; shift 2 ;;
	--mkfs) mkfs_path=$2; shift 2 ;;
	--mkfs-sid) mkfs_sid_path=$2; shift 2 ;;
	--fetch-mkfs) fetch=1; shift ;;
	--no-mkfs) no_mkfs=1; shift ;;
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
[[ $repeat =~ ^[1-9][0-9]*$ ]] || die "--repeat needs a positive number"
if [ -n "$report" ]; then
	: > "$report" || die "cannot write $report"
	report=$(realpath "$report")
fi
mkdir -p "$work" "$work/out" "$work/logs"
work=$(realpath "$work")
out="$work/out"

# ---- inputs ----

usr_tar=$work/usr.tar
small_tar=$work/small.tar
usr_gz=$work/usr.tar.gz
usr_zst=$work/usr.tar.zst

prepare_usr() {
	[ -s "$usr_tar" ] && return
	local dirs=()
	for d in usr/bin usr/share usr/lib/x86_64-linux-gnu usr/include usr/lib/gcc; do
		[ -d "/$d" ] && dirs+=("$d")
	done
	log "writing $usr_tar from ${dirs[*]}"
	# GNU tar warns about sockets and files changing under it: not fatal.
	tar -cf "$usr_tar.tmp" -C / "${dirs[@]}" 2>"$work/logs/usr-tar.err" || [ $? -eq 1 ]
	mv "$usr_tar.tmp" "$usr_tar"
}

prepare_small() {
	[ -s "$small_tar" ] && return
	log "writing $small_tar (200k small files)"
	python3 "$here/gen-small-tar.py" "$small_tar"
}

prepare_gzip() {
	[ -s "$usr_gz" ] && return
	prepare_usr
	log "writing $usr_gz"
	if command -v pigz >/dev/null; then
		pigz -6 -c "$usr_tar" > "$usr_gz.tmp"
	else
		gzip -6 -c "$usr_tar" > "$usr_gz.tmp"
	fi
	mv "$usr_gz.tmp" "$usr_gz"
}

prepare_zstd() {
	[ -s "$usr_zst" ] && return
	prepare_usr
	command -v zstd >/dev/null || die "zstd is needed for the zstd input"
	log "writing $usr_zst"
	zstd -q -3 -T0 -c "$usr_tar" > "$usr_zst.tmp"
	mv "$usr_zst.tmp" "$usr_zst"
}

# ---- mkfs.erofs 1.8.6 from Debian 13, unpacked (docs/containerd-contract.md) ----

mkfs_dir=$work/mkfs-trixie
mkfs_pkgs=(erofs-utils libc6 liblz4-1 liblzma5 zlib1g libdeflate0 libzstd1 libxxhash0
	libselinux1 libuuid1 libpcre2-8-0)

fetch_mkfs() {
	log "fetching erofs-utils from trixie"
	"$here/../scripts/fetch-debs.sh" trixie "$mkfs_dir" "${mkfs_pkgs[@]}" ||
		die "cannot fetch erofs-utils from trixie"
	log "building erofs-utils from sid's source"
	"$here/fetch-mkfs-erofs.sh" --dest "$mkfs_sid_dir" >/dev/null ||
		die "cannot build erofs-utils from sid's source"
}

# ---- mkfs.erofs from Debian sid's source (fetch-mkfs-erofs.sh) ----

mkfs_sid_dir=${SPIN_DEBS:-/var/tmp/spin-debs}/erofs-utils-sid
mkfs_sid_cmd=()
mkfs_sid_version=
find_mkfs_sid() {
	[ "$no_mkfs" = 1 ] && return
	if [ -n "$mkfs_sid_path" ]; then
		mkfs_sid_cmd=("$mkfs_sid_path")
	elif [ -x "$mkfs_sid_dir/mkfs.erofs" ]; then
		mkfs_sid_cmd=("$mkfs_sid_dir/mkfs.erofs")
	else
		log "no mkfs.erofs built from sid's source: run once with --fetch-mkfs"
		return
	fi
	mkfs_sid_version=$("${mkfs_sid_cmd[@]}" --version 2>&1 | head -1 || true)
	if ! "${mkfs_sid_cmd[@]}" --help 2>&1 | grep -q -- '--tar'; then
		log "'${mkfs_sid_cmd[*]}' has no --tar: not measured"
		mkfs_sid_cmd=()
	fi
}

mkfs_cmd=()
mkfs_version=
find_mkfs() {
	[ "$no_mkfs" = 1 ] && return
	if [ -n "$mkfs_path" ]; then
		mkfs_cmd=("$mkfs_path")
	elif [ -x "$mkfs_dir/usr/bin/mkfs.erofs" ]; then
		local lib=$mkfs_dir/usr/lib/x86_64-linux-gnu
		mkfs_cmd=("$lib/ld-linux-x86-64.so.2" --library-path "$lib" "$mkfs_dir/usr/bin/mkfs.erofs")
	elif command -v mkfs.erofs >/dev/null && mkfs.erofs --help 2>&1 | grep -q -- '--tar'; then
		mkfs_cmd=(mkfs.erofs)
	else
		log "no mkfs.erofs with --tar (Debian 12 has 1.5): run once with --fetch-mkfs"
		return
	fi
	mkfs_version=$("${mkfs_cmd[@]}" --version 2>&1 | head -1 || true)
	if ! "${mkfs_cmd[@]}" --help 2>&1 | grep -q -- '--tar'; then
		log "'${mkfs_cmd[*]}' has no --tar: not measured"
		mkfs_cmd=()
	fi
}

# mkfs_decompress_opt KIND MKFS...: the option of that mkfs.erofs for a
# compressed tar, if it has one ("" if not).
mkfs_decompress_opt() {
	local help kind=$1
	shift
	help=$("$@" --help 2>&1 || true)
	case $kind in
	gzip) grep -q -- '--ungzip' <<<"$help" && echo --ungzip ||
		{ grep -q -- '--gzip' <<<"$help" && echo --gzip; } || true ;;
	zstd) grep -q -- '--unzstd' <<<"$help" && echo --unzstd || true ;;
	esac
}

# ---- measuring ----

# Results: per "input|tool": space-separated walls and RSS (KiB).
declare -A walls rss imgsize
declare -A inodes_of bytes_of
tools_of_input=()

median() {
	tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'
}

# run INPUT TOOL OUTFILE CMD...: one timed run (outputs removed and flushed
# outside the timing, so that one run's writeback does not land in the next).
# OUTFILE is "-" for commands that write no file.
run() {
	local input=$1 tool=$2 outfile=$3
	shift 3
	local tf=$work/logs/time.$$ lf="$work/logs/$input-$tool"
	[ "$outfile" = - ] && outfile=
	[ -z "$outfile" ] || rm -f "$outfile"
	sync
	if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" >"$lf.out" 2>"$lf.err"; then
		log "$input/$tool failed (see $lf.err):"
		tail -5 "$lf.err" >&2
		walls[$input/$tool]+=" fail"
		return 0
	fi
	local w m
	read -r w m < <(tail -1 "$tf")
	walls[$input/$tool]+=" $w"
	rss[$input/$tool]+=" $m"
	if [ -n "$outfile" ] && [ -f "$outfile" ]; then
		imgsize[$input/$tool]=$(stat -c %s "$outfile")
	fi
	if [ "$tool" = ours ]; then
		inodes_of[$input]=$(awk '$1 == "inodes" { print $2 }' "$lf.out")
		local tb
		tb=$(awk '$1 == "tar_bytes" { print $2 }' "$lf.out")
		[ -n "$tb" ] && bytes_of[$input]=$tb
	fi
	[ -z "$outfile" ] || rm -f "$outfile"
	sync
	printf '  %-8s %-12s %8s s %8s MiB\n' "$input" "$tool" "$w" "$((m / 1024))" >&2
}

# Checks our image of the input once (untimed): it must pass our check and
# fsck.erofs when present.
declare -A verdict
verify() {
	local input=$1 src=$2 img=$out/verify.erofs
	if ! "$erofs_layer" convert -o "$img" "$src" >/dev/null 2>"$work/logs/$input-verify.err"; then
		verdict[$input]="convert failed"
		return
	fi
	if "$erofs_layer" check "$img" >/dev/null 2>>"$work/logs/$input-verify.err"; then
		verdict[$input]="check ok"
	else
		verdict[$input]="CHECK FAILED"
	fi
	if command -v fsck.erofs >/dev/null; then
		if fsck.erofs "$img" >/dev/null 2>>"$work/logs/$input-verify.err"; then
			verdict[$input]+=", fsck.erofs ok"
		else
			verdict[$input]+=", FSCK.EROFS FAILED"
		fi
	fi
	rm -f "$img"
}

measure_input() {
	local input=$1 src=$2 kind=$3 # kind: tar, gzip, zstd
	local -a tools=(cat cat+fsync ours)
	local mopt= sopt=
	[ "$kind" = gzip ] && tools+=(isal-floor)
	[ "$kind" = zstd ] && command -v zstd >/dev/null && tools+=(zstd-floor)
	if [ ${#mkfs_cmd[@]} -gt 0 ]; then
		if [ "$kind" = tar ]; then
			tools+=(mkfs mkfs+fsync)
		else
			mopt=$(mkfs_decompress_opt "$kind" "${mkfs_cmd[@]}")
			[ -n "$mopt" ] && tools+=(mkfs mkfs+fsync)
		fi
	fi
	if [ ${#mkfs_sid_cmd[@]} -gt 0 ]; then
		if [ "$kind" = tar ]; then
			tools+=(mkfs-sid mkfs-sid+fsync)
		else
			sopt=$(mkfs_decompress_opt "$kind" "${mkfs_sid_cmd[@]}")
			[ -n "$sopt" ] && tools+=(mkfs-sid mkfs-sid+fsync)
		fi
	fi
	tools_of_input+=("$input:${tools[*]}")
	log "$input: $(stat -c %s "$src") bytes; caching it; verifying our image once"
	cat "$src" > /dev/null
	verify "$input" "$src"
	cat "$src" > /dev/null
	for ((i = 1; i <= repeat; i++)); do
		for tool in "${tools[@]}"; do
			case $tool in
			cat) run "$input" cat "$out/cat.out" bash -c 'exec cat "$1" > "$2"' _ "$src" "$out/cat.out" ;;
			ours) run "$input" ours "$out/ours.erofs" "$erofs_layer" convert -o "$out/ours.erofs" "$src" ;;
			cat+fsync) run "$input" cat+fsync "$out/cat.out" \
				bash -c 'cat "$1" > "$2" && exec sync "$2"' _ "$src" "$out/cat.out" ;;
			mkfs) run "$input" mkfs "$out/mkfs.erofs" "${mkfs_cmd[@]}" --quiet --tar=f $mopt --aufs \
				-Enoinline_data --sort=none -b4096 "$out/mkfs.erofs" "$src" ;;
			mkfs+fsync) run "$input" mkfs+fsync "$out/mkfs.erofs" \
				bash -c 'o=$1; shift; "$@" && exec sync "$o"' _ "$out/mkfs.erofs" \
				"${mkfs_cmd[@]}" --quiet --tar=f $mopt --aufs -Enoinline_data --sort=none -b4096 \
				"$out/mkfs.erofs" "$src" ;;
			mkfs-sid) run "$input" mkfs-sid "$out/mkfs.erofs" "${mkfs_sid_cmd[@]}" --quiet --tar=f $sopt \
				--aufs -Enoinline_data --sort=none -b4096 "$out/mkfs.erofs" "$src" ;;
			mkfs-sid+fsync) run "$input" mkfs-sid+fsync "$out/mkfs.erofs" \
				bash -c 'o=$1; shift; "$@" && exec sync "$o"' _ "$out/mkfs.erofs" \
				"${mkfs_sid_cmd[@]}" --quiet --tar=f $sopt --aufs -Enoinline_data --sort=none -b4096 \
				"$out/mkfs.erofs" "$src" ;;
			isal-floor) run "$input" isal-floor - "$work/inflate-floor" "$src" ;;
			zstd-floor) run "$input" zstd-floor - bash -c 'exec zstd -q -d -c "$1" > /dev/null' _ "$src" ;;
			esac
		done
	done
}

build_floor() {
	local bin=$work/inflate-floor
	if [ ! -x "$bin" ] || [ "$here/inflate-floor.c" -nt "$bin" ]; then
		gcc -O2 -Wall -o "$bin" "$here/inflate-floor.c" -lisal || die "cannot build inflate-floor (libisal-dev?)"
	fi
}

# ---- main ----

[ "$fetch" = 1 ] && fetch_mkfs
find_mkfs
find_mkfs_sid
IFS=, read -r -a want <<<"$inputs"
for i in "${want[@]}"; do
	case $i in
	usr) prepare_usr ;;
	small) prepare_small ;;
	gzip) prepare_gzip; build_floor ;;
	zstd) prepare_zstd ;;
	*) die "unknown input '$i' (usr, small, gzip, zstd)" ;;
	esac
done

if [ "$prepare_only" = 1 ]; then
	log "inputs ready in $work; mkfs.erofs: ${mkfs_cmd[*]:-none} ${mkfs_version:+($mkfs_version)}"
	log "mkfs.erofs from sid's source: ${mkfs_sid_cmd[*]:-none} ${mkfs_sid_version:+($mkfs_sid_version)}"
	exit 0
fi
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "erofs-layer: $erofs_layer"
log "mkfs.erofs: ${mkfs_cmd[*]:-none} ${mkfs_version:+($mkfs_version)}"
log "mkfs.erofs (sid): ${mkfs_sid_cmd[*]:-none} ${mkfs_sid_version:+($mkfs_sid_version)}"
for i in "${want[@]}"; do
	case $i in
	usr) measure_input usr "$usr_tar" tar ;;
	small) measure_input small "$small_tar" tar ;;
	gzip) measure_input gzip "$usr_gz" gzip ;;
	zstd) measure_input zstd "$usr_zst" zstd ;;
	esac
done

# ---- results ----

fmt_mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2f", a / b }'; }

table=$(mktemp)
notes=$(mktemp)
trap 'rm -f "$table" "$notes" "$work/logs/time.$$"' EXIT
{
	echo "| input | input MB | inodes | tool | wall s (median of $repeat) | MB/s (uncompressed) | peak RSS MiB | image MB |"
	echo "|---|---:|---:|---|---:|---:|---:|---:|"
} > "$table"

for entry in "${tools_of_input[@]}"; do
	input=${entry%%:*}
	read -r -a tools <<<"${entry#*:}"
	case $input in
	usr) src=$usr_tar ;;
	small) src=$small_tar ;;
	gzip) src=$usr_gz ;;
	zstd) src=$usr_zst ;;
	esac
	insize=$(stat -c %s "$src")
	ubytes=${bytes_of[$input]:-$insize}
	ino=${inodes_of[$input]:-}
	declare -A med=() mrss=()
	for tool in "${tools[@]}"; do
		k="$input/$tool"
		if [[ ${walls[$k]:-} == *fail* ]]; then
			med[$tool]=
			echo "| $input | $(fmt_mb "$insize") | ${ino:--} | $tool | failed | | | |" >> "$table"
			continue
		fi
		med[$tool]=$(median "${walls[$k]:-}")
		mrss[$tool]=$(median "${rss[$k]:-}")
		speed=$(awk -v b="$ubytes" -v t="${med[$tool]}" 'BEGIN { if (t > 0) printf "%.0f", b / t / 1e6; else print "-" }')
		[[ $tool == cat* ]] && speed=$(awk -v b="$insize" -v t="${med[$tool]}" 'BEGIN { if (t > 0) printf "%.0f", b / t / 1e6; else print "-" }')
		img=-
		[ -n "${imgsize[$k]:-}" ] && [[ $tool != cat* ]] && img=$(fmt_mb "${imgsize[$k]}")
		echo "| $input | $(fmt_mb "$insize") | ${ino:--} | $tool | ${med[$tool]} | $speed | $((${mrss[$tool]:-0} / 1024)) | $img |" >> "$table"
	done
	{
		printf -- "- **%s** (%s): " "$input" "${verdict[$input]:-not verified}"
		printf "ours/cat %s (ours/cat+fsync %s)" "$(ratio "${med[ours]:-}" "${med[cat]:-}")" \
			"$(ratio "${med[ours]:-}" "${med[cat+fsync]:-}")"
		if [ -n "${med[mkfs]:-}" ]; then
			printf ", mkfs/cat %s, ours/mkfs %s (ours/mkfs+fsync %s)" \
				"$(ratio "${med[mkfs]}" "${med[cat]:-}")" \
				"$(ratio "${med[ours]:-}" "${med[mkfs]}")" \
				"$(ratio "${med[ours]:-}" "${med[mkfs+fsync]:-}")"
			printf ", image ours/mkfs %s" "$(ratio "${imgsize[$input/ours]:-}" "${imgsize[$input/mkfs]:-}")"
		fi
		if [ -n "${med[mkfs-sid]:-}" ]; then
			printf ", mkfs-sid/cat %s, ours/mkfs-sid %s (ours/mkfs-sid+fsync %s)" \
				"$(ratio "${med[mkfs-sid]}" "${med[cat]:-}")" \
				"$(ratio "${med[ours]:-}" "${med[mkfs-sid]}")" \
				"$(ratio "${med[ours]:-}" "${med[mkfs-sid+fsync]:-}")"
			printf ", image ours/mkfs-sid %s" "$(ratio "${imgsize[$input/ours]:-}" "${imgsize[$input/mkfs-sid]:-}")"
		fi
		if [ -n "$ino" ] && [ -n "${mrss[ours]:-}" ]; then
			budget=$(awk -v n="$ino" 'BEGIN { printf "%.0f", (64 * 1048576 + 200 * n) / 1024 }')
			printf ", RSS %s MiB vs budget %s MiB (64 MiB + 200 B x %s inodes): %s" \
				"$((mrss[ours] / 1024))" "$((budget / 1024))" "$ino" \
				"$([ "${mrss[ours]}" -le "$budget" ] && echo within || echo OVER)"
		fi
		if [ "$input" = gzip ] && [ -n "${med[isal-floor]:-}" ] && [ -n "${med[ours]:-}" ]; then
			pct=$(awk -v a="${med[isal-floor]}" -v b="${med[ours]}" 'BEGIN { printf "%.0f", a / b * 100 }')
			printf ", gzip speed %s%% of the isa-l inflate floor" "$pct"
		fi
		if [ "$input" = zstd ] && [ -n "${med[zstd-floor]:-}" ] && [ -n "${med[ours]:-}" ]; then
			pct=$(awk -v a="${med[zstd-floor]}" -v b="${med[ours]}" 'BEGIN { printf "%.0f", a / b * 100 }')
			printf ", zstd speed %s%% of the zstd -d floor" "$pct"
		fi
		echo
	} >> "$notes"
	unset med mrss
done

mkfs_desc=none
[ ${#mkfs_cmd[@]} -gt 0 ] && mkfs_desc="${mkfs_version:-mkfs.erofs} (${mkfs_cmd[-1]}), --tar=f --aufs -Enoinline_data --sort=none -b4096"
mkfs_sid_desc=none
[ ${#mkfs_sid_cmd[@]} -gt 0 ] && mkfs_sid_desc="${mkfs_sid_version:-mkfs.erofs} (${mkfs_sid_cmd[-1]}, built from Debian sid's source), same options"
header="erofs-layer convert benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(uname -r)
load average at start: $load_start, at end: $(cut -d' ' -f1-3 /proc/loadavg)
erofs-layer: $erofs_layer ($(git -C "$here/.." describe --always --dirty 2>/dev/null || echo 'no git'))
mkfs.erofs: $mkfs_desc
mkfs-sid: $mkfs_sid_desc"
echo
echo "$header"
echo
cat "$table"
echo
cat "$notes"
if [ -n "$report" ]; then
	{
		echo "# erofs-layer convert benchmark"
		echo
		sed 's/^/    /' <<<"$header"
		echo
		cat "$table"
		echo
		echo "Ratios are of median wall times. MB/s: uncompressed tar bytes per second (cat: input bytes)."
		echo "Floors: cat = \`cat tar > out\`; isal-floor = isa-l inflate to /dev/null; zstd-floor = \`zstd -d > /dev/null\`."
		echo "erofs-layer convert publishes its image with fsync (docs/durability.md); cat and mkfs.erofs (both versions) do not: the +fsync rows add \`sync OUT\` to them."
		echo
		cat "$notes"
	} > "$report"
	log "report written to $report"
fi
