#!/usr/bin/env bash
# trellis sync reconcile --remote PATH: two replicas of one repository (the
# second made by copying the first's .trellis, so the id is the same), each
# written by its own identity; dry run, merge both ways, fork point and
# conflicts, a linear branch that diverged (reported, not merged) and one
# that only moved on the other side (fast-forward), equivocation, another
# repository refused.
. "$(dirname "$0")/lib.sh"

# a / b: the two replicas, written by identities in homes ha / hb.
ta() { (cd a && TRELLIS_HOME=$T_DIR/ha trellis "$@"); }
tb() { (cd b && TRELLIS_HOME=$T_DIR/hb trellis "$@"); }

pair() {
    ta init . >/dev/null 2>&1 || { mkdir a && ta init . >/dev/null; } || t_fail "init a"
    cat >a/.trellis/config.json <<'EOF'
{"version": 1, "branchPolicies": {"main": {"linear": true}, "*": {"linear": false}},
 "fieldStrategies": {"contract": "manual_resolution"}}
EOF
    ta set doc:1 base '"shared"' --branch work >/dev/null || t_fail "write a"
    ta set doc:1 base '"shared"' >/dev/null || t_fail "write a main"
    mkdir b && cp -a a/.trellis b/ || t_fail "copy"
}

merge_both_ways() {
    need jq
    pair
    ta set doc:1 contract '"from a"' --branch work >/dev/null || t_fail "a writes"
    ta counter add doc:1 views 2 --branch work >/dev/null || t_fail "a writes"
    tb set doc:1 contract '"from b"' --branch work >/dev/null || t_fail "b writes"
    tb triple add doc:1 cites doc:9 --branch work >/dev/null || t_fail "b writes"
    tb set doc:2 title '"only b"' --branch work >/dev/null || t_fail "b writes"
    local na nb
    na=$(ta sync status --json | jq .ops)
    # dry run: the report, nothing integrated
    t_run ta sync reconcile --remote ../b --branch work --dry-run
    assert_rc 0
    assert_contains "$OUT" "work: merged (crdt)"
    assert_contains "$OUT" "unique        2 local, 3 remote"
    assert_match "$OUT" 'fork point +[0-9a-f]{64}' "fork point"
    assert_contains "$OUT" "integrated    nothing (dry run; 3 would be)"
    assert_contains "$OUT" 'manual field "contract" of entity "doc:1"'
    assert_eq "$(ta sync status --json | jq .ops)" "$na" "dry run integrated nothing"
    t_run ta sync reconcile --remote ../b --branch work --dry-run --json
    assert_rc 0
    local j=$OUT fork
    assert_eq "$(echo "$j" | jq -r .dry_run)" true "dry_run"
    assert_eq "$(echo "$j" | jq -r '.branches[0].status')" merged "status"
    assert_eq "$(echo "$j" | jq -r '.branches[0].unique_local')" 2 "unique local"
    assert_eq "$(echo "$j" | jq -r '.branches[0].unique_remote')" 3 "unique remote"
    assert_eq "$(echo "$j" | jq -r '.branches[0].clean')" false "clean"
    assert_eq "$(echo "$j" | jq -r '.branches[0].conflicts[0].reason')" manual "reason"
    assert_eq "$(echo "$j" | jq -r '.branches[0].conflicts[0].field')" contract "field"
    assert_eq "$(echo "$j" | jq -r '.branches[0].conflicts[0].local')" 2 "local ops touching doc:1"
    fork=$(echo "$j" | jq -r '.branches[0].fork_point')
    t_run ta show "$fork" --json
    assert_eq "$(echo "$OUT" | jq -r .body.value)" shared "the fork point is the last common op"
    # for real, both ways
    t_run ta sync reconcile --remote ../b --branch work
    assert_rc 0
    assert_contains "$OUT" "integrated    3 (0 already here, 0 refused)"
    assert_eq "$(ta sync status --json | jq .ops)" $((na + 3)) "3 integrated"
    t_run tb sync reconcile --remote ../a --branch work --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r '.branches[0].status')" fast-forward "b only lacked a's"
    assert_eq "$(echo "$OUT" | jq -r '.branches[0].integrated')" 2 "2 integrated"
    t_run ta sync reconcile --remote ../b --branch work
    assert_rc 0
    assert_contains "$OUT" "work: in sync (crdt)"
    assert_contains "$OUT" "conflicts     none (clean)"
    # the same state on both: values and fingerprints
    local ga gb
    ga=$(ta get doc:1 --branch work --json)
    gb=$(tb get doc:1 --branch work --json)
    assert_eq "$ga" "$gb" "doc:1 on both"
    assert_eq "$(echo "$ga" | jq -c '.fields.contract["$conflict"] | sort')" '["from a","from b"]' "conflict merged"
    assert_eq "$(ta get doc:2 --branch work --json | jq -r .fingerprint)" \
        "$(tb get doc:2 --branch work --json | jq -r .fingerprint)" "doc:2 fingerprints"
    assert_eq "$(ta triple list --branch work)" "$(tb triple list --branch work)" "triples"
    t_run ta conflicts --json
    assert_eq "$(echo "$OUT" | jq -c '[.[0].branch, .[0].entity, .[0].field, ([.[0].candidates[].value] | sort)]')" \
        '["work","doc:1","contract",["from a","from b"]]' "open on a"
    assert_eq "$(ta conflicts)" "$(tb conflicts)" "the same conflict on b"
}

