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
 * to smooth them, for 60 s: with `stalls` false each is 0..1000 ms late
 * (uniform); with `stalls` true they are on time (0..20 ms) except that
 * about every 4 s a stall of 600..1000 ms holds back every heartbeat sent
 * during it, so the detector, used to regular beats, sees sudden ~1 s
 * gaps.  Probes are answered within 0..400 ms when answer_probes is set.
 * Returns how many times the member was judged down.
 */
static int run_direct_jitter(bool stalls, bool answer_probes, uint64_t seed,
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
        if (!stalls) {
            hb[k].at = sent + sim_rand_upto(&rng, 1000);
            continue;
        }
        if (sent >= stall_to && sim_rand_upto(&rng, 19) == 0) {
            stall_from = sent;
            stall_to = sent + 600 + sim_rand_upto(&rng, 400);
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
    unsigned probes, total[2] = {0, 0}, seed;
    double max_phi, worst[2] = {0, 0};
    int downs = 0, mode;

    (void)state;
    for (mode = 0; mode < 2; mode++) {
        for (seed = 1; seed <= 10; seed++) {
            assert_int_equal(run_direct_jitter(mode, true, seed, &probes, &max_phi), 0);
            total[mode] += probes;
            if (max_phi > worst[mode])
                worst[mode] = max_phi;
        }
    }
    for (seed = 1; seed <= 10; seed++)
        downs += run_direct_jitter(true, false, seed, &probes, &max_phi);
    printf("   direct heartbeats, 10 x 60 s each, probes answered: never down.\n"
           "     uniformly 0-1000 ms late: %u suspicions, max phi %.1f\n"
           "     regular with 0.6-1 s stalls: %u suspicions, max phi %.1f\n"
           "     the same stalls, probes ignored: down %d times\n",
           total[0], worst[0], total[1], worst[1], downs);
    assert_true(total[1] > 0);
    assert_true(downs > 0);
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
