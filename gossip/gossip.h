/*
 * gossip.h - cluster membership: gossip's three tools (direct mail, rumor
 * mongering, anti-entropy, after Demers et al. 1987 as used by SWIM,
 * Cassandra and ScyllaDB), a phi-accrual failure detector (Akka) and
 * SWIM-style direct probes before a member is judged down.
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
 * only its owner changes.  Its state (address, status) is ordered by
 * (generation, version), lexicographically, and the newer pair wins every
 * merge: generation is the owner's start time in ms, so a restarted node
 * supersedes its old self entirely; version grows on every status change.
 * Its heartbeat grows every round (gossip_tick()) on the owner and is merged
 * by maximum within a generation: a newer heartbeat is what the failure
 * detector hears.  Liveness (alive/down) is each node's own judgement.  A
 * LEFT member is kept as a tombstone so stale gossip cannot resurrect it;
 * after cfg.left_ttl_ms it disappears from the views and is no longer
 * gossiped, but is still remembered (and stale entries for it ignored) for
 * another left_ttl_ms, then forgotten.
 *
 * The three tools (GOSSIP_MODE_RUMOR, the default):
 *
 *  - Direct mail.  A node's own change (its start with a new generation, a
 *    status change) goes at once to every peer it knows: round.mail lists
 *    them, the caller sends each round.mail_entry and reports answers with
 *    gossip_on_mail_ack().  Unanswered peers are listed again 1, 2 and 4
 *    rounds later (GOSSIP_MAIL_TRIES sends in all), then given up; peers
 *    learned within GOSSIP_MAIL_WINDOW rounds of the change get it too (a
 *    joining node knows only its seeds when it starts).
 *  - Rumor mongering.  Every membership change a node learns (a new member,
 *    a new generation, a status change) is a hot rumor on that node for
 *    gossip_rumor_rounds(n) = ceil(GOSSIP_RUMOR_LAMBDA * log2(n + 1))
 *    rounds, and rides on every SYN and ACK it sends (GOSSIP_MSG_RUMORS at
 *    most, freshest first).  So do DOWN rumors: a node whose own probe of a
 *    member failed says so, and every node that hears it probes that member
 *    itself (each node still judges liveness for itself).
 *  - Anti-entropy, summary first.  The SYN carries one hash over
 *    (name, generation, version) of every member; a partner whose hash
 *    differs answers with per-bucket hashes (members bucketed by a hash of
 *    their name, GOSSIP_MAX_BUCKETS at most), and only the buckets that
 *    differ are compared digest by digest, Scuttlebutt-style as in
 *    Cassandra.  Heartbeats are not in the summary (they change every
 *    round); each SYN and ACK carries the sender's own heartbeat and
 *    GOSSIP_MSG_HEARTBEATS others, round-robin over the members.
 *
 *    node A                                        node B
 *    gossip_tick() -> round.syn, round.targets
 *        ---- SYN: summary, heartbeats, rumors ------>
 *                                                  gossip_on_syn() -> ack
 *        <--- ACK: heartbeats, rumors; bucket hashes if the summaries
 *                  differ; requests for what the SYN showed B lacks --
 *    gossip_on_ack() -> ack2, syn2
 *        ---- ACK2: the requested entries (one-way) ->  gossip_on_ack2()
 *        ---- SYN2: digests of the differing buckets ->
 *                                                  gossip_on_syn() -> ack
 *        <--- ACK: entries B has newer or A lacks there, requests --------
 *    gossip_on_ack() -> ack2 (and no syn2)
 *        ---- ACK2 --------------------------------->   gossip_on_ack2()
 *
 * GOSSIP_MODE_DIGEST is the anti-entropy alone, as Cassandra gossips: every
 * SYN carries the digest of every member (heartbeats included), no
 * summary, rumors, relayed heartbeats, watched neighbour nor mail.  It is
 * kept to measure the default against; nodes of either mode understand
 * each other.
 *
 * Targets.  Each round a node gossips with one random live member, with
 * its successor among the live members in name order (so every member is
 * heard directly every round by the member before it and the member after
 * it: its watchers, which detect its failure first), sometimes with a down
 * member (so partitions heal) and sometimes with a seed (so groups that
 * know only each other meet the seeds), as Cassandra does.
 *
 * Liveness.  A newer heartbeat of a member, from the member itself or
 * relayed, is an arrival for its failure detector.  A node acts on phi
 * (gossip_phi()) only for the members it watches: the GOSSIP_WATCH live
 * members before it and after it in name order, which it hears directly
 * every round (all of them in a cluster of up to 2 * GOSSIP_WATCH + 1; all
 * members in GOSSIP_MODE_DIGEST).  The next gossip_tick() lists a member in
 * round.probes when its phi exceeds cfg.phi_threshold and it is watched,
 * when it is first seen or comes back with a new generation, when a DOWN
 * rumor about it arrives, or when nothing was heard of it for
 * max(GOSSIP_SILENCE_ROUNDS, n / 2) rounds (the safety net for a missed
 * rumor): the caller sends it a direct ping and calls gossip_on_probe_ack()
 * when it answers.  While the probe is outstanding it is listed again every
 * round (a lost ping is not a failed node).  A probe unanswered for
 * cfg.probe_timeout_ms marks the member down on a later tick; a probe
 * started by a watcher's phi then starts a DOWN rumor (no other does, so
 * one lost answer cannot start a storm).  A relayed heartbeat ends a phi
 * probe; a probe started by a DOWN rumor ends only by an answer or a
 * message from the member, and such an answer makes the rumor false here:
 * it is no longer sent, and copies of it still going round are ignored.  A
 * down member is alive again on direct contact (a probe answer, a message
 * it sent), a new generation or version, or a relayed heartbeat more than
 * GOSSIP_REVIVE_BEATS beyond the last one known when it was judged down
 * (a dead node's last heartbeats may still be travelling).
 *
 * Ownership.  A gossip_t is created by gossip_new() and released with
 * gossip_free(); it copies everything it is given (self, config, seeds) and
 * never keeps a caller's pointer.  Messages and views are plain structs of
 * fixed-size fields plus arrays, so they encode field by field.  Arrays a
 * caller passes in stay the caller's and are only read during the call.
 * Arrays the module hands out (in gossip_round_t, gossip_syn_t,
 * gossip_ack_t, gossip_ack2_t) are malloc()ed, owned by the caller, and
 * freed by gossip_round_free() / gossip_syn_free() / gossip_ack_free() /
 * gossip_ack2_free() (which call free(), so a decoder may fill these
 * structs with its own malloc()ed arrays and free them the same way).
 *
 * Untrusted input.  Every item of a message (entries, digests, heartbeats,
 * rumors, bucket hashes, the sender's digest) is validated before anything
 * is applied; one bad item (bad name or host, missing NUL, port 0, unknown
 * status or rumor kind, negative generation, a name twice in one list, more
 * items than the bounds below, a bucket count that is not a power of two up
 * to GOSSIP_MAX_BUCKETS, a membership beyond GOSSIP_MAX_MEMBERS) rejects
 * the whole message with -EINVAL and changes nothing.  Entries about this
 * node itself are never applied (only the owner changes its entry); rumors
 * about an unknown member or generation, older than what is known or about
 * this node are ignored.  SYNs and mail are budgeted per sender (a token
 * bucket of GOSSIP_FLOOD_BURST messages refilled at GOSSIP_FLOOD_RATE per
 * round, one shared bucket for senders that are not members): beyond it
 * they are refused with -EBUSY.  Everything refused or ignored is counted
 * (gossip_get_stats()).  No allocation is larger than its bound.
 *
 * Errors: 0 (or a count) on success, a negative errno value on failure:
 * -EINVAL for bad arguments or a malformed message, -EBUSY for a sender
 * over its budget, -ENOMEM.  A lookup that finds nothing is a result, not
 * an error.  A NULL gossip_t is a caller bug and is not checked outside
 * gossip_new()/gossip_free().
 */
