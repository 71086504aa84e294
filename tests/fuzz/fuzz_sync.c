/*
 * fuzz_sync.c — libFuzzer harness for the sync session state machine
 * (core/sync.c, docs/protocol.md §3.4): one tr_sync_t over an in-memory host
 * is fed a sequence of frames and events cut from the input. Whatever the
 * sequence: no crash, no leak, no sanitizer report, and these hold:
 *
 *   - every frame the session emits decodes (tr_frame_decode);
 *   - a stream never has more than TR_WINDOW `ops` frames unacknowledged;
 *   - the session's want ids increase, and it acks only wants it sent;
 *   - a refusal to go on (negative tr_sync_recv) comes with a reason.
 *
 * Input: a list of commands, each a byte (mod NCMD) and its operands:
 *
 *   RAW len16 bytes   one frame, as received (captured sessions are lists of
 *                     these: see the generator below)
 *   HELLO/HAVE/WANT/OPS/ACK/NACK …
 *                     a well-formed frame built from a few bytes, with ids,
 *                     hashes and keys picked from the ops universe, so the
 *                     fuzzer gets past the decoder into the state machine;
 *                     OPS answers the session's outstanding want with real
 *                     ops of the universe, optionally tampered with
 *   TICK, CHANGED, SERVED, LOCAL, RESTART, DRAIN, POP
 *                     anti-entropy, a local change, the served set changes,
 *                     a local write, a reconnect, output handling
 *
 * A violation (negative return) drops the session and starts a new one, as
 * the agent does with a peer.
 *
 * The host is a tiny in-memory store ("mem") that keeps the rules the real
 * store enforces on integration (seq/prev chain, known parents, linear head,
 * lamport, signatures, signing coverage) in a few lines each; it is not the
 * agent's host (agent/daemon/host.c runs on LMDB and is exercised by
 * tests/unit/test_sync.c) but gives the session the same answers.
 *
 * Seeds: with FUZZ_WRITE_SEEDS=DIR set, LLVMFuzzerInitialize runs two
 * sessions against each other over two mem hosts and writes what each side
 * received (as RAW commands) to DIR/fuzz_sync/, every frame to
 * DIR/fuzz_frame/ and every ops payload to DIR/fuzz_batch/, then exits.
 *
 * Entropic scheduling spends most of the time on bookkeeping with the many
 * features this harness has; plain scheduling runs 2-3 times more inputs:
 * fuzz-options: -entropic=0
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tr_identity.h"
#include "tr_sync.h"
#include "tr_wire.h"

#define CHECK(c)                                                                              \
    do {                                                                                      \
        if (!(c)) {                                                                           \
            fprintf(stderr, "fuzz_sync: %s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

/* ---- the universe of ops (built once) ----------------------------------- */

