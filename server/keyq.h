/*
 * keyq.h - per-key queues: one holder at a time per key, the rest wait in
 * arrival order.
 *
 * The coordinator runs the writes of one key that it coordinates one at a
 * time (DESIGN.md, Versions: read-modify-writes of a key run one at a time
 * at its first live owner), so an incr or a cas reads what the previous one
 * wrote.  This is a small hash table of the keys that are held right now,
 * each with a FIFO of waiters; a key nobody holds costs nothing.  Pure
 * bookkeeping: no clock, no I/O; the caller decides when a waiter runs.
 *
 * Ownership: the table copies keys; waiters are the caller's pointers,
 * never dereferenced here.  keyq_free() drops waiters still queued without
 * telling anyone (the caller drains them first if it cares).
 */
#ifndef QKV_KEYQ_H
#define QKV_KEYQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct keyq keyq_t;

/* NULL when out of memory. */
keyq_t *keyq_new(void);
void keyq_free(keyq_t *q);

/* Take key for w.  1: w holds it now.  0: someone holds it; w is queued
 * and becomes the holder when keyq_release() returns it.  -ENOMEM: nothing
 * changed. */
int keyq_acquire(keyq_t *q, const void *key, size_t klen, void *w);

/* The holder of key lets go.  Returns the next waiter, which holds the key
 * from now on, or NULL when nobody waits (the key is then free). */
void *keyq_release(keyq_t *q, const void *key, size_t klen);

/* Whether someone holds key right now: a lookup only, no allocation (a
 * blind set that finds its key free runs without taking it, see coord.c). */
bool keyq_busy(const keyq_t *q, const void *key, size_t klen);

/* Keys held right now, and waiters queued behind them. */
size_t keyq_held(const keyq_t *q);
size_t keyq_waiting(const keyq_t *q);

#endif
