/*
 * cli.h — private to the `trellis` command line (agent/cli/).
 *
 * Overview
 *   main.c holds the command table and dispatch; each cmd_*.c file holds one
 *   or two commands (their help text, option parsing and output); util.c the
 *   shared plumbing: error and usage messages, colour, JSON output, opening
 *   the repository and the identity; opjson.c the one JSON shape of an op;
 *   client.c the control-socket client that talks to a running trellisd.
 *
 *   Conventions every command follows:
 *     - exit codes CLI_OK 0, CLI_FAIL 1, CLI_USAGE 2, CLI_UNREACH 3;
 *     - errors on stderr as "trellis: <what>: <reason>", usage errors add
 *       "Try 'trellis <cmd> --help'.";
 *     - with --json, exactly one JSON value on stdout (an array for
 *       listings, an object for one item), also when the command fails
 *       after it started producing data (import, verify);
 *     - colour only when the stream is a terminal (or --color=always), never
 *       with NO_COLOR set.
 *
 * Caveats
 *   - One cli_t per process; commands run once and return an exit code.
 *   - cli_repo/cli_identity open lazily and main() closes them; commands never
 *     free what the context owns.
 *   - Commands that need the agent exit CLI_UNREACH (3) when it does not run
 *     or does not answer in time; the local commands never need it, and a
 *     local write only notifies it (cli_wrote).
 */
#ifndef TR_CLI_H
#define TR_CLI_H

#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../../core/tr_error.h"
#include "../../core/tr_identity.h"
#include "../../core/tr_op.h"
#include "../../store/tr_repo.h"
#include "../lib/tr_home.h"

#ifndef TR_VERSION
#define TR_VERSION "0.1.0"
#endif

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_UNREACH = 3 };

typedef struct cli cli_t;

typedef struct cli_cmd {
    const char *name;                            /* "add" */
    const char *summary;                         /* one line for the command list */
    const char *help;                            /* full --help text: usage, options, exit status */
    int (*run)(cli_t *c, int argc, char **argv); /* argv[0] is the command name */
    const struct cli_cmd *const *sub;            /* subcommands (NULL-terminated) or NULL */
} cli_cmd_t;

struct cli {
    char cmd[64]; /* full command name for messages: "op add" */
    const cli_cmd_t *current;
    bool color_out; /* colour on stdout */
    bool color_err; /* colour on stderr */
    tr_home_t *home;
    tr_repo_t *repo;
    tr_identity_t *id;
};

/* Long option shared by every command. */
#define CLI_OPT_HELP                                                                               \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }
#define CLI_OPT_JSON                                                                               \
    {                                                                                              \
        "json", no_argument, NULL, 'j'                                                             \
    }
#define CLI_OPT_END                                                                                \
    {                                                                                              \
        NULL, 0, NULL, 0                                                                           \
    }

/* Command tables (cmd_*.c). */
extern const cli_cmd_t cli_cmd_init, cli_cmd_id, cli_cmd_op, cli_cmd_op_add, cli_cmd_op_import,
    cli_cmd_log, cli_cmd_show, cli_cmd_verify, cli_cmd_sync, cli_cmd_repo, cli_cmd_peers,
    cli_cmd_peer, cli_cmd_clone;

/* ---- util.c ---------------------------------------------------------- */

/* getopt_long without getopt's own messages: prints ours for an unknown
 * option or a missing value and returns '?'. Returns 'h' for --help/-h. The
 * short options string must not start with ':' (added here). */
int cli_getopt(cli_t *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts);

/* The options of a command that takes only --json, --help and, when
 * `timeout` is non-NULL, --timeout MS (100 to max_ms; *timeout holds the
 * default). Returns -1 when the command goes on (optind at its first
 * argument), or the exit code to return (help shown, usage error). */
int cli_std_opts(cli_t *c, int argc, char **argv, bool *json, uint64_t *timeout, uint64_t max_ms);

/* Prints the current command's help to stdout; returns CLI_OK. */
int cli_help(cli_t *c);

/* Prints "trellis <cmd>: <message>" and the --help hint; returns CLI_USAGE. */
int cli_usage(cli_t *c, const char *fmt, ...) TR_PRINTF(2, 3);

/* Prints "trellis: <what>: <message>" to stderr; returns CLI_FAIL. `what`
 * NULL means the command name. */
