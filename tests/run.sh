#!/usr/bin/env bash
# Runs the test suite: every unit-test binary in $TRELLIS_BUILD/unit, every
# tests/cli/test_*.sh and tests/netns/test_*.sh script (multi-host, in network
# namespaces), the fuzz regression replay (tests/fuzz/regress.sh) and every
# tests/chaos/test_*.sh, each in its own process with a time limit, and prints
# one closing line "N passed, N failed, N skipped" (cases added up).
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
build=${TRELLIS_BUILD:-build/san}
case $build in /*) ;; *) build=$top/$build ;; esac
export TRELLIS_BUILD=$build
export TRELLIS_BIN=$build/trellis
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
limit=${TRELLIS_TEST_TIMEOUT:-300}

passed=0 failed=0 skipped=0
failures=()
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count() { # $1 = name, $2 = exit code; reads the case lines from $log
    local p f s line
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$' "$log" | tail -n 1)
    if [ -n "$line" ]; then
        p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
        f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
        s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped$/\1/p'); s=${s:-0}
    else
        p=0 f=1 s=0
    fi
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    if [ "$f" -ne 0 ]; then failures+=("$1"); fi
}

run_one() { # $1 = display name, rest = command
    local name=$1; shift
    echo "== $name"
    timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
    local rc=$?
    grep -E '^(ok|FAIL|skip) |^# figure ' "$log" | sed 's/^/   /'
    if [ $rc -ne 0 ]; then
        [ $rc -eq 124 ] && echo "   $name: timed out after ${limit}s"
        echo "   --- output of $name (exit $rc) ---"; grep -vE '^(ok|skip) ' "$log" | tail -n 60 | sed 's/^/   /'
    fi
    count "$name" $rc
}

filter=${1:-}
for t in "$build"/unit/test_*; do
    [ -x "$t" ] || continue
    [ -n "$filter" ] && [[ $(basename "$t") != *$filter* ]] && continue
    run_one "unit/$(basename "$t")" "$t"
done
for t in "$here"/cli/test_*.sh; do
    [ -f "$t" ] || continue
    [ -n "$filter" ] && [[ $(basename "$t") != *$filter* ]] && continue
    run_one "cli/$(basename "$t")" bash "$t"
done
# Multi-host tests in network namespaces (skipped where not permitted).
for t in "$here"/netns/test_*.sh; do
    [ -f "$t" ] || continue
    [ -n "$filter" ] && [[ $(basename "$t") != *$filter* ]] && continue
    run_one "netns/$(basename "$t")" bash "$t"
done
# The fuzz harnesses as plain programs: their seeds and every crash input
# kept in tests/fuzz/regress/ (make fuzz runs them with libFuzzer).
if [ -z "$filter" ] || [[ fuzz_regress == *$filter* ]]; then
    run_one "fuzz/regress.sh" bash "$here/fuzz/regress.sh"
fi
# Crash consistency, load and security (short runs; TRELLIS_SOAK=1, as in
# `make soak`, makes them long and gives them an hour each).
chaos_limit=$limit
[ -n "${TRELLIS_SOAK:-}" ] && chaos_limit=${TRELLIS_SOAK_TIMEOUT:-3600}
for t in "$here"/chaos/test_*.sh; do
    [ -f "$t" ] || continue
    [ -n "$filter" ] && [[ $(basename "$t") != *$filter* ]] && continue
    limit=$chaos_limit run_one "chaos/$(basename "$t")" bash "$t"
done

echo
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
