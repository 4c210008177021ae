/*
 * proto.c - memcached text-protocol command parser (see proto.h).
 *
 * Organisation: the two lines that make most of the traffic, a get of
 * keys only and a set without options, are parsed in one pass by
 * fast_get() and fast_set(), which take only such lines as the general
 * path accepts and leave the same result; every other line takes the
 * general path, parse_line().  That splits the line on spaces in place, a
 * token at a time (next_tok), and looks the command word up.  A retrieval
 * line's arguments are taken as they are split, by the rules mc_get_arg()
 * applies to the lines too long to hold, which the connection streams; any
 * other line is split whole, its trailing options (`r=`/`w=`/`ctx=` tokens
 * and, for commands that take it, `noreply`) are stripped, and the
 * remaining tokens go to one small parser per command shape.  A NUL
 * anywhere makes the line a format error before anything else is judged:
 * the tokenizer finds it in the same scan that marks the bytes no key may
 * hold, and gives a line with a NUL back as it came.
 *
 * Argument counts, number rules and the order of the checks follow
 * memcached 1.6 (proto_text.c): a wrong count is "ERROR", a bad number is
 * "CLIENT_ERROR bad command line format", an over-long key too, and
 * memcached decides noreply from the last token *before* it reports an
 * error, so a malformed line that ends in noreply gets no error line (the
 * "noreply" token may even stand for a missing argument: `incr k noreply`
 * is silent, not "ERROR").
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
    bool odd; /* holds a control character or DEL, which no key may */
} tok_t;

/* t is exactly the string literal s. */
#define TOK_IS(t, s) ((t)->len == sizeof(s) - 1 && memcmp((t)->p, s, sizeof(s) - 1) == 0)

/* The bytes that end a clean run of a token: the separator ' ', NUL and
 * the other bytes a key may not hold (controls and DEL). */
static const unsigned char stop_byte[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, /* ' ' */
    [0x7f] = 1,
};

/* The line being split: next_tok takes tokens from p on. */
typedef struct split {
    char *line, *p, *end;
} split_t;

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define SWAR_SCAN 1
#define BYTES(b) (0x0101010101010101ULL * (b))

/* The top bit of each byte of x that stop_byte[] holds, exact for the
 * lowest such byte (the first in memory): a borrow in the subtractions
 * starts only at a flagged byte and may flag bytes above it, never below,
 * so only the lowest bit counts. */
static inline uint64_t stop_bits(uint64_t x)
{
    uint64_t y = x ^ BYTES(0x7f);
    return (((x - BYTES(0x21)) & ~x) | ((y - BYTES(1)) & ~y)) & BYTES(0x80);
}
#endif

/* The first byte of [p, end) that stop_byte[] holds, or end; line is where
 * the line starts.  Eight bytes at a time where the line allows, never
 * reading outside it. */
static inline char *scan_run(char *p, const char *end, const char *line)
{
#ifdef SWAR_SCAN
    uint64_t x, m;
    for (; end - p >= 8; p += 8) {
        memcpy(&x, p, 8);
        if ((m = stop_bits(x)) != 0)
            return p + (__builtin_ctzll(m) >> 3);
    }
    if (p < end && end - line >= 8) {
        /* the line's last 8 bytes shifted down so that p's byte is the
         * lowest: the zero bytes shifted in stop the scan at end */
        memcpy(&x, end - 8, 8);
        x >>= 8 * (8 - (end - p));
        return p + (__builtin_ctzll(stop_bits(x)) >> 3);
    }
#else
    (void)line;
#endif
    while (p < end && !stop_byte[(unsigned char)*p])
        p++;
    return p;
}

enum { TOK_END, TOK_WORD, TOK_NUL };

/* The next token after any spaces: TOK_WORD with *t, the space that ends
 * it overwritten with a NUL and sp->p just past that; TOK_END when only
 * spaces are left; TOK_NUL with sp->p at a NUL byte, the first in the line
 * when every earlier token came from here. */
