/*
 * store.c - durable storage on LevelDB through its C API (see store.h).
 *
 * Organisation: key building and error helpers; open/close, with the
 * on-disk format check and the in-place conversion of old directories; the
 * raw calls for the 'h' and 'm' prefixes; the typed object calls
 * (get/put/del on prefix 'd', keyed by token); snapshots; iterators; write
 * batches.  Every write (single or batch) goes through check_fault(), the
 * test seam of store_fail_next().
 *
 * Key layout: 'd' + token (8 bytes, big-endian) + user key for objects, so
 * LevelDB's byte order is token order and a token range is one contiguous
 * scan; 'h' / 'm' + bytes for hints and metadata.  An object key proves its
 * own format: its token is the hash of the user key after it.  The format
 * conversion relies on that to tell converted records from old ones without
 * any progress marker, which is what makes an interrupted conversion safe
 * to resume.
 *
 * Performance: store_get/store_put run for every memcached get/set, so the
 * LevelDB option objects are created once at open and reused; the prefixed
 * key is built in a stack buffer (memcached keys are at most 250 bytes) and
 * only longer keys touch the heap; the table cache is an LRU block cache
 * (8 MiB by default) with a 10-bit-per-key bloom filter so gets of absent
 * keys rarely read a block.  Iterators (anti-entropy, handoff, transfers,
 * the crawler) read with fill_cache off so a scan does not evict the hot
 * working set.
 *
 * Invariants: st->db is open for the whole life of a store_t; everything in
 * the struct is released by store_close() only.  An iterator's cached
 * current record (token, key) is set exactly when it is valid, and it never
 * reports a record outside its prefix.
 */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <leveldb/c.h>

#include "../common/hash.h"
#include "../common/log.h"
#include "tictac.h"

#define STORE_DEFAULT_CACHE (8u << 20)
#define STORE_BLOOM_BITS 10
#define STORE_TOKEN_LEN 8
/* Object key head: prefix byte + token. */
#define STORE_OBJ_HEAD (1 + STORE_TOKEN_LEN)
/* Object key head + the longest memcached key (250), rounded up. */
#define STORE_KEYBUF 272
#define STORE_PREFIX_OBJ 'd'
#define META_FORMAT "format"

struct store {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    leveldb_readoptions_t *ropts;    /* point reads: fill the cache */
    leveldb_writeoptions_t *wopts;   /* sync per store_opts_t.sync */
    int fail_next;                   /* store_fail_next() budget */
};

struct store_snapshot {
    const leveldb_snapshot_t *snap;
};

struct store_iter {
    leveldb_iterator_t *it;
    leveldb_readoptions_t *ropts; /* its own: the snapshot, no cache fill */
    char prefix;
    bool objects;                 /* prefix 'd': keys carry a token */
    bool valid;                   /* at a record of this prefix */
    int err;
    uint64_t token;               /* current record (objects) */
    const uint8_t *key;           /* borrowed from LevelDB's iterator */
    size_t klen;
};

struct store_batch {
    leveldb_writebatch_t *wb;
    size_t count;
};

/* ---- keys and errors ---- */

uint64_t store_key_token(const void *key, size_t klen)
{
    return hash64(klen ? key : "", klen);
}

static void put_be64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static bool raw_prefix_ok(char prefix)
{
    return prefix == STORE_PREFIX_HINT || prefix == STORE_PREFIX_META;
}

/* head (hlen bytes) + key, in stack (when it fits) or a malloc'ed buffer:
 * *heap is what the caller frees (NULL when the stack buffer was used). */
static char *make_key(const char *head, size_t hlen, const void *key, size_t klen, char *stack,
                      char **heap, size_t *outlen)
{
    char *k = stack;
    *heap = NULL;
    if (klen > STORE_KEYBUF - hlen) {
        if (klen > SIZE_MAX - hlen || (k = malloc(hlen + klen)) == NULL)
            return NULL;
        *heap = k;
    }
    memcpy(k, head, hlen);
    if (klen)
        memcpy(k + hlen, key, klen);
    *outlen = hlen + klen;
    return k;
}

