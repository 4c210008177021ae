/*
 * cluster.h - this node's place in the cluster: the peer transport, gossip
 * rounds and probes (gossip/ is the pure state machine; this file moves its
 * messages), and the ring rebuilt from the membership view whenever gossip's
 * epoch moves.
 */
#ifndef QKV_CLUSTER_H
#define QKV_CLUSTER_H

#include <stdbool.h>

#include "../gossip/gossip.h"
#include "../ring/ring.h"
#include "peer.h"

struct server;

typedef struct cluster_stats {
    uint64_t gossip_rounds, gossip_msgs_bad, ring_rebuilds, probes_sent, probes_failed;
} cluster_stats_t;

/* What the coordinator needs of a ring node, refreshed with the ring. */
typedef struct cluster_node {
    char name[GOSSIP_NAME_MAX + 1];
    char host[GOSSIP_HOST_MAX + 1];
    int peer_port;
    bool alive;
    bool is_self;
    uint32_t status; /* gossip_status_t */
} cluster_node_t;

/* One version of the ring and of what we know of its nodes.  Requests in
 * flight hold the view they were planned with (node indexes are only
 * meaningful within one view); a rebuild makes a new view and the old one
 * is freed when its last holder lets go. */
typedef struct cluster_view {
    int refs;
    ring_t *ring;
    cluster_node_t *nodes; /* per ring node index */
    bool *down;            /* per ring node index: !alive, for ring_preflist_healthy */
    uint32_t self_idx;     /* our ring index; RING_NODE_NONE while we are not counted (joining) */
    /* While a member joins or leaves: the ring after the change (the
     * joining in, the leaving out) and its per-node table; else NULL.
     * Its owners that the current ring lacks get every write as extra,
     * uncounted replicas (coord.c). */
    ring_t *future;
    cluster_node_t *fnodes;
    uint64_t ring_epoch;   /* the highest ring epoch any member names */
    bool changing;         /* a join, leave or range transfer is in progress */
    char change[160];      /* which, for operators ("n4 is joining") */
} cluster_view_t;

cluster_view_t *cluster_view_hold(cluster_view_t *v);
/* The node called name in v: a member of the current ring, else of the
 * future one (a joining node); NULL if neither has it. */
const cluster_node_t *cluster_view_node(const cluster_view_t *v, const char *name);
void cluster_view_release(cluster_view_t *v);

typedef struct cluster {
    struct server *srv;
    transport_t *transport;
    gossip_t *gossip;
    cluster_view_t *view;   /* current view (we hold one reference); NULL before the first */
    uint64_t ring_epoch;    /* gossip epoch the ring was built from */
    struct event *tick;
    int64_t generation;     /* our start time, ms */
    uint64_t epoch_seen;    /* the highest ring epoch seen (kept in metadata) */
    gossip_member_info_t *seen; /* the members at the last refresh (to log changes) */
    size_t nseen;
    /* the join check (a fresh name is refused if a live node has it) */
    int check_pending;
    bool check_done;
    bool refused;           /* the join check refused us: the process exits 1 */
    bool fresh;             /* our data directory was new at this start */
    cluster_stats_t stats;
} cluster_t;

/* Open the peer port, start gossip from the configured seeds.  0 or -1 with
 * a reason in err. */
int cluster_open(struct server *srv, cluster_t *cl, char *err, size_t errlen);
void cluster_close(cluster_t *cl);

/* Rebuild the ring if membership changed since the last build. */
void cluster_refresh_ring(cluster_t *cl);

/* All live members other than us (for flush_all): fills out[] with ring
 * node indexes, returns how many. */
size_t cluster_live_peers(const cluster_t *cl, uint32_t *out, size_t cap);

/* The gossip side of the peer port, called by dispatch.c with the decoded
 * body (msg.h): PING, SYN and MAIL requests are answered, ACK2 applied.  A
 * body that does not decode, or a SYN or MAIL that is not a request, is
 * counted (gossip_msgs_bad) by cluster_refuse(); one gossip/ refuses is
 * counted there too, or as gossip_throttled when over its sender's budget. */
union msg_any;
void cluster_on_ping(struct server *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void cluster_on_syn(struct server *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void cluster_on_ack2(struct server *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void cluster_on_mail(struct server *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
void cluster_refuse(struct server *srv);
/* JOIN_CHECK: refuses a node whose name a live member at another address
 * has (msg.h). */
void cluster_on_join_check(struct server *srv, peer_link_t *link, const frame_t *f,
                           union msg_any *m);

/* Text of a member's state for `members`: up, down, joining, leaving. */
const char *cluster_state_name(const gossip_member_info_t *m);

#endif
