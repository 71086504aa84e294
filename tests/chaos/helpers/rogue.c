/*
 * rogue.c — a test helper of tests/chaos/test_security.sh (not part of
 * trellis): a peer that speaks the sync protocol to a trellisd and can
 * misbehave on request.
 *
 *   rogue keyforms KEYFILE
 *       prints every text form of the secret in an identity.key, one per
 *       line (seed in hex, base32, BASE32, base64; the Ed25519 secret key
 *       and the CURVE secret key in hex; the CURVE secret key in Z85), for
 *       tests that grep outputs for leaked secrets
 *   rogue id SEEDHEX
 *       prints the peer id of the identity with that seed
 *   rogue run [options] ENDPOINT SERVER-ID STEP...
 *       connects a DEALER to ENDPOINT as a CURVE client of SERVER-ID (the
 *       agent's peer id) and runs a real tr_sync_t session over the sync
 *       host of agent/daemon/host.c (compiled in, as tests/unit/test_sync.c
 *       does) on the repository given with --repo, while performing STEPs.
 *       Prints a JSON summary on stdout: the handshake outcome, frames
 *       received by type, the nacks received (reason, text), ops integrated,
 *       frames received during `quiet` steps, and so on.
 *
 * options of run:
 *   --seed HEX         our identity (default: a fresh random one)
 *   --plain            no CURVE at all (a plaintext ZMTP client)
 *   --server-key ID    the CURVE server key to expect (default SERVER-ID's):
 *                      a wrong one makes the handshake fail
 *   --repo PATH        a repository to serve and integrate into
 *   --alter MODE       tamper with the first op we stream (relaying):
 *                      keep-sig  another body, the original signature
 *                      resign    another body, signed by us
 *                      unsign    the first *signed* op loses its signature
 *   --name NAME        our hello's display name (default "rogue")
 *   --rotate           a fresh random key for every reconnect step
 *
 * steps (run in order):
 *   sync:MS            run the session until it is idle (or MS passed)
 *   run:MS             run the session for MS
 *   quiet:MS           run for MS and count every frame received meanwhile
 *   replay             send again every frame we sent so far
 *   hello:NAME         send another hello, with display name NAME
 *   haves:N            send N copies of our `have` as fast as the socket takes
 *   garbage:N          send N frames of random bytes
 *   big:N              send N frames of 4 MiB
 *   branches:N         send N `have` frames, each naming 1024 branches never
 *                      named before (with nothing to want on any)
 *   want:BRANCH        send a fresh want for BRANCH (id above any used);
 *                      what answers it is counted as "probe" frames
 *   forge:ID:BRANCH:N  claim (in a have) that author ID has N more ops on
 *                      BRANCH, and answer the agent's want with N new ops
 *                      in ID's name, signed by us ("unsigned" instead of a
 *                      BRANCH: …:N:unsigned sends them without signatures)
 *   reconnect          new connection (new routing id), new session
 */
#define HOST_STORE_ONLY
#include "../../../agent/daemon/host.c"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "../../../core/tr_identity.h"
#include "../../../store/tr_repo.h"

/* ---- state ---------------------------------------------------------------- */

static tr_repo_t *REPO;
static tr_identity_t *ME;
static const char *ALTER;
static bool altered;

static struct {
    const char *handshake; /* none, ok, failed-auth, failed-protocol, failed */
    unsigned connects, disconnects;
    uint64_t in_by_type[6], in_bad, out_by_type[6], out_dropped;
    uint64_t received_ops, refused_by_us, quiet_frames, probe_frames, forged_sent;
    uint64_t session_errors;
    json_t *nacks; /* [{reason, text}] (first 50) */
    json_t *errors;
} ST;

/* The agent's last have per branch of our repository: for forging. */
typedef struct {
    char branch[TR_BRANCH_MAX + 1];
    tr_vv_t vv;
    uint8_t (*heads)[TR_HASH_LEN];
    size_t nheads;
} seen_t;
static seen_t seen[64];
static size_t nseen;

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "rogue: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    exit(2);
}

/* ---- the sync host binding (one repository) ------------------------------- */

