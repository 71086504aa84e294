/*
 * integrate.c — tr_store_integrate: records from elsewhere, each integrated,
 * recognised as a duplicate, or refused with a reason.
 *
 * Two passes. Before the transaction, everything that does not depend on
 * the store: decode (canonical form, limits, hash), repo id, signatures, and
 * signature coverage (a backward scan per branch and author). Inside the
 * write transaction, in order, the causal rules against the store and the
 * ops integrated so far; each accepted op goes through store_apply(). The
 * second pass is replayable (MDB_MAP_FULL): its results are reset at the
 * start of each attempt, and the refuse callback runs only after commit.
 */
#include "store_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    tr_op_t op;
    int pre;       /* TR_OK, or a refusal that does not depend on the store */
    char *pre_why;
    int code;      /* TR_INTEGRATED, TR_DUPLICATE or a refusal (this attempt) */
    char *why;
    uint32_t slot;
    bool decoded;
    bool covered;  /* validly signed, or vouched for by a later signed op */
} iop_t;

typedef struct {
    tr_store_t *s;
    const tr_rec_t *recs;
    size_t n;
    iop_t *ops;
    wtx_t w;
} ictx_t;

static char *vfmt(const char *fmt, va_list ap)
{
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) return NULL;
    return s;
}

static void TR_PRINTF(3, 4) pre_refuse(iop_t *o, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(o->pre_why);
    o->pre = code;
    o->pre_why = vfmt(fmt, ap);
    va_end(ap);
}

static void TR_PRINTF(3, 4) refuse(iop_t *o, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(o->why);
    o->code = code;
    o->why = vfmt(fmt, ap);
    va_end(ap);
}

/* "op 3f2a9c01 on 'main'" for messages. */
typedef struct {
    char s[TR_BRANCH_MAX + 64];
} opname_t;

static opname_t opname(const tr_op_t *op)
{
    opname_t n;
    char h[9];
    tr_hash_short(h, op->hash, 8);
    snprintf(n.s, sizeof n.s, "op %s on '%.*s'", h, (int)op->branch_len, op->branch);
    return n;
}

static const char *short8(char buf[9], const uint8_t *hash)
{
    tr_hash_short(buf, hash, 8);
    return buf;
}

/*
 * Pass 1, outside the transaction. Coverage: scanning backwards, each
 * (branch, author) remembers the hash that the nearest later validly signed
 * op vouches for through its prev chain (`expect`). An op is covered if it
 * is signed itself or is that hash; a bad signature breaks the chain.
 */
static int prepass(ictx_t *c, tr_err_t *err)
{
    for (size_t i = 0; i < c->n; i++) {
        iop_t *o = &c->ops[i];
        tr_err_t e = {0};
        const tr_rec_t *rec = &c->recs[i];
        if (!rec->data && rec->len) {
            pre_refuse(o, TR_EINVAL, "record %zu: no data", i);
            continue;
        }
        int r = tr_op_decode(rec->data, rec->len, &o->op, &e);
        if (r) {
            pre_refuse(o, r, "record %zu: %s", i, e.msg[0] ? e.msg : tr_strerror(r));
            continue;
        }
        o->decoded = true;
        if (memcmp(o->op.repo, c->s->repo, TR_REPO_ID_LEN) != 0) {
            char theirs[2 * TR_REPO_ID_LEN + 1], ours[2 * TR_REPO_ID_LEN + 1];
            tr_hex(theirs, o->op.repo, TR_REPO_ID_LEN);
            tr_hex(ours, c->s->repo, TR_REPO_ID_LEN);
            pre_refuse(o, TR_EREPO, "%s: belongs to repository %s, not %s", opname(&o->op).s,
                       theirs, ours);
            continue;
        }
        long slot = wtx_slot(&c->w, o->op.branch, o->op.branch_len);
        if (slot < 0) return tr_err_set(err, TR_ENOMEM, "out of memory");
        o->slot = (uint32_t)slot;
        if (o->op.has_sig && tr_op_verify(&o->op) != TR_OK) {
            char a[24];
            store_author_short(a, o->op.author);
            pre_refuse(o, TR_ESIG, "%s: signature of author %s does not verify",
                       opname(&o->op).s, a);
        }
    }
    for (size_t i = c->n; i-- > 0;) {
        iop_t *o = &c->ops[i];
        if (!o->decoded || (o->pre && o->pre != TR_ESIG)) continue;
        void *v;
        if (tr_hmap_put(&c->w.br[o->slot].authors, o->op.author, &v, NULL))
            return tr_err_set(err, TR_ENOMEM, "out of memory");
        wauthor_t *a = v;
        if (o->pre == TR_ESIG) {
            a->has_expect = false;
            continue;
        }
        if (o->op.has_sig)
            o->covered = true;
        else
            o->covered = a->has_expect && memcmp(a->expect, o->op.hash, TR_HASH_LEN) == 0;
        if (o->covered) {
            a->has_expect = o->op.has_prev;
            memcpy(a->expect, o->op.prev, TR_HASH_LEN);
        }
    }
    return TR_OK;
}

