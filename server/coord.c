/*
 * coord.c - quorum reads and writes, read repair, sloppy quorum (see
 * coord.h), and the replica side of their messages.
 *
 *   client cmd ──> coord_get / coord_write            (on any node C)
 *                    │ plan: the key's preference list, down owners
 *                    │ replaced by substitutes (hint_for = owner), owners
 *                    │ with no substitute left to a hint kept here
 *                    v
 *   read:   REPLICA_GET ──> every target (own replica by direct call)
 *           R replies ──> merge (obj_sync) ──> done
 *           all replied ──> REPLICA_PUT(merged) to every stale replica
 *
 *   write:  set/delete: C is an owner?  no ──> COORD_WRITE to the first
 *           live owner A, which runs the rest and answers C
 *           incr, cas, append, add...: C is the FIRST live owner?  no ──>
 *           COORD_WRITE to it (one place orders them, so they are atomic)
 *
 *           at the coordinating owner, one write of a key at a time:
 *           key queue (keyq.c) ──> read phase: own replica only (set), or
 *             R replicas (the answer of the others depends on it)
 *           kv_decide ──> node_write: mint the dot against our own stored
 *             object and persist it, in one step ──> key queue released
 *           ──> REPLICA_PUT(stored object) to every other target, which
 *             merges it (never mints) ──> W acks (ours counts) ──> done
 *
 * An op lives until its callback ran and every request it sent has
 * answered (each holds a reference); the transport guarantees each request
 * answers once, at the latest at its deadline (cluster.request_timeout_ms).
 */
#include "coord.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "../common/log.h"
#include "handoff.h"
#include "keyq.h"
#include "msg.h"
#include "node.h"
#include "server.h"

/* at most cluster.n targets (config.c bounds n to 16) */
#define MAXT 16

typedef struct target {
    uint32_t node;     /* ring index */
    uint32_t hint_for; /* RING_NODE_NONE, or the down owner this node stands in for */
} target_t;

typedef struct plan {
    cluster_view_t *view; /* held: the node indexes below are this view's */
    target_t t[MAXT];
    int n;
    uint32_t orphans[MAXT]; /* down owners nobody stands in for: we keep their hint */
    int norphans;
    /* while a member joins or leaves: the key's owners in the future ring
     * that the current ring lacks (view->fnodes indexes).  They get every
     * write as extra replicas, not counted for W, so a range being
     * transferred misses nothing written meanwhile. */
    uint32_t pend[MAXT];
    int npend;
} plan_t;

enum rstate { R_UNASKED = 0, R_PENDING, R_FOUND, R_MISSING, R_FAILED };

typedef struct op {
    server_t *srv;
    int refs;
    uint8_t key[MC_KEY_MAX];
    size_t klen;
    plan_t plan;
    coord_done_fn done;
    void *arg;
    bool done_called;
    /* read phase */
    int r, rgot, rfail;
    uint8_t rstate[MAXT];
    uint8_t order[MAXT]; /* targets in the order they are asked: our own first */
    int nask;            /* asked so far: order[0..nask) */
    int ask_max;         /* never asked: order[ask_max..plan.n) */
    struct event *spec;  /* speculative retry timer, while armed (holds a reference) */
    obj_t rep[MAXT];
    int local_i;        /* plan index of our own replica's read, or -1 */
    uint64_t local_seq; /* srv->write_seq right after that read */
    obj_t merged;
    bool merged_local; /* merged is our own replica's answer as read (a blind set) */
    int merged_rep;    /* a read: rep[merged_rep] was moved into merged, which has not
                        * changed since (-1: none); saves copying agreeing answers */
    bool read_repair;
    /* write */
    bool is_write;
    bool writing; /* in the write phase */
    bool locked;  /* holds its key in srv->keyq */
    int64_t queued_us; /* when it started waiting for its key, 0 if it did not */
    struct op *ready_next; /* in coord_state.ready: its turn has come */
    kv_op_t kop;
    uint8_t *data;
    vclock_t ctx; /* the client's explicit causal context, when has_ctx */
    bool has_ctx;
    int w, wgot, wfail;
    enum kv_result result;
    uint64_t number;
    obj_t newobj;
    /* a write run for another node's COORD_WRITE: answer on this link */
    peer_link_t *link;
    uint64_t req_id;
} op_t;

/* Writes queued behind a key, and those whose turn has come. */
struct coord_state {
    uint64_t rng;       /* xorshift64: which reads ask every replica */
    keyq_t *keyq;
    struct event *turn; /* runs the ready list from the loop */
    op_t *ready, *ready_tail;
    bool closing;       /* coord_close: ready ops fail instead of running */
    msgpack_sbuffer sb; /* scratch for small bodies packed and sent at once */
};

static const char *node_name(const op_t *op, uint32_t idx)
{
    return op->plan.view->nodes[idx].name;
}

static bool is_self(const op_t *op, uint32_t idx)
{
    return idx == op->plan.view->self_idx;
}

typedef struct req {
    op_t *op;
    int i; /* target index */
} req_t;

/* ---- plans ---- */

/* The key's future owners that are not current owners (plan_t.pend). */
static void plan_pending(const cluster_view_t *v, const void *key, size_t klen,
                         const uint32_t *owners, uint32_t no, plan_t *p)
{
    const uint32_t *fut;
    uint32_t nf = ring_preflist(v->future, key, klen, &fut);
    for (uint32_t i = 0; i < nf && p->npend < MAXT; i++) {
        const cluster_node_t *fn = &v->fnodes[fut[i]];
        bool current = false;
        for (uint32_t j = 0; j < no && !current; j++)
            current = !strcmp(v->nodes[owners[j]].name, fn->name);
        if (!current)
            p->pend[p->npend++] = fut[i];
    }
}

/* Plan the key's targets on the current view (held by the plan). */
static int plan_build(server_t *srv, const void *key, size_t klen, plan_t *p)
{
    cluster_view_t *v = srv->cluster.view;
    memset(p, 0, sizeof(*p));
    if (!v)
        return -EAGAIN;
    p->view = cluster_view_hold(v);
    const uint32_t *owners;
    uint32_t no = ring_preflist(v->ring, key, klen, &owners);
    if (v->future)
        plan_pending(v, key, klen, owners, no, p);
    if (!srv->cfg.handoff_enabled) {
        for (uint32_t i = 0; i < no; i++)
            if (!v->down[owners[i]])
                p->t[p->n++] = (target_t){owners[i], RING_NODE_NONE};
        return 0;
    }
    ring_replica_t rr[MAXT];
    int k = ring_preflist_healthy(v->ring, key, klen, v->down, rr, MAXT);
    if (k < 0)
        return k;
    for (int i = 0; i < k; i++)
        p->t[p->n++] = (target_t){rr[i].node, rr[i].hint_for};
    for (uint32_t i = 0; i < no; i++) {
        if (!v->down[owners[i]])
            continue;
        bool covered = false;
        for (int j = 0; j < k; j++)
            covered |= rr[j].hint_for == owners[i];
        if (!covered)
            p->orphans[p->norphans++] = owners[i];
    }
    return 0;
}

