/*
 * object.c - the stored object: version vector + siblings, its msgpack
 * codec and the dotted-version-vector operations (see object.h).
 *
 * Organisation: sibling helpers, life cycle, codec (encode with msgpack-c's
 * packer; decode by a direct, bounded reader of our format's bytes), then
 * the DVV operations (update, sync) and the housekeeping ones (winner,
 * prune, purge).
 *
 * Invariants kept by every function here:
 *   - o->vc covers the dot of every sibling, and dots are unique;
 *   - siblings are sorted by dot (node, then counter), so equal objects
 *     encode to equal bytes; obj_decode sorts input that is not sorted, and
 *     obj_sync does not rely on the order of its inputs;
 *   - a sibling with len == 0 has value NULL.
 * Functions that can fail build the new state aside and commit it only when
 * nothing else can fail, so on error the object is unchanged.
 *
 * Why a direct reader: msgpack-c's unpacker builds an object tree in a
 * zone (several mallocs per record) and allocates an array's element
 * storage when it reads the array header, before the elements, so a 5-byte
 * input claiming 2^32 elements would ask for ~100 GiB.  The reader (rd_*)
 * checks every count against the bytes left before allocating, and costs
 * no allocation but the vector, the sibling array and the values.
 */
#include "object.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on decoded counts: far above what pruning lets exist, far below
 * what could exhaust memory. */
#define OBJ_MAX_VC_ENTRIES 65536u
#define OBJ_MAX_SIBLINGS 65536u

/* ---- sibling helpers ---- */

static int dot_cmp(dot_t a, dot_t b)
{
    if (a.node != b.node)
        return a.node < b.node ? -1 : 1;
    return a.counter < b.counter ? -1 : a.counter > b.counter;
}

static int sib_cmp_dot(const void *pa, const void *pb)
{
    return dot_cmp(((const sibling_t *)pa)->dot, ((const sibling_t *)pb)->dot);
}

static int sibp_cmp_dot(const void *pa, const void *pb)
{
    return dot_cmp((*(const sibling_t *const *)pa)->dot, (*(const sibling_t *const *)pb)->dot);
}

/* The order obj_winner maximises: ts_us, then dot. */
static int sib_cmp_win(const sibling_t *a, const sibling_t *b)
{
    if (a->ts_us != b->ts_us)
        return a->ts_us < b->ts_us ? -1 : 1;
    return dot_cmp(a->dot, b->dot);
}

static int sib_qcmp_win(const void *pa, const void *pb) { return sib_cmp_win(pa, pb); }

