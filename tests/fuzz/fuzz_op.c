/* fuzz_op.c — libFuzzer harness for the op record decoder. Whatever the
 * input, tr_op_decode must not crash, and an op it accepts must re-encode to
 * exactly the input bytes (canonical form is unique). */
#include <stdlib.h>
#include <string.h>

#include "tr_op.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_op_t op;
    if (tr_op_decode(data, size, &op, NULL) != TR_OK) return 0;
    tr_buf_t b = {0};
    if (tr_op_encode(&op, NULL, &b, NULL) != TR_OK) abort();
    if (b.len != size || memcmp(b.data, data, size) != 0) abort();
    uint8_t h[TR_HASH_LEN];
    if (tr_op_record_hash(data, size, h) != TR_OK || memcmp(h, op.hash, TR_HASH_LEN)) abort();
    (void)tr_op_verify(&op);
    tr_buf_free(&b);
    return 0;
}
