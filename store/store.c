/*
 * store.c — the LMDB environment of a repository: create, open, close,
 * error mapping, and the transaction runners every other file uses.
 */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tr_identity.h"

static const char *const dbi_names[DBI_N] = {
    [DBI_META] = "meta",   [DBI_BRANCHES] = "branches", [DBI_BNAMES] = "bnames",
    [DBI_LOG] = "log",     [DBI_SEQ] = "seq",           [DBI_VV] = "vv",
    [DBI_HEADS] = "heads", [DBI_HRUNS] = "hruns",
};

static size_t initial_mapsize = STORE_MAP_INIT;

void store_test_set_initial_mapsize(size_t bytes)
{
    initial_mapsize = bytes ? bytes : STORE_MAP_INIT;
}

void brec_pack(uint8_t out[BREC_LEN], const brec_t *b)
{
    be32_put(out, b->id);
    be64_put(out + 4, b->count);
    be64_put(out + 12, b->lamport);
    be64_put(out + 20, b->nheads);
}

/*
 * Maps an LMDB or errno code at the boundary. MDB_MAP_FULL is not an error
 * for callers (the runner grows the map), so it gets an internal code. Codes
 * that mean the file is damaged become TR_ECORRUPT; the rest TR_ESTORE, with
 * LMDB's own text so that an operator can search for it.
 */
int store_mdb_err(tr_err_t *err, int rc, const char *what)
{
    int code;
    switch (rc) {
    case MDB_MAP_FULL: code = STORE_EMAPFULL; break;
    case ENOSPC:
    case EDQUOT: code = TR_ENOSPC; break;
    case ENOMEM: code = TR_ENOMEM; break;
    case MDB_NOTFOUND: code = TR_ENOTFOUND; break;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_BAD_VALSIZE: code = TR_ECORRUPT; break;
    case MDB_VERSION_MISMATCH: code = TR_EVERSION; break;
    case MDB_TXN_FULL: code = TR_ETOOBIG; break;
    case MDB_READERS_FULL: code = TR_EBUSY; break;
    case EACCES:
    case EPERM:
    case EROFS: code = TR_EPERM; break;
    case EIO: code = TR_EIO; break;
    default: code = TR_ESTORE; break;
    }
    if (code == STORE_EMAPFULL) {
        if (err) tr_err_set(err, TR_ENOSPC, "%s: LMDB map full", what);
        return code;
    }
    return tr_err_set(err, code, "%s: %s", what, mdb_strerror(rc));
}

void store_author_short(char out[24], const uint8_t author[TR_KEY_LEN])
{
    char fp[TR_FINGERPRINT_STRLEN + 1];
    tr_peer_fingerprint(fp, author);
    snprintf(out, 24, "%s", fp);
}

void store_policy(const tr_store_t *s, const char *branch, size_t len, tr_branch_policy_t *out)
{
    out->linear = false;
    out->require_signing = true;
    if (s->policy) s->policy(s->policy_arg, branch, len, out);
}

int store_meta_u64(const tr_store_t *s, MDB_txn *txn, const char *key, uint64_t *v, tr_err_t *err)
{
    MDB_val k = {strlen(key), (void *)key}, d;
    int rc = mdb_get(txn, s->dbi[DBI_META], &k, &d);
    *v = 0;
    if (rc == MDB_NOTFOUND) return TR_OK;
    if (rc) return store_mdb_err(err, rc, "reading meta");
    if (d.mv_size != 8) return tr_err_set(err, TR_ECORRUPT, "meta '%s' has %zu bytes", key, d.mv_size);
    *v = be64_get(d.mv_data);
    return TR_OK;
}

