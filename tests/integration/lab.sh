# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# lab.sh: a private containerd with spin-erofs-snapshotter as its proxy
# snapshotter, in one directory, without systemd (docs/architecture.md). Source it:
#
#   . tests/integration/lab.sh
#   lab_start /tmp/lab                  # daemon + containerd, both answering
#   lab_ctr images import --snapshotter spin-erofs image.tar
#   lab_ctr snapshots --snapshotter spin-erofs tree
#   lab_restart_daemon                  # SIGTERM (must exit 0), start again
#   lab_kill9_daemon                    # SIGKILL; lab_start_daemon brings it back
#   lab_stop                            # containerd, then the daemon, by PID
#
# Everything lives in LAB_DIR (set by lab_start; other shells may export it):
#   config.toml       containerd's config (version 2 or 3, root/state/socket here,
#                     [proxy_plugins.spin-erofs] on sn.sock)
#   registry/ registry.log registry.addr  a private registry, when started
#   sn/ sn.sock sn.log             the daemon's --root, socket, log
#   containerd/ containerd.sock containerd.log  containerd's root+state, socket, log
#   sn.pid sn.rc containerd.pid containerd.rc   PIDs and exit statuses
# The exit status files are written by a small waiting subshell, so that any
# shell (or the Python runner) can learn how a process ended.
#
# Environment:
#   SPIN_EROFS_SNAPSHOTTER  the daemon binary (default build/src/daemon/spin-erofs-snapshotter)
#   LAB_CONTAINERD          containerd binary (default containerd)
#   LAB_CTR                 ctr binary (default ctr)
#   LAB_TIMEOUT             seconds to wait for a socket to answer (default 30)
#   LAB_STOP_TIMEOUT        seconds between SIGTERM and SIGKILL (default 20)
#   LAB_DAEMON_ARGS         extra daemon flags (also: lab_start DIR FLAGS...)
#   LAB_CONTAINERD_LOG_LEVEL  containerd's log level (default info; debug shows each
#                           garbage collection and its duration)
#   LAB_DIFFER=1            also register the daemon as containerd's proxy differ
#                           spin-erofs-diff, first in the diff service's list and in
#                           the transfer service's unpack_config (containerd 1.7.4+)
#   LAB_CRI=1               containerd 2.x: CRI enabled, its images on spin-erofs
#   LAB_CRI_IMAGES_EXTRA    a file of more keys for that [plugins."io.containerd.cri.v1.images"]
#                           table (TOML forbids opening a table twice)
#   LAB_CONFIG_EXTRA        a file of more TOML tables appended to the config (2.x/1.x forms)
#   LAB_CONFIG              a config file used verbatim instead (containerd then gets
#                           --root, --state, --address and --log-level as flags)
#   LAB_REGISTRY            docker-registry binary (default docker-registry)
#
# The config's form follows containerd's version: version 2 for 1.6/1.7,
# version 3 for 2.x (exports.root on the proxy snapshotter; unpack_config
# entries for spin-erofs, with our differ or walking, and for overlayfs).
#
# Registry: lab_registry_start (127.0.0.1, a free port; prints host:port),
# lab_registry_push ARCHIVE NAME:TAG (skopeo; prints the reference),
# lab_registry_addr, lab_registry_stop (lab_stop stops it too).
#
# Every function returns non-zero (with a message on stderr) on failure.

_LAB_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_LAB_REPO=$(cd "$_LAB_HERE/../.." && pwd)
: "${SPIN_EROFS_SNAPSHOTTER:=$_LAB_REPO/build/src/daemon/spin-erofs-snapshotter}"
: "${LAB_CONTAINERD:=containerd}"
: "${LAB_CTR:=ctr}"
: "${LAB_TIMEOUT:=30}"
: "${LAB_STOP_TIMEOUT:=20}"

_lab_err() { echo "lab: $*" >&2; }

_lab_dir() {
	if [ -z "${LAB_DIR:-}" ]; then
		_lab_err "LAB_DIR is not set (call lab_start DIR first)"
		return 1
	fi
}

