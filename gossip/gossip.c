/*
 * gossip.c - membership view, gossip's three tools and liveness (see
 * gossip.h).
 *
 * Organisation, top to bottom: helpers (clock, PRNG, validation, hashes,
 * lookup, send budgets); liveness evidence (note_arrival()); the merge of
 * incoming entries, split in two phases: plan_entries() validates a batch
 * and allocates every new member up front, commit_entries() applies it and
 * cannot fail, so a message is applied completely or not at all;
 * gossip_new()/free(); the round (gossip_tick(): detector, tombstones,
 * probes, mail, targets, SYN); the message handlers, each validating
 * everything, then allocating everything, then committing; probes, owner
 * actions and views.  The state is in gossip_internal.h; the rumor table,
 * relayed heartbeats and mail bookkeeping in spread.c; the per-member
 * failure detector in phi.c.
 *
 * Invariants: members[0 .. n-1] is sorted by name (strcmp), names distinct,
 * self among them; every non-self member owns a gossip_fd_t; m->sh is the
 * state hash of m->e and m->nh the hash of its name; a LEFT member is never
 * alive, probing nor suspected; probing implies alive; graves[] holds
 * expired LEFT tombstones (not in members[]) and its names are not in
 * members[]; g->now never decreases.  Only self's entry is changed locally,
 * and only by gossip_tick() (heartbeat) and gossip_set_status().
 */
#include "gossip.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hash.h"
#include "gossip_internal.h"

#define DEF_PHI_THRESHOLD 8.0
#define DEF_INTERVAL_MS 200
#define DEF_LEFT_TTL_MS (24LL * 3600 * 1000)
#define MAX_INTERVAL_MS 1000000 /* keeps 10 * interval a valid fd sample cap */
#define MIN_PROBE_TIMEOUT_MS 500
#define MEMBERS_PER_BUCKET 16   /* summary buckets: about n / 16 */
/* Senders that are not members yet (every joining node, at first) share
 * one budget, so it is that many times a member's. */
#define UNKNOWN_BUDGET_FACTOR 8

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
           e->status <= GOSSIP_LEFT && e->xfer <= GOSSIP_XFER_MAX &&
           (e->flags & ~GOSSIP_F_REMOVED) == 0;
}

/* A digest that names a live incarnation: a sender, a relayed heartbeat. */
static bool valid_hb(const gossip_digest_t *d)
{
    return valid_name(d->name, sizeof(d->name)) && d->generation > 0;
}

