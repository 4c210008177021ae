/*
 * gossip.c - membership view, gossip rounds and liveness (see gossip.h).
 *
 * Organisation, top to bottom: helpers (clock, PRNG, validation, lookup);
 * the merge of incoming entries, split in two phases: plan_entries()
 * validates the whole message and allocates every new member up front,
 * commit_entries() applies it and cannot fail, so a message is applied
 * completely or not at all; gossip_new()/free(); the round (gossip_tick():
 * detector, tombstones, targets, SYN); the three message handlers; probes,
 * owner actions and views.  The per-member failure detector is in phi.c.
 *
 * Invariants: members[0 .. n-1] is sorted by name (strcmp), names distinct,
 * self among them; every non-self member owns a gossip_fd_t; a LEFT member
 * is never alive nor probing; probing implies alive; graves[] holds expired
 * LEFT tombstones (not in members[]) and its names are not in members[];
 * g->now never decreases.  Only self's entry is changed locally, and only by
 * gossip_tick() (heartbeat) and gossip_set_status().
 */
#include "gossip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hash.h"

#define DEF_PHI_THRESHOLD 8.0
#define DEF_INTERVAL_MS 200
#define DEF_LEFT_TTL_MS (24LL * 3600 * 1000)
#define MAX_INTERVAL_MS 1000000 /* keeps 10 * interval a valid fd sample cap */
#define MIN_PROBE_TIMEOUT_MS 500

struct gmember {
    gossip_member_t e;
    gossip_fd_t *fd;    /* NULL for self */
    bool is_self;
    bool alive;
    bool confirm;       /* newly seen: probe it on the next tick */
    bool probing;       /* a probe is outstanding since probe_sent */
    int64_t probe_sent;
    int64_t left_at;    /* local time it was first seen LEFT */
    uint64_t stamp;     /* scratch for gossip_on_syn() */
};

/* An expired LEFT tombstone: forgotten at forget_at; until then entries of
 * that name no newer than (generation, version) are ignored, so two nodes
 * expiring the same tombstone a little apart do not gossip it back. */
struct grave {
    char name[GOSSIP_NAME_MAX + 1];
    int64_t generation;
    uint64_t version;
    int64_t forget_at;
};

struct gossip {
    double phi_threshold;
    int64_t interval;
    int64_t probe_timeout;
    int64_t left_ttl;
    gossip_addr_t seeds[GOSSIP_MAX_SEEDS];
    size_t nseeds;
    uint64_t rng;
    uint64_t epoch;
    uint64_t stamp;
    int64_t now;
    struct gmember *self;
    size_t n;
    struct gmember *members[GOSSIP_MAX_MEMBERS];
    size_t ngraves;
    struct grave graves[GOSSIP_MAX_MEMBERS];
};

/* ---- helpers ---------------------------------------------------------- */

/* The module's clock: the latest now_ms seen, so time never runs back. */
static int64_t clock_at(gossip_t *g, int64_t now_ms)
{
    if (now_ms > g->now)
        g->now = now_ms;
    return g->now;
}

/* splitmix64: small, fast, and good enough to pick gossip partners. */
static uint64_t rng_next(gossip_t *g)
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unit(gossip_t *g)
{
    return (double)(rng_next(g) >> 11) * 0x1.0p-53;
}

static size_t rng_below(gossip_t *g, size_t n)
{
    return (size_t)(rng_next(g) % n);
}

/* A NUL-terminated name of 1..GOSSIP_NAME_MAX printable, non-space ASCII
 * bytes within the first cap bytes of s. */
