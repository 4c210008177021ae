/*
 * aae.c - active anti-entropy (see aae.h and docs/antientropy.md): which
 * ranges this node holds, one TicTac tree each, their build by scan and
 * upkeep by deltas; the exchanges that compare them with the other
 * replicas and repair what differs; and tombstone GC.
 *
 *   cluster view changes ──(tick, every AAE_TICK_MS)──> relayout()
 *        kept ranges keep their built trees and exchange state; new ones:
 *        empty trees + ONE storage snapshot taken in the same step
 *   build_ev (one slice per loop turn) ──> aae_build_step()
 *        scans each unbuilt range on the snapshot, XORs
 *        tictac_key_hash(key, stored bytes) into its tree
 *   persist (node.c) ──> aae_on_persist(old hash, new hash) ──> tictac_update
 *
 *   exchange (every antientropy.interval_ms, next (range, peer) pair):
 *
 *     initiator I                                        peer P
 *     ROOT  [ring, range, root_I] ─────────────────────>  equal: [0, root, nil]
 *           <───────────────────── [0, root_P, 32 branch hashes]
 *     LEAVES [differing branches] ─────────────────────>
 *           <───────────────────── 32 leaf hashes per branch
 *     KEYS  [differing segments, <= 256] ──────────────>  scans its store
 *           <───────────────────── [done, (key, hash)...] of `done` segments
 *     I lists the same segments of its own store and joins the two lists:
 *       only at I, or hashes differ ─> push I's object;  only at P ─> pull
 *     SYNC  [(key, object | nil)...] ──────────────────>  node_merge each
 *           <───────────────────── per key: P's merged object, nil if equal
 *     I node_merges what came back: both now hold obj_sync(I, P)
 *     (KEYS and SYNC repeat until every differing segment is done)
 *     ROOT  again: in sync if the roots are now equal
 *
 *   tombstone GC (the range's leader, after an exchange that leaves it in
 *   sync with every other replica): scan the range for dead records older
 *   than the grace, GC_CHECK them with EVERY other replica (each answers
 *   whether it holds exactly that record), GC_PURGE the ones all hold, then
 *   purge them here.  A replica that is down or does not answer vetoes.
 *
 * Invariant of the trees: a tree equals "its range in the snapshot taken
 * when it was created (or last restarted)" XOR "every delta since".  For a
 * built tree that is the range as stored now; for one still building, the
 * scan adds the snapshot's records and the deltas already hold every later
 * change, so the result is right whichever way the scan and the writes
 * interleave.  This holds because the snapshot and the trees are created
 * in one synchronous step and every write reports its delta in the step
 * that stores it (single-threaded loop).  A scan error clears every unbuilt
 * tree and restarts them on a new snapshot.
 *
 * Jobs: at most one exchange or GC pass runs at a time (a->job), a state
 * machine moved by replies and timers.  It names its range by bounds, never
 * by a pointer into the layout (a view change may replace the layout while
 * a reply is in flight), and holds its cluster view.  A job whose driver
 * closed is orphaned (job->a NULL) and freed by its last reply, which the
 * transport guarantees (at the latest when it closes).
 *
 * Lookups: slot[] maps a ring range index of the layout's view to the held
 * range, so a persist costs one binary search of the ring and one O(1)
 * tree update.
 */
#include "aae.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hash.h"
#include "../common/log.h"
#include "msg.h"
#include "node.h"

#define SLOT_NONE UINT32_MAX
/* other replicas per range: config.c bounds cluster.n to 16 */
#define AAE_MAX_PEERS 16
/* a request's deadline: an exchange step is one scan or up to 256 merges */
#define AAE_MIN_TIMEOUT_MS 2000

/* The last exchange of a range with one other replica. */
typedef struct pstate {
    uint64_t id;      /* peer_id() of its name */
    int64_t last_us;  /* when it ended, 0: never */
    bool in_sync;     /* it ended with equal roots */
} pstate_t;

typedef struct held {
    uint64_t start, end;
    tictac_t *tree;
    bool built;
    uint32_t ring_idx;            /* in the layout's view */
    bool leader;                  /* first of the preference list: runs its GC */
    pstate_t ps[AAE_MAX_PEERS];   /* the other replicas, in preference order */
    uint32_t nps;
    /* the last exchange this node ran on the range (for `aae`) */
    bool exchanged;
    char last_peer[GOSSIP_NAME_MAX + 1];
    int64_t last_us;
    bool last_in_sync;
    uint64_t last_repaired;
    /* tombstone GC */
    uint64_t dead_writes;         /* dead records written since the last scan began */
    int64_t gc_due_us;            /* a scan may find something from then on */
    bool gc_scanned;              /* scanned since start (or since it was laid out) */
} held_t;

/* A token bucket: `rate` per second, at most one second's worth saved. */
typedef struct bucket {
    double tokens, rate;
    int64_t last_us;
} bucket_t;

/* A list of (token, key, hash) with the keys in one buffer. */
typedef struct kitem {
    uint64_t token, hash;
    uint32_t off;
    uint16_t klen;
    bool push;        /* exchange diff: send ours (else ask for theirs) */
} kitem_t;

typedef struct klist {
    kitem_t *v;
    size_t n, cap;
    uint8_t *buf;
    size_t blen, bcap;
} klist_t;

enum jstep { J_ROOT, J_LEAVES, J_KEYS, J_SYNC, J_VERIFY, J_GC_SCAN, J_GC_CHECK, J_GC_PURGE };

typedef struct job {
    struct aae *a;            /* NULL once the driver closed (orphaned) */
    bool waiting;             /* a request is in flight */
    bool gc;
    enum jstep step;
    cluster_view_t *view;     /* held */
    uint64_t start, end;      /* the range */
    uint32_t peer;            /* exchange: ring node index in view */
    uint32_t peers[AAE_MAX_PEERS]; /* GC: every other replica */
    uint32_t npeers, ipeer;
    /* exchange */
    uint32_t segs[TICTAC_SEGMENTS];
    uint32_t nsegs, seg_next;
    klist_t list;             /* exchange: keys to sync; GC: candidates */
    size_t list_next;
    uint32_t batch;           /* items of the SYNC in flight */
    uint64_t synced;
    /* GC */
    bool *agree;
    int64_t cutoff_us;        /* dead records older than this qualify */
    int64_t next_due_us;
    uint64_t dead_writes0;
    int phase;                /* scan: interval of the range */
    bool have_cursor;         /* scan: resume after (cur_token, cur_key) */
    uint64_t cur_token;
    uint8_t cur_key[MC_KEY_MAX];
    size_t cur_klen;
    bool scan_full;           /* the candidate list filled up: scan again soon */
    size_t purged;            /* candidates purged here */
} job_t;

typedef struct aae {
    server_t *srv;
    cluster_view_t *view;      /* the layout's view (held) */
    uint64_t ring_id;          /* aae_ring_id() of its ring */
    held_t *held;              /* in ring order */
    size_t nheld;
    uint32_t *slot;            /* per ring range of view: index in held, or SLOT_NONE */
    /* the build in progress */
    store_snapshot_t *snap;
    store_iter_t *it;
    size_t cur;                /* held range being scanned */
    int phase;                 /* 0: (start, ...]; 1: after wrapping past 2^64 */
    bool positioned;           /* the iterator is inside the current interval */
    struct event *tick, *build_ev;
    /* exchanges */
    struct event *xtick, *wait_ev;
    size_t x_cursor, x_peer;   /* the next (held range, peer slot) to exchange */
    job_t *job;
    bucket_t keys, bytes;
    msgpack_sbuffer sb;        /* encoding scratch */
    aae_stats_t stats;
} aae_t;

static uint64_t peer_id(const char *name) { return hash64(name, strlen(name)); }

