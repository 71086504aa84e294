/*
 * tr_store.h — a repository's op log in LMDB.
 *
 * Overview
 *   One LMDB environment per repository (`.trellis/store/`). Ops are appended
 *   in batches, each batch in one write transaction, and are found by hash, by
 *   (branch, author, seq) and in each branch's integration order. Per branch the
 *   store keeps, readable without scanning: the op count, the heads, the highest
 *   lamport, and the version vector (author → highest contiguous seq and the
 *   hash of that op).
 *
 *   Two ways in:
 *     tr_store_write()     — local writes: the store assigns seq, lamport,
 *                            prev and parents inside the write transaction (so
 *                            the CLI and an agent may write at once) and signs
 *                            the last op of the batch and every op whose seq is
 *                            a multiple of TR_OP_SIGN_EVERY;
 *     tr_store_integrate() — records from elsewhere (a peer, another replica):
 *                            every hash recomputed, every signature checked,
 *                            every causal rule enforced; each record is either
 *                            integrated, recognised as a duplicate, or refused
 *                            with a reason.
 *
 *   Layout on disk and the hash index's design are described in
 *   docs/storage.md.
 *
 * Caveats
 *   - Threads: a tr_store_t may be used from one thread at a time. Separate
 *     processes may open the same store concurrently (LMDB's writer lock
 *     serialises writes); tr_store_verify() uses worker threads internally.
 *   - fork(): do not use a store opened before fork() in the child.
 *   - Borrowed data: the tr_op_t and record bytes handed to a tr_visit_fn are
 *     valid only during that call.
 *   - Durability: every successful write/integrate has been fsync'ed before it
 *     returns. On MDB_MAP_FULL the map is grown and the batch retried.
 */
#ifndef TR_STORE_H
#define TR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/tr_error.h"
#include "../core/tr_identity.h"
#include "../core/tr_op.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_store tr_store_t;

#define TR_STORE_RDONLY 0x1u /* open read-only */

/* How a branch integrates ops (from config.json branchPolicies). */
typedef struct {
    bool linear;          /* ops must extend the single head */
    bool require_signing; /* unsigned, uncovered ops are refused */
} tr_branch_policy_t;

/* Policy lookup for a branch name. Must be pure and fast. */
typedef void (*tr_policy_fn)(void *arg, const char *branch, size_t len,
                             tr_branch_policy_t *out);

/* Creates a new, empty store in directory `dir` (created if missing, mode
 * 0700) for repository `repo_id`. TR_EEXIST if a store is already there.
 * Caller owns *out. */
int tr_store_create(const char *dir, const uint8_t repo_id[TR_REPO_ID_LEN], tr_store_t **out,
                    tr_err_t *err) TR_MUST_CHECK;

/* Opens an existing store. TR_ENOTREPO if `dir` holds none, TR_EVERSION if its
 * format is newer than this build's. Caller owns *out. */
int tr_store_open(const char *dir, unsigned flags, tr_store_t **out,
                  tr_err_t *err) TR_MUST_CHECK;

/* NULL-safe; closes the environment and sets *s to NULL. */
void tr_store_destroy(tr_store_t **s);

/* Sets the branch policy lookup. Without one, every branch is
 * {linear=false, require_signing=true}. */
void tr_store_set_policy(tr_store_t *s, tr_policy_fn fn, void *arg);

/* The repository id (borrowed, 16 bytes). */
const uint8_t *tr_store_repo_id(const tr_store_t *s);

/* ---- Writing -------------------------------------------------------- */

/* What a local writer supplies for one op; the store fills in the rest. */
typedef struct {
    const char *kind;
    size_t kind_len;
    const char *target;
    size_t target_len;
    const uint8_t *body; /* one canonical msgpack value */
    size_t body_len;
} tr_op_spec_t;

/* Appends n ops by identity `id` to `branch` in one durable transaction.
 * Op i gets seq = tip+1+i, prev = the author's previous op, lamport = branch
 * max + 1 (+i), parents = the current heads (for op 0; at most 16, highest
 * lamport first) or the op just before it in the batch.
 * On a linear branch a writer always extends the single head.
 * If hashes is non-NULL, hashes[i] receives op i's hash.
 * All or nothing: on failure nothing is written. */
int tr_store_write(tr_store_t *s, const char *branch, const tr_op_spec_t *specs, size_t n,
                   const tr_identity_t *id, uint64_t wall_ms, uint8_t (*hashes)[TR_HASH_LEN],
                   tr_err_t *err) TR_MUST_CHECK;

