/* crdt_op.c — op kinds and bodies (classification), state keys and body
 * builders (see tr_crdt.h and docs/crdt.md §2). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tr_crdt.h"

/* ---- kinds ------------------------------------------------------------- */

static const char *const cr_kind_names[TR_CRDT_KIND_COUNT] = {
    [TR_CRDT_APP] = "app.*",
    [TR_CRDT_LINK_REPO] = "link.repo",
    [TR_CRDT_TRIPLE_ADD] = "triple.add",
    [TR_CRDT_TRIPLE_REMOVE] = "triple.remove",
    [TR_CRDT_FIELD_SET] = "field.set",
    [TR_CRDT_FIELD_APPEND] = "field.append",
    [TR_CRDT_FIELD_ADD] = "field.add",
    [TR_CRDT_FIELD_REMOVE] = "field.remove",
    [TR_CRDT_COUNTER_ADD] = "counter.add",
    [TR_CRDT_FILE_ADD] = "file.add",
    [TR_CRDT_FILE_MODIFY] = "file.modify",
    [TR_CRDT_FILE_DELETE] = "file.delete",
    [TR_CRDT_FILE_RENAME] = "file.rename",
    [TR_CRDT_ENTITY_DELETE] = "entity.delete",
};

static const unsigned char cr_kind_lens[TR_CRDT_KIND_COUNT] = {
    [TR_CRDT_APP] = 5,          [TR_CRDT_LINK_REPO] = 9,
    [TR_CRDT_TRIPLE_ADD] = 10,  [TR_CRDT_TRIPLE_REMOVE] = 13,
    [TR_CRDT_FIELD_SET] = 9,    [TR_CRDT_FIELD_APPEND] = 12,
    [TR_CRDT_FIELD_ADD] = 9,    [TR_CRDT_FIELD_REMOVE] = 12,
    [TR_CRDT_COUNTER_ADD] = 11, [TR_CRDT_FILE_ADD] = 8,
    [TR_CRDT_FILE_MODIFY] = 11, [TR_CRDT_FILE_DELETE] = 11,
    [TR_CRDT_FILE_RENAME] = 11, [TR_CRDT_ENTITY_DELETE] = 13,
};

const char *tr_crdt_kind_name(tr_crdt_kind_t k)
{
    return (unsigned)k < TR_CRDT_KIND_COUNT ? cr_kind_names[k] : "?";
}

static bool cr_printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return false;
    }
    return true;
}

