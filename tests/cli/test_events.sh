#!/usr/bin/env bash
# The event log: events written by real trellisd agents (start, connections,
# ops received, syncs, a knock, a divergence, stop), `trellis events` and its
# filters, rotation through the library (4 MiB, 4 files kept, ids continue),
# and --follow across rotations, partial lines and a log that appears late.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/agentlib.sh"
. "$here_lib/helpers/evemit.sh"

# The state directory of agent NAME (its TRELLIS_HOME is $T_DIR/NAME).
state_of() { echo "$T_DIR/$1/state"; }

# The events of agent NAME as a JSON array (optionally of TYPE only).
events_of() { # NAME [TYPE]
    at "$1" events --json ${2:+--type "$2"}
}

# True when agent NAME's log has an event matching the jq condition.
has_event() { # NAME JQ-CONDITION
    events_of "$1" | jq -e "any(.[]; $2)" >/dev/null
}

# Waits until it has.
wait_event() { # NAME JQ-CONDITION
    wait_for "$AGENT_WAIT" has_event "$1" "$2" || t_fail "$1's log has no event with $2:
$(at "$1" events | tail -n 20)"
}

# Every id from FIRST to LAST exactly once, in order, in the JSON lines or
# array on stdin.
ids_contiguous() { # FIRST LAST
    jq -s -e --argjson a "$1" --argjson b "$2" \
        '(if length == 1 and (.[0] | type) == "array" then .[0] else . end) | map(.id) == [range($a; $b + 1)]' >/dev/null
}

events_from_agents() {
    need_trellisd
    agent_start A
    agent_start B
    # agent.started: where it listens, who it is, its name, discovery off
    t_run at A events --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r '.[0].type')" agent.started "first event"
    assert_eq "$(echo "$OUT" | jq -r '.[0].id')" 1 "first id"
    assert_eq "$(echo "$OUT" | jq -r '.[0].listen')" "$EP_A" "listen"
    assert_eq "$(echo "$OUT" | jq -r '.[0].self')" "$ID_A" "self"
    assert_eq "$(echo "$OUT" | jq -r '.[0].discovery')" false "discovery"
    assert_match "$(echo "$OUT" | jq -r '.[0].time')" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' "time"
    [ -f "$(state_of A)/events.jsonl" ] || t_fail "no events.jsonl in A's state directory"
    assert_eq "$(stat -c %a "$(state_of A)/events.jsonl")" 600 "mode of events.jsonl"
    link A B
    wait_event B ".type == \"peer.connected\" and .peer == \"$ID_A\" and .name == \"A\""
    wait_event A ".type == \"peer.connected\" and .peer == \"$ID_B\" and (.direction == \"out\" or .direction == \"in\")"
    # 40 ops on A's repository; B clones it: ops.received add up to 40
    init_crdt_repo A ra
    at A repo add ra >/dev/null || t_fail "repo add"
    local i rid
    for i in $(seq 40); do echo "{\"kind\":\"app.x\",\"target\":\"t$i\",\"branch\":\"notes\"}"; done |
        at A -C ra op import - >/dev/null || t_fail "op import"
    rid=$(repo_id A ra)
    at B clone "$rid" rb >/dev/null || t_fail clone
    wait_for "$AGENT_WAIT" eval '[ "$(ops_of B rb)" = 40 ]' || t_fail "B did not get the 40 ops"
    wait_event B ".type == \"sync.complete\" and .repo == \"$rid\" and .branch == \"notes\""
    t_run events_of B ops.received
    assert_eq "$(echo "$OUT" | jq --arg r "$rid" '[.[] | select(.repo == $r) | .count] | add')" 40 "ops received, added up"
    assert_eq "$(echo "$OUT" | jq -r --arg r "$rid" '[.[] | select(.repo == $r)][0] | [.peer, .name, .branch] | join(" ")')" \
        "$ID_A A notes" "ops.received fields"
    # the text form: one line per event, the peer by name, key fields
    t_run at B events --type ops.received
    assert_rc 0
    assert_match "$OUT" "^[0-9]+  [0-9T:.-]+Z  ops\.received +A  branch=notes  count=[0-9]+  repo=$rid" "text line"
    # an unknown key knocks on A
    agent_start C
    at C peer add "$EP_A" --key "$ID_A" --name A >/dev/null || t_fail "C: peer add A"
    wait_event A '.type == "peer.untrusted" and (.curve | length) == 40'
    # A stops: agent.stopping is its last event; B's connection to A drops
    # (B connected out to A: A had not trusted B yet when it first tried)
    agent_stop A || t_fail "A exited with $?"
    t_run events_of A
    assert_eq "$(echo "$OUT" | jq -r '.[-1].type')" agent.stopping "A's last event"
    echo "$OUT" | ids_contiguous 1 "$(echo "$OUT" | jq '.[-1].id')" || t_fail "A's ids are not 1..N"
    wait_event B ".type == \"peer.disconnected\" and .peer == \"$ID_A\" and .name == \"A\""
    # a restarted agent continues the ids
    local last
    last=$(events_of A | jq '.[-1].id')
    agent_start A
    t_run events_of A agent.started
    assert_eq "$(echo "$OUT" | jq '.[-1].id')" $((last + 1)) "id after a restart"
    # the same events go to the log (syslog/journald when run as a service)
    grep -q 'info: event {"id":1,' "$T_DIR/A.log" || t_fail "A's log does not carry the events"
}

