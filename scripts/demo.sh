#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The main job, end to end, on a fresh Debian 12 machine as root:
#
#   sudo ./scripts/demo.sh
#
#  1. installs what is missing (scripts/deps.sh) and builds the project;
#  2. fetches containerd 2.1 and the guest kernel from Debian (once, cached in
#     /var/tmp; nothing is installed);
#  3. starts a private containerd with spin-erofs-snapshotter as its
#     snapshotter and its differ, in a temporary directory;
#  4. builds a 3-layer sample image offline (with a static busybox), pushes
#     it to a private registry (127.0.0.1) and pulls it: each layer becomes a
#     layer.erofs, the chain an fsmeta.erofs
#     and a merged.vmdk;
#  5. prepares a container's snapshot and prints the mounts a VM runtime gets;
#  6. boots them in QEMU (software emulation) and runs a program of the image;
#     the container also writes a file and deletes one;
#  7. commits the container's changes and boots a view of the committed chain;
#  8. stops everything it started and deletes its files.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
t_start=$SECONDS

if [ "$(id -u)" != 0 ]; then
	echo "demo: run as root (sudo ./scripts/demo.sh): containerd, loop devices and apt need it" >&2
	exit 1
fi

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
section() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
note() { printf '   %s\n' "$*"; }
indent() { sed 's/^/   | /'; }
declare -a timings=()
mark() { timings+=("$1 $((SECONDS - $2)) s"); }

