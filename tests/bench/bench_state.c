/* bench_state.c — the materializer's and the reconciler's figures, one JSON
 * object per line:
 *
 *   state_integrate       a replica integrating N records of field.set (50%),
 *                         triple.add (25%) and counter.add (25%) ops on a
 *                         working set of 10,000 entities (4 fields, 1 counter,
 *                         4 predicates each; status is highest_restriction_wins,
 *                         the rest last_write_wins) in durable batches of 1,000,
 *                         every op materialized; each field.set names the
 *                         field's current write in its pred, as `trellis set`
 *                         does. Also the same records with the kinds renamed
 *                         app.* (stored, not materialized) as the baseline.
 *   state_rebuild         tr_store_rebuild of that store
 *   reconcile             two N-op replicas (one a copy of the other) that then
 *                         each took DIVERGE/2 more ops by another author:
 *                         tr_store_reconcile of the branch, dry run and for real
 *                         (integrating the remote's DIVERGE/2), with the heap
 *                         the result holds and the peak RSS growth during the
 *                         call (VmHWM after clear_refs; counts mapped pages)
 *
 * Sizes: N = argv[1] or BENCH_OPS (default 1,000,000); DIVERGE = 1,000.
 * Figures are medians of BENCH_RUNS runs (default 3). Stores go under
 * BENCH_DIR (default /var/tmp/trellis-bench), on a real disk.
 */
#include <ftw.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tr_codec.h"
#include "tr_crdt.h"
#include "tr_identity.h"
#include "tr_op.h"
#include "tr_store.h"
#include "tr_strategy.h"

#define BATCH 1000
#define ENTITIES 10000
#define FIELDS 4
#define DIVERGE 1000
#define HOT 100 /* state_integrate_local: entities one batch touches */

static const uint8_t REPO[16] = {0x7e, 0x57, 0xa7, 0xe0};
static const char *const field_names[FIELDS] = {"title", "status", "owner", "size"};
static const char *const status_vals[] = {"draft", "review", "approved", "active", "published"};
static const char *const preds[4] = {"cites", "owner", "part_of", "blocks"};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return v[n / 2];
}

