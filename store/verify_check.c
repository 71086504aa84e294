/*
 * verify_check.c — the checks of tr_store_verify that need the log's order,
 * run by the main thread on chunks the workers have finished (verify.c):
 * each author's seq/prev chain, parents known and earlier, lamports,
 * signature coverage, and at the end of each branch the agreement of
 * heads, version vector, seq index and counts with what the log says.
 */
#include "verify_internal.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void vreport(vctx_t *v, uint64_t pos, const uint8_t *hash, int code, const char *fmt, ...)
{
    char msg[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* `bad` counts ops (or branch-level findings), not messages */
    if (!(v->last_bad_valid && pos && pos == v->last_bad_pos)) v->st.bad++;
    v->last_bad_pos = pos;
    v->last_bad_valid = true;
    if (v->report) v->report(v->arg, v->name, pos, hash, code, msg);
}

uint64_t vdigest(const uint8_t key[16], const uint8_t entry[HENT_LEN])
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, entry, HENT_LEN, key);
    uint64_t d;
    memcpy(&d, out, sizeof d);
    return d;
}

static const char *short8(char buf[9], const uint8_t *h)
{
    tr_hash_short(buf, h, 8);
    return buf;
}

/* ---- ordered checks (main thread) ------------------------------------------ */

static bool is_broken(const vctx_t *v, const uint8_t *h)
{
    for (size_t i = 0; i < v->nbroken; i++)
        if (memcmp(v->broken[i], h, TR_HASH_LEN) == 0) return true;
    return false;
}

static uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

/* Order-independent digest of one (author, seq) → pos fact, summed over a
 * branch from the log and from the seq index, which must agree. */
static uint64_t seq_mix(const uint8_t *author, uint64_t seq, uint64_t pos)
{
    uint64_t h = fmix64(pos * 0x9e3779b97f4a7c15ULL ^ seq);
    for (int i = 0; i < TR_KEY_LEN; i += 8) h = fmix64(h ^ be64_get(author + i));
    return h;
}

/* Reports an author's pending unsigned ops (require_signing), found again
 * through the seq index so that nothing per op is kept in memory. */
static void flush_pending(vctx_t *v, const uint8_t *author, vauthor_t *a)
{
    if (!a->pend_n) return;
    if (v->pol.require_signing) {
        char as[24], hs[9];
        store_author_short(as, author);
        for (uint64_t s = a->pend_first; s < a->pend_first + a->pend_n; s++) {
            uint8_t k[SEQ_KEY];
            seq_key(k, v->rec.id, author, s);
            MDB_val key = {SEQ_KEY, k}, d, ld;
            uint64_t pos = 0;
            const uint8_t *h = NULL;
            if (mdb_get(v->txn, v->s->dbi[DBI_SEQ], &key, &d) == 0 && d.mv_size == 8) {
                pos = be64_get(d.mv_data);
                uint8_t lk[LOG_KEY];
                log_key(lk, v->rec.id, pos);
                MDB_val lkey = {LOG_KEY, lk};
                if (mdb_get(v->txn, v->s->dbi[DBI_LOG], &lkey, &ld) == 0 && ld.mv_size > TR_HASH_LEN)
                    h = ld.mv_data;
            }
            if (!h) {
                vreport(v, a->pend_pos, NULL, TR_EUNSIGNED,
                        "%llu unsigned ops of author %s from seq %llu are not covered by a signature",
                        (unsigned long long)(a->pend_first + a->pend_n - s), as,
                        (unsigned long long)s);
                break;
            }
            vreport(v, pos, h, TR_EUNSIGNED,
                    "op %s (seq %llu of author %s) is unsigned and no later signed op covers it",
                    short8(hs, h), (unsigned long long)s, as);
        }
    }
    a->pend_n = 0;
}

