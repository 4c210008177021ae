/*
 * msg.c - the inter-node messages (see msg.h): one encoder and one decoder
 * per (type, direction), side by side, and the table that lists them.
 *
 * Organisation: packing and reading helpers; then one section per message
 * family (status, ping and gossip, replica, coordinator, flush,
 * anti-entropy), each with its encoders and decoders next to each other so
 * a field added to one is seen in the other; then the table and the three
 * entry points.
 *
 * Invariants: a decoder either succeeds with every field checked, or fails;
 * msg_decode() then runs the row's free function on what it half-filled
 * (the union is zeroed first and every free function takes a zeroed or
 * partly filled struct), so a failed decode leaves nothing to free.  Decoders never trust a count: lists are
 * bounded here, and the frame parser's mp_validate() has already checked
 * that every declared length fits in the bytes received.
 */
#include "msg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/frame.h"
#include "kv.h"

/* ---- helpers ---- */

static int pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    return msgpack_pack_bin(pk, n) | msgpack_pack_bin_body(pk, n ? p : "", n);
}

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

/* An object as a bin of its encoding; -EINVAL when it does not encode. */
static int pack_obj(msgpack_packer *pk, const obj_t *o)
{
    uint8_t *enc = NULL;
    size_t len = 0;
    if (obj_encode(o, &enc, &len) < 0)
        return -EINVAL;
    int rc = pack_bin(pk, enc, len);
    free(enc);
    return rc;
}

static bool get_key(const msgpack_object *m, const uint8_t **key, size_t *klen)
{
    return mp_bin(m, key, klen, MC_KEY_MAX) && *klen > 0;
}

/* A bin holding an encoded object: decoded into *o, and the bytes kept. */
static bool get_obj(const msgpack_object *m, obj_t *o, const uint8_t **enc, size_t *len)
{
    const uint8_t *p;
    size_t n;
    if (!mp_bin(m, &p, &n, SIZE_MAX) || obj_decode(p, n, o) < 0)
        return false;
    if (enc) {
        *enc = p;
        *len = n;
    }
    return true;
}

static int status_of(int packer_rc) { return packer_rc ? -ENOMEM : 0; }

/* ---- status [code] ---- */

static int enc_status(msgpack_packer *pk, const void *m)
{
    const msg_status_t *s = m;
    return status_of(msgpack_pack_array(pk, 1) | msgpack_pack_int64(pk, s->code));
}

bool msg_decode_status(const msgpack_object *body, int64_t *code)
{
    const msgpack_object *it;
    uint32_t n;
    return mp_array(body, 1, 1, &it, &n) && mp_i64(&it[0], code);
}

static bool dec_status(const msgpack_object *body, msg_any_t *out)
{
    return msg_decode_status(body, &out->status.code);
}

/* ---- PING, gossip ---- */

static int enc_ping(msgpack_packer *pk, const void *m)
{
    return status_of(pack_str(pk, ((const msg_ping_t *)m)->name));
}

static bool dec_ping(const msgpack_object *body, msg_any_t *out)
{
    return mp_str(body, out->ping.name, sizeof(out->ping.name));
}

static int pack_digest(msgpack_packer *pk, const gossip_digest_t *d)
{
    return msgpack_pack_array(pk, 4) | pack_str(pk, d->name) |
           msgpack_pack_int64(pk, d->generation) | msgpack_pack_uint64(pk, d->version) |
           msgpack_pack_uint64(pk, d->heartbeat);
}

static bool unpack_digest(const msgpack_object *o, void *out)
{
    gossip_digest_t *d = out;
    const msgpack_object *f;
    uint32_t n;
    return mp_array(o, 4, 4, &f, &n) && mp_str(&f[0], d->name, sizeof(d->name)) &&
           mp_i64(&f[1], &d->generation) && mp_u64(&f[2], &d->version) &&
           mp_u64(&f[3], &d->heartbeat);
}

static int pack_entry(msgpack_packer *pk, const gossip_member_t *e)
{
    return msgpack_pack_array(pk, 11) | pack_str(pk, e->name) | pack_str(pk, e->host) |
           msgpack_pack_uint16(pk, e->client_port) | msgpack_pack_uint16(pk, e->peer_port) |
           msgpack_pack_int64(pk, e->generation) | msgpack_pack_uint64(pk, e->version) |
           msgpack_pack_uint32(pk, e->status) | msgpack_pack_uint64(pk, e->heartbeat) |
           msgpack_pack_uint64(pk, e->ring_epoch) | msgpack_pack_uint32(pk, e->xfer) |
           msgpack_pack_uint32(pk, e->flags);
}

static bool unpack_entry(const msgpack_object *o, void *out)
{
    gossip_member_t *e = out;
    const msgpack_object *f;
    uint32_t n, cp, pp;
    /* 8 fields, or 11 with the membership-change fields (an 8-field entry
     * has them zero) */
    if (!mp_array(o, 8, 11, &f, &n) || (n != 8 && n != 11) ||
        !mp_str(&f[0], e->name, sizeof(e->name)) ||
        !mp_str(&f[1], e->host, sizeof(e->host)) || !mp_u32(&f[2], &cp) ||
        !mp_u32(&f[3], &pp) || cp > 65535 || pp > 65535 || !mp_i64(&f[4], &e->generation) ||
        !mp_u64(&f[5], &e->version) || !mp_u32(&f[6], &e->status) ||
        !mp_u64(&f[7], &e->heartbeat))
        return false;
    e->ring_epoch = 0;
    e->xfer = e->flags = 0;
    if (n == 11 && (!mp_u64(&f[8], &e->ring_epoch) || !mp_u32(&f[9], &e->xfer) ||
                    !mp_u32(&f[10], &e->flags)))
        return false;
    e->client_port = (uint16_t)cp;
    e->peer_port = (uint16_t)pp;
    return true;
}

