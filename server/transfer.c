/*
 * transfer.c - join, leave, remove, range transfers and cleanup (see
 * transfer.h and docs/membership.md).
 *
 *   tick (every XFER_TICK_MS), one page in flight at a time:
 *
 *   self joining  ──> wait for: another member known, no other change
 *                     (of two joiners the earlier goes first), settle time
 *                 ──> plan: each range of the future ring we replicate,
 *                     sources = its current owners (live first)
 *                 ──> PULL pages (cursor kept in metadata) ──> node_merge
 *                 ──> all done: status up, ring epoch + 1
 *
 *   self leaving  ──> settle ──> plan: each of our ranges, targets = its
 *                     owners in the future ring that the current lacks
 *                 ──> PUSH pages ──> all done: status left, epoch + 1,
 *                     stop the loop after the settle time (exit 0)
 *
 *   remove seen   ──> (xfer_on_view) each range we now replicate and did
 *                     not: PULL from the remaining old owners (cursor and
 *                     sources kept in metadata; resumed after a restart)
 *
 *   up, no change, ring stable ──> cleanup: each range we do not
 *                     replicate that holds records: PUSH pages to all its
 *                     owners; once all acknowledged a page, drop its
 *                     records unless they changed since (node_drop_if)
 *
 * Settle time: cluster.request_timeout_ms + 5 gossip rounds, long enough
 * for every node to learn a change and for requests planned on the old
 * ring to end, so a page never passes a key before the writes that
 * coordinators still route by the old ring have landed.
 */
#include "transfer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "../storage/tictac.h"
#include "aae.h"
#include "admit.h"
#include "msg.h"
#include "node.h"

#define MAXP 16 /* peers of one job: config.c bounds cluster.n to 16 */
#define CLEANUP_EVERY_MS 2000
#define RETRY_MS 500
#define META_PREFIX "xfer/"

enum jkind { J_PULL, J_PUSH };
enum mode { M_NONE, M_JOIN, M_LEAVE, M_PULLS, M_CLEANUP, M_GONE };

typedef struct xjob {
    uint64_t start, end;
    enum jkind kind;
    char peers[MAXP][GOSSIP_NAME_MAX + 1]; /* pull: sources; push: every target */
    int npeers;
    int peer_i;       /* pull: the source asked now */
    bool has_cursor;  /* the last record done */
    uint64_t ctoken;
    uint8_t ckey[MC_KEY_MAX];
    size_t cklen;
    uint64_t keys_done, bytes_done, estimate;
    int64_t started_ms;
    bool done;
    bool persist; /* pulls: the cursor lives in metadata */
    bool drop;    /* cleanup: delete what every target acknowledged */
} xjob_t;

struct xfer {
    server_t *srv;
    struct event *tick, *exit_ev, *kick;
    enum mode mode;
    bool planned;
    xjob_t *jobs;
    size_t njobs;
    size_t cur;
    int64_t settle_until, t0, next_ms, last_cleanup;
    uint64_t stable_key;
    int64_t stable_since;
    char waiting[200];
    int sent_xfer; /* the xfer value last gossiped */
    /* the page in flight */
    bool busy;
    msg_aae_item_t *page;
    uint32_t npage;
    bool page_last;
    uint64_t page_bytes;
    int acks_pending;
    bool page_failed;
    uint64_t gen; /* bumped when jobs are replaced: replies of older ones are ignored */
    xfer_stats_t stats;
};

typedef struct xreq {
    struct xfer *x;
    uint64_t gen;
    size_t job;
} xreq_t;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int settle_ms(const server_t *srv)
{
    return srv->cfg.request_timeout_ms + 5 * srv->cfg.gossip_interval_ms;
}

static uint64_t local_epoch(const server_t *srv)
{
    return srv->cluster.view ? srv->cluster.view->ring_epoch : srv->cluster.epoch_seen;
}

static gossip_status_t self_status(const server_t *srv)
{
    gossip_member_info_t me;
    if (srv->cluster.gossip && gossip_lookup(srv->cluster.gossip, srv->cfg.name, &me))
        return (gossip_status_t)me.entry.status;
    return GOSSIP_UP;
}

/* ---- status in metadata ---- */

static const char *status_word(gossip_status_t st)
{
    switch (st) {
    case GOSSIP_JOINING: return "joining";
    case GOSSIP_LEAVING: return "leaving";
    case GOSSIP_LEFT: return "left";
    default: return "up";
    }
}

int xfer_save_status(server_t *srv, gossip_status_t st)
{
    const char *w = status_word(st);
    return store_raw_put(srv->store, 'm', "state", 5, w, strlen(w));
}

static bool self_seed(const config_t *cfg)
{
    for (int i = 0; i < cfg->nseeds; i++)
        if (cfg->seeds[i].port == cfg->peer_port && !strcmp(cfg->seeds[i].host, cfg->host))
            return true;
    return false;
}

int xfer_start_status(server_t *srv, gossip_status_t *out, bool *fresh, char *err,
                      size_t errlen)
{
    uint8_t *val = NULL;
    *fresh = false;
    size_t vlen = 0;
    int rc = store_raw_get(srv->store, 'm', "state", 5, &val, &vlen);
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the node state from storage");
        return -1;
    }
    if (rc == 1) {
        bool left = vlen == 4 && !memcmp(val, "left", 4);
        *out = vlen == 7 && !memcmp(val, "joining", 7)   ? GOSSIP_JOINING
               : vlen == 7 && !memcmp(val, "leaving", 7) ? GOSSIP_LEAVING
                                                         : GOSSIP_UP;
        free(val);
        if (left) {
            snprintf(err, errlen,
                     "node %s left the cluster (or was removed); to add it again, wipe "
                     "node.data_dir (%s) first",
                     srv->cfg.name, srv->cfg.data_dir);
            return -1;
        }
        return 0;
    }
    /* no state: a directory from before states were kept is a member (it
     * has a generation); a fresh one joins unless it is one of its own
     * seeds (the founding nodes of a cluster, as Cassandra's seeds) */
    bool old = store_raw_get(srv->store, 'm', "generation", 10, &val, &vlen) == 1;
    free(val);
    *fresh = !old;
    *out = old || self_seed(&srv->cfg) || srv->cfg.nseeds == 0 ? GOSSIP_UP : GOSSIP_JOINING;
    if (xfer_save_status(srv, *out) < 0) {
        snprintf(err, errlen, "cannot record the node state in storage");
        return -1;
    }
    return 0;
}

/* ---- ranges and pages ---- */

/* The linear pieces [lo, hi] of the ring range (start, end]: one, or two
 * for the range that wraps past 2^64 (start >= end). */
static int pieces(uint64_t start, uint64_t end, uint64_t lo[2], uint64_t hi[2])
{
    if (start < end) {
        lo[0] = start + 1;
        hi[0] = end;
        return 1;
    }
    int k = 0;
    if (start != UINT64_MAX) {
        lo[k] = start + 1;
        hi[k++] = UINT64_MAX;
    }
    lo[k] = 0;
    hi[k++] = end;
    return k;
}