/* The lamport of an earlier op of this branch that is not the previous one. */
static bool lamport_at(vctx_t *v, uint64_t pos, uint64_t *lamport)
{
    uint8_t lk[LOG_KEY];
    log_key(lk, v->rec.id, pos);
    MDB_val key = {LOG_KEY, lk}, d;
    if (mdb_get(v->txn, v->s->dbi[DBI_LOG], &key, &d) != 0 || d.mv_size <= TR_HASH_LEN) return false;
    return store_rec_lamport((const uint8_t *)d.mv_data + TR_HASH_LEN, d.mv_size - TR_HASH_LEN,
                             lamport) == TR_OK;
}

static int check_parents(vctx_t *v, const vent_t *e, uint64_t *maxl)
{
    const tr_op_t *op = &e->op;
    char hs[9], ps[9];
    short8(hs, e->stored);
    if (v->pol.linear) {
        bool ok = e->pos == 1 ? op->nparents == 0
                              : op->nparents == 1 &&
                                    memcmp(op->parents[0], v->last_hash, TR_HASH_LEN) == 0;
        if (!ok) {
            vreport(v, e->pos, e->stored, TR_EDIVERGED,
                    "op %s: on a linear branch its parent must be the op before it", hs);
            return 0;
        }
        if (e->pos > 1 && v->last_lamport > *maxl) *maxl = v->last_lamport;
        return 0;
    }
    for (size_t j = 0; j < op->nparents; j++) {
        const loc_t *l = &e->ploc[j];
        if (!(e->pfound & (1u << j)) || l->bid != v->rec.id || l->pos >= e->pos) {
            vreport(v, e->pos, e->stored, TR_EPARENT, "op %s: parent %s is %s", hs,
                    short8(ps, op->parents[j]),
                    !(e->pfound & (1u << j)) ? "unknown"
                    : l->bid != v->rec.id    ? "on another branch"
                                             : "not earlier in the log");
            continue;
        }
        uint64_t pl = 0;
        if (l->pos == e->pos - 1)
            pl = v->last_lamport;
        else if (!lamport_at(v, l->pos, &pl) && !is_broken(v, op->parents[j]))
            vreport(v, e->pos, e->stored, TR_ECORRUPT, "op %s: parent %s does not decode", hs, ps);
        if (pl > *maxl) *maxl = pl;
    }
    return 0;
}

