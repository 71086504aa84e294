#!/usr/bin/env bash
# The CRDT commands: set, append, get, triple add/rm/list, counter add,
# resolve, conflicts, rebuild — values, fingerprints, refusals with their
# reasons, the strategies of config.json, help and usage errors.
. "$(dirname "$0")/lib.sh"

setup() { trellis init >/dev/null || t_fail "init"; }

# config.json with field strategies (main linear, every other branch CRDT).
strategies() {
    cat >.trellis/config.json <<'EOF'
{
  "version": 1,
  "branchPolicies": {"main": {"linear": true}, "*": {"linear": false}},
  "fieldStrategies": {
    "status": "highest_restriction_wins",
    "steps": "append_wins",
    "tags": "union_merge",
    "contract": "manual_resolution",
    "id": "immutable",
    "*": "last_write_wins"
  }
}
EOF
}

set_and_get() {
    need jq
    setup
    t_run trellis set doc:1 title '"Hello"'
    assert_rc 0
    assert_match "$OUT" '^[0-9a-f]{64}$' "set prints the op hash"
    local h=$OUT
    t_run trellis show "$h" --json
    assert_eq "$(echo "$OUT" | jq -r .kind)" field.set "kind"
    assert_eq "$(echo "$OUT" | jq -c .body)" '{"field":"title","pred":[],"value":"Hello"}' "first write: empty pred"
    t_run trellis get doc:1
    assert_rc 0
    assert_contains "$OUT" "doc:1 on main"
    assert_match "$OUT" 'fingerprint +[0-9a-f]{64}' "fingerprint line"
    assert_match "$OUT" 'title +"Hello"' "title line"
    t_run trellis get doc:1 --json
    assert_rc 0
    local fp1
    fp1=$(echo "$OUT" | jq -r .fingerprint)
    assert_match "$fp1" '^[0-9a-f]{64}$' "fingerprint"
    assert_eq "$(echo "$OUT" | jq -c .fields)" '{"title":"Hello"}' "fields"
    assert_eq "$(echo "$OUT" | jq -r .exists)" true "exists"
    # the second write names the first in its pred
    t_run trellis set doc:1 title '"Hello, world"' --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r .kind)" field.set "json kind"
    assert_eq "$(echo "$OUT" | jq -r .branch)" main "json branch"
    t_run trellis show "$(echo "$OUT" | jq -r .hash)" --json
    assert_eq "$(echo "$OUT" | jq -c '.body.pred | length')" 1 "pred of the second write"
    t_run trellis get doc:1 --json
    assert_ne "$(echo "$OUT" | jq -r .fingerprint)" "$fp1" "fingerprint changes with the value"
    # any JSON value; null clears the field, and an entity without fields does not exist
    trellis set doc:1 meta '{"a":[1,2.0,true]}' >/dev/null || t_fail "set an object"
    t_run trellis get doc:1 --json
    assert_eq "$(echo "$OUT" | jq -c .fields.meta)" '{"a":[1,2,true]}' "object value (canonical)"
    trellis set doc:1 meta null >/dev/null || t_fail "set null"
    trellis set doc:1 title null >/dev/null || t_fail "set null"
    t_run trellis get doc:1
    assert_rc 1
    assert_contains "$ERR" "entity \"doc:1\" does not exist on branch 'main'"
    t_run trellis get doc:1 --json
    assert_rc 1
    assert_eq "$(echo "$OUT" | jq -r .exists)" false "exists after clearing"
    # other branches: their own state
    trellis set doc:1 title '"draft"' --branch work >/dev/null || t_fail "set on work"
    t_run trellis get doc:1 --branch work --json
    assert_eq "$(echo "$OUT" | jq -r .fields.title)" draft "work's value"
    assert_eq "$(echo "$OUT" | jq -r .branch)" work "branch"
    t_run trellis get nobody
    assert_rc 1
}