static int nruns(void)
{
    const char *r = getenv("BENCH_RUNS");
    int n = r ? atoi(r) : 3;
    return n < 1 ? 1 : n > 15 ? 15 : n;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what, const tr_err_t *err)
{
    fprintf(stderr, "bench_state: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

static char base_dir[512];

static void path(char out[600], const char *name)
{
    snprintf(out, 600, "%s/%s", base_dir, name);
}

/* kB from a /proc/self/status line ("VmRSS:", "VmHWM:"). */
static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0) {
            v = strtol(line + kl, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

/* Resets VmHWM to the current RSS (Linux ≥ 4.0). */
static void reset_peak(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static uint64_t rng = 88172645463325252ull;
static unsigned hot[HOT]; /* the current batch's entities (local mode) */
static bool local_mode;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- the workload ------------------------------------------------------------- */

typedef struct {
    tr_identity_t *id;
    uint8_t prev[TR_HASH_LEN];
    uint64_t seq;
    uint8_t (*last)[FIELDS][TR_HASH_LEN]; /* per entity and field: its current write */
    bool (*has)[FIELDS];
} gen_t;

static void ent_name(char out[16], unsigned e)
{
    snprintf(out, 16, "doc:%u", e);
}

/* The body of op k (and its kind and target) into `body`. */
static const char *gen_body(gen_t *g, uint64_t k, tr_buf_t *body, char target[16], unsigned *ent,
                            int *field)
{
    if (local_mode && k % BATCH == 0)
        for (int i = 0; i < HOT; i++)
            hot[i] = (unsigned)(rnd() % ENTITIES);
    unsigned e = local_mode ? hot[rnd() % HOT] : (unsigned)(rnd() % ENTITIES),
             r = (unsigned)(rnd() % 4);
    ent_name(target, e);
    *ent = e;
    *field = -1;
    tr_buf_reset(body);
    msgpack_packer pk;
    tr_packer_init(&pk, body);
    if (r <= 1) { /* field.set, pred = the field's current write */
        int f = (int)(rnd() % FIELDS);
        *field = f;
        msgpack_pack_map(&pk, 3);
        tr_pack_str(&pk, "field", 5);
        tr_pack_str(&pk, field_names[f], strlen(field_names[f]));
        tr_pack_str(&pk, "pred", 4);
        if (g->has[e][f]) {
            msgpack_pack_array(&pk, 1);
            tr_pack_bin(&pk, g->last[e][f], TR_HASH_LEN);
        } else {
            msgpack_pack_array(&pk, 0);
        }
        tr_pack_str(&pk, "value", 5);
        if (f == 1) {
            const char *v = status_vals[k % 5];
            tr_pack_str(&pk, v, strlen(v));
        } else {
            char v[48];
            int n =
                snprintf(v, sizeof v, "value %llu of %s", (unsigned long long)k, field_names[f]);
            tr_pack_str(&pk, v, (size_t)n);
        }
        return "field.set";
    }
    if (r == 2) {
        char o[16];
        ent_name(o, local_mode ? hot[rnd() % HOT] : (unsigned)(rnd() % ENTITIES));
        const char *p = preds[rnd() % 4];
        if (tr_crdt_body_triple((tr_crdt_str_t){target, strlen(target)},
                                (tr_crdt_str_t){p, strlen(p)}, (tr_crdt_str_t){o, strlen(o)}, body))
            die("body", NULL);
        return "triple.add";
    }
    if (tr_crdt_body_counter((tr_crdt_str_t){"views", 5}, (int64_t)(rnd() % 5) + 1, body))
        die("body", NULL);
    return "counter.add";
}

typedef struct {
    uint8_t *data;
    size_t len, cap;
    size_t *off;
    size_t n;
} recs_t;

/* N records of one author in a chain, the last of each batch signed. With
 * `app`, the same bodies under the kind app.x. */
static void build(recs_t *out, size_t n, bool app)
{
    gen_t g = {0};
    uint8_t seed[32];
    memset(seed, 0x42, 32);
    if (tr_identity_from_seed(seed, &g.id)) die("identity", NULL);
    g.last = calloc(ENTITIES, sizeof *g.last);
    g.has = calloc(ENTITIES, sizeof *g.has);
    out->off = malloc((n + 1) * sizeof *out->off);
    out->cap = n * 160 + 4096;
    out->data = malloc(out->cap);
    if (!g.last || !g.has || !out->off || !out->data) die("out of memory", NULL);
    out->len = out->n = 0;
    out->off[0] = 0;
    rng = 88172645463325252ull;
    tr_buf_t body = {0}, rec = {0};
    for (uint64_t k = 0; k < n; k++) {
        char target[16];
        unsigned e;
        int f;
        const char *kind = gen_body(&g, k, &body, target, &e, &f);
        tr_op_t op;
        memset(&op, 0, sizeof op);
        memcpy(op.repo, REPO, 16);
        op.branch = "work", op.branch_len = 4;
        memcpy(op.author, tr_identity_public(g.id), 32);
        op.seq = k + 1;
        op.lamport = k + 1;
        op.wall_ms = 1763800000000ull + k;
        if (k) {
            op.has_prev = true;
            memcpy(op.prev, g.prev, 32);
            op.nparents = 1;
            memcpy(op.parents[0], g.prev, 32);
        }
        op.kind = app ? "app.x" : kind;
        op.kind_len = strlen(op.kind);
        op.target = target, op.target_len = strlen(target);
        op.body = body.data, op.body_len = body.len;
        bool sign = (k + 1) % BATCH == 0 || k + 1 == n;
        tr_buf_reset(&rec);
        tr_err_t err;
        if (tr_op_encode(&op, sign ? tr_identity_secret(g.id) : NULL, &rec, &err))
            die("encode", &err);
        memcpy(g.prev, op.hash, 32);
        if (f >= 0) {
            memcpy(g.last[e][f], op.hash, 32);
            g.has[e][f] = true;
        }
        if (out->len + rec.len > out->cap) {
            out->cap = out->cap * 2 + rec.len;
            if (!(out->data = realloc(out->data, out->cap))) die("out of memory", NULL);
        }
        memcpy(out->data + out->len, rec.data, rec.len);
        out->len += rec.len;
        out->off[++out->n] = out->len;
    }
    tr_buf_free(&body);
    tr_buf_free(&rec);
    free(g.last);
    free(g.has);
    tr_identity_destroy(&g.id);
}

static tr_strategies_t *strategies(void)
{
    json_t *fs =
        json_pack("{s:s, s:s}", "status", "highest_restriction_wins", "*", "last_write_wins");
    tr_strategies_t *st = NULL;
    tr_err_t err;
    if (!fs || tr_strategies_parse(fs, NULL, NULL, &st, &err)) die("strategies", &err);
    json_decref(fs);
    return st;
}

/* Bytes this process has passed to write syscalls (/proc/self/io wchar):
 * LMDB's page writes. */
static long long write_bytes(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    long long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "wchar: %lld", &v) == 1) break;
    fclose(f);
    return v;
}

static double pages_per_commit;

/* Integrates every record in batches of BATCH; the seconds it took. */
static double integrate_all(tr_store_t *s, const recs_t *r)
{
    tr_err_t err = {0};
    tr_rec_t batch[BATCH];
    int status[BATCH];
    long long w0 = write_bytes();
    double t0 = now();
    for (size_t i = 0; i < r->n; i += BATCH) {
        size_t k = r->n - i < BATCH ? r->n - i : BATCH;
        for (size_t j = 0; j < k; j++)
            batch[j] = (tr_rec_t){r->data + r->off[i + j], r->off[i + j + 1] - r->off[i + j]};
        if (tr_store_integrate(s, batch, k, status, NULL, NULL, &err)) die("integrate", &err);
        for (size_t j = 0; j < k; j++)
            if (status[j] != TR_INTEGRATED) {
                fprintf(stderr, "bench_state: record %zu: status %d\n", i + j, status[j]);
                exit(1);
            }
    }
    double t = now() - t0;
    pages_per_commit = (double)(write_bytes() - w0) / 4096.0 / (double)((r->n + BATCH - 1) / BATCH);
    return t;
}

/* DIVERGE/2 local writes by author `who` (seed byte) on s. */
static void diverge(tr_store_t *s, uint8_t who, size_t n)
{
    uint8_t seed[32];
    memset(seed, who, 32);
    tr_identity_t *id;
    if (tr_identity_from_seed(seed, &id)) die("identity", NULL);
    tr_buf_t body[100] = {{0}};
    tr_op_spec_t spec[100];
    char targets[100][16];
    tr_err_t err;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < 100 ? n - done : 100;
        for (size_t i = 0; i < k; i++) {
            ent_name(targets[i], (unsigned)(rnd() % ENTITIES));
            tr_buf_reset(&body[i]);
            char v[32];
            int vl = snprintf(v, sizeof v, "\"%c%zu\"", who, done + i);
            tr_buf_t val = {0};
            if (tr_buf_append(&val, "\xa0", 1)) die("oom", NULL);
            val.data[0] = (uint8_t)(0xa0 | (vl - 2));
            if (tr_buf_append(&val, v + 1, (size_t)vl - 2)) die("oom", NULL);
            if (tr_crdt_body_set((tr_crdt_str_t){"owner", 5}, val.data, val.len, NULL, 0, &body[i],
                                 &err))
                die("body", &err);
            tr_buf_free(&val);
            spec[i] = (tr_op_spec_t){"field.set",  9,          targets[i], strlen(targets[i]),
                                     body[i].data, body[i].len};
        }
        if (tr_store_write_ex(s, "work", spec, k, id, 1, TR_WRITE_PRED | TR_WRITE_STRICT, NULL,
                              &err))
            die("diverge", &err);
        done += k;
    }
    for (int i = 0; i < 100; i++)
        tr_buf_free(&body[i]);
    tr_identity_destroy(&id);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 0;
    if (!n && getenv("BENCH_OPS")) n = strtoull(getenv("BENCH_OPS"), NULL, 10);
    if (!n) n = 1000000;
    int runs = nruns();
    const char *bd = getenv("BENCH_DIR");
    snprintf(base_dir, sizeof base_dir, "%s/state-%d", bd && *bd ? bd : "/var/tmp/trellis-bench",
             (int)getpid());
    char parent[512];
    snprintf(parent, sizeof parent, "%s", bd && *bd ? bd : "/var/tmp/trellis-bench");
    mkdir(parent, 0700);
    rm_rf(base_dir);
    if (mkdir(base_dir, 0700)) die("mkdir", NULL);
    tr_err_t err = {0};
    tr_strategies_t *st = strategies();
    char p[600], q[600];
    double r[15], rb[15], pm = 0, pb = 0;

    /* ---- integrate + materialize ---- */
    recs_t recs = {0}, app = {0};
    build(&recs, n, false);
    build(&app, n, true);
    for (int k = 0; k < runs; k++) {
        path(p, "base");
        rm_rf(p);
        tr_store_t *s = NULL;
        if (tr_store_create(p, REPO, &s, &err)) die("create", &err);
        tr_store_set_strategies(s, st);
        rb[k] = (double)n / integrate_all(s, &app);
        pb = pages_per_commit;
        tr_store_destroy(&s);
        rm_rf(p);
        path(p, "state");
        rm_rf(p);
        if (tr_store_create(p, REPO, &s, &err)) die("create", &err);
        tr_store_set_strategies(s, st);
        r[k] = (double)n / integrate_all(s, &recs);
        pm = pages_per_commit;
        tr_store_destroy(&s);
    }
    printf("{\"bench\":\"state_integrate\",\"ops\":%zu,\"batch\":%d,\"entities\":%d,\"runs\":%d,"
           "\"ops_per_s\":%.0f,\"baseline_app_ops_per_s\":%.0f,\"pages_per_commit\":%.0f,"
           "\"baseline_pages_per_commit\":%.0f,\"mix\":\"field.set 50%%, triple.add "
           "25%%, counter.add 25%%\",\"target_ops_per_s\":200000}\n",
           n, BATCH, ENTITIES, runs, median(r, runs), median(rb, runs), pm, pb);
    fflush(stdout);

    /* the same mix where each batch of 1,000 touches HOT of the entities (an
     * author's session of edits, as a sync batch carries it) */
    {
        recs_t loc = {0};
        local_mode = true;
        build(&loc, n, false);
        local_mode = false;
        double rl[15], pl = 0;
        for (int k = 0; k < runs; k++) {
            path(p, "local");
            rm_rf(p);
            tr_store_t *s = NULL;
            if (tr_store_create(p, REPO, &s, &err)) die("create", &err);
            tr_store_set_strategies(s, st);
            rl[k] = (double)n / integrate_all(s, &loc);
            pl = pages_per_commit;
            tr_store_destroy(&s);
            rm_rf(p);
        }
        printf("{\"bench\":\"state_integrate_local\",\"ops\":%zu,\"batch\":%d,\"entities\":%d,"
               "\"entities_per_batch\":%d,\"runs\":%d,\"ops_per_s\":%.0f,\"pages_per_commit\":%.0f,"
               "\"target_ops_per_s\":200000}\n",
               n, BATCH, ENTITIES, HOT, runs, median(rl, runs), pl);
        fflush(stdout);
        free(loc.data);
        free(loc.off);
    }
    free(app.data);
    free(app.off);

    /* ---- rebuild (the store of the last run) ---- */
    path(p, "state");
    tr_store_t *a = NULL;
    if (tr_store_open(p, 0, &a, &err)) die("open", &err);
    tr_store_set_strategies(a, st);
    tr_rebuild_stats_t rs;
    for (int k = 0; k < runs; k++) {
        double t0 = now();
        if (tr_store_rebuild(a, &rs, &err)) die("rebuild", &err);
        r[k] = (double)rs.ops / (now() - t0);
    }
    printf("{\"bench\":\"state_rebuild\",\"ops\":%llu,\"states\":%llu,\"entities\":%llu,"
           "\"transactions\":%llu,\"runs\":%d,\"ops_per_s\":%.0f}\n",
           (unsigned long long)rs.ops, (unsigned long long)rs.states,
           (unsigned long long)rs.entities, (unsigned long long)rs.txns, runs, median(r, runs));
    fflush(stdout);
    tr_store_destroy(&a);
    free(recs.data);
    free(recs.off);

    /* ---- reconcile: a copy, then DIVERGE/2 new ops on each side ---- */
    path(q, "state-copy");
    rm_rf(q);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", p, q);
    if (system(cmd) != 0) die("cp", NULL);
    tr_store_t *b = NULL;
    if (tr_store_open(p, 0, &a, &err) || tr_store_open(q, 0, &b, &err)) die("open", &err);
    tr_store_set_strategies(a, st);
    tr_store_set_strategies(b, st);
    diverge(a, 'P', DIVERGE / 2);
    diverge(b, 'Q', DIVERGE / 2);
    /* Memory: the heap the result holds (mallinfo2: the records of the
     * divergence, the merged order), and the peak RSS growth during the
     * call (VmHWM after clear_refs), which also counts the LMDB pages the
     * call touched (and, for the merge, a hash-index merge its commit may
     * trigger). */
    double rd[15], ra[15];
    tr_store_recon_t *rec = NULL;
    for (int k = 0; k < runs; k++) {
        long before = status_kb("VmRSS:");
        size_t heap = mallinfo2().uordblks;
        reset_peak();
        double t0 = now();
        if (tr_store_reconcile(a, b, "work", true, NULL, NULL, &rec, &err)) die("reconcile", &err);
        r[k] = (now() - t0) * 1000;
        rd[k] = (double)(status_kb("VmHWM:") - before);
        ra[k] = ((double)mallinfo2().uordblks - (double)heap) / 1024;
        if (rec->unique_local != DIVERGE / 2 || rec->unique_remote != DIVERGE / 2)
            die("reconcile counts", NULL);
        tr_store_recon_destroy(&rec);
    }
    double dry_ms = median(r, runs), dry_peak = median(rd, runs), dry_anon = median(ra, runs);
    long before = status_kb("VmRSS:");
    size_t heap = mallinfo2().uordblks;
    reset_peak();
    double t0 = now();
    if (tr_store_reconcile(a, b, "work", false, NULL, NULL, &rec, &err)) die("reconcile", &err);
    double real_ms = (now() - t0) * 1000;
    long real_peak = status_kb("VmHWM:") - before;
    long real_anon = (long)(((double)mallinfo2().uordblks - (double)heap) / 1024);
    if (rec->integrated != DIVERGE / 2) die("reconcile integrated", NULL);
    size_t nconf = tr_reconcile_conflict_count(rec->rec);
    tr_store_recon_destroy(&rec);
    printf("{\"bench\":\"reconcile\",\"ops\":%zu,\"diverged\":%d,\"runs\":%d,\"dry_run_ms\":%.2f,"
           "\"dry_run_heap_kb\":%.0f,\"dry_run_peak_rss_kb\":%.0f,\"merge_ms\":%.2f,"
           "\"merge_heap_kb\":%ld,\"merge_peak_rss_kb\":%ld,\"integrated\":%d,\"conflicts\":%zu,"
           "\"target_ms\":100}\n",
           n, DIVERGE, runs, dry_ms, dry_anon, dry_peak, real_ms, real_anon, real_peak, DIVERGE / 2,
           nconf);
    tr_store_destroy(&a);
    tr_store_destroy(&b);
    tr_strategies_destroy(&st);
    rm_rf(base_dir);
    return 0;
}
