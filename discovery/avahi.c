/* avahi.c — the Avahi thread: one AvahiClient (recreated whenever the
 * daemon goes away), our published records, one service browser, a
 * resolver per service seen, and the table that merges services into peers
 * by key. Every function here runs on the AvahiThreadedPoll thread with its
 * lock held, except disc_avahi_init/fini (before start, after stop). The
 * owner hears about it only through disc_post().
 *
 * Why we publish raw records instead of avahi_entry_group_add_service():
 * a peer that vanishes without a goodbye (cable pulled, interface down,
 * machine frozen) stays in every cache for the TTL of its PTR record, 75
 * minutes when Avahi picks it. We publish the PTR with a TTL of a few
 * seconds (cfg.ttl_s): browsers refresh it at 80–95 % of its life and drop
 * it when nobody answers, which bounds how long a lost peer looks present.
 * SRV and TXT keep the RFC 6762 TTLs. */
#include "discovery_internal.h"

#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <avahi-common/address.h>
#include <avahi-common/alternative.h>
#include <avahi-common/domain.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>
#include <avahi-common/timeval.h>

static void client_cb(AvahiClient *c, AvahiClientState state, void *arg);
static void publish(tr_discovery_t *d);
static void browse(tr_discovery_t *d);

/* ---- timers ------------------------------------------------------------- */

/* Arms (or re-arms) *t to fire cb after ms milliseconds. */
static void timer_arm(tr_discovery_t *d, AvahiTimeout **t, unsigned ms, AvahiTimeoutCallback cb,
                      void *arg)
{
    struct timeval tv;
    avahi_elapse_time(&tv, ms, 0);
    if (*t)
        d->poll->timeout_update(*t, &tv);
    else
        *t = d->poll->timeout_new(d->poll, &tv, cb, arg);
}

static void timer_free(tr_discovery_t *d, AvahiTimeout **t)
{
    if (*t) d->poll->timeout_free(*t);
    *t = NULL;
}

static const char *disc_error(tr_discovery_t *d)
{
    return avahi_strerror(d->client ? avahi_client_errno(d->client) : AVAHI_ERR_DISCONNECTED);
}

/* ---- peers: services merged by key -------------------------------------- */

static int addr_rank(const tr_discovery_addr_t *a)
{
    if (a->family == 4) return 0;
    return strncmp(a->endpoint, "tcp://[fe80:", 12) == 0 ? 2 : 1;
}

static int addr_cmp(const void *x, const void *y)
{
    const tr_discovery_addr_t *a = x, *b = y;
    int ra = addr_rank(a), rb = addr_rank(b);
    return ra != rb ? ra - rb : strcmp(a->endpoint, b->endpoint);
}

/* Builds what we know of `key` from its valid services; false if none. The
 * newest resolution supplies the name, versions and repositories. */
static bool peer_view(tr_discovery_t *d, const uint8_t key[TR_KEY_LEN], tr_discovered_t *v)
{
    memset(v, 0, sizeof *v);
    const disc_svc_t *newest = NULL;
    tr_discovery_addr_t addrs[2 * TR_DISCOVERY_MAX_ADDRS];
    size_t n = 0;
    for (const disc_svc_t *s = d->svcs; s; s = s->next) {
        if (!s->valid || memcmp(s->key, key, TR_KEY_LEN) != 0) continue;
        if (!newest || s->seq > newest->seq) newest = s;
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = !strcmp(addrs[i].endpoint, s->addr.endpoint);
        if (!dup && n < sizeof addrs / sizeof addrs[0]) addrs[n++] = s->addr;
    }
    if (!newest) return false;
    qsort(addrs, n, sizeof addrs[0], addr_cmp);
    memcpy(v->key, key, TR_KEY_LEN);
    memcpy(v->name, newest->txt.name, sizeof v->name);
    memcpy(v->instance, newest->name, sizeof v->instance);
    v->vmin = newest->txt.vmin;
    v->vmax = newest->txt.vmax;
    v->naddrs = n < TR_DISCOVERY_MAX_ADDRS ? n : TR_DISCOVERY_MAX_ADDRS;
    memcpy(v->addrs, addrs, v->naddrs * sizeof addrs[0]);
    v->has_repos = newest->txt.has_repos;
    v->nrepos = newest->txt.nrepos;
    memcpy(v->repos, newest->txt.repos, sizeof v->repos);
    return true;
}

