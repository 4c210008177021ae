/*
 * test_kv.c - unit tests of server/kv.c (cmocka): memcached command
 * semantics decided on a stored object, and the exptime rule.
 *
 * Objects are built with storage/object.h the way the server builds them:
 * a normal write supersedes what it read (context = the object's own
 * vector), a concurrent write has no context and becomes a sibling, a
 * delete writes a tombstone.  Each command is tried on a live, a missing
 * and a tombstoned key; when kv_decide asks for a write, the new sibling is
 * also applied with obj_update to check it reads back as the reply said.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/kv.h"
#include "../../storage/object.h"

#define KEY "key"

enum { NODE_A = 0xa, NODE_B = 0xb };
#define NOW_S 1700000000LL
#define NOW_US (NOW_S * 1000000LL)
#define DAYS30 (60 * 60 * 24 * 30)

enum state { LIVE, MISSING, TOMBSTONED };
static const char *const STATE_NAME[] = {"live", "missing", "tombstoned"};

/* One write through node at ts; ctx NULL makes it concurrent with all. */
static void write_sib(obj_t *o, const vclock_t *ctx, uint64_t node, const char *val,
                      uint32_t flags, int64_t expiry, bool tomb, int64_t ts)
{
    sibling_t s = {.flags = flags, .expiry = expiry, .ts_us = ts, .tombstone = tomb};
    if (val && *val) {
        s.len = strlen(val);
        s.value = malloc(s.len);
        assert_non_null(s.value);
        memcpy(s.value, val, s.len);
    }
    assert_int_equal(obj_update(o, ctx, node, 0, &s, ts), 0);
}

/* A normal (superseding) write. */
static void put(obj_t *o, const char *val, uint32_t flags, int64_t expiry, int64_t ts)
{
    write_sib(o, &o->vc, NODE_A, val, flags, expiry, false, ts);
}

/* o in state st; a live key holds val with flags 7, expiry NOW_S + 100. */
static void make(obj_t *o, enum state st, const char *val)
{
    obj_init(o);
    if (st == MISSING)
        return;
    put(o, val, 7, NOW_S + 100, NOW_US - 2000);
    if (st == TOMBSTONED)
        write_sib(o, &o->vc, NODE_A, NULL, 0, 0, true, NOW_US - 1000);
}

typedef struct decided {
    enum kv_result rc;
    sibling_t out;
    bool write;
    uint64_t number;
} decided_t;

static decided_t decide(const kv_op_t *op, const obj_t *cur)
{
    decided_t d;
    d.write = true; /* kv_decide must clear it */
    d.number = 0xdead;
    d.rc = kv_decide(op, KEY, strlen(KEY), cur, NOW_US, &d.out, &d.write, &d.number);
    if (!d.write)
        assert_null(d.out.value); /* nothing for the caller to free */
    return d;
}

static void assert_value(const uint8_t *v, size_t len, const char *want)
{
    assert_int_equal(len, strlen(want));
    if (len)
        assert_memory_equal(v, want, len);
}

/* The decided write, applied, is what a later read sees. */
static void apply(obj_t *cur, decided_t *d)
{
    assert_true(d->write);
    assert_true(d->out.ts_us == NOW_US);
    sibling_t s = d->out;
    assert_int_equal(obj_update(cur, &cur->vc, NODE_A, 0, &s, NOW_US), 0);
    d->out.value = NULL; /* moved into cur */
    assert_int_equal(cur->nsib, 1); /* it supersedes everything read */
}

static kv_op_t op_store(enum mc_cmd cmd, const char *data)
{
    kv_op_t op = {.cmd = cmd, .flags = 42, .expiry = NOW_S + 500,
                  .data = (const uint8_t *)data, .len = strlen(data)};
    return op;
}

/* ---- storage commands ---- */

