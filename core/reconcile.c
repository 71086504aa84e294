/* reconcile.c — the standalone reconciler (seed 000; docs/crdt.md §7):
 * merged order, fork point, unique ops and conflicts of two op sequences.
 *
 * Everything is a sort: by hash to find the common ops, by stamp for the
 * merged order, by (scope, target) to find targets changed on both sides,
 * and by (branch, author, seq) to find equivocation. O((n+m) log(n+m)). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tr_crdt.h"
#include "tr_identity.h"

/* An op of either side, with its sort keys copied out of the (large) op so
 * the sorts compare integers in one cache line, not scattered memory. */
typedef struct {
    const tr_op_t *op;
    uint64_t lamport, seq;
    uint64_t a64, h64; /* the first 8 bytes of author and hash, big-endian */
    unsigned side;     /* TR_SIDE_LOCAL | TR_SIDE_REMOTE */
} rc_item_t;

static uint64_t rc_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static rc_item_t rc_item(const tr_op_t *op, unsigned side)
{
    return (rc_item_t){op, op->lamport, op->seq, rc_be64(op->author), rc_be64(op->hash), side};
}

enum { RC_FILE, RC_ENTITY, RC_TRIPLE, RC_OTHER };
static const char *const rc_scope_names[] = {"file", "entity", "triple", "other"};

/* One unique op touching one target (a rename touches two). */
typedef struct {
    int scope;
    tr_crdt_str_t target;
    unsigned side;
    size_t pos;            /* index in merged order */
    const tr_crdt_op_t *v; /* NULL if the op did not classify */
    const tr_op_t *op;
    bool from_key; /* a rename's old path */
} rc_touch_t;

struct tr_reconcile {
    rc_item_t *merged;
    size_t nmerged;
    const tr_op_t **uniq[2];
    size_t nuniq[2];
    bool has_fork;
    uint8_t fork[TR_HASH_LEN];
    tr_conflict_t *conf;
    size_t nconf, confcap;
};

/* ---- orders -------------------------------------------------------------- */

/* qsort, which must not be handed a NULL base even for zero elements. */
static void rc_sort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
    if (n > 1) qsort(base, n, size, cmp);
}