/* tr_rec_t, TR_INTEGRATED and TR_DUPLICATE are declared in core/tr_op.h. */

/* Called for each refused record, in order, with the op's hash (NULL if the
 * record did not decode), the code and a one-line reason. */
typedef void (*tr_refuse_fn)(void *arg, size_t index, const uint8_t *hash, int code,
                             const char *reason);

/* Integrates records from elsewhere in one durable transaction, in the order
 * given (which must be causal: parents and an author's earlier ops first; the
 * ops of one batch may depend on each other). For each record:
 *   - decode (canonical, limits) and recompute the hash;
 *   - repo id must be this store's (TR_EREPO);
 *   - already present → TR_DUPLICATE; same (branch, author, seq) with another
 *     hash → TR_EEQUIVOCATION;
 *   - seq must be the author's tip + 1 (TR_ESEQ) and prev its hash (TR_EPREV);
 *   - every parent known on the same branch (TR_EPARENT); on a linear branch
 *     parents must be exactly the current head (TR_EDIVERGED);
 *   - lamport greater than every parent's and prev's (TR_ELAMPORT);
 *   - a carried signature must verify (TR_ESIG); under require_signing an
 *     unsigned op must be covered, within the batch, by a later validly signed
 *     op of its author reached through prev links (TR_EUNSIGNED).
 * Refused records are reported through `refuse` and skipped; the others are
 * integrated. status[i] (if non-NULL) receives TR_INTEGRATED, TR_DUPLICATE or
 * the refusal code. Returns TR_OK unless the store itself failed (then nothing
 * was written). */
int tr_store_integrate(tr_store_t *s, const tr_rec_t *recs, size_t n, int *status,
                       tr_refuse_fn refuse, void *arg, tr_err_t *err) TR_MUST_CHECK;

/* ---- Reading -------------------------------------------------------- */

#define TR_BRANCH_HEADS_MAX 64

typedef struct {
    uint64_t count;   /* ops on the branch */
    uint64_t lamport; /* highest lamport on the branch */
    size_t nheads;    /* number of heads (may exceed TR_BRANCH_HEADS_MAX) */
    uint8_t heads[TR_BRANCH_HEADS_MAX][TR_HASH_LEN]; /* first min(nheads,64), sorted */
} tr_branch_info_t;

/* Info on one branch. TR_ENOTFOUND if the branch has no ops. */
int tr_store_branch(tr_store_t *s, const char *branch, tr_branch_info_t *out, tr_err_t *err);

/* Calls fn for each branch in name order; fn returning non-zero stops. */
typedef int (*tr_branch_fn)(void *arg, const char *name, const tr_branch_info_t *info);
int tr_store_branches(tr_store_t *s, tr_branch_fn fn, void *arg, tr_err_t *err);

/* Total ops over all branches (O(1)). */
int tr_store_count(tr_store_t *s, uint64_t *count, tr_err_t *err);

/* Version vector of a branch: fn per author in key order. */
typedef int (*tr_vv_fn)(void *arg, const uint8_t author[TR_KEY_LEN], uint64_t seq,
                        const uint8_t hash[TR_HASH_LEN]);
int tr_store_vv(tr_store_t *s, const char *branch, tr_vv_fn fn, void *arg, tr_err_t *err);

/* Copies the record of op `hash` into rec (reset first). If branch/pos are
 * non-NULL they receive the op's branch name (NUL-terminated, ≤255 bytes) and
 * its 1-based position in the branch's integration order. */
int tr_store_get(tr_store_t *s, const uint8_t hash[TR_HASH_LEN], tr_buf_t *rec,
                 char branch[TR_BRANCH_MAX + 1], uint64_t *pos, tr_err_t *err);

/* Copies the record of (branch, author, seq). */
int tr_store_get_seq(tr_store_t *s, const char *branch, const uint8_t author[TR_KEY_LEN],
                     uint64_t seq, tr_buf_t *rec, tr_err_t *err);

/* Resolves a hex prefix (at least 4 digits) to a full hash. TR_ENOTFOUND, or
 * TR_EINVAL if it is ambiguous or not hex. */
int tr_store_resolve(tr_store_t *s, const char *hex, uint8_t hash[TR_HASH_LEN], tr_err_t *err);

/* Visits ops of a branch in integration order within one read transaction.
 * The op is decoded and its hash set; rec/len are its record bytes; pos its
 * 1-based position. Return non-zero from fn to stop (that value is returned). */
typedef int (*tr_visit_fn)(void *arg, const tr_op_t *op, const uint8_t *rec, size_t len,
                           uint64_t pos);

