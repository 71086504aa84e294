/* config.c — parsing `.trellis/config.json`, resolving branch policies and
 * holding the field strategies (see tr_config.h). */
#include "tr_config.h"

#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tr_json.h"
#include "tr_strategy.h"
#include "tr_op.h" /* TR_BRANCH_MAX */

typedef struct {
    char *key; /* NUL-terminated branch name or glob */
    size_t len;
    bool glob;
    tr_config_policy_t policy;
} cfg_policy_t;

struct tr_config {
    int version;
    cfg_policy_t *policies; /* sorted bytewise by key */
    size_t npolicies;
    tr_strategies_t *strategies; /* fieldStrategies + restrictionOrder (never NULL once parsed) */
    char **unknown; /* key paths, file order */
    size_t nunknown;
};

/* Parsing state: where we are, for messages. */
typedef struct {
    tr_config_t *cfg;
    const char *fname;
    tr_err_t *err;
} cfg_ctx_t;

static const tr_config_policy_t cfg_default_policy = {.linear = false, .require_signing = true};

static const char cfg_default_text[] =
    "{\n"
    "  \"version\": 1,\n"
    "  \"branchPolicies\": {\n"
    "    \"main\": { \"linear\": true, \"requireSigning\": true },\n"
    "    \"*\": { \"linear\": false, \"requireSigning\": true }\n"
    "  }\n"
    "}\n";

const char *tr_config_default_text(void)
{
    return cfg_default_text;
}

/* Appends key to the path `parent` ("" at the top) in out[cap]. */
static void cfg_path(char *out, size_t cap, const char *parent, const char *key, size_t len)
{
    size_t n = strnlen(parent, cap - 1);
    memmove(out, parent, n);
    out[n] = '\0';
    n = tr_json_path_key(out, cap, n, key, len);
    if (!parent[0] && out[0] == '.') memmove(out, out + 1, n); /* the NUL moves too */
}

/* Fails with "FILE: PATH: why" and TR_ECONFIG. */
static int cfg_fail(cfg_ctx_t *x, const char *path, const char *why)
{
    return tr_err_set(x->err, TR_ECONFIG, "%s: %s: %s", x->fname, path, why);
}


static int cfg_unknown(cfg_ctx_t *x, const char *path)
{
    tr_config_t *c = x->cfg;
    char **u = realloc(c->unknown, (c->nunknown + 1) * sizeof *u);
    if (!u) return tr_err_set(x->err, TR_ENOMEM, "out of memory");
    c->unknown = u;
    if (!(u[c->nunknown] = strdup(path))) return tr_err_set(x->err, TR_ENOMEM, "out of memory");
    c->nunknown++;
    return TR_OK;
}

static bool cfg_is_glob(const char *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (k[i] == '*' || k[i] == '?' || k[i] == '[' || k[i] == '\\') return true;
    return false;
}

/* One entry of branchPolicies: {"linear": bool, "requireSigning": bool}. */
static int cfg_policy_entry(cfg_ctx_t *x, const char *path, const json_t *v,
                            tr_config_policy_t *out)
{
    char sub[512], why[96];
    *out = cfg_default_policy;
    if (!json_is_object(v)) {
        snprintf(why, sizeof why, "expected an object, got %s", tr_json_type_name(v));
        return cfg_fail(x, path, why);
    }
    const char *k;
    size_t klen;
    json_t *f;
    json_object_keylen_foreach((json_t *)v, k, klen, f)
    {
        bool *dst = NULL;
        if (klen == 6 && memcmp(k, "linear", 6) == 0)
            dst = &out->linear;
        else if (klen == 14 && memcmp(k, "requireSigning", 14) == 0)
            dst = &out->require_signing;
        cfg_path(sub, sizeof sub, path, k, klen);
        if (!dst) {
            int rc = cfg_unknown(x, sub);
            if (rc) return rc;
            continue;
        }
        if (!json_is_boolean(f)) {
            snprintf(why, sizeof why, "expected true or false, got %s", tr_json_type_name(f));
            return cfg_fail(x, sub, why);
        }
        *dst = json_is_true(f);
    }
    return TR_OK;
}

