/*
 * tictac.c - TicTac Merkle trees (see tictac.h).
 *
 * Organisation: the range arithmetic (width, segment of a token, tokens of
 * a segment), then updates and accessors, then comparison.  A tree is one
 * flat struct: root, branch and leaf arrays inline, so it is one allocation
 * of fixed size and branch b's leaves are leaf[b * 32 .. b * 32 + 31].
 *
 * Invariants, kept by tictac_update() being the only writer (besides
 * clear): branch[b] == XOR of its 32 leaves, root == XOR of the branches,
 * so every update XORs the same delta into one leaf, its branch and the
 * root.
 *
 * The scaled segment needs a 64x64 -> 128-bit product: offset * 1024 /
 * width with offset < width <= 2^64.  unsigned __int128 (GCC and Clang,
 * the compilers the Makefile supports) does it exactly.
 */
#include "tictac.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hash.h"

__extension__ typedef unsigned __int128 u128;

#define SEG_BITS 10 /* log2(TICTAC_SEGMENTS) */

_Static_assert(TICTAC_SEGMENTS == 1u << SEG_BITS, "SEG_BITS must match TICTAC_SEGMENTS");

struct tictac {
    uint64_t start, end; /* the range (start, end]; start == end: whole ring */
    uint64_t root;
    uint64_t nkeys;
    uint64_t branch[TICTAC_BRANCHES];
    uint64_t leaf[TICTAC_SEGMENTS];
};

int tictac_create(uint64_t start, uint64_t end, tictac_t **out)
{
    tictac_t *t = calloc(1, sizeof(*t));
    *out = t;
    if (t == NULL)
        return -ENOMEM;
    t->start = start;
    t->end = end;
    return 0;
}

void tictac_free(tictac_t *t) { free(t); }

void tictac_clear(tictac_t *t)
{
    uint64_t start = t->start, end = t->end;
    memset(t, 0, sizeof(*t));
    t->start = start;
    t->end = end;
}

void tictac_range(const tictac_t *t, uint64_t *start, uint64_t *end)
{
    *start = t->start;
    *end = t->end;
}

/* ---- range arithmetic ---- */

/* The range width as a 128-bit number: 2^64 for the whole ring. */
static u128 width(const tictac_t *t)
{
    return t->start == t->end ? (u128)1 << 64 : (u128)(uint64_t)(t->end - t->start);
}

bool tictac_contains(const tictac_t *t, uint64_t token)
{
    /* offset from start + 1, modulo 2^64, is below the width */
    return (u128)(uint64_t)(token - t->start - 1) < width(t);
}

uint32_t tictac_segment(const tictac_t *t, uint64_t token)
{
    uint64_t off = token - t->start - 1;
    u128 w = width(t);
    if ((u128)off >= w)
        return TICTAC_SEGMENTS;
    return (uint32_t)(((u128)off << SEG_BITS) / w);
}

/* The first offset of segment s: ceil(s * w / SEGMENTS), w <= 2^64. */
static u128 seg_first_off(u128 w, uint32_t s)
{
    return ((u128)s * w + TICTAC_SEGMENTS - 1) >> SEG_BITS;
}

int tictac_segment_bounds(const tictac_t *t, uint32_t seg, uint64_t *first, uint64_t *last)
{
    if (seg >= TICTAC_SEGMENTS)
        return -EINVAL;
    u128 w = width(t);
    u128 lo = seg_first_off(w, seg), hi = seg_first_off(w, seg + 1); /* [lo, hi) */
    if (lo >= hi)
        return -ENOENT;
    *first = t->start + 1 + (uint64_t)lo;
    *last = t->start + (uint64_t)hi; /* start + 1 + (hi - 1), modulo 2^64 */
    return 0;
}

/* ---- hashes and updates ---- */

uint64_t tictac_token_hash(uint64_t token, const void *enc, size_t elen)
{
    uint64_t h = hash64_seed(elen ? enc : "", elen, token);
    return h ? h : 1;
}

uint64_t tictac_key_hash(const void *key, size_t klen, const void *enc, size_t elen)
{
    return tictac_token_hash(hash64(klen ? key : "", klen), enc, elen);
}

int tictac_update(tictac_t *t, uint64_t token, uint64_t old_hash, uint64_t new_hash)
{
    uint32_t s = tictac_segment(t, token);
    if (s >= TICTAC_SEGMENTS)
        return -ERANGE;
    uint64_t delta = old_hash ^ new_hash;
    t->leaf[s] ^= delta;
    t->branch[s / TICTAC_LEAVES] ^= delta;
    t->root ^= delta;
    t->nkeys += (old_hash == 0 && new_hash != 0);
    t->nkeys -= (old_hash != 0 && new_hash == 0);
    return 0;
}

uint64_t tictac_root(const tictac_t *t) { return t->root; }

const uint64_t *tictac_branches(const tictac_t *t) { return t->branch; }

const uint64_t *tictac_leaves(const tictac_t *t, uint32_t b)
{
    return b < TICTAC_BRANCHES ? &t->leaf[b * TICTAC_LEAVES] : NULL;
}

uint64_t tictac_keys(const tictac_t *t) { return t->nkeys; }

size_t tictac_memory(const tictac_t *t)
{
    (void)t;
    return sizeof(struct tictac);
}

/* ---- comparison ---- */

size_t tictac_compare(const uint64_t *a, const uint64_t *b, size_t n, uint32_t *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i])
            continue;
        if (k < cap)
            out[k] = (uint32_t)i;
        k++;
    }
    return k;
}

int tictac_diff(const tictac_t *a, const tictac_t *b, uint32_t *segs, size_t cap,
                tictac_diff_stats_t *stats)
{
    tictac_diff_stats_t st = {0, 0};
    size_t k = 0;
    if (a->start != b->start || a->end != b->end)
        return -EINVAL;
    if (a->root != b->root) {
        uint32_t br[TICTAC_BRANCHES], lv[TICTAC_LEAVES];
        size_t nb = tictac_compare(a->branch, b->branch, TICTAC_BRANCHES, br, TICTAC_BRANCHES);
        for (size_t i = 0; i < nb; i++) {
            size_t nl = tictac_compare(tictac_leaves(a, br[i]), tictac_leaves(b, br[i]),
                                       TICTAC_LEAVES, lv, TICTAC_LEAVES);
            st.branches_descended++;
            st.leaves_compared += TICTAC_LEAVES;
            for (size_t j = 0; j < nl; j++, k++)
                if (k < cap)
                    segs[k] = br[i] * TICTAC_LEAVES + lv[j];
        }
    }
    if (stats)
        *stats = st;
    return (int)k;
}
