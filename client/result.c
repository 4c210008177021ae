/*
 * result.c - qkv_result_t (every sibling of a key plus its context) and
 * the reader of a `vget` reply:
 *
 *   VALUE <key> <flags> <bytes> <ts_us> live|deleted\r\n<data>\r\n   (per sibling)
 *   CONTEXT <vc>\r\n
 *   END\r\n
 *
 * Every field is checked: the key must be the one asked for, numbers must
 * be numbers, a value at most the client's max_value_bytes, siblings at
 * most QKV_MAX_SIBLINGS, and the data block must end in "\r\n".  Anything
 * else is QKV_ERR_PROTO and the connection is not reused.
 */
#include "client_internal.h"

#include <stdlib.h>
#include <string.h>

#include "../common/textproto.h"

size_t qkv_result_count(const qkv_result_t *r)
{
    return r ? r->nsib : 0;
}

const qkv_sibling_t *qkv_result_sibling(const qkv_result_t *r, size_t i)
{
    return r && i < r->nsib ? &r->sib[i] : NULL;
}

size_t qkv_result_live(const qkv_result_t *r)
{
    size_t n = 0;
    for (size_t i = 0; r && i < r->nsib; i++)
        n += !r->sib[i].deleted;
    return n;
}

const qkv_sibling_t *qkv_result_newest(const qkv_result_t *r)
{
    const qkv_sibling_t *best = NULL;
    for (size_t i = 0; r && i < r->nsib; i++) {
        const qkv_sibling_t *s = &r->sib[i];
        if (s->deleted)
            continue;
        /* ties: the larger value bytes, so every client picks the same one */
        if (!best || s->ts_us > best->ts_us ||
            (s->ts_us == best->ts_us &&
             (s->len != best->len ? s->len > best->len
                                  : memcmp(s->value, best->value, s->len) > 0)))
            best = s;
    }
    return best;
}

const char *qkv_result_context(const qkv_result_t *r)
{
    return r && r->context ? r->context : "[]";
}

void qkv_result_free(qkv_result_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nsib; i++)
        free((void *)r->sib[i].value);
    free(r->sib);
    free(r->context);
    free(r);
}

int reply_error(const char *line, size_t len, const char *what, char *err)
{
    int l = (int)(len < 160 ? len : 160);
    if (len >= 13 && !memcmp(line, "SERVER_ERROR ", 13)) {
        if (len >= 33 && !memcmp(line + 13, "quorum not reached", 18))
            return client_fail(err, QKV_ERR_QUORUM, "%s: %.*s", what, l, line);
        return client_fail(err, QKV_ERR_SERVER, "%s: %.*s", what, l, line);
    }
    if (len >= 13 && !memcmp(line, "CLIENT_ERROR ", 13)) {
        if (kv_result_parse(line, len) == KV_NON_NUMERIC)
            return client_fail(err, QKV_ERR_NOT_NUMBER, "%s: %.*s", what, l, line);
        return client_fail(err, QKV_ERR_CLIENT, "%s: %.*s", what, l, line);
    }
    if (len == 5 && !memcmp(line, "ERROR", 5))
        return client_fail(err, QKV_ERR_PROTO, "%s: the server answered ERROR (unknown command?)", what);
    return client_fail(err, QKV_ERR_PROTO, "%s: unexpected reply '%.*s'", what, l, line);
}

/* Split a line on spaces into at most max tokens; the count, or max + 1
 * when there are more. */
static size_t tokens(char *s, size_t len, char **tok, size_t *tl, size_t max)
{
    size_t n = 0, i = 0;
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        if (i == len)
            break;
        if (n == max)
            return max + 1;
        size_t b = i;
        while (i < len && s[i] != ' ')
            i++;
        tok[n] = s + b;
        tl[n] = i - b;
        n++;
    }
    return n;
}

static int add_sibling(qkv_result_t *r, char *err)
{
    if (r->nsib == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 2;
        qkv_sibling_t *s = realloc(r->sib, cap * sizeof(*s));
        if (!s)
            return client_fail(err, QKV_ERR_NOMEM, "out of memory");
        r->sib = s;
        r->cap = cap;
    }
    memset(&r->sib[r->nsib], 0, sizeof(r->sib[0]));
    r->nsib++;
    return 0;
}

