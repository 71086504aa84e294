#!/usr/bin/env bash
# CLI figures on real repositories: `op import` (batches of 1,000, durable),
# single `op add`, `verify` of the imported chain-signed log, and opening the
# repo for `sync status`. Medians of BENCH_RUNS runs; JSON lines on stdout.
set -eu
trellis=$TRELLIS_BUILD/trellis
n=${BENCH_OPS:-1000000}
runs=${BENCH_RUNS:-3}
dir=${BENCH_DIR:-/var/tmp/trellis-bench}
rm -rf "$dir"; mkdir -p "$dir"
trap 'rm -rf "$dir"' EXIT
export TRELLIS_HOME=$dir/home

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }

# ~100-byte bodies: {"field":"f<k>","value":"<80 chars>"}. The log path is
# measured with application ops (stored and synced, never materialized);
# cli_op_import_materialized repeats it with field.set ops, which also
# update the materialized state in the same transactions.
pad=$(printf 'v%.0s' $(seq 80))
gen() { # $1 = kind, $2 = extra body members
    awk -v n="$n" -v pad="$pad" -v kind="$1" -v extra="$2" 'BEGIN { for (i = 0; i < n; i++)
        printf "{\"kind\":\"%s\",\"target\":\"e%d\",\"body\":{\"field\":\"f%d\",%s\"value\":\"%s\"}}\n", kind, i % 5000, i % 7, extra, pad }'
}
gen app.note "" > "$dir/ops.jsonl"
gen field.set '\"pred\":[],' > "$dir/fields.jsonl"

rates=()
for r in $(seq "$runs"); do
    rm -rf "$dir/repo"; "$trellis" init "$dir/repo" >/dev/null
    t0=$(now); "$trellis" -C "$dir/repo" op import "$dir/ops.jsonl" >/dev/null; t1=$(now)
    rates+=("$(echo "$n / ($t1 - $t0)" | bc -l)")
done
printf '{"bench":"cli_op_import","ops":%d,"batch":1000,"runs":%d,"ops_per_s":%.0f,"target":250000}\n' \
    "$n" "$runs" "$(printf '%s\n' "${rates[@]}" | median)"

rates=()
for r in $(seq "$runs"); do
    rm -rf "$dir/mrepo"; "$trellis" init "$dir/mrepo" >/dev/null
    t0=$(now); "$trellis" -C "$dir/mrepo" op import "$dir/fields.jsonl" >/dev/null; t1=$(now)
    rates+=("$(echo "$n / ($t1 - $t0)" | bc -l)")
done
rm -rf "$dir/mrepo"
printf '{"bench":"cli_op_import_materialized","ops":%d,"batch":1000,"entities":5000,"runs":%d,"ops_per_s":%.0f}\n' \
    "$n" "$runs" "$(printf '%s\n' "${rates[@]}" | median)"

rates=()
for r in $(seq "$runs"); do
    t0=$(now); "$trellis" -C "$dir/repo" verify >/dev/null; t1=$(now)
    rates+=("$(echo "$n / ($t1 - $t0)" | bc -l)")
done
printf '{"bench":"cli_verify_chain_signed","ops":%d,"runs":%d,"ops_per_s":%.0f,"target":250000}\n' \
    "$n" "$runs" "$(printf '%s\n' "${rates[@]}" | median)"

ms=()
for r in $(seq 11); do
    t0=$(now); "$trellis" -C "$dir/repo" sync status --json >/dev/null; t1=$(now)
    ms+=("$(echo "($t1 - $t0) * 1000" | bc -l)")
done
printf '{"bench":"cli_open_sync_status","ops":%d,"runs":11,"ms":%.1f,"target_ms":50}\n' \
    "$n" "$(printf '%s\n' "${ms[@]}" | median)"

k=200
t0=$(now)
for i in $(seq $k); do "$trellis" -C "$dir/repo" op add --kind field.set --target single \
    --body "{\"field\":\"n\",\"value\":$i}" >/dev/null; done
t1=$(now)
printf '{"bench":"cli_op_add_single","ops":%d,"ops_per_s":%.0f,"note":"one process, one signature and one durable commit per op"}\n' \
    "$k" "$(echo "$k / ($t1 - $t0)" | bc -l)"