static bool cr_eq(tr_crdt_str_t a, tr_crdt_str_t b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* ---- body parsing ------------------------------------------------------ */

/* One key a body may hold. Keys are listed in canonical (bytewise) order, so
 * one pass over a canonical map checks presence, order and unknown keys. */
typedef enum { BK_STR, BK_VALUE, BK_PRED, BK_INT, BK_HASH, BK_UINT } bk_type_t;

typedef struct {
    const char *name;
    size_t len; /* strlen(name) */
    bk_type_t type;
    bool required;
    size_t min, max; /* BK_STR: byte length */
    bool printable;  /* BK_STR: no control characters */
} bk_key_t;

typedef struct {
    bool present;
    tr_crdt_str_t str;
    const uint8_t *val; /* BK_VALUE, BK_PRED (start of the elements), BK_HASH */
    size_t len;         /* BK_VALUE bytes; BK_PRED count */
    int64_t i;
    uint64_t u;
} bk_slot_t;

static const char *bk_type_text(const bk_key_t *k)
{
    switch (k->type) {
    case BK_STR:
        return "a string";
    case BK_VALUE:
        return "a value";
    case BK_PRED:
        return "an array of 32-byte hashes";
    case BK_INT:
        return "an integer in the range of int64";
    case BK_HASH:
        return "a 32-byte binary hash";
    case BK_UINT:
        return "a non-negative integer";
    }
    return "?";
}

/* Reads the value of key k into slot s. Returns a static reason or NULL. */
static const char *bk_read(tr_rd_t *r, const bk_key_t *k, bk_slot_t *s, char *why, size_t whycap)
{
    switch (k->type) {
    case BK_STR:
        if (tr_rd_str(r, &s->str.p, &s->str.n, 0, SIZE_MAX)) return bk_type_text(k);
        if (s->str.n < k->min || s->str.n > k->max) {
            snprintf(why, whycap, "expected %zu to %zu bytes, got %zu", k->min, k->max, s->str.n);
            return why;
        }
        if (k->printable && !cr_printable(s->str.p, s->str.n))
            return "must not contain control characters";
        return NULL;
    case BK_VALUE:
        return tr_rd_value(r, &s->val, &s->len) ? "not a canonical value" : NULL;
    case BK_PRED: {
        uint32_t n;
        if (tr_rd_array(r, &n)) return bk_type_text(k);
        if (n > TR_CRDT_PRED_MAX) return "more than " TR_CRDT_PRED_MAX_S " hashes";
        s->val = r->p;
        s->len = n;
        const uint8_t *prev = NULL;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *h;
            size_t hl;
            if (tr_rd_bin(r, &h, &hl, TR_HASH_LEN, TR_HASH_LEN)) return bk_type_text(k);
            if (prev && memcmp(prev, h, TR_HASH_LEN) >= 0)
                return "hashes must be in ascending order and unique";
            prev = h;
        }
        return NULL;
    }
    case BK_INT:
        return tr_rd_int(r, &s->i) ? bk_type_text(k) : NULL;
    case BK_HASH: {
        size_t hl;
        return tr_rd_bin(r, &s->val, &hl, TR_HASH_LEN, TR_HASH_LEN) ? bk_type_text(k) : NULL;
    }
    case BK_UINT:
        return tr_rd_uint(r, &s->u) ? bk_type_text(k) : NULL;
    }
    return "?";
}

/* "field, pred, value": the keys of a body, for messages. */
static void bk_names(char *out, size_t cap, const bk_key_t *keys, size_t nkeys)
{
    out[0] = '\0';
    for (size_t i = 0, o = 0; i < nkeys && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", keys[i].name);
}

/* Parses a body that must be a map holding exactly the listed keys (the
 * required ones, and optional ones at most once). Fails with TR_EBODY and a
 * reason naming the kind and the key. */
static int bk_parse(const tr_op_t *op, const bk_key_t *keys, size_t nkeys, bk_slot_t *slots,
                    tr_err_t *err)
{
    const int kl = (int)op->kind_len;
    char why[96];
    tr_rd_t r;
    uint32_t n;
    tr_rd_init(&r, op->body, op->body_len);
    memset(slots, 0, nkeys * sizeof *slots);
    if (tr_rd_map(&r, &n)) goto bad_shape;
    size_t next = 0;
    for (uint32_t e = 0; e < n; e++) {
        const char *k;
        size_t klen;
        if (tr_rd_str(&r, &k, &klen, 0, 256))
            return tr_err_set(err, TR_EBODY, "%.*s body: map keys must be strings", kl, op->kind);
        size_t i = next; /* canonical maps are sorted: look ahead only */
        while (i < nkeys && !(keys[i].len == klen && memcmp(keys[i].name, k, klen) == 0))
            i++;
        if (i == nkeys) {
            for (i = 0; i < next; i++)
                if (keys[i].len == klen && memcmp(keys[i].name, k, klen) == 0)
                    return tr_err_set(err, TR_EBODY,
                                      "%.*s body: key \"%s\" repeated or out of order", kl,
                                      op->kind, keys[i].name);
            char names[160];
            bk_names(names, sizeof names, keys, nkeys);
            return tr_err_set(err, TR_EBODY,
                              "%.*s body: unexpected key \"%.*s\" (it takes only %s)", kl, op->kind,
                              (int)(klen > 64 ? 64 : klen), k, names);
        }
        next = i + 1;
        const char *bad = bk_read(&r, &keys[i], &slots[i], why, sizeof why);
        if (bad)
            return tr_err_set(err, TR_EBODY, "%.*s body: key \"%s\": %s", kl, op->kind,
                              keys[i].name, bad);
        slots[i].present = true;
    }
    if (r.p != r.end) goto bad_shape;
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i].required && !slots[i].present)
            return tr_err_set(err, TR_EBODY, "%.*s body: missing key \"%s\"", kl, op->kind,
                              keys[i].name);
    return TR_OK;
