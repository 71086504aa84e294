/* json.c — JSON ↔ canonical msgpack with jansson (see tr_json.h). */
#include "tr_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One step of the path from the top value to where we are, for messages. */
typedef struct {
    const char *key; /* NULL: an array element */
    size_t key_len;
    size_t index;
} jp_step_t;

typedef struct {
    msgpack_packer pk;
    tr_buf_t *out;
    size_t start; /* out->len when we began */
    unsigned flags;
    tr_err_t *err;
    int depth; /* steps in use */
    jp_step_t path[TR_MP_MAX_DEPTH + 1];
} jp_t;

typedef struct {
    const char *key;
    size_t len;
    json_t *val;
} jp_member_t;

/* True if a key can be shown without quotes in a path. */
static bool jp_plain_key(const char *k, size_t n)
{
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '$'))
            return false;
    }
    return true;
}

size_t tr_json_path_key(char *buf, size_t cap, size_t at, const char *key, size_t len)
{
    if (cap == 0 || at >= cap) return at;
    size_t o = at;
#define PUT(ch) (o + 1 < cap ? (void)(buf[o++] = (char)(ch)) : (void)0)
    PUT('.');
    if (jp_plain_key(key, len)) {
        for (size_t i = 0; i < len; i++)
            PUT(key[i]);
    } else {
        PUT('"');
        for (size_t i = 0; i < len && i < 48; i++) {
            unsigned char ch = (unsigned char)key[i];
            if (ch == '"' || ch == '\\') {
                PUT('\\');
                PUT(ch);
            } else if (ch < 0x20 || ch == 0x7f) {
                char esc[8];
                snprintf(esc, sizeof esc, "\\u%04x", ch);
                for (char *e = esc; *e; e++)
                    PUT(*e);
            } else {
                PUT(ch);
            }
        }
        if (len > 48) {
            PUT('.');
            PUT('.');
            PUT('.');
        }
        PUT('"');
    }
#undef PUT
    buf[o] = '\0';
    return o;
}

/* Records a refusal with the current path ("at .a[3]: why"), rolls the
 * output back to where this conversion started, and returns `code`. */
static int jp_fail(jp_t *c, int code, const char *why)
{
    char path[256];
    size_t o = 0;
    path[0] = '\0';
    for (int i = 0; i < c->depth && o < sizeof path - 80; i++) {
        const jp_step_t *s = &c->path[i];
        if (s->key) {
            o = tr_json_path_key(path, sizeof path, o, s->key, s->key_len);
        } else {
            int w = snprintf(path + o, sizeof path - o, "[%zu]", s->index);
            if (w < 0) break;
            o += (size_t)w;
        }
    }
    c->out->len = c->start;
    if (o) return tr_err_set(c->err, code, "at %s: %s", path, why);
    return tr_err_set(c->err, code, "%s", why);
}

static int jp_nomem(jp_t *c)
{
    return jp_fail(c, TR_ENOMEM, "out of memory");
}

/* Bytewise key order, a proper prefix first (the order tr_mp_check wants). */
static int jp_key_cmp(const void *pa, const void *pb)
{
    const jp_member_t *a = pa, *b = pb;
    int r = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    if (r) return r;
    return a->len < b->len ? -1 : a->len > b->len;
}

/* Packs a real: integral values an integer form can carry become integers
 * (canonical form forbids them as floats); NaN and infinities are refused. */
static int jp_real(jp_t *c, double d)
{
    if (!isfinite(d)) return jp_fail(c, TR_EINVAL, "NaN and infinity are not allowed");
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 18446744073709551616.0) {
        if (d < 0) return msgpack_pack_int64(&c->pk, (int64_t)d) ? jp_nomem(c) : TR_OK;
        return msgpack_pack_uint64(&c->pk, (uint64_t)d) ? jp_nomem(c) : TR_OK;
    }
    return msgpack_pack_double(&c->pk, d) ? jp_nomem(c) : TR_OK;
}

static int jp_value(jp_t *c, const json_t *v, int depth);

/* With TR_JSON_TAGS, packs {"$bin": hex} or {"$uint": "digits"} and sets
 * *done; leaves ordinary objects to the caller. */
