/*
 * ring.h - consistent hashing with virtual nodes: tokens, ranges and
 * preference lists.
 *
 * Contract: a pure module.  No I/O, no libevent, no globals, no clock; the
 * same member names, vnodes and n give the same ring, byte for byte, on every
 * node and in every member order.  A ring_t is immutable once built, so any
 * number of readers may share it; the caller builds a new ring (with a new
 * epoch) when membership changes and frees the old one when no reader still
 * holds pointers into it.
 *
 * Placement: node `name` owns vnodes tokens, hash64("<name>#<i>") for
 * i = 0 .. vnodes-1 (i in decimal, no padding).  A key sits at position
 * hash64(key bytes).  Tokens are sorted ascending; equal tokens of
 * different nodes are ordered by node name (strcmp), then by vnode index, so
 * the order never depends on the member list order.
 *
 * Ranges: there is one range per token.  Range i is (start, end] with
 * end = token i and start = token i-1; range 0 wraps around 2^64: its start is
 * the LAST token, so it holds the positions above the last token and those
 * up to and including the first token.  With a single token, range 0 is the
 * whole ring (start == end).  Two nodes with the same token produce a range
 * whose start == end that holds no position (ring_range_of() never returns
 * it); it still has a preference list, so iteration stays uniform.
 *
 * Preference list: walking clockwise from a position (first token >= it,
 * wrapping past the top), the first n distinct nodes; fewer than n only when
 * the ring has fewer than n nodes (ring_n() gives the actual length).  All
 * positions in one range share one list, precomputed at build.
 *
 * Node indices: a node is named by its index in the `names` array given to
 * ring_build() (0 .. node_count-1), so the caller may keep parallel per-node
 * arrays (liveness, connections) in the same order.  Two rings built from the
 * same members in different orders agree on names, not on indices: compare
 * by ring_node_name() across rings.
 *
 * Ownership: ring_build() allocates the ring (it copies the names) and hands
 * it to the caller, who releases it with ring_free().  Every pointer the ring
 * returns (names, preference lists) is owned by the ring and valid until
 * ring_free(); the caller never frees it.  Arrays the caller passes in
 * (ring_replica_t out[], bool down[]) stay the caller's.
 *
 * Errors: functions that can fail return 0 (or a count) on success and a
 * negative errno value on failure: -EINVAL for bad arguments, -ENOMEM.  A
 * lookup that finds nothing is a result (0, false, RING_NODE_NONE), not an
 * error.  A NULL ring_t is a caller bug and is not checked outside
 * ring_build()/ring_free().
 */
#ifndef QKV_RING_H
#define QKV_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ring ring_t;

/* Limits checked by ring_build(): bounded so that token and preference
 * arrays stay addressable with 32-bit indices and node names fit a frame. */
#define RING_NAME_MAX 255u           /* bytes in a node name, without NUL */
#define RING_MAX_N 32u               /* replicas per key */
#define RING_MAX_TOKENS (1u << 24)   /* node_count * vnodes */

/* "No node": ring_node_index() found nothing; ring_replica_t.hint_for of a
 * replica that is the owner itself. */
#define RING_NODE_NONE UINT32_MAX

/* One replica chosen by ring_preflist_healthy().  `node` is the healthy node
 * to contact.  `hint_for` is RING_NODE_NONE when `node` is itself one of the
 * key's n owners, else the down owner whose place it takes (the write it
 * receives carries a hint naming that owner: hinted handoff). */
typedef struct ring_replica {
    uint32_t node;
    uint32_t hint_for;
} ring_replica_t;

/*
 * ring_build - build the ring of `node_count` members.
 *
 * names[i] is node i's name: non-empty, at most RING_NAME_MAX bytes, all
 * distinct.  Every node has `vnodes` tokens; preference lists have
 * min(n, node_count) nodes.  `epoch` is the caller's membership version,
 * stored as is (see ring_epoch()).
 *
 * Returns 0 and sets *out to a new ring owned by the caller (free with
 * ring_free()).  Returns -EINVAL if names or out is NULL, node_count is 0,
 * a name is NULL, empty, too long or repeated, vnodes is 0, n is 0 or above
 * RING_MAX_N, or node_count * vnodes exceeds RING_MAX_TOKENS; -ENOMEM if
 * allocation fails.  On failure *out is left untouched.
 */