bad_shape:;
    char names[160];
    bk_names(names, sizeof names, keys, nkeys);
    return tr_err_set(err, TR_EBODY, "%.*s body: expected a map {%s}", kl, op->kind, names);
}

/* ---- classification --------------------------------------------------- */

static const bk_key_t bk_triple[] = {
    {"o", 1, BK_STR, true, 0, TR_CRDT_OBJECT_MAX, false},
    {"p", 1, BK_STR, true, 1, TR_CRDT_PRED_MAX_P, true},
    {"s", 1, BK_STR, true, 1, TR_TARGET_MAX, true},
};
static const bk_key_t bk_set[] = {
    {"field", 5, BK_STR, true, 1, TR_CRDT_FIELD_MAX, true},
    {"pred", 4, BK_PRED, true, 0, 0, false},
    {"value", 5, BK_VALUE, true, 0, 0, false},
};
static const bk_key_t bk_field[] = {
    {"field", 5, BK_STR, true, 1, TR_CRDT_FIELD_MAX, true},
    {"value", 5, BK_VALUE, true, 0, 0, false},
};
static const bk_key_t bk_counter[] = {
    {"field", 5, BK_STR, true, 1, TR_CRDT_FIELD_MAX, true},
    {"n", 1, BK_INT, true, 0, 0, false},
};
static const bk_key_t bk_file_content[] = {
    {"hash", 4, BK_HASH, true, 0, 0, false},
    {"path", 4, BK_STR, true, 1, TR_TARGET_MAX, true},
    {"size", 4, BK_UINT, true, 0, 0, false},
};
static const bk_key_t bk_file_delete[] = {
    {"path", 4, BK_STR, true, 1, TR_TARGET_MAX, true},
};
static const bk_key_t bk_file_rename[] = {
    {"from", 4, BK_STR, true, 1, TR_TARGET_MAX, true},
    {"hash", 4, BK_HASH, true, 0, 0, false},
    {"path", 4, BK_STR, true, 1, TR_TARGET_MAX, true},
    {"size", 4, BK_UINT, true, 0, 0, false},
};

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

static int cr_kind_of(const tr_op_t *op, tr_crdt_kind_t *out)
{
    if (op->kind_len > 4 && memcmp(op->kind, "app.", 4) == 0) {
        *out = TR_CRDT_APP;
        return TR_OK;
    }
    for (int k = TR_CRDT_LINK_REPO; k < TR_CRDT_KIND_COUNT; k++)
        if (cr_kind_lens[k] == op->kind_len && cr_kind_names[k][0] == op->kind[0] &&
            memcmp(cr_kind_names[k], op->kind, op->kind_len) == 0) {
            *out = (tr_crdt_kind_t)k;
            return TR_OK;
        }
    return TR_EKIND;
}

/* The target of entity and file ops names the thing they change: it must be
 * non-empty (protocol.md already makes it printable and ≤ 1024 bytes). */
static int cr_need_target(const tr_op_t *op, const char *what, tr_err_t *err)
{
    if (op->target_len == 0)
        return tr_err_set(err, TR_EBODY, "%.*s: the target (%s) must not be empty",
                          (int)op->kind_len, op->kind, what);
    return TR_OK;
}

static int cr_field_name(const tr_op_t *op, tr_crdt_str_t f, tr_err_t *err)
{
    if (cr_eq(f, (tr_crdt_str_t){TR_CRDT_FIELD_FINGERPRINT, 11}))
        return tr_err_set(err, TR_EIMMUTABLE,
                          "%.*s body: key \"field\": \"fingerprint\" is computed after every "
                          "merge and cannot be written",
                          (int)op->kind_len, op->kind);
    return TR_OK;
}