static tr_store_t *host_store(void *host, const uint8_t repo[TR_REPO_ID_LEN])
{
    (void)host;
    return REPO && !memcmp(repo, tr_repo_id(REPO), TR_REPO_ID_LEN) ? tr_repo_store(REPO) : NULL;
}

static bool host_serves(void *host, const uint8_t repo[TR_REPO_ID_LEN])
{
    return host_store(host, repo) != NULL;
}

static int host_repos(void *host, uint8_t (**ids)[TR_REPO_ID_LEN], size_t *n)
{
    (void)host;
    *ids = NULL;
    *n = 0;
    if (!REPO) return TR_OK;
    *ids = malloc(TR_REPO_ID_LEN);
    if (!*ids) return TR_ENOMEM;
    memcpy((*ids)[0], tr_repo_id(REPO), TR_REPO_ID_LEN);
    *n = 1;
    return TR_OK;
}

static void host_event(void *host, const tr_sync_event_t *ev)
{
    (void)host;
    if (ev->type == TR_SYNC_EV_RECEIVED) ST.received_ops += ev->count;
    if (ev->type == TR_SYNC_EV_REFUSED) ST.refused_by_us++;
}

/* cursor_next that tampers with the first op streamed (--alter). */
static tr_op_t evil_ops[TR_SYNC_FRAME_OPS];
static const tr_op_t *evil_ptr[TR_SYNC_FRAME_OPS];
static tr_buf_t evil_rec;
static const uint8_t EVIL_BODY[] = {0x81, 0xa4, 'e', 'v', 'i', 'l', 0xc3}; /* {"evil": true} */

static int evil_next(void *host, tr_sync_cursor_t *c, size_t max_ops, size_t max_bytes,
                     const tr_op_t *const **ops, size_t *n, bool *done, tr_err_t *err)
{
    int rc = hs_cursor_next(host, c, max_ops, max_bytes, ops, n, done, err);
    if (rc || !*n || altered || !ALTER) return rc;
    for (size_t i = 0; i < *n; i++) {
        evil_ops[i] = *(*ops)[i];
        evil_ptr[i] = &evil_ops[i];
    }
    size_t k = 0;
    if (!strcmp(ALTER, "unsign")) {
        while (k < *n && !evil_ops[k].has_sig) k++;
        if (k == *n) return TR_OK; /* no signed op in this frame: try the next */
        evil_ops[k].has_sig = false;
    } else {
        tr_op_t *op = &evil_ops[k];
        op->body = EVIL_BODY;
        op->body_len = sizeof EVIL_BODY;
        tr_buf_reset(&evil_rec);
        bool resign = !strcmp(ALTER, "resign");
        if (resign) op->has_sig = false;
        uint8_t sig[TR_SIG_LEN];
        bool had = op->has_sig;
        memcpy(sig, op->sig, TR_SIG_LEN);
        /* Re-encoding sets the hash (the batch names parents by it); with
         * keep-sig the original signature stays on the altered op. */
        if (tr_op_encode(op, resign ? tr_identity_secret(ME) : NULL, &evil_rec, NULL) != TR_OK)
            return TR_EINVAL;
        if (!resign) op->has_sig = had, memcpy(op->sig, sig, TR_SIG_LEN);
    }
    altered = true;
    *ops = evil_ptr;
    return TR_OK;
}

/* ---- the connection ------------------------------------------------------- */

static void *ctx, *sock, *mon;
static tr_sync_t *S;
static tr_buf_t *sent_log;
static size_t nsent, capsent;
static bool plain, rotate;
static uint8_t our_pk[32], our_sk[32], server_pk[32];
static char endpoint[512], our_name[TR_NAME_MAX + 1] = "rogue";
static int conn_seq;
static uint64_t probe_base = 1000000;

static void session_new(void)
{
    tr_sync_host_t h;
    hs_fill(&h, NULL);
    h.cursor_next = evil_next;
    tr_sync_destroy(&S);
    S = tr_sync_new(&h, our_name);
    tr_err_t err;
    if (!S || tr_sync_start(S, &err)) die("%s", "cannot start a session");
}

