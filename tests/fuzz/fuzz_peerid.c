/* fuzz_peerid.c — libFuzzer harness for peer id text (tr_peer_id_parse,
 * core/tr_identity.h): ids arrive in TXT records, agent.json, control
 * requests and on the command line. Whatever the bytes: no crash; a refusal
 * says why; an accepted id names a key whose canonical id parses back to
 * the same key, and whose fingerprint is the id's first 16 characters. */
#include <stdlib.h>
#include <string.h>

#include "tr_identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    uint8_t key[TR_KEY_LEN], again[TR_KEY_LEN];
    tr_err_t err;
    err.msg[0] = '\0';
    if (tr_peer_id_parse(s, key, &err) != TR_OK) {
        if (!err.msg[0]) abort();
        free(s);
        return 0;
    }
    char id[TR_PEER_ID_STRLEN + 1], fp[TR_FINGERPRINT_STRLEN + 1];
    tr_peer_id(id, key);
    if (strlen(id) != TR_PEER_ID_STRLEN) abort();
    if (tr_peer_id_parse(id, again, &err) != TR_OK || memcmp(key, again, TR_KEY_LEN)) abort();
    tr_peer_fingerprint(fp, key);
    for (size_t i = 0, k = 0; i < TR_FINGERPRINT_STRLEN; i++)
        if (fp[i] != '-' && fp[i] != id[k++]) abort();
    free(s);
    return 0;
}
