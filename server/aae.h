/*
 * aae.h - active anti-entropy: one TicTac tree (storage/tictac.h) per token
 * range this node replicates, kept current by deltas on every persist;
 * periodic exchanges with the other replicas of each range that repair
 * exactly the keys that differ; and tombstone GC (docs/antientropy.md).
 *
 * Contract:
 *   - aae_open() lays the trees out for the current cluster view (every
 *     range whose preference list holds this node) and builds them in the
 *     background, a slice per event-loop turn, from a storage snapshot
 *     taken when the trees were created.  When a later view changes which
 *     ranges this node holds, ranges kept with the same bounds keep their
 *     trees (and exchange state); new ones are built the same way.  Nothing
 *     is done when antientropy.enabled is false (srv->aae stays NULL).
 *   - aae_on_persist() must see EVERY successful write of an object record
 *     ('d'), in the same synchronous step as the store write: old_hash and
 *     new_hash are the tictac hashes of the record before and after (0 for
 *     "absent": a new key, a deleted record), as store_get / store_put_hashed
 *     report them; dead says the new record holds no live value (tombstone
 *     GC looks at ranges that had such writes).  A tree is its snapshot scan
 *     plus every delta since, so a missed or duplicated call leaves a tree
 *     wrong until the next rebuild.  Keys of ranges not held are ignored.
 *   - Every antientropy.interval_ms one exchange starts, with the next
 *     (range, peer) pair in a fair rotation over the held ranges and, per
 *     range, the other replicas that are up.  Exchanges and GC passes run
 *     one at a time, throttled by antientropy.max_keys_per_s and
 *     max_bytes_per_s; they move objects only through node_merge (never
 *     mint).
 *   - The aae_on_* handlers answer the exchange messages of msg.h (called
 *     by dispatch.c with the decoded body).  A request for a range this node
 *     does not hold with the same bounds, from a peer whose ring differs
 *     (aae_ring_id), or that does not fit the tree shape is refused with a
 *     status, counted (stats `aae_refused`) and changes nothing.
 *   - Ownership: the driver is owned by srv (srv->aae), released by
 *     aae_close(), which must run before the transport and the store close
 *     (replies still in flight find the driver gone and free themselves).
 *     Trees returned by aae_tree() are borrowed until the next event-loop
 *     turn (a view change may replace them).
 */
#ifndef QKV_AAE_H
#define QKV_AAE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../storage/tictac.h"
#include "server.h"

union msg_any;

/* Records scanned per slice of a build or a GC scan (one event-loop turn). */
#define AAE_BUILD_SLICE 2000
/* How often the driver looks for a new cluster view. */
#define AAE_TICK_MS 200
/* Segments asked per KEYS request, and the bytes of key list one answer
 * may carry before it stops at a segment boundary. */
#define AAE_KEYS_SEGMENTS 256
#define AAE_KEYS_REPLY_BYTES (256u * 1024)
/* Object bytes one SYNC request, or its answer, carries beyond its first
 * object: well below the smallest frame limit (cluster.c allows 1 MiB +
 * twice node.max_value_bytes), so an exchange never sends a frame its peer
 * must refuse.  An answer that reaches it sends nil for the keys it pulls
 * after that: they still differ, and the next exchange of the range takes
 * them. */
#define AAE_SYNC_BYTES (512u * 1024)

typedef struct aae_stats {
    uint64_t layouts;       /* views that changed which ranges are held */
    uint64_t builds;        /* builds completed (every held tree current) */
    uint64_t trees_built;   /* trees whose scan completed */
    uint64_t keys_scanned;  /* records read by build scans */
    uint64_t updates;       /* aae_on_persist deltas applied */
    uint64_t updates_outside; /* aae_on_persist calls for ranges not held */
    size_t ranges;          /* trees now (ranges held) */
    size_t ranges_built;    /* of which built */
    bool building;
    /* exchanges this node started */
    uint64_t exchanges;         /* completed */
    uint64_t exchanges_failed;  /* refused, timed out, or a peer that went away */
    uint64_t keys_exchanged;    /* keys found different and synced */
    /* both sides */
    uint64_t keys_repaired;     /* local records an exchange changed */
    uint64_t bytes_sent, bytes_received; /* exchange and GC message bytes */
    uint64_t refused;           /* requests refused (bad range, ring, shape) */
    uint64_t busy;              /* requests answered "tree not built yet" */
    /* tombstone GC */
    uint64_t gc_passes;         /* GC passes run (as a range's leader) */
    uint64_t tombstones_purged; /* records purged here */
} aae_stats_t;

typedef struct aae_range_info {
    uint64_t start, end;    /* the range (start, end] */
    uint64_t root;          /* tree root */
    uint64_t keys;          /* keys in the tree */
    bool built;             /* scan complete: the tree is usable for an exchange */
    /* the last exchange this node ran on the range */
    bool exchanged;         /* false: none yet */
    char peer[GOSSIP_NAME_MAX + 1];
    int64_t last_us;        /* when it ended (wall clock, us) */
    bool in_sync;           /* it ended with equal roots */
    uint64_t repaired;      /* keys it found different and synced */
    bool all_in_sync;       /* the last exchange with EVERY other replica ended in sync */
} aae_range_info_t;

/* 0, or -1 with a message in err. */
int aae_open(server_t *srv, char *err, size_t errlen);
/* NULL srv->aae is fine. */
void aae_close(server_t *srv);

/* The write hook (see the header comment). */
void aae_on_persist(server_t *srv, const void *key, size_t klen, uint64_t old_hash,
                    uint64_t new_hash, bool dead);

/* Run up to budget records of the build (after taking a new view into
 * account).  1 when work remains, 0 when every tree is built, negative on
 * a storage error (the build restarts from a new snapshot).  The event
 * loop calls it; tests may drive it directly. */
int aae_build_step(server_t *srv, size_t budget);

/* The identity of a ring for exchanges: the same on two nodes exactly when
 * they have the same members, vnodes and n (so the same ranges and
 * preference lists), whatever order they learnt the members in. */
uint64_t aae_ring_id(const ring_t *ring);

void aae_get_stats(const server_t *srv, aae_stats_t *out);
/* The held ranges, in ring order: count, then each one's state. */
size_t aae_range_count(const server_t *srv);
int aae_range_get(const server_t *srv, size_t i, aae_range_info_t *out);
/* Held ranges whose last exchange with every other replica ended in sync. */
size_t aae_ranges_in_sync(const server_t *srv);
/* Tree of held range i (borrowed, see above); NULL for i out of bounds. */
const tictac_t *aae_tree(const server_t *srv, size_t i);
/* Tree memory of every held range, bytes. */
size_t aae_tree_memory(const server_t *srv);

/* Exchange message handlers (dispatch.c), and the refusal of a request
 * whose body does not decode. */
void aae_on_root(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void aae_on_leaves(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void aae_on_keys(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void aae_on_sync(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void aae_on_gc_check(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void aae_on_gc_purge(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void aae_refuse(server_t *srv, peer_link_t *link, const frame_t *f);

#endif
