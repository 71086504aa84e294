/*
 * repos.c — the repositories trellisd serves: a small registry (an array in
 * agent_t; agents serve a handful of repositories, so lookups are linear
 * scans), the default repository under the data directory, and the change
 * poll that notices writes made by other processes (the CLI) so that they
 * reach peers without a control message.
 *
 * Ownership: a served_t owns its tr_repo_t (and so its store) and its path.
 * Nothing outside this file keeps a served_t or a store pointer across loop
 * iterations: sessions find stores by repo id on every call (host.c), so
 * removing a repository cannot leave them a dangling pointer.
 *
 * Persistence and announcement are the caller's: after repos_add or
 * repos_remove it saves agent.json (agent_config_save) and calls
 * agent_reshare so that every session sends a new hello.
 */
#include "agent.h"

#include <errno.h>
#include <sodium.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../lib/tr_log.h"

served_t *repos_find_id(agent_t *a, const uint8_t id[TR_REPO_ID_LEN])
{
    for (size_t i = 0; i < a->nrepos; i++)
        if (memcmp(a->repos[i]->id, id, TR_REPO_ID_LEN) == 0) return a->repos[i];
    return NULL;
}

/* Served repositories are registered under their realpath'd root. A path
 * given by a user is resolved the same way when it still exists, and
 * compared as given otherwise (a repository whose directory was deleted can
 * still be removed from the list). */
served_t *repos_find_path(agent_t *a, const char *path)
{
    char *real = realpath(path, NULL);
    const char *p = real ? real : path;
    served_t *found = NULL;
    for (size_t i = 0; i < a->nrepos && !found; i++)
        if (strcmp(a->repos[i]->path, p) == 0 || strcmp(a->repos[i]->path, path) == 0)
            found = a->repos[i];
    free(real);
    return found;
}

static void served_free(served_t *r)
{
    tr_hmap_free(&r->conflicts);
    if (!r) return;
    tr_repo_destroy(&r->repo);
    free(r->path);
    free(r);
}

/* Opens the repository at `path` and registers it. Refuses a path already
 * served and a repository whose id is already served from another path (two
 * replicas of one repository in one agent would sync with nobody and race
 * each other's pushes). *out (if non-NULL) receives the entry, borrowed. */
