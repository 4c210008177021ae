/*
 * vclock.c - version vectors and dots (see vclock.h for the contract).
 *
 * Organisation: growth and lookup helpers first, then the entry points in
 * header order.  Invariants every function keeps:
 *   - e[0..n) is sorted by node id, strictly increasing (no duplicates);
 *   - every entry has counter >= 1 (an absent node means counter 0, so an
 *     entry with counter 0 would make equal vectors differ in n and digest;
 *     vc_set never creates one);
 *   - n <= cap, and e == NULL exactly when cap == 0.
 * Functions that allocate build the new state before touching *vc, so on
 * -ENOMEM the destination is as it was.  Nothing here allocates on the
 * read-only paths (get, compare, descends, covers, digest, format).
 */
#include "vclock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

/* Pairs hashed per hash64 call in vc_digest (16 bytes each). */
#define VC_DIGEST_CHUNK 128

/* Make room for at least want entries; contents are kept. */
static int vc_reserve(vclock_t *vc, uint32_t want)
{
    if (want <= vc->cap)
        return 0;
    uint64_t cap = vc->cap ? (uint64_t)vc->cap * 2 : 4;
    if (cap < want)
        cap = want;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    vc_entry_t *e = realloc(vc->e, (size_t)cap * sizeof(*e));
    if (e == NULL)
        return -ENOMEM;
    vc->e = e;
    vc->cap = (uint32_t)cap;
    return 0;
}

/* Index of node, or -(insertion point) - 1 when absent (bsearch style). */
static int64_t vc_find(const vclock_t *vc, uint64_t node)
{
    uint32_t lo = 0, hi = vc->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        uint64_t m = vc->e[mid].node;
        if (m == node)
            return mid;
        if (m < node)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -(int64_t)lo - 1;
}

void vc_init(vclock_t *vc)
{
    vc->n = 0;
    vc->cap = 0;
    vc->e = NULL;
}

void vc_free(vclock_t *vc)
{
    if (vc->e) /* most calls are on empty clocks: skip the call into free */
        free(vc->e);
    vc_init(vc);
}

int vc_copy(vclock_t *dst, const vclock_t *src)
{
    if (dst == src)
        return 0;
    if (src->n > dst->cap) {
        /* Fresh array rather than realloc: no need to keep old contents. */
        vc_entry_t *e = malloc((size_t)src->n * sizeof(*e));
        if (e == NULL)
            return -ENOMEM;
        free(dst->e);
        dst->e = e;
        dst->cap = src->n;
    }
    if (src->n)
        memcpy(dst->e, src->e, (size_t)src->n * sizeof(*dst->e));
    dst->n = src->n;
    return 0;
}

uint64_t vc_get(const vclock_t *vc, uint64_t node)
{
    int64_t i = vc_find(vc, node);
    return i >= 0 ? vc->e[i].counter : 0;
}

int vc_set(vclock_t *vc, uint64_t node, uint64_t counter, int64_t ts_us)
{
    int64_t i = vc_find(vc, node);
    if (i >= 0) {
        if (counter > vc->e[i].counter) {
            vc->e[i].counter = counter;
            vc->e[i].ts_us = ts_us;
        }
        return 0;
    }
    if (counter == 0)
        return 0; /* absent already means 0: keep the no-zero invariant */
    if (vc->n == UINT32_MAX)
        return -ENOMEM;
    int rc = vc_reserve(vc, vc->n + 1);
    if (rc < 0)
        return rc;
    uint32_t at = (uint32_t)(-i - 1);
    memmove(&vc->e[at + 1], &vc->e[at], (size_t)(vc->n - at) * sizeof(*vc->e));
    vc->e[at] = (vc_entry_t){.node = node, .counter = counter, .ts_us = ts_us};
    vc->n++;
    return 0;
}

