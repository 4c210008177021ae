/*
 * test_tictac.c - unit tests for storage/tictac.c: segments (uniform,
 * contiguous token intervals, wrapping and whole-ring ranges), incremental
 * updates against a rebuild from scratch, the descent that finds a single
 * differing key, and the memory of the trees of a real ring.
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

#include "../../ring/ring.h"
#include "../../storage/tictac.h"

/* splitmix64: a deterministic generator, so a failure reproduces */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* The tree's invariants, recomputed here: branch = XOR of its leaves,
 * root = XOR of the branches. */
static void assert_xor_invariants(const tictac_t *t)
{
    uint64_t root = 0;
    for (uint32_t b = 0; b < TICTAC_BRANCHES; b++) {
        uint64_t x = 0;
        for (uint32_t l = 0; l < TICTAC_LEAVES; l++)
            x ^= tictac_leaves(t, b)[l];
        assert_int_equal(tictac_branches(t)[b], x);
        root ^= x;
    }
    assert_int_equal(tictac_root(t), root);
    assert_null(tictac_leaves(t, TICTAC_BRANCHES));
}

/* The trees' every hash is equal (root, branches, leaves). */
static void assert_same_tree(const tictac_t *a, const tictac_t *b)
{
    assert_xor_invariants(a);
    assert_xor_invariants(b);
    assert_int_equal(tictac_root(a), tictac_root(b));
    assert_memory_equal(tictac_branches(a), tictac_branches(b), TICTAC_BRANCHES * 8);
    for (uint32_t i = 0; i < TICTAC_BRANCHES; i++)
        assert_memory_equal(tictac_leaves(a, i), tictac_leaves(b, i), TICTAC_LEAVES * 8);
    assert_int_equal(tictac_keys(a), tictac_keys(b));
}

/* The ranges under test: ordinary, wrapping past 2^64, whole ring, tiny. */
static const uint64_t ranges[][2] = {
    {0x1000000000000000ull, 0x3000000000000000ull},
    {0xf000000000000000ull, 0x0800000000000000ull},
    {0x1234567890abcdefull, 0x1234567890abcdefull},
    {100, 100 + 700},
};

static void test_segments_tile_the_range(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
        tictac_t *t;
        assert_int_equal(tictac_create(ranges[r][0], ranges[r][1], &t), 0);
        uint64_t start = ranges[r][0], end = ranges[r][1];
        /* consecutive segments are adjacent intervals from start+1 to end */
        uint64_t next = start + 1;
        uint32_t nonempty = 0;
        for (uint32_t s = 0; s < TICTAC_SEGMENTS; s++) {
            uint64_t first, last;
            int rc = tictac_segment_bounds(t, s, &first, &last);
            if (rc == -ENOENT)
                continue;
            assert_int_equal(rc, 0);
            nonempty++;
            assert_int_equal(first, next);
            assert_int_equal(tictac_segment(t, first), s);
            assert_int_equal(tictac_segment(t, last), s);
            assert_true(tictac_contains(t, first) && tictac_contains(t, last));
            next = last + 1;
        }
        assert_int_equal(next - 1, end); /* the last segment ends at end */
        assert_int_equal(nonempty, r == 3 ? 700 : TICTAC_SEGMENTS);
        assert_int_equal(tictac_segment_bounds(t, TICTAC_SEGMENTS, &next, &next), -EINVAL);
        if (start != end) {
            assert_false(tictac_contains(t, start)); /* (start, end] */
            assert_int_equal(tictac_segment(t, start), TICTAC_SEGMENTS);
            assert_false(tictac_contains(t, end + 1));
            assert_int_equal(tictac_update(t, end + 1, 0, 42), -ERANGE);
            assert_int_equal(tictac_root(t), 0);
        }
        tictac_free(t);
    }
}