uint64_t aae_ring_id(const ring_t *ring)
{
    uint64_t x = 0;
    uint32_t n = ring_node_count(ring);
    for (uint32_t i = 0; i < n; i++) /* XOR: the order members were learnt in does not count */
        x ^= peer_id(ring_node_name(ring, i));
    uint64_t shape = ((uint64_t)ring_vnodes(ring) << 32) | ring_n(ring);
    return hash64_seed(&x, sizeof(x), shape);
}

/* ---- the build ---- */

/* The token interval [lo, hi] of phase `phase` of range h: (start, end] is
 * [start+1, end], or when it wraps [start+1, 2^64-1] then [0, end].  False
 * when the range has no such phase. */
static bool interval(const held_t *h, int phase, uint64_t *lo, uint64_t *hi)
{
    bool wraps = h->start + 1 > h->end; /* start + 1 overflowing to 0 does not wrap */
    if (phase == 0) {
        *lo = h->start + 1;
        *hi = wraps ? UINT64_MAX : h->end;
        return true;
    }
    *lo = 0;
    *hi = h->end;
    return phase == 1 && wraps;
}

static void build_release(aae_t *a)
{
    store_iter_destroy(a->it);
    a->it = NULL;
    store_snapshot_release(a->srv->store, a->snap);
    a->snap = NULL;
}

/* (Re)start the build of every unbuilt tree from a new snapshot: their
 * content is discarded, since deltas are relative to the old one. */
static int build_restart(aae_t *a)
{
    build_release(a);
    a->cur = 0;
    a->phase = 0;
    a->positioned = false;
    bool any = false;
    for (size_t i = 0; i < a->nheld; i++)
        if (!a->held[i].built) {
            tictac_clear(a->held[i].tree);
            any = true;
        }
    a->stats.building = any;
    if (!any)
        return 0;
    a->snap = store_snapshot_create(a->srv->store);
    if (a->snap == NULL)
        return -ENOMEM;
    int rc = store_iter_create(a->srv->store, a->snap, &a->it);
    if (rc < 0)
        return rc;
    if (a->build_ev) {
        struct timeval now = {0, 0};
        event_add(a->build_ev, &now);
    }
    return 0;
}

/* ---- layout ---- */

static void held_free(held_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        tictac_free(h[i].tree);
    free(h);
}

/* The ranges view v makes this node hold, in ring order, into h[] (room
 * for every range) with their ring indices in idx[]; the count.  A range
 * of tied tokens (start == end beside other ranges) is empty: not held.
 * Each gets its other replicas (by name hash, in preference order) and
 * whether this node leads it (first of the preference list: the node that
 * runs its tombstone GC). */
static size_t held_ranges(const cluster_view_t *v, held_t *h, uint32_t *idx)
{
    const ring_t *ring = v->ring;
    size_t nr = ring_range_count(ring), n = 0;
    for (size_t i = 0; i < nr; i++) {
        uint64_t s, e;
        const uint32_t *list;
        uint32_t len;
        ring_range(ring, i, &s, &e, &list, &len);
        if (!ring_replicates_range(ring, v->self_idx, i) || (s == e && nr > 1))
            continue;
        h[n] = (held_t){.start = s, .end = e, .ring_idx = (uint32_t)i,
                        .leader = len > 0 && list[0] == v->self_idx};
        for (uint32_t j = 0; j < len && h[n].nps < AAE_MAX_PEERS; j++)
            if (list[j] != v->self_idx)
                h[n].ps[h[n].nps++].id = peer_id(ring_node_name(ring, list[j]));
        idx[n++] = (uint32_t)i;
    }
    return n;
}

/* The held range of a's layout with these bounds, or NULL. */
static held_t *find_held(aae_t *a, uint64_t start, uint64_t end)
{
    for (size_t j = 0; j < a->nheld; j++)
        if (a->held[j].start == start && a->held[j].end == end)
            return &a->held[j];
    return NULL;
}

/* What a kept range carries over to a new layout besides its tree: its
 * exchange history (per peer still a replica) and its GC state. */
static void carry_state(held_t *to, const held_t *from)
{
    for (uint32_t i = 0; i < to->nps; i++)
        for (uint32_t j = 0; j < from->nps; j++)
            if (from->ps[j].id == to->ps[i].id)
                to->ps[i] = from->ps[j];
    to->exchanged = from->exchanged;
    memcpy(to->last_peer, from->last_peer, sizeof(to->last_peer));
    to->last_us = from->last_us;
    to->last_in_sync = from->last_in_sync;
    to->last_repaired = from->last_repaired;
    to->dead_writes = from->dead_writes;
    to->gc_due_us = from->gc_due_us;
    to->gc_scanned = from->gc_scanned;
}

/* The held range of a's layout with these bounds and a built tree, or NULL. */
static held_t *find_built(aae_t *a, uint64_t start, uint64_t end)
{
    for (size_t j = 0; j < a->nheld; j++) {
        held_t *o = &a->held[j];
        if (o->tree && o->built && o->start == start && o->end == end)
            return o;
    }
    return NULL;
}

/* Follow the cluster's view v (the caller's reference to it moves to the
 * driver on success).  When it holds the same ranges as the layout, only
 * the range index map changes; otherwise built trees of ranges kept with
 * the same bounds move over and the others start empty, and the build
 * restarts.  On failure nothing changed. */
static int relayout(aae_t *a, cluster_view_t *v)
{
    size_t nr = ring_range_count(v->ring);
    held_t *nh = calloc(nr, sizeof(*nh));
    uint32_t *idx = malloc(nr * sizeof(*idx));
    uint32_t *slot = malloc(nr * sizeof(*slot));
    if (nh == NULL || idx == NULL || slot == NULL)
        goto nomem;
    size_t n = held_ranges(v, nh, idx);
    for (size_t i = 0; i < nr; i++)
        slot[i] = SLOT_NONE;
    for (size_t i = 0; i < n; i++)
        slot[idx[i]] = (uint32_t)i;
    bool same = a->view != NULL && n == a->nheld;
    for (size_t i = 0; i < n && same; i++)
        same = nh[i].start == a->held[i].start && nh[i].end == a->held[i].end;
    if (same) { /* e.g. a liveness change: same trees, same build */
        free(nh);
        free(idx);
        free(a->slot);
        a->slot = slot;
        cluster_view_release(a->view);
        a->view = v;
        a->ring_id = aae_ring_id(v->ring);
        return 0;
    }
    /* allocate first, move second, so a failure leaves the old layout */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (find_built(a, nh[i].start, nh[i].end) == NULL &&
            tictac_create(nh[i].start, nh[i].end, &nh[i].tree) < 0)
            goto nomem;
    for (size_t i = 0; i < n; i++) {
        held_t *o;
        if (nh[i].tree == NULL && (o = find_built(a, nh[i].start, nh[i].end)) != NULL) {
            nh[i].tree = o->tree;
            nh[i].built = true;
            o->tree = NULL;
            kept++;
        }
        if ((o = find_held(a, nh[i].start, nh[i].end)) != NULL)
            carry_state(&nh[i], o);
    }
    held_free(a->held, a->nheld);
    free(a->slot);
    free(idx);
    a->held = nh;
    a->nheld = n;
    a->slot = slot;
    cluster_view_release(a->view);
    a->view = v;
    a->ring_id = aae_ring_id(v->ring);
    a->x_cursor = a->x_peer = 0;
    a->stats.layouts++;
    a->stats.ranges = n;
    a->stats.ranges_built = kept;
    log_info("aae: %zu of %zu ranges held (%zu trees kept, %zu to build, %zu bytes of trees)",
             n, nr, kept, n - kept, n * tictac_memory(NULL));
    return build_restart(a);
nomem:
    if (nh)
        held_free(nh, nr); /* only trees created here: nothing was moved yet */
    free(idx);
    free(slot);
    return -ENOMEM;
}