linear_branches() {
    need jq
    pair
    # only b moved on main: a fast-forwards
    tb set doc:1 title '"b1"' >/dev/null || t_fail "b writes main"
    t_run ta sync reconcile --remote ../b --branch main
    assert_rc 0
    assert_contains "$OUT" "main: fast-forward (linear)"
    assert_eq "$(ta get doc:1 --json | jq -r .fields.title)" b1 "fast-forwarded"
    # both moved: diverged, reported, not merged
    ta set doc:1 title '"a2"' >/dev/null || t_fail "a writes main"
    tb set doc:1 title '"b2"' >/dev/null || t_fail "b writes main"
    local na
    na=$(ta sync status --json | jq .ops)
    t_run ta sync reconcile --remote ../b
    assert_rc 1
    assert_contains "$OUT" "main: diverged (linear)"
    assert_contains "$OUT" "not merged"
    assert_contains "$OUT" 'entity "doc:1"'
    assert_contains "$OUT" "work: in sync (crdt)"
    assert_eq "$(ta sync status --json | jq .ops)" "$na" "nothing integrated"
    t_run ta sync reconcile --remote ../b --json
    assert_rc 1
    assert_eq "$(echo "$OUT" | jq -r '.branches[] | select(.branch == "main") | .status')" diverged "status"
    assert_eq "$(echo "$OUT" | jq -r '.branches[] | select(.branch == "main") | .policy')" linear "policy"
}

equivocation_is_reported() {
    need jq
    pair
    # the same identity writing on both replicas: two ops with one seq
    TRELLIS_HOME=$T_DIR/ha bash -c 'cd b && "$TRELLIS_BIN" set doc:1 x 1 --branch work' >/dev/null || t_fail "write b"
    ta set doc:1 x 2 --branch work >/dev/null || t_fail "write a"
    t_run ta sync reconcile --remote ../b --branch work
    assert_rc 1
    assert_contains "$OUT" "equivocation"
    assert_contains "$ERR" "equivocation"
}

refusals() {
    pair
    mkdir c && (cd c && TRELLIS_HOME=$T_DIR/hc trellis init . >/dev/null) || t_fail "init c"
    t_run ta sync reconcile --remote ../c
    assert_rc 1
    assert_contains "$ERR" "is not a replica of this one"
    t_run ta sync reconcile --remote .
    assert_rc 1
    assert_contains "$ERR" "that is this repository"
    t_run ta sync reconcile --remote ../nowhere
    assert_rc 1
    t_run ta sync reconcile
    assert_rc 2
    assert_contains "$ERR" "--remote PATH is required"
    # a directory inside the replica is fine
    mkdir -p b/sub
    t_run ta sync reconcile --remote ../b/sub --dry-run
    assert_rc 0
}

t_case merge_both_ways merge_both_ways
t_case linear_branches linear_branches
t_case equivocation_is_reported equivocation_is_reported
t_case refusals refusals
t_done
