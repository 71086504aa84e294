# shellcheck shell=bash
# lib.sh — a LAN in network namespaces for the multi-host tests (sourced by
# tests/netns/test_*.sh and tests/bench/bench_discovery.sh).
#
# Each case gets its own network: a bridge that lives in a namespace of its
# own, and N hosts h1..hN, each a network namespace joined to the bridge by
# a veth pair (eth0 ↔ vK; with nn_net -2, also eth1 ↔ a second bridge),
# addressed 10.77.0.K/24 and fd00:77::K/64 (eth1: 10.78.0.K, fd00:78::K).
# Each host has a mount namespace with a tmpfs on /run (a holder process
# keeps it), its own dbus-daemon, avahi-daemon and, for agent tests, its own
# trellisd and TRELLIS_HOME. Nothing touches the machine's own interfaces or
# routes: every link is created inside the namespaces.
#
#   nn_net [-2] N          build the network (hosts 1..N)
#   nn_up K                dbus-daemon + avahi-daemon on host K
#   nn_dbus_start K / nn_avahi_start K / nn_avahi_stop K / nn_dbus_stop K
#   nn_exec K CMD…         run CMD on host K (its network and /run)
#   nn_bg K NAME CMD…      same, in the background; pid in hK/NAME.pid,
#                          output in hK/NAME.out (stdout) and hK/NAME.err
#   nn_stop K NAME [SIG]   stop a background process (TERM, then KILL)
#   nn_link K down|up [ethN]   pull / plug host K's cable at the bridge
#   nn_trdisc K ARGS…      start tests/netns/trdisc on host K (name trdisc);
#                          nn_has K JQ-FILTER [N]: more than N of its events match
#   nn_trellisd K          start trellisd on host K (skips the case if the
#                          binary does not exist yet); nn_trellis K ARGS…
#                          runs the CLI against it
#   nn_wait SECS CMD…      poll CMD every 0.1 s until it succeeds
#   nn_ms                  wall clock in milliseconds
#   nn_measure NAME MS [K=V…]   print a JSON measurement line
#
# Cases: t_case NAME FUNCTION (a subshell with its own directory $T_DIR and
# network, torn down by a trap whatever happens), t_fail, t_skip, assert_*,
# t_done — as in tests/cli/lib.sh. NN_ONLY=NAME runs one case; TRELLIS_BUILD
# picks the build (default build/san: trdisc, trellisd, trellis). Where namespaces are not permitted (not
# root, a tool missing, `ip netns add` refused), every case prints a skip
# line: skipped, never passed.

