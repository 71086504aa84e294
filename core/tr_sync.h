/*
 * tr_sync.h — the sync protocol state machine of one session
 * (docs/protocol.md §3.4).
 *
 * Overview
 *   A tr_sync_t is one connection's protocol state, on either side. It is
 *   pure: frames come in as bytes (tr_sync_recv), frames go out through an
 *   outbox the caller drains (tr_sync_pop), and everything that touches a
 *   repository goes through the host callbacks in tr_sync_host_t (the agent
 *   implements them on the store; tests implement them in memory). Time
 *   enters only through tr_sync_tick().
 *
 *   Both directions run at once on one session: as *requester* it wants what
 *   the peer's `have` shows it lacks, integrates `ops` through the host and
 *   acks; as *responder* it answers the peer's `want`s by streaming `ops`
 *   with at most TR_WINDOW frames unacknowledged.
 *
 * Caveats
 *   - The session never blocks and never does I/O itself; host callbacks are
 *     synchronous and may do I/O.
 *   - A negative return from tr_sync_recv means the peer broke the protocol:
 *     the caller drops the peer (docs/protocol.md §3.6). `err` holds the
 *     one-line reason to log; a best-effort `nack` is already in the outbox.
 *   - The outbox is bounded: streaming pauses while it holds TR_SYNC_OUTBOX
 *     frames and resumes on tr_sync_pump().
 */
#ifndef TR_SYNC_H
#define TR_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tr_codec.h"
#include "tr_error.h"
#include "tr_op.h"
#include "tr_wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TR_SYNC_OUTBOX 16              /* frames */
#define TR_SYNC_FRAME_OPS 4096         /* ops per `ops` frame at most */
#define TR_SYNC_FRAME_BYTES (1u << 20) /* target raw batch bytes per frame */
#define TR_SYNC_WANT_BYTES (64u << 20) /* max_bytes of a `want` */
#define TR_SYNC_HELD_BYTES (8u << 20)  /* uncovered ops a requester holds */
#define TR_SYNC_MAX_BRANCHES 2048      /* (repository, branch) states per session */

typedef struct tr_sync tr_sync_t;

/* A host-owned iterator over the ops a `want` asks for. */
typedef struct tr_sync_cursor tr_sync_cursor_t;

/* Events a session reports to its host (for logs, the event log, peers). */
typedef enum {
    TR_SYNC_EV_HELLO,      /* peer's hello accepted: name, repos */
    TR_SYNC_EV_REFUSED,    /* an op of the peer refused: repo, branch, hash, code, text */
    TR_SYNC_EV_NACKED,     /* the peer nacked us: repo, branch, hash, reason, text */
    TR_SYNC_EV_DIVERGED,   /* linear branch diverged: repo, branch */
    TR_SYNC_EV_RECEIVED,   /* ops integrated: repo, branch, count */
    TR_SYNC_EV_COMPLETE,   /* a want was fully answered (final frame): repo, branch */
    TR_SYNC_EV_PROGRESS,   /* the peer acked: repo, branch, count, vv */
} tr_sync_event_type_t;

typedef struct {
    tr_sync_event_type_t type;
    const uint8_t *repo; /* may be NULL */
    const char *branch;  /* may be NULL */
    const uint8_t *hash; /* may be NULL */
    int code;            /* TR_E… for REFUSED */
    const char *reason;  /* token, for NACKED */
    const char *text;    /* human-readable detail */
    uint64_t count;
    const tr_vv_t *vv;   /* for PROGRESS */
    const tr_frame_t *hello;
} tr_sync_event_t;

/* What a session needs from the repositories it syncs. `host` is passed back
 * to every callback. Every callback returns TR_OK or a TR_E… code. */
