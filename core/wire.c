/* wire.c — sync frames (docs/protocol.md §3.2) with every limit of §3.7
 * checked on decode and on encode. Batches are in batch.c. */
#include "tr_wire.h"

#include <stdlib.h>
#include <string.h>

/* Elements per frame type, version and type included. */
static const uint32_t frame_fields[] = {6, 4, 8, 8, 8, 7};

const char *tr_wire_reason(int code)
{
    switch (code) {
    case TR_EHASH:
    case TR_ESIG:
    case TR_EUNSIGNED:
    case TR_ESEQ:
    case TR_EPREV:
    case TR_EPARENT:
    case TR_ELAMPORT:
    case TR_EEQUIVOCATION:
    case TR_EREPO:
    case TR_EKIND:
    case TR_EBODY:
    case TR_EDIVERGED:
    case TR_EVERSION:
    case TR_EMALFORMED:
    case TR_ENONCANON:
    case TR_ETOOBIG:
    case TR_EPROTO:
    case TR_EBUSY:
        return tr_errname(code);
    default:
        return "internal";
    }
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, TR_KEY_LEN);
}

void tr_vv_sort(tr_vv_t *vv)
{
    if (vv->n > 1) qsort(vv->v, vv->n, sizeof vv->v[0], key_cmp);
}

uint64_t tr_vv_get(const tr_vv_t *vv, const uint8_t key[TR_KEY_LEN])
{
    size_t lo = 0, hi = vv->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(vv->v[mid].key, key, TR_KEY_LEN);
        if (c == 0) return vv->v[mid].seq;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

void tr_frame_clear(tr_frame_t *f)
{
    if (!f) return;
    free(f->repos);
    for (size_t i = 0; i < f->nbranches; i++) {
        free(f->branches[i].heads);
        free(f->branches[i].vv.v);
    }
    free(f->branches);
    free(f->from.v);
    free(f->vv.v);
    memset(f, 0, sizeof *f);
}

/* ---- decoding --------------------------------------------------------- */

/* Allocates n elements of size sz (n already bounded by the input length). */
static void *rd_alloc(tr_rd_t *r, size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) tr_rd_fail(r, TR_ENOMEM, "out of memory");
    return p;
}

static int rd_branch(tr_rd_t *r, char out[TR_BRANCH_MAX + 1])
{
    const char *s;
    size_t n;
    if (tr_rd_str(r, &s, &n, 1, TR_BRANCH_MAX)) return r->code;
    if (!tr_op_branch_valid(s, n)) return tr_rd_fail(r, TR_EMALFORMED, "invalid branch name");
    memcpy(out, s, n);
    out[n] = '\0';
    return TR_OK;
}

static int rd_text(tr_rd_t *r, char *out, size_t min, size_t max)
{
    const char *s;
    size_t n;
    if (tr_rd_str(r, &s, &n, min, max)) return r->code;
    memcpy(out, s, n);
    out[n] = '\0';
    if (memchr(out, '\0', n)) return tr_rd_fail(r, TR_EMALFORMED, "NUL in string");
    return TR_OK;
}

static int rd_vv(tr_rd_t *r, tr_vv_t *vv)
{
    uint32_t n;
    if (tr_rd_array(r, &n)) return r->code;
    if (n > TR_VV_MAX) return tr_rd_fail(r, TR_ETOOBIG, "version vector too long");
    vv->v = rd_alloc(r, n, sizeof vv->v[0]);
    if (!vv->v) return r->code;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t two;
        if (tr_rd_array(r, &two)) return r->code;
        if (two != 2) return tr_rd_fail(r, TR_EMALFORMED, "vv entry is not [key, seq]");
        if (tr_rd_bin_fixed(r, vv->v[i].key, TR_KEY_LEN) || tr_rd_uint(r, &vv->v[i].seq))
            return r->code;
        vv->n = i + 1;
        if (vv->v[i].seq == 0) return tr_rd_fail(r, TR_EMALFORMED, "vv seq is zero");
        if (i && memcmp(vv->v[i - 1].key, vv->v[i].key, TR_KEY_LEN) >= 0)
            return tr_rd_fail(r, TR_ENONCANON, "vv keys not sorted or not unique");
    }
    return TR_OK;
}