static int cfg_policy_cmp(const void *a, const void *b)
{
    const cfg_policy_t *p = a, *q = b;
    int r = memcmp(p->key, q->key, p->len < q->len ? p->len : q->len);
    if (r) return r;
    return p->len < q->len ? -1 : p->len > q->len;
}

static int cfg_branch_policies(cfg_ctx_t *x, const char *path, const json_t *v)
{
    char sub[512];
    tr_config_t *c = x->cfg;
    if (!json_is_object(v)) {
        char why[96];
        snprintf(why, sizeof why, "expected an object, got %s", tr_json_type_name(v));
        return cfg_fail(x, path, why);
    }
    size_t n = json_object_size(v);
    if (n && !(c->policies = calloc(n, sizeof *c->policies)))
        return tr_err_set(x->err, TR_ENOMEM, "out of memory");
    const char *k;
    size_t klen;
    json_t *e;
    json_object_keylen_foreach((json_t *)v, k, klen, e)
    {
        cfg_path(sub, sizeof sub, path, k, klen);
        if (klen == 0) return cfg_fail(x, sub, "a branch name or glob cannot be empty");
        if (klen > TR_BRANCH_MAX) return cfg_fail(x, sub, "longer than 255 bytes");
        if (memchr(k, '\0', klen)) return cfg_fail(x, sub, "contains a NUL character");
        cfg_policy_t *p = &c->policies[c->npolicies];
        p->glob = cfg_is_glob(k, klen);
        const char *bad = p->glob ? tr_glob_problem(k, klen) : NULL;
        if (bad) {
            char why[96];
            snprintf(why, sizeof why, "invalid glob: %s", bad);
            return cfg_fail(x, sub, why);
        }
        int rc = cfg_policy_entry(x, sub, e, &p->policy);
        if (rc) return rc;
        if (!(p->key = strndup(k, klen))) return tr_err_set(x->err, TR_ENOMEM, "out of memory");
        p->len = klen;
        c->npolicies++;
    }
    qsort(c->policies, c->npolicies, sizeof *c->policies, cfg_policy_cmp);
    return TR_OK;
}

/* fieldStrategies and restrictionOrder make one table (tr_strategy.h),
 * parsed together once the file has been read (tr_config_parse). */
static int cfg_strategy_section(cfg_ctx_t *x, const char *path, const json_t *v)
{
    (void)x, (void)path, (void)v;
    return TR_OK;
}

/* The sections this version understands, handled in file order after
 * "version". A later version adds "links" here. */
static const struct {
    const char *key;
    int (*parse)(cfg_ctx_t *x, const char *path, const json_t *v);
} cfg_sections[] = {
    {"branchPolicies", cfg_branch_policies},
    {"fieldStrategies", cfg_strategy_section},
    {"restrictionOrder", cfg_strategy_section},
};

static int cfg_version(cfg_ctx_t *x, const json_t *root)
{
    const json_t *v = json_object_get(root, "version");
    x->cfg->version = TR_CONFIG_VERSION;
    if (!v) return TR_OK;
    if (!json_is_integer(v) || json_integer_value(v) < 1) {
        char why[96];
        snprintf(why, sizeof why, "expected a positive integer, got %s",
                 json_is_integer(v) ? "a number below 1" : tr_json_type_name(v));
        return cfg_fail(x, "version", why);
    }
    json_int_t ver = json_integer_value(v);
    if (ver > TR_CONFIG_VERSION)
        return tr_err_set(x->err, TR_EVERSION,
                          "%s: version: %lld is newer than this trellis understands (%d); "
                          "upgrade trellis",
                          x->fname, (long long)ver, TR_CONFIG_VERSION);
    x->cfg->version = (int)ver;
    return TR_OK;
}

