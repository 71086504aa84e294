/* fuzz_config.c — libFuzzer harness for `.trellis/config.json`
 * (tr_config_parse: branch policies, field strategies, restriction order;
 * core/tr_config.h). A repository's config comes with the directory — a
 * clone, a shared disk, a tarball — so it is outside input. Whatever the
 * bytes: no crash, no leak; a refusal says why; an accepted config answers
 * every lookup, and a branch named exactly like a (non-glob) key gets that
 * key's policy. */
#include <stdlib.h>
#include <string.h>

#include "tr_config.h"
#include "tr_strategy.h"

static bool is_glob(const char *k)
{
    return strpbrk(k, "*?[\\") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_config_t *c = NULL;
    tr_err_t err;
    err.msg[0] = '\0';
    int rc = tr_config_parse((const char *)data, size, "config.json", &c, &err);
    if (rc != TR_OK) {
        if (c || !err.msg[0]) abort();
        return 0;
    }
    if (tr_config_version(c) < 1) abort();
    tr_config_policy_t p, q;
    const char *matched;
    for (size_t i = 0; i < tr_config_policy_count(c); i++) {
        const char *key = tr_config_policy_at(c, i, &p);
        if (!key) abort();
        if (i > 0 && strcmp(tr_config_policy_at(c, i - 1, &q), key) >= 0) abort(); /* sorted, unique */
        if (is_glob(key)) continue;
        tr_config_policy(c, key, strlen(key), &q, &matched);
        if (!matched || strcmp(matched, key) || q.linear != p.linear ||
            q.require_signing != p.require_signing)
            abort();
    }
    /* Lookups with names the input suggests: its first bytes, and fixed ones. */
    static const char *const names[] = {"main", "feature/x", "", "a*b", "release/1.2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        tr_config_policy(c, names[i], strlen(names[i]), &p, &matched);
    size_t n = size < 300 ? size : 300;
    tr_config_policy(c, (const char *)data, n, &p, &matched);
    const tr_strategies_t *st = tr_config_strategies(c);
    for (size_t i = 0; i < tr_strategies_count(st); i++) {
        tr_strategy_t s, t;
        const char *key = tr_strategies_at(st, i, &s);
        if (!key || s >= TR_STRATEGY_COUNT) abort();
        if (is_glob(key)) continue;
        t = tr_strategies_lookup(st, key, strlen(key), &matched);
        if (t != s || !matched || strcmp(matched, key)) abort();
    }
    (void)tr_strategies_lookup(st, (const char *)data, n, &matched);
    for (size_t i = 0; i < tr_strategies_order_count(st); i++)
        if (!tr_strategies_order_at(st, i)) abort();
    static const uint8_t vals[][8] = {{0xa8, 'a', 'r', 'c', 'h', 'i', 'v', 'e'}, {0x01}, {0xc0}};
    (void)tr_strategies_rank(st, vals[0], 8);
    (void)tr_strategies_rank(st, vals[1], 1);
    (void)tr_strategies_rank(st, vals[2], 1);
    uint8_t digest[32];
    tr_strategies_digest(st, digest);
    for (size_t i = 0; i < tr_config_unknown_count(c); i++)
        if (!tr_config_unknown(c, i)) abort();
    tr_config_destroy(&c);
    if (c) abort();
    return 0;
}