/* A rumor: [0, entry] or [1, digest]; a DOWN rumor keeps only the digest's
 * fields in its entry. */
static int pack_rumor(msgpack_packer *pk, const gossip_rumor_t *r)
{
    int rc = msgpack_pack_array(pk, 2) | msgpack_pack_uint32(pk, r->kind);
    if (r->kind == GOSSIP_RUMOR_ENTRY)
        return rc | pack_entry(pk, &r->entry);
    gossip_digest_t d;
    memcpy(d.name, r->entry.name, sizeof(d.name));
    d.generation = r->entry.generation;
    d.version = r->entry.version;
    d.heartbeat = r->entry.heartbeat;
    return rc | pack_digest(pk, &d);
}

static bool unpack_rumor(const msgpack_object *o, void *out)
{
    gossip_rumor_t *r = out;
    const msgpack_object *f;
    gossip_digest_t d;
    uint32_t n;
    if (!mp_array(o, 2, 2, &f, &n) || !mp_u32(&f[0], &r->kind))
        return false;
    if (r->kind == GOSSIP_RUMOR_ENTRY)
        return unpack_entry(&f[1], &r->entry);
    if (r->kind != GOSSIP_RUMOR_DOWN || !unpack_digest(&f[1], &d))
        return false;
    memcpy(r->entry.name, d.name, sizeof(d.name));
    r->entry.generation = d.generation;
    r->entry.version = d.version;
    r->entry.heartbeat = d.heartbeat;
    return true;
}

static bool unpack_u64(const msgpack_object *o, void *out)
{
    return mp_u64(o, out);
}

/* An array of at most max items, each read by one() into a calloc'ed array
 * of elem-sized items (NULL when empty); false on any bad item (nothing
 * kept). */
static bool unpack_list(const msgpack_object *o, uint32_t max, size_t elem,
                        bool (*one)(const msgpack_object *, void *), void **out, size_t *n)
{
    const msgpack_object *it;
    uint32_t cnt;
    *out = NULL;
    *n = 0;
    if (!mp_array(o, 0, max, &it, &cnt))
        return false;
    if (cnt == 0)
        return true;
    uint8_t *arr = calloc(cnt, elem);
    if (!arr)
        return false;
    for (uint32_t i = 0; i < cnt; i++)
        if (!one(&it[i], arr + i * elem)) {
            free(arr);
            return false;
        }
    *out = arr;
    *n = cnt;
    return true;
}

static int pack_digests(msgpack_packer *pk, const gossip_digest_t *d, size_t n)
{
    int rc = msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= pack_digest(pk, &d[i]);
    return rc;
}

static int pack_entries(msgpack_packer *pk, const gossip_member_t *e, size_t n)
{
    int rc = msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= pack_entry(pk, &e[i]);
    return rc;
}

static int pack_rumors(msgpack_packer *pk, const gossip_rumor_t *r, size_t n)
{
    int rc = msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= pack_rumor(pk, &r[i]);
    return rc;
}

static int enc_syn(msgpack_packer *pk, const void *m)
{
    const gossip_syn_t *s = m;
    return status_of(msgpack_pack_array(pk, 7) | pack_digest(pk, &s->from) |
                     msgpack_pack_uint64(pk, s->summary) | msgpack_pack_uint32(pk, s->nbuckets) |
                     msgpack_pack_uint64(pk, s->mask) | pack_digests(pk, s->digests, s->ndigests) |
                     pack_digests(pk, s->heartbeats, s->nheartbeats) |
                     pack_rumors(pk, s->rumors, s->nrumors));
}

static bool dec_syn(const msgpack_object *body, msg_any_t *out)
{
    gossip_syn_t *s = &out->syn;
    const msgpack_object *f;
    uint32_t n;
    return mp_array(body, 7, 7, &f, &n) && unpack_digest(&f[0], &s->from) &&
           mp_u64(&f[1], &s->summary) && mp_u32(&f[2], &s->nbuckets) && mp_u64(&f[3], &s->mask) &&
           unpack_list(&f[4], GOSSIP_MAX_MEMBERS, sizeof(gossip_digest_t), unpack_digest,
                       (void **)&s->digests, &s->ndigests) &&
           unpack_list(&f[5], GOSSIP_MSG_HEARTBEATS, sizeof(gossip_digest_t), unpack_digest,
                       (void **)&s->heartbeats, &s->nheartbeats) &&
           unpack_list(&f[6], GOSSIP_MSG_RUMORS, sizeof(gossip_rumor_t), unpack_rumor,
                       (void **)&s->rumors, &s->nrumors);
}

/* free() as gossip_syn_free() does (gossip.h allows a decoder its own
 * malloc), so this file links without the gossip module (fuzz target). */
static void free_syn(msg_any_t *m)
{
    free(m->syn.digests);
    free(m->syn.heartbeats);
    free(m->syn.rumors);
    memset(&m->syn, 0, sizeof(m->syn));
}

static int enc_ack(msgpack_packer *pk, const void *m)
{
    const gossip_ack_t *a = m;
    int rc = msgpack_pack_array(pk, 6) | pack_digest(pk, &a->from) |
             msgpack_pack_array(pk, a->nbuckets);
    for (size_t i = 0; i < a->nbuckets; i++)
        rc |= msgpack_pack_uint64(pk, a->buckets[i]);
    return status_of(rc | pack_entries(pk, a->entries, a->nentries) |
                     pack_digests(pk, a->requests, a->nrequests) |
                     pack_digests(pk, a->heartbeats, a->nheartbeats) |
                     pack_rumors(pk, a->rumors, a->nrumors));
}

