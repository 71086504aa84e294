/*
 * rebuild.c — tr_store_rebuild (the materialized state recomputed from the
 * log) and the readers of the state tables (tr_store.h, "Materialized
 * state").
 *
 * A rebuild empties the state tables and replays every branch's log in
 * integration order through the same state_prepare/state_commit as the
 * write path, so it gives the bytes incremental materialization gave. It
 * runs in transactions of REBUILD_CHUNK ops; between them the meta key
 * "state_build" (digest 32, bid u32, pos u64) says how far it got, and
 * there is no "state_digest": writers meanwhile only append (state.c,
 * MAT_SKIP) and each chunk re-reads the branches' lengths, so the last
 * chunk — which records the digest in the transaction that reaches the end
 * of every log — materializes their ops too. An interrupted rebuild leaves
 * the marker; the next one with the same strategies resumes from it.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#define REBUILD_CHUNK 100000u
#define BUILD_LEN (TR_HASH_LEN + 4 + 8)

static uint64_t rebuild_chunk = REBUILD_CHUNK;
static unsigned rebuild_stop; /* test hook: stop after this many chunks (0: never) */

void store_test_rebuild(uint64_t chunk_ops, unsigned stop_after)
{
    rebuild_chunk = chunk_ops ? chunk_ops : REBUILD_CHUNK;
    rebuild_stop = stop_after;
}

typedef struct {
    tr_store_t *s;
    wtx_t w;
    uint8_t digest[TR_HASH_LEN];
    bool done;
    uint64_t ops, refused;     /* of this call (committed chunks) */
    uint64_t c_ops, c_refused; /* of the current attempt */
} rb_ctx_t;

static int meta_put(MDB_txn *txn, const tr_store_t *s, const char *k, const void *v, size_t n,
                    tr_err_t *err)
{
    MDB_val key = {strlen(k), (void *)k}, d = {n, (void *)v};
    int rc = mdb_put(txn, s->dbi[DBI_META], &key, &d, 0);
    return rc ? store_mdb_err(err, rc, "writing meta") : TR_OK;
}

static int meta_del(MDB_txn *txn, const tr_store_t *s, const char *k, tr_err_t *err)
{
    MDB_val key = {strlen(k), (void *)k};
    int rc = mdb_del(txn, s->dbi[DBI_META], &key, NULL);
    return rc && rc != MDB_NOTFOUND ? store_mdb_err(err, rc, "writing meta") : TR_OK;
}

static int put_marker(rb_ctx_t *c, MDB_txn *txn, uint32_t bid, uint64_t pos, tr_err_t *err)
{
    uint8_t m[BUILD_LEN];
    memcpy(m, c->digest, TR_HASH_LEN);
    be32_put(m + TR_HASH_LEN, bid);
    be64_put(m + TR_HASH_LEN + 4, pos);
    return meta_put(txn, c->s, state_meta_build(), m, sizeof m, err);
}

/* Starts over (empties every state table) unless an interrupted rebuild
 * with the same strategies left its marker. */
static int rb_start(void *ctx, MDB_txn *txn, tr_err_t *err)
{
    rb_ctx_t *c = ctx;
    tr_store_t *s = c->s;
    MDB_val k = {strlen(state_meta_build()), (void *)state_meta_build()}, d;
    int rc = mdb_get(txn, s->dbi[DBI_META], &k, &d);
    if (rc == 0 && d.mv_size == BUILD_LEN && memcmp(d.mv_data, c->digest, TR_HASH_LEN) == 0)
        return TR_OK; /* resume */
    if (rc && rc != MDB_NOTFOUND) return store_mdb_err(err, rc, "reading meta");
    for (int i = 0; i < SDBI_N; i++)
        if ((rc = mdb_drop(txn, s->sdbi[i], 0)))
            return store_mdb_err(err, rc, "emptying the state tables");
    int r = meta_del(txn, s, state_meta_digest(), err);
    if (!r) r = put_marker(c, txn, 1, 0, err);
    return r;
}

/* The name of branch bid (NUL-terminated). TR_ENOTFOUND if none. */
static int bid_name(const tr_store_t *s, MDB_txn *txn, uint32_t bid, char name[TR_BRANCH_MAX + 1],
                    size_t *len, tr_err_t *err)
{
    uint8_t k[4];
    be32_put(k, bid);
    MDB_val key = {4, k}, d;
    int rc = mdb_get(txn, s->dbi[DBI_BNAMES], &key, &d);
    if (rc == MDB_NOTFOUND) return TR_ENOTFOUND;
    if (rc) return store_mdb_err(err, rc, "reading branch names");
    if (d.mv_size == 0 || d.mv_size > TR_BRANCH_MAX)
        return tr_err_set(err, TR_ECORRUPT, "branch id %u has a name of %zu bytes", bid, d.mv_size);
    memcpy(name, d.mv_data, d.mv_size);
    name[d.mv_size] = '\0';
    *len = d.mv_size;
    return TR_OK;
}

