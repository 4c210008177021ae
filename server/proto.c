/*
 * proto.c - memcached text-protocol command parser (see proto.h).
 *
 * Organisation: mc_parse() splits the line on spaces in place, looks the
 * command word up, strips the trailing options (`r=`/`w=`/`ctx=` tokens
 * and, for commands that take it, `noreply`) and hands the remaining tokens
 * to one small parser per command shape; retrieval lines go token by token
 * through mc_get_arg(), which the connection also uses for lines too long
 * to hold.  Argument counts, number rules and the order of the checks
 * follow memcached 1.6 (proto_text.c): a wrong count is "ERROR", a bad
 * number is "CLIENT_ERROR bad command line format", an over-long key too,
 * and memcached decides noreply from the last token *before* it reports an
 * error, so a malformed line that ends in noreply gets no error line (the
 * "noreply" token may even stand for a missing argument: `incr k noreply`
 * is silent, not "ERROR").
 */
#include "proto.h"

#include <errno.h>
#include <strings.h>
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

/* Case-insensitive tok_is, for option names and level names (users type
 * W=ALL as readily as w=all). */
const char *mc_parse_error_line(enum mc_parse_rc rc)
{
    switch (rc) {
    case MC_ERR_FORMAT: return "CLIENT_ERROR bad command line format\r\n";
    case MC_ERR_DELTA: return "CLIENT_ERROR invalid numeric delta argument\r\n";
    case MC_ERR_EXPTIME: return "CLIENT_ERROR invalid exptime argument\r\n";
    case MC_ERR_LEVEL: return "CLIENT_ERROR bad consistency level\r\n";
    case MC_ERR_TOO_LARGE: return "SERVER_ERROR object too large for cache\r\n";
    case MC_ERR_DELETE_USAGE:
        /* memcached's words, two spaces included */
        return "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n";
    case MC_ERR_CTX: return "CLIENT_ERROR bad context\r\n";
    case MC_ERR_CTX_CMD: return "CLIENT_ERROR ctx= is only valid on set and delete\r\n";
    case MC_ERR_HTTP: return "";
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
    {"vget", MC_VGET, false},       {"aae", MC_AAE, false},
    {"remove", MC_REMOVE, false},   {"transfers", MC_TRANSFERS, false},
};

/* An option token: `r=`, `w=` or `ctx=`, the name in any case. */
static bool is_option(const tok_t *t)
{
    if (t->len >= 2 && t->p[1] == '=' && strchr("rRwW", t->p[0]))
        return true;
    return t->len >= 4 && strncasecmp(t->p, "ctx=", 4) == 0;
}

/* Take an option token into req: MC_OK, or the error it gives. */
static enum mc_parse_rc take_option(const tok_t *t, mc_request_t *req)
{
    if (t->p[1] != '=') { /* ctx= */
        if (req->cmd != MC_SET && req->cmd != MC_DELETE)
            return MC_ERR_CTX_CMD;
        if (req->ctx)
            return MC_ERR_CTX; /* which of two contexts would the write supersede? */
        req->ctx = t->p + 4;
        req->ctx_len = t->len - 4;
        return MC_OK;
    }
    mc_level_t *dst = (t->p[0] == 'r' || t->p[0] == 'R') ? &req->r : &req->w;
    return mc_parse_level(t->p + 2, t->len - 2, dst) ? MC_ERR_LEVEL : MC_OK;
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

/* set/add/replace/append/prepend/cas with n positional arguments (need of
 * them) and opt_rc, the verdict on its options.  memcached's own fields are
 * checked first and, when bad, give memcached's error without a swallow;
 * once the data block is known to follow, every rejection swallows it. */
static enum mc_parse_rc parse_storage(tok_t *a, size_t n, size_t need, enum mc_parse_rc opt_rc,
                                      mc_request_t *req, mc_key_t *keys, size_t maxkeys,
                                      uint64_t max_value)
{
    if (n < need)
        return MC_ERR_UNKNOWN;
    if (one_key(&a[0], req, keys, maxkeys) != MC_OK)
        return MC_ERR_FORMAT;
    if (!parse_u32(&a[1], &req->flags) || !parse_i64(&a[2], &req->exptime) ||
        !parse_i64(&a[3], &req->bytes))
        return MC_ERR_FORMAT;
    if (req->cmd == MC_CAS && !parse_u64(&a[4], &req->cas))
        return MC_ERR_FORMAT;
    if (req->bytes < 0 || req->bytes > INT32_MAX - 2)
        return MC_ERR_FORMAT;
    req->swallow = true;
    if (n > need)
        return MC_ERR_UNKNOWN; /* a stray token: probably a misspelt option */
    if (opt_rc != MC_OK)
        return opt_rc;
    if ((uint64_t)req->bytes > max_value)
        return MC_ERR_TOO_LARGE;
    return MC_OK;
}

/* delete: memcached's rule (process_delete_command) on m arguments counted
 * with a trailing noreply: `delete <key> [0] [noreply]`, anything else with
 * up to three arguments is the usage error, checked before the key. */
static enum mc_parse_rc parse_delete(tok_t *a, size_t n, enum mc_parse_rc opt_rc,
                                     mc_request_t *req, mc_key_t *keys, size_t maxkeys)
{
    size_t m = n + (req->noreply ? 1 : 0);
    if (m == 1 && n == 0) {
        /* `delete noreply` deletes the key "noreply" (memcached looks for
         * noreply only when there are more arguments) */
        req->noreply = false;
        n = 1;
    }
    if (m == 0 || m > 3)
        return MC_ERR_UNKNOWN;
    if (m > 1) {
        bool hold_is_zero = n >= 2 && tok_is(&a[1], "0");
        bool valid = (m == 2 && (hold_is_zero || req->noreply)) ||
                     (m == 3 && hold_is_zero && req->noreply);
        if (!valid)
            return MC_ERR_DELETE_USAGE;
    }
    if (one_key(&a[0], req, keys, maxkeys) != MC_OK)
        return MC_ERR_FORMAT;
    return opt_rc;
}

/* consistency [LEVEL] [r=LEVEL] [w=LEVEL]: every argument is an option or
 * the one bare level that sets both (an explicit r=/w= wins over it). */
static enum mc_parse_rc parse_consistency(tok_t *a, size_t n, mc_request_t *req)
{
    mc_level_t both = {MC_LEVEL_DEFAULT, 0};
    for (size_t i = 0; i < n; i++) {
        if (is_option(&a[i])) {
            enum mc_parse_rc rc = take_option(&a[i], req);
            if (rc != MC_OK)
                return rc;
        } else if (both.kind != MC_LEVEL_DEFAULT || mc_parse_level(a[i].p, a[i].len, &both)) {
            return MC_ERR_LEVEL;
        }
    }
    if (both.kind != MC_LEVEL_DEFAULT) {
        if (req->r.kind == MC_LEVEL_DEFAULT)
            req->r = both;
        if (req->w.kind == MC_LEVEL_DEFAULT)
            req->w = both;
    }
    return MC_OK;
}

size_t mc_get_prefix(const char *line, size_t len, enum mc_cmd *cmd)
{
    static const struct {
        const char *word;
        enum mc_cmd cmd;
    } words[] = {{"get ", MC_GET}, {"gets ", MC_GETS}, {"gat ", MC_GAT}, {"gats ", MC_GATS}};
    size_t i = 0;
    while (i < len && line[i] == ' ')
        i++;
    for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
        size_t n = strlen(words[w].word);
        if (len - i >= n && memcmp(line + i, words[w].word, n) == 0) {
            *cmd = words[w].cmd;
            return i + n;
        }
    }
    return 0;
}

enum mc_parse_rc mc_get_arg(mc_request_t *req, const char *p, size_t len, bool *have_exp,
                            enum mc_get_arg *kind)
{
    tok_t t = {(char *)p, len};
    if (is_option(&t)) {
        /* an option wherever it stands, never a key */
        *kind = MC_ARG_OPTION;
        return take_option(&t, req);
    }
    if ((req->cmd == MC_GAT || req->cmd == MC_GATS) && !*have_exp) {
        *kind = MC_ARG_EXPTIME;
        if (!parse_i64(&t, &req->exptime))
            return MC_ERR_EXPTIME;
        *have_exp = true;
        return MC_OK;
    }
    *kind = MC_ARG_KEY;
    return valid_key(&t) ? MC_OK : MC_ERR_FORMAT;
}

/* get/gets/gat/gats: the nargs tokens after the command word, which the
 * tokenizer NUL-separated in place starting at q. */
static enum mc_parse_rc parse_retrieval(char *q, const char *end, size_t nargs, mc_request_t *req,
                                        mc_key_t *keys, size_t maxkeys)
{
    size_t nk = 0;
    bool have_exp = false;
    for (size_t i = 0; i < nargs; i++) {
        while (q < end && (*q == ' ' || *q == '\0'))
            q++;
        tok_t t = {q, strnlen(q, (size_t)(end - q))};
        q += t.len + 1;
        enum mc_get_arg kind;
        enum mc_parse_rc rc = mc_get_arg(req, t.p, t.len, &have_exp, &kind);
        if (rc != MC_OK)
            return rc;
        if (kind != MC_ARG_KEY)
            continue;
        if (nk == maxkeys)
            return MC_ERR_FORMAT;
        keys[nk].ptr = t.p;
        keys[nk].len = t.len;
        nk++;
    }
    bool gat = req->cmd == MC_GAT || req->cmd == MC_GATS;
    if ((gat && !have_exp) || nk == 0)
        return MC_ERR_UNKNOWN;
    req->nkeys = nk;
    return MC_OK;
}

static enum mc_parse_rc parse_line(char *line, size_t len, mc_request_t *req, mc_key_t *keys,
                                   size_t maxkeys, uint64_t max_value)
{
    if (memchr(line, '\0', len))
        return MC_ERR_FORMAT; /* keys never hold NUL; tokens below rely on it */

    /* Tokenize in place; keys can be many, so keep only the first token,
     * the first few arguments and the last token. */
    size_t ntok = 0;
    tok_t first = {0}, last = {0}, tail[MAX_FIXED_TOKENS + 4];
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
        last = t;
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
    if (ci == sizeof(commands) / sizeof(commands[0])) {
        /* memcached's rule for "GET / HTTP/1.1" and friends: no reply, close */
        return last.len >= 5 && memcmp(last.p, "HTTP/", 5) == 0 ? MC_ERR_HTTP : MC_ERR_UNKNOWN;
    }
    req->cmd = commands[ci].cmd;
    size_t nargs = ntok - 1;

    if (req->cmd == MC_GET || req->cmd == MC_GETS || req->cmd == MC_GAT || req->cmd == MC_GATS)
        return parse_retrieval(first.p + first.len + 1, end, nargs, req, keys, maxkeys);

    if (nargs > MAX_FIXED_TOKENS + 3)
        return MC_ERR_UNKNOWN;
    tok_t *a = tail;
    if (req->cmd == MC_CONSISTENCY)
        return parse_consistency(a, nargs, req);

    /* Peel trailing options and one noreply off the end, in any order
     * (memcached only knows a last noreply; our options may follow it).  A
     * bad option is reported only after memcached's own checks, so that
     * noreply and the data block are known by then. */
    enum mc_parse_rc opt_rc = MC_OK;
    size_t n = nargs, noreply_at = SIZE_MAX;
    while (n > 0) {
        tok_t *t = &a[n - 1];
        if (is_option(t)) {
            enum mc_parse_rc rc = take_option(t, req);
            if (rc != MC_OK)
                opt_rc = rc;
            n--;
        } else if (commands[ci].noreply && noreply_at == SIZE_MAX && tok_is(t, "noreply")) {
            req->noreply = true;
            noreply_at = --n;
        } else {
            break;
        }
    }
    /* In memcached a last "noreply" also counts as an argument: when it is
     * exactly the one missing, it is parsed as that argument (and fails
     * there, silently) rather than being a wrong count. */
    size_t need = 0;
    switch (req->cmd) {
    case MC_SET: case MC_ADD: case MC_REPLACE: case MC_APPEND: case MC_PREPEND: need = 4; break;
    case MC_CAS: need = 5; break;
    case MC_INCR: case MC_DECR: case MC_TOUCH: need = 2; break;
    case MC_VERBOSITY: need = 1; break;
    default: break;
    }
    if (need && req->noreply && noreply_at == n && n + 1 == need)
        n++;

    switch (req->cmd) {
    case MC_SET: case MC_ADD: case MC_REPLACE: case MC_APPEND: case MC_PREPEND: case MC_CAS:
        return parse_storage(a, n, need, opt_rc, req, keys, maxkeys, max_value);
    case MC_DELETE:
        return parse_delete(a, n, opt_rc, req, keys, maxkeys);
    case MC_INCR: case MC_DECR:
        if (n != 2)
            return MC_ERR_UNKNOWN;
        if (one_key(&a[0], req, keys, maxkeys) != MC_OK)
            return MC_ERR_FORMAT;
        if (!parse_u64(&a[1], &req->delta))
            return MC_ERR_DELTA;
        return opt_rc;
    case MC_TOUCH:
        if (n != 2)
            return MC_ERR_UNKNOWN;
        if (one_key(&a[0], req, keys, maxkeys) != MC_OK)
            return MC_ERR_FORMAT;
        if (!parse_i64(&a[1], &req->exptime))
            return MC_ERR_EXPTIME;
        return opt_rc;
    case MC_FLUSH_ALL:
        if (n > 1)
            return MC_ERR_UNKNOWN;
        if (n == 1) {
            /* memcached: a 32-bit signed delay; zero or negative is now */
            if (!parse_i64(&a[0], &req->delay) || req->delay < INT32_MIN ||
                req->delay > INT32_MAX)
                return MC_ERR_EXPTIME;
            if (req->delay < 0)
                req->delay = 0;
            req->has_delay = true;
        }
        return opt_rc;
    case MC_VERBOSITY:
        if (n != 1)
            return MC_ERR_UNKNOWN;
        if (!parse_i64(&a[0], &req->delay))
            return MC_ERR_FORMAT;
        return opt_rc;
    case MC_STATS:
        if (n > 1)
            return MC_ERR_UNKNOWN;
        if (n == 1 && !take_arg(req, 0, &a[0], &req->arg))
            return MC_ERR_UNKNOWN; /* no stats sub-command is that long */
        return opt_rc;
    case MC_VERSION: case MC_QUIT: case MC_RING: case MC_MEMBERS: case MC_LEAVE: case MC_AAE:
    case MC_TRANSFERS:
        return n == 0 ? opt_rc : MC_ERR_UNKNOWN;
    case MC_REMOVE:
        if (n != 1)
            return MC_ERR_UNKNOWN;
        if (!take_arg(req, 0, &a[0], &req->arg))
            return MC_ERR_FORMAT;
        return opt_rc;
    case MC_DEBUG:
        if (n != 2)
            return MC_ERR_UNKNOWN;
        if (!take_arg(req, 0, &a[0], &req->arg) || !take_arg(req, 1, &a[1], &req->arg2))
            return MC_ERR_UNKNOWN;
        return opt_rc;
    case MC_LGET: case MC_SIBLINGS: case MC_VGET:
        if (n != 1)
            return MC_ERR_UNKNOWN;
        if (one_key(&a[0], req, keys, maxkeys) != MC_OK)
            return MC_ERR_FORMAT;
        return opt_rc;
    default:
        return MC_ERR_UNKNOWN;
    }
}

enum mc_parse_rc mc_parse(char *line, size_t len, mc_request_t *req, mc_key_t *keys,
                          size_t maxkeys, uint64_t max_value)
{
    memset(req, 0, sizeof(*req));
    req->keys = keys;
    enum mc_parse_rc rc = parse_line(line, len, req, keys, maxkeys, max_value);
    /* a wrong argument count is memcached's "ERROR" even with noreply (its
     * dispatcher answers before the command looks for noreply) */
    if (rc == MC_ERR_UNKNOWN || rc == MC_ERR_HTTP)
        req->noreply = false;
    return rc;
}