/* The entry of a merged pair: greater counter, then later ts. */
static vc_entry_t vc_pick(vc_entry_t a, vc_entry_t b)
{
    if (a.counter != b.counter)
        return a.counter > b.counter ? a : b;
    return a.ts_us >= b.ts_us ? a : b;
}

int vc_merge(vclock_t *dst, const vclock_t *src)
{
    if (dst == src || src->n == 0)
        return 0;
    /* Pass 1: size of the union, so the array grows once (or not at all). */
    uint64_t total = dst->n;
    for (uint32_t i = 0, j = 0; j < src->n;) {
        if (i < dst->n && dst->e[i].node < src->e[j].node) {
            i++;
        } else if (i < dst->n && dst->e[i].node == src->e[j].node) {
            i++;
            j++;
        } else {
            total++;
            j++;
        }
    }
    if (total > UINT32_MAX)
        return -ENOMEM;
    int rc = vc_reserve(dst, (uint32_t)total);
    if (rc < 0)
        return rc;
    /* Pass 2: merge in place from the back; the write index never falls
     * below the read index of dst, so nothing unread is overwritten. */
    int64_t i = (int64_t)dst->n - 1, j = (int64_t)src->n - 1;
    int64_t k = (int64_t)total - 1;
    while (j >= 0) {
        if (i >= 0 && dst->e[i].node > src->e[j].node) {
            dst->e[k--] = dst->e[i--];
        } else if (i >= 0 && dst->e[i].node == src->e[j].node) {
            dst->e[k--] = vc_pick(dst->e[i], src->e[j]);
            i--;
            j--;
        } else {
            dst->e[k--] = src->e[j--];
        }
    }
    dst->n = (uint32_t)total;
    return 0;
}

enum vc_order vc_compare(const vclock_t *a, const vclock_t *b)
{
    bool a_ahead = false, b_ahead = false;
    uint32_t i = 0, j = 0;
    while (i < a->n || j < b->n) {
        uint64_t ca, cb;
        if (j >= b->n || (i < a->n && a->e[i].node < b->e[j].node)) {
            ca = a->e[i++].counter;
            cb = 0;
        } else if (i >= a->n || b->e[j].node < a->e[i].node) {
            ca = 0;
            cb = b->e[j++].counter;
        } else {
            ca = a->e[i++].counter;
            cb = b->e[j++].counter;
        }
        if (ca > cb)
            a_ahead = true;
        else if (cb > ca)
            b_ahead = true;
        if (a_ahead && b_ahead)
            return VC_CONCURRENT;
    }
    if (a_ahead)
        return VC_AFTER;
    return b_ahead ? VC_BEFORE : VC_EQUAL;
}

bool vc_descends(const vclock_t *a, const vclock_t *b)
{
    uint32_t i = 0;
    for (uint32_t j = 0; j < b->n; j++) {
        while (i < a->n && a->e[i].node < b->e[j].node)
            i++;
        uint64_t ca = (i < a->n && a->e[i].node == b->e[j].node) ? a->e[i].counter : 0;
        if (ca < b->e[j].counter)
            return false;
    }
    return true;
}

bool vc_covers(const vclock_t *vc, dot_t d) { return vc_get(vc, d.node) >= d.counter; }

/* Prune order: oldest ts first, then smaller node. */
static int vc_cmp_age(const void *pa, const void *pb)
{
    const vc_entry_t *a = pa, *b = pb;
    if (a->ts_us != b->ts_us)
        return a->ts_us < b->ts_us ? -1 : 1;
    return a->node < b->node ? -1 : a->node > b->node;
}

static int vc_cmp_node(const void *pa, const void *pb)
{
    const vc_entry_t *a = pa, *b = pb;
    return a->node < b->node ? -1 : a->node > b->node;
}

