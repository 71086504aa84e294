/* cmd_crdt.c — the CRDT commands on the local repository: set, append,
 * counter add, triple add/rm/list, resolve (writes), get and conflicts
 * (reads) and rebuild. See cli_crdt.h and docs/crdt.md. */
#include "cli_crdt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../core/tr_crdt.h"
#include "../../core/tr_json.h"

#define EXIT_HELP "Exit status: 0 ok; 1 refused or failed; 2 usage error.\n"

static const char set_help[] =
    "Usage: trellis set ENTITY FIELD JSON [--branch BRANCH] [--json]\n"
    "\n"
    "Sets FIELD of ENTITY to the JSON value (null clears it) with a field.set\n"
    "op. The write overwrites every value the field holds when it lands (its\n"
    "\"pred\", filled in inside the write transaction), so it also closes an\n"
    "open conflict. Nothing is written, and the reason is printed, when the\n"
    "field's strategy (config.json \"fieldStrategies\") does not take field.set\n"
    "(append_wins: use 'trellis append'; union_merge), when the field is\n"
    "immutable and already holds another value, for the computed field\n"
    "\"fingerprint\", or when JSON is not a JSON value (quote strings:\n"
    "'\"text\"').\n"
    "\n"
    "Any branch takes the write, linear ones too (main is linear by default):\n"
    "'linear' only restricts how ops from elsewhere merge. Prints the op's\n"
    "hash; a running trellisd is told at once.\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --json           print {\"hash\", \"branch\", \"kind\", \"target\"}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 written; 1 refused or failed (nothing written); 2 usage\n"
    "error.\n";

static const char append_help[] =
    "Usage: trellis append ENTITY FIELD JSON [--branch BRANCH] [--json]\n"
    "\n"
    "Appends the JSON value to FIELD of ENTITY with a field.append op. The\n"
    "field must be append_wins in config.json's \"fieldStrategies\": every\n"
    "append is kept, ordered by stamp, whoever wrote it. Refused otherwise,\n"
    "with nothing written.\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --json           print {\"hash\", \"branch\", \"kind\", \"target\"}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 written; 1 refused or failed (nothing written); 2 usage\n"
    "error.\n";

static const char counter_help[] =
    "Usage: trellis counter add ENTITY FIELD N [--branch BRANCH] [--json]\n"
    "\n"
    "Counters: FIELD of ENTITY is the sum of every author's increments.\n"
    "\n"
    "Commands:\n"
    "  add    add N (a whole number, negative to subtract) with a counter.add op\n"
    "\n" EXIT_HELP;

static const char counter_add_help[] =
    "Usage: trellis counter add ENTITY FIELD N [--branch BRANCH] [--json]\n"
    "\n"
    "Adds N, a whole number in the range of int64 (negative to subtract; write\n"
    "'-- -5' or just -5), to the counter FIELD of ENTITY with a counter.add op.\n"
    "Concurrent additions by different writers all count. Refused, with nothing\n"
    "written, if your own increments of it would leave the int64 range.\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --json           print {\"hash\", \"branch\", \"kind\", \"target\"}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 written; 1 refused or failed (nothing written); 2 usage\n"
    "error.\n";

static const char triple_help[] =
    "Usage: trellis triple add S P O [--branch BRANCH] [--json]\n"
    "       trellis triple rm S P O [--branch BRANCH] [--json]\n"
    "       trellis triple list [--subject S] [--predicate P] [--object O]\n"
    "                           [--branch BRANCH] [--json]\n"
    "\n"
    "Triples (subject, predicate, object): an add and a concurrent remove of\n"
    "the same triple resolve to present (add wins ties).\n"
    "\n"
    "Commands:\n"
    "  add     add a triple (triple.add)\n"
    "  rm      remove a triple (triple.remove)\n"
    "  list    the present triples, through an index\n"
    "\n" EXIT_HELP;

static const char triple_add_help[] =
    "Usage: trellis triple add S P O [--branch BRANCH] [--json]\n"
    "\n"
    "Adds the triple (S, P, O) with a triple.add op and prints its hash. S and P\n"
    "are 1-1024 bytes without control characters, O any string up to 4096\n"
    "bytes (an @alias:id names an entity of a linked repository).\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --json           print {\"hash\", \"branch\", \"kind\", \"target\"}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 written; 1 refused or failed (nothing written); 2 usage\n"
    "error.\n";

static const char triple_rm_help[] =
    "Usage: trellis triple rm S P O [--branch BRANCH] [--json]\n"
    "\n"
    "Removes the triple (S, P, O) with a triple.remove op and prints its hash.\n"
    "An add that is concurrent with the removal (same lamport) still wins.\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --json           print {\"hash\", \"branch\", \"kind\", \"target\"}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 written; 1 refused or failed (nothing written); 2 usage\n"
    "error.\n";

