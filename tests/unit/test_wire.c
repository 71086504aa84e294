/* test_wire.c — sync frames and op batches: round trips, every refusal of
 * docs/protocol.md §3.2–3.3, and byte-identical rebuilt records. */
#include <sodium.h>
#include <zstd.h>

#include "tr_hmap.h"
#include "tr_identity.h"
#include "tr_test.h"
#include "tr_wire.h"

static const uint8_t REPO[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

static int roundtrip(const tr_frame_t *in, tr_frame_t *out, tr_buf_t *b)
{
    tr_buf_reset(b);
    int rc = tr_frame_encode(in, b, NULL);
    if (rc) return rc;
    return tr_frame_decode(b->data, b->len, out, NULL);
}

TR_TEST(frames_roundtrip)
{
    tr_buf_t b = {0};
    tr_frame_t f = {0}, d;
    uint8_t repos[2][16] = {{1}, {2}};
    f.type = TR_FRAME_HELLO;
    snprintf(f.name, sizeof f.name, "alice's laptop");
    f.min_version = 1, f.max_version = 1;
    f.repos = repos, f.nrepos = 2;
    TR_CHECK_INT(roundtrip(&f, &d, &b), ==, TR_OK);
    TR_CHECK_STR(d.name, "alice's laptop");
    TR_CHECK_INT(d.nrepos, ==, 2);
    TR_CHECK_MEM(d.repos[1], repos[1], 16);
    tr_frame_clear(&d);

    tr_vv_entry_t vv[2] = {{{1}, 5}, {{2}, 7}};
    uint8_t heads[1][32] = {{9}};
    tr_have_branch_t br = {.count = 12, .heads = heads, .nheads = 1, .vv = {vv, 2}};
    snprintf(br.name, sizeof br.name, "main");
    memset(&f, 0, sizeof f);
    f.type = TR_FRAME_HAVE;
    memcpy(f.repo, REPO, 16);
    f.branches = &br, f.nbranches = 1;
    TR_CHECK_INT(roundtrip(&f, &d, &b), ==, TR_OK);
    TR_CHECK_INT(d.nbranches, ==, 1);
    TR_CHECK_STR(d.branches[0].name, "main");
    TR_CHECK_INT(d.branches[0].count, ==, 12);
    TR_CHECK_INT(tr_vv_get(&d.branches[0].vv, vv[1].key), ==, 7);
    TR_CHECK_INT(tr_vv_get(&d.branches[0].vv, heads[0]), ==, 0);
    tr_frame_clear(&d);

    memset(&f, 0, sizeof f);
    f.type = TR_FRAME_WANT;
    memcpy(f.repo, REPO, 16);
    snprintf(f.branch, sizeof f.branch, "feature/x");
    f.want_id = 3, f.has_after = true, f.after_hash[0] = 0xaa, f.max_bytes = 1 << 20;
    f.from = (tr_vv_t){vv, 2};
    TR_CHECK_INT(roundtrip(&f, &d, &b), ==, TR_OK);
    TR_CHECK(d.has_after && d.after_hash[0] == 0xaa && d.want_id == 3 && d.from.n == 2);
    tr_frame_clear(&d);

    memset(&f, 0, sizeof f);
    f.type = TR_FRAME_OPS;
    memcpy(f.repo, REPO, 16);
    snprintf(f.branch, sizeof f.branch, "main");
    f.want_id = 3, f.final = true, f.codec = TR_CODEC_RAW;
    static const uint8_t payload[] = {0x93, 0x90, 0x90, 0x90};
    f.payload = payload, f.payload_len = sizeof payload;
    TR_CHECK_INT(roundtrip(&f, &d, &b), ==, TR_OK);
    TR_CHECK(d.final && d.payload_len == 4 && memcmp(d.payload, payload, 4) == 0);
    tr_frame_clear(&d);

    memset(&f, 0, sizeof f);
    f.type = TR_FRAME_ACK;
    memcpy(f.repo, REPO, 16);
    snprintf(f.branch, sizeof f.branch, "main");
    f.want_id = 3, f.integrated = 100, f.count = 200, f.vv = (tr_vv_t){vv, 1};
    TR_CHECK_INT(roundtrip(&f, &d, &b), ==, TR_OK);
    TR_CHECK(d.integrated == 100 && d.count == 200 && d.vv.n == 1);
    tr_frame_clear(&d);

    memset(&f, 0, sizeof f);
    f.type = TR_FRAME_NACK;
    snprintf(f.reason, sizeof f.reason, "%s", tr_wire_reason(TR_ESIG));
    snprintf(f.text, sizeof f.text, "op 3f2a: bad signature");
    f.has_hash = true;
    TR_CHECK_INT(roundtrip(&f, &d, &b), ==, TR_OK);
    TR_CHECK_STR(d.reason, "signature");
    TR_CHECK(!d.has_repo && !d.has_branch && d.has_hash);
    tr_frame_clear(&d);
    tr_buf_free(&b);
}

TR_TEST(frames_refused)
{
    tr_buf_t b = {0};
    tr_frame_t f = {0}, d;
    tr_err_t err;
    tr_vv_entry_t vv[2] = {{{2}, 5}, {{1}, 7}}; /* not sorted */
    f.type = TR_FRAME_ACK;
    snprintf(f.branch, sizeof f.branch, "main");
    f.vv = (tr_vv_t){vv, 2};
    TR_CHECK_INT(tr_frame_encode(&f, &b, &err), ==, TR_EINVAL);
    TR_CHECK_INT(b.len, ==, 0);
    tr_vv_sort(&f.vv);
    TR_CHECK_INT(tr_frame_encode(&f, &b, &err), ==, TR_OK);

    /* Every truncation fails; trailing bytes fail. */
    for (size_t n = 0; n < b.len; n++) TR_CHECK(tr_frame_decode(b.data, n, &d, NULL) < 0);
    TR_CHECK_INT(tr_buf_append(&b, "\xc0", 1), ==, TR_OK);
    TR_CHECK_INT(tr_frame_decode(b.data, b.len, &d, &err), ==, TR_EMALFORMED);

    /* Another version: TR_EVERSION with the versions spoken. */
    static const uint8_t v2[] = {0x92, 0x02, 0x00};
    TR_CHECK_INT(tr_frame_decode(v2, sizeof v2, &d, &err), ==, TR_EVERSION);
    TR_CHECK(strstr(err.msg, "speaks 1..1") != NULL);
    /* Unknown type; wrong element count; non-canonical header. */
    static const uint8_t t9[] = {0x92, 0x01, 0x09};
    TR_CHECK_INT(tr_frame_decode(t9, sizeof t9, &d, &err), ==, TR_EMALFORMED);
    static const uint8_t short_hello[] = {0x93, 0x01, 0x00, 0xa0};
    TR_CHECK_INT(tr_frame_decode(short_hello, sizeof short_hello, &d, &err), ==, TR_EMALFORMED);
    static const uint8_t noncanon[] = {0x92, 0xcc, 0x01, 0x00};
    TR_CHECK_INT(tr_frame_decode(noncanon, sizeof noncanon, &d, &err), ==, TR_ENONCANON);
    /* A vv entry with seq 0, and a branch name with a control character. */
    tr_vv_entry_t zero = {{1}, 0};
    f.vv = (tr_vv_t){&zero, 1};
    TR_CHECK_INT(tr_frame_encode(&f, &b, &err), ==, TR_EINVAL);
    f.vv.n = 0;
    snprintf(f.branch, sizeof f.branch, "a\tb");
    TR_CHECK_INT(tr_frame_encode(&f, &b, &err), ==, TR_EINVAL);
    /* Oversized frame. */
    TR_CHECK_INT(tr_frame_decode(b.data, TR_FRAME_MAX + 1, &d, &err), ==, TR_ETOOBIG);
    tr_buf_free(&b);
}

/* ---- batches ----------------------------------------------------------- */

typedef struct {
    tr_buf_t recs;
    size_t off[256], len[256];
    tr_op_t ops[256];
    size_t n;
    tr_hmap_t byseq; /* key: author[0..23] || seq → hash */
} chain_t;

static void seq_key(uint8_t key[32], const uint8_t author[32], uint64_t seq)
{
    memcpy(key, author, 24);
    for (int i = 0; i < 8; i++) key[24 + i] = (uint8_t)(seq >> (56 - 8 * i));
}

static int lookup_prev(void *arg, const uint8_t author[32], uint64_t seq, uint8_t hash[32])
{
    chain_t *c = arg;
    uint8_t key[32];
    seq_key(key, author, seq);
    uint8_t *h = tr_hmap_get(&c->byseq, key);
    if (!h) return TR_ENOTFOUND;
    memcpy(hash, h, 32);
    return TR_OK;
}

/* Builds n ops by two authors on one branch, alternately, each naming the op
 * before it (and sometimes the one before that) as parents; signs every 10th
 * and the last. Bodies are small field-set maps. */
static void build_chain(chain_t *c, size_t n, tr_identity_t *ids[2])
{
    static uint8_t bodies[256][40];
    uint64_t seq[2] = {0, 0};
    uint8_t last[2][32];
    memset(c, 0, sizeof *c);
    tr_hmap_init(&c->byseq, 32);
    for (size_t i = 0; i < n; i++) {
        int a = (int)(i % 2);
        tr_op_t *op = &c->ops[i];
        memset(op, 0, sizeof *op);
        memcpy(op->repo, REPO, 16);
        op->branch = "main", op->branch_len = 4;
        memcpy(op->author, tr_identity_public(ids[a]), 32);
        op->seq = ++seq[a];
        if (op->seq > 1) op->has_prev = true, memcpy(op->prev, last[a], 32);
        op->lamport = i + 1;
        op->wall_ms = 1763800000000ULL + i * 3;
        if (i > 0) {
            memcpy(op->parents[0], c->ops[i - 1].hash, 32);
            op->nparents = 1;
            if (i % 5 == 0 && i > 1) {
                memcpy(op->parents[1], c->ops[i - 2].hash, 32);
                op->nparents = 2;
                if (memcmp(op->parents[0], op->parents[1], 32) > 0) {
                    uint8_t t[32];
                    memcpy(t, op->parents[0], 32);
                    memcpy(op->parents[0], op->parents[1], 32);
                    memcpy(op->parents[1], t, 32);
                }
            }
        }
        op->kind = i % 3 ? "field.set" : "counter.add";
        op->kind_len = strlen(op->kind);
        op->target = "entity:42", op->target_len = 9;
        int bl = snprintf((char *)bodies[i] + 1, 39, "v%zu", i);
        bodies[i][0] = (uint8_t)(0xa0 + bl);
        op->body = bodies[i], op->body_len = (size_t)bl + 1;
        bool sign = i % 10 == 9 || i + 1 == n;
        c->off[i] = c->recs.len;
        if (tr_op_encode(op, sign ? tr_identity_secret(ids[a]) : NULL, &c->recs, NULL)) abort();
        c->len[i] = c->recs.len - c->off[i];
        memcpy(last[a], op->hash, 32);
        uint8_t key[32];
        void *v;
        seq_key(key, op->author, op->seq);
        if (tr_hmap_put(&c->byseq, key, &v, NULL)) abort();
        memcpy(v, op->hash, 32);
    }
    c->n = n;
}

TR_TEST(batch_rebuilds_records)
{
    tr_identity_t *ids[2] = {NULL, NULL};
    TR_CHECK_INT(tr_identity_generate(&ids[0]), ==, TR_OK);
    TR_CHECK_INT(tr_identity_generate(&ids[1]), ==, TR_OK);
    static chain_t c;
    build_chain(&c, 200, ids);

    /* Send ops 50..199: the receiver holds 0..49. */
    const tr_op_t *send[200];
    for (size_t i = 50; i < 200; i++) send[i - 50] = &c.ops[i];
    tr_buf_t payload = {0};
    uint64_t codec;
    TR_CHECK_INT(tr_batch_encode(send, 150, &payload, &codec, NULL), ==, TR_OK);
    size_t full = 0;
    for (size_t i = 50; i < 200; i++) full += c.len[i];
    printf("   batch: 150 ops, %zu record bytes, %zu payload bytes (codec %llu), %.1f B/op\n",
           full, payload.len, (unsigned long long)codec, (double)payload.len / 150);
    TR_CHECK(payload.len * 3 < full);

    tr_batch_t bt;
    tr_err_t err;
    TR_CHECK_INT(tr_batch_decode(payload.data, payload.len, codec, REPO, "main", lookup_prev, &c,
                                 &bt, &err),
                 ==, TR_OK);
    TR_CHECK_INT(bt.n, ==, 150);
    for (size_t i = 0; i < 150; i++) {
        TR_CHECK_INT(bt.status[i], ==, TR_OK);
        TR_CHECK_INT(bt.len[i], ==, c.len[50 + i]);
        TR_CHECK_MEM(bt.recs.data + bt.off[i], c.recs.data + c.off[50 + i], bt.len[i]);
        TR_CHECK_MEM(bt.hash[i], c.ops[50 + i].hash, 32);
    }
    tr_batch_clear(&bt);

    /* Without the receiver's store, the first op of each author cannot find
     * its prev, and everything after it fails in turn. */
    TR_CHECK_INT(tr_batch_decode(payload.data, payload.len, codec, REPO, "main", NULL, NULL, &bt,
                                 &err),
                 ==, TR_OK);
    TR_CHECK_INT(bt.status[0], ==, TR_ESEQ);
    TR_CHECK(bt.reason[0] != NULL);
    TR_CHECK_INT(bt.status[1], !=, TR_OK);
    TR_CHECK_INT(bt.status[149], !=, TR_OK);
    tr_batch_clear(&bt);

    /* From the very start, nothing is missing. */
    const tr_op_t *all[200];
    for (size_t i = 0; i < 200; i++) all[i] = &c.ops[i];
    tr_buf_reset(&payload);
    TR_CHECK_INT(tr_batch_encode(all, 200, &payload, &codec, NULL), ==, TR_OK);
    if (tr_batch_decode(payload.data, payload.len, codec, REPO, "main", NULL, NULL, &bt, &err))
        TR_FAILF("%s", err.msg);
    for (size_t i = 0; i < 200; i++) TR_CHECK_INT(bt.status[i], ==, TR_OK);
    tr_batch_clear(&bt);

    /* Decoding into another repository gives other hashes (repo is part of
     * the preimage), so a relayed batch cannot be replayed elsewhere. */
    uint8_t other[16] = {0};
    TR_CHECK_INT(tr_batch_decode(payload.data, payload.len, codec, other, "main", NULL, NULL, &bt,
                                 &err),
                 ==, TR_OK);
    TR_CHECK(memcmp(bt.hash[0], c.ops[0].hash, 32) != 0);
    tr_batch_clear(&bt);

    tr_buf_free(&payload);
    tr_buf_free(&c.recs);
    tr_hmap_free(&c.byseq);
    tr_identity_destroy(&ids[0]);
    tr_identity_destroy(&ids[1]);
}

TR_TEST(batch_refused)
{
    tr_batch_t bt;
    tr_err_t err;
    /* Unknown codec; corrupt zstd; a zstd bomb over 4 MiB. */
    static const uint8_t empty[] = {0x93, 0x90, 0x90, 0x90};
    TR_CHECK_INT(tr_batch_decode(empty, sizeof empty, TR_CODEC_RAW, REPO, "main", NULL, NULL, &bt,
                                 &err),
                 ==, TR_OK);
    TR_CHECK_INT(bt.n, ==, 0);
    tr_batch_clear(&bt);
    TR_CHECK_INT(tr_batch_decode(empty, sizeof empty, 7, REPO, "main", NULL, NULL, &bt, &err), ==,
                 TR_EMALFORMED);
    TR_CHECK_INT(tr_batch_decode(empty, sizeof empty, TR_CODEC_ZSTD, REPO, "main", NULL, NULL, &bt,
                                 &err),
                 ==, TR_EMALFORMED);
    size_t big = (4u << 20) + 1;
    uint8_t *zeros = calloc(big, 1);
    size_t bound = ZSTD_compressBound(big);
    uint8_t *z = malloc(bound);
    TR_CHECK(zeros && z);
    size_t zn = ZSTD_compress(z, bound, zeros, big, 1);
    TR_CHECK(!ZSTD_isError(zn));
    TR_CHECK_INT(tr_batch_decode(z, zn, TR_CODEC_ZSTD, REPO, "main", NULL, NULL, &bt, &err), ==,
                 TR_ETOOBIG);
    free(zeros);
    free(z);

    /* Structural refusals. */
    static const struct {
        const char *hex, *why;
    } cases[] = {
        {"92", "truncated"},
        {"929090", "not 3 elements"},
        {"939090910a", "entry not an array"},
        {"939090919900c00000c000a0c0c0", "author index out of range (no authors)"},
        {"93 91c420", "short author key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[64];
        char hex[128];
        size_t o = 0;
        for (const char *p = cases[i].hex; *p; p++)
            if (*p != ' ') hex[o++] = *p;
        hex[o] = 0;
        TR_CHECK_INT(tr_unhex(buf, o / 2, hex, o), ==, TR_OK);
        if (tr_batch_decode(buf, o / 2, TR_CODEC_RAW, REPO, "main", NULL, NULL, &bt, &err) >= 0)
            TR_FAILF("accepted: %s", cases[i].why);
    }
}

/* Every prefix and every single-byte change of a real batch either fails to
 * decode or yields records that differ from the originals (never a crash,
 * never a silent identical result from different bytes that breaks rules). */
TR_TEST(batch_mutations)
{
    tr_identity_t *ids[2] = {NULL, NULL};
    TR_CHECK_INT(tr_identity_generate(&ids[0]), ==, TR_OK);
    TR_CHECK_INT(tr_identity_generate(&ids[1]), ==, TR_OK);
    static chain_t c;
    build_chain(&c, 12, ids);
    const tr_op_t *all[12];
    for (size_t i = 0; i < 12; i++) all[i] = &c.ops[i];
    tr_buf_t p = {0};
    uint64_t codec;
    TR_CHECK_INT(tr_batch_encode(all, 12, &p, &codec, NULL), ==, TR_OK);
    if (codec == TR_CODEC_ZSTD) { /* mutate the plain batch, not the zstd frame */
        unsigned long long size = ZSTD_getFrameContentSize(p.data, p.len);
        uint8_t *plain = malloc(size);
        TR_CHECK(plain && ZSTD_decompress(plain, size, p.data, p.len) == size);
        tr_buf_reset(&p);
        TR_CHECK_INT(tr_buf_append(&p, plain, size), ==, TR_OK);
        free(plain);
        codec = TR_CODEC_RAW;
    }
    tr_batch_t bt;
    for (size_t n = 0; n < p.len; n++)
        if (tr_batch_decode(p.data, n, codec, REPO, "main", NULL, NULL, &bt, NULL) == TR_OK) {
            tr_batch_clear(&bt);
            TR_FAILF("prefix of %zu bytes accepted", n);
        }
    uint8_t *m = malloc(p.len);
    TR_CHECK(m);
    for (size_t i = 0; i < p.len; i++) {
        memcpy(m, p.data, p.len);
        m[i] ^= 0x41;
        if (tr_batch_decode(m, p.len, codec, REPO, "main", NULL, NULL, &bt, NULL) == TR_OK)
            tr_batch_clear(&bt);
    }
    free(m);
    tr_buf_free(&p);
    tr_buf_free(&c.recs);
    tr_hmap_free(&c.byseq);
    tr_identity_destroy(&ids[0]);
    tr_identity_destroy(&ids[1]);
}

TR_MAIN()
