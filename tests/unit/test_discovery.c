/* test_discovery.c — the `_trellis._tcp` TXT record (docs/discovery.md §2):
 * exact encoding, round trips, and every kind of bad record a host on the
 * LAN could publish: missing, oversize, wrong version, malformed strings,
 * invalid peer ids. The Avahi side is tested in tests/netns/. */
#include <sodium.h>

#include "tr_discovery.h"
#include "tr_identity.h"
#include "tr_test.h"

static const uint8_t REPO_A[16] = {0xa0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
static const uint8_t REPO_B[16] = {0xb0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static void test_key(uint8_t key[TR_KEY_LEN])
{
    uint8_t seed[32] = {7};
    tr_identity_t *id = NULL;
    if (tr_identity_from_seed(seed, &id) != TR_OK) abort();
    memcpy(key, tr_identity_public(id), TR_KEY_LEN);
    tr_identity_destroy(&id);
}

/* Builds RDATA from NUL-separated strings: txt("v=1", "id=…", NULL). */
static size_t rdata_of(uint8_t *out, size_t cap, const char *const *strs)
{
    size_t len = 0;
    for (; *strs; strs++) {
        size_t n = strlen(*strs);
        if (n > 255 || len + 1 + n > cap) abort();
        out[len++] = (uint8_t)n;
        memcpy(out + len, *strs, n);
        len += n;
    }
    return len;
}

static char g_id[TR_PEER_ID_STRLEN + 4];
static char g_idkv[TR_PEER_ID_STRLEN + 8];

static void setup(void)
{
    uint8_t key[TR_KEY_LEN];
    test_key(key);
    tr_peer_id(g_id, key);
    snprintf(g_idkv, sizeof g_idkv, "id=%s", g_id);
}

/* Parses the strings; returns the code and fills *t. */
static int parse_strs(const char *const *strs, tr_discovery_txt_t *t, tr_err_t *err)
{
    uint8_t buf[4096];
    size_t len = rdata_of(buf, sizeof buf, strs);
    return tr_discovery_parse_txt(buf, len, t, err);
}

#define PARSE(t, err, ...) parse_strs((const char *const[]){__VA_ARGS__, NULL}, t, err)

TR_TEST(encode_exact_bytes)
{
    setup();
    tr_discovery_txt_t t = {.vmin = 1, .vmax = 1};
    test_key(t.key);
    snprintf(t.name, sizeof t.name, "ana-laptop");
    uint8_t out[TR_DISCOVERY_TXT_MAX], want[512];
    size_t len;
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_OK);
    size_t wl =
        rdata_of(want, sizeof want, (const char *const[]){"v=1", g_idkv, "name=ana-laptop", NULL});
    TR_CHECK_INT(len, ==, wl);
    TR_CHECK_MEM(out, want, wl);
}

TR_TEST(roundtrip_with_repos)
{
    tr_discovery_txt_t t = {.vmin = 1, .vmax = 1, .has_repos = true, .nrepos = 2}, u;
    test_key(t.key);
    snprintf(t.name, sizeof t.name, "Ana’s laptop ünï");
    memcpy(t.repos[0], REPO_A, 16);
    memcpy(t.repos[1], REPO_B, 16);
    uint8_t out[TR_DISCOVERY_TXT_MAX];
    size_t len;
    tr_err_t err;
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, &err), ==, TR_OK);
    TR_CHECK_INT(tr_discovery_parse_txt(out, len, &u, &err), ==, TR_OK);
    TR_CHECK_INT(u.vmin, ==, 1);
    TR_CHECK_INT(u.vmax, ==, 1);
    TR_CHECK_MEM(u.key, t.key, TR_KEY_LEN);
    TR_CHECK_STR(u.name, t.name);
    TR_CHECK(u.has_repos);
    TR_CHECK_INT(u.nrepos, ==, 2);
    TR_CHECK_MEM(u.repos[1], REPO_B, 16);
}

