/* error.c — error codes, names and detail messages (see tr_error.h). */
#include "tr_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *name;
    const char *text;
} err_table[] = {
    {TR_OK, "ok", "success"},
    {TR_EINVAL, "invalid", "invalid argument"},
    {TR_ENOMEM, "nomem", "out of memory"},
    {TR_EIO, "io", "input/output error"},
    {TR_ENOTFOUND, "notfound", "not found"},
    {TR_EEXIST, "exists", "already exists"},
    {TR_EMALFORMED, "malformed", "malformed encoding"},
    {TR_ENONCANON, "noncanonical", "encoding is not canonical"},
    {TR_ETOOBIG, "toobig", "exceeds a size limit"},
    {TR_EHASH, "hash", "hash does not match content"},
    {TR_ESIG, "signature", "bad signature"},
    {TR_EUNSIGNED, "unsigned", "op is not covered by a signature of its author"},
    {TR_ESEQ, "seq", "seq out of order"},
    {TR_EPREV, "prev", "prev is not the author's previous op"},
    {TR_EPARENT, "parent", "unknown or invalid parent"},
    {TR_EEQUIVOCATION, "equivocation", "author equivocated (two ops with one seq)"},
    {TR_EDIVERGED, "diverged", "linear branch diverged"},
    {TR_ELAMPORT, "lamport", "lamport timestamp does not exceed its causes"},
    {TR_EREPO, "repo", "belongs to another repository"},
    {TR_ENOTREPO, "notrepo", "not a trellis repository"},
    {TR_EPERM, "permission", "unsafe permissions or access denied"},
    {TR_ENOSPC, "nospace", "no space left"},
    {TR_ECORRUPT, "corrupt", "store is inconsistent"},
    {TR_ECONFIG, "config", "invalid configuration"},
    {TR_EKIND, "kind", "unknown op kind"},
    {TR_EBODY, "body", "op body has the wrong shape for its kind"},
    {TR_EIMMUTABLE, "immutable", "field is immutable"},
    {TR_EVERSION, "version", "unsupported version"},
    {TR_EBUSY, "busy", "resource busy"},
    {TR_ESTORE, "store", "storage engine error"},
    {TR_EPROTO, "protocol", "protocol violation"},
    {TR_EUNREACH, "unreachable", "cannot be reached"},
    {TR_ECRYPTO, "crypto", "cryptographic failure"},
};

static int err_index(int code)
{
    for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
        if (err_table[i].code == code) return (int)i;
    return -1;
}

const char *tr_strerror(int code)
{
    int i = err_index(code);
    return i < 0 ? "unknown error" : err_table[i].text;
}

const char *tr_errname(int code)
{
    int i = err_index(code);
    return i < 0 ? "unknown" : err_table[i].name;
}

int tr_err_set(tr_err_t *err, int code, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    } else {
        snprintf(err->msg, sizeof err->msg, "%s", tr_strerror(code));
    }
    return code;
}

int tr_err_prefix(tr_err_t *err, int code, const char *fmt, ...)
{
    if (!err) return code;
    char head[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    if (err->code == TR_OK) err->code = code;
    memcpy(old, err->msg, sizeof old);
    if (!old[0]) snprintf(old, sizeof old, "%s", tr_strerror(err->code));
    /* Truncation is acceptable: the message stays NUL-terminated. */
    size_t hn = strnlen(head, sizeof err->msg - 1);
    memcpy(err->msg, head, hn);
    size_t on = strnlen(old, sizeof err->msg - 1 - hn);
    memcpy(err->msg + hn, old, on);
    err->msg[hn + on] = '\0';
    return err->code;
}

void tr_err_clear(tr_err_t *err)
{
    if (!err) return;
    err->code = TR_OK;
    err->msg[0] = '\0';
}
