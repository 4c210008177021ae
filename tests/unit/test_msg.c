/*
 * test_msg.c - unit tests for server/msg.c, the inter-node message table:
 * every row encodes a sample of its struct and decodes it back to the same
 * fields; the table has one row per (type, direction) and every request
 * type the dispatcher routes; decoders refuse wrong types, counts, lengths
 * and tree indices outside the tree shape, and leave nothing to free; an
 * anti-entropy refusal [code] decodes as an answer of every type.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../server/kv.h"
#include "../../server/msg.h"

/* The bytes of the last round trip: msgpack-c's unpacker points bin and
 * str objects into its input, so they live until the next round trip. */
static msgpack_sbuffer g_sb;

/* Encode m as (type, dir), unpack, decode into *out.  The unpacked zone
 * must outlive *out (keys point into it): the caller destroys *up. */
static int roundtrip(uint8_t type, enum msg_dir dir, const void *m, msgpack_unpacked *up,
                     msg_any_t *out)
{
    msgpack_sbuffer_destroy(&g_sb);
    msgpack_sbuffer_init(&g_sb);
    msgpack_sbuffer sb = g_sb;
    int rc = msg_encode(&sb, type, dir, m);
    assert_int_equal(rc, 0);
    msgpack_unpacked_init(up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, sb.size);
    rc = msg_decode(type, dir, &up->data, out);
    g_sb = sb;
    return rc;
}

/* Decode raw msgpack bytes (built with a packer callback). */
typedef void (*build_fn)(msgpack_packer *pk);

static int decode_built(uint8_t type, enum msg_dir dir, build_fn build)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    build(&pk);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, sb.data, sb.size, &off), MSGPACK_UNPACK_SUCCESS);
    msg_any_t m;
    int rc = msg_decode(type, dir, &up.data, &m);
    if (rc == 0)
        msg_free(type, dir, &m);
    else /* a failed decode leaves a zeroed union */
        for (size_t i = 0; i < sizeof(m); i++)
            assert_int_equal(((uint8_t *)&m)[i], 0);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void make_obj(obj_t *o, const char *val)
{
    obj_init(o);
    assert_int_equal(vc_set(&o->vc, 9, 3, 100), 0);
    o->sib = calloc(1, sizeof(*o->sib));
    o->nsib = o->cap = 1;
    o->sib[0] = (sibling_t){.dot = {9, 3}, .ts_us = 100, .len = strlen(val), .flags = 5};
    o->sib[0].value = malloc(o->sib[0].len + 1);
    memcpy(o->sib[0].value, val, o->sib[0].len);
}

static void test_table_rows(void **state)
{
    (void)state;
    /* one row per (type, dir), and both directions of every request type
     * that expects an answer */
    for (size_t i = 0; i < msg_def_count(); i++) {
        const msg_def_t *d = msg_def_at(i);
        assert_non_null(d->encode);
        assert_non_null(d->decode);
        assert_non_null(d->free);
        assert_ptr_equal(msg_def(d->type, d->dir), d);
    }
    assert_null(msg_def_at(msg_def_count()));
    uint8_t answered[] = {MSG_PING, MSG_REPLICA_GET, MSG_REPLICA_PUT, MSG_COORD_WRITE, MSG_FLUSH,
                          MSG_AAE_ROOT, MSG_AAE_LEAVES, MSG_AAE_KEYS, MSG_AAE_SYNC,
                          MSG_AAE_GC_CHECK, MSG_AAE_GC_PURGE};
    for (size_t i = 0; i < sizeof(answered); i++) {
        assert_non_null(msg_def(answered[i], MSG_REQ));
        assert_non_null(msg_def(answered[i], MSG_REP));
    }
    assert_non_null(msg_def(MSG_GOSSIP_SYN, MSG_REQ));
    assert_non_null(msg_def(MSG_GOSSIP_ACK, MSG_REP));
    assert_non_null(msg_def(MSG_GOSSIP_ACK2, MSG_REQ));
    assert_non_null(msg_def(MSG_GOSSIP_MAIL, MSG_REQ));
    assert_non_null(msg_def(MSG_GOSSIP_MAIL, MSG_REP));
    assert_null(msg_def(99, MSG_REQ));
    msg_any_t m;
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    assert_int_equal(msg_decode(99, MSG_REQ, &nil, &m), -ENOENT);
}

/* Field by field: a struct's padding is not part of what it says. */
static void assert_entry_equal(const gossip_member_t *a, const gossip_member_t *b)
{
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->host, b->host);
    assert_int_equal(a->client_port, b->client_port);
    assert_int_equal(a->peer_port, b->peer_port);
    assert_int_equal(a->generation, b->generation);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->heartbeat, b->heartbeat);
    assert_int_equal(a->status, b->status);
}