TR_TEST(repos_left_out_when_they_do_not_fit)
{
    tr_discovery_txt_t t = {.vmin = 1, .vmax = 1, .has_repos = true}, u;
    test_key(t.key);
    uint8_t out[TR_DISCOVERY_TXT_MAX];
    size_t len;
    /* Exactly the maximum fits: one string of ≤ 255 bytes. */
    t.nrepos = TR_DISCOVERY_TXT_MAX_REPOS;
    for (size_t i = 0; i < t.nrepos; i++)
        memset(t.repos[i], (int)i + 1, 16);
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_discovery_parse_txt(out, len, &u, NULL), ==, TR_OK);
    TR_CHECK(u.has_repos);
    TR_CHECK_INT(u.nrepos, ==, TR_DISCOVERY_TXT_MAX_REPOS);
    TR_CHECK_MEM(u.repos[6], t.repos[6], 16);
    /* One more: the key is omitted, peers learn them in hello. */
    t.nrepos = TR_DISCOVERY_TXT_MAX_REPOS + 1;
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_discovery_parse_txt(out, len, &u, NULL), ==, TR_OK);
    TR_CHECK(!u.has_repos);
    TR_CHECK(memmem(out, len, "repos", 5) == NULL);
    /* Serving none is said explicitly ("repos="), unknown is silence. */
    t.nrepos = 0;
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_discovery_parse_txt(out, len, &u, NULL), ==, TR_OK);
    TR_CHECK(u.has_repos);
    TR_CHECK_INT(u.nrepos, ==, 0);
    t.has_repos = false;
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_discovery_parse_txt(out, len, &u, NULL), ==, TR_OK);
    TR_CHECK(!u.has_repos);
}

TR_TEST(encode_version_range)
{
    tr_discovery_txt_t t = {.vmin = 1, .vmax = 3}, u;
    test_key(t.key);
    uint8_t out[TR_DISCOVERY_TXT_MAX];
    size_t len;
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_OK);
    TR_CHECK(memmem(out, len, "\x03v=3\x06vmin=1", 11) != NULL);
    TR_CHECK_INT(tr_discovery_parse_txt(out, len, &u, NULL), ==, TR_OK);
    TR_CHECK_INT(u.vmin, ==, 1);
    TR_CHECK_INT(u.vmax, ==, 3);
    t.vmin = 0;
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_EINVAL);
    t.vmin = 4;
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_EINVAL);
}

TR_TEST(encode_refuses_bad_names_and_small_buffers)
{
    tr_discovery_txt_t t = {.vmin = 1, .vmax = 1};
    test_key(t.key);
    uint8_t out[TR_DISCOVERY_TXT_MAX];
    size_t len;
    snprintf(t.name, sizeof t.name, "tab\there");
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_EINVAL);
    snprintf(t.name, sizeof t.name, "bad \xc3\x28 utf8");
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_EINVAL);
    snprintf(t.name, sizeof t.name, "ok");
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, 20, &len, NULL), ==, TR_ETOOBIG);
    TR_CHECK_INT(tr_discovery_txt_encode(&t, out, sizeof out, &len, NULL), ==, TR_OK);
}

TR_TEST(keys_are_case_insensitive_first_wins_unknown_ignored)
{
    setup();
    tr_discovery_txt_t t;
    uint8_t other[TR_KEY_LEN];
    char otherid[TR_PEER_ID_STRLEN + 1], otherkv[80];
    {
        uint8_t seed[32] = {9};
        tr_identity_t *id;
        TR_CHECK_INT(tr_identity_from_seed(seed, &id), ==, TR_OK);
        memcpy(other, tr_identity_public(id), TR_KEY_LEN);
        tr_identity_destroy(&id);
    }
    tr_peer_id(otherid, other);
    snprintf(otherkv, sizeof otherkv, "ID=%s", otherid);
    uint8_t key[TR_KEY_LEN];
    test_key(key);
    TR_CHECK_INT(PARSE(&t, NULL, "V=1", g_idkv, otherkv, "Name=x", "name=y", "future=1", "flag",
                       "=ignored", ""),
                 ==, TR_OK);
    TR_CHECK_MEM(t.key, key, TR_KEY_LEN);
    TR_CHECK_STR(t.name, "x");
    TR_CHECK(!t.has_repos);
    /* Order does not matter; a name is optional. */
    TR_CHECK_INT(PARSE(&t, NULL, g_idkv, "v=1"), ==, TR_OK);
    TR_CHECK_STR(t.name, "");
}