/* Replays one branch from position pos+1, at most *budget ops. */
static int rb_branch(rb_ctx_t *c, MDB_txn *txn, uint32_t bid, uint64_t *pos, uint64_t count,
                     uint64_t *budget, tr_err_t *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, c->s->dbi[DBI_LOG], &cur);
    if (rc) return store_mdb_err(err, rc, "reading the log");
    uint8_t k0[LOG_KEY];
    log_key(k0, bid, *pos + 1);
    MDB_val k = {LOG_KEY, k0}, d;
    int r = TR_OK;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_KEY); rc == 0 && *pos<count && * budget> 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        uint64_t p = *pos + 1;
        if (k.mv_size != LOG_KEY || be32_get(k.mv_data) != bid ||
            be64_get((const uint8_t *)k.mv_data + 4) != p || d.mv_size <= TR_HASH_LEN) {
            r = tr_err_set(err, TR_ECORRUPT, "branch id %u: log position %llu is missing", bid,
                           (unsigned long long)p);
            break;
        }
        tr_op_t op;
        tr_err_t e = {0};
        const uint8_t *rec = (const uint8_t *)d.mv_data + TR_HASH_LEN;
        if (tr_op_decode(rec, d.mv_size - TR_HASH_LEN, &op, &e)) {
            r = tr_err_set(err, TR_ECORRUPT, "branch id %u, position %llu: %s", bid,
                           (unsigned long long)p, e.msg);
            break;
        }
        int refuse = 0;
        if ((r = state_prepare(&c->w, NULL, bid, &op, &refuse, NULL, 0, err))) break;
        if ((r = state_commit(&c->w, bid, &op, p, err))) break;
        c->c_ops++;
        *pos = p;
        (*budget)--;
    }
    mdb_cursor_close(cur);
    if (!r && rc && rc != MDB_NOTFOUND) r = store_mdb_err(err, rc, "reading the log");
    if (!r && *pos<count && * budget> 0)
        r = tr_err_set(err, TR_ECORRUPT, "branch id %u: the log ends at %llu of %llu ops", bid,
                       (unsigned long long)*pos, (unsigned long long)count);
    return r;
}

static int rb_chunk(void *ctx, MDB_txn *txn, tr_err_t *err)
{
    rb_ctx_t *c = ctx;
    tr_store_t *s = c->s;
    c->c_ops = c->c_refused = 0;
    MDB_val k = {strlen(state_meta_build()), (void *)state_meta_build()}, d;
    int rc = mdb_get(txn, s->dbi[DBI_META], &k, &d);
    if (rc == MDB_NOTFOUND) {
        /* someone else finished it: fine if it was with our strategies */
        tr_state_status_t st;
        bool empty;
        int r = state_status_txn(s, txn, &st, &empty, err);
        if (r) return r;
        if (st != TR_STATE_READY)
            return tr_err_set(err, TR_EBUSY,
                              "another rebuild with other field strategies ran "
                              "meanwhile; run 'trellis rebuild' again");
        c->done = true;
        return TR_OK;
    }
    if (rc) return store_mdb_err(err, rc, "reading meta");
    if (d.mv_size != BUILD_LEN)
        return tr_err_set(err, TR_ECORRUPT, "meta 'state_build' has %zu bytes", d.mv_size);
    if (memcmp(d.mv_data, c->digest, TR_HASH_LEN) != 0)
        return tr_err_set(err, TR_EBUSY,
                          "another rebuild with other field strategies started "
                          "meanwhile; run 'trellis rebuild' again when it is done");
    uint32_t bid = be32_get((const uint8_t *)d.mv_data + TR_HASH_LEN);
    uint64_t pos = be64_get((const uint8_t *)d.mv_data + TR_HASH_LEN + 4);

    c->w.txn = txn;
    c->w.total = c->w.total0 = 0;
    int r = state_begin(&c->w, err);
    if (r) return r;
    state_force(&c->w);
    uint64_t next, budget = rebuild_chunk, jbefore = 0, jafter = 0;
    MDB_stat ms;
    if (mdb_stat(txn, s->sdbi[SDBI_REFUSED], &ms) == 0) jbefore = ms.ms_entries;
    if ((r = store_meta_u64(s, txn, "next_branch", &next, err))) return r;
    while (bid < next && budget > 0) {
        char name[TR_BRANCH_MAX + 1];
        size_t len;
        brec_t b;
        r = bid_name(s, txn, bid, name, &len, err);
        if (r == TR_ENOTFOUND) { /* an id never used */
            bid++, pos = 0;
            continue;
        }
        if (!r) r = store_branch_get(s, txn, name, len, &b, err);
        if (r == TR_ENOTFOUND) {
            tr_err_clear(err);
            bid++, pos = 0;
            continue;
        }
        if (r) return r;
        if (b.id != bid)
            return tr_err_set(err, TR_ECORRUPT, "branch '%s' has id %u, not %u", name, b.id, bid);
        if ((r = rb_branch(c, txn, bid, &pos, b.count, &budget, err))) return r;
        if (pos >= b.count) bid++, pos = 0;
    }
    if ((r = state_finish(&c->w, err))) return r;
    if (mdb_stat(txn, s->sdbi[SDBI_REFUSED], &ms) == 0) jafter = ms.ms_entries;
    c->c_refused = jafter - jbefore;
    if (bid >= next) {
        c->done = true;
        if ((r = meta_del(txn, s, state_meta_build(), err))) return r;
        return meta_put(txn, s, state_meta_digest(), c->digest, TR_HASH_LEN, err);
    }
    c->done = false;
    return put_marker(c, txn, bid, pos, err);
}

static uint64_t table_entries(tr_store_t *s, MDB_txn *txn, int sdbi)
{
    MDB_stat ms;
    return mdb_stat(txn, s->sdbi[sdbi], &ms) == 0 ? ms.ms_entries : 0;
}

int tr_store_rebuild(tr_store_t *s, tr_rebuild_stats_t *stats, tr_err_t *err)
{
    if (!s) return tr_err_set(err, TR_EINVAL, "tr_store_rebuild: missing argument");
    if (stats) memset(stats, 0, sizeof *stats);
    if (s->flags & TR_STORE_RDONLY) return tr_err_set(err, TR_EPERM, "store is open read-only");
    rb_ctx_t c = {.s = s};
    tr_strategies_digest(s->strategies, c.digest);
    wtx_init(&c.w, s);
    int r = store_write_txn(s, rb_start, &c, err);
    uint64_t txns = 1;
    while (!r && !c.done) {
        if (rebuild_stop && txns > rebuild_stop) {
            r = tr_err_set(err, TR_EBUSY, "rebuild stopped after %u transactions (test hook)",
                           rebuild_stop);
            break;
        }
        r = store_write_txn(s, rb_chunk, &c, err);
        if (!r) {
            c.ops += c.c_ops;
            c.refused += c.c_refused;
            txns++;
        }
    }
    wtx_free(&c.w);
    if (r || !stats) return r;
    stats->ops = c.ops;
    stats->refused = c.refused;
    stats->txns = txns;
    MDB_txn *txn;
    if ((r = store_read_begin(s, &txn, err))) return r;
    stats->states = table_entries(s, txn, SDBI_STATE);
    stats->entities = table_entries(s, txn, SDBI_ENTITIES);
    stats->conflicts = table_entries(s, txn, SDBI_CONFLICTS);
    store_read_end(s);
    return TR_OK;
}

/* ---- readers -------------------------------------------------------------- */

/* Begins a read and resolves the branch. *bid = 0 (and TR_OK) when the
 * branch has no ops or the store has no state tables: nothing to read. */
static int rd_begin(tr_store_t *s, const char *branch, MDB_txn **txn, uint32_t *bid, tr_err_t *err)
{
    *bid = 0;
    if (!branch) return tr_err_set(err, TR_EINVAL, "missing branch name");
    size_t len = strnlen(branch, TR_BRANCH_MAX + 1);
    if (len == 0 || len > TR_BRANCH_MAX)
        return tr_err_set(err, TR_EINVAL, "branch name must be 1..%d bytes", TR_BRANCH_MAX);
    int r = store_read_begin(s, txn, err);
    if (r) return r;
    if (!s->state_tables) return TR_OK;
    brec_t b;
    r = store_branch_get(s, *txn, branch, len, &b, err);
    if (r == TR_ENOTFOUND) {
        tr_err_clear(err);
        return TR_OK;
    }
    if (r) {
        store_read_end(s);
        return r;
    }
    *bid = b.id;
    return TR_OK;
}

int tr_store_state_get(tr_store_t *s, const char *branch, const uint8_t *key, size_t len,
                       tr_buf_t *out, tr_err_t *err)
{
    if (!s || !key || !out)
        return tr_err_set(err, TR_EINVAL, "tr_store_state_get: missing argument");
    MDB_txn *txn;
    uint32_t bid;
    int r = rd_begin(s, branch, &txn, &bid, err);
    if (r) return r;
    tr_buf_t mk = {0};
    const uint8_t *v = NULL;
    size_t vn = 0;
    if (bid) r = state_get(txn, s, SDBI_STATE, &mk, bid, key, len, &v, &vn, err);
    if (!r && !v) r = tr_err_set(err, TR_ENOTFOUND, "no state for that key on branch '%s'", branch);
    if (!r) {
        tr_buf_reset(out);
        if (tr_buf_append(out, v, vn)) r = tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    store_read_end(s);
    tr_buf_free(&mk);
    return r;
}

int tr_store_state_scan(tr_store_t *s, const char *branch, const uint8_t *prefix, size_t plen,
                        tr_state_fn fn, void *arg, tr_err_t *err)
{
    if (!s || !fn || (!prefix && plen))
        return tr_err_set(err, TR_EINVAL, "tr_store_state_scan: missing argument");
    MDB_txn *txn;
    uint32_t bid;
    int r = rd_begin(s, branch, &txn, &bid, err);
    if (r) return r;
    tr_buf_t mk = {0};
    if (bid)
        r = state_scan(txn, s->sdbi[SDBI_STATE], "state", bid, prefix, plen, &mk, fn, arg, err);
    store_read_end(s);
    tr_buf_free(&mk);
    return r;
}

int tr_store_fingerprint(tr_store_t *s, const char *branch, const char *entity, size_t len,
                         uint8_t fp[TR_HASH_LEN], tr_err_t *err)
{
    if (!s || !entity || !fp)
        return tr_err_set(err, TR_EINVAL, "tr_store_fingerprint: missing argument");
    MDB_txn *txn;
    uint32_t bid;
    int r = rd_begin(s, branch, &txn, &bid, err);
    if (r) return r;
    tr_buf_t mk = {0}, key = {0};
    const uint8_t *v = NULL;
    size_t vn = 0;
    if (tr_crdt_key_entity((tr_crdt_str_t){entity, len}, &key))
        r = tr_err_set(err, TR_ENOMEM, "out of memory");
    if (!r && bid) r = state_get(txn, s, SDBI_ENTITIES, &mk, bid, key.data, key.len, &v, &vn, err);
    if (!r && !v)
        r = tr_err_set(err, TR_ENOTFOUND, "entity \"%.*s\" does not exist on branch '%s'",
                       (int)(len > 64 ? 64 : len), entity, branch);
    if (!r && vn != TR_HASH_LEN) r = tr_err_set(err, TR_ECORRUPT, "a fingerprint of %zu bytes", vn);
    if (!r) memcpy(fp, v, TR_HASH_LEN);
    store_read_end(s);
    tr_buf_free(&mk);
    tr_buf_free(&key);
    return r;
}

/* ---- triples ---------------------------------------------------------------- */

typedef struct {
    tr_crdt_str_t subj, pred, obj; /* filters (p NULL: any) */
    int order;                     /* 0: [t, s, p, o] state keys; 1: [p, o, s]; 2: [o, s, p] */
    tr_triple_fn fn;
    void *arg;
    tr_err_t *err;
} tq_t;

static bool str_eq(tr_crdt_str_t a, tr_crdt_str_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static int tq_visit(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    tq_t *q = arg;
    tr_crdt_str_t x[3];
    if (q->order == 0) {
        tr_crdt_key_t key;
        tr_err_t e = {0};
        if (tr_crdt_key_parse(k, kn, &key, &e) || key.ns != TR_CRDT_NS_TRIPLE)
            return tr_err_set(q->err, TR_ECORRUPT, "state table: %s",
                              e.msg[0] ? e.msg : "not a triple key");
        tr_rd_t r;
        uint32_t n;
        uint64_t tag, add, rem;
        tr_rd_init(&r, v, vn);
        if (tr_rd_array(&r, &n) || n != 3 || tr_rd_uint(&r, &tag) || tag != TR_CRDT_S_TRIPLE ||
            tr_rd_uint(&r, &add) || tr_rd_uint(&r, &rem))
            return tr_err_set(q->err, TR_ECORRUPT, "state table: a triple's state does not decode");
        bool present = add > 0 && add >= rem;
        if (!present) return 0;
        x[0] = key.part[0], x[1] = key.part[1], x[2] = key.part[2];
    } else {
        tr_rd_t r;
        uint32_t n;
        tr_rd_init(&r, k, kn);
        if (tr_rd_array(&r, &n) || n != 3 || tr_rd_str(&r, &x[0].p, &x[0].n, 0, SIZE_MAX) ||
            tr_rd_str(&r, &x[1].p, &x[1].n, 0, SIZE_MAX) ||
            tr_rd_str(&r, &x[2].p, &x[2].n, 0, SIZE_MAX))
            return tr_err_set(q->err, TR_ECORRUPT, "a malformed triple index key");
        tr_crdt_str_t t[3];
        if (q->order == 1) /* [p, o, s] */
            t[0] = x[2], t[1] = x[0], t[2] = x[1];
        else /* [o, s, p] */
            t[0] = x[1], t[1] = x[2], t[2] = x[0];
        memcpy(x, t, sizeof t);
    }
    if (q->subj.p && !str_eq(q->subj, x[0])) return 0;
    if (q->pred.p && !str_eq(q->pred, x[1])) return 0;
    if (q->obj.p && !str_eq(q->obj, x[2])) return 0;
    return q->fn(q->arg, x[0], x[1], x[2]);
}

/* [a] or [a, b] as the prefix of a 3-element index key. */
static int idx_prefix(tr_buf_t *out, tr_crdt_str_t a, const tr_crdt_str_t *b)
{
    msgpack_packer pk;
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_array(&pk, 3) | tr_pack_str(&pk, a.p, a.n);
    if (b) bad |= tr_pack_str(&pk, b->p, b->n);
    return bad ? TR_ENOMEM : TR_OK;
}

int tr_store_triples(tr_store_t *s, const char *branch, tr_crdt_str_t subj, tr_crdt_str_t pred,
                     tr_crdt_str_t obj, tr_triple_fn fn, void *arg, tr_err_t *err)
{
    if (!s || !fn) return tr_err_set(err, TR_EINVAL, "tr_store_triples: missing argument");
    MDB_txn *txn;
    uint32_t bid;
    int r = rd_begin(s, branch, &txn, &bid, err);
    if (r) return r;
    tq_t q = {subj, pred, obj, 0, fn, arg, err};
    tr_buf_t mk = {0}, pre = {0};
    int dbi = SDBI_STATE;
    if (subj.p) {
        tr_crdt_str_t parts[2] = {subj, pred};
        r = tr_crdt_key_prefix(TR_CRDT_NS_TRIPLE, parts, pred.p ? 2 : 1, &pre);
    } else if (pred.p) {
        q.order = 1, dbi = SDBI_TPOS;
        r = idx_prefix(&pre, pred, obj.p ? &obj : NULL);
    } else if (obj.p) {
        q.order = 2, dbi = SDBI_TOSP;
        r = idx_prefix(&pre, obj, NULL);
    } else {
        r = tr_crdt_key_prefix(TR_CRDT_NS_TRIPLE, NULL, 0, &pre);
    }
    if (r) r = tr_err_set(err, TR_ENOMEM, "out of memory");
    if (!r && bid)
        r = state_scan(txn, s->sdbi[dbi], state_table_name(dbi), bid, pre.data, pre.len, &mk,
                       tq_visit, &q, err);
    store_read_end(s);
    tr_buf_free(&mk);
    tr_buf_free(&pre);
    return r;
}

/* ---- conflicts and the journal ------------------------------------------------ */

typedef struct {
    tr_store_t *s;
    MDB_txn *txn;
    const char *branch;
    uint32_t bid;
    tr_buf_t mk;
    tr_conflict_fn fn;
    void *arg;
    tr_err_t *err;
} cq_t;

static int cq_visit(void *arg, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    (void)v, (void)vn;
    cq_t *q = arg;
    const uint8_t *st;
    size_t sn;
    int r = state_get(q->txn, q->s, SDBI_STATE, &q->mk, q->bid, k, kn, &st, &sn, q->err);
    if (r) return r;
    if (!st)
        return tr_err_set(q->err, TR_ECORRUPT, "the conflicts index names a key without state");
    return q->fn(q->arg, q->branch, k, kn, st, sn);
}

int tr_store_conflicts(tr_store_t *s, const char *branch, tr_conflict_fn fn, void *arg,
                       tr_err_t *err)
{
    if (!s || !fn) return tr_err_set(err, TR_EINVAL, "tr_store_conflicts: missing argument");
    cq_t q = {.s = s, .branch = branch, .fn = fn, .arg = arg, .err = err};
    int r;
    if (branch) {
        if ((r = rd_begin(s, branch, &q.txn, &q.bid, err))) return r;
        if (q.bid)
            r = state_scan(q.txn, s->sdbi[SDBI_CONFLICTS], "conflicts", q.bid, NULL, 0, &q.mk,
                           cq_visit, &q, err);
        store_read_end(s);
        tr_buf_free(&q.mk);
        return r;
    }
    if ((r = store_read_begin(s, &q.txn, err))) return r;
    uint64_t next = 0;
    if (s->state_tables) r = store_meta_u64(s, q.txn, "next_branch", &next, err);
    for (uint32_t bid = 1; !r && bid < next; bid++) {
        char name[TR_BRANCH_MAX + 1];
        size_t len;
        r = bid_name(s, q.txn, bid, name, &len, err);
        if (r == TR_ENOTFOUND) {
            r = TR_OK;
            continue;
        }
        if (r) break;
        q.bid = bid;
        q.branch = name;
        r = state_scan(q.txn, s->sdbi[SDBI_CONFLICTS], "conflicts", bid, NULL, 0, &q.mk, cq_visit,
                       &q, err);
    }
    store_read_end(s);
    tr_buf_free(&q.mk);
    return r;
}

int tr_store_refused(tr_store_t *s, const char *branch, tr_refused_fn fn, void *arg, tr_err_t *err)
{
    if (!s || !fn) return tr_err_set(err, TR_EINVAL, "tr_store_refused: missing argument");
    MDB_txn *txn;
    uint32_t only = 0;
    int r;
    if (branch) {
        if ((r = rd_begin(s, branch, &txn, &only, err))) return r;
        if (!only) {
            store_read_end(s);
            return TR_OK;
        }
    } else if ((r = store_read_begin(s, &txn, err))) {
        return r;
    }
    if (!s->state_tables) {
        store_read_end(s);
        return TR_OK;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->sdbi[SDBI_REFUSED], &c);
    if (rc) {
        store_read_end(s);
        return store_mdb_err(err, rc, "reading the journal");
    }
    uint8_t k0[LOG_KEY];
    log_key(k0, only, 0);
    MDB_val k = {LOG_KEY, k0}, d;
    char name[TR_BRANCH_MAX + 1] = "";
    uint32_t named = 0;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != LOG_KEY || d.mv_size < 4 + TR_HASH_LEN) {
            r = tr_err_set(err, TR_ECORRUPT, "a malformed entry in the 'refused' table");
            break;
        }
        uint32_t bid = be32_get(k.mv_data);
        if (only && bid != only) break;
        if (bid != named) {
            size_t len;
            if (branch) {
                snprintf(name, sizeof name, "%s", branch);
            } else if ((r = bid_name(s, txn, bid, name, &len, err))) {
                if (r == TR_ENOTFOUND)
                    r = tr_err_set(err, TR_ECORRUPT, "journal names branch id %u", bid);
                break;
            }
            named = bid;
        }
        const uint8_t *p = d.mv_data;
        char why[512];
        size_t wl = d.mv_size - 4 - TR_HASH_LEN;
        if (wl >= sizeof why) wl = sizeof why - 1;
        memcpy(why, p + 4 + TR_HASH_LEN, wl);
        why[wl] = '\0';
        if ((r = fn(arg, name, be64_get((const uint8_t *)k.mv_data + 4), p + 4,
                    (int)(int32_t)be32_get(p), why)) != 0)
            break;
    }
    mdb_cursor_close(c);
    if (!r && rc && rc != MDB_NOTFOUND) r = store_mdb_err(err, rc, "reading the journal");
    store_read_end(s);
    return r;
}

int tr_store_refused_count(tr_store_t *s, uint64_t *n, tr_err_t *err)
{
    if (!s || !n) return tr_err_set(err, TR_EINVAL, "tr_store_refused_count: missing argument");
    *n = 0;
    MDB_txn *txn;
    int r = store_read_begin(s, &txn, err);
    if (r) return r;
    if (s->state_tables) *n = table_entries(s, txn, SDBI_REFUSED);
    store_read_end(s);
    return TR_OK;
}