/* The LevelDB key of a raw record: prefix + key. */
static char *raw_key(char prefix, const void *key, size_t klen, char *stack, char **heap,
                     size_t *outlen)
{
    return make_key(&prefix, 1, key, klen, stack, heap, outlen);
}

/* The LevelDB key of an object: 'd' + token of the user key + user key. */
static char *obj_key(const void *key, size_t klen, char *stack, char **heap, size_t *outlen)
{
    char head[STORE_OBJ_HEAD];
    head[0] = STORE_PREFIX_OBJ;
    put_be64(head + 1, store_key_token(key, klen));
    return make_key(head, sizeof(head), key, klen, stack, heap, outlen);
}

/* Whether a LevelDB key (prefix included) is a token-keyed object key:
 * 'd', then 8 bytes that are the hash of the rest.  An old-format key
 * ('d' + user key) passes only if the user key's first 8 bytes happen to
 * be the hash of the remainder: a 2^-64 chance per key. */
static bool is_obj_key(const uint8_t *k, size_t kl)
{
    return kl >= STORE_OBJ_HEAD && k[0] == STORE_PREFIX_OBJ &&
           get_be64(k + 1) == store_key_token(k + STORE_OBJ_HEAD, kl - STORE_OBJ_HEAD);
}

/* Turn a LevelDB error into -EIO after logging it (NULL: success). */
static int lerr_check(char *lerr, const char *what)
{
    if (lerr == NULL)
        return 0;
    log_error("store: %s: %s", what, lerr);
    leveldb_free(lerr);
    return -EIO;
}

/* The store_fail_next() seam: true when this write must fail. */
static bool check_fault(store_t *st)
{
    if (st->fail_next <= 0)
        return false;
    st->fail_next--;
    return true;
}

/* The value of the full key k, LevelDB-allocated (free with leveldb_free):
 * 1 found, 0 absent, -EIO. */
static int raw_get(store_t *st, const char *k, size_t kl, char **val, size_t *vlen)
{
    char *lerr = NULL;
    *val = leveldb_get(st->db, st->ropts, k, kl, vlen, &lerr);
    int rc = lerr_check(lerr, "get");
    if (rc < 0)
        return rc;
    return *val != NULL;
}

static int raw_put(store_t *st, const char *k, size_t kl, const void *val, size_t vlen)
{
    if (check_fault(st))
        return -EIO;
    char *lerr = NULL;
    leveldb_put(st->db, st->wopts, k, kl, val, vlen, &lerr);
    return lerr_check(lerr, "put");
}

static int raw_del(store_t *st, const char *k, size_t kl)
{
    if (check_fault(st))
        return -EIO;
    char *lerr = NULL;
    leveldb_delete(st->db, st->wopts, k, kl, &lerr);
    return lerr_check(lerr, "delete");
}

/* ---- open / close ---- */

/* mkdir -p path (LevelDB creates only the last component). */
static int mkdir_p(const char *path)
{
    char *p = strdup(path);
    if (p == NULL)
        return -ENOMEM;
    int rc = 0;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return rc;
}

/* Free every handle; st may be half-built (NULL members are skipped). */
static void store_release(store_t *st)
{
    if (st->db)
        leveldb_close(st->db);
    /* Options, cache and filter must outlive the db. */
    if (st->opts)
        leveldb_options_destroy(st->opts);
    if (st->cache)
        leveldb_cache_destroy(st->cache);
    if (st->filter)
        leveldb_filterpolicy_destroy(st->filter);
    if (st->ropts)
        leveldb_readoptions_destroy(st->ropts);
    if (st->wopts)
        leveldb_writeoptions_destroy(st->wopts);
    free(st);
}