/* Classification is a function of the op alone (kind, target, body), so
 * every replica accepts or refuses the same ops. Each kind's body is a map
 * with exactly its keys; see docs/crdt.md §2 for the table. */
int tr_crdt_classify(const tr_op_t *op, tr_crdt_op_t *v, tr_err_t *err)
{
    bk_slot_t sl[4];
    int rc;
    if (!op || !v) return tr_err_set(err, TR_EINVAL, "classify: NULL argument");
    memset(v, 0, sizeof *v);
    if (!tr_op_kind_valid(op->kind, op->kind_len) || cr_kind_of(op, &v->kind))
        return tr_err_set(err, TR_EKIND,
                          "unknown op kind \"%.*s\" (known: triple.add, triple.remove, field.set, "
                          "field.append, field.add, field.remove, counter.add, file.add, "
                          "file.modify, file.delete, file.rename, entity.delete, link.repo, app.*)",
                          (int)(op->kind_len > 64 ? 64 : op->kind_len), op->kind);
    v->lamport = op->lamport;
    memcpy(v->author, op->author, TR_KEY_LEN);
    v->seq = op->seq;
    memcpy(v->hash, op->hash, TR_HASH_LEN);
    v->target = (tr_crdt_str_t){op->target, op->target_len};

    switch (v->kind) {
    case TR_CRDT_APP:
    case TR_CRDT_LINK_REPO:
        return TR_OK; /* any body; nothing to materialize (yet) */
    case TR_CRDT_TRIPLE_ADD:
    case TR_CRDT_TRIPLE_REMOVE:
        if ((rc = bk_parse(op, bk_triple, NKEYS(bk_triple), sl, err))) return rc;
        v->o = sl[0].str;
        v->p = sl[1].str;
        v->s = sl[2].str;
        if (!cr_eq(v->s, v->target))
            return tr_err_set(err, TR_EBODY, "%.*s body: key \"s\" must equal the op's target",
                              (int)op->kind_len, op->kind);
        v->nkeys = 1;
        return TR_OK;
    case TR_CRDT_FIELD_SET:
        if ((rc = cr_need_target(op, "entity id", err))) return rc;
        if ((rc = bk_parse(op, bk_set, NKEYS(bk_set), sl, err))) return rc;
        v->field = sl[0].str;
        v->pred = sl[1].val;
        v->npred = sl[1].len;
        v->value = sl[2].val;
        v->value_len = sl[2].len;
        if ((rc = cr_field_name(op, v->field, err))) return rc;
        v->nkeys = 1;
        return TR_OK;
    case TR_CRDT_FIELD_APPEND:
    case TR_CRDT_FIELD_ADD:
    case TR_CRDT_FIELD_REMOVE:
        if ((rc = cr_need_target(op, "entity id", err))) return rc;
        if ((rc = bk_parse(op, bk_field, NKEYS(bk_field), sl, err))) return rc;
        v->field = sl[0].str;
        v->value = sl[1].val;
        v->value_len = sl[1].len;
        if ((rc = cr_field_name(op, v->field, err))) return rc;
        v->nkeys = 1;
        return TR_OK;
    case TR_CRDT_COUNTER_ADD:
        if ((rc = cr_need_target(op, "entity id", err))) return rc;
        if ((rc = bk_parse(op, bk_counter, NKEYS(bk_counter), sl, err))) return rc;
        v->field = sl[0].str;
        v->n = sl[1].i;
        if ((rc = cr_field_name(op, v->field, err))) return rc;
        v->nkeys = 1;
        return TR_OK;
    case TR_CRDT_FILE_ADD:
    case TR_CRDT_FILE_MODIFY:
        if ((rc = bk_parse(op, bk_file_content, NKEYS(bk_file_content), sl, err))) return rc;
        memcpy(v->content_hash, sl[0].val, TR_HASH_LEN);
        v->path = sl[1].str;
        v->size = sl[2].u;
        v->has_content = true;
        break;
    case TR_CRDT_FILE_DELETE:
        if ((rc = bk_parse(op, bk_file_delete, NKEYS(bk_file_delete), sl, err))) return rc;
        v->path = sl[0].str;
        break;
    case TR_CRDT_FILE_RENAME:
        if ((rc = bk_parse(op, bk_file_rename, NKEYS(bk_file_rename), sl, err))) return rc;
        v->from = sl[0].str;
        memcpy(v->content_hash, sl[1].val, TR_HASH_LEN);
        v->path = sl[2].str;
        v->size = sl[3].u;
        v->has_content = true;
        if (cr_eq(v->from, v->path))
            return tr_err_set(err, TR_EBODY,
                              "file.rename body: key \"from\" must differ from \"path\"");
        break;
    case TR_CRDT_ENTITY_DELETE:
        if ((rc = cr_need_target(op, "entity id", err))) return rc;
        if (op->body_len != 1 || op->body[0] != 0x80)
            return tr_err_set(err, TR_EBODY, "entity.delete body: expected an empty map {}");
        v->nkeys = 1;
        return TR_OK;
    default:
        return tr_err_set(err, TR_EKIND, "unknown op kind");
    }
    /* file ops */
    if (!cr_eq(v->path, v->target))
        return tr_err_set(err, TR_EBODY, "%.*s body: key \"path\" must equal the op's target",
                          (int)op->kind_len, op->kind);
    v->nkeys = v->kind == TR_CRDT_FILE_RENAME ? 2 : 1;
    return TR_OK;
}

