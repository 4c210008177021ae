/*
 * test_gossip.c - unit tests of gossip/ (cmocka).
 *
 * Two kinds of tests.  Small ones drive one or two gossip_t by hand (merge
 * rules, the summary exchange, rumors, direct mail, probes, validation and
 * budgets, the phi formula).  The cluster ones run N gossip_t instances in
 * one process with tests/sim/gossip_sim.c: a simulated network and clock,
 * every message packed, framed, parsed and decoded with the daemon's codec;
 * a node can be killed, partitioned or given jitter, frames can be lost.
 * No real time is used; every run is deterministic.  The cluster tests
 * print what they measured (times in simulated ms, rounds of 200 ms, bytes).
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

#include "../../gossip/gossip.h"
#include "../sim/gossip_sim.h"

#define INTERVAL 200

/* ---- helpers for hand-driven tests ------------------------------------ */

static gossip_member_t entry(const char *name, int host_octet, int64_t gen,
                             uint64_t version, gossip_status_t status)
{
    gossip_member_t e;

    memset(&e, 0, sizeof(e));
    snprintf(e.name, sizeof(e.name), "%s", name);
    snprintf(e.host, sizeof(e.host), "10.0.0.%d", host_octet);
    e.client_port = 11211;
    e.peer_port = 7000;
    e.generation = gen;
    e.version = version;
    e.status = status;
    return e;
}

static gossip_t *new_node(const char *name, int host_octet, int64_t gen,
                          const gossip_addr_t *seeds, size_t nseeds)
{
    gossip_member_t self = entry(name, host_octet, gen, 0, GOSSIP_UP);
    gossip_config_t cfg;
    gossip_t *g = NULL;

    memset(&cfg, 0, sizeof(cfg));
    cfg.interval_ms = INTERVAL;
    cfg.phi_threshold = 8;
    cfg.rng_seed = 42;
    cfg.seeds = seeds;
    cfg.nseeds = nseeds;
    assert_int_equal(gossip_new(&self, &cfg, &g), 0);
    assert_non_null(g);
    return g;
}

static gossip_member_info_t info_of(const gossip_t *g, const char *name)
{
    gossip_member_info_t info;

    assert_true(gossip_lookup(g, name, &info));
    return info;
}

static void apply1(gossip_t *g, gossip_member_t e, int64_t now)
{
    assert_int_equal(gossip_on_ack2(g, &e, 1, now), 0);
}

static gossip_digest_t digest_of(const gossip_member_t *e)
{
    gossip_digest_t d;

    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "%s", e->name);
    d.generation = e->generation;
    d.version = e->version;
    d.heartbeat = e->heartbeat;
    return d;
}

/* A SYN of the n digests d (all in one bucket), as a digest-mode node
 * sends it, from `from` (any valid digest; this node's own is ignored). */
static gossip_syn_t digest_syn(const gossip_digest_t *from, gossip_digest_t *d, size_t n)
{
    gossip_syn_t syn;

    memset(&syn, 0, sizeof(syn));
    syn.from = *from;
    syn.nbuckets = 1;
    syn.mask = 1;
    syn.digests = d;
    syn.ndigests = n;
    return syn;
}

/* g's own digest, as seen in its member list. */
static gossip_digest_t self_digest(const gossip_t *g)
{
    gossip_member_info_t info;
    size_t i;

    for (i = 0; i < gossip_member_count(g); i++) {
        assert_int_equal(gossip_member(g, i, &info), 0);
        if (info.is_self)
            return digest_of(&info.entry);
    }
    fail();
    return digest_of(&info.entry);
}

static int on_digests(gossip_t *g, gossip_digest_t *d, size_t n, int64_t now,
                      gossip_ack_t *ack)
{
    gossip_digest_t me = self_digest(g);
    gossip_syn_t syn = digest_syn(&me, d, n);

    return gossip_on_syn(g, &syn, now, ack);
}

static bool has_rumor(const gossip_rumor_t *r, size_t n, uint32_t kind, const char *name)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (r[i].kind == kind && strcmp(r[i].entry.name, name) == 0)
            return true;
    return false;
}

static const gossip_target_t *find_target(const gossip_target_t *t, size_t n,
                                          const char *name)
{
    size_t i;

    for (i = 0; i < n; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

static gossip_stats_t stats_of(const gossip_t *g)
{
    gossip_stats_t st;

    gossip_get_stats(g, &st);
    return st;
}

static bool in_probes(const gossip_round_t *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->nprobes; i++)
        if (strcmp(r->probes[i].name, name) == 0)
            return true;
    return false;
}

/* ---- the simulated cluster -------------------------------------------- */

static gsim_t *sim_new(int n, uint64_t seed, int64_t left_ttl)
{
    gsim_config_t cfg = {.nodes = n, .seed = seed, .left_ttl_ms = left_ttl};
    gsim_t *s = gsim_new(&cfg);

    assert_non_null(s);
    return s;
}

/* What observer thinks of subject. */
static bool sees(gsim_t *s, int observer, int subject, gossip_member_info_t *out)
{
    return gossip_lookup(gsim_gossip(s, observer), gsim_name(s, subject), out);
}

/* Some live node (other than subject) sees subject down. */
static bool pred_any_sees_down(gsim_t *s, void *arg)
{
    const int *subject = arg;
    int i;

    for (i = 0; i < gsim_slots(s); i++) {
        gossip_member_info_t info;

        if (i == *subject || !gsim_live(s, i))
            continue;
        if (sees(s, i, *subject, &info) && !info.alive)
            return true;
    }
    return false;
}

/* Some live node sees some other live node down. */
static bool pred_any_down(gsim_t *s, void *arg)
{
    int j;

    (void)arg;
    for (j = 0; j < gsim_slots(s); j++)
        if (gsim_live(s, j) && pred_any_sees_down(s, &j))
            return true;
    return false;
}

static int64_t converge(gsim_t *s)
{
    int64_t t0 = gsim_now(s), t = gsim_run_until(s, t0 + 20000, gsim_converged, NULL);

    assert_true(t >= 0);
    return t - t0;
}

static void assert_clean_traffic(gsim_t *s)
{
    gsim_traffic_t t;

    gsim_traffic(s, &t);
    assert_int_equal(t.bad, 0); /* every frame decoded */
    assert_int_equal(t.refused, 0);
}

/* ---- cluster tests ---------------------------------------------------- */

static void test_sim_five_nodes_converge(void **state)
{
    int64_t worst = 0, sum = 0;
    uint64_t seed;

    (void)state;
    for (seed = 1; seed <= 20; seed++) {
        gsim_t *s = sim_new(5, seed, 0);
        int64_t t = converge(s);
        int i;

        for (i = 0; i < 5; i++) {
            assert_int_equal(gossip_member_count(gsim_gossip(s, i)), 5);
            assert_true(gossip_epoch(gsim_gossip(s, i)) > 1);
        }
        if (seed == 1)
            printf("   5 nodes seeded through node1: converged after %lld ms "
                   "(%lld rounds)\n", (long long)t, (long long)(t / INTERVAL));
        sum += t;
        if (t > worst)
            worst = t;
        assert_true(t <= 3000);
        assert_clean_traffic(s);
        gsim_free(s);
    }
    printf("   over 20 seeds: mean %lld ms, worst %lld ms\n",
           (long long)(sum / 20), (long long)worst);
}

static void test_sim_steady_state_no_false_down(void **state)
{
    gsim_t *s = sim_new(5, 7, 0);
    uint64_t probes = 0;
    int i;

    (void)state;
    converge(s);
    gsim_reset_probes(s);
    /* Ten simulated minutes of a healthy cluster: nobody is ever judged
     * down (suspicions, if any, are cleared by probes). */
    assert_int_equal(gsim_run_until(s, gsim_now(s) + 600000, pred_any_down, NULL), -1);
    for (i = 0; i < 5; i++)
        probes += gsim_probes_to(s, i);
    printf("   healthy 5-node cluster, 600 s: 0 false downs, %llu pings in all\n",
           (unsigned long long)probes);
    assert_clean_traffic(s);
    gsim_free(s);
}

static void test_sim_kill_detected_then_restart_supersedes(void **state)
{
    int64_t worst = 0, worst_back = 0;
    uint64_t seed;

    (void)state;
    for (seed = 1; seed <= 20; seed++) {
        gsim_t *s = sim_new(5, 100 + seed, 0);
        gsim_view_t down = {.subject = 2, .alive = false, .status = -1};
        gsim_view_t back;
        int64_t t_kill, t, new_gen;
        int i;

        converge(s);
        gsim_run_for(s, 5000);
        t_kill = gsim_now(s);
        gsim_kill(s, 2); /* node3 */
        t = gsim_run_until(s, t_kill + 10000, gsim_all_see, &down);
        assert_true(t >= 0);
        t -= t_kill;
        if (seed == 1)
            printf("   node3 killed: every peer marked it down after %lld ms\n",
                   (long long)t);
        if (t > worst)
            worst = t;
        assert_true(t <= 3000);
        /* and it stays down: no flapping on stale relayed heartbeats */
        gsim_run_for(s, 10000);
        assert_true(gsim_all_see(s, &down));

        new_gen = gsim_now(s) + 1000000;
        gsim_start(s, 2, new_gen);
        back = (gsim_view_t){.subject = 2, .alive = true, .status = GOSSIP_UP,
                             .generation = new_gen};
        t = gsim_run_until(s, gsim_now(s) + 10000, gsim_all_see, &back);
        assert_true(t >= 0);
        t -= new_gen - 1000000;
        if (t > worst_back)
            worst_back = t;
        assert_true(gsim_converged(s, NULL) ||
                    gsim_run_until(s, gsim_now(s) + 5000, gsim_converged, NULL) >= 0);
        for (i = 0; i < 5; i++) /* superseded, not duplicated */
            assert_int_equal(gossip_member_count(gsim_gossip(s, i)), 5);
        gsim_free(s);
    }
    printf("   over 20 seeds: worst detection %lld ms; restarted node (new "
           "generation) alive everywhere within %lld ms\n",
           (long long)worst, (long long)worst_back);
}

struct watch_arg {
    int subject;
    double max_phi;
};

/* Some live node sees subject down; records the highest phi seen. */
static bool pred_watch_down(gsim_t *s, void *arg)
{
    struct watch_arg *w = arg;
    int i;

    for (i = 0; i < gsim_slots(s); i++) {
        double phi;

        if (i == w->subject || !gsim_live(s, i))
            continue;
        phi = gossip_phi(gsim_gossip(s, i), gsim_name(s, w->subject), gsim_now(s));
        if (phi > w->max_phi)
            w->max_phi = phi;
    }
    return pred_any_sees_down(s, &w->subject);
}

static void test_sim_jitter_never_down(void **state)
{
    gsim_t *s = sim_new(5, 4242, 0);
    struct watch_arg w = {4, 0};
    int64_t t0;

    (void)state;
    converge(s);
    /* node5's frames (every message it sends) arrive 0..800 ms late and
     * out of order; it answers probes within 0..400 ms (inside the
     * 500 ms probe timeout). */
    gsim_set_jitter(s, w.subject, 800, 400);
    gsim_reset_probes(s);
    t0 = gsim_now(s);
    assert_int_equal(gsim_run_until(s, t0 + 60000, pred_watch_down, &w), -1);
    printf("   node5 with 0-800 ms jitter, 60 s: never marked down; max phi %.1f, "
           "%llu pings sent to it, %llu to the others\n", w.max_phi,
           (unsigned long long)gsim_probes_to(s, w.subject),
           (unsigned long long)(gsim_probes_to(s, 0) + gsim_probes_to(s, 1) +
                                gsim_probes_to(s, 2) + gsim_probes_to(s, 3)));
    gsim_free(s);
}

struct arrival {
    int64_t at;
    uint64_t version;
};

static int cmp_arrival(const void *a, const void *b)
{
    const struct arrival *x = a, *y = b;

    return x->at < y->at ? -1 : x->at > y->at;
}

/* splitmix64 over *state: the tests' own seeded randomness. */
static int64_t rand_upto(uint64_t *state, int64_t max)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return max <= 0 ? 0 : (int64_t)(z % (uint64_t)(max + 1));
}

