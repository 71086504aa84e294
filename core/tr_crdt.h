/*
 * tr_crdt.h — the conflict-free core: op kinds, materialized state, merge
 * rules, entity fingerprints and the reconciler (docs/crdt.md, normative).
 *
 * Overview
 *   A store materializes a CRDT branch by feeding every integrated op through
 *   three pure steps, inside the write transaction that integrates it:
 *
 *     tr_crdt_classify(op)        → a parsed view: kind, body, and the state
 *                                   keys it touches (0, 1, or 2 for a rename);
 *     tr_crdt_op_key(view, i)     → state key i (canonical msgpack bytes);
 *     tr_crdt_apply(view, i, old) → the new state bytes for key i and an
 *                                   effect (changed, unchanged, refused with
 *                                   a reason, conflict opened/closed).
 *
 *   State keys (canonical msgpack arrays, so a prefix selects a subject or an
 *   entity in a sorted store):
 *     ["t", s, p, o]     a triple                     (triple.add/remove)
 *     ["f", entity, f]   an entity field               (field.*)
 *     ["c", entity, f]   a counter                     (counter.add)
 *     ["p", path]        a file                        (file.*)
 *     ["d", entity]      an entity's deletion stamp    (entity.delete)
 *
 *   State values are canonical msgpack too, so replicas that hold the same
 *   ops hold byte-identical state, and `trellis rebuild` reproduces it.
 *   Reading: tr_crdt_value (the materialized value, for display), and
 *   tr_crdt_entries (the candidate writes, for `trellis conflicts` and for
 *   the `pred` of the next write). An entity's fields are gathered with a
 *   tr_crdt_entity_t, which also computes its fingerprint.
 *
 *   tr_reconcile compares two op sequences (seed 000): merged order, fork
 *   point, unique ops, conflicts.
 *
 * Delivery contract (why the state is bounded)
 *   Triples, single-value registers (last_write_wins, immutable, files,
 *   entity deletions), append lists and union sets are join semilattices:
 *   apply is commutative, associative and idempotent for ops in any order.
 *   Counters and multi-value registers (manual_resolution,
 *   highest_restriction_wins) keep a per-author "seen" seq instead of every
 *   op id, so they converge for every delivery in which each author's ops
 *   arrive in seq order and a write's `pred` ops arrive before it — which is
 *   what a store does (it integrates an author's ops in seq order and every
 *   op after its parents). Repeats are recognised in every state.
 *
 * Caveats
 *   - Pure: no I/O, no allocation on the apply path beyond growing the
 *     caller's output buffer (reuse one tr_buf_t across calls).
 *   - tr_crdt_op_t borrows from the tr_op_t (and so from the record bytes)
 *     it was classified from; tr_crdt_entry_t borrows from the state bytes;
 *     tr_reconcile_t borrows the input ops. Keep those alive while in use.
 *   - Classification depends on the op alone, so every replica refuses the
 *     same ops. Apply-time refusals (immutable, a kind that does not fit the
 *     field's strategy, counter overflow) depend on the strategies too: the
 *     op stays in the log and the state is unchanged.
 *   - The state depends on the strategies (tr_strategy.h): rebuild it when
 *     tr_strategies_digest changes.
 */
#ifndef TR_CRDT_H
#define TR_CRDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tr_codec.h"
#include "tr_error.h"
#include "tr_op.h"
#include "tr_strategy.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TR_CRDT_FIELD_MAX 255 /* bytes in a field name */
#define TR_CRDT_PRED_MAX 256  /* hashes in a field.set pred */
#define TR_CRDT_PRED_MAX_S "256"
#define TR_CRDT_PRED_MAX_P 1024 /* bytes in a triple predicate */
#define TR_CRDT_OBJECT_MAX 4096 /* bytes in a triple object */
#define TR_CRDT_FIELD_FINGERPRINT "fingerprint"

/* ---- Classification -------------------------------------------------- */

