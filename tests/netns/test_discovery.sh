#!/usr/bin/env bash
# test_discovery.sh — discovery between hosts (network namespaces, each with
# its own dbus-daemon and avahi-daemon), no trellisd needed: tr_discovery
# runs inside tests/netns/trdisc, which prints its callbacks as JSON lines.
#   - two hosts publish, browse and resolve each other: key, name, IPv4 and
#     IPv6 endpoints, our TXT records as avahi-browse sees them, own service
#     never reported
#   - a name taken by another host: the alternative name, both found
#   - bad TXT records published by hand: ignored with a debug line, never a peer
#   - several interfaces: one peer, addresses on each, merged by key
#   - a TXT change is seen in place (no peer_down)
. "$(dirname "$0")/lib.sh"

# Waits until host K's trdisc has reported ID up (with optional jq condition).
wait_up() { nn_wait "${3:-10}" nn_has "$1" ".ev==\"up\" and .id==\"$2\"${4:+ and ($4)}"; }

two_hosts_see_each_other() {
    nn_net 2
    nn_up 1
    nn_up 2
    local t0 id1 id2 up
    t0=$(nn_ms)
    nn_trdisc 1 --name alpha --repos 2
    nn_trdisc 2 --name "beta ünï" --repos 0
    id1=$(nn_trdisc_self 1)
    id2=$(nn_trdisc_self 2)
    wait_up 1 "$id2" 10 '.addrs|length>=2' || t_fail "h1 never saw h2 with IPv4 and IPv6 addresses"
    wait_up 2 "$id1" 10 '.addrs|length>=2' || t_fail "h2 never saw h1 with IPv4 and IPv6 addresses"
    nn_measure discovery_mutual "$(($(jq -r "select(.ev==\"up\" and .id==\"$id1\") | .ms" "$(nn_h 2)/trdisc.out" | head -n 1) - t0))" \
        what="both trdisc started (avahi just started) to first peer_up"
    up=$(nn_events 1 ".ev==\"up\" and .id==\"$id2\"" | tail -n 1)
    assert_eq "$(jq -r .name <<<"$up")" "beta ünï" "name"
    assert_eq "$(jq -r .instance <<<"$up")" "beta ünï" "instance"
    assert_eq "$(jq -r .repos <<<"$up")" 0 "repos"
    assert_eq "$(jq -r '.addrs[0].ep' <<<"$up")" "tcp://10.77.0.2:7437" "first (IPv4) endpoint"
    assert_eq "$(jq -r '.addrs[0].if' <<<"$up")" eth0 "interface"
    assert_contains "$(jq -r '.addrs[1].ep' <<<"$up")" "tcp://[f" "IPv6 endpoint"
    up=$(nn_events 2 ".ev==\"up\" and .id==\"$id1\"" | tail -n 1)
    assert_eq "$(jq -r .repos <<<"$up")" 2 "h1's repos"
    # Never ourselves; discovery on exactly once; nothing went down.
    assert_eq "$(nn_count 1 ".id==\"$id1\" and .ev!=\"self\"")" 0 "h1 reporting itself"
    assert_eq "$(nn_count 1 '.ev=="state"')" 1 "state reports on h1"
    assert_eq "$(nn_count 1 '.ev=="state" and .on')" 1 "discovery on, on h1"
    assert_eq "$(nn_count 1 '.ev=="down"')" 0 "peer_down on h1"
    # What any DNS-SD browser sees: our type, TXT records v, id, name.
    local b
    b=$(nn_exec 1 avahi-browse -rpt _trellis._tcp)
    # (avahi-browse -p escapes bytes outside printable ASCII in decimal)
    assert_contains "$b" '=;eth0;IPv4;beta\032\195\188n\195\175;_trellis._tcp;local;trh2.local;10.77.0.2;7437;' "avahi-browse"
    assert_contains "$b" "\"id=$id2\"" "avahi-browse TXT"
    assert_contains "$b" '"v=1"' "avahi-browse TXT"
    assert_contains "$b" '"name=beta \195\188n\195\175"' "avahi-browse TXT"
    assert_contains "$b" '"repos="' "avahi-browse TXT (serves none)"
    assert_contains "$b" ";IPv6;alpha;_trellis._tcp;local;trh1.local;" "avahi-browse over IPv6"
    # The service type is listed for service-type browsers too.
    b=$(nn_exec 2 avahi-browse -at)
    assert_contains "$b" "_trellis._tcp" "service types"
    nn_trdisc_exit 1 2
}

