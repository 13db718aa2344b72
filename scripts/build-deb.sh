#!/usr/bin/env bash
# Builds the Debian packages (debian/) from this checkout as it is, committed
# or not: dpkg-buildpackage -us -uc -b in a copy of the tree under OUTDIR, so
# that neither the checkout nor its parent directory gets build products.
# The .deb, .buildinfo and .changes files land in OUTDIR (default build-deb/).
#   scripts/build-deb.sh [OUTDIR]
# Then lintian: lintian OUTDIR/*.changes
# Needs the Build-Depends of debian/control (scripts/deps.sh installs them).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$src/build-deb}" && cd "${1:-$src/build-deb}" && pwd)
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
tree="$out/tree/spin-erofs-snapshotter-$version"

rm -rf "$out/tree"
mkdir -p "$tree"
# the files git knows of or would (not build directories, not ignored ones)
if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$src" && git ls-files -z --cached --others --exclude-standard |
		xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
		tar -C "$src" --null -T - -cf - | tar -C "$tree" -xf -
else
	tar -C "$src" --exclude='./build*' --exclude='./.git' -cf - . | tar -C "$tree" -xf -
fi

# parallel=1 unless the caller asks for more: a shared machine
export DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-parallel=1}"
(cd "$tree" && dpkg-buildpackage -us -uc -b)

rm -f "$out"/*.deb "$out"/*.ddeb "$out"/*.buildinfo "$out"/*.changes
mv "$out"/tree/*.deb "$out"/tree/*.buildinfo "$out"/tree/*.changes "$out"/
rm -rf "$out/tree"
ls -l "$out"
