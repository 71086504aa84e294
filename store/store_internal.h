/*
 * store_internal.h — private parts of the store (not installed).
 *
 * Overview
 *   The store is split by job:
 *     store.c     environment, create/open, error mapping, transaction runners
 *     apply.c     the write-transaction state shared by write and integrate,
 *                 and store_apply(), the one place an op enters the log
 *     write.c     tr_store_write
 *     integrate.c tr_store_integrate
 *     hashidx.c   the hash index (sorted runs, LSM-merged), lookup, prefix search
 *     read.c      the read functions
 *     verify.c    tr_store_verify: the snapshot walk and its worker threads
 *     verify_check.c  the checks that need the log's order (verify_internal.h)
 *     state.c     the materializer: CRDT state, its indexes and fingerprints,
 *                 maintained by store_apply (docs/storage.md §9)
 *     rebuild.c   tr_store_rebuild and the state readers
 *     merge.c     tr_store_reconcile: two replicas' divergent suffixes
 *   The on-disk layout is described in docs/storage.md; the key and value
 *   layouts below are its source of truth.
 *
 * Caveats
 *   - Integers in keys are big-endian so that LMDB's bytewise order is the
 *     numeric order; values use big-endian too, for one set of helpers.
 *   - Everything read from disk is length-checked; a wrong length is
 *     TR_ECORRUPT, never an assert.
 */
#ifndef TR_STORE_INTERNAL_H
#define TR_STORE_INTERNAL_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tr_crdt.h"
#include "tr_hmap.h"
#include "tr_store.h"

#define STORE_FORMAT 1u            /* on-disk format version in meta */
#define STORE_MAXDBS 16
#define STORE_MAP_INIT ((size_t)64 << 20)

/* Key and value sizes (bytes). */
#define LOG_KEY 12                          /* branch_id u32, pos u64 */
#define SEQ_KEY (4 + TR_KEY_LEN + 8)        /* branch_id, author, seq */
#define VV_KEY (4 + TR_KEY_LEN)             /* branch_id, author */
#define VV_VAL (8 + 8 + 8 + TR_HASH_LEN)    /* seq, lamport, pos, hash */
#define HEAD_KEY (4 + TR_HASH_LEN)          /* branch_id, hash */
#define BREC_LEN (4 + 8 + 8 + 8)            /* id u32, count, lamport, nheads u64 */
#define LOC_LEN 12                          /* branch_id u32, pos u64 */
#define HENT_LEN (TR_HASH_LEN + LOC_LEN)    /* one hash-index run entry */
#define RUN_KEY 9                           /* tier u8, run id u64 */

/* Hash index shape (docs/storage.md §Hash index). */
#define HIDX_FANIN 4u        /* a run of n entries has tier ⌊log₄ n⌋; 4 runs of a
                                tier are merged into one of a higher tier */
#define HIDX_TIERS 16u
#define HIDX_META_LEN (8 + 4 * HIDX_TIERS) /* next run id, runs per tier */

/* Internal result: MDB_MAP_FULL met inside a write body; the runner grows
 * the map and replays the body. Never returned to callers. */
#define STORE_EMAPFULL (-1000)
/* Internal result: the body changed its inputs (refused more records) and
 * must run again in a fresh transaction. Never returned to callers. */
#define STORE_EREPLAY (-1001)

enum {
    DBI_META,
    DBI_BRANCHES,
    DBI_BNAMES,
    DBI_LOG,
    DBI_SEQ,
    DBI_VV,
    DBI_HEADS,
    DBI_HRUNS,
    DBI_N
};

/* The materializer's tables (state.c), opened next to the log's. */
enum {
    SDBI_STATE,     /* bid ‖ state key → state (docs/crdt.md §4) */
    SDBI_TPOS,      /* bid ‖ [p, o, s] → ∅: present triples by predicate */
    SDBI_TOSP,      /* bid ‖ [o, s, p] → ∅: present triples by object */
    SDBI_CONFLICTS, /* bid ‖ ["f", e, f] → ∅: manual fields with ≥ 2 candidates */
    SDBI_ENTITIES,  /* bid ‖ ["d", e] → fingerprint: entities with a visible field */
    SDBI_REFUSED,   /* bid u32, pos u64 → code i32, hash, reason: ops not materialized */
    SDBI_N
};

