/*
 * test_object.c - unit tests for storage/object.c: the codec (round trips,
 * every kind of corrupt input, random bytes), the dotted-version-vector
 * update and sync rules, and winner / prune / purge / live.
 *
 * Objects are compared through their encodings: siblings are kept in dot
 * order, so equal objects encode to equal bytes.
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
#include <msgpack.h>

#include "../../storage/object.h"

enum { NODE_A = 0xa, NODE_B = 0xb, NODE_C = 0xc };

/* A sibling carrying a malloc'ed copy of str (NULL/empty: no value). */
#define US INT64_C(1000000)

static sibling_t mk(const char *str, int64_t ts_us)
{
    sibling_t s = {.ts_us = ts_us};
    if (str && *str) {
        s.len = strlen(str);
        s.value = malloc(s.len);
        assert_non_null(s.value);
        memcpy(s.value, str, s.len);
    }
    return s;
}

/* o gets a write of str through node with context ctx. */
static void put(obj_t *o, const vclock_t *ctx, uint64_t node, const char *str, int64_t ts)
{
    sibling_t s = mk(str, ts);
    assert_int_equal(obj_update(o, ctx, node, 0, &s, ts), 0);
    assert_null(s.value);
}

static void encode(const obj_t *o, uint8_t **buf, size_t *len)
{
    assert_int_equal(obj_encode(o, buf, len), 0);
    assert_non_null(*buf);
    assert_true(*len >= 1);
    assert_int_equal((*buf)[0], OBJ_FORMAT_V1);
}

static void assert_obj_equal(const obj_t *a, const obj_t *b)
{
    uint8_t *ea, *eb;
    size_t la, lb;
    encode(a, &ea, &la);
    encode(b, &eb, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(ea, eb, la);
    free(ea);
    free(eb);
}

static bool has_value(const obj_t *o, const char *str)
{
    for (uint32_t i = 0; i < o->nsib; i++)
        if (o->sib[i].len == strlen(str) && memcmp(o->sib[i].value, str, o->sib[i].len) == 0)
            return true;
    return false;
}

/* The invariants object.c promises: sorted unique dots, all covered. */
static void assert_well_formed(const obj_t *o)
{
    for (uint32_t i = 0; i < o->nsib; i++) {
        assert_true(vc_covers(&o->vc, o->sib[i].dot));
        assert_true(o->sib[i].len > 0 || o->sib[i].value == NULL);
        if (i > 0) {
            dot_t p = o->sib[i - 1].dot, d = o->sib[i].dot;
            assert_true(p.node < d.node || (p.node == d.node && p.counter < d.counter));
        }
    }
}

/* ---- codec ---- */

static void roundtrip(const obj_t *o)
{
    uint8_t *buf, *buf2;
    size_t len, len2;
    obj_t d;
    obj_init(&d);
    encode(o, &buf, &len);
    assert_int_equal(obj_decode(buf, len, &d), 0);
    assert_int_equal(vc_compare(&d.vc, &o->vc), VC_EQUAL);
    assert_int_equal(d.vc.n, o->vc.n);
    for (uint32_t i = 0; i < o->vc.n; i++)
        assert_int_equal(d.vc.e[i].ts_us, o->vc.e[i].ts_us);
    assert_int_equal(d.nsib, o->nsib);
    for (uint32_t i = 0; i < o->nsib; i++) {
        const sibling_t *x = &o->sib[i], *y = &d.sib[i];
        assert_int_equal(x->dot.node, y->dot.node);
        assert_int_equal(x->dot.counter, y->dot.counter);
        assert_int_equal(x->flags, y->flags);
        assert_int_equal(x->expiry, y->expiry);
        assert_int_equal(x->ts_us, y->ts_us);
        assert_int_equal(x->tombstone, y->tombstone);
        assert_int_equal(x->len, y->len);
        if (x->len)
            assert_memory_equal(x->value, y->value, x->len);
        else
            assert_null(y->value);
    }
    assert_well_formed(&d);
    encode(&d, &buf2, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    free(buf);
    free(buf2);
    obj_free(&d);
}

static void test_roundtrip_empty_object(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    roundtrip(&o);
    obj_free(&o);
    obj_free(&o); /* twice is fine */
}

static void test_roundtrip_values(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    put(&o, NULL, NODE_A, "", 1);              /* empty value */
    put(&o, NULL, NODE_B, "hello", -5);        /* negative ts */
    sibling_t s = mk(NULL, INT64_MAX);         /* every byte 0..255 */
    s.len = 256;
    s.value = malloc(256);
    for (int i = 0; i < 256; i++)
        s.value[i] = (uint8_t)i;
    s.flags = UINT32_MAX;
    s.expiry = INT64_MIN;
    assert_int_equal(obj_update(&o, NULL, NODE_C, 0, &s, INT64_MIN), 0);
    sibling_t t = mk(NULL, 42); /* tombstone */
    t.tombstone = true;
    t.expiry = 1700000000;
    assert_int_equal(obj_update(&o, NULL, UINT64_MAX, 0, &t, 42), 0);
    assert_int_equal(o.nsib, 4);
    roundtrip(&o);
    obj_free(&o);
}

static void test_roundtrip_many_siblings(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    char val[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(val, sizeof(val), "value-%d", i);
        put(&o, NULL, (uint64_t)(i % 37) * 0x9e3779b97f4a7c15ull, val, i);
    }
    assert_int_equal(o.nsib, 2000);
    assert_int_equal(o.vc.n, 37);
    assert_well_formed(&o);
    roundtrip(&o);
    obj_free(&o);
}

/* A valid object with two siblings and a three-entry vector. */
static void sample(obj_t *o)
{
    obj_init(o);
    put(o, NULL, NODE_A, "one", 10);
    put(o, NULL, NODE_B, "two", 20);
    assert_int_equal(vc_set(&o->vc, NODE_C, 4, 5), 0);
}

static void test_decode_every_truncation(void **state)
{
    (void)state;
    obj_t o, d;
    sample(&o);
    obj_init(&d);
    put(&d, NULL, NODE_C, "keep", 1); /* must survive failed decodes */
    uint8_t *buf;
    size_t len;
    encode(&o, &buf, &len);
    for (size_t n = 0; n < len; n++) {
        uint8_t *cut = malloc(n ? n : 1); /* own buffer: ASan sees overreads */
        memcpy(cut, buf, n);
        assert_int_equal(obj_decode(cut, n, &d), -EINVAL);
        free(cut);
    }
    assert_int_equal(d.nsib, 1);
    assert_true(has_value(&d, "keep"));
    assert_int_equal(obj_decode(buf, len, &d), 0);
    assert_obj_equal(&o, &d);
    free(buf);
    obj_free(&o);
    obj_free(&d);
}

static void test_decode_wrong_format_and_trailing(void **state)
{
    (void)state;
    obj_t o, d;
    sample(&o);
    obj_init(&d);
    uint8_t *buf;
    size_t len;
    encode(&o, &buf, &len);
    buf[0] = 0x02;
    assert_int_equal(obj_decode(buf, len, &d), -EINVAL);
    buf[0] = 0x00;
    assert_int_equal(obj_decode(buf, len, &d), -EINVAL);
    buf[0] = OBJ_FORMAT_V1;
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0x00; /* a trailing fixint */
    assert_int_equal(obj_decode(longer, len + 1, &d), -EINVAL);
    assert_int_equal(obj_decode(buf, 0, &d), -EINVAL);
    assert_int_equal(obj_decode(buf, 1, &d), -EINVAL);
    free(longer);
    free(buf);
    obj_free(&o);
    obj_free(&d);
}

/* Regression: vc_prune() on an object's vector can drop the entry that
 * covers a sibling; encoding that must fail rather than write a record
 * obj_decode rejects forever. */
static void test_encode_refuses_undecodable(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    put(&o, NULL, NODE_A, "a", 100);
    put(&o, NULL, NODE_B, "b", 1);
    assert_int_equal(vc_set(&o.vc, NODE_C, 1, 200), 0);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(vc_prune(&o.vc, 2), 1); /* drops B, oldest */
    assert_int_equal(obj_encode(&o, &buf, &len), -EINVAL);
    assert_null(buf);
    assert_int_equal(vc_set(&o.vc, NODE_B, 1, 1), 0);
    assert_int_equal(obj_encode(&o, &buf, &len), 0);
    free(buf);
    /* a sibling claiming bytes it does not have */
    o.sib[0].len = 3;
    free(o.sib[0].value);
    o.sib[0].value = NULL;
    assert_int_equal(obj_encode(&o, &buf, &len), -EINVAL);
    sibling_t s = {.len = 4};
    assert_int_equal(obj_update(&o, NULL, NODE_A, 0, &s, 1), -EINVAL);
    assert_int_equal(o.nsib, 2);
    o.sib[0].len = 0;
    obj_free(&o);
}

/* ---- hand-built encodings ---- */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} mp_t;

static void mp_begin(mp_t *m)
{
    msgpack_sbuffer_init(&m->sb);
    msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
    msgpack_sbuffer_write(&m->sb, "\x01", 1);
}

static int mp_decode(mp_t *m)
{
    obj_t d;
    obj_init(&d);
    int rc = obj_decode((const uint8_t *)m->sb.data, m->sb.size, &d);
    if (rc == 0)
        assert_well_formed(&d);
    obj_free(&d);
    msgpack_sbuffer_destroy(&m->sb);
    return rc;
}

static void pk_vc_entry(msgpack_packer *pk, uint64_t node, uint64_t counter)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint64(pk, node);
    msgpack_pack_uint64(pk, counter);
    msgpack_pack_int64(pk, 1);
}

