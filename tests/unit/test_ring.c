/*
 * test_ring.c - unit tests of ring/ (cmocka).
 *
 * The ring is checked against the spec, not against itself where that is
 * cheap: tokens are recomputed here from "<name>#<i>", preference lists and
 * sloppy-quorum substitutes are recomputed by a naive clockwise walk, and
 * two rings built from differently ordered member lists are compared by
 * node name.  The balance and movement tests print what they measured.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/hash.h"
#include "../../ring/ring.h"

#define TWO_POW_64 18446744073709551616.0

static const char *const NODES6[] = {"node1", "node2", "node3",
                                     "node4", "node5", "node6"};

static ring_t *build_ok(const char *const *names, size_t count,
                        uint32_t vnodes, uint32_t n, uint64_t epoch)
{
    ring_t *ring = NULL;

    assert_int_equal(ring_build(names, count, vnodes, n, epoch, &ring), 0);
    assert_non_null(ring);
    return ring;
}

static uint32_t key_of(char *buf, size_t cap, unsigned i)
{
    return (uint32_t)snprintf(buf, cap, "key:%u", i);
}

/* Width of range i as a fraction of the ring; a single-token ring's only
 * range is the whole ring. */
static double range_fraction(const ring_t *ring, size_t i)
{
    uint64_t start, end;

    assert_int_equal(ring_range(ring, i, &start, &end, NULL, NULL), 0);
    if (ring_range_count(ring) == 1)
        return 1.0;
    return (double)(end - start) / TWO_POW_64;
}

/* The node owning range i's end token: the head of its preference list. */
static uint32_t token_owner(const ring_t *ring, size_t i)
{
    const uint32_t *list;

    assert_int_equal(ring_range(ring, i, NULL, NULL, &list, NULL), 0);
    return list[0];
}

/* Naive reference: every node in clockwise order of first appearance,
 * starting at range i.  Returns how many were written to order[]. */
static uint32_t clockwise_nodes(const ring_t *ring, size_t i, uint32_t *order)
{
    size_t t, count = ring_range_count(ring);
    uint32_t got = 0, node, k;
    int seen;

    for (t = 0; t < count; t++) {
        node = token_owner(ring, (i + t) % count);
        seen = 0;
        for (k = 0; k < got; k++)
            seen |= order[k] == node;
        if (!seen)
            order[got++] = node;
    }
    return got;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : (x > y);
}

/* Tokens are xxh3 of "<name>#<i>", sorted; range ends are exactly those. */
static void test_tokens_follow_spec(void **state)
{
    ring_t *ring = build_ok(NODES6, 5, 64, 3, 7);
    size_t count = ring_range_count(ring), i, t = 0;
    uint64_t *want = malloc(count * sizeof(*want)), start, end, prev_end;
    char buf[64];
    uint32_t node, v;

    (void)state;
    assert_int_equal(count, 5 * 64);
    for (node = 0; node < 5; node++)
        for (v = 0; v < 64; v++)
            want[t++] = hash64(
                buf, (size_t)snprintf(buf, sizeof(buf), "%s#%u", NODES6[node], v));
    qsort(want, count, sizeof(*want), cmp_u64);
    prev_end = want[count - 1];
    for (i = 0; i < count; i++) {
        assert_int_equal(ring_range(ring, i, &start, &end, NULL, NULL), 0);
        assert_true(end == want[i]);
        assert_true(start == prev_end); /* contiguous, range 0 wraps */
        prev_end = end;
    }
    free(want);
    ring_free(ring);
}

static void test_getters(void **state)
{
    ring_t *ring = build_ok(NODES6, 2, 16, 3, 42);
    uint32_t i;

    (void)state;
    assert_true(ring_epoch(ring) == 42);
    assert_int_equal(ring_node_count(ring), 2);
    assert_int_equal(ring_vnodes(ring), 16);
    assert_int_equal(ring_n(ring), 2); /* min(n, nodes) */
    for (i = 0; i < 2; i++) {
        assert_string_equal(ring_node_name(ring, i), NODES6[i]);
        assert_int_equal(ring_node_index(ring, NODES6[i]), i);
    }
    assert_null(ring_node_name(ring, 2));
    assert_int_equal(ring_node_index(ring, "node3"), RING_NODE_NONE);
    assert_int_equal(ring_node_index(ring, NULL), RING_NODE_NONE);
    assert_true(ring_key_position("abc", 3) == hash64("abc", 3));
    ring_free(ring);
}

