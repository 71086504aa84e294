#!/usr/bin/env bash
# regress.sh — the fuzz harnesses as plain programs in `make test`: each
# tests/fuzz/fuzz_*.c is built with tests/fuzz/driver.c (no libFuzzer)
# against the libtrellis.a of the build under test (ASan/UBSan in
# build/san) and replays its seed corpus (seeds.sh and the generators) and
# every input kept in tests/fuzz/regress/<harness>/ — the crashes `make
# fuzz` found, so that each stays fixed.
#
# Prints "ok fuzz/<harness>" or "FAIL fuzz/<harness>: …" per harness and the
# closing "N passed, N failed, N skipped" line of tests/run.sh. Binaries are
# cached in $TRELLIS_BUILD/fuzz-replay and rebuilt when a source is newer.
#
# An input named *.known is a crash reported but not fixed yet: it is
# replayed only with TRELLIS_KNOWN_FAILURES=1 and is otherwise reported as
# skipped (never as passed). Drop the suffix when the fix lands.
set -u
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${TRELLIS_BUILD:-$top/build/san}
case $build in /*) ;; *) build=$top/$build ;; esac
lib=$build/libtrellis.a
out=$build/fuzz-replay
CC=${CC:-cc}
pkgs="libzmq libczmq libsodium msgpack lmdb avahi-client jansson libzstd"
passed=0 failed=0 skipped=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

if [ ! -f "$lib" ]; then
    echo "skip fuzz/regress: no $lib (run 'make san')"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
mkdir -p "$out"
cd "$top" || exit 1
san=
nm "$lib" 2>/dev/null | grep -q __asan && san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
flags="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer $san -Icore -Istore -Iagent -Idiscovery $(pkg-config --cflags $pkgs)"
libs="-Wl,--as-needed $(pkg-config --libs $pkgs) -lpthread -lm"
newest_header=$(ls -t core/*.h store/*.h agent/*/*.h discovery/*.h 2>/dev/null | head -n 1)

# The sources a harness needs besides libtrellis.a: the daemon's files its
# .deps name (the library has core/, store/, discovery/ and agent/lib/).
extra_srcs() {
    [ -f "$here/$1.deps" ] || return 0
    # shellcheck disable=SC2046
    for s in $(echo $(cat "$here/$1.deps")); do
        case $s in agent/daemon/*) echo "$s" ;; esac
    done
}

build_one() { # name → 0 when $out/name is up to date
    local name=$1 bin=$out/$1 s stale=0 extra
    extra=$(extra_srcs "$name")
    [ -x "$bin" ] || stale=1
    for s in "$here/$name.c" "$here/driver.c" "$lib" "$newest_header" $extra; do
        [ "$s" -nt "$bin" ] && stale=1
    done
    [ $stale -eq 0 ] && return 0
    # shellcheck disable=SC2086
    $CC $flags -o "$bin" "$here/$name.c" "$here/driver.c" $extra "$lib" $libs >"$out/$name.build.log" 2>&1
}

names=()
for h in "$here"/fuzz_*.c; do names+=("$(basename "$h" .c)"); done
work=$(mktemp -d "${TMPDIR:-/tmp}/trellis-fuzz-regress.XXXXXX")
trap 'rm -rf "$work"' EXIT

built=()
for name in "${names[@]}"; do
    if build_one "$name"; then
        built+=("$name")
    else
        echo "FAIL fuzz/$name: does not build"
        sed 's/^/   /' "$out/$name.build.log" | head -n 20
        failed=$((failed + 1))
    fi
done
# The generators write seeds for themselves and other harnesses.
for name in "${built[@]}"; do
    grep -q FUZZ_WRITE_SEEDS "$here/$name.c" &&
        FUZZ_WRITE_SEEDS=$work/gen "$out/$name" >/dev/null 2>"$work/$name.gen.log"
done
for name in "${built[@]}"; do
    mkdir -p "$work/seeds-$name"
    bash "$here/seeds.sh" "$name" "$work/seeds-$name"
    set -- "$work/seeds-$name"
    [ -d "$work/gen/$name" ] && set -- "$@" "$work/gen/$name"
    local_known=()
    if [ -d "$here/regress/$name" ]; then
        for f in "$here/regress/$name"/*; do
            [ -f "$f" ] || continue
            if [[ $f == *.known ]] && [ -z "${TRELLIS_KNOWN_FAILURES:-}" ]; then
                local_known+=("$(basename "$f")")
                continue
            fi
            set -- "$@" "$f"
        done
    fi
    for f in "${local_known[@]}"; do
        echo "skip fuzz/$name: known failure (issue 8), regress/$name/$f (TRELLIS_KNOWN_FAILURES=1 replays it)"
        skipped=$((skipped + 1))
    done
    if { (cd "$work" && timeout 300 "$out/$name" "$@") >"$work/$name.log" 2>&1; } 2>/dev/null; then
        echo "ok fuzz/$name ($(grep -oE '^[0-9]+ inputs ran' "$work/$name.log" | grep -oE '^[0-9]+') inputs)"
        passed=$((passed + 1))
    else
        last=$(grep '^running ' "$work/$name.log" | tail -n 1 | sed 's/^running //')
        echo "FAIL fuzz/$name: crashed on $last"
        grep -vE '^running ' "$work/$name.log" | head -n 30 | sed 's/^/   /'
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