static int rc_str_cmp(tr_crdt_str_t a, tr_crdt_str_t b)
{
    int c = a.n && b.n ? memcmp(a.p, b.p, a.n < b.n ? a.n : b.n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return a.n < b.n ? -1 : a.n > b.n;
}

static int rc_hash_cmp(const rc_item_t *x, const rc_item_t *y)
{
    if (x->h64 != y->h64) return x->h64 < y->h64 ? -1 : 1;
    return memcmp(x->op->hash, y->op->hash, TR_HASH_LEN);
}

static int rc_by_hash(const void *a, const void *b)
{
    const rc_item_t *x = a, *y = b;
    int c = rc_hash_cmp(x, y);
    if (c) return c;
    return (int)x->side - (int)y->side;
}

/* (lamport, author, seq, hash): tr_op_order, then the hash. */
static int rc_by_stamp(const void *a, const void *b)
{
    const rc_item_t *x = a, *y = b;
    if (x->lamport != y->lamport) return x->lamport < y->lamport ? -1 : 1;
    if (x->a64 != y->a64) return x->a64 < y->a64 ? -1 : 1;
    int c = memcmp(x->op->author, y->op->author, TR_KEY_LEN);
    if (c) return c;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return rc_hash_cmp(x, y);
}

static int rc_by_author_seq(const void *a, const void *b)
{
    const rc_item_t *x = *(const rc_item_t *const *)a, *y = *(const rc_item_t *const *)b;
    if (x->a64 != y->a64) return x->a64 < y->a64 ? -1 : 1;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    int c = memcmp(x->op->author, y->op->author, TR_KEY_LEN);
    if (c) return c;
    c = rc_str_cmp((tr_crdt_str_t){x->op->branch, x->op->branch_len},
                   (tr_crdt_str_t){y->op->branch, y->op->branch_len});
    return c ? c : rc_hash_cmp(x, y);
}

static int rc_by_target(const void *a, const void *b)
{
    const rc_touch_t *x = a, *y = b;
    if (x->scope != y->scope) return x->scope - y->scope;
    int c = rc_str_cmp(x->target, y->target);
    if (c) return c;
    if (x->side != y->side) return (int)x->side - (int)y->side;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* (kind, target, body): two sides that made the same changes converge. */
static int rc_by_content(const void *a, const void *b)
{
    const tr_op_t *x = *(const tr_op_t *const *)a, *y = *(const tr_op_t *const *)b;
    int c =
        rc_str_cmp((tr_crdt_str_t){x->kind, x->kind_len}, (tr_crdt_str_t){y->kind, y->kind_len});
    if (!c)
        c = rc_str_cmp((tr_crdt_str_t){x->target, x->target_len},
                       (tr_crdt_str_t){y->target, y->target_len});
    if (!c)
        c = rc_str_cmp((tr_crdt_str_t){(const char *)x->body, x->body_len},
                       (tr_crdt_str_t){(const char *)y->body, y->body_len});
    return c;
}

static int rc_conf_cmp(const void *a, const void *b)
{
    const tr_conflict_t *x = a, *y = b;
    int c = strcmp(x->scope, y->scope);
    if (!c) c = rc_str_cmp(x->target, y->target);
    if (!c) c = strcmp(x->reason, y->reason);
    if (!c) c = strcmp(x->text, y->text);
    return c;
}

/* ---- conflicts ------------------------------------------------------------ */

static int rc_scope(const tr_crdt_op_t *v)
{
    if (!v) return RC_OTHER;
    switch (v->kind) {
    case TR_CRDT_FILE_ADD:
    case TR_CRDT_FILE_MODIFY:
    case TR_CRDT_FILE_DELETE:
    case TR_CRDT_FILE_RENAME:
        return RC_FILE;
    case TR_CRDT_TRIPLE_ADD:
    case TR_CRDT_TRIPLE_REMOVE:
        return RC_TRIPLE;
    case TR_CRDT_FIELD_SET:
    case TR_CRDT_FIELD_APPEND:
    case TR_CRDT_FIELD_ADD:
    case TR_CRDT_FIELD_REMOVE:
    case TR_CRDT_COUNTER_ADD:
    case TR_CRDT_ENTITY_DELETE:
        return RC_ENTITY;
    default:
        return RC_OTHER;
    }
}

/* "field.set, counter.add": the distinct kinds of one side, in order. */
static void rc_summary(char *out, size_t cap, const rc_touch_t *t, size_t n)
{
    size_t o = 0, shown = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = t[j].op->kind_len == t[i].op->kind_len &&
                   memcmp(t[j].op->kind, t[i].op->kind, t[i].op->kind_len) == 0;
        if (seen) continue;
        if (shown == 4) {
            snprintf(out + o, cap - o, ", …");
            break;
        }
        int w = snprintf(out + o, cap - o, "%s%.*s", shown ? ", " : "", (int)t[i].op->kind_len,
                         t[i].op->kind);
        if (w < 0) break;
        o += (size_t)w;
        shown++;
    }
}

static int rc_add(tr_reconcile_t *r, const char *reason, int scope, tr_crdt_str_t target,
                  tr_crdt_str_t field, size_t nl, size_t nr, const char *text)
{
    if (r->nconf == r->confcap) {
        size_t cap = r->confcap ? 2 * r->confcap : 8;
        tr_conflict_t *c = realloc(r->conf, cap * sizeof *c);
        if (!c) return TR_ENOMEM;
        r->conf = c;
        r->confcap = cap;
    }
    char *t = strdup(text);
    if (!t) return TR_ENOMEM;
    char *owned = NULL;
    if (scope < 0) { /* equivocation: the target is a peer id we own */
        if (!(owned = strndup(target.p, target.n))) {
            free(t);
            return TR_ENOMEM;
        }
        target.p = owned;
    }
    r->conf[r->nconf++] = (tr_conflict_t){
        reason, scope < 0 ? "author" : rc_scope_names[scope], target, field, t, nl, nr};
    return TR_OK;
}

/* Field-level findings of an entity group: "manual" (both sides wrote a
 * manual_resolution field) beats "add/add" (both sides first-wrote a field
 * with different values). Sorting the group's field.set touches by (field,
 * side) keeps this O(k log k). */
typedef struct {
    tr_crdt_str_t field;
    unsigned side;
    const tr_crdt_op_t *v;
} rc_fset_t;

static int rc_by_field(const void *a, const void *b)
{
    const rc_fset_t *x = a, *y = b;
    int c = rc_str_cmp(x->field, y->field);
    if (c) return c;
    if (x->side != y->side) return (int)x->side - (int)y->side;
    return rc_str_cmp((tr_crdt_str_t){(const char *)x->v->value, x->v->value_len},
                      (tr_crdt_str_t){(const char *)y->v->value, y->v->value_len});
}

static const char *rc_entity_fields(const rc_touch_t *g, size_t n, const tr_strategies_t *st,
                                    rc_fset_t *scratch, tr_crdt_str_t *field)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (g[i].v && g[i].v->kind == TR_CRDT_FIELD_SET)
            scratch[k++] = (rc_fset_t){g[i].v->field, g[i].side, g[i].v};
    rc_sort(scratch, k, sizeof *scratch, rc_by_field);
    const char *found = NULL;
    for (size_t i = 0; i < k;) {
        size_t j = i;
        while (j < k && rc_str_cmp(scratch[j].field, scratch[i].field) == 0)
            j++;
        bool l = false, r = false;
        const rc_fset_t *fl = NULL, *fr = NULL; /* first writes per side */
        for (size_t x = i; x < j; x++) {
            if (scratch[x].side == TR_SIDE_LOCAL)
                l = true;
            else
                r = true;
            if (scratch[x].v->npred == 0) {
                if (scratch[x].side == TR_SIDE_LOCAL && !fl) fl = &scratch[x];
                if (scratch[x].side == TR_SIDE_REMOTE && !fr) fr = &scratch[x];
            }
        }
        if (l && r) {
            tr_strategy_t s =
                tr_strategies_lookup(st, scratch[i].field.p, scratch[i].field.n, NULL);
            if (s == TR_STRATEGY_MANUAL) {
                *field = scratch[i].field;
                return "manual";
            }
            if (!found && fl && fr &&
                (fl->v->value_len != fr->v->value_len ||
                 memcmp(fl->v->value, fr->v->value, fl->v->value_len) != 0)) {
                *field = scratch[i].field;
                found = "add/add";
            }
        }
        i = j;
    }
    return found;
}

