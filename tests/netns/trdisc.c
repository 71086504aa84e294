/* trdisc.c — a tiny discovery agent for the multi-host tests: runs
 * tr_discovery (publish, browse, resolve) exactly as trellisd would, and
 * prints every callback as one JSON line with a wall-clock time in ms, so
 * the tests can check and time discovery without a full agent.
 *
 *   trdisc --name NAME --port PORT [--seed N] [--repos N] [--ttl S]
 *          [--service TYPE]
 *   trdisc --seed N --print-id       the peer id of seed N, and exit
 *   trdisc --id-of HEX               the peer id of a raw 32-byte key (any
 *                                    bytes: for invalid-key test records)
 *
 *   {"ev":"self","id":…}                      first line: our peer id
 *   {"ev":"state","on":true,"why":…}
 *   {"ev":"up","id":…,"name":…,"instance":…,"vmax":1,
 *    "addrs":[{"ep":"tcp://…","if":"eth0","family":4}],"repos":N or null}
 *   {"ev":"down","id":…}
 *   {"ev":"log","level":3,"msg":…}
 *
 * SIGUSR1 publishes a different set of repository ids (tests the in-place
 * TXT update); SIGTERM/SIGINT withdraw and exit 0. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tr_discovery.h"
#include "tr_identity.h"

static volatile sig_atomic_t g_stop, g_usr1;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        g_usr1 = 1;
    else
        g_stop = 1;
}

static json_int_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (json_int_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void emit(json_t *o)
{
    json_object_set_new(o, "ms", json_integer(now_ms()));
    char *s = json_dumps(o, JSON_COMPACT);
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

static json_t *id_json(const uint8_t key[TR_KEY_LEN])
{
    char id[TR_PEER_ID_STRLEN + 1];
    tr_peer_id(id, key);
    return json_string(id);
}

static void cb_up(void *arg, const tr_discovered_t *p)
{
    (void)arg;
    json_t *addrs = json_array();
    for (size_t i = 0; i < p->naddrs; i++)
        json_array_append_new(addrs, json_pack("{s:s,s:s,s:i}", "ep", p->addrs[i].endpoint, "if",
                                               p->addrs[i].iface, "family", p->addrs[i].family));
    emit(json_pack("{s:s,s:o,s:s,s:s,s:i,s:i,s:o,s:o}", "ev", "up", "id", id_json(p->key), "name",
                   p->name, "instance", p->instance, "vmin", (int)p->vmin, "vmax", (int)p->vmax,
                   "addrs", addrs, "repos",
                   p->has_repos ? json_integer((json_int_t)p->nrepos) : json_null()));
}

static void cb_down(void *arg, const uint8_t key[TR_KEY_LEN])
{
    (void)arg;
    emit(json_pack("{s:s,s:o}", "ev", "down", "id", id_json(key)));
}

static void cb_state(void *arg, bool on, const char *why)
{
    (void)arg;
    emit(json_pack("{s:s,s:b,s:s}", "ev", "state", "on", on, "why", why));
}

static void cb_log(void *arg, int level, const char *msg)
{
    (void)arg;
    emit(json_pack("{s:s,s:i,s:s}", "ev", "log", "level", level, "msg", msg));
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"port", required_argument, NULL, 'p'},
                                         {"seed", required_argument, NULL, 's'},
                                         {"repos", required_argument, NULL, 'r'},
                                         {"ttl", required_argument, NULL, 't'},
                                         {"service", required_argument, NULL, 'S'},
                                         {"print-id", no_argument, NULL, 'P'},
                                         {"id-of", required_argument, NULL, 'I'},
                                         {NULL, 0, NULL, 0}};
    const char *name = "trdisc", *service = NULL;
    const char *id_of = NULL;
    int port = 7437, seed = 1, nrepos = 1, ttl = 0, print_id = 0, c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            name = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 's':
            seed = atoi(optarg);
            break;
        case 'r':
            nrepos = atoi(optarg);
            break;
        case 't':
            ttl = atoi(optarg);
            break;
        case 'S':
            service = optarg;
            break;
        case 'P':
            print_id = 1;
            break;
        case 'I':
            id_of = optarg;
            break;
        default:
            fprintf(stderr, "usage: trdisc --name NAME --port PORT [--seed N] [--repos N] "
                            "[--ttl S] [--service TYPE]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (id_of) {
        uint8_t raw[TR_KEY_LEN];
        char text[TR_PEER_ID_STRLEN + 1];
        if (strlen(id_of) != 2 * TR_KEY_LEN || tr_unhex(raw, TR_KEY_LEN, id_of, strlen(id_of))) {
            fprintf(stderr, "trdisc: --id-of takes 64 hex digits\n");
            return 2;
        }
        tr_peer_id(text, raw);
        printf("%s\n", text);
        return 0;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);

    uint8_t sd[32] = {0};
    sd[0] = (uint8_t)seed;
    sd[1] = (uint8_t)(seed >> 8);
    tr_identity_t *id = NULL;
    if (tr_identity_from_seed(sd, &id) != TR_OK) return 1;
    uint8_t repos[16][TR_REPO_ID_LEN];
    for (int i = 0; i < 16; i++)
        memset(repos[i], seed * 16 + i, TR_REPO_ID_LEN);
    tr_discovery_cfg_t cfg = {.name = name,
                              .port = (uint16_t)port,
                              .repos = repos,
                              .nrepos = nrepos < 0 ? 0 : (size_t)nrepos,
                              .ttl_s = (unsigned)ttl,
                              .service = service};
    memcpy(cfg.key, tr_identity_public(id), TR_KEY_LEN);
    tr_identity_destroy(&id);
    if (print_id) {
        char text[TR_PEER_ID_STRLEN + 1];
        tr_peer_id(text, cfg.key);
        printf("%s\n", text);
        return 0;
    }
    emit(json_pack("{s:s,s:o}", "ev", "self", "id", id_json(cfg.key)));

    tr_discovery_cb_t cb = {cb_up, cb_down, cb_state, cb_log};
    tr_discovery_t *d = NULL;
    tr_err_t err;
    if (tr_discovery_new(&d, &cfg, &cb, NULL, &err) != TR_OK) {
        fprintf(stderr, "trdisc: %s\n", err.msg);
        return 1;
    }
    while (!g_stop) {
        if (g_usr1) {
            g_usr1 = 0;
            uint8_t other[2][TR_REPO_ID_LEN];
            memset(other[0], 0xee, TR_REPO_ID_LEN);
            memset(other[1], 0xef, TR_REPO_ID_LEN);
            tr_discovery_set_repos(d, (const uint8_t(*)[TR_REPO_ID_LEN])other, 2);
            emit(json_pack("{s:s,s:i}", "ev", "repos_set", "n", 2));
        }
        struct pollfd p = {.fd = tr_discovery_fd(d), .events = POLLIN};
        int n = poll(&p, 1, -1);
        if (n < 0 && errno != EINTR) break;
        if (n > 0) tr_discovery_process(d);
    }
    tr_discovery_destroy(&d);
    emit(json_pack("{s:s}", "ev", "exit"));
    return 0;
}
