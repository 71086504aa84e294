/* cmd_import.c — `trellis op import`: bulk append from JSON lines. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../core/tr_json.h"

#define IMP_CHUNK ((size_t)1 << 20)    /* read size */
#define IMP_LINE_MAX ((size_t)4 << 20) /* longest line accepted */
#define IMP_BATCH_MAX 100000

static const char import_help[] =
    "Usage: trellis op import [FILE|-] [--branch BRANCH] [--batch N] [--json]\n"
    "\n"
    "Appends ops read as JSON lines from FILE (default, or '-': standard input),\n"
    "one object per line:\n"
    "\n"
    "  {\"kind\": \"triple.add\", \"target\": \"user:42\", \"body\": {...}, \"branch\": \"main\"}\n"
    "\n"
    "kind and target are required; body defaults to null and branch to\n"
    "--branch. Other fields are refused; blank lines are skipped. Ops are\n"
    "committed in batches of N consecutive lines on the same branch, each\n"
    "batch in one durable transaction whose last op is signed (and every\n"
    "1000th op of yours). Prints how many ops were appended.\n"
    "\n"
    "A bad line stops the import: the message names the line, and nothing\n"
    "from the batch holding it onwards is written; earlier batches stay.\n"
    "\n"
    "Options:\n"
    "  --branch BRANCH  branch for lines without one (default main)\n"
    "  --batch N        ops per transaction, 1 to 100000 (default 1000)\n"
    "  --json           print {\"appended\": N, \"lines\": N, \"batches\": N}, and\n"
    "                   \"error\": {\"line\", \"message\"} when a line was refused\n"
    "  -h, --help       show this help\n"
    "\n"
    "Exit status: 0 all appended; 1 a line was refused or writing failed (the\n"
    "message says what was written); 2 usage error.\n";

/* Where one op's bytes are in its batch's arena (offsets survive growth). */
typedef struct {
    size_t kind, kind_len, target, target_len, body, body_len;
} imp_op_t;

/* Up to `batch` ops of one branch from consecutive lines. */
typedef struct {
    tr_buf_t arena; /* kind, target and body bytes */
    imp_op_t *ops;
    tr_op_spec_t *specs;
    size_t n;
    char branch[TR_BRANCH_MAX + 1];
    uint64_t first_line, last_line;
} imp_batch_t;

/*
 * Parsing and committing overlap: this thread parses lines into batch slot
 * `filled % IMP_SLOTS` while a writer thread commits the slots before it, in
 * order. A slot is reused only once the writer is done with it. After a
 * writer failure no further batch is committed; after a bad line the batches
 * before it still are (they are complete and earlier in the file).
 */
#define IMP_SLOTS 3

typedef struct {
    tr_store_t *store;
    const tr_identity_t *id;
    const char *def_branch;
    size_t batch;
    imp_batch_t slot[IMP_SLOTS];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* under mu: */
    uint64_t filled;  /* batches handed to the writer */
    uint64_t written; /* batches the writer has finished with */
    bool done;        /* no more batches will come */
    bool failed;      /* the writer failed: werr */
    tr_err_t werr;
    uint64_t appended, batches, committed_line;
} imp_t;

typedef struct {
    int fd;
    char *buf;
    size_t cap, start, end;
    bool eof;
} imp_reader_t;

/* Next line (without '\n' or a trailing '\r'). 1 = a line, 0 = end of
 * input, <0 = error with the reason in *why. */
