/*
 * gossip_internal.h - what the files of gossip/ share, and nobody else:
 * the state of a gossip_t (gossip.c: the view, merges, messages, rounds;
 * spread.c: the rumor table, relayed heartbeats, direct mail; phi.c: the
 * failure detector) and the functions one file offers the others, prefixed
 * gossip__.
 */
#ifndef QKV_GOSSIP_INTERNAL_H
#define QKV_GOSSIP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gossip.h"

/* Why a probe was started: only a watcher's own suspicion, once
 * confirmed by a silent probe, becomes a DOWN rumor. */
enum probe_why { WHY_PHI, WHY_CONFIRM, WHY_SUSPECT, WHY_SILENCE };

/* A send budget: a token bucket refilled at `rate` per interval. */
struct budget {
    double tokens;
    int64_t at;
};

struct gmember {
    gossip_member_t e;
    gossip_fd_t *fd;    /* NULL for self */
    uint64_t nh;        /* hash of the name: picks its summary bucket */
    uint64_t sh;        /* hash of (name, generation, version) */
    bool is_self;
    bool alive;
    bool confirm;       /* newly seen: probe it on the next tick */
    bool suspect;       /* a DOWN rumor about it: probe it on the next tick */
    bool probing;       /* a probe is outstanding since probe_sent */
    bool strict;        /* ... that only direct contact ends (see gossip.h) */
    bool want;          /* scratch: run_detector() wants a ping sent now */
    bool watched;       /* scratch: one of self's neighbours (see gossip.h) */
    uint8_t probe_why;  /* enum probe_why of the outstanding probe */
    bool mail_pending;  /* this node's current change is still to reach it */
    uint8_t mail_tries;
    int64_t mail_next;
    int64_t probe_sent;
    int64_t ping_at;    /* latest ping of the outstanding probe */
    uint64_t down_hb;   /* heartbeat known when judged down, or told since */
    int64_t left_at;    /* local time it was first seen LEFT */
    uint64_t stamp;     /* scratch for gossip_on_syn() */
    struct budget budget;
};

/* An expired LEFT tombstone: forgotten at forget_at; until then entries of
 * that name no newer than (generation, version) are ignored, so two nodes
 * expiring the same tombstone a little apart do not gossip it back. */
struct grave {
    char name[GOSSIP_NAME_MAX + 1];
    int64_t generation;
    uint64_t version;
    int64_t forget_at;
};

struct hot {
    gossip_rumor_t r;
    uint32_t left; /* rounds it still rides on this node's messages */
    bool refuted;  /* a DOWN rumor this node disproved: no longer sent, but
                    * remembered so that copies still going round do not
                    * make it probe again and again */
};

struct seedmail {
    bool pending;
    uint8_t tries;
    int64_t next;
};

struct gossip {
    double phi_threshold;
    int64_t interval;
    int64_t probe_timeout;
    int64_t left_ttl;
    uint32_t fd_window;
    uint32_t mode;
    gossip_addr_t seeds[GOSSIP_MAX_SEEDS];
    struct seedmail seedmail[GOSSIP_MAX_SEEDS];
    size_t nseeds;
    uint64_t rng;
    uint64_t epoch;
    uint64_t stamp;
    int64_t now;
    int64_t mail_until; /* members learned before this get self's change */
    size_t hb_cursor;   /* round-robin position of relayed heartbeats */
    struct budget unknown_budget, ack2_budget;
    gossip_stats_t stats;
    struct gmember *self;
    size_t n;
    struct gmember *members[GOSSIP_MAX_MEMBERS];
    size_t nrumors;
    struct hot rumors[GOSSIP_MAX_RUMORS];
    size_t ngraves;
    struct grave graves[GOSSIP_MAX_MEMBERS];
};

/* ---- gossip.c ---- */

void gossip__make_digest(gossip_digest_t *d, const gossip_member_t *e);

/* ---- spread.c: rumors, relayed heartbeats, direct mail ---- */

struct hot *gossip__rumor_find(gossip_t *g, uint32_t kind, const char *name);
void gossip__rumor_drop_name(gossip_t *g, uint32_t kind, const char *name);
/* The member answered: a DOWN rumor about it is false (see spread.c). */
void gossip__rumor_refute(gossip_t *g, const char *name);
/* Makes e news on this node for gossip_rumor_rounds(n) rounds (nothing in
 * GOSSIP_MODE_DIGEST). */
void gossip__rumor_heat(gossip_t *g, uint32_t kind, const gossip_member_t *e);
/* One round passed. */
void gossip__rumors_age(gossip_t *g);
/* The rumors and relayed heartbeats for one message, malloc()ed into *out
 * (NULL when none).  0 or -ENOMEM. */
int gossip__rumors_pick(gossip_t *g, gossip_rumor_t **out, size_t *n);
int gossip__heartbeats_pick(gossip_t *g, gossip_digest_t **out, size_t *n);
/* This node's entry changed: mail it to every known peer. */
void gossip__mail_start(gossip_t *g, int64_t now);
/* Is a pending mail due at now?  Expires it (counted) after its last try. */
bool gossip__mail_due(gossip_t *g, bool *pending, uint8_t *tries, int64_t next,
                      int64_t now);
/* The wait before the next send, after `tries` sends (>= 1). */
int64_t gossip__mail_backoff(const gossip_t *g, uint8_t tries);

/* ---- phi.c ---- */

/* gossip__fd_below_mean - true when the time since the last arrival is at
 * most the mean interval, where phi <= log10(2): lets a tick skip the
 * floating-point phi of every member that cannot be suspected (a node of a
 * large cluster runs a detector per member every round). */
bool gossip__fd_below_mean(const gossip_fd_t *fd, int64_t now_ms);

/* gossip__fd_touch - the member was heard from at now_ms, but with no new
 * heartbeat: the silence ends there, without a new interval sample. */
void gossip__fd_touch(gossip_fd_t *fd, int64_t now_ms);

#endif