static inline int next_tok(split_t *sp, tok_t *t)
{
    char *p = sp->p, *end = sp->end;
    while (p < end && *p == ' ')
        p++;
    if (p == end)
        return TOK_END;
    char *s = p;
    bool odd = false;
    for (;;) {
        p = scan_run(p, end, sp->line);
        if (p == end || *p == ' ')
            break;
        if (*p == '\0') {
            sp->p = p;
            return TOK_NUL;
        }
        odd = true;
        p++;
    }
    t->p = s;
    t->len = (size_t)(p - s);
    t->odd = odd;
    if (p < end)
        *p++ = '\0';
    sp->p = p;
    return TOK_WORD;
}

/* A line with a NUL byte (the first at sp->p) is a format error, whatever
 * else it holds (keys never hold NUL): give the line back as it came (each
 * NUL before sp->p is a space that next_tok overwrote) and req as
 * mc_parse() had it before it judged any token. */
static enum mc_parse_rc refuse_nul(const split_t *sp, mc_request_t *req, mc_key_t *keys)
{
    for (char *q = sp->line; q < sp->p; q++)
        if (*q == '\0')
            *q = ' ';
    memset(req, 0, sizeof(*req));
    req->keys = keys;
    return MC_ERR_FORMAT;
}

/* Unsigned decimal, memcached's safe_strtoull: digits only (leading spaces
 * are impossible after tokenizing), no sign. */