static void conn_open(void)
{
    sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, hwm = 1000, tmo = 2000;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &tmo, sizeof tmo);
    if (!plain) {
        zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pk, 32);
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, our_pk, 32);
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, our_sk, 32);
    }
    char monep[64];
    snprintf(monep, sizeof monep, "inproc://rogue-mon-%d", ++conn_seq);
    zmq_socket_monitor(sock, monep, ZMQ_EVENT_ALL);
    mon = zmq_socket(ctx, ZMQ_PAIR);
    zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(mon, monep) || zmq_connect(sock, endpoint)) die("cannot connect to %s", endpoint);
    session_new();
}

static void conn_close(void)
{
    zmq_socket_monitor(sock, NULL, 0);
    zmq_close(mon);
    zmq_close(sock);
}

/* Sends one frame; false when the socket would not take it. */
static bool send_frame(const uint8_t *p, size_t n, bool dontwait, bool log)
{
    if (zmq_send(sock, p, n, dontwait ? ZMQ_DONTWAIT : 0) < 0) {
        ST.out_dropped++;
        return false;
    }
    if (n > 2 && p[1] == 1 && p[2] <= 5) ST.out_by_type[p[2]]++;
    if (log) {
        if (nsent == capsent) {
            capsent = capsent ? 2 * capsent : 64;
            sent_log = realloc(sent_log, capsent * sizeof *sent_log);
            if (!sent_log) die("%s", "out of memory");
        }
        sent_log[nsent] = (tr_buf_t){0};
        if (tr_buf_append(&sent_log[nsent], p, n)) die("%s", "out of memory");
        nsent++;
    }
    return true;
}

/* Sends what the session queued. */
static void flush(void)
{
    tr_buf_t b = {0};
    tr_err_t err;
    for (int i = 0; i < 10000; i++) {
        if (!tr_sync_pop(S, &b)) {
            if (tr_sync_pump(S, &err)) ST.session_errors++;
            if (!tr_sync_pop(S, &b)) break;
        }
        send_frame(b.data, b.len, false, true);
    }
    tr_buf_free(&b);
}

static void on_monitor(void)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) return;
    uint16_t ev = 0;
    if (zmq_msg_size(&m) >= 2) memcpy(&ev, zmq_msg_data(&m), 2);
    int more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    while (more) { /* the endpoint part */
        zmq_msg_init(&m);
        zmq_msg_recv(&m, mon, 0);
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    switch (ev) {
    case ZMQ_EVENT_CONNECTED: ST.connects++; break;
    case ZMQ_EVENT_DISCONNECTED: ST.disconnects++; break;
    case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: ST.handshake = "ok"; break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        if (strcmp(ST.handshake, "ok")) ST.handshake = "failed-auth";
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if (strcmp(ST.handshake, "ok")) ST.handshake = "failed-protocol";
        break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        if (strcmp(ST.handshake, "ok")) ST.handshake = "failed";
        break;
    }
}

/* Forging: armed by a forge step, fired by the agent's next want. */
static struct {
    bool armed;
    uint8_t author[TR_KEY_LEN];
    char branch[TR_BRANCH_MAX + 1];
    uint64_t from, n;
    bool sign;
    uint64_t answered[16]; /* want ids answered with forgeries: their acks are ours */
    size_t nanswered;
} FG;

static seen_t *seen_get(const char *branch, bool create)
{
    for (size_t i = 0; i < nseen; i++)
        if (!strcmp(seen[i].branch, branch)) return &seen[i];
    if (!create || nseen == 64) return NULL;
    seen_t *s = &seen[nseen++];
    memset(s, 0, sizeof *s);
    snprintf(s->branch, sizeof s->branch, "%s", branch);
    return s;
}

