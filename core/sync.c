/* sync.c — one session's protocol state machine (see tr_sync.h and
 * docs/protocol.md §3.4). Pure: bytes in, frames out, repositories through
 * the host callbacks. */
#include "tr_sync.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "tr_hmap.h"

/* Per (repository, branch) state of both directions. */
typedef struct {
    uint8_t repo[TR_REPO_ID_LEN];
    char branch[TR_BRANCH_MAX + 1];

    /* requester */
    bool peer_known; /* a have for this branch arrived */
    uint64_t peer_count;
    uint8_t (*peer_heads)[TR_HASH_LEN];
    size_t peer_nheads;
    tr_vv_t peer_vv;
    bool wanting;
    uint64_t want_id;
    unsigned quiet; /* anti-entropy ticks since the want's last answer */
    uint64_t got; /* ops integrated for the current want */
    /* uncovered ops held until a later frame covers them */
    tr_buf_t held;
    size_t *held_off, *held_len;
    size_t nheld, held_cap;
    tr_hmap_t held_seq; /* H(author || seq) → hash */

    /* responder */
    tr_sync_cursor_t *cursor;
    bool streaming;   /* a want is being answered */
    bool stream_done; /* final frame sent */
    uint64_t stream_id;
    uint64_t max_stream_id; /* highest want id ever answered */
    unsigned unacked;
    uint64_t budget;
} br_t;

struct tr_sync {
    tr_sync_host_t h;
    char name[TR_NAME_MAX + 1];
    bool started, got_hello;
    tr_frame_t peer_hello;
    uint8_t (*shared)[TR_REPO_ID_LEN];
    size_t nshared;
    br_t **br;
    size_t nbr, capbr;
    tr_hmap_t brmap; /* H(repo || branch) → index */
    /* outbox: a FIFO of encoded frames */
    tr_buf_t *out;
    size_t out_head, out_n, out_cap;
    size_t ops_in_outbox;
    uint64_t next_want_id;
    size_t rr; /* round-robin position for streaming */
};

/* ---- helpers ---------------------------------------------------------- */

static void br_key(uint8_t key[32], const uint8_t repo[TR_REPO_ID_LEN], const char *branch)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, repo, TR_REPO_ID_LEN);
    crypto_generichash_update(&st, (const uint8_t *)branch, strlen(branch));
    crypto_generichash_final(&st, key, 32);
}

static void seq_key(uint8_t key[32], const uint8_t author[TR_KEY_LEN], uint64_t seq)
{
    uint8_t in[TR_KEY_LEN + 8];
    memcpy(in, author, TR_KEY_LEN);
    for (int i = 0; i < 8; i++) in[TR_KEY_LEN + i] = (uint8_t)(seq >> (56 - 8 * i));
    crypto_generichash(key, 32, in, sizeof in, NULL, 0);
}

static bool is_shared(const tr_sync_t *s, const uint8_t repo[TR_REPO_ID_LEN])
{
    for (size_t i = 0; i < s->nshared; i++)
        if (memcmp(s->shared[i], repo, TR_REPO_ID_LEN) == 0) return true;
    return false;
}

static void held_clear(br_t *b)
{
    tr_buf_reset(&b->held);
    b->nheld = 0;
    tr_hmap_clear(&b->held_seq);
}

static void br_free(tr_sync_t *s, br_t *b)
{
    if (b->cursor && s->h.cursor_close) s->h.cursor_close(s->h.host, &b->cursor);
    free(b->peer_heads);
    free(b->peer_vv.v);
    tr_buf_free(&b->held);
    free(b->held_off);
    free(b->held_len);
    tr_hmap_free(&b->held_seq);
    free(b);
}

/* Finds or creates the state of (repo, branch). NULL on out of memory. */
static br_t *br_get(tr_sync_t *s, const uint8_t repo[TR_REPO_ID_LEN], const char *branch)
{
    uint8_t key[32];
    br_key(key, repo, branch);
    size_t *idx;
    bool created;
    if (tr_hmap_put(&s->brmap, key, (void **)&idx, &created)) return NULL;
    if (!created) return s->br[*idx];
    /* A peer names branches in haves and wants; each costs us state, so
     * their number is bounded (docs/protocol.md §3.7). */
    if (s->nbr >= TR_SYNC_MAX_BRANCHES) goto fail;
    if (s->nbr == s->capbr) {
        size_t cap = s->capbr ? s->capbr * 2 : 8;
        br_t **nb = realloc(s->br, cap * sizeof *nb);
        if (!nb) goto fail;
        s->br = nb;
        s->capbr = cap;
    }
    br_t *b = calloc(1, sizeof *b);
    if (!b) goto fail;
    memcpy(b->repo, repo, TR_REPO_ID_LEN);
    snprintf(b->branch, sizeof b->branch, "%s", branch);
    tr_hmap_init(&b->held_seq, TR_HASH_LEN);
    *idx = s->nbr;
    s->br[s->nbr++] = b;
    return b;
fail:
    tr_hmap_del(&s->brmap, key);
    return NULL;
}

static void emit(tr_sync_t *s, const tr_sync_event_t *ev)
{
    if (s->h.event) s->h.event(s->h.host, ev);
}

