/* codec.c — byte buffers, msgpack packing into them, and the strict reader
 * that refuses every non-canonical form (see tr_codec.h). */
#include "tr_codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- tr_buf_t --------------------------------------------------------- */

int tr_buf_reserve(tr_buf_t *b, size_t extra)
{
    if (extra <= b->cap - b->len) return TR_OK;
    if (extra > SIZE_MAX / 2 - b->len) return TR_ENOMEM;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < want) cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p) return TR_ENOMEM;
    b->data = p;
    b->cap = cap;
    return TR_OK;
}

int tr_buf_append(tr_buf_t *b, const void *p, size_t n)
{
    if (n == 0) return TR_OK;
    int rc = tr_buf_reserve(b, n);
    if (rc) return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return TR_OK;
}

void tr_buf_reset(tr_buf_t *b)
{
    b->len = 0;
}

void tr_buf_free(tr_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int buf_write(void *data, const char *p, size_t n)
{
    return tr_buf_append(data, p, n) ? -1 : 0;
}

void tr_packer_init(msgpack_packer *pk, tr_buf_t *b)
{
    msgpack_packer_init(pk, b, buf_write);
}

int tr_pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n) ? -1 : 0;
}

int tr_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    return msgpack_pack_bin(pk, n) || msgpack_pack_bin_body(pk, p, n) ? -1 : 0;
}

/* ---- strict reader ---------------------------------------------------- */

void tr_rd_init(tr_rd_t *r, const void *buf, size_t len)
{
    r->p = buf;
    r->end = r->p + len;
    r->why = NULL;
    r->code = TR_OK;
}

int tr_rd_fail(tr_rd_t *r, int code, const char *why)
{
    if (r->code == TR_OK) {
        r->code = code;
        r->why = why;
    }
    return r->code;
}

static size_t rd_left(const tr_rd_t *r)
{
    return (size_t)(r->end - r->p);
}

/* Reads an n-byte big-endian unsigned integer following the type byte. */
static int rd_be(tr_rd_t *r, size_t n, uint64_t *v)
{
    if (rd_left(r) < n) return tr_rd_fail(r, TR_EMALFORMED, "truncated");
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) x = (x << 8) | r->p[i];
    r->p += n;
    *v = x;
    return TR_OK;
}

/* Peeks the type byte. */
static int rd_peek(tr_rd_t *r, uint8_t *t)
{
    if (r->code) return r->code;
    if (r->p >= r->end) return tr_rd_fail(r, TR_EMALFORMED, "truncated");
    *t = *r->p;
    return TR_OK;
}

/* Container header: fix form mask, 16- and 32-bit forms. */
static int rd_container(tr_rd_t *r, uint32_t *n, uint8_t fixbase, uint8_t fixmax, uint8_t t16,
                        uint8_t t32, const char *what)
{
    uint8_t t = 0;
    uint64_t v = 0;
    if (rd_peek(r, &t)) return r->code;
    if (t >= fixbase && t <= fixmax) {
        r->p++;
        v = t - fixbase;
    } else if (t == t16 || t == t32) {
        r->p++;
        if (rd_be(r, t == t16 ? 2 : 4, &v)) return r->code;
        if ((t == t16 && v < 16) || (t == t32 && v < 65536))
            return tr_rd_fail(r, TR_ENONCANON, "container length not in shortest form");
    } else {
        return tr_rd_fail(r, TR_EMALFORMED, what);
    }
    /* Every element takes at least one byte: refuse counts the input cannot
     * hold before anyone loops over them. */
    if (v > rd_left(r)) return tr_rd_fail(r, TR_EMALFORMED, "container longer than input");
    *n = (uint32_t)v;
    return TR_OK;
}

int tr_rd_array(tr_rd_t *r, uint32_t *n)
{
    return rd_container(r, n, 0x90, 0x9f, 0xdc, 0xdd, "expected an array");
}

int tr_rd_map(tr_rd_t *r, uint32_t *n)
{
    return rd_container(r, n, 0x80, 0x8f, 0xde, 0xdf, "expected a map");
}

/* Reads any integer; sets *neg when it is negative (then *u holds the
 * two's-complement int64 bits). */
