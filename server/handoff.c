/*
 * handoff.c - hint storage and delivery (see handoff.h).
 *
 * Per owner, an entry of the owners table keeps the number of hints on disk,
 * how many deliveries are in flight, and a cursor into its hint keys so
 * each tick sends the next slice.  A tick (every HANDOFF_TICK_MS) gives
 * every owner that gossip says is alive up to rate * tick of its hints, as
 * REPLICA_PUT requests; an acknowledged hint is deleted only if it has not
 * changed since it was sent (a newer write merged into it waits for the
 * next pass).
 */
#include "handoff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "msg.h"
#include "node.h"
#include "server.h"

#define HANDOFF_TICK_MS 100
#define HANDOFF_MAX_INFLIGHT 64
#define HINT_KEY_MAX (GOSSIP_NAME_MAX + 1 + MC_KEY_MAX)

typedef struct owner {
    char name[GOSSIP_NAME_MAX + 1];
    int64_t pending;
    int inflight;
    uint64_t delivered; /* since its hints last ran out (for the log) */
    uint8_t cursor[HINT_KEY_MAX];
    size_t cursor_len; /* 0: start of this owner's hints */
} owner_t;

typedef struct handoff {
    server_t *srv;
    owner_t *owners;
    size_t nowners, cap;
    struct event *tick;
    handoff_stats_t stats;
    msgpack_sbuffer sb;
} handoff_t;

static int64_t now_ms(void) { return node_now_us() / 1000; }

static owner_t *owner_get(handoff_t *h, const char *name, bool create)
{
    for (size_t i = 0; i < h->nowners; i++)
        if (!strcmp(h->owners[i].name, name))
            return &h->owners[i];
    if (!create || strlen(name) > GOSSIP_NAME_MAX)
        return NULL;
    if (h->nowners == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        owner_t *o = realloc(h->owners, cap * sizeof(*o));
        if (!o)
            return NULL;
        h->owners = o;
        h->cap = cap;
    }
    owner_t *o = &h->owners[h->nowners++];
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "%s", name);
    return o;
}

static size_t hint_key(uint8_t *out, const char *owner, const void *key, size_t klen)
{
    size_t on = strlen(owner);
    memcpy(out, owner, on);
    out[on] = '\0';
    memcpy(out + on + 1, key, klen);
    return on + 1 + klen;
}

int handoff_get(server_t *srv, const char *owner, const void *key, size_t klen, obj_t *o)
{
    if (klen > MC_KEY_MAX || strlen(owner) > GOSSIP_NAME_MAX)
        return -EINVAL;
    uint8_t hk[HINT_KEY_MAX];
    size_t hl = hint_key(hk, owner, key, klen);
    uint8_t *val = NULL;
    size_t vlen = 0;
    int rc = store_raw_get(srv->store, STORE_PREFIX_HINT, hk, hl, &val, &vlen);
    if (rc <= 0)
        return rc;
    rc = vlen >= 8 ? obj_decode(val + 8, vlen - 8, o) : -EINVAL;
    free(val);
    return rc < 0 ? rc : 1;
}

int handoff_store(server_t *srv, const char *owner, const void *key, size_t klen,
                  const obj_t *in)
{
    handoff_t *h = srv->handoff;
    owner_t *ow = owner_get(h, owner, true);
    if (!ow || klen > MC_KEY_MAX)
        return -EINVAL;
    obj_t cur;
    obj_init(&cur);
    int rc = handoff_get(srv, owner, key, klen, &cur);
    if (rc < 0)
        goto out;
    bool fresh = rc == 0;
    if (fresh && ow->pending >= srv->cfg.max_hints_per_node) {
        h->stats.dropped++;
        rc = -ENOSPC;
        goto out;
    }
    if ((rc = obj_sync(&cur, in)) < 0)
        goto out;
    uint8_t *enc = NULL;
    size_t elen = 0;
    if ((rc = obj_encode(&cur, &enc, &elen)) < 0)
        goto out;
    uint8_t *val = malloc(elen + 8);
    if (!val) {
        free(enc);
        rc = -ENOMEM;
        goto out;
    }
    uint64_t created = (uint64_t)now_ms();
    for (int i = 0; i < 8; i++)
        val[i] = (uint8_t)(created >> (8 * i));
    memcpy(val + 8, enc, elen);
    free(enc);
    uint8_t hk[HINT_KEY_MAX];
    size_t hl = hint_key(hk, owner, key, klen);
    rc = store_raw_put(srv->store, STORE_PREFIX_HINT, hk, hl, val, elen + 8);
    free(val);
    if (rc < 0)
        goto out;
    h->stats.stored++;
    if (fresh) {
        ow->pending++;
        h->stats.pending++;
    }
out:
    obj_free(&cur);
    return rc;
}