/* A sorted, unique list of at most `max` hashes. */
static int rd_hashes(tr_rd_t *r, uint8_t (**out)[TR_HASH_LEN], size_t *count, size_t max)
{
    uint32_t n;
    if (tr_rd_array(r, &n)) return r->code;
    if (n > max) return tr_rd_fail(r, TR_ETOOBIG, "too many hashes");
    uint8_t(*h)[TR_HASH_LEN] = rd_alloc(r, n, TR_HASH_LEN);
    if (!h) return r->code;
    *out = h;
    for (uint32_t i = 0; i < n; i++) {
        if (tr_rd_bin_fixed(r, h[i], TR_HASH_LEN)) return r->code;
        *count = i + 1;
        if (i && memcmp(h[i - 1], h[i], TR_HASH_LEN) >= 0)
            return tr_rd_fail(r, TR_ENONCANON, "list not sorted or not unique");
    }
    return TR_OK;
}

static int rd_hello(tr_rd_t *r, tr_frame_t *f)
{
    if (rd_text(r, f->name, 0, TR_NAME_MAX)) return r->code;
    if (tr_rd_uint(r, &f->min_version) || tr_rd_uint(r, &f->max_version)) return r->code;
    if (f->min_version > f->max_version)
        return tr_rd_fail(r, TR_EMALFORMED, "min_version above max_version");
    uint32_t cnt;
    if (tr_rd_array(r, &cnt)) return r->code;
    if (cnt > TR_HELLO_MAX_REPOS) return tr_rd_fail(r, TR_ETOOBIG, "too many repos in hello");
    f->repos = rd_alloc(r, cnt, TR_REPO_ID_LEN);
    if (!f->repos) return r->code;
    for (uint32_t i = 0; i < cnt; i++) {
        if (tr_rd_bin_fixed(r, f->repos[i], TR_REPO_ID_LEN)) return r->code;
        f->nrepos = i + 1;
        if (i && memcmp(f->repos[i - 1], f->repos[i], TR_REPO_ID_LEN) >= 0)
            return tr_rd_fail(r, TR_ENONCANON, "repos not sorted or not unique");
    }
    return TR_OK;
}

static int rd_have(tr_rd_t *r, tr_frame_t *f)
{
    uint32_t n;
    if (tr_rd_array(r, &n)) return r->code;
    if (n > TR_HAVE_MAX_BRANCHES) return tr_rd_fail(r, TR_ETOOBIG, "too many branches in have");
    f->branches = rd_alloc(r, n, sizeof f->branches[0]);
    if (!f->branches) return r->code;
    for (uint32_t i = 0; i < n; i++) {
        tr_have_branch_t *b = &f->branches[i];
        uint32_t four;
        f->nbranches = i + 1;
        if (tr_rd_array(r, &four)) return r->code;
        if (four != 4) return tr_rd_fail(r, TR_EMALFORMED, "have branch is not 4 elements");
        if (rd_branch(r, b->name) || tr_rd_uint(r, &b->count)) return r->code;
        if (rd_hashes(r, &b->heads, &b->nheads, TR_HAVE_MAX_HEADS)) return r->code;
        if (rd_vv(r, &b->vv)) return r->code;
    }
    return TR_OK;
}

static int rd_hash_or_nil(tr_rd_t *r, bool *has, uint8_t h[TR_HASH_LEN])
{
    *has = false;
    if (tr_rd_is_nil(r)) return tr_rd_nil(r);
    if (tr_rd_bin_fixed(r, h, TR_HASH_LEN)) return r->code;
    *has = true;
    return TR_OK;
}