static const char triple_list_help[] =
    "Usage: trellis triple list [--subject S] [--predicate P] [--object O]\n"
    "                           [--branch BRANCH] [--json]\n"
    "\n"
    "Lists the present triples matching the filters, one per line as\n"
    "S<TAB>P<TAB>O. Every filter is an index lookup: by subject (and\n"
    "predicate) in the state, by predicate in a predicate index, by object in\n"
    "an object index (\"who references O\").\n"
    "\n"
    "Options:\n"
    "  --subject S      only triples of subject S\n"
    "  --predicate P    only triples with predicate P\n"
    "  --object O       only triples with object O\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --json           an array of {\"s\", \"p\", \"o\"}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 ok (also when nothing matches); 1 failure; 2 usage error.\n";

static const char get_help[] =
    "Usage: trellis get ENTITY [--branch BRANCH] [--json]\n"
    "\n"
    "Shows ENTITY's materialized fields and counters (values as JSON), its\n"
    "fingerprint (BLAKE2b-256 of the canonical map of its fields, recomputed\n"
    "by every write), its deletion if an entity.delete hides older writes, and\n"
    "its open conflicts with each candidate value.\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --json           {\"entity\", \"branch\", \"exists\", \"fingerprint\",\n"
    "                   \"deleted_lamport\", \"fields\": {NAME: VALUE},\n"
    "                   \"counters\": {NAME: N}, \"strategies\": {NAME: STRATEGY},\n"
    "                   \"conflicts\": [{\"field\", \"candidates\": [{\"value\",\n"
    "                   \"op\", \"author\", \"lamport\"}]}]}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 shown; 1 the entity does not exist (no visible field) or\n"
    "failure; 2 usage error.\n";

static const char resolve_help[] =
    "Usage: trellis resolve ENTITY FIELD JSON [--branch BRANCH] [--json]\n"
    "\n"
    "Resolves an open conflict on a manual_resolution FIELD of ENTITY: writes\n"
    "the JSON value with a field.set that overwrites every candidate, which\n"
    "closes the conflict on every replica that receives it. Refused when the\n"
    "field has no open conflict (use 'trellis set').\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --json           print {\"hash\", \"branch\", \"kind\", \"target\"}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 written; 1 refused or failed (nothing written); 2 usage\n"
    "error.\n";

static const char conflicts_help[] =
    "Usage: trellis conflicts [--branch BRANCH] [--refused] [--json]\n"
    "\n"
    "Lists the open conflicts — manual_resolution fields that two or more\n"
    "concurrent writes left with several candidates — of every branch (or of\n"
    "BRANCH), from the store's conflict index: one line per field,\n"
    "BRANCH<TAB>ENTITY<TAB>FIELD<TAB>[candidate values]. Resolve one with\n"
    "'trellis resolve'.\n"
    "\n"
    "With --refused, lists instead the ops that are in the log but were not\n"
    "materialized (a body of the wrong shape, an immutable field written\n"
    "again, a kind its field does not take): BRANCH<TAB>POSITION<TAB>OP<TAB>\n"
    "reason. They stay in the log and are synced; they change nothing.\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  only this branch\n"
    "  --refused        list the ops that were not materialized\n"
    "  --json           an array of {\"branch\", \"entity\", \"field\",\n"
    "                   \"candidates\": [{\"value\", \"op\", \"author\", \"lamport\"}]};\n"
    "                   with --refused of {\"branch\", \"position\", \"op\",\n"
    "                   \"code\", \"reason\"}\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 ok (also when there are none); 1 failure; 2 usage error.\n";

static const char rebuild_help[] =
    "Usage: trellis rebuild [--json]\n"
    "\n"
    "Recomputes the materialized state — fields, counters, triples, files, the\n"
    "indexes, fingerprints and open conflicts — from the op log with the field\n"
    "strategies of config.json. Needed after \"fieldStrategies\" or\n"
    "\"restrictionOrder\" changed (writes are refused until then) and for a\n"
    "store made by an older trellis. The result is byte-identical to what\n"
    "writing the ops one by one gave. Runs in transactions of 100,000 ops; an\n"
    "interrupted rebuild is finished by the next. Writers may run meanwhile.\n"
    "\n"
    "Options:\n"
    "  --json      {\"ops\", \"states\", \"entities\", \"conflicts\", \"refused\",\n"
    "              \"transactions\", \"seconds\"}\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 rebuilt; 1 failure; 2 usage error.\n";

/* ---- shared ---------------------------------------------------------------- */

void cli_state_warn(cli_t *c, tr_store_t *s)
{
    tr_state_status_t st;
    tr_err_t err = {0};
    if (tr_store_state_status(s, &st, &err) != TR_OK || st == TR_STATE_READY) return;
    (void)c;
    fprintf(stderr, "trellis: warning: %s; run 'trellis rebuild'\n",
            st == TR_STATE_STALE ? "the materialized state was built with other field strategies "
                                   "than config.json's"
                                 : "the materialized state is not built");
}

/* The common options of the writers and readers: --branch, --json. */
typedef struct {
    const char *branch;
    bool json;
    const char *subject, *predicate, *object;
    bool refused;
} crdt_opts_t;