int store_branch_get(const tr_store_t *s, MDB_txn *txn, const char *name, size_t len, brec_t *out,
                     tr_err_t *err)
{
    if (len == 0 || len > TR_BRANCH_MAX)
        return tr_err_set(err, TR_EINVAL, "branch name must be 1..%d bytes", TR_BRANCH_MAX);
    MDB_val k = {len, (void *)name}, d;
    int rc = mdb_get(txn, s->dbi[DBI_BRANCHES], &k, &d);
    if (rc == MDB_NOTFOUND)
        return tr_err_set(err, TR_ENOTFOUND, "branch '%.*s' has no ops", (int)len, name);
    if (rc) return store_mdb_err(err, rc, "reading branch");
    if (d.mv_size != BREC_LEN)
        return tr_err_set(err, TR_ECORRUPT, "branch '%.*s': record has %zu bytes", (int)len, name,
                          d.mv_size);
    const uint8_t *p = d.mv_data;
    out->id = be32_get(p);
    out->count = be64_get(p + 4);
    out->lamport = be64_get(p + 12);
    out->nheads = be64_get(p + 20);
    return TR_OK;
}

/*
 * Reads the lamport field (element 5) of a record that was well-formed when
 * it was stored, skipping the full decode. Used for parents found through
 * the hash index, whose lamport the rules need.
 */
int store_rec_lamport(const uint8_t *rec, size_t len, uint64_t *lamport)
{
    tr_rd_t r;
    uint32_t n;
    uint64_t v;
    size_t pn;
    const char *str;
    uint8_t repo[TR_REPO_ID_LEN], author[TR_KEY_LEN];
    tr_rd_init(&r, rec, len);
    tr_rd_array(&r, &n);
    tr_rd_uint(&r, &v);
    tr_rd_bin_fixed(&r, repo, sizeof repo);
    tr_rd_str(&r, &str, &pn, 1, TR_BRANCH_MAX);
    tr_rd_bin_fixed(&r, author, sizeof author);
    tr_rd_uint(&r, &v);
    tr_rd_uint(&r, lamport);
    if (r.code != TR_OK || n != TR_OP_FIELDS) return TR_ECORRUPT;
    return TR_OK;
}

/* ---- read transactions -------------------------------------------------- */

/*
 * The store keeps one read transaction and resets/renews it around each
 * read call instead of beginning and aborting one: a renew costs a reader
 * slot update, a begin also allocates. Reads nest (a tr_visit_fn may call
 * tr_store_get): inner calls join the outer snapshot. MDB_MAP_RESIZED means
 * another process grew the map; adopt its size and try again.
 */
int store_read_begin(tr_store_t *s, MDB_txn **txn, tr_err_t *err)
{
    if (s->rdepth > 0) {
        s->rdepth++;
        *txn = s->rtxn;
        return TR_OK;
    }
    for (int attempt = 0;; attempt++) {
        int rc;
        if (s->rtxn)
            rc = mdb_txn_renew(s->rtxn);
        else
            rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
        if (rc == MDB_MAP_RESIZED && attempt < 3) {
            if (s->rtxn) {
                mdb_txn_abort(s->rtxn);
                s->rtxn = NULL;
            }
            rc = mdb_env_set_mapsize(s->env, 0);
            if (rc) return store_mdb_err(err, rc, "adopting the grown map");
            continue;
        }
        if (rc) {
            if (s->rtxn) {
                mdb_txn_abort(s->rtxn);
                s->rtxn = NULL;
            }
            return store_mdb_err(err, rc, "beginning a read transaction");
        }
        break;
    }
    s->rdepth = 1;
    *txn = s->rtxn;
    return TR_OK;
}

void store_read_end(tr_store_t *s)
{
    if (s->rdepth <= 0) return;
    if (--s->rdepth == 0) mdb_txn_reset(s->rtxn);
}

/* ---- write transactions ------------------------------------------------ */

/* Doubles the map. Only called with no transaction of ours active. */
static int store_grow(tr_store_t *s, tr_err_t *err)
{
    MDB_envinfo info;
    int rc = mdb_env_info(s->env, &info);
    if (rc) return store_mdb_err(err, rc, "reading the map size");
    size_t now = info.me_mapsize;
    if (now > SIZE_MAX / 2)
        return tr_err_set(err, TR_ENOSPC, "LMDB map full at %zu bytes and cannot grow", now);
    if (s->rtxn) { /* a reset txn keeps no pointers, but drop it anyway */
        mdb_txn_abort(s->rtxn);
        s->rtxn = NULL;
    }
    rc = mdb_env_set_mapsize(s->env, now * 2);
    if (rc) {
        tr_err_set(err, TR_ENOSPC, "cannot grow the LMDB map to %zu bytes: %s", now * 2,
                   mdb_strerror(rc));
        return TR_ENOSPC;
    }
    return TR_OK;
}

