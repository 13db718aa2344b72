#!/usr/bin/env bash
# The test command of the README: installs what is missing, builds, and runs
# every test suite twice: in the normal build and under ASan+UBSan.
# Needs root for the kernel-mount tests (they skip, visibly, without it).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh

status=0
run_suite() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null
	fi
	ninja -C "$dir" >/dev/null
	meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
}

# The builds a packager runs: compiled (every target, the tests too) with
# -Werror where the code sets it, not run. Each counts as one test.
builds_ok=0 builds_failed=0
build_only() {
	local dir=$1 what=$2 hardening=$3
	shift 3
	echo "== build only ($what)"
	rm -rf "$dir"
	if (if [ "$hardening" = 1 ]; then eval "$(dpkg-buildflags --export=sh)"; fi
	    meson setup "$dir" "$@" && ninja -C "$dir") >"$dir.log" 2>&1; then
		builds_ok=$((builds_ok + 1))
	else
		echo "build ($what) failed:"; grep -E 'error|Error' "$dir.log" | head -20
		builds_failed=$((builds_failed + 1)) status=1
	fi
	rm -rf "$dir" "$dir.log"
}
build_only build-release "--buildtype=release" 0 --buildtype=release
build_only build-plain "--buildtype=plain with dpkg-buildflags' hardening" 1 --buildtype=plain

echo "== build (gcc, debugoptimized)"
run_suite build
echo "== build (gcc, ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_suite build-asan -Db_sanitize=address,undefined -Db_lundef=false

# The Debian package (debian/, README "Installing the Debian package"): built
# with dpkg-buildpackage, lintian-clean, installed, the unit's ExecStart run
# under a NOTIFY_SOCKET, a registry pull through containerd 2.1 against the
# installed daemon, then removed and purged with nothing left. One test.
echo "== the Debian package"
if bash scripts/build-deb.sh build-deb >build-deb.log 2>&1 &&
	lintian --pedantic --fail-on error,warning,info,pedantic build-deb/*.changes >>build-deb.log 2>&1 &&
	bash tests/package/install-deb.sh build-deb -- \
		python3 tests/integration/run-differ.py --daemon /usr/sbin/spin-erofs-snapshotter \
		--erofs-layer /usr/bin/erofs-layer --diff-probe build/tests/integration/diff-probe \
		--workdir build/package-pull --only lab-start --only pull-registry --only lab-stop; then
	builds_ok=$((builds_ok + 1))
else
	echo "the Debian package failed:"; tail -30 build-deb.log
	builds_failed=$((builds_failed + 1)) status=1
fi

# One closing line over both builds, in the form CI reads.
BUILDS_OK=$builds_ok BUILDS_FAILED=$builds_failed \
python3 - build/meson-logs/testlog.json build-asan/meson-logs/testlog.json <<'PY'
import json, os, sys
n = {"OK": int(os.environ["BUILDS_OK"]), "FAIL": int(os.environ["BUILDS_FAILED"]), "SKIP": 0}
for path in sys.argv[1:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        n["FAIL"] += 1
        continue
    for line in lines:
        r = json.loads(line).get("result", "FAIL")
        key = "OK" if r in ("OK", "EXPECTEDFAIL") else "SKIP" if r == "SKIP" else "FAIL"
        n[key] += 1
print(f"tests: {n['OK']} passed, {n['FAIL']} failed, {n['SKIP']} skipped")
PY
exit $status
