/*
 * read.c — the read side: branch info, version vectors, ops by hash, by seq,
 * by prefix, and in integration order. Each call runs in the store's cached
 * read transaction (store_read_begin/end), so a call costs a renew, not a
 * transaction setup, and sees every transaction committed before it began.
 */
#include "store_internal.h"

#include <string.h>

static int branch_len(const char *branch, size_t *len, tr_err_t *err)
{
    if (!branch) return tr_err_set(err, TR_EINVAL, "missing branch name");
    *len = strnlen(branch, TR_BRANCH_MAX + 1);
    if (*len == 0 || *len > TR_BRANCH_MAX)
        return tr_err_set(err, TR_EINVAL, "branch name must be 1..%d bytes", TR_BRANCH_MAX);
    return TR_OK;
}

/* Fills info from a branch record and the first TR_BRANCH_HEADS_MAX heads
 * (the heads table is sorted by hash within the branch). */
static int branch_info(const tr_store_t *s, MDB_txn *txn, const char *name, size_t len,
                       const brec_t *rec, tr_branch_info_t *out, tr_err_t *err)
{
    memset(out, 0, sizeof *out);
    out->count = rec->count;
    out->lamport = rec->lamport;
    out->nheads = (size_t)rec->nheads;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dbi[DBI_HEADS], &c);
    if (rc) return store_mdb_err(err, rc, "reading heads");
    uint8_t k0[HEAD_KEY] = {0};
    be32_put(k0, rec->id);
    MDB_val k = {HEAD_KEY, k0}, d;
    size_t n = 0;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0 && n < TR_BRANCH_HEADS_MAX;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != HEAD_KEY || be32_get(k.mv_data) != rec->id) break;
        memcpy(out->heads[n++], (const uint8_t *)k.mv_data + 4, TR_HASH_LEN);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) return store_mdb_err(err, rc, "reading heads");
    if (n < TR_BRANCH_HEADS_MAX && n != rec->nheads)
        return tr_err_set(err, TR_ECORRUPT, "branch '%.*s' records %llu heads but has %zu",
                          (int)len, name, (unsigned long long)rec->nheads, n);
    return TR_OK;
}

int tr_store_branch(tr_store_t *s, const char *branch, tr_branch_info_t *out, tr_err_t *err)
{
    size_t len;
    if (!s || !out) return tr_err_set(err, TR_EINVAL, "tr_store_branch: missing argument");
    int r = branch_len(branch, &len, err);
    if (r) return r;
    MDB_txn *txn;
    if ((r = store_read_begin(s, &txn, err))) return r;
    brec_t rec;
    r = store_branch_get(s, txn, branch, len, &rec, err);
    if (!r) r = branch_info(s, txn, branch, len, &rec, out, err);
    store_read_end(s);
    return r;
}

int tr_store_branches(tr_store_t *s, tr_branch_fn fn, void *arg, tr_err_t *err)
{
    if (!s || !fn) return tr_err_set(err, TR_EINVAL, "tr_store_branches: missing argument");
    MDB_txn *txn;
    int r = store_read_begin(s, &txn, err);
    if (r) return r;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dbi[DBI_BRANCHES], &c);
    if (rc) {
        store_read_end(s);
        return store_mdb_err(err, rc, "reading branches");
    }
    MDB_val k, d;
    tr_branch_info_t info;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        char name[TR_BRANCH_MAX + 1];
        if (k.mv_size == 0 || k.mv_size > TR_BRANCH_MAX) {
            r = tr_err_set(err, TR_ECORRUPT, "branch name of %zu bytes", k.mv_size);
            break;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        brec_t rec;
        if ((r = store_branch_get(s, txn, name, k.mv_size, &rec, err))) break;
        if ((r = branch_info(s, txn, name, k.mv_size, &rec, &info, err))) break;
        if ((r = fn(arg, name, &info)) != 0) break;
    }
    mdb_cursor_close(c);
    if (r == TR_OK && rc != 0 && rc != MDB_NOTFOUND) r = store_mdb_err(err, rc, "reading branches");
    store_read_end(s);
    return r;
}

