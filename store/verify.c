/*
 * verify.c — tr_store_verify: re-check the whole store in one read snapshot.
 *
 * The main thread walks each branch's log in order and cuts it into chunks
 * of records (pointers into the map, valid for the read txn). Worker threads
 * do the per-op work that needs no order: decode, recompute the hash and
 * compare it with the stored one, verify signatures, look parents up in an
 * in-memory view of the hash index (hsnap_t: no LMDB calls off the main
 * thread), and sum a keyed digest of each op's index fact (vdigest). The
 * main thread compares that sum with the same sum over the whole index —
 * one sequential scan instead of a lookup per op — and only when they
 * differ looks each op up to name the culprits. It takes the chunks back in
 * order and checks what needs order (verify_check.c): positions, each
 * author's seq/prev chain, parents known and earlier, lamports increasing,
 * signature coverage, and at the end of each branch that the heads, version
 * vector, seq index and counts agree with what the log says.
 *
 * Memory is flat in the log length: a fixed ring of chunks, one entry per
 * author (tip and pending unsigned run), and the current frontier of the
 * branch (ops no later op names as a parent: what `heads` must hold).
 */
#include "verify_internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- workers --------------------------------------------------------------- */

/* Fills an index entry's bytes for (hash, bid, pos). */
static void fact(uint8_t out[HENT_LEN], const uint8_t *hash, uint32_t bid, uint64_t pos)
{
    memcpy(out, hash, TR_HASH_LEN);
    be32_put(out + TR_HASH_LEN, bid);
    be64_put(out + TR_HASH_LEN + 4, pos);
}

static void check_chunk(const vpool_t *p, vchunk_t *c)
{
    const hsnap_t *snap = p->snap;
    c->digest = 0;
    for (size_t k = 0; k < c->n; k++) {
        vent_t *e = &c->e[k];
        tr_err_t er = {0};
        uint8_t f[HENT_LEN];
        fact(f, e->stored, c->bid, e->pos);
        c->digest += vdigest(p->dkey, f);
        e->dcode = tr_op_decode(e->rec, e->len, &e->op, &er);
        if (e->dcode) {
            snprintf(e->dwhy, sizeof e->dwhy, "%.199s", er.msg[0] ? er.msg : tr_strerror(e->dcode));
            continue;
        }
        e->hash_ok = memcmp(e->op.hash, e->stored, TR_HASH_LEN) == 0;
        e->sig = e->op.has_sig ? (tr_op_verify(&e->op) == TR_OK ? 1 : -1) : 0;
        const uint8_t *before = k ? c->e[k - 1].stored : (c->has_before ? c->before : NULL);
        e->pfound = 0;
        for (size_t j = 0; j < e->op.nparents; j++) {
            if (before && memcmp(e->op.parents[j], before, TR_HASH_LEN) == 0) {
                e->ploc[j] = (loc_t){c->bid, e->pos - 1};
                e->pfound |= 1u << j;
            } else if (hsnap_find(snap, e->op.parents[j], &e->ploc[j]) == TR_OK) {
                e->pfound |= 1u << j;
            }
        }
    }
}

static void *worker(void *arg)
{
    vpool_t *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->qhead == p->qtail && !p->stop) pthread_cond_wait(&p->work, &p->mu);
        if (p->qhead == p->qtail) break;
        vchunk_t *c = p->queue[p->qhead++ % p->nring];
        pthread_mutex_unlock(&p->mu);
        check_chunk(p, c);
        pthread_mutex_lock(&p->mu);
        c->done = true;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void pool_submit(vpool_t *p, vchunk_t *c)
{
    pthread_mutex_lock(&p->mu);
    c->done = false;
    p->queue[p->qtail++ % p->nring] = c;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
}