static const uint8_t R1[TR_REPO_ID_LEN] = {0x51, 0x4c, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
static const uint8_t R2[TR_REPO_ID_LEN] = {0x52, 0x4c, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
static const uint8_t R3[TR_REPO_ID_LEN] = {0x53, 0x4c, 0x03}; /* nobody serves it */

#define NAUTH 4
static tr_identity_t *ids[NAUTH];
static uint8_t keys[NAUTH][TR_KEY_LEN];

enum { IN_X = 1, IN_Y = 2 }; /* held by the local store (X), by the peer's (Y) */

typedef struct {
    uint8_t *rec;
    size_t len;
    tr_op_t op; /* decoded from rec */
    int where;  /* IN_X | IN_Y; 0 for later local writes */
} ent_t;

#define UMAX 64
static ent_t univ[UMAX];
static size_t nuniv;
static ent_t *later[4]; /* local writes the LOCAL command appends */
static size_t nlater;

static const char *const BRANCHES[] = {"c", "main", "lin/d", "o", "x"};
#define NBRANCHES (sizeof BRANCHES / sizeof BRANCHES[0])

/* Policy: "main" and "lin/…" are linear; "o" needs no signatures. */
static bool pol_linear(const char *b, size_t n)
{
    return (n == 4 && !memcmp(b, "main", 4)) || (n >= 4 && !memcmp(b, "lin/", 4));
}

static bool pol_signing(const char *b, size_t n)
{
    return !(n == 1 && b[0] == 'o');
}

static int hash_cmp(const void *x, const void *y)
{
    return memcmp(x, y, TR_HASH_LEN);
}

/* Builds one op of the universe: author a, parents (universe entries). */
static ent_t *mk(const uint8_t *repo, const char *branch, int a, uint64_t seq, uint64_t lamport,
                 ent_t *const *parents, size_t np, ent_t *prev, bool sign, int where)
{
    CHECK(nuniv < UMAX);
    static char targets[UMAX][16];
    static uint8_t bodies[UMAX][4];
    ent_t *e = &univ[nuniv];
    tr_op_t op = {0};
    memcpy(op.repo, repo, TR_REPO_ID_LEN);
    op.branch = branch;
    op.branch_len = strlen(branch);
    memcpy(op.author, keys[a], TR_KEY_LEN);
    op.seq = seq;
    op.lamport = lamport;
    op.wall_ms = 1760000000000ull + nuniv;
    for (size_t i = 0; i < np; i++) memcpy(op.parents[i], parents[i]->op.hash, TR_HASH_LEN);
    qsort(op.parents, np, TR_HASH_LEN, hash_cmp);
    op.nparents = np;
    if (prev) op.has_prev = true, memcpy(op.prev, prev->op.hash, TR_HASH_LEN);
    op.kind = "app.x";
    op.kind_len = 5;
    snprintf(targets[nuniv], sizeof targets[nuniv], "t%zu", nuniv);
    op.target = targets[nuniv];
    op.target_len = strlen(targets[nuniv]);
    bodies[nuniv][0] = 0x91; /* [seq] */
    bodies[nuniv][1] = (uint8_t)(seq & 0x7f);
    op.body = bodies[nuniv];
    op.body_len = 2;
    tr_buf_t b = {0};
    CHECK(tr_op_encode(&op, sign ? tr_identity_secret(ids[a]) : NULL, &b, NULL) == TR_OK);
    e->rec = b.data;
    e->len = b.len;
    CHECK(tr_op_decode(e->rec, e->len, &e->op, NULL) == TR_OK);
    e->where = where;
    nuniv++;
    return e;
}

static void universe(void)
{
    for (int i = 0; i < NAUTH; i++) {
        uint8_t seed[32];
        memset(seed, 0x30 + i, sizeof seed);
        CHECK(tr_identity_from_seed(seed, &ids[i]) == TR_OK);
        memcpy(keys[i], tr_identity_public(ids[i]), TR_KEY_LEN);
    }
    const int XY = IN_X | IN_Y;
    /* "c": CRDT, signing required. X holds the first four; the peer has
     * more, with unsigned runs and a merge of two authors. */
    ent_t *c1 = mk(R1, "c", 0, 1, 1, NULL, 0, NULL, true, XY);
    ent_t *c2 = mk(R1, "c", 1, 1, 2, &c1, 1, NULL, false, XY);
    ent_t *c3 = mk(R1, "c", 1, 2, 3, &c2, 1, c2, true, XY);
    ent_t *c4 = mk(R1, "c", 0, 2, 4, &c3, 1, c1, true, XY);
    ent_t *p1 = mk(R1, "c", 2, 1, 5, &c4, 1, NULL, false, IN_Y);
    ent_t *p2 = mk(R1, "c", 2, 2, 6, &p1, 1, p1, false, IN_Y);
    ent_t *p3 = mk(R1, "c", 2, 3, 7, &p2, 1, p2, true, IN_Y);
    ent_t *q1 = mk(R1, "c", 3, 1, 5, &c4, 1, NULL, true, IN_Y);
    ent_t *m2[2] = {p3, q1};
    ent_t *p4 = mk(R1, "c", 2, 4, 8, m2, 2, p3, false, IN_Y);
    ent_t *p5 = mk(R1, "c", 2, 5, 9, &p4, 1, p4, true, IN_Y);
    mk(R1, "c", 0, 3, 10, &p5, 1, c4, true, IN_Y);
    /* "main": linear. X holds two ops; the peer extends them. */
    ent_t *l1 = mk(R1, "main", 0, 1, 1, NULL, 0, NULL, true, XY);
    ent_t *l2 = mk(R1, "main", 0, 2, 2, &l1, 1, l1, true, XY);
    ent_t *l3 = mk(R1, "main", 1, 1, 3, &l2, 1, NULL, false, IN_Y);
    ent_t *l4 = mk(R1, "main", 1, 2, 4, &l3, 1, l3, true, IN_Y);
    mk(R1, "main", 0, 3, 5, &l4, 1, l2, true, IN_Y);
    /* "lin/d": linear, the two sides diverged from the first op. */
    mk(R1, "lin/d", 0, 1, 1, NULL, 0, NULL, true, IN_X);
    mk(R1, "lin/d", 2, 1, 1, NULL, 0, NULL, true, IN_Y);
    /* "o": CRDT without signing; only the peer has ops. */
    ent_t *o1 = mk(R1, "o", 3, 1, 1, NULL, 0, NULL, false, IN_Y);
    mk(R1, "o", 3, 2, 2, &o1, 1, o1, false, IN_Y);
    /* R2 (served to the peer only while SERVED says so). */
    ent_t *r1 = mk(R2, "c", 1, 1, 1, NULL, 0, NULL, true, XY);
    mk(R2, "c", 2, 1, 2, &r1, 1, NULL, true, IN_Y);
    /* Local writes that LOCAL appends to X later. */
    later[nlater++] = mk(R1, "c", 1, 3, 11, &c4, 1, c3, true, 0);
    later[nlater++] = mk(R2, "c", 1, 2, 3, &r1, 1, r1, true, 0);
}

/* ---- the in-memory store and host ---------------------------------------- */

typedef struct {
    ent_t *e;
    bool owned; /* a record integrated from the peer (heap) */
} slot_t;

typedef struct {
    slot_t *s;
    size_t n, cap, base; /* base: the preloaded slots */
    bool serve_r2;
    uint64_t events[8];
} mem_t;

static bool on_branch(const ent_t *e, const uint8_t *repo, const char *branch)
{
    size_t n = strlen(branch);
    return memcmp(e->op.repo, repo, TR_REPO_ID_LEN) == 0 && e->op.branch_len == n &&
           memcmp(e->op.branch, branch, n) == 0;
}

static void mem_add(mem_t *m, ent_t *e, bool owned)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 64;
        m->s = realloc(m->s, m->cap * sizeof *m->s);
        CHECK(m->s);
    }
    m->s[m->n++] = (slot_t){e, owned};
}

static void mem_init(mem_t *m, int where)
{
    memset(m, 0, sizeof *m);
    for (size_t i = 0; i < nuniv; i++)
        if (univ[i].where & where) mem_add(m, &univ[i], false);
    m->base = m->n;
}

/* Back to the preloaded state. */
static void mem_reset(mem_t *m)
{
    for (size_t i = m->base; i < m->n; i++)
        if (m->s[i].owned) {
            free(m->s[i].e->rec);
            free(m->s[i].e);
        }
    m->n = m->base;
    m->serve_r2 = false;
}

static void mem_free(mem_t *m)
{
    mem_reset(m);
    free(m->s);
    memset(m, 0, sizeof *m);
}

static const ent_t *find_hash(const mem_t *m, const uint8_t *repo, const char *branch,
                              const uint8_t h[TR_HASH_LEN])
{
    for (size_t i = 0; i < m->n; i++)
        if (!memcmp(m->s[i].e->op.hash, h, TR_HASH_LEN) && (!repo || on_branch(m->s[i].e, repo, branch)))
            return m->s[i].e;
    return NULL;
}

static const ent_t *find_seq(const mem_t *m, const uint8_t *repo, const char *branch,
                             const uint8_t *author, uint64_t seq)
{
    for (size_t i = 0; i < m->n; i++) {
        const ent_t *e = m->s[i].e;
        if (e->op.seq == seq && !memcmp(e->op.author, author, TR_KEY_LEN) && on_branch(e, repo, branch))
            return e;
    }
    return NULL;
}