/* Make room for want siblings; contents are kept. */
static int sib_reserve(obj_t *o, uint32_t want)
{
    if (want <= o->cap)
        return 0;
    uint64_t cap = o->cap ? (uint64_t)o->cap * 2 : 2;
    if (cap < want)
        cap = want;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    sibling_t *s = realloc(o->sib, (size_t)cap * sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    o->sib = s;
    o->cap = (uint32_t)cap;
    return 0;
}

/* dst = src with its own copy of the value (NULL when empty). */
static int sib_dup(sibling_t *dst, const sibling_t *src)
{
    *dst = *src;
    dst->value = NULL;
    if (src->len == 0)
        return 0;
    dst->value = malloc(src->len);
    if (dst->value == NULL)
        return -ENOMEM;
    memcpy(dst->value, src->value, src->len);
    return 0;
}

/* ---- life cycle ---- */

void obj_init(obj_t *o)
{
    vc_init(&o->vc);
    o->nsib = 0;
    o->cap = 0;
    o->sib = NULL;
    o->stored_hash = 0;
}

void obj_free(obj_t *o)
{
    if (!o->sib && !o->vc.e) { /* an empty object, the common case: nothing to free */
        obj_init(o);
        return;
    }
    for (uint32_t i = 0; i < o->nsib; i++)
        free(o->sib[i].value);
    free(o->sib);
    vc_free(&o->vc);
    obj_init(o);
}

int obj_copy(obj_t *dst, const obj_t *src)
{
    if (dst == src)
        return 0;
    obj_t tmp;
    obj_init(&tmp);
    int rc = vc_copy(&tmp.vc, &src->vc);
    if (rc < 0)
        goto err;
    rc = sib_reserve(&tmp, src->nsib);
    if (rc < 0)
        goto err;
    for (; tmp.nsib < src->nsib; tmp.nsib++) {
        rc = sib_dup(&tmp.sib[tmp.nsib], &src->sib[tmp.nsib]);
        if (rc < 0)
            goto err;
    }
    tmp.stored_hash = src->stored_hash;
    obj_free(dst);
    *dst = tmp;
    return 0;
err:
    obj_free(&tmp);
    return rc;
}

/* ---- encode ---- */

/* What obj_decode would reject, caught before it is written to disk (for
 * instance a vector pruned with vc_prune() below a sibling's dot): a record
 * that cannot be read back would make its key unreadable for good. */
static int check_encodable(const obj_t *o)
{
    for (uint32_t i = 0; i < o->vc.n; i++)
        if (o->vc.e[i].counter == 0 || (i > 0 && o->vc.e[i].node <= o->vc.e[i - 1].node))
            return -EINVAL;
    for (uint32_t i = 0; i < o->nsib; i++) {
        const sibling_t *s = &o->sib[i];
        if (s->dot.counter == 0 || !vc_covers(&o->vc, s->dot) || s->len > UINT32_MAX ||
            (s->len > 0 && s->value == NULL))
            return -EINVAL;
    }
    return 0;
}

int obj_encode(const obj_t *o, uint8_t **out, size_t *outlen)
{
    int rc = check_encodable(o);
    if (rc < 0)
        return rc;
    /* Upper bound of the encoding (headers at most 5 bytes, integers at
     * most 9), so the buffer is allocated once and handed over as is. */
    size_t est = 1 + 5 + 5 + (size_t)o->vc.n * (1 + 9 + 9 + 9) + 5;
    for (uint32_t i = 0; i < o->nsib; i++)
        est += 1 + 9 + 9 + 5 + 9 + 9 + 1 + 5 + o->sib[i].len;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    sb.data = malloc(est);
    if (sb.data == NULL)
        return -ENOMEM;
    sb.alloc = est;
    sb.data[sb.size++] = OBJ_FORMAT_V1;

    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rc |= msgpack_pack_array(&pk, 2);
    rc |= msgpack_pack_array(&pk, o->vc.n);
    for (uint32_t i = 0; i < o->vc.n; i++) {
        const vc_entry_t *e = &o->vc.e[i];
        rc |= msgpack_pack_array(&pk, 3);
        rc |= msgpack_pack_uint64(&pk, e->node);
        rc |= msgpack_pack_uint64(&pk, e->counter);
        rc |= msgpack_pack_int64(&pk, e->ts_us);
    }
    rc |= msgpack_pack_array(&pk, o->nsib);
    for (uint32_t i = 0; i < o->nsib; i++) {
        const sibling_t *s = &o->sib[i];
        rc |= msgpack_pack_array(&pk, 7);
        rc |= msgpack_pack_uint64(&pk, s->dot.node);
        rc |= msgpack_pack_uint64(&pk, s->dot.counter);
        rc |= msgpack_pack_uint32(&pk, s->flags);
        rc |= msgpack_pack_int64(&pk, s->expiry);
        rc |= msgpack_pack_int64(&pk, s->ts_us);
        rc |= s->tombstone ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk);
        rc |= msgpack_pack_bin(&pk, s->len);
        if (s->len)
            rc |= msgpack_pack_bin_body(&pk, s->value, s->len);
    }
    if (rc != 0) {
        msgpack_sbuffer_destroy(&sb);
        return -ENOMEM; /* only the sbuffer's realloc can fail */
    }
    *outlen = sb.size;
    *out = (uint8_t *)msgpack_sbuffer_release(&sb);
    return 0;
}

/* ---- decode ---- */

/* A cursor over the encoded bytes.  The decoder reads our format directly
 * from them: no msgpack object tree, no zone allocation, and nothing is
 * allocated before the bytes it describes are known to be there (a count
 * is checked against the bytes left before its array is allocated, each
 * element needing at least one byte), so a short input claiming 2^32
 * elements allocates nothing.  It accepts exactly what the earlier
 * decoder (msgpack-c's unpacker behind a type pre-scan) accepted: the
 * types of our format only (integers, booleans, bin, arrays), signed
 * integer encodings of non-negative values where unsigned ones are
 * expected (msgpack-c reads those as positive integers too), and no
 * trailing bytes. */
typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
} rd_t;

