/*
 * test_proto.c - unit tests of server/proto.c (cmocka): the memcached text
 * command parser, its consistency options and level resolution.
 *
 * Every line is parsed the way the connection code hands it over: copied
 * into a buffer still followed by its "\r\n" (and more bytes after that),
 * with len excluding the "\r\n", so a parser that reads past len or relies
 * on a NUL it did not write is caught.  Expected results are memcached
 * 1.6's: a wrong argument count is "ERROR", a bad number or key "CLIENT_ERROR
 * bad command line format".  Where a comment says "memcached 1.6.18", the
 * form was tried against that server.
 *
 * Tests named test_bug_* reproduce bugs reported against server/proto.c
 * that are not fixed yet; they skip (visibly) unless QKV_KNOWN_BUGS=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/vclock.h"
#include "../../server/proto.h"

#define LINE_CAP 8192
#define MAXKEYS 128
#define MAX_VALUE (1024 * 1024)

typedef struct parsed {
    char buf[LINE_CAP];
    size_t len;
    mc_request_t req;
    mc_key_t keys[MAXKEYS];
    enum mc_parse_rc rc;
} parsed_t;

/* Parse line[0..len) with maxkeys key slots; the buffer holds the line, then
 * "\r\n" and junk, like the connection's input buffer. */
static enum mc_parse_rc parse_n(parsed_t *p, const char *line, size_t len, size_t maxkeys)
{
    assert_true(len + 16 <= sizeof(p->buf));
    assert_true(maxkeys <= MAXKEYS);
    memcpy(p->buf, line, len);
    memcpy(p->buf + len, "\r\nget junk\r\n", 12);
    p->len = len;
    p->rc = mc_parse(p->buf, len, &p->req, p->keys, maxkeys, MAX_VALUE);
    return p->rc;
}

static enum mc_parse_rc parse(parsed_t *p, const char *line)
{
    return parse_n(p, line, strlen(line), MAXKEYS);
}

/* The rc of line, for tables of one-liners. */
static enum mc_parse_rc rc_of(const char *line)
{
    static parsed_t p;
    return parse(&p, line);
}

/* Key i is exactly want and points into the parsed line. */
static void assert_key(const parsed_t *p, size_t i, const char *want)
{
    assert_true(i < p->req.nkeys);
    assert_ptr_equal(p->req.keys, p->keys);
    assert_true(p->keys[i].ptr >= p->buf && p->keys[i].ptr + p->keys[i].len <= p->buf + p->len);
    assert_int_equal(p->keys[i].len, strlen(want));
    assert_memory_equal(p->keys[i].ptr, want, p->keys[i].len);
}

static void assert_ok1(parsed_t *p, const char *line, enum mc_cmd cmd, const char *key)
{
    assert_int_equal(parse(p, line), MC_OK);
    assert_int_equal(p->req.cmd, cmd);
    assert_int_equal(p->req.nkeys, 1);
    assert_key(p, 0, key);
}


/* ---- command words and argument counts ---- */

static const struct {
    const char *line;
    enum mc_parse_rc rc;
} COUNTS[] = {
    {"get", MC_ERR_UNKNOWN},          {"gets", MC_ERR_UNKNOWN},
    {"gat", MC_ERR_UNKNOWN},          {"gat 10", MC_ERR_UNKNOWN},
    {"gats", MC_ERR_UNKNOWN},         {"gats 10", MC_ERR_UNKNOWN},
    {"set", MC_ERR_UNKNOWN},          {"set k 0 0", MC_ERR_UNKNOWN},
    {"set k 0 0 1 2", MC_ERR_UNKNOWN}, {"add k 0 0", MC_ERR_UNKNOWN},
    {"add k 0 0 1 2", MC_ERR_UNKNOWN}, {"replace k 0 0", MC_ERR_UNKNOWN},
    {"append k", MC_ERR_UNKNOWN},     {"prepend k 0 0 1 1", MC_ERR_UNKNOWN},
    {"cas k 0 0 1", MC_ERR_UNKNOWN},  {"cas k 0 0 1 2 3", MC_ERR_UNKNOWN},
    {"delete", MC_ERR_UNKNOWN},       {"incr", MC_ERR_UNKNOWN},
    {"incr k", MC_ERR_UNKNOWN},       {"incr k 1 2", MC_ERR_UNKNOWN},
    {"decr k", MC_ERR_UNKNOWN},       {"decr k 1 2", MC_ERR_UNKNOWN},
    {"touch k", MC_ERR_UNKNOWN},      {"touch k 1 2", MC_ERR_UNKNOWN},
    {"flush_all 1 2", MC_ERR_UNKNOWN}, {"stats a b", MC_ERR_UNKNOWN},
    {"version x", MC_ERR_UNKNOWN},    {"verbosity", MC_ERR_UNKNOWN},
    {"verbosity 1 2", MC_ERR_UNKNOWN}, {"quit now", MC_ERR_UNKNOWN},
    {"lget", MC_ERR_UNKNOWN},         {"lget a b", MC_ERR_UNKNOWN},
    {"vget", MC_ERR_UNKNOWN},         {"vget a b", MC_ERR_UNKNOWN},
    {"siblings", MC_ERR_UNKNOWN},     {"siblings a b", MC_ERR_UNKNOWN},
    {"ring x", MC_ERR_UNKNOWN},       {"members x", MC_ERR_UNKNOWN},
    {"leave x", MC_ERR_UNKNOWN},      {"version noreply", MC_ERR_UNKNOWN},
    {"set k 0 0 1 2 3 4 5 6 7 8 9 10 11 12", MC_ERR_UNKNOWN},
    /* right counts */
    {"set k 0 0 1", MC_OK},           {"cas k 0 0 1 2", MC_OK},
    {"flush_all", MC_OK},             {"flush_all 0", MC_OK},
    {"stats", MC_OK},                 {"stats slabs", MC_OK},
    {"version", MC_OK},               {"quit", MC_OK},
    {"ring", MC_OK},                  {"members", MC_OK},
    {"leave", MC_OK},                 {"verbosity 1", MC_OK},
    {"lget k", MC_OK},                {"siblings k", MC_OK},
    {"consistency", MC_OK},           {"vget k", MC_OK},
};

static void test_argument_counts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(COUNTS) / sizeof(COUNTS[0]); i++) {
        enum mc_parse_rc rc = rc_of(COUNTS[i].line);
        if (rc != COUNTS[i].rc)
            fail_msg("\"%s\": rc %d, want %d", COUNTS[i].line, rc, COUNTS[i].rc);
    }
}

