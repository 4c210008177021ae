/*
 * keyq.c - per-key queues (see keyq.h).
 *
 * A chained hash table keyed by the key bytes (xxh3), grown by doubling
 * when it holds more keys than buckets.  Each entry is a held key with a
 * singly linked FIFO of waiters (head, tail).  Entries exist only while
 * their key is held, so the table's size follows the writes in flight, not
 * the data set.
 */
#include "keyq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hash.h"

typedef struct waiter {
    void *w;
    struct waiter *next;
} waiter_t;

typedef struct entry {
    struct entry *next; /* bucket chain */
    uint64_t hash;
    waiter_t *head, *tail;
    size_t klen;
    uint8_t key[]; /* klen bytes */
} entry_t;

struct keyq {
    entry_t **b;
    size_t nb; /* buckets, a power of two */
    size_t held, waiting;
};

keyq_t *keyq_new(void)
{
    keyq_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->nb = 64;
    q->b = calloc(q->nb, sizeof(*q->b));
    if (!q->b) {
        free(q);
        return NULL;
    }
    return q;
}

void keyq_free(keyq_t *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->nb; i++) {
        entry_t *e = q->b[i];
        while (e) {
            entry_t *next = e->next;
            for (waiter_t *w = e->head, *wn; w; w = wn) {
                wn = w->next;
                free(w);
            }
            free(e);
            e = next;
        }
    }
    free(q->b);
    free(q);
}

static entry_t **find(keyq_t *q, uint64_t h, const void *key, size_t klen)
{
    entry_t **p = &q->b[h & (q->nb - 1)];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && (*p)->klen == klen && memcmp((*p)->key, key, klen) == 0)
            break;
    return p;
}

/* Double the buckets; on failure the table stays as it is (only slower). */
static void grow(keyq_t *q)
{
    size_t nb = q->nb * 2;
    entry_t **b = calloc(nb, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < q->nb; i++) {
        for (entry_t *e = q->b[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    free(q->b);
    q->b = b;
    q->nb = nb;
}

int keyq_acquire(keyq_t *q, const void *key, size_t klen, void *w)
{
    uint64_t h = hash64(key, klen);
    entry_t **p = find(q, h, key, klen);
    if (*p) {
        waiter_t *n = malloc(sizeof(*n));
        if (!n)
            return -ENOMEM;
        n->w = w;
        n->next = NULL;
        if ((*p)->tail)
            (*p)->tail->next = n;
        else
            (*p)->head = n;
        (*p)->tail = n;
        q->waiting++;
        return 0;
    }
    entry_t *e = malloc(sizeof(*e) + klen);
    if (!e)
        return -ENOMEM;
    e->next = NULL;
    e->hash = h;
    e->head = e->tail = NULL;
    e->klen = klen;
    memcpy(e->key, key, klen);
    *p = e;
    if (++q->held > q->nb)
        grow(q);
    return 1;
}

void *keyq_release(keyq_t *q, const void *key, size_t klen)
{
    entry_t **p = find(q, hash64(key, klen), key, klen);
    entry_t *e = *p;
    if (!e)
        return NULL;
    if (e->head) {
        waiter_t *n = e->head;
        void *w = n->w;
        e->head = n->next;
        if (!e->head)
            e->tail = NULL;
        free(n);
        q->waiting--;
        return w;
    }
    *p = e->next;
    free(e);
    q->held--;
    return NULL;
}

bool keyq_busy(const keyq_t *q, const void *key, size_t klen)
{
    return q->held > 0 && *find((keyq_t *)q, hash64(key, klen), key, klen) != NULL;
}

size_t keyq_held(const keyq_t *q) { return q->held; }
size_t keyq_waiting(const keyq_t *q) { return q->waiting; }
