/*
 * test_aae.c - unit tests for server/aae.c on a real store (mkdtemp
 * directory) and hand-made cluster views: the trees built by scanning equal
 * trees computed here from the store, whatever writes interleave with the
 * build; a ring change keeps the trees of unchanged ranges and builds the
 * new ones; writes outside the held ranges are ignored; the event loop
 * drives the build by itself.
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

#include <cmocka.h>

#include "../../server/aae.h"
#include "../../server/node.h"

typedef struct {
    char dir[64];
    server_t srv;
    uint64_t seed;
} fixture_t;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* A view of the ring of names (vnodes tokens each, n replicas) in which we
 * are `self`, installed as the cluster's current view (the old one is
 * released, as cluster.c does). */
static void set_view(server_t *srv, const char *const *names, size_t count, uint32_t vnodes,
                     uint32_t n, const char *self)
{
    cluster_view_t *v = calloc(1, sizeof(*v));
    assert_non_null(v);
    assert_int_equal(ring_build(names, count, vnodes, n, 1, &v->ring), 0);
    v->nodes = calloc(count, sizeof(*v->nodes));
    v->down = calloc(count, sizeof(*v->down));
    v->refs = 1;
    v->self_idx = ring_node_index(v->ring, self);
    assert_int_not_equal(v->self_idx, RING_NODE_NONE);
    cluster_view_release(srv->cluster.view);
    srv->cluster.view = v;
}

static const char *three[] = {"n1", "n2", "n3"};
static const char *four[] = {"n1", "n2", "n3", "n4"};

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/qkv-test-aae-XXXXXX");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    store_opts_t o = {.path = f->dir};
    if (store_open(&o, &f->srv.store, NULL) != 0)
        return -1;
    f->srv.cfg.ae_enabled = true;
    f->srv.cfg.ae_interval_ms = 1000;
    f->srv.cfg.ae_max_keys_per_s = 1000;
    f->srv.cfg.ae_max_bytes_per_s = 1 << 20;
    f->srv.cfg.max_siblings = 16;
    f->srv.cfg.max_vv_entries = 32;
    f->srv.cfg.tombstone_grace_s = 0;
    f->seed = 42;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    aae_close(&f->srv);
    cluster_view_release(f->srv.cluster.view);
    store_close(f->srv.store);
    int rc = nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc;
}

/* The tree hash of key's stored record (store_get computes it), 0 when
 * absent. */
static uint64_t stored_hash(server_t *srv, const char *key)
{
    obj_t o;
    obj_init(&o);
    int rc = store_get(srv->store, key, strlen(key), &o);
    assert_true(rc >= 0);
    uint64_t h = rc == 1 ? o.stored_hash : 0;
    if (rc == 1) { /* the store's hash is tictac_key_hash of the stored bytes */
        uint8_t *enc;
        size_t len;
        assert_int_equal(store_get_enc(srv->store, key, strlen(key), &enc, &len), 1);
        assert_int_equal(h, tictac_key_hash(key, strlen(key), enc, len));
        free(enc);
    }
    obj_free(&o);
    return h;
}

/* One sibling with dot (7, 1), built field by field: only the stored bytes
 * matter here, not how a write mints its dot. */
static void make_obj(obj_t *o, const char *val, bool tomb)
{
    obj_init(o);
    assert_int_equal(vc_set(&o->vc, 7, 1, 1), 0);
    o->sib = calloc(1, sizeof(*o->sib));
    assert_non_null(o->sib);
    o->nsib = o->cap = 1;
    o->sib[0] = (sibling_t){.dot = {7, 1}, .ts_us = 1, .len = strlen(val), .tombstone = tomb};
    o->sib[0].value = malloc(o->sib[0].len + 1);
    memcpy(o->sib[0].value, val, o->sib[0].len);
}

/* A write as persist() does it: store, then report the delta with the
 * hashes the store computed.  val NULL deletes the record. */
static void write_key(server_t *srv, const char *key, const char *val, bool hook)
{
    uint64_t old = stored_hash(srv, key), nh = 0;
    if (val == NULL) {
        assert_int_equal(store_del(srv->store, key, strlen(key)), 0);
    } else {
        obj_t o;
        make_obj(&o, val, false);
        assert_int_equal(store_put_hashed(srv->store, key, strlen(key), &o, &nh), 0);
        obj_free(&o);
    }
    if (hook)
        aae_on_persist(srv, key, strlen(key), old, nh, false);
}

static void load_keys(fixture_t *f, int n)
{
    for (int i = 0; i < n; i++) {
        char k[32], v[32];
        snprintf(k, sizeof(k), "key-%d", i);
        snprintf(v, sizeof(v), "value-%d", i);
        write_key(&f->srv, k, v, false); /* before the driver exists */
    }
}

