/*
 * ring.c - consistent-hashing ring with virtual nodes (see ring.h).
 *
 * Organisation: ring_build() validates the members, copies their names into
 * one block, hashes every "<name>#<i>" into a temporary array of
 * (token, name, node, vnode) entries, sorts it, keeps only the sorted tokens
 * and their owning nodes, and then precomputes the preference list of every
 * range in one flat array (range i's list at prefs[i * n]).  The lookups
 * below it are a binary search over the tokens plus an index into prefs.
 *
 * Invariants of a built ring: tokens[] is sorted ascending; ties are ordered
 * by node name then vnode index, never by member order; prefs[i * n ..] holds
 * n = min(n requested, node_count) distinct nodes, starting with owner[i];
 * nothing changes after ring_build() returns.
 */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hash.h"

struct ring {
    uint64_t epoch;
    uint32_t node_count;
    uint32_t vnodes;
    uint32_t n;         /* preference list length: min(n, node_count) */
    uint32_t ntokens;   /* node_count * vnodes */
    char **names;       /* [node_count], strings live in name_block */
    char *name_block;
    uint32_t *by_name;  /* node indices sorted by name, for ring_node_index */
    uint64_t *tokens;   /* [ntokens], ascending */
    uint32_t *owner;    /* [ntokens], node of tokens[i] */
    uint32_t *prefs;    /* [ntokens * n] */
};

/* Build-time only: the tie-break needs the name next to the token because
 * qsort() passes no context. */
struct build_token {
    uint64_t token;
    const char *name;
    uint32_t node;
    uint32_t vnode;
};

static int cmp_build_token(const void *a, const void *b)
{
    const struct build_token *x = a, *y = b;
    int c;

    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    c = strcmp(x->name, y->name);
    if (c != 0)
        return c;
    return x->vnode < y->vnode ? -1 : (x->vnode > y->vnode);
}

/* Writes the decimal digits of v at p, returns the count. */
static size_t put_u32(char *p, uint32_t v)
{
    char tmp[10];
    size_t k = 0, i;

    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (i = 0; i < k; i++)
        p[i] = tmp[k - 1 - i];
    return k;
}

/* Validates the arguments of ring_build(); 0 or -EINVAL. Duplicates are
 * found later, once the names are sorted. */
static int check_args(const char *const *names, size_t node_count,
                      uint32_t vnodes, uint32_t n, ring_t **out)
{
    size_t i;

    if (names == NULL || out == NULL || node_count == 0 || vnodes == 0 ||
        n == 0 || n > RING_MAX_N)
        return -EINVAL;
    if (node_count > RING_MAX_TOKENS / vnodes)
        return -EINVAL;
    for (i = 0; i < node_count; i++) {
        if (names[i] == NULL || names[i][0] == '\0' ||
            strnlen(names[i], RING_NAME_MAX + 1) > RING_NAME_MAX)
            return -EINVAL;
    }
    return 0;
}

/* Copies the names into one block and fills ring->names; 0 or -ENOMEM. */
static int copy_names(ring_t *ring, const char *const *names)
{
    size_t total = 0, off = 0, i, len;

    for (i = 0; i < ring->node_count; i++)
        total += strlen(names[i]) + 1;
    ring->names = malloc(ring->node_count * sizeof(*ring->names));
    ring->name_block = malloc(total);
    if (ring->names == NULL || ring->name_block == NULL)
        return -ENOMEM;
    for (i = 0; i < ring->node_count; i++) {
        len = strlen(names[i]) + 1;
        memcpy(ring->name_block + off, names[i], len);
        ring->names[i] = ring->name_block + off;
        off += len;
    }
    return 0;
}

struct name_ref {
    const char *name;
    uint32_t idx;
};

static int cmp_name_ref(const void *a, const void *b)
{
    return strcmp(((const struct name_ref *)a)->name,
                  ((const struct name_ref *)b)->name);
}

/* Fills ring->by_name (node indices sorted by name) and rejects duplicate
 * names; 0, -EINVAL or -ENOMEM. */
