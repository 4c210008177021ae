/*
 * coord.h - the coordinator: quorum reads and writes over the replicas of a
 * key, read repair, sloppy quorum, and the replica side of those messages.
 *
 * Any node coordinates a read.  A write is coordinated by a replica of the
 * key, because the dot that names the write is minted by the replica that
 * first stores it, against its own stored object, in the step that
 * persists it (node_write; DESIGN.md, Versions).  set and delete run at any
 * owner (this node if it is one, else the first live owner, to which the
 * request is forwarded); every command that reads before it writes (incr,
 * decr, append, prepend, cas, add, replace, touch, gat) runs at the key's
 * first live owner, and one write of a key at a time there (a per-key
 * queue), so in a healthy cluster they are atomic as in memcached.  When
 * the first owner cannot be reached they run at the next owner: concurrent
 * ones at two owners become siblings, never a loss.
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
union msg_any;

enum coord_status {
    COORD_OK = 0,
    COORD_QUORUM = 1, /* quorum not reached: got of needed */
    COORD_BUSY = 2,   /* the coordinating owner refused it (admit.h): "SERVER_ERROR busy" */
};

typedef struct coord_result {
    int status;  /* enum coord_status, or a negative errno (storage, memory) */
    int got, needed;
    enum kv_result result; /* writes */
    uint64_t number;       /* incr/decr */
    bool found;            /* reads: the merged object exists */
    obj_t obj;             /* reads: merged object; gat: the object written */
    /* coord_get_borrow() only: when not NULL, the object read (obj is then
     * empty), borrowed from storage and valid only during the callback */
    const obj_t *view;
} coord_result_t;

typedef void (*coord_done_fn)(void *arg, coord_result_t *res);

/* Quorum read of key with r replies. */
void coord_get(struct server *srv, const void *key, size_t klen, int r, coord_done_fn done,
               void *arg);
/* coord_get() for a caller that is done with the object within its
 * callback: a read this node answers alone (R=1 on an owner) comes as
 * res->view, without a copy of the object. */
void coord_get_borrow(struct server *srv, const void *key, size_t klen, int r,
                      coord_done_fn done, void *arg);
/* A changing command (kv.h) under quorums r (for its read) and w.  op->data
 * is copied. */
void coord_write(struct server *srv, const kv_op_t *op, const void *key, size_t klen, int r,
                 int w, coord_done_fn done, void *arg);
/* flush_all on every live node; got/needed count the nodes that applied it. */
void coord_flush(struct server *srv, int64_t delay_s, coord_done_fn done, void *arg);

/* The coordinator's own state (the per-key write queues).  coord_close()
 * fails the writes still queued; call it after the transport is closed
 * (so nothing in flight can queue more) and before storage is. */
int coord_open(struct server *srv, char *err, size_t errlen);
void coord_close(struct server *srv);
/* Writes waiting behind another write of their key (stats). */
size_t coord_keys_waiting(const struct server *srv);

/* Replica side: the handlers of REPLICA_GET, REPLICA_PUT, COORD_WRITE and
 * FLUSH requests, called by dispatch.c with the decoded body (msg.h),
 * valid during the call.  Past admission's bounds (admit.h) they answer
 * busy at once: REPLICA_GET [-EBUSY, nil], REPLICA_PUT [-EBUSY], COORD_WRITE
 * status COORD_BUSY; a coordinator counts a busy replica as a failed one
 * (coord_replica_busy), never waits for it. */
void coord_on_replica_get(struct server *srv, peer_link_t *link, const frame_t *f,
                          union msg_any *m);
void coord_on_replica_put(struct server *srv, peer_link_t *link, const frame_t *f,
                          union msg_any *m);
void coord_on_coord_write(struct server *srv, peer_link_t *link, const frame_t *f,
                          union msg_any *m);
void coord_on_flush(struct server *srv, peer_link_t *link, const frame_t *f, union msg_any *m);
/* A replica request whose body did not decode, or of a type nobody
 * handles: counted (replica_errors) and, for a request, answered -EINVAL. */
void coord_refuse(struct server *srv, peer_link_t *link, const frame_t *f);

#endif