/* Triple touches by (predicate, object). */
static int rc_by_triple(const void *a, const void *b)
{
    const rc_touch_t *x = a, *y = b;
    int c = rc_str_cmp(x->v->p, y->v->p);
    return c ? c : rc_str_cmp(x->v->o, y->v->o);
}

/* The file a side leaves behind: deleted, or content with this hash. */
static bool rc_file_final(const rc_touch_t *t, size_t n, const uint8_t **hash)
{
    const rc_touch_t *last = &t[n - 1];
    *hash = NULL;
    if (!last->v || last->v->kind == TR_CRDT_FILE_DELETE || last->from_key) return true;
    *hash = last->v->content_hash;
    return false;
}

/* Decides the reason for one target that both sides changed (g[0..nl) are
 * local, g[nl..nl+nr) remote, each in merged order). NULL: no conflict,
 * because both sides' changes end in the same place. */
static const char *rc_reason(const rc_touch_t *g, size_t nl, size_t nr, int scope,
                             const tr_strategies_t *st, rc_fset_t *fscratch, rc_touch_t *tscratch,
                             tr_crdt_str_t *field)
{
    const rc_touch_t *L = g, *R = g + nl;
    *field = (tr_crdt_str_t){NULL, 0};
    if (scope == RC_FILE) {
        bool rename = false, adds_only = true;
        for (size_t i = 0; i < nl + nr; i++) {
            if (g[i].v && g[i].v->kind == TR_CRDT_FILE_RENAME) rename = true;
            if (!g[i].v || g[i].v->kind != TR_CRDT_FILE_ADD) adds_only = false;
        }
        if (rename) return "rename";
        const uint8_t *hl, *hr;
        bool dl = rc_file_final(L, nl, &hl), dr = rc_file_final(R, nr, &hr);
        if (dl && dr) return NULL;
        if (dl != dr) return "delete/modify";
        if (memcmp(hl, hr, TR_HASH_LEN) == 0) return NULL;
        return adds_only ? "add/add" : "modify/modify";
    }
    if (scope == RC_ENTITY) {
        bool del[2] = {false, false}, mod[2] = {false, false};
        for (size_t i = 0; i < nl + nr; i++) {
            int s = i < nl ? 0 : 1;
            if (g[i].v && g[i].v->kind == TR_CRDT_ENTITY_DELETE)
                del[s] = true;
            else
                mod[s] = true;
        }
        if ((del[0] && mod[1]) || (del[1] && mod[0])) return "delete/modify";
        if (!mod[0] && !mod[1]) return NULL; /* deleted on both sides */
        const char *f = rc_entity_fields(g, nl + nr, st, fscratch, field);
        return f ? f : "modify/modify";
    }
    if (scope == RC_TRIPLE) {
        /* A triple added on one side and removed on the other: sort the
         * group by (p, o) and look at each triple's run. */
        memcpy(tscratch, g, (nl + nr) * sizeof *g);
        rc_sort(tscratch, nl + nr, sizeof *tscratch, rc_by_triple);
        for (size_t i = 0; i < nl + nr;) {
            size_t j = i;
            unsigned adds = 0, removes = 0;
            while (j < nl + nr && rc_by_triple(&tscratch[i], &tscratch[j]) == 0) {
                if (tscratch[j].v->kind == TR_CRDT_TRIPLE_ADD)
                    adds |= tscratch[j].side;
                else
                    removes |= tscratch[j].side;
                j++;
            }
            if ((adds & TR_SIDE_LOCAL && removes & TR_SIDE_REMOTE) ||
                (adds & TR_SIDE_REMOTE && removes & TR_SIDE_LOCAL))
                return "delete/modify";
            i = j;
        }
    }
    return "modify/modify";
}

