/*
 * hashidx.c — the hash index: op hash → (branch id, position).
 *
 * A B-tree keyed by random 32-byte hashes makes every commit dirty about one
 * leaf page per op, at random places in the file; on this machine each such
 * page costs ~10 µs at fdatasync (more when the page cache holds the file
 * in large folios, which are written back whole). So the index is built
 * like git's packs, as a log-structured merge of immutable sorted runs
 * (docs/storage.md §Hash index):
 *
 *   hruns   key (tier u8, run id u64 BE), value a sorted array of
 *           {hash 32, loc 12}. Each write transaction adds the ops it
 *           integrated as one new run, sorted in memory: ~11 contiguous
 *           pages per 1,000 ops, no random leaf writes at all. When a tier
 *           holds HIDX_FANIN runs, they are merged (k-way, straight from the
 *           map into an MDB_RESERVE'd value) into one run, whose tier follows
 *           from its size (⌊log₄ entries⌋). Every entry is rewritten once per
 *           tier it climbs, so the amortised cost is O(log₄(n / batch))
 *           sequential copies of 44 bytes per op.
 *
 * Lookups try each run, largest tier first (most ops live there), by
 * interpolation search: hashes are uniform, so a probe lands within a few
 * hundred entries of the target and a handful of probes finish the job.
 * Run bookkeeping (next run id, runs per tier) is in meta under "hidx".
 */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static const uint8_t *ent(const uint8_t *base, size_t i)
{
    return base + i * HENT_LEN;
}

static loc_t loc_get(const uint8_t *p)
{
    return (loc_t){be32_get(p), be64_get(p + 4)};
}

/* The tier of a run of n entries: ⌊log₄ n⌋ (capped). Tiers by size keep
 * every entry's rewrites at O(log n) whatever the batch size: a store fed
 * one op per commit merges runs of 1 into 4, 4 into 16, … */
static unsigned tier_of(size_t n)
{
    unsigned t = 0;
    for (size_t m = n; m >= HIDX_FANIN && t + 1 < HIDX_TIERS; m /= HIDX_FANIN) t++;
    return t;
}

/*
 * First index in the sorted run whose hash is >= key (n if none). Mixes
 * interpolation steps with bisection so the number of probes stays
 * O(log n) even if a damaged run is not uniform or not sorted, and the
 * loop always terminates.
 */
static size_t hrun_lower_bound(const uint8_t *base, size_t n, const uint8_t *key)
{
    size_t lo = 0, hi = n; /* entries < lo are < key; entries >= hi are >= key */
    uint64_t t = be64_get(key);
    int step = 0;
    while (hi - lo > 8) {
        size_t g, span = hi - lo;
        if (step++ % 3 != 2) {
            uint64_t a = be64_get(ent(base, lo)), b = be64_get(ent(base, hi - 1));
            if (t <= a)
                g = lo;
            else if (t >= b)
                g = hi - 1;
            else
                g = lo + (size_t)((unsigned __int128)(t - a) * (span - 1) / (b - a));
        } else {
            g = lo + span / 2;
        }
        if (memcmp(ent(base, g), key, TR_HASH_LEN) < 0)
            lo = g + 1;
        else
            hi = g;
    }
    while (lo < hi && memcmp(ent(base, lo), key, TR_HASH_LEN) < 0) lo++;
    return lo;
}

long hrun_find(const uint8_t *base, size_t n, const uint8_t hash[TR_HASH_LEN])
{
    size_t i = hrun_lower_bound(base, n, hash);
    if (i < n && memcmp(ent(base, i), hash, TR_HASH_LEN) == 0) return (long)i;
    return -1;
}

/* Checks a run's key and value and returns its entry count, or -1. */
static long run_entries(const MDB_val *k, const MDB_val *d)
{
    if (k->mv_size != RUN_KEY || d->mv_size % HENT_LEN != 0) return -1;
    return (long)(d->mv_size / HENT_LEN);
}

/*
 * Calls fn for each run, largest tier first (cursor from the end of hruns).
 * fn returns 0 to go on, 1 to stop with TR_OK, or a negative code.
 */
typedef int (*run_fn)(void *arg, const uint8_t *base, size_t n, uint8_t tier);