static bool dec_ack(const msgpack_object *body, msg_any_t *out)
{
    gossip_ack_t *a = &out->ack;
    const msgpack_object *f;
    uint32_t n;
    return mp_array(body, 6, 6, &f, &n) && unpack_digest(&f[0], &a->from) &&
           unpack_list(&f[1], GOSSIP_MAX_BUCKETS, sizeof(uint64_t), unpack_u64,
                       (void **)&a->buckets, &a->nbuckets) &&
           unpack_list(&f[2], GOSSIP_MAX_MEMBERS, sizeof(gossip_member_t), unpack_entry,
                       (void **)&a->entries, &a->nentries) &&
           unpack_list(&f[3], GOSSIP_MAX_MEMBERS, sizeof(gossip_digest_t), unpack_digest,
                       (void **)&a->requests, &a->nrequests) &&
           unpack_list(&f[4], GOSSIP_MSG_HEARTBEATS, sizeof(gossip_digest_t), unpack_digest,
                       (void **)&a->heartbeats, &a->nheartbeats) &&
           unpack_list(&f[5], GOSSIP_MSG_RUMORS, sizeof(gossip_rumor_t), unpack_rumor,
                       (void **)&a->rumors, &a->nrumors);
}

static void free_ack(msg_any_t *m)
{
    free(m->ack.buckets);
    free(m->ack.entries);
    free(m->ack.requests);
    free(m->ack.heartbeats);
    free(m->ack.rumors);
    memset(&m->ack, 0, sizeof(m->ack));
}

static int enc_ack2(msgpack_packer *pk, const void *m)
{
    const gossip_ack2_t *a = m;
    return status_of(pack_entries(pk, a->entries, a->nentries));
}

static bool dec_ack2(const msgpack_object *body, msg_any_t *out)
{
    return unpack_list(body, GOSSIP_MAX_MEMBERS, sizeof(gossip_member_t), unpack_entry,
                       (void **)&out->ack2.entries, &out->ack2.nentries);
}

static void free_ack2(msg_any_t *m)
{
    free(m->ack2.entries);
    memset(&m->ack2, 0, sizeof(m->ack2));
}

static int enc_mail(msgpack_packer *pk, const void *m)
{
    return status_of(pack_entry(pk, m));
}

static bool dec_mail(const msgpack_object *body, msg_any_t *out)
{
    return unpack_entry(body, &out->mail);
}

static int enc_mail_ack(msgpack_packer *pk, const void *m)
{
    return status_of(pack_digest(pk, m));
}

static bool dec_mail_ack(const msgpack_object *body, msg_any_t *out)
{
    return unpack_digest(body, &out->mail_ack);
}

/* ---- replica: REPLICA_GET, REPLICA_PUT ---- */

static int enc_rget(msgpack_packer *pk, const void *m)
{
    const msg_replica_get_t *g = m;
    return status_of(msgpack_pack_array(pk, 2) | pack_bin(pk, g->key, g->klen) |
                     pack_str(pk, g->hint));
}

static bool dec_rget(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *it;
    uint32_t n;
    msg_replica_get_t *g = &out->rget;
    return mp_array(body, 2, 2, &it, &n) && get_key(&it[0], &g->key, &g->klen) &&
           mp_str(&it[1], g->hint, sizeof(g->hint));
}

static int enc_rgot(msgpack_packer *pk, const void *m)
{
    const msg_replica_got_t *g = m;
    int rc = msgpack_pack_array(pk, 2) | msgpack_pack_int64(pk, g->code);
    if (rc)
        return -ENOMEM;
    return g->has_obj ? pack_obj(pk, &g->obj) : status_of(msgpack_pack_nil(pk));
}

int msg_rgot_head(msgpack_sbuffer *sb, size_t enclen)
{
    msgpack_packer pk;
    sb->size = 0;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return status_of(msgpack_pack_array(&pk, 2) | msgpack_pack_int64(&pk, 0) |
                     msgpack_pack_bin(&pk, enclen));
}

static bool dec_rgot(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *it;
    uint32_t n;
    msg_replica_got_t *g = &out->rgot;
    if (!mp_array(body, 2, 2, &it, &n) || !mp_i64(&it[0], &g->code))
        return false;
    if (it[1].type == MSGPACK_OBJECT_NIL)
        return g->code != 0; /* found needs its object */
    if (g->code != 0 || !get_obj(&it[1], &g->obj, NULL, NULL))
        return false;
    g->has_obj = true;
    return true;
}

static void free_rgot(msg_any_t *m) { obj_free(&m->rgot.obj); }

static int pack_rput_head(msgpack_packer *pk, const void *key, size_t klen, const char *hint)
{
    return status_of(msgpack_pack_array(pk, 3) | pack_bin(pk, key, klen) | pack_str(pk, hint));
}

static int enc_rput(msgpack_packer *pk, const void *m)
{
    const msg_replica_put_t *p = m;
    if (pack_rput_head(pk, p->key, p->klen, p->hint))
        return -ENOMEM;
    if (p->enc)
        return status_of(pack_bin(pk, p->enc, p->enclen));
    return p->obj_in ? pack_obj(pk, p->obj_in) : -EINVAL;
}

