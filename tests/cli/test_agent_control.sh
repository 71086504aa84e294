#!/usr/bin/env bash
# The control socket with a real trellisd: exit 3 without an agent, repo
# add/list/rm, bad requests, sync status's agent part, SIGTERM.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/agentlib.sh"

# A helper that sends raw bytes to a ZeroMQ endpoint (tests/cli/helpers).
CTLSEND=$T_ROOT/ctlsend
cc -std=c11 -O1 -o "$CTLSEND" "$here_lib/helpers/ctlsend.c" \
    $(pkg-config --cflags --libs libzmq) >"$T_ROOT/ctlsend.log" 2>&1 || CTLSEND=

KEY=$(printf '%064d' 0 | tr 0 1) # a syntactically valid key (64 hex digits)
REPO=0123456789abcdef0123456789abcdef

no_agent_exit_3() {
    need jq
    trellis init r >/dev/null || t_fail init
    local c
    for c in "repo add r" "repo list" "repo list --json" "repo rm r" "peers" "peers --json" \
        "peer add tcp://127.0.0.1:9 --key $KEY" "peer trust $KEY" "peer untrust $KEY" \
        "clone $REPO" "clone $REPO dir" "sync now" "sync now --json"; do
        # shellcheck disable=SC2086
        t_run trellis $c
        assert_rc 3
        assert_match "$ERR" "^trellis: [a-z]+( [a-z]+)?: the agent is not running" "stderr of '$c'"
        assert_contains "$ERR" "the agent is not running (no control socket at $TRELLIS_HOME/run/control); start it with 'trellisd'" "stderr of '$c'"
        assert_eq "$OUT" "" "stdout of '$c'"
    done
    t_run trellis repo list
    assert_eq "$ERR" "trellis: repo list: the agent is not running (no control socket at $TRELLIS_HOME/run/control); start it with 'trellisd'" "message"
    # the local commands do not need it: status says so and succeeds, a write
    # does not wait for it
    t_run trellis -C r sync status
    assert_rc 0
    assert_contains "$OUT" "agent: not running" "status text"
    t_run trellis -C r sync status --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r 'keys_unsorted | join(",")')" "repo,ops,head,branches" "offline keys"
    t_run trellis -C r op add --kind app.x --target t
    assert_rc 0
    # outside a repository, with no agent, status fails as before
    mkdir plain
    t_run trellis -C plain sync status
    assert_rc 1
}

stale_socket_exit_3() {
    [ -n "$CTLSEND" ] || t_fail "cannot build the ctlsend helper: $(cat "$T_ROOT/ctlsend.log")"
    mkdir -p "$TRELLIS_HOME/run"
    "$CTLSEND" --stale "$TRELLIS_HOME/run/control" || t_fail "cannot make a stale socket"
    local t0=$SECONDS
    t_run trellis peers
    assert_rc 3
    assert_contains "$ERR" "the agent is not running (nothing listens on the control socket"
    [ $((SECONDS - t0)) -le 2 ] || t_fail "a stale socket took $((SECONDS - t0))s to detect"
    trellis init r >/dev/null || t_fail init
    t_run trellis -C r op add --kind app.x --target t
    assert_rc 0
    t_run trellis -C r sync status
    assert_rc 0
    assert_contains "$OUT" "agent: not running"
}

usage_of_agent_commands() {
    local c
    for c in "repo" "repo frob" "repo add" "repo add a b" "repo list x" "repo rm" "peers x" \
        "peer" "peer add" "peer add tcp://h:1" "peer add host:1 --key $KEY" \
        "peer add tcp://h:1 --key nope" "peer trust" "peer trust nope" "peer untrust a b" \
        "clone" "clone xyz" "clone $REPO a b" "clone --timeout 5 $REPO" "sync now x" \
        "sync now --timeout" "sync now --timeout 0"; do
        # shellcheck disable=SC2086
        t_run trellis $c
        assert_rc 2
        assert_match "$ERR" "^trellis" "stderr of '$c'"
        assert_eq "$OUT" "" "stdout of '$c'"
    done
    for c in "repo" "repo add" "repo list" "repo rm" "peers" "peer" "peer add" "peer trust" \
        "peer untrust" "clone" "sync now"; do
        # shellcheck disable=SC2086
        t_run trellis $c --help
        assert_rc 0
        assert_contains "$OUT" "Usage: trellis ${c%% *}" "$c --help"
        assert_contains "$OUT" "Exit status" "$c --help"
        assert_contains "$OUT" "3 " "$c --help names exit 3"
    done
    t_run trellis --help
    for c in "repo add" "repo list" "repo rm" "peers" "peer add" "peer trust" "peer untrust" \
        "clone" "sync now"; do
        assert_contains "$OUT" "  $c " "command list"
    done
}

