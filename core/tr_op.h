/*
 * tr_op.h — the op: trellis's unit of change (docs/protocol.md §Ops).
 *
 * Overview
 *   An op is one signed, content-addressed entry of a repository's log. Its
 *   record is a canonical msgpack array of 13 elements:
 *
 *     [version, repo, branch, author, seq, lamport, wall,
 *      parents, prev, kind, target, body, sig]
 *
 *   hash      = BLAKE2b-256 of the same array without `sig`
 *               (array header 0x9c and the first 12 elements);
 *   signature = Ed25519 over "trellis-op-v1" 0x00 || hash.
 *
 *   An op without its own signature is authentic once a signed later op of the
 *   same author and branch reaches it through `prev` links; writers sign at
 *   least the last op of each batch and every op whose seq is a multiple of
 *   TR_OP_SIGN_EVERY.
 *
 * Caveats
 *   - tr_op_t borrows: branch, kind, target and body point into the buffer the
 *     op was decoded from (or the caller's strings when building). Keep that
 *     buffer alive while the op is used.
 *   - tr_op_decode checks form and limits only; causal rules (seq chain,
 *     parents, lamport) need the store and are checked there.
 */
#ifndef TR_OP_H
#define TR_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tr_codec.h"
#include "tr_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TR_OP_VERSION 1
#define TR_HASH_LEN 32
#define TR_KEY_LEN 32        /* Ed25519 public key */
#define TR_SECRET_LEN 64     /* Ed25519 secret key (seed || public) */
#define TR_SIG_LEN 64
#define TR_REPO_ID_LEN 16
#define TR_OP_MAX_PARENTS 16
#define TR_BRANCH_MAX 255    /* bytes */
#define TR_KIND_MAX 64       /* bytes */
#define TR_TARGET_MAX 1024   /* bytes */
#define TR_BODY_MAX 65536    /* bytes of canonical msgpack */
#define TR_OP_MAX_BYTES (TR_BODY_MAX + 2048)
#define TR_OP_SIGN_EVERY 1000
#define TR_OP_FIELDS 13

typedef struct {
    uint8_t repo[TR_REPO_ID_LEN];
    const char *branch;
    size_t branch_len;
    uint8_t author[TR_KEY_LEN];
    uint64_t seq;     /* author's counter on this branch, from 1 */
    uint64_t lamport; /* > lamport of every parent and of prev */
    uint64_t wall_ms; /* wall clock, display only */
    uint8_t parents[TR_OP_MAX_PARENTS][TR_HASH_LEN]; /* sorted, unique */
    size_t nparents;
    bool has_prev; /* false iff seq == 1 */
    uint8_t prev[TR_HASH_LEN];
    const char *kind;
    size_t kind_len;
    const char *target;
    size_t target_len;
    const uint8_t *body; /* one canonical msgpack value */
    size_t body_len;
    bool has_sig;
    uint8_t sig[TR_SIG_LEN];
    uint8_t hash[TR_HASH_LEN]; /* set by encode and decode */
} tr_op_t;

/* An op record in borrowed bytes. */
typedef struct {
    const uint8_t *data;
    size_t len;
} tr_rec_t;

/* Per-record outcome of integrating records (store, sync): TR_INTEGRATED,
 * TR_DUPLICATE, or a negative TR_E… refusal code. */
enum { TR_INTEGRATED = 0, TR_DUPLICATE = 1 };

/* Checks every field of `op` against the rules of §Ops (lengths, kind
 * alphabet, UTF-8, sorted parents, seq/prev agreement, canonical body).
 * Returns TR_OK or a code with a reason in `err`. */
int tr_op_validate(const tr_op_t *op, tr_err_t *err);

/* Validates `op`, appends its record to `out`, and sets op->hash. If `sk` is
 * non-NULL the op is signed with it (op->has_sig/op->sig set), otherwise the
 * op's existing signature, if any, is written. `sk` must belong to
 * op->author. On failure `out` is unchanged. */
int tr_op_encode(tr_op_t *op, const uint8_t *sk, tr_buf_t *out, tr_err_t *err) TR_MUST_CHECK;

/* Decodes exactly one record from buf[0..len), refusing anything truncated,
 * trailing, oversize or not canonical, and computes op->hash. Does not check
 * the signature. */
int tr_op_decode(const uint8_t *buf, size_t len, tr_op_t *op, tr_err_t *err) TR_MUST_CHECK;

/* Computes the hash of a record already known to be well-formed (for
 * instance, read back from the store) without decoding it. Returns TR_OK, or
 * TR_EMALFORMED if the record does not end in a sig field. */
int tr_op_record_hash(const uint8_t *rec, size_t len, uint8_t hash[TR_HASH_LEN]);

/* The signing message: "trellis-op-v1" 0x00 || hash (46 bytes). */
#define TR_OP_SIGMSG_LEN 46
void tr_op_sigmsg(const uint8_t hash[TR_HASH_LEN], uint8_t msg[TR_OP_SIGMSG_LEN]);

/* Verifies op->sig against op->author and op->hash. TR_OK, TR_EUNSIGNED if the
 * op carries no signature, TR_ESIG if it does not verify. */
int tr_op_verify(const tr_op_t *op);

/* Total order of concurrent ops: (lamport, author, seq). <0, 0, >0. */
int tr_op_order(const tr_op_t *a, const tr_op_t *b);

/* True if kind is well-formed: 1..64 bytes of [a-z0-9._-], starting with a
 * letter, no empty dot segments. */
bool tr_op_kind_valid(const char *kind, size_t len);

/* True if a branch name is valid: 1..255 bytes of printable UTF-8. */
bool tr_op_branch_valid(const char *name, size_t len);

/* Short display form of a hash: the first `n` hex digits (n ≤ 64). */
void tr_hash_short(char *out, const uint8_t hash[TR_HASH_LEN], size_t n);

#ifdef __cplusplus
}
#endif
#endif
