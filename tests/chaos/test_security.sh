#!/usr/bin/env bash
# Security: what a hostile network, a hostile trusted peer and another local
# user can get from a trellisd (docs/security.md names the claims these
# cases back). The attacker is tests/chaos/helpers/rogue.c, a peer that runs
# the real sync session over a replica and misbehaves on request. Agent A
# serves a CRDT repository; agent C, an honest peer, replicates it, and
# every attack case checks that C keeps syncing with A meanwhile.
. "$(dirname "$0")/lib.sh"

SEED_M=$(printf '4d%.0s' $(seq 32)) # the rogue's identity (trusted where a case says so)
SEED_U=$(printf '55%.0s' $(seq 32)) # an identity nobody trusts

# A and C linked; A serves `ra` (CRDT, 20 ops on branch data), C replicates
# it as `rc`; `rm` is a copy of ra (the rogue's replica). Sets RID, ID_M,
# ROGUE, TRCOUNT, and NA (the ops A holds).
trio() {
    need_trellisd
    ROGUE=$(helper rogue) || exit 99
    TRCOUNT=$(helper trcount) || exit 99
    ID_M=$("$ROGUE" id "$SEED_M")
    agent_start A
    agent_start C
    link A C
    init_crdt A ra
    ops_json 20 a | at A -C ra op import - --branch data >/dev/null || t_fail "import on A"
    cp -a ra rm
    at A repo add ra >/dev/null || t_fail "repo add"
    RID=$(repo_id A ra)
    at C clone "$RID" "$T_DIR/rc" --timeout 100 >/dev/null 2>&1
    NA=20
    converged "$NA" "C did not clone A's repository"
}

ops_json() { # N TAG
    awk -v n="$1" -v tag="$2" 'BEGIN { for (i = 1; i <= n; i++)
        printf "{\"kind\":\"field.set\",\"target\":\"e%d\",\"body\":{\"field\":\"f\",\"value\":\"%s-%d\"}}\n", i % 7, tag, i }'
}

converged() { # N MESSAGE: A and C both hold N ops (within 30 s)
    local r
    r=$("$TRCOUNT" --wait "$1" --timeout 30000 "$T_DIR/ra" "$T_DIR/rc") || t_fail "$2: $r (want $1)
$(agent_log_tail A)
$(agent_log_tail C)"
}

# A new op on A reaches C: the honest peer is still served.
still_flows() {
    at A -C ra op add --kind app.x --target "still-$NA" --branch data >/dev/null || t_fail "op add"
    NA=$((NA + 1))
    converged "$NA" "C no longer gets A's writes"
}

rogue() { # ARGS... → OUT: the rogue's JSON summary
    local out
    out=$("$ROGUE" run "$@" 2>"$T_DIR/rogue.err") || t_fail "rogue failed: $(cat "$T_DIR/rogue.err")"
    OUT=$out
}
jf() { echo "$OUT" | jq -r "$1"; }

untrusted_key_gets_nothing() {
    trio
    rogue --seed "$SEED_U" --repo rm "$EP_A" "$ID_A" sync:3000 want:data quiet:1000
    assert_ne "$(jf .handshake)" ok "handshake of an untrusted key"
    assert_eq "$(jf .frames_in)" 0 "frames an untrusted key received"
    # A recorded the knock (by its CURVE key: the peer id is not known yet)
    t_run at A peers --json
    assert_eq "$(echo "$OUT" | jq '[.[] | select(.source == "knock" and (.trusted | not))] | length')" 1 "knocks"
    still_flows
}

plaintext_client_gets_nothing() {
    trio
    rogue --plain --repo rm "$EP_A" "$ID_A" sync:2000 want:data quiet:1000
    assert_ne "$(jf .handshake)" ok "handshake without CURVE"
    assert_eq "$(jf .frames_in)" 0 "frames a plaintext client received"
    still_flows
}

wrong_server_key_fails() {
    trio
    at A peer trust "$ID_M" >/dev/null || t_fail "trust M" # only the server key is wrong
    rogue --seed "$SEED_M" --server-key "$ID_C" --repo rm "$EP_A" "$ID_A" sync:2000 quiet:1000
    assert_ne "$(jf .handshake)" ok "handshake with the wrong server key"
    assert_eq "$(jf .frames_in)" 0 "frames received with the wrong server key"
    # the same client with the right key gets in: the test is not vacuous
    rogue --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:3000
    assert_eq "$(jf .handshake)" ok "handshake with the right key"
    assert_ne "$(jf .in.hello)" 0 "hello from A"
    still_flows
}

