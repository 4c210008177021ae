/*
 * topo.c - the cluster's members and ring as the client parses them from
 * `members` and `ring` replies (see client_internal.h).
 *
 * The client never rebuilds the ring from member names: it takes the
 * ranges and preference lists the server prints and only hashes keys,
 * with the servers' own hash (common/hash.c), then looks the position up
 * exactly as ring/ring.c's ring_range_of() does.  So the two agree by
 * construction as long as the ring text is what the server holds;
 * tests/unit/test_client_ring.c checks it for many keys.
 *
 * Replies are untrusted: every field is checked, counts are bounded, and
 * a ring whose ranges do not tile the token space is refused.
 */
#include "client_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/hash.h"

uint64_t topo_key_position(const void *key, size_t len)
{
    return hash64(key, len);
}

/* Next line of a '\n'-separated body: [*p, eol); advances *p. */
static bool next_line(const char **p, const char **s, size_t *len)
{
    if (**p == '\0')
        return false;
    const char *e = strchr(*p, '\n');
    *s = *p;
    *len = e ? (size_t)(e - *p) : strlen(*p);
    *p = e ? e + 1 : *p + *len;
    return true;
}

/* Split [s, s+len) on single spaces into at most max tokens. */
static size_t split(const char *s, size_t len, const char **tok, size_t *tlen, size_t max)
{
    size_t n = 0, i = 0;
    while (i < len && n < max) {
        while (i < len && s[i] == ' ')
            i++;
        if (i == len)
            break;
        size_t b = i;
        while (i < len && s[i] != ' ')
            i++;
        tok[n] = s + b;
        tlen[n] = i - b;
        n++;
    }
    return n;
}

static bool tok_eq(const char *t, size_t len, const char *w)
{
    return strlen(w) == len && memcmp(t, w, len) == 0;
}

