/*
 * host.c — the sync host: tr_sync_host_t (core/tr_sync.h) over the stores of
 * the served repositories.
 *
 * The file has two layers:
 *
 *   hs_*     the store-facing callbacks: have frames, version vectors,
 *            cursors, prev lookups, integration. They find a repository's
 *            store through four *binding* functions declared below and know
 *            nothing else about the agent;
 *   binding  host_store / host_serves / host_repos / host_event, defined at
 *            the end for the agent (a session's agent_t, its served repos
 *            and agent_sync_event).
 *
 * tests/unit/test_sync.c compiles this file with HOST_STORE_ONLY defined,
 * which leaves the agent binding (and agent.h, czmq) out, and supplies its
 * own binding over test replicas: the protocol tests run the very code the
 * agent runs, on real stores, without sockets.
 *
 * Costs: a `have` reads per branch its record, ≤ 64 heads and its version
 * vector — O(branches + authors), never O(history). Cursors are store sync
 * cursors (tr_store.h): positions only between calls, one read snapshot per
 * call, the records of one frame copied into cursor-owned memory.
 */
#ifndef HOST_STORE_ONLY
#include "agent.h"
#else
#include "../../core/tr_sync.h"
#include "../../store/tr_store.h"
#endif

#include <stdlib.h>
#include <string.h>

/* ---- binding (defined at the end for the agent, or by a test) ----------- */

/* The store of repository `repo` if it is served, else NULL (borrowed). */
static tr_store_t *host_store(void *host, const uint8_t repo[TR_REPO_ID_LEN]);
/* Is `repo` served to this session's peer? */
static bool host_serves(void *host, const uint8_t repo[TR_REPO_ID_LEN]);
/* The ids served to this session's peer, sorted and unique (caller frees). */
static int host_repos(void *host, uint8_t (**ids)[TR_REPO_ID_LEN], size_t *n);
/* A protocol event of this session. */
static void host_event(void *host, const tr_sync_event_t *ev);

/* A tr_sync_cursor_t: the repository it reads and its store cursor. The
 * store is looked up again on every call, so a repository removed while a
 * stream is open ends that stream instead of leaving a dangling pointer. */
struct tr_sync_cursor {
    uint8_t repo[TR_REPO_ID_LEN];
    tr_store_cursor_t *c;
};

/* ---- store-facing callbacks ---------------------------------------------- */

static bool hs_serves(void *host, const uint8_t repo[TR_REPO_ID_LEN])
{
    return host_serves(host, repo);
}

static int hs_repos(void *host, uint8_t (**ids)[TR_REPO_ID_LEN], size_t *n)
{
    return host_repos(host, ids, n);
}

typedef struct {
    tr_vv_t *vv;
    size_t cap;
} vv_ctx_t;

static int vv_add(void *arg, const uint8_t author[TR_KEY_LEN], uint64_t seq,
                  const uint8_t hash[TR_HASH_LEN])
{
    (void)hash;
    vv_ctx_t *c = arg;
    tr_vv_t *vv = c->vv;
    if (vv->n == TR_VV_MAX) return TR_ETOOBIG;
    if (vv->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        tr_vv_entry_t *v = realloc(vv->v, cap * sizeof *v);
        if (!v) return TR_ENOMEM;
        vv->v = v;
        c->cap = cap;
    }
    memcpy(vv->v[vv->n].key, author, TR_KEY_LEN);
    vv->v[vv->n++].seq = seq;
    return TR_OK;
}

/* A branch's version vector, sorted by key (the store's `vv` table is keyed
 * by branch id then author, so it comes out sorted). An unknown branch has
 * an empty one. On failure *out is empty. */
static int vv_read(tr_store_t *st, const char *branch, tr_vv_t *out, tr_err_t *err)
{
    vv_ctx_t c = {out, 0};
    out->v = NULL;
    out->n = 0;
    int rc = tr_store_vv(st, branch, vv_add, &c, err);
    if (rc == TR_ETOOBIG)
        rc = tr_err_set(err, rc, "branch '%s' has more than %d authors", branch, TR_VV_MAX);
    if (rc == TR_ENOMEM) rc = tr_err_set(err, rc, "out of memory");
    if (rc == TR_ENOTFOUND) rc = TR_OK;
    if (rc) {
        free(out->v);
        out->v = NULL;
        out->n = 0;
    }
    return rc;
}

static int hs_vv(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch, tr_vv_t *out)
{
    tr_store_t *st = host_store(host, repo);
    out->v = NULL;
    out->n = 0;
    return st ? vv_read(st, branch, out, NULL) : TR_ENOTFOUND;
}

