#!/usr/bin/env bash
# make fuzz: builds every tests/fuzz/fuzz_*.c with libFuzzer + ASan/UBSan and
# runs each for FUZZ_SECONDS (default 60), FUZZ_JOBS at a time (default: the
# number of CPUs), starting from a seed corpus: tests/fuzz/seeds.sh, the
# generators inside the harnesses (FUZZ_WRITE_SEEDS: frames captured from
# two sync sessions talking), tests/fuzz/regress/<harness>/ and what earlier
# runs found (build/fuzz/corpus-<harness>, kept).
#
# Prints one JSON line per harness with executions, coverage (edges and
# features) and corpus size; exits non-zero if any harness found a crash.
# A crash's input is kept as build/fuzz/crash-<harness>-*: copy it into
# tests/fuzz/regress/<harness>/ and `make test` replays it from then on
# (tests/fuzz/regress.sh; a name ending in .known marks one not fixed yet).
#
#   FUZZ_SECONDS=N   seconds per harness (default 60)
#   FUZZ_ONLY=NAME   only the harnesses whose name contains NAME
#   FUZZ_JOBS=N      harnesses run at once (default: nproc)
#
# A harness may carry extra libFuzzer flags in a comment line
# "fuzz-options: …", and extra sources in tests/fuzz/<harness>.deps
# (paths relative to the top directory; globs allowed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$top/build/fuzz
secs=${FUZZ_SECONDS:-60}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
mkdir -p "$out/obj"
cd "$top"
CC=${FUZZ_CC:-clang}
pkgs="libzmq libczmq libsodium msgpack lmdb avahi-client jansson libzstd"
base="-g -O1 -std=c11 -D_GNU_SOURCE -Icore -Istore -Iagent -Idiscovery $(pkg-config --cflags $pkgs)"
objflags="$base -fsanitize=fuzzer-no-link,address,undefined"
exeflags="$base -fsanitize=fuzzer,address,undefined"
libs="-Wl,--as-needed $(pkg-config --libs $pkgs) -lpthread -lm"

harnesses=()
for h in "$here"/fuzz_*.c; do
    name=$(basename "$h" .c)
    [ -n "${FUZZ_ONLY:-}" ] && [[ $name != *"$FUZZ_ONLY"* ]] && continue
    harnesses+=("$name")
done

# Instrumented objects, each built once and again only when it or a header
# is newer. Headers are few and shared, so any newer header rebuilds all.
newest_header=$(ls -t core/*.h store/*.h agent/*/*.h discovery/*.h 2>/dev/null | head -n 1)
obj_of() { echo "$out/obj/${1%.c}.o"; }
build_obj() {
    local src=$1 o
    o=$(obj_of "$src")
    if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ "$newest_header" -nt "$o" ]; then
        mkdir -p "$(dirname "$o")"
        $CC $objflags -c "$src" -o "$o"
    fi
}
export -f build_obj obj_of
export CC objflags out newest_header

srcs_of() { # harness → the library sources it links (core plus its .deps)
    local s
    s=$(ls core/*.c)
    # shellcheck disable=SC2046
    [ -f "$here/$1.deps" ] && s="$s $(echo $(cat "$here/$1.deps"))"
    echo "$s"
}

all_srcs=$(for n in "${harnesses[@]}"; do srcs_of "$n"; done | tr ' ' '\n' | sort -u)
echo "$all_srcs" | xargs -P "$jobs" -I{} bash -c 'build_obj {}' || { echo "building objects failed" >&2; exit 1; }

for name in "${harnesses[@]}"; do
    objs=""
    for s in $(srcs_of "$name"); do objs="$objs $(obj_of "$s")"; done
    # shellcheck disable=SC2086
    $CC $exeflags -o "$out/$name" "$here/$name.c" $objs $libs
done

# Seeds: the generators first (they may write seeds for other harnesses).
seeds=$out/seeds
rm -rf "$seeds"
mkdir -p "$seeds"
for name in "${harnesses[@]}"; do
    if grep -q FUZZ_WRITE_SEEDS "$here/$name.c"; then
        FUZZ_WRITE_SEEDS=$seeds "$out/$name" >/dev/null 2>&1 || echo "warning: $name: seed generator failed" >&2
    fi
done

run_one() { # name → one JSON line
    local name=$1 corpus=$out/corpus-$1 log=$out/$1.log opts
    mkdir -p "$corpus"
    bash "$here/seeds.sh" "$name" "$corpus"
    [ -d "$seeds/$name" ] && cp "$seeds/$name"/* "$corpus"/ 2>/dev/null
    # kept crash inputs, except known ones not fixed yet (regress.sh)
    for f in "$here/regress/$name"/*; do
        [ -f "$f" ] && [[ $f != *.known ]] && cp "$f" "$corpus"/
    done
    opts=$(sed -n 's/.*fuzz-options: *\(.*[^ */]\).*/\1/p' "$here/$name.c" | head -n 1)
    rm -f "$out/crash-$name-"* "$out/leak-$name-"* "$out/timeout-$name-"*
    # shellcheck disable=SC2086
    if ! "$out/$name" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/crash-$name-" $opts "$corpus" >"$log" 2>&1; then
        echo "{\"fuzz\":\"$name\",\"result\":\"crash\",\"log\":\"$log\",\"input\":\"$(ls "$out/crash-$name-"* 2>/dev/null | head -n 1)\"}"
        return 1
    fi
    local execs cov ft
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    echo "{\"fuzz\":\"$name\",\"seconds\":$secs,\"execs\":${execs:-0},\"execs_per_sec\":$(( ${execs:-0} / (secs > 0 ? secs : 1) )),\"coverage_edges\":$cov,\"features\":$ft,\"corpus\":$(ls "$corpus" | wc -l),\"result\":\"ok\"}"
}
export -f run_one
export here secs seeds

status=0
printf '%s\n' "${harnesses[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one {}' || status=1
if [ $status -ne 0 ]; then
    for f in "$out"/*.log; do
        grep -q -E '^==[0-9]+==ERROR|SUMMARY: |deadly signal|check failed' "$f" 2>/dev/null || continue
        echo "--- $(basename "$f" .log):" >&2
        grep -E -A 30 '^==[0-9]+==ERROR|check failed|deadly signal' "$f" | head -n 40 >&2
    done
    echo "crash inputs are in $out/crash-*; add each to tests/fuzz/regress/<harness>/" >&2
fi
exit $status
