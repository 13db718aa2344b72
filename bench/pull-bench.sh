#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# pull-bench.sh: `ctr images pull` from a registry on 127.0.0.1 into a private
# containerd 2.1.9 (Debian sid's package, unpacked by scripts/fetch-debs.sh),
# in ONE run, for each mode:
#
#   fetch     `ctr content fetch` (content only, no unpack)
#   ours      spin-erofs + spin-erofs-diff (our daemon, the transfer service's
#             unpack_config naming our differ)
#   builtin   containerd's own erofs snapshotter + erofs differ, running
#             mkfs.erofs built from Debian sid's source (fetch-mkfs-erofs.sh)
#             with mkfs_options = ["--sort=none", "-b4096"]
#   overlay   overlayfs + the walking differ
#   parallel  containerd 2.2's unpack, with our own client (unpack-2.2.py: no
#             2.2 is packaged): `ctr content fetch`, then every layer
#             prepared without a parent and applied two at a time, each
#             committed onto the layer below (the rebase capability)
#
# The image (built once, offline, from this machine's /usr and a generated
# tree of small files; gzip and zstd layers) is pushed once to a private
# docker-registry. Every measurement starts with a fresh containerd root (and
# a fresh daemon root), on a settled machine: disk written back, page cache
# dropped, then the registry's blobs (and the binaries the pull runs) read
# back in, CPUs idle. The timed span is the ctr command, the snapshot a first
# container would get (`ctr snapshots prepare` on the image's top layer: our
# daemon's merge of the chain, which runs after the last Commit, is in it),
# and a syncfs of the lab's file system (`sync -f`). Medians of --runs runs; the modes interleave
# within a run. Also: our daemon's CPU time and peak RSS, containerd's CPU
# time (with its waited-for children: mkfs.erofs, unpigz), and each layer's
# Apply (our daemon's `applied` log line; containerd's `diff applied` debug
# line for its differs) against `erofs-layer convert` of the same blob alone.
#
#   bench/pull-bench.sh [--runs N] [--modes fetch,ours,builtin,overlay,parallel]
#                       [--report FILE] [--build DIR] [--small] [--work DIR]
#                       [--fs ext4|here]
#
# --small: a ~300 MB image (3 layers) to try the script; default: ~3 GB in 5
# layers. --fs ext4 (default): each lab on a fresh 16 GiB ext4 on a loop
# device with direct I/O; --fs here: in WORK's own file system.
#
# Needs root. Everything it starts (containerd, daemon, registry, mounts,
# loop devices) is stopped or removed on exit, on error too.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
build=$repo/build
work=/var/tmp/pull-bench
runs=5
modes=fetch,ours,builtin,overlay,parallel
report=
fs=ext4
small=0

die() { echo "pull-bench: $*" >&2; exit 1; }
log() { echo "pull-bench: $*" >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(cd "$2" && pwd); shift 2 ;;
	--work) work=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--modes) modes=$2; shift 2 ;;
	--report) report=$2; shift 2 ;;
	--fs) fs=$2; shift 2 ;;
	--small) small=1; shift ;;
	-h | --help) sed -n '3,37p' "$0"; exit 0 ;;
	*) die "unknown argument $1" ;;
	esac
done
[ "$(id -u)" = 0 ] || die "needs root"
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs needs a positive number"
case $fs in ext4 | here) ;; *) die "--fs takes ext4 or here" ;; esac
IFS=, read -r -a mode_list <<<"$modes"
for m in "${mode_list[@]}"; do
	case $m in fetch | ours | builtin | overlay | parallel) ;; *) die "unknown mode '$m' (fetch, ours, builtin, overlay, parallel)" ;; esac
done
has_mode() { [[ ",$modes," == *",$1,"* ]]; }
[ -x /usr/bin/time ] || die "/usr/bin/time is needed (apt-get install time)"
for t in skopeo docker-registry pigz zstd python3 curl; do
	command -v "$t" >/dev/null || die "$t is needed"
done
if [ -n "$report" ]; then
	: >"$report" || die "cannot write $report"
	report=$(realpath "$report")
