/* cmd_events.c — `trellis events`: reads, filters and follows the agent's
 * event log (agent/lib/tr_events.h, docs/events.md).
 *
 * Reading goes through tr_events_read, so it works whether or not the agent
 * runs. Following keeps the current events.jsonl open and polls it: lines
 * appended to the open file are read from where the last read stopped, and
 * a rotation (the path now names another inode) or a truncation (the file
 * shrank under our offset) is handled by draining the old file, then
 * catching up through tr_events_read from the last id seen — which also
 * covers a second rotation between two polls — and reading the new file
 * from its start. Every event is passed on at most once: ids increase, and
 * anything at or below the last id seen is skipped.
 *
 * Ids are consecutive, so a jump (id > last + 1 after the first event) means
 * a read raced with a rotation: tr_events_read walks the files oldest first
 * by name, and a rotation in the middle moves unread events into a name it
 * already passed. The read then stops at the jump and starts again from the
 * last id; only when the jump persists (the events were deleted before
 * anyone read them: a reader slower than four rotations) is it accepted,
 * with a warning. */
#include "cli.h"

#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../lib/tr_events.h"

#define EV_POLL_MS 200
#define EV_LAST_MAX 1000000
#define EV_TYPES_MAX 32
#define EV_RETRIES 5 /* reads that may stop at a jump in the ids */

static const char events_help[] =
    "Usage: trellis events [--follow] [--since ID] [--last N] [--type T]...\n"
    "                      [--json]\n"
    "\n"
    "Shows the agent's event log (docs/events.md), oldest first, one line per\n"
    "event:\n"
    "\n"
    "  ID  TIME  TYPE  PEER  FIELD=VALUE...\n"
    "\n"
    "PEER is the peer's name, or the fingerprint of its id. The log is read\n"
    "from the state directory ($XDG_STATE_HOME/trellis/events.jsonl and its\n"
    "rotated files .1 to .4, or $TRELLIS_HOME/state/), so it works whether\n"
    "or not the agent runs.\n"
    "\n"
    "Options:\n"
    "  -f, --follow   keep running and show new events as the agent writes\n"
    "                 them, across rotations of the log; stop with Ctrl-C or\n"
    "                 SIGTERM (exit 0)\n"
    "  --since ID     only events after ID (ids increase by one per event)\n"
    "  -n, --last N   only the last N of the events already written (0: none;\n"
    "                 with --follow, only new ones)\n"
    "  -t, --type T   only events of type T; T may be a glob ('peer.*') or a\n"
    "                 comma-separated list, and the option may repeat. A T\n"
    "                 that matches no event type is a usage error.\n"
    "  --json         one JSON array of the event objects ({\"id\", \"time\",\n"
    "                 \"type\", ...fields}); with --follow, one JSON object per\n"
    "                 line instead (JSON lines), flushed as each arrives\n"
    "  -h, --help     show this help\n"
    "\n"
    "Event types: agent.started agent.stopping discovery.on discovery.off\n"
    "peer.discovered peer.lost peer.connected peer.disconnected peer.untrusted\n"
    "ops.received sync.complete conflict op.refused branch.diverged.\n"
    "\n"
    "Exit status: 0 ok (also when there are no events); 1 the log cannot be\n"
    "read; 2 usage error.\n";

/* Every type the agent writes (docs/events.md); --type is checked against it. */
static const char *const ev_known[] = {
    "agent.started", "agent.stopping", "discovery.on",      "discovery.off",   "peer.discovered",
    "peer.lost",     "peer.connected", "peer.disconnected", "peer.untrusted",  "ops.received",
    "sync.complete", "conflict",       "op.refused",        "branch.diverged", NULL};