static int each_run(const tr_store_t *s, MDB_txn *txn, run_fn fn, void *arg, tr_err_t *err)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dbi[DBI_HRUNS], &c);
    if (rc) return store_mdb_err(err, rc, "opening the hash index");
    MDB_val k, d;
    int r = TR_OK;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_LAST); rc == 0; rc = mdb_cursor_get(c, &k, &d, MDB_PREV)) {
        long n = run_entries(&k, &d);
        if (n < 0) {
            r = tr_err_set(err, TR_ECORRUPT, "hash index run has a malformed key or size %zu",
                           d.mv_size);
            break;
        }
        r = fn(arg, d.mv_data, (size_t)n, ((const uint8_t *)k.mv_data)[0]);
        if (r) break;
    }
    mdb_cursor_close(c);
    if (r == 1) return TR_OK;
    if (r) return r;
    if (rc != MDB_NOTFOUND) return store_mdb_err(err, rc, "reading the hash index");
    return TR_OK;
}

typedef struct {
    const uint8_t *hash;
    loc_t loc;
    bool found;
} find_ctx_t;

static int find_in_run(void *arg, const uint8_t *base, size_t n, uint8_t tier)
{
    (void)tier;
    find_ctx_t *f = arg;
    long i = hrun_find(base, n, f->hash);
    if (i < 0) return 0;
    f->loc = loc_get(ent(base, (size_t)i) + TR_HASH_LEN);
    f->found = true;
    return 1;
}

int hidx_find(const tr_store_t *s, MDB_txn *txn, const uint8_t hash[TR_HASH_LEN], loc_t *out,
              tr_err_t *err)
{
    find_ctx_t f = {hash, {0, 0}, false};
    int r = each_run(s, txn, find_in_run, &f, err);
    if (r) return r;
    if (!f.found) return TR_ENOTFOUND;
    *out = f.loc;
    return TR_OK;
}

/* ---- maintenance (write txns) ------------------------------------------ */

typedef struct {
    uint64_t next_run;
    uint32_t tiers[HIDX_TIERS];
} hmeta_t;

static int hmeta_get(const tr_store_t *s, MDB_txn *txn, hmeta_t *m, tr_err_t *err)
{
    MDB_val k = {4, "hidx"}, d;
    int rc = mdb_get(txn, s->dbi[DBI_META], &k, &d);
    if (rc) return store_mdb_err(err, rc, "reading hash index bookkeeping");
    if (d.mv_size != HIDX_META_LEN)
        return tr_err_set(err, TR_ECORRUPT, "meta hidx has %zu bytes", d.mv_size);
    const uint8_t *p = d.mv_data;
    m->next_run = be64_get(p);
    for (unsigned i = 0; i < HIDX_TIERS; i++) m->tiers[i] = be32_get(p + 8 + 4 * i);
    return TR_OK;
}

static int hmeta_put(const tr_store_t *s, MDB_txn *txn, const hmeta_t *m, tr_err_t *err)
{
    uint8_t v[HIDX_META_LEN];
    be64_put(v, m->next_run);
    for (unsigned i = 0; i < HIDX_TIERS; i++) be32_put(v + 8 + 4 * i, m->tiers[i]);
    MDB_val k = {4, "hidx"}, d = {sizeof v, v};
    int rc = mdb_put(txn, s->dbi[DBI_META], &k, &d, 0);
    return rc ? store_mdb_err(err, rc, "writing hash index bookkeeping") : TR_OK;
}

static void run_key(uint8_t k[RUN_KEY], uint8_t tier, uint64_t id)
{
    k[0] = tier;
    be64_put(k + 1, id);
}

/* Reserves a new run of n entries at the tier its size calls for. */
static int run_reserve(const tr_store_t *s, MDB_txn *txn, hmeta_t *m, size_t n, uint8_t **out,
                       tr_err_t *err)
{
    unsigned tier = tier_of(n);
    uint8_t key[RUN_KEY];
    run_key(key, (uint8_t)tier, m->next_run++);
    MDB_val k = {RUN_KEY, key}, d = {n * HENT_LEN, NULL};
    int rc = mdb_put(txn, s->dbi[DBI_HRUNS], &k, &d, MDB_RESERVE);
    if (rc) return store_mdb_err(err, rc, "writing a hash index run");
    m->tiers[tier]++;
    *out = d.mv_data;
    return TR_OK;
}

#define MERGE_MAX 64 /* runs of one tier merged at once (normally HIDX_FANIN) */

/*
 * Merges every run of `tier` into one. The inputs were committed by earlier
 * transactions, so their pages in the map are clean and stay valid while
 * this txn writes the output (LMDB never reuses a page freed in the same
 * txn). The output is written straight into the MDB_RESERVE'd value with a
 * k-way merge on the mapped inputs.
 */