/*
 * Runs `body` in a write transaction and commits it (durably: the env has
 * neither MDB_NOSYNC nor MDB_NOMETASYNC). On MDB_MAP_FULL — from a put, or
 * from the commit itself — the whole body is replayed after doubling the
 * map; that is why bodies must be replayable. A body may also ask to be
 * replayed (STORE_EREPLAY) after refusing more of its input; it must
 * guarantee that this ends. Growing needs every txn of
 * this process closed, so it is refused while a read call is in progress
 * (a visit callback that writes).
 */
int store_write_txn(tr_store_t *s, store_body_fn body, void *ctx, tr_err_t *err)
{
    if (s->flags & TR_STORE_RDONLY)
        return tr_err_set(err, TR_EPERM, "store is open read-only");
    int grown = 0;
    for (;;) {
        MDB_txn *txn = NULL;
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc == MDB_MAP_RESIZED) {
            if (s->rdepth > 0)
                return tr_err_set(err, TR_EBUSY, "map resized by another process during a read");
            if (s->rtxn) {
                mdb_txn_abort(s->rtxn);
                s->rtxn = NULL;
            }
            rc = mdb_env_set_mapsize(s->env, 0);
            if (rc) return store_mdb_err(err, rc, "adopting the grown map");
            continue;
        }
        if (rc) return store_mdb_err(err, rc, "beginning a write transaction");
        tr_err_clear(err);
        int r = body(ctx, txn, err);
        if (r == TR_OK) {
            rc = mdb_txn_commit(txn); /* frees txn, also on failure */
            if (rc == 0) return TR_OK;
            r = store_mdb_err(err, rc, "committing");
        } else {
            mdb_txn_abort(txn);
        }
        if (r == STORE_EREPLAY) continue; /* the body narrowed its input; bounded by it */
        if (r != STORE_EMAPFULL) return r;
        if (s->rdepth > 0)
            return tr_err_set(err, TR_EBUSY, "LMDB map full during a read; retry outside callbacks");
        if (++grown > 48) return tr_err_set(err, TR_ENOSPC, "LMDB map still full after growing it 48 times");
        r = store_grow(s, err);
        if (r) return r;
    }
}

/* ---- create / open ------------------------------------------------------ */

static int store_env_open(const char *dir, unsigned flags, MDB_env **out, tr_err_t *err)
{
    MDB_env *env = NULL;
    int rc = mdb_env_create(&env);
    if (rc) return store_mdb_err(err, rc, "creating the LMDB environment");
    if ((rc = mdb_env_set_maxdbs(env, STORE_MAXDBS)) ||
        (rc = mdb_env_set_mapsize(env, initial_mapsize))) {
        mdb_env_close(env);
        return store_mdb_err(err, rc, "configuring the LMDB environment");
    }
    unsigned eflags = MDB_NOTLS | ((flags & TR_STORE_RDONLY) ? MDB_RDONLY : 0);
    rc = mdb_env_open(env, dir, eflags, 0600);
    if (rc) {
        mdb_env_close(env);
        char what[64];
        snprintf(what, sizeof what, "opening the store");
        int code = store_mdb_err(err, rc, what);
        if (err) tr_err_prefix(err, code, "%s: ", dir);
        return code;
    }
    int dead = 0;
    mdb_reader_check(env, &dead); /* clear slots of crashed readers */
    *out = env;
    return TR_OK;
}

static int store_open_dbis(tr_store_t *s, MDB_txn *txn, unsigned dflags, tr_err_t *err)
{
    for (int i = 0; i < DBI_N; i++) {
        int rc = mdb_dbi_open(txn, dbi_names[i], dflags, &s->dbi[i]);
        if (rc == MDB_NOTFOUND)
            return tr_err_set(err, TR_ECORRUPT, "store lacks its '%s' table", dbi_names[i]);
        if (rc) return store_mdb_err(err, rc, "opening a table");
    }
    return TR_OK;
}

