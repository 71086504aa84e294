/*
 * cursor.c — sync cursors: what a peer lacks of a branch, read in bounded
 * slices for streaming (tr_store.h, "Sync cursors"; docs/protocol.md §3.4).
 *
 * A cursor keeps positions only between calls — never an LMDB transaction,
 * so a slow peer pins no old pages and blocks no map growth. Each
 * tr_store_cursor_next runs in the store's cached read transaction and reads
 * by key:
 *
 *   linear  one walk of the branch's `log` range, (bid, pos) ascending — the
 *           integration order, which on a linear branch is also lamport order;
 *   vv      a k-way merge over the authors that are ahead of the peer: each
 *           author's next op is found through `seq` (bid, author, seq) → pos
 *           and `log`, and the author with the smallest (lamport, author) goes
 *           next. One author's ops are in seq order, which is lamport order,
 *           so the merge yields (lamport, author, seq) order — causal, as the
 *           protocol requires of an `ops` batch.
 *
 * A cursor covers what the branch held when it was opened (the log's length,
 * or each author's tip). That snapshot is causally closed, so every op it
 * yields has its parents either held by the peer or yielded before it; ops
 * that arrive later are for the peer's next want.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

/* An author that is ahead of the peer (vv cursors). */
typedef struct {
    uint8_t key[TR_KEY_LEN];
    uint64_t seq;     /* next seq to yield */
    uint64_t end;     /* the author's tip when the cursor was opened */
    uint64_t lamport; /* lamport of op `seq` (immutable, so kept across calls) */
    /* op `seq` as read in the current call (valid while gen matches) */
    const uint8_t *val;
    size_t vlen;
    uint64_t gen;
} cur_author_t;

struct tr_store_cursor {
    uint8_t repo[TR_REPO_ID_LEN];
    char branch[TR_BRANCH_MAX + 1];
    uint32_t bid;
    bool linear;
    /* linear: positions pos..end remain */
    uint64_t pos, end;
    /* vv: a min-heap of the authors with ops left */
    cur_author_t *au;
    size_t nau;
    size_t *heap;
    size_t nheap;
    uint64_t gen; /* call counter: tells which author reads are current */
    /* output of the last call: records copied here; ops point into them */
    tr_buf_t recs;
    uint8_t (*hash)[TR_HASH_LEN];
    size_t *off, *len;
    tr_op_t *ops;
    const tr_op_t **ptrs;
    size_t cap;
};

/* ---- helpers ------------------------------------------------------------ */

static tr_store_cursor_t *cur_new(tr_store_t *s, const char *branch, size_t blen, bool linear)
{
    tr_store_cursor_t *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    memcpy(c->repo, s->repo, TR_REPO_ID_LEN);
    memcpy(c->branch, branch, blen);
    c->branch[blen] = '\0';
    c->linear = linear;
    return c;
}

static int branch_arg(const char *branch, size_t *len, tr_err_t *err)
{
    if (!branch) return tr_err_set(err, TR_EINVAL, "missing branch name");
    *len = strnlen(branch, TR_BRANCH_MAX + 1);
    if (*len == 0 || *len > TR_BRANCH_MAX)
        return tr_err_set(err, TR_EINVAL, "branch name must be 1..%d bytes", TR_BRANCH_MAX);
    return TR_OK;
}

/* Finds (bid, author, seq)'s stored value (hash || record) in txn. */
static int read_seq(const tr_store_t *s, MDB_txn *txn, const tr_store_cursor_t *c,
                    const uint8_t author[TR_KEY_LEN], uint64_t seq, MDB_val *val, tr_err_t *err)
{
    uint8_t k[SEQ_KEY], lk[LOG_KEY];
    seq_key(k, c->bid, author, seq);
    MDB_val key = {SEQ_KEY, k}, d;
    int rc = mdb_get(txn, s->dbi[DBI_SEQ], &key, &d);
    if (rc == MDB_NOTFOUND) {
        char a[24];
        store_author_short(a, author);
        return tr_err_set(err, TR_ECORRUPT,
                          "branch '%s': author %s's seq %llu is below its tip but not indexed",
                          c->branch, a, (unsigned long long)seq);
    }
    if (rc) return store_mdb_err(err, rc, "reading the seq index");
    if (d.mv_size != 8)
        return tr_err_set(err, TR_ECORRUPT, "seq index entry has %zu bytes", d.mv_size);
    log_key(lk, c->bid, be64_get(d.mv_data));
    key = (MDB_val){LOG_KEY, lk};
    rc = mdb_get(txn, s->dbi[DBI_LOG], &key, val);
    if (rc == MDB_NOTFOUND)
        return tr_err_set(err, TR_ECORRUPT, "branch '%s': the seq index points past the log",
                          c->branch);
    if (rc) return store_mdb_err(err, rc, "reading the log");
    if (val->mv_size <= TR_HASH_LEN)
        return tr_err_set(err, TR_ECORRUPT, "branch '%s': log entry of %zu bytes", c->branch,
                          val->mv_size);
    return TR_OK;
}

