#!/usr/bin/env bash
# bench_discovery.sh — discovery figures on a LAN of network namespaces
# (tests/netns/lib.sh), one JSON line each, medians of BENCH_DISCOVERY_RUNS
# (default 5) runs:
#   discovery_found_ms        trdisc started on a host → its peer_up on a
#                             running host (avahi-daemon warm on both)
#   discovery_lost_ms         a host's cable pulled → its peer_down elsewhere
#                             (no goodbye: bounded by the PTR TTL, 8 s)
#   agent_first_sync_ms       trellisd started on a host → first sync complete
#                             with an already running trusted peer (20 new ops);
#                             target ≤ 2000
#   agent_lost_ms             a host's cable pulled → marked lost in the other
#                             agent's `trellis peers`; target ≤ 10000
# Where namespaces are not permitted (not root, no `ip netns`), or trellisd
# lacks discovery, the figures print {"skipped": why}.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../netns/lib.sh
. "$here/../netns/lib.sh"
RUNS=${BENCH_DISCOVERY_RUNS:-5}

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)); else print "null"}'; }

# figure NAME TARGET FILE: the median and every sample of FILE as JSON.
figure() {
    local name=$1 target=$2 f=$3 samples
    samples=$(paste -sd, "$f")
    echo "{\"bench\":\"$name\",\"median_ms\":$(median <"$f"),\"runs\":$(wc -l <"$f"),\"samples_ms\":[${samples}]${target:+,\"target_ms\":$target}}"
}

skipped() { echo "{\"bench\":\"$1\",\"skipped\":\"$2\"}"; }

# Bench cases run like test cases (own network, torn down by a trap), but a
# failure becomes a JSON line instead of a FAIL line.
NN_BENCH_OUT=$T_ROOT/bench
mkdir -p "$NN_BENCH_OUT"
t_fail() { echo "$*" >"$T_DIR/why"; exit 99; }
t_skip() { echo "$*" >"$T_DIR/why"; exit 77; }
run_bench() { # run_bench NAME... FUNCTION: prints skipped lines for NAMEs on failure
    local fn=${*: -1} names=("${@:1:$#-1}") n
    export T_CASE=$fn
    T_CASENO=$((T_CASENO + 1))
    T_DIR=$(mktemp -d "$T_ROOT/case.XXXXXX")
    export NN_PFX="${NN_ID}c${T_CASENO}"
    (
        trap nn_teardown EXIT
        cd "$T_DIR" || exit 1
        "$fn"
    ) >/dev/null 2>&1
    local rc=$?
    nn_teardown
    if [ $rc -ne 0 ]; then
        for n in "${names[@]}"; do skipped "$n" "$(cat "$T_DIR/why" 2>/dev/null || echo "failed ($rc)")"; done
        return
    fi
    for n in "${names[@]}"; do
        if [ -s "$NN_BENCH_OUT/$n" ]; then
            figure "$n" "$(cat "$NN_BENCH_OUT/$n.target" 2>/dev/null)" "$NN_BENCH_OUT/$n"
        else
            skipped "$n" "no samples"
        fi
    done
}

sample() { echo "$2" >>"$NN_BENCH_OUT/$1"; }

bench_trdisc() {
    nn_net 2
    nn_up 1
    nn_up 2
    nn_trdisc 1 --name one
    sleep 2 # avahi-daemons past their own start-up
    local i t0 id2 tup
    for i in $(seq 1 "$RUNS"); do
        rm -f "$(nn_h 2)/trdisc.out"
        t0=$(nn_ms)
        nn_trdisc 2 --name two
        id2=$(nn_trdisc_self 2)
        nn_wait 10 nn_has 1 ".ev==\"up\" and .id==\"$id2\" and .ms >= $t0" || t_fail "h1 did not find h2"
        tup=$(nn_events 1 ".ev==\"up\" and .id==\"$id2\" and .ms >= $t0" | head -n 1 | jq -r .ms)
        sample discovery_found_ms $((tup - t0))
        sleep 1
        t0=$(nn_ms)
        nn_link 2 down
        nn_wait 15 nn_has 1 ".ev==\"down\" and .id==\"$id2\" and .ms >= $t0" || t_fail "h1 did not lose h2"
        sample discovery_lost_ms $(($(nn_events 1 ".ev==\"down\" and .id==\"$id2\" and .ms >= $t0" | head -n 1 | jq -r .ms) - t0))
        nn_stop 2 trdisc TERM
        nn_link 2 up
        sleep 2
    done
    echo 10000 >"$NN_BENCH_OUT/discovery_lost_ms.target"
}

