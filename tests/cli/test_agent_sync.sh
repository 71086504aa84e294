#!/usr/bin/env bash
# Real trellisd agents on loopback syncing repositories: two and three agents
# converge after concurrent CRDT writes, a linear divergence is refused on
# both sides, a restarted agent resumes with only what is new.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/agentlib.sh"

# Appends N ops to BRANCH of the repository at PATH as agent WHO's user.
write_ops() { # WHO PATH BRANCH N TAG
    local i
    for ((i = 1; i <= $4; i++)); do
        at "$1" -C "$2" op add --kind field.set --target "e$i" --branch "$3" \
            --body "{\"field\":\"f\",\"value\":\"$5-$i\"}" >/dev/null || t_fail "$1: op add"
    done
}

# Both agents' replicas hold the same ops, verify clean.
same_ops() { # WHO1 PATH1 WHO2 PATH2 [WANT]
    local n1 n2
    n1=$(ops_of "$1" "$2") n2=$(ops_of "$3" "$4")
    assert_eq "$n2" "$n1" "op count of $3 (vs $1)"
    [ -z "${5:-}" ] || assert_eq "$n1" "$5" "op count of $1"
    t_run at "$1" -C "$2" verify
    assert_rc 0
    t_run at "$3" -C "$4" verify
    assert_rc 0
    assert_eq "$(hashes_of "$3" "$4" | sha256sum)" "$(hashes_of "$1" "$2" | sha256sum)" "op hashes of $3 and $1"
}

# Waits until WHO's replica at PATH holds N ops.
wait_ops() { # WHO PATH N
    wait_for "$AGENT_WAIT" eval "[ \"\$(ops_of $1 $2)\" = $3 ]" ||
        t_fail "$1 holds $(ops_of "$1" "$2") ops at $2, not $3
$(agent_log_tail "$1")"
}

two_agents_converge() {
    need_trellisd
    two_agents_serving
    write_ops A ra notes 3 a0
    local id=$RID
    # B joins: clone by id, into ./<8 hex> by default
    t_run at B clone "$id" --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r .repo)" "$id" "cloned id"
    assert_eq "$(echo "$OUT" | jq -r .path)" "$T_DIR/${id:0:8}" "default clone path"
    local rb=${id:0:8}
    wait_ops B "$rb" 3
    # the peer tables show each other, with the shared repo
    t_run at A peers --json
    assert_eq "$(echo "$OUT" | jq -r --arg id "$ID_B" '.[] | select(.id == $id) | .trusted')" true "B trusted"
    assert_eq "$(echo "$OUT" | jq -r --arg id "$ID_B" '.[] | select(.id == $id) | .repos | index("'"$id"'") != null')" true "B offers the clone"
    t_run at A peers
    assert_rc 0
    assert_contains "$OUT" "$(at B id --json | jq -r .fingerprint)" "peers table"
    # concurrent writes on both sides, then a sync round on both
    write_ops A ra notes 5 a &
    local pa=$!
    write_ops B "$rb" notes 5 b
    wait $pa || t_fail "writes on A"
    at A sync now >/dev/null || t_fail "sync now on A"
    at B sync now >/dev/null || t_fail "sync now on B"
    wait_ops A ra 13
    wait_ops B "$rb" 13
    same_ops A ra B "$rb" 13
    # status shows the peer's progress on this repo, nothing pending
    t_run at A -C ra sync status --json
    assert_eq "$(echo "$OUT" | jq -r --arg id "$ID_B" '.peers[] | select(.id == $id) | .connected')" true "B connected"
    assert_eq "$(echo "$OUT" | jq -r --arg id "$ID_B" '.peers[] | select(.id == $id) | .offers')" true "B offers"
    t_run at A -C ra sync status
    assert_contains "$OUT" "connected" "status text"
    agent_stop A || t_fail "A exited with $?"
    agent_stop B || t_fail "B exited with $?"
}

three_agents_line() {
    need_trellisd
    agent_start A
    agent_start B
    agent_start C
    link A B
    link B C # C knows only B
    init_crdt_repo A ra
    at A repo add ra >/dev/null || t_fail "repo add"
    write_ops A ra notes 2 a0
    local id
    id=$(repo_id A ra)
    at B clone "$id" rb >/dev/null || t_fail "B: clone"
    wait_ops B rb 2
    at C clone "$id" rc >/dev/null || t_fail "C: clone from B"
    wait_ops C rc 2
    write_ops A ra notes 3 a &
    local pa=$!
    write_ops C rc notes 3 c &
    local pc=$!
    write_ops B rb notes 3 b
    wait $pa || t_fail "writes on A"
    wait $pc || t_fail "writes on C"
    at A sync now >/dev/null
    at C sync now >/dev/null
    at B sync now >/dev/null
    wait_ops A ra 11
    wait_ops C rc 11
    wait_ops B rb 11
    same_ops A ra B rb 11
    same_ops B rb C rc 11
    # C never talked to A
    t_run at C peers --json
    assert_eq "$(echo "$OUT" | jq length)" 1 "C's peers"
}