replayed_frames_drop_the_peer() {
    trio
    ops_json 30 b | at A -C ra op import - --branch data >/dev/null || t_fail "import on A"
    NA=50
    converged "$NA" "C did not get the new ops"
    at A peer trust "$ID_M" >/dev/null || t_fail "trust M"
    # a normal sync (M pulls A's 30 new ops), then every frame M sent again
    rogue --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:8000 replay run:1000 want:data quiet:2000
    assert_eq "$(jf .handshake)" ok "handshake"
    assert_eq "$(jf .received_ops)" 30 "ops M pulled before the replay"
    assert_eq "$(jf '[.nacks[] | select(.reason == "protocol")] | length')" 1 "nack protocol for the replay"
    assert_eq "$(jf .probe_frames)" 0 "answers to a want after the drop"
    assert_eq "$(jf .quiet_frames)" 0 "frames after the drop"
    assert_contains "$(cat "$T_DIR/A.log")" "dropping peer $("$ROGUE" id "$SEED_M" | cut -c1-4)" "A's log"
    # dropped means banned for a while: a new connection gets nothing either
    rogue --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:2000 want:data quiet:1000
    assert_eq "$(jf .frames_in)" 0 "frames for a banned peer"
    still_flows
}

hello_name_is_not_identity() {
    trio
    at A peer trust "$ID_M" >/dev/null || t_fail "trust M"
    local key_c
    key_c=$(at A peers --json | jq -r --arg id "$ID_C" '.[] | select(.id == $id) | .key')
    rogue --seed "$SEED_M" --name C --repo rm "$EP_A" "$ID_A" sync:3000 hello:"$ID_C" run:1000 want:data quiet:1500
    assert_eq "$(jf .handshake)" ok "handshake"
    assert_ne "$(jf .probe_frames)" 0 "A still answers M (a hello is no violation)"
    t_run at A peers --json
    assert_eq "$(echo "$OUT" | jq --arg id "$ID_C" '[.[] | select(.id == $id)] | length')" 1 "peers with C's id"
    assert_eq "$(echo "$OUT" | jq -r --arg id "$ID_C" '.[] | select(.id == $id) | .name')" C "C's name"
    assert_eq "$(echo "$OUT" | jq -r --arg id "$ID_C" '.[] | select(.id == $id) | .key')" "$key_c" "C's key"
    assert_eq "$(echo "$OUT" | jq -r --arg id "$ID_M" '.[] | select(.id == $id) | .trusted')" true "M is still M"
    # the events of M's session carry M's id, whatever name it claimed
    t_run at A events --json
    assert_ne "$(echo "$OUT" | jq --arg id "$ID_M" '[.[] | select(.peer == $id and .type == "peer.connected")] | length')" 0 "events in M's name"
    still_flows
}

forged_ops_refused() {
    trio
    at A peer trust "$ID_M" >/dev/null || t_fail "trust M"
    at C -C rc op add --kind app.x --target from-c --branch data >/dev/null || t_fail "op add on C"
    NA=21
    converged "$NA" "A did not get C's op"
    # ops in C's name and in A's own name, signed by M; then unsigned ones
    rogue --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:4000 \
        forge:"$ID_C":data:3 run:1500 forge:"$ID_A":data:2 run:1500 \
        forge:"$ID_C":data:2:unsigned run:1500 want:data quiet:1500
    assert_eq "$(jf .forged_sent)" 7 "forged ops sent"
    echo "# A answered the three forgeries with: $(jf '[.nacks[] | .reason] | join(",")')"
    assert_eq "$(jf '[.nacks[] | select(.reason == "signature" or .reason == "unsigned")] | length')" 3 "nacks (one per forged frame)"
    assert_ne "$(jf .probe_frames)" 0 "A still serves M (a refused op is no violation)"
    assert_eq "$("$TRCOUNT" "$T_DIR/ra")" "$NA" "A's op count"
    t_run at A -C ra verify --json
    assert_eq "$(echo "$OUT" | jq -r .bad)" 0 "bad ops on A"
    t_run at A events --json
    assert_eq "$(echo "$OUT" | jq --arg id "$ID_M" '[.[] | select(.type == "op.refused" and .peer == $id)] | length')" 7 "op.refused events naming M"
    still_flows
}

