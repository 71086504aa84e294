/* cmd_sync.c — the `trellis sync` group: `sync status` (the local store,
 * plus the agent's view when it runs) and `sync now`. */
#include "cli.h"
#include "cli_crdt.h"

#include <stdlib.h>
#include <string.h>

#define NOW_DEFAULT_TIMEOUT_MS 10000
#define NOW_MAX_TIMEOUT_MS 600000

static const char sync_help[] =
    "Usage: trellis sync status [--json]\n"
    "       trellis sync now [--timeout MS] [--json]\n"
    "       trellis sync reconcile --remote PATH [--branch B] [--dry-run] [--json]\n"
    "\n"
    "Sync with peers: the agent (trellisd) does it in the background; these\n"
    "commands show where it stands and ask for a round now. reconcile merges\n"
    "another local replica of the same repository, with no network at all.\n"
    "\n"
    "Commands:\n"
    "  status     the repository's op counts, heads and branches, and the\n"
    "             agent's listen endpoint and per-peer progress\n"
    "  now        an anti-entropy round with every connected peer, now\n"
    "  reconcile  merge the CRDT branches of another local replica\n"
    "\n"
    "Exit status: 0 ok; 1 failure; 2 usage error; 3 agent unreachable.\n";

static const char status_help[] =
    "Usage: trellis sync status [--json]\n"
    "\n"
    "Shows the repository id, the total op count, the head of 'main' and, per\n"
    "branch, its op count, heads and highest lamport. Reads only what the\n"
    "store keeps ready (no scan), so it is instant on any size of log.\n"
    "\n"
    "When the agent runs, it adds the endpoint the agent listens on, whether\n"
    "it serves this repository, and per trusted peer: connected or not, and\n"
    "per branch of this repository the op counts on both sides and the ops\n"
    "pending each way. Without an agent it shows the local part and says\n"
    "\"agent: not running\" (status works offline). Outside a repository it\n"
    "shows the agent's part alone: its repositories and all its peers.\n"
    "\n"
    "Options:\n"
    "  --json      {\"repo\": ID, \"ops\": N, \"head\": HASH or null,\n"
    "              \"branches\": [{\"name\", \"ops\", \"heads\": [...], \"lamport\"}]}\n"
    "              and, when the agent answers, \"listen\": ENDPOINT,\n"
    "              \"served\": BOOL, \"peers\": [{\"id\", \"fingerprint\", \"name\",\n"
    "              \"connected\", \"offers\", \"pending_in\", \"pending_out\",\n"
    "              \"branches\": [{\"name\", \"ours\", \"theirs\", \"pending_in\",\n"
    "              \"pending_out\"}]}]. Outside a repository: {\"listen\",\n"
    "              \"repos\": [as 'repo list'], \"peers\": [the same, each branch\n"
    "              with its \"repo\"]}\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok (also when the agent is not running); 1 failure (no\n"
    "repository and no agent); 2 usage error.\n";

static const char now_help[] =
    "Usage: trellis sync now [--timeout MS] [--json]\n"
    "\n"
    "Asks the agent for an anti-entropy round with every connected peer now\n"
    "(instead of at its next periodic round) and waits until every session\n"
    "went quiet, or until MS milliseconds passed.\n"
    "\n"
    "Options:\n"
    "  --timeout MS  how long to wait, 100 to 600000 (default 10000)\n"
    "  --json        print {\"synced\": BOOL, \"peers\": N}\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit status: 0 synced (or no peer connected); 1 still syncing when the\n"
    "timeout ran out, or refused; 2 usage error; 3 the agent is not running\n"
    "or not responding.\n";

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

/* ---- the agent's part --------------------------------------------------- */

/* The branches of peer object `p` (as the agent reports them) that belong to
 * repository `repo` (NULL: all, each keeping its "repo"), in our shape. The
 * agent lists them flat ("branches": [{"repo", "name", …}]); the shape of
 * docs/control.md ("repos": [{"repo", "branches": […]}]) is read as well. */
