/* discovery.c — the owner's side of tr_discovery_t: construction and
 * teardown, the queue of events the Avahi thread posts, and the commands
 * the owner sends it (see discovery_internal.h for who touches what). */
#include "discovery_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- posting (Avahi thread) --------------------------------------------- */

static void disc_wake(int fd)
{
    uint64_t one = 1;
    /* Only fails with EAGAIN when the counter is near overflow, i.e. the
     * descriptor is readable already: nothing is lost. */
    ssize_t w = write(fd, &one, sizeof one);
    (void)w;
}

void disc_post(tr_discovery_t *d, disc_ev_t *ev)
{
    ev->next = NULL;
    pthread_mutex_lock(&d->mu);
    if (d->evq_tail)
        d->evq_tail->next = ev;
    else
        d->evq = ev;
    d->evq_tail = ev;
    pthread_mutex_unlock(&d->mu);
    disc_wake(d->evfd);
}

void disc_log(tr_discovery_t *d, int level, const char *fmt, ...)
{
    if (!d->cb.log) return;
    disc_ev_t *ev = calloc(1, sizeof *ev);
    if (!ev) return;
    ev->type = EV_LOG;
    ev->level = level;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev->text, sizeof ev->text, fmt, ap);
    va_end(ap);
    disc_post(d, ev);
}

/* Posts a state change; a repeat of the state last posted is dropped, so
 * the owner hears "off" once however many reconnection attempts fail. */
void disc_state(tr_discovery_t *d, bool on, const char *fmt, ...)
{
    if (d->reported && d->on == on) return;
    d->reported = true;
    d->on = on;
    disc_ev_t *ev = calloc(1, sizeof *ev);
    va_list ap;
    va_start(ap, fmt);
    char why[sizeof ev->text];
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&d->mu);
    d->state_on = on;
    snprintf(d->state_why, sizeof d->state_why, "%s", why);
    pthread_mutex_unlock(&d->mu);
    if (!ev) return;
    ev->type = EV_STATE;
    ev->on = on;
    memcpy(ev->text, why, sizeof why);
    disc_post(d, ev);
}

/* ---- the owner's API ---------------------------------------------------- */

/* Keeps the ids only when they fit in the TXT record; past that only the
 * count matters (the key is left out). */
static void disc_copy_repos(uint8_t dst[][TR_REPO_ID_LEN], size_t *dn,
                            const uint8_t (*repos)[TR_REPO_ID_LEN], size_t n)
{
    *dn = n;
    if (n && n <= TR_DISCOVERY_TXT_MAX_REPOS) memcpy(dst, repos, n * TR_REPO_ID_LEN);
}