static void free_page(msg_aae_item_t *items, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        free((void *)items[i].key);
        obj_free(&items[i].obj);
    }
    free(items);
}

/*
 * The records of (start, end] after the cursor, in store order, about
 * `budget` bytes of them (at least one when there is one, at most
 * MSG_XFER_MAX): copies in *items (free_page), *done when the range ends
 * with them.  0 or -EIO / -ENOMEM.
 */
static int read_page(server_t *srv, uint64_t start, uint64_t end, bool has_cursor,
                     uint64_t ctoken, const uint8_t *ckey, size_t cklen, size_t budget,
                     msg_aae_item_t **items, uint32_t *n, bool *done)
{
    uint64_t lo[2], hi[2];
    int np = pieces(start, end, lo, hi), p = 0;
    *items = NULL;
    *n = 0;
    *done = false;
    msg_aae_item_t *v = calloc(MSG_XFER_MAX, sizeof(*v));
    store_iter_t *it = NULL;
    if (!v || store_iter_create(srv->store, NULL, &it) < 0) {
        free(v);
        return -ENOMEM;
    }
    if (has_cursor) {
        while (p < np && !(ctoken >= lo[p] && ctoken <= hi[p]))
            p++;
        if (p == np) { /* a cursor outside the range: nothing after it */
            *done = true;
            goto out;
        }
        store_iter_seek(it, ctoken, ckey, cklen);
        if (store_iter_valid(it) && store_iter_token(it) == ctoken) {
            size_t kl;
            const uint8_t *k = store_iter_key(it, &kl);
            if (kl == cklen && !memcmp(k, ckey, kl))
                store_iter_next(it);
        }
    } else {
        store_iter_seek(it, lo[0], NULL, 0);
    }
    size_t bytes = 0;
    for (;;) {
        if (!store_iter_valid(it) || store_iter_token(it) > hi[p]) {
            if (store_iter_error(it) < 0)
                break;
            if (++p == np) {
                *done = true;
                break;
            }
            store_iter_seek(it, lo[p], NULL, 0);
            continue;
        }
        if (*n == MSG_XFER_MAX || (bytes >= budget && *n > 0))
            break;
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        const uint8_t *val = store_iter_value(it, &vl);
        uint8_t *buf = malloc(kl + vl);
        if (!buf)
            break;
        memcpy(buf, k, kl);
        memcpy(buf + kl, val, vl);
        msg_aae_item_t *x = &v[(*n)++];
        x->key = buf;
        x->klen = kl;
        x->enc = buf + kl;
        x->enclen = vl;
        x->hash = tictac_key_hash(k, kl, val, vl);
        bytes += kl + vl;
        store_iter_next(it);
    }
out:;
    int rc = store_iter_error(it);
    store_iter_destroy(it);
    if (rc < 0) {
        free_page(v, *n);
        *n = 0;
        return rc;
    }
    *items = v;
    return 0;
}

/* Keys of (start, end] by the anti-entropy trees of the ranges held here
 * (each tree's count spread evenly over its range); 0 when unknown. */
static uint64_t estimate_keys(const server_t *srv, uint64_t start, uint64_t end)
{
    uint64_t alo[2], ahi[2];
    int na = pieces(start, end, alo, ahi);
    double sum = 0;
    size_t nr = aae_range_count(srv);
    for (size_t i = 0; i < nr; i++) {
        aae_range_info_t r;
        if (aae_range_get(srv, i, &r) < 0 || !r.built || r.keys == 0)
            continue;
        uint64_t blo[2], bhi[2];
        int nb = pieces(r.start, r.end, blo, bhi);
        double width = 0, over = 0;
        for (int b = 0; b < nb; b++) {
            width += (double)(bhi[b] - blo[b]) + 1;
            for (int a = 0; a < na; a++) {
                uint64_t l = alo[a] > blo[b] ? alo[a] : blo[b];
                uint64_t h = ahi[a] < bhi[b] ? ahi[a] : bhi[b];
                if (l <= h)
                    over += (double)(h - l) + 1;
            }
        }
        if (width > 0)
            sum += (double)r.keys * over / width;
    }
    return (uint64_t)(sum + 0.5);
}

/* ---- jobs ---- */

static void clear_jobs(struct xfer *x)
{
    if (x->busy) { /* the page in flight is forgotten: its answer is ignored */
        free_page(x->page, x->npage);
        x->page = NULL;
        x->npage = 0;
        x->busy = false;
    }
    free(x->jobs);
    x->jobs = NULL;
    x->njobs = 0;
    x->cur = 0;
    x->planned = false;
    x->gen++;
}

static xjob_t *add_job(struct xfer *x, uint64_t start, uint64_t end, enum jkind kind)
{
    xjob_t *j = realloc(x->jobs, (x->njobs + 1) * sizeof(*j));
    if (!j)
        return NULL;
    x->jobs = j;
    j = &x->jobs[x->njobs++];
    memset(j, 0, sizeof(*j));
    j->start = start;
    j->end = end;
    j->kind = kind;
    return j;
}

static void meta_key(char *buf, size_t len, const xjob_t *j)
{
    snprintf(buf, len, META_PREFIX "%016llx/%016llx", (unsigned long long)j->start,
             (unsigned long long)j->end);
}

