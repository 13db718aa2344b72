#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# run.sh BUILDDIR WORKDIR
#
# The library as a third party gets it: `meson install` of BUILDDIR into a
# staging root, then consumer.c compiled with nothing but the installed
# headers and `pkg-config spin-erofs-layer` (no include path into the source
# tree), linked to the shared library, and run. Also checks that the shared
# library exports exactly the functions the installed headers mark
# EL_EXPORT.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "${1:?usage: run.sh BUILDDIR WORKDIR}")
work=${2:?usage: run.sh BUILDDIR WORKDIR}
rm -rf "$work"
mkdir -p "$work/stage" "$work/out" "$work/lower/etc" "$work/upper/etc"
work=$(realpath "$work")

meson install -C "$build" --no-rebuild --quiet --destdir "$work/stage" >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log"; exit 1; }
pc=$(find "$work/stage" -name spin-erofs-layer.pc | head -1)
[ -n "$pc" ] || { echo "lib-consumer: no spin-erofs-layer.pc installed"; exit 1; }
# the staged prefix stands for the installed one: a copy of the .pc with it
mkdir -p "$work/pc"
prefix=$(sed -n 's/^prefix=//p' "$pc")
sed "s|^prefix=.*|prefix=$work/stage$prefix|" "$pc" >"$work/pc/spin-erofs-layer.pc"
export PKG_CONFIG_PATH=$work/pc  # searched before the system's
pc_() { pkg-config "$@" spin-erofs-layer; }
cflags=$(pc_ --cflags)
libs=$(pc_ --libs)
libdir=$(pc_ --variable=libdir)
for f in $cflags $libs; do
	case "$f" in -I"$work/stage"/* | -L"$work/stage"/* | -l* | -I/usr/include* | -pthread) ;;
	*) echo "lib-consumer: pkg-config flag $f is not the staged install's nor the system's"; exit 1 ;;
	esac
done
# a sanitizer build's library needs its runtime first in the program
san=
if ldd "$libdir/libspin-erofs-layer.so" | grep libasan >/dev/null; then san=-fsanitize=address,undefined; fi
cc -std=gnu17 -Wall -Wextra -Werror $san $cflags "$here/consumer.c" -o "$work/consumer" $libs -Wl,-rpath,"$libdir"
ldd "$work/consumer" | grep -F "$libdir/libspin-erofs-layer.so" >/dev/null ||
	{ echo "lib-consumer: not linked to the staged shared library:"; ldd "$work/consumer"; exit 1; }

# the ABI: what the headers mark EL_EXPORT, nothing more, nothing less
incdir=$(pc_ --variable=includedir)/erofs-layer
grep -ho '^EL_EXPORT [^(]*(' "$incdir"/*.h | sed -E 's/.*[ *](el_[a-z0-9_]+)\($/\1/' | sort -u >"$work/declared"
nm -D --defined-only "$libdir/libspin-erofs-layer.so" | awk '$2 == "T" { print $3 }' | sort -u >"$work/exported"
if ! diff -u "$work/declared" "$work/exported"; then
	echo "lib-consumer: exported symbols differ from the EL_EXPORT declarations (- declared, + exported)"
	exit 1
fi
echo "lib-consumer: $(wc -l <"$work/exported") exported functions, as declared"

echo "hello from the lower layer" >"$work/lower/etc/motd"
echo "hello, third party" >"$work/upper/etc/greeting"
tar -C "$work/lower" -cf "$work/lower.tar" etc
tar -C "$work/upper" -cf "$work/upper.tar" etc
"$work/consumer" "$work/lower.tar" "$work/upper.tar" "$work/out" | tee "$work/consumer.out"
grep -qx 'etc/greeting: hello, third party' "$work/consumer.out"
grep -q '^merged: ' "$work/consumer.out"
[ -s "$work/out/fsmeta.erofs" ] && [ -s "$work/out/merged.vmdk" ]
rm -rf "$work"
echo "lib-consumer: ok"
