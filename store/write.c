/*
 * write.c — tr_store_write: local ops, numbered and linked inside the write
 * transaction so that several writers (CLI and agent) never hand out the
 * same seq or fork their own chain.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    tr_store_t *s;
    const char *branch;
    size_t blen;
    const tr_op_spec_t *specs;
    size_t n;
    const tr_identity_t *id;
    uint64_t wall_ms;
    uint8_t (*hashes)[TR_HASH_LEN];
    unsigned flags;
    wtx_t w;
    tr_buf_t buf;   /* one record at a time, reused */
    tr_buf_t pbody; /* TR_WRITE_PRED: the body with its pred filled in */
} write_ctx_t;

typedef struct {
    uint8_t hash[TR_HASH_LEN];
    uint64_t lamport;
} head_t;

/* Higher lamport first; among equals, lower hash first (deterministic). */
static bool head_before(const head_t *a, const head_t *b)
{
    if (a->lamport != b->lamport) return a->lamport > b->lamport;
    return memcmp(a->hash, b->hash, TR_HASH_LEN) < 0;
}

static int cmp_hash(const void *a, const void *b)
{
    return memcmp(a, b, TR_HASH_LEN);
}

/*
 * Parents of the batch's first op: on a linear branch its single head
 * (anything else means someone must reconcile first); on a CRDT branch the
 * TR_OP_MAX_PARENTS heads of highest lamport, then sorted bytewise as
 * tr_op_validate requires.
 */
static int pick_parents(write_ctx_t *c, wbranch_t *b, uint8_t parents[][TR_HASH_LEN], size_t *np,
                        tr_err_t *err)
{
    *np = 0;
    if (b->rec.count == 0) return TR_OK;
    if (b->pol.linear && b->rec.nheads != 1)
        return tr_err_set(err, TR_EDIVERGED,
                          "branch '%s' is linear but has %llu heads; reconcile it first", b->name,
                          (unsigned long long)b->rec.nheads);
    head_t top[TR_OP_MAX_PARENTS];
    size_t ntop = 0;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(c->w.txn, c->s->dbi[DBI_HEADS], &cur);
    if (rc) return store_mdb_err(err, rc, "reading heads");
    uint8_t k0[HEAD_KEY] = {0};
    be32_put(k0, b->rec.id);
    MDB_val k = {HEAD_KEY, k0}, d;
    int r = TR_OK;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
        if (k.mv_size != HEAD_KEY || be32_get(k.mv_data) != b->rec.id) break;
        if (d.mv_size != 8) {
            r = tr_err_set(err, TR_ECORRUPT, "branch '%s': head entry has %zu bytes", b->name,
                           d.mv_size);
            break;
        }
        head_t h;
        memcpy(h.hash, (const uint8_t *)k.mv_data + 4, TR_HASH_LEN);
        h.lamport = be64_get(d.mv_data);
        /* insertion into the small sorted top list */
        size_t at = ntop;
        while (at > 0 && head_before(&h, &top[at - 1])) at--;
        if (at >= TR_OP_MAX_PARENTS) continue;
        size_t last = ntop < TR_OP_MAX_PARENTS ? ntop : TR_OP_MAX_PARENTS - 1;
        memmove(&top[at + 1], &top[at], (last - at) * sizeof top[0]);
        top[at] = h;
        if (ntop < TR_OP_MAX_PARENTS) ntop++;
    }
    mdb_cursor_close(cur);
    if (r) return r;
    if (rc != 0 && rc != MDB_NOTFOUND) return store_mdb_err(err, rc, "reading heads");
    if (ntop == 0)
        return tr_err_set(err, TR_ECORRUPT, "branch '%s' has %llu ops but no heads", b->name,
                          (unsigned long long)b->rec.count);
    if (b->pol.linear && ntop != 1)
        return tr_err_set(err, TR_EDIVERGED, "branch '%s' is linear but has several heads", b->name);
    for (size_t i = 0; i < ntop; i++) memcpy(parents[i], top[i].hash, TR_HASH_LEN);
    qsort(parents, ntop, TR_HASH_LEN, cmp_hash);
    *np = ntop;
    return TR_OK;
}

