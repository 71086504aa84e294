/* strategy.c — field strategies from config.json: parsing, glob resolution,
 * restriction order (see tr_strategy.h and docs/crdt.md §3). */
#include "tr_strategy.h"

#include <fnmatch.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tr_codec.h"
#include "tr_json.h"

#define ST_FIELD_MAX 255 /* = TR_CRDT_FIELD_MAX */
#define ST_ORDER_MAX 64  /* entries in restrictionOrder */
#define ST_VALUE_MAX 255 /* bytes per restrictionOrder entry */

typedef struct {
    char *key; /* NUL-terminated field name or glob */
    size_t len;
    bool glob;
    tr_strategy_t strategy;
} st_entry_t;

struct tr_strategies {
    st_entry_t *entries; /* bytewise by key */
    size_t nentries;
    const st_entry_t **globs; /* the glob entries: longest first, then bytewise */
    size_t nglobs;
    char **order; /* most restrictive first */
    size_t *order_len;
    size_t norder;
    uint8_t digest[32];
};

static const char *const st_names[TR_STRATEGY_COUNT] = {
    "last_write_wins", "manual_resolution",        "append_wins",
    "union_merge",     "highest_restriction_wins", "immutable",
};

static const char *const st_default_order[] = {
    "tombstoned", "archived", "deprecated", "published", "active", "approved", "review", "draft",
};
#define ST_DEFAULT_NORDER (sizeof st_default_order / sizeof st_default_order[0])

const char *tr_strategy_name(tr_strategy_t s)
{
    return (unsigned)s < TR_STRATEGY_COUNT ? st_names[s] : "?";
}

int tr_strategy_parse(const char *name, size_t len, tr_strategy_t *out)
{
    for (int i = 0; i < TR_STRATEGY_COUNT; i++)
        if (strlen(st_names[i]) == len && memcmp(st_names[i], name, len) == 0) {
            *out = (tr_strategy_t)i;
            return TR_OK;
        }
    return TR_EINVAL;
}

/* ---- parsing ---------------------------------------------------------- */

typedef struct {
    const char *file;
    tr_err_t *err;
} st_ctx_t;

static int st_fail(st_ctx_t *x, const char *path, const char *why)
{
    return tr_err_set(x->err, TR_ECONFIG, "%s: %s: %s", x->file, path, why);
}


/* The same well-formedness rule config.c applies to branch globs: every '['
 * closed (a leading ']' or '!'/'^' inside is literal), every '[:' class
 * closed, no lone trailing backslash. Returns a static reason or NULL. */
const char *tr_glob_problem(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\') {
            if (++i == n) return "ends in a lone backslash";
        } else if (p[i] == '[') {
            size_t j = i + 1;
            if (j < n && (p[j] == '!' || p[j] == '^')) j++;
            if (j < n && p[j] == ']') j++;
            while (j < n && p[j] != ']') {
                if (p[j] == '[' && j + 1 < n && p[j + 1] == ':') {
                    const char *end = strstr(p + j + 2, ":]");
                    if (!end || (size_t)(end - p) >= n) return "'[:' class is never closed";
                    j = (size_t)(end - p) + 2;
                    continue;
                }
                j++;
            }
            if (j >= n) return "'[' is never closed";
            i = j;
        }
    }
    return NULL;
}

static bool st_is_glob(const char *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (k[i] == '*' || k[i] == '?' || k[i] == '[' || k[i] == '\\') return true;
    return false;
}

static int st_bytes_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

static int st_entry_cmp(const void *a, const void *b)
{
    const st_entry_t *p = a, *q = b;
    return st_bytes_cmp(p->key, p->len, q->key, q->len);
}

/* Globs are tried longest first; equal lengths in bytewise order. */
static int st_glob_cmp(const void *a, const void *b)
{
    const st_entry_t *p = *(const st_entry_t *const *)a, *q = *(const st_entry_t *const *)b;
    if (p->len != q->len) return p->len > q->len ? -1 : 1;
    return st_bytes_cmp(p->key, p->len, q->key, q->len);
}

static void st_path(char *out, size_t cap, const char *root, const char *key, size_t len)
{
    size_t n = (size_t)snprintf(out, cap, "%s", root);
    if (n < cap) tr_json_path_key(out, cap, n, key, len);
}