static void test_every_command_word(void **state)
{
    static const struct {
        const char *line;
        enum mc_cmd cmd;
    } words[] = {
        {"get k", MC_GET},         {"gets k", MC_GETS},
        {"gat 1 k", MC_GAT},       {"gats 1 k", MC_GATS},
        {"set k 0 0 1", MC_SET},   {"add k 0 0 1", MC_ADD},
        {"replace k 0 0 1", MC_REPLACE}, {"append k 0 0 1", MC_APPEND},
        {"prepend k 0 0 1", MC_PREPEND}, {"cas k 0 0 1 1", MC_CAS},
        {"delete k", MC_DELETE},   {"incr k 1", MC_INCR},
        {"decr k 1", MC_DECR},     {"touch k 1", MC_TOUCH},
        {"flush_all", MC_FLUSH_ALL}, {"stats", MC_STATS},
        {"version", MC_VERSION},   {"verbosity 0", MC_VERBOSITY},
        {"quit", MC_QUIT},         {"lget k", MC_LGET},
        {"siblings k", MC_SIBLINGS}, {"consistency", MC_CONSISTENCY},
        {"ring", MC_RING},         {"members", MC_MEMBERS},
        {"leave", MC_LEAVE},       {"vget k", MC_VGET},
    };
    parsed_t p;

    (void)state;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (parse(&p, words[i].line) != MC_OK || p.req.cmd != words[i].cmd)
            fail_msg("\"%s\": rc %d cmd %d", words[i].line, p.rc, p.req.cmd);
    }
    /* Command words are case-sensitive and whole, as in memcached. */
    assert_int_equal(rc_of("GET k"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("gett k"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("ge k"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("bogus"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("flush_all_x"), MC_ERR_UNKNOWN);
}

/* ---- retrieval ---- */

static void test_get_and_gets(void **state)
{
    parsed_t p;

    (void)state;
    assert_ok1(&p, "get foo", MC_GET, "foo");
    assert_int_equal(p.req.r.kind, MC_LEVEL_DEFAULT);
    assert_false(p.req.noreply);
    assert_int_equal(parse(&p, "gets a bb ccc"), MC_OK);
    assert_int_equal(p.req.cmd, MC_GETS);
    assert_int_equal(p.req.nkeys, 3);
    assert_key(&p, 0, "a");
    assert_key(&p, 1, "bb");
    assert_key(&p, 2, "ccc");
    /* get takes no noreply: it is a key, as in memcached */
    assert_int_equal(parse(&p, "get a noreply"), MC_OK);
    assert_int_equal(p.req.nkeys, 2);
    assert_key(&p, 1, "noreply");
    assert_false(p.req.noreply);
    /* a token of the r=/w= form is an option wherever it stands, never a
     * key (PROTOCOL.md) */
    assert_int_equal(parse(&p, "get r=one a"), MC_OK);
    assert_int_equal(p.req.nkeys, 1);
    assert_key(&p, 0, "a");
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
}

static void test_gat_exptime_and_keys(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, "gat 100 a b"), MC_OK);
    assert_int_equal(p.req.cmd, MC_GAT);
    assert_int_equal(p.req.exptime, 100);
    assert_int_equal(p.req.nkeys, 2);
    assert_key(&p, 0, "a");
    assert_key(&p, 1, "b");
    assert_int_equal(parse(&p, "gats -1 k"), MC_OK);
    assert_int_equal(p.req.cmd, MC_GATS);
    assert_true(p.req.exptime == -1);
    assert_key(&p, 0, "k");
    assert_int_equal(parse(&p, "gat 0 k r=all"), MC_OK);
    assert_int_equal(p.req.nkeys, 1);
    assert_int_equal(p.req.r.kind, MC_LEVEL_ALL);
    assert_int_equal(rc_of("gat abc k"), MC_ERR_EXPTIME);
    assert_int_equal(rc_of("gat 1x k"), MC_ERR_EXPTIME);
    assert_int_equal(rc_of("gats - k"), MC_ERR_EXPTIME);
    assert_int_equal(rc_of("gat 10 r=one"), MC_ERR_UNKNOWN); /* no key left */
}

static void test_multiget_many_keys(void **state)
{
    parsed_t *p = malloc(sizeof(*p));
    char line[2048], want[16];
    size_t off = 0;

    (void)state;
    assert_non_null(p);
    off += (size_t)snprintf(line + off, sizeof(line) - off, "get");
    for (int i = 0; i < 100; i++)
        off += (size_t)snprintf(line + off, sizeof(line) - off, " key%d", i);
    assert_int_equal(parse(p, line), MC_OK);
    assert_int_equal(p->req.nkeys, 100);
    for (int i = 0; i < 100; i++) {
        snprintf(want, sizeof(want), "key%d", i);
        assert_key(p, (size_t)i, want);
    }

    /* exactly maxkeys fits; one more is a format error */
    assert_int_equal(parse_n(p, "get a b c d e f g h", 19, 8), MC_OK);
    assert_int_equal(p->req.nkeys, 8);
    assert_key(p, 7, "h");
    assert_int_equal(parse_n(p, "get a b c d e f g h i", 21, 8), MC_ERR_FORMAT);
    assert_int_equal(parse_n(p, "gets a b", 8, 1), MC_ERR_FORMAT);
    assert_int_equal(parse_n(p, "gat 1 a b", 9, 1), MC_ERR_FORMAT);
    assert_int_equal(parse_n(p, "gat 1 a", 7, 1), MC_OK); /* exptime takes no slot */
    assert_int_equal(parse_n(p, "get a", 5, 0), MC_ERR_FORMAT);
    assert_int_equal(parse_n(p, "delete a", 8, 0), MC_ERR_FORMAT);
    free(p);
}

/* ---- storage ---- */

static void test_storage_commands(void **state)
{
    static const struct {
        const char *word;
        enum mc_cmd cmd;
    } cmds[] = {
        {"set", MC_SET}, {"add", MC_ADD}, {"replace", MC_REPLACE},
        {"append", MC_APPEND}, {"prepend", MC_PREPEND},
    };
    char line[64];
    parsed_t p;

    (void)state;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        snprintf(line, sizeof(line), "%s mykey 7 300 42", cmds[i].word);
        assert_ok1(&p, line, cmds[i].cmd, "mykey");
        assert_int_equal(p.req.flags, 7);
        assert_int_equal(p.req.exptime, 300);
        assert_int_equal(p.req.bytes, 42);
        assert_false(p.req.noreply);
        snprintf(line, sizeof(line), "%s mykey 7 300 42 noreply", cmds[i].word);
        assert_ok1(&p, line, cmds[i].cmd, "mykey");
        assert_true(p.req.noreply);
        assert_int_equal(p.req.bytes, 42);
    }
}