static uint64_t be_load(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* n more bytes of header or body, or false. */
static bool rd_take(rd_t *r, size_t n, const uint8_t **at)
{
    if (r->len - r->pos < n)
        return false;
    *at = r->p + r->pos;
    r->pos += n;
    return true;
}

static bool rd_byte(rd_t *r, uint8_t *t)
{
    if (r->pos >= r->len)
        return false;
    *t = r->p[r->pos++];
    return true;
}

/* An integer: *neg tells a negative value (in *i) from a non-negative one
 * (in *u), as msgpack-c's positive/negative integer types do. */
static bool rd_int(rd_t *r, bool *neg, uint64_t *u, int64_t *i)
{
    uint8_t t;
    const uint8_t *b;
    if (!rd_byte(r, &t))
        return false;
    *neg = false;
    if (t <= 0x7f) {
        *u = t;
        return true;
    }
    if (t >= 0xe0) {
        *neg = true;
        *i = (int8_t)t;
        return true;
    }
    int n;
    bool sign;
    switch (t) {
    case 0xcc: n = 1; sign = false; break;
    case 0xcd: n = 2; sign = false; break;
    case 0xce: n = 4; sign = false; break;
    case 0xcf: n = 8; sign = false; break;
    case 0xd0: n = 1; sign = true; break;
    case 0xd1: n = 2; sign = true; break;
    case 0xd2: n = 4; sign = true; break;
    case 0xd3: n = 8; sign = true; break;
    default: return false;
    }
    if (!rd_take(r, (size_t)n, &b))
        return false;
    uint64_t v = be_load(b, n);
    if (!sign) {
        *u = v;
        return true;
    }
    int64_t sv = n == 1 ? (int8_t)v : n == 2 ? (int16_t)v : n == 4 ? (int32_t)v : (int64_t)v;
    if (sv < 0) {
        *neg = true;
        *i = sv;
    } else {
        *u = (uint64_t)sv;
    }
    return true;
}

static bool rd_u64(rd_t *r, uint64_t *v)
{
    bool neg;
    int64_t i;
    return rd_int(r, &neg, v, &i) && !neg;
}

static bool rd_i64(rd_t *r, int64_t *v)
{
    bool neg;
    uint64_t u;
    if (!rd_int(r, &neg, &u, v))
        return false;
    if (neg)
        return true;
    if (u > INT64_MAX)
        return false;
    *v = (int64_t)u;
    return true;
}

static bool rd_bool(rd_t *r, bool *v)
{
    uint8_t t;
    if (!rd_byte(r, &t) || (t != 0xc2 && t != 0xc3))
        return false;
    *v = t == 0xc3;
    return true;
}

/* An array header: its element count, at most one per byte left. */
static bool rd_array(rd_t *r, uint32_t *n)
{
    uint8_t t;
    const uint8_t *b;
    if (!rd_byte(r, &t))
        return false;
    if ((t & 0xf0) == 0x90)
        *n = t & 0x0f;
    else if (t == 0xdc && rd_take(r, 2, &b))
        *n = (uint32_t)be_load(b, 2);
    else if (t == 0xdd && rd_take(r, 4, &b))
        *n = (uint32_t)be_load(b, 4);
    else
        return false;
    return *n <= r->len - r->pos;
}

static bool rd_bin(rd_t *r, const uint8_t **p, size_t *n)
{
    uint8_t t;
    const uint8_t *b;
    if (!rd_byte(r, &t) || t < 0xc4 || t > 0xc6)
        return false;
    int hl = t == 0xc4 ? 1 : t == 0xc5 ? 2 : 4;
    if (!rd_take(r, (size_t)hl, &b))
        return false;
    *n = (size_t)be_load(b, hl);
    return rd_take(r, *n, p);
}

static int decode_vc(rd_t *r, vclock_t *vc)
{
    uint32_t n;
    if (!rd_array(r, &n) || n > OBJ_MAX_VC_ENTRIES)
        return -EINVAL;
    if (n == 0)
        return 0;
    vc->e = malloc((size_t)n * sizeof(*vc->e));
    if (vc->e == NULL)
        return -ENOMEM;
    vc->cap = n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t k;
        vc_entry_t *e = &vc->e[i];
        if (!rd_array(r, &k) || k != 3 || !rd_u64(r, &e->node) || !rd_u64(r, &e->counter) ||
            !rd_i64(r, &e->ts_us))
            return -EINVAL;
        /* vclock.c's invariants: sorted unique nodes, no zero counter. */
        if (e->counter == 0 || (i > 0 && e->node <= vc->e[i - 1].node))
            return -EINVAL;
        vc->n = i + 1;
    }
    return 0;
}

