/* batch.c — the compact op batch of an `ops` frame (docs/protocol.md §3.3):
 * what the receiver can recompute is left out on encode and rebuilt on
 * decode; zstd where it pays. */
#include "tr_wire.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "tr_hmap.h"

#define ZSTD_LEVEL 3
#define COMPRESS_MIN 256 /* bytes; smaller payloads are sent raw */

/* ---- encoding --------------------------------------------------------- */

typedef struct {
    uint32_t index;     /* author index in the batch */
    uint64_t last_seq;  /* seq of the author's previous entry, 0 if none */
} enc_author_t;

static int find_kind(const char **kinds, const size_t *lens, size_t n, const char *k, size_t kl)
{
    for (size_t i = 0; i < n; i++)
        if (lens[i] == kl && memcmp(kinds[i], k, kl) == 0) return (int)i;
    return -1;
}

/* Writes the uncompressed batch [authors, kinds, entries] to `out`. */
static int encode_raw(const tr_op_t *const *ops, size_t n, tr_buf_t *out, const char **why)
{
    tr_hmap_t authors, hashes;
    const char *kinds[TR_BATCH_MAX_KINDS];
    size_t klen[TR_BATCH_MAX_KINDS], nkinds = 0;
    uint32_t *kidx = calloc(n ? n : 1, sizeof *kidx);
    const uint8_t **alist = calloc(n ? n : 1, sizeof *alist);
    int rc = TR_OK;
    tr_hmap_init(&authors, sizeof(enc_author_t));
    tr_hmap_init(&hashes, sizeof(uint32_t));
    if (!kidx || !alist) {
        rc = TR_ENOMEM;
        goto out;
    }
    size_t nauthors = 0;
    for (size_t i = 0; i < n; i++) {
        const tr_op_t *op = ops[i];
        enc_author_t *a;
        bool created;
        if (tr_hmap_put(&authors, op->author, (void **)&a, &created)) {
            rc = TR_ENOMEM;
            goto out;
        }
        if (created) {
            a->index = (uint32_t)nauthors;
            alist[nauthors++] = op->author;
        }
        int k = find_kind(kinds, klen, nkinds, op->kind, op->kind_len);
        if (k < 0) {
            if (nkinds == TR_BATCH_MAX_KINDS) {
                rc = TR_ETOOBIG, *why = "more than 256 kinds in one batch";
                goto out;
            }
            kinds[nkinds] = op->kind, klen[nkinds] = op->kind_len;
            k = (int)nkinds++;
        }
        kidx[i] = (uint32_t)k;
    }

    msgpack_packer pk;
    tr_packer_init(&pk, out);
    int bad = msgpack_pack_array(&pk, 3) | msgpack_pack_array(&pk, nauthors);
    for (size_t i = 0; i < nauthors; i++) bad |= tr_pack_bin(&pk, alist[i], TR_KEY_LEN);
    bad |= msgpack_pack_array(&pk, nkinds);
    for (size_t i = 0; i < nkinds; i++) bad |= tr_pack_str(&pk, kinds[i], klen[i]);
    bad |= msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n && !bad; i++) {
        const tr_op_t *op = ops[i], *prev = i ? ops[i - 1] : NULL;
        enc_author_t *a = tr_hmap_get(&authors, op->author);
        if (prev && op->lamport < prev->lamport) {
            rc = TR_EINVAL, *why = "ops not in causal (lamport) order";
            goto out;
        }
        bad |= msgpack_pack_array(&pk, 9) | msgpack_pack_uint32(&pk, a->index);
        bad |= a->last_seq && op->seq == a->last_seq + 1 ? msgpack_pack_nil(&pk)
                                                          : msgpack_pack_uint64(&pk, op->seq);
        a->last_seq = op->seq;
        bad |= msgpack_pack_uint64(&pk, prev ? op->lamport - prev->lamport : op->lamport);
        bad |= msgpack_pack_int64(&pk, prev ? (int64_t)(op->wall_ms - prev->wall_ms)
                                            : (int64_t)op->wall_ms);
        if (prev && op->nparents == 1 && memcmp(op->parents[0], prev->hash, TR_HASH_LEN) == 0) {
            bad |= msgpack_pack_nil(&pk);
        } else {
            bad |= msgpack_pack_array(&pk, op->nparents);
            for (size_t p = 0; p < op->nparents; p++) {
                uint32_t *at = tr_hmap_get(&hashes, op->parents[p]);
                bad |= at ? msgpack_pack_uint32(&pk, *at)
                          : tr_pack_bin(&pk, op->parents[p], TR_HASH_LEN);
            }
        }
        bad |= msgpack_pack_uint32(&pk, kidx[i]) | tr_pack_str(&pk, op->target, op->target_len);
        bad |= tr_buf_append(out, op->body, op->body_len) ? 1 : 0;
        bad |= op->has_sig ? tr_pack_bin(&pk, op->sig, TR_SIG_LEN) : msgpack_pack_nil(&pk);
        uint32_t *slot;
        if (tr_hmap_put(&hashes, op->hash, (void **)&slot, NULL)) bad = 1;
        else *slot = (uint32_t)i;
    }
    if (bad) rc = TR_ENOMEM, *why = "out of memory";
