/*
 * admit.c - admission control (see admit.h for where requests wait and
 * the bound on each place).
 *
 * Organisation: the clock and the pure decision, then the counting entry
 * points that conn.c (client requests), coord.c (peers' requests) and the
 * background drivers (handoff.c, aae.c) call.  Invariant: inflight is the
 * number of admit_begin() calls without their admit_end(); it never goes
 * below zero.
 *
 * A loop turn ends when the callbacks active in it have run: the first
 * replica request of a turn activates turn_end, which runs after them (as
 * peer.c's cork flush does) and resets the count.
 */
#include "admit.h"

#include <event2/event.h>
#include <stdint.h>
#include <time.h>

#include "server.h"

/* How long after a refusal the node still counts as busy for background
 * work: long enough that a hint or anti-entropy round does not start
 * between two bursts of one overload. */
#define ADMIT_BUSY_HOLD_US 1000000

int64_t admit_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

enum admit_verdict admit_decide(admit_queue_t *q, int inflight, int64_t arrived_us,
                                int64_t now_us, int queue_timeout_ms, int max_inflight)
{
    if (queue_timeout_ms > 0) {
        int64_t interval = (int64_t)queue_timeout_ms * 1000;
        int64_t target = (int64_t)ADMIT_TARGET_MS * 1000, bound = interval;
        if (target < interval) {
            if (now_us - q->last_empty_us > interval)
                q->last_standing_us = now_us; /* a standing queue */
            if (now_us - q->last_standing_us <= ADMIT_MEMORY * interval)
                bound = target;
        }
        if (now_us - arrived_us > bound)
            return ADMIT_QUEUE_TIMEOUT;
    }
    if (inflight >= max_inflight)
        return ADMIT_INFLIGHT;
    return ADMIT_OK;
}

static void shed(admit_t *a, uint64_t *counter)
{
    (*counter)++;
    a->last_shed_us = admit_now_us();
}

enum admit_verdict admit_client(server_t *srv, admit_queue_t *q, int64_t arrived_us)
{
    admit_t *a = &srv->admit;
    enum admit_verdict v = admit_decide(q, a->inflight, arrived_us, admit_now_us(),
                                        srv->cfg.queue_timeout_ms, srv->cfg.max_inflight);
    if (v == ADMIT_QUEUE_TIMEOUT)
        shed(a, &a->stats.shed_queue_timeout);
    else if (v == ADMIT_INFLIGHT)
        shed(a, &a->stats.shed_inflight);
    return v;
}

bool admit_forwarded(server_t *srv)
{
    admit_t *a = &srv->admit;
    if (a->inflight < srv->cfg.max_inflight)
        return true;
    shed(a, &a->stats.shed_forwarded);
    return false;
}

static void on_turn_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((admit_t *)arg)->turn_replica = 0;
}

bool admit_replica(server_t *srv)
{
    admit_t *a = &srv->admit;
    if (!a->turn_end && srv->base)
        a->turn_end = event_new(srv->base, -1, 0, on_turn_end, a);
    if (!a->turn_end)
        return true; /* no way to tell turns apart: no bound rather than a wrong one */
    if (a->turn_replica >= srv->cfg.max_inflight) {
        shed(a, &a->stats.shed_replica);
        return false;
    }
    if (a->turn_replica++ == 0)
        event_active(a->turn_end, EV_TIMEOUT, 0);
    return true;
}

void admit_close(server_t *srv)
{
    if (srv->admit.turn_end)
        event_free(srv->admit.turn_end);
    srv->admit.turn_end = NULL;
}

void admit_begin(server_t *srv)
{
    admit_t *a = &srv->admit;
    if (++a->inflight > a->inflight_peak)
        a->inflight_peak = a->inflight;
}

void admit_end(server_t *srv)
{
    if (srv->admit.inflight > 0)
        srv->admit.inflight--;
}

bool admit_busy(server_t *srv)
{
    const admit_t *a = &srv->admit;
    if (a->inflight * 2 >= srv->cfg.max_inflight)
        return true;
    return a->last_shed_us && admit_now_us() - a->last_shed_us < ADMIT_BUSY_HOLD_US;
}

void admit_deferred(server_t *srv)
{
    srv->admit.stats.background_deferred++;
}
