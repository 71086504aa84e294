#!/usr/bin/env bash
# Sync figures with real trellisd agents on loopback (CURVE on, durable
# LMDB commits); JSON lines on stdout, picked up by tests/bench/run.sh.
#
#   sync_bulk     BENCH_OPS (default 100000) small field ops written on A by
#                 `op import` (one signature per 1,000), then an empty B
#                 clones the repository: ops/s from the clone request until
#                 B holds every op (median of BENCH_RUNS, a fresh B each run);
#                 bytes on the wire per op; each agent's peak RSS.
#   sync_latency  BENCH_LAT_OPS (default 1000) single-op writes on A, each
#                 followed by the CLI's "changed" notice, timed until B's
#                 replica holds the op (tests/cli/helpers/synclat.c, so no
#                 process start is in the figure): p50/p99.
#   agent_idle    a fresh agent with 2 connected peers and 3 small
#                 repositories, left alone for BENCH_IDLE_SECS (default 30):
#                 RSS (and its anonymous part), CPU, context switches of all
#                 its threads per second.
#
# Bytes on the wire are the TCP payload bytes of every connection between
# the two agents, both ways, from the kernel's tcp_info (`ss -ti`): the
# ZMTP framing and CURVE boxes are included, TCP/IP headers are not.
set -eu
build=${TRELLIS_BUILD:-build/rel}
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
case $build in /*) ;; *) build=$top/$build ;; esac
trellis=$build/trellis
trellisd=$build/trellisd
n=${BENCH_OPS:-100000}
runs=${BENCH_RUNS:-3}
lat_n=${BENCH_LAT_OPS:-1000}
idle_secs=${BENCH_IDLE_SECS:-30}
dir=${BENCH_DIR:-/var/tmp/trellis-bench}/sync

if [ ! -x "$trellisd" ]; then
    echo "{\"bench\":\"sync\",\"skipped\":\"no trellisd at $trellisd\"}"
    exit 0
fi
for c in jq ss bc cc; do
    command -v "$c" >/dev/null || { echo "{\"bench\":\"sync\",\"skipped\":\"$c is not installed\"}"; exit 0; }
done

rm -rf "$dir"
mkdir -p "$dir"
pids=()
gone() { # PID: exited (or a zombie not yet reaped)
    local st
    st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 0
    [ "$st" = Z ]
}
cleanup() {
    local p i
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do
        for ((i = 0; i < 50; i++)); do gone "$p" && break; sleep 0.1; done
        gone "$p" || kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
unset XDG_CONFIG_HOME XDG_DATA_HOME XDG_STATE_HOME XDG_RUNTIME_DIR

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
at() { local who=$1; shift; TRELLIS_HOME=$dir/$who "$trellis" "$@"; }
fail() { # BENCH WHY
    echo "{\"bench\":\"$1\",\"error\":$(jq -Rn --arg w "$2" '$w')}"
}

# start NAME: trellisd in the background; sets PID_<NAME>, EP_<NAME>, ID_<NAME>.
start() {
    local name=$1 ep="" i
    mkdir -p "$dir/$name"
    TRELLIS_HOME=$dir/$name "$trellisd" --listen tcp://127.0.0.1:0 --no-discovery \
        >>"$dir/$name.log" 2>&1 &
    printf -v "PID_$name" '%s' $!
    pids+=($!)
    for ((i = 0; i < 100; i++)); do
        ep=$(at "$name" -C "$dir/$name" sync status --json 2>/dev/null | jq -r '.listen // empty') || true
        [ -n "$ep" ] && break
        sleep 0.1
    done
    [ -n "$ep" ] || return 1
    printf -v "EP_$name" '%s' "$ep"
    printf -v "ID_$name" '%s' "$(at "$name" id --json | jq -r .id)"
}

stop() { # NAME
    local pid=PID_$1
    kill -TERM "${!pid}" 2>/dev/null || true
    wait "${!pid}" 2>/dev/null || true
}

connected() { # A ID
    at "$1" peers --json 2>/dev/null | jq -e --arg id "$2" 'any(.[]; .id == $id and .connected)' >/dev/null
}

link() { # A B
    local a=$1 b=$2 ea=EP_$1 eb=EP_$2 ia=ID_$1 ib=ID_$2 i
    at "$a" peer add "${!eb}" --key "${!ib}" >/dev/null
    at "$b" peer add "${!ea}" --key "${!ia}" >/dev/null
    for ((i = 0; i < 150; i++)); do
        connected "$a" "${!ib}" && connected "$b" "${!ia}" && return 0
        sleep 0.1
    done
    return 1
}

ops_of() { at "$1" -C "$2" sync status --json | jq -r .ops; }

# Sum of TCP payload bytes (sent + received) over the client ends of every
# connection to the given ports; one line "local-endpoint bytes" each.
wire_bytes() { # PORT...
    local f="" p
    for p in "$@"; do f="$f${f:+ or }dport = :$p"; done
    ss -tinH state established "( $f )" | awk '
        /^[0-9]/ { key = $3; next }
        { a = 0; r = 0
          for (i = 1; i <= NF; i++) {
              if ($i ~ /^bytes_acked:/) { split($i, x, ":"); a = x[2] }
              if ($i ~ /^bytes_received:/) { split($i, x, ":"); r = x[2] }
          }
          print key, a + r }'
}

# Bytes moved since snapshot file $1 (connections that are new count fully).
wire_delta() { # BEFORE-FILE PORT...
    local before=$1
    shift
    wire_bytes "$@" | awk -v f="$before" '
        BEGIN { while ((getline l < f) > 0) { split(l, x, " "); b[x[1]] = x[2] } }
        { s += $2 - (($1 in b) ? b[$1] : 0) } END { print s + 0 }'
}

kb_of() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# ---- bulk ----------------------------------------------------------------
bulk() {
    start A || { fail sync_bulk "agent A did not start"; return; }
    at A init "$dir/ra" >/dev/null
    cat >"$dir/ra/.trellis/config.json" <<'EOF'
{ "version": 1, "branchPolicies": { "*": { "linear": false, "requireSigning": true } } }
EOF
    # small field ops: 5,000 entities, 7 fields, random 30-bit values (so
    # that compression cannot make the figure look better than real data)
    awk -v n="$n" 'BEGIN { srand(1); for (i = 0; i < n; i++)
        printf "{\"kind\":\"field.set\",\"target\":\"e%d\",\"body\":{\"field\":\"f%d\",\"value\":%d}}\n", int(rand() * 5000), int(rand() * 7), int(rand() * 1073741824) }' \
        >"$dir/ops.jsonl"
    at A -C "$dir/ra" op import --branch notes "$dir/ops.jsonl" >/dev/null
    at A repo add "$dir/ra" >/dev/null
    local id rates=() bytes=() rss_b=() t0 t1 r got pa pb
    id=$(at A -C "$dir/ra" sync status --json | jq -r .repo)
    pa=${EP_A##*:}
    for r in $(seq "$runs"); do
        rm -rf "$dir/B" "$dir/rb"
        start B || { fail sync_bulk "agent B did not start"; return; }
        link A B || { fail sync_bulk "A and B did not connect"; return; }
        pb=${EP_B##*:}
        wire_bytes "$pa" "$pb" >"$dir/wire.before"
        t0=$(now)
        if ! at B clone "$id" "$dir/rb" --timeout 600000 >/dev/null; then
            fail sync_bulk "clone failed: $(tail -n 3 "$dir/B.log" | tr '\n' ' ')"
            return
        fi
        while got=$(ops_of B "$dir/rb") && [ "$got" -lt "$n" ]; do
            [ "$(echo "$(now) - $t0 > 600" | bc)" = 1 ] && { fail sync_bulk "B holds $got of $n ops after 600 s"; return; }
            sleep 0.01
        done
        t1=$(now)
        rates+=("$(echo "$n / ($t1 - $t0)" | bc -l)")
        bytes+=("$(echo "$(wire_delta "$dir/wire.before" "$pa" "$pb") / $n" | bc -l)")
        rss_b+=("$(kb_of "$PID_B" VmHWM)")
        stop B
        at A peer untrust "$ID_B" >/dev/null # this B is gone for good
    done
    printf '{"bench":"sync_bulk","ops":%d,"runs":%d,"ops_per_s":%.0f,"target":200000,"wire_bytes_per_op":%.1f,"target_bytes_per_op":40,"wire_source":"tcp_info","rss_peak_kb_a":%d,"rss_peak_kb_b":%d,"rss_note":"peak RSS includes the mapped LMDB pages","target_rss_kb":65536}\n' \
        "$n" "$runs" "$(printf '%s\n' "${rates[@]}" | median)" \
        "$(printf '%s\n' "${bytes[@]}" | median)" "$(kb_of "$PID_A" VmHWM)" \
        "$(printf '%s\n' "${rss_b[@]}" | sort -n | tail -n 1)"
}

# ---- latency -------------------------------------------------------------
latency() {
    local helper=$dir/synclat
    if ! cc -std=c11 -D_GNU_SOURCE -O2 -o "$helper" "$top/tests/cli/helpers/synclat.c" \
        "$build/libtrellis.a" $(pkg-config --cflags --libs libzmq libczmq libsodium msgpack lmdb avahi-client jansson libzstd) \
        -lpthread -lm 2>"$dir/synclat.err"; then
        fail sync_latency "cannot build the synclat helper: $(head -c 300 "$dir/synclat.err")"
        return
    fi
    rm -rf "$dir/B" "$dir/rb"
    start B || { fail sync_latency "agent B did not start"; return; }
    link A B || { fail sync_latency "A and B did not connect"; return; }
    local id
    id=$(at A -C "$dir/ra" sync status --json | jq -r .repo)
    at B clone "$id" "$dir/rb" --timeout 600000 >/dev/null || { fail sync_latency "clone failed"; return; }
    TRELLIS_HOME=$dir/A "$helper" "$lat_n" "$dir/ra" "$dir/A/run/control" "$dir/rb" notes \
        >"$dir/lat.txt" 2>"$dir/lat.err" || { fail sync_latency "$(cat "$dir/lat.err")"; return; }
    local timeouts
    timeouts=$(grep -c timeout "$dir/lat.txt" || true)
    grep -v timeout "$dir/lat.txt" | sort -n >"$dir/lat.sorted"
    awk -v n="$lat_n" -v to="$timeouts" '
        { a[NR] = $1 }
        END { if (NR == 0) { printf "{\"bench\":\"sync_latency\",\"writes\":%d,\"timeouts\":%d,\"error\":\"no write arrived\"}\n", n, to; exit }
              p50 = a[int((NR + 1) * 0.50)]; i = int(NR * 0.99 + 0.5); if (i < 1) i = 1; p99 = a[i]
              printf "{\"bench\":\"sync_latency\",\"writes\":%d,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"timeouts\":%d,\"target_p50_ms\":5,\"target_p99_ms\":20}\n",
                     n, p50 / 1000, p99 / 1000, a[NR] / 1000, to }' "$dir/lat.sorted"
}

# ---- idle ----------------------------------------------------------------
# Context switches of every thread of PID (ZeroMQ's I/O threads included).
wakeups() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '$1 ~ /ctxt_switches:$/ { s += $2 } END { print s + 0 }'
}

# Fresh agents, so that the bulk run's mapped store is not in the figure: I
# serves its default repository and two small ones, and is linked to J and K.
idle() {
    local a
    for a in I J K; do start $a || { fail agent_idle "agent $a did not start"; return; }; done
    link I J || { fail agent_idle "I and J did not connect"; return; }
    link I K || { fail agent_idle "I and K did not connect"; return; }
    for a in r1 r2; do
        at I init "$dir/idle-$a" >/dev/null
        at I -C "$dir/idle-$a" op add --kind app.note --target t --branch notes >/dev/null
        at I repo add "$dir/idle-$a" >/dev/null
    done
    local nrepos npeers
    nrepos=$(at I repo list --json | jq length)
    npeers=$(at I peers --json | jq '[.[] | select(.connected)] | length')
    sleep 2 # let the hellos and haves settle
    local pid=$PID_I t0 t1 c0 c1 w0 w1 tck
    tck=$(getconf CLK_TCK)
    c0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    w0=$(wakeups "$pid")
    t0=$(now)
    sleep "$idle_secs"
    t1=$(now)
    c1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
    w1=$(wakeups "$pid")
    printf '{"bench":"agent_idle","peers":%d,"repos":%d,"secs":%.0f,"rss_kb":%d,"rss_anon_kb":%d,"cpu_pct":%.3f,"wakeups_per_s":%.1f,"target_rss_kb":10240,"target_cpu_pct":0.1}\n' \
        "$npeers" "$nrepos" "$(echo "$t1 - $t0" | bc -l)" "$(kb_of "$pid" VmRSS)" \
        "$(kb_of "$pid" RssAnon)" "$(echo "($c1 - $c0) / $tck / ($t1 - $t0) * 100" | bc -l)" \
        "$(echo "($w1 - $w0) / ($t1 - $t0)" | bc -l)"
}

bulk
latency
idle
