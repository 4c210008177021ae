/*
 * aae.h - the anti-entropy driver's trees: one TicTac tree (storage/
 * tictac.h) per token range this node replicates, built by one scan of the
 * range and then kept current by deltas on every persist.
 *
 * Contract:
 *   - aae_open() lays the trees out for the current cluster view (every
 *     range whose preference list holds this node) and builds them in the
 *     background, a slice per event-loop turn, from a storage snapshot
 *     taken when the trees were created.  When a later view changes which
 *     ranges this node holds, ranges kept with the same bounds keep their
 *     trees; new ones are built the same way.  Nothing is done when
 *     antientropy.enabled is false.
 *   - aae_on_persist() must see EVERY successful write of an object record
 *     ('d'), in the same synchronous step as the store write (before or
 *     after it, with no return to the event loop in between): old_enc and
 *     new_enc are the exact bytes stored before and after (obj_encode()
 *     output; NULL/0 for "absent": a new key, a deleted record).  A tree
 *     is its snapshot scan plus every delta since, so a missed or
 *     duplicated call leaves a tree wrong until the next rebuild.  Keys of
 *     ranges this node does not hold are ignored.
 *   - Ownership: the driver is owned by srv (srv->aae), released by
 *     aae_close(), which must run before the store closes.  Trees returned
 *     by aae_tree() are borrowed until the next event-loop turn (a view
 *     change may replace them).
 */
#ifndef QKV_AAE_H
#define QKV_AAE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../storage/tictac.h"
#include "server.h"

/* Records scanned per slice of a build (one event-loop turn). */
#define AAE_BUILD_SLICE 2000
/* How often the driver looks for a new cluster view. */
#define AAE_TICK_MS 200

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
} aae_stats_t;

typedef struct aae_range_info {
    uint64_t start, end;    /* the range (start, end] */
    uint64_t root;          /* tree root */
    uint64_t keys;          /* keys in the tree */
    bool built;             /* scan complete: the tree is usable for an exchange */
} aae_range_info_t;

/* 0, or -1 with a message in err. */
int aae_open(server_t *srv, char *err, size_t errlen);
/* NULL srv->aae is fine. */
void aae_close(server_t *srv);

/* The write hook (see the header comment). */
void aae_on_persist(server_t *srv, const void *key, size_t klen, const void *old_enc,
                    size_t old_len, const void *new_enc, size_t new_len);

/* Run up to budget records of the build (after taking a new view into
 * account).  1 when work remains, 0 when every tree is built, negative on
 * a storage error (the build restarts from a new snapshot).  The event
 * loop calls it; tests may drive it directly. */
int aae_build_step(server_t *srv, size_t budget);

void aae_get_stats(const server_t *srv, aae_stats_t *out);
/* The held ranges, in ring order: count, then each one's state. */
size_t aae_range_count(const server_t *srv);
int aae_range_get(const server_t *srv, size_t i, aae_range_info_t *out);
/* Tree of held range i (borrowed, see above); NULL for i out of bounds. */
const tictac_t *aae_tree(const server_t *srv, size_t i);

#endif
