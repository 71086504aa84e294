/* main.c — trellisd: arguments, logging, daemonising, run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../lib/tr_log.h"
#include "agent.h"

/* check.c: `--check-config`; prints what is wrong, returns the exit status. */
int agent_check_config(void);

#ifndef TR_VERSION
#define TR_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: trellisd [--listen ENDPOINT] [--no-discovery] [-d|--daemon] [-v]\n"
            "       trellisd -n|--check-config\n"
            "\n"
            "The trellis agent: serves this user's repositories to trusted peers and\n"
            "keeps them in sync (CurveZMQ over TCP). Runs in the foreground and logs to\n"
            "stderr unless --daemon is given (then it detaches and logs to syslog).\n"
            "\n"
            "options:\n"
            "  -l, --listen ENDPOINT  where to accept peers (default %s;\n"
            "                         port 0 picks a free port, shown by `trellis sync status`)\n"
            "      --no-discovery     do not publish or browse mDNS (static peers only)\n"
            "  -d, --daemon           detach from the terminal and log to syslog\n"
            "  -v, --verbose          more log detail (twice: protocol debugging)\n"
            "  -n, --check-config     check the identity, agent.json and every served\n"
            "                         repository's config.json, print each error with its\n"
            "                         file and key, and exit: 0 all good, 1 errors found\n"
            "  -h, --help             this help\n"
            "      --version          print the version\n"
            "\n"
            "files: $XDG_CONFIG_HOME/trellis/{identity.key,agent.json} (or $TRELLIS_HOME/config),\n"
            "       the control socket under $XDG_RUNTIME_DIR/trellis/ (or $TRELLIS_HOME/run),\n"
            "       the event log $XDG_STATE_HOME/trellis/events.jsonl (or $TRELLIS_HOME/state;\n"
            "       read it with `trellis events`), the default repository under\n"
            "       $XDG_DATA_HOME/trellis/default (or $TRELLIS_HOME/data).\n"
            "SIGTERM or SIGINT: finish the current transaction, close sockets, exit 0.\n"
            "exit status: 0 clean shutdown (or a good configuration with -n), 1 failure to\n"
            "start (or configuration errors), 2 usage error.\n",
            AGENT_DEFAULT_LISTEN);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"no-discovery", no_argument, NULL, 'D'},
        {"daemon", no_argument, NULL, 'd'},       {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {"check-config", no_argument, NULL, 'n'}, {NULL, 0, NULL, 0}};
    const char *listen = NULL;
    bool discovery = true, daemonize = false, check = false;
    int verbose = 0, c;
    while ((c = getopt_long(argc, argv, "l:dvhn", opts, NULL)) != -1) {
        switch (c) {
        case 'l': listen = optarg; break;
        case 'D': discovery = false; break;
        case 'd': daemonize = true; break;
        case 'v': verbose++; break;
        case 'n': check = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("trellisd %s\n", TR_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "trellisd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (check) {
        tr_log_init("trellisd", TR_LOG_WARN, 0);
        if (tr_crypto_init()) {
            fprintf(stderr, "trellisd: cannot initialise libsodium\n");
            return 1;
        }
        return agent_check_config();
    }
    if (daemonize && daemon(0, 0) != 0) {
        perror("trellisd: cannot daemonize");
        return 1;
    }
    tr_log_init("trellisd", verbose ? TR_LOG_DEBUG : TR_LOG_INFO, daemonize);
    if (tr_crypto_init()) {
        tr_log_err("cannot initialise libsodium");
        return 1;
    }
    agent_t *a = NULL;
    tr_err_t err;
    tr_err_clear(&err);
    if (agent_new(&a, listen, discovery, verbose, &err) != TR_OK) {
        tr_log_err("cannot start: %s", err.msg);
        return 1;
    }
    int rc = agent_run(a);
    agent_destroy(&a);
    return rc;
}
