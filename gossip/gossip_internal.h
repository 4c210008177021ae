/*
 * gossip_internal.h - declarations shared by the files of gossip/ only.
 */
#ifndef QKV_GOSSIP_INTERNAL_H
#define QKV_GOSSIP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "gossip.h"

/* gossip__fd_below_mean - true when the time since the last arrival is at
 * most the mean interval, where phi <= log10(2): lets a tick skip the
 * floating-point phi of every member that cannot be suspected (a node of a
 * large cluster runs a detector per member every round). */
bool gossip__fd_below_mean(const gossip_fd_t *fd, int64_t now_ms);

/* gossip__fd_touch - the member was heard from at now_ms, but with no new
 * heartbeat: the silence ends there, without a new interval sample. */
void gossip__fd_touch(gossip_fd_t *fd, int64_t now_ms);

#endif
