#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# build.sh OUT
#
# Builds containerd's snapshotter conformance suite, wrapped by this folder's
# Go files, into the test binary OUT. Everything comes from Debian sid's
# packages, unpacked with dpkg -x under $SPIN_DEBS (nothing installed): Go
# itself and the Go sources of containerd 2.1 and of exactly the packages
# its suite and proxy client import, built in GOPATH mode (Debian's -dev
# packages lay sources out as a GOPATH), offline, with no module download.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:?usage: build.sh OUT}
debs=${SPIN_DEBS:-/var/tmp/spin-debs}
tree=$debs/conformance

# Go, then containerd 2.1.9's Go sources and what the suite and the proxy
# client import from them (their own Depends would pull in all of
# Kubernetes: the closure below is the import graph's, found with
# `go list -e -deps -test`).
pkgs=(
	golang-1.27-go golang-1.27-src
	golang-github-containerd-containerd-dev
	golang-github-containerd-containerd-api-dev
	golang-github-containerd-continuity-dev
	golang-github-containerd-errdefs-dev
	golang-github-containerd-log-dev
	golang-github-containerd-ttrpc-dev
	golang-github-containerd-typeurl-dev
	golang-github-davecgh-go-spew-dev
	golang-github-gogo-protobuf-dev
	golang-github-golang-protobuf-1-5-dev
	golang-github-google-go-cmp-dev
	golang-github-moby-sys-dev
	golang-github-opencontainers-go-digest-dev
	golang-github-opencontainers-image-spec-dev
	golang-github-pmezard-go-difflib-dev
	golang-github-sirupsen-logrus-dev
	golang-github-stretchr-testify-dev
	golang-golang-x-net-dev
	golang-golang-x-sync-dev
	golang-golang-x-sys-dev
	golang-golang-x-text-dev
	golang-google-genproto-dev
	golang-google-grpc-dev
	golang-google-protobuf-dev
	golang-gopkg-yaml.v3-dev
)
FETCH_DEBS_QUIET=1 "$repo/scripts/fetch-debs.sh" sid "$tree" "${pkgs[@]}"

goroot=$(ls -d "$tree"/usr/lib/go-1.* | sort -V | tail -1)
gopath=$(mktemp -d /tmp/spin-conformance-gopath.XXXXXX)
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/spin"
cp "$here"/*.go "$gopath/src/spin/"
mkdir -p "$gopath/src/spin/conformance"
mv "$gopath"/src/spin/*.go "$gopath/src/spin/conformance/"

export GOROOT=$goroot PATH=$goroot/bin:$PATH
export GOPATH=$gopath:$tree/usr/share/gocode GO111MODULE=off GOTOOLCHAIN=local
export GOCACHE=${GOCACHE:-/var/tmp/spin-gocache} GOFLAGS= CGO_ENABLED=0 GOPROXY=off
cd "$gopath/src/spin/conformance"
missing=$(go list -e -deps -test -f '{{if .Error}}{{.ImportPath}}{{end}}' . 2>/dev/null | sort -u)
if [ -n "$missing" ]; then
	echo "conformance: Go packages not found in $tree (add their Debian -dev packages to build.sh):" >&2
	printf '  %s\n' $missing >&2
	exit 1
fi
go vet . >&2
go test -c -o "$out" .
ctd=$(grep -o '^golang-github-containerd-containerd-dev_[^_]*' "$tree/PACKAGES" | cut -d_ -f2)
echo "conformance: built $out with $(go version | cut -d' ' -f3), containerd's suite $ctd" >&2
