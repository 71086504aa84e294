/* control.c — the control socket (docs/control.md): one JSON request in, one
 * JSON reply out, on a ROUTER bound to ipc://<runtime dir>/control. A bad
 * request gets an error reply, never a crash; requests that must wait for
 * the network (sync.now, clone) are answered later from a timer. */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/tr_log.h"

#define CONTROL_MAX (64 * 1024)
#define CONTROL_WAIT_MS 50
#define CONTROL_DEFAULT_TIMEOUT_MS 10000

/* A request answered later. */
typedef struct {
    zmsg_t *envelope; /* routing id (+ empty delimiter for REQ clients) */
    int kind;         /* WAIT_SYNC, WAIT_CLONE */
    int64_t deadline;
    int64_t not_before;
    uint8_t repo[TR_REPO_ID_LEN];
    char path[PATH_MAX];
} waiter_t;

enum { WAIT_SYNC, WAIT_CLONE };

#define CONTROL_MAX_WAITERS 64

struct control {
    waiter_t *waiters[CONTROL_MAX_WAITERS];
    size_t nwaiters;
    int timer; /* the waiters' timer while any wait, else -1 */
    int lock_fd;
    char path[PATH_MAX];
};

static int on_wait(zloop_t *loop, int timer_id, void *arg);

/* ---- replies ------------------------------------------------------------ */

static void reply(agent_t *a, zmsg_t *env, json_t *body)
{
    /* A body jansson could not build (a message that is not UTF-8, out of
     * memory) still gets an answer: a client must never wait in vain. */
    if (!body)
        body = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", "internal", "message",
                         "the agent could not encode its reply");
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    zmsg_t *m = zmsg_dup(env);
    if (m && text) {
        zmsg_addstr(m, text);
        zmsg_send(&m, a->control);
    }
    zmsg_destroy(&m);
    free(text);
}

static json_t *ok(json_t *result)
{
    return json_pack("{s:b,s:o}", "ok", 1, "result", result ? result : json_object());
}

static json_t *fail(int code, const char *fmt, ...) TR_PRINTF(2, 3);
static json_t *fail(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Truncation may cut a UTF-8 sequence; JSON needs whole characters. */
    size_t n = strlen(msg);
    while (n > 0 && !tr_utf8_valid(msg, n)) msg[--n] = '\0';
    return json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", tr_errname(code), "message",
                     msg);
}

static json_t *fail_err(const tr_err_t *e)
{
    return fail(e->code, "%s", e->msg[0] ? e->msg : tr_strerror(e->code));
}

/* ---- objects ------------------------------------------------------------ */