/* ---- keys -------------------------------------------------------------- */

/* Appends the key array [ns, parts…] with `total` components, of which the
 * first nparts are written (fewer than total: a prefix for range scans). */
static int cr_key(char ns, const tr_crdt_str_t *parts, size_t nparts, size_t total, tr_buf_t *out)
{
    size_t start = out->len;
    msgpack_packer pk;
    char nsb = ns;
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_array(&pk, total + 1) | tr_pack_str(&pk, &nsb, 1);
    for (size_t i = 0; i < nparts; i++)
        bad |= tr_pack_str(&pk, parts[i].p, parts[i].n);
    if (bad) {
        out->len = start;
        return TR_ENOMEM;
    }
    return TR_OK;
}

static size_t cr_ns_parts(tr_crdt_ns_t ns)
{
    switch (ns) {
    case TR_CRDT_NS_TRIPLE:
        return 3;
    case TR_CRDT_NS_FIELD:
    case TR_CRDT_NS_COUNTER:
        return 2;
    case TR_CRDT_NS_FILE:
    case TR_CRDT_NS_ENTITY:
        return 1;
    }
    return 0;
}

int tr_crdt_key_triple(tr_crdt_str_t s, tr_crdt_str_t p, tr_crdt_str_t o, tr_buf_t *out)
{
    tr_crdt_str_t parts[3] = {s, p, o};
    return cr_key(TR_CRDT_NS_TRIPLE, parts, 3, 3, out);
}

int tr_crdt_key_field(tr_crdt_str_t entity, tr_crdt_str_t field, tr_buf_t *out)
{
    tr_crdt_str_t parts[2] = {entity, field};
    return cr_key(TR_CRDT_NS_FIELD, parts, 2, 2, out);
}

int tr_crdt_key_counter(tr_crdt_str_t entity, tr_crdt_str_t field, tr_buf_t *out)
{
    tr_crdt_str_t parts[2] = {entity, field};
    return cr_key(TR_CRDT_NS_COUNTER, parts, 2, 2, out);
}

int tr_crdt_key_file(tr_crdt_str_t path, tr_buf_t *out)
{
    return cr_key(TR_CRDT_NS_FILE, &path, 1, 1, out);
}

int tr_crdt_key_entity(tr_crdt_str_t entity, tr_buf_t *out)
{
    return cr_key(TR_CRDT_NS_ENTITY, &entity, 1, 1, out);
}

int tr_crdt_key_prefix(tr_crdt_ns_t ns, const tr_crdt_str_t *parts, size_t nparts, tr_buf_t *out)
{
    size_t total = cr_ns_parts(ns);
    if (total == 0 || nparts >= total || (nparts && !parts)) return TR_EINVAL;
    return cr_key((char)ns, parts, nparts, total, out);
}

