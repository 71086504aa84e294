#!/usr/bin/env bash
# seeds.sh HARNESS DIR — writes a seed corpus for HARNESS into DIR from the
# committed test vectors (op records), so fuzzing starts from valid inputs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
name=$1 dir=$2
case $name in
fuzz_op)
    i=0
    for rec in $(jq -r '.[].record' "$here/../vectors/ops.json"); do
        printf "$(echo "$rec" | sed 's/../\\x&/g')" > "$dir/vector-$i"; i=$((i + 1))
    done ;;
fuzz_frame)
    # hello, have, want, ops, ack, nack with small fields
    printf '\x96\x01\x00\xa1a\x01\x01\x90' > "$dir/hello"
    printf '\x94\x01\x01\xc4\x10AAAAAAAAAAAAAAAA\x90' > "$dir/have"
    printf '\x97\x01\x05\xc0\xc0\xa9signature\xa0\xc0' > "$dir/nack" ;;
fuzz_batch)
    printf '\x00\x93\x90\x90\x90' > "$dir/empty" ;;
esac