/* Index in the plan of our own replica (as an owner), or -1. */
static int plan_self(const plan_t *p)
{
    for (int i = 0; p->view && i < p->n; i++)
        if (p->t[i].node == p->view->self_idx && p->t[i].hint_for == RING_NODE_NONE)
            return i;
    return -1;
}

/* ---- op lifecycle ---- */

static op_t *op_new(server_t *srv, const void *key, size_t klen, coord_done_fn done, void *arg)
{
    op_t *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->srv = srv;
    op->refs = 1;
    memcpy(op->key, key, klen);
    op->klen = klen;
    op->done = done;
    op->arg = arg;
    op->local_i = -1;
    op->merged_rep = -1;
    /* calloc'ed: every obj_t is already an empty object (obj_init zeroes) */
    return op;
}

static void op_unlock(op_t *op);

static void op_unref(op_t *op)
{
    if (--op->refs > 0)
        return;
    op_unlock(op); /* never left held; normally released long before */
    if (op->spec)
        event_free(op->spec);
    vc_free(&op->ctx);
    for (int i = 0; i < op->plan.n; i++) /* only answers of targets are kept */
        obj_free(&op->rep[i]);
    obj_free(&op->merged);
    obj_free(&op->newobj);
    free(op->data);
    if (op->link)
        transport_link_release(op->link);
    cluster_view_release(op->plan.view);
    free(op);
}

/* Report once.  obj (may be NULL) is moved into the result. */
static void spec_cancel(op_t *op);

static void op_finish(op_t *op, int status, int got, int needed, obj_t *obj)
{
    op_unlock(op);
    spec_cancel(op);
    if (op->done_called)
        return;
    op->done_called = true;
    coord_result_t res = {.status = status, .got = got, .needed = needed,
                          .result = op->result, .number = op->number};
    obj_init(&res.obj);
    if (obj) {
        res.obj = *obj;
        obj_init(obj);
        res.found = res.obj.nsib > 0 || res.obj.vc.n > 0;
    }
    if (status == COORD_QUORUM)
        op->srv->coord.quorum_failures++;
    op->done(op->arg, &res);
    obj_free(&res.obj);
}

/* ---- message bodies (msg.h defines them) ---- */

/* A REPLICA_PUT of o for key, meant for hint_for ("" = the replica
 * itself), into sb.  0, or negative when it cannot be encoded. */
static int encode_put(msgpack_sbuffer *sb, const void *key, size_t klen, const char *hint_for,
                      const obj_t *o)
{
    msg_replica_put_t m = {.key = key, .klen = klen, .obj_in = o};
    snprintf(m.hint, sizeof(m.hint), "%s", hint_for);
    return msg_encode(sb, MSG_REPLICA_PUT, MSG_REQ, &m);
}

/* Send type with the n body pieces to target i of op; the reply (or the
 * failure) goes to cb, exactly once, from the loop.  -ENOMEM when nothing
 * was sent (the caller counts that target as failed). */
static int op_send_iov(op_t *op, int i, uint8_t type, const struct iovec *body, int n,
                       peer_reply_fn cb)
{
    server_t *srv = op->srv;
    const cluster_node_t *nd = &op->plan.view->nodes[op->plan.t[i].node];
    req_t *rq = malloc(sizeof(*rq));
    if (!rq)
        return -ENOMEM;
    rq->op = op;
    rq->i = i;
    op->refs++;
    if (transport_request_iov(srv->cluster.transport, nd->host, nd->peer_port, type, body, n,
                              srv->cfg.request_timeout_ms, cb, rq) < 0) {
        free(rq);
        op->refs--;
        return -ENOMEM;
    }
    return 0;
}

/* op_send_iov of the one body sb. */
static int op_send(op_t *op, int i, uint8_t type, msgpack_sbuffer *sb, peer_reply_fn cb)
{
    struct iovec body = {sb->data, sb->size};
    return op_send_iov(op, i, type, &body, sb->size ? 1 : 0, cb);
}

/* op_send of a REPLICA_PUT whose body is head (sb) + enc, two pieces the
 * transport copies into the frame as they are. */
static int op_send_enc(op_t *op, int i, msgpack_sbuffer *head, const uint8_t *enc, size_t enclen,
                       peer_reply_fn cb)
{
    struct iovec body[2] = {{head->data, head->size}, {(void *)enc, enclen}};
    return op_send_iov(op, i, MSG_REPLICA_PUT, body, 2, cb);
}

/* ---- read phase ---- */

static void write_phase(op_t *op);
static void send_pending(op_t *op);

static void ignore_reply(void *arg, int status, const frame_t *f)
{
    (void)status;
    (void)f;
    req_t *rq = arg;
    if (!rq)
        return;
    op_unref(rq->op);
    free(rq);
}