typedef struct {
    cli_t *c;
    bool json, follow;
    char *types[EV_TYPES_MAX];
    size_t ntypes;
    uint64_t last; /* highest id seen, printed or filtered out */
    bool seen;     /* an event was seen: from now on ids must be consecutive */
    bool strict;   /* a jump in the ids stops the read (gap = true) */
    bool gap;
    uint64_t n;    /* events printed */
    json_t **ring; /* --last: the newest `cap` matching events of the backlog */
    size_t cap, nring, head;
    bool ringing; /* collecting the backlog into the ring */
    bool failed;
} ev_ctx_t;

static volatile sig_atomic_t ev_stop;

static void ev_on_signal(int sig)
{
    (void)sig;
    ev_stop = 1;
}

static bool ev_type_ok(const ev_ctx_t *x, const char *type)
{
    if (x->ntypes == 0) return true;
    for (size_t i = 0; i < x->ntypes; i++)
        if (fnmatch(x->types[i], type, 0) == 0) return true;
    return false;
}

/* Adds the patterns of one --type value (comma-separated). */
static int ev_add_types(ev_ctx_t *x, const char *arg)
{
    char *copy = strdup(arg), *save = NULL;
    if (!copy) return cli_fail(x->c, NULL, "out of memory");
    int rc = CLI_OK;
    for (char *p = strtok_r(copy, ",", &save); p && !rc; p = strtok_r(NULL, ",", &save)) {
        bool any = false;
        for (size_t k = 0; ev_known[k] && !any; k++)
            any = fnmatch(p, ev_known[k], 0) == 0;
        if (!any)
            rc = cli_usage(x->c, "--type '%s' matches no event type (see 'trellis events --help')",
                           p);
        else if (x->ntypes == EV_TYPES_MAX)
            rc = cli_usage(x->c, "at most %d --type patterns", EV_TYPES_MAX);
        else if (!(x->types[x->ntypes] = strdup(p)))
            rc = cli_fail(x->c, NULL, "out of memory");
        else
            x->ntypes++;
    }
    free(copy);
    return rc;
}

/* A string value as is when it reads unambiguously after "key=", quoted as
 * JSON otherwise (empty, spaces, quotes, '=', control characters). */
static void ev_put_value(json_t *v)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        bool plain = s[0] != '\0';
        for (const char *p = s; *p && plain; p++)
            plain = (unsigned char)*p > ' ' && *p != '"' && *p != '=' && *p != '\\' && *p != 0x7f;
        if (plain) {
            fputs(s, stdout);
            return;
        }
    }
    json_dumpf(v, stdout, JSON_COMPACT | JSON_ENCODE_ANY);
}

static const char *ev_color(const ev_ctx_t *x, const char *type)
{
    static const char *const bad[] = {"op.refused", "branch.diverged", "conflict", NULL};
    static const char *const warn[] = {"peer.untrusted", "discovery.off", "peer.lost",
                                       "peer.disconnected", NULL};
    for (size_t i = 0; bad[i]; i++)
        if (strcmp(type, bad[i]) == 0) return cli_c(x->c, CLI_RED);
    for (size_t i = 0; warn[i]; i++)
        if (strcmp(type, warn[i]) == 0) return cli_c(x->c, CLI_YELLOW);
    return cli_c(x->c, CLI_GREEN);
}

