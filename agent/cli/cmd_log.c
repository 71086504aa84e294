/* cmd_log.c — `trellis log` and `trellis show`. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "../../core/tr_json.h"

static const char log_help[] =
    "Usage: trellis log [--branch BRANCH] [--limit N] [--json]\n"
    "\n"
    "Lists a branch's ops, newest first, one per line:\n"
    "\n"
    "  SHORT-HASH  SEQ  AUTHOR-FINGERPRINT  KIND  TARGET\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --limit N        at most N ops (default: all)\n"
    "  --json           a JSON array of op objects, one per line, with the\n"
    "                   fields of 'show --json'\n"
    "  -h, --help       show this help\n"
    "\n"
    "A branch without ops prints nothing (or []).\n"
    "\n"
    "Exit status: 0 ok; 1 failure (no repository, unreadable store);\n"
    "2 usage error.\n";

static const char show_help[] =
    "Usage: trellis show [--json] HASH\n"
    "\n"
    "Shows one op: every field, its body as JSON, and whether it carries its\n"
    "own signature. HASH may be any unique prefix of at least 4 hex digits.\n"
    "\n"
    "Options:\n"
    "  --json      one object: {\"hash\", \"repo\", \"branch\", \"position\", \"author\"\n"
    "              (peer id), \"seq\", \"lamport\", \"wall\" (ISO-8601 UTC, display\n"
    "              only), \"parents\": [...], \"prev\" (null for seq 1), \"kind\",\n"
    "              \"target\", \"body\", \"signed\"}. Binary in a body shows as\n"
    "              {\"$bin\": HEX}, integers above 2^63-1 as {\"$uint\": DIGITS}.\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok; 1 no such op, ambiguous prefix or other failure;\n"
    "2 usage error.\n";

typedef struct {
    cli_t *c;
    bool json;
    uint64_t n;
    int failed;
} log_ctx_t;

static int log_visit(void *arg, const tr_op_t *op, const uint8_t *rec, size_t len, uint64_t pos)
{
    (void)rec, (void)len;
    log_ctx_t *x = arg;
    if (x->json) {
        json_t *o = cli_op_json(op, pos);
        if (!o) return x->failed = 1;
        fputs(x->n ? ",\n" : "\n", stdout);
        json_dumpf(o, stdout, JSON_COMPACT);
        json_decref(o);
    } else {
        char h[13], fp[TR_FINGERPRINT_STRLEN + 1];
        tr_hash_short(h, op->hash, 12);
        tr_peer_fingerprint(fp, op->author);
        printf("%s%s%s %llu %s %.*s %.*s\n", cli_c(x->c, CLI_YELLOW), h, cli_c(x->c, CLI_RESET),
               (unsigned long long)op->seq, fp, (int)op->kind_len, op->kind, (int)op->target_len,
               op->target);
    }
    x->n++;
    return ferror(stdout) ? (x->failed = 1) : 0;
}

static int log_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"branch", required_argument, NULL, 'B'},
                                         {"limit", required_argument, NULL, 'n'},
                                         CLI_OPT_JSON,
                                         CLI_OPT_HELP,
                                         CLI_OPT_END};
    const char *branch = "main";
    uint64_t limit = 0;
    log_ctx_t x = {c, false, 0, 0};
    int o, rc;
    while ((o = cli_getopt(c, argc, argv, "h", opts)) != -1) {
        switch (o) {
        case 'B':
            branch = optarg;
            break;
        case 'n':
            if ((rc = cli_parse_u64(c, "--limit", optarg, 0, UINT64_MAX, &limit))) return rc;
            break;
        case 'j':
            x.json = true;
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

    tr_err_t err = {0};
    if (x.json) fputs("[", stdout);
    rc = tr_store_iter_rev(tr_repo_store(repo), branch, limit, log_visit, &x, &err);
    if (x.json) fputs(x.n ? "\n]\n" : "]\n", stdout);
    if (rc < 0 && rc != TR_ENOTFOUND) return cli_fail_err(c, NULL, &err);
    if (x.failed) return cli_flush(c, CLI_FAIL);
    return cli_flush(c, CLI_OK);
}

/* Text form of `show`: one "name  value" line per field. */
static void show_text(cli_t *c, const tr_op_t *op, uint64_t pos)
{
    char hex[2 * TR_HASH_LEN + 1], id[TR_PEER_ID_STRLEN + 1], fp[TR_FINGERPRINT_STRLEN + 1],
        wall[32];
    tr_hex(hex, op->hash, TR_HASH_LEN);
    printf("op       %s%s%s\n", cli_c(c, CLI_YELLOW), hex, cli_c(c, CLI_RESET));
    tr_hex(hex, op->repo, TR_REPO_ID_LEN);
    printf("repo     %s\n", hex);
    printf("branch   %.*s (position %llu)\n", (int)op->branch_len, op->branch,
           (unsigned long long)pos);
    tr_peer_id(id, op->author);
    tr_peer_fingerprint(fp, op->author);
    printf("author   %s (%s)\n", id, fp);
    printf("seq      %llu\n", (unsigned long long)op->seq);
    printf("lamport  %llu\n", (unsigned long long)op->lamport);
    cli_iso8601(wall, op->wall_ms);
    printf("wall     %s\n", wall);
    if (op->nparents == 0) printf("parents  -\n");
    for (size_t i = 0; i < op->nparents; i++) {
        tr_hex(hex, op->parents[i], TR_HASH_LEN);
        printf("%s %s\n", i ? "        " : "parents ", hex);
    }
    if (op->has_prev) tr_hex(hex, op->prev, TR_HASH_LEN);
    printf("prev     %s\n", op->has_prev ? hex : "-");
    printf("kind     %.*s\n", (int)op->kind_len, op->kind);
    printf("target   %.*s\n", (int)op->target_len, op->target);
    printf("signed   %s\n",
           op->has_sig ? "yes" : "no (relies on a later signed op of its author)");
    json_t *body = NULL;
    tr_err_t err = {0};
    if (tr_json_from_mp(op->body, op->body_len, &body, &err) == TR_OK) {
        char *s = json_dumps(body, JSON_ENCODE_ANY | JSON_INDENT(2));
        printf("body     %s\n", s ? s : "(out of memory)");
        free(s);
        json_decref(body);
    } else {
        printf("body     (cannot be shown: %s)\n", err.msg);
    }
}

static int show_run(cli_t *c, int argc, char **argv)
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
    if (argc - optind != 1) return cli_usage(c, "expected one HASH");
    const char *hex = argv[optind];
    tr_repo_t *repo;
    if ((rc = cli_repo(c, TR_REPO_RDONLY, &repo))) return rc;
    tr_store_t *s = tr_repo_store(repo);
    tr_err_t err = {0};
    uint8_t hash[TR_HASH_LEN];
    if (tr_store_resolve(s, hex, hash, &err) != TR_OK) return cli_fail_err(c, NULL, &err);
    tr_buf_t rec = {0};
    tr_op_t op;
    uint64_t pos;
    if ((rc = cli_load_op(c, s, hash, &rec, &op, &pos)) == CLI_OK) {
        if (json) {
            rc = cli_json_out(c, cli_op_json(&op, pos), true);
        } else {
            show_text(c, &op, pos);
            rc = cli_flush(c, CLI_OK);
        }
    }
    tr_buf_free(&rec);
    return rc;
}

const cli_cmd_t cli_cmd_log = {"log", "list a branch's ops, newest first", log_help, log_run, NULL};
const cli_cmd_t cli_cmd_show = {"show", "show one op", show_help, show_run, NULL};