static bool pow2_buckets(uint64_t nb)
{
    return nb >= 1 && nb <= GOSSIP_MAX_BUCKETS && (nb & (nb - 1)) == 0;
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

/* The same for (generation, version, heartbeat): the digest order. */
static int cmp_ghv(int64_t g1, uint64_t v1, uint64_t h1, int64_t g2,
                   uint64_t v2, uint64_t h2)
{
    int c = cmp_gv(g1, v1, g2, v2);

    if (c != 0 || h1 == h2)
        return c;
    return h1 < h2 ? -1 : 1;
}

static int cmp_entry_digest(const gossip_member_t *e, const gossip_digest_t *d)
{
    return cmp_ghv(e->generation, e->version, e->heartbeat, d->generation,
                   d->version, d->heartbeat);
}

/* The state hash that summaries XOR together: every node computes the same
 * value from (name, generation, version), whatever its byte order. */
static uint64_t state_hash(const gossip_member_t *e)
{
    unsigned char buf[GOSSIP_NAME_MAX + 16];
    size_t len = strlen(e->name), i;

    memcpy(buf, e->name, len);
    for (i = 0; i < 8; i++) {
        buf[len + i] = (unsigned char)((uint64_t)e->generation >> (8 * i));
        buf[len + 8 + i] = (unsigned char)(e->version >> (8 * i));
    }
    return hash64(buf, len + 16);
}

static void set_entry(struct gmember *m, const gossip_member_t *e)
{
    if (m->e.generation != e->generation || m->e.version != e->version ||
        strcmp(m->e.name, e->name) != 0 || m->sh == 0)
        m->sh = state_hash(e);
    if (m->nh == 0 || strcmp(m->e.name, e->name) != 0)
        m->nh = hash64(e->name, strlen(e->name));
    m->e = *e;
}

static uint32_t nbuckets_for(size_t n)
{
    uint32_t nb = 1;

    while (nb < GOSSIP_MAX_BUCKETS && nb * MEMBERS_PER_BUCKET < n)
        nb *= 2;
    return nb;
}

static uint64_t summary_of(const gossip_t *g)
{
    uint64_t h = 0;
    size_t i;

    for (i = 0; i < g->n; i++)
        h ^= g->members[i]->sh;
    return h;
}

static void bucket_hashes(const gossip_t *g, uint32_t nb, uint64_t *out)
{
    size_t i;

    memset(out, 0, nb * sizeof(*out));
    for (i = 0; i < g->n; i++)
        out[g->members[i]->nh & (nb - 1)] ^= g->members[i]->sh;
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

/* find_pos() for a list walked in name order, as every list a node sends
 * is (its members are sorted): the next name is at or after *hint, where
 * the previous one was, so a galloping search from there costs about
 * log2 of the gap.  A list out of order is still found right, by a full
 * binary search. */
static size_t find_pos_hint(const gossip_t *g, const char *name, bool *found,
                            size_t *hint)
{
    size_t lo = *hint < g->n ? *hint : g->n, hi = lo, step = 1;

    if (lo > 0 && strcmp(g->members[lo - 1]->e.name, name) >= 0)
        return *hint = find_pos(g, name, found);
    while (hi < g->n && strcmp(g->members[hi]->e.name, name) < 0) {
        lo = hi + 1;
        hi = lo + step - 1;
        step *= 2;
    }
    if (hi > g->n)
        hi = g->n;
    while (lo < hi) { /* the first of [lo, hi) not below name, or hi */
        size_t mid = lo + (hi - lo) / 2;

        if (strcmp(g->members[mid]->e.name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < g->n && strcmp(g->members[lo]->e.name, name) == 0;
    return *hint = lo;
}

static struct gmember *find_hint(const gossip_t *g, const char *name, size_t *hint)
{
    bool found;
    size_t i = find_pos_hint(g, name, &found, hint);

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

/* Is (generation, version) of `name` an expired tombstone or older? */
static bool buried(gossip_t *g, const char *name, int64_t gen, uint64_t ver)
{
    struct grave *gr = find_grave(g, name);

    return gr != NULL && cmp_gv(gen, ver, gr->generation, gr->version) <= 0;
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

/* The non-self member at address a, if any. */
static struct gmember *member_at(const gossip_t *g, const gossip_addr_t *a)
{
    size_t i;

    for (i = 0; i < g->n; i++)
        if (!g->members[i]->is_self &&
            addr_equal(g->members[i]->e.host, g->members[i]->e.peer_port, a))
            return g->members[i];
    return NULL;
}

static void set_target(gossip_target_t *t, const struct gmember *m)
{
    memcpy(t->name, m->e.name, sizeof(t->name));
    memcpy(t->addr.host, m->e.host, sizeof(t->addr.host));
    t->addr.port = m->e.peer_port;
}

void gossip__make_digest(gossip_digest_t *d, const gossip_member_t *e)
{
    memcpy(d->name, e->name, sizeof(d->name));
    d->generation = e->generation;
    d->version = e->version;
    d->heartbeat = e->heartbeat;
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
    for (i = 1; i < n; i++) /* in strict order (as senders list): distinct */
        if (strcmp((const char *)base + (i - 1) * stride, (const char *)base + i * stride) >= 0)
            break;
    if (i == n)
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

    if ((n > 0 && d == NULL) || n > GOSSIP_MAX_MEMBERS)
        return -EINVAL;
    for (i = 0; i < n; i++)
        if (!valid_name(d[i].name, sizeof(d[i].name)) || d[i].generation < 0)
            return -EINVAL;
    return check_distinct(d, n, sizeof(*d));
}

static int check_hbs(const gossip_digest_t *d, size_t n)
{
    size_t i;

    if ((n > 0 && d == NULL) || n > GOSSIP_MSG_HEARTBEATS)
        return -EINVAL;
    for (i = 0; i < n; i++)
        if (!valid_hb(&d[i]))
            return -EINVAL;
    return 0;
}

/* Rumors: kinds known, each well-formed; ENTRY rumors are copied into
 * ents[] (GOSSIP_MSG_RUMORS slots) for plan_entries(), which checks that
 * their names are distinct. */
static int check_rumors(const gossip_rumor_t *r, size_t n,
                        gossip_member_t *ents, size_t *nents)
{
    size_t i;

    *nents = 0;
    if ((n > 0 && r == NULL) || n > GOSSIP_MSG_RUMORS)
        return -EINVAL;
    for (i = 0; i < n; i++) {
        if (r[i].kind == GOSSIP_RUMOR_ENTRY) {
            if (!valid_entry(&r[i].entry))
                return -EINVAL;
            ents[(*nents)++] = r[i].entry;
        } else if (r[i].kind == GOSSIP_RUMOR_DOWN) {
            if (!valid_name(r[i].entry.name, sizeof(r[i].entry.name)) ||
                r[i].entry.generation <= 0)
                return -EINVAL;
        } else {
            return -EINVAL;
        }
    }
    return 0;
}

/* Takes one message from the budget b (refilled at rate per interval, up
 * to burst); false when it is spent. */
static bool budget_take(const gossip_t *g, struct budget *b, double burst,
                        double rate, int64_t now)
{
    if (now > b->at) { /* in doubles: b->at starts at INT64_MIN */
        b->tokens += rate * ((double)now - (double)b->at) / (double)g->interval;
        if (b->tokens > burst)
            b->tokens = burst;
    }
    b->at = now;
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

/* The budget of a SYN or mail from `name`: its own if it is a member. */
static bool sender_budget(gossip_t *g, const char *name, int64_t now)
{
    struct gmember *m = find(g, name);
    bool ok;

    if (m != NULL && !m->is_self)
        ok = budget_take(g, &m->budget, GOSSIP_FLOOD_BURST, GOSSIP_FLOOD_RATE, now);
    else
        ok = budget_take(g, &g->unknown_budget,
                         GOSSIP_FLOOD_BURST * UNKNOWN_BUDGET_FACTOR,
                         GOSSIP_FLOOD_RATE * UNKNOWN_BUDGET_FACTOR, now);
    if (!ok)
        g->stats.msgs_throttled++;
    return ok;
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
    if (gossip_fd_new(g->fd_window, (double)g->interval / 2,
                      10 * g->interval, &m->fd) != 0) {
        free(m);
        return NULL;
    }
    m->budget.tokens = GOSSIP_FLOOD_BURST;
    m->budget.at = g->now;
    return m;
}

/* ---- liveness evidence and merging ------------------------------------ */

enum evidence {
    EV_RELAY,  /* a newer heartbeat relayed by somebody else */
    EV_STATE,  /* a newer state (version) of the member */
    EV_DIRECT, /* the member itself: a message it sent, a probe answer */
    EV_TOUCH,  /* ... with a heartbeat already known: not a new sample (the
                * same beat heard twice in a round would shrink the mean) */
};

/* Something says m is alive at now.  Revives a down member on direct
 * contact or a new state, or on a relayed heartbeat clearly past the last
 * one it had when judged down; ends a probe unless only direct contact may
 * end it. */
static void note_arrival(gossip_t *g, struct gmember *m, int64_t now,
                         enum evidence ev)
{
    if (m->is_self || m->e.status == GOSSIP_LEFT)
        return;
    if (!m->alive && ev == EV_RELAY &&
        m->e.heartbeat <= m->down_hb + GOSSIP_REVIVE_BEATS)
        return; /* maybe only a dead node's last heartbeats, still spreading */
    if (ev == EV_TOUCH)
        gossip__fd_touch(m->fd, now);
    else
        gossip_fd_heartbeat(m->fd, now);
    if (ev == EV_TOUCH)
        ev = EV_DIRECT;
    m->confirm = false;
    if (ev == EV_DIRECT || !m->strict) {
        m->probing = false;
        m->strict = false;
    }
    if (ev == EV_DIRECT) {
        m->suspect = false;
        gossip__rumor_refute(g, m->e.name);
    }
    if (!m->alive) {
        m->alive = true;
        g->epoch++;
    }
}

/* m takes entry e as a new incarnation (first sight or newer generation):
 * the detector starts over, as for a node never seen, and this node's
 * current change is mailed to it if the change is recent.  It is news to
 * pass on (a hot rumor) if `heat`. */
static void adopt(gossip_t *g, struct gmember *m, const gossip_member_t *e,
                  int64_t now, bool heat)
{
    set_entry(m, e);
    m->probing = m->strict = m->suspect = false;
    m->alive = e->status != GOSSIP_LEFT;
    m->confirm = m->alive;
    m->left_at = now;
    m->down_hb = 0;
    gossip_fd_reset(m->fd, 2 * g->interval, now);
    g->epoch++;
    gossip__rumor_drop_name(g, GOSSIP_RUMOR_DOWN, e->name);
    if (heat)
        gossip__rumor_heat(g, GOSSIP_RUMOR_ENTRY, e);
    if (now < g->mail_until && m->alive) {
        m->mail_pending = true;
        m->mail_tries = 0;
        m->mail_next = now;
    }
}

/* Applies e to the existing member m (never self).  Returns true when e
 * was a newer state (news). */
static bool merge_one(gossip_t *g, struct gmember *m, const gossip_member_t *e,
                      int64_t now)
{
    bool changed;
    int c = cmp_gv(e->generation, e->version, m->e.generation, m->e.version);
    gossip_member_t next;

    if (c < 0)
        return false; /* stale */
    if (c == 0) {
        if (e->heartbeat > m->e.heartbeat) {
            m->e.heartbeat = e->heartbeat;
            note_arrival(g, m, now, EV_RELAY);
        }
        return false;
    }
    if (e->generation > m->e.generation) {
        adopt(g, m, e, now, true);
        return true;
    }
    changed = e->status != m->e.status || e->client_port != m->e.client_port ||
              e->peer_port != m->e.peer_port ||
              strcmp(e->host, m->e.host) != 0 || e->ring_epoch != m->e.ring_epoch ||
              e->xfer != m->e.xfer || e->flags != m->e.flags;
    if (e->status == GOSSIP_LEFT && m->e.status != GOSSIP_LEFT)
        m->left_at = now;
    next = *e;
    if (m->e.heartbeat > next.heartbeat)
        next.heartbeat = m->e.heartbeat;
    set_entry(m, &next);
    if (e->status == GOSSIP_LEFT) {
        changed |= m->alive;
        m->alive = m->probing = m->strict = m->suspect = m->confirm = false;
        m->mail_pending = false;
        gossip__rumor_drop_name(g, GOSSIP_RUMOR_DOWN, e->name);
    } else {
        note_arrival(g, m, now, EV_STATE);
    }
    if (changed)
        g->epoch++;
    gossip__rumor_heat(g, GOSSIP_RUMOR_ENTRY, &m->e);
    return true;
}

/*
 * Phase 1 of applying a batch of entries: validates all n entries and
 * allocates a member for every entry that will be inserted (slot[i], NULL
 * otherwise).  Returns 0 with *slotp set (caller passes it to
 * commit_entries()), or -EINVAL / -ENOMEM having changed and kept nothing.
 */
static int plan_entries(gossip_t *g, const gossip_member_t *e, size_t n,
                        struct gmember ***slotp)
{
    struct gmember **slot;
    size_t i, nnew = 0, hint = 0;
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
        if (find_hint(g, e[i].name, &hint) != NULL)
            continue; /* self or known: merged in place */
        if (buried(g, e[i].name, e[i].generation, e[i].version))
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

/* Phase 2: applies the planned entries; cannot fail; frees slot.  Two
 * batches of one message may both plan the same new name (an entry and a
 * rumor): the second finds it inserted and merges; the membership bound
 * holds because each batch was checked against it and a full view merges
 * only.  A member first seen is passed on as a rumor only if it came by
 * rumor or mail (fresh_new): what anti-entropy teaches a node it was
 * missing, typically a joining node learning every member, is no news to
 * the others.  Returns how many entries were news. */
static size_t commit_entries(gossip_t *g, const gossip_member_t *e, size_t n,
                             struct gmember **slot, int64_t now, bool fresh_new)
{
    size_t i, news = 0, hint = 0;

    for (i = 0; i < n; i++) {
        bool found;
        size_t pos = find_pos_hint(g, e[i].name, &found, &hint);
        struct gmember *s = slot != NULL ? slot[i] : NULL;

        if (s != NULL && (found || g->n == GOSSIP_MAX_MEMBERS)) {
            free_member(s);
            s = NULL;
        }
        if (s != NULL) {
            struct grave *gr = find_grave(g, e[i].name);

            if (gr != NULL)
                drop_grave(g, gr);
            memmove(&g->members[pos + 1], &g->members[pos],
                    (g->n - pos) * sizeof(g->members[0]));
            g->members[pos] = s;
            g->n++;
            adopt(g, s, &e[i], now, fresh_new);
            news++;
        } else if (found && !g->members[pos]->is_self) {
            news += merge_one(g, g->members[pos], &e[i], now);
        }
    }
    free(slot);
    return news;
}

/* Applies a heartbeat digest (the sender's own when direct).  Returns true
 * when it shows a state this node lacks, so the caller may request it. */
static bool apply_hb(gossip_t *g, const gossip_digest_t *d, int64_t now,
                     bool direct)
{
    struct gmember *m = find(g, d->name);

    if (m == NULL)
        return !buried(g, d->name, d->generation, d->version);
    if (m->is_self || d->generation < m->e.generation)
        return false;
    if (d->generation > m->e.generation)
        return true;
    if (d->heartbeat > m->e.heartbeat) {
        m->e.heartbeat = d->heartbeat;
        note_arrival(g, m, now, direct ? EV_DIRECT : EV_RELAY);
    } else if (direct) {
        note_arrival(g, m, now, EV_TOUCH);
    }
    return d->version > m->e.version;
}

/* Applies the DOWN rumors of a message (validated). */
static void apply_downs(gossip_t *g, const gossip_rumor_t *r, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const gossip_member_t *e = &r[i].entry;
        gossip_member_t d;
        struct gmember *m;
        struct hot *h;

        if (r[i].kind != GOSSIP_RUMOR_DOWN)
            continue;
        m = find(g, e->name);
        if (m == NULL || m->is_self || m->e.generation != e->generation ||
            m->e.status == GOSSIP_LEFT) {
            g->stats.rumors_ignored++; /* unknown member or generation */
            continue;
        }
        if (e->heartbeat > m->down_hb)
            m->down_hb = e->heartbeat;
        if (!m->alive || m->suspect || (m->probing && m->strict))
            continue; /* already judged or being judged on this evidence */
        h = gossip__rumor_find(g, GOSSIP_RUMOR_DOWN, e->name);
        if (h != NULL && h->refuted &&
            e->heartbeat <= h->r.entry.heartbeat + GOSSIP_REVIVE_BEATS)
            continue; /* disproved here already (a later failure would be
                       * reported with a later heartbeat) */
        if (m->probing)
            m->strict = true;
        else
            m->suspect = true;
        d = m->e;
        d.heartbeat = m->down_hb; /* the latest beat the accusation covers */
        gossip__rumor_heat(g, GOSSIP_RUMOR_DOWN, &d);
        g->stats.rumors_applied++;
    }
}

/* Counts what the ENTRY rumors of a message will tell (before commit). */
static void count_entry_rumors(gossip_t *g, const gossip_member_t *e, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        const struct gmember *m = find(g, e[i].name);

        if (m != NULL && m->is_self)
            g->stats.rumors_ignored++;
        else if (m == NULL && buried(g, e[i].name, e[i].generation, e[i].version))
            g->stats.rumors_ignored++;
        else if (m == NULL)
            g->stats.rumors_applied++;
        else if (cmp_gv(e[i].generation, e[i].version, m->e.generation,
                        m->e.version) < 0)
            g->stats.rumors_ignored++;
        else if (cmp_gv(e[i].generation, e[i].version, m->e.generation,
                        m->e.version) > 0)
            g->stats.rumors_applied++;
    }
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
        cfg->nseeds > GOSSIP_MAX_SEEDS || (cfg->nseeds > 0 && cfg->seeds == NULL) ||
        cfg->fd_window > 65536 || cfg->mode > GOSSIP_MODE_DIGEST)
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
    g->fd_window = cfg->fd_window > 0 ? cfg->fd_window : GOSSIP_FD_WINDOW;
    g->mode = cfg->mode;
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
    g->unknown_budget.tokens = GOSSIP_FLOOD_BURST * UNKNOWN_BUDGET_FACTOR;
    g->unknown_budget.at = INT64_MIN;
    g->ack2_budget = g->unknown_budget;
    g->self = calloc(1, sizeof(*g->self));
    if (g->self == NULL) {
        free(g);
        return -ENOMEM;
    }
    set_entry(g->self, self);
    g->self->is_self = true;
    g->self->alive = true;
    g->members[0] = g->self;
    g->n = 1;
    /* A start is a change (a join, or a restart with a new generation):
     * mailed from the first tick on, and news wherever it lands.  The mail
     * window opens at the first tick, when the module first learns the
     * time. */
    gossip__rumor_heat(g, GOSSIP_RUMOR_ENTRY, &g->self->e);
    gossip__mail_start(g, INT64_MIN);
    g->mail_until = INT64_MIN; /* set by the first tick */
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
        gossip__rumor_drop_name(g, GOSSIP_RUMOR_ENTRY, m->e.name);
        free_member(m);
        memmove(&g->members[i], &g->members[i + 1],
                (g->n - i - 1) * sizeof(g->members[0]));
        g->n--;
        g->epoch++;
    }
}

/* Is m suspected by its detector at now?  Skips the floating-point phi
 * when the silence is not even as long as the mean interval. */
static bool phi_suspects(const gossip_t *g, const struct gmember *m, int64_t now)
{
    if (g->phi_threshold > 0.302 && gossip__fd_below_mean(m->fd, now))
        return false; /* phi <= log10(2) < threshold */
    return gossip_fd_phi(m->fd, now) > g->phi_threshold;
}

/* Sets m->watched on the GOSSIP_WATCH live members before and after self
 * in name order (everybody in a small cluster). */
static void mark_watched(gossip_t *g)
{
    bool found;
    size_t self = find_pos(g, g->self->e.name, &found), i, k, fwd = 0, back = 0;

    for (i = 0; i < g->n; i++)
        g->members[i]->watched = false;
    for (k = 1; k < g->n && fwd < GOSSIP_WATCH; k++) {
        struct gmember *m = g->members[(self + k) % g->n];

        if (m->alive && m->e.status != GOSSIP_LEFT) {
            m->watched = true;
            fwd++;
        }
    }
    for (k = 1; k < g->n && back < GOSSIP_WATCH; k++) {
        struct gmember *m = g->members[(self + g->n - k) % g->n];

        if (m->alive && m->e.status != GOSSIP_LEFT) {
            m->watched = true;
            back++;
        }
    }
}

/* Marks down the members whose probe went unanswered (a probe started by
 * this node's own suspicion of a member it watches then starts a DOWN
 * rumor); sets m->want on the members to ping now and returns how many. */
static size_t run_detector(gossip_t *g, int64_t now)
{
    /* A member this node does not watch is probed only after a silence far
     * beyond the gaps between relays of its heartbeat (each message relays
     * GOSSIP_MSG_HEARTBEATS of n): the safety net for a DOWN rumor that
     * never reached this node, as liveness is not in the anti-entropy. */
    int64_t silence = (int64_t)GOSSIP_SILENCE_ROUNDS * g->interval;
    size_t i, want = 0;

    if ((int64_t)g->n * g->interval / 2 > silence)
        silence = (int64_t)g->n * g->interval / 2;
    mark_watched(g);
    for (i = 0; i < g->n; i++) {
        struct gmember *m = g->members[i];

        m->want = false;
        if (m->is_self || !m->alive)
            continue;
        if (m->probing) {
            if (now - m->probe_sent >= g->probe_timeout) {
                m->probing = false;
                m->alive = false;
                if (m->e.heartbeat > m->down_hb)
                    m->down_hb = m->e.heartbeat;
                g->epoch++;
                if (m->probe_why == WHY_PHI && g->mode == GOSSIP_MODE_RUMOR) {
                    gossip_member_t d = m->e;

                    d.heartbeat = m->down_hb;
                    gossip__rumor_heat(g, GOSSIP_RUMOR_DOWN, &d);
                    g->stats.down_rumors++;
                }
                m->strict = false;
            } else if (now - m->ping_at >= g->interval) {
                m->want = true; /* ping again: one lost ping is no failure */
                want++;
            }
            continue;
        }
        /* Only watchers act on phi: in a large cluster a node hears most
         * members seldom and irregularly, and would suspect them all the
         * time.  In digest mode every member's heartbeat arrives every
         * round or two, so every member is watched, as before. */
        if (m->suspect)
            m->probe_why = WHY_SUSPECT;
        else if (m->confirm)
            m->probe_why = WHY_CONFIRM;
        else if ((m->watched || g->mode == GOSSIP_MODE_DIGEST) && phi_suspects(g, m, now))
            m->probe_why = WHY_PHI;
        else if (now - gossip_fd_last(m->fd) > silence)
            m->probe_why = WHY_SILENCE;
        else
            continue;
        m->want = true;
        want++;
    }
    return want;
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

/* The first live member after self in name order (wrapping), or NULL. */
static struct gmember *successor(const gossip_t *g)
{
    bool found;
    size_t self = find_pos(g, g->self->e.name, &found), k;

    for (k = 1; k < g->n; k++) {
        struct gmember *m = g->members[(self + k) % g->n];

        if (m->alive && m->e.status != GOSSIP_LEFT)
            return m;
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
 * each other still meet the seeds.  In the default mode also the successor,
 * so that every member is heard every round by its two neighbours. */
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
        m = g->mode == GOSSIP_MODE_RUMOR ? successor(g) : NULL;
        if (m != NULL && !already_target(r, m->e.host, m->e.peer_port)) {
            set_target(&r->targets[r->ntargets++], m);
            to_seed |= is_seed(g, m->e.host, m->e.peer_port);
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
            const struct gmember *m = member_at(g, s);

            memset(t->name, 0, sizeof(t->name));
            if (m != NULL)
                memcpy(t->name, m->e.name, sizeof(t->name));
            t->addr = *s;
        }
    }
}

/* Fills syn with this round's SYN (mask 0: the summary; or, in digest
 * mode, every digest).  -ENOMEM with syn freed. */
static int build_syn(gossip_t *g, gossip_syn_t *syn)
{
    size_t i;

    memset(syn, 0, sizeof(*syn));
    gossip__make_digest(&syn->from, &g->self->e);
    syn->summary = summary_of(g);
    if (g->mode == GOSSIP_MODE_DIGEST) {
        syn->nbuckets = 1;
        syn->mask = 1;
        syn->digests = malloc(g->n * sizeof(*syn->digests));
        if (syn->digests == NULL)
            return -ENOMEM;
        for (i = 0; i < g->n; i++)
            gossip__make_digest(&syn->digests[syn->ndigests++], &g->members[i]->e);
        return 0;
    }
    syn->nbuckets = nbuckets_for(g->n);
    if (gossip__heartbeats_pick(g, &syn->heartbeats, &syn->nheartbeats) != 0 ||
        gossip__rumors_pick(g, &syn->rumors, &syn->nrumors) != 0) {
        gossip_syn_free(syn);
        return -ENOMEM;
    }
    return 0;
}

int gossip_tick(gossip_t *g, int64_t now_ms, gossip_round_t *round)
{
    int64_t now = clock_at(g, now_ms);
    size_t i, want, nmail = 0;

    memset(round, 0, sizeof(*round));
    g->self->e.heartbeat++;
    if (g->mail_until == INT64_MIN && g->mode == GOSSIP_MODE_RUMOR)
        g->mail_until = now + (int64_t)GOSSIP_MAIL_WINDOW * g->interval;
    want = run_detector(g, now);
    expire_tombstones(g, now);

    for (i = 0; i < g->n; i++) {
        struct gmember *m = g->members[i];

        if (m->mail_pending && m->e.status == GOSSIP_LEFT)
            m->mail_pending = false;
        nmail += gossip__mail_due(g, &m->mail_pending, &m->mail_tries, m->mail_next, now);
    }
    for (i = 0; i < g->nseeds; i++) {
        struct seedmail *s = &g->seedmail[i];

        if (s->pending && member_at(g, &g->seeds[i]) != NULL)
            s->pending = false; /* mailed by name */
        nmail += gossip__mail_due(g, &s->pending, &s->tries, s->next, now);
    }
    if (build_syn(g, &round->syn) != 0)
        return -ENOMEM;
    if (want > 0)
        round->probes = malloc(want * sizeof(*round->probes));
    if (nmail > 0)
        round->mail = malloc(nmail * sizeof(*round->mail));
    if ((want > 0 && round->probes == NULL) || (nmail > 0 && round->mail == NULL)) {
        gossip_round_free(round);
        return -ENOMEM; /* probes and mail not started: retried next tick */
    }
    for (i = 0; i < g->n; i++) {
        struct gmember *m = g->members[i];

        if (m->want) {
            set_target(&round->probes[round->nprobes++], m);
            if (!m->probing) { /* a new probe; probe_why set by run_detector() */
                m->probing = true;
                m->strict = m->suspect;
                m->probe_sent = now;
            }
            m->confirm = m->suspect = false;
            m->ping_at = now;
        }
        if (m->mail_pending && now >= m->mail_next) {
            set_target(&round->mail[round->nmail++], m);
            m->mail_next = now + gossip__mail_backoff(g, ++m->mail_tries);
        }
    }
    for (i = 0; i < g->nseeds; i++) {
        struct seedmail *s = &g->seedmail[i];

        if (s->pending && now >= s->next) {
            gossip_target_t *t = &round->mail[round->nmail++];

            memset(t->name, 0, sizeof(t->name));
            t->addr = g->seeds[i];
            s->next = now + gossip__mail_backoff(g, ++s->tries);
        }
    }
    g->stats.mail_sent += round->nmail;
    round->mail_entry = g->self->e;
    choose_targets(g, round);
    gossip__rumors_age(g);
    return 0;
}

/* ---- messages --------------------------------------------------------- */

/* Appends a request for `name`: what this node has of it (m), or zeros.
 * With `unique`, only if none is there yet (the digests of one SYN are
 * distinct, but the sender and relayed heartbeats may repeat them). */
static void add_request(gossip_ack_t *ack, const char *name,
                        const struct gmember *m, bool unique)
{
    gossip_digest_t *req;
    size_t i;

    for (i = 0; unique && i < ack->nrequests; i++)
        if (strcmp(ack->requests[i].name, name) == 0)
            return;
    req = &ack->requests[ack->nrequests++];
    memset(req, 0, sizeof(*req));
    if (m != NULL)
        gossip__make_digest(req, &m->e);
    else
        memcpy(req->name, name, strnlen(name, GOSSIP_NAME_MAX));
}

/* The anti-entropy answer to digests covering `mask` of nb buckets: the
 * entries this node has newer or the digests lack there, and requests for
 * those it is behind on. */
static void answer_digests(gossip_t *g, const gossip_syn_t *syn, gossip_ack_t *ack)
{
    uint64_t stamp = ++g->stamp;
    size_t i, hint = 0;

    for (i = 0; i < syn->ndigests; i++) {
        const gossip_digest_t *d = &syn->digests[i];
        struct gmember *m = find_hint(g, d->name, &hint);
        int c;

        if (m == NULL) {
            if (!buried(g, d->name, d->generation, d->version))
                add_request(ack, d->name, NULL, false);
            continue;
        }
        m->stamp = stamp;
        c = cmp_entry_digest(&m->e, d);
        if (c > 0)
            ack->entries[ack->nentries++] = m->e;
        else if (c < 0 && !m->is_self)
            add_request(ack, d->name, m, false);
    }
    for (i = 0; i < g->n; i++) {
        const struct gmember *m = g->members[i];

        if (m->stamp != stamp && ((syn->mask >> (m->nh & (syn->nbuckets - 1))) & 1))
            ack->entries[ack->nentries++] = m->e;
    }
}

/* Validates a SYN: every field, every item. */
static int check_syn(const gossip_syn_t *syn, gossip_member_t *rents, size_t *nrents)
{
    int rc;

    if (syn == NULL || !valid_hb(&syn->from) || !pow2_buckets(syn->nbuckets) ||
        (syn->nbuckets < 64 && (syn->mask >> syn->nbuckets) != 0) ||
        (syn->mask == 0 && syn->ndigests > 0))
        return -EINVAL;
    rc = check_digests(syn->digests, syn->ndigests);
    if (rc == 0)
        rc = check_hbs(syn->heartbeats, syn->nheartbeats);
    if (rc == 0)
        rc = check_rumors(syn->rumors, syn->nrumors, rents, nrents);
    return rc;
}

int gossip_on_syn(gossip_t *g, const gossip_syn_t *syn, int64_t now_ms,
                  gossip_ack_t *ack)
{
    gossip_member_t rents[GOSSIP_MSG_RUMORS];
    struct gmember **rslot = NULL;
    size_t i, nrents = 0;
    int64_t now;
    int rc;

    memset(ack, 0, sizeof(*ack));
    now = clock_at(g, now_ms);
    rc = check_syn(syn, rents, &nrents);
    if (rc == -EINVAL)
        g->stats.msgs_rejected++;
    if (rc != 0)
        return rc;
    if (!sender_budget(g, syn->from.name, now))
        return -EBUSY;
    rc = plan_entries(g, rents, nrents, &rslot);
    if (rc != 0) {
        if (rc == -EINVAL)
            g->stats.msgs_rejected++;
        return rc;
    }
    /* Everything the answer may need, before anything is applied. */
    ack->entries = malloc((g->n + nrents) * sizeof(*ack->entries));
    ack->requests = malloc((syn->ndigests + syn->nheartbeats + 1) * sizeof(*ack->requests));
    if (syn->mask == 0)
        ack->buckets = malloc(syn->nbuckets * sizeof(*ack->buckets));
    if (ack->entries == NULL || ack->requests == NULL ||
        (syn->mask == 0 && ack->buckets == NULL) ||
        gossip__heartbeats_pick(g, &ack->heartbeats, &ack->nheartbeats) != 0 ||
        gossip__rumors_pick(g, &ack->rumors, &ack->nrumors) != 0) {
        for (i = 0; i < nrents && rslot != NULL; i++)
            free_member(rslot[i]);
        free(rslot);
        gossip_ack_free(ack);
        return -ENOMEM;
    }
    /* Apply: rumors first (what they tell is the freshest), then the
     * sender's and the relayed heartbeats. */
    count_entry_rumors(g, rents, nrents);
    commit_entries(g, rents, nrents, rslot, now, true);
    apply_downs(g, syn->rumors, syn->nrumors);
    if (syn->mask != 0)
        answer_digests(g, syn, ack);
    if (apply_hb(g, &syn->from, now, true))
        add_request(ack, syn->from.name, find(g, syn->from.name), true);
    for (i = 0; i < syn->nheartbeats; i++)
        if (apply_hb(g, &syn->heartbeats[i], now, false))
            add_request(ack, syn->heartbeats[i].name, find(g, syn->heartbeats[i].name), true);
    if (syn->mask == 0) {
        if (summary_of(g) != syn->summary) {
            bucket_hashes(g, syn->nbuckets, ack->buckets);
            ack->nbuckets = syn->nbuckets;
            g->stats.summaries_differ++;
        } else {
            free(ack->buckets);
            ack->buckets = NULL;
            g->stats.summaries_equal++;
        }
    }
    gossip__make_digest(&ack->from, &g->self->e);
    return 0;
}

/* The SYN2 of a bucket-hash ACK: digests of this node's members in the
 * buckets whose hashes differ (nbuckets 0 when none differ). */
static void build_syn2(gossip_t *g, const gossip_ack_t *ack, uint64_t *mine,
                       gossip_syn_t *syn2)
{
    uint32_t nb = (uint32_t)ack->nbuckets, b;
    size_t i;

    bucket_hashes(g, nb, mine);
    for (b = 0; b < nb; b++)
        if (mine[b] != ack->buckets[b])
            syn2->mask |= 1ULL << b;
    if (syn2->mask == 0) {
        gossip_syn_free(syn2);
        return;
    }
    gossip__make_digest(&syn2->from, &g->self->e);
    syn2->summary = summary_of(g);
    syn2->nbuckets = nb;
    for (i = 0; i < g->n; i++)
        if ((syn2->mask >> (g->members[i]->nh & (nb - 1))) & 1)
            gossip__make_digest(&syn2->digests[syn2->ndigests++], &g->members[i]->e);
}

int gossip_on_ack(gossip_t *g, const gossip_ack_t *ack, int64_t now_ms,
                  gossip_ack2_t *ack2, gossip_syn_t *syn2)
{
    gossip_member_t rents[GOSSIP_MSG_RUMORS];
    struct gmember **slot = NULL, **rslot = NULL;
    uint64_t mine[GOSSIP_MAX_BUCKETS];
    size_t i, nrents = 0, hint;
    int64_t now;
    int rc;

    memset(ack2, 0, sizeof(*ack2));
    if (syn2 != NULL)
        memset(syn2, 0, sizeof(*syn2));
    now = clock_at(g, now_ms);
    if (ack == NULL || !valid_hb(&ack->from) ||
        (ack->nbuckets > 0 && (!pow2_buckets(ack->nbuckets) || ack->buckets == NULL)) ||
        (ack->nbuckets > 0 && syn2 == NULL)) {
        g->stats.msgs_rejected++;
        return -EINVAL;
    }
    rc = check_digests(ack->requests, ack->nrequests);
    if (rc == 0)
        rc = check_hbs(ack->heartbeats, ack->nheartbeats);
    if (rc == 0)
        rc = check_rumors(ack->rumors, ack->nrumors, rents, &nrents);
    if (rc == 0)
        rc = plan_entries(g, ack->entries, ack->nentries, &slot);
    if (rc == 0) {
        rc = plan_entries(g, rents, nrents, &rslot);
        if (rc != 0) {
            for (i = 0; slot != NULL && i < ack->nentries; i++)
                free_member(slot[i]);
            free(slot);
        }
    }
    if (rc == -EINVAL)
        g->stats.msgs_rejected++;
    if (rc != 0)
        return rc;
    if (ack->nrequests > 0)
        ack2->entries = malloc(ack->nrequests * sizeof(*ack2->entries));
    if (ack->nbuckets > 0)
        syn2->digests = malloc((g->n + ack->nentries + nrents) * sizeof(*syn2->digests));
    if ((ack->nrequests > 0 && ack2->entries == NULL) ||
        (ack->nbuckets > 0 && syn2->digests == NULL)) {
        for (i = 0; slot != NULL && i < ack->nentries; i++)
            free_member(slot[i]);
        for (i = 0; rslot != NULL && i < nrents; i++)
            free_member(rslot[i]);
        free(slot);
        free(rslot);
        gossip_ack2_free(ack2);
        if (syn2 != NULL)
            gossip_syn_free(syn2);
        return -ENOMEM;
    }
    count_entry_rumors(g, rents, nrents);
    commit_entries(g, rents, nrents, rslot, now, true);
    commit_entries(g, ack->entries, ack->nentries, slot, now, false);
    apply_downs(g, ack->rumors, ack->nrumors);
    apply_hb(g, &ack->from, now, true);
    for (i = 0; i < ack->nheartbeats; i++)
        apply_hb(g, &ack->heartbeats[i], now, false);
    for (i = 0, hint = 0; i < ack->nrequests; i++) {
        const gossip_digest_t *r = &ack->requests[i];
        const struct gmember *m = find_hint(g, r->name, &hint);

        if (m != NULL && cmp_entry_digest(&m->e, r) > 0)
            ack2->entries[ack2->nentries++] = m->e;
    }
    if (ack->nbuckets > 0)
        build_syn2(g, ack, mine, syn2);
    return 0;
}

int gossip_on_ack2(gossip_t *g, const gossip_member_t *entries, size_t n,
                   int64_t now_ms)
{
    struct gmember **slot;
    int64_t now = clock_at(g, now_ms);
    int rc = plan_entries(g, entries, n, &slot);

    if (rc == -EINVAL)
        g->stats.msgs_rejected++;
    if (rc != 0)
        return rc;
    /* ACK2s carry no sender: one budget for all, as for unknown senders. */
    if (!budget_take(g, &g->ack2_budget, GOSSIP_FLOOD_BURST * UNKNOWN_BUDGET_FACTOR,
                     GOSSIP_FLOOD_RATE * UNKNOWN_BUDGET_FACTOR, now)) {
        size_t i;

        for (i = 0; slot != NULL && i < n; i++)
            free_member(slot[i]);
        free(slot);
        g->stats.msgs_throttled++;
        return -EBUSY;
    }
    commit_entries(g, entries, n, slot, now, false);
    return 0;
}

int gossip_on_mail(gossip_t *g, const gossip_member_t *entry, int64_t now_ms,
                   gossip_digest_t *me)
{
    struct gmember **slot, *m;
    int64_t now = clock_at(g, now_ms);
    size_t news;
    int rc;

    if (me != NULL)
        memset(me, 0, sizeof(*me));
    if (entry == NULL || !valid_entry(entry)) {
        g->stats.msgs_rejected++;
        return -EINVAL;
    }
    if (!sender_budget(g, entry->name, now))
        return -EBUSY;
    rc = plan_entries(g, entry, 1, &slot);
    if (rc == -EINVAL)
        g->stats.msgs_rejected++;
    if (rc != 0)
        return rc;
    news = commit_entries(g, entry, 1, slot, now, true);
    m = find(g, entry->name);
    if (m != NULL && m->e.generation == entry->generation)
        note_arrival(g, m, now, EV_DIRECT); /* the mail came from it */
    if (me != NULL)
        gossip__make_digest(me, &g->self->e);
    return news > 0;
}

int gossip_on_mail_ack(gossip_t *g, const gossip_target_t *to,
                       uint64_t version, const gossip_digest_t *answer,
                       int64_t now_ms)
{
    int64_t now = clock_at(g, now_ms);
    int ended = 0;
    size_t i;

    if (to == NULL || strnlen(to->name, sizeof(to->name)) == sizeof(to->name) ||
        strnlen(to->addr.host, sizeof(to->addr.host)) == sizeof(to->addr.host) ||
        (to->name[0] != '\0' && !valid_name(to->name, sizeof(to->name))))
        return -EINVAL;
    if (answer != NULL && valid_hb(answer))
        apply_hb(g, answer, now, true);
    if (version != g->self->e.version)
        return 0; /* the answer to an older change */
    if (to->name[0] != '\0') {
        struct gmember *m = find(g, to->name);

        if (m != NULL && m->mail_pending) {
            m->mail_pending = false;
            ended = 1;
        }
    } else {
        for (i = 0; i < g->nseeds; i++)
            if (g->seedmail[i].pending &&
                addr_equal(to->addr.host, to->addr.port, &g->seeds[i])) {
                g->seedmail[i].pending = false;
                ended = 1;
            }
    }
    g->stats.mail_acked += (uint64_t)ended;
    return ended;
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
    note_arrival(g, m, now, EV_DIRECT);
    return 1;
}

int gossip_set_status(gossip_t *g, gossip_status_t status, int64_t now_ms)
{
    return gossip_set_state(g, status, g->self->e.ring_epoch, g->self->e.xfer, now_ms);
}

int gossip_set_state(gossip_t *g, gossip_status_t status, uint64_t ring_epoch, uint32_t xfer,
                     int64_t now_ms)
{
    int64_t now = clock_at(g, now_ms);
    gossip_member_t e;

    if ((unsigned)status > GOSSIP_LEFT || xfer > GOSSIP_XFER_MAX)
        return -EINVAL;
    if (g->self->e.status == (uint32_t)status && g->self->e.ring_epoch == ring_epoch &&
        g->self->e.xfer == xfer)
        return 0;
    e = g->self->e;
    e.status = (uint32_t)status;
    e.ring_epoch = ring_epoch;
    e.xfer = xfer;
    e.version++;
    set_entry(g->self, &e);
    g->epoch++;
    gossip__rumor_heat(g, GOSSIP_RUMOR_ENTRY, &g->self->e);
    gossip__mail_start(g, now);
    return 0;
}

int gossip_remove(gossip_t *g, const char *name, uint64_t ring_epoch, int64_t now_ms)
{
    int64_t now = clock_at(g, now_ms);
    struct gmember *m;
    gossip_member_t e;

    if (name == NULL || !valid_name(name, GOSSIP_NAME_MAX + 1))
        return -EINVAL;
    m = find(g, name);
    if (m == NULL)
        return -ENOENT;
    if (m->is_self)
        return -EINVAL;
    if (m->e.status == GOSSIP_LEFT)
        return -ENOENT;
    e = m->e;
    e.status = GOSSIP_LEFT;
    e.flags |= GOSSIP_F_REMOVED;
    e.ring_epoch = ring_epoch;
    e.xfer = 0;
    e.version++;
    merge_one(g, m, &e, now); /* as if the entry had come by gossip */
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

void gossip_get_stats(const gossip_t *g, gossip_stats_t *out)
{
    *out = g->stats;
}

void gossip_round_free(gossip_round_t *round)
{
    if (round == NULL)
        return;
    gossip_syn_free(&round->syn);
    free(round->probes);
    free(round->mail);
    memset(round, 0, sizeof(*round));
}

void gossip_syn_free(gossip_syn_t *syn)
{
    if (syn == NULL)
        return;
    free(syn->digests);
    free(syn->heartbeats);
    free(syn->rumors);
    memset(syn, 0, sizeof(*syn));
}

void gossip_ack_free(gossip_ack_t *ack)
{
    if (ack == NULL)
        return;
    free(ack->buckets);
    free(ack->entries);
    free(ack->requests);
    free(ack->heartbeats);
    free(ack->rumors);
    memset(ack, 0, sizeof(*ack));
}

void gossip_ack2_free(gossip_ack2_t *ack2)
{
    if (ack2 == NULL)
        return;
    free(ack2->entries);
    memset(ack2, 0, sizeof(*ack2));
}
