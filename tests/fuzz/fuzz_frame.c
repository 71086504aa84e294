/* fuzz_frame.c — libFuzzer harness for the sync frame decoder: no crash, no
 * leak, and an accepted frame re-encodes to exactly the input bytes. */
#include <stdlib.h>
#include <string.h>

#include "tr_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tr_frame_t f;
    if (tr_frame_decode(data, size, &f, NULL) != TR_OK) return 0;
    tr_buf_t b = {0};
    if (tr_frame_encode(&f, &b, NULL) != TR_OK) abort();
    if (b.len != size || memcmp(b.data, data, size) != 0) abort();
    tr_buf_free(&b);
    tr_frame_clear(&f);
    return 0;
}