/* ---- delivery ---- */

typedef struct delivery {
    handoff_t *h;
    char owner[GOSSIP_NAME_MAX + 1];
    uint8_t hk[HINT_KEY_MAX];
    size_t hl;
    uint8_t *sent; /* the raw hint value delivered */
    size_t sent_len;
} delivery_t;

static void hint_remove(handoff_t *h, owner_t *ow, const uint8_t *hk, size_t hl)
{
    if (store_raw_del(h->srv->store, STORE_PREFIX_HINT, hk, hl) == 0 && ow) {
        ow->pending--;
        h->stats.pending--;
    }
}

static void on_delivered(void *arg, int status, const frame_t *f)
{
    delivery_t *d = arg;
    handoff_t *h = d->h;
    owner_t *ow = h ? owner_get(h, d->owner, false) : NULL;
    if (ow)
        ow->inflight--;
    if (h && status == 0 && frame_status_ok(f)) {
        uint8_t *cur = NULL;
        size_t clen = 0;
        /* delete only what was delivered: a write merged in meanwhile stays */
        if (store_raw_get(h->srv->store, STORE_PREFIX_HINT, d->hk, d->hl, &cur, &clen) == 1 &&
            clen == d->sent_len && !memcmp(cur, d->sent, clen)) {
            hint_remove(h, ow, d->hk, d->hl);
            h->stats.delivered++;
            if (ow && ++ow->delivered && ow->pending == 0) {
                log_info("handoff: delivered %llu hints to %s; none left for it",
                         (unsigned long long)ow->delivered, ow->name);
                ow->delivered = 0;
            }
        }
        free(cur);
    }
    free(d->sent);
    free(d);
}

/* Send one hint (key: owner NUL user key; val: created-ms + object) to
 * node as a REPLICA_PUT.  0 when sent, negative when it could not be. */
static int send_hint(handoff_t *h, owner_t *ow, const cluster_node_t *node, size_t plen,
                     const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
    server_t *srv = h->srv;
    delivery_t *d = calloc(1, sizeof(*d));
    uint8_t *copy = d ? malloc(vlen) : NULL;
    if (!copy) {
        free(d);
        return -ENOMEM;
    }
    memcpy(copy, val, vlen);
    d->h = h;
    snprintf(d->owner, sizeof(d->owner), "%s", ow->name);
    memcpy(d->hk, key, klen);
    d->hl = klen;
    d->sent = copy;
    d->sent_len = vlen;
    /* the owner's own replica (hint_for ""), the object as the hint holds
     * it: already encoded, sent as it is */
    msgpack_sbuffer *sb = &h->sb;
    msg_replica_put_t m = {.key = key + plen, .klen = klen - plen, .hint = "",
                           .enc = val + 8, .enclen = vlen - 8};
    if (msg_encode(sb, MSG_REPLICA_PUT, MSG_REQ, &m) < 0) {
        free(d->sent);
        free(d);
        return -ENOMEM;
    }
    ow->inflight++;
    if (transport_request(srv->cluster.transport, node->host, node->peer_port,
                          MSG_REPLICA_PUT, sb->data, sb->size, srv->cfg.request_timeout_ms * 2,
                          on_delivered, d) < 0) {
        ow->inflight--;
        free(d->sent);
        free(d);
        return -EIO;
    }
    return 0;
}

