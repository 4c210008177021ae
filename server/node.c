/*
 * node.c - the local replica (see node.h): storage open/close, the item
 * counters, flush_all, and the crawler.
 *
 * Item accounting: an object "counts" when its winner is a live value (not a
 * tombstone), whatever its expiry; curr_items and bytes move by the
 * difference between the object before and after every store write, so
 * they stay exact for what is stored.  Expired and flushed items count
 * until a read or the crawler reclaims them, as in memcached.  At start-up
 * one scan of the store sets the counters.
 *
 * The crawler (like memcached's LRU crawler) walks the keys a slice at a
 * time on a timer and reclaims dead siblings, so expired data leaves the
 * disk even if nobody reads it again.  It only walks while something can
 * die: a stored record with an exptime (expiring_records, kept by the item
 * accounting below) or a flush_all whose full pass has not been made since
 * it took effect (crawl_flush); otherwise a slice is a counter increment
 * (stats crawler_idle), so a store without TTLs pays nothing for it.
 *
 * Invariant: every write of an object record goes through persist() (or
 * node_purge_if(), tombstone GC's delete, which ends in persist too), so the
 * item counters and the anti-entropy trees (aae_on_persist) see every
 * change, with the old and new record hashes the store computed from the
 * bytes it read and wrote; and persist() drops the key's entry from the
 * object cache (storage/objcache.h) before it writes, and puts back what it
 * stored once the write succeeded, so the cache never holds anything but
 * what the store holds.  node_read() fills the cache on a miss and applies
 * expiry and flushes to a cached object exactly as to a stored one.
 */
#include "node.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "../common/hash.h"
#include "../common/log.h"
#include "../storage/objcache.h"
#include "aae.h"

/* 2,000 keys a second, in slices short enough (a few hundred microseconds
 * at most) not to show in the tail of the requests that wait behind one */
#define CRAWL_INTERVAL_MS 25
#define CRAWL_SLICE 50
#define META_FLUSH "flush_us"
#define META_ACTOR "actor"
#define META_DOT_LEASE "dot_lease"
#define DOT_LEASE (1u << 20) /* counters handed out per metadata write */

int64_t node_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* What a write changes besides the record: the item counters, and the
 * anti-entropy tree (the hash of the record as stored, 0 for none). */
typedef struct acct {
    bool counted;
    bool expiring; /* a live sibling has an exptime: the crawler may reclaim it one day */
    int64_t bytes;
    uint64_t hash;
} acct_t;

static acct_t acct_of(const obj_t *o, size_t klen)
{
    acct_t a = {false, false, 0, o ? o->stored_hash : 0};
    if (o && obj_live(o)) {
        a.counted = true;
        a.bytes = (int64_t)(klen + obj_winner(o)->len);
    }
    for (uint32_t i = 0; o && i < o->nsib && !a.expiring; i++)
        a.expiring = !o->sib[i].tombstone && o->sib[i].expiry != 0;
    return a;
}

static void acct_apply(server_t *srv, acct_t before, acct_t after)
{
    srv->stats.curr_items += (int)after.counted - (int)before.counted;
    srv->stats.bytes += after.bytes - before.bytes;
    srv->expiring_records += (int)after.expiring - (int)before.expiring;
}

/* True when no sibling of o is a live value: only tombstones, or only a
 * version vector.  Such records are what tombstone GC may purge. */
static bool obj_dead(const obj_t *o)
{
    for (uint32_t i = 0; i < o->nsib; i++)
        if (!o->sib[i].tombstone)
            return false;
    return true;
}

/* Store o for key; every write of an object record goes through here (and
 * node_purge_if), so the item counters and the anti-entropy tree see every
 * change.  An object whose siblings are all gone keeps its version vector
 * on disk until tombstone GC (aae.c) finds every replica agreeing on it:
 * the vector is what makes a replica that missed a delete or a flush take
 * the old value for superseded.  The tree gets the old record's hash from
 * `before` (store_get computed it from the bytes it read) and the new one
 * from the bytes store_put_enc encoded: no object is encoded twice.
 * On success o->stored_hash names the new record, *newh (when not NULL)
 * is that hash too, and *enc (when not NULL) the stored bytes (malloc'ed,
 * the caller frees them; NULL when the record was deleted).  give: o is not
 * needed any more and moves into the object cache (left empty) instead of
 * being copied there. */