static void test_gossip_roundtrip(void **state)
{
    (void)state;
    msgpack_unpacked up;
    msg_any_t m;
    msg_ping_t ping = {.name = "node-7"};
    assert_int_equal(roundtrip(MSG_PING, MSG_REQ, &ping, &up, &m), 0);
    assert_string_equal(m.ping.name, "node-7");
    msgpack_unpacked_destroy(&up);

    gossip_digest_t d[2] = {{"a", 5, 9, 40}, {"b", 0, 1, 0}};
    gossip_member_t e = {.name = "n2", .host = "10.0.0.2", .client_port = 11211,
                         .peer_port = 7946, .generation = 77, .version = 3, .status = 1,
                         .heartbeat = 12345};
    gossip_rumor_t rumors[2] = {{.kind = GOSSIP_RUMOR_ENTRY, .entry = e},
                                {.kind = GOSSIP_RUMOR_DOWN,
                                 .entry = {.name = "n3", .generation = 8, .version = 2,
                                           .heartbeat = 99}}};
    gossip_syn_t syn = {.from = d[0], .summary = 0xfedcba9876543210ULL, .nbuckets = 4,
                        .mask = 5, .digests = d, .ndigests = 2, .heartbeats = &d[1],
                        .nheartbeats = 1, .rumors = rumors, .nrumors = 2};
    assert_int_equal(roundtrip(MSG_GOSSIP_SYN, MSG_REQ, &syn, &up, &m), 0);
    assert_memory_equal(&m.syn.from, &d[0], sizeof(d[0]));
    assert_true(m.syn.summary == syn.summary);
    assert_int_equal(m.syn.nbuckets, 4);
    assert_int_equal(m.syn.mask, 5);
    assert_int_equal(m.syn.ndigests, 2);
    assert_string_equal(m.syn.digests[1].name, "b");
    assert_int_equal(m.syn.digests[0].generation, 5);
    assert_int_equal(m.syn.digests[0].version, 9);
    assert_int_equal(m.syn.digests[0].heartbeat, 40);
    assert_int_equal(m.syn.nheartbeats, 1);
    assert_int_equal(m.syn.nrumors, 2);
    assert_int_equal(m.syn.rumors[0].kind, GOSSIP_RUMOR_ENTRY);
    assert_entry_equal(&m.syn.rumors[0].entry, &e);
    assert_int_equal(m.syn.rumors[1].kind, GOSSIP_RUMOR_DOWN);
    assert_string_equal(m.syn.rumors[1].entry.name, "n3");
    assert_int_equal(m.syn.rumors[1].entry.generation, 8);
    assert_int_equal(m.syn.rumors[1].entry.version, 2);
    assert_int_equal(m.syn.rumors[1].entry.heartbeat, 99);
    msg_free(MSG_GOSSIP_SYN, MSG_REQ, &m);
    msgpack_unpacked_destroy(&up);

    uint64_t buckets[2] = {1, UINT64_MAX};
    gossip_ack_t ack = {.from = d[1], .buckets = buckets, .nbuckets = 2, .entries = &e,
                        .nentries = 1, .requests = d, .nrequests = 1, .heartbeats = d,
                        .nheartbeats = 2, .rumors = &rumors[1], .nrumors = 1};
    assert_int_equal(roundtrip(MSG_GOSSIP_ACK, MSG_REP, &ack, &up, &m), 0);
    assert_int_equal(m.ack.nbuckets, 2);
    assert_true(m.ack.buckets[1] == UINT64_MAX);
    assert_int_equal(m.ack.nentries, 1);
    assert_entry_equal(&m.ack.entries[0], &e);
    assert_int_equal(m.ack.nrequests, 1);
    assert_int_equal(m.ack.nheartbeats, 2);
    assert_int_equal(m.ack.rumors[0].kind, GOSSIP_RUMOR_DOWN);
    msg_free(MSG_GOSSIP_ACK, MSG_REP, &m);
    msgpack_unpacked_destroy(&up);

    gossip_ack2_t ack2 = {.entries = &e, .nentries = 1};
    assert_int_equal(roundtrip(MSG_GOSSIP_ACK2, MSG_REQ, &ack2, &up, &m), 0);
    assert_string_equal(m.ack2.entries[0].host, "10.0.0.2");
    msg_free(MSG_GOSSIP_ACK2, MSG_REQ, &m);
    msgpack_unpacked_destroy(&up);

    assert_int_equal(roundtrip(MSG_GOSSIP_MAIL, MSG_REQ, &e, &up, &m), 0);
    assert_entry_equal(&m.mail, &e);
    msgpack_unpacked_destroy(&up);
    assert_int_equal(roundtrip(MSG_GOSSIP_MAIL, MSG_REP, &d[0], &up, &m), 0);
    assert_memory_equal(&m.mail_ack, &d[0], sizeof(d[0]));
    msgpack_unpacked_destroy(&up);
}

