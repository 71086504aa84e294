/* op.c — op validation, canonical encoding, decoding, hashing and signing
 * (docs/protocol.md §Ops). */
#include "tr_op.h"

#include <sodium.h>
#include <string.h>

static const char sig_domain[] = "trellis-op-v1"; /* + the NUL: 14 bytes */

/* Printable text for names: no C0 controls and no DEL. */
static bool text_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return false;
    }
    return tr_utf8_valid(s, n);
}

bool tr_op_kind_valid(const char *kind, size_t len)
{
    if (len == 0 || len > TR_KIND_MAX) return false;
    if (kind[0] < 'a' || kind[0] > 'z') return false;
    for (size_t i = 0; i < len; i++) {
        char c = kind[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == '-';
        if (!ok) return false;
        if (c == '.' && (i + 1 == len || kind[i + 1] == '.')) return false;
    }
    return true;
}

bool tr_op_branch_valid(const char *name, size_t len)
{
    return len > 0 && len <= TR_BRANCH_MAX && text_ok(name, len);
}

void tr_hash_short(char *out, const uint8_t hash[TR_HASH_LEN], size_t n)
{
    char full[2 * TR_HASH_LEN + 1];
    if (n > 2 * TR_HASH_LEN) n = 2 * TR_HASH_LEN;
    tr_hex(full, hash, TR_HASH_LEN);
    memcpy(out, full, n);
    out[n] = '\0';
}

/* The checks shared by validate (building) and decode (receiving) once the
 * fields are in a tr_op_t. Returns a code and a static reason. */
static int op_check(const tr_op_t *op, const char **why)
{
    if (!tr_op_branch_valid(op->branch, op->branch_len))
        return *why = "branch must be 1 to 255 bytes of printable UTF-8", TR_EINVAL;
    if (op->seq == 0) return *why = "seq must be at least 1", TR_ESEQ;
    if (op->lamport == 0) return *why = "lamport must be at least 1", TR_ELAMPORT;
    if ((op->seq == 1) == op->has_prev)
        return *why = op->has_prev ? "seq 1 must have no prev" : "seq > 1 must name its prev",
               TR_EPREV;
    if (op->nparents > TR_OP_MAX_PARENTS) return *why = "more than 16 parents", TR_ETOOBIG;
    for (size_t i = 1; i < op->nparents; i++)
        if (memcmp(op->parents[i - 1], op->parents[i], TR_HASH_LEN) >= 0)
            return *why = "parents not sorted or not unique", TR_ENONCANON;
    if (!tr_op_kind_valid(op->kind, op->kind_len))
        return *why = "kind must be 1 to 64 characters of [a-z0-9._-], starting with a letter",
               TR_EKIND;
    if (op->target_len > TR_TARGET_MAX) return *why = "target longer than 1024 bytes", TR_ETOOBIG;
    if (!text_ok(op->target, op->target_len))
        return *why = "target must be printable UTF-8", TR_EINVAL;
    if (op->body_len > TR_BODY_MAX) return *why = "body larger than 65536 bytes", TR_ETOOBIG;
    return TR_OK;
}

int tr_op_validate(const tr_op_t *op, tr_err_t *err)
{
    const char *why = NULL;
    int rc = op_check(op, &why);
    if (rc) return tr_err_set(err, rc, "invalid op: %s", why);
    rc = tr_mp_check(op->body, op->body_len, &why);
    if (rc) return tr_err_set(err, rc, "invalid op body: %s", why);
    return TR_OK;
}

/* Hashes a record's preimage: the array header of 12 elements, then the
 * record's bytes from after its own 13-element header up to the sig field. */
static void preimage_hash(const uint8_t *rec, size_t sig_off, uint8_t hash[TR_HASH_LEN])
{
    crypto_generichash_state st;
    static const uint8_t hdr = 0x9c;
    crypto_generichash_init(&st, NULL, 0, TR_HASH_LEN);
    crypto_generichash_update(&st, &hdr, 1);
    crypto_generichash_update(&st, rec + 1, sig_off - 1);
    crypto_generichash_final(&st, hash, TR_HASH_LEN);
}

void tr_op_sigmsg(const uint8_t hash[TR_HASH_LEN], uint8_t msg[TR_OP_SIGMSG_LEN])
{
    memcpy(msg, sig_domain, sizeof sig_domain); /* includes the NUL */
    memcpy(msg + sizeof sig_domain, hash, TR_HASH_LEN);
}

int tr_op_encode(tr_op_t *op, const uint8_t *sk, tr_buf_t *out, tr_err_t *err)
{
    int rc = tr_op_validate(op, err);
    if (rc) return rc;

    size_t start = out->len;
    msgpack_packer pk;
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_array(&pk, TR_OP_FIELDS);
    bad |= msgpack_pack_uint64(&pk, TR_OP_VERSION);
    bad |= tr_pack_bin(&pk, op->repo, TR_REPO_ID_LEN);
    bad |= tr_pack_str(&pk, op->branch, op->branch_len);
    bad |= tr_pack_bin(&pk, op->author, TR_KEY_LEN);
    bad |= msgpack_pack_uint64(&pk, op->seq);
    bad |= msgpack_pack_uint64(&pk, op->lamport);
    bad |= msgpack_pack_uint64(&pk, op->wall_ms);
    bad |= msgpack_pack_array(&pk, op->nparents);
    for (size_t i = 0; i < op->nparents; i++) bad |= tr_pack_bin(&pk, op->parents[i], TR_HASH_LEN);
    bad |= op->has_prev ? tr_pack_bin(&pk, op->prev, TR_HASH_LEN) : msgpack_pack_nil(&pk);
    bad |= tr_pack_str(&pk, op->kind, op->kind_len);
    bad |= tr_pack_str(&pk, op->target, op->target_len);
    bad |= tr_buf_append(out, op->body, op->body_len) ? 1 : 0;
    if (bad) goto nomem;

    preimage_hash(out->data + start, out->len - start, op->hash);
    if (sk) {
        uint8_t msg[TR_OP_SIGMSG_LEN];
        tr_op_sigmsg(op->hash, msg);
        crypto_sign_detached(op->sig, NULL, msg, sizeof msg, sk);
        op->has_sig = true;
    }
    bad = op->has_sig ? tr_pack_bin(&pk, op->sig, TR_SIG_LEN) : msgpack_pack_nil(&pk);
    if (bad) goto nomem;
    if (out->len - start > TR_OP_MAX_BYTES) {
        out->len = start;
        return tr_err_set(err, TR_ETOOBIG, "op record larger than %d bytes", TR_OP_MAX_BYTES);
    }
    return TR_OK;
nomem:
    out->len = start;
    return tr_err_set(err, TR_ENOMEM, "out of memory encoding op");
}

int tr_op_decode(const uint8_t *buf, size_t len, tr_op_t *op, tr_err_t *err)
{
    if (len > TR_OP_MAX_BYTES)
        return tr_err_set(err, TR_ETOOBIG, "op record of %zu bytes exceeds the limit of %d", len,
                          TR_OP_MAX_BYTES);
    memset(op, 0, sizeof *op);
    tr_rd_t r;
    uint32_t n;
    uint64_t version;
    const char *field = "record";
    tr_rd_init(&r, buf, len);

    if (tr_rd_array(&r, &n)) goto bad;
    if (n != TR_OP_FIELDS) {
        tr_rd_fail(&r, TR_EMALFORMED, "expected an array of 13 fields");
        goto bad;
    }
    field = "version";
    if (tr_rd_uint(&r, &version)) goto bad;
    if (version != TR_OP_VERSION) {
        return tr_err_set(err, TR_EVERSION, "op format version %llu is not supported (this is %d)",
                          (unsigned long long)version, TR_OP_VERSION);
    }
    field = "repo";
    if (tr_rd_bin_fixed(&r, op->repo, TR_REPO_ID_LEN)) goto bad;
    field = "branch";
    if (tr_rd_str(&r, &op->branch, &op->branch_len, 1, TR_BRANCH_MAX)) goto bad;
    field = "author";
    if (tr_rd_bin_fixed(&r, op->author, TR_KEY_LEN)) goto bad;
    field = "seq";
    if (tr_rd_uint(&r, &op->seq)) goto bad;
    field = "lamport";
    if (tr_rd_uint(&r, &op->lamport)) goto bad;
    field = "wall";
    if (tr_rd_uint(&r, &op->wall_ms)) goto bad;
    field = "parents";
    if (tr_rd_array(&r, &n)) goto bad;
    if (n > TR_OP_MAX_PARENTS) {
        tr_rd_fail(&r, TR_ETOOBIG, "more than 16 parents");
        goto bad;
    }
    op->nparents = n;
    for (uint32_t i = 0; i < n; i++)
        if (tr_rd_bin_fixed(&r, op->parents[i], TR_HASH_LEN)) goto bad;
    field = "prev";
    if (tr_rd_is_nil(&r)) {
        (void)tr_rd_nil(&r);
    } else {
        if (tr_rd_bin_fixed(&r, op->prev, TR_HASH_LEN)) goto bad;
        op->has_prev = true;
    }
    field = "kind";
    if (tr_rd_str(&r, &op->kind, &op->kind_len, 1, TR_KIND_MAX)) goto bad;
    field = "target";
    if (tr_rd_str(&r, &op->target, &op->target_len, 0, TR_TARGET_MAX)) goto bad;
    field = "body";
    if (tr_rd_value(&r, &op->body, &op->body_len)) goto bad;
    size_t sig_off = (size_t)(r.p - buf);
    field = "sig";
    if (tr_rd_is_nil(&r)) {
        (void)tr_rd_nil(&r);
    } else {
        if (tr_rd_bin_fixed(&r, op->sig, TR_SIG_LEN)) goto bad;
        op->has_sig = true;
    }
    if (r.p != r.end) {
        field = "record";
        tr_rd_fail(&r, TR_EMALFORMED, "trailing bytes after the record");
        goto bad;
    }
    const char *why = NULL;
    int rc = op_check(op, &why);
    if (rc) return tr_err_set(err, rc, "invalid op: %s", why);
    preimage_hash(buf, sig_off, op->hash);
    return TR_OK;
bad:
    return tr_err_set(err, r.code, "malformed op (%s): %s", field, r.why ? r.why : "invalid");
}

int tr_op_record_hash(const uint8_t *rec, size_t len, uint8_t hash[TR_HASH_LEN])
{
    tr_rd_t r;
    uint32_t n;
    const uint8_t *s;
    size_t vlen;
    tr_rd_init(&r, rec, len);
    if (tr_rd_array(&r, &n) || n != TR_OP_FIELDS) return TR_EMALFORMED;
    for (int i = 0; i < TR_OP_FIELDS - 1; i++)
        if (tr_rd_value(&r, &s, &vlen)) return TR_EMALFORMED;
    preimage_hash(rec, (size_t)(r.p - rec), hash);
    return TR_OK;
}

int tr_op_verify(const tr_op_t *op)
{
    if (!op->has_sig) return TR_EUNSIGNED;
    uint8_t msg[TR_OP_SIGMSG_LEN];
    tr_op_sigmsg(op->hash, msg);
    return crypto_sign_verify_detached(op->sig, msg, sizeof msg, op->author) == 0 ? TR_OK
                                                                                  : TR_ESIG;
}

int tr_op_order(const tr_op_t *a, const tr_op_t *b)
{
    if (a->lamport != b->lamport) return a->lamport < b->lamport ? -1 : 1;
    int c = memcmp(a->author, b->author, TR_KEY_LEN);
    if (c) return c < 0 ? -1 : 1;
    if (a->seq != b->seq) return a->seq < b->seq ? -1 : 1;
    return 0;
}
