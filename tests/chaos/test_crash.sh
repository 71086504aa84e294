#!/usr/bin/env bash
# Crash consistency: agent A holds a large CRDT repository (200,000 ops);
# agent B clones it, and B's trellisd is killed with SIGKILL at random
# moments of the sync, then restarted, again and again: one kill in four
# within 400 ms of the restart (start-up, handshake, first frames), the
# others within 500 ms after B's count moved again (streaming and
# integration). After each kill:
#   - the replica on disk is consistent (`trellis verify` clean, before the
#     restart and after it),
#   - nothing B had committed is missing (B acks only after its commit, so
#     what B held just before the kill is a lower bound of what B
#     acknowledged: the count after the crash and after the restart must be
#     at least that),
# and at the end the sync resumes and converges: the same op count and the
# same hashes (a digest of every op hash, and the branch heads) on A and B.
# Whenever B comes within a batch of A, A appends another batch (40,000
# ops) before the next kill, so that kills hit a running sync.
#
#   default      10 kills (CHAOS_CRASH_KILLS), 200,000 ops (CHAOS_CRASH_OPS)
#   TRELLIS_SOAK 50 kills
#   CHAOS_SEED   the random seed (printed), to replay a run's kill times
#
# suspend_and_resume: B frozen (SIGSTOP) past the heartbeat timeout while A
# writes, then resumed; B must survive, catch up, and nobody gets dropped.
. "$(dirname "$0")/lib.sh"

# N ops as JSON lines for `op import`: field sets over 5,000 entities.
gen_ops() { # N TAG
    awk -v n="$1" -v tag="$2" 'BEGIN { for (i = 1; i <= n; i++)
        printf "{\"kind\":\"field.set\",\"target\":\"e%d\",\"body\":{\"field\":\"f%d\",\"value\":\"%s-%d\"}}\n", i % 5000, i % 7, tag, i }'
}

count_of() { "$TRCOUNT" "$1" 2>/dev/null || echo -1; }

verify_clean() { # PATH WHEN
    local v
    v=$(at B -C "$1" verify --json 2>&1) || t_fail "verify of B's replica $2 failed: ${v:0:600}"
    [ "$(echo "$v" | jq -r .bad)" = 0 ] || t_fail "verify of B's replica $2 found bad ops: ${v:0:600}"
}

crash_during_large_sync() {
    need_trellisd
    local ops=${CHAOS_CRASH_OPS:-200000} kills=${CHAOS_CRASH_KILLS:-10} chunk=40000
    [ "$SOAK" = 1 ] && kills=${CHAOS_CRASH_KILLS:-50}
    local seed=${CHAOS_SEED:-$((RANDOM * 32768 + RANDOM))}
    RANDOM=$seed
    echo "# seed $seed (CHAOS_SEED=$seed replays the kill times)"
    TRCOUNT=$(helper trcount) || exit 99
    agent_start A
    agent_start B
    link A B
    init_crdt A ra
    gen_ops "$ops" a0 | at A -C ra op import - --branch data >/dev/null || t_fail "import on A"
    at A repo add ra >/dev/null || t_fail "repo add"
    local rid total rb=$T_DIR/rb epB=$EP_B
    rid=$(repo_id A ra)
    total=$ops
    # The clone registers rb with B at once and returns after 300 ms; the
    # sync goes on in the background.
    at B clone "$rid" "$rb" --timeout 300 >/dev/null 2>&1
    [ -d "$rb/.trellis" ] || t_fail "the clone did not create $rb"

    local k before after restarted delay mid=0 topups=0 t0 c0 phase
    t0=$(now_ms)
    for ((k = 1; k <= kills; k++)); do
        # Keep a backlog, so that B is syncing when it dies.
        if [ $((total - $(count_of "$rb"))) -lt "$chunk" ]; then
            gen_ops "$chunk" "a$k" | at A -C ra op import - --branch data >/dev/null || t_fail "import on A"
            total=$((total + chunk)) topups=$((topups + 1))
        fi
        if [ $((k % 4)) = 1 ]; then
            # during start-up, the handshake or the first frames
            phase=start delay=$((RANDOM % 400))
        else
            # while ops stream in: once B's count moves again
            phase=sync delay=$((RANDOM % 500))
            c0=$(count_of "$rb")
            wait_for 20 eval '[ "$(count_of "$rb")" -gt "$c0" ]' || t_fail "kill $k: B's sync did not resume"
        fi
        sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
        before=$(count_of "$rb")
        agent_kill B
        after=$(count_of "$rb")
        [ "$after" -ge "$before" ] ||
            t_fail "kill $k: B held $before ops before the kill and $after after it"
        verify_clean "$rb" "after kill $k (before the restart)"
        [ "$after" -lt "$total" ] && mid=$((mid + 1))
        AGENT_LISTEN=$epB agent_start B
        restarted=$(count_of "$rb")
        [ "$restarted" -ge "$before" ] ||
            t_fail "kill $k: B held $before ops before the kill and $restarted after the restart"
        verify_clean "$rb" "after restart $k"
        echo "# kill $k ($phase, +${delay} ms): B held $before ops, $after after the crash, $restarted after the restart (A: $total)"
    done
    # The sync resumes and converges.
    local ms
    ms=$("$TRCOUNT" --wait "$total" --timeout 180000 "$rb" "$T_DIR/ra") ||
        t_fail "B did not converge after the last restart: $ms (A has $total)
$(agent_log_tail B)"
    verify_clean "$rb" "at the end"
    t_run at A -C ra verify --json
    assert_rc 0
    local da db
    da=$("$TRCOUNT" --digest "$T_DIR/ra") db=$("$TRCOUNT" --digest "$rb")
    assert_eq "$db" "$da" "count and digest of every op hash on B (vs A)"
    assert_eq "$(at B -C "$rb" sync status --json | jq -c '[.branches[] | {name, heads}]')" \
        "$(at A -C ra sync status --json | jq -c '[.branches[] | {name, heads}]')" "branch heads of B (vs A)"
    # A kill must never have taken B's agent down for good: B still syncs.
    at A -C ra op add --kind app.x --target after-kills --branch data >/dev/null || t_fail "op add"
    ms=$("$TRCOUNT" --wait $((total + 1)) --timeout 30000 "$rb") || t_fail "a new op did not reach B: $ms"
    figure kills "$kills" mid_sync "$mid" ops "$total" topups "$topups" seconds $((($(now_ms) - t0) / 1000))
    agent_stop B || t_fail "B exited with $?"
    agent_stop A || t_fail "A exited with $?"
}