/* A pull job's record: "done keys bytes ctoken ckey-hex|- peer,peer,..." */
static void save_job(struct xfer *x, const xjob_t *j)
{
    if (!j->persist)
        return;
    char key[64];
    meta_key(key, sizeof(key), j);
    char val[128 + 2 * MC_KEY_MAX + MAXP * (GOSSIP_NAME_MAX + 1)];
    int n = snprintf(val, sizeof(val), "%d %llu %llu %llu ", j->done ? 1 : 0,
                     (unsigned long long)j->keys_done, (unsigned long long)j->bytes_done,
                     (unsigned long long)j->ctoken);
    if (!j->has_cursor)
        n += snprintf(val + n, sizeof(val) - (size_t)n, "-");
    for (size_t i = 0; j->has_cursor && i < j->cklen; i++)
        n += snprintf(val + n, sizeof(val) - (size_t)n, "%02x", j->ckey[i]);
    n += snprintf(val + n, sizeof(val) - (size_t)n, " ");
    for (int i = 0; i < j->npeers; i++)
        n += snprintf(val + n, sizeof(val) - (size_t)n, "%s%s", i ? "," : "", j->peers[i]);
    if (store_raw_put(x->srv->store, 'm', key, strlen(key), val, (size_t)n) < 0)
        log_warn("transfer: cannot record the progress of a range in metadata");
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Parse a job record (save_job) into j (start/end already set); false if
 * it is not one. */
static bool load_job(xjob_t *j, const uint8_t *val, size_t vlen)
{
    char buf[128 + 2 * MC_KEY_MAX + MAXP * (GOSSIP_NAME_MAX + 1)];
    if (vlen >= sizeof(buf))
        return false;
    memcpy(buf, val, vlen);
    buf[vlen] = '\0';
    int done;
    unsigned long long keys, bytes, tok;
    /* the widths below are these sizes minus one */
    char ck[520], peers[1100];
    _Static_assert(2 * MC_KEY_MAX < sizeof(ck) && MAXP * (GOSSIP_NAME_MAX + 1) < sizeof(peers),
                   "job record fields fit");
    peers[0] = '\0';
    int got = sscanf(buf, "%d %llu %llu %llu %519s %1099s", &done, &keys, &bytes, &tok, ck, peers);
    if (got < 5)
        return false;
    j->done = done != 0;
    j->keys_done = keys;
    j->bytes_done = bytes;
    j->ctoken = tok;
    j->has_cursor = strcmp(ck, "-") != 0;
    if (j->has_cursor) {
        size_t l = strlen(ck);
        if (l % 2 || l / 2 > MC_KEY_MAX || l == 0)
            return false;
        for (size_t i = 0; i < l / 2; i++) {
            int h = hexval(ck[2 * i]), lo = hexval(ck[2 * i + 1]);
            if (h < 0 || lo < 0)
                return false;
            j->ckey[i] = (uint8_t)(h * 16 + lo);
        }
        j->cklen = l / 2;
    }
    j->npeers = 0;
    for (char *save = NULL, *t = strtok_r(peers, ",", &save); t && j->npeers < MAXP;
         t = strtok_r(NULL, ",", &save))
        snprintf(j->peers[j->npeers++], sizeof(j->peers[0]), "%s", t);
    return true;
}

/* Every job record in metadata: each one found is handed to fn. */
static void each_record(struct xfer *x, void (*fn)(struct xfer *, uint64_t, uint64_t,
                                                   const uint8_t *, size_t, void *),
                        void *arg)
{
    store_iter_t *it = NULL;
    if (store_iter_create_raw(x->srv->store, NULL, 'm', &it) < 0)
        return;
    size_t pl = strlen(META_PREFIX);
    for (store_iter_seek(it, 0, META_PREFIX, pl); store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        if (kl < pl || memcmp(k, META_PREFIX, pl))
            break;
        unsigned long long s, e;
        char kb[64];
        if (kl >= sizeof(kb))
            continue;
        memcpy(kb, k, kl);
        kb[kl] = '\0';
        if (sscanf(kb + pl, "%16llx/%16llx", &s, &e) != 2)
            continue;
        const uint8_t *v = store_iter_value(it, &vl);
        fn(x, s, e, v, vl, arg);
    }
    store_iter_destroy(it);
}

static void del_record(struct xfer *x, uint64_t s, uint64_t e, const uint8_t *v, size_t vl,
                       void *arg)
{
    (void)v;
    (void)vl;
    (void)arg;
    char key[64];
    xjob_t j = {.start = s, .end = e};
    meta_key(key, sizeof(key), &j);
    store_raw_del(x->srv->store, 'm', key, strlen(key));
}

static void clear_records(struct xfer *x)
{
    each_record(x, del_record, NULL);
}

/* Restore a pull job's progress from its record, if it has one. */
static void restore_job(struct xfer *x, xjob_t *j)
{
    char key[64];
    meta_key(key, sizeof(key), j);
    uint8_t *val = NULL;
    size_t vlen = 0;
    if (store_raw_get(x->srv->store, 'm', key, strlen(key), &val, &vlen) == 1) {
        xjob_t saved = *j;
        if (load_job(&saved, val, vlen)) {
            j->done = saved.done;
            j->keys_done = saved.keys_done;
            j->bytes_done = saved.bytes_done;
            j->has_cursor = saved.has_cursor;
            j->ctoken = saved.ctoken;
            memcpy(j->ckey, saved.ckey, saved.cklen);
            j->cklen = saved.cklen;
        }
    }
    free(val);
}

/* Range i of r (of nr) into *s, *e, *list, *len; false for the empty range
 * of two tied tokens, which holds nothing. */
static bool range_at(const ring_t *r, size_t i, size_t nr, uint64_t *s, uint64_t *e,
                     const uint32_t **list, uint32_t *len)
{
    ring_range(r, i, s, e, list, len);
    return !(*s == *e && nr > 1);
}

/* The preference list of the range of r that holds position pos. */
static void owners_at(const ring_t *r, uint64_t pos, const uint32_t **list, uint32_t *len)
{
    ring_range(r, ring_range_of(r, pos), NULL, NULL, list, len);
}

static bool in_list(const ring_t *r, const uint32_t *list, uint32_t len, const char *name)
{
    for (uint32_t i = 0; i < len; i++)
        if (!strcmp(ring_node_name(r, list[i]), name))
            return true;
    return false;
}

/* Jobs not done yet. */
static size_t jobs_left(const struct xfer *x)
{
    size_t n = 0;
    for (size_t i = 0; x && i < x->njobs; i++)
        n += !x->jobs[i].done;
    return n;
}

/* Progress of the change this node runs: percent of its ranges done. */
int xfer_progress(const server_t *srv)
{
    const struct xfer *x = srv->xfer;
    if (!x || (x->mode != M_JOIN && x->mode != M_LEAVE && x->mode != M_PULLS))
        return -1;
    if (!x->planned || x->njobs == 0)
        return 0;
    return (int)((x->njobs - jobs_left(x)) * 100 / x->njobs);
}

/* Tell the cluster our status, ring epoch and how far we are (gossip's
 * xfer: 1 + percent), in steps of 10% so the entry does not change on
 * every range.  epoch UINT64_MAX keeps ours. */
static void publish(struct xfer *x, gossip_status_t st, uint64_t epoch)
{
    int pct = xfer_progress(x->srv);
    int val = pct < 0 ? 0 : 1 + pct / 10 * 10;
    gossip_member_info_t me;
    cluster_t *cl = &x->srv->cluster;
    if (!gossip_lookup(cl->gossip, x->srv->cfg.name, &me))
        return;
    if (epoch == UINT64_MAX)
        epoch = me.entry.ring_epoch;
    if ((uint32_t)val == me.entry.xfer && (uint32_t)st == me.entry.status &&
        epoch == me.entry.ring_epoch)
        return;
    gossip_set_state(cl->gossip, st, epoch, (uint32_t)val, mono_ms());
    x->sent_xfer = val;
    cluster_refresh_ring(cl);
}

/* ---- pages ---- */

static void on_tick(evutil_socket_t fd, short what, void *arg);

/* Run the driver again in ms (the next page, without waiting for a tick). */
static void kick(struct xfer *x, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    if (x->kick)
        evtimer_add(x->kick, &tv);
}

static void page_end(struct xfer *x, bool ok)
{
    free_page(x->page, x->npage);
    x->page = NULL;
    x->npage = 0;
    x->busy = false;
    if (!ok) {
        x->stats.failed++;
        x->next_ms = mono_ms() + RETRY_MS;
        return;
    }
    /* throttle: this page's bytes at transfer.max_bytes_per_s */
    uint64_t rate = x->srv->cfg.xfer_max_bytes_per_s;
    int64_t wait = (int64_t)(x->page_bytes * 1000 / (rate ? rate : 1));
    x->next_ms = mono_ms() + wait;
    kick(x, wait);
}

static void job_advance(struct xfer *x, xjob_t *j, const msg_aae_item_t *last, uint32_t n,
                        uint64_t bytes, bool done)
{
    j->keys_done += n;
    j->bytes_done += bytes;
    if (last) {
        j->has_cursor = true;
        j->ctoken = store_key_token(last->key, last->klen);
        memcpy(j->ckey, last->key, last->klen);
        j->cklen = last->klen;
    }
    if (done) {
        j->done = true;
        x->stats.done++;
        if (j->kind == J_PULL)
            log_debug("transfer: range (%llu, %llu] from %s done: %llu keys, %llu bytes",
                     (unsigned long long)j->start, (unsigned long long)j->end,
                     j->peers[j->peer_i], (unsigned long long)j->keys_done,
                     (unsigned long long)j->bytes_done);
    }
    save_job(x, j);
}

static void on_pull_reply(void *arg, int status, const frame_t *f)
{
    xreq_t *rq = arg;
    struct xfer *x = rq->x;
    msg_any_t m;
    memset(&m, 0, sizeof(m));
    bool ok = false;
    if (!x || rq->gen != x->gen || !x->busy || rq->job >= x->njobs)
        goto out; /* the jobs were replaced meanwhile */
    xjob_t *j = &x->jobs[rq->job];
    if (status == 0 && f->type == MSG_XFER_PULL &&
        msg_decode(MSG_XFER_PULL, MSG_REP, &f->body, &m) == 0 && m.aae.code == 0) {
        uint64_t bytes = 0;
        ok = true;
        for (uint32_t i = 0; i < m.aae.nitems && ok; i++) {
            msg_aae_item_t *it = &m.aae.items[i];
            ok = node_merge(x->srv, it->key, it->klen, &it->obj) == 0;
            bytes += it->klen + it->enclen;
        }
        if (ok) {
            if (j->estimate == 0)
                j->estimate = m.aae.estimate;
            x->stats.pages_in++;
            x->stats.keys_in += m.aae.nitems;
            x->stats.bytes_in += bytes;
            x->page_bytes = bytes;
            job_advance(x, j, m.aae.nitems ? &m.aae.items[m.aae.nitems - 1] : NULL,
                        m.aae.nitems, bytes, m.aae.count != 0);
        }
    } else if (status == 0 && f->type == MSG_XFER_PULL &&
               msg_decode(MSG_XFER_PULL, MSG_REP, &f->body, &m) == 0 &&
               m.aae.code == MSG_CODE_STALE_EPOCH) {
        log_info("transfer: %s refused a page: our ring epoch is older; retrying",
                 j->peers[j->peer_i]);
    }
    if (!ok && j->npeers > 1) /* try the next source */
        j->peer_i = (j->peer_i + 1) % j->npeers;
    page_end(x, ok);
out:
    msg_free(MSG_XFER_PULL, MSG_REP, &m);
    free(rq);
}

static void on_push_reply(void *arg, int status, const frame_t *f)
{
    xreq_t *rq = arg;
    struct xfer *x = rq->x;
    if (!x || rq->gen != x->gen || !x->busy || rq->job >= x->njobs) {
        free(rq);
        return;
    }
    if (!(status == 0 && f->type == MSG_XFER_PUSH && frame_status_ok(f)))
        x->page_failed = true;
    size_t job = rq->job;
    free(rq);
    if (--x->acks_pending > 0)
        return;
    xjob_t *j = &x->jobs[job];
    bool ok = !x->page_failed;
    if (ok) {
        x->stats.pages_out++;
        if (j->drop) /* every owner merged and persisted the page */
            for (uint32_t i = 0; i < x->npage; i++)
                if (node_drop_if(x->srv, x->page[i].key, x->page[i].klen, x->page[i].hash) == 1)
                    x->stats.keys_dropped++;
        job_advance(x, j, x->npage ? &x->page[x->npage - 1] : NULL, x->npage, x->page_bytes,
                    x->page_last);
    }
    page_end(x, ok);
}

static xreq_t *xreq(struct xfer *x)
{
    xreq_t *rq = malloc(sizeof(*rq));
    if (rq) {
        rq->x = x;
        rq->gen = x->gen;
        rq->job = x->cur;
    }
    return rq;
}

/* Start the page of job x->cur. */
static void start_page(struct xfer *x)
{
    server_t *srv = x->srv;
    xjob_t *j = &x->jobs[x->cur];
    const cluster_view_t *v = srv->cluster.view;
    if (!j->started_ms)
        j->started_ms = mono_ms();
    x->gen++; /* names this page: answers to any other are ignored */
    msg_aae_t a = {.ring = local_epoch(srv), .start = j->start, .end = j->end};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (j->kind == J_PULL && j->npeers == 0) {
        /* nobody else ever held the range (n = 1, or every other replica
         * was removed): there is nothing to copy */
        log_warn("transfer: range (%llu, %llu] has no other replica to copy from; skipped",
                 (unsigned long long)j->start, (unsigned long long)j->end);
        job_advance(x, j, NULL, 0, 0, true);
        kick(x, 0);
        goto out;
    }
    if (j->kind == J_PULL) {
        const cluster_node_t *n = cluster_view_node(v, j->peers[j->peer_i]);
        if (!n || !n->alive) { /* this source is not there: the next one, later */
            if (j->npeers > 1)
                j->peer_i = (j->peer_i + 1) % j->npeers;
            x->next_ms = mono_ms() + RETRY_MS;
            goto out;
        }
        a.has_cursor = j->has_cursor;
        a.ctoken = j->ctoken;
        a.ckey = j->ckey;
        a.cklen = j->cklen;
        a.count = XFER_PAGE_BYTES;
        xreq_t *rq = xreq(x);
        if (!rq || msg_encode(&sb, MSG_XFER_PULL, MSG_REQ, &a) < 0 ||
            transport_request(srv->cluster.transport, n->host, n->peer_port, MSG_XFER_PULL,
                              sb.data, sb.size, srv->cfg.request_timeout_ms * 5, on_pull_reply,
                              rq) < 0) {
            free(rq);
            x->next_ms = mono_ms() + RETRY_MS;
            goto out;
        }
        x->busy = true;
        goto out;
    }
    /* push: every target must be up (a page waits for all of them) */
    for (int i = 0; i < j->npeers; i++) {
        const cluster_node_t *n = cluster_view_node(v, j->peers[i]);
        if (!n && (x->mode == M_LEAVE || x->mode == M_CLEANUP)) {
            /* the target left the ring (removed): plan again on the ring
             * as it is now (what was pushed already is merged again,
             * which changes nothing) */
            log_info("transfer: %s is no longer a member; planning the hand-over again",
                     j->peers[i]);
            clear_jobs(x);
            if (x->mode == M_CLEANUP)
                x->mode = M_NONE;
            goto out;
        }
        if (!n || !n->alive) {
            x->next_ms = mono_ms() + RETRY_MS;
            goto out;
        }
    }
    bool last = false;
    if (read_page(srv, j->start, j->end, j->has_cursor, j->ctoken, j->ckey, j->cklen,
                  XFER_PAGE_BYTES, &x->page, &x->npage, &last) < 0) {
        x->next_ms = mono_ms() + RETRY_MS;
        goto out;
    }
    x->page_last = last;
    x->page_bytes = 0;
    for (uint32_t i = 0; i < x->npage; i++)
        x->page_bytes += x->page[i].klen + x->page[i].enclen;
    if (x->npage == 0) { /* nothing (more) to send */
        job_advance(x, j, NULL, 0, 0, true);
        free_page(x->page, 0);
        x->page = NULL;
        kick(x, 0);
        goto out;
    }
    if (j->estimate == 0 && !j->has_cursor)
        j->estimate = estimate_keys(srv, j->start, j->end);
    a.items = x->page;
    a.nitems = x->npage;
    if (msg_encode(&sb, MSG_XFER_PUSH, MSG_REQ, &a) < 0) {
        page_end(x, false);
        goto out;
    }
    x->busy = true;
    x->page_failed = false;
    x->acks_pending = 0; /* answers never come inside transport_request */
    for (int i = 0; i < j->npeers; i++) {
        const cluster_node_t *n = cluster_view_node(v, j->peers[i]);
        xreq_t *rq = xreq(x);
        if (!rq || transport_request(srv->cluster.transport, n->host, n->peer_port,
                                     MSG_XFER_PUSH, sb.data, sb.size,
                                     srv->cfg.request_timeout_ms * 5, on_push_reply, rq) < 0) {
            free(rq);
            x->page_failed = true;
        } else {
            x->acks_pending++;
        }
    }
    x->stats.keys_out += x->npage;
    x->stats.bytes_out += x->page_bytes;
    if (x->acks_pending == 0)
        page_end(x, false);
out:
    msgpack_sbuffer_destroy(&sb);
}

/* Run the jobs: true once every one is done. */
static bool run_jobs(struct xfer *x)
{
    if (x->busy)
        return false;
    for (size_t k = 0; k < x->njobs; k++) {
        size_t i = (x->cur + k) % x->njobs;
        if (!x->jobs[i].done) {
            x->cur = i;
            if (mono_ms() >= x->next_ms)
                start_page(x);
            return false;
        }
    }
    return true;
}

/* ---- the modes ---- */

/* Another change that must go first, described in why; NULL if none. */
static bool other_change(struct xfer *x, const cluster_view_t *v, char *why, size_t len)
{
    (void)v;
    gossip_t *g = x->srv->cluster.gossip;
    gossip_member_info_t me;
    if (!gossip_lookup(g, x->srv->cfg.name, &me))
        return false;
    size_t n = gossip_member_count(g);
    for (size_t i = 0; i < n; i++) {
        gossip_member_info_t m;
        if (gossip_member(g, i, &m) < 0 || m.is_self)
            continue;
        const gossip_member_t *e = &m.entry;
        if (e->status == GOSSIP_LEAVING || (e->status == GOSSIP_UP && e->xfer != 0)) {
            snprintf(why, len, "%s is %s", e->name,
                     e->status == GOSSIP_LEAVING ? "leaving" : "transferring ranges");
            return true;
        }
        /* of two joiners, the one that started first (then by name) goes first */
        if (e->status == GOSSIP_JOINING &&
            (e->generation < me.entry.generation ||
             (e->generation == me.entry.generation && strcmp(e->name, me.entry.name) < 0))) {
            snprintf(why, len, "%s is joining", e->name);
            return true;
        }
    }
    return false;
}

static void waiting(struct xfer *x, const char *why)
{
    if (strcmp(x->waiting, why)) {
        snprintf(x->waiting, sizeof(x->waiting), "%s", why);
        if (why[0])
            log_info("transfer: %s", why);
    }
}

/* The ring we will be up in: the current ring and us.  Not the future
 * ring, which also holds any other node waiting to join: we go up before
 * it, so we must fill what we own without it too. */
static ring_t *ring_with_self(struct xfer *x, const cluster_view_t *v)
{
    uint32_t n = ring_node_count(v->ring);
    const char **names = calloc(n + 1, sizeof(*names));
    ring_t *r = NULL;
    if (!names)
        return NULL;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++)
        if (!v->nodes[i].is_self)
            names[k++] = v->nodes[i].name;
    names[k++] = x->srv->cfg.name;
    if (ring_build(names, k, (uint32_t)x->srv->cfg.vnodes, (uint32_t)x->srv->cfg.n, 0, &r) < 0)
        r = NULL;
    free(names);
    return r;
}

