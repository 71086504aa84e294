/*
 * merge.c — tr_store_reconcile: two replicas of one repository compared
 * branch by branch, and the remote's missing ops integrated locally
 * (`trellis sync reconcile`, docs/crdt.md §7).
 *
 * Cost follows the divergence. Each side's version vector says, per
 * author, how far it holds that author's chain; what one side has beyond
 * the other's vector is read with a vv cursor (tr_store_cursor_vv: the seq
 * index, in causal order), never by walking the history. For the fork
 * point each author's last common op is added on both sides (an equal hash
 * is recognised as common; a different one is an equivocation, which
 * tr_reconcile reports). Memory: the unique ops' records, plus one op per
 * author.
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

#define RECON_BATCH 1000 /* records per tr_store_integrate call (at least) */

typedef struct {
    uint8_t author[TR_KEY_LEN];
    uint64_t seq;
    uint8_t hash[TR_HASH_LEN];
} vv_ent_t;

typedef struct {
    vv_ent_t *v;
    size_t n, cap;
} vv_t;

/* Records kept for one side: bytes, and (offset, length) per record. */
typedef struct {
    tr_buf_t bytes;
    size_t *off, *len;
    size_t n, cap;
    tr_op_t *ops;
} side_t;

struct tr_recon_priv {
    side_t l, r;
    tr_reconcile_t *rec;
};

static int vv_add(void *arg, const uint8_t author[TR_KEY_LEN], uint64_t seq,
                  const uint8_t hash[TR_HASH_LEN])
{
    vv_t *v = arg;
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 16;
        vv_ent_t *p = realloc(v->v, cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        v->v = p;
        v->cap = cap;
    }
    memcpy(v->v[v->n].author, author, TR_KEY_LEN);
    v->v[v->n].seq = seq;
    memcpy(v->v[v->n].hash, hash, TR_HASH_LEN);
    v->n++;
    return TR_OK;
}

/* The vector of `branch` (empty if the branch has no ops), sorted by
 * author as the store keeps it. */
static int vv_read(tr_store_t *s, const char *branch, vv_t *v, tr_err_t *err)
{
    int r = tr_store_vv(s, branch, vv_add, v, err);
    if (r == TR_ENOTFOUND) {
        tr_err_clear(err);
        return TR_OK;
    }
    if (r == TR_ENOMEM) return tr_err_set(err, TR_ENOMEM, "out of memory");
    return r;
}

static const vv_ent_t *vv_find(const vv_t *v, const uint8_t *author)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(v->v[mid].author, author, TR_KEY_LEN);
        if (c == 0) return &v->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static uint64_t vv_seq(void *arg, const uint8_t author[TR_KEY_LEN])
{
    const vv_ent_t *e = vv_find(arg, author);
    return e ? e->seq : 0;
}

static int side_add(side_t *s, const uint8_t *rec, size_t len)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        size_t *o = realloc(s->off, cap * sizeof *o);
        if (!o) return TR_ENOMEM;
        s->off = o;
        size_t *l = realloc(s->len, cap * sizeof *l);
        if (!l) return TR_ENOMEM;
        s->len = l;
        s->cap = cap;
    }
    s->off[s->n] = s->bytes.len;
    s->len[s->n] = len;
    if (tr_buf_append(&s->bytes, rec, len)) return TR_ENOMEM;
    s->n++;
    return TR_OK;
}

static void side_free(side_t *s)
{
    tr_buf_free(&s->bytes);
    free(s->off);
    free(s->len);
    free(s->ops);
    memset(s, 0, sizeof *s);
}

/* Everything `s` holds of `branch` beyond `other`'s vector, in causal
 * order. The cursor hands out decoded ops; their canonical records are
 * re-encoded here (the same bytes: the encoding is canonical). */
