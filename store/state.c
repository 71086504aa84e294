/*
 * state.c — the materializer: every op that enters a branch's log is
 * classified and applied (docs/crdt.md) in the same write transaction, and
 * the tables derived from the states are kept with them:
 *
 *   state      bid ‖ state key → state                  (every key an op touched)
 *   t_pos      bid ‖ [p, o, s] → ∅                       (present triples)
 *   t_osp      bid ‖ [o, s, p] → ∅                       (present triples)
 *   conflicts  bid ‖ ["f", e, f] → ∅                     (manual fields, ≥ 2 candidates)
 *   entities   bid ‖ ["d", e] → fingerprint             (entities with a visible field)
 *   refused    bid, pos → code, hash, reason             (ops in the log, not materialized)
 *
 * Keys longer than LMDB allows are mapped (store_internal.h, SKEY_*). What
 * refuses a record, what is only journaled and what is opaque is decided
 * here and documented in docs/storage.md §9.
 *
 * One op goes through two steps so that a refusal can come before the op
 * is in the log: state_prepare (classify, check the pred, apply into
 * buffers — reads only) and state_commit (from store_apply: writes). The
 * fingerprints of the entities a txn changed are recomputed once, at its
 * end (state_finish), from their field and counter states.
 */
#include "store_internal.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const sdbi_names[SDBI_N] = {
    [SDBI_STATE] = "state",         [SDBI_TPOS] = "t_pos",        [SDBI_TOSP] = "t_osp",
    [SDBI_CONFLICTS] = "conflicts", [SDBI_ENTITIES] = "entities", [SDBI_REFUSED] = "refused",
};

/* Materializing this txn: yes; no, the state is not built (only append);
 * no, the state belongs to other strategies (refuse materializable ops). */
enum { MAT_ON, MAT_SKIP, MAT_STALE };

/* What state_commit does with the prepared op. */
enum { OUT_NONE, OUT_OPAQUE, OUT_JOURNAL, OUT_APPLY };

typedef struct state_tx {
    int mode;
    bool forced;     /* a rebuild: materialize whatever the meta says */
    bool set_digest; /* an empty store: record our digest at the end */
    uint8_t digest[TR_HASH_LEN];
    /* the prepared op */
    bool prepared;
    uint8_t phash[TR_HASH_LEN];
    int outcome;
    int jcode;
    char jwhy[512];
    tr_crdt_op_t v;
    tr_buf_t skey[2], nstate[2];
    tr_crdt_effect_t eff[2];
    bool told, tnew; /* a triple's presence before and after */
    /* scratch */
    tr_buf_t mk, tmp, prefix;
    tr_crdt_entry_t ents[TR_CRDT_PRED_MAX + 1];
    /* entities changed by this txn: records of bid u32, len u32, bytes */
    tr_buf_t touched;
    size_t ntouched;
    tr_crdt_entity_t *ent;
} state_tx_t;

#define META_DIGEST "state_digest"
#define META_BUILD "state_build" /* a rebuild is under way: see rebuild.c */

/* ---- tables --------------------------------------------------------------- */

int state_dbis_open(tr_store_t *s, MDB_txn *txn, bool create, tr_err_t *err)
{
    for (int i = 0; i < SDBI_N; i++) {
        int rc = mdb_dbi_open(txn, sdbi_names[i], create ? MDB_CREATE : 0, &s->sdbi[i]);
        if (rc == MDB_NOTFOUND) return TR_ENOTFOUND;
        if (rc) return store_mdb_err(err, rc, "opening a state table");
    }
    s->state_tables = true;
    return TR_OK;
}

void tr_store_set_strategies(tr_store_t *s, const tr_strategies_t *st)
{
    if (s) s->strategies = st;
}

const tr_strategies_t *tr_store_strategies(const tr_store_t *s)
{
    return s ? s->strategies : NULL;
}

/* ---- mapped keys ---------------------------------------------------------- */

/* out = bid ‖ k, or bid ‖ k[0..SKEY_PREFIX) ‖ BLAKE2b-256(k) when k is
 * longer than SKEY_SHORT. */
static int mkey(tr_buf_t *out, uint32_t bid, const uint8_t *k, size_t n, bool *islong)
{
    tr_buf_reset(out);
    if (tr_buf_reserve(out, SKEY_LONG)) return TR_ENOMEM;
    be32_put(out->data, bid);
    if (n <= SKEY_SHORT) {
        memcpy(out->data + 4, k, n);
        out->len = 4 + n;
        *islong = false;
    } else {
        memcpy(out->data + 4, k, SKEY_PREFIX);
        crypto_generichash(out->data + 4 + SKEY_PREFIX, TR_HASH_LEN, k, n, NULL, 0);
        out->len = SKEY_LONG;
        *islong = true;
    }
    return TR_OK;
}