static void plan_join(struct xfer *x, const cluster_view_t *v)
{
    ring_t *F = ring_with_self(x, v);
    const ring_t *C = v->ring;
    if (!F)
        return; /* out of memory: the next tick tries again */
    size_t nr = ring_range_count(F);
    for (size_t i = 0; i < nr; i++) {
        uint64_t s, e;
        const uint32_t *list, *cl;
        uint32_t len, clen;
        if (!range_at(F, i, nr, &s, &e, &list, &len) || !in_list(F, list, len, x->srv->cfg.name))
            continue;
        owners_at(C, e, &cl, &clen);
        xjob_t *j = add_job(x, s, e, J_PULL);
        if (!j)
            break;
        j->persist = true;
        for (int pass = 0; pass < 2; pass++) /* live sources first */
            for (uint32_t k = 0; k < clen && j->npeers < MAXP; k++) {
                const cluster_node_t *cn = &v->nodes[cl[k]];
                if (!cn->is_self && cn->alive == (pass == 0))
                    snprintf(j->peers[j->npeers++], sizeof(j->peers[0]), "%s", cn->name);
            }
        restore_job(x, j);
    }
    ring_free(F);
    x->planned = true;
    x->t0 = mono_ms();
    size_t left = jobs_left(x);
    log_info("transfer: joining: pulling %zu ranges (%zu already done) from their owners",
             left, x->njobs - left);
}

