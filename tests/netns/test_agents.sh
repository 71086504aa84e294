#!/usr/bin/env bash
# test_agents.sh — trellisd on several hosts (network namespaces, each with
# its own dbus-daemon, avahi-daemon and TRELLIS_HOME), configured with
# nothing but trust (`trellis peer trust ID`: no endpoints, no static peers):
#   - 3 hosts discover each other, connect, and converge on a repository
#   - a host that leaves (trellisd killed, or its cable pulled) is marked
#     lost within 10 s; when it returns it resyncs
#   - avahi-daemon restarted under a running agent: discovery off once, on
#     again, peers found again, sync goes on
#   - an untrusted host is seen (listed as discovered) but receives nothing
#   - trellisd without avahi-daemon: says once why discovery is off, works
#     with a static peer, turns discovery on when the daemon appears
# The cases skip while trellisd does not exist (agent/daemon/main.c).
. "$(dirname "$0")/lib.sh"

BR=notes # a CRDT branch: concurrent writes on several hosts merge

# Starts trellisd on hosts 1..N (avahi-daemon already up) and fills ID[k].
declare -a ID
agents() {
    local k
    for k in $(seq 1 "$1"); do
        nn_trellisd "$k"
        ID[k]=$(nn_id "$k")
        [ -n "${ID[k]}" ] || t_fail "host $k: no peer id"
    done
}

# trust K J…: host K trusts hosts J… (by id only).
trust() {
    local k=$1 j
    shift
    for j in "$@"; do
        nn_trellis "$k" peer trust "${ID[j]}" >/dev/null || t_fail "h$k cannot trust h$j"
    done
}

# A repository on host 1 with one op, served; prints nothing, sets REPO.
repo_on_1() {
    local p
    p="$(nn_h 1)/repo"
    REPO=$(nn_trellis 1 init --json "$p" | jq -r .repo)
    [ -n "$REPO" ] || t_fail "cannot init a repository on h1"
    nn_trellis 1 repo add "$p" >/dev/null || t_fail "h1 cannot serve its repository"
    add_op 1 first
}

add_op() { nn_trellis "$1" -C "$(nn_h "$1")/repo" op add --branch "$BR" --kind app.note --target "$2" \
    --body "{\"from\":\"h$1\"}" >/dev/null || t_fail "h$1 cannot append an op"; }

clone_on() {
    nn_trellis "$1" clone --timeout 20000 "$REPO" "$(nn_h "$1")/repo" >/dev/null ||
        t_fail "h$1 cannot clone $REPO (no discovered, connected, trusted peer serves it?)"
}

ops_are() { # ops_are N K…: every host K has N ops in its replica
    local n=$1 k
    shift
    for k in "$@"; do [ "$(nn_ops "$k" "$(nn_h "$k")/repo")" = "$n" ] || return 1; done
}

connected() { nn_peer_connected "$1" "${ID[$2]}"; }

three_hosts_converge() {
    nn_net 3
    nn_up 1
    nn_up 2
    nn_up 3
    agents 3
    trust 1 2 3
    trust 2 1 3
    trust 3 1 2
    local k j t0
    t0=$(nn_ms)
    for k in 1 2 3; do
        for j in 1 2 3; do
            [ "$k" = "$j" ] && continue
            nn_wait 15 connected "$k" "$j" ||
                t_fail "h$k not connected to h$j by discovery: $(nn_peer "$k" "${ID[j]}")"
        done
    done
    nn_measure agents_connected $(($(nn_ms) - t0)) hosts=3
    local p
    p=$(nn_peer 1 "${ID[2]}")
    assert_eq "$(jq -r .source <<<"$p")" discovered "h2's source on h1"
    assert_contains "$(jq -c .addresses <<<"$p")" "tcp://10.77.0.2:7437" "h2's addresses on h1"
    assert_eq "$(jq -r .name <<<"$p")" h2 "h2's name on h1"
    repo_on_1
    clone_on 2
    clone_on 3
    add_op 2 second
    add_op 3 third
    t0=$(nn_ms)
    nn_wait 15 ops_are 3 1 2 3 || t_fail "no convergence: h1 $(nn_ops 1 "$(nn_h 1)/repo"), h2 $(nn_ops 2 "$(nn_h 2)/repo"), h3 $(nn_ops 3 "$(nn_h 3)/repo") ops"
    nn_measure agents_converged $(($(nn_ms) - t0)) hosts=3
    nn_trellisd_exit 1 2 3
}

leave_and_return() {
    nn_net 3
    nn_up 1
    nn_up 2
    nn_up 3
    agents 3
    trust 1 2 3
    trust 2 1 3
    trust 3 1 2
    nn_wait 15 connected 1 3 || t_fail "h1 not connected to h3"
    repo_on_1
    clone_on 2
    clone_on 3
    # Killed outright: lost at once (its avahi-daemon withdraws the records,
    # and the connection breaks).
    local t0 lost
    t0=$(nn_ms)
    nn_trellisd_stop 3 KILL
    nn_wait 12 nn_peer_lost 1 "${ID[3]}" || t_fail "h3 not marked lost on h1: $(nn_peer 1 "${ID[3]}")"
    lost=$(($(nn_ms) - t0))
    nn_measure agent_lost_after_kill "$lost" target_ms=10000
    [ "$lost" -le 10000 ] || t_fail "h3 marked lost after $lost ms"
    nn_peer_present 1 "${ID[2]}" || t_fail "h2 lost meanwhile"
    add_op 1 while-away
    # Back: found and resynced, with no help.
    t0=$(nn_ms)
    nn_trellisd 3
    nn_wait 15 ops_are 2 3 || t_fail "h3 did not resync: $(nn_ops 3 "$(nn_h 3)/repo") ops"
    nn_measure agent_resync_after_restart $(($(nn_ms) - t0)) what="trellisd start to first sync complete"
    # Cable pulled: no goodbye, no RST; lost within the 10 s target. (First
    # h1 must see h3's new announcement, which follows its probing.)
    nn_wait 10 connected 1 3 || t_fail "h1 not reconnected to h3"
    nn_wait 10 nn_peer_present 1 "${ID[3]}" || t_fail "h1 does not see h3 announced again"
    sleep 2
    nn_peer_present 1 "${ID[3]}" || t_fail "h3 flapped on h1"
    t0=$(nn_ms)
    nn_link 3 down
    nn_wait 12 nn_peer_lost 1 "${ID[3]}" || t_fail "h3 not marked lost after its cable was pulled"
    lost=$(($(nn_ms) - t0))
    nn_measure agent_lost_after_link_down "$lost" target_ms=10000
    [ "$lost" -le 10000 ] || t_fail "h3 marked lost after $lost ms (target ≤ 10000)"
    add_op 2 while-unplugged
    nn_link 3 up
    nn_wait 20 ops_are 3 1 2 3 || t_fail "h3 did not resync after the cable came back"
}