/* Splits a stored entry into the whole key and the payload. */
static int munpack(const MDB_val *key, const MDB_val *val, const uint8_t **k, size_t *kn,
                   const uint8_t **v, size_t *vn)
{
    if (key->mv_size < 4) return TR_ECORRUPT;
    if (key->mv_size != SKEY_LONG) {
        *k = (const uint8_t *)key->mv_data + 4;
        *kn = key->mv_size - 4;
        *v = val->mv_data;
        *vn = val->mv_size;
        return TR_OK;
    }
    tr_rd_t r;
    tr_rd_init(&r, val->mv_data, val->mv_size);
    if (tr_rd_value(&r, k, kn) || *kn <= SKEY_SHORT) return TR_ECORRUPT;
    *v = r.p;
    *vn = (size_t)(r.end - r.p);
    return TR_OK;
}

static int corrupt(tr_err_t *err, const char *table)
{
    return tr_err_set(err, TR_ECORRUPT, "a malformed entry in the '%s' table", table);
}

/* Reads the payload stored under (bid, k) in dbi: *v = NULL if absent.
 * The pointers are valid until the next write in txn. */
static int sget(MDB_txn *txn, MDB_dbi dbi, const char *table, tr_buf_t *mk, uint32_t bid,
                const uint8_t *k, size_t kn, const uint8_t **v, size_t *vn, tr_err_t *err)
{
    bool lng;
    *v = NULL;
    *vn = 0;
    if (mkey(mk, bid, k, kn, &lng)) return tr_err_set(err, TR_ENOMEM, "out of memory");
    MDB_val key = {mk->len, mk->data}, d;
    int rc = mdb_get(txn, dbi, &key, &d);
    if (rc == MDB_NOTFOUND) return TR_OK;
    if (rc) return store_mdb_err(err, rc, "reading the materialized state");
    const uint8_t *fk;
    size_t fkn;
    if (munpack(&key, &d, &fk, &fkn, v, vn)) return corrupt(err, table);
    if (lng && (fkn != kn || memcmp(fk, k, kn) != 0))
        return tr_err_set(err, TR_ECORRUPT, "'%s' table: a long key's entry holds another key",
                          table);
    return TR_OK;
}

static int sput(MDB_txn *txn, MDB_dbi dbi, tr_buf_t *mk, uint32_t bid, const uint8_t *k, size_t kn,
                const uint8_t *v, size_t vn, tr_err_t *err)
{
    bool lng;
    if (mkey(mk, bid, k, kn, &lng)) return tr_err_set(err, TR_ENOMEM, "out of memory");
    size_t pre = lng ? kn : 0;
    MDB_val key = {mk->len, mk->data}, d = {pre + vn, NULL};
    int rc = mdb_put(txn, dbi, &key, &d, MDB_RESERVE);
    if (rc) return store_mdb_err(err, rc, "writing the materialized state");
    if (pre) memcpy(d.mv_data, k, kn);
    if (vn) memcpy((uint8_t *)d.mv_data + pre, v, vn);
    return TR_OK;
}

static int sdel(MDB_txn *txn, MDB_dbi dbi, tr_buf_t *mk, uint32_t bid, const uint8_t *k, size_t kn,
                tr_err_t *err)
{
    bool lng;
    if (mkey(mk, bid, k, kn, &lng)) return tr_err_set(err, TR_ENOMEM, "out of memory");
    MDB_val key = {mk->len, mk->data};
    int rc = mdb_del(txn, dbi, &key, NULL);
    if (rc && rc != MDB_NOTFOUND) return store_mdb_err(err, rc, "writing the materialized state");
    return TR_OK;
}

/* state_scan on an open cursor (`table` names it in messages). */
static int scan_cursor(MDB_cursor *c, const char *table, uint32_t bid, const uint8_t *prefix,
                       size_t plen, tr_buf_t *mk, state_kv_fn fn, void *arg, tr_err_t *err)
{
    size_t mplen = plen < SKEY_PREFIX ? plen : SKEY_PREFIX;
    tr_buf_reset(mk);
    if (tr_buf_reserve(mk, 4 + mplen)) return tr_err_set(err, TR_ENOMEM, "out of memory");
    be32_put(mk->data, bid);
    if (mplen) memcpy(mk->data + 4, prefix, mplen);
    mk->len = 4 + mplen;
    int rc;
    MDB_val key = {mk->len, mk->data}, d;
    int r = TR_OK;
    for (rc = mdb_cursor_get(c, &key, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &key, &d, MDB_NEXT)) {
        if (key.mv_size < mk->len || memcmp(key.mv_data, mk->data, mk->len) != 0) break;
        const uint8_t *k, *v;
        size_t kn, vn;
        if (munpack(&key, &d, &k, &kn, &v, &vn)) {
            r = corrupt(err, table);
            break;
        }
        if (plen > mplen && (kn < plen || memcmp(k, prefix, plen) != 0)) continue;
        if ((r = fn(arg, k, kn, v, vn)) != 0) break;
    }
    if (r == TR_OK && rc != 0 && rc != MDB_NOTFOUND)
        r = store_mdb_err(err, rc, "reading the materialized state");
    return r;
}

