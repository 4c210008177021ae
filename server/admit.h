/*
 * admit.h - admission control: what a node takes on when it gets more work
 * than it can do (BASE's "basically available": answer late rather than
 * never, and past a bound refuse quickly instead of collapsing).
 *
 * Where a request waits on this node, and the bound on each place:
 *
 *   kernel socket buffer ─┐  arrival = when its bytes reached the socket
 *   conn input buffer  ───┴─> parsed ── waited > server.queue_timeout_ms? ──> SERVER_ERROR busy
 *                                │     (conn.c stamps every read with the kernel's
 *                                │      receive time, SO_TIMESTAMPNS)
 *                                ├── server.max_inflight requests coordinated
 *                                │   here already? ──────────────────────────> SERVER_ERROR busy
 *                                v
 *                      coordinator (coord.c) ── replicas, per-key queue (bounded
 *                                               by cluster.request_timeout_ms)
 *
 *   peer frames ──> replica work (REPLICA_GET/PUT: served as read, never queued
 *                   here) ── more than server.max_inflight of them in one turn
 *                   of the event loop? ──> busy answer (the coordinator counts
 *                   a failed replica); a peer's forwarded write (COORD_WRITE)
 *                   counts in max_inflight like a client's
 *
 *   background (hint delivery, anti-entropy): admit_busy() says whether the
 *   node refused anything lately; they slow down or skip a round then.
 *
 * "In flight" counts client requests from their start to their reply
 * (conn.c, one per key of a multi-get window) and writes forwarded by peers
 * that this node coordinates (coord.c).  Every refusal is counted by its
 * reason (`stats`: shed_*).  All of it runs on the loop thread.
 */
#ifndef QKV_ADMIT_H
#define QKV_ADMIT_H

#include <stdbool.h>
#include <stdint.h>

struct server;

/* Why a request is refused (0: it is admitted). */
enum admit_verdict {
    ADMIT_OK = 0,
    ADMIT_QUEUE_TIMEOUT, /* it could not start within server.queue_timeout_ms */
    ADMIT_INFLIGHT,      /* server.max_inflight requests are being coordinated */
};

typedef struct admit_stats {
    uint64_t shed_queue_timeout; /* client requests refused: waited too long to start */
    uint64_t shed_inflight;      /* client requests refused: in-flight bound */
    uint64_t shed_forwarded;     /* peers' forwarded writes refused: in-flight bound */
    uint64_t shed_replica;       /* peers' replica requests refused: per-turn bound */
    uint64_t replica_busy;       /* busy answers this coordinator got from replicas */
    uint64_t background_deferred; /* hint / anti-entropy rounds slowed or skipped */
} admit_stats_t;

struct event;

/* Embedded in the server struct; zero is the initial state. */
typedef struct admit {
    int inflight;      /* requests being coordinated here now */
    int inflight_peak; /* the most at once since start */
    int64_t last_shed_us; /* admit_now_us() of the last refusal, 0 never */
    int turn_replica;     /* replica requests served in this loop turn */
    struct event *turn_end; /* resets turn_replica once the turn's callbacks ran */
    admit_stats_t stats;
} admit_t;

/* The clock of arrival stamps: CLOCK_MONOTONIC in microseconds. */
int64_t admit_now_us(void);

/* One queue of client requests (a connection's pipelined input): when it
 * was last seen empty, and when it last stood.  Zero it, then
 * admit_queue_init() at its start. */
typedef struct admit_queue {
    int64_t last_empty_us;
    int64_t last_standing_us; /* the last decision made under the low bound */
} admit_queue_t;

static inline void admit_queue_init(admit_queue_t *q, int64_t now_us)
{
    q->last_empty_us = now_us;
    q->last_standing_us = INT64_MIN / 2;
}
/* The queue had no complete request waiting at now_us (its owner calls
 * this whenever it finds its input drained, and with the arrival time of
 * bytes read into an empty input).  The mark never moves back in time. */
static inline void admit_queue_empty(admit_queue_t *q, int64_t now_us)
{
    if (now_us > q->last_empty_us)
        q->last_empty_us = now_us;
}

/* The decision for a request at the head of q that arrived at arrived_us,
 * asked at now_us with inflight requests running (no clock read, no
 * counting).
 *
 * The age bound is server.queue_timeout_ms while the queue keeps draining;
 * once it has not been empty for a whole queue_timeout_ms (a standing
 * queue: its client sends faster than it is served, not a burst), the
 * bound drops to ADMIT_TARGET_MS, and stays there while the queue keeps
 * standing and for ADMIT_MEMORY intervals after (a queue that drained for
 * a moment, its client descheduled, is the same overload coming back: as
 * CoDel re-enters its drop state at once when it left it recently).  A fixed 100 ms
 * bound alone would keep a standing queue 100 ms long, so every request
 * that succeeds would wait 100 ms; with the lower bound the same number of
 * requests still start (the node does as much work) and they answer fast.
 * This is the controlled-delay rule of Facebook's "Fail at Scale" (after
 * CoDel, Nichols and Jacobson).  queue_timeout_ms 0 turns the age check
 * off. */
#define ADMIT_TARGET_MS 5
#define ADMIT_MEMORY 10
enum admit_verdict admit_decide(admit_queue_t *q, int inflight, int64_t arrived_us,
                                int64_t now_us, int queue_timeout_ms, int max_inflight);

/* A client request at the head of q that arrived at arrived_us wants to
 * start: the verdict, counted when it is a refusal. */
enum admit_verdict admit_client(struct server *srv, admit_queue_t *q, int64_t arrived_us);
/* A peer's forwarded write (COORD_WRITE) wants to be coordinated here:
 * true to run it (then admit_begin/admit_end around it), false counted. */
bool admit_forwarded(struct server *srv);
/* A replica request from a peer (REPLICA_GET/PUT) in this loop turn: true
 * to serve it, false (counted) to answer busy. */
bool admit_replica(struct server *srv);

/* A request starts / ends being coordinated here. */
void admit_begin(struct server *srv);
void admit_end(struct server *srv);

/* Frees what admit_replica() created; call before the event base goes. */
void admit_close(struct server *srv);

/* Background work asks: has this node refused work in the last second, or
 * is it over half its in-flight bound?  Then it yields (and counts it with
 * admit_deferred). */
bool admit_busy(struct server *srv);
void admit_deferred(struct server *srv);

#endif
