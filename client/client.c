/*
 * client.c - libquorumkv's public API (quorumkv.h): the client handle,
 * node pools, routing, failover and the refresh thread.
 *
 *   qkv_get(key) ──> candidates(key): the key's preference list from the
 *        │           parsed ring, live owners first (members say up, no
 *        │           recent local failure), then other live nodes
 *        v
 *   checkout(node) ── idle pooled connection, or connect ──(failed: nothing
 *        │            was sent) ──> mark node, wake refresh, next candidate
 *        v
 *   send + read reply ──(lost, timed out, garbled)──> close connection;
 *        │             reads: next candidate (max_retries), writes: error
 *        v
 *   checkin(node) ── a clean connection goes back to the node's pool
 *
 * Locks: topo_lock (rwlock) guards the node table size and the ring; a
 * request holds it only while it picks candidates.  Nodes are never freed
 * before qkv_close(), so a request keeps node pointers without the lock.
 * Each node's mutex guards its idle connections and its address.  Node
 * liveness is atomics.  The refresh thread is the only writer of the
 * topology.
 *
 * Invariants: a connection is pooled only after a complete reply with no
 * unread input; every wait is bounded by the request's deadline; every
 * allocation of a request is freed on every path.
 */
#include "client_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "../common/textproto.h"

#define BACKOFF_MS 1000      /* a node that failed is skipped this long */
#define KICK_MIN_MS 100      /* refreshes woken by errors at most this often */
#define BODY_MAX (64u << 20) /* bytes of one admin reply (ring of 1M ranges) */
#define MGET_CHUNK 128       /* vget commands in flight per node per round */

typedef struct qnode {
    char name[QKV_NAME_MAX + 1];
    pthread_mutex_t lock;      /* idle[], sa, addr */
    char addr[QKV_NAME_MAX + 8];
    struct sockaddr_in sa;
    bool addr_ok;
    uint64_t gen;              /* bumped when the address changes */
    qconn_t **idle;
    int nidle;
    _Atomic int state;         /* enum qnode_state, from `members` */
    _Atomic int64_t backoff_until;
} qnode_t;

struct qkv_client {
    qkv_config_t cfg;
    size_t nseeds;
    struct sockaddr_in *seeds;

    pthread_rwlock_t topo_lock;
    qnode_t *nodes[QKV_MAX_NODES];
    size_t nnodes;
    qring_t *ring;
    qnode_t **ring_nodes;      /* ring->names[i] as a node, NULL if not a member */

    /* refresh thread state */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kick;
    uint64_t epoch;            /* ring_epoch of epoch_node when the ring was read */
    qnode_t *epoch_node;
};

/* ---- small helpers ---- */

const char *qkv_strerror(int code)
{
    switch (code) {
    case QKV_OK: return "ok";
    case QKV_NOT_FOUND: return "not found";
    case QKV_ERR_ARG: return "bad argument";
    case QKV_ERR_NOMEM: return "out of memory";
    case QKV_ERR_CONN: return "connection error";
    case QKV_ERR_TIMEOUT: return "timed out";
    case QKV_ERR_PROTO: return "protocol error";
    case QKV_ERR_QUORUM: return "quorum not reached";
    case QKV_ERR_SERVER: return "server error";
    case QKV_ERR_CLIENT: return "request refused by the server";
    case QKV_ERR_NOT_NUMBER: return "value is not a number";
    default: return "unknown error";
    }
}

void qkv_free(void *p)
{
    free(p);
}

/* Store err as the caller's *errptr (LevelDB's convention) and return rc. */
static int set_err(char **errptr, int rc, const char *err)
{
    if (rc < 0 && errptr) {
        free(*errptr);
        *errptr = strdup(err && err[0] ? err : qkv_strerror(rc));
    }
    return rc;
}

int qkv_level_parse(const char *s, int *level)
{
    mc_level_t lv;
    if (!s || !level || mc_parse_level(s, strlen(s), &lv) < 0)
        return QKV_ERR_ARG;
    switch (lv.kind) {
    case MC_LEVEL_ONE: *level = QKV_LEVEL_ONE; break;
    case MC_LEVEL_QUORUM: *level = QKV_LEVEL_QUORUM; break;
    case MC_LEVEL_ALL: *level = QKV_LEVEL_ALL; break;
    default: *level = lv.num; break;
    }
    return 0;
}

/* The wire token of a level (" r=quorum"), "" for the server's default;
 * QKV_ERR_ARG for a level out of range. */
static int level_token(char which, int level, char *buf, size_t cap, char *err)
{
    mc_level_t lv;
    char num[8];
    switch (level) {
    case QKV_LEVEL_DEFAULT: buf[0] = '\0'; return 0;
    case QKV_LEVEL_ONE: lv = (mc_level_t){MC_LEVEL_ONE, 1}; break;
    case QKV_LEVEL_QUORUM: lv = (mc_level_t){MC_LEVEL_QUORUM, 0}; break;
    case QKV_LEVEL_ALL: lv = (mc_level_t){MC_LEVEL_ALL, 0}; break;
    default:
        if (level < 1 || level > QKV_LEVEL_MAX)
            return client_fail(err, QKV_ERR_ARG, "consistency level %d is not one, quorum, all or 1..%d",
                               level, QKV_LEVEL_MAX);
        lv = (mc_level_t){MC_LEVEL_NUM, level};
    }
    snprintf(buf, cap, " %c=%s", which, mc_level_str(lv, num, sizeof(num)));
    return 0;
}

