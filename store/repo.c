/* repo.c — repository directories: init, open, find (see tr_repo.h). */
#include "tr_repo.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/tr_codec.h"

#define REPO_CONFIG_MAX (1 << 20) /* a config.json beyond 1 MiB is a mistake */

struct tr_repo {
    char *root;
    tr_store_t *store;
    tr_config_t *config;
};

static int repo_errno_code(int e)
{
    switch (e) {
    case EACCES:
    case EPERM:
        return TR_EPERM;
    case ENOENT:
    case ENOTDIR:
        return TR_ENOTFOUND;
    case ENOSPC:
    case EDQUOT:
        return TR_ENOSPC;
    default:
        return TR_EIO;
    }
}

/* "<dir>/.trellis" + sub (sub may be ""), malloc'd. */
static char *repo_path(const char *root, const char *sub)
{
    char *s = NULL;
    if (asprintf(&s, "%s/" TR_REPO_DIR "%s%s", strcmp(root, "/") ? root : "", *sub ? "/" : "",
                 sub) < 0)
        return NULL;
    return s;
}

void tr_repo_policy(void *arg, const char *branch, size_t len, tr_branch_policy_t *out)
{
    tr_config_policy_t p;
    tr_config_policy(arg, branch, len, &p, NULL);
    out->linear = p.linear;
    out->require_signing = p.require_signing;
}

/* Reads config.json (or the default text if there is none) and parses it. */
static int repo_load_config(const char *root, tr_config_t **out, tr_err_t *err)
{
    char *path = repo_path(root, TR_REPO_CONFIG);
    if (!path) return tr_err_set(err, TR_ENOMEM, "out of memory");
    char *text = NULL;
    size_t len = 0;
    int rc = TR_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno != ENOENT) {
        rc = tr_err_set(err, repo_errno_code(errno), "cannot read %s: %s", path, strerror(errno));
    } else if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
            rc = tr_err_set(err, TR_ECONFIG, "%s: not a regular file", path);
        else if (st.st_size > REPO_CONFIG_MAX)
            rc = tr_err_set(err, TR_ECONFIG, "%s: larger than %d bytes", path, REPO_CONFIG_MAX);
        else if (!(text = malloc((size_t)st.st_size + 1)))
            rc = tr_err_set(err, TR_ENOMEM, "out of memory");
        while (!rc && len < (size_t)st.st_size) {
            ssize_t r = read(fd, text + len, (size_t)st.st_size - len);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) rc = tr_err_set(err, TR_EIO, "cannot read %s: %s", path, strerror(errno));
            if (r <= 0) break;
            len += (size_t)r;
        }
        close(fd);
    }
    if (!rc)
        rc = text ? tr_config_parse(text, len, path, out, err)
                  : tr_config_parse(tr_config_default_text(), strlen(tr_config_default_text()),
                                    path, out, err);
    free(text);
    free(path);
    return rc;
}

int tr_repo_open(const char *path, unsigned flags, tr_repo_t **out, tr_err_t *err)
{
    *out = NULL;
    if (!path || !*path) return tr_err_set(err, TR_EINVAL, "no repository path given");
    tr_repo_t *r = calloc(1, sizeof *r);
    if (!r) return tr_err_set(err, TR_ENOMEM, "out of memory");
    int rc = TR_OK;
    char *dir = NULL;
    struct stat st;
    if (!(r->root = realpath(path, NULL))) {
        rc = tr_err_set(err, errno == ENOENT ? TR_ENOTREPO : repo_errno_code(errno), "%s: %s", path,
                        strerror(errno));
        goto fail;
    }
    if (!(dir = repo_path(r->root, ""))) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory");
        goto fail;
    }
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        rc = tr_err_set(err, TR_ENOTREPO,
                        "%s is not a trellis repository (no " TR_REPO_DIR " directory)", r->root);
        goto fail;
    }
    if ((rc = repo_load_config(r->root, &r->config, err))) goto fail;
    free(dir);
    if (!(dir = repo_path(r->root, TR_REPO_STORE))) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = tr_store_open(dir, flags, &r->store, err))) goto fail;
    tr_store_set_policy(r->store, tr_repo_policy, r->config);
    tr_store_set_strategies(r->store, tr_config_strategies(r->config)); /* docs/crdt.md §3 */
    free(dir);
    *out = r;
    return TR_OK;
fail:
    free(dir);
    tr_repo_destroy(&r);
    return rc;
}

static int repo_rm_one(const char *fpath, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)type, (void)ftw;
    return remove(fpath) == 0 || errno == ENOENT ? 0 : -1;
}

/* Writes the default config.json with O_EXCL, synced. */
static int repo_write_config(const char *root, tr_err_t *err)
{
    char *path = repo_path(root, TR_REPO_CONFIG);
    if (!path) return tr_err_set(err, TR_ENOMEM, "out of memory");
    const char *text = tr_config_default_text();
    size_t len = strlen(text);
    int rc = TR_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = tr_err_set(err, repo_errno_code(errno), "cannot create %s: %s", path, strerror(errno));
    } else {
        while (!rc && len) {
            ssize_t w = write(fd, text, len);
            if (w < 0 && errno == EINTR) continue;
            if (w < 0)
                rc = tr_err_set(err, repo_errno_code(errno), "cannot write %s: %s", path,
                                strerror(errno));
            else
                text += w, len -= (size_t)w;
        }
        if (!rc && fsync(fd) != 0)
            rc = tr_err_set(err, TR_EIO, "cannot sync %s: %s", path, strerror(errno));
        close(fd);
    }
    free(path);
    return rc;
}

