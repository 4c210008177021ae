/*
 * msg.h - every inter-node message, defined once: its type number, its
 * fields (a C struct), its encoder and its decoder, side by side in msg.c
 * and listed in one table.  The transport (peer.h) moves frames; this file
 * says what their bodies mean; dispatch.c routes a decoded request to its
 * handler through one table.
 *
 * Contract:
 *   - Pure: no I/O, no server state, no clock.  msg.c links into the frame
 *     fuzz target (tests/fuzz/fuzz_frame.c), which runs every decoder of
 *     the table on every input.
 *   - Decoders take untrusted bodies: every msgpack type, count and length
 *     is checked, and anything else is refused (-EINVAL) with nothing left
 *     to free.  Bounds: keys 1..MC_KEY_MAX bytes, node names up to
 *     GOSSIP_NAME_MAX, gossip lists up to GOSSIP_MAX_MEMBERS, anti-entropy
 *     lists up to the MSG_AAE_* limits below, tree indices inside the tree
 *     shape (storage/tictac.h).  Objects are fully decoded (obj_decode), so
 *     a handler never sees a malformed object.
 *   - Ownership: a decoded message BORROWS from the frame's msgpack zone
 *     (key, data and encoded-object pointers): it is valid until the frame
 *     is released.  What the decoder allocated (lists, decoded objects,
 *     vectors) is freed by msg_free().  For encoding, the caller fills the
 *     struct with pointers of its own (borrowed for the call; nothing is
 *     taken over) and must not msg_free() it unless a decoder filled it.
 *   - Errors: 0 or a negative errno: -EINVAL malformed (decode) or a struct
 *     that cannot be encoded, -ENOENT no such (type, direction), -ENOMEM.
 *
 * Directions: MSG_REQ is the body a request (or a one-way frame) carries,
 * MSG_REP the body of its answer.  A request that fails is answered with a
 * status body [code] (msg_status_t) instead, which every reply decoder of
 * the anti-entropy messages also accepts as a refusal (code != 0).
 */
#ifndef QKV_MSG_H
#define QKV_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../gossip/gossip.h"
#include "../storage/object.h"
#include "../storage/tictac.h"
#include "proto.h"

/* Message types carried in frames (frame.h's type byte). */
enum peer_msg {
    MSG_PING = 1,         /* direct probe; body: sender name */
    MSG_GOSSIP_SYN = 2,   /* summary (or digests), heartbeats, rumors */
    MSG_GOSSIP_ACK = 3,   /* the answer to a SYN: bucket hashes or entries + requests */
    MSG_GOSSIP_ACK2 = 4,  /* entries (one-way) */
    MSG_REPLICA_GET = 5,  /* read a key's local object (or hint) */
    MSG_REPLICA_PUT = 6,  /* merge an object into the local replica (or a hint) */
    MSG_COORD_WRITE = 7,  /* run a write on a coordinating replica */
    MSG_FLUSH = 8,        /* flush_all time */
    MSG_AAE_ROOT = 9,     /* anti-entropy: a range's root, and its branches if they differ */
    MSG_AAE_LEAVES = 10,  /* the leaves (segment hashes) of some branches */
    MSG_AAE_KEYS = 11,    /* the (key, hash) list of some segments */
    MSG_AAE_SYNC = 12,    /* push objects, merge, answer what still differs */
    MSG_AAE_GC_CHECK = 13, /* tombstone GC: do you hold exactly these records? */
    MSG_AAE_GC_PURGE = 14, /* tombstone GC: purge them if you still do */
    MSG_GOSSIP_MAIL = 15, /* a node's own entry, to every peer (direct mail) */
    MSG_XFER_PULL = 16,   /* range transfer: the next page of a range's objects */
    MSG_XFER_PUSH = 17,   /* range transfer: merge these objects of a range */
    MSG_JOIN_CHECK = 18,  /* may a node of this name and address join? */
};

/* Range transfer bounds and refusal codes (transfer.c). */
#define MSG_XFER_MAX 256          /* objects in one page */
#define MSG_REASON_MAX 200        /* bytes of a JOIN_CHECK refusal reason */
#define MSG_CODE_STALE_EPOCH 2    /* refused: the sender's ring epoch is older */