/* Take a new cluster view into account (views change on liveness changes
 * too, which relayout() handles cheaply). */
static int follow_view(aae_t *a)
{
    cluster_view_t *cur = a->srv->cluster.view;
    if (cur == NULL || cur == a->view)
        return 0;
    int rc = relayout(a, cluster_view_hold(cur));
    if (rc < 0) {
        cluster_view_release(cur);
        log_warn("aae: cannot lay out the trees of the new view: %s", strerror(-rc));
    }
    return rc;
}

/* ---- the build step ---- */

int aae_build_step(server_t *srv, size_t budget)
{
    aae_t *a = srv->aae;
    if (a == NULL)
        return 0;
    int rc = follow_view(a);
    if (rc < 0)
        return rc;
    if (a->stats.building && a->it == NULL && (rc = build_restart(a)) < 0)
        return rc; /* the last restart failed half-way: try again */
    while (a->cur < a->nheld) {
        held_t *h = &a->held[a->cur];
        uint64_t lo, hi;
        if (h->built || !interval(h, a->phase, &lo, &hi)) {
            if (!h->built) { /* its last interval is done */
                h->built = true;
                a->stats.trees_built++;
                a->stats.ranges_built++;
            }
            a->cur++;
            a->phase = 0;
            a->positioned = false;
            continue;
        }
        if (!a->positioned) {
            store_iter_seek(a->it, lo, NULL, 0);
            a->positioned = true;
        }
        for (; store_iter_valid(a->it); store_iter_next(a->it)) {
            uint64_t tok = store_iter_token(a->it);
            if (tok > hi)
                break;
            if (budget == 0)
                return 1;
            budget--;
            size_t kl, vl;
            const uint8_t *k = store_iter_key(a->it, &kl);
            const uint8_t *v = store_iter_value(a->it, &vl);
            tictac_update(h->tree, tok, 0, tictac_key_hash(k, kl, v, vl));
            a->stats.keys_scanned++;
        }
        if ((rc = store_iter_error(a->it)) < 0) {
            log_warn("aae: tree build scan failed; restarting the build");
            int rrc = build_restart(a);
            return rrc < 0 ? rrc : rc;
        }
        a->phase++;
        a->positioned = false;
    }
    if (a->stats.building) {
        build_release(a);
        a->stats.building = false;
        a->stats.builds++;
        uint64_t keys = 0;
        for (size_t i = 0; i < a->nheld; i++)
            keys += tictac_keys(a->held[i].tree);
        log_info("aae: %zu trees built, %llu keys", a->nheld, (unsigned long long)keys);
    }
    return 0;
}

/* ---- key lists ---- */

static void klist_clear(klist_t *l)
{
    l->n = 0;
    l->blen = 0;
}

static void klist_free(klist_t *l)
{
    free(l->v);
    free(l->buf);
    memset(l, 0, sizeof(*l));
}

static int klist_add(klist_t *l, uint64_t token, const uint8_t *key, size_t klen, uint64_t hash,
                     bool push)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        kitem_t *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    if (l->blen + klen > l->bcap) {
        size_t cap = l->bcap ? l->bcap * 2 : 4096;
        while (cap < l->blen + klen)
            cap *= 2;
        uint8_t *b = realloc(l->buf, cap);
        if (!b)
            return -ENOMEM;
        l->buf = b;
        l->bcap = cap;
    }
    memcpy(l->buf + l->blen, key, klen);
    l->v[l->n++] = (kitem_t){.token = token, .hash = hash, .off = (uint32_t)l->blen,
                             .klen = (uint16_t)klen, .push = push};
    l->blen += klen;
    return 0;
}

static const uint8_t *kkey(const klist_t *l, size_t i) { return l->buf + l->v[i].off; }

/* Store order: token, then the key's bytes (a shorter prefix first), as
 * LevelDB's bytewise order of 'd' + big-endian token + key. */
