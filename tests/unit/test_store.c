/*
 * test_store.c - unit tests for storage/store.c on a real LevelDB in a
 * mkdtemp directory (removed afterwards): objects and raw records, prefix
 * isolation, iterators (token order, seeks, snapshots), write batches,
 * persistence across reopen, the fault seam, corrupt records and the
 * conversion of old-format directories.  Records the API cannot write (old
 * formats, garbage) are written with LevelDB's own C API on the closed
 * database.
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
#include <leveldb/c.h>

#include "../../common/hash.h"
#include "../../ring/ring.h"
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
    /* only hints and metadata are raw: no side door into the objects */
    assert_int_equal(store_raw_get(f->st, 'x', "k", 1, &v, &vl), -EINVAL);
    assert_null(v);
    assert_int_equal(store_raw_get(f->st, 'd', "k", 1, &v, &vl), -EINVAL);
    assert_int_equal(store_raw_put(f->st, 'd', "k", 1, "x", 1), -EINVAL);
    assert_int_equal(store_raw_del(f->st, 'd', "k", 1), -EINVAL);
    assert_int_equal(store_get(f->st, "k", 1, &got), 1);
    assert_value(&got, "object");

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

/* ---- LevelDB itself, for records the API cannot write ---- */

/* Close the fixture's store so LevelDB's lock is free. */
static leveldb_t *ldb_open(fixture_t *f)
{
    store_close(f->st);
    f->st = NULL;
    leveldb_options_t *o = leveldb_options_create();
    char *err = NULL;
    leveldb_t *db = leveldb_open(o, f->path, &err);
    leveldb_options_destroy(o);
    assert_null(err);
    return db;
}

static void ldb_close(leveldb_t *db) { leveldb_close(db); }

static void ldb_put(leveldb_t *db, const void *k, size_t kl, const void *v, size_t vl)
{
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    char *err = NULL;
    leveldb_put(db, wo, k, kl, v, vl, &err);
    leveldb_writeoptions_destroy(wo);
    assert_null(err);
}

static void ldb_del(leveldb_t *db, const void *k, size_t kl)
{
    leveldb_writeoptions_t *wo = leveldb_writeoptions_create();
    char *err = NULL;
    leveldb_delete(db, wo, k, kl, &err);
    leveldb_writeoptions_destroy(wo);
    assert_null(err);
}

/* 1 when the full LevelDB key k is present. */
static int ldb_has(leveldb_t *db, const void *k, size_t kl)
{
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    char *err = NULL;
    size_t vl;
    char *v = leveldb_get(db, ro, k, kl, &vl, &err);
    leveldb_readoptions_destroy(ro);
    assert_null(err);
    leveldb_free(v);
    return v != NULL;
}

/* The documented object key: 'd' + big-endian token + user key. */
static size_t token_key(uint8_t *out, const void *key, size_t klen)
{
    uint64_t t = ring_key_position(key, klen);
    out[0] = 'd';
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(t >> (56 - 8 * i));
    memcpy(out + 9, key, klen);
    return 9 + klen;
}

/* Encoding of an object whose one sibling holds str. */
static uint8_t *encoded(const char *str, size_t *len)
{
    obj_t o;
    uint8_t *enc;
    make_obj(&o, str, 1);
    assert_int_equal(obj_encode(&o, &enc, len), 0);
    obj_free(&o);
    return enc;
}

/* ---- iterators ---- */

#define NKEYS 500

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Writes "key:<i>" for i < n, each holding its own name; fills tokens[]
 * sorted ascending. */
static void put_keys(store_t *st, int n, uint64_t *tokens)
{
    for (int i = 0; i < n; i++) {
        char k[32];
        int kl = snprintf(k, sizeof(k), "key:%d", i);
        obj_t o;
        make_obj(&o, k, 1);
        assert_int_equal(store_put(st, k, (size_t)kl, &o), 0);
        obj_free(&o);
        if (tokens)
            tokens[i] = ring_key_position(k, (size_t)kl);
    }
    if (tokens)
        qsort(tokens, (size_t)n, sizeof(*tokens), cmp_u64);
}