int repos_add(agent_t *a, const char *path, bool is_default, served_t **out, tr_err_t *err)
{
    if (out) *out = NULL;
    if (!path || !*path) return tr_err_set(err, TR_EINVAL, "no repository path given");
    served_t *dup = repos_find_path(a, path);
    if (dup) return tr_err_set(err, TR_EEXIST, "%s is already served", dup->path);
    tr_repo_t *repo = NULL;
    int rc = tr_repo_open(path, 0, &repo, err);
    if (rc) return rc;
    const uint8_t *id = tr_repo_id(repo);
    dup = repos_find_id(a, id);
    if (dup) {
        char hex[TR_REPO_ID_HEXLEN + 1];
        tr_repo_id_hex(repo, hex);
        rc = tr_err_set(err, TR_EEXIST,
                        "%s is repository %s, which is already served from %s; "
                        "an agent serves one replica of each repository",
                        tr_repo_root(repo), hex, dup->path);
        tr_repo_destroy(&repo);
        return rc;
    }
    served_t *r = calloc(1, sizeof *r);
    served_t **n = realloc(a->repos, (a->nrepos + 1) * sizeof *n);
    if (n) a->repos = n;
    if (!r || !n || !(r->path = strdup(tr_repo_root(repo)))) {
        free(r);
        tr_repo_destroy(&repo);
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    r->repo = repo;
    memcpy(r->id, id, TR_REPO_ID_LEN);
    r->is_default = is_default;
    /* What is there now is announced by the hellos and haves; the poll
     * pushes only what comes later. */
    if (tr_store_count(tr_repo_store(repo), &r->last_count, NULL) != TR_OK) r->last_count = 0;
    tr_hmap_init(&r->conflicts, 1);
    a->repos[a->nrepos++] = r;
    repos_report_conflicts(a, r, NULL, NULL); /* records what is open already */
    if (out) *out = r;
    return TR_OK;
}

/* Unregisters and closes the repository at `path`. The default repository
 * cannot be removed (it would come back at the next start). Open streams of
 * its ops end with `nack internal` at their next frame. */
int repos_remove(agent_t *a, const char *path, tr_err_t *err)
{
    if (!path || !*path) return tr_err_set(err, TR_EINVAL, "no repository path given");
    /* A configured repository that could not be opened at start is still in
     * agent.json: removing it is removing it from there. */
    bool listed = false;
    for (size_t i = 0; i < a->ncfg_repos; i++) {
        if (strcmp(a->cfg_repos[i], path) != 0) continue;
        free(a->cfg_repos[i]);
        a->cfg_repos[i--] = a->cfg_repos[--a->ncfg_repos];
        listed = true;
    }
    served_t *r = repos_find_path(a, path);
    if (!r && listed) return TR_OK;
    if (!r) return tr_err_set(err, TR_ENOTFOUND, "%s is not served by this agent", path);
    if (r->is_default)
        return tr_err_set(err, TR_EINVAL,
                          "%s is the agent's default repository and is always served", r->path);
    size_t k = 0;
    for (size_t i = 0; i < a->nrepos; i++)
        if (a->repos[i] != r) a->repos[k++] = a->repos[i];
    a->nrepos = k;
    served_free(r);
    return TR_OK;
}

/* Opens <data dir>/default, creating it on first run, then every repository
 * listed in agent.json (a->cfg_repos). Only the default is required: a
 * listed repository that cannot be opened (an unmounted disk, a deleted
 * directory) is logged and skipped, and the agent serves the others. */
int repos_default(agent_t *a, tr_err_t *err)
{
    const char *data = tr_home_data(a->home);
    int rc = tr_home_mkdir(data, err);
    if (rc) return rc;
    size_t len = strlen(data) + sizeof "/default";
    char *path = malloc(len);
    if (!path) return tr_err_set(err, TR_ENOMEM, "out of memory");
    snprintf(path, len, "%s/default", data);
    served_t *def = repos_find_path(a, path);
    if (!def) {
        rc = repos_add(a, path, true, &def, err);
        if (rc == TR_ENOTREPO) {
            /* First run. Another agent starting at the same moment may win
             * the init (TR_EEXIST): then open what it made. */
            tr_repo_t *made = NULL;
            rc = tr_repo_init(path, &made, err);
            tr_repo_destroy(&made);
            if (rc == TR_OK || rc == TR_EEXIST) {
                rc = repos_add(a, path, true, &def, err);
                if (rc == TR_OK) tr_log_info("created the default repository %s", def->path);
            }
        }
    }
    free(path);
    if (rc) return tr_err_prefix(err, rc, "default repository: ");
    def->is_default = true;

    for (size_t i = 0; i < a->ncfg_repos; i++) {
        const char *p = a->cfg_repos[i];
        tr_err_t e;
        if (!p || !*p || repos_find_path(a, p)) continue; /* listed twice, or the default */
        if (repos_add(a, p, false, NULL, &e) != TR_OK) tr_log_warn("not serving %s: %s", p, e.msg);
    }
    return TR_OK;
}

/* Runs every AGENT_POLL_MS. tr_store_count is one read of the store's meta
 * table, so a poll costs a few microseconds per repository. Ops a session
 * integrated were already pushed (agent_sync_event updates last_count), so
 * only writes by other processes trigger a push here. */
void repos_poll(agent_t *a)
{
    for (size_t i = 0; i < a->nrepos; i++) {
        served_t *r = a->repos[i];
        uint64_t count;
        tr_err_t e;
        if (tr_store_count(tr_repo_store(r->repo), &count, &e) != TR_OK) {
            tr_log_warn("cannot read %s: %s", r->path, e.msg);
            continue;
        }
        if (count == r->last_count) continue;
        r->last_count = count;
        /* agent_push may run callbacks that look repositories up again; it
         * never adds or removes one, so r and i stay valid. */
        agent_push(a, r->id, NULL);
    }
}

/* Closes every served repository. a->cfg_repos belongs to the config
 * loader (peers.c fills it and peers_free frees it). */
void repos_free(agent_t *a)
{
    for (size_t i = 0; i < a->nrepos; i++) served_free(a->repos[i]);
    free(a->repos);
    a->repos = NULL;
    a->nrepos = 0;
}

/* ---- conflicts ----------------------------------------------------------- */

typedef struct {
    agent_t *a;
    served_t *r;
    const peer_t *from;
    tr_hmap_t *now; /* the open set found by this scan */
    bool report;
} conflict_scan_t;

static int conflict_seen(void *arg, const char *branch, const uint8_t *key, size_t klen,
                         const uint8_t *state, size_t slen)
{
    (void)state;
    (void)slen;
    conflict_scan_t *c = arg;
    uint8_t id[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof id);
    crypto_generichash_update(&st, (const uint8_t *)branch, strlen(branch) + 1);
    crypto_generichash_update(&st, key, klen);
    crypto_generichash_final(&st, id, sizeof id);
    void *v;
    if (tr_hmap_put(c->now, id, &v, NULL)) return 0;
    if (!c->report || tr_hmap_get(&c->r->conflicts, id)) return 0;
    tr_crdt_key_t k;
    char hex[2 * TR_REPO_ID_LEN + 1];
    tr_hex(hex, c->r->id, TR_REPO_ID_LEN);
    json_t *f = json_pack("{s:s,s:s,s:s}", "repo", hex, "branch", branch, "reason", "manual");
    if (tr_crdt_key_parse(key, klen, &k, NULL) == TR_OK && k.nparts >= 2) {
        json_object_set_new(f, "target", json_stringn(k.part[0].p, k.part[0].n));
        json_object_set_new(f, "field", json_stringn(k.part[1].p, k.part[1].n));
    }
    agent_event(c->a, "conflict", c->from, f);
    return 0;
}

/* The open set is small (manual_resolution fields with several candidates):
 * a scan of its index after each received batch costs O(open conflicts). */
void repos_report_conflicts(agent_t *a, served_t *r, const char *branch, const peer_t *from)
{
    tr_hmap_t now;
    tr_hmap_init(&now, 1);
    conflict_scan_t c = {a, r, from, &now, r->conflicts_seeded};
    if (tr_store_conflicts(tr_repo_store(r->repo), branch, conflict_seen, &c, NULL) != TR_OK) {
        tr_hmap_free(&now);
        return;
    }
    /* After a one-branch scan, what other branches had open is kept: the
     * known set only grows while the repository is served (a conflict that
     * is resolved and opens again is not reported a second time). */
    if (branch) {
        size_t i = 0;
        const uint8_t *k;
        void *v;
        while (tr_hmap_next(&r->conflicts, &i, &k, &v)) {
            void *slot;
            (void)v;
            if (tr_hmap_put(&now, k, &slot, NULL)) break;
        }
    }
    tr_hmap_free(&r->conflicts);
    r->conflicts = now;
    r->conflicts_seeded = true;
}