work=""
lab_started=0
cleanup() {
	local rc=$?
	set +e
	if [ "$lab_started" = 1 ]; then
		[ $rc = 0 ] || { echo; echo "demo: failed; the daemon's log ends with:"; tail -n 15 "$LAB_DIR/sn.log" | indent; }
		lab_stop >/dev/null || echo "demo: lab_stop reported a problem" >&2
	fi
	if [ -n "$work" ] && [ -d "$work" ]; then
		# committed layers carry the immutable flag (--set-immutable)
		chattr -R -i "$work" 2>/dev/null
		rm -rf "$work"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

section "1. Build"
bash scripts/deps.sh
t=$SECONDS
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
el=$repo/build/src/tools/erofs-layer
export SPIN_EROFS_SNAPSHOTTER=$repo/build/src/daemon/spin-erofs-snapshotter
note "built $SPIN_EROFS_SNAPSHOTTER and $el"
mark build $t

section "2. containerd 2.1 and the guest's kernel (Debian packages, unpacked, not installed)"
t=$SECONDS
# Debian 12 ships containerd 1.6 (end of life); Debian sid's 2.1 runs here
# unpacked (docs/containerd-contract.md). Same cache as tests/integration.
ctd=${SPIN_DEBS:-/var/tmp/spin-debs}/containerd-sid
bash scripts/fetch-debs.sh sid "$ctd" containerd
export LAB_CONTAINERD=$ctd/usr/bin/containerd LAB_CTR=$ctd/usr/bin/ctr
note "$("$LAB_CTR" --version)"
guest=(python3 "$repo/tests/guest/guest.py")
"${guest[@]}" kernel | sed -n 's/^package /guest kernel (Debian 12 backports): /p' | indent
mark fetch $t

section "3. A private containerd with spin-erofs-snapshotter as its snapshotter and its differ"
work=$(mktemp -d /tmp/spin-demo.XXXXXX)
# shellcheck source=tests/integration/lab.sh
. tests/integration/lab.sh
export LAB_DIFFER=1
lab_start "$work/lab"
lab_started=1
note "working directory $work (deleted at the end)"
note "containerd: pid $(lab_pid containerd), config $LAB_DIR/config.toml; its proxy plugins:"
sed -n '/^\[proxy_plugins\]/,/^\[plugins\]/p' "$LAB_DIR/config.toml" | grep -v '^\[plugins\]' | grep . | indent
note "spin-erofs-snapshotter: pid $(lab_pid sn), root $LAB_DIR/sn, log $LAB_DIR/sn.log"
sn() { lab_ctr snapshots --snapshotter spin-erofs "$@"; }
# show_mounts FILE: the JSON of `ctr snapshots prepare/view --mounts`, one option a line
show_mounts() {
	python3 - "$1" <<'PY' | indent
import json, sys
for m in json.load(open(sys.argv[1])):
    opts = m.get("Options") or []
    print("%-5s %s" % (m["Type"], m["Source"]))
    print("      options: %s" % ", ".join(o for o in opts if not o.startswith("device=")))
    for o in opts:
        if o.startswith("device="):
            print("      device:  %s" % o[len("device="):])
PY
}

section "4. A sample image, built offline (OCI archive, 3 gzip layers, a static busybox)"
python3 scripts/sample-image.py "$work/image.tar" >"$work/image.txt"
indent <"$work/image.txt"
top=$(awk '/^top chainID/ {print $3}' "$work/image.txt")

section "5. Pull from a registry: containerd hands each layer to our differ, which writes layer.erofs"
t=$SECONDS
reg=$(lab_registry_start)
note "a private registry (Debian's docker-registry) on $reg; the image pushed with skopeo"
ref=$(lab_registry_push "$work/image.tar" demo:latest)
note "ctr images pull --plain-http --snapshotter spin-erofs $ref"
lab_ctr images pull --plain-http --snapshotter spin-erofs "$ref" >"$work/pull.txt" 2>&1 ||
	{ tail -n 5 "$work/pull.txt" >&2; exit 1; }
grep -E '^(Completed|done)' "$work/pull.txt" | tail -n 1 | indent
mark pull $t
note "the daemon's log: one Apply per layer (the blob converted straight to EROFS)"
grep 'msg=applied' "$LAB_DIR/sn.log" | sed 's/^time="[^"]*" //' | indent
note "the snapshots (each layer committed on its parent):"
sn tree | indent
topdir=$(grep 'msg=applied' "$LAB_DIR/sn.log" | tail -n 1 | sed 's/.* dir=\([^ ]*\) .*/\1/')
note "erofs-layer reads an image without mounting it (here the top layer alone):"
"$el" ls -R "$topdir/layer.erofs" | indent

section "6. A container's snapshot: the mounts a VM runtime receives"
sn prepare --mounts demo-container "$top" >"$work/container.mounts"
# the chain's merge runs shortly after its last Commit, or at its first
# mount at the latest (this Prepare): only now is it there for certain
note "the top layer's directory holds its layer and the chain's merged metadata:"
(cd "$topdir" && ls -ln --time-style=+ layer.erofs fsmeta.erofs merged.vmdk) | indent
show_mounts "$work/container.mounts"
note "the first: fsmeta.erofs (metadata only; its files point into the layers) with each layer"
note "as a device, oldest first; the second: the container's writable ext4 (upper/, work/)."
note "A VM runtime attaches merged.vmdk, beside fsmeta.erofs, as ONE read-only disk:"
indent <"$topdir/merged.vmdk"
note "qemu-img: $(qemu-img info "$topdir/merged.vmdk" | awk -F': ' '/^file format|^virtual size/ {printf "%s: %s; ", $1, $2}')"

section "7. Boot: QEMU attaches those disks, the guest stacks overlayfs and runs the image's busybox"
note "(software emulation, no KVM; tests/guest/guest.py plays the VM runtime)"
"${guest[@]}" plan --mounts "$work/container.mounts" | sed -n 's/^disk /disk: /p' | indent
# shellcheck disable=SC2016 # expanded by the guest's shell
script1='echo "--- /etc/os-release (layer 2 replaced layer 1'"'"'s)"; cat /etc/os-release
echo "--- /app/hello (layer 2)"; /app/hello
echo "--- ls /etc: layers 1, 2 and 3 merged; obsolete (whited out by layer 2) is gone"; ls /etc
echo "--- ls /var/cache/app: opaque in layer 2, so old-1 and old-2 of layer 1 are hidden"; ls /var/cache/app
echo "--- md5sum /app/data (1 MiB, layer 3)"; md5sum /app/data
echo "--- the container writes /root/note and deletes /etc/motd (a file of layer 1)"
echo "written in the first boot" > /root/note && rm /etc/motd && echo "done; ls /etc:" $(ls /etc)
echo "--- the guest'"'"'s mounts (as its init sees them)"; grep -E "^(/dev/vd|overlay)" /proc/1/mounts'
t=$SECONDS
"${guest[@]}" run --times --mounts "$work/container.mounts" -- /bin/sh -c "$script1" 2>"$work/boot1.err" | indent ||
	{ cat "$work/boot1.err" >&2; exit 1; }
mark "boot 1" $t
note "$(grep '^guest: boot' "$work/boot1.err")"
rwimg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[-1]["Source"])' "$work/container.mounts")
note "the writable layer, read on the host with debugfs (not mounted): upper/ holds the changes"
debugfs -R "ls -p /upper/root" "$rwimg" 2>/dev/null |
	awk -F/ '$6 != "" && $6 != "." && $6 != ".." {print "upper/root/" $6 ": a file of " $7 " bytes"}' | indent