int tr_store_count(tr_store_t *s, uint64_t *count, tr_err_t *err)
{
    if (!s || !count) return tr_err_set(err, TR_EINVAL, "tr_store_count: missing argument");
    MDB_txn *txn;
    int r = store_read_begin(s, &txn, err);
    if (r) return r;
    r = store_meta_u64(s, txn, "count", count, err);
    store_read_end(s);
    return r;
}

int tr_store_vv(tr_store_t *s, const char *branch, tr_vv_fn fn, void *arg, tr_err_t *err)
{
    size_t len;
    if (!s || !fn) return tr_err_set(err, TR_EINVAL, "tr_store_vv: missing argument");
    int r = branch_len(branch, &len, err);
    if (r) return r;
    MDB_txn *txn;
    if ((r = store_read_begin(s, &txn, err))) return r;
    brec_t rec;
    if ((r = store_branch_get(s, txn, branch, len, &rec, err))) {
        store_read_end(s);
        return r;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dbi[DBI_VV], &c);
    if (rc) {
        store_read_end(s);
        return store_mdb_err(err, rc, "reading the version vector");
    }
    uint8_t k0[VV_KEY] = {0};
    be32_put(k0, rec.id);
    MDB_val k = {VV_KEY, k0}, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        if (k.mv_size != VV_KEY || be32_get(k.mv_data) != rec.id) break;
        if (d.mv_size != VV_VAL) {
            r = tr_err_set(err, TR_ECORRUPT, "branch '%s': vv entry has %zu bytes", branch, d.mv_size);
            break;
        }
        const uint8_t *v = d.mv_data;
        if ((r = fn(arg, (const uint8_t *)k.mv_data + 4, be64_get(v), v + 24)) != 0) break;
    }
    mdb_cursor_close(c);
    if (r == TR_OK && rc != 0 && rc != MDB_NOTFOUND) r = store_mdb_err(err, rc, "reading the version vector");
    store_read_end(s);
    return r;
}

/* The stored value at (bid, pos): hash and record. */
static int log_get(const tr_store_t *s, MDB_txn *txn, uint32_t bid, uint64_t pos, MDB_val *d,
                   tr_err_t *err)
{
    uint8_t k[LOG_KEY];
    log_key(k, bid, pos);
    MDB_val key = {LOG_KEY, k};
    int rc = mdb_get(txn, s->dbi[DBI_LOG], &key, d);
    if (rc == MDB_NOTFOUND)
        return tr_err_set(err, TR_ECORRUPT, "log of branch id %u lacks position %llu", bid,
                          (unsigned long long)pos);
    if (rc) return store_mdb_err(err, rc, "reading the log");
    if (d->mv_size <= TR_HASH_LEN)
        return tr_err_set(err, TR_ECORRUPT, "log entry (%u, %llu) has %zu bytes", bid,
                          (unsigned long long)pos, d->mv_size);
    return TR_OK;
}

static int copy_rec(tr_buf_t *out, const MDB_val *d, tr_err_t *err)
{
    if (!out) return TR_OK;
    tr_buf_reset(out);
    if (tr_buf_append(out, (const uint8_t *)d->mv_data + TR_HASH_LEN, d->mv_size - TR_HASH_LEN))
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    return TR_OK;
}