static int jp_tagged(jp_t *c, const json_t *obj, bool *done)
{
    *done = false;
    if (!(c->flags & TR_JSON_TAGS) || json_object_size(obj) != 1) return TR_OK;
    void *it = json_object_iter((json_t *)obj);
    const char *key = json_object_iter_key(it);
    size_t klen = json_object_iter_key_len(it);
    const json_t *val = json_object_iter_value(it);
    bool is_bin = klen == 4 && memcmp(key, "$bin", 4) == 0;
    bool is_uint = klen == 5 && memcmp(key, "$uint", 5) == 0;
    if (!is_bin && !is_uint) return TR_OK;
    *done = true;
    if (!json_is_string(val))
        return jp_fail(c, TR_EINVAL,
                       is_bin ? "\"$bin\" must be a string of hex digits"
                              : "\"$uint\" must be a string of decimal digits");
    const char *s = json_string_value(val);
    size_t n = json_string_length(val);
    if (is_uint) {
        uint64_t u = 0;
        if (n == 0 || n > 20)
            return jp_fail(c, TR_EINVAL, "\"$uint\" is not a 64-bit unsigned integer");
        for (size_t i = 0; i < n; i++) {
            unsigned dgt = (unsigned)(s[i] - '0');
            if (dgt > 9 || u > (UINT64_MAX - dgt) / 10)
                return jp_fail(c, TR_EINVAL, "\"$uint\" is not a 64-bit unsigned integer");
            u = u * 10 + dgt;
        }
        return msgpack_pack_uint64(&c->pk, u) ? jp_nomem(c) : TR_OK;
    }
    if (n % 2 || n / 2 > TR_BODY_MAX)
        return jp_fail(c, n % 2 ? TR_EINVAL : TR_ETOOBIG,
                       n % 2 ? "\"$bin\" has an odd number of hex digits" : "\"$bin\" too long");
    if (msgpack_pack_bin(&c->pk, n / 2)) return jp_nomem(c);
    if (tr_buf_reserve(c->out, n / 2)) return jp_nomem(c);
    if (tr_unhex(c->out->data + c->out->len, n / 2, s, n))
        return jp_fail(c, TR_EINVAL, "\"$bin\" is not hex");
    c->out->len += n / 2;
    return TR_OK;
}

/* Packs an object with its keys sorted. Small objects sort on the stack. */
static int jp_object(jp_t *c, const json_t *obj, int depth)
{
    bool done;
    int rc = jp_tagged(c, obj, &done);
    if (rc || done) return rc;

    size_t n = json_object_size(obj);
    jp_member_t local[16], *m = local;
    if (n > 16 && !(m = malloc(n * sizeof *m))) return jp_nomem(c);
    size_t i = 0;
    for (void *it = json_object_iter((json_t *)obj); it && i < n;
         it = json_object_iter_next((json_t *)obj, it), i++) {
        m[i].key = json_object_iter_key(it);
        m[i].len = json_object_iter_key_len(it);
        m[i].val = json_object_iter_value(it);
    }
    n = i;
    if (n > 1) {
        if (n <= 16) { /* insertion sort: the usual object is tiny */
            for (size_t a = 1; a < n; a++) {
                jp_member_t t = m[a];
                size_t b = a;
                for (; b > 0 && jp_key_cmp(&m[b - 1], &t) > 0; b--)
                    m[b] = m[b - 1];
                m[b] = t;
            }
        } else {
            qsort(m, n, sizeof *m, jp_key_cmp);
        }
    }
    rc = msgpack_pack_map(&c->pk, n) ? jp_nomem(c) : TR_OK;
    jp_step_t *step = &c->path[c->depth++];
    for (i = 0; rc == TR_OK && i < n; i++) {
        *step = (jp_step_t){m[i].key, m[i].len, 0};
        if (i && jp_key_cmp(&m[i - 1], &m[i]) == 0)
            rc = jp_fail(c, TR_EINVAL, "duplicate key");
        else if (tr_pack_str(&c->pk, m[i].key, m[i].len))
            rc = jp_nomem(c);
        else
            rc = jp_value(c, m[i].val, depth + 1);
    }
    c->depth--;
    if (m != local) free(m);
    return rc;
}