static bool valid_name(const char *s, size_t cap)
{
    size_t len = strnlen(s, cap), i;

    if (len == 0 || len > GOSSIP_NAME_MAX || len == cap)
        return false;
    for (i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static bool valid_host(const char *s)
{
    struct in_addr a;
    size_t len = strnlen(s, GOSSIP_HOST_MAX + 1);

    return len > 0 && len <= GOSSIP_HOST_MAX && inet_pton(AF_INET, s, &a) == 1;
}

static bool valid_entry(const gossip_member_t *e)
{
    return valid_name(e->name, sizeof(e->name)) && valid_host(e->host) &&
           e->client_port != 0 && e->peer_port != 0 && e->generation > 0 &&
           e->status <= GOSSIP_LEFT;
}

/* -1, 0, 1 as (g1, v1) is older than, equal to, newer than (g2, v2). */
static int cmp_gv(int64_t g1, uint64_t v1, int64_t g2, uint64_t v2)
{
    if (g1 != g2)
        return g1 < g2 ? -1 : 1;
    if (v1 != v2)
        return v1 < v2 ? -1 : 1;
    return 0;
}

/* Index of `name` in members[], or of where it would be inserted. */
static size_t find_pos(const gossip_t *g, const char *name, bool *found)
{
    size_t lo = 0, hi = g->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->members[mid]->e.name, name);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct gmember *find(const gossip_t *g, const char *name)
{
    bool found;
    size_t i = find_pos(g, name, &found);

    return found ? g->members[i] : NULL;
}

static struct grave *find_grave(gossip_t *g, const char *name)
{
    size_t i;

    for (i = 0; i < g->ngraves; i++)
        if (strcmp(g->graves[i].name, name) == 0)
            return &g->graves[i];
    return NULL;
}

static void drop_grave(gossip_t *g, struct grave *gr)
{
    *gr = g->graves[--g->ngraves];
}

static bool addr_equal(const char *host, uint16_t port, const gossip_addr_t *a)
{
    return port == a->port && strcmp(host, a->host) == 0;
}

static bool is_seed(const gossip_t *g, const char *host, uint16_t port)
{
    size_t i;

    for (i = 0; i < g->nseeds; i++)
        if (addr_equal(host, port, &g->seeds[i]))
            return true;
    return false;
}

static void set_target(gossip_target_t *t, const struct gmember *m)
{
    memcpy(t->name, m->e.name, sizeof(t->name));
    memcpy(t->addr.host, m->e.host, sizeof(t->addr.host));
    t->addr.port = m->e.peer_port;
}

static void make_digest(gossip_digest_t *d, const struct gmember *m)
{
    memcpy(d->name, m->e.name, sizeof(d->name));
    d->generation = m->e.generation;
    d->version = m->e.version;
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 0 if the n names (each at base + i * stride) are distinct, -EINVAL if
 * not, -ENOMEM. */
static int check_distinct(const void *base, size_t n, size_t stride)
{
    const char **names;
    size_t i;
    int rc = 0;

    if (n < 2)
        return 0;
    names = malloc(n * sizeof(*names));
    if (names == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++)
        names[i] = (const char *)base + i * stride;
    qsort(names, n, sizeof(*names), cmp_str_ptr);
    for (i = 1; i < n && rc == 0; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            rc = -EINVAL;
    free(names);
    return rc;
}

static int check_digests(const gossip_digest_t *d, size_t n)
{
    size_t i;

    if (n > 0 && d == NULL)
        return -EINVAL;
    if (n > GOSSIP_MAX_MEMBERS)
        return -EINVAL;
    for (i = 0; i < n; i++)
        if (!valid_name(d[i].name, sizeof(d[i].name)) || d[i].generation < 0)
            return -EINVAL;
    return check_distinct(d, n, sizeof(*d));
}

static void free_member(struct gmember *m)
{
    if (m != NULL) {
        gossip_fd_free(m->fd);
        free(m);
    }
}

static struct gmember *alloc_member(const gossip_t *g)
{
    struct gmember *m = calloc(1, sizeof(*m));

    if (m == NULL)
        return NULL;
    if (gossip_fd_new(GOSSIP_FD_WINDOW, (double)g->interval / 2,
                      10 * g->interval, &m->fd) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

/* ---- merging entries -------------------------------------------------- */

/* A heartbeat (or probe answer) from m arrived: the suspicion is over. */
static void note_arrival(gossip_t *g, struct gmember *m, int64_t now)
{
    gossip_fd_heartbeat(m->fd, now);
    m->probing = false;
    m->confirm = false;
    if (!m->alive) {
        m->alive = true;
        g->epoch++;
    }
}

/* m takes entry e as a new incarnation (first sight or newer generation):
 * the detector starts over, as for a node never seen. */
static void adopt(gossip_t *g, struct gmember *m, const gossip_member_t *e,
                  int64_t now)
{
    m->e = *e;
    m->probing = false;
    m->alive = e->status != GOSSIP_LEFT;
    m->confirm = m->alive;
    m->left_at = now;
    gossip_fd_reset(m->fd, 2 * g->interval, now);
    g->epoch++;
}

/* Applies e to the existing member m (never self). */
static void merge_one(gossip_t *g, struct gmember *m, const gossip_member_t *e,
                      int64_t now)
{
    bool changed;

    if (cmp_gv(e->generation, e->version, m->e.generation, m->e.version) <= 0)
        return; /* stale or known */
    if (e->generation > m->e.generation) {
        adopt(g, m, e, now);
        return;
    }
    changed = e->status != m->e.status || e->client_port != m->e.client_port ||
              e->peer_port != m->e.peer_port ||
              strcmp(e->host, m->e.host) != 0;
    if (e->status == GOSSIP_LEFT && m->e.status != GOSSIP_LEFT)
        m->left_at = now;
    m->e = *e;
    if (e->status == GOSSIP_LEFT) {
        changed |= m->alive;
        m->alive = m->probing = m->confirm = false;
    } else {
        note_arrival(g, m, now);
    }
    if (changed)
        g->epoch++;
}

/*
 * Phase 1 of applying a message: validates all n entries and allocates a
 * member for every entry that will be inserted (slot[i], NULL otherwise).
 * Returns 0 with *slotp set (caller passes it to commit_entries()), or
 * -EINVAL / -ENOMEM having changed and kept nothing.
 */
static int plan_entries(gossip_t *g, const gossip_member_t *e, size_t n,
                        struct gmember ***slotp)
{
    struct gmember **slot;
    size_t i, nnew = 0;
    int rc;

    *slotp = NULL;
    if (n == 0)
        return 0;
    if (e == NULL || n > GOSSIP_MAX_MEMBERS)
        return -EINVAL;
    for (i = 0; i < n; i++)
        if (!valid_entry(&e[i]))
            return -EINVAL;
    rc = check_distinct(e, n, sizeof(*e));
    if (rc != 0)
        return rc;
    slot = calloc(n, sizeof(*slot));
    if (slot == NULL)
        return -ENOMEM;
    for (i = 0; i < n; i++) {
        struct grave *gr;

        if (find(g, e[i].name) != NULL)
            continue; /* self or known: merged in place */
        gr = find_grave(g, e[i].name);
        if (gr != NULL && cmp_gv(e[i].generation, e[i].version,
                                 gr->generation, gr->version) <= 0)
            continue; /* stale gossip about a forgotten tombstone */
        if (g->n + ++nnew > GOSSIP_MAX_MEMBERS) {
            rc = -EINVAL;
            goto err;
        }
        slot[i] = alloc_member(g);
        if (slot[i] == NULL) {
            rc = -ENOMEM;
            goto err;
        }
    }
    *slotp = slot;
    return 0;
err:
    for (i = 0; i < n; i++)
        free_member(slot[i]);
    free(slot);
    return rc;
}

/* Phase 2: applies the planned entries; cannot fail; frees slot. */
static void commit_entries(gossip_t *g, const gossip_member_t *e, size_t n,
                           struct gmember **slot, int64_t now)
{
    size_t i;

    for (i = 0; i < n; i++) {
        bool found;
        size_t pos = find_pos(g, e[i].name, &found);

        if (slot != NULL && slot[i] != NULL) {
            struct grave *gr = find_grave(g, e[i].name);

            if (gr != NULL)
                drop_grave(g, gr);
            adopt(g, slot[i], &e[i], now);
            memmove(&g->members[pos + 1], &g->members[pos],
                    (g->n - pos) * sizeof(g->members[0]));
            g->members[pos] = slot[i];
            g->n++;
        } else if (found && !g->members[pos]->is_self) {
            merge_one(g, g->members[pos], &e[i], now);
        }
    }
    free(slot);
}

/* ---- life cycle ------------------------------------------------------- */

int gossip_new(const gossip_member_t *self, const gossip_config_t *cfg,
               gossip_t **out)
{
    gossip_t *g;
    size_t i;

    if (self == NULL || cfg == NULL || out == NULL || !valid_entry(self))
        return -EINVAL;
    if (!isfinite(cfg->phi_threshold) || cfg->phi_threshold < 0 ||
        cfg->interval_ms < 0 || cfg->interval_ms > MAX_INTERVAL_MS ||
        cfg->probe_timeout_ms < 0 || cfg->left_ttl_ms < 0 ||
        cfg->nseeds > GOSSIP_MAX_SEEDS || (cfg->nseeds > 0 && cfg->seeds == NULL))
        return -EINVAL;
    for (i = 0; i < cfg->nseeds; i++)
        if (!valid_host(cfg->seeds[i].host) || cfg->seeds[i].port == 0)
            return -EINVAL;

    g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    g->phi_threshold = cfg->phi_threshold > 0 ? cfg->phi_threshold : DEF_PHI_THRESHOLD;
    g->interval = cfg->interval_ms > 0 ? cfg->interval_ms : DEF_INTERVAL_MS;
    g->probe_timeout = cfg->probe_timeout_ms;
    if (g->probe_timeout == 0)
        g->probe_timeout = 2 * g->interval > MIN_PROBE_TIMEOUT_MS
                               ? 2 * g->interval : MIN_PROBE_TIMEOUT_MS;
    g->left_ttl = cfg->left_ttl_ms > 0 ? cfg->left_ttl_ms : DEF_LEFT_TTL_MS;
    for (i = 0; i < cfg->nseeds; i++) {
        /* Our own address in the seed list (every seed lists itself) is
         * not a partner; duplicates would only skew the choice. */
        if (addr_equal(self->host, self->peer_port, &cfg->seeds[i]) ||
            is_seed(g, cfg->seeds[i].host, cfg->seeds[i].port))
            continue;
        g->seeds[g->nseeds++] = cfg->seeds[i];
    }
    g->rng = cfg->rng_seed != 0
                 ? cfg->rng_seed
                 : hash64_seed(self->name, strlen(self->name),
                                   (uint64_t)self->generation);
    g->epoch = 1;
    g->now = INT64_MIN;
    g->self = calloc(1, sizeof(*g->self));
    if (g->self == NULL) {
        free(g);
        return -ENOMEM;
    }
    g->self->e = *self;
    g->self->is_self = true;
    g->self->alive = true;
    g->members[0] = g->self;
    g->n = 1;
    *out = g;
    return 0;
}

void gossip_free(gossip_t *g)
{
    size_t i;

    if (g == NULL)
        return;
    for (i = 0; i < g->n; i++)
        free_member(g->members[i]);
    free(g);
}

/* ---- the round -------------------------------------------------------- */

/* Moves LEFT tombstones older than left_ttl to the graves and forgets
 * graves older than another left_ttl. */
static void expire_tombstones(gossip_t *g, int64_t now)
{
    size_t i = 0;

    while (i < g->ngraves) {
        if (now >= g->graves[i].forget_at)
            drop_grave(g, &g->graves[i]);
        else
            i++;
    }
    i = 0;
    while (i < g->n) {
        struct gmember *m = g->members[i];
        struct grave *gr;

        if (m->is_self || m->e.status != GOSSIP_LEFT || now - m->left_at < g->left_ttl) {
            i++;
            continue;
        }
        if (g->ngraves == GOSSIP_MAX_MEMBERS) { /* full: forget the oldest */
            size_t j, old = 0;

            for (j = 1; j < g->ngraves; j++)
                if (g->graves[j].forget_at < g->graves[old].forget_at)
                    old = j;
            drop_grave(g, &g->graves[old]);
        }
        gr = &g->graves[g->ngraves++];
        memcpy(gr->name, m->e.name, sizeof(gr->name));
        gr->generation = m->e.generation;
        gr->version = m->e.version;
        gr->forget_at = now + g->left_ttl;
        free_member(m);
        memmove(&g->members[i], &g->members[i + 1],
                (g->n - i - 1) * sizeof(g->members[0]));
        g->n--;
        g->epoch++;
    }
}

/* Marks down the members whose probe went unanswered; returns how many
 * alive members need a probe now (their `want` is left for the caller). */
static size_t run_detector(gossip_t *g, int64_t now)
{
    size_t i, want = 0;

    for (i = 0; i < g->n; i++) {
        struct gmember *m = g->members[i];

        if (m->is_self || !m->alive)
            continue;
        if (m->probing) {
            if (now - m->probe_sent >= g->probe_timeout) {
                m->probing = false;
                m->alive = false;
                g->epoch++;
            }
            continue;
        }
        if (m->confirm || gossip_fd_phi(m->fd, now) > g->phi_threshold)
            want++;
    }
    return want;
}

/* Does m need a probe started now?  Same test as run_detector(). */
static bool wants_probe(const gossip_t *g, const struct gmember *m, int64_t now)
{
    return !m->is_self && m->alive && !m->probing &&
           (m->confirm || gossip_fd_phi(m->fd, now) > g->phi_threshold);
}

/* The k-th (0-based) non-self, non-LEFT member whose liveness is `alive`. */
static struct gmember *nth_peer(const gossip_t *g, bool alive, size_t k)
{
    size_t i;

    for (i = 0; i < g->n; i++) {
        const struct gmember *m = g->members[i];

        if (m->is_self || m->e.status == GOSSIP_LEFT || m->alive != alive)
            continue;
        if (k-- == 0)
            return g->members[i];
    }
    return NULL;
}

static bool already_target(const gossip_round_t *r, const char *host, uint16_t port)
{
    size_t i;

    for (i = 0; i < r->ntargets; i++)
        if (addr_equal(host, port, &r->targets[i].addr))
            return true;
    return false;
}

/* Cassandra's choice of partners (Gossiper.GossipTask): a live member; maybe
 * an unreachable one, so partitions heal; a seed when alone or, sometimes,
 * when the live partner was not a seed, so groups of nodes that only know
 * each other still meet the seeds. */
static void choose_targets(gossip_t *g, gossip_round_t *r)
{
    size_t i, nlive = 0, ndown = 0;
    bool to_seed = false;

    for (i = 0; i < g->n; i++) {
        const struct gmember *m = g->members[i];

        if (m->is_self || m->e.status == GOSSIP_LEFT)
            continue;
        if (m->alive)
            nlive++;
        else
            ndown++;
    }
    if (nlive > 0) {
        struct gmember *m = nth_peer(g, true, rng_below(g, nlive));

        if (m != NULL) { /* always, by the count above */
            set_target(&r->targets[r->ntargets++], m);
            to_seed = is_seed(g, m->e.host, m->e.peer_port);
        }
    }
    if (ndown > 0 && rng_unit(g) < (double)ndown / (double)(nlive + 1)) {
        struct gmember *m = nth_peer(g, false, rng_below(g, ndown));

        if (m != NULL)
            set_target(&r->targets[r->ntargets++], m);
    }
    if (g->nseeds > 0 && (!to_seed || nlive < g->nseeds) &&
        (nlive == 0 ||
         rng_unit(g) <= (double)g->nseeds / (double)(nlive + ndown))) {
        const gossip_addr_t *s = &g->seeds[rng_below(g, g->nseeds)];

        if (!already_target(r, s->host, s->port)) {
            gossip_target_t *t = &r->targets[r->ntargets++];

            memset(t->name, 0, sizeof(t->name));
            for (i = 0; i < g->n; i++)
                if (addr_equal(g->members[i]->e.host,
                               g->members[i]->e.peer_port, s))
                    memcpy(t->name, g->members[i]->e.name, sizeof(t->name));
            t->addr = *s;
        }
    }
}

int gossip_tick(gossip_t *g, int64_t now_ms, gossip_round_t *round)
{
    int64_t now = clock_at(g, now_ms);
    size_t i, want;

    memset(round, 0, sizeof(*round));
    g->self->e.version++;
    want = run_detector(g, now);
    expire_tombstones(g, now);

    round->syn = malloc(g->n * sizeof(*round->syn));
    if (want > 0)
        round->probes = malloc(want * sizeof(*round->probes));
    if (round->syn == NULL || (want > 0 && round->probes == NULL)) {
        gossip_round_free(round);
        return -ENOMEM; /* probes not started: retried next tick */
    }
    for (i = 0; i < g->n; i++) {
        struct gmember *m = g->members[i];

        make_digest(&round->syn[round->nsyn++], m);
        if (round->nprobes < want && wants_probe(g, m, now)) {
            set_target(&round->probes[round->nprobes++], m);
            m->probing = true;
            m->confirm = false;
            m->probe_sent = now;
        }
    }
    choose_targets(g, round);
    return 0;
}

/* ---- messages --------------------------------------------------------- */

int gossip_on_syn(gossip_t *g, const gossip_digest_t *digests, size_t n,
                  int64_t now_ms, gossip_ack_t *ack)
{
    size_t i;
    uint64_t stamp;
    int rc;

    memset(ack, 0, sizeof(*ack));
    clock_at(g, now_ms);
    rc = check_digests(digests, n);
    if (rc != 0)
        return rc;
    ack->entries = malloc(g->n * sizeof(*ack->entries));
    if (n > 0)
        ack->requests = malloc(n * sizeof(*ack->requests));
    if (ack->entries == NULL || (n > 0 && ack->requests == NULL)) {
        gossip_ack_free(ack);
        return -ENOMEM;
    }
    stamp = ++g->stamp;
    for (i = 0; i < n; i++) {
        const gossip_digest_t *d = &digests[i];
        struct gmember *m = find(g, d->name);
        gossip_digest_t *req;
        int c;

        if (m == NULL) {
            struct grave *gr = find_grave(g, d->name);

            if (gr != NULL &&
                cmp_gv(d->generation, d->version, gr->generation, gr->version) <= 0)
                continue; /* a tombstone we already expired */
            req = &ack->requests[ack->nrequests++];
            memcpy(req->name, d->name, sizeof(req->name));
            req->generation = 0;
            req->version = 0;
            continue;
        }
        m->stamp = stamp;
        c = cmp_gv(m->e.generation, m->e.version, d->generation, d->version);
        if (c > 0)
            ack->entries[ack->nentries++] = m->e;
        else if (c < 0 && !m->is_self)
            make_digest(&ack->requests[ack->nrequests++], m);
    }
    for (i = 0; i < g->n; i++)
        if (g->members[i]->stamp != stamp)
            ack->entries[ack->nentries++] = g->members[i]->e;
    return 0;
}

int gossip_on_ack(gossip_t *g, const gossip_ack_t *ack, int64_t now_ms,
                  gossip_ack2_t *ack2)
{
    struct gmember **slot;
    int64_t now;
    size_t i;
    int rc;

    memset(ack2, 0, sizeof(*ack2));
    now = clock_at(g, now_ms);
    if (ack == NULL)
        return -EINVAL;
    rc = check_digests(ack->requests, ack->nrequests);
    if (rc != 0)
        return rc;
    if (ack->nrequests > 0) {
        ack2->entries = malloc(ack->nrequests * sizeof(*ack2->entries));
        if (ack2->entries == NULL)
            return -ENOMEM;
    }
    rc = plan_entries(g, ack->entries, ack->nentries, &slot);
    if (rc != 0) {
        gossip_ack2_free(ack2);
        return rc;
    }
    commit_entries(g, ack->entries, ack->nentries, slot, now);
    for (i = 0; i < ack->nrequests; i++) {
        const gossip_digest_t *r = &ack->requests[i];
        const struct gmember *m = find(g, r->name);

        if (m != NULL &&
            cmp_gv(m->e.generation, m->e.version, r->generation, r->version) > 0)
            ack2->entries[ack2->nentries++] = m->e;
    }
    return 0;
}

int gossip_on_ack2(gossip_t *g, const gossip_member_t *entries, size_t n,
                   int64_t now_ms)
{
    struct gmember **slot;
    int64_t now = clock_at(g, now_ms);
    int rc = plan_entries(g, entries, n, &slot);

    if (rc != 0)
        return rc;
    commit_entries(g, entries, n, slot, now);
    return 0;
}

/* ---- probes, owner actions, views ------------------------------------- */

int gossip_on_probe_ack(gossip_t *g, const char *name, int64_t now_ms)
{
    int64_t now = clock_at(g, now_ms);
    struct gmember *m;

    if (name == NULL || !valid_name(name, GOSSIP_NAME_MAX + 1))
        return -EINVAL;
    m = find(g, name);
    if (m == NULL || m->is_self || m->e.status == GOSSIP_LEFT)
        return 0;
    note_arrival(g, m, now);
    return 1;
}

int gossip_set_status(gossip_t *g, gossip_status_t status, int64_t now_ms)
{
    clock_at(g, now_ms);
    if ((unsigned)status > GOSSIP_LEFT)
        return -EINVAL;
    if (g->self->e.status == (uint32_t)status)
        return 0;
    g->self->e.status = (uint32_t)status;
    g->self->e.version++;
    g->epoch++;
    return 0;
}

static double member_phi(const struct gmember *m, int64_t now)
{
    if (m->is_self || m->e.status == GOSSIP_LEFT)
        return 0;
    return gossip_fd_phi(m->fd, now);
}

double gossip_phi(gossip_t *g, const char *name, int64_t now_ms)
{
    int64_t now = clock_at(g, now_ms);
    const struct gmember *m;

    if (name == NULL || !valid_name(name, GOSSIP_NAME_MAX + 1))
        return -1.0;
    m = find(g, name);
    return m != NULL ? member_phi(m, now) : -1.0;
}

uint64_t gossip_epoch(const gossip_t *g)
{
    return g->epoch;
}

size_t gossip_member_count(const gossip_t *g)
{
    return g->n;
}

static void fill_info(const gossip_t *g, const struct gmember *m,
                      gossip_member_info_t *out)
{
    out->entry = m->e;
    out->is_self = m->is_self;
    out->alive = m->alive;
    out->probing = m->probing;
    out->phi = member_phi(m, g->now);
}

int gossip_member(const gossip_t *g, size_t i, gossip_member_info_t *out)
{
    if (i >= g->n || out == NULL)
        return -EINVAL;
    fill_info(g, g->members[i], out);
    return 0;
}

bool gossip_lookup(const gossip_t *g, const char *name, gossip_member_info_t *out)
{
    const struct gmember *m;

    if (name == NULL || !valid_name(name, GOSSIP_NAME_MAX + 1))
        return false;
    m = find(g, name);
    if (m != NULL && out != NULL)
        fill_info(g, m, out);
    return m != NULL;
}

void gossip_round_free(gossip_round_t *round)
{
    if (round == NULL)
        return;
    free(round->syn);
    free(round->probes);
    memset(round, 0, sizeof(*round));
}

void gossip_ack_free(gossip_ack_t *ack)
{
    if (ack == NULL)
        return;
    free(ack->entries);
    free(ack->requests);
    memset(ack, 0, sizeof(*ack));
}

void gossip_ack2_free(gossip_ack2_t *ack2)
{
    if (ack2 == NULL)
        return;
    free(ack2->entries);
    memset(ack2, 0, sizeof(*ack2));
}