/* Reads the stored hash (and optionally the record) at (bid, pos). */
static int log_at(ictx_t *c, uint32_t bid, uint64_t pos, const uint8_t **hash,
                  const uint8_t **rec, size_t *len, tr_err_t *err)
{
    uint8_t k[LOG_KEY];
    log_key(k, bid, pos);
    MDB_val key = {LOG_KEY, k}, d;
    int rc = mdb_get(c->w.txn, c->s->dbi[DBI_LOG], &key, &d);
    if (rc == MDB_NOTFOUND)
        return tr_err_set(err, TR_ECORRUPT, "log of branch id %u lacks position %llu", bid,
                          (unsigned long long)pos);
    if (rc) return store_mdb_err(err, rc, "reading the log");
    if (d.mv_size <= TR_HASH_LEN)
        return tr_err_set(err, TR_ECORRUPT, "log entry (%u, %llu) has %zu bytes", bid,
                          (unsigned long long)pos, d.mv_size);
    *hash = d.mv_data;
    if (rec) {
        *rec = (const uint8_t *)d.mv_data + TR_HASH_LEN;
        *len = d.mv_size - TR_HASH_LEN;
    }
    return TR_OK;
}

/* seq <= tip: the same op again, or a second op for that seq. */
static int check_dup(ictx_t *c, iop_t *o, wbranch_t *b, tr_err_t *err)
{
    const tr_op_t *op = &o->op;
    uint8_t k[SEQ_KEY];
    seq_key(k, b->rec.id, op->author, op->seq);
    MDB_val key = {SEQ_KEY, k}, d;
    int rc = mdb_get(c->w.txn, c->s->dbi[DBI_SEQ], &key, &d);
    if (rc == MDB_NOTFOUND)
        return tr_err_set(err, TR_ECORRUPT, "branch '%s': seq index lacks seq %llu below the tip",
                          b->name, (unsigned long long)op->seq);
    if (rc) return store_mdb_err(err, rc, "reading the seq index");
    if (d.mv_size != 8) return tr_err_set(err, TR_ECORRUPT, "seq index entry has %zu bytes", d.mv_size);
    const uint8_t *have;
    int r = log_at(c, b->rec.id, be64_get(d.mv_data), &have, NULL, NULL, err);
    if (r) return r;
    if (memcmp(have, op->hash, TR_HASH_LEN) == 0) {
        o->code = TR_DUPLICATE;
        return TR_OK;
    }
    char a[24], h[9];
    store_author_short(a, op->author);
    refuse(o, TR_EEQUIVOCATION, "%s: author %s already has seq %llu as op %s (equivocation)",
           opname(op).s, a, (unsigned long long)op->seq, short8(h, have));
    return TR_OK;
}

/*
 * Finds a parent's lamport: ops earlier in this batch, then the branch's
 * heads, then the hash index (reading the lamport from the record).
 * *known is false if it is nowhere on this branch; *why says why.
 */
static int parent_lamport(ictx_t *c, iop_t *o, wbranch_t *b, const uint8_t *p, bool *known,
                          uint64_t *lamport, const char **why, tr_err_t *err)
{
    *known = false;
    *why = "unknown";
    const wbatch_t *bt = tr_hmap_get(&c->w.batch, p);
    if (bt) {
        if (bt->slot != o->slot) {
            *why = "on another branch";
            return TR_OK;
        }
        *known = true;
        *lamport = bt->lamport;
        return TR_OK;
    }
    bool head;
    int r = wtx_head(&c->w, b, p, &head, lamport, err);
    if (r || head) {
        *known = head;
        return r;
    }
    loc_t loc;
    r = hidx_find(c->s, c->w.txn, p, &loc, err);
    if (r == TR_ENOTFOUND) {
        tr_err_clear(err);
        return TR_OK;
    }
    if (r) return r;
    if (!b->exists || loc.bid != b->rec.id) {
        *why = "on another branch";
        return TR_OK;
    }
    const uint8_t *hash, *rec;
    size_t len;
    if ((r = log_at(c, loc.bid, loc.pos, &hash, &rec, &len, err))) return r;
    if (store_rec_lamport(rec, len, lamport) != TR_OK)
        return tr_err_set(err, TR_ECORRUPT, "stored record at (%u, %llu) does not decode", loc.bid,
                          (unsigned long long)loc.pos);
    *known = true;
    return TR_OK;
}