/*
 * One member's heartbeats (sent every 200 ms) arrive directly, with no relay
 * to smooth them, for 60 s: with stall_max 0 each is 0..1000 ms late
 * (uniform); otherwise they are on time (0..20 ms) except that about every
 * 4 s a stall of stall_min..stall_max ms holds back every heartbeat sent
 * during it, so the detector, used to regular beats, sees sudden gaps.
 * Probes are answered within 0..400 ms when answer_probes is set.  Returns
 * how many times the member was judged down.
 */
static int run_direct_jitter(int64_t stall_min, int64_t stall_max,
                             bool answer_probes, uint64_t seed,
                             unsigned *probes, double *max_phi)
{
    enum { N = 300 };
    struct arrival hb[N];
    gossip_t *g = new_node("a", 1, 10, NULL, 0);
    uint64_t rng = seed;
    int64_t t, ack_at = -1, stall_from = -1, stall_to = -1;
    size_t next = 0;
    int downs = 0;
    bool was_alive = true;

    for (int k = 0; k < N; k++) {
        int64_t sent = 200 * (int64_t)(k + 1);

        hb[k].version = (uint64_t)k + 1;
        if (stall_max == 0) {
            hb[k].at = sent + rand_upto(&rng, 1000);
            continue;
        }
        if (sent >= stall_to && rand_upto(&rng, 19) == 0) {
            stall_from = sent;
            stall_to = sent + stall_min + rand_upto(&rng, stall_max - stall_min);
        }
        hb[k].at = (sent >= stall_from && sent < stall_to ? stall_to : sent) +
                   rand_upto(&rng, 20);
    }
    qsort(hb, N, sizeof(hb[0]), cmp_arrival);
    apply1(g, entry("b", 2, 20, 0, GOSSIP_UP), 0);
    *probes = 0;
    *max_phi = 0;
    for (t = 0; t <= 60000; t++) {
        bool alive;

        while (next < N && hb[next].at == t) {
            apply1(g, entry("b", 2, 20, hb[next].version, GOSSIP_UP), t);
            next++;
        }
        if (t == ack_at)
            assert_int_equal(gossip_on_probe_ack(g, "b", t), 1);
        if (t % INTERVAL == 100) {
            bool was_probing = info_of(g, "b").probing;
            gossip_round_t r;

            assert_int_equal(gossip_tick(g, t, &r), 0);
            /* A new probe (not the first-sight one, nor a ping repeated
             * while it is outstanding): its answer is on its way. */
            if (in_probes(&r, "b") && !was_probing && t > 100) {
                (*probes)++;
                if (answer_probes)
                    ack_at = t + rand_upto(&rng, 400);
            }
            gossip_round_free(&r);
        }
        if (gossip_phi(g, "b", t) > *max_phi)
            *max_phi = gossip_phi(g, "b", t);
        alive = info_of(g, "b").alive;
        downs += was_alive && !alive;
        was_alive = alive;
    }
    gossip_free(g);
    return downs;
}

static void test_jittery_heartbeats_answering_probes_never_down(void **state)
{
    static const int64_t modes[3][2] = {{0, 0}, {600, 1000}, {1000, 2500}};
    unsigned probes, total[3] = {0, 0, 0}, seed;
    double max_phi, worst[3] = {0, 0, 0};
    int downs[3] = {0, 0, 0}, mode;

    (void)state;
    for (mode = 0; mode < 3; mode++) {
        for (seed = 1; seed <= 10; seed++) {
            assert_int_equal(run_direct_jitter(modes[mode][0], modes[mode][1], true,
                                               seed, &probes, &max_phi), 0);
            total[mode] += probes;
            if (max_phi > worst[mode])
                worst[mode] = max_phi;
            downs[mode] += run_direct_jitter(modes[mode][0], modes[mode][1], false,
                                             seed, &probes, &max_phi);
        }
    }
    printf("   direct heartbeats, no relay, 10 x 60 s each; probes answered "
           "(0-400 ms): never down\n");
    printf("     0-1000 ms late:         %3u suspicions, max phi %5.1f; probes "
           "ignored: down %d times\n", total[0], worst[0], downs[0]);
    printf("     0.6-1 s stalls:         %3u suspicions, max phi %5.1f; probes "
           "ignored: down %d times\n", total[1], worst[1], downs[1]);
    printf("     1-2.5 s stalls:         %3u suspicions, max phi %5.1f; probes "
           "ignored: down %d times\n", total[2], worst[2], downs[2]);
    assert_int_equal(downs[0], 0); /* ~1 s jitter never convicts at all */
    assert_true(total[2] > 0 && downs[2] > 0); /* the probes are what save it */
}

static void test_sim_partition_heals(void **state)
{
    gsim_t *s = sim_new(5, 99, 0);
    gsim_view_t down = {.subject = 4, .alive = false, .status = -1};
    int64_t t;
    int i;

    (void)state;
    converge(s);
    gsim_set_group(s, 4, 1); /* node5 cut off both ways */
    t = gsim_run_until(s, gsim_now(s) + 10000, gsim_all_see, &down);
    assert_true(t >= 0);
    gsim_run_for(s, 20000);
    for (i = 0; i < 4; i++) { /* node5 judges everyone else down too */
        gossip_member_info_t info;

        assert_true(sees(s, 4, i, &info));
        assert_false(info.alive);
    }
    gsim_set_group(s, 4, 0);
    t = gsim_now(s);
    assert_true(gsim_run_until(s, t + 10000, gsim_converged, NULL) >= 0);
    printf("   node5 partitioned 20 s, then healed: all alive everywhere after "
           "%lld ms\n", (long long)(gsim_now(s) - t));
    assert_true(gsim_now(s) - t <= 3000);
    gsim_free(s);
}

static void test_sim_leave_propagates_tombstone_not_resurrected(void **state)
{
    const int64_t ttl = 10000;
    gsim_t *s = sim_new(5, 5, ttl);
    gsim_view_t leaving = {.subject = 2, .alive = true, .status = GOSSIP_LEAVING};
    gsim_view_t left = {.subject = 2, .alive = false, .status = GOSSIP_LEFT};
    gossip_t *g0;
    uint64_t epoch0;
    gossip_member_t stale;
    gossip_member_info_t info;
    int64_t t, t_left;
    int i;

    (void)state;
    converge(s);
    g0 = gsim_gossip(s, 0);
    epoch0 = gossip_epoch(g0);
    stale = info_of(g0, "node3").entry; /* an UP entry, soon stale */
    assert_int_equal(gossip_set_status(gsim_gossip(s, 2), GOSSIP_LEAVING, gsim_now(s)), 0);
    t = gsim_now(s);
    assert_true(gsim_run_until(s, t + 5000, gsim_all_see, &leaving) >= 0);
    printf("   LEAVING seen everywhere after %lld ms;", (long long)(gsim_now(s) - t));
    assert_true(gossip_epoch(g0) > epoch0);

    assert_int_equal(gossip_set_status(gsim_gossip(s, 2), GOSSIP_LEFT, gsim_now(s)), 0);
    t = gsim_now(s);
    assert_true(gsim_run_until(s, t + 5000, gsim_all_see, &left) >= 0);
    printf(" LEFT after %lld ms\n", (long long)(gsim_now(s) - t));
    t_left = gsim_now(s);
    gsim_run_for(s, 1000);
    gsim_kill(s, 2); /* the process exits once its LEFT has spread */

    /* Stale gossip (the old UP entry) does not resurrect the tombstone. */
    assert_int_equal(gossip_on_ack2(g0, &stale, 1, gsim_now(s)), 0);
    info = info_of(g0, "node3");
    assert_int_equal(info.entry.status, GOSSIP_LEFT);
    assert_false(info.alive);
    gsim_run_for(s, ttl / 2);
    assert_true(gsim_all_see(s, &left));

    /* After the TTL the tombstone goes from every view and stays gone,
     * though the nodes expire it at slightly different times. */
    gsim_run_for(s, t_left + ttl + 2000 - gsim_now(s));
    for (i = 0; i < 5; i++)
        if (i != 2)
            assert_false(gossip_lookup(gsim_gossip(s, i), "node3", NULL));
    assert_int_equal(gossip_on_ack2(g0, &stale, 1, gsim_now(s)), 0);
    gsim_run_for(s, ttl / 2);
    for (i = 0; i < 5; i++) {
        if (i == 2)
            continue;
        assert_false(gossip_lookup(gsim_gossip(s, i), "node3", NULL));
        assert_int_equal(gossip_member_count(gsim_gossip(s, i)), 4);
    }

    /* The same name rejoining with a new generation is a new member. */
    gsim_start(s, 2, gsim_now(s) + 1000000);
    assert_true(gsim_run_until(s, gsim_now(s) + 10000, gsim_converged, NULL) >= 0);
    info = info_of(g0, "node3");
    assert_int_equal(info.entry.status, GOSSIP_UP);
    assert_clean_traffic(s);
    gsim_free(s);
}