repo_round_trip() {
    need_trellisd
    agent_start A
    at A init r >/dev/null || t_fail init
    local id
    id=$(repo_id A r)
    t_run at A repo list --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -c '[.[] | .default]')" "[true]" "only the default repo"
    assert_eq "$(echo "$OUT" | jq -r '.[0] | keys | join(",")')" "default,ops,path,repo" "repo object"
    # relative paths are made absolute by the CLI
    t_run at A repo add r --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r .repo)" "$id" "added id"
    assert_eq "$(echo "$OUT" | jq -r .path)" "$T_DIR/r" "added path"
    t_run at A repo add r
    assert_ne "$RC" 0 "adding twice"
    t_run at A repo list --json
    assert_eq "$(echo "$OUT" | jq length)" 2 "listed"
    assert_eq "$(echo "$OUT" | jq -r --arg p "$T_DIR/r" '.[] | select(.path == $p) | .repo')" "$id" "listed id"
    t_run at A repo list
    assert_rc 0
    assert_contains "$OUT" "$id" "list text"
    assert_contains "$OUT" "(default)" "list text"
    # sync status inside it: the agent's part
    at A -C r op add --kind app.x --target t >/dev/null || t_fail "op add"
    t_run at A -C r sync status --json
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r .listen)" "$EP_A" "listen"
    assert_eq "$(echo "$OUT" | jq -r .served)" true "served"
    assert_eq "$(echo "$OUT" | jq -c .peers)" "[]" "peers"
    t_run at A -C r sync status
    assert_contains "$OUT" "agent     listening on $EP_A; serves this repository" "status text"
    # persisted: a restarted agent serves it again
    agent_stop A || t_fail "trellisd exited with $?"
    agent_start A
    t_run at A repo list --json
    assert_eq "$(echo "$OUT" | jq -r --arg p "$T_DIR/r" '.[] | select(.path == $p) | .ops')" 1 "after restart"
    # rm, by a relative path again
    (cd r && at A repo rm .) >/dev/null || t_fail "repo rm ."
    t_run at A repo list --json
    assert_eq "$(echo "$OUT" | jq length)" 1 "removed"
    t_run at A -C r sync status --json
    assert_eq "$(echo "$OUT" | jq -r .served)" false "not served"
    t_run at A repo rm r
    assert_rc 1
    # bad paths: an error reply, exit 1, the agent goes on
    mkdir plain
    t_run at A repo add plain
    assert_rc 1
    assert_contains "$ERR" "trellis: repo add: $T_DIR/plain is not a trellis repository" "not a repo"
    t_run at A repo add /nonexistent/x
    assert_rc 1
    assert_match "$ERR" "^trellis: repo add: .*nonexistent" "missing path"
    # the default repository stays
    t_run at A repo rm "$T_DIR/A/data/default"
    assert_ne "$RC" 0 "removing the default"
    assert_contains "$ERR" "default" "removing the default"
    t_run at A repo list --json
    assert_eq "$(echo "$OUT" | jq length)" 1 "default still served"
}

garbage_requests() {
    need_trellisd
    [ -n "$CTLSEND" ] || t_fail "cannot build the ctlsend helper: $(cat "$T_ROOT/ctlsend.log")"
    agent_start A
    local ep="ipc://$T_DIR/A/run/control" f
    for f in "not json" "[1,2]" '"a string"' '{"cmd":5}' '{"args":{}}' '{"cmd":"frob"}' \
        '{"cmd":"repo.add","args":[1]}' '{"cmd":"repo.add","args":{"path":7}}' \
        '{"cmd":"peer.add","args":{"endpoint":"tcp://x:1","key":"zz"}}' \
        '{"cmd":"clone","args":{"repo":"xyz","path":"/tmp/x"}}' \
        '{"cmd":"peer.trust","args":{}}' '{"cmd":"a","cmd":"b"}' '%00ff00fe' '@66000' ''; do
        t_run "$CTLSEND" -t 3000 "$ep" "$f"
        assert_rc 0
        assert_eq "$(echo "$OUT" | jq -r .ok)" false "ok for '${f:0:40}'"
        assert_match "$(echo "$OUT" | jq -r .error.code)" '^[a-z]+$' "code for '${f:0:40}'"
    done
    t_run "$CTLSEND" "$ep" '{"cmd":"ping"}' 'second part'
    assert_eq "$(echo "$OUT" | jq -r .error.code)" invalid "two parts"
    # a message beyond the socket's size limit may be dropped unanswered;
    # either way the agent must still answer afterwards
    "$CTLSEND" -t 500 "$ep" '@200000' >/dev/null
    t_run "$CTLSEND" "$ep" '{"cmd":"ping"}'
    assert_rc 0
    assert_eq "$(echo "$OUT" | jq -r .ok)" true "ping ok"
    assert_eq "$(echo "$OUT" | jq -r .result.pid)" "$(agent_pid A)" "ping pid"
    assert_eq "$(echo "$OUT" | jq -r .result.listen)" "$EP_A" "ping listen"
    t_run at A repo list
    assert_rc 0
    agent_stop A || t_fail "trellisd exited with $? after the garbage"
}

sigterm_clean_exit() {
    need_trellisd
    agent_start A
    [ -S "$T_DIR/A/run/control" ] || t_fail "no control socket"
    local rc=0
    agent_stop A || rc=$?
    assert_eq "$rc" 0 "exit status on SIGTERM"
    [ ! -e "$T_DIR/A/run/control" ] || t_fail "the control socket is left behind"
    t_run at A peers
    assert_rc 3
    # SIGINT too, and a second agent on the same home is refused
    agent_start A
    t_run env TRELLIS_HOME="$T_DIR/A" timeout 10 "$TRELLISD" --listen tcp://127.0.0.1:0 --no-discovery
    assert_ne "$RC" 0 "a second agent for one home"
    assert_ne "$RC" 124 "a second agent for one home must not hang"
    t_run at A repo list
    assert_rc 0
    rc=0
    agent_stop A INT || rc=$?
    assert_eq "$rc" 0 "exit status on SIGINT"
    [ ! -e "$T_DIR/A/run/control" ] || t_fail "the control socket is left behind after SIGINT"
}

t_case no_agent_exit_3 no_agent_exit_3
t_case stale_socket_exit_3 stale_socket_exit_3
t_case usage_of_agent_commands usage_of_agent_commands
t_case repo_round_trip repo_round_trip
t_case garbage_requests garbage_requests
t_case sigterm_clean_exit sigterm_clean_exit
t_done
