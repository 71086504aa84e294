/* evemit.c — a helper of tests/cli/test_events.sh and test_notify.sh (not
 * part of trellis): writes events through the agent's own writer
 * (tr_events_emit), so that tests can fill, rotate and follow the log
 * without running agents, and time bursts exactly.
 *
 *   evemit DIR COUNT TYPE [FIELDS-JSON [PAD-BYTES [GAP-MS]]]
 *
 * Appends COUNT events of TYPE to the log in DIR, each with the members of
 * FIELDS-JSON (an object; default {}) and, when PAD-BYTES > 0, a "pad"
 * string of that many bytes (to reach the rotation size quickly), sleeping
 * GAP-MS milliseconds between two events. Prints the last id written.
 * Exit 0, 1 on an error, 2 on bad arguments. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../../agent/lib/tr_events.h"
#include "../../../agent/lib/tr_log.h"

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 7) {
        fprintf(stderr, "usage: evemit DIR COUNT TYPE [FIELDS-JSON [PAD-BYTES [GAP-MS]]]\n");
        return 2;
    }
    long count = strtol(argv[2], NULL, 10);
    long pad = argc > 5 ? strtol(argv[5], NULL, 10) : 0;
    long gap = argc > 6 ? strtol(argv[6], NULL, 10) : 0;
    json_t *fields = json_loads(argc > 4 ? argv[4] : "{}", 0, NULL);
    if (count < 0 || pad < 0 || pad > (1 << 20) || gap < 0 || !json_is_object(fields)) {
        fprintf(stderr, "evemit: bad COUNT, PAD-BYTES, GAP-MS or FIELDS-JSON\n");
        return 2;
    }
    char *padding = malloc((size_t)pad + 1);
    if (!padding) return 1;
    memset(padding, 'x', (size_t)pad);
    padding[pad] = '\0';
    if (pad) json_object_set_new(fields, "pad", json_string(padding));
    free(padding);

    tr_log_init("evemit", TR_LOG_WARN, 0); /* not one log line per event */
    tr_events_t *ev = NULL;
    tr_err_t err = {0};
    if (tr_events_open(argv[1], &ev, &err) != TR_OK) {
        fprintf(stderr, "evemit: %s\n", err.msg);
        json_decref(fields);
        return 1;
    }
    uint64_t id = 0;
    for (long i = 0; i < count; i++) {
        id = tr_events_emit(ev, argv[3], json_deep_copy(fields));
        if (!id) break;
        if (gap) {
            struct timespec ts = {gap / 1000, (gap % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    tr_events_close(&ev);
    json_decref(fields);
    if (!id && count) return 1;
    printf("%llu\n", (unsigned long long)id);
    return 0;
}