/* One event as a text line: id, time, type, who, then the other fields. */
static void ev_print_text(ev_ctx_t *x, json_t *e, const char *type)
{
    json_t *id = json_object_get(e, "id"), *time = json_object_get(e, "time");
    json_t *peer = json_object_get(e, "peer"), *name = json_object_get(e, "name");
    json_t *raw = NULL; /* a "peer" that is not a peer id: shown as a field */
    printf("%" JSON_INTEGER_FORMAT "  %s  %s%s%s", json_integer_value(id),
           json_is_string(time) ? json_string_value(time) : "-", ev_color(x, type), type,
           cli_c(x->c, CLI_RESET));
    /* The type column is padded only when something follows it. */
    static const char spaces[] = "                 "; /* the column's width */
    size_t tlen = strlen(type);
    const char *sep = tlen < sizeof spaces - 1 ? spaces + tlen : "";
    if (json_is_string(name) && json_string_length(name)) {
        printf("%s  ", sep);
        sep = "";
        ev_put_value(name);
    } else if (json_is_string(peer)) {
        uint8_t key[TR_KEY_LEN];
        char fp[TR_FINGERPRINT_STRLEN + 1];
        tr_err_t err = {0};
        if (tr_peer_id_parse(json_string_value(peer), key, &err) == TR_OK) {
            tr_peer_fingerprint(fp, key);
            printf("%s  %s", sep, fp);
            sep = "";
        } else {
            raw = peer;
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach(e, k, v)
    {
        if (!strcmp(k, "id") || !strcmp(k, "time") || !strcmp(k, "type")) continue;
        if ((!strcmp(k, "name") || !strcmp(k, "peer")) && v != raw) continue;
        printf("%s  %s=", sep, k);
        sep = "";
        ev_put_value(v);
    }
    fputc('\n', stdout);
}

static void ev_print(ev_ctx_t *x, json_t *e)
{
    const char *type = json_string_value(json_object_get(e, "type"));
    if (x->json && x->follow) {
        json_dumpf(e, stdout, JSON_COMPACT);
        fputc('\n', stdout);
    } else if (x->json) {
        fputs(x->n ? ",\n" : "\n", stdout);
        json_dumpf(e, stdout, JSON_COMPACT);
    } else {
        ev_print_text(x, e, type ? type : "?");
    }
    x->n++;
    if (ferror(stdout)) x->failed = true;
}

/* tr_events_fn, and the line handler of --follow: skips what was seen,
 * filters, prints (or keeps for --last). Stops the read when stdout fails. */
static int ev_visit(void *arg, json_t *e)
{
    ev_ctx_t *x = arg;
    json_t *idv = json_object_get(e, "id");
    json_t *typev = json_object_get(e, "type");
    if (!json_is_integer(idv) || json_integer_value(idv) <= 0 || !json_is_string(typev))
        return 0; /* not an event line: written by something else */
    uint64_t id = (uint64_t)json_integer_value(idv);
    if (id <= x->last) return 0;
    if (x->seen && id > x->last + 1) {
        if (x->strict) {
            x->gap = true;
            return 1;
        }
        fprintf(stderr,
                "trellis events: events %llu to %llu were rotated away before they were read\n",
                (unsigned long long)x->last + 1, (unsigned long long)id - 1);
    }
    x->seen = true;
    x->last = id;
    if (!ev_type_ok(x, json_string_value(typev))) return 0;
    if (x->ringing) {
        if (x->cap == 0) return 0;
        size_t slot = (x->head + x->nring) % x->cap;
        if (x->nring == x->cap) {
            json_decref(x->ring[x->head]);
            slot = x->head;
            x->head = (x->head + 1) % x->cap;
        } else {
            x->nring++;
        }
        x->ring[slot] = json_incref(e);
        return 0;
    }
    ev_print(x, e);
    return x->failed ? 1 : 0;
}

/* Prints the events --last kept, oldest first, and empties the ring. */
static void ev_ring_flush(ev_ctx_t *x)
{
    for (size_t i = 0; i < x->nring; i++) {
        json_t *e = x->ring[(x->head + i) % x->cap];
        if (!x->failed) ev_print(x, e);
        json_decref(e);
    }
    x->nring = x->head = 0;
    x->ringing = false;
}

/* ---- --follow ------------------------------------------------------------ */

typedef struct {
    FILE *f;
    ino_t ino;
    dev_t dev;
    uint64_t last_line; /* id of the last complete line read, 0 if none */
} ev_tail_t;

static void ev_tail_close(ev_tail_t *t)
{
    if (t->f) fclose(t->f);
    t->f = NULL;
}

static bool ev_tail_open(ev_tail_t *t, const char *path)
{
    ev_tail_close(t);
    t->f = fopen(path, "re");
    struct stat st;
    if (!t->f || fstat(fileno(t->f), &st) != 0) {
        ev_tail_close(t);
        return false;
    }
    t->ino = st.st_ino;
    t->dev = st.st_dev;
    t->last_line = 0;
    return true;
}

/* The id at the start of a line as tr_events_emit writes it ({"id":N,…}),
 * or 0: lines at or below the last id are skipped without a JSON parse. */
static uint64_t ev_line_id(const char *line)
{
    if (strncmp(line, "{\"id\":", 6) != 0) return 0;
    char *end;
    unsigned long long v = strtoull(line + 6, &end, 10);
    return *end == ',' || *end == '}' ? (uint64_t)v : 0;
}

/* Reads the complete lines appended to the open file since the last call.
 * A partial last line (being written) is left for the next call, and so is
 * the line after a jump in the ids (x->gap: the caller catches up first). */
static void ev_tail_drain(ev_ctx_t *x, ev_tail_t *t, bool strict)
{
    x->gap = false;
    x->strict = strict;
    if (!t->f) return;
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        off_t at = ftello(t->f);
        ssize_t n = getline(&line, &cap, t->f);
        if (n <= 0) break;
        if (line[n - 1] != '\n') {
            fseeko(t->f, at, SEEK_SET);
            break;
        }
        uint64_t quick = ev_line_id(line);
        if (quick) t->last_line = quick;
        if (quick && quick <= x->last) continue;
        json_t *e = json_loadb(line, (size_t)n, 0, NULL);
        json_t *idv = json_object_get(e, "id");
        if (json_is_integer(idv) && json_integer_value(idv) > 0)
            t->last_line = (uint64_t)json_integer_value(idv);
        if (e) ev_visit(x, e);
        json_decref(e);
        if (x->gap) fseeko(t->f, at, SEEK_SET);
        if (x->failed || x->gap) break;
    }
    clearerr(t->f); /* past EOF: the next call reads what is appended */
    free(line);
}

/* Reads every retained file for events after x->last: the backlog, and
 * after a rotation (which may have happened more than once since the last
 * poll). A read that stops at a jump in the ids is repeated from the last
 * id; the last attempt accepts the jump. */
static int ev_catch_up(ev_ctx_t *x, const char *dir)
{
    for (int attempt = 0; attempt < EV_RETRIES; attempt++) {
        tr_err_t err = {0};
        x->gap = false;
        x->strict = attempt < EV_RETRIES - 1;
        int rc = tr_events_read(dir, x->last, ev_visit, x, &err);
        if (rc < 0) return cli_fail_err(x->c, NULL, &err);
        if (!x->gap) break;
    }
    x->gap = false;
    return CLI_OK;
}

/* Drains the open file; on a jump in its ids, catches up through every
 * file first, then drains what is left (accepting a jump that remains). */
static int ev_tail_read(ev_ctx_t *x, ev_tail_t *t, const char *dir)
{
    ev_tail_drain(x, t, true);
    if (!x->gap) return CLI_OK;
    int rc = ev_catch_up(x, dir);
    if (rc == CLI_OK) ev_tail_drain(x, t, false);
    return rc;
}

/* SIGINT, SIGTERM and SIGHUP end --follow cleanly (exit 0). */
static void ev_catch_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = ev_on_signal; /* no SA_RESTART: the poll's sleep ends at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
}

static int ev_follow(ev_ctx_t *x, const char *dir, ev_tail_t *t)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, TR_EVENTS_FILE);
    int rc = CLI_OK;
    while (!ev_stop && !x->failed && rc == CLI_OK) {
        rc = ev_tail_read(x, t, dir);
        struct stat st;
        if (rc == CLI_OK && stat(path, &st) == 0) {
            if (!t->f) {
                if (ev_tail_open(t, path)) rc = ev_tail_read(x, t, dir);
            } else if (st.st_ino != t->ino || st.st_dev != t->dev || st.st_size < ftello(t->f)) {
                /* Rotated or truncated: finish the old file, then open the
                 * new one before catching up, so nothing falls in between. */
                rc = ev_tail_read(x, t, dir);
                if (rc == CLI_OK && ev_tail_open(t, path)) {
                    rc = ev_catch_up(x, dir);
                    if (rc == CLI_OK) rc = ev_tail_read(x, t, dir);
                }
            } else if (t->last_line && t->last_line < x->last) {
                /* The current file — where the newest event is — ends
                 * below an id already shown: the log was deleted and begun
                 * again at id 1. Show it from its start. */
                fprintf(stderr, "trellis events: the event log was started again; "
                                "following it from its first event\n");
                x->last = 0;
                x->seen = false;
                rewind(t->f);
                t->last_line = 0;
                rc = ev_catch_up(x, dir);
                if (rc == CLI_OK) rc = ev_tail_read(x, t, dir);
            }
        }
        if (fflush(stdout) != 0) x->failed = true;
        if (ev_stop || x->failed || rc) break;
        struct timespec ts = {0, EV_POLL_MS * 1000000L};
        nanosleep(&ts, NULL);
    }
    return rc;
}