#ifndef QKV_GOSSIP_H
#define QKV_GOSSIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct gossip gossip_t;

#define GOSSIP_NAME_MAX 63u      /* bytes in a member name, without NUL */
#define GOSSIP_HOST_MAX 47u      /* bytes in a host (IPv4 text), without NUL */
#define GOSSIP_MAX_MEMBERS 1024u /* members known, self included */
#define GOSSIP_MAX_SEEDS 64u
#define GOSSIP_MAX_TARGETS 4u    /* gossip targets per round */
#define GOSSIP_FD_WINDOW 1000u   /* inter-arrival samples per member */
#define GOSSIP_MAX_BUCKETS 64u   /* summary buckets (a power of two) */
#define GOSSIP_MSG_RUMORS 8u     /* rumors per SYN or ACK, at most */
#define GOSSIP_MSG_HEARTBEATS 8u /* relayed heartbeats per SYN or ACK */
#define GOSSIP_MAX_RUMORS 64u    /* hot rumors a node keeps */
#define GOSSIP_RUMOR_LAMBDA 1.5  /* rumor rounds = ceil(lambda * log2(n+1)) */
#define GOSSIP_MAIL_TRIES 4u     /* sends of one change to one peer */
#define GOSSIP_MAIL_WINDOW 10u   /* rounds after a change that new peers get it */
#define GOSSIP_REVIVE_BEATS 3u   /* see Liveness above */
#define GOSSIP_WATCH 2u          /* watched neighbours on each side */
#define GOSSIP_SILENCE_ROUNDS 100u /* rounds (at least n/2) before an
                                    * unwatched silent member is probed */