/* Appends an encoded frame to the outbox. */
static int push_frame(tr_sync_t *s, const tr_frame_t *f, tr_err_t *err)
{
    if (s->out_n == s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap * 2 : 8;
        tr_buf_t *n = calloc(cap, sizeof *n);
        if (!n) return tr_err_set(err, TR_ENOMEM, "out of memory");
        for (size_t i = 0; i < s->out_n; i++) n[i] = s->out[(s->out_head + i) % s->out_cap];
        free(s->out);
        s->out = n;
        s->out_head = 0;
        s->out_cap = cap;
    }
    tr_buf_t *b = &s->out[(s->out_head + s->out_n) % s->out_cap];
    tr_buf_reset(b);
    int rc = tr_frame_encode(f, b, err);
    if (rc) return rc;
    s->out_n++;
    if (f->type == TR_FRAME_OPS) s->ops_in_outbox++;
    return TR_OK;
}

static void nack(tr_sync_t *s, const uint8_t *repo, const char *branch, const char *reason,
                 const uint8_t *hash, const char *text)
{
    tr_frame_t f = {.type = TR_FRAME_NACK};
    if (repo) f.has_repo = true, memcpy(f.repo, repo, TR_REPO_ID_LEN);
    if (branch) f.has_branch = true, snprintf(f.branch, sizeof f.branch, "%s", branch);
    snprintf(f.reason, sizeof f.reason, "%s", reason);
    /* Keep the text valid UTF-8 when truncating: cut at a character boundary. */
    size_t n = strlen(text);
    if (n > TR_TEXT_MAX) {
        n = TR_TEXT_MAX;
        while (n > 0 && ((unsigned char)text[n] & 0xc0) == 0x80) n--;
    }
    memcpy(f.text, text, n);
    f.text[n] = '\0';
    if (hash) f.has_hash = true, memcpy(f.hash, hash, TR_HASH_LEN);
    (void)push_frame(s, &f, NULL); /* best effort */
}

/* Protocol violation: nack, and tell the caller to drop the peer. */
static int violation(tr_sync_t *s, int code, tr_err_t *err, const char *what)
{
    nack(s, NULL, NULL, tr_wire_reason(code), NULL, what);
    return tr_err_set(err, code, "peer broke the protocol: %s", what);
}

/* ---- lifecycle -------------------------------------------------------- */

tr_sync_t *tr_sync_new(const tr_sync_host_t *host, const char *name)
{
    tr_sync_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->h = *host;
    snprintf(s->name, sizeof s->name, "%s", name ? name : "");
    tr_hmap_init(&s->brmap, sizeof(size_t));
    return s;
}

void tr_sync_destroy(tr_sync_t **sp)
{
    if (!sp || !*sp) return;
    tr_sync_t *s = *sp;
    for (size_t i = 0; i < s->nbr; i++) br_free(s, s->br[i]);
    free(s->br);
    tr_hmap_free(&s->brmap);
    for (size_t i = 0; i < s->out_cap; i++) tr_buf_free(&s->out[i]);
    free(s->out);
    free(s->shared);
    tr_frame_clear(&s->peer_hello);
    free(s);
    *sp = NULL;
}

bool tr_sync_established(const tr_sync_t *s)
{
    return s->started && s->got_hello;
}

const tr_frame_t *tr_sync_peer_hello(const tr_sync_t *s)
{
    return s->got_hello ? &s->peer_hello : NULL;
}

bool tr_sync_idle(const tr_sync_t *s)
{
    if (s->out_n) return false;
    for (size_t i = 0; i < s->nbr; i++) {
        const br_t *b = s->br[i];
        if (b->wanting || (b->streaming && (!b->stream_done || b->unacked))) return false;
    }
    return true;
}

bool tr_sync_pop(tr_sync_t *s, tr_buf_t *out)
{
    if (!s->out_n) return false;
    tr_buf_t *b = &s->out[s->out_head];
    tr_buf_reset(out);
    /* Swap buffers instead of copying: the outbox slot keeps out's memory. */
    tr_buf_t t = *out;
    *out = *b;
    *b = t;
    if (out->len >= 2 && out->data[2] == TR_FRAME_OPS && s->ops_in_outbox) s->ops_in_outbox--;
    s->out_head = (s->out_head + 1) % s->out_cap;
    s->out_n--;
    return true;
}

int tr_sync_start(tr_sync_t *s, tr_err_t *err)
{
    if (s->started) return tr_err_set(err, TR_EINVAL, "session already started");
    tr_frame_t f = {.type = TR_FRAME_HELLO, .min_version = TR_PROTO_MIN_VERSION,
                    .max_version = TR_PROTO_VERSION};
    snprintf(f.name, sizeof f.name, "%s", s->name);
    int rc = s->h.repos(s->h.host, &f.repos, &f.nrepos);
    if (rc) return tr_err_set(err, rc, "cannot list served repositories");
    rc = push_frame(s, &f, err);
    free(f.repos);
    if (rc) return rc;
    s->started = true;
    return TR_OK;
}

/* ---- requester -------------------------------------------------------- */