static void pool_wait(vpool_t *p, vchunk_t *c)
{
    pthread_mutex_lock(&p->mu);
    while (!c->done) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

/* ---- driver ------------------------------------------------------------------ */

typedef struct {
    vpool_t pool;
    pthread_t th[VTHREADS_MAX];
    unsigned nth;
    vchunk_t *ring;
    size_t nring;
    uint64_t filled, consumed;
} vrun_t;

static int consume_one(vctx_t *v, vrun_t *r)
{
    vchunk_t *c = &r->ring[r->consumed++ % r->nring];
    pool_wait(&r->pool, c);
    v->log_digest += c->digest;
    for (size_t k = 0; k < c->n; k++)
        if (vcheck_entry(v, &c->e[k])) return TR_ENOMEM;
    return TR_OK;
}

/* Walks one branch's log, feeding chunks to the workers and checking them
 * back in order. */
static int walk_branch(vctx_t *v, vrun_t *r, tr_err_t *err)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(v->txn, v->s->dbi[DBI_LOG], &cur);
    if (rc) return store_mdb_err(err, rc, "reading the log");
    uint8_t k0[LOG_KEY];
    log_key(k0, v->rec.id, 0);
    MDB_val k = {LOG_KEY, k0}, d;
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    bool has_before = false;
    const uint8_t *before = NULL;
    int res = TR_OK;
    while (res == TR_OK) {
        if (r->filled - r->consumed == r->nring && (res = consume_one(v, r))) break;
        vchunk_t *c = &r->ring[r->filled % r->nring];
        c->n = 0;
        c->bid = v->rec.id;
        c->has_before = has_before;
        if (has_before) memcpy(c->before, before, TR_HASH_LEN);
        for (; rc == 0 && c->n < VCHUNK; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
            if (k.mv_size != LOG_KEY || be32_get(k.mv_data) != v->rec.id) {
                rc = MDB_NOTFOUND;
                break;
            }
            vent_t *e = &c->e[c->n];
            e->pos = be64_get((const uint8_t *)k.mv_data + 4);
            if (d.mv_size <= TR_HASH_LEN) {
                vreport(v, e->pos, NULL, TR_ECORRUPT, "log entry %llu has only %zu bytes",
                        (unsigned long long)e->pos, d.mv_size);
                continue;
            }
            e->stored = d.mv_data;
            e->rec = (const uint8_t *)d.mv_data + TR_HASH_LEN;
            e->len = d.mv_size - TR_HASH_LEN;
            before = e->stored;
            has_before = true;
            c->n++;
        }
        if (c->n == 0) break;
        pool_submit(&r->pool, c);
        r->filled++;
        if (rc != 0) break;
    }
    mdb_cursor_close(cur);
    while (r->consumed < r->filled) {
        int x = consume_one(v, r);
        if (x && !res) res = x;
    }
    if (res == TR_ENOMEM) return tr_err_set(err, TR_ENOMEM, "out of memory");
    if (rc != 0 && rc != MDB_NOTFOUND) return store_mdb_err(err, rc, "reading the log");
    return res;
}

/* Index runs must be sorted (lookups rely on it); the same scan sums the
 * digest of every entry for check_totals. */
static void check_index_shape(vctx_t *v)
{
    for (size_t i = 0; i < v->snap.nruns; i++) {
        const hrun_t *run = &v->snap.runs[i];
        bool sorted = true;
        for (size_t j = 0; j < run->n; j++) {
            const uint8_t *e = run->base + j * HENT_LEN;
            v->idx_digest += vdigest(v->dkey, e);
            if (sorted && j && memcmp(e - HENT_LEN, e, TR_HASH_LEN) >= 0) {
                vreport(v, 0, NULL, TR_ECORRUPT, "hash index run of tier %u is not sorted at entry %zu",
                        run->tier, j);
                sorted = false;
            }
        }
    }
}

/*
 * The index digest disagreed with the log's: find out which ops. Every op is
 * looked up (is it indexed, at the right place?) and every index entry is
 * followed (does its place hold that op?). Slow, and only run on a store
 * that is already known to be damaged.
 */