events_divergence() {
    need_trellisd
    agent_start A
    agent_start B
    link A B
    at A init ra >/dev/null || t_fail init # main is linear
    at A repo add ra >/dev/null || t_fail "repo add"
    at A -C ra op add --kind app.x --target base >/dev/null || t_fail "op add"
    local rid
    rid=$(repo_id A ra)
    at B clone "$rid" rb >/dev/null || t_fail clone
    wait_for "$AGENT_WAIT" eval '[ "$(ops_of B rb)" = 1 ]' || t_fail "B did not get the op"
    at A peer untrust "$ID_B" >/dev/null || t_fail untrust
    wait_for "$AGENT_WAIT" eval '! connected A "$ID_B"' || t_fail "B still connected"
    at A -C ra op add --kind app.x --target a >/dev/null || t_fail "op add on A"
    at B -C rb op add --kind app.x --target b >/dev/null || t_fail "op add on B"
    at A peer trust "$ID_B" >/dev/null || t_fail trust
    wait_for "$AGENT_WAIT" connected A "$ID_B" || t_fail "B never reconnected"
    at A sync now --timeout 3000 >/dev/null
    at B sync now --timeout 3000 >/dev/null
    wait_event A ".type == \"branch.diverged\" and .repo == \"$rid\" and .branch == \"main\" and .peer == \"$ID_B\""
    wait_event B ".type == \"branch.diverged\" and .repo == \"$rid\" and .branch == \"main\" and .peer == \"$ID_A\""
}

# Two replicas of one repository set a manual_resolution field to different
# values before they meet; once synced, each agent reports the conflict.
events_conflict() {
    need_trellisd
    cd "$T_DIR" || t_fail cd
    at A init ra >/dev/null || t_fail init
    printf '%s' '{"version":1,"branchPolicies":{"*":{"linear":false,"requireSigning":true}},"fieldStrategies":{"contract":"manual_resolution"}}' \
        >ra/.trellis/config.json
    cp -a ra rb
    at A -C ra set doc1 contract '"x"' --branch notes >/dev/null || t_fail "set on A"
    at B -C rb set doc1 contract '"y"' --branch notes >/dev/null || t_fail "set on B"
    agent_start A
    agent_start B
    at A repo add ra >/dev/null || t_fail "repo add A"
    at B repo add rb >/dev/null || t_fail "repo add B"
    link A B
    local rid
    rid=$(repo_id A ra)
    wait_event A ".type == \"conflict\" and .repo == \"$rid\" and .branch == \"notes\" and .target == \"doc1\" and .field == \"contract\" and .peer == \"$ID_B\""
    wait_event B ".type == \"conflict\" and .repo == \"$rid\" and .target == \"doc1\" and .peer == \"$ID_A\""
    assert_eq "$(events_of A conflict | jq length)" 1 "one conflict event on A"
}

events_none_yet() {
    t_run trellis events
    assert_rc 0
    assert_eq "$OUT" "" "events without a log"
    t_run trellis events --json
    assert_rc 0
    assert_eq "$OUT" "[]" "--json without a log"
}

events_usage() {
    local a
    for a in "--type nope" "--type peer.*,bogus" "--since x" "--since -1" "--last -1" "extra" "--frob"; do
        # shellcheck disable=SC2086
        t_run trellis events $a
        assert_rc 2
        assert_contains "$ERR" "Try 'trellis events --help'." "stderr of '$a'"
        assert_eq "$OUT" "" "stdout of '$a'"
    done
    t_run trellis events --type nope
    assert_contains "$ERR" "trellis events: --type 'nope' matches no event type" "message"
    t_run trellis events --help
    assert_rc 0
    assert_contains "$OUT" "Usage: trellis events [--follow]" "help"
    t_run trellis help
    assert_match "$OUT" "events +show or follow the agent's event log" "command list"
}