static int persist_ex(server_t *srv, const void *key, size_t klen, obj_t *o, acct_t before,
                      bool give, uint64_t *newh, uint8_t **enc, size_t *enclen)
{
    uint64_t h = 0;
    if (srv->ocache) /* whatever happens below, the entry is stale */
        ocache_del(srv->ocache, key, klen);
    int rc = (o->nsib || o->vc.n) ? store_put_enc(srv->store, key, klen, o, &h, enc, enclen)
                                  : store_del(srv->store, key, klen);
    if (rc < 0) {
        srv->stats.store_errors++;
        return rc;
    }
    srv->write_seq++;
    acct_apply(srv, before, acct_of(o, klen));
    if (srv->aae)
        aae_on_persist(srv, key, klen, before.hash, h, h != 0 && obj_dead(o));
    o->stored_hash = h;
    if (newh)
        *newh = h;
    /* refilled with exactly what was stored: the next read of a key just
     * written (replicas merging, the coordinator's own read) needs neither
     * LevelDB nor a decode; -ENOMEM only leaves it uncached */
    if (srv->ocache && h && give)
        ocache_put_take(srv->ocache, key, klen, o);
    else if (srv->ocache)
        ocache_put(srv->ocache, key, klen, h ? o : NULL);
    return 0;
}

static int persist(server_t *srv, const void *key, size_t klen, obj_t *o, acct_t before)
{
    return persist_ex(srv, key, klen, o, before, false, NULL, NULL, NULL);
}

/* The stored object of key, through the object cache: 1 and *o, 0 when
 * absent, negative on error.  take: the caller writes the key next (and
 * that write refills the cache), so a cached object moves out instead of
 * being copied, and a miss is not cached. */
static int cached_get(server_t *srv, const void *key, size_t klen, obj_t *o, bool take)
{
    const obj_t *hit;
    bool present;
    if (srv->ocache && take && ocache_take(srv->ocache, key, klen, o, &present))
        return present;
    if (srv->ocache && !take && ocache_get(srv->ocache, key, klen, &hit)) {
        if (!hit)
            return 0;
        return obj_copy(o, hit) < 0 ? -ENOMEM : 1;
    }
    int rc = store_get(srv->store, key, klen, o);
    if (rc >= 0 && srv->ocache && !take)
        ocache_put(srv->ocache, key, klen, rc == 1 ? o : NULL); /* -ENOMEM: not cached */
    return rc;
}

/* The read's purge of o, the key's object as stored: dead siblings are
 * dropped and the record rewritten.  1, or a negative error. */
static int read_purge(server_t *srv, const void *key, size_t klen, obj_t *o)
{
    int64_t now_us = node_now_us();
    acct_t before = acct_of(o, klen);
    bool was_live = obj_live(o);
    uint32_t dropped = obj_purge(o, now_us, srv->flush_us);
    if (dropped) {
        if (was_live && !obj_live(o))
            srv->stats.reclaimed++;
        int rc = persist(srv, key, klen, o, before);
        if (rc < 0)
            return rc;
    }
    return 1;
}

static int read_local(server_t *srv, const void *key, size_t klen, obj_t *o, bool take)
{
    int rc = cached_get(srv, key, klen, o, take);
    if (rc <= 0) {
        if (rc < 0)
            srv->stats.store_errors++;
        return rc;
    }
    return read_purge(srv, key, klen, o);
}

int node_read_peek(server_t *srv, const void *key, size_t klen, obj_t *hold, const obj_t **o)
{
    const obj_t *hit;
    *o = NULL;
    if (srv->ocache && ocache_get(srv->ocache, key, klen, &hit)) {
        if (!hit)
            return 0;
        if (!obj_purgeable(hit, node_now_us(), srv->flush_us)) {
            *o = hit; /* the common case: no copy */
            return 1;
        }
        if (obj_copy(hold, hit) < 0)
            return -ENOMEM;
    } else {
        int rc = store_get(srv->store, key, klen, hold);
        if (rc >= 0 && srv->ocache)
            ocache_put(srv->ocache, key, klen, rc == 1 ? hold : NULL);
        if (rc <= 0) {
            if (rc < 0)
                srv->stats.store_errors++;
            return rc;
        }
    }
    int rc = read_purge(srv, key, klen, hold);
    if (rc == 1)
        *o = hold;
    return rc;
}

