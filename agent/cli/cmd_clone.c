/* cmd_clone.c — `trellis clone REPO-ID [PATH]`: a local replica of a
 * repository that a connected peer serves, made and first synced by the agent. */
#include "cli.h"

#include <string.h>

#define CLONE_DEFAULT_TIMEOUT_MS 60000
#define CLONE_MAX_TIMEOUT_MS 600000

static const char clone_help[] =
    "Usage: trellis clone [--timeout MS] [--json] REPO-ID [PATH]\n"
    "\n"
    "Makes PATH (default: ./ and the first 8 digits of REPO-ID) a replica of\n"
    "the repository REPO-ID (32 hex digits, as 'trellis sync status' shows it)\n"
    "that a connected, trusted peer serves: the agent creates it with the same\n"
    "repository id, serves it from now on and syncs it. The command returns\n"
    "once the first sync went quiet, or when the timeout runs out (the agent\n"
    "keeps syncing in the background either way). This is how a second\n"
    "workstation joins a repository.\n"
    "\n"
    "The new replica has the default config.json (branch 'main' linear, every\n"
    "other branch CRDT); config.json is not synced, so copy branch policies\n"
    "that differ from the default by hand.\n"
    "\n"
    "Options:\n"
    "  --timeout MS  how long to wait for the first sync, 100 to 600000\n"
    "                (default 60000)\n"
    "  --json        print the repository as {\"path\", \"repo\", \"ops\", \"default\"}\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit status: 0 cloned; 1 refused (no connected peer serves REPO-ID, PATH\n"
    "exists, …); 2 usage error; 3 the agent is not running or not responding.\n";

static int clone_run(cli_t *c, int argc, char **argv)
{
    uint64_t timeout = CLONE_DEFAULT_TIMEOUT_MS;
    bool json = false;
    int rc = cli_std_opts(c, argc, argv, &json, &timeout, CLONE_MAX_TIMEOUT_MS);
    if (rc >= 0) return rc;
    if (optind >= argc) return cli_usage(c, "expected a REPO-ID");
    if (argc - optind > 2) return cli_usage(c, "unexpected argument '%s'", argv[optind + 2]);
    const char *hex = argv[optind];
    uint8_t id[TR_REPO_ID_LEN];
    if (strlen(hex) != TR_REPO_ID_HEXLEN || tr_unhex(id, sizeof id, hex, strlen(hex)) != TR_OK)
        return cli_usage(c, "REPO-ID must be 32 hex digits, not '%s'", hex);
    char def[16], lower[TR_REPO_ID_HEXLEN + 1], path[PATH_MAX];
    tr_hex(lower, id, sizeof id);
    snprintf(def, sizeof def, "%.8s", lower);
    if ((rc = cli_abspath(c, argc - optind > 1 ? argv[optind + 1] : def, path))) return rc;

    json_t *res;
    json_t *args = json_pack("{s:s,s:s,s:I}", "repo", lower, "path", path, "timeout_ms",
                             (json_int_t)timeout);
    if ((rc = cli_agent_call(c, "clone", args, (int)timeout + CLI_AGENT_MARGIN_MS, &res)))
        return rc;
    if (json) return cli_json_out(c, res, true);
    long long ops = (long long)json_integer_value(json_object_get(res, "ops"));
    const char *where = json_string_value(json_object_get(res, "path"));
    printf("cloned %s into %s: %lld ops%s\n", lower, where ? where : path, ops,
           ops ? "" : " (none yet; the agent keeps syncing it)");
    json_decref(res);
    return cli_flush(c, CLI_OK);
}

const cli_cmd_t cli_cmd_clone = {"clone", "replicate a repository a peer serves", clone_help,
                                 clone_run, NULL};