/* Keys of the state tables: bid u32 then a canonical msgpack key. LMDB keys
 * are at most 511 bytes; a longer one is stored as bid ‖ its first
 * SKEY_PREFIX bytes ‖ BLAKE2b-256 of all of it (exactly SKEY_LONG bytes, a
 * length no short key has), and its value starts with the whole key. */
#define SKEY_SHORT 474                              /* longest key kept as is */
#define SKEY_PREFIX 475                             /* bytes a long key keeps */
#define SKEY_LONG (4 + SKEY_PREFIX + TR_HASH_LEN)   /* = 511 */

struct tr_store {
    MDB_env *env;
    MDB_dbi dbi[DBI_N];
    MDB_dbi sdbi[SDBI_N];
    bool state_tables; /* false: a read-only store an older build made */
    const tr_strategies_t *strategies; /* borrowed; NULL = defaults */
    uint8_t repo[TR_REPO_ID_LEN];
    unsigned flags;
    tr_policy_fn policy;
    void *policy_arg;
    MDB_txn *rtxn;  /* cached read txn: reset between calls, renewed on use */
    int rdepth;     /* nesting of read calls (callbacks may read again) */
    bool rlive;     /* rtxn currently renewed */
};

/* ---- byte helpers ----------------------------------------------------- */

static inline void be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void be64_put(uint8_t *p, uint64_t v)
{
    be32_put(p, (uint32_t)(v >> 32));
    be32_put(p + 4, (uint32_t)v);
}

static inline uint64_t be64_get(const uint8_t *p)
{
    return (uint64_t)be32_get(p) << 32 | be32_get(p + 4);
}

static inline void log_key(uint8_t k[LOG_KEY], uint32_t bid, uint64_t pos)
{
    be32_put(k, bid);
    be64_put(k + 4, pos);
}

static inline void seq_key(uint8_t k[SEQ_KEY], uint32_t bid, const uint8_t *author, uint64_t seq)
{
    be32_put(k, bid);
    for (int i = 0; i < TR_KEY_LEN; i++) k[4 + i] = author[i];
    be64_put(k + 4 + TR_KEY_LEN, seq);
}

/* Decoded `branches` record. */
typedef struct {
    uint32_t id;
    uint64_t count;
    uint64_t lamport;
    uint64_t nheads;
} brec_t;

void brec_pack(uint8_t out[BREC_LEN], const brec_t *b);

/* ---- store.c ------------------------------------------------------------ */

/* Maps an LMDB (or errno) code to a TR_E… code and fills err with
 * "<what>: <mdb_strerror>". MDB_MAP_FULL becomes STORE_EMAPFULL. */
int store_mdb_err(tr_err_t *err, int rc, const char *what);

/* Begins (or joins, when nested) the store's cached read transaction. */
int store_read_begin(tr_store_t *s, MDB_txn **txn, tr_err_t *err);
/* Ends one level of store_read_begin; the outermost resets the txn. */
void store_read_end(tr_store_t *s);

/* A write body: does its work in txn; returns TR_OK to commit, or a code
 * (STORE_EMAPFULL to have the runner grow the map and call it again). It
 * must be replayable: all state it keeps between calls is reset by it. */
typedef int (*store_body_fn)(void *ctx, MDB_txn *txn, tr_err_t *err);

/* Runs body in a write transaction and commits durably, growing the map
 * and replaying on MDB_MAP_FULL, replaying on STORE_EREPLAY, adopting a
 * larger map on MDB_MAP_RESIZED. */
int store_write_txn(tr_store_t *s, store_body_fn body, void *ctx, tr_err_t *err);

/* The branch policy for a name (default: CRDT, signing required). */
void store_policy(const tr_store_t *s, const char *branch, size_t len, tr_branch_policy_t *out);