static void totals(const struct xfer *x, uint64_t *keys, uint64_t *bytes)
{
    *keys = *bytes = 0;
    for (size_t i = 0; i < x->njobs; i++) {
        *keys += x->jobs[i].keys_done;
        *bytes += x->jobs[i].bytes_done;
    }
}

static void join_step(struct xfer *x, const cluster_view_t *v, int64_t now)
{
    if (x->mode != M_JOIN) {
        clear_jobs(x);
        x->mode = M_JOIN;
        x->settle_until = 0;
    }
    if (!x->planned) {
        char why[200];
        if (ring_node_count(v->ring) == 1 && v->self_idx == 0) {
            waiting(x, "join waits: no member of the cluster is known yet");
            return;
        }
        if (!v->future)
            return;
        if (other_change(x, v, why, sizeof(why))) {
            char line[240];
            snprintf(line, sizeof(line), "join waits: %s", why);
            waiting(x, line);
            x->settle_until = 0;
            return;
        }
        if (x->settle_until == 0) {
            x->settle_until = now + settle_ms(x->srv);
            waiting(x, "");
            log_info("transfer: joining; waiting %d ms for every node to send us writes",
                     settle_ms(x->srv));
            return;
        }
        if (now < x->settle_until)
            return;
        plan_join(x, v);
    }
    if (!run_jobs(x))
        return;
    uint64_t keys, bytes, epoch = v->ring_epoch + 1;
    totals(x, &keys, &bytes);
    xfer_save_status(x->srv, GOSSIP_UP);
    clear_records(x);
    log_info("transfer: join complete: %llu keys, %llu bytes in %.1f s; %s is up (ring epoch "
             "%llu)",
             (unsigned long long)keys, (unsigned long long)bytes, (now - x->t0) / 1000.0,
             x->srv->cfg.name, (unsigned long long)epoch);
    clear_jobs(x);
    x->mode = M_NONE;
    publish(x, GOSSIP_UP, epoch);
}