int tr_frame_decode(const uint8_t *buf, size_t len, tr_frame_t *f, tr_err_t *err)
{
    memset(f, 0, sizeof *f);
    if (len > TR_FRAME_MAX)
        return tr_err_set(err, TR_ETOOBIG, "frame of %zu bytes exceeds %u", len, TR_FRAME_MAX);
    tr_rd_t r;
    uint32_t n;
    uint64_t type;
    const char *what = "header";
    tr_rd_init(&r, buf, len);
    if (tr_rd_array(&r, &n)) goto bad;
    if (n < 2) {
        tr_rd_fail(&r, TR_EMALFORMED, "frame shorter than [version, type]");
        goto bad;
    }
    if (tr_rd_uint(&r, &f->version)) goto bad;
    if (f->version < TR_PROTO_MIN_VERSION || f->version > TR_PROTO_VERSION) {
        uint64_t v = f->version;
        tr_frame_clear(f);
        return tr_err_set(err, TR_EVERSION, "protocol version %llu not spoken (speaks %d..%d)",
                          (unsigned long long)v, TR_PROTO_MIN_VERSION, TR_PROTO_VERSION);
    }
    if (tr_rd_uint(&r, &type)) goto bad;
    if (type > TR_FRAME_NACK) {
        tr_rd_fail(&r, TR_EMALFORMED, "unknown frame type");
        goto bad;
    }
    f->type = (int)type;
    if (n != frame_fields[type]) {
        tr_rd_fail(&r, TR_EMALFORMED, "wrong number of elements for the frame type");
        goto bad;
    }
    static const char *const names[] = {"hello", "have", "want", "ops", "ack", "nack"};
    what = names[type];
    switch (f->type) {
    case TR_FRAME_HELLO:
        rd_hello(&r, f);
        break;
    case TR_FRAME_HAVE:
        f->has_repo = true;
        if (tr_rd_bin_fixed(&r, f->repo, TR_REPO_ID_LEN)) break;
        rd_have(&r, f);
        break;
    case TR_FRAME_WANT:
        f->has_repo = f->has_branch = true;
        if (tr_rd_bin_fixed(&r, f->repo, TR_REPO_ID_LEN) || rd_branch(&r, f->branch) ||
            tr_rd_uint(&r, &f->want_id) || rd_hash_or_nil(&r, &f->has_after, f->after_hash) ||
            rd_vv(&r, &f->from))
            break;
        tr_rd_uint(&r, &f->max_bytes);
        break;
    case TR_FRAME_OPS: {
        f->has_repo = f->has_branch = true;
        if (tr_rd_bin_fixed(&r, f->repo, TR_REPO_ID_LEN) || rd_branch(&r, f->branch) ||
            tr_rd_uint(&r, &f->want_id) || tr_rd_bool(&r, &f->final) ||
            tr_rd_uint(&r, &f->codec))
            break;
        if (f->codec != TR_CODEC_RAW && f->codec != TR_CODEC_ZSTD) {
            tr_rd_fail(&r, TR_EMALFORMED, "unknown payload codec");
            break;
        }
        tr_rd_bin(&r, &f->payload, &f->payload_len, 0, TR_FRAME_MAX);
        break;
    }
    case TR_FRAME_ACK:
        f->has_repo = f->has_branch = true;
        if (tr_rd_bin_fixed(&r, f->repo, TR_REPO_ID_LEN) || rd_branch(&r, f->branch) ||
            tr_rd_uint(&r, &f->want_id) || tr_rd_uint(&r, &f->integrated) ||
            tr_rd_uint(&r, &f->count))
            break;
        rd_vv(&r, &f->vv);
        break;
    case TR_FRAME_NACK:
        if (tr_rd_is_nil(&r)) {
            tr_rd_nil(&r);
        } else {
            f->has_repo = true;
            if (tr_rd_bin_fixed(&r, f->repo, TR_REPO_ID_LEN)) break;
        }
        if (tr_rd_is_nil(&r)) {
            tr_rd_nil(&r);
        } else {
            f->has_branch = true;
            if (rd_branch(&r, f->branch)) break;
        }
        if (rd_text(&r, f->reason, 1, TR_REASON_MAX) || rd_text(&r, f->text, 0, TR_TEXT_MAX))
            break;
        rd_hash_or_nil(&r, &f->has_hash, f->hash);
        break;
    }
    if (r.code) goto bad;
    if (r.p != r.end) {
        tr_rd_fail(&r, TR_EMALFORMED, "trailing bytes after the frame");
        goto bad;
    }
    return TR_OK;
bad:
    tr_frame_clear(f);
    return tr_err_set(err, r.code, "malformed %s frame: %s", what, r.why ? r.why : "invalid");
}