typedef enum {
    TR_CRDT_APP = 0,   /* app.*: stored and synced, never materialized */
    TR_CRDT_LINK_REPO, /* link.repo: stored; materialized by federation */
    TR_CRDT_TRIPLE_ADD,
    TR_CRDT_TRIPLE_REMOVE,
    TR_CRDT_FIELD_SET,
    TR_CRDT_FIELD_APPEND,
    TR_CRDT_FIELD_ADD,
    TR_CRDT_FIELD_REMOVE,
    TR_CRDT_COUNTER_ADD,
    TR_CRDT_FILE_ADD,
    TR_CRDT_FILE_MODIFY,
    TR_CRDT_FILE_DELETE,
    TR_CRDT_FILE_RENAME,
    TR_CRDT_ENTITY_DELETE,
    TR_CRDT_KIND_COUNT
} tr_crdt_kind_t;

/* The kind's name ("field.set", …; "app.*" for TR_CRDT_APP). */
const char *tr_crdt_kind_name(tr_crdt_kind_t k);

/* State key namespaces: the first element of every key. */
typedef enum {
    TR_CRDT_NS_TRIPLE = 't',
    TR_CRDT_NS_FIELD = 'f',
    TR_CRDT_NS_COUNTER = 'c',
    TR_CRDT_NS_FILE = 'p',
    TR_CRDT_NS_ENTITY = 'd',
} tr_crdt_ns_t;

/* A borrowed byte string. */
typedef struct {
    const char *p;
    size_t n;
} tr_crdt_str_t;

/* A parsed, validated view of one op. Every pointer borrows from the op. */
typedef struct {
    tr_crdt_kind_t kind;
    uint64_t lamport; /* the stamp (lamport, author, seq) and the op's hash */
    uint8_t author[TR_KEY_LEN];
    uint64_t seq;
    uint8_t hash[TR_HASH_LEN];
    tr_crdt_str_t target;
    tr_crdt_str_t s, p, o; /* triple.* (s equals target) */
    tr_crdt_str_t field;   /* field.*, counter.add */
    const uint8_t *value;  /* field.*: one canonical msgpack value */
    size_t value_len;
    const uint8_t *pred; /* field.set: npred hashes; use tr_crdt_pred_at */
    size_t npred;
    int64_t n;          /* counter.add */
    tr_crdt_str_t path; /* file.* (equals target) */
    tr_crdt_str_t from; /* file.rename: the old path */
    bool has_content;   /* file.add/modify/rename: hash and size present */
    uint8_t content_hash[TR_HASH_LEN];
    uint64_t size;
    size_t nkeys; /* state keys touched: 0, 1 or 2 */
} tr_crdt_op_t;

/* Hash i (0 ≤ i < npred) of a field.set's pred, 32 bytes. The pred array is
 * canonical msgpack: each element is bin8 (c4 20) and 32 bytes. */
static inline const uint8_t *tr_crdt_pred_at(const tr_crdt_op_t *v, size_t i)
{
    return v->pred + i * (TR_HASH_LEN + 2) + 2;
}

/* Checks op's kind and body (docs/crdt.md §2) and fills *out. Depends on the
 * op alone. TR_EKIND for an unknown kind, TR_EBODY naming the key for a body
 * of the wrong shape (or a target that does not fit the kind), TR_EIMMUTABLE
 * for an op that sets the computed field "fingerprint". */
int tr_crdt_classify(const tr_op_t *op, tr_crdt_op_t *out, tr_err_t *err) TR_MUST_CHECK;

/* ---- State keys ------------------------------------------------------ */

/* Appends state key i (0 ≤ i < v->nkeys) of the op to `out`. For a
 * file.rename, key 0 is the new path and key 1 the old one. */
int tr_crdt_op_key(const tr_crdt_op_t *v, size_t i, tr_buf_t *out) TR_MUST_CHECK;

/* Append one state key to `out`. */
int tr_crdt_key_triple(tr_crdt_str_t s, tr_crdt_str_t p, tr_crdt_str_t o,
                       tr_buf_t *out) TR_MUST_CHECK;
int tr_crdt_key_field(tr_crdt_str_t entity, tr_crdt_str_t field, tr_buf_t *out) TR_MUST_CHECK;
int tr_crdt_key_counter(tr_crdt_str_t entity, tr_crdt_str_t field, tr_buf_t *out) TR_MUST_CHECK;
int tr_crdt_key_file(tr_crdt_str_t path, tr_buf_t *out) TR_MUST_CHECK;
int tr_crdt_key_entity(tr_crdt_str_t entity, tr_buf_t *out) TR_MUST_CHECK;

