/*
 * discovery_internal.h — shared by the files of discovery/ (not installed).
 *
 *   discovery.c  the owner's side: construction, the event queue and its
 *                eventfd, tr_discovery_process(), commands to the thread
 *   avahi.c      the Avahi thread: client lifecycle, publishing, browsing,
 *                resolving, the table of services and peers
 *   txt.c        the TXT record codec (pure)
 *
 * Two threads touch a tr_discovery_t: the owner's, and Avahi's
 * (AvahiThreadedPoll). Fields are grouped by who may touch them; `mu`
 * guards the shared ones and is never held across an Avahi or D-Bus call,
 * so the owner never waits for Avahi.
 */
#ifndef TR_DISCOVERY_INTERNAL_H
#define TR_DISCOVERY_INTERNAL_H

#include <pthread.h>

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/domain.h>
#include <avahi-common/thread-watch.h>

#include "tr_discovery.h"

#define DISC_MAX_SERVICES 1024 /* services tracked at once: a LAN can lie */
#define DISC_RETRY_MIN_MS 1000 /* reconnect backoff when even D-Bus is missing */
#define DISC_RETRY_MAX_MS 5000
#define DISC_RESOLVE_RETRY_MS 3000
#define DISC_BROWSE_RETRY_MS 5000
#define DISC_PUBLISH_RETRY_MS 5000
#define DISC_SRV_TTL 120     /* RFC 6762 §10: records naming a host */
#define DISC_TXT_TTL 4500    /* RFC 6762 §10: other records */

enum { EV_UP, EV_DOWN, EV_STATE, EV_LOG };

/* One queued event for the owner. */
typedef struct disc_ev {
    struct disc_ev *next;
    int type;
    int level;             /* EV_LOG */
    bool on;               /* EV_STATE */
    char text[512];        /* EV_STATE why, EV_LOG message */
    tr_discovered_t peer;  /* EV_UP; EV_DOWN uses peer.key */
} disc_ev_t;

/* One service instance seen on one interface and protocol. */
typedef struct disc_svc {
    struct disc_svc *next;
    struct tr_discovery *d;
    AvahiIfIndex iface;
    AvahiProtocol proto;
    char name[TR_DISCOVERY_INSTANCE_MAX + 1]; /* instance label, unescaped */
    char domain[256];
    AvahiServiceResolver *resolver;
    AvahiTimeout *retry;     /* re-resolve after a failure */
    bool own;                /* Avahi said it was ours when first seen */
    bool valid;              /* resolved with a good TXT record */
    uint8_t key[TR_KEY_LEN]; /* when valid */
    tr_discovery_txt_t txt;
    tr_discovery_addr_t addr;
    uint64_t seq;            /* order of resolution: the newest speaks for the peer */
    char why[160];           /* last reason it was ignored (logged once) */
} disc_svc_t;

/* A peer: the merged view of the valid services that carry its key. */
typedef struct disc_peer {
    struct disc_peer *next;
    uint8_t key[TR_KEY_LEN];
    bool reported;           /* peer_up sent, peer_down owed when it goes */
    tr_discovered_t last;    /* what the owner was last told */
} disc_peer_t;

struct tr_discovery {
    /* Immutable after tr_discovery_new. */
    tr_discovery_cb_t cb;
    void *arg;
    uint8_t key[TR_KEY_LEN];
    char name[TR_NAME_MAX + 1];
    uint16_t port;
    unsigned vmin, vmax, ttl_s;
    char service[64];
    int evfd;  /* readable: events queued for the owner */
    int cmdfd; /* readable: commands queued for the Avahi thread */

    /* Shared, under mu. */
    pthread_mutex_t mu;
    disc_ev_t *evq, *evq_tail;
    bool cmd_repos;                   /* new_repos waiting */
    uint8_t new_repos[TR_DISCOVERY_TXT_MAX_REPOS][TR_REPO_ID_LEN];
    size_t new_nrepos;                /* may exceed what the array holds */
    bool state_on;                    /* last state posted */
    char state_why[512];

    /* Avahi thread only (and the owner before start / after stop). */
    AvahiThreadedPoll *tp;
    const AvahiPoll *poll;
    AvahiWatch *cmd_watch;
    AvahiTimeout *t_connect;  /* (re)create the client */
    AvahiTimeout *t_publish;  /* retry publishing */
    AvahiTimeout *t_browse;   /* retry browsing */
    unsigned connect_backoff_ms;
    AvahiClient *client;
    AvahiEntryGroup *group;
    AvahiServiceBrowser *browser;
    char instance[TR_DISCOVERY_INSTANCE_MAX + 1];
    char fullname[AVAHI_DOMAIN_NAME_MAX]; /* instance.service.domain, escaped */
    uint64_t seq;
    uint8_t repos[TR_DISCOVERY_TXT_MAX_REPOS][TR_REPO_ID_LEN];
    size_t nrepos;            /* may exceed what the array holds: then not published */
    uint8_t txt[TR_DISCOVERY_TXT_MAX];
    size_t txtlen;
    bool reported;            /* a state was ever posted */
    bool on;                  /* the state last posted, thread's copy */
    disc_svc_t *svcs;
    size_t nsvcs;
    disc_peer_t *peers;
    bool full_warned;         /* DISC_MAX_SERVICES reached (warned once) */
};

/* ---- discovery.c: posting to the owner (any thread) --------------------- */
void disc_post(tr_discovery_t *d, disc_ev_t *ev); /* takes ev */
void disc_log(tr_discovery_t *d, int level, const char *fmt, ...) TR_PRINTF(3, 4);
void disc_state(tr_discovery_t *d, bool on, const char *fmt, ...) TR_PRINTF(3, 4);

/* ---- avahi.c: the Avahi thread ------------------------------------------ */
/* Sets up the first connection attempt and the command watch; called
 * before the thread starts. */
int disc_avahi_init(tr_discovery_t *d);
/* Frees every Avahi object; called after the thread stopped. */
void disc_avahi_fini(tr_discovery_t *d);

#endif