int tr_crdt_op_key(const tr_crdt_op_t *v, size_t i, tr_buf_t *out)
{
    if (!v || i >= v->nkeys) return TR_EINVAL;
    switch (v->kind) {
    case TR_CRDT_TRIPLE_ADD:
    case TR_CRDT_TRIPLE_REMOVE:
        return tr_crdt_key_triple(v->s, v->p, v->o, out);
    case TR_CRDT_FIELD_SET:
    case TR_CRDT_FIELD_APPEND:
    case TR_CRDT_FIELD_ADD:
    case TR_CRDT_FIELD_REMOVE:
        return tr_crdt_key_field(v->target, v->field, out);
    case TR_CRDT_COUNTER_ADD:
        return tr_crdt_key_counter(v->target, v->field, out);
    case TR_CRDT_FILE_ADD:
    case TR_CRDT_FILE_MODIFY:
    case TR_CRDT_FILE_DELETE:
        return tr_crdt_key_file(v->path, out);
    case TR_CRDT_FILE_RENAME:
        return tr_crdt_key_file(i == 0 ? v->path : v->from, out);
    case TR_CRDT_ENTITY_DELETE:
        return tr_crdt_key_entity(v->target, out);
    default:
        return TR_EINVAL;
    }
}

/* Strict: an array of 2–4 strings, a known one-letter namespace with its
 * component count, nothing after. */
int tr_crdt_key_parse(const uint8_t *key, size_t len, tr_crdt_key_t *out, tr_err_t *err)
{
    tr_rd_t r;
    uint32_t n;
    const char *ns;
    size_t nsl;
    memset(out, 0, sizeof *out);
    tr_rd_init(&r, key, len);
    if (tr_rd_array(&r, &n) || n < 2 || n > 4 || tr_rd_str(&r, &ns, &nsl, 1, 1))
        return tr_err_set(err, TR_ECORRUPT, "not a state key");
    out->ns = (tr_crdt_ns_t)(unsigned char)ns[0];
    if (cr_ns_parts(out->ns) != n - 1)
        return tr_err_set(err, TR_ECORRUPT, "state key of unknown namespace '%c'", ns[0]);
    for (uint32_t i = 0; i + 1 < n; i++)
        if (tr_rd_str(&r, &out->part[i].p, &out->part[i].n, 0, SIZE_MAX))
            return tr_err_set(err, TR_ECORRUPT, "state key component is not a string");
    if (r.p != r.end) return tr_err_set(err, TR_ECORRUPT, "trailing bytes after a state key");
    out->nparts = n - 1;
    return TR_OK;
}

/* ---- body builders ----------------------------------------------------- */

int tr_crdt_body_triple(tr_crdt_str_t s, tr_crdt_str_t p, tr_crdt_str_t o, tr_buf_t *out)
{
    size_t start = out->len;
    msgpack_packer pk;
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_map(&pk, 3);
    bad |= tr_pack_str(&pk, "o", 1) | tr_pack_str(&pk, o.p, o.n);
    bad |= tr_pack_str(&pk, "p", 1) | tr_pack_str(&pk, p.p, p.n);
    bad |= tr_pack_str(&pk, "s", 1) | tr_pack_str(&pk, s.p, s.n);
    if (bad) out->len = start;
    return bad ? TR_ENOMEM : TR_OK;
}

static int cr_hash_cmp(const void *a, const void *b)
{
    return memcmp(*(const uint8_t *const *)a, *(const uint8_t *const *)b, TR_HASH_LEN);
}

/* pred = every write the state holds (sorted, unique), so the new write
 * supersedes exactly what the writer sees: one candidate for a register, all
 * of them for an open manual_resolution conflict. This is the body
 * `trellis set` and `trellis resolve` write. */