static void test_replica_roundtrip(void **state)
{
    (void)state;
    msgpack_unpacked up;
    msg_any_t m;
    msg_replica_get_t g = {.key = (const uint8_t *)"key", .klen = 3, .hint = "n3"};
    assert_int_equal(roundtrip(MSG_REPLICA_GET, MSG_REQ, &g, &up, &m), 0);
    assert_int_equal(m.rget.klen, 3);
    assert_memory_equal(m.rget.key, "key", 3);
    assert_string_equal(m.rget.hint, "n3");
    msgpack_unpacked_destroy(&up);

    obj_t o;
    make_obj(&o, "hello");
    msg_replica_got_t got = {.code = 0, .has_obj = true, .obj = o};
    assert_int_equal(roundtrip(MSG_REPLICA_GET, MSG_REP, &got, &up, &m), 0);
    assert_true(m.rgot.has_obj);
    assert_true(obj_equal(&m.rgot.obj, &o));
    msg_free(MSG_REPLICA_GET, MSG_REP, &m);
    msgpack_unpacked_destroy(&up);
    msg_replica_got_t missing = {.code = 1};
    assert_int_equal(roundtrip(MSG_REPLICA_GET, MSG_REP, &missing, &up, &m), 0);
    assert_false(m.rgot.has_obj);
    assert_int_equal(m.rgot.code, 1);
    msgpack_unpacked_destroy(&up);

    msg_replica_put_t p = {.key = (const uint8_t *)"k", .klen = 1, .hint = "", .obj_in = &o};
    assert_int_equal(roundtrip(MSG_REPLICA_PUT, MSG_REQ, &p, &up, &m), 0);
    assert_true(obj_equal(&m.rput.obj, &o));
    /* the bytes as received, and sending them again as they are */
    uint8_t *enc;
    size_t elen;
    assert_int_equal(obj_encode(&o, &enc, &elen), 0);
    assert_int_equal(m.rput.enclen, elen);
    assert_memory_equal(m.rput.enc, enc, elen);
    msg_free(MSG_REPLICA_PUT, MSG_REQ, &m);
    msgpack_unpacked_destroy(&up);
    msg_replica_put_t raw = {.key = (const uint8_t *)"k", .klen = 1, .enc = enc, .enclen = elen};
    assert_int_equal(roundtrip(MSG_REPLICA_PUT, MSG_REQ, &raw, &up, &m), 0);
    assert_true(obj_equal(&m.rput.obj, &o));
    msg_free(MSG_REPLICA_PUT, MSG_REQ, &m);
    msgpack_unpacked_destroy(&up);
    /* the coordinator's two pieces (msg_rput_head, then the encoding) are
     * the bytes msg_encode makes of the same message */
    msgpack_sbuffer whole, head;
    msgpack_sbuffer_init(&whole);
    msgpack_sbuffer_init(&head);
    msg_replica_put_t hinted = {.key = (const uint8_t *)"k", .klen = 1, .hint = "n2",
                                .enc = enc, .enclen = elen};
    assert_int_equal(msg_encode(&whole, MSG_REPLICA_PUT, MSG_REQ, &hinted), 0);
    assert_int_equal(msg_rput_head(&head, "k", 1, "n2", elen), 0);
    assert_int_equal(head.size + elen, whole.size);
    assert_memory_equal(head.data, whole.data, head.size);
    assert_memory_equal(whole.data + head.size, enc, elen);
    /* a replica's found answer in two pieces is msg_encode's too */
    msg_replica_got_t found = {.code = 0, .has_obj = true, .obj = o};
    assert_int_equal(msg_encode(&whole, MSG_REPLICA_GET, MSG_REP, &found), 0);
    assert_int_equal(msg_rgot_head(&head, elen), 0);
    assert_int_equal(head.size + elen, whole.size);
    assert_memory_equal(head.data, whole.data, head.size);
    assert_memory_equal(whole.data + head.size, enc, elen);
    /* and the stack status body is msg_encode_status's */
    int64_t codes[] = {0, 1, -5, -ENOMEM, INT64_MIN, INT64_MAX};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        uint8_t st[MSG_STATUS_MAX];
        size_t n = msg_status_body(st, codes[i]);
        assert_int_equal(msg_encode_status(&whole, codes[i]), 0);
        assert_int_equal(n, whole.size);
        assert_memory_equal(st, whole.data, n);
    }
    msgpack_sbuffer_destroy(&whole);
    msgpack_sbuffer_destroy(&head);
    free(enc);

    msg_coord_write_t w = {.key = (const uint8_t *)"ctr", .klen = 3, .cmd = MC_INCR,
                           .flags = 1, .expiry = -5, .data = (const uint8_t *)"", .dlen = 0,
                           .cas = 42, .delta = 7, .r = 2, .w = 3};
    assert_int_equal(roundtrip(MSG_COORD_WRITE, MSG_REQ, &w, &up, &m), 0);
    assert_int_equal(m.cw.cmd, MC_INCR);
    assert_int_equal(m.cw.expiry, -5);
    assert_int_equal(m.cw.delta, 7);
    assert_int_equal(m.cw.w, 3);
    assert_false(m.cw.has_ctx);
    msg_free(MSG_COORD_WRITE, MSG_REQ, &m);
    msgpack_unpacked_destroy(&up);
    w.has_ctx = true; /* the 10th field */
    vc_init(&w.ctx);
    assert_int_equal(vc_set(&w.ctx, 0xabc, 12, 0), 0);
    assert_int_equal(roundtrip(MSG_COORD_WRITE, MSG_REQ, &w, &up, &m), 0);
    assert_true(m.cw.has_ctx);
    assert_int_equal(vc_get(&m.cw.ctx, 0xabc), 12);
    msg_free(MSG_COORD_WRITE, MSG_REQ, &m);
    msgpack_unpacked_destroy(&up);
    vc_free(&w.ctx);

    msg_coord_done_t done = {.status = 1, .got = 1, .needed = 2, .result = KV_NUMBER,
                             .number = 9, .has_obj = true, .obj_in = &o};
    assert_int_equal(roundtrip(MSG_COORD_WRITE, MSG_REP, &done, &up, &m), 0);
    assert_int_equal(m.cdone.result, KV_NUMBER);
    assert_true(m.cdone.has_obj && obj_equal(&m.cdone.obj, &o));
    msg_free(MSG_COORD_WRITE, MSG_REP, &m);
    msgpack_unpacked_destroy(&up);

    msg_flush_t fl = {.when = 123456789};
    assert_int_equal(roundtrip(MSG_FLUSH, MSG_REQ, &fl, &up, &m), 0);
    assert_int_equal(m.flush.when, 123456789);
    msgpack_unpacked_destroy(&up);
    msg_status_t st = {-5};
    assert_int_equal(roundtrip(MSG_FLUSH, MSG_REP, &st, &up, &m), 0);
    assert_int_equal(m.status.code, -5);
    msgpack_unpacked_destroy(&up);
    obj_free(&o);
}

