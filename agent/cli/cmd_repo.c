/* cmd_repo.c — `trellis repo add|list|rm`: the repositories trellisd serves. */
#include "cli.h"

#include <string.h>

#define REPO_EXIT                                                                                  \
    "Exit status: 0 ok; 1 refused (the message says why); 2 usage error;\n"                        \
    "3 the agent is not running or not responding.\n"

static const char repo_help[] =
    "Usage: trellis repo add PATH\n"
    "       trellis repo list [--json]\n"
    "       trellis repo rm PATH\n"
    "\n"
    "The repositories the local agent (trellisd) serves to its trusted peers.\n"
    "The list is kept in the agent's agent.json and survives restarts; the\n"
    "agent also serves a default repository in its data directory.\n"
    "\n"
    "Commands:\n"
    "  add     serve a repository\n"
    "  list    show the served repositories\n"
    "  rm      stop serving a repository (its files stay)\n"
    "\n" REPO_EXIT;

static const char add_help[] =
    "Usage: trellis repo add [--json] PATH\n"
    "\n"
    "Asks the running agent to serve the repository at PATH (made absolute\n"
    "here; see 'trellis init'). Peers that serve the same repository id sync\n"
    "with it from now on.\n"
    "\n"
    "Options:\n"
    "  --json      print the repository as {\"path\", \"repo\", \"ops\", \"default\"}\n"
    "  -h, --help  show this help\n"
    "\n" REPO_EXIT;

static const char list_help[] =
    "Usage: trellis repo list [--json]\n"
    "\n"
    "Shows the repositories the running agent serves: id, op count and path.\n"
    "\n"
    "Options:\n"
    "  --json      print an array of {\"path\", \"repo\", \"ops\", \"default\"}\n"
    "  -h, --help  show this help\n"
    "\n" REPO_EXIT;

static const char rm_help[] =
    "Usage: trellis repo rm [--json] PATH\n"
    "\n"
    "Asks the running agent to stop serving the repository at PATH. Nothing\n"
    "is deleted: the repository stays usable offline and can be added again.\n"
    "The default repository cannot be removed.\n"
    "\n"
    "Options:\n"
    "  --json      print {\"path\": PATH} once it is removed\n"
    "  -h, --help  show this help\n"
    "\n" REPO_EXIT;

/* Parses [--json] [-h] and exactly `npos` positional arguments. Returns -1
 * to go on, or the exit code to return. */
static int repo_args(cli_t *c, int argc, char **argv, size_t npos, bool *json)
{
    int rc = cli_std_opts(c, argc, argv, json, NULL, 0);
    if (rc >= 0) return rc;
    if ((size_t)(argc - optind) < npos) return cli_usage(c, "expected a PATH");
    if ((size_t)(argc - optind) > npos)
        return cli_usage(c, "unexpected argument '%s'", argv[optind + npos]);
    return -1;
}

static void repo_line(cli_t *c, json_t *r)
{
    printf("%s%s%s %10lld ops  %s%s\n", cli_c(c, CLI_YELLOW),
           json_string_value(json_object_get(r, "repo")), cli_c(c, CLI_RESET),
           (long long)json_integer_value(json_object_get(r, "ops")),
           json_string_value(json_object_get(r, "path")),
           json_is_true(json_object_get(r, "default")) ? " (default)" : "");
}

/* repo add / repo rm: one path to the agent, absolute. */
static int repo_path_cmd(cli_t *c, int argc, char **argv, const char *cmd)
{
    bool json = false;
    int rc = repo_args(c, argc, argv, 1, &json);
    if (rc >= 0) return rc;
    char path[PATH_MAX];
    if ((rc = cli_abspath(c, argv[optind], path))) return rc;
    json_t *res;
    if ((rc = cli_agent_call(c, cmd, json_pack("{s:s}", "path", path), CLI_AGENT_TIMEOUT_MS,
                             &res)))
        return rc;
    bool add = strcmp(cmd, "repo.add") == 0;
    if (json) {
        if (add) return cli_json_out(c, res, true);
        json_decref(res);
        return cli_json_out(c, json_pack("{s:s}", "path", path), true);
    }
    if (add) {
        printf("serving ");
        repo_line(c, res);
    } else {
        printf("no longer serving %s\n", path);
    }
    json_decref(res);
    return cli_flush(c, CLI_OK);
}

static int add_run(cli_t *c, int argc, char **argv)
{
    return repo_path_cmd(c, argc, argv, "repo.add");
}

static int rm_run(cli_t *c, int argc, char **argv)
{
    return repo_path_cmd(c, argc, argv, "repo.rm");
}

static int list_run(cli_t *c, int argc, char **argv)
{
    bool json = false;
    int rc = repo_args(c, argc, argv, 0, &json);
    if (rc >= 0) return rc;
    json_t *res;
    if ((rc = cli_agent_call(c, "repo.list", NULL, CLI_AGENT_TIMEOUT_MS, &res))) return rc;
    if (!json_is_array(res)) {
        json_decref(res);
        return cli_fail(c, NULL, "the agent sent a repository list that is not an array");
    }
    if (json) return cli_json_out(c, res, true);
    size_t i;
    json_t *r;
    json_array_foreach(res, i, r) repo_line(c, r);
    json_decref(res);
    return cli_flush(c, CLI_OK);
}

static const cli_cmd_t repo_add = {"add", "serve a repository with the agent", add_help, add_run,
                                   NULL};
static const cli_cmd_t repo_list = {"list", "show the repositories the agent serves", list_help,
                                    list_run, NULL};
static const cli_cmd_t repo_rm = {"rm", "stop serving a repository", rm_help, rm_run, NULL};
static const cli_cmd_t *const repo_sub[] = {&repo_add, &repo_list, &repo_rm, NULL};

const cli_cmd_t cli_cmd_repo = {"repo", "the repositories the agent serves", repo_help, NULL,
                                repo_sub};
