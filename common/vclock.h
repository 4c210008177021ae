/*
 * vclock.h - version vectors and dots.
 *
 * A version vector maps a node id (64-bit hash of the node name, see
 * hash.h) to the number of writes that node has coordinated for one key.  A
 * dot (node, counter) names one single write.  Entries are kept sorted by
 * node id with unique ids, so compare and merge are linear merges.  Each
 * entry also remembers when (microseconds since the epoch, coordinator
 * clock) it last advanced; pruning drops the oldest entries first.
 *
 * Ownership: a vclock_t owns its entry array.  vc_init() makes an empty
 * vector that owns nothing; vc_free() releases it and leaves it empty, so it
 * may be called twice.  Functions that can allocate return 0 or -ENOMEM and
 * leave the destination valid (unchanged on failure).
 */
#ifndef QKV_VCLOCK_H
#define QKV_VCLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct vc_entry {
    uint64_t node;
    uint64_t counter;
    int64_t ts_us;
} vc_entry_t;

typedef struct vclock {
    uint32_t n;   /* entries in use */
    uint32_t cap; /* entries allocated */
    vc_entry_t *e;
} vclock_t;

typedef struct dot {
    uint64_t node;
    uint64_t counter;
} dot_t;

enum vc_order { VC_EQUAL = 0, VC_BEFORE, VC_AFTER, VC_CONCURRENT };

void vc_init(vclock_t *vc);
void vc_free(vclock_t *vc);
/* dst becomes a copy of src (dst's old entries are released). */
int vc_copy(vclock_t *dst, const vclock_t *src);
/* The counter of node, 0 when absent. */
uint64_t vc_get(const vclock_t *vc, uint64_t node);
/* Raise node's counter to at least counter (never lowers it); ts_us is
 * stored when the counter moves or the entry is new. */
int vc_set(vclock_t *vc, uint64_t node, uint64_t counter, int64_t ts_us);
/* dst = pointwise max(dst, src); for equal counters the later ts wins. */
int vc_merge(vclock_t *dst, const vclock_t *src);
/* How a relates to b: VC_BEFORE means a happened before b (b descends a). */
enum vc_order vc_compare(const vclock_t *a, const vclock_t *b);
/* True when a >= b pointwise (a has seen everything b has). */
bool vc_descends(const vclock_t *a, const vclock_t *b);
/* True when vc[d.node] >= d.counter: the write d is in vc's past. */
bool vc_covers(const vclock_t *vc, dot_t d);
/* Keep at most max entries, dropping those with the oldest ts_us first
 * (ties: smaller node id first).  Returns how many were dropped. */
uint32_t vc_prune(vclock_t *vc, uint32_t max);
/* A stable 64-bit digest of the entries (node, counter) only; equal vectors
 * give equal digests on every node.  Never 0 (0 is mapped to 1), so it can
 * serve as a memcached cas unique. */
uint64_t vc_digest(const vclock_t *vc);
/* Text form for operators: "[" node-hex16 ":" counter ("," ...)* "]", no
 * spaces, e.g. "[00ab12...:3,ff01...:1]"; "[]" when empty.  Writes at most
 * cap bytes including the NUL; returns the length it needed (like
 * snprintf). */
size_t vc_format(const vclock_t *vc, char *buf, size_t cap);
/* Parse vc_format's text form (len bytes of s, not NUL-terminated) into
 * *out (vc_init'ed; its old entries are released on success).  Node ids are
 * exactly 16 hex digits, counters decimal 1..2^64-1, nodes strictly
 * increasing, at most max entries.  Timestamps are set to 0.  Returns 0,
 * -EINVAL on anything else, -ENOMEM. */
int vc_parse(const char *s, size_t len, uint32_t max, vclock_t *out);

#endif