static void test_segments_are_uniform(void **state)
{
    (void)state;
    /* 1M uniform tokens of the wrapping range: ~1024 per segment */
    tictac_t *t;
    assert_int_equal(tictac_create(ranges[1][0], ranges[1][1], &t), 0);
    static uint32_t count[TICTAC_SEGMENTS];
    memset(count, 0, sizeof(count));
    uint64_t seed = 7;
    uint64_t w = ranges[1][1] - ranges[1][0];
    for (int i = 0; i < 1000000; i++) {
        uint64_t tok = ranges[1][0] + 1 + rnd(&seed) % w;
        uint32_t s = tictac_segment(t, tok);
        assert_true(s < TICTAC_SEGMENTS);
        count[s]++;
    }
    uint32_t lo = UINT32_MAX, hi = 0;
    for (uint32_t s = 0; s < TICTAC_SEGMENTS; s++) {
        lo = count[s] < lo ? count[s] : lo;
        hi = count[s] > hi ? count[s] : hi;
    }
    /* mean 977, sd ~31: 6 sd either side */
    assert_true(lo > 977 - 190);
    assert_true(hi < 977 + 190);
    tictac_free(t);
}

#define NKEYS 4000
#define NOPS 40000

typedef struct {
    char key[16];
    uint8_t val[24];
    size_t vlen;
    bool present;
} model_t;

static uint64_t model_hash(const model_t *m)
{
    return m->present ? tictac_key_hash(m->key, strlen(m->key), m->val, m->vlen) : 0;
}

static void test_incremental_equals_rebuild(void **state)
{
    (void)state;
    static model_t m[NKEYS];
    for (size_t r = 0; r < 3; r++) {
        memset(m, 0, sizeof(m));
        tictac_t *inc, *full;
        assert_int_equal(tictac_create(ranges[r][0], ranges[r][1], &inc), 0);
        assert_int_equal(tictac_create(ranges[r][0], ranges[r][1], &full), 0);
        uint64_t seed = 1000 + r;
        int outside = 0;
        for (int op = 0; op < NOPS; op++) {
            size_t i = rnd(&seed) % NKEYS;
            model_t *k = &m[i];
            snprintf(k->key, sizeof(k->key), "k%zu", i);
            uint64_t tok = ring_key_position(k->key, strlen(k->key));
            uint64_t old = model_hash(k);
            if (rnd(&seed) % 4 == 0) { /* delete (of a present or absent key) */
                k->present = false;
            } else {                   /* put or overwrite */
                k->present = true;
                k->vlen = 1 + rnd(&seed) % sizeof(k->val);
                for (size_t b = 0; b < k->vlen; b++)
                    k->val[b] = (uint8_t)rnd(&seed);
            }
            int rc = tictac_update(inc, tok, old, model_hash(k));
            if (!tictac_contains(inc, tok)) {
                assert_int_equal(rc, -ERANGE);
                outside++;
            } else {
                assert_int_equal(rc, 0);
            }
        }
        /* a rebuild from scratch: each present key of the range once */
        uint64_t present = 0;
        for (size_t i = 0; i < NKEYS; i++) {
            uint64_t tok = ring_key_position(m[i].key, strlen(m[i].key));
            if (m[i].present && tictac_contains(full, tok)) {
                assert_int_equal(tictac_update(full, tok, 0, model_hash(&m[i])), 0);
                present++;
            }
        }
        assert_true(present > 0);
        assert_int_equal(tictac_keys(full), present);
        assert_same_tree(inc, full);
        /* and both equal the leaves computed here from the model */
        static uint64_t leaf[TICTAC_SEGMENTS];
        memset(leaf, 0, sizeof(leaf));
        for (size_t i = 0; i < NKEYS; i++) {
            uint64_t tok = ring_key_position(m[i].key, strlen(m[i].key));
            if (m[i].present && tictac_contains(full, tok))
                leaf[tictac_segment(full, tok)] ^= model_hash(&m[i]);
        }
        for (uint32_t b = 0; b < TICTAC_BRANCHES; b++)
            assert_memory_equal(tictac_leaves(inc, b), &leaf[b * TICTAC_LEAVES],
                                TICTAC_LEAVES * 8);
        assert_int_not_equal(tictac_root(inc), 0);
        if (r == 2)
            assert_int_equal(outside, 0); /* the whole ring holds everything */
        uint32_t segs[4];
        assert_int_equal(tictac_diff(inc, full, segs, 4, NULL), 0);
        /* deleting everything empties the tree */
        for (size_t i = 0; i < NKEYS; i++) {
            uint64_t tok = ring_key_position(m[i].key, strlen(m[i].key));
            if (m[i].present && tictac_contains(inc, tok))
                assert_int_equal(tictac_update(inc, tok, model_hash(&m[i]), 0), 0);
        }
        assert_int_equal(tictac_root(inc), 0);
        assert_int_equal(tictac_keys(inc), 0);
        for (uint32_t b = 0; b < TICTAC_BRANCHES; b++)
            assert_int_equal(tictac_branches(inc)[b], 0);
        tictac_clear(full);
        assert_same_tree(inc, full);
        tictac_free(inc);
        tictac_free(full);
    }
}

