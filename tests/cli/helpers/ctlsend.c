/* ctlsend.c — a test helper that throws arbitrary bytes at a ZeroMQ endpoint
 * (the agent's control socket, or its CURVE port as a plaintext client) and
 * prints what comes back. Built by the tests with cc; not part of trellis.
 *
 *   ctlsend [-t MS] ENDPOINT FRAME...   one message, one part per FRAME:
 *                                        TEXT as is, @N N bytes of 'x',
 *                                        %HEX raw bytes, '' an empty part
 *   ctlsend --stale PATH                 leaves a unix socket file at PATH
 *                                        that nobody listens on
 *
 * Prints each reply part on its own line; exits 0 when a reply came, 1 when
 * none did within MS (default 3000), 2 on a usage or socket error. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The bytes of one FRAME argument; caller frees *out. */
static size_t frame_bytes(const char *arg, char **out)
{
    size_t n;
    if (arg[0] == '@') {
        n = strtoul(arg + 1, NULL, 10);
        *out = malloc(n + 1);
        memset(*out, 'x', n);
    } else if (arg[0] == '%') {
        size_t len = strlen(arg + 1) / 2;
        *out = malloc(len + 1);
        for (n = 0; n < len; n++) {
            int hi = hexval(arg[1 + 2 * n]), lo = hexval(arg[2 + 2 * n]);
            if (hi < 0 || lo < 0) break;
            (*out)[n] = (char)(hi << 4 | lo);
        }
    } else {
        n = strlen(arg);
        *out = strdup(arg);
    }
    return n;
}

static int stale(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) return 2;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror(path);
        return 2;
    }
    close(fd); /* the file stays; nobody listens */
    return 0;
}

int main(int argc, char **argv)
{
    int timeout = 3000, i = 1;
    if (argc == 3 && strcmp(argv[1], "--stale") == 0) return stale(argv[2]);
    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        timeout = atoi(argv[2]);
        i = 3;
    }
    if (argc - i < 2) {
        fprintf(stderr, "usage: ctlsend [-t MS] ENDPOINT FRAME...\n");
        return 2;
    }
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(s, argv[i]) != 0) {
        fprintf(stderr, "ctlsend: %s: %s\n", argv[i], zmq_strerror(zmq_errno()));
        return 2;
    }
    for (int k = i + 1; k < argc; k++) {
        char *b;
        size_t n = frame_bytes(argv[k], &b);
        zmq_send(s, b, n, k + 1 < argc ? ZMQ_SNDMORE : 0);
        free(b);
    }
    int rc = 1;
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, timeout) == 1) {
        int more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, s, 0) < 0) break;
            fwrite(zmq_msg_data(&m), 1, zmq_msg_size(&m), stdout);
            fputc('\n', stdout);
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        rc = 0;
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}
