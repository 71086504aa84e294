/* test_reconcile.c — the standalone reconciler (seed 000): merged order,
 * fork point, unique ops, and each conflict reason (docs/crdt.md §7). */
#include <jansson.h>

#include "tr_crdt.h"
#include "tr_json.h"
#include "tr_test.h"

/* ---- fixture ------------------------------------------------------------- */

static uint8_t arena[1 << 22];
static size_t arena_used;

static const uint8_t *keep(const void *p, size_t n)
{
    if (arena_used + n > sizeof arena) abort();
    uint8_t *d = arena + arena_used;
    memcpy(d, p, n);
    arena_used += n;
    return d;
}

/* An op by author `a` from JSON body text; wall clock deliberately
 * unrelated to the order (it must never matter). */
static tr_op_t op(int a, uint64_t seq, uint64_t lamport, const char *kind, const char *target,
                  const char *body_json)
{
    tr_buf_t b = {0};
    if (tr_json_parse(body_json, strlen(body_json), TR_JSON_TAGS, &b, NULL)) abort();
    tr_op_t o = {0};
    o.branch = "main";
    o.branch_len = 4;
    memset(o.author, a, 32);
    o.seq = seq;
    o.lamport = lamport;
    o.wall_ms = 1000000 - lamport * 1000 - (uint64_t)a;
    o.has_prev = seq > 1;
    memset(o.prev, 0xee, 32);
    o.kind = kind;
    o.kind_len = strlen(kind);
    o.target = target;
    o.target_len = strlen(target);
    o.body = keep(b.data, b.len);
    o.body_len = b.len;
    tr_buf_free(&b);
    tr_buf_t rec = {0};
    if (tr_op_encode(&o, NULL, &rec, NULL)) abort();
    tr_buf_free(&rec);
    return o;
}

