/* test_op.c — the canonical codec, the op model and identities: test vectors,
 * round trips, and refusal of every malformed or non-canonical input. */
#include <jansson.h>
#include <sodium.h>

#include "tr_identity.h"
#include "tr_op.h"
#include "tr_test.h"

#ifndef TR_SRCDIR
#define TR_SRCDIR "."
#endif

static size_t unhex_json(uint8_t *out, size_t cap, json_t *s)
{
    const char *h = json_string_value(s);
    size_t n = strlen(h) / 2;
    if (n > cap || tr_unhex(out, n, h, strlen(h))) return (size_t)-1;
    return n;
}

static json_t *load_vectors(void)
{
    const char *dir = getenv("TRELLIS_SRCDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/vectors/ops.json", dir ? dir : TR_SRCDIR);
    return json_load_file(path, 0, NULL);
}

/* Rebuilds every vector op from its fields and checks bytes, hash and
 * signature; decodes the record and checks the fields come back. */
TR_TEST(vectors)
{
    json_t *all = load_vectors();
    TR_CHECK(all && json_array_size(all) >= 4);
    size_t i;
    json_t *v;
    json_array_foreach(all, i, v)
    {
        uint8_t seed[32], record[TR_OP_MAX_BYTES], body[TR_BODY_MAX], hash[32];
        TR_CHECK(unhex_json(seed, 32, json_object_get(v, "author_seed")) == 32);
        size_t reclen = unhex_json(record, sizeof record, json_object_get(v, "record"));
        size_t bodylen = unhex_json(body, sizeof body, json_object_get(v, "body"));
        TR_CHECK(unhex_json(hash, 32, json_object_get(v, "hash")) == 32);
        tr_identity_t *id = NULL;
        TR_CHECK_INT(tr_identity_from_seed(seed, &id), ==, TR_OK);

        tr_op_t op = {0};
        TR_CHECK(unhex_json(op.repo, 16, json_object_get(v, "repo")) == 16);
        op.branch = json_string_value(json_object_get(v, "branch"));
        op.branch_len = strlen(op.branch);
        memcpy(op.author, tr_identity_public(id), 32);
        uint8_t author[32];
        TR_CHECK(unhex_json(author, 32, json_object_get(v, "author")) == 32);
        TR_CHECK_MEM(op.author, author, 32);
        op.seq = (uint64_t)json_integer_value(json_object_get(v, "seq"));
        op.lamport = (uint64_t)json_integer_value(json_object_get(v, "lamport"));
        op.wall_ms = (uint64_t)json_integer_value(json_object_get(v, "wall"));
        json_t *parents = json_object_get(v, "parents"), *p;
        size_t k;
        json_array_foreach(parents, k, p) TR_CHECK(unhex_json(op.parents[k], 32, p) == 32);
        op.nparents = json_array_size(parents);
        if (!json_is_null(json_object_get(v, "prev"))) {
            op.has_prev = true;
            TR_CHECK(unhex_json(op.prev, 32, json_object_get(v, "prev")) == 32);
        }
        op.kind = json_string_value(json_object_get(v, "kind"));
        op.kind_len = strlen(op.kind);
        op.target = json_string_value(json_object_get(v, "target"));
        op.target_len = strlen(op.target);
        op.body = body;
        op.body_len = bodylen;
        bool sign = json_is_true(json_object_get(v, "signed"));

        tr_buf_t b = {0};
        TR_CHECK_INT(tr_op_encode(&op, sign ? tr_identity_secret(id) : NULL, &b, NULL), ==, TR_OK);
        TR_CHECK_INT(b.len, ==, reclen);
        TR_CHECK_MEM(b.data, record, reclen);
        TR_CHECK_MEM(op.hash, hash, 32);

        /* The hash is BLAKE2b-256 of the 12-field preimage. */
        uint8_t pre[TR_OP_MAX_BYTES], h2[32];
        size_t sigsz = sign ? 66 : 1;
        pre[0] = 0x9c;
        memcpy(pre + 1, record + 1, reclen - 1 - sigsz);
        crypto_generichash(h2, 32, pre, reclen - sigsz, NULL, 0);
        TR_CHECK_MEM(h2, hash, 32);

        tr_op_t d;
        tr_err_t err;
        TR_CHECK_INT(tr_op_decode(record, reclen, &d, &err), ==, TR_OK);
        TR_CHECK_MEM(d.hash, hash, 32);
        TR_CHECK_INT(d.seq, ==, op.seq);
        TR_CHECK_INT(d.nparents, ==, op.nparents);
        TR_CHECK(d.body_len == bodylen && memcmp(d.body, body, bodylen) == 0);
        TR_CHECK_INT(tr_op_verify(&d), ==, sign ? TR_OK : TR_EUNSIGNED);
        uint8_t h3[32];
        TR_CHECK_INT(tr_op_record_hash(record, reclen, h3), ==, TR_OK);
        TR_CHECK_MEM(h3, hash, 32);
        tr_buf_free(&b);
        tr_identity_destroy(&id);
        TR_CHECK(id == NULL);
    }
    json_decref(all);
}

