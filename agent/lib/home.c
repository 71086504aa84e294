/* home.c — trellis directories and the identity key files (see tr_home.h). */
#include "tr_home.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../core/tr_codec.h"

#define HOME_KEY_FILE "identity.key"
#define HOME_PUB_FILE "identity.pub"
#define HOME_KEY_MAX 4096 /* a key file is ~150 bytes; refuse anything large */
#define HOME_SEED_TAG "ed25519-seed"

struct tr_home {
    char *config, *data, *state, *runtime;
    char *key_path, *pub_path;
};

/* ---- directories ----------------------------------------------------- */

/* malloc'd "a" + "b" (+ "c"). */
static char *home_join(const char *a, const char *b, const char *c)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s%s", a, b, c ? c : "") < 0) return NULL;
    return s;
}

/* An XDG variable's value if set, non-empty and absolute; else NULL. */
static const char *home_xdg(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] == '/' ? v : NULL;
}

int tr_home_open(tr_home_t **out, tr_err_t *err)
{
    *out = NULL;
    tr_home_t *h = calloc(1, sizeof *h);
    if (!h) return tr_err_set(err, TR_ENOMEM, "out of memory");
    const char *base = getenv("TRELLIS_HOME");
    char cwd[PATH_MAX];
    if (base && base[0]) {
        char *abs = NULL;
        if (base[0] != '/') {
            if (!getcwd(cwd, sizeof cwd)) {
                tr_home_destroy(&h);
                return tr_err_set(err, TR_EIO,
                                  "TRELLIS_HOME is relative and the current "
                                  "directory is unknown: %s",
                                  strerror(errno));
            }
            abs = home_join(cwd, "/", base);
            base = abs;
        }
        if (base) {
            h->config = home_join(base, "/config", NULL);
            h->data = home_join(base, "/data", NULL);
            h->state = home_join(base, "/state", NULL);
            h->runtime = home_join(base, "/run", NULL);
        }
        free(abs);
    } else {
        const char *home = getenv("HOME");
        if (!home || home[0] != '/') {
            struct passwd *pw = getpwuid(getuid());
            home = pw && pw->pw_dir && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
        }
        const char *x;
        if (!home && (!home_xdg("XDG_CONFIG_HOME") || !home_xdg("XDG_DATA_HOME") ||
                      !home_xdg("XDG_STATE_HOME"))) {
            tr_home_destroy(&h);
            return tr_err_set(err, TR_ENOTFOUND,
                              "cannot find your home directory: set HOME or TRELLIS_HOME");
        }
        h->config = (x = home_xdg("XDG_CONFIG_HOME")) ? home_join(x, "/trellis", NULL)
                                                      : home_join(home, "/.config/trellis", NULL);
        h->data = (x = home_xdg("XDG_DATA_HOME")) ? home_join(x, "/trellis", NULL)
                                                  : home_join(home, "/.local/share/trellis", NULL);
        h->state = (x = home_xdg("XDG_STATE_HOME"))
                       ? home_join(x, "/trellis", NULL)
                       : home_join(home, "/.local/state/trellis", NULL);
        if ((x = home_xdg("XDG_RUNTIME_DIR"))) {
            h->runtime = home_join(x, "/trellis", NULL);
        } else {
            const char *tmp = home_xdg("TMPDIR");
            if (asprintf(&h->runtime, "%s/trellis-%u", tmp ? tmp : "/tmp", (unsigned)getuid()) < 0)
                h->runtime = NULL;
        }
    }
    if (h->config) {
        h->key_path = home_join(h->config, "/" HOME_KEY_FILE, NULL);
        h->pub_path = home_join(h->config, "/" HOME_PUB_FILE, NULL);
    }
    if (!h->config || !h->data || !h->state || !h->runtime || !h->key_path || !h->pub_path) {
        tr_home_destroy(&h);
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    *out = h;
    return TR_OK;
}

void tr_home_destroy(tr_home_t **hp)
{
    if (!hp || !*hp) return;
    tr_home_t *h = *hp;
    free(h->config);
    free(h->data);
    free(h->state);
    free(h->runtime);
    free(h->key_path);
    free(h->pub_path);
    free(h);
    *hp = NULL;
}

const char *tr_home_config(const tr_home_t *h)
{
    return h->config;
}

const char *tr_home_data(const tr_home_t *h)
{
    return h->data;
}

const char *tr_home_state(const tr_home_t *h)
{
    return h->state;
}

const char *tr_home_runtime(const tr_home_t *h)
{
    return h->runtime;
}

const char *tr_home_key_path(const tr_home_t *h)
{
    return h->key_path;
}

const char *tr_home_pub_path(const tr_home_t *h)
{
    return h->pub_path;
}

/* mkdir -p: parents with the umask's default mode, `dir` itself 0700. An
 * existing `dir` must be a directory owned by us (the runtime fallback lives
 * in a shared /tmp, where someone else could have made it first). */
int tr_home_mkdir(const char *dir, tr_err_t *err)
{
    char path[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path || dir[0] != '/')
        return tr_err_set(err, TR_EINVAL, "%s: not an absolute path", dir);
    memcpy(path, dir, n + 1);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            *p = '/';
            return tr_err_set(err, e == EACCES ? TR_EPERM : TR_EIO, "cannot create %.*s: %s",
                              (int)(p - path), path, strerror(e));
        }
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return tr_err_set(err, errno == EACCES ? TR_EPERM : TR_EIO, "cannot create %s: %s", path,
                          strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0) return tr_err_set(err, TR_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return tr_err_set(err, TR_EIO, "%s: not a directory", path);
    if (st.st_uid != geteuid())
        return tr_err_set(err, TR_EPERM,
                          "%s belongs to uid %u, not to you (uid %u); remove it "
                          "or set TRELLIS_HOME",
                          path, (unsigned)st.st_uid, (unsigned)geteuid());
    return TR_OK;
}

/* ---- identity files ---------------------------------------------------- */

/* Checks an open key file: a regular file, ours, and private. */
static int home_key_safe(int fd, const char *path, tr_err_t *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0) return tr_err_set(err, TR_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return tr_err_set(err, TR_EPERM, "%s: not a regular file; a secret key must be one", path);
    if (st.st_uid != geteuid())
        return tr_err_set(err, TR_EPERM,
                          "%s belongs to uid %u, not to you (uid %u); a secret key must be "
                          "yours alone: run 'chown %u %s' or remove it",
                          path, (unsigned)st.st_uid, (unsigned)geteuid(), (unsigned)geteuid(),
                          path);
    if (st.st_mode & 077)
        return tr_err_set(err, TR_EPERM,
                          "%s has mode %04o, so group or others can %s it; a secret key must be "
                          "private: run 'chmod 600 %s'",
                          path, (unsigned)(st.st_mode & 07777),
                          st.st_mode & 044 ? "read" : "write or run", path);
    return TR_OK;
}

/* Parses key file text (a NUL-terminated copy in guarded memory) into seed. */
static int home_parse_key(const char *text, const char *path, uint8_t seed[32], tr_err_t *err)
{
    int line = 0, found = 0;
    for (const char *p = text; *p;) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        const char *next = eol ? eol + 1 : p + n;
        line++;
        while (n && (p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        const size_t tag = sizeof HOME_SEED_TAG - 1;
        if (n == 0 || p[0] == '#') {
            /* blank or comment */
        } else if (!found && n == tag + 1 + 64 && memcmp(p, HOME_SEED_TAG, tag) == 0 &&
                   p[tag] == ' ' && tr_unhex(seed, 32, p + tag + 1, 64) == TR_OK) {
            found = 1;
        } else {
            return tr_err_set(err, TR_EMALFORMED,
                              "%s: line %d: expected '" HOME_SEED_TAG " <64 hex digits>'%s", path,
                              line, found ? " only once" : "");
        }
        p = next;
    }
    if (!found)
        return tr_err_set(err, TR_EMALFORMED, "%s: no '" HOME_SEED_TAG " <64 hex digits>' line",
                          path);
    return TR_OK;
}

/* Reads and checks identity.key. TR_ENOTFOUND if it does not exist. */
static int home_load_key(const char *path, tr_identity_t **out, tr_err_t *err)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT) return tr_err_set(err, TR_ENOTFOUND, "%s: no identity yet", path);
        if (errno == ELOOP)
            return tr_err_set(err, TR_EPERM,
                              "%s is a symbolic link; a secret key must be a "
                              "regular file",
                              path);
        return tr_err_set(err, errno == EACCES ? TR_EPERM : TR_EIO, "cannot read %s: %s", path,
                          strerror(errno));
    }
    int rc = home_key_safe(fd, path, err);
    char *text = rc ? NULL : sodium_malloc(HOME_KEY_MAX + 1);
    uint8_t *seed = rc ? NULL : sodium_malloc(32);
    if (!rc && (!text || !seed)) rc = tr_err_set(err, TR_ENOMEM, "out of memory");
    size_t len = 0;
    while (!rc) {
        ssize_t r = read(fd, text + len, HOME_KEY_MAX + 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = tr_err_set(err, TR_EIO, "cannot read %s: %s", path, strerror(errno));
        if (r <= 0) break;
        len += (size_t)r;
        if (len > HOME_KEY_MAX)
            rc = tr_err_set(err, TR_EMALFORMED, "%s: larger than %d bytes; not a key file", path,
                            HOME_KEY_MAX);
    }
    close(fd);
    if (!rc) {
        text[len] = '\0';
        if (memchr(text, '\0', len))
            rc = tr_err_set(err, TR_EMALFORMED, "%s: binary data; not a key file", path);
        else
            rc = home_parse_key(text, path, seed, err);
    }
    if (!rc && tr_identity_from_seed(seed, out) != TR_OK)
        rc = tr_err_set(err, TR_ECRYPTO, "cannot initialise libsodium");
    sodium_free(text); /* wipes */
    sodium_free(seed);
    return rc;
}