typedef struct {
    tr_store_t *st;
    tr_frame_t *f;
    size_t cap;
    int rc;
} have_ctx_t;

/* Appends one branch to a have frame: count, ≤ 64 heads (sorted), vv. */
static int have_add(void *arg, const char *name, const tr_branch_info_t *info)
{
    have_ctx_t *c = arg;
    tr_frame_t *f = c->f;
    if (f->nbranches == TR_HAVE_MAX_BRANCHES) return 1; /* the frame is full: stop */
    if (f->nbranches == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 4;
        tr_have_branch_t *nb = realloc(f->branches, cap * sizeof *nb);
        if (!nb) return c->rc = TR_ENOMEM;
        f->branches = nb;
        c->cap = cap;
    }
    tr_have_branch_t *b = &f->branches[f->nbranches];
    memset(b, 0, sizeof *b);
    snprintf(b->name, sizeof b->name, "%s", name);
    b->count = info->count;
    b->nheads = info->nheads < TR_HAVE_MAX_HEADS ? info->nheads : TR_HAVE_MAX_HEADS;
    if (b->nheads > TR_BRANCH_HEADS_MAX) b->nheads = TR_BRANCH_HEADS_MAX;
    if (b->nheads) {
        b->heads = malloc(b->nheads * TR_HASH_LEN);
        if (!b->heads) return c->rc = TR_ENOMEM;
        memcpy(b->heads, info->heads, b->nheads * TR_HASH_LEN);
    }
    f->nbranches++; /* from here tr_frame_clear frees what b holds */
    int rc = vv_read(c->st, name, &b->vv, NULL);
    return rc ? (c->rc = rc) : 0;
}

/* Fills a have frame: every branch (the first TR_HAVE_MAX_BRANCHES by name)
 * or only `branch` (none if it has no ops here). */
static int hs_have(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                   tr_frame_t *out)
{
    memset(out, 0, sizeof *out);
    out->type = TR_FRAME_HAVE;
    out->has_repo = true;
    memcpy(out->repo, repo, TR_REPO_ID_LEN);
    tr_store_t *st = host_store(host, repo);
    if (!st) return TR_ENOTFOUND;
    have_ctx_t c = {st, out, 0, TR_OK};
    int rc;
    if (branch) {
        tr_branch_info_t info;
        rc = tr_store_branch(st, branch, &info, NULL);
        if (rc == TR_ENOTFOUND) return TR_OK;
        if (rc == TR_OK) {
            have_add(&c, branch, &info);
            rc = c.rc;
        }
    } else {
        rc = tr_store_branches(st, have_add, &c, NULL);
        if (rc == 1) rc = TR_OK;
        if (c.rc) rc = c.rc;
    }
    if (rc) tr_frame_clear(out);
    return rc;
}

static bool hs_linear(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch)
{
    tr_store_t *st = host_store(host, repo);
    if (!st) return false;
    tr_branch_policy_t pol;
    tr_store_policy(st, branch, &pol);
    return pol.linear;
}

/* Holds op `hash` on `branch`: one hash-index lookup, no record copy. */
static bool hs_holds(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                     const uint8_t hash[TR_HASH_LEN])
{
    tr_store_t *st = host_store(host, repo);
    char name[TR_BRANCH_MAX + 1];
    return st && tr_store_get(st, hash, NULL, name, NULL, NULL) == TR_OK &&
           strcmp(name, branch) == 0;
}

static uint64_t want_from(void *arg, const uint8_t author[TR_KEY_LEN])
{
    return tr_vv_get(arg, author);
}

/* The cursor kind follows the local policy of the branch: a linear branch
 * streams its log after the peer's head (nil: from the start); a CRDT branch
 * streams what is above the peer's version vector. A peer whose policy for
 * the branch differs still gets a causal stream it can integrate. */
static int hs_cursor_open(void *host, const tr_frame_t *want, tr_sync_cursor_t **out, tr_err_t *err)
{
    *out = NULL;
    tr_store_t *st = host_store(host, want->repo);
    if (!st) return tr_err_set(err, TR_ENOTFOUND, "repository not served");
    tr_sync_cursor_t *c = calloc(1, sizeof *c);
    if (!c) return tr_err_set(err, TR_ENOMEM, "out of memory");
    memcpy(c->repo, want->repo, TR_REPO_ID_LEN);
    tr_branch_policy_t pol;
    tr_store_policy(st, want->branch, &pol);
    int rc = pol.linear
                 ? tr_store_cursor_linear(st, want->branch,
                                          want->has_after ? want->after_hash : NULL, &c->c, err)
                 : tr_store_cursor_vv(st, want->branch, want_from, (void *)&want->from, &c->c, err);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return TR_OK;
}

