# agentlib.sh — helpers for the tests that run real trellisd agents
# (sourced by tests/cli/test_agent_*.sh after lib.sh).
#
#   need_trellisd           skips the case unless the daemon binary exists
#   agent_start NAME [ARGS] starts trellisd -v with TRELLIS_HOME=$T_DIR/NAME on
#                           $AGENT_LISTEN (default tcp://127.0.0.1:0) without
#                           discovery (log in $T_DIR/NAME.log), waits until it
#                           answers and sets EP_<NAME> (its endpoint) and
#                           ID_<NAME> (its peer id)
#   agent_stop NAME [SIG]   SIGTERM (or SIG), waits (bounded); returns
#                           trellisd's exit status
#   agent_kill NAME         SIGKILL (a crash), waits
#   at NAME ARGS...         runs trellis as agent NAME's user
#   link A B                A and B add each other as static peers and wait
#                           until both see the other connected
#   wait_for SECS CMD...    polls CMD every 0.1 s until it succeeds (status 1
#                           when SECS ran out)
#   connected A ID          true when agent A has peer ID connected
#   two_agents_serving      agents A and B started and linked, A serving a new
#                           CRDT repository ./ra whose id is in RID
#   ops_of NAME PATH        op count of the repository at PATH
#   repo_id NAME PATH       its repository id
#
# Every agent a case starts is killed when the case ends, however it ends
# (a failed assertion, a timeout of the whole script).

TRELLISD=${TRELLISD:-$(dirname "$TRELLIS_BIN")/trellisd}
case $TRELLISD in /*) ;; *) TRELLISD=$top_lib/$TRELLISD ;; esac
AGENT_WAIT=${AGENT_WAIT:-15} # seconds for an agent to start or peers to connect

# The whole script: kill the agents of every case on the way out.
agents_reap_all() {
    local f
    for f in "$T_ROOT"/*/.agent.*.pid; do
        [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
    done
    rm -rf "$T_ROOT"
}
trap agents_reap_all EXIT
trap 'exit 143' TERM INT

need_trellisd() {
    need jq
    [ -x "$TRELLISD" ] || t_skip "no trellisd at $TRELLISD (it links once agent/daemon/main.c exists; run 'make san')"
}

at() {
    local who=$1
    shift
    TRELLIS_HOME=$T_DIR/$who "$TRELLIS_BIN" "$@"
}

# True once process PID has exited (gone, or a zombie not yet reaped).
agent_gone() {
    local st
    st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 0
    [ "$st" = Z ]
}

# Kills whatever agents this case still runs (its EXIT trap).
agents_cleanup() {
    local f pid
    for f in "$T_DIR"/.agent.*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null
    done
    for f in "$T_DIR"/.agent.*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        for _ in $(seq 30); do agent_gone "$pid" && break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        rm -f "$f"
    done
}

