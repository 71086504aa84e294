/* test_converge.c — a seeded randomized convergence simulator for the CRDT
 * core (docs/crdt.md §8).
 *
 * Each case builds 3–5 in-memory replicas (a sorted map of state key →
 * state bytes each, no LMDB) and 3–8 authors, each writing at its home
 * replica. Authors write random ops of every kind with causally valid
 * lamports and preds (a pred names writes the author had materialized). The
 * network delivers copies in random order, duplicates some, forgets none;
 * anti-entropy rounds push one replica's whole log to another. A replica
 * integrates what it receives the way a store does: duplicates dropped, an
 * op held back until its causes are in. At the end every replica receives
 * everything, and then:
 *   - every replica holds byte-identical state and entity fingerprints;
 *   - a rebuild from the reconciler's merged order gives the same bytes;
 *   - applying every op again changes nothing (idempotence);
 *   - join-semilattice states (triples, registers, lists, sets, files,
 *     deletions) come out the same from a fully random order with repeats;
 *   - the reconciler's view of two replicas matches their op sets, and is
 *     the same with the sides swapped.
 * Delivery orders differ per replica, so merging is shown commutative and
 * associative; the repeat pass shows it idempotent.
 *
 * TRELLIS_CONVERGE_CASES sets the number of cases (default 3000, ~10 s under
 * ASan; with TRELLIS_SOAK=1, 50000 from a time-based seed, ~150 s, inside
 * tests/run.sh's 300 s limit). TRELLIS_CONVERGE_SEED sets the first case's
 * seed; a failing case prints its own. */
#include <jansson.h>
#include <time.h>

#include "tr_crdt.h"
#include "tr_test.h"

#define MAXR 5
#define MAXA 8
#define MAXOPS 128
#define MAXMSG 8192

/* ---- randomness --------------------------------------------------------- */

static uint64_t rng;

static uint64_t rnd(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int below(int n)
{
    return (int)(rnd() % (uint64_t)n);
}

static bool chance(int percent)
{
    return below(100) < percent;
}

/* ---- state maps ----------------------------------------------------------- */

typedef struct {
    tr_buf_t key, val;
} kv_t;

typedef struct {
    kv_t *kv;
    size_t n, cap;
} smap_t;

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an < bn ? -1 : an > bn);
}

/* Binary search: the index of the key, or where it would go (*found false). */
static size_t smap_find(const smap_t *m, const uint8_t *k, size_t kl, bool *found)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(m->kv[mid].key.data, m->kv[mid].key.len, k, kl);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static const kv_t *smap_get(const smap_t *m, const uint8_t *k, size_t kl)
{
    bool f;
    size_t i = smap_find(m, k, kl, &f);
    return f ? &m->kv[i] : NULL;
}

static void smap_put(smap_t *m, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    bool f;
    size_t i = smap_find(m, k, kl, &f);
    if (!f) {
        if (m->n == m->cap) {
            m->cap = m->cap ? 2 * m->cap : 64;
            m->kv = realloc(m->kv, m->cap * sizeof *m->kv);
            if (!m->kv) abort();
        }
        memmove(&m->kv[i + 1], &m->kv[i], (m->n - i) * sizeof *m->kv);
        memset(&m->kv[i], 0, sizeof m->kv[i]);
        if (tr_buf_append(&m->kv[i].key, k, kl)) abort();
        m->n++;
    }
    tr_buf_reset(&m->kv[i].val);
    if (tr_buf_append(&m->kv[i].val, v, vl)) abort();
}

static void smap_clear(smap_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        tr_buf_free(&m->kv[i].key);
        tr_buf_free(&m->kv[i].val);
    }
    m->n = 0;
}

static void smap_free(smap_t *m)
{
    smap_clear(m);
    free(m->kv);
    memset(m, 0, sizeof *m);
}

/* ---- the simulation --------------------------------------------------------- */

typedef struct {
    tr_op_t op;
    tr_buf_t body;
    uint32_t deps[MAXA]; /* the home replica's version vector when written */
    int author;
} sim_op_t;

typedef struct {
    bool has[MAXOPS];
    uint32_t vv[MAXA];
    uint64_t lamport;
    smap_t map;
    int pending[MAXMSG];
    size_t npending;
    int log[MAXOPS];
    size_t nlog;
} replica_t;

