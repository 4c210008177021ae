/*
 * phi.c - the phi-accrual failure detector (Hayashibara et al.; the form
 * used by Akka and Cassandra), see gossip.h.
 *
 * Organisation: gossip_phi_normal() is the formula; a gossip_fd_t is a ring
 * buffer of the last `window` heartbeat inter-arrival times with running
 * integer sums of the samples and of their squares, so mean and variance
 * are O(1) and exact.  The buffer starts small and doubles until it holds
 * `window` samples: a node of a large cluster keeps one detector per member
 * and most of them see a sample every few seconds, so a full 1000-sample
 * buffer each (4 KB) would be memory spent on nothing (a simulation of 1000
 * nodes in one process keeps a million of them).
 *
 * The formula: with y = (t - mean) / stddev, Akka approximates the normal
 * CDF by the logistic 1 / (1 + e^-z), z = y (1.5976 + 0.070566 y^2), so
 * phi = -log10(1 - F) = log10(1 + e^z) = softplus(z) / ln 10.  Written as
 * softplus it neither underflows (1 - F == 0 would make phi infinite once
 * t is a few dozen stddevs past the mean) nor overflows (e^z for large z).
 *
 * Invariants: 1 <= n <= cap <= window (a reset leaves one bootstrap
 * sample); until the buffer first wraps around, the samples are
 * samples[0 .. n-1] in order, so growing it is one realloc; sum and sumsq are the
 * exact sums over the n samples in the buffer; every sample is in
 * 1..max_sample <= 10^7, so sumsq <= 65536 * 10^14 fits 64 bits.
 */
#include "gossip.h"
#include "gossip_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#define FD_WINDOW_MAX 65536u
#define FD_SAMPLE_MAX 10000000 /* ms; keeps sumsq within 64 bits */
#define FD_FIRST_CAP 8u

struct gossip_fd {
    uint32_t window; /* samples kept at most */
    uint32_t cap;    /* slots in samples[] (grows up to window) */
    uint32_t n;      /* samples held */
    uint32_t head;   /* next slot to write */
    double min_stddev;
    int64_t max_sample;
    int64_t last;    /* last arrival, ms */
    uint64_t sum, sumsq;
    uint32_t *samples;
};

double gossip_phi_normal(double elapsed_ms, double mean_ms, double stddev_ms)
{
    double y = (elapsed_ms - mean_ms) / stddev_ms;
    double z = y * (1.5976 + 0.070566 * y * y);
    double sp = z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));

    return sp / M_LN10;
}

int gossip_fd_new(uint32_t window, double min_stddev_ms, int64_t max_sample_ms,
                  gossip_fd_t **out)
{
    gossip_fd_t *fd;

    if (out == NULL || window == 0 || window > FD_WINDOW_MAX ||
        !(min_stddev_ms > 0) || !isfinite(min_stddev_ms) ||
        max_sample_ms < 1 || max_sample_ms > FD_SAMPLE_MAX)
        return -EINVAL;
    fd = malloc(sizeof(*fd));
    if (fd == NULL)
        return -ENOMEM;
    fd->cap = window < FD_FIRST_CAP ? window : FD_FIRST_CAP;
    fd->samples = malloc((size_t)fd->cap * sizeof(fd->samples[0]));
    if (fd->samples == NULL) {
        free(fd);
        return -ENOMEM;
    }
    fd->window = window;
    fd->min_stddev = min_stddev_ms;
    fd->max_sample = max_sample_ms;
    gossip_fd_reset(fd, (int64_t)(2 * min_stddev_ms), 0);
    *out = fd;
    return 0;
}

void gossip_fd_free(gossip_fd_t *fd)
{
    if (fd != NULL)
        free(fd->samples);
    free(fd);
}

static void fd_add(gossip_fd_t *fd, uint32_t sample)
{
    if (fd->n == fd->cap && fd->cap < fd->window && fd->head == 0) {
        /* Full but below the window, and not yet wrapped around (it wraps
         * only if a growth failed): the samples are in order in [0, n), so
         * after growing the next slot is n.  Out of memory: keep the
         * smaller window and overwrite the oldest sample. */
        uint32_t cap = fd->cap > fd->window / 2 ? fd->window : 2 * fd->cap;
        uint32_t *p = realloc(fd->samples, (size_t)cap * sizeof(*p));

        if (p != NULL) {
            fd->samples = p;
            fd->cap = cap;
            fd->head = fd->n;
        }
    }
    if (fd->n == fd->cap) {
        uint32_t old = fd->samples[fd->head];
        fd->sum -= old;
        fd->sumsq -= (uint64_t)old * old;
    } else {
        fd->n++;
    }
    fd->samples[fd->head] = sample;
    fd->head = (fd->head + 1) % fd->cap;
    fd->sum += sample;
    fd->sumsq += (uint64_t)sample * sample;
}

void gossip_fd_reset(gossip_fd_t *fd, int64_t first_estimate_ms, int64_t now_ms)
{
    if (first_estimate_ms < 1)
        first_estimate_ms = 1;
    if (first_estimate_ms > fd->max_sample)
        first_estimate_ms = fd->max_sample;
    fd->n = 0;
    fd->head = 0;
    fd->sum = 0;
    fd->sumsq = 0;
    fd_add(fd, (uint32_t)first_estimate_ms);
    fd->last = now_ms;
}

void gossip_fd_heartbeat(gossip_fd_t *fd, int64_t now_ms)
{
    /* Two arrivals in the same ms (an ACK and an ACK2 handled together)
     * are one arrival, not a zero-length interval that would shrink the
     * mean; an interval beyond max_sample is downtime, not jitter
     * (Cassandra ignores those too). */
    if (now_ms > fd->last && now_ms - fd->last <= fd->max_sample)
        fd_add(fd, (uint32_t)(now_ms - fd->last));
    if (now_ms > fd->last)
        fd->last = now_ms;
}

double gossip_fd_phi(const gossip_fd_t *fd, int64_t now_ms)
{
    double mean = (double)fd->sum / fd->n;
    double var = (double)fd->sumsq / fd->n - mean * mean;
    double sd = var > 0 ? sqrt(var) : 0;
    double elapsed = now_ms > fd->last ? (double)(now_ms - fd->last) : 0;

    if (sd < fd->min_stddev)
        sd = fd->min_stddev;
    return gossip_phi_normal(elapsed, mean, sd);
}

int64_t gossip_fd_last(const gossip_fd_t *fd)
{
    return fd->last;
}

void gossip__fd_touch(gossip_fd_t *fd, int64_t now_ms)
{
    if (now_ms > fd->last)
        fd->last = now_ms;
}

bool gossip__fd_below_mean(const gossip_fd_t *fd, int64_t now_ms)
{
    /* elapsed <= mean  <=>  elapsed * n <= sum, in exact integers; the
     * mean is at most max_sample, which also keeps the product in range. */
    int64_t elapsed = now_ms > fd->last ? now_ms - fd->last : 0;

    if (elapsed > fd->max_sample)
        return false;
    return (uint64_t)elapsed * fd->n <= fd->sum;
}