/* Appends the prefix shared by every key of namespace `ns` whose first
 * `nparts` components are parts[0..nparts): e.g. (FIELD, {entity}) selects
 * an entity's fields, (TRIPLE, {s, p}) a subject's triples with predicate p.
 * nparts must be less than the namespace's component count. */
int tr_crdt_key_prefix(tr_crdt_ns_t ns, const tr_crdt_str_t *parts, size_t nparts,
                       tr_buf_t *out) TR_MUST_CHECK;

/* A parsed key: its namespace and components (borrowed from the key). */
typedef struct {
    tr_crdt_ns_t ns;
    tr_crdt_str_t part[3];
    size_t nparts;
} tr_crdt_key_t;

/* Parses a state key. TR_ECORRUPT if it is not one. */
int tr_crdt_key_parse(const uint8_t *key, size_t len, tr_crdt_key_t *out,
                      tr_err_t *err) TR_MUST_CHECK;

/* ---- Applying ops ---------------------------------------------------- */

typedef enum {
    TR_CRDT_UNCHANGED = 0,   /* state bytes stay as they are (e.g. a repeat) */
    TR_CRDT_CHANGED,         /* new state in `out` */
    TR_CRDT_REFUSED,         /* the op does not change state: code + reason */
    TR_CRDT_CONFLICT_OPENED, /* new state; a manual_resolution field now
                                has two or more candidates */
    TR_CRDT_CONFLICT_CLOSED, /* new state; back to one candidate */
} tr_crdt_effect_kind_t;

typedef struct {
    tr_crdt_effect_kind_t kind;
    int code;               /* REFUSED: TR_EIMMUTABLE, TR_EKIND, TR_ETOOBIG */
    tr_strategy_t strategy; /* field keys: the strategy that applied */
    char reason[256];       /* REFUSED: one line, e.g. `field "id" is immutable…` */
} tr_crdt_effect_t;

/* True for the effects after which the store must write `out`. */
static inline bool tr_crdt_effect_writes(const tr_crdt_effect_t *e)
{
    return e->kind == TR_CRDT_CHANGED || e->kind == TR_CRDT_CONFLICT_OPENED ||
           e->kind == TR_CRDT_CONFLICT_CLOSED;
}

/* Applies the op to state key i. `old` is the key's current state
 * (old_len bytes) or NULL when the key has none. `st` chooses field
 * strategies (NULL: defaults). `out` is reset and, when the effect writes
 * (tr_crdt_effect_writes), holds the new state. Returns TR_OK (refusals are
 * effects, not errors), TR_ECORRUPT if `old` is not a valid state for the
 * key, TR_EINVAL for bad arguments, TR_ENOMEM. */
int tr_crdt_apply(const tr_crdt_op_t *v, size_t i, const tr_strategies_t *st, const uint8_t *old,
                  size_t old_len, tr_buf_t *out, tr_crdt_effect_t *eff,
                  tr_err_t *err) TR_MUST_CHECK;

/* ---- Reading state --------------------------------------------------- */

/* State tags: the first element of every state (docs/crdt.md §4). */
enum {
    TR_CRDT_S_TRIPLE = 1,   /* [1, add_lamport, remove_lamport] */
    TR_CRDT_S_REG = 2,      /* [2, lamport, author, seq, hash, value] */
    TR_CRDT_S_FIRST = 3,    /* immutable: same layout as REG */
    TR_CRDT_S_MANUAL = 4,   /* [4, seen, candidates] */
    TR_CRDT_S_RESTRICT = 5, /* highest_restriction_wins: same layout as MANUAL */
    TR_CRDT_S_LIST = 6,     /* [6, entries] */
    TR_CRDT_S_SET = 7,      /* [7, [[value, add_lamport, remove_lamport]…]] */
    TR_CRDT_S_COUNTER = 8,  /* [8, max_lamport, [[author, seq, sum]…]] */
};

