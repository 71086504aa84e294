/*
 * tr_home.h — where trellis keeps its files, and the user's identity key.
 *
 * Overview
 *   Four directories, resolved once from the environment by tr_home_open():
 *
 *                 TRELLIS_HOME set        otherwise (XDG Base Directory spec)
 *     config      $TRELLIS_HOME/config    $XDG_CONFIG_HOME/trellis  (~/.config/trellis)
 *     data        $TRELLIS_HOME/data      $XDG_DATA_HOME/trellis    (~/.local/share/trellis)
 *     state       $TRELLIS_HOME/state     $XDG_STATE_HOME/trellis   (~/.local/state/trellis)
 *     runtime     $TRELLIS_HOME/run       $XDG_RUNTIME_DIR/trellis, or when that is
 *                                         unset ${TMPDIR:-/tmp}/trellis-<uid>
 *
 *   TRELLIS_HOME keeps tests and several agents on one machine apart; a
 *   relative value is taken relative to the current directory. XDG variables
 *   that are unset, empty or relative are ignored, as the spec asks; HOME
 *   falls back to the password database. Nothing is created until asked for
 *   (tr_home_mkdir, tr_home_identity); directories trellis creates get mode
 *   0700, and an existing one that belongs to another user is refused.
 *
 *   The identity lives in the config directory:
 *
 *     identity.key   the secret. Mode 0600, owned by the user, a regular file
 *                    (not a symlink). Text, '#' comment lines allowed:
 *                        # trellis secret key: …
 *                        ed25519-seed <64 lowercase hex digits>
 *                    The 32-byte Ed25519 seed; the key pair (and the CURVE
 *                    pair) are derived from it.
 *     identity.pub   the peer id (tr_identity.h), one line. Public; derived
 *                    from identity.key and rewritten if missing.
 *
 *   A key file that group or others may read or write, or that another user
 *   owns, is refused with TR_EPERM and a message naming the file and the
 *   command that fixes it ("run 'chmod 600 …/identity.key'").
 *
 * Caveats
 *   - Creation is atomic and race-free: the key is written to a temporary
 *     file (O_EXCL, mode 0600), synced, then renamed into place without
 *     replacing (renameat2 RENAME_NOREPLACE, or link(2) where the file system
 *     lacks it). If two processes create at once, one key wins and both use it.
 *   - Buffers that held the seed or the key file's text are wiped; the seed
 *     never reaches argv, the environment or a log.
 *   - tr_home_t is immutable after tr_home_open; the environment is read
 *     only then.
 */
#ifndef TR_HOME_H
#define TR_HOME_H

#include <stdbool.h>

#include "../../core/tr_error.h"
#include "../../core/tr_identity.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tr_home tr_home_t;

/* Resolves the four directories from the environment (nothing is created).
 * TR_ENOTFOUND if no home directory can be found (set HOME or TRELLIS_HOME).
 * Caller owns *out. */
int tr_home_open(tr_home_t **out, tr_err_t *err) TR_MUST_CHECK;

/* NULL-safe; frees and sets *h to NULL. */
void tr_home_destroy(tr_home_t **h);

/* Absolute directory paths (borrowed, valid while h lives). */
const char *tr_home_config(const tr_home_t *h);
const char *tr_home_data(const tr_home_t *h);
const char *tr_home_state(const tr_home_t *h);
const char *tr_home_runtime(const tr_home_t *h);

/* Paths of the identity files (borrowed). */
const char *tr_home_key_path(const tr_home_t *h);
const char *tr_home_pub_path(const tr_home_t *h);

/* Creates directory `dir` (absolute) and its missing parents; the last one
 * gets mode 0700, parents the umask's default. TR_EPERM if `dir` exists but
 * belongs to another user; TR_EIO otherwise. */
int tr_home_mkdir(const char *dir, tr_err_t *err) TR_MUST_CHECK;

/* Loads the identity from identity.key. If there is none and `create` is
 * true, creates one (and the config directory) first; *created (if non-NULL)
 * tells which happened. TR_ENOTFOUND (no key and !create), TR_EPERM (unsafe
 * mode or owner, symlink), TR_EMALFORMED (not a key file), TR_EINVAL
 * (identity.pub names another key), TR_EIO. Caller owns *out. */
int tr_home_identity(const tr_home_t *h, bool create, tr_identity_t **out, bool *created,
                     tr_err_t *err) TR_MUST_CHECK;

#ifdef __cplusplus
}
#endif
#endif