/* Members listed in two orders: same ranges, same lists by name. */
static void test_determinism(void **state)
{
    static const char *const shuffled[] = {"node3", "node5", "node1", "node4",
                                           "node2"};
    ring_t *a = build_ok(NODES6, 5, 64, 3, 1);
    ring_t *b = build_ok(shuffled, 5, 64, 3, 1);
    uint64_t sa, ea, sb, eb;
    const uint32_t *la, *lb;
    uint32_t na, nb, k;
    size_t i;

    (void)state;
    assert_int_equal(ring_range_count(a), ring_range_count(b));
    for (i = 0; i < ring_range_count(a); i++) {
        assert_int_equal(ring_range(a, i, &sa, &ea, &la, &na), 0);
        assert_int_equal(ring_range(b, i, &sb, &eb, &lb, &nb), 0);
        assert_true(sa == sb && ea == eb);
        assert_int_equal(na, 3);
        assert_int_equal(nb, 3);
        for (k = 0; k < na; k++)
            assert_string_equal(ring_node_name(a, la[k]),
                                ring_node_name(b, lb[k]));
    }
    ring_free(a);
    ring_free(b);
}

/* Every list has min(n, nodes) distinct nodes and matches a naive walk;
 * a key's list is the list of the range holding its position. */
static void test_preflist_distinct(void **state)
{
    static const uint32_t cfg[][3] = {
        /* nodes, vnodes, n */
        {5, 64, 3}, {2, 16, 3}, {1, 8, 3}, {6, 32, 5},
        {3, 1, 3},  {4, 8, 1},  {6, 4, 6}, {1, 1, 1},
    };
    uint32_t order[8], len, want, k, j, c;
    const uint32_t *list, *klist;
    char buf[32];
    size_t i, r;
    ring_t *ring;

    (void)state;
    for (c = 0; c < sizeof(cfg) / sizeof(cfg[0]); c++) {
        ring = build_ok(NODES6, cfg[c][0], cfg[c][1], cfg[c][2], 1);
        want = cfg[c][2] < cfg[c][0] ? cfg[c][2] : cfg[c][0];
        assert_int_equal(ring_n(ring), want);
        for (i = 0; i < ring_range_count(ring); i++) {
            assert_int_equal(ring_range(ring, i, NULL, NULL, &list, &len), 0);
            assert_int_equal(len, want);
            assert_int_equal(clockwise_nodes(ring, i, order), cfg[c][0]);
            for (k = 0; k < len; k++) {
                assert_int_equal(list[k], order[k]);
                for (j = 0; j < k; j++)
                    assert_int_not_equal(list[j], list[k]);
            }
        }
        for (k = 0; k < 1000; k++) {
            len = key_of(buf, sizeof(buf), k);
            r = ring_range_of(ring, ring_key_position(buf, len));
            assert_int_equal(ring_range(ring, r, NULL, NULL, &list, NULL), 0);
            assert_int_equal(ring_preflist(ring, buf, len, &klist), want);
            assert_ptr_equal(klist, list);
        }
        ring_free(ring);
    }
}