static int merge_tier(const tr_store_t *s, MDB_txn *txn, hmeta_t *m, unsigned tier, tr_err_t *err)
{
    const uint8_t *base[MERGE_MAX];
    size_t n[MERGE_MAX], at[MERGE_MAX];
    uint8_t keys[MERGE_MAX][RUN_KEY];
    size_t nin = 0, total = 0;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, s->dbi[DBI_HRUNS], &c);
    if (rc) return store_mdb_err(err, rc, "opening the hash index");
    uint8_t start[RUN_KEY];
    run_key(start, (uint8_t)tier, 0);
    MDB_val k = {RUN_KEY, start}, d;
    for (rc = mdb_cursor_get(c, &k, &d, MDB_SET_RANGE); rc == 0 && nin < MERGE_MAX;
         rc = mdb_cursor_get(c, &k, &d, MDB_NEXT)) {
        long cnt = run_entries(&k, &d);
        if (cnt < 0) {
            mdb_cursor_close(c);
            return tr_err_set(err, TR_ECORRUPT, "hash index run has size %zu", d.mv_size);
        }
        if (((const uint8_t *)k.mv_data)[0] != tier) break;
        memcpy(keys[nin], k.mv_data, RUN_KEY);
        base[nin] = d.mv_data;
        n[nin] = (size_t)cnt;
        at[nin] = 0;
        total += (size_t)cnt;
        nin++;
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) return store_mdb_err(err, rc, "reading the hash index");
    if (nin < 2) {
        m->tiers[tier] = (uint32_t)nin; /* bookkeeping disagreed; trust the table */
        return TR_OK;
    }
    m->tiers[tier] = 0;
    uint8_t *out;
    int r = run_reserve(s, txn, m, total, &out, err);
    if (r) return r;
    for (size_t o = 0; o < total; o++) {
        size_t best = MERGE_MAX;
        for (size_t i = 0; i < nin; i++) {
            if (at[i] == n[i]) continue;
            if (best == MERGE_MAX ||
                memcmp(ent(base[i], at[i]), ent(base[best], at[best]), TR_HASH_LEN) < 0)
                best = i;
        }
        memcpy(out + o * HENT_LEN, ent(base[best], at[best]), HENT_LEN);
        at[best]++;
    }
    for (size_t i = 0; i < nin; i++) {
        MDB_val dk = {RUN_KEY, keys[i]};
        rc = mdb_del(txn, s->dbi[DBI_HRUNS], &dk, NULL);
        if (rc) return store_mdb_err(err, rc, "deleting a merged hash index run");
    }
    return TR_OK;
}

/* Sort order of new entries: the first 8 bytes as an integer, then the
 * rest (ties in 64 bits are rare but must sort right). */
typedef struct {
    uint64_t k;
    const uint8_t *e;
} sortent_t;

static bool sortent_less(const sortent_t *x, const sortent_t *y)
{
    if (x->k != y->k) return x->k < y->k;
    return memcmp(x->e, y->e, TR_HASH_LEN) < 0;
}

/*
 * Writes this txn's new entries as one sorted run. Hashes are uniform, so
 * a counting sort on the first byte leaves buckets of a few entries that
 * insertion sort finishes; an adversary who grinds hashes into one bucket
 * only costs itself a quadratic sort of its own batch.
 */
static int add_run(const tr_store_t *s, MDB_txn *txn, hmeta_t *m, const uint8_t *fresh, size_t n,
                   tr_err_t *err)
{
    sortent_t *v = malloc(n * sizeof *v);
    if (!v) return tr_err_set(err, TR_ENOMEM, "out of memory sorting %zu index entries", n);
    size_t start[257] = {0};
    for (size_t i = 0; i < n; i++) start[fresh[i * HENT_LEN] + 1]++;
    for (int b = 0; b < 256; b++) start[b + 1] += start[b];
    size_t fill[256];
    memcpy(fill, start, sizeof fill);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *e = ent(fresh, i);
        v[fill[e[0]]++] = (sortent_t){be64_get(e), e};
    }
    for (int b = 0; b < 256; b++)
        for (size_t i = start[b] + 1; i < start[b + 1]; i++) {
            sortent_t x = v[i];
            size_t j = i;
            for (; j > start[b] && sortent_less(&x, &v[j - 1]); j--) v[j] = v[j - 1];
            v[j] = x;
        }
    uint8_t *out;
    int r = run_reserve(s, txn, m, n, &out, err);
    if (!r)
        for (size_t i = 0; i < n; i++) memcpy(out + i * HENT_LEN, v[i].e, HENT_LEN);
    free(v);
    return r;
}