typedef struct {
    int op, to;
} msg_t;

typedef struct {
    int nrep, nauth, nops, maxops;
    uint8_t authors[MAXA][32];
    int home[MAXA];
    uint32_t seq[MAXA];
    uint8_t last[MAXA][32];
    sim_op_t ops[MAXOPS];
    replica_t rep[MAXR + 1]; /* the extra one is for rebuilds */
    msg_t msgs[MAXMSG];
    size_t nmsgs;
    tr_buf_t out, key, tmp;
    char fail[600];
} sim_t;

static sim_t sim;
static tr_strategies_t *strat;

#define SIM_FAIL(...)                                                                              \
    do {                                                                                           \
        snprintf(sim.fail, sizeof sim.fail, __VA_ARGS__);                                          \
        return false;                                                                              \
    } while (0)

/* Applies one op to every state key it touches in map m. With `check_idem`
 * the op must not change anything (it was applied before). */
static bool apply_op(smap_t *m, const tr_op_t *op, bool check_idem, bool join_only)
{
    tr_crdt_op_t v;
    tr_err_t err;
    if (tr_crdt_classify(op, &v, &err)) SIM_FAIL("classify: %s", err.msg);
    for (size_t i = 0; i < v.nkeys; i++) {
        tr_buf_reset(&sim.key);
        if (tr_crdt_op_key(&v, i, &sim.key)) SIM_FAIL("key");
        if (join_only) {
            if (v.kind == TR_CRDT_COUNTER_ADD) continue;
            if (v.kind >= TR_CRDT_FIELD_SET && v.kind <= TR_CRDT_FIELD_REMOVE) {
                tr_strategy_t s = tr_strategies_lookup(strat, v.field.p, v.field.n, NULL);
                if (s == TR_STRATEGY_MANUAL || s == TR_STRATEGY_RESTRICT) continue;
            }
        }
        const kv_t *old = smap_get(m, sim.key.data, sim.key.len);
        tr_crdt_effect_t eff;
        int rc = tr_crdt_apply(&v, i, strat, old ? old->val.data : NULL, old ? old->val.len : 0,
                               &sim.out, &eff, &err);
        if (rc) SIM_FAIL("apply %.*s: %s", (int)op->kind_len, op->kind, err.msg);
        if (tr_crdt_effect_writes(&eff)) {
            if (check_idem)
                SIM_FAIL("applying %.*s again changed its state", (int)op->kind_len, op->kind);
            smap_put(m, sim.key.data, sim.key.len, sim.out.data, sim.out.len);
        }
    }
    return true;
}

static bool ready(const replica_t *r, int id)
{
    const sim_op_t *o = &sim.ops[id];
    if (r->has[id] || r->vv[o->author] != o->op.seq - 1) return false;
    for (int a = 0; a < sim.nauth; a++)
        if (r->vv[a] < o->deps[a]) return false;
    return true;
}

static bool integrate(replica_t *r, int id)
{
    const sim_op_t *o = &sim.ops[id];
    r->has[id] = true;
    r->vv[o->author] = (uint32_t)o->op.seq;
    if (o->op.lamport > r->lamport) r->lamport = o->op.lamport;
    r->log[r->nlog++] = id;
    return apply_op(&r->map, &o->op, false, false);
}

/* Receives a copy of op `id`: duplicates are dropped, the rest wait until
 * their causes are integrated (as a store does). */
static bool receive(replica_t *r, int id)
{
    if (r->has[id]) return true;
    if (r->npending < MAXMSG) r->pending[r->npending++] = id;
    bool progress = true;
    while (progress) {
        progress = false;
        for (size_t i = 0; i < r->npending; i++) {
            int p = r->pending[i];
            if (r->has[p]) {
                r->pending[i--] = r->pending[--r->npending];
                continue;
            }
            if (!ready(r, p)) continue;
            r->pending[i--] = r->pending[--r->npending];
            if (!integrate(r, p)) return false;
            progress = true;
        }
    }
    return true;
}

static void sim_send(int id, int to)
{
    if (sim.nmsgs < MAXMSG) sim.msgs[sim.nmsgs++] = (msg_t){id, to};
}

/* ---- random ops --------------------------------------------------------------- */

