/* test_frame.c - the inter-node frame codec (common/frame.h): round trips,
 * partial input, oversized and malformed frames, and the msgpack
 * pre-validator that keeps hostile length fields from allocating. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "../../common/frame.h"

static void pack_body(msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str(&pk, 5);
    msgpack_pack_str_body(&pk, "node1", 5);
    msgpack_pack_int64(&pk, -7);
    msgpack_pack_bin(&pk, 3);
    msgpack_pack_bin_body(&pk, "\0\r\n", 3);
}

static void test_round_trip(void **state)
{
    (void)state;
    msgpack_sbuffer body, out;
    pack_body(&body);
    msgpack_sbuffer_init(&out);
    assert_int_equal(frame_build(&out, 2, FRAME_REQUEST, 0xfeedfacecafeULL, 1500, body.data,
                                 body.size, NULL), 0);
    frame_t f;
    size_t used = 0;
    assert_int_equal(frame_parse((uint8_t *)out.data, out.size, 1 << 20, NULL, &f, &used), 1);
    assert_int_equal(used, out.size);
    assert_int_equal(f.type, 2);
    assert_int_equal(f.kind, FRAME_REQUEST);
    assert_true(f.req_id == 0xfeedfacecafeULL);
    assert_int_equal(f.ttl_ms, 1500);
    const msgpack_object *it;
    uint32_t n;
    char name[16];
    int64_t v;
    const uint8_t *bin;
    size_t blen;
    assert_true(mp_array(&f.body, 3, 3, &it, &n));
    assert_true(mp_str(&it[0], name, sizeof(name)));
    assert_string_equal(name, "node1");
    assert_true(mp_i64(&it[1], &v));
    assert_int_equal(v, -7);
    assert_true(mp_bin(&it[2], &bin, &blen, 3));
    assert_memory_equal(bin, "\0\r\n", 3);
    /* typed readers refuse the wrong types and ranges */
    uint64_t u;
    assert_false(mp_u64(&it[1], &u));
    assert_false(mp_str(&it[1], name, sizeof(name)));
    assert_false(mp_str(&it[0], name, 5)); /* needs 6 bytes with the NUL */
    assert_false(mp_bin(&it[2], &bin, &blen, 2));
    assert_false(mp_array(&f.body, 4, 4, &it, &n));
    frame_release(&f);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&out);
}

static void test_partial_input_needs_more(void **state)
{
    (void)state;
    msgpack_sbuffer body, out;
    pack_body(&body);
    msgpack_sbuffer_init(&out);
    assert_int_equal(frame_build(&out, 3, FRAME_RESPONSE, 1, 0, body.data, body.size, NULL), 0);
    for (size_t cut = 0; cut < out.size; cut++) {
        frame_t f;
        size_t used = 0;
        assert_int_equal(frame_parse((uint8_t *)out.data, cut, 1 << 20, NULL, &f, &used), 0);
        assert_null(f.zone);
    }
    /* two frames back to back: the first is consumed exactly */
    size_t one = out.size;
    msgpack_sbuffer_write(&out, out.data, one);
    frame_t f;
    size_t used = 0;
    assert_int_equal(frame_parse((uint8_t *)out.data, out.size, 1 << 20, NULL, &f, &used), 1);
    assert_int_equal(used, one);
    frame_release(&f);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&out);
}

static void test_oversized_rejected_before_reading(void **state)
{
    (void)state;
    uint8_t hdr[4] = {0xff, 0xff, 0xff, 0xff};
    frame_t f;
    size_t used = 0;
    assert_int_equal(frame_parse(hdr, 4, 1 << 20, NULL, &f, &used), -EMSGSIZE);
    uint8_t zero[4] = {0, 0, 0, 0};
    assert_int_equal(frame_parse(zero, 4, 1 << 20, NULL, &f, &used), -EPROTO);
}

static size_t with_header(uint8_t *buf, const uint8_t *payload, size_t n)
{
    buf[0] = (uint8_t)(n >> 24);
    buf[1] = (uint8_t)(n >> 16);
    buf[2] = (uint8_t)(n >> 8);
    buf[3] = (uint8_t)n;
    memcpy(buf + 4, payload, n);
    return n + 4;
}

