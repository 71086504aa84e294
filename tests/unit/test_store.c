/* test_store.c — the LMDB store: create/open, local writes, integration of
 * records from another replica (and every refusal), the hash index across
 * many runs, map growth, two processes on one store, and verify finding
 * corruption made through a raw LMDB handle. Real files in a mkdtemp dir. */
#include <ftw.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store_internal.h" /* test hook: store_test_set_initial_mapsize */
#include "tr_identity.h"
#include "tr_op.h"
#include "tr_store.h"
#include "tr_test.h"

/* ---- fixtures ------------------------------------------------------------- */

static const uint8_t REPO[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t OTHER_REPO[16] = {9, 9, 9};

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

/* Every directory made by tmpdir(), removed at exit even when a failed
 * check returned before a test's own clean-up. (A forked child leaves with
 * _exit, so it never removes them.) */
static char made[32][256];
static int nmade;

static void rm_made(void)
{
    for (int i = 0; i < nmade; i++) rm_rf(made[i]);
}

/* A fresh directory; the store goes in <dir>/store. */
static char *tmpdir(char buf[256])
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, 256, "%s/trellis-store-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(buf)) return NULL;
    if (nmade == 0) atexit(rm_made);
    if (nmade < 32) snprintf(made[nmade++], sizeof made[0], "%s", buf);
    return buf;
}

static void store_path(char out[300], const char *dir)
{
    snprintf(out, 300, "%s/store", dir);
}

static tr_identity_t *ident(uint8_t n)
{
    uint8_t seed[32];
    memset(seed, n, sizeof seed);
    tr_identity_t *id = NULL;
    if (tr_identity_from_seed(seed, &id) != TR_OK) return NULL;
    return id;
}

/* Canonical msgpack body: a str of `n` bytes (n < 256) from a pattern. */
static size_t mkbody(uint8_t *out, size_t n, unsigned tag)
{
    size_t at = 0;
    if (n < 32) {
        out[at++] = (uint8_t)(0xa0 | n);
    } else {
        out[at++] = 0xd9;
        out[at++] = (uint8_t)n;
    }
    for (size_t i = 0; i < n; i++) out[at++] = (uint8_t)('a' + (tag + i) % 26);
    return at;
}

typedef struct {
    uint8_t body[300];
    tr_op_spec_t spec;
} spec_t;

static void mkspecs(spec_t *s, size_t n, size_t bodylen, unsigned tag)
{
    for (size_t i = 0; i < n; i++) {
        size_t bl = mkbody(s[i].body, bodylen, tag + (unsigned)i);
        s[i].spec = (tr_op_spec_t){"note.add", 8, "t/1", 3, s[i].body, bl};
    }
}

static int write_n(tr_store_t *s, const char *branch, tr_identity_t *id, size_t n, size_t bodylen,
                   uint8_t (*hashes)[32], tr_err_t *err)
{
    spec_t *sp = calloc(n, sizeof *sp);
    if (!sp) return TR_ENOMEM;
    mkspecs(sp, n, bodylen, (unsigned)rand());
    tr_op_spec_t *specs = calloc(n, sizeof *specs);
    for (size_t i = 0; i < n; i++) specs[i] = sp[i].spec;
    int r = tr_store_write(s, branch, specs, n, id, 1700000000000ull, hashes, err);
    free(specs);
    free(sp);
    return r;
}

static int cmp32(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* Builds one op by hand, as a peer would send it. */
typedef struct {
    const uint8_t *repo;
    const char *branch;
    tr_identity_t *id;
    uint64_t seq, lamport;
    const uint8_t *prev; /* NULL for seq 1 */
    uint8_t parents[TR_OP_MAX_PARENTS][32];
    size_t np;
    const char *text;
    bool sign;
} mk_t;

static int mkop(const mk_t *m, tr_buf_t *out, uint8_t hash[32])
{
    tr_op_t op;
    memset(&op, 0, sizeof op);
    uint8_t body[64];
    size_t bl = mkbody(body, strlen(m->text) % 31, (unsigned)strlen(m->text));
    memcpy(body + 1, m->text, strlen(m->text) % 31); /* distinct bodies for distinct texts */
    memcpy(op.repo, m->repo, 16);
    op.branch = m->branch;
    op.branch_len = strlen(m->branch);
    memcpy(op.author, tr_identity_public(m->id), 32);
    op.seq = m->seq;
    op.lamport = m->lamport;
    op.wall_ms = 42;
    memcpy(op.parents, m->parents, sizeof op.parents);
    op.nparents = m->np;
    qsort(op.parents, op.nparents, 32, cmp32);
    if (m->prev) {
        op.has_prev = true;
        memcpy(op.prev, m->prev, 32);
    }
    op.kind = "note.add";
    op.kind_len = 8;
    op.target = "x";
    op.target_len = 1;
    op.body = body;
    op.body_len = bl;
    tr_buf_reset(out);
    int r = tr_op_encode(&op, m->sign ? tr_identity_secret(m->id) : NULL, out, NULL);
    if (hash) memcpy(hash, op.hash, 32);
    return r;
}

/* Collects every record of a branch (copies). */
typedef struct {
    tr_buf_t *recs;
    size_t n, cap;
    uint64_t lastpos;
    bool order_ok;
} collect_t;

static int collect_fn(void *arg, const tr_op_t *op, const uint8_t *rec, size_t len, uint64_t pos)
{
    (void)op;
    collect_t *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->recs = realloc(c->recs, c->cap * sizeof *c->recs);
    }
    tr_buf_t b = {0};
    if (tr_buf_append(&b, rec, len)) return -1;
    c->recs[c->n++] = b;
    if (pos != c->lastpos + 1) c->order_ok = false;
    c->lastpos = pos;
    return 0;
}

static void collect_free(collect_t *c)
{
    for (size_t i = 0; i < c->n; i++) tr_buf_free(&c->recs[i]);
    free(c->recs);
    memset(c, 0, sizeof *c);
}

static tr_rec_t *as_recs(const collect_t *c)
{
    tr_rec_t *r = calloc(c->n ? c->n : 1, sizeof *r);
    for (size_t i = 0; i < c->n; i++) r[i] = (tr_rec_t){c->recs[i].data, c->recs[i].len};
    return r;
}

/* Refusal log. */
typedef struct {
    int n;
    int codes[64];
    char reasons[64][512];
    bool hash_null[64];
} refusals_t;

static void refuse_fn(void *arg, size_t index, const uint8_t *hash, int code, const char *reason)
{
    (void)index;
    refusals_t *r = arg;
    if (r->n < 64) {
        r->codes[r->n] = code;
        r->hash_null[r->n] = hash == NULL;
        snprintf(r->reasons[r->n], 512, "%s", reason);
    }
    r->n++;
}

typedef struct {
    const char *linear_branch;
    bool require_signing;
} pol_t;

static void policy_fn(void *arg, const char *branch, size_t len, tr_branch_policy_t *out)
{
    const pol_t *p = arg;
    out->require_signing = p->require_signing;
    out->linear = p->linear_branch && strlen(p->linear_branch) == len &&
                  memcmp(p->linear_branch, branch, len) == 0;
}

/* ---- create / open -------------------------------------------------------- */

