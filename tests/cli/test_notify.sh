#!/usr/bin/env bash
# packaging/trellis-notify with notify-send replaced by a recorder: a burst of
# 500 ops.received becomes one notification, the events a person cares about
# each raise one (repeats held back), the rest none; a real sync between two
# agents gives one "500 ops from A in …"; SIGTERM ends it cleanly.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/agentlib.sh"
. "$here_lib/helpers/evemit.sh"

NOTIFIER=$top_lib/packaging/trellis-notify
REPO=0123456789abcdef0123456789abcdef

# The recorder: one JSON array of its arguments per call, in $T_DIR/notes.
make_recorder() {
    cat >"$T_DIR/notify-send" <<'EOF'
#!/bin/sh
{ printf '%s\0' "$@"; printf END; } | jq -Rsc 'split("\u0000")[:-1]' >>"$RECORD"
EOF
    chmod +x "$T_DIR/notify-send"
    : >"$T_DIR/notes"
}

# Starts the notifier for the user of TRELLIS_HOME (ARGS passed on).
notifier_start() {
    need jq
    [ -x "$NOTIFIER" ] || t_fail "$NOTIFIER is not executable"
    make_recorder
    RECORD=$T_DIR/notes NOTIFY_SEND=$T_DIR/notify-send TRELLIS=$TRELLIS_BIN \
        "$NOTIFIER" "$@" 2>"$T_DIR/notifier.err" &
    NOTIFIER_PID=$!
    # however the case ends, the notifier (and any agent) ends with it
    trap 'kill -TERM "$NOTIFIER_PID" 2>/dev/null; agents_cleanup' EXIT
}

notifier_stop() {
    kill -TERM "$NOTIFIER_PID" 2>/dev/null
    local rc=0
    wait "$NOTIFIER_PID" || rc=$?
    [ "$rc" -eq 0 ] || t_fail "trellis-notify exited with $rc on SIGTERM: $(cat "$T_DIR/notifier.err")"
}

notes() { wc -l <"$T_DIR/notes"; }

# The summary (second to last argument) of notification N (1-based).
summary_of() { sed -n "${1}p" "$T_DIR/notes" | jq -r '.[-2]'; }
body_of() { sed -n "${1}p" "$T_DIR/notes" | jq -r '.[-1]'; }

wait_notes() { # N [SECONDS]
    wait_for "${2:-10}" eval '[ "$(notes)" -ge '"$1"' ]' ||
        t_fail "$(notes) notifications, not $1: $(cat "$T_DIR/notes") $(cat "$T_DIR/notifier.err")"
}

notify_coalesces_a_burst() {
    need_evemit
    local st=$TRELLIS_HOME/state
    mkdir -p "$st"
    notifier_start --since 0
    # 500 events over about 1.5 s, never 2 s apart: one notification
    "$EVEMIT" "$st" 500 ops.received "{\"peer\":\"x\",\"name\":\"bob\",\"repo\":\"$REPO\",\"branch\":\"main\",\"count\":1}" 0 3 >/dev/null ||
        t_fail evemit
    wait_notes 1
    sleep 3 # nothing else comes
    assert_eq "$(notes)" 1 "notifications for the burst"
    assert_eq "$(summary_of 1)" "500 ops from bob in 01234567" "summary"
    assert_eq "$(body_of 1)" "branch main" "body"
    sed -n 1p "$T_DIR/notes" | jq -e 'index("--app-name=trellis") and index("--urgency=low")' >/dev/null ||
        t_fail "arguments: $(sed -n 1p "$T_DIR/notes")"
    # the next burst is news again: counted separately, per peer, with
    # every branch it touched
    "$EVEMIT" "$st" 2 ops.received "{\"name\":\"bob\",\"repo\":\"$REPO\",\"branch\":\"main\",\"count\":20}" >/dev/null
    "$EVEMIT" "$st" 1 ops.received "{\"name\":\"bob\",\"repo\":\"$REPO\",\"branch\":\"draft\",\"count\":1}" >/dev/null
    "$EVEMIT" "$st" 1 ops.received "{\"name\":\"ana\",\"repo\":\"$REPO\",\"branch\":\"main\",\"count\":1}" >/dev/null
    wait_notes 3
    sleep 2.5
    assert_eq "$(notes)" 3 "notifications for two more bursts"
    local all
    all=$(summary_of 2; body_of 2; summary_of 3; body_of 3)
    assert_contains "$all" "41 ops from bob in 01234567"$'\n'"branches main, draft" "bob's second burst"
    assert_contains "$all" "1 op from ana in 01234567"$'\n'"branch main" "ana's burst"
    notifier_stop
}

notify_long_stream_is_not_held_forever() {
    need_evemit
    local st=$TRELLIS_HOME/state
    mkdir -p "$st"
    notifier_start --since 0 --hold 2
    # a steady stream for about 4 s, never quiet for 2 s: shown every ~2 s
    "$EVEMIT" "$st" 40 ops.received "{\"name\":\"bob\",\"repo\":\"$REPO\",\"branch\":\"main\",\"count\":1}" 0 100 >/dev/null
    wait_notes 2
    sleep 3
    local n
    n=$(notes)
    if [ "$n" -lt 2 ] || [ "$n" -gt 4 ]; then t_fail "$n notifications for a 4 s stream held at most 2 s"; fi
    local total=0 i
    for ((i = 1; i <= n; i++)); do total=$((total + $(summary_of "$i" | cut -d' ' -f1))); done
    assert_eq "$total" 40 "ops in all notifications"
    notifier_stop
}