/* Tells the owner what changed about `key`: peer_up with the new view, or
 * peer_down when its last service went. Silent when nothing changed. */
static void peer_update(tr_discovery_t *d, const uint8_t key[TR_KEY_LEN])
{
    disc_peer_t **pp = &d->peers, *p;
    while ((p = *pp) && memcmp(p->key, key, TR_KEY_LEN) != 0)
        pp = &p->next;
    tr_discovered_t v;
    bool present = peer_view(d, key, &v);
    if (!present) {
        if (!p) return;
        *pp = p->next;
        if (p->reported) {
            disc_ev_t *ev = calloc(1, sizeof *ev);
            if (ev) {
                ev->type = EV_DOWN;
                memcpy(ev->peer.key, key, TR_KEY_LEN);
                disc_post(d, ev);
            }
        }
        free(p);
        return;
    }
    if (!p) {
        if (!(p = calloc(1, sizeof *p))) return;
        memcpy(p->key, key, TR_KEY_LEN);
        p->next = d->peers;
        d->peers = p;
    }
    if (p->reported && memcmp(&p->last, &v, sizeof v) == 0) return;
    disc_ev_t *ev = calloc(1, sizeof *ev);
    if (!ev) return; /* reported stays as it was: the next change retries */
    ev->type = EV_UP;
    ev->peer = v;
    p->last = v;
    p->reported = true;
    disc_post(d, ev);
}

/* ---- services ----------------------------------------------------------- */

static disc_svc_t *svc_find(tr_discovery_t *d, AvahiIfIndex iface, AvahiProtocol proto,
                            const char *name, const char *domain)
{
    for (disc_svc_t *s = d->svcs; s; s = s->next)
        if (s->iface == iface && s->proto == proto && !strcmp(s->name, name) &&
            !strcmp(s->domain, domain))
            return s;
    return NULL;
}

static void svc_label(const disc_svc_t *s, char *out, size_t n)
{
    char ifn[IF_NAMESIZE] = "?";
    if (s->iface >= 0 && !if_indextoname((unsigned)s->iface, ifn))
        snprintf(ifn, sizeof ifn, "%d", s->iface);
    snprintf(out, n, "'%s' on %s/%s", s->name, ifn,
             s->proto == AVAHI_PROTO_INET6 ? "IPv6" : "IPv4");
}

/* Marks a service unusable and says why, once per service and reason: a
 * bad record on the LAN is re-announced every few seconds and must not
 * flood the log. */
static void svc_ignore(tr_discovery_t *d, disc_svc_t *s, int level, const char *why)
{
    bool was = s->valid;
    uint8_t key[TR_KEY_LEN];
    memcpy(key, s->key, TR_KEY_LEN);
    s->valid = false;
    if (strcmp(s->why, why) != 0) {
        char label[TR_DISCOVERY_INSTANCE_MAX + 64];
        svc_label(s, label, sizeof label);
        disc_log(d, level, "discovery: ignoring service %s: %s", label, why);
        snprintf(s->why, sizeof s->why, "%s", why);
    }
    if (was) peer_update(d, key);
}

static void svc_unlink_free(tr_discovery_t *d, disc_svc_t *s)
{
    disc_svc_t **pp = &d->svcs;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp) *pp = s->next;
    d->nsvcs--;
    if (s->resolver) avahi_service_resolver_free(s->resolver);
    timer_free(d, &s->retry);
    free(s);
}