static uint64_t tip(const mem_t *m, const uint8_t *repo, const char *branch, const uint8_t *author)
{
    uint64_t t = 0;
    for (size_t i = 0; i < m->n; i++) {
        const ent_t *e = m->s[i].e;
        if (!memcmp(e->op.author, author, TR_KEY_LEN) && on_branch(e, repo, branch) && e->op.seq > t)
            t = e->op.seq;
    }
    return t;
}

/* Heads of a branch (sorted, at most 64): ops no other op names as parent. */
static size_t heads(const mem_t *m, const uint8_t *repo, const char *branch,
                    uint8_t out[TR_HAVE_MAX_HEADS][TR_HASH_LEN])
{
    size_t n = 0;
    for (size_t i = 0; i < m->n && n < TR_HAVE_MAX_HEADS; i++) {
        const ent_t *e = m->s[i].e;
        if (!on_branch(e, repo, branch)) continue;
        bool named = false;
        for (size_t j = 0; j < m->n && !named; j++) {
            const ent_t *o = m->s[j].e;
            if (!on_branch(o, repo, branch)) continue;
            for (size_t p = 0; p < o->op.nparents && !named; p++)
                named = !memcmp(o->op.parents[p], e->op.hash, TR_HASH_LEN);
        }
        if (!named) memcpy(out[n++], e->op.hash, TR_HASH_LEN);
    }
    qsort(out, n, TR_HASH_LEN, hash_cmp);
    return n;
}

static int vv_cmp(const void *x, const void *y)
{
    return memcmp(((const tr_vv_entry_t *)x)->key, ((const tr_vv_entry_t *)y)->key, TR_KEY_LEN);
}

static void vv_of(const mem_t *m, const uint8_t *repo, const char *branch, tr_vv_t *out)
{
    out->v = NULL;
    out->n = 0;
    for (size_t i = 0; i < m->n; i++) {
        const ent_t *e = m->s[i].e;
        if (!on_branch(e, repo, branch)) continue;
        size_t k = 0;
        while (k < out->n && memcmp(out->v[k].key, e->op.author, TR_KEY_LEN)) k++;
        if (k == out->n) {
            out->v = realloc(out->v, (out->n + 1) * sizeof *out->v);
            CHECK(out->v);
            memcpy(out->v[k].key, e->op.author, TR_KEY_LEN);
            out->v[k].seq = 0;
            out->n++;
        }
        if (e->op.seq > out->v[k].seq) out->v[k].seq = e->op.seq;
    }
    if (out->n) qsort(out->v, out->n, sizeof *out->v, vv_cmp);
}

static bool h_serves(void *host, const uint8_t repo[TR_REPO_ID_LEN])
{
    const mem_t *m = host;
    return !memcmp(repo, R1, TR_REPO_ID_LEN) || (m->serve_r2 && !memcmp(repo, R2, TR_REPO_ID_LEN));
}

static int h_repos(void *host, uint8_t (**ids_out)[TR_REPO_ID_LEN], size_t *n)
{
    const mem_t *m = host;
    *n = m->serve_r2 ? 2 : 1;
    *ids_out = malloc(*n * TR_REPO_ID_LEN);
    if (!*ids_out) return TR_ENOMEM;
    memcpy((*ids_out)[0], R1, TR_REPO_ID_LEN);
    if (m->serve_r2) memcpy((*ids_out)[1], R2, TR_REPO_ID_LEN);
    return TR_OK;
}

static int h_have(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch, tr_frame_t *out)
{
    const mem_t *m = host;
    memset(out, 0, sizeof *out);
    out->type = TR_FRAME_HAVE;
    out->has_repo = true;
    memcpy(out->repo, repo, TR_REPO_ID_LEN);
    if (!h_serves(host, repo)) return TR_ENOTFOUND;
    for (size_t bi = 0; bi < NBRANCHES; bi++) {
        const char *b = BRANCHES[bi];
        if (branch && strcmp(branch, b)) continue;
        uint64_t count = 0;
        for (size_t i = 0; i < m->n; i++) count += on_branch(m->s[i].e, repo, b);
        if (!count) continue;
        out->branches = realloc(out->branches, (out->nbranches + 1) * sizeof *out->branches);
        CHECK(out->branches);
        tr_have_branch_t *hb = &out->branches[out->nbranches++];
        memset(hb, 0, sizeof *hb);
        snprintf(hb->name, sizeof hb->name, "%s", b);
        hb->count = count;
        uint8_t hs[TR_HAVE_MAX_HEADS][TR_HASH_LEN];
        hb->nheads = heads(m, repo, b, hs);
        hb->heads = malloc(hb->nheads * TR_HASH_LEN + 1);
        CHECK(hb->heads);
        memcpy(hb->heads, hs, hb->nheads * TR_HASH_LEN);
        vv_of(m, repo, b, &hb->vv);
    }
    return TR_OK;
}

static bool h_linear(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch)
{
    (void)host, (void)repo;
    return pol_linear(branch, strlen(branch));
}

static bool h_holds(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                    const uint8_t hash[TR_HASH_LEN])
{
    return find_hash(host, repo, branch, hash) != NULL;
}

struct tr_sync_cursor {
    size_t *idx; /* slots to stream, in order */
    size_t n, pos;
    const tr_op_t **ops;
};

static const mem_t *sort_mem; /* qsort context */
static int order_cmp(const void *x, const void *y)
{
    return tr_op_order(&sort_mem->s[*(const size_t *)x].e->op, &sort_mem->s[*(const size_t *)y].e->op);
}

static int h_cursor_open(void *host, const tr_frame_t *want, tr_sync_cursor_t **out, tr_err_t *err)
{
    const mem_t *m = host;
    *out = NULL;
    tr_sync_cursor_t *c = calloc(1, sizeof *c);
    CHECK(c);
    c->idx = malloc((m->n + 1) * sizeof *c->idx);
    CHECK(c->idx);
    bool linear = pol_linear(want->branch, strlen(want->branch));
    size_t from = 0;
    if (linear && want->has_after) {
        const ent_t *a = find_hash(m, want->repo, want->branch, want->after_hash);
        if (!a) {
            free(c->idx);
            free(c);
            return tr_err_set(err, TR_EDIVERGED, "head not held");
        }
        while (m->s[from].e != a) from++;
        from++;
    }
    for (size_t i = from; i < m->n; i++) {
        const ent_t *e = m->s[i].e;
        if (!on_branch(e, want->repo, want->branch)) continue;
        if (!linear && e->op.seq <= tr_vv_get(&want->from, e->op.author)) continue;
        c->idx[c->n++] = i;
    }
    if (!linear && c->n) {
        sort_mem = m;
        qsort(c->idx, c->n, sizeof *c->idx, order_cmp);
    }
    *out = c;
    return TR_OK;
}