static void remember_have(const tr_frame_t *f)
{
    if (!REPO || memcmp(f->repo, tr_repo_id(REPO), TR_REPO_ID_LEN)) return;
    for (size_t i = 0; i < f->nbranches; i++) {
        const tr_have_branch_t *b = &f->branches[i];
        seen_t *s = seen_get(b->name, true);
        if (!s) return;
        free(s->vv.v);
        free(s->heads);
        s->vv.n = b->vv.n;
        s->vv.v = malloc((b->vv.n + 1) * sizeof *s->vv.v);
        s->nheads = b->nheads;
        s->heads = malloc((b->nheads + 1) * TR_HASH_LEN);
        if (!s->vv.v || !s->heads) die("%s", "out of memory");
        memcpy(s->vv.v, b->vv.v, b->vv.n * sizeof *s->vv.v);
        memcpy(s->heads, b->heads, b->nheads * TR_HASH_LEN);
    }
}

/* Answers the agent's want with FG.n ops in FG.author's name. */
static void forge_answer(const tr_frame_t *want)
{
    seen_t *s = seen_get(FG.branch, false);
    static const uint8_t body[] = {0x81, 0xa6, 'f', 'o', 'r', 'g', 'e', 'd', 0xc3};
    tr_op_t *ops = calloc(FG.n, sizeof *ops);
    const tr_op_t **pp = calloc(FG.n, sizeof *pp);
    tr_buf_t rec = {0}, payload = {0}, frame = {0};
    if (!ops || !pp) die("%s", "out of memory");
    for (uint64_t i = 0; i < FG.n; i++) {
        tr_op_t *op = &ops[i];
        memcpy(op->repo, want->repo, TR_REPO_ID_LEN);
        op->branch = FG.branch;
        op->branch_len = strlen(FG.branch);
        memcpy(op->author, FG.author, TR_KEY_LEN);
        op->seq = FG.from + 1 + i;
        op->lamport = (1ull << 40) + i; /* above anything: the signature is what fails */
        op->wall_ms = 1760000000000ull;
        if (i == 0) {
            for (size_t h = 0; s && h < s->nheads && h < TR_OP_MAX_PARENTS; h++)
                memcpy(op->parents[op->nparents++], s->heads[h], TR_HASH_LEN);
        } else {
            memcpy(op->parents[0], ops[i - 1].hash, TR_HASH_LEN);
            op->nparents = 1;
        }
        /* prev is not sent (the receiver fills it in); any value encodes. */
        op->has_prev = op->seq > 1;
        if (i > 0) memcpy(op->prev, ops[i - 1].hash, TR_HASH_LEN);
        op->kind = "app.forged";
        op->kind_len = strlen(op->kind);
        op->target = "forged";
        op->target_len = 6;
        op->body = body;
        op->body_len = sizeof body;
        tr_buf_reset(&rec);
        bool sign = FG.sign && i + 1 == FG.n; /* like a writer: the last op is signed */
        if (tr_op_encode(op, sign ? tr_identity_secret(ME) : NULL, &rec, NULL) != TR_OK)
            die("%s", "cannot encode a forged op");
        pp[i] = op;
    }
    tr_frame_t f = {.type = TR_FRAME_OPS, .has_repo = true, .has_branch = true,
                    .want_id = want->want_id, .final = true};
    memcpy(f.repo, want->repo, TR_REPO_ID_LEN);
    snprintf(f.branch, sizeof f.branch, "%s", want->branch);
    if (tr_batch_encode(pp, FG.n, &payload, &f.codec, NULL) != TR_OK) die("%s", "cannot encode a batch");
    f.payload = payload.data;
    f.payload_len = payload.len;
    if (tr_frame_encode(&f, &frame, NULL) != TR_OK) die("%s", "cannot encode a frame");
    send_frame(frame.data, frame.len, false, true);
    ST.forged_sent += FG.n;
    FG.armed = false;
    if (FG.nanswered < 16) FG.answered[FG.nanswered++] = want->want_id;
    tr_buf_free(&rec);
    tr_buf_free(&payload);
    tr_buf_free(&frame);
    free(ops);
    free(pp);
}

static bool counting_quiet;