static int decode_sib(rd_t *r, const vclock_t *vc, sibling_t *s)
{
    uint32_t k;
    uint64_t flags;
    const uint8_t *v;
    if (!rd_array(r, &k) || k != 7 || !rd_u64(r, &s->dot.node) || !rd_u64(r, &s->dot.counter) ||
        !rd_u64(r, &flags) || flags > UINT32_MAX || !rd_i64(r, &s->expiry) ||
        !rd_i64(r, &s->ts_us) || !rd_bool(r, &s->tombstone) || !rd_bin(r, &v, &s->len))
        return -EINVAL;
    if (s->dot.counter == 0 || !vc_covers(vc, s->dot))
        return -EINVAL;
    s->flags = (uint32_t)flags;
    if (s->len == 0)
        return 0;
    s->value = malloc(s->len);
    if (s->value == NULL) {
        s->len = 0;
        return -ENOMEM;
    }
    memcpy(s->value, v, s->len);
    return 0;
}

int obj_decode(const uint8_t *buf, size_t len, obj_t *o)
{
    obj_t tmp;
    obj_init(&tmp);
    int rc = -EINVAL;
    rd_t r = {buf, len, 1};
    uint32_t n;

    if (len < 1 || buf[0] != OBJ_FORMAT_V1 || !rd_array(&r, &n) || n != 2)
        goto out;
    if ((rc = decode_vc(&r, &tmp.vc)) < 0)
        goto out;
    rc = -EINVAL;
    if (!rd_array(&r, &n) || n > OBJ_MAX_SIBLINGS)
        goto out;
    if ((rc = sib_reserve(&tmp, n)) < 0)
        goto out;
    bool sorted = true;
    for (uint32_t i = 0; i < n; i++) {
        sibling_t *s = &tmp.sib[i];
        memset(s, 0, sizeof(*s));
        rc = decode_sib(&r, &tmp.vc, s);
        tmp.nsib = i + 1; /* s->value is owned by tmp even on failure */
        if (rc < 0)
            goto out;
        if (i > 0 && dot_cmp(tmp.sib[i - 1].dot, s->dot) >= 0)
            sorted = false;
    }
    rc = -EINVAL;
    if (r.pos != len)
        goto out; /* trailing bytes */
    if (!sorted)
        qsort(tmp.sib, tmp.nsib, sizeof(*tmp.sib), sib_cmp_dot);
    for (uint32_t i = 1; i < tmp.nsib; i++)
        if (dot_cmp(tmp.sib[i - 1].dot, tmp.sib[i].dot) == 0)
            goto out; /* the same write twice */
    obj_free(o);
    *o = tmp;
    obj_init(&tmp);
    rc = 0;
out:
    obj_free(&tmp);
    return rc;
}

bool obj_enc_may_purge(const uint8_t *buf, size_t len, int64_t now_us, int64_t flush_us)
{
    int64_t now_s = now_us / 1000000;
    bool flushed = flush_us != 0 && now_us >= flush_us;
    rd_t r = {buf, len, 1};
    uint32_t n, k;
    uint64_t u;
    int64_t i64;
    const uint8_t *v;
    size_t vl;
    if (len < 1 || buf[0] != OBJ_FORMAT_V1 || !rd_array(&r, &n) || n != 2 || !rd_array(&r, &n))
        return true;
    for (uint32_t i = 0; i < n; i++)
        if (!rd_array(&r, &k) || k != 3 || !rd_u64(&r, &u) || !rd_u64(&r, &u) || !rd_i64(&r, &i64))
            return true;
    if (!rd_array(&r, &n))
        return true;
    for (uint32_t i = 0; i < n; i++) {
        int64_t expiry, ts;
        bool tomb;
        if (!rd_array(&r, &k) || k != 7 || !rd_u64(&r, &u) || !rd_u64(&r, &u) ||
            !rd_u64(&r, &u) || !rd_i64(&r, &expiry) || !rd_i64(&r, &ts) || !rd_bool(&r, &tomb) ||
            !rd_bin(&r, &v, &vl))
            return true;
        if (!tomb && ((expiry != 0 && expiry <= now_s) || (flushed && ts <= flush_us)))
            return true;
    }
    return false;
}

