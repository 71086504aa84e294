# shellcheck shell=bash
# evemit.sh — builds tests/cli/helpers/evemit.c against the libtrellis.a of
# the build under test (sourced by test_events.sh and test_notify.sh after
# lib.sh). Sets EVEMIT to the binary, or to "" when it cannot be built (the
# cases that need it skip, saying why: $T_ROOT/evemit.log).

evemit_build() {
    local lib san=
    lib=$(dirname "$TRELLIS_BIN")/libtrellis.a
    EVEMIT=$T_ROOT/evemit
    [ -f "$lib" ] || { echo "no $lib" >"$T_ROOT/evemit.log"; EVEMIT=; return; }
    # a sanitizer build's objects need the sanitizer runtimes at link time
    nm "$lib" 2>/dev/null | grep -q __asan && san="-fsanitize=address,undefined"
    # shellcheck disable=SC2046,SC2086
    cc -std=c11 -D_GNU_SOURCE $san -o "$EVEMIT" "$here_lib/helpers/evemit.c" "$lib" \
        $(pkg-config --cflags --libs libzmq libczmq libsodium msgpack lmdb avahi-client jansson libzstd) \
        -lpthread -lm >"$T_ROOT/evemit.log" 2>&1 || EVEMIT=
}

need_evemit() {
    [ -n "$EVEMIT" ] || t_skip "the evemit helper did not build: $(head -c 300 "$T_ROOT/evemit.log")"
}

evemit_build