static void on_frame(const uint8_t *p, size_t n)
{
    tr_frame_t f;
    if (tr_frame_decode(p, n, &f, NULL) != TR_OK) {
        ST.in_bad++;
        return;
    }
    ST.in_by_type[f.type]++;
    if (counting_quiet) ST.quiet_frames++;
    if (f.type == TR_FRAME_HAVE) remember_have(&f);
    if (f.type == TR_FRAME_NACK && json_array_size(ST.nacks) < 50)
        json_array_append_new(ST.nacks, json_pack("{s:s,s:s}", "reason", f.reason, "text", f.text));
    bool forged_ack = false;
    for (size_t k = 0; f.type == TR_FRAME_ACK && k < FG.nanswered; k++)
        forged_ack |= f.want_id == FG.answered[k];
    if (f.type == TR_FRAME_OPS && f.want_id >= 1000000) {
        ST.probe_frames++; /* answers a `want` step, not our session */
    } else if (f.type == TR_FRAME_WANT && FG.armed && !strcmp(f.branch, FG.branch)) {
        forge_answer(&f);
    } else if (!forged_ack) {
        tr_err_t err;
        if (tr_sync_recv(S, p, n, &err) != TR_OK) {
            /* Counted, and the session goes on: starting a new one would
             * need the agent's hello again. */
            ST.session_errors++;
            if (json_array_size(ST.errors) < 20) json_array_append_new(ST.errors, json_string(err.msg));
        }
    }
    tr_frame_clear(&f);
}

/* Runs the loop for up to ms; stops early when `until_idle` and the
 * session has been idle for 300 ms. */
static void run(int ms, bool until_idle)
{
    int64_t end = now_ms() + ms, idle_since = 0;
    flush();
    while (now_ms() < end) {
        zmq_pollitem_t it[2] = {{sock, 0, ZMQ_POLLIN, 0}, {mon, 0, ZMQ_POLLIN, 0}};
        int left = (int)(end - now_ms());
        if (zmq_poll(it, 2, left < 50 ? left : 50) < 0) break;
        if (it[1].revents & ZMQ_POLLIN) on_monitor();
        while (it[0].revents & ZMQ_POLLIN) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            on_frame(zmq_msg_data(&m), zmq_msg_size(&m));
            zmq_msg_close(&m);
            flush();
        }
        flush();
        if (until_idle) {
            bool idle = tr_sync_established(S) && tr_sync_idle(S);
            if (!idle) idle_since = 0;
            else if (!idle_since) idle_since = now_ms();
            else if (now_ms() - idle_since >= 300) return;
        }
    }
}

/* ---- steps ------------------------------------------------------------------ */

static void send_hello(const char *name)
{
    tr_frame_t f = {.type = TR_FRAME_HELLO, .min_version = 1, .max_version = 1};
    snprintf(f.name, sizeof f.name, "%s", name);
    if (host_repos(NULL, &f.repos, &f.nrepos)) die("%s", "out of memory");
    tr_buf_t b = {0};
    if (tr_frame_encode(&f, &b, NULL) == TR_OK) send_frame(b.data, b.len, false, true);
    free(f.repos);
    tr_buf_free(&b);
}

static void send_haves(long n)
{
    tr_frame_t f = {0};
    tr_buf_t b = {0};
    if (!REPO || hs_have(NULL, tr_repo_id(REPO), NULL, &f) || tr_frame_encode(&f, &b, NULL))
        die("%s", "haves: needs --repo");
    for (long i = 0; i < n; i++) {
        if (!send_frame(b.data, b.len, true, false)) {
            run(5, false); /* let the socket drain a little */
            i--;
        }
        if (i % 100 == 0) run(0, false);
    }
    tr_frame_clear(&f);
    tr_buf_free(&b);
}

