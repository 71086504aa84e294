/* fuzz_json.c — libFuzzer harness for JSON → canonical msgpack
 * (tr_json_parse, core/tr_json.h): op bodies from `trellis op add --body`,
 * `op import` files and the CRDT commands, all outside input. Whatever the
 * bytes: no crash, no leak; a refusal says why and leaves the output
 * untouched; an accepted value is canonical msgpack that converts to JSON
 * for display and, read back with TR_JSON_TAGS, to exactly the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "tr_json.h"

static void check(const char *text, size_t len, unsigned flags)
{
    tr_buf_t out = {0};
    static const uint8_t mark[] = {0xc3};
    if (tr_buf_append(&out, mark, 1)) abort(); /* output is appended to */
    tr_err_t err;
    err.msg[0] = '\0';
    if (tr_json_parse(text, len, flags, &out, &err) != TR_OK) {
        if (!err.msg[0] || out.len != 1) abort();
        tr_buf_free(&out);
        return;
    }
    json_t *j = NULL;
    if (tr_json_from_mp(out.data + 1, out.len - 1, &j, &err) != TR_OK) abort();
    if (flags & TR_JSON_TAGS) {
        tr_buf_t again = {0};
        if (tr_json_pack(j, TR_JSON_TAGS, &again, &err) != TR_OK) abort();
        if (again.len != out.len - 1 || memcmp(again.data, out.data + 1, again.len)) abort();
        tr_buf_free(&again);
    }
    json_decref(j);
    tr_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check((const char *)data, size, 0);
    check((const char *)data, size, TR_JSON_TAGS);
    return 0;
}
