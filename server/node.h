/*
 * node.h - the local replica: memcached semantics on this node's store.
 *
 * node_read() returns a key's object with dead siblings (expired, flushed)
 * purged, and persists the purge; node_merge() merges a version from a
 * coordinator or another replica into the local one.  Both keep the item
 * counters (curr_items, bytes) exact for what is stored.  The coordinator
 * (coord.c) calls these for this node's own replica.
 */
#ifndef QKV_NODE_H
#define QKV_NODE_H

#include "kv.h"
#include "server.h"

/* 1 with *o filled when the key has an object (it may hold only
 * tombstones: check obj_live), 0 when absent, negative on storage error.
 * *o must be obj_init'ed; the caller frees it. */
int node_read(server_t *srv, const void *key, size_t klen, obj_t *o);

/* Merge an object from another replica (or a coordinator's write) into the
 * local one (obj_sync) and persist it.  0 or a negative errno. */
int node_merge(server_t *srv, const void *key, size_t klen, const obj_t *in);

/* The coordinating replica's step of a new write (DESIGN.md, Versions):
 * in one step of the loop, read the local object, mint the write's dot
 * against it (obj_update with causal context ctx, NULL for none, and this
 * replica's actor srv->node_id), prune, and persist.  The dot is new:
 * it comes from this replica's own counter, one for all keys, which only
 * grows (kept across restarts by a lease in metadata), and a wiped data
 * directory gets a new actor (node_open).
 * `known`, when not NULL, is the local object as node_read() returned it
 * with nothing written since (srv->write_seq unchanged), which saves the
 * read; it is taken over (left empty).  The sibling's value moves into the object (s->value is NULL after,
 * on success and failure alike).  On success *out (obj_init'ed by the
 * caller) is the object now stored, to replicate.  0 or a negative errno. */
int node_write(server_t *srv, const void *key, size_t klen, obj_t *known, const vclock_t *ctx,
               sibling_t *s, int64_t now_us, obj_t *out);

/* flush_all [delay]: the flush time in microseconds: now + delay, or for a
 * delay over 30 days that absolute unix time, as in memcached. */
int64_t node_flush_time(int64_t delay_s);
/* Items written up to when_us are gone once the clock reaches it. */
int node_flush_at(server_t *srv, int64_t when_us);


#endif