static int rd_integer(tr_rd_t *r, uint64_t *u, bool *neg)
{
    uint8_t t = 0;
    uint64_t v = 0;
    if (rd_peek(r, &t)) return r->code;
    *neg = false;
    if (t <= 0x7f) {
        r->p++;
        *u = t;
        return TR_OK;
    }
    if (t >= 0xe0) {
        r->p++;
        *u = (uint64_t)(int64_t)(int8_t)t;
        *neg = true;
        return TR_OK;
    }
    static const uint64_t umin[4] = {128, 256, 65536, 4294967296ULL};
    v = 0;
    if (t >= 0xcc && t <= 0xcf) {
        r->p++;
        if (rd_be(r, (size_t)1 << (t - 0xcc), &v)) return r->code;
        if (v < umin[t - 0xcc])
            return tr_rd_fail(r, TR_ENONCANON, "integer not in shortest form");
        *u = v;
        return TR_OK;
    }
    if (t >= 0xd0 && t <= 0xd3) {
        static const int64_t smin[4] = {-32, -128, -32768, -2147483648LL};
        size_t n = (size_t)1 << (t - 0xd0);
        r->p++;
        if (rd_be(r, n, &v)) return r->code;
        int64_t s;
        switch (n) {
        case 1: s = (int8_t)v; break;
        case 2: s = (int16_t)v; break;
        case 4: s = (int32_t)v; break;
        default: s = (int64_t)v; break;
        }
        if (s >= 0) return tr_rd_fail(r, TR_ENONCANON, "non-negative integer in signed form");
        if (s >= smin[t - 0xd0]) return tr_rd_fail(r, TR_ENONCANON, "integer not in shortest form");
        *u = (uint64_t)s;
        *neg = true;
        return TR_OK;
    }
    return tr_rd_fail(r, TR_EMALFORMED, "expected an integer");
}

int tr_rd_uint(tr_rd_t *r, uint64_t *v)
{
    bool neg;
    if (rd_integer(r, v, &neg)) return r->code;
    if (neg) return tr_rd_fail(r, TR_EMALFORMED, "expected a non-negative integer");
    return TR_OK;
}

int tr_rd_int(tr_rd_t *r, int64_t *v)
{
    bool neg;
    uint64_t u;
    if (rd_integer(r, &u, &neg)) return r->code;
    if (!neg && u > INT64_MAX) return tr_rd_fail(r, TR_ETOOBIG, "integer out of range");
    *v = (int64_t)u;
    return TR_OK;
}

int tr_rd_bool(tr_rd_t *r, bool *v)
{
    uint8_t t = 0;
    if (rd_peek(r, &t)) return r->code;
    if (t != 0xc2 && t != 0xc3) return tr_rd_fail(r, TR_EMALFORMED, "expected a boolean");
    r->p++;
    *v = t == 0xc3;
    return TR_OK;
}

bool tr_rd_is_nil(const tr_rd_t *r)
{
    return r->code == TR_OK && r->p < r->end && *r->p == 0xc0;
}

int tr_rd_nil(tr_rd_t *r)
{
    uint8_t t = 0;
    if (rd_peek(r, &t)) return r->code;
    if (t != 0xc0) return tr_rd_fail(r, TR_EMALFORMED, "expected nil");
    r->p++;
    return TR_OK;
}

/* str header: fixstr, str8 (≥32), str16 (≥256), str32 (≥65536). */
static int rd_str_raw(tr_rd_t *r, const char **s, size_t *n)
{
    uint8_t t = 0;
    uint64_t v = 0;
    if (rd_peek(r, &t)) return r->code;
    if (t >= 0xa0 && t <= 0xbf) {
        r->p++;
        v = t - 0xa0;
    } else if (t >= 0xd9 && t <= 0xdb) {
        static const uint64_t min[3] = {32, 256, 65536};
        r->p++;
        if (rd_be(r, (size_t)1 << (t - 0xd9), &v)) return r->code;
        if (v < min[t - 0xd9]) return tr_rd_fail(r, TR_ENONCANON, "string length not in shortest form");
    } else {
        return tr_rd_fail(r, TR_EMALFORMED, "expected a string");
    }
    if (v > rd_left(r)) return tr_rd_fail(r, TR_EMALFORMED, "truncated string");
    *s = (const char *)r->p;
    *n = (size_t)v;
    r->p += v;
    if (!tr_utf8_valid(*s, *n)) return tr_rd_fail(r, TR_EMALFORMED, "string is not valid UTF-8");
    return TR_OK;
}

int tr_rd_str(tr_rd_t *r, const char **s, size_t *n, size_t min, size_t max)
{
    if (rd_str_raw(r, s, n)) return r->code;
    if (*n < min) return tr_rd_fail(r, TR_EMALFORMED, "string too short");
    if (*n > max) return tr_rd_fail(r, TR_ETOOBIG, "string too long");
    return TR_OK;
}

/* bin header: bin8 (any), bin16 (≥256), bin32 (≥65536). */
int tr_rd_bin(tr_rd_t *r, const uint8_t **p, size_t *n, size_t min, size_t max)
{
    uint8_t t = 0;
    uint64_t v = 0;
    if (rd_peek(r, &t)) return r->code;
    if (t < 0xc4 || t > 0xc6) return tr_rd_fail(r, TR_EMALFORMED, "expected binary");
    static const uint64_t lmin[3] = {0, 256, 65536};
    r->p++;
    if (rd_be(r, (size_t)1 << (t - 0xc4), &v)) return r->code;
    if (v < lmin[t - 0xc4]) return tr_rd_fail(r, TR_ENONCANON, "binary length not in shortest form");
    if (v > rd_left(r)) return tr_rd_fail(r, TR_EMALFORMED, "truncated binary");
    if (v < min) return tr_rd_fail(r, TR_EMALFORMED, "binary too short");
    if (v > max) return tr_rd_fail(r, TR_ETOOBIG, "binary too long");
    *p = r->p;
    *n = (size_t)v;
    r->p += v;
    return TR_OK;
}