/* True if the key is "fingerprint", which only recompute_post_merge may name. */
static bool st_is_fingerprint(const char *k, size_t n)
{
    return n == 11 && memcmp(k, "fingerprint", 11) == 0;
}

/* Reads "fieldStrategies": every key checked (length, NUL, glob form),
 * every value a strategy name; entries end up sorted bytewise, and the globs
 * also in lookup order (longest first). */
static int st_parse_entries(st_ctx_t *x, tr_strategies_t *st, const json_t *fs)
{
    char path[400], why[300];
    if (!json_is_object(fs)) {
        snprintf(why, sizeof why, "expected an object, got %s", tr_json_type_name(fs));
        return st_fail(x, "fieldStrategies", why);
    }
    size_t n = json_object_size(fs);
    if (n && !(st->entries = calloc(n, sizeof *st->entries)))
        return tr_err_set(x->err, TR_ENOMEM, "out of memory");
    const char *k;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)fs, k, klen, v)
    {
        st_path(path, sizeof path, "fieldStrategies", k, klen);
        if (klen == 0) return st_fail(x, path, "a field name or glob cannot be empty");
        if (klen > ST_FIELD_MAX) return st_fail(x, path, "longer than 255 bytes");
        if (memchr(k, '\0', klen)) return st_fail(x, path, "contains a NUL character");
        bool glob = st_is_glob(k, klen);
        const char *bad = glob ? tr_glob_problem(k, klen) : NULL;
        if (bad) {
            snprintf(why, sizeof why, "invalid glob: %s", bad);
            return st_fail(x, path, why);
        }
        if (!json_is_string(v)) {
            snprintf(why, sizeof why, "expected a strategy name, got %s", tr_json_type_name(v));
            return st_fail(x, path, why);
        }
        const char *name = json_string_value(v);
        size_t nlen = json_string_length(v);
        bool recompute = nlen == 20 && memcmp(name, "recompute_post_merge", 20) == 0;
        if (st_is_fingerprint(k, klen)) {
            if (!recompute)
                return st_fail(x, path,
                               "the fingerprint is always recomputed after a merge; the only "
                               "strategy it takes is \"recompute_post_merge\"");
            continue; /* a declaration of what always happens */
        }
        if (recompute)
            return st_fail(x, path, "recompute_post_merge applies only to \"fingerprint\"");
        tr_strategy_t s;
        if (tr_strategy_parse(name, nlen, &s)) {
            snprintf(why, sizeof why,
                     "unknown strategy \"%.64s\" (expected last_write_wins, manual_resolution, "
                     "append_wins, union_merge, highest_restriction_wins or immutable)",
                     name);
            return st_fail(x, path, why);
        }
        st_entry_t *e = &st->entries[st->nentries];
        if (!(e->key = strndup(k, klen))) return tr_err_set(x->err, TR_ENOMEM, "out of memory");
        e->len = klen;
        e->glob = glob;
        e->strategy = s;
        st->nentries++;
    }
    if (st->nentries > 1) qsort(st->entries, st->nentries, sizeof *st->entries, st_entry_cmp);
    for (size_t i = 0; i < st->nentries; i++)
        st->nglobs += st->entries[i].glob;
    if (st->nglobs) {
        if (!(st->globs = calloc(st->nglobs, sizeof *st->globs)))
            return tr_err_set(x->err, TR_ENOMEM, "out of memory");
        size_t g = 0;
        for (size_t i = 0; i < st->nentries; i++)
            if (st->entries[i].glob) st->globs[g++] = &st->entries[i];
        qsort(st->globs, st->nglobs, sizeof *st->globs, st_glob_cmp);
    }
    return TR_OK;
}

static int st_set_order(st_ctx_t *x, tr_strategies_t *st, const char *const *vals,
                        const size_t *lens, size_t n)
{
    if (!(st->order = calloc(n, sizeof *st->order)) ||
        !(st->order_len = calloc(n, sizeof *st->order_len)))
        return tr_err_set(x->err, TR_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!(st->order[i] = strndup(vals[i], lens[i])))
            return tr_err_set(x->err, TR_ENOMEM, "out of memory");
        st->order_len[i] = lens[i];
        st->norder++;
    }
    return TR_OK;
}