int vcheck_entry(vctx_t *v, const vent_t *e)
{
    char hs[9], as[24], xs[9], ys[9];
    v->st.ops++;
    if (e->pos != v->seen + 1)
        vreport(v, e->pos, e->stored, TR_ECORRUPT, "log position %llu follows %llu",
                (unsigned long long)e->pos, (unsigned long long)v->seen);
    v->seen = e->pos;
    short8(hs, e->stored);
    if (e->dcode) {
        vreport(v, e->pos, e->stored, e->dcode, "op %s: stored record does not decode: %s", hs, e->dwhy);
        if (v->nbroken < VBROKEN_MAX) memcpy(v->broken[v->nbroken++], e->stored, TR_HASH_LEN);
        memcpy(v->last_hash, e->stored, TR_HASH_LEN);
        return 0;
    }
    const tr_op_t *op = &e->op;
    if (!e->hash_ok)
        vreport(v, e->pos, e->stored, TR_EHASH, "op %s: record hashes to %s, not its stored hash",
                hs, short8(xs, op->hash));
    if (memcmp(op->repo, v->s->repo, TR_REPO_ID_LEN) != 0)
        vreport(v, e->pos, e->stored, TR_EREPO, "op %s belongs to another repository", hs);
    if (op->branch_len != v->nlen || memcmp(op->branch, v->name, v->nlen) != 0)
        vreport(v, e->pos, e->stored, TR_ECORRUPT, "op %s names branch '%.*s'", hs,
                (int)op->branch_len, op->branch);

    void *val;
    bool created;
    if (tr_hmap_put(&v->authors, op->author, &val, &created)) return TR_ENOMEM;
    vauthor_t *a = val;
    /* A break in the chain right after an undecodable op is that op's
     * fault (already reported): bridge it instead of blaming its successor
     * and the pending ops before it. */
    bool chain = true, bridged = false;
    if (op->seq != a->seq + 1 || (op->seq > 1 && memcmp(op->prev, a->hash, TR_HASH_LEN) != 0)) {
        chain = false;
        bridged = op->has_prev && is_broken(v, op->prev);
    }
    if (!chain && !bridged) {
        store_author_short(as, op->author);
        if (op->seq != a->seq + 1)
            vreport(v, e->pos, e->stored, TR_ESEQ, "op %s: seq %llu follows seq %llu of author %s",
                    hs, (unsigned long long)op->seq, (unsigned long long)a->seq, as);
        else
            vreport(v, e->pos, e->stored, TR_EPREV, "op %s: prev %s is not author %s's op %s", hs,
                    short8(xs, op->prev), as, short8(ys, a->hash));
        flush_pending(v, op->author, a); /* nothing later can vouch for them */
    }
    uint64_t maxl = chain && a->seq ? a->lamport : 0;
    check_parents(v, e, &maxl);
    if (op->lamport <= maxl)
        vreport(v, e->pos, e->stored, TR_ELAMPORT,
                "op %s: lamport %llu does not exceed %llu of its parents and prev", hs,
                (unsigned long long)op->lamport, (unsigned long long)maxl);

    if (e->sig) v->st.signatures++;
    if (e->sig < 0) {
        store_author_short(as, op->author);
        vreport(v, e->pos, e->stored, TR_ESIG, "op %s: signature of author %s does not verify", hs, as);
    }
    if (e->sig > 0) {
        a->pend_n = 0; /* its prev chain vouches for every pending op */
    } else {
        if (a->pend_n == 0) {
            a->pend_first = op->seq;
            a->pend_pos = e->pos;
        }
        a->pend_n++;
    }
    a->seq = op->seq;
    a->lamport = op->lamport;
    a->pos = e->pos;
    memcpy(a->hash, e->stored, TR_HASH_LEN);

    for (size_t j = 0; j < op->nparents; j++) tr_hmap_del(&v->frontier, op->parents[j]);
    if (tr_hmap_put(&v->frontier, e->stored, &val, NULL)) return TR_ENOMEM;
    *(uint64_t *)val = op->lamport;
    v->seqsum += seq_mix(op->author, op->seq, e->pos);
    memcpy(v->last_hash, e->stored, TR_HASH_LEN);
    v->last_lamport = op->lamport;
    if (op->lamport > v->maxl) v->maxl = op->lamport;
    return 0;
}

/* ---- end-of-branch agreement ---------------------------------------------- */

static void check_vv(vctx_t *v)
{
    MDB_cursor *c;
    if (mdb_cursor_open(v->txn, v->s->dbi[DBI_VV], &c)) return;
    uint8_t k0[VV_KEY] = {0};
    be32_put(k0, v->rec.id);
    MDB_val k = {VV_KEY, k0}, d;
    size_t n = 0;
    char as[24];
    for (int rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != VV_KEY || be32_get(k.mv_data) != v->rec.id) break;
        const uint8_t *author = (const uint8_t *)k.mv_data + 4;
        const vauthor_t *a = tr_hmap_get(&v->authors, author);
        n++;
        store_author_short(as, author);
        if (!a) {
            vreport(v, 0, NULL, TR_ECORRUPT, "version vector names author %s, who has no ops", as);
            continue;
        }
        const uint8_t *p = d.mv_data;
        if (d.mv_size != VV_VAL || be64_get(p) != a->seq || be64_get(p + 8) != a->lamport ||
            be64_get(p + 16) != a->pos || memcmp(p + 24, a->hash, TR_HASH_LEN) != 0)
            vreport(v, a->pos, a->hash, TR_ECORRUPT,
                    "version vector entry of author %s disagrees with the log (tip seq %llu)", as,
                    (unsigned long long)a->seq);
    }
    mdb_cursor_close(c);
    if (n != v->authors.count)
        vreport(v, 0, NULL, TR_ECORRUPT, "version vector has %zu authors, the log %zu", n,
                v->authors.count);
}

