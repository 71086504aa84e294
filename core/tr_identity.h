/*
 * tr_identity.h — an agent's key pair and peer ids.
 *
 * Overview
 *   One Ed25519 key pair is a peer's identity: it signs ops, and its CURVE
 *   (X25519) form, derived with crypto_sign_ed25519_{pk,sk}_to_curve25519,
 *   authenticates the peer on the wire. The public key's text form, the peer
 *   id, is 56 characters of lowercase RFC 4648 base32 (no padding) over
 *   `pubkey || checksum`, where checksum is the first 3 bytes of
 *   BLAKE2b-256("trellis-peer-id" 0x00 || pubkey); a mistyped id is caught.
 *   Its fingerprint, for display and reading aloud, is the first 16
 *   characters in groups of four: "k3xq-7m2a-…".
 *
 *   This module is pure: it never touches files. Loading and creating key
 *   files lives in agent/ (tr_home.h).
 *
 * Caveats
 *   - The secret key lives in sodium_malloc'd memory (guarded, locked, wiped
 *     on destroy). Never copy it out except into such memory.
 *   - tr_identity_* functions that create identities need sodium_init();
 *     they call tr_crypto_init() themselves.
 */
#ifndef TR_IDENTITY_H
#define TR_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "tr_error.h"
#include "tr_op.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TR_PEER_ID_STRLEN 56
#define TR_FINGERPRINT_STRLEN 19 /* xxxx-xxxx-xxxx-xxxx */
#define TR_KEY_HEXLEN 64

typedef struct tr_identity tr_identity_t;

/* Initialises libsodium once (thread-safe). TR_OK or TR_ECRYPTO. */
int tr_crypto_init(void) TR_MUST_CHECK;

/* Creates a fresh random identity. Caller owns *out. */
int tr_identity_generate(tr_identity_t **out) TR_MUST_CHECK;

/* Creates an identity from a 32-byte Ed25519 seed (deterministic; used for
 * key files and test vectors). Caller owns *out. */
int tr_identity_from_seed(const uint8_t seed[32], tr_identity_t **out) TR_MUST_CHECK;

/* NULL-safe; wipes the secret and sets *id to NULL. */
void tr_identity_destroy(tr_identity_t **id);

/* The 32-byte public key (borrowed, valid while the identity lives). */
const uint8_t *tr_identity_public(const tr_identity_t *id);

/* The 64-byte Ed25519 secret key (borrowed, guarded memory). */
const uint8_t *tr_identity_secret(const tr_identity_t *id);

/* The 32-byte seed, copied into `seed` (caller wipes it). */
void tr_identity_seed(const tr_identity_t *id, uint8_t seed[32]);

/* The CURVE key pair derived from the identity (caller wipes curve_sk). */
int tr_identity_curve(const tr_identity_t *id, uint8_t curve_pk[32], uint8_t curve_sk[32]);

/* Signs msg with the identity. */
void tr_identity_sign(const tr_identity_t *id, const uint8_t *msg, size_t len,
                      uint8_t sig[TR_SIG_LEN]);

/* Peer id of a public key: 56 characters + NUL. */
void tr_peer_id(char out[TR_PEER_ID_STRLEN + 1], const uint8_t pk[TR_KEY_LEN]);

/* Fingerprint of a public key: 19 characters + NUL. */
void tr_peer_fingerprint(char out[TR_FINGERPRINT_STRLEN + 1], const uint8_t pk[TR_KEY_LEN]);

/* Parses a peer id (case-insensitive; dashes and spaces ignored; checksum
 * verified) or a 64-digit hex public key. TR_OK or TR_EINVAL with reason. */
int tr_peer_id_parse(const char *s, uint8_t pk[TR_KEY_LEN], tr_err_t *err);

#ifdef __cplusplus
}
#endif
#endif
