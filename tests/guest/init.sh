#!/bin/busybox sh
# SPDX-License-Identifier: Apache-2.0
#
# /init of the guest harness's initramfs (tests/guest/guest.py puts this file
# in the cached base initramfs). The per-run /job.sh comes from a second cpio
# archive appended to the base one; it calls the functions below:
#
#   GUEST_NONCE=...            markers carry it, so output cannot fake them
#   lower SERIAL [DEVSERIAL]...  an erofs disk (by virtio serial), mounted
#                              read-only on /lower/N, with device=/dev/<DEVSERIAL>
#                              for each extra device; the first is the lowest.
#                              Each may be a /dev/... path instead (a dm device)
#   dev SERIAL                 DEV_<SERIAL>: the disk's node, for dm tables
#   dm NAME TARGET...          DM_<NAME>: a read-only device-mapper device made
#                              of the targets ("START LENGTH TYPE PARAMS", e.g.
#                              verity over a layer: docs/verity.md)
#   rw SERIAL                  the ext4 disk holding upper/ and work/
#   run ARGV...                assemble the root, chroot, run ARGV, shut down
#
# Console protocol (guest.py parses it):
#   @@SPIN-GUEST-BEGIN <nonce>@@\n  <command output, raw>  \n@@SPIN-GUEST-END <nonce> <status>@@
#   @@SPIN-GUEST-DONE <nonce>@@       everything unmounted cleanly
#   @@SPIN-GUEST-ERROR <nonce> <why>@@  setup or teardown failed

export PATH=/bin
/bin/busybox mkdir -p /bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# the nonce first, so that even a failure before the job runs is reported
GUEST_NONCE=$(sed -n 's/^GUEST_NONCE=//p' /job.sh 2>/dev/null)
: "${GUEST_NONCE:=none}"
NLOWER=0
RWDEV=
MOUNTED=

mark() { printf '\n@@SPIN-GUEST-%s %s%s@@\n' "$1" "$GUEST_NONCE" "${2:+ $2}"; }
halt() {
	poweroff -f
	reboot -f # -no-reboot turns this into an exit too
	sleep 30
}
die() {
	mark ERROR "$*"
	dmesg | tail -n 20
	halt
}

# The block device whose virtio serial is $1 (waits for it to appear).
disk() {
	local n=0 s d
	while [ $n -lt 200 ]; do
		for s in /sys/block/*/serial; do
			[ -e "$s" ] || continue
			if [ "$(cat "$s")" = "$1" ]; then
				d=${s%/serial}
				d=/dev/${d##*/}
				if [ -b "$d" ]; then
					echo "$d"
					return 0
				fi
			fi
		done
		n=$((n + 1))
		sleep 0.05
	done
	return 1
}

# A serial's disk, or a /dev path as it is (waiting for the node).
node() {
	local n=0
	case $1 in
	/dev/*)
		while [ ! -b "$1" ]; do
			[ $n -lt 200 ] || return 1
			n=$((n + 1))
			sleep 0.05
		done
		echo "$1"
		;;
	*) disk "$1" ;;
	esac
}

dev() {
	local d
	d=$(disk "$1") || die "no disk with serial $1"
	eval "DEV_$1=$d"
}

DM_LOADED=
dm() {
	local name=$1 d m
	shift
	if [ -z "$DM_LOADED" ]; then
		while read -r m; do
			insmod "/lib/modules/$m.ko" || die "insmod $m failed"
		done </modules-verity.list
		DM_LOADED=1
	fi
	d=$(dmcreate "$name" "$@" 2>&1) || die "device-mapper device $name: $d"
	d=$(node "$d") || die "device-mapper device $name: no node $d"
	eval "DM_$name=$d"
}

lower() {
	local dev opts="ro" s d
	dev=$(node "$1") || die "no disk $1"
	shift
	for s in "$@"; do
		d=$(node "$s") || die "no disk $s"
		opts="$opts,device=$d"
	done
	mkdir -p "/lower/$NLOWER"
	mount -t erofs -o "$opts" "$dev" "/lower/$NLOWER" || die "mount -t erofs -o $opts $dev failed"
	MOUNTED="/lower/$NLOWER $MOUNTED"
	NLOWER=$((NLOWER + 1))
}

rw() {
	RWDEV=$(disk "$1") || die "no disk with serial $1"
	mkdir -p /rw
	mount -t ext4 "$RWDEV" /rw || die "mount -t ext4 $RWDEV failed"
	[ -d /rw/upper ] && [ -d /rw/work ] || die "the writable disk has no upper/ and work/ at its root"
}

run() {
	local i=0 lowerdirs= root
	while [ $i -lt $NLOWER ]; do
		lowerdirs="/lower/$i${lowerdirs:+:$lowerdirs}" # the top comes first
		i=$((i + 1))
	done
	if [ -n "$RWDEV" ]; then
		mount -t overlay overlay -o "lowerdir=${lowerdirs:-/empty},upperdir=/rw/upper,workdir=/rw/work" /root ||
			die "overlay (lowerdir=${lowerdirs:-/empty}) failed"
		root=/root
		MOUNTED="/root $MOUNTED"
	elif [ $NLOWER -eq 1 ]; then
		root=/lower/0
	elif [ $NLOWER -gt 1 ]; then
		mount -t overlay overlay -o "lowerdir=$lowerdirs" /root || die "overlay (lowerdir=$lowerdirs) failed"
		root=/root
		MOUNTED="/root $MOUNTED"
	else
		die "nothing to run on: no lower disk and no writable disk"
	fi
	# proc, sys and dev for the command, where the image has the directories
	# (mounting over a directory writes nothing to the upper layer)
	for d in proc sys dev; do
		if [ -d "$root/$d" ] && [ ! -L "$root/$d" ]; then
			case $d in
			proc) mount -t proc proc "$root/proc" ;;
			sys) mount -t sysfs sysfs "$root/sys" ;;
			dev) mount -t devtmpfs devtmpfs "$root/dev" ;;
			esac && MOUNTED="$root/$d $MOUNTED"
		fi
	done

	local lvl st
	lvl=$(cut -f1 /proc/sys/kernel/printk)
	dmesg -n 1                        # keep kernel messages out of the output
	stty -F /dev/console -opost 2>/dev/null # raw bytes: no \n -> \r\n
	mark BEGIN
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb \
		chroot "$root" "$@" </dev/null
	st=$?
	mark END "$st"
	dmesg -n "$lvl"

	# teardown: nothing may keep the writable disk busy
	cd /
	kill -9 -1 2>/dev/null
	sync
	for d in $MOUNTED; do
		umount "$d" || die "cannot unmount $d"
	done
	if [ -n "$RWDEV" ]; then
		umount /rw || die "cannot unmount the writable disk"
	fi
	sync
	mark DONE
	halt
}

# the modules, dependencies first (guest.py resolved them from modules.dep)
while read -r m; do
	insmod "/lib/modules/$m.ko" || die "insmod $m failed"
done </modules.list

[ -f /job.sh ] || die "no /job.sh in the initramfs"
. /job.sh
die "the job did not call run"