static bool parse_u64(const tok_t *t, uint64_t *out)
{
    if (t->len == 0 || t->len > 20)
        return false;
    /* 19 digits never overflow: only a 20th needs the check */
    const char *p = t->p, *e = p + (t->len < 20 ? t->len : 19);
    uint64_t v = 0;
    for (; p < e; p++) {
        unsigned d = (unsigned char)*p - (unsigned)'0';
        if (d > 9)
            return false;
        v = v * 10 + d;
    }
    if (t->len == 20) {
        unsigned d = (unsigned char)*p - (unsigned)'0';
        if (d > 9 || v > (UINT64_MAX - d) / 10)
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

/* A key of a token from next_tok, which has marked the bytes a key may not
 * hold. */
static bool key_tok(const tok_t *t)
{
    return !t->odd && t->len <= MC_KEY_MAX;
}

/* A key of any bytes (mc_get_arg's tokens come from the connection). */
static bool valid_key(const char *p, size_t len)
{
    if (len == 0 || len > MC_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    return true;
}

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

/* The command a word names, or -1: the words are case-sensitive and
 * whole, as in memcached. */
static int command_of(const tok_t *t)
{
#define WORD_IS(s) (memcmp(t->p, s, sizeof(s) - 1) == 0)
    switch (t->len) {
    case 3:
        if (WORD_IS("get")) return MC_GET;
        if (WORD_IS("set")) return MC_SET;
        if (WORD_IS("gat")) return MC_GAT;
        if (WORD_IS("add")) return MC_ADD;
        if (WORD_IS("cas")) return MC_CAS;
        if (WORD_IS("aae")) return MC_AAE;
        break;
    case 4:
        if (WORD_IS("gets")) return MC_GETS;
        if (WORD_IS("gats")) return MC_GATS;
        if (WORD_IS("incr")) return MC_INCR;
        if (WORD_IS("decr")) return MC_DECR;
        if (WORD_IS("quit")) return MC_QUIT;
        if (WORD_IS("lget")) return MC_LGET;
        if (WORD_IS("ring")) return MC_RING;
        if (WORD_IS("vget")) return MC_VGET;
        break;
    case 5:
        if (WORD_IS("touch")) return MC_TOUCH;
        if (WORD_IS("stats")) return MC_STATS;
        if (WORD_IS("leave")) return MC_LEAVE;
        if (WORD_IS("debug")) return MC_DEBUG;
        break;
    case 6:
        if (WORD_IS("append")) return MC_APPEND;
        if (WORD_IS("delete")) return MC_DELETE;
        if (WORD_IS("remove")) return MC_REMOVE;
        break;
    case 7:
        if (WORD_IS("replace")) return MC_REPLACE;
        if (WORD_IS("prepend")) return MC_PREPEND;
        if (WORD_IS("version")) return MC_VERSION;
        if (WORD_IS("members")) return MC_MEMBERS;
        break;
    case 8:
        if (WORD_IS("siblings")) return MC_SIBLINGS;
        break;
    case 9:
        if (WORD_IS("flush_all")) return MC_FLUSH_ALL;
        if (WORD_IS("verbosity")) return MC_VERBOSITY;
        if (WORD_IS("transfers")) return MC_TRANSFERS;
        break;
    case 11:
        if (WORD_IS("consistency")) return MC_CONSISTENCY;
        break;
    }
    return -1;
#undef WORD_IS
}

/* The commands that take a trailing noreply. */
static bool takes_noreply(enum mc_cmd cmd)
{
    switch (cmd) {
    case MC_SET: case MC_ADD: case MC_REPLACE: case MC_APPEND: case MC_PREPEND: case MC_CAS:
    case MC_DELETE: case MC_INCR: case MC_DECR: case MC_TOUCH: case MC_FLUSH_ALL:
    case MC_VERBOSITY:
        return true;
    default:
        return false;
    }
}

/* An option token: `r=`, `w=` or `ctx=`, the name in any case.  (c | 0x20)
 * folds exactly the two cases of a letter onto the small one.  A NUL
 * before the '=' also counts, a quirk kept from the strchr("rRwW", c) this
 * replaced; only mc_get_arg's tokens can hold a NUL. */
static inline bool is_option(const tok_t *t)
{
    const char *p = t->p;
    if (t->len >= 2 && p[1] == '=' && ((p[0] | 0x20) == 'r' || (p[0] | 0x20) == 'w' || p[0] == '\0'))
        return true;
    return t->len >= 4 && (p[0] | 0x20) == 'c' && (p[1] | 0x20) == 't' && (p[2] | 0x20) == 'x' &&
           p[3] == '=';
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
    if (maxkeys < 1 || !key_tok(t))
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
        bool hold_is_zero = n >= 2 && TOK_IS(&a[1], "0");
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

/* The rules mc_get_arg() and parse_retrieval() share: an option (taken
 * into req), gat's exptime (the first token that is not an option) or, as
 * *kind says, a key, which the caller checks. */
static enum mc_parse_rc get_arg(mc_request_t *req, const tok_t *t, bool *have_exp,
                                enum mc_get_arg *kind)
{
    if (is_option(t)) {
        /* an option wherever it stands, never a key */
        *kind = MC_ARG_OPTION;
        return take_option(t, req);
    }
    if ((req->cmd == MC_GAT || req->cmd == MC_GATS) && !*have_exp) {
        *kind = MC_ARG_EXPTIME;
        if (!parse_i64(t, &req->exptime))
            return MC_ERR_EXPTIME;
        *have_exp = true;
        return MC_OK;
    }
    *kind = MC_ARG_KEY;
    return MC_OK;
}

enum mc_parse_rc mc_get_arg(mc_request_t *req, const char *p, size_t len, bool *have_exp,
                            enum mc_get_arg *kind)
{
    tok_t t = {(char *)p, len, false};
    enum mc_parse_rc rc = get_arg(req, &t, have_exp, kind);
    if (rc != MC_OK || *kind != MC_ARG_KEY)
        return rc;
    return valid_key(p, len) ? MC_OK : MC_ERR_FORMAT;
}

/* get/gets/gat/gats: the arguments in [p, end), split as they are taken.
 * The first bad one gives the result, but the rest of the line is still
 * split, since a NUL in it would make the line a format error. */
static enum mc_parse_rc parse_retrieval(split_t *sp, mc_request_t *req, mc_key_t *keys,
                                        size_t maxkeys)
{
    enum mc_parse_rc rc = MC_OK;
    size_t nk = 0;
    bool have_exp = false;
    tok_t t;
    int r;
    while ((r = next_tok(sp, &t)) == TOK_WORD) {
        if (rc != MC_OK)
            continue;
        enum mc_get_arg kind;
        rc = get_arg(req, &t, &have_exp, &kind);
        if (rc != MC_OK || kind != MC_ARG_KEY)
            continue;
        if (!key_tok(&t) || nk == maxkeys) {
            rc = MC_ERR_FORMAT;
            continue;
        }
        keys[nk].ptr = t.p;
        keys[nk].len = t.len;
        nk++;
    }
    if (r == TOK_NUL)
        return refuse_nul(sp, req, keys);
    if (rc != MC_OK)
        return rc;
    bool gat = req->cmd == MC_GAT || req->cmd == MC_GATS;
    if ((gat && !have_exp) || nk == 0)
        return MC_ERR_UNKNOWN;
    req->nkeys = nk;
    return MC_OK;
}

/* ---- the two common lines, in one pass ----
 *
 * `get KEY...` / `gets KEY...` and `set KEY FLAGS EXPTIME BYTES`, with
 * single spaces and nothing else, are most of the traffic.  fast_get and
 * fast_set take exactly those lines that parse_line() would accept without
 * a single option, noreply or unusual number, and leave req and the line
 * as parse_line() would; for any other line they return false having
 * changed nothing but keys[], and the line takes the general path. */

/* 1..maxd decimal digits from *pp, up to the first other byte or end: the
 * value, *pp past them; false for none or more than maxd. */
static inline bool fast_digits(char **pp, const char *end, size_t maxd, uint64_t *out)
{
    char *p = *pp;
    uint64_t v = 0;
    unsigned d;
    while (p < end && (d = (unsigned char)*p - (unsigned)'0') <= 9) {
        v = v * 10 + d; /* may wrap past maxd digits, which are refused */
        p++;
    }
    if (p == *pp || (size_t)(p - *pp) > maxd)
        return false;
    *out = v;
    *pp = p;
    return true;
}

/* What parse_line() gives a line of keys that are clean, 1..MC_KEY_MAX
 * bytes, not options and at most maxkeys: MC_OK with those keys. */
static bool fast_get(char *line, size_t len, mc_request_t *req, mc_key_t *keys, size_t maxkeys)
{
    char *p, *end = line + len;
    enum mc_cmd cmd;
    if (len > 4 && memcmp(line, "get ", 4) == 0) {
        cmd = MC_GET;
        p = line + 4;
    } else if (len > 5 && memcmp(line, "gets ", 5) == 0) {
        cmd = MC_GETS;
        p = line + 5;
    } else {
        return false;
    }
    size_t nk = 0;
    for (;;) {
        tok_t t = {p, 0, false};
        p = scan_run(p, end, line);
        t.len = (size_t)(p - t.p);
        /* an empty token is a second space or a trailing one; a stop byte
         * other than a space is a control character, DEL or NUL */
        if (t.len == 0 || t.len > MC_KEY_MAX || (p < end && *p != ' ') || nk == maxkeys ||
            is_option(&t))
            return false;
        keys[nk].ptr = t.p;
        keys[nk].len = t.len;
        nk++;
        if (p == end)
            break;
        p++;
    }
    /* the line as the tokenizer leaves it: a NUL after each token that a
     * space follows */
    line[cmd == MC_GET ? 3 : 4] = '\0';
    for (size_t i = 0; i + 1 < nk; i++)
        line[keys[i].ptr - line + (ptrdiff_t)keys[i].len] = '\0';
    req->cmd = cmd;
    req->nkeys = nk;
    return true;
}

/* What parse_line() gives a set line whose key is clean and 1..MC_KEY_MAX
 * bytes, whose flags are 1..10 digits up to UINT32_MAX, whose exptime is
 * 1..18 digits after an optional '-' and whose length is 1..10 digits up
 * to INT32_MAX - 2 and max_value: MC_OK, the data block to follow. */
static bool fast_set(char *line, size_t len, mc_request_t *req, mc_key_t *keys, size_t maxkeys,
                     uint64_t max_value)
{
    char *end = line + len, *key = line + 4, *p;
    uint64_t flags, exptime, bytes;
    if (len < 11 || memcmp(line, "set ", 4) != 0 || maxkeys < 1)
        return false;
    p = scan_run(key, end, line);
    size_t klen = (size_t)(p - key);
    if (klen == 0 || klen > MC_KEY_MAX || p == end || *p != ' ')
        return false;
    char *sep1 = p++;
    if (!fast_digits(&p, end, 10, &flags) || flags > UINT32_MAX || p == end || *p != ' ')
        return false;
    char *sep2 = p++;
    bool neg = p < end && *p == '-';
    p += neg;
    if (!fast_digits(&p, end, 18, &exptime) || p == end || *p != ' ')
        return false;
    char *sep3 = p++;
    if (!fast_digits(&p, end, 10, &bytes) || p != end || bytes > INT32_MAX - 2 || bytes > max_value)
        return false;
    line[3] = *sep1 = *sep2 = *sep3 = '\0';
    keys[0].ptr = key;
    keys[0].len = klen;
    req->cmd = MC_SET;
    req->nkeys = 1;
    req->flags = (uint32_t)flags;
    req->exptime = neg ? -(int64_t)exptime : (int64_t)exptime;
    req->bytes = (int64_t)bytes;
    req->swallow = true;
    return true;
}

static enum mc_parse_rc parse_line(char *line, size_t len, mc_request_t *req, mc_key_t *keys,
                                   size_t maxkeys, uint64_t max_value)
{
    split_t sp = {line, line, line + len};
    tok_t first;
    int r = next_tok(&sp, &first);
    if (r == TOK_END)
        return MC_ERR_UNKNOWN;
    if (r == TOK_NUL)
        return refuse_nul(&sp, req, keys);
    int cmd = command_of(&first);
    if (cmd == MC_GET || cmd == MC_GETS || cmd == MC_GAT || cmd == MC_GATS) {
        req->cmd = (enum mc_cmd)cmd;
        return parse_retrieval(&sp, req, keys, maxkeys);
    }

    /* Split the rest; keep the first few arguments and the last token. */
    tok_t a[MAX_FIXED_TOKENS + 4], last = first, t;
    size_t nargs = 0;
    while ((r = next_tok(&sp, &t)) == TOK_WORD) {
        if (nargs < sizeof(a) / sizeof(a[0]))
            a[nargs] = t;
        nargs++;
        last = t;
    }
    if (r == TOK_NUL)
        return refuse_nul(&sp, req, keys);
    if (cmd < 0) {
        /* memcached's rule for "GET / HTTP/1.1" and friends: no reply, close */
        return last.len >= 5 && memcmp(last.p, "HTTP/", 5) == 0 ? MC_ERR_HTTP : MC_ERR_UNKNOWN;
    }
    req->cmd = (enum mc_cmd)cmd;

    if (nargs > MAX_FIXED_TOKENS + 3)
        return MC_ERR_UNKNOWN;
    if (req->cmd == MC_CONSISTENCY)
        return parse_consistency(a, nargs, req);

    /* Peel trailing options and one noreply off the end, in any order
     * (memcached only knows a last noreply; our options may follow it).  A
     * bad option is reported only after memcached's own checks, so that
     * noreply and the data block are known by then. */
    enum mc_parse_rc opt_rc = MC_OK;
    size_t n = nargs, noreply_at = SIZE_MAX;
    bool noreply_ok = takes_noreply(req->cmd);
    while (n > 0) {
        tok_t *t = &a[n - 1];
        if (is_option(t)) {
            enum mc_parse_rc rc = take_option(t, req);
            if (rc != MC_OK)
                opt_rc = rc;
            n--;
        } else if (noreply_ok && noreply_at == SIZE_MAX && TOK_IS(t, "noreply")) {
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
    if (fast_get(line, len, req, keys, maxkeys) || fast_set(line, len, req, keys, maxkeys, max_value))
        return MC_OK;
    enum mc_parse_rc rc = parse_line(line, len, req, keys, maxkeys, max_value);
    /* a wrong argument count is memcached's "ERROR" even with noreply (its
     * dispatcher answers before the command looks for noreply) */
    if (rc == MC_ERR_UNKNOWN || rc == MC_ERR_HTTP)
        req->noreply = false;
    return rc;
}
