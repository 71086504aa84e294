#!/usr/bin/env bash
# seeds.sh HARNESS DIR — writes a seed corpus for HARNESS into DIR: op
# records from the committed test vectors, configs and agent.json files like
# the ones the tests and docs use, one control request per command. Frames,
# batches and whole sync sessions come from the generator in fuzz_sync.c
# (FUZZ_WRITE_SEEDS; tests/fuzz/run.sh runs it).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
name=$1 dir=$2
vectors=$here/../vectors/ops.json
mkdir -p "$dir"

# A few peer ids: the vectors' author keys in hex, and one base32 id.
key1=03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8
id1=2ihpegqclfylp4jug5kbpu32yhuzkuzixowqn43pguvo6b7ngfhdfge6

case $name in
fuzz_op)
    i=0
    for rec in $(jq -r '.[].record' "$vectors"); do
        printf "$(echo "$rec" | sed 's/../\\x&/g')" > "$dir/vector-$i"; i=$((i + 1))
    done ;;
fuzz_frame)
    # hello, have, nack with small fields (captured frames come from fuzz_sync)
    printf '\x96\x01\x00\xa1a\x01\x01\x90' > "$dir/hello"
    printf '\x94\x01\x01\xc4\x10AAAAAAAAAAAAAAAA\x90' > "$dir/have"
    printf '\x97\x01\x05\xc0\xc0\xa9signature\xa0\xc0' > "$dir/nack" ;;
fuzz_batch)
    printf '\x00\x93\x90\x90\x90' > "$dir/empty" ;;
fuzz_config)
    printf '%s' '{"version":1,"branchPolicies":{"main":{"linear":true,"requireSigning":true},"*":{"linear":false,"requireSigning":true}}}' > "$dir/default"
    printf '%s' '{"branchPolicies":{"feature/*":{"linear":false},"release/[0-9]*":{"linear":true},"lin\\*":{}},"frobnicate":1}' > "$dir/globs"
    printf '%s' '{"fieldStrategies":{"status":"highest_restriction_wins","tags":"union_merge","log":"append_wins","id":"immutable","note*":"manual_resolution","*":"last_write_wins"},"restrictionOrder":["tombstoned","archived","active"]}' > "$dir/strategies"
    printf '%s' '{"version":2}' > "$dir/newer"
    printf '%s' '{"branchPolicies":{"feature/[":{}}}' > "$dir/badglob" ;;
fuzz_json)
    printf '%s' '{"field":"title","value":"Hello"}' > "$dir/body"
    printf '%s' '[1,-1,1.5,1e300,-0.0,9223372036854775807,"x",null,true,false,{"a":[{}]}]' > "$dir/scalars"
    printf '%s' '{"$bin":"00ff","$uint":"18446744073709551615","b":{"$bin":"zz"}}' > "$dir/tags"
    printf '%s' '{"s":"urn:s","p":"urn:p","o":{"$uint":"1"}}' > "$dir/triple" ;;
fuzz_peerid)
    printf '%s' "$id1" > "$dir/id"
    printf '%s' "${id1^^}" > "$dir/upper"
    printf '%s' "${id1:0:4}-${id1:4:4} ${id1:8}" > "$dir/dashes"
    printf '%s' "$key1" > "$dir/hex" ;;
fuzz_agentjson)
    printf '{"name":"ana","listen":"tcp://*:7437","repos":["/home/ana/notes","/srv/x"],"peers":[{"id":"%s","name":"bob","endpoint":"tcp://10.1.2.3:7437","trusted":true},{"id":"%s","trusted":false}]}' "$id1" "$key1" > "$dir/full"
    printf '%s' '{}' > "$dir/empty"
    printf '{"peers":[{"id":"%s","endpoint":"udp://x"}]}' "$id1" > "$dir/badendpoint" ;;
fuzz_control)
    # byte 0: framing (0 one part, 1 REQ delimiter, 2/3 cut), bytes 1-2: cuts
    req() { printf '\x00\x00\x00%s' "$2" > "$dir/$1"; }
    req ping '{"cmd":"ping"}'
    req repo.add '{"cmd":"repo.add","args":{"path":"/tmp"}}'
    req repo.rm '{"cmd":"repo.rm","args":{"path":"/nonexistent"}}'
    req repo.list '{"cmd":"repo.list"}'
    req changed '{"cmd":"changed","args":{"path":"/","branch":"main"}}'
    req peers '{"cmd":"peers"}'
    req peer.add "{\"cmd\":\"peer.add\",\"args\":{\"endpoint\":\"tcp://127.0.0.1:7437\",\"key\":\"$id1\",\"name\":\"bob\"}}"
    req peer.trust "{\"cmd\":\"peer.trust\",\"args\":{\"id\":\"$id1\"}}"
    req peer.untrust "{\"cmd\":\"peer.untrust\",\"args\":{\"id\":\"$key1\"}}"
    req clone '{"cmd":"clone","args":{"repo":"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf","path":"/tmp/x"}}'
    req sync.now '{"cmd":"sync.now","args":{"timeout_ms":100}}'
    req sync.status '{"cmd":"sync.status","args":{"path":"/"}}'
    req unknown '{"cmd":"frob","args":[]}'
    printf '\x01\x00\x00{"cmd":"ping"}' > "$dir/req-style"
    printf '\x02\x05\x00{"cmd":"ping"}' > "$dir/two-parts" ;;
fuzz_txt)
    # DNS-SD TXT wire form: each string prefixed by its length (docs/discovery.md §2)
    txt() { local out="" s; for s in "$@"; do out+=$(printf '\\x%02x' "${#s}")$s; done; printf "$out"; }
    txt "v=1" "id=z3gbkb64dxoxffmvdquqrchqsww3sbcndnz5nfxg34df22b32t6bmvp5" "name=ana-laptop" \
        "repos=10101010101010101010101010101010,11111111111111111111111111111111" > "$dir/example"
    txt "v=1-2" "ID=$id1" "name=" "repos=" > "$dir/range"
    txt "v=9" "x" "=" "id" > "$dir/odd" ;;
esac