static void test_aae_roundtrip(void **state)
{
    (void)state;
    msgpack_unpacked up;
    msg_any_t m;
    msg_aae_t root = {.ring = 1, .start = UINT64_MAX - 5, .end = 7, .root = 99};
    assert_int_equal(roundtrip(MSG_AAE_ROOT, MSG_REQ, &root, &up, &m), 0);
    assert_int_equal(m.aae.ring, 1);
    assert_int_equal(m.aae.start, UINT64_MAX - 5);
    assert_int_equal(m.aae.end, 7);
    assert_int_equal(m.aae.root, 99);
    msgpack_unpacked_destroy(&up);

    uint64_t br[TICTAC_BRANCHES];
    for (uint32_t i = 0; i < TICTAC_BRANCHES; i++)
        br[i] = i * 1000003ull;
    msg_aae_t rr = {.root = 5, .hashes = br, .nhashes = TICTAC_BRANCHES};
    assert_int_equal(roundtrip(MSG_AAE_ROOT, MSG_REP, &rr, &up, &m), 0);
    assert_int_equal(m.aae.nhashes, TICTAC_BRANCHES);
    assert_memory_equal(m.aae.hashes, br, sizeof(br));
    msg_free(MSG_AAE_ROOT, MSG_REP, &m);
    msgpack_unpacked_destroy(&up);
    msg_aae_t equal = {.root = 5};
    assert_int_equal(roundtrip(MSG_AAE_ROOT, MSG_REP, &equal, &up, &m), 0);
    assert_int_equal(m.aae.nhashes, 0);
    msgpack_unpacked_destroy(&up);

    uint32_t idx[] = {0, 3, 1023};
    msg_aae_t keys = {.idx = idx, .nidx = 3};
    assert_int_equal(roundtrip(MSG_AAE_KEYS, MSG_REQ, &keys, &up, &m), 0);
    assert_int_equal(m.aae.nidx, 3);
    assert_memory_equal(m.aae.idx, idx, sizeof(idx));
    msg_free(MSG_AAE_KEYS, MSG_REQ, &m);
    msgpack_unpacked_destroy(&up);

    msg_aae_item_t items[2] = {{.key = (const uint8_t *)"a", .klen = 1, .hash = 11},
                               {.key = (const uint8_t *)"bb", .klen = 2, .hash = 22}};
    msg_aae_t kr = {.count = 2, .items = items, .nitems = 2};
    assert_int_equal(roundtrip(MSG_AAE_KEYS, MSG_REP, &kr, &up, &m), 0);
    assert_int_equal(m.aae.count, 2);
    assert_int_equal(m.aae.nitems, 2);
    assert_int_equal(m.aae.items[1].hash, 22);
    assert_memory_equal(m.aae.items[1].key, "bb", 2);
    msg_free(MSG_AAE_KEYS, MSG_REP, &m);
    msgpack_unpacked_destroy(&up);

    obj_t o;
    make_obj(&o, "v");
    uint8_t *enc;
    size_t elen;
    assert_int_equal(obj_encode(&o, &enc, &elen), 0);
    msg_aae_item_t sy[2] = {{.key = (const uint8_t *)"a", .klen = 1, .enc = enc, .enclen = elen},
                            {.key = (const uint8_t *)"b", .klen = 1}};
    msg_aae_t sync = {.items = sy, .nitems = 2};
    assert_int_equal(roundtrip(MSG_AAE_SYNC, MSG_REQ, &sync, &up, &m), 0);
    assert_true(obj_equal(&m.aae.items[0].obj, &o));
    assert_int_equal(m.aae.items[0].hash, tictac_key_hash("a", 1, enc, elen));
    assert_null(m.aae.items[1].enc);
    msg_free(MSG_AAE_SYNC, MSG_REQ, &m);
    msgpack_unpacked_destroy(&up);
    free(enc);
    obj_free(&o);

    bool agree[3] = {true, false, true};
    msg_aae_t gr = {.agree = agree, .nagree = 3};
    assert_int_equal(roundtrip(MSG_AAE_GC_CHECK, MSG_REP, &gr, &up, &m), 0);
    assert_int_equal(m.aae.nagree, 3);
    assert_false(m.aae.agree[1]);
    assert_true(m.aae.agree[2]);
    msg_free(MSG_AAE_GC_CHECK, MSG_REP, &m);
    msgpack_unpacked_destroy(&up);

    /* a refusal is an answer of every type, with its code */
    msg_aae_t refused = {.code = -ESTALE};
    uint8_t types[] = {MSG_AAE_ROOT, MSG_AAE_LEAVES, MSG_AAE_KEYS, MSG_AAE_SYNC, MSG_AAE_GC_CHECK,
                       MSG_AAE_GC_PURGE};
    for (size_t i = 0; i < sizeof(types); i++) {
        assert_int_equal(roundtrip(types[i], MSG_REP, &refused, &up, &m), 0);
        assert_int_equal(m.aae.code, -ESTALE);
        msg_free(types[i], MSG_REP, &m);
        msgpack_unpacked_destroy(&up);
    }
}

