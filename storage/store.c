/*
 * store.c - durable storage on LevelDB through its C API (see store.h).
 *
 * Organisation: open/close, then key building, then the typed object calls
 * (get/put/del on prefix 'd'), the raw calls for the other prefixes, and
 * iteration.  Every write goes through check_fault(), the test seam of
 * store_fail_next().
 *
 * Performance: store_get/store_put run for every memcached get/set, so the
 * LevelDB option objects are created once at open and reused; the prefixed
 * key is built in a stack buffer (memcached keys are at most 250 bytes) and
 * only longer keys touch the heap; the table cache is an LRU block cache
 * (8 MiB by default) with a 10-bit-per-key bloom filter so gets of absent
 * keys rarely read a block.  Iteration (anti-entropy, handoff, transfers)
 * reads with fill_cache off so a scan does not evict the hot working set.
 *
 * Invariant: st->db is open for the whole life of a store_t; everything in
 * the struct is released by store_close() only.
 */
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <leveldb/c.h>

#include "../common/log.h"

#define STORE_DEFAULT_CACHE (8u << 20)
#define STORE_BLOOM_BITS 10
/* Prefix byte + the longest memcached key (250), rounded up. */
#define STORE_KEYBUF 256

struct store {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_cache_t *cache;
    leveldb_filterpolicy_t *filter;
    leveldb_readoptions_t *ropts;    /* point reads: fill the cache */
    leveldb_readoptions_t *scanopts; /* iteration: leave the cache alone */
    leveldb_writeoptions_t *wopts;   /* sync per store_opts_t.sync */
    int fail_next;                   /* store_fail_next() budget */
};

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
    if (st->scanopts)
        leveldb_readoptions_destroy(st->scanopts);
    if (st->wopts)
        leveldb_writeoptions_destroy(st->wopts);
    free(st);
}

int store_open(const store_opts_t *opts, store_t **out, char **errmsg)
{
    store_t *st = NULL;
    char *lerr = NULL;
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
    st->scanopts = leveldb_readoptions_create();
    st->wopts = leveldb_writeoptions_create();
    leveldb_options_set_create_if_missing(st->opts, 1);
    leveldb_options_set_cache(st->opts, st->cache);
    leveldb_options_set_filter_policy(st->opts, st->filter);
    if (opts->write_buffer)
        leveldb_options_set_write_buffer_size(st->opts, opts->write_buffer);
    leveldb_readoptions_set_fill_cache(st->ropts, 1);
    leveldb_readoptions_set_fill_cache(st->scanopts, 0);
    leveldb_writeoptions_set_sync(st->wopts, opts->sync);

    st->db = leveldb_open(st->opts, opts->path, &lerr);
    if (lerr != NULL) {
        rc = -EIO;
        why = lerr;
        st->db = NULL; /* not opened: nothing to close */
        goto err;
    }
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

/* ---- keys and errors ---- */

/* prefix + key, in stack (when it fits) or a malloc'ed buffer: *heap is
 * what the caller frees (NULL when the stack buffer was used). */
static char *make_key(char prefix, const void *key, size_t klen, char *stack, char **heap,
                      size_t *outlen)
{
    char *k = stack;
    *heap = NULL;
    if (klen >= STORE_KEYBUF) {
        if (klen == SIZE_MAX || (k = malloc(klen + 1)) == NULL)
            return NULL;
        *heap = k;
    }
    k[0] = prefix;
    if (klen)
        memcpy(k + 1, key, klen);
    *outlen = klen + 1;
    return k;
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

/* ---- raw records ---- */

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

int store_raw_get(store_t *st, char prefix, const void *key, size_t klen, uint8_t **val,
                  size_t *vlen)
{
    char stack[STORE_KEYBUF], *heap, *lval = NULL;
    size_t kl, lvlen = 0;
    *val = NULL;
    *vlen = 0;
    const char *k = make_key(prefix, key, klen, stack, &heap, &kl);
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
    const char *k = make_key(prefix, key, klen, stack, &heap, &kl);
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
    const char *k = make_key(prefix, key, klen, stack, &heap, &kl);
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
    const char *k = make_key('d', key, klen, stack, &heap, &kl);
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
        }
    }
    if (val)
        leveldb_free(val);
    free(heap);
    return rc;
}

int store_put(store_t *st, const void *key, size_t klen, const obj_t *o)
{
    if (check_fault(st))
        return -EIO;
    char stack[STORE_KEYBUF], *heap;
    uint8_t *enc = NULL;
    size_t kl, elen = 0;
    const char *k = make_key('d', key, klen, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    int rc = obj_encode(o, &enc, &elen);
    if (rc == 0) {
        char *lerr = NULL;
        leveldb_put(st->db, st->wopts, k, kl, (const char *)enc, elen, &lerr);
        rc = lerr_check(lerr, "put");
    }
    free(enc);
    free(heap);
    return rc;
}

int store_del(store_t *st, const void *key, size_t klen)
{
    return store_raw_del(st, 'd', key, klen);
}

/* ---- iteration ---- */

int store_iterate(store_t *st, char prefix, const void *start, size_t slen, store_iter_cb cb,
                  void *arg)
{
    char stack[STORE_KEYBUF], *heap;
    size_t kl;
    const char *k = make_key(prefix, start, start ? slen : 0, stack, &heap, &kl);
    if (k == NULL)
        return -ENOMEM;
    leveldb_iterator_t *it = leveldb_create_iterator(st->db, st->scanopts);
    int rc = 0;
    for (leveldb_iter_seek(it, k, kl); leveldb_iter_valid(it); leveldb_iter_next(it)) {
        size_t ikl, ivl;
        const char *ik = leveldb_iter_key(it, &ikl);
        if (ikl < kl || memcmp(ik, k, kl) != 0)
            break; /* past the prefix: keys are in order */
        const char *iv = leveldb_iter_value(it, &ivl);
        rc = cb(arg, (const uint8_t *)ik + 1, ikl - 1, (const uint8_t *)iv, ivl);
        if (rc != 0)
            break;
    }
    if (rc == 0) {
        char *lerr = NULL;
        leveldb_iter_get_error(it, &lerr);
        rc = lerr_check(lerr, "iterate");
    }
    leveldb_iter_destroy(it);
    free(heap);
    return rc;
}

void store_fail_next(store_t *st, int n) { st->fail_next = n > 0 ? n : 0; }