events_filters() {
    need_evemit
    need jq
    local st=$TRELLIS_HOME/state
    mkdir -p "$st"
    "$EVEMIT" "$st" 3 peer.connected '{"peer":"x","name":"bob","direction":"in"}' >/dev/null || t_fail evemit
    "$EVEMIT" "$st" 2 ops.received '{"name":"bob","repo":"r1","branch":"main","count":5}' >/dev/null
    "$EVEMIT" "$st" 1 op.refused '{"name":"eve","reason":"signature","text":"bad signature on op 12"}' >/dev/null
    "$EVEMIT" "$st" 1 peer.lost '{"name":"bob"}' >/dev/null
    t_run trellis events --json
    assert_rc 0
    echo "$OUT" | ids_contiguous 1 7 || t_fail "ids: $OUT"
    t_run trellis events --type 'peer.*' --json
    assert_eq "$(echo "$OUT" | jq -c 'map(.id)')" "[1,2,3,7]" "peer.*"
    t_run trellis events --type ops.received,op.refused --json
    assert_eq "$(echo "$OUT" | jq -c 'map(.id)')" "[4,5,6]" "a list"
    t_run trellis events -t peer.lost --type op.refused --json
    assert_eq "$(echo "$OUT" | jq -c 'map(.id)')" "[6,7]" "repeated"
    t_run trellis events --since 5 --json
    assert_eq "$(echo "$OUT" | jq -c 'map(.id)')" "[6,7]" "--since"
    t_run trellis events --since 99 --json
    assert_eq "$OUT" "[]" "--since past the end"
    t_run trellis events --last 2 --json
    assert_eq "$(echo "$OUT" | jq -c 'map(.id)')" "[6,7]" "--last"
    t_run trellis events -n 2 --type 'peer.*' --json
    assert_eq "$(echo "$OUT" | jq -c 'map(.id)')" "[3,7]" "--last after the filter"
    t_run trellis events --last 0
    assert_eq "$OUT" "" "--last 0"
    # text: id, time, type, who, then the fields (quoted when they need it)
    t_run trellis events --type op.refused
    assert_match "$OUT" '^6  [0-9T:.-]+Z  op\.refused +eve  reason=signature  text="bad signature on op 12"$' "text"
    t_run trellis events --type peer.lost
    assert_match "$OUT" '^7  [0-9T:.-]+Z  peer\.lost +bob$' "no trailing blanks"
    [ "$(trellis events | wc -l)" -eq 7 ] || t_fail "one line per event"
}

events_rotation() {
    need_evemit
    need jq
    local st=$TRELLIS_HOME/state n
    mkdir -p "$st"
    # ~1.1 KB per line: 4500 lines pass 4 MiB once
    "$EVEMIT" "$st" 4500 ops.received '{"repo":"r","branch":"main","count":1}' 1000 >/dev/null || t_fail evemit
    [ -f "$st/events.jsonl.1" ] || t_fail "no rotation after $(stat -c %s "$st/events.jsonl") bytes"
    [ ! -e "$st/events.jsonl.2" ] || t_fail "rotated twice"
    [ "$(stat -c %s "$st/events.jsonl.1")" -le 4194304 ] || t_fail "events.jsonl.1 is over 4 MiB"
    t_run trellis events --json
    echo "$OUT" | ids_contiguous 1 4500 || t_fail "ids across the rotation"
    # past five files: the oldest go, four rotated files stay, ids go on
    "$EVEMIT" "$st" 16000 ops.received '{"repo":"r","branch":"main","count":1}' 1000 >/dev/null || t_fail evemit
    for n in 1 2 3 4; do [ -f "$st/events.jsonl.$n" ] || t_fail "events.jsonl.$n is missing"; done
    [ ! -e "$st/events.jsonl.5" ] || t_fail "a fifth rotated file is kept"
    for n in "" .1 .2 .3 .4; do
        [ "$(stat -c %s "$st/events.jsonl$n")" -le 4194304 ] || t_fail "events.jsonl$n is over 4 MiB"
    done
    t_run trellis events --json
    local first
    first=$(echo "$OUT" | jq '.[0].id')
    [ "$first" -gt 1 ] || t_fail "the oldest events were not dropped"
    echo "$OUT" | ids_contiguous "$first" 20500 || t_fail "ids $first..20500 after rotations"
    assert_eq "$(head -n 1 "$st/events.jsonl.4" | jq .id)" "$first" "first id of events.jsonl.4"
    # a new writer continues after the last id
    t_run "$EVEMIT" "$st" 1 agent.started
    assert_eq "$OUT" 20501 "id after reopening"
}

# Starts `trellis events ARGS` in the background, stdout to $T_DIR/follow.out.
follow_start() {
    "$TRELLIS_BIN" events "$@" >"$T_DIR/follow.out" 2>"$T_DIR/follow.err" &
    FOLLOW=$!
    # however the case ends, the follower ends with it
    trap 'kill -TERM "$FOLLOW" 2>/dev/null; agents_cleanup' EXIT
}

