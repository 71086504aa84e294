#!/usr/bin/env bash
# make bench: runs every benchmark and prints one JSON object per line.
#   BENCH_OPS   ops for the CLI import/verify figures (default 1000000)
#   BENCH_RUNS  runs per figure; the median is printed (default 3)
#   BENCH_DIR   scratch directory on a real disk (default /var/tmp/trellis-bench)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${TRELLIS_BUILD:-build/rel}
case $build in /*) ;; *) build=$here/../$build ;; esac
export TRELLIS_BUILD=$build BENCH_RUNS=${BENCH_RUNS:-3}
echo "{\"bench\":\"machine\",\"cpus\":$(nproc),\"kernel\":\"$(uname -r)\"}"
for b in "$build"/bench/bench_*; do
    [ -x "$b" ] && "$b"
done
for s in "$here"/bench_*.sh; do
    [ -f "$s" ] && bash "$s"
done
