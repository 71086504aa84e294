#!/usr/bin/env bash
# test_discovery_life.sh — peers and daemons coming and going, with
# tests/netns/trdisc (no trellisd needed):
#   - a peer that leaves with a goodbye (SIGTERM), or dies (SIGKILL: its
#     avahi-daemon withdraws for it): peer_down at once
#   - a peer whose cable is pulled (no goodbye): peer_down within the PTR
#     TTL (8 s; target ≤ 10 s), and peer_up again when it is plugged back
#   - avahi-daemon restarted under a running discovery: off once, on again,
#     republished and rediscovered
#   - no avahi-daemon (or not even D-Bus) at start: off once with the
#     reason, on by itself when the daemons appear
. "$(dirname "$0")/lib.sh"

wait_up() { nn_wait "${3:-10}" nn_has "$1" ".ev==\"up\" and .id==\"$2\"${4:+ and ($4)}"; }
wait_down() { nn_wait "${3:-10}" nn_has "$1" ".ev==\"down\" and .id==\"$2\""; }
ev_ms() { nn_events "$1" "$2" | tail -n 1 | jq -r .ms; }

leave_with_goodbye() {
    nn_net 2
    nn_up 1
    nn_up 2
    nn_trdisc 1 --name one
    nn_trdisc 2 --name two
    local id2 t0
    id2=$(nn_trdisc_self 2)
    wait_up 1 "$id2" || t_fail "h2 not seen"
    t0=$(nn_ms)
    nn_stop 2 trdisc TERM
    wait_down 1 "$id2" 3 || t_fail "no peer_down within 3 s of a clean exit"
    nn_measure lost_after_exit $(($(ev_ms 1 ".ev==\"down\"") - t0))
    # Back, then killed outright: avahi-daemon sees its client vanish and
    # withdraws the records with a goodbye for it.
    nn_trdisc 2 --name two
    nn_wait 10 nn_has 1 "(.ev==\"up\" and .id==\"$id2\" and .ms > $(ev_ms 1 '.ev=="down"'))" ||
        t_fail "h2 not seen again"
    t0=$(nn_ms)
    nn_stop 2 trdisc KILL
    nn_wait 3 nn_has 1 ".ev==\"down\" and .id==\"$id2\"" 1 ||
        t_fail "no peer_down within 3 s of a SIGKILL"
    nn_measure lost_after_kill $(($(ev_ms 1 ".ev==\"down\"") - t0))
}

leave_silently_and_return() {
    nn_net 3
    nn_up 1
    nn_up 2
    nn_up 3
    nn_trdisc 1 --name one
    nn_trdisc 2 --name two
    nn_trdisc 3 --name three
    local id2 id3 t0 t1 lost
    id2=$(nn_trdisc_self 2)
    id3=$(nn_trdisc_self 3)
    wait_up 1 "$id2" || t_fail "h2 not seen"
    wait_up 1 "$id3" || t_fail "h3 not seen"
    sleep 1
    t0=$(nn_ms)
    nn_link 2 down
    wait_down 1 "$id2" 12 || t_fail "h2 not lost 12 s after its cable was pulled"
    t1=$(ev_ms 1 ".ev==\"down\" and .id==\"$id2\"")
    lost=$((t1 - t0))
    nn_measure lost_after_link_down "$lost" target_ms=10000
    [ "$lost" -le 10000 ] || t_fail "h2 marked lost after $lost ms (target ≤ 10000)"
    assert_eq "$(nn_count 1 ".ev==\"down\" and .id==\"$id3\"")" 0 "h3 lost meanwhile"
    # Plugged back: announced again, found again.
    t0=$(nn_ms)
    nn_link 2 up
    nn_wait 15 nn_has 1 ".ev==\"up\" and .id==\"$id2\" and .ms > $t1" || t_fail "h2 not found again"
    nn_measure found_after_link_up $(($(ev_ms 1 ".ev==\"up\" and .id==\"$id2\"") - t0))
}

