/* test_crdt.c — field strategies, op classification, state keys, and every
 * state kind's merge rule, with the seeds' examples (docs/crdt.md). */
#include <jansson.h>
#include <sodium.h>

#include "tr_crdt.h"
#include "tr_json.h"
#include "tr_strategy.h"
#include "tr_test.h"

/* ---- fixture ------------------------------------------------------------- */

static uint8_t arena[1 << 22];
static size_t arena_used;

static const uint8_t *keep(const void *p, size_t n)
{
    if (arena_used + n > sizeof arena) abort();
    uint8_t *d = arena + arena_used;
    memcpy(d, p, n);
    arena_used += n;
    return d;
}

/* JSON text → canonical msgpack kept in the arena ({"$bin": hex} allowed). */
static const uint8_t *mp(const char *json, size_t *len)
{
    tr_buf_t b = {0};
    tr_err_t err;
    if (tr_json_parse(json, strlen(json), TR_JSON_TAGS, &b, &err)) {
        printf("bad test JSON %s: %s\n", json, err.msg);
        abort();
    }
    const uint8_t *p = keep(b.data, b.len);
    *len = b.len;
    tr_buf_free(&b);
    return p;
}

/* An op by author `a` (its key is 32 bytes of `a`) with its hash computed. */
static tr_op_t mkop(int a, uint64_t seq, uint64_t lamport, const char *kind, const char *target,
                    const uint8_t *body, size_t body_len)
{
    tr_op_t op = {0};
    op.branch = "main";
    op.branch_len = 4;
    memset(op.author, a, 32);
    op.seq = seq;
    op.lamport = lamport;
    op.has_prev = seq > 1;
    memset(op.prev, 0xee, 32);
    op.kind = kind;
    op.kind_len = strlen(kind);
    op.target = target;
    op.target_len = strlen(target);
    op.body = keep(body, body_len);
    op.body_len = body_len;
    tr_buf_t rec = {0};
    if (tr_op_encode(&op, NULL, &rec, NULL)) abort();
    tr_buf_free(&rec);
    return op;
}

static tr_op_t jop(int a, uint64_t seq, uint64_t lamport, const char *kind, const char *target,
                   const char *body_json)
{
    size_t n;
    const uint8_t *b = mp(body_json, &n);
    return mkop(a, seq, lamport, kind, target, b, n);
}

static tr_crdt_str_t S(const char *s)
{
    return (tr_crdt_str_t){s, strlen(s)};
}

/* field.set of JSON `value` whose pred covers every write in `state`. */
static tr_op_t setop(int a, uint64_t seq, uint64_t lamport, const char *entity, const char *field,
                     const char *value, const tr_buf_t *state)
{
    size_t vl;
    const uint8_t *v = mp(value, &vl);
    tr_buf_t body = {0};
    if (tr_crdt_body_set(S(field), v, vl, state && state->len ? state->data : NULL,
                         state ? state->len : 0, &body, NULL))
        abort();
    tr_op_t op = mkop(a, seq, lamport, "field.set", entity, body.data, body.len);
    tr_buf_free(&body);
    return op;
}

static tr_op_t fieldop(int a, uint64_t seq, uint64_t lamport, const char *kind, const char *entity,
                       const char *field, const char *value)
{
    size_t vl;
    const uint8_t *v = mp(value, &vl);
    tr_buf_t body = {0};
    if (tr_crdt_body_field(S(field), v, vl, &body)) abort();
    tr_op_t op = mkop(a, seq, lamport, kind, entity, body.data, body.len);
    tr_buf_free(&body);
    return op;
}

static tr_op_t counterop(int a, uint64_t seq, uint64_t lamport, const char *entity,
                         const char *field, int64_t n)
{
    tr_buf_t body = {0};
    if (tr_crdt_body_counter(S(field), n, &body)) abort();
    tr_op_t op = mkop(a, seq, lamport, "counter.add", entity, body.data, body.len);
    tr_buf_free(&body);
    return op;
}

static tr_op_t tripleop(int a, uint64_t seq, uint64_t lamport, const char *kind, const char *s,
                        const char *p, const char *o)
{
    tr_buf_t body = {0};
    if (tr_crdt_body_triple(S(s), S(p), S(o), &body)) abort();
    tr_op_t op = mkop(a, seq, lamport, kind, s, body.data, body.len);
    tr_buf_free(&body);
    return op;
}

/* Applies op's key `key` to *state (in place). Returns the effect; an apply
 * error is reported as effect kind 99 with the code. */
static tr_crdt_effect_t ap(tr_buf_t *state, const tr_op_t *op, const tr_strategies_t *st,
                           size_t key)
{
    tr_crdt_effect_t eff = {0};
    tr_crdt_op_t v;
    tr_err_t err;
    tr_buf_t out = {0};
    if (tr_crdt_classify(op, &v, &err)) {
        eff.kind = 99;
        eff.code = err.code;
        snprintf(eff.reason, sizeof eff.reason, "%.200s", err.msg);
        return eff;
    }
    int rc =
        tr_crdt_apply(&v, key, st, state->len ? state->data : NULL, state->len, &out, &eff, &err);
    if (rc) {
        eff.kind = 99;
        eff.code = rc;
        snprintf(eff.reason, sizeof eff.reason, "%.200s", err.msg);
    } else if (tr_crdt_effect_writes(&eff)) {
        tr_buf_t t = *state;
        *state = out;
        out = t;
    }
    tr_buf_free(&out);
    return eff;
}