strategies_and_refusals() {
    need jq
    setup
    strategies
    trellis set doc:1 id '"A1"' >/dev/null || t_fail "set id"
    local n0
    n0=$(trellis sync status --json | jq .ops)
    t_run trellis set doc:1 id '"B2"'
    assert_rc 1
    assert_match "$ERR" '^trellis: set: field "id" is immutable: it was set by op [0-9a-f]+ at lamport 1' "immutable"
    t_run trellis set doc:1 id '"A1"'
    assert_rc 0 # the same value again changes nothing and is fine
    t_run trellis set doc:1 steps '"x"'
    assert_rc 1
    assert_contains "$ERR" 'field "steps" is append_wins: it takes field.append, not field.set'
    t_run trellis append doc:1 title '"x"'
    assert_rc 1
    assert_contains "$ERR" 'field "title" is last_write_wins: field.append needs an append_wins field'
    t_run trellis set doc:1 fingerprint '"forged"'
    assert_rc 1
    assert_contains "$ERR" '"fingerprint" is computed after every merge and cannot be written'
    t_run trellis set doc:1 title hello
    assert_rc 1
    assert_contains "$ERR" "JSON value: "
    assert_contains "$ERR" "quote strings"
    assert_eq "$(trellis sync status --json | jq .ops)" $((n0 + 1)) "only the repeated id was written"
    # append_wins keeps every append in order; restriction picks the most restrictive
    trellis append doc:1 steps '"one"' >/dev/null || t_fail append
    trellis append doc:1 steps '{"n":2}' >/dev/null || t_fail append
    trellis set doc:1 status '"draft"' >/dev/null || t_fail status
    trellis set doc:1 status '"published"' >/dev/null || t_fail status
    trellis set doc:1 status '"review"' >/dev/null || t_fail status # overwrites: it named the candidate
    t_run trellis get doc:1 --json
    assert_eq "$(echo "$OUT" | jq -cS .fields)" '{"id":"A1","status":"review","steps":["one",{"n":2}]}' "fields"
    assert_eq "$(echo "$OUT" | jq -r .strategies.steps)" append_wins "strategy shown"
    t_run trellis get doc:1
    assert_contains "$OUT" "(append_wins)"
    # a broken strategy in config.json: the repository does not open, and the message names the key
    sed -i 's/"append_wins"/"apend_wins"/' .trellis/config.json
    t_run trellis get doc:1
    assert_rc 1
    assert_contains "$ERR" "config.json: fieldStrategies.steps"
}

counters() {
    need jq
    setup
    t_run trellis counter add doc:1 views 5
    assert_rc 0
    assert_match "$OUT" '^[0-9a-f]{64}$' "hash"
    trellis counter add doc:1 views -2 >/dev/null || t_fail "a negative number"
    trellis counter add doc:1 views -- -1 >/dev/null || t_fail "after --"
    t_run trellis get doc:1 --json
    assert_eq "$(echo "$OUT" | jq -c .counters)" '{"views":2}' "sum"
    t_run trellis get doc:1
    assert_match "$OUT" 'views +2 +\(counter\)' "counter line"
    t_run trellis counter add doc:1 big 9223372036854775807
    assert_rc 0
    t_run trellis counter add doc:1 big 1
    assert_rc 1
    assert_contains "$ERR" "leaves the range of a 64-bit integer"
    t_run trellis counter add doc:1 views x
    assert_rc 2
    assert_contains "$ERR" "N wants a whole number"
    t_run trellis counter add doc:1 views 99999999999999999999
    assert_rc 2
}

triples() {
    need jq
    setup
    trellis triple add doc:1 cites doc:2 >/dev/null || t_fail add
    trellis triple add doc:3 cites doc:2 >/dev/null || t_fail add
    trellis triple add doc:3 owner alice >/dev/null || t_fail add
    trellis triple add doc:1 links '@lib:core/7' >/dev/null || t_fail add
    t_run trellis triple rm doc:3 owner alice
    assert_rc 0
    assert_match "$OUT" '^[0-9a-f]{64}$' "rm prints the hash"
    t_run trellis triple list
    assert_rc 0
    assert_eq "$OUT" $'doc:1\tcites\tdoc:2\ndoc:1\tlinks\t@lib:core/7\ndoc:3\tcites\tdoc:2' "all"
    t_run trellis triple list --subject doc:3
    assert_eq "$OUT" $'doc:3\tcites\tdoc:2' "by subject"
    t_run trellis triple list --subject doc:1 --predicate links
    assert_eq "$OUT" $'doc:1\tlinks\t@lib:core/7' "by subject and predicate"
    t_run trellis triple list --predicate cites --json
    assert_eq "$(echo "$OUT" | jq -c 'map(.s)')" '["doc:1","doc:3"]' "by predicate"
    t_run trellis triple list --object doc:2 --json
    assert_eq "$(echo "$OUT" | jq -c .)" '[{"s":"doc:1","p":"cites","o":"doc:2"},{"s":"doc:3","p":"cites","o":"doc:2"}]' "who references doc:2"
    t_run trellis triple list --object '@lib:core/7'
    assert_eq "$OUT" $'doc:1\tlinks\t@lib:core/7' "federation-style object"
    t_run trellis triple list --predicate owner
    assert_eq "$OUT" "" "removed"
    t_run trellis triple list --branch elsewhere --json
    assert_rc 0
    assert_eq "$OUT" "[]" "empty branch"
    # an add after the remove brings it back
    trellis triple add doc:3 owner alice >/dev/null || t_fail add
    t_run trellis triple list --predicate owner
    assert_eq "$OUT" $'doc:3\towner\talice' "re-added"
    t_run trellis triple add "" p o
    assert_rc 1
}

