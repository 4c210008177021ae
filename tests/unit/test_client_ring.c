/*
 * test_client_ring.c - the client library's view of placement (client/topo.c)
 * against the server's ring (ring/ring.c), cmocka.
 *
 * The client never builds a ring: it parses the `ring` reply and hashes
 * keys.  These tests build real rings with ring_build(), print them exactly
 * as the server's `ring` command does (server/conn.c do_ring), parse that
 * text with topo_parse_ring(), and check that every key gets the same
 * preference list from both sides, including keys that sit on or next to a
 * token and the wrap-around range.  They also feed the parsers the bad
 * input a broken or hostile server could send.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../client/client_internal.h"
#include "../../common/hash.h"
#include "../../ring/ring.h"

/* The server's `ring` reply body, as do_ring prints it (without END). */
static char *ring_text(const ring_t *ring)
{
    size_t nr = ring_range_count(ring), cap = nr * 400 + 1, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    for (size_t i = 0; i < nr; i++) {
        uint64_t start, end;
        const uint32_t *list;
        uint32_t n;
        assert_int_equal(ring_range(ring, i, &start, &end, &list, &n), 0);
        len += (size_t)snprintf(text + len, cap - len, "%llu %llu ", (unsigned long long)start,
                                (unsigned long long)end);
        for (uint32_t j = 0; j < n; j++)
            len += (size_t)snprintf(text + len, cap - len, "%s%s", j ? "," : "",
                                    ring_node_name(ring, list[j]));
        len += (size_t)snprintf(text + len, cap - len, "\n");
    }
    return text;
}

/* Both sides' preference lists of one position agree, by node name. */
static void check_position(const ring_t *ring, const qring_t *q, uint64_t pos)
{
    size_t si = ring_range_of(ring, pos), ci = topo_range_of(q, pos);
    const uint32_t *list;
    uint32_t n;
    assert_int_equal(ring_range(ring, si, NULL, NULL, &list, &n), 0);
    assert_int_equal(q->n, n);
    for (uint32_t j = 0; j < n; j++)
        assert_string_equal(q->names[q->lists[ci * q->n + j]], ring_node_name(ring, list[j]));
}

static void same_owners(const char *const *names, size_t count, uint32_t vnodes, uint32_t n)
{
    ring_t *ring = NULL;
    qring_t *q = NULL;
    char err[QKV_ERRLEN] = "", key[64];

    assert_int_equal(ring_build(names, count, vnodes, n, 1, &ring), 0);
    char *text = ring_text(ring);
    assert_int_equal(topo_parse_ring(text, &q, err), 0);
    assert_int_equal(q->nranges, ring_range_count(ring));
    for (unsigned i = 0; i < 100000; i++) {
        int kl = snprintf(key, sizeof(key), "user:%u:profile", i);
        /* one shared hash: the client's key position is the server's */
        assert_true(topo_key_position(key, (size_t)kl) == ring_key_position(key, (size_t)kl));
        check_position(ring, q, topo_key_position(key, (size_t)kl));
    }
    /* on, just above and just below every token, and the ends of the space */
    for (size_t i = 0; i < ring_range_count(ring); i++) {
        uint64_t end;
        assert_int_equal(ring_range(ring, i, NULL, &end, NULL, NULL), 0);
        check_position(ring, q, end);
        check_position(ring, q, end + 1);
        check_position(ring, q, end - 1);
    }
    check_position(ring, q, 0);
    check_position(ring, q, UINT64_MAX);
    topo_ring_free(q);
    free(text);
    ring_free(ring);
}

static void test_three_nodes(void **state)
{
    (void)state;
    static const char *const names[] = {"n1", "n2", "n3"};
    same_owners(names, 3, 64, 3);
}

static void test_five_nodes_n3(void **state)
{
    (void)state;
    static const char *const names[] = {"node-a", "node-b", "node-c", "node-d", "node-e"};
    same_owners(names, 5, 64, 3);
}

static void test_single_node(void **state)
{
    (void)state;
    static const char *const names[] = {"solo"};
    same_owners(names, 1, 1, 1);  /* one token: range 0 is the whole ring */
    same_owners(names, 1, 16, 1);
}

static void test_members(void **state)
{
    (void)state;
    qmember_t *m = NULL;
    size_t n = 0;
    char err[QKV_ERRLEN];
    const char *text = "n1 127.0.0.1:11211 127.0.0.1:7946 up phi=0.01 hb=312\n"
                       "n2 127.0.0.1:11212 127.0.0.1:7947 down phi=9.50 hb=12\n"
                       "n3 127.0.0.1:11213 127.0.0.1:7948 joining phi=0.00 hb=1\n";
    assert_int_equal(topo_parse_members(text, &m, &n, err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(m[0].name, "n1");
    assert_string_equal(m[0].addr, "127.0.0.1:11211");
    assert_int_equal(m[0].state, QNODE_UP);
    assert_int_equal(m[1].state, QNODE_DOWN);
    assert_int_equal(m[2].state, QNODE_JOINING);
    free(m);
    m = NULL;
    assert_int_equal(topo_parse_members("n1 nocolon x up\n", &m, &n, err), QKV_ERR_PROTO);
    assert_int_equal(topo_parse_members("n1 127.0.0.1:1\n", &m, &n, err), QKV_ERR_PROTO);
    assert_null(m);
}

static void expect_bad_ring(const char *text)
{
    qring_t *q = NULL;
    char err[QKV_ERRLEN] = "";
    assert_int_equal(topo_parse_ring(text, &q, err), QKV_ERR_PROTO);
    assert_null(q);
    assert_true(err[0] != '\0');
}

static void test_bad_ring(void **state)
{
    (void)state;
    expect_bad_ring("");
    expect_bad_ring("garbage\n");
    expect_bad_ring("1 2\n");                           /* no list */
    expect_bad_ring("x 2 n1\n");                        /* not a number */
    expect_bad_ring("18446744073709551616 5 n1\n");     /* 2^64 */
    expect_bad_ring("5 10 n1\n10 20 n2\n");             /* range 0 must start at the last end */
    expect_bad_ring("20 10 n1\n10 15 n2\n5 20 n1\n");   /* not tiling */
    expect_bad_ring("20 10 n1,n1\n10 20 n2\n");         /* a node twice */
    expect_bad_ring("20 10 n1,\n10 20 n2\n");           /* empty name */
    /* well formed: two ranges */
    qring_t *q = NULL;
    char err[QKV_ERRLEN];
    assert_int_equal(topo_parse_ring("20 10 n1,n2\n10 20 n2,n1\n", &q, err), 0);
    assert_int_equal(q->nranges, 2);
    assert_int_equal(topo_range_of(q, 5), 0);
    assert_int_equal(topo_range_of(q, 10), 0);
    assert_int_equal(topo_range_of(q, 11), 1);
    assert_int_equal(topo_range_of(q, 20), 1);
    assert_int_equal(topo_range_of(q, 21), 0);   /* wraps */
    topo_ring_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_three_nodes),
        cmocka_unit_test(test_five_nodes_n3),
        cmocka_unit_test(test_single_node),
        cmocka_unit_test(test_members),
        cmocka_unit_test(test_bad_ring),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
