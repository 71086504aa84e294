/*
 * tr_test.h — a minimal unit-test harness.
 *
 *   TR_TEST(name) { ... }          defines a test case
 *   TR_CHECK(cond)                 fails the case (and returns) if !cond
 *   TR_CHECK_INT(a, op, b)         compares integers, printing both values
 *   TR_CHECK_STR(a, b)             compares strings, printing both
 *   TR_CHECK_MEM(a, b, n)          compares bytes, printing both in hex
 *   TR_SKIP("why")                 marks the case skipped
 *   TR_MAIN()                      runs every case (or those named in argv)
 *
 * Each case prints "ok NAME", "FAIL NAME: …" or "skip NAME: …"; the binary
 * ends with "N passed, N failed, N skipped" and exits non-zero on failure.
 * tests/run.sh adds these up across binaries.
 */
#ifndef TR_TEST_H
#define TR_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} tr_test_case_t;

#define TR_TEST_MAX 256
static tr_test_case_t tr_test_cases[TR_TEST_MAX];
static int tr_test_ncases;
static int tr_test_status; /* 0 ok, 1 failed, 2 skipped */
static const char *tr_test_current;

#define TR_TEST(name)                                                                              \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void reg_##name(void)                                      \
    {                                                                                              \
        if (tr_test_ncases < TR_TEST_MAX)                                                          \
            tr_test_cases[tr_test_ncases++] = (tr_test_case_t){#name, test_##name};                \
    }                                                                                              \
    static void test_##name(void)

#define TR_FAILF(...)                                                                              \
    do {                                                                                           \
        printf("FAIL %s: %s:%d: ", tr_test_current, __FILE__, __LINE__);                           \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
        tr_test_status = 1;                                                                        \
        return;                                                                                    \
    } while (0)

#define TR_CHECK(cond)                                                                             \
    do {                                                                                           \
        if (!(cond)) TR_FAILF("check failed: %s", #cond);                                          \
    } while (0)

#define TR_CHECK_INT(a, op, b)                                                                     \
    do {                                                                                           \
        long long tr_a_ = (long long)(a), tr_b_ = (long long)(b);                                  \
        if (!(tr_a_ op tr_b_))                                                                     \
            TR_FAILF("%s %s %s: %lld vs %lld", #a, #op, #b, tr_a_, tr_b_);                         \
    } while (0)

#define TR_CHECK_STR(a, b)                                                                         \
    do {                                                                                           \
        const char *tr_a_ = (a), *tr_b_ = (b);                                                     \
        if (!tr_a_ || !tr_b_ || strcmp(tr_a_, tr_b_) != 0)                                         \
            TR_FAILF("%s == %s: \"%s\" vs \"%s\"", #a, #b, tr_a_ ? tr_a_ : "(null)",               \
                     tr_b_ ? tr_b_ : "(null)");                                                    \
    } while (0)

#define TR_CHECK_MEM(a, b, n)                                                                      \
    do {                                                                                           \
        const unsigned char *tr_a_ = (const unsigned char *)(a);                                   \
        const unsigned char *tr_b_ = (const unsigned char *)(b);                                   \
        size_t tr_n_ = (n);                                                                        \
        if (memcmp(tr_a_, tr_b_, tr_n_) != 0) {                                                    \
            printf("FAIL %s: %s:%d: %s == %s\n  a=", tr_test_current, __FILE__, __LINE__, #a,      \
                   #b);                                                                            \
            for (size_t i_ = 0; i_ < tr_n_; i_++) printf("%02x", tr_a_[i_]);                       \
            printf("\n  b=");                                                                      \
            for (size_t i_ = 0; i_ < tr_n_; i_++) printf("%02x", tr_b_[i_]);                       \
            printf("\n");                                                                          \
            tr_test_status = 1;                                                                    \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define TR_SKIP(why)                                                                               \
    do {                                                                                           \
        printf("skip %s: %s\n", tr_test_current, why);                                             \
        tr_test_status = 2;                                                                        \
        return;                                                                                    \
    } while (0)

static int tr_test_main(int argc, char **argv)
{
    int passed = 0, failed = 0, skipped = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < tr_test_ncases; i++) {
        if (argc > 1) {
            int want = 0;
            for (int a = 1; a < argc; a++)
                if (strcmp(argv[a], tr_test_cases[i].name) == 0) want = 1;
            if (!want) continue;
        }
        tr_test_current = tr_test_cases[i].name;
        tr_test_status = 0;
        tr_test_cases[i].fn();
        if (tr_test_status == 0) {
            printf("ok %s\n", tr_test_current);
            passed++;
        } else if (tr_test_status == 1) {
            failed++;
        } else {
            skipped++;
        }
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}

#define TR_MAIN()                                                                                  \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return tr_test_main(argc, argv);                                                           \
    }

#endif
