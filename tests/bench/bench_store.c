/* bench_store.c — the store's figures, one JSON object per line:
 *
 *   store_write          tr_store_write of N ops (~100-byte bodies) in durable
 *                        batches of 1,000, with pages written per commit
 *   store_write_single   one-op durable writes (each signed)
 *   store_integrate      a replica integrating those N records, batches of 1,000
 *   store_verify         tr_store_verify of the N-op chain-signed log (threads=0)
 *   store_verify_signed  verify of an N/10-op log where every op is signed, and
 *                        its ratio to crypto_sign_verify_detached on all cores
 *   store_open           open + tr_store_branch + tr_store_count on the N store
 *
 * Sizes: N = argv[1] or BENCH_OPS (default 1,000,000). Each figure is the
 * median of BENCH_RUNS runs (default 3). Stores go under BENCH_DIR (default
 * /var/tmp/trellis-bench), on a real disk: fsync cost is part of the figure.
 */
#include <ftw.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tr_identity.h"
#include "tr_op.h"
#include "tr_store.h"

#define BATCH 1000

static const uint8_t REPO[16] = {0x7e, 0x11, 0x15};

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
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what, const tr_err_t *err)
{
    fprintf(stderr, "bench_store: %s: %s\n", what, err ? err->msg : "");
    exit(1);
}

/* Bytes this process has passed to write syscalls (/proc/self/io wchar):
 * LMDB's page writes. (write_bytes would count whole page-cache folios,
 * which overstates random 4 KiB page writes many times over.) */
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

static char base_dir[512];

static void path(char out[600], const char *name)
{
    snprintf(out, 600, "%s/%s", base_dir, name);
}

/* ~100-byte bodies: a str of 97 bytes (2-byte header), different per op. */
typedef struct {
    uint8_t body[BATCH][100];
    tr_op_spec_t specs[BATCH];
} batch_t;

static void fill_batch(batch_t *b, size_t n, uint64_t tag)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = b->body[i];
        p[0] = 0xd9;
        p[1] = 97;
        uint64_t x = (tag + i) * 0x9e3779b97f4a7c15ULL;
        for (int k = 0; k < 97; k++) p[2 + k] = (uint8_t)('a' + (x >> (k % 58)) % 26);
        b->specs[i] = (tr_op_spec_t){"doc.edit", 8, "docs/readme.md", 14, p, 99};
    }
}

/* Writes n ops in batches of `batch`; returns seconds. */
static double write_ops(tr_store_t *s, tr_identity_t *id, size_t n, size_t batch, batch_t *b)
{
    tr_err_t err = {0};
    double t0 = now();
    for (size_t done = 0; done < n; done += batch) {
        size_t k = n - done < batch ? n - done : batch;
        fill_batch(b, k, done);
        if (tr_store_write(s, "main", b->specs, k, id, 1700000000000ull + done, NULL, &err))
            die("write", &err);
    }
    return now() - t0;
}

/* ---- collect records for integrate ------------------------------------ */

typedef struct {
    uint8_t *data; /* all records back to back */
    size_t len, cap;
    size_t *off;   /* record i = data[off[i] .. off[i+1]) */
    size_t n, ncap;
} recs_t;

static int collect(void *arg, const tr_op_t *op, const uint8_t *rec, size_t len, uint64_t pos)
{
    (void)op;
    (void)pos;
    recs_t *r = arg;
    if (r->len + len > r->cap) {
        r->cap = (r->cap + len) * 2;
        r->data = realloc(r->data, r->cap);
    }
    if (r->n + 2 > r->ncap) {
        r->ncap = r->ncap ? r->ncap * 2 : 1024;
        r->off = realloc(r->off, r->ncap * sizeof *r->off);
    }
    if (!r->data || !r->off) return -1;
    if (r->n == 0) r->off[0] = 0;
    memcpy(r->data + r->len, rec, len);
    r->len += len;
    r->off[++r->n] = r->len;
    return 0;
}

static double integrate_all(tr_store_t *s, const recs_t *r)
{
    tr_err_t err = {0};
    tr_rec_t *batch = malloc(BATCH * sizeof *batch);
    int *status = malloc(BATCH * sizeof *status);
    double t0 = now();
    for (size_t i = 0; i < r->n; i += BATCH) {
        size_t k = r->n - i < BATCH ? r->n - i : BATCH;
        for (size_t j = 0; j < k; j++)
            batch[j] = (tr_rec_t){r->data + r->off[i + j], r->off[i + j + 1] - r->off[i + j]};
        if (tr_store_integrate(s, batch, k, status, NULL, NULL, &err)) die("integrate", &err);
        for (size_t j = 0; j < k; j++)
            if (status[j] != TR_INTEGRATED) {
                fprintf(stderr, "bench_store: record %zu: status %d\n", i + j, status[j]);
                exit(1);
            }
    }
    double t = now() - t0;
    free(batch);
    free(status);
    return t;
}