/* The stored format: 0 and *fmt (1 when the key is absent: directories
 * written before the key existed), or a negative errno with *why set. */
static int read_format(store_t *st, int *fmt, const char **why)
{
    char key[sizeof(META_FORMAT)] = {STORE_PREFIX_META};
    memcpy(key + 1, META_FORMAT, strlen(META_FORMAT));
    char *val = NULL;
    size_t vlen = 0;
    int rc = raw_get(st, key, sizeof(key), &val, &vlen);
    *fmt = 1;
    if (rc < 0) {
        *why = "cannot read the storage format";
        return rc;
    }
    if (rc == 1) {
        char buf[16];
        char *end = NULL;
        size_t n = vlen < sizeof(buf) - 1 ? vlen : sizeof(buf) - 1;
        memcpy(buf, val, n);
        buf[n] = '\0';
        long v = strtol(buf, &end, 10);
        leveldb_free(val);
        if (n == 0 || *end != '\0' || v < 1 || v > 1000000) {
            *why = "unreadable storage format record ('m' format): "
                   "not a quorumkv data_dir, or a damaged one";
            return -EINVAL;
        }
        *fmt = (int)v;
    }
    return 0;
}

/* Convert a format-1 directory ('d' + user key) in place: every object
 * record that is not token-keyed moves to its token key, STORE_CONVERT_BATCH
 * records per atomic batch, then the format record is written.  The scan
 * runs on a snapshot so it never meets the records it wrote.  A crash at
 * any point leaves each record at its old key or its new one, never both
 * or neither, and the next open finishes the job. */
static int convert_v1(store_t *st, const char *path, const char **why)
{
    const leveldb_snapshot_t *snap = leveldb_create_snapshot(st->db);
    leveldb_readoptions_t *ro = leveldb_readoptions_create();
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    leveldb_readoptions_set_snapshot(ro, snap);
    leveldb_readoptions_set_fill_cache(ro, 0);
    leveldb_iterator_t *it = leveldb_create_iterator(st->db, ro);
    size_t moved = 0, pending = 0;
    char *lerr = NULL;
    int rc = 0;
    char first = STORE_PREFIX_OBJ;
    *why = "cannot convert the old storage format";
    for (leveldb_iter_seek(it, &first, 1); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it, &kl);
        if (kl == 0 || k[0] != STORE_PREFIX_OBJ)
            break;
        if (is_obj_key(k, kl))
            continue; /* converted by an earlier, interrupted open */
        const char *v = leveldb_iter_value(it, &vl);
        char stack[STORE_KEYBUF], *heap, *nk;
        size_t nkl;
        if ((nk = obj_key(k + 1, kl - 1, stack, &heap, &nkl)) == NULL) {
            rc = -ENOMEM;
            break;
        }
        leveldb_writebatch_delete(wb, (const char *)k, kl);
        leveldb_writebatch_put(wb, nk, nkl, v, vl);
        free(heap);
        if (++pending == STORE_CONVERT_BATCH) {
            leveldb_write(st->db, st->wopts, wb, &lerr);
            if ((rc = lerr_check(lerr, "convert")) < 0)
                break;
            leveldb_writebatch_clear(wb);
            moved += pending;
            pending = 0;
        }
    }
    if (rc == 0) {
        leveldb_iter_get_error(it, &lerr);
        rc = lerr_check(lerr, "convert scan");
    }
    if (rc == 0) {
        char key[sizeof(META_FORMAT)] = {STORE_PREFIX_META};
        char val[16];
        memcpy(key + 1, META_FORMAT, strlen(META_FORMAT));
        int n = snprintf(val, sizeof(val), "%d", STORE_FORMAT);
        leveldb_writebatch_put(wb, key, sizeof(key), val, (size_t)n);
        leveldb_write(st->db, st->wopts, wb, &lerr);
        if ((rc = lerr_check(lerr, "convert")) == 0)
            moved += pending;
    }
    leveldb_iter_destroy(it);
    leveldb_writebatch_destroy(wb);
    leveldb_readoptions_destroy(ro);
    leveldb_release_snapshot(st->db, snap);
    if (moved > 0)
        log_info("store: %s: converted %zu object records to storage format %d (keyed by token)",
                 path, moved, STORE_FORMAT);
    return rc;
}

