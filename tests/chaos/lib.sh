# shellcheck shell=bash disable=SC2034,SC2154
# lib.sh — helpers for the chaos tests (sourced by tests/chaos/test_*.sh):
# the CLI test library and the agent helpers (tests/cli/lib.sh,
# tests/cli/agentlib.sh), plus
#
#   SOAK                 1 under TRELLIS_SOAK=1 (make soak): the long variants
#   helper NAME          builds tests/chaos/helpers/NAME.c against the
#                        libtrellis.a of the build under test (cached in
#                        $TRELLIS_BUILD/chaos/) and prints its path; the case
#                        fails if it does not build
#   figure KEY VALUE...  prints "# figure CASE KEY VALUE..." (tests/run.sh
#                        shows these lines: the figures a run measured)
#   rss_kb PID, hwm_kb PID, fds PID
#                        resident and peak resident set (kB), open fds
#   init_crdt NAME PATH  a repository whose every branch is CRDT
. "$(dirname "${BASH_SOURCE[0]}")/../cli/lib.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../cli/agentlib.sh"

chaos_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOAK=0
[ -n "${TRELLIS_SOAK:-}" ] && [ "${TRELLIS_SOAK}" != 0 ] && SOAK=1
CHAOS_BUILD=$(dirname "$TRELLIS_BIN")

helper() {
    local name=$1 src=$chaos_here/helpers/$1.c lib=$CHAOS_BUILD/libtrellis.a out san=
    out=$CHAOS_BUILD/chaos/$name
    [ -f "$lib" ] || t_fail "no $lib (run 'make san')"
    mkdir -p "$CHAOS_BUILD/chaos"
    local stale=0 f
    [ -x "$out" ] || stale=1
    for f in "$src" "$lib" "$top_lib"/agent/daemon/host.c "$top_lib"/core/*.h "$top_lib"/store/*.h; do
        [ "$f" -nt "$out" ] && stale=1
    done
    if [ $stale -eq 1 ]; then
        nm "$lib" 2>/dev/null | grep -q __asan && san="-fsanitize=address,undefined"
        # shellcheck disable=SC2046,SC2086
        cc -std=c11 -D_GNU_SOURCE -g -O1 $san -I"$top_lib/core" -I"$top_lib/store" -o "$out.tmp.$$" "$src" "$lib" \
            $(pkg-config --cflags --libs libzmq libczmq libsodium msgpack lmdb avahi-client jansson libzstd) \
            -lpthread -lm >"$CHAOS_BUILD/chaos/$name.log" 2>&1 ||
            t_fail "helper $name does not build: $(head -c 600 "$CHAOS_BUILD/chaos/$name.log")"
        mv -f "$out.tmp.$$" "$out"
    fi
    echo "$out"
}

figure() {
    echo "# figure $T_CASE $*"
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
fds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }

init_crdt() { # NAME PATH
    at "$1" init "$2" >/dev/null || t_fail "init $2"
    cat >"$2/.trellis/config.json" <<'EOF'
{
  "version": 1,
  "branchPolicies": {
    "*": { "linear": false, "requireSigning": true }
  }
}
EOF
}

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }
