/*
 * apply.c — the state of one write transaction, shared by tr_store_write
 * and tr_store_integrate, and store_apply(), the only path by which an op
 * enters the log.
 *
 * Per-branch state (count, lamport, heads added, author tips) is kept in
 * memory while a batch is applied and written back once in wtx_finish, so a
 * batch of 1,000 ops on one branch updates `branches`, `vv` and `heads` a
 * handful of times instead of 1,000. Only `log` and `seq` are written per
 * op (both append-like); the hash index gets one sorted run per txn.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

void wtx_init(wtx_t *w, tr_store_t *s)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    tr_hmap_init(&w->batch, sizeof(wbatch_t));
}

void wtx_free(wtx_t *w)
{
    for (size_t i = 0; i < w->nbr; i++) {
        tr_hmap_free(&w->br[i].authors);
        tr_hmap_free(&w->br[i].added);
    }
    free(w->br);
    free(w->fresh);
    tr_hmap_free(&w->batch);
    state_free(w);
    memset(w, 0, sizeof *w);
}

long wtx_slot(wtx_t *w, const char *name, size_t len)
{
    for (size_t i = w->nbr; i-- > 0;)
        if (w->br[i].len == len && memcmp(w->br[i].name, name, len) == 0) return (long)i;
    if (len > TR_BRANCH_MAX) return -1;
    if (w->nbr == w->capbr) {
        size_t ncap = w->capbr ? w->capbr * 2 : 4;
        wbranch_t *nb = realloc(w->br, ncap * sizeof *nb);
        if (!nb) return -1;
        w->br = nb;
        w->capbr = ncap;
    }
    wbranch_t *b = &w->br[w->nbr];
    memset(b, 0, sizeof *b);
    memcpy(b->name, name, len);
    b->len = len;
    store_policy(w->s, name, len, &b->pol);
    tr_hmap_init(&b->authors, sizeof(wauthor_t));
    tr_hmap_init(&b->added, sizeof(uint64_t));
    return (long)w->nbr++;
}

/*
 * Starts an attempt: everything read from the store in an earlier attempt
 * (which was aborted) is forgotten; names, policies and integrate's
 * coverage scratch are kept.
 */
int wtx_begin(wtx_t *w, MDB_txn *txn, tr_err_t *err)
{
    tr_store_t *s = w->s;
    w->txn = txn;
    w->meta_dirty = false;
    w->seq_append = true; /* one author per batch is the common case */
    w->nfresh = 0;
    tr_hmap_clear(&w->batch);
    for (size_t i = 0; i < w->nbr; i++) {
        wbranch_t *b = &w->br[i];
        b->loaded = b->exists = b->dirty = false;
        tr_hmap_clear(&b->added);
        size_t it = 0;
        const uint8_t *k;
        void *v;
        while (tr_hmap_next(&b->authors, &it, &k, &v)) {
            wauthor_t *a = v;
            a->loaded = a->dirty = false;
        }
    }
    int rc;
    if ((rc = mdb_cursor_open(txn, s->dbi[DBI_LOG], &w->c_log)) ||
        (rc = mdb_cursor_open(txn, s->dbi[DBI_SEQ], &w->c_seq)))
        return store_mdb_err(err, rc, "opening cursors");
    int r = store_meta_u64(s, txn, "count", &w->total, err);
    if (!r) r = store_meta_u64(s, txn, "next_branch", &w->next_branch, err);
    if (!r && w->next_branch == 0) r = tr_err_set(err, TR_ECORRUPT, "meta next_branch is 0");
    w->total0 = w->total;
    if (!r) r = state_begin(w, err); /* the materializer's view of this attempt */
    return r;
}

int wtx_load_branch(wtx_t *w, wbranch_t *b, tr_err_t *err)
{
    if (b->loaded) return TR_OK;
    int r = store_branch_get(w->s, w->txn, b->name, b->len, &b->rec, err);
    if (r == TR_ENOTFOUND) {
        tr_err_clear(err);
        memset(&b->rec, 0, sizeof b->rec);
        b->exists = false;
    } else if (r) {
        return r;
    } else {
        b->exists = true;
    }
    b->loaded = true;
    b->log_append = true;
    return TR_OK;
}

int wtx_author(wtx_t *w, wbranch_t *b, const uint8_t author[TR_KEY_LEN], wauthor_t **out,
               tr_err_t *err)
{
    void *v;
    if (tr_hmap_put(&b->authors, author, &v, NULL)) return tr_err_set(err, TR_ENOMEM, "out of memory");
    wauthor_t *a = v;
    *out = a;
    if (a->loaded) return TR_OK;
    a->seq = a->lamport = a->pos = 0;
    memset(a->hash, 0, sizeof a->hash);
    if (b->exists) {
        uint8_t k[VV_KEY];
        be32_put(k, b->rec.id);
        memcpy(k + 4, author, TR_KEY_LEN);
        MDB_val key = {VV_KEY, k}, d;
        int rc = mdb_get(w->txn, w->s->dbi[DBI_VV], &key, &d);
        if (rc == 0) {
            if (d.mv_size != VV_VAL)
                return tr_err_set(err, TR_ECORRUPT, "branch '%s': vv entry has %zu bytes",
                                  b->name, d.mv_size);
            const uint8_t *p = d.mv_data;
            a->seq = be64_get(p);
            a->lamport = be64_get(p + 8);
            a->pos = be64_get(p + 16);
            memcpy(a->hash, p + 24, TR_HASH_LEN);
        } else if (rc != MDB_NOTFOUND) {
            return store_mdb_err(err, rc, "reading the version vector");
        }
    }
    a->loaded = true;
    return TR_OK;
}

int wtx_head(wtx_t *w, wbranch_t *b, const uint8_t hash[TR_HASH_LEN], bool *is_head,
             uint64_t *lamport, tr_err_t *err)
{
    const uint64_t *l = tr_hmap_get(&b->added, hash);
    *is_head = false;
    if (l) {
        *is_head = true;
        *lamport = *l;
        return TR_OK;
    }
    if (!b->exists) return TR_OK;
    uint8_t k[HEAD_KEY];
    be32_put(k, b->rec.id);
    memcpy(k + 4, hash, TR_HASH_LEN);
    MDB_val key = {HEAD_KEY, k}, d;
    int rc = mdb_get(w->txn, w->s->dbi[DBI_HEADS], &key, &d);
    if (rc == MDB_NOTFOUND) return TR_OK;
    if (rc) return store_mdb_err(err, rc, "reading heads");
    if (d.mv_size != 8) return tr_err_set(err, TR_ECORRUPT, "branch '%s': head entry has %zu bytes", b->name, d.mv_size);
    *is_head = true;
    *lamport = be64_get(d.mv_data);
    return TR_OK;
}

/* Gives a branch seen for the first time its id and reverse-name entry. */
static int branch_assign(wtx_t *w, wbranch_t *b, tr_err_t *err)
{
    if (w->next_branch > UINT32_MAX) return tr_err_set(err, TR_ETOOBIG, "too many branches");
    b->rec.id = (uint32_t)w->next_branch++;
    b->exists = true;
    w->meta_dirty = true;
    uint8_t k[4];
    be32_put(k, b->rec.id);
    MDB_val key = {4, k}, d = {b->len, b->name};
    int rc = mdb_put(w->txn, w->s->dbi[DBI_BNAMES], &key, &d, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return tr_err_set(err, TR_ECORRUPT, "branch id %u is already taken", b->rec.id);
    return rc ? store_mdb_err(err, rc, "naming a branch") : TR_OK;
}

/*
 * Puts with MDB_APPEND while the key sorts after everything in the table
 * (then LMDB fills pages completely instead of splitting them in half), and
 * falls back to an ordinary put once it does not. *append tracks which.
 */
static int put_maybe_append(MDB_cursor *c, MDB_val *k, MDB_val *d, unsigned flags, bool *append)
{
    if (*append) {
        int rc = mdb_cursor_put(c, k, d, flags | MDB_APPEND);
        if (rc != MDB_KEYEXIST) return rc;
        *append = false;
    }
    return mdb_cursor_put(c, k, d, flags | MDB_NOOVERWRITE);
}

/*
 * The one way in: the caller has decoded the op, checked every rule and
 * loaded the author's tip (wtx_author). The op becomes position count+1 of
 * its branch. Its materialized state (CRDT triples, fields, counters,
 * files, fingerprints) is written here too (state_commit, after the
 * caller's state_prepare), so write and integrate cannot disagree on what
 * an op does.
 */
int store_apply(wtx_t *w, wbranch_t *b, wauthor_t *a, const tr_op_t *op, const uint8_t *rec,
                size_t len, tr_err_t *err)
{
    int r, rc;
    char hs[9];
    if (!a->loaded) return tr_err_set(err, TR_EINVAL, "store_apply: author tip not loaded");
    if (!b->exists && (r = branch_assign(w, b, err))) return r;
    uint32_t bid = b->rec.id;
    uint64_t pos = b->rec.count + 1;

    uint8_t lk[LOG_KEY];
    log_key(lk, bid, pos);
    MDB_val key = {LOG_KEY, lk}, d = {TR_HASH_LEN + len, NULL};
    rc = put_maybe_append(w->c_log, &key, &d, MDB_RESERVE, &b->log_append);
    if (rc == MDB_KEYEXIST) {
        tr_hash_short(hs, op->hash, 8);
        return tr_err_set(err, TR_ECORRUPT, "op %s: log of branch '%s' already has position %llu",
                          hs, b->name, (unsigned long long)pos);
    }
    if (rc) return store_mdb_err(err, rc, "appending to the log");
    memcpy(d.mv_data, op->hash, TR_HASH_LEN);
    memcpy((uint8_t *)d.mv_data + TR_HASH_LEN, rec, len);

    uint8_t sk[SEQ_KEY], pv[8];
    seq_key(sk, bid, op->author, op->seq);
    be64_put(pv, pos);
    key = (MDB_val){SEQ_KEY, sk};
    d = (MDB_val){8, pv};
    rc = put_maybe_append(w->c_seq, &key, &d, 0, &w->seq_append);
    if (rc == MDB_KEYEXIST) {
        tr_hash_short(hs, op->hash, 8);
        return tr_err_set(err, TR_ECORRUPT, "op %s: seq %llu already indexed on branch '%s'", hs,
                          (unsigned long long)op->seq, b->name);
    }
    if (rc) return store_mdb_err(err, rc, "indexing seq");

    if (w->nfresh == w->capfresh) {
        size_t ncap = w->capfresh ? 2 * w->capfresh : 1024;
        uint8_t *nf = realloc(w->fresh, ncap * HENT_LEN);
        if (!nf) return tr_err_set(err, TR_ENOMEM, "out of memory");
        w->fresh = nf;
        w->capfresh = ncap;
    }
    uint8_t *fe = w->fresh + w->nfresh++ * HENT_LEN;
    memcpy(fe, op->hash, TR_HASH_LEN);
    be32_put(fe + TR_HASH_LEN, bid);
    be64_put(fe + TR_HASH_LEN + 4, pos);

    a->seq = op->seq;
    a->lamport = op->lamport;
    a->pos = pos;
    memcpy(a->hash, op->hash, TR_HASH_LEN);
    a->dirty = true;

    for (size_t i = 0; i < op->nparents; i++) {
        if (tr_hmap_del(&b->added, op->parents[i])) continue;
        uint8_t hk[HEAD_KEY];
        be32_put(hk, bid);
        memcpy(hk + 4, op->parents[i], TR_HASH_LEN);
        MDB_val k2 = {HEAD_KEY, hk};
        rc = mdb_del(w->txn, w->s->dbi[DBI_HEADS], &k2, NULL);
        if (rc == 0) {
            if (b->rec.nheads) b->rec.nheads--;
        } else if (rc != MDB_NOTFOUND) {
            return store_mdb_err(err, rc, "updating heads");
        }
    }
    void *v;
    if (tr_hmap_put(&b->added, op->hash, &v, NULL)) return tr_err_set(err, TR_ENOMEM, "out of memory");
    *(uint64_t *)v = op->lamport;
    if (w->track_batch) {
        if (tr_hmap_put(&w->batch, op->hash, &v, NULL)) return tr_err_set(err, TR_ENOMEM, "out of memory");
        *(wbatch_t *)v = (wbatch_t){(uint32_t)(b - w->br), pos, op->lamport};
    }

    b->rec.count = pos;
    if (op->lamport > b->rec.lamport) b->rec.lamport = op->lamport;
    b->dirty = true;
    w->total++;
    w->meta_dirty = true;
    return state_commit(w, bid, op, pos, err);
}

static int finish_branch(wtx_t *w, wbranch_t *b, tr_err_t *err)
{
    MDB_txn *txn = w->txn;
    const tr_store_t *s = w->s;
    int rc;
    size_t it = 0;
    const uint8_t *k;
    void *v;
    while (tr_hmap_next(&b->added, &it, &k, &v)) {
        uint8_t hk[HEAD_KEY], lv[8];
        be32_put(hk, b->rec.id);
        memcpy(hk + 4, k, TR_HASH_LEN);
        be64_put(lv, *(uint64_t *)v);
        MDB_val key = {HEAD_KEY, hk}, d = {8, lv};
        if ((rc = mdb_put(txn, s->dbi[DBI_HEADS], &key, &d, 0)))
            return store_mdb_err(err, rc, "writing heads");
    }
    it = 0;
    while (tr_hmap_next(&b->authors, &it, &k, &v)) {
        wauthor_t *a = v;
        if (!a->dirty) continue;
        uint8_t vk[VV_KEY], vv[VV_VAL];
        be32_put(vk, b->rec.id);
        memcpy(vk + 4, k, TR_KEY_LEN);
        be64_put(vv, a->seq);
        be64_put(vv + 8, a->lamport);
        be64_put(vv + 16, a->pos);
        memcpy(vv + 24, a->hash, TR_HASH_LEN);
        MDB_val key = {VV_KEY, vk}, d = {VV_VAL, vv};
        if ((rc = mdb_put(txn, s->dbi[DBI_VV], &key, &d, 0)))
            return store_mdb_err(err, rc, "writing the version vector");
    }
    brec_t rec = b->rec;
    rec.nheads += b->added.count;
    uint8_t bv[BREC_LEN];
    brec_pack(bv, &rec);
    MDB_val key = {b->len, b->name}, d = {BREC_LEN, bv};
    if ((rc = mdb_put(txn, s->dbi[DBI_BRANCHES], &key, &d, 0)))
        return store_mdb_err(err, rc, "writing a branch record");
    return TR_OK;
}

int wtx_finish(wtx_t *w, tr_err_t *err)
{
    int r = state_finish(w, err);
    if (r) return r;
    for (size_t i = 0; i < w->nbr; i++)
        if (w->br[i].dirty && (r = finish_branch(w, &w->br[i], err))) return r;
    if (w->meta_dirty) {
        uint8_t v[8];
        be64_put(v, w->total);
        MDB_val k = {5, "count"}, d = {8, v};
        int rc = mdb_put(w->txn, w->s->dbi[DBI_META], &k, &d, 0);
        if (!rc) {
            uint8_t nb[8];
            be64_put(nb, w->next_branch);
            MDB_val k2 = {11, "next_branch"}, d2 = {8, nb};
            rc = mdb_put(w->txn, w->s->dbi[DBI_META], &k2, &d2, 0);
        }
        if (rc) return store_mdb_err(err, rc, "writing meta");
        return hidx_maintain(w->s, w->txn, w->fresh, w->nfresh, err);
    }
    return TR_OK;
}
