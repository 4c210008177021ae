/*
 * coord.h - the coordinator: quorum reads and writes over the replicas of a
 * key, read repair, sloppy quorum, and the replica side of those messages.
 *
 * Any node coordinates a read.  A write is coordinated by a replica of the
 * key (this node if it is one, else the first live owner, to which the
 * request is forwarded), because the dot that names the write comes from
 * the coordinator's own counter for that key, and only a replica holds all
 * of its own dots for the key (see DESIGN.md, Versions).
 *
 * Completion: the done callback runs exactly once, possibly before
 * coord_get/coord_write return (when every replica is local).  The result
 * is valid during the callback; the callback may take res->obj (then it
 * must obj_init() it).
 */
#ifndef QKV_COORD_H
#define QKV_COORD_H

#include "kv.h"
#include "peer.h"

struct server;

enum coord_status {
    COORD_OK = 0,
    COORD_QUORUM = 1, /* quorum not reached: got of needed */
};

typedef struct coord_result {
    int status;  /* enum coord_status, or a negative errno (storage, memory) */
    int got, needed;
    enum kv_result result; /* writes */
    uint64_t number;       /* incr/decr */
    bool found;            /* reads: the merged object exists */
    obj_t obj;             /* reads: merged object; gat: the object written */
} coord_result_t;

typedef void (*coord_done_fn)(void *arg, coord_result_t *res);

/* Quorum read of key with r replies. */
void coord_get(struct server *srv, const void *key, size_t klen, int r, coord_done_fn done,
               void *arg);
/* A changing command (kv.h) under quorums r (for its read) and w.  op->data
 * is copied. */
void coord_write(struct server *srv, const kv_op_t *op, const void *key, size_t klen, int r,
                 int w, coord_done_fn done, void *arg);
/* flush_all on every live node; got/needed count the nodes that applied it. */
void coord_flush(struct server *srv, int64_t delay_s, coord_done_fn done, void *arg);

/* Replica side: REPLICA_GET, REPLICA_PUT, COORD_WRITE, FLUSH frames. */
void coord_on_request(struct server *srv, peer_link_t *link, const frame_t *f);

#endif