/* Sends a want for `b` if the peer's last have shows ops we lack. */
static int maybe_want(tr_sync_t *s, br_t *b, tr_err_t *err)
{
    if (b->wanting || !b->peer_known || b->peer_count == 0) return TR_OK;
    tr_frame_t f = {.type = TR_FRAME_WANT, .has_repo = true, .has_branch = true};
    memcpy(f.repo, b->repo, TR_REPO_ID_LEN);
    snprintf(f.branch, sizeof f.branch, "%s", b->branch);
    bool lacking = false;
    int rc = TR_OK;
    if (s->h.linear(s->h.host, b->repo, b->branch)) {
        for (size_t i = 0; i < b->peer_nheads && !lacking; i++)
            lacking = !s->h.holds(s->h.host, b->repo, b->branch, b->peer_heads[i]);
        if (!lacking) return TR_OK;
        tr_frame_t mine = {0};
        rc = s->h.have(s->h.host, b->repo, b->branch, &mine);
        if (rc) return tr_err_set(err, rc, "cannot read branch %s", b->branch);
        if (mine.nbranches == 1 && mine.branches[0].nheads >= 1) {
            f.has_after = true;
            memcpy(f.after_hash, mine.branches[0].heads[0], TR_HASH_LEN);
        }
        tr_frame_clear(&mine);
    } else {
        tr_vv_t local = {0};
        if (s->h.vv) {
            rc = s->h.vv(s->h.host, b->repo, b->branch, &local);
            if (rc) return tr_err_set(err, rc, "cannot read version vector of %s", b->branch);
        }
        for (size_t i = 0; i < b->peer_vv.n && !lacking; i++)
            lacking = b->peer_vv.v[i].seq > tr_vv_get(&local, b->peer_vv.v[i].key);
        /* Held ops count as had: ask only for what follows them. */
        if (!lacking) {
            free(local.v);
            return TR_OK;
        }
        f.from = local;
    }
    f.want_id = ++s->next_want_id;
    f.max_bytes = TR_SYNC_WANT_BYTES;
    rc = push_frame(s, &f, err);
    free(f.from.v);
    if (rc) return rc;
    b->wanting = true;
    b->want_id = f.want_id;
    b->quiet = 0;
    b->got = 0;
    held_clear(b);
    return TR_OK;
}

static int on_have(tr_sync_t *s, const tr_frame_t *f, tr_err_t *err)
{
    if (!is_shared(s, f->repo)) {
        nack(s, f->repo, NULL, "unknown-repo", NULL, "repository not served to this peer");
        return TR_OK;
    }
    for (size_t i = 0; i < f->nbranches; i++) {
        const tr_have_branch_t *hb = &f->branches[i];
        br_t *b = br_get(s, f->repo, hb->name);
        if (!b && s->nbr >= TR_SYNC_MAX_BRANCHES) continue; /* past the bound: not tracked */
        if (!b) return tr_err_set(err, TR_ENOMEM, "out of memory");
        free(b->peer_heads);
        free(b->peer_vv.v);
        b->peer_heads = NULL, b->peer_vv.v = NULL, b->peer_vv.n = 0, b->peer_nheads = 0;
        if (hb->nheads) {
            b->peer_heads = malloc(hb->nheads * TR_HASH_LEN);
            if (!b->peer_heads) return tr_err_set(err, TR_ENOMEM, "out of memory");
            memcpy(b->peer_heads, hb->heads, hb->nheads * TR_HASH_LEN);
            b->peer_nheads = hb->nheads;
        }
        if (hb->vv.n) {
            b->peer_vv.v = malloc(hb->vv.n * sizeof *hb->vv.v);
            if (!b->peer_vv.v) return tr_err_set(err, TR_ENOMEM, "out of memory");
            memcpy(b->peer_vv.v, hb->vv.v, hb->vv.n * sizeof *hb->vv.v);
            b->peer_vv.n = hb->vv.n;
        }
        b->peer_count = hb->count;
        b->peer_known = true;
        int rc = maybe_want(s, b, err);
        if (rc) return rc;
    }
    return TR_OK;
}

/* The batch decoder's prev lookup: held ops first, then the store. */
typedef struct {
    tr_sync_t *s;
    br_t *b;
} prev_ctx_t;

static int prev_lookup(void *arg, const uint8_t author[TR_KEY_LEN], uint64_t seq,
                       uint8_t hash[TR_HASH_LEN])
{
    prev_ctx_t *c = arg;
    uint8_t key[32];
    seq_key(key, author, seq);
    const uint8_t *h = tr_hmap_get(&c->b->held_seq, key);
    if (h) {
        memcpy(hash, h, TR_HASH_LEN);
        return TR_OK;
    }
    return c->s->h.prev(c->s->h.host, c->b->repo, c->b->branch, author, seq, hash);
}

typedef struct {
    tr_sync_t *s;
    br_t *b;
    bool nacked;
} refuse_ctx_t;

/* Reports a refused op: an event for each, a nack for the first per frame
 * (a peer sending a long run of bad ops gets one nack, not thousands). */
static void refuse_op(void *arg, size_t i, const uint8_t *hash, int code, const char *reason)
{
    refuse_ctx_t *c = arg;
    (void)i;
    tr_sync_event_t ev = {.type = TR_SYNC_EV_REFUSED, .repo = c->b->repo, .branch = c->b->branch,
                          .hash = hash, .code = code, .text = reason};
    emit(c->s, &ev);
    if (code == TR_EDIVERGED) {
        tr_sync_event_t dv = {.type = TR_SYNC_EV_DIVERGED, .repo = c->b->repo,
                              .branch = c->b->branch, .hash = hash, .text = reason};
        emit(c->s, &dv);
    }
    if (!c->nacked) {
        nack(c->s, c->b->repo, c->b->branch, tr_wire_reason(code), hash, reason);
        c->nacked = true;
    }
}