/* Parses options, leaving positionals in argv[optind..). `extra` allows
 * the listed extra long options. */
static int crdt_getopt(cli_t *c, int argc, char **argv, crdt_opts_t *o, const struct option *opts)
{
    int ch;
    o->branch = o->branch ? o->branch : "main";
    while ((ch = cli_getopt(c, argc, argv, "h", opts)) != -1) {
        switch (ch) {
        case 'B':
            o->branch = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 's':
            o->subject = optarg;
            break;
        case 'p':
            o->predicate = optarg;
            break;
        case 'o':
            o->object = optarg;
            break;
        case 'r':
            o->refused = true;
            break;
        case 'h':
            return cli_help(c) == CLI_OK ? -1 : CLI_FAIL;
        default:
            return CLI_USAGE;
        }
    }
    if (!o->branch[0]) return cli_usage(c, "--branch needs a name");
    return CLI_OK;
}

static const struct option write_opts[] = {
    {"branch", required_argument, NULL, 'B'}, CLI_OPT_JSON, CLI_OPT_HELP, CLI_OPT_END};

/* Checks the number of positionals. */
static int want_args(cli_t *c, int argc, char **argv, int n, const char *names)
{
    int have = argc - optind;
    if (have < n) return cli_usage(c, "needs %s", names);
    if (have > n) return cli_usage(c, "unexpected argument '%s'", argv[optind + n]);
    return CLI_OK;
}

static int parse_json_arg(cli_t *c, const char *text, tr_buf_t *out)
{
    tr_err_t err = {0};
    if (tr_json_parse(text, strlen(text), 0, out, &err) != TR_OK)
        return cli_fail(c, NULL, "JSON value: %s (quote strings: '\"%s\"')", err.msg, text);
    return CLI_OK;
}

static json_t *hex_json(const uint8_t *p, size_t n)
{
    char hex[2 * TR_HASH_LEN + 1];
    tr_hex(hex, p, n);
    return json_string(hex);
}

/* Writes one op with the materializer's checks (TR_WRITE_STRICT, and
 * TR_WRITE_PRED for field.set), tells the agent, prints the hash. */
static int crdt_write(cli_t *c, const crdt_opts_t *o, const char *kind, const char *target,
                      const uint8_t *body, size_t blen)
{
    tr_repo_t *repo;
    tr_identity_t *id;
    int rc;
    if ((rc = cli_repo(c, 0, &repo)) || (rc = cli_identity(c, true, &id))) return rc;
    tr_op_spec_t spec = {kind, strlen(kind), target, strlen(target), body, blen};
    unsigned flags = TR_WRITE_STRICT | (strcmp(kind, "field.set") == 0 ? TR_WRITE_PRED : 0);
    uint8_t hash[1][TR_HASH_LEN];
    tr_err_t err = {0};
    if (tr_store_write_ex(tr_repo_store(repo), o->branch, &spec, 1, id, cli_now_ms(), flags, hash,
                          &err) != TR_OK)
        return cli_fail_err(c, NULL, &err);
    cli_wrote(c, tr_repo_root(repo), o->branch); /* tell a running agent to push it */
    char hex[2 * TR_HASH_LEN + 1];
    tr_hex(hex, hash[0], TR_HASH_LEN);
    if (!o->json) {
        printf("%s\n", hex);
        return cli_flush(c, CLI_OK);
    }
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "hash", hex, "branch", o->branch, "kind", kind,
                          "target", target);
    return cli_json_out(c, j, false);
}

/* ---- set, append, resolve ----------------------------------------------------- */

static int field_write(cli_t *c, int argc, char **argv, const char *kind, bool resolve)
{
    crdt_opts_t o = {0};
    int rc = crdt_getopt(c, argc, argv, &o, write_opts);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if ((rc = want_args(c, argc, argv, 3, "ENTITY FIELD JSON"))) return rc;
    const char *entity = argv[optind], *field = argv[optind + 1];
    tr_buf_t val = {0}, body = {0};
    if ((rc = parse_json_arg(c, argv[optind + 2], &val))) return rc;
    tr_crdt_str_t f = {field, strlen(field)};
    int bad = strcmp(kind, "field.set") == 0
                  ? tr_crdt_body_set(f, val.data, val.len, NULL, 0, &body, NULL)
                  : tr_crdt_body_field(f, val.data, val.len, &body);
    if (bad) {
        rc = cli_fail(c, NULL, "out of memory");
        goto done;
    }
    if (resolve) {
        tr_repo_t *repo;
        if ((rc = cli_repo(c, 0, &repo))) goto done;
        tr_buf_t key = {0}, st = {0};
        tr_err_t err = {0};
        size_t n = 0;
        bool conflict = false;
        if (tr_crdt_key_field((tr_crdt_str_t){entity, strlen(entity)}, f, &key)) {
            rc = cli_fail(c, NULL, "out of memory");
        } else if (tr_store_state_get(tr_repo_store(repo), o.branch, key.data, key.len, &st,
                                      &err) == TR_OK) {
            conflict = st.len > 1 && st.data[1] == TR_CRDT_S_MANUAL &&
                       tr_crdt_entries(st.data, st.len, NULL, 0, &n, NULL) == TR_OK && n >= 2;
        } else if (err.code != TR_ENOTFOUND) {
            rc = cli_fail_err(c, NULL, &err);
        }
        tr_buf_free(&key);
        tr_buf_free(&st);
        if (!rc && !conflict)
            rc = cli_fail(c, NULL,
                          "field \"%s\" of \"%s\" has no open conflict on branch '%s' (use "
                          "'trellis set')",
                          field, entity, o.branch);
        if (rc) goto done;
    }
    rc = crdt_write(c, &o, kind, entity, body.data, body.len);
done:
    tr_buf_free(&val);
    tr_buf_free(&body);
    return rc;
}