bool client_parse_u64(const char *t, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(t[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool valid_name(const char *t, size_t len)
{
    if (len == 0 || len > QKV_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] <= ' ' || t[i] == 0x7f || t[i] == ',')
            return false;
    return true;
}

int topo_parse_members(const char *text, qmember_t **out, size_t *n, char *err)
{
    const char *p = text, *s;
    size_t len, cnt = 0, cap = 0;
    qmember_t *m = NULL;

    while (next_line(&p, &s, &len)) {
        const char *tok[6];
        size_t tl[6];
        if (split(s, len, tok, tl, 6) < 4 || !valid_name(tok[0], tl[0]) ||
            tl[1] > QKV_NAME_MAX + 6 || !memchr(tok[1], ':', tl[1])) {
            free(m);
            return client_fail(err, QKV_ERR_PROTO, "bad members line '%.*s'", (int)(len < 80 ? len : 80), s);
        }
        if (cnt == QKV_MAX_NODES) {
            free(m);
            return client_fail(err, QKV_ERR_PROTO, "more than %d members", QKV_MAX_NODES);
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            qmember_t *nm = realloc(m, cap * sizeof(*m));
            if (!nm) {
                free(m);
                return client_fail(err, QKV_ERR_NOMEM, "out of memory");
            }
            m = nm;
        }
        qmember_t *e = &m[cnt++];
        memcpy(e->name, tok[0], tl[0]);
        e->name[tl[0]] = '\0';
        memcpy(e->addr, tok[1], tl[1]);
        e->addr[tl[1]] = '\0';
        if (tok_eq(tok[3], tl[3], "up"))
            e->state = QNODE_UP;
        else if (tok_eq(tok[3], tl[3], "down"))
            e->state = QNODE_DOWN;
        else if (tok_eq(tok[3], tl[3], "joining"))
            e->state = QNODE_JOINING;
        else if (tok_eq(tok[3], tl[3], "leaving"))
            e->state = QNODE_LEAVING;
        else
            e->state = QNODE_DOWN; /* a state this client does not know: do not route to it */
    }
    *out = m;
    *n = cnt;
    return 0;
}

void topo_ring_free(qring_t *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nnames; i++)
        free(r->names[i]);
    free(r->names);
    free(r->ends);
    free(r->lists);
    free(r);
}

/* Index of name in r->names, adding it; -1 on overflow or no memory. */
static int name_index(qring_t *r, const char *t, size_t len, size_t *cap)
{
    for (size_t i = 0; i < r->nnames; i++)
        if (strlen(r->names[i]) == len && memcmp(r->names[i], t, len) == 0)
            return (int)i;
    if (r->nnames == QKV_MAX_NODES)
        return -1;
    if (r->nnames == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        char **nn = realloc(r->names, nc * sizeof(*nn));
        if (!nn)
            return -1;
        r->names = nn;
        *cap = nc;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, t, len);
    copy[len] = '\0';
    r->names[r->nnames] = copy;
    return (int)r->nnames++;
}

int topo_parse_ring(const char *text, qring_t **out, char *err)
{
    const char *p = text, *s;
    size_t len, lines = 0, names_cap = 0;
    qring_t *r = calloc(1, sizeof(*r));
    uint64_t *starts = NULL;
    int rc = QKV_ERR_NOMEM;

    if (!r)
        return client_fail(err, QKV_ERR_NOMEM, "out of memory");
    for (const char *q = text; *q; q++)
        lines += *q == '\n';
    lines += text[0] != '\0' && text[strlen(text) - 1] != '\n';
    if (lines == 0 || lines > QKV_MAX_RANGES) {
        topo_ring_free(r);
        return client_fail(err, QKV_ERR_PROTO, "ring reply has %zu ranges", lines);
    }
    r->n = QKV_MAX_N;
    r->ends = malloc(lines * sizeof(*r->ends));
    starts = malloc(lines * sizeof(*starts));
    r->lists = malloc(lines * QKV_MAX_N * sizeof(*r->lists));
    if (!r->ends || !starts || !r->lists)
        goto fail;
    uint32_t longest = 0;
    while (next_line(&p, &s, &len)) {
        const char *tok[4];
        size_t tl[4];
        size_t i = r->nranges;
        if (split(s, len, tok, tl, 4) != 3 || !client_parse_u64(tok[0], tl[0], &starts[i]) ||
            !client_parse_u64(tok[1], tl[1], &r->ends[i]))
            goto bad_line;
        uint16_t *list = r->lists + i * QKV_MAX_N;
        uint32_t k = 0;
        const char *nm = tok[2], *end = tok[2] + tl[2];
        while (nm <= end) {
            const char *comma = memchr(nm, ',', (size_t)(end - nm));
            size_t nl = comma ? (size_t)(comma - nm) : (size_t)(end - nm);
            if (!valid_name(nm, nl) || k == QKV_MAX_N)
                goto bad_line;
            int idx = name_index(r, nm, nl, &names_cap);
            if (idx < 0) {
                rc = r->nnames == QKV_MAX_NODES ? QKV_ERR_PROTO : QKV_ERR_NOMEM;
                client_fail(err, rc, "too many ring nodes or out of memory");
                goto fail_msg;
            }
            for (uint32_t j = 0; j < k; j++)
                if (list[j] == idx)
                    goto bad_line; /* a node twice in one list */
            list[k++] = (uint16_t)idx;
            if (!comma)
                break;
            nm = comma + 1;
        }
        for (uint32_t j = k; j < QKV_MAX_N; j++)
            list[j] = QRING_NONE;
        if (k > longest)
            longest = k;
        r->nranges++;
        continue;
    bad_line:
        rc = client_fail(err, QKV_ERR_PROTO, "bad ring line '%.*s'", (int)(len < 80 ? len : 80), s);
        goto fail_msg;
    }
    /* the ranges must tile the ring: range i starts where i-1 ends, range 0
     * where the last ends, and ends ascend (ties are empty ranges) */
    for (size_t i = 0; i < r->nranges; i++) {
        uint64_t prev = r->ends[i == 0 ? r->nranges - 1 : i - 1];
        if (starts[i] != prev || (i > 0 && r->ends[i] < r->ends[i - 1])) {
            rc = client_fail(err, QKV_ERR_PROTO, "ring ranges do not tile the ring at range %zu", i);
            goto fail_msg;
        }
    }
    /* compact the lists to the longest preference list */
    if (longest < QKV_MAX_N) {
        for (size_t i = 0; i < r->nranges; i++)
            memmove(r->lists + i * longest, r->lists + i * QKV_MAX_N, longest * sizeof(*r->lists));
        r->n = longest;
    }
    free(starts);
    *out = r;
    return 0;
fail:
    client_fail(err, rc, "out of memory");
fail_msg:
    free(starts);
    topo_ring_free(r);
    return rc;
}

size_t topo_range_of(const qring_t *r, uint64_t pos)
{
    size_t lo = 0, hi = r->nranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->ends[mid] < pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == r->nranges ? 0 : lo;
}