static void test_set(void **state)
{
    (void)state;
    for (int st = LIVE; st <= TOMBSTONED; st++) {
        obj_t o;
        make(&o, st, "old");
        kv_op_t op = op_store(MC_SET, "new value");
        decided_t d = decide(&op, &o);
        assert_int_equal(d.rc, KV_STORED);
        assert_true(d.write);
        assert_false(d.out.tombstone);
        assert_int_equal(d.out.flags, 42);
        assert_true(d.out.expiry == NOW_S + 500);
        assert_value(d.out.value, d.out.len, "new value");
        apply(&o, &d);
        assert_true(obj_live(&o));
        assert_value(obj_winner(&o)->value, obj_winner(&o)->len, "new value");
        obj_free(&o);
    }
    /* an empty value is a value */
    obj_t o;
    make(&o, MISSING, NULL);
    kv_op_t op = op_store(MC_SET, "");
    decided_t d = decide(&op, &o);
    assert_int_equal(d.rc, KV_STORED);
    assert_int_equal(d.out.len, 0);
    apply(&o, &d);
    assert_true(obj_live(&o));
    assert_int_equal(obj_winner(&o)->len, 0);
    obj_free(&o);
}

static void test_add_replace(void **state)
{
    static const struct {
        enum mc_cmd cmd;
        enum kv_result want[3]; /* live, missing, tombstoned */
    } cases[] = {
        {MC_ADD, {KV_NOT_STORED, KV_STORED, KV_STORED}},
        {MC_REPLACE, {KV_STORED, KV_NOT_STORED, KV_NOT_STORED}},
    };

    (void)state;
    for (size_t c = 0; c < 2; c++) {
        for (int st = LIVE; st <= TOMBSTONED; st++) {
            obj_t o;
            make(&o, st, "old");
            kv_op_t op = op_store(cases[c].cmd, "new");
            decided_t d = decide(&op, &o);
            if (d.rc != cases[c].want[st])
                fail_msg("cmd %d on %s key: %d, want %d", cases[c].cmd, STATE_NAME[st], d.rc,
                         cases[c].want[st]);
            assert_int_equal(d.write, d.rc == KV_STORED);
            if (d.write) {
                assert_int_equal(d.out.flags, 42);
                assert_value(d.out.value, d.out.len, "new");
                apply(&o, &d);
                assert_value(obj_winner(&o)->value, obj_winner(&o)->len, "new");
            }
            obj_free(&o);
        }
    }
}

static void test_append_prepend(void **state)
{
    (void)state;
    for (int st = LIVE; st <= TOMBSTONED; st++) {
        for (int pre = 0; pre < 2; pre++) {
            obj_t o;
            make(&o, st, "middle");
            kv_op_t op = op_store(pre ? MC_PREPEND : MC_APPEND, "+x");
            decided_t d = decide(&op, &o);
            if (st != LIVE) {
                assert_int_equal(d.rc, KV_NOT_STORED);
                assert_false(d.write);
                obj_free(&o);
                continue;
            }
            assert_int_equal(d.rc, KV_STORED);
            assert_value(d.out.value, d.out.len, pre ? "+xmiddle" : "middle+x");
            /* memcached ignores the command's flags and exptime here */
            assert_int_equal(d.out.flags, 7);
            assert_true(d.out.expiry == NOW_S + 100);
            apply(&o, &d);
            assert_value(obj_winner(&o)->value, obj_winner(&o)->len,
                         pre ? "+xmiddle" : "middle+x");
            obj_free(&o);
        }
    }
}

static void test_cas(void **state)
{
    (void)state;
    for (int st = LIVE; st <= TOMBSTONED; st++) {
        obj_t o;
        make(&o, st, "v1");
        uint64_t unique = kv_cas_token(KEY, strlen(KEY), &o.vc);
        kv_op_t op = op_store(MC_CAS, "v2");

        op.cas = unique + 1; /* stale */
        decided_t d = decide(&op, &o);
        assert_int_equal(d.rc, st == LIVE ? KV_EXISTS : KV_NOT_FOUND);
        assert_false(d.write);
        op.cas = 0; /* never a valid unique */
        d = decide(&op, &o);
        assert_int_equal(d.rc, st == LIVE ? KV_EXISTS : KV_NOT_FOUND);

        op.cas = unique;
        d = decide(&op, &o);
        if (st != LIVE) {
            assert_int_equal(d.rc, KV_NOT_FOUND);
            assert_false(d.write);
            obj_free(&o);
            continue;
        }
        assert_int_equal(d.rc, KV_STORED);
        assert_int_equal(d.out.flags, 42);
        assert_true(d.out.expiry == NOW_S + 500);
        assert_value(d.out.value, d.out.len, "v2");
        apply(&o, &d);
        /* the write changed the unique: the same cas is now stale */
        assert_true(kv_cas_token(KEY, strlen(KEY), &o.vc) != unique);
        d = decide(&op, &o);
        assert_int_equal(d.rc, KV_EXISTS);
        assert_false(d.write);
        obj_free(&o);
    }
}

