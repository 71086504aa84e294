/* txt.c — the `_trellis._tcp` TXT record (docs/discovery.md §2): encoding
 * what we publish and parsing what others publish. Pure: no Avahi, no I/O,
 * so tests and the fuzzer (tests/fuzz/fuzz_txt.c) can call it directly.
 *
 * Everything parsed here comes from any host on the LAN, so every length is
 * checked before it is used and every value is validated before it is
 * copied out. */
#include "tr_discovery.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define TXT_VERSION_MAX 65535u

/* ---- encoding ----------------------------------------------------------- */

/* Appends one length-prefixed string "key=value" to out. */
static int txt_put(uint8_t *out, size_t cap, size_t *len, const char *key, const char *val,
                   size_t vlen, tr_err_t *err)
{
    size_t klen = strlen(key), n = klen + 1 + vlen;
    if (n > 255)
        return tr_err_set(err, TR_ETOOBIG, "TXT string %s= is %zu bytes (max 255)", key, n);
    if (*len + 1 + n > cap)
        return tr_err_set(err, TR_ETOOBIG, "TXT record does not fit in %zu bytes", cap);
    out[(*len)++] = (uint8_t)n;
    memcpy(out + *len, key, klen);
    out[*len + klen] = '=';
    memcpy(out + *len + klen + 1, val, vlen);
    *len += n;
    return TR_OK;
}

/* A display name is printable UTF-8: no control characters. */
static bool txt_name_ok(const char *s, size_t n)
{
    if (n > TR_NAME_MAX || !tr_utf8_valid(s, n)) return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

int tr_discovery_txt_encode(const tr_discovery_txt_t *t, uint8_t *out, size_t cap, size_t *len,
                            tr_err_t *err)
{
    *len = 0;
    if (t->vmin < 1 || t->vmin > t->vmax || t->vmax > TXT_VERSION_MAX)
        return tr_err_set(err, TR_EINVAL, "bad protocol version range %u..%u", t->vmin, t->vmax);
    size_t nlen = strlen(t->name);
    if (!txt_name_ok(t->name, nlen))
        return tr_err_set(err, TR_EINVAL,
                          "the display name must be up to %d bytes of printable UTF-8",
                          TR_NAME_MAX);
    char num[16], id[TR_PEER_ID_STRLEN + 1];
    int rc;
    snprintf(num, sizeof num, "%u", t->vmax);
    if ((rc = txt_put(out, cap, len, "v", num, strlen(num), err))) return rc;
    if (t->vmin != t->vmax) {
        snprintf(num, sizeof num, "%u", t->vmin);
        if ((rc = txt_put(out, cap, len, "vmin", num, strlen(num), err))) return rc;
    }
    tr_peer_id(id, t->key);
    if ((rc = txt_put(out, cap, len, "id", id, TR_PEER_ID_STRLEN, err))) return rc;
    if (nlen && (rc = txt_put(out, cap, len, "name", t->name, nlen, err))) return rc;
    if (t->has_repos && t->nrepos <= TR_DISCOVERY_TXT_MAX_REPOS) {
        char list[TR_DISCOVERY_TXT_MAX_REPOS * (2 * TR_REPO_ID_LEN + 1) + 1];
        size_t l = 0;
        for (size_t i = 0; i < t->nrepos; i++) {
            if (i) list[l++] = ',';
            tr_hex(list + l, t->repos[i], TR_REPO_ID_LEN);
            l += 2 * TR_REPO_ID_LEN;
        }
        if ((rc = txt_put(out, cap, len, "repos", list, l, err))) return rc;
    }
    return TR_OK;
}

/* ---- parsing ------------------------------------------------------------ */

enum { K_V, K_VMIN, K_ID, K_NAME, K_REPOS, K_COUNT };
static const char *const txt_keys[K_COUNT] = {"v", "vmin", "id", "name", "repos"};

/* A version: 1..65535 in decimal, no sign, no leading zero. */
static bool txt_uint(const uint8_t *s, size_t n, unsigned *out)
{
    if (n < 1 || n > 5 || s[0] == '0') return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > TXT_VERSION_MAX) return false;
    *out = v;
    return true;
}

/* A peer id exactly as tr_peer_id() writes it (56 lowercase base32
 * characters), checksum verified, and a key that converts to CURVE. */
static int txt_id(const uint8_t *s, size_t n, uint8_t key[TR_KEY_LEN], tr_err_t *err)
{
    char id[TR_PEER_ID_STRLEN + 1];
    if (n != TR_PEER_ID_STRLEN)
        return tr_err_set(err, TR_EINVAL, "id= is %zu characters, not %d", n, TR_PEER_ID_STRLEN);
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '2' && s[i] <= '7')))
            return tr_err_set(err, TR_EINVAL, "id= is not lowercase base32 (byte %zu)", i);
    memcpy(id, s, n);
    id[n] = '\0';
    tr_err_t perr;
    if (tr_peer_id_parse(id, key, &perr) != TR_OK)
        return tr_err_set(err, TR_EINVAL, "id=: %s", perr.msg);
    uint8_t curve[32];
    if (crypto_sign_ed25519_pk_to_curve25519(curve, key) != 0)
        return tr_err_set(err, TR_EINVAL, "id= names a key that is not a valid Ed25519 point");
    return TR_OK;
}