int state_scan(MDB_txn *txn, MDB_dbi dbi, const char *table, uint32_t bid, const uint8_t *prefix,
               size_t plen, tr_buf_t *mk, state_kv_fn fn, void *arg, tr_err_t *err)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc) return store_mdb_err(err, rc, "reading the materialized state");
    int r = scan_cursor(c, table, bid, prefix, plen, mk, fn, arg, err);
    mdb_cursor_close(c);
    return r;
}

int state_get(MDB_txn *txn, const tr_store_t *s, int sdbi, tr_buf_t *mk, uint32_t bid,
              const uint8_t *k, size_t kn, const uint8_t **v, size_t *vn, tr_err_t *err)
{
    return sget(txn, s->sdbi[sdbi], sdbi_names[sdbi], mk, bid, k, kn, v, vn, err);
}

const char *state_table_name(int sdbi)
{
    return sdbi >= 0 && sdbi < SDBI_N ? sdbi_names[sdbi] : "?";
}

int state_unpack(const MDB_val *key, const MDB_val *val, const uint8_t **k, size_t *kn,
                 const uint8_t **v, size_t *vn)
{
    return munpack(key, val, k, kn, v, vn);
}

/* ---- the state's status ----------------------------------------------------- */

static int meta_get(MDB_txn *txn, const tr_store_t *s, const char *k, MDB_val *d, tr_err_t *err)
{
    MDB_val key = {strlen(k), (void *)k};
    int rc = mdb_get(txn, s->dbi[DBI_META], &key, d);
    if (rc == MDB_NOTFOUND) return TR_ENOTFOUND;
    if (rc) return store_mdb_err(err, rc, "reading meta");
    return TR_OK;
}

int state_status_txn(const tr_store_t *s, MDB_txn *txn, tr_state_status_t *out, bool *empty,
                     tr_err_t *err)
{
    uint8_t want[TR_HASH_LEN];
    MDB_val d;
    tr_strategies_digest(s->strategies, want);
    *empty = false;
    int r = meta_get(txn, s, META_DIGEST, &d, err);
    if (r == TR_OK) {
        if (d.mv_size != TR_HASH_LEN)
            return tr_err_set(err, TR_ECORRUPT, "meta '%s' has %zu bytes", META_DIGEST, d.mv_size);
        *out = memcmp(d.mv_data, want, TR_HASH_LEN) == 0 ? TR_STATE_READY : TR_STATE_STALE;
        return TR_OK;
    }
    if (r != TR_ENOTFOUND) return r;
    r = meta_get(txn, s, META_BUILD, &d, err);
    if (r == TR_OK) {
        *out = TR_STATE_UNBUILT;
        return TR_OK;
    }
    if (r != TR_ENOTFOUND) return r;
    uint64_t count;
    if ((r = store_meta_u64(s, txn, "count", &count, err))) return r;
    *empty = count == 0;
    *out = count == 0 ? TR_STATE_READY : TR_STATE_UNBUILT;
    return TR_OK;
}

int tr_store_state_status(tr_store_t *s, tr_state_status_t *out, tr_err_t *err)
{
    if (!s || !out) return tr_err_set(err, TR_EINVAL, "tr_store_state_status: missing argument");
    MDB_txn *txn;
    int r = store_read_begin(s, &txn, err);
    if (r) return r;
    bool empty;
    if (!s->state_tables) {
        uint64_t count;
        r = store_meta_u64(s, txn, "count", &count, err);
        *out = count ? TR_STATE_UNBUILT : TR_STATE_READY;
    } else {
        r = state_status_txn(s, txn, out, &empty, err);
    }
    store_read_end(s);
    return r;
}

static int stale_error(tr_err_t *err)
{
    return tr_err_set(err, TR_ECONFIG,
                      "the materialized state was built with other field strategies than this "
                      "process has (fieldStrategies or restrictionOrder in config.json changed): "
                      "run 'trellis rebuild' (and restart trellisd, which reads config.json when "
                      "it starts)");
}

