/* opjson.c — the one JSON shape of an op, shared by log, show and op add. */
#include "cli.h"

#include <time.h>

#include "../../core/tr_json.h"

void cli_iso8601(char out[32], uint64_t wall_ms)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm) || tm.tm_year > 9999 - 1900) {
        snprintf(out, 32, "%llu", (unsigned long long)wall_ms); /* far future: raw ms */
        return;
    }
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(wall_ms % 1000));
}

static json_t *hash_json(const uint8_t *p, size_t n)
{
    char hex[2 * TR_HASH_LEN + 1];
    tr_hex(hex, p, n);
    return json_string(hex);
}

/*
 * Builds the object field by field; any allocation failure makes the whole
 * result NULL (jansson's *_set_new steal the value even when they fail).
 * The body was checked canonical when it was stored, so a body that does
 * not convert means a broken store: it is shown as null with "bodyError".
 */
json_t *cli_op_json(const tr_op_t *op, uint64_t pos)
{
    char id[TR_PEER_ID_STRLEN + 1], wall[32];
    tr_peer_id(id, op->author);
    cli_iso8601(wall, op->wall_ms);
    json_t *o = json_object(), *parents = json_array(), *body = NULL;
    int bad = !o || !parents;
    for (size_t i = 0; !bad && i < op->nparents; i++)
        bad |= json_array_append_new(parents, hash_json(op->parents[i], TR_HASH_LEN));
    tr_err_t err = {0};
    if (tr_json_from_mp(op->body, op->body_len, &body, &err) != TR_OK) {
        if (err.code == TR_ENOMEM)
            bad = 1;
        else
            bad |= json_object_set_new(o, "bodyError", json_string(err.msg));
        body = json_null();
    }
    bad |= json_object_set_new(o, "hash", hash_json(op->hash, TR_HASH_LEN));
    bad |= json_object_set_new(o, "repo", hash_json(op->repo, TR_REPO_ID_LEN));
    bad |= json_object_set_new(o, "branch", json_stringn(op->branch, op->branch_len));
    bad |= json_object_set_new(o, "position", json_integer((json_int_t)pos));
    bad |= json_object_set_new(o, "author", json_string(id));
    bad |= json_object_set_new(o, "seq", json_integer((json_int_t)op->seq));
    bad |= json_object_set_new(o, "lamport", json_integer((json_int_t)op->lamport));
    bad |= json_object_set_new(o, "wall", json_string(wall));
    bad |= json_object_set_new(o, "parents", parents);
    parents = NULL;
    bad |= json_object_set_new(o, "prev",
                               op->has_prev ? hash_json(op->prev, TR_HASH_LEN) : json_null());
    bad |= json_object_set_new(o, "kind", json_stringn(op->kind, op->kind_len));
    bad |= json_object_set_new(o, "target", json_stringn(op->target, op->target_len));
    bad |= json_object_set_new(o, "body", body);
    bad |= json_object_set_new(o, "signed", json_boolean(op->has_sig));
    json_decref(parents);
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int cli_load_op(cli_t *c, tr_store_t *s, const uint8_t hash[TR_HASH_LEN], tr_buf_t *rec,
                tr_op_t *op, uint64_t *pos)
{
    tr_err_t err = {0};
    char hex[2 * TR_HASH_LEN + 1];
    tr_hex(hex, hash, TR_HASH_LEN);
    if (tr_store_get(s, hash, rec, NULL, pos, &err) != TR_OK ||
        tr_op_decode(rec->data, rec->len, op, &err) != TR_OK)
        return cli_fail_err(c, hex, &err);
    return CLI_OK;
}