static int imp_next(imp_reader_t *r, const char **line, size_t *len, const char **why)
{
    for (;;) {
        char *s = r->buf + r->start;
        char *nl = memchr(s, '\n', r->end - r->start);
        if (nl || (r->eof && r->start < r->end)) {
            size_t n = nl ? (size_t)(nl - s) : r->end - r->start;
            r->start += n + (nl != NULL);
            if (n && s[n - 1] == '\r') n--;
            *line = s;
            *len = n;
            return 1;
        }
        if (r->eof) return 0;
        if (r->start > 0) { /* keep the partial line, make room behind it */
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        if (r->end == r->cap) {
            if (r->cap >= IMP_LINE_MAX) return *why = "line longer than 4 MiB", -1;
            char *b = realloc(r->buf, r->cap * 2);
            if (!b) return *why = "out of memory", -1;
            r->buf = b;
            r->cap *= 2;
        }
        ssize_t got = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return *why = strerror(errno), -1;
        if (got == 0) r->eof = true;
        r->end += (size_t)got;
    }
}

/* The writer thread: commits each handed-over batch with one tr_store_write. */
static void *imp_writer(void *arg)
{
    imp_t *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->written == m->filled && !m->done)
            pthread_cond_wait(&m->cv, &m->mu);
        if (m->written == m->filled) break;
        imp_batch_t *b = &m->slot[m->written % IMP_SLOTS];
        pthread_mutex_unlock(&m->mu);

        const char *a = (const char *)b->arena.data;
        for (size_t i = 0; i < b->n; i++) {
            const imp_op_t *p = &b->ops[i];
            b->specs[i] = (tr_op_spec_t){
                a + p->kind, p->kind_len, a + p->target, p->target_len, b->arena.data + p->body,
                p->body_len};
        }
        tr_err_t err = {0};
        int rc =
            tr_store_write(m->store, b->branch, b->specs, b->n, m->id, cli_now_ms(), NULL, &err);

        pthread_mutex_lock(&m->mu);
        if (rc) {
            m->failed = true;
            m->werr = err;
            tr_err_prefix(&m->werr, rc,
                          "writing lines %llu-%llu: ", (unsigned long long)b->first_line,
                          (unsigned long long)b->last_line);
        } else {
            m->appended += b->n;
            m->batches++;
            m->committed_line = b->last_line;
        }
        m->written++;
        pthread_cond_broadcast(&m->cv);
        if (rc) break;
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static imp_batch_t *imp_cur(imp_t *m)
{
    return &m->slot[m->filled % IMP_SLOTS]; /* the producer's own: see imp_submit */
}

/* Hands the current batch to the writer and waits until the next slot is
 * free. IMP_WRITER_FAILED if the writer has failed (nothing more will be
 * written; its error is in m->werr). */
#define IMP_WRITER_FAILED 1
static int imp_submit(imp_t *m)
{
    pthread_mutex_lock(&m->mu);
    m->filled++;
    pthread_cond_broadcast(&m->cv);
    while (m->filled - m->written >= IMP_SLOTS && !m->failed)
        pthread_cond_wait(&m->cv, &m->mu);
    bool failed = m->failed;
    pthread_mutex_unlock(&m->mu);
    imp_batch_t *b = imp_cur(m);
    b->n = 0;
    tr_buf_reset(&b->arena);
    return failed ? IMP_WRITER_FAILED : TR_OK;
}

/*
 * jansson allocates a dozen small blocks per line and frees them all at the
 * json_decref that ends the line. While importing, its allocations come from
 * a bump arena that is reset after each line (blocks that do not fit fall
 * back to malloc). Only this thread uses jansson during an import.
 */
#define IMP_JARENA ((size_t)256 << 10)
static struct {
    uint8_t *base;
    size_t used;
} imp_jarena;

static void *imp_jmalloc(size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (imp_jarena.base && need <= IMP_JARENA - imp_jarena.used) {
        void *p = imp_jarena.base + imp_jarena.used;
        imp_jarena.used += need;
        return p;
    }
    return malloc(n);
}

static void imp_jfree(void *p)
{
    uint8_t *b = p;
    if (imp_jarena.base && b >= imp_jarena.base && b < imp_jarena.base + IMP_JARENA) return;
    free(p);
}

static bool imp_key(const char *k, size_t n, const char *want)
{
    return strlen(want) == n && memcmp(k, want, n) == 0;
}

/*
 * Parses one line and adds its op to the current batch, handing the batch
 * over first when the branch changes or the batch is full. The op is checked
 * with tr_op_validate (the store's own rules) so a bad line is refused here,
 * with its number, rather than failing a whole batch inside the store.
 * IMP_WRITER_FAILED (and no message) if the writer has failed.
 */
static int imp_line(imp_t *m, const char *text, size_t len, uint64_t lineno, tr_err_t *err)
{
    json_error_t je;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!v) return tr_err_set(err, TR_EMALFORMED, "column %d: %s", je.column, je.text);
    int rc = TR_OK;
    const char *k;
    size_t klen;
    json_t *f, *kind = NULL, *target = NULL, *body = NULL, *branch = NULL;
    if (!json_is_object(v)) {
        rc = tr_err_set(err, TR_EINVAL, "expected a JSON object");
        goto done;
    }
    json_object_keylen_foreach(v, k, klen, f)
    {
        json_t **slot = imp_key(k, klen, "kind")     ? &kind
                        : imp_key(k, klen, "target") ? &target
                        : imp_key(k, klen, "body")   ? &body
                        : imp_key(k, klen, "branch") ? &branch
                                                     : NULL;
        if (!slot) {
            rc = tr_err_set(err, TR_EINVAL,
                            "unknown field \"%.*s\" (expected kind, target, body, branch)",
                            (int)(klen > 64 ? 64 : klen), k);
            goto done;
        }
        if (slot != &body && !json_is_string(f)) {
            rc = tr_err_set(err, TR_EINVAL, "\"%s\" must be a string", k);
            goto done;
        }
        *slot = f;
    }
    if (!kind || !target) {
        rc = tr_err_set(err, TR_EINVAL, "\"%s\" is missing", kind ? "target" : "kind");
        goto done;
    }
    const char *bname = branch ? json_string_value(branch) : m->def_branch;
    size_t blen = branch ? json_string_length(branch) : strlen(bname);
    imp_batch_t *b = imp_cur(m);
    if (b->n && (b->n == m->batch || strlen(b->branch) != blen || memcmp(b->branch, bname, blen))) {
        if ((rc = imp_submit(m))) goto done;
        b = imp_cur(m);
    }

    size_t start = b->arena.len;
    imp_op_t *p = &b->ops[b->n];
    p->kind = start;
    p->kind_len = json_string_length(kind);
    p->target = p->kind + p->kind_len;
    p->target_len = json_string_length(target);
    p->body = p->target + p->target_len;
    static const uint8_t nil = 0xc0;
    if (tr_buf_append(&b->arena, json_string_value(kind), p->kind_len) ||
        tr_buf_append(&b->arena, json_string_value(target), p->target_len)) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory");
    } else if (body) {
        if ((rc = tr_json_pack(body, 0, &b->arena, err))) tr_err_prefix(err, rc, "body: ");
    } else if (tr_buf_append(&b->arena, &nil, 1)) {
        rc = tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    if (rc) {
        b->arena.len = start;
        goto done;
    }
    p->body_len = b->arena.len - p->body;

    /* The body is canonical by construction (tr_json_pack), so a nil stands
     * in for it and only the other fields are checked again. */
    tr_op_t op = {0};
    op.branch = bname;
    op.branch_len = blen;
    op.seq = op.lamport = 1;
    op.kind = (const char *)b->arena.data + p->kind;
    op.kind_len = p->kind_len;
    op.target = (const char *)b->arena.data + p->target;
    op.target_len = p->target_len;
    op.body = &nil;
    op.body_len = 1;
    if ((rc = tr_op_validate(&op, err))) {
        b->arena.len = start;
        goto done;
    }
    if (b->n == 0) {
        memcpy(b->branch, bname, blen);
        b->branch[blen] = '\0';
        b->first_line = lineno;
    }
    b->last_line = lineno;
    b->n++;
done:
    json_decref(v);
    imp_jarena.used = 0;
    return rc;
}