static const char *rc_describe(const char *reason)
{
    if (!strcmp(reason, "delete/modify")) return "deleted on one side and changed on the other";
    if (!strcmp(reason, "add/add")) return "added on both sides with different content";
    if (!strcmp(reason, "rename")) return "renamed on one side and changed on the other";
    if (!strcmp(reason, "manual"))
        return "a manual_resolution field written on both sides; the entity shows every value "
               "until someone resolves it";
    return "changed on both sides";
}

/* Groups the unique ops' touches by (scope, target) and records a conflict
 * for every target both sides touched, unless both made the same changes. */
static int rc_conflicts(tr_reconcile_t *r, rc_touch_t *t, size_t nt, const tr_strategies_t *st)
{
    const tr_op_t **cl = NULL, **cr = NULL;
    rc_fset_t *fs = NULL;
    rc_touch_t *ts = NULL;
    int rc = TR_OK;
    if (nt && (!(cl = malloc(nt * sizeof *cl)) || !(cr = malloc(nt * sizeof *cr)) ||
               !(fs = malloc(nt * sizeof *fs)) || !(ts = malloc(nt * sizeof *ts)))) {
        rc = TR_ENOMEM;
        goto out;
    }
    rc_sort(t, nt, sizeof *t, rc_by_target);
    for (size_t i = 0; i < nt;) {
        size_t j = i, nl = 0;
        while (j < nt && t[j].scope == t[i].scope && rc_str_cmp(t[j].target, t[i].target) == 0) {
            nl += t[j].side == TR_SIDE_LOCAL;
            j++;
        }
        size_t nr = j - i - nl;
        if (nl && nr) {
            /* Same changes on both sides (as sets of kind, target, body)? */
            size_t a = 0, b = 0;
            for (size_t x = i; x < i + nl; x++)
                cl[a++] = t[x].op;
            for (size_t x = i + nl; x < j; x++)
                cr[b++] = t[x].op;
            rc_sort(cl, a, sizeof *cl, rc_by_content);
            rc_sort(cr, b, sizeof *cr, rc_by_content);
            size_t ua = 0, ub = 0;
            for (size_t x = 0; x < a; x++)
                if (!ua || rc_by_content(&cl[ua - 1], &cl[x])) cl[ua++] = cl[x];
            for (size_t x = 0; x < b; x++)
                if (!ub || rc_by_content(&cr[ub - 1], &cr[x])) cr[ub++] = cr[x];
            bool same = ua == ub;
            for (size_t x = 0; same && x < ua; x++)
                same = rc_by_content(&cl[x], &cr[x]) == 0;
            tr_crdt_str_t field;
            const char *reason =
                same ? NULL : rc_reason(&t[i], nl, nr, t[i].scope, st, fs, ts, &field);
            if (reason) {
                char ls[160], rs[160], text[1024], what[320];
                rc_summary(ls, sizeof ls, &t[i], nl);
                rc_summary(rs, sizeof rs, &t[i + nl], nr);
                if (field.p)
                    snprintf(what, sizeof what, "field \"%.*s\" of entity \"%.*s\"",
                             (int)(field.n > 64 ? 64 : field.n), field.p,
                             (int)(t[i].target.n > 200 ? 200 : t[i].target.n), t[i].target.p);
                else
                    snprintf(what, sizeof what, "%s \"%.*s\"", rc_scope_names[t[i].scope],
                             (int)(t[i].target.n > 200 ? 200 : t[i].target.n), t[i].target.p);
                snprintf(text, sizeof text, "%s: %s (local: %s; remote: %s)", what,
                         rc_describe(reason), ls, rs);
                if ((rc = rc_add(r, reason, t[i].scope, t[i].target, field, nl, nr, text)))
                    goto out;
            }
        }
        i = j;
    }
out:
    free(cl);
    free(cr);
    free(fs);
    free(ts);
    return rc;
}

