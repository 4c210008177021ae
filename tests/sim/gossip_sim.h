/*
 * gossip_sim.h - a cluster of gossip_t nodes simulated in one process, for
 * tests/unit/test_gossip.c and bench/gossip-sim.c.
 *
 * Contract: deterministic for a given config (seeded PRNG, simulated clock,
 * no real time, no I/O).  Every message is packed with the daemon's message
 * table (server/msg.c), framed by common/frame.c as the transport frames
 * it (length prefix, header, body; no HMAC trailer), and parsed and decoded
 * again on delivery, so byte counts are the bytes a daemon would write to
 * its peer sockets, TCP/IP headers excluded.  Each frame arrives after
 * 1..5 ms plus its sender's jitter, or is lost with probability cfg.loss;
 * a killed node neither ticks nor receives; nodes of different groups
 * cannot talk.  A request whose answer is lost simply gets none: gossip/
 * times out probes and retries mail by itself, as the daemon relies on.
 *
 * Node i (0-based) is "node<i+1>" at 10.0.x.y:7000, seeded through node1.
 * Predicates passed to gsim_run_until() are checked at most every
 * cfg.check_ms of simulated time (0: after every event time).
 */
#ifndef QKV_GOSSIP_SIM_H
#define QKV_GOSSIP_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "../../gossip/gossip.h"

typedef struct gsim gsim_t;

typedef struct gsim_config {
    int nodes;            /* started at time 0 */
    int capacity;         /* slots for later gsim_start()s (>= nodes; 0: nodes) */
    uint64_t seed;
    int64_t left_ttl_ms;  /* 0: gossip's default */
    double loss;          /* probability that a frame is lost, 0..1 */
    uint32_t mode;        /* gossip_mode_t of every node */
    uint32_t fd_window;   /* 0: gossip's default */
    bool warm;            /* start as a converged cluster (every node knows
                           * every other) instead of from the seed alone */
    int64_t check_ms;
} gsim_config_t;

#define GSIM_INTERVAL 200 /* gossip.interval_ms of every node */
#define GSIM_TYPES 16     /* frame types counted apart (server/msg.h) */

typedef struct gsim_traffic {
    uint64_t frames, bytes;    /* sent, lost ones included */
    uint64_t lost, dropped;    /* lost at random; to or from a dead or cut node */
    uint64_t bad;              /* frames that did not parse or decode: a bug */
    uint64_t refused;          /* messages gossip/ refused (-EINVAL, -EBUSY) */
    uint64_t frames_by_type[GSIM_TYPES], bytes_by_type[GSIM_TYPES];
} gsim_traffic_t;

typedef bool (*gsim_pred)(gsim_t *s, void *arg);

/* NULL on a bad config or out of memory. */
gsim_t *gsim_new(const gsim_config_t *cfg);
void gsim_free(gsim_t *s);

/* (Re)starts slot i (< capacity) with a new generation: a restart, or a
 * join when the slot was never used.  It ticks from now on. */
void gsim_start(gsim_t *s, int i, int64_t generation);
void gsim_kill(gsim_t *s, int i);
void gsim_set_group(gsim_t *s, int i, int group);
/* Frames node i sends are delayed 0..jitter extra ms, its probe answers
 * 0..probe_jitter. */
void gsim_set_jitter(gsim_t *s, int i, int64_t jitter, int64_t probe_jitter);

/* Runs until pred holds (returns the simulated time) or until limit
 * (returns -1, with the clock at limit).  pred may be NULL. */
int64_t gsim_run_until(gsim_t *s, int64_t limit, gsim_pred pred, void *arg);
void gsim_run_for(gsim_t *s, int64_t ms);

int64_t gsim_now(const gsim_t *s);
int gsim_slots(const gsim_t *s);          /* slots ever started */
gossip_t *gsim_gossip(gsim_t *s, int i);  /* NULL for a slot never started */
const char *gsim_name(const gsim_t *s, int i);
bool gsim_live(const gsim_t *s, int i);   /* started and not killed */
int64_t gsim_generation(const gsim_t *s, int i);
uint64_t gsim_probes_to(const gsim_t *s, int i); /* pings sent to it */
void gsim_reset_probes(gsim_t *s);

void gsim_traffic(const gsim_t *s, gsim_traffic_t *out);
void gsim_reset_traffic(gsim_t *s);

/* Every live node knows every live node, alive, at its current generation. */
bool gsim_converged(gsim_t *s, void *arg);

/* What gsim_all_see() checks: every live node other than subject sees it
 * with this liveness, status (-1: any) and generation (0: any). */
typedef struct gsim_view {
    int subject;
    bool alive;
    int status;
    int64_t generation;
} gsim_view_t;
bool gsim_all_see(gsim_t *s, void *view);
/* How many live nodes other than v->subject see it as described. */
int gsim_count_see(gsim_t *s, const gsim_view_t *v);

/*
 * The scale scenario (make bench-gossip, and test_gossip at 100 nodes): a
 * warm cluster of `nodes` (failure detectors of 100 samples) settles for
 * warmup_ms; bytes are measured over
 * steady_ms of quiet; then, one at a time with settle_ms between: node
 * <nodes+1> joins through the seed, node <nodes/2+1> sets LEFT (and exits a
 * second later), node <nodes/3+1> is killed.  Each time it counts the rounds
 * until every live node knows: the joiner alive and UP, the leaver LEFT,
 * the killed node down (as each node's own probe of it failed).
 */
typedef struct gsim_scale {
    int nodes;
    uint32_t mode;
    uint64_t seed;
    double loss;
    int64_t warmup_ms, steady_ms, settle_ms, limit_ms; /* 0: 20, 10, 5, 60 s */
    /* results; rounds are -1 when not reached within limit_ms */
    double join_rounds, leave_rounds, fail_rounds;
    double quiet_bps;  /* gossip bytes sent per node per second, quiet */
    double event_bps;  /* ... from the join to the end */
    gsim_traffic_t quiet, events;
} gsim_scale_t;

/* Runs the scenario described by sc's first fields; fills the results.
 * false when the cluster cannot be simulated (bad config, out of memory). */
bool gsim_scale_run(gsim_scale_t *sc);

#endif