name_collision() {
    nn_net 2
    nn_up 1
    nn_up 2
    nn_trdisc 1 --name twin
    sleep 2
    nn_trdisc 2 --name twin
    local id1 id2 b i1 i2
    id1=$(nn_trdisc_self 1)
    id2=$(nn_trdisc_self 2)
    # mDNS conflict resolution decides who keeps "twin" (usually the first,
    # but an established host can lose the tie-break): one of them becomes
    # "twin #2", says so, and each finds the other under its final name.
    nn_wait 15 nn_has 1 '.ev=="log" and (.msg|test("published as .twin( #2)?."))' || t_fail "h1 not published"
    nn_wait 15 nn_has 2 '.ev=="log" and (.msg|test("published as .twin( #2)?."))' || t_fail "h2 not published"
    sleep 3
    i1=$(nn_events 2 ".ev==\"up\" and .id==\"$id1\"" | tail -n 1 | jq -r .instance)
    i2=$(nn_events 1 ".ev==\"up\" and .id==\"$id2\"" | tail -n 1 | jq -r .instance)
    assert_eq "$(printf '%s\n' "$i1" "$i2" | sort | tr '\n' ,)" "twin,twin #2," "final instance names"
    local renamed=1
    [ "$i2" = "twin #2" ] && renamed=2
    nn_has "$renamed" '.ev=="log" and (.msg|test("name .twin. is taken on the network; now .twin #2."))' ||
        t_fail "h$renamed did not say it renamed itself"
    assert_eq "$(nn_events 1 ".ev==\"up\" and .id==\"$id2\"" | tail -n 1 | jq -r .name)" twin \
        "display name (unchanged by a rename)"
    b=$(nn_exec 1 avahi-browse -rpt _trellis._tcp)
    assert_contains "$b" ";IPv4;twin;_trellis._tcp;local;trh" "avahi-browse"
    assert_contains "$b" ';IPv4;twin\032\0352;_trellis._tcp;local;trh' "avahi-browse"
    # A second agent on h1 under h1's current name: a clash on this host,
    # noticed at once (no probing), renamed, and found by h2.
    nn_bg 1 second "$NN_TRDISC" --seed 7 --name "$i1" --port 7438
    nn_wait 10 grep -q "is taken on this host" "$(nn_h 1)/second.out" ||
        t_fail "no local rename: $(cat "$(nn_h 1)/second.out")"
    wait_up 2 "$(jq -r 'select(.ev=="self").id' "$(nn_h 1)/second.out")" 10 '.addrs[0].ep=="tcp://10.77.0.1:7438"' ||
        t_fail "h2 did not find the second agent of h1"
}