/* The materialized value as compact JSON (static buffer). */
static const char *val(const tr_strategies_t *st, const tr_buf_t *state, uint64_t tomb,
                       tr_crdt_info_t *info)
{
    static char text[4096];
    tr_buf_t out = {0};
    json_t *j = NULL;
    if (tr_crdt_value(st, state->data, state->len, tomb, &out, info, NULL) ||
        tr_json_from_mp(out.data, out.len, &j, NULL)) {
        tr_buf_free(&out);
        return "(error)";
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(text, sizeof text, "%s", s);
    free(s);
    json_decref(j);
    tr_buf_free(&out);
    return text;
}

static tr_strategies_t *strategies(const char *fs_json, const char *ro_json, tr_err_t *err)
{
    json_t *fs = fs_json ? json_loads(fs_json, 0, NULL) : NULL;
    json_t *ro = ro_json ? json_loads(ro_json, 0, NULL) : NULL;
    tr_strategies_t *st = NULL;
    int rc = tr_strategies_parse(fs, ro, "config.json", &st, err);
    json_decref(fs);
    json_decref(ro);
    return rc ? NULL : st;
}

static const char *seed_config =
    "{\"status\": \"highest_restriction_wins\", \"steps\": \"append_wins\","
    " \"imports\": \"union_merge\", \"contract\": \"manual_resolution\", \"id\": \"immutable\","
    " \"*\": \"last_write_wins\", \"fingerprint\": \"recompute_post_merge\"}";

/* ---- strategies ---------------------------------------------------------- */

TR_TEST(strategy_lookup)
{
    tr_err_t err;
    tr_strategies_t *st = strategies(
        "{\"status\": \"highest_restriction_wins\", \"meta.*\": \"manual_resolution\","
        " \"meta.a*\": \"append_wins\", \"meta.b?\": \"union_merge\", \"*\": \"last_write_wins\","
        " \"id\": \"immutable\", \"st*\": \"append_wins\"}",
        NULL, &err);
    TR_CHECK(st);
    const char *m;
    TR_CHECK_INT(tr_strategies_lookup(st, "status", 6, &m), ==, TR_STRATEGY_RESTRICT);
    TR_CHECK_STR(m, "status");
    TR_CHECK_INT(tr_strategies_lookup(st, "steps", 5, &m), ==, TR_STRATEGY_APPEND);
    TR_CHECK_STR(m, "st*");
    TR_CHECK_INT(tr_strategies_lookup(st, "meta.x", 6, &m), ==, TR_STRATEGY_MANUAL);
    TR_CHECK_INT(tr_strategies_lookup(st, "meta.ab", 7, &m), ==, TR_STRATEGY_APPEND);
    TR_CHECK_STR(m, "meta.a*"); /* longest glob wins */
    TR_CHECK_INT(tr_strategies_lookup(st, "meta.bc", 7, &m), ==, TR_STRATEGY_UNION);
    TR_CHECK_INT(tr_strategies_lookup(st, "id", 2, &m), ==, TR_STRATEGY_IMMUTABLE);
    TR_CHECK_INT(tr_strategies_lookup(st, "title", 5, &m), ==, TR_STRATEGY_LWW);
    TR_CHECK_STR(m, "*");
    TR_CHECK_INT(tr_strategies_count(st), ==, 7);
    tr_strategy_t s;
    TR_CHECK_STR(tr_strategies_at(st, 0, &s), "*");
    /* No config: everything last_write_wins, the seed's order. */
    TR_CHECK_INT(tr_strategies_lookup(NULL, "status", 6, &m), ==, TR_STRATEGY_LWW);
    TR_CHECK(m == NULL);
    TR_CHECK_INT(tr_strategies_order_count(NULL), ==, 8);
    TR_CHECK_STR(tr_strategies_order_at(NULL, 0), "tombstoned");
    TR_CHECK_STR(tr_strategies_order_at(NULL, 7), "draft");
    TR_CHECK_STR(tr_strategy_name(TR_STRATEGY_UNION), "union_merge");
    tr_strategies_destroy(&st);
    TR_CHECK(st == NULL);
    tr_strategies_destroy(&st);
}

TR_TEST(strategy_errors)
{
    static const struct {
        const char *fs, *ro, *msg;
    } cases[] = {
        {"{\"sta[\": \"last_write_wins\"}", NULL,
         "config.json: fieldStrategies.\"sta[\": invalid glob: '[' is never closed"},
        {"{\"status\": \"hgihest\"}", NULL,
         "config.json: fieldStrategies.status: unknown strategy"},
        {"{\"status\": 3}", NULL, "config.json: fieldStrategies.status: expected a strategy name"},
        {"{\"\": \"immutable\"}", NULL, "cannot be empty"},
        {"{\"fingerprint\": \"last_write_wins\"}", NULL, "fieldStrategies.fingerprint: the"},
        {"{\"x\": \"recompute_post_merge\"}", NULL, "applies only to \"fingerprint\""},
        {"[1]", NULL, "config.json: fieldStrategies: expected an object, got an array"},
        {NULL, "[]", "config.json: restrictionOrder: must list at least one value"},
        {NULL, "[\"a\", \"b\", \"a\"]", "restrictionOrder[2]: duplicate value \"a\""},
        {NULL, "[\"a\", 2]", "restrictionOrder[1]: expected a string, got a number"},
        {NULL, "[\"\"]", "restrictionOrder[0]: must not be empty"},
        {NULL, "{}", "restrictionOrder: expected an array of strings"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tr_err_t err = {0};
        tr_strategies_t *st = strategies(cases[i].fs, cases[i].ro, &err);
        TR_CHECK(st == NULL);
        TR_CHECK_INT(err.code, ==, TR_ECONFIG);
        if (!strstr(err.msg, cases[i].msg)) TR_FAILF("case %zu: \"%s\"", i, err.msg);
    }
}

TR_TEST(strategy_order_and_digest)
{
    tr_err_t err;
    tr_strategies_t *a = strategies(seed_config, NULL, &err);
    tr_strategies_t *b = strategies(seed_config, "[\"locked\", \"open\"]", &err);
    tr_strategies_t *c = strategies(seed_config, NULL, &err);
    TR_CHECK(a && b && c);
    size_t n;
    const uint8_t *v = mp("\"published\"", &n);
    TR_CHECK_INT(tr_strategies_rank(a, v, n), ==, 3);
    TR_CHECK_INT(tr_strategies_rank(b, v, n), ==, 2); /* unlisted: below all */
    v = mp("\"locked\"", &n);
    TR_CHECK_INT(tr_strategies_rank(b, v, n), ==, 0);
    v = mp("7", &n);
    TR_CHECK_INT(tr_strategies_rank(a, v, n), ==, 8);
    uint8_t da[32], db[32], dc[32], dn[32];
    tr_strategies_digest(a, da);
    tr_strategies_digest(b, db);
    tr_strategies_digest(c, dc);
    tr_strategies_digest(NULL, dn);
    TR_CHECK(memcmp(da, dc, 32) == 0);
    TR_CHECK(memcmp(da, db, 32) != 0);
    TR_CHECK(memcmp(da, dn, 32) != 0);
    tr_strategies_destroy(&a);
    tr_strategies_destroy(&b);
    tr_strategies_destroy(&c);
}

/* ---- classification ------------------------------------------------------ */

TR_TEST(classify_kinds)
{
    tr_crdt_op_t v;
    tr_err_t err;
    tr_op_t op = tripleop(1, 1, 1, "triple.add", "urn:s", "urn:p", "v");
    TR_CHECK_INT(tr_crdt_classify(&op, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.kind, ==, TR_CRDT_TRIPLE_ADD);
    TR_CHECK_INT(v.nkeys, ==, 1);
    TR_CHECK(v.o.n == 1 && v.o.p[0] == 'v');

    op = jop(1, 1, 1, "field.set", "doc:1",
             "{\"field\": \"title\", \"pred\": [{\"$bin\": "
             "\"0000000000000000000000000000000000000000000000000000000000000001\"}, {\"$bin\": "
             "\"0000000000000000000000000000000000000000000000000000000000000002\"}], "
             "\"value\": [1, 2]}");
    TR_CHECK_INT(tr_crdt_classify(&op, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.kind, ==, TR_CRDT_FIELD_SET);
    TR_CHECK_INT(v.npred, ==, 2);
    TR_CHECK_INT(tr_crdt_pred_at(&v, 1)[31], ==, 2);
    TR_CHECK_INT(v.value_len, ==, 3);

    op = counterop(1, 1, 1, "doc:1", "views", -7);
    TR_CHECK_INT(tr_crdt_classify(&op, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.n, ==, -7);

    op = jop(1, 1, 1, "file.rename", "b.txt",
             "{\"from\": \"a.txt\", \"hash\": {\"$bin\": "
             "\"00000000000000000000000000000000000000000000000000000000000000ff\"}, "
             "\"path\": \"b.txt\", \"size\": 12}");
    TR_CHECK_INT(tr_crdt_classify(&op, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.nkeys, ==, 2);
    TR_CHECK_INT(v.size, ==, 12);
    TR_CHECK_INT(v.content_hash[31], ==, 0xff);

    op = jop(1, 1, 1, "file.delete", "a.txt", "{\"path\": \"a.txt\"}");
    TR_CHECK_INT(tr_crdt_classify(&op, &v, &err), ==, TR_OK);
    TR_CHECK(!v.has_content);
    op = jop(1, 1, 1, "entity.delete", "doc:1", "{}");
    TR_CHECK_INT(tr_crdt_classify(&op, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.nkeys, ==, 1);
    op = jop(1, 1, 1, "app.note", "", "[1, 2, 3]");
    TR_CHECK_INT(tr_crdt_classify(&op, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.kind, ==, TR_CRDT_APP);
    TR_CHECK_INT(v.nkeys, ==, 0);
    op = jop(1, 1, 1, "link.repo", "backend", "{\"alias\": \"backend\"}");
    TR_CHECK_INT(tr_crdt_classify(&op, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.nkeys, ==, 0);
}

TR_TEST(classify_refusals)
{
    static const struct {
        const char *kind, *target, *body;
        int code;
        const char *msg;
    } cases[] = {
        {"frob.nicate", "x", "{}", TR_EKIND, "unknown op kind \"frob.nicate\""},
        {"field", "x", "{}", TR_EKIND, "unknown op kind"},
        {"app", "x", "{}", TR_EKIND, "unknown op kind"},
        {"triple.add", "urn:s", "[\"urn:s\", \"urn:p\", \"o\"]", TR_EBODY,
         "triple.add body: expected a map {o, p, s}"},
        {"triple.add", "urn:x", "{\"o\": \"o\", \"p\": \"p\", \"s\": \"urn:s\"}", TR_EBODY,
         "key \"s\" must equal the op's target"},
        {"triple.add", "urn:s", "{\"o\": \"o\", \"s\": \"urn:s\"}", TR_EBODY, "missing key \"p\""},
        {"triple.add", "urn:s", "{\"o\": 1, \"p\": \"p\", \"s\": \"urn:s\"}", TR_EBODY,
         "key \"o\": a string"},
        {"field.set", "doc", "{\"field\": \"t\", \"value\": 1}", TR_EBODY, "missing key \"pred\""},
        {"field.set", "doc", "{\"field\": \"t\", \"pred\": [], \"value\": 1, \"x\": 2}", TR_EBODY,
         "unexpected key \"x\""},
        {"field.set", "doc", "{\"field\": \"t\", \"pred\": [1], \"value\": 1}", TR_EBODY,
         "key \"pred\": an array of 32-byte hashes"},
        {"field.set", "doc",
         "{\"field\": \"t\", \"pred\": [{\"$bin\": "
         "\"0000000000000000000000000000000000000000000000000000000000000002\"}, {\"$bin\": "
         "\"0000000000000000000000000000000000000000000000000000000000000001\"}], \"value\": 1}",
         TR_EBODY, "ascending order"},
        {"field.set", "doc", "{\"field\": \"\", \"pred\": [], \"value\": 1}", TR_EBODY,
         "key \"field\": expected 1 to 255 bytes"},
        {"field.set", "doc", "{\"field\": \"a\\nb\", \"pred\": [], \"value\": 1}", TR_EBODY,
         "control characters"},
        {"field.set", "", "{\"field\": \"t\", \"pred\": [], \"value\": 1}", TR_EBODY,
         "target (entity id) must not be empty"},
        {"field.set", "doc", "{\"field\": \"fingerprint\", \"pred\": [], \"value\": 1}",
         TR_EIMMUTABLE, "\"fingerprint\" is computed"},
        {"field.append", "doc", "{\"field\": \"fingerprint\", \"value\": 1}", TR_EIMMUTABLE,
         "fingerprint"},
        {"counter.add", "doc", "{\"field\": \"v\", \"n\": 1.5}", TR_EBODY, "key \"n\": an integer"},
        {"counter.add", "doc", "{\"field\": \"v\", \"n\": {\"$uint\": \"18446744073709551615\"}}",
         TR_EBODY, "key \"n\""},
        {"file.add", "a", "{\"hash\": \"x\", \"path\": \"a\", \"size\": 1}", TR_EBODY,
         "key \"hash\": a 32-byte binary hash"},
        {"file.add", "a",
         "{\"hash\": {\"$bin\": "
         "\"0000000000000000000000000000000000000000000000000000000000000002\"}, \"path\": \"b\", "
         "\"size\": 1}",
         TR_EBODY, "key \"path\" must equal the op's target"},
        {"file.delete", "a", "{\"hash\": {\"$bin\": \"00\"}, \"path\": \"a\"}", TR_EBODY,
         "unexpected key \"hash\""},
        {"file.rename", "a",
         "{\"from\": \"a\", \"hash\": {\"$bin\": "
         "\"0000000000000000000000000000000000000000000000000000000000000002\"}, \"path\": \"a\", "
         "\"size\": 1}",
         TR_EBODY, "\"from\" must differ"},
        {"entity.delete", "doc", "{\"x\": 1}", TR_EBODY, "expected an empty map"},
        {"field.add", "doc", "\"imports\"", TR_EBODY,
         "field.add body: expected a map {field, value}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tr_op_t op = jop(1, 1, 1, cases[i].kind, cases[i].target, cases[i].body);
        tr_crdt_op_t v;
        tr_err_t err = {0};
        int rc = tr_crdt_classify(&op, &v, &err);
        if (rc != cases[i].code) TR_FAILF("case %zu: code %d (%s)", i, rc, err.msg);
        if (!strstr(err.msg, cases[i].msg)) TR_FAILF("case %zu: \"%s\"", i, err.msg);
    }
}

/* ---- keys ----------------------------------------------------------------- */

TR_TEST(keys)
{
    tr_buf_t k = {0}, p = {0};
    tr_crdt_key_t pk;
    tr_op_t op = setop(1, 1, 1, "doc:1", "title", "\"x\"", NULL);
    tr_crdt_op_t v;
    TR_CHECK_INT(tr_crdt_classify(&op, &v, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_crdt_op_key(&v, 0, &k), ==, TR_OK);
    static const uint8_t want[] = {0x93, 0xa1, 'f', 0xa5, 'd', 'o', 'c', ':',
                                   '1',  0xa5, 't', 'i',  't', 'l', 'e'};
    TR_CHECK_INT(k.len, ==, sizeof want);
    TR_CHECK_MEM(k.data, want, sizeof want);
    TR_CHECK_INT(tr_crdt_op_key(&v, 1, &k), ==, TR_EINVAL);
    TR_CHECK_INT(tr_crdt_key_parse(k.data, k.len, &pk, NULL), ==, TR_OK);
    TR_CHECK_INT(pk.ns, ==, TR_CRDT_NS_FIELD);
    TR_CHECK(pk.nparts == 2 && pk.part[1].n == 5 && memcmp(pk.part[1].p, "title", 5) == 0);
    tr_crdt_str_t e = S("doc:1");
    TR_CHECK_INT(tr_crdt_key_prefix(TR_CRDT_NS_FIELD, &e, 1, &p), ==, TR_OK);
    TR_CHECK(p.len < k.len && memcmp(p.data, k.data, p.len) == 0);
    TR_CHECK_INT(tr_crdt_key_prefix(TR_CRDT_NS_FIELD, &e, 2, &p), ==, TR_EINVAL);

    /* A triple key, prefix by subject and predicate. */
    tr_buf_reset(&k);
    tr_buf_reset(&p);
    TR_CHECK_INT(tr_crdt_key_triple(S("urn:s"), S("urn:p"), S("o"), &k), ==, TR_OK);
    tr_crdt_str_t sp[2] = {S("urn:s"), S("urn:p")};
    TR_CHECK_INT(tr_crdt_key_prefix(TR_CRDT_NS_TRIPLE, sp, 2, &p), ==, TR_OK);
    TR_CHECK(memcmp(p.data, k.data, p.len) == 0);
    TR_CHECK_INT(tr_crdt_key_parse(k.data, k.len, &pk, NULL), ==, TR_OK);
    TR_CHECK_INT(pk.nparts, ==, 3);

    /* A rename touches the new path (key 0) and the old one (key 1). */
    op = jop(1, 1, 1, "file.rename", "b",
             "{\"from\": \"a\", \"hash\": {\"$bin\": "
             "\"0000000000000000000000000000000000000000000000000000000000000002\"}, "
             "\"path\": \"b\", \"size\": 1}");
    TR_CHECK_INT(tr_crdt_classify(&op, &v, NULL), ==, TR_OK);
    tr_buf_reset(&k);
    TR_CHECK_INT(tr_crdt_op_key(&v, 1, &k), ==, TR_OK);
    TR_CHECK_INT(tr_crdt_key_parse(k.data, k.len, &pk, NULL), ==, TR_OK);
    TR_CHECK(pk.ns == TR_CRDT_NS_FILE && pk.part[0].n == 1 && pk.part[0].p[0] == 'a');

    static const uint8_t bad[] = {0x92, 0xa1, 'z', 0xa1, 'x'};
    TR_CHECK_INT(tr_crdt_key_parse(bad, sizeof bad, &pk, NULL), ==, TR_ECORRUPT);
    tr_buf_free(&k);
    tr_buf_free(&p);
}

/* ---- triples (seed 002) ---------------------------------------------------- */

TR_TEST(triple_add_wins_ties)
{
    tr_buf_t s = {0};
    tr_op_t add = tripleop(1, 1, 5, "triple.add", "urn:s", "urn:p", "v");
    tr_op_t rem = tripleop(2, 1, 5, "triple.remove", "urn:s", "urn:p", "v");
    TR_CHECK_INT(ap(&s, &rem, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(NULL, &s, 0, NULL), "false");
    TR_CHECK_INT(ap(&s, &add, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(NULL, &s, 0, NULL), "true"); /* equal lamports: the add wins */
    TR_CHECK_INT(ap(&s, &add, NULL, 0).kind, ==, TR_CRDT_UNCHANGED);

    /* A later remove wins; a later add again brings it back. */
    tr_op_t rem2 = tripleop(2, 2, 6, "triple.remove", "urn:s", "urn:p", "v");
    TR_CHECK_INT(ap(&s, &rem2, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(NULL, &s, 0, NULL), "false");
    tr_op_t old = tripleop(3, 1, 4, "triple.add", "urn:s", "urn:p", "v");
    TR_CHECK_INT(ap(&s, &old, NULL, 0).kind, ==, TR_CRDT_UNCHANGED);
    tr_op_t add2 = tripleop(1, 2, 9, "triple.add", "urn:s", "urn:p", "v");
    TR_CHECK_INT(ap(&s, &add2, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    tr_crdt_info_t info;
    TR_CHECK_STR(val(NULL, &s, 0, &info), "true");
    TR_CHECK_INT(info.lamport, ==, 9);

    /* Any order gives the same bytes. */
    tr_buf_t t = {0};
    const tr_op_t *ops[] = {&add2, &old, &rem2, &add, &rem, &add2};
    for (size_t i = 0; i < 6; i++)
        (void)ap(&t, ops[i], NULL, 0);
    TR_CHECK(t.len == s.len && memcmp(t.data, s.data, s.len) == 0);
    tr_buf_free(&s);
    tr_buf_free(&t);
}

/* ---- counters (seed 001) ---------------------------------------------------- */

TR_TEST(counter_concurrent_increments_add_up)
{
    tr_buf_t s = {0}, t = {0};
    tr_op_t a = counterop(1, 1, 2, "doc", "counter", 5);
    tr_op_t b = counterop(2, 1, 2, "doc", "counter", 3);
    TR_CHECK_INT(ap(&s, &a, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_INT(ap(&s, &b, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(NULL, &s, 0, NULL), "8");
    TR_CHECK_INT(ap(&s, &a, NULL, 0).kind, ==, TR_CRDT_UNCHANGED); /* a repeat */
    (void)ap(&t, &b, NULL, 0);
    (void)ap(&t, &a, NULL, 0);
    TR_CHECK(t.len == s.len && memcmp(t.data, s.data, s.len) == 0);

    tr_op_t c = counterop(1, 2, 3, "doc", "counter", -10);
    TR_CHECK_INT(ap(&s, &c, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    tr_crdt_info_t info;
    TR_CHECK_STR(val(NULL, &s, 0, &info), "-2");
    TR_CHECK_INT(info.counter, ==, -2);
    TR_CHECK_INT(info.lamport, ==, 3);

    /* An author's sum may not leave int64: refused, state unchanged. */
    tr_op_t big = counterop(1, 3, 4, "doc", "counter", INT64_MAX);
    TR_CHECK_INT(ap(&s, &big, NULL, 0).kind, ==, TR_CRDT_CHANGED); /* -5 + MAX is fine */
    tr_op_t over = counterop(1, 4, 5, "doc", "counter", 100);
    tr_crdt_effect_t e = ap(&s, &over, NULL, 0);
    TR_CHECK_INT(e.kind, ==, TR_CRDT_REFUSED);
    TR_CHECK_INT(e.code, ==, TR_ETOOBIG);
    TR_CHECK(strstr(e.reason, "64-bit") != NULL);
    /* The total over authors saturates when read. */
    tr_op_t b2 = counterop(2, 2, 6, "doc", "counter", INT64_MAX - 3);
    TR_CHECK_INT(ap(&s, &b2, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(NULL, &s, 0, &info), "9223372036854775807");
    TR_CHECK(info.saturated);
    tr_buf_free(&s);
    tr_buf_free(&t);
}

/* ---- last_write_wins --------------------------------------------------------- */

TR_TEST(lww_highest_stamp_wins)
{
    tr_buf_t s = {0}, t = {0};
    tr_op_t a = setop(1, 1, 3, "doc", "title", "\"from a\"", NULL);
    tr_op_t b = setop(2, 1, 3, "doc", "title", "\"from b\"", NULL); /* same lamport, author 2 > 1 */
    tr_op_t c = setop(3, 1, 2, "doc", "title", "\"older\"", NULL);
    TR_CHECK_INT(ap(&s, &a, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_INT(ap(&s, &c, NULL, 0).kind, ==, TR_CRDT_UNCHANGED);
    TR_CHECK_INT(ap(&s, &b, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(NULL, &s, 0, NULL), "\"from b\"");
    (void)ap(&t, &b, NULL, 0);
    (void)ap(&t, &c, NULL, 0);
    (void)ap(&t, &a, NULL, 0);
    TR_CHECK(t.len == s.len && memcmp(t.data, s.data, s.len) == 0);
    /* A nil value clears the field. */
    tr_op_t d = setop(1, 2, 4, "doc", "title", "null", &s);
    TR_CHECK_INT(ap(&s, &d, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    tr_crdt_info_t info;
    TR_CHECK_STR(val(NULL, &s, 0, &info), "null");
    TR_CHECK(!info.present);
    tr_buf_free(&s);
    tr_buf_free(&t);
}

/* ---- highest_restriction_wins (seed 003) -------------------------------------- */

TR_TEST(restriction_order)
{
    tr_err_t err;
    tr_strategies_t *st = strategies(seed_config, NULL, &err);
    TR_CHECK(st);
    tr_buf_t s = {0};
    tr_op_t base = setop(1, 1, 1, "u", "status", "\"draft\"", NULL);
    TR_CHECK_INT(ap(&s, &base, st, 0).kind, ==, TR_CRDT_CHANGED);
    /* Two editors concurrently overwrite draft: published vs deprecated. */
    tr_op_t a = setop(1, 2, 2, "u", "status", "\"published\"", &s);
    tr_op_t b = setop(2, 1, 2, "u", "status", "\"deprecated\"", &s);
    tr_buf_t t = {0};
    if (tr_buf_append(&t, s.data, s.len)) abort();
    TR_CHECK_INT(ap(&s, &a, st, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_INT(ap(&s, &b, st, 0).kind, ==, TR_CRDT_CHANGED);
    tr_crdt_info_t info;
    TR_CHECK_STR(val(st, &s, 0, &info), "\"deprecated\"");
    TR_CHECK(!info.conflict);
    TR_CHECK_INT(info.nvisible, ==, 2);
    (void)ap(&t, &b, st, 0);
    (void)ap(&t, &a, st, 0);
    TR_CHECK(t.len == s.len && memcmp(t.data, s.data, s.len) == 0);
    /* tombstoned, concurrent with anything, wins. */
    tr_op_t c = setop(3, 1, 2, "u", "status", "\"tombstoned\"", NULL);
    TR_CHECK_INT(ap(&s, &c, st, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(st, &s, 0, NULL), "\"tombstoned\"");
    /* A sequential write (pred covers all) replaces them, even if less
     * restrictive. */
    tr_op_t d = setop(1, 3, 5, "u", "status", "\"review\"", &s);
    TR_CHECK_INT(ap(&s, &d, st, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(st, &s, 0, &info), "\"review\"");
    TR_CHECK_INT(info.nvisible, ==, 1);
    /* A value not in the order ranks below every listed one. */
    tr_op_t e = setop(2, 2, 5, "u", "status", "\"in-progress\"", NULL);
    TR_CHECK_INT(ap(&s, &e, st, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(st, &s, 0, NULL), "\"review\"");
    tr_strategies_destroy(&st);
    tr_buf_free(&s);
    tr_buf_free(&t);
}

/* ---- manual_resolution ----------------------------------------------------------- */

TR_TEST(manual_conflict_until_resolved)
{
    tr_err_t err;
    tr_strategies_t *st = strategies(seed_config, NULL, &err);
    TR_CHECK(st);
    tr_buf_t s = {0}, t = {0};
    tr_op_t base = setop(1, 1, 1, "u", "contract", "{\"in\": \"a\"}", NULL);
    TR_CHECK_INT(ap(&s, &base, st, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(st, &s, 0, NULL), "{\"in\":\"a\"}");
    tr_op_t a = setop(1, 2, 2, "u", "contract", "{\"in\": \"b\"}", &s);
    tr_op_t b = setop(2, 1, 2, "u", "contract", "{\"in\": \"c\"}", &s);
    if (tr_buf_append(&t, s.data, s.len)) abort();
    TR_CHECK_INT(ap(&s, &a, st, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_INT(ap(&s, &b, st, 0).kind, ==, TR_CRDT_CONFLICT_OPENED);
    tr_crdt_info_t info;
    TR_CHECK_STR(val(st, &s, 0, &info), "{\"$conflict\":[{\"in\":\"b\"},{\"in\":\"c\"}]}");
    TR_CHECK(info.conflict && info.present);
    TR_CHECK_INT(ap(&s, &b, st, 0).kind, ==, TR_CRDT_UNCHANGED); /* a repeat */
    (void)ap(&t, &b, st, 0);
    (void)ap(&t, &a, st, 0);
    TR_CHECK(t.len == s.len && memcmp(t.data, s.data, s.len) == 0);

    /* The candidates are what `trellis conflicts` lists. */
    tr_crdt_entry_t ents[4];
    size_t n;
    TR_CHECK_INT(tr_crdt_entries(s.data, s.len, ents, 4, &n, NULL), ==, TR_OK);
    TR_CHECK_INT(n, ==, 2);
    TR_CHECK_MEM(ents[0].hash, a.hash, 32);
    TR_CHECK_MEM(ents[1].hash, b.hash, 32);

    /* A write that saw only one candidate (pred = {a}) does not close it. */
    tr_buf_t only_a = {0};
    (void)ap(&only_a, &a, st, 0);
    tr_op_t partial = setop(3, 1, 3, "u", "contract", "{\"in\": \"d\"}", &only_a);
    TR_CHECK_INT(ap(&s, &partial, st, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(st, &s, 0, NULL), "{\"$conflict\":[{\"in\":\"c\"},{\"in\":\"d\"}]}");

    /* `trellis resolve` writes with pred covering every candidate. */
    tr_op_t r = setop(1, 3, 4, "u", "contract", "{\"in\": \"resolved\"}", &s);
    TR_CHECK_INT(ap(&s, &r, st, 0).kind, ==, TR_CRDT_CONFLICT_CLOSED);
    TR_CHECK_STR(val(st, &s, 0, &info), "{\"in\":\"resolved\"}");
    TR_CHECK(!info.conflict);
    tr_strategies_destroy(&st);
    tr_buf_free(&s);
    tr_buf_free(&t);
    tr_buf_free(&only_a);
}

/* ---- immutable -------------------------------------------------------------- */

TR_TEST(immutable_refuses_later_writes)
{
    tr_err_t err;
    tr_strategies_t *st = strategies(seed_config, NULL, &err);
    TR_CHECK(st);
    tr_buf_t s = {0};
    tr_op_t a = setop(1, 1, 2, "u", "id", "\"u-1\"", NULL);
    tr_op_t b = setop(2, 1, 5, "u", "id", "\"u-2\"", NULL);
    tr_op_t same = setop(3, 1, 6, "u", "id", "\"u-1\"", NULL);
    TR_CHECK_INT(ap(&s, &b, st, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_INT(ap(&s, &a, st, 0).kind, ==, TR_CRDT_CHANGED); /* the earlier write wins */
    tr_crdt_effect_t e = ap(&s, &b, st, 0);
    TR_CHECK_INT(e.kind, ==, TR_CRDT_REFUSED);
    TR_CHECK_INT(e.code, ==, TR_EIMMUTABLE);
    TR_CHECK(strstr(e.reason, "field \"id\" is immutable") != NULL);
    TR_CHECK_INT(e.strategy, ==, TR_STRATEGY_IMMUTABLE);
    TR_CHECK_INT(ap(&s, &same, st, 0).kind, ==, TR_CRDT_UNCHANGED);
    TR_CHECK_STR(val(st, &s, 0, NULL), "\"u-1\"");
    tr_strategies_destroy(&st);
    tr_buf_free(&s);
}

/* ---- append_wins and union_merge ---------------------------------------------- */

TR_TEST(append_keeps_every_append)
{
    tr_err_t err;
    tr_strategies_t *st = strategies(seed_config, NULL, &err);
    TR_CHECK(st);
    tr_buf_t s = {0}, t = {0};
    tr_op_t a = fieldop(1, 1, 2, "field.append", "u", "steps", "\"fetch\"");
    tr_op_t b = fieldop(2, 1, 2, "field.append", "u", "steps", "\"build\"");
    tr_op_t c = fieldop(1, 2, 3, "field.append", "u", "steps", "\"test\"");
    tr_op_t d = fieldop(3, 1, 1, "field.append", "u", "steps", "\"fetch\"");
    const tr_op_t *order1[] = {&a, &b, &c, &d}, *order2[] = {&c, &d, &b, &a, &c};
    for (size_t i = 0; i < 4; i++)
        TR_CHECK_INT(ap(&s, order1[i], st, 0).kind, ==, TR_CRDT_CHANGED);
    for (size_t i = 0; i < 5; i++)
        (void)ap(&t, order2[i], st, 0);
    TR_CHECK_STR(val(st, &s, 0, NULL), "[\"fetch\",\"fetch\",\"build\",\"test\"]");
    TR_CHECK(t.len == s.len && memcmp(t.data, s.data, s.len) == 0);
    /* field.set does not fit an append_wins field. */
    tr_op_t bad = setop(1, 3, 4, "u", "steps", "[]", NULL);
    tr_crdt_effect_t e = ap(&s, &bad, st, 0);
    TR_CHECK_INT(e.kind, ==, TR_CRDT_REFUSED);
    TR_CHECK_INT(e.code, ==, TR_EKIND);
    TR_CHECK(strstr(e.reason, "append_wins") != NULL);
    tr_strategies_destroy(&st);
    tr_buf_free(&s);
    tr_buf_free(&t);
}

TR_TEST(union_collapses_duplicates)
{
    tr_err_t err;
    tr_strategies_t *st = strategies(seed_config, NULL, &err);
    TR_CHECK(st);
    tr_buf_t s = {0}, t = {0};
    tr_op_t ops[] = {
        fieldop(1, 1, 1, "field.add", "u", "imports", "\"lib/a\""),
        fieldop(2, 1, 1, "field.add", "u", "imports", "\"lib/b\""),
        fieldop(3, 1, 2, "field.add", "u", "imports", "\"lib/a\""),
        fieldop(1, 2, 3, "field.remove", "u", "imports", "\"lib/b\""),
        fieldop(2, 2, 3, "field.add", "u", "imports", "\"lib/b\""), /* ties: add wins */
        fieldop(3, 2, 4, "field.remove", "u", "imports", "\"lib/c\""),
        fieldop(1, 3, 2, "field.add", "u", "imports", "{\"x\": 1}"),
    };
    for (size_t i = 0; i < 7; i++)
        (void)ap(&s, &ops[i], st, 0);
    for (size_t i = 7; i-- > 0;)
        (void)ap(&t, &ops[i], st, 0);
    /* in canonical byte order: a map (0x81…) sorts before strings (0xa5…) */
    TR_CHECK_STR(val(st, &s, 0, NULL), "[{\"x\":1},\"lib/a\",\"lib/b\"]");
    TR_CHECK(t.len == s.len && memcmp(t.data, s.data, s.len) == 0);
    tr_op_t rm = fieldop(1, 4, 9, "field.remove", "u", "imports", "\"lib/a\"");
    TR_CHECK_INT(ap(&s, &rm, st, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(st, &s, 0, NULL), "[{\"x\":1},\"lib/b\"]");
    tr_op_t bad = fieldop(1, 5, 10, "field.add", "u", "title", "1");
    TR_CHECK_INT(ap(&s, &bad, st, 0).kind, ==, TR_CRDT_REFUSED);
    tr_strategies_destroy(&st);
    tr_buf_free(&s);
    tr_buf_free(&t);
}

/* ---- files and entity deletion --------------------------------------------------- */

TR_TEST(files)
{
    static const char *h1 =
        "{\"$bin\": \"1111111111111111111111111111111111111111111111111111111111111111\"}";
    char body[512];
    tr_buf_t a = {0}, b = {0};
    snprintf(body, sizeof body, "{\"hash\": %s, \"path\": \"a\", \"size\": 3}", h1);
    tr_op_t add = jop(1, 1, 1, "file.add", "a", body);
    snprintf(body, sizeof body, "{\"from\": \"a\", \"hash\": %s, \"path\": \"b\", \"size\": 3}",
             h1);
    tr_op_t mv = jop(1, 2, 2, "file.rename", "b", body);
    TR_CHECK_INT(ap(&a, &add, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    tr_crdt_info_t info;
    TR_CHECK_STR(
        val(NULL, &a, 0, &info),
        "{\"hash\":{\"$bin\":\"1111111111111111111111111111111111111111111111111111111111111111\"},"
        "\"size\":3}");
    TR_CHECK(info.present);
    TR_CHECK_INT(ap(&a, &mv, NULL, 1).kind, ==, TR_CRDT_CHANGED); /* old path: gone */
    TR_CHECK_STR(val(NULL, &a, 0, &info), "null");
    TR_CHECK(!info.present);
    TR_CHECK_INT(ap(&b, &mv, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK(strstr(val(NULL, &b, 0, NULL), "\"size\":3") != NULL);
    tr_op_t del = jop(2, 1, 3, "file.delete", "b", "{\"path\": \"b\"}");
    TR_CHECK_INT(ap(&b, &del, NULL, 0).kind, ==, TR_CRDT_CHANGED);
    TR_CHECK_STR(val(NULL, &b, 0, NULL), "null");
    tr_buf_free(&a);
    tr_buf_free(&b);
}

TR_TEST(entity_delete_hides_older_writes)
{
    tr_err_t err;
    tr_strategies_t *st = strategies(seed_config, NULL, &err);
    TR_CHECK(st);
    tr_buf_t title = {0}, steps = {0}, views = {0}, tomb = {0};
    tr_op_t t1 = setop(1, 1, 1, "u", "title", "\"old\"", NULL);
    tr_op_t s1 = fieldop(1, 2, 2, "field.append", "u", "steps", "\"one\"");
    tr_op_t v1 = counterop(1, 3, 3, "u", "views", 4);
    tr_op_t del = jop(2, 1, 4, "entity.delete", "u", "{}");
    tr_op_t s2 = fieldop(1, 4, 4, "field.append", "u", "steps", "\"two\""); /* concurrent, tie */
    (void)ap(&title, &t1, st, 0);
    (void)ap(&steps, &s1, st, 0);
    (void)ap(&steps, &s2, st, 0);
    (void)ap(&views, &v1, st, 0);
    TR_CHECK_INT(ap(&tomb, &del, st, 0).kind, ==, TR_CRDT_CHANGED);
    tr_crdt_info_t info;
    (void)val(st, &tomb, 0, &info);
    uint64_t T = info.lamport;
    TR_CHECK_INT(T, ==, 4);
    TR_CHECK_STR(val(st, &title, T, &info), "null");
    TR_CHECK(!info.present);
    TR_CHECK_STR(val(st, &steps, T, NULL), "[\"two\"]"); /* the write wins the tie */
    TR_CHECK_STR(val(st, &views, T, &info), "null");
    /* A counter incremented after the deletion shows again, whole. */
    tr_op_t v2 = counterop(1, 5, 5, "u", "views", 1);
    (void)ap(&views, &v2, st, 0);
    TR_CHECK_STR(val(st, &views, T, NULL), "5");
    tr_strategies_destroy(&st);
    tr_buf_free(&title);
    tr_buf_free(&steps);
    tr_buf_free(&views);
    tr_buf_free(&tomb);
}

/* ---- fingerprints ------------------------------------------------------------------ */

static void key_of(const tr_op_t *op, tr_buf_t *k)
{
    tr_crdt_op_t v;
    tr_buf_reset(k);
    if (tr_crdt_classify(op, &v, NULL) || tr_crdt_op_key(&v, 0, k)) abort();
}

TR_TEST(fingerprint)
{
    tr_err_t err;
    tr_strategies_t *st = strategies(seed_config, NULL, &err);
    TR_CHECK(st);
    tr_crdt_entity_t *e = NULL;
    TR_CHECK_INT(tr_crdt_entity_new(&e), ==, TR_OK);
    tr_buf_t title = {0}, views = {0}, shadow = {0}, k1 = {0}, k2 = {0}, k3 = {0}, map = {0};
    tr_op_t t1 = setop(1, 1, 1, "u", "title", "\"A\"", NULL);
    tr_op_t v1 = counterop(1, 2, 2, "u", "views", 2);
    tr_op_t sh = counterop(1, 3, 3, "u", "title", 9); /* a counter named like a field */
    (void)ap(&title, &t1, st, 0);
    (void)ap(&views, &v1, st, 0);
    (void)ap(&shadow, &sh, st, 0);
    key_of(&t1, &k1);
    key_of(&v1, &k2);
    key_of(&sh, &k3);

    uint8_t fp1[32], fp2[32], fp3[32];
    size_t n;
    tr_crdt_entity_reset(e, 0);
    TR_CHECK_INT(tr_crdt_entity_add(e, st, k3.data, k3.len, shadow.data, shadow.len, &err), ==, 0);
    TR_CHECK_INT(tr_crdt_entity_add(e, st, k2.data, k2.len, views.data, views.len, &err), ==, 0);
    TR_CHECK_INT(tr_crdt_entity_add(e, st, k1.data, k1.len, title.data, title.len, &err), ==, 0);
    TR_CHECK_INT(tr_crdt_entity_finish(e, &map, fp1, &n, &err), ==, TR_OK);
    TR_CHECK_INT(n, ==, 2);
    /* {"title": "A", "views": 2}: keys sorted, the field shadows the counter */
    static const uint8_t want[] = {0x82, 0xa5, 't', 'i', 't', 'l', 'e', 0xa1,
                                   'A',  0xa5, 'v', 'i', 'e', 'w', 's', 0x02};
    TR_CHECK_INT(map.len, ==, sizeof want);
    TR_CHECK_MEM(map.data, want, sizeof want);
    uint8_t h[32];
    crypto_generichash(h, 32, want, sizeof want, NULL, 0);
    TR_CHECK_MEM(fp1, h, 32);

    /* tr_crdt_fingerprint on the same fields agrees. */
    tr_crdt_field_t f[2] = {{S("title"), want + 7, 2}, {S("views"), want + 15, 1}};
    TR_CHECK_INT(tr_crdt_fingerprint(f, 2, fp2, &err), ==, TR_OK);
    TR_CHECK_MEM(fp2, fp1, 32);
    tr_crdt_field_t g[2] = {f[1], f[0]};
    TR_CHECK_INT(tr_crdt_fingerprint(g, 2, fp2, &err), ==, TR_EINVAL);
    tr_crdt_field_t fpf = {S("fingerprint"), want + 8, 1};
    TR_CHECK_INT(tr_crdt_fingerprint(&fpf, 1, fp2, &err), ==, TR_EINVAL);

    /* A change of value changes the fingerprint. */
    tr_op_t t2 = setop(2, 1, 4, "u", "title", "\"B\"", &title);
    (void)ap(&title, &t2, st, 0);
    tr_crdt_entity_reset(e, 0);
    TR_CHECK_INT(tr_crdt_entity_add(e, st, k1.data, k1.len, title.data, title.len, &err), ==, 0);
    TR_CHECK_INT(tr_crdt_entity_add(e, st, k2.data, k2.len, views.data, views.len, &err), ==, 0);
    TR_CHECK_INT(tr_crdt_entity_finish(e, NULL, fp3, &n, &err), ==, TR_OK);
    TR_CHECK(memcmp(fp3, fp1, 32) != 0);

    /* After a deletion newer than every write, nothing is visible. */
    tr_crdt_entity_reset(e, 10);
    TR_CHECK_INT(tr_crdt_entity_add(e, st, k1.data, k1.len, title.data, title.len, &err), ==, 0);
    TR_CHECK_INT(tr_crdt_entity_finish(e, NULL, fp3, &n, &err), ==, TR_OK);
    TR_CHECK_INT(n, ==, 0);

    /* No op may set it. */
    tr_op_t bad =
        jop(1, 9, 9, "field.set", "u", "{\"field\": \"fingerprint\", \"pred\": [], \"value\": 1}");
    TR_CHECK_INT(ap(&title, &bad, st, 0).code, ==, TR_EIMMUTABLE);
    tr_crdt_entity_destroy(&e);
    TR_CHECK(e == NULL);
    tr_strategies_destroy(&st);
    tr_buf_free(&title);
    tr_buf_free(&views);
    tr_buf_free(&shadow);
    tr_buf_free(&k1);
    tr_buf_free(&k2);
    tr_buf_free(&k3);
    tr_buf_free(&map);
}

/* ---- robustness --------------------------------------------------------------------- */

TR_TEST(corrupt_state_is_reported)
{
    tr_op_t a = setop(1, 1, 1, "u", "title", "1", NULL);
    tr_op_t t = tripleop(1, 1, 1, "triple.add", "s", "p", "o");
    tr_op_t c = counterop(1, 1, 1, "u", "n", 1);
    static const uint8_t junk[][8] = {
        {0x93, 0x01, 0x01},       {0x96, 0x02, 0x01, 0xc4, 0x01, 0x00}, {0xc1}, {0x92, 0x09, 0x90},
        {0x93, 0x08, 0x01, 0x91}, {0x93, 0x01, 0x01, 0x02, 0x00},
    };
    static const size_t jl[] = {3, 6, 1, 3, 4, 5};
    for (size_t i = 0; i < 6; i++) {
        tr_buf_t s = {0};
        if (tr_buf_append(&s, junk[i], jl[i])) abort();
        TR_CHECK_INT(ap(&s, &a, NULL, 0).code, ==, TR_ECORRUPT);
        TR_CHECK_INT(ap(&s, &t, NULL, 0).code, ==, TR_ECORRUPT);
        TR_CHECK_INT(ap(&s, &c, NULL, 0).code, ==, TR_ECORRUPT);
        TR_CHECK_INT(tr_crdt_value(NULL, s.data, s.len, 0, NULL, NULL, NULL), ==, TR_ECORRUPT);
        tr_buf_free(&s);
    }
}

/* A strategy change without a rebuild: register states convert, others are
 * refused with a reason that says to rebuild. */
TR_TEST(strategy_change_converts_registers)
{
    tr_err_t err;
    tr_strategies_t *manual = strategies("{\"title\": \"manual_resolution\"}", NULL, &err);
    tr_strategies_t *append = strategies("{\"title\": \"append_wins\"}", NULL, &err);
    TR_CHECK(manual && append);
    tr_buf_t s = {0};
    tr_op_t a = setop(1, 1, 1, "u", "title", "\"a\"", NULL);
    (void)ap(&s, &a, NULL, 0);
    tr_op_t b = setop(2, 1, 1, "u", "title", "\"b\"", NULL); /* concurrent */
    TR_CHECK_INT(ap(&s, &b, manual, 0).kind, ==, TR_CRDT_CONFLICT_OPENED);
    TR_CHECK_STR(val(manual, &s, 0, NULL), "{\"$conflict\":[\"a\",\"b\"]}");
    tr_op_t c = setop(1, 2, 2, "u", "title", "\"c\"", &s);
    TR_CHECK_INT(ap(&s, &c, NULL, 0).kind, ==, TR_CRDT_CHANGED); /* back to lww */
    TR_CHECK_STR(val(NULL, &s, 0, NULL), "\"c\"");
    tr_op_t d = fieldop(1, 3, 3, "field.append", "u", "title", "\"d\"");
    tr_crdt_effect_t e = ap(&s, &d, append, 0);
    TR_CHECK_INT(e.kind, ==, TR_CRDT_REFUSED);
    TR_CHECK(strstr(e.reason, "rebuild") != NULL);
    tr_strategies_destroy(&manual);
    tr_strategies_destroy(&append);
    tr_buf_free(&s);
}

TR_TEST(body_builders_classify)
{
    tr_buf_t b = {0};
    static const uint8_t h[32] = {9};
    tr_crdt_op_t v;
    TR_CHECK_INT(tr_crdt_body_file(S("p/q"), h, 1ull << 40, (tr_crdt_str_t){0}, &b), ==, TR_OK);
    tr_op_t op = mkop(1, 1, 1, "file.modify", "p/q", b.data, b.len);
    TR_CHECK_INT(tr_crdt_classify(&op, &v, NULL), ==, TR_OK);
    TR_CHECK(v.size == 1ull << 40 && v.content_hash[0] == 9);
    tr_buf_reset(&b);
    TR_CHECK_INT(tr_crdt_body_file(S("p/q"), NULL, 0, (tr_crdt_str_t){0}, &b), ==, TR_OK);
    op = mkop(1, 1, 1, "file.delete", "p/q", b.data, b.len);
    TR_CHECK_INT(tr_crdt_classify(&op, &v, NULL), ==, TR_OK);
    tr_buf_reset(&b);
    TR_CHECK_INT(tr_crdt_body_counter(S("n"), INT64_MIN, &b), ==, TR_OK);
    op = mkop(1, 1, 1, "counter.add", "u", b.data, b.len);
    TR_CHECK_INT(tr_crdt_classify(&op, &v, NULL), ==, TR_OK);
    TR_CHECK(v.n == INT64_MIN);
    TR_CHECK_STR(tr_crdt_kind_name(TR_CRDT_ENTITY_DELETE), "entity.delete");
    tr_buf_free(&b);
}

TR_MAIN()