static int korder(uint64_t ta, const uint8_t *ka, size_t la, uint64_t tb, const uint8_t *kb,
                  size_t lb)
{
    if (ta != tb)
        return ta < tb ? -1 : 1;
    int c = memcmp(ka, kb, la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

/* The records of segment seg of tree t, from the store: appended to l
 * with their tree hashes.  One seek, two for a segment that straddles
 * token 0 in the range that wraps. */
static int list_segment(store_iter_t *it, const tictac_t *t, uint32_t seg, klist_t *l)
{
    uint64_t first, last;
    int rc = tictac_segment_bounds(t, seg, &first, &last);
    if (rc == -ENOENT)
        return 0; /* a range narrower than 1024 tokens: an empty segment */
    if (rc < 0)
        return rc;
    uint64_t lo[2] = {first, 0}, hi[2] = {first <= last ? last : UINT64_MAX, last};
    for (int p = 0; p < (first <= last ? 1 : 2); p++) {
        for (store_iter_seek(it, lo[p], NULL, 0); store_iter_valid(it); store_iter_next(it)) {
            uint64_t tok = store_iter_token(it);
            if (tok > hi[p])
                break;
            size_t kl, vl;
            const uint8_t *k = store_iter_key(it, &kl);
            const uint8_t *v = store_iter_value(it, &vl);
            if (kl == 0 || kl > MC_KEY_MAX)
                continue; /* not a memcached key: never written through us */
            if ((rc = klist_add(l, tok, k, kl, tictac_token_hash(tok, v, vl), false)) < 0)
                return rc;
        }
        if ((rc = store_iter_error(it)) < 0)
            return rc;
    }
    return 0;
}

/* ---- throttles ---- */

static void bucket_init(bucket_t *b, double rate, int64_t now_us)
{
    b->rate = rate;
    b->tokens = rate; /* a second's worth to start with */
    b->last_us = now_us;
}

static void bucket_fill(bucket_t *b, int64_t now_us)
{
    if (now_us > b->last_us)
        b->tokens += (double)(now_us - b->last_us) * b->rate / 1e6;
    if (b->tokens > b->rate)
        b->tokens = b->rate;
    b->last_us = now_us;
}

/* Microseconds until b holds `need` tokens (0: now). */
static int64_t bucket_wait(const bucket_t *b, double need)
{
    if (b->tokens >= need)
        return 0;
    return (int64_t)((need - b->tokens) * 1e6 / b->rate) + 1;
}

/* ---- jobs: common ---- */

static void job_step(aae_t *a);

static void job_free(job_t *j)
{
    cluster_view_release(j->view);
    klist_free(&j->list);
    free(j->agree);
    free(j);
}

static void wait_us(aae_t *a, int64_t us)
{
    struct timeval tv = {us / 1000000, us % 1000000};
    event_add(a->wait_ev, &tv);
}

static const tictac_t *job_tree(aae_t *a, const job_t *j)
{
    held_t *h = find_held(a, j->start, j->end);
    return h && h->built ? h->tree : NULL;
}

static void on_job_reply(void *arg, int status, const frame_t *f);

/* Send request m of the job's step to ring node `to`.  The bytes count
 * against the throttle (already checked by the caller). */
static int job_send(aae_t *a, job_t *j, uint8_t type, uint32_t to, msg_aae_t *m)
{
    m->ring = a->ring_id;
    m->start = j->start;
    m->end = j->end;
    int rc = msg_encode(&a->sb, type, MSG_REQ, m);
    if (rc < 0)
        return rc;
    const cluster_node_t *n = &j->view->nodes[to];
    int timeout = a->srv->cfg.request_timeout_ms * 2;
    if (timeout < AAE_MIN_TIMEOUT_MS)
        timeout = AAE_MIN_TIMEOUT_MS;
    rc = transport_request(a->srv->cluster.transport, n->host, n->peer_port, type, a->sb.data,
                           a->sb.size, timeout, on_job_reply, j);
    if (rc < 0)
        return rc;
    a->stats.bytes_sent += a->sb.size;
    a->bytes.tokens -= (double)a->sb.size;
    j->waiting = true;
    return 0;
}

/* Whether every other replica of h had its last exchange end in sync. */
static bool all_in_sync(const held_t *h)
{
    for (uint32_t i = 0; i < h->nps; i++)
        if (h->ps[i].last_us == 0 || !h->ps[i].in_sync)
            return false;
    return true;
}

static void gc_start(aae_t *a, held_t *h);

/* The exchange ended (ok: it ran to the end; in_sync: with equal roots).
 * Records it on its range, if the layout still holds it, and starts the
 * range's GC when this node leads it and every replica agrees. */
static void exchange_end(aae_t *a, bool ok, bool in_sync)
{
    job_t *j = a->job;
    a->job = NULL;
    held_t *h = find_held(a, j->start, j->end);
    const cluster_node_t *peer = &j->view->nodes[j->peer];
    if (!ok) {
        a->stats.exchanges_failed++;
        log_debug("aae: exchange of (%llu, %llu] with %s failed", (unsigned long long)j->start,
                  (unsigned long long)j->end, peer->name);
    } else {
        a->stats.exchanges++;
    }
    if (h && ok) {
        int64_t now = node_now_us();
        uint64_t id = peer_id(peer->name);
        for (uint32_t i = 0; i < h->nps; i++)
            if (h->ps[i].id == id) {
                h->ps[i].last_us = now;
                h->ps[i].in_sync = in_sync;
            }
        h->exchanged = true;
        snprintf(h->last_peer, sizeof(h->last_peer), "%s", peer->name);
        h->last_us = now;
        h->last_in_sync = in_sync;
        h->last_repaired = j->synced;
    }
    job_free(j);
    if (h && ok && in_sync && h->leader && all_in_sync(h))
        gc_start(a, h);
}

static void gc_end(aae_t *a, bool ok);

static void job_fail(aae_t *a)
{
    if (a->job->gc)
        gc_end(a, false);
    else
        exchange_end(a, false, false);
}

/* ---- exchange ---- */

/* Start an exchange of held range h with ring node peer. */
static void exchange_start(aae_t *a, held_t *h, uint32_t peer)
{
    job_t *j = calloc(1, sizeof(*j));
    if (!j)
        return;
    j->a = a;
    j->view = cluster_view_hold(a->view);
    j->start = h->start;
    j->end = h->end;
    j->peer = peer;
    j->step = J_ROOT;
    a->job = j;
    job_step(a);
}

/* ROOT (or VERIFY) answered. */
static void on_root(aae_t *a, job_t *j, const msg_aae_t *m)
{
    const tictac_t *t = job_tree(a, j);
    if (!t) {
        exchange_end(a, false, false);
        return;
    }
    if (m->root == tictac_root(t) || j->step == J_VERIFY) {
        exchange_end(a, true, m->root == tictac_root(t));
        return;
    }
    if (m->nhashes != TICTAC_BRANCHES) { /* equal for the peer, changed here since */
        exchange_end(a, true, false);
        return;
    }
    uint32_t br[TICTAC_BRANCHES];
    size_t nb = tictac_compare(tictac_branches(t), m->hashes, TICTAC_BRANCHES, br,
                               TICTAC_BRANCHES);
    if (nb == 0) {
        j->step = J_VERIFY;
        return;
    }
    memcpy(j->segs, br, nb * sizeof(br[0])); /* the branches, for LEAVES */
    j->nsegs = (uint32_t)nb;
    j->step = J_LEAVES;
}

/* LEAVES answered: the differing segments. */
static void on_leaves(aae_t *a, job_t *j, const msg_aae_t *m)
{
    const tictac_t *t = job_tree(a, j);
    if (!t || m->nhashes != j->nsegs * TICTAC_LEAVES) {
        exchange_end(a, false, false);
        return;
    }
    uint32_t branches[TICTAC_BRANCHES], nb = j->nsegs, k = 0;
    memcpy(branches, j->segs, nb * sizeof(branches[0]));
    for (uint32_t b = 0; b < nb; b++) {
        uint32_t lv[TICTAC_LEAVES];
        size_t nl = tictac_compare(tictac_leaves(t, branches[b]), m->hashes + b * TICTAC_LEAVES,
                                   TICTAC_LEAVES, lv, TICTAC_LEAVES);
        for (size_t i = 0; i < nl; i++)
            j->segs[k++] = branches[b] * TICTAC_LEAVES + lv[i];
    }
    j->nsegs = k;
    j->seg_next = 0;
    j->step = k ? J_KEYS : J_VERIFY;
}

typedef struct ritem {
    uint64_t token, hash;
    const uint8_t *key;
    size_t klen;
} ritem_t;

static int ritem_cmp(const void *pa, const void *pb)
{
    const ritem_t *a = pa, *b = pb;
    return korder(a->token, a->key, a->klen, b->token, b->key, b->klen);
}

/* KEYS answered: list the same segments here, join the two lists into the
 * keys to sync. */
static void on_keys(aae_t *a, job_t *j, const msg_aae_t *m)
{
    const tictac_t *t = job_tree(a, j);
    uint32_t asked = j->nsegs - j->seg_next;
    if (asked > AAE_KEYS_SEGMENTS)
        asked = AAE_KEYS_SEGMENTS;
    if (!t || m->count > asked) {
        exchange_end(a, false, false);
        return;
    }
    if (m->count == 0) { /* one segment too big for an answer: skip it */
        j->seg_next++;
        j->step = j->seg_next < j->nsegs ? J_KEYS : J_VERIFY;
        return;
    }
    /* the peer's list, in store order, keeping only keys of the segments
     * it says it listed (anything else is not ours to trust) */
    bool want[TICTAC_SEGMENTS] = {false};
    const uint32_t *segs = j->segs + j->seg_next;
    for (uint32_t i = 0; i < m->count; i++)
        want[segs[i]] = true;
    ritem_t *r = malloc((m->nitems ? m->nitems : 1) * sizeof(*r));
    store_iter_t *it = NULL;
    klist_t local = {0};
    int rc = r ? store_iter_create(a->srv->store, NULL, &it) : -ENOMEM;
    size_t nr = 0;
    for (uint32_t i = 0; rc == 0 && i < m->nitems; i++) {
        const msg_aae_item_t *x = &m->items[i];
        uint64_t tok = store_key_token(x->key, x->klen);
        uint32_t s = tictac_segment(t, tok);
        if (s < TICTAC_SEGMENTS && want[s])
            r[nr++] = (ritem_t){tok, x->hash, x->key, x->klen};
    }
    if (rc == 0)
        qsort(r, nr, sizeof(*r), ritem_cmp);
    for (uint32_t i = 0; rc == 0 && i < m->count; i++)
        rc = list_segment(it, t, segs[i], &local);
    store_iter_destroy(it);
    klist_clear(&j->list);
    size_t li = 0, ri = 0;
    while (rc == 0 && (li < local.n || ri < nr)) {
        int c = li == local.n ? 1
                : ri == nr    ? -1
                              : korder(local.v[li].token, kkey(&local, li), local.v[li].klen,
                                       r[ri].token, r[ri].key, r[ri].klen);
        if (c < 0) { /* only here: push */
            rc = klist_add(&j->list, local.v[li].token, kkey(&local, li), local.v[li].klen, 0,
                           true);
            li++;
        } else if (c > 0) { /* only there: pull */
            rc = klist_add(&j->list, r[ri].token, r[ri].key, r[ri].klen, 0, false);
            ri++;
        } else {
            if (local.v[li].hash != r[ri].hash)
                rc = klist_add(&j->list, local.v[li].token, kkey(&local, li), local.v[li].klen,
                               0, true);
            li++;
            ri++;
        }
    }
    klist_free(&local);
    free(r);
    if (rc < 0) {
        exchange_end(a, false, false);
        return;
    }
    j->seg_next += m->count;
    j->list_next = 0;
    if (j->list.n)
        j->step = J_SYNC;
    else
        j->step = j->seg_next < j->nsegs ? J_KEYS : J_VERIFY;
}

/* SYNC answered: merge what came back. */
static void on_sync(aae_t *a, job_t *j, const msg_aae_t *m)
{
    if (m->nitems != j->batch) {
        exchange_end(a, false, false);
        return;
    }
    for (uint32_t i = 0; i < j->batch; i++) {
        size_t k = j->list_next + i;
        if (m->items[i].klen != j->list.v[k].klen ||
            memcmp(m->items[i].key, kkey(&j->list, k), m->items[i].klen)) {
            exchange_end(a, false, false);
            return;
        }
    }
    for (uint32_t i = 0; i < j->batch; i++) {
        const msg_aae_item_t *x = &m->items[i];
        uint64_t oh = 0, nh = 0;
        if (x->enc && node_merge_hashed(a->srv, x->key, x->klen, &x->obj, &oh, &nh) == 0 &&
            oh != nh)
            a->stats.keys_repaired++;
    }
    j->synced += j->batch;
    a->stats.keys_exchanged += j->batch;
    j->list_next += j->batch;
    j->batch = 0;
    if (j->list_next < j->list.n)
        return; /* next batch */
    klist_clear(&j->list);
    j->step = j->seg_next < j->nsegs ? J_KEYS : J_VERIFY;
}

/* Send the next SYNC batch: as many keys as the key throttle allows now. */
static int send_sync(aae_t *a, job_t *j)
{
    size_t left = j->list.n - j->list_next;
    size_t n = left < MSG_AAE_SYNC_MAX ? left : MSG_AAE_SYNC_MAX;
    if ((double)n > a->keys.tokens)
        n = (size_t)a->keys.tokens;
    if (n == 0)
        n = 1; /* the caller waited for one token */
    msg_aae_item_t *items = calloc(n, sizeof(*items));
    if (!items)
        return -ENOMEM;
    int rc = 0;
    size_t bytes = 0;
    for (size_t i = 0; i < n && rc >= 0; i++) {
        size_t k = j->list_next + i;
        items[i].key = kkey(&j->list, k);
        items[i].klen = j->list.v[k].klen;
        if (j->list.v[k].push) { /* ours as stored now (absent since: nil) */
            uint8_t *enc = NULL;
            size_t len = 0;
            rc = store_get_enc(a->srv->store, items[i].key, items[i].klen, &enc, &len);
            if (i > 0 && bytes + len > AAE_SYNC_BYTES) { /* the next batch takes it */
                free(enc);
                n = i;
                break;
            }
            items[i].enc = enc;
            items[i].enclen = len;
            bytes += len;
        }
    }
    msg_aae_t m = {.items = items, .nitems = (uint32_t)n};
    if (rc >= 0)
        rc = job_send(a, j, MSG_AAE_SYNC, j->peer, &m);
    for (size_t i = 0; i < n; i++)
        free((void *)items[i].enc);
    free(items);
    if (rc >= 0) {
        j->batch = (uint32_t)n;
        a->keys.tokens -= (double)n;
    }
    return rc;
}

/* ---- tombstone GC ---- */

/* The grace a dead record must be older than: storage.tombstone_grace_s,
 * and with hinted handoff on at least handoff.hint_ttl_s, so that no hint
 * written before the delete can still bring the old value back. */
static int64_t grace_us(const server_t *srv)
{
    int64_t g = srv->cfg.tombstone_grace_s;
    if (srv->cfg.handoff_enabled && srv->cfg.hint_ttl_s > g)
        g = srv->cfg.hint_ttl_s;
    return g * 1000000;
}

static bool gc_due(const held_t *h, int64_t now)
{
    return !h->gc_scanned || h->dead_writes > 0 || now >= h->gc_due_us;
}

/* Start a GC pass of h (we lead it; its last exchanges with every other
 * replica ended in sync), if there can be something to purge and every
 * replica is up. */
static void gc_start(aae_t *a, held_t *h)
{
    int64_t now = node_now_us();
    if (a->job || !h->built || !gc_due(h, now))
        return;
    const cluster_view_t *v = a->view;
    const uint32_t *list;
    uint32_t len;
    if (ring_range(v->ring, h->ring_idx, NULL, NULL, &list, &len) < 0)
        return;
    job_t *j = calloc(1, sizeof(*j));
    if (!j)
        return;
    for (uint32_t i = 0; i < len; i++) {
        if (list[i] == v->self_idx)
            continue;
        if (v->down[list[i]] || j->npeers == AAE_MAX_PEERS) { /* a replica down vetoes */
            free(j);
            return;
        }
        j->peers[j->npeers++] = list[i];
    }
    j->a = a;
    j->gc = true;
    j->view = cluster_view_hold(a->view);
    j->start = h->start;
    j->end = h->end;
    j->step = J_GC_SCAN;
    j->cutoff_us = now - grace_us(a->srv);
    j->next_due_us = INT64_MAX;
    j->dead_writes0 = h->dead_writes;
    a->job = j;
    a->stats.gc_passes++;
    job_step(a);
}

static void gc_end(aae_t *a, bool ok)
{
    job_t *j = a->job;
    a->job = NULL;
    held_t *h = find_held(a, j->start, j->end);
    if (h && ok) {
        h->gc_scanned = true;
        h->dead_writes -= j->dead_writes0 < h->dead_writes ? j->dead_writes0 : h->dead_writes;
        /* records left (not agreed on, or more than one pass holds): look
         * again after the next exchange that finds the range in sync */
        h->gc_due_us = j->scan_full || j->purged < j->list.n ? 0 : j->next_due_us;
    } else if (h) {
        h->gc_due_us = 0;
    }
    job_free(j);
}

/* One slice of the GC scan: collect dead records older than the cutoff
 * (up to MSG_AAE_GC_MAX), note when the younger ones come of age.
 * Returns 1 while the range has more to scan, 0 at its end, <0 on error. */
static int gc_scan_slice(aae_t *a, job_t *j)
{
    held_t *h = find_held(a, j->start, j->end);
    if (!h)
        return -ENOENT;
    store_iter_t *it;
    int rc = store_iter_create(a->srv->store, NULL, &it);
    if (rc < 0)
        return rc;
    obj_t o;
    obj_init(&o);
    size_t budget = AAE_BUILD_SLICE;
    uint64_t lo, hi;
    int more = 0;
    while (interval(h, j->phase, &lo, &hi)) {
        if (j->have_cursor) {
            store_iter_seek(it, j->cur_token, j->cur_key, j->cur_klen);
            size_t kl;
            const uint8_t *k = store_iter_key(it, &kl);
            if (store_iter_valid(it) && store_iter_token(it) == j->cur_token &&
                kl == j->cur_klen && !memcmp(k, j->cur_key, kl))
                store_iter_next(it); /* seen by the previous slice */
        } else {
            store_iter_seek(it, lo, NULL, 0);
        }
        for (; store_iter_valid(it); store_iter_next(it)) {
            uint64_t tok = store_iter_token(it);
            if (tok > hi)
                break;
            if (budget == 0 || j->list.n == MSG_AAE_GC_MAX) {
                more = 1;
                j->scan_full = j->list.n == MSG_AAE_GC_MAX;
                goto out;
            }
            budget--;
            size_t kl, vl;
            const uint8_t *k = store_iter_key(it, &kl);
            const uint8_t *v = store_iter_value(it, &vl);
            if (kl == 0 || kl > MC_KEY_MAX)
                continue;
            j->have_cursor = true;
            j->cur_token = tok;
            memcpy(j->cur_key, k, kl);
            j->cur_klen = kl;
            if (obj_decode(v, vl, &o) < 0 || !node_dead(&o))
                continue;
            int64_t newest = node_newest_us(&o);
            if (newest < j->cutoff_us) {
                if ((rc = klist_add(&j->list, tok, k, kl, tictac_token_hash(tok, v, vl), false)) < 0)
                    goto out;
            } else if (newest + grace_us(a->srv) < j->next_due_us) {
                j->next_due_us = newest + grace_us(a->srv);
            }
        }
        if ((rc = store_iter_error(it)) < 0)
            goto out;
        j->phase++;
        j->have_cursor = false;
    }
out:
    obj_free(&o);
    store_iter_destroy(it);
    if (rc < 0)
        return rc;
    if (j->scan_full)
        return 0; /* enough for one pass: purge these, scan again next time */
    return more;
}

/* The GC records of the job as a message list (agreed ones only when
 * only_agreed). */
static int gc_items(job_t *j, bool only_agreed, msg_aae_item_t **out, uint32_t *n)
{
    *out = calloc(j->list.n ? j->list.n : 1, sizeof(**out));
    if (!*out)
        return -ENOMEM;
    uint32_t k = 0;
    for (size_t i = 0; i < j->list.n; i++)
        if (!only_agreed || j->agree[i])
            (*out)[k++] = (msg_aae_item_t){.key = kkey(&j->list, i), .klen = j->list.v[i].klen,
                                           .hash = j->list.v[i].hash};
    *n = k;
    return 0;
}

/* Every replica was asked: tell them to purge, then purge here. */
static void gc_purge_local(aae_t *a, job_t *j)
{
    for (size_t i = 0; i < j->list.n; i++)
        if (j->agree[i] && node_purge_if(a->srv, kkey(&j->list, i), j->list.v[i].klen,
                                         j->list.v[i].hash, j->cutoff_us) == 1)
            j->purged++;
    a->stats.tombstones_purged += j->purged;
}

/* ---- the job's state machine ---- */

/* Do the job's next step: send its next request (after the throttle
 * allows it), or run local work. */
static void job_step(aae_t *a)
{
    job_t *j;
    while ((j = a->job) != NULL && !j->waiting) {
        int64_t now = node_now_us();
        bucket_fill(&a->keys, now);
        bucket_fill(&a->bytes, now);
        /* the byte throttle: no request while over budget */
        int64_t w = bucket_wait(&a->bytes, 0);
        if (j->step == J_SYNC && w == 0)
            w = bucket_wait(&a->keys, 1);
        if (w > 0 && j->step != J_GC_SCAN) {
            wait_us(a, w);
            return;
        }
        int rc = 0;
        msg_aae_t m = {0};
        switch (j->step) {
        case J_ROOT:
        case J_VERIFY: {
            const tictac_t *t = job_tree(a, j);
            if (!t) {
                exchange_end(a, false, false);
                continue;
            }
            m.root = tictac_root(t);
            rc = job_send(a, j, MSG_AAE_ROOT, j->peer, &m);
            break;
        }
        case J_LEAVES:
            m.idx = j->segs; /* the differing branches */
            m.nidx = j->nsegs;
            rc = job_send(a, j, MSG_AAE_LEAVES, j->peer, &m);
            break;
        case J_KEYS: {
            uint32_t n = j->nsegs - j->seg_next;
            m.idx = j->segs + j->seg_next;
            m.nidx = n < AAE_KEYS_SEGMENTS ? n : AAE_KEYS_SEGMENTS;
            rc = job_send(a, j, MSG_AAE_KEYS, j->peer, &m);
            break;
        }
        case J_SYNC:
            rc = send_sync(a, j);
            break;
        case J_GC_SCAN:
            rc = gc_scan_slice(a, j);
            if (rc == 1) { /* more: the next loop turn, after waiting requests */
                wait_us(a, 0);
                return;
            }
            if (rc == 0) {
                if (j->list.n == 0) {
                    gc_end(a, true);
                    continue;
                }
                j->agree = malloc(j->list.n * sizeof(*j->agree));
                if (!j->agree) {
                    rc = -ENOMEM;
                    break;
                }
                for (size_t i = 0; i < j->list.n; i++)
                    j->agree[i] = true;
                j->step = j->npeers ? J_GC_CHECK : J_GC_PURGE;
                j->ipeer = 0;
            }
            break;
        case J_GC_CHECK:
        case J_GC_PURGE: {
            if (j->step == J_GC_PURGE && j->ipeer == j->npeers) {
                gc_purge_local(a, j);
                gc_end(a, true);
                continue;
            }
            rc = gc_items(j, j->step == J_GC_PURGE, &m.items, &m.nitems);
            if (rc == 0 && m.nitems == 0) { /* nobody agrees on anything */
                free(m.items);
                gc_end(a, true);
                continue;
            }
            if (rc == 0)
                rc = job_send(a, j, j->step == J_GC_CHECK ? MSG_AAE_GC_CHECK : MSG_AAE_GC_PURGE,
                              j->peers[j->ipeer], &m);
            free(m.items);
            break;
        }
        }
        if (rc < 0)
            job_fail(a);
    }
}

/* A reply to the job's request (or its failure). */
static void on_job_reply(void *arg, int status, const frame_t *f)
{
    job_t *j = arg;
    aae_t *a = j->a;
    j->waiting = false;
    if (a == NULL) { /* the driver closed meanwhile */
        job_free(j);
        return;
    }
    static const uint8_t type_of[] = {
        [J_ROOT] = MSG_AAE_ROOT, [J_LEAVES] = MSG_AAE_LEAVES, [J_KEYS] = MSG_AAE_KEYS,
        [J_SYNC] = MSG_AAE_SYNC, [J_VERIFY] = MSG_AAE_ROOT, [J_GC_CHECK] = MSG_AAE_GC_CHECK,
        [J_GC_PURGE] = MSG_AAE_GC_PURGE,
    };
    uint8_t type = type_of[j->step];
    msg_any_t m;
    if (status != 0 || f->type != type || msg_decode(type, MSG_REP, &f->body, &m) < 0) {
        if (status == 0)
            a->stats.bytes_received += f->wire_len;
        if (j->step == J_GC_PURGE) { /* it keeps its tombstone: it will come back */
            j->ipeer++;
            job_step(a);
            return;
        }
        job_fail(a);
        job_step(a);
        return;
    }
    a->stats.bytes_received += f->wire_len;
    a->bytes.tokens -= (double)f->wire_len;
    const msg_aae_t *r = &m.aae;
    if (r->code != 0) { /* refused, or its tree is still building */
        if (j->step == J_GC_PURGE) {
            j->ipeer++;
        } else {
            job_fail(a);
        }
    } else {
        switch (j->step) {
        case J_ROOT:
        case J_VERIFY: on_root(a, j, r); break;
        case J_LEAVES: on_leaves(a, j, r); break;
        case J_KEYS: on_keys(a, j, r); break;
        case J_SYNC: on_sync(a, j, r); break;
        case J_GC_CHECK:
            if (r->nagree != j->list.n) {
                job_fail(a);
                break;
            }
            for (size_t i = 0; i < j->list.n; i++)
                j->agree[i] = j->agree[i] && r->agree[i];
            if (++j->ipeer == j->npeers) {
                j->step = J_GC_PURGE;
                j->ipeer = 0;
            }
            break;
        case J_GC_PURGE: j->ipeer++; break;
        case J_GC_SCAN: break;
        }
    }
    msg_free(type, MSG_REP, &m);
    job_step(a);
}

/* Every antientropy.interval_ms: the next (range, peer) pair, in a fair
 * rotation, whose tree is built and whose peer is up. */
static void on_xtick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    aae_t *a = arg;
    if (a->job || a->view == NULL || a->nheld == 0 || a->srv->cluster.transport == NULL)
        return;
    if (admit_busy(a->srv)) { /* client work first (admit.h): skip this round */
        admit_deferred(a->srv);
        return;
    }
    const cluster_view_t *v = a->view;
    size_t pairs = 0;
    for (size_t i = 0; i < a->nheld; i++)
        pairs += a->held[i].nps;
    /* at most one look at every pair, and one step past each range */
    for (size_t step = 0, tried = 0; step < pairs + a->nheld + 1 && tried < pairs; step++) {
        if (a->x_cursor >= a->nheld) {
            a->x_cursor = 0;
            a->x_peer = 0;
        }
        held_t *h = &a->held[a->x_cursor];
        if (a->x_peer >= h->nps) {
            a->x_cursor++;
            a->x_peer = 0;
            continue;
        }
        tried++;
        size_t slot = a->x_peer++;
        if (!h->built)
            continue;
        const uint32_t *list;
        uint32_t len;
        if (ring_range(v->ring, h->ring_idx, NULL, NULL, &list, &len) < 0)
            continue;
        for (uint32_t k = 0, seen = 0; k < len; k++) {
            if (list[k] == v->self_idx)
                continue;
            if (seen++ != slot)
                continue;
            if (v->down[list[k]])
                break;
            exchange_start(a, h, list[k]);
            return;
        }
    }
}

static void on_wait(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job_step(arg);
}

/* ---- the peer side ---- */

static void answer(aae_t *a, peer_link_t *link, const frame_t *f, const void *m)
{
    if (msg_encode(&a->sb, f->type, MSG_REP, m) < 0 && msg_encode_status(&a->sb, -ENOMEM) < 0)
        return;
    a->stats.bytes_sent += a->sb.size;
    transport_reply(link, f->req_id, f->type, a->sb.data, a->sb.size);
}

static void answer_status(server_t *srv, peer_link_t *link, const frame_t *f, int64_t code)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (msg_encode_status(&sb, code) == 0) {
        if (srv->aae)
            srv->aae->stats.bytes_sent += sb.size;
        transport_reply(link, f->req_id, f->type, sb.data, sb.size);
    }
    msgpack_sbuffer_destroy(&sb);
}