/* Every held range's tree equals a tree computed here by scanning the whole
 * store; the held ranges are exactly the view's ranges that list us.
 * Returns the keys in held ranges. */
static uint64_t check_trees(server_t *srv)
{
    const cluster_view_t *v = srv->cluster.view;
    size_t nr = ring_range_count(v->ring), held = 0;
    uint64_t total = 0;
    for (size_t r = 0; r < nr; r++) {
        uint64_t s, e;
        ring_range(v->ring, r, &s, &e, NULL, NULL);
        if (!ring_replicates_range(v->ring, v->self_idx, r) || (s == e && nr > 1))
            continue;
        aae_range_info_t info;
        assert_int_equal(aae_range_get(srv, held, &info), 0);
        assert_int_equal(info.start, s);
        assert_int_equal(info.end, e);
        assert_true(info.built);
        tictac_t *want;
        assert_int_equal(tictac_create(s, e, &want), 0);
        store_iter_t *it;
        assert_int_equal(store_iter_create(srv->store, NULL, &it), 0);
        for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *k = store_iter_key(it, &kl);
            const uint8_t *val = store_iter_value(it, &vl);
            if (tictac_contains(want, store_iter_token(it)))
                tictac_update(want, store_iter_token(it), 0, tictac_key_hash(k, kl, val, vl));
        }
        store_iter_destroy(it);
        const tictac_t *got = aae_tree(srv, held);
        assert_non_null(got);
        uint32_t segs[4];
        assert_int_equal(tictac_diff(want, got, segs, 4, NULL), 0);
        assert_int_equal(tictac_root(want), info.root);
        assert_int_equal(tictac_keys(want), info.keys);
        total += info.keys;
        tictac_free(want);
        held++;
    }
    assert_int_equal(aae_range_count(srv), held);
    assert_true(held > 0);
    return total;
}

/* Run the build to the end in slices of budget; the number of steps. */
static int build_all(server_t *srv, size_t budget)
{
    int steps = 1, rc;
    while ((rc = aae_build_step(srv, budget)) == 1)
        steps++;
    assert_int_equal(rc, 0);
    return steps;
}

static void test_build_matches_scan(void **state)
{
    fixture_t *f = *state;
    load_keys(f, 3000);
    set_view(&f->srv, three, 3, 16, 2, "n1");
    char err[128];
    assert_int_equal(aae_open(&f->srv, err, sizeof(err)), 0);
    aae_stats_t st;
    aae_get_stats(&f->srv, &st);
    assert_true(st.building);
    assert_int_equal(st.ranges_built, 0);
    assert_true(build_all(&f->srv, 100) > 10); /* in slices */
    uint64_t keys = check_trees(&f->srv);
    aae_get_stats(&f->srv, &st);
    assert_false(st.building);
    assert_int_equal(st.builds, 1);
    assert_int_equal(st.ranges_built, st.ranges);
    assert_int_equal(st.keys_scanned, keys);
    /* n1 holds ~2/3 of the keys at N = 2 of 3 nodes */
    assert_true(keys > 1500 && keys < 2500);
    assert_int_equal(aae_build_step(&f->srv, 100), 0); /* nothing left */
    assert_int_equal(aae_range_get(&f->srv, aae_range_count(&f->srv), &(aae_range_info_t){0}),
                     -EINVAL);
    assert_null(aae_tree(&f->srv, aae_range_count(&f->srv)));
}

/* Random puts, overwrites and deletes through the hook. */
static void churn(fixture_t *f, int n)
{
    for (int i = 0; i < n; i++) {
        char k[32], v[32];
        snprintf(k, sizeof(k), "key-%d", (int)(rnd(&f->seed) % 4000));
        snprintf(v, sizeof(v), "v%llu", (unsigned long long)rnd(&f->seed));
        write_key(&f->srv, k, rnd(&f->seed) % 4 ? v : NULL, true);
    }
}

static void test_writes_during_build(void **state)
{
    fixture_t *f = *state;
    load_keys(f, 3000);
    set_view(&f->srv, three, 3, 16, 2, "n2");
    char err[128];
    assert_int_equal(aae_open(&f->srv, err, sizeof(err)), 0);
    /* writes before, in the middle of and after the scan of each range */
    churn(f, 300);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(aae_build_step(&f->srv, 300), 1);
        churn(f, 300);
    }
    build_all(&f->srv, 250);
    check_trees(&f->srv);
    churn(f, 1000);
    check_trees(&f->srv);
    aae_stats_t st;
    aae_get_stats(&f->srv, &st);
    assert_true(st.updates > 1000);
    assert_true(st.updates_outside > 0);
    assert_int_equal(st.updates + st.updates_outside, 2800);
}

