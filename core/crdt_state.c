/* crdt_state.c — materialized state: applying ops to canonical state bytes,
 * and reading states back (see tr_crdt.h and docs/crdt.md §4–§5).
 *
 * Every state is a short msgpack array whose first element is its tag. The
 * apply functions read the old state with the strict reader (a corrupt state
 * is reported, never trusted), then write the new state in one pass into the
 * caller's buffer, copying untouched runs of entries as raw bytes. Nothing
 * is allocated except when the caller's buffer grows, and when an old
 * register state must be converted after a strategy change (rare). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tr_crdt.h"

/* ---- stamps ------------------------------------------------------------ */

/* Total order of writes: (lamport, author, seq), then the op hash, so even
 * two ops of an equivocating author get one deterministic order. */
static int cs_cmp(uint64_t al, const uint8_t *aa, uint64_t as, const uint8_t *ah, uint64_t bl,
                  const uint8_t *ba, uint64_t bs, const uint8_t *bh)
{
    if (al != bl) return al < bl ? -1 : 1;
    int c = memcmp(aa, ba, TR_KEY_LEN);
    if (c) return c < 0 ? -1 : 1;
    if (as != bs) return as < bs ? -1 : 1;
    c = memcmp(ah, bh, TR_HASH_LEN);
    return c < 0 ? -1 : c > 0;
}

static int cs_cmp_entry(const tr_crdt_entry_t *a, const tr_crdt_entry_t *b)
{
    return cs_cmp(a->lamport, a->author, a->seq, a->hash, b->lamport, b->author, b->seq, b->hash);
}

/* The op as an entry (its value is the op's value, or `value` for files and
 * deletions). */
static tr_crdt_entry_t cs_op_entry(const tr_crdt_op_t *v, const uint8_t *value, size_t value_len)
{
    return (tr_crdt_entry_t){v->lamport, v->author, v->seq, v->hash, value, value_len};
}

/* Bytewise order with a proper prefix first: the order of set elements. */
static int cs_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c) return c < 0 ? -1 : 1;
    return an < bn ? -1 : an > bn;
}

/* ---- reading ----------------------------------------------------------- */

static int cs_corrupt(tr_err_t *err, const tr_rd_t *r, const char *why)
{
    return tr_err_set(err, TR_ECORRUPT, "invalid state: %s", r && r->why ? r->why : why);
}

/* The five fields lamport, author, seq, hash, value (an entry without its
 * array header, as inlined in a REG state). */
static int cs_rd_fields(tr_rd_t *r, tr_crdt_entry_t *e)
{
    const uint8_t *p;
    size_t l;
    if (tr_rd_uint(r, &e->lamport) || tr_rd_bin(r, &p, &l, TR_KEY_LEN, TR_KEY_LEN)) return r->code;
    e->author = p;
    if (tr_rd_uint(r, &e->seq) || tr_rd_bin(r, &p, &l, TR_HASH_LEN, TR_HASH_LEN)) return r->code;
    e->hash = p;
    return tr_rd_value(r, &e->value, &e->value_len);
}

static int cs_rd_entry(tr_rd_t *r, tr_crdt_entry_t *e)
{
    uint32_t n;
    if (tr_rd_array(r, &n)) return r->code;
    if (n != 5) return tr_rd_fail(r, TR_ECORRUPT, "an entry must have 5 elements");
    return cs_rd_fields(r, e);
}

/* Reads the header [tag, …] and checks tag and element count. */
static int cs_rd_head(tr_rd_t *r, int tag, uint32_t count)
{
    uint32_t n;
    uint64_t t;
    if (tr_rd_array(r, &n) || tr_rd_uint(r, &t)) return r->code;
    if (t != (uint64_t)tag || n != count)
        return tr_rd_fail(r, TR_ECORRUPT, "unexpected state tag or size");
    return TR_OK;
}

/* The tag of a state without reading all of it (0 if it has none). */
static int cs_peek_tag(const uint8_t *s, size_t n)
{
    if (n < 2 || s[0] < 0x92 || s[0] > 0x96 || s[1] < TR_CRDT_S_TRIPLE || s[1] > TR_CRDT_S_COUNTER)
        return 0;
    return s[1];
}

/* Iterates over the entries of REG, FIRST, MANUAL, RESTRICT and LIST
 * states (validating stamp order); other tags have none. */
typedef struct {
    tr_rd_t r;
    uint32_t left;
    bool single; /* REG/FIRST: the entry is inline */
    tr_crdt_entry_t prev;
    bool has_prev;
} cs_it_t;

static int cs_it_init(cs_it_t *it, const uint8_t *s, size_t n, int *tag_out)
{
    uint32_t cnt;
    uint64_t tag;
    memset(it, 0, sizeof *it);
    tr_rd_init(&it->r, s, n);
    if (tr_rd_array(&it->r, &cnt) || cnt < 2 || tr_rd_uint(&it->r, &tag))
        return tr_rd_fail(&it->r, TR_ECORRUPT, "not a state");
    *tag_out = (int)(tag > 99 ? 99 : tag);
    switch (tag) {
    case TR_CRDT_S_REG:
    case TR_CRDT_S_FIRST:
        if (cnt != 6) return tr_rd_fail(&it->r, TR_ECORRUPT, "a register has 6 elements");
        it->single = true;
        it->left = 1;
        return TR_OK;
    case TR_CRDT_S_MANUAL:
    case TR_CRDT_S_RESTRICT: {
        uint32_t ns;
        if (cnt != 3 || tr_rd_array(&it->r, &ns))
            return tr_rd_fail(&it->r, TR_ECORRUPT, "malformed multi-value register");
        for (uint32_t i = 0; i < ns; i++) {
            const uint8_t *sp;
            size_t sl;
            uint32_t two;
            if (tr_rd_array(&it->r, &two) || two != 2 || tr_rd_value(&it->r, &sp, &sl) ||
                tr_rd_value(&it->r, &sp, &sl))
                return tr_rd_fail(&it->r, TR_ECORRUPT, "malformed seen vector");
        }
        break;
    }
    case TR_CRDT_S_LIST:
        if (cnt != 2) return tr_rd_fail(&it->r, TR_ECORRUPT, "a list has 2 elements");
        break;
    case TR_CRDT_S_TRIPLE:
    case TR_CRDT_S_SET:
    case TR_CRDT_S_COUNTER:
        it->left = 0;
        return TR_OK;
    default:
        return tr_rd_fail(&it->r, TR_ECORRUPT, "unknown state tag");
    }
    if (tr_rd_array(&it->r, &it->left)) return it->r.code;
    if (it->left == 0 && it->r.p != it->r.end)
        return tr_rd_fail(&it->r, TR_ECORRUPT, "trailing bytes after the entries");
    return TR_OK;
}

