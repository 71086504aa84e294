/* cmd_peers.c — `trellis peers` and `trellis peer add|trust|untrust`: the
 * running agent's peer table. */
#include "cli.h"

#include <string.h>
#include <time.h>

#include "../../core/tr_wire.h"

#define PEER_EXIT                                                                                  \
    "Exit status: 0 ok; 1 refused (the message says why); 2 usage error;\n"                        \
    "3 the agent is not running or not responding.\n"

static const char peers_help[] =
    "Usage: trellis peers [--json]\n"
    "\n"
    "Shows the agent's peers: static ones ('trellis peer add'), discovered\n"
    "ones, and unknown keys that knocked (trusted: pending). Columns: the\n"
    "fingerprint of the peer id, its name, its addresses, whether it is\n"
    "trusted and connected, when it was last seen, how many repositories it\n"
    "offers, and the ops pending in (it has, we lack) and out (we have, it\n"
    "lacks) on the repositories we share.\n"
    "\n"
    "Options:\n"
    "  --json      print the agent's peer objects: an array of {\"id\",\n"
    "              \"fingerprint\", \"key\", \"name\", \"addresses\", \"trusted\",\n"
    "              \"connected\", \"source\", \"last_seen\", \"repos\",\n"
    "              \"pending_in\", \"pending_out\"} (docs/control.md)\n"
    "  -h, --help  show this help\n"
    "\n" PEER_EXIT;

static const char peer_help[] =
    "Usage: trellis peer add ENDPOINT --key KEY [--name NAME] [--json]\n"
    "       trellis peer trust ID [--json]\n"
    "       trellis peer untrust ID [--json]\n"
    "\n"
    "Changes the agent's trust list (kept in agent.json). Only trusted keys\n"
    "may connect to the agent, and it connects only to trusted peers.\n"
    "\n"
    "Commands:\n"
    "  add       add a static peer and trust its key\n"
    "  trust     trust a peer id (a discovered peer, or one that will knock)\n"
    "  untrust   stop trusting a peer and disconnect it\n"
    "\n" PEER_EXIT;

static const char add_help[] =
    "Usage: trellis peer add ENDPOINT --key KEY [--name NAME] [--json]\n"
    "\n"
    "Adds a static peer: the agent at ENDPOINT (tcp://HOST:PORT), whose\n"
    "identity is KEY, and trusts KEY. The agent connects at once and\n"
    "reconnects after restarts. KEY is the peer's id as 'trellis id' prints it\n"
    "on the other machine, or its public key as 64 hex digits: it is public,\n"
    "and CurveZMQ checks that the server at ENDPOINT really holds it.\n"
    "\n"
    "Options:\n"
    "  --key KEY    the peer id or public key (required)\n"
    "  --name NAME  a display name (up to 64 bytes)\n"
    "  --json       print the peer object (as 'trellis peers --json')\n"
    "  -h, --help   show this help\n"
    "\n" PEER_EXIT;

static const char trust_help[] =
    "Usage: trellis peer trust ID [--json]\n"
    "\n"
    "Trusts the peer id ID (or 64 hex digits of its public key): the agent\n"
    "admits its connections and, if it has an address, connects to it.\n"
    "\n"
    "Options:\n"
    "  --json      print the peer object\n"
    "  -h, --help  show this help\n"
    "\n" PEER_EXIT;

static const char untrust_help[] =
    "Usage: trellis peer untrust ID [--json]\n"
    "\n"
    "Stops trusting the peer id ID: the agent disconnects it at once and\n"
    "refuses its connections from now on. Its ops already received stay.\n"
    "\n"
    "Options:\n"
    "  --json      print the peer object\n"
    "  -h, --help  show this help\n"
    "\n" PEER_EXIT;