/* remove: another node takes a dead member out on its behalf (LEFT with
 * GOSSIP_F_REMOVED and the next membership epoch); it spreads to every node,
 * the dead node's stale entry does not bring it back, a new generation of
 * it does; live members, self and unknown names are refused. */
static void test_sim_remove_spreads_and_sticks(void **state)
{
    gsim_t *s = sim_new(5, 5, 60000);
    gsim_view_t removed = {.subject = 4, .alive = false, .status = GOSSIP_LEFT};
    gossip_t *g0;
    gossip_member_t stale;
    gossip_member_info_t info;
    int i;

    (void)state;
    converge(s);
    g0 = gsim_gossip(s, 0);
    stale = info_of(g0, "node5").entry;
    gsim_kill(s, 4);
    assert_int_equal(gossip_remove(g0, "node1", 1, gsim_now(s)), -EINVAL); /* self */
    assert_int_equal(gossip_remove(g0, "nosuch", 1, gsim_now(s)), -ENOENT);
    assert_int_equal(gossip_remove(g0, "node5", 1, gsim_now(s)), 0);
    assert_int_equal(gossip_remove(g0, "node5", 2, gsim_now(s)), -ENOENT); /* already gone */
    assert_int_equal(gossip_set_state(g0, GOSSIP_UP, 1, 0, gsim_now(s)), 0);
    assert_int_equal(gossip_set_state(g0, GOSSIP_UP, 1, GOSSIP_XFER_MAX + 1, gsim_now(s)), -EINVAL);
    assert_true(gsim_run_until(s, gsim_now(s) + 5000, gsim_all_see, &removed) >= 0);
    for (i = 1; i < 4; i++) {
        info = info_of(gsim_gossip(s, i), "node5");
        assert_true(info.entry.flags & GOSSIP_F_REMOVED);
        assert_int_equal(info.entry.ring_epoch, 1);
        assert_int_equal(info_of(gsim_gossip(s, i), "node1").entry.ring_epoch, 1);
    }
    /* the dead node's last entry, still travelling, changes nothing */
    assert_int_equal(gossip_on_ack2(gsim_gossip(s, 1), &stale, 1, gsim_now(s)), 0);
    assert_int_equal(info_of(gsim_gossip(s, 1), "node5").entry.status, GOSSIP_LEFT);
    /* started again (a new generation): a member again */
    gsim_start(s, 4, gsim_now(s) + 1000000);
    assert_true(gsim_run_until(s, gsim_now(s) + 10000, gsim_converged, NULL) >= 0);
    assert_int_equal(info_of(g0, "node5").entry.status, GOSSIP_UP);
    assert_clean_traffic(s);
    gsim_free(s);
}

/*
 * Issue 13, item 4: the scale scenario at 100 nodes (5% of frames lost,
 * seeded), as `make bench-gossip` runs it at 20, 100 and 1000.  Every live
 * node knows of a join and of a leave within log2(n) rounds, of a failure
 * within 10 + log2(n) rounds (10: a watcher's phi suspicion and two probe
 * timeouts, its own and each node's confirming one), and gossip costs
 * under 10 KB per node per second, quiet or not.
 */
static void test_sim_hundred_nodes_scale(void **state)
{
    gsim_scale_t sc = {.nodes = 100, .mode = GOSSIP_MODE_RUMOR, .seed = 13, .loss = 0.05,
                       .warmup_ms = 20000, .steady_ms = 10000, .settle_ms = 5000,
                       .limit_ms = 30000};
    double lg = log2(100.0);

    (void)state;
    assert_true(gsim_scale_run(&sc));
    printf("   100 nodes, 5%% loss: rounds until all know: join %.1f, leave %.1f, "
           "failure %.1f (log2 n = %.1f); bytes/node/s %.0f quiet, %.0f with events\n",
           sc.join_rounds, sc.leave_rounds, sc.fail_rounds, lg, sc.quiet_bps, sc.event_bps);
    assert_true(sc.join_rounds >= 0 && sc.join_rounds <= lg);
    assert_true(sc.leave_rounds >= 0 && sc.leave_rounds <= lg);
    assert_true(sc.fail_rounds >= 0 && sc.fail_rounds <= 10 + lg);
    assert_true(sc.quiet_bps < 10240);
    assert_true(sc.event_bps < 10240);
    assert_int_equal(sc.quiet.bad + sc.events.bad, 0);
    assert_int_equal(sc.quiet.refused + sc.events.refused, 0);
}

/* The same cluster with the digest exchange alone, for the comparison the
 * bench prints: the three tools cost a fraction of its bytes. */
static void test_sim_hundred_nodes_digest_costs_more(void **state)
{
    gsim_scale_t rumor = {.nodes = 100, .mode = GOSSIP_MODE_RUMOR, .seed = 5, .loss = 0.05,
                          .warmup_ms = 5000, .steady_ms = 5000, .settle_ms = 2000,
                          .limit_ms = 30000};
    gsim_scale_t digest = rumor;

    (void)state;
    digest.mode = GOSSIP_MODE_DIGEST;
    assert_true(gsim_scale_run(&rumor));
    assert_true(gsim_scale_run(&digest));
    printf("   100 nodes, quiet bytes/node/s: three tools %.0f, digest exchange alone %.0f\n",
           rumor.quiet_bps, digest.quiet_bps);
    assert_true(rumor.quiet_bps * 3 < digest.quiet_bps);
    assert_true(digest.join_rounds >= 0 && digest.fail_rounds >= 0);
}

/* ---- the three tools, by hand ----------------------------------------- */

/* Two nodes a, b that know the same `extra` members m0.. besides each
 * other, all with version 0 and heartbeat 0. */
static void twins(size_t extra, gossip_t **a, gossip_t **b)
{
    gossip_member_t *all = calloc(extra + 2, sizeof(*all));
    size_t i;

    assert_non_null(all);
    *a = new_node("a", 1, 10, NULL, 0);
    *b = new_node("b", 2, 20, NULL, 0);
    all[0] = entry("a", 1, 10, 0, GOSSIP_UP);
    all[1] = entry("b", 2, 20, 0, GOSSIP_UP);
    for (i = 0; i < extra; i++) {
        char name[16];

        snprintf(name, sizeof(name), "m%zu", i);
        all[i + 2] = entry(name, 3, 30, 0, GOSSIP_UP);
    }
    assert_int_equal(gossip_on_ack2(*a, all, extra + 2, 0), 0);
    assert_int_equal(gossip_on_ack2(*b, all, extra + 2, 0), 0);
    free(all);
}