/*
 * mkdir of `.trellis` is the claim: whoever creates it initialises the repo,
 * and anyone else gets TR_EEXIST. If a later step fails we remove the whole
 * `.trellis` we made, so a failed init can simply be retried. `given` is the
 * repo id of a clone, or NULL for a fresh random one.
 */
static int repo_init(const char *path, const uint8_t *given, tr_repo_t **out, tr_err_t *err)
{
    if (out) *out = NULL;
    if (!path || !*path) return tr_err_set(err, TR_EINVAL, "no repository path given");
    if (tr_crypto_init() != TR_OK)
        return tr_err_set(err, TR_ECRYPTO, "libsodium failed to initialise");
    bool made_path = mkdir(path, 0777) == 0;
    if (!made_path && errno != EEXIST)
        return tr_err_set(err, repo_errno_code(errno), "cannot create %s: %s", path,
                          strerror(errno));
    char *root = realpath(path, NULL), *dir = NULL, *sdir = NULL;
    int rc = TR_OK;
    if (!root) {
        rc = tr_err_set(err, repo_errno_code(errno), "%s: %s", path, strerror(errno));
        goto done;
    }
    dir = repo_path(root, "");
    sdir = repo_path(root, TR_REPO_STORE);
    if (!dir || !sdir) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    if (mkdir(dir, 0700) != 0) {
        if (errno == EEXIST)
            rc = tr_err_set(err, TR_EEXIST, "%s is already a trellis repository (%s exists)", root,
                            dir);
        else
            rc = tr_err_set(err, repo_errno_code(errno), "cannot create %s: %s", dir,
                            strerror(errno));
        goto done;
    }
    uint8_t id[TR_REPO_ID_LEN];
    if (given)
        memcpy(id, given, sizeof id);
    else
        randombytes_buf(id, sizeof id);
    tr_store_t *s = NULL;
    rc = repo_write_config(root, err);
    if (!rc) rc = tr_store_create(sdir, id, &s, err);
    tr_store_destroy(&s);
    if (rc) {
        nftw(dir, repo_rm_one, 16, FTW_DEPTH | FTW_PHYS);
        goto done;
    }
    made_path = false; /* the repository exists now: it stays even if it will not open */
    if (out) rc = tr_repo_open(root, 0, out, err);
done:
    if (rc && made_path) rmdir(root ? root : path);
    free(dir);
    free(sdir);
    free(root);
    return rc;
}

int tr_repo_init(const char *path, tr_repo_t **out, tr_err_t *err)
{
    return repo_init(path, NULL, out, err);
}

int tr_repo_init_id(const char *path, const uint8_t id[TR_REPO_ID_LEN], tr_repo_t **out,
                    tr_err_t *err)
{
    if (!id) {
        if (out) *out = NULL;
        return tr_err_set(err, TR_EINVAL, "no repository id given");
    }
    return repo_init(path, id, out, err);
}

int tr_repo_find(const char *start, char **root, tr_err_t *err)
{
    *root = NULL;
    char *p = realpath(start && *start ? start : ".", NULL);
    if (!p) return tr_err_set(err, repo_errno_code(errno), "%s: %s", start, strerror(errno));
    for (;;) {
        char *dir = repo_path(p, "");
        struct stat st;
        if (!dir) {
            free(p);
            return tr_err_set(err, TR_ENOMEM, "out of memory");
        }
        int found = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
        free(dir);
        if (found) {
            *root = p;
            return TR_OK;
        }
        char *slash = strrchr(p, '/');
        if (!slash || strcmp(p, "/") == 0) break;
        if (slash == p)
            slash[1] = '\0'; /* "/x" → "/" */
        else
            *slash = '\0';
    }
    free(p);
    char *s = realpath(start && *start ? start : ".", NULL);
    int rc =
        tr_err_set(err, TR_ENOTREPO,
                   "not a trellis repository: no " TR_REPO_DIR " in %s or any parent directory",
                   s ? s : start);
    free(s);
    return rc;
}

void tr_repo_destroy(tr_repo_t **rp)
{
    if (!rp || !*rp) return;
    tr_repo_t *r = *rp;
    tr_store_destroy(&r->store);
    tr_config_destroy(&r->config);
    free(r->root);
    free(r);
    *rp = NULL;
}

tr_store_t *tr_repo_store(const tr_repo_t *r)
{
    return r->store;
}

const tr_config_t *tr_repo_config(const tr_repo_t *r)
{
    return r->config;
}

const char *tr_repo_root(const tr_repo_t *r)
{
    return r->root;
}

const uint8_t *tr_repo_id(const tr_repo_t *r)
{
    return tr_store_repo_id(r->store);
}

void tr_repo_id_hex(const tr_repo_t *r, char out[TR_REPO_ID_HEXLEN + 1])
{
    tr_hex(out, tr_repo_id(r), TR_REPO_ID_LEN);
}