static int check_key(const char *key, size_t klen, char *err)
{
    if (!key)
        return client_fail(err, QKV_ERR_ARG, "key is NULL");
    if (klen == 0 || klen > QKV_KEY_MAX)
        return client_fail(err, QKV_ERR_ARG, "key length %zu is not 1..%d", klen, QKV_KEY_MAX);
    for (size_t i = 0; i < klen; i++) {
        unsigned char ch = (unsigned char)key[i];
        if (ch <= ' ' || ch == 0x7f)
            return client_fail(err, QKV_ERR_ARG, "key has a space or control byte at %zu", i);
    }
    return 0;
}

static int check_context(const char *ctx, char *err)
{
    size_t n = strnlen(ctx, QKV_CONTEXT_MAX + 1);
    if (n == 0 || n > QKV_CONTEXT_MAX)
        return client_fail(err, QKV_ERR_ARG, "context length is not 1..%d", QKV_CONTEXT_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)ctx[i] <= ' ' || ctx[i] == 0x7f)
            return client_fail(err, QKV_ERR_ARG, "context has a space or control byte");
    return 0;
}

/* The request's absolute deadline. */
static int64_t deadline_of(const qkv_client_t *c, const qkv_opts_t *o)
{
    int t = o && o->timeout_ms > 0 ? o->timeout_ms : c->cfg.timeout_ms;
    return client_now_ms() + t;
}

/* ---- nodes and pools ---- */

static bool node_usable(qnode_t *n, int64_t now)
{
    int st = atomic_load_explicit(&n->state, memory_order_relaxed);
    return st != QNODE_DOWN && st != QNODE_GONE &&
           atomic_load_explicit(&n->backoff_until, memory_order_relaxed) <= now;
}