/* Reads every line, hands over the last batch, and tells the writer that no
 * more will come. A bad line or unreadable input leaves its error in `err`
 * (with *bad_line set for a line); writer failures are in m->werr. */
static void imp_feed(imp_t *m, imp_reader_t *rd, const char *file, uint64_t *lines,
                     uint64_t *bad_line, tr_err_t *err)
{
    const char *line, *why = NULL;
    size_t len;
    int r, rc = TR_OK;
    if ((imp_jarena.base = malloc(IMP_JARENA))) json_set_alloc_funcs(imp_jmalloc, imp_jfree);
    while ((r = imp_next(rd, &line, &len, &why)) == 1) {
        ++*lines;
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i < len && (rc = imp_line(m, line, len, *lines, err))) break;
    }
    json_set_alloc_funcs(malloc, free);
    free(imp_jarena.base);
    imp_jarena.base = NULL;
    if (r < 0)
        tr_err_set(err, TR_EIO, "%s: reading after line %llu: %s", file, (unsigned long long)*lines,
                   why);
    else if (rc < 0)
        *bad_line = *lines;
    else if (rc == TR_OK && imp_cur(m)->n)
        (void)imp_submit(m); /* a writer failure shows in m->werr */
    pthread_mutex_lock(&m->mu);
    m->done = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* Prints the outcome: what was appended, and on failure what was not. */