/* Every replica answered the read: send the merged object to the stale. */
static void read_repair(op_t *op)
{
    server_t *srv = op->srv;
    bool have = op->merged.nsib > 0 || op->merged.vc.n > 0;
    if (!have)
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < op->plan.n; i++) {
        if (op->rstate[i] != R_FOUND && op->rstate[i] != R_MISSING)
            continue;
        if (op->rstate[i] == R_FOUND &&
            (i == op->merged_rep || obj_equal(&op->rep[i], &op->merged)))
            continue;
        srv->coord.read_repairs++;
        const target_t *t = &op->plan.t[i];
        if (is_self(op, t->node)) {
            if (t->hint_for == RING_NODE_NONE)
                node_merge(srv, op->key, op->klen, &op->merged);
            else
                handoff_store(srv, node_name(op, t->hint_for), op->key, op->klen, &op->merged);
            continue;
        }
        if (encode_put(&sb, op->key, op->klen,
                       t->hint_for == RING_NODE_NONE ? "" : node_name(op, t->hint_for),
                       &op->merged) == 0)
            op_send(op, i, MSG_REPLICA_PUT, &sb, ignore_reply);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* Count one read answer and move the op on when that decides something. */
static void read_progress(op_t *op)
{
    int pending = op->nask - op->rgot - op->rfail;
    if (!op->is_write) {
        if (op->rgot >= op->r && !op->done_called) {
            if (pending == 0) { /* nothing more to wait for: repair, then hand over */
                if (op->read_repair)
                    read_repair(op);
                op_finish(op, COORD_OK, op->rgot, op->r, &op->merged);
                return;
            }
            obj_t copy;
            obj_init(&copy);
            if (obj_copy(&copy, &op->merged) < 0) {
                op_finish(op, -ENOMEM, 0, 0, NULL);
                return;
            }
            op_finish(op, COORD_OK, op->rgot, op->r, &copy);
            obj_free(&copy);
        } else if (pending == 0 && op->nask == op->ask_max && !op->done_called) {
            op_finish(op, COORD_QUORUM, op->rgot, op->r, NULL);
        } else if (pending == 0 && op->done_called && op->read_repair) {
            read_repair(op);
        }
        return;
    }
    if (op->writing)
        return; /* late answers of the read phase of a write */
    if (op->rgot >= op->r) {
        op->writing = true;
        write_phase(op);
    } else if (pending == 0 && op->nask == op->ask_max) {
        op_finish(op, COORD_QUORUM, op->rgot, op->r, NULL);
    }
}

static void read_fill(op_t *op);

/* o: the answer when status is 1 (moved out); may be NULL otherwise. */
static void read_answer(op_t *op, int i, int status, obj_t *o)
{
    if (status < 0) {
        op->rstate[i] = R_FAILED;
        op->rfail++;
        read_fill(op); /* a replica that failed is replaced at once */
    } else {
        op->rstate[i] = status == 1 ? R_FOUND : R_MISSING;
        op->rgot++;
        if (status == 1) {
            obj_purge(o, node_now_us(), op->srv->flush_us);
            if (op->is_write && op->ask_max == 1 && i == op->local_i && op->rgot == 1 &&
                op->merged.nsib == 0 && op->merged.vc.n == 0) {
                /* a blind set's only answer, our own: it is the merged
                 * object as it is (write_phase hands it to node_write) */
                obj_free(&op->merged);
                op->merged = *o;
                obj_init(o);
                op->merged_local = true;
                read_progress(op);
                return;
            }
            bool empty = op->merged.nsib == 0 && op->merged.vc.n == 0;
            if (!op->is_write && empty && op->merged_rep < 0) {
                /* a read's first object: it is the merged object as it is */
                obj_free(&op->merged);
                op->merged = *o;
                obj_init(o);
                op->merged_rep = i;
                read_progress(op);
                return;
            }
            /* an answer equal to the merged object changes nothing (the
             * usual case: replicas agree); otherwise merge it, after giving
             * the answer held in merged its own copy back */
            bool same = op->merged_rep >= 0 && obj_equal(&op->merged, o);
            if (!same && op->merged_rep >= 0) {
                if (obj_copy(&op->rep[op->merged_rep], &op->merged) < 0)
                    op->rstate[op->merged_rep] = R_FAILED; /* no repair for it, that is all */
                op->merged_rep = -1;
            }
            if (!same && obj_sync(&op->merged, o) < 0) {
                op->rstate[i] = R_FAILED;
                op->rgot--;
                op->rfail++;
            }
            obj_free(&op->rep[i]);
            op->rep[i] = *o; /* kept for read repair's comparison */
            obj_init(o);
        }
    }
    read_progress(op);
}

static void on_get_reply(void *arg, int status, const frame_t *f)
{
    req_t *rq = arg;
    if (!rq)
        return;
    op_t *op = rq->op;
    msg_any_t m;
    int st = -EIO;
    if (status == 0 && f && msg_decode(MSG_REPLICA_GET, MSG_REP, &f->body, &m) == 0) {
        if (m.rgot.code == 1)
            st = 0; /* missing */
        else if (m.rgot.code == 0)
            st = 1;
        else if (m.rgot.code == -EBUSY)
            op->srv->admit.stats.replica_busy++; /* failed: the next replica is asked */
        else
            op->srv->coord.replica_errors++;
    } else {
        memset(&m, 0, sizeof(m));
        if (status == 0)
            op->srv->coord.replica_errors++;
    }
    read_answer(op, rq->i, st, &m.rgot.obj);
    msg_free(MSG_REPLICA_GET, MSG_REP, &m);
    free(rq);
    op_unref(op);
}

/* Our own replica (or hint) of the key: 1 found, 0 missing, <0 error. */
static int local_get(op_t *op, const target_t *t, obj_t *o)
{
    if (t->hint_for == RING_NODE_NONE) /* a write persists next: no cache copy */
        return op->is_write ? node_read_take(op->srv, op->key, op->klen, o)
                            : node_read(op->srv, op->key, op->klen, o);
    return handoff_get(op->srv, node_name(op, t->hint_for), op->key, op->klen, o);
}

/* Ask target i for its replica (our own by direct call: the answer is
 * counted before this returns). */
static void read_ask(op_t *op, int i)
{
    const target_t *t = &op->plan.t[i];
    op->rstate[i] = R_PENDING;
    if (is_self(op, t->node)) {
        obj_t o;
        obj_init(&o);
        int rc = local_get(op, t, &o);
        if (rc >= 0 && t->hint_for == RING_NODE_NONE) {
            op->local_i = i;
            op->local_seq = op->srv->write_seq;
        }
        read_answer(op, i, rc, &o);
        obj_free(&o);
        return;
    }
    msgpack_sbuffer *sb = &op->srv->coordq->sb; /* sent (copied) before anything else runs */
    msg_replica_get_t m = {.key = op->key, .klen = op->klen};
    snprintf(m.hint, sizeof(m.hint), "%s",
             t->hint_for == RING_NODE_NONE ? "" : node_name(op, t->hint_for));
    int rc = msg_encode(sb, MSG_REPLICA_GET, MSG_REQ, &m);
    if (rc == 0)
        rc = op_send(op, i, MSG_REPLICA_GET, sb, on_get_reply);
    if (rc < 0)
        read_answer(op, i, -ENOMEM, NULL);
}

/* Ask the next target not asked yet; false when there is none. */
static bool read_ask_next(op_t *op)
{
    if (op->nask >= op->ask_max)
        return false;
    read_ask(op, op->order[op->nask++]);
    return true;
}

/* Keep enough replicas asked that R answers can still come: after a
 * failure, the next replica in line replaces it. */
static void read_fill(op_t *op)
{
    while (!op->done_called && !op->writing &&
           op->rgot + (op->nask - op->rgot - op->rfail) < op->r && read_ask_next(op))
        ;
}

static void spec_arm(op_t *op);

/* A replica asked has not answered within cluster.speculative_retry_ms:
 * ask the next one too (Cassandra's speculative retry), whichever answers
 * first counts. */
static void on_speculate(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    op_t *op = arg;
    if (!op->done_called && !op->writing && op->rgot < op->r && read_ask_next(op)) {
        op->srv->coord.speculative_reads++;
        spec_arm(op);
    }
    op_unref(op); /* the timer's reference */
}

static void spec_arm(op_t *op)
{
    int ms = op->srv->cfg.speculative_retry_ms;
    if (ms <= 0 || op->nask >= op->ask_max || op->done_called)
        return;
    if (!op->spec && !(op->spec = evtimer_new(op->srv->base, on_speculate, op)))
        return; /* no memory for a timer: the read just waits, as without retry */
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (evtimer_add(op->spec, &tv) == 0)
        op->refs++;
}

/* Stop a pending speculative retry (the op has its answer). */
static void spec_cancel(op_t *op)
{
    if (op->spec && evtimer_pending(op->spec, NULL)) {
        evtimer_del(op->spec);
        op->refs--; /* the timer's; the caller still holds one */
    }
}

enum read_mode {
    READ_LOCAL, /* our own replica only (a blind set's context) */
    READ_R,     /* R replicas, ours first; more only to replace or back up slow ones */
    READ_ALL,   /* every replica (read repair of all of them) */
};

static void read_start(op_t *op, enum read_mode mode)
{
    /* our own replica(s) first: no message, and the freshest for the
     * writes we coordinate; then the others in preference-list order */
    int k = 0, nself = 0;
    for (int i = 0; i < op->plan.n; i++)
        if (is_self(op, op->plan.t[i].node))
            op->order[k++] = (uint8_t)i;
    nself = k;
    for (int i = 0; i < op->plan.n; i++)
        if (!is_self(op, op->plan.t[i].node))
            op->order[k++] = (uint8_t)i;
    op->ask_max = mode == READ_LOCAL ? nself : op->plan.n;
    int first = mode == READ_ALL ? op->plan.n : mode == READ_LOCAL ? nself : op->r;
    if (first > op->ask_max)
        first = op->ask_max;
    op->refs++; /* the loop below may finish the op through synchronous answers */
    /* all of the first batch counts as pending before any is asked: our
     * own replica answers at once, and must not look like the last one */
    op->nask = first;
    for (int j = 0; j < first; j++) {
        if (op->is_write && (op->writing || op->done_called))
            break; /* a write decided on what it has; a read goes on for repair */
        read_ask(op, op->order[j]);
    }
    if (op->ask_max == 0)
        read_progress(op);
    else if (!op->done_called && op->nask > nself)
        spec_arm(op);
    op_unref(op);
}

static bool repair_roll(server_t *srv);

/* An R=1 read of a key this node owns is its own replica's answer: give it
 * at once, without an op or a message; also when the read was picked to
 * repair every replica (all) but this node is the key's only replica
 * (n = 1: nothing to compare or repair).  Returns false otherwise. */
static bool get_local_only(server_t *srv, const void *key, size_t klen, int r, bool all,
                           bool borrow, coord_done_fn done, void *arg)
{
    const cluster_view_t *v = srv->cluster.view;
    const uint32_t *owners;
    if (!v || r != 1)
        return false;
    uint32_t no = ring_preflist(v->ring, key, klen, &owners);
    bool owner = false;
    for (uint32_t i = 0; i < no; i++)
        owner |= owners[i] == v->self_idx;
    if (!owner || (all && no > 1))
        return false;
    srv->coord.reads++;
    coord_result_t res = {.status = COORD_OK, .got = 1, .needed = 1};
    obj_init(&res.obj);
    int rc = borrow ? node_read_peek(srv, key, klen, &res.obj, &res.view)
                    : node_read(srv, key, klen, &res.obj);
    if (rc < 0)
        res.status = rc;
    res.found = rc == 1;
    done(arg, &res);
    obj_free(&res.obj);
    return true;
}

static void get(server_t *srv, const void *key, size_t klen, int r, bool borrow,
                coord_done_fn done, void *arg)
{
    /* a fraction of reads asks every replica and repairs them all */
    bool all = repair_roll(srv);
    if (get_local_only(srv, key, klen, r, all, borrow, done, arg))
        return;
    op_t *op = op_new(srv, key, klen, done, arg);
    if (!op) {
        coord_result_t res = {.status = -ENOMEM};
        done(arg, &res);
        return;
    }
    srv->coord.reads++;
    op->r = r;
    /* cluster.read_repair = false: no read repairs at all (tests that must
     * see anti-entropy alone at work) */
    op->read_repair = srv->cfg.read_repair;
    if (plan_build(srv, key, klen, &op->plan) < 0)
        op->plan.n = 0;
    read_start(op, all ? READ_ALL : READ_R);
    op_unref(op);
}

void coord_get(server_t *srv, const void *key, size_t klen, int r, coord_done_fn done, void *arg)
{
    get(srv, key, klen, r, false, done, arg);
}

void coord_get_borrow(server_t *srv, const void *key, size_t klen, int r, coord_done_fn done,
                      void *arg)
{
    get(srv, key, klen, r, true, done, arg);
}

/* ---- write phase ---- */

static void write_progress(op_t *op)
{
    int pending = op->plan.n - op->wgot - op->wfail;
    if (op->done_called)
        return;
    if (op->wgot >= op->w) {
        obj_t copy;
        obj_init(&copy);
        bool want = op->kop.cmd == MC_GAT || op->kop.cmd == MC_GATS;
        if (want && obj_copy(&copy, &op->newobj) < 0) {
            op_finish(op, -ENOMEM, 0, 0, NULL);
            return;
        }
        op_finish(op, COORD_OK, op->wgot, op->w, want ? &copy : NULL);
        obj_free(&copy);
    } else if (pending == 0) {
        op_finish(op, COORD_QUORUM, op->wgot, op->w, NULL);
    }
}

static void write_answer(op_t *op, int i, bool ok)
{
    (void)i;
    if (ok)
        op->wgot++;
    else
        op->wfail++;
    write_progress(op);
}

static void on_put_reply(void *arg, int status, const frame_t *f)
{
    req_t *rq = arg;
    op_t *op = rq->op;
    bool ok = status == 0 && frame_status_ok(f);
    int64_t code;
    if (status == 0 && !ok) {
        if (msg_decode_status(&f->body, &code) && code == -EBUSY)
            op->srv->admit.stats.replica_busy++;
        else
            op->srv->coord.replica_errors++;
    }
    write_answer(op, rq->i, ok);
    free(rq);
    op_unref(op);
}

/* dst = the pointwise minimum of a and b (an entry only where both have
 * one). */
static int vc_clip(vclock_t *dst, const vclock_t *a, const vclock_t *b)
{
    for (uint32_t i = 0; i < a->n; i++) {
        uint64_t m = vc_get(b, a->e[i].node);
        uint64_t c = a->e[i].counter < m ? a->e[i].counter : m;
        if (c > 0 && vc_set(dst, a->e[i].node, c, a->e[i].ts_us) < 0)
            return -ENOMEM;
    }
    return 0;
}

/* The read phase reached its quorum: decide; if it writes, mint and
 * persist the new version here (node_write), let the next write of the key
 * go, and send the stored object to every other target. */
static void write_phase(op_t *op)
{
    server_t *srv = op->srv;
    sibling_t sib;
    bool write = false;
    int64_t now_us = node_now_us();
    op->result = kv_decide(&op->kop, op->key, op->klen, &op->merged, now_us, &sib, &write,
                           &op->number);
    if (!write) {
        op_finish(op, COORD_OK, op->rgot, op->r, NULL);
        return;
    }
    /* the write supersedes what it read, or what the client says it read
     * but no more than the replicas hold: a context naming versions nobody
     * has (made up, or from another cluster) must not make the key's
     * vector claim them, which would hide real writes later */
    vclock_t clipped;
    vc_init(&clipped);
    const vclock_t *ctx = &op->merged.vc;
    int self = plan_self(&op->plan);
    obj_t *known = NULL;
    bool unchanged = self >= 0 && op->local_i == self && op->local_seq == srv->write_seq;
    if (op->has_ctx || (unchanged && op->merged_local)) {
        /* merged is handed to node_write below: the context is a copy */
        int crc = op->has_ctx ? vc_clip(&clipped, &op->ctx, &op->merged.vc)
                              : vc_copy(&clipped, &op->merged.vc);
        if (crc < 0) {
            free(sib.value);
            op_finish(op, -ENOMEM, 0, 0, NULL);
            return;
        }
        ctx = &clipped;
    }
    if (unchanged) /* nothing written since we read it */
        known = op->merged_local ? &op->merged : &op->rep[self];
    uint8_t *enc = NULL; /* the stored bytes: what every replica gets */
    size_t enclen = 0;
    int rc = self < 0 ? -EINVAL
                      : node_write(srv, op->key, op->klen, known, ctx, &sib, now_us, &op->newobj,
                                   &enc, &enclen);
    free(sib.value);
    vc_free(&clipped);
    op_unlock(op);
    if (rc < 0) {
        op_finish(op, rc, 0, 0, NULL);
        return;
    }
    if (!sib.tombstone)
        srv->stats.total_items++;

    /* one REPLICA_PUT per other target: a small head of its own (key, hint)
     * and the stored encoding itself, which the transport copies once,
     * into the frame */
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    op->refs++;
    write_answer(op, self, true);
    for (int i = 0; i < op->plan.n; i++) {
        if (i == self)
            continue;
        const target_t *t = &op->plan.t[i];
        const char *hint = t->hint_for == RING_NODE_NONE ? "" : node_name(op, t->hint_for);
        if (is_self(op, t->node)) { /* we also stand in for a down owner */
            rc = handoff_store(srv, hint, op->key, op->klen, &op->newobj);
            write_answer(op, i, rc == 0);
            continue;
        }
        if (enc ? msg_rput_head(&sb, op->key, op->klen, hint, enclen) < 0 ||
                      op_send_enc(op, i, &sb, enc, enclen, on_put_reply) < 0
                : encode_put(&sb, op->key, op->klen, hint, &op->newobj) < 0 ||
                      op_send(op, i, MSG_REPLICA_PUT, &sb, on_put_reply) < 0)
            write_answer(op, i, false);
    }
    msgpack_sbuffer_destroy(&sb);
    free(enc);
    /* owners that are down with nobody to stand in: we keep their hint (it
     * does not count toward W: it is not a replica anyone can read) */
    for (int i = 0; i < op->plan.norphans; i++)
        handoff_store(srv, node_name(op, op->plan.orphans[i]), op->key, op->klen, &op->newobj);
    send_pending(op);
    op_unref(op);
}

/* A future owner did not take the write (down, refused, no answer): it
 * gets a hint instead, delivered when it is up (joining or not), so a
 * range in transfer misses nothing written meanwhile. */
static void on_pending_reply(void *arg, int status, const frame_t *f)
{
    req_t *rq = arg;
    op_t *op = rq->op;
    if (!(status == 0 && frame_status_ok(f)))
        handoff_store(op->srv, op->plan.view->fnodes[op->plan.pend[rq->i]].name, op->key,
                      op->klen, &op->newobj);
    op_unref(op);
    free(rq);
}

/* The write to the key's future owners (plan_t.pend), not counted for W. */
static void send_pending(op_t *op)
{
    server_t *srv = op->srv;
    const cluster_view_t *v = op->plan.view;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (int i = 0; i < op->plan.npend; i++) {
        const cluster_node_t *n = &v->fnodes[op->plan.pend[i]];
        srv->coord.pending_writes++;
        if (n->is_self) {
            node_merge(srv, op->key, op->klen, &op->newobj);
            continue;
        }
        req_t *rq = n->alive && (sb.size > 0 ||
                                 encode_put(&sb, op->key, op->klen, "", &op->newobj) == 0)
                        ? malloc(sizeof(*rq))
                        : NULL;
        if (rq) {
            rq->op = op;
            rq->i = i;
            op->refs++;
            if (transport_request(srv->cluster.transport, n->host, n->peer_port,
                                  MSG_REPLICA_PUT, sb.data, sb.size, srv->cfg.request_timeout_ms,
                                  on_pending_reply, rq) == 0)
                continue;
            free(rq);
            op->refs--;
        }
        handoff_store(srv, n->name, op->key, op->klen, &op->newobj);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* ---- one write of a key at a time ---- */

/* The key is ours: read, then (write_phase) decide and write. */
static void write_start(op_t *op)
{
    /* a blind set needs only our own context (overwrite what we have seen);
     * everything else answers from what R replicas hold, and so does a set
     * with the client's own context (which is clipped to what they hold) */
    bool blind = op->kop.cmd == MC_SET && !op->has_ctx;
    int r = op->r;
    if (blind)
        op->r = 1;
    read_start(op, blind ? READ_LOCAL : READ_R);
    if (blind)
        op->r = r;
}


/* A queued write's turn: run it, or fail it if its client has given up (or
 * the node is stopping).  It holds the key now, and the queue's reference
 * is dropped here. */
static void key_turn(op_t *op, bool closing)
{
    op->locked = true; /* handed over by keyq_release */
    int64_t waited_ms = (node_now_us() - op->queued_us) / 1000;
    if (closing) {
        op_finish(op, -ECANCELED, 0, 0, NULL);
    } else if (waited_ms >= op->srv->cfg.request_timeout_ms) {
        /* running it this late would only surprise (an incr applied after
         * its client got an error); it never ran, so it fails cleanly */
        op->srv->coord.key_wait_timeouts++;
        op_finish(op, COORD_QUORUM, 0, op->w, NULL);
    } else {
        write_start(op);
    }
    op_unref(op);
}

/* From the loop, not from inside the releasing write's call stack, so a
 * long queue never deepens the stack. */
static void on_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct coord_state *cs = arg;
    op_t *op = cs->ready;
    cs->ready = cs->ready_tail = NULL;
    while (op) {
        op_t *next = op->ready_next;
        key_turn(op, cs->closing);
        op = next;
    }
}

/* True for a cluster.read_repair_chance fraction of reads. */
static bool repair_roll(server_t *srv)
{
    double p = srv->cfg.read_repair_chance;
    if (p >= 1.0)
        return true;
    if (p <= 0.0 || !srv->coordq)
        return false;
    uint64_t *x = &srv->coordq->rng;
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return (double)(*x >> 11) * 0x1.0p-53 < p;
}

/* Let the next write of the key go; the op no longer holds it. */
static void op_unlock(op_t *op)
{
    if (!op->locked)
        return;
    op->locked = false;
    struct coord_state *cs = op->srv->coordq;
    op_t *next = keyq_release(cs->keyq, op->key, op->klen);
    if (!next)
        return;
    next->ready_next = NULL;
    if (cs->ready_tail)
        cs->ready_tail->ready_next = next;
    else
        cs->ready = next;
    cs->ready_tail = next;
    event_active(cs->turn, EV_TIMEOUT, 0);
}

int coord_open(server_t *srv, char *err, size_t errlen)
{
    struct coord_state *cs = calloc(1, sizeof(*cs));
    if (cs)
        cs->keyq = keyq_new();
    if (cs && cs->keyq)
        cs->turn = event_new(srv->base, -1, 0, on_turn, cs);
    if (!cs || !cs->keyq || !cs->turn) {
        if (cs)
            keyq_free(cs->keyq);
        free(cs);
        snprintf(err, errlen, "coordinator: out of memory");
        return -1;
    }
    msgpack_sbuffer_init(&cs->sb);
    cs->rng = (uint64_t)node_now_us() ^ srv->node_id;
    if (!cs->rng)
        cs->rng = 1;
    srv->coordq = cs;
    return 0;
}

void coord_close(server_t *srv)
{
    struct coord_state *cs = srv->coordq;
    if (!cs)
        return;
    /* Fail every queued write; each one failed hands its key to the next
     * waiter, which lands on the ready list and fails in turn. */
    cs->closing = true;
    while (cs->ready)
        on_turn(-1, 0, cs);
    event_free(cs->turn);
    keyq_free(cs->keyq);
    msgpack_sbuffer_destroy(&cs->sb);
    free(cs);
    srv->coordq = NULL;
}

size_t coord_keys_waiting(const server_t *srv)
{
    return srv->coordq ? keyq_waiting(srv->coordq->keyq) : 0;
}

/* Run a write here, where we are an owner of the key: now if no other
 * write of the key is running here, else after those queued before it. */
static void write_local(op_t *op)
{
    server_t *srv = op->srv;
    srv->coord.writes++;
    op->is_write = true;
    /* A blind set reads only our own replica, by direct call, and decides,
     * mints and persists before write_start returns: nothing else can run
     * in between, so when nobody holds its key it need not take it (a
     * lookup instead of an entry allocated and freed per set).  Anything
     * else may wait for other replicas in its read phase: it takes the
     * key. */
    if (op->kop.cmd == MC_SET && !op->has_ctx &&
        !keyq_busy(srv->coordq->keyq, op->key, op->klen)) {
        write_start(op);
        return;
    }
    int rc = keyq_acquire(srv->coordq->keyq, op->key, op->klen, op);
    if (rc < 0) {
        op_finish(op, -ENOMEM, 0, 0, NULL);
        return;
    }
    if (rc == 0) {
        srv->coord.key_waits++;
        op->queued_us = node_now_us();
        op->refs++; /* held by the queue until on_key_turn */
        return;
    }
    op->locked = true;
    write_start(op);
}

/* The op's own copy of the request.  borrow: the op decides (kv_decide)
 * before coord_write returns, so it reads the data where the caller holds
 * it instead of a copy (coord_write forgets the pointer on return). */
static int copy_op(op_t *op, const kv_op_t *kop, bool borrow)
{
    op->kop = *kop;
    op->kop.data = NULL;
    op->kop.ctx = NULL; /* op->ctx below; the caller's may not outlive this call */
    if (kop->ctx) {
        if (vc_copy(&op->ctx, kop->ctx) < 0)
            return -ENOMEM;
        op->has_ctx = true;
    }
    if (borrow) {
        op->kop.data = kop->data;
        return 0;
    }
    if (kop->len) {
        op->data = malloc(kop->len);
        if (!op->data)
            return -ENOMEM;
        memcpy(op->data, kop->data, kop->len);
    }
    op->kop.data = op->data;
    return 0;
}

/* ---- forwarding a write to an owner ---- */

static void forward_write(op_t *op, int i);

/* The next live owner in the plan after index i, or -1. */
static int next_owner(const op_t *op, int i)
{
    for (int j = i + 1; j < op->plan.n; j++)
        if (op->plan.t[j].hint_for == RING_NODE_NONE)
            return j;
    return -1;
}

static void on_forward_reply(void *arg, int status, const frame_t *f)
{
    req_t *rq = arg;
    op_t *op = rq->op;
    int next;
    if (status == -ECONNREFUSED && (next = next_owner(op, rq->i)) >= 0) {
        /* the request never reached that owner (no connection): another
         * owner may coordinate it without risk of applying it twice (for a
         * read-modify-write, in a second place at once: concurrent ones
         * there become siblings, never a loss) */
        free(rq);
        if (is_self(op, op->plan.t[next].node))
            write_local(op);
        else
            forward_write(op, next);
        op_unref(op);
        return;
    }
    msg_any_t m;
    if (status == 0 && f && msg_decode(MSG_COORD_WRITE, MSG_REP, &f->body, &m) == 0) {
        const msg_coord_done_t *d = &m.cdone;
        op->result = (enum kv_result)d->result;
        op->number = d->number;
        op_finish(op, (int)d->status, (int)d->got, (int)d->needed,
                  d->has_obj ? &m.cdone.obj : NULL);
        msg_free(MSG_COORD_WRITE, MSG_REP, &m);
    } else {
        if (status == 0)
            op->srv->coord.replica_errors++;
        op_finish(op, COORD_QUORUM, 0, op->w, NULL);
    }
    free(rq);
    op_unref(op);
}

static void forward_write(op_t *op, int i)
{
    server_t *srv = op->srv;
    srv->coord.forwarded++;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    /* the context travels as a 10th field, only when the client gave one */
    msg_coord_write_t m = {.key = op->key, .klen = op->klen, .cmd = (uint32_t)op->kop.cmd,
                           .flags = op->kop.flags, .expiry = op->kop.expiry,
                           .data = op->kop.data, .dlen = op->kop.len, .cas = op->kop.cas,
                           .delta = op->kop.delta, .r = op->r, .w = op->w,
                           .has_ctx = op->has_ctx, .ctx = op->ctx};
    if (msg_encode(&sb, MSG_COORD_WRITE, MSG_REQ, &m) < 0) {
        msgpack_sbuffer_destroy(&sb);
        op_finish(op, -ENOMEM, 0, 0, NULL);
        return;
    }
    const cluster_node_t *n = &op->plan.view->nodes[op->plan.t[i].node];
    req_t *rq = malloc(sizeof(*rq));
    if (rq) {
        rq->op = op;
        rq->i = i;
        op->refs++;
        /* the owner's own replica requests time out first, so it answers */
        if (transport_request(srv->cluster.transport, n->host, n->peer_port, MSG_COORD_WRITE,
                              sb.data, sb.size, srv->cfg.request_timeout_ms * 2 + 100,
                              on_forward_reply, rq) < 0) {
            op->refs--;
            free(rq);
            rq = NULL;
        }
    }
    if (!rq)
        op_finish(op, COORD_QUORUM, 0, op->w, NULL);
    msgpack_sbuffer_destroy(&sb);
}

void coord_write(server_t *srv, const kv_op_t *kop, const void *key, size_t klen, int r, int w,
                 coord_done_fn done, void *arg)
{
    op_t *op = op_new(srv, key, klen, done, arg);
    bool borrow = false;
    if (op) {
        if (plan_build(srv, key, klen, &op->plan) < 0)
            op->plan.n = 0;
        /* A blind set this node owns, of a key nobody holds here, runs to
         * its decision inside this call (write_local takes the same test):
         * its value is read from the caller's buffer, not copied first. */
        borrow = kop->cmd == MC_SET && !kop->ctx && plan_self(&op->plan) >= 0 &&
                 !keyq_busy(srv->coordq->keyq, key, klen);
    }
    if (!op || copy_op(op, kop, borrow) < 0) {
        if (op) {
            op->done_called = true;
            op_unref(op);
        }
        coord_result_t res = {.status = -ENOMEM};
        done(arg, &res);
        return;
    }
    op->r = r;
    op->w = w;
    /* set and delete: any owner (its dot is its own); everything that
     * reads before it writes: the first live owner, where they queue */
    bool any_owner = kop->cmd == MC_SET || kop->cmd == MC_DELETE;
    int self = plan_self(&op->plan), first = next_owner(op, -1);
    if (self >= 0 && (any_owner || self == first))
        write_local(op);
    else if (first >= 0)
        forward_write(op, first);
    else /* every owner is down: nobody may name this write */
        op_finish(op, COORD_QUORUM, 0, w, NULL);
    if (borrow)
        op->kop.data = NULL; /* decided (or failed) by now; the buffer is the caller's */
    op_unref(op);
}

/* ---- flush_all ---- */

static void on_flush_reply(void *arg, int status, const frame_t *f)
{
    req_t *rq = arg;
    op_t *op = rq->op;
    if (status == 0 && frame_status_ok(f))
        op->wgot++;
    else
        op->wfail++;
    if (op->wgot + op->wfail == op->plan.n)
        op_finish(op, op->wfail ? COORD_QUORUM : COORD_OK, op->wgot + 1, op->plan.n + 1, NULL);
    free(rq);
    op_unref(op);
}

void coord_flush(server_t *srv, int64_t delay_s, coord_done_fn done, void *arg)
{
    int64_t when = node_flush_time(delay_s);
    int rc = node_flush_at(srv, when);
    op_t *op = rc == 0 ? op_new(srv, "", 0, done, arg) : NULL;
    if (!op) {
        coord_result_t res = {.status = rc < 0 ? rc : -ENOMEM};
        done(arg, &res);
        return;
    }
    uint32_t peers[GOSSIP_MAX_MEMBERS];
    size_t np = cluster_live_peers(&srv->cluster, peers, GOSSIP_MAX_MEMBERS);
    op->plan.view = cluster_view_hold(srv->cluster.view);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msg_flush_t fm = {.when = when};
    msg_encode(&sb, MSG_FLUSH, MSG_REQ, &fm);
    op->plan.n = 0;
    for (size_t i = 0; i < np && i < MAXT; i++)
        op->plan.t[op->plan.n++] = (target_t){peers[i], RING_NODE_NONE};
    /* more live peers than a plan holds: send the rest without waiting */
    for (size_t i = MAXT; i < np; i++) {
        const cluster_node_t *n = &op->plan.view->nodes[peers[i]];
        transport_oneway(srv->cluster.transport, n->host, n->peer_port, MSG_FLUSH, sb.data,
                         sb.size);
    }
    if (op->plan.n == 0)
        op_finish(op, COORD_OK, 1, 1, NULL);
    for (int i = 0; i < op->plan.n; i++)
        if (op_send(op, i, MSG_FLUSH, &sb, on_flush_reply) < 0)
            op->wfail++;
    if (op->plan.n && op->wgot + op->wfail == op->plan.n)
        op_finish(op, COORD_QUORUM, op->wgot + 1, op->plan.n + 1, NULL);
    msgpack_sbuffer_destroy(&sb);
    op_unref(op);
}

/* ---- the replica side (routed here by dispatch.c, bodies decoded) ---- */

static void reply_status(peer_link_t *link, uint64_t req_id, uint8_t type, int64_t st)
{
    uint8_t body[MSG_STATUS_MAX];
    size_t n = msg_status_body(body, st);
    if (n)
        transport_reply(link, req_id, type, body, n);
}

/* hint_for as sent: "" or our own name mean our replica. */
static bool is_own(server_t *srv, const char *hint_for)
{
    return hint_for[0] == '\0' || !strcmp(hint_for, srv->cfg.name);
}

static void on_forwarded_done(void *arg, coord_result_t *res)
{
    op_t *op = arg; /* the op itself: see coord_on_coord_write */
    admit_end(op->srv);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msg_coord_done_t d = {.status = res->status, .got = res->got, .needed = res->needed,
                          .result = (uint64_t)res->result, .number = res->number,
                          .has_obj = res->found, .obj_in = &res->obj};
    if (msg_encode(&sb, MSG_COORD_WRITE, MSG_REP, &d) == 0)
        transport_reply(op->link, op->req_id, MSG_COORD_WRITE, sb.data, sb.size);
    else
        reply_status(op->link, op->req_id, MSG_COORD_WRITE, -ENOMEM);
    msgpack_sbuffer_destroy(&sb);
}

void coord_on_coord_write(server_t *srv, peer_link_t *link, const frame_t *f, msg_any_t *msg)
{
    const msg_coord_write_t *m = &msg->cw;
    if (m->dlen > srv->cfg.max_value_bytes) {
        srv->coord.replica_errors++;
        reply_status(link, f->req_id, MSG_COORD_WRITE, -EINVAL);
        return;
    }
    if (!admit_forwarded(srv)) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msg_coord_done_t d = {.status = COORD_BUSY, .needed = m->w};
        if (msg_encode(&sb, MSG_COORD_WRITE, MSG_REP, &d) == 0)
            transport_reply(link, f->req_id, MSG_COORD_WRITE, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        return;
    }
    kv_op_t kop = {.cmd = (enum mc_cmd)m->cmd, .flags = m->flags, .expiry = m->expiry,
                   .data = m->data, .len = m->dlen, .cas = m->cas, .delta = m->delta,
                   .ctx = m->has_ctx ? &m->ctx : NULL};
    /* the op is its own callback argument: on_forwarded_done answers on the
     * link the request came in on */
    op_t *op = op_new(srv, m->key, m->klen, on_forwarded_done, NULL);
    int rc = op ? copy_op(op, &kop, false) : -ENOMEM;
    if (rc < 0) {
        if (op) {
            op->done_called = true;
            op_unref(op);
        }
        reply_status(link, f->req_id, MSG_COORD_WRITE, -ENOMEM);
        return;
    }
    op->arg = op;
    op->link = link;
    op->req_id = f->req_id;
    admit_begin(srv); /* until on_forwarded_done */
    transport_link_hold(link);
    op->r = (int)m->r;
    op->w = (int)m->w;
    int first;
    if (plan_build(srv, m->key, m->klen, &op->plan) == 0 && plan_self(&op->plan) < 0 &&
        op->plan.view->self_idx == RING_NODE_NONE && (first = next_owner(op, -1)) >= 0) {
        /* we left the ring (or have not entered it) and the sender does not
         * know yet: our view is the newer one, so we pass the write on to
         * the first live owner there (a ring member, which never passes it
         * on again) rather than fail it */
        srv->coord.forwarded++;
        forward_write(op, first);
    } else if (plan_self(&op->plan) < 0) {
        /* our ring says we are not an owner (views differ for a moment) */
        op_finish(op, COORD_QUORUM, 0, (int)m->w, NULL);
    } else {
        write_local(op);
    }
    op_unref(op);
}

void coord_on_replica_get(server_t *srv, peer_link_t *link, const frame_t *f, msg_any_t *msg)
{
    const msg_replica_get_t *m = &msg->rget;
    msgpack_sbuffer *sb = &srv->coordq->sb;
    bool admitted = admit_replica(srv);
    if (admitted && is_own(srv, m->hint)) {
        /* our replica: its encoding (made from the cached object where it
         * is) goes into the frame as a second piece */
        uint8_t *enc;
        size_t enclen;
        int rc = node_read_enc(srv, m->key, m->klen, &enc, &enclen);
        if (rc == 1 && msg_rgot_head(sb, enclen) == 0) {
            struct iovec body[2] = {{sb->data, sb->size}, {enc, enclen}};
            transport_reply_iov(link, f->req_id, MSG_REPLICA_GET, body, 2);
        } else if (rc == 1) {
            reply_status(link, f->req_id, MSG_REPLICA_GET, -EIO);
        } else {
            msg_replica_got_t got = {.code = rc == 0 ? 1 : rc};
            if (msg_encode(sb, MSG_REPLICA_GET, MSG_REP, &got) == 0)
                transport_reply(link, f->req_id, MSG_REPLICA_GET, sb->data, sb->size);
        }
        free(enc);
        return;
    }
    msg_replica_got_t got = {0};
    obj_init(&got.obj);
    int rc = !admitted ? -EBUSY : handoff_get(srv, m->hint, m->key, m->klen, &got.obj);
    got.code = rc == 1 ? 0 : rc == 0 ? 1 : rc;
    got.has_obj = rc == 1;
    if (msg_encode(sb, MSG_REPLICA_GET, MSG_REP, &got) == 0)
        transport_reply(link, f->req_id, MSG_REPLICA_GET, sb->data, sb->size);
    else
        reply_status(link, f->req_id, MSG_REPLICA_GET, -EIO);
    obj_free(&got.obj);
}

/* A replica write that reached us after we left the ring (its sender does
 * not know yet): our copy goes with us, so the key's owners in our view,
 * the newer one, get it too before the process ends. */
static void relay_after_leaving(server_t *srv, const void *key, size_t klen, const obj_t *o)
{
    cluster_view_t *v = srv->cluster.view;
    gossip_member_info_t me;
    if (!v || v->self_idx != RING_NODE_NONE || !srv->cluster.gossip ||
        !gossip_lookup(srv->cluster.gossip, srv->cfg.name, &me) ||
        me.entry.status != GOSSIP_LEFT)
        return;
    const uint32_t *owners;
    uint32_t no = ring_preflist(v->ring, key, klen, &owners);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (encode_put(&sb, key, klen, "", o) == 0)
        for (uint32_t i = 0; i < no; i++) {
            const cluster_node_t *n = &v->nodes[owners[i]];
            if (n->alive && !n->is_self)
                transport_request(srv->cluster.transport, n->host, n->peer_port,
                                  MSG_REPLICA_PUT, sb.data, sb.size, srv->cfg.request_timeout_ms,
                                  ignore_reply, NULL);
        }
    msgpack_sbuffer_destroy(&sb);
}

void coord_on_replica_put(server_t *srv, peer_link_t *link, const frame_t *f, msg_any_t *msg)
{
    const msg_replica_put_t *m = &msg->rput;
    int rc = !admit_replica(srv) ? -EBUSY
             : is_own(srv, m->hint) ? node_merge(srv, m->key, m->klen, &m->obj)
                                  : handoff_store(srv, m->hint, m->key, m->klen, &m->obj);
    if (rc == 0 && is_own(srv, m->hint))
        relay_after_leaving(srv, m->key, m->klen, &m->obj);
    reply_status(link, f->req_id, MSG_REPLICA_PUT, rc);
}

void coord_on_flush(server_t *srv, peer_link_t *link, const frame_t *f, msg_any_t *msg)
{
    reply_status(link, f->req_id, MSG_FLUSH, node_flush_at(srv, msg->flush.when));
}

void coord_refuse(server_t *srv, peer_link_t *link, const frame_t *f)
{
    srv->coord.replica_errors++;
    if (f->kind == FRAME_REQUEST)
        reply_status(link, f->req_id, f->type, -EINVAL);
}