/* Adds a record to the held set. */
static int hold(br_t *b, const uint8_t *rec, size_t len, const tr_op_t *op)
{
    if (b->nheld == b->held_cap) {
        size_t cap = b->held_cap ? b->held_cap * 2 : 64;
        size_t *o = realloc(b->held_off, cap * sizeof *o);
        if (!o) return TR_ENOMEM;
        b->held_off = o;
        size_t *l = realloc(b->held_len, cap * sizeof *l);
        if (!l) return TR_ENOMEM;
        b->held_len = l;
        b->held_cap = cap;
    }
    b->held_off[b->nheld] = b->held.len;
    b->held_len[b->nheld] = len;
    if (tr_buf_append(&b->held, rec, len)) return TR_ENOMEM;
    b->nheld++;
    uint8_t key[32];
    void *v;
    seq_key(key, op->author, op->seq);
    if (tr_hmap_put(&b->held_seq, key, &v, NULL)) return TR_ENOMEM;
    memcpy(v, op->hash, TR_HASH_LEN);
    return TR_OK;
}

/*
 * Chooses the ops of ops[0..n) (causal order) that can be integrated now
 * (docs/protocol.md §3.3): sel[i] is set when op i is covered — its author's
 * run up to it ends, within these ops, at a signed op that is chosen too —
 * and every op here that it depends on (prev, parents) is chosen. The rest
 * is held. Per author the chosen ops form a prefix of its ops here ending
 * at a signed op; prefixes only shrink, until every chosen op's
 * dependencies are chosen (usually one pass, two when one shrinks).
 *
 * This replaces "the longest prefix of the frame in which every author's
 * last op is signed": with several authors whose signatures fall at
 * different places, such a prefix may never exist within a frame, and the
 * held set then overflowed on every want — a stream that never finished.
 * Returns TR_OK or TR_ENOMEM.
 */
#define NONE SIZE_MAX

/* Index in ops[0..i) of the op with hash h, or NONE. Usually the previous
 * op (a run of one author); otherwise through `at`, built on first use. */
static size_t dep_index(const tr_op_t *ops, size_t n, size_t i, const uint8_t h[TR_HASH_LEN],
                        tr_hmap_t *at, int *rc)
{
    if (i == 0) return NONE;
    if (memcmp(ops[i - 1].hash, h, TR_HASH_LEN) == 0) return i - 1;
    if (!at->cap) {
        for (size_t k = 0; k < n && !*rc; k++) {
            size_t *idx;
            if (tr_hmap_put(at, ops[k].hash, (void **)&idx, NULL))
                *rc = TR_ENOMEM;
            else
                *idx = k;
        }
    }
    const size_t *j = tr_hmap_get(at, h);
    return j && *j < i ? *j : NONE;
}

static int select_covered(const tr_op_t *ops, size_t n, bool *sel)
{
    tr_hmap_t authors; /* author → size_t: index of its last op that may be chosen */
    tr_hmap_t at;      /* hash → size_t: index of the op (built when needed) */
    size_t *prevsig = malloc((n ? n : 1) * sizeof *prevsig);
    size_t **lim = malloc((n ? n : 1) * sizeof *lim); /* op → its author's limit */
    int rc = prevsig && lim ? TR_OK : TR_ENOMEM;
    tr_hmap_init(&authors, sizeof(size_t));
    tr_hmap_init(&at, sizeof(size_t));
    /* prevsig[i]: the author's last signed op before i, or NONE. */
    for (size_t i = 0; i < n && !rc; i++) {
        bool created = false;
        if (i > 0 && memcmp(ops[i].author, ops[i - 1].author, TR_KEY_LEN) == 0) {
            lim[i] = lim[i - 1]; /* no put since: still valid */
        } else if (tr_hmap_put(&authors, ops[i].author, (void **)&lim[i], &created)) {
            rc = TR_ENOMEM;
            break;
        }
        if (created) *lim[i] = NONE;
        prevsig[i] = *lim[i];
        if (ops[i].has_sig) *lim[i] = i;
    }
    /* lim[] pointed into `authors` while it grew; refresh them now that it
     * is complete (no more puts below). */
    for (size_t i = 0; i < n && !rc; i++)
        lim[i] = (i > 0 && memcmp(ops[i].author, ops[i - 1].author, TR_KEY_LEN) == 0)
                     ? lim[i - 1]
                     : tr_hmap_get(&authors, ops[i].author);
    for (bool changed = true; changed && !rc;) {
        changed = false;
        for (size_t i = 0; i < n && !rc; i++) {
            size_t *limit = lim[i];
            sel[i] = *limit != NONE && i <= *limit;
            if (!sel[i]) continue;
            size_t j = ops[i].has_prev ? dep_index(ops, n, i, ops[i].prev, &at, &rc) : NONE;
            bool ok = j == NONE || sel[j];
            for (size_t p = 0; p < ops[i].nparents && ok; p++)
                ok = (j = dep_index(ops, n, i, ops[i].parents[p], &at, &rc)) == NONE || sel[j];
            if (!ok) {
                *limit = prevsig[i];
                sel[i] = false;
                changed = true;
            }
        }
    }
    tr_hmap_free(&authors);
    tr_hmap_free(&at);
    free(prevsig);
    free(lim);
    return rc;
}
#undef NONE

/* At the final frame of a want: is an op here uncovered (no later signed op
 * of its author here) although the peer's last have shows its author
 * further ahead? Then the peer holds the cover and the stream was cut short
 * by the want's byte budget. An op that is only waiting for another
 * author's cover does not count: its blocker decides. */