static void send_branches(long n)
{
    if (!REPO) die("%s", "branches: needs --repo");
    tr_frame_t f = {.type = TR_FRAME_HAVE, .has_repo = true, .nbranches = TR_HAVE_MAX_BRANCHES};
    memcpy(f.repo, tr_repo_id(REPO), TR_REPO_ID_LEN);
    f.branches = calloc(TR_HAVE_MAX_BRANCHES, sizeof *f.branches);
    if (!f.branches) die("%s", "out of memory");
    tr_buf_t b = {0};
    static unsigned long serial;
    for (long i = 0; i < n; i++) {
        for (size_t k = 0; k < TR_HAVE_MAX_BRANCHES; k++) {
            snprintf(f.branches[k].name, sizeof f.branches[k].name, "flood/%08lu", serial++);
            f.branches[k].count = 1;
        }
        tr_buf_reset(&b);
        if (tr_frame_encode(&f, &b, NULL) != TR_OK) die("%s", "cannot encode a have");
        while (!send_frame(b.data, b.len, true, false)) run(5, false);
        run(0, false);
    }
    free(f.branches);
    tr_buf_free(&b);
}

static void send_garbage(long n, size_t size)
{
    uint8_t *buf = malloc(size);
    if (!buf) die("%s", "out of memory");
    for (long i = 0; i < n; i++) {
        size_t len = size > 256 ? size : 1 + randombytes_uniform((uint32_t)size);
        if (size > 256) memset(buf, 0x90 + (int)(i & 7), len); /* big: fixarrays, not a frame */
        else randombytes_buf(buf, len);
        send_frame(buf, len, false, false);
        run(0, false);
    }
    free(buf);
}

static void send_want(const char *branch)
{
    if (!REPO) die("%s", "want: needs --repo");
    tr_frame_t f = {.type = TR_FRAME_WANT, .has_repo = true, .has_branch = true,
                    .want_id = probe_base++, .max_bytes = 1 << 20};
    memcpy(f.repo, tr_repo_id(REPO), TR_REPO_ID_LEN);
    snprintf(f.branch, sizeof f.branch, "%s", branch);
    tr_buf_t b = {0};
    if (tr_frame_encode(&f, &b, NULL) == TR_OK) send_frame(b.data, b.len, false, false);
    tr_buf_free(&b);
}

static void forge(char *spec)
{
    char *id = strtok(spec, ":"), *branch = strtok(NULL, ":"), *n = strtok(NULL, ":"),
         *mode = strtok(NULL, ":");
    tr_err_t err;
    if (!id || !branch || !n || tr_peer_id_parse(id, FG.author, &err)) die("bad forge step %s", spec);
    snprintf(FG.branch, sizeof FG.branch, "%s", branch);
    FG.n = strtoull(n, NULL, 10);
    FG.sign = !(mode && !strcmp(mode, "unsigned"));
    if (!FG.n || FG.n > 1000) die("bad forge count %s", n);
    seen_t *s = seen_get(branch, false);
    FG.from = s ? tr_vv_get(&s->vv, FG.author) : 0;
    /* A have that shows the author further ahead than the agent is. */
    tr_frame_t f = {.type = TR_FRAME_HAVE, .has_repo = true, .nbranches = 1};
    memcpy(f.repo, tr_repo_id(REPO), TR_REPO_ID_LEN);
    tr_have_branch_t b = {0};
    snprintf(b.name, sizeof b.name, "%s", branch);
    b.count = 1000000;
    b.vv.v = calloc((s ? s->vv.n : 0) + 1, sizeof *b.vv.v);
    if (!b.vv.v) die("%s", "out of memory");
    bool put = false;
    for (size_t i = 0; s && i < s->vv.n; i++) {
        b.vv.v[b.vv.n] = s->vv.v[i];
        if (!memcmp(s->vv.v[i].key, FG.author, TR_KEY_LEN)) b.vv.v[b.vv.n].seq = FG.from + FG.n, put = true;
        b.vv.n++;
    }
    if (!put) {
        memcpy(b.vv.v[b.vv.n].key, FG.author, TR_KEY_LEN);
        b.vv.v[b.vv.n++].seq = FG.from + FG.n;
        tr_vv_sort(&b.vv);
    }
    f.branches = &b;
    tr_buf_t out = {0};
    if (tr_frame_encode(&f, &out, NULL) != TR_OK) die("%s", "cannot encode the forged have");
    FG.armed = true;
    send_frame(out.data, out.len, false, true);
    tr_buf_free(&out);
    free(b.vv.v);
}

/* ---- key forms -------------------------------------------------------------- */

