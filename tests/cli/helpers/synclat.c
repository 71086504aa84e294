/* synclat.c — a helper of tests/bench/bench_sync.sh (not part of trellis):
 * how long a write on one agent takes to be integrated by another.
 *
 *   synclat N WRITE_ROOT CONTROL_SOCKET READ_ROOT [BRANCH]
 *
 * N times: appends one signed op to the repository at WRITE_ROOT (as the
 * user of $TRELLIS_HOME, durably, the way `trellis op add` does), tells that
 * repository's agent on CONTROL_SOCKET (the "changed" notice `trellis` sends
 * after a write), then polls the replica at READ_ROOT, which another agent
 * serves, until its op count grew. Prints one latency in microseconds per
 * line ("timeout" after 5 s). Doing this in one process keeps process start
 * and repository open costs out of the figure. Exit 0, or 1 on an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "../../../agent/lib/tr_home.h"
#include "../../../core/tr_json.h"
#include "../../../store/tr_repo.h"

static int64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int fail(const char *what, const tr_err_t *err)
{
    fprintf(stderr, "synclat: %s: %s\n", what, err ? err->msg : zmq_strerror(zmq_errno()));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: synclat N WRITE_ROOT CONTROL_SOCKET READ_ROOT [BRANCH]\n");
        return 2;
    }
    long n = atol(argv[1]);
    const char *branch = argc > 5 ? argv[5] : "notes";
    tr_err_t err = {0};
    tr_home_t *home = NULL;
    tr_identity_t *id = NULL;
    tr_repo_t *w = NULL, *r = NULL;
    if (tr_home_open(&home, &err) || tr_home_identity(home, true, &id, NULL, &err))
        return fail("identity", &err);
    if (tr_repo_open(argv[2], 0, &w, &err)) return fail(argv[2], &err);
    if (tr_repo_open(argv[4], TR_REPO_RDONLY, &r, &err)) return fail(argv[4], &err);

    void *ctx = zmq_ctx_new(), *ctl = zmq_socket(ctx, ZMQ_DEALER);
    char ep[4200], req[4400];
    snprintf(ep, sizeof ep, "ipc://%s", argv[3]);
    snprintf(req, sizeof req, "{\"cmd\":\"changed\",\"args\":{\"path\":\"%s\",\"branch\":\"%s\"}}",
             tr_repo_root(w), branch);
    if (zmq_connect(ctl, ep) != 0) return fail(ep, NULL);

    for (long i = 0; i < n; i++) {
        uint64_t before, now;
        if (tr_store_count(tr_repo_store(r), &before, &err)) return fail("count", &err);
        char target[32], json[64];
        snprintf(target, sizeof target, "lat%ld", i % 100);
        snprintf(json, sizeof json, "{\"field\":\"n\",\"value\":%ld}", i);
        tr_buf_t body = {0};
        if (tr_json_parse(json, strlen(json), 0, &body, &err)) return fail("body", &err);
        tr_op_spec_t spec = {"field.set", 9, target, strlen(target), body.data, body.len};
        uint8_t hash[1][TR_HASH_LEN];
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        int64_t t0 = mono_us();
        if (tr_store_write(tr_repo_store(w), branch, &spec, 1, id,
                           (uint64_t)wall.tv_sec * 1000 + (uint64_t)wall.tv_nsec / 1000000, hash,
                           &err))
            return fail("write", &err);
        tr_buf_free(&body);
        zmq_send(ctl, req, strlen(req), 0);
        zmq_pollitem_t it = {ctl, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 1000) == 1) {
            char reply[256];
            (void)zmq_recv(ctl, reply, sizeof reply, 0);
        }
        for (;;) {
            if (tr_store_count(tr_repo_store(r), &now, &err)) return fail("count", &err);
            if (now > before) {
                printf("%lld\n", (long long)(mono_us() - t0));
                break;
            }
            if (mono_us() - t0 > 5000000) {
                printf("timeout\n");
                break;
            }
            usleep(50);
        }
        fflush(stdout);
    }
    zmq_close(ctl);
    zmq_ctx_term(ctx);
    tr_repo_destroy(&w);
    tr_repo_destroy(&r);
    tr_identity_destroy(&id);
    tr_home_destroy(&home);
    return 0;
}