static int hs_cursor_next(void *host, tr_sync_cursor_t *c, size_t max_ops, size_t max_bytes,
                          const tr_op_t *const **ops, size_t *n, bool *done, tr_err_t *err)
{
    tr_store_t *st = host_store(host, c->repo);
    if (!st) return tr_err_set(err, TR_ENOTFOUND, "repository no longer served");
    return tr_store_cursor_next(st, c->c, max_ops, max_bytes, ops, n, done, err);
}

static void hs_cursor_close(void *host, tr_sync_cursor_t **c)
{
    (void)host;
    if (!c || !*c) return;
    tr_store_cursor_destroy(&(*c)->c);
    free(*c);
    *c = NULL;
}

static int hs_prev(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                   const uint8_t author[TR_KEY_LEN], uint64_t seq, uint8_t hash[TR_HASH_LEN])
{
    tr_store_t *st = host_store(host, repo);
    if (!st) return TR_ENOTFOUND;
    tr_buf_t rec = {0};
    int rc = tr_store_get_seq(st, branch, author, seq, &rec, NULL);
    if (rc == TR_OK) rc = tr_op_record_hash(rec.data, rec.len, hash);
    tr_buf_free(&rec);
    return rc;
}

static int hs_integrate(void *host, const uint8_t repo[TR_REPO_ID_LEN], const tr_rec_t *recs,
                        size_t n, int *status,
                        void (*refuse)(void *arg, size_t i, const uint8_t *hash, int code,
                                       const char *reason),
                        void *arg, tr_err_t *err)
{
    tr_store_t *st = host_store(host, repo);
    if (!st) return tr_err_set(err, TR_ENOTFOUND, "repository no longer served");
    return tr_store_integrate(st, recs, n, status, refuse, arg, err);
}

static void hs_event(void *host, const tr_sync_event_t *ev)
{
    host_event(host, ev);
}

/* Fills every callback of `h`; `host` is what the binding receives. */
static void hs_fill(tr_sync_host_t *h, void *host)
{
    *h = (tr_sync_host_t){
        .host = host,
        .serves = hs_serves,
        .repos = hs_repos,
        .have = hs_have,
        .linear = hs_linear,
        .holds = hs_holds,
        .cursor_open = hs_cursor_open,
        .cursor_next = hs_cursor_next,
        .cursor_close = hs_cursor_close,
        .prev = hs_prev,
        .integrate = hs_integrate,
        .vv = hs_vv,
        .event = hs_event,
    };
}

/* ---- the agent's binding ------------------------------------------------- */
#ifndef HOST_STORE_ONLY

static tr_store_t *host_store(void *host, const uint8_t repo[TR_REPO_ID_LEN])
{
    session_t *s = host;
    served_t *r = repos_find_id(s->a, repo);
    return r ? tr_repo_store(r->repo) : NULL;
}

/* Every served repository goes to every trusted peer (sessions exist only
 * for trusted peers; the check guards the moment between untrust and the
 * session's reaping). */
static bool host_serves(void *host, const uint8_t repo[TR_REPO_ID_LEN])
{
    session_t *s = host;
    return s->peer && s->peer->trusted && repos_find_id(s->a, repo) != NULL;
}

static int id_cmp(const void *x, const void *y)
{
    return memcmp(x, y, TR_REPO_ID_LEN);
}

static int host_repos(void *host, uint8_t (**ids)[TR_REPO_ID_LEN], size_t *n)
{
    session_t *s = host;
    agent_t *a = s->a;
    *ids = NULL;
    *n = 0;
    if (!s->peer || !s->peer->trusted || a->nrepos == 0) return TR_OK;
    uint8_t(*v)[TR_REPO_ID_LEN] = malloc(a->nrepos * TR_REPO_ID_LEN);
    if (!v) return TR_ENOMEM;
    for (size_t i = 0; i < a->nrepos; i++) memcpy(v[i], a->repos[i]->id, TR_REPO_ID_LEN);
    qsort(v, a->nrepos, TR_REPO_ID_LEN, id_cmp);
    /* repos_add refuses duplicate ids; a hello carries at most 1024. */
    *ids = v;
    *n = a->nrepos < TR_HELLO_MAX_REPOS ? a->nrepos : TR_HELLO_MAX_REPOS;
    return TR_OK;
}

static void host_event(void *host, const tr_sync_event_t *ev)
{
    agent_sync_event(host, ev);
}

void host_init(tr_sync_host_t *h, session_t *s)
{
    hs_fill(h, s);
}

#endif
