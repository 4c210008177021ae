/*
 * tictac.h - TicTac Merkle trees for anti-entropy, one per token range (as
 * Riak 3's kv_index_tictactree / leveled).
 *
 * Contract: a pure module.  No I/O, no libevent, no clock, no globals; a
 * tree is plain memory the caller owns (tictac_create / tictac_free), and
 * every pointer it returns (branch and leaf arrays) is borrowed: valid until
 * the next update or tictac_free() of that tree, never freed by the caller.
 * Functions that can fail return 0 or a negative errno (-EINVAL, -ERANGE,
 * -ENOMEM).  Not thread-safe; meant for the event loop.
 *
 * What a tree holds.  Every key of the range contributes h = tictac_key_hash
 * (key, encoded object).  A leaf (a "segment") is the XOR of the h of the
 * keys in it, a branch the XOR of its leaves, the root the XOR of the
 * branches.  XOR makes the tree order-free and updatable by deltas: a write
 * XORs the old object's hash out and the new one in (tictac_update), so the
 * tree is built once (one scan of the range) and never rebuilt while
 * running.  Two replicas hold equal trees exactly when they hold the same
 * objects (up to 2^-64 collisions), because obj_encode() is canonical
 * (equal objects encode to equal bytes).
 *
 * Shape: 2 levels, TICTAC_BRANCHES (32) branches of TICTAC_LEAVES (32)
 * leaves = TICTAC_SEGMENTS (1024) segments of 8 bytes.  Why 1024:
 *   - memory is fixed per tree, whatever the key count: 1024 * 8 (leaves) +
 *     32 * 8 (branches) + root, range and count = 8,480 bytes
 *     (tictac_memory()).  A node of a 5-node ring with 64 vnodes at N = 3
 *     replicates about 3 * 64 = 192 ranges (at most 320, every range of the
 *     ring): 192 * 8,480 = 1.6 MB, at most 2.7 MB -- for 1M keys as for 1G.
 *   - 1M keys on such a node is ~5,200 keys per range, ~5 per segment, so
 *     repairing one differing key costs: root, 32 branch hashes (256 bytes),
 *     the 32 leaves of the one differing branch (256 bytes), then a scan of
 *     ~5 records on each side.  At 10M keys a segment is ~50 records, still
 *     one short scan; 4096 segments would quadruple memory and the hashes
 *     exchanged per differing branch for little gain at our sizes.
 *
 * Segment of a key: the high bits of its token's offset in the range,
 * scaled to the range width: seg = floor((token - start - 1) * 1024 / width)
 * for the range (start, end], width = end - start (mod 2^64; 2^64 for the
 * whole ring).  Tokens are xxh3 hashes, uniform, so segments are uniform
 * within a range; and a segment is a contiguous token interval
 * (tictac_segment_bounds()), so an exchange lists a segment's keys with ONE
 * contiguous storage scan (store keys are ordered by token), two only when
 * the segment straddles token 0 in the wrapping range.  Taking the segment
 * from other bits of a hash would scatter a segment's keys over the whole
 * range and turn each segment query into a scan of the range.
 */
#ifndef QKV_TICTAC_H
#define QKV_TICTAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TICTAC_BRANCHES 32u
#define TICTAC_LEAVES 32u /* leaves per branch */
#define TICTAC_SEGMENTS (TICTAC_BRANCHES * TICTAC_LEAVES)

typedef struct tictac tictac_t;

/* A tree for the range (start, end] (ring.h's convention: start == end is
 * the whole ring), all hashes zero.  *out is owned by the caller. */
int tictac_create(uint64_t start, uint64_t end, tictac_t **out);
/* NULL is fine. */
void tictac_free(tictac_t *t);
/* Back to all zeros (before a rebuild by scan). */
void tictac_clear(tictac_t *t);

void tictac_range(const tictac_t *t, uint64_t *start, uint64_t *end);
/* Whether token lies in the tree's range. */
bool tictac_contains(const tictac_t *t, uint64_t token);
/* Segment (0 .. TICTAC_SEGMENTS-1) of a token of the range; a token outside
 * the range gives TICTAC_SEGMENTS. */
uint32_t tictac_segment(const tictac_t *t, uint64_t token);
/* The tokens of segment seg: [*first, *last] inclusive, walking up from
 * *first (wrapping past 2^64 - 1 only in the range that wraps).  0, or
 * -ENOENT when the segment is empty (a range narrower than 1024 tokens),
 * -EINVAL for seg out of bounds. */
int tictac_segment_bounds(const tictac_t *t, uint32_t seg, uint64_t *first, uint64_t *last);

/* The hash a key contributes: xxh3 of the encoded object seeded with the
 * key's token (hash64 of the key), so equal objects under different
 * keys differ.  Never 0, which means "absent" in tictac_update(). */
uint64_t tictac_key_hash(const void *key, size_t klen, const void *enc, size_t elen);
/* The same when the key's token is known: tictac_key_hash(key, ...) ==
 * tictac_token_hash(store_key_token(key), ...).  The store calls it on every
 * object read and write, where the token is at hand, so the write path's
 * tree update costs one hash of the record and no second encoding. */
uint64_t tictac_token_hash(uint64_t token, const void *enc, size_t elen);

/* A key at token changed from an object hashing old_hash to one hashing
 * new_hash (0 = absent: a new key has old_hash 0, a removed one new_hash
 * 0).  O(1).  0, or -ERANGE for a token outside the range (tree unchanged). */
int tictac_update(tictac_t *t, uint64_t token, uint64_t old_hash, uint64_t new_hash);

uint64_t tictac_root(const tictac_t *t);
/* TICTAC_BRANCHES hashes (borrowed). */
const uint64_t *tictac_branches(const tictac_t *t);
/* The TICTAC_LEAVES segment hashes of branch b (segments b*32 .. b*32+31;
 * borrowed), or NULL for b out of bounds. */
const uint64_t *tictac_leaves(const tictac_t *t, uint32_t b);
/* Keys in the tree: updates from absent minus updates to absent. */
uint64_t tictac_keys(const tictac_t *t);
/* Bytes a tree occupies: the same for every tree and key count (see the
 * header comment); t may be NULL. */
size_t tictac_memory(const tictac_t *t);

/* Compare one level of two trees, as arrays of n hashes (for instance the
 * branches of a local tree and those a peer sent): writes the indices that
 * differ, ascending, into out (at most cap) and returns how many differ
 * (possibly more than cap). */
size_t tictac_compare(const uint64_t *a, const uint64_t *b, size_t n, uint32_t *out, size_t cap);

/* What tictac_diff() looked at. */
typedef struct tictac_diff_stats {
    uint32_t branches_descended; /* branches whose leaves were compared */
    uint32_t leaves_compared;
} tictac_diff_stats_t;

/* The segments where two trees of the same range differ, ascending, into
 * segs (at most cap); returns how many differ (possibly more than cap), or
 * -EINVAL for trees of different ranges.  Descends only where hashes
 * differ: equal roots stop at once, and only differing branches have their
 * leaves compared.  stats may be NULL. */
int tictac_diff(const tictac_t *a, const tictac_t *b, uint32_t *segs, size_t cap,
                tictac_diff_stats_t *stats);

#endif