#define GOSSIP_FLOOD_BURST 8u    /* SYNs + mail a member may send at once */
#define GOSSIP_FLOOD_RATE 4u     /* ... and per round after that */

/* Member status as its owner declares it.  The values are the wire values. */
typedef enum gossip_status {
    GOSSIP_JOINING = 0,
    GOSSIP_UP = 1,      /* normal member of the ring */
    GOSSIP_LEAVING = 2, /* still in the ring, handing its ranges over */
    GOSSIP_LEFT = 3,    /* gone; a tombstone */
} gossip_status_t;

/* What this node sends.  Wire-compatible both ways (see above). */
typedef enum gossip_mode {
    GOSSIP_MODE_RUMOR = 0,  /* direct mail, rumors, summary-first anti-entropy */
    GOSSIP_MODE_DIGEST = 1, /* full digests every round only (for comparison) */
} gossip_mode_t;

/*
 * What gossip says about one member: the unit of ACK, ACK2 and mail payloads.
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
    uint64_t version;   /* state version: grows on every status change */
    uint64_t heartbeat; /* grows every round on the owner */
    uint32_t status;    /* gossip_status_t */
    /* Membership changes (server/transfer.c; the caller gives them meaning,
     * gossip/ only checks their bounds and spreads them with the entry):
     * ring_epoch: the ring epoch this entry's last status change made (a
     * node's ring epoch is the highest any entry names); xfer: 0, or 1 +
     * the percent done of the range transfers this member runs (<= 101);
     * flags: GOSSIP_F_* bits. */
    uint64_t ring_epoch;
    uint32_t xfer;
    uint32_t flags;
} gossip_member_t;

/* gossip_member_t.flags: LEFT because another node removed it (remove). */
#define GOSSIP_F_REMOVED 1u
#define GOSSIP_XFER_MAX 101u

/*
 * (name, generation, version, heartbeat): SYN digests, ACK requests, relayed
 * heartbeats and the sender of a message.  Digests are ordered by
 * (generation, version, heartbeat).  In a request, the numbers are what the
 * requester has ((0, 0, 0) when it has nothing): "send me your entry if it
 * is newer than this".
 */
typedef struct gossip_digest {
    char name[GOSSIP_NAME_MAX + 1];
    int64_t generation; /* >= 0 (> 0 for a sender, a heartbeat or a rumor) */
    uint64_t version;
    uint64_t heartbeat;
} gossip_digest_t;

/* A rumor: a membership change (ENTRY: the member's whole entry) or a
 * failed probe (DOWN: entry.name, .generation, .version and .heartbeat as
 * the prober knew them; the other fields are zero and not sent). */
