/* cmd_op.c — the `trellis op` group and `trellis op add`. */
#include "cli.h"

#include <string.h>

#include "../../core/tr_json.h"

static const char op_help[] =
    "Usage: trellis op add --kind KIND --target TARGET [--body JSON] [--branch BRANCH]\n"
    "       trellis op import [FILE|-] [--branch BRANCH] [--batch N]\n"
    "\n"
    "Appends ops, signed with your identity, to the repository's log.\n"
    "\n"
    "Commands:\n"
    "  add       append one op\n"
    "  import    append ops from JSON lines, in batches\n"
    "\n"
    "See 'trellis op add --help' and 'trellis op import --help'.\n"
    "\n"
    "Exit status: 0 ok; 1 failure; 2 usage error.\n";

static const char add_help[] =
    "Usage: trellis op add --kind KIND --target TARGET [--body JSON] [--branch BRANCH]\n"
    "                      [--json]\n"
    "\n"
    "Appends one op on top of the branch's head, signed with your identity\n"
    "(created on first use), durably, and prints its hash. A running trellisd\n"
    "is told at once, so it pushes the op to its peers.\n"
    "\n"
    "Options:\n"
    "  --kind KIND      what the op does: 1-64 characters of a-z 0-9 . _ -,\n"
    "                   starting with a letter (triple.add, field.set, app.x…)\n"
    "  --target TARGET  the entity or path it touches (up to 1024 bytes)\n"
    "  --body JSON      its payload, any JSON value (default null); stored as\n"
    "                   canonical msgpack: object keys sorted, 2.0 stored as 2\n"
    "  --branch BRANCH  the branch (default main)\n"
    "  --json           print the new op as a JSON object (as 'show --json')\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 appended; 1 refused or failed (nothing appended);\n"
    "2 usage error.\n";

static int add_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"kind", required_argument, NULL, 'k'},
                                         {"target", required_argument, NULL, 't'},
                                         {"body", required_argument, NULL, 'b'},
                                         {"branch", required_argument, NULL, 'B'},
                                         CLI_OPT_JSON,
                                         CLI_OPT_HELP,
                                         CLI_OPT_END};
    const char *kind = NULL, *target = NULL, *body = NULL, *branch = "main";
    bool json = false;
    int o;
    while ((o = cli_getopt(c, argc, argv, "h", opts)) != -1) {
        switch (o) {
        case 'k':
            kind = optarg;
            break;
        case 't':
            target = optarg;
            break;
        case 'b':
            body = optarg;
            break;
        case 'B':
            branch = optarg;
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
    if (!kind) return cli_usage(c, "--kind is required");
    if (!target) return cli_usage(c, "--target is required");

    tr_err_t err = {0};
    tr_buf_t buf = {0};
    int rc;
    static const uint8_t nil = 0xc0;
    if (body && tr_json_parse(body, strlen(body), 0, &buf, &err) != TR_OK) {
        tr_buf_free(&buf);
        return cli_fail(c, NULL, "--body: %s", err.msg);
    }
    tr_repo_t *repo;
    tr_identity_t *id;
    if ((rc = cli_repo(c, 0, &repo)) || (rc = cli_identity(c, true, &id))) {
        tr_buf_free(&buf);
        return rc;
    }
    tr_op_spec_t spec = {kind,           strlen(kind),           target,
                         strlen(target), body ? buf.data : &nil, body ? buf.len : 1};
    uint8_t hash[1][TR_HASH_LEN];
    tr_store_t *s = tr_repo_store(repo);
    rc = tr_store_write(s, branch, &spec, 1, id, cli_now_ms(), hash, &err);
    tr_buf_free(&buf);
    if (rc != TR_OK) return cli_fail_err(c, NULL, &err);
    cli_wrote(c, tr_repo_root(repo), branch);

    if (!json) {
        char hex[2 * TR_HASH_LEN + 1];
        tr_hex(hex, hash[0], TR_HASH_LEN);
        printf("%s\n", hex);
        return cli_flush(c, CLI_OK);
    }
    tr_op_t op;
    uint64_t pos;
    if ((rc = cli_load_op(c, s, hash[0], &buf, &op, &pos)) == CLI_OK)
        rc = cli_json_out(c, cli_op_json(&op, pos), true);
    tr_buf_free(&buf);
    return rc;
}

const cli_cmd_t cli_cmd_op_add = {"add", "append one op", add_help, add_run, NULL};

static const cli_cmd_t *const op_sub[] = {&cli_cmd_op_add, &cli_cmd_op_import, NULL};

const cli_cmd_t cli_cmd_op = {"op", "append ops", op_help, NULL, op_sub};