/* repos=: comma-separated 32-digit lowercase hex ids, at most
 * TR_DISCOVERY_TXT_MAX_REPOS, possibly none. */
static bool txt_repos(const uint8_t *s, size_t n, tr_discovery_txt_t *out)
{
    out->has_repos = true;
    out->nrepos = 0;
    if (n == 0) return true;
    const size_t w = 2 * TR_REPO_ID_LEN;
    for (size_t off = 0;;) {
        if (out->nrepos == TR_DISCOVERY_TXT_MAX_REPOS || n - off < w) return false;
        for (size_t i = 0; i < w; i++) {
            uint8_t c = s[off + i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        }
        if (tr_unhex(out->repos[out->nrepos++], TR_REPO_ID_LEN, (const char *)s + off, w) != TR_OK)
            return false;
        off += w;
        if (off == n) return true;
        if (s[off] != ',' || off + 1 == n) return false;
        off++;
    }
}

int tr_discovery_parse_txt(const uint8_t *rdata, size_t len, tr_discovery_txt_t *out, tr_err_t *err)
{
    memset(out, 0, sizeof *out);
    if (len > TR_DISCOVERY_TXT_MAX)
        return tr_err_set(err, TR_ETOOBIG, "TXT record of %zu bytes (max %d)", len,
                          TR_DISCOVERY_TXT_MAX);
    /* First pass: find the first occurrence of each key we know. */
    const uint8_t *val[K_COUNT] = {0};
    size_t vlen[K_COUNT] = {0};
    bool seen[K_COUNT] = {0}, boolean[K_COUNT] = {0};
    for (size_t off = 0; off < len;) {
        size_t n = rdata[off++];
        if (n > len - off)
            return tr_err_set(err, TR_EMALFORMED, "TXT string of %zu bytes runs past the record",
                              n);
        const uint8_t *s = rdata + off;
        off += n;
        const uint8_t *eq = memchr(s, '=', n);
        size_t klen = eq ? (size_t)(eq - s) : n;
        if (klen == 0) continue; /* empty string, or "=…": ignored (RFC 6763 §6.4) */
        for (int k = 0; k < K_COUNT; k++) {
            if (seen[k] || strlen(txt_keys[k]) != klen ||
                strncasecmp((const char *)s, txt_keys[k], klen) != 0)
                continue;
            seen[k] = true;
            boolean[k] = !eq;
            val[k] = eq ? eq + 1 : s + n;
            vlen[k] = eq ? n - klen - 1 : 0;
        }
    }
    /* Second pass: validate into a local, copied out only when all is well. */
    tr_discovery_txt_t t = {0};
    if (!seen[K_V] || boolean[K_V] || !txt_uint(val[K_V], vlen[K_V], &t.vmax))
        return tr_err_set(err, TR_EMALFORMED,
                          seen[K_V] ? "v= is not a version number" : "no v= (protocol version)");
    t.vmin = t.vmax;
    if (seen[K_VMIN] &&
        (boolean[K_VMIN] || !txt_uint(val[K_VMIN], vlen[K_VMIN], &t.vmin) || t.vmin > t.vmax))
        return tr_err_set(err, TR_EMALFORMED, "vmin= is not a version number up to v=");
    if (t.vmax < TR_PROTO_MIN_VERSION || t.vmin > TR_PROTO_VERSION)
        return tr_err_set(err, TR_EVERSION, "speaks protocol %u..%u, we speak %u..%u", t.vmin,
                          t.vmax, (unsigned)TR_PROTO_MIN_VERSION, (unsigned)TR_PROTO_VERSION);
    if (!seen[K_ID] || boolean[K_ID]) return tr_err_set(err, TR_EMALFORMED, "no id= (peer id)");
    int rc = txt_id(val[K_ID], vlen[K_ID], t.key, err);
    if (rc) return rc;
    if (seen[K_NAME]) {
        if (boolean[K_NAME] || !txt_name_ok((const char *)val[K_NAME], vlen[K_NAME]))
            return tr_err_set(err, TR_EMALFORMED, "name= is not up to %d bytes of printable UTF-8",
                              TR_NAME_MAX);
        memcpy(t.name, val[K_NAME], vlen[K_NAME]);
        t.name[vlen[K_NAME]] = '\0';
    }
    if (seen[K_REPOS] && (boolean[K_REPOS] || !txt_repos(val[K_REPOS], vlen[K_REPOS], &t)))
        return tr_err_set(err, TR_EMALFORMED, "repos= is not a list of up to %d repository ids",
                          TR_DISCOVERY_TXT_MAX_REPOS);
    *out = t;
    return TR_OK;
}