/* Bring the directory to STORE_FORMAT or refuse it. */
static int check_format(store_t *st, const char *path, const char **why, char *buf, size_t blen)
{
    int fmt, rc;
    if ((rc = read_format(st, &fmt, why)) < 0)
        return rc;
    if (fmt == STORE_FORMAT)
        return 0;
    if (fmt > STORE_FORMAT) {
        snprintf(buf, blen,
                 "storage format %d is newer than this build's (%d): run a newer quorumkvd "
                 "on this data_dir",
                 fmt, STORE_FORMAT);
        *why = buf;
        return -EINVAL;
    }
    return convert_v1(st, path, why);
}

int store_open(const store_opts_t *opts, store_t **out, char **errmsg)
{
    store_t *st = NULL;
    char *lerr = NULL;
    char whybuf[160];
    const char *why;
    int rc;
    *out = NULL;
    if (errmsg)
        *errmsg = NULL;
    if (opts == NULL || opts->path == NULL || opts->path[0] == '\0') {
        rc = -EINVAL;
        why = "no path";
        goto err;
    }
    if ((rc = mkdir_p(opts->path)) < 0) {
        why = strerror(-rc);
        goto err;
    }
    rc = -ENOMEM;
    why = strerror(ENOMEM);
    if ((st = calloc(1, sizeof(*st))) == NULL)
        goto err;
    st->opts = leveldb_options_create();
    st->cache = leveldb_cache_create_lru(opts->cache_bytes ? opts->cache_bytes
                                                           : STORE_DEFAULT_CACHE);
    st->filter = leveldb_filterpolicy_create_bloom(STORE_BLOOM_BITS);
    st->ropts = leveldb_readoptions_create();
    st->wopts = leveldb_writeoptions_create();
    leveldb_options_set_create_if_missing(st->opts, 1);
    leveldb_options_set_cache(st->opts, st->cache);
    leveldb_options_set_filter_policy(st->opts, st->filter);
    if (opts->write_buffer)
        leveldb_options_set_write_buffer_size(st->opts, opts->write_buffer);
    leveldb_readoptions_set_fill_cache(st->ropts, 1);
    leveldb_writeoptions_set_sync(st->wopts, opts->sync);

    st->db = leveldb_open(st->opts, opts->path, &lerr);
    if (lerr != NULL) {
        rc = -EIO;
        why = lerr;
        st->db = NULL; /* not opened: nothing to close */
        goto err;
    }
    if ((rc = check_format(st, opts->path, &why, whybuf, sizeof(whybuf))) < 0)
        goto err;
    *out = st;
    return 0;
err:
    log_error("store: open %s: %s", opts && opts->path ? opts->path : "(null)", why);
    if (errmsg)
        *errmsg = strdup(why);
    if (lerr)
        leveldb_free(lerr);
    if (st)
        store_release(st);
    return rc;
}

void store_close(store_t *st)
{
    if (st != NULL)
        store_release(st);
}

/* ---- raw records ---- */