/* ---- DVV operations ---- */

int obj_update(obj_t *o, const vclock_t *ctx, uint64_t node, uint64_t min_counter, sibling_t *s,
               int64_t now_us)
{
    uint64_t base = vc_get(&o->vc, node);
    if (ctx != NULL && vc_get(ctx, node) > base)
        base = vc_get(ctx, node);
    if (base == UINT64_MAX)
        return -EOVERFLOW;
    if (s->len > 0 && s->value == NULL)
        return -EINVAL;
    dot_t dot = {.node = node, .counter = base + 1 > min_counter ? base + 1 : min_counter};

    /* Everything that can fail first, on the side. */
    if (o->nsib == UINT32_MAX)
        return -ENOMEM;
    int rc = sib_reserve(o, o->nsib + 1);
    if (rc < 0)
        return rc;
    vclock_t vc;
    vc_init(&vc);
    rc = vc_copy(&vc, &o->vc);
    if (rc == 0 && ctx != NULL)
        rc = vc_merge(&vc, ctx);
    if (rc == 0)
        rc = vc_set(&vc, node, dot.counter, now_us);
    if (rc < 0) {
        vc_free(&vc);
        return rc;
    }

    /* Commit: drop what ctx covers, insert the new sibling in dot order. */
    uint32_t w = 0;
    for (uint32_t r = 0; r < o->nsib; r++) {
        if (ctx != NULL && vc_covers(ctx, o->sib[r].dot)) {
            free(o->sib[r].value);
            continue;
        }
        o->sib[w++] = o->sib[r];
    }
    o->nsib = w;
    uint32_t at = o->nsib;
    while (at > 0 && dot_cmp(o->sib[at - 1].dot, dot) > 0)
        at--;
    memmove(&o->sib[at + 1], &o->sib[at], (size_t)(o->nsib - at) * sizeof(*o->sib));
    o->sib[at] = *s;
    o->sib[at].dot = dot;
    if (o->sib[at].len == 0) {
        free(o->sib[at].value);
        o->sib[at].value = NULL;
    }
    o->nsib++;
    vc_free(&o->vc);
    o->vc = vc;
    s->dot = dot;
    s->value = NULL;
    return 0;
}

/* Siblings of o as pointers sorted by dot (*out malloc'ed; NULL if none). */
/* Up to this many siblings, obj_sync's scratch arrays live on the stack. */
#define SYNC_STACK 8

