/*
 * test_gossip.c - unit tests of gossip/ (cmocka).
 *
 * Two kinds of tests.  Small ones drive one gossip_t by hand (merge rules,
 * probes, validation, the phi formula).  The cluster ones run N gossip_t
 * instances in one process over a simulated network driven by a simulated
 * clock: an event queue of messages (SYN, ACK, ACK2, PROBE, PROBE_ACK), each
 * delivered after a random latency; a node can be killed (no ticks, its
 * messages dropped), partitioned (messages across groups dropped), or given
 * jitter (its messages delayed by a random extra delay).  No real time is
 * used; every run is deterministic.  The cluster tests print what they
 * measured (convergence and detection times in simulated ms).
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

#define INTERVAL 200
#define SIM_MAX 8

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

static bool in_probes(const gossip_round_t *r, const char *name)
{
    size_t i;

    for (i = 0; i < r->nprobes; i++)
        if (strcmp(r->probes[i].name, name) == 0)
            return true;
    return false;
}

/* ---- the simulated cluster -------------------------------------------- */

enum msg_type { M_SYN, M_ACK, M_ACK2, M_PROBE, M_PROBE_ACK };

struct msg {
    int64_t at;
    uint64_t seq;
    int from, to;
    enum msg_type type;
    gossip_digest_t *digests; /* SYN */
    size_t nd;
    gossip_ack_t ack;         /* ACK */
    gossip_ack2_t ack2;       /* ACK2 */
    char name[GOSSIP_NAME_MAX + 1]; /* PROBE_ACK: who answered */
};

struct simnode {
    gossip_t *g;
    char name[GOSSIP_NAME_MAX + 1];
    char host[32];
    bool dead;
    int group;            /* partition: only equal groups talk */
    int64_t jitter;       /* its messages are delayed 0..jitter extra ms */
    int64_t probe_jitter; /* its probe answers are delayed 0..this ms */
    int64_t next_tick;
    int64_t generation;
    uint64_t probes_to;   /* probes sent to it */
};

struct sim {
    int n;
    struct simnode nodes[SIM_MAX];
    struct msg *q;
    size_t nq, cap;
    int64_t now;
    uint64_t seq;
    uint64_t rng;
    int64_t left_ttl;
    gossip_addr_t seed;
    uint64_t delivered, dropped;
};

