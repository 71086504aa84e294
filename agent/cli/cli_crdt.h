/*
 * cli_crdt.h — the CRDT commands of `trellis` (cmd_crdt.c, cmd_reconcile.c):
 * set, append, get, triple, counter, resolve, conflicts, rebuild and
 * sync reconcile. Their tables are listed in main.c (and `sync reconcile`
 * in cmd_sync.c's group); the semantics are docs/crdt.md's, the store side
 * is store/tr_store.h "Materialized state".
 */
#ifndef TR_CLI_CRDT_H
#define TR_CLI_CRDT_H

#include "cli.h"

extern const cli_cmd_t cli_cmd_set, cli_cmd_append, cli_cmd_get, cli_cmd_triple, cli_cmd_counter,
    cli_cmd_resolve, cli_cmd_conflicts, cli_cmd_rebuild, cli_cmd_sync_reconcile;

/* Warns on stderr when the repository's materialized state is not ready
 * for its config (stale strategies, never built): reads still work, on the
 * state as it is. */
void cli_state_warn(cli_t *c, tr_store_t *s);

#endif