set -u
NN_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NN_TOP=$(cd "$NN_DIR/../.." && pwd)
TRELLIS_BUILD=${TRELLIS_BUILD:-$NN_TOP/build/san}
case $TRELLIS_BUILD in /*) ;; *) TRELLIS_BUILD=$NN_TOP/$TRELLIS_BUILD ;; esac
NN_TRDISC=${NN_TRDISC:-$TRELLIS_BUILD/netns/trdisc}
NN_TRELLISD=${NN_TRELLISD:-$TRELLIS_BUILD/trellisd}
TRELLIS_BIN=${TRELLIS_BIN:-$TRELLIS_BUILD/trellis}
NN_TRELLISD_ARGS=${NN_TRELLISD_ARGS:-}
export NO_COLOR=1 ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
unset XDG_CONFIG_HOME XDG_DATA_HOME XDG_STATE_HOME XDG_RUNTIME_DIR DBUS_SYSTEM_BUS_ADDRESS

T_PASSED=0 T_FAILED=0 T_SKIPPED=0 T_CASENO=0
T_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/trellis-netns.XXXXXX")
NN_ID="trn$$"

# ---- can we? -------------------------------------------------------------

# Prints why namespaces cannot be used here, or nothing.
nn_why_not() {
    [ "$(id -u)" = 0 ] || { echo "network namespaces need root (running as uid $(id -u))"; return; }
    local c
    for c in ip nsenter unshare dbus-daemon avahi-daemon avahi-browse avahi-publish jq; do
        command -v "$c" >/dev/null 2>&1 || { echo "$c is not installed (make deps)"; return; }
    done
    [ -x "$NN_TRDISC" ] || { echo "no $NN_TRDISC (run 'make san')"; return; }
    local probe="${NN_ID}probe"
    if ! ip netns add "$probe" 2>/dev/null; then
        echo "'ip netns add' is not permitted here"
        return
    fi
    if ! ip netns exec "$probe" unshare --mount --propagation private true 2>/dev/null; then
        ip netns del "$probe" 2>/dev/null
        echo "mount namespaces are not permitted here"
        return
    fi
    ip netns del "$probe" 2>/dev/null
}

# Deletes namespaces left by runs that died without cleaning up (their
# shell's pid is gone).
nn_sweep_stale() {
    local ns pid
    for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^trn[0-9]+c' || true); do
        pid=${ns#trn}
        pid=${pid%%c*}
        [ -d "/proc/$pid" ] && continue
        nn_kill_ns "$ns"
        ip netns del "$ns" 2>/dev/null || true
    done
}

# ---- the network ---------------------------------------------------------

nn_h() { echo "$T_DIR/h$1"; }
nn_ns() { echo "${NN_PFX}h$1"; }

# Kills every process inside namespace $1 (all of them ours), TERM first.
nn_kill_ns() {
    local pids
    pids=$(ip netns pids "$1" 2>/dev/null | tr '\n' ' ')
    [ -n "$pids" ] || return 0
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null
    for _ in $(seq 1 30); do
        pids=$(ip netns pids "$1" 2>/dev/null | tr '\n' ' ')
        [ -n "$pids" ] || return 0
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null
    sleep 0.1
}

nn_addns() {
    ip netns add "$1" || t_fail "cannot create namespace $1"
    echo "$1" >>"$T_DIR/ns.list"
}

# nn_net [-2] N: the bridge namespace and hosts 1..N.
nn_net() {
    local two=0
    [ "$1" = -2 ] && { two=1; shift; }
    local n=$1 k br="${NN_PFX}b"
    NN_TWO=$two
    nn_addns "$br"
    ip -n "$br" link set lo up
    local b
    for b in 0 $([ $two = 1 ] && echo 1); do
        # Snooping off: mDNS is multicast and the bridge has no querier.
        ip -n "$br" link add "br$b" type bridge mcast_snooping 0 forward_delay 0 ||
            t_fail "cannot create a bridge"
        ip -n "$br" link set "br$b" mtu 9000 up
    done
    for k in $(seq 1 "$n"); do nn_host "$k"; done
}

# Adds host K: namespace, links, addresses, and the mount-namespace holder.
nn_host() {
    local k=$1 ns br="${NN_PFX}b" dir
    ns=$(nn_ns "$k")
    dir=$(nn_h "$k")
    mkdir -p "$dir/home"
    nn_addns "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
        >/dev/null 2>&1
    ip -n "$ns" link set lo up
    local l
    for l in 0 $([ "$NN_TWO" = 1 ] && echo 1); do
        ip -n "$br" link add "v$k-$l" mtu 9000 type veth peer name "eth$l" mtu 9000 netns "$ns" ||
            t_fail "cannot create the veth pair of host $k"
        ip -n "$br" link set "v$k-$l" master "br$l" up
        ip -n "$ns" addr add "10.7$((7 + l)).0.$k/24" dev "eth$l"
        ip -n "$ns" addr add "fd00:7$((7 + l))::$k/64" dev "eth$l" nodad
        ip -n "$ns" link set "eth$l" up
    done
    # The holder: a mount namespace whose /run is a fresh tmpfs, kept alive
    # by a sleeping process that every later command of this host enters.
    ip netns exec "$ns" unshare --mount --propagation private sh -c \
        'mount -t tmpfs -o mode=0755 tmpfs /run && mkdir -p /run/dbus /run/avahi-daemon &&
         touch "$1/holder.ready" && exec sleep 100000' sh "$dir" >/dev/null 2>&1 &
    echo $! >"$dir/holder.pid"
    nn_wait 5 test -e "$dir/holder.ready" || t_fail "host $k: the mount namespace did not come up"
    printf '%s\n' "$([ "$NN_TWO" = 1 ] && echo eth0,eth1 || echo eth0)" >"$dir/ifaces"
}

nn_exec() {
    local k=$1
    shift
    nsenter -t "$(cat "$(nn_h "$k")/holder.pid")" -m -n -- "$@"
}

nn_bg() {
    local k=$1 name=$2 dir
    shift 2
    dir=$(nn_h "$k")
    nsenter -t "$(cat "$dir/holder.pid")" -m -n -- "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    echo $! >"$dir/$name.pid"
}

# nn_stop K NAME [SIG]: signal, then wait up to 5 s (KILL after that).
# (stderr is closed while it runs: bash reports a killed job there.)
nn_stop() {
    local k=$1 name=$2 sig=${3:-TERM} f pid
    f="$(nn_h "$k")/$name.pid"
    [ -f "$f" ] || return 0
    pid=$(cat "$f")
    {
        kill "-$sig" "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" || break
            sleep 0.1
        done
        kill -KILL "$pid"
        wait "$pid"
    } 2>/dev/null
    rm -f "$f"
    return 0
}

nn_dbus_start() {
    local k=$1 dir
    dir=$(nn_h "$k")
    cat >"$dir/dbus.conf" <<'EOF'
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <pidfile>/run/dbus/pid</pidfile>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
    nn_exec "$k" dbus-daemon --config-file="$dir/dbus.conf" --fork --print-pid >"$dir/dbus.pid" \
        2>"$dir/dbus.err" || t_fail "host $k: dbus-daemon did not start: $(cat "$dir/dbus.err")"
}

nn_dbus_stop() { nn_stop "$1" dbus "${2:-TERM}"; }

# avahi-daemon with a config of ours: only our veths, no publishing beyond
# the addresses our SRV records need, no rlimits (they fail in containers).
nn_avahi_start() {
    local k=$1 dir
    dir=$(nn_h "$k")
    cat >"$dir/avahi.conf" <<EOF
[server]
host-name=trh$k
domain-name=local
use-ipv4=yes
use-ipv6=yes
allow-interfaces=$(cat "$dir/ifaces")
enable-dbus=yes
ratelimit-interval-usec=1000000
ratelimit-burst=1000

[wide-area]
enable-wide-area=no

[publish]
publish-addresses=yes
publish-hinfo=no
publish-workstation=no
publish-domain=no
publish-aaaa-on-ipv4=yes
publish-a-on-ipv6=no

[reflector]
enable-reflector=no
EOF
    nn_exec "$k" avahi-daemon -f "$dir/avahi.conf" --no-drop-root --no-chroot --no-rlimits -D \
        >"$dir/avahi.err" 2>&1 || t_fail "host $k: avahi-daemon did not start: $(cat "$dir/avahi.err")"
    for _ in $(seq 1 50); do
        nn_exec "$k" cat /run/avahi-daemon/pid >"$dir/avahi.pid" 2>/dev/null && [ -s "$dir/avahi.pid" ] &&
            return 0
        sleep 0.1
    done
    t_fail "host $k: avahi-daemon wrote no pid file"
}

nn_avahi_stop() { nn_stop "$1" avahi "${2:-TERM}"; }

nn_up() {
    nn_dbus_start "$1"
    nn_avahi_start "$1"
}

# nn_link K down|up [L]: the bridge side of host K's link L (default 0),
# as if its cable were pulled at the switch: no goodbye gets out.
nn_link() {
    ip -n "${NN_PFX}b" link set "v$1-${3:-0}" "$2"
}

# ---- trdisc ----------------------------------------------------------------

# nn_trdisc K ARGS…: a discovery-only agent on host K (seed K by default).
nn_trdisc() {
    local k=$1
    shift
    nn_bg "$k" trdisc "$NN_TRDISC" --seed "$k" --port 7437 "$@"
    nn_wait 5 nn_trdisc_self "$k" >/dev/null || t_fail "host $k: trdisc did not start: $(cat "$(nn_h "$k")/trdisc.err")"
}

# (jq -e judges only the last input line, so grep decides.)
# nn_trdisc_exit K…: stops trdisc on hosts K… with SIGTERM and fails the
# case on a sanitizer report (leaks, bad accesses) or an unclean exit.
nn_trdisc_exit() {
    local k dir
    for k in "$@"; do
        dir=$(nn_h "$k")
        nn_stop "$k" trdisc TERM
        grep -q '"ev":"exit"' "$dir/trdisc.out" || t_fail "host $k: trdisc did not exit cleanly"
        if grep -qE 'Sanitizer|runtime error' "$dir/trdisc.err"; then
            t_fail "host $k: sanitizer report: $(head -c 3000 "$dir/trdisc.err")"
        fi
    done
}

nn_trdisc_self() { jq -r 'select(.ev=="self") | .id' "$(nn_h "$1")/trdisc.out" 2>/dev/null | grep .; }

# nn_events K FILTER: the host's trdisc events matching a jq filter.
nn_events() { jq -c "select($2)" "$(nn_h "$1")/trdisc.out" 2>/dev/null; }

nn_count() { nn_events "$1" "$2" | wc -l; }

nn_has() { [ "$(nn_count "$1" "$2")" -gt "${3:-0}" ]; }

# ---- trellisd ----------------------------------------------------------------

nn_trellis() {
    local k=$1
    shift
    TRELLIS_HOME="$(nn_h "$k")/home" "$TRELLIS_BIN" "$@"
}

nn_need_trellisd() {
    [ -x "$NN_TRELLISD" ] || t_skip "no trellisd at $NN_TRELLISD yet (agent/daemon/main.c not landed)"
    [ -x "$TRELLIS_BIN" ] || t_skip "no trellis CLI at $TRELLIS_BIN"
}

# nn_trellisd K: starts trellisd on host K with TRELLIS_HOME=hK/home and
# the display name hK; waits until its control socket answers.
nn_trellisd() {
    local k=$1 dir
    dir=$(nn_h "$k")
    nn_need_trellisd
    mkdir -p "$dir/home/config"
    [ -f "$dir/home/config/agent.json" ] || printf '{"name": "h%s"}\n' "$k" >"$dir/home/config/agent.json"
    # shellcheck disable=SC2086
    nn_bg "$k" trellisd env TRELLIS_HOME="$dir/home" "$NN_TRELLISD" $NN_TRELLISD_ARGS
    nn_wait 15 nn_trellis "$k" peers --json >/dev/null 2>&1 ||
        t_fail "host $k: trellisd did not answer on its control socket; its log: $(tail -n 20 "$dir/trellisd.err")"
}

nn_trellisd_stop() { nn_stop "$1" trellisd "${2:-TERM}"; }

# nn_trellisd_exit K…: SIGTERM, and fail on a sanitizer report in its log.
nn_trellisd_exit() {
    local k
    for k in "$@"; do
        nn_trellisd_stop "$k"
        if grep -qE 'Sanitizer|runtime error' "$(nn_h "$k")/trellisd.err"; then
            t_fail "host $k: sanitizer report from trellisd: $(grep -A30 -E 'Sanitizer|runtime error' "$(nn_h "$k")/trellisd.err" | head -c 3000)"
        fi
    done
}

nn_id() { nn_trellis "$1" id --json | jq -r .id; }

# nn_peer K ID: host K's peer object for ID (from `trellis peers --json`).
nn_peer() { nn_trellis "$1" peers --json 2>/dev/null | jq -c --arg id "$2" '.[] | select(.id == $id)'; }

# nn_peer_is K ID JQ-CONDITION: the peer exists and the condition holds
# (jq -e alone would call an empty input true).
nn_peer_is() {
    local p
    p=$(nn_peer "$1" "$2")
    [ -n "$p" ] && jq -e "$3" <<<"$p" >/dev/null
}

# A peer is present while discovery announces it (the agent's "present"
# field; without it: a session is up or it has discovered addresses), lost
# otherwise.
NN_PRESENT='if has("present") then .present else (.connected == true) or ((.addresses // []) | length > 0) end'
nn_peer_present() { nn_peer_is "$1" "$2" "$NN_PRESENT"; }
nn_peer_lost() { nn_peer_is "$1" "$2" "($NN_PRESENT) | not"; }
nn_peer_connected() { nn_peer_is "$1" "$2" '.connected == true'; }

# Op count of the repository at PATH on host K.
nn_ops() { nn_trellis "$1" -C "$2" sync status --json 2>/dev/null | jq -r '.ops // 0'; }

# ---- waiting and measuring -----------------------------------------------

nn_ms() { date +%s%3N; }

nn_wait() {
    local secs=$1 end
    shift
    end=$(($(nn_ms) + secs * 1000))
    while :; do
        "$@" && return 0
        [ "$(nn_ms)" -ge "$end" ] && return 1
        sleep 0.1
    done
}

nn_measure() {
    local name=$1 ms=$2 extra=""
    shift 2
    local kv
    for kv in "$@"; do extra="$extra,\"${kv%%=*}\":\"${kv#*=}\""; done
    echo "{\"bench\":\"netns\",\"measure\":\"$name\",\"ms\":$ms$extra}"
}

# ---- cases -----------------------------------------------------------------

t_fail() {
    echo "FAIL $T_CASE: $*"
    nn_dump
    exit 99
}

t_skip() {
    echo "skip $T_CASE: $*"
    exit 77
}

# On failure: what each host's programs said (to stdout, which run.sh shows
# for a failing script).
nn_dump() {
    local f
    for f in "$T_DIR"/h*/*.out "$T_DIR"/h*/*.err; do
        [ -s "$f" ] || continue
        echo "--- ${f#"$T_DIR"/}"
        tail -n 25 "$f"
    done
}

assert_eq() {
    [ "$1" = "$2" ] && return 0
    t_fail "${3:-value}: want '$2', got '$1'"
}

assert_contains() {
    case $1 in *"$2"*) return 0 ;; esac
    t_fail "${3:-text} should contain '$2'; it is: '${1:0:2000}'"
}

assert_not_contains() {
    case $1 in *"$2"*) t_fail "${3:-text} should not contain '$2'; it is: '${1:0:2000}'" ;; esac
    return 0
}

# Tears down the case's network: every process in its namespaces (daemons,
# trdisc, trellisd, the holders), then the namespaces.
nn_teardown() {
    [ -f "$T_DIR/ns.list" ] || return 0
    local ns
    for ns in $(tac "$T_DIR/ns.list"); do nn_kill_ns "$ns"; done
    for ns in $(tac "$T_DIR/ns.list"); do ip netns del "$ns" 2>/dev/null; done
    rm -f "$T_DIR/ns.list"
}

t_case() {
    T_CASE=$1
    shift
    [ -n "${NN_ONLY:-}" ] && [ "$NN_ONLY" != "$T_CASE" ] && return
    T_CASENO=$((T_CASENO + 1))
    T_DIR=$(mktemp -d "$T_ROOT/case.XXXXXX")
    NN_PFX="${NN_ID}c${T_CASENO}"
    if [ -n "$NN_SKIP" ]; then
        echo "skip $T_CASE: $NN_SKIP"
        T_SKIPPED=$((T_SKIPPED + 1))
        return
    fi
    (
        trap nn_teardown EXIT
        cd "$T_DIR" || exit 1
        "$@"
    )
    local rc=$?
    # The subshell's trap ran; this catches a case killed before it could.
    nn_teardown
    case $rc in
    0) echo "ok $T_CASE"; T_PASSED=$((T_PASSED + 1)) ;;
    77) T_SKIPPED=$((T_SKIPPED + 1)) ;;
    99) T_FAILED=$((T_FAILED + 1)) ;;
    *) echo "FAIL $T_CASE: the case ended with status $rc"; T_FAILED=$((T_FAILED + 1)); nn_dump ;;
    esac
}

t_done() {
    echo "$T_PASSED passed, $T_FAILED failed, $T_SKIPPED skipped"
    [ "$T_FAILED" -eq 0 ]
    exit $?
}

nn_on_exit() {
    local d
    for d in "$T_ROOT"/case.*; do
        [ -f "$d/ns.list" ] && T_DIR=$d nn_teardown
    done
    rm -rf "$T_ROOT"
}
trap nn_on_exit EXIT
trap 'exit 143' TERM INT

NN_SKIP=$(nn_why_not)
[ -z "$NN_SKIP" ] && nn_sweep_stale