int tr_discovery_new(tr_discovery_t **out, const tr_discovery_cfg_t *cfg,
                     const tr_discovery_cb_t *cb, void *arg, tr_err_t *err)
{
    *out = NULL;
    const char *name = cfg->name ? cfg->name : "";
    unsigned vmin = cfg->vmin ? cfg->vmin : TR_PROTO_MIN_VERSION;
    unsigned vmax = cfg->vmax ? cfg->vmax : TR_PROTO_VERSION;
    const char *service = cfg->service ? cfg->service : TR_DISCOVERY_SERVICE;
    if (!cfg->port) return tr_err_set(err, TR_EINVAL, "discovery needs the port we listen on");
    if (strlen(service) >= sizeof((tr_discovery_t *)0)->service || strncmp(service, "_", 1) != 0)
        return tr_err_set(err, TR_EINVAL, "bad DNS-SD service type '%s'", service);

    /* Check the TXT record we will publish now, so a bad name or version
     * range is the caller's error, not a silent failure on the thread. */
    tr_discovery_txt_t t = {.vmin = vmin, .vmax = vmax};
    memcpy(t.key, cfg->key, TR_KEY_LEN);
    if (strlen(name) > TR_NAME_MAX)
        return tr_err_set(err, TR_EINVAL, "display name longer than %d bytes", TR_NAME_MAX);
    memcpy(t.name, name, strlen(name) + 1);
    uint8_t probe[TR_DISCOVERY_TXT_MAX];
    size_t plen;
    int rc = tr_discovery_txt_encode(&t, probe, sizeof probe, &plen, err);
    if (rc) return rc;

    tr_discovery_t *d = calloc(1, sizeof *d);
    if (!d) return tr_err_set(err, TR_ENOMEM, "out of memory");
    d->evfd = d->cmdfd = -1;
    if (cb) d->cb = *cb;
    d->arg = arg;
    memcpy(d->key, cfg->key, TR_KEY_LEN);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->port = cfg->port;
    d->vmin = vmin;
    d->vmax = vmax;
    d->ttl_s = cfg->ttl_s ? cfg->ttl_s : TR_DISCOVERY_TTL_S;
    snprintf(d->service, sizeof d->service, "%s", service);
    pthread_mutex_init(&d->mu, NULL);
    snprintf(d->state_why, sizeof d->state_why, "starting");
    disc_copy_repos(d->repos, &d->nrepos, cfg->repos, cfg->nrepos);
    d->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    d->cmdfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (d->evfd < 0 || d->cmdfd < 0) {
        rc = tr_err_set(err, TR_EIO, "cannot create an eventfd: %s", strerror(errno));
        goto fail;
    }
    if (!(d->tp = avahi_threaded_poll_new())) {
        rc = tr_err_set(err, TR_ENOMEM, "cannot create the Avahi poll");
        goto fail;
    }
    d->poll = avahi_threaded_poll_get(d->tp);
    if (disc_avahi_init(d) != 0) {
        rc = tr_err_set(err, TR_ENOMEM, "cannot set up Avahi timers");
        goto fail;
    }
    if (avahi_threaded_poll_start(d->tp) < 0) {
        rc = tr_err_set(err, TR_EIO, "cannot start the discovery thread");
        goto fail;
    }
    *out = d;
    return TR_OK;
fail:
    tr_discovery_destroy(&d);
    return rc;
}

void tr_discovery_destroy(tr_discovery_t **dp)
{
    if (!dp || !*dp) return;
    tr_discovery_t *d = *dp;
    if (d->tp) {
        avahi_threaded_poll_stop(d->tp); /* joins; harmless if never started */
        disc_avahi_fini(d);
        avahi_threaded_poll_free(d->tp);
    }
    for (disc_ev_t *e = d->evq, *n; e; e = n) {
        n = e->next;
        free(e);
    }
    if (d->evfd >= 0) close(d->evfd);
    if (d->cmdfd >= 0) close(d->cmdfd);
    pthread_mutex_destroy(&d->mu);
    free(d);
    *dp = NULL;
}

int tr_discovery_fd(const tr_discovery_t *d)
{
    return d->evfd;
}

size_t tr_discovery_process(tr_discovery_t *d)
{
    uint64_t n;
    ssize_t r = read(d->evfd, &n, sizeof n); /* resets the counter; EAGAIN: nothing */
    (void)r;
    pthread_mutex_lock(&d->mu);
    disc_ev_t *e = d->evq;
    d->evq = d->evq_tail = NULL;
    pthread_mutex_unlock(&d->mu);
    size_t count = 0;
    for (disc_ev_t *next; e; e = next, count++) {
        next = e->next;
        switch (e->type) {
        case EV_UP:
            if (d->cb.peer_up) d->cb.peer_up(d->arg, &e->peer);
            break;
        case EV_DOWN:
            if (d->cb.peer_down) d->cb.peer_down(d->arg, e->peer.key);
            break;
        case EV_STATE:
            if (d->cb.state) d->cb.state(d->arg, e->on, e->text);
            break;
        case EV_LOG:
            if (d->cb.log) d->cb.log(d->arg, e->level, e->text);
            break;
        }
        free(e);
    }
    return count;
}

void tr_discovery_set_repos(tr_discovery_t *d, const uint8_t (*repos)[TR_REPO_ID_LEN], size_t n)
{
    pthread_mutex_lock(&d->mu);
    disc_copy_repos(d->new_repos, &d->new_nrepos, repos, n);
    d->cmd_repos = true;
    pthread_mutex_unlock(&d->mu);
    disc_wake(d->cmdfd);
}

bool tr_discovery_state(tr_discovery_t *d, char *buf, size_t n)
{
    pthread_mutex_lock(&d->mu);
    bool on = d->state_on;
    if (buf && n) snprintf(buf, n, "%s", d->state_why);
    pthread_mutex_unlock(&d->mu);
    return on;
}