out:
    tr_hmap_free(&authors);
    tr_hmap_free(&hashes);
    free(kidx);
    free(alist);
    return rc;
}

int tr_batch_encode(const tr_op_t *const *ops, size_t n, tr_buf_t *out, uint64_t *codec,
                    tr_err_t *err)
{
    const char *why = "invalid";
    if (n > TR_BATCH_MAX_ENTRIES)
        return tr_err_set(err, TR_ETOOBIG, "batch of %zu ops exceeds %d", n, TR_BATCH_MAX_ENTRIES);
    for (size_t i = 1; i < n; i++)
        if (memcmp(ops[i]->repo, ops[0]->repo, TR_REPO_ID_LEN) ||
            ops[i]->branch_len != ops[0]->branch_len ||
            memcmp(ops[i]->branch, ops[0]->branch, ops[0]->branch_len))
            return tr_err_set(err, TR_EINVAL, "batch mixes repositories or branches");
    tr_buf_t raw = {0};
    int rc = encode_raw(ops, n, &raw, &why);
    if (rc) {
        tr_buf_free(&raw);
        return tr_err_set(err, rc, "cannot encode batch: %s", why);
    }
    if (raw.len > TR_BATCH_MAX_BYTES) {
        tr_buf_free(&raw);
        return tr_err_set(err, TR_ETOOBIG, "batch larger than 4 MiB");
    }
    *codec = TR_CODEC_RAW;
    if (raw.len >= COMPRESS_MIN) {
        size_t bound = ZSTD_compressBound(raw.len), start = out->len;
        if (tr_buf_reserve(out, bound)) {
            tr_buf_free(&raw);
            return tr_err_set(err, TR_ENOMEM, "out of memory compressing a batch");
        }
        size_t c = ZSTD_compress(out->data + start, bound, raw.data, raw.len, ZSTD_LEVEL);
        if (!ZSTD_isError(c) && c * 10 <= raw.len * 9) {
            out->len = start + c;
            *codec = TR_CODEC_ZSTD;
            tr_buf_free(&raw);
            return TR_OK;
        }
    }
    rc = tr_buf_append(out, raw.data, raw.len);
    tr_buf_free(&raw);
    return rc ? tr_err_set(err, TR_ENOMEM, "out of memory") : TR_OK;
}

/* ---- decoding --------------------------------------------------------- */

void tr_batch_clear(tr_batch_t *b)
{
    if (!b) return;
    tr_buf_free(&b->recs);
    free(b->off);
    free(b->len);
    free(b->status);
    free(b->reason);
    free(b->hash);
    memset(b, 0, sizeof *b);
}

typedef struct {
    uint64_t last_seq; /* 0: no entry of this author yet */
    size_t last_entry;
} dec_author_t;