int msg_rput_head(msgpack_sbuffer *sb, const void *key, size_t klen, const char *hint,
                  size_t enclen)
{
    msgpack_packer pk;
    sb->size = 0;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return pack_rput_head(&pk, key, klen, hint) ? -ENOMEM
                                                : status_of(msgpack_pack_bin(&pk, enclen));
}

static bool dec_rput(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *it;
    uint32_t n;
    msg_replica_put_t *p = &out->rput;
    return mp_array(body, 3, 3, &it, &n) && get_key(&it[0], &p->key, &p->klen) &&
           mp_str(&it[1], p->hint, sizeof(p->hint)) && get_obj(&it[2], &p->obj, &p->enc, &p->enclen);
}

static void free_rput(msg_any_t *m) { obj_free(&m->rput.obj); }

/* ---- COORD_WRITE ---- */

static bool write_cmd(uint32_t cmd)
{
    switch (cmd) {
    case MC_SET: case MC_ADD: case MC_REPLACE: case MC_APPEND: case MC_PREPEND: case MC_CAS:
    case MC_DELETE: case MC_INCR: case MC_DECR: case MC_TOUCH: case MC_GAT: case MC_GATS:
        return true;
    default:
        return false;
    }
}

#define MSG_QUORUM_MAX 16 /* config.c bounds cluster.n to 16 */

static int enc_cw(msgpack_packer *pk, const void *m)
{
    const msg_coord_write_t *w = m;
    int rc = msgpack_pack_array(pk, w->has_ctx ? 10 : 9) | pack_bin(pk, w->key, w->klen) |
             msgpack_pack_uint32(pk, w->cmd) | msgpack_pack_uint32(pk, w->flags) |
             msgpack_pack_int64(pk, w->expiry) | pack_bin(pk, w->data, w->dlen) |
             msgpack_pack_uint64(pk, w->cas) | msgpack_pack_uint64(pk, w->delta) |
             msgpack_pack_int64(pk, w->r) | msgpack_pack_int64(pk, w->w);
    if (rc)
        return -ENOMEM;
    if (!w->has_ctx)
        return 0;
    size_t need = vc_format(&w->ctx, NULL, 0) + 1;
    char *txt = malloc(need);
    if (!txt)
        return -ENOMEM;
    vc_format(&w->ctx, txt, need);
    rc = pack_str(pk, txt);
    free(txt);
    return status_of(rc);
}

/* A context: nil, or vc_format's text (bounded). */
static bool get_ctx(const msgpack_object *m, vclock_t *ctx, bool *has)
{
    const uint8_t *p;
    size_t len;
    if (m->type == MSGPACK_OBJECT_NIL)
        return true;
    if (!mp_bin(m, &p, &len, MSG_CTX_MAX) ||
        vc_parse((const char *)p, len, MSG_CTX_ENTRIES, ctx) < 0)
        return false;
    *has = true;
    return true;
}

static bool dec_cw(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *it;
    uint32_t n;
    msg_coord_write_t *w = &out->cw;
    vc_init(&w->ctx);
    bool ok = mp_array(body, 9, 10, &it, &n) && get_key(&it[0], &w->key, &w->klen) &&
              mp_u32(&it[1], &w->cmd) && write_cmd(w->cmd) && mp_u32(&it[2], &w->flags) &&
              mp_i64(&it[3], &w->expiry) && mp_bin(&it[4], &w->data, &w->dlen, SIZE_MAX) &&
              mp_u64(&it[5], &w->cas) && mp_u64(&it[6], &w->delta) && mp_i64(&it[7], &w->r) &&
              mp_i64(&it[8], &w->w) && w->r >= 1 && w->r <= MSG_QUORUM_MAX && w->w >= 1 &&
              w->w <= MSG_QUORUM_MAX && (n == 9 || get_ctx(&it[9], &w->ctx, &w->has_ctx));
    if (!ok) {
        vc_free(&w->ctx);
        w->has_ctx = false;
    }
    return ok;
}

static void free_cw(msg_any_t *m) { vc_free(&m->cw.ctx); }

static int enc_cdone(msgpack_packer *pk, const void *m)
{
    const msg_coord_done_t *d = m;
    int rc = msgpack_pack_array(pk, 6) | msgpack_pack_int64(pk, d->status) |
             msgpack_pack_int64(pk, d->got) | msgpack_pack_int64(pk, d->needed) |
             msgpack_pack_uint64(pk, d->result) | msgpack_pack_uint64(pk, d->number);
    if (rc)
        return -ENOMEM;
    if (d->has_obj)
        return pack_obj(pk, d->obj_in ? d->obj_in : &d->obj);
    return status_of(msgpack_pack_nil(pk));
}

static bool dec_cdone(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *it;
    uint32_t n;
    msg_coord_done_t *d = &out->cdone;
    if (!mp_array(body, 6, 6, &it, &n) || !mp_i64(&it[0], &d->status) ||
        !mp_i64(&it[1], &d->got) || !mp_i64(&it[2], &d->needed) || !mp_u64(&it[3], &d->result) ||
        !mp_u64(&it[4], &d->number) || d->result > KV_NOMEM)
        return false;
    if (it[5].type == MSGPACK_OBJECT_NIL)
        return true;
    if (!get_obj(&it[5], &d->obj, NULL, NULL))
        return false;
    d->has_obj = true;
    return true;
}

static void free_cdone(msg_any_t *m) { obj_free(&m->cdone.obj); }

/* ---- FLUSH ---- */

static int enc_flush(msgpack_packer *pk, const void *m)
{
    return status_of(msgpack_pack_array(pk, 1) |
                     msgpack_pack_int64(pk, ((const msg_flush_t *)m)->when));
}