/* Linear rule: exactly one parent, and it is the branch's single head. */
static int check_linear(ictx_t *c, iop_t *o, wbranch_t *b, bool *ok, tr_err_t *err)
{
    const tr_op_t *op = &o->op;
    uint64_t nheads = b->rec.nheads + b->added.count;
    *ok = false;
    if (b->rec.count == 0) {
        *ok = op->nparents == 0;
        if (!*ok) refuse(o, TR_EDIVERGED, "%s: linear branch is empty but the op has parents", opname(op).s);
        return TR_OK;
    }
    if (op->nparents == 0) {
        refuse(o, TR_EDIVERGED, "%s: starts a new root on linear branch with %llu ops",
               opname(op).s, (unsigned long long)b->rec.count);
        return TR_OK;
    }
    bool head = false;
    uint64_t l;
    if (op->nparents == 1 && nheads == 1) {
        int r = wtx_head(&c->w, b, op->parents[0], &head, &l, err);
        if (r) return r;
    }
    if (!head) {
        char h[9];
        refuse(o, TR_EDIVERGED, "%s: linear branch diverges: %zu parent(s) starting %s, not the single head",
               opname(op).s, op->nparents, short8(h, op->parents[0]));
        return TR_OK;
    }
    *ok = true;
    return TR_OK;
}

/* Pass 2 for one op. Returns a store failure, or TR_OK with o->code set. */
static int integrate_one(ictx_t *c, size_t i, tr_err_t *err)
{
    iop_t *o = &c->ops[i];
    const tr_op_t *op = &o->op;
    wbranch_t *b = &c->w.br[o->slot];
    wauthor_t *a;
    char as[24], h1[9], h2[9];
    int r = wtx_load_branch(&c->w, b, err);
    if (!r) r = wtx_author(&c->w, b, op->author, &a, err);
    if (r) return r;

    if (op->seq <= a->seq) return check_dup(c, o, b, err);
    if (op->seq != a->seq + 1) {
        store_author_short(as, op->author);
        refuse(o, TR_ESEQ, "%s: seq %llu leaves a gap after %llu for author %s", opname(op).s,
               (unsigned long long)op->seq, (unsigned long long)a->seq, as);
        return TR_OK;
    }
    if (op->seq > 1 && (!op->has_prev || memcmp(op->prev, a->hash, TR_HASH_LEN) != 0)) {
        store_author_short(as, op->author);
        refuse(o, TR_EPREV, "%s: prev %s is not author %s's seq %llu op %s", opname(op).s,
               op->has_prev ? short8(h1, op->prev) : "(none)", as,
               (unsigned long long)a->seq, short8(h2, a->hash));
        return TR_OK;
    }
    uint64_t maxl = a->seq ? a->lamport : 0;
    for (size_t j = 0; j < op->nparents; j++) {
        bool known;
        uint64_t l = 0;
        const char *why;
        if ((r = parent_lamport(c, o, b, op->parents[j], &known, &l, &why, err))) return r;
        if (!known) {
            refuse(o, TR_EPARENT, "%s: parent %s is %s", opname(op).s, short8(h1, op->parents[j]),
                   why);
            return TR_OK;
        }
        if (l > maxl) maxl = l;
    }
    if (b->pol.linear) {
        bool ok;
        if ((r = check_linear(c, o, b, &ok, err))) return r;
        if (!ok) return TR_OK;
    }
    if (op->lamport <= maxl) {
        refuse(o, TR_ELAMPORT, "%s: lamport %llu does not exceed %llu of its parents and prev",
               opname(op).s, (unsigned long long)op->lamport, (unsigned long long)maxl);
        return TR_OK;
    }
    if (b->pol.require_signing && !o->covered) {
        store_author_short(as, op->author);
        refuse(o, TR_EUNSIGNED,
               "%s: unsigned, and no later signed op of author %s in this batch covers it",
               opname(op).s, as);
        return TR_OK;
    }
    int why_code = 0;
    char why[320];
    r = state_prepare(&c->w, b, b->exists ? b->rec.id : 0, op, &why_code, why, sizeof why, err);
    if (r) return r;
    if (why_code) {
        refuse(o, why_code, "%s", why);
        return TR_OK;
    }
    r = store_apply(&c->w, b, a, op, c->recs[i].data, c->recs[i].len, err);
    if (r) return r;
    o->code = TR_INTEGRATED;
    return TR_OK;
}

