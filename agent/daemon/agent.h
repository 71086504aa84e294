/*
 * agent.h — trellisd's internals, shared by the files of agent/daemon/.
 *
 * Overview
 *   One agent_t per process, driven by one czmq zloop:
 *     agent.c    the loop, sockets (ROUTER with CURVE server, one DEALER with
 *                CURVE client per peer that has an endpoint), zauth, sessions,
 *                timers, pushes, shutdown
 *     peers.c    the peer table and agent.json persistence
 *     repos.c    the served repositories (registry, default repo, change polls)
 *     host.c     tr_sync_host_t over the served repositories' stores
 *     control.c  the control socket (docs/control.md)
 *     main.c     arguments, logging, signals, daemonising
 *
 * Caveats
 *   - Single-threaded: everything runs on the loop's thread (zauth runs in
 *     its own actor thread and talks to libzmq only).
 *   - A session that misbehaves is marked dead and freed after the current
 *     callback returns (agent_reap), never under the caller's feet.
 */
#ifndef TR_AGENT_H
#define TR_AGENT_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../core/tr_error.h"
#include "../../core/tr_identity.h"
#include "../../core/tr_hmap.h"
#include "../../core/tr_sync.h"
#include "../../store/tr_repo.h"
#include "../lib/tr_events.h"
#include "../lib/tr_home.h"
#include "../../discovery/tr_discovery.h"

#define AGENT_DEFAULT_PORT 7437
#define AGENT_DEFAULT_LISTEN "tcp://*:7437"
#define AGENT_ANTI_ENTROPY_MS 30000
#define AGENT_POLL_MS 1000       /* change polling of served stores */
#define AGENT_SESSION_IDLE_MS 90000 /* inbound session without frames: forgotten */
#define AGENT_BAN_MS 60000       /* a peer that broke the protocol is refused this long */
#define AGENT_HWM 64             /* ZeroMQ high-water marks, messages */
#define AGENT_MAX_KNOCKS 64      /* untrusted keys remembered (the newest) */
#define AGENT_RETRY_MIN_MS 2000  /* reconnect after a refused handshake: first wait */
#define AGENT_RETRY_MAX_MS 60000 /* … doubling up to this */

enum { PEER_STATIC = 0, PEER_DISCOVERED = 1, PEER_KNOCK = 2 };

typedef struct agent agent_t;
typedef struct session session_t;

/* A served repository. */
typedef struct {
    char *path;        /* absolute root */
    tr_repo_t *repo;
    uint8_t id[TR_REPO_ID_LEN];
    bool is_default;
    uint64_t last_count; /* op count seen by the last poll */
    tr_hmap_t conflicts; /* open conflicts already reported: H(branch, key) → 1 */
    bool conflicts_seeded;
} served_t;

/* A peer the agent knows: configured, discovered, or a key that knocked. */
typedef struct {
    agent_t *agent;               /* back-pointer, set by peers_add/peers_knock */
    bool has_key;                 /* false for a knock: only the CURVE key is known */
    uint8_t key[TR_KEY_LEN];      /* Ed25519 identity */
    uint8_t curve[32];            /* CURVE public key */
    char name[TR_NAME_MAX + 1];
    char endpoint[256];           /* static endpoint, or "" */
    char addresses[8][128];       /* discovered endpoints (issue 5), "" when unused */
    bool present;                 /* announced by discovery right now */
    char dialed[256];             /* the endpoint the DEALER was connected to */
    bool trusted;
    int source;                   /* PEER_* */
    int64_t last_seen_ms;         /* wall clock, 0 = never */
    int64_t banned_until_ms;      /* monotonic */
    uint8_t (*repos)[TR_REPO_ID_LEN]; /* from the peer's last hello */
    size_t nrepos;
    zsock_t *dealer;              /* outbound socket, or NULL */
    int retry_ms;                 /* back-off after a refused handshake, 0 = none pending */
    int retry_timer;              /* its zloop timer id while armed */
    zsock_t *monitor;             /* its socket monitor (PAIR), or NULL */
    session_t *out;               /* outbound session while connected */
} peer_t;

/* One connection's protocol state and its socket. */
struct session {
    agent_t *a;
    peer_t *peer;        /* never NULL: inbound sessions map User-Id to a peer */
    tr_sync_t *sync;
    bool inbound;
    zsock_t *sock;       /* the DEALER, or the agent's ROUTER */
    uint8_t rid[256];    /* ROUTER routing id (inbound) */
    size_t rid_len;
    tr_buf_t pending;    /* a frame the socket refused (EAGAIN), sent first */
    bool has_pending;
    int64_t last_rx_ms;
    bool dead;           /* reaped after the current callback */
};