typedef enum gossip_rumor_kind {
    GOSSIP_RUMOR_ENTRY = 0,
    GOSSIP_RUMOR_DOWN = 1,
} gossip_rumor_kind_t;

typedef struct gossip_rumor {
    uint32_t kind; /* gossip_rumor_kind_t */
    gossip_member_t entry;
} gossip_rumor_t;

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
 * left_ttl_ms 24 h, rng_seed derived from self's name and generation,
 * fd_window GOSSIP_FD_WINDOW, mode GOSSIP_MODE_RUMOR.  seeds: nseeds
 * (<= GOSSIP_MAX_SEEDS) peer addresses, read during gossip_new() only; a
 * seed is not a member until heard from, and a seed equal to self's
 * host:peer_port is ignored.
 */
typedef struct gossip_config {
    double phi_threshold;
    int64_t interval_ms;
    int64_t probe_timeout_ms;
    int64_t left_ttl_ms;
    uint64_t rng_seed;
    const gossip_addr_t *seeds;
    size_t nseeds;
    uint32_t fd_window; /* 1..65536 failure-detector samples per member */
    uint32_t mode;      /* gossip_mode_t */
} gossip_config_t;

/*
 * A SYN.  A round's SYN (summary SYN) has mask 0 and no digests; the SYN2
 * that gossip_on_ack() builds has the digests of every member of the
 * buckets in mask (bit b = bucket b of nbuckets); a GOSSIP_MODE_DIGEST SYN
 * has nbuckets 1, mask 1 and every digest.  Bounds for decoders: digests
 * <= GOSSIP_MAX_MEMBERS, heartbeats <= GOSSIP_MSG_HEARTBEATS, rumors <=
 * GOSSIP_MSG_RUMORS; nbuckets a power of two <= GOSSIP_MAX_BUCKETS.
 */
typedef struct gossip_syn {
    gossip_digest_t from;     /* the sender itself */
    uint64_t summary;         /* hash of every member's (name, gen, version) */
    uint32_t nbuckets;
    uint64_t mask;
    gossip_digest_t *digests;
    size_t ndigests;
    gossip_digest_t *heartbeats;
    size_t nheartbeats;
    gossip_rumor_t *rumors;
    size_t nrumors;
} gossip_syn_t;

/* The answer to a SYN.  Bounds for decoders: buckets 0 or a power of two
 * <= GOSSIP_MAX_BUCKETS; entries and requests <= GOSSIP_MAX_MEMBERS;
 * heartbeats and rumors as in a SYN. */
typedef struct gossip_ack {
    gossip_digest_t from;
    uint64_t *buckets;         /* per-bucket hashes when the summaries differ */
    size_t nbuckets;
    gossip_member_t *entries;  /* entries the SYN sender is behind on */
    size_t nentries;
    gossip_digest_t *requests; /* entries the ACK sender is behind on */
    size_t nrequests;
    gossip_digest_t *heartbeats;
    size_t nheartbeats;
    gossip_rumor_t *rumors;
    size_t nrumors;
} gossip_ack_t;

/* ACK2: the entries an ACK requested (<= GOSSIP_MAX_MEMBERS). */
typedef struct gossip_ack2 {
    gossip_member_t *entries;
    size_t nentries;
} gossip_ack2_t;

/* Everything gossip_tick() asks the caller to do.  Owned by the caller once
 * filled; release with gossip_round_free(). */
typedef struct gossip_round {
    gossip_syn_t syn;        /* send to each target (a request; answer: ACK) */
    gossip_target_t targets[GOSSIP_MAX_TARGETS];
    size_t ntargets;         /* 0 when nobody is known to gossip with */
    gossip_target_t *probes; /* malloc()ed or NULL: ping each directly */
    size_t nprobes;
    gossip_target_t *mail;   /* malloc()ed or NULL: send mail_entry to each */
    size_t nmail;
    gossip_member_t mail_entry; /* this node's entry, as of this round */
} gossip_round_t;