/* 1 with the next entry, 0 at the end, or a negative code. */
static int cs_it_next(cs_it_t *it, tr_crdt_entry_t *e)
{
    if (it->left == 0) return it->r.code;
    it->left--;
    if (it->single ? cs_rd_fields(&it->r, e) : cs_rd_entry(&it->r, e)) return it->r.code;
    if (it->has_prev && cs_cmp_entry(&it->prev, e) >= 0)
        return tr_rd_fail(&it->r, TR_ECORRUPT, "entries out of order");
    it->prev = *e;
    it->has_prev = true;
    if (it->left == 0 && it->r.p != it->r.end)
        return tr_rd_fail(&it->r, TR_ECORRUPT, "trailing bytes after the entries");
    return 1;
}

/* ---- writing ----------------------------------------------------------- */

typedef struct {
    msgpack_packer pk;
    tr_buf_t *b;
    int bad;
} cs_w_t;

static void cs_w_init(cs_w_t *w, tr_buf_t *b)
{
    tr_packer_init(&w->pk, b);
    w->b = b;
    w->bad = 0;
}

static void cs_w_array(cs_w_t *w, size_t n)
{
    w->bad |= msgpack_pack_array(&w->pk, n);
}

static void cs_w_uint(cs_w_t *w, uint64_t v)
{
    w->bad |= msgpack_pack_uint64(&w->pk, v);
}

static void cs_w_int(cs_w_t *w, int64_t v)
{
    w->bad |= v >= 0 ? msgpack_pack_uint64(&w->pk, (uint64_t)v) : msgpack_pack_int64(&w->pk, v);
}

static void cs_w_bin(cs_w_t *w, const uint8_t *p, size_t n)
{
    w->bad |= tr_pack_bin(&w->pk, p, n);
}

static void cs_w_raw(cs_w_t *w, const uint8_t *p, size_t n)
{
    w->bad |= tr_buf_append(w->b, p, n) ? 1 : 0;
}

static void cs_w_fields(cs_w_t *w, const tr_crdt_entry_t *e)
{
    cs_w_uint(w, e->lamport);
    cs_w_bin(w, e->author, TR_KEY_LEN);
    cs_w_uint(w, e->seq);
    cs_w_bin(w, e->hash, TR_HASH_LEN);
    cs_w_raw(w, e->value, e->value_len);
}

static void cs_w_entry(cs_w_t *w, const tr_crdt_entry_t *e)
{
    cs_w_array(w, 5);
    cs_w_fields(w, e);
}

static int cs_w_done(cs_w_t *w, tr_crdt_effect_t *eff, tr_crdt_effect_kind_t kind, tr_err_t *err)
{
    if (w->bad) {
        w->b->len = 0;
        return tr_err_set(err, TR_ENOMEM, "out of memory writing state");
    }
    eff->kind = kind;
    return TR_OK;
}

static int cs_refuse(tr_crdt_effect_t *eff, int code, const char *fmt, ...) TR_PRINTF(3, 4);
static int cs_refuse(tr_crdt_effect_t *eff, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(eff->reason, sizeof eff->reason, fmt, ap);
    va_end(ap);
    eff->kind = TR_CRDT_REFUSED;
    eff->code = code;
    return TR_OK;
}

/* ---- triples: [1, add_lamport, remove_lamport] --------------------------- */

static int ap_triple(const tr_crdt_op_t *v, const uint8_t *old, size_t len, tr_buf_t *out,
                     tr_crdt_effect_t *eff, tr_err_t *err)
{
    uint64_t add = 0, rem = 0;
    if (old) {
        tr_rd_t r;
        tr_rd_init(&r, old, len);
        if (cs_rd_head(&r, TR_CRDT_S_TRIPLE, 3) || tr_rd_uint(&r, &add) || tr_rd_uint(&r, &rem) ||
            r.p != r.end)
            return cs_corrupt(err, &r, "triple");
    }
    uint64_t *slot = v->kind == TR_CRDT_TRIPLE_ADD ? &add : &rem;
    if (v->lamport <= *slot) return TR_OK;
    *slot = v->lamport;
    cs_w_t w;
    cs_w_init(&w, out);
    cs_w_array(&w, 3);
    cs_w_uint(&w, TR_CRDT_S_TRIPLE);
    cs_w_uint(&w, add);
    cs_w_uint(&w, rem);
    return cs_w_done(&w, eff, TR_CRDT_CHANGED, err);
}

/* ---- single-value registers: [tag, lamport, author, seq, hash, value] ---- */

static int cs_rd_reg(const uint8_t *old, size_t len, int tag, tr_crdt_entry_t *e, tr_err_t *err)
{
    tr_rd_t r;
    tr_rd_init(&r, old, len);
    if (cs_rd_head(&r, tag, 6) || cs_rd_fields(&r, e) || r.p != r.end)
        return cs_corrupt(err, &r, "register");
    return TR_OK;
}