/* Ascending from position after+1 (after = 0: from the start). */
int tr_store_iter(tr_store_t *s, const char *branch, uint64_t after, tr_visit_fn fn, void *arg,
                  tr_err_t *err);

/* Descending from the newest op, at most `limit` ops (0 = all). */
int tr_store_iter_rev(tr_store_t *s, const char *branch, uint64_t limit, tr_visit_fn fn,
                      void *arg, tr_err_t *err);

/* ---- Checking -------------------------------------------------------- */

typedef struct {
    uint64_t ops;        /* ops checked */
    uint64_t signatures; /* signatures verified */
    uint64_t bad;        /* ops reported */
} tr_verify_stats_t;

/* Called for each bad op found by tr_store_verify. */
typedef void (*tr_verify_fn)(void *arg, const char *branch, uint64_t pos,
                             const uint8_t hash[TR_HASH_LEN], int code, const char *reason);

/* Re-checks the whole store in one read snapshot: every record decodes, its
 * hash matches and is indexed, seq/prev chains are unbroken, parents are known
 * and earlier, lamports increase, every signature verifies, and (on branches
 * that require signing) every op is covered by a signature. Uses `threads`
 * worker threads for hashing and signatures (0 = number of CPUs). Memory does
 * not grow with the log. Returns TR_OK if it could check (even when bad ops
 * were found; see stats->bad). */
int tr_store_verify(tr_store_t *s, unsigned threads, tr_verify_fn report, void *arg,
                    tr_verify_stats_t *stats, tr_err_t *err);

/* ---- Sync cursors (store/cursor.c) -----------------------------------
 *
 * What a peer lacks of a branch, read in bounded slices for streaming
 * (docs/protocol.md §3.4). A cursor keeps positions only between calls —
 * never an LMDB transaction — so a slow peer pins no old pages; each
 * tr_store_cursor_next runs in one read snapshot. A cursor covers what the
 * branch held when it was opened (a causally closed snapshot); ops that
 * arrive later are for the peer's next request. Memory is O(authors ahead
 * of the peer) plus the records of the last call, never O(history).
 *
 * Caveats
 *   - A cursor does not hold its store: pass the store it was opened on to
 *     every tr_store_cursor_next (another repository's store is refused with
 *     TR_EINVAL). Destroying the store first is fine; the cursor is then
 *     only good for tr_store_cursor_destroy.
 *   - The ops returned by tr_store_cursor_next (decoded, hashes set) and the
 *     bytes they point into belong to the cursor and stay valid until its
 *     next call or its destruction.
 */
typedef struct tr_store_cursor tr_store_cursor_t;

/* The highest seq of `author` that the peer already holds on the branch
 * (0: none). */
typedef uint64_t (*tr_seq_fn)(void *arg, const uint8_t author[TR_KEY_LEN]);

/* Linear branches: the ops after op `after` in integration order (after =
 * NULL: from the first). TR_EDIVERGED if `after` is not an op of `branch`
 * in this store. A branch without ops gives an empty cursor (after = NULL).
 * Caller owns *out. */
int tr_store_cursor_linear(tr_store_t *s, const char *branch, const uint8_t *after,
                           tr_store_cursor_t **out, tr_err_t *err) TR_MUST_CHECK;

/* CRDT branches: every op of `branch` whose seq exceeds from(arg, author),
 * in (lamport, author, seq) order — a causal order. `from` is called once
 * per author of the branch, during this call only. Caller owns *out. */
int tr_store_cursor_vv(tr_store_t *s, const char *branch, tr_seq_fn from, void *arg,
                       tr_store_cursor_t **out, tr_err_t *err) TR_MUST_CHECK;

/* The next ops: at most max_ops (0 counts as 1) whose records total at most
 * max_bytes, but at least one op while any remain. *ops receives n pointers
 * (see Caveats); *done is set when nothing follows them. TR_ECORRUPT if a
 * stored record does not match its index or hash. */
int tr_store_cursor_next(tr_store_t *s, tr_store_cursor_t *c, size_t max_ops, size_t max_bytes,
                         const tr_op_t *const **ops, size_t *n, bool *done,
                         tr_err_t *err) TR_MUST_CHECK;

/* NULL-safe; sets *c to NULL. */
void tr_store_cursor_destroy(tr_store_cursor_t **c);

/* The policy the store applies to `branch` (tr_store_set_policy's lookup,
 * or the default): what a sync host needs to choose a cursor. */