static void test_summary_equal_then_only_differing_buckets(void **state)
{
    gossip_t *a, *b;
    gossip_round_t r;
    gossip_ack_t ack;
    gossip_ack2_t ack2;
    gossip_syn_t syn2;
    int64_t t = 0;
    int k;

    (void)state;
    twins(300, &a, &b);
    /* Let the rumors of the start (each node's own entry) die out, so what
     * follows is the anti-entropy alone. */
    for (k = 0; k < 20; k++, t += INTERVAL) {
        assert_int_equal(gossip_tick(a, t, &r), 0);
        gossip_round_free(&r);
        assert_int_equal(gossip_tick(b, t, &r), 0);
        gossip_round_free(&r);
    }
    /* Equal views: the SYN is a summary, the ACK carries no hashes, no
     * entries, no requests. */
    assert_int_equal(gossip_tick(a, t, &r), 0);
    assert_int_equal(r.syn.mask, 0);
    assert_int_equal(r.syn.ndigests, 0);
    assert_int_equal(r.syn.nbuckets, 32); /* 302 members, ~16 per bucket */
    assert_int_equal(r.syn.nrumors, 0);
    assert_true(r.syn.nheartbeats <= GOSSIP_MSG_HEARTBEATS);
    assert_int_equal(gossip_on_syn(b, &r.syn, t + 1, &ack), 0);
    assert_int_equal(ack.nbuckets, 0);
    assert_int_equal(ack.nentries, 0);
    assert_int_equal(ack.nrequests, 0);
    assert_int_equal(stats_of(b).summaries_equal, 1);
    gossip_ack_free(&ack);

    gossip_round_free(&r);
    /* One member changes at b, and its rumor dies out before a hears it
     * (say a missed it): a's next summary differs, b answers with 32
     * bucket hashes, a sends the digests of the one bucket that differs,
     * and b the entry. */
    apply1(b, entry("m7", 3, 30, 1, GOSSIP_LEAVING), t + 2);
    for (k = 0; k < 20; k++) {
        t += INTERVAL;
        assert_int_equal(gossip_tick(b, t, &r), 0);
        gossip_round_free(&r);
    }
    assert_int_equal(gossip_tick(a, t, &r), 0);
    assert_int_equal(gossip_on_syn(b, &r.syn, t + 3, &ack), 0);
    gossip_round_free(&r);
    assert_int_equal(ack.nbuckets, 32);
    assert_int_equal(ack.nrumors, 0);
    assert_int_equal(gossip_on_ack(a, &ack, t + 4, &ack2, &syn2), 0);
    gossip_ack_free(&ack);
    assert_int_equal(ack2.nentries, 0);
    assert_int_equal(syn2.nbuckets, 32);
    assert_int_equal(__builtin_popcountll(syn2.mask), 1);
    printf("   302 members, one changed: SYN2 carries %zu digests, not 302\n",
           syn2.ndigests);
    assert_true(syn2.ndigests > 0 && syn2.ndigests < 30);
    assert_int_equal(gossip_on_syn(b, &syn2, t + 5, &ack), 0);
    gossip_syn_free(&syn2);
    /* m7, and maybe a heartbeat's worth of a or b if they share its bucket */
    assert_true(ack.nentries >= 1 && ack.nentries <= 2);
    for (k = 0; k < (int)ack.nentries && strcmp(ack.entries[k].name, "m7") != 0; k++)
        ;
    assert_true(k < (int)ack.nentries);
    assert_int_equal(gossip_on_ack(a, &ack, t + 6, &ack2, &syn2), 0);
    gossip_ack_free(&ack);
    gossip_ack2_free(&ack2);
    assert_int_equal(syn2.nbuckets, 0);
    assert_int_equal(info_of(a, "m7").entry.status, GOSSIP_LEAVING);
    /* Equal again. */
    assert_int_equal(gossip_tick(a, t + INTERVAL, &r), 0);
    assert_int_equal(gossip_on_syn(b, &r.syn, t + INTERVAL + 1, &ack), 0);
    assert_int_equal(ack.nbuckets, 0);
    gossip_ack_free(&ack);
    gossip_round_free(&r);
    gossip_free(a);
    gossip_free(b);
}

static void test_rumor_rides_for_bounded_rounds(void **state)
{
    gossip_t *a, *b;
    gossip_round_t r;
    gossip_ack_t ack;
    gossip_digest_t me;
    uint32_t rounds = 0, expect;
    int64_t t = 0;
    int k;

    (void)state;
    assert_int_equal(gossip_rumor_rounds(1), 2);
    assert_int_equal(gossip_rumor_rounds(20), 7);    /* ceil(1.5 * log2(21)) */
    assert_int_equal(gossip_rumor_rounds(100), 10);
    assert_int_equal(gossip_rumor_rounds(1000), 15);
    twins(10, &a, &b);
    expect = gossip_rumor_rounds(12);
    for (k = 0; k < 10; k++, t += INTERVAL) { /* the start's rumors die out */
        assert_int_equal(gossip_tick(a, t, &r), 0);
        gossip_round_free(&r);
    }
    /* A status change rides on exactly rumor_rounds(n) rounds of SYNs, and
     * on the ACKs sent meanwhile. */
    assert_int_equal(gossip_set_status(a, GOSSIP_LEAVING, t), 0);
    for (k = 0; k < 20; k++, t += INTERVAL) {
        assert_int_equal(gossip_tick(a, t, &r), 0);
        if (has_rumor(r.syn.rumors, r.syn.nrumors, GOSSIP_RUMOR_ENTRY, "a")) {
            rounds++;
            assert_int_equal(r.syn.rumors[0].entry.status, GOSSIP_LEAVING);
            assert_int_equal(gossip_on_syn(b, &r.syn, t + 1, &ack), 0);
            assert_int_equal(info_of(b, "a").entry.status, GOSSIP_LEAVING);
            gossip_ack_free(&ack);
        }
        gossip_round_free(&r);
    }
    printf("   12 members: a change rode on %u rounds of SYNs (1.5 log2(13) = %.1f)\n",
           rounds, 1.5 * log2(13.0));
    assert_int_equal(rounds, expect);

    /* Many changes at once: a message carries GOSSIP_MSG_RUMORS of them,
     * the table keeps GOSSIP_MAX_RUMORS and counts what it pushes out. */
    for (k = 0; k < 80; k++) {
        char name[16];
        gossip_member_t e;

        snprintf(name, sizeof(name), "new%d", k);
        e = entry(name, 4, 40, 0, GOSSIP_UP);
        assert_int_equal(gossip_on_mail(a, &e, t + 10 * k, &me), 1);
        assert_string_equal(me.name, "a");
    }
    assert_int_equal(gossip_tick(a, t + 800, &r), 0);
    assert_int_equal(r.syn.nrumors, GOSSIP_MSG_RUMORS);
    gossip_round_free(&r);
    assert_int_equal(stats_of(a).rumors_evicted, 80 - GOSSIP_MAX_RUMORS);
    gossip_free(a);
    gossip_free(b);
}

static void test_direct_mail_to_every_peer_with_backoff(void **state)
{
    gossip_addr_t seed = {"10.0.0.9", 7000};
    gossip_t *g = new_node("a", 1, 10, NULL, 0), *j;
    const gossip_target_t *tc;
    gossip_target_t tb;
    gossip_round_t r;
    gossip_stats_t st;
    uint64_t version;
    int64_t t;
    int sends_c = 0;

    (void)state;
    apply1(g, entry("b", 2, 20, 0, GOSSIP_UP), 0);
    apply1(g, entry("c", 3, 30, 0, GOSSIP_UP), 0);
    apply1(g, entry("d", 4, 40, 0, GOSSIP_UP), 0);
    assert_int_equal(gossip_tick(g, 0, &r), 0);
    assert_int_equal(r.nmail, 0); /* no seeds, members known before the start */
    gossip_round_free(&r);

    /* A change goes to every known peer at once. */
    assert_int_equal(gossip_set_status(g, GOSSIP_LEAVING, 100), 0);
    assert_int_equal(gossip_tick(g, 200, &r), 0);
    assert_int_equal(r.nmail, 3);
    assert_int_equal(r.mail_entry.status, GOSSIP_LEAVING);
    version = r.mail_entry.version;
    tb = *find_target(r.mail, r.nmail, "b");
    assert_int_equal(gossip_on_mail_ack(g, &tb, version, NULL, 210), 1);
    assert_int_equal(gossip_on_mail_ack(g, &tb, version, NULL, 211), 0);
    assert_int_equal(gossip_on_mail_ack(g, &tb, version - 1, NULL, 211), 0);
    sends_c++;
    gossip_round_free(&r);
    /* A member learned within the window gets it too. */
    apply1(g, entry("e", 5, 50, 0, GOSSIP_UP), 300);
    /* The others are retried 1, 2, 4 rounds later, then given up. */
    for (t = 400; t <= 4000; t += INTERVAL) {
        assert_int_equal(gossip_tick(g, t, &r), 0);
        tc = find_target(r.mail, r.nmail, "c");
        assert_null(find_target(r.mail, r.nmail, "b"));
        if (tc != NULL) {
            sends_c++;
            assert_true(t == 400 || t == 800 || t == 1600);
        }
        if (t == 400)
            assert_non_null(find_target(r.mail, r.nmail, "e"));
        gossip_round_free(&r);
    }
    assert_int_equal(sends_c, GOSSIP_MAIL_TRIES);
    st = stats_of(g);
    assert_int_equal(st.mail_acked, 1);
    assert_int_equal(st.mail_expired, 3); /* c, d, e */
    /* After the window, a new member is not mailed. */
    apply1(g, entry("f", 6, 60, 0, GOSSIP_UP), 4100);
    assert_int_equal(gossip_tick(g, 4200, &r), 0);
    assert_int_equal(r.nmail, 0);
    gossip_round_free(&r);
    gossip_free(g);

    /* A joining node knows only its seed: it mails it (by address) on its
     * first tick, until the seed answers. */
    j = new_node("j", 7, 70, &seed, 1);
    assert_int_equal(gossip_tick(j, 0, &r), 0);
    assert_int_equal(r.nmail, 1);
    assert_string_equal(r.mail[0].name, "");
    assert_string_equal(r.mail[0].addr.host, "10.0.0.9");
    assert_string_equal(r.mail_entry.name, "j");
    tb = r.mail[0];
    version = r.mail_entry.version;
    gossip_round_free(&r);
    assert_int_equal(gossip_on_mail_ack(j, &tb, version, NULL, 5), 1);
    assert_int_equal(gossip_tick(j, 200, &r), 0);
    assert_int_equal(r.nmail, 0);
    gossip_round_free(&r);
    gossip_free(j);
}

