/*
 * object.h - the stored object: a version vector plus its siblings.
 *
 * One object per key.  Each sibling is one write no other write has yet
 * superseded: its value, memcached flags, absolute expiry, the coordinator's
 * write timestamp, a tombstone flag (deletes are writes) and the dot that
 * wrote it.  The object's vector covers every dot of its siblings.  This is
 * the dotted-version-vector scheme of Riak 2.x: a write carries the causal
 * context its client saw and removes exactly the siblings that context
 * covers, so concurrent writes stay siblings and nothing acknowledged is
 * silently dropped.
 *
 * Encoding (obj_encode/obj_decode): one format byte OBJ_FORMAT_V1 followed
 * by a msgpack array
 *   [ [[node u64, counter u64, ts i64]...],
 *     [[node u64, counter u64, flags u32, expiry i64, ts i64, tomb bool, value bin]...] ]
 * Decoding checks every type, length and count and rejects anything else.
 *
 * Ownership: an obj_t owns its vector, sibling array and every sibling's
 * value.  obj_init() gives an empty object; obj_free() releases everything
 * and leaves it empty (safe to call twice).  Functions return 0 or a
 * negative errno (-ENOMEM, -EINVAL for corrupt input).
 */
#ifndef QKV_OBJECT_H
#define QKV_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/vclock.h"

#define OBJ_FORMAT_V1 0x01

typedef struct sibling {
    dot_t dot;
    uint32_t flags;
    int64_t expiry; /* absolute unix seconds, 0 = never */
    int64_t ts_us;  /* coordinator write time, microseconds since epoch */
    bool tombstone;
    uint8_t *value; /* owned, malloc'ed, may be NULL when len == 0 */
    size_t len;
} sibling_t;

typedef struct obj {
    vclock_t vc;
    uint32_t nsib;
    uint32_t cap;
    sibling_t *sib;
    /* The anti-entropy hash (tictac.h) of the record this object was read
     * from or last stored as (store_get / store_put_hashed), 0 for none.
     * It lets the write path hand the tree the old record's hash without
     * encoding the old object again.  Only the store sets it; obj_init,
     * obj_free and obj_decode clear it, obj_copy copies it, and the
     * functions that change an object leave it alone (it names what is on
     * disk, not the object's content). */
    uint64_t stored_hash;
} obj_t;

void obj_init(obj_t *o);
void obj_free(obj_t *o);
/* dst becomes a deep copy of src. */
int obj_copy(obj_t *dst, const obj_t *src);

/* Encode into a new malloc'ed buffer (*out owned by the caller). */
int obj_encode(const obj_t *o, uint8_t **out, size_t *outlen);
/* Decode buf into *o (which must be obj_init'ed; its old content is freed).
 * -EINVAL on anything malformed: wrong format byte, wrong types, trailing
 * bytes, a sibling dot the vector does not cover. */
int obj_decode(const uint8_t *buf, size_t len, obj_t *o);

/* Whether obj_purge(now_us, flush_us) of the object encoded in buf might
 * drop something, read straight from the bytes without decoding or
 * allocating: false only when buf is well formed as far as that check
 * reads and no sibling is dead; true otherwise (decode it to know).  For
 * scans that look at every record (the crawler). */
bool obj_enc_may_purge(const uint8_t *buf, size_t len, int64_t now_us, int64_t flush_us);

/* A new write minted by actor node: the new sibling *s (its value ownership
 * moves into o; s->dot is assigned here) supersedes every sibling whose dot
 * ctx covers.  The new dot is (node, max(vc[node] + 1, ctx[node] + 1,
 * min_counter)); o->vc becomes merge(o->vc, ctx) plus the new dot (stamped
 * now_us).  ctx may be NULL for "no context" (the write becomes a sibling
 * of everything).  min_counter is the actor's own next counter across all
 * keys (0: none): a replica that mints from one counter for every key never
 * mints a dot twice, even for a key whose entry for it was pruned (the
 * vector of a key still covers the actor's earlier dots for that key: it
 * has seen every one of them, since only this actor mints them, in
 * increasing order, against this same object).  On success *s is left with
 * value NULL; on failure o and *s are unchanged. */
int obj_update(obj_t *o, const vclock_t *ctx, uint64_t node, uint64_t min_counter,
               sibling_t *s, int64_t now_us);

/* Replica merge (read repair, handoff, anti-entropy): dst becomes the union
 * of dst and src where a sibling survives if the other side also holds its
 * dot or has not seen it (its vector does not cover the dot).  Commutative,
 * associative, idempotent, also for input that breaks the one-value-per-dot
 * rule (data written before dots were minted at the replica): when both
 * sides hold one dot with different content, the greater by
 * obj_sib_order() survives on both, so replicas still converge. */
int obj_sync(obj_t *dst, const obj_t *src);

/* A total order on sibling content (ts_us, tombstone, flags, expiry, len,
 * value bytes; the dot is not compared): <0, 0, >0. */
int obj_sib_order(const sibling_t *a, const sibling_t *b);

/* True when a and b hold exactly the same content: every vector entry
 * (node, counter, ts) and every sibling (dot and content).  Read repair
 * compares with this, never with a summary that could hide a difference. */
bool obj_equal(const obj_t *a, const obj_t *b);

/* The sibling memcached clients see: greatest ts_us, ties broken by the
 * greater dot (node, then counter).  Tombstones take part (a newest
 * tombstone means "not found").  NULL when there are no siblings. */
const sibling_t *obj_winner(const obj_t *o);

/* Keep at most max siblings, dropping the oldest ts_us first (never the
 * winner).  Returns how many were dropped. */
uint32_t obj_prune_siblings(obj_t *o, uint32_t max);

/* Drop siblings that are dead at now_us (microseconds since the epoch):
 * expired (expiry != 0 && expiry <= now_us / 1e6) or flushed (flush_us !=
 * 0, now_us >= flush_us and ts_us <= flush_us).  Tombstones are kept.
 * Returns how many were dropped. */
uint32_t obj_purge(obj_t *o, int64_t now_us, int64_t flush_us);

/* Keep at most max vector entries, dropping the least recently advanced
 * first, but never an entry that covers a sibling's dot (so the object stays
 * well formed; it may keep more than max entries when its siblings need
 * them).  The choice depends on the object alone, so replicas that hold the
 * same object prune it the same way.  Pruning forgets history: a later
 * write that the dropped entries would have shown as older may become a
 * sibling instead, never a loss (replicas mint dots from a counter of their
 * own, not from the pruned entry: see obj_update).  Returns how many were
 * dropped. */
uint32_t obj_prune_vc(obj_t *o, uint32_t max);

/* Whether obj_purge(o, now_us, flush_us) would drop anything, without
 * changing o. */
bool obj_purgeable(const obj_t *o, int64_t now_us, int64_t flush_us);

/* True when the object has a live winner (exists, not a tombstone). */
bool obj_live(const obj_t *o);

#endif
