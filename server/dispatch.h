/*
 * dispatch.h - the one table that routes inter-node requests: for every
 * message type, the frame kinds it may arrive as, its handler, and what a
 * malformed one costs.  The transport hands every request and one-way
 * frame to dispatch_request(), which checks the kind, decodes the body
 * with msg.h's decoder in one place (as redis's clusterProcessPacket checks
 * every message before it acts on it), and calls the handler with the
 * decoded message.  A message of an unknown type, of the wrong kind, or
 * whose body does not decode never reaches a handler: it is counted by its
 * family's refusal (gossip_bad_messages, replica_errors, aae_refused) and,
 * when it is a request outside gossip, answered with a status -EINVAL.
 * Adding a message is one row in msg.c's table and one here.
 */
#ifndef QKV_DISPATCH_H
#define QKV_DISPATCH_H

#include "peer.h"

struct server;

void dispatch_request(struct server *srv, peer_link_t *link, const frame_t *f);

#endif