static uint64_t sim_rand(struct sim *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t sim_rand_upto(struct sim *s, int64_t max)
{
    return max <= 0 ? 0 : (int64_t)(sim_rand(s) % (uint64_t)(max + 1));
}

static void msg_free(struct msg *m)
{
    free(m->digests);
    gossip_ack_free(&m->ack);
    gossip_ack2_free(&m->ack2);
}

static bool can_talk(const struct sim *s, int a, int b)
{
    return !s->nodes[a].dead && !s->nodes[b].dead &&
           s->nodes[a].group == s->nodes[b].group;
}

/* Queues m (taking its payload) after 1..5 ms plus the sender's jitter. */
static void sim_send(struct sim *s, struct msg m, int64_t extra)
{
    if (!can_talk(s, m.from, m.to)) {
        s->dropped++;
        msg_free(&m);
        return;
    }
    m.at = s->now + 1 + sim_rand_upto(s, 4) + sim_rand_upto(s, extra);
    m.seq = s->seq++;
    if (s->nq == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->q = realloc(s->q, s->cap * sizeof(*s->q));
        assert_non_null(s->q);
    }
    s->q[s->nq++] = m;
}

static int sim_node_by_addr(const struct sim *s, const gossip_addr_t *a)
{
    int i;

    for (i = 0; i < s->n; i++)
        if (strcmp(s->nodes[i].host, a->host) == 0 && a->port == 7000)
            return i;
    return -1;
}

static int sim_node_by_name(const struct sim *s, const char *name)
{
    int i;

    for (i = 0; i < s->n; i++)
        if (strcmp(s->nodes[i].name, name) == 0)
            return i;
    return -1;
}

/* (Re)starts node i with the given generation; it ticks from now on. */
static void sim_start(struct sim *s, int i, int64_t generation)
{
    struct simnode *nd = &s->nodes[i];
    gossip_member_t self;
    gossip_config_t cfg;

    gossip_free(nd->g);
    nd->g = NULL;
    snprintf(nd->name, sizeof(nd->name), "node%d", i + 1);
    snprintf(nd->host, sizeof(nd->host), "10.0.0.%d", i + 1);
    self = entry(nd->name, i + 1, generation, 0, GOSSIP_UP);
    memset(&cfg, 0, sizeof(cfg));
    cfg.interval_ms = INTERVAL;
    cfg.phi_threshold = 8;
    cfg.left_ttl_ms = s->left_ttl;
    cfg.rng_seed = 1000003u * (uint64_t)(i + 1) + (uint64_t)generation;
    cfg.seeds = &s->seed;
    cfg.nseeds = 1;
    assert_int_equal(gossip_new(&self, &cfg, &nd->g), 0);
    nd->dead = false;
    nd->generation = generation;
    nd->next_tick = s->now + sim_rand_upto(s, INTERVAL - 1);
}

static struct sim *sim_new(int n, uint64_t seed, int64_t left_ttl)
{
    struct sim *s = calloc(1, sizeof(*s));
    int i;

    assert_non_null(s);
    s->n = n;
    s->rng = seed;
    s->left_ttl = left_ttl;
    s->now = 0;
    snprintf(s->seed.host, sizeof(s->seed.host), "10.0.0.1");
    s->seed.port = 7000;
    for (i = 0; i < n; i++)
        sim_start(s, i, 1000000 + i);
    return s;
}

static void sim_free(struct sim *s)
{
    size_t k;
    int i;

    for (k = 0; k < s->nq; k++)
        msg_free(&s->q[k]);
    free(s->q);
    for (i = 0; i < s->n; i++)
        gossip_free(s->nodes[i].g);
    free(s);
}

static void sim_kill(struct sim *s, int i)
{
    s->nodes[i].dead = true;
}

static void sim_tick(struct sim *s, int i)
{
    struct simnode *nd = &s->nodes[i];
    gossip_round_t r;
    size_t k;

    assert_int_equal(gossip_tick(nd->g, s->now, &r), 0);
    for (k = 0; k < r.ntargets; k++) {
        int j = sim_node_by_addr(s, &r.targets[k].addr);
        struct msg m;

        assert_true(j >= 0 && j != i);
        memset(&m, 0, sizeof(m));
        m.from = i;
        m.to = j;
        m.type = M_SYN;
        m.digests = malloc(r.nsyn * sizeof(*m.digests));
        assert_non_null(m.digests);
        memcpy(m.digests, r.syn, r.nsyn * sizeof(*m.digests));
        m.nd = r.nsyn;
        sim_send(s, m, nd->jitter);
    }
    for (k = 0; k < r.nprobes; k++) {
        int j = sim_node_by_name(s, r.probes[k].name);
        struct msg m;

        assert_true(j >= 0 && j != i);
        s->nodes[j].probes_to++;
        memset(&m, 0, sizeof(m));
        m.from = i;
        m.to = j;
        m.type = M_PROBE;
        sim_send(s, m, 0);
    }
    gossip_round_free(&r);
    nd->next_tick += INTERVAL;
}

static void sim_deliver(struct sim *s, struct msg *m)
{
    struct simnode *to = &s->nodes[m->to];
    struct msg r;

    if (!can_talk(s, m->from, m->to)) {
        s->dropped++;
        msg_free(m);
        return;
    }
    s->delivered++;
    memset(&r, 0, sizeof(r));
    r.from = m->to;
    r.to = m->from;
    switch (m->type) {
    case M_SYN:
        r.type = M_ACK;
        assert_int_equal(gossip_on_syn(to->g, m->digests, m->nd, s->now, &r.ack), 0);
        sim_send(s, r, to->jitter);
        break;
    case M_ACK:
        r.type = M_ACK2;
        assert_int_equal(gossip_on_ack(to->g, &m->ack, s->now, &r.ack2), 0);
        if (r.ack2.nentries > 0)
            sim_send(s, r, to->jitter);
        else
            msg_free(&r);
        break;
    case M_ACK2:
        assert_int_equal(gossip_on_ack2(to->g, m->ack2.entries, m->ack2.nentries,
                                        s->now), 0);
        break;
    case M_PROBE:
        r.type = M_PROBE_ACK;
        snprintf(r.name, sizeof(r.name), "%s", to->name);
        sim_send(s, r, to->probe_jitter);
        break;
    case M_PROBE_ACK:
        assert_true(gossip_on_probe_ack(to->g, m->name, s->now) >= 0);
        break;
    }
    msg_free(m);
}

/* Processes every event of the next event time (messages first, then
 * ticks) and returns that time, or -1 if it would pass `limit`. */
static int64_t sim_step(struct sim *s, int64_t limit)
{
    int64_t t = INT64_MAX;
    size_t k;
    int i;

    for (k = 0; k < s->nq; k++)
        if (s->q[k].at < t)
            t = s->q[k].at;
    for (i = 0; i < s->n; i++)
        if (!s->nodes[i].dead && s->nodes[i].next_tick < t)
            t = s->nodes[i].next_tick;
    if (t > limit)
        return -1;
    s->now = t;
    for (;;) { /* deliver in (at, seq) order; delivery may queue more */
        size_t best = s->nq;
        struct msg m;

        for (k = 0; k < s->nq; k++)
            if (s->q[k].at == t && (best == s->nq || s->q[k].seq < s->q[best].seq))
                best = k;
        if (best == s->nq)
            break;
        m = s->q[best];
        s->q[best] = s->q[--s->nq];
        sim_deliver(s, &m);
    }
    for (i = 0; i < s->n; i++)
        if (!s->nodes[i].dead && s->nodes[i].next_tick == t)
            sim_tick(s, i);
    return t;
}

typedef bool (*sim_pred)(struct sim *s, void *arg);

/* Runs until pred holds (returns the simulated time) or until `limit`
 * (returns -1, with s->now == limit). */
static int64_t sim_run_until(struct sim *s, int64_t limit, sim_pred pred,
                             void *arg)
{
    if (pred != NULL && pred(s, arg))
        return s->now;
    while (sim_step(s, limit) >= 0)
        if (pred != NULL && pred(s, arg))
            return s->now;
    s->now = limit;
    return -1;
}

static void sim_run_for(struct sim *s, int64_t ms)
{
    sim_run_until(s, s->now + ms, NULL, NULL);
}

/* What observer thinks of subject. */
static bool sees(const struct sim *s, int observer, int subject,
                 gossip_member_info_t *out)
{
    return gossip_lookup(s->nodes[observer].g, s->nodes[subject].name, out);
}

/* Every live node knows every live node, alive, and nothing else. */
static bool pred_converged(struct sim *s, void *arg)
{
    int i, j, live = 0;

    (void)arg;
    for (i = 0; i < s->n; i++)
        live += !s->nodes[i].dead;
    for (i = 0; i < s->n; i++) {
        if (s->nodes[i].dead)
            continue;
        if ((int)gossip_member_count(s->nodes[i].g) < live)
            return false;
        for (j = 0; j < s->n; j++) {
            gossip_member_info_t info;

            if (s->nodes[j].dead)
                continue;
            if (!sees(s, i, j, &info) || !info.alive ||
                info.entry.generation != s->nodes[j].generation)
                return false;
        }
    }
    return true;
}

struct subject_arg {
    int subject;
    bool alive;
    int64_t generation; /* 0: any */
    int status;         /* -1: any */
};

/* Every other live node sees subject as described. */
static bool pred_all_see(struct sim *s, void *arg)
{
    const struct subject_arg *a = arg;
    int i;

    for (i = 0; i < s->n; i++) {
        gossip_member_info_t info;

        if (i == a->subject || s->nodes[i].dead)
            continue;
        if (!sees(s, i, a->subject, &info) || info.alive != a->alive)
            return false;
        if (a->generation != 0 && info.entry.generation != a->generation)
            return false;
        if (a->status >= 0 && info.entry.status != (uint32_t)a->status)
            return false;
    }
    return true;
}

/* Some live node (other than subject) sees subject down. */
static bool pred_any_sees_down(struct sim *s, void *arg)
{
    const int *subject = arg;
    int i;

    for (i = 0; i < s->n; i++) {
        gossip_member_info_t info;

        if (i == *subject || s->nodes[i].dead)
            continue;
        if (sees(s, i, *subject, &info) && !info.alive)
            return true;
    }
    return false;
}

/* Some live node sees some other live node down. */
static bool pred_any_down(struct sim *s, void *arg)
{
    int j;

    (void)arg;
    for (j = 0; j < s->n; j++)
        if (!s->nodes[j].dead && pred_any_sees_down(s, &j))
            return true;
    return false;
}

static int64_t converge(struct sim *s)
{
    int64_t t0 = s->now, t = sim_run_until(s, t0 + 20000, pred_converged, NULL);

    assert_true(t >= 0);
    return t - t0;
}

/* ---- cluster tests ---------------------------------------------------- */

static void test_sim_five_nodes_converge(void **state)
{
    int64_t worst = 0, sum = 0;
    uint64_t seed;

    (void)state;
    for (seed = 1; seed <= 20; seed++) {
        struct sim *s = sim_new(5, seed, 0);
        int64_t t = converge(s);
        int i;

        for (i = 0; i < 5; i++) {
            assert_int_equal(gossip_member_count(s->nodes[i].g), 5);
            assert_true(gossip_epoch(s->nodes[i].g) > 1);
        }
        if (seed == 1)
            printf("   5 nodes seeded through node1: converged after %lld ms "
                   "(%lld rounds)\n", (long long)t, (long long)(t / INTERVAL));
        sum += t;
        if (t > worst)
            worst = t;
        assert_true(t <= 3000);
        sim_free(s);
    }
    printf("   over 20 seeds: mean %lld ms, worst %lld ms\n",
           (long long)(sum / 20), (long long)worst);
}

static void test_sim_steady_state_no_false_down(void **state)
{
    struct sim *s = sim_new(5, 7, 0);
    uint64_t probes = 0;
    int i;

    (void)state;
    converge(s);
    for (i = 0; i < 5; i++)
        s->nodes[i].probes_to = 0;
    /* Ten simulated minutes of a healthy cluster: nobody is ever judged
     * down (suspicions, if any, are cleared by probes). */
    assert_int_equal(sim_run_until(s, s->now + 600000, pred_any_down, NULL), -1);
    for (i = 0; i < 5; i++)
        probes += s->nodes[i].probes_to;
    printf("   healthy 5-node cluster, 600 s: 0 false downs, %llu suspicions "
           "(probes) in all\n", (unsigned long long)probes);
    sim_free(s);
}

static void test_sim_kill_detected_then_restart_supersedes(void **state)
{
    int64_t worst = 0, worst_back = 0;
    uint64_t seed;

    (void)state;
    for (seed = 1; seed <= 20; seed++) {
        struct sim *s = sim_new(5, 100 + seed, 0);
        struct subject_arg down = {2, false, 0, -1};
        struct subject_arg back;
        int64_t t_kill, t, new_gen;
        int i;

        converge(s);
        sim_run_for(s, 5000);
        t_kill = s->now;
        sim_kill(s, 2); /* node3 */
        t = sim_run_until(s, t_kill + 10000, pred_all_see, &down);
        assert_true(t >= 0);
        t -= t_kill;
        if (seed == 1)
            printf("   node3 killed: every peer marked it down after %lld ms\n",
                   (long long)t);
        if (t > worst)
            worst = t;
        assert_true(t <= 3000);
        /* and it stays down: no flapping on stale relayed heartbeats */
        sim_run_for(s, 10000);
        assert_true(pred_all_see(s, &down));

        new_gen = s->now + 1000000;
        sim_start(s, 2, new_gen);
        back = (struct subject_arg){2, true, new_gen, GOSSIP_UP};
        t = sim_run_until(s, s->now + 10000, pred_all_see, &back);
        assert_true(t >= 0);
        t -= new_gen - 1000000;
        if (t > worst_back)
            worst_back = t;
        assert_true(pred_converged(s, NULL) ||
                    sim_run_until(s, s->now + 5000, pred_converged, NULL) >= 0);
        for (i = 0; i < 5; i++) /* superseded, not duplicated */
            assert_int_equal(gossip_member_count(s->nodes[i].g), 5);
        sim_free(s);
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
static bool pred_watch_down(struct sim *s, void *arg)
{
    struct watch_arg *w = arg;
    int i;

    for (i = 0; i < s->n; i++) {
        double phi;

        if (i == w->subject || s->nodes[i].dead)
            continue;
        phi = gossip_phi(s->nodes[i].g, s->nodes[w->subject].name, s->now);
        if (phi > w->max_phi)
            w->max_phi = phi;
    }
    return pred_any_sees_down(s, &w->subject);
}

static void test_sim_jitter_never_down(void **state)
{
    struct sim *s = sim_new(5, 4242, 0);
    struct watch_arg w = {4, 0};
    int64_t t0;
    int i;

    (void)state;
    converge(s);
    /* node5's heartbeats (every message it sends) arrive 0..800 ms late and
     * out of order; it answers probes within 0..400 ms (inside the
     * 500 ms probe timeout). */
    s->nodes[w.subject].jitter = 800;
    s->nodes[w.subject].probe_jitter = 400;
    for (i = 0; i < 5; i++)
        s->nodes[i].probes_to = 0;
    t0 = s->now;
    assert_int_equal(sim_run_until(s, t0 + 60000, pred_watch_down, &w), -1);
    printf("   node5 with 0-800 ms jitter, 60 s: never marked down; max phi %.1f, "
           "%llu probes sent to it, %llu to the others\n", w.max_phi,
           (unsigned long long)s->nodes[w.subject].probes_to,
           (unsigned long long)(s->nodes[0].probes_to + s->nodes[1].probes_to +
                                s->nodes[2].probes_to + s->nodes[3].probes_to));
    sim_free(s);
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
    struct sim rng;
    int64_t t, ack_at = -1, stall_from = -1, stall_to = -1;
    size_t next = 0;
    int downs = 0;
    bool was_alive = true;

    memset(&rng, 0, sizeof(rng));
    rng.rng = seed;
    for (int k = 0; k < N; k++) {
        int64_t sent = 200 * (int64_t)(k + 1);

        hb[k].version = (uint64_t)k + 1;
        if (stall_max == 0) {
            hb[k].at = sent + sim_rand_upto(&rng, 1000);
            continue;
        }
        if (sent >= stall_to && sim_rand_upto(&rng, 19) == 0) {
            stall_from = sent;
            stall_to = sent + stall_min + sim_rand_upto(&rng, stall_max - stall_min);
        }
        hb[k].at = (sent >= stall_from && sent < stall_to ? stall_to : sent) +
                   sim_rand_upto(&rng, 20);
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
            gossip_round_t r;

            assert_int_equal(gossip_tick(g, t, &r), 0);
            if (in_probes(&r, "b") && t > 100) { /* not the first-sight one */
                (*probes)++;
                if (answer_probes)
                    ack_at = t + sim_rand_upto(&rng, 400);
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
    struct sim *s = sim_new(5, 99, 0);
    struct subject_arg down = {4, false, 0, -1};
    int64_t t;
    int i;

    (void)state;
    converge(s);
    s->nodes[4].group = 1; /* node5 cut off both ways */
    t = sim_run_until(s, s->now + 10000, pred_all_see, &down);
    assert_true(t >= 0);
    sim_run_for(s, 20000);
    for (i = 0; i < 4; i++) { /* node5 judges everyone else down too */
        gossip_member_info_t info;

        assert_true(sees(s, 4, i, &info));
        assert_false(info.alive);
    }
    s->nodes[4].group = 0;
    t = s->now;
    assert_true(sim_run_until(s, t + 10000, pred_converged, NULL) >= 0);
    printf("   node5 partitioned 20 s, then healed: all alive everywhere after "
           "%lld ms\n", (long long)(s->now - t));
    assert_true(s->now - t <= 3000);
    sim_free(s);
}

static void test_sim_leave_propagates_tombstone_not_resurrected(void **state)
{
    const int64_t ttl = 10000;
    struct sim *s = sim_new(5, 5, ttl);
    struct subject_arg leaving = {2, true, 0, GOSSIP_LEAVING};
    struct subject_arg left = {2, false, 0, GOSSIP_LEFT};
    uint64_t epoch0;
    gossip_member_t stale;
    gossip_member_info_t info;
    int64_t t, t_left;
    int i;

    (void)state;
    converge(s);
    epoch0 = gossip_epoch(s->nodes[0].g);
    stale = info_of(s->nodes[0].g, "node3").entry; /* an UP entry, soon stale */
    assert_int_equal(gossip_set_status(s->nodes[2].g, GOSSIP_LEAVING, s->now), 0);
    t = s->now;
    assert_true(sim_run_until(s, t + 5000, pred_all_see, &leaving) >= 0);
    printf("   LEAVING seen everywhere after %lld ms;", (long long)(s->now - t));
    assert_true(gossip_epoch(s->nodes[0].g) > epoch0);

    assert_int_equal(gossip_set_status(s->nodes[2].g, GOSSIP_LEFT, s->now), 0);
    t = s->now;
    assert_true(sim_run_until(s, t + 5000, pred_all_see, &left) >= 0);
    printf(" LEFT after %lld ms\n", (long long)(s->now - t));
    t_left = s->now;
    sim_run_for(s, 1000);
    sim_kill(s, 2); /* the process exits once its LEFT has spread */

    /* Stale gossip (the old UP entry) does not resurrect the tombstone. */
    assert_int_equal(gossip_on_ack2(s->nodes[0].g, &stale, 1, s->now), 0);
    info = info_of(s->nodes[0].g, "node3");
    assert_int_equal(info.entry.status, GOSSIP_LEFT);
    assert_false(info.alive);
    sim_run_for(s, ttl / 2);
    assert_true(pred_all_see(s, &left));

    /* After the TTL the tombstone goes from every view and stays gone,
     * though the nodes expire it at slightly different times. */
    sim_run_for(s, t_left + ttl + 2000 - s->now);
    for (i = 0; i < 5; i++)
        if (i != 2)
            assert_false(gossip_lookup(s->nodes[i].g, "node3", NULL));
    assert_int_equal(gossip_on_ack2(s->nodes[0].g, &stale, 1, s->now), 0);
    sim_run_for(s, ttl / 2);
    for (i = 0; i < 5; i++) {
        if (i == 2)
            continue;
        assert_false(gossip_lookup(s->nodes[i].g, "node3", NULL));
        assert_int_equal(gossip_member_count(s->nodes[i].g), 4);
    }

    /* The same name rejoining with a new generation is a new member. */
    sim_start(s, 2, s->now + 1000000);
    assert_true(sim_run_until(s, s->now + 10000, pred_converged, NULL) >= 0);
    info = info_of(s->nodes[0].g, "node3");
    assert_int_equal(info.entry.status, GOSSIP_UP);
    sim_free(s);
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
    assert_int_equal(gossip_on_syn(g, d, 2, 70, &ack), 0);
    assert_int_equal(ack.nentries, 2); /* x (gen 101 > 100) and a (lacking) */
    assert_int_equal(ack.nrequests, 1);
    assert_string_equal(ack.requests[0].name, "y");
    assert_int_equal(ack.requests[0].generation, 0);
    gossip_ack_free(&ack);

    d[0].generation = 102;
    d[0].version = 0;
    assert_int_equal(gossip_on_syn(g, d, 1, 80, &ack), 0);
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

    (void)state;
    /* a is the seed: alone, it has nobody to talk to (itself excluded). */
    assert_int_equal(gossip_tick(a, 0, &r), 0);
    assert_int_equal(r.ntargets, 0);
    assert_int_equal(r.nsyn, 1);
    gossip_round_free(&r);
    /* b knows only the seed's address: it targets it, name unknown. */
    assert_int_equal(gossip_tick(b, 0, &r), 0);
    assert_int_equal(r.ntargets, 1);
    assert_string_equal(r.targets[0].addr.host, "10.0.0.1");
    assert_int_equal(r.targets[0].addr.port, 7000);
    assert_string_equal(r.targets[0].name, "");
    assert_int_equal(gossip_on_syn(a, r.syn, r.nsyn, 5, &ack), 0);
    assert_int_equal(ack.nentries, 1);  /* a itself */
    assert_int_equal(ack.nrequests, 1); /* b */
    gossip_round_free(&r);
    assert_int_equal(gossip_on_ack(b, &ack, 10, &ack2), 0);
    assert_int_equal(ack2.nentries, 1);
    assert_string_equal(ack2.entries[0].name, "b");
    assert_int_equal(gossip_on_ack2(a, ack2.entries, ack2.nentries, 15), 0);
    gossip_ack_free(&ack);
    gossip_ack2_free(&ack2);
    assert_int_equal(gossip_member_count(a), 2);
    assert_int_equal(gossip_member_count(b), 2);
    assert_true(info_of(a, "b").alive);
    assert_true(info_of(b, "a").alive);
    /* Now b's partner is a member; the seed is the same address, so it is
     * not sent twice. */
    assert_int_equal(gossip_tick(b, 200, &r), 0);
    assert_int_equal(r.ntargets, 1);
    assert_string_equal(r.targets[0].name, "a");
    gossip_round_free(&r);
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
    ack.entries = two;
    ack.nentries = 2;
    assert_int_equal(gossip_on_ack(g, &ack, 1, &ack2), -EINVAL);
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
    assert_int_equal(gossip_on_syn(g, d, 2, 1, &ack), -EINVAL);
    assert_null(ack.entries);
    snprintf(d[1].name, sizeof(d[1].name), "y");
    d[1].generation = -1;
    assert_int_equal(gossip_on_syn(g, d, 2, 1, &ack), -EINVAL);
    d[1].generation = 1;
    memset(d[1].name, 'q', sizeof(d[1].name));
    assert_int_equal(gossip_on_syn(g, d, 2, 1, &ack), -EINVAL);
    assert_int_equal(gossip_on_syn(g, NULL, 3, 1, &ack), -EINVAL);
    memset(&ack, 0, sizeof(ack));
    ack.requests = d;
    ack.nrequests = 2;
    e = entry("good", 4, 7, 1, GOSSIP_UP);
    ack.entries = &e;
    ack.nentries = 1;
    assert_int_equal(gossip_on_ack(g, &ack, 1, &ack2), -EINVAL);
    assert_false(gossip_lookup(g, "good", NULL)); /* entries not applied */
    assert_int_equal(gossip_on_ack(g, NULL, 1, &ack2), -EINVAL);

    /* Too many items in one message. */
    dmany = calloc(GOSSIP_MAX_MEMBERS + 1, sizeof(*dmany));
    assert_non_null(dmany);
    for (i = 0; i <= GOSSIP_MAX_MEMBERS; i++) {
        snprintf(dmany[i].name, sizeof(dmany[i].name), "n%zu", i);
        dmany[i].generation = 1;
    }
    assert_int_equal(gossip_on_syn(g, dmany, GOSSIP_MAX_MEMBERS + 1, 1, &ack), -EINVAL);
    assert_int_equal(gossip_on_syn(g, dmany, GOSSIP_MAX_MEMBERS, 1, &ack), 0);
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
    cfg.seeds = seeds;
    cfg.nseeds = 1;
    assert_int_equal(gossip_new(&self, &cfg, &g), 0); /* defaults apply */
    gossip_free(g);
    gossip_free(NULL);
    gossip_round_free(NULL);
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
        cmocka_unit_test(test_sim_five_nodes_converge),
        cmocka_unit_test(test_sim_steady_state_no_false_down),
        cmocka_unit_test(test_sim_kill_detected_then_restart_supersedes),
        cmocka_unit_test(test_jittery_heartbeats_answering_probes_never_down),
        cmocka_unit_test(test_sim_jitter_never_down),
        cmocka_unit_test(test_sim_partition_heals),
        cmocka_unit_test(test_sim_leave_propagates_tombstone_not_resurrected),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