static void test_iter_token_order(void **state)
{
    fixture_t *f = *state;
    uint64_t tokens[NKEYS];
    put_keys(f->st, NKEYS, tokens);
    /* neighbours on both sides of 'd' stay out of an object scan */
    assert_int_equal(store_raw_put(f->st, 'h', "hint", 4, "h", 1), 0);
    assert_int_equal(store_raw_put(f->st, 'm', "meta", 4, "m", 1), 0);

    store_iter_t *it;
    assert_int_equal(store_iter_create(f->st, NULL, &it), 0);
    assert_false(store_iter_valid(it)); /* unpositioned until a seek */
    obj_t got;
    obj_init(&got);
    int n = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it), n++) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        const uint8_t *v = store_iter_value(it, &vl);
        assert_true(n < NKEYS);
        /* the token is the ring position of the user key, in ascending order */
        assert_int_equal(store_iter_token(it), ring_key_position(k, kl));
        assert_int_equal(store_iter_token(it), store_key_token(k, kl));
        assert_int_equal(store_iter_token(it), tokens[n]);
        assert_true(kl > 4 && memcmp(k, "key:", 4) == 0);
        assert_int_equal(obj_decode(v, vl, &got), 0);
        char name[32];
        memcpy(name, k, kl);
        name[kl] = '\0';
        assert_value(&got, name);
    }
    assert_int_equal(n, NKEYS);
    assert_int_equal(store_iter_error(it), 0);
    store_iter_next(it); /* past the end: stays invalid */
    assert_false(store_iter_valid(it));
    store_iter_destroy(it);
    obj_free(&got);

    /* a raw iterator sees its prefix only */
    assert_int_equal(store_iter_create_raw(f->st, NULL, 'h', &it), 0);
    store_iter_seek_first(it);
    assert_true(store_iter_valid(it));
    size_t kl;
    assert_memory_equal(store_iter_key(it, &kl), "hint", 4);
    assert_int_equal(kl, 4);
    assert_int_equal(store_iter_token(it), 0);
    store_iter_next(it);
    assert_false(store_iter_valid(it));
    assert_int_equal(store_iter_error(it), 0);
    store_iter_destroy(it);
    assert_int_equal(store_iter_create_raw(f->st, NULL, 'd', &it), -EINVAL);
    assert_null(it);
    store_iter_destroy(NULL);
}

/* Records from the current position while token <= last; the count. */
static int count_to(store_iter_t *it, uint64_t last)
{
    int n = 0;
    for (; store_iter_valid(it) && store_iter_token(it) <= last; store_iter_next(it))
        n++;
    return n;
}

static void test_iter_seek_middle(void **state)
{
    fixture_t *f = *state;
    uint64_t tokens[NKEYS];
    put_keys(f->st, NKEYS, tokens);
    store_iter_t *it;
    assert_int_equal(store_iter_create(f->st, NULL, &it), 0);

    /* at a token: that record; just past it: the next one */
    store_iter_seek(it, tokens[250], NULL, 0);
    assert_true(store_iter_valid(it));
    assert_int_equal(store_iter_token(it), tokens[250]);
    assert_int_equal(count_to(it, UINT64_MAX), NKEYS - 250);
    store_iter_seek(it, tokens[250] + 1, NULL, 0);
    assert_int_equal(store_iter_token(it), tokens[251]);

    /* a token range (start, end] is one contiguous scan */
    store_iter_seek(it, tokens[100] + 1, NULL, 0);
    assert_int_equal(count_to(it, tokens[200]), 100);

    /* (token, key): the key itself, and past it the next token */
    size_t kl;
    store_iter_seek(it, tokens[300], NULL, 0);
    char key[32];
    const uint8_t *k = store_iter_key(it, &kl);
    memcpy(key, k, kl);
    store_iter_seek(it, tokens[300], key, kl);
    assert_int_equal(store_iter_token(it), tokens[300]);
    assert_memory_equal(store_iter_key(it, &kl), key, kl);
    key[kl] = '\xff';
    store_iter_seek(it, tokens[300], key, kl + 1);
    assert_int_equal(store_iter_token(it), tokens[301]);

    /* the ends of the ring */
    store_iter_seek(it, 0, NULL, 0);
    assert_int_equal(store_iter_token(it), tokens[0]);
    if (tokens[NKEYS - 1] < UINT64_MAX) {
        store_iter_seek(it, tokens[NKEYS - 1] + 1, NULL, 0);
        assert_false(store_iter_valid(it));
        assert_int_equal(store_iter_error(it), 0);
    }
    store_iter_destroy(it);
}