static int h_cursor_next(void *host, tr_sync_cursor_t *c, size_t max_ops, size_t max_bytes,
                         const tr_op_t *const **ops, size_t *n, bool *done, tr_err_t *err)
{
    const mem_t *m = host;
    (void)err;
    free(c->ops);
    c->ops = malloc((c->n + 1) * sizeof *c->ops);
    CHECK(c->ops);
    size_t k = 0, bytes = 0;
    while (c->pos < c->n && k < max_ops) {
        const ent_t *e = m->s[c->idx[c->pos]].e;
        if (k && bytes + e->len > max_bytes) break;
        bytes += e->len;
        c->ops[k++] = &e->op;
        c->pos++;
    }
    *ops = c->ops;
    *n = k;
    *done = c->pos == c->n;
    return TR_OK;
}

static void h_cursor_close(void *host, tr_sync_cursor_t **c)
{
    (void)host;
    if (!c || !*c) return;
    free((*c)->idx);
    free((*c)->ops);
    free(*c);
    *c = NULL;
}

static int h_prev(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                  const uint8_t author[TR_KEY_LEN], uint64_t seq, uint8_t hash[TR_HASH_LEN])
{
    const ent_t *e = find_seq(host, repo, branch, author, seq);
    if (!e) return TR_ENOTFOUND;
    memcpy(hash, e->op.hash, TR_HASH_LEN);
    return TR_OK;
}

/* Verifies a signature; those of the universe's own ops are known good
 * (Ed25519 costs ~45 µs, most of an execution otherwise). */
static bool sig_ok(const tr_op_t *op)
{
    for (size_t i = 0; i < nuniv; i++)
        if (!memcmp(univ[i].op.hash, op->hash, TR_HASH_LEN) && univ[i].op.has_sig &&
            !memcmp(univ[i].op.sig, op->sig, TR_SIG_LEN))
            return true;
    return tr_op_verify(op) == TR_OK;
}

/* One record against the store's rules (store/tr_store.h,
 * tr_store_integrate); `later` are the records after it in the batch. */
static int check_rec(const mem_t *m, const uint8_t *repo, const tr_op_t *op, const tr_rec_t *rest,
                     size_t nrest, const char **why)
{
    char branch[TR_BRANCH_MAX + 1];
    snprintf(branch, sizeof branch, "%.*s", (int)op->branch_len, op->branch);
    if (memcmp(op->repo, repo, TR_REPO_ID_LEN)) return *why = "repo", TR_EREPO;
    if (find_hash(m, NULL, NULL, op->hash)) return TR_DUPLICATE;
    if (find_seq(m, repo, branch, op->author, op->seq)) return *why = "equivocation", TR_EEQUIVOCATION;
    if (op->seq != tip(m, repo, branch, op->author) + 1) return *why = "seq", TR_ESEQ;
    uint64_t lam = 0;
    if (op->seq > 1) {
        const ent_t *p = find_seq(m, repo, branch, op->author, op->seq - 1);
        if (!p || !op->has_prev || memcmp(p->op.hash, op->prev, TR_HASH_LEN)) return *why = "prev", TR_EPREV;
        lam = p->op.lamport;
    }
    for (size_t i = 0; i < op->nparents; i++) {
        const ent_t *p = find_hash(m, repo, branch, op->parents[i]);
        if (!p) return *why = "parent", TR_EPARENT;
        if (p->op.lamport > lam) lam = p->op.lamport;
    }
    if (pol_linear(branch, op->branch_len)) {
        uint8_t hs[TR_HAVE_MAX_HEADS][TR_HASH_LEN];
        size_t nh = heads(m, repo, branch, hs);
        if (nh != op->nparents || (nh && memcmp(hs[0], op->parents[0], TR_HASH_LEN)))
            return *why = "diverged", TR_EDIVERGED;
    }
    if (op->lamport <= lam) return *why = "lamport", TR_ELAMPORT;
    if (op->has_sig) return sig_ok(op) ? TR_INTEGRATED : (*why = "signature", TR_ESIG);
    if (!pol_signing(branch, op->branch_len)) return TR_INTEGRATED;
    for (size_t j = 0; j < nrest; j++) { /* covered by a later signed op of the author */
        tr_op_t o;
        if (tr_op_decode(rest[j].data, rest[j].len, &o, NULL) == TR_OK && o.has_sig &&
            o.seq > op->seq && !memcmp(o.author, op->author, TR_KEY_LEN) &&
            o.branch_len == op->branch_len && !memcmp(o.branch, op->branch, o.branch_len) &&
            sig_ok(&o))
            return TR_INTEGRATED;
    }
    return *why = "unsigned", TR_EUNSIGNED;
}

static int h_integrate(void *host, const uint8_t repo[TR_REPO_ID_LEN], const tr_rec_t *recs, size_t n,
                       int *status,
                       void (*refuse)(void *arg, size_t i, const uint8_t *hash, int code,
                                      const char *reason),
                       void *arg, tr_err_t *err)
{
    mem_t *m = host;
    (void)err;
    for (size_t i = 0; i < n; i++) {
        tr_op_t op;
        const char *why = "malformed";
        int rc = tr_op_decode(recs[i].data, recs[i].len, &op, NULL);
        if (rc == TR_OK) rc = check_rec(m, repo, &op, recs + i + 1, n - i - 1, &why);
        if (status) status[i] = rc;
        if (rc < 0) {
            refuse(arg, i, rc == TR_EMALFORMED ? NULL : op.hash, rc, why);
        } else if (rc == TR_INTEGRATED) {
            ent_t *e = calloc(1, sizeof *e);
            CHECK(e && (e->rec = malloc(recs[i].len)));
            memcpy(e->rec, recs[i].data, recs[i].len);
            e->len = recs[i].len;
            CHECK(tr_op_decode(e->rec, e->len, &e->op, NULL) == TR_OK);
            mem_add(m, e, true);
        }
    }
    return TR_OK;
}