linear_divergence_refused() {
    need_trellisd
    agent_start A
    agent_start B
    link A B
    at A init ra >/dev/null || t_fail init # main is linear by default
    at A repo add ra >/dev/null || t_fail "repo add"
    write_ops A ra main 1 base
    local id
    id=$(repo_id A ra)
    at B clone "$id" rb >/dev/null || t_fail "clone"
    wait_ops B rb 1
    # apart: each writes on main
    at A peer untrust "$ID_B" >/dev/null || t_fail "untrust"
    wait_for "$AGENT_WAIT" eval '! connected A "$ID_B"' || t_fail "B still connected to A"
    write_ops A ra main 2 a
    write_ops B rb main 1 b
    local ha hb
    ha=$(at A -C ra log --json | jq -r '.[].hash' | sort)
    hb=$(at B -C rb log --json | jq -r '.[].hash' | sort)
    # together again
    at A peer trust "$ID_B" >/dev/null || t_fail "trust"
    wait_for "$AGENT_WAIT" connected A "$ID_B" || t_fail "B never reconnected"
    at A sync now --timeout 3000 >/dev/null
    at B sync now --timeout 3000 >/dev/null
    wait_for "$AGENT_WAIT" grep -q diverged "$T_DIR/A.log" || t_fail "A's log does not mention the divergence
$(agent_log_tail A)"
    wait_for "$AGENT_WAIT" grep -q diverged "$T_DIR/B.log" || t_fail "B's log does not mention the divergence
$(agent_log_tail B)"
    assert_eq "$(at A -C ra log --json | jq -r '.[].hash' | sort)" "$ha" "A's main"
    assert_eq "$(at B -C rb log --json | jq -r '.[].hash' | sort)" "$hb" "B's main"
    assert_eq "$(ops_of A ra)" 3 "A's ops"
    assert_eq "$(ops_of B rb)" 2 "B's ops"
    t_run at A -C ra verify
    assert_rc 0
    t_run at B -C rb verify
    assert_rc 0
    # CRDT branches of the same repo still flow
    write_ops A ra notes 2 n
    at A sync now >/dev/null
    wait_ops B rb 4
}

restart_resumes() {
    need_trellisd
    two_agents_serving
    write_ops A ra notes 5 a0
    local id=$RID
    at B clone "$id" rb >/dev/null || t_fail clone
    wait_ops B rb 5
    agent_stop B || t_fail "B exited with $? on SIGTERM"
    # 500 ops while B is away, in one import
    awk 'BEGIN { for (i = 0; i < 500; i++)
        printf "{\"kind\":\"field.set\",\"target\":\"e%d\",\"body\":{\"field\":\"f\",\"value\":%d},\"branch\":\"notes\"}\n", i % 50, i }' \
        >"$T_DIR/ops.jsonl"
    at A -C ra op import "$T_DIR/ops.jsonl" >/dev/null || t_fail import
    local mark
    mark=$(wc -l <"$T_DIR/B.log")
    AGENT_LISTEN=$EP_B agent_start B # same port: A's static endpoint for B stays right
    wait_for "$AGENT_WAIT" connected B "$ID_A" || t_fail "B did not reconnect
$(agent_log_tail A)
$(agent_log_tail B)"
    at B sync now >/dev/null || t_fail "sync now"
    wait_ops B rb 505
    same_ops A ra B rb 505
    # only the new ops crossed: B's log counts what it received since the restart
    local got
    got=$(tail -n +"$((mark + 1))" "$T_DIR/B.log" | sed -nE 's/.*received ([0-9]+) ops.*/\1/p' |
        awk '{ s += $1 } END { print s + 0 }')
    assert_eq "$got" 500 "ops received after the restart"
    # a second round with nothing new moves nothing
    mark=$(wc -l <"$T_DIR/B.log")
    local marka
    marka=$(wc -l <"$T_DIR/A.log")
    at B sync now >/dev/null || t_fail "second sync now"
    at A sync now >/dev/null || t_fail "second sync now on A"
    got=$(tail -n +"$((mark + 1))" "$T_DIR/B.log" | grep -c 'received [1-9]')
    assert_eq "$got" 0 "ops received on the second round (B)"
    got=$(tail -n +"$((marka + 1))" "$T_DIR/A.log" | grep -c 'received [1-9]')
    assert_eq "$got" 0 "ops received on the second round (A)"
    assert_eq "$(ops_of B rb)" 505 "B's ops after the second round"
}

t_case two_agents_converge two_agents_converge
t_case three_agents_line three_agents_line
t_case linear_divergence_refused linear_divergence_refused
t_case restart_resumes restart_resumes
t_done
