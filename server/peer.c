/*
 * peer.c - inter-node transport (see peer.h for the picture).
 *
 * Organisation: destinations (host:port) remember their backoff and their
 * current outbound link; links (outbound or accepted) carry frames both
 * ways; pending requests live in a hash by req_id and on their link's list,
 * each with its own deadline timer.  Invariant: a pending request's
 * callback runs exactly once, from the event loop, and then the pending
 * entry is freed.
 *
 * Output is corked: a frame goes into its link's cork buffer, and the
 * first frame of a loop turn activates one flush event, which runs after
 * the callbacks already active in that turn and writes each link's cork
 * with one writev straight to the socket.  So every frame a turn produces
 * for one peer (the replica requests of many client requests, the replies
 * to many of its requests) leaves in one system call, with no EV_WRITE
 * round trip.  Only a write the socket does not take whole goes through
 * the bufferevent's output (which then keeps the order: a cork is never
 * written past data still waiting there).  A receiver decodes every frame
 * it has before returning to the loop (on_read).
 */
#include "peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "../common/log.h"

#define PENDING_BUCKETS 4096
#define LINK_OUT_MAX (64u * 1024 * 1024)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef struct pending {
    transport_t *t;
    uint64_t id;
    peer_reply_fn cb;
    void *arg;
    peer_link_t *link; /* NULL for a request failed before it was sent */
    int fail_status;   /* reported when the timer fires; 0 means -ETIMEDOUT */
    struct event *timer;
    struct pending *hnext;
    TAILQ_ENTRY(pending) lnext;
} pending_t;

typedef struct dest {
    char host[256];
    int port;
    peer_link_t *link;
    int backoff_ms;
    int64_t retry_at_ms;
    LIST_ENTRY(dest) next;
} dest_t;

struct peer_link {
    transport_t *t;
    int refs; /* holds by handlers answering later; freed when dead and 0 */
    struct bufferevent *bev;
    dest_t *dest; /* outbound links only */
    bool connected; /* outbound: the connect completed (requests may have left) */
    bool dead;
    TAILQ_HEAD(, pending) pending;
    LIST_ENTRY(peer_link) next;
    struct evbuffer *cork; /* frames of this turn, written by flush() */
    uint32_t cork_frames;
    bool dirty;            /* on t->dirty */
    LIST_ENTRY(peer_link) dnext;
};

struct transport {
    struct event_base *base;
    struct evconnlistener *listener;
    size_t max_frame;
    peer_request_fn on_request;
    void *arg;
    uint64_t next_id;
    pending_t *buckets[PENDING_BUCKETS];
    LIST_HEAD(, dest) dests;
    LIST_HEAD(, peer_link) links;
    LIST_HEAD(, peer_link) dead;
    struct event *reaper;
    struct event *flusher; /* writes the corks of this turn */
    LIST_HEAD(, peer_link) dirty;
    uint8_t key[FRAME_KEY_LEN];
    bool keyed;   /* frames are authenticated with key */
    msgpack_zone *zone; /* every received frame is unpacked here, one at a time */
    bool drop;
    uint8_t stall_type; /* fault injection: requests of this type are never answered (0: none) */
    bool closing; /* transport_close is running: refuse new requests */
    transport_stats_t stats;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- pending requests ---- */

static pending_t **bucket(transport_t *t, uint64_t id)
{
    return &t->buckets[id % PENDING_BUCKETS];
}

static void pending_unhash(transport_t *t, pending_t *p)
{
    for (pending_t **pp = bucket(t, p->id); *pp; pp = &(*pp)->hnext)
        if (*pp == p) {
            *pp = p->hnext;
            break;
        }
}

/* Detach p from everything and run its callback once. */
static void pending_finish(transport_t *t, pending_t *p, int status, const frame_t *f)
{
    pending_unhash(t, p);
    if (p->link)
        TAILQ_REMOVE(&p->link->pending, p, lnext);
    event_free(p->timer);
    t->stats.pending--;
    peer_reply_fn cb = p->cb;
    void *arg = p->arg;
    free(p);
    cb(arg, status, f);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pending_t *p = arg;
    int status = p->fail_status ? p->fail_status : -ETIMEDOUT;
    if (status == -ETIMEDOUT)
        p->t->stats.timeouts++;
    pending_finish(p->t, p, status, NULL);
}

/* Allocate, hash and arm a pending request (link may be NULL: a request
 * that failed before it left reports fail_status from the loop). */
static pending_t *pending_new(transport_t *t, peer_link_t *link, int fail_status, int timeout_ms,
                              peer_reply_fn cb, void *arg)
{
    pending_t *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->t = t;
    p->id = ++t->next_id;
    p->cb = cb;
    p->arg = arg;
    p->link = link;
    p->fail_status = fail_status;
    p->timer = evtimer_new(t->base, on_deadline, p);
    if (!p->timer) {
        free(p);
        return NULL;
    }
    p->hnext = *bucket(t, p->id);
    *bucket(t, p->id) = p;
    if (link)
        TAILQ_INSERT_TAIL(&link->pending, p, lnext);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evtimer_add(p->timer, &tv);
    t->stats.pending++;
    return p;
}

static int pending_new_failed(transport_t *t, int status, peer_reply_fn cb, void *arg)
{
    return pending_new(t, NULL, status, 0, cb, arg) ? 0 : -ENOMEM;
}

/* ---- links ---- */

static void reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    transport_t *t = arg;
    peer_link_t *l;
    peer_link_t *n;
    for (l = LIST_FIRST(&t->dead); l; l = n) {
        n = LIST_NEXT(l, next);
        if (l->refs > 0)
            continue; /* freed by the last transport_link_release */
        LIST_REMOVE(l, next);
        bufferevent_free(l->bev);
        evbuffer_free(l->cork);
        free(l);
    }
}