/* One slice of ow's hints, from its cursor (which the previous slice sent,
 * so it is skipped) in key order: up to budget hints sent or dropped, and
 * no more than HANDOFF_MAX_INFLIGHT in flight.  Deleting expired hints
 * while iterating is safe: a LevelDB iterator reads a fixed snapshot.
 * Returns true when the slice reached the end of ow's hints. */
static bool deliver_slice(handoff_t *h, owner_t *ow, const cluster_node_t *node, int budget)
{
    server_t *srv = h->srv;
    size_t plen = strlen(ow->name) + 1; /* name NUL */
    int64_t now = now_ms();
    store_iter_t *it;
    if (store_iter_create_raw(srv->store, NULL, STORE_PREFIX_HINT, &it) < 0)
        return false;
    bool first = true, at_end = true;
    for (store_iter_seek(it, 0, ow->cursor, ow->cursor_len); store_iter_valid(it);
         store_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *key = store_iter_key(it, &klen);
        if (klen < plen || memcmp(key, ow->name, plen) != 0 || klen > HINT_KEY_MAX)
            break; /* past this owner's hints */
        if (first) {
            first = false;
            if (ow->cursor_len > plen && ow->cursor_len == klen && !memcmp(ow->cursor, key, klen))
                continue;
        }
        const uint8_t *val = store_iter_value(it, &vlen);
        uint64_t created = 0;
        for (int i = 0; vlen >= 8 && i < 8; i++)
            created |= (uint64_t)val[i] << (8 * i);
        if (vlen < 8 || (int64_t)created + (int64_t)srv->cfg.hint_ttl_s * 1000 < now) {
            hint_remove(h, ow, key, klen); /* expired or unreadable */
            h->stats.dropped++;
        } else if (send_hint(h, ow, node, plen, key, klen, val, vlen) < 0) {
            at_end = false; /* not sent: the next slice starts with it again */
            break;
        }
        memcpy(ow->cursor, key, klen);
        ow->cursor_len = klen;
        if (--budget <= 0 || ow->inflight >= HANDOFF_MAX_INFLIGHT) {
            at_end = false;
            break;
        }
    }
    if (store_iter_error(it) < 0)
        at_end = false;
    store_iter_destroy(it);
    return at_end;
}

/* The hints of an owner that left the cluster or was removed can never be
 * delivered: each is merged into this node's own store instead (never
 * minted: the object as it is), where the transfer cleanup hands it to the
 * key's current owners if this node is not one (transfer.h).  Up to budget
 * hints; true when the owner has none left. */