/* ---- incr / decr ---- */

static decided_t counter(const char *value, enum mc_cmd cmd, uint64_t delta)
{
    obj_t o;
    make(&o, LIVE, value);
    kv_op_t op = {.cmd = cmd, .delta = delta, .flags = 99, .expiry = 1};
    decided_t d = decide(&op, &o);
    if (d.write) {
        /* keeps the item's flags and expiry, not the op's */
        assert_int_equal(d.out.flags, 7);
        assert_true(d.out.expiry == NOW_S + 100);
        char buf[32];
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)d.number);
        assert_value(d.out.value, d.out.len, buf);
        apply(&o, &d);
        assert_value(obj_winner(&o)->value, obj_winner(&o)->len, buf);
    }
    obj_free(&o);
    return d;
}

static void assert_counter(const char *value, enum mc_cmd cmd, uint64_t delta, uint64_t want)
{
    decided_t d = counter(value, cmd, delta);
    if (d.rc != KV_NUMBER || !d.write || d.number != want)
        fail_msg("%s \"%s\" by %llu: rc %d number %llu, want %llu", cmd == MC_INCR ? "incr" : "decr",
                 value, (unsigned long long)delta, d.rc, (unsigned long long)d.number,
                 (unsigned long long)want);
}

static void test_incr_decr(void **state)
{
    (void)state;
    assert_counter("10", MC_INCR, 5, 15);
    assert_counter("0", MC_INCR, 0, 0);
    assert_counter("99", MC_INCR, 1, 100);
    assert_counter("007", MC_INCR, 1, 8);
    assert_counter("12 ", MC_INCR, 1, 13);      /* trailing whitespace is allowed */
    assert_counter("12\r\n", MC_INCR, 1, 13);
    assert_counter("18446744073709551615", MC_INCR, 1, 0); /* wraps at 2^64 */
    assert_counter("18446744073709551615", MC_INCR, 3, 2);
    assert_counter("1", MC_INCR, UINT64_MAX, 0);
    assert_counter("10", MC_DECR, 3, 7);
    assert_counter("100", MC_DECR, 1, 99);       /* value gets shorter */
    assert_counter("5", MC_DECR, 10, 0);         /* floor 0 */
    assert_counter("5", MC_DECR, UINT64_MAX, 0);
    assert_counter("0", MC_DECR, 1, 0);
    assert_counter("18446744073709551615", MC_DECR, 0, UINT64_MAX);

    static const char *const non_numeric[] = {"abc", "12abc", "", "-5", "1.5", "a1",
                                              "18446744073709551616", "99999999999999999999999",
                                              "1 2"};
    for (size_t i = 0; i < sizeof(non_numeric) / sizeof(non_numeric[0]); i++) {
        for (int dec = 0; dec < 2; dec++) {
            decided_t d = counter(non_numeric[i], dec ? MC_DECR : MC_INCR, 1);
            if (d.rc != KV_NON_NUMERIC || d.write)
                fail_msg("%s on \"%s\": rc %d write %d", dec ? "decr" : "incr", non_numeric[i],
                         d.rc, d.write);
        }
    }

    for (int st = MISSING; st <= TOMBSTONED; st++) {
        obj_t o;
        make(&o, st, "5");
        kv_op_t op = {.cmd = MC_INCR, .delta = 1};
        decided_t d = decide(&op, &o);
        assert_int_equal(d.rc, KV_NOT_FOUND);
        assert_false(d.write);
        op.cmd = MC_DECR;
        d = decide(&op, &o);
        assert_int_equal(d.rc, KV_NOT_FOUND);
        obj_free(&o);
    }
}