static int meta_put(tr_store_t *s, MDB_txn *txn, const char *key, const void *v, size_t n)
{
    MDB_val k = {strlen(key), (void *)key}, d = {n, (void *)v};
    return mdb_put(txn, s->dbi[DBI_META], &k, &d, 0);
}

static bool file_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) return false;
    return stat(path, &st) == 0;
}

typedef struct {
    tr_store_t *s;
    const uint8_t *repo;
} create_ctx_t;

static int create_body(void *ctx, MDB_txn *txn, tr_err_t *err)
{
    create_ctx_t *c = ctx;
    tr_store_t *s = c->s;
    int r = store_open_dbis(s, txn, MDB_CREATE, err);
    if (!r) r = state_dbis_open(s, txn, true, err);
    if (r) return r;
    MDB_val k = {7, "version"}, d;
    int rc = mdb_get(txn, s->dbi[DBI_META], &k, &d);
    if (rc == 0) return tr_err_set(err, TR_EEXIST, "a store already exists there");
    if (rc != MDB_NOTFOUND) return store_mdb_err(err, rc, "reading meta");
    uint8_t ver[4], zero8[8] = {0}, nb[8], hidx[HIDX_META_LEN] = {0};
    be32_put(ver, STORE_FORMAT);
    be64_put(nb, 1);
    if ((rc = meta_put(s, txn, "version", ver, 4)) ||
        (rc = meta_put(s, txn, "repo", c->repo, TR_REPO_ID_LEN)) ||
        (rc = meta_put(s, txn, "next_branch", nb, 8)) ||
        (rc = meta_put(s, txn, "count", zero8, 8)) ||
        (rc = meta_put(s, txn, "hidx", hidx, sizeof hidx)))
        return store_mdb_err(err, rc, "writing meta");
    return TR_OK;
}

static tr_store_t *store_alloc(void)
{
    tr_store_t *s = calloc(1, sizeof *s);
    return s;
}

/*
 * Creates the directory (0700) and an environment with all tables and the
 * meta record, in one transaction: a second creator racing us finds
 * `version` present and gets TR_EEXIST.
 */