static void test_snapshot_isolation(void **state)
{
    fixture_t *f = *state;
    obj_t a, b, b2, c, got;
    make_obj(&a, "a", 1);
    make_obj(&b, "b-old", 1);
    make_obj(&b2, "b-new", 2);
    make_obj(&c, "c", 1);
    obj_init(&got);
    assert_int_equal(store_put(f->st, "A", 1, &a), 0);
    assert_int_equal(store_put(f->st, "B", 1, &b), 0);
    assert_int_equal(store_raw_put(f->st, 'h', "h1", 2, "1", 1), 0);

    store_snapshot_t *snap = store_snapshot_create(f->st);
    assert_non_null(snap);
    store_iter_t *early; /* no snapshot, created before the writes */
    assert_int_equal(store_iter_create(f->st, NULL, &early), 0);
    assert_int_equal(store_put(f->st, "C", 1, &c), 0);
    assert_int_equal(store_del(f->st, "A", 1), 0);
    assert_int_equal(store_put(f->st, "B", 1, &b2), 0);
    assert_int_equal(store_raw_put(f->st, 'h', "h2", 2, "2", 1), 0);

    /* on the snapshot: A and the old B, nothing of what came after */
    store_iter_t *it;
    assert_int_equal(store_iter_create(f->st, snap, &it), 0);
    int n = 0, seen_a = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it), n++) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        const uint8_t *v = store_iter_value(it, &vl);
        assert_int_equal(kl, 1);
        assert_int_equal(obj_decode(v, vl, &got), 0);
        assert_true(k[0] == 'A' || k[0] == 'B');
        seen_a += k[0] == 'A';
        assert_value(&got, k[0] == 'A' ? "a" : "b-old");
    }
    assert_int_equal(n, 2);
    assert_int_equal(seen_a, 1);
    store_iter_destroy(it);
    assert_int_equal(store_iter_create_raw(f->st, snap, 'h', &it), 0);
    store_iter_seek_first(it);
    store_iter_next(it);
    assert_false(store_iter_valid(it)); /* h2 is invisible */
    store_iter_destroy(it);

    /* an iterator reads the store as of its creation */
    n = 0;
    for (store_iter_seek_first(early); store_iter_valid(early); store_iter_next(early))
        n++;
    assert_int_equal(n, 2);
    store_iter_destroy(early);

    /* without a snapshot, now: B new and C */
    assert_int_equal(store_iter_create(f->st, NULL, &it), 0);
    n = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it), n++) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        const uint8_t *v = store_iter_value(it, &vl);
        assert_int_equal(obj_decode(v, vl, &got), 0);
        assert_true(k[0] == 'B' || k[0] == 'C');
        assert_value(&got, k[0] == 'B' ? "b-new" : "c");
    }
    assert_int_equal(n, 2);
    store_iter_destroy(it);
    store_snapshot_release(f->st, snap);
    store_snapshot_release(f->st, NULL);
    obj_free(&a);
    obj_free(&b);
    obj_free(&b2);
    obj_free(&c);
    obj_free(&got);
}

/* Objects "batch:<i>", i < n, currently readable. */
static int count_batch_keys(store_t *st, int n)
{
    int found = 0;
    obj_t got;
    obj_init(&got);
    for (int i = 0; i < n; i++) {
        char k[32];
        int kl = snprintf(k, sizeof(k), "batch:%d", i);
        int rc = store_get(st, k, (size_t)kl, &got);
        assert_true(rc >= 0);
        found += rc;
    }
    obj_free(&got);
    return found;
}

/* A batch of 100 puts, a raw put, the delete of an existing key, and a put
 * then delete of one key. */
