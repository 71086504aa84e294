/*
 * tr_repo.h — a repository directory: `.trellis/` with its config and store.
 *
 * Overview
 *   A repository is any directory holding
 *
 *     .trellis/              mode 0700
 *     .trellis/config.json   branch policies etc. (core/tr_config.h)
 *     .trellis/store/        the LMDB op log (store/tr_store.h)
 *
 *   tr_repo_init() makes one with a fresh random 128-bit repo id
 *   (tr_repo_init_id() with a given one, for a clone);
 *   tr_repo_open() opens one, loads config.json and wires its branch policies
 *   into the store; tr_repo_find() walks up from a directory to the nearest
 *   one, the way git finds its work tree. The repo id's text form is 32
 *   lowercase hex digits.
 *
 * Caveats
 *   - A tr_repo_t owns its store and config; the borrowed pointers its
 *     accessors return die with it. Threads and fork(): as tr_store.h.
 *   - config.json is read once, at open. A missing config.json means the
 *     default config (tr_config_default_text()); a broken one is an error
 *     naming the file and the key, and the repo does not open.
 *   - Paths are made absolute with realpath(3): the root a repo reports has
 *     no symlinks in it.
 */
#ifndef TR_REPO_H
#define TR_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "../core/tr_config.h"
#include "../core/tr_error.h"
#include "tr_store.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TR_REPO_DIR ".trellis"
#define TR_REPO_CONFIG "config.json"
#define TR_REPO_STORE "store"
#define TR_REPO_ID_HEXLEN (2 * TR_REPO_ID_LEN)
#define TR_REPO_RDONLY TR_STORE_RDONLY /* open the store read-only */

typedef struct tr_repo tr_repo_t;

/* Makes `path` a repository: creates `path` if missing (its parent must
 * exist), then `.trellis/` (0700), the default config.json and an empty store
 * with a random repo id. TR_EEXIST if `path/.trellis` already exists. If
 * creating fails, nothing that this call created is left behind. If `out` is
 * non-NULL the new repository is returned open (caller owns it; should that
 * open fail, the repository still exists and the error says why). */
int tr_repo_init(const char *path, tr_repo_t **out, tr_err_t *err) TR_MUST_CHECK;

/* tr_repo_init with a given repo id instead of a random one: the local
 * replica of a repository that another agent serves (`trellis clone`). The
 * same rules and errors as tr_repo_init; TR_EINVAL if `id` is NULL. */
int tr_repo_init_id(const char *path, const uint8_t id[TR_REPO_ID_LEN], tr_repo_t **out,
                    tr_err_t *err) TR_MUST_CHECK;

/* Opens the repository whose root is `path` (not a subdirectory of it; use
 * tr_repo_find for that). TR_ENOTREPO if `path` has no `.trellis/`;
 * TR_ECONFIG / TR_EVERSION for config.json; the store's codes otherwise.
 * Caller owns *out. */
int tr_repo_open(const char *path, unsigned flags, tr_repo_t **out, tr_err_t *err) TR_MUST_CHECK;

/* Finds the nearest repository root at or above directory `start`. Caller
 * frees *root. TR_ENOTREPO if there is none up to '/'. */
int tr_repo_find(const char *start, char **root, tr_err_t *err) TR_MUST_CHECK;

/* NULL-safe; closes the store, frees the config, sets *r to NULL. */
void tr_repo_destroy(tr_repo_t **r);

/* Borrowed accessors. */
tr_store_t *tr_repo_store(const tr_repo_t *r);
const tr_config_t *tr_repo_config(const tr_repo_t *r);
const char *tr_repo_root(const tr_repo_t *r);  /* absolute, no trailing '/' */
const uint8_t *tr_repo_id(const tr_repo_t *r); /* TR_REPO_ID_LEN bytes */

/* The repo id as 32 lowercase hex digits + NUL. */
void tr_repo_id_hex(const tr_repo_t *r, char out[TR_REPO_ID_HEXLEN + 1]);

/* A tr_policy_fn whose `arg` is a const tr_config_t *: resolves the branch's
 * policy from config (tr_config_policy). tr_repo_open installs it. */
void tr_repo_policy(void *arg, const char *branch, size_t len, tr_branch_policy_t *out);

#ifdef __cplusplus
}
#endif
#endif
