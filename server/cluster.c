/*
 * cluster.c - gossip over the peer transport, and the ring.
 *
 *   every gossip.interval_ms:  gossip_tick()
 *      ├─ SYN (summary) ──request──> target ──> gossip_on_syn() ──reply ACK──┐
 *      │   ACK <──────────────────────────────────────────────────────────────┘
 *      │   gossip_on_ack() ──> ACK2 (one-way) ──> target: gossip_on_ack2()
 *      │                  └──> SYN2 (digests of the buckets that differ),
 *      │                       a request like the SYN; its ACK comes back here
 *      ├─ MAIL (own entry) ──request──> every peer ──> gossip_on_mail() ──reply
 *      │   (its digest) ──> gossip_on_mail_ack(); unanswered: gossip/ retries
 *      └─ PING ──request──> suspect ──reply──> gossip_on_probe_ack()
 *
 * Message bodies are defined in msg.h/msg.c; requests reach the handlers
 * below through dispatch.c's table, decoded.  A body that does not decode,
 * or that gossip/ refuses as malformed, is counted (gossip_msgs_bad) and
 * ignored; one over its sender's budget is counted by gossip/
 * (gossip_throttled) and gets no answer.  Time for the failure detector is
 * CLOCK_MONOTONIC; the generation is the wall-clock start time so a
 * restarted node always supersedes its old self.
 */
#include "cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../common/log.h"
#include "dispatch.h"
#include "msg.h"
#include "server.h"
#include "transfer.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *cluster_state_name(const gossip_member_info_t *m)
{
    if (!m->alive)
        return "down";
    switch (m->entry.status) {
    case GOSSIP_JOINING: return "joining";
    case GOSSIP_LEAVING: return "leaving";
    case GOSSIP_LEFT: return "down";
    default: return "up";
    }
}

/* ---- sending ---- */

/* Context of a request in flight: who it went to (and, for mail, which
 * version of our entry it carried). */
typedef struct req_ctx {
    cluster_t *cl;
    gossip_target_t to;
    uint64_t mail_version;
} req_ctx_t;

static req_ctx_t *req_ctx(cluster_t *cl, const gossip_target_t *to)
{
    req_ctx_t *rc = calloc(1, sizeof(*rc));
    if (rc) {
        rc->cl = cl;
        rc->to = *to;
    }
    return rc;
}

static int request_timeout(const cluster_t *cl)
{
    int timeout = cl->srv->cfg.gossip_interval_ms * 5;
    return timeout < 500 ? 500 : timeout;
}

/* Sends the body in sb as a request of type to rc->to; cb gets the answer
 * (and frees rc).  rc is freed here if the request cannot start. */
static void send_ctx(cluster_t *cl, req_ctx_t *rc, uint8_t type, const msgpack_sbuffer *sb,
                     peer_reply_fn cb)
{
    if (!rc)
        return;
    if (transport_request(cl->transport, rc->to.addr.host, rc->to.addr.port, type, sb->data,
                          sb->size, request_timeout(cl), cb, rc) < 0)
        free(rc);
}

static void send_request(cluster_t *cl, const gossip_target_t *to, uint8_t type,
                         const msgpack_sbuffer *sb, peer_reply_fn cb)
{
    send_ctx(cl, req_ctx(cl, to), type, sb, cb);
}

static void on_ack(void *arg, int status, const frame_t *f);

/* The SYN2 that follows an ACK of bucket hashes: to the same peer, and its
 * ACK comes back to on_ack(). */
static void send_syn2(cluster_t *cl, const gossip_target_t *to, const gossip_syn_t *syn2)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (msg_encode(&sb, MSG_GOSSIP_SYN, MSG_REQ, syn2) == 0)
        send_request(cl, to, MSG_GOSSIP_SYN, &sb, on_ack);
    msgpack_sbuffer_destroy(&sb);
}