int ring_build(const char *const *names, size_t node_count, uint32_t vnodes,
               uint32_t n, uint64_t epoch, ring_t **out);

/* ring_free - release the ring and everything it returned pointers to.
 * NULL is a no-op. */
void ring_free(ring_t *ring);

/* ring_epoch - the epoch given to ring_build(). */
uint64_t ring_epoch(const ring_t *ring);

/* ring_node_count - number of members (valid indices are 0 .. count-1). */
uint32_t ring_node_count(const ring_t *ring);

/* ring_vnodes - tokens per node, as given to ring_build(). */
uint32_t ring_vnodes(const ring_t *ring);

/* ring_n - length of every preference list: min(n given to ring_build(),
 * node_count). */
uint32_t ring_n(const ring_t *ring);

/* ring_node_name - name of node `idx`, owned by the ring; NULL if idx is
 * out of range. */
const char *ring_node_name(const ring_t *ring, uint32_t idx);

/* ring_node_index - index of the node called `name`, or RING_NODE_NONE if
 * it is not a member (or name is NULL).  O(log node_count). */
uint32_t ring_node_index(const ring_t *ring, const char *name);

/* ring_key_position - position of a key on the ring: hash64(key, len).
 * key may be NULL when len is 0. */
uint64_t ring_key_position(const void *key, size_t len);

/* ring_range_count - number of ranges, equal to the number of tokens
 * (node_count * vnodes). */
size_t ring_range_count(const ring_t *ring);

/*
 * ring_range - range i: (*start, *end] and its preference list.
 *
 * Any of start, end, list, len may be NULL when not wanted.  *list points to
 * ring_n() node indices, in preference order, owned by the ring; *len is set
 * to ring_n().  Range 0 wraps: *start is the last token (see the header
 * comment; *start == *end for a single-token ring means the whole ring).
 * Returns 0, or -EINVAL if i >= ring_range_count().
 */
int ring_range(const ring_t *ring, size_t i, uint64_t *start, uint64_t *end,
               const uint32_t **list, uint32_t *len);

/* ring_range_of - index of the range holding position `pos`: the range of
 * the first token >= pos, or range 0 if pos is above the last token.
 * O(log T); never returns an empty (start == end) range of a tied token. */
size_t ring_range_of(const ring_t *ring, uint64_t pos);

/*
 * ring_preflist - preference list of a key.
 *
 * Sets *list to the ring_n() owners of the key in preference order (the
 * first is the primary); the array is owned by the ring.  Returns ring_n().
 * Cost: one hash and one binary search.
 */
uint32_t ring_preflist(const ring_t *ring, const void *key, size_t len,
                       const uint32_t **list);

/*
 * ring_preflist_healthy - the replicas to contact for a key when some nodes
 * are down (sloppy quorum).
 *
 * down[i] true means node i is down; down has ring_node_count() entries, or
 * is NULL for "all up".  For each of the key's ring_n() owners, in
 * preference order, out[] receives either the owner itself
 * (hint_for = RING_NODE_NONE) if it is up, or, if it is down, a substitute:
 * walking clockwise past the owners, the next healthy node that is neither
 * an owner nor already a substitute, with hint_for = that owner.  The first
 * down owner gets the first such node, the second the next, and so on.  A
 * down owner for which no healthy node is left is omitted, so the count is
 * below ring_n() only when fewer than ring_n() nodes are up.
 *
 * out must hold cap >= ring_n() entries (owned by the caller).  Returns the
 * number of entries written, or -EINVAL if out is NULL or cap < ring_n().
 * Allocates nothing; O(log T + T) worst case, usually a few tokens.
 */
int ring_preflist_healthy(const ring_t *ring, const void *key, size_t len,
                          const bool *down, ring_replica_t *out, size_t cap);

/* ring_replicates_range - true if node idx is in range i's preference list;
 * false for an out-of-range idx or i. */
bool ring_replicates_range(const ring_t *ring, uint32_t idx, size_t i);

/* ring_replicates_key - true if node idx is one of the key's ring_n()
 * owners; false for an out-of-range idx. */
bool ring_replicates_key(const ring_t *ring, uint32_t idx, const void *key,
                         size_t len);

#endif
