/*
 * test_objcache.c - unit tests for storage/objcache.c: hits, misses and
 * absent keys; a hit lends the object as it was put (a copy, not the
 * caller's); invalidation; the byte bound with least-recently-used
 * eviction; entries too large to cache; growth of the bucket array under
 * many keys, checked against a plain model.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../storage/objcache.h"

/* An object of one sibling holding value (len bytes of c) written by dot
 * (node, counter). */
static void make_obj(obj_t *o, uint64_t node, uint64_t counter, char c, size_t len)
{
    obj_init(o);
    assert_int_equal(vc_set(&o->vc, node, counter, 1), 0);
    o->sib = calloc(1, sizeof(*o->sib));
    assert_non_null(o->sib);
    o->cap = o->nsib = 1;
    o->sib[0].dot = (dot_t){node, counter};
    o->sib[0].ts_us = 1000;
    o->sib[0].len = len;
    if (len) {
        o->sib[0].value = malloc(len);
        memset(o->sib[0].value, c, len);
    }
    o->stored_hash = 0x1234 + counter;
}

static void test_hit_miss_absent(void **state)
{
    (void)state;
    ocache_t *c = ocache_new(1 << 20);
    const obj_t *got;
    assert_false(ocache_get(c, "k", 1, &got));
    obj_t o;
    make_obj(&o, 7, 1, 'a', 10);
    assert_int_equal(ocache_put(c, "k", 1, &o), 0);
    o.sib[0].value[0] = 'z'; /* the cache holds its own copy */
    assert_true(ocache_get(c, "k", 1, &got));
    assert_non_null(got);
    assert_int_equal(got->nsib, 1);
    assert_int_equal(got->sib[0].len, 10);
    assert_int_equal(got->sib[0].value[0], 'a');
    assert_int_equal(got->stored_hash, 0x1235);
    assert_true(obj_live(got));
    /* absent keys are cached as absent */
    assert_int_equal(ocache_put(c, "gone", 4, NULL), 0);
    assert_true(ocache_get(c, "gone", 4, &got));
    assert_null(got);
    /* a key that is a prefix of another is another key */
    assert_false(ocache_get(c, "kk", 2, &got));
    ocache_stats_t st;
    ocache_get_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.items, 2);
    assert_int_equal(st.bytes, ocache_entry_size(1, &o) + ocache_entry_size(4, NULL));
    obj_free(&o);
    ocache_free(c);
}

static void test_invalidate_and_replace(void **state)
{
    (void)state;
    ocache_t *c = ocache_new(1 << 20);
    const obj_t *got;
    obj_t a, b;
    make_obj(&a, 1, 1, 'a', 5);
    make_obj(&b, 1, 2, 'b', 50);
    assert_int_equal(ocache_put(c, "k", 1, &a), 0);
    ocache_del(c, "k", 1);
    assert_false(ocache_get(c, "k", 1, &got));
    ocache_del(c, "k", 1); /* absent: nothing counted */
    assert_int_equal(ocache_put(c, "k", 1, &a), 0);
    assert_int_equal(ocache_put(c, "k", 1, &b), 0); /* replaces */
    assert_true(ocache_get(c, "k", 1, &got));
    assert_int_equal(got->sib[0].len, 50);
    ocache_stats_t st;
    ocache_get_stats(c, &st);
    assert_int_equal(st.invalidations, 1);
    assert_int_equal(st.items, 1);
    assert_int_equal(st.bytes, ocache_entry_size(1, &b));
    ocache_clear(c);
    ocache_get_stats(c, &st);
    assert_int_equal(st.items, 0);
    assert_int_equal(st.bytes, 0);
    obj_free(&a);
    obj_free(&b);
    ocache_free(c);
}

/* take moves the entry out (the cache forgets it), put_take moves an
 * object in (the caller's is left empty), also when it is not cached. */
