/*
 * store.h - durable storage on LevelDB (its C API).
 *
 * One LevelDB database per node, keys prefixed by kind so one database
 * holds them all:
 *   'd' <token: 8 bytes big-endian> <user key>  -> encoded obj_t (object.h)
 *   'h' <bytes>                                 -> hints (opaque here; handoff code)
 *   'm' <name>                                  -> node metadata (flush time,
 *                                                  generation, "format")
 * The token of a user key is its ring position, hash64(key bytes) (the
 * same value as ring_key_position(); see store_key_token()).  Big-endian
 * makes LevelDB's byte order the numeric order of tokens, so the objects of
 * one token range are one contiguous scan, which is what tree builds,
 * anti-entropy exchanges and range transfers need.
 *
 * Contract (after LevelDB's include/leveldb/c.h):
 *   - Opaque handles only.  All calls are synchronous and meant for one
 *     thread (the event loop); handles are not thread-safe.
 *   - Functions that can fail return 0 (or a positive result) on success and
 *     a negative errno on failure: -EIO for a LevelDB error (its message is
 *     logged), -ENOMEM, -EINVAL for a bad argument or a record that does not
 *     decode.  "Not found" is a result (0), never an error.
 *   - Ownership.  Every pointer argument stays the caller's; the store copies
 *     what it keeps (a batch copies keys and values at the call).  Buffers
 *     the store hands over are named per function: store_raw_get()'s *val is
 *     malloc'ed and the caller free()s it; store_get() fills an obj_t the
 *     caller releases with obj_free().  The iterator's key and value are
 *     BORROWED: valid until the next store_iter_seek*(), store_iter_next()
 *     or store_iter_destroy() on that iterator, never freed by the caller.
 *   - Lifetimes.  Iterators and snapshots must be destroyed/released before
 *     store_close().  An iterator created on a snapshot must be destroyed
 *     before that snapshot is released.  A batch is independent of any store
 *     and may be written to several.
 *   - Durability.  Reads hit LevelDB's block cache; writes go to its memtable
 *     and log, and with opts.sync every write is fsync'ed.  Without sync a
 *     process crash (kill -9) loses nothing acknowledged (the log is written
 *     before the reply); a machine crash may lose the last writes, as with
 *     LevelDB's default.  A batch is applied atomically: after a crash either
 *     all of it is there or none.
 *
 * On-disk format.  'm' "format" holds STORE_FORMAT in decimal.  A directory
 * without it but with 'd' records was written before objects were keyed by
 * token ('d' <user key>); store_open() converts it in place, in atomic
 * batches of STORE_CONVERT_BATCH records, each moving records from the old
 * key to the new one.  A token-keyed record proves itself (its first 8 bytes
 * are the hash of the rest), so a conversion interrupted by a crash simply
 * resumes at the next open.  A directory whose format is newer than this
 * build is refused.
 *
 * Tests can inject faults: store_fail_next() makes the next N write calls
 * (single writes and store_write() of a batch alike) fail with -EIO without
 * touching LevelDB.
 */
#ifndef QKV_STORE_H
#define QKV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "object.h"

typedef struct store store_t;
typedef struct store_iter store_iter_t;
typedef struct store_snapshot store_snapshot_t;
typedef struct store_batch store_batch_t;

/* The on-disk format this build writes (see the header comment). */
#define STORE_FORMAT 2
/* Records moved per atomic batch when converting an old directory. */
#define STORE_CONVERT_BATCH 1000

/* The prefixes of raw records: everything that is not an object.  The raw
 * calls refuse any other prefix (-EINVAL) so no caller can write an object
 * record behind the token layout's back. */
#define STORE_PREFIX_HINT 'h'
#define STORE_PREFIX_META 'm'

typedef struct store_opts {
    const char *path;       /* directory, created if missing */
    bool sync;              /* fsync every write */
    size_t cache_bytes;     /* LevelDB block cache; 0 = default 8 MiB */
    size_t write_buffer;    /* memtable size; 0 = LevelDB default */
} store_opts_t;

/* Open (creating if needed), converting an old-format directory (see the
 * header comment).  On failure returns a negative errno and, if errmsg is
 * not NULL, a malloc'ed one-line message the caller frees. */
int store_open(const store_opts_t *opts, store_t **out, char **errmsg);
/* Flush and close; NULL is fine. */
void store_close(store_t *st);

/* The token of a user key: hash64(key, klen), equal to
 * ring_key_position().  key may be NULL when klen is 0. */
uint64_t store_key_token(const void *key, size_t klen);

/* ---- objects, by user key (the token is computed here) ---- */

/* Object of a user key: 1 and *o filled when present (*o must be
 * obj_init'ed; the caller obj_free()s it), 0 when absent, negative on I/O
 * error or a record that does not decode (-EINVAL, logged).  When present,
 * o->stored_hash is the record's anti-entropy hash (tictac_key_hash() of
 * the key and the stored bytes), computed from the bytes just read. */
int store_get(store_t *st, const void *key, size_t klen, obj_t *o);
/* The stored bytes of a user key's object (an obj_encode() output, not
 * decoded): 1 with *enc malloc'ed (the caller frees it) and *len, 0 when
 * absent (*enc NULL), negative on error.  For anti-entropy, which sends
 * records as they are stored. */
int store_get_enc(store_t *st, const void *key, size_t klen, uint8_t **enc, size_t *len);
int store_put(store_t *st, const void *key, size_t klen, const obj_t *o);
/* store_put() that also reports the anti-entropy hash of the record it
 * wrote in *hash (NULL: not wanted; untouched on failure), from the bytes it
 * encoded anyway: the write path updates its tree without a second
 * encoding. */
