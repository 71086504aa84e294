/* peers.c — the peer table and agent.json, the agent's configuration:
 *
 *   {"name": "ana-laptop", "listen": "tcp://0.0.0.0:7437",
 *    "repos": ["/home/ana/notes"],
 *    "peers": [{"id": "<peer id>", "name": "bob", "endpoint": "tcp://10.1.2.3:7437",
 *               "trusted": true}]}
 *
 * Every key is optional. Errors name the file and the key. The file is
 * rewritten atomically (temporary file, fsync, rename) whenever the agent
 * changes it (repo add/rm, peer add/trust/untrust). */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../lib/tr_log.h"

static void curve_of(const uint8_t key[TR_KEY_LEN], uint8_t curve[32])
{
    if (crypto_sign_ed25519_pk_to_curve25519(curve, key) != 0) memset(curve, 0, 32);
}

peer_t *peers_find_key(agent_t *a, const uint8_t key[TR_KEY_LEN])
{
    for (size_t i = 0; i < a->npeers; i++)
        if (a->peers[i]->has_key && memcmp(a->peers[i]->key, key, TR_KEY_LEN) == 0)
            return a->peers[i];
    return NULL;
}

peer_t *peers_find_curve(agent_t *a, const uint8_t curve[32])
{
    for (size_t i = 0; i < a->npeers; i++)
        if (memcmp(a->peers[i]->curve, curve, 32) == 0) return a->peers[i];
    return NULL;
}

static peer_t *peers_append(agent_t *a)
{
    peer_t **n = realloc(a->peers, (a->npeers + 1) * sizeof *n);
    if (!n) return NULL;
    a->peers = n;
    peer_t *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->agent = a;
    p->retry_timer = -1;
    a->peers[a->npeers++] = p;
    return p;
}

/* Adds a peer by key, or updates the one there: a knock by the same CURVE key
 * becomes this peer; a later source never downgrades a static one. */
int peers_add(agent_t *a, const uint8_t key[TR_KEY_LEN], const char *name, const char *endpoint,
              int source, bool trusted, peer_t **out, tr_err_t *err)
{
    uint8_t curve[32];
    curve_of(key, curve);
    if (sodium_is_zero(curve, 32))
        return tr_err_set(err, TR_EINVAL, "that key is not a valid Ed25519 public key");
    if (endpoint && endpoint[0] && strncmp(endpoint, "tcp://", 6) != 0)
        return tr_err_set(err, TR_EINVAL, "endpoint '%s' must look like tcp://HOST:PORT", endpoint);
    if (endpoint && strlen(endpoint) >= sizeof((peer_t *)0)->endpoint)
        return tr_err_set(err, TR_ETOOBIG, "endpoint too long");
    if (memcmp(key, tr_identity_public(a->id), TR_KEY_LEN) == 0)
        return tr_err_set(err, TR_EINVAL, "that is this agent's own key");
    peer_t *p = peers_find_key(a, key);
    if (!p) p = peers_find_curve(a, curve); /* a knock, now known by its identity */
    bool fresh = !p;
    if (!p && !(p = peers_append(a))) return tr_err_set(err, TR_ENOMEM, "out of memory");
    p->has_key = true;
    memcpy(p->key, key, TR_KEY_LEN);
    memcpy(p->curve, curve, 32);
    if (name && name[0]) snprintf(p->name, sizeof p->name, "%s", name);
    if (endpoint && endpoint[0]) snprintf(p->endpoint, sizeof p->endpoint, "%s", endpoint);
    if (fresh || source == PEER_STATIC || p->source == PEER_KNOCK) p->source = source;
    p->trusted = p->trusted || trusted;
    if (out) *out = p;
    return TR_OK;
}

