/*
 * test_versions.c - a property test of the version model (storage/object.c)
 * as the cluster uses it (issue 7).
 *
 * Three simulated replicas, each an obj_t with its own actor.  A run is a
 * random interleaving of:
 *   - a client write at a replica, the way node_write() does it: the
 *     replica mints the dot against its own stored object, from its own
 *     counter, with the client's causal context (fresh, stale, merged from
 *     several replicas, or none), then prunes its vector;
 *   - replication of a replica's whole object into another (obj_sync), as
 *     REPLICA_PUT, read repair and hinted handoff do;
 *   - a client read of one or more replicas (their merge), which becomes a
 *     context some later write may use, however stale by then.
 * Every write is taken as acknowledged.  Checked:
 *   - no two writes ever get the same dot;
 *   - after full anti-entropy every replica is identical (obj_equal), and
 *     every write is either held (its dot, with its own value) or covered by
 *     the context of a write that saw it: nothing is dropped by the store;
 *   - obj_sync is commutative, associative and idempotent on the states the
 *     run produced.
 * `make test` runs a fixed set of seeds; `make property SEEDS=N` runs N
 * more (QKV_SEEDS, QKV_SEED0 in the environment).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../storage/object.h"

#define REPLICAS 3
#define MAX_WRITES 400
#define MAX_CTX 32
#define SNAPSHOTS 24

typedef struct write_rec {
    dot_t dot;
    char value[32];
    vclock_t ctx; /* what the write superseded (empty: nothing) */
} write_rec_t;

typedef struct sim {
    uint64_t rng;
    obj_t rep[REPLICAS];
    uint64_t actor[REPLICAS];
    uint64_t next[REPLICAS]; /* each replica's own dot counter, across keys */
    write_rec_t w[MAX_WRITES];
    int nw;
    vclock_t ctx[MAX_CTX]; /* contexts clients have read, oldest first */
    int nctx;
    obj_t snap[SNAPSHOTS]; /* replica states seen during the run */
    int nsnap;
    uint32_t max_vv; /* pruning limit: small, so pruning really happens */
} sim_t;

static uint64_t next_rand(sim_t *s)
{
    /* xorshift64*: deterministic per seed on every machine */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545F4914F6CDD1DULL;
}

static int pick(sim_t *s, int n) { return (int)(next_rand(s) % (uint64_t)n); }

static void sim_init(sim_t *s, uint64_t seed)
{
    memset(s, 0, sizeof(*s));
    s->rng = seed * 2654435761u + 0x9E3779B97F4A7C15ULL;
    for (int r = 0; r < REPLICAS; r++) {
        obj_init(&s->rep[r]);
        /* actors as hashes of names would be: far apart, unordered */
        s->actor[r] = 0x1000000000000000ULL * (uint64_t)(r + 1) + 0xabcdef * (uint64_t)(3 - r);
    }
    for (int i = 0; i < SNAPSHOTS; i++)
        obj_init(&s->snap[i]);
    s->max_vv = 2 + (uint32_t)pick(s, 3);
}

static void sim_free(sim_t *s)
{
    for (int r = 0; r < REPLICAS; r++)
        obj_free(&s->rep[r]);
    for (int i = 0; i < s->nw; i++)
        vc_free(&s->w[i].ctx);
    for (int i = 0; i < s->nctx; i++)
        vc_free(&s->ctx[i]);
    for (int i = 0; i < SNAPSHOTS; i++)
        obj_free(&s->snap[i]);
}

static void remember_ctx(sim_t *s, const vclock_t *vc)
{
    if (s->nctx == MAX_CTX) { /* forget the oldest */
        vc_free(&s->ctx[0]);
        memmove(&s->ctx[0], &s->ctx[1], (MAX_CTX - 1) * sizeof(s->ctx[0]));
        s->nctx--;
    }
    vc_init(&s->ctx[s->nctx]);
    assert_int_equal(vc_copy(&s->ctx[s->nctx], vc), 0);
    s->nctx++;
}

static void snapshot(sim_t *s, const obj_t *o)
{
    int i = s->nsnap < SNAPSHOTS ? s->nsnap++ : pick(s, SNAPSHOTS);
    assert_int_equal(obj_copy(&s->snap[i], o), 0);
}