static void test_down_rumor_each_node_probes_for_itself(void **state)
{
    gossip_t *g = new_node("a", 1, 10, NULL, 0);
    gossip_member_t b = entry("b", 2, 20, 0, GOSSIP_UP);
    gossip_digest_t from = {"c", 30, 0, 5, };
    gossip_rumor_t down;
    gossip_syn_t syn;
    gossip_ack_t ack;
    gossip_round_t r;
    int64_t t;

    (void)state;
    apply1(g, b, 0);
    apply1(g, entry("c", 3, 30, 0, GOSSIP_UP), 0);
    for (t = 0; t <= 400; t += INTERVAL) { /* first-sight probes, answered */
        assert_int_equal(gossip_tick(g, t, &r), 0);
        gossip_round_free(&r);
        gossip_on_probe_ack(g, "b", t + 1);
        gossip_on_probe_ack(g, "c", t + 1);
    }
    memset(&down, 0, sizeof(down));
    down.kind = GOSSIP_RUMOR_DOWN;
    snprintf(down.entry.name, sizeof(down.entry.name), "b");
    down.entry.generation = 20;
    memset(&syn, 0, sizeof(syn));
    syn.from = from;
    syn.nbuckets = 1;
    syn.rumors = &down;
    syn.nrumors = 1;
    /* c says b is down: a probes b itself on its next tick, and passes the
     * rumor on meanwhile (to others: the ACK does not echo it to c). */
    assert_int_equal(gossip_on_syn(g, &syn, 450, &ack), 0);
    assert_false(has_rumor(ack.rumors, ack.nrumors, GOSSIP_RUMOR_DOWN, "b"));
    gossip_ack_free(&ack);
    assert_true(info_of(g, "b").alive); /* not judged on hearsay */
    assert_int_equal(gossip_tick(g, 600, &r), 0);
    assert_true(in_probes(&r, "b"));
    assert_true(has_rumor(r.syn.rumors, r.syn.nrumors, GOSSIP_RUMOR_DOWN, "b"));
    gossip_round_free(&r);
    /* b answers: the rumor is false; it is no longer passed on, and a
     * second copy of it does not start another probe. */
    assert_int_equal(gossip_on_probe_ack(g, "b", 650), 1);
    assert_int_equal(gossip_on_syn(g, &syn, 700, &ack), 0);
    assert_false(has_rumor(ack.rumors, ack.nrumors, GOSSIP_RUMOR_DOWN, "b"));
    gossip_ack_free(&ack);
    assert_int_equal(gossip_tick(g, 800, &r), 0);
    assert_false(in_probes(&r, "b"));
    gossip_round_free(&r);
    assert_int_equal(stats_of(g).rumors_applied, 1);

    /* Later b goes silent: the next accusation (of a later heartbeat) is
     * probed again, and without an answer b is down here too, without a
     * rumor of this node's own (it only confirmed). */
    down.entry.heartbeat = 50;
    assert_int_equal(gossip_on_syn(g, &syn, 900, &ack), 0);
    gossip_ack_free(&ack);
    for (t = 1000; info_of(g, "b").alive; t += INTERVAL) {
        assert_true(t < 3000);
        assert_int_equal(gossip_tick(g, t, &r), 0);
        gossip_round_free(&r);
        apply1(g, entry("b", 2, 20, 0, GOSSIP_UP), t + 1); /* no newer state */
        gossip_on_probe_ack(g, "c", t + 1);
    }
    assert_int_equal(stats_of(g).down_rumors, 0);
    gossip_free(g);
}

static void test_unwatched_member_probed_after_long_silence(void **state)
{
    gossip_t *g = new_node("a", 1, 10, NULL, 0);
    int64_t t, first = -1;
    gossip_round_t r;
    int k;

    (void)state;
    /* 11 members: a watches m0, m1 (after it) and m8, m9 (before it); m4
     * it does not: only a DOWN rumor, or a long silence, gets it probed. */
    for (k = 0; k < 10; k++) {
        char name[8];

        snprintf(name, sizeof(name), "m%d", k);
        apply1(g, entry(name, 2 + k, 20, 0, GOSSIP_UP), 0);
    }
    for (t = 0; t <= 30000; t += INTERVAL) {
        assert_int_equal(gossip_tick(g, t, &r), 0);
        for (k = 0; k < (int)r.nprobes; k++) {
            if (strcmp(r.probes[k].name, "m4") == 0 && t > 0 && first < 0)
                first = t;
            if (strcmp(r.probes[k].name, "m4") != 0 || t == 0)
                gossip_on_probe_ack(g, r.probes[k].name, t + 1);
        }
        gossip_round_free(&r);
        for (k = 0; k < 10; k++) { /* everybody else is heard every round */
            char name[8];
            gossip_member_t e;

            snprintf(name, sizeof(name), "m%d", k);
            e = entry(name, 2 + k, 20, 0, GOSSIP_UP);
            e.heartbeat = (uint64_t)t / INTERVAL + 1;
            if (k != 4)
                apply1(g, e, t + 2);
        }
        if (first >= 0 && !info_of(g, "m4").alive)
            break;
    }
    printf("   an unwatched member silent since t=1 ms: probed at %lld ms, down at %lld ms\n",
           (long long)first, (long long)t);
    assert_true(first > GOSSIP_SILENCE_ROUNDS * INTERVAL && first <= GOSSIP_SILENCE_ROUNDS * INTERVAL + 2 * INTERVAL);
    assert_false(info_of(g, "m4").alive);
    assert_true(info_of(g, "m3").alive);
    assert_int_equal(stats_of(g).down_rumors, 0); /* not a watcher: it tells nobody */
    gossip_free(g);
}

static void test_bad_rumors_ignored_and_counted(void **state)
{
    gossip_t *g = new_node("a", 1, 10, NULL, 0);
    gossip_digest_t from = {"b", 20, 0, 1};
    gossip_rumor_t rum[GOSSIP_MSG_RUMORS + 1];
    gossip_digest_t hbs[GOSSIP_MSG_HEARTBEATS + 1], d;
    gossip_syn_t syn;
    gossip_ack_t ack;
    gossip_stats_t st;
    size_t i;

    (void)state;
    apply1(g, entry("b", 2, 20, 3, GOSSIP_UP), 0);
    memset(rum, 0, sizeof(rum));
    for (i = 0; i < 4; i++)
        rum[i].kind = GOSSIP_RUMOR_DOWN;
    snprintf(rum[0].entry.name, sizeof(rum[0].entry.name), "zz"); /* unknown */
    rum[0].entry.generation = 5;
    snprintf(rum[1].entry.name, sizeof(rum[1].entry.name), "b"); /* old generation */
    rum[1].entry.generation = 19;
    snprintf(rum[2].entry.name, sizeof(rum[2].entry.name), "b"); /* newer generation */
    rum[2].entry.generation = 21;
    snprintf(rum[3].entry.name, sizeof(rum[3].entry.name), "a"); /* about self */
    rum[3].entry.generation = 10;
    rum[4].kind = GOSSIP_RUMOR_ENTRY;
    rum[4].entry = entry("b", 2, 19, 99, GOSSIP_LEFT); /* an older generation */
    rum[5].kind = GOSSIP_RUMOR_ENTRY;
    rum[5].entry = entry("a", 2, 99, 99, GOSSIP_LEFT); /* about self */
    memset(&syn, 0, sizeof(syn));
    syn.from = from;
    syn.nbuckets = 1;
    syn.rumors = rum;
    syn.nrumors = 6;
    assert_int_equal(gossip_on_syn(g, &syn, 10, &ack), 0);
    gossip_ack_free(&ack);
    st = stats_of(g);
    assert_int_equal(st.rumors_ignored, 6);
    assert_int_equal(st.rumors_applied, 0);
    assert_int_equal(info_of(g, "b").entry.generation, 20);
    assert_int_equal(info_of(g, "b").entry.status, GOSSIP_UP);
    assert_int_equal(info_of(g, "a").entry.status, GOSSIP_UP);

    /* Malformed: refused whole, counted, nothing applied. */
    rum[6].kind = GOSSIP_RUMOR_ENTRY;
    rum[6].entry = entry("fresh", 3, 30, 0, GOSSIP_UP);
    syn.rumors = &rum[6];
    syn.nrumors = 1;
    rum[6].kind = 7; /* unknown kind */
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    rum[6].kind = GOSSIP_RUMOR_DOWN;
    rum[6].entry.generation = 0;
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    rum[6].kind = GOSSIP_RUMOR_ENTRY;
    rum[6].entry.generation = 30;
    rum[6].entry.peer_port = 0;
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    rum[6].entry.peer_port = 7000;
    syn.rumors = rum;
    syn.nrumors = GOSSIP_MSG_RUMORS + 1; /* too many */
    for (i = 0; i <= GOSSIP_MSG_RUMORS; i++) {
        rum[i].kind = GOSSIP_RUMOR_DOWN;
        snprintf(rum[i].entry.name, sizeof(rum[i].entry.name), "b");
        rum[i].entry.generation = 20;
    }
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    syn.nrumors = 0;
    memset(hbs, 0, sizeof(hbs));
    for (i = 0; i <= GOSSIP_MSG_HEARTBEATS; i++) {
        snprintf(hbs[i].name, sizeof(hbs[i].name), "b");
        hbs[i].generation = 20;
    }
    syn.heartbeats = hbs;
    syn.nheartbeats = GOSSIP_MSG_HEARTBEATS + 1;
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    syn.nheartbeats = 1;
    hbs[0].generation = 0; /* a heartbeat of no incarnation */
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    syn.nheartbeats = 0;
    syn.nbuckets = 3; /* not a power of two */
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    syn.nbuckets = GOSSIP_MAX_BUCKETS * 2;
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    syn.nbuckets = 4;
    syn.mask = 1u << 4; /* a bucket beyond nbuckets */
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    syn.mask = 0;
    d = from;
    syn.digests = &d; /* digests in a summary SYN */
    syn.ndigests = 1;
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    syn.ndigests = 0;
    syn.from.generation = 0; /* a sender of no incarnation */
    assert_int_equal(gossip_on_syn(g, &syn, 20, &ack), -EINVAL);
    assert_null(ack.entries);
    assert_int_equal(stats_of(g).msgs_rejected, 11);
    assert_false(gossip_lookup(g, "fresh", NULL));
    gossip_free(g);
}

