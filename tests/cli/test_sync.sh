#!/usr/bin/env bash
# trellis sync status: the local part (repo, op count, head, branches).
. "$(dirname "$0")/lib.sh"

empty_repo() {
    need jq
    trellis init >/dev/null || t_fail init
    t_run trellis sync status --json
    assert_rc 0
    assert_match "$(echo "$OUT" | jq -r .repo)" '^[0-9a-f]{32}$' "repo"
    assert_eq "$(echo "$OUT" | jq .ops)" 0 "ops"
    assert_eq "$(echo "$OUT" | jq .head)" null "head"
    assert_eq "$(echo "$OUT" | jq -c .branches)" "[]" "branches"
    t_run trellis sync status
    assert_rc 0
    assert_match "$OUT" 'ops +0' "text ops"
}

with_ops() {
    need jq
    trellis init >/dev/null || t_fail init
    trellis op add --kind app.x --target a >/dev/null || t_fail add
    local h
    h=$(trellis op add --kind app.x --target b) || t_fail add
    trellis op add --kind app.x --target c --branch dev >/dev/null || t_fail add
    t_run trellis sync status --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r 'keys_unsorted | join(",")')" "repo,ops,head,branches" "keys"
    assert_eq "$(echo "$OUT" | jq .ops)" 3 "ops"
    assert_eq "$(echo "$OUT" | jq -r .head)" "$h" "head of main"
    assert_eq "$(echo "$OUT" | jq -c '[.branches[].name]')" '["dev","main"]' "names"
    assert_eq "$(echo "$OUT" | jq -c '.branches[1] | [.ops, .lamport, .heads]')" "[2,2,[\"$h\"]]" "main"
    assert_eq "$(echo "$OUT" | jq -r '.branches[0] | keys_unsorted | join(",")')" \
        "name,ops,heads,lamport" "branch keys"
    # `trellis` alone shows the same status
    t_run trellis
    assert_rc 0
    assert_contains "$OUT" "$h" "bare trellis"
    assert_contains "$OUT" "ops       3" "bare trellis"
}

t_case empty_repo empty_repo
t_case with_ops with_ops
t_done