fi
mkdir -p "$work"
work=$(cd "$work" && pwd)

# ---- tools --------------------------------------------------------------------
# Copies of our binaries: another build may replace DIR's during the run.
[ -x "$build/src/daemon/spin-erofs-snapshotter" ] || die "no daemon in $build (ninja -C $build)"
[ -x "$build/src/tools/erofs-layer" ] || die "no erofs-layer in $build (ninja -C $build)"
mkdir -p "$work/bin"
cp "$build/src/daemon/spin-erofs-snapshotter" "$build/src/tools/erofs-layer" "$work/bin/"
if has_mode parallel; then
	[ -x "$build/tests/integration/diff-probe" ] || die "no diff-probe in $build (ninja -C $build)"
	cp "$build/tests/integration/diff-probe" "$work/bin/"
fi
daemon=$work/bin/spin-erofs-snapshotter
erofs_layer=$work/bin/erofs-layer
our_version=$(git -C "$build" describe --always --dirty 2>/dev/null || echo unknown)

ctd_dir=${SPIN_DEBS:-/var/tmp/spin-debs}/containerd-sid
FETCH_DEBS_QUIET=1 "$repo/scripts/fetch-debs.sh" sid "$ctd_dir" containerd
ctr=$ctd_dir/usr/bin/ctr
ctd_version=$("$ctd_dir/usr/bin/containerd" --version | awk '{ print $3 }')

mkfs=
if has_mode builtin; then
	mkfs=$("$here/fetch-mkfs-erofs.sh") || die "no mkfs.erofs from sid's source"
	mkfs_version=$("$mkfs" --version 2>&1 | head -1)
	# containerd's erofs differ runs the first mkfs.erofs on its PATH
	mkdir -p "$work/path"
	ln -sf "$mkfs" "$work/path/mkfs.erofs"
	export PATH=$work/path:$PATH
	mkfs_opts='"--sort=none", "-b4096"'
	help=$("$mkfs" --help 2>&1 || true)
	grep -q -- '--sort=' <<<"$help" || mkfs_opts='"-b4096"'
fi

# ---- the image -------------------------------------------------------------------
if [ "$small" = 1 ]; then
	tag=small
else
	tag=full
fi
img=$work/image-$tag
mkdir -p "$img"

# make_layer NAME gz|zst tar ARGS... | make_layer NAME gz|zst small FILES DIRS:
# NAME.tar.{gz,zst} in $img, its uncompressed size and entry count in NAME.info
make_layer() {
	local name=$1 comp=$2 kind=$3 out
	shift 3
	out=$img/$name.tar.$comp
	[ -s "$out" ] && [ -s "$img/$name.info" ] && return 0
	log "making layer $name ($kind, $comp)"
	if [ "$kind" = small ]; then
		python3 "$here/gen-small-tar.py" --files "$1" --dirs "$2" "$img/$name.tar"
	else
		local -a dirs=() ex=()
		local d
		for d in "$@"; do
			case $d in
			--exclude=*) ex+=("$d") ;;
			*) [ -d "/$d" ] && dirs+=("$d") ;;
			esac
		done
		[ ${#dirs[@]} -gt 0 ] || die "none of $* exists"
		# GNU tar warns about files changing under it: not fatal
		tar -C / "${ex[@]}" -cf "$img/$name.tar" "${dirs[@]}" 2>"$img/$name.tar-warnings" || [ $? -eq 1 ]
	fi
	echo "$(stat -c %s "$img/$name.tar") $(tar -tf "$img/$name.tar" | wc -l)" >"$img/$name.info"
	if [ "$comp" = gz ]; then
		pigz -6 -c "$img/$name.tar" >"$out.tmp"
	else
		zstd -q -3 -T0 -c "$img/$name.tar" >"$out.tmp"
	fi
	mv "$out.tmp" "$out"
	rm -f "$img/$name.tar"
}

if [ "$small" = 1 ]; then
	layer_names=(l1-sbin l2-include l3-small)
	make_layer l1-sbin gz tar usr/sbin usr/libexec
	make_layer l2-include zst tar usr/include
	make_layer l3-small gz small 30000 300
else
	layer_names=(l1-bin l2-lib l3-share l4-small l5-dev)
	make_layer l1-bin gz tar usr/bin usr/sbin usr/libexec
	make_layer l2-lib zst tar usr/lib/x86_64-linux-gnu
	make_layer l3-share gz tar usr/share --exclude=usr/share/gocode --exclude=usr/share/fpcsrc
	make_layer l4-small zst small 200000 2000
	make_layer l5-dev gz tar usr/include usr/lib/gcc usr/lib/python3
fi
archive=$img/image.tar
if [ ! -s "$archive" ] || [ ! -s "$img/layers.txt" ]; then
	files=()
	for n in "${layer_names[@]}"; do
		for c in gz zst; do
			[ -s "$img/$n.tar.$c" ] && files+=("$img/$n.tar.$c")
		done
	done
	python3 "$here/oci-archive.py" -o "$archive" --name "pullbench:$tag" "${files[@]}" >"$img/layers.txt.tmp"
	mv "$img/layers.txt.tmp" "$img/layers.txt"
fi
# layers.txt: file digest size diffid media (oldest first)
n_layers=$(wc -l <"$img/layers.txt")
# the chain ID of the image's top layer (the OCI image spec's ChainID)
top_chain=$(PYTHONPATH="$repo/tests/integration" python3 -c '
import sys, mkimage
print(mkimage.chain_ids([l.split()[3] for l in open(sys.argv[1]) if l.strip()])[-1])' "$img/layers.txt")
snapshotter_of() {
	case $1 in ours | parallel) echo spin-erofs ;; builtin) echo erofs ;; overlay) echo overlayfs ;; esac
}

