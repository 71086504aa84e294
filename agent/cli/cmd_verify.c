/* cmd_verify.c — `trellis verify`: recheck the whole store. */
#include "cli.h"

#include <pthread.h>

static const char verify_help[] =
    "Usage: trellis verify [--json]\n"
    "\n"
    "Rechecks every op in the repository in one snapshot: the record decodes\n"
    "and its hash matches, each author's seq/prev chain is unbroken, parents\n"
    "are known and earlier, lamports increase, every signature verifies, and\n"
    "on branches that require signing every op is covered by a signature.\n"
    "Prints the counts and each bad op with its reason.\n"
    "\n"
    "Options:\n"
    "  --json      {\"ops\": N, \"signatures\": N, \"bad\": N, \"problems\": [{\"branch\",\n"
    "              \"position\", \"hash\", \"error\", \"reason\"}]}\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 all good; 1 bad ops found or the check failed;\n"
    "2 usage error.\n";

typedef struct {
    cli_t *c;
    json_t *problems;     /* --json */
    pthread_mutex_t lock; /* reports may come from the store's worker threads */
} verify_ctx_t;

static void verify_report(void *arg, const char *branch, uint64_t pos,
                          const uint8_t hash[TR_HASH_LEN], int code, const char *reason)
{
    verify_ctx_t *x = arg;
    char hex[2 * TR_HASH_LEN + 1] = "-"; /* no hash: a record that does not decode */
    if (hash) tr_hex(hex, hash, TR_HASH_LEN);
    if (!reason) reason = tr_strerror(code);
    pthread_mutex_lock(&x->lock);
    if (x->problems)
        json_array_append_new(x->problems, json_pack("{s:s, s:I, s:o, s:s, s:s}", "branch", branch,
                                                     "position", (json_int_t)pos, "hash",
                                                     hash ? json_string(hex) : json_null(), "error",
                                                     tr_errname(code), "reason", reason));
    else
        printf("%sbad%s %s#%llu %s: %s\n", cli_c(x->c, CLI_RED), cli_c(x->c, CLI_RESET), branch,
               (unsigned long long)pos, hex, reason);
    pthread_mutex_unlock(&x->lock);
}

static int verify_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {CLI_OPT_JSON, CLI_OPT_HELP, CLI_OPT_END};
    bool json = false;
    int o, rc;
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
    if (optind < argc) return cli_usage(c, "unexpected argument '%s'", argv[optind]);
    tr_repo_t *repo;
    if ((rc = cli_repo(c, TR_REPO_RDONLY, &repo))) return rc;

    verify_ctx_t x = {c, json ? json_array() : NULL, PTHREAD_MUTEX_INITIALIZER};
    if (json && !x.problems) return cli_fail(c, NULL, "out of memory");
    tr_verify_stats_t st = {0};
    tr_err_t err = {0};
    if (tr_store_verify(tr_repo_store(repo), 0, verify_report, &x, &st, &err) != TR_OK) {
        json_decref(x.problems);
        return cli_fail_err(c, NULL, &err);
    }
    rc = st.bad ? CLI_FAIL : CLI_OK;
    if (json) {
        int r = cli_json_out(c,
                             json_pack("{s:I, s:I, s:I, s:o}", "ops", (json_int_t)st.ops,
                                       "signatures", (json_int_t)st.signatures, "bad",
                                       (json_int_t)st.bad, "problems", x.problems),
                             true);
        return r ? r : rc;
    }
    printf("%s%s%s: %llu ops, %llu signatures checked, %llu bad\n",
           cli_c(c, st.bad ? CLI_RED : CLI_GREEN), st.bad ? "BAD" : "ok", cli_c(c, CLI_RESET),
           (unsigned long long)st.ops, (unsigned long long)st.signatures,
           (unsigned long long)st.bad);
    return cli_flush(c, rc);
}

const cli_cmd_t cli_cmd_verify = {"verify", "recheck every hash, signature and link", verify_help,
                                  verify_run, NULL};