/* A small valid op, encoded into b. */
static int make_op(tr_buf_t *b, tr_op_t *op, tr_identity_t *id, int sign)
{
    static const uint8_t body[] = {0x81, 0xa1, 'k', 0x2a};
    memset(op, 0, sizeof *op);
    op->branch = "main";
    op->branch_len = 4;
    memcpy(op->author, tr_identity_public(id), 32);
    op->seq = 1;
    op->lamport = 1;
    op->wall_ms = 5;
    op->kind = "field.set";
    op->kind_len = 9;
    op->target = "e1";
    op->target_len = 2;
    op->body = body;
    op->body_len = sizeof body;
    return tr_op_encode(op, sign ? tr_identity_secret(id) : NULL, b, NULL);
}

static tr_identity_t *test_identity(void)
{
    uint8_t seed[32] = {7};
    tr_identity_t *id = NULL;
    return tr_identity_from_seed(seed, &id) ? NULL : id;
}

/* Every truncation is refused; every single-byte change is refused, changes
 * the hash, or breaks the signature — never silently accepted as the same op. */
TR_TEST(truncation_and_bitflips)
{
    tr_identity_t *id = test_identity();
    TR_CHECK(id);
    tr_buf_t b = {0};
    tr_op_t op, d;
    TR_CHECK_INT(make_op(&b, &op, id, 1), ==, TR_OK);
    for (size_t n = 0; n < b.len; n++) TR_CHECK(tr_op_decode(b.data, n, &d, NULL) < 0);
    uint8_t copy[512];
    TR_CHECK(b.len <= sizeof copy);
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(copy, b.data, b.len);
            copy[i] ^= (uint8_t)(1u << bit);
            if (tr_op_decode(copy, b.len, &d, NULL) != TR_OK) continue;
            bool same = memcmp(d.hash, op.hash, 32) == 0;
            TR_CHECK(!same || memcmp(d.sig, op.sig, 64) != 0);
            TR_CHECK(tr_op_verify(&d) != TR_OK);
        }
    }
    /* Trailing garbage. */
    memcpy(copy, b.data, b.len);
    copy[b.len] = 0xc0;
    tr_err_t err;
    TR_CHECK_INT(tr_op_decode(copy, b.len + 1, &d, &err), ==, TR_EMALFORMED);
    TR_CHECK(strstr(err.msg, "trailing") != NULL);
    tr_buf_free(&b);
    tr_identity_destroy(&id);
}