int tr_store_get(tr_store_t *s, const uint8_t hash[TR_HASH_LEN], tr_buf_t *rec,
                 char branch[TR_BRANCH_MAX + 1], uint64_t *pos, tr_err_t *err)
{
    if (!s || !hash) return tr_err_set(err, TR_EINVAL, "tr_store_get: missing argument");
    MDB_txn *txn;
    int r = store_read_begin(s, &txn, err);
    if (r) return r;
    loc_t loc;
    MDB_val d;
    char hs[9];
    r = hidx_find(s, txn, hash, &loc, err);
    if (r == TR_ENOTFOUND) {
        tr_hash_short(hs, hash, 8);
        r = tr_err_set(err, TR_ENOTFOUND, "op %s is not in this store", hs);
    }
    if (!r) r = log_get(s, txn, loc.bid, loc.pos, &d, err);
    if (!r && memcmp(d.mv_data, hash, TR_HASH_LEN) != 0) {
        tr_hash_short(hs, hash, 8);
        r = tr_err_set(err, TR_ECORRUPT, "hash index sends op %s to (%u, %llu), which holds another op",
                       hs, loc.bid, (unsigned long long)loc.pos);
    }
    if (!r) r = copy_rec(rec, &d, err);
    if (!r && branch) {
        uint8_t k[4];
        be32_put(k, loc.bid);
        MDB_val key = {4, k}, nd;
        int rc = mdb_get(txn, s->dbi[DBI_BNAMES], &key, &nd);
        if (rc)
            r = rc == MDB_NOTFOUND ? tr_err_set(err, TR_ECORRUPT, "branch id %u has no name", loc.bid)
                                   : store_mdb_err(err, rc, "reading branch names");
        else if (nd.mv_size == 0 || nd.mv_size > TR_BRANCH_MAX)
            r = tr_err_set(err, TR_ECORRUPT, "branch id %u has a name of %zu bytes", loc.bid, nd.mv_size);
        else {
            memcpy(branch, nd.mv_data, nd.mv_size);
            branch[nd.mv_size] = '\0';
        }
    }
    if (!r && pos) *pos = loc.pos;
    store_read_end(s);
    return r;
}