bad_txt_records_ignored() {
    nn_net 2
    nn_up 1
    nn_up 2
    nn_trdisc 1 --name watcher
    local id1 good5 good6 good7 weak hex bad n
    id1=$(nn_trdisc_self 1)
    good5=$("$NN_TRDISC" --seed 5 --print-id)
    good6=$("$NN_TRDISC" --seed 6 --print-id)
    good7=$("$NN_TRDISC" --seed 7 --print-id)
    weak=$("$NN_TRDISC" --id-of "01$(printf '0%.0s' $(seq 62))")
    hex=$(printf '%064x' 7)
    # A checksum error: one base32 character changed.
    bad=${good5:0:20}$([ "${good5:20:1}" = a ] && echo b || echo a)${good5:21}
    local long
    long=$(printf 'x%.0s' $(seq 100))
    # name=TXT strings… (avahi-publish adds nothing of its own).
    nn_bg 2 p1 avahi-publish -s bad-notxt _trellis._tcp 7437
    nn_bg 2 p2 avahi-publish -s bad-noid _trellis._tcp 7437 "v=1" "name=x"
    nn_bg 2 p3 avahi-publish -s bad-checksum _trellis._tcp 7437 "v=1" "id=$bad"
    nn_bg 2 p4 avahi-publish -s bad-base32 _trellis._tcp 7437 "v=1" "id=${good5:0:10}1${good5:11}"
    nn_bg 2 p5 avahi-publish -s bad-hexkey _trellis._tcp 7437 "v=1" "id=$hex"
    nn_bg 2 p6 avahi-publish -s bad-v2 _trellis._tcp 7437 "v=2" "id=$good5"
    nn_bg 2 p7 avahi-publish -s bad-vword _trellis._tcp 7437 "v=one" "id=$good5"
    nn_bg 2 p8 avahi-publish -s bad-longname _trellis._tcp 7437 "v=1" "id=$good5" "name=$long"
    nn_bg 2 p9 avahi-publish -s bad-weakkey _trellis._tcp 7437 "v=1" "id=$weak"
    nn_bg 2 p10 avahi-publish -s bad-ownkey _trellis._tcp 7437 "v=1" "id=$id1"
    nn_bg 2 p11 avahi-publish -s bad-oversize _trellis._tcp 7437 "v=1" "id=$good5" \
        "a=$(printf 'a%.0s' $(seq 250))" "b=$(printf 'b%.0s' $(seq 250))" "c=$(printf 'c%.0s' $(seq 250))" \
        "d=$(printf 'd%.0s' $(seq 250))" "e=$(printf 'e%.0s' $(seq 250))" "f=$(printf 'f%.0s' $(seq 250))"
    nn_bg 2 p12 avahi-publish -s bad-port0 _trellis._tcp 0 "v=1" "id=$good5"
    nn_bg 2 p13 avahi-publish -s bad-repos _trellis._tcp 7437 "v=1" "id=$good5" "repos=zz"
    # Duplicate keys: one of them wins (RFC 6763: the first), never both.
    nn_bg 2 p14 avahi-publish -s dup-id _trellis._tcp 7437 "v=1" "id=$good6" "id=$good7"
    # And one good record, published last: proof that the watcher lived.
    nn_bg 2 p15 avahi-publish -s fine _trellis._tcp 7437 "v=1" "id=$good5" "name=fine"
    wait_up 1 "$good5" 10 '.instance=="fine"' || t_fail "the good record was not reported"
    for n in notxt noid checksum base32 hexkey v2 vword longname weakkey ownkey oversize port0 repos; do
        nn_wait 10 nn_has 1 ".ev==\"log\" and .level==3 and (.msg|startswith(\"discovery: ignoring service 'bad-$n'\"))" ||
            t_fail "no debug line for bad-$n"
    done
    nn_has 1 '.ev=="log" and (.msg|test("bad-checksum.*checksum"))' || t_fail "checksum reason"
    nn_has 1 '.ev=="log" and (.msg|test("bad-v2.*speaks protocol 2..2"))' || t_fail "version reason"
    nn_has 1 '.ev=="log" and (.msg|test("bad-ownkey.*own key"))' || t_fail "own key reason"
    nn_has 1 '.ev=="log" and (.msg|test("bad-oversize.*(TXT record of|cannot resolve)"))' || t_fail "oversize reason"
    # Nothing bad became a peer; each bad service was logged once.
    assert_eq "$(nn_events 1 '.ev=="up"' | jq -r .instance | sort -u | grep -c '^bad-')" 0 "bad services reported as peers"
    sleep 3
    for n in noid checksum v2; do
        assert_eq "$(nn_count 1 ".ev==\"log\" and (.msg|startswith(\"discovery: ignoring service 'bad-$n' on eth0/IPv4\"))")" 1 \
            "log lines for bad-$n over IPv4"
    done
    # dup-id: the first id= on the wire wins (avahi-publish keeps argv order).
    nn_wait 5 nn_has 1 '.ev=="up" and .instance=="dup-id"' || t_fail "dup-id not reported"
    assert_eq "$(nn_events 1 '.ev=="up" and .instance=="dup-id"' | jq -r .id | sort -u)" "$good6" "key of dup-id"
    kill -0 "$(cat "$(nn_h 1)/trdisc.pid")" || t_fail "the watcher died"
    nn_trdisc_exit 1
}

