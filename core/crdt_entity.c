/* crdt_entity.c — an entity's materialized map and its fingerprint (see
 * tr_crdt.h and docs/crdt.md §6). */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "tr_crdt.h"

/* Canonical msgpack headers, written by hand so the fingerprint can be
 * hashed as a stream without building the map. */
static size_t en_hdr(uint8_t *b, uint64_t n, uint8_t fix, uint8_t fixmax, uint8_t t8, uint8_t t16,
                     uint8_t t32)
{
    if (n <= (uint64_t)(fixmax - fix)) {
        b[0] = (uint8_t)(fix + n);
        return 1;
    }
    if (t8 && n <= 0xff) {
        b[0] = t8;
        b[1] = (uint8_t)n;
        return 2;
    }
    if (n <= 0xffff) {
        b[0] = t16;
        b[1] = (uint8_t)(n >> 8);
        b[2] = (uint8_t)n;
        return 3;
    }
    b[0] = t32;
    for (int i = 0; i < 4; i++)
        b[1 + i] = (uint8_t)(n >> (24 - 8 * i));
    return 5;
}

static size_t en_map_hdr(uint8_t *b, uint64_t n)
{
    return en_hdr(b, n, 0x80, 0x8f, 0, 0xde, 0xdf);
}

static size_t en_str_hdr(uint8_t *b, uint64_t n)
{
    return en_hdr(b, n, 0xa0, 0xbf, 0xd9, 0xda, 0xdb);
}

static int en_name_cmp(tr_crdt_str_t a, tr_crdt_str_t b)
{
    int c = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);
    if (c) return c;
    return a.n < b.n ? -1 : a.n > b.n;
}

static bool en_is_fingerprint(tr_crdt_str_t n)
{
    return n.n == 11 && memcmp(n.p, TR_CRDT_FIELD_FINGERPRINT, 11) == 0;
}

/* Hashes the map {name: value} as a stream: header, then each key's
 * header and bytes, then its value bytes. */
int tr_crdt_fingerprint(const tr_crdt_field_t *fields, size_t n, uint8_t out[TR_HASH_LEN],
                        tr_err_t *err)
{
    crypto_generichash_state hs;
    uint8_t h[5];
    for (size_t i = 0; i < n; i++) {
        if (en_is_fingerprint(fields[i].name))
            return tr_err_set(err, TR_EINVAL, "fingerprint: \"fingerprint\" is not an input");
        if (i && en_name_cmp(fields[i - 1].name, fields[i].name) >= 0)
            return tr_err_set(err, TR_EINVAL, "fingerprint: fields not sorted by name or repeated");
        if (tr_mp_check(fields[i].value, fields[i].value_len, NULL))
            return tr_err_set(err, TR_EINVAL, "fingerprint: a value is not canonical msgpack");
    }
    crypto_generichash_init(&hs, NULL, 0, TR_HASH_LEN);
    crypto_generichash_update(&hs, h, en_map_hdr(h, n));
    for (size_t i = 0; i < n; i++) {
        crypto_generichash_update(&hs, h, en_str_hdr(h, fields[i].name.n));
        crypto_generichash_update(&hs, (const uint8_t *)fields[i].name.p, fields[i].name.n);
        crypto_generichash_update(&hs, fields[i].value, fields[i].value_len);
    }
    crypto_generichash_final(&hs, out, TR_HASH_LEN);
    return TR_OK;
}

/* ---- entity builder ------------------------------------------------------ */

typedef struct {
    size_t name_off, name_len; /* in e->bytes */
    size_t val_off, val_len;
    bool counter;     /* from a ["c", …] key: a field of the same name wins */
    const char *name; /* set by finish, once e->bytes no longer moves */
} en_item_t;

struct tr_crdt_entity {
    uint64_t tomb;
    tr_buf_t bytes; /* names and values */
    en_item_t *items;
    size_t nitems, cap;
    tr_crdt_field_t *fields;
    size_t fcap;
};

int tr_crdt_entity_new(tr_crdt_entity_t **out)
{
    *out = calloc(1, sizeof **out);
    return *out ? TR_OK : TR_ENOMEM;
}

void tr_crdt_entity_destroy(tr_crdt_entity_t **ep)
{
    if (!ep || !*ep) return;
    tr_buf_free(&(*ep)->bytes);
    free((*ep)->items);
    free((*ep)->fields);
    free(*ep);
    *ep = NULL;
}