/* A read-only snapshot of one member, copied out (no pointers). */
typedef struct gossip_member_info {
    gossip_member_t entry; /* what gossip says */
    bool is_self;
    bool alive;       /* local judgement; self is alive, a LEFT member not */
    bool probing;     /* a probe is outstanding: suspected, not yet down */
    double phi;       /* as of the latest now_ms given to this gossip_t; 0 for
                       * self and LEFT members */
} gossip_member_info_t;

/* Counters since gossip_new(), for stats and tests. */
typedef struct gossip_stats {
    uint64_t msgs_rejected;  /* malformed messages refused whole (-EINVAL) */
    uint64_t msgs_throttled; /* SYNs and mail over their sender's budget */
    uint64_t rumors_applied; /* rumors that told this node something new */
    uint64_t rumors_ignored; /* old, unknown member or generation, about self */
    uint64_t rumors_evicted; /* hot rumors pushed out of a full table */
    uint64_t down_rumors;    /* DOWN rumors this node started */
    uint64_t mail_sent, mail_acked, mail_expired; /* expired: no answer */
    uint64_t summaries_equal, summaries_differ;   /* summary SYNs answered */
} gossip_stats_t;

/*
 * gossip_new - start the membership view with only `self` in it.
 *
 * self is validated like any entry (its version and heartbeat are usually
 * 0; its status JOINING or UP).  Starts the direct mail of self's entry
 * (to the seeds, and to the members learned in the next rounds).  Returns 0
 * and sets *out to a new gossip_t owned by the caller (free with
 * gossip_free()); -EINVAL for a NULL or invalid self, cfg or out, a negative
 * or non-finite setting, a bad seed, too many seeds, a bad fd_window or
 * mode; -ENOMEM.  *out is untouched on failure.
 */
int gossip_new(const gossip_member_t *self, const gossip_config_t *cfg,
               gossip_t **out);

/* gossip_free - release g and everything it owns.  NULL is a no-op. */
void gossip_free(gossip_t *g);

/*
 * gossip_tick - one gossip round at now_ms (call every cfg.interval_ms).
 *
 * Bumps self's heartbeat; marks down the members whose probe timed out;
 * lists in round->probes the members to ping (see Liveness); lists in
 * round->mail the peers due for direct mail; ages the rumors; expires LEFT
 * tombstones; chooses round->targets (see Targets) and builds round->syn.
 *
 * *round is overwritten (free a previous round first) and owned by the
 * caller: gossip_round_free().  Returns 0, or -ENOMEM (then *round is empty,
 * the heartbeat is still bumped and the timers run).
 */
int gossip_tick(gossip_t *g, int64_t now_ms, gossip_round_t *round);

/*
 * gossip_on_syn - answer a SYN (a round's, a SYN2, or a digest-mode one).
 *
 * Applies the sender's heartbeat, the relayed heartbeats and the rumors;
 * fills *ack (overwritten; caller frees with gossip_ack_free()): this
 * node's own heartbeat, heartbeats and rumors; for a summary SYN whose
 * summary differs from ours, our bucket hashes; for a SYN with digests, the
 * entries of the covered buckets this node has newer or the digests lack,
 * and requests where it is behind; requests for any member the sender's or
 * relayed digests show newer than ours.  Returns 0; -EINVAL (malformed,
 * nothing applied), -EBUSY (over the sender's budget, nothing applied),
 * -ENOMEM.  *ack is empty on failure.
 */
int gossip_on_syn(gossip_t *g, const gossip_syn_t *syn, int64_t now_ms,
                  gossip_ack_t *ack);

/*
 * gossip_on_ack - apply an ACK and build what follows it.
 *
 * Applies everything in the ACK, as above, plus its entries.  Fills *ack2
 * (overwritten; gossip_ack2_free()) with this node's entries newer than the
 * requests (nentries 0: nothing to send), and *syn2 (overwritten;
 * gossip_syn_free()) with the digests of the buckets whose hashes differ
 * when the ACK carried bucket hashes (syn2->nbuckets 0: nothing to send; else
 * send it to the same peer as a request and pass its answer here again).
 * syn2 may be NULL when the caller knows the ACK has no bucket hashes.
 * Returns 0; -EINVAL (malformed, nothing applied); -ENOMEM (nothing
 * applied).  *ack2 and *syn2 are empty on failure.
 */