static bool dec_flush(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *it;
    uint32_t n;
    return mp_array(body, 1, 1, &it, &n) && mp_i64(&it[0], &out->flush.when);
}

/* ---- anti-entropy ---- */

static int pack_head(msgpack_packer *pk, const msg_aae_t *a, size_t fields)
{
    return msgpack_pack_array(pk, 3 + fields) | msgpack_pack_uint64(pk, a->ring) |
           msgpack_pack_uint64(pk, a->start) | msgpack_pack_uint64(pk, a->end);
}

/* The head and the request's own fields (exactly `fields` more). */
static bool get_head(const msgpack_object *body, msg_aae_t *a, uint32_t fields,
                     const msgpack_object **rest)
{
    const msgpack_object *it;
    uint32_t n;
    if (!mp_array(body, 3 + fields, 3 + fields, &it, &n) || !mp_u64(&it[0], &a->ring) ||
        !mp_u64(&it[1], &a->start) || !mp_u64(&it[2], &a->end))
        return false;
    *rest = it + 3;
    return true;
}

/* An answer: [0, fields...] with exactly `fields` more, or a refusal
 * [code != 0] (*rest NULL then). */
static bool get_answer(const msgpack_object *body, msg_aae_t *a, uint32_t fields,
                       const msgpack_object **rest)
{
    const msgpack_object *it;
    uint32_t n;
    *rest = NULL;
    if (!mp_array(body, 1, 1 + fields, &it, &n) || !mp_i64(&it[0], &a->code))
        return false;
    if (n == 1)
        return a->code != 0;
    if (n != 1 + fields || a->code != 0)
        return false;
    *rest = it + 1;
    return true;
}

static void free_aae(msg_any_t *m)
{
    msg_aae_t *a = &m->aae;
    for (uint32_t i = 0; i < a->nitems; i++)
        obj_free(&a->items[i].obj);
    free(a->items);
    free(a->idx);
    free(a->hashes);
    free(a->agree);
    memset(a, 0, sizeof(*a));
}

static int pack_u64s(msgpack_packer *pk, const uint64_t *v, size_t n)
{
    int rc = msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_uint64(pk, v[i]);
    return rc;
}

/* An array of n_min..n_max u64 into a malloc'ed array. */
static bool get_u64s(const msgpack_object *m, uint32_t n_min, uint32_t n_max, uint64_t **out,
                     uint32_t *n)
{
    const msgpack_object *it;
    if (!mp_array(m, n_min, n_max, &it, n))
        return false;
    if (*n == 0)
        return true;
    *out = malloc(*n * sizeof(**out));
    if (!*out)
        return false;
    for (uint32_t i = 0; i < *n; i++)
        if (!mp_u64(&it[i], &(*out)[i])) {
            free(*out);
            *out = NULL;
            return false;
        }
    return true;
}

/* 1..limit indices, strictly ascending, each below limit: the tree shape
 * (32 branches, 1024 segments), so a request can never address outside
 * the tree nor make the answer repeat itself. */
static bool get_indices(const msgpack_object *m, uint32_t limit, uint32_t **out, uint32_t *n)
{
    const msgpack_object *it;
    if (!mp_array(m, 1, limit, &it, n))
        return false;
    uint32_t *v = malloc(*n * sizeof(*v));
    if (!v)
        return false;
    for (uint32_t i = 0; i < *n; i++)
        if (!mp_u32(&it[i], &v[i]) || v[i] >= limit || (i > 0 && v[i] <= v[i - 1])) {
            free(v);
            return false;
        }
    *out = v;
    return true;
}

static int pack_indices(msgpack_packer *pk, const uint32_t *v, size_t n)
{
    int rc = msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_uint32(pk, v[i]);
    return rc;
}

/* [[key, hash]...] */
static int pack_key_hashes(msgpack_packer *pk, const msg_aae_item_t *v, size_t n)
{
    int rc = msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        rc |= msgpack_pack_array(pk, 2) | pack_bin(pk, v[i].key, v[i].klen) |
              msgpack_pack_uint64(pk, v[i].hash);
    return rc;
}

static bool get_key_hashes(const msgpack_object *m, uint32_t n_min, uint32_t n_max,
                           msg_aae_t *a)
{
    const msgpack_object *it;
    uint32_t n;
    if (!mp_array(m, n_min, n_max, &it, &n))
        return false;
    if (n == 0)
        return true;
    a->items = calloc(n, sizeof(*a->items));
    if (!a->items)
        return false;
    a->nitems = n;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *f;
        uint32_t k;
        msg_aae_item_t *x = &a->items[i];
        if (!mp_array(&it[i], 2, 2, &f, &k) || !get_key(&f[0], &x->key, &x->klen) ||
            !mp_u64(&f[1], &x->hash))
            return false; /* the caller frees */
    }
    return true;
}

/* [[key, object | nil]...] */
static int pack_objects(msgpack_packer *pk, const msg_aae_item_t *v, size_t n)
{
    int rc = msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        rc |= msgpack_pack_array(pk, 2) | pack_bin(pk, v[i].key, v[i].klen);
        rc |= v[i].enc ? pack_bin(pk, v[i].enc, v[i].enclen) : msgpack_pack_nil(pk);
    }
    return rc;
}