static int cs_w_reg(tr_buf_t *out, int tag, const tr_crdt_entry_t *e, tr_crdt_effect_t *eff,
                    tr_err_t *err)
{
    cs_w_t w;
    cs_w_init(&w, out);
    cs_w_array(&w, 6);
    cs_w_uint(&w, (uint64_t)tag);
    cs_w_fields(&w, e);
    return cs_w_done(&w, eff, TR_CRDT_CHANGED, err);
}

/* last_write_wins, files, entity deletions: the highest stamp is kept. */
static int ap_reg(const tr_crdt_entry_t *op, const uint8_t *old, size_t len, tr_buf_t *out,
                  tr_crdt_effect_t *eff, tr_err_t *err)
{
    if (old) {
        tr_crdt_entry_t cur;
        int rc = cs_rd_reg(old, len, TR_CRDT_S_REG, &cur, err);
        if (rc) return rc;
        if (cs_cmp_entry(op, &cur) <= 0) return TR_OK;
    }
    return cs_w_reg(out, TR_CRDT_S_REG, op, eff, err);
}

/* immutable: the lowest stamp is kept; a later write with another value is
 * refused (the same value again is harmless and leaves the state as is). */
static int ap_first(const tr_crdt_op_t *v, const tr_crdt_entry_t *op, const uint8_t *old,
                    size_t len, tr_buf_t *out, tr_crdt_effect_t *eff, tr_err_t *err)
{
    if (old) {
        tr_crdt_entry_t cur;
        int rc = cs_rd_reg(old, len, TR_CRDT_S_FIRST, &cur, err);
        if (rc) return rc;
        int c = cs_cmp_entry(op, &cur);
        if (c == 0) return TR_OK;
        if (c > 0) {
            if (op->value_len == cur.value_len && memcmp(op->value, cur.value, cur.value_len) == 0)
                return TR_OK;
            char h[17];
            tr_hash_short(h, cur.hash, 16);
            return cs_refuse(eff, TR_EIMMUTABLE,
                             "field \"%.*s\" is immutable: it was set by op %s at lamport %llu",
                             (int)(v->field.n > 64 ? 64 : v->field.n), v->field.p, h,
                             (unsigned long long)cur.lamport);
        }
    }
    return cs_w_reg(out, TR_CRDT_S_FIRST, op, eff, err);
}

/* ---- multi-value registers: [tag, [[author, seq]…], [entry…]] ----------- */