int tr_config_parse(const char *text, size_t len, const char *fname, tr_config_t **out,
                    tr_err_t *err)
{
    *out = NULL;
    cfg_ctx_t x = {NULL, fname ? fname : "config.json", err};
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return tr_err_set(err, TR_ECONFIG, "%s:%d:%d: %s", x.fname, je.line, je.column, je.text);
    int rc = TR_OK;
    if (!(x.cfg = calloc(1, sizeof *x.cfg))) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory");
        goto done;
    }
    if (!json_is_object(root)) {
        rc = tr_err_set(err, TR_ECONFIG, "%s: expected a JSON object at the top, got %s", x.fname,
                        tr_json_type_name(root));
        goto done;
    }
    if ((rc = cfg_version(&x, root))) goto done;

    const char *k;
    size_t klen;
    json_t *v;
    char path[512];
    json_object_keylen_foreach(root, k, klen, v)
    {
        if (klen == 7 && memcmp(k, "version", 7) == 0) continue;
        size_t s = 0, nsec = sizeof cfg_sections / sizeof cfg_sections[0];
        while (s < nsec &&
               !(strlen(cfg_sections[s].key) == klen && memcmp(cfg_sections[s].key, k, klen) == 0))
            s++;
        cfg_path(path, sizeof path, "", k, klen);
        rc = s < nsec ? cfg_sections[s].parse(&x, path, v) : cfg_unknown(&x, path);
        if (rc) goto done;
    }
    rc = tr_strategies_parse(json_object_get(root, "fieldStrategies"),
                             json_object_get(root, "restrictionOrder"), x.fname,
                             &x.cfg->strategies, err);
done:
    json_decref(root);
    if (rc) tr_config_destroy(&x.cfg);
    *out = x.cfg;
    return rc;
}

void tr_config_destroy(tr_config_t **cp)
{
    if (!cp || !*cp) return;
    tr_config_t *c = *cp;
    for (size_t i = 0; i < c->npolicies; i++)
        free(c->policies[i].key);
    free(c->policies);
    for (size_t i = 0; i < c->nunknown; i++)
        free(c->unknown[i]);
    free(c->unknown);
    tr_strategies_destroy(&c->strategies);
    free(c);
    *cp = NULL;
}

int tr_config_version(const tr_config_t *c)
{
    return c ? c->version : TR_CONFIG_VERSION;
}

/* Exact key first, then the longest matching glob (ties: the smallest key in
 * bytewise order, which comes first in the sorted array), then the default.
 * Called by the store for every write batch: a scan of a handful of entries
 * and fnmatch on a stack copy of the name, no allocation. */
void tr_config_policy(const tr_config_t *c, const char *branch, size_t len, tr_config_policy_t *out,
                      const char **matched)
{
    const cfg_policy_t *best = NULL;
    *out = cfg_default_policy;
    if (matched) *matched = NULL;
    if (!c || !branch) return;
    for (size_t i = 0; i < c->npolicies; i++) {
        const cfg_policy_t *p = &c->policies[i];
        if (!p->glob && p->len == len && memcmp(p->key, branch, len) == 0) {
            best = p;
            break;
        }
    }
    if (!best && len <= TR_BRANCH_MAX && !memchr(branch, '\0', len)) {
        char name[TR_BRANCH_MAX + 1];
        memcpy(name, branch, len);
        name[len] = '\0';
        for (size_t i = 0; i < c->npolicies; i++) {
            const cfg_policy_t *p = &c->policies[i];
            if (p->glob && (!best || p->len > best->len) && fnmatch(p->key, name, 0) == 0) best = p;
        }
    }
    if (!best) return;
    *out = best->policy;
    if (matched) *matched = best->key;
}

size_t tr_config_policy_count(const tr_config_t *c)
{
    return c ? c->npolicies : 0;
}

const char *tr_config_policy_at(const tr_config_t *c, size_t i, tr_config_policy_t *out)
{
    if (!c || i >= c->npolicies) return NULL;
    if (out) *out = c->policies[i].policy;
    return c->policies[i].key;
}

size_t tr_config_unknown_count(const tr_config_t *c)
{
    return c ? c->nunknown : 0;
}

const char *tr_config_unknown(const tr_config_t *c, size_t i)
{
    return c && i < c->nunknown ? c->unknown[i] : NULL;
}

const tr_strategies_t *tr_config_strategies(const tr_config_t *c)
{
    return c ? c->strategies : NULL;
}