/* Non-canonical and invalid values are refused by tr_mp_check. */
TR_TEST(canonical_values)
{
    static const struct {
        const char *hex;
        int code;
    } cases[] = {
        {"2a", TR_OK},                 /* fixint 42 */
        {"cc2a", TR_ENONCANON},        /* 42 as uint8 */
        {"cc80", TR_OK},               /* 128 as uint8 */
        {"cd0080", TR_ENONCANON},      /* 128 as uint16 */
        {"d001", TR_ENONCANON},        /* 1 as int8 */
        {"d0e0", TR_ENONCANON},        /* -32 as int8 (fixint exists) */
        {"d0df", TR_OK},               /* -33 as int8 */
        {"e0", TR_OK},                 /* -32 fixint */
        {"d1ff7f", TR_OK},             /* -129 as int16 (shortest) */
        {"d1ff80", TR_ENONCANON},      /* -128 as int16 (int8 exists) */
        {"a161", TR_OK},               /* "a" */
        {"d90161", TR_ENONCANON},      /* "a" as str8 */
        {"c40161", TR_OK},             /* bin8 */
        {"c5000161", TR_ENONCANON},    /* bin16 of 1 byte */
        {"ca3f800000", TR_ENONCANON},  /* float32 */
        {"cb3ff8000000000000", TR_OK}, /* 1.5 */
        {"cb3ff0000000000000", TR_ENONCANON}, /* 1.0 must be an integer */
        {"cb7ff8000000000000", TR_ENONCANON}, /* NaN */
        {"82a162c0a161c0", TR_ENONCANON},     /* keys out of order */
        {"82a161c0a161c0", TR_ENONCANON},     /* duplicate key */
        {"81c0c0", TR_ENONCANON},             /* non-string key */
        {"92c0", TR_EMALFORMED},              /* array short of elements */
        {"a2c3", TR_EMALFORMED},              /* invalid UTF-8 */
        {"d40100", TR_ENONCANON},             /* ext */
        {"c1", TR_EMALFORMED},                /* reserved byte */
        {"c0c0", TR_EMALFORMED},              /* trailing value */
        {"dd7fffffff", TR_EMALFORMED},        /* huge count, no elements */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[64];
        size_t n = strlen(cases[i].hex) / 2;
        TR_CHECK_INT(tr_unhex(buf, n, cases[i].hex, 2 * n), ==, TR_OK);
        const char *why = NULL;
        int rc = tr_mp_check(buf, n, &why);
        if (rc != cases[i].code)
            TR_FAILF("case %s: got %d (%s), want %d", cases[i].hex, rc, why ? why : "",
                     cases[i].code);
        if (rc) TR_CHECK(why != NULL);
    }
    /* Nesting deeper than TR_MP_MAX_DEPTH. */
    uint8_t deep[64];
    memset(deep, 0x91, sizeof deep);
    deep[sizeof deep - 1] = 0xc0;
    TR_CHECK_INT(tr_mp_check(deep, sizeof deep, NULL), ==, TR_ETOOBIG);
    TR_CHECK_INT(tr_mp_check(deep + 64 - TR_MP_MAX_DEPTH, TR_MP_MAX_DEPTH, NULL), ==, TR_OK);
}

