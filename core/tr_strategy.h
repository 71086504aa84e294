/*
 * tr_strategy.h — per-field merge strategies (seed 003, docs/crdt.md §3).
 *
 * Overview
 *   Every entity field is merged by one strategy, chosen by the field's name
 *   from config.json:
 *
 *     "fieldStrategies": {
 *       "status":   "highest_restriction_wins",
 *       "steps":    "append_wins",
 *       "imports":  "union_merge",
 *       "contract": "manual_resolution",
 *       "id":       "immutable",
 *       "meta.*":   "last_write_wins"
 *     },
 *     "restrictionOrder": ["tombstoned", "archived", "deprecated", "published",
 *                          "active", "approved", "review", "draft"]
 *
 *   Keys are field names or fnmatch(3) globs (flags 0, as for branchPolicies;
 *   a key is a glob if it holds `*`, `?`, `[` or `\`). Resolution for a field:
 *     1. the key equal to the name;
 *     2. else, among the matching globs, the longest (ties: the bytewise
 *        smallest), so the order of keys in the file never matters;
 *     3. else last_write_wins.
 *   restrictionOrder lists values from the most to the least restrictive; it
 *   defaults to the seed's order above. The key "fingerprint" may only say
 *   "recompute_post_merge" (the fingerprint is always computed, never set).
 *
 *   Errors name the file and the key path, as config.c does:
 *     `config.json: fieldStrategies."sta[": invalid glob: '[' is never closed`
 *     `config.json: restrictionOrder[3]: duplicate value "draft"`
 *
 * Caveats
 *   - Pure: no I/O. jansson values are borrowed for the call only.
 *   - A tr_strategies_t is immutable after parsing: share it between threads.
 *     Every function accepts NULL for "no configuration" (everything
 *     last_write_wins, the seed's restriction order).
 *   - The materialized state depends on the strategies: when they change
 *     (tr_strategies_digest differs) the store must rebuild its state.
 */
#ifndef TR_STRATEGY_H
#define TR_STRATEGY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tr_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    TR_STRATEGY_LWW = 0,   /* last_write_wins: the highest stamp wins */
    TR_STRATEGY_MANUAL,    /* manual_resolution: concurrent writes open a conflict */
    TR_STRATEGY_APPEND,    /* append_wins: every field.append kept, by stamp */
    TR_STRATEGY_UNION,     /* union_merge: add-wins set of values */
    TR_STRATEGY_RESTRICT,  /* highest_restriction_wins: most restrictive candidate */
    TR_STRATEGY_IMMUTABLE, /* immutable: the first write wins, later ones refused */
    TR_STRATEGY_COUNT
} tr_strategy_t;

/* The config name of a strategy ("last_write_wins", …); "?" if out of range. */
const char *tr_strategy_name(tr_strategy_t s);

/* Parses a config name. TR_EINVAL if it is none of the six. */
int tr_strategy_parse(const char *name, size_t len, tr_strategy_t *out);

typedef struct tr_strategies tr_strategies_t;

/* Parses the config values `field_strategies` (an object, or NULL when the
 * config has none) and `restriction_order` (an array, or NULL for the
 * default). `file` names the config file in messages (NULL: "config.json").
 * Caller owns *out. TR_ECONFIG with file and key path; TR_ENOMEM. */
int tr_strategies_parse(const json_t *field_strategies, const json_t *restriction_order,
                        const char *file, tr_strategies_t **out, tr_err_t *err) TR_MUST_CHECK;

/* NULL-safe; frees and sets *st to NULL. */
void tr_strategies_destroy(tr_strategies_t **st);

/* The strategy of field name[0..len) (see Overview). If `matched` is non-NULL
 * it receives the deciding key (borrowed from st), or NULL for the default.
 * No allocation; safe from any thread. */
tr_strategy_t tr_strategies_lookup(const tr_strategies_t *st, const char *name, size_t len,
                                   const char **matched);

/* The restriction rank of one canonical msgpack value: 0 for the most
 * restrictive listed string, 1 for the next…; values that are not listed
 * strings (or not strings at all) rank tr_strategies_order_count(st). */
size_t tr_strategies_rank(const tr_strategies_t *st, const uint8_t *value, size_t len);

/* The restriction order: its length and entry i (borrowed, NUL-terminated). */
size_t tr_strategies_order_count(const tr_strategies_t *st);
const char *tr_strategies_order_at(const tr_strategies_t *st, size_t i);

/* The configured entries in bytewise key order: count, and key i (borrowed)
 * with its strategy. */
size_t tr_strategies_count(const tr_strategies_t *st);
const char *tr_strategies_at(const tr_strategies_t *st, size_t i, tr_strategy_t *out);

/* BLAKE2b-256 over a canonical description of the entries and the order:
 * equal digests mean equal merge behaviour. A store keeps the digest next to
 * its materialized state and rebuilds the state when it changes. */
void tr_strategies_digest(const tr_strategies_t *st, uint8_t out[32]);

/* Checks that a glob is well formed for fnmatch: every '[' closed and no
 * lone trailing backslash. Returns a static reason, or NULL if it is fine.
 * (Used for fieldStrategies and branchPolicies keys alike.) */
const char *tr_glob_problem(const char *p, size_t n);

#ifdef __cplusplus
}
#endif
#endif