# _lab_alive PID: the process exists and is not a zombie
_lab_alive() {
	local st
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 1
	st=$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# _lab_sock_answers PATH: a unix stream socket at PATH accepts a connection
_lab_sock_answers() {
	[ -S "$1" ] || return 1
	python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect(sys.argv[1])
except OSError:
    sys.exit(1)
EOF
}

# _lab_spawn NAME CMD...: start CMD in the background (stdin /dev/null, stdout
# and stderr appended to LAB_DIR/NAME.log), NAME.pid = its PID, NAME.rc = its
# exit status once it ends (128+N for signal N).
_lab_spawn() {
	local name=$1 pid
	shift
	rm -f "$LAB_DIR/$name.pid" "$LAB_DIR/$name.rc"
	(
		"$@" </dev/null >>"$LAB_DIR/$name.log" 2>&1 &
		echo $! >"$LAB_DIR/$name.pid.tmp"
		mv "$LAB_DIR/$name.pid.tmp" "$LAB_DIR/$name.pid"
		wait $!
		echo $? >"$LAB_DIR/$name.rc.tmp"
		mv "$LAB_DIR/$name.rc.tmp" "$LAB_DIR/$name.rc"
	) </dev/null >/dev/null 2>&1 &
	local i
	for ((i = 0; i < 100; i++)); do
		[ -s "$LAB_DIR/$name.pid" ] && return 0
		sleep 0.02
	done
	_lab_err "$name did not start"
	return 1
}

# lab_pid NAME: the PID of sn or containerd
lab_pid() {
	_lab_dir || return 1
	cat "$LAB_DIR/$1.pid" 2>/dev/null
}

# _lab_wait_rc NAME SECONDS: wait for NAME.rc; print it
_lab_wait_rc() {
	local name=$1 deadline=$((SECONDS + $2))
	while [ ! -e "$LAB_DIR/$name.rc" ]; do
		[ $SECONDS -ge $deadline ] && return 1
		sleep 0.05
	done
	cat "$LAB_DIR/$name.rc"
}

# _lab_wait_answer NAME SECONDS CHECK...: until CHECK succeeds, NAME dies or time runs out
_lab_wait_answer() {
	local name=$1 deadline=$((SECONDS + $2)) pid
	shift 2
	pid=$(lab_pid "$name")
	until "$@"; do
		if [ -e "$LAB_DIR/$name.rc" ]; then
			_lab_err "$name exited with status $(cat "$LAB_DIR/$name.rc") while starting; its log ends with:"
			tail -n 5 "$LAB_DIR/$name.log" >&2
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			_lab_err "$name (pid $pid) did not answer within $LAB_TIMEOUT s"
			return 1
		fi
		sleep 0.05
	done
}

# _lab_ctd_major: containerd's major version (1 or 2), from --version
_lab_ctd_major() {
	local v
	v=$("$LAB_CONTAINERD" --version 2>/dev/null) || { _lab_err "$LAB_CONTAINERD --version failed"; return 1; }
	case "$v" in
	*" v2."* | *" 2."*) echo 2 ;;
	*" v1."* | *" 1."*) echo 1 ;;
	*) _lab_err "cannot tell containerd's version from: $v"; return 1 ;;
	esac
}