static int set_run(cli_t *c, int argc, char **argv)
{
    return field_write(c, argc, argv, "field.set", false);
}

static int append_run(cli_t *c, int argc, char **argv)
{
    return field_write(c, argc, argv, "field.append", false);
}

static int resolve_run(cli_t *c, int argc, char **argv)
{
    return field_write(c, argc, argv, "field.set", true);
}

/* ---- counter add ------------------------------------------------------------------ */

/* "-5" would read as an option: negative numbers move behind a "--" (the
 * only number is N, the last positional, so the order is kept). Left alone
 * when the user wrote a "--". */
static char **move_negatives(int argc, char **argv, int *nargc)
{
    char **v = calloc((size_t)argc + 2, sizeof *v);
    if (!v) return NULL;
    int n = 0;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--") == 0) {
            memcpy(v, argv, (size_t)argc * sizeof *v);
            *nargc = argc;
            return v;
        }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!(i > 0 && a[0] == '-' && a[1] >= '0' && a[1] <= '9')) v[n++] = argv[i];
    }
    v[n++] = "--";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] >= '0' && a[1] <= '9') v[n++] = argv[i];
    }
    *nargc = n;
    return v;
}

static int counter_add_run(cli_t *c, int argc, char **argv)
{
    int nargc;
    char **nargv = move_negatives(argc, argv, &nargc);
    if (!nargv) return cli_fail(c, NULL, "out of memory");
    crdt_opts_t o = {0};
    int rc = crdt_getopt(c, nargc, nargv, &o, write_opts);
    if (rc) {
        free(nargv);
        return rc < 0 ? CLI_OK : rc;
    }
    if ((rc = want_args(c, nargc, nargv, 3, "ENTITY FIELD N"))) {
        free(nargv);
        return rc;
    }
    const char *entity = nargv[optind], *field = nargv[optind + 1], *ns = nargv[optind + 2];
    char *end;
    errno = 0;
    long long n = strtoll(ns, &end, 10);
    if (!*ns || *end || errno) {
        rc = cli_usage(c, "N wants a whole number in the range of int64, not '%s'", ns);
        free(nargv);
        return rc;
    }
    tr_buf_t body = {0};
    if (tr_crdt_body_counter((tr_crdt_str_t){field, strlen(field)}, (int64_t)n, &body))
        rc = cli_fail(c, NULL, "out of memory");
    else
        rc = crdt_write(c, &o, "counter.add", entity, body.data, body.len);
    tr_buf_free(&body);
    free(nargv);
    return rc;
}

/* ---- triple add / rm / list ----------------------------------------------------------- */

static int triple_write(cli_t *c, int argc, char **argv, const char *kind)
{
    crdt_opts_t o = {0};
    int rc = crdt_getopt(c, argc, argv, &o, write_opts);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if ((rc = want_args(c, argc, argv, 3, "S P O"))) return rc;
    const char *s = argv[optind], *p = argv[optind + 1], *ob = argv[optind + 2];
    tr_buf_t body = {0};
    if (tr_crdt_body_triple((tr_crdt_str_t){s, strlen(s)}, (tr_crdt_str_t){p, strlen(p)},
                            (tr_crdt_str_t){ob, strlen(ob)}, &body))
        rc = cli_fail(c, NULL, "out of memory");
    else
        rc = crdt_write(c, &o, kind, s, body.data, body.len);
    tr_buf_free(&body);
    return rc;
}

static int triple_add_run(cli_t *c, int argc, char **argv)
{
    return triple_write(c, argc, argv, "triple.add");
}

static int triple_rm_run(cli_t *c, int argc, char **argv)
{
    return triple_write(c, argc, argv, "triple.remove");
}

typedef struct {
    cli_t *c;
    json_t *arr;
    size_t n;
} tl_t;

static int tl_visit(void *arg, tr_crdt_str_t s, tr_crdt_str_t p, tr_crdt_str_t o)
{
    tl_t *t = arg;
    t->n++;
    if (t->arr) {
        json_t *j = json_object();
        if (!j || json_object_set_new(j, "s", json_stringn(s.p, s.n)) ||
            json_object_set_new(j, "p", json_stringn(p.p, p.n)) ||
            json_object_set_new(j, "o", json_stringn(o.p, o.n)) || json_array_append_new(t->arr, j))
            return TR_ENOMEM;
        return 0;
    }
    printf("%.*s\t%.*s\t%.*s\n", (int)s.n, s.p, (int)p.n, p.p, (int)o.n, o.p);
    return 0;
}

