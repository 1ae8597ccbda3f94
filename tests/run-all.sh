#!/usr/bin/env bash
# Runs the whole test suite and ends with one line "N passed, N failed":
#   1. unit tests (Criterion) and fuzz-corpus replays, normal build
#   2. the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   3. integration tests (pytest) against real redis-server and autobot
# Usage: tests/run-all.sh BUILD_DIR [ASAN_BUILD_DIR]
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
asan=${2:-build-asan}
cd "$root"
passed=0
failed=0
failures=()

# Criterion prints "Synthesis: Tested: N | Passing: N | Failing: N | Crashing: N".
run_criterion() { # label exe
	local label=$1 exe=$2 out
	out=$("$exe" --jobs 2 2>&1)
	local rc=$?
	echo "$out" | grep -E 'Synthesis|FAIL|\[----\]|Assertion|CRASH|ERROR|AddressSanitizer|runtime error' | head -40
	local line p f c
	line=$(echo "$out" | grep -E 'Synthesis: Tested' | tail -1)
	if [ -z "$line" ]; then
		echo "$label: no Criterion summary (exit $rc)"
		echo "$out" | tail -20
		failed=$((failed + 1)); failures+=("$label"); return
	fi
	p=$(echo "$line" | sed -E 's/.*Passing: ([0-9]+).*/\1/')
	f=$(echo "$line" | sed -E 's/.*Failing: ([0-9]+).*/\1/')
	c=$(echo "$line" | sed -E 's/.*Crashing: ([0-9]+).*/\1/')
	passed=$((passed + p)); failed=$((failed + f + c))
	if [ $rc -ne 0 ] || [ $((f + c)) -ne 0 ]; then failures+=("$label"); fi
	[ $rc -ne 0 ] && [ $((f + c)) -eq 0 ] && { failed=$((failed + 1)); failures+=("$label (exit $rc)"); }
}

run_replays() { # label builddir
	local label=$1 dir=$2
	for exe in "$dir"/tests/replay_*; do
		[ -x "$exe" ] && [ -f "$exe" ] || continue
		local name=${exe##*/replay_}
		if out=$("$exe" "tests/fuzz/corpus/$name" 2>&1); then
			passed=$((passed + 1)); echo "$label fuzz replay $name: $out"
		else
			failed=$((failed + 1)); failures+=("$label replay $name"); echo "$out" | tail -20
		fi
	done
}

echo "== unit tests ($build)"
for exe in "$build"/tests/test_*; do
	[ -x "$exe" ] && [ -f "$exe" ] || continue
	echo "-- ${exe##*/}"
	run_criterion "${exe##*/}" "$exe"
done
run_replays "" "$build"

if [ "${AB_SKIP_ASAN:-0}" != 1 ]; then
	echo "== unit tests under ASan+UBSan ($asan)"
	if [ ! -f "$asan/build.ninja" ]; then
		meson setup "$asan" -Db_sanitize=address,undefined -Db_lundef=false --buildtype=debug >/dev/null
	fi
	if ninja -C "$asan" >/tmp/ab-asan-build.log 2>&1; then
		export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
		export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
		export LSAN_OPTIONS=suppressions=$root/tests/lsan.supp
		for exe in "$asan"/tests/test_*; do
			[ -x "$exe" ] && [ -f "$exe" ] || continue
			echo "-- asan ${exe##*/}"
			run_criterion "asan ${exe##*/}" "$exe"
		done
		run_replays "asan" "$asan"
		unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
	else
		tail -30 /tmp/ab-asan-build.log
		failed=$((failed + 1)); failures+=("asan build")
	fi
fi

echo "== integration tests"
export AUTOBOT_BIN="$root/$build/autobot"
out=$(/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/integration 2>&1)
echo "$out" | tail -40
line=$(echo "$out" | grep -E '[0-9]+ (passed|failed)' | tail -1)
p=$(echo "$line" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
f=$(echo "$line" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true)
e=$(echo "$line" | grep -oE '[0-9]+ error' | grep -oE '[0-9]+' || true)
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0} + ${e:-0}))
if [ -z "$line" ]; then failed=$((failed + 1)); failures+=("pytest: no summary"); fi
[ $(( ${f:-0} + ${e:-0} )) -gt 0 ] && failures+=("integration")

echo
[ ${#failures[@]} -gt 0 ] && echo "failed parts: ${failures[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