/* Two different ops with one (branch, author, seq). */
static int rc_equivocation(tr_reconcile_t *r)
{
    if (r->nmerged < 2) return TR_OK;
    const rc_item_t **p = malloc(r->nmerged * sizeof *p);
    if (!p) return TR_ENOMEM;
    for (size_t i = 0; i < r->nmerged; i++)
        p[i] = &r->merged[i];
    rc_sort(p, r->nmerged, sizeof *p, rc_by_author_seq);
    int rc = TR_OK;
    for (size_t i = 1; i < r->nmerged && !rc; i++) {
        const tr_op_t *a = p[i - 1]->op, *b = p[i]->op;
        if (a->seq != b->seq || memcmp(a->author, b->author, TR_KEY_LEN) ||
            a->branch_len != b->branch_len || memcmp(a->branch, b->branch, a->branch_len))
            continue;
        char id[TR_PEER_ID_STRLEN + 1], ha[17], hb[17], text[300];
        tr_peer_id(id, a->author);
        tr_hash_short(ha, a->hash, 16);
        tr_hash_short(hb, b->hash, 16);
        snprintf(text, sizeof text, "author %s wrote two different ops with seq %llu (%s, %s)", id,
                 (unsigned long long)a->seq, ha, hb);
        unsigned sa = p[i - 1]->side, sb = p[i]->side;
        size_t nl = !!(sa & TR_SIDE_LOCAL) + !!(sb & TR_SIDE_LOCAL);
        size_t nr = !!(sa & TR_SIDE_REMOTE) + !!(sb & TR_SIDE_REMOTE);
        rc = rc_add(r, "equivocation", -1, (tr_crdt_str_t){id, strlen(id)},
                    (tr_crdt_str_t){NULL, 0}, nl, nr, text);
    }
    free(p);
    return rc;
}

/* ---- the reconciler ------------------------------------------------------ */

/* Sort by hash to merge the sides (common ops collapse, labelled both), by
 * stamp for the merged order, fork point and unique lists; then classify the
 * unique ops into (scope, target) touches for the conflict pass and look for
 * equivocation. The result borrows the input ops. */