altered_relay_refused() {
    trio
    at A peer trust "$ID_M" >/dev/null || t_fail "trust M"
    # V, an author A has never seen, writes 5 ops into a copy of the repository
    cp -a rm rv
    ops_json 5 v | TRELLIS_HOME=$T_DIR/V "$TRELLIS_BIN" -C rv op import - --branch data >/dev/null || t_fail "V's import"
    local mode
    for mode in keep-sig resign unsign; do
        rogue --seed "$SEED_M" --repo rv --alter "$mode" "$EP_A" "$ID_A" sync:4000 want:data quiet:1000
        assert_eq "$(jf .altered)" true "$mode: M altered an op"
        assert_ne "$(jf '.nacks | length')" 0 "$mode: A refused"
        assert_ne "$(jf .probe_frames)" 0 "$mode: A still serves M"
        assert_eq "$("$TRCOUNT" "$T_DIR/ra")" "$NA" "$mode: A's op count (nothing of V's)"
        echo "# $mode: A answered $(jf '[.nacks[].reason] | unique | join(",")')"
    done
    t_run at A -C ra verify --json
    assert_eq "$(echo "$OUT" | jq -r .bad)" 0 "bad ops on A"
    # the same ops relayed unaltered are V's genuine ops: A takes them and C
    # gets them from A (authenticity comes from the author's signature, not
    # from who relays)
    rogue --seed "$SEED_M" --repo rv "$EP_A" "$ID_A" sync:4000
    NA=$((NA + 5))
    converged "$NA" "V's genuine ops did not reach A and C"
    t_run at C -C rc verify --json
    assert_eq "$(echo "$OUT" | jq -r .bad)" 0 "bad ops on C"
    still_flows
}

flood_does_not_stall_others() {
    trio
    at A peer trust "$ID_M" >/dev/null || t_fail "trust M"
    local t0 ms pid_a fds0
    pid_a=$(agent_pid A)
    fds0=$(fds "$pid_a")
    # 1. a trusted peer floods valid haves while A writes 200 ops for C
    "$ROGUE" run --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:2000 haves:20000 run:500 \
        >"$T_DIR/flood1.json" 2>&1 &
    local fl=$!
    t0=$(now_ms)
    ops_json 200 f1 | at A -C ra op import - --branch data --batch 10 >/dev/null || t_fail "import"
    NA=$((NA + 200))
    converged "$NA" "C stalled during a flood of haves"
    ms=$(($(now_ms) - t0))
    wait $fl || t_fail "the flooding rogue failed: $(cat "$T_DIR/flood1.json")"
    figure have_flood_frames "$(jq -r .out.have "$T_DIR/flood1.json")" honest_peer_converged_ms "$ms"
    # 2. garbage and 4 MiB frames: the first drops the peer, the rest are ignored
    rogue --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:1000 garbage:200 big:8 run:500 quiet:1000
    assert_ne "$(jf '.nacks | length')" 0 "nack for the garbage"
    assert_eq "$(jf .quiet_frames)" 0 "frames after the garbage"
    still_flows
    # 3. 100 connections by an untrusted key, each refused by ZAP (and each
    #    a disconnect A probes its inbound sessions for), while C writes
    #    2,000 ops that A must take
    local args=() i
    for ((i = 0; i < 100; i++)); do args+=(run:30 reconnect); done
    "$ROGUE" run --seed "$SEED_U" "$EP_A" "$ID_A" "${args[@]}" >"$T_DIR/flood3.json" 2>&1 &
    fl=$!
    t0=$(now_ms)
    ops_json 2000 c | at C -C rc op import - --branch data >/dev/null || t_fail "import on C"
    NA=$((NA + 2000))
    converged "$NA" "A stalled receiving C's ops during a connection storm"
    ms=$(($(now_ms) - t0))
    wait $fl
    assert_eq "$(jq -r .frames_in "$T_DIR/flood3.json")" 0 "frames the untrusted storm received"
    figure storm_connections "$(jq -r .connects "$T_DIR/flood3.json")" honest_peer_converged_ms "$ms"
    sleep 1
    local fds1
    fds1=$(fds "$pid_a")
    echo "# A's open descriptors: $fds0 before the floods, $fds1 after"
    [ "$fds1" -le $((fds0 + 2)) ] || t_fail "A's descriptors grew from $fds0 to $fds1"
    still_flows
    agent_stop A || t_fail "A exited with $? after the floods
$(agent_log_tail A)"
}

