/* cmd_reconcile.c — `trellis sync reconcile --remote PATH`: another replica
 * of this repository, on disk, compared branch by branch and its missing
 * ops merged in (tr_store_reconcile; docs/crdt.md §7). Works without the
 * agent. */
#include "cli_crdt.h"

#include <stdlib.h>
#include <string.h>

static const char reconcile_help[] =
    "Usage: trellis sync reconcile --remote PATH [--branch BRANCH] [--dry-run]\n"
    "                              [--json]\n"
    "\n"
    "Reconciles this repository with another replica of it on disk (PATH: a\n"
    "repository, or a directory inside one, with the same repository id; another\n"
    "id is refused). Works on the two stores directly, without the agent.\n"
    "\n"
    "For each branch (or BRANCH): the ops each side holds beyond the other's\n"
    "version vector — read through the seq index, so the cost follows the\n"
    "divergence, not the history — are compared, and it prints the ops unique to\n"
    "each side, the fork point (the last op both hold), the merged order and\n"
    "the conflicts: targets both sides changed since the fork (a file, an\n"
    "entity, a triple's subject), each with a reason. Then the remote's unique\n"
    "ops are integrated here, through every rule of the store (signatures,\n"
    "causality, the materializer), on CRDT branches and — when only the remote\n"
    "moved — as a fast-forward on linear ones. A linear branch where both sides\n"
    "have unique ops diverged: it is reported, not merged.\n"
    "\n"
    "Conflicts are merged deterministically by the CRDT rules all the same; the\n"
    "list says where people should look ('trellis conflicts' lists the\n"
    "manual_resolution fields left open).\n"
    "\n"
    "Options:\n"
    "  --remote PATH    the other replica (required)\n"
    "  --branch BRANCH  only this branch (default: every branch of either side)\n"
    "  --dry-run        compare and report only; integrate nothing\n"
    "  --json           {\"remote\", \"repo\", \"dry_run\", \"branches\": [{\"branch\",\n"
    "                   \"policy\", \"status\", \"unique_local\", \"unique_remote\",\n"
    "                   \"merged\", \"fork_point\", \"integrated\", \"duplicates\",\n"
    "                   \"refused\", \"clean\", \"conflicts\": [{\"scope\", \"target\",\n"
    "                   \"field\", \"reason\", \"text\", \"local\", \"remote\"}]}]}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 every branch is in sync, merged or ahead here; 1 failure, a\n"
    "remote op refused, or a linear branch diverged; 2 usage error.\n";

typedef struct {
    char **names;
    size_t n, cap;
} names_t;

static int add_name(void *arg, const char *name, const tr_branch_info_t *info)
{
    (void)info;
    names_t *b = arg;
    for (size_t i = 0; i < b->n; i++)
        if (strcmp(b->names[i], name) == 0) return 0;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 8;
        char **p = realloc(b->names, cap * sizeof *p);
        if (!p) return TR_ENOMEM;
        b->names = p;
        b->cap = cap;
    }
    if (!(b->names[b->n] = strdup(name))) return TR_ENOMEM;
    b->n++;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *status_name(tr_recon_status_t s)
{
    switch (s) {
    case TR_RECON_SAME:
        return "in sync";
    case TR_RECON_LOCAL_AHEAD:
        return "ahead here";
    case TR_RECON_REMOTE_AHEAD:
        return "fast-forward";
    case TR_RECON_MERGED:
        return "merged";
    case TR_RECON_DIVERGED:
        return "diverged";
    }
    return "?";
}

typedef struct {
    cli_t *c;
    const char *branch;
    bool json;
} refuse_ctx_t;

static void on_refuse(void *arg, size_t index, const uint8_t *hash, int code, const char *reason)
{
    (void)index, (void)hash, (void)code;
    refuse_ctx_t *x = arg;
    fprintf(stderr, "trellis: sync reconcile: branch '%s': refused: %s\n", x->branch, reason);
}

static json_t *conflict_json(const tr_conflict_t *k)
{
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "scope", json_string(k->scope));
    json_object_set_new(o, "target", json_stringn(k->target.p, k->target.n));
    json_object_set_new(o, "field",
                        k->field.p ? json_stringn(k->field.p, k->field.n) : json_null());
    json_object_set_new(o, "reason", json_string(k->reason));
    json_object_set_new(o, "text", json_string(k->text));
    json_object_set_new(o, "local", json_integer((json_int_t)k->nlocal));
    json_object_set_new(o, "remote", json_integer((json_int_t)k->nremote));
    return o;
}