static void check_heads(vctx_t *v)
{
    MDB_cursor *c;
    if (mdb_cursor_open(v->txn, v->s->dbi[DBI_HEADS], &c)) return;
    uint8_t k0[HEAD_KEY] = {0};
    be32_put(k0, v->rec.id);
    MDB_val k = {HEAD_KEY, k0}, d;
    size_t n = 0, match = 0;
    char hs[9];
    for (int rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != HEAD_KEY || be32_get(k.mv_data) != v->rec.id) break;
        const uint8_t *h = (const uint8_t *)k.mv_data + 4;
        const uint64_t *l = tr_hmap_get(&v->frontier, h);
        n++;
        if (!l || d.mv_size != 8 || be64_get(d.mv_data) != *l)
            vreport(v, 0, h, TR_ECORRUPT, "head %s is %s", short8(hs, h),
                    l ? "stored with the wrong lamport" : "named as a parent by a later op, or unknown");
        else
            match++;
    }
    mdb_cursor_close(c);
    if (match != v->frontier.count || n != v->rec.nheads)
        vreport(v, 0, NULL, TR_ECORRUPT,
                "heads disagree with the log: %zu stored, %llu recorded, %zu expected", n,
                (unsigned long long)v->rec.nheads, v->frontier.count);
}

static void check_seq_index(vctx_t *v)
{
    MDB_cursor *c;
    if (mdb_cursor_open(v->txn, v->s->dbi[DBI_SEQ], &c)) return;
    uint8_t k0[SEQ_KEY] = {0};
    be32_put(k0, v->rec.id);
    MDB_val k = {SEQ_KEY, k0}, d;
    uint64_t n = 0, sum = 0;
    for (int rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != SEQ_KEY || be32_get(k.mv_data) != v->rec.id) break;
        const uint8_t *p = k.mv_data;
        n++;
        if (d.mv_size == 8) sum += seq_mix(p + 4, be64_get(p + 4 + TR_KEY_LEN), be64_get(d.mv_data));
    }
    mdb_cursor_close(c);
    if (n != v->seen || sum != v->seqsum)
        vreport(v, 0, NULL, TR_ECORRUPT,
                "seq index disagrees with the log (%llu entries for %llu ops%s)",
                (unsigned long long)n, (unsigned long long)v->seen,
                n == v->seen ? ", different positions" : "");
}

void vcheck_end_branch(vctx_t *v)
{
    size_t it = 0;
    const uint8_t *k;
    void *val;
    while (tr_hmap_next(&v->authors, &it, &k, &val)) flush_pending(v, k, val);
    if (v->seen != v->rec.count)
        vreport(v, 0, NULL, TR_ECORRUPT, "branch records %llu ops, the log holds %llu",
                (unsigned long long)v->rec.count, (unsigned long long)v->seen);
    if (v->maxl != v->rec.lamport)
        vreport(v, 0, NULL, TR_ECORRUPT, "branch records lamport %llu, the log's highest is %llu",
                (unsigned long long)v->rec.lamport, (unsigned long long)v->maxl);
    check_vv(v);
    if (v->nbroken == 0) { /* an undecodable op's parents and seq are unknown */
        check_heads(v);
        check_seq_index(v);
    }
    uint8_t bk[4];
    be32_put(bk, v->rec.id);
    MDB_val key = {4, bk}, d;
    if (mdb_get(v->txn, v->s->dbi[DBI_BNAMES], &key, &d) != 0 || d.mv_size != v->nlen ||
        memcmp(d.mv_data, v->name, v->nlen) != 0)
        vreport(v, 0, NULL, TR_ECORRUPT, "branch id %u is not named '%s'", v->rec.id, v->name);
}