static void link_kill(peer_link_t *l, int status)
{
    if (l->dead)
        return;
    transport_t *t = l->t;
    l->dead = true;
    bufferevent_disable(l->bev, EV_READ | EV_WRITE);
    if (l->dirty) {
        LIST_REMOVE(l, dnext);
        l->dirty = false;
    }
    evbuffer_drain(l->cork, evbuffer_get_length(l->cork));
    LIST_REMOVE(l, next);
    LIST_INSERT_HEAD(&t->dead, l, next);
    if (l->dest && l->dest->link == l) {
        dest_t *d = l->dest;
        d->link = NULL;
        d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : BACKOFF_MIN_MS;
        if (d->backoff_ms > BACKOFF_MAX_MS)
            d->backoff_ms = BACKOFF_MAX_MS;
        d->retry_at_ms = now_ms() + d->backoff_ms;
    }
    event_active(t->reaper, EV_TIMEOUT, 0);
    pending_t *p;
    while ((p = TAILQ_FIRST(&l->pending)))
        pending_finish(t, p, status, NULL);
}

static void dispatch(peer_link_t *l, frame_t *f)
{
    transport_t *t = l->t;
    if (f->kind == FRAME_RESPONSE) {
        for (pending_t *p = *bucket(t, f->req_id); p; p = p->hnext)
            if (p->id == f->req_id && p->link == l) {
                pending_finish(t, p, 0, f);
                return;
            }
        return; /* late reply after its deadline: ignore */
    }
    t->on_request(t->arg, l, f);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    peer_link_t *l = arg;
    transport_t *t = l->t;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (!l->dead) {
        size_t avail = evbuffer_get_length(in);
        uint8_t hdr[FRAME_HDR];
        if (avail < FRAME_HDR)
            return;
        evbuffer_copyout(in, hdr, FRAME_HDR);
        size_t plen = ((size_t)hdr[0] << 24) | ((size_t)hdr[1] << 16) | ((size_t)hdr[2] << 8) | hdr[3];
        if (plen > t->max_frame + FRAME_MAC_LEN) {
            t->stats.bad_frames++;
            log_warn("peer: frame of %zu bytes exceeds the limit; closing the connection", plen);
            link_kill(l, -ECONNRESET);
            return;
        }
        if (avail < FRAME_HDR + plen)
            return;
        const uint8_t *buf = evbuffer_pullup(in, (ssize_t)(FRAME_HDR + plen));
        frame_t f;
        size_t used = 0;
        int rc = buf ? frame_parse_in(buf, FRAME_HDR + plen, t->max_frame,
                                      t->keyed ? t->key : NULL, &f, &used, t->zone)
                     : -ENOMEM;
        if (rc != 1) {
            t->stats.bad_frames++;
            log_warn("peer: malformed frame (%d); closing the connection", rc);
            link_kill(l, -ECONNRESET);
            return;
        }
        /* the decoded body points into the buffer: drain only after use
         * (a link killed during dispatch keeps its buffer until the reaper) */
        if (t->drop || (t->stall_type && f.kind == FRAME_REQUEST && f.type == t->stall_type)) {
            t->stats.dropped++;
        } else {
            t->stats.frames_in++;
            dispatch(l, &f);
        }
        frame_release(&f);
        evbuffer_drain(in, used);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    peer_link_t *l = arg;
    if (what & BEV_EVENT_CONNECTED) {
        l->t->stats.connects++;
        l->connected = true;
        if (l->dest)
            l->dest->backoff_ms = 0;
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        /* a connect that failed: nothing was sent, say so to the requests */
        bool refused = l->dest && !l->connected;
        if (refused)
            l->t->stats.connect_failures++;
        link_kill(l, refused ? -ECONNREFUSED : -ECONNRESET);
    }
}

static peer_link_t *link_new(transport_t *t, struct bufferevent *bev)
{
    peer_link_t *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->cork = evbuffer_new();
    if (!l->cork) {
        free(l);
        return NULL;
    }
    l->t = t;
    l->bev = bev;
    TAILQ_INIT(&l->pending);
    LIST_INSERT_HEAD(&t->links, l, next);
    bufferevent_setcb(bev, on_read, NULL, on_event, l);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return l;
}

static void on_accept(struct evconnlistener *ls, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)ls;
    (void)sa;
    (void)salen;
    transport_t *t = arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct bufferevent *bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev || !link_new(t, bev)) {
        if (bev)
            bufferevent_free(bev);
        else
            evutil_closesocket(fd);
    }
}