# _lab_config_head VERSION DISABLED: what both forms share: containerd's
# root, state and sockets in LAB_DIR, the plugins this machine cannot run (and
# DISABLED) left out, the proxy snapshotter on sn.sock
_lab_config_head() {
	cat <<EOF
version = $1
root = "$LAB_DIR/containerd/root"
state = "$LAB_DIR/containerd/state"
disabled_plugins = [$2 "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$LAB_DIR/containerd.sock"

[ttrpc]
  address = "$LAB_DIR/containerd.sock.ttrpc"

[debug]
  level = "${LAB_CONTAINERD_LOG_LEVEL:-info}"

[proxy_plugins]
  [proxy_plugins.spin-erofs]
    type = "snapshot"
    address = "$LAB_DIR/sn.sock"
EOF
}

# Version 2 form, containerd 1.6 and 1.7
_lab_write_config_v2() {
	# no CRI: quicker start, fewer logs
	_lab_config_head 2 '"io.containerd.grpc.v1.cri",'
	# containerd 1.7.4+ only (a proxy differ makes 1.6 panic, docs/containerd-contract.md)
	if [ "${LAB_DIFFER:-0}" = 1 ]; then
		cat <<EOF
  [proxy_plugins.spin-erofs-diff]
    type = "diff"
    address = "$LAB_DIR/sn.sock"

[plugins]
  [plugins."io.containerd.service.v1.diff-service"]
    default = ["spin-erofs-diff", "walking"]
  [plugins."io.containerd.transfer.v1.local"]
    [[plugins."io.containerd.transfer.v1.local".unpack_config]]
      platform = "linux/amd64"
      snapshotter = "spin-erofs"
      differ = "spin-erofs-diff"
EOF
	fi
}

# Version 3 form, containerd 2.x (docs/containerd-contract.md). The transfer service (ctr's
# pull and import, CRI) unpacks with exactly the differ of the unpack_config
# entry that names the snapshotter: ours with LAB_DIFFER=1, else containerd's
# walking differ; overlayfs keeps an entry of its own (the tests' ground truth).
_lab_write_config_v3() {
	local differ=walking
	local cri='"io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images",'
	[ "${LAB_DIFFER:-0}" = 1 ] && differ=spin-erofs-diff
	[ "${LAB_CRI:-0}" = 1 ] && cri=
	_lab_config_head 3 "$cri"
	cat <<EOF
    # the file system our layers live on, for CRI's ImageFsInfo
    [proxy_plugins.spin-erofs.exports]
      root = "$LAB_DIR/sn"
EOF
	if [ "${LAB_DIFFER:-0}" = 1 ]; then
		cat <<EOF
  [proxy_plugins.spin-erofs-diff]
    type = "diff"
    address = "$LAB_DIR/sn.sock"
EOF
	fi
	printf '\n[plugins]\n'
	if [ "${LAB_DIFFER:-0}" = 1 ]; then
		cat <<EOF
  [plugins."io.containerd.service.v1.diff-service"]
    default = ["spin-erofs-diff", "walking"]
EOF
	fi
	cat <<EOF
  [plugins."io.containerd.transfer.v1.local"]
    [[plugins."io.containerd.transfer.v1.local".unpack_config]]
      platform = "linux/amd64"
      snapshotter = "spin-erofs"
      differ = "$differ"
    [[plugins."io.containerd.transfer.v1.local".unpack_config]]
      platform = "linux/amd64"
      snapshotter = "overlayfs"
      differ = "walking"
EOF
	if [ "${LAB_CRI:-0}" = 1 ]; then
		cat <<EOF
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "spin-erofs"
EOF
		[ -n "${LAB_CRI_IMAGES_EXTRA:-}" ] && cat "$LAB_CRI_IMAGES_EXTRA"
	fi
}

# LAB_DIR/config.toml: LAB_CONFIG's text verbatim when it is set (root, state
# and socket then come from containerd's flags), else the form for this
# containerd's version followed by LAB_CONFIG_EXTRA's text (more tables).
_lab_write_config() {
	local major
	if [ -n "${LAB_CONFIG:-}" ]; then
		cp "$LAB_CONFIG" "$LAB_DIR/config.toml"
		return
	fi
	major=$(_lab_ctd_major) || return 1
	if [ "$major" = 2 ]; then
		_lab_write_config_v3 >"$LAB_DIR/config.toml"
	else
		_lab_write_config_v2 >"$LAB_DIR/config.toml"
	fi
	if [ -n "${LAB_CONFIG_EXTRA:-}" ]; then
		printf '\n' >>"$LAB_DIR/config.toml"
		cat "$LAB_CONFIG_EXTRA" >>"$LAB_DIR/config.toml"
	fi
}

# lab_start_daemon [FLAGS...]: start the daemon in LAB_DIR and wait for its socket
lab_start_daemon() {
	_lab_dir || return 1
	local pid
	pid=$(lab_pid sn)
	if [ -n "$pid" ] && [ ! -e "$LAB_DIR/sn.rc" ] && _lab_alive "$pid"; then
		_lab_err "the daemon already runs (pid $pid)"
		return 1
	fi
	if [ ! -x "$SPIN_EROFS_SNAPSHOTTER" ]; then
		_lab_err "no daemon binary at $SPIN_EROFS_SNAPSHOTTER (ninja -C build, or set SPIN_EROFS_SNAPSHOTTER)"
		return 1
	fi
	if [ $# -gt 0 ]; then
		printf '%q ' "$@" >"$LAB_DIR/sn.args"
	fi
	local -a extra=()
	if [ -s "$LAB_DIR/sn.args" ]; then
		eval "extra=($(cat "$LAB_DIR/sn.args"))"
	fi
	# shellcheck disable=SC2086
	_lab_spawn sn "$SPIN_EROFS_SNAPSHOTTER" --root "$LAB_DIR/sn" --address "$LAB_DIR/sn.sock" \
		--containerd-address "$LAB_DIR/containerd.sock" --log-level debug "${extra[@]}" ${LAB_DAEMON_ARGS:-} || return 1
	_lab_wait_answer sn "$LAB_TIMEOUT" _lab_sock_answers "$LAB_DIR/sn.sock"
}

_lab_ctd_answers() {
	"$LAB_CTR" --address "$LAB_DIR/containerd.sock" --timeout 2s version >/dev/null 2>&1
}

# lab_start_containerd: start the private containerd and wait until it answers
lab_start_containerd() {
	_lab_dir || return 1
	local pid
	pid=$(lab_pid containerd)
	if [ -n "$pid" ] && [ ! -e "$LAB_DIR/containerd.rc" ] && _lab_alive "$pid"; then
		_lab_err "containerd already runs (pid $pid)"
		return 1
	fi
	command -v "$LAB_CONTAINERD" >/dev/null || { _lab_err "no $LAB_CONTAINERD"; return 1; }
	_lab_write_config || return 1
	mkdir -p "$LAB_DIR/containerd"
	local -a flags=(--config "$LAB_DIR/config.toml")
	if [ -n "${LAB_CONFIG:-}" ]; then
		flags+=(--root "$LAB_DIR/containerd/root" --state "$LAB_DIR/containerd/state"
			--address "$LAB_DIR/containerd.sock" --log-level "${LAB_CONTAINERD_LOG_LEVEL:-info}")
	fi
	_lab_note_host_dirs
	_lab_spawn containerd "$LAB_CONTAINERD" "${flags[@]}" || return 1
	_lab_wait_answer containerd "$LAB_TIMEOUT" _lab_ctd_answers
}

# A config used verbatim (LAB_CONFIG) keeps containerd's defaults for CNI's
# and NRI's places, outside the lab: note which of them are missing before
# containerd starts, so that stopping it removes what it made there (only
# the directories, once empty again, and NRI's socket).
_LAB_HOST_DIRS=(/etc/cni /etc/cni/net.d /run/nri)
_lab_note_host_dirs() {
	local d
	: >"$LAB_DIR/host-dirs.made"
	for d in "${_LAB_HOST_DIRS[@]}"; do
		[ -e "$d" ] || echo "$d" >>"$LAB_DIR/host-dirs.made"
	done
}
_lab_clean_host_dirs() {
	local d
	[ -f "$LAB_DIR/host-dirs.made" ] || return 0
	for d in $(tac "$LAB_DIR/host-dirs.made"); do
		[ "$d" = /run/nri ] && rm -f /run/nri/nri.sock
		rmdir "$d" 2>/dev/null || true
	done
	rm -f "$LAB_DIR/host-dirs.made"
}

# lab_stop_containerd: SIGTERM containerd (SIGKILL after LAB_STOP_TIMEOUT)
lab_stop_containerd() {
	_lab_dir || return 1
	_lab_stop_one containerd >/dev/null
	_lab_clean_host_dirs
}

# lab_start DIR [DAEMON-FLAGS...]: the daemon, then containerd, in DIR
lab_start() {
	if [ -z "${1:-}" ]; then
		_lab_err "usage: lab_start DIR [DAEMON-FLAGS...]"
		return 2
	fi
	mkdir -p "$1" || return 1
	LAB_DIR=$(cd "$1" && pwd) || return 1
	export LAB_DIR
	shift
	rm -f "$LAB_DIR/sn.args"
	# unix socket paths hold at most 107 bytes
	if [ ${#LAB_DIR} -gt 80 ]; then
		_lab_err "$LAB_DIR is too long for unix socket paths"
		return 1
	fi
	lab_start_daemon "$@" || return 1
	if ! lab_start_containerd; then
		lab_stop >/dev/null 2>&1
		return 1
	fi
}

# lab_ctr ARGS...: ctr on the private containerd
lab_ctr() {
	_lab_dir || return 1
	"$LAB_CTR" --address "$LAB_DIR/containerd.sock" "$@"
}

# lab_snctr ARGS...: ctr straight at the daemon's socket (no containerd in
# between: keys arrive exactly as given). Only `snapshots` commands make sense.
lab_snctr() {
	_lab_dir || return 1
	"$LAB_CTR" --address "$LAB_DIR/sn.sock" "$@"
}

# _lab_stop_one NAME: SIGTERM, then SIGKILL after LAB_STOP_TIMEOUT; prints the
# exit status (nothing if it was not running)
_lab_stop_one() {
	local name=$1 pid rc
	pid=$(lab_pid "$name") || return 0
	[ -n "$pid" ] || return 0
	if [ -e "$LAB_DIR/$name.rc" ]; then
		cat "$LAB_DIR/$name.rc"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null
	if ! rc=$(_lab_wait_rc "$name" "$LAB_STOP_TIMEOUT"); then
		_lab_err "$name (pid $pid) ignored SIGTERM for $LAB_STOP_TIMEOUT s: SIGKILL"
		kill -KILL "$pid" 2>/dev/null
		rc=$(_lab_wait_rc "$name" 10) || { _lab_err "$name (pid $pid) survived SIGKILL"; return 1; }
	fi
	echo "$rc"
}

# lab_stop_daemon: SIGTERM the daemon; fails unless it exits 0
lab_stop_daemon() {
	_lab_dir || return 1
	local rc
	rc=$(_lab_stop_one sn) || return 1
	if [ -n "$rc" ] && [ "$rc" != 0 ]; then
		_lab_err "the daemon exited with status $rc on SIGTERM (expected 0); its log ends with:"
		tail -n 5 "$LAB_DIR/sn.log" >&2
		return 1
	fi
}

# lab_stop: containerd, then the daemon, then the registry if one runs; fails
# if the daemon did not exit 0
lab_stop() {
	_lab_dir || return 1
	local rc status=0
	rc=$(_lab_stop_one containerd) || status=1
	_lab_clean_host_dirs
	lab_stop_daemon || status=1
	lab_registry_stop || status=1
	return $status
}

# lab_restart_daemon: SIGTERM (exit 0 expected) and start again, same flags
lab_restart_daemon() {
	_lab_dir || return 1
	lab_stop_daemon || return 1
	lab_start_daemon
}

# lab_kill9_daemon: SIGKILL the daemon and wait for it to be gone (it stays
# down: lab_start_daemon brings it back)
lab_kill9_daemon() {
	_lab_dir || return 1
	local pid
	pid=$(lab_pid sn)
	if [ -z "$pid" ] || [ -e "$LAB_DIR/sn.rc" ]; then
		_lab_err "the daemon is not running"
		return 1
	fi
	kill -KILL "$pid" || return 1
	_lab_wait_rc sn 10 >/dev/null || { _lab_err "pid $pid survived SIGKILL"; return 1; }
}

# ---- a private registry (Debian's docker-registry, distribution 2.8) ----

# lab_registry_start: docker-registry on 127.0.0.1 (a free port), its storage
# and config in LAB_DIR/registry; prints host:port once /v2/ answers. Also
# kept in LAB_DIR/registry.addr for lab_registry_addr and lab_registry_push.
lab_registry_start() {
	_lab_dir || return 1
	local bin=${LAB_REGISTRY:-docker-registry} port addr
	command -v "$bin" >/dev/null || { _lab_err "no $bin (Debian package docker-registry)"; return 1; }
	port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || return 1
	addr=127.0.0.1:$port
	mkdir -p "$LAB_DIR/registry/data"
	cat >"$LAB_DIR/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $LAB_DIR/registry/data
  delete:
    enabled: true
http:
  addr: $addr
EOF
	_lab_spawn registry "$bin" serve "$LAB_DIR/registry/config.yml" || return 1
	_lab_wait_answer registry "$LAB_TIMEOUT" curl -fsS -o /dev/null "http://$addr/v2/" || return 1
	echo "$addr" >"$LAB_DIR/registry.addr"
	echo "$addr"
}

# lab_registry_addr: host:port of the running registry
lab_registry_addr() {
	_lab_dir || return 1
	cat "$LAB_DIR/registry.addr" 2>/dev/null || { _lab_err "no registry (lab_registry_start first)"; return 1; }
}

# lab_registry_push ARCHIVE NAME:TAG: an OCI archive (one image) into the
# registry with skopeo; prints the reference containerd pulls
lab_registry_push() {
	local addr
	addr=$(lab_registry_addr) || return 1
	skopeo --insecure-policy copy -q --dest-tls-verify=false "oci-archive:$1" "docker://$addr/$2" >&2 || return 1
	echo "$addr/$2"
}

# lab_registry_stop: SIGTERM the registry (nothing if it is not running)
lab_registry_stop() {
	_lab_dir || return 1
	_lab_stop_one registry >/dev/null || return 1
	rm -f "$LAB_DIR/registry.addr"
}