static json_t *status_peer_branches(json_t *p, const char *repo, int64_t *in, int64_t *out)
{
    json_t *res = json_array(), *b, *r;
    size_t i, k;
    json_array_foreach(json_object_get(p, "branches"), i, b)
    {
        const char *rid = json_string_value(json_object_get(b, "repo"));
        if (repo && (!rid || strcmp(rid, repo) != 0)) continue;
        json_t *o = json_deep_copy(b);
        if (repo) json_object_del(o, "repo");
        json_array_append_new(res, o);
    }
    json_array_foreach(json_object_get(p, "repos"), i, r)
    {
        const char *rid = json_string_value(json_object_get(r, "repo"));
        if (!json_is_object(r) || !rid || (repo && strcmp(rid, repo) != 0)) continue;
        json_array_foreach(json_object_get(r, "branches"), k, b)
        {
            json_t *o = json_deep_copy(b);
            if (!repo) json_object_set_new(o, "repo", json_string(rid));
            json_array_append_new(res, o);
        }
    }
    json_array_foreach(res, i, b)
    {
        *in += json_integer_value(json_object_get(b, "pending_in"));
        *out += json_integer_value(json_object_get(b, "pending_out"));
    }
    return res;
}

/* Whether peer `p` offers repository `repo` (its "repos" as ids or objects). */
static bool status_peer_offers(json_t *p, const char *repo)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(p, "repos"), i, r)
    {
        const char *rid = json_is_object(r) ? json_string_value(json_object_get(r, "repo"))
                                            : json_string_value(r);
        if (rid && strcmp(rid, repo) == 0) return true;
    }
    return false;
}

/* Our per-peer shape from the agent's peer objects (see status_help). */
static json_t *status_peers(json_t *agent, const char *repo)
{
    json_t *res = json_array(), *p;
    size_t i;
    json_array_foreach(json_object_get(agent, "peers"), i, p)
    {
        int64_t in = 0, out = 0;
        json_t *branches = status_peer_branches(p, repo, &in, &out);
        if (!repo) {
            in = json_integer_value(json_object_get(p, "pending_in"));
            out = json_integer_value(json_object_get(p, "pending_out"));
        }
        json_t *o = json_pack("{s:O?,s:O?,s:O?,s:b}", "id", json_object_get(p, "id"),
                              "fingerprint", json_object_get(p, "fingerprint"), "name",
                              json_object_get(p, "name"), "connected",
                              json_is_true(json_object_get(p, "connected")));
        if (!o) {
            json_decref(branches);
            continue;
        }
        if (repo) json_object_set_new(o, "offers", json_boolean(status_peer_offers(p, repo)));
        json_object_set_new(o, "pending_in", json_integer(in));
        json_object_set_new(o, "pending_out", json_integer(out));
        json_object_set_new(o, "branches", branches);
        json_array_append_new(res, o);
    }
    return res;
}

static void status_print_peers(cli_t *c, json_t *peers)
{
    size_t i, k;
    json_t *p, *b;
    if (json_array_size(peers) == 0) {
        printf("peers     none trusted (see 'trellis peer add')\n");
        return;
    }
    printf("peers\n");
    json_array_foreach(peers, i, p)
    {
        bool conn = json_is_true(json_object_get(p, "connected"));
        const char *name = json_string_value(json_object_get(p, "name"));
        printf("  %s%-19s%s %-16s %s%-13s%s in %-8lld out %lld\n", cli_c(c, CLI_YELLOW),
               json_string_value(json_object_get(p, "fingerprint")), cli_c(c, CLI_RESET),
               name && name[0] ? name : "-", cli_c(c, conn ? CLI_GREEN : ""),
               conn ? "connected" : "not connected", cli_c(c, conn ? CLI_RESET : ""),
               (long long)json_integer_value(json_object_get(p, "pending_in")),
               (long long)json_integer_value(json_object_get(p, "pending_out")));
        json_array_foreach(json_object_get(p, "branches"), k, b)
        {
            const char *rid = json_string_value(json_object_get(b, "repo"));
            printf("    %s%s%-20s ours %-10lld theirs %-10lld in %-8lld out %lld\n",
                   rid ? rid : "", rid ? " " : "",
                   json_string_value(json_object_get(b, "name")),
                   (long long)json_integer_value(json_object_get(b, "ours")),
                   (long long)json_integer_value(json_object_get(b, "theirs")),
                   (long long)json_integer_value(json_object_get(b, "pending_in")),
                   (long long)json_integer_value(json_object_get(b, "pending_out")));
        }
    }
}

