/*
 * tr_codec.h — growable byte buffers and the canonical msgpack codec.
 *
 * Overview
 *   trellis hashes and signs msgpack bytes, so two implementations must agree
 *   on them byte for byte. "Canonical" msgpack (docs/protocol.md §Encoding):
 *     - every integer, string, binary, array and map header in its shortest
 *       form; non-negative integers always in the unsigned forms;
 *     - floats only as float64, never NaN/±Inf, never an integral value that an
 *       integer form can carry (those must be integers);
 *     - strings valid UTF-8; map keys strings, sorted by bytes, unique;
 *     - no ext types; nesting depth at most TR_MP_MAX_DEPTH.
 *
 *   Writing goes through msgpack-c's packer (which already emits shortest
 *   forms) into a tr_buf_t. Reading uses tr_rd_t, a cursor that checks the
 *   bounds of every read and refuses any non-canonical form, because a
 *   general-purpose unpacker accepts encodings that we must refuse.
 *
 * Caveats
 *   - tr_rd_t borrows its input; strings and binaries it returns point into it.
 *   - tr_buf_t functions return TR_ENOMEM on allocation failure and leave the
 *     buffer as it was.
 */
#ifndef TR_CODEC_H
#define TR_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "tr_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TR_MP_MAX_DEPTH 32

/* A growable byte buffer. Zero-initialise (`tr_buf_t b = {0};`) before use. */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} tr_buf_t;

int tr_buf_reserve(tr_buf_t *b, size_t extra) TR_MUST_CHECK;
int tr_buf_append(tr_buf_t *b, const void *p, size_t n) TR_MUST_CHECK;
void tr_buf_reset(tr_buf_t *b); /* len = 0, keeps memory */
void tr_buf_free(tr_buf_t *b);  /* frees memory; buffer is empty afterwards */

/* Initialises `pk` to append to `b`. Every msgpack_pack_* call then returns
 * non-zero if memory ran out. */
void tr_packer_init(msgpack_packer *pk, tr_buf_t *b);

/* Packs a str/bin with shortest header. Convenience wrappers; return 0 or -1. */
int tr_pack_str(msgpack_packer *pk, const char *s, size_t n);
int tr_pack_bin(msgpack_packer *pk, const void *p, size_t n);

/* ---- Strict reader ---------------------------------------------------- */

typedef struct {
    const uint8_t *p;   /* next byte */
    const uint8_t *end; /* one past the last byte */
    const char *why;    /* static reason of the first failure, or NULL */
    int code;           /* TR_OK, or the first failure's code */
} tr_rd_t;

void tr_rd_init(tr_rd_t *r, const void *buf, size_t len);

/* Each reader checks bounds and canonical form. On failure it records the
 * first reason in r->why / r->code and returns that code; later reads on a
 * failed reader fail at once. */
int tr_rd_array(tr_rd_t *r, uint32_t *n);
int tr_rd_map(tr_rd_t *r, uint32_t *n);
int tr_rd_uint(tr_rd_t *r, uint64_t *v);
int tr_rd_int(tr_rd_t *r, int64_t *v); /* either sign, range of int64 */
int tr_rd_bool(tr_rd_t *r, bool *v);
/* str with byte length in [min,max]; validated as UTF-8. */
int tr_rd_str(tr_rd_t *r, const char **s, size_t *n, size_t min, size_t max);
/* bin of byte length in [min,max]. */
int tr_rd_bin(tr_rd_t *r, const uint8_t **p, size_t *n, size_t min, size_t max);
/* bin of exactly `n` bytes, copied to `out`. */
int tr_rd_bin_fixed(tr_rd_t *r, uint8_t *out, size_t n);
bool tr_rd_is_nil(const tr_rd_t *r); /* next value is nil (does not consume) */
int tr_rd_nil(tr_rd_t *r);
/* Reads one whole canonical value of any type (depth-limited), returning
 * where it starts and its length. */
int tr_rd_value(tr_rd_t *r, const uint8_t **start, size_t *len);
/* Sets the failure by hand (semantic errors found by the caller). */
int tr_rd_fail(tr_rd_t *r, int code, const char *why);

/* Checks that buf[0..len) holds exactly one canonical msgpack value.
 * On failure returns TR_EMALFORMED / TR_ENONCANON / TR_ETOOBIG and sets
 * *why (if non-NULL) to a static reason. */
int tr_mp_check(const void *buf, size_t len, const char **why);

/* UTF-8 validity of s[0..n) (shortest forms, no surrogates, ≤ U+10FFFF). */
bool tr_utf8_valid(const char *s, size_t n);

/* ---- Hex and base32 --------------------------------------------------- */

/* Lowercase hex of p[0..n) into out (2n+1 bytes, NUL-terminated). */
void tr_hex(char *out, const uint8_t *p, size_t n);
/* Parses exactly 2n hex digits (either case) into out[0..n). */
int tr_unhex(uint8_t *out, size_t n, const char *hex, size_t hexlen);

#ifdef __cplusplus
}
#endif
#endif
