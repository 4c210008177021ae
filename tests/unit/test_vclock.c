/*
 * test_vclock.c - unit tests for common/vclock.c: set/get, compare in all
 * four orders, merge, descends, covers, prune order, digest stability and
 * the operator text form.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../common/vclock.h"

/* vc from (node, counter) pairs, all stamped ts. */
static void build(vclock_t *vc, const uint64_t *pairs, size_t npairs, int64_t ts)
{
    vc_init(vc);
    for (size_t i = 0; i < npairs; i++)
        assert_int_equal(vc_set(vc, pairs[2 * i], pairs[2 * i + 1], ts), 0);
}

static void assert_sorted_unique(const vclock_t *vc)
{
    for (uint32_t i = 1; i < vc->n; i++)
        assert_true(vc->e[i - 1].node < vc->e[i].node);
    for (uint32_t i = 0; i < vc->n; i++)
        assert_true(vc->e[i].counter >= 1);
}

static void test_set_get(void **state)
{
    (void)state;
    vclock_t vc;
    vc_init(&vc);
    assert_int_equal(vc_get(&vc, 7), 0);
    assert_int_equal(vc_set(&vc, 7, 3, 100), 0);
    assert_int_equal(vc_set(&vc, 2, 1, 100), 0);
    assert_int_equal(vc_set(&vc, 9, 5, 100), 0);
    assert_int_equal(vc.n, 3);
    assert_sorted_unique(&vc);
    assert_int_equal(vc_get(&vc, 7), 3);
    /* never lowers; ts moves only with the counter */
    assert_int_equal(vc_set(&vc, 7, 2, 200), 0);
    assert_int_equal(vc_get(&vc, 7), 3);
    assert_int_equal(vc_set(&vc, 7, 3, 300), 0);
    assert_int_equal(vc.e[1].ts_us, 100);
    assert_int_equal(vc_set(&vc, 7, 4, 400), 0);
    assert_int_equal(vc_get(&vc, 7), 4);
    assert_int_equal(vc.e[1].ts_us, 400);
    /* counter 0 on an absent node is a no-op (absent already means 0) */
    assert_int_equal(vc_set(&vc, 1, 0, 1), 0);
    assert_int_equal(vc.n, 3);
    vc_free(&vc);
    vc_free(&vc); /* twice is fine */
    assert_int_equal(vc.n, 0);
    assert_null(vc.e);
}

static void test_many_inserts_stay_sorted(void **state)
{
    (void)state;
    vclock_t vc;
    vc_init(&vc);
    for (uint64_t i = 0; i < 500; i++)
        assert_int_equal(vc_set(&vc, (i * 7919) % 1009, i + 1, (int64_t)i), 0);
    assert_int_equal(vc.n, 500);
    assert_sorted_unique(&vc);
    for (uint64_t i = 0; i < 500; i++)
        assert_int_equal(vc_get(&vc, (i * 7919) % 1009), i + 1);
    vc_free(&vc);
}

static void test_copy(void **state)
{
    (void)state;
    vclock_t a, b;
    build(&a, (uint64_t[]){1, 1, 2, 2, 3, 3}, 3, 5);
    build(&b, (uint64_t[]){9, 9}, 1, 5);
    assert_int_equal(vc_copy(&b, &a), 0);
    assert_int_equal(vc_compare(&a, &b), VC_EQUAL);
    assert_int_equal(vc_copy(&b, &b), 0);
    vclock_t empty;
    vc_init(&empty);
    assert_int_equal(vc_copy(&b, &empty), 0);
    assert_int_equal(b.n, 0);
    vc_free(&a);
    vc_free(&b);
}

static void test_compare(void **state)
{
    (void)state;
    vclock_t a, b, e1, e2;
    vc_init(&e1);
    vc_init(&e2);
    assert_int_equal(vc_compare(&e1, &e2), VC_EQUAL);

    build(&a, (uint64_t[]){1, 2, 2, 1}, 2, 0);
    build(&b, (uint64_t[]){2, 1, 1, 2}, 2, 99); /* other order, other ts */
    assert_int_equal(vc_compare(&a, &b), VC_EQUAL);
    assert_int_equal(vc_compare(&e1, &a), VC_BEFORE);
    assert_int_equal(vc_compare(&a, &e1), VC_AFTER);

    assert_int_equal(vc_set(&b, 2, 2, 0), 0);
    assert_int_equal(vc_compare(&a, &b), VC_BEFORE);
    assert_int_equal(vc_compare(&b, &a), VC_AFTER);

    assert_int_equal(vc_set(&b, 3, 1, 0), 0); /* b gains a node a lacks */
    assert_int_equal(vc_compare(&a, &b), VC_BEFORE);

    assert_int_equal(vc_set(&a, 1, 5, 0), 0);
    assert_int_equal(vc_compare(&a, &b), VC_CONCURRENT);
    assert_int_equal(vc_compare(&b, &a), VC_CONCURRENT);

    /* disjoint nodes are concurrent */
    vclock_t c, d;
    build(&c, (uint64_t[]){10, 1}, 1, 0);
    build(&d, (uint64_t[]){11, 1}, 1, 0);
    assert_int_equal(vc_compare(&c, &d), VC_CONCURRENT);
    vc_free(&a);
    vc_free(&b);
    vc_free(&c);
    vc_free(&d);
}

