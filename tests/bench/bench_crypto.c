/* bench_crypto.c — the machine's own limits, printed beside trellis's
 * figures: Ed25519 signs and verifies per second (one core and all cores),
 * BLAKE2b-256 hashes of 150-byte inputs per second, and op encode+hash and
 * decode rates. One JSON object per line; each figure is the median of
 * BENCH_RUNS runs (default 5). */
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tr_identity.h"
#include "tr_op.h"

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

static int runs(void)
{
    const char *r = getenv("BENCH_RUNS");
    int n = r ? atoi(r) : 5;
    return n < 1 ? 1 : n > 15 ? 15 : n;
}

static unsigned char sk[64], pk[32], sig[64], msg[46];

typedef struct {
    int n;
    int kind; /* 0 sign, 1 verify */
} job_t;

static void *worker(void *arg)
{
    job_t *j = arg;
    unsigned char s[64];
    for (int i = 0; i < j->n; i++) {
        if (j->kind == 0)
            crypto_sign_detached(s, NULL, msg, sizeof msg, sk);
        else if (crypto_sign_verify_detached(sig, msg, sizeof msg, pk) != 0)
            abort();
    }
    return NULL;
}

/* Rate of `kind` over `threads` threads, median of runs. */
static double crypto_rate(int kind, int threads, int per_thread)
{
    double r[15];
    int nr = runs();
    for (int k = 0; k < nr; k++) {
        pthread_t t[64];
        job_t j = {per_thread, kind};
        double t0 = now();
        for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, &j);
        for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
        r[k] = threads * per_thread / (now() - t0);
    }
    qsort(r, (size_t)nr, sizeof r[0], cmp_double);
    return r[nr / 2];
}

int main(void)
{
    if (tr_crypto_init()) return 1;
    int cpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) cpus = 1;
    crypto_sign_keypair(pk, sk);
    randombytes_buf(msg, sizeof msg);
    crypto_sign_detached(sig, NULL, msg, sizeof msg, sk);

    printf("{\"bench\":\"ed25519_sign\",\"threads\":1,\"per_s\":%.0f}\n", crypto_rate(0, 1, 20000));
    printf("{\"bench\":\"ed25519_verify\",\"threads\":1,\"per_s\":%.0f}\n",
           crypto_rate(1, 1, 8000));
    printf("{\"bench\":\"ed25519_verify\",\"threads\":%d,\"per_s\":%.0f}\n", cpus,
           crypto_rate(1, cpus, 8000));

    /* BLAKE2b-256 of 150-byte inputs. */
    {
        unsigned char in[150], h[32];
        randombytes_buf(in, sizeof in);
        double r[15];
        int nr = runs(), n = 1000000;
        for (int k = 0; k < nr; k++) {
            double t0 = now();
            for (int i = 0; i < n; i++) {
                in[0] = (unsigned char)i;
                crypto_generichash(h, 32, in, sizeof in, NULL, 0);
            }
            r[k] = n / (now() - t0);
        }
        qsort(r, (size_t)nr, sizeof r[0], cmp_double);
        printf("{\"bench\":\"blake2b_150B\",\"threads\":1,\"per_s\":%.0f}\n", r[nr / 2]);
    }

    /* Op encode (+hash, unsigned) and decode of ~100-byte bodies. */
    {
        tr_identity_t *id = NULL;
        if (tr_identity_generate(&id)) return 1;
        uint8_t body[100];
        body[0] = 0xc4, body[1] = 98;
        memset(body + 2, 'x', 98);
        tr_op_t op = {.branch = "main", .branch_len = 4, .lamport = 1, .wall_ms = 1,
                      .kind = "field.set", .kind_len = 9, .target = "entity:1234",
                      .target_len = 11, .body = body, .body_len = sizeof body, .nparents = 1};
        memcpy(op.author, tr_identity_public(id), 32);
        tr_buf_t b = {0};
        double re[15], rd[15];
        int nr = runs(), n = 300000;
        for (int k = 0; k < nr; k++) {
            double t0 = now();
            for (int i = 0; i < n; i++) {
                tr_buf_reset(&b);
                op.seq = (uint64_t)i + 2;
                op.has_prev = true;
                op.has_sig = false;
                if (tr_op_encode(&op, NULL, &b, NULL)) return 1;
            }
            re[k] = n / (now() - t0);
            tr_op_t d;
            t0 = now();
            for (int i = 0; i < n; i++)
                if (tr_op_decode(b.data, b.len, &d, NULL)) return 1;
            rd[k] = n / (now() - t0);
        }
        qsort(re, (size_t)nr, sizeof re[0], cmp_double);
        qsort(rd, (size_t)nr, sizeof rd[0], cmp_double);
        printf("{\"bench\":\"op_encode_hash\",\"record_bytes\":%zu,\"per_s\":%.0f}\n", b.len,
               re[nr / 2]);
        printf("{\"bench\":\"op_decode_hash\",\"record_bytes\":%zu,\"per_s\":%.0f}\n", b.len,
               rd[nr / 2]);
        tr_buf_free(&b);
        tr_identity_destroy(&id);
    }
    return 0;
}
