/* cmd_init.c — `trellis init [PATH]`. */
#include "cli.h"

static const char init_help[] =
    "Usage: trellis init [--json] [PATH]\n"
    "\n"
    "Makes PATH (default: the current directory, or -C's) a trellis repository:\n"
    "creates PATH if it is missing, then PATH/.trellis/ with the default\n"
    "config.json (branch 'main' linear, every other branch CRDT, signatures\n"
    "required everywhere) and an empty op store with a new random repo id,\n"
    "which it prints. An existing repository is never re-initialised.\n"
    "\n"
    "Options:\n"
    "  --json      print {\"repo\": ID, \"path\": ROOT}\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 created; 1 failed (for example, PATH already is a\n"
    "repository), nothing left behind; 2 usage error.\n";

static int init_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {CLI_OPT_JSON, CLI_OPT_HELP, CLI_OPT_END};
    bool json = false;
    int o;
    while ((o = cli_getopt(c, argc, argv, "h", opts)) != -1) {
        switch (o) {
        case 'j':
            json = true;
            break;
        case 'h':
            return cli_help(c);
        default:
            return CLI_USAGE;
        }
    }
    if (argc - optind > 1) return cli_usage(c, "expected at most one PATH");
    const char *path = optind < argc ? argv[optind] : ".";

    tr_err_t err = {0};
    tr_repo_t *repo = NULL;
    if (tr_repo_init(path, &repo, &err) != TR_OK) return cli_fail_err(c, NULL, &err);
    char id[TR_REPO_ID_HEXLEN + 1];
    tr_repo_id_hex(repo, id);
    int rc;
    if (json) {
        rc = cli_json_out(c, json_pack("{s:s, s:s}", "repo", id, "path", tr_repo_root(repo)), true);
    } else {
        printf("Initialised an empty trellis repository in %s/" TR_REPO_DIR "\nrepo %s\n",
               tr_repo_root(repo), id);
        rc = cli_flush(c, CLI_OK);
    }
    tr_repo_destroy(&repo);
    return rc;
}

const cli_cmd_t cli_cmd_init = {"init", "create a repository", init_help, init_run, NULL};
