/*
 * tr_json.h — JSON ↔ canonical msgpack (op bodies, CLI input and output).
 *
 * Overview
 *   Users and applications speak JSON; ops carry canonical msgpack
 *   (tr_codec.h). This module converts between the two with jansson:
 *
 *   JSON → msgpack (tr_json_parse, tr_json_pack)
 *     - null, true, false, strings, arrays and objects map one to one;
 *     - integers use the shortest msgpack form (non-negative ones unsigned);
 *     - a real with an integral value that an integer form can carry
 *       (1.0, 1e3, -0.0) becomes that integer; any other real is a float64;
 *       NaN and ±Infinity are refused;
 *     - object keys are written sorted bytewise (a proper prefix first);
 *       duplicate keys in JSON text are refused;
 *     - nesting deeper than TR_MP_MAX_DEPTH (the top value is depth 1) and
 *       results larger than TR_BODY_MAX bytes are refused (TR_ETOOBIG).
 *
 *   msgpack → JSON (tr_json_from_mp), for display. msgpack has two things
 *   JSON has not; they are shown as one-key "tagged" objects:
 *     - binary           → {"$bin": "<lowercase hex>"}
 *     - integer > 2^63-1 → {"$uint": "<decimal digits>"}
 *   With the flag TR_JSON_TAGS, JSON → msgpack reads these two forms back,
 *   so a displayed value converts back to the same bytes. Without it (the
 *   default) every object is literal: {"$bin": "00"} is a map.
 *
 *   Every refusal names where in the value it happened: "at .a[3]: NaN is
 *   not allowed".
 *
 * Caveats
 *   - Strings and keys are trusted to be valid UTF-8, as jansson guarantees
 *     for everything it parses or builds with its checking constructors; a
 *     value built with json_string_nocheck() and friends must be valid too
 *     (if it is not, the op store refuses the body).
 *   - Pure: no I/O. jansson's own object-hash seeding may read /dev/urandom
 *     once per process; nothing else does.
 *   - JSON integers must fit in a signed 64-bit integer (jansson's
 *     json_int_t); larger ones need TR_JSON_TAGS and {"$uint": "…"}.
 *   - On failure, output buffers are left exactly as they were.
 */
#ifndef TR_JSON_H
#define TR_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tr_codec.h"
#include "tr_error.h"
#include "tr_op.h" /* TR_BODY_MAX */

#ifdef __cplusplus
extern "C" {
#endif

/* JSON → msgpack: read {"$bin": hex} and {"$uint": "digits"} as binary and
 * unsigned integers (the inverse of tr_json_from_mp's display forms). */
#define TR_JSON_TAGS 0x1u

/* Parses `len` bytes of JSON text holding exactly one value of any type and
 * appends its canonical msgpack encoding to `out`. Syntax errors say where
 * ("line 1, column 7: …"). TR_EMALFORMED for bad JSON, TR_EINVAL for values
 * msgpack cannot carry canonically, TR_ETOOBIG for limits. */
int tr_json_parse(const char *text, size_t len, unsigned flags, tr_buf_t *out,
                  tr_err_t *err) TR_MUST_CHECK;

/* Appends the canonical msgpack encoding of jansson value `v` (borrowed) to
 * `out`. Same rules and codes as tr_json_parse. */
int tr_json_pack(const json_t *v, unsigned flags, tr_buf_t *out, tr_err_t *err) TR_MUST_CHECK;

/* Converts one canonical msgpack value mp[0..len) into a new jansson value
 * (caller owns *out, release with json_decref). Input that is not exactly one
 * canonical value is refused (TR_EMALFORMED / TR_ENONCANON / TR_ETOOBIG). */
int tr_json_from_mp(const uint8_t *mp, size_t len, json_t **out, tr_err_t *err) TR_MUST_CHECK;

/* Appends one step to a key path used in messages: `.key` for keys of
 * letters, digits, '_', '-' and '$', otherwise `."key"` with '"', '\\' and
 * control characters escaped and long keys shortened. Writes at buf+at,
 * NUL-terminated, never past cap; returns the new length. */
size_t tr_json_path_key(char *buf, size_t cap, size_t at, const char *key, size_t len);

/* "an object", "an array", "a string", "a number", "a boolean" or "null":
 * the type of a JSON value, for error messages. */
const char *tr_json_type_name(const json_t *v);

#ifdef __cplusplus
}
#endif
#endif