# ---- the registry (its own lab directory, kept between runs of the script) -----------
export LAB_DIFFER=1 LAB_CONTAINERD=$ctd_dir/usr/bin/containerd LAB_CTR=$ctr
export SPIN_EROFS_SNAPSHOTTER=$daemon LAB_CONTAINERD_LOG_LEVEL=debug
# shellcheck source=../tests/integration/lab.sh
. "$repo/tests/integration/lab.sh"
reg_dir=$work/reg
reg() { local LAB_DIR=$reg_dir; "$@"; }

# ---- the lab ---------------------------------------------------------------------
extra=$work/config-extra.toml
{
	if has_mode builtin; then
		cat <<EOF
[plugins."io.containerd.differ.v1.erofs"]
  mkfs_options = [$mkfs_opts]

[[plugins."io.containerd.transfer.v1.local".unpack_config]]
  platform = "linux/amd64"
  snapshotter = "erofs"
  differ = "erofs"
EOF
	fi
} >"$extra"
export LAB_CONFIG_EXTRA=$extra

loopdev=
lab=
lab_fs=$work/lab-fs
# umounts what the run left mounted under DIR (the erofs snapshotter's
# layers), then detaches the loop devices backed by files under $work
release_under() {
	local dir=$1 m dev back
	while read -r m; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot umount $m"
	done < <(awk -v p="$dir/" 'index($5 "/", p) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	while read -r dev back; do
		case $back in
		"$work/lab-fs.img"*) ;; # the lab's own file system: lab_down's
		"$work"/*) losetup -d "$dev" 2>/dev/null || log "cannot detach $dev" ;;
		esac
	done < <(losetup -n -l -O NAME,BACK-FILE 2>/dev/null)
}
lab_up() {
	if [ "$fs" = ext4 ]; then
		rm -f "$work/lab-fs.img"
		fallocate -l 16G "$work/lab-fs.img"
		# inode tables and journal zeroed now, not during the measurement
		mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/lab-fs.img"
		loopdev=$(losetup -f --show --direct-io=on "$work/lab-fs.img")
		mkdir -p "$lab_fs"
		mount "$loopdev" "$lab_fs"
		lab=$lab_fs/lab
	else
		lab=$work/lab
		[ -d "$lab/sn" ] && chattr -R -i "$lab/sn" 2>/dev/null
		rm -rf "$lab"
	fi
	lab_start "$lab" >/dev/null || die "the lab did not start (see $lab/*.log)"
}
# lab_down [NAME]: stops the lab and removes it; its logs and config are kept
# in $work/logs/NAME (default: last)
lab_down() {
	if [ -n "$lab" ] && [ -n "${LAB_DIR:-}" ]; then
		lab_stop >/dev/null 2>&1 || log "lab_stop: the daemon did not exit 0 (see $work/logs/${1:-last}/sn.log)"
		rm -rf "$work/logs/${1:-last}"
		mkdir -p "$work/logs/${1:-last}"
		cp "$lab"/*.log "$lab/config.toml" "$work/logs/${1:-last}/" 2>/dev/null || true
		release_under "$lab"
		if [ -d "$lab/sn" ]; then chattr -R -i "$lab/sn" 2>/dev/null || true; fi
	fi
	if [ -n "$loopdev" ]; then
		release_under "$lab_fs"
		umount "$lab_fs" 2>/dev/null || umount -l "$lab_fs" 2>/dev/null || true
		losetup -d "$loopdev" 2>/dev/null || true
		loopdev=
		rm -f "$work/lab-fs.img"
	elif [ -n "$lab" ]; then
		rm -rf "$lab"
	fi
	lab=
}
cleanup() {
	set +e
	lab_down
	reg lab_registry_stop >/dev/null 2>&1
	[ -n "$loopdev" ] && losetup -d "$loopdev" 2>/dev/null
	rm -f "$work/time.$$"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$reg_dir"
addr=$(reg lab_registry_start) || die "the registry did not start (see $reg_dir/registry.log)"
ref=$addr/pullbench:$tag
if curl -fs -o /dev/null -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
	"http://$addr/v2/pullbench/manifests/$tag" 2>/dev/null; then
	log "the registry already holds pullbench:$tag"
else
	log "pushing $archive to $addr"
	reg lab_registry_push "$archive" "pullbench:$tag" >/dev/null || die "skopeo copy failed"
fi
blob_of() { echo "$reg_dir/registry/data/docker/registry/v2/blobs/sha256/${1:7:2}/${1#sha256:}/data"; }
while read -r _ digest _; do
	[ -s "$(blob_of "$digest")" ] || die "the registry has no blob $digest"
done <"$img/layers.txt"

# ---- measuring -------------------------------------------------------------------
median() { printf '%s\n' "$@" | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
range() { printf '%s\n' "$@" | grep -v '^$' | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf "%.2f-%.2f", lo, hi }'; }
now() { date +%s.%N; }
hz=$(getconf CLK_TCK)
# cpu PID [children]: user+system seconds of PID (and of its waited-for children)
cpu() {
	sed -e 's/^.*) //' "/proc/$1/stat" | awk -v c="${2:-0}" -v hz="$hz" '{ print ($12 + $13 + (c ? $14 + $15 : 0)) / hz }'
}
hwm_kib() { awk '$1 == "VmHWM:" { print $2 }' "/proc/$1/status"; }

# shellcheck source=lib.sh
. "$here/lib.sh"
# The page cache dropped, then what the measurement should find warm read in:
# the registry's blobs (a registry serves hot blobs from memory) and the
# binaries the pull runs.
cold_but_blobs() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	local digest
	while read -r _ digest _; do cat "$(blob_of "$digest")"; done <"$img/layers.txt" >/dev/null
	find "$reg_dir/registry/data" -type f -size -1M -exec cat {} + >/dev/null
	cat "$ctr" "$LAB_CONTAINERD" "$daemon" "$erofs_layer" ${mkfs:+"$mkfs"} \
		"$(command -v unpigz || echo /dev/null)" >/dev/null
}

# log_durations LOG KIND: "digest seconds" per layer from our daemon's
# `applied` lines (KIND ours) or containerd's `diff applied` (KIND ctd)
log_durations() {
	python3 - "$1" "$2" <<'EOF'
import re, sys
mult = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
def godur(s):
    return sum(float(n) * mult[u] for n, u in re.findall(r"([0-9.]+)(ns|us|µs|ms|s|m|h)", s))
def field(line, k):
    m = re.search(r'(?:^|\s)' + k + r'=("(?:[^"\\]|\\.)*"|\S+)', line)
    return m.group(1).strip('"') if m else None
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    if sys.argv[2] == "ours":
        if " msg=applied " not in line:
            continue
        d, ms = field(line, "digest"), field(line, "ms")
        if d and ms:
            print(d, float(ms) / 1000)
    else:
        if 'msg="diff applied"' not in line:
            continue
        d, t = field(line, "digest"), field(line, "d")
        if d and t:
            print(d, godur(t))
EOF
}

# check_unpacked MODE: the pull left one committed snapshot per layer in that
# snapshotter, each applied by the differ under test
check_unpacked() {
	local sn=$1 differ_log=$2 n applied
	n=$(lab_ctr snapshots --snapshotter "$sn" ls | grep -c -w Committed || true)
	[ "$n" -eq "$n_layers" ] || die "$sn: $n committed snapshots, expected $n_layers"
	if [ "$sn" = erofs ]; then
		applied=$(ls "$lab"/containerd/root/io.containerd.snapshotter.v1.erofs/snapshots/*/layer.erofs 2>/dev/null | wc -l)
		[ "$applied" -eq "$n_layers" ] || die "erofs: $applied layer.erofs files, expected $n_layers"
	fi
	n=$(wc -l <"$differ_log")
	[ "$n" -eq "$n_layers" ] || die "$sn: $n Apply lines in the logs, expected $n_layers"
}