ops_of() { nn_trellis "$1" -C "$(nn_h "$1")/repo" sync status --json 2>/dev/null | jq -r '.ops // 0'; }

bench_agents() {
    nn_need_trellisd
    nn_net 2
    nn_up 1
    nn_up 2
    nn_trellisd 1
    nn_trellisd 2
    local id1 id2 repo n t0 t1 i k
    id1=$(nn_id 1)
    id2=$(nn_id 2)
    nn_trellis 1 peer trust "$id2" >/dev/null || t_fail "h1 cannot trust h2"
    nn_trellis 2 peer trust "$id1" >/dev/null || t_fail "h2 cannot trust h1"
    nn_wait 15 nn_peer_connected 2 "$id1" || t_skip "trellisd did not discover its trusted peer (discovery not wired into the agent?)"
    repo=$(nn_trellis 1 init --json "$(nn_h 1)/repo" | jq -r .repo)
    nn_trellis 1 repo add "$(nn_h 1)/repo" >/dev/null || t_fail "repo add"
    nn_trellis 2 clone --timeout 20000 "$repo" "$(nn_h 2)/repo" >/dev/null || t_fail "clone"
    for i in $(seq 1 "$RUNS"); do
        nn_trellisd_stop 2
        for k in $(seq 1 20); do echo "{\"kind\":\"app.note\",\"target\":\"r$i-$k\",\"body\":{}}"; done |
            nn_trellis 1 -C "$(nn_h 1)/repo" op import --branch notes - >/dev/null || t_fail "import"
        n=$(ops_of 1)
        t0=$(nn_ms)
        nn_bg 2 trellisd env TRELLIS_HOME="$(nn_h 2)/home" "$NN_TRELLISD" $NN_TRELLISD_ARGS
        while [ "$(ops_of 2)" != "$n" ]; do
            [ $(($(nn_ms) - t0)) -gt 30000 ] && t_fail "no first sync within 30 s"
            sleep 0.02
        done
        t1=$(nn_ms)
        sample agent_first_sync_ms $((t1 - t0))
        # Lost: the cable of h2 pulled; h1 must mark it lost. First let the
        # goodbye of the stopped agent expire (1 s) and the new announcement
        # arrive, so that only the pulled cable is measured.
        sleep 3
        nn_wait 15 nn_peer_present 1 "$id2" || t_fail "h1 does not see h2"
        t0=$(nn_ms)
        nn_link 2 down
        while ! nn_peer_lost 1 "$id2"; do
            [ $(($(nn_ms) - t0)) -gt 30000 ] && t_fail "h2 not marked lost within 30 s"
            sleep 0.05
        done
        sample agent_lost_ms $(($(nn_ms) - t0))
        nn_link 2 up
        nn_wait 20 nn_peer_present 1 "$id2" || t_fail "h2 not found again"
    done
    echo 2000 >"$NN_BENCH_OUT/agent_first_sync_ms.target"
    echo 10000 >"$NN_BENCH_OUT/agent_lost_ms.target"
}

if [ -n "$NN_SKIP" ]; then
    for n in discovery_found_ms discovery_lost_ms agent_first_sync_ms agent_lost_ms; do skipped "$n" "$NN_SKIP"; done
    exit 0
fi
run_bench discovery_found_ms discovery_lost_ms bench_trdisc
run_bench agent_first_sync_ms agent_lost_ms bench_agents
