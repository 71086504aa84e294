/* fuzz_txt.c — libFuzzer harness for the `_trellis._tcp` TXT record parser
 * (discovery/txt.c, docs/discovery.md §2): no crash, no leak, and an
 * accepted record re-encodes into one that parses to the same values.
 *
 * A valid peer id (with its checksum) is hard to stumble on, so each input
 * is also parsed with a good record appended: the fuzzer's strings come
 * first and win (first occurrence of a key counts), the good ones fill in
 * whatever it left out, and the value checks behind the id are reached. */
#include <stdlib.h>
#include <string.h>

#include "../../discovery/tr_discovery.h"

static void check(const uint8_t *data, size_t size)
{
    tr_discovery_txt_t t, u;
    if (tr_discovery_parse_txt(data, size, &t, NULL) != TR_OK) return;
    uint8_t re[TR_DISCOVERY_TXT_MAX];
    size_t len;
    if (tr_discovery_txt_encode(&t, re, sizeof re, &len, NULL) != TR_OK) abort();
    if (tr_discovery_parse_txt(re, len, &u, NULL) != TR_OK) abort();
    if (t.vmin != u.vmin || t.vmax != u.vmax || memcmp(t.key, u.key, TR_KEY_LEN) != 0 ||
        strcmp(t.name, u.name) != 0 || t.has_repos != u.has_repos || t.nrepos != u.nrepos ||
        memcmp(t.repos, u.repos, sizeof t.repos) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t good[TR_DISCOVERY_TXT_MAX];
    static size_t glen;
    if (!glen) {
        tr_discovery_txt_t g = {.vmin = 1, .vmax = 1, .has_repos = true, .nrepos = 1};
        uint8_t seed[32] = {1};
        tr_identity_t *id = NULL;
        if (tr_identity_from_seed(seed, &id) != TR_OK) abort();
        memcpy(g.key, tr_identity_public(id), TR_KEY_LEN);
        tr_identity_destroy(&id);
        memcpy(g.name, "fuzz", 5);
        if (tr_discovery_txt_encode(&g, good, sizeof good, &glen, NULL) != TR_OK) abort();
    }
    check(data, size);
    if (size > 2 * TR_DISCOVERY_TXT_MAX) return 0;
    uint8_t *both = malloc(size + glen);
    if (!both) return 0;
    memcpy(both, data, size);
    memcpy(both + size, good, glen);
    check(both, size + glen);
    free(both);
    return 0;
}