declare -A t ccpu dcpu dhwm apply conv_w conv_c
tf=$work/time.$$
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
log "image $ref: $n_layers layers; modes $modes; $runs runs; lab on $fs"
for ((i = 1; i <= runs; i++)); do
	for m in "${mode_list[@]}"; do
		lab_up
		cold_but_blobs
		settle
		cpid=$(lab_pid containerd)
		spid=$(lab_pid sn)
		c0=$(cpu "$cpid" 1)
		s0=$(cpu "$spid")
		t0=$(now)
		case $m in
		fetch) lab_ctr content fetch --plain-http "$ref" >/dev/null ;;
		ours) lab_ctr images pull --plain-http --snapshotter spin-erofs "$ref" >/dev/null ;;
		builtin) lab_ctr images pull --plain-http --snapshotter erofs "$ref" >/dev/null ;;
		overlay) lab_ctr images pull --plain-http --snapshotter overlayfs "$ref" >/dev/null ;;
		parallel)
			lab_ctr content fetch --plain-http "$ref" >/dev/null
			python3 "$here/unpack-2.2.py" --ctr "$ctr" --sock "$lab/sn.sock" \
				--probe "$work/bin/diff-probe" --layers "$img/layers.txt" --jobs 2 \
				--tag "$i" >"$work/unpack.json" || die "the 2.2-style unpack failed"
			;;
		esac
		# ready to run: a container's snapshot on the image, as the
		# first start makes it (ours: its mounts name the chain's
		# fsmeta.erofs, merged after the last Commit; parallel: done
		# by unpack-2.2.py)
		case $m in fetch | parallel) ;; *)
			lab_ctr snapshots --snapshotter "$(snapshotter_of "$m")" \
				prepare "bench-ctr-$i" "$top_chain" >/dev/null ;;
		esac
		sync -f "$lab"
		t1=$(now)
		t[$m,$i]=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
		ccpu[$m,$i]=$(awk -v a="$c0" -v b="$(cpu "$cpid" 1)" 'BEGIN { printf "%.2f", b - a }')
		dcpu[$m,$i]=$(awk -v a="$s0" -v b="$(cpu "$spid")" 'BEGIN { printf "%.2f", b - a }')
		dhwm[$m,$i]=$(hwm_kib "$spid")
		durs=$work/durs.$m
		case $m in
		ours) log_durations "$lab/sn.log" ours >"$durs"; check_unpacked spin-erofs "$durs" ;;
		parallel)
			log_durations "$lab/sn.log" ours >"$durs"
			n=$(lab_snctr snapshots --snapshotter spin-erofs ls | grep -c -w Committed || true)
			[ "$n" -eq "$n_layers" ] || die "parallel: $n committed snapshots, expected $n_layers"
			[ "$(wc -l <"$durs")" -eq "$n_layers" ] || die "parallel: not one Apply line per layer"
			;;
		builtin) log_durations "$lab/containerd.log" ctd >"$durs"; check_unpacked erofs "$durs" ;;
		overlay) log_durations "$lab/containerd.log" ctd >"$durs"; check_unpacked overlayfs "$durs" ;;
		fetch)
			: >"$durs"
			n=$(lab_ctr content ls -q | wc -l)
			[ "$n" -ge $((n_layers + 2)) ] || die "fetch: $n blobs in the content store"
			;;
		esac
		while read -r d s; do apply[$m,$d,$i]=$s; done <"$durs"
		# each blob converted alone, on the same file system, for comparison
		if [ "$m" = ours ]; then
			while read -r _ digest _; do
				b=$(blob_of "$digest")
				cat "$b" >/dev/null
				settle
				/usr/bin/time -f '%e %U %S' -o "$tf" "$erofs_layer" convert -o "$lab/convert.erofs" "$b" >/dev/null ||
					die "erofs-layer convert $b failed"
				read -r w u s <"$tf"
				conv_w[$digest,$i]=$w
				conv_c[$digest,$i]=$(awk -v u="$u" -v s="$s" 'BEGIN { print u + s }')
				rm -f "$lab/convert.erofs"
			done <"$img/layers.txt"
		fi
		log "run $i: $m ${t[$m,$i]} s (containerd CPU ${ccpu[$m,$i]} s$([[ $m == ours || $m == parallel ]] &&
			echo ", daemon CPU ${dcpu[$m,$i]} s, peak RSS $((dhwm[$m,$i] / 1024)) MiB"))"
		lab_down "run$i-$m"
	done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- results ---------------------------------------------------------------------
