/*
 * fuzz_control.c — libFuzzer harness for control-socket requests
 * (docs/control.md): the daemon's own request handler
 * (agent/daemon/control.c: control_on_request and every command behind it),
 * with the daemon's peer table and repository registry (peers.c, repos.c)
 * linked as they are, on a real control socket (ipc://, in a private
 * temporary TRELLIS_HOME). What agent.c does for them — sockets to peers,
 * sessions, pushes — is replaced by the stubs below, so nothing leaves the
 * process: the seam is agent.h's agent.c section.
 *
 * An input is one request message: byte 0 chooses its framing (one JSON
 * part; REQ style with an empty delimiter first; two or three parts cut at
 * the positions bytes 1–2 give) and the rest is the payload. Whatever the
 * bytes: no crash, no leak, and a reply that is one JSON object with a
 * boolean "ok" (and an "error" with "code" and "message" when false) — or,
 * for the two commands that answer later (sync.now, clone), no reply yet.
 * The peer table and the repositories added are reset between inputs; the
 * waiting requests are not (they are bounded, and the socket is not rebound:
 * a closed ipc listener unlinks its path asynchronously, which would race
 * with a new bind of the same path).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include "../../agent/daemon/agent.h"
#include "../../agent/lib/tr_log.h"

/* ---- stubs of agent.c ---------------------------------------------------- */
static int64_t fake_now;
int64_t agent_now_ms(void) { return fake_now += 7; }
void agent_push(agent_t *a, const uint8_t id[TR_REPO_ID_LEN], const char *branch) { (void)a, (void)id, (void)branch; }
void agent_reshare(agent_t *a) { (void)a; }
void agent_flush(agent_t *a) { (void)a; }
int agent_write_trust(agent_t *a, tr_err_t *err) { (void)a, (void)err; return TR_OK; }
int agent_connect_peer(agent_t *a, peer_t *p, tr_err_t *err) { (void)a, (void)p, (void)err; return TR_OK; }
void agent_disconnect_peer(agent_t *a, peer_t *p) { (void)a, (void)p; }
bool agent_sessions_idle(const agent_t *a) { (void)a; return true; }
void agent_event(agent_t *a, const char *type, const peer_t *p, json_t *fields)
{
    (void)a, (void)type, (void)p;
    json_decref(fields);
}
void disco_repos_changed(agent_t *a) { (void)a; }

/* ---- harness -------------------------------------------------------------- */
static agent_t A;
static zsock_t *client;
static char endpoint[4300];

static void control_up(void)
{
    tr_err_t err;
    if (control_open(&A, &err) != TR_OK) {
        fprintf(stderr, "fuzz_control: %s\n", err.msg);
        abort();
    }
    snprintf(endpoint, sizeof endpoint, "ipc://%s/control", tr_home_runtime(A.home));
    client = zsock_new_dealer(endpoint);
    if (!client) abort();
    zsock_set_rcvtimeo(client, 3000);
}

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
    static char dir[] = "/tmp/trellis-fuzz-control.XXXXXX";
    tr_err_t err;
    uint8_t seed[32] = {9};
    zsys_init();
    zsys_set_logstream(NULL);
    zsys_handler_set(NULL);
    if (!mkdtemp(dir)) abort();
    snprintf(home_dir, sizeof home_dir, "%s", dir);
    atexit(remove_tree);
    if (setenv("TRELLIS_HOME", dir, 1) || tr_crypto_init() ||
        tr_home_open(&A.home, &err) || tr_home_mkdir(tr_home_config(A.home), &err) ||
        tr_identity_from_seed(seed, &A.id))
        abort();
    tr_log_init("fuzz_control", TR_LOG_ERR, 0);
    snprintf(A.name, sizeof A.name, "fuzz");
    snprintf(A.bound, sizeof A.bound, "tcp://127.0.0.1:1");
    A.loop = zloop_new(); /* timers are registered, never run */
    if (!A.loop || repos_default(&A, &err) != TR_OK) {
        fprintf(stderr, "fuzz_control: %s\n", err.msg);
        abort();
    }
    control_up();
    return 0;
}