/* Reads the `branches` record of `name`; TR_ENOTFOUND if absent. */
int store_branch_get(const tr_store_t *s, MDB_txn *txn, const char *name, size_t len, brec_t *out,
                     tr_err_t *err);

/* Reads a u64 stored under a meta key (0 if absent). */
int store_meta_u64(const tr_store_t *s, MDB_txn *txn, const char *key, uint64_t *v, tr_err_t *err);

/* Reads the lamport field of a well-formed record without a full decode. */
int store_rec_lamport(const uint8_t *rec, size_t len, uint64_t *lamport);

/* Formats "k3xq-7m2a-…" for an author (out: 24 bytes). */
void store_author_short(char out[24], const uint8_t author[TR_KEY_LEN]);

/* Test hook: the map size new environments start with (0 = default). */
void store_test_set_initial_mapsize(size_t bytes);

/* ---- hashidx.c --------------------------------------------------------- */

/* Location of an op: its branch id and position. */
typedef struct {
    uint32_t bid;
    uint64_t pos;
} loc_t;

/* Looks a full hash up in every run, largest tier first. TR_OK,
 * TR_ENOTFOUND or an error (TR_ECORRUPT for a malformed run). Ops written
 * by the current write txn are not in the index yet (see wtx_t.batch). */
int hidx_find(const tr_store_t *s, MDB_txn *txn, const uint8_t hash[TR_HASH_LEN], loc_t *out,
              tr_err_t *err);

/* End-of-write-txn maintenance: merges one full tier (runs committed by
 * earlier txns only), then adds `fresh` (n unsorted {hash, loc} entries of
 * HENT_LEN bytes: the ops of this txn) as one sorted run. */
int hidx_maintain(const tr_store_t *s, MDB_txn *txn, const uint8_t *fresh, size_t n,
                  tr_err_t *err);

/* Finds up to 2 distinct hashes starting with the first `nibbles` hex
 * digits in prefix (nibble-packed, high nibble first). *found receives how
 * many (0, 1, or 2 meaning "ambiguous"); hash receives the first one. */
int hidx_prefix(const tr_store_t *s, MDB_txn *txn, const uint8_t *prefix, size_t nibbles,
                uint8_t hash[TR_HASH_LEN], int *found, tr_err_t *err);

/* A read-only view of the whole index for one read snapshot: pointers to
 * each run in the map. Lookups on it make no LMDB calls, so worker threads
 * may share it while the snapshot's txn lives. */
typedef struct {
    const uint8_t *base;
    size_t n;
    uint8_t tier;
} hrun_t;

typedef struct {
    hrun_t *runs; /* largest tier first */
    size_t nruns;
    uint64_t entries;
} hsnap_t;

/* Builds the view; runs whose size is not a multiple of HENT_LEN are
 * reported as TR_ECORRUPT. */
int hsnap_open(const tr_store_t *s, MDB_txn *txn, hsnap_t *snap, tr_err_t *err);
void hsnap_close(hsnap_t *snap);
/* TR_OK with loc, or TR_ENOTFOUND. */
int hsnap_find(const hsnap_t *snap, const uint8_t hash[TR_HASH_LEN], loc_t *out);
/* Index of an exact match in a sorted run, or -1. */
long hrun_find(const uint8_t *base, size_t n, const uint8_t hash[TR_HASH_LEN]);

/* ---- apply.c ---------------------------------------------------------- */

/* An author's tip on a branch within a write txn (the `vv` value), plus
 * scratch space integrate uses for signature coverage. */
typedef struct {
    bool loaded; /* tip read from `vv` in this attempt */
    bool dirty;  /* tip changed; written back at the end */
    uint64_t seq, lamport, pos;
    uint8_t hash[TR_HASH_LEN];
    bool has_expect; /* coverage scan: a later signed op vouches for `expect` */
    uint8_t expect[TR_HASH_LEN];
} wauthor_t;

/* One branch touched by a write txn. Names and policies live across
 * attempts; everything read from the store is reset by wtx_reset. */