static bool rehome_slice(handoff_t *h, owner_t *ow, int budget)
{
    server_t *srv = h->srv;
    size_t plen = strlen(ow->name) + 1;
    store_iter_t *it;
    if (store_iter_create_raw(srv->store, NULL, STORE_PREFIX_HINT, &it) < 0)
        return false;
    bool at_end = true;
    for (store_iter_seek(it, 0, ow->name, plen); store_iter_valid(it); store_iter_next(it)) {
        size_t klen, vlen;
        const uint8_t *key = store_iter_key(it, &klen);
        if (klen < plen || memcmp(key, ow->name, plen) != 0)
            break;
        if (budget-- <= 0) {
            at_end = false;
            break;
        }
        const uint8_t *val = store_iter_value(it, &vlen);
        obj_t o;
        obj_init(&o);
        if (vlen > 8 && klen > plen && obj_decode(val + 8, vlen - 8, &o) == 0 &&
            node_merge(srv, key + plen, klen - plen, &o) == 0)
            h->stats.rehomed++;
        else
            h->stats.dropped++;
        obj_free(&o);
        hint_remove(h, ow, key, klen);
    }
    store_iter_destroy(it);
    if (at_end && h->stats.rehomed)
        log_info("handoff: %s has left the cluster; its hints were merged here for its "
                 "successors", ow->name);
    return at_end;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    handoff_t *h = arg;
    server_t *srv = h->srv;
    cluster_t *cl = &srv->cluster;
    const cluster_view_t *v = cl->view;
    if (!v)
        return;
    int budget = srv->cfg.hint_rate_per_s * HANDOFF_TICK_MS / 1000;
    if (admit_busy(srv)) {
        /* client work first (admit.h): a tenth of the rate, so hints
         * still drain while the node sheds load */
        budget /= 10;
        admit_deferred(srv);
    }
    if (budget < 1)
        budget = 1;
    for (size_t i = 0; i < h->nowners; i++) {
        owner_t *ow = &h->owners[i];
        if (ow->pending <= 0 || ow->inflight >= HANDOFF_MAX_INFLIGHT)
            continue;
        /* a member of the current ring, or of the future one: a joining
         * node gets its hints while it joins */
        const cluster_node_t *node = cluster_view_node(v, ow->name);
        gossip_member_info_t m;
        if (!node && cl->gossip && gossip_lookup(cl->gossip, ow->name, &m) &&
            m.entry.status == GOSSIP_LEFT) {
            rehome_slice(h, ow, budget);
            continue;
        }
        if (!node || !node->alive || node->is_self)
            continue;
        /* a new pass starts only when the previous one has landed */
        if (ow->cursor_len == 0 && ow->inflight > 0)
            continue;
        size_t plen = strlen(ow->name) + 1;
        if (ow->cursor_len == 0) {
            memcpy(ow->cursor, ow->name, plen); /* name NUL */
            ow->cursor_len = plen;
        }
        if (deliver_slice(h, ow, node, budget))
            ow->cursor_len = 0; /* the end of this owner's hints: next pass from the start */
    }
}

/* ---- open, close, stats ---- */

/* Count the stored hints per owner (key: owner NUL user key). */
static int count_hints(handoff_t *h)
{
    store_iter_t *it;
    int rc = store_iter_create_raw(h->srv->store, NULL, STORE_PREFIX_HINT, &it);
    if (rc < 0)
        return rc;
    for (store_iter_seek_first(it); store_iter_valid(it); store_iter_next(it)) {
        size_t klen;
        const uint8_t *key = store_iter_key(it, &klen);
        const uint8_t *nul = memchr(key, '\0', klen);
        if (!nul || nul == key || (size_t)(nul - key) > GOSSIP_NAME_MAX)
            continue;
        char name[GOSSIP_NAME_MAX + 1];
        memcpy(name, key, (size_t)(nul - key));
        name[nul - key] = '\0';
        owner_t *ow = owner_get(h, name, true);
        if (ow) {
            ow->pending++;
            h->stats.pending++;
        }
    }
    rc = store_iter_error(it);
    store_iter_destroy(it);
    return rc;
}

int handoff_open(server_t *srv, char *err, size_t errlen)
{
    handoff_t *h = calloc(1, sizeof(*h));
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    h->srv = srv;
    msgpack_sbuffer_init(&h->sb);
    srv->handoff = h;
    if (count_hints(h) < 0) {
        snprintf(err, errlen, "cannot scan stored hints");
        return -1;
    }
    if (h->stats.pending)
        log_info("handoff: %lld hints waiting for delivery", (long long)h->stats.pending);
    h->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, h);
    struct timeval tv = {0, HANDOFF_TICK_MS * 1000};
    if (!h->tick || event_add(h->tick, &tv) < 0) {
        snprintf(err, errlen, "cannot start the handoff timer");
        return -1;
    }
    return 0;
}

void handoff_close(server_t *srv)
{
    handoff_t *h = srv->handoff;
    if (!h)
        return;
    if (h->tick)
        event_free(h->tick);
    free(h->owners);
    msgpack_sbuffer_destroy(&h->sb);
    free(h);
    srv->handoff = NULL;
}

void handoff_get_stats(const server_t *srv, handoff_stats_t *out)
{
    if (srv->handoff)
        *out = srv->handoff->stats;
    else
        memset(out, 0, sizeof(*out));
}
