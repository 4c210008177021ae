/*
 * test_store.c - unit tests for storage/store.c on a real LevelDB in a
 * mkdtemp directory (removed afterwards): objects and raw records, prefix
 * isolation, iteration, persistence across reopen, the fault seam and
 * corrupt records.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../storage/store.h"

typedef struct {
    char dir[64];  /* mkdtemp root, removed in teardown */
    char path[96]; /* the database, two levels below (mkdir -p) */
    store_t *st;
} fixture_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/qkv-test-store-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/a/db", f->dir);
    store_opts_t o = {.path = f->path};
    char *err = NULL;
    if (store_open(&o, &f->st, &err) != 0) {
        free(err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    store_close(f->st);
    int rc = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

static void reopen(fixture_t *f, bool sync)
{
    store_close(f->st);
    store_opts_t o = {.path = f->path, .sync = sync, .cache_bytes = 1 << 20,
                      .write_buffer = 1 << 20};
    char *err = NULL;
    assert_int_equal(store_open(&o, &f->st, &err), 0);
    assert_null(err);
}

/* An object with one sibling holding str, written through node. */
static void make_obj(obj_t *o, const char *str, uint64_t node)
{
    obj_init(o);
    sibling_t s = {.ts_us = 1, .len = strlen(str)};
    s.value = malloc(s.len ? s.len : 1);
    memcpy(s.value, str, s.len);
    assert_int_equal(obj_update(o, NULL, node, 0, &s, 1), 0);
}

static void assert_value(const obj_t *o, const char *str)
{
    const sibling_t *w = obj_winner(o);
    assert_non_null(w);
    assert_int_equal(w->len, strlen(str));
    assert_memory_equal(w->value, str, w->len);
}

static void test_put_get_del(void **state)
{
    fixture_t *f = *state;
    obj_t o, got;
    make_obj(&o, "hello", 1);
    obj_init(&got);
    assert_int_equal(store_get(f->st, "k1", 2, &got), 0); /* absent: a result */
    assert_int_equal(got.nsib, 0);
    assert_int_equal(store_put(f->st, "k1", 2, &o), 0);
    assert_int_equal(store_get(f->st, "k1", 2, &got), 1);
    assert_value(&got, "hello");
    assert_int_equal(vc_compare(&got.vc, &o.vc), VC_EQUAL);
    assert_int_equal(store_get(f->st, "k", 1, &got), 0);   /* prefix of a key */
    assert_int_equal(store_get(f->st, "k10", 3, &got), 0); /* extension of a key */
    assert_int_equal(store_del(f->st, "k1", 2), 0);
    assert_int_equal(store_get(f->st, "k1", 2, &got), 0);
    assert_int_equal(store_del(f->st, "k1", 2), 0); /* deleting the absent is fine */
    obj_free(&o);
    obj_free(&got);
}

static void test_overwrite_and_binary_keys(void **state)
{
    fixture_t *f = *state;
    obj_t a, b, got;
    make_obj(&a, "first", 1);
    make_obj(&b, "second", 2);
    obj_init(&got);
    const char key[] = {'x', '\0', 'y', (char)0xff};
    assert_int_equal(store_put(f->st, key, sizeof(key), &a), 0);
    assert_int_equal(store_put(f->st, key, sizeof(key), &b), 0);
    assert_int_equal(store_get(f->st, key, sizeof(key), &got), 1);
    assert_value(&got, "second");
    assert_int_equal(store_get(f->st, key, 1, &got), 0);
    /* the empty key and a key past the stack buffer */
    assert_int_equal(store_put(f->st, "", 0, &a), 0);
    assert_int_equal(store_get(f->st, "", 0, &got), 1);
    assert_value(&got, "first");
    char big[1000];
    memset(big, 'z', sizeof(big));
    assert_int_equal(store_put(f->st, big, sizeof(big), &b), 0);
    assert_int_equal(store_get(f->st, big, sizeof(big), &got), 1);
    assert_value(&got, "second");
    assert_int_equal(store_get(f->st, big, 250, &got), 0);
    assert_int_equal(store_del(f->st, big, sizeof(big)), 0);
    assert_int_equal(store_get(f->st, big, sizeof(big), &got), 0);
    obj_free(&a);
    obj_free(&b);
    obj_free(&got);
}

static void test_raw_prefixes_isolated(void **state)
{
    fixture_t *f = *state;
    obj_t o, got;
    make_obj(&o, "object", 1);
    obj_init(&got);
    assert_int_equal(store_put(f->st, "k", 1, &o), 0);
    assert_int_equal(store_raw_put(f->st, 'h', "k", 1, "hint", 4), 0);
    assert_int_equal(store_raw_put(f->st, 'm', "k", 1, "meta", 4), 0);

    uint8_t *v = NULL;
    size_t vl = 0;
    assert_int_equal(store_raw_get(f->st, 'h', "k", 1, &v, &vl), 1);
    assert_int_equal(vl, 4);
    assert_memory_equal(v, "hint", 4);
    free(v);
    assert_int_equal(store_raw_get(f->st, 'm', "k", 1, &v, &vl), 1);
    assert_memory_equal(v, "meta", 4);
    free(v);
    assert_int_equal(store_raw_get(f->st, 'x', "k", 1, &v, &vl), 0);
    assert_null(v);
    /* the object record under 'd' is the object's encoding */
    assert_int_equal(store_raw_get(f->st, 'd', "k", 1, &v, &vl), 1);
    assert_int_equal(obj_decode(v, vl, &got), 0);
    assert_value(&got, "object");
    free(v);

    assert_int_equal(store_raw_del(f->st, 'h', "k", 1), 0);
    assert_int_equal(store_raw_get(f->st, 'h', "k", 1, &v, &vl), 0);
    assert_int_equal(store_raw_get(f->st, 'm', "k", 1, &v, &vl), 1);
    free(v);
    assert_int_equal(store_get(f->st, "k", 1, &got), 1);
    assert_int_equal(store_del(f->st, "k", 1), 0);
    assert_int_equal(store_raw_get(f->st, 'm', "k", 1, &v, &vl), 1);
    free(v);
    /* an empty raw value is present, not absent */
    assert_int_equal(store_raw_put(f->st, 'm', "empty", 5, "", 0), 0);
    assert_int_equal(store_raw_get(f->st, 'm', "empty", 5, &v, &vl), 1);
    assert_int_equal(vl, 0);
    free(v);
    obj_free(&o);
    obj_free(&got);
}

typedef struct {
    int seen;
    int stop_after; /* 0: never */
    char keys[16][16];
} collect_t;

static int collect(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    collect_t *c = arg;
    assert_true(klen < sizeof(c->keys[0]));
    assert_int_equal(vlen, 1);
    assert_int_equal(val[0], key[klen - 1]); /* the fixture's value rule */
    memcpy(c->keys[c->seen], key, klen);
    c->keys[c->seen][klen] = '\0';
    c->seen++;
    return c->stop_after && c->seen == c->stop_after ? 42 : 0;
}

static void test_iterate(void **state)
{
    fixture_t *f = *state;
    const char *hk[] = {"b/2", "a/1", "b/1", "c/1", "b/3"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(store_raw_put(f->st, 'h', hk[i], 3, &hk[i][2], 1), 0);
    assert_int_equal(store_raw_put(f->st, 'g', "zz9", 3, "9", 1), 0); /* neighbours */
    assert_int_equal(store_raw_put(f->st, 'i', "aa1", 3, "1", 1), 0);
    obj_t o;
    make_obj(&o, "v", 1);
    assert_int_equal(store_put(f->st, "a/1", 3, &o), 0);
    obj_free(&o);

    collect_t c = {0};
    assert_int_equal(store_iterate(f->st, 'h', NULL, 0, collect, &c), 0);
    assert_int_equal(c.seen, 5);
    const char *order[] = {"a/1", "b/1", "b/2", "b/3", "c/1"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(c.keys[i], order[i]);

    memset(&c, 0, sizeof(c));
    assert_int_equal(store_iterate(f->st, 'h', "b/", 2, collect, &c), 0);
    assert_int_equal(c.seen, 3);
    assert_string_equal(c.keys[0], "b/1");
    assert_string_equal(c.keys[2], "b/3");

    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    assert_int_equal(store_iterate(f->st, 'h', "b/", 2, collect, &c), 42);
    assert_int_equal(c.seen, 2);

    memset(&c, 0, sizeof(c));
    assert_int_equal(store_iterate(f->st, 'h', "d", 1, collect, &c), 0);
    assert_int_equal(c.seen, 0);
    assert_int_equal(store_iterate(f->st, 'j', NULL, 0, collect, &c), 0);
    assert_int_equal(c.seen, 0);
}

static void test_survives_reopen(void **state)
{
    fixture_t *f = *state;
    obj_t o, got;
    make_obj(&o, "durable", 7);
    obj_init(&got);
    assert_int_equal(store_put(f->st, "key", 3, &o), 0);
    assert_int_equal(store_raw_put(f->st, 'm', "gen", 3, "5", 1), 0);
    reopen(f, true);
    assert_int_equal(store_get(f->st, "key", 3, &got), 1);
    assert_value(&got, "durable");
    uint8_t *v;
    size_t vl;
    assert_int_equal(store_raw_get(f->st, 'm', "gen", 3, &v, &vl), 1);
    assert_memory_equal(v, "5", 1);
    free(v);
    /* a synced write survives too */
    assert_int_equal(store_del(f->st, "key", 3), 0);
    reopen(f, false);
    assert_int_equal(store_get(f->st, "key", 3, &got), 0);
    obj_free(&o);
    obj_free(&got);
}

static void test_fail_next(void **state)
{
    fixture_t *f = *state;
    obj_t o, got;
    make_obj(&o, "v", 1);
    obj_init(&got);
    assert_int_equal(store_put(f->st, "keep", 4, &o), 0);

    store_fail_next(f->st, 4);
    assert_int_equal(store_put(f->st, "k", 1, &o), -EIO);
    assert_int_equal(store_raw_put(f->st, 'h', "k", 1, "x", 1), -EIO);
    assert_int_equal(store_del(f->st, "keep", 4), -EIO);
    assert_int_equal(store_raw_del(f->st, 'd', "keep", 4), -EIO);
    /* reads are not writes: unaffected, and nothing above happened */
    assert_int_equal(store_get(f->st, "keep", 4, &got), 1);
    assert_int_equal(store_get(f->st, "k", 1, &got), 0);
    uint8_t *v;
    size_t vl;
    assert_int_equal(store_raw_get(f->st, 'h', "k", 1, &v, &vl), 0);
    /* the budget is spent: writes work again */
    assert_int_equal(store_put(f->st, "k", 1, &o), 0);
    assert_int_equal(store_get(f->st, "k", 1, &got), 1);

    store_fail_next(f->st, 1);
    assert_int_equal(store_raw_put(f->st, 'h', "k", 1, "x", 1), -EIO);
    assert_int_equal(store_raw_put(f->st, 'h', "k", 1, "x", 1), 0);
    store_fail_next(f->st, 3);
    store_fail_next(f->st, 0); /* cancels */
    assert_int_equal(store_del(f->st, "k", 1), 0);
    obj_free(&o);
    obj_free(&got);
}

static void test_garbage_record_is_einval(void **state)
{
    fixture_t *f = *state;
    obj_t got;
    obj_init(&got);
    assert_int_equal(store_raw_put(f->st, 'd', "bad", 3, "\x01\xdd\xff\xff\xff\xff", 6), 0);
    assert_int_equal(store_get(f->st, "bad", 3, &got), -EINVAL);
    assert_int_equal(store_raw_put(f->st, 'd', "bad", 3, "", 0), 0);
    assert_int_equal(store_get(f->st, "bad", 3, &got), -EINVAL);
    assert_int_equal(store_raw_put(f->st, 'd', "bad", 3, "not msgpack", 11), 0);
    assert_int_equal(store_get(f->st, "bad", 3, &got), -EINVAL);
    assert_int_equal(got.nsib, 0);
    obj_free(&got);
}

static void test_open_errors(void **state)
{
    fixture_t *f = *state;
    store_t *st = (store_t *)1;
    char *err = NULL;
    /* the database is locked by the fixture's store */
    store_opts_t o = {.path = f->path};
    assert_int_equal(store_open(&o, &st, &err), -EIO);
    assert_null(st);
    assert_non_null(err);
    free(err);
    /* a path below a regular file */
    char file[128], below[160];
    snprintf(file, sizeof(file), "%s/file", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(below, sizeof(below), "%s/db", file);
    o.path = below;
    err = NULL;
    assert_true(store_open(&o, &st, &err) < 0);
    assert_non_null(err);
    free(err);
    o.path = NULL;
    assert_int_equal(store_open(&o, &st, NULL), -EINVAL);
    store_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overwrite_and_binary_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_prefixes_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iterate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_record_is_einval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
