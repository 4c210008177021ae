/*
 * conn.c - client connections: accept, the text-protocol state machine,
 * replies, backpressure, and closing at a safe point.
 *
 *   socket ──recv──> input ──> CS_CMD ──(storage cmd)──> CS_DATA ──> coord_write ─> CS_WAIT
 *                           │   └─(rejected)──────> CS_SWALLOW                  │
 *                           │                        └─(set too large: delete)──┤
 *                           ├─(delete, incr...)──────────────> coord_write ─────┤
 *                           ├─(get/gat)─> CS_MGET: windows of MGET_WINDOW keys  │
 *                           │              in flight at once, replies in order  │
 *                           └─(get line > 64 KiB)─> CS_MSTREAM: the same        │
 *                                windows, read from the line as it arrives      │
 *                                (an error in it: CS_SKIPLINE to its end)       │
 *             CS_CMD <── the coordinator's callback writes the reply ───────────┘
 *
 * While a command waits for its replicas the connection starts nothing
 * more (replies must come in order) and reads only a bounded read-ahead
 * (see Admission below); the callback resumes it.  A callback that arrives after the connection died finds its
 * ticket detached and only frees it.
 *
 * Every line is bounded (CONN_MAX_LINE) before it is parsed; a data block
 * is bounded by node.max_value_bytes.  Lines are parsed in place in the
 * input buffer (evbuffer_pullup) and drained after the command ran.  The
 * one exception is a get/gets/gat/gats line longer than CONN_MAX_LINE:
 * memcached answers multi-gets of any length, so such a line is read a
 * token at a time (CS_MSTREAM) and never held whole; only one window of
 * keys (MGET_WINDOW copies of at most MC_KEY_MAX bytes) is kept.
 *
 * A storage command that is rejected once its line announced a valid data
 * block (bad option, level above n, bad context, too large) swallows the
 * block, so the data is never read as a command.  Error lines obey noreply
 * as memcached's out_string does (proto.h says when).
 *
 * Backpressure: when a connection's output passes CONN_OUT_HIGH the
 * connection stops reading and stops executing (even between the keys of
 * one multi-get) until the socket drains below CONN_OUT_LOW, so a client
 * that does not read cannot make the server buffer without bound.
 *
 * I/O: a readable event reads CONN_READ_FIRST bytes into the input
 * evbuffer, and more (CONN_READ_CHUNK at a time, up to CONN_READ_MORE
 * reads) only if that filled up;
 * replies are staged in the connection's obuf (the output evbuffer takes
 * over, in order, for what does not fit or while the socket is full) and
 * written as soon as a batch of commands has run (conn_flush); only a
 * partial write arms the writable event.  While
 * a command waits for its replicas the readable event stays armed (taking
 * it out and putting it back costs two epoll_ctl per request): see
 * Admission below for where what comes meanwhile goes.
 *
 * Connections are never freed inside their own callbacks: conn_kill()
 * moves them to srv->dead and the reaper event frees them on the next loop
 * iteration.
 *
 * Admission (admit.h): every read is stamped with the time the kernel
 * received its newest bytes (SO_TIMESTAMPNS), so time spent in the socket
 * buffer counts; a data command parsed more than server.queue_timeout_ms
 * after the read that completed its line, or while server.max_inflight
 * requests are in flight, is
 * answered "SERVER_ERROR busy" without being run (a storage command's data
 * block is swallowed); noreply requests are never refused (the client
 * would never know), they wait their turn.  So that a connection's pipelined requests are
 * stamped when they arrive, not when the one before them is answered, a
 * connection keeps reading while a command waits for its replicas, up to
 * CONN_READAHEAD bytes (past that, TCP pushes back and the kernel's stamp
 * still tells the wait), into a buffer of its own (`ahead`: a multi-get's
 * keys point into the input buffer, which must not move), appended to the
 * input once the command is done.  An end of input that arrives meanwhile closes the
 * connection once what was read before it is answered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/version.h"
#include "../ring/ring.h"
#include "../storage/objcache.h"
#include "aae.h"
#include "coord.h"
#include "handoff.h"
#include "kv.h"
#include "msg.h"
#include "node.h"
#include "server.h"
#include "transfer.h"

#define CONN_MAX_LINE (64 * 1024)
#define CONN_MAX_KEYS (CONN_MAX_LINE / 2)
#define CONN_OUT_HIGH (1024 * 1024)
#define CONN_OUT_LOW (256 * 1024)
#define MGET_WINDOW 32
#define CONN_CTX_MAX 1000      /* entries of a ctx= vector (~38 KB of text) */
#define MSTREAM_LOOK 512       /* lookahead for one token of a streamed line:
                                  more than any key, level or exptime */
#define CONN_READAHEAD (64 * 1024) /* input read while a command waits */
#define CONN_STAMPS 32         /* arrival stamps of unconsumed input (reads) */
#define CONN_OBUF 1536         /* replies staged before the output buffer (out_add) */

static const char busy_line[] = "SERVER_ERROR busy\r\n"; /* admit.h refused it */

enum conn_state {
    CS_CMD, CS_DATA, CS_SWALLOW, CS_MGET, CS_MSTREAM, CS_SKIPLINE, CS_WAIT, CS_CLOSING
};

/* CS_MSTREAM: a get line too long to hold, read as it arrives.  Options
 * (r=/w=) must come before its first key: by then the keys already started
 * were read at the levels in force. */
typedef struct mstream {
    char kbuf[MGET_WINDOW][MC_KEY_MAX];
    mc_key_t keys[MGET_WINDOW]; /* the window: into kbuf */
    size_t nfill;               /* keys read into the window, not started yet */
    bool have_exp;              /* gat/gats: the exptime was read */
    bool any_key;
    bool eol;                   /* the end of the line was read */
    bool failed;                /* errline ends the reply */
    char errline[128];
} mstream_t;

struct conn;

/* A coordinator callback's handle on its connection. */
typedef struct ticket {
    struct conn *c; /* NULL once the connection died */
    server_t *srv;  /* in-flight accounting outlives the connection */
    int slot;       /* multi-get window slot, or -1 */
    struct ticket *next_spare; /* on srv->tickets */
} ticket_t;

#define TICKETS_SPARE 256 /* spare tickets kept for reuse (one malloc and free less per request) */

typedef struct mget_slot {
    coord_result_t res; /* the key's answer, once its callback ran */
    bool written;       /* its VALUE (or nothing, a miss) is already in the output */
} mget_slot_t;

typedef struct conn {
    TAILQ_ENTRY(conn) link;
    server_t *srv;
    evutil_socket_t fd;
    struct event *rev, *wev; /* readable (while reading is on), writable (while a write is partial) */
    struct evbuffer *in, *out;
    struct evbuffer *ahead; /* read while a command waits: appended to in after it */
    bool read_on;
    enum conn_state state;
    bool paused; /* output over the high watermark: not reading, not executing */
    bool dead;   /* on srv->dead, waiting for the reaper */
    mc_request_t req; /* the storage command waiting for its data block */
    char key[MC_KEY_MAX];
    size_t klen;
    uint64_t swallow; /* CS_SWALLOW: bytes still to discard */
    /* CS_MGET: the keys point into the line, still at the head of input */
    mc_key_t *mkeys;
    mc_key_t mkeys_inline[4];
    size_t mkeys_n, mkeys_next, mline_len;
    size_t win_first, win_n;  /* the window of keys in flight */
    const mc_key_t *win_keys; /* its keys (into the line, or the stream's window) */
    size_t win_out;           /* its first win_out keys' answers are written */
    int inflight;
    bool starting;            /* inside the loop that starts a window */
    mget_slot_t slots[MGET_WINDOW];
    ticket_t *tickets[MGET_WINDOW + 1]; /* in flight; [MGET_WINDOW] for single ops */
    int mget_r, mget_w;
    bool in_process;          /* conn_process is on the stack */
    bool write_on;            /* wev armed: a partial write waits for the socket */
    mc_level_t dflt_r, dflt_w; /* `consistency` for this connection */
    /* ctx= of the command being run, from its line until coord_write (which
     * copies it): across CS_DATA for a set.  Owned; ctx_clear() frees. */
    vclock_t ctx;
    bool has_ctx;
    bool delete_after_swallow; /* a set too large: delete the key once its data is gone */
    mstream_t *ms;             /* CS_MSTREAM */
    /* arrival of the input not consumed yet: per read, the input offset
     * where it ends and its stamp (admit_now_us clock), oldest first */
    struct { uint64_t end; int64_t us; } stamps[CONN_STAMPS];
    int st_first, st_n;
    uint64_t in_added, in_used; /* bytes ever read into / consumed from input */
    bool eof;                   /* the client closed its side */
    admit_queue_t aq;           /* when its input was last drained (admit.h) */
    /* replies not written yet, while they fit and out is empty (no chain
     * malloc, one send); out takes over in order once they do not */
    size_t olen;
    char obuf[CONN_OBUF];
} conn_t;

static void conn_process(conn_t *c);

/* ---- lifecycle ---- */

static void reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    server_t *srv = arg;
    conn_t *c;
    while ((c = TAILQ_FIRST(&srv->dead))) {
        TAILQ_REMOVE(&srv->dead, c, link);
        event_free(c->rev);
        event_free(c->wev);
        evbuffer_free(c->in);
        evbuffer_free(c->ahead);
        evbuffer_free(c->out);
        evutil_closesocket(c->fd);
        if (c->mkeys != c->mkeys_inline)
            free(c->mkeys);
        for (int i = 0; i < MGET_WINDOW; i++)
            obj_free(&c->slots[i].res.obj);
        vc_free(&c->ctx);
        free(c->ms);
        free(c);
    }
}