/* Forgets a service (browser REMOVE): its peer loses an address, or goes. */
static void svc_remove(tr_discovery_t *d, disc_svc_t *s)
{
    bool was = s->valid;
    uint8_t key[TR_KEY_LEN];
    memcpy(key, s->key, TR_KEY_LEN);
    svc_unlink_free(d, s);
    if (was) peer_update(d, key);
}

/* The endpoint a resolved address is reached at. Link-local IPv6 needs the
 * interface as its zone. */
static void svc_endpoint(tr_discovery_addr_t *out, AvahiIfIndex iface, const AvahiAddress *a,
                         uint16_t port)
{
    char ip[AVAHI_ADDRESS_STR_MAX] = "";
    memset(out, 0, sizeof *out);
    if (iface < 0 || !if_indextoname((unsigned)iface, out->iface)) out->iface[0] = '\0';
    avahi_address_snprint(ip, sizeof ip, a);
    if (a->proto == AVAHI_PROTO_INET6) {
        const uint8_t *b = a->data.ipv6.address;
        out->family = 6;
        if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80 && out->iface[0])
            snprintf(out->endpoint, sizeof out->endpoint, "tcp://[%s%%%s]:%u", ip, out->iface,
                     port);
        else
            snprintf(out->endpoint, sizeof out->endpoint, "tcp://[%s]:%u", ip, port);
    } else {
        out->family = 4;
        snprintf(out->endpoint, sizeof out->endpoint, "tcp://%s:%u", ip, port);
    }
}

static void svc_resolve(tr_discovery_t *d, disc_svc_t *s);

static void svc_retry_cb(AvahiTimeout *t, void *arg)
{
    (void)t;
    disc_svc_t *s = arg;
    s->d->poll->timeout_update(s->retry, NULL);
    svc_resolve(s->d, s);
}

/* A resolver result: FOUND at first and again whenever the service's
 * records change; FAILURE when they cannot be had (we retry while the
 * browser still lists the service). */
static void resolve_cb(AvahiServiceResolver *r, AvahiIfIndex iface, AvahiProtocol proto,
                       AvahiResolverEvent event, const char *name, const char *type,
                       const char *domain, const char *host, const AvahiAddress *a, uint16_t port,
                       AvahiStringList *txt, AvahiLookupResultFlags flags, void *arg)
{
    (void)r, (void)proto, (void)name, (void)type, (void)domain, (void)host, (void)flags;
    disc_svc_t *s = arg;
    tr_discovery_t *d = s->d;
    char why[160];
    if (event != AVAHI_RESOLVER_FOUND) {
        snprintf(why, sizeof why, "cannot resolve it: %s", disc_error(d));
        avahi_service_resolver_free(s->resolver);
        s->resolver = NULL;
        timer_arm(d, &s->retry, DISC_RESOLVE_RETRY_MS, svc_retry_cb, s);
        svc_ignore(d, s, TR_DISCOVERY_DEBUG, why); /* may free nothing: s stays listed */
        return;
    }
    /* TXT as the RDATA bytes on the wire, so the one parser sees what a
     * fuzzer sees. The list avahi-client hands us is in reverse wire order
     * (serialize() reverses it once more), so turn it around first: the
     * first occurrence of a key must be the first on the wire. */
    txt = avahi_string_list_reverse(txt);
    size_t need = avahi_string_list_serialize(txt, NULL, 0);
    uint8_t rdata[TR_DISCOVERY_TXT_MAX];
    tr_discovery_txt_t t;
    tr_err_t err;
    size_t len = need <= sizeof rdata ? avahi_string_list_serialize(txt, rdata, sizeof rdata) : 0;
    txt = avahi_string_list_reverse(txt); /* as it was: avahi-client owns it */
    (void)txt;
    if (need > sizeof rdata) {
        snprintf(why, sizeof why, "TXT record of %zu bytes (max %d)", need, TR_DISCOVERY_TXT_MAX);
        svc_ignore(d, s, TR_DISCOVERY_DEBUG, why);
        return;
    }
    if (tr_discovery_parse_txt(rdata, len, &t, &err) != TR_OK) {
        snprintf(why, sizeof why, "bad TXT record: %.120s", err.msg);
        svc_ignore(d, s, TR_DISCOVERY_DEBUG, why);
        return;
    }
    if (memcmp(t.key, d->key, TR_KEY_LEN) == 0) {
        /* Our own service (quietly), or someone else's with our key (said
         * once): never a peer. */
        if (s->own && !s->valid)
            snprintf(s->why, sizeof s->why, "it carries this agent's own key");
        else
            svc_ignore(d, s, TR_DISCOVERY_DEBUG, "it carries this agent's own key");
        return;
    }
    if (!port || !a) {
        svc_ignore(d, s, TR_DISCOVERY_DEBUG, port ? "no address" : "port 0");
        return;
    }
    bool moved = s->valid && memcmp(s->key, t.key, TR_KEY_LEN) != 0;
    uint8_t old[TR_KEY_LEN];
    memcpy(old, s->key, TR_KEY_LEN);
    s->valid = true;
    s->why[0] = '\0';
    s->seq = ++d->seq;
    memcpy(s->key, t.key, TR_KEY_LEN);
    s->txt = t;
    svc_endpoint(&s->addr, iface, a, port);
    if (moved) peer_update(d, old);
    peer_update(d, s->key);
}