static int read_unique(tr_store_t *s, const char *branch, vv_t *other, side_t *out, tr_err_t *err)
{
    tr_store_cursor_t *c = NULL;
    int r = tr_store_cursor_vv(s, branch, vv_seq, other, &c, err);
    if (r) return r;
    tr_buf_t enc = {0};
    bool done = false;
    while (!r && !done) {
        const tr_op_t *const *ops;
        size_t n;
        r = tr_store_cursor_next(s, c, 4096, (size_t)8 << 20, &ops, &n, &done, err);
        for (size_t i = 0; !r && i < n; i++) {
            tr_op_t op = *ops[i];
            uint8_t want[TR_HASH_LEN];
            memcpy(want, op.hash, TR_HASH_LEN);
            tr_buf_reset(&enc);
            if ((r = tr_op_encode(&op, NULL, &enc, err))) break;
            if (memcmp(op.hash, want, TR_HASH_LEN) != 0) {
                r = tr_err_set(err, TR_ECORRUPT,
                               "branch '%s': an op does not re-encode to its hash", branch);
                break;
            }
            if (side_add(out, enc.data, enc.len)) r = tr_err_set(err, TR_ENOMEM, "out of memory");
        }
    }
    tr_buf_free(&enc);
    tr_store_cursor_destroy(&c);
    return r;
}

/* Each author both sides know: the op at the lower of the two seqs, from
 * each side (for the fork point, and to see an equivocation). */