static void print_branch(cli_t *c, const tr_store_recon_t *r, bool dry)
{
    char fork[2 * TR_HASH_LEN + 1];
    if (r->has_fork) tr_hex(fork, r->fork, TR_HASH_LEN);
    const char *col = r->status == TR_RECON_DIVERGED ? CLI_RED
                      : tr_reconcile_clean(r->rec)   ? CLI_GREEN
                                                     : CLI_YELLOW;
    printf("%s%s%s: %s%s%s (%s)\n", cli_c(c, CLI_BOLD), r->branch, cli_c(c, CLI_RESET),
           cli_c(c, col), status_name(r->status), cli_c(c, CLI_RESET),
           r->linear ? "linear" : "crdt");
    printf("  unique        %llu local, %llu remote\n", (unsigned long long)r->unique_local,
           (unsigned long long)r->unique_remote);
    printf("  fork point    %s\n", r->has_fork ? fork : "none (no op in common)");
    printf("  merged        %zu ops in merged order\n", tr_reconcile_merged_count(r->rec));
    if (r->status == TR_RECON_DIVERGED)
        printf("  integrated    nothing: a linear branch that diverged is not merged; reconcile "
               "it by hand\n");
    else if (dry && (r->status == TR_RECON_MERGED || r->status == TR_RECON_REMOTE_AHEAD))
        printf("  integrated    nothing (dry run; %llu would be)\n",
               (unsigned long long)r->unique_remote);
    else if (r->status == TR_RECON_MERGED || r->status == TR_RECON_REMOTE_AHEAD)
        printf("  integrated    %llu (%llu already here, %llu refused)\n",
               (unsigned long long)r->integrated, (unsigned long long)r->duplicates,
               (unsigned long long)r->refused);
    size_t nc = tr_reconcile_conflict_count(r->rec);
    if (nc == 0) {
        printf("  conflicts     none (clean)\n");
        return;
    }
    printf("  conflicts     %zu\n", nc);
    for (size_t i = 0; i < nc; i++) {
        const tr_conflict_t *k = tr_reconcile_conflict(r->rec, i);
        printf("    %s%s%s %s\n", cli_c(c, CLI_YELLOW), k->reason, cli_c(c, CLI_RESET), k->text);
    }
}

static json_t *branch_json(const tr_store_recon_t *r)
{
    char fork[2 * TR_HASH_LEN + 1];
    if (r->has_fork) tr_hex(fork, r->fork, TR_HASH_LEN);
    json_t *o = json_object(), *cs = json_array();
    if (!o || !cs) {
        json_decref(o);
        json_decref(cs);
        return NULL;
    }
    for (size_t i = 0; i < tr_reconcile_conflict_count(r->rec); i++)
        json_array_append_new(cs, conflict_json(tr_reconcile_conflict(r->rec, i)));
    json_object_set_new(o, "branch", json_string(r->branch));
    json_object_set_new(o, "policy", json_string(r->linear ? "linear" : "crdt"));
    json_object_set_new(o, "status", json_string(status_name(r->status)));
    json_object_set_new(o, "unique_local", json_integer((json_int_t)r->unique_local));
    json_object_set_new(o, "unique_remote", json_integer((json_int_t)r->unique_remote));
    json_object_set_new(o, "merged", json_integer((json_int_t)tr_reconcile_merged_count(r->rec)));
    json_object_set_new(o, "fork_point", r->has_fork ? json_string(fork) : json_null());
    json_object_set_new(o, "integrated", json_integer((json_int_t)r->integrated));
    json_object_set_new(o, "duplicates", json_integer((json_int_t)r->duplicates));
    json_object_set_new(o, "refused", json_integer((json_int_t)r->refused));
    json_object_set_new(o, "clean", json_boolean(tr_reconcile_clean(r->rec)));
    json_object_set_new(o, "conflicts", cs);
    return o;
}