/* Reads "restrictionOrder" (NULL: the seed's order): a non-empty array of
 * unique, non-empty strings, most restrictive first. */
static int st_parse_order(st_ctx_t *x, tr_strategies_t *st, const json_t *ro)
{
    char path[64], why[300];
    const char *vals[ST_ORDER_MAX];
    size_t lens[ST_ORDER_MAX];
    if (!ro) {
        for (size_t i = 0; i < ST_DEFAULT_NORDER; i++) {
            vals[i] = st_default_order[i];
            lens[i] = strlen(st_default_order[i]);
        }
        return st_set_order(x, st, vals, lens, ST_DEFAULT_NORDER);
    }
    if (!json_is_array(ro)) {
        snprintf(why, sizeof why, "expected an array of strings, got %s", tr_json_type_name(ro));
        return st_fail(x, "restrictionOrder", why);
    }
    size_t n = json_array_size(ro);
    if (n == 0) return st_fail(x, "restrictionOrder", "must list at least one value");
    if (n > ST_ORDER_MAX) return st_fail(x, "restrictionOrder", "more than 64 values");
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(ro, i);
        snprintf(path, sizeof path, "restrictionOrder[%zu]", i);
        if (!json_is_string(v)) {
            snprintf(why, sizeof why, "expected a string, got %s", tr_json_type_name(v));
            return st_fail(x, path, why);
        }
        vals[i] = json_string_value(v);
        lens[i] = json_string_length(v);
        if (lens[i] == 0) return st_fail(x, path, "must not be empty");
        if (lens[i] > ST_VALUE_MAX) return st_fail(x, path, "longer than 255 bytes");
        if (memchr(vals[i], '\0', lens[i])) return st_fail(x, path, "contains a NUL character");
        for (size_t j = 0; j < i; j++)
            if (lens[j] == lens[i] && memcmp(vals[j], vals[i], lens[i]) == 0) {
                snprintf(why, sizeof why, "duplicate value \"%.64s\" (also at [%zu])", vals[i], j);
                return st_fail(x, path, why);
            }
    }
    return st_set_order(x, st, vals, lens, n);
}

/* The digest's preimage: the canonical msgpack map
 *   {"fieldStrategies": {key: name, …}, "restrictionOrder": [value, …]}
 * whose keys are already in canonical (bytewise) order. */
static int st_compute_digest(const tr_strategies_t *st, uint8_t out[32])
{
    tr_buf_t b = {0};
    msgpack_packer pk;
    tr_packer_init(&pk, &b);
    int bad = msgpack_pack_map(&pk, 2);
    bad |= tr_pack_str(&pk, "fieldStrategies", 15);
    bad |= msgpack_pack_map(&pk, st ? st->nentries : 0);
    for (size_t i = 0; st && i < st->nentries; i++) {
        const char *name = st_names[st->entries[i].strategy];
        bad |= tr_pack_str(&pk, st->entries[i].key, st->entries[i].len);
        bad |= tr_pack_str(&pk, name, strlen(name));
    }
    bad |= tr_pack_str(&pk, "restrictionOrder", 16);
    size_t n = tr_strategies_order_count(st);
    bad |= msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        const char *v = tr_strategies_order_at(st, i);
        bad |= tr_pack_str(&pk, v, st ? st->order_len[i] : strlen(v));
    }
    if (!bad) crypto_generichash(out, 32, b.data, b.len, NULL, 0);
    tr_buf_free(&b);
    return bad ? TR_ENOMEM : TR_OK;
}

/* Parses both values into one immutable table and computes its digest; on
 * failure nothing is returned and the message names file and key path. */
