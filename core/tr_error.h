/*
 * tr_error.h — trellis error codes and error detail.
 *
 * Overview
 *   Every fallible trellis function returns 0 (TR_OK) on success or a negative
 *   TR_E… code. Codes of the libraries underneath (LMDB, libzmq, libsodium,
 *   errno) are mapped to these at the module boundary; callers never see them.
 *
 *   Where a user deserves to know *what* was wrong ("op 3f2a…: seq 7 leaves a
 *   gap after 5"), functions also take an optional `tr_err_t *` as their last
 *   argument and fill it with the code and a one-line message. Passing NULL is
 *   always allowed.
 *
 * Caveats
 *   - tr_err_t is a plain value: no allocation, safe to copy, one per thread.
 *   - Messages never contain key material.
 */
#ifndef TR_ERROR_H
#define TR_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TR_MUST_CHECK __attribute__((warn_unused_result))
#else
#define TR_PRINTF(a, b)
#define TR_MUST_CHECK
#endif

enum {
    TR_OK = 0,
    TR_EINVAL = -1,      /* invalid argument or usage */
    TR_ENOMEM = -2,      /* out of memory */
    TR_EIO = -3,         /* an operating-system I/O error */
    TR_ENOTFOUND = -4,   /* no such op, branch, file or entry */
    TR_EEXIST = -5,      /* already exists */
    TR_EMALFORMED = -6,  /* bytes that do not decode */
    TR_ENONCANON = -7,   /* decodes, but not in canonical form */
    TR_ETOOBIG = -8,     /* exceeds a size or count limit */
    TR_EHASH = -9,       /* a hash does not match the content */
    TR_ESIG = -10,       /* a signature does not verify */
    TR_EUNSIGNED = -11,  /* no signature vouches for the op */
    TR_ESEQ = -12,       /* seq leaves a gap or repeats */
    TR_EPREV = -13,      /* prev is not the author's previous op */
    TR_EPARENT = -14,    /* a parent is unknown or invalid */
    TR_EEQUIVOCATION = -15, /* two different ops with one author, branch and seq */
    TR_EDIVERGED = -16,  /* a linear branch would diverge */
    TR_ELAMPORT = -17,   /* lamport timestamp does not exceed its causes */
    TR_EREPO = -18,      /* op or remote belongs to another repository */
    TR_ENOTREPO = -19,   /* path is not a trellis repository */
    TR_EPERM = -20,      /* unsafe file permissions, or access denied */
    TR_ENOSPC = -21,     /* disk or map full and cannot grow */
    TR_ECORRUPT = -22,   /* the store is inconsistent */
    TR_ECONFIG = -23,    /* invalid configuration */
    TR_EKIND = -24,      /* unknown op kind */
    TR_EBODY = -25,      /* op body has the wrong shape for its kind */
    TR_EIMMUTABLE = -26, /* edit of an immutable field */
    TR_EVERSION = -27,   /* unsupported format or protocol version */
    TR_EBUSY = -28,      /* resource busy, try again */
    TR_ESTORE = -29,     /* an unexpected storage-engine error */
    TR_EPROTO = -30,     /* protocol violation */
    TR_EUNREACH = -31,   /* the agent or peer cannot be reached */
    TR_ECRYPTO = -32,    /* cryptographic library failure */
    TR_ELAST = -33
};

/* Error detail: the code and a one-line, human-readable reason. */
typedef struct {
    int code;
    char msg[512];
} tr_err_t;

/* Returns a static, non-NULL description of `code` (any int is accepted). */
const char *tr_strerror(int code);

/* Returns a short stable token for `code` ("seq", "signature", …), used on the
 * wire (nack reasons) and in JSON output. */
const char *tr_errname(int code);

/* Fills `err` (if non-NULL) and returns `code`, so callers can write
 * `return tr_err_set(err, TR_ESEQ, "seq %llu …", …);`. */
int tr_err_set(tr_err_t *err, int code, const char *fmt, ...) TR_PRINTF(3, 4);

/* Prefixes the message already in `err` with more context ("op 3f2a…: ").
 * Returns err->code (or `code` when err is NULL). */
int tr_err_prefix(tr_err_t *err, int code, const char *fmt, ...) TR_PRINTF(3, 4);

/* Clears `err` to TR_OK with an empty message. NULL-safe. */
void tr_err_clear(tr_err_t *err);

#ifdef __cplusplus
}
#endif
#endif