uint32_t vc_prune(vclock_t *vc, uint32_t max)
{
    if (vc->n <= max)
        return 0;
    /* Sort in place by age, drop the head, restore node order: no
     * allocation, so pruning cannot fail. */
    uint32_t drop = vc->n - max;
    qsort(vc->e, vc->n, sizeof(*vc->e), vc_cmp_age);
    memmove(vc->e, vc->e + drop, (size_t)max * sizeof(*vc->e));
    vc->n = max;
    qsort(vc->e, vc->n, sizeof(*vc->e), vc_cmp_node);
    return drop;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* XXH3 of the concatenated little-endian (node, counter) pairs.  Vectors of
 * more than VC_DIGEST_CHUNK entries are hashed chunk by chunk, each chunk
 * seeded with the previous hash, so no allocation is needed; the result is
 * still a pure function of the sorted entries. */
uint64_t vc_digest(const vclock_t *vc)
{
    uint8_t buf[VC_DIGEST_CHUNK * 16];
    uint64_t h = 0;
    uint32_t i = 0;
    do {
        uint32_t k = 0;
        for (; k < VC_DIGEST_CHUNK && i < vc->n; k++, i++) {
            put_le64(buf + 16 * k, vc->e[i].node);
            put_le64(buf + 16 * k + 8, vc->e[i].counter);
        }
        h = (i <= VC_DIGEST_CHUNK) ? hash64(buf, (size_t)k * 16)
                                   : hash64_seed(buf, (size_t)k * 16, h);
    } while (i < vc->n);
    return h ? h : 1;
}

/* Append s (len bytes) at *pos, writing only what fits before cap - 1. */
static void fmt_put(char *buf, size_t cap, size_t *pos, const char *s, size_t len)
{
    if (*pos + 1 < cap) {
        size_t room = cap - 1 - *pos;
        memcpy(buf + *pos, s, len < room ? len : room);
    }
    *pos += len;
}

size_t vc_format(const vclock_t *vc, char *buf, size_t cap)
{
    size_t pos = 0;
    char tmp[48];
    fmt_put(buf, cap, &pos, "[", 1);
    for (uint32_t i = 0; i < vc->n; i++) {
        int n = snprintf(tmp, sizeof(tmp), "%s%016llx:%llu", i ? "," : "",
                         (unsigned long long)vc->e[i].node,
                         (unsigned long long)vc->e[i].counter);
        fmt_put(buf, cap, &pos, tmp, (size_t)n);
    }
    fmt_put(buf, cap, &pos, "]", 1);
    if (cap > 0)
        buf[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int vc_parse(const char *s, size_t len, uint32_t max, vclock_t *out)
{
    if (len < 2 || s[0] != '[' || s[len - 1] != ']')
        return -EINVAL;
    vclock_t tmp;
    vc_init(&tmp);
    size_t pos = 1, end = len - 1;
    int rc = -EINVAL;
    while (pos < end) {
        if (tmp.n > 0 && s[pos++] != ',')
            goto err;
        uint64_t node = 0, counter = 0;
        for (int i = 0; i < 16; i++, pos++) {
            int h = pos < end ? hexval(s[pos]) : -1;
            if (h < 0)
                goto err;
            node = node << 4 | (uint64_t)h;
        }
        if (pos >= end || s[pos++] != ':' || pos >= end || s[pos] < '0' || s[pos] > '9')
            goto err;
        for (; pos < end && s[pos] >= '0' && s[pos] <= '9'; pos++) {
            unsigned d = (unsigned)(s[pos] - '0');
            if (counter > (UINT64_MAX - d) / 10)
                goto err;
            counter = counter * 10 + d;
        }
        if (counter == 0 || tmp.n >= max || (tmp.n > 0 && node <= tmp.e[tmp.n - 1].node))
            goto err;
        if ((rc = vc_reserve(&tmp, tmp.n + 1)) < 0)
            goto err;
        rc = -EINVAL;
        tmp.e[tmp.n++] = (vc_entry_t){.node = node, .counter = counter, .ts_us = 0};
    }
    vc_free(out);
    *out = tmp;
    return 0;
err:
    vc_free(&tmp);
    return rc;
}
