/* identity.c — key pairs in guarded memory, CURVE derivation, peer ids
 * (see tr_identity.h). */
#include "tr_identity.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct tr_identity {
    uint8_t *sk; /* 64 bytes in sodium_malloc memory, read-only when idle */
    uint8_t pk[TR_KEY_LEN];
};

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;
static int crypto_status = TR_ECRYPTO;

static void crypto_init_once(void)
{
    crypto_status = sodium_init() < 0 ? TR_ECRYPTO : TR_OK;
}

int tr_crypto_init(void)
{
    pthread_once(&crypto_once, crypto_init_once);
    return crypto_status;
}

int tr_identity_from_seed(const uint8_t seed[32], tr_identity_t **out)
{
    *out = NULL;
    if (tr_crypto_init()) return TR_ECRYPTO;
    tr_identity_t *id = calloc(1, sizeof *id);
    if (!id) return TR_ENOMEM;
    id->sk = sodium_malloc(TR_SECRET_LEN);
    if (!id->sk) {
        free(id);
        return TR_ENOMEM;
    }
    crypto_sign_seed_keypair(id->pk, id->sk, seed);
    sodium_mprotect_readonly(id->sk);
    *out = id;
    return TR_OK;
}

int tr_identity_generate(tr_identity_t **out)
{
    *out = NULL;
    if (tr_crypto_init()) return TR_ECRYPTO;
    uint8_t seed[32];
    randombytes_buf(seed, sizeof seed);
    int rc = tr_identity_from_seed(seed, out);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

void tr_identity_destroy(tr_identity_t **idp)
{
    if (!idp || !*idp) return;
    tr_identity_t *id = *idp;
    sodium_free(id->sk); /* wipes before freeing */
    sodium_memzero(id, sizeof *id);
    free(id);
    *idp = NULL;
}

const uint8_t *tr_identity_public(const tr_identity_t *id)
{
    return id->pk;
}

const uint8_t *tr_identity_secret(const tr_identity_t *id)
{
    return id->sk;
}

void tr_identity_seed(const tr_identity_t *id, uint8_t seed[32])
{
    crypto_sign_ed25519_sk_to_seed(seed, id->sk);
}

int tr_identity_curve(const tr_identity_t *id, uint8_t curve_pk[32], uint8_t curve_sk[32])
{
    if (crypto_sign_ed25519_pk_to_curve25519(curve_pk, id->pk) != 0) return TR_ECRYPTO;
    if (crypto_sign_ed25519_sk_to_curve25519(curve_sk, id->sk) != 0) return TR_ECRYPTO;
    return TR_OK;
}

void tr_identity_sign(const tr_identity_t *id, const uint8_t *msg, size_t len,
                      uint8_t sig[TR_SIG_LEN])
{
    crypto_sign_detached(sig, NULL, msg, len, id->sk);
}

/* ---- peer ids --------------------------------------------------------- */

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
#define ID_RAW_LEN (TR_KEY_LEN + 3) /* 35 bytes = 280 bits = 56 characters */

static void id_checksum(const uint8_t pk[TR_KEY_LEN], uint8_t sum[3])
{
    static const char domain[] = "trellis-peer-id"; /* + NUL */
    uint8_t h[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const uint8_t *)domain, sizeof domain);
    crypto_generichash_update(&st, pk, TR_KEY_LEN);
    crypto_generichash_final(&st, h, sizeof h);
    memcpy(sum, h, 3);
}

void tr_peer_id(char out[TR_PEER_ID_STRLEN + 1], const uint8_t pk[TR_KEY_LEN])
{
    uint8_t raw[ID_RAW_LEN];
    memcpy(raw, pk, TR_KEY_LEN);
    id_checksum(pk, raw + TR_KEY_LEN);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < sizeof raw; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    out[o] = '\0'; /* 280 bits: no remainder */
}

void tr_peer_fingerprint(char out[TR_FINGERPRINT_STRLEN + 1], const uint8_t pk[TR_KEY_LEN])
{
    char id[TR_PEER_ID_STRLEN + 1];
    tr_peer_id(id, pk);
    size_t o = 0;
    for (int g = 0; g < 4; g++) {
        if (g) out[o++] = '-';
        memcpy(out + o, id + 4 * g, 4);
        o += 4;
    }
    out[o] = '\0';
}

int tr_peer_id_parse(const char *s, uint8_t pk[TR_KEY_LEN], tr_err_t *err)
{
    size_t n = strlen(s);
    if (n == TR_KEY_HEXLEN && tr_unhex(pk, TR_KEY_LEN, s, n) == TR_OK) return TR_OK;

    uint8_t raw[ID_RAW_LEN];
    size_t o = 0, chars = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '-' || c == ' ') continue;
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        const char *p = (c >= 'a' && c <= 'z') || (c >= '2' && c <= '7') ? strchr(b32, c) : NULL;
        if (!p) {
            unsigned char b = (unsigned char)s[i];
            if (b >= 0x20 && b < 0x7f)
                return tr_err_set(err, TR_EINVAL, "peer id contains '%c', which is not base32", b);
            return tr_err_set(err, TR_EINVAL, "peer id contains byte 0x%02x, which is not base32", b);
        }
        if (++chars > TR_PEER_ID_STRLEN) break;
        acc = (acc << 5) | (uint32_t)(p - b32);
        bits += 5;
        if (bits >= 8) {
            raw[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    if (chars != TR_PEER_ID_STRLEN)
        return tr_err_set(err, TR_EINVAL,
                          "a peer id has %d base32 characters (or give the key as 64 hex digits)",
                          TR_PEER_ID_STRLEN);
    uint8_t sum[3];
    id_checksum(raw, sum);
    if (memcmp(sum, raw + TR_KEY_LEN, 3) != 0)
        return tr_err_set(err, TR_EINVAL, "peer id checksum does not match (mistyped?)");
    memcpy(pk, raw, TR_KEY_LEN);
    return TR_OK;
}