/* ---- encoding --------------------------------------------------------- */

static int pk_vv(msgpack_packer *pk, const tr_vv_t *vv, const char **why)
{
    if (vv->n > TR_VV_MAX) return *why = "version vector too long", TR_ETOOBIG;
    int bad = msgpack_pack_array(pk, vv->n);
    for (size_t i = 0; i < vv->n; i++) {
        if (vv->v[i].seq == 0) return *why = "vv seq is zero", TR_EINVAL;
        if (i && memcmp(vv->v[i - 1].key, vv->v[i].key, TR_KEY_LEN) >= 0)
            return *why = "vv keys not sorted or not unique", TR_EINVAL;
        bad |= msgpack_pack_array(pk, 2) | tr_pack_bin(pk, vv->v[i].key, TR_KEY_LEN) |
               msgpack_pack_uint64(pk, vv->v[i].seq);
    }
    return bad ? (*why = "out of memory", TR_ENOMEM) : TR_OK;
}

static int pk_branch(msgpack_packer *pk, const char *b, const char **why)
{
    size_t n = strnlen(b, TR_BRANCH_MAX + 1);
    if (!tr_op_branch_valid(b, n)) return *why = "invalid branch name", TR_EINVAL;
    return tr_pack_str(pk, b, n) ? (*why = "out of memory", TR_ENOMEM) : TR_OK;
}

static int pk_text(msgpack_packer *pk, const char *s, size_t min, size_t max, const char **why)
{
    size_t n = strnlen(s, max + 1);
    if (n < min || n > max || !tr_utf8_valid(s, n))
        return *why = "string empty, too long or not UTF-8", TR_EINVAL;
    return tr_pack_str(pk, s, n) ? (*why = "out of memory", TR_ENOMEM) : TR_OK;
}