static void wake_refresh(qkv_client_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->kick = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* A node failed us (connect, lost connection, timeout): skip it for a
 * while and have the topology checked. */
static void node_failed(qkv_client_t *c, qnode_t *n)
{
    atomic_store(&n->backoff_until, client_now_ms() + BACKOFF_MS);
    wake_refresh(c);
}

static void node_drop_idle(qnode_t *n)
{
    for (int i = 0; i < n->nidle; i++)
        qconn_close(n->idle[i]);
    n->nidle = 0;
}

static void node_free(qnode_t *n)
{
    if (!n)
        return;
    node_drop_idle(n);
    free(n->idle);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

/* A connection to n: an idle one, else a new one.  *gen receives the
 * address generation it belongs to.  With `verify`, an idle connection is
 * first checked with a peek (one syscall) so that a request that must not
 * be repeated never goes down a connection the server has closed; without
 * it (reads, which may be repeated) a dead one shows as an error on first
 * use.  *reused (may be NULL) tells which kind was handed out. */
static int checkout(qkv_client_t *c, qnode_t *n, int64_t deadline, qconn_t **out, uint64_t *gen,
                    bool verify, bool *reused, char *err)
{
    struct sockaddr_in sa;
    qconn_t *q = NULL;
    bool ok;

    pthread_mutex_lock(&n->lock);
    while (n->nidle > 0) {
        q = n->idle[--n->nidle];
        if (verify ? qconn_reusable(q) : qconn_pending(q) == 0)
            break;
        qconn_close(q);
        q = NULL;
    }
    sa = n->sa;
    ok = n->addr_ok;
    *gen = n->gen;
    pthread_mutex_unlock(&n->lock);
    if (reused)
        *reused = q != NULL;
    if (q) {
        *out = q;
        return 0;
    }
    if (!ok)
        return client_fail(err, QKV_ERR_CONN, "node %s has no usable address", n->name);
    int64_t cd = client_now_ms() + c->cfg.connect_timeout_ms;
    int rc = qconn_open(&sa, cd < deadline ? cd : deadline, out, err);
    if (rc < 0) {
        size_t l = strlen(err);
        snprintf(err + l, QKV_ERRLEN - l, " (node %s)", n->name);
    }
    return rc;
}

/* Give a connection back after a complete reply, or close it. */
static void checkin(qkv_client_t *c, qnode_t *n, qconn_t *q, uint64_t gen)
{
    if (qconn_pending(q) == 0) {
        pthread_mutex_lock(&n->lock);
        if (gen == n->gen && n->nidle < c->cfg.max_idle_per_node) {
            n->idle[n->nidle++] = q;
            q = NULL;
        }
        pthread_mutex_unlock(&n->lock);
    }
    qconn_close(q);
}

/* ---- candidates ---- */

/* The nodes to try for a key, best first: its live owners in preference
 * order, then other live nodes (any node coordinates), then the others.
 * Returns the count (0: nothing known). */
static size_t candidates(qkv_client_t *c, const char *key, size_t klen, qnode_t **out, size_t cap)
{
    size_t k = 0;
    int64_t now = client_now_ms();
    qnode_t *owners[QKV_MAX_N];
    size_t nown = 0;

    pthread_rwlock_rdlock(&c->topo_lock);
    if (c->ring && key) {
        size_t i = topo_range_of(c->ring, topo_key_position(key, klen));
        const uint16_t *list = c->ring->lists + i * c->ring->n;
        for (uint32_t j = 0; j < c->ring->n && list[j] != QRING_NONE; j++)
            if (c->ring_nodes[list[j]])
                owners[nown++] = c->ring_nodes[list[j]];
    }
    /* pass 0: usable owners, 1: other usable nodes, 2: owners that failed
     * recently or are said down, 3: any other member (last resorts: a
     * cluster of one node has nobody else) */
    for (int pass = 0; pass < 4; pass++) {
        size_t count = pass % 2 == 0 ? nown : c->nnodes;
        for (size_t j = 0; j < count && k < cap; j++) {
            qnode_t *n = pass % 2 == 0 ? owners[j] : c->nodes[j];
            bool owner = pass % 2 == 0;
            for (size_t m = 0; !owner && m < nown; m++)
                owner = owners[m] == n;
            if (pass % 2 == 1 && owner)
                continue;
            bool usable = node_usable(n, now);
            if (pass < 2 ? usable : !usable && atomic_load(&n->state) != QNODE_GONE)
                out[k++] = n;
        }
    }
    pthread_rwlock_unlock(&c->topo_lock);
    return k;
}

int client_owner_names(qkv_client_t *c, const char *key, size_t klen, char *buf, size_t cap)
{
    int count = 0;
    size_t used = 0;
    if (!c || !buf || cap == 0 || check_key(key, klen, NULL) < 0)
        return QKV_ERR_ARG;
    buf[0] = '\0';
    pthread_rwlock_rdlock(&c->topo_lock);
    if (c->ring) {
        size_t i = topo_range_of(c->ring, topo_key_position(key, klen));
        const uint16_t *list = c->ring->lists + i * c->ring->n;
        for (uint32_t j = 0; j < c->ring->n && list[j] != QRING_NONE; j++) {
            int w = snprintf(buf + used, cap - used, "%s%s", j ? "," : "",
                             c->ring->names[list[j]]);
            if (w < 0 || (size_t)w >= cap - used) {
                count = QKV_ERR_ARG;
                break;
            }
            used += (size_t)w;
            count++;
        }
    }
    pthread_rwlock_unlock(&c->topo_lock);
    return count;
}

int qkv_replicas(qkv_client_t *c, const char *key, size_t klen, char *buf, size_t cap)
{
    return client_owner_names(c, key, klen, buf, cap);
}

/* ---- one request, with failover ---- */

/* How a reply is read: returns 0 or a positive result, or a QKV_ERR_*. */
typedef int (*reply_fn)(qconn_t *q, void *arg, int64_t deadline, char *err);

/* A failure of the transport (as opposed to a reply the server chose). */
static bool transport_error(int rc)
{
    return rc == QKV_ERR_CONN || rc == QKV_ERR_TIMEOUT || rc == QKV_ERR_PROTO;
}

/* Send iov to the key's best replica and read the reply with fn.
 * `repeatable`: the request may be sent again elsewhere after it was sent
 * (reads).  Any request moves on to the next candidate when the connection
 * could not be made, since nothing was sent then. */
static int run(qkv_client_t *c, const char *key, size_t klen, const struct iovec *iov, int iovcnt,
               bool repeatable, int64_t deadline, reply_fn fn, void *arg, char *err)
{
    qnode_t *cand[16];
    size_t nc = candidates(c, key, klen, cand, 16);
    int sends = 0, rc = client_fail(err, QKV_ERR_CONN, "no live node is known");

    if (nc == 0)
        wake_refresh(c);
    for (size_t i = 0; i < nc; i++) {
        qconn_t *q;
        uint64_t gen;
        int64_t now = client_now_ms();
        if (now >= deadline)
            return rc == QKV_ERR_CONN && i > 0 ? rc : client_fail(err, QKV_ERR_TIMEOUT, "timed out");
        bool reused;
        rc = checkout(c, cand[i], deadline, &q, &gen, !repeatable, &reused, err);
        if (rc == QKV_ERR_NOMEM)
            return rc;
        if (rc < 0) {
            node_failed(c, cand[i]);
            continue; /* nothing was sent: safe to go on */
        }
        /* a read that may still fail over keeps half the time left for it */
        bool last = !repeatable || sends >= c->cfg.max_retries || i + 1 == nc;
        int64_t attempt_deadline = last ? deadline : now + (deadline - now) / 2;
        sends++;
        rc = qconn_send(q, iov, iovcnt, attempt_deadline, err);
        if (rc == 0)
            rc = fn(q, arg, attempt_deadline, err);
        if (transport_error(rc)) {
            qconn_close(q);
            /* an unverified pooled connection that the server had closed
             * (a restart) says nothing about the node now */
            if (rc == QKV_ERR_TIMEOUT || (rc == QKV_ERR_CONN && !reused))
                node_failed(c, cand[i]);
            size_t l = strlen(err);
            snprintf(err + l, QKV_ERRLEN - l, " (node %s)", cand[i]->name);
            if (last)
                return rc;
            continue;
        }
        checkin(c, cand[i], q, gen);
        return rc;
    }
    return rc;
}

/* ---- reply readers ---- */

static int read_word(qconn_t *q, int64_t deadline, const char *what, int want, int alt, char *err)
{
    char *line;
    size_t len;
    int rc = qconn_line(q, deadline, &line, &len, err);
    if (rc < 0)
        return rc;
    int r = kv_result_parse(line, len);
    if (r == want)
        return 0;
    if (alt >= 0 && r == alt)
        return QKV_NOT_FOUND;
    return reply_error(line, len, what, err);
}

typedef struct word_arg {
    const char *what;
    int want, alt;
} word_arg_t;

static int reply_word(qconn_t *q, void *arg, int64_t deadline, char *err)
{
    word_arg_t *w = arg;
    return read_word(q, deadline, w->what, w->want, w->alt, err);
}

typedef struct incr_arg {
    uint64_t value;
} incr_arg_t;

static int reply_incr(qconn_t *q, void *arg, int64_t deadline, char *err)
{
    incr_arg_t *a = arg;
    char *line;
    size_t len;
    uint64_t v = 0;
    int rc = qconn_line(q, deadline, &line, &len, err);
    if (rc < 0)
        return rc;
    if (kv_result_parse(line, len) == KV_NOT_FOUND)
        return QKV_NOT_FOUND;
    if (len == 0 || len > 20)
        return reply_error(line, len, "incr", err);
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(line[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return reply_error(line, len, "incr", err);
        v = v * 10 + d;
    }
    a->value = v;
    return 0;
}

typedef struct get_arg {
    qkv_client_t *c;
    const char *key;
    size_t klen;
    qkv_result_t *res;
} get_arg_t;

static int reply_vget(qconn_t *q, void *arg, int64_t deadline, char *err)
{
    get_arg_t *g = arg;
    return result_read_vget(q, g->key, g->klen, g->c->cfg.max_value_bytes, deadline, &g->res, err);
}

/* ---- public requests ---- */

static int level_of(const qkv_client_t *c, const qkv_opts_t *o, bool write)
{
    int l = o ? o->level : QKV_LEVEL_DEFAULT;
    if (l == QKV_LEVEL_DEFAULT)
        l = write ? c->cfg.write_level : c->cfg.read_level;
    return l;
}

static int get_one(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
                   int64_t deadline, qkv_result_t **out, char *err)
{
    char lvl[24];
    int rc = level_token('r', level_of(c, o, false), lvl, sizeof(lvl), err);
    if (rc < 0)
        return rc;
    struct iovec iov[4] = {{(void *)"vget ", 5}, {(void *)key, klen}, {lvl, strlen(lvl)},
                           {(void *)"\r\n", 2}};
    get_arg_t g = {c, key, klen, NULL};
    rc = run(c, key, klen, iov, 4, true, deadline, reply_vget, &g, err);
    *out = rc == 0 ? g.res : NULL;
    if (rc != 0)
        qkv_result_free(g.res);
    return rc;
}

int qkv_get(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
            qkv_result_t **out, char **errptr)
{
    char err[QKV_ERRLEN] = "";
    int rc;
    if (out)
        *out = NULL;
    if (!c || !out)
        return set_err(errptr, QKV_ERR_ARG, "client or out is NULL");
    if ((rc = check_key(key, klen, err)) < 0)
        return set_err(errptr, rc, err);
    rc = get_one(c, o, key, klen, deadline_of(c, o), out, err);
    return set_err(errptr, rc, err);
}

/* Common part of the write commands: validate, build, run. */
static int write_cmd(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
                     const char *head, const char *args, bool with_ctx, const void *data,
                     size_t dlen, reply_fn fn, void *arg, char *err)
{
    char lvl[24];
    int rc = check_key(key, klen, err);
    if (rc < 0)
        return rc;
    if ((rc = level_token('w', level_of(c, o, true), lvl, sizeof(lvl), err)) < 0)
        return rc;
    const char *ctx = o && o->context ? o->context : NULL;
    if (ctx && !with_ctx)
        return client_fail(err, QKV_ERR_ARG, "%s takes no context", head);
    if (ctx && (rc = check_context(ctx, err)) < 0)
        return rc;
    struct iovec iov[8];
    int n = 0;
    iov[n++] = (struct iovec){(void *)head, strlen(head)};
    iov[n++] = (struct iovec){(void *)" ", 1};
    iov[n++] = (struct iovec){(void *)key, klen};
    iov[n++] = (struct iovec){(void *)args, strlen(args)};
    if (ctx) {
        iov[n++] = (struct iovec){(void *)" ctx=", 5};
        iov[n++] = (struct iovec){(void *)ctx, strlen(ctx)};
    }
    char tail[32];
    snprintf(tail, sizeof(tail), "%s\r\n", lvl);
    iov[n++] = (struct iovec){tail, strlen(tail)};
    if (data) {
        /* the data block travels in the same send (one packet for small values) */
        struct iovec all[10];
        memcpy(all, iov, (size_t)n * sizeof(*iov));
        all[n] = (struct iovec){(void *)data, dlen};
        all[n + 1] = (struct iovec){(void *)"\r\n", 2};
        return run(c, key, klen, all, n + 2, false, deadline_of(c, o), fn, arg, err);
    }
    return run(c, key, klen, iov, n, false, deadline_of(c, o), fn, arg, err);
}

int qkv_set(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
            const void *value, size_t vlen, uint32_t flags, int64_t exptime, char **errptr)
{
    char err[QKV_ERRLEN] = "", args[80];
    if (!c || (!value && vlen > 0))
        return set_err(errptr, QKV_ERR_ARG, "client or value is NULL");
    if (vlen > c->cfg.max_value_bytes)
        return set_err(errptr, QKV_ERR_ARG, "value larger than max_value_bytes");
    snprintf(args, sizeof(args), " %u %lld %zu", flags, (long long)exptime, vlen);
    word_arg_t w = {"set", KV_STORED, -1};
    int rc = write_cmd(c, o, key, klen, "set", args, true, value ? value : "", vlen, reply_word,
                       &w, err);
    return set_err(errptr, rc, err);
}

int qkv_delete(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
               char **errptr)
{
    char err[QKV_ERRLEN] = "";
    if (!c)
        return set_err(errptr, QKV_ERR_ARG, "client is NULL");
    word_arg_t w = {"delete", KV_DELETED, KV_NOT_FOUND};
    int rc = write_cmd(c, o, key, klen, "delete", "", true, NULL, 0, reply_word, &w, err);
    return set_err(errptr, rc, err);
}

int qkv_touch(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
              int64_t exptime, char **errptr)
{
    char err[QKV_ERRLEN] = "", args[32];
    if (!c)
        return set_err(errptr, QKV_ERR_ARG, "client is NULL");
    snprintf(args, sizeof(args), " %lld", (long long)exptime);
    word_arg_t w = {"touch", KV_TOUCHED, KV_NOT_FOUND};
    int rc = write_cmd(c, o, key, klen, "touch", args, false, NULL, 0, reply_word, &w, err);
    return set_err(errptr, rc, err);
}

int qkv_incr(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
             uint64_t delta, uint64_t *value, char **errptr)
{
    char err[QKV_ERRLEN] = "", args[32];
    if (!c)
        return set_err(errptr, QKV_ERR_ARG, "client is NULL");
    snprintf(args, sizeof(args), " %llu", (unsigned long long)delta);
    incr_arg_t a = {0};
    int rc = write_cmd(c, o, key, klen, "incr", args, false, NULL, 0, reply_incr, &a, err);
    if (rc == 0 && value)
        *value = a.value;
    return set_err(errptr, rc, err);
}

/* ---- multi-get ---- */

typedef struct mget_group {
    qnode_t *node;
    qconn_t *conn;
    uint64_t gen;
    size_t *idx;     /* key indices of this node, in send order */
    size_t n, next;  /* keys; first key not yet sent */
    size_t sent;     /* keys of the current round */
    int rc;          /* 0, or why the group failed */
} mget_group_t;

/* Send the group's next round of vget commands. */
static int mget_send(mget_group_t *g, const char *const *keys, const size_t *klens,
                     const char *lvl, int64_t deadline, char *err)
{
    struct iovec iov[4 * MGET_CHUNK];
    int k = 0;
    size_t end = g->next + MGET_CHUNK < g->n ? g->next + MGET_CHUNK : g->n;
    for (size_t i = g->next; i < end; i++) {
        size_t ki = g->idx[i];
        iov[k++] = (struct iovec){(void *)"vget ", 5};
        iov[k++] = (struct iovec){(void *)keys[ki], klens[ki]};
        iov[k++] = (struct iovec){(void *)lvl, strlen(lvl)};
        iov[k++] = (struct iovec){(void *)"\r\n", 2};
    }
    g->sent = end - g->next;
    for (int off = 0; off < k; off += QCONN_MAX_IOV) {
        int rc = qconn_send(g->conn, iov + off, k - off < QCONN_MAX_IOV ? k - off : QCONN_MAX_IOV,
                            deadline, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int qkv_mget(qkv_client_t *c, const qkv_opts_t *o, size_t n, const char *const *keys,
             const size_t *klens, qkv_result_t **out, int *codes, char **errptr)
{
    char err[QKV_ERRLEN] = "", lvl[24];
    int rc, first = 0;
    mget_group_t *groups = NULL;
    size_t ng = 0;

    if (!c || !keys || !klens || !out || n > QKV_MGET_MAX)
        return set_err(errptr, QKV_ERR_ARG, "NULL argument or more than 4096 keys");
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        if (codes)
            codes[i] = 0;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = check_key(keys[i], klens[i], err)) < 0)
            return set_err(errptr, rc, err);
    if ((rc = level_token('r', level_of(c, o, false), lvl, sizeof(lvl), err)) < 0)
        return set_err(errptr, rc, err);
    int64_t deadline = deadline_of(c, o);
    int *krc = calloc(n ? n : 1, sizeof(*krc));
    groups = calloc(n ? n : 1, sizeof(*groups));
    if (!krc || !groups) {
        free(krc);
        free(groups);
        return set_err(errptr, QKV_ERR_NOMEM, "out of memory");
    }
    /* group the keys by their best replica */
    for (size_t i = 0; i < n; i++) {
        qnode_t *cand[1];
        krc[i] = 1; /* not answered yet */
        if (candidates(c, keys[i], klens[i], cand, 1) == 0)
            continue; /* answered below, one by one */
        size_t g = 0;
        while (g < ng && groups[g].node != cand[0])
            g++;
        if (g == ng) {
            groups[ng].node = cand[0];
            groups[ng].idx = malloc(n * sizeof(size_t));
            if (!groups[ng].idx) {
                krc[i] = 1;
                continue;
            }
            ng++;
        }
        groups[g].idx[groups[g].n++] = i;
    }
    for (size_t g = 0; g < ng; g++) {
        mget_group_t *gr = &groups[g];
        gr->rc = checkout(c, gr->node, deadline, &gr->conn, &gr->gen, false, NULL, err);
        if (gr->rc < 0)
            node_failed(c, gr->node);
    }
    /* rounds: every group sends a chunk, then every group reads it */
    for (bool more = true; more;) {
        more = false;
        for (size_t g = 0; g < ng; g++) {
            mget_group_t *gr = &groups[g];
            if (gr->rc == 0 && gr->next < gr->n)
                gr->rc = mget_send(gr, keys, klens, lvl, deadline, err);
        }
        for (size_t g = 0; g < ng; g++) {
            mget_group_t *gr = &groups[g];
            if (gr->rc != 0 || gr->next >= gr->n)
                continue;
            for (size_t i = 0; i < gr->sent && gr->rc == 0; i++) {
                size_t ki = gr->idx[gr->next];
                rc = result_read_vget(gr->conn, keys[ki], klens[ki], c->cfg.max_value_bytes,
                                      deadline, &out[ki], err);
                if (transport_error(rc)) {
                    gr->rc = rc;
                    if (rc != QKV_ERR_PROTO)
                        node_failed(c, gr->node);
                    break;
                }
                krc[ki] = rc; /* answered: a value or the server's error */
                gr->next++;
            }
            if (gr->rc == 0)
                more |= gr->next < gr->n;
        }
    }
    for (size_t g = 0; g < ng; g++) {
        mget_group_t *gr = &groups[g];
        if (gr->conn) {
            if (gr->rc == 0)
                checkin(c, gr->node, gr->conn, gr->gen);
            else
                qconn_close(gr->conn);
        }
        free(gr->idx);
    }
    free(groups);
    /* keys whose node failed: one by one, with failover (reads repeat safely) */
    for (size_t i = 0; i < n; i++) {
        if (krc[i] == 1)
            krc[i] = get_one(c, o, keys[i], klens[i], deadline, &out[i], err);
        if (codes)
            codes[i] = krc[i];
        if (krc[i] < 0 && first == 0) {
            first = krc[i];
            set_err(errptr, first, err);
        }
    }
    free(krc);
    return first;
}

/* ---- admin commands and topology ---- */

/* Read a reply body up to END into a malloc()ed '\n'-joined string. */
static int read_body(qconn_t *q, int64_t deadline, const char *what, char **out, char *err)
{
    size_t cap = 4096, len = 0;
    char *text = malloc(cap), *line;
    size_t ll;
    int rc;
    if (!text)
        return client_fail(err, QKV_ERR_NOMEM, "out of memory");
    for (;;) {
        if ((rc = qconn_line(q, deadline, &line, &ll, err)) < 0)
            break;
        if (ll == 3 && !memcmp(line, "END", 3)) {
            text[len] = '\0';
            *out = text;
            return 0;
        }
        if ((ll >= 5 && !memcmp(line, "ERROR", 5)) || (ll >= 13 && !memcmp(line, "SERVER_ERROR ", 13)) ||
            (ll >= 13 && !memcmp(line, "CLIENT_ERROR ", 13))) {
            rc = reply_error(line, ll, what, err);
            break;
        }
        if (len + ll + 2 > BODY_MAX) {
            rc = client_fail(err, QKV_ERR_PROTO, "%s: reply larger than %u bytes", what, BODY_MAX);
            break;
        }
        if (len + ll + 2 > cap) {
            while (len + ll + 2 > cap)
                cap *= 2;
            char *t = realloc(text, cap);
            if (!t) {
                rc = client_fail(err, QKV_ERR_NOMEM, "out of memory");
                break;
            }
            text = t;
        }
        memcpy(text + len, line, ll);
        len += ll;
        text[len++] = '\n';
    }
    free(text);
    return rc;
}

/* Send one command line to an open connection and read its body. */
static int admin_on(qconn_t *q, const char *cmd, int64_t deadline, char **out, char *err)
{
    struct iovec iov[2] = {{(void *)cmd, strlen(cmd)}, {(void *)"\r\n", 2}};
    int rc = qconn_send(q, iov, 2, deadline, err);
    return rc < 0 ? rc : read_body(q, deadline, cmd, out, err);
}

typedef struct admin_arg {
    const char *cmd;
    char *text;
} admin_arg_t;

static int reply_admin(qconn_t *q, void *arg, int64_t deadline, char *err)
{
    admin_arg_t *a = arg;
    return read_body(q, deadline, a->cmd, &a->text, err);
}

/* The value of "STAT name V" in a stats body; false if absent. */
static bool stat_u64(const char *body, const char *name, uint64_t *v)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "STAT %s ", name);
    const char *p = body;
    size_t pl = strlen(pat);
    while (p && *p) {
        if (!strncmp(p, pat, pl)) {
            char *end;
            errno = 0;
            unsigned long long x = strtoull(p + pl, &end, 10);
            if (errno || end == p + pl)
                return false;
            *v = x;
            return true;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return false;
}

static qnode_t *node_by_name(qkv_client_t *c, const char *name)
{
    for (size_t i = 0; i < c->nnodes; i++)
        if (!strcmp(c->nodes[i]->name, name))
            return c->nodes[i];
    return NULL;
}

/* Install a new members list (and ring, when given) as the topology.
 * Called by the refresh thread only. */
static int apply_topology(qkv_client_t *c, const qmember_t *m, size_t nm, qring_t *ring, char *err)
{
    qnode_t *fresh[QKV_MAX_NODES];
    size_t nf = 0;
    int rc = 0;

    /* allocate new nodes outside the lock */
    for (size_t i = 0; i < nm; i++) {
        if (node_by_name(c, m[i].name))
            continue;
        bool dup = false;
        for (size_t j = 0; j < nf; j++)
            dup |= !strcmp(fresh[j]->name, m[i].name);
        if (dup || c->nnodes + nf >= QKV_MAX_NODES)
            continue;
        qnode_t *n = calloc(1, sizeof(*n));
        if (!n || !(n->idle = calloc((size_t)c->cfg.max_idle_per_node, sizeof(*n->idle)))) {
            free(n);
            rc = client_fail(err, QKV_ERR_NOMEM, "out of memory");
            break;
        }
        pthread_mutex_init(&n->lock, NULL);
        snprintf(n->name, sizeof(n->name), "%s", m[i].name);
        atomic_store(&n->state, QNODE_GONE);
        fresh[nf++] = n;
    }
    qnode_t **map = NULL;
    if (ring && rc == 0 && !(map = calloc(ring->nnames ? ring->nnames : 1, sizeof(*map))))
        rc = client_fail(err, QKV_ERR_NOMEM, "out of memory");
    if (rc < 0) {
        for (size_t j = 0; j < nf; j++)
            node_free(fresh[j]);
        topo_ring_free(ring);
        return rc;
    }
    pthread_rwlock_wrlock(&c->topo_lock);
    for (size_t j = 0; j < nf; j++)
        c->nodes[c->nnodes++] = fresh[j];
    for (size_t i = 0; i < c->nnodes; i++) {
        qnode_t *n = c->nodes[i];
        const qmember_t *e = NULL;
        for (size_t j = 0; j < nm && !e; j++)
            if (!strcmp(m[j].name, n->name))
                e = &m[j];
        if (!e) {
            atomic_store(&n->state, QNODE_GONE);
            continue;
        }
        pthread_mutex_lock(&n->lock);
        if (strcmp(n->addr, e->addr) != 0) {
            snprintf(n->addr, sizeof(n->addr), "%s", e->addr);
            n->addr_ok = qaddr_parse(n->addr, &n->sa, NULL) == 0;
            n->gen++;
            node_drop_idle(n);
        }
        pthread_mutex_unlock(&n->lock);
        atomic_store(&n->state, (int)e->state);
    }
    if (ring) {
        for (size_t i = 0; i < ring->nnames; i++)
            map[i] = node_by_name(c, ring->names[i]);
        topo_ring_free(c->ring);
        free(c->ring_nodes);
        c->ring = ring;
        c->ring_nodes = map;
    }
    pthread_rwlock_unlock(&c->topo_lock);
    return 0;
}

/* Whether every ring node is a member and the other way round (a cheap
 * check that catches a ring from before a membership change). */
static bool ring_matches(const qkv_client_t *c, const qmember_t *m, size_t nm)
{
    if (!c->ring)
        return false;
    for (size_t i = 0; i < c->ring->nnames; i++) {
        bool found = false;
        for (size_t j = 0; j < nm && !found; j++)
            found = !strcmp(m[j].name, c->ring->names[i]);
        if (!found)
            return false;
    }
    return true;
}

/* One topology check against one connection to node n (NULL: a seed). */
static int refresh_via(qkv_client_t *c, qconn_t *q, qnode_t *n, int64_t deadline, char *err)
{
    char *stats = NULL, *members = NULL, *ringtxt = NULL;
    qmember_t *m = NULL;
    size_t nm = 0;
    qring_t *ring = NULL;
    uint64_t epoch = 0;
    /* both in one round trip */
    static const char both[] = "stats\r\nmembers\r\n";
    struct iovec iov = {(void *)both, sizeof(both) - 1};
    int rc = qconn_send(q, &iov, 1, deadline, err);
    if (rc == 0)
        rc = read_body(q, deadline, "stats", &stats, err);
    if (rc == 0)
        rc = read_body(q, deadline, "members", &members, err);
    if (rc == 0)
        rc = topo_parse_members(members, &m, &nm, err);
    if (rc == 0 && nm == 0)
        rc = client_fail(err, QKV_ERR_PROTO, "members: empty list");
    if (rc == 0) {
        bool have_epoch = stat_u64(stats, "ring_epoch", &epoch);
        if (!have_epoch || n == NULL || n != c->epoch_node || epoch != c->epoch ||
            !ring_matches(c, m, nm)) {
            rc = admin_on(q, "ring", deadline, &ringtxt, err);
            if (rc == 0)
                rc = topo_parse_ring(ringtxt, &ring, err);
        }
    }
    if (rc == 0) {
        rc = apply_topology(c, m, nm, ring, err); /* takes the ring */
        if (rc == 0 && ring) {
            /* a seed's epoch means nothing for the member it turns out to be */
            c->epoch_node = n;
            c->epoch = epoch;
        }
    }
    free(stats);
    free(members);
    free(ringtxt);
    free(m);
    return rc;
}

/* Check the topology: through the node the ring came from while it is
 * usable, else any usable member, else the seeds. */
static int refresh(qkv_client_t *c, char *err)
{
    int64_t deadline = client_now_ms() + c->cfg.timeout_ms, now = client_now_ms();
    qnode_t *order[QKV_MAX_NODES + 1];
    size_t k = 0;
    int rc = client_fail(err, QKV_ERR_CONN, "no seed or member reachable");

    pthread_rwlock_rdlock(&c->topo_lock);
    if (c->epoch_node && node_usable(c->epoch_node, now))
        order[k++] = c->epoch_node;
    for (size_t i = 0; i < c->nnodes && k < QKV_MAX_NODES; i++)
        if (c->nodes[i] != c->epoch_node && node_usable(c->nodes[i], now))
            order[k++] = c->nodes[i];
    pthread_rwlock_unlock(&c->topo_lock);
    for (size_t i = 0; i < k; i++) {
        qconn_t *q;
        uint64_t gen;
        if ((rc = checkout(c, order[i], deadline, &q, &gen, true, NULL, err)) < 0) {
            atomic_store(&order[i]->backoff_until, client_now_ms() + BACKOFF_MS);
            continue;
        }
        rc = refresh_via(c, q, order[i], deadline, err);
        if (rc == 0) {
            checkin(c, order[i], q, gen);
            return 0;
        }
        qconn_close(q);
        if (transport_error(rc))
            atomic_store(&order[i]->backoff_until, client_now_ms() + BACKOFF_MS);
    }
    for (size_t i = 0; i < c->nseeds; i++) {
        qconn_t *q;
        int64_t cd = client_now_ms() + c->cfg.connect_timeout_ms;
        if ((rc = qconn_open(&c->seeds[i], cd < deadline ? cd : deadline, &q, err)) < 0)
            continue;
        rc = refresh_via(c, q, NULL, deadline, err);
        qconn_close(q);
        if (rc == 0)
            return 0;
    }
    return rc;
}

static void *refresh_main(void *arg)
{
    qkv_client_t *c = arg;
    char err[QKV_ERRLEN];
    int64_t last_kicked = 0;

    pthread_mutex_lock(&c->mu);
    while (!c->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += c->cfg.refresh_ms / 1000;
        ts.tv_nsec += (long)(c->cfg.refresh_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!c->stop && !c->kick) {
            if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
                break;
        }
        if (c->stop)
            break;
        if (c->kick && client_now_ms() - last_kicked < KICK_MIN_MS) {
            /* errors come in bursts: one check per KICK_MIN_MS is enough */
            pthread_mutex_unlock(&c->mu);
            struct timespec d = {0, KICK_MIN_MS * 1000000L};
            nanosleep(&d, NULL);
            pthread_mutex_lock(&c->mu);
            continue;
        }
        if (c->kick)
            last_kicked = client_now_ms();
        c->kick = false;
        pthread_mutex_unlock(&c->mu);
        refresh(c, err); /* a failure keeps the old view; the next round retries */
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

int qkv_admin(qkv_client_t *c, const char *node, const char *command, char **reply,
              char **errptr)
{
    static const char *const allowed[] = {"stats", "members", "ring", "aae", "transfers"};
    char err[QKV_ERRLEN] = "";
    bool ok = false;
    int rc;

    if (reply)
        *reply = NULL;
    if (!c || !command || !reply)
        return set_err(errptr, QKV_ERR_ARG, "NULL argument");
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        ok |= !strcmp(command, allowed[i]);
    if (!ok)
        return set_err(errptr, QKV_ERR_ARG, "qkv_admin: command must be stats, members, ring, aae or transfers");
    int64_t deadline = client_now_ms() + c->cfg.timeout_ms;
    admin_arg_t a = {command, NULL};
    struct iovec iov[2] = {{(void *)command, strlen(command)}, {(void *)"\r\n", 2}};
    if (!node)
        rc = run(c, NULL, 0, iov, 2, true, deadline, reply_admin, &a, err);
    else {
        pthread_rwlock_rdlock(&c->topo_lock);
        qnode_t *n = node_by_name(c, node);
        pthread_rwlock_unlock(&c->topo_lock);
        if (!n)
            return set_err(errptr, QKV_ERR_ARG, "no member of that name");
        qconn_t *q;
        uint64_t gen;
        rc = checkout(c, n, deadline, &q, &gen, true, NULL, err);
        if (rc == 0) {
            rc = admin_on(q, command, deadline, &a.text, err);
            if (rc == 0)
                checkin(c, n, q, gen);
            else
                qconn_close(q);
        }
    }
    *reply = a.text;
    return set_err(errptr, rc, err);
}

/* ---- lifecycle ---- */

void qkv_config_init(qkv_config_t *cfg)
{
    if (!cfg)
        return;
    memset(cfg, 0, sizeof(*cfg));
    cfg->timeout_ms = 3000;
    cfg->connect_timeout_ms = 500;
    cfg->max_idle_per_node = 16;
    cfg->max_retries = 2;
    cfg->refresh_ms = 1000;
    cfg->read_level = QKV_LEVEL_DEFAULT;
    cfg->write_level = QKV_LEVEL_DEFAULT;
    cfg->max_value_bytes = 64u << 20;
}

static bool level_ok(int l)
{
    return l >= QKV_LEVEL_ALL && l <= QKV_LEVEL_MAX;
}

void qkv_close(qkv_client_t *c)
{
    if (!c)
        return;
    if (c->thread_started) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->thread, NULL);
    }
    for (size_t i = 0; i < c->nnodes; i++)
        node_free(c->nodes[i]);
    topo_ring_free(c->ring);
    free(c->ring_nodes);
    free(c->seeds);
    pthread_rwlock_destroy(&c->topo_lock);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

qkv_client_t *qkv_connect(const char *seeds, const qkv_config_t *cfg, char **errptr)
{
    char err[QKV_ERRLEN] = "";
    qkv_client_t *c;
    int rc;

    if (!seeds || !*seeds) {
        set_err(errptr, QKV_ERR_ARG, "no seed address given");
        return NULL;
    }
    if (!(c = calloc(1, sizeof(*c)))) {
        set_err(errptr, QKV_ERR_NOMEM, "out of memory");
        return NULL;
    }
    qkv_config_init(&c->cfg);
    if (cfg)
        c->cfg = *cfg;
    pthread_rwlock_init(&c->topo_lock, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    const qkv_config_t *k = &c->cfg;
    if (k->timeout_ms < 1 || k->connect_timeout_ms < 1 || k->max_idle_per_node < 0 ||
        k->max_idle_per_node > 4096 || k->max_retries < 0 || k->max_retries > 15 ||
        k->refresh_ms < 100 || k->refresh_ms > 60000 || !level_ok(k->read_level) ||
        !level_ok(k->write_level) || k->max_value_bytes == 0) {
        set_err(errptr, QKV_ERR_ARG, "bad qkv_config_t value");
        qkv_close(c);
        return NULL;
    }
    /* seeds: "h:p,h:p" */
    size_t ns = 1;
    for (const char *p = seeds; *p; p++)
        ns += *p == ',';
    c->seeds = calloc(ns, sizeof(*c->seeds));
    if (!c->seeds) {
        set_err(errptr, QKV_ERR_NOMEM, "out of memory");
        qkv_close(c);
        return NULL;
    }
    for (const char *p = seeds; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        char one[QKV_NAME_MAX + 8];
        if (l == 0 || l >= sizeof(one)) {
            set_err(errptr, QKV_ERR_ARG, "empty or over-long seed address");
            qkv_close(c);
            return NULL;
        }
        memcpy(one, p, l);
        one[l] = '\0';
        if ((rc = qaddr_parse(one, &c->seeds[c->nseeds], err)) < 0) {
            set_err(errptr, rc, err);
            qkv_close(c);
            return NULL;
        }
        c->nseeds++;
        p = e ? e + 1 : p + l;
    }
    if ((rc = refresh(c, err)) < 0 || !c->ring) {
        set_err(errptr, rc < 0 ? rc : QKV_ERR_PROTO, rc < 0 ? err : "the cluster has no ring yet");
        qkv_close(c);
        return NULL;
    }
    if (pthread_create(&c->thread, NULL, refresh_main, c) != 0) {
        set_err(errptr, QKV_ERR_NOMEM, "cannot start the refresh thread");
        qkv_close(c);
        return NULL;
    }
    c->thread_started = true;
    return c;
}