/* Field rules are enforced when building and when decoding. */
TR_TEST(field_rules)
{
    tr_identity_t *id = test_identity();
    TR_CHECK(id);
    tr_buf_t b = {0};
    tr_op_t op;
    tr_err_t err;
    TR_CHECK_INT(make_op(&b, &op, id, 0), ==, TR_OK);

    tr_op_t bad = op;
    bad.seq = 0;
    TR_CHECK_INT(tr_op_encode(&bad, NULL, &b, &err), ==, TR_ESEQ);
    bad = op;
    bad.seq = 2; /* needs a prev */
    TR_CHECK_INT(tr_op_encode(&bad, NULL, &b, &err), ==, TR_EPREV);
    TR_CHECK(strstr(err.msg, "prev") != NULL);
    bad = op;
    bad.kind = "Field";
    bad.kind_len = 5;
    TR_CHECK_INT(tr_op_encode(&bad, NULL, &b, &err), ==, TR_EKIND);
    bad = op;
    bad.branch_len = 0;
    TR_CHECK_INT(tr_op_encode(&bad, NULL, &b, &err), ==, TR_EINVAL);
    bad = op;
    bad.target = "a\nb";
    bad.target_len = 3;
    TR_CHECK_INT(tr_op_encode(&bad, NULL, &b, &err), ==, TR_EINVAL);
    bad = op;
    bad.nparents = 2;
    memset(bad.parents[0], 2, 32);
    memset(bad.parents[1], 1, 32);
    TR_CHECK_INT(tr_op_encode(&bad, NULL, &b, &err), ==, TR_ENONCANON);
    bad = op;
    static const uint8_t badbody[] = {0xcc, 0x01};
    bad.body = badbody;
    bad.body_len = sizeof badbody;
    TR_CHECK_INT(tr_op_encode(&bad, NULL, &b, &err), ==, TR_ENONCANON);
    TR_CHECK(strstr(err.msg, "body") != NULL);

    /* Oversize body. */
    uint8_t *big = malloc(TR_BODY_MAX + 16);
    TR_CHECK(big);
    big[0] = 0xc6;
    uint32_t n = TR_BODY_MAX + 1;
    big[1] = (uint8_t)(n >> 24), big[2] = (uint8_t)(n >> 16), big[3] = (uint8_t)(n >> 8),
    big[4] = (uint8_t)n;
    memset(big + 5, 0, n);
    bad = op;
    bad.body = big;
    bad.body_len = n + 5;
    TR_CHECK_INT(tr_op_encode(&bad, NULL, &b, &err), ==, TR_ETOOBIG);
    free(big);

    /* A failed encode leaves the buffer as it was. */
    size_t before = b.len;
    bad = op;
    bad.lamport = 0;
    TR_CHECK(tr_op_encode(&bad, NULL, &b, NULL) < 0);
    TR_CHECK_INT(b.len, ==, before);

    /* Wrong version is refused with TR_EVERSION. */
    tr_buf_reset(&b);
    TR_CHECK_INT(make_op(&b, &op, id, 0), ==, TR_OK);
    b.data[1] = 0x02;
    tr_op_t d;
    TR_CHECK_INT(tr_op_decode(b.data, b.len, &d, &err), ==, TR_EVERSION);
    tr_buf_free(&b);
    tr_identity_destroy(&id);
}

/* A signature by another key, or over another hash, does not verify. */
TR_TEST(signatures)
{
    tr_identity_t *id = test_identity(), *other = NULL;
    TR_CHECK(id);
    TR_CHECK_INT(tr_identity_generate(&other), ==, TR_OK);
    tr_buf_t b = {0};
    tr_op_t op, d;
    TR_CHECK_INT(make_op(&b, &op, id, 1), ==, TR_OK);
    TR_CHECK_INT(tr_op_decode(b.data, b.len, &d, NULL), ==, TR_OK);
    TR_CHECK_INT(tr_op_verify(&d), ==, TR_OK);
    /* Re-sign with the wrong key. */
    uint8_t msg[TR_OP_SIGMSG_LEN];
    tr_op_sigmsg(d.hash, msg);
    tr_identity_sign(other, msg, sizeof msg, d.sig);
    TR_CHECK_INT(tr_op_verify(&d), ==, TR_ESIG);
    /* The signing message is domain-separated: a plain signature over the
     * hash does not verify. */
    crypto_sign_detached(d.sig, NULL, d.hash, 32, tr_identity_secret(id));
    TR_CHECK_INT(tr_op_verify(&d), ==, TR_ESIG);
    tr_buf_free(&b);
    tr_identity_destroy(&id);
    tr_identity_destroy(&other);
}

TR_TEST(order)
{
    tr_op_t a = {0}, b = {0};
    a.lamport = 1, b.lamport = 2;
    TR_CHECK(tr_op_order(&a, &b) < 0 && tr_op_order(&b, &a) > 0);
    b.lamport = 1;
    a.author[0] = 1, b.author[0] = 2;
    TR_CHECK(tr_op_order(&a, &b) < 0);
    memcpy(b.author, a.author, 32);
    a.seq = 3, b.seq = 2;
    TR_CHECK(tr_op_order(&a, &b) > 0);
    b.seq = 3;
    TR_CHECK_INT(tr_op_order(&a, &b), ==, 0);
}

