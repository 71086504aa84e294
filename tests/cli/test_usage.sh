#!/usr/bin/env bash
# Help on every command, usage errors (exit 2), --version, output hygiene.
. "$(dirname "$0")/lib.sh"

COMMANDS=("init" "id" "op" "op add" "op import" "log" "show" "verify" "sync" "sync status")

help_everywhere() {
    local c
    for c in "${COMMANDS[@]}"; do
        # shellcheck disable=SC2086
        t_run trellis $c --help
        assert_rc 0
        assert_contains "$OUT" "Usage: trellis ${c%% *}" "$c --help"
        assert_contains "$OUT" "Exit status" "$c --help"
        assert_eq "$ERR" "" "$c --help stderr"
        local text=$OUT
        # shellcheck disable=SC2086
        t_run trellis help $c
        assert_rc 0
        assert_eq "$OUT" "$text" "trellis help $c"
        # shellcheck disable=SC2086
        t_run trellis $c -h
        assert_eq "$OUT" "$text" "$c -h"
    done
    for c in "init" "id" "op add" "op import" "log" "show" "verify" "sync status"; do
        # shellcheck disable=SC2086
        t_run trellis $c --help
        assert_contains "$OUT" "Options:" "$c --help"
    done
    t_run trellis --help
    assert_rc 0
    for c in "${COMMANDS[@]}"; do
        [ "$c" = op ] || [ "$c" = sync ] || assert_contains "$OUT" "  $c" "command list"
    done
    assert_contains "$OUT" "Exit status: 0 success, 1 failure, 2 usage error, 3 agent unreachable"
    t_run trellis help
    assert_rc 0
    assert_contains "$OUT" "Commands:"
}

json_everywhere() {
    need jq
    trellis init --json repo >init.json || t_fail init
    jq -e . init.json >/dev/null || t_fail "init --json"
    cd repo || t_fail cd
    local h
    h=$(trellis op add --kind app.x --target t) || t_fail add
    echo '{"kind":"app.x","target":"u"}' >one.jsonl
    local c
    for c in "id --json" "op add --kind app.x --target v --json" "op import one.jsonl --json" \
        "log --json" "show $h --json" "verify --json" "sync status --json"; do
        # shellcheck disable=SC2086
        t_run trellis $c
        assert_rc 0
        [ "$(echo "$OUT" | jq -s length)" = 1 ] || t_fail "$c: not exactly one JSON value: $OUT"
    done
    t_run trellis log --json
    assert_eq "$(echo "$OUT" | jq type)" '"array"' "log is an array"
}

usage_errors_exit_2() {
    trellis init >/dev/null || t_fail init
    local c
    for c in "--bogus" "frob" "op" "op frob" "sync" "sync frob" "help frob" \
        "init --bogus" "init a b" "id extra" "id --json=1" "op add" "op add --kind" \
        "op add --kind a" "op add --target t" "op add --kind a --target t extra" \
        "op import --batch" "op import --batch x" "log --limit" "log --limit -1" \
        "log extra" "show" "show a b" "verify extra" "verify -x" "sync status extra" \
        "--color=sometimes id" "-C"; do
        # shellcheck disable=SC2086
        t_run trellis $c
        assert_rc 2
        assert_match "$ERR" "^trellis" "stderr of '$c'"
        assert_eq "$OUT" "" "stdout of '$c'"
    done
    t_run trellis op add --frob
    assert_contains "$ERR" "trellis op add: unknown option '--frob'"
    assert_contains "$ERR" "Try 'trellis op add --help'."
    t_run trellis log --limit
    assert_contains "$ERR" "option '--limit' needs a value"
}

version() {
    t_run trellis --version
    assert_rc 0
    assert_match "$OUT" '^trellis [0-9]+\.[0-9]+\.[0-9]+'
}

no_colour_off_a_terminal() {
    trellis init >/dev/null || t_fail init
    trellis op add --kind app.x --target t >/dev/null || t_fail add
    unset NO_COLOR
    t_run trellis log
    assert_not_contains "$OUT" $'\033[' "log piped"
    t_run trellis --color=always log
    assert_contains "$OUT" $'\033[' "log with --color=always"
    t_run trellis --color=never log
    assert_not_contains "$OUT" $'\033[' "log with --color=never"
}

errors_format() {
    t_run trellis log
    assert_rc 1
    assert_match "$ERR" '^trellis: log: ' "error line"
}

t_case help_everywhere help_everywhere
t_case json_everywhere json_everywhere
t_case usage_errors_exit_2 usage_errors_exit_2
t_case version version
t_case no_colour_off_a_terminal no_colour_off_a_terminal
t_case errors_format errors_format
t_done