static int imp_report(cli_t *c, const imp_t *m, bool json, uint64_t lines, uint64_t bad_line,
                      const tr_err_t *line_err)
{
    /* The writer's failure, if any, comes first in the file. */
    const tr_err_t *fail = m->failed ? &m->werr : line_err->code ? line_err : NULL;
    if (m->failed) bad_line = 0;
    uint64_t done_line = fail ? m->committed_line : lines;
    if (fail) {
        if (bad_line)
            cli_fail(c, NULL, "line %llu: %s", (unsigned long long)bad_line, fail->msg);
        else
            cli_fail_err(c, NULL, fail);
        if (m->appended)
            fprintf(stderr,
                    "trellis: op import: %llu ops appended (lines 1-%llu); nothing from "
                    "line %llu on was written\n",
                    (unsigned long long)m->appended, (unsigned long long)done_line,
                    (unsigned long long)done_line + 1);
        else
            fprintf(stderr, "trellis: op import: nothing was written\n");
    }
    int rc;
    if (json) {
        json_t *out = json_pack("{s:I, s:I, s:I}", "appended", (json_int_t)m->appended, "lines",
                                (json_int_t)done_line, "batches", (json_int_t)m->batches);
        if (out && fail)
            json_object_set_new(
                out, "error",
                json_pack("{s:o, s:s}", "line",
                          bad_line ? json_integer((json_int_t)bad_line) : json_null(), "message",
                          fail->msg));
        rc = cli_json_out(c, out, false);
    } else {
        if (!fail) printf("appended %llu ops\n", (unsigned long long)m->appended);
        rc = cli_flush(c, CLI_OK);
    }
    return fail ? CLI_FAIL : rc;
}

static int imp_run(cli_t *c, int argc, char **argv)
{
    static const struct option opts[] = {{"branch", required_argument, NULL, 'B'},
                                         {"batch", required_argument, NULL, 'n'},
                                         CLI_OPT_JSON,
                                         CLI_OPT_HELP,
                                         CLI_OPT_END};
    imp_t m = {.def_branch = "main",
               .batch = 1000,
               .mu = PTHREAD_MUTEX_INITIALIZER,
               .cv = PTHREAD_COND_INITIALIZER};
    bool json = false;
    uint64_t v;
    int o, rc;
    while ((o = cli_getopt(c, argc, argv, "h", opts)) != -1) {
        switch (o) {
        case 'B':
            m.def_branch = optarg;
            break;
        case 'n':
            if ((rc = cli_parse_u64(c, "--batch", optarg, 1, IMP_BATCH_MAX, &v))) return rc;
            m.batch = (size_t)v;
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
    if (argc - optind > 1) return cli_usage(c, "expected at most one FILE");
    const char *file = optind < argc ? argv[optind] : "-";

    imp_reader_t rd = {.fd = STDIN_FILENO, .cap = IMP_CHUNK};
    if (strcmp(file, "-") != 0 && (rd.fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
        return cli_fail(c, file, "%s", strerror(errno));
    tr_repo_t *repo;
    tr_identity_t *id;
    pthread_t writer;
    if ((rc = cli_repo(c, 0, &repo)) || (rc = cli_identity(c, true, &id))) goto out;
    m.store = tr_repo_store(repo);
    m.id = id;
    rd.buf = malloc(rd.cap);
    bool nomem = !rd.buf;
    for (size_t i = 0; i < IMP_SLOTS; i++) {
        m.slot[i].ops = malloc(m.batch * sizeof *m.slot[i].ops);
        m.slot[i].specs = malloc(m.batch * sizeof *m.slot[i].specs);
        nomem |= !m.slot[i].ops || !m.slot[i].specs;
    }
    if (nomem) {
        rc = cli_fail(c, NULL, "out of memory");
        goto out;
    }
    if (pthread_create(&writer, NULL, imp_writer, &m) != 0) {
        rc = cli_fail(c, NULL, "cannot start the writer thread");
        goto out;
    }
    tr_err_t err = {0};
    uint64_t lines = 0, bad_line = 0;
    imp_feed(&m, &rd, file, &lines, &bad_line, &err);
    pthread_join(writer, NULL);
    if (m.appended) cli_wrote(c, tr_repo_root(repo), NULL); /* also after a partial import */
    rc = imp_report(c, &m, json, lines, bad_line, &err);
out:
    if (rd.fd != STDIN_FILENO) close(rd.fd);
    free(rd.buf);
    for (size_t i = 0; i < IMP_SLOTS; i++) {
        free(m.slot[i].ops);
        free(m.slot[i].specs);
        tr_buf_free(&m.slot[i].arena);
    }
    return rc;
}

const cli_cmd_t cli_cmd_op_import = {"import", "append ops from JSON lines", import_help, imp_run,
                                     NULL};