static tr_crdt_str_t opt_str(const char *s)
{
    return (tr_crdt_str_t){s, s ? strlen(s) : 0};
}

static int triple_list_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"branch", required_argument, NULL, 'B'},
                                         {"subject", required_argument, NULL, 's'},
                                         {"predicate", required_argument, NULL, 'p'},
                                         {"object", required_argument, NULL, 'o'},
                                         CLI_OPT_JSON,
                                         CLI_OPT_HELP,
                                         CLI_OPT_END};
    crdt_opts_t o = {0};
    int rc = crdt_getopt(c, argc, argv, &o, opts);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if ((rc = want_args(c, argc, argv, 0, ""))) return rc;
    tr_repo_t *repo;
    if ((rc = cli_repo(c, TR_REPO_RDONLY, &repo))) return rc;
    cli_state_warn(c, tr_repo_store(repo));
    tl_t t = {c, o.json ? json_array() : NULL, 0};
    if (o.json && !t.arr) return cli_fail(c, NULL, "out of memory");
    tr_err_t err = {0};
    int r = tr_store_triples(tr_repo_store(repo), o.branch, opt_str(o.subject),
                             opt_str(o.predicate), opt_str(o.object), tl_visit, &t, &err);
    if (r) {
        json_decref(t.arr);
        return r == TR_ENOMEM ? cli_fail(c, NULL, "out of memory") : cli_fail_err(c, NULL, &err);
    }
    return o.json ? cli_json_out(c, t.arr, true) : cli_flush(c, CLI_OK);
}

/* ---- get --------------------------------------------------------------------------- */

typedef struct {
    cli_t *c;
    const tr_strategies_t *st;
    uint64_t tomb;
    json_t *fields, *counters, *strategies, *conflicts;
    tr_buf_t val;
    tr_err_t *err;
} ge_t;

static json_t *mp_json(const uint8_t *p, size_t n)
{
    json_t *j = NULL;
    tr_err_t err = {0};
    if (tr_json_from_mp(p, n, &j, &err) != TR_OK) return json_null();
    return j;
}

/* The visible candidates of a conflicting state, as JSON. */
static json_t *candidates_json(const uint8_t *st, size_t sn, uint64_t tomb)
{
    size_t n = 0;
    if (tr_crdt_entries(st, sn, NULL, 0, &n, NULL) || n == 0) return json_array();
    tr_crdt_entry_t *e = calloc(n, sizeof *e);
    json_t *arr = json_array();
    if (!e || !arr || tr_crdt_entries(st, sn, e, n, &n, NULL)) {
        free(e);
        json_decref(arr);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (e[i].lamport < tomb) continue;
        char id[TR_PEER_ID_STRLEN + 1];
        tr_peer_id(id, e[i].author);
        json_t *o = json_object();
        if (!o) continue;
        json_object_set_new(o, "value", mp_json(e[i].value, e[i].value_len));
        json_object_set_new(o, "op", hex_json(e[i].hash, TR_HASH_LEN));
        json_object_set_new(o, "author", json_string(id));
        json_object_set_new(o, "lamport", json_integer((json_int_t)e[i].lamport));
        json_array_append_new(arr, o);
    }
    free(e);
    return arr;
}

static int ge_visit(void *arg, const uint8_t *k, size_t kn, const uint8_t *st, size_t sn)
{
    ge_t *g = arg;
    tr_crdt_key_t key;
    if (tr_crdt_key_parse(k, kn, &key, g->err)) return g->err->code;
    tr_crdt_info_t info;
    tr_buf_reset(&g->val);
    if (tr_crdt_value(g->st, st, sn, g->tomb, &g->val, &info, g->err)) return g->err->code;
    if (!info.present) return 0;
    char name[TR_CRDT_FIELD_MAX + 1];
    size_t nl = key.part[1].n > TR_CRDT_FIELD_MAX ? TR_CRDT_FIELD_MAX : key.part[1].n;
    memcpy(name, key.part[1].p, nl);
    name[nl] = '\0';
    bool counter = key.ns == TR_CRDT_NS_COUNTER;
    json_object_set_new(counter ? g->counters : g->fields, name, mp_json(g->val.data, g->val.len));
    if (!counter)
        json_object_set_new(g->strategies, name,
                            json_string(tr_strategy_name(
                                tr_strategies_lookup(g->st, key.part[1].p, key.part[1].n, NULL))));
    if (info.conflict) {
        json_t *cj = json_object();
        if (cj) {
            json_object_set_new(cj, "field", json_string(name));
            json_object_set_new(cj, "candidates", candidates_json(st, sn, g->tomb));
            json_array_append_new(g->conflicts, cj);
        }
    }
    return 0;
}