/* What decoding one entry needs besides the reader. */
typedef struct {
    const uint8_t *repo;
    const char *branch;
    size_t branch_len;
    uint8_t (*authors)[TR_KEY_LEN];
    dec_author_t *ast;
    size_t nauthors;
    const char *kinds[TR_BATCH_MAX_KINDS];
    size_t klens[TR_BATCH_MAX_KINDS];
    size_t nkinds;
    uint64_t lamport, wall; /* of the previous entry */
    tr_prev_fn prevfn;
    void *arg;
} dec_ctx_t;

/* Rebuilds entry i. Returns a negative code for malformed input (fails the
 * batch); per-entry refusals are recorded in out->status[i]. */
static int decode_entry(tr_rd_t *r, size_t i, dec_ctx_t *c, tr_batch_t *out)
{
    uint32_t nf, np;
    uint64_t a, seq, l, k;
    int64_t w;
    tr_op_t opv, *op = &opv;
    if (tr_rd_array(r, &nf)) return r->code;
    if (nf != 9) return tr_rd_fail(r, TR_EMALFORMED, "batch entry is not 9 elements");
    if (tr_rd_uint(r, &a)) return r->code;
    if (a >= c->nauthors) return tr_rd_fail(r, TR_EMALFORMED, "author index out of range");
    dec_author_t *au = &c->ast[a];
    if (tr_rd_is_nil(r)) {
        tr_rd_nil(r);
        if (!au->last_seq) return tr_rd_fail(r, TR_EMALFORMED, "nil seq on an author's first entry");
        seq = au->last_seq + 1;
    } else {
        if (tr_rd_uint(r, &seq)) return r->code;
        if (seq == 0) return tr_rd_fail(r, TR_EMALFORMED, "seq is zero");
    }
    if (tr_rd_uint(r, &l) || tr_rd_int(r, &w)) return r->code;
    if (i == 0) {
        if (w < 0) return tr_rd_fail(r, TR_EMALFORMED, "negative wall clock");
        c->lamport = l, c->wall = (uint64_t)w;
    } else {
        if (l > UINT64_MAX - c->lamport) return tr_rd_fail(r, TR_EMALFORMED, "lamport overflows");
        c->lamport += l;
        if ((w < 0 && (uint64_t)(-(w + 1)) + 1 > c->wall) ||
            (w > 0 && (uint64_t)w > UINT64_MAX - c->wall))
            return tr_rd_fail(r, TR_EMALFORMED, "wall clock out of range");
        c->wall += (uint64_t)w;
    }
    memset(op, 0, sizeof *op);
    memcpy(op->repo, c->repo, TR_REPO_ID_LEN);
    op->branch = c->branch;
    op->branch_len = c->branch_len;
    memcpy(op->author, c->authors[a], TR_KEY_LEN);
    op->seq = seq;
    op->lamport = c->lamport;
    op->wall_ms = c->wall;
    int status = TR_OK;
    const char *reason = NULL;

    /* parents */
    if (tr_rd_is_nil(r)) {
        tr_rd_nil(r);
        if (i == 0) return tr_rd_fail(r, TR_EMALFORMED, "nil parents on the first entry");
        op->nparents = 1;
        memcpy(op->parents[0], out->hash[i - 1], TR_HASH_LEN);
        if (out->status[i - 1]) status = TR_EPARENT, reason = "its parent was not rebuilt";
    } else {
        if (tr_rd_array(r, &np)) return r->code;
        if (np > TR_OP_MAX_PARENTS) return tr_rd_fail(r, TR_ETOOBIG, "more than 16 parents");
        for (uint32_t p = 0; p < np; p++) {
            if (r->p < r->end && (*r->p == 0xc4)) {
                if (tr_rd_bin_fixed(r, op->parents[p], TR_HASH_LEN)) return r->code;
            } else {
                uint64_t idx;
                if (tr_rd_uint(r, &idx)) return r->code;
                if (idx >= i) return tr_rd_fail(r, TR_EMALFORMED, "parent index not earlier");
                memcpy(op->parents[p], out->hash[idx], TR_HASH_LEN);
                if (out->status[idx]) status = TR_EPARENT, reason = "a parent was not rebuilt";
            }
        }
        op->nparents = np;
        /* Canonical op order: sorted; a duplicate is malformed. (Skipped when
         * a parent could not be rebuilt: the op is refused anyway.) */
        for (uint32_t x = 1; x < np && !status; x++)
            for (uint32_t y = x; y > 0 && memcmp(op->parents[y - 1], op->parents[y], TR_HASH_LEN) >= 0; y--) {
                if (memcmp(op->parents[y - 1], op->parents[y], TR_HASH_LEN) == 0)
                    return tr_rd_fail(r, TR_EMALFORMED, "duplicate parent");
                uint8_t t[TR_HASH_LEN];
                memcpy(t, op->parents[y], TR_HASH_LEN);
                memcpy(op->parents[y], op->parents[y - 1], TR_HASH_LEN);
                memcpy(op->parents[y - 1], t, TR_HASH_LEN);
            }
    }
    if (tr_rd_uint(r, &k)) return r->code;
    if (k >= c->nkinds) return tr_rd_fail(r, TR_EMALFORMED, "kind index out of range");
    op->kind = c->kinds[k], op->kind_len = c->klens[k];
    if (tr_rd_str(r, &op->target, &op->target_len, 0, TR_TARGET_MAX)) return r->code;
    if (tr_rd_value(r, &op->body, &op->body_len)) return r->code;
    if (tr_rd_is_nil(r)) {
        tr_rd_nil(r);
    } else {
        if (tr_rd_bin_fixed(r, op->sig, TR_SIG_LEN)) return r->code;
        op->has_sig = true;
    }

    /* prev: from this batch, or the receiver's store. */
    if (seq > 1) {
        op->has_prev = true;
        if (au->last_seq && au->last_seq == seq - 1) {
            memcpy(op->prev, out->hash[au->last_entry], TR_HASH_LEN);
            if (out->status[au->last_entry] && !status)
                status = TR_ESEQ, reason = "the author's previous op was not rebuilt";
        } else if (!c->prevfn || c->prevfn(c->arg, op->author, seq - 1, op->prev) != TR_OK) {
            if (!status) status = TR_ESEQ, reason = "the author's previous op is missing";
        }
    }
    au->last_seq = seq;
    au->last_entry = i;

    if (!status) {
        tr_err_t e;
        out->off[i] = out->recs.len;
        status = tr_op_encode(op, NULL, &out->recs, &e);
        if (status) reason = "the op breaks a rule of §2.1";
        out->len[i] = out->recs.len - out->off[i];
        memcpy(out->hash[i], op->hash, TR_HASH_LEN);
    }
    if (status == TR_ENOMEM) return tr_rd_fail(r, TR_ENOMEM, "out of memory");
    if (status) {
        /* Unrebuildable: entries that reference it are refused in turn
         * through out->status, never through this placeholder. */
        memset(out->hash[i], 0, TR_HASH_LEN);
        out->len[i] = 0;
    }
    out->status[i] = status;
    out->reason[i] = reason;
    return TR_OK;
}