/* Each of 5 nodes with 64 vnodes is primary for 20% +- 5% of the ring. */
static void test_balance(void **state)
{
    ring_t *ring = build_ok(NODES6, 5, 64, 3, 1);
    double share[5] = {0}, total = 0, lo = 1, hi = 0;
    size_t i;
    uint32_t k;

    (void)state;
    for (i = 0; i < ring_range_count(ring); i++)
        share[token_owner(ring, i)] += range_fraction(ring, i);
    printf("balance (5 nodes x 64 vnodes, primary share):");
    for (k = 0; k < 5; k++) {
        printf(" %s=%.2f%%", ring_node_name(ring, k), share[k] * 100);
        total += share[k];
        lo = share[k] < lo ? share[k] : lo;
        hi = share[k] > hi ? share[k] : hi;
    }
    printf("\nbalance spread: min %.2f%% max %.2f%% (max-min %.2f points)\n",
           lo * 100, hi * 100, (hi - lo) * 100);
    assert_true(fabs(total - 1.0) < 1e-9);
    for (k = 0; k < 5; k++) {
        assert_true(share[k] >= 0.15);
        assert_true(share[k] <= 0.25);
    }
    ring_free(ring);
}

static int has_name(const ring_t *ring, const uint32_t *list, uint32_t len,
                    const char *name)
{
    uint32_t k;

    for (k = 0; k < len; k++)
        if (strcmp(ring_node_name(ring, list[k]), name) == 0)
            return 1;
    return 0;
}

/* A 6th node takes about 1/6 of the keys, all from others to itself, and
 * every replica set that changes gains it and loses exactly one node. */
static void test_add_node_moves_sixth(void **state)
{
    enum { KEYS = 100000 };
    ring_t *before = build_ok(NODES6, 5, 64, 3, 1);
    ring_t *after = build_ok(NODES6, 6, 64, 3, 2);
    const uint32_t *lb, *la;
    unsigned moved = 0, changed = 0, i;
    uint32_t len, k, kept;
    char buf[32];
    double frac;

    (void)state;
    for (i = 0; i < KEYS; i++) {
        len = key_of(buf, sizeof(buf), i);
        assert_int_equal(ring_preflist(before, buf, len, &lb), 3);
        assert_int_equal(ring_preflist(after, buf, len, &la), 3);
        if (strcmp(ring_node_name(before, lb[0]), ring_node_name(after, la[0]))) {
            moved++;
            assert_string_equal(ring_node_name(after, la[0]), "node6");
        }
        kept = 0;
        for (k = 0; k < 3; k++)
            kept += has_name(before, lb, 3, ring_node_name(after, la[k]));
        if (kept != 3) {
            changed++;
            assert_true(has_name(after, la, 3, "node6"));
            assert_int_equal(kept, 2);
        }
    }
    frac = (double)moved / KEYS;
    printf("add node6: primary moved for %u/%u keys = %.2f%% (1/6 = 16.67%%); "
           "replica set changed for %.2f%% (3/6 = 50%%)\n",
           moved, KEYS, frac * 100, (double)changed / KEYS * 100);
    assert_true(fabs(frac - 1.0 / 6) <= 0.03);
    ring_free(before);
    ring_free(after);
}

/* Range 0 is (last token, first token], through 2^64 - 1 and 0. */
static void test_wrap_around(void **state)
{
    ring_t *ring = build_ok(NODES6, 3, 4, 2, 1);
    size_t count = ring_range_count(ring), i;
    uint64_t start0, first, last, s, e, sum = 0, pos;
    const uint32_t *l0, *list;
    char buf[32];
    uint32_t len;
    unsigned k, above = 0, below = 0;

    (void)state;
    assert_int_equal(ring_range(ring, 0, &start0, &first, &l0, NULL), 0);
    assert_int_equal(ring_range(ring, count - 1, NULL, &last, NULL, NULL), 0);
    assert_true(start0 == last);
    assert_true(first < last);
    for (i = 0; i < count; i++) {
        assert_int_equal(ring_range(ring, i, &s, &e, NULL, NULL), 0);
        sum += e - s; /* mod 2^64: the widths add up to exactly 2^64 */
    }
    assert_true(sum == 0);

    assert_int_equal(ring_range_of(ring, 0), 0);
    assert_int_equal(ring_range_of(ring, UINT64_MAX), 0);
    assert_int_equal(ring_range_of(ring, last + 1), 0);
    assert_int_equal(ring_range_of(ring, first), 0);
    assert_int_equal(ring_range_of(ring, first + 1), 1);
    assert_int_equal(ring_range_of(ring, last), count - 1);
    assert_int_equal(ring_range_of(ring, last - 1), count - 1);

    /* Real keys on both sides of the seam get range 0's list. */
    for (k = 0; k < 100000 && (above == 0 || below == 0); k++) {
        len = key_of(buf, sizeof(buf), k);
        pos = ring_key_position(buf, len);
        if (pos > last || pos <= first) {
            above += pos > last;
            below += pos <= first;
            ring_preflist(ring, buf, len, &list);
            assert_ptr_equal(list, l0);
        }
    }
    assert_true(above > 0 && below > 0);
    ring_free(ring);

    /* One token: its range is the whole ring. */
    ring = build_ok(NODES6, 1, 1, 1, 1);
    assert_int_equal(ring_range_count(ring), 1);
    assert_int_equal(ring_range(ring, 0, &s, &e, NULL, NULL), 0);
    assert_true(s == e);
    assert_int_equal(ring_range_of(ring, 0), 0);
    assert_int_equal(ring_range_of(ring, e), 0);
    assert_int_equal(ring_range_of(ring, e + 1), 0);
    assert_int_equal(ring_range_of(ring, UINT64_MAX), 0);
    ring_free(ring);
}