int result_read_vget(qconn_t *c, const char *key, size_t klen, size_t max_value,
                     int64_t deadline_ms, qkv_result_t **out, char *err)
{
    qkv_result_t *r = calloc(1, sizeof(*r));
    char *line, *tok[7];
    size_t len, tl[7];
    int rc;

    *out = NULL;
    if (!r)
        return client_fail(err, QKV_ERR_NOMEM, "out of memory");
    for (;;) {
        if ((rc = qconn_line(c, deadline_ms, &line, &len, err)) < 0)
            goto fail;
        size_t nt = tokens(line, len, tok, tl, 6);
        if (nt == 6 && tl[0] == 5 && !memcmp(tok[0], "VALUE", 5)) {
            uint64_t flags, bytes, ts;
            bool live = tl[5] == 4 && !memcmp(tok[5], "live", 4);
            bool dead = tl[5] == 7 && !memcmp(tok[5], "deleted", 7);
            if (tl[1] != klen || memcmp(tok[1], key, klen) ||
                !client_parse_u64(tok[2], tl[2], &flags) || flags > UINT32_MAX ||
                !client_parse_u64(tok[3], tl[3], &bytes) ||
                !client_parse_u64(tok[4], tl[4], &ts) || ts > INT64_MAX || (!live && !dead)) {
                rc = client_fail(err, QKV_ERR_PROTO, "vget: bad VALUE line '%.*s'",
                                 (int)(len < 120 ? len : 120), line);
                goto fail;
            }
            if (bytes > max_value) {
                rc = client_fail(err, QKV_ERR_PROTO, "vget: a %llu-byte value is over the %zu-byte limit",
                                 (unsigned long long)bytes, max_value);
                goto fail;
            }
            if (r->nsib == QKV_MAX_SIBLINGS) {
                rc = client_fail(err, QKV_ERR_PROTO, "vget: more than %d siblings", QKV_MAX_SIBLINGS);
                goto fail;
            }
            if ((rc = add_sibling(r, err)) < 0)
                goto fail;
            qkv_sibling_t *s = &r->sib[r->nsib - 1];
            char *data, *copy = malloc((size_t)bytes + 1);
            if (!copy) {
                r->nsib--;
                rc = client_fail(err, QKV_ERR_NOMEM, "out of memory");
                goto fail;
            }
            s->value = copy;
            s->flags = (uint32_t)flags;
            s->ts_us = (int64_t)ts;
            s->deleted = dead;
            if ((rc = qconn_bytes(c, (size_t)bytes + 2, deadline_ms, &data, err)) < 0)
                goto fail;
            if (data[bytes] != '\r' || data[bytes + 1] != '\n') {
                rc = client_fail(err, QKV_ERR_PROTO, "vget: data block not ended by \\r\\n");
                goto fail;
            }
            memcpy(copy, data, (size_t)bytes);
            copy[bytes] = '\0';
            s->len = (size_t)bytes;
            continue;
        }
        if (nt == 2 && tl[0] == 7 && !memcmp(tok[0], "CONTEXT", 7) && !r->context) {
            if (tl[1] > QKV_CONTEXT_MAX || tok[1][0] != '[' || tok[1][tl[1] - 1] != ']') {
                rc = client_fail(err, QKV_ERR_PROTO, "vget: bad CONTEXT line");
                goto fail;
            }
            if (!(r->context = malloc(tl[1] + 1))) {
                rc = client_fail(err, QKV_ERR_NOMEM, "out of memory");
                goto fail;
            }
            memcpy(r->context, tok[1], tl[1]);
            r->context[tl[1]] = '\0';
            continue;
        }
        if (len == 3 && !memcmp(line, "END", 3)) {
            if (!r->context) {
                rc = client_fail(err, QKV_ERR_PROTO, "vget: END without a CONTEXT line");
                goto fail;
            }
            *out = r;
            return 0;
        }
        rc = reply_error(line, len, "vget", err);
        goto fail;
    }
fail:
    qkv_result_free(r);
    return rc;
}
