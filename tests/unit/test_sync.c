/*
 * test_sync.c — the sync protocol end to end without sockets: real stores
 * (LMDB in a mkdtemp directory), the agent's own sync host, and tr_sync_t
 * sessions wired back to back by moving frames from tr_sync_pop of one end
 * into tr_sync_recv of the other.
 *
 * The host is agent/daemon/host.c itself, compiled here with
 * HOST_STORE_ONLY: that leaves out its agent binding (agent.h, czmq) and
 * this file supplies the four binding functions over test replicas. So the
 * have frames, cursors, prev lookups and integration under test are the
 * agent's, not a look-alike.
 *
 * A "link" is one connection: two ends (one session at each replica) and a
 * queue of frames in flight each way. A world can drop, duplicate and
 * reorder frames at random (seeded; the seed is printed on failure and
 * TR_SYNC_SEED replays one); a protocol violation then drops the link and
 * reconnects it, as the agent does.
 */
#define HOST_STORE_ONLY
#include "../../agent/daemon/host.c"

#include <ftw.h>
#include <sodium.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "tr_identity.h"
#include "tr_test.h"

/* ---- replicas, ends, links -------------------------------------------- */

static const uint8_t REPO[TR_REPO_ID_LEN] = {0x7e, 0x11, 0x15, 1, 2, 3, 4, 5,
                                             6, 7, 8, 9, 10, 11, 12, 13};

#define MAXR 4
#define MAXE 8

typedef struct end end_t;

typedef struct {
    char name[8];
    char dir[300];
    tr_store_t *st; /* NULL while down */
    end_t *ends[MAXE];
    size_t nends;
} replica_t;

/* Frames in flight from one end to its peer. */
typedef struct {
    tr_buf_t *f;
    size_t n, cap;
} fq_t;

struct end {
    replica_t *r;
    end_t *peer;
    tr_sync_t *s;
    fq_t q;
    /* host overrides */
    size_t max_ops; /* ops per frame this end sends at most (0: the session's) */
    bool evil;
    uint8_t forge_author[TR_KEY_LEN]; /* tamper (author, seq): new body, signed by `attacker` */
    uint64_t forge_seq;
    uint8_t corrupt_author[TR_KEY_LEN]; /* flip a bit of (author, seq)'s signature */
    uint64_t corrupt_seq;
    tr_identity_t *attacker;
    tr_op_t *evil_ops;
    const tr_op_t **evil_ptr;
    size_t evil_cap;
    tr_buf_t scratch;
    /* what this end sent */
    uint64_t frames, bytes, ops_frames, ops_sent;
    uint64_t ns_out, ns_in; /* time in this session: producing frames, taking them */
    /* what this end's session reported */
    uint64_t ev[8];
    uint64_t refused_code[64];
    uint64_t violations;
    char last_err[512];
};

typedef struct {
    replica_t r[MAXR];
    size_t nr;
    end_t *ends[2 * MAXE];
    size_t nends;
    bool count_ops; /* parse every ops frame to count its entries */
    /* perturbation of frames in flight (hellos excepted) */
    bool perturb;
    double p_drop, p_dup, p_swap;
    uint64_t rng;
    bool reconnect; /* on a violation: reconnect the link (else it is a failure) */
    uint64_t want_max_bytes; /* if set, every want in flight is rewritten to ask this little */
    uint64_t reconnects, dropped, duplicated, swapped;
} world_t;

