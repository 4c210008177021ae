/*
 * kv.c - memcached semantics as decisions on an object (see kv.h).
 *
 * Every command that changes a key becomes one new sibling: set/add/replace/
 * cas write the given value; append/prepend/incr/decr/touch write a value
 * computed from the current winner (a read-modify-write under the causal
 * context that was read); delete writes a tombstone.  Nothing here touches
 * storage or the network.
 */
#include "kv.h"

#include "../common/hash.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REALTIME_MAXDELTA (60 * 60 * 24 * 30)

int64_t kv_expiry(int64_t exptime, int64_t now_s)
{
    if (exptime == 0)
        return 0;
    if (exptime < 0)
        return 1; /* long past: already expired */
    if (exptime > REALTIME_MAXDELTA)
        return exptime <= now_s ? 1 : exptime;
    return now_s + exptime;
}

/* memcached's safe_strtoull on item data: digits, then only whitespace. */
static bool parse_counter(const uint8_t *p, size_t len, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    if (len == 0)
        return false;
    for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (i == 0)
        return false;
    for (; i < len; i++)
        if (p[i] != ' ' && p[i] != '\r' && p[i] != '\n' && p[i] != '\t')
            return false;
    *out = v;
    return true;
}

static int set_value(sibling_t *s, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    s->len = alen + blen;
    s->value = malloc(s->len ? s->len : 1);
    if (!s->value)
        return -ENOMEM;
    if (alen)
        memcpy(s->value, a, alen);
    if (blen)
        memcpy(s->value + alen, b, blen);
    return 0;
}

uint64_t kv_cas_token(const void *key, size_t klen, const vclock_t *vc)
{
    uint64_t t = hash64_seed(key, klen, vc_digest(vc));
    return t ? t : 1;
}

enum kv_result kv_decide(const kv_op_t *op, const void *key, size_t klen, const obj_t *cur,
                         int64_t now_us, sibling_t *out, bool *write, uint64_t *number)
{
    const sibling_t *win = obj_live(cur) ? obj_winner(cur) : NULL;
    memset(out, 0, sizeof(*out));
    out->ts_us = now_us;
    *write = false;
    enum kv_result ok = KV_STORED;
    int rc = 0;

    switch (op->cmd) {
    case MC_ADD:
        if (win)
            return KV_NOT_STORED;
        /* fall through */
    case MC_SET:
        rc = set_value(out, op->data, op->len, NULL, 0);
        out->flags = op->flags;
        out->expiry = op->expiry;
        break;
    case MC_REPLACE:
        if (!win)
            return KV_NOT_STORED;
        rc = set_value(out, op->data, op->len, NULL, 0);
        out->flags = op->flags;
        out->expiry = op->expiry;
        break;
    case MC_CAS:
        if (!win)
            return KV_NOT_FOUND;
        if (kv_cas_token(key, klen, &cur->vc) != op->cas)
            return KV_EXISTS;
        rc = set_value(out, op->data, op->len, NULL, 0);
        out->flags = op->flags;
        out->expiry = op->expiry;
        break;
    case MC_APPEND:
    case MC_PREPEND:
        if (!win)
            return KV_NOT_STORED;
        if (op->cmd == MC_APPEND)
            rc = set_value(out, win->value, win->len, op->data, op->len);
        else
            rc = set_value(out, op->data, op->len, win->value, win->len);
        out->flags = win->flags;
        out->expiry = win->expiry;
        break;
    case MC_INCR:
    case MC_DECR: {
        if (!win)
            return KV_NOT_FOUND;
        uint64_t v;
        if (!parse_counter(win->value, win->len, &v))
            return KV_NON_NUMERIC;
        if (op->cmd == MC_INCR)
            v += op->delta; /* wraps at 2^64, as memcached does */
        else
            v = op->delta > v ? 0 : v - op->delta;
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
        rc = set_value(out, (const uint8_t *)buf, (size_t)n, NULL, 0);
        out->flags = win->flags;
        out->expiry = win->expiry;
        *number = v;
        ok = KV_NUMBER;
        break;
    }
    case MC_TOUCH:
    case MC_GAT:
    case MC_GATS:
        if (!win)
            return KV_NOT_FOUND;
        rc = set_value(out, win->value, win->len, NULL, 0);
        out->flags = win->flags;
        out->expiry = op->expiry;
        ok = KV_TOUCHED;
        break;
    case MC_DELETE:
        if (!win)
            return KV_NOT_FOUND;
        out->tombstone = true;
        ok = KV_DELETED;
        break;
    default:
        return KV_NOT_FOUND;
    }
    if (rc) {
        free(out->value);
        out->value = NULL;
        return KV_NOMEM;
    }
    *write = true;
    return ok;
}
