/*
 * tr_events.h — the agent's event log (docs/events.md).
 *
 * Overview
 *   One JSON object per line in <state dir>/events.jsonl:
 *     {"id": 42, "time": "2026-11-22T12:00:00.123Z", "type": "peer.connected", …fields}
 *   Ids increase by one across restarts and rotations. When the file passes
 *   TR_EVENTS_ROTATE_BYTES it is renamed events.jsonl.1 (older ones shift
 *   to .2 … .TR_EVENTS_KEEP, the oldest is deleted) and a new file begins.
 *   Each event is also logged (syslog/journald when the agent runs as a
 *   daemon). tr_events_read() walks the files oldest first, for readers such
 *   as `trellis events`.
 *
 * Caveats
 *   - One writer per state directory (the agent holds a lock).
 *   - Lines are written with one write(2) each; readers may see a partial
 *     last line while it is being written and should retry it.
 *   - Never put key material in fields.
 */
#ifndef TR_EVENTS_H
#define TR_EVENTS_H

#include <jansson.h>
#include <stdint.h>

#include "../../core/tr_error.h"

#define TR_EVENTS_FILE "events.jsonl"
#define TR_EVENTS_ROTATE_BYTES (4u << 20)
#define TR_EVENTS_KEEP 4

typedef struct tr_events tr_events_t;

/* Opens (creating) the event log in `dir`; the next id follows the last one
 * written. Caller owns *out. */
int tr_events_open(const char *dir, tr_events_t **out, tr_err_t *err) TR_MUST_CHECK;

/* NULL-safe. */
void tr_events_close(tr_events_t **ev);

/* Appends an event of `type` with `fields` (an object, or NULL; its "id",
 * "time" and "type" keys are ignored). Steals the reference to fields.
 * Failures are logged, never fatal: the agent keeps running. Returns the id,
 * or 0 on failure. */
uint64_t tr_events_emit(tr_events_t *ev, const char *type, json_t *fields);

/* Calls fn for every event in `dir` with id > since (oldest first, across
 * rotated files). fn returning non-zero stops; that value is returned. */
typedef int (*tr_events_fn)(void *arg, json_t *event);
int tr_events_read(const char *dir, uint64_t since, tr_events_fn fn, void *arg, tr_err_t *err);

#endif