void tr_crdt_entity_reset(tr_crdt_entity_t *e, uint64_t tomb_lamport)
{
    e->tomb = tomb_lamport;
    e->nitems = 0;
    tr_buf_reset(&e->bytes);
}

/* Materializes one field or counter state (tr_crdt_value, with the entity's
 * deletion lamport) and keeps it if it has something to show. */
int tr_crdt_entity_add(tr_crdt_entity_t *e, const tr_strategies_t *st, const uint8_t *key,
                       size_t key_len, const uint8_t *state, size_t state_len, tr_err_t *err)
{
    tr_crdt_key_t k;
    int rc = tr_crdt_key_parse(key, key_len, &k, err);
    if (rc) return rc;
    if (k.ns != TR_CRDT_NS_FIELD && k.ns != TR_CRDT_NS_COUNTER)
        return tr_err_set(err, TR_EINVAL, "entity: not a field or counter key");
    if (en_is_fingerprint(k.part[1])) return TR_OK;
    if (e->nitems == e->cap) {
        size_t ncap = e->cap ? 2 * e->cap : 16;
        en_item_t *p = realloc(e->items, ncap * sizeof *p);
        if (!p) return tr_err_set(err, TR_ENOMEM, "out of memory");
        e->items = p;
        e->cap = ncap;
    }
    size_t start = e->bytes.len;
    if (tr_buf_append(&e->bytes, k.part[1].p, k.part[1].n))
        return tr_err_set(err, TR_ENOMEM, "out of memory");
    size_t voff = e->bytes.len;
    tr_crdt_info_t info;
    rc = tr_crdt_value(st, state, state_len, e->tomb, &e->bytes, &info, err);
    if (rc || !info.present) {
        e->bytes.len = start;
        return rc;
    }
    e->items[e->nitems++] = (en_item_t){
        start, k.part[1].n, voff, e->bytes.len - voff, k.ns == TR_CRDT_NS_COUNTER, NULL};
    return TR_OK;
}

static int en_item_cmp(const void *a, const void *b)
{
    const en_item_t *x = a, *y = b;
    tr_crdt_str_t xn = {x->name, x->name_len}, yn = {y->name, y->name_len};
    int c = en_name_cmp(xn, yn);
    if (c) return c;
    return (int)x->counter - (int)y->counter; /* the field first */
}

/* Sorts by name (a field before a counter of the same name), drops the
 * shadowed counters, then writes the map and hashes it. */
int tr_crdt_entity_finish(tr_crdt_entity_t *e, tr_buf_t *map, uint8_t fp[TR_HASH_LEN],
                          size_t *nfields, tr_err_t *err)
{
    for (size_t i = 0; i < e->nitems; i++)
        e->items[i].name = (const char *)e->bytes.data + e->items[i].name_off;
    if (e->nitems > 1) qsort(e->items, e->nitems, sizeof *e->items, en_item_cmp);
    if (e->fcap < e->nitems) {
        tr_crdt_field_t *f = realloc(e->fields, e->nitems * sizeof *f);
        if (!f) return tr_err_set(err, TR_ENOMEM, "out of memory");
        e->fields = f;
        e->fcap = e->nitems;
    }
    size_t n = 0;
    for (size_t i = 0; i < e->nitems; i++) {
        const en_item_t *it = &e->items[i];
        tr_crdt_str_t name = {(const char *)e->bytes.data + it->name_off, it->name_len};
        if (n && en_name_cmp(e->fields[n - 1].name, name) == 0) continue;
        e->fields[n++] = (tr_crdt_field_t){name, e->bytes.data + it->val_off, it->val_len};
    }
    *nfields = n;
    if (map) {
        size_t start = map->len;
        uint8_t h[5];
        int bad = tr_buf_append(map, h, en_map_hdr(h, n));
        for (size_t i = 0; i < n && !bad; i++) {
            bad |= tr_buf_append(map, h, en_str_hdr(h, e->fields[i].name.n));
            bad |= tr_buf_append(map, e->fields[i].name.p, e->fields[i].name.n);
            bad |= tr_buf_append(map, e->fields[i].value, e->fields[i].value_len);
        }
        if (bad) {
            map->len = start;
            return tr_err_set(err, TR_ENOMEM, "out of memory");
        }
    }
    return tr_crdt_fingerprint(e->fields, n, fp, err);
}
