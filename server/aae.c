/*
 * aae.c - the anti-entropy driver's trees (see aae.h): which ranges this
 * node holds, one TicTac tree each, their build by scan and their upkeep
 * by deltas.  (The exchange between peers comes on top of this.)
 *
 *   cluster view changes ──(tick, every AAE_TICK_MS)──> relayout()
 *        kept ranges keep their built trees; new ones: empty trees
 *        + ONE storage snapshot taken in the same step
 *                        │
 *                        v
 *   build_ev (one slice per loop turn) ──> aae_build_step()
 *        scans each unbuilt range on the snapshot, in token order:
 *        (start, end] is one seek (two for the range that wraps past 2^64)
 *        XORs tictac_key_hash(key, stored bytes) into the tree
 *
 *   persist (node.c) ──> aae_on_persist() ──> tictac_update(old -> new)
 *        applied to every tree, built or not
 *
 * Invariant: a tree equals "its range in the snapshot taken when it was
 * created (or last restarted)" XOR "every delta since".  For a built tree
 * that is the range as stored now; for one still building, the scan adds
 * the snapshot's records and the deltas already hold every later change,
 * so the result is right whichever way the scan and the writes interleave.
 * This holds because the snapshot and the trees are created in one
 * synchronous step and every write reports its delta in the step that
 * stores it (single-threaded loop).  Anything that breaks the chain (a scan
 * error) clears every unbuilt tree and restarts them on a new snapshot.
 *
 * Lookups: slot[] maps a ring range index of the view the layout was made
 * from (held by the driver, so its ring stays valid) to the held range, so
 * a persist costs one binary search of the ring and one O(1) tree update.
 */
#include "aae.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"

#define SLOT_NONE UINT32_MAX

typedef struct held {
    uint64_t start, end;
    tictac_t *tree;
    bool built;
} held_t;

typedef struct aae {
    server_t *srv;
    cluster_view_t *view;      /* the layout's view (held) */
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
    aae_stats_t stats;
} aae_t;

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
 * of tied tokens (start == end beside other ranges) is empty: not held. */
static size_t held_ranges(const cluster_view_t *v, held_t *h, uint32_t *idx)
{
    const ring_t *ring = v->ring;
    size_t nr = ring_range_count(ring), n = 0;
    for (size_t i = 0; i < nr; i++) {
        uint64_t s, e;
        ring_range(ring, i, &s, &e, NULL, NULL);
        if (!ring_replicates_range(ring, v->self_idx, i) || (s == e && nr > 1))
            continue;
        h[n] = (held_t){.start = s, .end = e};
        idx[n++] = (uint32_t)i;
    }
    return n;
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
    }
    held_free(a->held, a->nheld);
    free(a->slot);
    free(idx);
    a->held = nh;
    a->nheld = n;
    a->slot = slot;
    cluster_view_release(a->view);
    a->view = v;
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

void aae_on_persist(server_t *srv, const void *key, size_t klen, const void *old_enc,
                    size_t old_len, const void *new_enc, size_t new_len)
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
    uint64_t oh = old_enc ? tictac_key_hash(key, klen, old_enc, old_len) : 0;
    uint64_t nh = new_enc ? tictac_key_hash(key, klen, new_enc, new_len) : 0;
    tictac_update(a->held[s].tree, tok, oh, nh);
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
    srv->aae = a;
    if (srv->base) {
        a->build_ev = evtimer_new(srv->base, on_build, a);
        a->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, a);
        struct timeval tv = {0, AAE_TICK_MS * 1000};
        if (!a->build_ev || !a->tick || event_add(a->tick, &tv) < 0) {
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
    build_release(a);
    held_free(a->held, a->nheld);
    free(a->slot);
    cluster_view_release(a->view);
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
    out->start = h->start;
    out->end = h->end;
    out->root = tictac_root(h->tree);
    out->keys = tictac_keys(h->tree);
    out->built = h->built;
    return 0;
}

const tictac_t *aae_tree(const server_t *srv, size_t i)
{
    const aae_t *a = srv->aae;
    return a && i < a->nheld ? a->held[i].tree : NULL;
}