static int h_vv(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch, tr_vv_t *out)
{
    vv_of(host, repo, branch, out);
    return TR_OK;
}

static void h_event(void *host, const tr_sync_event_t *ev)
{
    mem_t *m = host;
    CHECK(ev->type >= TR_SYNC_EV_HELLO && ev->type <= TR_SYNC_EV_PROGRESS);
    m->events[ev->type]++;
    if (ev->type == TR_SYNC_EV_REFUSED) CHECK(ev->code < 0);
    if (ev->type == TR_SYNC_EV_HELLO) CHECK(ev->hello != NULL);
}

static tr_sync_t *session_new(mem_t *m, const char *name)
{
    tr_sync_host_t h = {.host = m, .serves = h_serves, .repos = h_repos, .have = h_have,
                        .linear = h_linear, .holds = h_holds, .cursor_open = h_cursor_open,
                        .cursor_next = h_cursor_next, .cursor_close = h_cursor_close,
                        .prev = h_prev, .integrate = h_integrate, .vv = h_vv, .event = h_event};
    tr_sync_t *s = tr_sync_new(&h, name);
    CHECK(s);
    tr_err_t err;
    CHECK(tr_sync_start(s, &err) == TR_OK);
    return s;
}

/* ---- the harness: one session, the fuzzer plays the peer ---------------- */

static mem_t M;
static tr_sync_t *S;

/* What the harness knows about the frames exchanged. */
#define NTRACK 32
typedef struct {
    uint8_t repo[TR_REPO_ID_LEN];
    char branch[TR_BRANCH_MAX + 1];
    uint64_t want_id; /* the peer's (our) latest accepted want for this branch */
    int unacked;      /* its ops frames popped minus acks delivered: the
                       * session's own count less what is still in its outbox */
} track_t;

static struct {
    track_t t[NTRACK];
    size_t nt;
    bool overflow;          /* more branches than tracked: window checks off */
    uint64_t peer_want;     /* the last want id we sent */
    uint64_t sess_max_want; /* the highest want id the session sent */
    bool has_sess_want;
    uint8_t sw_repo[TR_REPO_ID_LEN];
    char sw_branch[TR_BRANCH_MAX + 1];
    uint64_t sw_id;
    bool draining;
} H;

static track_t *track(const uint8_t *repo, const char *branch, bool create)
{
    for (size_t i = 0; i < H.nt; i++)
        if (!memcmp(H.t[i].repo, repo, TR_REPO_ID_LEN) && !strcmp(H.t[i].branch, branch)) return &H.t[i];
    if (!create) return NULL;
    if (H.nt == NTRACK) {
        H.overflow = true;
        return NULL;
    }
    track_t *t = &H.t[H.nt++];
    memset(t, 0, sizeof *t);
    memcpy(t->repo, repo, TR_REPO_ID_LEN);
    snprintf(t->branch, sizeof t->branch, "%s", branch);
    return t;
}

/* A frame the session accepted: wants start streams, acks open the window. */
static void learn(const tr_frame_t *f)
{
    track_t *t;
    if (f->type == TR_FRAME_WANT && (t = track(f->repo, f->branch, true))) {
        t->want_id = f->want_id;
        t->unacked = 0;
    } else if (f->type == TR_FRAME_ACK && (t = track(f->repo, f->branch, false)) &&
               f->want_id == t->want_id) {
        t->unacked--;
    }
}

static void session_reset(void)
{
    tr_sync_destroy(&S);
    memset(&H, 0, sizeof H);
    H.draining = true;
    S = session_new(&M, "fuzz");
}

/* Checks one frame the session emitted and learns from it. */
static void observe(const tr_buf_t *b)
{
    tr_frame_t f;
    tr_err_t err;
    if (tr_frame_decode(b->data, b->len, &f, &err) != TR_OK) {
        fprintf(stderr, "fuzz_sync: the session emitted a frame that does not decode: %s\n", err.msg);
        abort();
    }
    if (f.type == TR_FRAME_WANT) {
        CHECK(f.want_id > H.sess_max_want);
        H.sess_max_want = f.want_id;
        H.has_sess_want = true;
        memcpy(H.sw_repo, f.repo, TR_REPO_ID_LEN);
        snprintf(H.sw_branch, sizeof H.sw_branch, "%s", f.branch);
        H.sw_id = f.want_id;
    } else if (f.type == TR_FRAME_OPS) {
        track_t *t = track(f.repo, f.branch, false);
        CHECK(t != NULL || H.overflow); /* ops only for a branch we wanted */
        if (t) {
            CHECK(f.want_id <= t->want_id);
            if (f.want_id == t->want_id) {
                t->unacked++;
                CHECK(t->unacked <= TR_WINDOW); /* flow control (§3.2) */
            }
        }
    } else if (f.type == TR_FRAME_ACK) {
        CHECK(f.want_id >= 1 && f.want_id <= H.sess_max_want);
    }
    tr_frame_clear(&f);
}

static void pop(size_t max)
{
    tr_buf_t b = {0};
    for (size_t i = 0; i < max && tr_sync_pop(S, &b); i++) observe(&b);
    tr_buf_free(&b);
}

static void drain(void)
{
    tr_err_t err;
    for (int round = 0; round < 64; round++) {
        tr_buf_t b = {0};
        size_t n = 0;
        while (tr_sync_pop(S, &b)) observe(&b), n++;
        tr_buf_free(&b);
        if (tr_sync_pump(S, &err) != TR_OK) CHECK(err.msg[0]);
        if (!n && tr_sync_idle(S)) return;
        if (!n) return;
    }
}

static void deliver(const uint8_t *data, size_t len)
{
    tr_err_t err;
    err.msg[0] = '\0';
    tr_frame_t f;
    bool decoded = tr_frame_decode(data, len, &f, NULL) == TR_OK;
    int rc = tr_sync_recv(S, data, len, &err);
    if (rc != TR_OK) {
        CHECK(rc < 0 && err.msg[0]); /* a refusal says why */
        pop(SIZE_MAX);                /* the nack goes out, then the peer is dropped */
        session_reset();
    } else if (decoded) {
        learn(&f);
    }
    if (decoded) tr_frame_clear(&f);
}