static int ev_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"follow", no_argument, NULL, 'f'},
                                         {"since", required_argument, NULL, 's'},
                                         {"last", required_argument, NULL, 'n'},
                                         {"type", required_argument, NULL, 't'},
                                         CLI_OPT_JSON,
                                         CLI_OPT_HELP,
                                         CLI_OPT_END};
    ev_ctx_t x = {.c = c};
    uint64_t last_n = 0;
    bool has_last = false;
    int o, rc = CLI_OK;
    while (rc == CLI_OK && (o = cli_getopt(c, argc, argv, "fn:t:h", opts)) != -1) {
        switch (o) {
        case 'f':
            x.follow = true;
            break;
        case 's':
            rc = cli_parse_u64(c, "--since", optarg, 0, INT64_MAX, &x.last);
            break;
        case 'n':
            rc = cli_parse_u64(c, "--last", optarg, 0, EV_LAST_MAX, &last_n);
            has_last = true;
            break;
        case 't':
            rc = ev_add_types(&x, optarg);
            break;
        case 'j':
            x.json = true;
            break;
        case 'h':
            rc = cli_help(c);
            goto out;
        default:
            rc = CLI_USAGE;
            break;
        }
    }
    if (rc) goto out;
    if (optind < argc) {
        rc = cli_usage(c, "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    tr_home_t *home;
    if ((rc = cli_home(c, &home))) goto out;
    const char *dir = tr_home_state(home);
    if (has_last) {
        x.cap = (size_t)last_n;
        x.ringing = true;
        if (x.cap && !(x.ring = calloc(x.cap, sizeof *x.ring))) {
            rc = cli_fail(c, NULL, "out of memory");
            goto out;
        }
    }

    /* Following: the current file is opened before the backlog is read, so
     * that whatever is appended meanwhile is read from it afterwards. */
    ev_tail_t t = {0};
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, TR_EVENTS_FILE);
    if (x.follow) {
        ev_catch_signals();
        ev_tail_open(&t, path);
    }

    if (x.json && !x.follow) fputs("[", stdout);
    rc = ev_catch_up(&x, dir);
    if (x.ringing) ev_ring_flush(&x);
    if (rc == CLI_OK && x.follow && !x.failed) {
        fflush(stdout);
        rc = ev_follow(&x, dir, &t);
    }
    ev_tail_close(&t);
    if (x.json && !x.follow) fputs(x.n ? "\n]\n" : "]\n", stdout);
    rc = cli_flush(c, x.failed ? CLI_FAIL : rc);
out:
    for (size_t i = 0; i < x.ntypes; i++)
        free(x.types[i]);
    for (size_t i = 0; i < x.nring; i++)
        json_decref(x.ring[(x.head + i) % x.cap]);
    free(x.ring);
    return rc;
}

const cli_cmd_t cli_cmd_events = {"events", "show or follow the agent's event log", events_help,
                                  ev_run, NULL};