enum msg_dir { MSG_REQ = 0, MSG_REP = 1 };

/* Anti-entropy list bounds (per message). */
#define MSG_AAE_SYNC_MAX 256      /* objects in one SYNC */
#define MSG_AAE_GC_MAX 256        /* records in one GC check or purge */
#define MSG_AAE_KEYS_MAX 65536    /* (key, hash) pairs in one KEYS answer */
#define MSG_CTX_MAX (64 * 1024)   /* text of a COORD_WRITE causal context */
#define MSG_CTX_ENTRIES 1000      /* entries in that context */

/* Status answer [code]: REPLICA_PUT, FLUSH, and any refused request. */
typedef struct msg_status {
    int64_t code;
} msg_status_t;

/* PING, both directions: the sender's node name (a bare string). */
typedef struct msg_ping {
    char name[GOSSIP_NAME_MAX + 1];
} msg_ping_t;

/*
 * Gossip (gossip/gossip.h's structs, which say what the fields mean):
 *   digest  [name, generation, version, heartbeat]
 *   entry   [name, host, client_port, peer_port, generation, version,
 *            status, heartbeat, ring_epoch, xfer, flags]  (the last three
 *            may be left out: zero)
 *   rumor   [0, entry] (a membership change)  or  [1, digest] (DOWN)
 *   SYN     [from digest, summary u64, nbuckets u32, mask u64, [digest...],
 *            [heartbeat digest...], [rumor...]]            gossip_syn_t
 *   ACK     [from digest, [bucket hash u64...], [entry...],
 *            [request digest...], [heartbeat digest...], [rumor...]]
 *                                                          gossip_ack_t
 *   ACK2    [entry...]                                     gossip_ack2_t
 *   MAIL    entry, answered by the receiver's digest       gossip_member_t,
 *                                                          gossip_digest_t
 * Lists are bounded by gossip.h: digests, entries and requests by
 * GOSSIP_MAX_MEMBERS, bucket hashes by GOSSIP_MAX_BUCKETS, heartbeats by
 * GOSSIP_MSG_HEARTBEATS, rumors by GOSSIP_MSG_RUMORS.  What the values
 * mean (names, hosts, statuses, bucket counts) gossip/ checks.
 */

/* REPLICA_GET request: [key bin, hint_for str ("" = the replica itself)]. */
typedef struct msg_replica_get {
    const uint8_t *key;
    size_t klen;
    char hint[GOSSIP_NAME_MAX + 1];
} msg_replica_get_t;

/* REPLICA_GET answer: [code, object bin | nil]: code 0 found (object), 1
 * missing (nil), negative an error (nil). */
typedef struct msg_replica_got {
    int64_t code;
    bool has_obj;
    obj_t obj;
} msg_replica_got_t;

/* REPLICA_PUT request: [key bin, hint_for str, object bin].  Encoding packs
 * enc/enclen as they are when enc is set (an object already encoded, as a
 * stored hint is), else obj_encode(obj).  Decoding fills obj and points
 * enc at the received bytes. */
typedef struct msg_replica_put {
    const uint8_t *key;
    size_t klen;
    char hint[GOSSIP_NAME_MAX + 1];
    const obj_t *obj_in;   /* encoding, when enc is NULL */
    const uint8_t *enc;
    size_t enclen;
    obj_t obj;             /* decoded */
} msg_replica_put_t;

/* COORD_WRITE request: [key, cmd u32, flags u32, expiry i64, data bin, cas
 * u64, delta u64, r, w, (ctx str | nil)]: 9 fields, or 10 with the
 * client's explicit causal context (vc_format text).  cmd is a write
 * command; r and w are 1..16.  The data length is checked against
 * node.max_value_bytes by the handler (a limit of the receiving node). */
typedef struct msg_coord_write {
    const uint8_t *key;
    size_t klen;
    uint32_t cmd; /* enum mc_cmd */
    uint32_t flags;
    int64_t expiry;
    const uint8_t *data;
    size_t dlen;
    uint64_t cas, delta;
    int64_t r, w;
    bool has_ctx;
    vclock_t ctx;
} msg_coord_write_t;

