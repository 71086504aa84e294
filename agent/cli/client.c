/* client.c — the CLI's side of the control socket (docs/control.md): one
 * JSON request to the local trellisd, one JSON reply, with a deadline. */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#define CLIENT_REPLY_MAX ((int64_t)64 << 20) /* a reply beyond 64 MiB is not the agent's */

/*
 * Looks for a live control socket at `path`. A missing file means no agent;
 * a file nobody listens on (an agent that was killed) refuses a plain
 * AF_UNIX connect at once, so we can say "not running" without waiting for
 * ZeroMQ's reply timeout. Returns true when an agent may be listening; else
 * fills `why`.
 */
static bool client_probe(const char *path, char *why, size_t n)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        snprintf(why, n, "the agent is not running (no control socket at %s); start it with "
                         "'trellisd'", path);
        return false;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) return true; /* cannot probe: let ZeroMQ try */
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return true;
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int e = errno;
    close(fd);
    if (rc != 0 && e == ECONNREFUSED) {
        snprintf(why, n, "the agent is not running (nothing listens on the control socket %s); "
                         "start it with 'trellisd'", path);
        return false;
    }
    return true;
}

/* Waits for one message on `s` until `deadline_ms` (monotonic); on 0 the
 * caller closes `msg`. Returns 0, or -1 on timeout or error. */
static int client_recv(void *s, int64_t deadline_ms, zmq_msg_t *msg)
{
    for (;;) {
        int64_t left = deadline_ms - (int64_t)cli_mono_ms();
        if (left <= 0) return -1;
        zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, (long)left);
        if (n < 0 && zmq_errno() == EINTR) continue;
        if (n <= 0) return -1;
        zmq_msg_init(msg);
        if (zmq_msg_recv(msg, s, ZMQ_DONTWAIT) >= 0) return 0;
        zmq_msg_close(msg);
        if (zmq_errno() != EAGAIN && zmq_errno() != EINTR) return -1;
    }
}

/*
 * The exchange itself: connect a DEALER to ipc://<runtime>/control, send
 * {"cmd","args"}, wait for the reply. Returns CLI_OK with the whole reply
 * object in *reply (caller owns), or CLI_UNREACH with `why` filled (no agent,
 * no reply in time), or CLI_FAIL (a reply that is not a reply object).
 * `args` is stolen.
 */
static int client_exchange(cli_t *c, const char *cmd, json_t *args, int timeout_ms,
                           json_t **reply, char *why, size_t n)
{
    *reply = NULL;
    tr_err_t err = {0};
    if (!c->home && tr_home_open(&c->home, &err) != TR_OK) {
        json_decref(args);
        snprintf(why, n, "%s", err.msg);
        return CLI_FAIL;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/control", tr_home_runtime(c->home));
    json_t *req = json_pack("{s:s,s:o}", "cmd", cmd, "args", args ? args : json_object());
    char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!text) {
        snprintf(why, n, "out of memory");
        return CLI_FAIL;
    }
    if (!client_probe(path, why, n)) {
        free(text);
        return CLI_UNREACH;
    }

    int rc = CLI_UNREACH;
    void *ctx = zmq_ctx_new(), *s = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    char ep[PATH_MAX + 8];
    snprintf(ep, sizeof ep, "ipc://%s", path);
    int zero = 0;
    int64_t max = CLIENT_REPLY_MAX;
    zmq_msg_t msg;
    if (!s) {
        snprintf(why, n, "cannot create a ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        rc = CLI_FAIL;
    } else if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
               zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max, sizeof max) != 0 ||
               zmq_connect(s, ep) != 0 ||
               zmq_send(s, text, strlen(text), ZMQ_DONTWAIT) < 0) {
        snprintf(why, n, "the agent is not reachable on %s: %s", ep, zmq_strerror(zmq_errno()));
    } else if (client_recv(s, (int64_t)cli_mono_ms() + timeout_ms, &msg) != 0) {
        snprintf(why, n, "the agent is not responding (no reply on %s within %.1f s); is "
                         "trellisd running?", path, timeout_ms / 1000.0);
    } else {
        json_error_t je;
        *reply = json_loadb(zmq_msg_data(&msg), zmq_msg_size(&msg), 0, &je);
        zmq_msg_close(&msg);
        if (!json_is_object(*reply) || !json_is_boolean(json_object_get(*reply, "ok"))) {
            json_decref(*reply);
            *reply = NULL;
            snprintf(why, n, "the agent sent a reply that is not a control reply");
            rc = CLI_FAIL;
        } else {
            rc = CLI_OK;
        }
    }
    if (s) zmq_close(s);
    if (ctx) zmq_ctx_term(ctx);
    free(text);
    return rc;
}