/* Which field of the one sibling is replaced by a bad value. */
enum bad_field { BAD_NONE = -1, BAD_NODE, BAD_COUNTER, BAD_FLAGS, BAD_EXPIRY, BAD_TS,
                 BAD_TOMB, BAD_VALUE, BAD_ARITY };

/* [[[A,1,1]], [[A,1,flags,expiry,ts,tomb,value]]] with one field broken. */
static int decode_with_bad(enum bad_field bad, int variant)
{
    mp_t m;
    mp_begin(&m);
    msgpack_packer *pk = &m.pk;
    msgpack_pack_array(pk, 2);
    msgpack_pack_array(pk, 1);
    pk_vc_entry(pk, NODE_A, 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, bad == BAD_ARITY ? (variant ? 8 : 6) : 7);
    for (int f = BAD_NODE; f <= BAD_VALUE; f++) {
        if (bad == BAD_ARITY && f == BAD_VALUE && !variant)
            break; /* 6 fields */
        if ((int)bad == f) {
            switch (variant) {
            case 0: msgpack_pack_str_with_body(pk, "x", 1); break;
            case 1: msgpack_pack_nil(pk); break;
            case 2: msgpack_pack_double(pk, 1.5); break;
            case 3: msgpack_pack_array(pk, 0); break;
            default: msgpack_pack_map(pk, 0); break;
            }
            continue;
        }
        switch (f) {
        case BAD_NODE: msgpack_pack_uint64(pk, NODE_A); break;
        case BAD_COUNTER: msgpack_pack_uint64(pk, 1); break;
        case BAD_FLAGS: msgpack_pack_uint32(pk, 7); break;
        case BAD_EXPIRY: msgpack_pack_int64(pk, 0); break;
        case BAD_TS: msgpack_pack_int64(pk, 3); break;
        case BAD_TOMB: msgpack_pack_false(pk); break;
        case BAD_VALUE: msgpack_pack_bin_with_body(pk, "v", 1); break;
        }
    }
    if (bad == BAD_ARITY && variant)
        msgpack_pack_uint64(pk, 0);
    return mp_decode(&m);
}

