/* cmd_id.c — `trellis id`: the user's peer id and public key. */
#include "cli.h"

static const char id_help[] =
    "Usage: trellis id [--json]\n"
    "\n"
    "Shows your identity: the peer id (what others put in their trust list),\n"
    "its short fingerprint for reading aloud, and the Ed25519 public key in\n"
    "hex. The key pair is created on first use in the config directory\n"
    "(identity.key, mode 0600; identity.pub). The secret key is never shown.\n"
    "\n"
    "Options:\n"
    "  --json      print {\"id\": PEER_ID, \"key\": HEX, \"fingerprint\": FP}\n"
    "  -h, --help  show this help\n"
    "\n"
    "Exit status: 0 ok; 1 failed (for example, identity.key is readable by\n"
    "others: the message says how to fix it); 2 usage error.\n";

static int id_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {CLI_OPT_JSON, CLI_OPT_HELP, CLI_OPT_END};
    bool json = false;
    int o;
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

    tr_identity_t *id;
    int rc = cli_identity(c, true, &id);
    if (rc) return rc;
    const uint8_t *pk = tr_identity_public(id);
    char peer[TR_PEER_ID_STRLEN + 1], fp[TR_FINGERPRINT_STRLEN + 1], key[TR_KEY_HEXLEN + 1];
    tr_peer_id(peer, pk);
    tr_peer_fingerprint(fp, pk);
    tr_hex(key, pk, TR_KEY_LEN);
    if (json)
        return cli_json_out(
            c, json_pack("{s:s, s:s, s:s}", "id", peer, "key", key, "fingerprint", fp), true);
    printf("id           %s%s%s\nfingerprint  %s\nkey          %s\n", cli_c(c, CLI_BOLD), peer,
           cli_c(c, CLI_RESET), fp, key);
    return cli_flush(c, CLI_OK);
}

const cli_cmd_t cli_cmd_id = {"id", "show your peer id and public key", id_help, id_run, NULL};