int cli_agent_try(cli_t *c, const char *cmd, json_t *args, int timeout_ms, json_t **result,
                  char *why, size_t n)
{
    json_t *reply;
    *result = NULL;
    int rc = client_exchange(c, cmd, args, timeout_ms, &reply, why, n);
    if (rc) return rc;
    if (json_is_true(json_object_get(reply, "ok"))) {
        json_t *r = json_object_get(reply, "result");
        *result = json_incref(r ? r : json_null());
        json_decref(reply);
        return CLI_OK;
    }
    json_t *e = json_object_get(reply, "error");
    const char *code = json_string_value(json_object_get(e, "code"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    snprintf(why, n, "%s", msg && msg[0] ? msg : code ? code : "the agent refused the request");
    rc = code && strcmp(code, "invalid") == 0 ? CLI_USAGE : CLI_FAIL;
    json_decref(reply);
    return rc;
}

int cli_agent_call(cli_t *c, const char *cmd, json_t *args, int timeout_ms, json_t **result)
{
    char why[1024];
    int rc = cli_agent_try(c, cmd, args, timeout_ms, result, why, sizeof why);
    if (rc == CLI_USAGE) return cli_usage(c, "%s", why);
    if (rc) cli_fail(c, NULL, "%s", why);
    return rc;
}

/*
 * Tells the agent that this process wrote to the repository at `root`, so it
 * pushes the new ops to its peers now rather than at its next poll. Silent
 * and best effort by design: the write already succeeded, the agent may not
 * run, and it polls the stores anyway.
 */
void cli_wrote(cli_t *c, const char *root, const char *branch)
{
    json_t *args = json_pack("{s:s}", "path", root), *result = NULL;
    if (!args) return;
    if (branch) json_object_set_new(args, "branch", json_string(branch));
    char why[1024];
    (void)cli_agent_try(c, "changed", args, CLI_AGENT_NOTIFY_MS, &result, why, sizeof why);
    json_decref(result);
}

int cli_abspath(cli_t *c, const char *path, char out[PATH_MAX])
{
    if (realpath(path, out)) return CLI_OK;
    /* Missing (a clone's target, a repository since deleted): absolute by
     * prefixing the working directory, with "." and ".." folded lexically. */
    char buf[2 * PATH_MAX];
    if (path[0] == '/') {
        snprintf(buf, sizeof buf, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) return cli_fail(c, path, "%s", strerror(errno));
        snprintf(buf, sizeof buf, "%s/%s", cwd, path);
    }
    size_t o = 0;
    char *save = NULL;
    out[0] = '\0';
    for (char *part = strtok_r(buf, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (strcmp(part, ".") == 0) continue;
        if (strcmp(part, "..") == 0) {
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
            out[o] = '\0';
            continue;
        }
        size_t len = strlen(part);
        if (o + 1 + len >= PATH_MAX) return cli_fail(c, path, "path too long");
        out[o++] = '/';
        memcpy(out + o, part, len + 1);
        o += len;
    }
    if (o == 0) snprintf(out, PATH_MAX, "/");
    return CLI_OK;
}