static void test_malformed_envelopes(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        uint8_t bytes[16];
        size_t len;
    } cases[] = {
        {"not an array", {0x01}, 1},
        {"array of 5", {0x95, 1, 2, 0, 1, 0}, 6},
        {"version 2", {0x96, 2, 2, 0, 1, 0, 0xc0}, 7},
        {"type 0", {0x96, 1, 0, 0, 1, 0, 0xc0}, 7},
        {"kind 3", {0x96, 1, 2, 3, 1, 0, 0xc0}, 7},
        {"negative req id", {0x96, 1, 2, 0, 0xff, 0, 0xc0}, 7},
        {"trailing byte", {0x96, 1, 2, 0, 1, 0, 0xc0, 0xc0}, 8},
        {"truncated body", {0x96, 1, 2, 0, 1, 0, 0x92, 1}, 8},
        {"reserved 0xc1", {0x96, 1, 2, 0, 1, 0, 0xc1}, 7},
        /* an array claiming 2^32-1 elements in 5 bytes must not allocate */
        {"huge array count", {0x96, 1, 2, 0, 1, 0, 0xdd, 0xff, 0xff, 0xff, 0xff}, 11},
        {"huge map count", {0x96, 1, 2, 0, 1, 0, 0xdf, 0x7f, 0xff, 0xff, 0xff}, 11},
        {"huge bin length", {0x96, 1, 2, 0, 1, 0, 0xc6, 0xff, 0xff, 0xff, 0xff}, 11},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[64];
        size_t n = with_header(buf, cases[i].bytes, cases[i].len);
        frame_t f;
        size_t used = 0;
        int rc = frame_parse(buf, n, 1 << 20, NULL, &f, &used);
        if (rc != -EPROTO)
            fail_msg("%s: got %d", cases[i].what, rc);
        assert_null(f.zone);
    }
}

static void test_validate(void **state)
{
    (void)state;
    assert_true(mp_validate((const uint8_t *)"\x93\x01\x02\x03", 4));
    assert_true(mp_validate((const uint8_t *)"\xc0", 1));
    assert_false(mp_validate((const uint8_t *)"", 0));
    assert_false(mp_validate((const uint8_t *)"\x93\x01\x02", 3));
    assert_false(mp_validate((const uint8_t *)"\x01\x02", 2)); /* two objects */
    assert_false(mp_validate((const uint8_t *)"\xa5hi", 3));   /* str past the end */
    assert_true(mp_validate((const uint8_t *)"\x81\xa1k\xa1v", 5));
    assert_false(mp_validate((const uint8_t *)"\x81\xa1k", 3)); /* map without value */
}

static frame_t parsed(msgpack_sbuffer *out, const char *body, size_t blen)
{
    frame_t f;
    size_t used;
    assert_int_equal(frame_build(out, 6, FRAME_RESPONSE, 1, 0, body, blen, NULL), 0);
    assert_int_equal(frame_parse((uint8_t *)out->data, out->size, 1 << 20, NULL, &f, &used), 1);
    return f;
}

static void test_status_reply(void **state)
{
    (void)state;
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    frame_t f = parsed(&out, "\x91\x00", 2); /* [0] */
    assert_true(frame_status_ok(&f));
    frame_release(&f);
    f = parsed(&out, "\x91\xea", 2); /* [-22] */
    assert_false(frame_status_ok(&f));
    frame_release(&f);
    f = parsed(&out, "\x92\x00\x00", 3); /* [0, 0]: not a status reply */
    assert_false(frame_status_ok(&f));
    frame_release(&f);
    f = parsed(&out, "\x00", 1); /* 0, not [0] */
    assert_false(frame_status_ok(&f));
    frame_release(&f);
    assert_false(frame_status_ok(NULL));
    msgpack_sbuffer_destroy(&out);
}

/* node.cluster_secret: frames carry an HMAC trailer; a frame without one,
 * with a wrong one, or built with another secret is refused, and so is a
 * signed frame at a node without a secret. */