/* Reads author a's op a->seq in this call's snapshot and its lamport. */
static int author_peek(const tr_store_t *s, MDB_txn *txn, tr_store_cursor_t *c, cur_author_t *a,
                       tr_err_t *err)
{
    MDB_val v;
    int r = read_seq(s, txn, c, a->key, a->seq, &v, err);
    if (r) return r;
    a->val = v.mv_data;
    a->vlen = v.mv_size;
    a->gen = c->gen;
    if (store_rec_lamport(a->val + TR_HASH_LEN, a->vlen - TR_HASH_LEN, &a->lamport))
        return tr_err_set(err, TR_ECORRUPT, "branch '%s': a stored record does not decode",
                          c->branch);
    return TR_OK;
}

/* Heap order: (lamport, author). One entry per author, so seq never ties. */
static bool au_less(const cur_author_t *x, const cur_author_t *y)
{
    if (x->lamport != y->lamport) return x->lamport < y->lamport;
    return memcmp(x->key, y->key, TR_KEY_LEN) < 0;
}

static void heap_down(tr_store_cursor_t *c, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->nheap && au_less(&c->au[c->heap[l]], &c->au[c->heap[m]])) m = l;
        if (r < c->nheap && au_less(&c->au[c->heap[r]], &c->au[c->heap[m]])) m = r;
        if (m == i) return;
        size_t t = c->heap[i];
        c->heap[i] = c->heap[m];
        c->heap[m] = t;
        i = m;
    }
}

/* Makes room for `n` output ops. */
static int out_reserve(tr_store_cursor_t *c, size_t n)
{
    if (n <= c->cap) return TR_OK;
    size_t cap = c->cap ? c->cap : 64;
    while (cap < n) cap *= 2;
    void *h = realloc(c->hash, cap * sizeof *c->hash);
    if (!h) return TR_ENOMEM;
    c->hash = h;
    size_t *o = realloc(c->off, cap * sizeof *o);
    if (!o) return TR_ENOMEM;
    c->off = o;
    size_t *l = realloc(c->len, cap * sizeof *l);
    if (!l) return TR_ENOMEM;
    c->len = l;
    tr_op_t *ops = realloc(c->ops, cap * sizeof *ops);
    if (!ops) return TR_ENOMEM;
    c->ops = ops;
    const tr_op_t **p = realloc(c->ptrs, cap * sizeof *p);
    if (!p) return TR_ENOMEM;
    c->ptrs = p;
    c->cap = cap;
    return TR_OK;
}

/* Copies one stored value (hash || record) as output op n. */
static int out_add(tr_store_cursor_t *c, size_t n, const uint8_t *val, size_t vlen, tr_err_t *err)
{
    if (out_reserve(c, n + 1) || tr_buf_append(&c->recs, val + TR_HASH_LEN, vlen - TR_HASH_LEN))
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    memcpy(c->hash[n], val, TR_HASH_LEN);
    c->off[n] = c->recs.len - (vlen - TR_HASH_LEN);
    c->len[n] = vlen - TR_HASH_LEN;
    return TR_OK;
}

/* ---- opening ------------------------------------------------------------ */

int tr_store_cursor_linear(tr_store_t *s, const char *branch, const uint8_t *after,
                           tr_store_cursor_t **out, tr_err_t *err)
{
    size_t blen;
    if (!s || !out) return tr_err_set(err, TR_EINVAL, "tr_store_cursor_linear: missing argument");
    *out = NULL;
    int r = branch_arg(branch, &blen, err);
    if (r) return r;
    tr_store_cursor_t *c = cur_new(s, branch, blen, true);
    if (!c) return tr_err_set(err, TR_ENOMEM, "out of memory");
    MDB_txn *txn;
    if ((r = store_read_begin(s, &txn, err))) goto fail;
    brec_t b;
    r = store_branch_get(s, txn, branch, blen, &b, err);
    if (r == TR_ENOTFOUND) {
        c->pos = 1, c->end = 0; /* nothing to send */
        r = after ? tr_err_set(err, TR_EDIVERGED, "branch '%s' is empty here", branch) : TR_OK;
    } else if (r == TR_OK) {
        c->bid = b.id;
        c->end = b.count;
        c->pos = 1;
        if (after) {
            loc_t loc;
            char hs[17];
            r = hidx_find(s, txn, after, &loc, err);
            if (r == TR_OK && loc.bid != b.id) r = TR_ENOTFOUND;
            if (r == TR_ENOTFOUND) {
                tr_hash_short(hs, after, 16);
                r = tr_err_set(err, TR_EDIVERGED, "op %s is not on branch '%s' here", hs, branch);
            }
            if (r == TR_OK) c->pos = loc.pos + 1;
        }
    }
    store_read_end(s);
    if (r) goto fail;
    *out = c;
    return TR_OK;
fail:
    tr_store_cursor_destroy(&c);
    return r;
}