static bool get_objects(const msgpack_object *m, uint32_t n_min, uint32_t n_max, msg_aae_t *a)
{
    const msgpack_object *it;
    uint32_t n;
    if (!mp_array(m, n_min, n_max, &it, &n))
        return false;
    if (n == 0)
        return true;
    a->items = calloc(n, sizeof(*a->items));
    if (!a->items)
        return false;
    a->nitems = n;
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object *f;
        uint32_t k;
        msg_aae_item_t *x = &a->items[i];
        if (!mp_array(&it[i], 2, 2, &f, &k) || !get_key(&f[0], &x->key, &x->klen))
            return false;
        if (f[1].type == MSGPACK_OBJECT_NIL)
            continue;
        if (!get_obj(&f[1], &x->obj, &x->enc, &x->enclen))
            return false;
        x->hash = tictac_key_hash(x->key, x->klen, x->enc, x->enclen);
    }
    return true;
}

static int enc_root(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    return status_of(pack_head(pk, a, 1) | msgpack_pack_uint64(pk, a->root));
}

static bool dec_root(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    return get_head(body, &out->aae, 1, &r) && mp_u64(&r[0], &out->aae.root);
}

static int enc_root_rep(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    if (a->code != 0)
        return enc_status(pk, &(msg_status_t){a->code});
    if (a->nhashes != 0 && a->nhashes != TICTAC_BRANCHES)
        return -EINVAL;
    int rc = msgpack_pack_array(pk, 3) | msgpack_pack_int64(pk, 0) |
             msgpack_pack_uint64(pk, a->root);
    rc |= a->nhashes ? pack_u64s(pk, a->hashes, a->nhashes) : msgpack_pack_nil(pk);
    return status_of(rc);
}

static bool dec_root_rep(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    msg_aae_t *a = &out->aae;
    if (!get_answer(body, a, 2, &r))
        return false;
    if (r == NULL)
        return true;
    if (!mp_u64(&r[0], &a->root))
        return false;
    if (r[1].type == MSGPACK_OBJECT_NIL)
        return true;
    return get_u64s(&r[1], TICTAC_BRANCHES, TICTAC_BRANCHES, &a->hashes, &a->nhashes);
}

static int enc_leaves(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    return status_of(pack_head(pk, a, 1) | pack_indices(pk, a->idx, a->nidx));
}

static bool dec_leaves(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    return get_head(body, &out->aae, 1, &r) &&
           get_indices(&r[0], TICTAC_BRANCHES, &out->aae.idx, &out->aae.nidx);
}

static int enc_leaves_rep(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    if (a->code != 0)
        return enc_status(pk, &(msg_status_t){a->code});
    return status_of(msgpack_pack_array(pk, 2) | msgpack_pack_int64(pk, 0) |
                     pack_u64s(pk, a->hashes, a->nhashes));
}

static bool dec_leaves_rep(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    msg_aae_t *a = &out->aae;
    if (!get_answer(body, a, 1, &r))
        return false;
    if (r == NULL)
        return true;
    return get_u64s(&r[0], TICTAC_LEAVES, TICTAC_SEGMENTS, &a->hashes, &a->nhashes) &&
                         a->nhashes % TICTAC_LEAVES == 0;
}

static int enc_keys(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    return status_of(pack_head(pk, a, 1) | pack_indices(pk, a->idx, a->nidx));
}

static bool dec_keys(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    return get_head(body, &out->aae, 1, &r) &&
           get_indices(&r[0], TICTAC_SEGMENTS, &out->aae.idx, &out->aae.nidx);
}

static int enc_keys_rep(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    if (a->code != 0)
        return enc_status(pk, &(msg_status_t){a->code});
    return status_of(msgpack_pack_array(pk, 3) | msgpack_pack_int64(pk, 0) |
                     msgpack_pack_uint32(pk, a->count) |
                     pack_key_hashes(pk, a->items, a->nitems));
}

static bool dec_keys_rep(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    msg_aae_t *a = &out->aae;
    if (!get_answer(body, a, 2, &r))
        return false;
    if (r == NULL)
        return true;
    return mp_u32(&r[0], &a->count) && a->count <= TICTAC_SEGMENTS &&
                         get_key_hashes(&r[1], 0, MSG_AAE_KEYS_MAX, a);
}

static int enc_sync(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    return status_of(pack_head(pk, a, 1) | pack_objects(pk, a->items, a->nitems));
}

static bool dec_sync(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    if (!get_head(body, &out->aae, 1, &r))
        return false;
    return get_objects(&r[0], 1, MSG_AAE_SYNC_MAX, &out->aae);
}

static int enc_sync_rep(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    if (a->code != 0)
        return enc_status(pk, &(msg_status_t){a->code});
    return status_of(msgpack_pack_array(pk, 2) | msgpack_pack_int64(pk, 0) |
                     pack_objects(pk, a->items, a->nitems));
}

static bool dec_sync_rep(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    msg_aae_t *a = &out->aae;
    if (!get_answer(body, a, 1, &r))
        return false;
    if (r == NULL)
        return true;
    return get_objects(&r[0], 0, MSG_AAE_SYNC_MAX, a);
}

static int enc_gc(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    return status_of(pack_head(pk, a, 1) | pack_key_hashes(pk, a->items, a->nitems));
}

static bool dec_gc(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    if (!get_head(body, &out->aae, 1, &r))
        return false;
    return get_key_hashes(&r[0], 1, MSG_AAE_GC_MAX, &out->aae);
}

static int enc_gc_check_rep(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    if (a->code != 0)
        return enc_status(pk, &(msg_status_t){a->code});
    int rc = msgpack_pack_array(pk, 2) | msgpack_pack_int64(pk, 0) |
             msgpack_pack_array(pk, a->nagree);
    for (uint32_t i = 0; i < a->nagree; i++)
        rc |= a->agree[i] ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    return status_of(rc);
}