void peers_knock(agent_t *a, const uint8_t curve[32])
{
    peer_t *p = peers_find_curve(a, curve);
    if (p) {
        if (p->trusted) return; /* trusted a moment ago; zauth saw the old set */
    } else {
        /* Knocks cost a table entry each: keep the newest AGENT_MAX_KNOCKS,
         * reusing the oldest entry (a key that knocks again is seen again). */
        size_t knocks = 0;
        peer_t *oldest = NULL;
        for (size_t i = 0; i < a->npeers; i++) {
            peer_t *q = a->peers[i];
            if (q->source != PEER_KNOCK || q->has_key) continue;
            knocks++;
            if (!oldest || q->last_seen_ms < oldest->last_seen_ms) oldest = q;
        }
        if (knocks >= AGENT_MAX_KNOCKS && oldest) {
            p = oldest;
            free(p->repos);
            memset(p, 0, sizeof *p);
            p->agent = a;
            p->retry_timer = -1;
        } else if (!(p = peers_append(a))) {
            return;
        }
        memcpy(p->curve, curve, 32);
        p->source = PEER_KNOCK;
        char z[41];
        zmq_z85_encode(z, curve, 32);
        tr_log_info("untrusted key knocked: curve %.16s… (trust it with `trellis peer trust ID` "
                    "once you know its peer id)", z);
        agent_event(a, "peer.untrusted", NULL, json_pack("{s:s}", "curve", z));
    }
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    p->last_seen_ms = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void peers_free(agent_t *a)
{
    for (size_t i = 0; i < a->npeers; i++) {
        free(a->peers[i]->repos);
        free(a->peers[i]);
    }
    free(a->peers);
    a->peers = NULL;
    a->npeers = 0;
    for (size_t i = 0; i < a->ncfg_repos; i++) free(a->cfg_repos[i]);
    free(a->cfg_repos);
    a->cfg_repos = NULL;
    a->ncfg_repos = 0;
}

static void config_path(const agent_t *a, char *out, size_t n)
{
    snprintf(out, n, "%s/agent.json", tr_home_config(a->home));
}

/* A string member, or NULL when absent; TR_ECONFIG when of another type. */
static int get_str(json_t *o, const char *key, const char *path, const char *where,
                   const char **out, size_t max, tr_err_t *err)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v) return TR_OK;
    if (!json_is_string(v) || json_string_length(v) >= max)
        return tr_err_set(err, TR_ECONFIG, "%s: %s%s: must be a string of under %zu bytes", path,
                          where, key, max);
    *out = json_string_value(v);
    return TR_OK;
}

