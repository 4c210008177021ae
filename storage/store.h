/*
 * store.h - durable storage on LevelDB (its C API).
 *
 * One LevelDB database per node, keys prefixed by kind so one database
 * holds them all:
 *   'd' <user key>           -> encoded obj_t (object.h)
 *   'h' <other bytes>        -> hints (opaque here, owned by the handoff code)
 *   'm' <name>               -> node metadata (flush time, node generation...)
 * Reads hit LevelDB's block cache; writes go to its memtable and log, and
 * with opts.sync every write is fsync'ed.  Without sync a process crash
 * (kill -9) loses nothing acknowledged (the log is written before the
 * reply); a machine crash may lose the last writes, as with LevelDB's
 * default.
 *
 * All calls are synchronous and are meant for the single event-loop thread.
 * Failures return a negative errno (-EIO for LevelDB errors, whose message is
 * logged); "not found" is a result (0), not an error.
 *
 * Tests can inject faults: store_fail_next() makes the next N write calls
 * fail with -EIO, so the callers' error paths can be exercised.
 */
#ifndef QKV_STORE_H
#define QKV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "object.h"

typedef struct store store_t;

typedef struct store_opts {
    const char *path;       /* directory, created if missing */
    bool sync;              /* fsync every write */
    size_t cache_bytes;     /* LevelDB block cache; 0 = default 8 MiB */
    size_t write_buffer;    /* memtable size; 0 = LevelDB default */
} store_opts_t;

/* Open (creating if needed).  On failure returns a negative errno and, if
 * errmsg is not NULL, a malloc'ed message the caller frees. */
int store_open(const store_opts_t *opts, store_t **out, char **errmsg);
/* Flush and close; NULL is fine. */
void store_close(store_t *st);

/* Object of a user key: 1 and *o filled when present, 0 when absent,
 * negative on I/O error or a record that does not decode (-EINVAL, logged). */
int store_get(store_t *st, const void *key, size_t klen, obj_t *o);
int store_put(store_t *st, const void *key, size_t klen, const obj_t *o);
int store_del(store_t *st, const void *key, size_t klen);

/* Raw access for other prefixes ('h', 'm'): the full LevelDB key is
 * prefix byte + key.  store_raw_get returns 1 with *val (malloc'ed, caller
 * frees) and *vlen, or 0 when absent. */
int store_raw_get(store_t *st, char prefix, const void *key, size_t klen,
                  uint8_t **val, size_t *vlen);
int store_raw_put(store_t *st, char prefix, const void *key, size_t klen,
                  const void *val, size_t vlen);
int store_raw_del(store_t *st, char prefix, const void *key, size_t klen);

/* Iterate, in key order, over every record whose LevelDB key starts with
 * prefix followed by start (start may be NULL/0 for all).  cb gets the key
 * without the prefix byte and the raw value; it returns 0 to go on, non-zero
 * to stop (that value is returned).  Returns 0 when done, negative on error. */
typedef int (*store_iter_cb)(void *arg, const uint8_t *key, size_t klen,
                             const uint8_t *val, size_t vlen);
int store_iterate(store_t *st, char prefix, const void *start, size_t slen,
                  store_iter_cb cb, void *arg);

/* Test seam: the next n write calls (put/del/raw_put/raw_del) fail with
 * -EIO without touching LevelDB. */
void store_fail_next(store_t *st, int n);

#endif