static void test_decode_wrong_types(void **state)
{
    (void)state;
    assert_int_equal(decode_with_bad(BAD_NONE, 0), 0); /* the template is valid */
    for (int f = BAD_NODE; f <= BAD_VALUE; f++)
        for (int v = 0; v < 5; v++)
            assert_int_equal(decode_with_bad((enum bad_field)f, v), -EINVAL);
    assert_int_equal(decode_with_bad(BAD_ARITY, 0), -EINVAL);
    assert_int_equal(decode_with_bad(BAD_ARITY, 1), -EINVAL);

    mp_t m;
    /* top level: not an array, wrong arity */
    mp_begin(&m);
    msgpack_pack_uint64(&m.pk, 1);
    assert_int_equal(mp_decode(&m), -EINVAL);
    mp_begin(&m);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(mp_decode(&m), -EINVAL);
    /* the empty object, as a control */
    mp_begin(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 0);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(mp_decode(&m), 0);
    /* string where the value must be bin */
    mp_begin(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_str_with_body(&m.pk, "vc", 2);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(mp_decode(&m), -EINVAL);
    /* vector entry: negative counter, wrong arity, counter 0 */
    mp_begin(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint64(&m.pk, 1);
    msgpack_pack_int64(&m.pk, -1);
    msgpack_pack_int64(&m.pk, 0);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(mp_decode(&m), -EINVAL);
    mp_begin(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_uint64(&m.pk, 1);
    msgpack_pack_uint64(&m.pk, 1);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(mp_decode(&m), -EINVAL);
    mp_begin(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 1);
    pk_vc_entry(&m.pk, 1, 0);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(mp_decode(&m), -EINVAL);
    /* ts beyond int64 */
    mp_begin(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 1);
    msgpack_pack_array(&m.pk, 3);
    msgpack_pack_uint64(&m.pk, 1);
    msgpack_pack_uint64(&m.pk, 1);
    msgpack_pack_uint64(&m.pk, (uint64_t)INT64_MAX + 1);
    msgpack_pack_array(&m.pk, 0);
    assert_int_equal(mp_decode(&m), -EINVAL);
    /* vector nodes out of order or repeated */
    for (int dup = 0; dup < 2; dup++) {
        mp_begin(&m);
        msgpack_pack_array(&m.pk, 2);
        msgpack_pack_array(&m.pk, 2);
        pk_vc_entry(&m.pk, 5, 1);
        pk_vc_entry(&m.pk, dup ? 5 : 4, 1);
        msgpack_pack_array(&m.pk, 0);
        assert_int_equal(mp_decode(&m), -EINVAL);
    }
}

/* One sibling with the given dot under the vector {A:2}; flags as given. */
static int decode_sibs(const dot_t *dots, int n, uint64_t flags)
{
    mp_t m;
    mp_begin(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 1);
    pk_vc_entry(&m.pk, NODE_A, 2);
    msgpack_pack_array(&m.pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        msgpack_pack_array(&m.pk, 7);
        msgpack_pack_uint64(&m.pk, dots[i].node);
        msgpack_pack_uint64(&m.pk, dots[i].counter);
        msgpack_pack_uint64(&m.pk, flags);
        msgpack_pack_int64(&m.pk, 0);
        msgpack_pack_int64(&m.pk, 0);
        msgpack_pack_true(&m.pk);
        msgpack_pack_bin(&m.pk, 0);
    }
    return mp_decode(&m);
}

static void test_decode_dot_rules(void **state)
{
    (void)state;
    assert_int_equal(decode_sibs((dot_t[]){{NODE_A, 2}}, 1, 0), 0);
    assert_int_equal(decode_sibs((dot_t[]){{NODE_A, 3}}, 1, 0), -EINVAL); /* uncovered */
    assert_int_equal(decode_sibs((dot_t[]){{NODE_B, 1}}, 1, 0), -EINVAL); /* uncovered */
    assert_int_equal(decode_sibs((dot_t[]){{NODE_A, 0}}, 1, 0), -EINVAL); /* no write */
    assert_int_equal(decode_sibs((dot_t[]){{NODE_A, 1}, {NODE_A, 1}}, 2, 0), -EINVAL);
    assert_int_equal(decode_sibs((dot_t[]){{NODE_A, 1}}, 1, UINT32_MAX), 0);
    assert_int_equal(decode_sibs((dot_t[]){{NODE_A, 1}}, 1, (uint64_t)UINT32_MAX + 1), -EINVAL);

    /* siblings out of dot order are accepted and come out sorted */
    mp_t m;
    mp_begin(&m);
    msgpack_pack_array(&m.pk, 2);
    msgpack_pack_array(&m.pk, 1);
    pk_vc_entry(&m.pk, NODE_A, 2);
    msgpack_pack_array(&m.pk, 2);
    for (int c = 2; c >= 1; c--) {
        msgpack_pack_array(&m.pk, 7);
        msgpack_pack_uint64(&m.pk, NODE_A);
        msgpack_pack_uint64(&m.pk, (uint64_t)c);
        msgpack_pack_uint64(&m.pk, 0);
        msgpack_pack_int64(&m.pk, 0);
        msgpack_pack_int64(&m.pk, c);
        msgpack_pack_false(&m.pk);
        msgpack_pack_bin_with_body(&m.pk, c == 1 ? "1" : "2", 1);
    }
    obj_t d;
    obj_init(&d);
    assert_int_equal(obj_decode((const uint8_t *)m.sb.data, m.sb.size, &d), 0);
    assert_int_equal(d.nsib, 2);
    assert_int_equal(d.sib[0].dot.counter, 1);
    assert_int_equal(d.sib[0].value[0], '1');
    assert_well_formed(&d);
    obj_free(&d);
    msgpack_sbuffer_destroy(&m.sb);
}

/* Regression: msgpack-c allocates for an array header before reading the
 * elements; a few bytes claiming 2^32 elements must be rejected cheaply. */
static void test_decode_huge_counts(void **state)
{
    (void)state;
    static const uint8_t inputs[][16] = {
        {0x01, 0xdd, 0xff, 0xff, 0xff, 0xff},
        {0x01, 0x92, 0xdd, 0xff, 0xff, 0xff, 0xf0, 0x90},
        {0x01, 0x92, 0x90, 0xdc, 0xff, 0xff},
        {0x01, 0x92, 0x90, 0x91, 0x97, 0x01, 0x01, 0x00, 0x00, 0x00, 0xc2, 0xc6, 0xff, 0xff, 0xff, 0xff},
        {0x01, 0xdd, 0x00, 0x01, 0x00, 0x01, 0x90},
    };
    obj_t d;
    obj_init(&d);
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
        for (size_t n = 1; n <= sizeof(inputs[0]); n++)
            assert_int_equal(obj_decode(inputs[i], n, &d), -EINVAL);
    obj_free(&d);
}

/* Regression (found by fuzzing): msgpack-c reports nesting deeper than its
 * parse stack as out-of-memory; corrupt input must still be -EINVAL. */
static void test_decode_deep_nesting(void **state)
{
    (void)state;
    uint8_t buf[200];
    buf[0] = OBJ_FORMAT_V1;
    for (size_t depth = 1; depth < sizeof(buf) - 1; depth++) {
        memset(buf + 1, 0x91, depth); /* [[[[...]]]] */
        buf[1 + depth] = 0x90;
        obj_t d;
        obj_init(&d);
        assert_int_equal(obj_decode(buf, depth + 2, &d), -EINVAL);
        obj_free(&d);
    }
}

static uint64_t rng_state = 0x853c49e6748fea9bull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Decoding must either fail with -EINVAL or yield a well-formed object
 * that survives another round trip. */
static void decode_any(const uint8_t *buf, size_t len)
{
    obj_t d;
    obj_init(&d);
    int rc = obj_decode(buf, len, &d);
    assert_true(rc == 0 || rc == -EINVAL);
    if (rc == 0) {
        assert_well_formed(&d);
        roundtrip(&d);
    }
    obj_free(&d);
}

static void test_decode_random_bytes(void **state)
{
    (void)state;
    uint8_t buf[256];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rnd() % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rnd();
        if (len && (iter & 1))
            buf[0] = OBJ_FORMAT_V1;
        uint8_t *copy = malloc(len ? len : 1);
        memcpy(copy, buf, len);
        decode_any(copy, len);
        free(copy);
    }
}

static void test_decode_mutated(void **state)
{
    (void)state;
    obj_t o;
    sample(&o);
    uint8_t *enc;
    size_t len;
    encode(&o, &enc, &len);
    uint8_t *buf = malloc(len);
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(buf, enc, len);
        int flips = 1 + (int)(rnd() % 3);
        for (int f = 0; f < flips; f++) {
            size_t at = 1 + rnd() % (len - 1);
            if (rnd() & 1)
                buf[at] ^= (uint8_t)(1u << (rnd() % 8));
            else
                buf[at] = (uint8_t)rnd();
        }
        obj_t d;
        obj_init(&d);
        int rc = obj_decode(buf, len, &d);
        assert_true(rc == 0 || rc == -EINVAL);
        if (rc == 0) {
            accepted++;
            assert_well_formed(&d);
        }
        obj_free(&d);
    }
    assert_true(accepted > 0); /* value bytes and timestamps may change freely */
    free(buf);
    free(enc);
    obj_free(&o);
}

/* ---- update ---- */

static void test_update_first_write(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    sibling_t s = mk("v1", 100);
    s.flags = 9;
    assert_int_equal(obj_update(&o, NULL, NODE_A, 0, &s, 100), 0);
    assert_null(s.value);
    assert_int_equal(s.dot.node, NODE_A);
    assert_int_equal(s.dot.counter, 1);
    assert_int_equal(o.nsib, 1);
    assert_int_equal(o.sib[0].flags, 9);
    assert_int_equal(vc_get(&o.vc, NODE_A), 1);
    assert_int_equal(o.vc.e[0].ts_us, 100);
    assert_true(obj_live(&o));
    obj_free(&o);
}

static void test_update_covering_context_collapses(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    put(&o, NULL, NODE_A, "a", 1);
    put(&o, NULL, NODE_B, "b", 2);
    put(&o, NULL, NODE_A, "c", 3);
    assert_int_equal(o.nsib, 3);
    vclock_t ctx;
    vc_init(&ctx);
    assert_int_equal(vc_copy(&ctx, &o.vc), 0);
    put(&o, &ctx, NODE_C, "final", 4);
    assert_int_equal(o.nsib, 1);
    assert_true(has_value(&o, "final"));
    assert_int_equal(o.sib[0].dot.node, NODE_C);
    assert_int_equal(o.sib[0].dot.counter, 1);
    assert_true(vc_descends(&o.vc, &ctx));
    /* the object's own vector works as context too (blind set) */
    put(&o, &o.vc, NODE_A, "again", 5);
    assert_int_equal(o.nsib, 1);
    assert_int_equal(o.sib[0].dot.counter, 3);
    assert_well_formed(&o);
    vc_free(&ctx);
    obj_free(&o);
}

static void test_update_null_context_keeps_siblings(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    put(&o, NULL, NODE_A, "a", 1);
    put(&o, NULL, NODE_A, "b", 2);
    assert_int_equal(o.nsib, 2);
    assert_int_equal(vc_get(&o.vc, NODE_A), 2);
    assert_true(has_value(&o, "a"));
    assert_true(has_value(&o, "b"));
    assert_well_formed(&o);
    obj_free(&o);
}

static void test_update_stale_context_concurrent_writes(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    put(&o, NULL, NODE_A, "v0", 1);
    vclock_t seen; /* two clients both read {A:1} */
    vc_init(&seen);
    assert_int_equal(vc_copy(&seen, &o.vc), 0);
    put(&o, &seen, NODE_A, "client1", 2); /* supersedes v0 */
    assert_int_equal(o.nsib, 1);
    put(&o, &seen, NODE_B, "client2", 3); /* concurrent with client1 */
    assert_int_equal(o.nsib, 2);
    assert_true(has_value(&o, "client1"));
    assert_true(has_value(&o, "client2"));
    assert_false(has_value(&o, "v0"));
    /* a read-modify-write that saw both resolves them */
    assert_int_equal(vc_copy(&seen, &o.vc), 0);
    put(&o, &seen, NODE_B, "merged", 4);
    assert_int_equal(o.nsib, 1);
    assert_true(has_value(&o, "merged"));
    vc_free(&seen);
    obj_free(&o);
}

static void test_update_dot_from_context(void **state)
{
    (void)state;
    /* ctx knows more writes of A than this replica: the new dot must
     * come after them, and the vector absorbs ctx. */
    obj_t o;
    obj_init(&o);
    vclock_t ctx;
    vc_init(&ctx);
    assert_int_equal(vc_set(&ctx, NODE_A, 7, 1), 0);
    assert_int_equal(vc_set(&ctx, NODE_B, 2, 1), 0);
    put(&o, &ctx, NODE_A, "x", 10);
    assert_int_equal(o.sib[0].dot.counter, 8);
    assert_int_equal(vc_get(&o.vc, NODE_A), 8);
    assert_int_equal(vc_get(&o.vc, NODE_B), 2);
    /* counter overflow is refused and leaves everything unchanged */
    assert_int_equal(vc_set(&ctx, NODE_C, UINT64_MAX, 1), 0);
    sibling_t s = mk("y", 11);
    uint8_t *before, *after;
    size_t lb, la;
    encode(&o, &before, &lb);
    assert_int_equal(obj_update(&o, &ctx, NODE_C, 0, &s, 11), -EOVERFLOW);
    assert_non_null(s.value);
    encode(&o, &after, &la);
    assert_int_equal(la, lb);
    assert_memory_equal(before, after, la);
    free(s.value);
    free(before);
    free(after);
    vc_free(&ctx);
    obj_free(&o);
}

/* ---- sync ---- */

/* out = sync(a, b) computed on a copy of a. */
static void synced(obj_t *out, const obj_t *a, const obj_t *b)
{
    obj_init(out);
    assert_int_equal(obj_copy(out, a), 0);
    assert_int_equal(obj_sync(out, b), 0);
    assert_well_formed(out);
}

static void test_sync_concurrent_commutative_idempotent(void **state)
{
    (void)state;
    obj_t base, r1, r2, r3, x, y, z;
    obj_init(&base);
    put(&base, NULL, NODE_A, "base", 1);
    obj_init(&r1);
    obj_init(&r2);
    obj_init(&r3);
    assert_int_equal(obj_copy(&r1, &base), 0);
    assert_int_equal(obj_copy(&r2, &base), 0);
    assert_int_equal(obj_copy(&r3, &base), 0);
    put(&r1, &base.vc, NODE_A, "from-a", 2); /* three concurrent writes */
    put(&r2, &base.vc, NODE_B, "from-b", 3);
    put(&r3, &base.vc, NODE_C, "from-c", 4);

    synced(&x, &r1, &r2);
    synced(&y, &r2, &r1);
    assert_obj_equal(&x, &y); /* commutative */
    assert_int_equal(x.nsib, 2);
    assert_true(has_value(&x, "from-a"));
    assert_true(has_value(&x, "from-b"));
    assert_false(has_value(&x, "base"));
    obj_free(&y);

    synced(&y, &x, &x); /* idempotent (a copy, not the same pointer) */
    assert_obj_equal(&x, &y);
    assert_int_equal(obj_sync(&y, &y), 0);
    assert_obj_equal(&x, &y);
    obj_free(&y);

    /* associative: (r1 r2) r3 == r1 (r2 r3) */
    obj_t yz;
    synced(&yz, &r2, &r3);
    synced(&y, &x, &r3);
    synced(&z, &r1, &yz);
    assert_obj_equal(&y, &z);
    assert_int_equal(y.nsib, 3);
    /* syncing with an older replica changes nothing */
    obj_t w;
    synced(&w, &y, &base);
    assert_obj_equal(&w, &y);
    obj_free(&w);
    obj_free(&yz);
    obj_free(&x);
    obj_free(&y);
    obj_free(&z);
    obj_free(&base);
    obj_free(&r1);
    obj_free(&r2);
    obj_free(&r3);
}

static void test_sync_drops_superseded(void **state)
{
    (void)state;
    obj_t old, newer, x, y;
    obj_init(&old);
    put(&old, NULL, NODE_A, "a", 1);
    put(&old, NULL, NODE_B, "b", 2);
    obj_init(&newer);
    assert_int_equal(obj_copy(&newer, &old), 0);
    put(&newer, &newer.vc, NODE_C, "resolved", 3);
    assert_int_equal(newer.nsib, 1);

    synced(&x, &old, &newer);
    synced(&y, &newer, &old);
    assert_int_equal(x.nsib, 1);
    assert_true(has_value(&x, "resolved"));
    assert_obj_equal(&x, &newer);
    assert_obj_equal(&y, &newer);

    /* one side resolved, the other got a concurrent write meanwhile */
    put(&old, &old.vc, NODE_A, "late", 4);
    obj_free(&x);
    obj_free(&y);
    synced(&x, &old, &newer);
    synced(&y, &newer, &old);
    assert_obj_equal(&x, &y);
    assert_int_equal(x.nsib, 2);
    assert_true(has_value(&x, "resolved"));
    assert_true(has_value(&x, "late"));
    obj_free(&x);
    obj_free(&y);
    obj_free(&old);
    obj_free(&newer);
}

static void test_sync_purged_sibling_stays_gone(void **state)
{
    (void)state;
    obj_t a, b;
    obj_init(&a);
    sibling_t s = mk("ttl", 10);
    s.expiry = 100;
    assert_int_equal(obj_update(&a, NULL, NODE_A, 0, &s, 10), 0);
    put(&a, NULL, NODE_B, "forever", 20);
    obj_init(&b);
    assert_int_equal(obj_copy(&b, &a), 0);
    assert_int_equal(obj_purge(&a, 100 * US, 0), 1);
    /* b still holds the expired sibling, but a's vector has seen it */
    assert_int_equal(obj_sync(&a, &b), 0);
    assert_int_equal(a.nsib, 1);
    assert_true(has_value(&a, "forever"));
    assert_int_equal(obj_sync(&b, &a), 0);
    assert_int_equal(b.nsib, 1);
    obj_free(&a);
    obj_free(&b);
}

static void test_sync_into_empty(void **state)
{
    (void)state;
    obj_t e, o;
    obj_init(&e);
    obj_init(&o);
    put(&o, NULL, NODE_A, "a", 1);
    assert_int_equal(obj_sync(&e, &o), 0);
    assert_obj_equal(&e, &o);
    obj_t e2;
    obj_init(&e2);
    assert_int_equal(obj_sync(&o, &e2), 0);
    assert_obj_equal(&e, &o);
    obj_free(&e);
    obj_free(&o);
}

/* ---- winner, prune, purge, live ---- */

static void test_winner_tie_break(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    assert_null(obj_winner(&o));
    assert_false(obj_live(&o));
    put(&o, NULL, NODE_B, "b-old", 5);
    put(&o, NULL, NODE_A, "a-new", 9);
    assert_int_equal(obj_winner(&o)->dot.node, NODE_A); /* greater ts */
    put(&o, NULL, NODE_C, "c-tie", 9);
    assert_int_equal(obj_winner(&o)->dot.node, NODE_C); /* same ts: greater node */
    put(&o, NULL, NODE_C, "c-tie2", 9);
    const sibling_t *w = obj_winner(&o);
    assert_int_equal(w->dot.node, NODE_C); /* same node: greater counter */
    assert_int_equal(w->dot.counter, 2);
    assert_memory_equal(w->value, "c-tie2", 6);
    obj_free(&o);
}

static void test_live_and_tombstones(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    put(&o, NULL, NODE_A, "v", 1);
    assert_true(obj_live(&o));
    sibling_t t = mk(NULL, 2);
    t.tombstone = true;
    assert_int_equal(obj_update(&o, &o.vc, NODE_A, 0, &t, 2), 0);
    assert_int_equal(o.nsib, 1);
    assert_false(obj_live(&o));
    assert_non_null(obj_winner(&o));
    put(&o, NULL, NODE_B, "concurrent", 1); /* older concurrent value */
    assert_false(obj_live(&o));
    put(&o, NULL, NODE_B, "newer", 3);
    assert_true(obj_live(&o));
    obj_free(&o);
}

static void test_prune_siblings(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    int64_t ts[] = {50, 10, 40, 20, 30};
    char val[8];
    for (int i = 0; i < 5; i++) {
        snprintf(val, sizeof(val), "t%d", (int)ts[i]);
        put(&o, NULL, (uint64_t)(i + 1), val, ts[i]);
    }
    assert_int_equal(obj_prune_siblings(&o, 5), 0);
    assert_int_equal(obj_prune_siblings(&o, 3), 2);
    assert_int_equal(o.nsib, 3);
    assert_true(has_value(&o, "t50"));
    assert_true(has_value(&o, "t40"));
    assert_true(has_value(&o, "t30"));
    assert_well_formed(&o);
    /* the winner is never dropped, even with max 0 */
    assert_int_equal(obj_prune_siblings(&o, 0), 2);
    assert_int_equal(o.nsib, 1);
    assert_true(has_value(&o, "t50"));
    assert_int_equal(vc_get(&o.vc, 2), 1); /* the vector still remembers */
    obj_free(&o);
}

/* Regression: pruning the vector of an object directly (vc_prune) could drop
 * the entry covering a sibling's dot and leave an undecodable record. */
static void test_prune_vc_keeps_dot_entries(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    for (uint64_t node = 1; node <= 10; node++)
        assert_int_equal(vc_set(&o.vc, node, 3, (int64_t)node), 0);
    /* one write by node 2 (an old entry) under the full context */
    vclock_t ctx;
    vc_init(&ctx);
    assert_int_equal(vc_copy(&ctx, &o.vc), 0);
    sibling_t s = mk("v", 100);
    assert_int_equal(obj_update(&o, &ctx, 2, 0, &s, 100), 0);
    vc_free(&ctx);
    assert_int_equal(obj_prune_vc(&o, 3), 7);
    assert_int_equal(o.vc.n, 3);
    assert_true(vc_covers(&o.vc, o.sib[0].dot));
    assert_well_formed(&o);
    uint8_t *buf;
    size_t len;
    assert_int_equal(obj_encode(&o, &buf, &len), 0);
    obj_t back;
    obj_init(&back);
    assert_int_equal(obj_decode(buf, len, &back), 0);
    free(buf);
    obj_free(&back);
    /* down to the entries the siblings need, never below */
    assert_int_equal(obj_prune_vc(&o, 0), 2);
    assert_int_equal(o.vc.n, 1);
    assert_int_equal(o.vc.e[0].node, 2);
    assert_int_equal(obj_prune_vc(&o, 0), 0);
    obj_free(&o);
}

/* Regression (issue 7): once pruning dropped an actor's entry (its
 * siblings superseded), a write minted from the key's own counter reused a
 * dot replicas remembered, and they took the new write for one already
 * seen.  Minting from the actor's own counter (min_counter) never does. */
static void test_mint_after_prune_is_new(void **state)
{
    (void)state;
    obj_t o, other;
    obj_init(&o);
    obj_init(&other);
    put(&o, NULL, 7, "by7", 1);    /* actor 7's dot (7,1) */
    put(&o, &o.vc, 8, "by8", 2);   /* superseded by actor 8 */
    assert_int_equal(obj_copy(&other, &o), 0); /* a replica that remembers (7,1) */
    for (uint64_t node = 20; node < 30; node++)
        assert_int_equal(vc_set(&o.vc, node, 1, 100 + (int64_t)node), 0);
    obj_prune_vc(&o, 2);
    assert_int_equal(vc_get(&o.vc, 7), 0); /* forgotten here */
    sibling_t s = mk("again", 300);
    assert_int_equal(obj_update(&o, &o.vc, 7, 2, &s, 300), 0); /* 7's next counter is 2 */
    assert_int_equal(s.dot.counter, 2);
    assert_int_equal(obj_sync(&other, &o), 0);
    assert_true(has_value(&other, "again")); /* not mistaken for (7,1) */
    obj_free(&o);
    obj_free(&other);
}

/* obj_equal sees every difference: a vector timestamp, a value byte, a
 * flag, a dot; equal content compares equal. */
static void test_equal_whole_content(void **state)
{
    (void)state;
    obj_t a, b;
    obj_init(&a);
    obj_init(&b);
    put(&a, NULL, 1, "hello", 10);
    put(&a, NULL, 2, "world", 11);
    assert_int_equal(obj_copy(&b, &a), 0);
    assert_true(obj_equal(&a, &b));
    b.sib[0].value[0] ^= 1;
    assert_false(obj_equal(&a, &b));
    b.sib[0].value[0] ^= 1;
    b.sib[1].flags = 9;
    assert_false(obj_equal(&a, &b));
    b.sib[1].flags = a.sib[1].flags;
    b.vc.e[0].ts_us++;
    assert_false(obj_equal(&a, &b));
    b.vc.e[0].ts_us--;
    b.sib[1].dot.counter++; /* not well formed, but must not compare equal */
    assert_false(obj_equal(&a, &b));
    b.sib[1].dot.counter--;
    assert_true(obj_equal(&a, &b));
    obj_free(&a);
    obj_free(&b);
}

/* Regression (issue 7): two replicas holding different values under one
 * dot (written before dots were minted at the replica) never converged,
 * since each kept its own copy.  Now both keep the greater content. */
static void test_sync_same_dot_converges(void **state)
{
    (void)state;
    obj_t a, b, ab, ba;
    obj_init(&a);
    obj_init(&b);
    obj_init(&ab);
    obj_init(&ba);
    put(&a, NULL, 1, "from-a", 10);
    put(&b, NULL, 1, "from-b", 10); /* the same dot (1,1) */
    assert_int_equal(obj_copy(&ab, &a), 0);
    assert_int_equal(obj_sync(&ab, &b), 0);
    assert_int_equal(obj_copy(&ba, &b), 0);
    assert_int_equal(obj_sync(&ba, &a), 0);
    assert_true(obj_equal(&ab, &ba));
    assert_int_equal(ab.nsib, 1);
    assert_true(has_value(&ab, "from-b"));
    assert_well_formed(&ab);
    obj_free(&a);
    obj_free(&b);
    obj_free(&ab);
    obj_free(&ba);
}

static void test_purge_expiry(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    int64_t expiry[] = {0, 99, 100, 101};
    for (int i = 0; i < 4; i++) {
        sibling_t s = mk("v", i);
        s.expiry = expiry[i];
        assert_int_equal(obj_update(&o, NULL, (uint64_t)(i + 1), 0, &s, i), 0);
    }
    sibling_t t = mk(NULL, 9);
    t.tombstone = true;
    t.expiry = 50;
    assert_int_equal(obj_update(&o, NULL, 9, 0, &t, 9), 0);
    assert_int_equal(obj_purge(&o, 98 * US, 0), 0);
    assert_int_equal(obj_purge(&o, 100 * US, 0), 2); /* expiry 99 and 100 */
    assert_int_equal(o.nsib, 3);
    for (uint32_t i = 0; i < o.nsib; i++)
        assert_true(o.sib[i].tombstone || o.sib[i].expiry == 0 || o.sib[i].expiry == 101);
    assert_int_equal(obj_purge(&o, 1000 * US, 0), 1);
    assert_int_equal(o.nsib, 2); /* never-expiring value and the tombstone */
    assert_well_formed(&o);
    obj_free(&o);
}

static void test_purge_flush(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    const int64_t flush_us = 5000000; /* flush_all effective at t = 5 s */
    put(&o, NULL, NODE_A, "before", 4000000);
    put(&o, NULL, NODE_B, "at", 5000000);
    put(&o, NULL, NODE_C, "after", 6000000);
    sibling_t t = mk(NULL, 1000000);
    t.tombstone = true;
    assert_int_equal(obj_update(&o, NULL, 0xd, 0, &t, 1000000), 0);
    assert_int_equal(obj_purge(&o, 4 * US, flush_us), 0); /* the flush is still ahead */
    assert_int_equal(obj_purge(&o, 5 * US, 0), 0);        /* no flush at all */
    assert_int_equal(obj_purge(&o, 5 * US, flush_us), 2);
    assert_int_equal(o.nsib, 2);
    assert_true(has_value(&o, "after"));
    assert_true(obj_live(&o));
    assert_int_equal(obj_purge(&o, INT64_MAX, flush_us), 0);
    obj_free(&o);
}

/* The crawler's pre-check (and obj_purgeable) agrees with obj_purge on every object of the
 * expiry and flush tests, at every instant around their edges, and says
 * "decode to know" for what it cannot read. */
static void test_enc_may_purge_agrees_with_purge(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    int64_t expiry[] = {0, 99, 100, 101};
    for (int i = 0; i < 4; i++) {
        sibling_t s = mk("v", 4000000 + i);
        s.expiry = expiry[i];
        assert_int_equal(obj_update(&o, NULL, (uint64_t)(i + 1), 0, &s, 4000000 + i), 0);
    }
    sibling_t t = mk(NULL, 9);
    t.tombstone = true;
    t.expiry = 50;
    assert_int_equal(obj_update(&o, NULL, 9, 0, &t, 9), 0);
    uint8_t *buf;
    size_t len;
    for (int keep = 0; keep < 3; keep++) {
        encode(&o, &buf, &len);
        int64_t nows[] = {1 * US, 98 * US, 99 * US, 100 * US, 101 * US, 102 * US, 1000 * US};
        int64_t flushes[] = {0, 4000001, 4000003, 200 * US};
        for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
            for (size_t j = 0; j < sizeof(flushes) / sizeof(flushes[0]); j++) {
                obj_t c;
                obj_init(&c);
                assert_int_equal(obj_copy(&c, &o), 0);
                bool may = obj_purgeable(&c, nows[i], flushes[j]);
                bool drops = obj_purge(&c, nows[i], flushes[j]) > 0;
                assert_int_equal(may, drops);
                assert_int_equal(obj_enc_may_purge(buf, len, nows[i], flushes[j]), drops);
                obj_free(&c);
            }
        }
        /* truncated or foreign bytes: decode to know */
        assert_true(obj_enc_may_purge(buf, len - 1, 1, 0));
        assert_true(obj_enc_may_purge((const uint8_t *)"x", 1, 1, 0));
        assert_true(obj_enc_may_purge(buf, 0, 1, 0));
        free(buf);
        obj_purge(&o, (int64_t)(keep ? 1000 : 100) * US, 0); /* fewer siblings next round */
    }
    obj_free(&o);
}