static void deliver_frame(const tr_frame_t *f)
{
    tr_buf_t b = {0};
    if (tr_frame_encode(f, &b, NULL) == TR_OK) deliver(b.data, b.len);
    tr_buf_free(&b);
}

/* Input reader. */
typedef struct {
    const uint8_t *p;
    size_t n;
} in_t;

static uint8_t u8(in_t *in)
{
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

static uint16_t u16(in_t *in)
{
    uint16_t v = u8(in);
    return (uint16_t)(v | u8(in) << 8);
}

static const uint8_t *pick_repo(uint8_t v)
{
    static const uint8_t *const r[] = {R1, R1, R1, R2, R3};
    return r[v % 5];
}

static const char *pick_branch(uint8_t v)
{
    return BRANCHES[v % NBRANCHES];
}

static void pick_hash(uint8_t v, uint8_t out[TR_HASH_LEN])
{
    if (v < 2 * nuniv) {
        memcpy(out, univ[v % nuniv].op.hash, TR_HASH_LEN);
    } else {
        memset(out, v, TR_HASH_LEN);
    }
}

static void pick_vv(in_t *in, tr_vv_t *vv)
{
    size_t n = u8(in) % 5;
    vv->v = calloc(n + 1, sizeof *vv->v);
    CHECK(vv->v);
    vv->n = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t k = u8(in), s = u8(in);
        const uint8_t *key = keys[k % NAUTH];
        uint8_t other[TR_KEY_LEN];
        if (k >= 0xf0) memset(other, k, sizeof other), key = other;
        bool dup = false;
        for (size_t j = 0; j < vv->n; j++) dup |= !memcmp(vv->v[j].key, key, TR_KEY_LEN);
        if (dup) continue;
        memcpy(vv->v[vv->n].key, key, TR_KEY_LEN);
        vv->v[vv->n++].seq = s >= 0xf0 ? UINT64_MAX - (0xff - s) : (uint64_t)(s % 12) + 1;
    }
    tr_vv_sort(vv);
}

static void cmd_hello(in_t *in)
{
    uint8_t fl = u8(in);
    static const char *const names[] = {"", "peer", "X", "0123456789012345678901234567890123456789012345678901234567890123"};
    static const uint64_t vers[4][2] = {{1, 1}, {2, 3}, {0, 1}, {1, 9}};
    tr_frame_t f = {.type = TR_FRAME_HELLO, .min_version = vers[fl & 3][0], .max_version = vers[fl & 3][1]};
    snprintf(f.name, sizeof f.name, "%s", names[(fl >> 5) & 3]);
    uint8_t repos[3][TR_REPO_ID_LEN];
    if (fl & 4) memcpy(repos[f.nrepos++], R1, TR_REPO_ID_LEN);
    if (fl & 8) memcpy(repos[f.nrepos++], R2, TR_REPO_ID_LEN);
    if (fl & 16) memcpy(repos[f.nrepos++], R3, TR_REPO_ID_LEN);
    f.repos = repos;
    deliver_frame(&f);
}

static void cmd_have(in_t *in)
{
    tr_frame_t f = {.type = TR_FRAME_HAVE, .has_repo = true};
    memcpy(f.repo, pick_repo(u8(in)), TR_REPO_ID_LEN);
    size_t nb = u8(in) % 4;
    f.branches = calloc(nb + 1, sizeof *f.branches);
    CHECK(f.branches);
    for (size_t i = 0; i < nb; i++) {
        tr_have_branch_t *b = &f.branches[f.nbranches++];
        snprintf(b->name, sizeof b->name, "%s", pick_branch(u8(in)));
        uint8_t c = u8(in);
        b->count = c == 0xff ? UINT64_MAX : c % 16;
        size_t nh = u8(in) % 4;
        b->heads = malloc((nh + 1) * TR_HASH_LEN);
        CHECK(b->heads);
        for (size_t h = 0; h < nh; h++) pick_hash(u8(in), b->heads[h]);
        qsort(b->heads, nh, TR_HASH_LEN, hash_cmp);
        b->nheads = 0;
        for (size_t h = 0; h < nh; h++)
            if (!b->nheads || memcmp(b->heads[b->nheads - 1], b->heads[h], TR_HASH_LEN))
                memmove(b->heads[b->nheads++], b->heads[h], TR_HASH_LEN);
        pick_vv(in, &b->vv);
    }
    deliver_frame(&f);
    tr_frame_clear(&f);
}

static void cmd_want(in_t *in)
{
    tr_frame_t f = {.type = TR_FRAME_WANT, .has_repo = true, .has_branch = true};
    memcpy(f.repo, pick_repo(u8(in)), TR_REPO_ID_LEN);
    snprintf(f.branch, sizeof f.branch, "%s", pick_branch(u8(in)));
    uint8_t mode = u8(in);
    f.want_id = mode < 0xc0 ? H.peer_want + 1 : mode < 0xe0 ? H.peer_want : (uint64_t)(mode & 7);
    uint8_t a = u8(in);
    if (a & 1) f.has_after = true, pick_hash(a >> 1, f.after_hash);
    pick_vv(in, &f.from);
    static const uint64_t budgets[] = {TR_SYNC_WANT_BYTES, 0, 1, 64, 300, 5000, 1u << 20, UINT64_MAX};
    f.max_bytes = budgets[u8(in) % 8];
    if (f.want_id > H.peer_want) H.peer_want = f.want_id;
    deliver_frame(&f);
    tr_frame_clear(&f);
}

static const uint8_t ALT_BODY[] = {0x91, 0x7f};

