/* agent.c — trellisd's loop: ZAP (zauth) first, then the CURVE ROUTER, one
 * CURVE DEALER per peer with an endpoint, the control socket, sessions, and
 * the timers for anti-entropy and change polling (see agent.h). */
#include "agent.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../lib/tr_log.h"

int64_t agent_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Short display name of a peer for logs: its fingerprint, or "knock". */
static const char *peer_label(const peer_t *p, char buf[TR_FINGERPRINT_STRLEN + 1])
{
    if (!p || !p->has_key) return "unknown key";
    tr_peer_fingerprint(buf, p->key);
    return buf;
}

void agent_event(agent_t *a, const char *type, const peer_t *p, json_t *fields)
{
    if (!fields) fields = json_object();
    if (p && p->has_key) {
        char id[TR_PEER_ID_STRLEN + 1];
        tr_peer_id(id, p->key);
        json_object_set_new(fields, "peer", json_string(id));
        if (p->name[0]) json_object_set_new(fields, "name", json_string(p->name));
    }
    tr_events_emit(a->events, type, fields);
}

static json_t *repo_field(json_t *o, const uint8_t *repo)
{
    if (repo) {
        char hex[2 * TR_REPO_ID_LEN + 1];
        tr_hex(hex, repo, TR_REPO_ID_LEN);
        json_object_set_new(o, "repo", json_string(hex));
    }
    return o;
}

/* Applies the socket options every trellis socket shares. */
static void sock_common(zsock_t *s)
{
    zsock_set_sndhwm(s, AGENT_HWM);
    zsock_set_rcvhwm(s, AGENT_HWM);
    zsock_set_maxmsgsize(s, (int)TR_FRAME_MAX + 1024);
    zsock_set_linger(s, 0);
    zsock_set_heartbeat_ivl(s, 5000);
    zsock_set_heartbeat_timeout(s, 15000);
    zsock_set_heartbeat_ttl(s, 15000);
}

/* Loads our CURVE key pair (derived from the identity) into a zcert. */
static zcert_t *agent_cert(agent_t *a)
{
    uint8_t pk[32], sk[32];
    if (tr_identity_curve(a->id, pk, sk)) return NULL;
    zcert_t *c = zcert_new_from(pk, sk);
    sodium_memzero(sk, sizeof sk);
    return c;
}

/* ---- sessions ----------------------------------------------------------- */

static session_t *session_new(agent_t *a, peer_t *p, bool inbound, zsock_t *sock,
                              const uint8_t *rid, size_t rid_len)
{
    session_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->a = a;
    s->peer = p;
    s->inbound = inbound;
    s->sock = sock;
    if (rid_len > sizeof s->rid) rid_len = sizeof s->rid;
    if (rid_len) memcpy(s->rid, rid, rid_len);
    s->rid_len = rid_len;
    s->last_rx_ms = agent_now_ms();
    tr_sync_host_t h;
    host_init(&h, s);
    s->sync = tr_sync_new(&h, a->name);
    session_t **n = realloc(a->sessions, (a->nsessions + 1) * sizeof *n);
    tr_err_t err;
    if (!s->sync || !n || tr_sync_start(s->sync, &err)) {
        tr_sync_destroy(&s->sync);
        free(s);
        if (n) a->sessions = n;
        return NULL;
    }
    a->sessions = n;
    a->sessions[a->nsessions++] = s;
    return s;
}

static void session_free(session_t *s)
{
    if (s->peer && s->peer->out == s) s->peer->out = NULL;
    tr_sync_destroy(&s->sync);
    tr_buf_free(&s->pending);
    free(s);
}

/* Frees the sessions marked dead (never from inside their own callbacks). */
static void agent_reap(agent_t *a)
{
    size_t k = 0;
    for (size_t i = 0; i < a->nsessions; i++) {
        if (a->sessions[i]->dead)
            session_free(a->sessions[i]);
        else
            a->sessions[k++] = a->sessions[i];
    }
    a->nsessions = k;
}

/* Drops a peer that broke the protocol: its session dies, and its key is
 * refused for AGENT_BAN_MS (docs/protocol.md §3.6). */
