/*
 * gossip_wire.c - msgpack codec of the gossip messages (see gossip_wire.h).
 *
 * Organisation: the items (digest, entry, rumor), a generic bounded list
 * reader, then one packer and one unpacker per message.  Every unpacker
 * reads into a zeroed struct and frees what it allocated on the first bad
 * field, so a caller never sees half a message.
 */
#include "gossip_wire.h"

#include <stdlib.h>
#include <string.h>

#include "../common/frame.h"

/* ---- items ---- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void gwire_pack_name(msgpack_packer *pk, const char *name)
{
    pack_str(pk, name);
}

bool gwire_unpack_name(const msgpack_object *o, char name[GOSSIP_NAME_MAX + 1])
{
    return mp_str(o, name, GOSSIP_NAME_MAX + 1);
}

void gwire_pack_digest(msgpack_packer *pk, const gossip_digest_t *d)
{
    msgpack_pack_array(pk, 4);
    pack_str(pk, d->name);
    msgpack_pack_int64(pk, d->generation);
    msgpack_pack_uint64(pk, d->version);
    msgpack_pack_uint64(pk, d->heartbeat);
}

bool gwire_unpack_digest(const msgpack_object *o, gossip_digest_t *d)
{
    const msgpack_object *f;
    uint32_t n;

    memset(d, 0, sizeof(*d));
    return mp_array(o, 4, 4, &f, &n) && mp_str(&f[0], d->name, sizeof(d->name)) &&
           mp_i64(&f[1], &d->generation) && mp_u64(&f[2], &d->version) &&
           mp_u64(&f[3], &d->heartbeat);
}

void gwire_pack_entry(msgpack_packer *pk, const gossip_member_t *e)
{
    msgpack_pack_array(pk, 8);
    pack_str(pk, e->name);
    pack_str(pk, e->host);
    msgpack_pack_uint16(pk, e->client_port);
    msgpack_pack_uint16(pk, e->peer_port);
    msgpack_pack_int64(pk, e->generation);
    msgpack_pack_uint64(pk, e->version);
    msgpack_pack_uint32(pk, e->status);
    msgpack_pack_uint64(pk, e->heartbeat);
}

bool gwire_unpack_entry(const msgpack_object *o, gossip_member_t *e)
{
    const msgpack_object *f;
    uint32_t n, cp, pp;

    memset(e, 0, sizeof(*e));
    if (!mp_array(o, 8, 8, &f, &n) || !mp_str(&f[0], e->name, sizeof(e->name)) ||
        !mp_str(&f[1], e->host, sizeof(e->host)) || !mp_u32(&f[2], &cp) ||
        !mp_u32(&f[3], &pp) || cp > 65535 || pp > 65535 ||
        !mp_i64(&f[4], &e->generation) || !mp_u64(&f[5], &e->version) ||
        !mp_u32(&f[6], &e->status) || !mp_u64(&f[7], &e->heartbeat))
        return false;
    e->client_port = (uint16_t)cp;
    e->peer_port = (uint16_t)pp;
    return true;
}

static void pack_rumor(msgpack_packer *pk, const gossip_rumor_t *r)
{
    msgpack_pack_array(pk, 2);
    msgpack_pack_uint32(pk, r->kind);
    if (r->kind == GOSSIP_RUMOR_ENTRY) {
        gwire_pack_entry(pk, &r->entry);
    } else {
        gossip_digest_t d;

        memcpy(d.name, r->entry.name, sizeof(d.name));
        d.generation = r->entry.generation;
        d.version = r->entry.version;
        d.heartbeat = r->entry.heartbeat;
        gwire_pack_digest(pk, &d);
    }
}

static bool unpack_rumor(const msgpack_object *o, gossip_rumor_t *r)
{
    const msgpack_object *f;
    gossip_digest_t d;
    uint32_t n;

    memset(r, 0, sizeof(*r));
    if (!mp_array(o, 2, 2, &f, &n) || !mp_u32(&f[0], &r->kind))
        return false;
    if (r->kind == GOSSIP_RUMOR_ENTRY)
        return gwire_unpack_entry(&f[1], &r->entry);
    if (r->kind != GOSSIP_RUMOR_DOWN || !gwire_unpack_digest(&f[1], &d))
        return false;
    memcpy(r->entry.name, d.name, sizeof(d.name));
    r->entry.generation = d.generation;
    r->entry.version = d.version;
    r->entry.heartbeat = d.heartbeat;
    return true;
}

/* ---- lists ---- */

static bool one_digest(const msgpack_object *o, void *d) { return gwire_unpack_digest(o, d); }
static bool one_entry(const msgpack_object *o, void *e) { return gwire_unpack_entry(o, e); }
static bool one_rumor(const msgpack_object *o, void *r) { return unpack_rumor(o, r); }

static bool one_u64(const msgpack_object *o, void *v)
{
    return mp_u64(o, v);
}

/* An array of at most max items, each read by one() into a malloc()ed
 * array of elem-sized items (NULL when empty); false on any bad item. */