int tr_crdt_body_set(tr_crdt_str_t field, const uint8_t *value, size_t value_len,
                     const uint8_t *state, size_t state_len, tr_buf_t *out, tr_err_t *err)
{
    tr_crdt_entry_t ents[TR_CRDT_PRED_MAX];
    const uint8_t *hs[TR_CRDT_PRED_MAX];
    size_t n = 0, nh = 0;
    /* Only registers hold writes a field.set overwrites (a list's entries
     * are not; the apply step refuses field.set on lists and sets). */
    bool reg =
        state && state_len >= 2 && state[1] >= TR_CRDT_S_REG && state[1] <= TR_CRDT_S_RESTRICT;
    if (reg) {
        int rc = tr_crdt_entries(state, state_len, ents, TR_CRDT_PRED_MAX, &n, err);
        if (rc) return rc;
        if (n > TR_CRDT_PRED_MAX)
            return tr_err_set(err, TR_ETOOBIG,
                              "field \"%.*s\" holds %zu writes; one field.set can overwrite at "
                              "most " TR_CRDT_PRED_MAX_S,
                              (int)field.n, field.p, n);
        for (size_t i = 0; i < n; i++)
            hs[i] = ents[i].hash;
        qsort(hs, n, sizeof *hs, cr_hash_cmp);
        for (size_t i = 0; i < n; i++)
            if (nh == 0 || memcmp(hs[nh - 1], hs[i], TR_HASH_LEN) != 0) hs[nh++] = hs[i];
    }
    size_t start = out->len;
    msgpack_packer pk;
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_map(&pk, 3);
    bad |= tr_pack_str(&pk, "field", 5) | tr_pack_str(&pk, field.p, field.n);
    bad |= tr_pack_str(&pk, "pred", 4) | msgpack_pack_array(&pk, nh);
    for (size_t i = 0; i < nh; i++)
        bad |= tr_pack_bin(&pk, hs[i], TR_HASH_LEN);
    bad |= tr_pack_str(&pk, "value", 5);
    bad |= tr_buf_append(out, value, value_len) ? 1 : 0;
    if (bad) {
        out->len = start;
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    return TR_OK;
}

int tr_crdt_body_field(tr_crdt_str_t field, const uint8_t *value, size_t value_len, tr_buf_t *out)
{
    size_t start = out->len;
    msgpack_packer pk;
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_map(&pk, 2);
    bad |= tr_pack_str(&pk, "field", 5) | tr_pack_str(&pk, field.p, field.n);
    bad |= tr_pack_str(&pk, "value", 5);
    bad |= tr_buf_append(out, value, value_len) ? 1 : 0;
    if (bad) out->len = start;
    return bad ? TR_ENOMEM : TR_OK;
}

int tr_crdt_body_counter(tr_crdt_str_t field, int64_t n, tr_buf_t *out)
{
    size_t start = out->len;
    msgpack_packer pk;
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_map(&pk, 2);
    bad |= tr_pack_str(&pk, "field", 5) | tr_pack_str(&pk, field.p, field.n);
    bad |= tr_pack_str(&pk, "n", 1);
    bad |= n >= 0 ? msgpack_pack_uint64(&pk, (uint64_t)n) : msgpack_pack_int64(&pk, n);
    if (bad) out->len = start;
    return bad ? TR_ENOMEM : TR_OK;
}

int tr_crdt_body_file(tr_crdt_str_t path, const uint8_t *content_hash, uint64_t size,
                      tr_crdt_str_t from, tr_buf_t *out)
{
    size_t start = out->len;
    msgpack_packer pk;
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_map(&pk, 1 + (from.p ? 1 : 0) + (content_hash ? 2 : 0));
    if (from.p) bad |= tr_pack_str(&pk, "from", 4) | tr_pack_str(&pk, from.p, from.n);
    if (content_hash) bad |= tr_pack_str(&pk, "hash", 4) | tr_pack_bin(&pk, content_hash, 32);
    bad |= tr_pack_str(&pk, "path", 4) | tr_pack_str(&pk, path.p, path.n);
    if (content_hash) bad |= tr_pack_str(&pk, "size", 4) | msgpack_pack_uint64(&pk, size);
    if (bad) out->len = start;
    return bad ? TR_ENOMEM : TR_OK;
}