static bool cs_in_pred(const tr_crdt_op_t *v, const uint8_t *hash)
{
    size_t lo = 0, hi = v->npred;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(tr_crdt_pred_at(v, mid), hash, TR_HASH_LEN);
        if (c == 0) return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* A candidate is overwritten by the op if the op's pred names it and its
 * stamp is lower (a pred can only name a write the writer had seen, which
 * has a lower lamport; anything else is ignored). */
static bool cs_overwrites(const tr_crdt_op_t *v, const tr_crdt_entry_t *op,
                          const tr_crdt_entry_t *c)
{
    return v->npred && cs_cmp_entry(c, op) < 0 && cs_in_pred(v, c->hash);
}

/* manual_resolution and highest_restriction_wins. The state keeps the
 * candidates (writes no later write overwrote) and, per author, the highest
 * seq applied, which makes a repeated op a no-op without remembering every
 * overwritten hash: under the delivery contract (tr_crdt.h) an author's ops
 * arrive in seq order and a write's preds before it. */
static int ap_mv(const tr_crdt_op_t *v, int tag, const tr_crdt_entry_t *op, const uint8_t *old,
                 size_t len, tr_buf_t *out, tr_crdt_effect_t *eff, tr_err_t *err)
{
    tr_rd_t r;
    uint32_t nseen = 0, ncand = 0, removed = 0;
    const uint8_t *seen_start = NULL, *seen_end = NULL, *me_start = NULL, *me_end = NULL;
    const uint8_t *cand_start = NULL, *cand_end = NULL;
    uint64_t me_seq = 0;
    bool me_found = false;
    if (old) {
        tr_rd_init(&r, old, len);
        if (cs_rd_head(&r, tag, 3) || tr_rd_array(&r, &nseen)) return cs_corrupt(err, &r, "mv");
        seen_start = r.p;
        const uint8_t *prev = NULL;
        for (uint32_t i = 0; i < nseen; i++) {
            const uint8_t *at = r.p, *a;
            size_t al;
            uint32_t two;
            uint64_t s;
            if (tr_rd_array(&r, &two) || two != 2 || tr_rd_bin(&r, &a, &al, 32, 32) ||
                tr_rd_uint(&r, &s))
                return cs_corrupt(err, &r, "malformed seen vector");
            if (prev && memcmp(prev, a, TR_KEY_LEN) >= 0)
                return cs_corrupt(err, NULL, "seen vector out of order");
            prev = a;
            int c = memcmp(a, v->author, TR_KEY_LEN);
            if (c < 0) me_start = r.p; /* insert after this one */
            if (c == 0) {
                me_found = true;
                me_seq = s;
                me_start = at;
                me_end = r.p;
            }
        }
        seen_end = r.p;
        if (!me_start) me_start = seen_start;
        if (!me_found) me_end = me_start;
        if (tr_rd_array(&r, &ncand)) return cs_corrupt(err, &r, "mv");
        cand_start = r.p;
        tr_crdt_entry_t e, p = {0};
        for (uint32_t i = 0; i < ncand; i++) {
            if (cs_rd_entry(&r, &e)) return cs_corrupt(err, &r, "mv");
            if (i && cs_cmp_entry(&p, &e) >= 0)
                return cs_corrupt(err, NULL, "candidates out of order");
            p = e;
            removed += cs_overwrites(v, op, &e);
        }
        cand_end = r.p;
        if (r.p != r.end) return cs_corrupt(err, NULL, "trailing bytes");
    }
    if (me_found && me_seq >= v->seq) return TR_OK; /* seen: a repeat */

    cs_w_t w;
    cs_w_init(&w, out);
    cs_w_array(&w, 3);
    cs_w_uint(&w, (uint64_t)tag);
    cs_w_array(&w, nseen + !me_found);
    if (old) cs_w_raw(&w, seen_start, (size_t)(me_start - seen_start));
    cs_w_array(&w, 2);
    cs_w_bin(&w, v->author, TR_KEY_LEN);
    cs_w_uint(&w, v->seq);
    if (old) cs_w_raw(&w, me_end, (size_t)(seen_end - me_end));
    uint32_t nnew = ncand - removed + 1;
    cs_w_array(&w, nnew);
    bool placed = false;
    if (old) {
        tr_rd_init(&r, cand_start, (size_t)(cand_end - cand_start));
        for (uint32_t i = 0; i < ncand; i++) {
            const uint8_t *at = r.p;
            tr_crdt_entry_t e;
            (void)cs_rd_entry(&r, &e); /* validated above */
            if (cs_overwrites(v, op, &e)) continue;
            if (!placed && cs_cmp_entry(op, &e) < 0) {
                cs_w_entry(&w, op);
                placed = true;
            }
            cs_w_raw(&w, at, (size_t)(r.p - at));
        }
    }
    if (!placed) cs_w_entry(&w, op);
    tr_crdt_effect_kind_t k = TR_CRDT_CHANGED;
    if (tag == TR_CRDT_S_MANUAL) {
        if (ncand <= 1 && nnew >= 2) k = TR_CRDT_CONFLICT_OPENED;
        if (ncand >= 2 && nnew == 1) k = TR_CRDT_CONFLICT_CLOSED;
    }
    return cs_w_done(&w, eff, k, err);
}

/* ---- append lists: [6, [entry…]] --------------------------------------- */

/* Inserts the op in stamp order; the common case (the newest append) is a
 * copy of the old entries plus one. */
static int ap_list(const tr_crdt_entry_t *op, const uint8_t *old, size_t len, tr_buf_t *out,
                   tr_crdt_effect_t *eff, tr_err_t *err)
{
    uint32_t n = 0;
    const uint8_t *start = NULL, *ins = NULL, *end = NULL;
    if (old) {
        tr_rd_t r;
        tr_rd_init(&r, old, len);
        if (cs_rd_head(&r, TR_CRDT_S_LIST, 2) || tr_rd_array(&r, &n))
            return cs_corrupt(err, &r, "list");
        start = r.p;
        tr_crdt_entry_t e, p = {0};
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *at = r.p;
            if (cs_rd_entry(&r, &e)) return cs_corrupt(err, &r, "list");
            if (i && cs_cmp_entry(&p, &e) >= 0) return cs_corrupt(err, NULL, "list out of order");
            p = e;
            int c = cs_cmp_entry(op, &e);
            if (c == 0) return TR_OK; /* a repeat */
            if (c < 0 && !ins) ins = at;
        }
        end = r.p;
        if (r.p != r.end) return cs_corrupt(err, NULL, "trailing bytes");
        if (!ins) ins = end;
    }
    cs_w_t w;
    cs_w_init(&w, out);
    cs_w_array(&w, 2);
    cs_w_uint(&w, TR_CRDT_S_LIST);
    cs_w_array(&w, (size_t)n + 1);
    if (old) cs_w_raw(&w, start, (size_t)(ins - start));
    cs_w_entry(&w, op);
    if (old) cs_w_raw(&w, ins, (size_t)(end - ins));
    return cs_w_done(&w, eff, TR_CRDT_CHANGED, err);
}

/* ---- union sets: [7, [[value, add_lamport, remove_lamport]…]] ------------ */

static int ap_set(const tr_crdt_op_t *v, const uint8_t *old, size_t len, tr_buf_t *out,
                  tr_crdt_effect_t *eff, tr_err_t *err)
{
    uint32_t n = 0;
    uint64_t add = 0, rem = 0;
    bool found = false;
    const uint8_t *start = NULL, *at_elem = NULL, *after = NULL, *end = NULL;
    if (old) {
        tr_rd_t r;
        tr_rd_init(&r, old, len);
        if (cs_rd_head(&r, TR_CRDT_S_SET, 2) || tr_rd_array(&r, &n))
            return cs_corrupt(err, &r, "set");
        start = r.p;
        const uint8_t *pv = NULL;
        size_t pl = 0;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *at = r.p, *ev;
            size_t el;
            uint32_t three;
            uint64_t a, d;
            if (tr_rd_array(&r, &three) || three != 3 || tr_rd_value(&r, &ev, &el) ||
                tr_rd_uint(&r, &a) || tr_rd_uint(&r, &d))
                return cs_corrupt(err, &r, "set element");
            if (pv && cs_bytes_cmp(pv, pl, ev, el) >= 0)
                return cs_corrupt(err, NULL, "set out of order");
            pv = ev;
            pl = el;
            int c = cs_bytes_cmp(v->value, v->value_len, ev, el);
            if (c == 0) {
                found = true;
                add = a;
                rem = d;
                at_elem = at;
                after = r.p;
            } else if (c < 0 && !at_elem) {
                at_elem = after = at;
            }
        }
        end = r.p;
        if (r.p != r.end) return cs_corrupt(err, NULL, "trailing bytes");
        if (!at_elem) at_elem = after = end;
    }
    uint64_t *slot = v->kind == TR_CRDT_FIELD_ADD ? &add : &rem;
    if (v->lamport <= *slot) return TR_OK;
    *slot = v->lamport;
    cs_w_t w;
    cs_w_init(&w, out);
    cs_w_array(&w, 2);
    cs_w_uint(&w, TR_CRDT_S_SET);
    cs_w_array(&w, (size_t)n + !found);
    if (old) cs_w_raw(&w, start, (size_t)(at_elem - start));
    cs_w_array(&w, 3);
    cs_w_raw(&w, v->value, v->value_len);
    cs_w_uint(&w, add);
    cs_w_uint(&w, rem);
    if (old) cs_w_raw(&w, after, (size_t)(end - after));
    return cs_w_done(&w, eff, TR_CRDT_CHANGED, err);
}