static bool cut_short(const tr_op_t *ops, size_t n, const tr_vv_t *peer)
{
    tr_hmap_t signed_later; /* author → present once a signed op was seen (backwards) */
    bool cut = false;
    void *v;
    bool created;
    tr_hmap_init(&signed_later, 0);
    for (size_t i = n; i-- > 0 && !cut;) {
        if (ops[i].has_sig) {
            if (tr_hmap_put(&signed_later, ops[i].author, &v, &created)) break;
        } else if (!tr_hmap_get(&signed_later, ops[i].author)) {
            cut = ops[i].seq < tr_vv_get(peer, ops[i].author);
        }
    }
    tr_hmap_free(&signed_later);
    return cut;
}

/* The longest run of unsigned ops at the end of one author's ops in
 * ops[0..n): ops that nothing here covers. Writers sign at least every
 * TR_OP_SIGN_EVERY-th op, so a longer run means a peer breaking that rule. */
static size_t uncovered_run(const tr_op_t *const *ops, size_t n)
{
    tr_hmap_t run; /* author → size_t, SIZE_MAX once a signed op was seen */
    size_t most = 0;
    tr_hmap_init(&run, sizeof(size_t));
    for (size_t i = n; i-- > 0;) {
        size_t *r;
        if (tr_hmap_put(&run, ops[i]->author, (void **)&r, NULL)) {
            most = n; /* out of memory: count everything as uncovered */
            break;
        }
        if (*r == SIZE_MAX) continue;
        if (ops[i]->has_sig) {
            *r = SIZE_MAX;
        } else if (++*r > most) {
            most = *r;
        }
    }
    tr_hmap_free(&run);
    return most;
}

static int send_ack(tr_sync_t *s, br_t *b, uint64_t want_id, uint64_t integrated,
                    const tr_op_t *const *ops, size_t n, tr_err_t *err)
{
    tr_frame_t f = {.type = TR_FRAME_ACK, .has_repo = true, .has_branch = true,
                    .want_id = want_id, .integrated = integrated};
    memcpy(f.repo, b->repo, TR_REPO_ID_LEN);
    snprintf(f.branch, sizeof f.branch, "%s", b->branch);
    tr_frame_t mine = {0};
    if (s->h.have(s->h.host, b->repo, b->branch, &mine) == TR_OK && mine.nbranches == 1)
        f.count = mine.branches[0].count;
    tr_frame_clear(&mine);
    tr_vv_t local = {0};
    if (s->h.vv && n && s->h.vv(s->h.host, b->repo, b->branch, &local) == TR_OK) {
        /* Keep the entries of the frame's authors (local stays sorted). */
        tr_hmap_t in_frame;
        void *v;
        tr_hmap_init(&in_frame, 0);
        for (size_t j = 0; j < n; j++)
            if ((j == 0 || memcmp(ops[j]->author, ops[j - 1]->author, TR_KEY_LEN) != 0) &&
                tr_hmap_put(&in_frame, ops[j]->author, &v, NULL))
                local.n = 0; /* out of memory: an ack without vv entries */
        size_t k = 0;
        for (size_t i = 0; i < local.n; i++)
            if (tr_hmap_get(&in_frame, local.v[i].key)) local.v[k++] = local.v[i];
        tr_hmap_free(&in_frame);
        local.n = k;
        f.vv = local;
    }
    int rc = push_frame(s, &f, err);
    free(local.v);
    return rc;
}

