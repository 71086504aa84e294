/* cmd_sync.c — the `trellis sync` group; for now `sync status` (local part). */
#include "cli.h"

static const char sync_help[] =
    "Usage: trellis sync status [--json]\n"
    "\n"
    "Sync with peers. For now, the local part:\n"
    "\n"
    "Commands:\n"
    "  status    the repository's op counts, heads and branches\n"
    "\n"
    "Exit status: 0 ok; 1 failure; 2 usage error; 3 agent unreachable.\n";

static const char status_help[] =
    "Usage: trellis sync status [--json]\n"
    "\n"
    "Shows the repository id, the total op count, the head of 'main' and, per\n"
    "branch, its op count, heads and highest lamport. Reads only what the\n"
    "store keeps ready (no scan), so it is instant on any size of log.\n"
    "\n"
    "Options:\n"
    "  --json      {\"repo\": ID, \"ops\": N, \"head\": HASH or null,\n"
    "              \"branches\": [{\"name\", \"ops\", \"heads\": [...], \"lamport\"}]}\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok; 1 failure (no repository); 2 usage error.\n";

typedef struct {
    cli_t *c;
    json_t *branches; /* --json */
} status_ctx_t;

static json_t *status_heads(const tr_branch_info_t *info)
{
    json_t *a = json_array();
    char hex[2 * TR_HASH_LEN + 1];
    size_t n = info->nheads < TR_BRANCH_HEADS_MAX ? info->nheads : TR_BRANCH_HEADS_MAX;
    for (size_t i = 0; a && i < n; i++) {
        tr_hex(hex, info->heads[i], TR_HASH_LEN);
        if (json_array_append_new(a, json_string(hex))) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static int status_branch(void *arg, const char *name, const tr_branch_info_t *info)
{
    status_ctx_t *x = arg;
    if (x->branches) {
        json_t *b = json_pack("{s:s, s:I, s:o, s:I}", "name", name, "ops", (json_int_t)info->count,
                              "heads", status_heads(info), "lamport", (json_int_t)info->lamport);
        return !b || json_array_append_new(x->branches, b);
    }
    char h[13] = "-";
    if (info->nheads) tr_hash_short(h, info->heads[0], 12);
    printf("  %-20s %10llu ops  lamport %-8llu head %s%s%s", name, (unsigned long long)info->count,
           (unsigned long long)info->lamport, cli_c(x->c, CLI_YELLOW), h, cli_c(x->c, CLI_RESET));
    if (info->nheads > 1) printf(" (+%zu more)", info->nheads - 1);
    putchar('\n');
    return 0;
}

static int status_run(cli_t *c, int argc, char **argv)
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
    tr_store_t *s = tr_repo_store(repo);

    tr_err_t err = {0};
    uint64_t total = 0;
    tr_branch_info_t main_info;
    if (tr_store_count(s, &total, &err) != TR_OK) return cli_fail_err(c, NULL, &err);
    int mr = tr_store_branch(s, "main", &main_info, &err);
    if (mr != TR_OK && mr != TR_ENOTFOUND) return cli_fail_err(c, NULL, &err);
    char id[TR_REPO_ID_HEXLEN + 1], head[2 * TR_HASH_LEN + 1];
    tr_repo_id_hex(repo, id);
    bool has_head = mr == TR_OK && main_info.nheads > 0;
    if (has_head) tr_hex(head, main_info.heads[0], TR_HASH_LEN);

    status_ctx_t x = {c, json ? json_array() : NULL};
    if (json) {
        if (!x.branches) return cli_fail(c, NULL, "out of memory");
        if (tr_store_branches(s, status_branch, &x, &err) != TR_OK) {
            json_decref(x.branches);
            return cli_fail_err(c, NULL, &err);
        }
        return cli_json_out(c,
                            json_pack("{s:s, s:I, s:o, s:o}", "repo", id, "ops", (json_int_t)total,
                                      "head", has_head ? json_string(head) : json_null(),
                                      "branches", x.branches),
                            true);
    }
    printf("repo      %s\n", id);
    printf("root      %s\n", tr_repo_root(repo));
    printf("ops       %llu\n", (unsigned long long)total);
    printf("head      %s%s%s%s\n", cli_c(c, CLI_YELLOW), has_head ? head : "-", cli_c(c, CLI_RESET),
           has_head ? " (main)" : "");
    if (total) printf("branches\n");
    if (tr_store_branches(s, status_branch, &x, &err) != TR_OK) return cli_fail_err(c, NULL, &err);
    return cli_flush(c, CLI_OK);
}

static const cli_cmd_t sync_status = {"status", "show the local sync state", status_help,
                                      status_run, NULL};
static const cli_cmd_t *const sync_sub[] = {&sync_status, NULL};

const cli_cmd_t cli_cmd_sync = {"sync", "sync with peers", sync_help, NULL, sync_sub};