static store_batch_t *make_batch(store_t *st)
{
    obj_t o;
    make_obj(&o, "batched", 3);
    assert_int_equal(store_put(st, "victim", 6, &o), 0);
    store_batch_t *b = store_batch_create();
    assert_non_null(b);
    for (int i = 0; i < 100; i++) {
        char k[32];
        int kl = snprintf(k, sizeof(k), "batch:%d", i);
        assert_int_equal(store_batch_put(b, k, (size_t)kl, &o), 0);
    }
    assert_int_equal(store_batch_raw_put(b, 'm', "marker", 6, "1", 1), 0);
    assert_int_equal(store_batch_del(b, "victim", 6), 0);
    assert_int_equal(store_batch_put(b, "tmp", 3, &o), 0);
    assert_int_equal(store_batch_del(b, "tmp", 3), 0);
    assert_int_equal(store_batch_raw_put(b, 'd', "x", 1, "1", 1), -EINVAL);
    assert_int_equal(store_batch_raw_del(b, 'x', "x", 1), -EINVAL);
    /* an object obj_encode refuses (a dot its vector does not cover) */
    sibling_t s = {.dot = {1, 5}, .ts_us = 1};
    obj_t bad = {.nsib = 1, .cap = 1, .sib = &s};
    assert_int_equal(store_batch_put(b, "bad", 3, &bad), -EINVAL);
    assert_int_equal(store_batch_count(b), 104); /* the refused ones added nothing */
    obj_free(&o);
    return b;
}

/* Whether the whole batch of make_batch() is visible (1), none of it (0),
 * or anything in between (-1). */
static int batch_state(store_t *st)
{
    obj_t got;
    obj_init(&got);
    uint8_t *v = NULL;
    size_t vl;
    int keys = count_batch_keys(st, 100);
    int marker = store_raw_get(st, 'm', "marker", 6, &v, &vl);
    free(v);
    int victim = store_get(st, "victim", 6, &got);
    int tmp = store_get(st, "tmp", 3, &got);
    obj_free(&got);
    assert_int_equal(tmp, 0);
    if (keys == 100 && marker == 1 && victim == 0)
        return 1;
    if (keys == 0 && marker == 0 && victim == 1)
        return 0;
    return -1;
}

static void test_batch_atomic(void **state)
{
    fixture_t *f = *state;
    store_batch_t *b = make_batch(f->st);
    store_iter_t *before;
    assert_int_equal(store_iter_create(f->st, NULL, &before), 0);
    assert_int_equal(batch_state(f->st), 0); /* nothing until written */
    assert_int_equal(store_write(f->st, b), 0);
    assert_int_equal(batch_state(f->st), 1);
    /* an iterator opened before the write sees none of it */
    int n = 0;
    for (store_iter_seek_first(before); store_iter_valid(before); store_iter_next(before)) {
        size_t kl;
        assert_memory_equal(store_iter_key(before, &kl), "victim", 6);
        n++;
    }
    assert_int_equal(n, 1);
    store_iter_destroy(before);
    /* and the batch survives a reopen as a whole */
    reopen(f, false);
    assert_int_equal(batch_state(f->st), 1);
    /* cleared, it is empty and writing it changes nothing */
    store_batch_clear(b);
    assert_int_equal(store_batch_count(b), 0);
    assert_int_equal(store_write(f->st, b), 0);
    assert_int_equal(batch_state(f->st), 1);
    store_batch_destroy(b);
    store_batch_destroy(NULL);
}

static void test_batch_fault_writes_nothing(void **state)
{
    fixture_t *f = *state;
    store_batch_t *b = make_batch(f->st);
    store_fail_next(f->st, 2); /* a batch is one write call */
    assert_int_equal(store_write(f->st, b), -EIO);
    assert_int_equal(batch_state(f->st), 0);
    assert_int_equal(store_write(f->st, b), -EIO);
    assert_int_equal(batch_state(f->st), 0);
    /* the budget is spent; the failed batch is intact and can be retried */
    assert_int_equal(store_batch_count(b), 104);
    assert_int_equal(store_write(f->st, b), 0);
    assert_int_equal(batch_state(f->st), 1);
    store_batch_destroy(b);
}