static bool unpack_list(const msgpack_object *o, uint32_t max, size_t elem,
                        bool (*one)(const msgpack_object *, void *), void **out,
                        size_t *n)
{
    const msgpack_object *it;
    uint32_t cnt, i;
    uint8_t *arr;

    *out = NULL;
    *n = 0;
    if (!mp_array(o, 0, max, &it, &cnt))
        return false;
    if (cnt == 0)
        return true;
    arr = calloc(cnt, elem);
    if (arr == NULL)
        return false;
    for (i = 0; i < cnt; i++)
        if (!one(&it[i], arr + i * elem)) {
            free(arr);
            return false;
        }
    *out = arr;
    *n = cnt;
    return true;
}

static void pack_digests(msgpack_packer *pk, const gossip_digest_t *d, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        gwire_pack_digest(pk, &d[i]);
}

static void pack_entries(msgpack_packer *pk, const gossip_member_t *e, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        gwire_pack_entry(pk, &e[i]);
}

static void pack_rumors(msgpack_packer *pk, const gossip_rumor_t *r, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        pack_rumor(pk, &r[i]);
}

/* ---- messages ---- */

void gwire_pack_syn(msgpack_packer *pk, const gossip_syn_t *syn)
{
    msgpack_pack_array(pk, 7);
    gwire_pack_digest(pk, &syn->from);
    msgpack_pack_uint64(pk, syn->summary);
    msgpack_pack_uint32(pk, syn->nbuckets);
    msgpack_pack_uint64(pk, syn->mask);
    pack_digests(pk, syn->digests, syn->ndigests);
    pack_digests(pk, syn->heartbeats, syn->nheartbeats);
    pack_rumors(pk, syn->rumors, syn->nrumors);
}

bool gwire_unpack_syn(const msgpack_object *o, gossip_syn_t *syn)
{
    const msgpack_object *f;
    uint32_t n;

    memset(syn, 0, sizeof(*syn));
    if (!mp_array(o, 7, 7, &f, &n) || !gwire_unpack_digest(&f[0], &syn->from) ||
        !mp_u64(&f[1], &syn->summary) || !mp_u32(&f[2], &syn->nbuckets) ||
        !mp_u64(&f[3], &syn->mask) ||
        !unpack_list(&f[4], GOSSIP_MAX_MEMBERS, sizeof(*syn->digests), one_digest,
                     (void **)&syn->digests, &syn->ndigests) ||
        !unpack_list(&f[5], GOSSIP_MSG_HEARTBEATS, sizeof(*syn->heartbeats), one_digest,
                     (void **)&syn->heartbeats, &syn->nheartbeats) ||
        !unpack_list(&f[6], GOSSIP_MSG_RUMORS, sizeof(*syn->rumors), one_rumor,
                     (void **)&syn->rumors, &syn->nrumors)) {
        gossip_syn_free(syn);
        return false;
    }
    return true;
}

void gwire_pack_ack(msgpack_packer *pk, const gossip_ack_t *ack)
{
    msgpack_pack_array(pk, 6);
    gwire_pack_digest(pk, &ack->from);
    msgpack_pack_array(pk, ack->nbuckets);
    for (size_t i = 0; i < ack->nbuckets; i++)
        msgpack_pack_uint64(pk, ack->buckets[i]);
    pack_entries(pk, ack->entries, ack->nentries);
    pack_digests(pk, ack->requests, ack->nrequests);
    pack_digests(pk, ack->heartbeats, ack->nheartbeats);
    pack_rumors(pk, ack->rumors, ack->nrumors);
}

bool gwire_unpack_ack(const msgpack_object *o, gossip_ack_t *ack)
{
    const msgpack_object *f;
    uint32_t n;

    memset(ack, 0, sizeof(*ack));
    if (!mp_array(o, 6, 6, &f, &n) || !gwire_unpack_digest(&f[0], &ack->from) ||
        !unpack_list(&f[1], GOSSIP_MAX_BUCKETS, sizeof(*ack->buckets), one_u64,
                     (void **)&ack->buckets, &ack->nbuckets) ||
        !unpack_list(&f[2], GOSSIP_MAX_MEMBERS, sizeof(*ack->entries), one_entry,
                     (void **)&ack->entries, &ack->nentries) ||
        !unpack_list(&f[3], GOSSIP_MAX_MEMBERS, sizeof(*ack->requests), one_digest,
                     (void **)&ack->requests, &ack->nrequests) ||
        !unpack_list(&f[4], GOSSIP_MSG_HEARTBEATS, sizeof(*ack->heartbeats), one_digest,
                     (void **)&ack->heartbeats, &ack->nheartbeats) ||
        !unpack_list(&f[5], GOSSIP_MSG_RUMORS, sizeof(*ack->rumors), one_rumor,
                     (void **)&ack->rumors, &ack->nrumors)) {
        gossip_ack_free(ack);
        return false;
    }
    return true;
}

void gwire_pack_ack2(msgpack_packer *pk, const gossip_member_t *entries, size_t n)
{
    pack_entries(pk, entries, n);
}

bool gwire_unpack_ack2(const msgpack_object *o, gossip_ack2_t *ack2)
{
    memset(ack2, 0, sizeof(*ack2));
    return unpack_list(o, GOSSIP_MAX_MEMBERS, sizeof(*ack2->entries), one_entry,
                       (void **)&ack2->entries, &ack2->nentries);
}