static int unbuilt_error(tr_err_t *err)
{
    return tr_err_set(err, TR_ECONFIG,
                      "the materialized state is not built (a store made by an older trellis, "
                      "or a rebuild that did not finish): run 'trellis rebuild'");
}

/* ---- per txn ---------------------------------------------------------------- */

int state_begin(wtx_t *w, tr_err_t *err)
{
    if (!w->s->state_tables) return tr_err_set(err, TR_ECORRUPT, "the store has no state tables");
    state_tx_t *t = w->st;
    if (!t) {
        if (!(t = calloc(1, sizeof *t)) || tr_crdt_entity_new(&t->ent)) {
            free(t);
            return tr_err_set(err, TR_ENOMEM, "out of memory");
        }
        w->st = t;
    }
    t->prepared = false;
    t->set_digest = false;
    t->ntouched = 0;
    tr_buf_reset(&t->touched);
    tr_strategies_digest(w->s->strategies, t->digest);
    if (t->forced) {
        t->mode = MAT_ON;
        return TR_OK;
    }
    tr_state_status_t st;
    bool empty;
    int r = state_status_txn(w->s, w->txn, &st, &empty, err);
    if (r) return r;
    t->mode = st == TR_STATE_READY ? MAT_ON : st == TR_STATE_STALE ? MAT_STALE : MAT_SKIP;
    t->set_digest = empty;
    return TR_OK;
}

void state_force(wtx_t *w)
{
    if (!w->st) return;
    w->st->forced = true;
    w->st->mode = MAT_ON;
    w->st->set_digest = false;
}

void state_free(wtx_t *w)
{
    state_tx_t *t = w->st;
    if (!t) return;
    for (int i = 0; i < 2; i++) {
        tr_buf_free(&t->skey[i]);
        tr_buf_free(&t->nstate[i]);
    }
    tr_buf_free(&t->mk);
    tr_buf_free(&t->tmp);
    tr_buf_free(&t->prefix);
    tr_buf_free(&t->touched);
    tr_crdt_entity_destroy(&t->ent);
    free(t);
    w->st = NULL;
}

/* ---- preparing one op --------------------------------------------------------- */

/* Kinds the materializer applies (all but app.* and link.repo). A cheap
 * look before tr_crdt_classify, whose refusal of an unknown kind formats a
 * long message: most ops of an application log are app.* or unknown. */
static bool kind_materialized(const char *k, size_t n)
{
    static const char *const names[] = {"triple.add",   "triple.remove", "field.set",
                                        "field.append", "field.add",     "field.remove",
                                        "counter.add",  "file.add",      "file.modify",
                                        "file.delete",  "file.rename",   "entity.delete"};
    if (n < 8 || n > 13) return false;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i][0] == k[0] && strlen(names[i]) == n && memcmp(names[i], k, n) == 0)
            return true;
    return false;
}

static bool is_app(const tr_op_t *op)
{
    return (op->kind_len > 4 && memcmp(op->kind, "app.", 4) == 0) ||
           (op->kind_len == 9 && memcmp(op->kind, "link.repo", 9) == 0);
}