/* ---- malformed bodies ---- */

static void head(msgpack_packer *pk, size_t fields)
{
    msgpack_pack_array(pk, 3 + fields);
    msgpack_pack_uint64(pk, 1);
    msgpack_pack_uint64(pk, 2);
    msgpack_pack_uint64(pk, 3);
}

static void b_keys_seg_1024(msgpack_packer *pk)
{
    head(pk, 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_uint32(pk, TICTAC_SEGMENTS);
}

static void b_keys_descending(msgpack_packer *pk)
{
    head(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint32(pk, 9);
    msgpack_pack_uint32(pk, 9);
}

static void b_keys_empty(msgpack_packer *pk)
{
    head(pk, 1);
    msgpack_pack_array(pk, 0);
}

static void b_leaves_33(msgpack_packer *pk)
{
    head(pk, 1);
    msgpack_pack_array(pk, 33);
    for (uint32_t i = 0; i < 33; i++)
        msgpack_pack_uint32(pk, i);
}

static void b_leaves_ok(msgpack_packer *pk)
{
    head(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint32(pk, 0);
    msgpack_pack_uint32(pk, 31);
}

static void b_root_negative_ring(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_int64(pk, -1);
    msgpack_pack_uint64(pk, 2);
    msgpack_pack_uint64(pk, 3);
    msgpack_pack_uint64(pk, 4);
}

static void b_sync_key_too_long(msgpack_packer *pk)
{
    char key[MC_KEY_MAX + 1];
    memset(key, 'k', sizeof(key));
    head(pk, 1);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_bin(pk, sizeof(key));
    msgpack_pack_bin_body(pk, key, sizeof(key));
    msgpack_pack_nil(pk);
}

static void b_sync_second_object_bad(msgpack_packer *pk)
{
    obj_t o;
    make_obj(&o, "v");
    uint8_t *enc;
    size_t elen;
    assert_int_equal(obj_encode(&o, &enc, &elen), 0);
    head(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_array(pk, 2); /* a good one first: decoded, then freed */
    msgpack_pack_bin(pk, 1);
    msgpack_pack_bin_body(pk, "a", 1);
    msgpack_pack_bin(pk, elen);
    msgpack_pack_bin_body(pk, enc, elen);
    msgpack_pack_array(pk, 2);
    msgpack_pack_bin(pk, 1);
    msgpack_pack_bin_body(pk, "b", 1);
    msgpack_pack_bin(pk, 2);
    msgpack_pack_bin_body(pk, "\x01\x00", 2);
    free(enc);
    obj_free(&o);
}

static void b_sync_too_many(msgpack_packer *pk)
{
    head(pk, 1);
    msgpack_pack_array(pk, MSG_AAE_SYNC_MAX + 1);
    for (int i = 0; i <= MSG_AAE_SYNC_MAX; i++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_bin(pk, 1);
        msgpack_pack_bin_body(pk, "k", 1);
        msgpack_pack_nil(pk);
    }
}

static void b_leaves_rep_not_32(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_int64(pk, 0);
    msgpack_pack_array(pk, 33);
    for (int i = 0; i < 33; i++)
        msgpack_pack_uint64(pk, 1);
}

static void b_refusal_zero(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int64(pk, 0); /* [0] alone is not an answer */
}

static void b_cw_bad_cmd(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 9);
    msgpack_pack_bin(pk, 1);
    msgpack_pack_bin_body(pk, "k", 1);
    msgpack_pack_uint32(pk, MC_GET);
    for (int i = 0; i < 2; i++)
        msgpack_pack_uint32(pk, 0);
    msgpack_pack_bin(pk, 0);
    msgpack_pack_bin_body(pk, "", 0);
    for (int i = 0; i < 4; i++)
        msgpack_pack_uint32(pk, 1);
}

static void b_cw_w_17(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 9);
    msgpack_pack_bin(pk, 1);
    msgpack_pack_bin_body(pk, "k", 1);
    msgpack_pack_uint32(pk, MC_SET);
    msgpack_pack_uint32(pk, 0);
    msgpack_pack_int64(pk, 0);
    msgpack_pack_bin(pk, 0);
    msgpack_pack_bin_body(pk, "", 0);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_int64(pk, 1);
    msgpack_pack_int64(pk, 17);
}

static void b_get_empty_key(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_bin(pk, 0);
    msgpack_pack_bin_body(pk, "", 0);
    msgpack_pack_str(pk, 0);
    msgpack_pack_str_body(pk, "", 0);
}

static void pack_digest_n(msgpack_packer *pk, const char *name)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_str(pk, strlen(name));
    msgpack_pack_str_body(pk, name, strlen(name));
    for (int i = 0; i < 3; i++)
        msgpack_pack_uint32(pk, 1);
}

static void b_ack_second_list_bad(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 6);
    pack_digest_n(pk, "n1");
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 1); /* one good entry, then bad requests */
    msgpack_pack_array(pk, 8);
    msgpack_pack_str(pk, 2);
    msgpack_pack_str_body(pk, "n2", 2);
    msgpack_pack_str(pk, 9);
    msgpack_pack_str_body(pk, "127.0.0.1", 9);
    for (int i = 0; i < 6; i++)
        msgpack_pack_uint32(pk, 1);
    msgpack_pack_uint32(pk, 7); /* requests: not a list */
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 0);
}

