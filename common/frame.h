/*
 * frame.h - inter-node frames: a 4-byte big-endian payload length, then a
 * msgpack array  [version, type, kind, req_id, ttl_ms, body].
 *
 *   version  FRAME_VERSION; a frame of another version is rejected
 *   type     message type (server/peer.h names them), 1..255
 *   kind     FRAME_REQUEST, FRAME_RESPONSE or FRAME_ONEWAY
 *   req_id   matches a response to its request (0 for one-way frames)
 *   ttl_ms   how long the sender will still wait; the receiver may drop
 *            work whose answer would come too late
 *   body     any msgpack object; each message type's decoder checks it
 *
 * Authenticated frames (node.cluster_secret set): the 4-byte length also
 * counts a 32-byte HMAC-SHA256 trailer over the length and the payload,
 * keyed with SHA-256 of the secret (frame_key).  A node with a secret
 * accepts only frames that carry a valid trailer; one without accepts only
 * frames without.  This keeps anyone who does not know the secret from
 * joining or forging gossip; it does not hide the traffic, nor stop the
 * replay of a captured frame.
 *
 * frame_parse() is pure and total: it never reads past len, bounds the
 * payload, and returns a negative code on anything malformed; the caller
 * closes that connection.  A parsed frame owns a msgpack zone; release it
 * with frame_release().  The mp_* helpers read typed fields out of a body
 * and fail (return false) on any type or range mismatch.
 */
#ifndef QKV_FRAME_H
#define QKV_FRAME_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_VERSION 1
#define FRAME_HDR 4
#define FRAME_MAX_DEFAULT (16u * 1024 * 1024)
#define FRAME_MAC_LEN 32
#define FRAME_KEY_LEN 32

enum frame_kind { FRAME_REQUEST = 0, FRAME_RESPONSE = 1, FRAME_ONEWAY = 2 };

typedef struct frame {
    uint8_t type;
    uint8_t kind;
    uint64_t req_id;
    uint32_t ttl_ms;
    msgpack_object body; /* valid until frame_release */
    msgpack_zone *zone;
    bool zone_lent;      /* zone is the caller's (frame_parse_in): cleared, not freed */
    size_t wire_len;     /* bytes the frame took on the wire (traffic accounting) */
} frame_t;

/* The frame key of a cluster secret (SHA-256 of it).  0, or -EINVAL when
 * the crypto library cannot start. */
int frame_key(const char *secret, uint8_t key[FRAME_KEY_LEN]);

/* Try to parse one frame at buf[0..len), authenticated with key (NULL: no
 * authentication).  Returns 1 with *f filled and *consumed set, 0 when more
 * bytes are needed (nothing allocated), or -EMSGSIZE (payload over max),
 * -EPROTO (not a valid frame), -EACCES (missing or wrong trailer). */
int frame_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t *key, frame_t *f,
                size_t *consumed);
/* frame_parse() that unpacks into the caller's zone (msgpack_zone_new'ed,
 * empty) instead of a fresh one: frame_release() clears it for the next
 * frame, so a stream of frames allocates nothing for their envelopes.  One
 * frame at a time per zone. */
int frame_parse_in(const uint8_t *buf, size_t len, size_t max, const uint8_t *key, frame_t *f,
                   size_t *consumed, msgpack_zone *zone);
void frame_release(frame_t *f);

/* Build a frame around an already packed body (body, blen: one msgpack
 * object), with an authentication trailer when key is not NULL.  Writes the
 * whole frame into sb (which it clears first). */
int frame_build(msgpack_sbuffer *sb, uint8_t type, uint8_t kind, uint64_t req_id,
                uint32_t ttl_ms, const void *body, size_t blen, const uint8_t *key);

/* The same frame as frame_build() of the concatenation of body[0..n)
 * (together one msgpack object), without copying the body: the frame is
 * head[0..*hlen) (at most FRAME_HEAD_MAX bytes), then the body pieces as
 * they are, then, when key is not NULL, mac[0..FRAME_MAC_LEN), the
 * trailer computed over the head and the pieces.  0, or -EMSGSIZE. */
#define FRAME_HEAD_MAX 32
struct iovec;
int frame_build_iov(uint8_t head[FRAME_HEAD_MAX], size_t *hlen, uint8_t type, uint8_t kind,
                    uint64_t req_id, uint32_t ttl_ms, const struct iovec *body, int n,
                    const uint8_t *key, uint8_t mac[FRAME_MAC_LEN]);

/* Check that buf[0..len) is exactly one well-formed msgpack object whose
 * every array/map/str/bin length fits in the bytes that remain.  Call it
 * before msgpack_unpack() on untrusted bytes: msgpack-c allocates a
 * container's element array from its declared count before it has seen the
 * elements, so a 5-byte "array of 2^32 elements" would otherwise ask for
 * tens of gigabytes. */
bool mp_validate(const uint8_t *buf, size_t len);

/* A status reply's body is [code]; true when it is exactly [0]. */
bool frame_status_ok(const frame_t *f);

/* Typed readers for message bodies. */
bool mp_u64(const msgpack_object *o, uint64_t *out);
bool mp_i64(const msgpack_object *o, int64_t *out);
bool mp_u32(const msgpack_object *o, uint32_t *out);
bool mp_bool(const msgpack_object *o, bool *out);
bool mp_f64(const msgpack_object *o, double *out);
/* A str or bin of at most cap-1 bytes, copied NUL-terminated into buf. */
bool mp_str(const msgpack_object *o, char *buf, size_t cap);
/* A bin (or str): pointer into the zone and length, at most max bytes. */
bool mp_bin(const msgpack_object *o, const uint8_t **p, size_t *len, size_t max);
/* An array of exactly n (n_min..n_max) elements. */
bool mp_array(const msgpack_object *o, uint32_t n_min, uint32_t n_max,
              const msgpack_object **items, uint32_t *n);

#endif