/* Back to the initial state: only the default repository, no peers. */
static void reset(void)
{
    for (size_t i = A.nrepos; i-- > 0;)
        if (!A.repos[i]->is_default) {
            tr_err_t err;
            char *path = strdup(A.repos[i]->path);
            if (!path || repos_remove(&A, path, &err) != TR_OK) abort();
            free(path);
        }
    peers_free(&A);
}

static void check_reply(zmsg_t *m, bool req_style)
{
    if (req_style) {
        zframe_t *d = zmsg_pop(m);
        if (!d || zframe_size(d) != 0) abort(); /* the delimiter comes back */
        zframe_destroy(&d);
    }
    if (zmsg_size(m) != 1) abort();
    zframe_t *f = zmsg_first(m);
    json_error_t je;
    json_t *j = json_loadb((const char *)zframe_data(f), zframe_size(f), 0, &je);
    if (!j || !json_is_object(j)) {
        fprintf(stderr, "fuzz_control: reply is not a JSON object: %.*s\n", (int)zframe_size(f),
                (const char *)zframe_data(f));
        abort();
    }
    json_t *ok = json_object_get(j, "ok");
    if (!json_is_boolean(ok)) abort();
    if (json_is_false(ok)) {
        json_t *e = json_object_get(j, "error");
        if (!json_is_string(json_object_get(e, "code")) || !json_is_string(json_object_get(e, "message")))
            abort();
    } else if (!json_object_get(j, "result")) {
        abort();
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) return 0;
    uint8_t mode = data[0] & 3;
    size_t cut1 = data[1], cut2 = data[2];
    data += 3, size -= 3;
    if (cut1 > size) cut1 = size;
    if (cut2 > size - cut1) cut2 = size - cut1;
    zmsg_t *m = zmsg_new();
    bool req_style = mode == 1;
    switch (mode) {
    case 0: zmsg_addmem(m, data, size); break;
    case 1:
        zmsg_addmem(m, NULL, 0);
        zmsg_addmem(m, data, size);
        break;
    case 2:
        zmsg_addmem(m, data, cut1);
        zmsg_addmem(m, data + cut1, size - cut1);
        break;
    default:
        zmsg_addmem(m, data, cut1);
        zmsg_addmem(m, data + cut1, cut2);
        zmsg_addmem(m, data + cut1 + cut2, size - cut1 - cut2);
        break;
    }
    /* A first empty part reads as REQ framing to the agent, whatever the mode. */
    if (zframe_size(zmsg_first(m)) == 0) req_style = true;
    bool single = zmsg_size(m) - (req_style ? 1 : 0) == 1;
    if (zmsg_send(&m, client) != 0) abort();
    zpoller_t *p = zpoller_new(A.control, NULL);
    void *which = zpoller_wait(p, 3000);
    zpoller_destroy(&p);
    if (which != A.control) abort(); /* the request must arrive */
    control_on_request(A.loop, A.control, &A);
    /* Only sync.now and clone may answer later: for them a reply is
     * optional; any other request must be answered (the generous wait
     * keeps a loaded machine from failing the check). */
    json_t *j = single ? json_loadb((const char *)data + (mode >= 2 ? cut1 : 0),
                                    mode >= 2 ? size - cut1 : size, JSON_REJECT_DUPLICATES, NULL)
                       : NULL;
    const char *cmd = json_string_value(json_object_get(j, "cmd"));
    bool may_wait = cmd && (!strcmp(cmd, "sync.now") || !strcmp(cmd, "clone"));
    zmsg_t *r = NULL;
    zpoller_t *q = zpoller_new(client, NULL);
    if (zpoller_wait(q, may_wait ? 100 : 5000) == client) r = zmsg_recv(client);
    zpoller_destroy(&q);
    if (r) {
        check_reply(r, req_style);
        zmsg_destroy(&r);
    } else if (!may_wait) {
        fprintf(stderr, "fuzz_control: no reply to a request\n");
        abort();
    }
    /* A waiter stays (the loop never runs); past CONTROL_MAX_WAITERS such
     * requests get an immediate "busy" error instead. */
    json_decref(j);
    reset();
    return 0;
}
