#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian 12 machine.
# Idempotent: does nothing when everything is already there.
set -euo pipefail

packages=(
	build-essential meson ninja-build pkg-config clang
	libcmocka-dev libisal-dev libzstd-dev libssl-dev
	erofs-utils e2fsprogs util-linux attr
	python3 gzip zstd pigz tar qemu-utils
	libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libprotobuf-dev protobuf-compiler
	liblmdb-dev containerd golang-github-containerd-containerd-dev libext2fs-dev
	qemu-system-x86 busybox-static kmod
	cryptsetup-bin dmsetup
	docker-registry skopeo curl python3-grpcio python3-grpc-tools
	systemd debhelper lintian build-essential
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Packaged services (docker-registry listens on every address by default)
	# must not start on install: the tests start their own, on 127.0.0.1.
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