static void plan_leave(struct xfer *x, const cluster_view_t *v)
{
    const ring_t *F = v->future, *C = v->ring;
    size_t nr = ring_range_count(C);
    for (size_t i = 0; i < nr; i++) {
        uint64_t s, e;
        const uint32_t *list, *fl;
        uint32_t len, flen;
        if (!range_at(C, i, nr, &s, &e, &list, &len) || !in_list(C, list, len, x->srv->cfg.name))
            continue;
        owners_at(F, e, &fl, &flen);
        xjob_t *j = NULL;
        for (uint32_t k = 0; k < flen; k++) {
            const char *name = ring_node_name(F, fl[k]);
            if (in_list(C, list, len, name))
                continue; /* it already replicates the range */
            if (!j && !(j = add_job(x, s, e, J_PUSH)))
                break;
            if (j->npeers < MAXP)
                snprintf(j->peers[j->npeers++], sizeof(j->peers[0]), "%s", name);
        }
    }
    x->planned = true;
    x->t0 = mono_ms();
    log_info("transfer: leaving: pushing %zu ranges to the nodes that take them over", x->njobs);
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server_t *srv = arg;
    log_info("transfer: %s has left the cluster; stopping", srv->cfg.name);
    srv->stopping = true;
    event_base_loopexit(srv->base, NULL);
}

static void leave_step(struct xfer *x, const cluster_view_t *v, int64_t now)
{
    if (x->mode != M_LEAVE) {
        clear_jobs(x);
        x->mode = M_LEAVE;
        x->settle_until = now + settle_ms(x->srv);
        log_info("transfer: leaving; waiting %d ms for every node to send writes to the new "
                 "owners too",
                 settle_ms(x->srv));
    }
    if (!x->planned) {
        if (now < x->settle_until || !v->future)
            return;
        plan_leave(x, v);
    }
    if (!run_jobs(x))
        return;
    uint64_t keys, bytes, epoch = v->ring_epoch + 1;
    totals(x, &keys, &bytes);
    xfer_save_status(x->srv, GOSSIP_LEFT);
    log_info("transfer: leave complete: %llu keys, %llu bytes handed over in %.1f s (ring "
             "epoch %llu)",
             (unsigned long long)keys, (unsigned long long)bytes, (now - x->t0) / 1000.0,
             (unsigned long long)epoch);
    clear_jobs(x);
    x->mode = M_GONE;
    publish(x, GOSSIP_LEFT, epoch);
    /* let the news go out (direct mail, rumors) before the process ends */
    int ms = settle_ms(x->srv);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    x->exit_ev = evtimer_new(x->srv->base, on_exit_ev, x->srv);
    if (!x->exit_ev || evtimer_add(x->exit_ev, &tv) < 0)
        on_exit_ev(-1, 0, x->srv);
}

static void pulls_step(struct xfer *x, const cluster_view_t *v)
{
    if (!run_jobs(x))
        return;
    uint64_t keys, bytes;
    totals(x, &keys, &bytes);
    log_info("transfer: re-replication complete: %zu ranges, %llu keys, %llu bytes in %.1f s",
             x->njobs, (unsigned long long)keys, (unsigned long long)bytes,
             (mono_ms() - x->t0) / 1000.0);
    clear_records(x);
    clear_jobs(x);
    x->mode = M_NONE;
    publish(x, GOSSIP_UP, v->ring_epoch);
}

/* Whether the local store holds a record in (start, end]. */
static bool has_records(store_iter_t *it, uint64_t start, uint64_t end)
{
    uint64_t lo[2], hi[2];
    int np = pieces(start, end, lo, hi);
    for (int p = 0; p < np; p++) {
        store_iter_seek(it, lo[p], NULL, 0);
        if (store_iter_valid(it) && store_iter_token(it) <= hi[p])
            return true;
    }
    return false;
}

static void plan_cleanup(struct xfer *x, const cluster_view_t *v)
{
    const ring_t *C = v->ring;
    store_iter_t *it = NULL;
    if (store_iter_create(x->srv->store, NULL, &it) < 0)
        return;
    size_t nr = ring_range_count(C);
    for (size_t i = 0; i < nr; i++) {
        uint64_t s, e;
        const uint32_t *list;
        uint32_t len;
        if (!range_at(C, i, nr, &s, &e, &list, &len) || v->self_idx == RING_NODE_NONE ||
            in_list(C, list, len, x->srv->cfg.name) || !has_records(it, s, e))
            continue;
        bool all_up = true;
        for (uint32_t k = 0; k < len; k++)
            all_up &= v->nodes[list[k]].alive;
        if (!all_up)
            continue; /* hand it over once every owner can take it */
        xjob_t *j = add_job(x, s, e, J_PUSH);
        if (!j)
            break;
        j->drop = true;
        for (uint32_t k = 0; k < len && j->npeers < MAXP; k++)
            snprintf(j->peers[j->npeers++], sizeof(j->peers[0]), "%s", v->nodes[list[k]].name);
    }
    store_iter_destroy(it);
    x->planned = true;
    x->t0 = mono_ms();
    if (x->njobs)
        log_info("transfer: handing over %zu ranges this node no longer replicates", x->njobs);
}

static void cleanup_step(struct xfer *x, const cluster_view_t *v, int64_t now)
{
    if (x->mode == M_CLEANUP) {
        if (v->changing || v->future) { /* a change started: it goes first */
            clear_jobs(x);
            x->mode = M_NONE;
            return;
        }
        if (!run_jobs(x))
            return;
        uint64_t keys, bytes;
        totals(x, &keys, &bytes);
        if (keys)
            log_info("transfer: handed over and dropped %llu keys (%llu bytes) of %zu ranges "
                     "no longer replicated here",
                     (unsigned long long)keys, (unsigned long long)bytes, x->njobs);
        clear_jobs(x);
        x->mode = M_NONE;
        return;
    }
    if (v->changing || v->future || now - x->stable_since < 2 * settle_ms(x->srv) ||
        now - x->last_cleanup < CLEANUP_EVERY_MS)
        return;
    x->last_cleanup = now;
    clear_jobs(x);
    plan_cleanup(x, v);
    if (x->njobs)
        x->mode = M_CLEANUP;
}

/* A key naming the ring's members and epoch: the ring is stable while it
 * does not change. */