/* ---- counters: [8, max_lamport, [[author, seq, sum]…]] ------------------- */

/* Per author the sum of its increments and the seq of the last one: its
 * increments arrive in seq order, so a seq not above the last is a repeat.
 * An increment that would take the author's sum out of int64 is refused
 * (deterministic: every replica sees that author's increments in one
 * order); the total is summed with saturation when read. */
static int ap_counter(const tr_crdt_op_t *v, const uint8_t *old, size_t len, tr_buf_t *out,
                      tr_crdt_effect_t *eff, tr_err_t *err)
{
    uint32_t n = 0;
    uint64_t maxl = 0, seq = 0;
    int64_t sum = 0;
    bool found = false;
    const uint8_t *start = NULL, *at_me = NULL, *after = NULL, *end = NULL;
    if (old) {
        tr_rd_t r;
        tr_rd_init(&r, old, len);
        if (cs_rd_head(&r, TR_CRDT_S_COUNTER, 3) || tr_rd_uint(&r, &maxl) || tr_rd_array(&r, &n))
            return cs_corrupt(err, &r, "counter");
        start = r.p;
        const uint8_t *prev = NULL;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *at = r.p, *a;
            size_t al;
            uint32_t three;
            uint64_t s;
            int64_t x;
            if (tr_rd_array(&r, &three) || three != 3 || tr_rd_bin(&r, &a, &al, 32, 32) ||
                tr_rd_uint(&r, &s) || tr_rd_int(&r, &x))
                return cs_corrupt(err, &r, "counter entry");
            if (prev && memcmp(prev, a, TR_KEY_LEN) >= 0)
                return cs_corrupt(err, NULL, "counter out of order");
            prev = a;
            int c = memcmp(v->author, a, TR_KEY_LEN);
            if (c == 0) {
                found = true;
                seq = s;
                sum = x;
                at_me = at;
                after = r.p;
            } else if (c < 0 && !at_me) {
                at_me = after = at;
            }
        }
        end = r.p;
        if (r.p != r.end) return cs_corrupt(err, NULL, "trailing bytes");
        if (!at_me) at_me = after = end;
    }
    if (found && v->seq <= seq) return TR_OK;
    int64_t nsum;
    if (__builtin_add_overflow(sum, v->n, &nsum))
        return cs_refuse(eff, TR_ETOOBIG,
                         "counter \"%.*s\": adding %lld to this author's %lld leaves the range "
                         "of a 64-bit integer",
                         (int)(v->field.n > 64 ? 64 : v->field.n), v->field.p, (long long)v->n,
                         (long long)sum);
    cs_w_t w;
    cs_w_init(&w, out);
    cs_w_array(&w, 3);
    cs_w_uint(&w, TR_CRDT_S_COUNTER);
    cs_w_uint(&w, v->lamport > maxl ? v->lamport : maxl);
    cs_w_array(&w, (size_t)n + !found);
    if (old) cs_w_raw(&w, start, (size_t)(at_me - start));
    cs_w_array(&w, 3);
    cs_w_bin(&w, v->author, TR_KEY_LEN);
    cs_w_uint(&w, v->seq);
    cs_w_int(&w, nsum);
    if (old) cs_w_raw(&w, after, (size_t)(end - after));
    return cs_w_done(&w, eff, TR_CRDT_CHANGED, err);
}

/* ---- strategy changes ---------------------------------------------------- */

static int cs_tag_of(tr_strategy_t s)
{
    switch (s) {
    case TR_STRATEGY_LWW:
        return TR_CRDT_S_REG;
    case TR_STRATEGY_IMMUTABLE:
        return TR_CRDT_S_FIRST;
    case TR_STRATEGY_MANUAL:
        return TR_CRDT_S_MANUAL;
    case TR_STRATEGY_RESTRICT:
        return TR_CRDT_S_RESTRICT;
    case TR_STRATEGY_APPEND:
        return TR_CRDT_S_LIST;
    case TR_STRATEGY_UNION:
        return TR_CRDT_S_SET;
    default:
        return 0;
    }
}

static bool cs_is_register(int tag)
{
    return tag >= TR_CRDT_S_REG && tag <= TR_CRDT_S_RESTRICT;
}

/* Rewrites a register-family state for another register strategy (the
 * config changed and the store has not rebuilt yet): REG keeps the highest
 * stamp, FIRST the lowest, MANUAL/RESTRICT take the entries as candidates
 * with each author's highest seq as seen. A rebuild gives the exact state. */