/* ---- touch / gat / delete ---- */

static void test_touch_and_gat(void **state)
{
    static const enum mc_cmd cmds[] = {MC_TOUCH, MC_GAT, MC_GATS};

    (void)state;
    for (size_t c = 0; c < 3; c++) {
        for (int st = LIVE; st <= TOMBSTONED; st++) {
            obj_t o;
            make(&o, st, "keep me");
            kv_op_t op = {.cmd = cmds[c], .expiry = NOW_S + 9999, .flags = 1};
            decided_t d = decide(&op, &o);
            if (st != LIVE) {
                assert_int_equal(d.rc, KV_NOT_FOUND);
                assert_false(d.write);
                obj_free(&o);
                continue;
            }
            assert_int_equal(d.rc, KV_TOUCHED);
            assert_value(d.out.value, d.out.len, "keep me");
            assert_int_equal(d.out.flags, 7);
            assert_true(d.out.expiry == NOW_S + 9999);
            assert_false(d.out.tombstone);
            apply(&o, &d);
            assert_true(obj_winner(&o)->expiry == NOW_S + 9999);
            obj_free(&o);
        }
    }
}

static void test_delete(void **state)
{
    (void)state;
    for (int st = LIVE; st <= TOMBSTONED; st++) {
        obj_t o;
        make(&o, st, "v");
        kv_op_t op = {.cmd = MC_DELETE};
        decided_t d = decide(&op, &o);
        if (st != LIVE) {
            assert_int_equal(d.rc, KV_NOT_FOUND);
            assert_false(d.write);
            obj_free(&o);
            continue;
        }
        assert_int_equal(d.rc, KV_DELETED);
        assert_true(d.out.tombstone);
        assert_int_equal(d.out.len, 0);
        apply(&o, &d);
        assert_false(obj_live(&o));
        /* deleted twice: the second is NOT_FOUND */
        d = decide(&op, &o);
        assert_int_equal(d.rc, KV_NOT_FOUND);
        obj_free(&o);
    }
}

/* ---- siblings ---- */

/* The winner (latest ts) is what commands see; a newer tombstone hides an
 * older concurrent value. */
static void test_siblings_use_winner(void **state)
{
    obj_t o;
    decided_t d;
    kv_op_t op;

    (void)state;
    obj_init(&o);
    write_sib(&o, NULL, NODE_A, "10", 3, 0, false, NOW_US - 500);
    write_sib(&o, NULL, NODE_B, "20", 4, 0, false, NOW_US - 100); /* concurrent, newer */
    assert_int_equal(o.nsib, 2);
    op = (kv_op_t){.cmd = MC_INCR, .delta = 1};
    d = decide(&op, &o);
    assert_int_equal(d.rc, KV_NUMBER);
    assert_true(d.number == 21);
    assert_int_equal(d.out.flags, 4);
    op = op_store(MC_APPEND, "!");
    free(d.out.value);
    d = decide(&op, &o);
    assert_value(d.out.value, d.out.len, "20!");
    /* cas against the merged vector, which covers both siblings */
    op = op_store(MC_CAS, "c");
    op.cas = kv_cas_token(KEY, strlen(KEY), &o.vc);
    free(d.out.value);
    d = decide(&op, &o);
    assert_int_equal(d.rc, KV_STORED);
    apply(&o, &d); /* resolves both siblings */
    assert_value(obj_winner(&o)->value, obj_winner(&o)->len, "c");
    obj_free(&o);

    /* newest sibling is a tombstone: the key is gone */
    obj_init(&o);
    write_sib(&o, NULL, NODE_A, "alive", 0, 0, false, NOW_US - 500);
    write_sib(&o, NULL, NODE_B, NULL, 0, 0, true, NOW_US - 100);
    op = op_store(MC_REPLACE, "x");
    d = decide(&op, &o);
    assert_int_equal(d.rc, KV_NOT_STORED);
    op = op_store(MC_ADD, "x");
    d = decide(&op, &o);
    assert_int_equal(d.rc, KV_STORED);
    free(d.out.value);
    obj_free(&o);

    /* older tombstone, newer value: the key exists */
    obj_init(&o);
    write_sib(&o, NULL, NODE_B, NULL, 0, 0, true, NOW_US - 500);
    write_sib(&o, NULL, NODE_A, "alive", 0, 0, false, NOW_US - 100);
    op = op_store(MC_ADD, "x");
    d = decide(&op, &o);
    assert_int_equal(d.rc, KV_NOT_STORED);
    op = (kv_op_t){.cmd = MC_DELETE};
    d = decide(&op, &o);
    assert_int_equal(d.rc, KV_DELETED);
    apply(&o, &d);
    assert_false(obj_live(&o));
    obj_free(&o);
}