static void test_one_key_differs_in_one_segment(void **state)
{
    (void)state;
    tictac_t *a, *b;
    uint64_t start = ranges[1][0], end = ranges[1][1];
    assert_int_equal(tictac_create(start, end, &a), 0);
    assert_int_equal(tictac_create(start, end, &b), 0);
    char key[16], odd[16] = "";
    uint64_t odd_tok = 0, odd_old = 0;
    int n = 0;
    for (int i = 0; n < 5000; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        uint64_t tok = ring_key_position(key, strlen(key));
        if (!tictac_contains(a, tok))
            continue;
        uint64_t h = tictac_key_hash(key, strlen(key), "v1", 2);
        assert_int_equal(tictac_update(a, tok, 0, h), 0);
        assert_int_equal(tictac_update(b, tok, 0, h), 0);
        if (++n == 2500) {
            memcpy(odd, key, sizeof(key));
            odd_tok = tok;
            odd_old = h;
        }
    }
    assert_same_tree(a, b);
    tictac_diff_stats_t st;
    uint32_t segs[8];
    assert_int_equal(tictac_diff(a, b, segs, 8, &st), 0);
    assert_int_equal(st.branches_descended, 0); /* equal roots: no descent */

    /* b's replica of one key is newer */
    uint64_t h2 = tictac_key_hash(odd, strlen(odd), "v2", 2);
    assert_int_not_equal(h2, odd_old);
    assert_int_equal(tictac_update(b, odd_tok, odd_old, h2), 0);
    assert_int_not_equal(tictac_root(a), tictac_root(b));
    uint32_t br[TICTAC_BRANCHES];
    assert_int_equal(tictac_compare(tictac_branches(a), tictac_branches(b), TICTAC_BRANCHES, br,
                                    TICTAC_BRANCHES), 1);
    assert_int_equal(br[0], tictac_segment(a, odd_tok) / TICTAC_LEAVES);
    memset(segs, 0xff, sizeof(segs));
    assert_int_equal(tictac_diff(a, b, segs, 8, &st), 1);
    assert_int_equal(segs[0], tictac_segment(a, odd_tok));
    assert_int_equal(st.branches_descended, 1);
    assert_int_equal(st.leaves_compared, TICTAC_LEAVES);
    /* the segment's bounds hold the key: one scan of them finds it */
    uint64_t first, last;
    assert_int_equal(tictac_segment_bounds(a, segs[0], &first, &last), 0);
    assert_true(odd_tok - first <= last - first);

    /* a key one side lacks differs the same way */
    assert_int_equal(tictac_update(b, odd_tok, h2, 0), 0);
    assert_int_equal(tictac_diff(a, b, segs, 8, &st), 1);
    assert_int_equal(segs[0], tictac_segment(a, odd_tok));
    assert_int_equal(tictac_keys(a), tictac_keys(b) + 1);
    /* cap bounds what is written, not the count */
    assert_int_equal(tictac_diff(a, b, segs, 0, NULL), 1);

    /* trees of different ranges do not compare */
    tictac_t *c;
    assert_int_equal(tictac_create(start, end + 1, &c), 0);
    assert_int_equal(tictac_diff(a, c, segs, 8, NULL), -EINVAL);
    tictac_free(a);
    tictac_free(b);
    tictac_free(c);
}