static int cs_convert(const uint8_t *old, size_t len, int want, tr_buf_t *tmp, tr_err_t *err)
{
    cs_it_t it;
    int tag, rc;
    tr_crdt_entry_t e, lo = {0}, hi = {0};
    size_t n = 0;
    if (cs_it_init(&it, old, len, &tag)) return cs_corrupt(err, &it.r, "state");
    while ((rc = cs_it_next(&it, &e)) == 1) {
        if (n == 0) lo = e;
        hi = e;
        n++;
    }
    if (rc < 0 || n == 0) return cs_corrupt(err, &it.r, "empty register");
    tr_crdt_effect_t dummy;
    if (want == TR_CRDT_S_REG || want == TR_CRDT_S_FIRST)
        return cs_w_reg(tmp, want, want == TR_CRDT_S_REG ? &hi : &lo, &dummy, err);
    /* to MANUAL/RESTRICT: seen = per author the highest seq among entries;
     * entries are in stamp order, not author order, so collect first. */
    typedef struct {
        const uint8_t *a;
        uint64_t s;
    } cs_seen_t;
    cs_seen_t seen[64];
    size_t ns = 0;
    if (cs_it_init(&it, old, len, &tag)) return cs_corrupt(err, &it.r, "state");
    while (cs_it_next(&it, &e) == 1) {
        size_t j = 0;
        while (j < ns && memcmp(seen[j].a, e.author, 32) != 0)
            j++;
        if (j == ns) {
            if (ns == 64) return tr_err_set(err, TR_ETOOBIG, "too many authors to convert");
            seen[ns].a = e.author;
            seen[ns++].s = e.seq;
        } else if (e.seq > seen[j].s) {
            seen[j].s = e.seq;
        }
    }
    for (size_t i = 1; i < ns; i++) /* insertion sort by author */
        for (size_t j = i; j > 0 && memcmp(seen[j - 1].a, seen[j].a, 32) > 0; j--) {
            cs_seen_t t = seen[j];
            seen[j] = seen[j - 1];
            seen[j - 1] = t;
        }
    cs_w_t w;
    cs_w_init(&w, tmp);
    cs_w_array(&w, 3);
    cs_w_uint(&w, (uint64_t)want);
    cs_w_array(&w, ns);
    for (size_t i = 0; i < ns; i++) {
        cs_w_array(&w, 2);
        cs_w_bin(&w, seen[i].a, 32);
        cs_w_uint(&w, seen[i].s);
    }
    cs_w_array(&w, n);
    (void)cs_it_init(&it, old, len, &tag);
    while (cs_it_next(&it, &e) == 1)
        cs_w_entry(&w, &e);
    return cs_w_done(&w, &dummy, TR_CRDT_CHANGED, err);
}

/* ---- dispatch ------------------------------------------------------------ */