static void test_raw_iterate_and_seek(void **state)
{
    fixture_t *f = *state;
    const char *hk[] = {"b/2", "a/1", "b/1", "c/1", "b/3"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(store_raw_put(f->st, 'h', hk[i], 3, &hk[i][2], 1), 0);
    obj_t o;
    make_obj(&o, "v", 1);
    assert_int_equal(store_put(f->st, "a/1", 3, &o), 0);
    obj_free(&o);
    assert_int_equal(store_raw_put(f->st, 'm', "a/1", 3, "m", 1), 0);

    store_iter_t *it;
    assert_int_equal(store_iter_create_raw(f->st, NULL, 'h', &it), 0);
    const char *order[] = {"a/1", "b/1", "b/2", "b/3", "c/1"};
    int n = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it), n++) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        const uint8_t *v = store_iter_value(it, &vl);
        assert_int_equal(kl, 3);
        assert_memory_equal(k, order[n], 3);
        assert_int_equal(vl, 1);
        assert_int_equal(v[0], k[2]);
    }
    assert_int_equal(n, 5);
    store_iter_seek(it, 12345, "b/", 2); /* the token is ignored */
    size_t kl;
    assert_memory_equal(store_iter_key(it, &kl), "b/1", 3);
    store_iter_seek(it, 0, "b/2", 3);
    assert_memory_equal(store_iter_key(it, &kl), "b/2", 3);
    store_iter_seek(it, 0, "d", 1);
    assert_false(store_iter_valid(it)); /* 'm' records are not hints */
    assert_null(store_iter_key(it, &kl));
    assert_int_equal(kl, 0);
    store_iter_destroy(it);
}

/* ---- old data directories ---- */

#define OLD_KEYS 2500 /* more than two conversion batches */

static void test_converts_old_format(void **state)
{
    fixture_t *f = *state;
    leveldb_t *db = ldb_open(f);
    /* a format-1 directory: 'd' + user key, no format record */
    ldb_del(db, "mformat", 7);
    uint8_t k[64];
    for (int i = 0; i < OLD_KEYS; i++) {
        k[0] = 'd';
        int kl = snprintf((char *)k + 1, sizeof(k) - 1, "old:%d", i);
        size_t vl;
        uint8_t *v = encoded((char *)k + 1, &vl);
        ldb_put(db, k, (size_t)kl + 1, v, vl);
        free(v);
    }
    ldb_put(db, "hown\0old:1", 10, "12345678", 8);
    ldb_put(db, "mflush_us", 9, "7", 1);
    ldb_close(db);

    reopen(f, false);
    obj_t got;
    obj_init(&got);
    for (int i = 0; i < OLD_KEYS; i++) {
        char name[32];
        int kl = snprintf(name, sizeof(name), "old:%d", i);
        assert_int_equal(store_get(f->st, name, (size_t)kl, &got), 1);
        assert_value(&got, name);
    }
    obj_free(&got);
    store_iter_t *it;
    assert_int_equal(store_iter_create(f->st, NULL, &it), 0);
    int n = 0;
    uint64_t prev = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it), n++) {
        size_t kl;
        const uint8_t *key = store_iter_key(it, &kl);
        assert_true(store_iter_token(it) >= prev);
        assert_int_equal(store_iter_token(it), ring_key_position(key, kl));
        prev = store_iter_token(it);
    }
    assert_int_equal(n, OLD_KEYS);
    store_iter_destroy(it);
    uint8_t *v;
    size_t vl;
    assert_int_equal(store_raw_get(f->st, 'm', "format", 6, &v, &vl), 1);
    assert_int_equal(vl, 1);
    assert_memory_equal(v, "2", 1);
    free(v);
    assert_int_equal(store_raw_get(f->st, 'h', "own\0old:1", 9, &v, &vl), 1);
    free(v);

    /* on disk: the new keys, none of the old */
    db = ldb_open(f);
    for (int i = 0; i < OLD_KEYS; i += 97) {
        char name[32];
        int kl = snprintf(name, sizeof(name), "old:%d", i);
        k[0] = 'd';
        memcpy(k + 1, name, (size_t)kl);
        assert_int_equal(ldb_has(db, k, (size_t)kl + 1), 0);
        assert_int_equal(ldb_has(db, k, token_key(k, name, (size_t)kl)), 1);
    }
    ldb_close(db);
}

