/*
 * tr_config.h — a repository's `.trellis/config.json`.
 *
 * Overview
 *   The config is parsed from a string (the caller reads the file) into an
 *   immutable tr_config_t. Version 1 knows these top-level keys:
 *
 *     {
 *       "version": 1,                       optional; a newer one is refused
 *       "branchPolicies": {                 optional
 *         "main":      {"linear": true, "requireSigning": true},
 *         "draft*":    {"linear": false}
 *       }
 *     }
 *
 *   and the field strategies of docs/crdt.md §3, parsed by
 *   tr_strategies_parse (tr_strategy.h) and held by the config:
 *
 *       "fieldStrategies": {"status": "highest_restriction_wins", "*": …},
 *       "restrictionOrder": ["tombstoned", "archived", …]
 *
 *   branchPolicies keys are branch names or fnmatch(3) globs (without
 *   FNM_PATHNAME, so `*` also matches '/'). A key is a glob if it contains
 *   `*`, `?`, `[` or `\`. Resolution for a branch:
 *     1. the key equal to the branch name, if there is one;
 *     2. else, among the globs that match, the longest pattern (ties: the
 *        bytewise-smallest pattern, so the file's key order never matters);
 *     3. else the default {linear: false, requireSigning: true}.
 *   A field missing from the chosen entry takes its default; entries never
 *   combine.
 *
 *   Unknown keys (at the top level and inside a policy) do not stop parsing:
 *   they are remembered by key path (`frobnicate`, `branchPolicies.main.lin`)
 *   for a check command to report. Later versions add sections (`links`)
 *   as further entries in config.c's section table and accessors here;
 *   they are "unknown" to this build until then.
 *
 *   Errors name the file and the key path, or the line and column for JSON
 *   syntax: `config.json: branchPolicies."feature/[": invalid glob: '[' is
 *   never closed`, `config.json:3:14: '}' expected near ','`.
 *
 * Caveats
 *   - Pure: no I/O. Reading the file and choosing its name is the caller's
 *     job (store/tr_repo.h does both).
 *   - A tr_config_t is immutable after parsing, so it can be shared between
 *     threads; the policy lookup is reentrant.
 */
#ifndef TR_CONFIG_H
#define TR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "tr_error.h"
#include "tr_strategy.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TR_CONFIG_VERSION 1

typedef struct tr_config tr_config_t;

/* How a branch integrates ops. The same two fields as the store's
 * tr_branch_policy_t (store/tr_store.h); core cannot name that type, so
 * store/tr_repo.h adapts one to the other. */
typedef struct {
    bool linear;          /* ops must extend the single head */
    bool require_signing; /* unsigned, uncovered ops are refused */
} tr_config_policy_t;

/* Parses config text[0..len). `fname` (borrowed, used only in messages; NULL
 * means "config.json") names the file. Caller owns *out.
 * TR_ECONFIG with file and key path; TR_EVERSION if "version" is newer than
 * TR_CONFIG_VERSION; TR_ENOMEM. */
int tr_config_parse(const char *text, size_t len, const char *fname, tr_config_t **out,
                    tr_err_t *err) TR_MUST_CHECK;

/* The text `trellis init` writes: main linear, every other branch (`*`)
 * CRDT, both requiring signatures. Static, NUL-terminated. */
const char *tr_config_default_text(void);

/* NULL-safe; frees and sets *c to NULL. */
void tr_config_destroy(tr_config_t **c);

/* The file's "version" (1 if it had none). */
int tr_config_version(const tr_config_t *c);

/* Resolves the policy of branch[0..len) (see Overview). If `matched` is
 * non-NULL it receives the key that decided (borrowed), or NULL for the
 * built-in default. A NULL config gives the default. */
void tr_config_policy(const tr_config_t *c, const char *branch, size_t len, tr_config_policy_t *out,
                      const char **matched);

/* The branchPolicies entries in bytewise key order: count, and entry i's key
 * (borrowed) with its policy. */
size_t tr_config_policy_count(const tr_config_t *c);
const char *tr_config_policy_at(const tr_config_t *c, size_t i, tr_config_policy_t *out);

/* The field strategies (fieldStrategies and restrictionOrder; the
 * defaults when the file has neither), borrowed: they live as long as the
 * config. NULL for a NULL config, which tr_strategy.h reads as the
 * defaults too. Errors in either key fail tr_config_parse with TR_ECONFIG
 * naming the file and key path (`config.json: fieldStrategies."sta[":
 * invalid glob: '[' is never closed`). */
const tr_strategies_t *tr_config_strategies(const tr_config_t *c);

/* Keys this build did not understand, as key paths in file order. */
size_t tr_config_unknown_count(const tr_config_t *c);
const char *tr_config_unknown(const tr_config_t *c, size_t i);

#ifdef __cplusplus
}
#endif
#endif
