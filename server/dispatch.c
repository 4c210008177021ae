/*
 * dispatch.c - the routing table of inter-node requests (see dispatch.h).
 *
 * Organisation: the refusal of each message family, the table, then
 * dispatch_request().  The table is small and looked up by a linear scan:
 * fourteen rows cost less than a hash, and keeping it a plain array keeps
 * it readable as the list of everything a node answers on its peer port.
 *
 * Invariant: a handler only ever sees a body its decoder accepted, on a
 * frame of a kind its row allows; the decoded message is freed here after
 * the handler returns (handlers that answer later copy what they keep).
 */
#include "dispatch.h"

#include "aae.h"
#include "cluster.h"
#include "coord.h"
#include "msg.h"
#include "server.h"
#include "transfer.h"

typedef void (*handler_fn)(struct server *srv, peer_link_t *link, const frame_t *f,
                           msg_any_t *m);
typedef void (*refuse_fn)(struct server *srv, peer_link_t *link, const frame_t *f);

/* Frame kinds a row accepts. */
#define K_REQ (1u << FRAME_REQUEST)
#define K_ONEWAY (1u << FRAME_ONEWAY)

typedef struct route {
    uint8_t type;
    uint8_t kinds;
    handler_fn handle;
    refuse_fn refuse;
} route_t;

/* Gossip bodies that do not decode are counted and not answered (the
 * sender's request times out, as a lost one would). */
static void refuse_gossip(struct server *srv, peer_link_t *link, const frame_t *f)
{
    (void)link;
    (void)f;
    cluster_refuse(srv);
}

static const route_t routes[] = {
    {MSG_PING, K_REQ, cluster_on_ping, refuse_gossip},
    {MSG_GOSSIP_SYN, K_REQ, cluster_on_syn, refuse_gossip},
    {MSG_GOSSIP_ACK2, K_REQ | K_ONEWAY, cluster_on_ack2, refuse_gossip},
    {MSG_GOSSIP_MAIL, K_REQ, cluster_on_mail, refuse_gossip},
    {MSG_REPLICA_GET, K_REQ, coord_on_replica_get, coord_refuse},
    {MSG_REPLICA_PUT, K_REQ, coord_on_replica_put, coord_refuse},
    {MSG_COORD_WRITE, K_REQ, coord_on_coord_write, coord_refuse},
    {MSG_FLUSH, K_REQ, coord_on_flush, coord_refuse},
    {MSG_AAE_ROOT, K_REQ, aae_on_root, aae_refuse},
    {MSG_AAE_LEAVES, K_REQ, aae_on_leaves, aae_refuse},
    {MSG_AAE_KEYS, K_REQ, aae_on_keys, aae_refuse},
    {MSG_AAE_SYNC, K_REQ, aae_on_sync, aae_refuse},
    {MSG_AAE_GC_CHECK, K_REQ, aae_on_gc_check, aae_refuse},
    {MSG_AAE_GC_PURGE, K_REQ, aae_on_gc_purge, aae_refuse},
    {MSG_XFER_PULL, K_REQ, xfer_on_pull, xfer_refuse},
    {MSG_XFER_PUSH, K_REQ, xfer_on_push, xfer_refuse},
    {MSG_JOIN_CHECK, K_REQ, cluster_on_join_check, refuse_gossip},
};

void dispatch_request(struct server *srv, peer_link_t *link, const frame_t *f)
{
    const route_t *r = NULL;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !r; i++)
        if (routes[i].type == f->type)
            r = &routes[i];
    if (r == NULL) { /* a type nobody handles */
        coord_refuse(srv, link, f);
        return;
    }
    msg_any_t m;
    if (f->kind > 7 || !(r->kinds & (1u << f->kind)) || msg_decode(f->type, MSG_REQ, &f->body, &m) < 0) {
        r->refuse(srv, link, f);
        return;
    }
    r->handle(srv, link, f, &m);
    msg_free(f->type, MSG_REQ, &m);
}