static void test_resumes_interrupted_conversion(void **state)
{
    fixture_t *f = *state;
    leveldb_t *db = ldb_open(f);
    /* what a crash between two conversion batches leaves: some records at
     * their token keys, the others still old, and no format record */
    ldb_del(db, "mformat", 7);
    uint8_t k[64];
    for (int i = 0; i < 300; i++) {
        char name[32];
        int nl = snprintf(name, sizeof(name), "mix:%d", i);
        size_t vl, kl;
        uint8_t *v = encoded(name, &vl);
        if (i % 2) {
            kl = token_key(k, name, (size_t)nl);
        } else {
            k[0] = 'd';
            memcpy(k + 1, name, (size_t)nl);
            kl = (size_t)nl + 1;
        }
        ldb_put(db, k, kl, v, vl);
        free(v);
    }
    ldb_close(db);
    reopen(f, false);
    obj_t got;
    obj_init(&got);
    for (int i = 0; i < 300; i++) {
        char name[32];
        int nl = snprintf(name, sizeof(name), "mix:%d", i);
        assert_int_equal(store_get(f->st, name, (size_t)nl, &got), 1);
        assert_value(&got, name);
    }
    obj_free(&got);
    store_iter_t *it;
    assert_int_equal(store_iter_create(f->st, NULL, &it), 0);
    int n = 0;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it))
        n++;
    assert_int_equal(n, 300); /* nothing doubled */
    store_iter_destroy(it);
    /* a second open has nothing left to do */
    reopen(f, false);
    assert_int_equal(store_get(f->st, "mix:0", 5, &got), 1);
    obj_free(&got);
}

static void test_newer_format_refused(void **state)
{
    fixture_t *f = *state;
    leveldb_t *db = ldb_open(f);
    ldb_put(db, "mformat", 7, "3", 1);
    ldb_close(db);
    store_opts_t o = {.path = f->path};
    char *err = NULL;
    store_t *st = (store_t *)1;
    assert_int_equal(store_open(&o, &st, &err), -EINVAL);
    assert_null(st);
    assert_non_null(err);
    assert_non_null(strstr(err, "newer"));
    assert_null(strchr(err, '\n'));
    free(err);
    db = ldb_open(f);
    ldb_put(db, "mformat", 7, "two", 3);
    ldb_close(db);
    assert_true(store_open(&o, &st, NULL) < 0);
}

static void test_fresh_dir_records_format(void **state)
{
    fixture_t *f = *state;
    uint8_t *v;
    size_t vl;
    assert_int_equal(store_raw_get(f->st, 'm', "format", 6, &v, &vl), 1);
    assert_memory_equal(v, "2", 1);
    free(v);
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
    assert_int_equal(store_raw_del(f->st, 'm', "keep", 4), -EIO);
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
    const char *bad[] = {"\x01\xdd\xff\xff\xff\xff", "", "not msgpack"};
    size_t badlen[] = {6, 0, 11};
    uint8_t k[32];
    size_t kl = token_key(k, "bad", 3);
    for (int i = 0; i < 3; i++) {
        leveldb_t *db = ldb_open(f);
        ldb_put(db, k, kl, bad[i], badlen[i]);
        ldb_close(db);
        reopen(f, false);
        assert_int_equal(store_get(f->st, "bad", 3, &got), -EINVAL);
        assert_int_equal(got.nsib, 0);
    }
    /* an object key too short for a token is skipped by iterators */
    leveldb_t *db = ldb_open(f);
    ldb_put(db, "dshort", 6, "x", 1);
    ldb_close(db);
    reopen(f, false);
    store_iter_t *it;
    assert_int_equal(store_iter_create(f->st, NULL, &it), 0);
    store_iter_seek_first(it);
    assert_true(store_iter_valid(it));
    size_t n;
    assert_memory_equal(store_iter_key(it, &n), "bad", 3);
    store_iter_destroy(it);
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
        cmocka_unit_test_setup_teardown(test_iter_token_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_iter_seek_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_fault_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_iterate_and_seek, setup, teardown),
        cmocka_unit_test_setup_teardown(test_converts_old_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resumes_interrupted_conversion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_format_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fresh_dir_records_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_next, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_record_is_einval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