static const char *const entities[] = {"e0", "e1", "e2"};
static const char *const set_fields[] = {"title", "contract", "status", "id", "meta.x", "steps"};
static const char *const statuses[] = {"tombstoned", "published", "deprecated", "draft", "custom"};

static void pack_value(msgpack_packer *pk, const char *field)
{
    char s[8];
    if (!strcmp(field, "status")) {
        const char *v = statuses[below(5)];
        tr_pack_str(pk, v, strlen(v));
        return;
    }
    switch (below(5)) {
    case 0:
        msgpack_pack_nil(pk);
        break;
    case 1:
        msgpack_pack_uint64(pk, (uint64_t)below(4));
        break;
    case 2:
        msgpack_pack_array(pk, 2);
        msgpack_pack_uint64(pk, (uint64_t)below(3));
        tr_pack_str(pk, "x", 1);
        break;
    default:
        snprintf(s, sizeof s, "v%d", below(4));
        tr_pack_str(pk, s, strlen(s));
    }
}

static int hash_cmp(const void *a, const void *b)
{
    return memcmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b, 32);
}

/* A field.set whose pred is all, some or none of the writes the home
 * replica holds for that field. */
static void body_set(tr_buf_t *b, const replica_t *r, const char *entity, const char *field)
{
    tr_crdt_entry_t ents[64];
    const uint8_t *hs[64];
    size_t n = 0, nh = 0;
    tr_buf_reset(&sim.key);
    if (tr_crdt_key_field((tr_crdt_str_t){entity, strlen(entity)},
                          (tr_crdt_str_t){field, strlen(field)}, &sim.key))
        abort();
    const kv_t *cur = smap_get(&r->map, sim.key.data, sim.key.len);
    if (cur && tr_crdt_entries(cur->val.data, cur->val.len, ents, 64, &n, NULL)) abort();
    if (n > 64) n = 64;
    int mode = below(100); /* all, none, or a random subset */
    for (size_t i = 0; i < n; i++)
        if (mode < 70 || (mode >= 85 && chance(50))) hs[nh++] = ents[i].hash;
    qsort(hs, nh, sizeof *hs, hash_cmp);
    size_t u = 0;
    for (size_t i = 0; i < nh; i++)
        if (!u || memcmp(hs[u - 1], hs[i], 32)) hs[u++] = hs[i];
    msgpack_packer pk;
    tr_packer_init(&pk, b);
    msgpack_pack_map(&pk, 3);
    tr_pack_str(&pk, "field", 5);
    tr_pack_str(&pk, field, strlen(field));
    tr_pack_str(&pk, "pred", 4);
    msgpack_pack_array(&pk, u);
    for (size_t i = 0; i < u; i++)
        tr_pack_bin(&pk, hs[i], 32);
    tr_pack_str(&pk, "value", 5);
    pack_value(&pk, field);
}

static void body_field(tr_buf_t *b, const char *field, const char *value)
{
    msgpack_packer pk;
    tr_packer_init(&pk, b);
    msgpack_pack_map(&pk, 2);
    tr_pack_str(&pk, "field", 5);
    tr_pack_str(&pk, field, strlen(field));
    tr_pack_str(&pk, "value", 5);
    if (value)
        tr_pack_str(&pk, value, strlen(value));
    else
        pack_value(&pk, field);
}

