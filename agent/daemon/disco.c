/* disco.c — discovery in the agent: runs tr_discovery on the loop and keeps
 * the peer table in step with what it reports (docs/discovery.md §4).
 *
 *   peer_up    adds an untrusted "discovered" peer the first time a key is
 *              seen; records its addresses and marks it present; a trusted
 *              peer without a static endpoint is dialled at its best address
 *              (again only when the address it was dialled at is gone)
 *   peer_down  marks it lost (present false, no addresses) and closes the
 *              outbound socket of a peer that has no static endpoint
 *   state      logged once per change, as an event
 *   log        into the agent's log at the level given */
#include "agent.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../lib/tr_log.h"

static int64_t disco_wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static bool disco_has_addr(const peer_t *p, const char *ep)
{
    for (size_t i = 0; i < sizeof p->addresses / sizeof p->addresses[0]; i++)
        if (p->addresses[i][0] && !strcmp(p->addresses[i], ep)) return true;
    return false;
}

static void disco_up(void *arg, const tr_discovered_t *d)
{
    agent_t *a = arg;
    tr_err_t err;
    peer_t *p = peers_find_key(a, d->key);
    if (!p && peers_add(a, d->key, d->name, NULL, PEER_DISCOVERED, false, &p, &err) != TR_OK) {
        tr_log_debug("discovery: not adding a peer: %s", err.msg);
        return;
    }
    if (p->source != PEER_STATIC && d->name[0]) snprintf(p->name, sizeof p->name, "%s", d->name);
    memset(p->addresses, 0, sizeof p->addresses);
    for (size_t i = 0; i < d->naddrs && i < sizeof p->addresses / sizeof p->addresses[0]; i++)
        snprintf(p->addresses[i], sizeof p->addresses[i], "%s", d->addrs[i].endpoint);
    bool was = p->present;
    p->present = true;
    p->last_seen_ms = disco_wall_ms();
    char fp[TR_FINGERPRINT_STRLEN + 1];
    tr_peer_fingerprint(fp, p->key);
    if (!was) {
        tr_log_info("discovered peer %s (%s) at %s%s", fp, p->name, d->addrs[0].endpoint,
                    p->trusted ? "" : " (not trusted: `trellis peer trust ID` to sync with it)");
        json_t *addrs = json_array();
        for (size_t i = 0; i < d->naddrs; i++) json_array_append_new(addrs, json_string(d->addrs[i].endpoint));
        agent_event(a, "peer.discovered", p, json_pack("{s:o,s:b}", "addresses", addrs, "trusted", p->trusted));
    }
    if (p->trusted && !p->endpoint[0] && !(p->dealer && disco_has_addr(p, p->dialed)) &&
        agent_connect_peer(a, p, &err) != TR_OK)
        tr_log_warn("%s", err.msg);
}

static void disco_down(void *arg, const uint8_t key[TR_KEY_LEN])
{
    agent_t *a = arg;
    peer_t *p = peers_find_key(a, key);
    if (!p || !p->present) return;
    p->present = false;
    memset(p->addresses, 0, sizeof p->addresses);
    char fp[TR_FINGERPRINT_STRLEN + 1];
    tr_peer_fingerprint(fp, p->key);
    tr_log_info("lost peer %s (%s): no longer announced on the network", fp, p->name);
    agent_event(a, "peer.lost", p, NULL);
    if (!p->endpoint[0]) agent_disconnect_peer(a, p); /* stop dialling an address that is gone */
}

static void disco_state(void *arg, bool on, const char *why)
{
    agent_t *a = arg;
    if (on)
        tr_log_info("discovery on: %s", why);
    else
        tr_log_warn("discovery off: %s", why);
    agent_event(a, on ? "discovery.on" : "discovery.off", NULL, json_pack("{s:s}", "text", why));
}

static void disco_log(void *arg, int level, const char *msg)
{
    (void)arg;
    tr_log(level, "%s", msg);
}

static int disco_on_fd(zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    (void)loop, (void)item;
    agent_t *a = arg;
    tr_discovery_process(a->disc);
    agent_flush(a); /* reaps what a disconnect marked dead */
    return 0;
}

/* The served repository ids, for the TXT record. Caller frees. */
static uint8_t (*disco_repo_ids(agent_t *a))[TR_REPO_ID_LEN]
{
    uint8_t(*ids)[TR_REPO_ID_LEN] = calloc(a->nrepos ? a->nrepos : 1, TR_REPO_ID_LEN);
    for (size_t i = 0; ids && i < a->nrepos; i++) memcpy(ids[i], a->repos[i]->id, TR_REPO_ID_LEN);
    return ids;
}

int disco_start(agent_t *a, tr_err_t *err)
{
    const char *colon = strrchr(a->bound, ':');
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (port <= 0 || port > 65535)
        return tr_err_set(err, TR_EINVAL, "discovery: no port in %s", a->bound);
    uint8_t(*ids)[TR_REPO_ID_LEN] = disco_repo_ids(a);
    tr_discovery_cfg_t cfg = {.name = a->name, .port = (uint16_t)port,
                              .repos = (const uint8_t(*)[TR_REPO_ID_LEN])ids, .nrepos = ids ? a->nrepos : 0};
    memcpy(cfg.key, tr_identity_public(a->id), TR_KEY_LEN);
    tr_discovery_cb_t cb = {disco_up, disco_down, disco_state, disco_log};
    int rc = tr_discovery_new(&a->disc, &cfg, &cb, a, err);
    free(ids);
    if (rc) return rc;
    zmq_pollitem_t it = {.fd = tr_discovery_fd(a->disc), .events = ZMQ_POLLIN};
    if (zloop_poller(a->loop, &it, disco_on_fd, a) != 0) {
        tr_discovery_destroy(&a->disc);
        return tr_err_set(err, TR_EIO, "discovery: cannot poll its descriptor");
    }
    return TR_OK;
}

void disco_repos_changed(agent_t *a)
{
    if (!a->disc) return;
    uint8_t(*ids)[TR_REPO_ID_LEN] = disco_repo_ids(a);
    if (ids) tr_discovery_set_repos(a->disc, (const uint8_t(*)[TR_REPO_ID_LEN])ids, a->nrepos);
    free(ids);
}

void disco_stop(agent_t *a)
{
    if (!a->disc) return;
    zmq_pollitem_t it = {.fd = tr_discovery_fd(a->disc), .events = ZMQ_POLLIN};
    zloop_poller_end(a->loop, &it);
    tr_discovery_destroy(&a->disc);
}
