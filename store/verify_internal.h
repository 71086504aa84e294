/*
 * verify_internal.h — state shared by verify.c (the driver and its worker
 * pool) and verify_check.c (the checks that need the log's order). Private
 * to tr_store_verify; see verify.c for the design.
 */
#ifndef TR_VERIFY_INTERNAL_H
#define TR_VERIFY_INTERNAL_H

#include <pthread.h>

#include "store_internal.h"

#define VCHUNK 256        /* records per chunk handed to a worker */
#define VBROKEN_MAX 64    /* undecodable ops remembered per branch */
#define VTHREADS_MAX 64

typedef struct {
    uint64_t pos;
    const uint8_t *stored; /* stored hash (map) */
    const uint8_t *rec;    /* record (map) */
    size_t len;
    /* filled by a worker: */
    int dcode;
    char dwhy[200];
    tr_op_t op;
    bool hash_ok;
    int sig; /* 0 unsigned, 1 verified, -1 bad */
    uint32_t pfound; /* bit j: parent j found in the index */
    loc_t ploc[TR_OP_MAX_PARENTS];
} vent_t;

typedef struct {
    vent_t e[VCHUNK];
    size_t n;
    uint32_t bid;
    bool has_before;
    uint8_t before[TR_HASH_LEN]; /* stored hash of the op before e[0] */
    uint64_t digest;             /* Σ vdigest of its entries (worker) */
    bool done;
} vchunk_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    vchunk_t **queue; /* FIFO of submitted chunks, capacity nring */
    size_t qhead, qtail, nring;
    bool stop;
    const hsnap_t *snap;
    const uint8_t *dkey;
} vpool_t;

typedef struct {
    uint64_t seq, lamport, pos;
    uint8_t hash[TR_HASH_LEN];
    uint64_t pend_first, pend_n, pend_pos; /* unsigned ops awaiting a signature */
} vauthor_t;

typedef struct {
    tr_store_t *s;
    MDB_txn *txn;
    tr_verify_fn report;
    void *arg;
    tr_verify_stats_t st;
    hsnap_t snap;
    uint8_t dkey[16];     /* random key of this run's index digests */
    uint64_t log_digest;  /* Σ vdigest over the log's ops */
    uint64_t idx_digest;  /* Σ vdigest over the index's entries */
    /* current branch */
    char name[TR_BRANCH_MAX + 1];
    size_t nlen;
    brec_t rec;
    tr_branch_policy_t pol;
    tr_hmap_t authors;  /* author → vauthor_t */
    tr_hmap_t frontier; /* hash → lamport */
    uint64_t seen, maxl, last_lamport, seqsum;
    uint8_t last_hash[TR_HASH_LEN];
    uint8_t broken[VBROKEN_MAX][TR_HASH_LEN]; /* stored hashes of undecodable ops */
    size_t nbroken;
    uint64_t last_bad_pos;
    bool last_bad_valid;
    uint64_t total;
} vctx_t;

/* Keyed digest of one index fact, hash → (bid, pos), in the byte layout of
 * an index entry. Summed (mod 2⁶⁴) over the log and over the index, equal
 * sums and counts show that the index holds exactly one right entry per op
 * without a lookup per op; the random key makes a collision by chance or by
 * design out of reach. */
uint64_t vdigest(const uint8_t key[16], const uint8_t entry[HENT_LEN]);

/* Reports one finding (and counts it in v->st.bad). */
void vreport(vctx_t *v, uint64_t pos, const uint8_t *hash, int code, const char *fmt, ...)
    TR_PRINTF(5, 6);

/* Checks one op, in log order, against everything before it. TR_OK or
 * TR_ENOMEM. */
int vcheck_entry(vctx_t *v, const vent_t *e);

/* At the end of a branch: pending signatures, counts, vv, heads, seq index
 * and the branch's name. */
void vcheck_end_branch(vctx_t *v);

#endif