/* fsyncs a directory so a rename in it is durable. */
static void home_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Writes buf to a new temporary file beside `path` with `mode`, synced.
 * Fills tmp (PATH_MAX) with its name. */
static int home_write_tmp(const char *path, const void *buf, size_t len, mode_t mode, char *tmp,
                          tr_err_t *err)
{
    uint32_t rnd = randombytes_random();
    if (snprintf(tmp, PATH_MAX, "%s.tmp.%ld.%08x", path, (long)getpid(), rnd) >= PATH_MAX)
        return tr_err_set(err, TR_EINVAL, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return tr_err_set(err, errno == EACCES ? TR_EPERM : TR_EIO, "cannot create %s: %s", tmp,
                          strerror(errno));
    const char *p = buf;
    int rc =
        fchmod(fd, mode) == 0 ? TR_OK : tr_err_set(err, TR_EIO, "%s: %s", tmp, strerror(errno));
    while (!rc && len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            rc = tr_err_set(err, errno == ENOSPC ? TR_ENOSPC : TR_EIO, "cannot write %s: %s", tmp,
                            strerror(errno));
            break;
        }
        p += w;
        len -= (size_t)w;
    }
    if (!rc && fsync(fd) != 0)
        rc = tr_err_set(err, TR_EIO, "cannot sync %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && !rc)
        rc = tr_err_set(err, TR_EIO, "cannot write %s: %s", tmp, strerror(errno));
    if (rc) unlink(tmp);
    return rc;
}

/* Moves tmp to path without replacing an existing file. TR_EEXIST if one is
 * there (tmp is removed either way). */
static int home_place_new(const char *tmp, const char *path, tr_err_t *err)
{
    int r = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
    if (r != 0 && (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP))
        r = link(tmp, path); /* the file system lacks RENAME_NOREPLACE; link never replaces */
    int e = errno;
    unlink(tmp); /* after a rename it is gone already; after link or a failure it goes now */
    if (r == 0) return TR_OK;
    if (e == EEXIST) return TR_EEXIST;
    return tr_err_set(err, TR_EIO, "cannot create %s: %s", path, strerror(e));
}

/* Creates identity.key for a new random identity. TR_EEXIST if another
 * process created one first. */
static int home_create_key(const tr_home_t *h, tr_identity_t **out, tr_err_t *err)
{
    tr_identity_t *id = NULL;
    if (tr_identity_generate(&id) != TR_OK)
        return tr_err_set(err, TR_ECRYPTO, "cannot generate a key pair (libsodium)");
    static const char head[] = "# trellis secret key: the Ed25519 seed of this peer's identity.\n"
                               "# Whoever has this file can sign as you. Keep it private (mode "
                               "0600); never share or commit it.\n" HOME_SEED_TAG " ";
    size_t cap = sizeof head + 64 + 2;
    char *text = sodium_malloc(cap);
    uint8_t *seed = sodium_malloc(32);
    char tmp[PATH_MAX];
    int rc = TR_OK;
    if (!text || !seed) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    tr_identity_seed(id, seed);
    memcpy(text, head, sizeof head - 1);
    tr_hex(text + sizeof head - 1, seed, 32);
    memcpy(text + sizeof head - 1 + 64, "\n", 2);
    rc = home_write_tmp(h->key_path, text, sizeof head - 1 + 65, 0600, tmp, err);
    if (!rc) rc = home_place_new(tmp, h->key_path, err);
    if (!rc) home_sync_dir(h->config);
done:
    sodium_free(text);
    sodium_free(seed);
    if (rc) tr_identity_destroy(&id);
    *out = id;
    return rc;
}

/* Checks identity.pub against the key, writing it when it is missing. */
static int home_check_pub(const tr_home_t *h, const tr_identity_t *id, tr_err_t *err)
{
    char want[TR_PEER_ID_STRLEN + 2];
    tr_peer_id(want, tr_identity_public(id));
    FILE *f = fopen(h->pub_path, "re");
    if (f) {
        char line[256];
        uint8_t pk[TR_KEY_LEN];
        int ok = fgets(line, sizeof line, f) != NULL;
        fclose(f);
        if (ok) line[strcspn(line, "\r\n")] = '\0';
        if (!ok || tr_peer_id_parse(line, pk, NULL) != TR_OK ||
            memcmp(pk, tr_identity_public(id), TR_KEY_LEN) != 0)
            return tr_err_set(err, TR_EINVAL,
                              "%s does not hold the public key of %s; remove %s and it will be "
                              "written again",
                              h->pub_path, h->key_path, h->pub_path);
        return TR_OK;
    }
    if (errno != ENOENT)
        return tr_err_set(err, TR_EIO, "cannot read %s: %s", h->pub_path, strerror(errno));
    char tmp[PATH_MAX];
    size_t n = strlen(want);
    want[n++] = '\n';
    int rc = home_write_tmp(h->pub_path, want, n, 0644, tmp, err);
    if (rc) return rc;
    if (rename(tmp, h->pub_path) != 0) {
        rc = tr_err_set(err, TR_EIO, "cannot create %s: %s", h->pub_path, strerror(errno));
        unlink(tmp);
        return rc;
    }
    home_sync_dir(h->config);
    return TR_OK;
}

int tr_home_identity(const tr_home_t *h, bool create, tr_identity_t **out, bool *created,
                     tr_err_t *err)
{
    *out = NULL;
    if (created) *created = false;
    if (tr_crypto_init() != TR_OK)
        return tr_err_set(err, TR_ECRYPTO, "cannot initialise libsodium");
    tr_identity_t *id = NULL;
    int rc = home_load_key(h->key_path, &id, err);
    if (rc == TR_ENOTFOUND && create) {
        rc = tr_home_mkdir(h->config, err);
        if (!rc) rc = home_create_key(h, &id, err);
        if (rc == TR_EEXIST) /* another process won the race: use its key */
            rc = home_load_key(h->key_path, &id, err);
        else if (!rc && created)
            *created = true;
    }
    if (!rc) rc = home_check_pub(h, id, err);
    if (rc) {
        tr_identity_destroy(&id);
        return rc;
    }
    tr_err_clear(err);
    *out = id;
    return TR_OK;
}