static void test_ring_change_keeps_unchanged_ranges(void **state)
{
    fixture_t *f = *state;
    load_keys(f, 2000);
    set_view(&f->srv, three, 3, 16, 2, "n1");
    char err[128];
    assert_int_equal(aae_open(&f->srv, err, sizeof(err)), 0);
    build_all(&f->srv, 1000);
    aae_stats_t st;
    aae_get_stats(&f->srv, &st);
    assert_int_equal(st.layouts, 1);
    uint64_t scanned = st.keys_scanned;
    size_t first_ranges = st.ranges;
    assert_int_equal(st.trees_built, first_ranges);

    /* a liveness change: a new view of the same ring changes nothing */
    set_view(&f->srv, three, 3, 16, 2, "n1");
    assert_int_equal(aae_build_step(&f->srv, 1000), 0);
    aae_get_stats(&f->srv, &st);
    assert_int_equal(st.layouts, 1);
    assert_int_equal(st.keys_scanned, scanned);
    churn(f, 200); /* the hook follows the new view */
    check_trees(&f->srv);

    /* n4 joins: some ranges split or move, the others keep their trees */
    set_view(&f->srv, four, 4, 16, 2, "n1");
    assert_int_equal(aae_build_step(&f->srv, 0), 1);
    aae_get_stats(&f->srv, &st);
    assert_int_equal(st.layouts, 2);
    assert_true(st.building);
    assert_true(st.ranges_built > 0);          /* kept */
    assert_true(st.ranges_built < st.ranges);  /* to build */
    size_t kept = st.ranges_built;
    churn(f, 200);
    build_all(&f->srv, 100);
    check_trees(&f->srv);
    aae_get_stats(&f->srv, &st);
    assert_int_equal(st.trees_built, first_ranges + (st.ranges - kept));
    assert_int_equal(st.builds, 2);
    /* only the new trees were scanned */
    assert_true(st.keys_scanned - scanned < 2000);

    /* n1 alone holds the whole ring in one range */
    const char *one[] = {"n1"};
    set_view(&f->srv, one, 1, 1, 3, "n1");
    build_all(&f->srv, 500);
    assert_int_equal(aae_range_count(&f->srv), 1);
    aae_range_info_t info;
    assert_int_equal(aae_range_get(&f->srv, 0, &info), 0);
    assert_int_equal(info.start, info.end);
    store_iter_t *it;
    uint64_t n = 0;
    assert_int_equal(store_iter_create(f->srv.store, NULL, &it), 0);
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it))
        n++;
    store_iter_destroy(it);
    assert_int_equal(check_trees(&f->srv), n);
}

static void test_layout_change_mid_build_restarts_cleanly(void **state)
{
    fixture_t *f = *state;
    load_keys(f, 2000);
    set_view(&f->srv, three, 3, 16, 2, "n3");
    char err[128];
    assert_int_equal(aae_open(&f->srv, err, sizeof(err)), 0);
    assert_int_equal(aae_build_step(&f->srv, 500), 1);
    churn(f, 100);
    set_view(&f->srv, four, 4, 16, 2, "n3"); /* the half-built trees are dropped */
    churn(f, 100);
    build_all(&f->srv, 300);
    check_trees(&f->srv);
}

/* Every write of the local replica (node.c: merges, purges of tombstones)
 * reaches the trees through persist: after random merges, tombstones and
 * purges the trees equal a fresh scan. */
static void test_persist_feeds_trees(void **state)
{
    fixture_t *f = *state;
    load_keys(f, 1000);
    set_view(&f->srv, three, 3, 16, 2, "n1");
    char err[128];
    assert_int_equal(aae_open(&f->srv, err, sizeof(err)), 0);
    build_all(&f->srv, 400);
    aae_stats_t st0, st;
    aae_get_stats(&f->srv, &st0);
    int purged = 0;
    for (int i = 0; i < 2000; i++) {
        char k[32], v[32];
        snprintf(k, sizeof(k), "key-%d", (int)(rnd(&f->seed) % 1500));
        snprintf(v, sizeof(v), "v%llu", (unsigned long long)rnd(&f->seed));
        unsigned what = (unsigned)(rnd(&f->seed) % 4);
        if (what == 3) { /* purge whatever dead record is there */
            obj_t o;
            obj_init(&o);
            if (store_get(f->srv.store, k, strlen(k), &o) == 1 && node_dead(&o)) {
                assert_int_equal(node_purge_if(&f->srv, k, strlen(k), o.stored_hash,
                                               node_newest_us(&o) + 1), 1);
                purged++;
            }
            obj_free(&o);
            continue;
        }
        obj_t o;
        make_obj(&o, v, what == 2);
        o.sib[0].dot.counter = o.vc.e[0].counter = (uint64_t)i + 2; /* a new write each time */
        uint64_t oh = 1, nh = 1;
        assert_int_equal(node_merge_hashed(&f->srv, k, strlen(k), &o, &oh, &nh), 0);
        assert_int_equal(nh, stored_hash(&f->srv, k));
        obj_free(&o);
    }
    check_trees(&f->srv);
    assert_true(purged > 0);
    aae_get_stats(&f->srv, &st);
    assert_true(st.updates + st.updates_outside - st0.updates - st0.updates_outside >= 1500);
}

