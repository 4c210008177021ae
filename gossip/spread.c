/*
 * spread.c - how news leaves a node (see gossip.h, "The three tools"): the
 * table of hot rumors, the heartbeats relayed on each message, and the
 * bookkeeping of direct mail.  gossip.c decides what is news and when to
 * send; this file keeps what is to be sent, and for how long.
 *
 * Invariants: g->rumors[0 .. nrumors-1] holds at most one rumor per (kind,
 * name), each with left > 0; a refuted one is never picked for a message.
 * Mail: a pending peer is sent the entry when now >= its next time, at most
 * GOSSIP_MAIL_TRIES times.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gossip_internal.h"

/* ---- rumors ---- */

uint32_t gossip_rumor_rounds(size_t n)
{
    double r = ceil(GOSSIP_RUMOR_LAMBDA * log2((double)n + 1.0));

    return r < 2 ? 2 : (uint32_t)r;
}

struct hot *gossip__rumor_find(gossip_t *g, uint32_t kind, const char *name)
{
    size_t i;

    for (i = 0; i < g->nrumors; i++)
        if (g->rumors[i].r.kind == kind && strcmp(g->rumors[i].r.entry.name, name) == 0)
            return &g->rumors[i];
    return NULL;
}

static void rumor_drop(gossip_t *g, struct hot *h)
{
    *h = g->rumors[--g->nrumors];
}

void gossip__rumor_drop_name(gossip_t *g, uint32_t kind, const char *name)
{
    struct hot *h = gossip__rumor_find(g, kind, name);

    if (h != NULL)
        rumor_drop(g, h);
}

/* The member answered: a DOWN rumor about it is false.  It stays in the
 * table, unsent, for twice its life (copies elsewhere were heated later
 * than ours). */
void gossip__rumor_refute(gossip_t *g, const char *name)
{
    struct hot *h = gossip__rumor_find(g, GOSSIP_RUMOR_DOWN, name);

    if (h != NULL && !h->refuted) {
        h->refuted = true;
        h->left = 2 * gossip_rumor_rounds(g->n);
    }
}

/* Makes e news on this node: it rides on the next rumor_rounds() rounds of
 * messages.  A DOWN rumor carries only (name, generation, version,
 * heartbeat). */
void gossip__rumor_heat(gossip_t *g, uint32_t kind, const gossip_member_t *e)
{
    struct hot *h;

    if (g->mode == GOSSIP_MODE_DIGEST)
        return;
    h = gossip__rumor_find(g, kind, e->name);
    if (h == NULL) {
        if (g->nrumors == GOSSIP_MAX_RUMORS) { /* full: the stalest goes */
            size_t i, old = 0;

            for (i = 1; i < g->nrumors; i++)
                if (g->rumors[i].left < g->rumors[old].left)
                    old = i;
            rumor_drop(g, &g->rumors[old]);
            g->stats.rumors_evicted++;
        }
        h = &g->rumors[g->nrumors++];
    }
    memset(&h->r, 0, sizeof(h->r));
    h->refuted = false;
    h->r.kind = kind;
    if (kind == GOSSIP_RUMOR_ENTRY) {
        h->r.entry = *e;
    } else {
        memcpy(h->r.entry.name, e->name, sizeof(h->r.entry.name));
        h->r.entry.generation = e->generation;
        h->r.entry.version = e->version;
        h->r.entry.heartbeat = e->heartbeat;
    }
    h->left = gossip_rumor_rounds(g->n);
}

/* One round passed: every rumor has one round less to live. */
void gossip__rumors_age(gossip_t *g)
{
    size_t i = 0;

    while (i < g->nrumors) {
        if (--g->rumors[i].left == 0)
            rumor_drop(g, &g->rumors[i]);
        else
            i++;
    }
}

static int cmp_hot_left(const void *a, const void *b)
{
    const struct hot *x = *(const struct hot *const *)a;
    const struct hot *y = *(const struct hot *const *)b;

    if (x->left != y->left)
        return x->left > y->left ? -1 : 1;
    return strcmp(x->r.entry.name, y->r.entry.name);
}

/* The rumors for one message: the GOSSIP_MSG_RUMORS freshest, malloc()ed
 * into *out (NULL when none).  -ENOMEM. */
int gossip__rumors_pick(gossip_t *g, gossip_rumor_t **out, size_t *n)
{
    const struct hot *order[GOSSIP_MAX_RUMORS];
    size_t i, k, nhot = 0;

    *out = NULL;
    *n = 0;
    for (i = 0; i < g->nrumors; i++)
        if (!g->rumors[i].refuted)
            order[nhot++] = &g->rumors[i];
    k = nhot < GOSSIP_MSG_RUMORS ? nhot : GOSSIP_MSG_RUMORS;
    if (k == 0)
        return 0;
    qsort(order, nhot, sizeof(order[0]), cmp_hot_left);
    *out = malloc(k * sizeof(**out));
    if (*out == NULL)
        return -ENOMEM;
    for (i = 0; i < k; i++)
        (*out)[i] = order[i]->r;
    *n = k;
    return 0;
}

/* Up to GOSSIP_MSG_HEARTBEATS heartbeats of live members other than self,
 * round-robin over the members, malloc()ed into *out.  -ENOMEM. */
int gossip__heartbeats_pick(gossip_t *g, gossip_digest_t **out, size_t *n)
{
    size_t i, k = 0;

    *out = NULL;
    *n = 0;
    if (g->mode == GOSSIP_MODE_DIGEST || g->n < 2)
        return 0;
    *out = malloc(GOSSIP_MSG_HEARTBEATS * sizeof(**out));
    if (*out == NULL)
        return -ENOMEM;
    for (i = 0; i < g->n && k < GOSSIP_MSG_HEARTBEATS; i++) {
        const struct gmember *m = g->members[(g->hb_cursor + i) % g->n];

        if (m->is_self || !m->alive || m->e.status == GOSSIP_LEFT)
            continue;
        gossip__make_digest(&(*out)[k++], &m->e);
    }
    g->hb_cursor = (g->hb_cursor + i) % g->n;
    if (k == 0) {
        free(*out);
        *out = NULL;
    }
    *n = k;
    return 0;
}

/* ---- direct mail ---- */

/* This node's entry changed: mail it to every known peer (and to the
 * peers learned in the next GOSSIP_MAIL_WINDOW rounds). */
void gossip__mail_start(gossip_t *g, int64_t now)
{
    size_t i;

    if (g->mode == GOSSIP_MODE_DIGEST)
        return;
    g->mail_until = now + (int64_t)GOSSIP_MAIL_WINDOW * g->interval;
    for (i = 0; i < g->n; i++) {
        struct gmember *m = g->members[i];

        m->mail_pending = !m->is_self && m->e.status != GOSSIP_LEFT;
        m->mail_tries = 0;
        m->mail_next = now;
    }
    for (i = 0; i < g->nseeds; i++) {
        g->seedmail[i].pending = true;
        g->seedmail[i].tries = 0;
        g->seedmail[i].next = now;
    }
}

/* Is a pending mail due now?  Expires it after its last try.  Retries wait
 * 1, 2, 4 ... rounds. */
bool gossip__mail_due(gossip_t *g, bool *pending, uint8_t *tries, int64_t next,
                     int64_t now)
{
    if (!*pending || now < next)
        return false;
    if (*tries >= GOSSIP_MAIL_TRIES) {
        *pending = false;
        g->stats.mail_expired++;
        return false;
    }
    return true;
}

int64_t gossip__mail_backoff(const gossip_t *g, uint8_t tries)
{
    return g->interval << (tries - 1);
}