TR_TEST(peer_ids)
{
    tr_identity_t *id = test_identity();
    TR_CHECK(id);
    char pid[TR_PEER_ID_STRLEN + 1], fp[TR_FINGERPRINT_STRLEN + 1];
    tr_peer_id(pid, tr_identity_public(id));
    TR_CHECK_INT(strlen(pid), ==, TR_PEER_ID_STRLEN);
    tr_peer_fingerprint(fp, tr_identity_public(id));
    TR_CHECK_INT(strlen(fp), ==, TR_FINGERPRINT_STRLEN);
    TR_CHECK(strncmp(fp, pid, 4) == 0 && fp[4] == '-');

    uint8_t pk[32];
    TR_CHECK_INT(tr_peer_id_parse(pid, pk, NULL), ==, TR_OK);
    TR_CHECK_MEM(pk, tr_identity_public(id), 32);
    /* Upper case with dashes is the same id. */
    char loud[80];
    size_t o = 0;
    for (size_t i = 0; i < TR_PEER_ID_STRLEN; i++) {
        if (i && i % 8 == 0) loud[o++] = '-';
        loud[o++] = (char)(pid[i] >= 'a' ? pid[i] - 32 : pid[i]);
    }
    loud[o] = 0;
    TR_CHECK_INT(tr_peer_id_parse(loud, pk, NULL), ==, TR_OK);
    TR_CHECK_MEM(pk, tr_identity_public(id), 32);
    /* Hex form. */
    char hex[65];
    tr_hex(hex, tr_identity_public(id), 32);
    TR_CHECK_INT(tr_peer_id_parse(hex, pk, NULL), ==, TR_OK);
    /* One mistyped character is caught by the checksum. */
    pid[10] = pid[10] == 'a' ? 'b' : 'a';
    tr_err_t err;
    TR_CHECK_INT(tr_peer_id_parse(pid, pk, &err), ==, TR_EINVAL);
    TR_CHECK(strstr(err.msg, "checksum") != NULL);
    TR_CHECK_INT(tr_peer_id_parse("short", pk, NULL), ==, TR_EINVAL);
    TR_CHECK_INT(tr_peer_id_parse("!!!", pk, NULL), ==, TR_EINVAL);

    /* CURVE keys derive deterministically from the identity. */
    uint8_t cpk[32], csk[32], cpk2[32];
    TR_CHECK_INT(tr_identity_curve(id, cpk, csk), ==, TR_OK);
    crypto_scalarmult_base(cpk2, csk);
    TR_CHECK_MEM(cpk, cpk2, 32);
    sodium_memzero(csk, sizeof csk);
    tr_identity_destroy(&id);
    tr_identity_destroy(&id); /* NULL-safe */
}

TR_TEST(errors)
{
    for (int c = TR_OK; c > TR_ELAST; c--) {
        TR_CHECK(strcmp(tr_strerror(c), "unknown error") != 0);
        TR_CHECK(strcmp(tr_errname(c), "unknown") != 0);
    }
    TR_CHECK_STR(tr_strerror(12345), "unknown error");
    tr_err_t e;
    tr_err_clear(&e);
    TR_CHECK_INT(tr_err_set(&e, TR_ESEQ, "seq %d", 7), ==, TR_ESEQ);
    TR_CHECK_INT(tr_err_prefix(&e, TR_EINVAL, "op %s: ", "ab"), ==, TR_ESEQ);
    TR_CHECK_STR(e.msg, "op ab: seq 7");
    TR_CHECK_INT(tr_err_set(NULL, TR_EIO, "x"), ==, TR_EIO);
}

TR_MAIN()
