/*
 * gossip.h - cluster membership: gossip rounds (Scuttlebutt SYN/ACK/ACK2 as
 * in Cassandra), a phi-accrual failure detector (Akka) and SWIM-style direct
 * probes before a member is judged down.
 *
 * Contract: a pure state machine.  No sockets, no libevent, no msgpack, no
 * clock reads, no globals: every call that needs time takes `now_ms` from the
 * caller (any monotonic millisecond clock; a value below one already seen is
 * treated as the one already seen), and all randomness comes from a PRNG
 * seeded by gossip_config_t.rng_seed.  The same inputs give the same outputs,
 * so a whole cluster can be simulated in one process.  Not thread-safe: one
 * gossip_t belongs to one event loop.
 *
 * Data model.  Each member is described by an entry (gossip_member_t) that
 * only its owner changes: (generation, version) orders what anyone says about
 * it, lexicographically, and the newer pair wins every merge.  generation is
 * the owner's start time in ms, so a restarted node supersedes its old self
 * entirely; version grows on every heartbeat (one per gossip_tick()) and on
 * every status change.  Liveness (alive/down) is never gossiped: each node
 * judges it for itself.  A LEFT member is kept as a tombstone so stale gossip
 * cannot resurrect it; after cfg.left_ttl_ms it disappears from the views
 * and is no longer gossiped, but is still remembered (and stale entries for
 * it ignored) for another left_ttl_ms, then forgotten.
 *
 * A round, as the caller drives it every cfg.interval_ms:
 *
 *    node A                                       node B
 *    gossip_tick() -> round.syn, round.targets
 *        ---- SYN: digests (name, gen, version) ---->
 *                                                 gossip_on_syn() -> ack
 *        <--- ACK: entries B has newer or A lacks, --
 *                  digests of entries B is behind on (requests)
 *    gossip_on_ack() -> ack2
 *        ---- ACK2: the requested entries ---------->
 *                                                 gossip_on_ack2()
 *
 * Liveness.  Every entry applied with a newer version than known is a
 * heartbeat arrival for that member.  When its phi (gossip_phi()) exceeds
 * cfg.phi_threshold, or when a member is first seen or comes back with a new
 * generation, the next gossip_tick() lists it in round.probes: the caller
 * sends it a direct ping and calls gossip_on_probe_ack() when it answers.
 * A probe unanswered (and no heartbeat arrival) for cfg.probe_timeout_ms
 * marks the member down on a later tick.  A down member is alive again as
 * soon as a newer heartbeat arrives, by gossip or by probe answer.
 *
 * Ownership.  A gossip_t is created by gossip_new() and released with
 * gossip_free(); it copies everything it is given (self, config, seeds) and
 * never keeps a caller's pointer.  Messages and views are plain structs of
 * fixed-size fields (no pointers inside an entry or digest), so they encode
 * field by field.  Arrays a caller passes in stay the caller's and are only
 * read during the call.  Arrays the module hands out (in gossip_round_t,
 * gossip_ack_t, gossip_ack2_t) are malloc()ed, owned by the caller, and freed
 * by gossip_round_free() / gossip_ack_free() / gossip_ack2_free() (which
 * call free(), so a decoder may fill these structs with its own malloc()ed
 * arrays and free them the same way).
 *
 * Untrusted input.  Every entry and digest from a message is validated
 * before anything is applied; one bad item (bad name or host, missing NUL,
 * port 0, unknown status, negative generation, a name twice, more than
 * GOSSIP_MAX_MEMBERS items or members) rejects the whole message with
 * -EINVAL and changes nothing.  Entries about this node itself are never
 * applied (only the owner changes its entry).
 *
 * Errors: 0 (or a count) on success, a negative errno value on failure:
 * -EINVAL for bad arguments or a malformed message, -ENOMEM.  A lookup that
 * finds nothing is a result, not an error.  A NULL gossip_t is a caller bug
 * and is not checked outside gossip_new()/gossip_free().
 */
#ifndef QKV_GOSSIP_H
#define QKV_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gossip gossip_t;