follow_lines() { wc -l <"$T_DIR/follow.out"; }

follow_stop() {
    kill -TERM "$FOLLOW"
    local rc=0
    wait "$FOLLOW" || rc=$?
    [ "$rc" -eq 0 ] || t_fail "trellis events --follow exited with $rc on SIGTERM: $(cat "$T_DIR/follow.err")"
}

events_follow_rotation() {
    need_evemit
    need jq
    local st=$TRELLIS_HOME/state
    # the log does not exist yet: --follow waits for it
    follow_start --follow --json
    sleep 0.5
    kill -0 "$FOLLOW" 2>/dev/null || t_fail "--follow ended without a log: $(cat "$T_DIR/follow.err")"
    mkdir -p "$st"
    "$EVEMIT" "$st" 100 peer.connected '{"name":"bob"}' >/dev/null || t_fail evemit
    wait_for 10 eval '[ "$(follow_lines)" -ge 100 ]' || t_fail "follow saw $(follow_lines) of 100 events"
    # JSON lines: one object per line
    head -n 1 "$T_DIR/follow.out" | jq -e '.id == 1 and .type == "peer.connected"' >/dev/null ||
        t_fail "first line: $(head -n 1 "$T_DIR/follow.out")"
    # about 9.5 MB at once: two or more rotations between two polls
    "$EVEMIT" "$st" 9000 ops.received '{"repo":"r","branch":"main","count":1}' 1000 >/dev/null || t_fail evemit
    [ -f "$st/events.jsonl.2" ] || t_fail "the log did not rotate twice"
    # and a slow stream across one more rotation
    "$EVEMIT" "$st" 300 ops.received '{"repo":"r","branch":"main","count":1}' 15000 1 >/dev/null || t_fail evemit
    wait_for 20 eval '[ "$(follow_lines)" -ge 9400 ]' || t_fail "follow saw $(follow_lines) of 9400 events"
    sleep 0.5
    ids_contiguous 1 9400 <"$T_DIR/follow.out" || t_fail "followed ids are not exactly 1..9400 ($(follow_lines) lines)"
    follow_stop
}

events_follow_partial_and_filters() {
    need_evemit
    local st=$TRELLIS_HOME/state
    mkdir -p "$st"
    "$EVEMIT" "$st" 3 peer.connected '{"name":"bob"}' >/dev/null || t_fail evemit
    # only new events (-n 0), only refusals, as text
    follow_start -f -n 0 --type op.refused
    sleep 0.5
    "$EVEMIT" "$st" 2 peer.connected '{"name":"bob"}' >/dev/null
    printf '{"id":6,"time":"2026-01-01T00:00:00.000Z","type":"op.refused","name":"eve","reason":"sig' >>"$st/events.jsonl"
    sleep 0.6
    assert_eq "$(cat "$T_DIR/follow.out")" "" "output before the line is complete"
    printf 'nature"}\n' >>"$st/events.jsonl"
    wait_for 5 eval '[ "$(follow_lines)" -ge 1 ]' || t_fail "the completed line never showed"
    assert_eq "$(cat "$T_DIR/follow.out")" "6  2026-01-01T00:00:00.000Z  op.refused         eve  reason=signature" "followed line"
    follow_stop
}

events_follow_log_started_again() {
    need_evemit
    local st=$TRELLIS_HOME/state
    mkdir -p "$st"
    "$EVEMIT" "$st" 5 peer.connected '{"name":"bob"}' 200 >/dev/null || t_fail evemit
    follow_start -f --json
    wait_for 5 eval '[ "$(follow_lines)" -ge 5 ]' || t_fail "follow saw $(follow_lines) of 5 events"
    # the state directory is wiped and a new agent starts over at id 1
    rm -f "$st"/events.jsonl*
    "$EVEMIT" "$st" 3 agent.started '{}' >/dev/null || t_fail evemit
    wait_for 5 eval '[ "$(follow_lines)" -ge 8 ]' || t_fail "follow saw $(follow_lines) of 8 events: $(cat "$T_DIR/follow.err")"
    assert_eq "$(jq -s -c 'map(.id)' "$T_DIR/follow.out")" "[1,2,3,4,5,1,2,3]" "ids"
    assert_contains "$(cat "$T_DIR/follow.err")" "the event log was started again" "notice"
    follow_stop
}

t_case events_from_agents events_from_agents
t_case events_divergence events_divergence
t_case events_conflict events_conflict
t_case events_none_yet events_none_yet
t_case events_usage events_usage
t_case events_filters events_filters
t_case events_rotation events_rotation
t_case events_follow_rotation events_follow_rotation
t_case events_follow_partial_and_filters events_follow_partial_and_filters
t_case events_follow_log_started_again events_follow_log_started_again
t_done
