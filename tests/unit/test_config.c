/* test_config.c — config.json parsing, refusals with file and key path, and
 * branch policy resolution (exact, longest glob, default). */
#include "tr_config.h"
#include "tr_test.h"

static tr_config_t *parse(const char *text, tr_err_t *err)
{
    tr_config_t *c = NULL;
    tr_err_clear(err);
    if (tr_config_parse(text, strlen(text), "config.json", &c, err) != TR_OK) c = NULL;
    return c;
}

static tr_config_policy_t policy(const tr_config_t *c, const char *branch, const char **matched)
{
    tr_config_policy_t p;
    tr_config_policy(c, branch, strlen(branch), &p, matched);
    return p;
}

TR_TEST(default_text)
{
    tr_err_t e;
    tr_config_t *c = parse(tr_config_default_text(), &e);
    TR_CHECK(c);
    TR_CHECK_INT(tr_config_version(c), ==, 1);
    TR_CHECK_INT(tr_config_policy_count(c), ==, 2);
    TR_CHECK_INT(tr_config_unknown_count(c), ==, 0);
    const char *m;
    tr_config_policy_t p = policy(c, "main", &m);
    TR_CHECK(p.linear && p.require_signing);
    TR_CHECK_STR(m, "main");
    p = policy(c, "feature/x", &m);
    TR_CHECK(!p.linear && p.require_signing);
    TR_CHECK_STR(m, "*");
    tr_config_destroy(&c);
    TR_CHECK(c == NULL);
    tr_config_destroy(&c); /* NULL-safe */
}

TR_TEST(resolution_order)
{
    tr_err_t e;
    tr_config_t *c =
        parse("{\"branchPolicies\": {"
              " \"feature/*\": {\"linear\": false, \"requireSigning\": false},"
              " \"feature/core/*\": {\"linear\": true},"
              " \"feature/core/exact\": {\"linear\": false, \"requireSigning\": false},"
              " \"*\": {\"linear\": true, \"requireSigning\": true},"
              " \"rel?\": {\"linear\": true, \"requireSigning\": false}"
              "}}",
              &e);
    TR_CHECK(c);
    const char *m;
    /* exact key beats every glob */
    tr_config_policy_t p = policy(c, "feature/core/exact", &m);
    TR_CHECK_STR(m, "feature/core/exact");
    TR_CHECK(!p.linear && !p.require_signing);
    /* longest matching glob; '*' crosses '/' (FNM_PATHNAME off) */
    p = policy(c, "feature/core/deep/er", &m);
    TR_CHECK_STR(m, "feature/core/*");
    TR_CHECK(p.linear && p.require_signing); /* requireSigning missing: default true */
    p = policy(c, "feature/a/b", &m);
    TR_CHECK_STR(m, "feature/*");
    TR_CHECK(!p.linear && !p.require_signing);
    /* "rel?" (4) is longer than "*" (1) */
    p = policy(c, "rel1", &m);
    TR_CHECK_STR(m, "rel?");
    p = policy(c, "release", &m);
    TR_CHECK_STR(m, "*");
    tr_config_destroy(&c);
}

TR_TEST(ties_do_not_depend_on_file_order)
{
    tr_err_t e;
    const char *a = "{\"branchPolicies\": {\"a*\": {\"linear\": true}, \"*b\": {}}}";
    const char *b = "{\"branchPolicies\": {\"*b\": {}, \"a*\": {\"linear\": true}}}";
    tr_config_t *ca = parse(a, &e), *cb = parse(b, &e);
    TR_CHECK(ca && cb);
    const char *ma, *mb;
    policy(ca, "ab", &ma);
    policy(cb, "ab", &mb);
    TR_CHECK_STR(ma, mb);
    TR_CHECK_STR(ma, "*b"); /* equal length: bytewise smallest ('*' < 'a') */
    tr_config_destroy(&ca);
    tr_config_destroy(&cb);
}