int tr_store_get_seq(tr_store_t *s, const char *branch, const uint8_t author[TR_KEY_LEN],
                     uint64_t seq, tr_buf_t *rec, tr_err_t *err)
{
    size_t len;
    if (!s || !author) return tr_err_set(err, TR_EINVAL, "tr_store_get_seq: missing argument");
    int r = branch_len(branch, &len, err);
    if (r) return r;
    MDB_txn *txn;
    if ((r = store_read_begin(s, &txn, err))) return r;
    brec_t b;
    r = store_branch_get(s, txn, branch, len, &b, err);
    if (!r) {
        uint8_t k[SEQ_KEY];
        seq_key(k, b.id, author, seq);
        MDB_val key = {SEQ_KEY, k}, d;
        int rc = mdb_get(txn, s->dbi[DBI_SEQ], &key, &d);
        if (rc == MDB_NOTFOUND) {
            char a[24];
            store_author_short(a, author);
            r = tr_err_set(err, TR_ENOTFOUND, "branch '%s' has no seq %llu by author %s", branch,
                           (unsigned long long)seq, a);
        } else if (rc) {
            r = store_mdb_err(err, rc, "reading the seq index");
        } else if (d.mv_size != 8) {
            r = tr_err_set(err, TR_ECORRUPT, "seq index entry has %zu bytes", d.mv_size);
        } else {
            MDB_val v;
            r = log_get(s, txn, b.id, be64_get(d.mv_data), &v, err);
            if (!r) r = copy_rec(rec, &v, err);
        }
    }
    store_read_end(s);
    return r;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tr_store_resolve(tr_store_t *s, const char *hex, uint8_t hash[TR_HASH_LEN], tr_err_t *err)
{
    if (!s || !hex || !hash) return tr_err_set(err, TR_EINVAL, "tr_store_resolve: missing argument");
    size_t n = strnlen(hex, 2 * TR_HASH_LEN + 1);
    if (n < 4 || n > 2 * TR_HASH_LEN)
        return tr_err_set(err, TR_EINVAL, "'%.80s': a hash prefix has 4 to 64 hex digits", hex);
    uint8_t prefix[TR_HASH_LEN] = {0};
    for (size_t i = 0; i < n; i++) {
        int v = hexval(hex[i]);
        if (v < 0) return tr_err_set(err, TR_EINVAL, "'%s' is not hex", hex);
        prefix[i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
    }
    MDB_txn *txn;
    int r = store_read_begin(s, &txn, err);
    if (r) return r;
    int found = 0;
    r = hidx_prefix(s, txn, prefix, n, hash, &found, err);
    store_read_end(s);
    if (r) return r;
    if (found == 0) return tr_err_set(err, TR_ENOTFOUND, "no op matches '%s'", hex);
    if (found > 1) return tr_err_set(err, TR_EINVAL, "'%s' is ambiguous: several ops match", hex);
    return TR_OK;
}

/* Decodes one stored value and hands it to fn. */
static int visit(const char *branch, uint64_t pos, const MDB_val *d, tr_visit_fn fn, void *arg,
                 tr_err_t *err)
{
    if (d->mv_size <= TR_HASH_LEN)
        return tr_err_set(err, TR_ECORRUPT, "branch '%s' position %llu: entry has %zu bytes", branch,
                          (unsigned long long)pos, d->mv_size);
    const uint8_t *rec = (const uint8_t *)d->mv_data + TR_HASH_LEN;
    size_t len = d->mv_size - TR_HASH_LEN;
    tr_op_t op;
    tr_err_t e = {0};
    if (tr_op_decode(rec, len, &op, &e) != TR_OK)
        return tr_err_set(err, TR_ECORRUPT, "branch '%s' position %llu: stored record does not decode: %s",
                          branch, (unsigned long long)pos, e.msg);
    if (memcmp(op.hash, d->mv_data, TR_HASH_LEN) != 0)
        return tr_err_set(err, TR_ECORRUPT, "branch '%s' position %llu: record does not match its hash",
                          branch, (unsigned long long)pos);
    return fn(arg, &op, rec, len, pos);
}

/* Shared by iter and iter_rev: positions the cursor and walks one way. */
static int iter_dir(tr_store_t *s, const char *branch, bool rev, uint64_t from, uint64_t limit,
                    tr_visit_fn fn, void *arg, tr_err_t *err)
{
    size_t len;
    if (!s || !fn) return tr_err_set(err, TR_EINVAL, "tr_store_iter: missing argument");
    int r = branch_len(branch, &len, err);
    if (r) return r;
    MDB_txn *txn;
    if ((r = store_read_begin(s, &txn, err))) return r;
    brec_t b;
    if ((r = store_branch_get(s, txn, branch, len, &b, err))) {
        store_read_end(s);
        return r;
    }
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dbi[DBI_LOG], &c);
    if (rc) {
        store_read_end(s);
        return store_mdb_err(err, rc, "reading the log");
    }
    uint8_t k0[LOG_KEY];
    MDB_val k, d;
    if (!rev) {
        log_key(k0, b.id, from);
        k = (MDB_val){LOG_KEY, k0};
        rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE);
    } else {
        log_key(k0, b.id, b.count);
        k = (MDB_val){LOG_KEY, k0};
        rc = mdb_cursor_get(c, &k, &d, MDB_SET_KEY);
    }
    uint64_t seen = 0;
    for (; rc == 0; rc = mdb_cursor_get(c, &k, &d, rev ? MDB_PREV : MDB_NEXT)) {
        if (k.mv_size != LOG_KEY || be32_get(k.mv_data) != b.id) break;
        if (rev && limit && seen == limit) break;
        seen++;
        if ((r = visit(branch, be64_get((const uint8_t *)k.mv_data + 4), &d, fn, arg, err)) != 0) break;
    }
    mdb_cursor_close(c);
    if (r == TR_OK && rc != 0 && rc != MDB_NOTFOUND) r = store_mdb_err(err, rc, "reading the log");
    if (r == TR_OK && rc == MDB_NOTFOUND && rev && b.count > 0 && seen == 0)
        r = tr_err_set(err, TR_ECORRUPT, "branch '%s': log lacks its last position %llu", branch,
                       (unsigned long long)b.count);
    store_read_end(s);
    return r;
}

int tr_store_iter(tr_store_t *s, const char *branch, uint64_t after, tr_visit_fn fn, void *arg,
                  tr_err_t *err)
{
    if (after == UINT64_MAX) return TR_OK;
    return iter_dir(s, branch, false, after + 1, 0, fn, arg, err);
}

int tr_store_iter_rev(tr_store_t *s, const char *branch, uint64_t limit, tr_visit_fn fn,
                      void *arg, tr_err_t *err)
{
    return iter_dir(s, branch, true, 0, limit, fn, arg, err);
}
