/* fuzz_agentjson.c — libFuzzer harness for the agent's configuration file,
 * agent.json, through the daemon's own loader and writer
 * (agent/daemon/peers.c: agent_config_load, agent_config_save), linked as
 * is; the two functions of the rest of the daemon that peers.c calls
 * (agent_event, repos_find_path) are stubbed below. Whatever the bytes: no
 * crash, no leak; a refusal says which key; an accepted file saves to a
 * file that loads again and saves to the same text (the writer's output is
 * the loader's input, and a round trip loses nothing). Files live under a
 * private temporary TRELLIS_HOME. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include "../../agent/daemon/agent.h"

/* ---- stubs of the rest of the daemon ------------------------------------- */
void agent_event(agent_t *a, const char *type, const peer_t *p, json_t *fields)
{
    (void)a, (void)type, (void)p;
    json_decref(fields);
}

served_t *repos_find_path(agent_t *a, const char *path)
{
    (void)a, (void)path;
    return NULL; /* no repository is served: every listed one stays listed */
}

/* ---- harness ------------------------------------------------------------- */
static tr_home_t *home;
static tr_identity_t *self;
static char file[4200];

/* The private TRELLIS_HOME goes when the process exits normally. */
static char home_dir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void remove_tree(void)
{
    if (home_dir[0]) nftw(home_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    static char dir[] = "/tmp/trellis-fuzz-agentjson.XXXXXX";
    tr_err_t err;
    uint8_t seed[32] = {7};
    if (!mkdtemp(dir)) abort();
    snprintf(home_dir, sizeof home_dir, "%s", dir);
    atexit(remove_tree);
    if (setenv("TRELLIS_HOME", dir, 1) || tr_crypto_init() ||
        tr_home_open(&home, &err) || tr_home_mkdir(tr_home_config(home), &err) ||
        tr_identity_from_seed(seed, &self))
        abort();
    snprintf(file, sizeof file, "%s/agent.json", tr_home_config(home));
    return 0;
}

static void put(const uint8_t *data, size_t size)
{
    FILE *f = fopen(file, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) abort();
}

static char *slurp(void)
{
    FILE *f = fopen(file, "rb");
    if (!f) abort();
    char *buf = calloc(1, 1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    (void)n;
    fclose(f);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    put(data, size);
    agent_t a = {.home = home, .id = self}, b = {.home = home, .id = self};
    tr_err_t err;
    err.msg[0] = '\0';
    if (agent_config_load(&a, &err) != TR_OK) {
        if (!err.msg[0] || !strstr(err.msg, "agent.json")) abort(); /* names the file */
        peers_free(&a);
        return 0;
    }
    for (size_t i = 0; i < a.npeers; i++) {
        const peer_t *p = a.peers[i];
        if (!p->has_key || strlen(p->name) > TR_NAME_MAX || strlen(p->endpoint) >= sizeof p->endpoint)
            abort();
        if (p->endpoint[0] && strncmp(p->endpoint, "tcp://", 6)) abort();
        if (!memcmp(p->key, tr_identity_public(self), TR_KEY_LEN)) abort(); /* never ourselves */
    }
    if (agent_config_save(&a, &err) != TR_OK) abort();
    char *first = slurp();
    if (agent_config_load(&b, &err) != TR_OK) {
        fprintf(stderr, "saved agent.json does not load: %s\n%s\n", err.msg, first);
        abort();
    }
    if (agent_config_save(&b, &err) != TR_OK) abort();
    char *second = slurp();
    if (strcmp(first, second)) {
        fprintf(stderr, "agent.json round trip changed:\n%s\n---\n%s\n", first, second);
        abort();
    }
    free(first);
    free(second);
    peers_free(&a);
    peers_free(&b);
    return 0;
}