static void iso_time(char *out, size_t n, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *repo_json(const served_t *r)
{
    char id[2 * TR_REPO_ID_LEN + 1];
    tr_hex(id, r->id, TR_REPO_ID_LEN);
    uint64_t count = 0;
    (void)tr_store_count(tr_repo_store(r->repo), &count, NULL);
    return json_pack("{s:s,s:s,s:I,s:b}", "path", r->path, "repo", id, "ops", (json_int_t)count,
                     "default", r->is_default);
}

static bool peer_connected(const agent_t *a, const peer_t *p)
{
    for (size_t i = 0; i < a->nsessions; i++)
        if (a->sessions[i]->peer == p && !a->sessions[i]->dead &&
            tr_sync_established(a->sessions[i]->sync))
            return true;
    return false;
}

/* Pending counts from the peer's last haves against our own counts. */
typedef struct {
    agent_t *a;
    int64_t in, out;
    json_t *branches; /* optional detail */
} pend_t;

static int pend_branch(void *arg, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                       uint64_t theirs)
{
    pend_t *p = arg;
    served_t *r = repos_find_id(p->a, repo);
    if (!r) return 0;
    tr_branch_info_t info;
    uint64_t ours = tr_store_branch(tr_repo_store(r->repo), branch, &info, NULL) == TR_OK
                        ? info.count : 0;
    if (theirs > ours) p->in += (int64_t)(theirs - ours);
    if (ours > theirs) p->out += (int64_t)(ours - theirs);
    if (p->branches) {
        char id[2 * TR_REPO_ID_LEN + 1];
        tr_hex(id, repo, TR_REPO_ID_LEN);
        json_array_append_new(p->branches,
                              json_pack("{s:s,s:s,s:I,s:I,s:I,s:I}", "repo", id, "name", branch,
                                        "ours", (json_int_t)ours, "theirs", (json_int_t)theirs,
                                        "pending_in", (json_int_t)(theirs > ours ? theirs - ours : 0),
                                        "pending_out", (json_int_t)(ours > theirs ? ours - theirs : 0)));
    }
    return 0;
}

static json_t *peer_json(agent_t *a, const peer_t *p, bool detail)
{
    char id[TR_PEER_ID_STRLEN + 1] = "", fp[TR_FINGERPRINT_STRLEN + 1] = "", key[65] = "",
         seen[32] = "";
    if (p->has_key) {
        tr_peer_id(id, p->key);
        tr_peer_fingerprint(fp, p->key);
        tr_hex(key, p->key, TR_KEY_LEN);
    } else {
        char z[41];
        zmq_z85_encode(z, p->curve, 32);
        snprintf(fp, sizeof fp, "curve:%.12s", z);
    }
    static const char *const sources[] = {"static", "discovered", "knock"};
    json_t *addrs = json_array(), *repos = json_array();
    if (p->endpoint[0]) json_array_append_new(addrs, json_string(p->endpoint));
    for (size_t i = 0; i < sizeof p->addresses / sizeof p->addresses[0]; i++)
        if (p->addresses[i][0]) json_array_append_new(addrs, json_string(p->addresses[i]));
    for (size_t i = 0; i < p->nrepos; i++) {
        char rid[2 * TR_REPO_ID_LEN + 1];
        tr_hex(rid, p->repos[i], TR_REPO_ID_LEN);
        json_array_append_new(repos, json_string(rid));
    }
    pend_t pd = {a, 0, 0, detail ? json_array() : NULL};
    for (size_t i = 0; i < a->nsessions; i++)
        if (a->sessions[i]->peer == p && !a->sessions[i]->dead) {
            tr_sync_peer_branches(a->sessions[i]->sync, pend_branch, &pd);
            break;
        }
    if (p->last_seen_ms) iso_time(seen, sizeof seen, p->last_seen_ms);
    json_t *o = json_pack("{s:s?,s:s,s:s?,s:s,s:o,s:b,s:b,s:s,s:s?,s:o,s:I,s:I}", "id",
                          p->has_key ? id : NULL, "fingerprint", fp, "key",
                          p->has_key ? key : NULL, "name", p->name, "addresses", addrs,
                          "trusted", p->trusted, "connected", peer_connected(a, p), "source",
                          sources[p->source], "last_seen", seen[0] ? seen : NULL, "repos", repos,
                          "pending_in", (json_int_t)pd.in, "pending_out", (json_int_t)pd.out);
    json_object_set_new(o, "present", json_boolean(p->present || (p->source != PEER_DISCOVERED && peer_connected(a, p))));
    if (pd.branches) json_object_set_new(o, "branches", pd.branches);
    return o;
}

/* ---- commands ----------------------------------------------------------- */

static const char *arg_str(json_t *args, const char *key)
{
    json_t *v = json_object_get(args, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int resolve_path(const char *in, char out[PATH_MAX], tr_err_t *err)
{
    if (!in || !in[0]) return tr_err_set(err, TR_EINVAL, "missing argument: path");
    if (!realpath(in, out)) return tr_err_set(err, TR_ENOTFOUND, "%s: %s", in, strerror(errno));
    return TR_OK;
}

static peer_t *find_peer_arg(agent_t *a, const char *idtext, tr_err_t *err)
{
    uint8_t key[TR_KEY_LEN];
    if (!idtext) {
        tr_err_set(err, TR_EINVAL, "missing argument: id");
        return NULL;
    }
    if (tr_peer_id_parse(idtext, key, err)) return NULL;
    return peers_find_key(a, key);
}

static json_t *cmd_repo_add(agent_t *a, json_t *args)
{
    char path[PATH_MAX];
    tr_err_t err;
    served_t *r;
    if (resolve_path(arg_str(args, "path"), path, &err) ||
        repos_add(a, path, false, &r, &err) || agent_config_save(a, &err))
        return fail_err(&err);
    agent_reshare(a);
    return ok(repo_json(r));
}

static json_t *cmd_repo_rm(agent_t *a, json_t *args)
{
    char path[PATH_MAX];
    tr_err_t err;
    const char *p = arg_str(args, "path");
    if (resolve_path(p, path, &err)) snprintf(path, sizeof path, "%s", p ? p : "");
    served_t *r = repos_find_path(a, path);
    if (r && r->is_default) return fail(TR_EINVAL, "the default repository cannot be removed");
    if (repos_remove(a, path, &err) || agent_config_save(a, &err)) return fail_err(&err);
    agent_reshare(a);
    return ok(NULL);
}

static json_t *cmd_repo_list(agent_t *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->nrepos; i++) json_array_append_new(arr, repo_json(a->repos[i]));
    return ok(arr);
}

static json_t *cmd_changed(agent_t *a, json_t *args)
{
    char path[PATH_MAX];
    tr_err_t err;
    if (resolve_path(arg_str(args, "path"), path, &err)) return fail_err(&err);
    served_t *r = repos_find_path(a, path);
    if (!r) return ok(json_pack("{s:b}", "served", 0)); /* not ours: nothing to push */
    uint64_t count;
    if (tr_store_count(tr_repo_store(r->repo), &count, NULL) == TR_OK) r->last_count = count;
    agent_push(a, r->id, arg_str(args, "branch"));
    return ok(json_pack("{s:b}", "served", 1));
}

static json_t *cmd_peers(agent_t *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < a->npeers; i++) json_array_append_new(arr, peer_json(a, a->peers[i], false));
    return ok(arr);
}

static json_t *cmd_peer_add(agent_t *a, json_t *args)
{
    const char *ep = arg_str(args, "endpoint"), *keytext = arg_str(args, "key");
    uint8_t key[TR_KEY_LEN];
    tr_err_t err;
    peer_t *p;
    if (!ep || !keytext) return fail(TR_EINVAL, "peer.add needs endpoint and key");
    if (tr_peer_id_parse(keytext, key, &err) ||
        peers_add(a, key, arg_str(args, "name"), ep, PEER_STATIC, true, &p, &err) ||
        agent_write_trust(a, &err) || agent_config_save(a, &err) ||
        agent_connect_peer(a, p, &err))
        return fail_err(&err);
    return ok(peer_json(a, p, false));
}

static json_t *cmd_peer_trust(agent_t *a, json_t *args, bool trust)
{
    tr_err_t err = {0};
    const char *idtext = arg_str(args, "id");
    peer_t *p = find_peer_arg(a, idtext, &err);
    if (!p && trust && idtext && err.code == TR_OK) {
        /* Trusting a key we have not seen yet is allowed: it may knock later. */
        uint8_t key[TR_KEY_LEN];
        if (tr_peer_id_parse(idtext, key, &err) ||
            peers_add(a, key, NULL, NULL, PEER_DISCOVERED, true, &p, &err))
            return fail_err(&err);
    }
    if (!p) return err.code ? fail_err(&err) : fail(TR_ENOTFOUND, "no peer %s", idtext);
    p->trusted = trust;
    if (agent_write_trust(a, &err) || agent_config_save(a, &err)) return fail_err(&err);
    if (trust) {
        if (agent_connect_peer(a, p, &err)) return fail_err(&err);
    } else {
        agent_disconnect_peer(a, p);
        for (size_t i = 0; i < a->nsessions; i++)
            if (a->sessions[i]->peer == p) a->sessions[i]->dead = true;
    }
    return ok(peer_json(a, p, false));
}

static json_t *cmd_sync_status(agent_t *a)
{
    json_t *repos = json_array(), *peers = json_array();
    for (size_t i = 0; i < a->nrepos; i++) json_array_append_new(repos, repo_json(a->repos[i]));
    for (size_t i = 0; i < a->npeers; i++)
        if (a->peers[i]->trusted) json_array_append_new(peers, peer_json(a, a->peers[i], true));
    return ok(json_pack("{s:s,s:o,s:o}", "listen", a->bound, "repos", repos, "peers", peers));
}

static int add_waiter(agent_t *a, zmsg_t *env, int kind, int64_t timeout_ms,
                      const uint8_t *repo, const char *path)
{
    struct control *c = a->ctl;
    if (c->nwaiters == CONTROL_MAX_WAITERS) return TR_EBUSY;
    waiter_t *w = calloc(1, sizeof *w);
    if (!w) return TR_ENOMEM;
    w->envelope = zmsg_dup(env);
    w->kind = kind;
    w->not_before = agent_now_ms() + 2 * CONTROL_WAIT_MS;
    w->deadline = agent_now_ms() + timeout_ms;
    if (repo) memcpy(w->repo, repo, TR_REPO_ID_LEN);
    if (path) snprintf(w->path, sizeof w->path, "%s", path);
    c->waiters[c->nwaiters++] = w;
    if (c->timer < 0) c->timer = zloop_timer(a->loop, CONTROL_WAIT_MS, 0, on_wait, a);
    return TR_OK;
}

static int64_t arg_timeout(json_t *args)
{
    json_t *t = json_object_get(args, "timeout_ms");
    int64_t ms = json_is_integer(t) ? (int64_t)json_integer_value(t) : CONTROL_DEFAULT_TIMEOUT_MS;
    return ms < 100 ? 100 : ms > 600000 ? 600000 : ms;
}

static json_t *cmd_sync_now(agent_t *a, json_t *args, zmsg_t *env)
{
    tr_err_t err;
    for (size_t i = 0; i < a->nsessions; i++)
        if (!a->sessions[i]->dead) (void)tr_sync_tick(a->sessions[i]->sync, &err);
    agent_flush(a);
    int rc = add_waiter(a, env, WAIT_SYNC, arg_timeout(args), NULL, NULL);
    return rc ? fail(rc, "too many requests waiting") : NULL;
}

static json_t *cmd_clone(agent_t *a, json_t *args, zmsg_t *env)
{
    const char *hex = arg_str(args, "repo"), *path = arg_str(args, "path");
    uint8_t id[TR_REPO_ID_LEN];
    tr_err_t err;
    if (!hex || strlen(hex) != 2 * TR_REPO_ID_LEN || tr_unhex(id, TR_REPO_ID_LEN, hex, strlen(hex)))
        return fail(TR_EINVAL, "clone needs a repository id of 32 hex digits");
    if (!path || path[0] != '/') return fail(TR_EINVAL, "clone needs an absolute path");
    if (repos_find_id(a, id)) return fail(TR_EEXIST, "repository %s is already served here", hex);
    bool offered = false;
    for (size_t i = 0; i < a->npeers && !offered; i++) {
        peer_t *p = a->peers[i];
        if (!p->trusted || !peer_connected(a, p)) continue;
        for (size_t k = 0; k < p->nrepos && !offered; k++)
            offered = memcmp(p->repos[k], id, TR_REPO_ID_LEN) == 0;
    }
    if (!offered)
        return fail(TR_ENOTFOUND, "no connected trusted peer serves repository %s", hex);
    tr_repo_t *repo = NULL;
    if (tr_repo_init_id(path, id, &repo, &err)) return fail_err(&err);
    tr_repo_destroy(&repo);
    served_t *r;
    if (repos_add(a, path, false, &r, &err) || agent_config_save(a, &err)) return fail_err(&err);
    agent_reshare(a);
    int rc = add_waiter(a, env, WAIT_CLONE, arg_timeout(args), id, r->path);
    return rc ? fail(rc, "too many requests waiting") : NULL;
}

/* Answers waiting requests whose condition holds or whose time ran out. */
static int on_wait(zloop_t *loop, int timer_id, void *arg)
{
    agent_t *a = arg;
    struct control *c = a->ctl;
    int64_t now = agent_now_ms();
    size_t k = 0;
    bool idle = agent_sessions_idle(a);
    for (size_t i = 0; i < c->nwaiters; i++) {
        waiter_t *w = c->waiters[i];
        bool due = now >= w->deadline, done = now >= w->not_before && idle;
        json_t *body = NULL;
        if (w->kind == WAIT_SYNC && (done || due)) {
            size_t n = 0;
            for (size_t s = 0; s < a->nsessions; s++)
                n += !a->sessions[s]->dead && tr_sync_established(a->sessions[s]->sync);
            body = ok(json_pack("{s:b,s:I}", "synced", done, "peers", (json_int_t)n));
        } else if (w->kind == WAIT_CLONE && (done || due)) {
            served_t *r = repos_find_id(a, w->repo);
            uint64_t count = 0;
            if (r) (void)tr_store_count(tr_repo_store(r->repo), &count, NULL);
            /* Complete once ops arrived and every session went quiet, or once
             * quiet for a second (an empty repository has nothing to send). */
            bool quiet = done && (count > 0 || now >= w->not_before + 1000);
            if (!r)
                body = fail(TR_ENOTFOUND, "the clone was removed while syncing");
            else if (quiet)
                body = ok(repo_json(r));
            else if (due)
                body = fail(TR_EUNREACH, "timed out before the first sync completed; the agent "
                                         "keeps syncing %s", r->path);
        }
        if (body) {
            reply(a, w->envelope, body);
            zmsg_destroy(&w->envelope);
            free(w);
        } else {
            c->waiters[k++] = w;
        }
    }
    c->nwaiters = k;
    if (k == 0) { /* nothing waits: no timer, no wakeups */
        zloop_timer_end(loop, timer_id);
        c->timer = -1;
    }
    return 0;
}

/* ---- the socket --------------------------------------------------------- */

int control_on_request(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    agent_t *a = arg;
    zmsg_t *m = zmsg_recv(sock);
    if (!m) return 0;
    /* Envelope: routing id, then an empty delimiter for REQ clients. */
    zmsg_t *env = zmsg_new();
    zframe_t *rid = zmsg_pop(m);
    zmsg_append(env, &rid);
    zframe_t *f = zmsg_first(m);
    if (f && zframe_size(f) == 0) {
        zframe_t *delim = zmsg_pop(m);
        zmsg_append(env, &delim);
    }
    json_t *body = NULL;
    zframe_t *req = zmsg_first(m);
    if (!req || zmsg_size(m) != 1 || zframe_size(req) > CONTROL_MAX) {
        body = fail(TR_EINVAL, "a request is one JSON object of at most 64 KiB");
    } else {
        json_error_t je;
        json_t *j = json_loadb((const char *)zframe_data(req), zframe_size(req),
                               JSON_REJECT_DUPLICATES, &je);
        const char *cmd = j ? arg_str(j, "cmd") : NULL;
        json_t *args = j ? json_object_get(j, "args") : NULL;
        if (!j || !json_is_object(j)) body = fail(TR_EINVAL, "request is not a JSON object");
        else if (!cmd) body = fail(TR_EINVAL, "request has no \"cmd\"");
        else if (args && !json_is_object(args)) body = fail(TR_EINVAL, "\"args\" must be an object");
        else if (!strcmp(cmd, "ping"))
            body = ok(json_pack("{s:s,s:I,s:s}", "version", "0.1.0", "pid", (json_int_t)getpid(),
                                "listen", a->bound));
        else if (!strcmp(cmd, "repo.add")) body = cmd_repo_add(a, args);
        else if (!strcmp(cmd, "repo.rm")) body = cmd_repo_rm(a, args);
        else if (!strcmp(cmd, "repo.list")) body = cmd_repo_list(a);
        else if (!strcmp(cmd, "changed")) body = cmd_changed(a, args);
        else if (!strcmp(cmd, "peers")) body = cmd_peers(a);
        else if (!strcmp(cmd, "peer.add")) body = cmd_peer_add(a, args);
        else if (!strcmp(cmd, "peer.trust")) body = cmd_peer_trust(a, args, true);
        else if (!strcmp(cmd, "peer.untrust")) body = cmd_peer_trust(a, args, false);
        else if (!strcmp(cmd, "sync.status")) body = cmd_sync_status(a);
        else if (!strcmp(cmd, "sync.now")) body = cmd_sync_now(a, args, env);
        else if (!strcmp(cmd, "clone")) body = cmd_clone(a, args, env);
        else body = fail(TR_EINVAL, "unknown command \"%s\"", cmd);
        json_decref(j);
    }
    if (body) reply(a, env, body); /* NULL: answered later by on_wait */
    zmsg_destroy(&env);
    zmsg_destroy(&m);
    return 0;
}

int control_open(agent_t *a, tr_err_t *err)
{
    const char *dir = tr_home_runtime(a->home);
    struct control *c = a->ctl = calloc(1, sizeof *c);
    if (!c) return tr_err_set(err, TR_ENOMEM, "out of memory");
    c->timer = -1;
    c->lock_fd = -1;
    int rc = tr_home_mkdir(dir, err);
    if (rc) return rc;
    if (chmod(dir, 0700) != 0)
        return tr_err_set(err, TR_EPERM, "cannot make %s private: %s", dir, strerror(errno));
    /* One agent per user: a lock held for the life of the process. Binding
     * ipc:// would otherwise silently take the socket of a running agent. */
    char lock[PATH_MAX];
    snprintf(lock, sizeof lock, "%s/trellisd.lock", dir);
    c->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->lock_fd < 0) return tr_err_set(err, TR_EIO, "cannot open %s: %s", lock, strerror(errno));
    if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(c->lock_fd);
        c->lock_fd = -1;
        return tr_err_set(err, TR_EBUSY, "another trellisd is already running for this user (%s)",
                          lock);
    }
    snprintf(c->path, sizeof c->path, "%s/control", dir);
    a->control = zsock_new(ZMQ_ROUTER);
    if (!a->control) return tr_err_set(err, TR_ENOMEM, "cannot create the control socket");
    zsock_set_linger(a->control, 0);
    zsock_set_maxmsgsize(a->control, CONTROL_MAX + 1024);
    if (zsock_bind(a->control, "ipc://%s", c->path) != 0)
        return tr_err_set(err, TR_EIO, "cannot bind the control socket %s: %s", c->path,
                          zmq_strerror(zmq_errno()));
    chmod(c->path, 0600);
    return TR_OK;
}

void control_close(agent_t *a)
{
    struct control *c = a->ctl;
    zsock_destroy(&a->control);
    if (!c) return;
    for (size_t i = 0; i < c->nwaiters; i++) {
        zmsg_destroy(&c->waiters[i]->envelope);
        free(c->waiters[i]);
    }
    if (c->path[0]) unlink(c->path);
    if (c->lock_fd >= 0) close(c->lock_fd); /* after the unlink: a new agent may start now */
    free(c);
    a->ctl = NULL;
}