typedef struct {
    int tag;          /* TR_CRDT_S_… */
    bool present;     /* there is something to show (after the deletion filter) */
    bool conflict;    /* manual_resolution with ≥ 2 visible candidates */
    size_t nvisible;  /* visible entries: candidates, list items, set elements */
    int64_t counter;  /* counters: the sum over authors, saturated */
    bool saturated;   /* the sum left int64 and was clamped */
    uint64_t lamport; /* highest lamport of a visible write (0 if none) */
} tr_crdt_info_t;

/* Materializes one state for display: appends its value to `out` (if
 * non-NULL) and fills `info` (if non-NULL). `tomb_lamport` is the entity's
 * deletion lamport (0 if none; see docs/crdt.md §5): field writes with a
 * lower lamport are hidden. Values:
 *   triple → true/false; register → its value (nil if none);
 *   manual_resolution → the value, or {"$conflict": [values by stamp]};
 *   highest_restriction_wins → the most restrictive candidate's value;
 *   list → [values by stamp]; set → [values by canonical bytes];
 *   counter → the sum (int64, saturated); file → {"hash","size"} or nil.
 * A state with nothing visible gives nil and present = false. */
int tr_crdt_value(const tr_strategies_t *st, const uint8_t *state, size_t len,
                  uint64_t tomb_lamport, tr_buf_t *out, tr_crdt_info_t *info,
                  tr_err_t *err) TR_MUST_CHECK;

/* One write held in a state (borrowed from the state bytes). */
typedef struct {
    uint64_t lamport;
    const uint8_t *author; /* 32 bytes */
    uint64_t seq;
    const uint8_t *hash;  /* 32 bytes: the op */
    const uint8_t *value; /* canonical msgpack */
    size_t value_len;
} tr_crdt_entry_t;

/* The writes a register, multi-value register or list holds, in stamp order
 * (all of them, regardless of deletion): up to `cap` into out[], and the
 * total in *n. Other states hold none (*n = 0). These hashes are the `pred`
 * of the next field.set. */
int tr_crdt_entries(const uint8_t *state, size_t len, tr_crdt_entry_t *out, size_t cap, size_t *n,
                    tr_err_t *err) TR_MUST_CHECK;

/* ---- Building op bodies (canonical; for local writers) --------------- */

/* {"o", "p", "s"} for triple.add / triple.remove. */
int tr_crdt_body_triple(tr_crdt_str_t s, tr_crdt_str_t p, tr_crdt_str_t o,
                        tr_buf_t *out) TR_MUST_CHECK;
/* {"field", "pred", "value"} for field.set; pred = the hashes of every write
 * held in `state` (NULL: a first write), i.e. this write overwrites them. */
int tr_crdt_body_set(tr_crdt_str_t field, const uint8_t *value, size_t value_len,
                     const uint8_t *state, size_t state_len, tr_buf_t *out,
                     tr_err_t *err) TR_MUST_CHECK;
/* {"field", "value"} for field.append / field.add / field.remove. */
int tr_crdt_body_field(tr_crdt_str_t field, const uint8_t *value, size_t value_len,
                       tr_buf_t *out) TR_MUST_CHECK;
/* {"field", "n"} for counter.add. */
int tr_crdt_body_counter(tr_crdt_str_t field, int64_t n, tr_buf_t *out) TR_MUST_CHECK;
/* {"from"?, "hash"?, "path", "size"?}: content_hash NULL for file.delete;
 * from.p non-NULL only for file.rename. */
int tr_crdt_body_file(tr_crdt_str_t path, const uint8_t *content_hash, uint64_t size,
                      tr_crdt_str_t from, tr_buf_t *out) TR_MUST_CHECK;

/* ---- Entities and fingerprints --------------------------------------- */

/* One field of an entity: name and materialized value (canonical msgpack). */
typedef struct {
    tr_crdt_str_t name;
    const uint8_t *value;
    size_t value_len;
} tr_crdt_field_t;

/* The fingerprint: BLAKE2b-256 over the canonical msgpack map
 * {name: value, …} of fields[0..n), which must be sorted bytewise by name
 * and unique (TR_EINVAL otherwise) and must not include "fingerprint". */
int tr_crdt_fingerprint(const tr_crdt_field_t *fields, size_t n, uint8_t out[TR_HASH_LEN],
                        tr_err_t *err) TR_MUST_CHECK;