# col MODE ARRAY: that mode's values of ARRAY, one per run
col() {
	local m=$1 k
	local -n arr=$2
	for ((k = 1; k <= runs; k++)); do echo "${arr[$m,$k]:-}"; done
}
declare -A med
for m in "${mode_list[@]}"; do
	# shellcheck disable=SC2046
	med[$m]=$(median $(col "$m" t))
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print ""; else printf "%.2f", a / b }'; }
sec() { awk -v s="$1" 'BEGIN { if (s != "") printf "%.2f s", s }'; }

blob_total=0 raw_total=0 ent_total=0 n_gz=0 n_zst=0
while read -r file _ size _ media; do
	read -r rb ents <"$img/${file%.tar.*}.info"
	blob_total=$((blob_total + size)) raw_total=$((raw_total + rb)) ent_total=$((ent_total + ents))
	case $media in *gzip) n_gz=$((n_gz + 1)) ;; *zstd) n_zst=$((n_zst + 1)) ;; esac
done <"$img/layers.txt"

desc_of() {
	case $1 in
	fetch) echo "fetch: \`ctr content fetch\` (no unpack)" ;;
	ours) echo "ours: spin-erofs + spin-erofs-diff" ;;
	builtin) echo "builtin: erofs snapshotter + erofs differ (mkfs.erofs ${mkfs_version##* })" ;;
	overlay) echo "overlay: overlayfs + walking differ" ;;
	parallel) echo "parallel: fetch, then a 2.2-style unpack (rebase, 2 Applies at a time, our client)" ;;
	esac
}
rows=
for m in "${mode_list[@]}"; do
	# shellcheck disable=SC2046
	wall=$(median $(col "$m" t)) rng=$(range $(col "$m" t))
	# shellcheck disable=SC2046
	cc=$(median $(col "$m" ccpu))
	unpack=
	[ "$m" != fetch ] && [ -n "${med[fetch]:-}" ] && unpack=$(awk -v a="$wall" -v f="${med[fetch]}" 'BEGIN { printf "%.2f", a - f }')
	dc='' dh=''
	if [[ $m == ours || $m == parallel ]]; then
		# shellcheck disable=SC2046
		dc=$(sec "$(median $(col "$m" dcpu))")
		# shellcheck disable=SC2046
		dh="$(awk -v k="$(median $(col "$m" dhwm))" 'BEGIN { printf "%.1f MiB", k / 1024 }')"
	fi
	rows+="| $(desc_of "$m") | $(sec "$wall") ($rng) | $(sec "$unpack") | $(ratio "$wall" "${med[builtin]:-}") | $(ratio "$wall" "${med[fetch]:-}") | $(sec "$cc") | $dc | $dh |"$'\n'
