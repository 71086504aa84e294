#!/usr/bin/env bash
# trellis op import: counts, batches per branch, bad lines, partial writes.
. "$(dirname "$0")/lib.sh"

setup() { trellis init >/dev/null || t_fail "init"; }

gen() { # N [branch]: N lines of ops
    local i
    for ((i = 1; i <= $1; i++)); do
        if [ -n "${2:-}" ]; then
            printf '{"kind":"field.set","target":"e%d","body":{"v":%d},"branch":"%s"}\n' "$i" "$i" "$2"
        else
            printf '{"kind":"field.set","target":"e%d","body":{"v":%d}}\n' "$i" "$i"
        fi
    done
}

imports_and_counts() {
    need jq
    setup
    gen 2500 >ops.jsonl
    t_run trellis op import ops.jsonl
    assert_rc 0
    assert_eq "$OUT" "appended 2500 ops" "output"
    t_run trellis sync status --json
    assert_eq "$(echo "$OUT" | jq .ops)" 2500 "ops in the store"
    t_run trellis log --limit 1 --json
    assert_eq "$(echo "$OUT" | jq -r '.[0].target')" e2500 "last op"
    assert_eq "$(echo "$OUT" | jq -r '.[0].seq')" 2500 "last seq"
    assert_eq "$(echo "$OUT" | jq -c '.[0].body')" '{"v":2500}' "last body"
    assert_eq "$(echo "$OUT" | jq -r '.[0].signed')" true "the last op of a batch is signed"
    # from stdin, with --json, blank lines skipped
    { gen 3; echo; echo "   "; } | trellis op import - --json >out.json 2>err.txt
    assert_eq "$?" 0 "exit of stdin import"
    assert_eq "$(jq -c . out.json)" '{"appended":3,"lines":5,"batches":1}' "json output"
}

batches_and_signatures() {
    need jq
    setup
    gen 10 >ops.jsonl
    t_run trellis op import --batch 4 --json ops.jsonl
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -c .)" '{"appended":10,"lines":10,"batches":3}' "3 batches"
    # the last op of each batch carries a signature; the others are covered
    t_run trellis log --json
    assert_eq "$(echo "$OUT" | jq -c '[.[] | select(.signed) | .seq] | sort')" "[4,8,10]" "signed seqs"
}

branch_groups() {
    need jq
    setup
    { gen 3; gen 2 dev; gen 1; gen 1 other; } >ops.jsonl
    t_run trellis op import --json ops.jsonl
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq .appended)" 7 "appended"
    assert_eq "$(echo "$OUT" | jq .batches)" 4 "a batch per run of one branch"
    t_run trellis sync status --json
    assert_eq "$(echo "$OUT" | jq -c '[.branches[] | [.name, .ops]]')" \
        '[["dev",2],["main",4],["other",1]]' "branches"
    # --branch sets the default
    gen 2 >more.jsonl
    t_run trellis op import --branch dev more.jsonl
    assert_rc 0
    t_run trellis log --branch dev --json
    assert_eq "$(echo "$OUT" | jq length)" 4 "ops on dev"
}

bad_line_keeps_earlier_batches() {
    need jq
    setup
    { gen 5; echo '{"kind":"field.set","target":"x","body":{"v":NaN}}'; gen 3; } >ops.jsonl
    t_run trellis op import --batch 2 ops.jsonl
    assert_rc 1
    assert_contains "$ERR" "trellis: op import: line 6: "
    assert_contains "$ERR" "4 ops appended (lines 1-4); nothing from line 5 on was written"
    t_run trellis sync status --json
    assert_eq "$(echo "$OUT" | jq .ops)" 4 "ops after the refusal"
    t_run trellis log --limit 1 --json
    assert_eq "$(echo "$OUT" | jq -r '.[0].target')" e4 "the last op written"
    # verify is happy with what was written (the partial batch left no trace)
    t_run trellis verify
    assert_rc 0
}

bad_lines_reported() {
    need jq
    setup
    local cases=(
        '{"kind":"field.set"}|"target" is missing'
        '{"target":"t"}|"kind" is missing'
        '{"kind":"Field","target":"t"}|kind must be'
        '{"kind":"a","target":"t","bdy":1}|unknown field "bdy"'
        '{"kind":"a","target":7}|"target" must be a string'
        '[1,2]|expected a JSON object'
        '{"kind":"a","target":"t"|column'
        '{"kind":"a","target":"t","kind":"b"}|duplicate'
        '{"kind":"a","target":"t","branch":"main","body":[1e999]}|column'
    )
    local c line want
    for c in "${cases[@]}"; do
        line=${c%%|*}
        want=${c#*|}
        { gen 1; echo "$line"; } >bad.jsonl
        t_run trellis op import --json bad.jsonl
        assert_rc 1
        assert_contains "$ERR" "trellis: op import: line 2: " "stderr for $line"
        assert_contains "$ERR" "$want" "stderr for $line"
        assert_contains "$ERR" "nothing was written" "stderr for $line"
        assert_eq "$(echo "$OUT" | jq .appended)" 0 "appended for $line"
        assert_eq "$(echo "$OUT" | jq .error.line)" 2 "error line for $line"
    done
    t_run trellis sync status --json
    assert_eq "$(echo "$OUT" | jq .ops)" 0 "nothing written"
    # a change of branch closes the batch before it: that one is written
    { gen 1; echo '{"kind":"a","target":"t","branch":""}'; } >bad.jsonl
    t_run trellis op import bad.jsonl
    assert_rc 1
    assert_contains "$ERR" "line 2: invalid op: branch must be"
    assert_contains "$ERR" "1 ops appended (lines 1-1); nothing from line 2 on was written"
}

usage_errors() {
    setup
    t_run trellis op import --batch 0 x
    assert_rc 2
    t_run trellis op import --batch 100001 x
    assert_rc 2
    t_run trellis op import a b
    assert_rc 2
    t_run trellis op import missing.jsonl
    assert_rc 1
    assert_contains "$ERR" "missing.jsonl"
}

empty_input() {
    setup
    t_run trellis op import /dev/null
    assert_rc 0
    assert_eq "$OUT" "appended 0 ops"
}

t_case imports_and_counts imports_and_counts
t_case batches_and_signatures batches_and_signatures
t_case branch_groups branch_groups
t_case bad_line_keeps_earlier_batches bad_line_keeps_earlier_batches
t_case bad_lines_reported bad_lines_reported
t_case usage_errors usage_errors
t_case empty_input empty_input
t_done