void aae_refuse(server_t *srv, peer_link_t *link, const frame_t *f)
{
    if (srv->aae) {
        srv->aae->stats.refused++;
        srv->aae->stats.bytes_received += f->wire_len;
    }
    if (f->kind == FRAME_REQUEST)
        answer_status(srv, link, f, -EINVAL);
}

/* The held range a request names, with a built tree; NULL after answering
 * a refusal (counted) or "busy". */
static held_t *serve_range(server_t *srv, peer_link_t *link, const frame_t *f,
                           const msg_aae_t *m)
{
    aae_t *a = srv->aae;
    if (a == NULL) {
        answer_status(srv, link, f, -ENOTSUP);
        return NULL;
    }
    a->stats.bytes_received += f->wire_len;
    held_t *h = NULL;
    int64_t code = 0;
    if (a->view == NULL || m->ring != a->ring_id)
        code = -ESTALE; /* another ring: its ranges are not ours */
    else if ((h = find_held(a, m->start, m->end)) == NULL)
        code = -ENOENT;
    if (code) {
        a->stats.refused++;
        answer_status(srv, link, f, code);
        return NULL;
    }
    if (!h->built || admit_busy(srv)) { /* not ready, or shedding client load */
        a->stats.busy++;
        answer_status(srv, link, f, -EAGAIN);
        return NULL;
    }
    return h;
}

