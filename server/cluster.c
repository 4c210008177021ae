/*
 * cluster.c - gossip over the peer transport, and the ring.
 *
 *   every gossip.interval_ms:  gossip_tick()
 *      ├─ SYN (digests) ──request──> target ──> gossip_on_syn() ──reply ACK──┐
 *      │   ACK <──────────────────────────────────────────────────────────────┘
 *      │   gossip_on_ack() ──> ACK2 (one-way) ──> target: gossip_on_ack2()
 *      └─ PING ──request──> suspect ──reply──> gossip_on_probe_ack()
 *
 * Message bodies (msgpack):
 *   digest  [name str, generation int, version uint]
 *   entry   [name, host, client_port, peer_port, generation, version, status]
 *   SYN     [digest...]          ACK  [[entry...], [digest...]]
 *   ACK2    [entry...]           PING name (request and reply)
 * Decoders check every type and bound every count; a malformed body is
 * counted (gossip_msgs_bad) and ignored.  Time for the failure detector is
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
#include "coord.h"
#include "server.h"

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

/* ---- codec ---- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_digest(msgpack_packer *pk, const gossip_digest_t *d)
{
    msgpack_pack_array(pk, 3);
    pack_str(pk, d->name);
    msgpack_pack_int64(pk, d->generation);
    msgpack_pack_uint64(pk, d->version);
}

static void pack_entry(msgpack_packer *pk, const gossip_member_t *e)
{
    msgpack_pack_array(pk, 7);
    pack_str(pk, e->name);
    pack_str(pk, e->host);
    msgpack_pack_uint16(pk, e->client_port);
    msgpack_pack_uint16(pk, e->peer_port);
    msgpack_pack_int64(pk, e->generation);
    msgpack_pack_uint64(pk, e->version);
    msgpack_pack_uint32(pk, e->status);
}

static bool unpack_digest(const msgpack_object *o, gossip_digest_t *d)
{
    const msgpack_object *f;
    uint32_t n;
    return mp_array(o, 3, 3, &f, &n) && mp_str(&f[0], d->name, sizeof(d->name)) &&
           mp_i64(&f[1], &d->generation) && mp_u64(&f[2], &d->version);
}

static bool unpack_entry(const msgpack_object *o, gossip_member_t *e)
{
    const msgpack_object *f;
    uint32_t n, cp, pp;
    if (!mp_array(o, 7, 7, &f, &n) || !mp_str(&f[0], e->name, sizeof(e->name)) ||
        !mp_str(&f[1], e->host, sizeof(e->host)) || !mp_u32(&f[2], &cp) ||
        !mp_u32(&f[3], &pp) || cp > 65535 || pp > 65535 || !mp_i64(&f[4], &e->generation) ||
        !mp_u64(&f[5], &e->version) || !mp_u32(&f[6], &e->status))
        return false;
    e->client_port = (uint16_t)cp;
    e->peer_port = (uint16_t)pp;
    return true;
}

/* Decode an array of digests or entries (one() reads an element of size
 * elem) into a malloc'ed array; false on any bad element. */
static bool unpack_list(const msgpack_object *o, size_t elem,
                        bool (*one)(const msgpack_object *, void *), void **out, size_t *n)
{
    const msgpack_object *it;
    uint32_t cnt;
    *out = NULL;
    *n = 0;
    if (!mp_array(o, 0, GOSSIP_MAX_MEMBERS, &it, &cnt))
        return false;
    if (cnt == 0)
        return true;
    uint8_t *arr = calloc(cnt, elem);
    if (!arr)
        return false;
    for (uint32_t i = 0; i < cnt; i++)
        if (!one(&it[i], arr + i * elem)) {
            free(arr);
            return false;
        }
    *out = arr;
    *n = cnt;
    return true;
}

static bool one_digest(const msgpack_object *o, void *d) { return unpack_digest(o, d); }
static bool one_entry(const msgpack_object *o, void *e) { return unpack_entry(o, e); }

static bool unpack_digests(const msgpack_object *o, gossip_digest_t **out, size_t *n)
{
    return unpack_list(o, sizeof(**out), one_digest, (void **)out, n);
}

static bool unpack_entries(const msgpack_object *o, gossip_member_t **out, size_t *n)
{
    return unpack_list(o, sizeof(**out), one_entry, (void **)out, n);
}

/* ---- sending ---- */

/* Context of a request in flight: who it went to. */
typedef struct req_ctx {
    cluster_t *cl;
    gossip_target_t to;
} req_ctx_t;

static req_ctx_t *req_ctx(cluster_t *cl, const gossip_target_t *to)
{
    req_ctx_t *rc = malloc(sizeof(*rc));
    if (rc) {
        rc->cl = cl;
        rc->to = *to;
    }
    return rc;
}