/* A SYN with 9 relayed heartbeats: one beyond GOSSIP_MSG_HEARTBEATS. */
static void b_syn_too_many_heartbeats(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 7);
    pack_digest_n(pk, "n1");
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint32(pk, 1);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, GOSSIP_MSG_HEARTBEATS + 1);
    for (unsigned i = 0; i <= GOSSIP_MSG_HEARTBEATS; i++)
        pack_digest_n(pk, "n2");
    msgpack_pack_array(pk, 0);
}

/* A SYN whose rumor is of an unknown kind. */
static void b_syn_rumor_kind_7(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 7);
    pack_digest_n(pk, "n1");
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_uint32(pk, 1);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 0);
    msgpack_pack_array(pk, 1);
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint32(pk, 7);
    pack_digest_n(pk, "n2");
}

/* MAIL: an entry in the format before issue 13 (7 fields, no heartbeat). */
static void b_mail_old_entry(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 7);
    msgpack_pack_str(pk, 2);
    msgpack_pack_str_body(pk, "n2", 2);
    msgpack_pack_str(pk, 9);
    msgpack_pack_str_body(pk, "127.0.0.1", 9);
    for (int i = 0; i < 5; i++)
        msgpack_pack_uint32(pk, 1);
}

/* Range transfers and the join check (transfer.c, cluster.c). */
static void test_xfer_roundtrip(void **state)
{
    (void)state;
    msgpack_unpacked up;
    msg_any_t m;
    msg_aae_t pull = {.ring = 7, .start = UINT64_MAX - 1, .end = 3, .has_cursor = true,
                      .ctoken = 42, .ckey = (const uint8_t *)"k:1", .cklen = 3, .count = 262144};
    assert_int_equal(roundtrip(MSG_XFER_PULL, MSG_REQ, &pull, &up, &m), 0);
    assert_int_equal(m.aae.ring, 7);
    assert_true(m.aae.has_cursor);
    assert_int_equal(m.aae.ctoken, 42);
    assert_int_equal(m.aae.cklen, 3);
    assert_memory_equal(m.aae.ckey, "k:1", 3);
    assert_int_equal(m.aae.count, 262144);
    msgpack_unpacked_destroy(&up);
    msg_aae_t first = {.ring = 1, .start = 5, .end = 9, .count = 100};
    assert_int_equal(roundtrip(MSG_XFER_PULL, MSG_REQ, &first, &up, &m), 0);
    assert_false(m.aae.has_cursor);
    msgpack_unpacked_destroy(&up);

    obj_t o;
    make_obj(&o, "v");
    uint8_t *enc;
    size_t elen;
    assert_int_equal(obj_encode(&o, &enc, &elen), 0);
    msg_aae_item_t it[1] = {{.key = (const uint8_t *)"a", .klen = 1, .enc = enc, .enclen = elen}};
    msg_aae_t page = {.count = 1, .estimate = 1234, .items = it, .nitems = 1};
    assert_int_equal(roundtrip(MSG_XFER_PULL, MSG_REP, &page, &up, &m), 0);
    assert_int_equal(m.aae.count, 1);
    assert_int_equal(m.aae.estimate, 1234);
    assert_true(obj_equal(&m.aae.items[0].obj, &o));
    msg_free(MSG_XFER_PULL, MSG_REP, &m);
    msgpack_unpacked_destroy(&up);
    msg_aae_t push = {.ring = 3, .start = 1, .end = 2, .items = it, .nitems = 1};
    assert_int_equal(roundtrip(MSG_XFER_PUSH, MSG_REQ, &push, &up, &m), 0);
    assert_int_equal(m.aae.nitems, 1);
    assert_int_equal(m.aae.items[0].hash, tictac_key_hash("a", 1, enc, elen));
    msg_free(MSG_XFER_PUSH, MSG_REQ, &m);
    msgpack_unpacked_destroy(&up);
    /* a push or a page of nil objects is refused: transfers move objects */
    msg_aae_item_t nil[1] = {{.key = (const uint8_t *)"a", .klen = 1}};
    msg_aae_t bad = {.items = nil, .nitems = 1};
    assert_int_not_equal(roundtrip(MSG_XFER_PUSH, MSG_REQ, &bad, &up, &m), 0);
    msgpack_unpacked_destroy(&up);
    assert_int_not_equal(roundtrip(MSG_XFER_PULL, MSG_REP, &bad, &up, &m), 0);
    msgpack_unpacked_destroy(&up);
    msg_aae_t refused = {.code = MSG_CODE_STALE_EPOCH};
    assert_int_equal(roundtrip(MSG_XFER_PULL, MSG_REP, &refused, &up, &m), 0);
    assert_int_equal(m.aae.code, MSG_CODE_STALE_EPOCH);
    msgpack_unpacked_destroy(&up);
    free(enc);
    obj_free(&o);

    gossip_member_t e = {.name = "n4", .host = "127.0.0.1", .client_port = 1, .peer_port = 2,
                         .generation = 5, .version = 1, .status = GOSSIP_JOINING,
                         .ring_epoch = 9, .xfer = 51, .flags = GOSSIP_F_REMOVED};
    assert_int_equal(roundtrip(MSG_JOIN_CHECK, MSG_REQ, &e, &up, &m), 0);
    assert_string_equal(m.join.name, "n4");
    assert_int_equal(m.join.ring_epoch, 9);
    assert_int_equal(m.join.xfer, 51);
    assert_int_equal(m.join.flags, GOSSIP_F_REMOVED);
    msgpack_unpacked_destroy(&up);
    msg_join_ok_t no = {.code = MSG_JOIN_GONE, .reason = "node n4 was removed", .epoch = 3};
    assert_int_equal(roundtrip(MSG_JOIN_CHECK, MSG_REP, &no, &up, &m), 0);
    assert_int_equal(m.join_ok.code, MSG_JOIN_GONE);
    assert_string_equal(m.join_ok.reason, "node n4 was removed");
    assert_int_equal(m.join_ok.epoch, 3);
    msgpack_unpacked_destroy(&up);
    msg_join_ok_t yes = {.code = MSG_JOIN_OK}; /* an empty reason */
    assert_int_equal(roundtrip(MSG_JOIN_CHECK, MSG_REP, &yes, &up, &m), 0);
    assert_string_equal(m.join_ok.reason, "");
    msgpack_unpacked_destroy(&up);
    msg_join_ok_t odd = {.code = 9};
    assert_int_not_equal(roundtrip(MSG_JOIN_CHECK, MSG_REP, &odd, &up, &m), 0);
    msgpack_unpacked_destroy(&up);
}