/*
 * After the in-order pass: an unsigned op may have been accepted because a
 * later signed op covered it, and that op may then have been refused (bad
 * lamport, unknown parent…). The store must not keep ops that no stored
 * signature covers, so coverage is checked again over what was integrated;
 * the ops that lost their cover are refused for good and the caller
 * replays the transaction. Each replay refuses at least one more record,
 * so this ends. Returns how many were refused.
 */
static size_t recheck_coverage(ictx_t *c)
{
    for (size_t i = 0; i < c->w.nbr; i++) {
        size_t it = 0;
        const uint8_t *k;
        void *v;
        while (tr_hmap_next(&c->w.br[i].authors, &it, &k, &v)) ((wauthor_t *)v)->has_expect = false;
    }
    size_t dropped = 0;
    for (size_t i = c->n; i-- > 0;) {
        iop_t *o = &c->ops[i];
        if (o->code != TR_INTEGRATED) continue;
        wbranch_t *b = &c->w.br[o->slot];
        wauthor_t *a = tr_hmap_get(&b->authors, o->op.author);
        if (!a) continue;
        if (o->op.has_sig || (a->has_expect && memcmp(a->expect, o->op.hash, TR_HASH_LEN) == 0)) {
            a->has_expect = o->op.has_prev;
            memcpy(a->expect, o->op.prev, TR_HASH_LEN);
            continue;
        }
        if (!b->pol.require_signing) continue;
        char as[24];
        store_author_short(as, o->op.author);
        pre_refuse(o, TR_EUNSIGNED,
                   "%s: unsigned, and the later signed op of author %s that covered it was refused",
                   opname(&o->op).s, as);
        dropped++;
    }
    return dropped;
}

static int integrate_body(void *ctx, MDB_txn *txn, tr_err_t *err)
{
    ictx_t *c = ctx;
    int r = wtx_begin(&c->w, txn, err);
    if (r) return r;
    for (size_t i = 0; i < c->n; i++) {
        iop_t *o = &c->ops[i];
        free(o->why);
        o->why = NULL;
        o->code = o->pre;
        if (o->pre != TR_OK) continue;
        if ((r = integrate_one(c, i, err))) return r;
    }
    if (recheck_coverage(c)) {
        /* keep this attempt's refusals and their reasons: with less
         * integrated, nothing refused could become acceptable, and the
         * first reason is the informative one */
        for (size_t i = 0; i < c->n; i++) {
            iop_t *o = &c->ops[i];
            if (o->pre == TR_OK && o->code < 0) {
                o->pre = o->code;
                o->pre_why = o->why;
                o->why = NULL;
            }
        }
        return STORE_EREPLAY;
    }
    return wtx_finish(&c->w, err);
}

int tr_store_integrate(tr_store_t *s, const tr_rec_t *recs, size_t n, int *status,
                       tr_refuse_fn refuse_fn, void *arg, tr_err_t *err)
{
    if (!s || (!recs && n)) return tr_err_set(err, TR_EINVAL, "tr_store_integrate: missing argument");
    if (n == 0) return TR_OK;
    if (s->flags & TR_STORE_RDONLY) return tr_err_set(err, TR_EPERM, "store is open read-only");
    ictx_t c = {.s = s, .recs = recs, .n = n};
    c.ops = calloc(n, sizeof *c.ops);
    if (!c.ops) return tr_err_set(err, TR_ENOMEM, "out of memory for %zu records", n);
    wtx_init(&c.w, s);
    c.w.track_batch = true;
    int r = prepass(&c, err);
    if (!r) r = store_write_txn(s, integrate_body, &c, err);
    for (size_t i = 0; i < n; i++) {
        iop_t *o = &c.ops[i];
        if (!r) {
            if (status) status[i] = o->code;
            if (o->code < 0 && refuse_fn) {
                const char *why = o->pre ? o->pre_why : o->why;
                refuse_fn(arg, i, o->decoded ? o->op.hash : NULL, o->code,
                          why ? why : tr_strerror(o->code));
            }
        }
        free(o->pre_why);
        free(o->why);
    }
    free(c.ops);
    wtx_free(&c.w);
    return r;
}
