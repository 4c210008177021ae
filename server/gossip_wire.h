/*
 * gossip_wire.h - the msgpack bodies of the gossip messages (gossip/ is the
 * pure state machine; this is how its messages travel in peer frames).
 *
 *   digest  [name, generation, version, heartbeat]
 *   entry   [name, host, client_port, peer_port, generation, version,
 *            status, heartbeat]
 *   rumor   [0, entry]  (a membership change)   [1, digest]  (DOWN)
 *   SYN     [from digest, summary, nbuckets, mask, [digest...],
 *            [heartbeat digest...], [rumor...]]
 *   ACK     [from digest, [bucket hash...], [entry...], [request digest...],
 *            [heartbeat digest...], [rumor...]]
 *   ACK2    [entry...]
 *   MAIL    entry (request)          its answer: the receiver's digest
 *   PING    name (request and answer)
 *
 * Contract: the packers write one msgpack object and cannot fail (msgpack's
 * sbuffer aborts only on out of memory, as everywhere in the server).  The
 * unpackers check every type, length and count against the bounds of
 * gossip.h before allocating (an array is never allocated beyond its
 * bound); they return true with the struct filled (malloc()ed arrays, freed
 * by gossip_syn_free() / gossip_ack_free() / gossip_ack2_free()), or false
 * with the struct empty and nothing allocated.  What the values mean
 * (valid names, hosts, statuses) is checked by gossip/, not here.  Pure:
 * no I/O, so the gossip simulation measures these very bytes.
 */
#ifndef QKV_GOSSIP_WIRE_H
#define QKV_GOSSIP_WIRE_H

#include <msgpack.h>
#include <stdbool.h>

#include "../gossip/gossip.h"

void gwire_pack_syn(msgpack_packer *pk, const gossip_syn_t *syn);
bool gwire_unpack_syn(const msgpack_object *o, gossip_syn_t *syn);

void gwire_pack_ack(msgpack_packer *pk, const gossip_ack_t *ack);
bool gwire_unpack_ack(const msgpack_object *o, gossip_ack_t *ack);

void gwire_pack_ack2(msgpack_packer *pk, const gossip_member_t *entries, size_t n);
bool gwire_unpack_ack2(const msgpack_object *o, gossip_ack2_t *ack2);

/* MAIL: one entry; its answer: one digest. */
void gwire_pack_entry(msgpack_packer *pk, const gossip_member_t *e);
bool gwire_unpack_entry(const msgpack_object *o, gossip_member_t *e);
void gwire_pack_digest(msgpack_packer *pk, const gossip_digest_t *d);
bool gwire_unpack_digest(const msgpack_object *o, gossip_digest_t *d);

/* PING: a node name (copied NUL-terminated; false beyond GOSSIP_NAME_MAX). */
void gwire_pack_name(msgpack_packer *pk, const char *name);
bool gwire_unpack_name(const msgpack_object *o, char name[GOSSIP_NAME_MAX + 1]);

#endif