/* Asks the agent for its sync.status. CLI_OK with *agent, or the reason it
 * did not answer in `why` (status never fails for that). */
static int status_agent(cli_t *c, const char *root, json_t **agent, char *why, size_t n)
{
    json_t *args = root ? json_pack("{s:s}", "path", root) : NULL;
    int rc = cli_agent_try(c, "sync.status", args, CLI_AGENT_TIMEOUT_MS, agent, why, n);
    if (rc == CLI_OK && !json_is_object(*agent)) {
        json_decref(*agent);
        *agent = NULL;
        snprintf(why, n, "the agent sent a status that is not an object");
        rc = CLI_FAIL;
    }
    return rc;
}

/* Outside a repository, with the agent running: the agent's part alone. */
static int status_agent_only(cli_t *c, json_t *agent, bool json)
{
    json_t *peers = status_peers(agent, NULL), *repos = json_object_get(agent, "repos"), *r;
    const char *listen = json_string_value(json_object_get(agent, "listen"));
    if (json) {
        json_t *o = json_pack("{s:s?,s:O,s:o}", "listen", listen, "repos",
                              repos ? repos : json_array(), "peers", peers);
        json_decref(agent);
        return cli_json_out(c, o, true);
    }
    printf("agent     running, listening on %s\n", listen ? listen : "?");
    printf("repos\n");
    size_t i;
    json_array_foreach(repos, i, r)
    printf("  %s %10lld ops  %s%s\n", json_string_value(json_object_get(r, "repo")),
           (long long)json_integer_value(json_object_get(r, "ops")),
           json_string_value(json_object_get(r, "path")),
           json_is_true(json_object_get(r, "default")) ? " (default)" : "");
    status_print_peers(c, peers);
    json_decref(peers);
    json_decref(agent);
    return cli_flush(c, CLI_OK);
}

/* Whether the agent's repository list holds `root`. */
static bool status_served(json_t *agent, const char *root)
{
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(agent, "repos"), i, r)
    {
        const char *p = json_string_value(json_object_get(r, "path"));
        if (p && strcmp(p, root) == 0) return true;
    }
    return false;
}