int store_put_hashed(store_t *st, const void *key, size_t klen, const obj_t *o, uint64_t *hash);
/* store_put_hashed() that also hands over the bytes it stored: on success,
 * when enc is not NULL, *enc (malloc'ed, the caller frees it) and *enclen
 * are the object's encoding, so the coordinator replicates exactly those
 * bytes without encoding the object again (untouched on failure). */
int store_put_enc(store_t *st, const void *key, size_t klen, const obj_t *o, uint64_t *hash,
                  uint8_t **enc, size_t *enclen);
/* Deleting an absent key is fine (0). */
int store_del(store_t *st, const void *key, size_t klen);

/* ---- raw records ('h' and 'm' only) ---- */

/* The LevelDB key is prefix byte + key.  store_raw_get returns 1 with *val
 * (malloc'ed, the caller frees it; non-NULL even for an empty value) and
 * *vlen, or 0 when absent (*val NULL). */
int store_raw_get(store_t *st, char prefix, const void *key, size_t klen,
                  uint8_t **val, size_t *vlen);
int store_raw_put(store_t *st, char prefix, const void *key, size_t klen,
                  const void *val, size_t vlen);
int store_raw_del(store_t *st, char prefix, const void *key, size_t klen);

/* ---- snapshots ---- */

/* A consistent read view as of now: iterators created on it see no later
 * write.  NULL on allocation failure.  Release with store_snapshot_release()
 * on the same store, after destroying the iterators created on it. */
store_snapshot_t *store_snapshot_create(store_t *st);
/* NULL is fine. */
void store_snapshot_release(store_t *st, store_snapshot_t *snap);

/* ---- iterators ---- */

/* An iterator over the objects ('d'), in token order (equal tokens: user
 * key byte order), on snap or, when snap is NULL, on the store as of the
 * creation (LevelDB iterators are implicit snapshots too).  It starts
 * unpositioned (not valid): call a seek first.  Scans read with the block
 * cache's fill off, so a scan does not evict the hot working set.
 * *out is owned by the caller (store_iter_destroy()).  0, -ENOMEM. */
int store_iter_create(store_t *st, const store_snapshot_t *snap, store_iter_t **out);
/* The same over the raw records of prefix ('h' or 'm'; -EINVAL otherwise),
 * in byte order of their keys. */
int store_iter_create_raw(store_t *st, const store_snapshot_t *snap, char prefix,
                          store_iter_t **out);

/* Position at the first record. */
void store_iter_seek_first(store_iter_t *it);
/* Objects: position at the first record at or after (token, key), that is
 * the first with a greater token, or the same token and a user key >= key
 * (key may be NULL with klen 0: the first record of that token).  Raw
 * iterators ignore token and seek to the first key >= key. */
void store_iter_seek(store_iter_t *it, uint64_t token, const void *key, size_t klen);
/* Whether the iterator is at a record.  False past the last record of its
 * kind (an object iterator never walks into hints) and after an error. */
bool store_iter_valid(const store_iter_t *it);
/* Move to the next record; only when valid. */
void store_iter_next(store_iter_t *it);
/* The current record (only when valid).  token: objects only (0 for raw
 * iterators).  key: the user key (objects) or the key after the prefix byte
 * (raw); value: the raw stored bytes (an encoded obj_t for objects).  Both
 * are borrowed: valid until the next seek/next/destroy. */
uint64_t store_iter_token(const store_iter_t *it);
const uint8_t *store_iter_key(const store_iter_t *it, size_t *klen);
const uint8_t *store_iter_value(const store_iter_t *it, size_t *vlen);
/* 0, or -EIO when the iteration stopped on a LevelDB error (logged).  Check
 * it once the iterator is no longer valid: the end and an error look the
 * same to store_iter_valid(). */
int store_iter_error(const store_iter_t *it);
/* NULL is fine. */
void store_iter_destroy(store_iter_t *it);

/* ---- write batches ---- */

/* An empty batch, owned by the caller (store_batch_destroy()); NULL on
 * allocation failure.  Operations are applied in the order they were added
 * (a put then a delete of one key leaves it deleted). */
store_batch_t *store_batch_create(void);
void store_batch_destroy(store_batch_t *b); /* NULL is fine */
void store_batch_clear(store_batch_t *b);
/* Number of operations added since creation or the last clear. */
size_t store_batch_count(const store_batch_t *b);
/* Object put/delete by user key (encoded and keyed here): 0, -ENOMEM,
 * -EINVAL for an object obj_encode() refuses.  On failure the batch is
 * unchanged. */
int store_batch_put(store_batch_t *b, const void *key, size_t klen, const obj_t *o);
int store_batch_del(store_batch_t *b, const void *key, size_t klen);
/* Raw put/delete ('h' or 'm'; -EINVAL otherwise). */
int store_batch_raw_put(store_batch_t *b, char prefix, const void *key, size_t klen,
                        const void *val, size_t vlen);
int store_batch_raw_del(store_batch_t *b, char prefix, const void *key, size_t klen);
/* Apply every operation of b at once (atomically, one log record).  The
 * batch is left as it was (write it again, clear or destroy it).  An empty
 * batch is a successful no-op.  0 or -EIO. */
int store_write(store_t *st, store_batch_t *b);

/* Test seam: the next n write calls (put/del/raw_put/raw_del/store_write)
 * fail with -EIO without touching LevelDB. */
void store_fail_next(store_t *st, int n);

#endif