static int index_names(ring_t *ring)
{
    struct name_ref *refs;
    uint32_t i;
    int rc = 0;

    refs = malloc(ring->node_count * sizeof(*refs));
    ring->by_name = malloc(ring->node_count * sizeof(*ring->by_name));
    if (refs == NULL || ring->by_name == NULL) {
        free(refs);
        return -ENOMEM;
    }
    for (i = 0; i < ring->node_count; i++) {
        refs[i].name = ring->names[i];
        refs[i].idx = i;
    }
    qsort(refs, ring->node_count, sizeof(*refs), cmp_name_ref);
    for (i = 0; i < ring->node_count; i++) {
        if (i > 0 && strcmp(refs[i - 1].name, refs[i].name) == 0)
            rc = -EINVAL;
        ring->by_name[i] = refs[i].idx;
    }
    free(refs);
    return rc;
}

/* Hashes and sorts every token into ring->tokens / ring->owner; 0 or
 * -ENOMEM. */
static int place_tokens(ring_t *ring)
{
    struct build_token *bt;
    char buf[RING_NAME_MAX + 1 + 10 + 1];
    uint32_t node, v, t = 0;
    size_t len, k;

    bt = malloc((size_t)ring->ntokens * sizeof(*bt));
    ring->tokens = malloc((size_t)ring->ntokens * sizeof(*ring->tokens));
    ring->owner = malloc((size_t)ring->ntokens * sizeof(*ring->owner));
    if (bt == NULL || ring->tokens == NULL || ring->owner == NULL) {
        free(bt);
        return -ENOMEM;
    }
    for (node = 0; node < ring->node_count; node++) {
        len = strlen(ring->names[node]);
        memcpy(buf, ring->names[node], len);
        buf[len] = '#';
        for (v = 0; v < ring->vnodes; v++) {
            k = len + 1 + put_u32(buf + len + 1, v);
            bt[t].token = hash64(buf, k);
            bt[t].name = ring->names[node];
            bt[t].node = node;
            bt[t].vnode = v;
            t++;
        }
    }
    qsort(bt, ring->ntokens, sizeof(*bt), cmp_build_token);
    for (t = 0; t < ring->ntokens; t++) {
        ring->tokens[t] = bt[t].token;
        ring->owner[t] = bt[t].node;
    }
    free(bt);
    return 0;
}

/* Walks clockwise from every token collecting the first n distinct nodes.
 * seen[node] == t + 1 marks node as taken for token t, so the array is
 * never cleared.  0 or -ENOMEM. */
static int fill_prefs(ring_t *ring)
{
    uint32_t *seen, *list;
    uint32_t t, j, got, node;

    ring->prefs = malloc((size_t)ring->ntokens * ring->n * sizeof(*ring->prefs));
    seen = calloc(ring->node_count, sizeof(*seen));
    if (ring->prefs == NULL || seen == NULL) {
        free(seen);
        return -ENOMEM;
    }
    for (t = 0; t < ring->ntokens; t++) {
        list = ring->prefs + (size_t)t * ring->n;
        got = 0;
        /* Terminates: n <= node_count and every node owns a token. */
        for (j = t; got < ring->n; j = (j + 1 == ring->ntokens) ? 0 : j + 1) {
            node = ring->owner[j];
            if (seen[node] == t + 1)
                continue;
            seen[node] = t + 1;
            list[got++] = node;
        }
    }
    free(seen);
    return 0;
}

int ring_build(const char *const *names, size_t node_count, uint32_t vnodes,
               uint32_t n, uint64_t epoch, ring_t **out)
{
    ring_t *ring;
    int rc;

    rc = check_args(names, node_count, vnodes, n, out);
    if (rc != 0)
        return rc;
    ring = calloc(1, sizeof(*ring));
    if (ring == NULL)
        return -ENOMEM;
    ring->epoch = epoch;
    ring->node_count = (uint32_t)node_count;
    ring->vnodes = vnodes;
    ring->n = n < node_count ? n : (uint32_t)node_count;
    ring->ntokens = (uint32_t)node_count * vnodes;

    if ((rc = copy_names(ring, names)) != 0)
        goto err;
    if ((rc = index_names(ring)) != 0)
        goto err;
    if ((rc = place_tokens(ring)) != 0)
        goto err;
    if ((rc = fill_prefs(ring)) != 0)
        goto err;
    *out = ring;
    return 0;

err:
    ring_free(ring);
    return rc;
}

void ring_free(ring_t *ring)
{
    if (ring == NULL)
        return;
    free(ring->names);
    free(ring->name_block);
    free(ring->by_name);
    free(ring->tokens);
    free(ring->owner);
    free(ring->prefs);
    free(ring);
}

