/*
 * kv.h - memcached command semantics on a stored object.
 *
 * Pure decision logic, shared by the local path and (later) the cluster
 * coordinator: given the command and the current object (already merged
 * from the replicas that answered and purged of dead siblings), decide the
 * reply and whether a new sibling must be written.  The caller then writes
 * it with the object's vector as causal context (obj_update), so the write
 * supersedes exactly what was read.
 */
#ifndef QKV_KV_H
#define QKV_KV_H

#include <stdbool.h>
#include <stdint.h>

#include "../storage/object.h"
#include "../common/textproto.h" /* enum kv_result and its reply lines, shared with the client */
#include "proto.h"


typedef struct kv_op {
    enum mc_cmd cmd;
    uint32_t flags;
    int64_t expiry;      /* absolute, from kv_expiry() */
    const uint8_t *data; /* storage commands */
    size_t len;
    uint64_t cas;
    uint64_t delta;
    /* An explicit causal context (the `ctx=` option, a client library's
     * write-back after reading siblings): when not NULL the write
     * supersedes exactly the siblings this vector covers, instead of
     * everything the coordinator has seen.  Borrowed; coord_write copies
     * it. */
    const vclock_t *ctx;
} kv_op_t;

/* memcached's exptime rule: 0 never; negative already expired; up to 30
 * days relative to now_s; beyond that an absolute unix time. */
int64_t kv_expiry(int64_t exptime, int64_t now_s);

/* The memcached cas unique of key at version vector vc: stable while the
 * key's context is unchanged, the same on every node, distinct between
 * keys (the key is mixed in), never 0. */
uint64_t kv_cas_token(const void *key, size_t klen, const vclock_t *vc);

/* Decide the command on cur (key's object).  When *write is set, *out is a new sibling
 * (value malloc'ed, owned by the caller until obj_update takes it) to write
 * with context cur->vc; ts_us is stamped with now_us.  *number carries the
 * incr/decr result. */
enum kv_result kv_decide(const kv_op_t *op, const void *key, size_t klen, const obj_t *cur,
                         int64_t now_us, sibling_t *out, bool *write, uint64_t *number);


#endif