static int reconcile_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"remote", required_argument, NULL, 'R'},
                                         {"branch", required_argument, NULL, 'B'},
                                         {"dry-run", no_argument, NULL, 'n'},
                                         CLI_OPT_JSON,
                                         CLI_OPT_HELP,
                                         CLI_OPT_END};
    const char *remote_path = NULL, *only = NULL;
    bool dry = false, json = false;
    int ch;
    while ((ch = cli_getopt(c, argc, argv, "h", opts)) != -1) {
        switch (ch) {
        case 'R':
            remote_path = optarg;
            break;
        case 'B':
            only = optarg;
            break;
        case 'n':
            dry = true;
            break;
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
    if (!remote_path) return cli_usage(c, "--remote PATH is required");
    if (only && !only[0]) return cli_usage(c, "--branch needs a name");

    tr_repo_t *repo, *remote = NULL;
    int rc = cli_repo(c, 0, &repo);
    if (rc) return rc;
    tr_err_t err = {0};
    char *root = NULL;
    if (tr_repo_find(remote_path, &root, &err) != TR_OK) return cli_fail_err(c, remote_path, &err);
    if (strcmp(root, tr_repo_root(repo)) == 0) {
        free(root);
        return cli_fail(c, remote_path, "that is this repository; name another replica of it");
    }
    rc = tr_repo_open(root, TR_REPO_RDONLY, &remote, &err);
    free(root);
    if (rc != TR_OK) return cli_fail_err(c, remote_path, &err);
    tr_store_t *ls = tr_repo_store(repo), *rs = tr_repo_store(remote);
    if (memcmp(tr_repo_id(repo), tr_repo_id(remote), TR_REPO_ID_LEN) != 0) {
        char a[TR_REPO_ID_HEXLEN + 1], b[TR_REPO_ID_HEXLEN + 1];
        tr_repo_id_hex(remote, a);
        tr_repo_id_hex(repo, b);
        tr_repo_destroy(&remote);
        return cli_fail(c, remote_path,
                        "repository %s is not a replica of this one (%s): only replicas of one "
                        "repository reconcile",
                        a, b);
    }
    names_t br = {0};
    if (only) {
        rc = add_name(&br, only, NULL);
    } else {
        rc = tr_store_branches(ls, add_name, &br, &err);
        if (!rc) rc = tr_store_branches(rs, add_name, &br, &err);
    }
    if (rc) {
        rc = err.msg[0] ? cli_fail_err(c, NULL, &err) : cli_fail(c, NULL, "out of memory");
        goto done;
    }
    qsort(br.names, br.n, sizeof *br.names, name_cmp);
    json_t *out = NULL, *arr = NULL;
    if (json) {
        char hex[TR_REPO_ID_HEXLEN + 1];
        tr_repo_id_hex(repo, hex);
        out = json_object();
        arr = json_array();
        if (!out || !arr) {
            json_decref(out);
            json_decref(arr);
            rc = cli_fail(c, NULL, "out of memory");
            goto done;
        }
        json_object_set_new(out, "remote", json_string(remote_path));
        json_object_set_new(out, "repo", json_string(hex));
        json_object_set_new(out, "dry_run", json_boolean(dry));
        json_object_set_new(out, "branches", arr);
    }
    bool bad = false, wrote = false;
    for (size_t i = 0; i < br.n; i++) {
        tr_store_recon_t *r = NULL;
        refuse_ctx_t rx = {c, br.names[i], json};
        tr_err_clear(&err);
        if (tr_store_reconcile(ls, rs, br.names[i], dry, on_refuse, &rx, &r, &err) != TR_OK) {
            cli_fail(c, NULL, "branch '%s': %s", br.names[i], err.msg);
            bad = true;
            continue;
        }
        if (r->status == TR_RECON_DIVERGED || r->refused) bad = true;
        if (r->integrated) {
            wrote = true;
            cli_wrote(c, tr_repo_root(repo), br.names[i]); /* tell a running agent */
        }
        if (json)
            json_array_append_new(arr, branch_json(r));
        else
            print_branch(c, r, dry);
        tr_store_recon_destroy(&r);
    }
    (void)wrote;
    if (json)
        rc = cli_json_out(c, out, true);
    else
        rc = cli_flush(c, CLI_OK);
    if (rc == CLI_OK && bad) rc = CLI_FAIL;
done:
    for (size_t i = 0; i < br.n; i++)
        free(br.names[i]);
    free(br.names);
    tr_repo_destroy(&remote);
    return rc;
}

const cli_cmd_t cli_cmd_sync_reconcile = {"reconcile", "merge another replica of this repository",
                                          reconcile_help, reconcile_run, NULL};