int node_read(server_t *srv, const void *key, size_t klen, obj_t *o)
{
    return read_local(srv, key, klen, o, false);
}

int node_read_take(server_t *srv, const void *key, size_t klen, obj_t *o)
{
    return read_local(srv, key, klen, o, true);
}

int node_read_enc(server_t *srv, const void *key, size_t klen, uint8_t **enc, size_t *enclen)
{
    const obj_t *hit;
    *enc = NULL;
    *enclen = 0;
    if (srv->ocache && ocache_get(srv->ocache, key, klen, &hit)) {
        if (!hit)
            return 0;
        if (!obj_purgeable(hit, node_now_us(), srv->flush_us))
            return obj_encode(hit, enc, enclen) < 0 ? -ENOMEM : 1;
    }
    obj_t o;
    obj_init(&o);
    int rc = node_read(srv, key, klen, &o); /* purges (and persists) what is dead */
    if (rc == 1 && obj_encode(&o, enc, enclen) < 0)
        rc = -ENOMEM;
    obj_free(&o);
    return rc;
}

int node_merge(server_t *srv, const void *key, size_t klen, const obj_t *in)
{
    return node_merge_hashed(srv, key, klen, in, NULL, NULL);
}

int node_merge_hashed(server_t *srv, const void *key, size_t klen, const obj_t *in,
                      uint64_t *old_hash, uint64_t *new_hash)
{
    obj_t cur;
    obj_init(&cur);
    int rc = node_read_take(srv, key, klen, &cur);
    if (rc < 0)
        goto out;
    acct_t before = acct_of(&cur, klen);
    if (old_hash != NULL)
        *old_hash = before.hash;
    if ((rc = obj_sync(&cur, in)) < 0)
        goto out;
    obj_purge(&cur, node_now_us(), srv->flush_us);
    srv->stats.siblings_pruned += obj_prune_siblings(&cur, (uint32_t)srv->cfg.max_siblings);
    srv->stats.vv_entries_pruned += obj_prune_vc(&cur, (uint32_t)srv->cfg.max_vv_entries);
    rc = persist_ex(srv, key, klen, &cur, before, true, new_hash, NULL, NULL);
out:
    obj_free(&cur);
    return rc;
}

int64_t node_newest_us(const obj_t *o)
{
    int64_t t = 0;
    for (uint32_t i = 0; i < o->nsib; i++)
        if (o->sib[i].ts_us > t)
            t = o->sib[i].ts_us;
    for (uint32_t i = 0; i < o->vc.n; i++)
        if (o->vc.e[i].ts_us > t)
            t = o->vc.e[i].ts_us;
    return t;
}

bool node_dead(const obj_t *o) { return obj_dead(o); }

/* Delete the record of key if it is still the one hashed `hash` and, with
 * need_dead, holds no live value and nothing written since older_than_us:
 * 1 deleted, 0 not (absent, changed, or kept), negative on error. */
static int delete_if(server_t *srv, const void *key, size_t klen, uint64_t hash, bool need_dead,
                     int64_t older_than_us)
{
    obj_t cur;
    obj_init(&cur);
    int rc = store_get(srv->store, key, klen, &cur);
    if (rc == 1 && (cur.stored_hash != hash ||
                    (need_dead && (!obj_dead(&cur) || node_newest_us(&cur) >= older_than_us))))
        rc = 0; /* changed since it was agreed on or handed over (the next
                 * pass takes it), or too young */
    if (rc == 1) {
        acct_t before = acct_of(&cur, klen);
        obj_free(&cur); /* an empty object: persist deletes the record */
        rc = persist(srv, key, klen, &cur, before);
        rc = rc < 0 ? rc : 1;
    } else if (rc < 0) {
        srv->stats.store_errors++;
    }
    obj_free(&cur);
    return rc;
}

int node_purge_if(server_t *srv, const void *key, size_t klen, uint64_t hash,
                  int64_t older_than_us)
{
    return delete_if(srv, key, klen, hash, true, older_than_us);
}