wait_for() {
    local secs=$1 i
    shift
    for ((i = 0; i < secs * 10; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# The agent's listen endpoint once it answers on its control socket.
agent_listen() {
    local l
    l=$(at "$1" -C "$T_DIR/$1" sync status --json 2>/dev/null | jq -r '.listen // empty' 2>/dev/null)
    [ -n "$l" ] && echo "$l"
}

agent_log_tail() {
    echo "--- last lines of $1's log:"
    tail -n 30 "$T_DIR/$1.log" 2>/dev/null
}

agent_start() {
    local name=$1 ep pid
    shift
    mkdir -p "$T_DIR/$name"
    trap agents_cleanup EXIT
    TRELLIS_HOME=$T_DIR/$name "$TRELLISD" --listen "${AGENT_LISTEN:-tcp://127.0.0.1:0}" --no-discovery -v "$@" \
        >>"$T_DIR/$name.log" 2>&1 &
    pid=$!
    echo "$pid" >"$T_DIR/.agent.$name.pid"
    local i
    for ((i = 0; i < AGENT_WAIT * 10; i++)); do
        if agent_gone "$pid"; then
            rm -f "$T_DIR/.agent.$name.pid"
            wait "$pid"
            t_fail "trellisd $name exited with status $? at start
$(agent_log_tail "$name")"
        fi
        ep=$(agent_listen "$name") && break
        sleep 0.1
    done
    [ -n "${ep:-}" ] || t_fail "trellisd $name did not answer within ${AGENT_WAIT}s
$(agent_log_tail "$name")"
    # (a dual-stack socket reports the IPv4-mapped form of 127.0.0.1)
    [[ $ep =~ ^tcp://(127\.0\.0\.1|\[::ffff:127\.0\.0\.1\]):[1-9][0-9]*$ ]] ||
        t_fail "$name listens on '$ep', not an ephemeral loopback port"
    printf -v "EP_$name" '%s' "$ep"
    printf -v "ID_$name" '%s' "$(at "$name" id --json | jq -r .id)"
}

agent_pid() { cat "$T_DIR/.agent.$1.pid" 2>/dev/null; }

agent_stop() { # NAME [SIGNAL]
    local pid i rc=0
    pid=$(agent_pid "$1") || t_fail "agent $1 is not running"
    kill -"${2:-TERM}" "$pid"
    for ((i = 0; i < AGENT_WAIT * 10; i++)); do
        agent_gone "$pid" && break
        sleep 0.1
    done
    if ! agent_gone "$pid"; then
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        rm -f "$T_DIR/.agent.$1.pid"
        t_fail "trellisd $1 did not exit within ${AGENT_WAIT}s of SIG${2:-TERM}
$(agent_log_tail "$1")"
    fi
    wait "$pid" || rc=$?
    rm -f "$T_DIR/.agent.$1.pid"
    return $rc
}

agent_kill() {
    local pid
    pid=$(agent_pid "$1") || return 0
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rm -f "$T_DIR/.agent.$1.pid"
}

connected() { # A ID
    at "$1" peers --json 2>/dev/null |
        jq -e --arg id "$2" 'any(.[]; .id == $id and .connected)' >/dev/null 2>&1
}

link() { # A B: mutual static peers, connected both ways
    local a=$1 b=$2 ea eb ia ib
    ea=EP_$a eb=EP_$b ia=ID_$a ib=ID_$b
    at "$a" peer add "${!eb}" --key "${!ib}" --name "$b" >/dev/null || t_fail "$a: peer add $b"
    at "$b" peer add "${!ea}" --key "${!ia}" --name "$a" >/dev/null || t_fail "$b: peer add $a"
    wait_for "$AGENT_WAIT" connected "$a" "${!ib}" || t_fail "$a never saw $b connected
$(agent_log_tail "$a")"
    wait_for "$AGENT_WAIT" connected "$b" "${!ia}" || t_fail "$b never saw $a connected
$(agent_log_tail "$b")"
}

ops_of() { # NAME PATH
    at "$1" -C "$2" sync status --json | jq -r .ops
}

repo_id() { # NAME PATH
    at "$1" -C "$2" sync status --json | jq -r .repo
}

# The sorted hashes of every op of every branch of the repository at PATH.
hashes_of() { # NAME PATH
    local b
    for b in $(at "$1" -C "$2" sync status --json | jq -r '.branches[].name'); do
        at "$1" -C "$2" log --branch "$b" --json | jq -r '.[].hash'
    done | sort
}

# Makes a repository whose every branch (main too) is CRDT.
init_crdt_repo() { # NAME PATH
    at "$1" init "$2" >/dev/null || t_fail "init $2"
    cat >"$2/.trellis/config.json" <<'EOF'
{
  "version": 1,
  "branchPolicies": {
    "*": { "linear": false, "requireSigning": true }
  }
}
EOF
}

two_agents_serving() {
    agent_start A
    agent_start B
    link A B
    init_crdt_repo A ra
    at A repo add ra >/dev/null || t_fail "repo add"
    RID=$(repo_id A ra)
}