int agent_config_load(agent_t *a, tr_err_t *err)
{
    char path[4200];
    config_path(a, path, sizeof path);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (access(path, F_OK) != 0) return TR_OK; /* first start: defaults */
        return tr_err_set(err, TR_ECONFIG, "%s:%d: %s", path, je.line, je.text);
    }
    int rc = TR_OK;
    const char *s;
    if (!json_is_object(root)) {
        rc = tr_err_set(err, TR_ECONFIG, "%s: must hold a JSON object", path);
        goto out;
    }
    if ((rc = get_str(root, "name", path, "", &s, sizeof a->name, err))) goto out;
    if (s) snprintf(a->name, sizeof a->name, "%s", s);
    if ((rc = get_str(root, "listen", path, "", &s, sizeof a->listen, err))) goto out;
    if (s) snprintf(a->listen, sizeof a->listen, "%s", s);

    json_t *repos = json_object_get(root, "repos"), *v;
    size_t i;
    if (repos && !json_is_array(repos)) {
        rc = tr_err_set(err, TR_ECONFIG, "%s: repos: must be an array of paths", path);
        goto out;
    }
    json_array_foreach(repos, i, v)
    {
        if (!json_is_string(v) || json_string_value(v)[0] != '/') {
            rc = tr_err_set(err, TR_ECONFIG, "%s: repos[%zu]: must be an absolute path", path, i);
            goto out;
        }
        char **n = realloc(a->cfg_repos, (a->ncfg_repos + 1) * sizeof *n);
        if (!n || !(n[a->ncfg_repos] = strdup(json_string_value(v)))) {
            if (n) a->cfg_repos = n;
            rc = tr_err_set(err, TR_ENOMEM, "out of memory");
            goto out;
        }
        a->cfg_repos = n;
        a->ncfg_repos++;
    }

    json_t *peers = json_object_get(root, "peers");
    if (peers && !json_is_array(peers)) {
        rc = tr_err_set(err, TR_ECONFIG, "%s: peers: must be an array", path);
        goto out;
    }
    json_array_foreach(peers, i, v)
    {
        char where[32];
        snprintf(where, sizeof where, "peers[%zu].", i);
        const char *id, *name, *ep;
        if (!json_is_object(v)) {
            rc = tr_err_set(err, TR_ECONFIG, "%s: peers[%zu]: must be an object", path, i);
            goto out;
        }
        if ((rc = get_str(v, "id", path, where, &id, 128, err)) ||
            (rc = get_str(v, "name", path, where, &name, TR_NAME_MAX + 1, err)) ||
            (rc = get_str(v, "endpoint", path, where, &ep, 256, err)))
            goto out;
        json_t *t = json_object_get(v, "trusted");
        if (t && !json_is_boolean(t)) {
            rc = tr_err_set(err, TR_ECONFIG, "%s: %strusted: must be true or false", path, where);
            goto out;
        }
        uint8_t key[TR_KEY_LEN];
        tr_err_t perr;
        if (!id || tr_peer_id_parse(id, key, &perr) != TR_OK) {
            rc = tr_err_set(err, TR_ECONFIG, "%s: %sid: %s", path, where,
                            id ? perr.msg : "missing");
            goto out;
        }
        if ((rc = peers_add(a, key, name, ep, ep && ep[0] ? PEER_STATIC : PEER_DISCOVERED,
                            !t || json_is_true(t), NULL, &perr))) {
            rc = tr_err_set(err, TR_ECONFIG, "%s: peers[%zu]: %s", path, i, perr.msg);
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

int agent_config_save(agent_t *a, tr_err_t *err)
{
    char path[4200], tmp[4300];
    config_path(a, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    json_t *root = json_object(), *repos = json_array(), *peers = json_array();
    if (!root || !repos || !peers) {
        json_decref(root), json_decref(repos), json_decref(peers);
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    json_object_set_new(root, "name", json_string(a->name));
    json_object_set_new(root, "listen", json_string(a->listen));
    for (size_t i = 0; i < a->nrepos; i++)
        if (!a->repos[i]->is_default) json_array_append_new(repos, json_string(a->repos[i]->path));
    /* Configured repositories that could not be opened (an unmounted disk)
     * stay configured: the next start tries them again. */
    for (size_t i = 0; i < a->ncfg_repos; i++)
        if (!repos_find_path(a, a->cfg_repos[i]))
            json_array_append_new(repos, json_string(a->cfg_repos[i]));
    json_object_set_new(root, "repos", repos);
    for (size_t i = 0; i < a->npeers; i++) {
        peer_t *p = a->peers[i];
        /* Keys that only knocked, and untrusted discoveries, are not config. */
        if (!p->has_key || (!p->trusted && p->source != PEER_STATIC)) continue;
        char id[TR_PEER_ID_STRLEN + 1];
        tr_peer_id(id, p->key);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(id));
        if (p->name[0]) json_object_set_new(o, "name", json_string(p->name));
        if (p->endpoint[0]) json_object_set_new(o, "endpoint", json_string(p->endpoint));
        json_object_set_new(o, "trusted", json_boolean(p->trusted));
        json_array_append_new(peers, o);
    }
    json_object_set_new(root, "peers", peers);

    int rc = TR_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (fd < 0 || !text) {
        rc = tr_err_set(err, TR_EIO, "cannot write %s: %s", tmp, strerror(errno));
    } else {
        size_t n = strlen(text), off = 0;
        while (off < n) {
            ssize_t w = write(fd, text + off, n - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += (size_t)w;
        }
        if (off < n || write(fd, "\n", 1) != 1 || fsync(fd) != 0)
            rc = tr_err_set(err, errno == ENOSPC ? TR_ENOSPC : TR_EIO, "cannot write %s: %s",
                            tmp, strerror(errno));
    }
    if (fd >= 0) close(fd);
    free(text);
    if (rc == TR_OK && rename(tmp, path) != 0)
        rc = tr_err_set(err, TR_EIO, "cannot replace %s: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}