int node_drop_if(server_t *srv, const void *key, size_t klen, uint64_t hash)
{
    return delete_if(srv, key, klen, hash, false, 0);
}

/* Counter c was minted: the next dot comes after it.  Counters up to the
 * lease may be used without another metadata write; the lease moves ahead
 * in big steps, and is on disk before a counter beyond the old lease is
 * written anywhere (LevelDB's log is in order, so a crash that loses the
 * lease loses the writes that used it too). */
static int dot_taken(server_t *srv, uint64_t c)
{
    srv->dot_next = c + 1;
    if (srv->dot_next <= srv->dot_lease)
        return 0;
    uint64_t lease = srv->dot_next + DOT_LEASE;
    int rc = store_raw_put(srv->store, 'm', META_DOT_LEASE, strlen(META_DOT_LEASE), &lease, 8);
    if (rc < 0) {
        srv->stats.store_errors++;
        return rc;
    }
    srv->dot_lease = lease;
    return 0;
}

int node_write(server_t *srv, const void *key, size_t klen, obj_t *known, const vclock_t *ctx,
               sibling_t *s, int64_t now_us, obj_t *out, uint8_t **enc, size_t *enclen)
{
    obj_t cur;
    obj_init(&cur);
    int rc = 0;
    if (known) { /* taken over, not copied: values can be large */
        cur = *known;
        obj_init(known);
    } else {
        rc = node_read_take(srv, key, klen, &cur);
    }
    if (rc < 0)
        goto out;
    acct_t before = acct_of(&cur, klen);
    if ((rc = obj_update(&cur, ctx, srv->node_id, srv->dot_next, s, now_us)) < 0)
        goto out;
    if ((rc = dot_taken(srv, s->dot.counter)) < 0)
        goto out;
    srv->stats.siblings_pruned += obj_prune_siblings(&cur, (uint32_t)srv->cfg.max_siblings);
    srv->stats.vv_entries_pruned += obj_prune_vc(&cur, (uint32_t)srv->cfg.max_vv_entries);
    if ((rc = persist_ex(srv, key, klen, &cur, before, false, NULL, enc, enclen)) < 0)
        goto out;
    obj_free(out);
    *out = cur;
    obj_init(&cur);
out:
    free(s->value);
    s->value = NULL;
    obj_free(&cur);
    return rc;
}

int64_t node_flush_time(int64_t delay_s)
{
    /* memcached's exptime rule: up to 30 days relative, beyond an absolute
     * unix time (the parser bounds delay_s to 32 bits) */
    int64_t now_us = node_now_us();
    return delay_s > 60 * 60 * 24 * 30 ? delay_s * 1000000 : now_us + delay_s * 1000000;
}

int node_flush_at(server_t *srv, int64_t when)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%lld", (long long)when);
    int rc = store_raw_put(srv->store, 'm', META_FLUSH, strlen(META_FLUSH), buf, (size_t)n);
    if (rc < 0) {
        srv->stats.store_errors++;
        return rc;
    }
    srv->flush_us = when;
    srv->crawl_cursor_len = 0; /* sweep from the start so the flush is reclaimed soon */
    srv->crawl_flush = CRAWL_FLUSH_DUE;
    return 0;
}

/* ---- start-up scan and crawler ---- */

/* The item counters of every stored object, by one scan in token order. */
static int count_items(server_t *srv)
{
    store_iter_t *it;
    int rc = store_iter_create(srv->store, NULL, &it);
    if (rc < 0)
        return rc;
    obj_t o;
    obj_init(&o);
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        store_iter_key(it, &klen);
        const uint8_t *val = store_iter_value(it, &vlen);
        if (obj_decode(val, vlen, &o) == 0)
            acct_apply(srv, acct_of(NULL, 0), acct_of(&o, klen));
        else
            log_warn("store: undecodable record for a key of %zu bytes ignored", klen);
    }
    obj_free(&o);
    rc = store_iter_error(it);
    store_iter_destroy(it);
    return rc;
}

/* One crawler slice: up to CRAWL_SLICE records after the cursor (the last
 * key the previous slice saw, so the walk is in token order and resumes
 * where it stopped even if that key was deleted since).  Keys with dead
 * siblings are collected first and reclaimed through node_read() once the
 * iterator is gone, so the scan never races its own writes. */