static void test_replicates(void **state)
{
    ring_t *ring = build_ok(NODES6, 5, 16, 3, 1);
    const uint32_t *list;
    uint32_t node, k, len;
    char buf[32];
    size_t i;
    int in;

    (void)state;
    for (i = 0; i < ring_range_count(ring); i++) {
        assert_int_equal(ring_range(ring, i, NULL, NULL, &list, NULL), 0);
        for (node = 0; node < 5; node++) {
            in = list[0] == node || list[1] == node || list[2] == node;
            assert_int_equal(ring_replicates_range(ring, node, i), in);
        }
        assert_false(ring_replicates_range(ring, 5, i));
    }
    assert_false(ring_replicates_range(ring, 0, ring_range_count(ring)));
    for (k = 0; k < 1000; k++) {
        len = key_of(buf, sizeof(buf), k);
        ring_preflist(ring, buf, len, &list);
        for (node = 0; node < 5; node++) {
            in = list[0] == node || list[1] == node || list[2] == node;
            assert_int_equal(ring_replicates_key(ring, node, buf, len), in);
        }
        assert_false(ring_replicates_key(ring, RING_NODE_NONE, buf, len));
    }
    ring_free(ring);
}

/* Naive sloppy-quorum reference for one key and one down set. */
static int expected_healthy(const ring_t *ring, const char *key, size_t len,
                            const bool *down, ring_replica_t *out)
{
    uint32_t order[8], total, n = ring_n(ring), k, next = n;
    int count = 0;

    total = clockwise_nodes(ring, ring_range_of(ring, ring_key_position(key, len)),
                            order);
    for (k = 0; k < n; k++) {
        if (!down[order[k]]) {
            out[count].node = order[k];
            out[count++].hint_for = RING_NODE_NONE;
            continue;
        }
        while (next < total && down[order[next]])
            next++;
        if (next < total) {
            out[count].node = order[next++];
            out[count++].hint_for = order[k];
        }
    }
    return count;
}