struct agent {
    tr_home_t *home;
    tr_identity_t *id;
    char name[TR_NAME_MAX + 1];
    char listen[256];      /* as configured */
    char bound[256];       /* the endpoint actually bound (port resolved) */
    bool discovery;
    int verbose;
    zloop_t *loop;
    zactor_t *auth;
    zsock_t *router;
    zsock_t *router_mon;   /* its socket monitor (disconnects) */
    zsock_t *control;
    zsock_t *logsub;       /* zsys log messages (zauth denials → knocks) */
    char trustdir[4096];   /* CURVE public certs of trusted peers, for zauth */
    served_t **repos;
    size_t nrepos;
    char **cfg_repos;      /* repository paths listed in agent.json (peers.c fills, repos.c opens) */
    size_t ncfg_repos;
    peer_t **peers;
    size_t npeers;
    session_t **sessions;
    size_t nsessions;
    tr_events_t *events;   /* events.jsonl in the state dir (may be NULL) */
    struct control *ctl;   /* control socket state (control.c) */
    tr_discovery_t *disc;  /* NULL with --no-discovery */
    bool stopping;
    bool retry_armed;      /* a flush retry timer is pending */
};

/* ---- agent.c ---------------------------------------------------------- */
int agent_new(agent_t **out, const char *listen, bool discovery, int verbose, tr_err_t *err);
int agent_run(agent_t *a);           /* until SIGTERM/SIGINT; returns exit status */
void agent_destroy(agent_t **a);
/* Connects (or reconnects) the DEALER of a trusted peer with an endpoint. */
int agent_connect_peer(agent_t *a, peer_t *p, tr_err_t *err);
/* Closes a peer's sockets and sessions (untrust, removal). */
void agent_disconnect_peer(agent_t *a, peer_t *p);
/* Tells every session that repository `id` changed on `branch` (NULL: any). */
void agent_push(agent_t *a, const uint8_t id[TR_REPO_ID_LEN], const char *branch);
/* The served set changed: re-hello on every session. */
void agent_reshare(agent_t *a);
/* Sends what sessions have queued (called after every event). */
void agent_flush(agent_t *a);
/* Rewrites the zauth trust directory from the peer table. */
int agent_write_trust(agent_t *a, tr_err_t *err);
/* True when every established session is idle (nothing in flight). */
bool agent_sessions_idle(const agent_t *a);
/* Appends an event with the peer's id and name added when p is non-NULL.
 * Steals fields. */
void agent_event(agent_t *a, const char *type, const peer_t *p, json_t *fields);
/* Receives the protocol events of a session (host.c forwards them). */
void agent_sync_event(session_t *s, const tr_sync_event_t *ev);
int64_t agent_now_ms(void); /* monotonic */

/* ---- peers.c ---------------------------------------------------------- */
peer_t *peers_find_key(agent_t *a, const uint8_t key[TR_KEY_LEN]);
peer_t *peers_find_curve(agent_t *a, const uint8_t curve[32]);
/* Adds (or updates) a peer by Ed25519 key. */
int peers_add(agent_t *a, const uint8_t key[TR_KEY_LEN], const char *name, const char *endpoint,
              int source, bool trusted, peer_t **out, tr_err_t *err);
/* Records a knock by an unknown CURVE key. */
void peers_knock(agent_t *a, const uint8_t curve[32]);
/* Loads/saves agent.json (name, listen, repos, peers) in the config dir. */
int agent_config_load(agent_t *a, tr_err_t *err);
int agent_config_save(agent_t *a, tr_err_t *err);
void peers_free(agent_t *a);

/* ---- repos.c ---------------------------------------------------------- */
served_t *repos_find_id(agent_t *a, const uint8_t id[TR_REPO_ID_LEN]);
served_t *repos_find_path(agent_t *a, const char *path);
/* Opens and registers a repository (persisted by the caller). */
int repos_add(agent_t *a, const char *path, bool is_default, served_t **out, tr_err_t *err);
int repos_remove(agent_t *a, const char *path, tr_err_t *err);
/* Opens the default repository under the data dir, creating it on first run. */
int repos_default(agent_t *a, tr_err_t *err);
/* Checks every served store for writes made by other processes. */
void repos_poll(agent_t *a);
/* Emits a `conflict` event for each open conflict of `branch` not reported
 * before (the first call only records what is open). */
void repos_report_conflicts(agent_t *a, served_t *r, const char *branch, const peer_t *from);
void repos_free(agent_t *a);

/* ---- host.c ----------------------------------------------------------- */
/* The sync host of a session (serves every repository to trusted peers). */
void host_init(tr_sync_host_t *h, session_t *s);

/* ---- disco.c ---------------------------------------------------------- */
int disco_start(agent_t *a, tr_err_t *err);
void disco_repos_changed(agent_t *a);
void disco_stop(agent_t *a);

/* ---- control.c -------------------------------------------------------- */
int control_open(agent_t *a, tr_err_t *err);
/* zloop reader for the control socket. */
int control_on_request(zloop_t *loop, zsock_t *sock, void *arg);
void control_close(agent_t *a);

#endif
