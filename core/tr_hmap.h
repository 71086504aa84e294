/*
 * tr_hmap.h — small in-memory hash tables keyed by 32 bytes.
 *
 * Overview
 *   Open addressing with linear probing and backward-shift deletion, keyed by
 *   32-byte values (op hashes, public keys), with fixed-size values stored
 *   inline. Keys are hashed with keyed SipHash (a random key per process), so
 *   a peer that chooses its own hashes or keys cannot make a table degrade.
 *
 * Caveats
 *   - Pointers returned by tr_hmap_get/tr_hmap_put are valid until the next
 *     put or del on the same table.
 *   - Not thread-safe; one table per thread or external locking.
 */
#ifndef TR_HMAP_H
#define TR_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tr_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint8_t *slots; /* cap slots of (header, key, value) */
    size_t cap;
    size_t count;
    size_t vsize;
} tr_hmap_t;

/* Initialises an empty table whose values are `vsize` bytes. */
void tr_hmap_init(tr_hmap_t *m, size_t vsize);
/* Frees the table's memory; it is empty and reusable afterwards. */
void tr_hmap_free(tr_hmap_t *m);
/* Removes every entry, keeping the memory. */
void tr_hmap_clear(tr_hmap_t *m);
/* The value of `key`, or NULL. */
void *tr_hmap_get(const tr_hmap_t *m, const uint8_t key[32]);
/* Finds or inserts key; *val points at its value (zeroed when created).
 * TR_OK or TR_ENOMEM. */
int tr_hmap_put(tr_hmap_t *m, const uint8_t key[32], void **val, bool *created) TR_MUST_CHECK;
/* Removes key; false if it was absent. */
bool tr_hmap_del(tr_hmap_t *m, const uint8_t key[32]);
/* Iteration: *i starts at 0; returns false at the end. */
bool tr_hmap_next(const tr_hmap_t *m, size_t *i, const uint8_t **key, void **val);

#ifdef __cplusplus
}
#endif
#endif
