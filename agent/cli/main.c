/* main.c — `trellis`: global options, the command table and dispatch. */
#include "cli.h"
#include "cli_crdt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char main_help_head[] =
    "Usage: trellis [-C PATH] [--color=WHEN] COMMAND [ARGS...]\n"
    "       trellis help [COMMAND]    trellis --version\n"
    "\n"
    "trellis keeps a repository's signed, append-only op log and syncs it with\n"
    "peers on the local network. Without a COMMAND it shows 'sync status'.\n"
    "\n"
    "Commands:\n";

static const char main_help_tail[] =
    "\n"
    "Global options (before COMMAND):\n"
    "  -C PATH          run as if trellis was started in PATH (the repository is\n"
    "                   found by walking up from there)\n"
    "  --color=WHEN     colour output: auto (only on a terminal; the default),\n"
    "                   always or never; NO_COLOR in the environment means never\n"
    "  --version        print the version and exit\n"
    "  -h, --help       show this help and exit\n"
    "\n"
    "Every command takes --help; those that print data take --json (one JSON\n"
    "value on stdout: an array for listings, an object for one item).\n"
    "repo, peers, peer, clone and sync now talk to the local agent (trellisd);\n"
    "the others work on the repository directly, with or without it.\n"
    "\n"
    "Files: your identity is in $XDG_CONFIG_HOME/trellis (~/.config/trellis);\n"
    "TRELLIS_HOME, if set, holds all of trellis's directories instead.\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 usage error, 3 agent unreachable.\n";

extern const cli_cmd_t cli_cmd_events; /* cmd_events.c */

static const cli_cmd_t *const main_cmds[] = {
    &cli_cmd_init, &cli_cmd_id,   &cli_cmd_op,    &cli_cmd_log,   &cli_cmd_show, &cli_cmd_verify,
    &cli_cmd_sync, &cli_cmd_repo, &cli_cmd_peers, &cli_cmd_peer, &cli_cmd_clone,
    /* CRDT (cmd_crdt.c) */
    &cli_cmd_set, &cli_cmd_append, &cli_cmd_get, &cli_cmd_triple, &cli_cmd_counter,
    &cli_cmd_resolve, &cli_cmd_conflicts, &cli_cmd_rebuild,
    /* the agent's event log (cmd_events.c) */
    &cli_cmd_events, NULL};

static const cli_cmd_t main_root = {"", "", main_help_head, NULL, NULL};

/* Appends one line of the command list. */
static size_t main_list_line(char *list, size_t cap, size_t o, const char *name,
                             const char *summary)
{
    if (o >= cap) return o;
    int w = snprintf(list + o, cap - o, "  %-14s %s\n", name, summary);
    return w < 0 ? o : o + (size_t)w;
}

/* Prints the top-level help with the command list built from the table. */
static void main_print_help(FILE *f)
{
    char list[4096], name[32];
    size_t o = 0;
    list[0] = '\0';
    for (size_t i = 0; main_cmds[i]; i++) {
        const cli_cmd_t *m = main_cmds[i];
        if (!m->sub) {
            o = main_list_line(list, sizeof list, o, m->name, m->summary);
            continue;
        }
        for (size_t k = 0; m->sub[k]; k++) {
            snprintf(name, sizeof name, "%s %s", m->name, m->sub[k]->name);
            o = main_list_line(list, sizeof list, o, name, m->sub[k]->summary);
        }
    }
    main_list_line(list, sizeof list, o, "help", "show help for a command");
    fputs(main_help_head, f);
    fputs(list, f);
    fputs(main_help_tail, f);
}

/* Finds a command by name in the top table or in a group's subcommands. */
static const cli_cmd_t *main_find(const cli_cmd_t *const *table, const char *name)
{
    for (size_t i = 0; table[i]; i++)
        if (strcmp(table[i]->name, name) == 0) return table[i];
    return NULL;
}

static void main_set_cmd(cli_t *c, const cli_cmd_t *m, const cli_cmd_t *parent)
{
    c->current = m;
    if (parent)
        snprintf(c->cmd, sizeof c->cmd, "%s %s", parent->name, m->name);
    else
        snprintf(c->cmd, sizeof c->cmd, "%s", m->name);
}