TR_TEST(create_open_reopen)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL, *s2 = NULL;
    TR_CHECK_INT(tr_store_open(p, 0, &s, &err), ==, TR_ENOTREPO);
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    struct stat st;
    TR_CHECK(stat(p, &st) == 0);
    TR_CHECK_INT(st.st_mode & 0777, ==, 0700);
    char f[400];
    snprintf(f, sizeof f, "%s/data.mdb", p);
    TR_CHECK(stat(f, &st) == 0);
    TR_CHECK_INT(st.st_mode & 0777, ==, 0600);
    TR_CHECK_MEM(tr_store_repo_id(s), REPO, 16);
    uint64_t count = 99;
    TR_CHECK_INT(tr_store_count(s, &count, &err), ==, TR_OK);
    TR_CHECK_INT(count, ==, 0);
    TR_CHECK_INT(tr_store_create(p, REPO, &s2, &err), ==, TR_EEXIST);
    TR_CHECK(s2 == NULL);
    tr_identity_t *id = ident(1);
    TR_CHECK_INT(write_n(s, "main", id, 3, 20, NULL, &err), ==, TR_OK);
    tr_store_destroy(&s);
    TR_CHECK(s == NULL);
    tr_store_destroy(&s); /* NULL-safe */

    TR_CHECK_INT(tr_store_open(p, 0, &s, &err), ==, TR_OK);
    TR_CHECK_MEM(tr_store_repo_id(s), REPO, 16);
    TR_CHECK_INT(tr_store_count(s, &count, &err), ==, TR_OK);
    TR_CHECK_INT(count, ==, 3);
    tr_store_destroy(&s);

    /* read-only: reads work, writes are refused */
    TR_CHECK_INT(tr_store_open(p, TR_STORE_RDONLY, &s, &err), ==, TR_OK);
    tr_branch_info_t bi;
    TR_CHECK_INT(tr_store_branch(s, "main", &bi, &err), ==, TR_OK);
    TR_CHECK_INT(bi.count, ==, 3);
    TR_CHECK_INT(write_n(s, "main", id, 1, 20, NULL, &err), ==, TR_EPERM);
    tr_store_destroy(&s);

    /* a newer format is refused */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    TR_CHECK(mdb_env_create(&env) == 0);
    mdb_env_set_maxdbs(env, 16);
    TR_CHECK(mdb_env_open(env, p, 0, 0600) == 0);
    TR_CHECK(mdb_txn_begin(env, NULL, 0, &txn) == 0);
    TR_CHECK(mdb_dbi_open(txn, "meta", 0, &meta) == 0);
    uint8_t v2[4] = {0, 0, 0, 2};
    MDB_val k = {7, "version"}, dv = {4, v2};
    TR_CHECK(mdb_put(txn, meta, &k, &dv, 0) == 0);
    TR_CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(env);
    TR_CHECK_INT(tr_store_open(p, 0, &s, &err), ==, TR_EVERSION);
    TR_CHECK(strstr(err.msg, "newer") != NULL);

    tr_identity_destroy(&id);
    rm_rf(d);
}

/* ---- local writes and reads ---------------------------------------------- */

typedef struct {
    uint64_t positions[64];
    int n;
    bool has_sig[64];
    uint64_t seqs[64];
} visit_log_t;

static int visit_fn(void *arg, const tr_op_t *op, const uint8_t *rec, size_t len, uint64_t pos)
{
    (void)rec;
    (void)len;
    visit_log_t *v = arg;
    if (v->n < 64) {
        v->positions[v->n] = pos;
        v->has_sig[v->n] = op->has_sig;
        v->seqs[v->n] = op->seq;
        v->n++;
    }
    return 0;
}

static int stop_at_3(void *arg, const tr_op_t *op, const uint8_t *rec, size_t len, uint64_t pos)
{
    (void)op;
    (void)rec;
    (void)len;
    (void)arg;
    return pos == 3 ? 77 : 0;
}

typedef struct {
    int n;
    uint8_t author[4][32];
    uint64_t seq[4];
    uint8_t hash[4][32];
} vv_log_t;

static int vv_fn(void *arg, const uint8_t author[32], uint64_t seq, const uint8_t hash[32])
{
    vv_log_t *v = arg;
    if (v->n < 4) {
        memcpy(v->author[v->n], author, 32);
        v->seq[v->n] = seq;
        memcpy(v->hash[v->n], hash, 32);
    }
    v->n++;
    return 0;
}

static int branches_fn(void *arg, const char *name, const tr_branch_info_t *info)
{
    char *acc = arg;
    char one[64];
    snprintf(one, sizeof one, "%s:%llu;", name, (unsigned long long)info->count);
    strcat(acc, one);
    return 0;
}