int tr_rd_bin_fixed(tr_rd_t *r, uint8_t *out, size_t n)
{
    const uint8_t *p;
    size_t len;
    if (tr_rd_bin(r, &p, &len, n, n)) return r->code;
    memcpy(out, p, n);
    return TR_OK;
}

/* Compares map keys: bytewise, a proper prefix sorts first. */
static int key_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

static int rd_any(tr_rd_t *r, int depth)
{
    uint8_t t = 0;
    if (rd_peek(r, &t)) return r->code;
    if (depth > TR_MP_MAX_DEPTH) return tr_rd_fail(r, TR_ETOOBIG, "nesting too deep");
    if (t <= 0x7f || t >= 0xe0 || (t >= 0xcc && t <= 0xd3)) {
        uint64_t u = 0;
        bool neg = false;
        return rd_integer(r, &u, &neg);
    }
    if ((t >= 0xa0 && t <= 0xbf) || (t >= 0xd9 && t <= 0xdb)) {
        const char *s;
        size_t n;
        return rd_str_raw(r, &s, &n);
    }
    if (t >= 0xc4 && t <= 0xc6) {
        const uint8_t *p;
        size_t n;
        return tr_rd_bin(r, &p, &n, 0, SIZE_MAX);
    }
    if ((t >= 0x90 && t <= 0x9f) || t == 0xdc || t == 0xdd) {
        uint32_t n;
        if (tr_rd_array(r, &n)) return r->code;
        for (uint32_t i = 0; i < n; i++)
            if (rd_any(r, depth + 1)) return r->code;
        return TR_OK;
    }
    if ((t >= 0x80 && t <= 0x8f) || t == 0xde || t == 0xdf) {
        uint32_t n;
        const char *prev = NULL;
        size_t prevn = 0;
        if (tr_rd_map(r, &n)) return r->code;
        for (uint32_t i = 0; i < n; i++) {
            const char *k;
            size_t kn;
            if (r->p < r->end && !((*r->p >= 0xa0 && *r->p <= 0xbf) || (*r->p >= 0xd9 && *r->p <= 0xdb)))
                return tr_rd_fail(r, TR_ENONCANON, "map key is not a string");
            if (rd_str_raw(r, &k, &kn)) return r->code;
            if (prev && key_cmp(prev, prevn, k, kn) >= 0)
                return tr_rd_fail(r, TR_ENONCANON, "map keys not sorted or not unique");
            prev = k;
            prevn = kn;
            if (rd_any(r, depth + 1)) return r->code;
        }
        return TR_OK;
    }
    switch (t) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
        r->p++;
        return TR_OK;
    case 0xca:
        return tr_rd_fail(r, TR_ENONCANON, "float32 is not canonical (use float64)");
    case 0xcb: {
        uint64_t bits = 0;
        double d;
        r->p++;
        if (rd_be(r, 8, &bits)) return r->code;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d)) return tr_rd_fail(r, TR_ENONCANON, "NaN or infinity");
        if (d == floor(d) && d >= -9223372036854775808.0 && d < 18446744073709551616.0)
            return tr_rd_fail(r, TR_ENONCANON, "integral float (use an integer)");
        return TR_OK;
    }
    case 0xc1:
        return tr_rd_fail(r, TR_EMALFORMED, "reserved type byte 0xc1");
    default:
        return tr_rd_fail(r, TR_ENONCANON, "ext types are not allowed");
    }
}

int tr_rd_value(tr_rd_t *r, const uint8_t **start, size_t *len)
{
    const uint8_t *s = r->p;
    if (rd_any(r, 1)) return r->code;
    *start = s;
    *len = (size_t)(r->p - s);
    return TR_OK;
}

int tr_mp_check(const void *buf, size_t len, const char **why)
{
    tr_rd_t r;
    const uint8_t *s;
    size_t n;
    tr_rd_init(&r, buf, len);
    if (tr_rd_value(&r, &s, &n) == TR_OK && r.p != r.end)
        tr_rd_fail(&r, TR_EMALFORMED, "trailing bytes after value");
    if (why) *why = r.why;
    return r.code;
}

bool tr_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

/* ---- hex -------------------------------------------------------------- */

void tr_hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int tr_unhex(uint8_t *out, size_t n, const char *hex, size_t hexlen)
{
    if (hexlen != 2 * n) return TR_EINVAL;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return TR_EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return TR_OK;
}