static void base32(char *out, const uint8_t *in, size_t n, bool upper)
{
    const char *al = upper ? "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567" : "abcdefghijklmnopqrstuvwxyz234567";
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) out[k++] = al[(acc >> (bits -= 5)) & 31];
    }
    if (bits) out[k++] = al[(acc << (5 - bits)) & 31];
    out[k] = '\0';
}

static int keyforms(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) die("cannot open %s", path);
    char line[512], hex[65] = "";
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "ed25519-seed %64s", hex) == 1) break;
    fclose(f);
    uint8_t seed[32];
    if (strlen(hex) != 64 || tr_unhex(seed, 32, hex, 64)) die("no seed in %s", path);
    tr_identity_t *id;
    if (tr_identity_from_seed(seed, &id)) die("%s", "bad seed");
    char b32[64], b64[64], skhex[129], z85[41];
    uint8_t cpk[32], csk[32];
    printf("%s\n", hex);
    base32(b32, seed, 32, false);
    printf("%s\n", b32);
    base32(b32, seed, 32, true);
    printf("%s\n", b32);
    sodium_bin2base64(b64, sizeof b64, seed, 32, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    printf("%s\n", b64);
    tr_hex(skhex, tr_identity_secret(id), 64);
    printf("%s\n", skhex);
    if (tr_identity_curve(id, cpk, csk)) die("%s", "no curve key");
    tr_hex(skhex, csk, 32);
    printf("%s\n", skhex);
    zmq_z85_encode(z85, csk, 32);
    printf("%s\n", z85);
    tr_identity_destroy(&id);
    return 0;
}

/* ---- main ------------------------------------------------------------------- */

static void curve_of_id(const char *text, uint8_t out[32])
{
    uint8_t key[TR_KEY_LEN];
    tr_err_t err;
    if (tr_peer_id_parse(text, key, &err) || crypto_sign_ed25519_pk_to_curve25519(out, key))
        die("bad peer id %s", text);
}