/* A purge never removes a record that changed since it was agreed on, nor
 * a live one, nor one younger than asked. */
static void test_purge_if_only_exact_dead_records(void **state)
{
    fixture_t *f = *state;
    obj_t o;
    make_obj(&o, "", true);
    assert_int_equal(node_merge(&f->srv, "t", 1, &o), 0);
    obj_free(&o);
    uint64_t h = stored_hash(&f->srv, "t");
    assert_int_equal(node_purge_if(&f->srv, "t", 1, h ^ 1, INT64_MAX), 0);
    assert_int_equal(node_purge_if(&f->srv, "t", 1, h, 1), 0); /* ts 1: not older than 1 */
    make_obj(&o, "live", false);
    o.sib[0].dot.counter = o.vc.e[0].counter = 2;
    assert_int_equal(node_merge(&f->srv, "l", 1, &o), 0);
    obj_free(&o);
    assert_int_equal(node_purge_if(&f->srv, "l", 1, stored_hash(&f->srv, "l"), INT64_MAX), 0);
    assert_int_equal(node_purge_if(&f->srv, "t", 1, h, INT64_MAX), 1);
    assert_int_equal(stored_hash(&f->srv, "t"), 0);
    assert_int_equal(node_purge_if(&f->srv, "t", 1, h, INT64_MAX), 0); /* gone already */
}

/* Two rings with the same members agree on their identity whatever order
 * the members came in; another member set, vnodes or n does not. */
static void test_ring_id(void **state)
{
    (void)state;
    const char *a[] = {"n1", "n2", "n3"}, *b[] = {"n3", "n1", "n2"};
    ring_t *r1, *r2, *r3, *r4, *r5;
    assert_int_equal(ring_build(a, 3, 16, 2, 1, &r1), 0);
    assert_int_equal(ring_build(b, 3, 16, 2, 9, &r2), 0);
    assert_int_equal(ring_build(four, 4, 16, 2, 1, &r3), 0);
    assert_int_equal(ring_build(a, 3, 8, 2, 1, &r4), 0);
    assert_int_equal(ring_build(a, 3, 16, 3, 1, &r5), 0);
    assert_int_equal(aae_ring_id(r1), aae_ring_id(r2));
    assert_int_not_equal(aae_ring_id(r1), aae_ring_id(r3));
    assert_int_not_equal(aae_ring_id(r1), aae_ring_id(r4));
    assert_int_not_equal(aae_ring_id(r1), aae_ring_id(r5));
    ring_free(r1);
    ring_free(r2);
    ring_free(r3);
    ring_free(r4);
    ring_free(r5);
}

static void test_disabled_does_nothing(void **state)
{
    fixture_t *f = *state;
    f->srv.cfg.ae_enabled = false;
    set_view(&f->srv, three, 3, 16, 2, "n1");
    char err[128];
    assert_int_equal(aae_open(&f->srv, err, sizeof(err)), 0);
    assert_null(f->srv.aae);
    write_key(&f->srv, "k", "v", true);
    assert_int_equal(aae_build_step(&f->srv, 10), 0);
    assert_int_equal(aae_range_count(&f->srv), 0);
    aae_stats_t st;
    aae_get_stats(&f->srv, &st);
    assert_int_equal(st.ranges, 0);
}

static void test_event_loop_builds(void **state)
{
    fixture_t *f = *state;
    load_keys(f, 5000); /* more than one slice */
    f->srv.base = event_base_new();
    assert_non_null(f->srv.base);
    set_view(&f->srv, three, 3, 16, 2, "n1");
    char err[128];
    assert_int_equal(aae_open(&f->srv, err, sizeof(err)), 0);
    aae_stats_t st;
    for (int i = 0; i < 1000; i++) {
        event_base_loop(f->srv.base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        aae_get_stats(&f->srv, &st);
        if (!st.building)
            break;
    }
    assert_false(st.building);
    assert_int_equal(st.builds, 1);
    check_trees(&f->srv);
    aae_close(&f->srv);
    event_base_free(f->srv.base);
    f->srv.base = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_build_matches_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_during_build, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ring_change_keeps_unchanged_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_layout_change_mid_build_restarts_cleanly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_persist_feeds_trees, setup, teardown),
        cmocka_unit_test_setup_teardown(test_purge_if_only_exact_dead_records, setup, teardown),
        cmocka_unit_test(test_ring_id),
        cmocka_unit_test_setup_teardown(test_disabled_does_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_loop_builds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
