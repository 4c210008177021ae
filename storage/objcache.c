/*
 * objcache.c - the bounded cache of decoded objects (see objcache.h).
 *
 * Organisation: a chained hash table of entries (the bucket array doubles
 * when there are more entries than buckets) and one doubly linked LRU list
 * through the same entries, most recent at the head.  The key is stored
 * inline after the entry, so an entry is one allocation plus the object's
 * own (vector, sibling array, values).
 *
 * Invariants: every entry is in exactly one bucket chain and in the LRU
 * list; c->bytes is the sum of the entries' sizes and never exceeds
 * c->max_bytes after a call returns.
 */
#include "objcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hash.h"

#define OCACHE_MIN_BUCKETS 1024u
/* An entry bigger than max_bytes / OCACHE_BIG_DIV is not cached. */
#define OCACHE_BIG_DIV 8u

typedef struct entry {
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* LRU list, most recent first */
    uint64_t hash;
    size_t size;               /* what it counts against max_bytes */
    bool absent;               /* the key has no record */
    obj_t obj;
    size_t klen;
    uint8_t key[];
} entry_t;

struct ocache {
    entry_t **b;
    size_t nb; /* power of two */
    entry_t *head, *tail;
    size_t max_bytes;
    ocache_stats_t st;
};

size_t ocache_entry_size(size_t klen, const obj_t *o)
{
    size_t n = sizeof(entry_t) + klen + sizeof(entry_t *);
    if (o) {
        n += (size_t)o->vc.n * sizeof(*o->vc.e) + (size_t)o->nsib * sizeof(*o->sib);
        for (uint32_t i = 0; i < o->nsib; i++)
            n += o->sib[i].len;
    }
    return n;
}

ocache_t *ocache_new(size_t max_bytes)
{
    ocache_t *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->nb = OCACHE_MIN_BUCKETS;
    c->b = calloc(c->nb, sizeof(*c->b));
    if (!c->b) {
        free(c);
        return NULL;
    }
    c->max_bytes = max_bytes;
    c->st.max_bytes = max_bytes;
    return c;
}

static void entry_free(entry_t *e)
{
    obj_free(&e->obj);
    free(e);
}

/* Take e out of its chain and the LRU list, and free it. */
static void unlink_free(ocache_t *c, entry_t *e)
{
    entry_t **pp = &c->b[e->hash & (c->nb - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    c->st.items--;
    c->st.bytes -= e->size;
    entry_free(e);
}

void ocache_clear(ocache_t *c)
{
    while (c->head)
        unlink_free(c, c->head);
}

void ocache_free(ocache_t *c)
{
    if (!c)
        return;
    ocache_clear(c);
    free(c->b);
    free(c);
}

static entry_t *find(const ocache_t *c, uint64_t h, const void *key, size_t klen)
{
    for (entry_t *e = c->b[h & (c->nb - 1)]; e; e = e->hnext)
        if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return e;
    return NULL;
}

static void lru_front(ocache_t *c, entry_t *e)
{
    if (c->head == e)
        return;
    e->prev->next = e->next; /* e is not the head: it has a prev */
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = NULL;
    e->next = c->head;
    c->head->prev = e;
    c->head = e;
}

bool ocache_get(ocache_t *c, const void *key, size_t klen, const obj_t **o)
{
    entry_t *e = c->st.items ? find(c, hash64(key, klen), key, klen) : NULL;
    if (!e) {
        c->st.misses++;
        return false;
    }
    c->st.hits++;
    lru_front(c, e);
    *o = e->absent ? NULL : &e->obj;
    return true;
}

bool ocache_take(ocache_t *c, const void *key, size_t klen, obj_t *o, bool *present)
{
    entry_t *e = c->st.items ? find(c, hash64(key, klen), key, klen) : NULL;
    if (!e) {
        c->st.misses++;
        return false;
    }
    c->st.hits++;
    *present = !e->absent;
    if (!e->absent) {
        obj_free(o);
        *o = e->obj;
        obj_init(&e->obj);
    }
    unlink_free(c, e);
    return true;
}

void ocache_del(ocache_t *c, const void *key, size_t klen)
{
    if (!c->st.items)
        return;
    entry_t *e = find(c, hash64(key, klen), key, klen);
    if (e) {
        c->st.invalidations++;
        unlink_free(c, e);
    }
}

/* Double the buckets (best effort: a failed grow only lengthens chains). */
static void grow(ocache_t *c)
{
    size_t nb = c->nb * 2;
    entry_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < c->nb; i++) {
        entry_t *e = c->b[i];
        while (e) {
            entry_t *next = e->hnext;
            e->hnext = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
            e = next;
        }
    }
    free(c->b);
    c->b = b;
    c->nb = nb;
}

/* Put o for key: copied, or taken over when take (then *o is left empty
 * whatever happens). */
static int put(ocache_t *c, const void *key, size_t klen, obj_t *o, bool take)
{
    uint64_t h = hash64(key, klen);
    entry_t *old = c->st.items ? find(c, h, key, klen) : NULL;
    if (old)
        unlink_free(c, old);
    size_t size = ocache_entry_size(klen, o);
    entry_t *e = NULL;
    if (size > c->max_bytes / OCACHE_BIG_DIV || !(e = malloc(sizeof(*e) + klen))) {
        if (take && o)
            obj_free(o);
        return e || size > c->max_bytes / OCACHE_BIG_DIV ? 0 : -ENOMEM;
    }
    obj_init(&e->obj);
    if (o && take) {
        e->obj = *o;
        obj_init(o);
    } else if (o && obj_copy(&e->obj, o) < 0) {
        free(e);
        return -ENOMEM;
    }
    e->hash = h;
    e->size = size;
    e->absent = o == NULL;
    e->klen = klen;
    memcpy(e->key, key, klen);
    while (c->st.bytes + size > c->max_bytes && c->tail) {
        c->st.evictions++;
        unlink_free(c, c->tail);
    }
    if (c->st.items >= c->nb)
        grow(c);
    e->hnext = c->b[h & (c->nb - 1)];
    c->b[h & (c->nb - 1)] = e;
    e->prev = NULL;
    e->next = c->head;
    if (c->head)
        c->head->prev = e;
    else
        c->tail = e;
    c->head = e;
    c->st.items++;
    c->st.bytes += size;
    return 0;
}

int ocache_put(ocache_t *c, const void *key, size_t klen, const obj_t *o)
{
    return put(c, key, klen, (obj_t *)o, false); /* not changed when not taken */
}

int ocache_put_take(ocache_t *c, const void *key, size_t klen, obj_t *o)
{
    return put(c, key, klen, o, true);
}

void ocache_get_stats(const ocache_t *c, ocache_stats_t *s) { *s = c->st; }