static void cmd_ops(in_t *in)
{
    uint8_t sel = u8(in), start = u8(in), count = u8(in), mut = u8(in), idx = u8(in);
    tr_frame_t f = {.type = TR_FRAME_OPS, .has_repo = true, .has_branch = true};
    if (H.has_sess_want && !(sel & 0x80)) {
        memcpy(f.repo, H.sw_repo, TR_REPO_ID_LEN);
        snprintf(f.branch, sizeof f.branch, "%s", H.sw_branch);
        f.want_id = H.sw_id;
    } else {
        memcpy(f.repo, pick_repo(sel), TR_REPO_ID_LEN);
        snprintf(f.branch, sizeof f.branch, "%s", pick_branch(sel >> 3));
        f.want_id = sel & 7;
    }
    /* The ops: a run of the universe's ops of that branch (the peer's and,
     * with mut&16, ours), in universe (causal) order. */
    tr_op_t ops[UMAX];
    const tr_op_t *pp[UMAX + 1];
    size_t n = 0;
    for (size_t i = 0; i < nuniv; i++) {
        const ent_t *e = &univ[i];
        if (!on_branch(e, f.repo, f.branch) || (!(mut & 16) && !(e->where & IN_Y && !(e->where & IN_X))))
            continue;
        ops[n++] = e->op;
    }
    size_t s0 = n ? start % n : 0, cnt = n ? count % (n - s0 + 1) : 0;
    memmove(ops, ops + s0, cnt * sizeof *ops);
    n = cnt;
    if (n && (mut & 1)) ops[idx % n].has_sig = false;
    if (n && (mut & 2)) ops[(idx >> 2) % n].body = ALT_BODY, ops[(idx >> 2) % n].body_len = sizeof ALT_BODY;
    if (n > 1 && (mut & 4)) {
        tr_op_t t = ops[0];
        ops[0] = ops[n - 1];
        ops[n - 1] = t;
    }
    if (n && n < UMAX && (mut & 8)) ops[n] = ops[n - 1], n++;
    for (size_t i = 0; i < n; i++) pp[i] = &ops[i];
    tr_buf_t payload = {0};
    if (tr_batch_encode(pp, n, &payload, &f.codec, NULL) == TR_OK) {
        if ((mut & 32) && payload.len) payload.data[idx % payload.len] ^= (uint8_t)(1u << (mut >> 6));
        f.final = (mut & 64) || (sel & 0x40);
        f.payload = payload.data;
        f.payload_len = payload.len;
        deliver_frame(&f);
    }
    tr_buf_free(&payload);
}

static void cmd_ack(in_t *in)
{
    uint8_t sel = u8(in), mode = u8(in), a = u8(in), c = u8(in);
    tr_frame_t f = {.type = TR_FRAME_ACK, .has_repo = true, .has_branch = true};
    track_t *t = H.nt ? &H.t[sel % H.nt] : NULL;
    if (t && mode < 0xc0) {
        memcpy(f.repo, t->repo, TR_REPO_ID_LEN);
        snprintf(f.branch, sizeof f.branch, "%s", t->branch);
        f.want_id = t->want_id;
    } else {
        memcpy(f.repo, pick_repo(sel), TR_REPO_ID_LEN);
        snprintf(f.branch, sizeof f.branch, "%s", pick_branch(sel >> 3));
        f.want_id = mode & 7;
    }
    f.integrated = a;
    f.count = c;
    pick_vv(in, &f.vv);
    deliver_frame(&f);
    tr_frame_clear(&f);
}

static void cmd_nack(in_t *in)
{
    static const char *const reasons[] = {"version", "malformed", "noncanonical", "toobig", "protocol",
                                          "unknown-repo", "diverged", "hash", "signature", "unsigned",
                                          "seq", "prev", "parent", "lamport", "equivocation",
                                          "repo", "kind", "body", "busy", "internal", "what"};
    uint8_t fl = u8(in), r = u8(in), h = u8(in);
    tr_frame_t f = {.type = TR_FRAME_NACK};
    if (fl & 1) {
        f.has_repo = true;
        memcpy(f.repo, (fl & 8) && H.has_sess_want ? H.sw_repo : pick_repo(fl >> 4), TR_REPO_ID_LEN);
    }
    if (fl & 2) {
        f.has_branch = true;
        snprintf(f.branch, sizeof f.branch, "%s", (fl & 8) && H.has_sess_want ? H.sw_branch : pick_branch(fl >> 4));
    }
    snprintf(f.reason, sizeof f.reason, "%s", reasons[r % (sizeof reasons / sizeof reasons[0])]);
    snprintf(f.text, sizeof f.text, "fuzz %u", r);
    if (fl & 4) f.has_hash = true, pick_hash(h, f.hash);
    deliver_frame(&f);
}

static void local_write(uint8_t v)
{
    ent_t *e = later[v % nlater];
    char branch[TR_BRANCH_MAX + 1];
    snprintf(branch, sizeof branch, "%.*s", (int)e->op.branch_len, e->op.branch);
    if (find_hash(&M, NULL, NULL, e->op.hash)) return;
    /* Only if it still fits the log (the peer may have sent seq 3 first). */
    if (tip(&M, e->op.repo, branch, e->op.author) + 1 != e->op.seq) return;
    for (size_t p = 0; p < e->op.nparents; p++)
        if (!find_hash(&M, e->op.repo, branch, e->op.parents[p])) return;
    mem_add(&M, e, false);
    tr_err_t err;
    if (tr_sync_changed(S, e->op.repo, branch, &err)) CHECK(err.msg[0]);
}

enum { C_RAW, C_HELLO, C_HAVE, C_WANT, C_OPS, C_ACK, C_NACK, C_TICK, C_CHANGED, C_SERVED,
       C_LOCAL, C_RESTART, C_DRAIN, C_POP, NCMD };

