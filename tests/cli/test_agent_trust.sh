#!/usr/bin/env bash
# Trust between real trellisd agents: an untrusted key, a client with the
# wrong server key and a plaintext ZeroMQ client get nothing; the peer table
# records the knock; trust and untrust by id.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/agentlib.sh"

CTLSEND=$T_ROOT/ctlsend
cc -std=c11 -O1 -o "$CTLSEND" "$here_lib/helpers/ctlsend.c" \
    $(pkg-config --cflags --libs libzmq) >"$T_ROOT/ctlsend.log" 2>&1 || CTLSEND=

# A and B linked, A serving a CRDT repository `ra` with 3 ops that B cloned
# into `rb`; sets RID.
two_linked() {
    two_agents_serving
    local i
    for i in 1 2 3; do
        at A -C ra op add --kind app.x --target "t$i" --branch notes >/dev/null || t_fail "op add"
    done
    at B clone "$RID" rb >/dev/null || t_fail "clone"
    wait_for "$AGENT_WAIT" eval '[ "$(ops_of B rb)" = 3 ]' || t_fail "B did not get A's ops"
}

# A still serves B: a new op on A reaches B.
still_flows() {
    at A -C ra op add --kind app.x --target after --branch notes >/dev/null || t_fail "op add"
    wait_for "$AGENT_WAIT" eval '[ "$(ops_of B rb)" = '"$1"' ]' ||
        t_fail "B holds $(ops_of B rb) ops, not $1, after a write on A
$(agent_log_tail A)"
}

untrusted_key_gets_nothing() {
    need_trellisd
    two_linked
    agent_start C
    at C peer add "$EP_A" --key "$ID_A" --name A >/dev/null || t_fail "C: peer add A"
    # A records the knock (by CURVE key: it does not know C's id)
    wait_for "$AGENT_WAIT" eval 'at A peers --json | jq -e "any(.[]; .source == \"knock\" and (.trusted | not))" >/dev/null' ||
        t_fail "A's peers show no knock: $(at A peers --json)"
    t_run at A peers --json
    assert_eq "$(echo "$OUT" | jq -r '[.[] | select(.source == "knock")][0].connected')" false "knock connected"
    assert_eq "$(echo "$OUT" | jq -r '[.[] | select(.source == "knock")][0].id')" null "knock id"
    t_run at A peers
    assert_contains "$OUT" "pending" "peers table shows the knock"
    # C gets nothing: not connected, nothing to clone, sync reaches nobody
    t_run at C peers --json
    assert_eq "$(echo "$OUT" | jq -r '.[0].connected')" false "C connected to A"
    t_run at C clone "$RID" rc
    assert_rc 1
    assert_contains "$ERR" "trellis: clone: " "clone refused"
    [ ! -e rc ] || t_fail "a refused clone left rc behind"
    t_run at C sync now --json --timeout 500
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r .peers)" 0 "C's connected peers"
    t_run at C repo list --json
    assert_eq "$(echo "$OUT" | jq length)" 1 "C serves only its default repo"
    # A is unaffected; once A trusts C by id, C gets in
    still_flows 4
    at A peer trust "$ID_C" >/dev/null || t_fail "trust C"
    wait_for "$AGENT_WAIT" connected C "$ID_A" || t_fail "C never connected after trust
$(agent_log_tail C)"
    t_run at C clone "$RID" rc --json
    assert_rc 0
    wait_for "$AGENT_WAIT" eval '[ "$(ops_of C rc)" = 4 ]' || t_fail "C did not get A's ops"
    # untrust: disconnected at once, and its writes no longer arrive
    t_run at A peer untrust "$ID_C" --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r .trusted)" false "untrusted"
    wait_for "$AGENT_WAIT" eval '! connected A "$ID_C"' || t_fail "C still connected"
    at C -C rc op add --kind app.x --target from-c --branch notes >/dev/null || t_fail "op add on C"
    sleep 1
    assert_eq "$(ops_of A ra)" 4 "A's ops after C's write"
}

wrong_server_key_gets_nothing() {
    need_trellisd
    two_linked
    agent_start C
    # C believes A's endpoint belongs to B: the CURVE handshake cannot succeed
    at A peer trust "$ID_C" >/dev/null || t_fail "A trusts C" # so only the key is wrong
    at C peer add "$EP_A" --key "$ID_B" --name not-B >/dev/null || t_fail "C: peer add"
    sleep 2
    t_run at C peers --json
    assert_eq "$(echo "$OUT" | jq -r '.[0].connected')" false "C connected with a wrong key"
    assert_eq "$(echo "$OUT" | jq -r '.[0].repos | length')" 0 "repos C learned"
    t_run at C clone "$RID" rc
    assert_rc 1
    t_run at A peers --json
    assert_eq "$(echo "$OUT" | jq -r --arg id "$ID_C" '.[] | select(.id == $id) | .connected')" false "C on A"
    # A is unaffected
    t_run at A repo list
    assert_rc 0
    still_flows 4
}

plaintext_client_gets_nothing() {
    need_trellisd
    [ -n "$CTLSEND" ] || t_fail "cannot build the ctlsend helper: $(cat "$T_ROOT/ctlsend.log")"
    two_linked
    # a hello-shaped msgpack frame, [1, 0, "x", 1, 1, []], over plain ZMTP
    t_run "$CTLSEND" -t 1500 "$EP_A" '%9601a178010190'
    assert_rc 1
    assert_eq "$OUT" "" "reply to a plaintext client"
    t_run "$CTLSEND" -t 500 "$EP_A" '@5000000'
    assert_rc 1
    still_flows 4
}

untrust_unknown_id() {
    need_trellisd
    agent_start A
    agent_start B
    t_run at A peer untrust "$ID_B"
    assert_rc 1
    assert_match "$ERR" "^trellis: peer untrust: no peer" "message"
    # a key that is no Ed25519 point is refused by the agent as invalid
    t_run at A peer add "$EP_B" --key "$(printf '%064d' 0)"
    assert_rc 2
    # our own key
    t_run at A peer add "$EP_B" --key "$ID_A"
    assert_rc 2
    assert_contains "$ERR" "own key"
    # trusting a key before it ever knocked is allowed and persisted
    t_run at A peer trust "$ID_B" --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r .trusted)" true "trusted"
    agent_stop A || t_fail "A exited with $?"
    agent_start A
    t_run at A peers --json
    assert_eq "$(echo "$OUT" | jq -r --arg id "$ID_B" '.[] | select(.id == $id) | .trusted')" true "persisted"
}

t_case untrusted_key_gets_nothing untrusted_key_gets_nothing
t_case wrong_server_key_gets_nothing wrong_server_key_gets_nothing
t_case plaintext_client_gets_nothing plaintext_client_gets_nothing
t_case untrust_unknown_id untrust_unknown_id
t_done