/* Writes one random op by author a at its home replica and sends copies. */
static bool write_op(int a)
{
    static char targets[MAXOPS][16];
    replica_t *r = &sim.rep[sim.home[a]];
    int id = sim.nops++;
    sim_op_t *o = &sim.ops[id];
    tr_buf_reset(&o->body);
    memset(&o->op, 0, sizeof o->op);
    const char *kind, *target = entities[below(3)];
    char *tg = targets[id];
    int k = below(100);
    if (k < 22) {
        const char *f = set_fields[below(6)];
        kind = "field.set";
        body_set(&o->body, r, target, f);
    } else if (k < 32) {
        kind = "field.append";
        body_field(&o->body, chance(90) ? "steps" : "title", NULL);
    } else if (k < 44) {
        static const char *vals[] = {"x", "y", "z"};
        kind = chance(60) ? "field.add" : "field.remove";
        body_field(&o->body, "imports", vals[below(3)]);
    } else if (k < 56) {
        kind = "counter.add";
        int64_t n = below(9) - 3;
        if (chance(3)) n = chance(50) ? INT64_MAX / 2 + 7 : INT64_MIN / 2 - 7;
        const char *cf = chance(80) ? "views" : "title"; /* both 5 bytes */
        if (tr_crdt_body_counter((tr_crdt_str_t){cf, 5}, n, &o->body)) abort();
    } else if (k < 70) {
        static const char *subj[] = {"s0", "s1"}, *obj[] = {"o0", "o1", "o2"};
        kind = chance(60) ? "triple.add" : "triple.remove";
        target = subj[below(2)];
        if (tr_crdt_body_triple((tr_crdt_str_t){target, 2}, (tr_crdt_str_t){"p", 1},
                                (tr_crdt_str_t){obj[below(3)], 2}, &o->body))
            abort();
    } else if (k < 84) {
        static const char *kinds[] = {"file.add", "file.modify", "file.delete", "file.rename"};
        int fk = below(4), p = below(3);
        uint8_t h[32];
        memset(h, 'a' + below(3), 32);
        kind = kinds[fk];
        snprintf(tg, 16, "f%d", p);
        target = tg;
        char from[4];
        snprintf(from, sizeof from, "f%d", (p + 1 + below(2)) % 3);
        if (tr_crdt_body_file((tr_crdt_str_t){tg, strlen(tg)}, fk == 2 ? NULL : h, (uint64_t)p,
                              fk == 3 ? (tr_crdt_str_t){from, strlen(from)} : (tr_crdt_str_t){0},
                              &o->body))
            abort();
    } else if (k < 92) {
        kind = "entity.delete";
        if (tr_buf_append(&o->body, "\x80", 1)) abort();
    } else {
        kind = chance(50) ? "app.note" : "link.repo";
        if (tr_buf_append(&o->body, "\x93\x01\x02\x03", 4)) abort();
    }
    if (o->body.len == 0) abort();
    o->author = a;
    memcpy(o->deps, r->vv, sizeof o->deps);
    tr_op_t *op = &o->op;
    op->branch = "b";
    op->branch_len = 1;
    memcpy(op->author, sim.authors[a], 32);
    op->seq = ++sim.seq[a];
    op->lamport = r->lamport + 1;
    op->wall_ms = rnd() % 1000; /* never used to order */
    op->has_prev = op->seq > 1;
    memcpy(op->prev, sim.last[a], 32);
    op->kind = kind;
    op->kind_len = strlen(kind);
    op->target = target;
    op->target_len = strlen(target);
    op->body = o->body.data;
    op->body_len = o->body.len;
    tr_err_t err;
    tr_buf_reset(&sim.tmp);
    if (tr_op_encode(op, NULL, &sim.tmp, &err)) SIM_FAIL("encode: %s", err.msg);
    memcpy(sim.last[a], op->hash, 32);
    if (!ready(r, id)) SIM_FAIL("own op not ready");
    if (!integrate(r, id)) return false;
    for (int to = 0; to < sim.nrep; to++) {
        if (to == sim.home[a] || !chance(60)) continue;
        sim_send(id, to);
        if (chance(15)) sim_send(id, to); /* a duplicate */
    }
    return true;
}

/* Delivers message i (a copy may stay behind: a duplicate later). */
static bool deliver(size_t i)
{
    msg_t m = sim.msgs[i];
    if (!chance(20)) sim.msgs[i] = sim.msgs[--sim.nmsgs];
    return receive(&sim.rep[m.to], m.op);
}

/* Anti-entropy: x pushes its whole log to y, shuffled. */
static void push_all(int x, int y)
{
    const replica_t *r = &sim.rep[x];
    int ids[MAXOPS];
    size_t n = r->nlog;
    memcpy(ids, r->log, n * sizeof *ids);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)below((int)i);
        int t = ids[i - 1];
        ids[i - 1] = ids[j];
        ids[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        if (!sim.rep[y].has[ids[i]]) sim_send(ids[i], y);
}

static bool maps_equal(const smap_t *a, const smap_t *b, const char *what)
{
    if (a->n != b->n) SIM_FAIL("%s: %zu vs %zu state keys", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const kv_t *x = &a->kv[i], *y = &b->kv[i];
        if (key_cmp(x->key.data, x->key.len, y->key.data, y->key.len))
            SIM_FAIL("%s: different key sets", what);
        if (key_cmp(x->val.data, x->val.len, y->val.data, y->val.len))
            SIM_FAIL("%s: state of key %zu differs", what, i);
    }
    return true;
}

