/*
 * peer.h - the inter-node transport: frames (common/frame.h) over
 * persistent TCP connections, with request ids, per-request deadlines and
 * reconnect with backoff.
 *
 *   transport_request(host:port) ──> link (one outbound TCP conn per peer,
 *        │                              connect on demand, backoff after a
 *        │ pending[req_id] + timer      failure: 100 ms doubling to 5 s)
 *        v
 *   reply frame or deadline or link failure ──> cb(status, frame) exactly once
 *
 *   inbound TCP conns (peer_port) ──> frames ──> on_request(link, frame)
 *                                                  └─> transport_reply(link, ...)
 *
 * A malformed or oversized frame closes that connection only (counted in
 * bad_frames).  Links are freed at a safe point (a reaper event), never
 * inside their own callbacks.  A link passed to on_request is valid only
 * during that callback, unless the handler takes a reference
 * (transport_link_hold) to answer later; transport_link_release drops it.
 *
 * Fault injection for tests: transport_set_drop(t, true) makes the node
 * deaf and mute on its peer port (every frame in and out is dropped), as a
 * network cut would; it is reachable only when the config enables it.
 */
#ifndef QKV_PEER_H
#define QKV_PEER_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/frame.h"

typedef struct transport transport_t;
typedef struct peer_link peer_link_t;

/* Message types and bodies: msg.h. */

/* Called for every request or one-way frame that arrives. */
typedef void (*peer_request_fn)(void *arg, peer_link_t *link, const frame_t *f);
/* Called exactly once per transport_request: status 0 with the reply frame,
 * or -ETIMEDOUT, -ECONNRESET, -ECONNREFUSED, -ECANCELED (transport closing)
 * with f NULL.  The frame is released after the callback returns. */
typedef void (*peer_reply_fn)(void *arg, int status, const frame_t *f);

typedef struct transport_opts {
    struct event_base *base;
    const char *host; /* bind address for the peer port */
    int port;
    size_t max_frame; /* 0 = FRAME_MAX_DEFAULT */
    const char *secret; /* node.cluster_secret, or NULL/"" for none */
    peer_request_fn on_request;
    void *arg;
} transport_opts_t;

typedef struct transport_stats {
    uint64_t frames_in, frames_out, bad_frames, dropped;
    uint64_t connects, connect_failures, timeouts;
    uint64_t pending;
    uint64_t writes;         /* corked writes (one per peer per loop turn with output) */
    uint64_t frames_written; /* frames those writes carried */
} transport_stats_t;

int transport_open(const transport_opts_t *opts, transport_t **out, char *err, size_t errlen);
/* Fails every pending request with -ECANCELED, closes every link. */
void transport_close(transport_t *t);

/* Send a request; cb gets the reply or the failure (never synchronously
 * inside this call: a failure detected here is reported from the loop).
 * body/blen: one packed msgpack object (copied).  0; or -ENOMEM, or
 * -ECANCELED while the transport is closing, and then cb is never called. */
int transport_request(transport_t *t, const char *host, int port, uint8_t type,
                      const void *body, size_t blen, int timeout_ms, peer_reply_fn cb, void *arg);
/* The same with the body in pieces body[0..nbody) (together one msgpack
 * object), copied once, into the frame, as they are. */
struct iovec;
int transport_request_iov(transport_t *t, const char *host, int port, uint8_t type,
                          const struct iovec *body, int nbody, int timeout_ms, peer_reply_fn cb,
                          void *arg);
/* Fire and forget. */
int transport_oneway(transport_t *t, const char *host, int port, uint8_t type, const void *body,
                     size_t blen);
/* Answer request req_id that arrived on link (kind FRAME_REQUEST).
 * -EPIPE when the link has died meanwhile (the answer is dropped). */
int transport_reply(peer_link_t *link, uint64_t req_id, uint8_t type, const void *body,
                    size_t blen);
/* The same with the body in pieces (see transport_request_iov). */
int transport_reply_iov(peer_link_t *link, uint64_t req_id, uint8_t type,
                        const struct iovec *body, int nbody);
/* Keep link's memory valid after the on_request callback returns; every
 * hold needs one release. */
void transport_link_hold(peer_link_t *link);
void transport_link_release(peer_link_t *link);

/* Gossip heard from host:port: forget its reconnect backoff, so requests to
 * a node that just came back do not wait out a delay meant for a dead one. */
void transport_peer_alive(transport_t *t, const char *host, int port);

void transport_set_drop(transport_t *t, bool drop);
bool transport_dropping(const transport_t *t);
/* Fault injection for tests: requests of message type `type` that arrive
 * are dropped without an answer, while the connections and every other
 * message go on (a replica that is alive but slow); 0 ends it. */
void transport_set_stall(transport_t *t, uint8_t type);
void transport_get_stats(const transport_t *t, transport_stats_t *out);

#endif