static void print_value_line(const char *name, json_t *v, const char *note)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    printf("  %-14s %s%s%s\n", name, s ? s : "?", note ? "  " : "", note ? note : "");
    free(s);
}

static int get_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"branch", required_argument, NULL, 'B'}, CLI_OPT_JSON, CLI_OPT_HELP, CLI_OPT_END};
    crdt_opts_t o = {0};
    int rc = crdt_getopt(c, argc, argv, &o, opts);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if ((rc = want_args(c, argc, argv, 1, "ENTITY"))) return rc;
    const char *entity = argv[optind];
    tr_crdt_str_t e = {entity, strlen(entity)};
    tr_repo_t *repo;
    if ((rc = cli_repo(c, TR_REPO_RDONLY, &repo))) return rc;
    tr_store_t *s = tr_repo_store(repo);
    cli_state_warn(c, s);
    tr_err_t err = {0};
    ge_t g = {c,
              tr_store_strategies(s),
              0,
              json_object(),
              json_object(),
              json_object(),
              json_array(),
              {0},
              &err};
    tr_buf_t key = {0}, st = {0};
    json_t *out = NULL;
    if (!g.fields || !g.counters || !g.strategies || !g.conflicts) {
        rc = cli_fail(c, NULL, "out of memory");
        goto done;
    }
    /* the deletion stamp hides older writes */
    if (tr_crdt_key_entity(e, &key)) {
        rc = cli_fail(c, NULL, "out of memory");
        goto done;
    }
    int r = tr_store_state_get(s, o.branch, key.data, key.len, &st, &err);
    if (r == TR_OK) {
        tr_crdt_entry_t ent;
        size_t n;
        if (tr_crdt_entries(st.data, st.len, &ent, 1, &n, &err) == TR_OK && n == 1)
            g.tomb = ent.lamport;
    } else if (r != TR_ENOTFOUND) {
        rc = cli_fail_err(c, NULL, &err);
        goto done;
    }
    static const tr_crdt_ns_t ns[2] = {TR_CRDT_NS_FIELD, TR_CRDT_NS_COUNTER};
    for (int i = 0; i < 2; i++) {
        tr_buf_reset(&key);
        tr_err_clear(&err);
        if (tr_crdt_key_prefix(ns[i], &e, 1, &key) ||
            tr_store_state_scan(s, o.branch, key.data, key.len, ge_visit, &g, &err)) {
            rc = err.msg[0] ? cli_fail_err(c, NULL, &err) : cli_fail(c, NULL, "out of memory");
            goto done;
        }
    }
    uint8_t fp[TR_HASH_LEN];
    tr_err_clear(&err);
    r = tr_store_fingerprint(s, o.branch, entity, e.n, fp, &err);
    if (r && r != TR_ENOTFOUND) {
        rc = cli_fail_err(c, NULL, &err);
        goto done;
    }
    bool exists = r == TR_OK;
    if (o.json) {
        out = json_object();
        json_object_set_new(out, "entity", json_string(entity));
        json_object_set_new(out, "branch", json_string(o.branch));
        json_object_set_new(out, "exists", json_boolean(exists));
        json_object_set_new(out, "fingerprint", exists ? hex_json(fp, TR_HASH_LEN) : json_null());
        json_object_set_new(out, "deleted_lamport",
                            g.tomb ? json_integer((json_int_t)g.tomb) : json_null());
        json_object_set_new(out, "fields", g.fields);
        json_object_set_new(out, "counters", g.counters);
        json_object_set_new(out, "strategies", g.strategies);
        json_object_set_new(out, "conflicts", g.conflicts);
        g.fields = g.counters = g.strategies = g.conflicts = NULL;
        rc = cli_json_out(c, out, true);
        if (rc == CLI_OK && !exists) rc = CLI_FAIL;
        goto done;
    }
    if (!exists) {
        rc = g.tomb ? cli_fail(c, NULL,
                               "entity \"%s\" was deleted (lamport %llu) and has no field written "
                               "since on branch '%s'",
                               entity, (unsigned long long)g.tomb, o.branch)
                    : cli_fail(c, NULL,
                               "entity \"%s\" does not exist on branch '%s' (no visible field)",
                               entity, o.branch);
        goto done;
    }
    char hex[2 * TR_HASH_LEN + 1];
    tr_hex(hex, fp, TR_HASH_LEN);
    printf("%s%s%s on %s\n", cli_c(c, CLI_BOLD), entity, cli_c(c, CLI_RESET), o.branch);
    printf("  %-14s %s\n", "fingerprint", hex);
    if (g.tomb)
        printf("  %-14s lamport %llu (older writes are hidden)\n", "deleted",
               (unsigned long long)g.tomb);
    const char *name;
    json_t *v;
    json_object_foreach(g.fields, name, v)
    {
        const char *strat = json_string_value(json_object_get(g.strategies, name));
        bool conflict = false;
        size_t i;
        json_t *cj;
        json_array_foreach(g.conflicts, i, cj)
        {
            if (strcmp(json_string_value(json_object_get(cj, "field")), name) == 0) conflict = true;
        }
        char note[96];
        snprintf(note, sizeof note, "(%s%s)", strat ? strat : "?",
                 conflict ? ": CONFLICT, see 'trellis conflicts'" : "");
        print_value_line(name, v,
                         strat && strcmp(strat, "last_write_wins") != 0 ? note
                         : conflict                                     ? note
                                                                        : NULL);
    }
    json_object_foreach(g.counters, name, v)
    {
        if (json_object_get(g.fields, name)) continue; /* a field shadows a counter */
        print_value_line(name, v, "(counter)");
    }
    size_t i;
    json_t *cj;
    json_array_foreach(g.conflicts, i, cj)
    {
        printf("%sconflict%s on %s:\n", cli_c(c, CLI_YELLOW), cli_c(c, CLI_RESET),
               json_string_value(json_object_get(cj, "field")));
        size_t k;
        json_t *cand;
        json_array_foreach(json_object_get(cj, "candidates"), k, cand)
        {
            char *val = json_dumps(json_object_get(cand, "value"), JSON_COMPACT | JSON_ENCODE_ANY);
            const char *op = json_string_value(json_object_get(cand, "op"));
            printf("  %s  op %.12s, lamport %lld\n", val ? val : "?", op ? op : "?",
                   (long long)json_integer_value(json_object_get(cand, "lamport")));
            free(val);
        }
    }
    rc = cli_flush(c, CLI_OK);