int main(int argc, char **argv)
{
    if (tr_crypto_init()) die("%s", "libsodium");
    if (argc == 3 && !strcmp(argv[1], "keyforms")) return keyforms(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "id")) {
        uint8_t seed[32];
        tr_identity_t *id;
        char pid[TR_PEER_ID_STRLEN + 1];
        if (strlen(argv[2]) != 64 || tr_unhex(seed, 32, argv[2], 64) || tr_identity_from_seed(seed, &id))
            die("bad seed %s", argv[2]);
        tr_peer_id(pid, tr_identity_public(id));
        printf("%s\n", pid);
        tr_identity_destroy(&id);
        return 0;
    }
    if (argc < 4 || strcmp(argv[1], "run")) {
        fprintf(stderr, "usage: rogue keyforms KEYFILE | rogue id SEEDHEX | rogue run [options] ENDPOINT SERVER-ID STEP...\n");
        return 2;
    }
    const char *seedhex = NULL, *server_key = NULL, *repo = NULL;
    int i = 2;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--plain")) plain = true;
        else if (!strcmp(argv[i], "--rotate")) rotate = true;
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seedhex = argv[++i];
        else if (!strcmp(argv[i], "--server-key") && i + 1 < argc) server_key = argv[++i];
        else if (!strcmp(argv[i], "--repo") && i + 1 < argc) repo = argv[++i];
        else if (!strcmp(argv[i], "--alter") && i + 1 < argc) ALTER = argv[++i];
        else if (!strcmp(argv[i], "--name") && i + 1 < argc) snprintf(our_name, sizeof our_name, "%s", argv[++i]);
        else die("unknown option %s", argv[i]);
    }
    if (argc - i < 2) die("%s", "run needs ENDPOINT and SERVER-ID");
    snprintf(endpoint, sizeof endpoint, "%s", argv[i++]);
    curve_of_id(server_key ? server_key : argv[i], server_pk);
    i++;
    if (seedhex) {
        uint8_t seed[32];
        if (strlen(seedhex) != 64 || tr_unhex(seed, 32, seedhex, 64) || tr_identity_from_seed(seed, &ME))
            die("bad seed %s", seedhex);
    } else if (tr_identity_generate(&ME)) {
        die("%s", "cannot make a key");
    }
    if (tr_identity_curve(ME, our_pk, our_sk)) die("%s", "no curve key");
    tr_err_t err;
    if (repo && tr_repo_open(repo, 0, &REPO, &err)) die("cannot open the repository: %s", err.msg);
    ST.handshake = "none";
    ST.nacks = json_array();
    ST.errors = json_array();
    ctx = zmq_ctx_new();
    conn_open();
    for (; i < argc; i++) {
        char *step = argv[i], *arg = strchr(step, ':');
        if (arg) *arg++ = '\0';
        long n = arg ? strtol(arg, NULL, 10) : 0;
        if (!strcmp(step, "sync")) run((int)n, true);
        else if (!strcmp(step, "run")) run((int)n, false);
        else if (!strcmp(step, "quiet")) {
            counting_quiet = true;
            run((int)n, false);
            counting_quiet = false;
        } else if (!strcmp(step, "replay")) {
            size_t k = nsent;
            for (size_t j = 0; j < k; j++) send_frame(sent_log[j].data, sent_log[j].len, false, false);
            run(0, false);
        } else if (!strcmp(step, "hello")) send_hello(arg ? arg : "");
        else if (!strcmp(step, "haves")) send_haves(n);
        else if (!strcmp(step, "garbage")) send_garbage(n, 200);
        else if (!strcmp(step, "big")) send_garbage(n, TR_FRAME_MAX);
        else if (!strcmp(step, "branches")) send_branches(n);
        else if (!strcmp(step, "want")) send_want(arg ? arg : "main");
        else if (!strcmp(step, "forge")) forge(arg ? arg : "");
        else if (!strcmp(step, "reconnect")) {
            conn_close();
            if (rotate) {
                tr_identity_destroy(&ME);
                if (tr_identity_generate(&ME) || tr_identity_curve(ME, our_pk, our_sk))
                    die("%s", "cannot make a key");
            }
            conn_open();
        } else die("unknown step %s", step);
    }
    run(0, false);
    json_t *in = json_object(), *out = json_object();
    static const char *const names[] = {"hello", "have", "want", "ops", "ack", "nack"};
    for (int t = 0; t < 6; t++) {
        json_object_set_new(in, names[t], json_integer((json_int_t)ST.in_by_type[t]));
        json_object_set_new(out, names[t], json_integer((json_int_t)ST.out_by_type[t]));
    }
    uint64_t total = 0;
    for (int t = 0; t < 6; t++) total += ST.in_by_type[t];
    json_t *sum = json_pack("{s:s,s:i,s:i,s:I,s:o,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:b}",
                            "handshake", ST.handshake, "connects", ST.connects, "disconnects",
                            ST.disconnects, "frames_in", (json_int_t)total, "in", in, "bad_in",
                            (json_int_t)ST.in_bad, "out", out, "out_dropped", (json_int_t)ST.out_dropped,
                            "received_ops", (json_int_t)ST.received_ops, "refused_by_us",
                            (json_int_t)ST.refused_by_us, "quiet_frames", (json_int_t)ST.quiet_frames,
                            "probe_frames", (json_int_t)ST.probe_frames, "forged_sent",
                            (json_int_t)ST.forged_sent, "session_errors", (json_int_t)ST.session_errors,
                            "nacks", ST.nacks, "errors", ST.errors, "altered", altered);
    char *text = json_dumps(sum, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(sum);
    tr_sync_destroy(&S);
    conn_close();
    zmq_ctx_term(ctx);
    for (size_t k = 0; k < nsent; k++) tr_buf_free(&sent_log[k]);
    free(sent_log);
    tr_buf_free(&evil_rec);
    for (size_t k = 0; k < nseen; k++) free(seen[k].vv.v), free(seen[k].heads);
    tr_repo_destroy(&REPO);
    tr_identity_destroy(&ME);
    sodium_memzero(our_sk, sizeof our_sk);
    return 0;
}