static int on_ops(tr_sync_t *s, const tr_frame_t *f, tr_err_t *err)
{
    if (!is_shared(s, f->repo)) return violation(s, TR_EPROTO, err, "ops for an unshared repository");
    br_t *b = br_get(s, f->repo, f->branch);
    if (!b) return violation(s, TR_ETOOBIG, err, "too many branches in one session (or out of memory)");
    if (!b->wanting || f->want_id != b->want_id)
        return violation(s, TR_EPROTO, err, "ops for a want that is not outstanding");

    b->quiet = 0;
    prev_ctx_t pc = {s, b};
    tr_batch_t bt;
    tr_err_t derr;
    int rc = tr_batch_decode(f->payload, f->payload_len, f->codec, f->repo, f->branch,
                             prev_lookup, &pc, &bt, &derr);
    if (rc == TR_ENOMEM) return tr_err_set(err, rc, "out of memory");
    if (rc) return violation(s, rc, err, derr.msg);

    refuse_ctx_t rcx = {s, b, false};
    /* Records to integrate: the held ones, then this frame's rebuilt ones. */
    size_t total = b->nheld + bt.n;
    size_t m = total ? total : 1;
    tr_rec_t *recs = malloc(m * sizeof *recs), *pick = malloc(m * sizeof *pick);
    tr_op_t *ops = malloc(m * sizeof *ops); /* each filled by tr_op_decode */
    const tr_op_t **pops = malloc(m * sizeof *pops);
    int *status = malloc(m * sizeof *status);
    bool *sel = malloc(m * sizeof *sel);
    size_t *rlen = malloc(m * sizeof *rlen);
    tr_buf_t keep = {0};
    size_t nrec = 0;
    if (!recs || !pick || !ops || !pops || !status || !sel || !rlen) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < b->nheld; i++)
        recs[nrec++] = (tr_rec_t){b->held.data + b->held_off[i], b->held_len[i]};
    for (size_t i = 0; i < bt.n; i++) {
        if (bt.status[i]) {
            refuse_op(&rcx, i, NULL, bt.status[i], bt.reason[i] ? bt.reason[i] : "refused");
            continue;
        }
        recs[nrec++] = (tr_rec_t){bt.recs.data + bt.off[i], bt.len[i]};
    }
    for (size_t i = 0; i < nrec; i++)
        if (tr_op_decode(recs[i].data, recs[i].len, &ops[i], NULL)) {
            rc = tr_err_set(err, TR_ECORRUPT, "rebuilt record does not decode");
            goto out;
        }

    /* What is covered goes in now; the rest is held for the next frame of
     * this want. At the final frame the rest goes in too (§3.3: the store
     * refuses what no signature covers where signing is required) — unless
     * the stream was cut short (see cut_short) and this want made progress:
     * refusing the rest would only have the peer send them again, so they
     * are dropped and wanted again (from further on: no loop). */
    rc = select_covered(ops, nrec, sel);
    if (rc) {
        rc = tr_err_set(err, rc, "out of memory");
        goto out;
    }
    size_t npick = 0;
    for (size_t i = 0; i < nrec; i++) npick += sel[i];
    if (f->final && npick < nrec &&
        ((npick == 0 && b->got == 0) || !cut_short(ops, nrec, &b->peer_vv)))
        for (size_t i = 0; i < nrec; i++) sel[i] = true;
    npick = 0;
    for (size_t i = 0; i < nrec; i++)
        if (sel[i]) pick[npick] = recs[i], pops[npick++] = &ops[i];
    uint64_t integrated = 0;
    if (npick) {
        rc = s->h.integrate(s->h.host, b->repo, pick, npick, status, refuse_op, &rcx, err);
        if (rc) {
            nack(s, b->repo, b->branch, "internal", NULL, "cannot integrate");
            goto out;
        }
        for (size_t i = 0; i < npick; i++) integrated += status[i] == TR_INTEGRATED;
    }
    /* Hold the rest. The held records live in b->held, which `recs` may
     * point into: copy them out first. */
    size_t nrest = 0;
    for (size_t i = 0; i < nrec && !f->final; i++)
        if (!sel[i]) {
            if (tr_buf_append(&keep, recs[i].data, recs[i].len)) {
                rc = tr_err_set(err, TR_ENOMEM, "out of memory");
                goto out;
            }
            rlen[nrest] = recs[i].len;
            pops[npick + nrest++] = &ops[i]; /* hold() reads only author, seq, hash */
        }
    held_clear(b);
    for (size_t k = 0, off = 0; k < nrest; off += rlen[k++])
        if (hold(b, keep.data + off, rlen[k], pops[npick + k])) {
            rc = tr_err_set(err, TR_ENOMEM, "out of memory");
            goto out;
        }
    if (b->held.len > TR_SYNC_HELD_BYTES ||
        uncovered_run(&pops[npick], nrest) >= TR_OP_SIGN_EVERY) {
        nack(s, b->repo, b->branch, "unsigned", NULL,
             "too many ops not covered by a signature; dropping them");
        held_clear(b);
    }
    b->got += integrated;
    rc = send_ack(s, b, f->want_id, integrated, pops, npick, err);
    if (rc) goto out;
    if (integrated) {
        tr_sync_event_t ev = {.type = TR_SYNC_EV_RECEIVED, .repo = b->repo, .branch = b->branch,
                              .count = integrated};
        emit(s, &ev);
    }
    if (f->final) {
        uint64_t got = b->got;
        b->wanting = false;
        held_clear(b);
        tr_sync_event_t ev = {.type = TR_SYNC_EV_COMPLETE, .repo = b->repo, .branch = b->branch,
                              .count = got};
        emit(s, &ev);
        /* More may have been written meanwhile (or the stream was cut
         * short): ask again, but only if this want made progress (refused
         * ops would otherwise loop). */
        if (got) rc = maybe_want(s, b, err);
    }
out:
    free(recs);
    free(pick);
    free(ops);
    free(pops);
    free(status);
    free(sel);
    free(rlen);
    tr_buf_free(&keep);
    tr_batch_clear(&bt);
    return rc;
}

/* Is `reason` the token of an op rule (§2.4), as opposed to a refused
 * request? */
static bool op_reason(const char *reason)
{
    static const char *const rules[] = {"hash", "signature", "unsigned", "seq", "prev",
                                        "parent", "lamport", "equivocation", "repo",
                                        "kind", "body"};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (strcmp(reason, rules[i]) == 0) return true;
    return false;
}

static int on_nack(tr_sync_t *s, const tr_frame_t *f)
{
    tr_sync_event_t ev = {.type = TR_SYNC_EV_NACKED,
                          .repo = f->has_repo ? f->repo : NULL,
                          .branch = f->has_branch ? f->branch : NULL,
                          .hash = f->has_hash ? f->hash : NULL,
                          .reason = f->reason,
                          .text = f->text};
    emit(s, &ev);
    if (f->has_repo && f->has_branch) {
        br_t *b = br_get(s, f->repo, f->branch);
        /* A refused want ends it; a refused op does not. An op the peer
         * could not even rebuild is nacked without a hash, but with the
         * reason of an op rule: that is about our stream, not our want. */
        if (b && b->wanting && !f->has_hash && !op_reason(f->reason)) {
            b->wanting = false;
            held_clear(b);
        }
        if (b && strcmp(f->reason, "diverged") == 0) {
            tr_sync_event_t dv = {.type = TR_SYNC_EV_DIVERGED, .repo = f->repo,
                                  .branch = f->branch, .text = f->text};
            emit(s, &dv);
        }
    }
    return TR_OK;
}

/* ---- responder -------------------------------------------------------- */

static void stream_close(tr_sync_t *s, br_t *b)
{
    if (b->cursor) s->h.cursor_close(s->h.host, &b->cursor);
    b->cursor = NULL;
}