static void test_down_nodes_substituted(void **state)
{
    ring_t *ring = build_ok(NODES6, 5, 64, 3, 1);
    ring_replica_t got[RING_MAX_N], want[RING_MAX_N];
    const uint32_t *owners;
    bool down[5];
    uint32_t len, k, mask;
    char buf[32];
    int count, wcount, j, up;

    (void)state;
    for (k = 0; k < 300; k++) {
        len = key_of(buf, sizeof(buf), k);
        ring_preflist(ring, buf, len, &owners);

        /* All up (NULL): the owners themselves, no hints. */
        assert_int_equal(ring_preflist_healthy(ring, buf, len, NULL, got, 3), 3);
        for (j = 0; j < 3; j++) {
            assert_int_equal(got[j].node, owners[j]);
            assert_int_equal(got[j].hint_for, RING_NODE_NONE);
        }

        /* Primary down: a healthy non-owner stands in for it. */
        memset(down, 0, sizeof(down));
        down[owners[0]] = true;
        assert_int_equal(ring_preflist_healthy(ring, buf, len, down, got, 3), 3);
        assert_int_equal(got[0].hint_for, owners[0]);
        assert_false(down[got[0].node]);
        assert_false(ring_replicates_key(ring, got[0].node, buf, len));
        assert_int_equal(got[1].node, owners[1]);
        assert_int_equal(got[1].hint_for, RING_NODE_NONE);
        assert_int_equal(got[2].node, owners[2]);
        assert_int_equal(got[2].hint_for, RING_NODE_NONE);

        /* Every down set against the naive reference. */
        for (mask = 0; mask < 32; mask++) {
            up = 5;
            for (j = 0; j < 5; j++) {
                down[j] = (mask >> j) & 1;
                up -= down[j];
            }
            count = ring_preflist_healthy(ring, buf, len, down, got, RING_MAX_N);
            wcount = expected_healthy(ring, buf, len, down, want);
            assert_int_equal(count, wcount);
            /* Fewer than n only when fewer than n nodes are up. */
            assert_int_equal(count, up < 3 ? up : 3);
            for (j = 0; j < count; j++) {
                assert_int_equal(got[j].node, want[j].node);
                assert_int_equal(got[j].hint_for, want[j].hint_for);
                assert_false(down[got[j].node]);
            }
        }
    }
    assert_int_equal(ring_preflist_healthy(ring, "k", 1, NULL, got, 2), -EINVAL);
    assert_int_equal(ring_preflist_healthy(ring, "k", 1, NULL, NULL, 3), -EINVAL);
    ring_free(ring);
}

static void test_bad_args(void **state)
{
    static const char *const dup[] = {"node1", "node2", "node1"};
    static const char *const empty[] = {"node1", ""};
    static const char *const null_name[] = {"node1", NULL};
    char long_name[RING_NAME_MAX + 2];
    const char *long_names[] = {long_name};
    ring_t *sentinel = (ring_t *)&sentinel, *ring = sentinel;

    (void)state;
    memset(long_name, 'x', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(ring_build(NULL, 3, 8, 3, 1, &ring), -EINVAL);
    assert_int_equal(ring_build(NODES6, 3, 8, 3, 1, NULL), -EINVAL);
    assert_int_equal(ring_build(NODES6, 0, 8, 3, 1, &ring), -EINVAL);
    assert_int_equal(ring_build(dup, 3, 8, 3, 1, &ring), -EINVAL);
    assert_int_equal(ring_build(NODES6, 3, 0, 3, 1, &ring), -EINVAL);
    assert_int_equal(ring_build(NODES6, 3, 8, 0, 1, &ring), -EINVAL);
    assert_int_equal(ring_build(NODES6, 3, 8, RING_MAX_N + 1, 1, &ring), -EINVAL);
    assert_int_equal(ring_build(empty, 2, 8, 3, 1, &ring), -EINVAL);
    assert_int_equal(ring_build(null_name, 2, 8, 3, 1, &ring), -EINVAL);
    assert_int_equal(ring_build(long_names, 1, 8, 3, 1, &ring), -EINVAL);
    assert_int_equal(ring_build(NODES6, 2, RING_MAX_TOKENS, 3, 1, &ring), -EINVAL);
    assert_ptr_equal(ring, sentinel); /* untouched on failure */

    long_name[RING_NAME_MAX] = '\0'; /* exactly the limit is fine */
    ring = build_ok(long_names, 1, 8, 3, 1);
    assert_int_equal(ring_range(ring, ring_range_count(ring), NULL, NULL, NULL,
                                NULL), -EINVAL);
    ring_free(ring);
    ring_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_follow_spec),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_preflist_distinct),
        cmocka_unit_test(test_balance),
        cmocka_unit_test(test_add_node_moves_sixth),
        cmocka_unit_test(test_wrap_around),
        cmocka_unit_test(test_replicates),
        cmocka_unit_test(test_down_nodes_substituted),
        cmocka_unit_test(test_bad_args),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