TR_TEST(missing_records_and_keys)
{
    setup();
    tr_discovery_txt_t t;
    tr_err_t err;
    TR_CHECK_INT(tr_discovery_parse_txt((const uint8_t *)"", 0, &t, &err), ==, TR_EMALFORMED);
    TR_CHECK_INT(tr_discovery_parse_txt((const uint8_t *)"\0", 1, &t, &err), ==, TR_EMALFORMED);
    TR_CHECK_INT(PARSE(&t, &err, g_idkv), ==, TR_EMALFORMED);
    TR_CHECK(strstr(err.msg, "v=") != NULL);
    TR_CHECK_INT(PARSE(&t, &err, "v=1", "name=x"), ==, TR_EMALFORMED);
    TR_CHECK(strstr(err.msg, "id=") != NULL);
    TR_CHECK_INT(PARSE(&t, &err, "v=1", "id"), ==, TR_EMALFORMED);
    TR_CHECK_INT(PARSE(&t, &err, "v", g_idkv), ==, TR_EMALFORMED);
    /* A failed parse leaves nothing behind. */
    TR_CHECK(sodium_is_zero((const uint8_t *)&t, sizeof t));
}

TR_TEST(oversize_and_truncated)
{
    setup();
    tr_discovery_txt_t t;
    uint8_t buf[TR_DISCOVERY_TXT_MAX + 300];
    size_t len = rdata_of(buf, sizeof buf, (const char *const[]){"v=1", g_idkv, NULL});
    /* Pad with unknown keys past the limit. */
    while (len + 101 <= sizeof buf) {
        buf[len++] = 100;
        memset(buf + len, 'x', 100);
        len += 100;
    }
    TR_CHECK_INT(len, >, TR_DISCOVERY_TXT_MAX);
    TR_CHECK_INT(tr_discovery_parse_txt(buf, len, &t, NULL), ==, TR_ETOOBIG);
    /* A length byte that runs past the end. */
    len = rdata_of(buf, sizeof buf, (const char *const[]){"v=1", g_idkv, NULL});
    buf[len++] = 50;
    memcpy(buf + len, "name=", 5);
    len += 5;
    TR_CHECK_INT(tr_discovery_parse_txt(buf, len, &t, NULL), ==, TR_EMALFORMED);
    /* Every prefix of a good record: refused or accepted, never a crash
     * (ASan watches the reads). */
    tr_discovery_txt_t g = {.vmin = 1, .vmax = 1, .has_repos = true, .nrepos = 1};
    test_key(g.key);
    snprintf(g.name, sizeof g.name, "x");
    TR_CHECK_INT(tr_discovery_txt_encode(&g, buf, sizeof buf, &len, NULL), ==, TR_OK);
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, buf, n);
        int rc = tr_discovery_parse_txt(copy, n, &t, NULL);
        free(copy);
        TR_CHECK(rc == TR_OK || rc == TR_EMALFORMED || rc == TR_EINVAL);
    }
}