int tr_reconcile(const tr_op_t *local, size_t nlocal, const tr_op_t *remote, size_t nremote,
                 const tr_strategies_t *st, tr_reconcile_t **out, tr_err_t *err)
{
    *out = NULL;
    if ((nlocal && !local) || (nremote && !remote))
        return tr_err_set(err, TR_EINVAL, "reconcile: NULL ops");
    size_t n = nlocal + nremote;
    tr_reconcile_t *r = calloc(1, sizeof *r);
    rc_item_t *all = n ? malloc(n * sizeof *all) : NULL;
    tr_crdt_op_t *views = NULL;
    rc_touch_t *touches = NULL;
    int rc = TR_ENOMEM;
    if (!r || (n && !all)) goto fail;
    for (size_t i = 0; i < nlocal; i++)
        all[i] = rc_item(&local[i], TR_SIDE_LOCAL);
    for (size_t i = 0; i < nremote; i++)
        all[nlocal + i] = rc_item(&remote[i], TR_SIDE_REMOTE);

    /* Common ops by hash; repeats on one side collapse. The local copy
     * represents an op both sides hold. */
    rc_sort(all, n, sizeof *all, rc_by_hash);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && rc_hash_cmp(&all[m - 1], &all[i]) == 0)
            all[m - 1].side |= all[i].side;
        else
            all[m++] = all[i];
    }
    rc_sort(all, m, sizeof *all, rc_by_stamp);
    r->merged = all;
    r->nmerged = m;
    all = NULL;

    size_t nu = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned s = r->merged[i].side;
        if (s == TR_SIDE_BOTH) {
            r->has_fork = true;
            memcpy(r->fork, r->merged[i].op->hash, TR_HASH_LEN);
        } else {
            r->nuniq[s == TR_SIDE_REMOTE]++;
            nu++;
        }
    }
    for (int s = 0; s < 2; s++)
        if (r->nuniq[s] && !(r->uniq[s] = malloc(r->nuniq[s] * sizeof *r->uniq[s]))) goto fail;
    if (nu &&
        (!(views = malloc(nu * sizeof *views)) || !(touches = malloc(2 * nu * sizeof *touches))))
        goto fail;
    size_t k[2] = {0, 0}, nv = 0, nt = 0;
    for (size_t i = 0; i < m; i++) {
        unsigned s = r->merged[i].side;
        if (s == TR_SIDE_BOTH) continue;
        const tr_op_t *op = r->merged[i].op;
        r->uniq[s == TR_SIDE_REMOTE][k[s == TR_SIDE_REMOTE]++] = op;
        tr_crdt_op_t *v = &views[nv];
        if (tr_crdt_classify(op, v, NULL) == TR_OK)
            nv++;
        else
            v = NULL;
        int scope = rc_scope(v);
        tr_crdt_str_t tg = {op->target, op->target_len};
        touches[nt++] = (rc_touch_t){scope, tg, s, i, v, op, false};
        if (v && v->kind == TR_CRDT_FILE_RENAME)
            touches[nt++] = (rc_touch_t){scope, v->from, s, i, v, op, true};
    }
    if ((rc = rc_conflicts(r, touches, nt, st)) || (rc = rc_equivocation(r))) goto fail;
    if (r->nconf) rc_sort(r->conf, r->nconf, sizeof *r->conf, rc_conf_cmp);
    free(views);
    free(touches);
    *out = r;
    return TR_OK;
fail:
    free(all);
    free(views);
    free(touches);
    tr_reconcile_destroy(&r);
    return tr_err_set(err, rc, "reconcile: out of memory");
}

void tr_reconcile_destroy(tr_reconcile_t **rp)
{
    if (!rp || !*rp) return;
    tr_reconcile_t *r = *rp;
    for (size_t i = 0; i < r->nconf; i++) {
        free((char *)r->conf[i].text);
        if (!strcmp(r->conf[i].scope, "author")) free((char *)r->conf[i].target.p);
    }
    free(r->conf);
    free(r->merged);
    free(r->uniq[0]);
    free(r->uniq[1]);
    free(r);
    *rp = NULL;
}

size_t tr_reconcile_merged_count(const tr_reconcile_t *r)
{
    return r ? r->nmerged : 0;
}

const tr_op_t *tr_reconcile_merged(const tr_reconcile_t *r, size_t i, tr_side_t *side)
{
    if (!r || i >= r->nmerged) return NULL;
    if (side) *side = (tr_side_t)r->merged[i].side;
    return r->merged[i].op;
}

bool tr_reconcile_fork_point(const tr_reconcile_t *r, uint8_t hash[TR_HASH_LEN])
{
    if (!r || !r->has_fork) return false;
    if (hash) memcpy(hash, r->fork, TR_HASH_LEN);
    return true;
}

size_t tr_reconcile_unique_count(const tr_reconcile_t *r, tr_side_t side)
{
    if (!r || (side != TR_SIDE_LOCAL && side != TR_SIDE_REMOTE)) return 0;
    return r->nuniq[side == TR_SIDE_REMOTE];
}

const tr_op_t *tr_reconcile_unique(const tr_reconcile_t *r, tr_side_t side, size_t i)
{
    if (!r || (side != TR_SIDE_LOCAL && side != TR_SIDE_REMOTE)) return NULL;
    int s = side == TR_SIDE_REMOTE;
    return i < r->nuniq[s] ? r->uniq[s][i] : NULL;
}

bool tr_reconcile_clean(const tr_reconcile_t *r)
{
    return !r || r->nconf == 0;
}

size_t tr_reconcile_conflict_count(const tr_reconcile_t *r)
{
    return r ? r->nconf : 0;
}

const tr_conflict_t *tr_reconcile_conflict(const tr_reconcile_t *r, size_t i)
{
    return r && i < r->nconf ? &r->conf[i] : NULL;
}
