/*
 * gossip_sim.c - the simulated cluster (see gossip_sim.h).
 *
 * Organisation: one event heap ordered by (time, sequence) holds frames in
 * flight and node ticks; gsim_run_until() pops the earliest event, applies
 * it (a tick runs gossip_tick() and sends what it asks; a frame is parsed,
 * decoded by the daemon's message table (server/msg.c) and handed to the
 * gossip_on_*() call its type and kind name) and repeats.  A frame in flight carries the requester's context (whom a SYN,
 * probe or mail was sent to), as the daemon's pending requests do.
 *
 * Invariants: the heap's events are never earlier than s->now; a tick event
 * names the incarnation of its node, so a tick of a killed or restarted
 * node is dropped when popped.
 */
#include "gossip_sim.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/frame.h"
#include "../../server/msg.h"

#define PEER_PORT 7000

enum ev_kind { EV_TICK, EV_FRAME };

struct event {
    int64_t at;
    uint64_t seq;
    enum ev_kind kind;
    int from, to;            /* EV_TICK: to is the node */
    uint64_t incarnation;    /* EV_TICK */
    uint8_t *bytes;          /* EV_FRAME: the whole frame */
    size_t len;
    gossip_target_t target;  /* requester's context: whom it sent to */
    uint64_t mail_version;
};

struct node {
    gossip_t *g;
    char name[GOSSIP_NAME_MAX + 1];
    char host[GOSSIP_HOST_MAX + 1];
    bool started, dead;
    int group;
    int64_t jitter, probe_jitter;
    int64_t generation;
    uint64_t incarnation;
    uint64_t probes_to;
};

struct gsim {
    gsim_config_t cfg;
    struct node *nodes;
    int slots;
    struct event *heap;
    size_t nheap, cap;
    int64_t now, checked_at;
    uint64_t seq, rng;
    gossip_addr_t seed;
    gsim_traffic_t traffic;
    msgpack_sbuffer body, frame;
};

/* ---- helpers ---- */