/* Every key of the list lies in h's range (else the request is refused
 * before anything changes). */
static bool keys_in_range(server_t *srv, peer_link_t *link, const frame_t *f, const held_t *h,
                          const msg_aae_t *m)
{
    for (uint32_t i = 0; i < m->nitems; i++)
        if (!tictac_contains(h->tree, store_key_token(m->items[i].key, m->items[i].klen))) {
            srv->aae->stats.refused++;
            answer_status(srv, link, f, -ERANGE);
            return false;
        }
    return true;
}

void aae_on_root(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *msg)
{
    const msg_aae_t *m = &msg->aae;
    held_t *h = serve_range(srv, link, f, m);
    if (!h)
        return;
    msg_aae_t r = {.root = tictac_root(h->tree)};
    if (r.root != m->root) {
        r.hashes = (uint64_t *)tictac_branches(h->tree);
        r.nhashes = TICTAC_BRANCHES;
    }
    answer(srv->aae, link, f, &r);
}

void aae_on_leaves(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *msg)
{
    const msg_aae_t *m = &msg->aae;
    held_t *h = serve_range(srv, link, f, m);
    if (!h)
        return;
    uint64_t leaves[TICTAC_SEGMENTS];
    for (uint32_t i = 0; i < m->nidx; i++)
        memcpy(leaves + i * TICTAC_LEAVES, tictac_leaves(h->tree, m->idx[i]),
               TICTAC_LEAVES * sizeof(uint64_t));
    msg_aae_t r = {.hashes = leaves, .nhashes = m->nidx * TICTAC_LEAVES};
    answer(srv->aae, link, f, &r);
}