#define GOSSIP_NAME_MAX 63u      /* bytes in a member name, without NUL */
#define GOSSIP_HOST_MAX 255u     /* bytes in a host (IPv4 text), without NUL */
#define GOSSIP_MAX_MEMBERS 1024u /* members known, self included */
#define GOSSIP_MAX_SEEDS 64u
#define GOSSIP_MAX_TARGETS 3u    /* gossip targets per round */
#define GOSSIP_FD_WINDOW 1000u   /* inter-arrival samples per member */

/* Member status as its owner declares it.  The values are the wire values. */
typedef enum gossip_status {
    GOSSIP_JOINING = 0,
    GOSSIP_UP = 1,      /* normal member of the ring */
    GOSSIP_LEAVING = 2, /* still in the ring, handing its ranges over */
    GOSSIP_LEFT = 3,    /* gone; a tombstone */
} gossip_status_t;

/*
 * What gossip says about one member: the unit of ACK and ACK2 payloads.
 * name: 1..GOSSIP_NAME_MAX printable ASCII bytes (0x21..0x7e), NUL-terminated
 * in the array.  host: IPv4 dotted text, NUL-terminated.  Ports are non-zero.
 * generation > 0, and must grow across restarts of the same name (use
 * max(start time, last generation + 1) if the clock may step back: a lower
 * generation is stale everywhere).  status is a gossip_status_t value
 * (stored as uint32_t so a decoder can fill it with any number and have it
 * rejected, not UB).
 */
typedef struct gossip_member {
    char name[GOSSIP_NAME_MAX + 1];
    char host[GOSSIP_HOST_MAX + 1];
    uint16_t client_port;
    uint16_t peer_port;
    int64_t generation; /* owner's start time, ms */
    uint64_t version;   /* heartbeat version; also bumped by status changes */
    uint32_t status;    /* gossip_status_t */
} gossip_member_t;

/* (name, generation, version): SYN payload and ACK requests.  In a request,
 * (generation, version) is what the requester has ((0, 0) when it has
 * nothing): "send me your entry if it is newer than this". */
typedef struct gossip_digest {
    char name[GOSSIP_NAME_MAX + 1];
    int64_t generation; /* >= 0 */
    uint64_t version;
} gossip_digest_t;

/* A peer address: host is IPv4 text, port a peer (gossip) port. */
typedef struct gossip_addr {
    char host[GOSSIP_HOST_MAX + 1];
    uint16_t port;
} gossip_addr_t;

/* Somebody to send to.  name is "" for a seed not (yet) known as a member. */
typedef struct gossip_target {
    char name[GOSSIP_NAME_MAX + 1];
    gossip_addr_t addr;
} gossip_target_t;

/*
 * Configuration, copied by gossip_new().  Zero fields take the defaults:
 * phi_threshold 8, interval_ms 200, probe_timeout_ms max(500, 2*interval_ms),
 * left_ttl_ms 24 h, rng_seed derived from self's name and generation.
 * seeds: nseeds (<= GOSSIP_MAX_SEEDS) peer addresses, read during
 * gossip_new() only; a seed is not a member until heard from, and a seed
 * equal to self's host:peer_port is ignored.
 */
typedef struct gossip_config {
    double phi_threshold;
    int64_t interval_ms;
    int64_t probe_timeout_ms;
    int64_t left_ttl_ms;
    uint64_t rng_seed;
    const gossip_addr_t *seeds;
    size_t nseeds;
} gossip_config_t;

/* Everything gossip_tick() asks the caller to do.  Owned by the caller once
 * filled; release with gossip_round_free(). */
typedef struct gossip_round {
    gossip_digest_t *syn;  /* malloc()ed: digests of every member, self too */
    size_t nsyn;
    gossip_target_t targets[GOSSIP_MAX_TARGETS]; /* send syn to each */
    size_t ntargets;       /* 0 when nobody is known to gossip with */
    gossip_target_t *probes; /* malloc()ed or NULL: ping each directly */
    size_t nprobes;
} gossip_round_t;

/* ACK: the answer to a SYN.  Filled by gossip_on_syn() (malloc()ed arrays,
 * caller frees with gossip_ack_free()), or by the caller's decoder for
 * gossip_on_ack().  Size bound for decoders: every array of every message
 * (SYN digests, ACK entries and requests, ACK2 entries) holds at most
 * GOSSIP_MAX_MEMBERS items; more is rejected as malformed. */