int tr_store_create(const char *dir, const uint8_t repo_id[TR_REPO_ID_LEN], tr_store_t **out,
                    tr_err_t *err)
{
    if (!dir || !*dir || !repo_id || !out) return tr_err_set(err, TR_EINVAL, "tr_store_create: missing argument");
    *out = NULL;
    if (tr_crypto_init() != TR_OK) return tr_err_set(err, TR_ECRYPTO, "libsodium failed to initialise");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return tr_err_set(err, errno == EACCES ? TR_EPERM : TR_EIO, "%s: cannot create: %s", dir,
                          strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return tr_err_set(err, TR_EINVAL, "%s: not a directory", dir);
    if (file_exists(dir, "data.mdb")) return tr_err_set(err, TR_EEXIST, "%s: a store already exists", dir);

    tr_store_t *s = store_alloc();
    if (!s) return tr_err_set(err, TR_ENOMEM, "out of memory");
    int r = store_env_open(dir, 0, &s->env, err);
    if (r) {
        free(s);
        return r;
    }
    memcpy(s->repo, repo_id, TR_REPO_ID_LEN);
    create_ctx_t c = {s, repo_id};
    r = store_write_txn(s, create_body, &c, err);
    if (r) {
        if (err) tr_err_prefix(err, r, "%s: ", dir);
        tr_store_destroy(&s);
        return r;
    }
    *out = s;
    return TR_OK;
}

static int state_tables_body(void *ctx, MDB_txn *txn, tr_err_t *err)
{
    return state_dbis_open(ctx, txn, true, err);
}

/*
 * Opens an existing store: one read transaction that checks the format
 * version, reads the repo id and opens the tables. Nothing scans, so this
 * is O(1) in the size of the log.
 */
int tr_store_open(const char *dir, unsigned flags, tr_store_t **out, tr_err_t *err)
{
    if (!dir || !*dir || !out) return tr_err_set(err, TR_EINVAL, "tr_store_open: missing argument");
    *out = NULL;
    if (flags & ~TR_STORE_RDONLY) return tr_err_set(err, TR_EINVAL, "unknown open flags 0x%x", flags);
    if (tr_crypto_init() != TR_OK) return tr_err_set(err, TR_ECRYPTO, "libsodium failed to initialise");
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || !file_exists(dir, "data.mdb"))
        return tr_err_set(err, TR_ENOTREPO, "%s: no store here", dir);

    tr_store_t *s = store_alloc();
    if (!s) return tr_err_set(err, TR_ENOMEM, "out of memory");
    s->flags = flags;
    int r = store_env_open(dir, flags, &s->env, err);
    if (r) {
        free(s);
        return r;
    }
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(s->env, 0);
        rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    }
    if (rc) {
        r = store_mdb_err(err, rc, "beginning a read transaction");
        goto fail;
    }
    MDB_dbi meta;
    rc = mdb_dbi_open(txn, "meta", 0, &meta);
    if (rc == MDB_NOTFOUND) {
        r = tr_err_set(err, TR_ENOTREPO, "%s: not a trellis store (no meta table)", dir);
        goto fail;
    }
    if (rc) {
        r = store_mdb_err(err, rc, "opening meta");
        goto fail;
    }
    MDB_val k = {7, "version"}, d;
    rc = mdb_get(txn, meta, &k, &d);
    if (rc == MDB_NOTFOUND) {
        r = tr_err_set(err, TR_ENOTREPO, "%s: not a trellis store (no version)", dir);
        goto fail;
    }
    if (rc || d.mv_size != 4) {
        r = rc ? store_mdb_err(err, rc, "reading meta") : tr_err_set(err, TR_ECORRUPT, "meta version has %zu bytes", d.mv_size);
        goto fail;
    }
    uint32_t ver = be32_get(d.mv_data);
    if (ver > STORE_FORMAT) {
        r = tr_err_set(err, TR_EVERSION, "%s: store format %u is newer than this build's (%u)", dir,
                       ver, STORE_FORMAT);
        goto fail;
    }
    if (ver == 0) {
        r = tr_err_set(err, TR_ECORRUPT, "%s: store format 0", dir);
        goto fail;
    }
    k = (MDB_val){4, "repo"};
    rc = mdb_get(txn, meta, &k, &d);
    if (rc || d.mv_size != TR_REPO_ID_LEN) {
        r = rc ? store_mdb_err(err, rc, "reading the repo id") : tr_err_set(err, TR_ECORRUPT, "repo id has %zu bytes", d.mv_size);
        goto fail;
    }
    memcpy(s->repo, d.mv_data, TR_REPO_ID_LEN);
    r = store_open_dbis(s, txn, 0, err);
    if (r) goto fail;
    /* the materializer's tables; a store made before them gets them now
     * (its state is then "not built" until a rebuild) */
    r = state_dbis_open(s, txn, false, err);
    if (r && r != TR_ENOTFOUND) goto fail;
    bool add_state = r == TR_ENOTFOUND && !(flags & TR_STORE_RDONLY);
    r = TR_OK;
    rc = mdb_txn_commit(txn); /* makes the DBI handles available to later txns */
    txn = NULL;
    if (rc) {
        r = store_mdb_err(err, rc, "opening tables");
        goto fail;
    }
    if (add_state && (r = store_write_txn(s, state_tables_body, s, err))) goto fail;
    *out = s;
    return TR_OK;
fail:
    if (txn) mdb_txn_abort(txn);
    mdb_env_close(s->env);
    free(s);
    return r;
}

void tr_store_destroy(tr_store_t **sp)
{
    if (!sp || !*sp) return;
    tr_store_t *s = *sp;
    if (s->rtxn) mdb_txn_abort(s->rtxn);
    if (s->env) mdb_env_close(s->env);
    free(s);
    *sp = NULL;
}

void tr_store_set_policy(tr_store_t *s, tr_policy_fn fn, void *arg)
{
    if (!s) return;
    s->policy = fn;
    s->policy_arg = arg;
}

const uint8_t *tr_store_repo_id(const tr_store_t *s)
{
    return s ? s->repo : NULL;
}