done:
    json_decref(g.fields);
    json_decref(g.counters);
    json_decref(g.strategies);
    json_decref(g.conflicts);
    tr_buf_free(&g.val);
    tr_buf_free(&key);
    tr_buf_free(&st);
    return rc;
}

/* ---- conflicts ------------------------------------------------------------------------ */

typedef struct {
    cli_t *c;
    json_t *arr;
    size_t n;
} cf_t;

static int cf_visit(void *arg, const char *branch, const uint8_t *k, size_t kn, const uint8_t *st,
                    size_t sn)
{
    cf_t *x = arg;
    tr_crdt_key_t key;
    if (tr_crdt_key_parse(k, kn, &key, NULL)) return TR_ECORRUPT;
    json_t *cands = candidates_json(st, sn, 0);
    if (!cands) return TR_ENOMEM;
    x->n++;
    if (x->arr) {
        json_t *o = json_object();
        if (!o) {
            json_decref(cands);
            return TR_ENOMEM;
        }
        json_object_set_new(o, "branch", json_string(branch));
        json_object_set_new(o, "entity", json_stringn(key.part[0].p, key.part[0].n));
        json_object_set_new(o, "field", json_stringn(key.part[1].p, key.part[1].n));
        json_object_set_new(o, "candidates", cands);
        return json_array_append_new(x->arr, o) ? TR_ENOMEM : 0;
    }
    json_t *vals = json_array();
    size_t i;
    json_t *cj;
    json_array_foreach(cands, i, cj) json_array_append(vals, json_object_get(cj, "value"));
    char *vs = json_dumps(vals, JSON_COMPACT);
    printf("%s\t%.*s\t%.*s\t%s\n", branch, (int)key.part[0].n, key.part[0].p, (int)key.part[1].n,
           key.part[1].p, vs ? vs : "?");
    free(vs);
    json_decref(vals);
    json_decref(cands);
    return 0;
}

static int rf_visit(void *arg, const char *branch, uint64_t pos, const uint8_t hash[TR_HASH_LEN],
                    int code, const char *reason)
{
    cf_t *x = arg;
    char hex[2 * TR_HASH_LEN + 1];
    tr_hex(hex, hash, TR_HASH_LEN);
    x->n++;
    if (x->arr) {
        json_t *o = json_object();
        if (!o) return TR_ENOMEM;
        json_object_set_new(o, "branch", json_string(branch));
        json_object_set_new(o, "position", json_integer((json_int_t)pos));
        json_object_set_new(o, "op", json_string(hex));
        json_object_set_new(o, "code", json_string(tr_errname(code)));
        json_object_set_new(o, "reason", json_string(reason));
        return json_array_append_new(x->arr, o) ? TR_ENOMEM : 0;
    }
    printf("%s\t%llu\t%.12s\t%s\n", branch, (unsigned long long)pos, hex, reason);
    return 0;
}