int gossip_on_ack(gossip_t *g, const gossip_ack_t *ack, int64_t now_ms,
                  gossip_ack2_t *ack2, gossip_syn_t *syn2);

/* gossip_on_ack2 - apply the n entries of an ACK2, as gossip_on_ack() does.
 * Returns 0, -EINVAL (malformed, nothing applied) or -ENOMEM (nothing
 * applied). */
int gossip_on_ack2(gossip_t *g, const gossip_member_t *entries, size_t n,
                   int64_t now_ms);

/*
 * gossip_on_mail - apply a peer's own entry sent by direct mail.  The
 * sender is that member itself, so it also counts as direct contact.
 * Fills *me (may be NULL) with this node's digest, the answer to send
 * back.  Returns 1 when it changed the view, 0 when it was known or old;
 * -EINVAL (malformed), -EBUSY (over budget), -ENOMEM.
 */
int gossip_on_mail(gossip_t *g, const gossip_member_t *entry, int64_t now_ms,
                   gossip_digest_t *me);

/*
 * gossip_on_mail_ack - `to` (a target of round.mail: a member by name, or
 * an unnamed seed by address) answered the mail of this node's entry at
 * version `version` (round.mail_entry.version); `answer` (may be NULL) is
 * its digest from the answer, a direct contact.  An answer to an older
 * change is ignored.  Returns 1 when it ended a pending mail, 0 otherwise,
 * -EINVAL for a NULL or bad target.
 */
int gossip_on_mail_ack(gossip_t *g, const gossip_target_t *to,
                       uint64_t version, const gossip_digest_t *answer,
                       int64_t now_ms);

/*
 * gossip_on_probe_ack - member `name` answered a direct probe at now_ms.
 *
 * Direct contact: clears the suspicion and, if the member was down, makes
 * it alive again.  Returns 1 when applied, 0 when the name is unknown, self
 * or LEFT (ignored), -EINVAL for a NULL or bad name.
 */
int gossip_on_probe_ack(gossip_t *g, const char *name, int64_t now_ms);

/*
 * gossip_set_status - the owner changes its own status (e.g. UP, then
 * LEAVING, then LEFT).  Bumps self's version so the change wins everywhere,
 * makes it a hot rumor and mails it to every known peer; setting the
 * current status again changes nothing.  Returns 0, or -EINVAL for an
 * unknown status.
 */
int gossip_set_status(gossip_t *g, gossip_status_t status, int64_t now_ms);

/* gossip_set_state - gossip_set_status() that also sets self's ring_epoch
 * and xfer (see gossip_member_t); a call that changes none of the three
 * changes nothing.  0, or -EINVAL for an unknown status or xfer above
 * GOSSIP_XFER_MAX. */
int gossip_set_state(gossip_t *g, gossip_status_t status, uint64_t ring_epoch, uint32_t xfer,
                     int64_t now_ms);

/* gossip_remove - take member `name`, which is gone for good, out of the
 * membership on its behalf (an operator's remove): its entry becomes LEFT
 * with GOSSIP_F_REMOVED and ring_epoch, one version above the one known,
 * and spreads as a rumor.  Only a new generation of that member (it
 * restarted) supersedes it.  0; -ENOENT for an unknown or already LEFT
 * member; -EINVAL for self or a bad name. */
int gossip_remove(gossip_t *g, const char *name, uint64_t ring_epoch, int64_t now_ms);

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

/* gossip_get_stats - the counters, copied into *out. */
void gossip_get_stats(const gossip_t *g, gossip_stats_t *out);

/* gossip_rumor_rounds - rounds a rumor stays hot in a cluster of n members:
 * ceil(GOSSIP_RUMOR_LAMBDA * log2(n + 1)), at least 2. */
uint32_t gossip_rumor_rounds(size_t n);

/* Release what gossip_tick() / gossip_on_syn() / gossip_on_ack() handed
 * over and leave the struct empty; NULL and empty structs are fine. */
void gossip_round_free(gossip_round_t *round);
void gossip_syn_free(gossip_syn_t *syn);
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