static void on_ack(void *arg, int status, const frame_t *f)
{
    req_ctx_t *rc = arg;
    cluster_t *cl = rc->cl;
    const msgpack_object *parts;
    uint32_t n;
    gossip_ack_t ack = {0};
    gossip_ack2_t ack2 = {0};
    if (status != 0 || !cl->gossip)
        goto out;
    if (f->type != MSG_GOSSIP_ACK || !mp_array(&f->body, 2, 2, &parts, &n) ||
        !unpack_entries(&parts[0], &ack.entries, &ack.nentries) ||
        !unpack_digests(&parts[1], &ack.requests, &ack.nrequests) ||
        gossip_on_ack(cl->gossip, &ack, mono_ms(), &ack2) < 0) {
        cl->stats.gossip_msgs_bad++;
        goto out;
    }
    if (ack2.nentries > 0) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, ack2.nentries);
        for (size_t i = 0; i < ack2.nentries; i++)
            pack_entry(&pk, &ack2.entries[i]);
        transport_oneway(cl->transport, rc->to.addr.host, rc->to.addr.port, MSG_GOSSIP_ACK2,
                         sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    cluster_refresh_ring(cl);
out:
    gossip_ack2_free(&ack2);
    gossip_ack_free(&ack);
    free(rc);
}

static void on_pong(void *arg, int status, const frame_t *f)
{
    req_ctx_t *rc = arg;
    cluster_t *cl = rc->cl;
    char name[GOSSIP_NAME_MAX + 1];
    if (status == 0 && cl->gossip && f->type == MSG_PING && mp_str(&f->body, name, sizeof(name)) &&
        !strcmp(name, rc->to.name)) {
        gossip_on_probe_ack(cl->gossip, name, mono_ms());
        cluster_refresh_ring(cl);
    } else {
        cl->stats.probes_failed++;
    }
    free(rc);
}

static void send_request(cluster_t *cl, const gossip_target_t *to, uint8_t type,
                         const msgpack_sbuffer *sb, int timeout_ms, peer_reply_fn cb)
{
    req_ctx_t *rc = req_ctx(cl, to);
    if (!rc)
        return;
    if (transport_request(cl->transport, to->addr.host, to->addr.port, type, sb->data, sb->size,
                          timeout_ms, cb, rc) < 0)
        free(rc);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cluster_t *cl = arg;
    gossip_round_t round = {0};
    if (gossip_tick(cl->gossip, mono_ms(), &round) == 0) {
        cl->stats.gossip_rounds++;
        int timeout = cl->srv->cfg.gossip_interval_ms * 5;
        if (timeout < 500)
            timeout = 500;
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, round.nsyn);
        for (size_t i = 0; i < round.nsyn; i++)
            pack_digest(&pk, &round.syn[i]);
        for (size_t i = 0; i < round.ntargets; i++)
            send_request(cl, &round.targets[i], MSG_GOSSIP_SYN, &sb, timeout, on_ack);
        for (size_t i = 0; i < round.nprobes; i++) {
            sb.size = 0;
            pack_str(&pk, cl->srv->cfg.name);
            cl->stats.probes_sent++;
            send_request(cl, &round.probes[i], MSG_PING, &sb, timeout, on_pong);
        }
        msgpack_sbuffer_destroy(&sb);
    }
    gossip_round_free(&round);
    cluster_refresh_ring(cl);
}

/* ---- receiving ---- */

static void on_request(void *arg, peer_link_t *link, const frame_t *f)
{
    cluster_t *cl = arg;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int64_t now = mono_ms();
    switch (f->type) {
    case MSG_PING:
        pack_str(&pk, cl->srv->cfg.name);
        transport_reply(link, f->req_id, MSG_PING, sb.data, sb.size);
        break;
    case MSG_GOSSIP_SYN: {
        gossip_digest_t *d = NULL;
        size_t n = 0;
        gossip_ack_t ack = {0};
        if (f->kind != FRAME_REQUEST || !unpack_digests(&f->body, &d, &n) ||
            gossip_on_syn(cl->gossip, d, n, now, &ack) < 0) {
            cl->stats.gossip_msgs_bad++;
            free(d);
            break;
        }
        free(d);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_array(&pk, ack.nentries);
        for (size_t i = 0; i < ack.nentries; i++)
            pack_entry(&pk, &ack.entries[i]);
        msgpack_pack_array(&pk, ack.nrequests);
        for (size_t i = 0; i < ack.nrequests; i++)
            pack_digest(&pk, &ack.requests[i]);
        transport_reply(link, f->req_id, MSG_GOSSIP_ACK, sb.data, sb.size);
        gossip_ack_free(&ack);
        break;
    }
    case MSG_GOSSIP_ACK2: {
        gossip_member_t *e = NULL;
        size_t n = 0;
        if (!unpack_entries(&f->body, &e, &n) || gossip_on_ack2(cl->gossip, e, n, now) < 0)
            cl->stats.gossip_msgs_bad++;
        free(e);
        cluster_refresh_ring(cl);
        break;
    }
    default:
        coord_on_request(cl->srv, link, f);
        break;
    }
    msgpack_sbuffer_destroy(&sb);
}

