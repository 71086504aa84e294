/* util.c — plumbing shared by the trellis commands (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_getopt(cli_t *c, int argc, char **argv, const char *shortopts,
               const struct option *longopts)
{
    char so[64]; /* ':' for our own messages, after a leading '+' (stop at a non-option) */
    if (shortopts[0] == '+')
        snprintf(so, sizeof so, "+:%s", shortopts + 1);
    else
        snprintf(so, sizeof so, ":%s", shortopts);
    opterr = 0;
    int o = getopt_long(argc, argv, so, longopts, NULL);
    if (o == '?') {
        const char *arg = argv[optind - 1];
        if (optopt && !(arg[0] == '-' && arg[1] == '-'))
            cli_usage(c, "unknown option '-%c'", optopt);
        else
            cli_usage(c, "unknown option '%s'", arg);
    } else if (o == ':') {
        const char *arg = argv[optind - 1];
        if (optopt && !(arg[0] == '-' && arg[1] == '-'))
            cli_usage(c, "option '-%c' needs a value", optopt);
        else
            cli_usage(c, "option '%s' needs a value", arg);
        o = '?';
    }
    return o;
}

int cli_help(cli_t *c)
{
    fputs(c->current->help, stdout);
    return cli_flush(c, CLI_OK);
}

int cli_usage(cli_t *c, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%strellis%s%s:%s ", c->color_err ? CLI_BOLD CLI_RED : "", c->cmd[0] ? " " : "",
            c->cmd, c->color_err ? CLI_RESET : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'trellis %s%s--help'.\n", c->cmd, c->cmd[0] ? " " : "");
    return CLI_USAGE;
}

int cli_fail(cli_t *c, const char *what, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%strellis:%s %s: ", c->color_err ? CLI_BOLD CLI_RED : "",
            c->color_err ? CLI_RESET : "", what ? what : c->cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_FAIL;
}

int cli_fail_err(cli_t *c, const char *what, const tr_err_t *err)
{
    return cli_fail(c, what, "%s", err->msg[0] ? err->msg : tr_strerror(err->code));
}

int cli_parse_u64(cli_t *c, const char *opt, const char *s, uint64_t min, uint64_t max,
                  uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *s == '-' || *end || errno || v < min || v > max)
        return cli_usage(c, "%s wants a whole number from %llu to %llu, not '%s'", opt,
                         (unsigned long long)min, (unsigned long long)max, s);
    *out = v;
    return CLI_OK;
}

int cli_home(cli_t *c, tr_home_t **out)
{
    tr_err_t err = {0};
    if (!c->home && tr_home_open(&c->home, &err) != TR_OK) return cli_fail_err(c, NULL, &err);
    *out = c->home;
    return CLI_OK;
}

int cli_repo(cli_t *c, unsigned flags, tr_repo_t **out)
{
    tr_err_t err = {0};
    if (!c->repo) {
        char *root = NULL;
        if (tr_repo_find(".", &root, &err) != TR_OK) {
            int rc = cli_fail_err(c, NULL, &err);
            if (err.code == TR_ENOTREPO)
                fprintf(stderr, "(create one with 'trellis init', or name one with -C PATH)\n");
            return rc;
        }
        int rc = tr_repo_open(root, flags, &c->repo, &err);
        free(root);
        if (rc != TR_OK) return cli_fail_err(c, NULL, &err);
    }
    *out = c->repo;
    return CLI_OK;
}

int cli_identity(cli_t *c, bool create, tr_identity_t **out)
{
    tr_err_t err = {0};
    tr_home_t *h;
    int rc = cli_home(c, &h);
    if (rc) return rc;
    if (!c->id && tr_home_identity(h, create, &c->id, NULL, &err) != TR_OK)
        return cli_fail(c, "identity", "%s", err.msg);
    *out = c->id;
    return CLI_OK;
}

int cli_json_out(cli_t *c, json_t *v, bool pretty)
{
    if (!v) return cli_fail(c, NULL, "out of memory");
    size_t flags = JSON_ENCODE_ANY | (pretty ? JSON_INDENT(2) : JSON_COMPACT);
    int r = json_dumpf(v, stdout, flags);
    json_decref(v);
    if (r == 0) fputc('\n', stdout);
    return cli_flush(c, CLI_OK);
}

const char *cli_c(const cli_t *c, const char *which)
{
    return c->color_out ? which : "";
}

int cli_flush(cli_t *c, int rc)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        if (errno == EPIPE) return rc; /* the reader went away: not our failure */
        cli_fail(c, "stdout", "%s", strerror(errno));
        return CLI_FAIL;
    }
    return rc;
}

uint64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t cli_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int cli_std_opts(cli_t *c, int argc, char **argv, bool *json, uint64_t *timeout, uint64_t max_ms)
{
    static const struct option with_timeout[] = {
        {"timeout", required_argument, NULL, 't'}, CLI_OPT_JSON, CLI_OPT_HELP, CLI_OPT_END};
    const struct option *opts = timeout ? with_timeout : with_timeout + 1;
    int o, rc;
    while ((o = cli_getopt(c, argc, argv, "h", opts)) != -1) {
        switch (o) {
        case 't':
            if ((rc = cli_parse_u64(c, "--timeout", optarg, 100, max_ms, timeout))) return rc;
            break;
        case 'j':
            *json = true;
            break;
        case 'h':
            return cli_help(c);
        default:
            return CLI_USAGE;
        }
    }
    return -1;
}