typedef struct gossip_ack {
    gossip_member_t *entries; /* entries the SYN sender is behind on */
    size_t nentries;
    gossip_digest_t *requests; /* entries the ACK sender is behind on */
    size_t nrequests;
} gossip_ack_t;

/* ACK2: the entries an ACK requested.  Filled by gossip_on_ack() (caller
 * frees with gossip_ack2_free()); nentries == 0 means nothing to send. */
typedef struct gossip_ack2 {
    gossip_member_t *entries;
    size_t nentries;
} gossip_ack2_t;

/* A read-only snapshot of one member, copied out (no pointers). */
typedef struct gossip_member_info {
    gossip_member_t entry; /* what gossip says; entry.version = heartbeat */
    bool is_self;
    bool alive;       /* local judgement; self is alive, a LEFT member not */
    bool probing;     /* a probe is outstanding: suspected, not yet down */
    double phi;       /* as of the latest now_ms given to this gossip_t; 0 for
                       * self and LEFT members */
} gossip_member_info_t;

/*
 * gossip_new - start the membership view with only `self` in it.
 *
 * self is validated like any entry (its version is usually 0; its status
 * JOINING or UP).  Returns 0 and sets *out to a new gossip_t owned by the
 * caller (free with gossip_free()); -EINVAL for a NULL or invalid self, cfg
 * or out, a negative or non-finite setting, a bad seed, or too many seeds;
 * -ENOMEM.  *out is untouched on failure.
 */
int gossip_new(const gossip_member_t *self, const gossip_config_t *cfg,
               gossip_t **out);

/* gossip_free - release g and everything it owns.  NULL is a no-op. */
void gossip_free(gossip_t *g);

/*
 * gossip_tick - one gossip round at now_ms (call every cfg.interval_ms).
 *
 * Bumps self's heartbeat version; marks down the members whose probe timed
 * out; lists in round->probes the alive members to probe (phi above the
 * threshold, or newly seen) and starts their probe timers; expires LEFT
 * tombstones; chooses targets as Cassandra does: one random alive member;
 * with probability unreachable/(alive+1) one random down member; and a
 * random seed when no member is alive or, with probability
 * seeds/(alive+down), when the first target was not a seed.  round->syn
 * holds the digest of every member, to be sent to every target.
 *
 * *round is overwritten (free a previous round first) and owned by the
 * caller: gossip_round_free().  Returns 0, or -ENOMEM (then *round is empty,
 * the heartbeat is still bumped and the timers run).
 */
int gossip_tick(gossip_t *g, int64_t now_ms, gossip_round_t *round);

/*
 * gossip_on_syn - answer a SYN of n digests.
 *
 * Fills *ack (overwritten; caller frees with gossip_ack_free()) with the full
 * entries this node has newer than the digests or that the digests lack, and
 * requests for the entries where it is behind.  Applies nothing.  Returns 0;
 * -EINVAL for a malformed SYN (see the header comment; digests may be NULL
 * only when n is 0); -ENOMEM.  *ack is empty on failure.
 */
int gossip_on_syn(gossip_t *g, const gossip_digest_t *digests, size_t n,
                  int64_t now_ms, gossip_ack_t *ack);

/*
 * gossip_on_ack - apply an ACK and build the ACK2.
 *
 * Applies ack->entries (newer ones win; a newer version is a heartbeat
 * arrival at now_ms) and fills *ack2 (overwritten; caller frees with
 * gossip_ack2_free()) with this node's entries that are newer than the
 * requests.  Returns 0; -EINVAL for a malformed ACK (nothing applied);
 * -ENOMEM (nothing applied).  *ack2 is empty on failure.
 */
int gossip_on_ack(gossip_t *g, const gossip_ack_t *ack, int64_t now_ms,
                  gossip_ack2_t *ack2);

/* gossip_on_ack2 - apply the n entries of an ACK2, as gossip_on_ack() does.
 * Returns 0, -EINVAL (malformed, nothing applied) or -ENOMEM (nothing
 * applied). */
int gossip_on_ack2(gossip_t *g, const gossip_member_t *entries, size_t n,
                   int64_t now_ms);

/*
 * gossip_on_probe_ack - member `name` answered a direct probe at now_ms.
 *
 * Counts as a heartbeat arrival: clears the suspicion and, if the member was
 * down, makes it alive again.  Returns 1 when applied, 0 when the name is
 * unknown, self or LEFT (ignored), -EINVAL for a NULL or bad name.
 */
