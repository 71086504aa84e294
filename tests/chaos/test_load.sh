#!/usr/bin/env bash
# Load: N agents on loopback, every one connected to every other (as on a
# LAN with discovery), each serving a replica of one shared CRDT repository
# and writing to it at a steady rate through `trellis op import` (one
# importer per agent, fed a batch every 100 ms, each batch one durable
# transaction), all on the same entities so that writes are concurrent.
# After the writes stop, every replica must hold every op within
# CHAOS_CONVERGE_MS (5,000 ms). The test reports the convergence time, each
# agent's peak resident set (VmHWM) and its open file descriptors before
# the writes and after convergence, which must not have grown; every agent
# then stops cleanly (under ASan: no leak).
#
#   default        5 agents × 50 ops/s × 10 s, the build under test
#   TRELLIS_SOAK   20 agents × 200 ops/s × 60 s, on build/rel when it has a
#                  trellisd (RSS under ASan is mostly shadow memory);
#                  TRELLIS_LOAD_BUILD=DIR chooses the build
#   CHAOS_LOAD_AGENTS, CHAOS_LOAD_RATE, CHAOS_LOAD_SECONDS override
. "$(dirname "$0")/lib.sh"

if [ "$SOAK" = 1 ]; then
    N=${CHAOS_LOAD_AGENTS:-20} RATE=${CHAOS_LOAD_RATE:-200} SECS=${CHAOS_LOAD_SECONDS:-60}
    [ -z "${TRELLIS_LOAD_BUILD:-}" ] && [ -x "$top_lib/build/rel/trellisd" ] && TRELLIS_LOAD_BUILD=$top_lib/build/rel
else
    N=${CHAOS_LOAD_AGENTS:-5} RATE=${CHAOS_LOAD_RATE:-50} SECS=${CHAOS_LOAD_SECONDS:-10}
fi
CONVERGE_MS=${CHAOS_CONVERGE_MS:-5000}
if [ -n "${TRELLIS_LOAD_BUILD:-}" ]; then
    TRELLIS_BIN=$TRELLIS_LOAD_BUILD/trellis TRELLISD=$TRELLIS_LOAD_BUILD/trellisd
fi