/* A client write at replica r, minted there (node_write's steps). */
static void do_write(sim_t *s, int r, int64_t now)
{
    write_rec_t *w = &s->w[s->nw];
    vc_init(&w->ctx);
    int how = pick(s, 4);
    if (how == 1 && s->nctx > 0) /* a context read earlier: maybe stale */
        assert_int_equal(vc_copy(&w->ctx, &s->ctx[pick(s, s->nctx)]), 0);
    else if (how == 2) /* a blind set: what this replica has seen */
        assert_int_equal(vc_copy(&w->ctx, &s->rep[r].vc), 0);
    else if (how == 3) /* a read-modify-write that read two replicas */
        for (int k = 0; k < 2; k++)
            assert_int_equal(vc_merge(&w->ctx, &s->rep[pick(s, REPLICAS)].vc), 0);
    /* how == 0: no context at all (a sibling of everything) */

    snprintf(w->value, sizeof(w->value), "w%d@r%d", s->nw, r);
    sibling_t sib = {.ts_us = now, .len = strlen(w->value)};
    sib.value = malloc(sib.len);
    assert_non_null(sib.value);
    memcpy(sib.value, w->value, sib.len);
    assert_int_equal(obj_update(&s->rep[r], w->ctx.n ? &w->ctx : NULL, s->actor[r], s->next[r],
                                &sib, now), 0);
    w->dot = sib.dot;
    s->next[r] = sib.dot.counter + 1;
    obj_prune_vc(&s->rep[r], s->max_vv);
    for (int i = 0; i < s->nw; i++)
        assert_false(s->w[i].dot.node == w->dot.node && s->w[i].dot.counter == w->dot.counter);
    s->nw++;
}

static void do_sync(sim_t *s, int dst, int src)
{
    assert_int_equal(obj_sync(&s->rep[dst], &s->rep[src]), 0);
    obj_prune_vc(&s->rep[dst], s->max_vv);
}

static void do_read(sim_t *s)
{
    obj_t m;
    obj_init(&m);
    int k = 1 + pick(s, REPLICAS);
    for (int i = 0; i < k; i++)
        assert_int_equal(obj_sync(&m, &s->rep[pick(s, REPLICAS)]), 0);
    remember_ctx(s, &m.vc);
    snapshot(s, &m);
    obj_free(&m);
}

/* Every pair, both ways, until nothing changes: what anti-entropy reaches. */
static void settle(sim_t *s)
{
    for (int round = 0; round < 4; round++)
        for (int a = 0; a < REPLICAS; a++)
            for (int b = 0; b < REPLICAS; b++)
                if (a != b)
                    do_sync(s, a, b);
}

static bool held(const obj_t *o, const write_rec_t *w)
{
    for (uint32_t i = 0; i < o->nsib; i++) {
        const sibling_t *x = &o->sib[i];
        if (x->dot.node == w->dot.node && x->dot.counter == w->dot.counter)
            return x->len == strlen(w->value) && memcmp(x->value, w->value, x->len) == 0;
    }
    return false;
}

static bool seen_by_a_later_write(const sim_t *s, int i)
{
    for (int j = 0; j < s->nw; j++)
        if (j != i && vc_covers(&s->w[j].ctx, s->w[i].dot))
            return true;
    return false;
}

static void check_merge_laws(sim_t *s)
{
    obj_t ab, ba, l, r, t;
    obj_init(&ab);
    obj_init(&ba);
    obj_init(&l);
    obj_init(&r);
    obj_init(&t);
    for (int k = 0; k < 40 && s->nsnap >= 3; k++) {
        const obj_t *a = &s->snap[pick(s, s->nsnap)], *b = &s->snap[pick(s, s->nsnap)],
                    *c = &s->snap[pick(s, s->nsnap)];
        /* commutative */
        assert_int_equal(obj_copy(&ab, a), 0);
        assert_int_equal(obj_sync(&ab, b), 0);
        assert_int_equal(obj_copy(&ba, b), 0);
        assert_int_equal(obj_sync(&ba, a), 0);
        assert_true(obj_equal(&ab, &ba));
        /* associative: (a.b).c == a.(b.c) */
        assert_int_equal(obj_copy(&l, &ab), 0);
        assert_int_equal(obj_sync(&l, c), 0);
        assert_int_equal(obj_copy(&t, b), 0);
        assert_int_equal(obj_sync(&t, c), 0);
        assert_int_equal(obj_copy(&r, a), 0);
        assert_int_equal(obj_sync(&r, &t), 0);
        assert_true(obj_equal(&l, &r));
        /* idempotent: a.a == a, (a.b).b == a.b */
        assert_int_equal(obj_copy(&t, a), 0);
        assert_int_equal(obj_sync(&t, a), 0);
        assert_true(obj_equal(&t, a));
        assert_int_equal(obj_copy(&t, &ab), 0);
        assert_int_equal(obj_sync(&t, b), 0);
        assert_true(obj_equal(&t, &ab));
    }
    obj_free(&ab);
    obj_free(&ba);
    obj_free(&l);
    obj_free(&r);
    obj_free(&t);
}