# An untrusted host must not be able to get an honest peer dropped: A pulls
# 60,000 ops that C writes while a key nobody trusts connects 400 times (each
# refused by ZAP; each a disconnect on A's ROUTER).
storm_cannot_drop_honest_peer() {
    trio
    local args=() i t0 ms
    for ((i = 0; i < 400; i++)); do args+=(run:5 reconnect); done
    "$ROGUE" run --seed "$SEED_U" "$EP_A" "$ID_A" "${args[@]}" >"$T_DIR/storm.json" 2>&1 &
    local fl=$!
    t0=$(now_ms)
    ops_json 60000 s | at C -C rc op import - --branch data >/dev/null || t_fail "import on C"
    NA=$((NA + 60000))
    converged "$NA" "A did not get C's ops during the storm"
    ms=$(($(now_ms) - t0))
    wait $fl
    figure storm_connections "$(jq -r .connects "$T_DIR/storm.json")" ops 60000 converged_ms "$ms"
    assert_eq "$(jq -r .frames_in "$T_DIR/storm.json")" 0 "frames the storm received"
    ! grep -h "dropping peer" "$T_DIR/A.log" "$T_DIR/C.log" ||
        t_fail "an honest peer was dropped during an untrusted connection storm"
    still_flows
}

# The state a session keeps per (repository, branch) the peer names must
# not grow without bound: 100 haves, each naming 1,024 branches never named
# before (about 2 MB on the wire), may not cost A tens of megabytes.
session_state_bounded() {
    # ASan keeps freed memory in quarantine, which would count here: off for A.
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0" trio
    at A peer trust "$ID_M" >/dev/null || t_fail "trust M"
    local pid r0 r1 r2
    pid=$(agent_pid A)
    rogue --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:2000 run:500
    r0=$(rss_kb "$pid")
    rogue --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:2000 branches:100 run:1000 want:data quiet:1000
    r1=$(rss_kb "$pid")
    assert_ne "$(jf .probe_frames)" 0 "A still serves M"
    rogue --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:2000 branches:200 run:1000
    r2=$(rss_kb "$pid")
    figure branch_names 307200 rss_growth_kb_first_100_frames $((r1 - r0)) rss_growth_kb_next_200_frames $((r2 - r1))
    still_flows
    [ $((r1 - r0)) -lt 16384 ] ||
        t_fail "A's RSS grew by $((r1 - r0)) kB for 102,400 branch names a peer mentioned"
    [ $((r2 - r1)) -lt 8192 ] ||
        t_fail "A's RSS grew by another $((r2 - r1)) kB for 204,800 more branch names (state not bounded)"
}

# An untrusted host cycling through fresh keys: each knock is recorded for
# the user to decide, but the record of knocks must stay bounded.
knocks_bounded() {
    trio
    local args=() i n
    for ((i = 0; i < 300; i++)); do args+=(run:15 reconnect); done
    rogue --rotate "$EP_A" "$ID_A" "${args[@]}"
    assert_eq "$(jf .frames_in)" 0 "frames the knocking keys received"
    sleep 1
    n=$(at A peers --json | jq '[.[] | select(.source == "knock")] | length')
    figure knocking_keys 300 knocks_recorded "$n" log_lines "$(grep -c 'untrusted key knocked' "$T_DIR/A.log")"
    still_flows
    [ "$n" -le 256 ] || t_fail "A records $n knocks from 300 fresh keys (no bound on the knock table)"
}