static int add_common(tr_store_t *ls, tr_store_t *rs, const char *branch, const vv_t *lv,
                      const vv_t *rv, side_t *l, side_t *r, tr_err_t *err)
{
    tr_buf_t rec = {0};
    int rc = TR_OK;
    for (size_t i = 0; i < lv->n && !rc; i++) {
        const vv_ent_t *le = &lv->v[i], *re = vv_find(rv, le->author);
        if (!re) continue;
        uint64_t m = le->seq < re->seq ? le->seq : re->seq;
        if (m == 0) continue;
        rc = tr_store_get_seq(ls, branch, le->author, m, &rec, err);
        if (!rc && side_add(l, rec.data, rec.len)) rc = tr_err_set(err, TR_ENOMEM, "out of memory");
        if (!rc) rc = tr_store_get_seq(rs, branch, le->author, m, &rec, err);
        if (!rc && side_add(r, rec.data, rec.len)) rc = tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    tr_buf_free(&rec);
    return rc;
}

static int side_decode(side_t *s, tr_err_t *err)
{
    if (!(s->ops = calloc(s->n ? s->n : 1, sizeof *s->ops)))
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    for (size_t i = 0; i < s->n; i++) {
        int r = tr_op_decode(s->bytes.data + s->off[i], s->len[i], &s->ops[i], err);
        if (r) return r;
    }
    return TR_OK;
}

/* Integrates the remote's unique ops (merged order) in batches of at
 * least RECON_BATCH records, cut only where no author's unsigned ops wait
 * for a signature later in the order (integration wants the covering
 * signed op in the same batch). */
static int integrate_remote(tr_store_t *local, tr_store_recon_t *out, tr_refuse_fn refuse,
                            void *arg, tr_err_t *err)
{
    side_t *s = &out->priv->r;
    const tr_reconcile_t *rec = out->priv->rec;
    size_t n = tr_reconcile_unique_count(rec, TR_SIDE_REMOTE);
    tr_rec_t *recs = malloc((n ? n : 1) * sizeof *recs);
    int *status = malloc((n ? n : 1) * sizeof *status);
    tr_hmap_t pending;
    tr_hmap_init(&pending, 1);
    int r = TR_OK;
    if (!recs || !status) r = tr_err_set(err, TR_ENOMEM, "out of memory");
    /* merged order is causal; an equivocating op is offered too, and the
     * store refuses it with its reason */
    for (size_t i = 0; !r && i < n; i++) {
        size_t k = (size_t)(tr_reconcile_unique(rec, TR_SIDE_REMOTE, i) - s->ops);
        recs[i] = (tr_rec_t){s->bytes.data + s->off[k], s->len[k]};
    }
    size_t start = 0;
    for (size_t i = 0; !r && i < n; i++) {
        const tr_op_t *op = tr_reconcile_unique(rec, TR_SIDE_REMOTE, i);
        if (op->has_sig) {
            tr_hmap_del(&pending, op->author);
        } else {
            void *v;
            if (tr_hmap_put(&pending, op->author, &v, NULL)) {
                r = tr_err_set(err, TR_ENOMEM, "out of memory");
                break;
            }
        }
        bool last = i + 1 == n;
        if (!last && (i + 1 - start < RECON_BATCH || pending.count > 0)) continue;
        r = tr_store_integrate(local, recs + start, i + 1 - start, status + start, refuse, arg,
                               err);
        for (size_t j = start; !r && j <= i; j++) {
            if (status[j] == TR_INTEGRATED)
                out->integrated++;
            else if (status[j] == TR_DUPLICATE)
                out->duplicates++;
            else
                out->refused++;
        }
        start = i + 1;
    }
    tr_hmap_free(&pending);
    free(recs);
    free(status);
    return r;
}

int tr_store_reconcile(tr_store_t *local, tr_store_t *remote, const char *branch, bool dry_run,
                       tr_refuse_fn refuse, void *arg, tr_store_recon_t **outp, tr_err_t *err)
{
    if (!local || !remote || !branch || !outp)
        return tr_err_set(err, TR_EINVAL, "tr_store_reconcile: missing argument");
    *outp = NULL;
    size_t blen = strnlen(branch, TR_BRANCH_MAX + 1);
    if (blen == 0 || blen > TR_BRANCH_MAX)
        return tr_err_set(err, TR_EINVAL, "branch name must be 1..%d bytes", TR_BRANCH_MAX);
    if (memcmp(local->repo, remote->repo, TR_REPO_ID_LEN) != 0) {
        char a[2 * TR_REPO_ID_LEN + 1], b[2 * TR_REPO_ID_LEN + 1];
        tr_hex(a, remote->repo, TR_REPO_ID_LEN);
        tr_hex(b, local->repo, TR_REPO_ID_LEN);
        return tr_err_set(err, TR_EREPO,
                          "the remote is repository %s, this is %s: only replicas of one "
                          "repository reconcile",
                          a, b);
    }
    tr_store_recon_t *out = calloc(1, sizeof *out);
    if (!out || !(out->priv = calloc(1, sizeof *out->priv))) {
        free(out);
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    memcpy(out->branch, branch, blen);
    tr_branch_policy_t pol;
    tr_store_policy(local, branch, &pol);
    out->linear = pol.linear;

    vv_t lv = {0}, rv = {0};
    struct tr_recon_priv *p = out->priv;
    int r = vv_read(local, branch, &lv, err);
    if (!r) r = vv_read(remote, branch, &rv, err);
    if (!r) r = read_unique(local, branch, &rv, &p->l, err);
    if (!r) r = read_unique(remote, branch, &lv, &p->r, err);
    if (!r) r = add_common(local, remote, branch, &lv, &rv, &p->l, &p->r, err);
    if (!r) r = side_decode(&p->l, err);
    if (!r) r = side_decode(&p->r, err);
    if (!r)
        r = tr_reconcile(p->l.ops, p->l.n, p->r.ops, p->r.n, tr_store_strategies(local), &p->rec,
                         err);
    free(lv.v);
    free(rv.v);
    if (r) {
        tr_store_recon_destroy(&out);
        return r;
    }
    out->rec = p->rec;
    out->unique_local = tr_reconcile_unique_count(p->rec, TR_SIDE_LOCAL);
    out->unique_remote = tr_reconcile_unique_count(p->rec, TR_SIDE_REMOTE);
    out->has_fork = tr_reconcile_fork_point(p->rec, out->fork);
    if (out->unique_local == 0 && out->unique_remote == 0)
        out->status = TR_RECON_SAME;
    else if (out->unique_remote == 0)
        out->status = TR_RECON_LOCAL_AHEAD;
    else if (out->unique_local == 0)
        out->status = TR_RECON_REMOTE_AHEAD;
    else
        out->status = out->linear ? TR_RECON_DIVERGED : TR_RECON_MERGED;
    bool apply = out->status == TR_RECON_REMOTE_AHEAD || out->status == TR_RECON_MERGED;
    if (apply && !dry_run && (r = integrate_remote(local, out, refuse, arg, err))) {
        tr_store_recon_destroy(&out);
        return r;
    }
    *outp = out;
    return TR_OK;
}

void tr_store_recon_destroy(tr_store_recon_t **rp)
{
    if (!rp || !*rp) return;
    tr_store_recon_t *r = *rp;
    if (r->priv) {
        tr_reconcile_destroy(&r->priv->rec);
        side_free(&r->priv->l);
        side_free(&r->priv->r);
        free(r->priv);
    }
    free(r);
    *rp = NULL;
}