typedef struct {
    void *host;

    /* Does this agent serve `repo` to this session's peer? */
    bool (*serves)(void *host, const uint8_t repo[TR_REPO_ID_LEN]);

    /* The served repository ids, sorted (for hello). Caller frees *ids. */
    int (*repos)(void *host, uint8_t (**ids)[TR_REPO_ID_LEN], size_t *n);

    /* Fills `out` (type have) for `repo`: every branch, or only `branch` when
     * non-NULL. The session frees it with tr_frame_clear. */
    int (*have)(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                tr_frame_t *out);

    /* Branch policy: linear or CRDT. */
    bool (*linear)(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch);

    /* Does the local store hold op `hash` on `branch`? */
    bool (*holds)(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                  const uint8_t hash[TR_HASH_LEN]);

    /* Responder: opens an iterator over what `want` asks for (ops after
     * after_hash on a linear branch; ops above `from` on a CRDT branch), in
     * (lamport, author, seq) order. TR_EDIVERGED if after_hash is not held. */
    int (*cursor_open)(void *host, const tr_frame_t *want, tr_sync_cursor_t **c, tr_err_t *err);

    /* Responder: the next ops, at most max_ops and about max_bytes of records;
     * *ops points at host-owned ops valid until the next call. *done is set
     * when nothing follows. */
    int (*cursor_next)(void *host, tr_sync_cursor_t *c, size_t max_ops, size_t max_bytes,
                       const tr_op_t *const **ops, size_t *n, bool *done, tr_err_t *err);

    void (*cursor_close)(void *host, tr_sync_cursor_t **c);

    /* Requester: the hash of the local op (author, seq) on the branch. */
    int (*prev)(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                const uint8_t author[TR_KEY_LEN], uint64_t seq, uint8_t hash[TR_HASH_LEN]);

    /* Requester: integrates records durably (tr_store_integrate semantics):
     * status[i] gets TR_INTEGRATED (0), TR_DUPLICATE (1) or a refusal code;
     * reasons go to `refuse`. Returns only when committed. */
    int (*integrate)(void *host, const uint8_t repo[TR_REPO_ID_LEN], const tr_rec_t *recs,
                     size_t n, int *status,
                     void (*refuse)(void *arg, size_t i, const uint8_t *hash, int code,
                                    const char *reason),
                     void *arg, tr_err_t *err);

    /* Requester: the local version vector of `branch` (sorted; the session
     * frees out->v). The ack carries the entries of the frame's authors.
     * Optional: NULL sends acks without vv entries. */
    int (*vv)(void *host, const uint8_t repo[TR_REPO_ID_LEN], const char *branch, tr_vv_t *out);

    /* Reports an event (optional). */
    void (*event)(void *host, const tr_sync_event_t *ev);
} tr_sync_host_t;

/* Creates a session. `name` is this agent's display name for hello; `host`
 * is copied. Caller owns the session. */
tr_sync_t *tr_sync_new(const tr_sync_host_t *host, const char *name);

/* NULL-safe; closes open cursors and frees held ops. */
void tr_sync_destroy(tr_sync_t **s);

/* Queues this side's hello. Call once, first. */
int tr_sync_start(tr_sync_t *s, tr_err_t *err);

/* Processes one received frame. TR_OK, or a negative code meaning "drop the
 * peer" with the reason in `err` (a nack is queued when one applies). */
int tr_sync_recv(tr_sync_t *s, const uint8_t *frame, size_t len, tr_err_t *err);

/* A local change on (repo, branch): queues a `have` for that branch (push).
 * No-op before the hellos or for repos the peer does not share. */
int tr_sync_changed(tr_sync_t *s, const uint8_t repo[TR_REPO_ID_LEN], const char *branch,
                    tr_err_t *err);

/* The set of repositories this agent serves changed: queues a new hello
 * (docs/protocol.md §3.2) and a have for every newly shared repository. */
int tr_sync_served_changed(tr_sync_t *s, tr_err_t *err);

/* Anti-entropy: queues a full `have` for every shared repository, and asks
 * again for wants that went unanswered for two ticks (a lost frame). */
int tr_sync_tick(tr_sync_t *s, tr_err_t *err);

/* Continues streaming if the window and outbox allow. */
int tr_sync_pump(tr_sync_t *s, tr_err_t *err);

/* Pops the next outgoing frame into `out` (reset first). Returns true if
 * there was one. */
bool tr_sync_pop(tr_sync_t *s, tr_buf_t *out);

/* True once both hellos were exchanged. */
bool tr_sync_established(const tr_sync_t *s);

/* True when nothing is in flight: no outstanding want, no open stream, empty
 * outbox (used by tests and `sync now` to detect quiescence). */
bool tr_sync_idle(const tr_sync_t *s);

/* Calls fn for each branch the peer reported in a `have`, with the op count
 * it reported (for progress displays). fn returning non-zero stops. */
typedef int (*tr_sync_branch_fn)(void *arg, const uint8_t repo[TR_REPO_ID_LEN],
                                 const char *branch, uint64_t peer_count);
void tr_sync_peer_branches(const tr_sync_t *s, tr_sync_branch_fn fn, void *arg);

/* The peer's hello (valid once established), or NULL. */
const tr_frame_t *tr_sync_peer_hello(const tr_sync_t *s);

#ifdef __cplusplus
}
#endif
#endif