void tr_store_policy(const tr_store_t *s, const char *branch, tr_branch_policy_t *out);


/* ---- Materialized state (store/state.c, rebuild.c, merge.c) ----------
 *
 * Every op that enters a branch's log — through tr_store_write or
 * tr_store_integrate, on linear and CRDT branches alike — is materialized
 * in the same write transaction by the rules of docs/crdt.md: classified,
 * applied to the states of the keys it touches, and the triple indexes,
 * the open-conflict index and the fingerprints of the entities it changed
 * are updated. Which ops are refused, stored without being materialized,
 * or journaled is in docs/storage.md §9. States are per branch.
 *
 * The state depends on the field strategies (tr_store_set_strategies; the
 * repository installs config.json's). The store keeps their digest next to
 * the state; a process whose strategies differ cannot materialize (its
 * writes and integrations of materializable ops fail with TR_ECONFIG,
 * saying to run `trellis rebuild`) until tr_store_rebuild rebuilt the
 * state with its strategies.
 *
 * Caveats
 *   - Readers take one read snapshot per call; callbacks get pointers into
 *     it that are valid during the call only.
 *   - Branch ids are local: two replicas with the same ops hold the same
 *     state bytes per branch, under whatever id each gave the branch.
 */
#include "../core/tr_crdt.h"

/* The field strategies to materialize with (borrowed: must outlive the
 * store or be replaced). NULL means the defaults. */
void tr_store_set_strategies(tr_store_t *s, const tr_strategies_t *st);
const tr_strategies_t *tr_store_strategies(const tr_store_t *s);

typedef enum {
    TR_STATE_READY = 0, /* built with this store's strategies (or nothing to build) */
    TR_STATE_STALE,     /* built with other strategies: rebuild */
    TR_STATE_UNBUILT,   /* never built (a store an older build made), or a
                           rebuild did not finish: rebuild */
} tr_state_status_t;

/* Where the state stands for this store's strategies. */
int tr_store_state_status(tr_store_t *s, tr_state_status_t *out, tr_err_t *err) TR_MUST_CHECK;

/* tr_store_write with flags:
 *   TR_WRITE_STRICT  refuse the batch (nothing written) if an op would not
 *                    be materialized: a body of the wrong shape
 *                    (TR_EBODY), an unknown kind (TR_EKIND; app.* is
 *                    fine), a refused effect (TR_EIMMUTABLE, TR_EKIND,
 *                    TR_ETOOBIG) — applied with the lamport the op gets,
 *                    inside the transaction — or a state that is not
 *                    ready (TR_ECONFIG). The reason is the materializer's.
 *   TR_WRITE_PRED    field.set: the store sets the body's "pred" to the
 *                    writes the field's state holds inside the write
 *                    transaction (tr_crdt_body_set), so the write
 *                    overwrites exactly what is there when it lands. */
#define TR_WRITE_STRICT 0x1u
#define TR_WRITE_PRED 0x2u
int tr_store_write_ex(tr_store_t *s, const char *branch, const tr_op_spec_t *specs, size_t n,
                      const tr_identity_t *id, uint64_t wall_ms, unsigned flags,
                      uint8_t (*hashes)[TR_HASH_LEN], tr_err_t *err) TR_MUST_CHECK;

typedef struct {
    uint64_t ops;       /* ops replayed from the log */
    uint64_t refused;   /* of those, journaled as not materialized */
    uint64_t states;    /* state keys */
    uint64_t entities;  /* entities with a fingerprint */
    uint64_t conflicts; /* open conflicts */
    uint64_t txns;      /* write transactions it took */
} tr_rebuild_stats_t;

/* Recomputes every state table from the log with this store's strategies:
 * empties them, replays each branch in integration order (in transactions
 * of at most 100,000 ops, resumable: a rebuild that was interrupted is
 * finished by the next one) and records the strategies' digest. The result
 * is byte-identical to incremental materialization. Writers running
 * meanwhile only append; the rebuild materializes their ops too. */
int tr_store_rebuild(tr_store_t *s, tr_rebuild_stats_t *stats, tr_err_t *err) TR_MUST_CHECK;

/* The state of one key (a tr_crdt_key_* key) on `branch`, copied into
 * `out` (reset first). TR_ENOTFOUND if the key has none. */
int tr_store_state_get(tr_store_t *s, const char *branch, const uint8_t *key, size_t len,
                       tr_buf_t *out, tr_err_t *err) TR_MUST_CHECK;

