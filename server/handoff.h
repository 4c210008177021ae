/*
 * handoff.h - hinted handoff: writes meant for a replica that is down are
 * kept here, durably, and delivered when gossip sees that replica up again.
 *
 * Hints live in this node's LevelDB under the 'h' prefix, keyed
 * owner-name NUL user-key, valued [created_ms u64 LE][encoded object]; a
 * second write for the same owner and key merges into the same hint
 * (obj_sync), so a hint holds the latest merged state, not a log.  They
 * survive restarts.  Delivery is throttled (handoff.rate_per_s), capped per
 * owner (handoff.max_hints_per_node; past it new hints are dropped and
 * counted) and hints older than handoff.hint_ttl_s are dropped.
 */
#ifndef QKV_HANDOFF_H
#define QKV_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#include "../storage/object.h"

struct server;

typedef struct handoff_stats {
    uint64_t stored, delivered, dropped;
    uint64_t rehomed; /* hints of a node that left or was removed, merged here instead */
    int64_t pending;
} handoff_stats_t;

/* Count the hints on disk and start the delivery timer. */
int handoff_open(struct server *srv, char *err, size_t errlen);
void handoff_close(struct server *srv);

/* Keep (merge) a hint of object o for key, meant for node `owner`.
 * 0, -ENOSPC when the owner's cap is reached (dropped), <0 on error. */
int handoff_store(struct server *srv, const char *owner, const void *key, size_t klen,
                  const obj_t *o);
/* The hinted object for (owner, key): 1 with *o, 0 when none. */
int handoff_get(struct server *srv, const char *owner, const void *key, size_t klen, obj_t *o);

void handoff_get_stats(const struct server *srv, handoff_stats_t *out);

#endif