/*
 * At the end of each write txn: merge the lowest tier that is full — its
 * runs all predate this txn, because this txn's run is written only after
 * the merge — then add the txn's new entries (`fresh`, n × {hash, loc},
 * unsorted) as one run. One merge per txn keeps the worst commit bounded
 * by one tier's size.
 */
int hidx_maintain(const tr_store_t *s, MDB_txn *txn, const uint8_t *fresh, size_t n, tr_err_t *err)
{
    hmeta_t m;
    int r = hmeta_get(s, txn, &m, err);
    if (r) return r;
    for (unsigned t = 0; t < HIDX_TIERS; t++) {
        if (m.tiers[t] < HIDX_FANIN) continue;
        if ((r = merge_tier(s, txn, &m, t, err))) return r;
        break;
    }
    if (n && (r = add_run(s, txn, &m, fresh, n, err))) return r;
    return hmeta_put(s, txn, &m, err);
}

/* ---- prefix search ------------------------------------------------------ */

typedef struct {
    uint8_t low[TR_HASH_LEN]; /* prefix padded with zero bits */
    const uint8_t *prefix;
    size_t nibbles;
    uint8_t first[TR_HASH_LEN];
    int found;
} prefix_ctx_t;

static bool prefix_match(const prefix_ctx_t *p, const uint8_t *h)
{
    size_t full = p->nibbles / 2;
    if (memcmp(h, p->prefix, full) != 0) return false;
    if (p->nibbles % 2) return (h[full] & 0xf0) == (p->prefix[full] & 0xf0);
    return true;
}

static int prefix_in_run(void *arg, const uint8_t *base, size_t n, uint8_t tier)
{
    (void)tier;
    prefix_ctx_t *p = arg;
    for (size_t i = hrun_lower_bound(base, n, p->low); i < n && prefix_match(p, ent(base, i)); i++) {
        if (p->found == 0) {
            memcpy(p->first, ent(base, i), TR_HASH_LEN);
            p->found = 1;
        } else if (memcmp(p->first, ent(base, i), TR_HASH_LEN) != 0) {
            p->found = 2;
            return 1;
        }
    }
    return 0;
}

int hidx_prefix(const tr_store_t *s, MDB_txn *txn, const uint8_t *prefix, size_t nibbles,
                uint8_t hash[TR_HASH_LEN], int *found, tr_err_t *err)
{
    prefix_ctx_t p = {.prefix = prefix, .nibbles = nibbles};
    memcpy(p.low, prefix, (nibbles + 1) / 2);
    if (nibbles % 2) p.low[nibbles / 2] &= 0xf0;
    int r = each_run(s, txn, prefix_in_run, &p, err);
    if (r) return r;
    *found = p.found;
    if (p.found) memcpy(hash, p.first, TR_HASH_LEN);
    return TR_OK;
}

/* ---- snapshot view for verify -------------------------------------------- */

typedef struct {
    hsnap_t *snap;
    size_t cap;
} snap_ctx_t;

static int snap_add_run(void *arg, const uint8_t *base, size_t n, uint8_t tier)
{
    snap_ctx_t *c = arg;
    if (c->snap->nruns == c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 16;
        hrun_t *nr = realloc(c->snap->runs, ncap * sizeof *nr);
        if (!nr) return TR_ENOMEM;
        c->snap->runs = nr;
        c->cap = ncap;
    }
    c->snap->runs[c->snap->nruns++] = (hrun_t){base, n, tier};
    c->snap->entries += n;
    return 0;
}

int hsnap_open(const tr_store_t *s, MDB_txn *txn, hsnap_t *snap, tr_err_t *err)
{
    memset(snap, 0, sizeof *snap);
    snap_ctx_t sc = {snap, 0};
    int r = each_run(s, txn, snap_add_run, &sc, err);
    if (r == TR_ENOMEM) r = tr_err_set(err, TR_ENOMEM, "out of memory");
    if (r) hsnap_close(snap);
    return r;
}

void hsnap_close(hsnap_t *snap)
{
    free(snap->runs);
    memset(snap, 0, sizeof *snap);
}

int hsnap_find(const hsnap_t *snap, const uint8_t hash[TR_HASH_LEN], loc_t *out)
{
    for (size_t r = 0; r < snap->nruns; r++) {
        long i = hrun_find(snap->runs[r].base, snap->runs[r].n, hash);
        if (i >= 0) {
            *out = loc_get(ent(snap->runs[r].base, (size_t)i) + TR_HASH_LEN);
            return TR_OK;
        }
    }
    return TR_ENOTFOUND;
}