static void svc_resolve(tr_discovery_t *d, disc_svc_t *s)
{
    if (s->resolver || !d->client) return;
    /* Same address family as the announcement: an IPv4 and an IPv6 sighting
     * of one service give us both of its addresses. */
    s->resolver = avahi_service_resolver_new(d->client, s->iface, s->proto, s->name, d->service,
                                             s->domain, s->proto, 0, resolve_cb, s);
    if (!s->resolver) {
        char why[160];
        snprintf(why, sizeof why, "cannot start resolving it: %s", disc_error(d));
        timer_arm(d, &s->retry, DISC_RESOLVE_RETRY_MS, svc_retry_cb, s);
        svc_ignore(d, s, TR_DISCOVERY_DEBUG, why);
    }
}

/* ---- browsing ----------------------------------------------------------- */

static void drop_services(tr_discovery_t *d)
{
    while (d->svcs)
        svc_remove(d, d->svcs);
}

static void browse_retry_cb(AvahiTimeout *t, void *arg)
{
    tr_discovery_t *d = arg;
    d->poll->timeout_update(t, NULL);
    browse(d);
}

static void browse_cb(AvahiServiceBrowser *b, AvahiIfIndex iface, AvahiProtocol proto,
                      AvahiBrowserEvent event, const char *name, const char *type,
                      const char *domain, AvahiLookupResultFlags flags, void *arg)
{
    (void)b, (void)type;
    tr_discovery_t *d = arg;
    disc_svc_t *s;
    switch (event) {
    case AVAHI_BROWSER_NEW:
        /* Not skipped on AVAHI_LOOKUP_RESULT_OUR_OWN: after a rename the
         * name we gave up belongs to another host, and Avahi reports it
         * only this once. Our own service is recognised by its key. */
        if (!name || !domain || strlen(name) >= sizeof s->name ||
            strlen(domain) >= sizeof s->domain || svc_find(d, iface, proto, name, domain))
            return;
        if (d->nsvcs >= DISC_MAX_SERVICES) {
            if (!d->full_warned)
                disc_log(d, TR_DISCOVERY_WARN,
                         "discovery: more than %d %s services on the network; ignoring the rest",
                         DISC_MAX_SERVICES, d->service);
            d->full_warned = true;
            return;
        }
        if (!(s = calloc(1, sizeof *s))) return;
        s->d = d;
        s->iface = iface;
        s->proto = proto;
        s->own = (flags & AVAHI_LOOKUP_RESULT_OUR_OWN) != 0;
        snprintf(s->name, sizeof s->name, "%s", name);
        snprintf(s->domain, sizeof s->domain, "%s", domain);
        s->next = d->svcs;
        d->svcs = s;
        d->nsvcs++;
        svc_resolve(d, s);
        break;
    case AVAHI_BROWSER_REMOVE:
        if (name && domain && (s = svc_find(d, iface, proto, name, domain))) svc_remove(d, s);
        if (d->nsvcs < DISC_MAX_SERVICES) d->full_warned = false;
        break;
    case AVAHI_BROWSER_FAILURE:
        disc_log(d, TR_DISCOVERY_WARN, "discovery: browsing %s failed: %s; retrying", d->service,
                 disc_error(d));
        avahi_service_browser_free(d->browser);
        d->browser = NULL;
        drop_services(d);
        timer_arm(d, &d->t_browse, DISC_BROWSE_RETRY_MS, browse_retry_cb, d);
        break;
    case AVAHI_BROWSER_ALL_FOR_NOW:
    case AVAHI_BROWSER_CACHE_EXHAUSTED:
        break;
    }
}

