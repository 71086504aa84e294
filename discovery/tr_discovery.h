/*
 * tr_discovery.h — finding peers on the local network with mDNS/DNS-SD
 * (Avahi), reported as plain values (docs/discovery.md).
 *
 * Overview
 *   A tr_discovery_t publishes this agent as a `_trellis._tcp` service whose
 *   TXT record carries the protocol versions, the peer id and the display
 *   name (and the served repository ids when they fit), browses and resolves
 *   the same type on every interface over IPv4 and IPv6, and tells its owner
 *   through callbacks:
 *
 *     peer_up    a peer appeared, or what we know of it changed; always the
 *                full current view (every address on every interface, best
 *                first), merged by key across services, interfaces and
 *                address families
 *     peer_down  no service of that key is announced any more: it said
 *                goodbye, or its records expired (the PTR record lives
 *                cfg.ttl_s seconds, 8 by default, so a peer that vanishes
 *                without a goodbye is reported within that time), or our
 *                own avahi-daemon went away (we can see nobody)
 *     state      discovery turned on or off, and why ("avahi-daemon is not
 *                running (…)"); reported once per change
 *     log        a line for the owner's log: services ignored for bad TXT
 *                records (debug), name collisions (info), Avahi failures
 *
 *   The Avahi client runs on a thread of its own (Avahi's D-Bus calls
 *   block), which never calls the owner: it queues events and makes
 *   tr_discovery_fd() readable. The owner polls that descriptor in its event
 *   loop and calls tr_discovery_process(), which runs the callbacks on the
 *   owner's thread and never blocks. With czmq:
 *
 *     zmq_pollitem_t it = {.fd = tr_discovery_fd(d), .events = ZMQ_POLLIN};
 *     zloop_poller(loop, &it, on_discovery, a);   // calls tr_discovery_process(d)
 *
 *   Our own service (same key) is never reported. A service whose TXT record
 *   is missing, oversize, malformed, of an incompatible protocol version, or
 *   carries an invalid peer id (bad base32, bad checksum, not a curve point)
 *   is ignored with one debug line per service and reason.
 *
 *   Discovery survives avahi-daemon (and dbus-daemon) restarts: the client
 *   is created with AVAHI_CLIENT_NO_FAIL, recreated when the daemon goes,
 *   and republishes and browses again when it is back. Without a running
 *   daemon tr_discovery_new() still succeeds: it reports
 *   state(false, "avahi-daemon is not running (…)") and turns on by itself
 *   when the daemon appears. A service name taken by another host is
 *   replaced by Avahi's alternative ("name #2") and registered again.
 *
 *   The TXT codec (tr_discovery_txt_*) is pure, with no Avahi and no I/O, so
 *   tests and fuzzers can throw bytes at it.
 *
 * Caveats
 *   - Threads: tr_discovery_new/process/set_repos/destroy must be called
 *     from one thread (the owner's); callbacks run on that thread, inside
 *     tr_discovery_process(). A callback must not call tr_discovery_destroy.
 *   - tr_discovery_destroy() joins the Avahi thread; that waits for an Avahi
 *     call in progress (bounded by D-Bus's reply timeout, normally instant).
 *     Our service is withdrawn with a goodbye, so peers see us go at once.
 *   - Values passed to callbacks are borrowed for the duration of the call.
 *   - Discovery proves nothing: a TXT record is a claim. The key it names
 *     is only a hint of whom to connect to; CurveZMQ proves it.
 *   - Linux only (eventfd).
 */
#ifndef TR_DISCOVERY_H
#define TR_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/tr_error.h"
#include "../core/tr_identity.h"
#include "../core/tr_op.h"
#include "../core/tr_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TR_DISCOVERY_SERVICE "_trellis._tcp"
#define TR_DISCOVERY_TTL_S 8          /* default lifetime of our PTR record */
#define TR_DISCOVERY_MAX_ADDRS 8      /* addresses reported per peer */
#define TR_DISCOVERY_EP_MAX 96        /* "tcp://[fe80::…%ifname]:65535" + NUL */
#define TR_DISCOVERY_IFNAME_MAX 16    /* IF_NAMESIZE */
#define TR_DISCOVERY_INSTANCE_MAX 63  /* a DNS label */
#define TR_DISCOVERY_TXT_MAX 1300     /* largest TXT RDATA accepted (RFC 6763 §6.2) */
#define TR_DISCOVERY_TXT_MAX_REPOS 7  /* repo ids that fit in one TXT string */

/* Levels of the log callback (the values of tr_log.h's levels). */
enum { TR_DISCOVERY_ERR = 0, TR_DISCOVERY_WARN = 1, TR_DISCOVERY_INFO = 2, TR_DISCOVERY_DEBUG = 3 };

/* ---- TXT records (pure) ------------------------------------------------ */

/* What a `_trellis._tcp` TXT record says. */
typedef struct {
    unsigned vmin, vmax;               /* protocol versions spoken (v=, vmin=) */
    uint8_t key[TR_KEY_LEN];           /* id= */
    char name[TR_NAME_MAX + 1];        /* name=, "" when absent */
    bool has_repos;                    /* repos= present (false: learn them in hello) */
    size_t nrepos;
    uint8_t repos[TR_DISCOVERY_TXT_MAX_REPOS][TR_REPO_ID_LEN];
} tr_discovery_txt_t;

/* Encodes t as TXT RDATA (length-prefixed strings) into out[0..cap):
 * "v=…", "vmin=…" (only when it differs from v), "id=…", "name=…" (when not
 * empty), "repos=…" (only when has_repos and nrepos fits; otherwise the key
 * is left out). Sets *len. TR_EINVAL for a bad name or version range,
 * TR_ETOOBIG when cap is too small (TR_DISCOVERY_TXT_MAX always suffices). */