done

layer_rows=
while read -r file digest size _ media; do
	read -r rb ents <"$img/${file%.tar.*}.info"
	name=${file%.tar.*}
	row="| $name | ${media##*+} | $((size / 1000000)) MB | $((rb / 1000000)) MB | $ents |"
	ours_a=
	if has_mode ours; then
		a=() w=() c=()
		for ((k = 1; k <= runs; k++)); do
			a+=("${apply[ours,$digest,$k]:-}") w+=("${conv_w[$digest,$k]:-}") c+=("${conv_c[$digest,$k]:-}")
		done
		ours_a=$(median "${a[@]}") cw=$(median "${w[@]}") cc=$(median "${c[@]}")
		row+=" $(sec "$ours_a") | $(sec "$cw") | $(sec "$cc") | $(ratio "$ours_a" "$cw") |"
	fi
	for m in builtin overlay; do
		has_mode "$m" || continue
		a=()
		for ((k = 1; k <= runs; k++)); do a+=("${apply[$m,$digest,$k]:-}"); done
		ma=$(median "${a[@]}")
		row+=" $(sec "$ma") |"
		[ "$m" = builtin ] && [ -n "$ours_a" ] && row+=" $(ratio "$ours_a" "$ma") |"
	done
	layer_rows+="$row"$'\n'