static void session_drop(session_t *s, const char *why)
{
    char fp[TR_FINGERPRINT_STRLEN + 1];
    tr_log_warn("dropping peer %s (%s): %s", peer_label(s->peer, fp), s->peer->name, why);
    s->dead = true;
    s->peer->banned_until_ms = agent_now_ms() + AGENT_BAN_MS;
    if (!s->inbound) agent_disconnect_peer(s->a, s->peer);
}

/* Sends one frame; returns 0, or -1 with errno (EAGAIN: try later). */
static int session_send(session_t *s, const tr_buf_t *b)
{
    void *z = zsock_resolve(s->sock);
    if (s->inbound && zmq_send(z, s->rid, s->rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -1;
    return zmq_send(z, b->data, b->len, ZMQ_DONTWAIT) < 0 ? -1 : 0;
}

static int on_retry(zloop_t *loop, int timer_id, void *arg);

/* Writes what one session queued, as far as the socket takes it. */
static void session_flush(session_t *s)
{
    tr_err_t err;
    for (int rounds = 0; !s->dead && rounds < 1024; rounds++) {
        if (!s->has_pending) {
            if (!tr_sync_pop(s->sync, &s->pending)) {
                if (tr_sync_pump(s->sync, &err)) tr_log_warn("sync: %s", err.msg);
                if (!tr_sync_pop(s->sync, &s->pending)) return;
            }
            s->has_pending = true;
        }
        if (session_send(s, &s->pending) < 0) {
            if (errno == EAGAIN) {
                /* The peer is slow: retry shortly instead of queueing without
                 * bound (the HWM is the flow control). */
                if (!s->a->retry_armed) {
                    s->a->retry_armed = true;
                    zloop_timer(s->a->loop, 5, 1, on_retry, s->a);
                }
            } else if (errno == EHOSTUNREACH) {
                /* The connection went away (a restart, a network change):
                 * forget the session; the peer is welcome back at once. */
                s->dead = true;
            } else {
                session_drop(s, zmq_strerror(errno));
            }
            return;
        }
        s->has_pending = false;
    }
}

void agent_flush(agent_t *a)
{
    for (size_t i = 0; i < a->nsessions; i++) session_flush(a->sessions[i]);
    agent_reap(a);
}

static int on_retry(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    agent_t *a = arg;
    a->retry_armed = false;
    agent_flush(a);
    return 0;
}

/* Feeds one received frame to a session. */
static void session_recv(session_t *s, const uint8_t *data, size_t len)
{
    tr_err_t err;
    s->last_rx_ms = agent_now_ms();
    s->peer->last_seen_ms = wall_ms();
    if (tr_sync_recv(s->sync, data, len, &err) != TR_OK) {
        session_flush(s); /* let the nack out first */
        session_drop(s, err.msg);
    }
}

/* ---- sockets ------------------------------------------------------------ */

/* ROUTER: frames from peers that connected to us. The peer is the CURVE key
 * ZAP authenticated (User-Id), never anything claimed inside a frame. */
static int on_router(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    agent_t *a = arg;
    zmsg_t *m = zmsg_recv(sock);
    if (!m) return 0;
    zframe_t *rid = zmsg_first(m), *body = zmsg_next(m);
    if (!rid || !body || zmsg_size(m) != 2) {
        zmsg_destroy(&m);
        return 0;
    }
    const char *uid = zframe_meta(body, "User-Id");
    uint8_t curve[32];
    peer_t *p = NULL;
    if (uid && strlen(uid) == 40 && zmq_z85_decode(curve, uid)) p = peers_find_curve(a, curve);
    if (!p || !p->trusted || p->banned_until_ms > agent_now_ms()) {
        zmsg_destroy(&m);
        return 0;
    }
    session_t *s = NULL;
    for (size_t i = 0; i < a->nsessions && !s; i++) {
        session_t *x = a->sessions[i];
        if (x->inbound && !x->dead && x->rid_len == zframe_size(rid) &&
            memcmp(x->rid, zframe_data(rid), x->rid_len) == 0)
            s = x;
    }
    if (!s) {
        s = session_new(a, p, true, a->router, zframe_data(rid), zframe_size(rid));
        if (!s) {
            tr_log_err("out of memory creating a session");
            zmsg_destroy(&m);
            return 0;
        }
        char fp[TR_FINGERPRINT_STRLEN + 1];
        tr_log_info("peer %s (%s) connected to us", peer_label(p, fp), p->name);
        agent_event(a, "peer.connected", p, json_pack("{s:s}", "direction", "in"));
    }
    session_recv(s, zframe_data(body), zframe_size(body));
    zmsg_destroy(&m);
    agent_flush(a);
    return 0;
}

/* ROUTER monitor: a connection went away. libzmq does not say which routing
 * id it carried, so every inbound session is probed with an anti-entropy
 * `have`; with ROUTER_MANDATORY the send to a vanished peer fails with
 * EHOSTUNREACH and that session is reaped at once (instead of lingering
 * until AGENT_SESSION_IDLE_MS). */
static int on_router_monitor(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    agent_t *a = arg;
    zmsg_t *m = zmsg_recv(sock);
    zmsg_destroy(&m);
    tr_err_t err;
    for (size_t i = 0; i < a->nsessions; i++) {
        session_t *s = a->sessions[i];
        if (s->inbound && !s->dead && tr_sync_established(s->sync)) (void)tr_sync_tick(s->sync, &err);
    }
    agent_flush(a);
    return 0;
}

/* DEALER: frames from a peer we connected to. */
static int on_dealer(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    peer_t *p = arg;
    zframe_t *f = zframe_recv(sock);
    if (!f) return 0;
    if (p->out && !p->out->dead) session_recv(p->out, zframe_data(f), zframe_size(f));
    zframe_destroy(&f);
    agent_flush(p->agent);
    return 0;
}

/* libzmq gives up on a connection whose handshake was refused (the peer does
 * not trust us yet, or we hold a wrong key for it). Trust may come later, so
 * dial again after a back-off that doubles up to AGENT_RETRY_MAX_MS. The
 * redial happens from a timer, never inside the monitor's own callback,
 * because it replaces the monitor socket. */
static int on_redial(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    peer_t *p = arg;
    tr_err_t err;
    p->retry_timer = -1;
    if (p->trusted && agent_connect_peer(p->agent, p, &err) != TR_OK)
        tr_log_warn("cannot reconnect: %s", err.msg);
    return 0;
}

static void schedule_redial(agent_t *a, peer_t *p)
{
    if (p->retry_timer >= 0) return;
    p->retry_ms = p->retry_ms ? p->retry_ms * 2 : AGENT_RETRY_MIN_MS;
    if (p->retry_ms > AGENT_RETRY_MAX_MS) p->retry_ms = AGENT_RETRY_MAX_MS;
    p->retry_timer = zloop_timer(a->loop, (size_t)p->retry_ms, 1, on_redial, p);
}

/* Monitor of a DEALER: a session per completed CURVE handshake. */
static int on_monitor(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    peer_t *p = arg;
    agent_t *a = p->agent;
    zmsg_t *m = zmsg_recv(sock);
    if (!m) return 0;
    zframe_t *ev = zmsg_first(m);
    if (!ev || zframe_size(ev) < 6) {
        zmsg_destroy(&m);
        return 0;
    }
    uint16_t event;
    memcpy(&event, zframe_data(ev), 2);
    char fp[TR_FINGERPRINT_STRLEN + 1];
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        if (p->out) p->out->dead = true;
        agent_reap(a);
        p->out = session_new(a, p, false, p->dealer, NULL, 0);
        p->retry_ms = 0;
        tr_log_info("connected to peer %s (%s) at %s", peer_label(p, fp), p->name, p->dialed);
        agent_event(a, "peer.connected", p,
                    json_pack("{s:s,s:s}", "direction", "out", "endpoint", p->dialed));
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
        if (p->out) {
            tr_log_info("peer %s (%s) disconnected", peer_label(p, fp), p->name);
            p->out->dead = true;
            agent_event(a, "peer.disconnected", p, NULL);
        }
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
        tr_log_warn("peer %s at %s refused us: it does not trust this agent's key "
                    "(retrying in %d s)",
                    peer_label(p, fp), p->dialed, (p->retry_ms ? p->retry_ms * 2 : AGENT_RETRY_MIN_MS) / 1000);
        schedule_redial(a, p);
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
               event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
        tr_log_warn("CURVE handshake with %s failed (wrong server key?)", p->dialed);
        schedule_redial(a, p);
    }
    zmsg_destroy(&m);
    agent_flush(a);
    return 0;
}

int agent_connect_peer(agent_t *a, peer_t *p, tr_err_t *err)
{
    agent_disconnect_peer(a, p);
    const char *ep = p->endpoint[0] ? p->endpoint : p->addresses[0];
    if (!p->trusted || !p->has_key || !ep[0]) return TR_OK;
    snprintf(p->dialed, sizeof p->dialed, "%s", ep);
    zcert_t *cert = agent_cert(a);
    p->dealer = zsock_new(ZMQ_DEALER);
    if (!cert || !p->dealer) {
        zcert_destroy(&cert);
        return tr_err_set(err, TR_ENOMEM, "cannot create a socket");
    }
    sock_common(p->dealer);
    zsock_set_ipv6(p->dealer, 1);
    zsock_set_immediate(p->dealer, 1);
    zcert_apply(cert, p->dealer);
    zcert_destroy(&cert);
    zsock_set_curve_serverkey_bin(p->dealer, p->curve);
    static unsigned monitor_seq;
    char monep[64];
    snprintf(monep, sizeof monep, "inproc://trellis-mon-%u", ++monitor_seq);
    if (zmq_socket_monitor(zsock_resolve(p->dealer), monep,
                           ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0 ||
        !(p->monitor = zsock_new_pair(monep))) {
        agent_disconnect_peer(a, p);
        return tr_err_set(err, TR_EIO, "cannot monitor the connection to %s", p->dialed);
    }
    zloop_reader(a->loop, p->monitor, on_monitor, p);
    zloop_reader(a->loop, p->dealer, on_dealer, p);
    if (zsock_connect(p->dealer, "%s", p->dialed) != 0) {
        agent_disconnect_peer(a, p);
        return tr_err_set(err, TR_EINVAL, "cannot connect to %s: %s", p->dialed,
                          zmq_strerror(zmq_errno()));
    }
    return TR_OK;
}

void agent_disconnect_peer(agent_t *a, peer_t *p)
{
    if (p->retry_timer >= 0 && a->loop) zloop_timer_end(a->loop, p->retry_timer);
    p->retry_timer = -1;
    if (p->out) p->out->dead = true;
    p->out = NULL;
    for (size_t i = 0; i < a->nsessions; i++)
        if (a->sessions[i]->peer == p && !p->trusted) a->sessions[i]->dead = true;
    if (p->dealer) {
        zloop_reader_end(a->loop, p->dealer);
        zmq_socket_monitor(zsock_resolve(p->dealer), NULL, 0);
        zsock_destroy(&p->dealer);
    }
    if (p->monitor) {
        zloop_reader_end(a->loop, p->monitor);
        zsock_destroy(&p->monitor);
    }
}

/* zsys log lines: zauth reports each denied CURVE key; those are knocks. */
static int on_log(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void)loop;
    agent_t *a = arg;
    char *line = zstr_recv(sock);
    if (!line) return 0;
    const char *k = strstr(line, "denied (CURVE) client_key=");
    uint8_t curve[32];
    if (k) {
        k += strlen("denied (CURVE) client_key=");
        if (strlen(k) >= 40) {
            char z[41];
            memcpy(z, k, 40);
            z[40] = '\0';
            if (zmq_z85_decode(curve, z)) peers_knock(a, curve);
        }
    } else if (a->verbose > 1) {
        tr_log_debug("%s", line);
    }
    zstr_free(&line);
    return 0;
}

/* ---- pushes and timers -------------------------------------------------- */

void agent_push(agent_t *a, const uint8_t id[TR_REPO_ID_LEN], const char *branch)
{
    tr_err_t err;
    for (size_t i = 0; i < a->nsessions; i++) {
        session_t *s = a->sessions[i];
        if (!s->dead && tr_sync_changed(s->sync, id, branch, &err))
            tr_log_warn("cannot push to a peer: %s", err.msg);
    }
    agent_flush(a);
}

void agent_reshare(agent_t *a)
{
    disco_repos_changed(a);
    tr_err_t err;
    for (size_t i = 0; i < a->nsessions; i++)
        if (!a->sessions[i]->dead && tr_sync_served_changed(a->sessions[i]->sync, &err))
            tr_log_warn("cannot announce repositories: %s", err.msg);
    agent_flush(a);
}

bool agent_sessions_idle(const agent_t *a)
{
    for (size_t i = 0; i < a->nsessions; i++)
        if (!a->sessions[i]->dead && tr_sync_established(a->sessions[i]->sync) &&
            !tr_sync_idle(a->sessions[i]->sync))
            return false;
    return true;
}

static int on_anti_entropy(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    agent_t *a = arg;
    tr_err_t err;
    for (size_t i = 0; i < a->nsessions; i++)
        if (!a->sessions[i]->dead && tr_sync_tick(a->sessions[i]->sync, &err))
            tr_log_warn("anti-entropy: %s", err.msg);
    agent_flush(a);
    return 0;
}

static int on_poll(zloop_t *loop, int timer_id, void *arg)
{
    (void)loop;
    (void)timer_id;
    agent_t *a = arg;
    int64_t now = agent_now_ms();
    for (size_t i = 0; i < a->nsessions; i++) {
        session_t *s = a->sessions[i];
        if (s->inbound && now - s->last_rx_ms > AGENT_SESSION_IDLE_MS) s->dead = true;
    }
    agent_reap(a);
    repos_poll(a); /* pushes what other processes wrote */
    return 0;
}

/* ---- sync events -------------------------------------------------------- */

void agent_sync_event(session_t *s, const tr_sync_event_t *ev)
{
    char fp[TR_FINGERPRINT_STRLEN + 1], h[17] = "";
    const char *who = peer_label(s->peer, fp);
    if (ev->hash) tr_hash_short(h, ev->hash, 16);
    switch (ev->type) {
    case TR_SYNC_EV_HELLO: {
        const tr_frame_t *hf = ev->hello;
        peer_t *p = s->peer;
        free(p->repos);
        p->repos = NULL;
        p->nrepos = 0;
        if (hf->nrepos && (p->repos = malloc(hf->nrepos * TR_REPO_ID_LEN))) {
            memcpy(p->repos, hf->repos, hf->nrepos * TR_REPO_ID_LEN);
            p->nrepos = hf->nrepos;
        }
        if (hf->name[0] && p->source != PEER_STATIC) snprintf(p->name, sizeof p->name, "%s", hf->name);
        tr_log_debug("hello from %s (%s): %zu repositories", who, hf->name, hf->nrepos);
        break;
    }
    case TR_SYNC_EV_REFUSED: {
        char full[2 * TR_HASH_LEN + 1] = "";
        if (ev->hash) tr_hex(full, ev->hash, TR_HASH_LEN);
        tr_log_warn("refused op %s from %s on %s: %s", h, who, ev->branch ? ev->branch : "?",
                    ev->text ? ev->text : tr_strerror(ev->code));
        agent_event(s->a, "op.refused", s->peer,
                    repo_field(json_pack("{s:s?,s:s?,s:s,s:s}", "branch", ev->branch, "hash",
                                         full[0] ? full : NULL, "reason", tr_wire_reason(ev->code),
                                         "text", ev->text ? ev->text : tr_strerror(ev->code)),
                               ev->repo));
        break;
    }
    case TR_SYNC_EV_NACKED:
        tr_log_warn("peer %s refused %s%s: %s (%s)", who, h[0] ? "op " : "our request",
                    h, ev->reason, ev->text ? ev->text : "");
        break;
    case TR_SYNC_EV_DIVERGED:
        tr_log_warn("branch %s diverged from peer %s: not merged (linear branch)",
                    ev->branch ? ev->branch : "?", who);
        agent_event(s->a, "branch.diverged", s->peer,
                    repo_field(json_pack("{s:s?,s:s?}", "branch", ev->branch, "text", ev->text),
                               ev->repo));
        break;
    case TR_SYNC_EV_RECEIVED: {
        tr_log_debug("received %llu ops on %s from %s", (unsigned long long)ev->count,
                     ev->branch, who);
        agent_event(s->a, "ops.received", s->peer,
                    repo_field(json_pack("{s:s,s:I}", "branch", ev->branch, "count",
                                         (json_int_t)ev->count),
                               ev->repo));
        /* Tell the other peers: what we integrated is new to them too. */
        served_t *r = ev->repo ? repos_find_id(s->a, ev->repo) : NULL;
        if (r) {
            tr_err_t err;
            for (size_t i = 0; i < s->a->nsessions; i++) {
                session_t *o = s->a->sessions[i];
                if (o != s && !o->dead) (void)tr_sync_changed(o->sync, r->id, ev->branch, &err);
            }
            uint64_t count;
            if (tr_store_count(tr_repo_store(r->repo), &count, NULL) == TR_OK) r->last_count = count;
            repos_report_conflicts(s->a, r, ev->branch, s->peer);
        }
        break;
    }
    case TR_SYNC_EV_COMPLETE:
        tr_log_debug("sync of %s with %s complete", ev->branch, who);
        agent_event(s->a, "sync.complete", s->peer,
                    repo_field(json_pack("{s:s,s:I}", "branch", ev->branch, "count",
                                         (json_int_t)ev->count),
                               ev->repo));
        break;
    case TR_SYNC_EV_PROGRESS:
        break;
    }
}

/* ---- lifecycle ---------------------------------------------------------- */

int agent_write_trust(agent_t *a, tr_err_t *err)
{
    /* Write into a fresh directory, then swap, so zauth never sees a
     * half-written set. */
    zdir_t *d = zdir_new(a->trustdir, NULL);
    if (d) {
        zdir_remove(d, true);
        zdir_destroy(&d);
    }
    int rc = tr_home_mkdir(a->trustdir, err);
    if (rc) return rc;
    for (size_t i = 0; i < a->npeers; i++) {
        peer_t *p = a->peers[i];
        if (!p->trusted || !p->has_key) continue;
        char path[4200], id[TR_PEER_ID_STRLEN + 1];
        tr_peer_id(id, p->key);
        snprintf(path, sizeof path, "%s/%s.cert", a->trustdir, id);
        zcert_t *c = zcert_new_from(p->curve, p->curve); /* only the public half is saved */
        if (!c || zcert_save_public(c, path) != 0) {
            zcert_destroy(&c);
            return tr_err_set(err, TR_EIO, "cannot write %s", path);
        }
        zcert_destroy(&c);
    }
    return TR_OK;
}

int agent_new(agent_t **out, const char *listen, bool discovery, int verbose, tr_err_t *err)
{
    *out = NULL;
    agent_t *a = calloc(1, sizeof *a);
    if (!a) return tr_err_set(err, TR_ENOMEM, "out of memory");
    a->discovery = discovery;
    a->verbose = verbose;
    int rc = tr_home_open(&a->home, err);
    if (rc) goto fail;
    bool created;
    if ((rc = tr_home_identity(a->home, true, &a->id, &created, err))) goto fail;
    if ((rc = agent_config_load(a, err))) goto fail;
    if (listen) snprintf(a->listen, sizeof a->listen, "%s", listen);
    if (!a->listen[0]) snprintf(a->listen, sizeof a->listen, "%s", AGENT_DEFAULT_LISTEN);
    if (!a->name[0]) {
        char host[64] = "trellis";
        gethostname(host, sizeof host - 1);
        snprintf(a->name, sizeof a->name, "%s", host);
    }

    /* zsys logging: off stderr; zauth's verdicts come to us as messages. */
    zsys_set_logstream(NULL);
    zsys_set_logsystem(false);
    zsys_set_logsender("inproc://trellis-log");
    a->logsub = zsock_new_sub(">inproc://trellis-log", "");

    /* ZAP handler first: no socket may bind or connect before it runs. */
    snprintf(a->trustdir, sizeof a->trustdir, "%s/trusted", tr_home_state(a->home));
    if ((rc = tr_home_mkdir(tr_home_state(a->home), err)) || (rc = agent_write_trust(a, err)))
        goto fail;
    tr_err_t eerr;
    if (tr_events_open(tr_home_state(a->home), &a->events, &eerr))
        tr_log_warn("events are not recorded: %s", eerr.msg);
    a->auth = zactor_new(zauth, NULL);
    if (!a->auth) {
        rc = tr_err_set(err, TR_EIO, "cannot start the ZAP handler");
        goto fail;
    }
    zstr_sendx(a->auth, "VERBOSE", NULL);
    zsock_wait(a->auth);
    zstr_sendx(a->auth, "CURVE", a->trustdir, NULL);
    zsock_wait(a->auth);

    a->loop = zloop_new();
    a->router = zsock_new(ZMQ_ROUTER);
    zcert_t *cert = agent_cert(a);
    if (!a->loop || !a->router || !cert) {
        zcert_destroy(&cert);
        rc = tr_err_set(err, TR_ENOMEM, "cannot create sockets");
        goto fail;
    }
    sock_common(a->router);
    zsock_set_ipv6(a->router, 1);
    zcert_apply(cert, a->router);
    zcert_destroy(&cert);
    zsock_set_curve_server(a->router, 1);
    zsock_set_zap_domain(a->router, "trellis");
    zsock_set_router_mandatory(a->router, 1);
    if (zmq_bind(zsock_resolve(a->router), a->listen) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot listen on %s: %s", a->listen,
                        zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (zmq_socket_monitor(zsock_resolve(a->router), "inproc://trellis-router-mon",
                           ZMQ_EVENT_DISCONNECTED) == 0)
        a->router_mon = zsock_new_pair(">inproc://trellis-router-mon");
    char *ep = zsock_last_endpoint(a->router);
    snprintf(a->bound, sizeof a->bound, "%s", ep ? ep : a->listen);
    zstr_free(&ep);

    if ((rc = repos_default(a, err))) goto fail;
    if ((rc = control_open(a, err))) goto fail;
    zloop_reader(a->loop, a->router, on_router, a);
    if (a->router_mon) zloop_reader(a->loop, a->router_mon, on_router_monitor, a);
    zloop_reader(a->loop, a->control, control_on_request, a);
    if (a->logsub) zloop_reader(a->loop, a->logsub, on_log, a);
    zloop_timer(a->loop, AGENT_ANTI_ENTROPY_MS, 0, on_anti_entropy, a);
    zloop_timer(a->loop, AGENT_POLL_MS, 0, on_poll, a);
    for (size_t i = 0; i < a->npeers; i++) {
        tr_err_t cerr;
        if (agent_connect_peer(a, a->peers[i], &cerr)) tr_log_warn("%s", cerr.msg);
    }
    if (a->discovery && (rc = disco_start(a, err))) goto fail;
    *out = a;
    return TR_OK;
fail:
    agent_destroy(&a);
    return rc;
}

int agent_run(agent_t *a)
{
    char id[TR_PEER_ID_STRLEN + 1];
    tr_peer_id(id, tr_identity_public(a->id));
    tr_log_info("trellisd %s listening on %s as %s (%s), serving %zu repositories", a->name,
                a->bound, id, a->discovery ? "discovery on" : "discovery off", a->nrepos);
    agent_event(a, "agent.started", NULL,
                json_pack("{s:s,s:s,s:s,s:b}", "listen", a->bound, "self", id, "agent", a->name,
                          "discovery", a->discovery));
    zloop_start(a->loop); /* returns on SIGINT/SIGTERM (zsys_interrupted) */
    a->stopping = true;
    tr_log_info("stopping");
    agent_event(a, "agent.stopping", NULL, NULL);
    return 0;
}

void agent_destroy(agent_t **ap)
{
    if (!ap || !*ap) return;
    agent_t *a = *ap;
    for (size_t i = 0; i < a->nsessions; i++) a->sessions[i]->dead = true;
    agent_reap(a);
    free(a->sessions);
    for (size_t i = 0; i < a->npeers; i++)
        if (a->loop) agent_disconnect_peer(a, a->peers[i]);
    disco_stop(a);
    control_close(a);
    if (a->router) zmq_socket_monitor(zsock_resolve(a->router), NULL, 0);
    zsock_destroy(&a->router_mon);
    zsock_destroy(&a->router);
    zactor_destroy(&a->auth);
    zsock_destroy(&a->logsub);
    zloop_destroy(&a->loop);
    repos_free(a);
    peers_free(a);
    tr_events_close(&a->events);
    tr_identity_destroy(&a->id);
    tr_home_destroy(&a->home);
    free(a);
    *ap = NULL;
}