TR_TEST(wrong_versions)
{
    setup();
    tr_discovery_txt_t t;
    tr_err_t err;
    TR_CHECK_INT(PARSE(&t, &err, "v=2", g_idkv), ==, TR_EVERSION);
    TR_CHECK(strstr(err.msg, "2..2") != NULL);
    TR_CHECK_INT(PARSE(&t, &err, "v=9", "vmin=2", g_idkv), ==, TR_EVERSION);
    TR_CHECK_INT(PARSE(&t, &err, "v=3", "vmin=1", g_idkv), ==, TR_OK); /* overlaps ours */
    TR_CHECK_INT(t.vmax, ==, 3);
    static const char *const bad[] = {
        "v=0",  "v=01", "v=+1", "v=-1", "v=1.0", "v= 1", "v=", "v=65536", "v=99999999999999999999",
        "v=abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (PARSE(&t, &err, bad[i], g_idkv) != TR_EMALFORMED) TR_FAILF("accepted %s", bad[i]);
    TR_CHECK_INT(PARSE(&t, &err, "v=1", "vmin=2", g_idkv), ==, TR_EMALFORMED);
    TR_CHECK_INT(PARSE(&t, &err, "v=1", "vmin", g_idkv), ==, TR_EMALFORMED);
}

TR_TEST(invalid_peer_ids)
{
    setup();
    tr_discovery_txt_t t;
    tr_err_t err;
    char kv[128];
    /* Wrong length, one character short and one too many. */
    snprintf(kv, sizeof kv, "id=%.*s", TR_PEER_ID_STRLEN - 1, g_id);
    TR_CHECK_INT(PARSE(&t, &err, "v=1", kv), ==, TR_EINVAL);
    snprintf(kv, sizeof kv, "id=%sa", g_id);
    TR_CHECK_INT(PARSE(&t, &err, "v=1", kv), ==, TR_EINVAL);
    /* Not base32: 0, 1, 8, 9 and punctuation; uppercase and dashes are
     * accepted by humans' input but never on the wire. */
    static const char subst[] = {'0', '1', '8', '9', '-', ' ', 'A', '=', '\xff'};
    for (size_t i = 0; i < sizeof subst; i++) {
        snprintf(kv, sizeof kv, "id=%s", g_id);
        kv[3 + 10] = subst[i];
        if (PARSE(&t, &err, "v=1", kv) != TR_EINVAL) TR_FAILF("accepted '%c' in an id", subst[i]);
    }
    /* Bad checksum: a valid base32 character changed. */
    snprintf(kv, sizeof kv, "id=%s", g_id);
    kv[3 + 20] = kv[3 + 20] == 'a' ? 'b' : 'a';
    TR_CHECK_INT(PARSE(&t, &err, "v=1", kv), ==, TR_EINVAL);
    TR_CHECK(strstr(err.msg, "checksum") != NULL);
    /* The key as 64 hex digits: fine for `trellis peer trust`, not here. */
    uint8_t key[TR_KEY_LEN];
    char hex[TR_KEY_HEXLEN + 1];
    test_key(key);
    tr_hex(hex, key, TR_KEY_LEN);
    snprintf(kv, sizeof kv, "id=%s", hex);
    TR_CHECK_INT(PARSE(&t, &err, "v=1", kv), ==, TR_EINVAL);
    /* A well-formed id of a key that is not a usable point (small order). */
    uint8_t weak[TR_KEY_LEN] = {1};
    char weakid[TR_PEER_ID_STRLEN + 1];
    tr_peer_id(weakid, weak);
    snprintf(kv, sizeof kv, "id=%s", weakid);
    TR_CHECK_INT(PARSE(&t, &err, "v=1", kv), ==, TR_EINVAL);
    TR_CHECK(strstr(err.msg, "point") != NULL);
}

TR_TEST(bad_names_and_repo_lists)
{
    setup();
    tr_discovery_txt_t t;
    char name65[80], repos7[400], kv[400];
    snprintf(name65, sizeof name65, "name=%065d", 0);
    static const char *const names[] = {"name", "name=a\nb", "name=\x7f", "name=\xc3\x28",
                                        "name=\xed\xa0\x80" /* surrogate */};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (PARSE(&t, NULL, "v=1", g_idkv, names[i]) != TR_EMALFORMED)
            TR_FAILF("accepted name string %zu", i);
    TR_CHECK_INT(PARSE(&t, NULL, "v=1", g_idkv, name65), ==, TR_EMALFORMED);
    snprintf(kv, sizeof kv, "name=%064d", 0);
    TR_CHECK_INT(PARSE(&t, NULL, "v=1", g_idkv, kv), ==, TR_OK);

    char a[33], b[33];
    tr_hex(a, REPO_A, 16);
    tr_hex(b, REPO_B, 16);
    /* Seven ids fill a string (eight cannot fit in 255 bytes); a comma
     * after the seventh is refused. */
    size_t l = (size_t)snprintf(repos7, sizeof repos7, "repos=%s", a);
    for (int i = 1; i < 7; i++)
        l += (size_t)snprintf(repos7 + l, sizeof repos7 - l, ",%s", b);
    TR_CHECK_INT(PARSE(&t, NULL, "v=1", g_idkv, repos7), ==, TR_OK);
    TR_CHECK_INT(t.nrepos, ==, 7);
    snprintf(repos7 + l, sizeof repos7 - l, ",");
    TR_CHECK_INT(PARSE(&t, NULL, "v=1", g_idkv, repos7), ==, TR_EMALFORMED);
    char up[33];
    for (int k = 0; k < 32; k++)
        up[k] = (char)(a[k] >= 'a' ? a[k] - 32 : a[k]);
    up[32] = '\0';
    char bad[9][120];
    snprintf(bad[0], sizeof bad[0], "repos");
    snprintf(bad[1], sizeof bad[1], "repos=,");
    snprintf(bad[2], sizeof bad[2], "repos=%s,", a);
    snprintf(bad[3], sizeof bad[3], "repos=,%s", a);
    snprintf(bad[4], sizeof bad[4], "repos=%s,,%s", a, a);
    snprintf(bad[5], sizeof bad[5], "repos=%.31s", a);
    snprintf(bad[6], sizeof bad[6], "repos=%sa", a);
    snprintf(bad[7], sizeof bad[7], "repos=%s;%s", a, a);
    snprintf(bad[8], sizeof bad[8], "repos=%s", up);
    for (size_t i = 0; i < 9; i++)
        if (PARSE(&t, NULL, "v=1", g_idkv, bad[i]) != TR_EMALFORMED)
            TR_FAILF("accepted %s", bad[i]);
    snprintf(kv, sizeof kv, "repos=%s,%s", a, b);
    TR_CHECK_INT(PARSE(&t, NULL, "v=1", g_idkv, kv), ==, TR_OK);
    TR_CHECK_INT(t.nrepos, ==, 2);
    TR_CHECK_MEM(t.repos[0], REPO_A, 16);
}

/* Seeded random corruption of good records: no crash, no leak, and
 * whatever is accepted re-encodes into a record that parses the same. */
TR_TEST(random_corruption)
{
    tr_discovery_txt_t g = {.vmin = 1, .vmax = 1, .has_repos = true, .nrepos = 2}, t, u;
    test_key(g.key);
    snprintf(g.name, sizeof g.name, "fuzz");
    uint8_t good[TR_DISCOVERY_TXT_MAX], buf[TR_DISCOVERY_TXT_MAX + 64], re[TR_DISCOVERY_TXT_MAX];
    size_t glen, rlen;
    TR_CHECK_INT(tr_discovery_txt_encode(&g, good, sizeof good, &glen, NULL), ==, TR_OK);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, good, glen);
        size_t len = glen;
        int edits = 1 + (int)(s % 4);
        for (int e = 0; e < edits; e++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            size_t pos = (size_t)(s >> 8) % len;
            switch (s % 4) {
            case 0:
                buf[pos] = (uint8_t)(s >> 32);
                break;
            case 1:
                buf[pos] ^= (uint8_t)(1u << ((s >> 40) % 8));
                break;
            case 2:
                len = pos + 1;
                break;
            case 3:
                if (len + 1 < sizeof buf) buf[len++] = (uint8_t)(s >> 24);
                break;
            }
        }
        if (tr_discovery_parse_txt(buf, len, &t, NULL) != TR_OK) continue;
        accepted++;
        TR_CHECK_INT(tr_discovery_txt_encode(&t, re, sizeof re, &rlen, NULL), ==, TR_OK);
        TR_CHECK_INT(tr_discovery_parse_txt(re, rlen, &u, NULL), ==, TR_OK);
        TR_CHECK(t.vmin == u.vmin && t.vmax == u.vmax && t.has_repos == u.has_repos &&
                 t.nrepos == u.nrepos);
        TR_CHECK_MEM(t.key, u.key, TR_KEY_LEN);
        TR_CHECK_STR(t.name, u.name);
        TR_CHECK_MEM(t.repos, u.repos, sizeof t.repos);
    }
    TR_CHECK_INT(accepted, >, 0);
}

TR_MAIN()