static tr_op_t set(int a, uint64_t seq, uint64_t lamport, const char *entity, const char *field,
                   const char *value, bool first)
{
    char body[512];
    snprintf(
        body, sizeof body, "{\"field\": \"%s\", \"pred\": [%s], \"value\": %s}", field,
        first ? ""
              : "{\"$bin\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        value);
    return op(a, seq, lamport, "field.set", entity, body);
}

static tr_op_t file(int a, uint64_t seq, uint64_t lamport, const char *kind, const char *path,
                    char content, const char *from)
{
    char body[512], hex[65];
    memset(hex, content, 64);
    hex[64] = '\0';
    if (!strcmp(kind, "file.delete"))
        snprintf(body, sizeof body, "{\"path\": \"%s\"}", path);
    else if (from)
        snprintf(body, sizeof body,
                 "{\"from\": \"%s\", \"hash\": {\"$bin\": \"%s\"}, \"path\": \"%s\", \"size\": 1}",
                 from, hex, path);
    else
        snprintf(body, sizeof body, "{\"hash\": {\"$bin\": \"%s\"}, \"path\": \"%s\", \"size\": 1}",
                 hex, path);
    return op(a, seq, lamport, kind, path, body);
}

static tr_strategies_t *manual_contract(void)
{
    json_t *fs = json_loads("{\"contract\": \"manual_resolution\"}", 0, NULL);
    tr_strategies_t *st = NULL;
    if (tr_strategies_parse(fs, NULL, NULL, &st, NULL)) abort();
    json_decref(fs);
    return st;
}

/* Reconciles and checks there is exactly one conflict with this reason,
 * scope and target; also checks the swapped call agrees. */
static int one_conflict(const tr_op_t *l, size_t nl, const tr_op_t *r, size_t nr,
                        const tr_strategies_t *st, const char *reason, const char *scope,
                        const char *target, const char *field)
{
    for (int swap = 0; swap < 2; swap++) {
        tr_reconcile_t *res = NULL;
        if (tr_reconcile(swap ? r : l, swap ? nr : nl, swap ? l : r, swap ? nl : nr, st, &res,
                         NULL))
            return printf("  reconcile failed\n"), 0;
        int ok = tr_reconcile_conflict_count(res) == 1 && !tr_reconcile_clean(res);
        const tr_conflict_t *c = tr_reconcile_conflict(res, 0);
        if (ok) {
            ok = !strcmp(c->reason, reason) && !strcmp(c->scope, scope) &&
                 c->target.n == strlen(target) && !memcmp(c->target.p, target, c->target.n) &&
                 (field ? c->field.n == strlen(field) && !memcmp(c->field.p, field, c->field.n)
                        : c->field.p == NULL);
            if (!ok)
                printf("  got %s %s \"%.*s\": %s\n", c->scope, c->reason, (int)c->target.n,
                       c->target.p, c->text);
        } else {
            printf("  %zu conflicts\n", tr_reconcile_conflict_count(res));
            for (size_t i = 0; i < tr_reconcile_conflict_count(res); i++)
                printf("  - %s\n", tr_reconcile_conflict(res, i)->text);
        }
        tr_reconcile_destroy(&res);
        if (!ok) return 0;
    }
    return 1;
}

static int no_conflict(const tr_op_t *l, size_t nl, const tr_op_t *r, size_t nr,
                       const tr_strategies_t *st)
{
    tr_reconcile_t *res = NULL;
    if (tr_reconcile(l, nl, r, nr, st, &res, NULL)) return 0;
    bool clean = tr_reconcile_clean(res);
    for (size_t i = 0; i < tr_reconcile_conflict_count(res); i++)
        printf("  - %s\n", tr_reconcile_conflict(res, i)->text);
    tr_reconcile_destroy(&res);
    return clean;
}

/* ---- merged order, fork point, unique ops ----------------------------------- */

TR_TEST(fork_point_and_unique_ops)
{
    tr_op_t c1 = set(1, 1, 1, "doc", "title", "\"a\"", true);
    tr_op_t c2 = set(2, 1, 2, "doc", "body", "\"b\"", true);
    tr_op_t l1 = set(1, 2, 3, "doc", "x", "1", true);
    tr_op_t l2 = set(1, 3, 5, "doc", "y", "1", true);
    tr_op_t r1 = set(3, 1, 3, "other", "x", "1", true);
    tr_op_t r2 = set(2, 2, 4, "other", "y", "1", true);
    tr_op_t local[] = {c1, c2, l1, l2, l2 /* a repeat */};
    tr_op_t remote[] = {r2, c2, r1, c1};
    tr_reconcile_t *res = NULL;
    TR_CHECK_INT(tr_reconcile(local, 5, remote, 4, NULL, &res, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_reconcile_merged_count(res), ==, 6);
    /* (lamport, author, seq): c1 c2 l1(3,1) r1(3,3) r2 l2 — never wall clock */
    const tr_op_t *want[] = {&c1, &c2, &l1, &r1, &r2, &l2};
    const tr_side_t sides[] = {TR_SIDE_BOTH,   TR_SIDE_BOTH,   TR_SIDE_LOCAL,
                               TR_SIDE_REMOTE, TR_SIDE_REMOTE, TR_SIDE_LOCAL};
    for (size_t i = 0; i < 6; i++) {
        tr_side_t s;
        const tr_op_t *o = tr_reconcile_merged(res, i, &s);
        TR_CHECK_MEM(o->hash, want[i]->hash, 32);
        TR_CHECK_INT(s, ==, sides[i]);
    }
    uint8_t fork[32];
    TR_CHECK(tr_reconcile_fork_point(res, fork));
    TR_CHECK_MEM(fork, c2.hash, 32);
    TR_CHECK_INT(tr_reconcile_unique_count(res, TR_SIDE_LOCAL), ==, 2);
    TR_CHECK_INT(tr_reconcile_unique_count(res, TR_SIDE_REMOTE), ==, 2);
    TR_CHECK_MEM(tr_reconcile_unique(res, TR_SIDE_LOCAL, 0)->hash, l1.hash, 32);
    TR_CHECK_MEM(tr_reconcile_unique(res, TR_SIDE_LOCAL, 1)->hash, l2.hash, 32);
    TR_CHECK_MEM(tr_reconcile_unique(res, TR_SIDE_REMOTE, 0)->hash, r1.hash, 32);
    TR_CHECK(tr_reconcile_unique(res, TR_SIDE_REMOTE, 2) == NULL);
    TR_CHECK(tr_reconcile_clean(res)); /* different targets */
    tr_reconcile_destroy(&res);
    TR_CHECK(res == NULL);

    /* No common op: no fork point. Empty inputs work. */
    TR_CHECK_INT(tr_reconcile(&l1, 1, &r1, 1, NULL, &res, NULL), ==, TR_OK);
    TR_CHECK(!tr_reconcile_fork_point(res, fork));
    tr_reconcile_destroy(&res);
    TR_CHECK_INT(tr_reconcile(NULL, 0, NULL, 0, NULL, &res, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_reconcile_merged_count(res), ==, 0);
    TR_CHECK(tr_reconcile_clean(res));
    tr_reconcile_destroy(&res);
    /* Identical sides: everything common, fork point = the last op. */
    TR_CHECK_INT(tr_reconcile(local, 4, local, 4, NULL, &res, NULL), ==, TR_OK);
    TR_CHECK(tr_reconcile_fork_point(res, fork));
    TR_CHECK_MEM(fork, l2.hash, 32);
    TR_CHECK_INT(tr_reconcile_unique_count(res, TR_SIDE_LOCAL), ==, 0);
    tr_reconcile_destroy(&res);
}

/* ---- conflict reasons ------------------------------------------------------ */

TR_TEST(modify_modify)
{
    tr_op_t base = set(1, 1, 1, "doc:1", "title", "\"a\"", true);
    tr_op_t l[] = {base, set(1, 2, 2, "doc:1", "title", "\"b\"", false)};
    tr_op_t r[] = {base, set(2, 1, 2, "doc:1", "title", "\"c\"", false),
                   op(2, 2, 3, "counter.add", "doc:1", "{\"field\": \"n\", \"n\": 1}")};
    TR_CHECK(one_conflict(l, 2, r, 3, NULL, "modify/modify", "entity", "doc:1", NULL));
    /* Files changed to different content. */
    tr_op_t fa = file(1, 1, 1, "file.add", "a.txt", '1', NULL);
    tr_op_t fl[] = {fa, file(1, 2, 2, "file.modify", "a.txt", '2', NULL)};
    tr_op_t fr[] = {fa, file(2, 1, 2, "file.modify", "a.txt", '3', NULL)};
    TR_CHECK(one_conflict(fl, 2, fr, 2, NULL, "modify/modify", "file", "a.txt", NULL));
    /* ... or to the same content: they converge, no conflict. */
    tr_op_t fs[] = {fa, file(3, 1, 2, "file.modify", "a.txt", '2', NULL)};
    TR_CHECK(no_conflict(fl, 2, fs, 2, NULL));
    /* Triples about one subject. */
    tr_op_t tl =
        op(1, 1, 1, "triple.add", "urn:s", "{\"o\": \"1\", \"p\": \"urn:p\", \"s\": \"urn:s\"}");
    tr_op_t tr =
        op(2, 1, 1, "triple.add", "urn:s", "{\"o\": \"2\", \"p\": \"urn:p\", \"s\": \"urn:s\"}");
    TR_CHECK(one_conflict(&tl, 1, &tr, 1, NULL, "modify/modify", "triple", "urn:s", NULL));
    /* The same op body on both sides (same change): no conflict. */
    tr_op_t tr2 =
        op(2, 1, 1, "triple.add", "urn:s", "{\"o\": \"1\", \"p\": \"urn:p\", \"s\": \"urn:s\"}");
    TR_CHECK(no_conflict(&tl, 1, &tr2, 1, NULL));
    /* app.* ops are targets too. */
    tr_op_t al = op(1, 1, 1, "app.note", "n1", "1"), ar = op(2, 1, 1, "app.note", "n1", "2");
    TR_CHECK(one_conflict(&al, 1, &ar, 1, NULL, "modify/modify", "other", "n1", NULL));
}

TR_TEST(delete_modify)
{
    tr_op_t base = set(1, 1, 1, "doc:1", "title", "\"a\"", true);
    tr_op_t l[] = {base, op(1, 2, 2, "entity.delete", "doc:1", "{}")};
    tr_op_t r[] = {base, set(2, 1, 2, "doc:1", "title", "\"c\"", false)};
    TR_CHECK(one_conflict(l, 2, r, 2, NULL, "delete/modify", "entity", "doc:1", NULL));
    /* Deleted on both sides: the same outcome. */
    tr_op_t r2[] = {base, op(2, 1, 2, "entity.delete", "doc:1", "{}")};
    TR_CHECK(no_conflict(l, 2, r2, 2, NULL));
    tr_op_t fa = file(1, 1, 1, "file.add", "a", '1', NULL);
    tr_op_t fl[] = {fa, file(1, 2, 2, "file.delete", "a", 0, NULL)};
    tr_op_t fr[] = {fa, file(2, 1, 2, "file.modify", "a", '2', NULL)};
    TR_CHECK(one_conflict(fl, 2, fr, 2, NULL, "delete/modify", "file", "a", NULL));
    tr_op_t tl =
        op(1, 1, 1, "triple.add", "urn:s", "{\"o\": \"1\", \"p\": \"urn:p\", \"s\": \"urn:s\"}");
    tr_op_t tr =
        op(2, 1, 1, "triple.remove", "urn:s", "{\"o\": \"1\", \"p\": \"urn:p\", \"s\": \"urn:s\"}");
    TR_CHECK(one_conflict(&tl, 1, &tr, 1, NULL, "delete/modify", "triple", "urn:s", NULL));
}

TR_TEST(add_add)
{
    tr_op_t l = file(1, 1, 1, "file.add", "new.txt", '1', NULL);
    tr_op_t r = file(2, 1, 1, "file.add", "new.txt", '2', NULL);
    TR_CHECK(one_conflict(&l, 1, &r, 1, NULL, "add/add", "file", "new.txt", NULL));
    tr_op_t same = file(2, 1, 1, "file.add", "new.txt", '1', NULL);
    TR_CHECK(no_conflict(&l, 1, &same, 1, NULL)); /* same content */
    /* First writes of one field with different values. */
    tr_op_t fl = set(1, 1, 1, "doc:9", "title", "\"mine\"", true);
    tr_op_t fr = set(2, 1, 1, "doc:9", "title", "\"yours\"", true);
    TR_CHECK(one_conflict(&fl, 1, &fr, 1, NULL, "add/add", "entity", "doc:9", "title"));
}

TR_TEST(rename)
{
    tr_op_t base = file(1, 1, 1, "file.add", "a", '1', NULL);
    tr_op_t l[] = {base, file(1, 2, 2, "file.rename", "b", '1', "a")};
    tr_op_t r[] = {base, file(2, 1, 2, "file.modify", "a", '2', NULL)};
    TR_CHECK(one_conflict(l, 2, r, 2, NULL, "rename", "file", "a", NULL));
    /* Renamed to different names on both sides: one conflict on the old
     * path; the new paths were each touched by one side only. */
    tr_op_t r2[] = {base, file(2, 1, 2, "file.rename", "c", '1', "a")};
    TR_CHECK(one_conflict(l, 2, r2, 2, NULL, "rename", "file", "a", NULL));
}

TR_TEST(manual)
{
    tr_strategies_t *st = manual_contract();
    tr_op_t base = set(1, 1, 1, "u", "contract", "1", true);
    tr_op_t l[] = {base, set(1, 2, 2, "u", "contract", "2", false),
                   set(1, 3, 3, "u", "title", "\"t\"", false)};
    tr_op_t r[] = {base, set(2, 1, 2, "u", "contract", "3", false)};
    TR_CHECK(one_conflict(l, 3, r, 2, st, "manual", "entity", "u", "contract"));
    /* Without the strategy it is an ordinary modify/modify. */
    TR_CHECK(one_conflict(l, 3, r, 2, NULL, "modify/modify", "entity", "u", NULL));
    tr_strategies_destroy(&st);
}

TR_TEST(equivocation)
{
    tr_op_t a = set(1, 1, 1, "doc", "t", "1", true);
    tr_op_t b = set(1, 1, 1, "doc2", "t", "2", true); /* same author and seq */
    tr_reconcile_t *res = NULL;
    TR_CHECK_INT(tr_reconcile(&a, 1, &b, 1, NULL, &res, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_reconcile_conflict_count(res), ==, 1);
    const tr_conflict_t *c = tr_reconcile_conflict(res, 0);
    TR_CHECK_STR(c->reason, "equivocation");
    TR_CHECK_STR(c->scope, "author");
    TR_CHECK(strstr(c->text, "seq 1") != NULL);
    TR_CHECK_INT(c->nlocal, ==, 1);
    TR_CHECK_INT(c->nremote, ==, 1);
    tr_reconcile_destroy(&res);
}

/* Swapping the sides swaps the labels and nothing else. */
TR_TEST(symmetric)
{
    tr_strategies_t *st = manual_contract();
    tr_op_t l[] = {set(1, 1, 1, "u", "contract", "1", true),
                   file(1, 2, 2, "file.add", "f", '1', NULL),
                   op(1, 3, 3, "entity.delete", "v", "{}"), set(1, 4, 4, "w", "a", "1", true),
                   op(1, 5, 5, "bogus.kind", "w", "{}")};
    tr_op_t r[] = {set(2, 1, 1, "u", "contract", "2", true),
                   file(2, 2, 2, "file.add", "f", '2', NULL), set(2, 3, 3, "v", "a", "1", false),
                   set(2, 4, 4, "w", "b", "1", true), op(2, 5, 5, "bogus.kind", "w", "[]")};
    tr_reconcile_t *a = NULL, *b = NULL;
    TR_CHECK_INT(tr_reconcile(l, 5, r, 5, st, &a, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_reconcile(r, 5, l, 5, st, &b, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_reconcile_conflict_count(a), ==, 5);
    TR_CHECK_INT(tr_reconcile_conflict_count(b), ==, 5);
    for (size_t i = 0; i < 5; i++) {
        const tr_conflict_t *x = tr_reconcile_conflict(a, i), *y = tr_reconcile_conflict(b, i);
        TR_CHECK_STR(x->reason, y->reason);
        TR_CHECK_STR(x->scope, y->scope);
        TR_CHECK(x->target.n == y->target.n && !memcmp(x->target.p, y->target.p, x->target.n));
        TR_CHECK_INT(x->nlocal, ==, y->nremote);
    }
    static const char *reasons[] = {"manual", "delete/modify", "modify/modify", "add/add",
                                    "modify/modify"};
    static const char *scopes[] = {"entity", "entity", "entity", "file", "other"};
    for (size_t i = 0; i < 5; i++) {
        TR_CHECK_STR(tr_reconcile_conflict(a, i)->reason, reasons[i]);
        TR_CHECK_STR(tr_reconcile_conflict(a, i)->scope, scopes[i]);
    }
    for (size_t i = 0; i < tr_reconcile_merged_count(a); i++)
        TR_CHECK_MEM(tr_reconcile_merged(a, i, NULL)->hash, tr_reconcile_merged(b, i, NULL)->hash,
                     32);
    tr_reconcile_destroy(&a);
    tr_reconcile_destroy(&b);
    tr_strategies_destroy(&st);
}

/* Large inputs stay correct (the cost is a few sorts; timing lives in the
 * benchmarks): two 20,000-op sides sharing their first 19,000. */
TR_TEST(large)
{
    size_t n = 20000, common = 19000;
    tr_op_t *l = calloc(n, sizeof *l), *r = calloc(n, sizeof *r);
    TR_CHECK(l && r);
    char ent[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(ent, sizeof ent, "e%zu", i % 5000);
        const char *e = (const char *)keep(ent, strlen(ent) + 1);
        if (i < common) {
            l[i] = set(1 + (int)(i % 3), 1 + i / 3, 1 + i, e, "t", "1", true);
            r[n - 1 - i] = l[i]; /* in another order */
        } else {
            l[i] = set(7, 1 + i, 1 + i, e, "t", "2", false);
            r[n - 1 - i] = set(8, 1 + i, 1 + i, e, "t", "3", false);
        }
    }
    tr_reconcile_t *res = NULL;
    TR_CHECK_INT(tr_reconcile(l, n, r, n, NULL, &res, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_reconcile_merged_count(res), ==, n + (n - common));
    TR_CHECK_INT(tr_reconcile_unique_count(res, TR_SIDE_LOCAL), ==, n - common);
    TR_CHECK_INT(tr_reconcile_conflict_count(res), ==, n - common);
    uint8_t fork[32];
    TR_CHECK(tr_reconcile_fork_point(res, fork));
    TR_CHECK_MEM(fork, l[common - 1].hash, 32);
    tr_reconcile_destroy(&res);
    free(l);
    free(r);
}

TR_MAIN()