static int write_body(void *ctx, MDB_txn *txn, tr_err_t *err)
{
    write_ctx_t *c = ctx;
    int r = wtx_begin(&c->w, txn, err);
    if (r) return r;
    wbranch_t *b = &c->w.br[0];
    if ((r = wtx_load_branch(&c->w, b, err))) return r;
    const uint8_t *pk = tr_identity_public(c->id);
    wauthor_t *a;
    if ((r = wtx_author(&c->w, b, pk, &a, err))) return r;

    tr_op_t op;
    memset(&op, 0, sizeof op);
    if ((r = pick_parents(c, b, op.parents, &op.nparents, err))) return r;
    uint64_t seq0 = a->seq, lamport0 = b->rec.lamport;
    bool has_prev = seq0 > 0;
    uint8_t prev[TR_HASH_LEN];
    memcpy(prev, a->hash, TR_HASH_LEN);
    memcpy(op.repo, c->s->repo, TR_REPO_ID_LEN);
    op.branch = c->branch;
    op.branch_len = c->blen;
    memcpy(op.author, pk, TR_KEY_LEN);
    op.wall_ms = c->wall_ms;

    for (size_t i = 0; i < c->n; i++) {
        const tr_op_spec_t *sp = &c->specs[i];
        op.seq = seq0 + 1 + i;
        op.lamport = lamport0 + 1 + i;
        if (i > 0) {
            op.nparents = 1;
            memcpy(op.parents[0], prev, TR_HASH_LEN);
        }
        op.has_prev = has_prev;
        memcpy(op.prev, prev, TR_HASH_LEN);
        op.kind = sp->kind;
        op.kind_len = sp->kind_len;
        op.target = sp->target;
        op.target_len = sp->target_len;
        op.body = sp->body;
        op.body_len = sp->body_len;
        op.has_sig = false;
        uint32_t bid = b->exists ? b->rec.id : 0;
        if ((c->flags & TR_WRITE_PRED) && (r = state_fill_pred(&c->w, bid, &op, &c->pbody, err)))
            return c->n > 1 ? tr_err_prefix(err, r, "op %zu of %zu: ", i, c->n) : r;
        bool sign = i + 1 == c->n || op.seq % TR_OP_SIGN_EVERY == 0;
        tr_buf_reset(&c->buf);
        r = tr_op_encode(&op, sign ? tr_identity_secret(c->id) : NULL, &c->buf, err);
        if (r) return tr_err_prefix(err, r, "op %zu of %zu: ", i, c->n);
        /* what integration would refuse (an unknown pred), and under
         * TR_WRITE_STRICT what the materializer would not materialize,
         * fails the batch here: nothing is written */
        int why_code = 0;
        char why[320];
        if ((r = state_prepare(&c->w, b, bid, &op, &why_code, why, sizeof why, err))) return r;
        if (why_code) {
            if (c->n > 1) return tr_err_set(err, why_code, "op %zu of %zu: %s", i, c->n, why);
            return tr_err_set(err, why_code, "%s", why);
        }
        if ((r = store_apply(&c->w, b, a, &op, c->buf.data, c->buf.len, err))) return r;
        if (c->hashes) memcpy(c->hashes[i], op.hash, TR_HASH_LEN);
        memcpy(prev, op.hash, TR_HASH_LEN);
        has_prev = true;
    }
    return wtx_finish(&c->w, err);
}

/*
 * Everything happens in one write transaction: the author's tip and the
 * branch's heads are read under the writer lock, the ops are built, encoded
 * and appended, and per-branch state is written once at the end. Specs are
 * validated by tr_op_encode; any failure aborts the whole batch.
 */
int tr_store_write(tr_store_t *s, const char *branch, const tr_op_spec_t *specs, size_t n,
                   const tr_identity_t *id, uint64_t wall_ms, uint8_t (*hashes)[TR_HASH_LEN],
                   tr_err_t *err)
{
    return tr_store_write_ex(s, branch, specs, n, id, wall_ms, 0, hashes, err);
}

int tr_store_write_ex(tr_store_t *s, const char *branch, const tr_op_spec_t *specs, size_t n,
                      const tr_identity_t *id, uint64_t wall_ms, unsigned flags,
                      uint8_t (*hashes)[TR_HASH_LEN], tr_err_t *err)
{
    if (!s || !branch || (!specs && n) || !id)
        return tr_err_set(err, TR_EINVAL, "tr_store_write: missing argument");
    if (flags & ~(TR_WRITE_STRICT | TR_WRITE_PRED))
        return tr_err_set(err, TR_EINVAL, "tr_store_write: unknown flags 0x%x", flags);
    size_t blen = strlen(branch);
    if (blen == 0 || blen > TR_BRANCH_MAX)
        return tr_err_set(err, TR_EINVAL, "branch name must be 1..%d bytes", TR_BRANCH_MAX);
    if (n == 0) return TR_OK;
    write_ctx_t c = {.s = s, .branch = branch, .blen = blen, .specs = specs, .n = n, .id = id,
                     .wall_ms = wall_ms, .hashes = hashes, .flags = flags};
    wtx_init(&c.w, s);
    c.w.wflags = flags;
    int r;
    if (wtx_slot(&c.w, branch, blen) < 0)
        r = tr_err_set(err, TR_ENOMEM, "out of memory");
    else
        r = store_write_txn(s, write_body, &c, err);
    wtx_free(&c.w);
    tr_buf_free(&c.buf);
    tr_buf_free(&c.pbody);
    return r;
}