int tr_store_cursor_vv(tr_store_t *s, const char *branch, tr_seq_fn from, void *arg,
                       tr_store_cursor_t **out, tr_err_t *err)
{
    size_t blen;
    if (!s || !out || !from)
        return tr_err_set(err, TR_EINVAL, "tr_store_cursor_vv: missing argument");
    *out = NULL;
    int r = branch_arg(branch, &blen, err);
    if (r) return r;
    tr_store_cursor_t *c = cur_new(s, branch, blen, false);
    if (!c) return tr_err_set(err, TR_ENOMEM, "out of memory");
    MDB_txn *txn;
    if ((r = store_read_begin(s, &txn, err))) goto fail;
    brec_t b;
    r = store_branch_get(s, txn, branch, blen, &b, err);
    if (r == TR_ENOTFOUND) {
        store_read_end(s);
        *out = c; /* an empty branch: nothing to send */
        return TR_OK;
    }
    MDB_cursor *mc = NULL;
    int rc = r ? 0 : mdb_cursor_open(txn, s->dbi[DBI_VV], &mc);
    if (!r && rc) r = store_mdb_err(err, rc, "reading the version vector");
    if (r) {
        store_read_end(s);
        goto fail;
    }
    c->bid = b.id;
    size_t cap = 0;
    uint8_t k0[VV_KEY] = {0};
    be32_put(k0, b.id);
    MDB_val k = {VV_KEY, k0}, d;
    for (rc = mdb_cursor_get(mc, &k, &d, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(mc, &k, &d, MDB_NEXT)) {
        if (k.mv_size != VV_KEY || be32_get(k.mv_data) != b.id) break;
        if (d.mv_size != VV_VAL) {
            r = tr_err_set(err, TR_ECORRUPT, "branch '%s': vv entry has %zu bytes", branch,
                           d.mv_size);
            break;
        }
        const uint8_t *author = (const uint8_t *)k.mv_data + 4;
        uint64_t tip = be64_get(d.mv_data), have = from(arg, author);
        if (tip <= have) continue;
        if (c->nau == cap) {
            cap = cap ? cap * 2 : 8;
            cur_author_t *na = realloc(c->au, cap * sizeof *na);
            if (!na) {
                r = tr_err_set(err, TR_ENOMEM, "out of memory");
                break;
            }
            c->au = na;
        }
        cur_author_t *a = &c->au[c->nau++];
        memset(a, 0, sizeof *a);
        memcpy(a->key, author, TR_KEY_LEN);
        a->seq = have + 1;
        a->end = tip;
    }
    mdb_cursor_close(mc);
    if (!r && rc != 0 && rc != MDB_NOTFOUND)
        r = store_mdb_err(err, rc, "reading the version vector");
    /* Each author's next lamport, then heapify. */
    c->gen = 1;
    for (size_t i = 0; i < c->nau && !r; i++) r = author_peek(s, txn, c, &c->au[i], err);
    store_read_end(s);
    if (r) goto fail;
    c->heap = malloc((c->nau ? c->nau : 1) * sizeof *c->heap);
    if (!c->heap) {
        r = tr_err_set(err, TR_ENOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < c->nau; i++) c->heap[i] = i;
    c->nheap = c->nau;
    for (size_t i = c->nheap / 2; i-- > 0;) heap_down(c, i);
    *out = c;
    return TR_OK;
fail:
    tr_store_cursor_destroy(&c);
    return r;
}

/* ---- reading ------------------------------------------------------------ */

/* Linear: copies positions pos.. in one walk of the log. */
static int next_linear(tr_store_t *s, MDB_txn *txn, tr_store_cursor_t *c, size_t max_ops,
                       size_t max_bytes, size_t *n, tr_err_t *err)
{
    MDB_cursor *mc;
    int rc = mdb_cursor_open(txn, s->dbi[DBI_LOG], &mc);
    if (rc) return store_mdb_err(err, rc, "reading the log");
    uint8_t k0[LOG_KEY];
    log_key(k0, c->bid, c->pos);
    MDB_val k = {LOG_KEY, k0}, d;
    int r = TR_OK;
    size_t bytes = 0;
    for (rc = mdb_cursor_get(mc, &k, &d, MDB_SET_KEY); rc == 0 && c->pos <= c->end && *n < max_ops;
         rc = mdb_cursor_get(mc, &k, &d, MDB_NEXT)) {
        if (k.mv_size != LOG_KEY || be32_get(k.mv_data) != c->bid ||
            be64_get((const uint8_t *)k.mv_data + 4) != c->pos || d.mv_size <= TR_HASH_LEN) {
            r = tr_err_set(err, TR_ECORRUPT,
                           "branch '%s': log position %llu is missing or malformed", c->branch,
                           (unsigned long long)c->pos);
            break;
        }
        size_t len = d.mv_size - TR_HASH_LEN;
        if (*n > 0 && bytes + len > max_bytes) break;
        if ((r = out_add(c, *n, d.mv_data, d.mv_size, err))) break;
        bytes += len;
        (*n)++;
        c->pos++;
    }
    mdb_cursor_close(mc);
    if (!r && rc == MDB_NOTFOUND && c->pos <= c->end)
        r = tr_err_set(err, TR_ECORRUPT, "branch '%s': log lacks position %llu", c->branch,
                       (unsigned long long)c->pos);
    else if (!r && rc != 0 && rc != MDB_NOTFOUND)
        r = store_mdb_err(err, rc, "reading the log");
    return r;
}

/* vv: pops authors off the heap in (lamport, author) order. */
static int next_vv(tr_store_t *s, MDB_txn *txn, tr_store_cursor_t *c, size_t max_ops,
                   size_t max_bytes, size_t *n, tr_err_t *err)
{
    size_t bytes = 0;
    int r;
    c->gen++;
    while (c->nheap && *n < max_ops) {
        cur_author_t *a = &c->au[c->heap[0]];
        if (a->gen != c->gen && (r = author_peek(s, txn, c, a, err))) return r;
        size_t len = a->vlen - TR_HASH_LEN;
        if (*n > 0 && bytes + len > max_bytes) break;
        if ((r = out_add(c, *n, a->val, a->vlen, err))) return r;
        bytes += len;
        (*n)++;
        if (++a->seq > a->end) {
            c->heap[0] = c->heap[--c->nheap];
        } else if ((r = author_peek(s, txn, c, a, err))) {
            return r;
        }
        heap_down(c, 0);
    }
    return TR_OK;
}

int tr_store_cursor_next(tr_store_t *s, tr_store_cursor_t *c, size_t max_ops, size_t max_bytes,
                         const tr_op_t *const **ops, size_t *n, bool *done, tr_err_t *err)
{
    if (!s || !c || !ops || !n || !done)
        return tr_err_set(err, TR_EINVAL, "tr_store_cursor_next: missing argument");
    *ops = NULL;
    *n = 0;
    *done = false;
    if (memcmp(s->repo, c->repo, TR_REPO_ID_LEN) != 0)
        return tr_err_set(err, TR_EINVAL, "cursor used with another repository's store");
    if (max_ops == 0) max_ops = 1;
    tr_buf_reset(&c->recs);
    bool more = c->linear ? c->pos <= c->end : c->nheap > 0;
    if (more) {
        MDB_txn *txn;
        int r = store_read_begin(s, &txn, err);
        if (r) return r;
        r = c->linear ? next_linear(s, txn, c, max_ops, max_bytes, n, err)
                      : next_vv(s, txn, c, max_ops, max_bytes, n, err);
        store_read_end(s);
        if (r) {
            *n = 0;
            return r;
        }
    }
    /* Decode outside the transaction: the records are ours now. */
    for (size_t i = 0; i < *n; i++) {
        tr_err_t e;
        if (tr_op_decode(c->recs.data + c->off[i], c->len[i], &c->ops[i], &e) != TR_OK ||
            memcmp(c->ops[i].hash, c->hash[i], TR_HASH_LEN) != 0) {
            *n = 0;
            return tr_err_set(err, TR_ECORRUPT,
                              "branch '%s': a stored record does not match its hash", c->branch);
        }
        c->ptrs[i] = &c->ops[i];
    }
    *ops = c->ptrs;
    *done = c->linear ? c->pos > c->end : c->nheap == 0;
    return TR_OK;
}

void tr_store_cursor_destroy(tr_store_cursor_t **cp)
{
    if (!cp || !*cp) return;
    tr_store_cursor_t *c = *cp;
    free(c->au);
    free(c->heap);
    tr_buf_free(&c->recs);
    free(c->hash);
    free(c->off);
    free(c->len);
    free(c->ops);
    free(c->ptrs);
    free(c);
    *cp = NULL;
}

void tr_store_policy(const tr_store_t *s, const char *branch, tr_branch_policy_t *out)
{
    store_policy(s, branch, strnlen(branch, TR_BRANCH_MAX + 1), out);
}