static void browse(tr_discovery_t *d)
{
    if (d->browser || !d->client || avahi_client_get_state(d->client) != AVAHI_CLIENT_S_RUNNING)
        return;
    d->browser = avahi_service_browser_new(d->client, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                           d->service, NULL, 0, browse_cb, d);
    if (!d->browser) {
        disc_log(d, TR_DISCOVERY_WARN, "discovery: cannot browse %s: %s; retrying", d->service,
                 disc_error(d));
        timer_arm(d, &d->t_browse, DISC_BROWSE_RETRY_MS, browse_retry_cb, d);
    }
}

/* ---- publishing --------------------------------------------------------- */

/* Our TXT RDATA from the current name, key, versions and repositories. */
static void encode_txt(tr_discovery_t *d)
{
    tr_discovery_txt_t t = {.vmin = d->vmin, .vmax = d->vmax};
    memcpy(t.key, d->key, TR_KEY_LEN);
    memcpy(t.name, d->name, sizeof t.name);
    t.has_repos = d->nrepos <= TR_DISCOVERY_TXT_MAX_REPOS;
    t.nrepos = t.has_repos ? d->nrepos : 0;
    memcpy(t.repos, d->repos, sizeof t.repos);
    tr_err_t err;
    /* Checked in tr_discovery_new with the same name and versions. */
    if (tr_discovery_txt_encode(&t, d->txt, sizeof d->txt, &d->txtlen, &err) != TR_OK)
        d->txtlen = 0;
}

/* The DNS wire form of an escaped name ("a\.b.local" → 3"a.b" 5"local" 0). */
static int dns_wire(const char *name, uint8_t *out, size_t cap, size_t *len)
{
    size_t o = 0;
    char label[AVAHI_LABEL_MAX];
    while (*name) {
        if (!avahi_unescape_label(&name, label, sizeof label)) return -1;
        size_t n = strlen(label);
        if (n == 0 || n > 63 || o + 1 + n + 1 > cap) return -1;
        out[o++] = (uint8_t)n;
        memcpy(out + o, label, n);
        o += n;
    }
    out[o++] = 0;
    *len = o;
    return 0;
}

/* Adds our four records to the (empty) entry group: the browse PTR with
 * the short TTL, SRV and TXT (unique: probed, so a name clash is noticed),
 * and the service-type enumeration PTR. Returns an AVAHI_ERR_* code. */
