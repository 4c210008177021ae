/*
 * transfer.h - membership changes with data transfer (docs/membership.md):
 * join, leave and remove, the range transfers they need, and the cleanup
 * that drops what a node no longer replicates once its owners hold it.
 *
 * Contract:
 *   - This node's own status (joining, up, leaving) is kept in metadata
 *     ('m' "state") so a restart resumes where it stood; transfers keep
 *     their cursor in metadata ('m' "xfer/<start>/<end>") after every page,
 *     so a restarted puller resumes from its last page and a restarted
 *     source simply answers the next request.
 *   - Joining: once no other change is in progress (the earlier joiner of
 *     two goes first) and the cluster has settled, the node pulls each
 *     range it will replicate from a live current owner, page by page,
 *     throttled by transfer.max_bytes_per_s, while coordinators already
 *     send it every write of those ranges (coord.c, future ring).  When
 *     every range is in, it becomes up with the next ring epoch.
 *   - Leaving (xfer_leave): the node pushes each of its ranges to the
 *     nodes that will replicate it in its place, then announces that it
 *     left (next ring epoch) and stops the event loop (exit 0).
 *   - Remove (xfer_remove): the removed node's entry becomes LEFT
 *     (GOSSIP_F_REMOVED) with the next ring epoch; every node that now
 *     replicates a range it did not pulls it from the remaining replicas.
 *   - Cleanup: when no change is in progress and the ring has been stable
 *     for the settle time, a node pushes the records of every range it
 *     does not replicate to all of that range's owners and, once every one
 *     of them acknowledged (merged and persisted) a page, deletes those
 *     records unless they changed meanwhile.
 *   - One change at a time: xfer_leave/xfer_remove refuse while any member
 *     is joining or leaving or transferring ranges (cluster_view_t.changing).
 *   - Transfers yield to client work: no page starts while the node sheds
 *     requests (admit_busy(), counted in background_deferred).
 *   - Messages: XFER_PULL / XFER_PUSH (msg.h) carry the sender's ring
 *     epoch; a receiver whose epoch is newer refuses them
 *     (MSG_CODE_STALE_EPOCH, stats transfer_stale_epoch).
 */
#ifndef QKV_TRANSFER_H
#define QKV_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server.h"

union msg_any;

/* Object bytes per page (one request or answer). */
#define XFER_PAGE_BYTES (256u * 1024)
/* How often the driver looks at the cluster. */
#define XFER_TICK_MS 200

typedef struct xfer_stats {
    uint64_t pages_in, pages_out;   /* pages merged here / pages sent and acknowledged */
    uint64_t keys_in, keys_out;     /* objects merged here / objects sent */
    uint64_t bytes_in, bytes_out;
    uint64_t keys_dropped;          /* records of ranges no longer held, deleted */
    uint64_t stale_epoch;           /* requests refused for an older ring epoch */
    uint64_t failed;                /* pages that failed (peer down, refused); retried */
    uint64_t done;                  /* ranges whose transfer completed */
} xfer_stats_t;

/* One range being moved, for `transfers`. */
typedef struct xfer_info {
    uint64_t start, end;
    char from[GOSSIP_NAME_MAX + 1], to[GOSSIP_NAME_MAX + 1];
    uint64_t keys_done, keys;       /* keys: estimate, 0 when unknown */
    uint64_t bytes;
    uint64_t rate;                  /* bytes per second since it started */
    int64_t eta_s;                  /* -1 when unknown */
} xfer_info_t;

/* Our status at start from metadata and the seeds (fresh nodes not among
 * their own seeds join; the join check may still turn a fresh founding
 * node into a joining one: cluster.c); *fresh says the data directory is
 * new.  -1 with a reason in err for a node that left or was removed. */
int xfer_start_status(server_t *srv, gossip_status_t *out, bool *fresh, char *err,
                      size_t errlen);
/* Record our status in metadata ("joining", "up", "leaving", "left"). */
int xfer_save_status(server_t *srv, gossip_status_t st);

int xfer_open(server_t *srv, char *err, size_t errlen);
void xfer_close(server_t *srv);

/* cluster.c, after every view change (old may be NULL). */
void xfer_on_view(server_t *srv, const cluster_view_t *old, const cluster_view_t *now);

/* Operator commands: 0, or -1 with the reply line (without CRLF) in msg. */
int xfer_leave(server_t *srv, char *msg, size_t len);
int xfer_remove(server_t *srv, const char *name, char *msg, size_t len);

/* The transfers this node runs, for `transfers`: count, then each. */
size_t xfer_count(const server_t *srv);
int xfer_get(const server_t *srv, size_t i, xfer_info_t *out);
/* This node's progress (percent of its ranges done), -1 when none run. */
int xfer_progress(const server_t *srv);
void xfer_get_stats(const server_t *srv, xfer_stats_t *out);

/* Peer message handlers (dispatch.c) and the refusal of a bad body. */
void xfer_on_pull(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void xfer_on_push(server_t *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void xfer_refuse(server_t *srv, peer_link_t *link, const frame_t *f);

#endif
