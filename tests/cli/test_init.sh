#!/usr/bin/env bash
# trellis init, re-init refusal, finding the repository, config.json errors.
. "$(dirname "$0")/lib.sh"

init_creates_repo() {
    t_run trellis init
    assert_rc 0
    assert_match "$OUT" 'repo [0-9a-f]{32}' "init output"
    assert_eq "$(stat -c %a .trellis)" 700 ".trellis mode"
    [ -f .trellis/config.json ] || t_fail "no config.json"
    [ -d .trellis/store ] || t_fail "no store directory"
}

init_json_and_path() {
    need jq
    t_run trellis init --json new/repo
    assert_rc 1 # the parent "new" does not exist
    assert_contains "$ERR" "trellis: init: cannot create new/repo"
    mkdir new
    t_run trellis init --json new/repo
    assert_rc 0
    assert_match "$(echo "$OUT" | jq -r .repo)" '^[0-9a-f]{32}$' "repo id"
    assert_eq "$(echo "$OUT" | jq -r .path)" "$PWD/new/repo" "path"
    assert_eq "$(echo "$OUT" | jq -r 'keys | join(",")')" "path,repo" "keys"
}

default_config() {
    need jq
    trellis init >/dev/null || t_fail "init"
    local c=.trellis/config.json
    assert_eq "$(jq -r .version "$c")" 1 "version"
    assert_eq "$(jq -r '.branchPolicies.main.linear' "$c")" true "main linear"
    assert_eq "$(jq -r '.branchPolicies.main.requireSigning' "$c")" true "main signing"
    assert_eq "$(jq -r '.branchPolicies["*"].linear' "$c")" false "* linear"
    assert_eq "$(jq -r '.branchPolicies["*"].requireSigning' "$c")" true "* signing"
}

reinit_refused() {
    t_run trellis init
    assert_rc 0
    local first=$OUT
    t_run trellis init
    assert_rc 1
    assert_contains "$ERR" "trellis: init: $PWD is already a trellis repository"
    assert_eq "$OUT" "" "stdout"
    t_run trellis init .
    assert_rc 1
    # the original repository is untouched
    t_run trellis sync status
    assert_rc 0
    assert_contains "$OUT" "$(echo "$first" | sed -n 's/^repo //p')" "status repo id"
}

distinct_ids() {
    need jq
    local a b
    a=$(trellis init --json a | jq -r .repo)
    b=$(trellis init --json b | jq -r .repo)
    assert_ne "$a" "$b" "repo ids"
}

not_a_repo() {
    mkdir plain
    cd plain || t_fail cd
    for cmd in "log" "show abcd" "verify" "sync status" "op add --kind a --target b"; do
        # shellcheck disable=SC2086
        t_run trellis $cmd
        assert_rc 1
        assert_contains "$ERR" "not a trellis repository" "$cmd"
        assert_contains "$ERR" "$PWD" "$cmd"
    done
    t_run trellis -C /nonexistent/dir log
    assert_rc 1
    assert_contains "$ERR" "/nonexistent/dir"
}

found_from_subdirectory() {
    trellis init >/dev/null || t_fail init
    trellis op add --kind app.x --target t >/dev/null || t_fail "op add"
    mkdir -p deep/er
    cd deep/er || t_fail cd
    t_run trellis log
    assert_rc 0
    assert_contains "$OUT" "app.x t"
    cd / || t_fail cd
    t_run trellis -C "$T_DIR/deep" log
    assert_rc 0
    assert_contains "$OUT" "app.x t"
}

bad_config_names_file_and_key() {
    trellis init >/dev/null || t_fail init
    echo '{"branchPolicies": {"feature/[": {"linear": true}}}' >.trellis/config.json
    t_run trellis log
    assert_rc 1
    assert_contains "$ERR" ".trellis/config.json: branchPolicies.\"feature/[\": invalid glob"
    echo '{"branchPolicies": {"main": {"linear": "yes"}}}' >.trellis/config.json
    t_run trellis sync status
    assert_rc 1
    assert_contains "$ERR" "config.json: branchPolicies.main.linear: expected true or false"
    printf '{\n  "version": 1,\n  "branchPolicies": {\n' >.trellis/config.json
    t_run trellis sync status
    assert_rc 1
    assert_match "$ERR" 'config\.json:[0-9]+:[0-9]+: '
    echo '{"version": 9}' >.trellis/config.json
    t_run trellis sync status
    assert_rc 1
    assert_contains "$ERR" "version: 9 is newer"
}

config_policy_applies() {
    need jq
    trellis init >/dev/null || t_fail init
    # with requireSigning off and CRDT everywhere, writes still work (signed anyway)
    echo '{"version":1,"branchPolicies":{"*":{"linear":false,"requireSigning":false}},"links":[]}' \
        >.trellis/config.json
    t_run trellis op add --kind app.x --target t --branch other
    assert_rc 0
    t_run trellis log --branch other --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq length)" 1 "ops on other"
}

t_case init_creates_repo init_creates_repo
t_case init_json_and_path init_json_and_path
t_case default_config default_config
t_case reinit_refused reinit_refused
t_case distinct_ids distinct_ids
t_case not_a_repo not_a_repo
t_case found_from_subdirectory found_from_subdirectory
t_case bad_config_names_file_and_key bad_config_names_file_and_key
t_case config_policy_applies config_policy_applies
t_done