void aae_on_keys(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *msg)
{
    const msg_aae_t *m = &msg->aae;
    held_t *h = serve_range(srv, link, f, m);
    if (!h)
        return;
    klist_t l = {0};
    store_iter_t *it;
    int rc = store_iter_create(srv->store, NULL, &it);
    uint32_t done = 0;
    size_t bytes = 0;
    for (uint32_t i = 0; rc == 0 && i < m->nidx; i++) {
        size_t n0 = l.n, b0 = l.blen;
        if ((rc = list_segment(it, h->tree, m->idx[i], &l)) < 0)
            break;
        bytes += (l.blen - b0) + (l.n - n0) * 12; /* key + hash and framing */
        if ((done > 0 && bytes > AAE_KEYS_REPLY_BYTES) || l.n > MSG_AAE_KEYS_MAX) {
            l.n = n0; /* this segment goes in the next answer */
            break;
        }
        done++;
    }
    store_iter_destroy(it);
    msg_aae_item_t *items = rc == 0 ? calloc(l.n ? l.n : 1, sizeof(*items)) : NULL;
    if (!items) {
        answer_status(srv, link, f, rc < 0 ? rc : -ENOMEM);
        klist_free(&l);
        return;
    }
    for (size_t i = 0; i < l.n; i++)
        items[i] = (msg_aae_item_t){.key = kkey(&l, i), .klen = l.v[i].klen, .hash = l.v[i].hash};
    msg_aae_t r = {.count = done, .items = items, .nitems = (uint32_t)l.n};
    answer(srv->aae, link, f, &r);
    free(items);
    klist_free(&l);
}