/* Packs one value at nesting `depth` (the top value is 1, as in tr_rd_value). */
static int jp_value(jp_t *c, const json_t *v, int depth)
{
    if (depth > TR_MP_MAX_DEPTH) return jp_fail(c, TR_ETOOBIG, "nesting too deep");
    if (c->out->len - c->start > TR_BODY_MAX)
        return jp_fail(c, TR_ETOOBIG, "value larger than 65536 bytes of msgpack");
    switch (json_typeof(v)) {
    case JSON_NULL:
        return msgpack_pack_nil(&c->pk) ? jp_nomem(c) : TR_OK;
    case JSON_TRUE:
        return msgpack_pack_true(&c->pk) ? jp_nomem(c) : TR_OK;
    case JSON_FALSE:
        return msgpack_pack_false(&c->pk) ? jp_nomem(c) : TR_OK;
    case JSON_INTEGER: {
        json_int_t i = json_integer_value(v);
        int bad = i >= 0 ? msgpack_pack_uint64(&c->pk, (uint64_t)i)
                         : msgpack_pack_int64(&c->pk, (int64_t)i);
        return bad ? jp_nomem(c) : TR_OK;
    }
    case JSON_REAL:
        return jp_real(c, json_real_value(v));
    case JSON_STRING: {
        return tr_pack_str(&c->pk, json_string_value(v), json_string_length(v)) ? jp_nomem(c)
                                                                                : TR_OK;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(v);
        if (msgpack_pack_array(&c->pk, n)) return jp_nomem(c);
        jp_step_t *step = &c->path[c->depth++];
        int rc = TR_OK;
        for (size_t i = 0; rc == TR_OK && i < n; i++) {
            *step = (jp_step_t){NULL, 0, i};
            rc = jp_value(c, json_array_get(v, i), depth + 1);
        }
        c->depth--;
        return rc;
    }
    case JSON_OBJECT:
        return jp_object(c, v, depth);
    }
    return jp_fail(c, TR_EINVAL, "unknown JSON type");
}

int tr_json_pack(const json_t *v, unsigned flags, tr_buf_t *out, tr_err_t *err)
{
    if (!v || !out) return tr_err_set(err, TR_EINVAL, "no value to convert");
    jp_t c;
    c.out = out;
    c.start = out->len;
    c.flags = flags;
    c.err = err;
    c.depth = 0;
    tr_packer_init(&c.pk, out);
    int rc = jp_value(&c, v, 1);
    if (rc == TR_OK && out->len - c.start > TR_BODY_MAX)
        rc = jp_fail(&c, TR_ETOOBIG, "value larger than 65536 bytes of msgpack");
    return rc;
}

int tr_json_parse(const char *text, size_t len, unsigned flags, tr_buf_t *out, tr_err_t *err)
{
    json_error_t je;
    json_t *v =
        json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!v)
        return tr_err_set(err, TR_EMALFORMED, "line %d, column %d: %s", je.line, je.column,
                          je.text);
    int rc = tr_json_pack(v, flags, out, err);
    json_decref(v);
    return rc;
}

/* ---- msgpack → JSON ------------------------------------------------------ */

/* A one-key tagged object {tag: s}. */
static json_t *jm_tagged(const char *tag, json_t *s)
{
    json_t *o = json_object();
    if (!o || !s || json_object_set_new(o, tag, s)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Converts an unpacked (already checked canonical) object. NULL on ENOMEM. */
static json_t *jm_value(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: {
        if (o->via.u64 <= INT64_MAX) return json_integer((json_int_t)o->via.u64);
        char dec[24];
        snprintf(dec, sizeof dec, "%" PRIu64, o->via.u64);
        return jm_tagged("$uint", json_string(dec));
    }
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: /* msgpack-c gives NULL for an empty string */
        return json_stringn(o->via.str.size ? o->via.str.ptr : "", o->via.str.size);
    case MSGPACK_OBJECT_BIN: {
        char *hex = malloc(2 * (size_t)o->via.bin.size + 1);
        if (!hex) return NULL;
        tr_hex(hex, (const uint8_t *)o->via.bin.ptr, o->via.bin.size);
        json_t *r = jm_tagged("$bin", json_stringn(hex, 2 * (size_t)o->via.bin.size));
        free(hex);
        return r;
    }
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++)
            if (json_array_append_new(a, jm_value(&o->via.array.ptr[i]))) {
                json_decref(a);
                a = NULL;
            }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (json_object_setn_new(m, kv->key.via.str.size ? kv->key.via.str.ptr : "",
                                     kv->key.via.str.size,
                                     jm_value(&kv->val))) {
                json_decref(m);
                m = NULL;
            }
        }
        return m;
    }
    case MSGPACK_OBJECT_EXT:
        break;
    }
    return NULL;
}

int tr_json_from_mp(const uint8_t *mp, size_t len, json_t **out, tr_err_t *err)
{
    *out = NULL;
    const char *why = NULL;
    int rc = tr_mp_check(mp, len, &why);
    if (rc) return tr_err_set(err, rc, "%s", why ? why : tr_strerror(rc));

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, (const char *)mp, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u);
        return tr_err_set(err, TR_EMALFORMED, "msgpack value does not unpack");
    }
    *out = jm_value(&u.data);
    msgpack_unpacked_destroy(&u);
    return *out ? TR_OK : tr_err_set(err, TR_ENOMEM, "out of memory converting to JSON");
}

const char *tr_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "something else";
}