static int encode_body(const tr_frame_t *f, msgpack_packer *pk, const char **why)
{
    int rc = TR_OK, bad = 0;
    switch (f->type) {
    case TR_FRAME_HELLO:
        if (f->nrepos > TR_HELLO_MAX_REPOS) return *why = "too many repos", TR_ETOOBIG;
        if (f->min_version > f->max_version) return *why = "min_version above max_version", TR_EINVAL;
        if ((rc = pk_text(pk, f->name, 0, TR_NAME_MAX, why))) return rc;
        bad |= msgpack_pack_uint64(pk, f->min_version) | msgpack_pack_uint64(pk, f->max_version);
        bad |= msgpack_pack_array(pk, f->nrepos);
        for (size_t i = 0; i < f->nrepos; i++) {
            if (i && memcmp(f->repos[i - 1], f->repos[i], TR_REPO_ID_LEN) >= 0)
                return *why = "repos not sorted or not unique", TR_EINVAL;
            bad |= tr_pack_bin(pk, f->repos[i], TR_REPO_ID_LEN);
        }
        break;
    case TR_FRAME_HAVE:
        if (f->nbranches > TR_HAVE_MAX_BRANCHES) return *why = "too many branches", TR_ETOOBIG;
        bad |= tr_pack_bin(pk, f->repo, TR_REPO_ID_LEN) | msgpack_pack_array(pk, f->nbranches);
        for (size_t i = 0; i < f->nbranches && !bad; i++) {
            const tr_have_branch_t *b = &f->branches[i];
            if (b->nheads > TR_HAVE_MAX_HEADS) return *why = "too many heads", TR_ETOOBIG;
            bad |= msgpack_pack_array(pk, 4);
            if ((rc = pk_branch(pk, b->name, why))) return rc;
            bad |= msgpack_pack_uint64(pk, b->count) | msgpack_pack_array(pk, b->nheads);
            for (size_t h = 0; h < b->nheads; h++) {
                if (h && memcmp(b->heads[h - 1], b->heads[h], TR_HASH_LEN) >= 0)
                    return *why = "heads not sorted or not unique", TR_EINVAL;
                bad |= tr_pack_bin(pk, b->heads[h], TR_HASH_LEN);
            }
            if ((rc = pk_vv(pk, &b->vv, why))) return rc;
        }
        break;
    case TR_FRAME_WANT:
        bad |= tr_pack_bin(pk, f->repo, TR_REPO_ID_LEN);
        if ((rc = pk_branch(pk, f->branch, why))) return rc;
        bad |= msgpack_pack_uint64(pk, f->want_id);
        bad |= f->has_after ? tr_pack_bin(pk, f->after_hash, TR_HASH_LEN) : msgpack_pack_nil(pk);
        if ((rc = pk_vv(pk, &f->from, why))) return rc;
        bad |= msgpack_pack_uint64(pk, f->max_bytes);
        break;
    case TR_FRAME_OPS:
        if (f->codec != TR_CODEC_RAW && f->codec != TR_CODEC_ZSTD)
            return *why = "unknown codec", TR_EINVAL;
        bad |= tr_pack_bin(pk, f->repo, TR_REPO_ID_LEN);
        if ((rc = pk_branch(pk, f->branch, why))) return rc;
        bad |= msgpack_pack_uint64(pk, f->want_id);
        bad |= f->final ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        bad |= msgpack_pack_uint64(pk, f->codec) | tr_pack_bin(pk, f->payload, f->payload_len);
        break;
    case TR_FRAME_ACK:
        bad |= tr_pack_bin(pk, f->repo, TR_REPO_ID_LEN);
        if ((rc = pk_branch(pk, f->branch, why))) return rc;
        bad |= msgpack_pack_uint64(pk, f->want_id) | msgpack_pack_uint64(pk, f->integrated) |
               msgpack_pack_uint64(pk, f->count);
        if ((rc = pk_vv(pk, &f->vv, why))) return rc;
        break;
    case TR_FRAME_NACK:
        bad |= f->has_repo ? tr_pack_bin(pk, f->repo, TR_REPO_ID_LEN) : msgpack_pack_nil(pk);
        if (f->has_branch) {
            if ((rc = pk_branch(pk, f->branch, why))) return rc;
        } else {
            bad |= msgpack_pack_nil(pk);
        }
        if ((rc = pk_text(pk, f->reason, 1, TR_REASON_MAX, why))) return rc;
        if ((rc = pk_text(pk, f->text, 0, TR_TEXT_MAX, why))) return rc;
        bad |= f->has_hash ? tr_pack_bin(pk, f->hash, TR_HASH_LEN) : msgpack_pack_nil(pk);
        break;
    default:
        return *why = "unknown frame type", TR_EINVAL;
    }
    return bad ? (*why = "out of memory", TR_ENOMEM) : TR_OK;
}

int tr_frame_encode(const tr_frame_t *f, tr_buf_t *out, tr_err_t *err)
{
    if (f->type < TR_FRAME_HELLO || f->type > TR_FRAME_NACK)
        return tr_err_set(err, TR_EINVAL, "unknown frame type %d", f->type);
    size_t start = out->len;
    msgpack_packer pk;
    tr_packer_init(&pk, out);
    const char *why = "out of memory";
    int rc = TR_ENOMEM;
    if (msgpack_pack_array(&pk, frame_fields[f->type]) ||
        msgpack_pack_uint64(&pk, TR_PROTO_VERSION) || msgpack_pack_uint64(&pk, (uint64_t)f->type))
        goto fail;
    if ((rc = encode_body(f, &pk, &why))) goto fail;
    if (out->len - start > TR_FRAME_MAX) {
        rc = TR_ETOOBIG;
        why = "frame larger than 4 MiB";
        goto fail;
    }
    return TR_OK;
fail:
    out->len = start;
    return tr_err_set(err, rc, "cannot encode frame: %s", why);
}