static int sib_sorted_view(const obj_t *o, const sibling_t ***out, const sibling_t **stack)
{
    *out = NULL;
    if (o->nsib == 0)
        return 0;
    const sibling_t **v = o->nsib <= SYNC_STACK ? stack : malloc((size_t)o->nsib * sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    bool sorted = true;
    for (uint32_t i = 0; i < o->nsib; i++) {
        v[i] = &o->sib[i];
        if (i > 0 && dot_cmp(v[i - 1]->dot, v[i]->dot) >= 0)
            sorted = false;
    }
    if (!sorted)
        qsort(v, o->nsib, sizeof(*v), sibp_cmp_dot);
    *out = v;
    return 0;
}

/* Whether o's siblings are in dot order (they are, but for input built
 * by hand: obj_sync does not rely on it). */
static bool sib_sorted(const obj_t *o)
{
    for (uint32_t i = 1; i < o->nsib; i++)
        if (dot_cmp(o->sib[i - 1].dot, o->sib[i].dot) >= 0)
            return false;
    return true;
}

int obj_sync(obj_t *dst, const obj_t *src)
{
    if (dst == src)
        return 0;
    if (dst->nsib == 0 && dst->vc.n == 0 && sib_sorted(src)) {
        /* into an empty object (the first answer of a read): the union is
         * src itself, which a copy makes with fewer allocations */
        uint64_t h = dst->stored_hash;
        int crc = obj_copy(dst, src);
        dst->stored_hash = h;
        return crc;
    }
    const sibling_t **a = NULL, **b = NULL;
    const sibling_t *a_stack[SYNC_STACK], *b_stack[SYNC_STACK];
    bool flags_stack[3 * SYNC_STACK];
    sibling_t *out = NULL;
    bool *keep = NULL, *copied = NULL;
    uint32_t nout = 0;
    vclock_t vc;
    vc_init(&vc);
    uint64_t cap = (uint64_t)dst->nsib + src->nsib;
    int rc = -ENOMEM;
    if (cap > UINT32_MAX)
        goto out;
    if ((rc = sib_sorted_view(dst, &a, a_stack)) < 0 ||
        (rc = sib_sorted_view(src, &b, b_stack)) < 0)
        goto out;
    rc = -ENOMEM;
    /* One flag array: keep[0..dst->nsib): that dst sibling moved into
     * out; copied[0..cap): out[k] holds a copy of a src value (freed if we
     * fail). */
    if (cap > 0 && (out = malloc(cap * sizeof(*out))) == NULL)
        goto out;
    if (cap > 0 && dst->nsib + cap <= 3 * SYNC_STACK) {
        keep = flags_stack;
        memset(keep, 0, (dst->nsib + cap) * sizeof(*keep));
    } else if (cap > 0 && (keep = calloc(dst->nsib + cap, sizeof(*keep))) == NULL) {
        goto out;
    }
    copied = keep != NULL ? keep + dst->nsib : NULL;

    /* Merge the two dot-sorted lists.  A sibling on one side only survives
     * when the other side has not seen its dot; one on both sides survives
     * once, as dst's copy. */
    uint32_t i = 0, j = 0;
    while (i < dst->nsib || j < src->nsib) {
        int c = i >= dst->nsib ? 1 : j >= src->nsib ? -1 : dot_cmp(a[i]->dot, b[j]->dot);
        if (c <= 0) {
            const sibling_t *s = a[i++];
            if (c == 0 && obj_sib_order(b[j], s) > 0) {
                /* one dot, two contents (written before dots were minted at
                 * the replica): the greater wins on both sides */
                if ((rc = sib_dup(&out[nout], b[j++])) < 0)
                    goto out;
                copied[nout++] = true;
                continue;
            }
            if (c == 0)
                j++;
            if (c == 0 || !vc_covers(&src->vc, s->dot)) {
                out[nout++] = *s;
                keep[s - dst->sib] = true;
            }
        } else {
            const sibling_t *s = b[j++];
            if (!vc_covers(&dst->vc, s->dot)) {
                if ((rc = sib_dup(&out[nout], s)) < 0)
                    goto out;
                copied[nout++] = true;
            }
        }
    }
    /* room for the union at once: vc_merge then never grows it */
    if (dst->vc.n + (uint64_t)src->vc.n > 0) {
        rc = -ENOMEM;
        if ((vc.e = malloc(((size_t)dst->vc.n + src->vc.n) * sizeof(*vc.e))) == NULL)
            goto out;
        vc.cap = dst->vc.n + src->vc.n;
    }
    if ((rc = vc_copy(&vc, &dst->vc)) < 0 || (rc = vc_merge(&vc, &src->vc)) < 0)
        goto out;

    /* Commit: nothing below fails. */
    for (uint32_t k = 0; k < dst->nsib; k++)
        if (!keep[k])
            free(dst->sib[k].value);
    free(dst->sib);
    dst->sib = out;
    dst->nsib = nout;
    dst->cap = (uint32_t)cap;
    vc_free(&dst->vc);
    dst->vc = vc;
    vc_init(&vc);
    out = NULL;
    nout = 0;
    rc = 0;
out:
    for (uint32_t k = 0; k < nout; k++)
        if (copied[k])
            free(out[k].value);
    vc_free(&vc);
    free(out);
    if (keep != flags_stack)
        free(keep);
    if (a != a_stack)
        free(a);
    if (b != b_stack)
        free(b);
    return rc;
}

/* ---- comparison ---- */

int obj_sib_order(const sibling_t *a, const sibling_t *b)
{
    if (a->ts_us != b->ts_us)
        return a->ts_us < b->ts_us ? -1 : 1;
    if (a->tombstone != b->tombstone)
        return a->tombstone ? 1 : -1;
    if (a->flags != b->flags)
        return a->flags < b->flags ? -1 : 1;
    if (a->expiry != b->expiry)
        return a->expiry < b->expiry ? -1 : 1;
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->len ? memcmp(a->value, b->value, a->len) : 0;
}

bool obj_equal(const obj_t *a, const obj_t *b)
{
    if (a->vc.n != b->vc.n || a->nsib != b->nsib)
        return false;
    for (uint32_t i = 0; i < a->vc.n; i++) {
        const vc_entry_t *x = &a->vc.e[i], *y = &b->vc.e[i];
        if (x->node != y->node || x->counter != y->counter || x->ts_us != y->ts_us)
            return false;
    }
    /* both sorted by dot (the invariant above) */
    for (uint32_t i = 0; i < a->nsib; i++)
        if (dot_cmp(a->sib[i].dot, b->sib[i].dot) != 0 || obj_sib_order(&a->sib[i], &b->sib[i]) != 0)
            return false;
    return true;
}

/* ---- housekeeping ---- */

const sibling_t *obj_winner(const obj_t *o)
{
    const sibling_t *w = NULL;
    for (uint32_t i = 0; i < o->nsib; i++)
        if (w == NULL || sib_cmp_win(&o->sib[i], w) > 0)
            w = &o->sib[i];
    return w;
}

uint32_t obj_prune_siblings(obj_t *o, uint32_t max)
{
    if (max == 0)
        max = 1; /* the winner always stays */
    if (o->nsib <= max)
        return 0;
    /* Sort by winner order (the winner ends up last), free the oldest,
     * restore dot order: no allocation, so pruning cannot fail. */
    uint32_t drop = o->nsib - max;
    qsort(o->sib, o->nsib, sizeof(*o->sib), sib_qcmp_win);
    for (uint32_t i = 0; i < drop; i++)
        free(o->sib[i].value);
    memmove(o->sib, o->sib + drop, (size_t)max * sizeof(*o->sib));
    o->nsib = max;
    qsort(o->sib, o->nsib, sizeof(*o->sib), sib_cmp_dot);
    return drop;
}

uint32_t obj_purge(obj_t *o, int64_t now_us, int64_t flush_us)
{
    int64_t now_s = now_us / 1000000;
    bool flushed = flush_us != 0 && now_us >= flush_us;
    uint32_t w = 0, n = o->nsib;
    for (uint32_t r = 0; r < n; r++) {
        const sibling_t *s = &o->sib[r];
        bool dead = !s->tombstone && ((s->expiry != 0 && s->expiry <= now_s) ||
                                      (flushed && s->ts_us <= flush_us));
        if (dead) {
            free(o->sib[r].value);
            continue;
        }
        o->sib[w++] = o->sib[r];
    }
    o->nsib = w;
    return n - w;
}

bool obj_purgeable(const obj_t *o, int64_t now_us, int64_t flush_us)
{
    int64_t now_s = now_us / 1000000;
    bool flushed = flush_us != 0 && now_us >= flush_us;
    for (uint32_t i = 0; i < o->nsib; i++) {
        const sibling_t *s = &o->sib[i];
        if (!s->tombstone &&
            ((s->expiry != 0 && s->expiry <= now_s) || (flushed && s->ts_us <= flush_us)))
            return true;
    }
    return false;
}

bool obj_live(const obj_t *o)
{
    const sibling_t *w = obj_winner(o);
    return w != NULL && !w->tombstone;
}

static bool dot_node_needed(const obj_t *o, uint64_t node)
{
    for (uint32_t i = 0; i < o->nsib; i++)
        if (o->sib[i].dot.node == node)
            return true;
    return false;
}

uint32_t obj_prune_vc(obj_t *o, uint32_t max)
{
    uint32_t dropped = 0;
    while (o->vc.n > max) {
        /* the oldest entry no sibling's dot depends on */
        uint32_t victim = UINT32_MAX;
        for (uint32_t i = 0; i < o->vc.n; i++) {
            const vc_entry_t *e = &o->vc.e[i];
            if (dot_node_needed(o, e->node))
                continue;
            if (victim == UINT32_MAX || e->ts_us < o->vc.e[victim].ts_us ||
                (e->ts_us == o->vc.e[victim].ts_us && e->node < o->vc.e[victim].node))
                victim = i;
        }
        if (victim == UINT32_MAX)
            break;
        memmove(&o->vc.e[victim], &o->vc.e[victim + 1],
                (size_t)(o->vc.n - victim - 1) * sizeof(o->vc.e[0]));
        o->vc.n--;
        dropped++;
    }
    return dropped;
}
