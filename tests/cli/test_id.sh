#!/usr/bin/env bash
# trellis id: created on first use, stable, private key file, unsafe files refused.
. "$(dirname "$0")/lib.sh"

created_on_first_use() {
    [ -e "$TRELLIS_HOME" ] && t_fail "home exists before first use"
    t_run trellis id
    assert_rc 0
    assert_match "$OUT" 'id +[a-z2-7]{56}' "id line"
    assert_match "$OUT" 'fingerprint +[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}' "fingerprint"
    assert_match "$OUT" 'key +[0-9a-f]{64}' "key line"
    assert_eq "$(stat -c %a "$TRELLIS_HOME/config/identity.key")" 600 "key file mode"
    assert_eq "$(stat -c %a "$TRELLIS_HOME/config")" 700 "config dir mode"
    assert_match "$(cat "$TRELLIS_HOME/config/identity.key")" 'ed25519-seed [0-9a-f]{64}' "key file"
    # the secret never shows
    local seed
    seed=$(sed -n 's/^ed25519-seed //p' "$TRELLIS_HOME/config/identity.key")
    assert_not_contains "$OUT" "$seed" "id output"
    assert_not_contains "$OUT" "${seed:0:16}" "id output"
}

json_fields_and_stable() {
    need jq
    t_run trellis id --json
    assert_rc 0
    local id key fp
    id=$(echo "$OUT" | jq -r .id)
    key=$(echo "$OUT" | jq -r .key)
    fp=$(echo "$OUT" | jq -r .fingerprint)
    assert_match "$id" '^[a-z2-7]{56}$' "id"
    assert_match "$key" '^[0-9a-f]{64}$' "key"
    assert_eq "$fp" "${id:0:4}-${id:4:4}-${id:8:4}-${id:12:4}" "fingerprint"
    assert_eq "$(cat "$TRELLIS_HOME/config/identity.pub")" "$id" "identity.pub"
    t_run trellis id --json
    assert_eq "$(echo "$OUT" | jq -r .id)" "$id" "id on the second run"
    assert_eq "$(echo "$OUT" | jq -r .key)" "$key" "key on the second run"
    # another home, another identity
    t_run env TRELLIS_HOME="$T_DIR/other" "$TRELLIS_BIN" id --json
    assert_ne "$(echo "$OUT" | jq -r .id)" "$id" "id in another home"
}

world_readable_refused() {
    trellis id >/dev/null || t_fail "id"
    local key=$TRELLIS_HOME/config/identity.key
    for mode in 644 640 604 660 606; do
        chmod "$mode" "$key"
        t_run trellis id
        assert_rc 1
        assert_contains "$ERR" "$key" "message for mode $mode"
        assert_contains "$ERR" "chmod 600 $key" "message for mode $mode"
        assert_eq "$OUT" "" "stdout for mode $mode"
        # commands that sign refuse too
        trellis init repo >/dev/null 2>&1
        t_run trellis -C repo op add --kind app.x --target t
        assert_rc 1
        assert_contains "$ERR" "chmod 600"
    done
    chmod 600 "$key"
    t_run trellis id
    assert_rc 0
}

not_owned_refused() {
    [ "$(id -u)" -eq 0 ] || t_skip "needs root to hand the key to another user"
    trellis id >/dev/null || t_fail "id"
    chown 12345 "$TRELLIS_HOME/config/identity.key"
    t_run trellis id
    assert_rc 1
    assert_contains "$ERR" "belongs to uid 12345"
}

garbage_key_refused() {
    mkdir -p "$TRELLIS_HOME/config"
    printf 'not a key\n' >"$TRELLIS_HOME/config/identity.key"
    chmod 600 "$TRELLIS_HOME/config/identity.key"
    t_run trellis id
    assert_rc 1
    assert_contains "$ERR" "identity.key: line 1: expected 'ed25519-seed <64 hex digits>'"
}

xdg_config_home_used() {
    unset TRELLIS_HOME
    export HOME=$T_DIR/h XDG_CONFIG_HOME=$T_DIR/xdg
    t_run trellis id
    assert_rc 0
    [ -f "$T_DIR/xdg/trellis/identity.key" ] || t_fail "no key under XDG_CONFIG_HOME"
    unset XDG_CONFIG_HOME
    t_run trellis id
    assert_rc 0
    [ -f "$T_DIR/h/.config/trellis/identity.key" ] || t_fail "no key under ~/.config"
}

concurrent_first_use() {
    need jq
    local i
    for i in 1 2 3 4 5 6; do trellis id --json >"id$i.json" 2>"err$i.txt" & done
    wait
    for i in 1 2 3 4 5 6; do
        [ -s "err$i.txt" ] && t_fail "run $i: $(cat "err$i.txt")"
        assert_eq "$(jq -r .id "id$i.json")" "$(jq -r .id id1.json)" "id of run $i"
    done
    assert_eq "$(ls "$TRELLIS_HOME/config")" $'identity.key\nidentity.pub' "files left"
}

t_case created_on_first_use created_on_first_use
t_case concurrent_first_use concurrent_first_use
t_case json_fields_and_stable json_fields_and_stable
t_case world_readable_refused world_readable_refused
t_case not_owned_refused not_owned_refused
t_case garbage_key_refused garbage_key_refused
t_case xdg_config_home_used xdg_config_home_used
t_done