typedef struct {
    char name[TR_BRANCH_MAX + 1];
    size_t len;
    tr_branch_policy_t pol;
    tr_hmap_t authors; /* author → wauthor_t */
    /* per attempt: */
    bool loaded;
    bool exists;    /* has an id (from disk, or assigned in this txn) */
    bool dirty;
    bool log_append; /* MDB_APPEND may still succeed for this branch's log */
    brec_t rec;      /* count, lamport, nheads as the txn goes */
    tr_hmap_t added;    /* heads added by this txn: hash → lamport u64 */
} wbranch_t;

/* An op integrated earlier in the same txn: for parent lookups. */
typedef struct {
    uint32_t slot;
    uint64_t pos;
    uint64_t lamport;
} wbatch_t;

typedef struct {
    tr_store_t *s;
    MDB_txn *txn;
    MDB_cursor *c_log, *c_seq;
    wbranch_t *br;
    size_t nbr, capbr;
    tr_hmap_t batch;       /* hash → wbatch_t, if track_batch */
    bool track_batch;      /* integrate looks parents up in it; write does not */
    uint8_t *fresh;        /* {hash, loc} of each op applied: the new index run */
    size_t nfresh, capfresh;
    uint64_t total;        /* meta count */
    uint64_t total0;       /* meta count when the attempt began */
    unsigned wflags;       /* TR_WRITE_* (tr_store_write_ex) */
    struct state_tx *st;   /* the materializer's per-txn state (state.c) */
    uint64_t next_branch;  /* meta next_branch */
    bool meta_dirty;
    bool seq_append;       /* MDB_APPEND may still succeed on `seq` */
} wtx_t;

void wtx_init(wtx_t *w, tr_store_t *s);
void wtx_free(wtx_t *w);
/* Slot for a branch name (created with its policy if new). -1 on ENOMEM. */
long wtx_slot(wtx_t *w, const char *name, size_t len);
/* Starts an attempt in txn: forgets everything read in a previous attempt. */
int wtx_begin(wtx_t *w, MDB_txn *txn, tr_err_t *err);
/* Loads a branch's record (if not yet in this attempt). */
int wtx_load_branch(wtx_t *w, wbranch_t *b, tr_err_t *err);
/* The author's tip on b, loaded from `vv` on first use in this attempt. */
int wtx_author(wtx_t *w, wbranch_t *b, const uint8_t author[TR_KEY_LEN], wauthor_t **out,
               tr_err_t *err);
/* Is `hash` a head of b (from disk or added in this txn)? Sets *lamport. */
int wtx_head(wtx_t *w, wbranch_t *b, const uint8_t hash[TR_HASH_LEN], bool *is_head,
             uint64_t *lamport, tr_err_t *err);
/* The one way an op enters the log: appends it to b at the next position
 * and updates seq, hash index, tip `a` (from wtx_author), heads, counts and
 * (if w->track_batch) the batch table. The caller has checked every rule.
 * rec is the op's record bytes. */
int store_apply(wtx_t *w, wbranch_t *b, wauthor_t *a, const tr_op_t *op, const uint8_t *rec,
                size_t len, tr_err_t *err);
/* Writes per-branch state and meta, then runs index maintenance. */
int wtx_finish(wtx_t *w, tr_err_t *err);

/* ---- state.c: the materializer (docs/storage.md §9) ------------------- */

/* Opens the state tables in txn (creating them if `create`). TR_ENOTFOUND
 * if they do not exist and create is false. */
int state_dbis_open(tr_store_t *s, MDB_txn *txn, bool create, tr_err_t *err);

/* Per attempt (from wtx_begin): reads the state's digest and decides
 * whether this txn materializes, only appends (state not built), or must
 * refuse materializable ops (state built with other strategies). */
int state_begin(wtx_t *w, tr_err_t *err);
/* Frees the per-txn state (from wtx_free). */
void state_free(wtx_t *w);