/* ---- ring ---- */

/* Whether the current ring knew name as alive. */
static bool was_alive(const cluster_t *cl, const char *name)
{
    const cluster_view_t *v = cl->view;
    size_t n = ring_node_count(v->ring);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v->nodes[i].name, name))
            return v->nodes[i].alive;
    return false;
}

void cluster_refresh_ring(cluster_t *cl)
{
    uint64_t epoch = gossip_epoch(cl->gossip);
    if (cl->view && epoch == cl->ring_epoch)
        return;
    size_t count = gossip_member_count(cl->gossip);
    const char **names = calloc(count ? count : 1, sizeof(*names));
    gossip_member_info_t *infos = calloc(count ? count : 1, sizeof(*infos));
    size_t n = 0;
    if (!names || !infos)
        goto out;
    /* Ring members: every node that is or still is in the ring (up or down:
     * a down node keeps its ranges; requests route around it). */
    for (size_t i = 0; i < count; i++) {
        if (gossip_member(cl->gossip, i, &infos[n]) < 0)
            continue;
        uint32_t st = infos[n].entry.status;
        if (st == GOSSIP_UP || st == GOSSIP_LEAVING || infos[n].is_self) {
            names[n] = infos[n].entry.name;
            n++;
        }
    }
    ring_t *ring = NULL;
    if (ring_build(names, n, (uint32_t)cl->srv->cfg.vnodes, (uint32_t)cl->srv->cfg.n, epoch,
                   &ring) < 0) {
        log_warn("cluster: cannot build the ring of %zu members", n);
        goto out;
    }
    cluster_node_t *nodes = calloc(n ? n : 1, sizeof(*nodes));
    bool *down = calloc(n ? n : 1, sizeof(*down));
    cluster_view_t *view = calloc(1, sizeof(*view));
    if (!nodes || !down || !view) {
        free(nodes);
        free(down);
        free(view);
        ring_free(ring);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t idx = ring_node_index(ring, names[i]);
        cluster_node_t *cn = &nodes[idx];
        snprintf(cn->name, sizeof(cn->name), "%s", infos[i].entry.name);
        snprintf(cn->host, sizeof(cn->host), "%s", infos[i].entry.host);
        cn->peer_port = infos[i].entry.peer_port;
        cn->alive = infos[i].alive || infos[i].is_self;
        cn->is_self = infos[i].is_self;
        down[idx] = !cn->alive;
        if (cn->is_self)
            view->self_idx = idx;
    }
    for (size_t i = 0; i < n; i++) /* alive again: reconnect at once */
        if (nodes[i].alive && !nodes[i].is_self && (!cl->view || !was_alive(cl, nodes[i].name)))
            transport_peer_alive(cl->transport, nodes[i].host, nodes[i].peer_port);
    view->refs = 1;
    view->ring = ring;
    view->nodes = nodes;
    view->down = down;
    if (!cl->view || ring_node_count(cl->view->ring) != n)
        log_info("cluster: ring epoch %llu with %zu nodes", (unsigned long long)epoch, n);
    cluster_view_release(cl->view);
    cl->view = view;
    cl->ring_epoch = epoch;
    cl->stats.ring_rebuilds++;
out:
    free(names);
    free(infos);
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

    gossip_member_t self = {.client_port = (uint16_t)cfg->client_port,
                            .peer_port = (uint16_t)cfg->peer_port,
                            .generation = cl->generation,
                            .status = GOSSIP_UP};
    snprintf(self.name, sizeof(self.name), "%s", cfg->name);
    snprintf(self.host, sizeof(self.host), "%s", cfg->host);
    gossip_addr_t seeds[CONFIG_MAX_SEEDS];
    size_t ns = 0;
    for (int i = 0; i < cfg->nseeds; i++) {
        snprintf(seeds[ns].host, sizeof(seeds[ns].host), "%s", cfg->seeds[i].host);
        seeds[ns].port = (uint16_t)cfg->seeds[i].port;
        ns++;
    }
    gossip_config_t gc = {.phi_threshold = cfg->phi_threshold,
                          .interval_ms = cfg->gossip_interval_ms,
                          .seeds = seeds,
                          .nseeds = ns};
    if (gossip_new(&self, &gc, &cl->gossip) < 0) {
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
    struct timeval tv = {cfg->gossip_interval_ms / 1000, (cfg->gossip_interval_ms % 1000) * 1000};
    if (!cl->tick || event_add(cl->tick, &tv) < 0) {
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