/* ---- all-signed log ---------------------------------------------------- */

/* Builds n ops of one author, every one signed, as records. */
static void build_signed(recs_t *r, tr_identity_t *id, size_t n)
{
    tr_buf_t buf = {0};
    uint8_t prev[32], body[100];
    batch_t *b = malloc(sizeof *b);
    for (size_t i = 0; i < n; i++) {
        if (i % BATCH == 0) fill_batch(b, BATCH, i);
        memcpy(body, b->body[i % BATCH], 99);
        tr_op_t op;
        memset(&op, 0, sizeof op);
        memcpy(op.repo, REPO, 16);
        op.branch = "main";
        op.branch_len = 4;
        memcpy(op.author, tr_identity_public(id), 32);
        op.seq = i + 1;
        op.lamport = i + 1;
        op.wall_ms = 1700000000000ull;
        if (i) {
            op.has_prev = true;
            memcpy(op.prev, prev, 32);
            op.nparents = 1;
            memcpy(op.parents[0], prev, 32);
        }
        op.kind = "doc.edit";
        op.kind_len = 8;
        op.target = "x";
        op.target_len = 1;
        op.body = body;
        op.body_len = 99;
        tr_buf_reset(&buf);
        tr_err_t err = {0};
        if (tr_op_encode(&op, tr_identity_secret(id), &buf, &err)) die("encode", &err);
        memcpy(prev, op.hash, 32);
        collect(r, &op, buf.data, buf.len, i + 1);
    }
    tr_buf_free(&buf);
    free(b);
}

/* ---- raw Ed25519 verify rate on `threads` threads --------------------- */

static unsigned char vpk[32], vsk[64], vsig[64], vmsg[46];

static void *verify_worker(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++)
        if (crypto_sign_verify_detached(vsig, vmsg, sizeof vmsg, vpk) != 0) abort();
    return NULL;
}

/* One measurement of the raw rate (verifies per second) on `threads`. */
static double verify_rate_once(int threads, int per)
{
    pthread_t t[64];
    double t0 = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, verify_worker, &per);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    return threads * per / (now() - t0);
}

static void verify_setup(void)
{
    crypto_sign_keypair(vpk, vsk);
    randombytes_buf(vmsg, sizeof vmsg);
    crypto_sign_detached(vsig, NULL, vmsg, sizeof vmsg, vsk);
}

/* ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    size_t n = 1000000;
    const char *e = getenv("BENCH_OPS");
    if (argc > 1) e = argv[1];
    if (e && atol(e) > 0) n = (size_t)atol(e);
    if (n < BATCH) n = BATCH;
    const char *dir = getenv("BENCH_DIR");
    snprintf(base_dir, sizeof base_dir, "%s/store", dir && *dir ? dir : "/var/tmp/trellis-bench");
    if (tr_crypto_init()) return 1;
    mkdir(dir && *dir ? dir : "/var/tmp/trellis-bench", 0700);
    rm_rf(base_dir);
    if (mkdir(base_dir, 0700) != 0) {
        perror(base_dir);
        return 1;
    }
    int runs = nruns(), cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    uint8_t seed[32] = {7};
    tr_identity_t *id = NULL;
    if (tr_identity_from_seed(seed, &id)) return 1;
    batch_t *b = malloc(sizeof *b);
    tr_err_t err = {0};
    char p[600];
    double r[15];

    /* write: N ops in batches of 1,000; keep the last store */
    double pages = 0;
    for (int k = 0; k < runs; k++) {
        path(p, "w");
        rm_rf(p);
        tr_store_t *s = NULL;
        if (tr_store_create(p, REPO, &s, &err)) die("create", &err);
        long long wb0 = write_bytes();
        double t = write_ops(s, id, n, BATCH, b);
        long long wb1 = write_bytes();
        pages = wb0 >= 0 && wb1 >= 0 ? (double)(wb1 - wb0) / 4096.0 / (double)((n + BATCH - 1) / BATCH) : -1;
        r[k] = (double)n / t;
        tr_store_destroy(&s);
    }
    struct stat st;
    char f[700];
    snprintf(f, sizeof f, "%s/w/data.mdb", base_dir);
    long long fsize = stat(f, &st) == 0 ? (long long)st.st_size : -1;
    printf("{\"bench\":\"store_write\",\"ops\":%zu,\"batch\":%d,\"runs\":%d,\"ops_per_s\":%.0f,"
           "\"pages_written_per_commit\":%.0f,\"file_mb\":%.1f}\n",
           n, BATCH, runs, median(r, runs), pages, (double)fsize / 1048576.0);

    /* single-op writes (each is a durable, signed batch of one) */
    {
        size_t ns = 300;
        for (int k = 0; k < runs; k++) {
            path(p, "single");
            rm_rf(p);
            tr_store_t *s = NULL;
            if (tr_store_create(p, REPO, &s, &err)) die("create", &err);
            r[k] = (double)ns / write_ops(s, id, ns, 1, b);
            tr_store_destroy(&s);
        }
        printf("{\"bench\":\"store_write_single\",\"ops\":%zu,\"batch\":1,\"runs\":%d,\"ops_per_s\":%.0f}\n",
               ns, runs, median(r, runs));
    }

    /* open + status on the N store */
    path(p, "w");
    for (int k = 0; k < runs; k++) {
        double t0 = now();
        tr_store_t *s = NULL;
        tr_branch_info_t bi;
        uint64_t count;
        if (tr_store_open(p, 0, &s, &err)) die("open", &err);
        if (tr_store_branch(s, "main", &bi, &err)) die("branch", &err);
        if (tr_store_count(s, &count, &err)) die("count", &err);
        r[k] = (now() - t0) * 1000.0;
        tr_store_destroy(&s);
        if (count != n) die("count mismatch", NULL);
    }
    printf("{\"bench\":\"store_open\",\"ops\":%zu,\"runs\":%d,\"ms\":%.2f}\n", n, runs, median(r, runs));

    /* verify of the chain-signed N log */
    {
        tr_store_t *s = NULL;
        if (tr_store_open(p, TR_STORE_RDONLY, &s, &err)) die("open", &err);
        tr_verify_stats_t vs = {0};
        for (int k = 0; k < runs; k++) {
            double t0 = now();
            if (tr_store_verify(s, 0, NULL, NULL, &vs, &err)) die("verify", &err);
            r[k] = (double)vs.ops / (now() - t0);
            if (vs.bad || vs.ops != n) die("verify found problems", NULL);
        }
        printf("{\"bench\":\"store_verify\",\"ops\":%zu,\"signatures\":%llu,\"threads\":%d,"
               "\"runs\":%d,\"ops_per_s\":%.0f}\n",
               n, (unsigned long long)vs.signatures, cpus, runs, median(r, runs));

        /* integrate the same records into a replica */
        recs_t rec = {0};
        if (tr_store_iter(s, "main", 0, collect, &rec, &err)) die("iter", &err);
        tr_store_destroy(&s);
        for (int k = 0; k < runs; k++) {
            path(p, "replica");
            rm_rf(p);
            tr_store_t *t = NULL;
            if (tr_store_create(p, REPO, &t, &err)) die("create", &err);
            r[k] = (double)rec.n / integrate_all(t, &rec);
            tr_store_destroy(&t);
        }
        printf("{\"bench\":\"store_integrate\",\"ops\":%zu,\"batch\":%d,\"runs\":%d,\"ops_per_s\":%.0f}\n",
               rec.n, BATCH, runs, median(r, runs));
        free(rec.data);
        free(rec.off);
        path(p, "replica");
        rm_rf(p);
    }

    /* every op signed: verify is bound by Ed25519 */
    {
        size_t ns = n / 10 < BATCH ? BATCH : n / 10;
        recs_t rec = {0};
        build_signed(&rec, id, ns);
        path(p, "signed");
        rm_rf(p);
        tr_store_t *s = NULL;
        if (tr_store_create(p, REPO, &s, &err)) die("create", &err);
        double ti = integrate_all(s, &rec);
        printf("{\"bench\":\"store_integrate_signed\",\"ops\":%zu,\"batch\":%d,\"ops_per_s\":%.0f}\n",
               ns, BATCH, (double)ns / ti);
        free(rec.data);
        free(rec.off);
        /* The raw rate is measured just before and just after each verify
         * run, so that both see the same machine (other load comes and
         * goes); the ratio is the median of the per-run ratios. */
        tr_verify_stats_t vs = {0};
        double ratio[15], raw[15];
        verify_setup();
        for (int k = 0; k < runs; k++) {
            double before = verify_rate_once(cpus, 10000);
            double t0 = now();
            if (tr_store_verify(s, 0, NULL, NULL, &vs, &err)) die("verify", &err);
            r[k] = (double)vs.ops / (now() - t0);
            double after = verify_rate_once(cpus, 10000);
            raw[k] = (before + after) / 2;
            ratio[k] = r[k] / raw[k];
            if (vs.bad || vs.signatures != ns) die("verify found problems", NULL);
        }
        double v = median(r, runs), rawm = median(raw, runs), rm = median(ratio, runs);
        printf("{\"bench\":\"store_verify_signed\",\"ops\":%zu,\"signatures\":%llu,\"threads\":%d,"
               "\"runs\":%d,\"ops_per_s\":%.0f,\"raw_verify_per_s\":%.0f,\"ratio\":%.3f}\n",
               ns, (unsigned long long)vs.signatures, cpus, runs, v, rawm, rm);
        tr_store_destroy(&s);
    }

    rm_rf(base_dir);
    free(b);
    tr_identity_destroy(&id);
    return 0;
}