/* Sends the next ops frame of b's stream. Returns TR_OK, or a store error. */
static int stream_one(tr_sync_t *s, br_t *b, tr_err_t *err)
{
    const tr_op_t *const *ops = NULL;
    size_t n = 0;
    bool done = false;
    size_t max_bytes = b->budget < TR_SYNC_FRAME_BYTES ? (size_t)b->budget : TR_SYNC_FRAME_BYTES;
    int rc = s->h.cursor_next(s->h.host, b->cursor, TR_SYNC_FRAME_OPS, max_bytes, &ops, &n,
                              &done, err);
    if (rc) return rc;
    tr_buf_t payload = {0};
    tr_frame_t f = {.type = TR_FRAME_OPS, .has_repo = true, .has_branch = true,
                    .want_id = b->stream_id};
    memcpy(f.repo, b->repo, TR_REPO_ID_LEN);
    snprintf(f.branch, sizeof f.branch, "%s", b->branch);
    rc = tr_batch_encode(ops, n, &payload, &f.codec, err);
    if (rc) {
        tr_buf_free(&payload);
        return rc;
    }
    size_t raw = 0;
    for (size_t i = 0; i < n; i++) raw += ops[i]->body_len + ops[i]->target_len + 16;
    b->budget = raw >= b->budget ? 0 : b->budget - raw;
    f.final = done || b->budget == 0;
    f.payload = payload.data;
    f.payload_len = payload.len;
    rc = push_frame(s, &f, err);
    tr_buf_free(&payload);
    if (rc) return rc;
    b->unacked++;
    if (f.final) {
        b->stream_done = true;
        stream_close(s, b);
    }
    return TR_OK;
}

int tr_sync_pump(tr_sync_t *s, tr_err_t *err)
{
    bool progress = true;
    while (progress && s->ops_in_outbox < TR_SYNC_OUTBOX) {
        progress = false;
        for (size_t k = 0; k < s->nbr && s->ops_in_outbox < TR_SYNC_OUTBOX; k++) {
            br_t *b = s->br[(s->rr + k) % s->nbr];
            if (!b->streaming || b->stream_done || b->unacked >= TR_WINDOW) continue;
            int rc = stream_one(s, b, err);
            if (rc) {
                nack(s, b->repo, b->branch, "internal", NULL, "cannot read ops");
                b->stream_done = true;
                stream_close(s, b);
                return rc;
            }
            progress = true;
        }
        if (s->nbr) s->rr = (s->rr + 1) % s->nbr;
    }
    return TR_OK;
}

static int on_want(tr_sync_t *s, const tr_frame_t *f, tr_err_t *err)
{
    if (!is_shared(s, f->repo)) {
        nack(s, f->repo, f->branch, "unknown-repo", NULL, "repository not served to this peer");
        return TR_OK;
    }
    br_t *b = br_get(s, f->repo, f->branch);
    if (!b) return violation(s, TR_ETOOBIG, err, "too many branches in one session (or out of memory)");
    if (f->want_id <= b->max_stream_id)
        return violation(s, TR_EPROTO, err, "want ids must increase");
    stream_close(s, b); /* a newer want abandons the old stream */
    b->streaming = false;
    b->max_stream_id = f->want_id;
    tr_err_t cerr;
    tr_err_clear(&cerr);
    int rc = s->h.cursor_open(s->h.host, f, &b->cursor, &cerr);
    if (rc == TR_EDIVERGED) {
        nack(s, f->repo, f->branch, "diverged", NULL, cerr.msg[0] ? cerr.msg : "head not held");
        tr_sync_event_t dv = {.type = TR_SYNC_EV_DIVERGED, .repo = f->repo, .branch = f->branch,
                              .text = cerr.msg};
        emit(s, &dv);
        return TR_OK;
    }
    if (rc) {
        nack(s, f->repo, f->branch, "internal", NULL, cerr.msg[0] ? cerr.msg : "cannot read");
        return TR_OK;
    }
    b->streaming = true;
    b->stream_done = false;
    b->stream_id = f->want_id;
    b->unacked = 0;
    b->budget = f->max_bytes ? f->max_bytes : 1;
    return tr_sync_pump(s, err);
}

static int on_ack(tr_sync_t *s, const tr_frame_t *f, tr_err_t *err)
{
    if (!is_shared(s, f->repo)) return violation(s, TR_EPROTO, err, "ack for an unshared repository");
    br_t *b = br_get(s, f->repo, f->branch);
    if (!b) return violation(s, TR_ETOOBIG, err, "too many branches in one session (or out of memory)");
    if (f->want_id > b->max_stream_id || f->want_id == 0)
        return violation(s, TR_EPROTO, err, "ack for a want never answered");
    if (f->want_id == b->stream_id && b->streaming) {
        if (b->unacked == 0)
            return violation(s, TR_EPROTO, err, "more acks than ops frames");
        b->unacked--;
    }
    tr_sync_event_t ev = {.type = TR_SYNC_EV_PROGRESS, .repo = f->repo, .branch = f->branch,
                          .count = f->count, .vv = &f->vv};
    emit(s, &ev);
    return tr_sync_pump(s, err);
}

/* ---- entry points ----------------------------------------------------- */

/* Recomputes the shared repositories (peer's hello ∩ what we serve now) and
 * sends a have for each one that was not shared before. */
