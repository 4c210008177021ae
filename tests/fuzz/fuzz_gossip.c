/* fuzz_gossip.c - libFuzzer target for the gossip rows of the message table
 * (server/msg.c) and what gossip/ does with what they decode.  (fuzz_frame
 * runs every decoder of the table on whole frames; this one goes on into
 * the state machine.)
 *
 * Input: one selector byte (which message: SYN, ACK, ACK2, MAIL, the
 * answer to a mail, PING), then the msgpack body as it would arrive in a
 * frame.  The body is checked with mp_validate() and unpacked as the
 * transport does; whatever decodes is handed to a gossip_t that knows a
 * few members, which must refuse it, ignore it or apply it, and go on
 * ticking: never crash, never read out of bounds, never allocate without
 * bound.  A decoded message re-packed must decode again. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/frame.h"
#include "../../server/msg.h"

static gossip_member_t member(const char *name, int octet, int64_t gen)
{
    gossip_member_t e;

    memset(&e, 0, sizeof(e));
    snprintf(e.name, sizeof(e.name), "%s", name);
    snprintf(e.host, sizeof(e.host), "10.0.0.%d", octet);
    e.client_port = 11211;
    e.peer_port = 7000;
    e.generation = gen;
    e.status = GOSSIP_UP;
    return e;
}

static gossip_t *node(void)
{
    gossip_member_t self = member("self", 1, 100), others[3];
    gossip_addr_t seed = {"10.0.0.2", 7000};
    gossip_config_t cfg;
    gossip_round_t r;
    gossip_t *g = NULL;

    memset(&cfg, 0, sizeof(cfg));
    cfg.rng_seed = 1;
    cfg.seeds = &seed;
    cfg.nseeds = 1;
    if (gossip_new(&self, &cfg, &g) != 0)
        abort();
    others[0] = member("a", 2, 200);
    others[1] = member("b", 3, 300);
    others[2] = member("c", 4, 400);
    if (gossip_on_ack2(g, others, 3, 0) != 0 || gossip_tick(g, 0, &r) != 0)
        abort();
    gossip_round_free(&r);
    return g;
}

/* The gossip rows of the table, as the selector byte picks them. */
static const struct {
    uint8_t type;
    enum msg_dir dir;
} rows[] = {
    {MSG_GOSSIP_SYN, MSG_REQ}, {MSG_GOSSIP_ACK, MSG_REP}, {MSG_GOSSIP_ACK2, MSG_REQ},
    {MSG_GOSSIP_MAIL, MSG_REQ}, {MSG_GOSSIP_MAIL, MSG_REP}, {MSG_PING, MSG_REQ},
};

/* What decoded, packed again, must decode again. */
static void repack(uint8_t type, enum msg_dir dir, const msg_any_t *m)
{
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    msg_any_t again;

    msgpack_sbuffer_init(&sb);
    if (msg_encode(&sb, type, dir, m) != 0)
        abort();
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS ||
        msg_decode(type, dir, &u.data, &again) != 0)
        abort();
    msg_free(type, dir, &again);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_unpacked u;
    gossip_round_t r;
    msg_any_t m;
    gossip_t *g;
    uint8_t type;
    enum msg_dir dir;

    if (size < 2 || !mp_validate(data + 1, size - 1))
        return 0;
    type = rows[data[0] % (sizeof(rows) / sizeof(rows[0]))].type;
    dir = rows[data[0] % (sizeof(rows) / sizeof(rows[0]))].dir;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)data + 1, size - 1, NULL) !=
            MSGPACK_UNPACK_SUCCESS ||
        msg_decode(type, dir, &u.data, &m) != 0) {
        msgpack_unpacked_destroy(&u);
        return 0;
    }
    repack(type, dir, &m);
    g = node();
    if (type == MSG_GOSSIP_SYN) {
        gossip_ack_t ack;

        if (gossip_on_syn(g, &m.syn, 10, &ack) == 0)
            gossip_ack_free(&ack);
    } else if (type == MSG_GOSSIP_ACK) {
        gossip_ack2_t ack2;
        gossip_syn_t syn2;

        if (gossip_on_ack(g, &m.ack, 10, &ack2, &syn2) == 0) {
            gossip_ack2_free(&ack2);
            gossip_syn_free(&syn2);
        }
    } else if (type == MSG_GOSSIP_ACK2) {
        (void)gossip_on_ack2(g, m.ack2.entries, m.ack2.nentries, 10);
    } else if (type == MSG_GOSSIP_MAIL && dir == MSG_REQ) {
        gossip_digest_t me;

        (void)gossip_on_mail(g, &m.mail, 10, &me);
    } else if (type == MSG_GOSSIP_MAIL) {
        gossip_target_t to;

        memset(&to, 0, sizeof(to));
        snprintf(to.name, sizeof(to.name), "a");
        (void)gossip_on_mail_ack(g, &to, 0, &m.mail_ack, 10);
    } else {
        (void)gossip_on_probe_ack(g, m.ping.name, 10);
    }
    /* Whatever it took in, the node goes on. */
    for (int64_t t = 200; t <= 1000; t += 200) {
        if (gossip_tick(g, t, &r) != 0)
            abort();
        gossip_round_free(&r);
    }
    gossip_free(g);
    msg_free(type, dir, &m);
    msgpack_unpacked_destroy(&u);
    return 0;
}