static bool dec_gc_check_rep(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r, *it;
    msg_aae_t *a = &out->aae;
    if (!get_answer(body, a, 1, &r))
        return false;
    if (r == NULL)
        return true;
    if (!mp_array(&r[0], 0, MSG_AAE_GC_MAX, &it, &a->nagree))
        return false;
    if (a->nagree == 0)
        return true;
    a->agree = calloc(a->nagree, sizeof(*a->agree));
    bool ok = a->agree != NULL;
    for (uint32_t i = 0; ok && i < a->nagree; i++)
        ok = mp_bool(&it[i], &a->agree[i]);
    return ok;
}

static int enc_gc_purge_rep(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    if (a->code != 0)
        return enc_status(pk, &(msg_status_t){a->code});
    return status_of(msgpack_pack_array(pk, 2) | msgpack_pack_int64(pk, 0) |
                     msgpack_pack_uint32(pk, a->count));
}

static bool dec_gc_purge_rep(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    msg_aae_t *a = &out->aae;
    if (!get_answer(body, a, 1, &r))
        return false;
    return r == NULL || (mp_u32(&r[0], &a->count) && a->count <= MSG_AAE_GC_MAX);
}

/* ---- the table ---- */

static void free_none(msg_any_t *m) { (void)m; }

/* ---- range transfers and the join check ---- */

static int enc_xpull(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    int rc = pack_head(pk, a, 3) | msgpack_pack_uint64(pk, a->has_cursor ? a->ctoken : 0);
    rc |= a->has_cursor ? pack_bin(pk, a->ckey, a->cklen) : msgpack_pack_nil(pk);
    return status_of(rc | msgpack_pack_uint32(pk, a->count));
}

static bool dec_xpull(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    msg_aae_t *a = &out->aae;
    if (!get_head(body, a, 3, &r) || !mp_u64(&r[0], &a->ctoken) || !mp_u32(&r[2], &a->count))
        return false;
    if (r[1].type == MSGPACK_OBJECT_NIL)
        return a->ctoken == 0;
    a->has_cursor = true;
    return get_key(&r[1], &a->ckey, &a->cklen);
}

static int enc_xpull_rep(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    if (a->code != 0)
        return enc_status(pk, &(msg_status_t){a->code});
    return status_of(msgpack_pack_array(pk, 4) | msgpack_pack_int64(pk, 0) |
                     (a->count ? msgpack_pack_true(pk) : msgpack_pack_false(pk)) |
                     msgpack_pack_uint64(pk, a->estimate) |
                     pack_objects(pk, a->items, a->nitems));
}

static bool dec_xpull_rep(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    msg_aae_t *a = &out->aae;
    if (!get_answer(body, a, 3, &r))
        return false;
    if (r == NULL)
        return true;
    if (r[0].type != MSGPACK_OBJECT_BOOLEAN || !mp_u64(&r[1], &a->estimate))
        return false;
    a->count = r[0].via.boolean;
    if (!get_objects(&r[2], 0, MSG_XFER_MAX, a))
        return false;
    for (uint32_t i = 0; i < a->nitems; i++) /* a page holds objects, never nil */
        if (a->items[i].enc == NULL)
            return false;
    return true;
}

static int enc_xpush(msgpack_packer *pk, const void *m)
{
    const msg_aae_t *a = m;
    return status_of(pack_head(pk, a, 1) | pack_objects(pk, a->items, a->nitems));
}

static bool dec_xpush(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *r;
    msg_aae_t *a = &out->aae;
    if (!get_head(body, a, 1, &r) || !get_objects(&r[0], 1, MSG_XFER_MAX, a))
        return false;
    for (uint32_t i = 0; i < a->nitems; i++)
        if (a->items[i].enc == NULL)
            return false;
    return true;
}

static int enc_join(msgpack_packer *pk, const void *m)
{
    return status_of(pack_entry(pk, m));
}

static bool dec_join(const msgpack_object *body, msg_any_t *out)
{
    return unpack_entry(body, &out->join);
}

static int enc_join_ok(msgpack_packer *pk, const void *m)
{
    const msg_join_ok_t *j = m;
    return status_of(msgpack_pack_array(pk, 3) | msgpack_pack_int64(pk, j->code) |
                     pack_str(pk, j->reason) | msgpack_pack_uint64(pk, j->epoch));
}

static bool dec_join_ok(const msgpack_object *body, msg_any_t *out)
{
    const msgpack_object *f;
    uint32_t n;
    msg_join_ok_t *j = &out->join_ok;
    return mp_array(body, 3, 3, &f, &n) && mp_i64(&f[0], &j->code) && j->code >= MSG_JOIN_OK &&
           j->code <= MSG_JOIN_GONE && mp_str(&f[1], j->reason, sizeof(j->reason)) &&
           mp_u64(&f[2], &j->epoch);
}