static uint64_t sim_rand(gsim_t *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int64_t rand_upto(gsim_t *s, int64_t max)
{
    return max <= 0 ? 0 : (int64_t)(sim_rand(s) % (uint64_t)(max + 1));
}

static bool ev_before(const struct event *a, const struct event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(gsim_t *s, struct event ev)
{
    size_t i;

    if (s->nheap == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->heap = realloc(s->heap, s->cap * sizeof(*s->heap));
        if (s->heap == NULL)
            abort();
    }
    ev.seq = s->seq++;
    i = s->nheap++;
    while (i > 0 && ev_before(&ev, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = ev;
}

static struct event heap_pop(gsim_t *s)
{
    struct event top = s->heap[0], last = s->heap[--s->nheap];
    size_t i = 0;

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= s->nheap)
            break;
        if (c + 1 < s->nheap && ev_before(&s->heap[c + 1], &s->heap[c]))
            c++;
        if (!ev_before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->nheap > 0)
        s->heap[i] = last;
    return top;
}

static int node_at(const gsim_t *s, const gossip_addr_t *a)
{
    unsigned x, y;
    int i;

    if (a->port != PEER_PORT || sscanf(a->host, "10.0.%u.%u", &x, &y) != 2)
        return -1;
    i = (int)(x * 256 + y) - 1;
    return i >= 0 && i < s->cfg.capacity && s->nodes[i].started ? i : -1;
}

static bool can_talk(const gsim_t *s, int a, int b)
{
    return !s->nodes[a].dead && !s->nodes[b].dead &&
           s->nodes[a].group == s->nodes[b].group;
}

/* ---- sending ---- */

/* Frames s->body and queues it from -> to, or counts it lost. */
static void send_frame(gsim_t *s, int from, int to, uint8_t type, uint8_t kind,
                       const gossip_target_t *target, uint64_t mail_version,
                       int64_t extra)
{
    struct event ev;

    if (frame_build(&s->frame, type, kind, s->seq, 1000, s->body.data, s->body.size,
                    NULL) != 0)
        abort();
    s->traffic.frames++;
    s->traffic.bytes += s->frame.size;
    s->traffic.frames_by_type[type % GSIM_TYPES]++;
    s->traffic.bytes_by_type[type % GSIM_TYPES] += s->frame.size;
    if (!can_talk(s, from, to)) {
        s->traffic.dropped++;
        return;
    }
    if (s->cfg.loss > 0 && (double)(sim_rand(s) >> 11) * 0x1.0p-53 < s->cfg.loss) {
        s->traffic.lost++;
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.kind = EV_FRAME;
    ev.from = from;
    ev.to = to;
    ev.at = s->now + 1 + rand_upto(s, 4) + rand_upto(s, extra);
    ev.bytes = malloc(s->frame.size);
    if (ev.bytes == NULL)
        abort();
    memcpy(ev.bytes, s->frame.data, s->frame.size);
    ev.len = s->frame.size;
    if (target != NULL)
        ev.target = *target;
    ev.mail_version = mail_version;
    heap_push(s, ev);
}

/* Packs m, the body of (type, dir), into s->body with the daemon's table. */
static void pack(gsim_t *s, uint8_t type, enum msg_dir dir, const void *m)
{
    if (msg_encode(&s->body, type, dir, m) != 0)
        abort();
}

static void send_syn(gsim_t *s, int from, int to, const gossip_syn_t *syn,
                     const gossip_target_t *target)
{
    pack(s, MSG_GOSSIP_SYN, MSG_REQ, syn);
    send_frame(s, from, to, MSG_GOSSIP_SYN, FRAME_REQUEST, target, 0, s->nodes[from].jitter);
}

static void tick(gsim_t *s, int i)
{
    struct node *nd = &s->nodes[i];
    gossip_round_t r;
    msg_ping_t ping;
    size_t k;

    if (gossip_tick(nd->g, s->now, &r) != 0)
        abort();
    for (k = 0; k < r.ntargets; k++) {
        int j = node_at(s, &r.targets[k].addr);

        if (j >= 0 && j != i)
            send_syn(s, i, j, &r.syn, &r.targets[k]);
    }
    for (k = 0; k < r.nprobes; k++) {
        int j = node_at(s, &r.probes[k].addr);

        if (j < 0 || j == i)
            continue;
        s->nodes[j].probes_to++;
        snprintf(ping.name, sizeof(ping.name), "%s", nd->name);
        pack(s, MSG_PING, MSG_REQ, &ping);
        send_frame(s, i, j, MSG_PING, FRAME_REQUEST, &r.probes[k], 0, 0);
    }
    for (k = 0; k < r.nmail; k++) {
        int j = node_at(s, &r.mail[k].addr);

        if (j < 0 || j == i)
            continue;
        pack(s, MSG_GOSSIP_MAIL, MSG_REQ, &r.mail_entry);
        send_frame(s, i, j, MSG_GOSSIP_MAIL, FRAME_REQUEST, &r.mail[k],
                   r.mail_entry.version, nd->jitter);
    }
    gossip_round_free(&r);
}

/* ---- receiving ---- */

static void deliver(gsim_t *s, struct event *ev)
{
    struct node *to = &s->nodes[ev->to];
    enum msg_dir dir;
    msg_any_t m;
    frame_t f;
    size_t used;

    if (!can_talk(s, ev->from, ev->to)) {
        s->traffic.dropped++;
        return;
    }
    if (frame_parse(ev->bytes, ev->len, FRAME_MAX_DEFAULT, NULL, &f, &used) != 1 ||
        used != ev->len) {
        s->traffic.bad++;
        return;
    }
    dir = f.kind == FRAME_RESPONSE ? MSG_REP : MSG_REQ;
    if (msg_decode(f.type, dir, &f.body, &m) != 0) {
        s->traffic.bad++;
        frame_release(&f);
        return;
    }
    switch (f.type) {
    case MSG_GOSSIP_SYN: {
        gossip_ack_t ack;

        if (gossip_on_syn(to->g, &m.syn, s->now, &ack) != 0) {
            s->traffic.refused++;
            break;
        }
        pack(s, MSG_GOSSIP_ACK, MSG_REP, &ack);
        gossip_ack_free(&ack);
        send_frame(s, ev->to, ev->from, MSG_GOSSIP_ACK, FRAME_RESPONSE, &ev->target, 0,
                   to->jitter);
        break;
    }
    case MSG_GOSSIP_ACK: {
        gossip_ack2_t ack2;
        gossip_syn_t syn2;

        if (gossip_on_ack(to->g, &m.ack, s->now, &ack2, &syn2) != 0) {
            s->traffic.refused++;
            break;
        }
        if (ack2.nentries > 0) {
            pack(s, MSG_GOSSIP_ACK2, MSG_REQ, &ack2);
            send_frame(s, ev->to, ev->from, MSG_GOSSIP_ACK2, FRAME_ONEWAY, NULL, 0,
                       to->jitter);
        }
        if (syn2.nbuckets > 0)
            send_syn(s, ev->to, ev->from, &syn2, &ev->target);
        gossip_ack2_free(&ack2);
        gossip_syn_free(&syn2);
        break;
    }
    case MSG_GOSSIP_ACK2:
        if (gossip_on_ack2(to->g, m.ack2.entries, m.ack2.nentries, s->now) != 0)
            s->traffic.refused++;
        break;
    case MSG_PING:
        if (dir == MSG_REQ) {
            msg_ping_t pong;

            snprintf(pong.name, sizeof(pong.name), "%s", to->name);
            pack(s, MSG_PING, MSG_REP, &pong);
            send_frame(s, ev->to, ev->from, MSG_PING, FRAME_RESPONSE, &ev->target, 0,
                       to->probe_jitter);
        } else if (strcmp(m.ping.name, ev->target.name) == 0) {
            gossip_on_probe_ack(to->g, m.ping.name, s->now);
        }
        break;
    case MSG_GOSSIP_MAIL:
        if (dir == MSG_REQ) {
            gossip_digest_t me;

            if (gossip_on_mail(to->g, &m.mail, s->now, &me) < 0) {
                s->traffic.refused++;
                break;
            }
            pack(s, MSG_GOSSIP_MAIL, MSG_REP, &me);
            send_frame(s, ev->to, ev->from, MSG_GOSSIP_MAIL, FRAME_RESPONSE, &ev->target,
                       ev->mail_version, to->jitter);
        } else {
            gossip_on_mail_ack(to->g, &ev->target, ev->mail_version, &m.mail_ack, s->now);
        }
        break;
    default:
        s->traffic.bad++;
        break;
    }
    msg_free(f.type, dir, &m);
    frame_release(&f);
}

/* ---- life cycle ---- */

static gossip_member_t self_entry(const struct node *nd, int64_t generation)
{
    gossip_member_t e;

    memset(&e, 0, sizeof(e));
    snprintf(e.name, sizeof(e.name), "%s", nd->name);
    snprintf(e.host, sizeof(e.host), "%s", nd->host);
    e.client_port = 11211;
    e.peer_port = PEER_PORT;
    e.generation = generation;
    e.status = GOSSIP_UP;
    return e;
}

void gsim_start(gsim_t *s, int i, int64_t generation)
{
    struct node *nd = &s->nodes[i];
    gossip_member_t self = self_entry(nd, generation);
    gossip_config_t cfg;
    struct event ev;

    assert(i >= 0 && i < s->cfg.capacity);
    gossip_free(nd->g);
    nd->g = NULL;
    memset(&cfg, 0, sizeof(cfg));
    cfg.interval_ms = GSIM_INTERVAL;
    cfg.phi_threshold = 8;
    cfg.left_ttl_ms = s->cfg.left_ttl_ms;
    cfg.rng_seed = 1000003u * (uint64_t)(i + 1) + (uint64_t)generation + s->cfg.seed;
    cfg.seeds = &s->seed;
    cfg.nseeds = 1;
    cfg.fd_window = s->cfg.fd_window;
    cfg.mode = s->cfg.mode;
    if (gossip_new(&self, &cfg, &nd->g) != 0)
        abort();
    nd->started = true;
    nd->dead = false;
    nd->generation = generation;
    nd->incarnation++;
    if (i >= s->slots)
        s->slots = i + 1;
    memset(&ev, 0, sizeof(ev));
    ev.kind = EV_TICK;
    ev.to = i;
    ev.incarnation = nd->incarnation;
    ev.at = s->now + rand_upto(s, GSIM_INTERVAL - 1);
    heap_push(s, ev);
}

gsim_t *gsim_new(const gsim_config_t *cfg)
{
    gsim_t *s;
    int i;

    if (cfg->nodes < 1 || cfg->nodes > (int)GOSSIP_MAX_MEMBERS ||
        cfg->capacity > (int)GOSSIP_MAX_MEMBERS || cfg->loss < 0 || cfg->loss >= 1)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cfg = *cfg;
    if (s->cfg.capacity < cfg->nodes)
        s->cfg.capacity = cfg->nodes;
    s->nodes = calloc((size_t)s->cfg.capacity, sizeof(*s->nodes));
    if (s->nodes == NULL) {
        free(s);
        return NULL;
    }
    for (i = 0; i < s->cfg.capacity; i++) {
        snprintf(s->nodes[i].name, sizeof(s->nodes[i].name), "node%d", i + 1);
        snprintf(s->nodes[i].host, sizeof(s->nodes[i].host), "10.0.%d.%d",
                 (i + 1) / 256, (i + 1) % 256);
    }
    s->rng = cfg->seed;
    s->checked_at = INT64_MIN;
    snprintf(s->seed.host, sizeof(s->seed.host), "%s", s->nodes[0].host);
    s->seed.port = PEER_PORT;
    msgpack_sbuffer_init(&s->body);
    msgpack_sbuffer_init(&s->frame);
    for (i = 0; i < cfg->nodes; i++)
        gsim_start(s, i, 1000000 + i);
    if (cfg->warm) {
        /* As after convergence: every node told every other's entry. */
        gossip_member_t *all = malloc((size_t)cfg->nodes * sizeof(*all));

        if (all == NULL)
            abort();
        for (i = 0; i < cfg->nodes; i++)
            all[i] = self_entry(&s->nodes[i], s->nodes[i].generation);
        for (i = 0; i < cfg->nodes; i++)
            if (gossip_on_ack2(s->nodes[i].g, all, (size_t)cfg->nodes, 0) != 0)
                abort();
        free(all);
    }
    return s;
}

void gsim_free(gsim_t *s)
{
    int i;

    if (s == NULL)
        return;
    while (s->nheap > 0) {
        struct event ev = heap_pop(s);

        free(ev.bytes);
    }
    free(s->heap);
    for (i = 0; i < s->cfg.capacity; i++)
        gossip_free(s->nodes[i].g);
    free(s->nodes);
    msgpack_sbuffer_destroy(&s->body);
    msgpack_sbuffer_destroy(&s->frame);
    free(s);
}

void gsim_kill(gsim_t *s, int i)
{
    s->nodes[i].dead = true;
}

void gsim_set_group(gsim_t *s, int i, int group)
{
    s->nodes[i].group = group;
}

void gsim_set_jitter(gsim_t *s, int i, int64_t jitter, int64_t probe_jitter)
{
    s->nodes[i].jitter = jitter;
    s->nodes[i].probe_jitter = probe_jitter;
}

/* ---- running ---- */

static bool check(gsim_t *s, gsim_pred pred, void *arg)
{
    if (pred == NULL)
        return false;
    if (s->cfg.check_ms > 0 && s->now < s->checked_at + s->cfg.check_ms)
        return false;
    s->checked_at = s->now;
    return pred(s, arg);
}

int64_t gsim_run_until(gsim_t *s, int64_t limit, gsim_pred pred, void *arg)
{
    s->checked_at = INT64_MIN;
    if (check(s, pred, arg))
        return s->now;
    while (s->nheap > 0 && s->heap[0].at <= limit) {
        struct event ev = heap_pop(s);
        bool more = s->nheap > 0 && s->heap[0].at == ev.at;

        s->now = ev.at;
        if (ev.kind == EV_TICK) {
            struct node *nd = &s->nodes[ev.to];

            if (!nd->dead && nd->incarnation == ev.incarnation) {
                tick(s, ev.to);
                ev.at += GSIM_INTERVAL;
                heap_push(s, ev);
            }
        } else {
            deliver(s, &ev);
            free(ev.bytes);
        }
        /* Every event of one time first, then the predicate. */
        if (!more && check(s, pred, arg))
            return s->now;
    }
    s->now = limit;
    return -1;
}

void gsim_run_for(gsim_t *s, int64_t ms)
{
    gsim_run_until(s, s->now + ms, NULL, NULL);
}

/* ---- views ---- */

int64_t gsim_now(const gsim_t *s) { return s->now; }
int gsim_slots(const gsim_t *s) { return s->slots; }
gossip_t *gsim_gossip(gsim_t *s, int i) { return s->nodes[i].g; }
const char *gsim_name(const gsim_t *s, int i) { return s->nodes[i].name; }
bool gsim_live(const gsim_t *s, int i) { return s->nodes[i].started && !s->nodes[i].dead; }
int64_t gsim_generation(const gsim_t *s, int i) { return s->nodes[i].generation; }
uint64_t gsim_probes_to(const gsim_t *s, int i) { return s->nodes[i].probes_to; }

void gsim_reset_probes(gsim_t *s)
{
    for (int i = 0; i < s->cfg.capacity; i++)
        s->nodes[i].probes_to = 0;
}

void gsim_traffic(const gsim_t *s, gsim_traffic_t *out)
{
    *out = s->traffic;
}

void gsim_reset_traffic(gsim_t *s)
{
    memset(&s->traffic, 0, sizeof(s->traffic));
}

bool gsim_converged(gsim_t *s, void *arg)
{
    int i, j, live = 0;

    (void)arg;
    for (i = 0; i < s->slots; i++)
        live += gsim_live(s, i);
    for (i = 0; i < s->slots; i++) {
        if (!gsim_live(s, i))
            continue;
        if ((int)gossip_member_count(s->nodes[i].g) < live)
            return false;
        for (j = 0; j < s->slots; j++) {
            gossip_member_info_t info;

            if (!gsim_live(s, j))
                continue;
            if (!gossip_lookup(s->nodes[i].g, s->nodes[j].name, &info) || !info.alive ||
                info.entry.generation != s->nodes[j].generation)
                return false;
        }
    }
    return true;
}

static bool sees_as(gsim_t *s, int i, const gsim_view_t *v)
{
    gossip_member_info_t info;

    if (!gossip_lookup(s->nodes[i].g, s->nodes[v->subject].name, &info) ||
        info.alive != v->alive)
        return false;
    if (v->generation != 0 && info.entry.generation != v->generation)
        return false;
    return v->status < 0 || info.entry.status == (uint32_t)v->status;
}

bool gsim_all_see(gsim_t *s, void *view)
{
    const gsim_view_t *v = view;

    for (int i = 0; i < s->slots; i++)
        if (i != v->subject && gsim_live(s, i) && !sees_as(s, i, v))
            return false;
    return true;
}

int gsim_count_see(gsim_t *s, const gsim_view_t *v)
{
    int k = 0;

    for (int i = 0; i < s->slots; i++)
        k += i != v->subject && gsim_live(s, i) && sees_as(s, i, v);
    return k;
}

/* ---- the scale scenario ---- */

/* Rounds from now until pred holds, or -1. */
static double rounds_until(gsim_t *s, int64_t limit_ms, gsim_pred pred, void *arg)
{
    int64_t t0 = s->now, t = gsim_run_until(s, t0 + limit_ms, pred, arg);

    return t < 0 ? -1.0 : (double)(t - t0) / GSIM_INTERVAL;
}

bool gsim_scale_run(gsim_scale_t *sc)
{
    /* 100 detector samples per member, not 1000: a digest-mode node of
     * 1000 gets a sample of every member every round, and a million full
     * windows would not fit a test machine. */
    gsim_config_t cfg = {.nodes = sc->nodes, .capacity = sc->nodes + 1, .seed = sc->seed,
                         .loss = sc->loss, .mode = sc->mode, .warm = true, .check_ms = 20,
                         .fd_window = 100};
    int64_t warmup = sc->warmup_ms ? sc->warmup_ms : 20000;
    int64_t steady = sc->steady_ms ? sc->steady_ms : 10000;
    int64_t settle = sc->settle_ms ? sc->settle_ms : 5000;
    int64_t limit = sc->limit_ms ? sc->limit_ms : 60000;
    int n = sc->nodes, leaver = n / 2, victim = n / 3;
    gsim_view_t join, left, down;
    int64_t t0;
    gsim_t *s;

    if (n < 4 || (s = gsim_new(&cfg)) == NULL)
        return false;
    gsim_run_for(s, warmup);
    gsim_reset_traffic(s);
    gsim_run_for(s, steady);
    gsim_traffic(s, &sc->quiet);
    sc->quiet_bps = (double)sc->quiet.bytes / n / ((double)steady / 1000);

    gsim_reset_traffic(s);
    t0 = s->now;
    gsim_start(s, n, s->now + 5000000);
    join = (gsim_view_t){n, true, GOSSIP_UP, gsim_generation(s, n)};
    sc->join_rounds = rounds_until(s, limit, gsim_all_see, &join);
    gsim_run_for(s, settle);

    gossip_set_status(s->nodes[leaver].g, GOSSIP_LEFT, s->now);
    left = (gsim_view_t){leaver, false, GOSSIP_LEFT, 0};
    sc->leave_rounds = rounds_until(s, limit, gsim_all_see, &left);
    gsim_run_for(s, 1000);
    gsim_kill(s, leaver); /* it exits once its LEFT has spread */
    gsim_run_for(s, settle);

    gsim_kill(s, victim);
    down = (gsim_view_t){victim, false, -1, 0};
    sc->fail_rounds = rounds_until(s, limit, gsim_all_see, &down);
    gsim_run_for(s, settle);
    gsim_traffic(s, &sc->events);
    /* n - 1 nodes were up on average: n, plus the joiner, less the leaver
     * and the killed node for parts of the time. */
    sc->event_bps = (double)sc->events.bytes / (n - 1) / ((double)(s->now - t0) / 1000);
    gsim_free(s);
    return true;
}
