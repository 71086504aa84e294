/* trcount.c — a test helper of tests/chaos/ (not part of trellis): op counts
 * of several replicas, read straight from their stores (read-only, while
 * agents write them), cheaply enough to poll.
 *
 *   trcount PATH...                       prints each replica's op count
 *   trcount --wait N --timeout MS PATH... polls every 20 ms until every
 *                                         replica holds N ops; prints the
 *                                         milliseconds it took and exits 0,
 *                                         or prints the counts and exits 1
 *   trcount --digest PATH...              prints per replica "COUNT DIGEST":
 *                                         BLAKE2b over the sorted hashes of
 *                                         every op of every branch (equal
 *                                         digests: the same ops)
 *
 * Exit 2 on a usage error or a replica that cannot be opened. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "../../../store/tr_repo.h"

typedef struct {
    uint8_t (*h)[TR_HASH_LEN];
    size_t n, cap;
    tr_store_t *st;
} hashes_t;

static int visit(void *arg, const tr_op_t *op, const uint8_t *rec, size_t len, uint64_t pos)
{
    hashes_t *hs = arg;
    (void)rec, (void)len, (void)pos;
    if (hs->n == hs->cap) {
        hs->cap = hs->cap ? 2 * hs->cap : 4096;
        hs->h = realloc(hs->h, hs->cap * TR_HASH_LEN);
        if (!hs->h) return TR_ENOMEM;
    }
    memcpy(hs->h[hs->n++], op->hash, TR_HASH_LEN);
    return 0;
}

static int branch(void *arg, const char *name, const tr_branch_info_t *info)
{
    hashes_t *hs = arg;
    (void)info;
    return tr_store_iter(hs->st, name, 0, visit, hs, NULL);
}

static int hcmp(const void *a, const void *b)
{
    return memcmp(a, b, TR_HASH_LEN);
}

/* "COUNT DIGEST" of one replica. */
static int digest(tr_repo_t *r)
{
    hashes_t hs = {.st = tr_repo_store(r)};
    tr_err_t err;
    if (tr_store_branches(hs.st, branch, &hs, &err)) {
        fprintf(stderr, "trcount: %s: %s\n", tr_repo_root(r), err.msg);
        return 2;
    }
    if (hs.n) qsort(hs.h, hs.n, TR_HASH_LEN, hcmp);
    uint8_t d[32];
    char hex[65];
    crypto_generichash(d, sizeof d, hs.n ? (const uint8_t *)hs.h : d, hs.n * TR_HASH_LEN, NULL, 0);
    tr_hex(hex, d, sizeof d);
    printf("%zu %s\n", hs.n, hex);
    free(hs.h);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    long long want = -1, timeout = 0;
    bool dig = false;
    int i = 1;
    if (argc > 1 && !strcmp(argv[1], "--digest")) dig = true, i = 2;
    for (; !dig && i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (!strcmp(argv[i], "--wait")) want = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--timeout")) timeout = atoll(argv[i + 1]);
        else break;
    }
    int n = argc - i;
    if (n < 1) {
        fprintf(stderr, "usage: trcount [--wait N --timeout MS] PATH...\n");
        return 2;
    }
    tr_repo_t **r = calloc((size_t)n, sizeof *r);
    uint64_t *c = calloc((size_t)n, sizeof *c);
    if (!r || !c) return 2;
    for (int k = 0; k < n; k++) {
        tr_err_t err;
        if (tr_repo_open(argv[i + k], TR_REPO_RDONLY, &r[k], &err)) {
            fprintf(stderr, "trcount: %s: %s\n", argv[i + k], err.msg);
            return 2;
        }
    }
    int64_t t0 = now_ms();
    int rc = 0;
    for (int k = 0; dig && k < n && !rc; k++) rc = digest(r[k]);
    for (; !dig;) {
        bool all = true;
        for (int k = 0; k < n; k++) {
            tr_err_t err;
            if (tr_store_count(tr_repo_store(r[k]), &c[k], &err)) {
                fprintf(stderr, "trcount: %s: %s\n", argv[i + k], err.msg);
                return 2;
            }
            all = all && (long long)c[k] == want;
        }
        if (want < 0) {
            for (int k = 0; k < n; k++) printf("%llu\n", (unsigned long long)c[k]);
            break;
        }
        if (all) {
            printf("%lld\n", (long long)(now_ms() - t0));
            break;
        }
        if (now_ms() - t0 >= timeout) {
            printf("timeout:");
            for (int k = 0; k < n; k++) printf(" %llu", (unsigned long long)c[k]);
            printf("\n");
            rc = 1;
            break;
        }
        usleep(20000);
    }
    for (int k = 0; k < n; k++) tr_repo_destroy(&r[k]);
    free(r);
    free(c);
    return rc;
}