int cli_fail(cli_t *c, const char *what, const char *fmt, ...) TR_PRINTF(3, 4);

/* cli_fail with err's message (or tr_strerror(code) when it is empty). */
int cli_fail_err(cli_t *c, const char *what, const tr_err_t *err);

/* Parses a non-negative decimal option value in [min, max]. */
int cli_parse_u64(cli_t *c, const char *opt, const char *s, uint64_t min, uint64_t max,
                  uint64_t *out);

/* Opens the repository found from the current directory (once). */
int cli_repo(cli_t *c, unsigned flags, tr_repo_t **out);

/* Loads (or, with create, makes) the user's identity (once). */
int cli_identity(cli_t *c, bool create, tr_identity_t **out);

/* The home directories (once). */
int cli_home(cli_t *c, tr_home_t **out);

/* Prints `v` (stolen) as one JSON value and a newline; pretty when `pretty`.
 * Returns CLI_OK, or CLI_FAIL if v is NULL (out of memory) or stdout failed. */
int cli_json_out(cli_t *c, json_t *v, bool pretty);

/* Colour escapes for stdout ("" when colour is off). */
const char *cli_c(const cli_t *c, const char *which);
#define CLI_YELLOW "\033[33m"
#define CLI_GREEN "\033[32m"
#define CLI_RED "\033[31m"
#define CLI_BOLD "\033[1m"
#define CLI_RESET "\033[0m"

/* Flushes stdout and reports a write error (full disk, closed pipe). */
int cli_flush(cli_t *c, int rc);

/* Wall-clock milliseconds since the epoch. */
uint64_t cli_now_ms(void);

/* Monotonic milliseconds (for deadlines). */
uint64_t cli_mono_ms(void);

/* ---- client.c -------------------------------------------------------- */

#define CLI_AGENT_TIMEOUT_MS 3000 /* a reply from the agent, docs/control.md */
#define CLI_AGENT_MARGIN_MS 2000  /* beyond a waiting command's own timeout_ms */
#define CLI_AGENT_NOTIFY_MS 500   /* the "changed" notice after a local write */

/* Sends {"cmd": cmd, "args": args} to the local agent (args stolen; NULL
 * means {}) and waits up to timeout_ms for its reply. CLI_OK: *result is the
 * reply's result (caller owns). Otherwise nothing is printed and `why` (n
 * bytes) says what went wrong: CLI_UNREACH no agent or no reply in time,
 * CLI_USAGE the agent refused the arguments (code "invalid"), CLI_FAIL any
 * other refusal or a broken reply. */
int cli_agent_try(cli_t *c, const char *cmd, json_t *args, int timeout_ms, json_t **result,
                  char *why, size_t n);

/* cli_agent_try that prints the failure ("trellis: <cmd>: <why>", or a usage
 * message) and returns the exit code: CLI_UNREACH (3), CLI_USAGE, CLI_FAIL. */
int cli_agent_call(cli_t *c, const char *cmd, json_t *args, int timeout_ms, json_t **result);

/* Call after every successful local write to repository `root`: tells a
 * running agent to push `branch` (NULL: any) to its peers now. Silent, best
 * effort, bounded by CLI_AGENT_NOTIFY_MS. */
void cli_wrote(cli_t *c, const char *root, const char *branch);

/* `path` made absolute: realpath(3) when it exists, else the working
 * directory prefixed and "."/".." folded. Prints the error itself. */
int cli_abspath(cli_t *c, const char *path, char out[PATH_MAX]);

/* ---- opjson.c -------------------------------------------------------- */

/* The JSON object of one op (the shape log and show share):
 * {"hash","repo","branch","position","author","seq","lamport","wall",
 *  "parents","prev","kind","target","body","signed"}. NULL on ENOMEM. */
json_t *cli_op_json(const tr_op_t *op, uint64_t pos);

/* Reads op `hash` from the store into rec/op (op borrows rec) and its
 * position; prints the error and returns CLI_FAIL if it cannot. */
int cli_load_op(cli_t *c, tr_store_t *s, const uint8_t hash[TR_HASH_LEN], tr_buf_t *rec,
                tr_op_t *op, uint64_t *pos);

/* ISO-8601 UTC with milliseconds: "2024-05-01T12:34:56.789Z". */
void cli_iso8601(char out[32], uint64_t wall_ms);

#endif
