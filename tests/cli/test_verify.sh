#!/usr/bin/env bash
# trellis verify: a clean store passes; a tampered record is found and named.
. "$(dirname "$0")/lib.sh"

setup() {
    trellis init >/dev/null || t_fail "init"
    local i
    for ((i = 1; i <= 20; i++)); do
        printf '{"kind":"field.set","target":"e%d","body":{"v":%d}}\n' "$i" "$i"
    done >ops.jsonl
    trellis op import --batch 7 ops.jsonl >/dev/null || t_fail "import"
}

# Overwrites every occurrence of string $1 in file $2 with $3 (same length).
patch_bytes() {
    local off n=0
    [ ${#1} -eq ${#3} ] || t_fail "patch_bytes: lengths differ"
    for off in $(grep -obUaF -- "$1" "$2" | cut -d: -f1); do
        printf '%s' "$3" | dd of="$2" bs=1 seek="$off" conv=notrunc status=none || t_fail "dd"
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] || t_fail "'$1' not found in $2"
}

clean_store() {
    need jq
    setup
    t_run trellis verify
    assert_rc 0
    assert_match "$OUT" '^ok: 20 ops, [0-9]+ signatures checked, 0 bad$' "summary"
    t_run trellis verify --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq .ops)" 20 "ops"
    assert_eq "$(echo "$OUT" | jq .bad)" 0 "bad"
    assert_eq "$(echo "$OUT" | jq -c .problems)" "[]" "problems"
    [ "$(echo "$OUT" | jq .signatures)" -ge 3 ] || t_fail "signatures: $(echo "$OUT" | jq .signatures)"
}

tampered_body_found() {
    need jq
    setup
    t_run trellis op add --kind app.note --target victim --body '"tamper-me-0123456789"' --json
    assert_rc 0
    local h
    h=$(echo "$OUT" | jq -r .hash)
    patch_bytes "tamper-me-0123456789" .trellis/store/data.mdb "tamper-me-9876543210"

    t_run trellis verify
    assert_rc 1
    assert_contains "$OUT" "bad main#21" "text report"
    assert_contains "$OUT" "$h" "text report names the op"
    assert_match "$OUT" 'BAD: 21 ops, [0-9]+ signatures checked, [1-9][0-9]* bad' "summary"
    t_run trellis verify --json
    assert_rc 1
    [ "$(echo "$OUT" | jq .bad)" -ge 1 ] || t_fail "bad count: $OUT"
    assert_eq "$(echo "$OUT" | jq -r '.problems[0].branch')" main "branch"
    assert_eq "$(echo "$OUT" | jq -r '.problems[0].position')" 21 "position"
    assert_eq "$(echo "$OUT" | jq -r '.problems[0].hash')" "$h" "hash"
    assert_eq "$(echo "$OUT" | jq -r '.problems[0].error')" hash "error"
    assert_contains "$(echo "$OUT" | jq -r '.problems[0].reason')" "hash" "reason"
}

tampered_target_found() {
    need jq
    setup
    t_run trellis op add --kind app.note --target sig-victim-abcdefghij
    assert_rc 0
    patch_bytes "sig-victim-abcdefghij" .trellis/store/data.mdb "sig-victim-ABCDEFGHIJ"
    t_run trellis verify --json
    assert_rc 1
    [ "$(echo "$OUT" | jq .bad)" -ge 1 ] || t_fail "bad count: $OUT"
}

t_case clean_store clean_store
t_case tampered_body_found tampered_body_found
t_case tampered_target_found tampered_target_found
t_done