st=$(debugfs -R "stat /upper/etc/motd" "$rwimg" 2>/dev/null || true)
if [[ $st == *"Type: character special"* && $st == *"Device major/minor number: 00:00"* ]]; then
	echo "upper/etc/motd: a character device 0:0, overlayfs's whiteout (hides layer 1's motd)" | indent
fi

section "8. Commit the container's changes (upper/ of rwlayer.img becomes a layer.erofs)"
t=$SECONDS
if sn commit demo-committed demo-container 2>"$work/commit.err"; then
	mark commit $t
	note "committed as demo-committed (on $top)"
	sn tree | indent
	# ctr's view sets no gc.root label: label it at once, and make it again if
	# containerd's garbage collector was quicker (tests/integration does the same)
	for _ in 1 2 3 4 5; do
		sn view --mounts demo-view demo-committed >"$work/view.mounts"
		sn label demo-view containerd.io/gc.root=demo >/dev/null 2>&1 && break
	done
	note "the view's mounts: one fsmeta over four layers (the image's three and the container's)"
	show_mounts "$work/view.mounts"
	cdir=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Options"][-1][7:])' "$work/view.mounts")
	note "the committed layer ($cdir):"
	"$el" ls -l -R "$cdir" | indent

	section "9. Boot the view of the committed chain (read-only: no writable disk)"
	# shellcheck disable=SC2016
	script2='echo "--- /root/note"; cat /root/note
echo "--- /etc/motd"; cat /etc/motd 2>&1 || true
echo "--- ls /etc"; ls /etc'
	t=$SECONDS
	"${guest[@]}" run --times --mounts "$work/view.mounts" -- /bin/sh -c "$script2" 2>"$work/boot2.err" | indent ||
		{ cat "$work/boot2.err" >&2; exit 1; }
	mark "boot 2" $t
	note "$(grep '^guest: boot' "$work/boot2.err")"
	sn rm demo-view
	sn rm demo-committed
else
	note "the daemon refused: $(tail -n 1 "$work/commit.err")"
	note "committing a container's writable layer (rwlayer.img) is not in this build yet: skipped"
	section "9. Boot the view of the committed chain: skipped (no commit)"
	sn rm demo-container
fi

section "10. Stopping containerd and the snapshotter, deleting $work"
lab_stop
lab_started=0
note "daemon exit status $(cat "$LAB_DIR/sn.rc"), containerd exit status $(cat "$LAB_DIR/containerd.rc")"
chattr -R -i "$work" 2>/dev/null || true
rm -rf "$work"
work=""
left=$(losetup -a | grep -c spin-demo || true)
note "left behind: $(grep -c spin-demo /proc/mounts || true) mounts, $left loop devices"
summary=$(printf '%s, ' "${timings[@]}")
printf '\n%s== done in %s s%s (%s)\n' "$bold" "$((SECONDS - t_start))" "$plain" "${summary%, }"
