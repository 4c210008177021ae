/*
 * objcache.h - a bounded cache of decoded objects in front of the store.
 *
 * Why: a get served from LevelDB costs a leveldb_get (a key comparison per
 * skip-list and block step, a malloc'ed copy of the record) and an
 * obj_decode (msgpack, one malloc per value); together about 60% of the
 * instructions of a single-node get before this cache.  A hit costs one
 * hash lookup and one obj_copy().
 *
 * Contract: a pure module (no I/O, no clock, no globals), for one thread.
 *   - What it holds: for a user key, the object as stored (with its
 *     stored_hash), or "absent" (the key has no record).  The cache never
 *     decides anything about expiry or flushes: callers apply those to what
 *     they get, exactly as they do to what the store returns.
 *   - Coherence is the caller's: every write of a key's record must call
 *     ocache_del() for that key (node.c's persist() does, for every local
 *     persist), and ocache_put() must only be given what the store holds
 *     right now.
 *   - Bound: the sum of the entries' sizes (ocache_entry_size()) stays at
 *     or below max_bytes; the least recently used entries are evicted to
 *     make room.  An entry larger than max_bytes / 8 is not cached (one huge
 *     value must not flush the working set).  max_bytes 0: caches nothing.
 *   - Ownership: ocache_put() copies the object; ocache_get() lends its
 *     entry: valid until the next ocache_put/del/clear/free on that cache,
 *     never freed or changed by the caller.
 */
#ifndef QKV_OBJCACHE_H
#define QKV_OBJCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "object.h"

typedef struct ocache ocache_t;

typedef struct ocache_stats {
    uint64_t hits, misses, evictions, invalidations;
    uint64_t items, bytes, max_bytes;
} ocache_stats_t;

/* A cache of at most max_bytes (0: a cache that holds nothing); NULL on
 * allocation failure.  Freed with ocache_free (NULL is fine). */
ocache_t *ocache_new(size_t max_bytes);
void ocache_free(ocache_t *c);

/* The entry of key: true with *o set (NULL when the key is known absent),
 * counted as a hit and made most recently used; false on a miss (counted). */
bool ocache_get(ocache_t *c, const void *key, size_t klen, const obj_t **o);
/* ocache_get() for a caller about to write the key (whose store write
 * refills the cache): on a hit the entry leaves the cache and its object
 * moves into *o (obj_init'ed by the caller; left as is when the key is
 * cached as absent), *present tells which.  Counted as a hit or a miss. */
bool ocache_take(ocache_t *c, const void *key, size_t klen, obj_t *o, bool *present);
/* Cache o (NULL: the key is absent) for key, replacing any entry: 0, or
 * -ENOMEM (nothing cached; the cache stays as it was but for the old entry
 * of key, which is gone).  Not cached when too large (still 0). */
int ocache_put(ocache_t *c, const void *key, size_t klen, const obj_t *o);
/* ocache_put() that takes o over instead of copying it: *o is left empty
 * whatever happens (freed when it is not cached). */
int ocache_put_take(ocache_t *c, const void *key, size_t klen, obj_t *o);
/* Forget key (counted as an invalidation when there was an entry). */
void ocache_del(ocache_t *c, const void *key, size_t klen);
/* Forget everything (the counters stay). */
void ocache_clear(ocache_t *c);
void ocache_get_stats(const ocache_t *c, ocache_stats_t *s);

/* What an entry for (klen, o) counts against max_bytes: the key, the
 * values, the vector and sibling arrays and the bookkeeping. */
size_t ocache_entry_size(size_t klen, const obj_t *o);

#endif