static void run_seed(uint64_t seed)
{
    sim_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    sim_init(s, seed);
    int steps = 150 + pick(s, 250);
    int64_t now = 1700000000000000LL;
    for (int k = 0; k < steps && s->nw < MAX_WRITES; k++) {
        now += 1 + pick(s, 3); /* ties in time happen too */
        int op = pick(s, 10);
        if (op < 4) {
            do_write(s, pick(s, REPLICAS), now);
        } else if (op < 8) {
            int a = pick(s, REPLICAS), b = pick(s, REPLICAS);
            if (a != b)
                do_sync(s, a, b);
        } else {
            do_read(s);
        }
        if (pick(s, 8) == 0)
            snapshot(s, &s->rep[pick(s, REPLICAS)]);
    }
    check_merge_laws(s);
    settle(s);
    for (int r = 1; r < REPLICAS; r++)
        if (!obj_equal(&s->rep[0], &s->rep[r]))
            fail_msg("seed %llu: replicas 0 and %d differ after anti-entropy",
                     (unsigned long long)seed, r);
    for (int i = 0; i < s->nw; i++)
        if (!held(&s->rep[0], &s->w[i]) && !seen_by_a_later_write(s, i))
            fail_msg("seed %llu: write %d (%s, dot %llx:%llu) lost: not held, and no write "
                     "saw it", (unsigned long long)seed, i, s->w[i].value,
                     (unsigned long long)s->w[i].dot.node, (unsigned long long)s->w[i].dot.counter);
    sim_free(s);
    free(s);
}

static void test_fixed_seeds(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 300; seed++)
        run_seed(seed);
}

/* Regression for the bug this model replaced: the coordinator minted the
 * dot from the merged context it had read, so two writes whose reads
 * overlapped got one dot, and a replica kept one value for both. */
static void test_overlapping_writes_get_distinct_dots(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    sibling_t a = {.ts_us = 1, .len = 1, .value = malloc(1)};
    sibling_t b = {.ts_us = 2, .len = 1, .value = malloc(1)};
    assert_non_null(a.value);
    assert_non_null(b.value);
    a.value[0] = 'a';
    b.value[0] = 'b';
    vclock_t ctx; /* both read the same (empty) state */
    vc_init(&ctx);
    assert_int_equal(obj_update(&o, &ctx, 7, 0, &a, 1), 0);
    assert_int_equal(obj_update(&o, &ctx, 7, 0, &b, 2), 0);
    assert_false(a.dot.counter == b.dot.counter);
    assert_int_equal(o.nsib, 2); /* neither saw the other: both stay */
    obj_free(&o);
}

static void test_many_seeds_from_env(void **state)
{
    (void)state;
    const char *n = getenv("QKV_SEEDS");
    if (!n)
        skip();
    const char *s0 = getenv("QKV_SEED0");
    uint64_t first = s0 ? strtoull(s0, NULL, 10) : 1000;
    uint64_t count = strtoull(n, NULL, 10);
    for (uint64_t k = 0; k < count; k++)
        run_seed(first + k);
    printf("property: %llu seeds from %llu passed\n", (unsigned long long)count,
           (unsigned long long)first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overlapping_writes_get_distinct_dots),
        cmocka_unit_test(test_fixed_seeds),
        cmocka_unit_test(test_many_seeds_from_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
