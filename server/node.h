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
/* node_read() for a caller that only looks at the object and is done with
 * it before it calls into node.c again: *o points at the object cache's
 * entry (no copy), or at *hold (obj_init'ed by the caller, who frees it)
 * when the object is not cached as it should be read.  Valid until the
 * next call into node.c or the object cache; *o is NULL unless 1 is
 * returned. */
int node_read_peek(server_t *srv, const void *key, size_t klen, obj_t *hold, const obj_t **o);
/* node_read() for a caller that sends the object on as it is (a replica
 * answering REPLICA_GET): 1 with *enc / *enclen its encoding (malloc'ed,
 * the caller frees it), 0 when absent, negative on error.  A cached object
 * with nothing to purge is encoded where it is, without a copy. */
int node_read_enc(server_t *srv, const void *key, size_t klen, uint8_t **enc, size_t *enclen);
/* node_read() for a caller that writes the key next, through persist
 * (node_write, node_merge, the coordinator's read phase of a write): a
 * cached object moves out of the object cache instead of being copied
 * (the write puts the new one back). */
int node_read_take(server_t *srv, const void *key, size_t klen, obj_t *o);

/* Merge an object from another replica (or a coordinator's write) into the
 * local one (obj_sync) and persist it.  0 or a negative errno. */
int node_merge(server_t *srv, const void *key, size_t klen, const obj_t *in);
/* node_merge() that also reports the anti-entropy hashes (tictac.h) of the
 * record before and after (0: none) in *old_hash and *new_hash (each may be
 * NULL): anti-entropy counts the keys it changed, and answers with the
 * merged object only when it differs from what the peer sent. */
int node_merge_hashed(server_t *srv, const void *key, size_t klen, const obj_t *in,
                      uint64_t *old_hash, uint64_t *new_hash);

/* Tombstone GC (aae.c).  node_dead: o holds no live value (only tombstones,
 * or only a version vector).  node_newest_us: the newest timestamp in o,
 * of a sibling or a vector entry (0 for none): the age of a dead record.
 * node_purge_if: delete key's record if it is still exactly the one whose
 * anti-entropy hash is `hash`, is dead, and its newest timestamp is before
 * older_than_us.  1 when purged, 0 when the record is absent or does not
 * qualify (a newer write is never purged), negative on storage error. */
bool node_dead(const obj_t *o);
int64_t node_newest_us(const obj_t *o);
int node_purge_if(server_t *srv, const void *key, size_t klen, uint64_t hash,
                  int64_t older_than_us);

/* Range transfers (transfer.c): delete key's record if it is still exactly
 * the one whose anti-entropy hash is `hash` (the one its new owners
 * acknowledged).  1 when dropped, 0 when absent or changed since, negative
 * on storage error. */
int node_drop_if(server_t *srv, const void *key, size_t klen, uint64_t hash);

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
 * caller) is the object now stored, to replicate, and, when enc is not
 * NULL, *enc / *enclen its encoding as stored (malloc'ed, the caller frees
 * it): replicas get exactly these bytes, encoded once.  0 or a negative
 * errno. */
int node_write(server_t *srv, const void *key, size_t klen, obj_t *known, const vclock_t *ctx,
               sibling_t *s, int64_t now_us, obj_t *out, uint8_t **enc, size_t *enclen);

/* Bytes of the files of the local store (LevelDB's tables and logs), for
 * operators (`stats` disk_bytes): a directory listing, not free. */
uint64_t node_disk_bytes(const server_t *srv);

/* flush_all [delay]: the flush time in microseconds: now + delay, or for a
 * delay over 30 days that absolute unix time, as in memcached. */
int64_t node_flush_time(int64_t delay_s);
/* Items written up to when_us are gone once the clock reaches it. */
int node_flush_at(server_t *srv, int64_t when_us);


#endif