int tr_strategies_parse(const json_t *field_strategies, const json_t *restriction_order,
                        const char *file, tr_strategies_t **out, tr_err_t *err)
{
    st_ctx_t x = {file ? file : "config.json", err};
    tr_strategies_t *st = calloc(1, sizeof *st);
    *out = NULL;
    if (!st) return tr_err_set(err, TR_ENOMEM, "out of memory");
    int rc = TR_OK;
    if (field_strategies && (rc = st_parse_entries(&x, st, field_strategies))) goto fail;
    if ((rc = st_parse_order(&x, st, restriction_order))) goto fail;
    if ((rc = st_compute_digest(st, st->digest))) {
        rc = tr_err_set(err, rc, "out of memory");
        goto fail;
    }
    *out = st;
    return TR_OK;
fail:
    tr_strategies_destroy(&st);
    return rc;
}

void tr_strategies_destroy(tr_strategies_t **stp)
{
    if (!stp || !*stp) return;
    tr_strategies_t *st = *stp;
    for (size_t i = 0; i < st->nentries; i++)
        free(st->entries[i].key);
    free(st->entries);
    free(st->globs);
    for (size_t i = 0; i < st->norder; i++)
        free(st->order[i]);
    free(st->order);
    free(st->order_len);
    free(st);
    *stp = NULL;
}

/* ---- lookups ---------------------------------------------------------- */

/* Exact key by binary search, then the globs longest first (the first match
 * is the answer), then the default. fnmatch runs on a stack copy of the name:
 * no allocation on this path, which the materializer takes for every op. */
tr_strategy_t tr_strategies_lookup(const tr_strategies_t *st, const char *name, size_t len,
                                   const char **matched)
{
    if (matched) *matched = NULL;
    if (!st || !name || st->nentries == 0) return TR_STRATEGY_LWW;
    size_t lo = 0, hi = st->nentries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const st_entry_t *e = &st->entries[mid];
        int c = st_bytes_cmp(e->key, e->len, name, len);
        if (c == 0) {
            if (e->glob) break;
            if (matched) *matched = e->key;
            return e->strategy;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (st->nglobs == 0 || len > ST_FIELD_MAX || memchr(name, '\0', len)) return TR_STRATEGY_LWW;
    char buf[ST_FIELD_MAX + 1];
    memcpy(buf, name, len);
    buf[len] = '\0';
    for (size_t i = 0; i < st->nglobs; i++) {
        const st_entry_t *g = st->globs[i];
        if ((g->len == 1 && g->key[0] == '*') || fnmatch(g->key, buf, 0) == 0) {
            if (matched) *matched = g->key;
            return g->strategy;
        }
    }
    return TR_STRATEGY_LWW;
}

size_t tr_strategies_order_count(const tr_strategies_t *st)
{
    return st ? st->norder : ST_DEFAULT_NORDER;
}

const char *tr_strategies_order_at(const tr_strategies_t *st, size_t i)
{
    if (!st) return i < ST_DEFAULT_NORDER ? st_default_order[i] : NULL;
    return i < st->norder ? st->order[i] : NULL;
}

/* Linear in the order's length (a handful of entries); no allocation. */
size_t tr_strategies_rank(const tr_strategies_t *st, const uint8_t *value, size_t len)
{
    size_t n = tr_strategies_order_count(st);
    tr_rd_t r;
    const char *s;
    size_t sl;
    tr_rd_init(&r, value, len);
    if (len == 0 || !((value[0] >= 0xa0 && value[0] <= 0xbf) || value[0] == 0xd9 ||
                      value[0] == 0xda || value[0] == 0xdb))
        return n;
    if (tr_rd_str(&r, &s, &sl, 0, ST_VALUE_MAX)) return n;
    for (size_t i = 0; i < n; i++) {
        const char *o = tr_strategies_order_at(st, i);
        size_t ol = st ? st->order_len[i] : strlen(o);
        if (ol == sl && memcmp(o, s, sl) == 0) return i;
    }
    return n;
}

size_t tr_strategies_count(const tr_strategies_t *st)
{
    return st ? st->nentries : 0;
}

const char *tr_strategies_at(const tr_strategies_t *st, size_t i, tr_strategy_t *out)
{
    if (!st || i >= st->nentries) return NULL;
    if (out) *out = st->entries[i].strategy;
    return st->entries[i].key;
}

void tr_strategies_digest(const tr_strategies_t *st, uint8_t out[32])
{
    if (st) {
        memcpy(out, st->digest, 32);
        return;
    }
    if (st_compute_digest(NULL, out)) memset(out, 0, 32);
}