static int status_run(cli_t *c, int argc, char **argv)
{
    bool json = false;
    int rc = cli_std_opts(c, argc, argv, &json, NULL, 0);
    if (rc >= 0) return rc;
    if (optind < argc) return cli_usage(c, "unexpected argument '%s'", argv[optind]);

    tr_err_t err = {0};
    char why[1024];
    json_t *agent = NULL;
    char *found = NULL;
    if (tr_repo_find(".", &found, &err) == TR_ENOTREPO) {
        /* No repository here: the agent's view, if there is an agent. */
        if (status_agent(c, NULL, &agent, why, sizeof why) == CLI_OK)
            return status_agent_only(c, agent, json);
    }
    free(found);
    tr_repo_t *repo;
    if ((rc = cli_repo(c, TR_REPO_RDONLY, &repo))) return rc;
    tr_store_t *s = tr_repo_store(repo);

    uint64_t total = 0;
    tr_branch_info_t main_info;
    if (tr_store_count(s, &total, &err) != TR_OK) return cli_fail_err(c, NULL, &err);
    int mr = tr_store_branch(s, "main", &main_info, &err);
    if (mr != TR_OK && mr != TR_ENOTFOUND) return cli_fail_err(c, NULL, &err);
    char id[TR_REPO_ID_HEXLEN + 1], head[2 * TR_HASH_LEN + 1];
    tr_repo_id_hex(repo, id);
    bool has_head = mr == TR_OK && main_info.nheads > 0;
    if (has_head) tr_hex(head, main_info.heads[0], TR_HASH_LEN);

    int arc = agent ? CLI_OK : status_agent(c, tr_repo_root(repo), &agent, why, sizeof why);
    json_t *peers = arc == CLI_OK ? status_peers(agent, id) : NULL;
    const char *listen = arc == CLI_OK ? json_string_value(json_object_get(agent, "listen")) : NULL;
    bool served = arc == CLI_OK && status_served(agent, tr_repo_root(repo));

    status_ctx_t x = {c, json ? json_array() : NULL};
    if (json) {
        if (!x.branches || tr_store_branches(s, status_branch, &x, &err) != TR_OK) {
            json_decref(x.branches);
            json_decref(peers);
            json_decref(agent);
            return x.branches ? cli_fail_err(c, NULL, &err) : cli_fail(c, NULL, "out of memory");
        }
        json_t *out = json_pack("{s:s, s:I, s:o, s:o}", "repo", id, "ops", (json_int_t)total,
                                "head", has_head ? json_string(head) : json_null(), "branches",
                                x.branches);
        if (out && peers) {
            json_object_set_new(out, "listen", listen ? json_string(listen) : json_null());
            json_object_set_new(out, "served", json_boolean(served));
            json_object_set_new(out, "peers", peers);
            peers = NULL;
        }
        json_decref(peers);
        json_decref(agent);
        return cli_json_out(c, out, true);
    }
    printf("repo      %s\n", id);
    printf("root      %s\n", tr_repo_root(repo));
    printf("ops       %llu\n", (unsigned long long)total);
    printf("head      %s%s%s%s\n", cli_c(c, CLI_YELLOW), has_head ? head : "-", cli_c(c, CLI_RESET),
           has_head ? " (main)" : "");
    if (total) printf("branches\n");
    rc = tr_store_branches(s, status_branch, &x, &err) != TR_OK ? cli_fail_err(c, NULL, &err)
                                                                 : CLI_OK;
    if (rc == CLI_OK && arc == CLI_OK) {
        printf("agent     listening on %s; %s\n", listen ? listen : "?",
               served ? "serves this repository"
                      : "does not serve this repository (add it with 'trellis repo add .')");
        status_print_peers(c, peers);
    } else if (rc == CLI_OK) {
        printf("agent: %s\n", arc == CLI_UNREACH && strstr(why, "not running") ? "not running"
                              : why);
    }
    json_decref(peers);
    json_decref(agent);
    return cli_flush(c, rc);
}

/* ---- sync now ------------------------------------------------------------ */

static int now_run(cli_t *c, int argc, char **argv)
{
    uint64_t timeout = NOW_DEFAULT_TIMEOUT_MS;
    bool json = false;
    int rc = cli_std_opts(c, argc, argv, &json, &timeout, NOW_MAX_TIMEOUT_MS);
    if (rc >= 0) return rc;
    if (optind < argc) return cli_usage(c, "unexpected argument '%s'", argv[optind]);
    json_t *res;
    if ((rc = cli_agent_call(c, "sync.now", json_pack("{s:I}", "timeout_ms", (json_int_t)timeout),
                             (int)timeout + CLI_AGENT_MARGIN_MS, &res)))
        return rc;
    bool synced = json_is_true(json_object_get(res, "synced"));
    long long peers = (long long)json_integer_value(json_object_get(res, "peers"));
    if (json) {
        rc = cli_json_out(c, res, true);
    } else {
        if (peers == 0)
            printf("no peer is connected: nothing to sync\n");
        else if (synced)
            printf("synced with %lld peer%s\n", peers, peers == 1 ? "" : "s");
        json_decref(res);
        rc = cli_flush(c, CLI_OK);
    }
    if (!synced && peers > 0) {
        cli_fail(c, NULL, "still syncing with %lld peer%s after %llu ms (the agent goes on)",
                 peers, peers == 1 ? "" : "s", (unsigned long long)timeout);
        return CLI_FAIL;
    }
    return rc;
}

static const cli_cmd_t sync_status = {"status", "show the local sync state", status_help,
                                      status_run, NULL};
static const cli_cmd_t sync_now = {"now", "sync with every connected peer now", now_help, now_run,
                                   NULL};
static const cli_cmd_t *const sync_sub[] = {&sync_status, &sync_now,
                                            &cli_cmd_sync_reconcile /* cmd_reconcile.c */, NULL};

const cli_cmd_t cli_cmd_sync = {"sync", "sync with peers", sync_help, NULL, sync_sub};