conflicts_and_resolve() {
    need jq
    setup
    strategies
    trellis set doc:1 contract '"v1"' --branch work >/dev/null || t_fail set
    # a blind write (empty pred) is concurrent with v1: a conflict
    t_run trellis op add --kind field.set --target doc:1 --branch work \
        --body '{"field":"contract","pred":[],"value":"v2"}'
    assert_rc 0
    t_run trellis conflicts
    assert_rc 0
    assert_eq "$OUT" $'work\tdoc:1\tcontract\t["v1","v2"]' "one open conflict"
    t_run trellis conflicts --json
    assert_eq "$(echo "$OUT" | jq length)" 1 "json"
    assert_eq "$(echo "$OUT" | jq -r '.[0].field')" contract "field"
    assert_eq "$(echo "$OUT" | jq -c '[.[0].candidates[].value]')" '["v1","v2"]' "candidates"
    assert_match "$(echo "$OUT" | jq -r '.[0].candidates[0].op')" '^[0-9a-f]{64}$' "candidate op"
    t_run trellis get doc:1 --branch work --json
    assert_eq "$(echo "$OUT" | jq -c .fields.contract)" '{"$conflict":["v1","v2"]}' "value shows both"
    assert_eq "$(echo "$OUT" | jq -r '.conflicts[0].field')" contract "get lists it"
    t_run trellis get doc:1 --branch work
    assert_contains "$OUT" "CONFLICT"
    t_run trellis resolve doc:1 title '"x"' --branch work
    assert_rc 1
    assert_contains "$ERR" "has no open conflict"
    t_run trellis resolve doc:1 contract '"v3"' --branch work
    assert_rc 0
    t_run trellis conflicts --json
    assert_eq "$OUT" "[]" "resolved"
    t_run trellis get doc:1 --branch work --json
    assert_eq "$(echo "$OUT" | jq -r .fields.contract)" v3 "resolved value"
    t_run trellis resolve doc:1 contract '"v4"' --branch work
    assert_rc 1
    # ops the materializer did not apply are listed with their reason
    trellis op add --kind field.set --target doc:1 --body '{"field":"x","value":1}' >/dev/null || t_fail "raw op"
    trellis op add --kind field.set --target doc:2 --body '{"field":"id","pred":[],"value":1}' >/dev/null
    trellis op add --kind field.set --target doc:2 --body '{"field":"id","pred":[],"value":2}' >/dev/null
    t_run trellis conflicts
    assert_rc 0
    assert_contains "$ERR" "2 ops in the log were not materialized"
    t_run trellis conflicts --refused
    assert_rc 0
    assert_contains "$OUT" 'field.set body: missing key "pred"'
    assert_contains "$OUT" 'field "id" is immutable'
    t_run trellis conflicts --refused --json --branch main
    assert_eq "$(echo "$OUT" | jq length)" 2 "refused ops"
    assert_eq "$(echo "$OUT" | jq -r '.[0].code')" body "code name"
    assert_eq "$(echo "$OUT" | jq -r '.[0].position')" 1 "position"
}