static void test_take_and_put_take(void **state)
{
    (void)state;
    ocache_t *c = ocache_new(1 << 20);
    obj_t o, got;
    bool present = false;
    obj_init(&got);
    make_obj(&o, 5, 3, 'q', 20);
    assert_int_equal(ocache_put_take(c, "k", 1, &o), 0);
    assert_int_equal(o.nsib, 0);
    assert_null(o.sib);
    assert_true(ocache_take(c, "k", 1, &got, &present));
    assert_true(present);
    assert_int_equal(got.nsib, 1);
    assert_int_equal(got.sib[0].value[0], 'q');
    const obj_t *view;
    assert_false(ocache_get(c, "k", 1, &view)); /* gone */
    assert_int_equal(ocache_put(c, "gone", 4, NULL), 0);
    assert_true(ocache_take(c, "gone", 4, &got, &present));
    assert_false(present);
    assert_int_equal(got.nsib, 1); /* untouched */
    assert_false(ocache_take(c, "gone", 4, &got, &present));
    /* too big to cache: freed, still left empty */
    ocache_t *small = ocache_new(64);
    make_obj(&o, 5, 4, 'r', 100);
    assert_int_equal(ocache_put_take(small, "k", 1, &o), 0);
    assert_int_equal(o.nsib, 0);
    ocache_stats_t st;
    ocache_get_stats(small, &st);
    assert_int_equal(st.items, 0);
    ocache_get_stats(c, &st);
    assert_int_equal(st.items, 0);
    assert_int_equal(st.bytes, 0);
    obj_free(&got);
    ocache_free(small);
    ocache_free(c);
}

static void test_bound_evicts_least_recent(void **state)
{
    (void)state;
    obj_t o;
    make_obj(&o, 3, 1, 'v', 100);
    size_t one = ocache_entry_size(3, &o);
    ocache_t *c = ocache_new(one * 10);
    const obj_t *got;
    for (int i = 0; i < 10; i++) {
        char k[4];
        snprintf(k, sizeof(k), "k%02d", i);
        assert_int_equal(ocache_put(c, k, 3, &o), 0);
    }
    assert_true(ocache_get(c, "k00", 3, &got)); /* k00 is now the most recent */
    assert_int_equal(ocache_put(c, "k10", 3, &o), 0);
    assert_true(ocache_get(c, "k00", 3, &got));
    assert_false(ocache_get(c, "k01", 3, &got)); /* the least recent went */
    ocache_stats_t st;
    ocache_get_stats(c, &st);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.items, 10);
    assert_true(st.bytes <= one * 10);
    /* larger than an eighth of the bound: not cached, nothing evicted */
    obj_t big;
    make_obj(&big, 3, 2, 'b', one * 2);
    assert_int_equal(ocache_put(c, "big", 3, &big), 0);
    assert_false(ocache_get(c, "big", 3, &got));
    ocache_get_stats(c, &st);
    assert_int_equal(st.evictions, 1);
    /* a cache of 0 bytes holds nothing */
    ocache_t *z = ocache_new(0);
    assert_int_equal(ocache_put(z, "k", 1, &o), 0);
    assert_false(ocache_get(z, "k", 1, &got));
    ocache_free(z);
    obj_free(&big);
    obj_free(&o);
    ocache_free(c);
}

/* 20,000 keys through a cache that holds about half of them, against a
 * model of what was put last per key: every hit is the object last put. */
static void test_many_keys_against_model(void **state)
{
    (void)state;
    enum { NK = 20000 };
    obj_t o;
    make_obj(&o, 9, 1, 'x', 8);
    ocache_t *c = ocache_new(ocache_entry_size(6, &o) * NK / 2);
    static uint32_t last[NK]; /* counter last put, 0 = deleted or never */
    memset(last, 0, sizeof(last));
    uint64_t s = 42;
    for (int step = 0; step < 200000; step++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t k = (uint32_t)(s >> 33) % NK, op = (uint32_t)(s >> 20) % 10;
        char key[8];
        snprintf(key, sizeof(key), "%06u", k);
        const obj_t *got;
        if (op < 3) {
            uint32_t ctr = (uint32_t)step + 1;
            o.vc.e[0].counter = ctr;
            o.sib[0].dot.counter = ctr;
            assert_int_equal(ocache_put(c, key, 6, &o), 0);
            last[k] = ctr;
        } else if (op < 4) {
            ocache_del(c, key, 6);
            last[k] = 0;
        } else if (ocache_get(c, key, 6, &got)) {
            assert_non_null(got);
            assert_int_equal(got->sib[0].dot.counter, last[k]);
        }
    }
    ocache_stats_t st;
    ocache_get_stats(c, &st);
    assert_true(st.bytes <= st.max_bytes);
    assert_true(st.evictions > 0);
    assert_true(st.hits > 0);
    obj_free(&o);
    ocache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_miss_absent),
        cmocka_unit_test(test_invalidate_and_replace),
        cmocka_unit_test(test_take_and_put_take),
        cmocka_unit_test(test_bound_evicts_least_recent),
        cmocka_unit_test(test_many_keys_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