static void test_merge(void **state)
{
    (void)state;
    vclock_t a, b, m;
    build(&a, (uint64_t[]){1, 3, 3, 1, 5, 7}, 3, 10);
    build(&b, (uint64_t[]){0, 1, 3, 4, 4, 2, 5, 7, 9, 9}, 5, 20);
    vc_init(&m);
    assert_int_equal(vc_copy(&m, &a), 0);
    assert_int_equal(vc_merge(&m, &b), 0);
    assert_int_equal(m.n, 6);
    assert_sorted_unique(&m);
    assert_int_equal(vc_get(&m, 0), 1);
    assert_int_equal(vc_get(&m, 1), 3);
    assert_int_equal(vc_get(&m, 3), 4);
    assert_int_equal(vc_get(&m, 4), 2);
    assert_int_equal(vc_get(&m, 5), 7);
    assert_int_equal(vc_get(&m, 9), 9);
    /* equal counters (node 5): the later ts wins */
    assert_int_equal(m.e[4].node, 5);
    assert_int_equal(m.e[4].ts_us, 20);
    assert_true(vc_descends(&m, &a));
    assert_true(vc_descends(&m, &b));

    /* commutative; merge with self and with empty are no-ops */
    vclock_t m2;
    vc_init(&m2);
    assert_int_equal(vc_copy(&m2, &b), 0);
    assert_int_equal(vc_merge(&m2, &a), 0);
    assert_int_equal(vc_compare(&m, &m2), VC_EQUAL);
    assert_int_equal(vc_merge(&m2, &m2), 0);
    assert_int_equal(vc_compare(&m, &m2), VC_EQUAL);
    vclock_t empty;
    vc_init(&empty);
    assert_int_equal(vc_merge(&m2, &empty), 0);
    assert_int_equal(vc_merge(&empty, &m2), 0);
    assert_int_equal(vc_compare(&empty, &m2), VC_EQUAL);
    vc_free(&a);
    vc_free(&b);
    vc_free(&m);
    vc_free(&m2);
    vc_free(&empty);
}

static void test_descends_covers(void **state)
{
    (void)state;
    vclock_t a, b, e;
    build(&a, (uint64_t[]){1, 2, 2, 2}, 2, 0);
    build(&b, (uint64_t[]){1, 1}, 1, 0);
    vc_init(&e);
    assert_true(vc_descends(&a, &b));
    assert_false(vc_descends(&b, &a));
    assert_true(vc_descends(&a, &a));
    assert_true(vc_descends(&a, &e));
    assert_false(vc_descends(&e, &a));
    assert_true(vc_covers(&a, (dot_t){1, 2}));
    assert_true(vc_covers(&a, (dot_t){1, 1}));
    assert_false(vc_covers(&a, (dot_t){1, 3}));
    assert_false(vc_covers(&a, (dot_t){3, 1}));
    assert_false(vc_covers(&e, (dot_t){3, 1}));
    vc_free(&a);
    vc_free(&b);
}

static void test_prune_keeps_newest(void **state)
{
    (void)state;
    vclock_t vc;
    vc_init(&vc);
    /* node i stamped at ts (i * 37) % 100: distinct, scrambled ages */
    for (uint64_t i = 1; i <= 100; i++)
        assert_int_equal(vc_set(&vc, i, i, (int64_t)((i * 37) % 100)), 0);
    assert_int_equal(vc_prune(&vc, 100), 0);
    assert_int_equal(vc_prune(&vc, 10), 90);
    assert_int_equal(vc.n, 10);
    assert_sorted_unique(&vc);
    for (uint32_t i = 0; i < vc.n; i++)
        assert_true(vc.e[i].ts_us >= 90);
    for (uint64_t i = 1; i <= 100; i++)
        assert_int_equal(vc_get(&vc, i), (i * 37) % 100 >= 90 ? i : 0);
    vc_free(&vc);

    /* equal ts: the smaller node ids go first */
    build(&vc, (uint64_t[]){5, 1, 3, 1, 9, 1, 1, 1}, 4, 7);
    assert_int_equal(vc_prune(&vc, 2), 2);
    assert_int_equal(vc.e[0].node, 5);
    assert_int_equal(vc.e[1].node, 9);
    assert_int_equal(vc_prune(&vc, 0), 2);
    assert_int_equal(vc.n, 0);
    vc_free(&vc);
}