static uint64_t ring_key(const cluster_view_t *v)
{
    uint64_t h = v->ring_epoch * 0x9e3779b97f4a7c15ULL;
    uint32_t n = ring_node_count(v->ring);
    for (uint32_t i = 0; i < n; i++) {
        const char *name = ring_node_name(v->ring, i);
        h = (h ^ tictac_key_hash(name, strlen(name), "", 0)) * 0x100000001b3ULL;
    }
    return h;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct xfer *x = arg;
    const cluster_view_t *v = x->srv->cluster.view;
    if (!v || x->mode == M_GONE)
        return;
    int64_t now = mono_ms();
    uint64_t key = ring_key(v);
    if (key != x->stable_key) {
        x->stable_key = key;
        x->stable_since = now;
    }
    if (x->busy)
        return;
    if (now < x->next_ms) { /* throttled or backing off: come back then */
        kick(x, x->next_ms - now);
        return;
    }
    if (admit_busy(x->srv)) { /* the node sheds client work: transfers wait (admit.h) */
        admit_deferred(x->srv);
        x->next_ms = now + XFER_TICK_MS;
        return;
    }
    gossip_status_t st = self_status(x->srv);
    switch (st) {
    case GOSSIP_JOINING:
        join_step(x, v, now);
        break;
    case GOSSIP_LEAVING:
        leave_step(x, v, now);
        break;
    case GOSSIP_UP:
        if (x->mode == M_PULLS)
            pulls_step(x, v);
        else
            cleanup_step(x, v, now);
        break;
    default:
        return;
    }
    if (x->mode == M_JOIN || x->mode == M_LEAVE || x->mode == M_PULLS)
        publish(x, self_status(x->srv), UINT64_MAX);
}

/* ---- remove: what this node now replicates and did not ---- */

void xfer_on_view(server_t *srv, const cluster_view_t *old, const cluster_view_t *now)
{
    struct xfer *x = srv->xfer;
    if (!x || !old || now->self_idx == RING_NODE_NONE || old->self_idx == RING_NODE_NONE)
        return;
    /* members of the old ring that are gone because someone removed them */
    const char *removed[MAXP];
    int nrem = 0;
    uint32_t on = ring_node_count(old->ring);
    for (uint32_t i = 0; i < on && nrem < MAXP; i++) {
        const char *name = ring_node_name(old->ring, i);
        gossip_member_info_t m;
        if (ring_node_index(now->ring, name) == RING_NODE_NONE &&
            gossip_lookup(srv->cluster.gossip, name, &m) && m.entry.status == GOSSIP_LEFT &&
            (m.entry.flags & GOSSIP_F_REMOVED))
            removed[nrem++] = old->nodes[i].name;
    }
    if (nrem == 0)
        return;
    if (x->mode != M_PULLS) {
        clear_jobs(x);
        x->mode = M_PULLS;
        x->t0 = mono_ms();
    }
    /* the old ring's ranges are the finer ones (the removed node's tokens
     * are gone from the new ring): each lies inside one new range */
    size_t added = 0, nr = ring_range_count(old->ring);
    for (size_t i = 0; i < nr; i++) {
        uint64_t s, e;
        const uint32_t *ol, *list;
        uint32_t olen, len;
        if (!range_at(old->ring, i, nr, &s, &e, &ol, &olen) ||
            in_list(old->ring, ol, olen, srv->cfg.name))
            continue; /* empty, or we had it already */
        owners_at(now->ring, e, &list, &len);
        if (!in_list(now->ring, list, len, srv->cfg.name))
            continue;
        xjob_t *j = add_job(x, s, e, J_PULL);
        if (!j)
            break;
        j->persist = true;
        for (uint32_t k = 0; k < olen && j->npeers < MAXP; k++) {
            const char *name = ring_node_name(old->ring, ol[k]);
            bool gone = false;
            for (int r = 0; r < nrem; r++)
                gone |= !strcmp(removed[r], name);
            if (!gone)
                snprintf(j->peers[j->npeers++], sizeof(j->peers[0]), "%s", name);
        }
        save_job(x, j);
        added++;
    }
    x->planned = true;
    log_info("transfer: %s removed; pulling %zu ranges this node now replicates from their "
             "other replicas",
             removed[0], added);
    if (x->njobs == 0) {
        clear_jobs(x);
        x->mode = M_NONE;
    }
}

/* Jobs left in metadata by a re-replication that a restart interrupted. */
static void resume_record(struct xfer *x, uint64_t s, uint64_t e, const uint8_t *v, size_t vl,
                          void *arg)
{
    (void)arg;
    xjob_t *j = add_job(x, s, e, J_PULL);
    if (!j)
        return;
    if (!load_job(j, v, vl)) {
        x->njobs--;
        return;
    }
    j->persist = true;
}

/* ---- operator commands ---- */

int xfer_leave(server_t *srv, char *msg, size_t len)
{
    const cluster_view_t *v = srv->cluster.view;
    gossip_status_t st = self_status(srv);
    if (!v || !srv->xfer) {
        snprintf(msg, len, "SERVER_ERROR not ready");
        return -1;
    }
    if (st == GOSSIP_LEAVING) {
        snprintf(msg, len, "SERVER_ERROR %s is already leaving", srv->cfg.name);
        return -1;
    }
    if (st != GOSSIP_UP) {
        snprintf(msg, len, "SERVER_ERROR %s is %s; only an up node can leave", srv->cfg.name,
                 status_word(st));
        return -1;
    }
    uint32_t others = 0, n = ring_node_count(v->ring);
    for (uint32_t i = 0; i < n; i++)
        others += !v->nodes[i].is_self;
    if (others == 0) {
        snprintf(msg, len, "SERVER_ERROR %s is the only node; there is nobody to hand its data to",
                 srv->cfg.name);
        return -1;
    }
    if (v->changing) {
        snprintf(msg, len, "SERVER_ERROR a membership change is in progress: %s; one at a time",
                 v->change);
        return -1;
    }
    if (xfer_save_status(srv, GOSSIP_LEAVING) < 0) {
        snprintf(msg, len, "SERVER_ERROR cannot record the state in storage");
        return -1;
    }
    clear_jobs(srv->xfer);
    srv->xfer->mode = M_NONE;
    gossip_set_state(srv->cluster.gossip, GOSSIP_LEAVING, v->ring_epoch, 1, mono_ms());
    log_info("transfer: %s leaves the cluster (operator's leave)", srv->cfg.name);
    cluster_refresh_ring(&srv->cluster);
    return 0;
}

int xfer_remove(server_t *srv, const char *name, char *msg, size_t len)
{
    const cluster_view_t *v = srv->cluster.view;
    gossip_member_info_t m;
    if (!v || !srv->xfer) {
        snprintf(msg, len, "SERVER_ERROR not ready");
        return -1;
    }
    if (!gossip_lookup(srv->cluster.gossip, name, &m) || m.entry.status == GOSSIP_LEFT) {
        snprintf(msg, len, "CLIENT_ERROR no member named %s", name);
        return -1;
    }
    if (m.is_self) {
        snprintf(msg, len, "CLIENT_ERROR %s is this node; use leave", name);
        return -1;
    }
    if (m.alive) {
        snprintf(msg, len,
                 "CLIENT_ERROR %s is alive; only a node that is down can be removed (use leave "
                 "on it)",
                 name);
        return -1;
    }
    /* One change at a time; but a node that is down for good may always
     * be removed: the change in progress may be waiting for it (a joiner
     * or leaver that died, the target of a leave, the only source of a
     * range), and removing it is what lets that change finish. */
    uint64_t epoch = v->ring_epoch + 1;
    if (gossip_remove(srv->cluster.gossip, name, epoch, mono_ms()) < 0) {
        snprintf(msg, len, "SERVER_ERROR cannot remove %s", name);
        return -1;
    }
    gossip_member_info_t me;
    if (gossip_lookup(srv->cluster.gossip, srv->cfg.name, &me))
        gossip_set_state(srv->cluster.gossip, (gossip_status_t)me.entry.status, epoch,
                         me.entry.xfer, mono_ms());
    log_info("transfer: %s removed from the cluster by the operator (membership epoch %llu)", name,
             (unsigned long long)epoch);
    cluster_refresh_ring(&srv->cluster);
    return 0;
}