/* Calls fn for each state of `branch` whose key starts with prefix[0..plen)
 * (a tr_crdt_key_prefix), in key order except that keys longer than 474
 * bytes sort by their first 475 bytes. fn returning non-zero stops (and
 * that value is returned). */
typedef int (*tr_state_fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *state,
                           size_t slen);
int tr_store_state_scan(tr_store_t *s, const char *branch, const uint8_t *prefix, size_t plen,
                        tr_state_fn fn, void *arg, tr_err_t *err);

/* The stored fingerprint of entity[0..len) on `branch`. TR_ENOTFOUND if
 * the entity has no visible field (it does not exist). */
int tr_store_fingerprint(tr_store_t *s, const char *branch, const char *entity, size_t len,
                         uint8_t fp[TR_HASH_LEN], tr_err_t *err);

/* Present triples of `branch` matching the filters (p == NULL: any),
 * through an index: by subject (and predicate) from the state, by
 * predicate alone from [p, o, s], by object from [o, s, p]. */
typedef int (*tr_triple_fn)(void *arg, tr_crdt_str_t s, tr_crdt_str_t p, tr_crdt_str_t o);
int tr_store_triples(tr_store_t *s, const char *branch, tr_crdt_str_t subj, tr_crdt_str_t pred,
                     tr_crdt_str_t obj, tr_triple_fn fn, void *arg, tr_err_t *err);

/* Open conflicts (manual_resolution fields with two or more candidates),
 * from their index: of `branch`, or of every branch (NULL) in branch-id
 * order. The key is the field's ["f", entity, field]. */
typedef int (*tr_conflict_fn)(void *arg, const char *branch, const uint8_t *key, size_t klen,
                              const uint8_t *state, size_t slen);
int tr_store_conflicts(tr_store_t *s, const char *branch, tr_conflict_fn fn, void *arg,
                       tr_err_t *err);

/* The journal of ops that are in the log but were not materialized (a body
 * of the wrong shape, or a refused effect), of `branch` or all (NULL), in
 * log order, and its size. Local: another replica may refuse other ops
 * (e.g. which of two immutable writes comes second depends on the order). */
typedef int (*tr_refused_fn)(void *arg, const char *branch, uint64_t pos,
                             const uint8_t hash[TR_HASH_LEN], int code, const char *reason);
int tr_store_refused(tr_store_t *s, const char *branch, tr_refused_fn fn, void *arg,
                     tr_err_t *err);
int tr_store_refused_count(tr_store_t *s, uint64_t *n, tr_err_t *err);

/* ---- Reconciling two replicas (store/merge.c) ---- */

typedef enum {
    TR_RECON_SAME = 0,     /* both hold the same ops */
    TR_RECON_LOCAL_AHEAD,  /* only the local side has ops the other lacks */
    TR_RECON_REMOTE_AHEAD, /* only the remote side has: integrated (a
                              fast-forward on a linear branch) */
    TR_RECON_MERGED,       /* CRDT branch, both sides have unique ops: the
                              remote's were integrated */
    TR_RECON_DIVERGED,     /* linear branch, both sides have unique ops:
                              reported, nothing integrated */
} tr_recon_status_t;

typedef struct {
    char branch[TR_BRANCH_MAX + 1];
    tr_recon_status_t status;
    bool linear;                   /* the local policy of the branch */
    bool has_fork;                 /* fork: the last op both hold */
    uint8_t fork[TR_HASH_LEN];
    uint64_t unique_local, unique_remote;
    uint64_t integrated, duplicates, refused; /* of the remote's unique ops */
    const tr_reconcile_t *rec;     /* tr_reconcile over both suffixes
                                      (merged order, conflicts); owned */
    struct tr_recon_priv *priv;
} tr_store_recon_t;

/* Reconciles `branch` of two stores of one repository (TR_EREPO
 * otherwise): each side's ops beyond the other's version vector are read
 * through tr_store_cursor_vv — cost and memory follow the divergence, not
 * the history — and compared with tr_reconcile (plus each author's last
 * common op, for the fork point). Unless dry_run, the remote's unique ops
 * are then integrated into `local` with tr_store_integrate (every rule
 * applies; refusals go to `refuse`), except on a linear branch where both
 * sides diverged. Caller owns *out. */
int tr_store_reconcile(tr_store_t *local, tr_store_t *remote, const char *branch, bool dry_run,
                       tr_refuse_fn refuse, void *arg, tr_store_recon_t **out,
                       tr_err_t *err) TR_MUST_CHECK;
void tr_store_recon_destroy(tr_store_recon_t **r);

#ifdef __cplusplus
}
#endif
#endif