static void test_storage_numbers(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, "set k 4294967295 0 1"), MC_OK);
    assert_true(p.req.flags == UINT32_MAX);
    assert_int_equal(rc_of("set k 4294967296 0 1"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k -1 0 1"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k abc 0 1"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k 1a 0 1"), MC_ERR_FORMAT);

    assert_int_equal(parse(&p, "set k 0 -1 1"), MC_OK); /* negative exptime: expire now */
    assert_true(p.req.exptime == -1);
    assert_int_equal(parse(&p, "set k 0 2592001 1"), MC_OK);
    assert_true(p.req.exptime == 2592001);
    assert_int_equal(rc_of("set k 0 abc 1"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k 0 - 1"), MC_ERR_FORMAT);

    assert_int_equal(parse(&p, "set k 0 0 0"), MC_OK);
    assert_int_equal(p.req.bytes, 0);
    assert_int_equal(parse(&p, "set k 0 0 1048576"), MC_OK); /* == max_value */
    assert_int_equal(p.req.bytes, MAX_VALUE);
    assert_int_equal(rc_of("set k 0 0 -1"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k 0 0 abc"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k 0 0 5x"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k 0 0 99999999999999999999999"), MC_ERR_FORMAT);
    /* memcached: a length over INT_MAX - 2 is a format error */
    assert_int_equal(rc_of("set k 0 0 2147483646"), MC_ERR_FORMAT);

    /* over the limit: too large, and the caller learns what to swallow */
    assert_int_equal(parse(&p, "set k 0 0 1048577"), MC_ERR_TOO_LARGE);
    assert_int_equal(p.req.bytes, MAX_VALUE + 1);
    assert_false(p.req.noreply);
    assert_int_equal(parse(&p, "append k 0 0 2147483645 noreply"), MC_ERR_TOO_LARGE);
    assert_int_equal(p.req.bytes, 2147483645);
    assert_true(p.req.noreply);
    assert_int_equal(parse(&p, "cas k 0 0 5000000 9"), MC_ERR_TOO_LARGE);
    assert_int_equal(p.req.bytes, 5000000);
    /* a bad key is reported before the length */
    assert_int_equal(rc_of("set k\x01 0 0 5000000"), MC_ERR_FORMAT);
}

static void test_cas_unique(void **state)
{
    parsed_t p;

    (void)state;
    assert_ok1(&p, "cas k 1 2 3 4", MC_CAS, "k");
    assert_int_equal(p.req.flags, 1);
    assert_int_equal(p.req.exptime, 2);
    assert_int_equal(p.req.bytes, 3);
    assert_true(p.req.cas == 4);
    assert_int_equal(parse(&p, "cas k 0 0 1 18446744073709551615"), MC_OK);
    assert_true(p.req.cas == UINT64_MAX);
    assert_int_equal(parse(&p, "cas k 0 0 1 0"), MC_OK);
    assert_true(p.req.cas == 0);
    assert_int_equal(rc_of("cas k 0 0 1 18446744073709551616"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("cas k 0 0 1 abc"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("cas k 0 0 1 -1"), MC_ERR_FORMAT);
    assert_ok1(&p, "cas k 1 2 3 4 noreply w=all", MC_CAS, "k");
    assert_true(p.req.cas == 4);
    assert_true(p.req.noreply);
    assert_int_equal(p.req.w.kind, MC_LEVEL_ALL);
    assert_int_equal(p.req.r.kind, MC_LEVEL_DEFAULT);
}

/* ---- other keyed commands ---- */

static void test_noreply_per_command(void **state)
{
    static const char *const with[] = {
        "set k 0 0 1 noreply",  "add k 0 0 1 noreply",  "replace k 0 0 1 noreply",
        "append k 0 0 1 noreply", "prepend k 0 0 1 noreply", "cas k 0 0 1 1 noreply",
        "delete k noreply",     "incr k 1 noreply",     "decr k 1 noreply",
        "touch k 1 noreply",    "flush_all noreply",    "verbosity 1 noreply",
    };
    parsed_t p;
    char line[64];

    (void)state;
    for (size_t i = 0; i < sizeof(with) / sizeof(with[0]); i++) {
        if (parse(&p, with[i]) != MC_OK || !p.req.noreply)
            fail_msg("\"%s\": rc %d noreply %d", with[i], p.rc, p.req.noreply);
        /* the same line without noreply */
        size_t n = strlen(with[i]) - strlen(" noreply");
        memcpy(line, with[i], n);
        line[n] = '\0';
        if (parse(&p, line) != MC_OK || p.req.noreply)
            fail_msg("\"%s\": rc %d noreply %d", line, p.rc, p.req.noreply);
    }
    /* only once, and only last */
    assert_int_equal(rc_of("set k 0 0 1 noreply noreply"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("incr k noreply 1"), MC_ERR_UNKNOWN);
}

static void test_delete(void **state)
{
    parsed_t p;

    (void)state;
    assert_ok1(&p, "delete k", MC_DELETE, "k");
    assert_false(p.req.noreply);
    assert_ok1(&p, "delete k 0", MC_DELETE, "k"); /* legacy time argument */
    assert_ok1(&p, "delete k 0 noreply", MC_DELETE, "k");
    assert_true(p.req.noreply);
    assert_int_equal(rc_of("delete k 1"), MC_ERR_DELETE_USAGE);
    assert_int_equal(rc_of("delete k x"), MC_ERR_DELETE_USAGE);
    assert_string_equal(mc_parse_error_line(MC_ERR_DELETE_USAGE),
                        "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n");
}

/* memcached 1.6.18, each form tried against the real server: the usage
 * error is checked before the key, noreply only counts last, and
 * `delete noreply` deletes a key called "noreply". */
static void test_delete_argument_forms(void **state)
{
    static const struct {
        const char *line;
        enum mc_parse_rc rc;
        bool noreply;
    } forms[] = {
        {"delete k 10", MC_ERR_DELETE_USAGE, false},
        {"delete k 10 noreply", MC_ERR_DELETE_USAGE, true},
        {"delete k noreply 0", MC_ERR_DELETE_USAGE, false},
        {"delete k 0 0", MC_ERR_DELETE_USAGE, false},
        {"delete k x y", MC_ERR_DELETE_USAGE, false},
        {"delete k noreply noreply", MC_ERR_DELETE_USAGE, true},
        {"delete k 0 0 noreply", MC_ERR_UNKNOWN, false},
        {"delete k 0 noreply", MC_OK, true},
        {"delete k noreply", MC_OK, true},
        {"delete noreply", MC_OK, false},
        {"delete k 10 w=one noreply", MC_ERR_DELETE_USAGE, true},
    };
    char line[400], k251[252];
    parsed_t p;

    (void)state;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        if (parse(&p, forms[i].line) != forms[i].rc || p.req.noreply != forms[i].noreply)
            fail_msg("\"%s\": rc %d noreply %d, want %d %d", forms[i].line, p.rc, p.req.noreply,
                     forms[i].rc, forms[i].noreply);
    assert_ok1(&p, "delete noreply", MC_DELETE, "noreply");
    memset(k251, 'k', 251);
    k251[251] = '\0';
    snprintf(line, sizeof(line), "delete %s 5", k251);
    assert_int_equal(parse(&p, line), MC_ERR_DELETE_USAGE);
    snprintf(line, sizeof(line), "delete %s noreply", k251);
    assert_int_equal(parse(&p, line), MC_ERR_FORMAT);
    assert_true(p.req.noreply);
}

/* A malformed line that ends in noreply gets no error line from memcached
 * (it looks for noreply before it checks the arguments), except a wrong
 * argument count, which its dispatcher answers with ERROR first.  The
 * "noreply" token may itself stand for the missing last argument. */
static void test_noreply_silences_errors(void **state)
{
    static const struct {
        const char *line;
        enum mc_parse_rc rc;
        bool noreply;
    } forms[] = {
        {"set k 0 0 noreply", MC_ERR_FORMAT, true},
        {"set k x 0 1 noreply", MC_ERR_FORMAT, true},
        {"set k 0 0 -1 noreply", MC_ERR_FORMAT, true},
        {"cas k 0 0 1 noreply", MC_ERR_FORMAT, true},
        {"cas k 0 0 1 x noreply", MC_ERR_FORMAT, true},
        {"incr k noreply", MC_ERR_DELTA, true},
        {"incr k x noreply", MC_ERR_DELTA, true},
        {"decr k -1 noreply", MC_ERR_DELTA, true},
        {"touch k noreply", MC_ERR_EXPTIME, true},
        {"touch k x noreply", MC_ERR_EXPTIME, true},
        {"verbosity noreply", MC_ERR_FORMAT, true},
        {"verbosity x noreply", MC_ERR_FORMAT, true},
        {"flush_all x noreply", MC_ERR_EXPTIME, true},
        {"set k 0 0 1 w=0 noreply", MC_ERR_LEVEL, true},
        {"set k 0 0 1 noreply w=bogus", MC_ERR_LEVEL, true},
        {"set k 0 0 2000000 noreply", MC_ERR_TOO_LARGE, true},
        /* wrong counts: ERROR, whatever the last token */
        {"set k 0 noreply", MC_ERR_UNKNOWN, false},
        {"incr noreply", MC_ERR_UNKNOWN, false},
        {"touch k 1 2 noreply", MC_ERR_UNKNOWN, false},
        {"set k 0 0 1 a b noreply", MC_ERR_UNKNOWN, false},
    };
    parsed_t p;

    (void)state;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        if (parse(&p, forms[i].line) != forms[i].rc || p.req.noreply != forms[i].noreply)
            fail_msg("\"%s\": rc %d noreply %d, want %d %d", forms[i].line, p.rc, p.req.noreply,
                     forms[i].rc, forms[i].noreply);
}

static void test_incr_decr(void **state)
{
    parsed_t p;

    (void)state;
    assert_ok1(&p, "incr k 5", MC_INCR, "k");
    assert_true(p.req.delta == 5);
    assert_ok1(&p, "decr k 18446744073709551615", MC_DECR, "k");
    assert_true(p.req.delta == UINT64_MAX);
    assert_ok1(&p, "incr k 0", MC_INCR, "k");
    assert_true(p.req.delta == 0);
    assert_int_equal(rc_of("incr k abc"), MC_ERR_DELTA);
    assert_int_equal(rc_of("incr k -1"), MC_ERR_DELTA);
    assert_int_equal(rc_of("decr k 1.5"), MC_ERR_DELTA);
    assert_int_equal(rc_of("incr k 18446744073709551616"), MC_ERR_DELTA);
    assert_int_equal(rc_of("incr k\x7f 1"), MC_ERR_FORMAT);
}

static void test_touch(void **state)
{
    parsed_t p;

    (void)state;
    assert_ok1(&p, "touch k 10", MC_TOUCH, "k");
    assert_int_equal(p.req.exptime, 10);
    assert_ok1(&p, "touch k -1", MC_TOUCH, "k");
    assert_true(p.req.exptime == -1);
    assert_int_equal(rc_of("touch k abc"), MC_ERR_EXPTIME);
    assert_int_equal(rc_of("touch k 10s"), MC_ERR_EXPTIME);
    assert_int_equal(rc_of("touch k 99999999999999999999"), MC_ERR_EXPTIME);
}

static void test_key_length(void **state)
{
    static const char *const fmts[] = {
        "get %s", "gets x %s", "gat 1 %s", "set %s 0 0 1", "cas %s 0 0 1 1",
        "delete %s", "incr %s 1", "touch %s 1", "lget %s", "siblings %s",
    };
    char k250[251], k251[252], line[400];
    parsed_t p;

    (void)state;
    memset(k250, 'k', 250);
    k250[250] = '\0';
    memset(k251, 'k', 251);
    k251[251] = '\0';
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        snprintf(line, sizeof(line), fmts[i], k250);
        if (parse(&p, line) != MC_OK)
            fail_msg("250-byte key: \"%.20s...\": rc %d", line, p.rc);
        assert_key(&p, p.req.nkeys - 1, k250);
        snprintf(line, sizeof(line), fmts[i], k251);
        if (parse(&p, line) != MC_ERR_FORMAT)
            fail_msg("251-byte key: \"%.20s...\": rc %d", line, p.rc);
    }
}

static void test_key_control_chars(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(rc_of("get a\tb"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("get ok a\x01"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("get a\rb"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("get a\nb"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set a\x7f 0 0 1"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("delete \x1b"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("touch a\x1f 1"), MC_ERR_FORMAT);
    /* bytes >= 0x80 are fine (UTF-8 keys) */
    assert_int_equal(parse(&p, "get caf\xc3\xa9"), MC_OK);
    assert_key(&p, 0, "caf\xc3\xa9");
}

/* ---- the one-pass get and set lines (fast_get, fast_set) ---- */

/* A plain get line is split in place as any line: a NUL after each token
 * that a space follows, nothing written past the last. */
static void test_plain_get_line_in_place(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, "gets a bb ccc"), MC_OK);
    assert_memory_equal(p.buf, "gets\0a\0bb\0ccc\r\n", 15);
    assert_int_equal(parse(&p, "get pre:12345"), MC_OK);
    assert_memory_equal(p.buf, "get\0pre:12345\r\n", 15);
    assert_int_equal(parse(&p, "set pre:1 0 -5 100"), MC_OK);
    assert_memory_equal(p.buf, "set\0pre:1\0" "0\0-5\0" "100\r\n", 20);
    assert_int_equal(p.req.exptime, -5);
    /* a line with a NUL is given back as it came */
    assert_int_equal(parse_n(&p, "get a b\0", 8, MAXKEYS), MC_ERR_FORMAT);
    assert_memory_equal(p.buf, "get a b\0\r\n", 10);
}

/* The shapes next to the plain ones, which take the general path, give
 * what they always gave. */
static void test_plain_get_edges(void **state)
{
    char line[600];
    parsed_t p;

    (void)state;
    assert_int_equal(rc_of("get"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("get "), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("gets  "), MC_ERR_UNKNOWN);
    assert_int_equal(parse(&p, "get a  b "), MC_OK);
    assert_int_equal(p.req.nkeys, 2);
    assert_key(&p, 1, "b");
    assert_int_equal(rc_of("get a\tb c"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("get a\x7f"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("get \x01"), MC_ERR_FORMAT);
    /* options among the keys, in any case; never keys */
    assert_int_equal(parse(&p, "get a W=all b CTX=1"), MC_ERR_CTX_CMD);
    assert_int_equal(parse(&p, "get a W=all b r=One c"), MC_OK);
    assert_int_equal(p.req.nkeys, 3);
    assert_key(&p, 2, "c");
    assert_int_equal(p.req.w.kind, MC_LEVEL_ALL);
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
    assert_int_equal(rc_of("get a r=x"), MC_ERR_LEVEL);
    /* only r=, w= and ctx= are options: these are keys */
    assert_int_equal(parse(&p, "get x=1 ct=1 ctx rr=1 = r"), MC_OK);
    assert_int_equal(p.req.nkeys, 6);
    /* 250 bytes a key, 251 not; a long key followed by more */
    memset(line, 0, sizeof(line));
    memcpy(line, "get ", 4);
    memset(line + 4, 'k', 250);
    assert_int_equal(parse(&p, line), MC_OK);
    assert_int_equal(p.keys[0].len, 250);
    memcpy(line + 254, " z", 2);
    assert_int_equal(parse(&p, line), MC_OK);
    assert_int_equal(p.req.nkeys, 2);
    assert_key(&p, 1, "z");
    line[254] = 'k';
    assert_int_equal(rc_of(line), MC_ERR_FORMAT); /* "k" * 251 then "z" */
    /* maxkeys */
    assert_int_equal(parse_n(&p, "get a b", 7, 2), MC_OK);
    assert_int_equal(parse_n(&p, "get a b c", 9, 2), MC_ERR_FORMAT);
}

static void test_plain_set_edges(void **state)
{
    char line[600];
    parsed_t p;

    (void)state;
    assert_ok1(&p, "set k 4294967295 -1 1048576", MC_SET, "k"); /* MAX_VALUE */
    assert_int_equal(p.req.flags, 4294967295u);
    assert_true(p.req.exptime == -1);
    assert_int_equal(p.req.bytes, 1048576);
    assert_true(p.req.swallow);
    /* over MAX_VALUE, so too large; the data block is still swallowed */
    assert_int_equal(parse(&p, "set k 0 0 1048577"), MC_ERR_TOO_LARGE);
    assert_true(p.req.swallow);
    assert_int_equal(parse(&p, "set k 0 0 2147483645"), MC_ERR_TOO_LARGE);
    assert_true(p.req.swallow);
    assert_int_equal(parse(&p, "set k 0 0 2147483646"), MC_ERR_FORMAT);
    assert_false(p.req.swallow);
    assert_int_equal(rc_of("set k 4294967296 0 1"), MC_ERR_FORMAT);
    assert_ok1(&p, "set k 00000000001 00000000000000000007 0000000000001", MC_SET, "k");
    assert_int_equal(p.req.flags, 1);
    assert_int_equal(p.req.exptime, 7);
    assert_int_equal(p.req.bytes, 1);
    /* memcached's numbers are at most 20 characters, leading zeros too */
    assert_int_equal(rc_of("set k 0 000000000000000000007 1"), MC_ERR_FORMAT);
    assert_ok1(&p, "set k 0 -0 1", MC_SET, "k");
    assert_int_equal(p.req.exptime, 0);
    assert_int_equal(rc_of("set k 0 - 1"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k 0 0 -1"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k 0 0 1x"), MC_ERR_FORMAT);
    assert_int_equal(rc_of("set k 0 0 1 2"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("set k 0 0"), MC_ERR_UNKNOWN);
    /* noreply, options, spaces: the general path, same answers */
    assert_ok1(&p, "set k 0 0 1 noreply", MC_SET, "k");
    assert_true(p.req.noreply);
    assert_ok1(&p, "set k 0 0 1 noreply w=all", MC_SET, "k");
    assert_true(p.req.noreply);
    assert_int_equal(p.req.w.kind, MC_LEVEL_ALL);
    assert_ok1(&p, "set k 0 0 1 ", MC_SET, "k");
    assert_ok1(&p, "set noreply 0 0 1", MC_SET, "noreply");
    assert_false(p.req.noreply);
    assert_ok1(&p, "set r=one 0 0 1", MC_SET, "r=one"); /* not last, so a key */
    assert_int_equal(p.req.r.kind, MC_LEVEL_DEFAULT);
    assert_int_equal(rc_of("set k\t0 0 1"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("set k\x01 0 0 1"), MC_ERR_FORMAT);
    assert_int_equal(parse_n(&p, "set k 0 0 1", 11, 0), MC_ERR_FORMAT);
    /* 250 bytes a key, 251 not */
    memset(line, 0, sizeof(line));
    memcpy(line, "set ", 4);
    memset(line + 4, 'k', 250);
    memcpy(line + 254, " 1 2 3", 6);
    assert_int_equal(parse(&p, line), MC_OK);
    assert_int_equal(p.keys[0].len, 250);
    memmove(line + 255, line + 254, 6);
    line[254] = 'k';
    assert_int_equal(rc_of(line), MC_ERR_FORMAT);
}

/* ---- options ---- */

static void test_level_options(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, "get k r=one"), MC_OK);
    assert_int_equal(p.req.nkeys, 1);
    assert_key(&p, 0, "k");
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
    assert_int_equal(p.req.w.kind, MC_LEVEL_DEFAULT);

    assert_ok1(&p, "set k 0 0 1 w=quorum", MC_SET, "k");
    assert_int_equal(p.req.w.kind, MC_LEVEL_QUORUM);
    assert_int_equal(p.req.bytes, 1);

    assert_int_equal(parse(&p, "gets a b r=all w=2"), MC_OK);
    assert_int_equal(p.req.nkeys, 2);
    assert_key(&p, 1, "b");
    assert_int_equal(p.req.r.kind, MC_LEVEL_ALL);
    assert_int_equal(p.req.w.kind, MC_LEVEL_NUM);
    assert_int_equal(p.req.w.num, 2);

    assert_ok1(&p, "delete k r=16", MC_DELETE, "k");
    assert_int_equal(p.req.r.kind, MC_LEVEL_NUM);
    assert_int_equal(p.req.r.num, 16);

    /* bad levels */
    static const char *const bad[] = {
        "get k r=0",   "get k r=abc", "get k r=17",     "get k w=",
        "get k r=ONEE", "get k r=-1", "set k 0 0 1 w=0", "delete k r=x noreply",
        "incr k 1 w=17", "touch k 1 r=quorum w=some", "siblings k r=0", "gat 1 k w=zero",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (rc_of(bad[i]) != MC_ERR_LEVEL)
            fail_msg("\"%s\": rc %d, want MC_ERR_LEVEL", bad[i], rc_of(bad[i]));
    /* a token that is not an option stays an argument */
    assert_int_equal(parse(&p, "get k x=one"), MC_OK);
    assert_int_equal(p.req.nkeys, 2);
    assert_key(&p, 1, "x=one");
}

static void test_options_with_noreply(void **state)
{
    static const char *const lines[] = {
        "set k 0 0 1 noreply r=one w=all", "set k 0 0 1 r=one noreply w=all",
        "set k 0 0 1 r=one w=all noreply", "set k 0 0 1 w=all r=one noreply",
    };
    parsed_t p;

    (void)state;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        assert_ok1(&p, lines[i], MC_SET, "k");
        assert_true(p.req.noreply);
        assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
        assert_int_equal(p.req.w.kind, MC_LEVEL_ALL);
        assert_int_equal(p.req.flags, 0);
        assert_int_equal(p.req.bytes, 1);
    }
    assert_ok1(&p, "delete k w=quorum noreply", MC_DELETE, "k");
    assert_true(p.req.noreply);
    assert_int_equal(p.req.w.kind, MC_LEVEL_QUORUM);
    assert_ok1(&p, "incr k 3 noreply w=1", MC_INCR, "k");
    assert_true(p.req.delta == 3);
    assert_true(p.req.noreply);
    assert_int_equal(p.req.w.num, 1);
}

static void test_consistency(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, "consistency"), MC_OK);
    assert_int_equal(p.req.cmd, MC_CONSISTENCY);
    assert_int_equal(p.req.r.kind, MC_LEVEL_DEFAULT);
    assert_int_equal(p.req.w.kind, MC_LEVEL_DEFAULT);
    assert_int_equal(parse(&p, "consistency r=one w=all"), MC_OK);
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
    assert_int_equal(p.req.w.kind, MC_LEVEL_ALL);
    assert_int_equal(parse(&p, "consistency w=3"), MC_OK);
    assert_int_equal(p.req.r.kind, MC_LEVEL_DEFAULT);
    assert_int_equal(p.req.w.num, 3);
    assert_int_equal(rc_of("consistency foo"), MC_ERR_LEVEL);
    assert_int_equal(rc_of("consistency r=one foo"), MC_ERR_LEVEL);
    assert_int_equal(rc_of("consistency r=zero"), MC_ERR_LEVEL);
    assert_int_equal(rc_of("consistency noreply"), MC_ERR_LEVEL);
}

/* issue 8 item 7: `W=ALL` answered ERROR, and `consistency one` was a bad
 * level. */
static void test_levels_in_any_case_and_consistency_level(void **state)
{
    parsed_t p;

    (void)state;
    assert_ok1(&p, "set k 0 0 1 W=ALL", MC_SET, "k");
    assert_int_equal(p.req.w.kind, MC_LEVEL_ALL);
    assert_int_equal(parse(&p, "get k R=One"), MC_OK);
    assert_int_equal(p.req.nkeys, 1);
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
    assert_ok1(&p, "delete k w=Quorum", MC_DELETE, "k");
    assert_int_equal(p.req.w.kind, MC_LEVEL_QUORUM);
    assert_int_equal(rc_of("get k R=Onee"), MC_ERR_LEVEL);

    assert_int_equal(parse(&p, "consistency one"), MC_OK);
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
    assert_int_equal(p.req.w.kind, MC_LEVEL_ONE);
    assert_int_equal(parse(&p, "consistency ALL"), MC_OK);
    assert_int_equal(p.req.r.kind, MC_LEVEL_ALL);
    assert_int_equal(p.req.w.kind, MC_LEVEL_ALL);
    assert_int_equal(parse(&p, "consistency 2"), MC_OK);
    assert_int_equal(p.req.r.num, 2);
    assert_int_equal(p.req.w.num, 2);
    /* an explicit r=/w= wins over the bare level, wherever it stands */
    assert_int_equal(parse(&p, "consistency w=all one"), MC_OK);
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
    assert_int_equal(p.req.w.kind, MC_LEVEL_ALL);
    assert_int_equal(parse(&p, "consistency R=one W=quorum"), MC_OK);
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
    assert_int_equal(p.req.w.kind, MC_LEVEL_QUORUM);
    assert_int_equal(rc_of("consistency one all"), MC_ERR_LEVEL);
    assert_int_equal(rc_of("consistency 0"), MC_ERR_LEVEL);
    assert_int_equal(rc_of("consistency ctx=[]"), MC_ERR_CTX_CMD);
}

/* issue 8 item 6: a storage command rejected after its line was read must
 * swallow its data block, or the data is read as a command. */
static void test_storage_rejections_swallow_data(void **state)
{
    static const struct {
        const char *line;
        enum mc_parse_rc rc;
        bool swallow;
    } forms[] = {
        {"set x 0 0 1 w=0", MC_ERR_LEVEL, true},
        {"set x 0 0 1 w=bogus", MC_ERR_LEVEL, true},
        {"set x 0 0 1 w=17", MC_ERR_LEVEL, true},
        {"cas x 0 0 1 5 r=x", MC_ERR_LEVEL, true},
        {"append x 0 0 1 ctx=[]", MC_ERR_CTX_CMD, true},
        {"set x 0 0 1 ctx=[] ctx=[]", MC_ERR_CTX, true},
        {"set x 0 0 1 bogus", MC_ERR_UNKNOWN, true},
        {"set x 0 0 2000000", MC_ERR_TOO_LARGE, true},
        {"set x 0 0 2000000 w=0", MC_ERR_LEVEL, true},
        {"set x 0 0 1 w=one", MC_OK, true},
        /* memcached's own fields bad: memcached does not swallow, nor do we */
        {"set x y 0 1 w=0", MC_ERR_FORMAT, false},
        {"set x 0 0 -1 w=0", MC_ERR_FORMAT, false},
        {"set x 0 0 z w=0", MC_ERR_FORMAT, false},
        {"cas x 0 0 1 z w=0", MC_ERR_FORMAT, false},
        {"set x 0 0 2147483646", MC_ERR_FORMAT, false},
        {"set x 0 0 w=0", MC_ERR_UNKNOWN, false},
        {"get x w=0", MC_ERR_LEVEL, false},
    };
    parsed_t p;

    (void)state;
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        if (parse(&p, forms[i].line) != forms[i].rc || p.req.swallow != forms[i].swallow)
            fail_msg("\"%s\": rc %d swallow %d, want %d %d", forms[i].line, p.rc, p.req.swallow,
                     forms[i].rc, forms[i].swallow);
    assert_int_equal(parse(&p, "set x 0 0 7 w=0 noreply"), MC_ERR_LEVEL);
    assert_int_equal(p.req.bytes, 7);
    assert_true(p.req.noreply);
}

/* issue 8 item 5: memcached closes, without a reply, a connection that
 * sends an unknown command whose last token starts with "HTTP/". */
static void test_http_request_lines(void **state)
{
    static const char *const http[] = {
        "GET / HTTP/1.0", "PUT /a/b HTTP/1.1", "DELETE HTTP/1.1", "HEAD / HTTP/1.1",
        "POST /x HTTP/1.1", "HTTP/1.0", "bogus x HTTP/",
    };
    static const char *const not_http[] = {
        "bogus HTTP/1.0 x", "GET / http/1.0", "GET / HTTPS",
    };
    parsed_t p;

    (void)state;
    for (size_t i = 0; i < sizeof(http) / sizeof(http[0]); i++)
        if (rc_of(http[i]) != MC_ERR_HTTP)
            fail_msg("\"%s\": rc %d, want MC_ERR_HTTP", http[i], rc_of(http[i]));
    for (size_t i = 0; i < sizeof(not_http) / sizeof(not_http[0]); i++)
        if (rc_of(not_http[i]) != MC_ERR_UNKNOWN)
            fail_msg("\"%s\": rc %d, want MC_ERR_UNKNOWN", not_http[i], rc_of(not_http[i]));
    /* a known command is that command: these are keys */
    assert_int_equal(parse(&p, "get / HTTP/1.0"), MC_OK);
    assert_int_equal(p.req.nkeys, 2);
    assert_key(&p, 1, "HTTP/1.0");
    assert_ok1(&p, "delete HTTP/1.1", MC_DELETE, "HTTP/1.1");
    assert_string_equal(mc_parse_error_line(MC_ERR_HTTP), "");
}

/* ---- extensions: vget, ctx= ---- */

static void test_vget(void **state)
{
    parsed_t p;

    (void)state;
    assert_ok1(&p, "vget k", MC_VGET, "k");
    assert_int_equal(p.req.r.kind, MC_LEVEL_DEFAULT);
    assert_ok1(&p, "vget k r=all", MC_VGET, "k");
    assert_int_equal(p.req.r.kind, MC_LEVEL_ALL);
    assert_int_equal(rc_of("vget"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("vget k noreply"), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("vget k r=none"), MC_ERR_LEVEL);
    assert_int_equal(rc_of("vget k ctx=[]"), MC_ERR_CTX_CMD);
}

static void test_ctx_option(void **state)
{
    static const char *const elsewhere[] = {
        "get k ctx=[]", "gets ctx=[] k", "gat 1 k ctx=[]", "add k 0 0 1 ctx=[]",
        "replace k 0 0 1 ctx=[]", "prepend k 0 0 1 ctx=[]", "cas k 0 0 1 1 ctx=[]",
        "incr k 1 ctx=[]", "decr k 1 ctx=[]", "touch k 1 ctx=[]", "siblings k ctx=[]",
        "lget k ctx=[]", "flush_all ctx=[]", "version ctx=[]",
    };
    parsed_t p;

    (void)state;
    assert_ok1(&p, "set k 0 0 1 ctx=[00000000000000aa:3]", MC_SET, "k");
    assert_non_null(p.req.ctx);
    assert_int_equal(p.req.ctx_len, strlen("[00000000000000aa:3]"));
    assert_memory_equal(p.req.ctx, "[00000000000000aa:3]", p.req.ctx_len);
    assert_true(p.req.ctx > p.buf && p.req.ctx + p.req.ctx_len <= p.buf + p.len);
    assert_int_equal(p.req.bytes, 1);

    assert_ok1(&p, "delete k ctx=[] noreply w=all", MC_DELETE, "k");
    assert_int_equal(p.req.ctx_len, 2);
    assert_memory_equal(p.req.ctx, "[]", 2);
    assert_true(p.req.noreply);
    assert_int_equal(p.req.w.kind, MC_LEVEL_ALL);

    assert_ok1(&p, "delete k CTX=[]", MC_DELETE, "k"); /* option names in any case */
    assert_non_null(p.req.ctx);
    assert_ok1(&p, "set k 0 0 1 ctx=", MC_SET, "k"); /* empty: vc_parse refuses it */
    assert_non_null(p.req.ctx);
    assert_int_equal(p.req.ctx_len, 0);
    assert_ok1(&p, "set k 0 0 1", MC_SET, "k");
    assert_null(p.req.ctx);

    assert_int_equal(rc_of("delete k ctx=[] ctx=[]"), MC_ERR_CTX);
    for (size_t i = 0; i < sizeof(elsewhere) / sizeof(elsewhere[0]); i++)
        if (rc_of(elsewhere[i]) != MC_ERR_CTX_CMD)
            fail_msg("\"%s\": rc %d, want MC_ERR_CTX_CMD", elsewhere[i], rc_of(elsewhere[i]));
    assert_string_equal(mc_parse_error_line(MC_ERR_CTX), "CLIENT_ERROR bad context\r\n");
    assert_string_equal(mc_parse_error_line(MC_ERR_CTX_CMD),
                        "CLIENT_ERROR ctx= is only valid on set and delete\r\n");
}

/* A context of 64 entries (~2.5 KB) on a storage line parses, and its text
 * is what vc_parse reads back. */
static void test_ctx_of_64_entries(void **state)
{
    parsed_t *p = malloc(sizeof(*p));
    char *line = malloc(LINE_CAP);
    size_t off = 0;
    vclock_t vc;

    (void)state;
    assert_non_null(p);
    assert_non_null(line);
    off += (size_t)snprintf(line, LINE_CAP, "set k 0 0 1 ctx=[");
    for (int i = 0; i < 64; i++)
        off += (size_t)snprintf(line + off, LINE_CAP - off, "%s%016llx:%llu", i ? "," : "",
                                (unsigned long long)(0x1000 + i) << 40,
                                18446744073709551615ULL - (unsigned long long)i);
    off += (size_t)snprintf(line + off, LINE_CAP - off, "] w=all noreply");
    assert_true(off > 2400);
    assert_int_equal(parse_n(p, line, off, MAXKEYS), MC_OK);
    assert_true(p->req.noreply);
    assert_int_equal(p->req.w.kind, MC_LEVEL_ALL);
    vc_init(&vc);
    assert_int_equal(vc_parse(p->req.ctx, p->req.ctx_len, 1000, &vc), 0);
    assert_int_equal(vc.n, 64);
    assert_true(vc.e[63].counter == 18446744073709551615ULL - 63);
    vc_free(&vc);
    free(line);
    free(p);
}

/* The pieces a connection uses to parse a get line too long to hold. */
static void test_get_stream_helpers(void **state)
{
    enum mc_cmd cmd = MC_QUIT;
    mc_request_t req;
    enum mc_get_arg kind;
    bool have_exp = false;

    (void)state;
    assert_int_equal(mc_get_prefix("get a b", 7, &cmd), 4);
    assert_int_equal(cmd, MC_GET);
    assert_int_equal(mc_get_prefix("  gets a", 8, &cmd), 7);
    assert_int_equal(cmd, MC_GETS);
    assert_int_equal(mc_get_prefix("gat 1 a", 7, &cmd), 4);
    assert_int_equal(cmd, MC_GAT);
    assert_int_equal(mc_get_prefix("gats 1 a", 8, &cmd), 5);
    assert_int_equal(cmd, MC_GATS);
    assert_int_equal(mc_get_prefix("get", 3, &cmd), 0);
    assert_int_equal(mc_get_prefix("set a", 5, &cmd), 0);
    assert_int_equal(mc_get_prefix("getx a", 6, &cmd), 0);
    assert_int_equal(mc_get_prefix("GET a", 5, &cmd), 0);

    memset(&req, 0, sizeof(req));
    req.cmd = MC_GAT;
    assert_int_equal(mc_get_arg(&req, "r=one", 5, &have_exp, &kind), MC_OK);
    assert_int_equal(kind, MC_ARG_OPTION);
    assert_int_equal(req.r.kind, MC_LEVEL_ONE);
    assert_false(have_exp);
    assert_int_equal(mc_get_arg(&req, "100", 3, &have_exp, &kind), MC_OK);
    assert_int_equal(kind, MC_ARG_EXPTIME);
    assert_true(have_exp);
    assert_int_equal(req.exptime, 100);
    assert_int_equal(mc_get_arg(&req, "100", 3, &have_exp, &kind), MC_OK);
    assert_int_equal(kind, MC_ARG_KEY);
    assert_int_equal(mc_get_arg(&req, "a\x01", 2, &have_exp, &kind), MC_ERR_FORMAT);
    assert_int_equal(mc_get_arg(&req, "W=7x", 4, &have_exp, &kind), MC_ERR_LEVEL);
    assert_int_equal(mc_get_arg(&req, "ctx=[]", 6, &have_exp, &kind), MC_ERR_CTX_CMD);
    have_exp = false;
    assert_int_equal(mc_get_arg(&req, "soon", 4, &have_exp, &kind), MC_ERR_EXPTIME);
}

/* ---- administrative commands ---- */

static void test_flush_all(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, "flush_all"), MC_OK);
    assert_int_equal(p.req.cmd, MC_FLUSH_ALL);
    assert_false(p.req.has_delay);
    assert_false(p.req.noreply);
    assert_int_equal(parse(&p, "flush_all 30"), MC_OK);
    assert_true(p.req.has_delay);
    assert_int_equal(p.req.delay, 30);
    assert_int_equal(parse(&p, "flush_all noreply"), MC_OK);
    assert_false(p.req.has_delay);
    assert_true(p.req.noreply);
    assert_int_equal(parse(&p, "flush_all 0 noreply"), MC_OK);
    assert_true(p.req.has_delay);
    assert_int_equal(p.req.delay, 0);
    assert_true(p.req.noreply);
    /* memcached 1.6.18: a negative delay flushes now; a bad one is an
     * exptime error */
    assert_int_equal(parse(&p, "flush_all -1"), MC_OK);
    assert_true(p.req.has_delay);
    assert_int_equal(p.req.delay, 0);
    assert_int_equal(rc_of("flush_all soon"), MC_ERR_EXPTIME);
    assert_int_equal(rc_of("flush_all 2147483648"), MC_ERR_EXPTIME);
}

static void test_stats_verbosity(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, "stats"), MC_OK);
    assert_int_equal(p.req.cmd, MC_STATS);
    assert_null(p.req.arg);
    assert_int_equal(parse(&p, "stats settings "), MC_OK);
    assert_non_null(p.req.arg);
    assert_string_equal(p.req.arg, "settings");
    assert_int_equal(parse(&p, "stats items"), MC_OK);
    assert_non_null(p.req.arg);
    assert_memory_equal(p.req.arg, "items", 5);

    assert_int_equal(parse(&p, "verbosity 2"), MC_OK);
    assert_int_equal(p.req.cmd, MC_VERBOSITY);
    assert_int_equal(p.req.delay, 2);
    assert_false(p.req.noreply);
    assert_int_equal(parse(&p, "verbosity 0 noreply"), MC_OK);
    assert_int_equal(p.req.delay, 0);
    assert_true(p.req.noreply);
    assert_int_equal(rc_of("verbosity loud"), MC_ERR_FORMAT);
    /* memcached takes the lone noreply as the level: bad, and silent */
    assert_int_equal(parse(&p, "verbosity noreply"), MC_ERR_FORMAT);
    assert_true(p.req.noreply);
}

/* ---- line shape ---- */

static void test_nul_bytes_rejected(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse_n(&p, "get a\0b", 7, MAXKEYS), MC_ERR_FORMAT);
    assert_int_equal(parse_n(&p, "get a\0", 6, MAXKEYS), MC_ERR_FORMAT);
    assert_int_equal(parse_n(&p, "\0get a", 6, MAXKEYS), MC_ERR_FORMAT);
    assert_int_equal(parse_n(&p, "set k 0 0 1\0", 12, MAXKEYS), MC_ERR_FORMAT);
    assert_int_equal(parse_n(&p, "\0", 1, MAXKEYS), MC_ERR_FORMAT);
    /* the NUL after len is not part of the line */
    assert_int_equal(parse_n(&p, "get a\0b", 5, MAXKEYS), MC_OK);
    assert_key(&p, 0, "a");
}

static void test_empty_and_blank_lines(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse_n(&p, "", 0, MAXKEYS), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of(" "), MC_ERR_UNKNOWN);
    assert_int_equal(rc_of("        "), MC_ERR_UNKNOWN);
}

static void test_extra_spaces(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, "get   a    b  "), MC_OK);
    assert_int_equal(p.req.nkeys, 2);
    assert_key(&p, 0, "a");
    assert_key(&p, 1, "b");
    assert_int_equal(parse(&p, "   gat   5   a  r=one "), MC_OK);
    assert_int_equal(p.req.exptime, 5);
    assert_int_equal(p.req.nkeys, 1);
    assert_key(&p, 0, "a");
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
    assert_ok1(&p, "  set   k  3   4  5   noreply  ", MC_SET, "k");
    assert_int_equal(p.req.flags, 3);
    assert_int_equal(p.req.exptime, 4);
    assert_int_equal(p.req.bytes, 5);
    assert_true(p.req.noreply);
    assert_ok1(&p, "delete  k   0", MC_DELETE, "k");
    assert_int_equal(rc_of("incr  k    x"), MC_ERR_DELTA);
}

static void test_error_lines(void **state)
{
    (void)state;
    assert_string_equal(mc_parse_error_line(MC_ERR_UNKNOWN), "ERROR\r\n");
    assert_string_equal(mc_parse_error_line(MC_ERR_FORMAT),
                        "CLIENT_ERROR bad command line format\r\n");
    assert_string_equal(mc_parse_error_line(MC_ERR_DELTA),
                        "CLIENT_ERROR invalid numeric delta argument\r\n");
    assert_string_equal(mc_parse_error_line(MC_ERR_EXPTIME),
                        "CLIENT_ERROR invalid exptime argument\r\n");
    assert_string_equal(mc_parse_error_line(MC_ERR_LEVEL),
                        "CLIENT_ERROR bad consistency level\r\n");
    assert_string_equal(mc_parse_error_line(MC_ERR_TOO_LARGE),
                        "SERVER_ERROR object too large for cache\r\n");
}

/* ---- levels ---- */

static mc_level_t level_ok(const char *s)
{
    mc_level_t lv = {MC_LEVEL_DEFAULT, -1};
    if (mc_parse_level(s, strlen(s), &lv) != 0)
        fail_msg("mc_parse_level(\"%s\") failed", s);
    return lv;
}

static void test_parse_level(void **state)
{
    static const char *const bad[] = {"", "0", "17", "100", "-1", "+1", "ONEE",
                                      "on", "ones", "quorum1", "1x", " 1",
                                      "99999999999999999999999"};
    mc_level_t lv;

    (void)state;
    assert_int_equal(level_ok("one").kind, MC_LEVEL_ONE);
    assert_int_equal(level_ok("quorum").kind, MC_LEVEL_QUORUM);
    assert_int_equal(level_ok("all").kind, MC_LEVEL_ALL);
    lv = level_ok("1");
    assert_int_equal(lv.kind, MC_LEVEL_NUM);
    assert_int_equal(lv.num, 1);
    lv = level_ok("16");
    assert_int_equal(lv.kind, MC_LEVEL_NUM);
    assert_int_equal(lv.num, 16);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (mc_parse_level(bad[i], strlen(bad[i]), &lv) != -1)
            fail_msg("mc_parse_level(\"%s\") accepted", bad[i]);
    /* length bounds the input: "onex" cut to 3 is "one" */
    assert_int_equal(mc_parse_level("onex", 3, &lv), 0);
    assert_int_equal(lv.kind, MC_LEVEL_ONE);
    assert_int_equal(mc_parse_level("one", 2, &lv), -1);
}

static void test_level_resolve(void **state)
{
    const mc_level_t dflt = {MC_LEVEL_DEFAULT, 0}, one = {MC_LEVEL_ONE, 1},
                     quorum = {MC_LEVEL_QUORUM, 0}, all = {MC_LEVEL_ALL, 0};
    char buf[16];

    (void)state;
    for (int n = 1; n <= 16; n++) {
        assert_int_equal(mc_level_resolve(one, n, 1), 1);
        assert_int_equal(mc_level_resolve(quorum, n, 1), n / 2 + 1);
        assert_int_equal(mc_level_resolve(all, n, 1), n);
        for (int k = 1; k <= 16; k++) {
            mc_level_t num = {MC_LEVEL_NUM, k};
            assert_int_equal(mc_level_resolve(num, n, 1), k <= n ? k : -1);
            assert_int_equal(mc_level_resolve(dflt, n, k), k <= n ? k : -1);
        }
    }
    assert_int_equal(mc_level_resolve(quorum, 3, 1), 2);
    assert_int_equal(mc_level_resolve(quorum, 4, 1), 3);
    assert_int_equal(mc_level_resolve(quorum, 5, 1), 3);
    assert_int_equal(mc_level_resolve(dflt, 3, 0), -1);
    assert_int_equal(mc_level_resolve(dflt, 3, -2), -1);
    assert_int_equal(mc_level_resolve(one, 0, 1), -1);
    assert_int_equal(mc_level_resolve(all, 0, 1), -1);
    assert_int_equal(mc_level_resolve((mc_level_t){MC_LEVEL_NUM, 0}, 3, 1), -1);

    assert_string_equal(mc_level_str(one, buf, sizeof(buf)), "one");
    assert_string_equal(mc_level_str(quorum, buf, sizeof(buf)), "quorum");
    assert_string_equal(mc_level_str(all, buf, sizeof(buf)), "all");
    assert_string_equal(mc_level_str((mc_level_t){MC_LEVEL_NUM, 12}, buf, sizeof(buf)), "12");
}

/* ---- regressions ---- */

/* "stats reset\r\n" answered ERROR: req->arg pointed at "reset\r\n..." with
 * no NUL after the token when it ends the line, and conn.c strcmp()s it.
 * The same for "debug peer_drop on" (req->arg2). */
static void test_bug_stats_arg_not_terminated(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse(&p, "stats reset"), MC_OK);
    assert_non_null(p.req.arg);
    assert_string_equal(p.req.arg, "reset");
    assert_int_equal(parse(&p, "debug peer_drop on"), MC_OK);
    assert_string_equal(p.req.arg, "peer_drop");
    assert_string_equal(p.req.arg2, "on");
}

/* Trailing r=/w= options were counted against maxkeys before being peeled
 * off: "get a b r=one" with room for 2 keys was a format error. */
static void test_bug_options_count_against_maxkeys(void **state)
{
    parsed_t p;

    (void)state;
    assert_int_equal(parse_n(&p, "get a b r=one", 13, 2), MC_OK);
    assert_int_equal(p.req.nkeys, 2);
    assert_int_equal(p.req.r.kind, MC_LEVEL_ONE);
    assert_int_equal(parse_n(&p, "gat 1 a w=all r=one", 19, 1), MC_OK);
    assert_int_equal(p.req.nkeys, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argument_counts),
        cmocka_unit_test(test_every_command_word),
        cmocka_unit_test(test_get_and_gets),
        cmocka_unit_test(test_gat_exptime_and_keys),
        cmocka_unit_test(test_multiget_many_keys),
        cmocka_unit_test(test_storage_commands),
        cmocka_unit_test(test_storage_numbers),
        cmocka_unit_test(test_cas_unique),
        cmocka_unit_test(test_noreply_per_command),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_delete_argument_forms),
        cmocka_unit_test(test_noreply_silences_errors),
        cmocka_unit_test(test_incr_decr),
        cmocka_unit_test(test_touch),
        cmocka_unit_test(test_key_length),
        cmocka_unit_test(test_key_control_chars),
        cmocka_unit_test(test_plain_get_line_in_place),
        cmocka_unit_test(test_plain_get_edges),
        cmocka_unit_test(test_plain_set_edges),
        cmocka_unit_test(test_level_options),
        cmocka_unit_test(test_options_with_noreply),
        cmocka_unit_test(test_consistency),
        cmocka_unit_test(test_levels_in_any_case_and_consistency_level),
        cmocka_unit_test(test_storage_rejections_swallow_data),
        cmocka_unit_test(test_http_request_lines),
        cmocka_unit_test(test_vget),
        cmocka_unit_test(test_ctx_option),
        cmocka_unit_test(test_ctx_of_64_entries),
        cmocka_unit_test(test_get_stream_helpers),
        cmocka_unit_test(test_flush_all),
        cmocka_unit_test(test_stats_verbosity),
        cmocka_unit_test(test_nul_bytes_rejected),
        cmocka_unit_test(test_empty_and_blank_lines),
        cmocka_unit_test(test_extra_spaces),
        cmocka_unit_test(test_error_lines),
        cmocka_unit_test(test_parse_level),
        cmocka_unit_test(test_level_resolve),
        cmocka_unit_test(test_bug_stats_arg_not_terminated),
        cmocka_unit_test(test_bug_options_count_against_maxkeys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