/* COORD_WRITE answer: [status, got, needed, result, number, object | nil]. */
typedef struct msg_coord_done {
    int64_t status, got, needed;
    uint64_t result; /* enum kv_result */
    uint64_t number;
    bool has_obj;
    const obj_t *obj_in; /* encoding */
    obj_t obj;           /* decoded */
} msg_coord_done_t;

/* FLUSH request: [when i64]. */
typedef struct msg_flush {
    int64_t when;
} msg_flush_t;

/* One anti-entropy list item.  Which fields a message uses is said per
 * message below. */
typedef struct msg_aae_item {
    const uint8_t *key;   /* 1..MC_KEY_MAX bytes */
    size_t klen;
    uint64_t hash;        /* KEYS, GC: the record's tree hash */
    const uint8_t *enc;   /* SYNC: the object as stored, NULL for nil */
    size_t enclen;
    obj_t obj;            /* SYNC, decoded: the object when enc is set */
} msg_aae_item_t;

/*
 * Every anti-entropy message: the head [ring, start, end] names the range
 * (start, end] of the ring whose identity is `ring` (aae_ring_id(): the
 * members, vnodes and n, so two nodes agree on it exactly when they have
 * the same ring).  Requests, after the head:
 *   ROOT      [.., root u64]                the sender's root
 *   LEAVES    [.., [branch u32...]]         1..32 branch indices, ascending
 *   KEYS      [.., [segment u32...]]        1..1024 segment indices, ascending
 *   SYNC      [.., [[key, object|nil]...]]  1..MSG_AAE_SYNC_MAX
 *   GC_CHECK  [.., [[key, hash]...]]        1..MSG_AAE_GC_MAX
 *   GC_PURGE  [.., [[key, hash]...]]        1..MSG_AAE_GC_MAX
 * Answers (or a refusal [code], code != 0):
 *   ROOT      [0, root, [32 branch hashes] | nil]  nil when the roots are equal
 *   LEAVES    [0, [hash...]]                32 leaf hashes per branch asked, in order
 *   KEYS      [0, done u32, [[key, hash]...]]  the keys of the first `done`
 *             segments asked, in store order (token, then key bytes); the
 *             rest did not fit in one answer and are asked again
 *   SYNC      [0, [[key, object|nil]...]]   per key sent, in order: the
 *             receiver's object after merging, or nil when it equals what
 *             was sent (or neither side has one)
 *   GC_CHECK  [0, [bool...]]                per record: held exactly, and dead
 *   GC_PURGE  [0, purged u32]
 *
 * Range transfers (transfer.c) use the same head, with `ring` the
 * sender's ring epoch (a request of an older epoch than the receiver's is
 * refused with MSG_CODE_STALE_EPOCH):
 *   XFER_PULL [.., cursor_token u64, cursor_key bin | nil, page_bytes u32]
 *             answer [0, done bool, estimate u64, [[key, object]...]]: the
 *             objects of the range after the cursor in store order, about
 *             page_bytes of them (at least one, at most MSG_XFER_MAX);
 *             done when the range ends with them
 *   XFER_PUSH [.., [[key, object]...]]  1..MSG_XFER_MAX, answer [0] once
 *             every object is merged (node_merge) and persisted
 */
typedef struct msg_aae {
    uint64_t ring, start, end;
    int64_t code;            /* answers */
    uint64_t root;           /* ROOT */
    uint32_t *idx;           /* LEAVES/KEYS requests: branch or segment indices */
    uint32_t nidx;
    uint64_t *hashes;        /* ROOT answer: 32 or 0 (nil); LEAVES answer: 32 per branch */
    uint32_t nhashes;
    msg_aae_item_t *items;   /* KEYS answer, SYNC, GC requests */
    uint32_t nitems;
    bool *agree;             /* GC_CHECK answer, one per record */
    uint32_t nagree;
    uint32_t count;          /* KEYS answer: done; GC_PURGE answer: purged;
                                XFER_PULL request: page bytes; answer: done */
    /* XFER_PULL request: the cursor (the last record sent, absent at the
     * start); answer: the estimated keys of the range (0: unknown) */
    bool has_cursor;
    uint64_t ctoken;
    const uint8_t *ckey;
    size_t cklen;
    uint64_t estimate;
} msg_aae_t;