static int add_records(tr_discovery_t *d)
{
    AvahiClient *c = d->client;
    const char *domain = avahi_client_get_domain_name(c);
    const char *host = avahi_client_get_host_name_fqdn(c);
    if (!domain || !host) return avahi_client_errno(c);
    char type[AVAHI_DOMAIN_NAME_MAX], enumname[AVAHI_DOMAIN_NAME_MAX];
    snprintf(type, sizeof type, "%s.%s", d->service, domain);
    snprintf(enumname, sizeof enumname, "_services._dns-sd._udp.%s", domain);
    if (avahi_service_name_join(d->fullname, sizeof d->fullname, d->instance, d->service, domain) <
        0)
        return AVAHI_ERR_INVALID_SERVICE_NAME;
    uint8_t ptr[AVAHI_DOMAIN_NAME_MAX], srv[6 + AVAHI_DOMAIN_NAME_MAX], tptr[AVAHI_DOMAIN_NAME_MAX];
    size_t ptrlen, srvlen, tptrlen;
    if (dns_wire(d->fullname, ptr, sizeof ptr, &ptrlen) ||
        dns_wire(host, srv + 6, sizeof srv - 6, &srvlen) ||
        dns_wire(type, tptr, sizeof tptr, &tptrlen))
        return AVAHI_ERR_INVALID_DOMAIN_NAME;
    memset(srv, 0, 4); /* priority 0, weight 0 */
    srv[4] = (uint8_t)(d->port >> 8);
    srv[5] = (uint8_t)d->port;
    srvlen += 6;
    AvahiEntryGroup *g = d->group;
    int rc;
    if ((rc = avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                           AVAHI_PUBLISH_UNIQUE, d->fullname, AVAHI_DNS_CLASS_IN,
                                           AVAHI_DNS_TYPE_SRV, DISC_SRV_TTL, srv, srvlen)) < 0 ||
        (rc = avahi_entry_group_add_record(
             g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, AVAHI_PUBLISH_UNIQUE, d->fullname,
             AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_TXT, DISC_TXT_TTL, d->txt, d->txtlen)) < 0 ||
        (rc = avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0, type,
                                           AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_PTR, d->ttl_s, ptr,
                                           ptrlen)) < 0 ||
        (rc = avahi_entry_group_add_record(g, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, 0, enumname,
                                           AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_PTR, DISC_TXT_TTL,
                                           tptr, tptrlen)) < 0)
        return rc;
    return AVAHI_OK;
}

/* Picks the next name after a clash: "ana" → "ana #2" → "ana #3". */
static void rename_instance(tr_discovery_t *d, const char *where)
{
    char *n = avahi_alternative_service_name(d->instance);
    if (!n) return;
    disc_log(d, TR_DISCOVERY_INFO, "discovery: service name '%s' is taken %s; now '%s'",
             d->instance, where, n);
    snprintf(d->instance, sizeof d->instance, "%s", n);
    avahi_free(n);
}

static void publish_retry_cb(AvahiTimeout *t, void *arg)
{
    tr_discovery_t *d = arg;
    d->poll->timeout_update(t, NULL);
    publish(d);
}

static void group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *arg)
{
    tr_discovery_t *d = arg;
    switch (state) {
    case AVAHI_ENTRY_GROUP_ESTABLISHED:
        disc_log(d, TR_DISCOVERY_INFO, "discovery: published as '%s' (%s, port %u)", d->instance,
                 d->service, d->port);
        break;
    case AVAHI_ENTRY_GROUP_COLLISION:
        rename_instance(d, "on the network");
        avahi_entry_group_reset(g);
        publish(d);
        break;
    case AVAHI_ENTRY_GROUP_FAILURE:
        disc_log(d, TR_DISCOVERY_WARN, "discovery: publishing failed: %s; retrying", disc_error(d));
        avahi_entry_group_reset(g);
        timer_arm(d, &d->t_publish, DISC_PUBLISH_RETRY_MS, publish_retry_cb, d);
        break;
    case AVAHI_ENTRY_GROUP_UNCOMMITED:
    case AVAHI_ENTRY_GROUP_REGISTERING:
        break;
    }
}

/* Publishes our records unless they already are. A name that another
 * local program holds fails at once with a collision; one held elsewhere
 * on the network comes back later through group_cb. */