static void test_policy(void *arg, const char *branch, size_t len, tr_branch_policy_t *out)
{
    (void)arg;
    out->linear = len >= 4 && memcmp(branch, "lin/", 4) == 0;
    out->require_signing = true;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int replica_open(replica_t *r)
{
    char path[400];
    snprintf(path, sizeof path, "%s/store", r->dir);
    tr_err_t err;
    int rc = tr_store_open(path, 0, &r->st, &err);
    if (rc == TR_ENOTREPO) rc = tr_store_create(path, REPO, &r->st, &err);
    if (rc) {
        printf("# cannot open %s: %s\n", path, err.msg);
        return rc;
    }
    tr_store_set_policy(r->st, test_policy, NULL);
    return TR_OK;
}

static replica_t *replica_new(world_t *w, const char *name)
{
    replica_t *r = &w->r[w->nr++];
    memset(r, 0, sizeof *r);
    snprintf(r->name, sizeof r->name, "%s", name);
    const char *base = getenv("TMPDIR");
    snprintf(r->dir, sizeof r->dir, "%s/trellis-sync-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(r->dir) || replica_open(r)) return NULL;
    return r;
}

/* Closes and reopens a replica's store (an agent restart). */
static int replica_restart(replica_t *r)
{
    tr_store_destroy(&r->st);
    return replica_open(r);
}

/* ---- the host binding over test replicas ------------------------------- */

static tr_store_t *host_store(void *host, const uint8_t repo[TR_REPO_ID_LEN])
{
    end_t *e = host;
    return e->r->st && memcmp(repo, REPO, TR_REPO_ID_LEN) == 0 ? e->r->st : NULL;
}

static bool host_serves(void *host, const uint8_t repo[TR_REPO_ID_LEN])
{
    return host_store(host, repo) != NULL;
}

static int host_repos(void *host, uint8_t (**ids)[TR_REPO_ID_LEN], size_t *n)
{
    (void)host;
    *ids = malloc(TR_REPO_ID_LEN);
    if (!*ids) return TR_ENOMEM;
    memcpy((*ids)[0], REPO, TR_REPO_ID_LEN);
    *n = 1;
    return TR_OK;
}

/* Counts events; like the agent, tells the replica's other sessions about
 * ops it integrated (so a line of replicas relays). */
static void host_event(void *host, const tr_sync_event_t *ev)
{
    end_t *e = host;
    e->ev[ev->type]++;
    if (getenv("TR_SYNC_DEBUG") &&
        (ev->type == TR_SYNC_EV_REFUSED || ev->type == TR_SYNC_EV_NACKED))
        printf("# %s: %s %s: %s\n", e->r->name,
               ev->type == TR_SYNC_EV_REFUSED ? "refused" : "nacked", ev->branch ? ev->branch : "-",
               ev->text ? ev->text : "");
    if (ev->type == TR_SYNC_EV_REFUSED && ev->code < 0 && -ev->code < 64)
        e->refused_code[-ev->code]++;
    if (ev->type != TR_SYNC_EV_RECEIVED) return;
    for (size_t i = 0; i < e->r->nends; i++) {
        end_t *o = e->r->ends[i];
        if (o != e && o->s) (void)tr_sync_changed(o->s, ev->repo, ev->branch, NULL);
    }
}

/* cursor_next with this end's cap on ops per frame. */
static int capped_next(void *host, tr_sync_cursor_t *c, size_t max_ops, size_t max_bytes,
                       const tr_op_t *const **ops, size_t *n, bool *done, tr_err_t *err)
{
    end_t *e = host;
    if (e->max_ops && e->max_ops < max_ops) max_ops = e->max_ops;
    return hs_cursor_next(host, c, max_ops, max_bytes, ops, n, done, err);
}

static const uint8_t EVIL_BODY[] = {0xa6, 'f', 'o', 'r', 'g', 'e', 'd'};

/* A malicious responder: the ops it streams are the store's, except that
 * (forge_author, forge_seq) gets another body and a signature by another
 * key, and (corrupt_author, corrupt_seq) a flipped signature bit. */
static int evil_next(void *host, tr_sync_cursor_t *c, size_t max_ops, size_t max_bytes,
                     const tr_op_t *const **ops, size_t *n, bool *done, tr_err_t *err)
{
    end_t *e = host;
    int rc = capped_next(host, c, max_ops, max_bytes, ops, n, done, err);
    if (rc || !*n) return rc;
    if (*n > e->evil_cap) {
        e->evil_cap = *n;
        e->evil_ops = realloc(e->evil_ops, *n * sizeof *e->evil_ops);
        e->evil_ptr = realloc(e->evil_ptr, *n * sizeof *e->evil_ptr);
        if (!e->evil_ops || !e->evil_ptr) return TR_ENOMEM;
    }
    for (size_t i = 0; i < *n; i++) {
        tr_op_t *op = &e->evil_ops[i];
        *op = *(*ops)[i];
        if (op->seq == e->forge_seq && memcmp(op->author, e->forge_author, TR_KEY_LEN) == 0) {
            op->body = EVIL_BODY;
            op->body_len = sizeof EVIL_BODY;
            tr_buf_reset(&e->scratch);
            if (tr_op_encode(op, NULL, &e->scratch, NULL)) return TR_EINVAL; /* sets op->hash */
            uint8_t msg[TR_OP_SIGMSG_LEN];
            tr_op_sigmsg(op->hash, msg);
            tr_identity_sign(e->attacker, msg, sizeof msg, op->sig);
            op->has_sig = true;
        }
        if (op->seq == e->corrupt_seq && op->has_sig &&
            memcmp(op->author, e->corrupt_author, TR_KEY_LEN) == 0)
            op->sig[17] ^= 0x20;
        e->evil_ptr[i] = op;
    }
    *ops = e->evil_ptr;
    return TR_OK;
}

static int end_start(end_t *e)
{
    tr_sync_host_t h;
    hs_fill(&h, e);
    if (e->evil)
        h.cursor_next = evil_next;
    else
        h.cursor_next = capped_next;
    e->s = tr_sync_new(&h, e->r->name);
    tr_err_t err;
    return e->s && tr_sync_start(e->s, &err) == TR_OK ? TR_OK : TR_EINVAL;
}

static void fq_clear(fq_t *q)
{
    for (size_t i = 0; i < q->cap; i++) tr_buf_free(&q->f[i]);
    free(q->f);
    memset(q, 0, sizeof *q);
}

static void end_stop(end_t *e)
{
    tr_sync_destroy(&e->s);
    fq_clear(&e->q);
}

static void end_free(end_t *e)
{
    end_stop(e);
    tr_identity_destroy(&e->attacker);
    free(e->evil_ops);
    free(e->evil_ptr);
    tr_buf_free(&e->scratch);
    free(e);
}

/* Connects two replicas: a session at each end. Returns a's end. */
static end_t *link_new(world_t *w, replica_t *a, replica_t *b)
{
    end_t *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
    if (!x || !y) return NULL;
    x->r = a, y->r = b, x->peer = y, y->peer = x;
    a->ends[a->nends++] = x;
    b->ends[b->nends++] = y;
    w->ends[w->nends++] = x;
    w->ends[w->nends++] = y;
    return x;
}

static int link_start(end_t *x)
{
    return end_start(x) || end_start(x->peer) ? TR_EINVAL : TR_OK;
}

/* Closes the connection (both sessions, frames in flight are lost). */
static void link_stop(end_t *x)
{
    end_stop(x);
    end_stop(x->peer);
}

static void world_free(world_t *w)
{
    for (size_t i = 0; i < w->nends; i++) end_free(w->ends[i]);
    for (size_t i = 0; i < w->nr; i++) {
        tr_store_destroy(&w->r[i].st);
        nftw(w->r[i].dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    memset(w, 0, sizeof *w);
}

/* ---- moving frames ------------------------------------------------------ */

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static uint64_t rng_next(world_t *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    return w->rng;
}

static double rng_unit(world_t *w)
{
    return (double)(rng_next(w) >> 11) / (double)(1ull << 53);
}

/* The number of entries of an ops frame's batch, or -1. */
static long ops_entries(const tr_buf_t *b)
{
    tr_frame_t f;
    if (tr_frame_decode(b->data, b->len, &f, NULL) != TR_OK) return -1;
    long n = -1;
    if (f.type == TR_FRAME_OPS) {
        const uint8_t *p = f.payload;
        size_t len = f.payload_len;
        void *plain = NULL;
        if (f.codec == TR_CODEC_ZSTD) {
            unsigned long long sz = ZSTD_getFrameContentSize(p, len);
            plain = malloc(sz ? sz : 1);
            if (plain && !ZSTD_isError(ZSTD_decompress(plain, sz, p, len))) p = plain, len = sz;
        }
        tr_rd_t r;
        uint32_t k, cnt;
        const uint8_t *v;
        size_t vl;
        tr_rd_init(&r, p, len);
        tr_rd_array(&r, &k);
        for (int part = 0; part < 2; part++) {
            tr_rd_array(&r, &cnt);
            for (uint32_t i = 0; i < cnt; i++) tr_rd_value(&r, &v, &vl);
        }
        if (tr_rd_array(&r, &cnt) == TR_OK) n = cnt;
        free(plain);
    }
    tr_frame_clear(&f);
    return n;
}

static int fq_push(fq_t *q, tr_buf_t *b)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 16;
        tr_buf_t *nf = realloc(q->f, cap * sizeof *nf);
        if (!nf) return TR_ENOMEM;
        memset(nf + q->cap, 0, (cap - q->cap) * sizeof *nf);
        q->f = nf;
        q->cap = cap;
    }
    /* swap: the queue slot keeps the caller's spare buffer */
    tr_buf_t t = q->f[q->n];
    q->f[q->n++] = *b;
    *b = t;
    return TR_OK;
}

/* Moves what an end's session queued into its link's queue. */
static size_t drain(world_t *w, end_t *e)
{
    size_t moved = 0;
    tr_buf_t b = {0};
    tr_err_t err;
    while (e->s) {
        uint64_t t0 = now_ns();
        bool got = tr_sync_pop(e->s, &b);
        if (!got) {
            if (tr_sync_pump(e->s, &err)) printf("# %s: pump: %s\n", e->r->name, err.msg);
            got = tr_sync_pop(e->s, &b);
        }
        e->ns_out += now_ns() - t0;
        if (!got) break;
        e->frames++;
        e->bytes += b.len;
        if (b.len > 2 && b.data[2] == TR_FRAME_OPS) {
            e->ops_frames++;
            if (w->count_ops) e->ops_sent += (uint64_t)ops_entries(&b);
        }
        if (fq_push(&e->q, &b)) break;
        moved++;
    }
    tr_buf_free(&b);
    return moved;
}

static void reconnect(world_t *w, end_t *e)
{
    w->reconnects++;
    link_stop(e);
    link_start(e);
}

/* Delivers one frame; on a violation the link reconnects (if allowed).
 * Returns false when the link was reset. */
static bool deliver_one(world_t *w, end_t *from, const tr_buf_t *b)
{
    end_t *to = from->peer;
    if (!to->s) return false;
    tr_frame_t f;
    static tr_buf_t rewritten;
    if (w->want_max_bytes && b->len > 2 && b->data[2] == TR_FRAME_WANT &&
        tr_frame_decode(b->data, b->len, &f, NULL) == TR_OK) {
        f.max_bytes = w->want_max_bytes;
        tr_buf_reset(&rewritten);
        if (tr_frame_encode(&f, &rewritten, NULL) == TR_OK) b = &rewritten;
        tr_frame_clear(&f);
    }
    tr_err_t err;
    uint64_t t0 = now_ns();
    int rc = tr_sync_recv(to->s, b->data, b->len, &err);
    to->ns_in += now_ns() - t0;
    if (rc == TR_OK) return true;
    to->violations++;
    snprintf(to->last_err, sizeof to->last_err, "%s", err.msg);
    if (w->reconnect) reconnect(w, from);
    return false;
}

/* Delivers the frames in flight from `from`, perturbed if the world says so. */
static size_t deliver(world_t *w, end_t *from)
{
    fq_t q = from->q; /* take the batch: delivery may queue more, or reset the link */
    memset(&from->q, 0, sizeof from->q);
    size_t done = 0;
    for (size_t i = 0; i < q.n; i++) {
        tr_buf_t *b = &q.f[i];
        bool hello = b->len > 2 && b->data[2] == TR_FRAME_HELLO;
        if (w->perturb && !hello) {
            double u = rng_unit(w);
            if (u < w->p_drop) {
                w->dropped++;
                continue;
            }
            if (u < w->p_drop + w->p_swap && i + 1 < q.n &&
                !(q.f[i + 1].len > 2 && q.f[i + 1].data[2] == TR_FRAME_HELLO)) {
                tr_buf_t t = q.f[i];
                q.f[i] = q.f[i + 1];
                q.f[i + 1] = t;
                w->swapped++;
            } else if (u < w->p_drop + w->p_swap + w->p_dup) {
                w->duplicated++;
                if (!deliver_one(w, from, b)) break;
            }
        }
        done++;
        if (!deliver_one(w, from, b)) break;
    }
    fq_clear(&q);
    return done;
}

/* Moves frames until nothing moves. False if that did not happen within
 * `rounds` rounds or a violation occurred on a world that does not
 * reconnect. */
static bool run(world_t *w, size_t rounds)
{
    for (size_t k = 0; k < rounds; k++) {
        size_t moved = 0;
        for (size_t i = 0; i < w->nends; i++) moved += drain(w, w->ends[i]);
        for (size_t i = 0; i < w->nends; i++) moved += deliver(w, w->ends[i]);
        for (size_t i = 0; !w->reconnect && i < w->nends; i++)
            if (w->ends[i]->violations) {
                printf("# %s: violation: %s\n", w->ends[i]->r->name, w->ends[i]->last_err);
                return false;
            }
        if (!moved) return true;
    }
    printf("# still moving after %zu rounds\n", rounds);
    return false;
}

static void tick_all(world_t *w)
{
    tr_err_t err;
    for (size_t i = 0; i < w->nends; i++)
        if (w->ends[i]->s && tr_sync_tick(w->ends[i]->s, &err))
            printf("# tick: %s\n", err.msg);
}

/* ---- what a replica holds ---------------------------------------------- */

typedef struct {
    crypto_generichash_state st;
    tr_store_t *s;
    uint64_t branches;
} digest_ctx_t;

static int digest_vv(void *arg, const uint8_t author[TR_KEY_LEN], uint64_t seq,
                     const uint8_t hash[TR_HASH_LEN])
{
    digest_ctx_t *c = arg;
    crypto_generichash_update(&c->st, author, TR_KEY_LEN);
    crypto_generichash_update(&c->st, (const uint8_t *)&seq, sizeof seq);
    crypto_generichash_update(&c->st, hash, TR_HASH_LEN);
    return 0;
}

static int digest_branch(void *arg, const char *name, const tr_branch_info_t *info)
{
    digest_ctx_t *c = arg;
    c->branches++;
    crypto_generichash_update(&c->st, (const uint8_t *)name, strlen(name) + 1);
    crypto_generichash_update(&c->st, (const uint8_t *)&info->count, sizeof info->count);
    crypto_generichash_update(&c->st, (const uint8_t *)&info->nheads, sizeof info->nheads);
    size_t nh = info->nheads < TR_BRANCH_HEADS_MAX ? info->nheads : TR_BRANCH_HEADS_MAX;
    crypto_generichash_update(&c->st, info->heads[0], nh * TR_HASH_LEN);
    return tr_store_vv(c->s, name, digest_vv, c, NULL);
}

/* A digest of every branch's count, heads and version vector. */
static void digest(tr_store_t *s, uint8_t out[32])
{
    digest_ctx_t c = {.s = s};
    crypto_generichash_init(&c.st, NULL, 0, 32);
    if (tr_store_branches(s, digest_branch, &c, NULL)) memset(out, 0xee, 32);
    crypto_generichash_final(&c.st, out, 32);
}

static bool converged(world_t *w)
{
    uint8_t d0[32], d[32];
    digest(w->r[0].st, d0);
    for (size_t i = 1; i < w->nr; i++) {
        digest(w->r[i].st, d);
        if (memcmp(d0, d, 32) != 0) return false;
    }
    return true;
}

/* Runs, then ticks (anti-entropy) until every replica holds the same. */
static bool settle(world_t *w, int max_ticks)
{
    for (int t = 0; t <= max_ticks; t++) {
        if (!run(w, 100000)) return false;
        if (converged(w)) return true;
        tick_all(w);
    }
    return false;
}

static void verify_report(void *arg, const char *branch, uint64_t pos, const uint8_t hash[32],
                          int code, const char *reason)
{
    (void)arg, (void)hash, (void)code;
    printf("# verify: %s@%llu: %s\n", branch, (unsigned long long)pos, reason);
}

/* tr_store_verify finds nothing wrong. */
static bool clean(tr_store_t *s)
{
    tr_verify_stats_t st;
    tr_err_t err;
    if (tr_store_verify(s, 1, verify_report, NULL, &st, &err) != TR_OK) {
        printf("# verify failed: %s\n", err.msg);
        return false;
    }
    return st.bad == 0;
}

static uint64_t count(tr_store_t *s, const char *branch)
{
    tr_branch_info_t info;
    return tr_store_branch(s, branch, &info, NULL) == TR_OK ? info.count : 0;
}

static void head(tr_store_t *s, const char *branch, uint8_t out[32])
{
    tr_branch_info_t info;
    memset(out, 0, 32);
    if (tr_store_branch(s, branch, &info, NULL) == TR_OK && info.nheads)
        memcpy(out, info.heads[0], 32);
}

/* ---- writing ------------------------------------------------------------ */

static tr_identity_t *ident(uint8_t n)
{
    uint8_t seed[32];
    memset(seed, n, sizeof seed);
    tr_identity_t *id = NULL;
    return tr_identity_from_seed(seed, &id) == TR_OK ? id : NULL;
}

/* Writes n small field ops ({"field": "status", "value": <8 hex digits>}
 * on task:<6 hex digits>, pseudo-random so that compression is not
 * flattered) in tr_store_write calls of `batch` ops, as `op import` does. */
static int write_ops(tr_store_t *st, const char *branch, tr_identity_t *id, size_t n, size_t batch,
                     unsigned tag)
{
    enum { BMAX = 1000 };
    static uint8_t bodies[BMAX][40];
    static char targets[BMAX][24];
    static tr_op_spec_t specs[BMAX];
    if (batch > BMAX) batch = BMAX;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < batch ? n - done : batch;
        for (size_t i = 0; i < k; i++) {
            uint64_t v = (tag + done + i + 1) * 0x9e3779b97f4a7c15ull;
            v ^= v >> 29;
            char val[16];
            int vl = snprintf(val, sizeof val, "%08x", (unsigned)(v >> 32));
            uint8_t *b = bodies[i];
            size_t at = 0;
            b[at++] = 0x82;
            b[at++] = 0xa5, memcpy(b + at, "field", 5), at += 5;
            b[at++] = 0xa6, memcpy(b + at, "status", 6), at += 6;
            b[at++] = 0xa5, memcpy(b + at, "value", 5), at += 5;
            b[at++] = (uint8_t)(0xa0 | vl), memcpy(b + at, val, (size_t)vl), at += (size_t)vl;
            int tl = snprintf(targets[i], sizeof targets[i], "task:%06x", (unsigned)(v & 0xffffff));
            specs[i] = (tr_op_spec_t){"field.set", 9, targets[i], (size_t)tl, b, at};
        }
        tr_err_t err;
        int rc = tr_store_write(st, branch, specs, k, id, 1763800000000ull + done, NULL, &err);
        if (rc) {
            printf("# write: %s\n", err.msg);
            return rc;
        }
        done += k;
    }
    return TR_OK;
}

/* ---- cases -------------------------------------------------------------- */

/* Two replicas, concurrent writes by several authors on a CRDT branch. */
TR_TEST(two_replicas_converge)
{
    world_t w = {0};
    tr_identity_t *x = ident(1), *y = ident(2), *z = ident(3);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B");
    TR_CHECK(a && b && x && y && z);
    TR_CHECK(write_ops(a->st, "notes", x, 300, 100, 0) == TR_OK);
    TR_CHECK(write_ops(a->st, "notes", z, 40, 1, 1000) == TR_OK);
    TR_CHECK(write_ops(b->st, "notes", y, 250, 64, 2000) == TR_OK);
    TR_CHECK(write_ops(b->st, "tasks", y, 20, 7, 3000) == TR_OK);
    end_t *l = link_new(&w, a, b);
    TR_CHECK(l && link_start(l) == TR_OK);
    TR_CHECK(settle(&w, 0));
    TR_CHECK_INT(count(a->st, "notes"), ==, 590);
    TR_CHECK_INT(count(b->st, "notes"), ==, 590);
    TR_CHECK_INT(count(a->st, "tasks"), ==, 20);
    TR_CHECK(clean(a->st) && clean(b->st));
    TR_CHECK(tr_sync_idle(l->s) && tr_sync_idle(l->peer->s));
    TR_CHECK_INT(l->ev[TR_SYNC_EV_REFUSED] + l->peer->ev[TR_SYNC_EV_REFUSED], ==, 0);
    /* Later writes on both sides are pushed (tr_sync_changed) and pulled. */
    TR_CHECK(write_ops(a->st, "notes", x, 5, 5, 4000) == TR_OK);
    TR_CHECK(write_ops(b->st, "notes", y, 3, 1, 5000) == TR_OK);
    tr_sync_changed(l->s, REPO, "notes", NULL);
    tr_sync_changed(l->peer->s, REPO, "notes", NULL);
    TR_CHECK(settle(&w, 0));
    TR_CHECK_INT(count(b->st, "notes"), ==, 598);
    TR_CHECK(clean(a->st) && clean(b->st));
    world_free(&w);
    tr_identity_destroy(&x);
    tr_identity_destroy(&y);
    tr_identity_destroy(&z);
}

/* Three replicas, concurrent writes: in a line (B relays) and a triangle. */
static void three(bool triangle)
{
    world_t w = {0};
    tr_identity_t *x = ident(11), *y = ident(12), *z = ident(13);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B"), *c = replica_new(&w, "C");
    TR_CHECK(a && b && c && x && y && z);
    TR_CHECK(write_ops(a->st, "notes", x, 200, 50, 0) == TR_OK);
    TR_CHECK(write_ops(b->st, "notes", y, 100, 1000, 1000) == TR_OK);
    TR_CHECK(write_ops(c->st, "notes", z, 150, 30, 2000) == TR_OK);
    TR_CHECK(write_ops(c->st, "other", z, 10, 3, 3000) == TR_OK);
    end_t *ab = link_new(&w, a, b), *bc = link_new(&w, b, c),
          *ca = triangle ? link_new(&w, c, a) : NULL;
    TR_CHECK(link_start(ab) == TR_OK && link_start(bc) == TR_OK);
    if (ca) TR_CHECK(link_start(ca) == TR_OK);
    TR_CHECK(settle(&w, 2));
    TR_CHECK_INT(count(a->st, "notes"), ==, 450);
    TR_CHECK_INT(count(a->st, "other"), ==, 10);
    for (size_t i = 0; i < 3; i++) TR_CHECK(clean(w.r[i].st));
    for (size_t i = 0; i < w.nends; i++) TR_CHECK_INT(w.ends[i]->ev[TR_SYNC_EV_REFUSED], ==, 0);
    world_free(&w);
    tr_identity_destroy(&x);
    tr_identity_destroy(&y);
    tr_identity_destroy(&z);
}

TR_TEST(three_replicas_line)
{
    three(false);
}

TR_TEST(three_replicas_triangle)
{
    three(true);
}

/* Small frames cut every author's run between signatures, with authors
 * whose signatures never fall at the same place: the requester must hold
 * the uncovered ops and integrate each as soon as its cover arrives. With
 * the old "covered prefix" rule this stream could never finish (a prefix
 * where every author's last op is signed does not exist until the end). */
TR_TEST(held_uncovered_ops)
{
    world_t w = {0};
    tr_identity_t *x = ident(21), *y = ident(22), *v = ident(23);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B");
    TR_CHECK(a && b && x && y && v);
    /* B: V's 500 ops first, so Y's lamports run 500 above its seqs. */
    TR_CHECK(write_ops(b->st, "notes", v, 500, 500, 0) == TR_OK);
    TR_CHECK(write_ops(b->st, "notes", y, 5000, 1000, 1000) == TR_OK);
    TR_CHECK(write_ops(a->st, "notes", x, 5000, 1000, 9000) == TR_OK);
    end_t *ab = link_new(&w, a, b);
    TR_CHECK(link_start(ab) == TR_OK);
    TR_CHECK(settle(&w, 0));
    /* C pulls the interleaved history from A in frames of 97 ops. */
    replica_t *c = replica_new(&w, "C");
    TR_CHECK(c);
    end_t *ca = link_new(&w, c, a);
    ca->peer->max_ops = 97;
    TR_CHECK(link_start(ca) == TR_OK);
    TR_CHECK(settle(&w, 0));
    TR_CHECK_INT(count(c->st, "notes"), ==, 10500);
    TR_CHECK(clean(c->st));
    TR_CHECK_INT(ca->ev[TR_SYNC_EV_REFUSED], ==, 0);
    TR_CHECK_INT(ca->peer->ev[TR_SYNC_EV_NACKED], ==, 0);
    /* And through frames of 7 ops with runs of 100 between signatures. */
    replica_t *d = replica_new(&w, "D");
    TR_CHECK(d);
    TR_CHECK(write_ops(a->st, "small", x, 250, 100, 0) == TR_OK);
    TR_CHECK(write_ops(b->st, "small", y, 180, 60, 0) == TR_OK);
    tr_sync_changed(ab->s, REPO, "small", NULL);
    tr_sync_changed(ab->peer->s, REPO, "small", NULL);
    end_t *da = link_new(&w, d, a);
    da->peer->max_ops = 7;
    TR_CHECK(link_start(da) == TR_OK);
    TR_CHECK(settle(&w, 2));
    TR_CHECK_INT(count(d->st, "small"), ==, 430);
    TR_CHECK(clean(d->st));
    TR_CHECK_INT(da->ev[TR_SYNC_EV_REFUSED], ==, 0);
    world_free(&w);
    tr_identity_destroy(&x);
    tr_identity_destroy(&y);
    tr_identity_destroy(&v);
}

/* A linear branch that diverged is refused on both sides and reported;
 * a fast-forward still works, and a CRDT branch still syncs. */
TR_TEST(linear_diverged)
{
    world_t w = {0};
    tr_identity_t *x = ident(31), *y = ident(32);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B");
    TR_CHECK(a && b && x && y);
    TR_CHECK(write_ops(a->st, "lin/main", x, 3, 1, 0) == TR_OK);
    end_t *l = link_new(&w, a, b);
    TR_CHECK(link_start(l) == TR_OK);
    TR_CHECK(settle(&w, 0));
    TR_CHECK_INT(count(b->st, "lin/main"), ==, 3);
    /* fast-forward: B extends A's history, A pulls it */
    TR_CHECK(write_ops(b->st, "lin/main", y, 2, 2, 10) == TR_OK);
    tr_sync_changed(l->peer->s, REPO, "lin/main", NULL);
    TR_CHECK(settle(&w, 0));
    TR_CHECK_INT(count(a->st, "lin/main"), ==, 5);
    link_stop(l);

    /* Apart, both extend lin/main (divergence) and write notes. */
    TR_CHECK(write_ops(a->st, "lin/main", x, 2, 1, 20) == TR_OK);
    TR_CHECK(write_ops(b->st, "lin/main", y, 3, 3, 30) == TR_OK);
    TR_CHECK(write_ops(a->st, "notes", x, 30, 10, 40) == TR_OK);
    TR_CHECK(write_ops(b->st, "notes", y, 20, 20, 50) == TR_OK);
    uint8_t ha[32], hb[32], ha2[32], hb2[32];
    head(a->st, "lin/main", ha);
    head(b->st, "lin/main", hb);
    TR_CHECK(link_start(l) == TR_OK);
    TR_CHECK(run(&w, 100000));
    tick_all(&w);
    TR_CHECK(run(&w, 100000));
    TR_CHECK_INT(count(a->st, "notes"), ==, 50);
    TR_CHECK_INT(count(b->st, "notes"), ==, 50);
    TR_CHECK_INT(count(a->st, "lin/main"), ==, 7);
    TR_CHECK_INT(count(b->st, "lin/main"), ==, 8);
    head(a->st, "lin/main", ha2);
    head(b->st, "lin/main", hb2);
    TR_CHECK_MEM(ha, ha2, 32);
    TR_CHECK_MEM(hb, hb2, 32);
    TR_CHECK(l->ev[TR_SYNC_EV_DIVERGED] >= 1);
    TR_CHECK(l->peer->ev[TR_SYNC_EV_DIVERGED] >= 1);
    TR_CHECK_INT(l->violations + l->peer->violations, ==, 0);
    TR_CHECK(clean(a->st) && clean(b->st));
    world_free(&w);
    tr_identity_destroy(&x);
    tr_identity_destroy(&y);
}

/* A replica restarts (sessions and store handle closed and reopened): it
 * resumes from its version vector and only the new ops travel. */
TR_TEST(restart_resumes)
{
    world_t w = {0};
    w.count_ops = true;
    tr_identity_t *x = ident(41), *y = ident(42);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B");
    TR_CHECK(a && b && x && y);
    TR_CHECK(write_ops(a->st, "notes", x, 500, 100, 0) == TR_OK);
    TR_CHECK(write_ops(a->st, "lin/log", x, 40, 10, 0) == TR_OK);
    TR_CHECK(write_ops(b->st, "notes", y, 60, 60, 0) == TR_OK);
    end_t *l = link_new(&w, a, b);
    TR_CHECK(link_start(l) == TR_OK);
    TR_CHECK(settle(&w, 0));
    TR_CHECK_INT(l->ops_sent, ==, 540);
    TR_CHECK_INT(l->peer->ops_sent, ==, 60);

    /* B goes down; A writes more meanwhile. */
    link_stop(l);
    TR_CHECK(replica_restart(b) == TR_OK);
    TR_CHECK(write_ops(a->st, "notes", x, 25, 25, 600) == TR_OK);
    TR_CHECK(write_ops(a->st, "lin/log", x, 3, 1, 700) == TR_OK);
    uint64_t before_a = l->ops_sent, before_b = l->peer->ops_sent;
    uint64_t frames_before = l->ops_frames;
    TR_CHECK(link_start(l) == TR_OK);
    TR_CHECK(settle(&w, 0));
    TR_CHECK_INT(l->ops_sent - before_a, ==, 28);
    TR_CHECK_INT(l->peer->ops_sent - before_b, ==, 0);
    TR_CHECK(l->ops_frames - frames_before <= 2);
    TR_CHECK_INT(count(b->st, "notes"), ==, 585);
    TR_CHECK_INT(count(b->st, "lin/log"), ==, 43);
    TR_CHECK(clean(b->st));
    world_free(&w);
    tr_identity_destroy(&x);
    tr_identity_destroy(&y);
}

/* A malicious responder streams a forged op (new body, signed by another
 * key) and an op with a corrupted signature: both are refused, ops that do
 * not depend on them are integrated, and an honest peer later completes
 * the history. */
TR_TEST(forged_ops_refused)
{
    world_t w = {0};
    tr_identity_t *x = ident(51), *y = ident(52), *z = ident(53);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B");
    TR_CHECK(a && b && x && y && z);
    TR_CHECK(write_ops(a->st, "main", y, 20, 20, 0) == TR_OK);
    TR_CHECK(write_ops(a->st, "main", x, 10, 1, 100) == TR_OK); /* each op signed */
    TR_CHECK(write_ops(a->st, "other", z, 30, 10, 200) == TR_OK); /* signed at 10, 20, 30 */
    end_t *l = link_new(&w, a, b);
    l->evil = true;
    l->attacker = ident(66);
    memcpy(l->forge_author, tr_identity_public(x), TR_KEY_LEN);
    l->forge_seq = 6;
    memcpy(l->corrupt_author, tr_identity_public(z), TR_KEY_LEN);
    l->corrupt_seq = 20;
    TR_CHECK(l->attacker && link_start(l) == TR_OK);
    TR_CHECK(run(&w, 100000));
    tick_all(&w);
    TR_CHECK(run(&w, 100000));
    TR_CHECK_INT(count(b->st, "main"), ==, 25);  /* Y's 20, X's 1..5 */
    TR_CHECK_INT(count(b->st, "other"), ==, 10); /* Z's 1..10 */
    TR_CHECK(l->peer->refused_code[-TR_ESIG] >= 2);
    TR_CHECK(l->peer->ev[TR_SYNC_EV_REFUSED] >= 2);
    TR_CHECK(l->ev[TR_SYNC_EV_NACKED] >= 2); /* the forger hears about it */
    TR_CHECK_INT(l->violations + l->peer->violations, ==, 0);
    TR_CHECK(clean(b->st));
    /* An honest session brings the rest. */
    link_stop(l);
    l->evil = false;
    TR_CHECK(link_start(l) == TR_OK);
    TR_CHECK(settle(&w, 0));
    TR_CHECK_INT(count(b->st, "main"), ==, 30);
    TR_CHECK_INT(count(b->st, "other"), ==, 30);
    TR_CHECK(clean(b->st));
    world_free(&w);
    tr_identity_destroy(&x);
    tr_identity_destroy(&y);
    tr_identity_destroy(&z);
}

/* Frames dropped, duplicated and reordered at random. A duplicate or a
 * reorder may break the protocol (the peer is dropped and reconnects, as
 * the agent does); lost frames are recovered by anti-entropy ticks. */
static void chaos(uint64_t seed, double drop, double dup, double swap, bool expect_clean)
{
    world_t w = {0};
    w.perturb = true;
    w.p_drop = drop, w.p_dup = dup, w.p_swap = swap;
    w.rng = seed * 0x9e3779b97f4a7c15ull + 1;
    w.reconnect = true;
    char fail[200] = "";
    uint64_t violations = 0;
    tr_identity_t *x = ident(71), *y = ident(72), *z = ident(73);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B"), *c = replica_new(&w, "C");
    if (!(a && b && c && x && y && z)) {
        snprintf(fail, sizeof fail, "setup");
        goto done;
    }
    if (write_ops(a->st, "notes", x, 900, 100, 0) || write_ops(b->st, "notes", y, 700, 1000, 0) ||
        write_ops(c->st, "notes", z, 300, 7, 0) || write_ops(a->st, "lin/log", x, 50, 5, 0) ||
        write_ops(c->st, "other", z, 40, 40, 0)) {
        snprintf(fail, sizeof fail, "writes");
        goto done;
    }
    end_t *ab = link_new(&w, a, b), *bc = link_new(&w, b, c), *ca = link_new(&w, c, a);
    ab->max_ops = ab->peer->max_ops = 50; /* many frames, so many chances to lose one */
    bc->max_ops = 64;
    ca->peer->max_ops = 33;
    link_start(ab), link_start(bc), link_start(ca);
    if (!settle(&w, 60)) {
        snprintf(fail, sizeof fail, "no convergence after 60 ticks");
        goto done;
    }
    for (size_t i = 0; i < w.nends; i++) violations += w.ends[i]->violations;
    if (expect_clean && violations)
        snprintf(fail, sizeof fail, "%llu protocol violations with frames only lost",
                 (unsigned long long)violations);
    for (size_t i = 0; i < w.nr && !fail[0]; i++)
        if (!clean(w.r[i].st)) snprintf(fail, sizeof fail, "%s fails verify", w.r[i].name);
    if (!fail[0] && (count(a->st, "notes") != 1900 || count(c->st, "lin/log") != 50))
        snprintf(fail, sizeof fail, "wrong counts");
    printf("# seed %llu: %llu dropped, %llu duplicated, %llu reordered, %llu reconnects\n",
           (unsigned long long)seed, (unsigned long long)w.dropped,
           (unsigned long long)w.duplicated, (unsigned long long)w.swapped,
           (unsigned long long)w.reconnects);
done:
    world_free(&w);
    tr_identity_destroy(&x);
    tr_identity_destroy(&y);
    tr_identity_destroy(&z);
    if (fail[0])
        TR_FAILF("seed %llu: %s (TR_SYNC_SEED=%llu replays it)", (unsigned long long)seed, fail,
                 (unsigned long long)seed);
}

static uint64_t seed_base(void)
{
    const char *e = getenv("TR_SYNC_SEED");
    return e && *e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
}

TR_TEST(lost_frames_recovered_by_ticks)
{
    uint64_t s0 = seed_base();
    for (uint64_t k = 0; k < 3 && tr_test_status == 0; k++) chaos(s0 + k, 0.08, 0, 0, true);
}

TR_TEST(chaotic_frames_converge)
{
    uint64_t s0 = seed_base();
    for (uint64_t k = 0; k < 3 && tr_test_status == 0; k++) chaos(s0 + k, 0.05, 0.03, 0.03, false);
}

/* Wants with a small byte budget: every stream is cut short, often between
 * an author's signatures. The uncovered tail of each stream is dropped and
 * wanted again, not refused: the sync converges without a single refusal. */
TR_TEST(budget_cut_streams)
{
    world_t w = {0};
    w.want_max_bytes = 3000; /* ~50 small ops per want */
    tr_identity_t *x = ident(61), *y = ident(62);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B");
    TR_CHECK(a && b && x && y);
    TR_CHECK(write_ops(a->st, "notes", x, 600, 30, 0) == TR_OK);
    TR_CHECK(write_ops(a->st, "notes", y, 400, 45, 0) == TR_OK);
    TR_CHECK(write_ops(a->st, "lin/log", x, 300, 40, 0) == TR_OK);
    end_t *l = link_new(&w, a, b);
    TR_CHECK(link_start(l) == TR_OK);
    TR_CHECK(settle(&w, 0));
    TR_CHECK_INT(count(b->st, "notes"), ==, 1000);
    TR_CHECK_INT(count(b->st, "lin/log"), ==, 300);
    for (int k = 0; k < 64; k++)
        if (l->peer->refused_code[k])
            printf("# refused %s: %llu\n", tr_errname(-k),
                   (unsigned long long)l->peer->refused_code[k]);
    TR_CHECK_INT(l->peer->ev[TR_SYNC_EV_REFUSED], ==, 0);
    TR_CHECK(l->peer->ev[TR_SYNC_EV_COMPLETE] > 20); /* many short wants */
    TR_CHECK(clean(b->st));
    world_free(&w);
    tr_identity_destroy(&x);
    tr_identity_destroy(&y);
}

/* The store's sync cursors directly: order, bounds, snapshots. */
typedef struct {
    tr_vv_t vv;
} from_t;

static uint64_t from_fn(void *arg, const uint8_t author[TR_KEY_LEN])
{
    return tr_vv_get(&((from_t *)arg)->vv, author);
}

TR_TEST(store_cursors)
{
    world_t w = {0};
    tr_identity_t *x = ident(1), *y = ident(2), *z = ident(3);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B");
    TR_CHECK(a && b && x && y && z);
    /* B: concurrent history of three authors, merged on A. */
    TR_CHECK(write_ops(a->st, "notes", x, 120, 50, 0) == TR_OK);
    TR_CHECK(write_ops(b->st, "notes", y, 90, 30, 0) == TR_OK);
    TR_CHECK(write_ops(b->st, "notes", z, 15, 1, 0) == TR_OK);
    end_t *l = link_new(&w, a, b);
    TR_CHECK(link_start(l) == TR_OK);
    TR_CHECK(settle(&w, 0));
    TR_CHECK(write_ops(a->st, "notes", x, 10, 10, 500) == TR_OK);

    /* vv cursor from {x: 100, y: 30}: x 101..130, y 31..90, z 1..15 in
     * (lamport, author, seq) order, in slices of at most 7 ops. */
    from_t from = {{calloc(2, sizeof(tr_vv_entry_t)), 2}};
    TR_CHECK(from.vv.v);
    memcpy(from.vv.v[0].key, tr_identity_public(x), TR_KEY_LEN);
    from.vv.v[0].seq = 100;
    memcpy(from.vv.v[1].key, tr_identity_public(y), TR_KEY_LEN);
    from.vv.v[1].seq = 30;
    tr_vv_sort(&from.vv);
    tr_store_cursor_t *c = NULL;
    TR_CHECK(tr_store_cursor_vv(a->st, "notes", from_fn, &from, &c, NULL) == TR_OK);
    /* written after the cursor opened: not part of it */
    TR_CHECK(write_ops(a->st, "notes", y, 5, 5, 900) == TR_OK);
    size_t total = 0, calls = 0;
    tr_op_t last = {0};
    bool done = false, first = true;
    uint64_t nx = 0, ny = 0, nz = 0;
    while (!done) {
        const tr_op_t *const *ops;
        size_t n;
        TR_CHECK(tr_store_cursor_next(a->st, c, 7, 1 << 20, &ops, &n, &done, NULL) == TR_OK);
        TR_CHECK(n <= 7 && (n > 0 || done));
        calls++;
        for (size_t i = 0; i < n; i++, total++) {
            if (!first) TR_CHECK(tr_op_order(&last, ops[i]) < 0);
            first = false;
            last = *ops[i];
            if (memcmp(ops[i]->author, tr_identity_public(x), 32) == 0)
                TR_CHECK_INT(ops[i]->seq, ==, 101 + nx++);
            if (memcmp(ops[i]->author, tr_identity_public(y), 32) == 0)
                TR_CHECK_INT(ops[i]->seq, ==, 31 + ny++);
            if (memcmp(ops[i]->author, tr_identity_public(z), 32) == 0)
                TR_CHECK_INT(ops[i]->seq, ==, 1 + nz++);
        }
        TR_CHECK(calls < 1000);
    }
    TR_CHECK_INT(nx, ==, 30);
    TR_CHECK_INT(ny, ==, 60);
    TR_CHECK_INT(nz, ==, 15);
    tr_store_cursor_destroy(&c);
    TR_CHECK(c == NULL);

    /* byte bound: at least one op, never more than max_bytes otherwise */
    TR_CHECK(tr_store_cursor_vv(a->st, "notes", from_fn, &from, &c, NULL) == TR_OK);
    const tr_op_t *const *ops;
    size_t n;
    TR_CHECK(tr_store_cursor_next(a->st, c, 100, 1, &ops, &n, &done, NULL) == TR_OK);
    TR_CHECK_INT(n, ==, 1);
    TR_CHECK(!done);
    /* another repository's store is refused */
    char odir[400];
    tr_store_t *os = NULL;
    snprintf(odir, sizeof odir, "%s/other", a->dir);
    static const uint8_t REPO2[16] = {9};
    TR_CHECK(tr_store_create(odir, REPO2, &os, NULL) == TR_OK);
    TR_CHECK(tr_store_cursor_next(os, c, 100, 1, &ops, &n, &done, NULL) == TR_EINVAL);
    tr_store_destroy(&os);
    tr_store_cursor_destroy(&c);
    free(from.vv.v);

    /* linear: after a hash of the branch, from the start, diverged */
    TR_CHECK(write_ops(a->st, "lin/x", x, 20, 20, 0) == TR_OK);
    uint8_t mid[32];
    {
        tr_store_cursor_t *lc;
        TR_CHECK(tr_store_cursor_linear(a->st, "lin/x", NULL, &lc, NULL) == TR_OK);
        TR_CHECK(tr_store_cursor_next(a->st, lc, 8, 1 << 20, &ops, &n, &done, NULL) == TR_OK);
        TR_CHECK_INT(n, ==, 8);
        TR_CHECK_INT(ops[0]->seq, ==, 1);
        memcpy(mid, ops[7]->hash, 32);
        tr_store_cursor_destroy(&lc);
        TR_CHECK(tr_store_cursor_linear(a->st, "lin/x", mid, &lc, NULL) == TR_OK);
        TR_CHECK(write_ops(a->st, "lin/x", x, 3, 3, 0) == TR_OK); /* after open: not included */
        TR_CHECK(tr_store_cursor_next(a->st, lc, 100, 1 << 20, &ops, &n, &done, NULL) == TR_OK);
        TR_CHECK_INT(n, ==, 12);
        TR_CHECK_INT(ops[0]->seq, ==, 9);
        TR_CHECK(done);
        tr_store_cursor_destroy(&lc);
        uint8_t bogus[32] = {1, 2, 3};
        TR_CHECK(tr_store_cursor_linear(a->st, "lin/x", bogus, &lc, NULL) == TR_EDIVERGED);
        TR_CHECK(lc == NULL);
        /* an op of another branch is not on this one */
        tr_branch_info_t info;
        TR_CHECK(tr_store_branch(a->st, "notes", &info, NULL) == TR_OK);
        TR_CHECK(tr_store_cursor_linear(a->st, "lin/x", info.heads[0], &lc, NULL) == TR_EDIVERGED);
        /* an empty branch */
        TR_CHECK(tr_store_cursor_linear(a->st, "lin/none", NULL, &lc, NULL) == TR_OK);
        TR_CHECK(tr_store_cursor_next(a->st, lc, 100, 1 << 20, &ops, &n, &done, NULL) == TR_OK);
        TR_CHECK(n == 0 && done);
        tr_store_cursor_destroy(&lc);
    }
    tr_branch_policy_t pol;
    tr_store_policy(a->st, "lin/x", &pol);
    TR_CHECK(pol.linear && pol.require_signing);
    tr_store_policy(a->st, "notes", &pol);
    TR_CHECK(!pol.linear);
    world_free(&w);
    tr_identity_destroy(&x);
    tr_identity_destroy(&y);
    tr_identity_destroy(&z);
}

/* ---- malformed input ------------------------------------------------------ */

/* Feeds raw bytes to e's session; expects a violation and a queued nack
 * with `reason`. */
static int expect_refused(end_t *e, const uint8_t *buf, size_t len, const char *reason)
{
    tr_err_t err;
    int rc = tr_sync_recv(e->s, buf, len, &err);
    if (rc >= 0) {
        printf("# accepted a bad frame (wanted nack %s)\n", reason);
        return -1;
    }
    tr_buf_t b = {0};
    bool found = false;
    while (tr_sync_pop(e->s, &b)) {
        tr_frame_t f;
        if (tr_frame_decode(b.data, b.len, &f, NULL) == TR_OK) {
            if (f.type == TR_FRAME_NACK && strcmp(f.reason, reason) == 0) found = true;
            tr_frame_clear(&f);
        }
    }
    tr_buf_free(&b);
    if (!found) printf("# no nack '%s' for: %s\n", reason, err.msg);
    return found ? 0 : -1;
}

static int encode(const tr_frame_t *f, tr_buf_t *out)
{
    tr_buf_reset(out);
    return tr_frame_encode(f, out, NULL);
}

TR_TEST(malformed_frames)
{
    world_t w = {0};
    tr_identity_t *x = ident(81);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B");
    TR_CHECK(a && b && x);
    TR_CHECK(write_ops(a->st, "notes", x, 10, 10, 0) == TR_OK);
    end_t *l = link_new(&w, a, b);
    TR_CHECK(link_start(l) == TR_OK);
    tr_buf_t buf = {0};

    /* Before the peer's hello: anything else is out of order. */
    tr_frame_t ops = {.type = TR_FRAME_OPS, .has_repo = true, .has_branch = true, .want_id = 1,
                      .final = true, .payload = (const uint8_t *)"\x93\x90\x90\x90",
                      .payload_len = 4};
    memcpy(ops.repo, REPO, TR_REPO_ID_LEN);
    strcpy(ops.branch, "notes");
    TR_CHECK(encode(&ops, &buf) == TR_OK);
    TR_CHECK(expect_refused(l->peer, buf.data, buf.len, "protocol") == 0);

    link_stop(l);
    TR_CHECK(link_start(l) == TR_OK);
    TR_CHECK(settle(&w, 0));
    TR_CHECK(tr_sync_established(l->s) && tr_sync_established(l->peer->s));

    /* Truncated: a have cut short. */
    tr_frame_t have;
    TR_CHECK(hs_have(l, REPO, NULL, &have) == TR_OK);
    TR_CHECK(encode(&have, &buf) == TR_OK);
    tr_frame_clear(&have);
    TR_CHECK(expect_refused(l->peer, buf.data, buf.len - 5, "malformed") == 0);
    TR_CHECK(expect_refused(l->peer, buf.data, 1, "malformed") == 0);

    /* Another protocol version. */
    tr_frame_t hello = {.type = TR_FRAME_HELLO, .min_version = 1, .max_version = 1};
    TR_CHECK(encode(&hello, &buf) == TR_OK);
    buf.data[1] = 2; /* [version=2, type, ...] */
    TR_CHECK(expect_refused(l->peer, buf.data, buf.len, "version") == 0);
    /* A hello whose range excludes ours. */
    hello.min_version = 2, hello.max_version = 3;
    TR_CHECK(encode(&hello, &buf) == TR_OK);
    TR_CHECK(expect_refused(l->peer, buf.data, buf.len, "version") == 0);

    /* Ops for a want that was never sent. */
    ops.want_id = 99;
    TR_CHECK(encode(&ops, &buf) == TR_OK);
    TR_CHECK(expect_refused(l->peer, buf.data, buf.len, "protocol") == 0);

    /* An ack for a want never answered. */
    tr_frame_t ack = {.type = TR_FRAME_ACK, .has_repo = true, .has_branch = true, .want_id = 7};
    memcpy(ack.repo, REPO, TR_REPO_ID_LEN);
    strcpy(ack.branch, "notes");
    TR_CHECK(encode(&ack, &buf) == TR_OK);
    TR_CHECK(expect_refused(l->peer, buf.data, buf.len, "protocol") == 0);

    /* A want id that does not increase (A answered B's want 1 already). */
    tr_frame_t want = {.type = TR_FRAME_WANT, .has_repo = true, .has_branch = true, .want_id = 1,
                       .max_bytes = 1000};
    memcpy(want.repo, REPO, TR_REPO_ID_LEN);
    strcpy(want.branch, "notes");
    TR_CHECK(encode(&want, &buf) == TR_OK);
    TR_CHECK(expect_refused(l, buf.data, buf.len, "protocol") == 0);

    /* Not canonical: a uint in a longer form than needed (want_id cc 05). */
    want.want_id = 5;
    TR_CHECK(encode(&want, &buf) == TR_OK);
    tr_buf_t nc = {0};
    size_t at = 0;
    /* [ver, type, repo(bin16: c4 10 + 16), branch(a5 + 5), want_id] */
    at = 1 + 1 + 1 + 2 + TR_REPO_ID_LEN + 1 + 5;
    TR_CHECK(buf.data[at] == 5);
    TR_CHECK(tr_buf_append(&nc, buf.data, at) == TR_OK);
    TR_CHECK(tr_buf_append(&nc, "\xcc\x05", 2) == TR_OK);
    TR_CHECK(tr_buf_append(&nc, buf.data + at + 1, buf.len - at - 1) == TR_OK);
    TR_CHECK(expect_refused(l, nc.data, nc.len, "noncanonical") == 0);
    tr_buf_free(&nc);

    /* An ops frame whose batch does not decode, for an outstanding want. */
    TR_CHECK(write_ops(a->st, "fresh", x, 3, 3, 0) == TR_OK);
    link_stop(l);
    TR_CHECK(link_start(l) == TR_OK);
    drain(&w, l), drain(&w, l->peer);
    deliver(&w, l), deliver(&w, l->peer); /* hellos: each side queues a have */
    drain(&w, l), drain(&w, l->peer);
    fq_clear(&l->peer->q);                /* B's have never reaches A */
    deliver(&w, l);                       /* A's have: B wants id 1 */
    ops.want_id = 1;
    strcpy(ops.branch, "fresh");
    ops.payload = (const uint8_t *)"\x93\x91\xc4\x01\x00\x90\x90"; /* a 1-byte author key */
    ops.payload_len = 7;
    TR_CHECK(encode(&ops, &buf) == TR_OK);
    TR_CHECK(expect_refused(l->peer, buf.data, buf.len, "malformed") == 0);

    tr_buf_free(&buf);
    world_free(&w);
    tr_identity_destroy(&x);
}

/* ---- bulk ----------------------------------------------------------------- */

/* 100,000 small field ops written as `op import` writes them (batches of
 * 1,000: one signature per 1,000 ops) stream from A to an empty B. Prints
 * the rate and the bytes per op on the wire (every frame, both ways). */
TR_TEST(bulk_100k)
{
    enum { N = 100000 };
    world_t w = {0};
    tr_identity_t *x = ident(91);
    replica_t *a = replica_new(&w, "A"), *b = replica_new(&w, "B");
    TR_CHECK(a && b && x);
    TR_CHECK(write_ops(a->st, "notes", x, N, 1000, 0) == TR_OK);
    end_t *l = link_new(&w, a, b);
    uint64_t t0 = now_ns();
    TR_CHECK(link_start(l) == TR_OK);
    TR_CHECK(run(&w, 1000000));
    uint64_t t1 = now_ns();
    TR_CHECK_INT(count(b->st, "notes"), ==, N);
    double secs = (double)(t1 - t0) / 1e9;
    double bytes = (double)(l->bytes + l->peer->bytes);
    static char label[160];
    snprintf(label, sizeof label,
             "bulk_100k (%.0f ops/s, %.1f bytes/op on the wire, %llu ops frames)", N / secs,
             bytes / N, (unsigned long long)l->ops_frames);
    tr_test_current = label;
    printf("# bulk: %d ops in %.3f s = %.0f ops/s; %.0f bytes on the wire = %.2f bytes/op\n", N,
           secs, N / secs, bytes, bytes / N);
    /* Where the time went: A answers (streams, takes acks), B integrates. */
    printf("# bulk: responder A %.0f ops/s (%.3f s), requester B %.0f ops/s (%.3f s)\n",
           N / ((double)(l->ns_out + l->ns_in) / 1e9), (double)(l->ns_out + l->ns_in) / 1e9,
           N / ((double)(l->peer->ns_out + l->peer->ns_in) / 1e9),
           (double)(l->peer->ns_out + l->peer->ns_in) / 1e9);
    TR_CHECK(clean(b->st));
    TR_CHECK_INT(l->peer->ev[TR_SYNC_EV_REFUSED], ==, 0);
    world_free(&w);
    tr_identity_destroy(&x);
}

TR_MAIN()