static void TR_PRINTF(5, 6)
    set_why(int *refuse, char *why, size_t whylen, int code, const char *fmt, ...)
{
    va_list ap;
    *refuse = code;
    if (!why || !whylen) return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* Triple state [1, add, remove]: present iff add > 0 and add ≥ remove. */
static bool triple_present(const uint8_t *st, size_t n)
{
    tr_rd_t r;
    uint32_t len;
    uint64_t tag, add, rem;
    if (!st) return false;
    tr_rd_init(&r, st, n);
    if (tr_rd_array(&r, &len) || len != 3 || tr_rd_uint(&r, &tag) || tag != TR_CRDT_S_TRIPLE ||
        tr_rd_uint(&r, &add) || tr_rd_uint(&r, &rem))
        return false;
    return add > 0 && add >= rem;
}

/*
 * A field.set's pred must name ops of this branch (docs/crdt.md §8's
 * caveat). Every store integrates an op after all its ancestors, so an
 * honest pred is always known; an unknown one cannot be an ancestor, and
 * refusing the record (rather than storing it unmaterialized) lets it come
 * back once the op it names arrives — then every replica that holds the
 * write applied it after that op, as its writer did. Looked up in the
 * field's current state first (the usual pred is exactly its candidates),
 * then this txn's batch, then the hash index.
 */
static int pred_check(wtx_t *w, wbranch_t *b, uint32_t bid, const uint8_t *old, size_t oldlen,
                      int *refuse, char *why, size_t whylen, tr_err_t *err)
{
    state_tx_t *t = w->st;
    const tr_crdt_op_t *v = &t->v;
    size_t n = 0;
    if (old) {
        tr_err_t e = {0};
        if (tr_crdt_entries(old, oldlen, t->ents, TR_CRDT_PRED_MAX + 1, &n, &e))
            return tr_err_set(err, TR_ECORRUPT, "materialized state: %s", e.msg);
        if (n > TR_CRDT_PRED_MAX + 1) n = TR_CRDT_PRED_MAX + 1;
    }
    for (size_t j = 0; j < v->npred; j++) {
        const uint8_t *h = tr_crdt_pred_at(v, j);
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = memcmp(t->ents[i].hash, h, TR_HASH_LEN) == 0;
        if (!known && w->track_batch) {
            const wbatch_t *bt = tr_hmap_get(&w->batch, h);
            known = bt && bt->slot == (uint32_t)(b - w->br);
        }
        if (!known && bid) {
            loc_t loc;
            int r = hidx_find(w->s, w->txn, h, &loc, err);
            if (r == TR_OK)
                known = loc.bid == bid;
            else if (r != TR_ENOTFOUND)
                return r;
            tr_err_clear(err);
        }
        if (!known) {
            char hs[17], os[9];
            tr_hash_short(hs, h, 16);
            tr_hash_short(os, v->hash, 8);
            set_why(refuse, why, whylen, TR_EPARENT,
                    "op %s on '%s': field.set pred %s is not an op of this branch (a write may "
                    "only overwrite writes it has seen)",
                    os, b->name, hs);
            return TR_OK;
        }
    }
    return TR_OK;
}

int state_prepare(wtx_t *w, wbranch_t *b, uint32_t bid, const tr_op_t *op, int *refuse, char *why,
                  size_t whylen, tr_err_t *err)
{
    state_tx_t *t = w->st;
    bool strict = (w->wflags & TR_WRITE_STRICT) != 0;
    char hs[9];
    *refuse = 0;
    t->prepared = true;
    memcpy(t->phash, op->hash, TR_HASH_LEN);
    t->outcome = OUT_OPAQUE;
    if (!kind_materialized(op->kind, op->kind_len)) {
        if (strict && !is_app(op))
            set_why(refuse, why, whylen, TR_EKIND,
                    "unknown op kind \"%.*s\": trellis materializes triple.*, field.*, "
                    "counter.add, file.* and entity.delete (use app.* for your own kinds)",
                    (int)(op->kind_len > 64 ? 64 : op->kind_len), op->kind);
        return TR_OK;
    }
    tr_err_t e = {0};
    int rc = tr_crdt_classify(op, &t->v, &e);
    if (rc == TR_ENOMEM || rc == TR_EINVAL) return tr_err_set(err, rc, "%s", e.msg);
    if (rc) {
        if (strict) {
            set_why(refuse, why, whylen, rc, "%s", e.msg);
            return TR_OK;
        }
        t->outcome = OUT_JOURNAL;
        t->jcode = rc;
        snprintf(t->jwhy, sizeof t->jwhy, "%s", e.msg);
        return TR_OK;
    }
    if (t->v.nkeys == 0) return TR_OK;
    if (t->mode == MAT_STALE) return stale_error(err);
    bool check = b && t->v.kind == TR_CRDT_FIELD_SET && t->v.npred > 0;
    if (t->mode == MAT_SKIP) {
        if (strict) return unbuilt_error(err);
        t->outcome = OUT_NONE;
        return check ? pred_check(w, b, bid, NULL, 0, refuse, why, whylen, err) : TR_OK;
    }
    t->outcome = OUT_APPLY;
    for (size_t i = 0; i < t->v.nkeys; i++) {
        tr_buf_reset(&t->skey[i]);
        if (tr_crdt_op_key(&t->v, i, &t->skey[i]))
            return tr_err_set(err, TR_ENOMEM, "out of memory");
        const uint8_t *old = NULL;
        size_t oldlen = 0;
        if (bid && (rc = sget(w->txn, w->s->sdbi[SDBI_STATE], "state", &t->mk, bid, t->skey[i].data,
                              t->skey[i].len, &old, &oldlen, err)))
            return rc;
        if (old && oldlen == 0) return corrupt(err, "state");
        if (i == 0 && check && (rc = pred_check(w, b, bid, old, oldlen, refuse, why, whylen, err)))
            return rc;
        if (*refuse) return TR_OK;
        if ((rc = tr_crdt_apply(&t->v, i, w->s->strategies, old, oldlen, &t->nstate[i], &t->eff[i],
                                err))) {
            tr_hash_short(hs, op->hash, 8);
            return tr_err_prefix(err, rc, "materializing op %s: ", hs);
        }
        if (t->v.kind == TR_CRDT_TRIPLE_ADD || t->v.kind == TR_CRDT_TRIPLE_REMOVE) {
            t->told = triple_present(old, oldlen);
            t->tnew = tr_crdt_effect_writes(&t->eff[i])
                          ? triple_present(t->nstate[i].data, t->nstate[i].len)
                          : t->told;
        }
        if (t->eff[i].kind == TR_CRDT_REFUSED) {
            if (strict) {
                set_why(refuse, why, whylen, t->eff[i].code, "%s", t->eff[i].reason);
                return TR_OK;
            }
            t->outcome = OUT_JOURNAL;
            t->jcode = t->eff[i].code;
            snprintf(t->jwhy, sizeof t->jwhy, "%s", t->eff[i].reason);
        }
    }
    return TR_OK;
}

/* ---- committing it ------------------------------------------------------------ */

static int touch(state_tx_t *t, uint32_t bid, tr_crdt_str_t e, tr_err_t *err)
{
    uint8_t h[8];
    be32_put(h, bid);
    be32_put(h + 4, (uint32_t)e.n);
    if (tr_buf_append(&t->touched, h, 8) || tr_buf_append(&t->touched, e.p, e.n))
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    t->ntouched++;
    return TR_OK;
}

/* [a, b, c] with all three (for the triple indexes). */
static int idx3(tr_buf_t *out, tr_crdt_str_t a, tr_crdt_str_t b, tr_crdt_str_t c)
{
    msgpack_packer pk;
    tr_buf_reset(out);
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_array(&pk, 3) | tr_pack_str(&pk, a.p, a.n) | tr_pack_str(&pk, b.p, b.n) |
              tr_pack_str(&pk, c.p, c.n);
    return bad ? TR_ENOMEM : TR_OK;
}

static int triple_index(wtx_t *w, uint32_t bid, bool present, tr_err_t *err)
{
    state_tx_t *t = w->st;
    const tr_crdt_op_t *v = &t->v;
    MDB_txn *txn = w->txn;
    for (int which = 0; which < 2; which++) {
        int dbi = which ? SDBI_TOSP : SDBI_TPOS;
        int bad = which ? idx3(&t->tmp, v->o, v->s, v->p) : idx3(&t->tmp, v->p, v->o, v->s);
        if (bad) return tr_err_set(err, TR_ENOMEM, "out of memory");
        int r = present
                    ? sput(txn, w->s->sdbi[dbi], &t->mk, bid, t->tmp.data, t->tmp.len, NULL, 0, err)
                    : sdel(txn, w->s->sdbi[dbi], &t->mk, bid, t->tmp.data, t->tmp.len, err);
        if (r) return r;
    }
    return TR_OK;
}

static int journal_put(wtx_t *w, uint32_t bid, uint64_t pos, const uint8_t *hash, int code,
                       const char *why, tr_err_t *err)
{
    uint8_t k[LOG_KEY];
    log_key(k, bid, pos);
    size_t wl = strlen(why);
    MDB_val key = {LOG_KEY, k}, d = {4 + TR_HASH_LEN + wl, NULL};
    int rc = mdb_put(w->txn, w->s->sdbi[SDBI_REFUSED], &key, &d, MDB_RESERVE);
    if (rc) return store_mdb_err(err, rc, "journaling an op that was not materialized");
    uint8_t *p = d.mv_data;
    be32_put(p, (uint32_t)code);
    memcpy(p + 4, hash, TR_HASH_LEN);
    memcpy(p + 4 + TR_HASH_LEN, why, wl);
    return TR_OK;
}

int state_commit(wtx_t *w, uint32_t bid, const tr_op_t *op, uint64_t pos, tr_err_t *err)
{
    state_tx_t *t = w->st;
    int r;
    if (!t) return tr_err_set(err, TR_EINVAL, "state_commit: no state_begin");
    if (!t->prepared || memcmp(t->phash, op->hash, TR_HASH_LEN) != 0) {
        int refuse;
        char why[256];
        if ((r = state_prepare(w, NULL, bid, op, &refuse, why, sizeof why, err))) return r;
        if (refuse) return tr_err_set(err, refuse, "%s", why);
    }
    t->prepared = false;
    if (t->outcome == OUT_JOURNAL)
        return journal_put(w, bid, pos, op->hash, t->jcode, t->jwhy, err);
    if (t->outcome != OUT_APPLY) return TR_OK;
    const tr_crdt_op_t *v = &t->v;
    bool touched = false;
    for (size_t i = 0; i < v->nkeys; i++) {
        const tr_crdt_effect_t *e = &t->eff[i];
        if (!tr_crdt_effect_writes(e)) continue;
        if ((r = sput(w->txn, w->s->sdbi[SDBI_STATE], &t->mk, bid, t->skey[i].data, t->skey[i].len,
                      t->nstate[i].data, t->nstate[i].len, err)))
            return r;
        switch (v->kind) {
        case TR_CRDT_TRIPLE_ADD:
        case TR_CRDT_TRIPLE_REMOVE:
            if (t->told != t->tnew && (r = triple_index(w, bid, t->tnew, err))) return r;
            break;
        case TR_CRDT_FIELD_SET:
        case TR_CRDT_FIELD_APPEND:
        case TR_CRDT_FIELD_ADD:
        case TR_CRDT_FIELD_REMOVE:
            if (e->kind == TR_CRDT_CONFLICT_OPENED)
                r = sput(w->txn, w->s->sdbi[SDBI_CONFLICTS], &t->mk, bid, t->skey[i].data,
                         t->skey[i].len, NULL, 0, err);
            else if (e->kind == TR_CRDT_CONFLICT_CLOSED)
                r = sdel(w->txn, w->s->sdbi[SDBI_CONFLICTS], &t->mk, bid, t->skey[i].data,
                         t->skey[i].len, err);
            if (r) return r;
            touched = true;
            break;
        case TR_CRDT_COUNTER_ADD:
        case TR_CRDT_ENTITY_DELETE:
            touched = true;
            break;
        default:
            break;
        }
    }
    return touched ? touch(t, bid, v->target, err) : TR_OK;
}

/* ---- fingerprints ------------------------------------------------------------- */

typedef struct {
    tr_crdt_entity_t *ent;
    const tr_strategies_t *st;
    tr_err_t *err;
} ent_scan_t;

static int ent_add(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    ent_scan_t *x = arg;
    return tr_crdt_entity_add(x->ent, x->st, k, kn, v, vn, x->err);
}

/* The deletion lamport of an entity from its ["d", e] state (0: none). */
int state_tomb(MDB_txn *txn, const tr_store_t *s, tr_buf_t *key, tr_buf_t *mk, uint32_t bid,
               tr_crdt_str_t e, uint64_t *tomb, tr_err_t *err)
{
    const uint8_t *v;
    size_t vn, n;
    tr_crdt_entry_t ent;
    *tomb = 0;
    tr_buf_reset(key);
    if (tr_crdt_key_entity(e, key)) return tr_err_set(err, TR_ENOMEM, "out of memory");
    int r = sget(txn, s->sdbi[SDBI_STATE], "state", mk, bid, key->data, key->len, &v, &vn, err);
    if (r || !v) return r;
    tr_err_t e2 = {0};
    if (tr_crdt_entries(v, vn, &ent, 1, &n, &e2) || n != 1)
        return tr_err_set(err, TR_ECORRUPT, "an entity's deletion state does not decode");
    *tomb = ent.lamport;
    return TR_OK;
}

/* Gathers entity e's fields and counters into `ent` and finishes it,
 * scanning with cursor `c` on the state table (NULL: one of its own). */
static int entity_cur(MDB_txn *txn, MDB_cursor *c, const tr_store_t *s, tr_crdt_entity_t *ent,
                      tr_buf_t *key, tr_buf_t *mk, uint32_t bid, tr_crdt_str_t e, tr_buf_t *map,
                      uint8_t fp[TR_HASH_LEN], size_t *nfields, tr_err_t *err)
{
    uint64_t tomb;
    int r = state_tomb(txn, s, key, mk, bid, e, &tomb, err);
    if (r) return r;
    tr_crdt_entity_reset(ent, tomb);
    ent_scan_t x = {ent, s->strategies, err};
    static const tr_crdt_ns_t ns[2] = {TR_CRDT_NS_FIELD, TR_CRDT_NS_COUNTER};
    for (int i = 0; i < 2; i++) {
        tr_buf_reset(key);
        if (tr_crdt_key_prefix(ns[i], &e, 1, key))
            return tr_err_set(err, TR_ENOMEM, "out of memory");
        r = c ? scan_cursor(c, "state", bid, key->data, key->len, mk, ent_add, &x, err)
              : state_scan(txn, s->sdbi[SDBI_STATE], "state", bid, key->data, key->len, mk, ent_add,
                           &x, err);
        if (r) return r;
    }
    return tr_crdt_entity_finish(ent, map, fp, nfields, err);
}

int state_entity(MDB_txn *txn, const tr_store_t *s, tr_crdt_entity_t *ent, tr_buf_t *key,
                 tr_buf_t *mk, uint32_t bid, tr_crdt_str_t e, tr_buf_t *map,
                 uint8_t fp[TR_HASH_LEN], size_t *nfields, tr_err_t *err)
{
    return entity_cur(txn, NULL, s, ent, key, mk, bid, e, map, fp, nfields, err);
}

typedef struct {
    uint32_t bid;
    const uint8_t *p;
    uint32_t n;
} tent_t;

static int tent_cmp(const void *a, const void *b)
{
    const tent_t *x = a, *y = b;
    if (x->bid != y->bid) return x->bid < y->bid ? -1 : 1;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
    if (c) return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Recomputes the fingerprint of every entity this txn changed (once each,
 * in key order, so the entities table is written like an append). */
static int refresh_entities(wtx_t *w, tr_err_t *err)
{
    state_tx_t *t = w->st;
    tent_t *v = malloc(t->ntouched * sizeof *v);
    if (!v) return tr_err_set(err, TR_ENOMEM, "out of memory");
    const uint8_t *p = t->touched.data;
    for (size_t i = 0; i < t->ntouched; i++) {
        v[i].bid = be32_get(p);
        v[i].n = be32_get(p + 4);
        v[i].p = p + 8;
        p += 8 + v[i].n;
    }
    qsort(v, t->ntouched, sizeof *v, tent_cmp);
    MDB_cursor *c;
    int rc = mdb_cursor_open(w->txn, w->s->sdbi[SDBI_STATE], &c);
    if (rc) {
        free(v);
        return store_mdb_err(err, rc, "reading the materialized state");
    }
    int r = TR_OK;
    for (size_t i = 0; i < t->ntouched && !r; i++) {
        if (i && tent_cmp(&v[i - 1], &v[i]) == 0) continue;
        tr_crdt_str_t e = {(const char *)v[i].p, v[i].n};
        uint8_t fp[TR_HASH_LEN];
        size_t nf;
        r = entity_cur(w->txn, c, w->s, t->ent, &t->tmp, &t->mk, v[i].bid, e, NULL, fp, &nf, err);
        if (r) break;
        tr_buf_reset(&t->prefix);
        if (tr_crdt_key_entity(e, &t->prefix)) {
            r = tr_err_set(err, TR_ENOMEM, "out of memory");
            break;
        }
        MDB_dbi dbi = w->s->sdbi[SDBI_ENTITIES];
        r = nf ? sput(w->txn, dbi, &t->mk, v[i].bid, t->prefix.data, t->prefix.len, fp, TR_HASH_LEN,
                      err)
               : sdel(w->txn, dbi, &t->mk, v[i].bid, t->prefix.data, t->prefix.len, err);
    }
    mdb_cursor_close(c);
    free(v);
    t->ntouched = 0;
    tr_buf_reset(&t->touched);
    return r;
}

int state_finish(wtx_t *w, tr_err_t *err)
{
    state_tx_t *t = w->st;
    if (!t) return TR_OK;
    int r;
    if (t->ntouched && (r = refresh_entities(w, err))) return r;
    if (t->set_digest && w->total > w->total0) {
        MDB_val k = {strlen(META_DIGEST), META_DIGEST}, d = {TR_HASH_LEN, t->digest};
        int rc = mdb_put(w->txn, w->s->dbi[DBI_META], &k, &d, 0);
        if (rc) return store_mdb_err(err, rc, "writing meta");
    }
    return TR_OK;
}

/* ---- TR_WRITE_PRED -------------------------------------------------------------- */

int state_fill_pred(wtx_t *w, uint32_t bid, tr_op_t *op, tr_buf_t *body, tr_err_t *err)
{
    if (op->kind_len != 9 || memcmp(op->kind, "field.set", 9) != 0) return TR_OK;
    state_tx_t *t = w->st;
    if (t->mode == MAT_STALE) return stale_error(err);
    if (t->mode == MAT_SKIP) return unbuilt_error(err);
    tr_crdt_op_t v;
    tr_err_t e = {0};
    int rc = tr_crdt_classify(op, &v, &e);
    if (rc) return tr_err_set(err, rc, "%s", e.msg);
    tr_buf_reset(&t->tmp);
    if (tr_crdt_key_field(v.target, v.field, &t->tmp))
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    const uint8_t *st = NULL;
    size_t sn = 0;
    if (bid && (rc = sget(w->txn, w->s->sdbi[SDBI_STATE], "state", &t->mk, bid, t->tmp.data,
                          t->tmp.len, &st, &sn, err)))
        return rc;
    tr_buf_reset(body);
    if ((rc = tr_crdt_body_set(v.field, v.value, v.value_len, st, sn, body, err))) return rc;
    op->body = body->data;
    op->body_len = body->len;
    return TR_OK;
}

/* ---- meta for the rebuild ----------------------------------------------------- */

const char *state_meta_digest(void)
{
    return META_DIGEST;
}

const char *state_meta_build(void)
{
    return META_BUILD;
}