done <"$img/layers.txt"
layer_head="| layer | compression | blob | tar | entries |"
layer_sep="|---|---|---:|---:|---:|"
if has_mode ours; then
	layer_head+=" our Apply | \`erofs-layer convert\` alone: wall | its CPU | Apply / convert |"
	layer_sep+="---:|---:|---:|---:|"
fi
if has_mode builtin; then
	layer_head+=" builtin Apply (mkfs.erofs) |"
	layer_sep+="---:|"
	has_mode ours && layer_head+=" ours / builtin |" && layer_sep+="---:|"
fi
has_mode overlay && layer_head+=" walking Apply |" && layer_sep+="---:|"

mkfs_desc=
[ -n "$mkfs" ] && mkfs_desc="mkfs.erofs ${mkfs_version##* } built from Debian sid's source, mkfs_options [$mkfs_opts]; "
out=$(
	cat <<EOF
pull-bench: \`ctr images pull\` of $ref: $n_layers layers ($n_gz gzip, $n_zst zstd), $((blob_total / 1000000)) MB compressed, $((raw_total / 1000000)) MB of tar, $ent_total entries; containerd $ctd_version; ours $our_version ($build); ${mkfs_desc}medians of $runs; lab on $([ "$fs" = ext4 ] && echo "a fresh ext4 (loop device, direct I/O) each measurement" || echo "$work"); load average $load_start at the start, $load_end at the end; $(nproc) cores, $(uname -r)

| mode | wall, pull + first snapshot + syncfs (range) | minus fetch | ratio to builtin | ratio to fetch | containerd CPU (+children) | our daemon's CPU | our daemon's peak RSS |
|---|---:|---:|---:|---:|---:|---:|---:|
$rows
Per layer (medians): Apply as the differs log it (our daemon's \`applied\` line, containerd's \`diff applied\` for its erofs and walking differs: blob read, decompression, the differ's writes; the snapshotter's Prepare and Commit are outside), and \`erofs-layer convert\` of the same blob alone on the same file system (blob in the page cache, fsync included):

$layer_head
$layer_sep
$layer_rows
EOF
)
echo "$out"
[ -z "$report" ] || echo "$out" >"$report"