# A laptop that sleeps: B's trellisd is frozen (SIGSTOP) for longer than the
# heartbeat timeout while A keeps writing, then resumed (SIGCONT). B must
# still run and answer, catch up, and neither side may treat the other as a
# protocol violator (a drop bans an honest peer for 60 s).
suspend_and_resume() {
    need_trellisd
    TRCOUNT=$(helper trcount) || exit 99
    local secs=${CHAOS_SUSPEND_SECONDS:-20} pid_b w n
    agent_start A
    agent_start B
    link A B
    init_crdt A ra
    at A repo add ra >/dev/null || t_fail "repo add"
    at B clone "$(repo_id A ra)" "$T_DIR/rb" --timeout 300 >/dev/null 2>&1
    (
        i=0
        while :; do
            gen_ops 20 "w$i" | at A -C ra op import - --branch data >/dev/null
            i=$((i + 1))
            sleep 0.2
        done
    ) &
    w=$!
    sleep 2
    pid_b=$(agent_pid B)
    kill -STOP "$pid_b"
    sleep "$secs"
    kill -CONT "$pid_b"
    sleep 5
    kill "$w"
    wait "$w" 2>/dev/null
    agent_gone "$pid_b" && t_fail "B's trellisd died after being resumed:
$(grep -vE 'debug|event \{' "$T_DIR/B.log" | tail -n 5)"
    timeout 10 env TRELLIS_HOME="$T_DIR/B" "$TRELLIS_BIN" peers --json >/dev/null ||
        t_fail "B's trellisd no longer answers its control socket after being resumed"
    n=$(count_of "$T_DIR/ra")
    local ms
    ms=$("$TRCOUNT" --wait "$n" --timeout 30000 "$T_DIR/rb") ||
        t_fail "B did not catch up within 30 s of being resumed: $ms (A has $n)"
    figure suspended_s "$secs" caught_up_ms "$ms" ops "$n"
    ! grep -h "dropping peer" "$T_DIR/A.log" "$T_DIR/B.log" ||
        t_fail "an honest peer was dropped as a protocol violator after the resume"
    agent_stop B || t_fail "B exited with $?"
    agent_stop A || t_fail "A exited with $?"
}

t_case crash_during_large_sync crash_during_large_sync
# Known failure, open in issue 8: trellisd dies after SIGSTOP/SIGCONT during a sync. Reported as skipped (never as
# passed) until fixed; TRELLIS_KNOWN_FAILURES=1 runs it.
if [ -n "${TRELLIS_KNOWN_FAILURES:-}" ]; then
    t_case suspend_and_resume suspend_and_resume
else
    t_case suspend_and_resume t_skip "known failure (issue 8): trellisd dies after SIGSTOP/SIGCONT during a sync"
fi
t_done