static const msg_def_t defs[] = {
    {MSG_PING, MSG_REQ, "ping", enc_ping, dec_ping, free_none},
    {MSG_PING, MSG_REP, "ping reply", enc_ping, dec_ping, free_none},
    {MSG_GOSSIP_SYN, MSG_REQ, "gossip syn", enc_syn, dec_syn, free_syn},
    {MSG_GOSSIP_ACK, MSG_REP, "gossip ack", enc_ack, dec_ack, free_ack},
    {MSG_GOSSIP_ACK2, MSG_REQ, "gossip ack2", enc_ack2, dec_ack2, free_ack2},
    {MSG_GOSSIP_MAIL, MSG_REQ, "gossip mail", enc_mail, dec_mail, free_none},
    {MSG_GOSSIP_MAIL, MSG_REP, "gossip mail answer", enc_mail_ack, dec_mail_ack, free_none},
    {MSG_REPLICA_GET, MSG_REQ, "replica get", enc_rget, dec_rget, free_none},
    {MSG_REPLICA_GET, MSG_REP, "replica get reply", enc_rgot, dec_rgot, free_rgot},
    {MSG_REPLICA_PUT, MSG_REQ, "replica put", enc_rput, dec_rput, free_rput},
    {MSG_REPLICA_PUT, MSG_REP, "replica put reply", enc_status, dec_status, free_none},
    {MSG_COORD_WRITE, MSG_REQ, "coord write", enc_cw, dec_cw, free_cw},
    {MSG_COORD_WRITE, MSG_REP, "coord write reply", enc_cdone, dec_cdone, free_cdone},
    {MSG_FLUSH, MSG_REQ, "flush", enc_flush, dec_flush, free_none},
    {MSG_FLUSH, MSG_REP, "flush reply", enc_status, dec_status, free_none},
    {MSG_AAE_ROOT, MSG_REQ, "aae root", enc_root, dec_root, free_aae},
    {MSG_AAE_ROOT, MSG_REP, "aae root reply", enc_root_rep, dec_root_rep, free_aae},
    {MSG_AAE_LEAVES, MSG_REQ, "aae leaves", enc_leaves, dec_leaves, free_aae},
    {MSG_AAE_LEAVES, MSG_REP, "aae leaves reply", enc_leaves_rep, dec_leaves_rep, free_aae},
    {MSG_AAE_KEYS, MSG_REQ, "aae keys", enc_keys, dec_keys, free_aae},
    {MSG_AAE_KEYS, MSG_REP, "aae keys reply", enc_keys_rep, dec_keys_rep, free_aae},
    {MSG_AAE_SYNC, MSG_REQ, "aae sync", enc_sync, dec_sync, free_aae},
    {MSG_AAE_SYNC, MSG_REP, "aae sync reply", enc_sync_rep, dec_sync_rep, free_aae},
    {MSG_AAE_GC_CHECK, MSG_REQ, "aae gc check", enc_gc, dec_gc, free_aae},
    {MSG_AAE_GC_CHECK, MSG_REP, "aae gc check reply", enc_gc_check_rep, dec_gc_check_rep,
     free_aae},
    {MSG_AAE_GC_PURGE, MSG_REQ, "aae gc purge", enc_gc, dec_gc, free_aae},
    {MSG_AAE_GC_PURGE, MSG_REP, "aae gc purge reply", enc_gc_purge_rep, dec_gc_purge_rep,
     free_aae},
    {MSG_XFER_PULL, MSG_REQ, "transfer pull", enc_xpull, dec_xpull, free_aae},
    {MSG_XFER_PULL, MSG_REP, "transfer page", enc_xpull_rep, dec_xpull_rep, free_aae},
    {MSG_XFER_PUSH, MSG_REQ, "transfer push", enc_xpush, dec_xpush, free_aae},
    {MSG_XFER_PUSH, MSG_REP, "transfer push reply", enc_status, dec_status, free_none},
    {MSG_JOIN_CHECK, MSG_REQ, "join check", enc_join, dec_join, free_none},
    {MSG_JOIN_CHECK, MSG_REP, "join check answer", enc_join_ok, dec_join_ok, free_none},
};

size_t msg_def_count(void) { return sizeof(defs) / sizeof(defs[0]); }

const msg_def_t *msg_def_at(size_t i) { return i < msg_def_count() ? &defs[i] : NULL; }

const msg_def_t *msg_def(uint8_t type, enum msg_dir dir)
{
    for (size_t i = 0; i < msg_def_count(); i++)
        if (defs[i].type == type && defs[i].dir == dir)
            return &defs[i];
    return NULL;
}

int msg_encode(msgpack_sbuffer *sb, uint8_t type, enum msg_dir dir, const void *m)
{
    const msg_def_t *d = msg_def(type, dir);
    if (!d)
        return -ENOENT;
    msgpack_packer pk;
    sb->size = 0;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return d->encode(&pk, m);
}

int msg_decode(uint8_t type, enum msg_dir dir, const msgpack_object *body, msg_any_t *out)
{
    memset(out, 0, sizeof(*out));
    const msg_def_t *d = msg_def(type, dir);
    if (!d)
        return -ENOENT;
    if (!d->decode(body, out)) {
        d->free(out); /* what a decoder left half-filled */
        memset(out, 0, sizeof(*out));
        return -EINVAL;
    }
    return 0;
}

void msg_free(uint8_t type, enum msg_dir dir, msg_any_t *m)
{
    const msg_def_t *d = msg_def(type, dir);
    if (d)
        d->free(m);
}

typedef struct fixed_out {
    uint8_t *p;
    size_t len, cap;
} fixed_out_t;

static int fixed_out_write(void *data, const char *buf, size_t len)
{
    fixed_out_t *f = data;
    if (f->cap - f->len < len)
        return -1;
    memcpy(f->p + f->len, buf, len);
    f->len += len;
    return 0;
}

size_t msg_status_body(uint8_t buf[MSG_STATUS_MAX], int64_t code)
{
    msg_status_t s = {code};
    fixed_out_t out = {buf, 0, MSG_STATUS_MAX};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &out, fixed_out_write);
    return enc_status(&pk, &s) == 0 ? out.len : 0; /* [int64] always fits */
}

int msg_encode_status(msgpack_sbuffer *sb, int64_t code)
{
    msg_status_t s = {code};
    msgpack_packer pk;
    sb->size = 0;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return enc_status(&pk, &s);
}