uint64_t ring_epoch(const ring_t *ring) { return ring->epoch; }

uint32_t ring_node_count(const ring_t *ring) { return ring->node_count; }

uint32_t ring_vnodes(const ring_t *ring) { return ring->vnodes; }

uint32_t ring_n(const ring_t *ring) { return ring->n; }

const char *ring_node_name(const ring_t *ring, uint32_t idx)
{
    return idx < ring->node_count ? ring->names[idx] : NULL;
}

uint32_t ring_node_index(const ring_t *ring, const char *name)
{
    uint32_t lo = 0, hi = ring->node_count, mid;
    int c;

    if (name == NULL)
        return RING_NODE_NONE;
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        c = strcmp(ring->names[ring->by_name[mid]], name);
        if (c == 0)
            return ring->by_name[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return RING_NODE_NONE;
}

uint64_t ring_key_position(const void *key, size_t len)
{
    return hash64(key, len);
}

size_t ring_range_count(const ring_t *ring) { return ring->ntokens; }

int ring_range(const ring_t *ring, size_t i, uint64_t *start, uint64_t *end,
               const uint32_t **list, uint32_t *len)
{
    if (i >= ring->ntokens)
        return -EINVAL;
    if (start != NULL)
        *start = ring->tokens[i == 0 ? ring->ntokens - 1 : i - 1];
    if (end != NULL)
        *end = ring->tokens[i];
    if (list != NULL)
        *list = ring->prefs + i * ring->n;
    if (len != NULL)
        *len = ring->n;
    return 0;
}

size_t ring_range_of(const ring_t *ring, uint64_t pos)
{
    size_t lo = 0, hi = ring->ntokens, mid;

    /* Lower bound: the first token >= pos, so of tied tokens the first one,
     * whose range is the non-empty one. */
    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        if (ring->tokens[mid] < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == ring->ntokens ? 0 : lo;
}

uint32_t ring_preflist(const ring_t *ring, const void *key, size_t len,
                       const uint32_t **list)
{
    size_t i = ring_range_of(ring, ring_key_position(key, len));

    *list = ring->prefs + i * ring->n;
    return ring->n;
}

static bool list_has(const uint32_t *list, uint32_t len, uint32_t node)
{
    uint32_t i;

    for (i = 0; i < len; i++)
        if (list[i] == node)
            return true;
    return false;
}

int ring_preflist_healthy(const ring_t *ring, const void *key, size_t len,
                          const bool *down, ring_replica_t *out, size_t cap)
{
    uint32_t subs[RING_MAX_N];
    const uint32_t *owners;
    uint32_t ndown = 0, nsubs = 0, k, node, t, steps;
    size_t i;
    int count = 0;

    if (out == NULL || cap < ring->n)
        return -EINVAL;
    i = ring_range_of(ring, ring_key_position(key, len));
    owners = ring->prefs + i * ring->n;
    if (down != NULL)
        for (k = 0; k < ring->n; k++)
            if (down[owners[k]])
                ndown++;

    /* Substitutes come after the owners in clockwise order, so walking from
     * the range's own token and skipping owners finds them in order. */
    t = (uint32_t)i;
    for (steps = 0; nsubs < ndown && steps < ring->ntokens; steps++) {
        node = ring->owner[t];
        if (!down[node] && !list_has(owners, ring->n, node) &&
            !list_has(subs, nsubs, node))
            subs[nsubs++] = node;
        t = (t + 1 == ring->ntokens) ? 0 : t + 1;
    }

    /* Emit in owner order: each down owner's slot gets its substitute. */
    ndown = 0;
    for (k = 0; k < ring->n; k++) {
        node = owners[k];
        if (down == NULL || !down[node]) {
            out[count].node = node;
            out[count].hint_for = RING_NODE_NONE;
            count++;
        } else if (ndown < nsubs) {
            out[count].node = subs[ndown++];
            out[count].hint_for = node;
            count++;
        }
    }
    return count;
}

bool ring_replicates_range(const ring_t *ring, uint32_t idx, size_t i)
{
    if (i >= ring->ntokens || idx >= ring->node_count)
        return false;
    return list_has(ring->prefs + i * ring->n, ring->n, idx);
}

bool ring_replicates_key(const ring_t *ring, uint32_t idx, const void *key,
                         size_t len)
{
    return ring_replicates_range(
        ring, idx, ring_range_of(ring, ring_key_position(key, len)));
}
