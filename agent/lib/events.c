/* events.c — the JSON-lines event log with rotation (see tr_events.h). */
#include "tr_events.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tr_log.h"

struct tr_events {
    char dir[4096];
    int fd;
    uint64_t next_id;
    uint64_t size;
};

static void path_of(char *out, size_t n, const char *dir, int gen)
{
    if (gen == 0)
        snprintf(out, n, "%s/%s", dir, TR_EVENTS_FILE);
    else
        snprintf(out, n, "%s/%s.%d", dir, TR_EVENTS_FILE, gen);
}

/* The id of the last complete line of a file, 0 if none. Reads only the
 * tail, so opening is O(1) in the log's size. */
static uint64_t last_id(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    char buf[65536];
    uint64_t id = 0;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        off_t off = st.st_size > (off_t)sizeof buf - 1 ? st.st_size - (off_t)sizeof buf + 1 : 0;
        ssize_t n = pread(fd, buf, sizeof buf - 1, off);
        if (n > 0) {
            buf[n] = '\0';
            /* Walk complete lines; keep the id of the last that parses. */
            char *line = buf, *nl;
            while ((nl = strchr(line, '\n'))) {
                *nl = '\0';
                json_t *j = json_loads(line, 0, NULL);
                json_t *v = j ? json_object_get(j, "id") : NULL;
                if (json_is_integer(v) && json_integer_value(v) > 0)
                    id = (uint64_t)json_integer_value(v);
                json_decref(j);
                line = nl + 1;
            }
        }
    }
    close(fd);
    return id;
}

int tr_events_open(const char *dir, tr_events_t **out, tr_err_t *err)
{
    *out = NULL;
    tr_events_t *ev = calloc(1, sizeof *ev);
    if (!ev) return tr_err_set(err, TR_ENOMEM, "out of memory");
    snprintf(ev->dir, sizeof ev->dir, "%s", dir);
    char path[4200];
    uint64_t id = 0;
    for (int g = 0; g <= TR_EVENTS_KEEP && id == 0; g++) {
        path_of(path, sizeof path, dir, g);
        id = last_id(path);
    }
    ev->next_id = id + 1;
    path_of(path, sizeof path, dir, 0);
    ev->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (ev->fd < 0) {
        int e = errno;
        free(ev);
        return tr_err_set(err, TR_EIO, "cannot open the event log %s: %s", path, strerror(e));
    }
    struct stat st;
    ev->size = fstat(ev->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    *out = ev;
    return TR_OK;
}

void tr_events_close(tr_events_t **evp)
{
    if (!evp || !*evp) return;
    if ((*evp)->fd >= 0) close((*evp)->fd);
    free(*evp);
    *evp = NULL;
}

/* Shifts events.jsonl.N up by one, dropping the oldest, and starts a new
 * file. On failure the current file simply keeps growing. */
static void rotate(tr_events_t *ev)
{
    char from[4200], to[4200];
    path_of(to, sizeof to, ev->dir, TR_EVENTS_KEEP);
    unlink(to);
    for (int g = TR_EVENTS_KEEP - 1; g >= 0; g--) {
        path_of(from, sizeof from, ev->dir, g);
        path_of(to, sizeof to, ev->dir, g + 1);
        if (rename(from, to) != 0 && errno != ENOENT) {
            tr_log_warn("cannot rotate %s: %s", from, strerror(errno));
            return;
        }
    }
    path_of(from, sizeof from, ev->dir, 0);
    int fd = open(from, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        tr_log_warn("cannot start a new event log %s: %s", from, strerror(errno));
        return;
    }
    close(ev->fd);
    ev->fd = fd;
    ev->size = 0;
}

uint64_t tr_events_emit(tr_events_t *ev, const char *type, json_t *fields)
{
    if (!ev) {
        json_decref(fields);
        return 0;
    }
    char ts[40];
    struct timespec t;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &t);
    gmtime_r(&t.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03ldZ", t.tv_nsec / 1000000);
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer((json_int_t)ev->next_id));
    json_object_set_new(o, "time", json_string(ts));
    json_object_set_new(o, "type", json_string(type));
    if (json_is_object(fields)) {
        const char *k;
        json_t *v;
        json_object_foreach(fields, k, v)
        {
            if (strcmp(k, "id") && strcmp(k, "time") && strcmp(k, "type"))
                json_object_set(o, k, v);
        }
    }
    json_decref(fields);
    char *line = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!line) return 0;
    size_t len = strlen(line);
    line[len] = '\n'; /* json_dumps' NUL becomes the newline: one write */
    uint64_t id = 0;
    if (ev->size + len + 1 > TR_EVENTS_ROTATE_BYTES && ev->size > 0) rotate(ev);
    ssize_t w = write(ev->fd, line, len + 1);
    if (w == (ssize_t)(len + 1)) {
        ev->size += (uint64_t)w;
        id = ev->next_id++;
        line[len] = '\0';
        tr_log_info("event %s", line);
    } else {
        tr_log_warn("cannot write the event log: %s", w < 0 ? strerror(errno) : "short write");
    }
    free(line);
    return id;
}

int tr_events_read(const char *dir, uint64_t since, tr_events_fn fn, void *arg, tr_err_t *err)
{
    for (int g = TR_EVENTS_KEEP; g >= 0; g--) {
        char path[4200];
        path_of(path, sizeof path, dir, g);
        FILE *f = fopen(path, "re");
        if (!f) {
            if (errno == ENOENT) continue;
            return tr_err_set(err, TR_EIO, "cannot read %s: %s", path, strerror(errno));
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        int rc = 0;
        while (!rc && (n = getline(&line, &cap, f)) > 0) {
            if (line[n - 1] != '\n') break; /* partial last line: being written */
            json_t *j = json_loadb(line, (size_t)n, 0, NULL);
            json_t *v = j ? json_object_get(j, "id") : NULL;
            if (json_is_integer(v) && (uint64_t)json_integer_value(v) > since) rc = fn(arg, j);
            json_decref(j);
        }
        free(line);
        fclose(f);
        if (rc) return rc;
    }
    return TR_OK;
}