static void test_copy_is_deep(void **state)
{
    (void)state;
    obj_t a, b;
    sample(&a);
    obj_init(&b);
    put(&b, NULL, NODE_C, "old content", 1);
    assert_int_equal(obj_copy(&b, &a), 0);
    assert_obj_equal(&a, &b);
    assert_ptr_not_equal(a.sib[0].value, b.sib[0].value);
    b.sib[0].value[0] ^= 1;
    assert_int_equal(a.sib[0].value[0], 'o');
    assert_int_equal(obj_copy(&b, &b), 0);
    obj_free(&a);
    obj_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_empty_object),
        cmocka_unit_test(test_enc_may_purge_agrees_with_purge),
        cmocka_unit_test(test_roundtrip_values),
        cmocka_unit_test(test_roundtrip_many_siblings),
        cmocka_unit_test(test_encode_refuses_undecodable),
        cmocka_unit_test(test_decode_every_truncation),
        cmocka_unit_test(test_decode_wrong_format_and_trailing),
        cmocka_unit_test(test_decode_wrong_types),
        cmocka_unit_test(test_decode_dot_rules),
        cmocka_unit_test(test_decode_huge_counts),
        cmocka_unit_test(test_decode_deep_nesting),
        cmocka_unit_test(test_decode_random_bytes),
        cmocka_unit_test(test_decode_mutated),
        cmocka_unit_test(test_update_first_write),
        cmocka_unit_test(test_update_covering_context_collapses),
        cmocka_unit_test(test_update_null_context_keeps_siblings),
        cmocka_unit_test(test_update_stale_context_concurrent_writes),
        cmocka_unit_test(test_update_dot_from_context),
        cmocka_unit_test(test_sync_concurrent_commutative_idempotent),
        cmocka_unit_test(test_sync_drops_superseded),
        cmocka_unit_test(test_sync_purged_sibling_stays_gone),
        cmocka_unit_test(test_sync_into_empty),
        cmocka_unit_test(test_winner_tie_break),
        cmocka_unit_test(test_live_and_tombstones),
        cmocka_unit_test(test_prune_siblings),
        cmocka_unit_test(test_purge_expiry),
        cmocka_unit_test(test_prune_vc_keeps_dot_entries),
        cmocka_unit_test(test_mint_after_prune_is_new),
        cmocka_unit_test(test_equal_whole_content),
        cmocka_unit_test(test_sync_same_dot_converges),
        cmocka_unit_test(test_purge_flush),
        cmocka_unit_test(test_copy_is_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
