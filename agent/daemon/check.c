/* check.c — `trellisd --check-config`: validates what the agent would load
 * at start, without starting it, and says what is wrong with file and key.
 *
 *   the identity      identity.key: mode, owner, format (tr_home_identity)
 *   agent.json        with the agent's own loader (agent_config_load), which
 *                     stops at the first error; then the checks the loader
 *                     leaves to start-up (the listen endpoint's form) and
 *                     keys it does not know (warnings: typos lose settings)
 *   repositories      the default one and every one agent.json lists, each
 *                     opened read-only the way the agent opens it
 *                     (tr_repo_open: config.json through tr_config_parse, then
 *                     the store); an id served twice; unknown config keys
 *                     (warnings)
 *
 * When agent.json fails to load, its "repos" are still read (leniently) so
 * that their configs are checked too: one run reports an error per file.
 * Nothing is created or written. Errors and warnings go to stderr, one per
 * line, as "trellisd: FILE: KEY: what"; a summary goes to stdout. */
#include "agent.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/tr_log.h"

typedef struct {
    int errors, warnings;
} check_t;

static void check_error(check_t *k, const char *msg)
{
    fprintf(stderr, "trellisd: %s\n", msg);
    k->errors++;
}

static void check_warn(check_t *k, const char *fmt, ...) TR_PRINTF(2, 3);
static void check_warn(check_t *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("trellisd: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    k->warnings++;
}

/* Keys agent.json may hold (peers.c). Anything else is most likely a typo
 * that silently loses a setting, so it is reported, as a warning. */
static void check_unknown_keys(check_t *k, const char *path, json_t *root)
{
    static const char *const top[] = {"name", "listen", "repos", "peers", NULL};
    static const char *const peer[] = {"id", "name", "endpoint", "trusted", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        size_t i = 0;
        while (top[i] && strcmp(top[i], key))
            i++;
        if (!top[i]) check_warn(k, "%s: %s: unknown key (ignored)", path, key);
    }
    json_t *peers = json_object_get(root, "peers");
    size_t n;
    json_array_foreach(peers, n, v)
    {
        json_t *pv;
        json_object_foreach(v, key, pv)
        {
            size_t i = 0;
            while (peer[i] && strcmp(peer[i], key))
                i++;
            if (!peer[i]) check_warn(k, "%s: peers[%zu].%s: unknown key (ignored)", path, n, key);
        }
    }
}

/* The repository paths agent.json lists, read without the loader's rules
 * (used when the loader failed): every string in "repos". */
static char **check_lenient_repos(json_t *root, size_t *count)
{
    json_t *repos = json_object_get(root, "repos"), *v;
    size_t i, n = 0;
    char **out = calloc(json_array_size(repos) + 1, sizeof *out);
    if (!out) return NULL;
    json_array_foreach(repos, i, v) if (json_is_string(v)) out[n++] = strdup(json_string_value(v));
    *count = n;
    return out;
}

/* Opens one repository the way the agent does and reports what is wrong.
 * `where` names its origin for errors that are not the repository's own
 * ("<agent.json>: repos[2]"). Records its id in ids[*nids] when it opens. */
static void check_repo(check_t *k, const char *where, const char *path,
                       uint8_t (*ids)[TR_REPO_ID_LEN], char **id_paths, size_t *nids)
{
    tr_repo_t *r = NULL;
    tr_err_t err = {0};
    int rc = tr_repo_open(path, TR_REPO_RDONLY, &r, &err);
    if (rc == TR_ECONFIG || rc == TR_EVERSION) {
        check_error(k, err.msg); /* names the config.json and the key */
        return;
    }
    if (rc) {
        char msg[sizeof err.msg + 512];
        if (err.msg[0]) /* the store's and repo's messages name the path */
            snprintf(msg, sizeof msg, "%s: %s", where, err.msg);
        else
            snprintf(msg, sizeof msg, "%s: %s: %s", where, path, tr_strerror(rc));
        check_error(k, msg);
        return;
    }
    for (size_t i = 0; i < *nids; i++) {
        if (id_paths[i] && strcmp(id_paths[i], tr_repo_root(r)) == 0) {
            check_warn(k, "%s: %s is listed twice (served once)", where, tr_repo_root(r));
            tr_repo_destroy(&r);
            return;
        }
        if (memcmp(ids[i], tr_repo_id(r), TR_REPO_ID_LEN) == 0) {
            char msg[8400], hex[TR_REPO_ID_HEXLEN + 1];
            tr_repo_id_hex(r, hex);
            snprintf(msg, sizeof msg,
                     "%s: %s is repository %s, which is already served from %s; an agent "
                     "serves one replica of each repository",
                     where, tr_repo_root(r), hex, id_paths[i]);
            check_error(k, msg);
            tr_repo_destroy(&r);
            return;
        }
    }
    const tr_config_t *c = tr_repo_config(r);
    for (size_t i = 0; i < tr_config_unknown_count(c); i++)
        check_warn(k, "%s/" TR_REPO_DIR "/" TR_REPO_CONFIG ": %s: unknown key (ignored)",
                   tr_repo_root(r), tr_config_unknown(c, i));
    memcpy(ids[*nids], tr_repo_id(r), TR_REPO_ID_LEN);
    id_paths[(*nids)++] = strdup(tr_repo_root(r));
    tr_repo_destroy(&r);
}

int agent_check_config(void)
{
    check_t k = {0};
    tr_home_t *home = NULL;
    tr_identity_t *id = NULL;
    tr_err_t err = {0};
    if (tr_home_open(&home, &err) != TR_OK) {
        check_error(&k, err.msg);
        return 1;
    }

    /* The identity: the loader compares peers with our own key. */
    if (access(tr_home_key_path(home), F_OK) == 0) {
        if (tr_home_identity(home, false, &id, NULL, &err) != TR_OK) check_error(&k, err.msg);
    } else {
        printf("%s: none yet (created at the first start)\n", tr_home_key_path(home));
    }
    if (!id && tr_identity_generate(&id) != TR_OK) {
        check_error(&k, "cannot initialise libsodium");
        tr_home_destroy(&home);
        return 1;
    }

    /* agent.json */
    agent_t a = {.home = home, .id = id};
    char path[4200];
    snprintf(path, sizeof path, "%s/agent.json", tr_home_config(home));
    bool has_file = access(path, F_OK) == 0;
    char **lenient = NULL;
    size_t nlenient = 0;
    if (agent_config_load(&a, &err) != TR_OK) {
        check_error(&k, err.msg);
        json_t *root = json_load_file(path, 0, NULL);
        if (json_is_object(root)) lenient = check_lenient_repos(root, &nlenient);
        json_decref(root);
    } else if (has_file) {
        json_t *root = json_load_file(path, 0, NULL);
        if (json_is_object(root)) check_unknown_keys(&k, path, root);
        json_decref(root);
        if (a.listen[0] && strncmp(a.listen, "tcp://", 6) != 0) {
            char msg[4600];
            snprintf(msg, sizeof msg, "%s: listen: '%s' must look like tcp://ADDRESS:PORT", path,
                     a.listen);
            check_error(&k, msg);
        }
    } else {
        printf("%s: none (defaults)\n", path);
    }

    /* The repositories: the default one (if it exists yet), then the list. */
    char **list = lenient ? lenient : a.cfg_repos;
    size_t nlist = lenient ? nlenient : a.ncfg_repos;
    uint8_t(*ids)[TR_REPO_ID_LEN] = calloc(nlist + 1, TR_REPO_ID_LEN);
    char **id_paths = calloc(nlist + 1, sizeof *id_paths);
    size_t nids = 0;
    if (!ids || !id_paths) {
        check_error(&k, "out of memory");
    } else {
        char def[4200], where[4300];
        snprintf(def, sizeof def, "%s/default", tr_home_data(home));
        if (access(def, F_OK) == 0) check_repo(&k, "default repository", def, ids, id_paths, &nids);
        for (size_t i = 0; i < nlist; i++) {
            if (!list[i]) continue;
            snprintf(where, sizeof where, "%s: repos[%zu]", path, i);
            check_repo(&k, where, list[i], ids, id_paths, &nids);
        }
    }
    for (size_t i = 0; i < nids; i++)
        free(id_paths[i]);
    free(id_paths);
    free(ids);
    for (size_t i = 0; i < nlenient; i++)
        free(lenient[i]);
    free(lenient);
    peers_free(&a);
    tr_identity_destroy(&id);
    tr_home_destroy(&home);

    if (k.errors) {
        fprintf(stderr, "trellisd: %d error%s in the configuration\n", k.errors,
                k.errors == 1 ? "" : "s");
        return 1;
    }
    printf("configuration ok: %zu repositor%s checked, %d warning%s\n", nids,
           nids == 1 ? "y" : "ies", k.warnings, k.warnings == 1 ? "" : "s");
    return 0;
}