static void on_ack(void *arg, int status, const frame_t *f)
{
    req_ctx_t *rc = arg;
    cluster_t *cl = rc->cl;
    msg_any_t m;
    memset(&m, 0, sizeof(m));
    gossip_ack2_t ack2 = {0};
    gossip_syn_t syn2 = {0};
    if (status != 0 || !cl->gossip)
        goto out;
    if (f->type != MSG_GOSSIP_ACK || msg_decode(MSG_GOSSIP_ACK, MSG_REP, &f->body, &m) < 0 ||
        gossip_on_ack(cl->gossip, &m.ack, mono_ms(), &ack2, &syn2) < 0) {
        cl->stats.gossip_msgs_bad++;
        goto out;
    }
    if (ack2.nentries > 0) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (msg_encode(&sb, MSG_GOSSIP_ACK2, MSG_REQ, &ack2) == 0)
            transport_oneway(cl->transport, rc->to.addr.host, rc->to.addr.port, MSG_GOSSIP_ACK2,
                             sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    if (syn2.nbuckets > 0)
        send_syn2(cl, &rc->to, &syn2);
    cluster_refresh_ring(cl);
out:
    gossip_syn_free(&syn2);
    gossip_ack2_free(&ack2);
    msg_free(MSG_GOSSIP_ACK, MSG_REP, &m);
    free(rc);
}

static void on_pong(void *arg, int status, const frame_t *f)
{
    req_ctx_t *rc = arg;
    cluster_t *cl = rc->cl;
    msg_any_t m;
    if (status == 0 && cl->gossip && f->type == MSG_PING &&
        msg_decode(MSG_PING, MSG_REP, &f->body, &m) == 0 && !strcmp(m.ping.name, rc->to.name)) {
        gossip_on_probe_ack(cl->gossip, m.ping.name, mono_ms());
        cluster_refresh_ring(cl);
    } else {
        cl->stats.probes_failed++;
    }
    free(rc);
}

static void on_mail_reply(void *arg, int status, const frame_t *f)
{
    req_ctx_t *rc = arg;
    cluster_t *cl = rc->cl;
    msg_any_t m;
    if (status == 0 && cl->gossip) {
        if (f->type == MSG_GOSSIP_MAIL && msg_decode(MSG_GOSSIP_MAIL, MSG_REP, &f->body, &m) == 0) {
            gossip_on_mail_ack(cl->gossip, &rc->to, rc->mail_version, &m.mail_ack, mono_ms());
            cluster_refresh_ring(cl);
        } else {
            cl->stats.gossip_msgs_bad++;
        }
    }
    free(rc); /* no answer: gossip/ mails it again later */
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cluster_t *cl = arg;
    gossip_round_t round = {0};
    if (gossip_tick(cl->gossip, mono_ms(), &round) == 0) {
        cl->stats.gossip_rounds++;
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        if (msg_encode(&sb, MSG_GOSSIP_SYN, MSG_REQ, &round.syn) == 0)
            for (size_t i = 0; i < round.ntargets; i++)
                send_request(cl, &round.targets[i], MSG_GOSSIP_SYN, &sb, on_ack);
        msg_ping_t ping;
        snprintf(ping.name, sizeof(ping.name), "%s", cl->srv->cfg.name);
        if (round.nprobes > 0 && msg_encode(&sb, MSG_PING, MSG_REQ, &ping) == 0)
            for (size_t i = 0; i < round.nprobes; i++) {
                cl->stats.probes_sent++;
                send_request(cl, &round.probes[i], MSG_PING, &sb, on_pong);
            }
        if (round.nmail > 0 && msg_encode(&sb, MSG_GOSSIP_MAIL, MSG_REQ, &round.mail_entry) == 0)
            for (size_t i = 0; i < round.nmail; i++) {
                req_ctx_t *rc = req_ctx(cl, &round.mail[i]);
                if (rc)
                    rc->mail_version = round.mail_entry.version;
                send_ctx(cl, rc, MSG_GOSSIP_MAIL, &sb, on_mail_reply);
            }
        msgpack_sbuffer_destroy(&sb);
    }
    gossip_round_free(&round);
    cluster_refresh_ring(cl);
}

/* ---- receiving (dispatch.c routes requests here, decoded) ---- */

static void on_request(void *arg, peer_link_t *link, const frame_t *f)
{
    cluster_t *cl = arg;
    dispatch_request(cl->srv, link, f);
}

/* gossip/ refused a message: malformed (counted here) or over its sender's
 * budget (counted by gossip/ as gossip_throttled). */
static void refused(cluster_t *cl, int rc)
{
    if (rc != -EBUSY)
        cl->stats.gossip_msgs_bad++;
}

void cluster_on_ping(struct server *srv, peer_link_t *link, const frame_t *f, msg_any_t *m)
{
    (void)m;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msg_ping_t pong;
    snprintf(pong.name, sizeof(pong.name), "%s", srv->cfg.name);
    if (msg_encode(&sb, MSG_PING, MSG_REP, &pong) == 0)
        transport_reply(link, f->req_id, MSG_PING, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

void cluster_on_syn(struct server *srv, peer_link_t *link, const frame_t *f, msg_any_t *m)
{
    cluster_t *cl = &srv->cluster;
    gossip_ack_t ack = {0};
    int rc = gossip_on_syn(cl->gossip, &m->syn, mono_ms(), &ack);
    if (rc < 0) {
        refused(cl, rc);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (msg_encode(&sb, MSG_GOSSIP_ACK, MSG_REP, &ack) == 0)
        transport_reply(link, f->req_id, MSG_GOSSIP_ACK, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    gossip_ack_free(&ack);
    cluster_refresh_ring(cl);
}

void cluster_on_ack2(struct server *srv, peer_link_t *link, const frame_t *f, msg_any_t *m)
{
    (void)link;
    (void)f;
    cluster_t *cl = &srv->cluster;
    int rc = gossip_on_ack2(cl->gossip, m->ack2.entries, m->ack2.nentries, mono_ms());
    if (rc < 0)
        refused(cl, rc);
    cluster_refresh_ring(cl);
}

void cluster_on_mail(struct server *srv, peer_link_t *link, const frame_t *f, msg_any_t *m)
{
    cluster_t *cl = &srv->cluster;
    gossip_digest_t me;
    int rc = gossip_on_mail(cl->gossip, &m->mail, mono_ms(), &me);
    if (rc < 0) {
        refused(cl, rc);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (msg_encode(&sb, MSG_GOSSIP_MAIL, MSG_REP, &me) == 0)
        transport_reply(link, f->req_id, MSG_GOSSIP_MAIL, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    cluster_refresh_ring(cl);
}

void cluster_refuse(struct server *srv)
{
    srv->cluster.stats.gossip_msgs_bad++;
}

/* ---- ring ---- */

/* Whether the current view knew name as alive. */
static bool was_alive(const cluster_t *cl, const char *name)
{
    const cluster_view_t *v = cl->view;
    size_t n = ring_node_count(v->ring);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v->nodes[i].name, name))
            return v->nodes[i].alive;
    for (size_t i = 0; v->future && i < ring_node_count(v->future); i++)
        if (!strcmp(v->fnodes[i].name, name))
            return v->fnodes[i].alive;
    return false;
}

/* Ring members (DESIGN.md, Membership changes): the current ring counts
 * the members that are up or leaving (down ones too: they keep their
 * ranges, requests route around them); while a member is joining or
 * leaving, the future ring is the one without the leaving and with the
 * joining, and its extra owners get every write (not counted for W). */
static bool counted(uint32_t st)
{
    return st == GOSSIP_UP || st == GOSSIP_LEAVING;
}

static bool in_future(uint32_t st)
{
    return st == GOSSIP_UP || st == GOSSIP_JOINING;
}

static void node_fill(cluster_node_t *cn, const gossip_member_info_t *m)
{
    snprintf(cn->name, sizeof(cn->name), "%s", m->entry.name);
    snprintf(cn->host, sizeof(cn->host), "%s", m->entry.host);
    cn->peer_port = m->entry.peer_port;
    cn->alive = m->alive || m->is_self;
    cn->is_self = m->is_self;
    cn->status = m->entry.status;
}

/* Build a ring of the members in infos[0..n) that `pick` selects, with
 * its per-node table.  0, or negative (nothing allocated). */
static int build_ring(const cluster_t *cl, const gossip_member_info_t *infos, size_t count,
                      bool (*pick)(uint32_t), uint64_t epoch, ring_t **ring,
                      cluster_node_t **nodes)
{
    const char **names = calloc(count ? count : 1, sizeof(*names));
    size_t *which = calloc(count ? count : 1, sizeof(*which));
    size_t n = 0;
    int rc = -ENOMEM;
    *ring = NULL;
    *nodes = NULL;
    if (!names || !which)
        goto out;
    for (size_t i = 0; i < count; i++)
        if (pick(infos[i].entry.status)) {
            which[n] = i;
            names[n++] = infos[i].entry.name;
        }
    /* a joining node that knows nobody yet still needs a ring of its own */
    for (size_t i = 0; n == 0 && i < count; i++)
        if (infos[i].is_self) {
            which[n] = i;
            names[n++] = infos[i].entry.name;
        }
    rc = ring_build(names, n, (uint32_t)cl->srv->cfg.vnodes, (uint32_t)cl->srv->cfg.n, epoch,
                    ring);
    if (rc < 0)
        goto out;
    *nodes = calloc(n ? n : 1, sizeof(**nodes));
    if (!*nodes) {
        ring_free(*ring);
        *ring = NULL;
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        node_fill(&(*nodes)[ring_node_index(*ring, names[i])], &infos[which[i]]);
out:
    free(names);
    free(which);
    return rc;
}

/* Log what changed about the members since the last refresh: a peer down
 * or back, a status change, a member gone (the on-call engineer's view). */
static void log_changes(cluster_t *cl, const gossip_member_info_t *now, size_t n)
{
    const gossip_member_info_t *old = cl->seen;
    size_t i = 0, j = 0;
    while (i < cl->nseen || j < n) {
        int c = i >= cl->nseen ? 1 : j >= n ? -1 : strcmp(old[i].entry.name, now[j].entry.name);
        if (c < 0) {
            if (old[i].entry.status != GOSSIP_LEFT)
                log_info("cluster: %s is no longer a member", old[i].entry.name);
            i++;
            continue;
        }
        const gossip_member_info_t *m = &now[j];
        if (m->is_self) {
            j += 1;
            i += c == 0;
            continue;
        }
        if (c > 0) {
            if (m->entry.status != GOSSIP_LEFT)
                log_info("cluster: new member %s at %s:%u (%s)", m->entry.name, m->entry.host,
                         m->entry.peer_port, cluster_state_name(m));
        } else {
            const gossip_member_info_t *o = &old[i];
            if (o->entry.status != m->entry.status) {
                if (m->entry.status == GOSSIP_LEFT)
                    log_info("cluster: %s %s the cluster", m->entry.name,
                             (m->entry.flags & GOSSIP_F_REMOVED) ? "was removed from" : "left");
                else
                    log_info("cluster: %s is %s", m->entry.name,
                             m->entry.status == GOSSIP_JOINING   ? "joining"
                             : m->entry.status == GOSSIP_LEAVING ? "leaving"
                                                                 : "up");
            }
            if (m->entry.status != GOSSIP_LEFT && o->alive && !m->alive)
                log_info("cluster: peer %s at %s:%u is down", m->entry.name, m->entry.host,
                         m->entry.peer_port);
            else if (m->entry.status != GOSSIP_LEFT && !o->alive && m->alive &&
                     o->entry.status != GOSSIP_LEFT)
                log_info("cluster: peer %s at %s:%u is up again", m->entry.name, m->entry.host,
                         m->entry.peer_port);
            else if (m->entry.generation != o->entry.generation && m->alive)
                log_info("cluster: peer %s restarted", m->entry.name);
            i++;
        }
        j++;
    }
}

void cluster_refresh_ring(cluster_t *cl)
{
    uint64_t epoch = gossip_epoch(cl->gossip);
    if (cl->view && epoch == cl->ring_epoch)
        return;
    size_t count = gossip_member_count(cl->gossip);
    gossip_member_info_t *infos = calloc(count ? count : 1, sizeof(*infos));
    if (!infos)
        return;
    size_t n = 0;
    uint64_t ring_epoch = cl->epoch_seen;
    bool changing = false;
    char change[160] = "";
    for (size_t i = 0; i < count; i++) {
        if (gossip_member(cl->gossip, i, &infos[n]) < 0)
            continue;
        const gossip_member_t *e = &infos[n].entry;
        if (e->ring_epoch > ring_epoch)
            ring_epoch = e->ring_epoch;
        if (e->status == GOSSIP_JOINING || e->status == GOSSIP_LEAVING || e->xfer != 0) {
            if (!change[0] || e->status != GOSSIP_UP) /* name a join or leave first */
                snprintf(change, sizeof(change), "%s is %s", e->name,
                         e->status == GOSSIP_JOINING   ? "joining"
                         : e->status == GOSSIP_LEAVING ? "leaving"
                                                       : "transferring ranges");
            changing = true;
        }
        n++;
    }
    bool pending = false; /* someone joins or leaves: a future ring */
    for (size_t i = 0; i < n; i++)
        pending |= infos[i].entry.status == GOSSIP_JOINING ||
                   infos[i].entry.status == GOSSIP_LEAVING;
    ring_t *ring = NULL, *future = NULL;
    cluster_node_t *nodes = NULL, *fnodes = NULL;
    bool *down = NULL;
    cluster_view_t *view = NULL;
    if (build_ring(cl, infos, n, counted, epoch, &ring, &nodes) < 0) {
        log_warn("cluster: cannot build the ring of %zu members", n);
        goto fail;
    }
    if (pending && build_ring(cl, infos, n, in_future, epoch, &future, &fnodes) < 0)
        goto fail;
    uint32_t rn = ring_node_count(ring);
    down = calloc(rn, sizeof(*down));
    view = calloc(1, sizeof(*view));
    if (!down || !view)
        goto fail;
    view->self_idx = RING_NODE_NONE;
    for (uint32_t i = 0; i < rn; i++) {
        down[i] = !nodes[i].alive;
        if (nodes[i].is_self)
            view->self_idx = i;
    }
    for (size_t i = 0; i < n; i++) /* alive again: reconnect at once */
        if (infos[i].alive && !infos[i].is_self && infos[i].entry.status != GOSSIP_LEFT &&
            (!cl->view || !was_alive(cl, infos[i].entry.name)))
            transport_peer_alive(cl->transport, infos[i].entry.host, infos[i].entry.peer_port);
    view->refs = 1;
    view->ring = ring;
    view->nodes = nodes;
    view->down = down;
    view->future = future;
    view->fnodes = fnodes;
    view->ring_epoch = ring_epoch;
    view->changing = changing;
    snprintf(view->change, sizeof(view->change), "%s", change);
    if (!cl->view || ring_node_count(cl->view->ring) != rn ||
        cl->view->ring_epoch != ring_epoch || !cl->view->future != !future)
        log_info("cluster: ring epoch %llu with %u nodes%s%s", (unsigned long long)ring_epoch,
                 rn, changing ? "; " : "", change);
    log_changes(cl, infos, n);
    free(cl->seen);
    cl->seen = infos;
    cl->nseen = n;
    infos = NULL;
    cluster_view_t *old = cl->view;
    cl->view = view;
    cl->ring_epoch = epoch;
    cl->stats.ring_rebuilds++;
    if (ring_epoch > cl->epoch_seen) {
        cl->epoch_seen = ring_epoch;
        store_raw_put(cl->srv->store, 'm', "ring_epoch", 10, &ring_epoch, sizeof(ring_epoch));
    }
    xfer_on_view(cl->srv, old, view);
    cluster_view_release(old);
    return;
fail:
    ring_free(ring);
    ring_free(future);
    free(nodes);
    free(fnodes);
    free(down);
    free(view);
    free(infos);
}

/* ---- the join check ---- */

static int start_gossip(cluster_t *cl)
{
    if (cl->check_done || !cl->tick)
        return 0;
    cl->check_done = true;
    const config_t *cfg = &cl->srv->cfg;
    struct timeval tv = {cfg->gossip_interval_ms / 1000, (cfg->gossip_interval_ms % 1000) * 1000};
    return event_add(cl->tick, &tv);
}

static void check_refused(cluster_t *cl, const req_ctx_t *rc, const msg_join_ok_t *j)
{
    log_error("cluster: start refused by %s:%u: %s", rc->to.addr.host, rc->to.addr.port,
              j->reason);
    fprintf(stderr, "quorumkvd: start refused: %s\n", j->reason);
    if (j->code == MSG_JOIN_GONE && !cl->fresh)
        xfer_save_status(cl->srv, GOSSIP_LEFT); /* and so at every later start */
    cl->refused = true;
    cl->check_done = true;
    event_base_loopexit(cl->srv->base, NULL);
}

static void on_check_reply(void *arg, int status, const frame_t *f)
{
    req_ctx_t *rc = arg;
    cluster_t *cl = rc->cl;
    msg_any_t m;
    if (status == -ECANCELED) { /* the transport is closing: nothing to start */
        free(rc);
        return;
    }
    cl->check_pending--;
    if (!cl->check_done && status == 0 && f->type == MSG_JOIN_CHECK &&
        msg_decode(MSG_JOIN_CHECK, MSG_REP, &f->body, &m) == 0) {
        const msg_join_ok_t *j = &m.join_ok;
        if (j->epoch > cl->epoch_seen) { /* a fresh node learns the epoch it joins at */
            cl->epoch_seen = j->epoch;
            store_raw_put(cl->srv->store, 'm', "ring_epoch", 10, &j->epoch, sizeof(j->epoch));
        }
        if (j->code == MSG_JOIN_REFUSED || j->code == MSG_JOIN_GONE) {
            check_refused(cl, rc, j);
        } else {
            gossip_member_info_t me;
            if (j->code == MSG_JOIN_MUST && cl->fresh &&
                gossip_lookup(cl->gossip, cl->srv->cfg.name, &me) &&
                me.entry.status == GOSSIP_UP) {
                log_info("cluster: %s:%u says %s; joining instead of founding", rc->to.addr.host,
                         rc->to.addr.port, j->reason);
                xfer_save_status(cl->srv, GOSSIP_JOINING);
                gossip_set_state(cl->gossip, GOSSIP_JOINING, cl->epoch_seen, 1, mono_ms());
            }
            if (start_gossip(cl) < 0)
                log_error("cluster: cannot start the gossip timer");
        }
    }
    /* no seed answered at all: none is up to object (as when a whole
     * cluster starts at once), so we go ahead */
    if (!cl->check_done && cl->check_pending == 0 && start_gossip(cl) < 0)
        log_error("cluster: cannot start the gossip timer");
    free(rc);
}

/* JOIN_CHECK to every seed that is not us; check_pending counts them. */
static void send_checks(cluster_t *cl)
{
    const config_t *cfg = &cl->srv->cfg;
    gossip_member_info_t me;
    if (!gossip_lookup(cl->gossip, cfg->name, &me))
        return;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (cl->fresh)
        me.entry.flags |= MSG_JOIN_FRESH; /* for the check only, never gossiped */
    if (msg_encode(&sb, MSG_JOIN_CHECK, MSG_REQ, &me.entry) == 0)
        for (int i = 0; i < cfg->nseeds; i++) {
            if (cfg->seeds[i].port == cfg->peer_port && !strcmp(cfg->seeds[i].host, cfg->host))
                continue;
            gossip_target_t to = {0};
            snprintf(to.addr.host, sizeof(to.addr.host), "%s", cfg->seeds[i].host);
            to.addr.port = (uint16_t)cfg->seeds[i].port;
            req_ctx_t *rc = req_ctx(cl, &to);
            if (rc && transport_request(cl->transport, to.addr.host, to.addr.port, MSG_JOIN_CHECK,
                                        sb.data, sb.size, request_timeout(cl), on_check_reply,
                                        rc) == 0)
                cl->check_pending++;
            else
                free(rc);
        }
    msgpack_sbuffer_destroy(&sb);
}

void cluster_on_join_check(struct server *srv, peer_link_t *link, const frame_t *f,
                           msg_any_t *m)
{
    cluster_t *cl = &srv->cluster;
    const gossip_member_t *e = &m->join;
    bool fresh = e->flags & MSG_JOIN_FRESH;
    msg_join_ok_t ok = {.code = MSG_JOIN_OK,
                        .epoch = cl->view ? cl->view->ring_epoch : cl->epoch_seen};
    gossip_member_info_t have;
    bool known = gossip_lookup(cl->gossip, e->name, &have);
    if (!strcmp(e->name, srv->cfg.name)) {
        if (strcmp(e->host, srv->cfg.host) || e->peer_port != srv->cfg.peer_port) {
            ok.code = MSG_JOIN_REFUSED;
            snprintf(ok.reason, sizeof(ok.reason),
                     "node name %s is in use by a live node at %.47s:%d", e->name, srv->cfg.host,
                     srv->cfg.peer_port);
        }
    } else if (known && have.entry.status == GOSSIP_LEFT) {
        /* its old data must not come back as an owner; a wiped directory
         * may join as a new node (its new generation supersedes) */
        ok.code = fresh ? MSG_JOIN_MUST : MSG_JOIN_GONE;
        snprintf(ok.reason, sizeof(ok.reason),
                 fresh ? "node %s left the cluster before"
                       : "node %s %s the cluster; wipe its node.data_dir to add it again",
                 e->name, (have.entry.flags & GOSSIP_F_REMOVED) ? "was removed from" : "left");
    } else if (known && have.alive &&
               (strcmp(have.entry.host, e->host) || have.entry.peer_port != e->peer_port)) {
        ok.code = MSG_JOIN_REFUSED;
        snprintf(ok.reason, sizeof(ok.reason), "node name %s is in use by a live node at %s:%u",
                 e->name, have.entry.host, have.entry.peer_port);
    } else if (fresh && (known || ok.epoch > 0 || srv->stats.curr_items > 0)) {
        /* a new directory for a name this cluster had (a wiped disk), or a
         * node new to a cluster that already holds data: it must pull its
         * ranges before it serves them */
        ok.code = MSG_JOIN_MUST;
        snprintf(ok.reason, sizeof(ok.reason), "%s",
                 known ? "this name was a member (its data directory is new)"
                       : "the cluster already holds data");
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (msg_encode(&sb, MSG_JOIN_CHECK, MSG_REP, &ok) == 0)
        transport_reply(link, f->req_id, MSG_JOIN_CHECK, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- lifecycle ---- */

int cluster_open(server_t *srv, cluster_t *cl, char *err, size_t errlen)
{
    memset(cl, 0, sizeof(*cl));
    cl->srv = srv;
    const config_t *cfg = &srv->cfg;
    /* generation: wall-clock start time, but always above the last one this
     * node used (a clock stepped back must not make us older than our old
     * self, whose entries the others would then prefer). */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    cl->generation = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    gossip_status_t status; /* before the generation is written: a fresh directory has none */
    if (xfer_start_status(srv, &status, &cl->fresh, err, errlen) < 0)
        return -1;
    uint8_t *val = NULL;
    size_t vlen = 0;
    if (store_raw_get(srv->store, 'm', "generation", 10, &val, &vlen) == 1 && vlen == 8) {
        int64_t last = 0;
        memcpy(&last, val, 8);
        if (last >= cl->generation)
            cl->generation = last + 1;
    }
    free(val);
    if (store_raw_put(srv->store, 'm', "generation", 10, &cl->generation, 8) < 0) {
        snprintf(err, errlen, "cannot record the node generation in storage");
        return -1;
    }

    if (store_raw_get(srv->store, 'm', "ring_epoch", 10, &val, &vlen) == 1 &&
        vlen == sizeof(cl->epoch_seen))
        memcpy(&cl->epoch_seen, val, vlen);
    free(val);
    gossip_member_t self = {.client_port = (uint16_t)cfg->client_port,
                            .peer_port = (uint16_t)cfg->peer_port,
                            .generation = cl->generation,
                            .status = status,
                            .ring_epoch = cl->epoch_seen,
                            .xfer = status == GOSSIP_UP ? 0 : 1};
    snprintf(self.name, sizeof(self.name), "%s", cfg->name);
    gossip_addr_t seeds[CONFIG_MAX_SEEDS];
    size_t ns = 0;
    /* gossip/ takes IPv4 text (at most GOSSIP_HOST_MAX bytes): anything
     * longer is no address, and must not be cut into one. */
    bool long_host = strlen(cfg->host) > GOSSIP_HOST_MAX;
    if (!long_host)
        memcpy(self.host, cfg->host, strlen(cfg->host) + 1);
    for (int i = 0; i < cfg->nseeds; i++) {
        size_t len = strlen(cfg->seeds[i].host);
        if (len > GOSSIP_HOST_MAX) {
            long_host = true;
            break;
        }
        memcpy(seeds[ns].host, cfg->seeds[i].host, len + 1);
        seeds[ns].port = (uint16_t)cfg->seeds[i].port;
        ns++;
    }
    gossip_config_t gc = {.phi_threshold = cfg->phi_threshold,
                          .interval_ms = cfg->gossip_interval_ms,
                          .seeds = seeds,
                          .nseeds = ns};
    if (long_host || gossip_new(&self, &gc, &cl->gossip) < 0) {
        snprintf(err, errlen, "cannot start gossip (check node.name, node.host, cluster.seeds)");
        return -1;
    }
    transport_opts_t to = {.base = srv->base, .host = cfg->host, .port = cfg->peer_port,
                           .max_frame = cfg->max_value_bytes * 2 + (1u << 20),
                           .secret = cfg->cluster_secret,
                           .on_request = on_request, .arg = cl};
    if (transport_open(&to, &cl->transport, err, errlen) < 0) {
        cluster_close(cl);
        return -1;
    }
    cluster_refresh_ring(cl);
    cl->tick = event_new(srv->base, -1, EV_PERSIST, on_tick, cl);
    if (!cl->tick) {
        snprintf(err, errlen, "cannot start the gossip timer");
        cluster_close(cl);
        return -1;
    }
    /* ask the seeds whether our name is free before gossip makes it ours */
    send_checks(cl);
    if (cl->check_pending == 0 && start_gossip(cl) < 0) {
        snprintf(err, errlen, "cannot start the gossip timer");
        cluster_close(cl);
        return -1;
    }
    return 0;
}

void cluster_close(cluster_t *cl)
{
    if (cl->tick)
        event_free(cl->tick);
    cl->tick = NULL;
    transport_close(cl->transport); /* fails pending requests: callbacks free their ctx */
    cl->transport = NULL;
    gossip_free(cl->gossip);
    cl->gossip = NULL;
    cluster_view_release(cl->view);
    cl->view = NULL;
    free(cl->seen);
    cl->seen = NULL;
    cl->nseen = 0;
}

const cluster_node_t *cluster_view_node(const cluster_view_t *v, const char *name)
{
    uint32_t i = ring_node_index(v->ring, name);
    if (i != RING_NODE_NONE)
        return &v->nodes[i];
    if (v->future && (i = ring_node_index(v->future, name)) != RING_NODE_NONE)
        return &v->fnodes[i];
    return NULL;
}

cluster_view_t *cluster_view_hold(cluster_view_t *v)
{
    if (v)
        v->refs++;
    return v;
}

void cluster_view_release(cluster_view_t *v)
{
    if (!v || --v->refs > 0)
        return;
    ring_free(v->ring);
    ring_free(v->future);
    free(v->fnodes);
    free(v->nodes);
    free(v->down);
    free(v);
}

size_t cluster_live_peers(const cluster_t *cl, uint32_t *out, size_t cap)
{
    size_t k = 0;
    const cluster_view_t *v = cl->view;
    size_t n = v ? ring_node_count(v->ring) : 0;
    for (size_t i = 0; i < n && k < cap; i++)
        if (v->nodes[i].alive && !v->nodes[i].is_self)
            out[k++] = (uint32_t)i;
    return k;
}