int store_raw_get(store_t *st, char prefix, const void *key, size_t klen, uint8_t **val,
                  size_t *vlen)
{
    char stack[STORE_KEYBUF], *heap, *lval = NULL;
    size_t kl, lvlen = 0;
    *val = NULL;
    *vlen = 0;
    if (!raw_prefix_ok(prefix))
        return -EINVAL;
    const char *k = raw_key(prefix, key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    int rc = raw_get(st, k, kl, &lval, &lvlen);
    if (rc == 1) {
        /* LevelDB's buffer comes from malloc, but the contract says to
         * release it with leveldb_free, so the caller gets its own copy. */
        *val = malloc(lvlen ? lvlen : 1);
        if (*val == NULL) {
            rc = -ENOMEM;
        } else {
            memcpy(*val, lval, lvlen);
            *vlen = lvlen;
        }
    }
    if (lval)
        leveldb_free(lval);
    free(heap);
    return rc;
}

int store_raw_put(store_t *st, char prefix, const void *key, size_t klen, const void *val,
                  size_t vlen)
{
    char stack[STORE_KEYBUF], *heap;
    size_t kl;
    if (!raw_prefix_ok(prefix))
        return -EINVAL;
    const char *k = raw_key(prefix, key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    int rc = raw_put(st, k, kl, val, vlen);
    free(heap);
    return rc;
}

int store_raw_del(store_t *st, char prefix, const void *key, size_t klen)
{
    char stack[STORE_KEYBUF], *heap;
    size_t kl;
    if (!raw_prefix_ok(prefix))
        return -EINVAL;
    const char *k = raw_key(prefix, key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    int rc = raw_del(st, k, kl);
    free(heap);
    return rc;
}

/* ---- objects ---- */

int store_get(store_t *st, const void *key, size_t klen, obj_t *o)
{
    char stack[STORE_KEYBUF], *heap, *val = NULL;
    size_t kl, vlen = 0;
    const char *k = obj_key(key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    int rc = raw_get(st, k, kl, &val, &vlen);
    if (rc == 1) {
        /* Decode straight from LevelDB's buffer: no intermediate copy. */
        int drc = obj_decode((const uint8_t *)val, vlen, o);
        if (drc < 0) {
            if (drc == -EINVAL)
                log_error("store: corrupt object record (key %zu bytes, value %zu bytes)",
                          klen, vlen);
            rc = drc;
        } else {
            /* the token is in the key we just built: no second key hash */
            o->stored_hash = tictac_token_hash(get_be64((const uint8_t *)k + 1), val, vlen);
        }
    }
    if (val)
        leveldb_free(val);
    free(heap);
    return rc;
}

int store_get_enc(store_t *st, const void *key, size_t klen, uint8_t **enc, size_t *len)
{
    char stack[STORE_KEYBUF], *heap, *val = NULL;
    size_t kl, vlen = 0;
    *enc = NULL;
    *len = 0;
    const char *k = obj_key(key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    int rc = raw_get(st, k, kl, &val, &vlen);
    if (rc == 1) {
        *enc = malloc(vlen ? vlen : 1);
        if (*enc == NULL) {
            rc = -ENOMEM;
        } else {
            memcpy(*enc, val, vlen);
            *len = vlen;
        }
    }
    if (val)
        leveldb_free(val);
    free(heap);
    return rc;
}

int store_put(store_t *st, const void *key, size_t klen, const obj_t *o)
{
    return store_put_hashed(st, key, klen, o, NULL);
}

int store_put_hashed(store_t *st, const void *key, size_t klen, const obj_t *o, uint64_t *hash)
{
    return store_put_enc(st, key, klen, o, hash, NULL, NULL);
}

int store_put_enc(store_t *st, const void *key, size_t klen, const obj_t *o, uint64_t *hash,
                  uint8_t **encp, size_t *enclen)
{
    if (check_fault(st))
        return -EIO;
    char stack[STORE_KEYBUF], *heap;
    uint8_t *enc = NULL;
    size_t kl, elen = 0;
    const char *k = obj_key(key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    int rc = obj_encode(o, &enc, &elen);
    if (rc == 0) {
        char *lerr = NULL;
        leveldb_put(st->db, st->wopts, k, kl, (const char *)enc, elen, &lerr);
        rc = lerr_check(lerr, "put");
        if (rc == 0 && hash != NULL)
            *hash = tictac_token_hash(get_be64((const uint8_t *)k + 1), enc, elen);
        if (rc == 0 && encp != NULL) {
            *encp = enc;
            *enclen = elen;
            enc = NULL;
        }
    }
    free(enc);
    free(heap);
    return rc;
}

int store_del(store_t *st, const void *key, size_t klen)
{
    char stack[STORE_KEYBUF], *heap;
    size_t kl;
    const char *k = obj_key(key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    int rc = raw_del(st, k, kl);
    free(heap);
    return rc;
}

/* ---- snapshots ---- */

store_snapshot_t *store_snapshot_create(store_t *st)
{
    store_snapshot_t *s = malloc(sizeof(*s));
    if (s != NULL)
        s->snap = leveldb_create_snapshot(st->db);
    return s;
}

void store_snapshot_release(store_t *st, store_snapshot_t *snap)
{
    if (snap == NULL)
        return;
    leveldb_release_snapshot(st->db, snap->snap);
    free(snap);
}

/* ---- iterators ---- */

static int iter_create(store_t *st, const store_snapshot_t *snap, char prefix,
                       store_iter_t **out)
{
    *out = NULL;
    store_iter_t *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return -ENOMEM;
    it->prefix = prefix;
    it->objects = prefix == STORE_PREFIX_OBJ;
    it->ropts = leveldb_readoptions_create();
    leveldb_readoptions_set_fill_cache(it->ropts, 0);
    if (snap != NULL)
        leveldb_readoptions_set_snapshot(it->ropts, snap->snap);
    it->it = leveldb_create_iterator(st->db, it->ropts);
    *out = it;
    return 0;
}

int store_iter_create(store_t *st, const store_snapshot_t *snap, store_iter_t **out)
{
    return iter_create(st, snap, STORE_PREFIX_OBJ, out);
}

int store_iter_create_raw(store_t *st, const store_snapshot_t *snap, char prefix,
                          store_iter_t **out)
{
    if (!raw_prefix_ok(prefix)) {
        *out = NULL;
        return -EINVAL;
    }
    return iter_create(st, snap, prefix, out);
}

/* After LevelDB's iterator moved: cache the current record if it belongs to
 * this iterator's prefix, else become invalid (and record a LevelDB error).
 * An object key too short to hold a token cannot be written through this
 * API; it is skipped with a warning rather than misread. */
static void iter_settle(store_iter_t *it)
{
    it->valid = false;
    while (leveldb_iter_valid(it->it)) {
        size_t kl;
        const uint8_t *k = (const uint8_t *)leveldb_iter_key(it->it, &kl);
        if (kl == 0 || (char)k[0] != it->prefix)
            return; /* past this prefix: keys are in order */
        if (it->objects && kl < STORE_OBJ_HEAD) {
            log_warn("store: object record with a %zu-byte key skipped (no token)", kl);
            leveldb_iter_next(it->it);
            continue;
        }
        size_t head = it->objects ? STORE_OBJ_HEAD : 1;
        it->token = it->objects ? get_be64(k + 1) : 0;
        it->key = k + head;
        it->klen = kl - head;
        it->valid = true;
        return;
    }
    char *lerr = NULL;
    leveldb_iter_get_error(it->it, &lerr);
    it->err = lerr_check(lerr, "iterate");
}

void store_iter_seek_first(store_iter_t *it)
{
    leveldb_iter_seek(it->it, &it->prefix, 1);
    iter_settle(it);
}

void store_iter_seek(store_iter_t *it, uint64_t token, const void *key, size_t klen)
{
    char stack[STORE_KEYBUF], *heap, *k;
    size_t kl;
    if (it->objects) {
        char head[STORE_OBJ_HEAD];
        head[0] = it->prefix;
        put_be64(head + 1, token);
        k = make_key(head, sizeof(head), key, klen, stack, &heap, &kl);
    } else {
        k = raw_key(it->prefix, key, klen, stack, &heap, &kl);
    }
    if (k == NULL) {
        it->valid = false;
        it->err = -ENOMEM;
        return;
    }
    leveldb_iter_seek(it->it, k, kl);
    free(heap);
    iter_settle(it);
}

bool store_iter_valid(const store_iter_t *it) { return it->valid; }

void store_iter_next(store_iter_t *it)
{
    if (!it->valid)
        return;
    leveldb_iter_next(it->it);
    iter_settle(it);
}

uint64_t store_iter_token(const store_iter_t *it) { return it->valid ? it->token : 0; }

const uint8_t *store_iter_key(const store_iter_t *it, size_t *klen)
{
    *klen = it->valid ? it->klen : 0;
    return it->valid ? it->key : NULL;
}

const uint8_t *store_iter_value(const store_iter_t *it, size_t *vlen)
{
    *vlen = 0;
    if (!it->valid)
        return NULL;
    return (const uint8_t *)leveldb_iter_value(it->it, vlen);
}

int store_iter_error(const store_iter_t *it) { return it->err; }

void store_iter_destroy(store_iter_t *it)
{
    if (it == NULL)
        return;
    leveldb_iter_destroy(it->it);
    leveldb_readoptions_destroy(it->ropts);
    free(it);
}

/* ---- write batches ---- */

store_batch_t *store_batch_create(void)
{
    store_batch_t *b = calloc(1, sizeof(*b));
    if (b != NULL)
        b->wb = leveldb_writebatch_create();
    return b;
}

void store_batch_destroy(store_batch_t *b)
{
    if (b == NULL)
        return;
    leveldb_writebatch_destroy(b->wb);
    free(b);
}

void store_batch_clear(store_batch_t *b)
{
    leveldb_writebatch_clear(b->wb);
    b->count = 0;
}

size_t store_batch_count(const store_batch_t *b) { return b->count; }

int store_batch_put(store_batch_t *b, const void *key, size_t klen, const obj_t *o)
{
    char stack[STORE_KEYBUF], *heap;
    uint8_t *enc = NULL;
    size_t kl, elen = 0;
    const char *k = obj_key(key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    int rc = obj_encode(o, &enc, &elen);
    if (rc == 0) {
        leveldb_writebatch_put(b->wb, k, kl, (const char *)enc, elen); /* copies */
        b->count++;
    }
    free(enc);
    free(heap);
    return rc;
}

int store_batch_del(store_batch_t *b, const void *key, size_t klen)
{
    char stack[STORE_KEYBUF], *heap;
    size_t kl;
    const char *k = obj_key(key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    leveldb_writebatch_delete(b->wb, k, kl);
    b->count++;
    free(heap);
    return 0;
}

int store_batch_raw_put(store_batch_t *b, char prefix, const void *key, size_t klen,
                        const void *val, size_t vlen)
{
    char stack[STORE_KEYBUF], *heap;
    size_t kl;
    if (!raw_prefix_ok(prefix))
        return -EINVAL;
    const char *k = raw_key(prefix, key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    leveldb_writebatch_put(b->wb, k, kl, val, vlen);
    b->count++;
    free(heap);
    return 0;
}

int store_batch_raw_del(store_batch_t *b, char prefix, const void *key, size_t klen)
{
    char stack[STORE_KEYBUF], *heap;
    size_t kl;
    if (!raw_prefix_ok(prefix))
        return -EINVAL;
    const char *k = raw_key(prefix, key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    leveldb_writebatch_delete(b->wb, k, kl);
    b->count++;
    free(heap);
    return 0;
}

int store_write(store_t *st, store_batch_t *b)
{
    if (b->count == 0)
        return 0;
    if (check_fault(st))
        return -EIO;
    char *lerr = NULL;
    leveldb_write(st->db, st->wopts, b->wb, &lerr);
    return lerr_check(lerr, "write batch");
}

void store_fail_next(store_t *st, int n) { st->fail_next = n > 0 ? n : 0; }