avahi_restart() {
    nn_net 2
    nn_up 1
    nn_up 2
    nn_trdisc 1 --name one
    nn_trdisc 2 --name two
    local id1 id2 t0
    id1=$(nn_trdisc_self 1)
    id2=$(nn_trdisc_self 2)
    wait_up 1 "$id2" || t_fail "h2 not seen"
    wait_up 2 "$id1" || t_fail "h1 not seen"
    t0=$(nn_ms)
    nn_avahi_stop 1
    nn_wait 5 nn_has 1 '.ev=="state" and (.on|not)' || t_fail "h1 did not report discovery off"
    nn_has 1 '.ev=="state" and (.on|not) and (.why|test("avahi-daemon went away"))' || t_fail "reason"
    wait_down 1 "$id2" 3 || t_fail "h1 still reports h2 while it cannot see"
    wait_down 2 "$id1" 3 || t_fail "h2 did not see h1's records withdrawn"
    sleep 2 # reconnection attempts meanwhile must not report again
    nn_avahi_start 1
    t0=$(nn_ms)
    nn_wait 10 nn_has 1 '.ev=="state" and .on and .ms > '"$t0" || t_fail "h1 did not report discovery on"
    nn_wait 10 nn_has 1 ".ev==\"up\" and .id==\"$id2\" and .ms > $t0" || t_fail "h1 did not find h2 again"
    nn_wait 10 nn_has 2 ".ev==\"up\" and .id==\"$id1\" and .ms > $t0" || t_fail "h2 did not find h1 again"
    nn_measure rediscovered_after_avahi_restart $(($(ev_ms 2 ".ev==\"up\" and .id==\"$id1\"") - t0))
    assert_eq "$(nn_count 1 '.ev=="state"')" 3 "state reports on h1 (on, off, on)"
    assert_eq "$(nn_count 1 '.ev=="log" and .level<=1')" 0 "warnings on h1"
    nn_trdisc_exit 1 2
}

no_avahi_then_it_starts() {
    nn_net 2
    nn_up 2
    nn_dbus_start 1
    nn_trdisc 2 --name two
    nn_trdisc 1 --name one
    local id1 id2
    id1=$(nn_trdisc_self 1)
    id2=$(nn_trdisc_self 2)
    nn_wait 5 nn_has 1 '.ev=="state"' || t_fail "no state report without avahi-daemon"
    nn_has 1 '.ev=="state" and (.on|not) and (.why|startswith("avahi-daemon is not running"))' ||
        t_fail "wrong first state: $(nn_events 1 '.ev=="state"')"
    sleep 2
    nn_avahi_start 1
    nn_wait 10 nn_has 1 '.ev=="state" and .on' || t_fail "discovery did not turn on"
    wait_up 1 "$id2" 10 || t_fail "h2 not found once avahi-daemon ran"
    wait_up 2 "$id1" 10 || t_fail "h1 not published once avahi-daemon ran"
    assert_eq "$(nn_count 1 '.ev=="state"')" 2 "state reports (off once, then on)"
}

no_dbus_then_it_starts() {
    nn_net 2
    nn_up 2
    nn_trdisc 2 --name two
    nn_trdisc 1 --name one
    local id2
    id2=$(nn_trdisc_self 2)
    nn_wait 5 nn_has 1 '.ev=="state"' || t_fail "no state report without D-Bus"
    nn_has 1 '.ev=="state" and (.on|not) and (.why|test("^avahi-daemon is not running \\(no system D-Bus"))' ||
        t_fail "wrong first state: $(nn_events 1 '.ev=="state"')"
    sleep 4 # several reconnection attempts: still one report
    assert_eq "$(nn_count 1 '.ev=="state"')" 1 "state reports while D-Bus is missing"
    nn_dbus_start 1
    sleep 1
    nn_avahi_start 1
    nn_wait 15 nn_has 1 '.ev=="state" and .on' || t_fail "discovery did not turn on"
    wait_up 1 "$id2" 10 || t_fail "h2 not found once the daemons ran"
    assert_eq "$(nn_count 1 '.ev=="state"')" 2 "state reports (off once, then on)"
    nn_trdisc_exit 1 2
}

t_case leave_with_goodbye leave_with_goodbye
t_case leave_silently_and_return leave_silently_and_return
t_case avahi_restart avahi_restart
t_case no_avahi_then_it_starts no_avahi_then_it_starts
t_case no_dbus_then_it_starts no_dbus_then_it_starts
t_done