static void diagnose_index(vctx_t *v)
{
    MDB_cursor *c;
    MDB_val k, d;
    char hs[9];
    uint64_t found = 0;
    uint32_t named = 0;
    if (mdb_cursor_open(v->txn, v->s->dbi[DBI_LOG], &c)) return;
    for (int rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != LOG_KEY || d.mv_size <= TR_HASH_LEN) continue;
        uint32_t bid = be32_get(k.mv_data);
        uint64_t pos = be64_get((const uint8_t *)k.mv_data + 4);
        if (bid != named) { /* name the branch in reports */
            uint8_t bk[4];
            be32_put(bk, bid);
            MDB_val key = {4, bk}, nd;
            if (mdb_get(v->txn, v->s->dbi[DBI_BNAMES], &key, &nd) == 0 && nd.mv_size <= TR_BRANCH_MAX) {
                memcpy(v->name, nd.mv_data, nd.mv_size);
                v->name[nd.mv_size] = '\0';
            } else {
                snprintf(v->name, sizeof v->name, "#%u", bid);
            }
            named = bid;
            v->last_bad_valid = false;
        }
        loc_t loc;
        tr_hash_short(hs, d.mv_data, 8);
        if (hsnap_find(&v->snap, d.mv_data, &loc) != TR_OK) {
            vreport(v, pos, d.mv_data, TR_ECORRUPT, "op %s is missing from the hash index", hs);
            found++;
        } else if (loc.bid != bid || loc.pos != pos) {
            vreport(v, pos, d.mv_data, TR_ECORRUPT, "hash index sends op %s to (%u, %llu)", hs,
                    loc.bid, (unsigned long long)loc.pos);
            found++;
        }
    }
    mdb_cursor_close(c);
    v->name[0] = '\0';
    v->last_bad_valid = false;
    for (size_t i = 0; i < v->snap.nruns; i++) {
        const hrun_t *run = &v->snap.runs[i];
        for (size_t j = 0; j < run->n; j++) {
            const uint8_t *e = run->base + j * HENT_LEN;
            uint8_t lk[LOG_KEY];
            memcpy(lk, e + TR_HASH_LEN, LOG_KEY);
            MDB_val key = {LOG_KEY, lk};
            if (mdb_get(v->txn, v->s->dbi[DBI_LOG], &key, &d) == 0 && d.mv_size > TR_HASH_LEN &&
                memcmp(d.mv_data, e, TR_HASH_LEN) == 0)
                continue;
            tr_hash_short(hs, e, 8);
            vreport(v, 0, e, TR_ECORRUPT, "hash index entry of op %s points to (%u, %llu), which holds %s",
                    hs, be32_get(lk), (unsigned long long)be64_get(lk + 4),
                    mdb_get(v->txn, v->s->dbi[DBI_LOG], &key, &d) == 0 ? "another op" : "nothing");
            found++;
        }
    }
    if (!found)
        vreport(v, 0, NULL, TR_ECORRUPT, "hash index holds %llu entries for %llu ops (duplicates)",
                (unsigned long long)v->snap.entries, (unsigned long long)v->total);
}

static int branches_walk(vctx_t *v, vrun_t *r, tr_err_t *err)
{
    MDB_cursor *bc;
    int rc = mdb_cursor_open(v->txn, v->s->dbi[DBI_BRANCHES], &bc);
    if (rc) return store_mdb_err(err, rc, "reading branches");
    MDB_val k, d;
    int res = TR_OK;
    for (rc = mdb_cursor_get(bc, &k, &d, MDB_FIRST); rc == 0 && res == TR_OK;
         rc = mdb_cursor_get(bc, &k, &d, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size > TR_BRANCH_MAX) {
            res = tr_err_set(err, TR_ECORRUPT, "branch name of %zu bytes", k.mv_size);
            break;
        }
        memcpy(v->name, k.mv_data, k.mv_size);
        v->name[k.mv_size] = '\0';
        v->nlen = k.mv_size;
        if ((res = store_branch_get(v->s, v->txn, v->name, v->nlen, &v->rec, err))) break;
        store_policy(v->s, v->name, v->nlen, &v->pol);
        tr_hmap_clear(&v->authors);
        tr_hmap_clear(&v->frontier);
        v->seen = v->maxl = v->last_lamport = v->seqsum = 0;
        v->nbroken = 0;
        v->last_bad_valid = false;
        memset(v->last_hash, 0, TR_HASH_LEN);
        if ((res = walk_branch(v, r, err))) break;
        vcheck_end_branch(v);
        v->total += v->seen;
    }
    mdb_cursor_close(bc);
    if (res == TR_OK && rc != 0 && rc != MDB_NOTFOUND) res = store_mdb_err(err, rc, "reading branches");
    return res;
}