static void test_malformed_refused(void **state)
{
    (void)state;
    assert_int_equal(decode_built(MSG_AAE_KEYS, MSG_REQ, b_keys_seg_1024), -EINVAL);
    assert_int_equal(decode_built(MSG_AAE_KEYS, MSG_REQ, b_keys_descending), -EINVAL);
    assert_int_equal(decode_built(MSG_AAE_KEYS, MSG_REQ, b_keys_empty), -EINVAL);
    assert_int_equal(decode_built(MSG_AAE_LEAVES, MSG_REQ, b_leaves_33), -EINVAL);
    assert_int_equal(decode_built(MSG_AAE_LEAVES, MSG_REQ, b_leaves_ok), 0);
    assert_int_equal(decode_built(MSG_AAE_ROOT, MSG_REQ, b_root_negative_ring), -EINVAL);
    assert_int_equal(decode_built(MSG_AAE_SYNC, MSG_REQ, b_sync_key_too_long), -EINVAL);
    assert_int_equal(decode_built(MSG_AAE_SYNC, MSG_REQ, b_sync_second_object_bad), -EINVAL);
    assert_int_equal(decode_built(MSG_AAE_SYNC, MSG_REQ, b_sync_too_many), -EINVAL);
    assert_int_equal(decode_built(MSG_AAE_LEAVES, MSG_REP, b_leaves_rep_not_32), -EINVAL);
    assert_int_equal(decode_built(MSG_AAE_ROOT, MSG_REP, b_refusal_zero), -EINVAL);
    assert_int_equal(decode_built(MSG_COORD_WRITE, MSG_REQ, b_cw_bad_cmd), -EINVAL);
    assert_int_equal(decode_built(MSG_COORD_WRITE, MSG_REQ, b_cw_w_17), -EINVAL);
    assert_int_equal(decode_built(MSG_REPLICA_GET, MSG_REQ, b_get_empty_key), -EINVAL);
    assert_int_equal(decode_built(MSG_GOSSIP_ACK, MSG_REP, b_ack_second_list_bad), -EINVAL);
    assert_int_equal(decode_built(MSG_GOSSIP_SYN, MSG_REQ, b_syn_too_many_heartbeats), -EINVAL);
    assert_int_equal(decode_built(MSG_GOSSIP_SYN, MSG_REQ, b_syn_rumor_kind_7), -EINVAL);
    assert_int_equal(decode_built(MSG_GOSSIP_MAIL, MSG_REQ, b_mail_old_entry), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_rows),
        cmocka_unit_test(test_gossip_roundtrip),
        cmocka_unit_test(test_replica_roundtrip),
        cmocka_unit_test(test_aae_roundtrip),
        cmocka_unit_test(test_xfer_roundtrip),
        cmocka_unit_test(test_malformed_refused),
    };
    msgpack_sbuffer_init(&g_sb);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    msgpack_sbuffer_destroy(&g_sb);
    return rc;
}