static void publish(tr_discovery_t *d)
{
    if (!d->client || avahi_client_get_state(d->client) != AVAHI_CLIENT_S_RUNNING) return;
    if (!d->group && !(d->group = avahi_entry_group_new(d->client, group_cb, d))) {
        disc_log(d, TR_DISCOVERY_WARN, "discovery: cannot publish: %s; retrying", disc_error(d));
        timer_arm(d, &d->t_publish, DISC_PUBLISH_RETRY_MS, publish_retry_cb, d);
        return;
    }
    if (!avahi_entry_group_is_empty(d->group)) return;
    for (int tries = 0; tries < 32; tries++) {
        int rc = add_records(d);
        if (rc == AVAHI_OK) rc = avahi_entry_group_commit(d->group);
        if (rc == AVAHI_OK) return;
        avahi_entry_group_reset(d->group);
        if (rc != AVAHI_ERR_COLLISION) {
            disc_log(d, TR_DISCOVERY_WARN, "discovery: cannot publish '%s': %s; retrying",
                     d->instance, avahi_strerror(rc));
            break;
        }
        rename_instance(d, "on this host");
    }
    timer_arm(d, &d->t_publish, DISC_PUBLISH_RETRY_MS, publish_retry_cb, d);
}

/* The owner changed what we publish: update the TXT record in place (a
 * reset would withdraw us, and peers would see us leave and come back). */
static void cmd_cb(AvahiWatch *w, int fd, AvahiWatchEvent event, void *arg)
{
    (void)w, (void)event;
    tr_discovery_t *d = arg;
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof n);
    (void)r;
    pthread_mutex_lock(&d->mu);
    bool repos = d->cmd_repos;
    if (repos) {
        memcpy(d->repos, d->new_repos, sizeof d->repos);
        d->nrepos = d->new_nrepos;
        d->cmd_repos = false;
    }
    pthread_mutex_unlock(&d->mu);
    if (!repos) return;
    encode_txt(d);
    if (!d->group || !d->client || avahi_client_get_state(d->client) != AVAHI_CLIENT_S_RUNNING ||
        avahi_entry_group_is_empty(d->group))
        return; /* published with the new record when we next publish */
    int rc = avahi_entry_group_add_record(
        d->group, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, AVAHI_PUBLISH_UNIQUE | AVAHI_PUBLISH_UPDATE,
        d->fullname, AVAHI_DNS_CLASS_IN, AVAHI_DNS_TYPE_TXT, DISC_TXT_TTL, d->txt, d->txtlen);
    if (rc < 0) {
        disc_log(d, TR_DISCOVERY_DEBUG,
                 "discovery: cannot update the TXT record (%s); republishing", avahi_strerror(rc));
        avahi_entry_group_reset(d->group);
        publish(d);
    }
}

/* ---- the client --------------------------------------------------------- */

/* Forgets everything learnt through a client that is gone. Peers we can no
 * longer see are reported down; they come back when browsing resumes. */
static void drop_all(tr_discovery_t *d)
{
    if (d->browser) avahi_service_browser_free(d->browser);
    d->browser = NULL;
    drop_services(d);
    if (d->group) avahi_entry_group_free(d->group);
    d->group = NULL;
    timer_free(d, &d->t_publish);
    timer_free(d, &d->t_browse);
}

/* (Re)creates the client, on a timer so that the old one is never freed
 * inside its own callback. With AVAHI_CLIENT_NO_FAIL this succeeds while
 * the system bus is up, even without avahi-daemon (state CONNECTING, then
 * RUNNING when it appears); it fails only when D-Bus itself is missing, and
 * then we try again with a backoff. */