TR_TEST(write_and_read)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL;
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    tr_identity_t *a = ident(1), *b = ident(2);
    uint8_t h[16][32];
    TR_CHECK_INT(write_n(s, "main", a, 1, 10, &h[0], &err), ==, TR_OK);
    TR_CHECK_INT(write_n(s, "main", a, 5, 50, &h[1], &err), ==, TR_OK);
    TR_CHECK_INT(write_n(s, "main", a, 10, 100, &h[6], &err), ==, TR_OK);

    uint64_t count;
    TR_CHECK_INT(tr_store_count(s, &count, &err), ==, TR_OK);
    TR_CHECK_INT(count, ==, 16);
    tr_branch_info_t bi;
    TR_CHECK_INT(tr_store_branch(s, "main", &bi, &err), ==, TR_OK);
    TR_CHECK_INT(bi.count, ==, 16);
    TR_CHECK_INT(bi.lamport, ==, 16);
    TR_CHECK_INT(bi.nheads, ==, 1);
    TR_CHECK_MEM(bi.heads[0], h[15], 32);
    TR_CHECK_INT(tr_store_branch(s, "nope", &bi, &err), ==, TR_ENOTFOUND);

    /* by hash: record, branch and position */
    tr_buf_t rec = {0};
    char bname[TR_BRANCH_MAX + 1];
    uint64_t pos;
    for (int i = 0; i < 16; i++) {
        TR_CHECK_INT(tr_store_get(s, h[i], &rec, bname, &pos, &err), ==, TR_OK);
        TR_CHECK_STR(bname, "main");
        TR_CHECK_INT(pos, ==, i + 1);
        tr_op_t op;
        TR_CHECK_INT(tr_op_decode(rec.data, rec.len, &op, &err), ==, TR_OK);
        TR_CHECK_MEM(op.hash, h[i], 32);
        TR_CHECK_INT(op.seq, ==, i + 1);
        TR_CHECK_INT(op.lamport, ==, i + 1);
        TR_CHECK_MEM(op.author, tr_identity_public(a), 32);
        TR_CHECK_INT(op.has_prev, ==, i > 0);
        if (i > 0) {
            TR_CHECK_MEM(op.prev, h[i - 1], 32);
            TR_CHECK_INT(op.nparents, ==, 1);
            TR_CHECK_MEM(op.parents[0], h[i - 1], 32);
        } else {
            TR_CHECK_INT(op.nparents, ==, 0);
        }
        /* the last op of each batch is signed, the others not */
        bool last = i == 0 || i == 5 || i == 15;
        TR_CHECK_INT(op.has_sig, ==, last);
        if (last) TR_CHECK_INT(tr_op_verify(&op), ==, TR_OK);
    }
    uint8_t missing[32] = {0xde, 0xad};
    TR_CHECK_INT(tr_store_get(s, missing, &rec, NULL, NULL, &err), ==, TR_ENOTFOUND);

    /* by seq */
    TR_CHECK_INT(tr_store_get_seq(s, "main", tr_identity_public(a), 7, &rec, &err), ==, TR_OK);
    uint8_t hh[32];
    TR_CHECK_INT(tr_op_record_hash(rec.data, rec.len, hh), ==, TR_OK);
    TR_CHECK_MEM(hh, h[6], 32);
    TR_CHECK_INT(tr_store_get_seq(s, "main", tr_identity_public(a), 17, &rec, &err), ==, TR_ENOTFOUND);
    TR_CHECK_INT(tr_store_get_seq(s, "main", tr_identity_public(b), 1, &rec, &err), ==, TR_ENOTFOUND);

    /* iteration */
    visit_log_t v = {0};
    TR_CHECK_INT(tr_store_iter(s, "main", 0, visit_fn, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.n, ==, 16);
    for (int i = 0; i < 16; i++) TR_CHECK_INT(v.positions[i], ==, i + 1);
    memset(&v, 0, sizeof v);
    TR_CHECK_INT(tr_store_iter(s, "main", 10, visit_fn, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.n, ==, 6);
    TR_CHECK_INT(v.positions[0], ==, 11);
    memset(&v, 0, sizeof v);
    TR_CHECK_INT(tr_store_iter(s, "main", 16, visit_fn, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.n, ==, 0);
    memset(&v, 0, sizeof v);
    TR_CHECK_INT(tr_store_iter_rev(s, "main", 3, visit_fn, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.n, ==, 3);
    TR_CHECK_INT(v.positions[0], ==, 16);
    TR_CHECK_INT(v.positions[2], ==, 14);
    memset(&v, 0, sizeof v);
    TR_CHECK_INT(tr_store_iter_rev(s, "main", 0, visit_fn, &v, &err), ==, TR_OK);
    TR_CHECK_INT(v.n, ==, 16);
    TR_CHECK_INT(tr_store_iter(s, "main", 0, stop_at_3, NULL, &err), ==, 77);

    /* a second author on the same (CRDT) branch builds on the head */
    uint8_t hb[2][32];
    TR_CHECK_INT(write_n(s, "main", b, 2, 30, hb, &err), ==, TR_OK);
    TR_CHECK_INT(tr_store_get(s, hb[0], &rec, NULL, &pos, &err), ==, TR_OK);
    tr_op_t op;
    TR_CHECK_INT(tr_op_decode(rec.data, rec.len, &op, &err), ==, TR_OK);
    TR_CHECK_INT(op.seq, ==, 1);
    TR_CHECK_INT(op.lamport, ==, 17);
    TR_CHECK_INT(op.nparents, ==, 1);
    TR_CHECK_MEM(op.parents[0], h[15], 32);
    TR_CHECK_INT(pos, ==, 17);

    vv_log_t vv = {0};
    TR_CHECK_INT(tr_store_vv(s, "main", vv_fn, &vv, &err), ==, TR_OK);
    TR_CHECK_INT(vv.n, ==, 2);
    int ia = memcmp(tr_identity_public(a), tr_identity_public(b), 32) < 0 ? 0 : 1;
    TR_CHECK_MEM(vv.author[ia], tr_identity_public(a), 32);
    TR_CHECK_INT(vv.seq[ia], ==, 16);
    TR_CHECK_MEM(vv.hash[ia], h[15], 32);
    TR_CHECK_INT(vv.seq[1 - ia], ==, 2);
    TR_CHECK_MEM(vv.hash[1 - ia], hb[1], 32);

    /* another branch: positions and lamports are per branch */
    uint8_t hd[32];
    TR_CHECK_INT(write_n(s, "dev", a, 1, 5, &hd, &err), ==, TR_OK);
    TR_CHECK_INT(tr_store_get(s, hd, &rec, bname, &pos, &err), ==, TR_OK);
    TR_CHECK_STR(bname, "dev");
    TR_CHECK_INT(pos, ==, 1);
    char acc[256] = "";
    TR_CHECK_INT(tr_store_branches(s, branches_fn, acc, &err), ==, TR_OK);
    TR_CHECK_STR(acc, "dev:1;main:18;");
    TR_CHECK_INT(tr_store_count(s, &count, &err), ==, TR_OK);
    TR_CHECK_INT(count, ==, 19);

    /* invalid specs abort the whole batch */
    spec_t sp[3];
    mkspecs(sp, 3, 10, 1);
    tr_op_spec_t specs[3] = {sp[0].spec, sp[1].spec, sp[2].spec};
    specs[2].kind = "Bad Kind";
    specs[2].kind_len = 8;
    TR_CHECK_INT(tr_store_write(s, "main", specs, 3, a, 1, NULL, &err), ==, TR_EKIND);
    TR_CHECK(strstr(err.msg, "op 2 of 3") != NULL);
    TR_CHECK_INT(tr_store_count(s, &count, &err), ==, TR_OK);
    TR_CHECK_INT(count, ==, 19);

    tr_buf_free(&rec);
    tr_identity_destroy(&a);
    tr_identity_destroy(&b);
    tr_store_destroy(&s);
    rm_rf(d);
}

TR_TEST(sign_every_1000)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL;
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    tr_identity_t *a = ident(1);
    TR_CHECK_INT(write_n(s, "main", a, 990, 8, NULL, &err), ==, TR_OK);
    TR_CHECK_INT(write_n(s, "main", a, 20, 8, NULL, &err), ==, TR_OK);
    tr_buf_t rec = {0};
    tr_op_t op;
    uint64_t want[] = {990, 1000, 1010};
    for (int i = 0; i < 3; i++) {
        TR_CHECK_INT(tr_store_get_seq(s, "main", tr_identity_public(a), want[i], &rec, &err), ==, TR_OK);
        TR_CHECK_INT(tr_op_decode(rec.data, rec.len, &op, &err), ==, TR_OK);
        TR_CHECK(op.has_sig);
    }
    TR_CHECK_INT(tr_store_get_seq(s, "main", tr_identity_public(a), 999, &rec, &err), ==, TR_OK);
    TR_CHECK_INT(tr_op_decode(rec.data, rec.len, &op, &err), ==, TR_OK);
    TR_CHECK(!op.has_sig);
    tr_verify_stats_t vs;
    TR_CHECK_INT(tr_store_verify(s, 2, NULL, NULL, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vs.ops, ==, 1010);
    TR_CHECK_INT(vs.signatures, ==, 3);
    TR_CHECK_INT(vs.bad, ==, 0);
    tr_buf_free(&rec);
    tr_identity_destroy(&a);
    tr_store_destroy(&s);
    rm_rf(d);
}

/* ---- integration ------------------------------------------------------------ */

TR_TEST(integrate_replica)
{
    char d[256], pa[300], pb[300];
    TR_CHECK(tmpdir(d));
    snprintf(pa, sizeof pa, "%s/a", d);
    snprintf(pb, sizeof pb, "%s/b", d);
    tr_err_t err = {0};
    tr_store_t *sa = NULL, *sb = NULL;
    TR_CHECK_INT(tr_store_create(pa, REPO, &sa, &err), ==, TR_OK);
    TR_CHECK_INT(tr_store_create(pb, REPO, &sb, &err), ==, TR_OK);
    tr_identity_t *a = ident(1), *b = ident(2);
    for (int i = 0; i < 4; i++) {
        TR_CHECK_INT(write_n(sa, "main", a, 30, 40, NULL, &err), ==, TR_OK);
        TR_CHECK_INT(write_n(sa, "main", b, 7, 40, NULL, &err), ==, TR_OK);
    }
    collect_t c = {.order_ok = true};
    TR_CHECK_INT(tr_store_iter(sa, "main", 0, collect_fn, &c, &err), ==, TR_OK);
    TR_CHECK_INT(c.n, ==, 148);
    TR_CHECK(c.order_ok);
    tr_rec_t *recs = as_recs(&c);
    int *status = calloc(c.n, sizeof *status);
    refusals_t rf = {0};
    /* in two batches: the second depends on the first */
    /* (split after a's third signed op, so that every op is covered) */
    TR_CHECK_INT(tr_store_integrate(sb, recs, 111, status, refuse_fn, &rf, &err), ==, TR_OK);
    TR_CHECK_INT(tr_store_integrate(sb, recs + 111, c.n - 111, status + 111, refuse_fn, &rf, &err), ==, TR_OK);
    TR_CHECK_INT(rf.n, ==, 0);
    for (size_t i = 0; i < c.n; i++) TR_CHECK_INT(status[i], ==, TR_INTEGRATED);
    tr_branch_info_t ia, ib;
    TR_CHECK_INT(tr_store_branch(sa, "main", &ia, &err), ==, TR_OK);
    TR_CHECK_INT(tr_store_branch(sb, "main", &ib, &err), ==, TR_OK);
    TR_CHECK_INT(ib.count, ==, ia.count);
    TR_CHECK_INT(ib.lamport, ==, ia.lamport);
    TR_CHECK_INT(ib.nheads, ==, ia.nheads);
    TR_CHECK_MEM(ib.heads[0], ia.heads[0], 32);
    /* again: all duplicates, nothing changes */
    TR_CHECK_INT(tr_store_integrate(sb, recs, c.n, status, refuse_fn, &rf, &err), ==, TR_OK);
    for (size_t i = 0; i < c.n; i++) TR_CHECK_INT(status[i], ==, TR_DUPLICATE);
    TR_CHECK_INT(rf.n, ==, 0);
    uint64_t count;
    TR_CHECK_INT(tr_store_count(sb, &count, &err), ==, TR_OK);
    TR_CHECK_INT(count, ==, 148);
    /* b's local writes continue from the replicated state */
    uint8_t hn[32];
    TR_CHECK_INT(write_n(sb, "main", a, 1, 10, &hn, &err), ==, TR_OK);
    tr_buf_t rec = {0};
    tr_op_t op;
    TR_CHECK_INT(tr_store_get(sb, hn, &rec, NULL, NULL, &err), ==, TR_OK);
    TR_CHECK_INT(tr_op_decode(rec.data, rec.len, &op, &err), ==, TR_OK);
    TR_CHECK_INT(op.seq, ==, 121);
    TR_CHECK_INT(op.lamport, ==, ia.lamport + 1);
    tr_verify_stats_t vs;
    TR_CHECK_INT(tr_store_verify(sb, 0, NULL, NULL, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vs.bad, ==, 0);
    TR_CHECK_INT(vs.ops, ==, 149);

    tr_buf_free(&rec);
    free(status);
    free(recs);
    collect_free(&c);
    tr_identity_destroy(&a);
    tr_identity_destroy(&b);
    tr_store_destroy(&sa);
    tr_store_destroy(&sb);
    rm_rf(d);
}

/* Snapshot of what a refusal must not change. */
typedef struct {
    uint64_t count;
    tr_branch_info_t bi;
} snap_t;

static int take_snap(tr_store_t *s, const char *branch, snap_t *out)
{
    memset(out, 0, sizeof *out);
    if (tr_store_count(s, &out->count, NULL)) return -1;
    int r = tr_store_branch(s, branch, &out->bi, NULL);
    return r == TR_ENOTFOUND ? 0 : r;
}

static bool same_snap(const snap_t *a, const snap_t *b)
{
    return memcmp(a, b, sizeof *a) == 0;
}

/* Integrates one record and returns its status (TR_OK is never a status
 * of a refusal: refusals are negative). */
static int one(tr_store_t *s, const tr_buf_t *rec, refusals_t *rf)
{
    tr_rec_t r = {rec->data, rec->len};
    int st = 12345;
    if (tr_store_integrate(s, &r, 1, &st, refuse_fn, rf, NULL) != TR_OK) return 99999;
    return st;
}

TR_TEST(integrate_refusals)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL;
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    tr_identity_t *a = ident(1), *b = ident(2);
    tr_buf_t r1 = {0}, r2 = {0}, r3 = {0}, bad = {0};
    uint8_t h1[32], h2[32], h3[32], hx[32];
    refusals_t rf = {0};
    snap_t before, after;

    mk_t m1 = {REPO, "main", a, 1, 1, NULL, {{0}}, 0, "one", true};
    TR_CHECK_INT(mkop(&m1, &r1, h1), ==, TR_OK);
    TR_CHECK_INT(one(s, &r1, &rf), ==, TR_INTEGRATED);
    TR_CHECK_INT(one(s, &r1, &rf), ==, TR_DUPLICATE);
    TR_CHECK_INT(rf.n, ==, 0);
    TR_CHECK_INT(take_snap(s, "main", &before), ==, 0);

    /* another repository */
    mk_t mo = m1;
    mo.repo = OTHER_REPO;
    TR_CHECK_INT(mkop(&mo, &bad, hx), ==, TR_OK);
    TR_CHECK_INT(one(s, &bad, &rf), ==, TR_EREPO);

    /* seq gap */
    mk_t mg = {REPO, "main", a, 3, 5, h1, {{0}}, 1, "gap", true};
    memcpy(mg.parents[0], h1, 32);
    TR_CHECK_INT(mkop(&mg, &bad, hx), ==, TR_OK);
    TR_CHECK_INT(one(s, &bad, &rf), ==, TR_ESEQ);
    TR_CHECK(strstr(rf.reasons[rf.n - 1], "seq 3 leaves a gap after 1") != NULL);
    char hs[9];
    tr_hash_short(hs, hx, 8);
    TR_CHECK(strstr(rf.reasons[rf.n - 1], hs) != NULL);

    /* wrong prev */
    mk_t mp = {REPO, "main", a, 2, 5, hx, {{0}}, 1, "prev", true};
    memcpy(mp.parents[0], h1, 32);
    TR_CHECK_INT(mkop(&mp, &bad, NULL), ==, TR_OK);
    TR_CHECK_INT(one(s, &bad, &rf), ==, TR_EPREV);

    /* unknown parent */
    mk_t mu = {REPO, "main", a, 2, 5, h1, {{0}}, 1, "unknown", true};
    memset(mu.parents[0], 0x5a, 32);
    TR_CHECK_INT(mkop(&mu, &bad, NULL), ==, TR_OK);
    TR_CHECK_INT(one(s, &bad, &rf), ==, TR_EPARENT);

    /* lamport not increasing */
    mk_t ml = {REPO, "main", a, 2, 1, h1, {{0}}, 1, "lamport", true};
    memcpy(ml.parents[0], h1, 32);
    TR_CHECK_INT(mkop(&ml, &bad, NULL), ==, TR_OK);
    TR_CHECK_INT(one(s, &bad, &rf), ==, TR_ELAMPORT);

    /* bad signature: flip the last byte (inside the signature) */
    mk_t ms = {REPO, "main", a, 2, 2, h1, {{0}}, 1, "sig", true};
    memcpy(ms.parents[0], h1, 32);
    TR_CHECK_INT(mkop(&ms, &bad, NULL), ==, TR_OK);
    bad.data[bad.len - 1] ^= 1;
    TR_CHECK_INT(one(s, &bad, &rf), ==, TR_ESIG);

    /* tampered body of a signed op: a different hash, so the signature fails */
    TR_CHECK_INT(mkop(&ms, &bad, NULL), ==, TR_OK);
    bad.data[bad.len - 67] ^= 1; /* last body byte, just before the sig's bin header */
    TR_CHECK_INT(one(s, &bad, &rf), ==, TR_ESIG);
    /* tampered framing: no longer decodes; the callback gets no hash */
    TR_CHECK_INT(mkop(&ms, &bad, NULL), ==, TR_OK);
    bad.data[0] = 0x9b;
    int st = one(s, &bad, &rf);
    TR_CHECK(st == TR_EMALFORMED || st == TR_ENONCANON);
    TR_CHECK(rf.hash_null[rf.n - 1]);
    /* truncated */
    TR_CHECK_INT(mkop(&ms, &bad, NULL), ==, TR_OK);
    bad.len -= 3;
    TR_CHECK(one(s, &bad, &rf) < 0);

    /* unsigned and not covered in its batch */
    mk_t mn = {REPO, "main", a, 2, 2, h1, {{0}}, 1, "unsigned", false};
    memcpy(mn.parents[0], h1, 32);
    TR_CHECK_INT(mkop(&mn, &r2, h2), ==, TR_OK);
    TR_CHECK_INT(one(s, &r2, &rf), ==, TR_EUNSIGNED);

    /* equivocation: a second, different seq 1 of author a */
    mk_t me = {REPO, "main", a, 1, 1, NULL, {{0}}, 0, "other one", true};
    TR_CHECK_INT(mkop(&me, &bad, NULL), ==, TR_OK);
    TR_CHECK_INT(one(s, &bad, &rf), ==, TR_EEQUIVOCATION);

    TR_CHECK_INT(take_snap(s, "main", &after), ==, 0);
    TR_CHECK(same_snap(&before, &after));
    TR_CHECK_INT(rf.n, ==, 11);

    /* the unsigned op is accepted when a later signed op covers it ... */
    mk_t m3 = {REPO, "main", a, 3, 3, h2, {{0}}, 1, "three", true};
    memcpy(m3.parents[0], h2, 32);
    TR_CHECK_INT(mkop(&m3, &r3, h3), ==, TR_OK);
    /* ... but a refused op takes its dependants with it: bad sig on r3 */
    tr_buf_t r3bad = {0};
    TR_CHECK_INT(tr_buf_append(&r3bad, r3.data, r3.len), ==, TR_OK);
    r3bad.data[r3bad.len - 1] ^= 1;
    tr_rec_t batch[2] = {{r2.data, r2.len}, {r3bad.data, r3bad.len}};
    int sts[2];
    rf.n = 0;
    TR_CHECK_INT(tr_store_integrate(s, batch, 2, sts, refuse_fn, &rf, &err), ==, TR_OK);
    TR_CHECK_INT(sts[0], ==, TR_EUNSIGNED);
    TR_CHECK_INT(sts[1], ==, TR_ESIG);
    batch[1] = (tr_rec_t){r3.data, r3.len};
    TR_CHECK_INT(tr_store_integrate(s, batch, 2, sts, refuse_fn, &rf, &err), ==, TR_OK);
    TR_CHECK_INT(sts[0], ==, TR_INTEGRATED);
    TR_CHECK_INT(sts[1], ==, TR_INTEGRATED);

    /* later ops that depended on a refused one are refused in turn */
    mk_t m4 = {REPO, "main", a, 4, 4, h3, {{0}}, 1, "four", true};
    memcpy(m4.parents[0], h3, 32);
    uint8_t h4[32];
    tr_buf_t r4 = {0}, r5 = {0};
    TR_CHECK_INT(mkop(&m4, &r4, h4), ==, TR_OK);
    r4.data[r4.len - 1] ^= 1;
    mk_t m5 = {REPO, "main", a, 5, 5, h4, {{0}}, 1, "five", true};
    memcpy(m5.parents[0], h4, 32);
    TR_CHECK_INT(mkop(&m5, &r5, NULL), ==, TR_OK);
    tr_rec_t chain[2] = {{r4.data, r4.len}, {r5.data, r5.len}};
    TR_CHECK_INT(tr_store_integrate(s, chain, 2, sts, NULL, NULL, &err), ==, TR_OK);
    TR_CHECK_INT(sts[0], ==, TR_ESIG);
    TR_CHECK_INT(sts[1], ==, TR_ESEQ);

    /* an unsigned op whose only cover is refused (lamport) is refused too,
     * keeping the store free of ops no stored signature covers */
    {
        tr_identity_t *c4 = ident(4);
        uint8_t hc1[32];
        tr_buf_t rc1 = {0}, rc2 = {0};
        mk_t mc1 = {REPO, "main", c4, 1, 2, NULL, {{0}}, 1, "c one", false};
        memcpy(mc1.parents[0], h1, 32);
        TR_CHECK_INT(mkop(&mc1, &rc1, hc1), ==, TR_OK);
        mk_t mc2 = {REPO, "main", c4, 2, 2, hc1, {{0}}, 1, "c two", true}; /* lamport 2 ≤ 2 */
        memcpy(mc2.parents[0], hc1, 32);
        TR_CHECK_INT(mkop(&mc2, &rc2, NULL), ==, TR_OK);
        TR_CHECK_INT(take_snap(s, "main", &before), ==, 0);
        tr_rec_t cb[2] = {{rc1.data, rc1.len}, {rc2.data, rc2.len}};
        refusals_t cr = {0};
        TR_CHECK_INT(tr_store_integrate(s, cb, 2, sts, refuse_fn, &cr, &err), ==, TR_OK);
        TR_CHECK_INT(sts[0], ==, TR_EUNSIGNED);
        TR_CHECK_INT(sts[1], ==, TR_ELAMPORT);
        TR_CHECK_INT(cr.n, ==, 2);
        TR_CHECK(strstr(cr.reasons[0], "was refused") != NULL);
        TR_CHECK_INT(take_snap(s, "main", &after), ==, 0);
        TR_CHECK(same_snap(&before, &after));
        tr_buf_free(&rc1);
        tr_buf_free(&rc2);
        tr_identity_destroy(&c4);
    }

    /* concurrent ops on a CRDT branch: two heads, then a merge */
    mk_t mb1 = {REPO, "main", b, 1, 2, NULL, {{0}}, 1, "b one", true};
    memcpy(mb1.parents[0], h1, 32);
    uint8_t hb1[32], hm[32];
    tr_buf_t rb = {0};
    TR_CHECK_INT(mkop(&mb1, &rb, hb1), ==, TR_OK);
    TR_CHECK_INT(one(s, &rb, &rf), ==, TR_INTEGRATED);
    tr_branch_info_t bi;
    TR_CHECK_INT(tr_store_branch(s, "main", &bi, &err), ==, TR_OK);
    TR_CHECK_INT(bi.nheads, ==, 2);
    TR_CHECK_INT(bi.count, ==, 4);
    mk_t mm = {REPO, "main", b, 2, 4, hb1, {{0}}, 2, "merge", true};
    memcpy(mm.parents[0], h3, 32);
    memcpy(mm.parents[1], hb1, 32);
    /* lamport must exceed both parents (h3 has 3) */
    TR_CHECK_INT(mkop(&mm, &rb, hm), ==, TR_OK);
    TR_CHECK_INT(one(s, &rb, &rf), ==, TR_INTEGRATED);
    TR_CHECK_INT(tr_store_branch(s, "main", &bi, &err), ==, TR_OK);
    TR_CHECK_INT(bi.nheads, ==, 1);
    TR_CHECK_MEM(bi.heads[0], hm, 32);
    /* a parent that is known but no longer a head (found via the index) */
    mk_t mc = {REPO, "main", ident(3), 1, 2, NULL, {{0}}, 1, "late", true};
    memcpy(mc.parents[0], h1, 32);
    TR_CHECK_INT(mkop(&mc, &rb, NULL), ==, TR_OK);
    TR_CHECK_INT(one(s, &rb, &rf), ==, TR_INTEGRATED);
    TR_CHECK_INT(tr_store_branch(s, "main", &bi, &err), ==, TR_OK);
    TR_CHECK_INT(bi.nheads, ==, 2);
    tr_identity_t *c3 = mc.id;
    tr_identity_destroy(&c3);
    /* a parent on another branch */
    mk_t mx = {REPO, "side", b, 1, 5, NULL, {{0}}, 1, "side", true};
    memcpy(mx.parents[0], h1, 32);
    TR_CHECK_INT(mkop(&mx, &rb, NULL), ==, TR_OK);
    TR_CHECK_INT(one(s, &rb, &rf), ==, TR_EPARENT);
    TR_CHECK_INT(tr_store_branch(s, "side", &bi, &err), ==, TR_ENOTFOUND);

    tr_verify_stats_t vs;
    TR_CHECK_INT(tr_store_verify(s, 1, NULL, NULL, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vs.bad, ==, 0);
    TR_CHECK_INT(vs.ops, ==, 6);

    tr_buf_free(&r1);
    tr_buf_free(&r2);
    tr_buf_free(&r3);
    tr_buf_free(&r3bad);
    tr_buf_free(&r4);
    tr_buf_free(&r5);
    tr_buf_free(&rb);
    tr_buf_free(&bad);
    tr_identity_destroy(&a);
    tr_identity_destroy(&b);
    tr_store_destroy(&s);
    rm_rf(d);
}

TR_TEST(integrate_linear_and_policy)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL;
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    pol_t pol = {"lin", true};
    tr_store_set_policy(s, policy_fn, &pol);
    tr_identity_t *a = ident(1), *b = ident(2);
    tr_buf_t r = {0};
    refusals_t rf = {0};
    uint8_t h1[32], h2[32], hb[32];
    mk_t m1 = {REPO, "lin", a, 1, 1, NULL, {{0}}, 0, "l1", true};
    TR_CHECK_INT(mkop(&m1, &r, h1), ==, TR_OK);
    TR_CHECK_INT(one(s, &r, &rf), ==, TR_INTEGRATED);
    mk_t m2 = {REPO, "lin", a, 2, 2, h1, {{0}}, 1, "l2", true};
    memcpy(m2.parents[0], h1, 32);
    TR_CHECK_INT(mkop(&m2, &r, h2), ==, TR_OK);
    TR_CHECK_INT(one(s, &r, &rf), ==, TR_INTEGRATED);
    snap_t before, after;
    TR_CHECK_INT(take_snap(s, "lin", &before), ==, 0);
    /* b builds on h1, which is no longer the head: divergence */
    mk_t mb = {REPO, "lin", b, 1, 2, NULL, {{0}}, 1, "b", true};
    memcpy(mb.parents[0], h1, 32);
    TR_CHECK_INT(mkop(&mb, &r, hb), ==, TR_OK);
    TR_CHECK_INT(one(s, &r, &rf), ==, TR_EDIVERGED);
    TR_CHECK(strstr(rf.reasons[rf.n - 1], "lin") != NULL);
    /* a second root on a non-empty linear branch */
    mk_t mr = {REPO, "lin", b, 1, 9, NULL, {{0}}, 0, "root", true};
    TR_CHECK_INT(mkop(&mr, &r, NULL), ==, TR_OK);
    TR_CHECK_INT(one(s, &r, &rf), ==, TR_EDIVERGED);
    TR_CHECK_INT(take_snap(s, "lin", &after), ==, 0);
    TR_CHECK(same_snap(&before, &after));
    /* on the head it is fine; then a local write extends the single head */
    memcpy(mb.parents[0], h2, 32);
    mb.lamport = 3;
    TR_CHECK_INT(mkop(&mb, &r, hb), ==, TR_OK);
    TR_CHECK_INT(one(s, &r, &rf), ==, TR_INTEGRATED);
    uint8_t hw[32];
    TR_CHECK_INT(write_n(s, "lin", a, 1, 10, &hw, &err), ==, TR_OK);
    tr_buf_t rec = {0};
    tr_op_t op;
    TR_CHECK_INT(tr_store_get(s, hw, &rec, NULL, NULL, &err), ==, TR_OK);
    TR_CHECK_INT(tr_op_decode(rec.data, rec.len, &op, &err), ==, TR_OK);
    TR_CHECK_INT(op.nparents, ==, 1);
    TR_CHECK_MEM(op.parents[0], hb, 32);
    TR_CHECK_INT(op.seq, ==, 3);

    /* without require_signing an unsigned, uncovered op is accepted */
    pol.require_signing = false;
    mk_t mu = {REPO, "free", a, 1, 1, NULL, {{0}}, 0, "u", false};
    TR_CHECK_INT(mkop(&mu, &r, NULL), ==, TR_OK);
    TR_CHECK_INT(one(s, &r, &rf), ==, TR_INTEGRATED);
    tr_verify_stats_t vs;
    TR_CHECK_INT(tr_store_verify(s, 2, NULL, NULL, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vs.bad, ==, 0);
    /* ... and verify reports it once signing is required */
    pol.require_signing = true;
    TR_CHECK_INT(tr_store_verify(s, 2, NULL, NULL, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vs.bad, ==, 1);

    tr_buf_free(&rec);
    tr_buf_free(&r);
    tr_identity_destroy(&a);
    tr_identity_destroy(&b);
    tr_store_destroy(&s);
    rm_rf(d);
}

typedef struct {
    tr_store_t *s;
    int got;
} nested_t;

/* A visitor that reads the store again (joins the visitor's snapshot). */
static int nested_fn(void *arg, const tr_op_t *op, const uint8_t *rec, size_t len, uint64_t pos)
{
    (void)rec;
    (void)len;
    nested_t *n = arg;
    uint64_t p2 = 0;
    tr_buf_t r = {0};
    if (tr_store_get(n->s, op->hash, &r, NULL, &p2, NULL) == TR_OK && p2 == pos) n->got++;
    tr_buf_free(&r);
    return 0;
}

/* Many concurrent roots on a CRDT branch: heads beyond 16 (a writer takes
 * the 16 of highest lamport) and beyond 64 (info lists the first 64). */
TR_TEST(many_heads)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL;
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    pol_t pol = {NULL, true};
    tr_store_set_policy(s, policy_fn, &pol);
    enum { N = 70 };
    tr_buf_t recs[N];
    tr_rec_t rr[N + 2];
    uint8_t h[N][32];
    int st[N + 2];
    memset(recs, 0, sizeof recs);
    for (int i = 0; i < N; i++) {
        tr_identity_t *id = ident((uint8_t)(10 + i));
        char text[24];
        snprintf(text, sizeof text, "root %d", i);
        mk_t m = {REPO, "crdt", id, 1, (uint64_t)(1 + i % 5), NULL, {{0}}, 0, text, true};
        TR_CHECK_INT(mkop(&m, &recs[i], h[i]), ==, TR_OK);
        rr[i] = (tr_rec_t){recs[i].data, recs[i].len};
        tr_identity_destroy(&id);
    }
    /* the same batch also carries ops for another branch */
    tr_identity_t *a = ident(1);
    tr_buf_t o1 = {0}, o2 = {0};
    uint8_t ho1[32];
    mk_t m1 = {REPO, "other", a, 1, 1, NULL, {{0}}, 0, "o1", false};
    TR_CHECK_INT(mkop(&m1, &o1, ho1), ==, TR_OK);
    mk_t m2 = {REPO, "other", a, 2, 2, ho1, {{0}}, 1, "o2", true};
    memcpy(m2.parents[0], ho1, 32);
    TR_CHECK_INT(mkop(&m2, &o2, NULL), ==, TR_OK);
    rr[N] = (tr_rec_t){o1.data, o1.len};
    rr[N + 1] = (tr_rec_t){o2.data, o2.len};
    TR_CHECK_INT(tr_store_integrate(s, rr, N + 2, st, NULL, NULL, &err), ==, TR_OK);
    for (int i = 0; i < N + 2; i++) TR_CHECK_INT(st[i], ==, TR_INTEGRATED);

    tr_branch_info_t bi;
    TR_CHECK_INT(tr_store_branch(s, "crdt", &bi, &err), ==, TR_OK);
    TR_CHECK_INT(bi.count, ==, N);
    TR_CHECK_INT(bi.nheads, ==, N);
    TR_CHECK_INT(bi.lamport, ==, 5);
    for (int i = 1; i < TR_BRANCH_HEADS_MAX; i++) TR_CHECK(memcmp(bi.heads[i - 1], bi.heads[i], 32) < 0);
    TR_CHECK_INT(tr_store_branch(s, "other", &bi, &err), ==, TR_OK);
    TR_CHECK_INT(bi.count, ==, 2);
    TR_CHECK_INT(bi.nheads, ==, 1);

    /* a local write merges the 16 heads of highest lamport (14 have lamport 5) */
    uint8_t hw[32];
    TR_CHECK_INT(write_n(s, "crdt", a, 1, 10, &hw, &err), ==, TR_OK);
    tr_buf_t rec = {0};
    tr_op_t op;
    TR_CHECK_INT(tr_store_get(s, hw, &rec, NULL, NULL, &err), ==, TR_OK);
    TR_CHECK_INT(tr_op_decode(rec.data, rec.len, &op, &err), ==, TR_OK);
    TR_CHECK_INT(op.nparents, ==, 16);
    TR_CHECK_INT(op.lamport, ==, 6);
    int lam5 = 0;
    for (size_t j = 0; j < op.nparents; j++)
        for (int i = 0; i < N; i++)
            if (memcmp(op.parents[j], h[i], 32) == 0 && i % 5 == 4) lam5++;
    TR_CHECK_INT(lam5, ==, 14);
    TR_CHECK_INT(tr_store_branch(s, "crdt", &bi, &err), ==, TR_OK);
    TR_CHECK_INT(bi.nheads, ==, N - 16 + 1);

    /* reads from inside a visitor share its snapshot */
    nested_t nt = {s, 0};
    TR_CHECK_INT(tr_store_iter(s, "crdt", 0, nested_fn, &nt, &err), ==, TR_OK);
    TR_CHECK_INT(nt.got, ==, N + 1);

    /* an empty batch is a no-op */
    TR_CHECK_INT(tr_store_write(s, "crdt", NULL, 0, a, 1, NULL, &err), ==, TR_OK);
    TR_CHECK_INT(tr_store_integrate(s, NULL, 0, NULL, NULL, NULL, &err), ==, TR_OK);

    tr_verify_stats_t vs;
    TR_CHECK_INT(tr_store_verify(s, 3, NULL, NULL, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vs.bad, ==, 0);
    TR_CHECK_INT(vs.ops, ==, N + 3);

    /* the branch turns linear while it has several heads: writers must wait */
    pol.linear_branch = "crdt";
    TR_CHECK_INT(write_n(s, "crdt", a, 1, 10, NULL, &err), ==, TR_EDIVERGED);
    TR_CHECK(strstr(err.msg, "heads") != NULL);

    tr_buf_free(&rec);
    tr_buf_free(&o1);
    tr_buf_free(&o2);
    for (int i = 0; i < N; i++) tr_buf_free(&recs[i]);
    tr_identity_destroy(&a);
    tr_store_destroy(&s);
    rm_rf(d);
}

/* ---- hash index ------------------------------------------------------------- */

/* Counts hash-index runs per tier through a raw LMDB handle. */
static int count_runs(const char *p, unsigned tiers[8])
{
    memset(tiers, 0, 8 * sizeof tiers[0]);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    MDB_val k, v;
    if (mdb_env_create(&env)) return -1;
    mdb_env_set_maxdbs(env, 16);
    if (mdb_env_open(env, p, MDB_RDONLY, 0600)) return -1;
    if (mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) || mdb_dbi_open(txn, "hruns", 0, &dbi) ||
        mdb_cursor_open(txn, dbi, &c))
        return -1;
    int n = 0;
    while (mdb_cursor_get(c, &k, &v, MDB_NEXT) == 0) {
        uint8_t t = ((uint8_t *)k.mv_data)[0];
        if (t < 8) tiers[t]++;
        n++;
    }
    mdb_cursor_close(c);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

TR_TEST(hash_index_runs)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL;
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    tr_identity_t *a = ident(1);
    enum { BATCH = 1000, NB = 90, N = BATCH * NB };
    uint8_t(*h)[32] = malloc((size_t)N * 32);
    for (int i = 0; i < NB; i++)
        TR_CHECK_INT(write_n(s, i % 3 ? "main" : "side", a, BATCH, 8, h + (size_t)i * BATCH, &err),
                     ==, TR_OK);
    tr_store_destroy(&s);
    unsigned tiers[8];
    TR_CHECK(count_runs(p, tiers) >= 3);
    /* 90 runs of 1,000 (tier 4): merged into tiers 5, 6 and 7 */
    TR_CHECK(tiers[6] >= 1);
    TR_CHECK(tiers[7] >= 1);
    TR_CHECK_INT(tr_store_open(p, 0, &s, &err), ==, TR_OK);

    char bname[TR_BRANCH_MAX + 1];
    uint64_t pos;
    for (int i = 0; i < N; i++) {
        int r = tr_store_get(s, h[i], NULL, bname, &pos, &err);
        if (r) TR_FAILF("op %d: %s", i, err.msg);
        int batch = i / BATCH;
        TR_CHECK_STR(bname, batch % 3 ? "main" : "side");
    }
    /* resolve: full, 8 and odd-length prefixes; ambiguous; absent; bad */
    qsort(h, N, 32, cmp32);
    char hex[65];
    uint8_t got[32];
    for (int i = 0; i < N; i += 997) {
        tr_hex(hex, h[i], 32);
        TR_CHECK_INT(tr_store_resolve(s, hex, got, &err), ==, TR_OK);
        TR_CHECK_MEM(got, h[i], 32);
        bool uniq9 = (i == 0 || memcmp(h[i - 1], h[i], 4) != 0 || (h[i - 1][4] >> 4) != (h[i][4] >> 4)) &&
                     (i == N - 1 || memcmp(h[i + 1], h[i], 4) != 0 || (h[i + 1][4] >> 4) != (h[i][4] >> 4));
        hex[9] = '\0';
        if (uniq9) {
            TR_CHECK_INT(tr_store_resolve(s, hex, got, &err), ==, TR_OK);
            TR_CHECK_MEM(got, h[i], 32);
        }
    }
    /* 4 hex digits over 90k uniform hashes: find one that is ambiguous */
    int amb = -1;
    for (int i = 1; i < N && amb < 0; i++)
        if (memcmp(h[i - 1], h[i], 2) == 0) amb = i;
    TR_CHECK(amb >= 0);
    tr_hex(hex, h[amb], 32);
    hex[4] = '\0';
    TR_CHECK_INT(tr_store_resolve(s, hex, got, &err), ==, TR_EINVAL);
    TR_CHECK(strstr(err.msg, "ambiguous") != NULL);
    /* a 6-digit prefix that no op has */
    for (int i = 1; i < N; i++) {
        uint32_t x = (uint32_t)h[i - 1][0] << 16 | h[i - 1][1] << 8 | h[i - 1][2];
        uint32_t y = (uint32_t)h[i][0] << 16 | h[i][1] << 8 | h[i][2];
        if (y > x + 1) {
            snprintf(hex, sizeof hex, "%06x", x + 1);
            break;
        }
    }
    TR_CHECK_INT(tr_store_resolve(s, hex, got, &err), ==, TR_ENOTFOUND);
    TR_CHECK_INT(tr_store_resolve(s, "abc", got, &err), ==, TR_EINVAL);
    TR_CHECK_INT(tr_store_resolve(s, "abcx", got, &err), ==, TR_EINVAL);

    tr_verify_stats_t vs;
    TR_CHECK_INT(tr_store_verify(s, 0, NULL, NULL, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vs.ops, ==, N);
    TR_CHECK_INT(vs.bad, ==, 0);

    free(h);
    tr_identity_destroy(&a);
    tr_store_destroy(&s);
    rm_rf(d);
}

/* ---- map growth and several processes ---------------------------------------- */

TR_TEST(map_growth)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL;
    store_test_set_initial_mapsize(256 << 10);
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    tr_identity_t *a = ident(1);
    uint8_t(*h)[32] = malloc(6000 * 32);
    for (int i = 0; i < 6; i++) {
        int r = write_n(s, "main", a, 1000, 250, h + i * 1000, &err);
        if (r) TR_FAILF("%s", err.msg);
    }
    store_test_set_initial_mapsize(0);
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    TR_CHECK(info.me_mapsize >= (size_t)2 << 20);
    for (int i = 0; i < 6000; i += 7) TR_CHECK_INT(tr_store_get(s, h[i], NULL, NULL, NULL, &err), ==, TR_OK);
    uint64_t count;
    TR_CHECK_INT(tr_store_count(s, &count, &err), ==, TR_OK);
    TR_CHECK_INT(count, ==, 6000);
    tr_verify_stats_t vs;
    TR_CHECK_INT(tr_store_verify(s, 0, NULL, NULL, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vs.bad, ==, 0);
    free(h);
    tr_identity_destroy(&a);
    tr_store_destroy(&s);
    rm_rf(d);
}

/* A child process opens the same store (one process must not open an LMDB
 * env twice), writes, and exits; the parent's open store sees the ops. The
 * child starts with a tiny map and grows it past the parent's, so the
 * parent meets MDB_MAP_RESIZED and must adopt the new size. */
TR_TEST(two_processes)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL;
    store_test_set_initial_mapsize(512 << 10);
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    store_test_set_initial_mapsize(0);
    tr_identity_t *a = ident(1), *b = ident(2);
    TR_CHECK_INT(write_n(s, "main", a, 10, 20, NULL, &err), ==, TR_OK);
    fflush(stdout);
    pid_t pid = fork();
    TR_CHECK(pid >= 0);
    if (pid == 0) {
        tr_store_t *c = NULL;
        store_test_set_initial_mapsize(512 << 10);
        if (tr_store_open(p, 0, &c, NULL)) _exit(2);
        uint64_t n;
        if (tr_store_count(c, &n, NULL) || n != 10) _exit(3);
        for (int i = 0; i < 8; i++)
            if (write_n(c, "main", b, 500, 200, NULL, NULL)) _exit(4);
        tr_store_destroy(&c);
        _exit(0);
    }
    int status;
    TR_CHECK(waitpid(pid, &status, 0) == pid);
    TR_CHECK(WIFEXITED(status));
    TR_CHECK_INT(WEXITSTATUS(status), ==, 0);
    uint64_t count;
    TR_CHECK_INT(tr_store_count(s, &count, &err), ==, TR_OK);
    TR_CHECK_INT(count, ==, 4010);
    tr_branch_info_t bi;
    TR_CHECK_INT(tr_store_branch(s, "main", &bi, &err), ==, TR_OK);
    TR_CHECK_INT(bi.count, ==, 4010);
    /* and the parent can write on top (its map must adopt the child's size) */
    uint8_t hn[32];
    TR_CHECK_INT(write_n(s, "main", a, 1, 20, &hn, &err), ==, TR_OK);
    tr_buf_t rec = {0};
    tr_op_t op;
    TR_CHECK_INT(tr_store_get(s, hn, &rec, NULL, NULL, &err), ==, TR_OK);
    TR_CHECK_INT(tr_op_decode(rec.data, rec.len, &op, &err), ==, TR_OK);
    TR_CHECK_INT(op.seq, ==, 11);
    TR_CHECK_INT(op.lamport, ==, 4011);
    TR_CHECK_MEM(op.parents[0], bi.heads[0], 32);
    tr_verify_stats_t vs;
    TR_CHECK_INT(tr_store_verify(s, 0, NULL, NULL, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vs.bad, ==, 0);
    TR_CHECK_INT(vs.ops, ==, 4011);
    tr_buf_free(&rec);
    tr_identity_destroy(&a);
    tr_identity_destroy(&b);
    tr_store_destroy(&s);
    rm_rf(d);
}

/* ---- verify ------------------------------------------------------------------- */

typedef struct {
    int n;
    int codes[32];
    uint64_t pos[32];
    char reasons[32][640];
} vreports_t;

static void vreport_fn(void *arg, const char *branch, uint64_t pos, const uint8_t *hash, int code,
                       const char *reason)
{
    (void)branch;
    (void)hash;
    vreports_t *r = arg;
    if (r->n < 32) {
        r->codes[r->n] = code;
        r->pos[r->n] = pos;
        snprintf(r->reasons[r->n], sizeof r->reasons[0], "%s", reason);
    }
    r->n++;
}

static bool has_code(const vreports_t *r, int code, uint64_t pos)
{
    for (int i = 0; i < r->n && i < 32; i++)
        if (r->codes[i] == code && (pos == 0 || r->pos[i] == pos)) return true;
    return false;
}

/* Opens the store's env raw and applies `fn` in a write txn. */
typedef int (*raw_fn)(MDB_txn *txn, MDB_env *env);

static int raw_edit(const char *p, raw_fn fn)
{
    MDB_env *env;
    MDB_txn *txn;
    if (mdb_env_create(&env)) return -1;
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, 64 << 20);
    if (mdb_env_open(env, p, 0, 0600)) return -1;
    if (mdb_txn_begin(env, NULL, 0, &txn)) return -1;
    int r = fn(txn, env);
    if (r == 0) r = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    mdb_env_close(env);
    return r;
}

/* Flips a byte inside the body of the record at main position 5. */
static int flip_record(MDB_txn *txn, MDB_env *env)
{
    (void)env;
    MDB_dbi log;
    if (mdb_dbi_open(txn, "log", 0, &log)) return -1;
    uint8_t k[12] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5}; /* branch id 1 = main */
    MDB_val key = {12, k}, v;
    if (mdb_get(txn, log, &key, &v)) return -1;
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    copy[v.mv_size - 3] ^= 0x01; /* last body byte (op 5 is unsigned: sig is nil) */
    MDB_val nv = {v.mv_size, copy};
    int r = mdb_put(txn, log, &key, &nv, 0);
    free(copy);
    return r;
}

/* Truncates the record at position 9 so that it no longer decodes. */
static int break_record(MDB_txn *txn, MDB_env *env)
{
    (void)env;
    MDB_dbi log;
    if (mdb_dbi_open(txn, "log", 0, &log)) return -1;
    uint8_t k[12] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9};
    MDB_val key = {12, k}, v;
    if (mdb_get(txn, log, &key, &v)) return -1;
    uint8_t *copy = malloc(v.mv_size);
    memcpy(copy, v.mv_data, v.mv_size);
    MDB_val nv = {v.mv_size - 5, copy};
    int r = mdb_put(txn, log, &key, &nv, 0);
    free(copy);
    return r;
}

/* Points the first entry of the first hash index run at position 999. */
static int misplace_index(MDB_txn *txn, MDB_env *env)
{
    (void)env;
    MDB_dbi runs;
    MDB_cursor *c;
    MDB_val k, v;
    if (mdb_dbi_open(txn, "hruns", 0, &runs) || mdb_cursor_open(txn, runs, &c) ||
        mdb_cursor_get(c, &k, &v, MDB_FIRST))
        return -1;
    uint8_t *copy = malloc(v.mv_size), key[9];
    memcpy(copy, v.mv_data, v.mv_size);
    memcpy(key, k.mv_data, 9);
    copy[43] = 0xe7; /* pos (u64 BE at bytes 36..43) becomes 999 */
    copy[42] = 0x03;
    mdb_cursor_close(c);
    MDB_val nk = {9, key}, nv = {v.mv_size, copy};
    int r = mdb_put(txn, runs, &nk, &nv, 0);
    free(copy);
    return r;
}

/* Deletes the hash index run that holds the first ops, and the version
 * vector. */
static int drop_index(MDB_txn *txn, MDB_env *env)
{
    (void)env;
    MDB_dbi runs, vv;
    MDB_cursor *c;
    MDB_val k, v;
    if (mdb_dbi_open(txn, "hruns", 0, &runs) || mdb_dbi_open(txn, "vv", 0, &vv)) return -1;
    if (mdb_cursor_open(txn, runs, &c) || mdb_cursor_get(c, &k, &v, MDB_FIRST)) return -1;
    int r = mdb_cursor_del(c, 0);
    mdb_cursor_close(c);
    return r ? r : mdb_drop(txn, vv, 0);
}

TR_TEST(verify_finds_corruption)
{
    char d[256], p[300];
    TR_CHECK(tmpdir(d));
    store_path(p, d);
    tr_err_t err = {0};
    tr_store_t *s = NULL;
    TR_CHECK_INT(tr_store_create(p, REPO, &s, &err), ==, TR_OK);
    tr_identity_t *a = ident(1);
    uint8_t h[20][32];
    TR_CHECK_INT(write_n(s, "main", a, 20, 40, h, &err), ==, TR_OK);
    vreports_t vr = {0};
    tr_verify_stats_t vs;
    TR_CHECK_INT(tr_store_verify(s, 2, vreport_fn, &vr, &vs, &err), ==, TR_OK);
    TR_CHECK_INT(vr.n, ==, 0);
    TR_CHECK_INT(vs.ops, ==, 20);
    TR_CHECK_INT(vs.signatures, ==, 1);
    tr_store_destroy(&s);

    TR_CHECK_INT(raw_edit(p, flip_record), ==, 0);
    TR_CHECK_INT(tr_store_open(p, 0, &s, &err), ==, TR_OK);
    memset(&vr, 0, sizeof vr);
    TR_CHECK_INT(tr_store_verify(s, 2, vreport_fn, &vr, &vs, &err), ==, TR_OK);
    TR_CHECK(has_code(&vr, TR_EHASH, 5));
    TR_CHECK_INT(vs.bad, ==, 1);
    char hs[9];
    tr_hash_short(hs, h[4], 8);
    TR_CHECK(strstr(vr.reasons[0], hs) != NULL);
    /* reads notice too */
    tr_buf_t rec = {0};
    TR_CHECK_INT(tr_store_iter(s, "main", 0, visit_fn, &(visit_log_t){0}, &err), ==, TR_ECORRUPT);
    tr_store_destroy(&s);

    TR_CHECK_INT(raw_edit(p, break_record), ==, 0);
    TR_CHECK_INT(tr_store_open(p, 0, &s, &err), ==, TR_OK);
    memset(&vr, 0, sizeof vr);
    TR_CHECK_INT(tr_store_verify(s, 1, vreport_fn, &vr, &vs, &err), ==, TR_OK);
    TR_CHECK(has_code(&vr, TR_EHASH, 5));
    TR_CHECK(vr.n >= 2);
    bool decode_reported = false;
    for (int i = 0; i < vr.n && i < 32; i++)
        if (vr.pos[i] == 9 && strstr(vr.reasons[i], "does not decode")) decode_reported = true;
    TR_CHECK(decode_reported);
    TR_CHECK_INT(vs.bad, ==, 2); /* the successor of the broken op is not blamed */
    tr_store_destroy(&s);

    TR_CHECK_INT(raw_edit(p, misplace_index), ==, 0);
    TR_CHECK_INT(tr_store_open(p, 0, &s, &err), ==, TR_OK);
    memset(&vr, 0, sizeof vr);
    TR_CHECK_INT(tr_store_verify(s, 2, vreport_fn, &vr, &vs, &err), ==, TR_OK);
    bool sends = false, points = false;
    for (int i = 0; i < vr.n && i < 32; i++) {
        if (strstr(vr.reasons[i], "hash index sends op") && strstr(vr.reasons[i], ", 999)")) sends = true;
        if (strstr(vr.reasons[i], "points to (1, 999), which holds nothing")) points = true;
    }
    TR_CHECK(sends);
    TR_CHECK(points);
    tr_store_destroy(&s);

    TR_CHECK_INT(raw_edit(p, drop_index), ==, 0);
    TR_CHECK_INT(tr_store_open(p, 0, &s, &err), ==, TR_OK);
    memset(&vr, 0, sizeof vr);
    TR_CHECK_INT(tr_store_verify(s, 0, vreport_fn, &vr, &vs, &err), ==, TR_OK);
    TR_CHECK(has_code(&vr, TR_ECORRUPT, 1)); /* missing from the hash index */
    bool vv_reported = false;
    for (int i = 0; i < vr.n && i < 32; i++)
        if (strstr(vr.reasons[i], "version vector")) vv_reported = true;
    TR_CHECK(vv_reported);
    tr_buf_free(&rec);
    tr_identity_destroy(&a);
    tr_store_destroy(&s);
    rm_rf(d);
}

TR_MAIN()
