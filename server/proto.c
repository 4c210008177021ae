/*
 * proto.c - memcached text-protocol command parser (see proto.h).
 *
 * Organisation: tokenize() splits the line on spaces in place; mc_parse()
 * strips the trailing options (`r=`/`w=` tokens and, for commands that take
 * it, `noreply`), looks the command word up and hands the remaining tokens
 * to one small parser per command shape.  Argument counts and number rules
 * follow memcached 1.6 (proto_text.c): a wrong count is "ERROR", a bad
 * number is "CLIENT_ERROR bad command line format", an over-long key too.
 */
#include "proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIXED_TOKENS 8

typedef struct tok {
    char *p;
    size_t len;
} tok_t;

static bool tok_is(const tok_t *t, const char *s)
{
    size_t n = strlen(s);
    return t->len == n && memcmp(t->p, s, n) == 0;
}

/* Unsigned decimal, memcached's safe_strtoull: digits only (leading spaces
 * are impossible after tokenizing), no sign. */
static bool parse_u64(const tok_t *t, uint64_t *out)
{
    if (t->len == 0 || t->len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < t->len; i++) {
        unsigned d = (unsigned)(t->p[i] - '0');
        if (d > 9)
            return false;
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool parse_i64(const tok_t *t, int64_t *out)
{
    bool neg = t->len > 0 && t->p[0] == '-';
    tok_t u = {t->p + neg, t->len - neg};
    uint64_t v;
    if (!parse_u64(&u, &v) || v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static bool parse_u32(const tok_t *t, uint32_t *out)
{
    uint64_t v;
    if (!parse_u64(t, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool valid_key(const tok_t *t)
{
    if (t->len == 0 || t->len > MC_KEY_MAX)
        return false;
    for (size_t i = 0; i < t->len; i++) {
        unsigned char c = (unsigned char)t->p[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    return true;
}

int mc_parse_level(const char *s, size_t len, mc_level_t *lv)
{
    tok_t t = {(char *)s, len};
    uint64_t v;
    if (tok_is(&t, "one"))
        *lv = (mc_level_t){MC_LEVEL_ONE, 1};
    else if (tok_is(&t, "quorum"))
        *lv = (mc_level_t){MC_LEVEL_QUORUM, 0};
    else if (tok_is(&t, "all"))
        *lv = (mc_level_t){MC_LEVEL_ALL, 0};
    else if (parse_u64(&t, &v) && v >= 1 && v <= 16)
        *lv = (mc_level_t){MC_LEVEL_NUM, (int)v};
    else
        return -1;
    return 0;
}

int mc_level_resolve(mc_level_t lv, int n, int dflt)
{
    int q;
    switch (lv.kind) {
    case MC_LEVEL_DEFAULT: q = dflt; break;
    case MC_LEVEL_ONE: q = 1; break;
    case MC_LEVEL_QUORUM: q = n / 2 + 1; break;
    case MC_LEVEL_ALL: q = n; break;
    default: q = lv.num; break;
    }
    return (q < 1 || q > n) ? -1 : q;
}

const char *mc_level_str(mc_level_t lv, char *buf, size_t cap)
{
    switch (lv.kind) {
    case MC_LEVEL_ONE: return "one";
    case MC_LEVEL_QUORUM: return "quorum";
    case MC_LEVEL_ALL: return "all";
    case MC_LEVEL_NUM: snprintf(buf, cap, "%d", lv.num); return buf;
    default: return "default";
    }
}

const char *mc_parse_error_line(enum mc_parse_rc rc)
{
    switch (rc) {
    case MC_ERR_FORMAT: return "CLIENT_ERROR bad command line format\r\n";
    case MC_ERR_DELTA: return "CLIENT_ERROR invalid numeric delta argument\r\n";
    case MC_ERR_EXPTIME: return "CLIENT_ERROR invalid exptime argument\r\n";
    case MC_ERR_LEVEL: return "CLIENT_ERROR bad consistency level\r\n";
    case MC_ERR_TOO_LARGE: return "SERVER_ERROR object too large for cache\r\n";
    default: return "ERROR\r\n";
    }
}

static const struct {
    const char *name;
    enum mc_cmd cmd;
    bool noreply; /* takes a trailing noreply */
} commands[] = {
    {"get", MC_GET, false},         {"gets", MC_GETS, false},
    {"gat", MC_GAT, false},         {"gats", MC_GATS, false},
    {"set", MC_SET, true},          {"add", MC_ADD, true},
    {"replace", MC_REPLACE, true},  {"append", MC_APPEND, true},
    {"prepend", MC_PREPEND, true},  {"cas", MC_CAS, true},
    {"delete", MC_DELETE, true},    {"incr", MC_INCR, true},
    {"decr", MC_DECR, true},        {"touch", MC_TOUCH, true},
    {"flush_all", MC_FLUSH_ALL, true}, {"stats", MC_STATS, false},
    {"version", MC_VERSION, false}, {"verbosity", MC_VERBOSITY, true},
    {"quit", MC_QUIT, false},       {"lget", MC_LGET, false},
    {"siblings", MC_SIBLINGS, false}, {"consistency", MC_CONSISTENCY, false},
    {"ring", MC_RING, false},       {"members", MC_MEMBERS, false},
    {"leave", MC_LEAVE, false},       {"debug", MC_DEBUG, false},
};

/* Take a trailing r=/w= token into req; 1 taken, 0 not an option, -1 bad. */
static int take_option(const tok_t *t, mc_request_t *req)
{
    if (t->len < 2 || t->p[1] != '=' || (t->p[0] != 'r' && t->p[0] != 'w'))
        return 0;
    mc_level_t *dst = t->p[0] == 'r' ? &req->r : &req->w;
    return mc_parse_level(t->p + 2, t->len - 2, dst) ? -1 : 1;
}

/* Copy a short word into req->argbuf[i]; false when it does not fit. */
static bool take_arg(mc_request_t *req, int i, const tok_t *t, const char **dst)
{
    if (t->len >= sizeof(req->argbuf[i]))
        return false;
    memcpy(req->argbuf[i], t->p, t->len);
    req->argbuf[i][t->len] = '\0';
    *dst = req->argbuf[i];
    return true;
}

static enum mc_parse_rc one_key(const tok_t *t, mc_request_t *req, mc_key_t *keys,
                                size_t maxkeys)
{
    if (maxkeys < 1 || !valid_key(t))
        return MC_ERR_FORMAT;
    keys[0].ptr = t->p;
    keys[0].len = t->len;
    req->nkeys = 1;
    return MC_OK;
}

static enum mc_parse_rc parse_storage(tok_t *a, size_t n, mc_request_t *req, mc_key_t *keys,
                                      size_t maxkeys, uint64_t max_value)
{
    bool cas = req->cmd == MC_CAS;
    if (n != (cas ? 5u : 4u))
        return MC_ERR_UNKNOWN;
    if (one_key(&a[0], req, keys, maxkeys) != MC_OK)
        return MC_ERR_FORMAT;
    if (!parse_u32(&a[1], &req->flags) || !parse_i64(&a[2], &req->exptime) ||
        !parse_i64(&a[3], &req->bytes))
        return MC_ERR_FORMAT;
    if (cas && !parse_u64(&a[4], &req->cas))
        return MC_ERR_FORMAT;
    if (req->bytes < 0 || req->bytes > INT32_MAX - 2)
        return MC_ERR_FORMAT;
    if ((uint64_t)req->bytes > max_value)
        return MC_ERR_TOO_LARGE;
    return MC_OK;
}

enum mc_parse_rc mc_parse(char *line, size_t len, mc_request_t *req, mc_key_t *keys,
                          size_t maxkeys, uint64_t max_value)
{
    memset(req, 0, sizeof(*req));
    req->keys = keys;
    if (memchr(line, '\0', len))
        return MC_ERR_FORMAT; /* keys never hold NUL; tokens below rely on it */

    /* Tokenize in place; keys can be many, so count first and keep only
     * pointers to the first token and the last few. */
    size_t ntok = 0;
    tok_t first = {0}, tail[MAX_FIXED_TOKENS + 4];
    size_t tailn = 0;
    char *p = line, *end = line + len;
    while (p < end) {
        while (p < end && *p == ' ')
            p++;
        if (p >= end)
            break;
        char *s = p;
        while (p < end && *p != ' ')
            p++;
        tok_t t = {s, (size_t)(p - s)};
        if (ntok == 0)
            first = t;
        else if (tailn < sizeof(tail) / sizeof(tail[0]))
            tail[tailn++] = t;
        ntok++;
        if (p < end)
            *p++ = '\0';
    }
    if (ntok == 0)
        return MC_ERR_UNKNOWN;

    size_t ci;
    for (ci = 0; ci < sizeof(commands) / sizeof(commands[0]); ci++)
        if (tok_is(&first, commands[ci].name))
            break;
    if (ci == sizeof(commands) / sizeof(commands[0]))
        return MC_ERR_UNKNOWN;
    req->cmd = commands[ci].cmd;
    size_t nargs = ntok - 1;

    if (req->cmd == MC_GET || req->cmd == MC_GETS || req->cmd == MC_GAT ||
        req->cmd == MC_GATS) {
        /* Variable key lists: re-walk the arguments, peeling options off
         * the end. */
        size_t nk = 0;
        char *q = first.p + first.len + 1;
        /* Collect tokens into keys[] directly (they are NUL-separated now);
         * r=/w= tokens are options wherever they stand and never count as
         * keys. */
        bool gat = req->cmd == MC_GAT || req->cmd == MC_GATS;
        bool have_exp = false;
        for (size_t i = 0; i < nargs; i++) {
            while (q < end && (*q == ' ' || *q == '\0'))
                q++;
            tok_t t = {q, strnlen(q, (size_t)(end - q))};
            q += t.len + 1;
            int o = take_option(&t, req);
            if (o < 0)
                return MC_ERR_LEVEL;
            if (o > 0)
                continue;
            if (gat && !have_exp) {
                if (!parse_i64(&t, &req->exptime))
                    return MC_ERR_EXPTIME;
                have_exp = true;
                continue;
            }
            if (!valid_key(&t))
                return MC_ERR_FORMAT;
            if (nk == maxkeys)
                return MC_ERR_FORMAT;
            keys[nk].ptr = t.p;
            keys[nk].len = t.len;
            nk++;
        }
        if ((gat && !have_exp) || nk == 0)
            return MC_ERR_UNKNOWN;
        req->nkeys = nk;
        return MC_OK;
    }

    if (nargs > MAX_FIXED_TOKENS + 3)
        return MC_ERR_UNKNOWN;
    tok_t *a = tail;
    size_t n = nargs;
    for (;;) {
        if (n == 0)
            break;
        int o = take_option(&a[n - 1], req);
        if (o < 0)
            return MC_ERR_LEVEL;
        if (o == 1) {
            n--;
            continue;
        }
        if (commands[ci].noreply && tok_is(&a[n - 1], "noreply") && !req->noreply) {
            req->noreply = true;
            n--;
            continue;
        }
        break;
    }

    switch (req->cmd) {
    case MC_SET: case MC_ADD: case MC_REPLACE: case MC_APPEND: case MC_PREPEND: case MC_CAS:
        return parse_storage(a, n, req, keys, maxkeys, max_value);
    case MC_DELETE:
        /* memcached still accepts the legacy "delete <key> 0" */
        if (n == 2 && tok_is(&a[1], "0"))
            n = 1;
        if (n != 1)
            return n == 0 ? MC_ERR_UNKNOWN : MC_ERR_FORMAT;
        return one_key(&a[0], req, keys, maxkeys);
    case MC_INCR: case MC_DECR:
        if (n != 2)
            return MC_ERR_UNKNOWN;
        if (one_key(&a[0], req, keys, maxkeys) != MC_OK)
            return MC_ERR_FORMAT;
        return parse_u64(&a[1], &req->delta) ? MC_OK : MC_ERR_DELTA;
    case MC_TOUCH:
        if (n != 2)
            return MC_ERR_UNKNOWN;
        if (one_key(&a[0], req, keys, maxkeys) != MC_OK)
            return MC_ERR_FORMAT;
        return parse_i64(&a[1], &req->exptime) ? MC_OK : MC_ERR_EXPTIME;
    case MC_FLUSH_ALL:
        if (n > 1)
            return MC_ERR_UNKNOWN;
        if (n == 1) {
            if (!parse_i64(&a[0], &req->delay) || req->delay < 0 || req->delay > UINT32_MAX)
                return MC_ERR_FORMAT;
            req->has_delay = true;
        }
        return MC_OK;
    case MC_VERBOSITY:
        if (n != 1)
            return MC_ERR_UNKNOWN;
        return parse_i64(&a[0], &req->delay) ? MC_OK : MC_ERR_FORMAT;
    case MC_STATS:
        if (n > 1)
            return MC_ERR_UNKNOWN;
        if (n == 1 && !take_arg(req, 0, &a[0], &req->arg))
            return MC_ERR_UNKNOWN; /* no stats sub-command is that long */
        return MC_OK;
    case MC_VERSION: case MC_QUIT: case MC_RING: case MC_MEMBERS: case MC_LEAVE:
        return n == 0 ? MC_OK : MC_ERR_UNKNOWN;
    case MC_CONSISTENCY:
        return n == 0 ? MC_OK : MC_ERR_LEVEL; /* only r=/w= tokens allowed */
    case MC_DEBUG:
        if (n != 2)
            return MC_ERR_UNKNOWN;
        return take_arg(req, 0, &a[0], &req->arg) && take_arg(req, 1, &a[1], &req->arg2)
                   ? MC_OK
                   : MC_ERR_UNKNOWN;
    case MC_LGET: case MC_SIBLINGS:
        if (n != 1)
            return MC_ERR_UNKNOWN;
        return one_key(&a[0], req, keys, maxkeys);
    default:
        return MC_ERR_UNKNOWN;
    }
}