notify_what_matters() {
    need_evemit
    local st=$TRELLIS_HOME/state
    mkdir -p "$st"
    notifier_start --since 0
    "$EVEMIT" "$st" 1 agent.started '{"listen":"tcp://127.0.0.1:7437"}' >/dev/null
    "$EVEMIT" "$st" 3 peer.connected '{"name":"bob","direction":"in"}' >/dev/null
    "$EVEMIT" "$st" 2 sync.complete "{\"name\":\"bob\",\"repo\":\"$REPO\",\"branch\":\"main\",\"count\":5}" >/dev/null
    "$EVEMIT" "$st" 2 peer.untrusted '{"curve":"AMsjSTB%iAM89ZmS*S?e+3B(%JmFpdgmc?t(6EAO"}' >/dev/null
    "$EVEMIT" "$st" 4 branch.diverged "{\"name\":\"bob\",\"repo\":\"$REPO\",\"branch\":\"main\",\"text\":\"op 1 is not on branch 'main' here\"}" >/dev/null
    "$EVEMIT" "$st" 3 op.refused "{\"name\":\"eve\",\"repo\":\"$REPO\",\"branch\":\"main\",\"reason\":\"signature\",\"text\":\"bad signature\"}" >/dev/null
    "$EVEMIT" "$st" 2 conflict "{\"repo\":\"$REPO\",\"branch\":\"main\",\"target\":\"task-7\",\"field\":\"status\",\"reason\":\"concurrent values\"}" >/dev/null
    wait_notes 4
    sleep 3
    assert_eq "$(notes)" 4 "notifications"
    local all
    all=$(cat "$T_DIR/notes")
    assert_contains "$all" '"--urgency=normal","--icon=dialog-password","An unknown agent asks to be trusted"' "knock"
    assert_contains "$all" "\"--urgency=critical\",\"--icon=dialog-error\",\"Branch main of 01234567 diverged from bob\"" "divergence"
    assert_contains "$all" '"Refused 3 ops from eve in 01234567","signature: bad signature"' "refusals (details once)"
    assert_contains "$all" '"2 conflicts in 01234567","task-7 status: concurrent values\nSee '"'trellis conflicts'."'"' "conflicts"
    notifier_stop
}

notify_without_notify_send() {
    need_evemit
    local st=$TRELLIS_HOME/state
    mkdir -p "$st"
    NOTIFY_SEND=/nonexistent/notify-send TRELLIS=$TRELLIS_BIN "$NOTIFIER" --since 0 --quiet 1 2>"$T_DIR/err" &
    NOTIFIER_PID=$!
    trap 'kill -TERM "$NOTIFIER_PID" 2>/dev/null' EXIT
    "$EVEMIT" "$st" 5 ops.received "{\"name\":\"bob\",\"repo\":\"$REPO\",\"branch\":\"main\",\"count\":2}" >/dev/null
    wait_for 10 grep -q "10 ops from bob" "$T_DIR/err" || t_fail "stderr: $(cat "$T_DIR/err")"
    assert_contains "$(cat "$T_DIR/err")" "notify-send is not installed" "warning"
    kill -TERM "$NOTIFIER_PID"
    wait "$NOTIFIER_PID" || t_fail "exit status $? on SIGTERM"
}

notify_sigterm_and_usage() {
    need jq
    notifier_start
    sleep 1
    kill -0 "$NOTIFIER_PID" 2>/dev/null || t_fail "the notifier did not keep running: $(cat "$T_DIR/notifier.err")"
    local start=$SECONDS
    notifier_stop
    [ $((SECONDS - start)) -le 3 ] || t_fail "SIGTERM took $((SECONDS - start)) s"
    # its `trellis events --follow` went with it
    pgrep -f "$TRELLIS_BIN events --follow --json --last 0" >/dev/null &&
        t_fail "trellis events --follow still runs: $(pgrep -af "$TRELLIS_BIN events --follow")"
    t_run "$NOTIFIER" --frob
    assert_rc 2
    t_run "$NOTIFIER" --since x
    assert_rc 2
    t_run "$NOTIFIER" --help
    assert_rc 0
    assert_contains "$OUT" "Usage: trellis-notify" "help"
    # `trellis events` failing is an error (systemd restarts it)
    TRELLIS=false NOTIFY_SEND=true t_run "$NOTIFIER"
    assert_rc 1
}

notify_real_sync() {
    need_trellisd
    agent_start A
    agent_start B
    link A B
    init_crdt_repo A ra
    at A repo add ra >/dev/null || t_fail "repo add"
    local i
    for i in $(seq 500); do echo "{\"kind\":\"app.x\",\"target\":\"t$i\",\"branch\":\"notes\"}"; done |
        at A -C ra op import --batch 50 - >/dev/null || t_fail "op import"
    local rid last
    rid=$(repo_id A ra)
    last=$(at B events --json | jq '.[-1].id')
    TRELLIS_HOME=$T_DIR/B notifier_start --since "$last"
    at B clone "$rid" team-notes >/dev/null || t_fail clone
    wait_for "$AGENT_WAIT" eval '[ "$(ops_of B team-notes)" = 500 ]' || t_fail "B did not get the 500 ops"
    wait_notes 1
    sleep 3
    assert_eq "$(notes)" 1 "notifications"
    assert_eq "$(summary_of 1)" "500 ops from A in team-notes" "summary"
    assert_eq "$(body_of 1)" "branch notes" "body"
    [ "$(at B events --type ops.received --json | jq length)" -ge 1 ] || t_fail "no ops.received events"
    notifier_stop
}

t_case notify_coalesces_a_burst notify_coalesces_a_burst
t_case notify_long_stream_is_not_held_forever notify_long_stream_is_not_held_forever
t_case notify_what_matters notify_what_matters
t_case notify_without_notify_send notify_without_notify_send
t_case notify_sigterm_and_usage notify_sigterm_and_usage
t_case notify_real_sync notify_real_sync
t_done