avahi_restart_under_agent() {
    nn_net 2
    nn_up 1
    nn_up 2
    agents 2
    trust 1 2
    trust 2 1
    nn_wait 15 connected 1 2 || t_fail "h1 not connected to h2"
    repo_on_1
    clone_on 2
    nn_avahi_stop 1
    sleep 3
    nn_avahi_start 1
    local t0
    t0=$(nn_ms)
    nn_wait 15 nn_peer_present 1 "${ID[2]}" || t_fail "h1 lost h2 for good"
    add_op 2 after-restart
    nn_wait 15 ops_are 2 1 2 || t_fail "sync stopped after avahi-daemon restarted"
    local log
    log=$(cat "$(nn_h 1)/trellisd.err")
    assert_eq "$(grep -c 'discovery off: avahi-daemon went away' <<<"$log")" 1 "'discovery off' lines in h1's log"
    nn_wait 10 grep -q 'discovery on: publishing and browsing' "$(nn_h 1)/trellisd.err" ||
        t_fail "h1's log never says discovery is on"
    # And h2 saw h1 come back (it republished).
    nn_wait 15 nn_peer_present 2 "${ID[1]}" || t_fail "h2 did not find h1 again"
    nn_measure agent_rediscovered_after_avahi_restart $(($(nn_ms) - t0))
    nn_trellisd_exit 1 2
}

untrusted_seen_not_served() {
    nn_net 3
    nn_up 1
    nn_up 2
    nn_up 3
    agents 3
    trust 1 2
    trust 2 1
    trust 3 1 2 # h3 trusts them; neither trusts h3
    nn_wait 15 connected 1 2 || t_fail "h1 not connected to h2"
    repo_on_1
    clone_on 2
    nn_wait 15 nn_peer_present 1 "${ID[3]}" || t_fail "h3 is not listed on h1: $(nn_trellis 1 peers --json)"
    local p
    p=$(nn_peer 1 "${ID[3]}")
    [ -n "$p" ] || t_fail "h3 vanished from h1's peers: $(nn_trellis 1 peers --json 2>&1)"
    assert_eq "$(jq -r .source <<<"$p")" discovered "h3's source on h1"
    assert_eq "$(jq -r .trusted <<<"$p")" false "h3 trusted on h1"
    assert_contains "$(jq -c .addresses <<<"$p")" "tcp://10.77.0.3:7437" "h3's addresses on h1"
    # h3 cannot get the repository, and never gets an op.
    if nn_trellis 3 clone --timeout 5000 "$REPO" "$(nn_h 3)/repo" >/dev/null 2>&1; then
        [ "$(nn_ops 3 "$(nn_h 3)/repo")" = 0 ] || t_fail "the untrusted host received ops"
    fi
    add_op 1 secret
    sleep 3
    [ -d "$(nn_h 3)/repo" ] && { [ "$(nn_ops 3 "$(nn_h 3)/repo")" = 0 ] || t_fail "the untrusted host received ops"; }
    connected 3 1 && t_fail "h1 let the untrusted h3 in"
    nn_wait 10 ops_are 2 1 2 || t_fail "h2 (trusted) did not get the op"
}

no_avahi_daemon() {
    nn_net 2
    nn_up 2
    nn_dbus_start 1 # D-Bus, but no avahi-daemon on h1
    agents 2
    sleep 3 # several reconnection attempts
    local log
    log=$(cat "$(nn_h 1)/trellisd.err")
    assert_eq "$(grep -c 'discovery off: avahi-daemon is not running' <<<"$log")" 1 "'discovery off' lines in h1's log"
    # Static peers work meanwhile (h2 trusts h1 first: a refused CURVE
    # handshake is not retried by libzmq).
    trust 2 1
    nn_trellis 1 peer add tcp://10.77.0.2:7437 --key "${ID[2]}" >/dev/null || t_fail "peer add"
    nn_wait 15 connected 1 2 || t_fail "h1 not connected to its static peer"
    # The daemon appears: discovery turns on by itself.
    nn_avahi_start 1
    nn_wait 15 grep -q 'discovery on: publishing and browsing' "$(nn_h 1)/trellisd.err" ||
        t_fail "h1's log never says discovery is on"
    nn_wait 15 nn_peer_present 2 "${ID[1]}" || t_fail "h2 did not discover h1"
}

t_case three_hosts_converge three_hosts_converge
t_case leave_and_return leave_and_return
t_case avahi_restart_under_agent avahi_restart_under_agent
t_case untrusted_seen_not_served untrusted_seen_not_served
t_case no_avahi_daemon no_avahi_daemon
t_done
