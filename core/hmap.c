/*
 * hmap.c — open-addressing hash table keyed by 32 bytes (see tr_hmap.h).
 * Linear probing with backward-shift deletion, so there are no tombstones and
 * a table used as a sliding set (the heads of a branch while ops are appended)
 * never degrades.
 */
#include "tr_hmap.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_HDR 8 /* used flag, padded so key and value stay 8-aligned */

static unsigned char hkey[crypto_shorthash_KEYBYTES];
static pthread_once_t hkey_once = PTHREAD_ONCE_INIT;

static void hkey_init(void)
{
    if (sodium_init() < 0) return; /* keep the zero key: still correct, only predictable */
    randombytes_buf(hkey, sizeof hkey);
}

static size_t stride(const tr_hmap_t *m)
{
    return SLOT_HDR + 32 + ((m->vsize + 7) & ~(size_t)7);
}

static uint64_t hfun(const uint8_t key[32])
{
    uint8_t out[crypto_shorthash_BYTES];
    crypto_shorthash(out, key, 32, hkey);
    uint64_t h;
    memcpy(&h, out, sizeof h);
    return h;
}

void tr_hmap_init(tr_hmap_t *m, size_t vsize)
{
    pthread_once(&hkey_once, hkey_init);
    memset(m, 0, sizeof *m);
    m->vsize = vsize;
}

void tr_hmap_free(tr_hmap_t *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

void tr_hmap_clear(tr_hmap_t *m)
{
    if (m->slots && m->count) memset(m->slots, 0, m->cap * stride(m));
    m->count = 0;
}

static uint8_t *slot(const tr_hmap_t *m, size_t i)
{
    return m->slots + i * stride(m);
}

void *tr_hmap_get(const tr_hmap_t *m, const uint8_t key[32])
{
    if (!m->count) return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hfun(key) & mask;; i = (i + 1) & mask) {
        uint8_t *e = slot(m, i);
        if (!e[0]) return NULL;
        if (memcmp(e + SLOT_HDR, key, 32) == 0) return e + SLOT_HDR + 32;
    }
}

static int hmap_grow(tr_hmap_t *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16, st = stride(m);
    uint8_t *ns = calloc(ncap, st);
    if (!ns) return TR_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        uint8_t *e = slot(m, i);
        if (!e[0]) continue;
        size_t j = hfun(e + SLOT_HDR) & (ncap - 1);
        while (ns[j * st]) j = (j + 1) & (ncap - 1);
        memcpy(ns + j * st, e, st);
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return TR_OK;
}

int tr_hmap_put(tr_hmap_t *m, const uint8_t key[32], void **val, bool *created)
{
    if ((m->count + 1) * 2 > m->cap && hmap_grow(m) != TR_OK) return TR_ENOMEM;
    size_t mask = m->cap - 1;
    for (size_t i = hfun(key) & mask;; i = (i + 1) & mask) {
        uint8_t *e = slot(m, i);
        if (!e[0]) {
            e[0] = 1;
            memcpy(e + SLOT_HDR, key, 32);
            memset(e + SLOT_HDR + 32, 0, stride(m) - SLOT_HDR - 32);
            m->count++;
            if (created) *created = true;
            *val = e + SLOT_HDR + 32;
            return TR_OK;
        }
        if (memcmp(e + SLOT_HDR, key, 32) == 0) {
            if (created) *created = false;
            *val = e + SLOT_HDR + 32;
            return TR_OK;
        }
    }
}

/* Backward-shift deletion: pull later members of the probe run into the
 * hole whenever their home slot does not lie between the hole and them. */
bool tr_hmap_del(tr_hmap_t *m, const uint8_t key[32])
{
    if (!m->count) return false;
    size_t mask = m->cap - 1, st = stride(m), i = hfun(key) & mask;
    for (;; i = (i + 1) & mask) {
        uint8_t *e = slot(m, i);
        if (!e[0]) return false;
        if (memcmp(e + SLOT_HDR, key, 32) == 0) break;
    }
    size_t hole = i;
    for (size_t j = (hole + 1) & mask;; j = (j + 1) & mask) {
        uint8_t *e = slot(m, j);
        if (!e[0]) break;
        size_t home = hfun(e + SLOT_HDR) & mask;
        /* e may move into the hole iff home is not in (hole, j] cyclically */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        memcpy(slot(m, hole), e, st);
        hole = j;
    }
    memset(slot(m, hole), 0, st);
    m->count--;
    return true;
}

bool tr_hmap_next(const tr_hmap_t *m, size_t *i, const uint8_t **key, void **val)
{
    for (; *i < m->cap; (*i)++) {
        uint8_t *e = slot(m, *i);
        if (e[0]) {
            *key = e + SLOT_HDR;
            *val = e + SLOT_HDR + 32;
            (*i)++;
            return true;
        }
    }
    return false;
}
