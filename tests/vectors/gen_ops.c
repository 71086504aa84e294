/* gen_ops.c — prints tests/vectors/ops.json, the op test vectors of
 * docs/protocol.md §Ops. Run only when the vectors must be regenerated:
 *   cc -Icore tests/vectors/gen_ops.c core/{codec,op,identity,error}.c \
 *      $(pkg-config --cflags --libs libsodium msgpack jansson) -o /tmp/gen && /tmp/gen
 * The vectors are then checked by tests/unit/test_op.c, which rebuilds each
 * op from its fields, independently of this program. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "tr_identity.h"
#include "tr_op.h"

static json_t *hexj(const uint8_t *p, size_t n)
{
    char buf[2 * TR_OP_MAX_BYTES + 1];
    tr_hex(buf, p, n);
    return json_string(buf);
}

static json_t *vec(const char *desc, const uint8_t seed[32], tr_op_t *op, int sign,
                   const char *body_json)
{
    tr_identity_t *id = NULL;
    if (tr_identity_from_seed(seed, &id)) return NULL;
    memcpy(op->author, tr_identity_public(id), 32);
    tr_buf_t b = {0};
    if (tr_op_encode(op, sign ? tr_identity_secret(id) : NULL, &b, NULL)) return NULL;
    json_t *v = json_object(), *par = json_array();
    json_object_set_new(v, "description", json_string(desc));
    json_object_set_new(v, "author_seed", hexj(seed, 32));
    json_object_set_new(v, "repo", hexj(op->repo, 16));
    json_object_set_new(v, "branch", json_stringn(op->branch, op->branch_len));
    json_object_set_new(v, "author", hexj(op->author, 32));
    json_object_set_new(v, "seq", json_integer((json_int_t)op->seq));
    json_object_set_new(v, "lamport", json_integer((json_int_t)op->lamport));
    json_object_set_new(v, "wall", json_integer((json_int_t)op->wall_ms));
    for (size_t i = 0; i < op->nparents; i++) json_array_append_new(par, hexj(op->parents[i], 32));
    json_object_set_new(v, "parents", par);
    json_object_set_new(v, "prev", op->has_prev ? hexj(op->prev, 32) : json_null());
    json_object_set_new(v, "kind", json_stringn(op->kind, op->kind_len));
    json_object_set_new(v, "target", json_stringn(op->target, op->target_len));
    json_object_set_new(v, "body_json", json_string(body_json));
    json_object_set_new(v, "body", hexj(op->body, op->body_len));
    json_object_set_new(v, "signed", json_boolean(sign));
    json_object_set_new(v, "record", hexj(b.data, b.len));
    json_object_set_new(v, "hash", hexj(op->hash, 32));
    tr_buf_free(&b);
    tr_identity_destroy(&id);
    return v;
}

int main(void)
{
    uint8_t seed_a[32], seed_b[32], repo[16];
    for (int i = 0; i < 32; i++) seed_a[i] = (uint8_t)i, seed_b[i] = (uint8_t)(0xff - i);
    for (int i = 0; i < 16; i++) repo[i] = (uint8_t)(0xa0 + i);
    json_t *all = json_array();

    /* {"field":"title","value":"Hello"} */
    static const uint8_t body1[] = {0x82, 0xa5, 'f', 'i', 'e', 'l', 'd', 0xa5, 't', 'i', 't', 'l',
                                    'e', 0xa5, 'v', 'a', 'l', 'u', 'e', 0xa5, 'H', 'e', 'l', 'l', 'o'};
    tr_op_t o1 = {.branch = "main", .branch_len = 4, .seq = 1, .lamport = 1,
                  .wall_ms = 1763800000000ULL, .kind = "field.set", .kind_len = 9,
                  .target = "doc:1", .target_len = 5, .body = body1, .body_len = sizeof body1};
    memcpy(o1.repo, repo, 16);
    json_array_append_new(all, vec("first op of an author: seq 1, no prev, no parents, signed", seed_a,
                                   &o1, 1, "{\"field\":\"title\",\"value\":\"Hello\"}"));

    /* {"o":"o","p":"urn:p","s":"urn:s"} */
    static const uint8_t body2[] = {0x83, 0xa1, 'o', 0xa1, 'o', 0xa1, 'p', 0xa5, 'u', 'r', 'n',
                                    ':', 'p', 0xa1, 's', 0xa5, 'u', 'r', 'n', ':', 's'};
    tr_op_t o2 = {.branch = "main", .branch_len = 4, .seq = 2, .lamport = 2,
                  .wall_ms = 1763800000001ULL, .nparents = 1, .has_prev = true,
                  .kind = "triple.add", .kind_len = 10, .target = "urn:s", .target_len = 5,
                  .body = body2, .body_len = sizeof body2};
    memcpy(o2.repo, repo, 16);
    memcpy(o2.parents[0], o1.hash, 32);
    memcpy(o2.prev, o1.hash, 32);
    json_array_append_new(all, vec("seq 2, chained to seq 1 by prev and parent, unsigned", seed_a,
                                   &o2, 0, "{\"o\":\"o\",\"p\":\"urn:p\",\"s\":\"urn:s\"}"));

    /* {"a":-1,"b":300,"c":1.5,"d":[true,false,null],"e":{"x":"ü"}} */
    static const uint8_t body3[] = {0x85, 0xa1, 'a', 0xff, 0xa1, 'b', 0xcd, 0x01, 0x2c, 0xa1, 'c',
                                    0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0xa1, 'd', 0x93, 0xc3,
                                    0xc2, 0xc0, 0xa1, 'e', 0x81, 0xa1, 'x', 0xa2, 0xc3, 0xbc};
    tr_op_t o3 = {.branch = "main", .branch_len = 4, .seq = 3, .lamport = 3,
                  .wall_ms = 1763800000002ULL, .nparents = 1, .has_prev = true,
                  .kind = "app.note", .kind_len = 8, .target = "", .target_len = 0,
                  .body = body3, .body_len = sizeof body3};
    memcpy(o3.repo, repo, 16);
    memcpy(o3.parents[0], o2.hash, 32);
    memcpy(o3.prev, o2.hash, 32);
    json_array_append_new(
        all, vec("seq 3, signed: its signature also vouches for seq 2 through prev", seed_a, &o3,
                 1, "{\"a\":-1,\"b\":300,\"c\":1.5,\"d\":[true,false,null],\"e\":{\"x\":\"\\u00fc\"}}"));

    static const uint8_t body4[] = {0xc0};
    tr_op_t o4 = {.branch = "feature/x", .branch_len = 9, .seq = 1, .lamport = 4,
                  .wall_ms = 1763800000003ULL, .nparents = 2, .kind = "counter.add",
                  .kind_len = 11, .target = "doc:1", .target_len = 5, .body = body4,
                  .body_len = sizeof body4};
    memcpy(o4.repo, repo, 16);
    const uint8_t *pa = memcmp(o2.hash, o3.hash, 32) < 0 ? o2.hash : o3.hash;
    const uint8_t *pb = pa == o2.hash ? o3.hash : o2.hash;
    memcpy(o4.parents[0], pa, 32);
    memcpy(o4.parents[1], pb, 32);
    json_array_append_new(all, vec("another author, two parents in ascending byte order, nil body",
                                   seed_b, &o4, 1, "null"));

    json_dumpf(all, stdout, JSON_INDENT(2));
    printf("\n");
    json_decref(all);
    return 0;
}