void aae_on_sync(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *msg)
{
    const msg_aae_t *m = &msg->aae;
    held_t *h = serve_range(srv, link, f, m);
    if (!h || !keys_in_range(srv, link, f, h, m))
        return;
    aae_t *a = srv->aae;
    msg_aae_item_t *items = calloc(m->nitems, sizeof(*items));
    if (!items) {
        answer_status(srv, link, f, -ENOMEM);
        return;
    }
    int rc = 0;
    size_t bytes = 0;
    for (uint32_t i = 0; i < m->nitems && rc >= 0; i++) {
        const msg_aae_item_t *x = &m->items[i];
        items[i].key = x->key;
        items[i].klen = x->klen;
        uint64_t oh = 0, nh = 0;
        if (x->enc) {
            if ((rc = node_merge_hashed(srv, x->key, x->klen, &x->obj, &oh, &nh)) < 0)
                break;
            if (oh != nh)
                a->stats.keys_repaired++;
            if (nh == x->hash)
                continue; /* both now hold what was sent */
        }
        if (bytes > AAE_SYNC_BYTES)
            continue; /* answer full: nil, the next exchange takes it (aae.h) */
        uint8_t *enc = NULL;
        size_t len = 0;
        rc = store_get_enc(srv->store, x->key, x->klen, &enc, &len);
        items[i].enc = enc;
        items[i].enclen = len;
        bytes += len;
    }
    msg_aae_t r = {.items = items, .nitems = m->nitems};
    if (rc < 0)
        answer_status(srv, link, f, rc);
    else
        answer(a, link, f, &r);
    for (uint32_t i = 0; i < m->nitems; i++)
        free((void *)items[i].enc);
    free(items);
}

void aae_on_gc_check(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *msg)
{
    const msg_aae_t *m = &msg->aae;
    held_t *h = serve_range(srv, link, f, m);
    if (!h || !keys_in_range(srv, link, f, h, m))
        return;
    bool agree[MSG_AAE_GC_MAX];
    int64_t cutoff = node_now_us() - grace_us(srv);
    obj_t o;
    obj_init(&o);
    for (uint32_t i = 0; i < m->nitems; i++) {
        const msg_aae_item_t *x = &m->items[i];
        /* exactly that record, dead, and past the grace by our clock too */
        agree[i] = store_get(srv->store, x->key, x->klen, &o) == 1 && o.stored_hash == x->hash &&
                   node_dead(&o) && node_newest_us(&o) < cutoff;
        obj_free(&o);
    }
    msg_aae_t r = {.agree = agree, .nagree = m->nitems};
    answer(srv->aae, link, f, &r);
}

void aae_on_gc_purge(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *msg)
{
    const msg_aae_t *m = &msg->aae;
    held_t *h = serve_range(srv, link, f, m);
    if (!h || !keys_in_range(srv, link, f, h, m))
        return;
    int64_t cutoff = node_now_us() - grace_us(srv);
    msg_aae_t r = {0};
    for (uint32_t i = 0; i < m->nitems; i++)
        if (node_purge_if(srv, m->items[i].key, m->items[i].klen, m->items[i].hash, cutoff) == 1)
            r.count++;
    srv->aae->stats.tombstones_purged += r.count;
    answer(srv->aae, link, f, &r);
}

/* ---- events ---- */

static void on_build(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    aae_t *a = arg;
    int rc = aae_build_step(a->srv, AAE_BUILD_SLICE);
    if (rc != 0) {
        /* more to do: the next loop turn, after whatever requests are
         * waiting; after an error, a pause before retrying */
        struct timeval tv = {rc < 0 ? 1 : 0, 0};
        event_add(a->build_ev, &tv);
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    aae_t *a = arg;
    follow_view(a);
}

/* ---- the write hook ---- */

void aae_on_persist(server_t *srv, const void *key, size_t klen, uint64_t old_hash,
                    uint64_t new_hash, bool dead)
{
    aae_t *a = srv->aae;
    if (a == NULL || a->view == NULL)
        return;
    uint64_t tok = store_key_token(key, klen);
    uint32_t s = a->slot[ring_range_of(a->view->ring, tok)];
    if (s == SLOT_NONE) {
        a->stats.updates_outside++;
        return;
    }
    tictac_update(a->held[s].tree, tok, old_hash, new_hash);
    a->held[s].dead_writes += dead;
    a->stats.updates++;
}

/* ---- open, close, state ---- */

int aae_open(server_t *srv, char *err, size_t errlen)
{
    srv->aae = NULL;
    if (!srv->cfg.ae_enabled)
        return 0;
    aae_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->srv = srv;
    msgpack_sbuffer_init(&a->sb);
    int64_t now = node_now_us();
    bucket_init(&a->keys, srv->cfg.ae_max_keys_per_s, now);
    bucket_init(&a->bytes, (double)srv->cfg.ae_max_bytes_per_s, now);
    srv->aae = a;
    if (srv->base) {
        a->build_ev = evtimer_new(srv->base, on_build, a);
        a->wait_ev = evtimer_new(srv->base, on_wait, a);
        a->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, a);
        a->xtick = event_new(srv->base, -1, EV_PERSIST, on_xtick, a);
        struct timeval tv = {0, AAE_TICK_MS * 1000};
        struct timeval xv = {srv->cfg.ae_interval_ms / 1000, (srv->cfg.ae_interval_ms % 1000) * 1000};
        if (!a->build_ev || !a->wait_ev || !a->tick || !a->xtick || event_add(a->tick, &tv) < 0 ||
            event_add(a->xtick, &xv) < 0) {
            snprintf(err, errlen, "cannot start the anti-entropy timers");
            return -1;
        }
    }
    if (follow_view(a) < 0) {
        snprintf(err, errlen, "cannot lay out the anti-entropy trees");
        return -1;
    }
    return 0;
}

void aae_close(server_t *srv)
{
    aae_t *a = srv->aae;
    if (a == NULL)
        return;
    if (a->tick)
        event_free(a->tick);
    if (a->build_ev)
        event_free(a->build_ev);
    if (a->xtick)
        event_free(a->xtick);
    if (a->wait_ev)
        event_free(a->wait_ev);
    if (a->job) {
        if (a->job->waiting)
            a->job->a = NULL; /* its reply (or the transport's close) frees it */
        else
            job_free(a->job);
    }
    build_release(a);
    held_free(a->held, a->nheld);
    free(a->slot);
    cluster_view_release(a->view);
    msgpack_sbuffer_destroy(&a->sb);
    free(a);
    srv->aae = NULL;
}

void aae_get_stats(const server_t *srv, aae_stats_t *out)
{
    if (srv->aae)
        *out = srv->aae->stats;
    else
        memset(out, 0, sizeof(*out));
}

size_t aae_range_count(const server_t *srv) { return srv->aae ? srv->aae->nheld : 0; }

int aae_range_get(const server_t *srv, size_t i, aae_range_info_t *out)
{
    const aae_t *a = srv->aae;
    if (a == NULL || i >= a->nheld)
        return -EINVAL;
    const held_t *h = &a->held[i];
    memset(out, 0, sizeof(*out));
    out->start = h->start;
    out->end = h->end;
    out->root = tictac_root(h->tree);
    out->keys = tictac_keys(h->tree);
    out->built = h->built;
    out->exchanged = h->exchanged;
    snprintf(out->peer, sizeof(out->peer), "%s", h->exchanged ? h->last_peer : "-");
    out->last_us = h->last_us;
    out->in_sync = h->last_in_sync;
    out->repaired = h->last_repaired;
    out->all_in_sync = all_in_sync(h);
    return 0;
}

size_t aae_ranges_in_sync(const server_t *srv)
{
    const aae_t *a = srv->aae;
    size_t n = 0;
    for (size_t i = 0; a && i < a->nheld; i++)
        n += all_in_sync(&a->held[i]);
    return n;
}

const tictac_t *aae_tree(const server_t *srv, size_t i)
{
    const aae_t *a = srv->aae;
    return a && i < a->nheld ? a->held[i].tree : NULL;
}

size_t aae_tree_memory(const server_t *srv)
{
    return srv->aae ? srv->aae->nheld * tictac_memory(NULL) : 0;
}