/* JOIN_CHECK: the request is the starting node's entry, its flags holding
 * MSG_JOIN_FRESH when its data directory is new.  The answer is [code,
 * reason, epoch]: the answering node's membership epoch and one of: */
#define MSG_JOIN_FRESH 0x100u
enum msg_join_code {
    MSG_JOIN_OK = 0,      /* go ahead as you are */
    MSG_JOIN_REFUSED = 1, /* the name is taken by a live node: exit */
    MSG_JOIN_MUST = 2,    /* a fresh directory in a cluster that has data or knew
                             this name: join (pull your ranges), do not found */
    MSG_JOIN_GONE = 3,    /* this name left or was removed; its old data may not
                             come back: exit, and refuse to start again */
};
typedef struct msg_join_ok {
    int64_t code;
    char reason[MSG_REASON_MAX + 1];
    uint64_t epoch;
} msg_join_ok_t;

/* Any decoded body. */
typedef union msg_any {
    msg_status_t status;
    msg_ping_t ping;
    gossip_syn_t syn;
    gossip_ack_t ack;
    gossip_ack2_t ack2;
    gossip_member_t mail;     /* MAIL request */
    gossip_digest_t mail_ack; /* MAIL answer */
    msg_replica_get_t rget;
    msg_replica_got_t rgot;
    msg_replica_put_t rput;
    msg_coord_write_t cw;
    msg_coord_done_t cdone;
    msg_flush_t flush;
    msg_aae_t aae;
    gossip_member_t join;     /* JOIN_CHECK request: the joining node's entry */
    msg_join_ok_t join_ok;    /* JOIN_CHECK answer */
} msg_any_t;

/* One row of the table. */
typedef struct msg_def {
    uint8_t type;
    uint8_t dir; /* enum msg_dir */
    const char *name;
    int (*encode)(msgpack_packer *pk, const void *m);
    bool (*decode)(const msgpack_object *body, msg_any_t *out);
    void (*free)(msg_any_t *m);
} msg_def_t;

/* The table: count, and row i (NULL past the end). */
size_t msg_def_count(void);
const msg_def_t *msg_def_at(size_t i);
/* The row of (type, dir), or NULL. */
const msg_def_t *msg_def(uint8_t type, enum msg_dir dir);

/* Encode *m (the struct of (type, dir)) into sb, which is cleared first. */
int msg_encode(msgpack_sbuffer *sb, uint8_t type, enum msg_dir dir, const void *m);
/* Decode body as (type, dir) into *out (zeroed first).  On failure nothing
 * needs freeing. */
int msg_decode(uint8_t type, enum msg_dir dir, const msgpack_object *body, msg_any_t *out);
/* Release what msg_decode() allocated in *m; safe on a zeroed union. */
void msg_free(uint8_t type, enum msg_dir dir, msg_any_t *m);

/* The REPLICA_PUT request body of an object already encoded (enclen bytes)
 * is the bytes this packs into sb (cleared first) followed by the encoding
 * itself: what msg_encode() makes of {key, hint, enc}, for a sender that
 * hands the encoding to the transport as a second piece instead of copying
 * it into sb.  0 or -ENOMEM. */
int msg_rput_head(msgpack_sbuffer *sb, const void *key, size_t klen, const char *hint,
                  size_t enclen);

/* The REPLICA_GET answer "found" of an object already encoded (enclen
 * bytes) is what this packs into sb (cleared first) followed by the
 * encoding: what msg_encode() makes of {code 0, the object}.  0 or
 * -ENOMEM. */
int msg_rgot_head(msgpack_sbuffer *sb, size_t enclen);

/* A status body [code] into buf, without allocating: its length (never 0:
 * one array header and at most a 9-byte integer). */
#define MSG_STATUS_MAX 16
size_t msg_status_body(uint8_t buf[MSG_STATUS_MAX], int64_t code);

/* A status body [code], for any answer. */
int msg_encode_status(msgpack_sbuffer *sb, int64_t code);
bool msg_decode_status(const msgpack_object *body, int64_t *code);

#endif