/* "12s ago", "3m ago", … from an ISO-8601 UTC time; "never" for null. */
static void peers_ago(const char *iso, char *out, size_t n)
{
    struct tm tm = {0};
    if (!iso) {
        snprintf(out, n, "never");
        return;
    }
    const char *end = strptime(iso, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) {
        snprintf(out, n, "%s", iso);
        return;
    }
    long long s = (long long)(cli_now_ms() / 1000) - (long long)timegm(&tm);
    if (s < 0) s = 0;
    if (s < 2)
        snprintf(out, n, "now");
    else if (s < 120)
        snprintf(out, n, "%llds ago", s);
    else if (s < 7200)
        snprintf(out, n, "%lldm ago", s / 60);
    else if (s < 172800)
        snprintf(out, n, "%lldh ago", s / 3600);
    else
        snprintf(out, n, "%lldd ago", s / 86400);
}

static const char *peers_str(json_t *o, const char *key, const char *dflt)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && s[0] ? s : dflt;
}

static int peers_run(cli_t *c, int argc, char **argv)
{
    bool json = false;
    int rc = cli_std_opts(c, argc, argv, &json, NULL, 0);
    if (rc >= 0) return rc;
    if (optind < argc) return cli_usage(c, "unexpected argument '%s'", argv[optind]);
    json_t *res;
    if ((rc = cli_agent_call(c, "peers", NULL, CLI_AGENT_TIMEOUT_MS, &res))) return rc;
    if (!json_is_array(res)) {
        json_decref(res);
        return cli_fail(c, NULL, "the agent sent a peer list that is not an array");
    }
    if (json) return cli_json_out(c, res, true);
    if (json_array_size(res) == 0) {
        printf("no peers (add one with 'trellis peer add ENDPOINT --key KEY')\n");
        json_decref(res);
        return cli_flush(c, CLI_OK);
    }
    printf("%s%-19s  %-16s %-24s %-7s %-9s %-9s %5s %6s %6s%s\n", cli_c(c, CLI_BOLD), "PEER",
           "NAME", "ADDRESSES", "TRUSTED", "CONNECTED", "SEEN", "REPOS", "IN", "OUT",
           cli_c(c, CLI_RESET));
    size_t i, k;
    json_t *p, *a;
    bool pending = false;
    json_array_foreach(res, i, p)
    {
        char addrs[512] = "", seen[32];
        size_t off = 0;
        json_array_foreach(json_object_get(p, "addresses"), k, a)
        {
            if (off < sizeof addrs) {
                int w = snprintf(addrs + off, sizeof addrs - off, "%s%s", k ? "," : "",
                                 json_string_value(a) ? json_string_value(a) : "?");
                off += w > 0 ? (size_t)w : 0;
            }
        }
        peers_ago(json_string_value(json_object_get(p, "last_seen")), seen, sizeof seen);
        bool knock = strcmp(peers_str(p, "source", ""), "knock") == 0;
        bool trusted = json_is_true(json_object_get(p, "trusted"));
        bool conn = json_is_true(json_object_get(p, "connected"));
        pending |= knock || !trusted;
        printf("%s%-19s%s  %-16s %-24s %s%-7s%s %s%-9s%s %-9s %5zu %6lld %6lld\n",
               cli_c(c, CLI_YELLOW), peers_str(p, "fingerprint", "?"), cli_c(c, CLI_RESET),
               peers_str(p, "name", "-"), addrs[0] ? addrs : "-",
               cli_c(c, trusted ? "" : CLI_RED), knock ? "pending" : trusted ? "yes" : "no",
               cli_c(c, trusted ? "" : CLI_RESET), cli_c(c, conn ? CLI_GREEN : ""),
               conn ? "yes" : "no", cli_c(c, conn ? CLI_RESET : ""), seen,
               json_array_size(json_object_get(p, "repos")),
               (long long)json_integer_value(json_object_get(p, "pending_in")),
               (long long)json_integer_value(json_object_get(p, "pending_out")));
    }
    if (pending)
        printf("\nTrust a peer with 'trellis peer trust ID' (ids: 'trellis peers --json'); a\n"
               "pending key is shown by its CURVE key until it is added by its id.\n");
    json_decref(res);
    return cli_flush(c, CLI_OK);
}

/* Prints the outcome of a peer command: the peer object, or one line. */
static int peer_out(cli_t *c, json_t *res, bool json, const char *what)
{
    if (json) return cli_json_out(c, res, true);
    const char *name = peers_str(res, "name", NULL);
    printf("%s peer %s%s%s%s%s\n", what, peers_str(res, "fingerprint", "?"), name ? " (" : "",
           name ? name : "", name ? ")" : "",
           json_is_true(json_object_get(res, "connected")) ? ", connected" : "");
    json_decref(res);
    return cli_flush(c, CLI_OK);
}