/* Gathers an entity's visible fields from its ["f", e, *] and ["c", e, *]
 * states in any order, then gives the canonical map and fingerprint. A name
 * held by both a field and a counter shows the field. Reusable: reset per
 * entity; memory is kept between entities. */
typedef struct tr_crdt_entity tr_crdt_entity_t;

int tr_crdt_entity_new(tr_crdt_entity_t **out) TR_MUST_CHECK;
void tr_crdt_entity_destroy(tr_crdt_entity_t **e);
/* Starts a new entity whose deletion lamport is tomb_lamport (0: none). */
void tr_crdt_entity_reset(tr_crdt_entity_t *e, uint64_t tomb_lamport);
/* Adds one state under its key (["f", e, name] or ["c", e, name]). */
int tr_crdt_entity_add(tr_crdt_entity_t *e, const tr_strategies_t *st, const uint8_t *key,
                       size_t key_len, const uint8_t *state, size_t state_len,
                       tr_err_t *err) TR_MUST_CHECK;
/* Appends the canonical {name: value} map to `map` (if non-NULL), writes the
 * fingerprint, and sets *nfields (0: nothing visible — the entity does not
 * exist, and a store drops its fingerprint). */
int tr_crdt_entity_finish(tr_crdt_entity_t *e, tr_buf_t *map, uint8_t fp[TR_HASH_LEN],
                          size_t *nfields, tr_err_t *err) TR_MUST_CHECK;

/* ---- Reconcile (seed 000) -------------------------------------------- */

typedef enum { TR_SIDE_LOCAL = 1, TR_SIDE_REMOTE = 2, TR_SIDE_BOTH = 3 } tr_side_t;

/* A target changed on both sides after the fork point. */
typedef struct {
    const char *reason;   /* "modify/modify", "delete/modify", "add/add",
                             "rename", "manual" or "equivocation" */
    const char *scope;    /* "file", "entity", "triple" or "other" */
    tr_crdt_str_t target; /* a path, entity id or subject (borrowed from an op) */
    tr_crdt_str_t field;  /* the field for "manual" and field "add/add"; else {0} */
    const char *text;     /* one line for people (owned by the result) */
    size_t nlocal;        /* unique ops touching the target on each side */
    size_t nremote;
} tr_conflict_t;

typedef struct tr_reconcile tr_reconcile_t;

/* Reconciles two op sequences of one branch: the ops each side holds after
 * the point where both agree (either may also hold common ops; those are
 * found by hash, and repeats are ignored). Deterministic: the same inputs
 * give the same result, and swapping the sides only swaps the labels.
 * O((n+m) log(n+m)). `st` decides which fields are manual_resolution (NULL:
 * none). Caller owns *out; it borrows local[] and remote[]. */
int tr_reconcile(const tr_op_t *local, size_t nlocal, const tr_op_t *remote, size_t nremote,
                 const tr_strategies_t *st, tr_reconcile_t **out, tr_err_t *err) TR_MUST_CHECK;
void tr_reconcile_destroy(tr_reconcile_t **r);

/* Every distinct op once, ordered by (lamport, author, seq, hash); *side
 * says who holds it. */
size_t tr_reconcile_merged_count(const tr_reconcile_t *r);
const tr_op_t *tr_reconcile_merged(const tr_reconcile_t *r, size_t i, tr_side_t *side);
/* The last common op in that order; false if the sides share none. */
bool tr_reconcile_fork_point(const tr_reconcile_t *r, uint8_t hash[TR_HASH_LEN]);
/* Ops held by one side only (side LOCAL or REMOTE), in merged order. */
size_t tr_reconcile_unique_count(const tr_reconcile_t *r, tr_side_t side);
const tr_op_t *tr_reconcile_unique(const tr_reconcile_t *r, tr_side_t side, size_t i);
/* True iff there are no conflicts. */
bool tr_reconcile_clean(const tr_reconcile_t *r);
/* Conflicts sorted by (scope, target). */
size_t tr_reconcile_conflict_count(const tr_reconcile_t *r);
const tr_conflict_t *tr_reconcile_conflict(const tr_reconcile_t *r, size_t i);

#ifdef __cplusplus
}
#endif
#endif