rebuild_and_strategy_change() {
    need jq
    setup
    trellis set doc:1 status '"published"' --branch work >/dev/null || t_fail set
    trellis set doc:1 status '"draft"' --branch work >/dev/null || t_fail set
    trellis counter add doc:1 views 3 --branch work >/dev/null || t_fail counter
    trellis triple add doc:1 cites doc:2 --branch work >/dev/null || t_fail triple
    local before
    before=$(trellis get doc:1 --branch work --json)
    t_run trellis rebuild
    assert_rc 0
    assert_match "$OUT" '^rebuilt from 4 ops in [0-9.]+ s: [0-9]+ states, 1 entities, 0 open conflicts, 0 ops not materialized$' "rebuild line"
    assert_eq "$(trellis get doc:1 --branch work --json)" "$before" "same after rebuild"
    t_run trellis rebuild --json
    assert_eq "$(echo "$OUT" | jq .ops)" 4 "ops"
    assert_eq "$(echo "$OUT" | jq .entities)" 1 "entities"
    # config.json changes the strategies: writes refused until a rebuild
    strategies
    t_run trellis set doc:1 status '"review"' --branch work
    assert_rc 1
    assert_contains "$ERR" "run 'trellis rebuild'"
    t_run trellis get doc:1 --branch work
    assert_rc 0
    assert_contains "$ERR" "warning: the materialized state was built with other field strategies"
    trellis rebuild >/dev/null || t_fail rebuild
    t_run trellis get doc:1 --branch work --json
    assert_eq "$ERR" "" "no warning after the rebuild"
    assert_eq "$(echo "$OUT" | jq -r .strategies.status)" highest_restriction_wins "strategy"
    t_run trellis set doc:1 status '"review"' --branch work
    assert_rc 0
}

linear_main_takes_writes() {
    need jq
    setup
    trellis set a t 1 >/dev/null || t_fail "set on main"
    trellis set a t 2 >/dev/null || t_fail "set on main"
    t_run trellis log --json
    assert_eq "$(echo "$OUT" | jq length)" 2 "two ops on main"
    assert_eq "$(echo "$OUT" | jq -r '.[0].branch')" main "branch"
    t_run trellis get a --json
    assert_eq "$(echo "$OUT" | jq .fields.t)" 2 "value"
}

help_and_usage() {
    local c text
    for c in "set" "append" "get" "triple" "triple add" "triple rm" "triple list" "counter" \
        "counter add" "resolve" "conflicts" "rebuild" "sync reconcile"; do
        # shellcheck disable=SC2086
        t_run trellis $c --help
        assert_rc 0
        assert_contains "$OUT" "Usage: trellis $c" "$c --help"
        assert_contains "$OUT" "Exit status" "$c --help"
        assert_eq "$ERR" "" "$c --help stderr"
        text=$OUT
        # shellcheck disable=SC2086
        t_run trellis help $c
        assert_eq "$OUT" "$text" "trellis help $c"
    done
    for c in "set" "append" "get" "triple add" "triple list" "counter add" "resolve" "conflicts" \
        "rebuild" "sync reconcile"; do
        # shellcheck disable=SC2086
        t_run trellis $c --help
        assert_contains "$OUT" "--json" "$c takes --json"
        assert_contains "$OUT" "Options:" "$c --help"
    done
    t_run trellis --help
    for c in "set" "append" "get" "triple add" "triple rm" "triple list" "counter add" "resolve" \
        "conflicts" "rebuild" "sync reconcile"; do
        assert_contains "$OUT" "  $c " "command list: $c"
    done
    setup
    for c in "set" "set a" "set a b" "set a b 1 2" "set a b 1 --bogus" "set a b 1 --branch" \
        "append a b" "get" "get a b" "triple" "triple frob" "triple add a b" "triple rm a" \
        "triple list extra" "triple list --subject" "counter" "counter add a b" "counter add a b 1.5" \
        "resolve a b" "conflicts extra" "conflicts --branch" "rebuild extra" "sync reconcile" \
        "sync reconcile --remote" "sync reconcile --remote x extra"; do
        # shellcheck disable=SC2086
        t_run trellis $c
        assert_rc 2
        assert_match "$ERR" "^trellis" "stderr of '$c'"
        assert_eq "$OUT" "" "stdout of '$c'"
    done
    t_run trellis set a b 1 --frob
    assert_contains "$ERR" "trellis set: unknown option '--frob'"
    assert_contains "$ERR" "Try 'trellis set --help'."
}

outside_a_repository() {
    local c
    for c in "set a b 1" "get a" "triple list" "conflicts" "rebuild"; do
        # shellcheck disable=SC2086
        t_run trellis $c
        assert_rc 1
        assert_contains "$ERR" "not a trellis repository"
    done
}

t_case set_and_get set_and_get
t_case strategies_and_refusals strategies_and_refusals
t_case counters counters
t_case triples triples
t_case conflicts_and_resolve conflicts_and_resolve
t_case rebuild_and_strategy_change rebuild_and_strategy_change
t_case linear_main_takes_writes linear_main_takes_writes
t_case help_and_usage help_and_usage
t_case outside_a_repository outside_a_repository
t_done