/* Fingerprint of entity e in map m (entity builder + deletion stamp). */
static bool fingerprint(const smap_t *m, const char *e, uint8_t fp[32], size_t *nf)
{
    static tr_crdt_entity_t *ent;
    tr_err_t err;
    if (!ent && tr_crdt_entity_new(&ent)) abort();
    tr_crdt_str_t es = {e, strlen(e)};
    uint64_t tomb = 0;
    tr_buf_reset(&sim.key);
    if (tr_crdt_key_entity(es, &sim.key)) abort();
    const kv_t *d = smap_get(m, sim.key.data, sim.key.len);
    if (d) {
        tr_crdt_info_t info;
        if (tr_crdt_value(strat, d->val.data, d->val.len, 0, NULL, &info, &err))
            SIM_FAIL("tomb: %s", err.msg);
        tomb = info.lamport;
    }
    tr_crdt_entity_reset(ent, tomb);
    static const tr_crdt_ns_t ns[2] = {TR_CRDT_NS_FIELD, TR_CRDT_NS_COUNTER};
    for (int k = 0; k < 2; k++) {
        tr_buf_reset(&sim.tmp);
        if (tr_crdt_key_prefix(ns[k], &es, 1, &sim.tmp)) abort();
        for (size_t i = 0; i < m->n; i++) {
            const kv_t *kv = &m->kv[i];
            if (kv->key.len < sim.tmp.len || memcmp(kv->key.data, sim.tmp.data, sim.tmp.len))
                continue;
            if (tr_crdt_entity_add(ent, strat, kv->key.data, kv->key.len, kv->val.data, kv->val.len,
                                   &err))
                SIM_FAIL("entity add: %s", err.msg);
        }
    }
    if (tr_crdt_entity_finish(ent, NULL, fp, nf, &err)) SIM_FAIL("entity: %s", err.msg);
    return true;
}

/* The reconciler on two replicas' logs agrees with their op sets. */
static bool check_reconcile(int x, int y)
{
    static tr_op_t l[MAXOPS], r[MAXOPS];
    const replica_t *a = &sim.rep[x], *b = &sim.rep[y];
    for (size_t i = 0; i < a->nlog; i++)
        l[i] = sim.ops[a->log[i]].op;
    for (size_t i = 0; i < b->nlog; i++)
        r[i] = sim.ops[b->log[i]].op;
    size_t uni = 0, onlya = 0, onlyb = 0;
    int last_common = -1;
    for (int i = 0; i < sim.nops; i++) {
        uni += a->has[i] || b->has[i];
        onlya += a->has[i] && !b->has[i];
        onlyb += b->has[i] && !a->has[i];
        if (a->has[i] && b->has[i] &&
            (last_common < 0 || tr_op_order(&sim.ops[i].op, &sim.ops[last_common].op) > 0))
            last_common = i;
    }
    tr_reconcile_t *p = NULL, *q = NULL;
    if (tr_reconcile(l, a->nlog, r, b->nlog, strat, &p, NULL) ||
        tr_reconcile(r, b->nlog, l, a->nlog, strat, &q, NULL))
        SIM_FAIL("reconcile failed");
    bool ok = tr_reconcile_merged_count(p) == uni &&
              tr_reconcile_unique_count(p, TR_SIDE_LOCAL) == onlya &&
              tr_reconcile_unique_count(p, TR_SIDE_REMOTE) == onlyb &&
              tr_reconcile_conflict_count(p) == tr_reconcile_conflict_count(q);
    uint8_t fork[32];
    if (ok && last_common >= 0)
        ok = tr_reconcile_fork_point(p, fork) && !memcmp(fork, sim.ops[last_common].op.hash, 32);
    if (ok && last_common < 0) ok = !tr_reconcile_fork_point(p, fork);
    for (size_t i = 0; ok && i < tr_reconcile_conflict_count(p); i++) {
        const tr_conflict_t *c = tr_reconcile_conflict(p, i), *d = tr_reconcile_conflict(q, i);
        ok = !strcmp(c->reason, d->reason) && c->nlocal == d->nremote &&
             c->target.n == d->target.n && !memcmp(c->target.p, d->target.p, c->target.n);
    }
    for (size_t i = 1; ok && i < tr_reconcile_merged_count(p); i++)
        ok = tr_op_order(tr_reconcile_merged(p, i - 1, NULL), tr_reconcile_merged(p, i, NULL)) < 0;
    tr_reconcile_destroy(&p);
    tr_reconcile_destroy(&q);
    if (!ok) SIM_FAIL("reconcile of replicas %d and %d disagrees with their op sets", x, y);
    return true;
}

