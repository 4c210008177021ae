/* fuzz_gossip.c - libFuzzer target for the gossip message decoders
 * (server/gossip_wire.c) and what gossip/ does with what they decode.
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
#include "../../server/gossip_wire.h"

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

/* Re-packs what decoded; it must decode again. */
static void repack_syn(const gossip_syn_t *syn)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    gossip_syn_t again;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    gwire_pack_syn(&pk, syn);
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, sb.data, sb.size, NULL) != MSGPACK_UNPACK_SUCCESS ||
        !gwire_unpack_syn(&u.data, &again))
        abort();
    gossip_syn_free(&again);
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_unpacked u;
    gossip_round_t r;
    gossip_t *g;
    uint8_t which;

    if (size < 2 || !mp_validate(data + 1, size - 1))
        return 0;
    which = data[0] % 6;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)data + 1, size - 1, NULL) !=
        MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u);
        return 0;
    }
    g = node();
    switch (which) {
    case 0: {
        gossip_syn_t syn;
        gossip_ack_t ack;

        if (gwire_unpack_syn(&u.data, &syn)) {
            repack_syn(&syn);
            if (gossip_on_syn(g, &syn, 10, &ack) == 0)
                gossip_ack_free(&ack);
            gossip_syn_free(&syn);
        }
        break;
    }
    case 1: {
        gossip_ack_t ack;
        gossip_ack2_t ack2;
        gossip_syn_t syn2;

        if (gwire_unpack_ack(&u.data, &ack)) {
            if (gossip_on_ack(g, &ack, 10, &ack2, &syn2) == 0) {
                gossip_ack2_free(&ack2);
                gossip_syn_free(&syn2);
            }
            gossip_ack_free(&ack);
        }
        break;
    }
    case 2: {
        gossip_ack2_t ack2;

        if (gwire_unpack_ack2(&u.data, &ack2)) {
            (void)gossip_on_ack2(g, ack2.entries, ack2.nentries, 10);
            gossip_ack2_free(&ack2);
        }
        break;
    }
    case 3: {
        gossip_member_t e;
        gossip_digest_t me;

        if (gwire_unpack_entry(&u.data, &e))
            (void)gossip_on_mail(g, &e, 10, &me);
        break;
    }
    case 4: {
        gossip_digest_t d;
        gossip_target_t to;

        memset(&to, 0, sizeof(to));
        snprintf(to.name, sizeof(to.name), "a");
        if (gwire_unpack_digest(&u.data, &d))
            (void)gossip_on_mail_ack(g, &to, 0, &d, 10);
        break;
    }
    default: {
        char name[GOSSIP_NAME_MAX + 1];

        if (gwire_unpack_name(&u.data, name))
            (void)gossip_on_probe_ack(g, name, 10);
        break;
    }
    }
    /* Whatever it took in, the node goes on. */
    for (int64_t t = 200; t <= 1000; t += 200) {
        if (gossip_tick(g, t, &r) != 0)
            abort();
        gossip_round_free(&r);
    }
    gossip_free(g);
    msgpack_unpacked_destroy(&u);
    return 0;
}