static void test_key_hash(void **state)
{
    (void)state;
    uint64_t h = tictac_key_hash("k", 1, "obj", 3);
    assert_int_equal(h, tictac_key_hash("k", 1, "obj", 3));    /* deterministic */
    assert_int_not_equal(h, tictac_key_hash("j", 1, "obj", 3)); /* the key counts */
    assert_int_not_equal(h, tictac_key_hash("k", 1, "obk", 3)); /* the object counts */
    assert_int_not_equal(tictac_key_hash("", 0, "", 0), 0);
    assert_int_not_equal(tictac_key_hash(NULL, 0, NULL, 0), 0);
}

/* The trees of every range node 0 replicates in a 5-node ring of 64 vnodes
 * at N = 3, holding 1M keys between them. */
static void test_memory_for_1m_keys(void **state)
{
    (void)state;
    const char *names[] = {"n1", "n2", "n3", "n4", "n5"};
    ring_t *ring;
    assert_int_equal(ring_build(names, 5, 64, 3, 1, &ring), 0);
    size_t nr = ring_range_count(ring);
    tictac_t **trees = calloc(nr, sizeof(*trees));
    assert_non_null(trees);
    size_t held = 0, mem = 0;
    for (size_t i = 0; i < nr; i++) {
        uint64_t s, e;
        assert_int_equal(ring_range(ring, i, &s, &e, NULL, NULL), 0);
        if (!ring_replicates_range(ring, 0, i))
            continue;
        assert_int_equal(tictac_create(s, e, &trees[i]), 0);
        held++;
        mem += tictac_memory(trees[i]);
    }
    size_t before = mem;
    uint64_t seed = 99, stored = 0;
    while (stored < 1000000) { /* 1M keys this node replicates */
        uint64_t tok = rnd(&seed);
        size_t r = ring_range_of(ring, tok);
        if (trees[r] != NULL) {
            assert_int_equal(tictac_update(trees[r], tok, 0, rnd(&seed) | 1), 0);
            stored++;
        }
    }
    mem = 0;
    uint64_t keys = 0;
    for (size_t i = 0; i < nr; i++)
        if (trees[i] != NULL) {
            mem += tictac_memory(trees[i]);
            keys += tictac_keys(trees[i]);
        }
    print_message("tictac: %zu of %zu ranges held, %llu keys, %zu bytes of trees "
                  "(%zu per tree)\n",
                  held, nr, (unsigned long long)keys, mem, tictac_memory(NULL));
    assert_int_equal(keys, 1000000);
    assert_true(held > 150 && held < 250); /* ~3/5 of 320 ranges */
    assert_int_equal(mem, before);         /* trees do not grow with keys */
    assert_true(mem < 4u << 20);           /* "well under 32 MB" */
    assert_int_equal(tictac_memory(NULL), 8480);
    for (size_t i = 0; i < nr; i++)
        tictac_free(trees[i]);
    free(trees);
    ring_free(ring);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_segments_tile_the_range),
        cmocka_unit_test(test_segments_are_uniform),
        cmocka_unit_test(test_incremental_equals_rebuild),
        cmocka_unit_test(test_one_key_differs_in_one_segment),
        cmocka_unit_test(test_key_hash),
        cmocka_unit_test(test_memory_for_1m_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