static void test_result_lines(void **state)
{
    (void)state;
    assert_string_equal(kv_result_line(KV_STORED), "STORED\r\n");
    assert_string_equal(kv_result_line(KV_NOT_STORED), "NOT_STORED\r\n");
    assert_string_equal(kv_result_line(KV_EXISTS), "EXISTS\r\n");
    assert_string_equal(kv_result_line(KV_NOT_FOUND), "NOT_FOUND\r\n");
    assert_string_equal(kv_result_line(KV_DELETED), "DELETED\r\n");
    assert_string_equal(kv_result_line(KV_TOUCHED), "TOUCHED\r\n");
    assert_string_equal(kv_result_line(KV_NON_NUMERIC),
                        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
    assert_string_equal(kv_result_line(KV_NOMEM),
                        "SERVER_ERROR out of memory storing object\r\n");
}

/* ---- exptime ---- */

static void test_expiry(void **state)
{
    (void)state;
    assert_true(kv_expiry(0, NOW_S) == 0);                  /* never */
    assert_true(kv_expiry(-1, NOW_S) == 1);                 /* already expired */
    assert_true(kv_expiry(INT64_MIN, NOW_S) == 1);
    assert_true(kv_expiry(1, NOW_S) == NOW_S + 1);          /* relative */
    assert_true(kv_expiry(3600, NOW_S) == NOW_S + 3600);
    assert_true(kv_expiry(DAYS30, NOW_S) == NOW_S + DAYS30); /* 30 days: still relative */
    assert_true(kv_expiry(NOW_S + 10, NOW_S) == NOW_S + 10); /* absolute */
    assert_true(kv_expiry(INT64_MAX, NOW_S) == INT64_MAX);
    /* absolute in the past (30 days + 1 s is 1970) or now: expired */
    assert_true(kv_expiry(DAYS30 + 1, NOW_S) == 1);
    assert_true(kv_expiry(NOW_S - 1, NOW_S) == 1);
    assert_true(kv_expiry(NOW_S, NOW_S) == 1);

    /* what the results mean to the purge that runs before each command */
    obj_t o;
    obj_init(&o);
    put(&o, "v", 0, kv_expiry(-1, NOW_S), NOW_US - 10);
    obj_purge(&o, NOW_US, 0);
    assert_false(obj_live(&o));
    put(&o, "v", 0, kv_expiry(10, NOW_S), NOW_US - 10);
    obj_purge(&o, (NOW_S + 9) * 1000000, 0);
    assert_true(obj_live(&o));
    obj_purge(&o, (NOW_S + 10) * 1000000, 0);
    assert_false(obj_live(&o));
    obj_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_add_replace),
        cmocka_unit_test(test_append_prepend),
        cmocka_unit_test(test_cas),
        cmocka_unit_test(test_incr_decr),
        cmocka_unit_test(test_touch_and_gat),
        cmocka_unit_test(test_delete),
        cmocka_unit_test(test_siblings_use_winner),
        cmocka_unit_test(test_result_lines),
        cmocka_unit_test(test_expiry),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