int tr_discovery_txt_encode(const tr_discovery_txt_t *t, uint8_t *out, size_t cap, size_t *len,
                            tr_err_t *err) TR_MUST_CHECK;

/* Parses TXT RDATA as received from the network. Keys are case-insensitive,
 * the first occurrence of a key wins (RFC 6763 §6.4), unknown keys are
 * ignored. Returns TR_OK and fills *out, or (with a reason in err):
 *   TR_ETOOBIG     RDATA longer than TR_DISCOVERY_TXT_MAX
 *   TR_EMALFORMED  a string runs past the end; v= or id= missing; a value
 *                  that does not parse (v, vmin, name, repos)
 *   TR_EVERSION    the versions it speaks do not overlap ours
 *                  (TR_PROTO_MIN_VERSION..TR_PROTO_VERSION)
 *   TR_EINVAL      id= is not a 56-character lowercase peer id with a good
 *                  checksum, or the key is not a valid Ed25519 point
 * Never reads outside rdata[0..len); *out is zeroed on failure. */
int tr_discovery_parse_txt(const uint8_t *rdata, size_t len, tr_discovery_txt_t *out,
                           tr_err_t *err) TR_MUST_CHECK;

/* ---- discovery --------------------------------------------------------- */

/* One address a peer was found at. */
typedef struct {
    char endpoint[TR_DISCOVERY_EP_MAX]; /* "tcp://10.77.0.2:7437", "tcp://[fe80::1%eth0]:7437" */
    char iface[TR_DISCOVERY_IFNAME_MAX]; /* interface it was seen on */
    int family;                          /* 4 or 6 */
} tr_discovery_addr_t;

/* A peer as discovery sees it now. */
typedef struct {
    uint8_t key[TR_KEY_LEN];                  /* from its TXT record: a claim, see Caveats */
    char name[TR_NAME_MAX + 1];               /* display name ("" when it gave none) */
    char instance[TR_DISCOVERY_INSTANCE_MAX + 1]; /* DNS-SD instance name it uses */
    unsigned vmin, vmax;                      /* protocol versions it speaks */
    size_t naddrs;                            /* ≥ 1 */
    tr_discovery_addr_t addrs[TR_DISCOVERY_MAX_ADDRS]; /* IPv4, then routable IPv6, then link-local */
    bool has_repos;                           /* repos below are its served set */
    size_t nrepos;
    uint8_t repos[TR_DISCOVERY_TXT_MAX_REPOS][TR_REPO_ID_LEN];
} tr_discovered_t;

/* Callbacks, all optional (NULL: not interested), run inside
 * tr_discovery_process() on the owner's thread with the `arg` given to
 * tr_discovery_new(). */
typedef struct {
    void (*peer_up)(void *arg, const tr_discovered_t *peer);
    void (*peer_down)(void *arg, const uint8_t key[TR_KEY_LEN]);
    void (*state)(void *arg, bool on, const char *why);
    void (*log)(void *arg, int level, const char *msg);
} tr_discovery_cb_t;

typedef struct {
    uint8_t key[TR_KEY_LEN];  /* our Ed25519 public key (published as id=) */
    const char *name;         /* display name, ≤ TR_NAME_MAX bytes of UTF-8; also the
                                 service instance name (cut to 63 bytes) */
    uint16_t port;            /* the TCP port our ROUTER listens on (not 0) */
    unsigned vmin, vmax;      /* protocol versions we speak; 0: TR_PROTO_MIN_VERSION,
                                 TR_PROTO_VERSION */
    const uint8_t (*repos)[TR_REPO_ID_LEN]; /* served repository ids (copied) */
    size_t nrepos;
    unsigned ttl_s;           /* PTR record lifetime, the bound on noticing a silent
                                 departure; 0: TR_DISCOVERY_TTL_S */
    const char *service;      /* DNS-SD type; NULL: TR_DISCOVERY_SERVICE */
} tr_discovery_cfg_t;

typedef struct tr_discovery tr_discovery_t;

/* Starts discovery: publishing, browsing and resolving begin on the Avahi
 * thread, whether or not avahi-daemon runs yet. cfg and cb are copied.
 * Caller owns *out. TR_EINVAL (bad cfg), TR_ENOMEM, TR_EIO (no eventfd or
 * thread). Nothing is reported before the first tr_discovery_process(). */
int tr_discovery_new(tr_discovery_t **out, const tr_discovery_cfg_t *cfg,
                     const tr_discovery_cb_t *cb, void *arg, tr_err_t *err) TR_MUST_CHECK;

/* Withdraws our service, stops the thread, drops queued events. NULL-safe;
 * sets *d to NULL. No callback runs. */
void tr_discovery_destroy(tr_discovery_t **d);

/* A descriptor that is readable while events wait for
 * tr_discovery_process(). Owned by d; do not read or close it. */
int tr_discovery_fd(const tr_discovery_t *d);

/* Runs the callbacks of every queued event, in order, on the calling
 * thread. Never blocks; returns the number of events handled. */
size_t tr_discovery_process(tr_discovery_t *d);

/* Replaces the served repository ids published in our TXT record (left out
 * when more than TR_DISCOVERY_TXT_MAX_REPOS; repos is read only then). The
 * record is updated in place: peers see no departure. Never blocks. */
void tr_discovery_set_repos(tr_discovery_t *d, const uint8_t (*repos)[TR_REPO_ID_LEN], size_t n);

/* The last state reported (or about to be): on/off and why. `why` is
 * copied into buf[0..n). For status displays. */
bool tr_discovery_state(tr_discovery_t *d, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