static dest_t *dest_get(transport_t *t, const char *host, int port)
{
    dest_t *d;
    LIST_FOREACH(d, &t->dests, next)
    if (d->port == port && !strcmp(d->host, host))
        return d;
    if (strlen(host) >= sizeof(d->host))
        return NULL;
    d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    snprintf(d->host, sizeof(d->host), "%s", host);
    d->port = port;
    LIST_INSERT_HEAD(&t->dests, d, next);
    return d;
}

/* The live outbound link to d, connecting if allowed; NULL with *status. */
static peer_link_t *dest_link(transport_t *t, dest_t *d, int *status)
{
    if (d->link)
        return d->link;
    if (now_ms() < d->retry_at_ms) {
        *status = -ECONNREFUSED;
        return NULL;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    if (inet_pton(AF_INET, d->host, &sin.sin_addr) != 1) {
        *status = -EINVAL;
        return NULL;
    }
    struct bufferevent *bev = bufferevent_socket_new(t->base, -1, BEV_OPT_CLOSE_ON_FREE);
    peer_link_t *l = bev ? link_new(t, bev) : NULL;
    if (!l) {
        if (bev)
            bufferevent_free(bev);
        *status = -ENOMEM;
        return NULL;
    }
    l->dest = d;
    d->link = l;
    if (bufferevent_socket_connect(bev, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
        t->stats.connect_failures++;
        link_kill(l, -ECONNREFUSED);
        *status = -ECONNREFUSED;
        return NULL;
    }
    evutil_socket_t fd = bufferevent_getfd(bev);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return l;
}

/* The end of a loop turn: write every link's cork (see the file header). */
static void flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    transport_t *t = arg;
    peer_link_t *l;
    while ((l = LIST_FIRST(&t->dirty))) {
        LIST_REMOVE(l, dnext);
        l->dirty = false;
        t->stats.writes++;
        t->stats.frames_written += l->cork_frames;
        l->cork_frames = 0;
        struct evbuffer *out = bufferevent_get_output(l->bev);
        evutil_socket_t s = bufferevent_getfd(l->bev);
        if (evbuffer_get_length(out) == 0 && s >= 0 &&
            evbuffer_write(l->cork, s) < 0 && errno != EAGAIN && errno != EINTR) {
            link_kill(l, -ECONNRESET); /* the bufferevent would find out next */
            continue;
        }
        if (evbuffer_get_length(l->cork) > 0) /* the socket's share for later */
            evbuffer_add_buffer(out, l->cork);
    }
}

/* One frame of body pieces body[0..n) onto the link: its head, the pieces
 * and the trailer go straight into the cork (or, still connecting, the
 * bufferevent), so the body is copied once, there. */
static int link_send_iov(peer_link_t *l, uint8_t type, uint8_t kind, uint64_t id, uint32_t ttl,
                         const struct iovec *body, int n)
{
    transport_t *t = l->t;
    if (evbuffer_get_length(bufferevent_get_output(l->bev)) + evbuffer_get_length(l->cork) >
        LINK_OUT_MAX)
        return -ENOBUFS;
    if (t->drop) {
        t->stats.dropped++;
        return 0;
    }
    uint8_t head[FRAME_HEAD_MAX], mac[FRAME_MAC_LEN];
    size_t hlen;
    int rc = frame_build_iov(head, &hlen, type, kind, id, ttl, body, n, t->keyed ? t->key : NULL,
                             mac);
    if (rc < 0)
        return rc;
    bool corked = !(l->dest && !l->connected);
    /* still connecting: the bufferevent sends it once connected */
    struct evbuffer *out = corked ? l->cork : bufferevent_get_output(l->bev);
    size_t before = evbuffer_get_length(out);
    rc = evbuffer_add(out, head, hlen);
    for (int i = 0; rc == 0 && i < n; i++)
        rc = evbuffer_add(out, body[i].iov_base, body[i].iov_len);
    if (rc == 0 && t->keyed)
        rc = evbuffer_add(out, mac, sizeof(mac));
    if (rc < 0) { /* no half frame left behind */
        struct evbuffer *keep = evbuffer_new();
        if (keep) {
            evbuffer_remove_buffer(out, keep, before);
            evbuffer_drain(out, evbuffer_get_length(out));
            evbuffer_add_buffer(out, keep);
            evbuffer_free(keep);
        }
        return -ENOMEM;
    }
    if (corked) {
        l->cork_frames++;
        if (!l->dirty) {
            l->dirty = true;
            LIST_INSERT_HEAD(&t->dirty, l, dnext);
            event_active(t->flusher, EV_TIMEOUT, 0);
        }
    }
    t->stats.frames_out++;
    return 0;
}

static int link_send(peer_link_t *l, uint8_t type, uint8_t kind, uint64_t id, uint32_t ttl,
                     const void *body, size_t blen)
{
    struct iovec v = {(void *)body, blen};
    return link_send_iov(l, type, kind, id, ttl, &v, blen ? 1 : 0);
}

int transport_request(transport_t *t, const char *host, int port, uint8_t type,
                      const void *body, size_t blen, int timeout_ms, peer_reply_fn cb, void *arg)
{
    struct iovec v = {(void *)body, blen};
    return transport_request_iov(t, host, port, type, &v, blen ? 1 : 0, timeout_ms, cb, arg);
}

int transport_request_iov(transport_t *t, const char *host, int port, uint8_t type,
                          const struct iovec *body, int nbody, int timeout_ms, peer_reply_fn cb,
                          void *arg)
{
    if (t->closing)
        return -ECANCELED;
    dest_t *d = dest_get(t, host, port);
    if (!d)
        return pending_new_failed(t, -EINVAL, cb, arg);
    int status = 0;
    peer_link_t *l = dest_link(t, d, &status);
    if (!l)
        return pending_new_failed(t, status, cb, arg);
    pending_t *p = pending_new(t, l, 0, timeout_ms, cb, arg);
    if (!p)
        return -ENOMEM;
    int rc = link_send_iov(l, type, FRAME_REQUEST, p->id, (uint32_t)timeout_ms, body, nbody);
    if (rc < 0) { /* report from the loop, like every other failure */
        TAILQ_REMOVE(&l->pending, p, lnext);
        p->link = NULL;
        p->fail_status = rc;
        struct timeval now = {0, 0};
        evtimer_add(p->timer, &now);
    }
    return 0;
}

int transport_oneway(transport_t *t, const char *host, int port, uint8_t type, const void *body,
                     size_t blen)
{
    if (t->closing)
        return -ECANCELED;
    dest_t *d = dest_get(t, host, port);
    int status = -EINVAL;
    peer_link_t *l = d ? dest_link(t, d, &status) : NULL;
    if (!l)
        return status;
    return link_send(l, type, FRAME_ONEWAY, 0, 0, body, blen);
}

int transport_reply(peer_link_t *l, uint64_t req_id, uint8_t type, const void *body, size_t blen)
{
    if (l->dead)
        return -EPIPE;
    return link_send(l, type, FRAME_RESPONSE, req_id, 0, body, blen);
}

int transport_reply_iov(peer_link_t *l, uint64_t req_id, uint8_t type, const struct iovec *body,
                        int nbody)
{
    if (l->dead)
        return -EPIPE;
    return link_send_iov(l, type, FRAME_RESPONSE, req_id, 0, body, nbody);
}

void transport_link_hold(peer_link_t *l) { l->refs++; }

void transport_link_release(peer_link_t *l)
{
    if (--l->refs == 0 && l->dead) {
        LIST_REMOVE(l, next);
        bufferevent_free(l->bev);
        evbuffer_free(l->cork);
        free(l);
    }
}

void transport_peer_alive(transport_t *t, const char *host, int port)
{
    dest_t *d;
    LIST_FOREACH(d, &t->dests, next)
    if (d->port == port && !strcmp(d->host, host)) {
        d->backoff_ms = 0;
        d->retry_at_ms = 0;
    }
}

void transport_set_drop(transport_t *t, bool drop)
{
    t->drop = drop;
    if (drop) { /* a cut also breaks the connections that were open */
        peer_link_t *l, *n;
        for (l = LIST_FIRST(&t->links); l; l = n) {
            n = LIST_NEXT(l, next);
            link_kill(l, -ECONNRESET);
        }
    }
}

bool transport_dropping(const transport_t *t) { return t->drop; }

void transport_set_stall(transport_t *t, uint8_t type) { t->stall_type = type; }

void transport_get_stats(const transport_t *t, transport_stats_t *out) { *out = t->stats; }

int transport_open(const transport_opts_t *o, transport_t **out, char *err, size_t errlen)
{
    transport_t *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->base = o->base;
    t->max_frame = o->max_frame ? o->max_frame : FRAME_MAX_DEFAULT;
    t->on_request = o->on_request;
    t->arg = o->arg;
    if (o->secret && *o->secret) {
        if (frame_key(o->secret, t->key) < 0) {
            snprintf(err, errlen, "cannot start the crypto library for node.cluster_secret");
            transport_close(t);
            return -EINVAL;
        }
        t->keyed = true;
    }
    LIST_INIT(&t->dests);
    LIST_INIT(&t->links);
    LIST_INIT(&t->dead);
    LIST_INIT(&t->dirty);
    t->reaper = event_new(t->base, -1, 0, reap, t);
    t->flusher = event_new(t->base, -1, 0, flush, t);
    t->zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (!t->zone) {
        snprintf(err, errlen, "out of memory");
        transport_close(t);
        return -ENOMEM;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (!t->reaper || !t->flusher || inet_pton(AF_INET, o->host, &sin.sin_addr) != 1) {
        snprintf(err, errlen, "bad peer address %s", o->host);
        transport_close(t);
        return -EINVAL;
    }
    t->listener = evconnlistener_new_bind(t->base, on_accept, t,
                                          LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 128,
                                          (struct sockaddr *)&sin, sizeof(sin));
    if (!t->listener) {
        snprintf(err, errlen, "cannot listen on peer port %s:%d: %s", o->host, o->port,
                 strerror(errno));
        transport_close(t);
        return -EADDRINUSE;
    }
    *out = t;
    return 0;
}

void transport_close(transport_t *t)
{
    if (!t)
        return;
    t->closing = true;
    if (t->listener)
        evconnlistener_free(t->listener);
    peer_link_t *l;
    while ((l = LIST_FIRST(&t->links)))
        link_kill(l, -ECANCELED);
    /* requests that failed before sending still hold timers */
    for (int i = 0; i < PENDING_BUCKETS; i++)
        while (t->buckets[i])
            pending_finish(t, t->buckets[i], -ECANCELED, NULL);
    if (t->reaper) {
        reap(-1, 0, t);
        event_free(t->reaper);
    }
    if (t->flusher)
        event_free(t->flusher);
    dest_t *d;
    while ((d = LIST_FIRST(&t->dests))) {
        LIST_REMOVE(d, next);
        free(d);
    }
    if (t->zone)
        msgpack_zone_free(t->zone);
    free(t);
}