/* `trellis help [CMD [SUB]]`. */
static int main_help_cmd(cli_t *c, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "help") == 0) {
        main_print_help(stdout);
        return cli_flush(c, CLI_OK);
    }
    const cli_cmd_t *m = main_find(main_cmds, argv[1]);
    if (!m) {
        snprintf(c->cmd, sizeof c->cmd, "help");
        return cli_usage(c, "no command '%s'", argv[1]);
    }
    main_set_cmd(c, m, NULL);
    if (argc >= 3 && m->sub) {
        const cli_cmd_t *s = main_find(m->sub, argv[2]);
        if (!s) return cli_usage(c, "no command '%s %s'", argv[1], argv[2]);
        main_set_cmd(c, s, m);
    }
    return cli_help(c);
}

/* Runs command `m` (a group dispatches on its next word). */
static int main_run(cli_t *c, const cli_cmd_t *m, int argc, char **argv)
{
    main_set_cmd(c, m, NULL);
    if (m->sub) {
        if (argc < 2) {
            char names[128] = "";
            for (size_t i = 0; m->sub[i]; i++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         i ? (m->sub[i + 1] ? ", " : " or ") : "", m->sub[i]->name);
            return cli_usage(c, "needs a command: %s", names);
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) return cli_help(c);
        const cli_cmd_t *s = main_find(m->sub, argv[1]);
        if (!s) return cli_usage(c, "'%s' is not a '%s' command", argv[1], m->name);
        main_set_cmd(c, s, m);
        argc--, argv++;
        m = s;
    }
    optind = 0; /* glibc: restart getopt on the command's own argv */
    return m->run(c, argc, argv);
}

/* Colour when the stream is a terminal, unless NO_COLOR or TERM=dumb. */
static bool main_tty_color(int fd)
{
    const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
    if (nc && nc[0]) return false;
    if (term && strcmp(term, "dumb") == 0) return false;
    return isatty(fd) == 1;
}

static void main_done(cli_t *c)
{
    tr_identity_destroy(&c->id);
    tr_repo_destroy(&c->repo);
    tr_home_destroy(&c->home);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"color", required_argument, NULL, 'c'},
                                         {"colour", required_argument, NULL, 'c'},
                                         {"version", no_argument, NULL, 'V'},
                                         CLI_OPT_HELP,
                                         CLI_OPT_END};
    cli_t c = {.current = &main_root};
    c.color_out = main_tty_color(STDOUT_FILENO);
    c.color_err = main_tty_color(STDERR_FILENO);
    const char *dir = NULL;
    int o, rc;
    while ((o = cli_getopt(&c, argc, argv, "+C:h", opts)) != -1) {
        switch (o) {
        case 'C':
            dir = optarg;
            break;
        case 'c':
            if (strcmp(optarg, "always") == 0) {
                c.color_out = c.color_err = true;
            } else if (strcmp(optarg, "never") == 0) {
                c.color_out = c.color_err = false;
            } else if (strcmp(optarg, "auto") != 0) {
                return cli_usage(&c, "--color wants auto, always or never, not '%s'", optarg);
            }
            break;
        case 'V':
            printf("trellis %s\n", TR_VERSION);
            return cli_flush(&c, CLI_OK);
        case 'h':
            main_print_help(stdout);
            return cli_flush(&c, CLI_OK);
        default:
            return CLI_USAGE;
        }
    }
    if (dir && chdir(dir) != 0) return cli_fail(&c, dir, "%s", strerror(errno));

    argc -= optind;
    argv += optind;
    if (argc == 0) { /* like `wg` alone: show the state */
        char sync[] = "sync", status[] = "status";
        rc = main_run(&c, &cli_cmd_sync, 2, (char *[]){sync, status, NULL});
    } else if (strcmp(argv[0], "help") == 0) {
        rc = main_help_cmd(&c, argc, argv);
    } else {
        const cli_cmd_t *m = main_find(main_cmds, argv[0]);
        if (m) {
            rc = main_run(&c, m, argc, argv);
        } else {
            fprintf(stderr, "trellis: '%s' is not a trellis command. See 'trellis --help'.\n",
                    argv[0]);
            rc = CLI_USAGE;
        }
    }
    main_done(&c);
    return rc;
}