/* ---- `transfers` ---- */

size_t xfer_count(const server_t *srv)
{
    return jobs_left(srv->xfer);
}

int xfer_get(const server_t *srv, size_t i, xfer_info_t *out)
{
    const struct xfer *x = srv->xfer;
    size_t k = 0;
    for (size_t q = 0; x && q < x->njobs; q++) {
        const xjob_t *j = &x->jobs[q];
        if (j->done || k++ != i)
            continue;
        memset(out, 0, sizeof(*out));
        out->start = j->start;
        out->end = j->end;
        if (j->kind == J_PULL) {
            snprintf(out->from, sizeof(out->from), "%s", j->npeers ? j->peers[j->peer_i] : "-");
            snprintf(out->to, sizeof(out->to), "%s", srv->cfg.name);
        } else {
            snprintf(out->from, sizeof(out->from), "%s", srv->cfg.name);
            int n = 0;
            for (int p = 0; p < j->npeers && n < (int)sizeof(out->to) - 1; p++)
                n += snprintf(out->to + n, sizeof(out->to) - (size_t)n, "%s%s", p ? "," : "",
                              j->peers[p]);
        }
        out->keys_done = j->keys_done;
        out->keys = j->estimate > j->keys_done ? j->estimate : j->keys_done;
        out->bytes = j->bytes_done;
        int64_t el = j->started_ms ? mono_ms() - j->started_ms : 0;
        out->rate = el > 0 ? j->bytes_done * 1000 / (uint64_t)el : 0;
        out->eta_s = -1;
        if (j->estimate && el > 0 && j->keys_done > 0) {
            uint64_t left = j->estimate > j->keys_done ? j->estimate - j->keys_done : 0;
            out->eta_s = (int64_t)(left * (uint64_t)el / j->keys_done / 1000);
        }
        return 0;
    }
    return -EINVAL;
}

void xfer_get_stats(const server_t *srv, xfer_stats_t *out)
{
    if (srv->xfer)
        *out = srv->xfer->stats;
    else
        memset(out, 0, sizeof(*out));
}

/* ---- the peer side ---- */

static void reply_status(peer_link_t *link, const frame_t *f, int64_t code)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (msg_encode_status(&sb, code) == 0)
        transport_reply(link, f->req_id, f->type, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

static bool stale(server_t *srv, peer_link_t *link, const frame_t *f, const msg_aae_t *a)
{
    if (a->ring >= local_epoch(srv))
        return false;
    if (srv->xfer)
        srv->xfer->stats.stale_epoch++;
    reply_status(link, f, MSG_CODE_STALE_EPOCH);
    return true;
}

void xfer_on_pull(server_t *srv, peer_link_t *link, const frame_t *f, msg_any_t *m)
{
    msg_aae_t *a = &m->aae;
    if (stale(srv, link, f, a))
        return;
    msg_aae_item_t *items = NULL;
    uint32_t n = 0;
    bool done = false;
    size_t budget = a->count < XFER_PAGE_BYTES ? (a->count ? a->count : 1) : XFER_PAGE_BYTES;
    if (read_page(srv, a->start, a->end, a->has_cursor, a->ctoken, a->ckey, a->cklen, budget,
                  &items, &n, &done) < 0) {
        reply_status(link, f, -EIO);
        return;
    }
    msg_aae_t r = {.count = done, .items = items, .nitems = n,
                   .estimate = a->has_cursor ? 0 : estimate_keys(srv, a->start, a->end)};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (msg_encode(&sb, MSG_XFER_PULL, MSG_REP, &r) == 0) {
        transport_reply(link, f->req_id, MSG_XFER_PULL, sb.data, sb.size);
        if (srv->xfer) {
            srv->xfer->stats.pages_out++;
            srv->xfer->stats.keys_out += n;
            srv->xfer->stats.bytes_out += sb.size;
        }
    } else {
        reply_status(link, f, -ENOMEM);
    }
    msgpack_sbuffer_destroy(&sb);
    free_page(items, n);
}

void xfer_on_push(server_t *srv, peer_link_t *link, const frame_t *f, msg_any_t *m)
{
    msg_aae_t *a = &m->aae;
    if (stale(srv, link, f, a))
        return;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < a->nitems; i++) {
        msg_aae_item_t *it = &a->items[i];
        if (node_merge(srv, it->key, it->klen, &it->obj) < 0) {
            reply_status(link, f, -EIO);
            return;
        }
        bytes += it->klen + it->enclen;
    }
    if (srv->xfer) {
        srv->xfer->stats.pages_in++;
        srv->xfer->stats.keys_in += a->nitems;
        srv->xfer->stats.bytes_in += bytes;
    }
    reply_status(link, f, 0);
}

void xfer_refuse(server_t *srv, peer_link_t *link, const frame_t *f)
{
    if (srv->xfer)
        srv->xfer->stats.failed++;
    if (f->kind == FRAME_REQUEST)
        reply_status(link, f, -EINVAL);
}

/* ---- lifecycle ---- */

int xfer_open(server_t *srv, char *err, size_t errlen)
{
    struct xfer *x = calloc(1, sizeof(*x));
    if (!x) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    x->srv = srv;
    srv->xfer = x;
    if (self_status(srv) == GOSSIP_UP) { /* a re-replication interrupted by a restart */
        each_record(x, resume_record, NULL);
        if (x->njobs) {
            x->mode = M_PULLS;
            x->planned = true;
            x->t0 = mono_ms();
            log_info("transfer: resuming the re-replication of %zu ranges", jobs_left(x));
        }
    }
    x->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, x);
    x->kick = evtimer_new(srv->base, on_tick, x);
    struct timeval tv = {0, XFER_TICK_MS * 1000};
    if (!x->tick || !x->kick || event_add(x->tick, &tv) < 0) {
        snprintf(err, errlen, "cannot start the transfer timer");
        xfer_close(srv);
        return -1;
    }
    return 0;
}

void xfer_close(server_t *srv)
{
    struct xfer *x = srv->xfer;
    if (!x)
        return;
    if (x->tick)
        event_free(x->tick);
    if (x->kick)
        event_free(x->kick);
    if (x->exit_ev)
        event_free(x->exit_ev);
    free_page(x->page, x->npage);
    free(x->jobs);
    free(x);
    srv->xfer = NULL;
}
