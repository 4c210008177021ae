/*
 * test_proto_diff.c - differential test of server/proto.c: mc_parse(),
 * mc_get_arg(), mc_get_prefix() and mc_parse_error_line() against a copy
 * of the parser as it was before its single-pass tokenizer and its fast
 * paths for plain get and set lines (commit 1208596), kept below as the
 * reference.  Both parse the same lines, generated from pieces that reach
 * every rule (each command word, keys of 1, 250 and 251 bytes, control
 * characters, DEL, NUL, numbers at every limit, options in any case and
 * place, noreply, runs of spaces, HTTP request lines), and must agree on
 * the result, every field of the request, the keys, and the line bytes as
 * left in place.
 *
 * QKV_DIFF_LINES sets the number of random lines (default 300000);
 * QKV_DIFF_SEED the seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "../../server/proto.h"

/* ---- the reference: server/proto.c at 1208596, public names prefixed ref_ ---- */

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
static const char *ref_mc_parse_error_line(enum mc_parse_rc rc)
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

static size_t ref_mc_get_prefix(const char *line, size_t len, enum mc_cmd *cmd)
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

static enum mc_parse_rc ref_mc_get_arg(mc_request_t *req, const char *p, size_t len, bool *have_exp,
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
        enum mc_parse_rc rc = ref_mc_get_arg(req, t.p, t.len, &have_exp, &kind);
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

static enum mc_parse_rc ref_mc_parse(char *line, size_t len, mc_request_t *req, mc_key_t *keys,
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

/* ---- comparison ---- */

#define CAP 2048
#define MAXKEYS 128

typedef struct run {
    char buf[CAP + 16];
    mc_request_t req;
    mc_key_t keys[MAXKEYS];
    enum mc_parse_rc rc;
} run_t;

static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static size_t pick(size_t n)
{
    return rnd() % n;
}

/* An offset into the line for a pointer into it, -1 for NULL, -2 for
 * anything else. */
static long off_in(const run_t *r, const void *p)
{
    const char *c = p;
    if (!c)
        return -1;
    if (c >= r->buf && c <= r->buf + sizeof(r->buf))
        return c - r->buf;
    return -2;
}

static long off_arg(const run_t *r, const char *p)
{
    if (!p)
        return -1;
    if (p == r->req.argbuf[0])
        return 1000000;
    if (p == r->req.argbuf[1])
        return 1000001;
    return -2;
}

static void fail_line(const char *what, const char *line, size_t len, size_t maxkeys,
                      uint64_t max_value)
{
    char shown[CAP * 4 + 1];
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < sizeof(shown); i++) {
        unsigned char c = (unsigned char)line[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            shown[o++] = (char)c;
        else
            o += (size_t)snprintf(shown + o, sizeof(shown) - o, "\\x%02x", c);
    }
    shown[o] = '\0';
    fail_msg("%s differs for \"%s\" (len %zu, maxkeys %zu, max_value %llu)", what, shown, len,
             maxkeys, (unsigned long long)max_value);
}

/* Parse line[0..len) with both parsers, each in a buffer that goes on with
 * "\r\n" and junk as the connection's does, and compare everything. */
static void check_line(const char *line, size_t len, size_t maxkeys, uint64_t max_value)
{
    static run_t a, b;
    assert_true(len <= CAP);
    memset(&a, 0x5a, sizeof(a));
    memset(&b, 0x5a, sizeof(b));
    memcpy(a.buf, line, len);
    memcpy(a.buf + len, "\r\nget junk\r\n", 12);
    memcpy(b.buf, a.buf, len + 12);
    a.rc = ref_mc_parse(a.buf, len, &a.req, a.keys, maxkeys, max_value);
    b.rc = mc_parse(b.buf, len, &b.req, b.keys, maxkeys, max_value);

#define SAME(what, x) \
    do { \
        if ((x(a)) != (x(b))) \
            fail_line(what, line, len, maxkeys, max_value); \
    } while (0)
#define F_RC(o) (o).rc
#define F_CMD(o) (o).req.cmd
#define F_KEYS(o) ((o).req.keys == (o).keys)
#define F_NKEYS(o) (o).req.nkeys
#define F_FLAGS(o) (o).req.flags
#define F_EXP(o) (o).req.exptime
#define F_BYTES(o) (o).req.bytes
#define F_CAS(o) (o).req.cas
#define F_DELTA(o) (o).req.delta
#define F_DELAY(o) (o).req.delay
#define F_HASDELAY(o) (o).req.has_delay
#define F_NOREPLY(o) (o).req.noreply
#define F_SWALLOW(o) (o).req.swallow
#define F_RKIND(o) (o).req.r.kind
#define F_RNUM(o) (o).req.r.num
#define F_WKIND(o) (o).req.w.kind
#define F_WNUM(o) (o).req.w.num
#define F_CTX(o) off_in(&(o), (o).req.ctx)
#define F_CTXLEN(o) (o).req.ctx_len
#define F_ARG(o) off_arg(&(o), (o).req.arg)
#define F_ARG2(o) off_arg(&(o), (o).req.arg2)
    SAME("rc", F_RC);
    SAME("cmd", F_CMD);
    SAME("keys", F_KEYS);
    SAME("nkeys", F_NKEYS);
    SAME("flags", F_FLAGS);
    SAME("exptime", F_EXP);
    SAME("bytes", F_BYTES);
    SAME("cas", F_CAS);
    SAME("delta", F_DELTA);
    SAME("delay", F_DELAY);
    SAME("has_delay", F_HASDELAY);
    SAME("noreply", F_NOREPLY);
    SAME("swallow", F_SWALLOW);
    SAME("r.kind", F_RKIND);
    SAME("r.num", F_RNUM);
    SAME("w.kind", F_WKIND);
    SAME("w.num", F_WNUM);
    SAME("ctx", F_CTX);
    SAME("ctx_len", F_CTXLEN);
    SAME("arg", F_ARG);
    SAME("arg2", F_ARG2);
    if (memcmp(a.req.argbuf, b.req.argbuf, sizeof(a.req.argbuf)) != 0)
        fail_line("argbuf", line, len, maxkeys, max_value);
    for (size_t i = 0; i < a.req.nkeys; i++)
        if (off_in(&a, a.keys[i].ptr) != off_in(&b, b.keys[i].ptr) ||
            a.keys[i].len != b.keys[i].len)
            fail_line("a key", line, len, maxkeys, max_value);
    if (memcmp(a.buf, b.buf, len + 12) != 0)
        fail_line("the line left in place", line, len, maxkeys, max_value);
    if (strcmp(ref_mc_parse_error_line(a.rc), mc_parse_error_line(b.rc)) != 0)
        fail_line("the error line", line, len, maxkeys, max_value);
}

/* The streaming helpers on the same bytes: mc_get_prefix on the line, then
 * mc_get_arg on each space-separated token of it under every retrieval
 * command, as the connection calls them. */
static void check_stream(const char *line, size_t len)
{
    enum mc_cmd ca = MC_QUIT, cb = MC_QUIT;
    size_t pa = ref_mc_get_prefix(line, len, &ca), pb = mc_get_prefix(line, len, &cb);
    if (pa != pb || ca != cb)
        fail_line("mc_get_prefix", line, len, 0, 0);
    static const enum mc_cmd cmds[] = {MC_GET, MC_GETS, MC_GAT, MC_GATS};
    for (size_t c = 0; c < 4; c++) {
        mc_request_t ra, rb;
        bool ea = false, eb = false;
        memset(&ra, 0, sizeof(ra));
        memset(&rb, 0, sizeof(rb));
        ra.cmd = rb.cmd = cmds[c];
        for (size_t i = 0, j; i < len; i = j + 1) {
            for (j = i; j < len && line[j] != ' '; j++)
                ;
            enum mc_get_arg ka = MC_ARG_KEY, kb = MC_ARG_KEY;
            enum mc_parse_rc xa = ref_mc_get_arg(&ra, line + i, j - i, &ea, &ka);
            enum mc_parse_rc xb = mc_get_arg(&rb, line + i, j - i, &eb, &kb);
            if (xa != xb || ka != kb || ea != eb || ra.exptime != rb.exptime ||
                ra.r.kind != rb.r.kind || ra.r.num != rb.r.num || ra.w.kind != rb.w.kind ||
                ra.w.num != rb.w.num || ra.ctx != rb.ctx || ra.ctx_len != rb.ctx_len)
                fail_line("mc_get_arg", line + i, j - i, 0, 0);
        }
    }
}

/* ---- line generation ---- */

static const char *const WORDS[] = {
    "get", "gets", "gat", "gats", "set", "add", "replace", "append", "prepend", "cas",
    "delete", "incr", "decr", "touch", "flush_all", "stats", "version", "verbosity", "quit",
    "lget", "siblings", "consistency", "ring", "members", "leave", "remove", "transfers",
    "debug", "vget", "aae",
    /* near misses */
    "GET", "Get", "ge", "gett", "sets", "se", "getss", "flush_al", "flush_alll", "consistenc",
    "aaa", "ringx", "x", "HTTP/1.1", "GET", "POST",
};

static const char *const NUMS[] = {
    "0", "1", "5", "100", "007", "-0", "-1", "-", "+1", "1x", "x1", "0x10", "1.5",
    "4294967295", "4294967296", "00000000001", "2147483645", "2147483646", "2147483647",
    "-2147483648", "-2147483649", "2147483648", "1048576", "1048577", "1048575",
    "9223372036854775807", "9223372036854775808", "-9223372036854775807",
    "-9223372036854775808", "18446744073709551615", "18446744073709551616",
    "99999999999999999999", "100000000000000000000", "999999999999999999",
    "-999999999999999999", "1000000000000000000", "0000000000000000000001", "12345678901",
};

static const char *const OPTS[] = {
    "r=one", "w=all", "R=QUORUM", "W=2", "r=0", "w=17", "r=", "w=bad", "r=1x", "x=one",
    "rr=one", "ctx=", "ctx=abc", "CTX=[]", "Ctx=x", "cTx=", "ctx", "ctx:", "ct=x", "c=1",
    "noreply", "NOREPLY", "noreplyx", "0", "reset", "on", "off", "peer_drop", "HTTP/1.0",
    "HTTP/", "HTTP", "=", "==", "r", "w",
};

/* A random token into out (no spaces unless asked); its length. */
static size_t gen_token(char *out)
{
    switch (pick(10)) {
    case 0: case 1: case 2: { /* a key */
        static const size_t lens[] = {1, 2, 3, 9, 30, 249, 250, 251, 300};
        size_t n = pick(4) ? 1 + pick(12) : lens[pick(sizeof(lens) / sizeof(lens[0]))];
        for (size_t i = 0; i < n; i++)
            out[i] = (char)('a' + pick(26));
        if (pick(6) == 0) {
            /* a byte a key may not hold, or one it may */
            static const unsigned char odd[] = {0x01, '\t', '\r', '\n', 0x1f, 0x7f, 0x80, 0xff,
                                                '=', '-', 0x7e, 0x21};
            out[pick(n)] = (char)odd[pick(sizeof(odd))];
        }
        return n;
    }
    case 3: case 4: case 5: {
        const char *s = NUMS[pick(sizeof(NUMS) / sizeof(NUMS[0]))];
        memcpy(out, s, strlen(s));
        return strlen(s);
    }
    case 6: case 7: {
        const char *s = OPTS[pick(sizeof(OPTS) / sizeof(OPTS[0]))];
        memcpy(out, s, strlen(s));
        return strlen(s);
    }
    case 8: {
        const char *s = WORDS[pick(sizeof(WORDS) / sizeof(WORDS[0]))];
        memcpy(out, s, strlen(s));
        return strlen(s);
    }
    default: { /* a key made of any bytes but space and NUL */
        size_t n = 1 + pick(6);
        for (size_t i = 0; i < n; i++) {
            unsigned char c;
            do
                c = (unsigned char)rnd();
            while (c == ' ' || c == '\0');
            out[i] = (char)c;
        }
        return n;
    }
    }
}

/* A random line: a command word (or not), then tokens, with one or more
 * spaces between and maybe around them, maybe a NUL somewhere. */
static size_t gen_line(char *out, size_t cap)
{
    size_t n = 0;
    if (pick(8) == 0)
        for (size_t k = pick(3) + 1; k && n < cap; k--)
            out[n++] = ' ';
    const char *w = pick(10) ? WORDS[pick(4) ? pick(10) : pick(sizeof(WORDS) / sizeof(WORDS[0]))]
                             : NULL;
    if (w) {
        memcpy(out + n, w, strlen(w));
        n += strlen(w);
    }
    size_t ntok = pick(4) ? pick(7) : pick(40);
    for (size_t t = 0; t < ntok && n + 320 < cap; t++) {
        if (n > 0 || pick(2)) {
            out[n++] = ' ';
            if (pick(10) == 0)
                out[n++] = ' ';
        }
        n += gen_token(out + n);
    }
    if (pick(10) == 0)
        for (size_t k = pick(3) + 1; k && n < cap; k--)
            out[n++] = ' ';
    if (n > 0 && pick(40) == 0)
        out[pick(n)] = '\0';
    return n;
}

/* ---- tests ---- */

static const size_t MAXKEYS_CHOICES[] = {0, 1, 2, 3, 8, MAXKEYS};
static const uint64_t MAX_VALUE_CHOICES[] = {0, 1, 100, 1024 * 1024, INT32_MAX};

/* Hand-picked lines around the fast paths' edges. */
static void test_edges(void **state)
{
    static const char *const lines[] = {
        "get a", "gets a", "get a b c", "get  a", "get a ", " get a", "get", "get ", "gets",
        "gets ", "gat 1 a", "get r=one", "get a r=one", "get r=one a", "get R=x a", "get w= a",
        "get ctx=1 a", "get CTX= a", "get ctx a", "get c=x a", "get noreply", "get a\tb",
        "get a\x7f", "get \x80\xff", "get a=b", "get -", "get =",
        "set k 0 0 1", "set k 0 0 100", "set k 0 0 1 noreply", "set k 0 0 1 r=one",
        "set k 0 0 1 ", "set k 0 0 1  ", "set  k 0 0 1", "set k  0 0 1", "set k 0 0  1",
        " set k 0 0 1", "set k 0 0", "set k 0 0 1 2", "set k -1 0 1", "set k 0 -1 1",
        "set k 0 - 1", "set k 0 -0 1", "set k 0 0 -1", "set k 0 0 +1", "set k 0x 0 1",
        "set k 4294967295 0 1", "set k 4294967296 0 1", "set k 00000000001 0 1",
        "set k 0 999999999999999999 1", "set k 0 -999999999999999999 1",
        "set k 0 1000000000000000000 1", "set k 0 9223372036854775807 1",
        "set k 0 -9223372036854775808 1", "set k 0 0 2147483645", "set k 0 0 2147483646",
        "set k 0 0 1048576", "set k 0 0 1048577", "set k 0 0 0000000001", "set k 0 0 00000000001",
        "set noreply 0 0 1", "set r=one 0 0 1", "set k\x01 0 0 1", "set k\x7f 0 0 1",
        "set \xff 0 0 1", "set k 0 0 1\x01", "set k 0 0 1x", "set k\t0 0 1", "set",
        "set ", "sets k 0 0 1", "setk 0 0 1", "set k 0 0 noreply", "set k 0 noreply",
        "set k 0 0 1 noreply r=one", "set k 0 0 1 ctx=abc", "set k 0 0 1\0", "set k\0 0 0 1",
        "get a\0", "get a\0b", "\0", "", " ", "GET / HTTP/1.1", "x HTTP/1.0",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        size_t len = strlen(lines[i]);
        if (strcmp(lines[i], "set k 0 0 1\0") == 0 || strcmp(lines[i], "get a\0") == 0)
            len++;
        for (size_t m = 0; m < sizeof(MAXKEYS_CHOICES) / sizeof(MAXKEYS_CHOICES[0]); m++)
            for (size_t v = 0; v < sizeof(MAX_VALUE_CHOICES) / sizeof(MAX_VALUE_CHOICES[0]); v++)
                check_line(lines[i], len, MAXKEYS_CHOICES[m], MAX_VALUE_CHOICES[v]);
        check_stream(lines[i], len);
    }
}

/* Keys of every length around the limit, in get and set lines, with one
 * byte of every value at the start, middle and end. */
static void test_key_bytes_and_lengths(void **state)
{
    static char line[CAP];
    (void)state;
    for (size_t klen = 1; klen <= 260; klen += (klen < 240 ? 13 : 1)) {
        for (int shape = 0; shape < 2; shape++) {
            for (int c = 0; c < 256; c++) {
                for (int at = 0; at < 3; at++) {
                    size_t n = (size_t)snprintf(line, sizeof(line), shape ? "set " : "get ");
                    char *key = line + n;
                    memset(key, 'k', klen);
                    key[at == 0 ? 0 : at == 1 ? klen / 2 : klen - 1] = (char)c;
                    n += klen;
                    n += (size_t)snprintf(line + n, sizeof(line) - n, shape ? " 0 0 10" : " b");
                    check_line(line, n, MAXKEYS, 1024 * 1024);
                    check_line(line, n - (shape ? 0 : 2), 1, 1024 * 1024);
                }
            }
        }
    }
}

/* Random lines; every length of line prefix of some too, which cuts tokens
 * (and the fast paths' fields) anywhere. */
static void test_random_lines(void **state)
{
    static char line[CAP];
    const char *env = getenv("QKV_DIFF_LINES");
    long n = env ? atol(env) : 300000;
    env = getenv("QKV_DIFF_SEED");
    rng_state = env ? strtoull(env, NULL, 10) | 1 : 0x9e3779b97f4a7c15ULL;
    (void)state;
    for (long i = 0; i < n; i++) {
        size_t len = gen_line(line, sizeof(line));
        size_t maxkeys = MAXKEYS_CHOICES[pick(sizeof(MAXKEYS_CHOICES) / sizeof(MAXKEYS_CHOICES[0]))];
        uint64_t maxv = MAX_VALUE_CHOICES[pick(sizeof(MAX_VALUE_CHOICES) / sizeof(MAX_VALUE_CHOICES[0]))];
        check_line(line, len, maxkeys, maxv);
        if (i % 16 == 0)
            for (size_t cut = 0; cut < len; cut++)
                check_line(line, cut, maxkeys, maxv);
        if (i % 4 == 0)
            check_stream(line, len);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_key_bytes_and_lengths),
        cmocka_unit_test(test_random_lines),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