static int reshare(tr_sync_t *s, tr_err_t *err)
{
    const tr_frame_t *h = &s->peer_hello;
    uint8_t(*old)[TR_REPO_ID_LEN] = s->shared;
    size_t nold = s->nshared;
    s->shared = calloc(h->nrepos ? h->nrepos : 1, TR_REPO_ID_LEN);
    s->nshared = 0;
    if (!s->shared) {
        s->shared = old, s->nshared = nold;
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < h->nrepos; i++)
        if (s->h.serves(s->h.host, h->repos[i]))
            memcpy(s->shared[s->nshared++], h->repos[i], TR_REPO_ID_LEN);
    int rc = TR_OK;
    for (size_t i = 0; i < s->nshared && !rc; i++) {
        bool was = false;
        for (size_t j = 0; j < nold && !was; j++)
            was = memcmp(old[j], s->shared[i], TR_REPO_ID_LEN) == 0;
        if (!was) rc = tr_sync_changed(s, s->shared[i], NULL, err);
    }
    free(old);
    return rc ? rc : tr_sync_pump(s, err);
}

int tr_sync_served_changed(tr_sync_t *s, tr_err_t *err)
{
    if (!s->started) return TR_OK;
    s->started = false;
    int rc = tr_sync_start(s, err); /* a new hello with the served set */
    if (rc || !s->got_hello) return rc;
    return reshare(s, err);
}

static int on_hello(tr_sync_t *s, tr_frame_t *f, tr_err_t *err)
{
    if (f->max_version < TR_PROTO_MIN_VERSION || f->min_version > TR_PROTO_VERSION) {
        char text[64];
        snprintf(text, sizeof text, "speaks %d..%d", TR_PROTO_MIN_VERSION, TR_PROTO_VERSION);
        nack(s, NULL, NULL, "version", NULL, text);
        return tr_err_set(err, TR_EVERSION, "peer speaks versions %llu..%llu, we speak %s",
                          (unsigned long long)f->min_version,
                          (unsigned long long)f->max_version, text + 7);
    }
    tr_frame_clear(&s->peer_hello);
    s->peer_hello = *f;
    memset(f, 0, sizeof *f); /* ownership moved */
    s->got_hello = true;
    tr_sync_event_t ev = {.type = TR_SYNC_EV_HELLO, .hello = &s->peer_hello};
    emit(s, &ev);
    return reshare(s, err);
}

int tr_sync_recv(tr_sync_t *s, const uint8_t *buf, size_t len, tr_err_t *err)
{
    tr_frame_t f;
    tr_err_t derr;
    int rc = tr_frame_decode(buf, len, &f, &derr);
    if (rc == TR_EVERSION) {
        char text[64];
        snprintf(text, sizeof text, "speaks %d..%d", TR_PROTO_MIN_VERSION, TR_PROTO_VERSION);
        nack(s, NULL, NULL, "version", NULL, text);
        return tr_err_set(err, rc, "%s", derr.msg);
    }
    if (rc) return violation(s, rc, err, derr.msg);
    if (!s->started) {
        rc = tr_err_set(err, TR_EINVAL, "session not started");
    } else if (!s->got_hello) {
        rc = f.type == TR_FRAME_HELLO ? on_hello(s, &f, err)
                                      : violation(s, TR_EPROTO, err, "expected hello first");
    } else {
        switch (f.type) {
        case TR_FRAME_HELLO: rc = on_hello(s, &f, err); break;
        case TR_FRAME_HAVE: rc = on_have(s, &f, err); break;
        case TR_FRAME_WANT: rc = on_want(s, &f, err); break;
        case TR_FRAME_OPS: rc = on_ops(s, &f, err); break;
        case TR_FRAME_ACK: rc = on_ack(s, &f, err); break;
        default: rc = on_nack(s, &f); break;
        }
    }
    tr_frame_clear(&f);
    return rc;
}

int tr_sync_changed(tr_sync_t *s, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                    tr_err_t *err)
{
    if (!tr_sync_established(s) || !is_shared(s, repo)) return TR_OK;
    tr_frame_t f = {0};
    int rc = s->h.have(s->h.host, repo, branch, &f);
    if (rc) return tr_err_set(err, rc, "cannot read repository state");
    f.type = TR_FRAME_HAVE;
    f.has_repo = true;
    memcpy(f.repo, repo, TR_REPO_ID_LEN);
    rc = push_frame(s, &f, err);
    tr_frame_clear(&f);
    return rc;
}

/* A want that got no answer for this many anti-entropy rounds is given up
 * and asked again (with a new id, which also ends the peer's old stream):
 * a lost frame must not stall a branch for the rest of the session. */
#define SYNC_WANT_TICKS 2

int tr_sync_tick(tr_sync_t *s, tr_err_t *err)
{
    for (size_t i = 0; i < s->nshared; i++) {
        int rc = tr_sync_changed(s, s->shared[i], NULL, err);
        if (rc) return rc;
    }
    for (size_t i = 0; i < s->nbr; i++) {
        br_t *b = s->br[i];
        if (!b->wanting || ++b->quiet < SYNC_WANT_TICKS) continue;
        b->wanting = false;
        held_clear(b);
        int rc = maybe_want(s, b, err);
        if (rc) return rc;
    }
    return tr_sync_pump(s, err);
}

void tr_sync_peer_branches(const tr_sync_t *s, tr_sync_branch_fn fn, void *arg)
{
    for (size_t i = 0; i < s->nbr; i++) {
        const br_t *b = s->br[i];
        if (b->peer_known && fn(arg, b->repo, b->branch, b->peer_count)) return;
    }
}