/* A peer id or hex key from the command line, checked here so that a typo is
 * a usage error (2) with the parser's reason. */
static int peer_check_id(cli_t *c, const char *what, const char *s)
{
    uint8_t key[TR_KEY_LEN];
    tr_err_t err = {0};
    if (tr_peer_id_parse(s, key, &err) != TR_OK) return cli_usage(c, "%s: %s", what, err.msg);
    return CLI_OK;
}

static int add_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"key", required_argument, NULL, 'k'},
                                         {"name", required_argument, NULL, 'n'},
                                         CLI_OPT_JSON,
                                         CLI_OPT_HELP,
                                         CLI_OPT_END};
    const char *key = NULL, *name = NULL;
    bool json = false;
    int o, rc;
    while ((o = cli_getopt(c, argc, argv, "h", opts)) != -1) {
        switch (o) {
        case 'k':
            key = optarg;
            break;
        case 'n':
            name = optarg;
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
    if (optind >= argc) return cli_usage(c, "expected an ENDPOINT (tcp://HOST:PORT)");
    if (argc - optind > 1) return cli_usage(c, "unexpected argument '%s'", argv[optind + 1]);
    const char *ep = argv[optind];
    if (strncmp(ep, "tcp://", 6) != 0 || !strchr(ep + 6, ':') || strlen(ep) > 255)
        return cli_usage(c, "ENDPOINT must look like tcp://HOST:PORT, not '%s'", ep);
    if (!key) return cli_usage(c, "--key is required");
    if ((rc = peer_check_id(c, "--key", key))) return rc;
    if (name && strlen(name) > TR_NAME_MAX)
        return cli_usage(c, "--name is longer than %d bytes", TR_NAME_MAX);
    json_t *args = json_pack("{s:s,s:s}", "endpoint", ep, "key", key), *res;
    if (args && name) json_object_set_new(args, "name", json_string(name));
    if ((rc = cli_agent_call(c, "peer.add", args, CLI_AGENT_TIMEOUT_MS, &res))) return rc;
    return peer_out(c, res, json, "added and trusted");
}

static int trust_cmd(cli_t *c, int argc, char **argv, bool trust)
{
    bool json = false;
    int rc = cli_std_opts(c, argc, argv, &json, NULL, 0);
    if (rc >= 0) return rc;
    if (optind >= argc) return cli_usage(c, "expected a peer ID");
    if (argc - optind > 1) return cli_usage(c, "unexpected argument '%s'", argv[optind + 1]);
    if ((rc = peer_check_id(c, "ID", argv[optind]))) return rc;
    json_t *res;
    if ((rc = cli_agent_call(c, trust ? "peer.trust" : "peer.untrust",
                             json_pack("{s:s}", "id", argv[optind]), CLI_AGENT_TIMEOUT_MS, &res)))
        return rc;
    return peer_out(c, res, json, trust ? "trusted" : "untrusted and disconnected");
}

static int trust_run(cli_t *c, int argc, char **argv)
{
    return trust_cmd(c, argc, argv, true);
}

static int untrust_run(cli_t *c, int argc, char **argv)
{
    return trust_cmd(c, argc, argv, false);
}

const cli_cmd_t cli_cmd_peers = {"peers", "show the agent's peers", peers_help, peers_run, NULL};

static const cli_cmd_t peer_add = {"add", "add a static peer and trust it", add_help, add_run,
                                   NULL};
static const cli_cmd_t peer_trust = {"trust", "trust a peer id", trust_help, trust_run, NULL};
static const cli_cmd_t peer_untrust = {"untrust", "stop trusting a peer, disconnect it",
                                       untrust_help, untrust_run, NULL};
static const cli_cmd_t *const peer_sub[] = {&peer_add, &peer_trust, &peer_untrust, NULL};

const cli_cmd_t cli_cmd_peer = {"peer", "change the agent's trust list", peer_help, NULL,
                                peer_sub};