static void connect_cb(AvahiTimeout *t, void *arg)
{
    tr_discovery_t *d = arg;
    d->poll->timeout_update(t, NULL);
    if (d->client) {
        drop_all(d);
        avahi_client_free(d->client);
        d->client = NULL;
    }
    int error = 0;
    AvahiClient *c = avahi_client_new(d->poll, AVAHI_CLIENT_NO_FAIL, client_cb, d, &error);
    if (!c) {
        d->client = NULL; /* client_cb may have seen it before it was freed */
        disc_state(
            d, false,
            "avahi-daemon is not running (no system D-Bus: %s); discovery starts when it does",
            avahi_strerror(error));
        unsigned ms = d->connect_backoff_ms ? d->connect_backoff_ms : DISC_RETRY_MIN_MS;
        d->connect_backoff_ms = ms * 2 > DISC_RETRY_MAX_MS ? DISC_RETRY_MAX_MS : ms * 2;
        timer_arm(d, &d->t_connect, ms, connect_cb, d);
        return;
    }
    d->client = c;
}

static void client_cb(AvahiClient *c, AvahiClientState state, void *arg)
{
    tr_discovery_t *d = arg;
    d->client = c; /* the first call comes from inside avahi_client_new() */
    switch (state) {
    case AVAHI_CLIENT_S_RUNNING:
        d->connect_backoff_ms = 0;
        disc_state(d, true, "publishing and browsing %s on port %u", d->service, d->port);
        publish(d);
        browse(d);
        break;
    case AVAHI_CLIENT_S_COLLISION:
    case AVAHI_CLIENT_S_REGISTERING:
        /* The host name is being (re)established; our SRV names it, so
         * withdraw until the server is running again. */
        if (d->group) avahi_entry_group_reset(d->group);
        break;
    case AVAHI_CLIENT_CONNECTING:
        disc_state(d, false, "avahi-daemon is not running; discovery starts when it does");
        break;
    case AVAHI_CLIENT_FAILURE: {
        int e = avahi_client_errno(c);
        disc_state(d, false, "avahi-daemon %s (%s); discovery resumes when it is back",
                   e == AVAHI_ERR_DISCONNECTED ? "went away" : "failed", avahi_strerror(e));
        drop_all(d);
        unsigned ms = d->connect_backoff_ms;
        d->connect_backoff_ms =
            ms ? (ms * 2 > DISC_RETRY_MAX_MS ? DISC_RETRY_MAX_MS : ms * 2) : 100;
        timer_arm(d, &d->t_connect, ms, connect_cb, d);
        break;
    }
    }
}

/* ---- setup and teardown ------------------------------------------------- */

int disc_avahi_init(tr_discovery_t *d)
{
    const char *n = d->name[0] ? d->name : "trellis";
    /* The instance name is one DNS label: cut at 63 bytes, on a character. */
    size_t len = strlen(n);
    if (len > TR_DISCOVERY_INSTANCE_MAX) {
        len = TR_DISCOVERY_INSTANCE_MAX;
        while (len && ((unsigned char)n[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(d->instance, n, len);
    d->instance[len] = '\0';
    encode_txt(d);
    if (!d->txtlen) return -1;
    d->cmd_watch = d->poll->watch_new(d->poll, d->cmdfd, AVAHI_WATCH_IN, cmd_cb, d);
    timer_arm(d, &d->t_connect, 0, connect_cb, d);
    return d->cmd_watch && d->t_connect ? 0 : -1;
}

void disc_avahi_fini(tr_discovery_t *d)
{
    /* Freeing the client first closes its bus: the objects it owns are then
     * freed without a round trip each, and avahi-daemon withdraws our
     * records (with a goodbye) when it sees us go. */
    if (d->client) avahi_client_free(d->client);
    d->client = NULL;
    d->browser = NULL;
    d->group = NULL;
    while (d->svcs) {
        disc_svc_t *s = d->svcs;
        d->svcs = s->next;
        timer_free(d, &s->retry);
        free(s);
    }
    d->nsvcs = 0;
    while (d->peers) {
        disc_peer_t *p = d->peers;
        d->peers = p->next;
        free(p);
    }
    timer_free(d, &d->t_connect);
    timer_free(d, &d->t_publish);
    timer_free(d, &d->t_browse);
    if (d->cmd_watch) d->poll->watch_free(d->cmd_watch);
    d->cmd_watch = NULL;
}