static void sim_reset(void)
{
    for (int i = 0; i <= MAXR; i++) {
        smap_clear(&sim.rep[i].map);
        smap_t keep = sim.rep[i].map;
        memset(&sim.rep[i], 0, sizeof sim.rep[i]);
        sim.rep[i].map = keep;
    }
    sim.nmsgs = 0;
    sim.nops = 0;
    memset(sim.seq, 0, sizeof sim.seq);
    sim.fail[0] = '\0';
}

/* One case: returns false with sim.fail set. */
static bool run_case(uint64_t seed)
{
    rng = seed;
    sim_reset();
    sim.nrep = 3 + below(3);
    sim.nauth = sim.nrep + below(MAXA - sim.nrep + 1);
    sim.maxops = 24 + below(MAXOPS - 24 + 1);
    for (int a = 0; a < sim.nauth; a++) {
        for (int i = 0; i < 32; i++)
            sim.authors[a][i] = (uint8_t)rnd();
        sim.authors[a][0] = (uint8_t)(a * 7); /* few distinct first bytes: more ties */
        sim.home[a] = a % sim.nrep;
    }
    bool checked_reconcile = false;
    while (sim.nops < sim.maxops) {
        int k = below(100);
        if (k < 40) {
            if (!write_op(below(sim.nauth))) return false;
        } else if (k < 92) {
            if (sim.nmsgs && !deliver((size_t)below((int)sim.nmsgs))) return false;
        } else {
            int x = below(sim.nrep), y = below(sim.nrep);
            if (x != y) push_all(x, y);
        }
        if (!checked_reconcile && sim.nops > sim.maxops / 2) {
            checked_reconcile = true;
            if (!check_reconcile(0, 1 + below(sim.nrep - 1))) return false;
        }
    }
    /* Quiescence: everyone gets everything, in random order, some twice. */
    for (int y = 0; y < sim.nrep; y++)
        for (int x = 0; x < sim.nrep; x++)
            if (x != y) push_all(x, y);
    while (sim.nmsgs)
        if (!deliver((size_t)below((int)sim.nmsgs))) return false;
    for (int y = 0; y < sim.nrep; y++) {
        if ((int)sim.rep[y].nlog != sim.nops)
            SIM_FAIL("replica %d has %zu of %d ops", y, sim.rep[y].nlog, sim.nops);
        if (y && !maps_equal(&sim.rep[0].map, &sim.rep[y].map, "replicas")) return false;
    }
    for (int e = 0; e < 3; e++) {
        uint8_t f0[32], fy[32];
        size_t n0, ny;
        if (!fingerprint(&sim.rep[0].map, entities[e], f0, &n0)) return false;
        for (int y = 1; y < sim.nrep; y++) {
            if (!fingerprint(&sim.rep[y].map, entities[e], fy, &ny)) return false;
            if (n0 != ny || memcmp(f0, fy, 32)) SIM_FAIL("fingerprints of %s differ", entities[e]);
        }
    }
    if (!check_reconcile(0, sim.nrep - 1)) return false;

    /* Rebuild from the reconciler's merged order (lamport order is causal). */
    static tr_op_t all[MAXOPS];
    for (int i = 0; i < sim.nops; i++)
        all[i] = sim.ops[sim.rep[1].log[i]].op;
    tr_reconcile_t *res = NULL;
    if (tr_reconcile(all, (size_t)sim.nops, NULL, 0, strat, &res, NULL)) SIM_FAIL("reconcile");
    replica_t *z = &sim.rep[MAXR];
    bool ok = true;
    for (size_t i = 0; ok && i < tr_reconcile_merged_count(res); i++)
        ok = apply_op(&z->map, tr_reconcile_merged(res, i, NULL), false, false);
    tr_reconcile_destroy(&res);
    if (!ok || !maps_equal(&sim.rep[0].map, &z->map, "rebuild")) return false;

    /* Idempotence: every op again, in random order, changes nothing. */
    int perm[MAXOPS];
    for (int i = 0; i < sim.nops; i++)
        perm[i] = i;
    for (int i = sim.nops; i > 1; i--) {
        int j = below(i), t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < sim.nops; i++)
        if (!apply_op(&sim.rep[0].map, &sim.ops[perm[i]].op, true, false)) return false;

    /* Join states from a fully random order (not even causal), with repeats. */
    smap_clear(&z->map);
    for (int i = 0; i < sim.nops; i++) {
        if (!apply_op(&z->map, &sim.ops[perm[i]].op, false, true)) return false;
        if (chance(20) && !apply_op(&z->map, &sim.ops[perm[below(i + 1)]].op, false, true))
            return false;
    }
    size_t joins = 0;
    for (size_t i = 0; i < z->map.n; i++) {
        const kv_t *kv = &z->map.kv[i];
        const kv_t *ref = smap_get(&sim.rep[0].map, kv->key.data, kv->key.len);
        if (!ref || key_cmp(ref->val.data, ref->val.len, kv->val.data, kv->val.len))
            SIM_FAIL("a join state differs after a random order");
        joins++;
    }
    for (size_t i = 0; i < sim.rep[0].map.n; i++) {
        const kv_t *kv = &sim.rep[0].map.kv[i];
        tr_crdt_key_t k;
        if (tr_crdt_key_parse(kv->key.data, kv->key.len, &k, NULL)) SIM_FAIL("bad key");
        if (k.ns == TR_CRDT_NS_COUNTER) continue;
        if (k.ns == TR_CRDT_NS_FIELD) {
            tr_strategy_t s = tr_strategies_lookup(strat, k.part[1].p, k.part[1].n, NULL);
            if (s == TR_STRATEGY_MANUAL || s == TR_STRATEGY_RESTRICT) continue;
        }
        if (!joins--) SIM_FAIL("a join state is missing after a random order");
    }
    if (joins) SIM_FAIL("extra join states after a random order");
    return true;
}