static void conn_kill(conn_t *c)
{
    if (c->dead)
        return;
    c->dead = true;
    for (int i = 0; i <= MGET_WINDOW; i++) /* callbacks still to come find no connection */
        if (c->tickets[i]) {
            c->tickets[i]->c = NULL;
            c->tickets[i] = NULL;
        }
    event_del(c->rev);
    event_del(c->wev);
    TAILQ_REMOVE(&c->srv->conns, c, link);
    TAILQ_INSERT_TAIL(&c->srv->dead, c, link);
    c->srv->curr_conns--;
    event_active(c->srv->reaper, EV_TIMEOUT, 0);
}

static void read_set(conn_t *c, bool on)
{
    if (c->read_on == on || c->dead)
        return;
    c->read_on = on;
    if (on)
        event_add(c->rev, NULL);
    else
        event_del(c->rev);
}

/* Write the pending replies straight to the socket; only what the socket
 * would not take waits for a writable event (one epoll_ctl then, none in
 * the common case). */
static void conn_flush(conn_t *c)
{
    if (c->dead || c->write_on)
        return;
    if (c->olen > 0) { /* out is empty: the staged replies are all there is */
        ssize_t n = send(c->fd, c->obuf, c->olen, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_kill(c);
            return;
        }
        size_t sent = n > 0 ? (size_t)n : 0;
        if (sent < c->olen)
            evbuffer_add(c->out, c->obuf + sent, c->olen - sent);
        c->olen = 0;
    } else if (evbuffer_get_length(c->out) == 0) {
        return;
    } else if (evbuffer_write(c->out, c->fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
               errno != EINTR) {
        conn_kill(c); /* the peer is gone */
        return;
    }
    if (evbuffer_get_length(c->out) > 0) {
        c->write_on = true;
        event_add(c->wev, NULL);
    }
}

/* Close after the pending output has been written. */
static void conn_close_after_write(conn_t *c)
{
    c->state = CS_CLOSING;
    read_set(c, false);
    conn_flush(c);
    if (!c->dead && evbuffer_get_length(c->out) == 0)
        conn_kill(c);
}

void conn_close_all(server_t *srv)
{
    conn_t *c;
    while ((c = TAILQ_FIRST(&srv->conns)))
        conn_kill(c);
    reap(-1, 0, srv);
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    if (srv->reaper) {
        event_free(srv->reaper);
        srv->reaper = NULL;
    }
    free(srv->keybuf);
    srv->keybuf = NULL;
    ticket_t *t;
    while ((t = srv->tickets)) {
        srv->tickets = t->next_spare;
        free(t);
    }
    srv->ntickets = -1; /* tickets of requests still in flight are freed when taken */
}

/* ---- output ---- */

/* Output in order: staged in obuf while out is empty and it fits (the
 * common small reply), else after what obuf holds, in out. */
static void out_add(conn_t *c, const void *p, size_t n)
{
    c->srv->stats.bytes_written += n;
    if (c->olen + n <= sizeof(c->obuf) && evbuffer_get_length(c->out) == 0) {
        memcpy(c->obuf + c->olen, p, n);
        c->olen += n;
        return;
    }
    if (c->olen > 0) {
        evbuffer_add(c->out, c->obuf, c->olen);
        c->olen = 0;
    }
    evbuffer_add(c->out, p, n);
}

static void out_str(conn_t *c, const char *s)
{
    out_add(c, s, strlen(s));
}

/* A short formatted reply (at most 1 KiB; longer text goes through out_str). */
static void out_fmt(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_fmt(conn_t *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    out_add(c, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* " <v>" in decimal at p; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    char tmp[20];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    *p++ = ' ';
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* Values up to this size leave in one piece with their VALUE line. */
#define OUT_VALUE_INLINE 4096

/* "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n", formatted by hand
 * (snprintf was a tenth of a get's instructions) and, for small values,
 * added to the output in one piece. */
static void out_value(conn_t *c, const void *key, size_t klen, const sibling_t *s, bool with_cas,
                      uint64_t cas)
{
    char buf[MC_KEY_MAX + 80 + OUT_VALUE_INLINE];
    char *p = buf;
    memcpy(p, "VALUE ", 6);
    p += 6;
    memcpy(p, key, klen);
    p += klen;
    p = put_u64(p, s->flags);
    p = put_u64(p, s->len);
    if (with_cas)
        p = put_u64(p, cas);
    *p++ = '\r';
    *p++ = '\n';
    if (s->len <= OUT_VALUE_INLINE) {
        if (s->len)
            memcpy(p, s->value, s->len);
        p += s->len;
        *p++ = '\r';
        *p++ = '\n';
        out_add(c, buf, (size_t)(p - buf));
        return;
    }
    out_add(c, buf, (size_t)(p - buf));
    out_add(c, s->value, s->len);
    out_add(c, "\r\n", 2);
}

static bool out_full(conn_t *c)
{
    return evbuffer_get_length(c->out) + c->olen > CONN_OUT_HIGH;
}

static void out_storage_error(conn_t *c)
{
    out_str(c, "SERVER_ERROR storage failure\r\n");
}

/* ---- commands ---- */

/* Resolve the request's levels (or the connection's defaults) to the
 * number of replicas that must answer; -1 for a level above cluster.n. */
static void levels(conn_t *c, const mc_request_t *req, int *r, int *w)
{
    const config_t *cfg = &c->srv->cfg;
    *r = mc_level_resolve(req->r.kind ? req->r : c->dflt_r, cfg->n, cfg->r);
    *w = mc_level_resolve(req->w.kind ? req->w : c->dflt_w, cfg->n, cfg->w);
}

static int levels_error(conn_t *c, char *buf, size_t cap)
{
    return snprintf(buf, cap, "CLIENT_ERROR consistency level exceeds replication factor n=%d\r\n",
                    c->srv->cfg.n);
}

/* Reject a request whose levels exceed cluster.n (CLIENT_ERROR sent unless
 * noreply). */
static bool check_levels(conn_t *c, const mc_request_t *req)
{
    int r, w;
    levels(c, req, &r, &w);
    if (r < 0 || w < 0) {
        char buf[128];
        levels_error(c, buf, sizeof(buf));
        if (!req->noreply)
            out_str(c, buf);
        return false;
    }
    return true;
}

static void ctx_clear(conn_t *c)
{
    vc_free(&c->ctx);
    c->has_ctx = false;
}

static void count_get(server_t *srv, enum mc_cmd cmd, bool hit)
{
    srv->stats.cmd_get++;
    if (cmd == MC_GAT || cmd == MC_GATS) {
        srv->stats.cmd_touch++;
        if (hit)
            srv->stats.touch_hits++;
        else
            srv->stats.touch_misses++;
    }
    if (hit)
        srv->stats.get_hits++;
    else
        srv->stats.get_misses++;
}

static ticket_t *ticket_new(conn_t *c, int slot)
{
    server_t *srv = c->srv;
    ticket_t *t = srv->tickets;
    if (t) {
        srv->tickets = t->next_spare;
        srv->ntickets--;
    } else if (!(t = malloc(sizeof(*t)))) {
        return NULL;
    }
    t->c = c;
    t->srv = c->srv;
    t->slot = slot;
    c->tickets[slot < 0 ? MGET_WINDOW : slot] = t;
    admit_begin(c->srv); /* every ticket is one request in flight */
    return t;
}

/* The connection behind a finished ticket (NULL if it died); frees it. */
static conn_t *ticket_take(ticket_t *t)
{
    conn_t *c = t->c;
    if (c)
        c->tickets[t->slot < 0 ? MGET_WINDOW : t->slot] = NULL;
    server_t *srv = t->srv;
    admit_end(srv);
    if (srv->ntickets >= 0 && srv->ntickets < TICKETS_SPARE) {
        t->next_spare = srv->tickets;
        srv->tickets = t;
        srv->ntickets++;
    } else {
        free(t);
    }
    return c;
}

static void out_quorum_error(conn_t *c, const coord_result_t *res)
{
    if (res->status == COORD_QUORUM)
        out_fmt(c, "SERVER_ERROR quorum not reached: %d of %d\r\n", res->got, res->needed);
    else if (res->status == COORD_BUSY)
        out_str(c, busy_line);
    else
        out_storage_error(c);
}

/* A command that waited is answered: go on with the next one. */
static void conn_resume(conn_t *c)
{
    if (c->in_process)
        return; /* answered synchronously: conn_process's loop goes on */
    conn_process(c);
}

static void out_hit(conn_t *c, const mc_key_t *k, const obj_t *o);

static void on_mget_done(void *arg, coord_result_t *res)
{
    ticket_t *t = arg;
    int slot = t->slot;
    conn_t *c = ticket_take(t);
    if (!c)
        return;
    mget_slot_t *s = &c->slots[slot];
    if (res->view && res->status == COORD_OK && (size_t)slot == c->win_out) {
        /* read here, without a copy, and every key before it is written:
         * its answer goes out now (a get: gat's answers are never views) */
        bool hit = obj_live(res->view);
        count_get(c->srv, c->req.cmd, hit);
        if (hit)
            out_hit(c, &c->win_keys[slot], res->view);
        s->written = true;
        c->win_out++;
    } else if (res->view) { /* a key before it still waits: keep a copy */
        s->res = *res;
        s->res.view = NULL;
        obj_init(&s->res.obj);
        if (obj_copy(&s->res.obj, res->view) < 0)
            s->res.status = -ENOMEM;
    } else {
        s->res = *res;
        obj_init(&res->obj); /* taken */
    }
    c->inflight--;
    if (c->inflight == 0 && !c->starting)
        conn_resume(c);
}

static void mget_start_key(conn_t *c, int slot, const mc_key_t *k)
{
    server_t *srv = c->srv;
    mget_slot_t *s = &c->slots[slot];
    obj_free(&s->res.obj);
    memset(s, 0, sizeof(*s));
    obj_init(&s->res.obj);
    ticket_t *t = ticket_new(c, slot);
    c->inflight++;
    if (!t) {
        s->res.status = -ENOMEM;
        c->inflight--;
        return;
    }
    if (c->req.cmd == MC_GAT || c->req.cmd == MC_GATS) {
        kv_op_t op = {.cmd = c->req.cmd,
                      .expiry = kv_expiry(c->req.exptime, node_now_us() / 1000000)};
        coord_write(srv, &op, k->ptr, k->len, c->mget_r, c->mget_w, on_mget_done, t);
    } else {
        coord_get_borrow(srv, k->ptr, k->len, c->mget_r, on_mget_done, t);
    }
}

/* The VALUE block of key k, whose object o is live. */
static void out_hit(conn_t *c, const mc_key_t *k, const obj_t *o)
{
    bool with_cas = c->req.cmd == MC_GETS || c->req.cmd == MC_GATS;
    out_value(c, k->ptr, k->len, obj_winner(o), with_cas,
              with_cas ? kv_cas_token(k->ptr, k->len, &o->vc) : 0);
}

/* Write out a finished window (win_keys[0..win_n)) but for the answers
 * on_mget_done wrote already; false when a key failed (reply ended). */
static bool mget_output(conn_t *c)
{
    bool gat = c->req.cmd == MC_GAT || c->req.cmd == MC_GATS;
    for (size_t i = 0; i < c->win_n; i++) {
        mget_slot_t *s = &c->slots[i];
        if (s->written)
            continue; /* on_mget_done did, in order */
        if (s->res.status != COORD_OK) {
            out_quorum_error(c, &s->res);
            return false;
        }
        bool hit = s->res.found && obj_live(&s->res.obj) && (!gat || s->res.result == KV_TOUCHED);
        count_get(c->srv, c->req.cmd, hit);
        if (hit)
            out_hit(c, &c->win_keys[i], &s->res.obj);
        obj_free(&s->res.obj);
    }
    return true;
}

/* Drive a multi-key read: start a window, wait, output, next window.
 * Returns true when the command is finished. */
static bool mget_drive(conn_t *c)
{
    for (;;) {
        if (c->win_n > 0) {
            if (c->inflight > 0)
                return false; /* answers still to come */
            bool ok = mget_output(c);
            c->win_n = 0;
            if (!ok)
                return true;
            if (c->mkeys_next < c->mkeys_n && out_full(c))
                return false; /* conn_process pauses; the write callback resumes */
        }
        if (c->mkeys_next == c->mkeys_n) {
            out_str(c, "END\r\n");
            return true;
        }
        c->win_first = c->mkeys_next;
        c->win_n = c->mkeys_n - c->mkeys_next;
        if (c->win_n > MGET_WINDOW)
            c->win_n = MGET_WINDOW;
        c->mkeys_next += c->win_n;
        c->win_keys = c->mkeys + c->win_first;
        c->win_out = 0;
        c->starting = true;
        for (size_t i = 0; i < c->win_n; i++)
            mget_start_key(c, (int)i, &c->mkeys[c->win_first + i]);
        c->starting = false;
    }
}

static void do_mget(conn_t *c, size_t line_total)
{
    /* the keys point into the line, which stays at the head of the input
     * buffer (reading is off) until the command is done; the pointer array
     * itself is the server's scratch, so keep a copy */
    size_t n = c->req.nkeys;
    c->mkeys = n <= 4 ? c->mkeys_inline : malloc(n * sizeof(*c->mkeys));
    if (!c->mkeys) {
        out_str(c, "SERVER_ERROR out of memory\r\n");
        conn_close_after_write(c);
        return;
    }
    memcpy(c->mkeys, c->req.keys, n * sizeof(*c->mkeys));
    c->req.keys = NULL;
    c->mkeys_n = n;
    c->mkeys_next = 0;
    c->win_n = 0;
    c->inflight = 0;
    c->mline_len = line_total;
    levels(c, &c->req, &c->mget_r, &c->mget_w);
    c->state = CS_MGET;
}

static void reply_result(conn_t *c, enum kv_result res, uint64_t number)
{
    if (c->req.noreply)
        return;
    if (res == KV_NUMBER)
        out_fmt(c, "%llu\r\n", (unsigned long long)number);
    else
        out_str(c, kv_result_line(res));
}

static void count_result(server_t *srv, enum mc_cmd cmd, enum kv_result res)
{
    server_stats_t *s = &srv->stats;
    bool hit = res != KV_NOT_FOUND;
    switch (cmd) {
    case MC_SET: case MC_ADD: case MC_REPLACE: case MC_APPEND: case MC_PREPEND:
        s->cmd_set++;
        break;
    case MC_CAS:
        s->cmd_set++;
        if (res == KV_NOT_FOUND) s->cas_misses++;
        else if (res == KV_EXISTS) s->cas_badval++;
        else s->cas_hits++;
        break;
    case MC_DELETE: if (hit) s->delete_hits++; else s->delete_misses++; break;
    case MC_INCR: if (hit) s->incr_hits++; else s->incr_misses++; break;
    case MC_DECR: if (hit) s->decr_hits++; else s->decr_misses++; break;
    case MC_TOUCH:
        s->cmd_touch++;
        if (hit) s->touch_hits++; else s->touch_misses++;
        break;
    default: break;
    }
}

static void on_write_done(void *arg, coord_result_t *res)
{
    ticket_t *t = arg;
    conn_t *c = ticket_take(t);
    if (!c)
        return;
    bool noreply = c->req.noreply;
    if (res->status != COORD_OK) {
        if (!noreply)
            out_quorum_error(c, res);
    } else if (c->req.cmd == MC_FLUSH_ALL) {
        if (!noreply)
            out_str(c, "OK\r\n");
    } else {
        count_result(c->srv, c->req.cmd, res->result);
        reply_result(c, res->result, res->number);
    }
    c->state = CS_CMD;
    conn_resume(c);
}

/* Start a changing command; the connection waits in CS_WAIT for it. */
static void exec_write(conn_t *c, const mc_request_t *req, const void *key, size_t klen,
                       const uint8_t *data, size_t len)
{
    kv_op_t op = {.cmd = req->cmd, .flags = req->flags, .data = data, .len = len,
                  .cas = req->cas, .delta = req->delta};
    op.expiry = kv_expiry(req->exptime, node_now_us() / 1000000);
    int r, w;
    levels(c, req, &r, &w);
    c->req = *req;
    c->req.keys = NULL;
    ticket_t *t = ticket_new(c, -1);
    if (!t) {
        if (!req->noreply)
            out_str(c, "SERVER_ERROR out of memory\r\n");
        ctx_clear(c);
        return;
    }
    c->state = CS_WAIT;
    op.ctx = c->has_ctx ? &c->ctx : NULL;
    coord_write(c->srv, &op, key, klen, r, w, on_write_done, t);
    ctx_clear(c); /* coord_write copied it */
}

/* The delete that follows a set too large for the cache (memcached unlinks
 * the old item then, so nobody goes on reading the value the client meant
 * to replace).  It goes through the write path so the replicas agree; its
 * reply is the SERVER_ERROR line, whatever the delete found. */
static void on_too_large_done(void *arg, coord_result_t *res)
{
    (void)res;
    ticket_t *t = arg;
    conn_t *c = ticket_take(t);
    if (!c)
        return;
    if (!c->req.noreply)
        out_str(c, mc_parse_error_line(MC_ERR_TOO_LARGE));
    c->state = CS_CMD;
    conn_resume(c);
}

static void too_large_delete(conn_t *c)
{
    kv_op_t op = {.cmd = MC_DELETE};
    int r, w;
    levels(c, &c->req, &r, &w);
    ticket_t *t = ticket_new(c, -1);
    if (!t) {
        if (!c->req.noreply)
            out_str(c, mc_parse_error_line(MC_ERR_TOO_LARGE));
        ctx_clear(c);
        return;
    }
    c->state = CS_WAIT;
    op.ctx = c->has_ctx ? &c->ctx : NULL;
    coord_write(c->srv, &op, c->key, c->klen, r, w, on_too_large_done, t);
    ctx_clear(c); /* coord_write copied it */
}

static void on_siblings_done(void *arg, coord_result_t *res)
{
    ticket_t *t = arg;
    conn_t *c = ticket_take(t);
    if (!c)
        return;
    if (res->status != COORD_OK) {
        out_quorum_error(c, res);
    } else {
        uint64_t token = kv_cas_token(c->key, c->klen, &res->obj.vc);
        for (uint32_t i = 0; res->found && i < res->obj.nsib; i++)
            if (!res->obj.sib[i].tombstone)
                out_value(c, c->key, c->klen, &res->obj.sib[i], true, token);
        out_str(c, "END\r\n");
    }
    c->state = CS_CMD;
    conn_resume(c);
}

/* vget: every sibling of the merged object, tombstones included, then the
 * object's version vector as the context a later ctx= write supersedes. */
static void out_vget(conn_t *c, const coord_result_t *res)
{
    if (res->status != COORD_OK) {
        out_quorum_error(c, res);
        return;
    }
    /* the context first: a vector too long for the stack must not fail
     * half-way through the reply */
    char small[1024], *vv = small;
    size_t need = vc_format(&res->obj.vc, NULL, 0) + 1;
    if (need > sizeof(small) && !(vv = malloc(need))) {
        out_str(c, "SERVER_ERROR out of memory\r\n");
        return;
    }
    vc_format(&res->obj.vc, vv, need);
    for (uint32_t i = 0; i < res->obj.nsib; i++) {
        const sibling_t *s = &res->obj.sib[i];
        size_t len = s->tombstone ? 0 : s->len;
        out_fmt(c, "VALUE %.*s %u %zu %lld %s\r\n", (int)c->klen, c->key, s->flags, len,
                (long long)s->ts_us, s->tombstone ? "deleted" : "live");
        if (len)
            out_add(c, s->value, len);
        out_add(c, "\r\n", 2);
    }
    out_str(c, "CONTEXT ");
    out_str(c, vv);
    out_str(c, "\r\nEND\r\n");
    if (vv != small)
        free(vv);
}

static void on_vget_done(void *arg, coord_result_t *res)
{
    ticket_t *t = arg;
    conn_t *c = ticket_take(t);
    if (!c)
        return;
    out_vget(c, res);
    c->state = CS_CMD;
    conn_resume(c);
}

static void do_lget(conn_t *c, const mc_key_t *k)
{
    obj_t o;
    obj_init(&o);
    int rc = node_read(c->srv, k->ptr, k->len, &o);
    if (rc < 0) {
        out_storage_error(c);
        obj_free(&o);
        return;
    }
    uint64_t token = kv_cas_token(k->ptr, k->len, &o.vc);
    char vv[4096];
    size_t need = vc_format(&o.vc, vv, sizeof(vv));
    if (need >= sizeof(vv))
        snprintf(vv, sizeof(vv), "[...]");
    for (uint32_t i = 0; rc == 1 && i < o.nsib; i++) {
        const sibling_t *s = &o.sib[i];
        out_str(c, "SIBLING "); /* vv can outgrow out_fmt's line buffer */
        out_str(c, vv);
        out_fmt(c, " %lld %s\r\n", (long long)s->ts_us, s->tombstone ? "deleted" : "live");
        sibling_t shown = *s;
        if (s->tombstone)
            shown.len = 0;
        out_value(c, k->ptr, k->len, &shown, true, token);
    }
    out_str(c, "END\r\n");
    obj_free(&o);
}

static void do_stats(conn_t *c, const char *arg)
{
    server_t *srv = c->srv;
    server_stats_t *s = &srv->stats;
    if (arg && !strcmp(arg, "reset")) {
        int64_t items = s->curr_items, bytes = s->bytes;
        memset(s, 0, sizeof(*s));
        s->curr_items = items;
        s->bytes = bytes;
        memset(&srv->admit.stats, 0, sizeof(srv->admit.stats));
        srv->admit.inflight_peak = srv->admit.inflight;
        out_str(c, "RESET\r\n");
        return;
    }
    if (arg) {
        out_str(c, "ERROR\r\n");
        return;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int64_t now = node_now_us() / 1000000;
#define U(name, v) out_fmt(c, "STAT " name " %llu\r\n", (unsigned long long)(v))
#define I(name, v) out_fmt(c, "STAT " name " %lld\r\n", (long long)(v))
    I("pid", getpid());
    I("uptime", now - srv->started);
    I("time", now);
    out_fmt(c, "STAT version %s\r\n", QKV_VERSION);
    out_fmt(c, "STAT libevent %s\r\n", event_get_version());
    I("pointer_size", (int)(8 * sizeof(void *)));
    out_fmt(c, "STAT rusage_user %ld.%06ld\r\n", (long)ru.ru_utime.tv_sec, (long)ru.ru_utime.tv_usec);
    out_fmt(c, "STAT rusage_system %ld.%06ld\r\n", (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec);
    I("max_connections", srv->cfg.max_connections);
    I("curr_connections", srv->curr_conns);
    U("total_connections", s->total_connections);
    U("rejected_connections", s->rejected_connections);
    U("cmd_get", s->cmd_get);
    U("cmd_set", s->cmd_set);
    U("cmd_flush", s->cmd_flush);
    U("cmd_touch", s->cmd_touch);
    U("get_hits", s->get_hits);
    U("get_misses", s->get_misses);
    U("get_expired", s->get_expired);
    U("get_flushed", s->get_flushed);
    U("delete_misses", s->delete_misses);
    U("delete_hits", s->delete_hits);
    U("incr_misses", s->incr_misses);
    U("incr_hits", s->incr_hits);
    U("decr_misses", s->decr_misses);
    U("decr_hits", s->decr_hits);
    U("cas_misses", s->cas_misses);
    U("cas_hits", s->cas_hits);
    U("cas_badval", s->cas_badval);
    U("touch_hits", s->touch_hits);
    U("touch_misses", s->touch_misses);
    U("bytes_read", s->bytes_read);
    U("bytes_written", s->bytes_written);
    U("limit_maxbytes", 0);
    I("threads", 1);
    U("item_size_max", srv->cfg.max_value_bytes);
    I("curr_items", s->curr_items);
    U("total_items", s->total_items);
    I("bytes", s->bytes);
    U("disk_bytes", node_disk_bytes(srv));
    U("evictions", 0);
    U("reclaimed", s->reclaimed);
    U("crawler_runs", s->crawler_runs);
    U("crawler_idle", s->crawler_idle);
    ocache_stats_t oc = {0};
    if (srv->ocache)
        ocache_get_stats(srv->ocache, &oc);
    U("object_cache_hits", oc.hits);
    U("object_cache_misses", oc.misses);
    U("object_cache_evictions", oc.evictions);
    U("object_cache_invalidations", oc.invalidations);
    U("object_cache_items", oc.items);
    U("object_cache_bytes", oc.bytes);
    U("object_cache_limit", oc.max_bytes);
    U("store_errors", s->store_errors);
    U("http_requests_refused", s->http_requests_refused);
    U("siblings_pruned", s->siblings_pruned);
    U("vv_entries_pruned", s->vv_entries_pruned);
    const cluster_t *cl = &srv->cluster;
    transport_stats_t ts;
    transport_get_stats(cl->transport, &ts);
    I("cluster_members", cl->gossip ? (int64_t)gossip_member_count(cl->gossip) : 0);
    I("ring_size", cl->view ? (int64_t)ring_range_count(cl->view->ring) : 0);
    I("ring_nodes", cl->view ? (int64_t)ring_node_count(cl->view->ring) : 0);
    U("ring_epoch", cl->ring_epoch);
    U("membership_epoch", cl->view ? cl->view->ring_epoch : cl->epoch_seen);
    U("ring_rebuilds", cl->stats.ring_rebuilds);
    U("gossip_rounds", cl->stats.gossip_rounds);
    U("gossip_bad_messages", cl->stats.gossip_msgs_bad);
    gossip_stats_t gs = {0};
    if (cl->gossip)
        gossip_get_stats(cl->gossip, &gs);
    U("gossip_throttled", gs.msgs_throttled);
    U("gossip_summaries_equal", gs.summaries_equal);
    U("gossip_summaries_differ", gs.summaries_differ);
    U("gossip_rumors_applied", gs.rumors_applied);
    U("gossip_rumors_ignored", gs.rumors_ignored);
    U("gossip_rumors_evicted", gs.rumors_evicted);
    U("gossip_down_rumors", gs.down_rumors);
    U("gossip_mail_sent", gs.mail_sent);
    U("gossip_mail_acked", gs.mail_acked);
    U("gossip_mail_expired", gs.mail_expired);
    U("probes_sent", cl->stats.probes_sent);
    U("probes_failed", cl->stats.probes_failed);
    U("peer_frames_in", ts.frames_in);
    U("peer_frames_out", ts.frames_out);
    U("peer_writes", ts.writes);
    out_fmt(c, "STAT peer_frames_per_write %.2f\r\n",
            ts.writes ? (double)ts.frames_written / (double)ts.writes : 0.0);
    U("peer_bad_frames", ts.bad_frames);
    U("peer_dropped", ts.dropped);
    U("peer_connects", ts.connects);
    U("peer_connect_failures", ts.connect_failures);
    U("peer_timeouts", ts.timeouts);
    U("peer_pending", ts.pending);
    handoff_stats_t hs;
    handoff_get_stats(srv, &hs);
    U("coord_reads", srv->coord.reads);
    U("coord_writes", srv->coord.writes);
    U("coord_forwarded", srv->coord.forwarded);
    U("coord_speculative_reads", srv->coord.speculative_reads);
    U("coord_key_waits", srv->coord.key_waits);
    U("coord_key_wait_timeouts", srv->coord.key_wait_timeouts);
    U("coord_keys_waiting", coord_keys_waiting(srv));
    const admit_t *ad = &srv->admit;
    I("inflight", ad->inflight);
    I("inflight_peak", ad->inflight_peak);
    U("shed_queue_timeout", ad->stats.shed_queue_timeout);
    U("shed_inflight", ad->stats.shed_inflight);
    U("shed_forwarded", ad->stats.shed_forwarded);
    U("shed_replica", ad->stats.shed_replica);
    U("coord_replica_busy", ad->stats.replica_busy);
    U("background_deferred", ad->stats.background_deferred);
    U("quorum_failures", srv->coord.quorum_failures);
    U("read_repairs", srv->coord.read_repairs);
    U("replica_errors", srv->coord.replica_errors);
    U("hints_stored", hs.stored);
    U("hints_delivered", hs.delivered);
    I("hints_pending", hs.pending);
    U("hints_dropped", hs.dropped);
    U("hints_rehomed", hs.rehomed);
    aae_stats_t as;
    aae_get_stats(srv, &as);
    U("exchanges", as.exchanges);
    U("exchanges_failed", as.exchanges_failed);
    U("ranges_in_sync", aae_ranges_in_sync(srv));
    U("ranges_total", aae_range_count(srv));
    U("aae_ring_id", cl->view ? aae_ring_id(cl->view->ring) : 0);
    U("keys_repaired_aae", as.keys_repaired);
    U("aae_keys_exchanged", as.keys_exchanged);
    U("aae_bytes_sent", as.bytes_sent);
    U("aae_bytes_received", as.bytes_received);
    U("aae_refused", as.refused);
    U("aae_busy", as.busy);
    U("aae_tree_bytes", aae_tree_memory(srv));
    U("aae_trees_built", as.ranges_built);
    U("aae_gc_passes", as.gc_passes);
    U("tombstones_purged", as.tombstones_purged);
    xfer_stats_t xs;
    xfer_get_stats(srv, &xs);
    U("coord_pending_writes", srv->coord.pending_writes);
    U("transfers_active", xfer_count(srv));
    U("transfer_ranges_done", xs.done);
    U("transfer_pages_in", xs.pages_in);
    U("transfer_pages_out", xs.pages_out);
    U("transfer_keys_in", xs.keys_in);
    U("transfer_keys_out", xs.keys_out);
    U("transfer_bytes_in", xs.bytes_in);
    U("transfer_bytes_out", xs.bytes_out);
    U("transfer_keys_dropped", xs.keys_dropped);
    U("transfer_failed", xs.failed);
    U("transfer_stale_epoch", xs.stale_epoch);
    I("cluster_n", srv->cfg.n);
    I("cluster_r", srv->cfg.r);
    I("cluster_w", srv->cfg.w);
#undef U
#undef I
    out_str(c, "END\r\n");
}

static void do_ring(conn_t *c)
{
    ring_t *ring = c->srv->cluster.view ? c->srv->cluster.view->ring : NULL;
    size_t nr = ring ? ring_range_count(ring) : 0;
    for (size_t i = 0; i < nr; i++) {
        uint64_t start, end;
        const uint32_t *list;
        uint32_t len;
        if (ring_range(ring, i, &start, &end, &list, &len) < 0)
            continue;
        char line[64 + 16 * (GOSSIP_NAME_MAX + 1)];
        int n = snprintf(line, sizeof(line), "%llu %llu ", (unsigned long long)start,
                         (unsigned long long)end);
        for (uint32_t j = 0; j < len && n < (int)sizeof(line); j++)
            n += snprintf(line + n, sizeof(line) - (size_t)n, "%s%s", j ? "," : "",
                          ring_node_name(ring, list[j]));
        out_str(c, line);
        out_str(c, "\r\n");
    }
    out_str(c, "END\r\n");
}

static void do_members(conn_t *c)
{
    gossip_t *g = c->srv->cluster.gossip;
    size_t n = gossip_member_count(g);
    for (size_t i = 0; i < n; i++) {
        gossip_member_info_t m;
        if (gossip_member(g, i, &m) < 0 || m.entry.status == GOSSIP_LEFT)
            continue;
        char progress[32] = "";
        if (m.entry.xfer != 0) /* joining, leaving or re-replicating: how far */
            snprintf(progress, sizeof(progress), " transfer=%u%%", m.entry.xfer - 1);
        out_fmt(c, "%s %s:%u %s:%u %s phi=%.2f hb=%llu%s\r\n", m.entry.name, m.entry.host,
                m.entry.client_port, m.entry.host, m.entry.peer_port, cluster_state_name(&m),
                m.phi, (unsigned long long)m.entry.heartbeat, progress);
    }
    out_str(c, "END\r\n");
}

/* `transfers`: one line per range this node is moving, then END. */
static void do_transfers(conn_t *c)
{
    size_t n = xfer_count(c->srv);
    for (size_t i = 0; i < n; i++) {
        xfer_info_t t;
        if (xfer_get(c->srv, i, &t) < 0)
            continue;
        char eta[24] = "?";
        if (t.eta_s >= 0)
            snprintf(eta, sizeof(eta), "%lld", (long long)t.eta_s);
        out_fmt(c, "%llu %llu %s %s %llu/%llu %llu %llu/s eta=%s\r\n",
                (unsigned long long)t.start, (unsigned long long)t.end, t.from, t.to,
                (unsigned long long)t.keys_done, (unsigned long long)t.keys,
                (unsigned long long)t.bytes, (unsigned long long)t.rate, eta);
    }
    out_str(c, "END\r\n");
}

/* `aae`: one line per held range, then END (docs/protocol.md). */
static void do_aae(conn_t *c)
{
    int64_t now = node_now_us();
    size_t n = aae_range_count(c->srv);
    for (size_t i = 0; i < n; i++) {
        aae_range_info_t r;
        if (aae_range_get(c->srv, i, &r) < 0)
            continue;
        if (!r.exchanged)
            out_fmt(c, "%llu %llu - unknown last=never repaired=0\r\n",
                    (unsigned long long)r.start, (unsigned long long)r.end);
        else
            out_fmt(c, "%llu %llu %s %s last=%lld repaired=%llu\r\n",
                    (unsigned long long)r.start, (unsigned long long)r.end, r.peer,
                    r.in_sync ? "in-sync" : "differs", (long long)((now - r.last_us) / 1000000),
                    (unsigned long long)r.repaired);
    }
    out_str(c, "END\r\n");
}

/* `debug peer_drop on|off`: cut this node off its peers; `debug
 * read_stall on|off`: leave replica reads from peers unanswered, the rest
 * going on (a slow replica).  Tests only. */
static void do_debug(conn_t *c, const mc_request_t *req)
{
    if (!c->srv->cfg.fault_injection) {
        out_str(c, "CLIENT_ERROR fault injection is disabled (debug.fault_injection)\r\n");
        return;
    }
    bool on = !strcmp(req->arg2, "on");
    bool drop = !strcmp(req->arg, "peer_drop"), stall = !strcmp(req->arg, "read_stall");
    if ((!drop && !stall) || (!on && strcmp(req->arg2, "off"))) {
        out_str(c, "CLIENT_ERROR usage: debug peer_drop|read_stall on|off\r\n");
        return;
    }
    if (drop)
        transport_set_drop(c->srv->cluster.transport, on);
    else
        transport_set_stall(c->srv->cluster.transport, on ? MSG_REPLICA_GET : 0);
    log_warn("fault injection: %s %s", drop ? "peer traffic" : "replica reads from peers",
             on ? "dropped" : "restored");
    out_str(c, "OK\r\n");
}

static void do_consistency(conn_t *c, const mc_request_t *req)
{
    const config_t *cfg = &c->srv->cfg;
    if (!req->r.kind && !req->w.kind) {
        char b1[16], b2[16];
        mc_level_t r = c->dflt_r.kind ? c->dflt_r : (mc_level_t){MC_LEVEL_NUM, cfg->r};
        mc_level_t w = c->dflt_w.kind ? c->dflt_w : (mc_level_t){MC_LEVEL_NUM, cfg->w};
        out_fmt(c, "CONSISTENCY r=%s w=%s\r\n", mc_level_str(r, b1, sizeof(b1)),
                mc_level_str(w, b2, sizeof(b2)));
        return;
    }
    if ((req->r.kind && mc_level_resolve(req->r, cfg->n, cfg->r) < 0) ||
        (req->w.kind && mc_level_resolve(req->w, cfg->n, cfg->w) < 0)) {
        out_fmt(c, "CLIENT_ERROR consistency level exceeds replication factor n=%d\r\n", cfg->n);
        return;
    }
    if (req->r.kind)
        c->dflt_r = req->r;
    if (req->w.kind)
        c->dflt_w = req->w;
    out_str(c, "OK\r\n");
}

/* Execute one parsed command line (not a storage command: those wait for
 * their data).  Returns false when the line must stay in the input buffer
 * (a multi-get paused). */
static void exec_line(conn_t *c, mc_request_t *req, size_t line_total)
{
    server_t *srv = c->srv;
    switch (req->cmd) {
    case MC_GET: case MC_GETS: case MC_GAT: case MC_GATS:
        if (!check_levels(c, req))
            return;
        c->req = *req;
        do_mget(c, line_total);
        return;
    case MC_DELETE: case MC_INCR: case MC_DECR: case MC_TOUCH:
        if (!check_levels(c, req)) {
            ctx_clear(c);
            return;
        }
        exec_write(c, req, req->keys[0].ptr, req->keys[0].len, NULL, 0);
        return;
    case MC_FLUSH_ALL: {
        srv->stats.cmd_flush++;
        ticket_t *t = ticket_new(c, -1);
        if (!t) {
            out_str(c, "SERVER_ERROR out of memory\r\n");
            return;
        }
        c->req = *req;
        c->req.keys = NULL;
        c->state = CS_WAIT;
        coord_flush(srv, req->has_delay ? req->delay : 0, on_write_done, t);
        return;
    }
    case MC_STATS:
        do_stats(c, req->arg);
        return;
    case MC_VERSION:
        out_str(c, "VERSION " QKV_VERSION "\r\n");
        return;
    case MC_VERBOSITY:
        log_set_level(req->delay >= 2 ? LOG_DEBUG : req->delay == 1 ? LOG_INFO : srv->cfg.log_level);
        if (!req->noreply)
            out_str(c, "OK\r\n");
        return;
    case MC_QUIT:
        conn_close_after_write(c);
        return;
    case MC_LGET:
        do_lget(c, &req->keys[0]);
        return;
    case MC_SIBLINGS: case MC_VGET: {
        if (!check_levels(c, req))
            return;
        int r, w;
        levels(c, req, &r, &w);
        ticket_t *t = ticket_new(c, -1);
        if (!t) {
            out_str(c, "SERVER_ERROR out of memory\r\n");
            return;
        }
        c->klen = req->keys[0].len;
        memcpy(c->key, req->keys[0].ptr, c->klen);
        c->state = CS_WAIT;
        coord_get(srv, c->key, c->klen, r,
                  req->cmd == MC_VGET ? on_vget_done : on_siblings_done, t);
        return;
    }
    case MC_CONSISTENCY:
        do_consistency(c, req);
        return;
    case MC_RING:
        do_ring(c);
        return;
    case MC_MEMBERS:
        do_members(c);
        return;
    case MC_AAE:
        do_aae(c);
        return;
    case MC_DEBUG:
        do_debug(c, req);
        return;
    case MC_LEAVE: case MC_REMOVE: {
        char msg[400];
        if ((req->cmd == MC_LEAVE ? xfer_leave(srv, msg, sizeof(msg))
                                  : xfer_remove(srv, req->arg, msg, sizeof(msg))) < 0)
            out_fmt(c, "%s\r\n", msg);
        else
            out_str(c, "OK\r\n");
        return;
    }
    case MC_TRANSFERS:
        do_transfers(c);
        return;
    default:
        out_str(c, "ERROR\r\n");
        return;
    }
}

/* ---- the state machine ---- */

static void consume(conn_t *c, size_t n)
{
    evbuffer_drain(c->in, n);
    c->srv->stats.bytes_read += n;
    c->in_used += n;
}

/* ---- arrival stamps and admission (admit.h) ---- */

/* n bytes just read, the newest of them received by the kernel at us.  A
 * full table merges the read into the newest entry, which then takes the
 * read's stamp: as for the bytes of one read, no request is thought older
 * than it is (a data block trickling in over many reads once kept the
 * stamp of its 32nd read, and the request after it was refused busy as if
 * it had waited all that time). */
static void stamp_add(conn_t *c, size_t n, int64_t us)
{
    c->in_added += n;
    if (c->st_n > 0) {
        int last = (c->st_first + c->st_n - 1) % CONN_STAMPS;
        if (c->st_n == CONN_STAMPS || c->stamps[last].us == us) {
            c->stamps[last].end = c->in_added;
            c->stamps[last].us = us;
            return;
        }
    }
    int i = (c->st_first + c->st_n) % CONN_STAMPS;
    c->stamps[i].end = c->in_added;
    c->stamps[i].us = us;
    c->st_n++;
}

/* When the input byte at offset `last` (in_added's count) arrived: for a
 * request, its last byte, so the time its client took to send it is not
 * counted as waiting here, only the time since it was whole. */
static int64_t conn_arrival(conn_t *c, uint64_t last)
{
    while (c->st_n > 0 && c->stamps[c->st_first].end <= c->in_used) {
        c->st_first = (c->st_first + 1) % CONN_STAMPS;
        c->st_n--;
    }
    for (int i = 0; i < c->st_n; i++) {
        int k = (c->st_first + i) % CONN_STAMPS;
        if (c->stamps[k].end > last)
            return c->stamps[k].us;
    }
    return admit_now_us();
}

/* Commands that do cluster work are admitted; the rest (stats, version,
 * members, lget...) always run, so an operator can look at a node that is
 * shedding load. */
static bool needs_admission(enum mc_cmd cmd)
{
    switch (cmd) {
    case MC_GET: case MC_GETS: case MC_GAT: case MC_GATS:
    case MC_SET: case MC_ADD: case MC_REPLACE: case MC_APPEND: case MC_PREPEND: case MC_CAS:
    case MC_DELETE: case MC_INCR: case MC_DECR: case MC_TOUCH:
    case MC_SIBLINGS: case MC_VGET:
        return true;
    default:
        return false;
    }
}


static bool is_storage(enum mc_cmd cmd)
{
    return cmd >= MC_SET && cmd <= MC_CAS;
}

/* A command line that was refused: its error line (unless noreply) and,
 * when a data block follows, CS_SWALLOW for it. */
static void reject(conn_t *c, const mc_request_t *req, const char *line)
{
    ctx_clear(c);
    if (!req->noreply)
        out_str(c, line);
    if (req->swallow) {
        c->swallow = (uint64_t)req->bytes + 2;
        c->state = CS_SWALLOW;
    }
}

/* A get line over CONN_MAX_LINE: start reading it as a stream.  False when
 * the line is not a retrieval (then it is junk). */
static bool mstream_start(conn_t *c)
{
    size_t have = evbuffer_get_length(c->in);
    size_t look = have < MSTREAM_LOOK ? have : MSTREAM_LOOK;
    const char *p = (const char *)evbuffer_pullup(c->in, (ssize_t)look);
    enum mc_cmd cmd;
    size_t pre = p ? mc_get_prefix(p, look, &cmd) : 0;
    if (pre == 0)
        return false;
    /* streamed as it arrives: it could start once what is here had come */
    if (admit_client(c->srv, &c->aq, conn_arrival(c, c->in_used + have - 1)) != ADMIT_OK) {
        consume(c, pre);
        out_str(c, busy_line);
        c->state = CS_SKIPLINE;
        return true;
    }
    mstream_t *ms = calloc(1, sizeof(*ms));
    if (!ms)
        return false;
    consume(c, pre);
    memset(&c->req, 0, sizeof(c->req));
    c->req.cmd = cmd;
    c->ms = ms;
    c->win_n = 0;
    c->inflight = 0;
    c->state = CS_MSTREAM;
    return true;
}

/* CS_CMD: one line.  Returns false when more input is needed. */
static bool step_cmd(conn_t *c)
{
    struct evbuffer *in = c->in;
    size_t eol_len = 0;
    ctx_clear(c); /* nothing carries over from the last command */
    struct evbuffer_ptr pos;
    /* the line is almost always whole in the first chunk: one memchr there
     * (evbuffer_search_eol is generic and several times dearer) */
    struct evbuffer_iovec first = {NULL, 0};
    const char *nl = NULL;
    size_t have = evbuffer_get_length(in);
    if (have > 0 && evbuffer_peek(in, -1, NULL, &first, 1) >= 1)
        nl = memchr(first.iov_base, '\n', first.iov_len);
    if (!nl && first.iov_len == have) {
        pos.pos = -1; /* all the input is in that chunk (or none): no whole line */
    } else if (nl) {
        const char *base = first.iov_base;
        pos.pos = nl - base;
        eol_len = 1;
        if (pos.pos > 0 && nl[-1] == '\r') {
            pos.pos--;
            eol_len = 2;
        }
    } else {
        pos = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
    }
    if (pos.pos < 0 ? evbuffer_get_length(in) > CONN_MAX_LINE : (size_t)pos.pos > CONN_MAX_LINE) {
        if (mstream_start(c))
            return true;
        out_str(c, "CLIENT_ERROR line too long\r\n");
        conn_close_after_write(c);
        return false;
    }
    if (pos.pos < 0) {
        admit_queue_empty(&c->aq, admit_now_us()); /* no request waits */
        return false;
    }
    size_t len = (size_t)pos.pos, total = len + eol_len;
    char *line = (char *)evbuffer_pullup(in, (ssize_t)total);
    if (!line) {
        conn_close_after_write(c);
        return false;
    }
    mc_request_t req;
    enum mc_parse_rc rc = mc_parse(line, len, &req, c->srv->keybuf, c->srv->keybuf_cap,
                                   c->srv->cfg.max_value_bytes);
    if (rc == MC_ERR_HTTP) {
        /* someone pointed a browser or an HTTP health check at us: close
         * without a reply, as memcached does (replies of earlier pipelined
         * commands still go out) */
        consume(c, total);
        c->srv->stats.http_requests_refused++;
        conn_close_after_write(c);
        return false;
    }
    /* a noreply request is never refused: the refusal would lose it
     * silently; it waits its turn, and TCP pushes back on its sender */
    if (rc == MC_OK && needs_admission(req.cmd) && !req.noreply &&
        admit_client(c->srv, &c->aq, conn_arrival(c, c->in_used + total - 1)) != ADMIT_OK) {
        consume(c, total);
        reject(c, &req, busy_line); /* swallows a storage command's data */
        return true;
    }
    if ((rc == MC_OK || rc == MC_ERR_TOO_LARGE) && req.ctx) {
        int e = vc_parse(req.ctx, req.ctx_len, CONN_CTX_MAX, &c->ctx);
        if (e < 0) {
            consume(c, total);
            reject(c, &req, e == -ENOMEM ? "SERVER_ERROR out of memory\r\n"
                                         : mc_parse_error_line(MC_ERR_CTX));
            return true;
        }
        c->has_ctx = true;
    }
    if (rc == MC_ERR_TOO_LARGE && req.cmd == MC_SET) {
        /* the old value goes (see too_large_delete) once the data is
         * swallowed; the SERVER_ERROR line answers after the delete, which
         * supersedes what the set's ctx= covered, if it had one */
        /* the key points into the line: copied before the line is drained
         * (which may free the chain that holds it) */
        c->klen = req.keys[0].len;
        memcpy(c->key, req.keys[0].ptr, c->klen);
        consume(c, total);
        c->swallow = (uint64_t)req.bytes + 2;
        c->state = CS_SWALLOW;
        if (check_levels(c, &req)) {
            c->req = req;
            c->req.keys = NULL;
            c->delete_after_swallow = true;
        } else {
            ctx_clear(c);
        }
        return true;
    }
    if (rc != MC_OK) {
        consume(c, total);
        reject(c, &req, mc_parse_error_line(rc));
        return true;
    }
    if (is_storage(req.cmd)) {
        c->klen = req.keys[0].len; /* before the drain, as above */
        memcpy(c->key, req.keys[0].ptr, c->klen);
        consume(c, total);
        if (!check_levels(c, &req)) {
            reject(c, &req, ""); /* check_levels answered */
            return true;
        }
        c->req = req;
        c->req.keys = NULL;
        c->state = CS_DATA;
        return true;
    }
    exec_line(c, &req, total);
    if (c->state == CS_MGET)
        return true; /* the line stays until the multi-get finishes */
    consume(c, total);
    return c->state == CS_CMD; /* CS_WAIT: a callback resumes us */
}

static bool step_data(conn_t *c)
{
    struct evbuffer *in = c->in;
    size_t need = (size_t)c->req.bytes + 2;
    if (evbuffer_get_length(in) < need)
        return false;
    uint8_t *data = evbuffer_pullup(in, (ssize_t)need);
    if (!data) {
        conn_close_after_write(c);
        return false;
    }
    c->state = CS_CMD;
    if (data[need - 2] != '\r' || data[need - 1] != '\n') {
        ctx_clear(c);
        if (!c->req.noreply)
            out_str(c, "CLIENT_ERROR bad data chunk\r\n");
    } else {
        exec_write(c, &c->req, c->key, c->klen, data, need - 2); /* copies the data */
    }
    consume(c, need);
    return c->state == CS_CMD;
}

static bool step_swallow(conn_t *c)
{
    size_t avail = evbuffer_get_length(c->in);
    size_t n = avail < c->swallow ? avail : (size_t)c->swallow;
    consume(c, n);
    c->swallow -= n;
    if (c->swallow)
        return false;
    c->state = CS_CMD;
    if (c->delete_after_swallow) {
        c->delete_after_swallow = false;
        too_large_delete(c);
    }
    return c->state == CS_CMD;
}

static bool step_mget(conn_t *c)
{
    if (!mget_drive(c))
        return false;
    if (c->mkeys != c->mkeys_inline)
        free(c->mkeys);
    c->mkeys = NULL;
    c->state = CS_CMD;
    consume(c, c->mline_len);
    return true;
}

/* ---- get lines too long to hold (CS_MSTREAM) ---- */

enum { TOK_MORE, TOK_EOL, TOK_WORD, TOK_LONG };

/* The next token of a streamed line, after dropping the spaces before it:
 * TOK_WORD with *tp, *tlen valid until the caller consumes that many bytes, TOK_EOL
 * (consumed), TOK_MORE when the input ends first, TOK_LONG for a token
 * longer than anything valid.  A line ends at "\n" or "\r\n", as in
 * step_cmd. */
static int mstream_token(conn_t *c, const char **tp, size_t *tlen)
{
    for (;;) {
        size_t have = evbuffer_get_length(c->in);
        size_t look = have < MSTREAM_LOOK ? have : MSTREAM_LOOK;
        const char *p = look ? (const char *)evbuffer_pullup(c->in, (ssize_t)look) : NULL;
        if (!p)
            return TOK_MORE;
        size_t i = 0;
        while (i < look && p[i] == ' ')
            i++;
        if (i > 0) {
            consume(c, i);
            continue;
        }
        size_t j = 0;
        bool end = false;
        for (; j < look; j++) {
            if (p[j] == ' ' || p[j] == '\n' || (p[j] == '\r' && j + 1 < look && p[j + 1] == '\n')) {
                end = true;
                break;
            }
            if (p[j] == '\r' && j + 1 == look)
                break; /* "\r" then what? */
        }
        if (!end)
            return look == MSTREAM_LOOK ? TOK_LONG : TOK_MORE;
        if (j == 0) {
            consume(c, p[0] == '\n' ? 1 : 2);
            return TOK_EOL;
        }
        *tp = p;
        *tlen = j;
        return TOK_WORD;
    }
}

static void mstream_fail(mstream_t *ms, const char *line)
{
    if (ms->failed)
        return;
    ms->failed = true;
    snprintf(ms->errline, sizeof(ms->errline), "%s", line);
}

/* Read tokens into the window until it is full, the line ends, an error
 * or the input runs dry (then true). */
static bool mstream_fill(conn_t *c)
{
    mstream_t *ms = c->ms;
    while (ms->nfill < MGET_WINDOW && !ms->failed && !ms->eol) {
        const char *p;
        size_t len;
        int t = mstream_token(c, &p, &len);
        if (t == TOK_MORE)
            return true;
        if (t == TOK_EOL) {
            ms->eol = true;
            break;
        }
        if (t == TOK_LONG) {
            mstream_fail(ms, mc_parse_error_line(MC_ERR_FORMAT));
            break;
        }
        enum mc_get_arg kind;
        enum mc_parse_rc rc = mc_get_arg(&c->req, p, len, &ms->have_exp, &kind);
        if (rc != MC_OK) {
            mstream_fail(ms, mc_parse_error_line(rc));
        } else if (kind == MC_ARG_OPTION && ms->any_key) {
            mstream_fail(ms, "CLIENT_ERROR in a get line over 64 KiB, r= and w= must come "
                             "before the keys\r\n");
        } else if (kind == MC_ARG_KEY) {
            if (!ms->any_key) {
                /* the levels are final now */
                levels(c, &c->req, &c->mget_r, &c->mget_w);
                if (c->mget_r < 0 || c->mget_w < 0) {
                    char buf[128];
                    levels_error(c, buf, sizeof(buf));
                    mstream_fail(ms, buf);
                    break;
                }
                ms->any_key = true;
            }
            memcpy(ms->kbuf[ms->nfill], p, len);
            ms->keys[ms->nfill] = (mc_key_t){ms->kbuf[ms->nfill], len};
            ms->nfill++;
        }
        consume(c, len);
    }
    return false;
}

static void mstream_end(conn_t *c)
{
    /* after an error, the rest of the line is not commands */
    c->state = c->ms->eol ? CS_CMD : CS_SKIPLINE;
    free(c->ms);
    c->ms = NULL;
}

static bool step_mstream(conn_t *c)
{
    mstream_t *ms = c->ms;
    if (c->win_n > 0) {
        if (c->inflight > 0)
            return false; /* answers still to come */
        bool ok = mget_output(c);
        c->win_n = 0;
        if (!ok) {
            mstream_end(c);
            return true;
        }
        return true; /* the caller checks the output watermark first */
    }
    bool dry = mstream_fill(c);
    if (ms->nfill > 0) {
        c->win_first = 0;
        c->win_n = ms->nfill;
        ms->nfill = 0;
        c->win_keys = ms->keys;
        c->win_out = 0;
        c->starting = true;
        for (size_t i = 0; i < c->win_n; i++)
            mget_start_key(c, (int)i, &ms->keys[i]);
        c->starting = false;
        return true;
    }
    if (dry)
        return false; /* the rest of the line is still to come */
    bool gat = c->req.cmd == MC_GAT || c->req.cmd == MC_GATS;
    if (ms->failed)
        out_str(c, ms->errline);
    else if (!ms->any_key || (gat && !ms->have_exp))
        out_str(c, "ERROR\r\n"); /* as mc_parse for a line of only spaces */
    else
        out_str(c, "END\r\n");
    mstream_end(c);
    return true;
}

/* CS_SKIPLINE: drop input up to and including the end of the line. */
static bool step_skipline(conn_t *c)
{
    struct evbuffer_ptr pos = evbuffer_search(c->in, "\n", 1, NULL);
    if (pos.pos < 0) {
        consume(c, evbuffer_get_length(c->in));
        return false;
    }
    consume(c, (size_t)pos.pos + 1);
    c->state = CS_CMD;
    return true;
}

/* Whether a command is running: then no further command starts (replies
 * must come in order). */
static bool waiting(const conn_t *c)
{
    switch (c->state) {
    case CS_MGET: case CS_WAIT: case CS_CLOSING: return true;
    case CS_MSTREAM: return c->win_n > 0;
    default: return false;
    }
}

/* Whether the connection reads now: always, except after the client's
 * end of input, and while a command waits only up to the read-ahead bounds
 * (CONN_READAHEAD, CONN_STAMPS): the requests pipelined behind it go into
 * `ahead` (a multi-get's keys point into `in`), stamped as they arrive. */
static bool wants_input(const conn_t *c)
{
    if (c->eof || c->state == CS_CLOSING)
        return false;
    if (waiting(c))
        return evbuffer_get_length(c->in) + evbuffer_get_length(c->ahead) < CONN_READAHEAD &&
               c->st_n < CONN_STAMPS;
    return true;
}

static void conn_process_loop(conn_t *c);

static void conn_process(conn_t *c)
{
    c->in_process = true;
    conn_process_loop(c);
    c->in_process = false;
    conn_flush(c);
    /* the client closed its side and everything it sent before is done */
    if (c->eof && !c->dead && !c->paused && !waiting(c)) {
        conn_close_after_write(c);
        return;
    }
    /* reading was turned off while a command waited: turn it back on, once
     * (not per command: each switch is an epoll_ctl) */
    if (!c->dead && !c->paused && wants_input(c))
        read_set(c, true);
}

static void conn_process_loop(conn_t *c)
{
    while (!c->dead && !c->paused) {
        bool more;
        if (!waiting(c) && evbuffer_get_length(c->ahead) > 0)
            evbuffer_add_buffer(c->in, c->ahead); /* what was read ahead is next */
        switch (c->state) {
        case CS_CMD: more = step_cmd(c); break;
        case CS_DATA: more = step_data(c); break;
        case CS_SWALLOW: more = step_swallow(c); break;
        case CS_MGET: more = step_mget(c); break;
        case CS_MSTREAM: more = step_mstream(c); break;
        case CS_SKIPLINE: more = step_skipline(c); break;
        default: more = false; break;
        }
        if (c->state == CS_CLOSING)
            return;
        if (out_full(c)) {
            /* stop reading and executing until the client drains */
            c->paused = true;
            read_set(c, false);
            return;
        }
        if (!more)
            return; /* waiting for replicas: on_readable holds what comes meanwhile */
    }
}

#define CONN_READ_CHUNK 16384

/* The arrival of a read: when the kernel received its newest bytes
 * (SO_TIMESTAMPNS, wall clock), moved to admit_now_us()'s clock; now when
 * the kernel gave no stamp.  The newest bytes' time is never earlier than
 * any request's in the read, so no request is thought older than it is. */
static int64_t read_stamp(struct msghdr *mh)
{
    int64_t now = admit_now_us();
    for (struct cmsghdr *h = CMSG_FIRSTHDR(mh); h; h = CMSG_NXTHDR(mh, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_TIMESTAMPNS)
            continue;
        struct timespec ts, real;
        memcpy(&ts, CMSG_DATA(h), sizeof(ts));
        clock_gettime(CLOCK_REALTIME, &real);
        int64_t age = ((int64_t)real.tv_sec - ts.tv_sec) * 1000000 +
                      ((int64_t)real.tv_nsec - ts.tv_nsec) / 1000;
        /* a wall clock stepped meanwhile: no wait is better than a made-up one */
        if (age > 0 && age < (int64_t)3600 * 1000000)
            return now - age;
    }
    return now;
}

/* One recvmsg into `into`, at most want bytes: the count read (0 at the
 * end of input), or -1 with errno.  Stamped (stamp_add) when any. */
static ssize_t read_some(conn_t *c, evutil_socket_t fd, struct evbuffer *into, size_t want)
{
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(into, (ev_ssize_t)want, &v, 1) < 1) {
        errno = ENOMEM;
        return -1;
    }
    struct iovec iov = {v.iov_base, v.iov_len < want ? v.iov_len : want};
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } cm;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
                        .msg_controllen = sizeof(cm.buf)};
    ssize_t n = recvmsg(fd, &mh, 0);
    v.iov_len = n > 0 ? (size_t)n : 0;
    evbuffer_commit_space(into, &v, 1);
    if (n > 0)
        stamp_add(c, (size_t)n, read_stamp(&mh));
    return n;
}

/* A request line is small: the first read of a turn asks for what a
 * buffer chain malloc keeps in its per-thread cache holds (a chain of 16
 * KiB per read was a fifth of a get's instructions, in malloc and free);
 * only when that fills up do bigger reads follow, in the same turn, up to
 * CONN_READ_MORE of them (a pipelining client's requests then run in
 * bigger batches, whose replica frames leave in fewer writes). */
#define CONN_READ_FIRST 900
#define CONN_READ_MORE 8 /* bigger reads at most, per readable event */

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    conn_t *c = arg;
    struct evbuffer *into = waiting(c) ? c->ahead : c->in;
    /* nothing waited here before these bytes: the queue was empty until
     * they arrived, however long ago its owner last looked (a pooled
     * connection idle for a second is not a standing queue) */
    bool was_empty = into == c->in && evbuffer_get_length(c->in) == 0;
    ssize_t n = read_some(c, fd, into, CONN_READ_FIRST);
    if (n > 0 && was_empty && c->st_n > 0) /* the first read's stamp: the newest entry */
        admit_queue_empty(&c->aq, c->stamps[(c->st_first + c->st_n - 1) % CONN_STAMPS].us);
    for (int i = 0; n == CONN_READ_FIRST || (i > 0 && n == CONN_READ_CHUNK); i++) {
        if (i == CONN_READ_MORE || (into == c->ahead && !wants_input(c)))
            break; /* the rest on the next event (level-triggered) */
        n = read_some(c, fd, into, CONN_READ_CHUNK);
        if (n <= 0 && (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            n = 1; /* what was read is processed first; the end of input (or
                    * nothing) shows again on the next event */
            break;
        }
    }
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n == 0 && waiting(c) && c->state != CS_CLOSING) {
            /* EOF behind a command still running: answer what was read */
            c->eof = true;
            read_set(c, false);
            return;
        }
        conn_kill(c); /* EOF or error */
        return;
    }
    conn_process(c);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    conn_t *c = arg;
    if (evbuffer_write(c->out, fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
        errno != EINTR) {
        conn_kill(c);
        return;
    }
    size_t left = evbuffer_get_length(c->out);
    if (left == 0) { /* caught up: replies go out directly again */
        c->write_on = false;
        event_del(c->wev);
        if (c->state == CS_CLOSING) {
            conn_kill(c);
            return;
        }
    }
    if (c->paused && left <= CONN_OUT_LOW) {
        c->paused = false;
        conn_process(c); /* turns reading back on when no command waits */
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)sa;
    (void)salen;
    server_t *srv = arg;
    if (srv->stopping || srv->curr_conns >= srv->cfg.max_connections) {
        static const char msg[] = "ERROR Too many open connections\r\n";
        ssize_t w = send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
        evutil_closesocket(fd);
        srv->stats.rejected_connections++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* receive times for admission; without them a read counts from now */
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    conn_t *c = calloc(1, sizeof(*c));
    if (c) {
        c->fd = fd;
        c->in = evbuffer_new();
        c->ahead = evbuffer_new();
        c->out = evbuffer_new();
        c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_readable, c);
        c->wev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, on_writable, c);
    }
    if (!c || !c->in || !c->ahead || !c->out || !c->rev || !c->wev ||
        evutil_make_socket_nonblocking(fd) < 0) {
        if (c) {
            if (c->rev)
                event_free(c->rev);
            if (c->wev)
                event_free(c->wev);
            if (c->in)
                evbuffer_free(c->in);
            if (c->ahead)
                evbuffer_free(c->ahead);
            if (c->out)
                evbuffer_free(c->out);
            free(c);
        }
        evutil_closesocket(fd);
        return;
    }
    c->srv = srv;
    c->state = CS_CMD;
    admit_queue_init(&c->aq, admit_now_us());
    vc_init(&c->ctx);
    TAILQ_INSERT_TAIL(&srv->conns, c, link);
    srv->curr_conns++;
    srv->stats.total_connections++;
    read_set(c, true);
}

static void on_listen_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    /* EMFILE and friends: log and keep serving the connections we have */
    log_warn("accept: %s", evutil_socket_error_to_string(err));
}

int conn_listen(server_t *srv, char *err, size_t errlen)
{
    TAILQ_INIT(&srv->conns);
    TAILQ_INIT(&srv->dead);
    srv->keybuf_cap = CONN_MAX_KEYS;
    srv->keybuf = calloc(srv->keybuf_cap, sizeof(mc_key_t));
    srv->reaper = event_new(srv->base, -1, 0, reap, srv);
    if (!srv->keybuf || !srv->reaper) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)srv->cfg.client_port);
    if (inet_pton(AF_INET, srv->cfg.host, &sin.sin_addr) != 1) {
        snprintf(err, errlen, "node.host '%s' is not an IPv4 address", srv->cfg.host);
        return -1;
    }
    srv->listener = evconnlistener_new_bind(srv->base, on_accept, srv,
                                            LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 1024,
                                            (struct sockaddr *)&sin, sizeof(sin));
    if (!srv->listener) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", srv->cfg.host, srv->cfg.client_port,
                 strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(srv->listener, on_listen_error);
    return 0;
}