static void test_flood_from_one_peer_is_bounded(void **state)
{
    gossip_t *g = new_node("a", 1, 10, NULL, 0);
    gossip_digest_t fb = {"b", 20, 0, 1}, fc = {"c", 30, 0, 1}, unknown = {"u0", 5, 0, 1};
    gossip_member_t e = entry("b", 2, 20, 0, GOSSIP_UP);
    gossip_syn_t syn;
    gossip_ack_t ack;
    int i, ok = 0;

    (void)state;
    apply1(g, e, 0);
    apply1(g, entry("c", 3, 30, 0, GOSSIP_UP), 0);
    memset(&syn, 0, sizeof(syn));
    syn.nbuckets = 1;
    syn.from = fb;
    /* 1000 SYNs from b at once: a burst is answered, the rest refused. */
    for (i = 0; i < 1000; i++) {
        int rc = gossip_on_syn(g, &syn, 1000, &ack);

        assert_true(rc == 0 || rc == -EBUSY);
        ok += rc == 0;
        gossip_ack_free(&ack);
    }
    assert_int_equal(ok, GOSSIP_FLOOD_BURST);
    assert_int_equal(stats_of(g).msgs_throttled, 1000 - GOSSIP_FLOOD_BURST);
    /* Mail from b shares that budget; c is not affected. */
    assert_int_equal(gossip_on_mail(g, &e, 1000, NULL), -EBUSY);
    syn.from = fc;
    assert_int_equal(gossip_on_syn(g, &syn, 1000, &ack), 0);
    gossip_ack_free(&ack);
    /* A round later b has GOSSIP_FLOOD_RATE more. */
    syn.from = fb;
    for (ok = 0, i = 0; i < 100; i++) {
        ok += gossip_on_syn(g, &syn, 1000 + INTERVAL, &ack) == 0;
        gossip_ack_free(&ack);
    }
    assert_int_equal(ok, GOSSIP_FLOOD_RATE);
    /* Senders that are not members (joining nodes) share one larger
     * budget, whatever names they claim; so do ACK2s. */
    for (ok = 0, i = 0; i < 1000; i++) {
        snprintf(unknown.name, sizeof(unknown.name), "u%d", i);
        syn.from = unknown;
        ok += gossip_on_syn(g, &syn, 2000, &ack) == 0;
        gossip_ack_free(&ack);
    }
    assert_int_equal(ok, 8 * GOSSIP_FLOOD_BURST);
    for (ok = 0, i = 0; i < 1000; i++)
        ok += gossip_on_ack2(g, &e, 1, 2000) == 0;
    assert_int_equal(ok, 8 * GOSSIP_FLOOD_BURST);
    assert_int_equal(gossip_member_count(g), 3); /* unknown senders only asked for */
    gossip_free(g);
}

/* ---- hand-driven tests ------------------------------------------------ */

static void test_stale_entries_never_override(void **state)
{
    gossip_t *g = new_node("a", 1, 500, NULL, 0);
    gossip_member_t x = entry("x", 2, 100, 5, GOSSIP_UP);
    gossip_member_t self_newer = entry("a", 9, 900, 77, GOSSIP_LEFT);
    gossip_digest_t d[2];
    gossip_ack_t ack;
    gossip_member_info_t info;

    (void)state;
    apply1(g, x, 10);
    apply1(g, entry("x", 2, 99, 1000, GOSSIP_LEFT), 20);  /* older generation */
    apply1(g, entry("x", 2, 100, 4, GOSSIP_LEAVING), 30); /* older version */
    info = info_of(g, "x");
    assert_int_equal(info.entry.generation, 100);
    assert_int_equal(info.entry.version, 5);
    assert_int_equal(info.entry.status, GOSSIP_UP);

    apply1(g, entry("x", 2, 100, 6, GOSSIP_LEAVING), 40); /* newer: wins */
    info = info_of(g, "x");
    assert_int_equal(info.entry.version, 6);
    assert_int_equal(info.entry.status, GOSSIP_LEAVING);

    /* A newer generation supersedes entirely, even a lower version. */
    apply1(g, entry("x", 3, 101, 0, GOSSIP_JOINING), 50);
    info = info_of(g, "x");
    assert_int_equal(info.entry.generation, 101);
    assert_int_equal(info.entry.version, 0);
    assert_string_equal(info.entry.host, "10.0.0.3");
    assert_true(info.alive);

    /* Nobody else changes our own entry. */
    apply1(g, self_newer, 60);
    info = info_of(g, "a");
    assert_true(info.is_self);
    assert_int_equal(info.entry.generation, 500);
    assert_int_equal(info.entry.status, GOSSIP_UP);

    /* SYN: an older digest gets our entry; a newer one is requested with
     * what we have; a member the digests lack is sent. */
    memset(d, 0, sizeof(d));
    snprintf(d[0].name, sizeof(d[0].name), "x");
    d[0].generation = 100;
    d[0].version = 1000;
    snprintf(d[1].name, sizeof(d[1].name), "y");
    d[1].generation = 7;
    d[1].version = 1;
    assert_int_equal(on_digests(g, d, 2, 70, &ack), 0);
    assert_int_equal(ack.nentries, 2); /* x (gen 101 > 100) and a (lacking) */
    assert_int_equal(ack.nrequests, 1);
    assert_string_equal(ack.requests[0].name, "y");
    assert_int_equal(ack.requests[0].generation, 0);
    gossip_ack_free(&ack);

    d[0].generation = 102;
    d[0].version = 0;
    assert_int_equal(on_digests(g, d, 1, 80, &ack), 0);
    assert_int_equal(ack.nrequests, 1);
    assert_string_equal(ack.requests[0].name, "x");
    assert_int_equal(ack.requests[0].generation, 101);
    assert_int_equal(ack.requests[0].version, 0);
    assert_int_equal(ack.nentries, 1); /* only a */
    assert_string_equal(ack.entries[0].name, "a");
    gossip_ack_free(&ack);
    gossip_free(g);
}

static void test_syn_ack_ack2_round(void **state)
{
    gossip_addr_t seed = {"10.0.0.1", 7000};
    gossip_t *a = new_node("a", 1, 10, &seed, 1);
    gossip_t *b = new_node("b", 2, 20, &seed, 1);
    gossip_round_t r;
    gossip_ack_t ack;
    gossip_ack2_t ack2;
    gossip_syn_t syn2;

    (void)state;
    /* a is the seed: alone, it has nobody to talk to (itself excluded). */
    assert_int_equal(gossip_tick(a, 0, &r), 0);
    assert_int_equal(r.ntargets, 0);
    assert_int_equal(r.syn.mask, 0);
    gossip_round_free(&r);
    /* b knows only the seed's address: it targets it, name unknown. */
    assert_int_equal(gossip_tick(b, 0, &r), 0);
    assert_int_equal(r.ntargets, 1);
    assert_string_equal(r.targets[0].addr.host, "10.0.0.1");
    assert_int_equal(r.targets[0].addr.port, 7000);
    assert_string_equal(r.targets[0].name, "");
    /* b's start is news: its own entry rides on its SYN as a rumor, so a
     * knows b at once.  The summaries still differ (b lacks a): a answers
     * with its bucket hashes. */
    assert_int_equal(r.syn.nrumors, 1);
    assert_string_equal(r.syn.rumors[0].entry.name, "b");
    assert_int_equal(gossip_on_syn(a, &r.syn, 5, &ack), 0);
    gossip_round_free(&r);
    assert_true(gossip_lookup(a, "b", NULL));
    assert_int_equal(ack.nbuckets, 1);
    assert_int_equal(ack.nentries, 0);
    assert_int_equal(ack.nrequests, 0);
    assert_string_equal(ack.from.name, "a");
    /* a's start rides on the ACK the same way: b knows a, its bucket
     * hashes now match a's, and there is nothing left to compare. */
    assert_int_equal(ack.nrumors, 1);
    assert_int_equal(gossip_on_ack(b, &ack, 10, &ack2, &syn2), 0);
    gossip_ack_free(&ack);
    assert_int_equal(ack2.nentries, 0);
    assert_int_equal(syn2.nbuckets, 0);
    assert_int_equal(gossip_member_count(a), 2);
    assert_int_equal(gossip_member_count(b), 2);
    assert_true(info_of(a, "b").alive);
    assert_true(info_of(b, "a").alive);
    /* Now b's partner is a member, also its successor; the seed is the
     * same address, so it is not sent twice. */
    assert_int_equal(gossip_tick(b, 200, &r), 0);
    assert_int_equal(r.ntargets, 1);
    assert_string_equal(r.targets[0].name, "a");
    /* Equal views: a summary SYN and an ACK of heartbeats only. */
    assert_int_equal(gossip_on_syn(a, &r.syn, 205, &ack), 0);
    gossip_round_free(&r);
    assert_int_equal(ack.nbuckets, 0);
    assert_int_equal(ack.nentries + ack.nrequests, 0);
    gossip_ack_free(&ack);
    gossip_free(a);
    gossip_free(b);
}