static void test_digest(void **state)
{
    (void)state;
    vclock_t a, b, c, e1, e2;
    build(&a, (uint64_t[]){1, 2, 3, 4, 5, 6}, 3, 1);
    build(&b, (uint64_t[]){5, 6, 1, 2, 3, 4}, 3, 999); /* order and ts differ */
    build(&c, (uint64_t[]){1, 2, 3, 4, 5, 7}, 3, 1);
    vc_init(&e1);
    vc_init(&e2);
    assert_int_equal(vc_digest(&a), vc_digest(&b));
    assert_int_not_equal(vc_digest(&a), vc_digest(&c));
    assert_int_not_equal(vc_digest(&a), 0);
    assert_int_equal(vc_digest(&e1), vc_digest(&e2));
    assert_int_not_equal(vc_digest(&e1), 0);
    assert_int_not_equal(vc_digest(&e1), vc_digest(&a));
    vc_free(&a);
    vc_free(&b);
    vc_free(&c);

    /* large vectors (past one hashing chunk) too, built in two orders */
    vc_init(&a);
    vc_init(&b);
    for (uint64_t i = 0; i < 1000; i++) {
        assert_int_equal(vc_set(&a, i, i + 1, 0), 0);
        assert_int_equal(vc_set(&b, 999 - i, 1000 - i, (int64_t)i), 0);
    }
    assert_int_equal(vc_digest(&a), vc_digest(&b));
    assert_int_equal(vc_set(&b, 500, 10000, 0), 0);
    assert_int_not_equal(vc_digest(&a), vc_digest(&b));
    vc_free(&a);
    vc_free(&b);
}

static void test_format(void **state)
{
    (void)state;
    vclock_t vc;
    char buf[128];
    vc_init(&vc);
    assert_int_equal(vc_format(&vc, buf, sizeof(buf)), 2);
    assert_string_equal(buf, "[]");
    assert_int_equal(vc_set(&vc, 0xff01, 1, 0), 0);
    assert_int_equal(vc_set(&vc, 0xab12, 3, 0), 0);
    const char *want = "[000000000000ab12:3,000000000000ff01:1]";
    assert_int_equal(vc_format(&vc, buf, sizeof(buf)), strlen(want));
    assert_string_equal(buf, want);
    /* truncation: like snprintf, NUL-terminated, full length returned */
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(vc_format(&vc, buf, 10), strlen(want));
    assert_int_equal(strlen(buf), 9);
    assert_memory_equal(buf, want, 9);
    assert_int_equal(buf[10], 'x');
    assert_int_equal(vc_format(&vc, NULL, 0), strlen(want));
    assert_int_equal(vc_format(&vc, buf, 1), strlen(want));
    assert_string_equal(buf, "");
    vc_free(&vc);
}

/* vc_parse reads back exactly what vc_format writes, and nothing else. */
static void test_parse(void **state)
{
    (void)state;
    vclock_t vc, back;
    char buf[256];
    vc_init(&vc);
    vc_init(&back);
    assert_int_equal(vc_parse("[]", 2, 8, &back), 0);
    assert_int_equal(back.n, 0);
    assert_int_equal(vc_set(&vc, 0xff01, 1, 0), 0);
    assert_int_equal(vc_set(&vc, 0xab12, 3, 0), 0);
    assert_int_equal(vc_set(&vc, UINT64_MAX, UINT64_MAX, 0), 0);
    size_t n = vc_format(&vc, buf, sizeof(buf));
    assert_int_equal(vc_parse(buf, n, 8, &back), 0);
    assert_int_equal(vc_compare(&vc, &back), VC_EQUAL);
    assert_int_equal(vc_parse(buf, n, 2, &back), -EINVAL); /* over max: back unchanged */
    assert_int_equal(back.n, 3);
    static const char *bad[] = {
        "", "[", "]", "[,]", "x[]", "[000000000000ab12]", "[000000000000ab12:]",
        "[000000000000ab12:0]", "[00000000000ab12:3]", "[000000000000ab12:3,]",
        "[000000000000ab12:3,000000000000ab12:4]", "[000000000000ff01:1,000000000000ab12:3]",
        "[000000000000ab12:18446744073709551616]", "[000000000000ab1g:3]",
        "[000000000000ab12:3 ]", "[000000000000ab12:-3]", "[0000000000000ab12:3]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vc_parse(bad[i], strlen(bad[i]), 8, &back), -EINVAL);
    vc_free(&vc);
    vc_free(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get),
        cmocka_unit_test(test_many_inserts_stay_sorted),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_descends_covers),
        cmocka_unit_test(test_prune_keeps_newest),
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
