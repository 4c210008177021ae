/*
 * frame.c - inter-node frame codec (see frame.h).  Parsing unpacks the
 * payload with msgpack_unpack() into a fresh zone and then checks the
 * envelope field by field; the payload must be exactly one msgpack object.
 */
#include "frame.h"

#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <string.h>
#include <sys/uio.h>

void frame_release(frame_t *f)
{
    if (f->zone && f->zone_lent)
        msgpack_zone_clear(f->zone);
    else if (f->zone)
        msgpack_zone_free(f->zone);
    f->zone = NULL;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

bool mp_validate(const uint8_t *buf, size_t len)
{
    size_t off = 0;
    uint64_t pending = 1; /* objects still to read */
    while (pending > 0) {
        if (off >= len)
            return false;
        uint8_t b = buf[off++];
        uint64_t skip = 0, children = 0;
        int lenbytes = 0;
        pending--;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b >= 0x80 && b <= 0x8f) {
            children = 2u * (b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            children = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break;
            case 0xc5: case 0xda: lenbytes = 2; break;
            case 0xc6: case 0xdb: lenbytes = 4; break;
            case 0xc7: lenbytes = 1; skip = 1; break; /* ext: + type byte */
            case 0xc8: lenbytes = 2; skip = 1; break;
            case 0xc9: lenbytes = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xdd: case 0xde: case 0xdf: {
                int nb = (b == 0xdc || b == 0xde) ? 2 : 4;
                if (len - off < (size_t)nb)
                    return false;
                children = be(buf + off, nb) * ((b >= 0xde) ? 2 : 1);
                off += (size_t)nb;
                break;
            }
            default:
                return false; /* 0xc1: never used */
            }
        }
        if (lenbytes) {
            if (len - off < (size_t)lenbytes)
                return false;
            skip += be(buf + off, lenbytes);
            off += (size_t)lenbytes;
        }
        if (skip > len - off)
            return false;
        off += (size_t)skip;
        /* every pending object needs at least one byte */
        if (children > len - off || pending + children > len - off)
            return false;
        pending += children;
    }
    return off == len;
}

int frame_key(const char *secret, uint8_t key[FRAME_KEY_LEN])
{
    if (sodium_init() < 0)
        return -EINVAL;
    crypto_hash_sha256(key, (const unsigned char *)secret, strlen(secret));
    return 0;
}

int frame_parse(const uint8_t *buf, size_t len, size_t max, const uint8_t *key, frame_t *f,
                size_t *consumed)
{
    return frame_parse_in(buf, len, max, key, f, consumed, NULL);
}

int frame_parse_in(const uint8_t *buf, size_t len, size_t max, const uint8_t *key, frame_t *f,
                   size_t *consumed, msgpack_zone *lent)
{
    memset(f, 0, sizeof(*f));
    if (len < FRAME_HDR)
        return 0;
    uint32_t flen = ((uint32_t)buf[0] << 24) | ((uint32_t)buf[1] << 16) |
                    ((uint32_t)buf[2] << 8) | (uint32_t)buf[3];
    if (flen > max + (key ? FRAME_MAC_LEN : 0))
        return -EMSGSIZE;
    if (flen == 0)
        return -EPROTO;
    if (len - FRAME_HDR < flen)
        return 0;
    uint32_t plen = flen;
    if (key) {
        if (flen <= FRAME_MAC_LEN)
            return -EACCES;
        plen = flen - FRAME_MAC_LEN;
        if (crypto_auth_hmacsha256_verify(buf + FRAME_HDR + plen, buf, FRAME_HDR + plen, key) != 0)
            return -EACCES;
    }
    if (!mp_validate(buf + FRAME_HDR, plen))
        return -EPROTO;
    msgpack_zone *zone = lent ? lent : msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (!zone)
        return -ENOMEM;
    msgpack_object root;
    size_t off = 0;
    msgpack_unpack_return ur =
        msgpack_unpack((const char *)buf + FRAME_HDR, plen, &off, zone, &root);
    const msgpack_object *it;
    uint32_t n;
    uint64_t v[5];
    if (ur != MSGPACK_UNPACK_SUCCESS || off != plen || !mp_array(&root, 6, 6, &it, &n))
        goto bad;
    for (int i = 0; i < 5; i++)
        if (!mp_u64(&it[i], &v[i]))
            goto bad;
    if (v[0] != FRAME_VERSION || v[1] < 1 || v[1] > 255 || v[2] > FRAME_ONEWAY ||
        v[4] > UINT32_MAX)
        goto bad;
    f->type = (uint8_t)v[1];
    f->kind = (uint8_t)v[2];
    f->req_id = v[3];
    f->ttl_ms = (uint32_t)v[4];
    f->body = it[5];
    f->zone = zone;
    f->zone_lent = lent != NULL;
    f->wire_len = FRAME_HDR + flen;
    *consumed = FRAME_HDR + flen;
    return 1;
bad:
    if (lent)
        msgpack_zone_clear(zone);
    else
        msgpack_zone_free(zone);
    return -EPROTO;
}