static const char *config =
    "{\"status\": \"highest_restriction_wins\", \"steps\": \"append_wins\","
    " \"imports\": \"union_merge\", \"contract\": \"manual_resolution\", \"id\": \"immutable\","
    " \"meta.*\": \"last_write_wins\", \"*\": \"last_write_wins\"}";

TR_TEST(convergence)
{
    const char *env = getenv("TRELLIS_CONVERGE_CASES");
    const char *soak = getenv("TRELLIS_SOAK");
    const char *seedenv = getenv("TRELLIS_CONVERGE_SEED");
    long cases = env ? atol(env) : (soak && *soak && strcmp(soak, "0") ? 50000 : 3000);
    uint64_t base = seedenv ? strtoull(seedenv, NULL, 0)
                            : (soak && *soak && strcmp(soak, "0") ? (uint64_t)time(NULL) : 1);
    json_t *fs = json_loads(config, 0, NULL);
    TR_CHECK_INT(tr_strategies_parse(fs, NULL, NULL, &strat, NULL), ==, TR_OK);
    json_decref(fs);
    size_t total_ops = 0;
    for (long c = 0; c < cases; c++) {
        uint64_t seed = base + (uint64_t)c;
        if (!run_case(seed)) {
            printf("convergence case failed: TRELLIS_CONVERGE_SEED=%llu TRELLIS_CONVERGE_CASES=1: "
                   "%s\n",
                   (unsigned long long)seed, sim.fail);
            tr_strategies_destroy(&strat);
            TR_FAILF("seed %llu", (unsigned long long)seed);
        }
        total_ops += (size_t)sim.nops;
    }
    printf("# %ld cases from seed %llu, %zu ops\n", cases, (unsigned long long)base, total_ops);
    tr_strategies_destroy(&strat);
    for (int i = 0; i <= MAXR; i++)
        smap_free(&sim.rep[i].map);
    for (int i = 0; i < MAXOPS; i++)
        tr_buf_free(&sim.ops[i].body);
    tr_buf_free(&sim.out);
    tr_buf_free(&sim.key);
    tr_buf_free(&sim.tmp);
}

TR_MAIN()