several_interfaces_one_peer() {
    nn_net -2 2
    nn_up 1
    nn_up 2
    nn_trdisc 1 --name one
    nn_trdisc 2 --name two
    local id2 up
    id2=$(nn_trdisc_self 2)
    wait_up 1 "$id2" 10 '[.addrs[].if]|unique|length==2' || t_fail "h2 not seen on both interfaces"
    wait_up 1 "$id2" 10 'any(.addrs[]; .ep=="tcp://10.77.0.2:7437") and any(.addrs[]; .ep=="tcp://10.78.0.2:7437")' ||
        t_fail "h2 not seen at both IPv4 addresses"
    up=$(nn_events 1 ".ev==\"up\" and .id==\"$id2\"" | tail -n 1)
    [ "$(jq '[.addrs[]|select(.family==6)]|length' <<<"$up")" -ge 1 ] || t_fail "no IPv6 address: $up"
    # IPv4 first, then routable IPv6, then link-local (with its zone).
    jq -e '[.addrs[].family] | . == (sort)' <<<"$up" >/dev/null || t_fail "addresses not IPv4 first: $up"
    assert_eq "$(nn_count 1 '.ev=="up" and .id!="'"$id2"'"')" 0 "other peers"
    # One cable pulled: the peer stays, with fewer addresses, once the
    # records on that link expire (ttl 8 s).
    nn_link 2 down 1
    nn_wait 15 nn_has 1 ".ev==\"up\" and .id==\"$id2\" and ([.addrs[].if]|unique==[\"eth0\"])" ||
        t_fail "h2's eth1 addresses were not dropped"
    assert_eq "$(nn_count 1 '.ev=="down"')" 0 "peer_down while one link remained"
}

txt_update_in_place() {
    nn_net 2
    nn_up 1
    nn_up 2
    nn_trdisc 1 --name one
    nn_trdisc 2 --name two --repos 1
    local id2 t0 t1
    id2=$(nn_trdisc_self 2)
    wait_up 1 "$id2" 10 '.repos==1' || t_fail "h2 not seen with 1 repo"
    t0=$(nn_ms)
    kill -USR1 "$(cat "$(nn_h 2)/trdisc.pid")"
    wait_up 1 "$id2" 10 '.repos==2' || t_fail "the new TXT record was not seen"
    t1=$(jq -r "select(.ev==\"up\" and .id==\"$id2\" and .repos==2) | .ms" "$(nn_h 1)/trdisc.out" | head -n 1)
    nn_measure txt_update_seen $((t1 - t0))
    assert_eq "$(nn_count 1 '.ev=="down"')" 0 "peer_down during the update"
    assert_eq "$(nn_count 2 '.ev=="log" and .level<=1')" 0 "warnings on h2"
}

t_case two_hosts_see_each_other two_hosts_see_each_other
t_case name_collision name_collision
t_case bad_txt_records_ignored bad_txt_records_ignored
t_case several_interfaces_one_peer several_interfaces_one_peer
t_case txt_update_in_place txt_update_in_place
t_done