/* Before store_apply: classifies op, checks a field.set's pred (each hash a
 * known op of this branch), and computes its new states. `b` is the op's
 * branch (NULL: no pred check, e.g. a rebuild); `bid` its id, 0 for a branch
 * this txn has not created yet. *refuse receives 0, or a code with `why`
 * when the record must not enter the log (an unknown pred; under
 * TR_WRITE_STRICT anything the materializer would not materialize). A
 * returned error is a store failure (or TR_ECONFIG: stale state). */
int state_prepare(wtx_t *w, wbranch_t *b, uint32_t bid, const tr_op_t *op, int *refuse,
                  char *why, size_t whylen, tr_err_t *err);
/* From store_apply, once op is position `pos` of branch `bid`: writes what
 * state_prepare computed (preparing first if it was not called). */
int state_commit(wtx_t *w, uint32_t bid, const tr_op_t *op, uint64_t pos, tr_err_t *err);
/* End of the txn (from wtx_finish): fingerprints of the entities changed. */
int state_finish(wtx_t *w, tr_err_t *err);

/* TR_WRITE_PRED: for a field.set spec, appends to `body` the spec's body
 * with "pred" set to the writes the field's state holds now, and points
 * op->body at it. Other kinds are left alone. */
int state_fill_pred(wtx_t *w, uint32_t bid, tr_op_t *op, tr_buf_t *body, tr_err_t *err);

/* Rebuild plumbing (rebuild.c): materialize as if the state were built. */
void state_force(wtx_t *w);
/* Test hook: rebuild in transactions of chunk_ops ops (0: the default),
 * and stop with TR_EBUSY after stop_after transactions (0: never). */
void store_test_rebuild(uint64_t chunk_ops, unsigned stop_after);

/* Where the state stands for s's strategies, read in txn; *empty: the store
 * holds no ops and no state digest yet. */
int state_status_txn(const tr_store_t *s, MDB_txn *txn, tr_state_status_t *out, bool *empty,
                     tr_err_t *err);
/* The meta keys: the digest of the strategies the state was built with,
 * and the rebuild in progress (digest 32, bid u32, pos u64). */
const char *state_meta_digest(void);
const char *state_meta_build(void);

/* Readers shared with rebuild.c and merge.c. `mk` is scratch for mapped
 * keys. Payload pointers are valid until the next write in txn. */
typedef int (*state_kv_fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                           size_t vlen);
/* Entries of table `dbi` of branch bid whose key starts with prefix. */
int state_scan(MDB_txn *txn, MDB_dbi dbi, const char *table, uint32_t bid, const uint8_t *prefix,
               size_t plen, tr_buf_t *mk, state_kv_fn fn, void *arg, tr_err_t *err);
/* The payload under (bid, key) in state table `sdbi` (*v NULL: absent). */
int state_get(MDB_txn *txn, const tr_store_t *s, int sdbi, tr_buf_t *mk, uint32_t bid,
              const uint8_t *k, size_t kn, const uint8_t **v, size_t *vn, tr_err_t *err);
const char *state_table_name(int sdbi);
/* Splits a stored entry of a state table into its whole key and payload. */
int state_unpack(const MDB_val *key, const MDB_val *val, const uint8_t **k, size_t *kn,
                 const uint8_t **v, size_t *vn);
/* An entity's deletion lamport (0: none). `key` is scratch. */
int state_tomb(MDB_txn *txn, const tr_store_t *s, tr_buf_t *key, tr_buf_t *mk, uint32_t bid,
               tr_crdt_str_t e, uint64_t *tomb, tr_err_t *err);
/* Gathers entity e's fields and counters into `ent` and finishes it: the
 * map (if non-NULL), fingerprint and number of visible fields. */
int state_entity(MDB_txn *txn, const tr_store_t *s, tr_crdt_entity_t *ent, tr_buf_t *key,
                 tr_buf_t *mk, uint32_t bid, tr_crdt_str_t e, tr_buf_t *map,
                 uint8_t fp[TR_HASH_LEN], size_t *nfields, tr_err_t *err);

#endif