static int conflicts_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"branch", required_argument, NULL, 'B'},
                                         {"refused", no_argument, NULL, 'r'},
                                         CLI_OPT_JSON,
                                         CLI_OPT_HELP,
                                         CLI_OPT_END};
    crdt_opts_t o = {.branch = ""};
    int ch;
    while ((ch = cli_getopt(c, argc, argv, "h", opts)) != -1) {
        if (ch == 'B') {
            if (!optarg[0]) return cli_usage(c, "--branch needs a name");
            o.branch = optarg;
        } else if (ch == 'r') {
            o.refused = true;
        } else if (ch == 'j') {
            o.json = true;
        } else if (ch == 'h') {
            return cli_help(c);
        } else {
            return CLI_USAGE;
        }
    }
    int rc = want_args(c, argc, argv, 0, "");
    if (rc) return rc;
    tr_repo_t *repo;
    if ((rc = cli_repo(c, TR_REPO_RDONLY, &repo))) return rc;
    tr_store_t *s = tr_repo_store(repo);
    cli_state_warn(c, s);
    cf_t x = {c, o.json ? json_array() : NULL, 0};
    if (o.json && !x.arr) return cli_fail(c, NULL, "out of memory");
    tr_err_t err = {0};
    const char *branch = o.branch[0] ? o.branch : NULL;
    int r = o.refused ? tr_store_refused(s, branch, rf_visit, &x, &err)
                      : tr_store_conflicts(s, branch, cf_visit, &x, &err);
    if (r) {
        json_decref(x.arr);
        return err.msg[0] ? cli_fail_err(c, NULL, &err) : cli_fail(c, NULL, "%s", tr_strerror(r));
    }
    if (o.json) return cli_json_out(c, x.arr, true);
    uint64_t nref = 0;
    if (!o.refused && tr_store_refused_count(s, &nref, &err) == TR_OK && nref)
        fprintf(stderr,
                "%llu op%s in the log %s not materialized: see 'trellis conflicts --refused'\n",
                (unsigned long long)nref, nref == 1 ? "" : "s", nref == 1 ? "was" : "were");
    return cli_flush(c, CLI_OK);
}

/* ---- rebuild -------------------------------------------------------------------------- */

static double mono_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int rebuild_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {CLI_OPT_JSON, CLI_OPT_HELP, CLI_OPT_END};
    crdt_opts_t o = {0};
    int rc = crdt_getopt(c, argc, argv, &o, opts);
    if (rc) return rc < 0 ? CLI_OK : rc;
    if ((rc = want_args(c, argc, argv, 0, ""))) return rc;
    tr_repo_t *repo;
    if ((rc = cli_repo(c, 0, &repo))) return rc;
    tr_rebuild_stats_t st;
    tr_err_t err = {0};
    double t0 = mono_s();
    if (tr_store_rebuild(tr_repo_store(repo), &st, &err) != TR_OK)
        return cli_fail_err(c, NULL, &err);
    double secs = mono_s() - t0;
    if (o.json) {
        json_t *j =
            json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "ops", (json_int_t)st.ops, "states",
                      (json_int_t)st.states, "entities", (json_int_t)st.entities, "conflicts",
                      (json_int_t)st.conflicts, "refused", (json_int_t)st.refused, "transactions",
                      (json_int_t)st.txns, "seconds", secs);
        return cli_json_out(c, j, false);
    }
    printf("rebuilt from %llu ops in %.2f s: %llu states, %llu entities, %llu open conflicts, "
           "%llu ops not materialized\n",
           (unsigned long long)st.ops, secs, (unsigned long long)st.states,
           (unsigned long long)st.entities, (unsigned long long)st.conflicts,
           (unsigned long long)st.refused);
    return cli_flush(c, CLI_OK);
}

/* ---- tables ----------------------------------------------------------------------------- */

const cli_cmd_t cli_cmd_set = {"set", "set an entity's field (field.set)", set_help, set_run, NULL};
const cli_cmd_t cli_cmd_append = {"append", "append to an append_wins field", append_help,
                                  append_run, NULL};
const cli_cmd_t cli_cmd_get = {"get", "show an entity: fields, counters, fingerprint", get_help,
                               get_run, NULL};
const cli_cmd_t cli_cmd_resolve = {"resolve", "resolve a field's open conflict", resolve_help,
                                   resolve_run, NULL};
const cli_cmd_t cli_cmd_conflicts = {"conflicts", "list open conflicts (or refused ops)",
                                     conflicts_help, conflicts_run, NULL};
const cli_cmd_t cli_cmd_rebuild = {"rebuild", "recompute the materialized state from the log",
                                   rebuild_help, rebuild_run, NULL};

static const cli_cmd_t counter_add = {"add", "add to a counter (counter.add)", counter_add_help,
                                      counter_add_run, NULL};
static const cli_cmd_t *const counter_sub[] = {&counter_add, NULL};
const cli_cmd_t cli_cmd_counter = {"counter", "counters", counter_help, NULL, counter_sub};

static const cli_cmd_t triple_add = {"add", "add a triple", triple_add_help, triple_add_run, NULL};
static const cli_cmd_t triple_rm = {"rm", "remove a triple", triple_rm_help, triple_rm_run, NULL};
static const cli_cmd_t triple_list = {"list", "list present triples", triple_list_help,
                                      triple_list_run, NULL};
static const cli_cmd_t *const triple_sub[] = {&triple_add, &triple_rm, &triple_list, NULL};
const cli_cmd_t cli_cmd_triple = {"triple", "triples", triple_help, NULL, triple_sub};