static size_t cs_put_uint(uint8_t *b, uint64_t v)
{
    if (v <= 0x7f) {
        b[0] = (uint8_t)v;
        return 1;
    }
    int n = v <= 0xff ? 1 : v <= 0xffff ? 2 : v <= 0xffffffffu ? 4 : 8;
    b[0] = n == 1 ? 0xcc : n == 2 ? 0xcd : n == 4 ? 0xce : 0xcf;
    for (int i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return 1 + (size_t)n;
}

/* {"hash": bin32, "size": uint}: a file's materialized value. */
static size_t cs_file_value(uint8_t *b, const uint8_t hash[32], uint64_t size)
{
    size_t o = 0;
    b[o++] = 0x82;
    memcpy(b + o, "\xa4hash\xc4\x20", 7);
    o += 7;
    memcpy(b + o, hash, 32);
    o += 32;
    memcpy(b + o, "\xa4size", 5);
    o += 5;
    return o + cs_put_uint(b + o, size);
}

static const uint8_t cs_nil = 0xc0;

/* Field ops: look up the strategy, refuse kinds that do not fit it, convert
 * a register state left by another strategy, then apply by strategy. */
static int ap_field(const tr_crdt_op_t *v, const tr_strategies_t *st, const uint8_t *old,
                    size_t len, tr_buf_t *out, tr_crdt_effect_t *eff, tr_err_t *err)
{
    tr_strategy_t s = tr_strategies_lookup(st, v->field.p, v->field.n, NULL);
    const int fl = (int)(v->field.n > 64 ? 64 : v->field.n);
    const char *sn = tr_strategy_name(s);
    eff->strategy = s;
    switch (v->kind) {
    case TR_CRDT_FIELD_SET:
        if (s == TR_STRATEGY_APPEND)
            return cs_refuse(eff, TR_EKIND,
                             "field \"%.*s\" is append_wins: it takes field.append, not field.set",
                             fl, v->field.p);
        if (s == TR_STRATEGY_UNION)
            return cs_refuse(eff, TR_EKIND,
                             "field \"%.*s\" is union_merge: it takes field.add and field.remove, "
                             "not field.set",
                             fl, v->field.p);
        break;
    case TR_CRDT_FIELD_APPEND:
        if (s != TR_STRATEGY_APPEND)
            return cs_refuse(eff, TR_EKIND,
                             "field \"%.*s\" is %s: field.append needs an append_wins field", fl,
                             v->field.p, sn);
        break;
    default:
        if (s != TR_STRATEGY_UNION)
            return cs_refuse(eff, TR_EKIND, "field \"%.*s\" is %s: %s needs a union_merge field",
                             fl, v->field.p, sn, tr_crdt_kind_name(v->kind));
        break;
    }
    int want = cs_tag_of(s), have = old ? cs_peek_tag(old, len) : want;
    tr_buf_t tmp = {0};
    if (have != want) {
        if (have < TR_CRDT_S_REG || have > TR_CRDT_S_SET)
            return tr_err_set(err, TR_ECORRUPT, "invalid state: not a field state");
        if (!cs_is_register(have) || !cs_is_register(want)) {
            return cs_refuse(eff, TR_EKIND,
                             "field \"%.*s\" is now %s but its state was built for another "
                             "strategy: rebuild the materialized state",
                             fl, v->field.p, sn);
        }
        int rc = cs_convert(old, len, want, &tmp, err);
        if (rc) {
            tr_buf_free(&tmp);
            return rc;
        }
        old = tmp.data;
        len = tmp.len;
    }
    tr_crdt_entry_t op = cs_op_entry(v, v->value, v->value_len);
    int rc;
    switch (s) {
    case TR_STRATEGY_LWW:
        rc = ap_reg(&op, old, len, out, eff, err);
        break;
    case TR_STRATEGY_IMMUTABLE:
        rc = ap_first(v, &op, old, len, out, eff, err);
        break;
    case TR_STRATEGY_MANUAL:
    case TR_STRATEGY_RESTRICT:
        rc = ap_mv(v, want, &op, old, len, out, eff, err);
        break;
    case TR_STRATEGY_APPEND:
        rc = ap_list(&op, old, len, out, eff, err);
        break;
    default:
        rc = ap_set(v, old, len, out, eff, err);
        break;
    }
    if (tmp.data) {
        /* A converted state differs from the stored one even if the op
         * changed nothing: write the conversion. */
        if (rc == TR_OK && eff->kind == TR_CRDT_UNCHANGED) {
            tr_buf_reset(out);
            if (tr_buf_append(out, tmp.data, tmp.len)) rc = TR_ENOMEM;
            eff->kind = TR_CRDT_CHANGED;
        }
        tr_buf_free(&tmp);
    }
    return rc;
}

/* Dispatches on the op kind; field keys go through their strategy. */
int tr_crdt_apply(const tr_crdt_op_t *v, size_t i, const tr_strategies_t *st, const uint8_t *old,
                  size_t old_len, tr_buf_t *out, tr_crdt_effect_t *eff, tr_err_t *err)
{
    if (!v || !out || !eff || (old && old_len == 0))
        return tr_err_set(err, TR_EINVAL, "apply: bad arguments");
    eff->kind = TR_CRDT_UNCHANGED;
    eff->code = TR_OK;
    eff->strategy = TR_STRATEGY_LWW;
    eff->reason[0] = '\0';
    tr_buf_reset(out);
    if (i >= v->nkeys) return tr_err_set(err, TR_EINVAL, "apply: the op has no state key %zu", i);
    uint8_t fv[64];
    tr_crdt_entry_t op;
    switch (v->kind) {
    case TR_CRDT_TRIPLE_ADD:
    case TR_CRDT_TRIPLE_REMOVE:
        return ap_triple(v, old, old_len, out, eff, err);
    case TR_CRDT_FIELD_SET:
    case TR_CRDT_FIELD_APPEND:
    case TR_CRDT_FIELD_ADD:
    case TR_CRDT_FIELD_REMOVE:
        return ap_field(v, st, old, old_len, out, eff, err);
    case TR_CRDT_COUNTER_ADD:
        return ap_counter(v, old, old_len, out, eff, err);
    case TR_CRDT_FILE_ADD:
    case TR_CRDT_FILE_MODIFY:
    case TR_CRDT_FILE_RENAME:
        if (v->kind == TR_CRDT_FILE_RENAME && i == 1)
            op = cs_op_entry(v, &cs_nil, 1); /* the old path is gone */
        else
            op = cs_op_entry(v, fv, cs_file_value(fv, v->content_hash, v->size));
        return ap_reg(&op, old, old_len, out, eff, err);
    case TR_CRDT_FILE_DELETE:
    case TR_CRDT_ENTITY_DELETE:
        op = cs_op_entry(v, &cs_nil, 1);
        return ap_reg(&op, old, old_len, out, eff, err);
    default:
        return tr_err_set(err, TR_EINVAL, "apply: %s ops have no state",
                          tr_crdt_kind_name(v->kind));
    }
}

/* ---- reading state ----------------------------------------------------- */

static bool cs_is_nil(const tr_crdt_entry_t *e)
{
    return e->value_len == 1 && e->value[0] == 0xc0;
}

/* The body of tr_crdt_value: per state kind, what is visible after the
 * deletion filter, its value (written to w when non-NULL) and info. Lists
 * and conflicts take two passes (count, then write) instead of a buffer. */
static int cs_info_value(const tr_strategies_t *st, const uint8_t *s, size_t len, uint64_t tomb,
                         cs_w_t *w, tr_crdt_info_t *info, tr_err_t *err)
{
    cs_it_t it;
    tr_crdt_entry_t e;
    int tag, rc;
    tr_rd_t r;
    tr_rd_init(&r, s, len);
    switch (cs_peek_tag(s, len)) {
    case TR_CRDT_S_TRIPLE: {
        uint64_t add, rem;
        info->tag = TR_CRDT_S_TRIPLE;
        if (cs_rd_head(&r, TR_CRDT_S_TRIPLE, 3) || tr_rd_uint(&r, &add) || tr_rd_uint(&r, &rem) ||
            r.p != r.end)
            return cs_corrupt(err, &r, "triple");
        info->present = add > 0 && add >= rem;
        info->lamport = info->present ? add : 0;
        info->nvisible = info->present;
        if (w) w->bad |= info->present ? msgpack_pack_true(&w->pk) : msgpack_pack_false(&w->pk);
        return TR_OK;
    }
    case TR_CRDT_S_SET: {
        uint32_t n, nv = 0;
        info->tag = TR_CRDT_S_SET;
        for (int pass = 0; pass < 2; pass++) {
            tr_rd_init(&r, s, len);
            if (cs_rd_head(&r, TR_CRDT_S_SET, 2) || tr_rd_array(&r, &n))
                return cs_corrupt(err, &r, "set");
            if (pass == 1 && w && nv) cs_w_array(w, nv);
            for (uint32_t i = 0; i < n; i++) {
                const uint8_t *ev;
                size_t el;
                uint32_t three;
                uint64_t a, d;
                if (tr_rd_array(&r, &three) || three != 3 || tr_rd_value(&r, &ev, &el) ||
                    tr_rd_uint(&r, &a) || tr_rd_uint(&r, &d))
                    return cs_corrupt(err, &r, "set element");
                if (!(a > 0 && a >= d && a >= tomb)) continue;
                if (pass == 0) {
                    nv++;
                    if (a > info->lamport) info->lamport = a;
                } else if (w) {
                    cs_w_raw(w, ev, el);
                }
            }
            if (r.p != r.end) return cs_corrupt(err, NULL, "trailing bytes");
            if (nv == 0) break;
        }
        info->nvisible = nv;
        info->present = nv > 0;
        if (!info->present && w) cs_w_raw(w, &cs_nil, 1);
        return TR_OK;
    }
    case TR_CRDT_S_COUNTER: {
        uint64_t maxl;
        uint32_t n;
        int64_t total = 0;
        bool sat = false;
        info->tag = TR_CRDT_S_COUNTER;
        if (cs_rd_head(&r, TR_CRDT_S_COUNTER, 3) || tr_rd_uint(&r, &maxl) || tr_rd_array(&r, &n))
            return cs_corrupt(err, &r, "counter");
        /* Sum in order with a wide accumulator, clamp once at the end, so
         * the result does not depend on the order of authors. */
        __int128 acc = 0;
        for (uint32_t i = 0; i < n; i++) {
            const uint8_t *a;
            size_t al;
            uint32_t three;
            uint64_t sq;
            int64_t x;
            if (tr_rd_array(&r, &three) || three != 3 || tr_rd_bin(&r, &a, &al, 32, 32) ||
                tr_rd_uint(&r, &sq) || tr_rd_int(&r, &x))
                return cs_corrupt(err, &r, "counter entry");
            acc += x;
        }
        if (r.p != r.end) return cs_corrupt(err, NULL, "trailing bytes");
        if (acc > INT64_MAX)
            total = INT64_MAX, sat = true;
        else if (acc < INT64_MIN)
            total = INT64_MIN, sat = true;
        else
            total = (int64_t)acc;
        info->present = n > 0 && maxl >= tomb;
        info->nvisible = info->present ? n : 0;
        info->lamport = info->present ? maxl : 0;
        info->counter = info->present ? total : 0;
        info->saturated = info->present && sat;
        if (w) {
            if (info->present)
                cs_w_int(w, total);
            else
                cs_w_raw(w, &cs_nil, 1);
        }
        return TR_OK;
    }
    default:
        break;
    }
    if (cs_it_init(&it, s, len, &tag)) return cs_corrupt(err, &it.r, "state");
    info->tag = tag;
    /* Pass 0 counts the visible entries and picks the restriction winner;
     * pass 1 writes the values of lists and conflicts. */
    size_t nv = 0, best_rank = SIZE_MAX;
    tr_crdt_entry_t best = {0}, last = {0};
    while ((rc = cs_it_next(&it, &e)) == 1) {
        if (e.lamport < tomb) continue;
        nv++;
        last = e;
        if (e.lamport > info->lamport) info->lamport = e.lamport;
        if (tag == TR_CRDT_S_RESTRICT) {
            size_t rank = tr_strategies_rank(st, e.value, e.value_len);
            if (rank <= best_rank) { /* ties: the later stamp */
                best_rank = rank;
                best = e;
            }
        }
    }
    if (rc < 0) return cs_corrupt(err, &it.r, "entries");
    info->nvisible = nv;
    bool many = tag == TR_CRDT_S_LIST || (tag == TR_CRDT_S_MANUAL && nv >= 2);
    if (!many) {
        const tr_crdt_entry_t *pick = tag == TR_CRDT_S_RESTRICT ? &best : &last;
        info->present = nv > 0 && !cs_is_nil(pick);
        if (w) {
            if (info->present)
                cs_w_raw(w, pick->value, pick->value_len);
            else
                cs_w_raw(w, &cs_nil, 1);
        }
        return TR_OK;
    }
    info->present = nv > 0;
    info->conflict = tag == TR_CRDT_S_MANUAL;
    if (!w) return TR_OK;
    if (!info->present) {
        cs_w_raw(w, &cs_nil, 1);
        return TR_OK;
    }
    if (info->conflict) {
        w->bad |= msgpack_pack_map(&w->pk, 1);
        w->bad |= tr_pack_str(&w->pk, "$conflict", 9);
    }
    cs_w_array(w, nv);
    (void)cs_it_init(&it, s, len, &tag);
    while (cs_it_next(&it, &e) == 1)
        if (e.lamport >= tomb) cs_w_raw(w, e.value, e.value_len);
    return TR_OK;
}

int tr_crdt_value(const tr_strategies_t *st, const uint8_t *state, size_t len,
                  uint64_t tomb_lamport, tr_buf_t *out, tr_crdt_info_t *info, tr_err_t *err)
{
    tr_crdt_info_t tmp;
    if (!info) info = &tmp;
    memset(info, 0, sizeof *info);
    if (!state || len == 0) return tr_err_set(err, TR_EINVAL, "value: no state");
    size_t start = out ? out->len : 0;
    cs_w_t w;
    if (out) cs_w_init(&w, out);
    int rc = cs_info_value(st, state, len, tomb_lamport, out ? &w : NULL, info, err);
    if (out && (rc || w.bad)) {
        out->len = start;
        if (!rc) rc = tr_err_set(err, TR_ENOMEM, "out of memory");
    }
    return rc;
}

/* Entries of register, multi-value and list states, validated in stamp
 * order; the count is the total even when it exceeds cap. */
int tr_crdt_entries(const uint8_t *state, size_t len, tr_crdt_entry_t *out, size_t cap, size_t *n,
                    tr_err_t *err)
{
    cs_it_t it;
    tr_crdt_entry_t e;
    int tag, rc;
    *n = 0;
    if (!state || len == 0) return tr_err_set(err, TR_EINVAL, "entries: no state");
    if (cs_it_init(&it, state, len, &tag)) return cs_corrupt(err, &it.r, "state");
    while ((rc = cs_it_next(&it, &e)) == 1) {
        if (*n < cap) out[*n] = e;
        (*n)++;
    }
    return rc < 0 ? cs_corrupt(err, &it.r, "entries") : TR_OK;
}