static void crawl(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server_t *srv = arg;
    uint8_t(*dead)[MC_KEY_MAX] = srv->crawl_keys;
    size_t *dead_len = srv->crawl_lens;
    size_t ndead = 0, seen = 0;
    int64_t now_us = node_now_us();
    const uint8_t *cur = srv->crawl_cursor;
    size_t curlen = srv->crawl_cursor_len;
    /* Nothing stored can die: no record has an exptime and no flush_all
     * waits for its pass (a delayed one only once its time has come). */
    bool flush_due = srv->crawl_flush != CRAWL_FLUSH_NONE && now_us >= srv->flush_us;
    if (srv->expiring_records <= 0 && !flush_due) {
        srv->stats.crawler_idle++;
        return;
    }
    if (admit_busy(srv)) { /* client work first (admit.h); reads still reclaim what they meet */
        admit_deferred(srv);
        return;
    }
    if (flush_due && curlen == 0)
        srv->crawl_flush = CRAWL_FLUSH_PASS; /* this pass starts after the flush took effect */
    store_iter_t *it;
    if (store_iter_create(srv->store, NULL, &it) < 0)
        return;
    if (curlen == 0) {
        store_iter_seek_first(it);
    } else {
        store_iter_seek(it, store_key_token(cur, curlen), cur, curlen);
        size_t kl;
        const uint8_t *k = store_iter_key(it, &kl);
        if (store_iter_valid(it) && kl == curlen && memcmp(k, cur, kl) == 0)
            store_iter_next(it); /* seen by the previous slice */
    }
    obj_t o;
    obj_init(&o);
    for (; store_iter_valid(it) && seen < CRAWL_SLICE; store_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *key = store_iter_key(it, &klen);
        const uint8_t *val = store_iter_value(it, &vlen);
        if (klen > MC_KEY_MAX)
            continue;
        if (obj_enc_may_purge(val, vlen, now_us, srv->flush_us) &&
            obj_decode(val, vlen, &o) == 0 && obj_purge(&o, now_us, srv->flush_us) > 0) {
            memcpy(dead[ndead], key, klen);
            dead_len[ndead++] = klen;
        }
        memcpy(srv->crawl_cursor, key, klen);
        srv->crawl_cursor_len = klen;
        seen++;
    }
    obj_free(&o);
    bool at_end = !store_iter_valid(it);
    int rc = store_iter_error(it);
    store_iter_destroy(it);
    for (size_t i = 0; i < ndead; i++) {
        obj_init(&o);
        node_read(srv, dead[i], dead_len[i], &o); /* purges and persists */
        obj_free(&o);
    }
    if (rc == 0 && at_end) { /* next pass from the start */
        srv->crawl_cursor_len = 0;
        srv->stats.crawler_runs++;
        if (srv->crawl_flush == CRAWL_FLUSH_PASS)
            srv->crawl_flush = CRAWL_FLUSH_NONE; /* every record written before it was seen */
    }
}

void node_start_crawler(server_t *srv)
{
    struct timeval tv = {0, CRAWL_INTERVAL_MS * 1000};
    srv->crawl_keys = malloc(sizeof(uint8_t[MC_KEY_MAX]) * CRAWL_SLICE);
    srv->crawl_lens = malloc(sizeof(size_t) * CRAWL_SLICE);
    if (!srv->crawl_keys || !srv->crawl_lens) {
        log_warn("crawler disabled: out of memory");
        return;
    }
    srv->crawler = event_new(srv->base, -1, EV_PERSIST, crawl, srv);
    if (srv->crawler)
        event_add(srv->crawler, &tv);
}

/* This replica's actor in version vectors and its dot counter.  The
 * counter is one for all keys and only grows (node_write, dot_taken), so
 * the replica never mints a dot twice, whatever pruning forgot.  The actor
 * is kept in metadata, made anew for a new data directory.  A replica that lost its data (wiped directory)
 * must not mint dots it minted before, which its old counters would do
 * under the same actor: replicas that still hold the old writes would take
 * the new ones for writes they had already seen (Riak gives a vnode a new
 * id for the same reason).  A directory written before actors were kept
 * (it has a node generation but no actor) keeps the old actor, the hash
 * of the node name, so its counters stay valid. */