int gossip_on_probe_ack(gossip_t *g, const char *name, int64_t now_ms);

/*
 * gossip_set_status - the owner changes its own status (e.g. UP, then
 * LEAVING, then LEFT).  Bumps self's version so the change wins everywhere;
 * setting the current status again changes nothing.  Returns 0, or -EINVAL
 * for an unknown status.
 */
int gossip_set_status(gossip_t *g, gossip_status_t status, int64_t now_ms);

/* gossip_phi - phi of member `name` at now_ms: how unlikely it is that its
 * next heartbeat is still to come.  0 for self and LEFT members; -1.0 when
 * the name is unknown. */
double gossip_phi(gossip_t *g, const char *name, int64_t now_ms);

/* gossip_epoch - membership epoch, starting at 1: grows whenever a member is
 * added or removed or changes status, liveness, generation or address, so
 * the caller rebuilds its ring (and ring_build()'s epoch) when it moves. */
uint64_t gossip_epoch(const gossip_t *g);

/* gossip_member_count - members in the view, self included (expired LEFT
 * tombstones excluded). */
size_t gossip_member_count(const gossip_t *g);

/* gossip_member - snapshot of member i (0 .. count-1, sorted by name; an
 * index is valid only until the next call that changes g).  Returns 0, or
 * -EINVAL if i is out of range or out is NULL. */
int gossip_member(const gossip_t *g, size_t i, gossip_member_info_t *out);

/* gossip_lookup - snapshot of member `name` into *out (may be NULL to test
 * membership only).  Returns true when found. */
bool gossip_lookup(const gossip_t *g, const char *name,
                   gossip_member_info_t *out);

/* Release what gossip_tick() / gossip_on_syn() / gossip_on_ack() handed
 * over and leave the struct empty; NULL and empty structs are fine. */
void gossip_round_free(gossip_round_t *round);
void gossip_ack_free(gossip_ack_t *ack);
void gossip_ack2_free(gossip_ack2_t *ack2);

/*
 * Failure-detector building blocks (phi.c), public so they can be tested
 * and reused on their own.  A gossip_fd_t is a sliding window of heartbeat
 * inter-arrival times; the window is of exact integer sums, so the mean and
 * variance never drift.
 */
typedef struct gossip_fd gossip_fd_t;

/* gossip_fd_new - a detector keeping `window` (1..65536) samples; the
 * standard deviation used is at least min_stddev_ms (> 0); intervals longer
 * than max_sample_ms (1..10^7) are not recorded (a node's downtime must not
 * teach the detector that long silences are normal).  Starts as after
 * gossip_fd_reset(fd, first_estimate, 0) with first_estimate =
 * 2 * min_stddev_ms.  0 and *out owned by the caller (gossip_fd_free()),
 * -EINVAL or -ENOMEM. */
int gossip_fd_new(uint32_t window, double min_stddev_ms, int64_t max_sample_ms,
                  gossip_fd_t **out);
void gossip_fd_free(gossip_fd_t *fd);

/* gossip_fd_reset - forget every sample; bootstrap with one sample of
 * first_estimate_ms (clamped to 1..max_sample_ms) and a last arrival at
 * now_ms, so a fresh member is not convicted at once. */
void gossip_fd_reset(gossip_fd_t *fd, int64_t first_estimate_ms, int64_t now_ms);

/* gossip_fd_heartbeat - a heartbeat arrived at now_ms: records the interval
 * since the previous one (unless it is 0, negative or too long). */
void gossip_fd_heartbeat(gossip_fd_t *fd, int64_t now_ms);

/* gossip_fd_phi - phi at now_ms given the last arrival and the window. */
double gossip_fd_phi(const gossip_fd_t *fd, int64_t now_ms);

/* gossip_fd_last - time of the last arrival given to the detector. */
int64_t gossip_fd_last(const gossip_fd_t *fd);

/* gossip_phi_normal - phi = -log10(1 - F(elapsed)) for F the normal CDF of
 * (mean, stddev), with Akka's logistic approximation of F, computed in a form
 * that never overflows (finite for any finite input, >= 0, increasing in
 * elapsed).  stddev must be > 0. */
double gossip_phi_normal(double elapsed_ms, double mean_ms, double stddev_ms);

#endif
