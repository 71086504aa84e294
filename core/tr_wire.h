/*
 * tr_wire.h — sync frames and op batches (docs/protocol.md §3.2, §3.3).
 *
 * Overview
 *   A frame is one ZeroMQ message: a canonical msgpack array
 *   [version, type, …]. tr_frame_decode() checks every length and limit of
 *   §3.7 and refuses non-canonical input; tr_frame_encode() writes exactly
 *   what the decoder accepts. An `ops` frame carries a *batch*: ops of one
 *   repository and branch in causal order with everything the receiver can
 *   recompute left out (hashes, prev, repeated authors and kinds, the parent
 *   that is the previous op). tr_batch_encode() builds one from ops;
 *   tr_batch_decode() rebuilds the full op records (§2.1) for integration.
 *
 * Caveats
 *   - A decoded tr_frame_t owns its arrays (free them with tr_frame_clear)
 *     but borrows `payload` from the input buffer.
 *   - Pure: no I/O. Compression uses zstd in memory.
 */
#ifndef TR_WIRE_H
#define TR_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tr_codec.h"
#include "tr_error.h"
#include "tr_op.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TR_PROTO_VERSION 1
#define TR_PROTO_MIN_VERSION 1
#define TR_FRAME_MAX (4u << 20)
#define TR_BATCH_MAX_BYTES (4u << 20)
#define TR_BATCH_MAX_ENTRIES 4096
#define TR_BATCH_MAX_AUTHORS 4096
#define TR_BATCH_MAX_KINDS 256
#define TR_HELLO_MAX_REPOS 1024
#define TR_HAVE_MAX_BRANCHES 1024
#define TR_HAVE_MAX_HEADS 64
#define TR_VV_MAX 65536
#define TR_NAME_MAX 64
#define TR_REASON_MAX 32
#define TR_TEXT_MAX 256
#define TR_WINDOW 4

enum {
    TR_FRAME_HELLO = 0,
    TR_FRAME_HAVE = 1,
    TR_FRAME_WANT = 2,
    TR_FRAME_OPS = 3,
    TR_FRAME_ACK = 4,
    TR_FRAME_NACK = 5,
};

enum { TR_CODEC_RAW = 0, TR_CODEC_ZSTD = 1 };

/* One version-vector entry: author → highest contiguous seq. */
typedef struct {
    uint8_t key[TR_KEY_LEN];
    uint64_t seq;
} tr_vv_entry_t;

/* A version vector: entries sorted by key, unique, seq ≥ 1. */
typedef struct {
    tr_vv_entry_t *v;
    size_t n;
} tr_vv_t;

typedef struct {
    char name[TR_BRANCH_MAX + 1];
    uint64_t count;
    uint8_t (*heads)[TR_HASH_LEN];
    size_t nheads;
    tr_vv_t vv;
} tr_have_branch_t;

/* A decoded (or to-be-encoded) frame. Fields not used by `type` are ignored
 * when encoding and zero after decoding. */
typedef struct {
    int type;
    uint64_t version;
    /* hello */
    char name[TR_NAME_MAX + 1];
    uint64_t min_version, max_version;
    uint8_t (*repos)[TR_REPO_ID_LEN];
    size_t nrepos;
    /* have, want, ops, ack, nack */
    bool has_repo; /* always true except in nack */
    uint8_t repo[TR_REPO_ID_LEN];
    bool has_branch; /* want, ops, ack; optional in nack */
    char branch[TR_BRANCH_MAX + 1];
    /* have */
    tr_have_branch_t *branches;
    size_t nbranches;
    /* want, ops, ack */
    uint64_t want_id;
    /* want */
    bool has_after;
    uint8_t after_hash[TR_HASH_LEN];
    tr_vv_t from;
    uint64_t max_bytes;
    /* ops */
    bool final;
    uint64_t codec;
    const uint8_t *payload; /* borrowed */
    size_t payload_len;
    /* ack */
    uint64_t integrated, count;
    tr_vv_t vv;
    /* nack */
    char reason[TR_REASON_MAX + 1];
    char text[TR_TEXT_MAX + 1];
    bool has_hash;
    uint8_t hash[TR_HASH_LEN];
} tr_frame_t;

/* Decodes one frame. On failure the frame is cleared and `err` names the
 * element and the rule; the code is TR_EVERSION for an unspoken version (the
 * caller answers `nack version`), otherwise TR_EMALFORMED, TR_ENONCANON or
 * TR_ETOOBIG. Caller frees with tr_frame_clear(). */
int tr_frame_decode(const uint8_t *buf, size_t len, tr_frame_t *f, tr_err_t *err) TR_MUST_CHECK;

/* Appends the encoding of `f` to `out`, checking the limits and orderings the
 * decoder enforces. */
int tr_frame_encode(const tr_frame_t *f, tr_buf_t *out, tr_err_t *err) TR_MUST_CHECK;

/* Frees the arrays of a decoded frame and zeroes it. NULL-safe. */
void tr_frame_clear(tr_frame_t *f);

/* The reason token a refusal code is nacked with (§3.6). */
const char *tr_wire_reason(int code);

/* Sorts a version vector by key (for building frames). */
void tr_vv_sort(tr_vv_t *vv);

/* The seq for `key` in a sorted vv, 0 if absent. */
uint64_t tr_vv_get(const tr_vv_t *vv, const uint8_t key[TR_KEY_LEN]);

/* ---- Batches ---------------------------------------------------------- */

/* Encodes `n` ops (one repository and branch, causal order, each with its
 * hash set) as a batch payload appended to `out`, compressed with zstd when
 * that saves at least 10 % (*codec receives TR_CODEC_RAW or TR_CODEC_ZSTD). */
int tr_batch_encode(const tr_op_t *const *ops, size_t n, tr_buf_t *out, uint64_t *codec,
                    tr_err_t *err) TR_MUST_CHECK;

/* Looks up the hash of the receiver's op (author, seq) on the batch's branch;
 * TR_OK, or TR_ENOTFOUND when the receiver does not hold it. */
typedef int (*tr_prev_fn)(void *arg, const uint8_t author[TR_KEY_LEN], uint64_t seq,
                          uint8_t hash[TR_HASH_LEN]);

/* A decoded batch: the rebuilt records, one per entry, concatenated in
 * `recs`; entry i is recs.data[off[i] .. off[i]+len[i]) when status[i] is
 * TR_OK, otherwise status[i] is why it could not be rebuilt (TR_ESEQ: the
 * author's previous op is missing; TR_EPARENT: a parent index names such an
 * op) and reason[i] (static) says so. */
typedef struct {
    tr_buf_t recs;
    size_t *off;
    size_t *len;
    int *status;
    const char **reason;
    uint8_t (*hash)[TR_HASH_LEN];
    size_t n;
} tr_batch_t;

/* Decodes a payload of codec `codec` for repository `repo` and branch
 * `branch`, rebuilding each op's record. Malformed input (any rule of §3.3,
 * a limit of §3.7, a decompressed size over TR_BATCH_MAX_BYTES) fails the
 * whole batch. Caller frees with tr_batch_clear(). */
int tr_batch_decode(const uint8_t *payload, size_t len, uint64_t codec,
                    const uint8_t repo[TR_REPO_ID_LEN], const char *branch, tr_prev_fn prev,
                    void *arg, tr_batch_t *out, tr_err_t *err) TR_MUST_CHECK;

void tr_batch_clear(tr_batch_t *b);

#ifdef __cplusplus
}
#endif
#endif