static void test_probe_cycle(void **state)
{
    gossip_t *g = new_node("a", 1, 10, NULL, 0);
    gossip_round_t r;
    gossip_member_info_t info;
    uint64_t epoch;
    int64_t t;

    (void)state;
    apply1(g, entry("b", 2, 20, 1, GOSSIP_UP), 0);
    /* First sight: confirmed by a probe on the next tick. */
    assert_int_equal(gossip_tick(g, 0, &r), 0);
    assert_true(in_probes(&r, "b"));
    assert_string_equal(r.probes[0].addr.host, "10.0.0.2");
    gossip_round_free(&r);
    assert_true(info_of(g, "b").probing);
    assert_int_equal(gossip_on_probe_ack(g, "b", 3), 1);
    assert_false(info_of(g, "b").probing);

    /* Heartbeats every 200 ms, then silence: suspected, then probed. */
    for (t = 200; t <= 2000; t += 200)
        apply1(g, entry("b", 2, 20, 1 + (uint64_t)t, GOSSIP_UP), t);
    for (t = 2200;; t += 200) {
        assert_int_equal(gossip_tick(g, t, &r), 0);
        if (r.nprobes > 0)
            break;
        gossip_round_free(&r);
        assert_true(t < 4000);
    }
    printf("   steady 200 ms heartbeats, then silence: probed %lld ms after the "
           "last one (phi %.1f)\n", (long long)(t - 2000), gossip_phi(g, "b", t));
    assert_true(in_probes(&r, "b"));
    gossip_round_free(&r);
    /* The answer clears the suspicion. */
    assert_int_equal(gossip_on_probe_ack(g, "b", t + 50), 1);
    info = info_of(g, "b");
    assert_true(info.alive);
    assert_false(info.probing);
    assert_true(gossip_phi(g, "b", t + 50) < 1);

    /* Suspected again; no answer within 500 ms: down on a later tick. */
    epoch = gossip_epoch(g);
    for (t += 200;; t += 200) {
        assert_int_equal(gossip_tick(g, t, &r), 0);
        gossip_round_free(&r);
        if (!info_of(g, "b").alive)
            break;
        assert_true(t < 10000);
    }
    assert_int_equal(gossip_epoch(g), epoch + 1);
    /* Down members are not probed but are still gossiped to, sometimes. */
    assert_int_equal(gossip_tick(g, t + 200, &r), 0);
    assert_int_equal(r.nprobes, 0);
    gossip_round_free(&r);
    /* A newer heartbeat by gossip makes it alive again. */
    apply1(g, entry("b", 2, 20, 99999, GOSSIP_UP), t + 300);
    assert_true(info_of(g, "b").alive);
    assert_int_equal(gossip_epoch(g), epoch + 2);

    /* A heartbeat arriving during the probe also clears it. */
    for (t += 400;; t += 200) {
        assert_int_equal(gossip_tick(g, t, &r), 0);
        if (r.nprobes > 0)
            break;
        gossip_round_free(&r);
    }
    gossip_round_free(&r);
    apply1(g, entry("b", 2, 20, 100000, GOSSIP_UP), t + 100);
    assert_false(info_of(g, "b").probing);
    assert_int_equal(gossip_tick(g, t + 600, &r), 0);
    gossip_round_free(&r);
    assert_true(info_of(g, "b").alive);

    /* Probe answers from unknown, self or bad names. */
    assert_int_equal(gossip_on_probe_ack(g, "zz", t), 0);
    assert_int_equal(gossip_on_probe_ack(g, "a", t), 0);
    assert_int_equal(gossip_on_probe_ack(g, NULL, t), -EINVAL);
    assert_int_equal(gossip_on_probe_ack(g, "", t), -EINVAL);
    gossip_free(g);
}

static void test_views_epoch_status(void **state)
{
    gossip_t *g = new_node("self", 1, 10, NULL, 0);
    gossip_member_info_t info;
    uint64_t e;

    (void)state;
    assert_int_equal(gossip_epoch(g), 1);
    assert_int_equal(gossip_member_count(g), 1);
    assert_int_equal(gossip_member(g, 0, &info), 0);
    assert_true(info.is_self);
    assert_true(info.alive);
    assert_string_equal(info.entry.name, "self");
    assert_true(info.phi == 0);
    assert_int_equal(gossip_member(g, 1, &info), -EINVAL);
    assert_int_equal(gossip_member(g, 0, NULL), -EINVAL);
    assert_false(gossip_lookup(g, "nobody", &info));
    assert_false(gossip_lookup(g, NULL, &info));
    assert_true(gossip_phi(g, "nobody", 0) < 0);
    assert_true(gossip_phi(g, "self", 0) == 0);

    /* Members are listed by name; the epoch moves on every addition. */
    apply1(g, entry("zeta", 3, 5, 1, GOSSIP_UP), 0);
    apply1(g, entry("alpha", 2, 5, 1, GOSSIP_JOINING), 0);
    assert_int_equal(gossip_epoch(g), 3);
    assert_int_equal(gossip_member(g, 0, &info), 0);
    assert_string_equal(info.entry.name, "alpha");
    assert_int_equal(gossip_member(g, 2, &info), 0);
    assert_string_equal(info.entry.name, "zeta");
    /* A heartbeat alone does not move it; a status change does. */
    apply1(g, entry("zeta", 3, 5, 2, GOSSIP_UP), 100);
    assert_int_equal(gossip_epoch(g), 3);
    apply1(g, entry("alpha", 2, 5, 2, GOSSIP_UP), 100);
    assert_int_equal(gossip_epoch(g), 4);

    /* Owner actions bump the version; the same status again is a no-op. */
    e = gossip_epoch(g);
    info = info_of(g, "self");
    assert_int_equal(gossip_set_status(g, GOSSIP_LEAVING, 200), 0);
    assert_int_equal(info_of(g, "self").entry.version, info.entry.version + 1);
    assert_int_equal(info_of(g, "self").entry.status, GOSSIP_LEAVING);
    assert_int_equal(gossip_epoch(g), e + 1);
    assert_int_equal(gossip_set_status(g, GOSSIP_LEAVING, 200), 0);
    assert_int_equal(gossip_epoch(g), e + 1);
    assert_int_equal(gossip_set_status(g, (gossip_status_t)4, 200), -EINVAL);
    gossip_free(g);
}

/* Applies bad entry `bad` together with a good one; nothing may change. */
static void reject_with_good(gossip_t *g, gossip_member_t bad)
{
    gossip_member_t two[2];
    gossip_ack_t ack;
    gossip_ack2_t ack2;
    uint64_t epoch = gossip_epoch(g);
    size_t count = gossip_member_count(g);

    two[0] = entry("good", 4, 7, 1, GOSSIP_UP);
    two[1] = bad;
    assert_int_equal(gossip_on_ack2(g, two, 2, 1), -EINVAL);
    memset(&ack, 0, sizeof(ack));
    ack.from = digest_of(&two[0]); /* a well-formed sender */
    ack.entries = two;
    ack.nentries = 2;
    assert_int_equal(gossip_on_ack(g, &ack, 1, &ack2, NULL), -EINVAL);
    assert_null(ack2.entries);
    assert_int_equal(ack2.nentries, 0);
    assert_false(gossip_lookup(g, "good", NULL));
    assert_int_equal(gossip_member_count(g), count);
    assert_int_equal(gossip_epoch(g), epoch);
}

static void test_malformed_rejected(void **state)
{
    gossip_t *g = new_node("a", 1, 10, NULL, 0);
    gossip_member_t e, *many;
    gossip_digest_t d[2], *dmany;
    gossip_ack_t ack;
    gossip_ack2_t ack2;
    size_t i;

    (void)state;
    e = entry("x", 2, 1, 1, GOSSIP_UP);
    e.name[0] = '\0';
    reject_with_good(g, e); /* empty name */
    e = entry("x y", 2, 1, 1, GOSSIP_UP);
    reject_with_good(g, e); /* space in name */
    e = entry("x\001", 2, 1, 1, GOSSIP_UP);
    reject_with_good(g, e); /* control byte */
    e = entry("x", 2, 1, 1, GOSSIP_UP);
    memset(e.name, 'n', sizeof(e.name)); /* 64 bytes, no NUL */
    reject_with_good(g, e);
    e = entry("x", 2, 1, 1, GOSSIP_UP);
    memset(e.host, '1', sizeof(e.host)); /* no NUL */
    reject_with_good(g, e);
    snprintf(e.host, sizeof(e.host), "example.com");
    reject_with_good(g, e);
    snprintf(e.host, sizeof(e.host), "256.1.1.1");
    reject_with_good(g, e);
    snprintf(e.host, sizeof(e.host), "%s", "");
    reject_with_good(g, e);
    e = entry("x", 2, 1, 1, GOSSIP_UP);
    e.peer_port = 0;
    reject_with_good(g, e);
    e = entry("x", 2, 1, 1, GOSSIP_UP);
    e.client_port = 0;
    reject_with_good(g, e);
    e = entry("x", 2, 1, 1, GOSSIP_UP);
    e.status = 4;
    reject_with_good(g, e);
    e = entry("x", 2, 0, 1, GOSSIP_UP);
    reject_with_good(g, e); /* generation 0 */
    e = entry("x", 2, -5, 1, GOSSIP_UP);
    reject_with_good(g, e);
    e = entry("good", 2, 9, 1, GOSSIP_UP);
    reject_with_good(g, e); /* the same name twice */
    assert_int_equal(gossip_on_ack2(g, NULL, 1, 1), -EINVAL);
    assert_int_equal(gossip_on_ack2(g, NULL, 0, 1), 0);

    /* Bad digests, in a SYN or as ACK requests. */
    memset(d, 0, sizeof(d));
    snprintf(d[0].name, sizeof(d[0].name), "x");
    snprintf(d[1].name, sizeof(d[1].name), "x");
    assert_int_equal(on_digests(g, d, 2, 1, &ack), -EINVAL);
    assert_null(ack.entries);
    snprintf(d[1].name, sizeof(d[1].name), "y");
    d[1].generation = -1;
    assert_int_equal(on_digests(g, d, 2, 1, &ack), -EINVAL);
    d[1].generation = 1;
    memset(d[1].name, 'q', sizeof(d[1].name));
    assert_int_equal(on_digests(g, d, 2, 1, &ack), -EINVAL);
    assert_int_equal(on_digests(g, NULL, 3, 1, &ack), -EINVAL);
    assert_int_equal(gossip_on_syn(g, NULL, 1, &ack), -EINVAL);
    memset(&ack, 0, sizeof(ack));
    e = entry("good", 4, 7, 1, GOSSIP_UP);
    ack.from = digest_of(&e);
    ack.requests = d;
    ack.nrequests = 2;
    ack.entries = &e;
    ack.nentries = 1;
    assert_int_equal(gossip_on_ack(g, &ack, 1, &ack2, NULL), -EINVAL);
    assert_false(gossip_lookup(g, "good", NULL)); /* entries not applied */
    assert_int_equal(gossip_on_ack(g, NULL, 1, &ack2, NULL), -EINVAL);

    /* Too many items in one message. */
    dmany = calloc(GOSSIP_MAX_MEMBERS + 1, sizeof(*dmany));
    assert_non_null(dmany);
    for (i = 0; i <= GOSSIP_MAX_MEMBERS; i++) {
        snprintf(dmany[i].name, sizeof(dmany[i].name), "n%zu", i);
        dmany[i].generation = 1;
    }
    assert_int_equal(on_digests(g, dmany, GOSSIP_MAX_MEMBERS + 1, 1, &ack), -EINVAL);
    assert_int_equal(on_digests(g, dmany, GOSSIP_MAX_MEMBERS, 1, &ack), 0);
    assert_int_equal(ack.nrequests, GOSSIP_MAX_MEMBERS);
    gossip_ack_free(&ack);
    free(dmany);

    /* Membership is capped at GOSSIP_MAX_MEMBERS, self included. */
    many = calloc(GOSSIP_MAX_MEMBERS + 1, sizeof(*many));
    assert_non_null(many);
    for (i = 0; i <= GOSSIP_MAX_MEMBERS; i++) {
        char name[16];

        snprintf(name, sizeof(name), "m%zu", i);
        many[i] = entry(name, 2, 3, 1, GOSSIP_UP);
    }
    assert_int_equal(gossip_on_ack2(g, many, GOSSIP_MAX_MEMBERS + 1, 1), -EINVAL);
    assert_int_equal(gossip_on_ack2(g, many, GOSSIP_MAX_MEMBERS, 1), -EINVAL);
    assert_int_equal(gossip_member_count(g), 1);
    assert_int_equal(gossip_on_ack2(g, many, GOSSIP_MAX_MEMBERS - 1, 1), 0);
    assert_int_equal(gossip_member_count(g), GOSSIP_MAX_MEMBERS);
    /* Full: a batch updating a known member and adding one is refused
     * whole. */
    many[0].version = 2;
    many[0].status = GOSSIP_LEAVING;
    assert_int_equal(gossip_on_ack2(g, &many[GOSSIP_MAX_MEMBERS - 1], 1, 1), -EINVAL);
    memcpy(&many[1], &many[GOSSIP_MAX_MEMBERS - 1], sizeof(many[1]));
    assert_int_equal(gossip_on_ack2(g, many, 2, 1), -EINVAL);
    assert_int_equal(info_of(g, "m0").entry.status, GOSSIP_UP);
    assert_int_equal(gossip_on_ack2(g, many, 1, 1), 0); /* updates still fine */
    assert_int_equal(info_of(g, "m0").entry.status, GOSSIP_LEAVING);
    free(many);
    gossip_free(g);
}