static void check_totals(vctx_t *v)
{
    v->name[0] = '\0';
    v->last_bad_valid = false;
    uint64_t count = 0;
    MDB_stat st;
    store_meta_u64(v->s, v->txn, "count", &count, NULL);
    if (count != v->total)
        vreport(v, 0, NULL, TR_ECORRUPT, "store records %llu ops, its branches hold %llu",
                (unsigned long long)count, (unsigned long long)v->total);
    if (mdb_stat(v->txn, v->s->dbi[DBI_LOG], &st) == 0 && st.ms_entries != v->total)
        vreport(v, 0, NULL, TR_ECORRUPT, "log holds %zu entries, branches account for %llu",
                st.ms_entries, (unsigned long long)v->total);
    if (v->snap.entries != v->total || v->idx_digest != v->log_digest) diagnose_index(v);
}

int tr_store_verify(tr_store_t *s, unsigned threads, tr_verify_fn report, void *arg,
                    tr_verify_stats_t *stats, tr_err_t *err)
{
    if (!s) return tr_err_set(err, TR_EINVAL, "tr_store_verify: missing store");
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (unsigned)n : 1;
    }
    if (threads > VTHREADS_MAX) threads = VTHREADS_MAX;
    vctx_t *v = calloc(1, sizeof *v);
    vrun_t *r = calloc(1, sizeof *r);
    if (!v || !r) {
        free(v);
        free(r);
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    v->s = s;
    v->report = report;
    v->arg = arg;
    tr_hmap_init(&v->authors, sizeof(vauthor_t));
    tr_hmap_init(&v->frontier, sizeof(uint64_t));
    int res = store_read_begin(s, &v->txn, err);
    if (res) goto out_free;
    res = hsnap_open(s, v->txn, &v->snap, err);
    if (res) goto out_txn;

    r->nring = 2 * (size_t)threads + 2;
    r->ring = calloc(r->nring, sizeof *r->ring);
    r->pool.queue = calloc(r->nring, sizeof *r->pool.queue);
    if (!r->ring || !r->pool.queue) {
        res = tr_err_set(err, TR_ENOMEM, "out of memory");
        goto out_snap;
    }
    r->pool.nring = r->nring;
    r->pool.snap = &v->snap;
    randombytes_buf(v->dkey, sizeof v->dkey);
    r->pool.dkey = v->dkey;
    pthread_mutex_init(&r->pool.mu, NULL);
    pthread_cond_init(&r->pool.work, NULL);
    pthread_cond_init(&r->pool.done, NULL);
    for (r->nth = 0; r->nth < threads; r->nth++)
        if (pthread_create(&r->th[r->nth], NULL, worker, &r->pool) != 0) break;
    if (r->nth == 0) {
        res = tr_err_set(err, TR_ENOMEM, "cannot start verify threads");
    } else {
        check_index_shape(v);
        res = branches_walk(v, r, err);
        if (!res) check_totals(v);
    }
    pthread_mutex_lock(&r->pool.mu);
    r->pool.stop = true;
    pthread_cond_broadcast(&r->pool.work);
    pthread_mutex_unlock(&r->pool.mu);
    for (unsigned i = 0; i < r->nth; i++) pthread_join(r->th[i], NULL);
    pthread_mutex_destroy(&r->pool.mu);
    pthread_cond_destroy(&r->pool.work);
    pthread_cond_destroy(&r->pool.done);
out_snap:
    free(r->ring);
    free(r->pool.queue);
    hsnap_close(&v->snap);
out_txn:
    store_read_end(s);
out_free:
    if (stats) *stats = v->st;
    tr_hmap_free(&v->authors);
    tr_hmap_free(&v->frontier);
    free(v);
    free(r);
    return res;
}
