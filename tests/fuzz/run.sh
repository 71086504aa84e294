#!/usr/bin/env bash
# make fuzz: builds every tests/fuzz/fuzz_*.c with libFuzzer + ASan/UBSan and
# runs each for FUZZ_SECONDS (default 60), starting from a seed corpus made
# from the test vectors. Prints one JSON line per harness with executions and
# coverage; exits non-zero if any harness found a crash (its input is kept in
# build/fuzz/crash-*; add it to tests/fuzz/regress/<harness>/ as a regression).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=$top/build/fuzz
secs=${FUZZ_SECONDS:-60}
mkdir -p "$out"
cd "$top"
CC=${FUZZ_CC:-clang}
flags="-g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Icore -Istore -Iagent $(pkg-config --cflags libsodium msgpack libzstd jansson)"
libs="$(pkg-config --libs libsodium msgpack libzstd jansson) -lpthread -lm"
core=$(ls core/*.c)
status=0
for h in "$here"/fuzz_*.c; do
    name=$(basename "$h" .c)
    srcs=$core
    [ -f "$here/$name.deps" ] && srcs="$srcs $(cat "$here/$name.deps")"
    $CC $flags -o "$out/$name" "$h" $srcs $libs
    corpus=$out/corpus-$name
    mkdir -p "$corpus"
    [ -x "$here/seeds.sh" ] && bash "$here/seeds.sh" "$name" "$corpus"
    [ -d "$here/regress/$name" ] && cp "$here/regress/$name"/* "$corpus"/ 2>/dev/null || true
    log=$out/$name.log
    if ! "$out/$name" -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$out/crash-$name-" "$corpus" >"$log" 2>&1; then
        status=1
        echo "{\"fuzz\":\"$name\",\"result\":\"crash\",\"log\":\"$log\"}"
        tail -n 30 "$log" >&2
        continue
    fi
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || true)
    [ -n "$execs" ] || execs=$(grep -oE '#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || echo 0)
    echo "{\"fuzz\":\"$name\",\"seconds\":$secs,\"execs\":${execs:-0},\"coverage_edges\":$cov,\"result\":\"ok\"}"
done
exit $status