int tr_batch_decode(const uint8_t *payload, size_t len, uint64_t codec,
                    const uint8_t repo[TR_REPO_ID_LEN], const char *branch, tr_prev_fn prevfn,
                    void *arg, tr_batch_t *out, tr_err_t *err)
{
    memset(out, 0, sizeof *out);
    void *plain = NULL;
    if (codec == TR_CODEC_ZSTD) {
        unsigned long long size = ZSTD_getFrameContentSize(payload, len);
        if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
            return tr_err_set(err, TR_EMALFORMED, "malformed batch: zstd frame without a content size");
        if (size > TR_BATCH_MAX_BYTES)
            return tr_err_set(err, TR_ETOOBIG, "batch decompresses to more than 4 MiB");
        if (ZSTD_findFrameCompressedSize(payload, len) != len)
            return tr_err_set(err, TR_EMALFORMED, "malformed batch: not exactly one zstd frame");
        plain = malloc(size ? size : 1);
        if (!plain) return tr_err_set(err, TR_ENOMEM, "out of memory");
        size_t got = ZSTD_decompress(plain, size, payload, len);
        if (ZSTD_isError(got) || got != size) {
            free(plain);
            return tr_err_set(err, TR_EMALFORMED, "malformed batch: zstd data is corrupt");
        }
        payload = plain;
        len = size;
    } else if (codec != TR_CODEC_RAW) {
        return tr_err_set(err, TR_EMALFORMED, "malformed batch: unknown codec %llu",
                          (unsigned long long)codec);
    } else if (len > TR_BATCH_MAX_BYTES) {
        return tr_err_set(err, TR_ETOOBIG, "batch larger than 4 MiB");
    }

    tr_rd_t r;
    uint32_t n, na, nk;
    dec_ctx_t c = {.repo = repo, .branch = branch, .branch_len = strlen(branch),
                   .prevfn = prevfn, .arg = arg};
    tr_hmap_t seen;
    tr_hmap_init(&seen, 1);
    tr_rd_init(&r, payload, len);
    if (tr_rd_array(&r, &n)) goto bad;
    if (n != 3) {
        tr_rd_fail(&r, TR_EMALFORMED, "batch is not [authors, kinds, entries]");
        goto bad;
    }
    if (tr_rd_array(&r, &na)) goto bad;
    if (na > TR_BATCH_MAX_AUTHORS) {
        tr_rd_fail(&r, TR_ETOOBIG, "too many authors");
        goto bad;
    }
    c.authors = malloc((na ? na : 1) * sizeof *c.authors);
    c.ast = calloc(na ? na : 1, sizeof *c.ast);
    c.nauthors = na;
    if (!c.authors || !c.ast) {
        tr_rd_fail(&r, TR_ENOMEM, "out of memory");
        goto bad;
    }
    for (uint32_t i = 0; i < na; i++) {
        void *v;
        bool created;
        if (tr_rd_bin_fixed(&r, c.authors[i], TR_KEY_LEN)) goto bad;
        if (tr_hmap_put(&seen, c.authors[i], &v, &created)) {
            tr_rd_fail(&r, TR_ENOMEM, "out of memory");
            goto bad;
        }
        if (!created) {
            tr_rd_fail(&r, TR_EMALFORMED, "author listed twice");
            goto bad;
        }
    }
    if (tr_rd_array(&r, &nk)) goto bad;
    if (nk > TR_BATCH_MAX_KINDS) {
        tr_rd_fail(&r, TR_ETOOBIG, "too many kinds");
        goto bad;
    }
    for (uint32_t i = 0; i < nk; i++) {
        if (tr_rd_str(&r, &c.kinds[i], &c.klens[i], 1, TR_KIND_MAX)) goto bad;
        c.nkinds = i + 1;
        if (!tr_op_kind_valid(c.kinds[i], c.klens[i])) {
            tr_rd_fail(&r, TR_EMALFORMED, "invalid kind");
            goto bad;
        }
    }
    if (tr_rd_array(&r, &n)) goto bad;
    if (n > TR_BATCH_MAX_ENTRIES) {
        tr_rd_fail(&r, TR_ETOOBIG, "too many entries");
        goto bad;
    }
    size_t m = n ? n : 1;
    out->off = calloc(m, sizeof *out->off);
    out->len = calloc(m, sizeof *out->len);
    out->status = calloc(m, sizeof *out->status);
    out->reason = calloc(m, sizeof *out->reason);
    out->hash = calloc(m, sizeof *out->hash);
    if (!out->off || !out->len || !out->status || !out->reason || !out->hash ||
        tr_buf_reserve(&out->recs, (size_t)n * 200)) {
        tr_rd_fail(&r, TR_ENOMEM, "out of memory");
        goto bad;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (decode_entry(&r, i, &c, out) != TR_OK) goto bad;
        out->n = i + 1;
    }
    if (r.p != r.end) {
        tr_rd_fail(&r, TR_EMALFORMED, "trailing bytes after the batch");
        goto bad;
    }
    tr_hmap_free(&seen);
    free(c.authors);
    free(c.ast);
    free(plain);
    return TR_OK;
bad:
    tr_hmap_free(&seen);
    free(c.authors);
    free(c.ast);
    free(plain);
    int code = r.code ? r.code : TR_EMALFORMED;
    const char *why = r.why ? r.why : "invalid";
    tr_batch_clear(out);
    return tr_err_set(err, code, "malformed batch: %s", why);
}