int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in_t in = {data, size};
    session_reset();
    tr_err_t err;
    for (int steps = 0; in.n && steps < 512; steps++) {
        uint8_t c = u8(&in);
        switch (c % NCMD) {
        case C_RAW: {
            size_t len = u16(&in);
            if (len > in.n) len = in.n;
            deliver(in.p, len);
            in.p += len, in.n -= len;
            break;
        }
        case C_HELLO: cmd_hello(&in); break;
        case C_HAVE: cmd_have(&in); break;
        case C_WANT: cmd_want(&in); break;
        case C_OPS: cmd_ops(&in); break;
        case C_ACK: cmd_ack(&in); break;
        case C_NACK: cmd_nack(&in); break;
        case C_TICK:
            if (tr_sync_tick(S, &err)) CHECK(err.msg[0]);
            break;
        case C_CHANGED: {
            uint8_t v = u8(&in);
            if (tr_sync_changed(S, pick_repo(v), v & 0x80 ? NULL : pick_branch(v >> 3), &err))
                CHECK(err.msg[0]);
            break;
        }
        case C_SERVED:
            M.serve_r2 = !M.serve_r2;
            if (tr_sync_served_changed(S, &err)) CHECK(err.msg[0]);
            break;
        case C_LOCAL: local_write(u8(&in)); break;
        case C_RESTART: session_reset(); break;
        case C_DRAIN: H.draining = !H.draining; break;
        case C_POP: pop(u8(&in) % 8); break;
        }
        if (H.draining) drain();
        (void)tr_sync_idle(S);
        (void)tr_sync_established(S);
        (void)tr_sync_peer_hello(S);
    }
    drain();
    tr_sync_destroy(&S);
    mem_reset(&M);
    return 0;
}

/* ---- seeds: two sessions talking, captured --------------------------------- */

static void write_file(const char *dir, const char *sub, const char *name, const void *p, size_t n)
{
    char path[4096];
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "fuzz_sync: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    fwrite(p, 1, n, f);
    fclose(f);
}

/* Runs X (local store) and Y (the peer's) against each other until quiet and
 * writes what each received. `tweak` varies the run: 1 = Y serves R2 too and
 * X starts serving it midway, 2 = small want budgets (several ops frames). */
static void capture(const char *dir, int tweak)
{
    mem_t mx, my;
    mem_init(&mx, IN_X);
    mem_init(&my, IN_Y);
    my.serve_r2 = tweak == 1;
    tr_sync_t *x = session_new(&mx, "x"), *y = session_new(&my, "y");
    tr_buf_t got[2] = {{0}, {0}}, b = {0};
    tr_err_t err;
    int frames = 0;
    for (int round = 0; round < 200; round++) {
        int moved = 0;
        tr_sync_t *from[2] = {x, y}, *to[2] = {y, x};
        for (int k = 0; k < 2; k++) {
            if (!tr_sync_pop(from[k], &b)) {
                CHECK(tr_sync_pump(from[k], &err) == TR_OK);
                if (!tr_sync_pop(from[k], &b)) continue;
            }
            moved = 1;
            tr_frame_t f;
            if (tweak == 2 && tr_frame_decode(b.data, b.len, &f, NULL) == TR_OK) {
                if (f.type == TR_FRAME_WANT) {
                    f.max_bytes = 150;
                    tr_buf_reset(&b);
                    CHECK(tr_frame_encode(&f, &b, NULL) == TR_OK);
                }
                tr_frame_clear(&f);
            }
            char name[64];
            snprintf(name, sizeof name, "capture%d-%03d", tweak, frames++);
            write_file(dir, "fuzz_frame", name, b.data, b.len);
            if (tr_frame_decode(b.data, b.len, &f, NULL) == TR_OK) {
                if (f.type == TR_FRAME_OPS) {
                    uint8_t c = (uint8_t)f.codec;
                    tr_buf_t p = {0};
                    CHECK(tr_buf_append(&p, &c, 1) == TR_OK);
                    CHECK(tr_buf_append(&p, f.payload, f.payload_len) == TR_OK);
                    write_file(dir, "fuzz_batch", name, p.data, p.len);
                    tr_buf_free(&p);
                }
                tr_frame_clear(&f);
            }
            uint8_t hdr[3] = {C_RAW, (uint8_t)(b.len & 0xff), (uint8_t)(b.len >> 8)};
            CHECK(b.len < 65536);
            CHECK(tr_buf_append(&got[1 - k], hdr, 3) == TR_OK);
            CHECK(tr_buf_append(&got[1 - k], b.data, b.len) == TR_OK);
            CHECK(tr_sync_recv(to[k], b.data, b.len, &err) == TR_OK);
        }
        if (tweak == 1 && round == 6) {
            mx.serve_r2 = true;
            CHECK(tr_sync_served_changed(x, &err) == TR_OK);
        }
        if (!moved) break;
    }
    if (getenv("FUZZ_SEEDS_VERBOSE"))
        fprintf(stderr, "capture %d: %d frames; x holds %zu ops (%zu before), y %zu (%zu before)\n",
                tweak, frames, mx.n, mx.base, my.n, my.base);
    char name[64];
    snprintf(name, sizeof name, "session%d-x", tweak);
    write_file(dir, "fuzz_sync", name, got[0].data, got[0].len);
    snprintf(name, sizeof name, "session%d-y", tweak);
    write_file(dir, "fuzz_sync", name, got[1].data, got[1].len);
    tr_buf_free(&got[0]);
    tr_buf_free(&got[1]);
    tr_buf_free(&b);
    tr_sync_destroy(&x);
    tr_sync_destroy(&y);
    mem_free(&mx);
    mem_free(&my);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    CHECK(tr_crypto_init() == TR_OK);
    universe();
    mem_init(&M, IN_X);
    const char *dir = getenv("FUZZ_WRITE_SEEDS");
    if (dir && *dir) {
        for (int tweak = 0; tweak < 3; tweak++) capture(dir, tweak);
        /* Structured seeds: hello, have, then answer the session's want. */
        static const uint8_t s1[] = {C_HELLO, 0x04, C_HAVE, 0, 1, 0, 10, 0, 2, 0, 3, 2, 5, C_OPS, 0, 0, 9, 0, 0};
        static const uint8_t s2[] = {C_HELLO, 0x0c, C_SERVED, C_WANT, 0, 0, 0, 0, 0, 0, C_ACK, 0, 0, 0, 0, 0,
                                     C_ACK, 0, 0, 0, 0, 0, C_TICK};
        static const uint8_t s3[] = {C_HELLO, 0x04, C_HAVE, 0, 1, 1, 5, 1, 40, 0, C_OPS, 0, 0, 9, 0x41, 0};
        write_file(dir, "fuzz_sync", "struct-1", s1, sizeof s1);
        write_file(dir, "fuzz_sync", "struct-2", s2, sizeof s2);
        write_file(dir, "fuzz_sync", "struct-3", s3, sizeof s3);
        exit(0);
    }
    return 0;
}
