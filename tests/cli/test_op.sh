#!/usr/bin/env bash
# trellis op add, log and show: hashes, JSON shapes, signatures, refusals.
. "$(dirname "$0")/lib.sh"

setup() { trellis init >/dev/null || t_fail "init"; }

add_then_log_and_show() {
    need jq
    setup
    t_run trellis op add --kind field.set --target user:1 --body '{"name":"Ada","age":36.0}'
    assert_rc 0
    assert_match "$OUT" '^[0-9a-f]{64}$' "hash"
    local h1=$OUT
    t_run trellis op add --kind triple.add --target user:2
    assert_rc 0
    local h2=$OUT

    t_run trellis log
    assert_rc 0
    local fp
    fp=$(trellis id --json | jq -r .fingerprint)
    assert_eq "$(echo "$OUT" | sed -n 1p)" "${h2:0:12} 2 $fp triple.add user:2" "log line 1"
    assert_eq "$(echo "$OUT" | sed -n 2p)" "${h1:0:12} 1 $fp field.set user:1" "log line 2"

    t_run trellis log --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq length)" 2 "ops"
    assert_eq "$(echo "$OUT" | jq -r '.[0].hash')" "$h2" "newest first"
    assert_eq "$(echo "$OUT" | jq -r '.[1].hash')" "$h1" "oldest last"

    t_run trellis log --limit 1 --json
    assert_eq "$(echo "$OUT" | jq length)" 1 "--limit 1"

    t_run trellis show --json "${h1:0:10}"
    assert_rc 0
    local o=$OUT id repo
    id=$(trellis id --json | jq -r .id)
    repo=$(trellis sync status --json | jq -r .repo)
    assert_eq "$(echo "$o" | jq -r 'keys_unsorted | join(",")')" \
        "hash,repo,branch,position,author,seq,lamport,wall,parents,prev,kind,target,body,signed" "fields"
    assert_eq "$(echo "$o" | jq -r .hash)" "$h1" "hash"
    assert_eq "$(echo "$o" | jq -r .repo)" "$repo" "repo"
    assert_eq "$(echo "$o" | jq -r .branch)" main "branch"
    assert_eq "$(echo "$o" | jq -r .author)" "$id" "author"
    assert_eq "$(echo "$o" | jq -r .seq)" 1 "seq"
    assert_eq "$(echo "$o" | jq -r .lamport)" 1 "lamport"
    assert_match "$(echo "$o" | jq -r .wall)" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$' "wall"
    assert_eq "$(echo "$o" | jq -c .parents)" "[]" "parents"
    assert_eq "$(echo "$o" | jq -r .prev)" null "prev"
    assert_eq "$(echo "$o" | jq -r .kind)" field.set "kind"
    assert_eq "$(echo "$o" | jq -r .target)" user:1 "target"
    assert_eq "$(echo "$o" | jq -c .body)" '{"age":36,"name":"Ada"}' "canonical body"
    assert_eq "$(echo "$o" | jq -r .signed)" true "signed"

    t_run trellis show --json "$h2"
    assert_eq "$(echo "$OUT" | jq -r .seq)" 2 "seq 2"
    assert_eq "$(echo "$OUT" | jq -r .prev)" "$h1" "prev of seq 2"
    assert_eq "$(echo "$OUT" | jq -c .parents)" "[\"$h1\"]" "parents of seq 2"
    assert_eq "$(echo "$OUT" | jq -r .body)" null "default body"

    t_run trellis show "$h2"
    assert_rc 0
    assert_match "$OUT" "op +$h2" "text op line"
    assert_match "$OUT" "signed +yes" "text signed"
    assert_match "$OUT" "prev +$h1" "text prev"
}

add_json_is_the_op() {
    need jq
    setup
    t_run trellis op add --kind app.note --target n --body '[1,"two",{"b":true,"a":null}]' --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -c .body)" '[1,"two",{"a":null,"b":true}]' "body"
    assert_eq "$(echo "$OUT" | jq -r .signed)" true "signed"
    local h
    h=$(echo "$OUT" | jq -r .hash)
    t_run trellis show --json "$h"
    assert_eq "$(echo "$OUT" | jq -c .body)" '[1,"two",{"a":null,"b":true}]' "show body"
}

branches() {
    need jq
    setup
    trellis op add --kind app.x --target a --branch feature/x >/dev/null || t_fail "add"
    trellis op add --kind app.x --target b --branch feature/x >/dev/null || t_fail "add"
    t_run trellis log --branch feature/x --json
    assert_eq "$(echo "$OUT" | jq length)" 2 "ops on feature/x"
    assert_eq "$(echo "$OUT" | jq -r '.[0].branch')" feature/x "branch"
    t_run trellis log --json
    assert_rc 0
    assert_eq "$OUT" "[]" "main is empty"
    t_run trellis log
    assert_rc 0
    assert_eq "$OUT" "" "text log of an empty branch"
    t_run trellis log --branch nosuch --json
    assert_rc 0
    assert_eq "$OUT" "[]" "unknown branch"
}

refusals() {
    setup
    t_run trellis op add --kind app.x --target t --body '{"a":'
    assert_rc 1
    assert_contains "$ERR" "trellis: op add: --body: line 1, column"
    t_run trellis op add --kind app.x --target t --body '{"a":1,"a":2}'
    assert_rc 1
    assert_contains "$ERR" "duplicate"
    t_run trellis op add --kind Bad.Kind --target t
    assert_rc 1
    assert_contains "$ERR" "kind"
    t_run trellis op add --kind app.x --target "$(printf 'x%.0s' $(seq 1100))"
    assert_rc 1
    assert_contains "$ERR" "target"
    t_run trellis op add --kind app.x --target t --body "\"$(head -c 70000 /dev/zero | tr '\0' x)\""
    assert_rc 1
    assert_contains "$ERR" "65536"
    t_run trellis log --json
    assert_eq "$OUT" "[]" "nothing was written"
}

show_refusals() {
    setup
    t_run trellis show 0000
    assert_rc 1
    assert_contains "$ERR" "trellis: show:"
    t_run trellis show zzzz
    assert_rc 1
    t_run trellis show 12
    assert_rc 1
    assert_contains "$ERR" "4"
}

t_case add_then_log_and_show add_then_log_and_show
t_case add_json_is_the_op add_json_is_the_op
t_case branches branches
t_case refusals refusals
t_case show_refusals show_refusals
t_done