static int load_actor(server_t *srv, char *err, size_t errlen)
{
    uint8_t *val = NULL;
    size_t vlen = 0;
    /* the next dot counter: the lease of the last run (every counter it
     * used is below it) */
    if (store_raw_get(srv->store, 'm', META_DOT_LEASE, strlen(META_DOT_LEASE), &val, &vlen) == 1 &&
        vlen == 8) {
        memcpy(&srv->dot_lease, val, 8);
        srv->dot_next = srv->dot_lease;
    }
    free(val);
    val = NULL;
    int rc = store_raw_get(srv->store, 'm', META_ACTOR, strlen(META_ACTOR), &val, &vlen);
    if (rc == 1 && vlen == 8) {
        memcpy(&srv->node_id, val, 8);
        free(val);
        return 0;
    }
    free(val);
    val = NULL;
    uint64_t actor = hash64(srv->cfg.name, strlen(srv->cfg.name));
    if (store_raw_get(srv->store, 'm', "generation", 10, &val, &vlen) != 1) {
        uint64_t seed;
        if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
            snprintf(err, errlen, "cannot make a replica id: getrandom: %s", strerror(errno));
            return -1;
        }
        actor = hash64_seed(srv->cfg.name, strlen(srv->cfg.name), seed);
    }
    free(val);
    if (store_raw_put(srv->store, 'm', META_ACTOR, strlen(META_ACTOR), &actor, 8) < 0) {
        snprintf(err, errlen, "cannot store the replica id in %s", srv->cfg.data_dir);
        return -1;
    }
    srv->node_id = actor;
    log_info("storage: replica id %016llx", (unsigned long long)actor);
    return 0;
}

uint64_t node_disk_bytes(const server_t *srv)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/db", srv->cfg.data_dir);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        struct stat st;
        if (e->d_name[0] != '.' && fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

int node_open(server_t *srv, char *err, size_t errlen)
{
    if (make_dirs(srv->cfg.data_dir) < 0) {
        snprintf(err, errlen, "cannot create data_dir %s: %s", srv->cfg.data_dir, strerror(errno));
        return -1;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/db", srv->cfg.data_dir);
    store_opts_t so = {.path = path, .sync = srv->cfg.storage_sync,
                       .cache_bytes = (size_t)srv->cfg.cache_mb << 20};
    char *msg = NULL;
    if (store_open(&so, &srv->store, &msg) < 0) {
        snprintf(err, errlen, "cannot open storage in %s: %s", path, msg ? msg : "error");
        free(msg);
        return -1;
    }
    if (load_actor(srv, err, errlen) < 0) {
        store_close(srv->store);
        srv->store = NULL;
        return -1;
    }
    uint8_t *val = NULL;
    size_t vlen = 0;
    if (store_raw_get(srv->store, 'm', META_FLUSH, strlen(META_FLUSH), &val, &vlen) == 1) {
        char buf[32];
        size_t n = vlen < sizeof(buf) - 1 ? vlen : sizeof(buf) - 1;
        memcpy(buf, val, n);
        buf[n] = '\0';
        srv->flush_us = strtoll(buf, NULL, 10);
        srv->crawl_flush = CRAWL_FLUSH_DUE; /* one pass sees whether it left anything */
    }
    free(val);
    if (count_items(srv) < 0) {
        snprintf(err, errlen, "cannot scan storage in %s", path);
        store_close(srv->store);
        srv->store = NULL;
        return -1;
    }
    if (srv->cfg.object_cache_mb > 0 &&
        !(srv->ocache = ocache_new((size_t)srv->cfg.object_cache_mb << 20))) {
        snprintf(err, errlen, "out of memory");
        store_close(srv->store);
        srv->store = NULL;
        return -1;
    }
    log_info("storage %s open: %lld items, %lld bytes", path, (long long)srv->stats.curr_items,
             (long long)srv->stats.bytes);
    return 0;
}

void node_close(server_t *srv)
{
    if (srv->crawler) {
        event_free(srv->crawler);
        srv->crawler = NULL;
    }
    free(srv->crawl_keys);
    free(srv->crawl_lens);
    srv->crawl_keys = NULL;
    srv->crawl_lens = NULL;
    store_close(srv->store);
    srv->store = NULL;
    ocache_free(srv->ocache);
    srv->ocache = NULL;
}