static void test_new_rejects_bad_config(void **state)
{
    gossip_member_t self = entry("a", 1, 10, 0, GOSSIP_UP);
    gossip_addr_t seeds[2] = {{"10.0.0.9", 7000}, {"bad host", 7000}};
    gossip_config_t cfg;
    gossip_t *g = (gossip_t *)&self; /* sentinel: untouched on failure */

    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(gossip_new(NULL, &cfg, &g), -EINVAL);
    assert_int_equal(gossip_new(&self, NULL, &g), -EINVAL);
    assert_int_equal(gossip_new(&self, &cfg, NULL), -EINVAL);
    cfg.interval_ms = -1;
    assert_int_equal(gossip_new(&self, &cfg, &g), -EINVAL);
    cfg.interval_ms = 0;
    cfg.phi_threshold = NAN;
    assert_int_equal(gossip_new(&self, &cfg, &g), -EINVAL);
    cfg.phi_threshold = 0;
    cfg.seeds = seeds;
    cfg.nseeds = 2;
    assert_int_equal(gossip_new(&self, &cfg, &g), -EINVAL);
    cfg.nseeds = GOSSIP_MAX_SEEDS + 1;
    assert_int_equal(gossip_new(&self, &cfg, &g), -EINVAL);
    cfg.seeds = NULL;
    cfg.nseeds = 1;
    assert_int_equal(gossip_new(&self, &cfg, &g), -EINVAL);
    cfg.nseeds = 0;
    self.status = 9;
    assert_int_equal(gossip_new(&self, &cfg, &g), -EINVAL);
    assert_ptr_equal(g, (gossip_t *)&self);
    self.status = GOSSIP_JOINING;
    cfg.fd_window = 65537;
    assert_int_equal(gossip_new(&self, &cfg, &g), -EINVAL);
    cfg.fd_window = 0;
    cfg.mode = 2;
    assert_int_equal(gossip_new(&self, &cfg, &g), -EINVAL);
    assert_ptr_equal(g, (gossip_t *)&self);
    cfg.mode = GOSSIP_MODE_RUMOR;
    cfg.seeds = seeds;
    cfg.nseeds = 1;
    assert_int_equal(gossip_new(&self, &cfg, &g), 0); /* defaults apply */
    gossip_free(g);
    gossip_free(NULL);
    gossip_round_free(NULL);
    gossip_syn_free(NULL);
    gossip_ack_free(NULL);
    gossip_ack2_free(NULL);
}

static void test_phi_formula(void **state)
{
    double prev = -1, t;
    double akka;

    (void)state;
    /* At the mean, 1 - F = 1/2. */
    assert_true(fabs(gossip_phi_normal(200, 200, 50) - log10(2.0)) < 1e-12);
    /* Akka's expression where it does not underflow. */
    for (t = 0; t <= 600; t += 25) {
        double y = (t - 200) / 50, e = exp(-y * (1.5976 + 0.070566 * y * y));
        double phi = gossip_phi_normal(t, 200, 50);

        akka = t > 200 ? -log10(e / (1.0 + e)) : -log10(1.0 - 1.0 / (1.0 + e));
        assert_true(fabs(phi - akka) < 1e-9 * (1 + akka));
        assert_true(phi >= 0 && phi > prev);
        prev = phi;
    }
    /* Far past the mean Akka's form is infinite; ours stays finite. */
    assert_true(isfinite(gossip_phi_normal(1e6, 200, 50)));
    assert_true(gossip_phi_normal(1e6, 200, 50) > 1e6);
    assert_true(isfinite(gossip_phi_normal(-1e6, 200, 50)));
    assert_true(gossip_phi_normal(-1e6, 200, 50) >= 0);
}

static void test_fd_window(void **state)
{
    gossip_fd_t *fd = NULL;
    int64_t t;
    int i;

    (void)state;
    assert_int_equal(gossip_fd_new(0, 100, 2000, &fd), -EINVAL);
    assert_int_equal(gossip_fd_new(10, 0, 2000, &fd), -EINVAL);
    assert_int_equal(gossip_fd_new(10, 100, 0, &fd), -EINVAL);
    assert_int_equal(gossip_fd_new(10, 100, 20000000, &fd), -EINVAL);
    assert_int_equal(gossip_fd_new(GOSSIP_FD_WINDOW, 100, 2000, &fd), 0);

    /* Bootstrap: one sample of 400 ms, so a fresh member survives about a
     * second of silence before it is suspected. */
    gossip_fd_reset(fd, 400, 1000);
    assert_int_equal(gossip_fd_last(fd), 1000);
    assert_true(fabs(gossip_fd_phi(fd, 1400) - log10(2.0)) < 1e-12);
    assert_true(gossip_fd_phi(fd, 1800) < 8);
    assert_true(gossip_fd_phi(fd, 2000) > 8);

    /* A full window of 200 ms intervals, then of 400 ms: the old ones
     * slide out, and the mean is exactly 400. */
    for (t = 1000, i = 0; i < 1000; i++)
        gossip_fd_heartbeat(fd, t += 200);
    assert_true(fabs(gossip_fd_phi(fd, t + 200) - log10(2.0)) < 1e-12);
    for (i = 0; i < 1000; i++)
        gossip_fd_heartbeat(fd, t += 400);
    assert_true(fabs(gossip_fd_phi(fd, t + 400) - log10(2.0)) < 1e-12);

    /* Zero and over-long intervals are not samples. */
    gossip_fd_heartbeat(fd, t);
    gossip_fd_heartbeat(fd, t += 60000);
    assert_int_equal(gossip_fd_last(fd), t);
    assert_true(fabs(gossip_fd_phi(fd, t + 400) - log10(2.0)) < 1e-12);
    /* Time running back is harmless. */
    gossip_fd_heartbeat(fd, t - 10);
    assert_int_equal(gossip_fd_last(fd), t);
    assert_true(gossip_fd_phi(fd, t - 100) < 1);
    gossip_fd_free(fd);
    gossip_fd_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phi_formula),
        cmocka_unit_test(test_fd_window),
        cmocka_unit_test(test_new_rejects_bad_config),
        cmocka_unit_test(test_views_epoch_status),
        cmocka_unit_test(test_stale_entries_never_override),
        cmocka_unit_test(test_syn_ack_ack2_round),
        cmocka_unit_test(test_probe_cycle),
        cmocka_unit_test(test_malformed_rejected),
        cmocka_unit_test(test_summary_equal_then_only_differing_buckets),
        cmocka_unit_test(test_rumor_rides_for_bounded_rounds),
        cmocka_unit_test(test_direct_mail_to_every_peer_with_backoff),
        cmocka_unit_test(test_down_rumor_each_node_probes_for_itself),
        cmocka_unit_test(test_unwatched_member_probed_after_long_silence),
        cmocka_unit_test(test_bad_rumors_ignored_and_counted),
        cmocka_unit_test(test_flood_from_one_peer_is_bounded),
        cmocka_unit_test(test_sim_five_nodes_converge),
        cmocka_unit_test(test_sim_steady_state_no_false_down),
        cmocka_unit_test(test_sim_kill_detected_then_restart_supersedes),
        cmocka_unit_test(test_jittery_heartbeats_answering_probes_never_down),
        cmocka_unit_test(test_sim_jitter_never_down),
        cmocka_unit_test(test_sim_partition_heals),
        cmocka_unit_test(test_sim_leave_propagates_tombstone_not_resurrected),
        cmocka_unit_test(test_sim_remove_spreads_and_sticks),
        cmocka_unit_test(test_sim_hundred_nodes_scale),
        cmocka_unit_test(test_sim_hundred_nodes_digest_costs_more),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