# Free loopback ports P..P+N-1 (none listening now).
free_ports() { # N → prints the first
    local p i used
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        used=$(ss -Hltn 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
        for ((i = 0; i < $1; i++)); do grep -qx "$((p + i))" <<<"$used" && continue 2; done
        echo "$p"
        return 0
    done
    return 1
}

# For a failure: which agents died (and their last log line), which no
# longer answer their control socket and where their main thread is (gdb,
# when installed), and how many peers were dropped; logs kept under
# $TRELLIS_BUILD/chaos/load-failure/.
diagnose() {
    local i keep=$CHAOS_BUILD/chaos/load-failure
    for ((i = 0; i < N; i++)); do
        if agent_gone "$(agent_pid "a$i")"; then
            echo "# a$i died: $(grep -vE 'debug|event \{' "$T_DIR/a$i.log" | tail -n 1)"
        elif ! timeout 10 env TRELLIS_HOME="$T_DIR/a$i" "$TRELLIS_BIN" peers --json >/dev/null 2>&1; then
            echo "# a$i does not answer its control socket"
            command -v gdb >/dev/null &&
                timeout 30 gdb -p "$(agent_pid "a$i")" -batch -ex bt 2>/dev/null | grep -E '^#' | head -n 12 | sed 's/^/#   /'
        fi
    done
    echo "# peers dropped as protocol violators: $(cat "$T_DIR"/a*.log | grep -c 'dropping peer')"
    rm -rf "$keep"
    mkdir -p "$keep"
    cp "$T_DIR"/a*.log "$keep"/ 2>/dev/null
    echo "# agent logs kept in $keep"
}

load_converges() {
    need_trellisd
    need ss
    local i j p0 ids=() pids=() rid
    TRCOUNT=$(helper trcount) || exit 99
    p0=$(free_ports "$N") || t_skip "no $N free loopback ports"
    # Identities first, then each agent's agent.json: every other agent as a
    # trusted static peer, and its replica of the shared repository (copies
    # of one empty repository: the same id).
    for ((i = 0; i < N; i++)); do
        mkdir -p "$T_DIR/a$i"
        ids[i]=$(at "a$i" id --json | jq -r .id) || t_fail "id of a$i"
    done
    init_crdt a0 r0
    rid=$(repo_id a0 r0)
    for ((i = 1; i < N; i++)); do cp -a r0 "r$i"; done
    for ((i = 0; i < N; i++)); do
        {
            printf '{"name":"a%d","repos":["%s"],"peers":[' "$i" "$T_DIR/r$i"
            local sep=
            for ((j = 0; j < N; j++)); do
                [ "$j" = "$i" ] && continue
                printf '%s{"id":"%s","name":"a%d","endpoint":"tcp://127.0.0.1:%d","trusted":true}' \
                    "$sep" "${ids[j]}" "$j" $((p0 + j))
                sep=,
            done
            printf ']}\n'
        } >"$T_DIR/a$i/config/agent.json"
    done
    for ((i = 0; i < N; i++)); do
        AGENT_LISTEN=tcp://127.0.0.1:$((p0 + i)) agent_start "a$i"
        pids[i]=$(agent_pid "a$i")
    done
    # Everyone connected to everyone.
    mesh_up() {
        local k
        for ((k = 0; k < N; k++)); do
            [ "$(at "a$k" peers --json 2>/dev/null | jq '[.[] | select(.connected)] | length')" = $((N - 1)) ] || return 1
        done
    }
    wait_for 60 mesh_up || t_fail "the $N agents did not all connect to each other
$(agent_log_tail a0)"
    for ((i = 0; i < N; i++)); do
        [ "$(repo_id "a$i" "r$i")" = "$rid" ] || t_fail "r$i is not a replica of $rid"
    done
    sleep 1 # let start-up settle before counting descriptors
    local fds0=() rss0=()
    for ((i = 0; i < N; i++)); do fds0[i]=$(fds "${pids[i]}") rss0[i]=$(rss_kb "${pids[i]}"); done

    # Writers: one importer per agent reading a FIFO; one generator feeds
    # every FIFO RATE/10 lines each 100 ms, for SECS seconds.
    local per=$((RATE / 10)) ticks=$((SECS * 10)) wpids=() fdv t0 t1
    [ "$per" -ge 1 ] || per=1
    for ((i = 0; i < N; i++)); do
        mkfifo "w$i"
        at "a$i" -C "r$i" op import "$T_DIR/w$i" --branch load --batch "$per" >"w$i.out" 2>&1 &
        wpids[i]=$!
    done
    local wfds=()
    # read-write opens never block (a write-only open would wait for a reader)
    for ((i = 0; i < N; i++)); do exec {fdv}<>"w$i"; wfds[i]=$fdv; done
    t0=$(now_ms)
    local tick line
    for ((tick = 0; tick < ticks; tick++)); do
        for ((i = 0; i < N; i++)); do
            line=
            for ((j = 0; j < per; j++)); do
                line+="{\"kind\":\"field.set\",\"target\":\"e$(((tick * per + j) % 200))\",\"body\":{\"field\":\"f$((j % 5))\",\"value\":\"a$i-$tick-$j\"}}"$'\n'
            done
            printf '%s' "$line" >&"${wfds[i]}"
        done
        # keep the rate: sleep what is left of this tick's 100 ms
        local due=$((t0 + (tick + 1) * 100)) now
        now=$(now_ms)
        [ "$now" -lt "$due" ] && sleep "0.$(printf '%03d' $((due - now)))"
    done
    for ((i = 0; i < N; i++)); do
        fdv=${wfds[i]}
        exec {fdv}>&-
    done
    local total=0 n
    for ((i = 0; i < N; i++)); do
        wait "${wpids[i]}" || t_fail "the importer of a$i failed: $(cat "w$i.out")"
        n=$(grep -oE '^appended [0-9]+' "w$i.out" | grep -oE '[0-9]+')
        total=$((total + ${n:-0}))
    done
    t1=$(now_ms)
    assert_eq "$total" $((N * ticks * per)) "ops written"
    local reps=() ms
    for ((i = 0; i < N; i++)); do reps+=("$T_DIR/r$i"); done
    # Wait (up to CHAOS_LOAD_WAIT s) in 10 s slices, printing the progress.
    local waited=0 limit_s=${CHAOS_LOAD_WAIT:-120}
    while ! ms=$("$TRCOUNT" --wait "$total" --timeout 10000 "${reps[@]}"); do
        waited=$((waited + 10))
        echo "# not converged $waited s after the writes: counts${ms#timeout:} (want $total)"
        [ "$waited" -lt "$limit_s" ] || t_fail "not converged $waited s after the writes (want $total each)
$(diagnose)"
    done
    ms=$((ms + waited * 1000))
    sleep 2 # let what is in flight (acks, haves) finish before counting descriptors
    local maxhwm=0 maxrss=0 fdgrew='' hwm r f digest0 d
    digest0=$("$TRCOUNT" --digest "$T_DIR/r0")
    for ((i = 0; i < N; i++)); do
        hwm=$(hwm_kb "${pids[i]}") r=$(rss_kb "${pids[i]}") f=$(fds "${pids[i]}")
        [ "$hwm" -gt "$maxhwm" ] && maxhwm=$hwm
        [ "$r" -gt "$maxrss" ] && maxrss=$r
        echo "# a$i: peak RSS ${hwm} kB, RSS ${rss0[i]} → $r kB, fds ${fds0[i]} → $f"
        [ "$f" -le "${fds0[i]}" ] || fdgrew+=" a$i:${fds0[i]}→$f"
        d=$("$TRCOUNT" --digest "$T_DIR/r$i")
        assert_eq "$d" "$digest0" "count and op digest of r$i (vs r0)"
    done
    figure agents "$N" rate_per_agent "$RATE" seconds "$SECS" ops "$total" \
        write_ms $((t1 - t0)) converge_ms "$ms" max_peak_rss_kb "$maxhwm" max_rss_kb "$maxrss" \
        build "$(basename "$(dirname "$TRELLIS_BIN")")"
    [ -z "$fdgrew" ] || t_fail "file descriptors grew:$fdgrew"
    [ "$ms" -le "$CONVERGE_MS" ] || t_fail "converged in $ms ms after the writes stopped, over $CONVERGE_MS ms"
    for ((i = 0; i < N; i++)); do
        t_run at "a$i" -C "r$i" verify --json
        assert_rc 0
        agent_stop "a$i" || t_fail "a$i exited with $? (ASan reports leaks with 86)
$(agent_log_tail "a$i")"
    done
}

t_case load_converges load_converges
t_done