int frame_build(msgpack_sbuffer *sb, uint8_t type, uint8_t kind, uint64_t req_id,
                uint32_t ttl_ms, const void *body, size_t blen, const uint8_t *key)
{
    msgpack_packer pk;
    sb->size = 0;
    static const char zero[FRAME_HDR] = {0};
    if (msgpack_sbuffer_write(sb, zero, FRAME_HDR))
        return -ENOMEM;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, 6) || msgpack_pack_uint8(&pk, FRAME_VERSION) ||
        msgpack_pack_uint8(&pk, type) || msgpack_pack_uint8(&pk, kind) ||
        msgpack_pack_uint64(&pk, req_id) || msgpack_pack_uint32(&pk, ttl_ms))
        return -ENOMEM;
    if (blen ? msgpack_sbuffer_write(sb, body, blen) : msgpack_pack_nil(&pk))
        return -ENOMEM;
    size_t flen = sb->size - FRAME_HDR + (key ? FRAME_MAC_LEN : 0);
    if (flen > UINT32_MAX)
        return -EMSGSIZE;
    sb->data[0] = (char)(flen >> 24);
    sb->data[1] = (char)(flen >> 16);
    sb->data[2] = (char)(flen >> 8);
    sb->data[3] = (char)flen;
    if (key) {
        uint8_t mac[FRAME_MAC_LEN];
        crypto_auth_hmacsha256(mac, (const unsigned char *)sb->data, sb->size, key);
        if (msgpack_sbuffer_write(sb, (const char *)mac, sizeof(mac)))
            return -ENOMEM;
    }
    return 0;
}

/* msgpack_packer output into a fixed buffer (the frame head). */
typedef struct fixed_buf {
    uint8_t *p;
    size_t len, cap;
} fixed_buf_t;

static int fixed_write(void *data, const char *buf, size_t len)
{
    fixed_buf_t *f = data;
    if (f->cap - f->len < len)
        return -1;
    memcpy(f->p + f->len, buf, len);
    f->len += len;
    return 0;
}

int frame_build_iov(uint8_t head[FRAME_HEAD_MAX], size_t *hlen, uint8_t type, uint8_t kind,
                    uint64_t req_id, uint32_t ttl_ms, const struct iovec *body, int n,
                    const uint8_t *key, uint8_t mac[FRAME_MAC_LEN])
{
    fixed_buf_t fb = {head, FRAME_HDR, FRAME_HEAD_MAX};
    msgpack_packer pk;
    size_t blen = 0;
    for (int i = 0; i < n; i++)
        blen += body[i].iov_len;
    memset(head, 0, FRAME_HDR);
    msgpack_packer_init(&pk, &fb, fixed_write);
    if (msgpack_pack_array(&pk, 6) || msgpack_pack_uint8(&pk, FRAME_VERSION) ||
        msgpack_pack_uint8(&pk, type) || msgpack_pack_uint8(&pk, kind) ||
        msgpack_pack_uint64(&pk, req_id) || msgpack_pack_uint32(&pk, ttl_ms) ||
        (blen == 0 && msgpack_pack_nil(&pk)))
        return -EMSGSIZE; /* cannot happen: the head is at most 26 bytes */
    uint64_t flen = (uint64_t)fb.len - FRAME_HDR + blen + (key ? FRAME_MAC_LEN : 0);
    if (flen > UINT32_MAX)
        return -EMSGSIZE;
    head[0] = (uint8_t)(flen >> 24);
    head[1] = (uint8_t)(flen >> 16);
    head[2] = (uint8_t)(flen >> 8);
    head[3] = (uint8_t)flen;
    *hlen = fb.len;
    if (key) {
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, key, FRAME_KEY_LEN);
        crypto_auth_hmacsha256_update(&st, head, fb.len);
        for (int i = 0; i < n; i++)
            crypto_auth_hmacsha256_update(&st, body[i].iov_base, body[i].iov_len);
        crypto_auth_hmacsha256_final(&st, mac);
    }
    return 0;
}

bool mp_u64(const msgpack_object *o, uint64_t *out)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *out = o->via.u64;
    return true;
}

bool mp_i64(const msgpack_object *o, int64_t *out)
{
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = o->via.i64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *out = (int64_t)o->via.u64;
        return true;
    }
    return false;
}

bool mp_u32(const msgpack_object *o, uint32_t *out)
{
    uint64_t v;
    if (!mp_u64(o, &v) || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

bool mp_bool(const msgpack_object *o, bool *out)
{
    if (o->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *out = o->via.boolean;
    return true;
}

bool mp_f64(const msgpack_object *o, double *out)
{
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
        *out = o->via.f64;
    else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *out = (double)o->via.u64;
    else
        return false;
    return isfinite(*out);
}

bool mp_bin(const msgpack_object *o, const uint8_t **p, size_t *len, size_t max)
{
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = (const uint8_t *)o->via.bin.ptr;
        *len = o->via.bin.size;
    } else if (o->type == MSGPACK_OBJECT_STR) {
        *p = (const uint8_t *)o->via.str.ptr;
        *len = o->via.str.size;
    } else {
        return false;
    }
    return *len <= max;
}

bool mp_str(const msgpack_object *o, char *buf, size_t cap)
{
    const uint8_t *p;
    size_t len;
    if (cap == 0 || !mp_bin(o, &p, &len, cap - 1) || (len && memchr(p, '\0', len)))
        return false;
    if (len) /* an empty string may come with no bytes at all (p NULL) */
        memcpy(buf, p, len);
    buf[len] = '\0';
    return true;
}

bool mp_array(const msgpack_object *o, uint32_t n_min, uint32_t n_max,
              const msgpack_object **items, uint32_t *n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < n_min ||
        o->via.array.size > n_max)
        return false;
    *items = o->via.array.ptr;
    *n = o->via.array.size;
    return true;
}

bool frame_status_ok(const frame_t *f)
{
    const msgpack_object *it;
    uint32_t n;
    int64_t code;
    return f && mp_array(&f->body, 1, 1, &it, &n) && mp_i64(&it[0], &code) && code == 0;
}