TR_TEST(default_without_match_or_config)
{
    tr_err_t e;
    tr_config_t *c =
        parse("{\"version\": 1, \"branchPolicies\": {\"main\": {\"linear\": true}}}", &e);
    TR_CHECK(c);
    const char *m = "x";
    tr_config_policy_t p = policy(c, "dev", &m);
    TR_CHECK(m == NULL);
    TR_CHECK(!p.linear && p.require_signing);
    p = policy(NULL, "main", &m);
    TR_CHECK(!p.linear && p.require_signing);
    /* a name longer than any branch may be: default, no crash */
    char longname[400];
    memset(longname, 'm', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    p = policy(c, longname, &m);
    TR_CHECK(m == NULL);
    tr_config_destroy(&c);
    c = parse("{}", &e);
    TR_CHECK(c);
    TR_CHECK_INT(tr_config_policy_count(c), ==, 0);
    tr_config_destroy(&c);
}

TR_TEST(unknown_keys_remembered)
{
    tr_err_t e;
    tr_config_t *c = parse("{\"fieldStrategies\": {}, \"branchPolicies\": {\"main\": "
                           "{\"linear\": true, \"lineer\": 1}}, \"links\": []}",
                           &e);
    TR_CHECK(c);
    /* fieldStrategies is known since the CRDT store (tests/unit/test_state.c) */
    TR_CHECK_INT(tr_config_unknown_count(c), ==, 2);
    TR_CHECK_STR(tr_config_unknown(c, 0), "branchPolicies.main.lineer");
    TR_CHECK_STR(tr_config_unknown(c, 1), "links");
    TR_CHECK(tr_config_unknown(c, 2) == NULL);
    tr_config_destroy(&c);
}

#define CHECK_REFUSED(text_, code_, msg_)                                                          \
    do {                                                                                           \
        tr_err_t e_;                                                                               \
        tr_config_t *c_ = parse(text_, &e_);                                                       \
        TR_CHECK(c_ == NULL);                                                                      \
        TR_CHECK_INT(e_.code, ==, code_);                                                          \
        TR_CHECK_STR(e_.msg, msg_);                                                                \
    } while (0)

TR_TEST(refusals_name_file_and_key)
{
    CHECK_REFUSED("{\"branchPolicies\": {\"feature/[\": {}}}", TR_ECONFIG,
                  "config.json: branchPolicies.\"feature/[\": invalid glob: '[' is never closed");
    CHECK_REFUSED("{\"branchPolicies\": {\"x\\\\\": {}}}", TR_ECONFIG,
                  "config.json: branchPolicies.\"x\\\\\": invalid glob: ends in a lone backslash");
    CHECK_REFUSED("{\"branchPolicies\": {\"main\": {\"linear\": \"yes\"}}}", TR_ECONFIG,
                  "config.json: branchPolicies.main.linear: expected true or false, got a string");
    CHECK_REFUSED("{\"branchPolicies\": {\"main\": true}}", TR_ECONFIG,
                  "config.json: branchPolicies.main: expected an object, got a boolean");
    CHECK_REFUSED("{\"branchPolicies\": []}", TR_ECONFIG,
                  "config.json: branchPolicies: expected an object, got an array");
    CHECK_REFUSED("{\"branchPolicies\": {\"\": {}}}", TR_ECONFIG,
                  "config.json: branchPolicies.\"\": a branch name or glob cannot be empty");
    CHECK_REFUSED("{\"version\": \"1\"}", TR_ECONFIG,
                  "config.json: version: expected a positive integer, got a string");
    CHECK_REFUSED("{\"version\": 2}", TR_EVERSION,
                  "config.json: version: 2 is newer than this trellis understands (1); upgrade "
                  "trellis");
    CHECK_REFUSED("[]", TR_ECONFIG, "config.json: expected a JSON object at the top, got an array");
}

TR_TEST(syntax_errors_give_line_and_column)
{
    tr_err_t e;
    tr_config_t *c = parse("{\n  \"version\": 1,\n  \"branchPolicies\": {,}\n}\n", &e);
    TR_CHECK(c == NULL);
    TR_CHECK_INT(e.code, ==, TR_ECONFIG);
    TR_CHECK(strncmp(e.msg, "config.json:3:", 14) == 0);
    c = parse("{\"a\": 1, \"a\": 2}", &e);
    TR_CHECK(c == NULL);
    TR_CHECK(strstr(e.msg, "duplicate"));
}

TR_TEST(valid_globs_accepted)
{
    tr_err_t e;
    tr_config_t *c = parse("{\"branchPolicies\": {\"[]x]*\": {}, \"[!a-c]?\": {}, "
                           "\"[[:digit:]]*\": {\"linear\": true}, \"lit\\\\*\": {}}}",
                           &e);
    TR_CHECK(c);
    const char *m;
    tr_config_policy_t p = policy(c, "7up", &m);
    TR_CHECK_STR(m, "[[:digit:]]*");
    TR_CHECK(p.linear);
    policy(c, "]abc", &m);
    TR_CHECK_STR(m, "[]x]*");
    policy(c, "lit*", &m); /* escaped star matches only itself */
    TR_CHECK_STR(m, "lit\\*");
    tr_config_destroy(&c);
}

TR_MAIN()