secrets_never_leak() {
    trio
    at A peer trust "$ID_M" >/dev/null || t_fail "trust M"
    rogue --seed "$SEED_M" --repo rm "$EP_A" "$ID_A" sync:2000 forge:"$ID_C":data:1 run:1000
    still_flows
    local w all=$T_DIR/all-output
    : >"$all"
    for w in A C; do
        local r=ra
        [ $w = C ] && r=rc
        for cmd in "id" "id --json" "peers" "peers --json" "sync status --json" "repo list --json" \
            "log --branch data --json" "events --json" "verify --json" "conflicts --json" "show --json $(at A -C ra log --branch data --json | jq -r '.[0].hash')"; do
            # shellcheck disable=SC2086
            at $w -C "$r" $cmd >>"$all" 2>&1
        done
        cat "$T_DIR/$w.log" "$T_DIR/$w"/state/events.jsonl* "$T_DIR/$w"/config/agent.json >>"$all" 2>/dev/null
        cat "$T_DIR/$w"/state/trusted/* >>"$all" 2>/dev/null
    done
    cat "$T_DIR/rogue.err" >>"$all"
    [ "$(wc -c <"$all")" -gt 10000 ] || t_fail "too little output collected to be meaningful"
    for w in A C; do
        local key=$T_DIR/$w/config/identity.key form
        [ -f "$key" ] || t_fail "no identity.key for $w"
        while read -r form; do
            [ -n "$form" ] || continue
            if grep -qiF -- "$form" "$all"; then t_fail "$w's secret appears in an output (as ${form:0:6}…)"; fi
        done < <("$ROGUE" keyforms "$key")
        # the seed line of the key file, verbatim
        if grep -qF -- "$(grep ed25519-seed "$key")" "$all"; then t_fail "identity.key's line appears in an output"; fi
    done
    echo "# searched $(wc -c <"$all") bytes of logs, events and --json output for 7 forms of 2 secrets"
}

key_files_private() {
    need_trellisd
    local home=$T_DIR/k m
    # created 0600 (in a 0700 directory) even with a permissive umask
    (umask 000 && TRELLIS_HOME=$home "$TRELLIS_BIN" id >/dev/null) || t_fail "trellis id"
    assert_eq "$(stat -c %a "$home/config/identity.key")" 600 "identity.key mode"
    assert_eq "$(stat -c %a "$home/config")" 700 "config directory mode"
    # the agent creates its key the same way on first start, and writes
    # agent.json (names, endpoints, trust) 0600 too
    ROGUE=$(helper rogue) || exit 99
    umask 000
    agent_start K
    umask 022
    assert_eq "$(stat -c %a "$T_DIR/K/config/identity.key")" 600 "the agent's identity.key mode"
    at K peer add tcp://127.0.0.1:9 --key "$("$ROGUE" id "$SEED_U")" >/dev/null || t_fail "peer add"
    assert_eq "$(stat -c %a "$T_DIR/K/config/agent.json")" 600 "agent.json mode"
    assert_eq "$(stat -c %a "$T_DIR/K/run")" 700 "runtime directory mode"
    agent_stop K || t_fail "K exited with $?"
    # refused when group or others may read or write it, or when a symlink
    for m in 640 604 644 660 606 620; do
        chmod "$m" "$home/config/identity.key"
        t_run env TRELLIS_HOME="$home" "$TRELLIS_BIN" id
        assert_rc 1
        assert_contains "$ERR" "identity.key" "message for mode $m"
        t_run env TRELLIS_HOME="$home" timeout 20 "$TRELLISD" --listen tcp://127.0.0.1:0 --no-discovery
        assert_eq "$RC" 1 "trellisd's exit status with a mode $m key"
        assert_contains "$ERR" "identity.key" "trellisd's message for mode $m"
    done
    chmod 600 "$home/config/identity.key"
    mv "$home/config/identity.key" "$home/config/real.key"
    ln -s real.key "$home/config/identity.key"
    t_run env TRELLIS_HOME="$home" "$TRELLIS_BIN" id
    assert_rc 1
    rm "$home/config/identity.key"
    mv "$home/config/real.key" "$home/config/identity.key"
    t_run env TRELLIS_HOME="$home" "$TRELLIS_BIN" id
    assert_rc 0
}

# Another local user: made with useradd (root only), removed when the
# script ends ($$ is the script's pid in the case's subshell too).
OTHER=trchaos$$
trap 'userdel "$OTHER" >/dev/null 2>&1; agents_reap_all' EXIT
other_user() {
    [ "$(id -u)" = 0 ] || t_skip "not root: cannot create another user to test with"
    command -v useradd >/dev/null && command -v setpriv >/dev/null || t_skip "useradd or setpriv missing"
    id "$OTHER" >/dev/null 2>&1 || useradd -M -r -s /usr/sbin/nologin "$OTHER" 2>/dev/null ||
        t_skip "useradd failed"
}
as_other() { setpriv --reuid="$OTHER" --regid="$(id -g "$OTHER")" --clear-groups "$@"; }

control_socket_private() {
    need_trellisd
    other_user
    # A public directory (0755 all the way down) holds the agent's home, so
    # that only the agent's own modes stand between the other user and it.
    local pub ctl sock run
    pub=$(mktemp -d /tmp/trellis-chaos-pub.XXXXXX)
    chmod 755 "$pub" "$T_DIR" "$T_ROOT"
    ctl=$pub/ctlsend
    # shellcheck disable=SC2046
    cc -std=c11 -O1 -o "$ctl" "$top_lib/tests/cli/helpers/ctlsend.c" $(pkg-config --cflags --libs libzmq) ||
        t_fail "cannot build ctlsend"
    chmod 755 "$ctl"
    mkdir -p "$T_DIR/P"
    chmod 755 "$T_DIR/P"
    agent_start P
    run=$T_DIR/P/run sock=$T_DIR/P/run/control
    assert_eq "$(stat -c %a "$run")" 700 "runtime directory mode"
    assert_eq "$(stat -c %a "$sock")" 600 "control socket mode"
    # the owner talks to it
    t_run "$ctl" -t 2000 "ipc://$sock" '{"cmd":"ping"}'
    assert_rc 0
    assert_contains "$OUT" '"ok":true' "owner's reply"
    # the other user gets nothing: not through the directory...
    t_run as_other "$ctl" -t 1500 "ipc://$sock" '{"cmd":"ping"}'
    assert_ne "$RC" 0 "the other user's ctlsend status"
    assert_eq "$OUT" "" "reply to the other user"
    # ...nor if the directory were opened up: the socket itself is 0600
    chmod 755 "$run"
    t_run as_other "$ctl" -t 1500 "ipc://$sock" '{"cmd":"peer.trust","args":{"id":"'"$ID_P"'"}}'
    assert_ne "$RC" 0 "the other user's ctlsend status (open directory)"
    assert_eq "$OUT" "" "reply to the other user (open directory)"
    agent_stop P || t_fail "P exited with $?"
    # a runtime directory that another user owns is refused at start
    rm -rf "$run"
    mkdir "$run"
    chown "$OTHER" "$run"
    t_run env TRELLIS_HOME="$T_DIR/P" timeout 20 "$TRELLISD" --listen tcp://127.0.0.1:0 --no-discovery
    assert_eq "$RC" 1 "trellisd's exit status with another user's runtime directory"
    assert_contains "$ERR" "$run" "trellisd names the directory"
    # one of ours with a loose mode is made private again
    rm -rf "$run"
    mkdir -m 755 "$run"
    agent_start P
    assert_eq "$(stat -c %a "$run")" 700 "runtime directory mode after start"
    agent_stop P || t_fail "P exited with $?"
    rm -rf "$pub"
}

t_case untrusted_key_gets_nothing untrusted_key_gets_nothing
t_case plaintext_client_gets_nothing plaintext_client_gets_nothing
t_case wrong_server_key_fails wrong_server_key_fails
t_case replayed_frames_drop_the_peer replayed_frames_drop_the_peer
t_case hello_name_is_not_identity hello_name_is_not_identity
t_case forged_ops_refused forged_ops_refused
t_case altered_relay_refused altered_relay_refused
t_case flood_does_not_stall_others flood_does_not_stall_others
# Known failure, open in issue 8: an honest peer is dropped during an untrusted connection storm. Reported as skipped (never as
# passed) until fixed; TRELLIS_KNOWN_FAILURES=1 runs it.
if [ -n "${TRELLIS_KNOWN_FAILURES:-}" ]; then
    t_case storm_cannot_drop_honest_peer storm_cannot_drop_honest_peer
else
    t_case storm_cannot_drop_honest_peer t_skip "known failure (issue 8): an honest peer is dropped during an untrusted connection storm"
fi
t_case session_state_bounded session_state_bounded
t_case knocks_bounded knocks_bounded
t_case secrets_never_leak secrets_never_leak
t_case key_files_private key_files_private
t_case control_socket_private control_socket_private
t_done