static void test_authenticated_frames(void **state)
{
    (void)state;
    uint8_t key[FRAME_KEY_LEN], other[FRAME_KEY_LEN];
    assert_int_equal(frame_key("s3cret", key), 0);
    assert_int_equal(frame_key("another", other), 0);
    msgpack_sbuffer body, out, plain;
    pack_body(&body);
    msgpack_sbuffer_init(&out);
    msgpack_sbuffer_init(&plain);
    assert_int_equal(frame_build(&out, 4, FRAME_ONEWAY, 0, 0, body.data, body.size, key), 0);
    assert_int_equal(frame_build(&plain, 4, FRAME_ONEWAY, 0, 0, body.data, body.size, NULL), 0);
    assert_int_equal(out.size, plain.size + FRAME_MAC_LEN);
    frame_t f;
    size_t used = 0;
    assert_int_equal(frame_parse((uint8_t *)out.data, out.size, 1 << 20, key, &f, &used), 1);
    assert_int_equal(used, out.size);
    assert_int_equal(f.type, 4);
    frame_release(&f);
    /* partial input still asks for more */
    assert_int_equal(frame_parse((uint8_t *)out.data, out.size - 1, 1 << 20, key, &f, &used), 0);
    /* wrong secret, no trailer, one flipped bit anywhere */
    assert_int_equal(frame_parse((uint8_t *)out.data, out.size, 1 << 20, other, &f, &used),
                     -EACCES);
    assert_int_equal(frame_parse((uint8_t *)plain.data, plain.size, 1 << 20, key, &f, &used),
                     -EACCES);
    for (size_t i = FRAME_HDR; i < out.size; i++) {
        out.data[i] ^= 0x01;
        assert_int_equal(frame_parse((uint8_t *)out.data, out.size, 1 << 20, key, &f, &used),
                         -EACCES);
        out.data[i] ^= 0x01;
    }
    /* a node without a secret does not take a signed frame for a plain one */
    assert_true(frame_parse((uint8_t *)out.data, out.size, 1 << 20, NULL, &f, &used) < 0);
    msgpack_sbuffer_destroy(&body);
    msgpack_sbuffer_destroy(&out);
    msgpack_sbuffer_destroy(&plain);
}

/* frame_build_iov's head + pieces + trailer are byte for byte the frame
 * frame_build makes of the concatenated body, keyed or not, for bodies in
 * one, two or three pieces and the empty body; and frames parsed into one
 * lent zone, one after the other, come out whole. */
static void test_iov_frames_equal_built_frames(void **state)
{
    (void)state;
    msgpack_sbuffer body, ref;
    pack_body(&body);
    msgpack_sbuffer_init(&ref);
    uint8_t key[FRAME_KEY_LEN];
    memset(key, 0x5a, sizeof(key));
    msgpack_zone *zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    assert_non_null(zone);
    for (int keyed = 0; keyed < 2; keyed++) {
        for (int cuts = 0; cuts < 4; cuts++) {
            size_t blen = cuts == 3 ? 0 : body.size;
            struct iovec v[3];
            int n = 0;
            if (cuts == 0) {
                v[n++] = (struct iovec){body.data, body.size};
            } else if (cuts == 1) {
                v[n++] = (struct iovec){body.data, 2};
                v[n++] = (struct iovec){body.data + 2, body.size - 2};
            } else if (cuts == 2) {
                v[n++] = (struct iovec){body.data, 1};
                v[n++] = (struct iovec){body.data + 1, 0};
                v[n++] = (struct iovec){body.data + 1, body.size - 1};
            }
            assert_int_equal(frame_build(&ref, 7, FRAME_REQUEST, 1234567890123ULL, 250,
                                         body.data, blen, keyed ? key : NULL), 0);
            uint8_t head[FRAME_HEAD_MAX], mac[FRAME_MAC_LEN];
            size_t hlen = 0;
            assert_int_equal(frame_build_iov(head, &hlen, 7, FRAME_REQUEST, 1234567890123ULL, 250,
                                             v, n, keyed ? key : NULL, mac), 0);
            uint8_t whole[512];
            size_t len = 0;
            memcpy(whole, head, hlen);
            len = hlen;
            for (int i = 0; i < n; i++) {
                memcpy(whole + len, v[i].iov_base, v[i].iov_len);
                len += v[i].iov_len;
            }
            if (keyed) {
                memcpy(whole + len, mac, sizeof(mac));
                len += sizeof(mac);
            }
            assert_int_equal(len, ref.size);
            assert_memory_equal(whole, ref.data, len);
            frame_t f;
            size_t used = 0;
            assert_int_equal(frame_parse_in(whole, len, 1 << 20, keyed ? key : NULL, &f, &used,
                                            zone),
                             1);
            assert_int_equal(used, len);
            assert_int_equal(f.type, 7);
            assert_int_equal(f.req_id, 1234567890123ULL);
            assert_int_equal(f.body.type, blen ? MSGPACK_OBJECT_ARRAY : MSGPACK_OBJECT_NIL);
            frame_release(&f);
            assert_null(f.zone);
        }
    }
    msgpack_zone_free(zone);
    msgpack_sbuffer_destroy(&ref);
    msgpack_sbuffer_destroy(&body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_partial_input_needs_more),
        cmocka_unit_test(test_oversized_rejected_before_reading),
        cmocka_unit_test(test_malformed_envelopes),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_status_reply),
        cmocka_unit_test(test_authenticated_frames),
        cmocka_unit_test(test_iov_frames_equal_built_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
