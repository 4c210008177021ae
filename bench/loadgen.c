/*
 * loadgen.c - closed-loop memcached text-protocol load generator (epoll).
 *
 * Used by bench/bench-memcached.sh when BENCH_TOOL=loadgen (the default tool
 * is Debian's memcaslap).  Keys are "<prefix>%08d" for 0 <= i < keyspace, the
 * same keys bench/benchlib.py preloads, so gets hit; sets overwrite them with
 * a value of the same size.  Each connection has one request in flight;
 * latency is send-to-last-byte, recorded in a 1 us histogram (up to 1 s).
 *
 *   loadgen -p PORT [-h 127.0.0.1] [-c 16] [-T 2] [-t 10] [-W 1] [-k 100000]
 *           [-P pre:] [-s 0.1] [-v 100]
 *
 * Prints one line "RESULT ops=... ops_per_s=... p50_us=... p99_us=..." on
 * stdout.  Exit status 1 on setup failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HIST_US 1000000 /* 1 us buckets up to 1 s, last one = overflow */

static const char *host = "127.0.0.1";
static int port, nconns = 16, nthreads = 2, seconds = 10, warmup = 1;
static long keyspace = 100000, vlen = 100;
static const char *prefix = "pre:";
static double set_ratio = 0.1;
static volatile int phase; /* 0 warmup, 1 measure, 2 stop */

typedef struct conn {
    int fd;
    uint64_t rng;
    int is_get;
    uint64_t t0;
    char out[512];
    size_t olen, ooff;
    char *in;
    size_t ilen, icap;
} conn_t;

typedef struct worker {
    pthread_t th;
    int first, count;
    uint32_t *hist;
    uint64_t ops, gets, sets, misses, errors, sum_us, max_us;
    int dead;
} worker_t;

static char *value;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t xs(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void build_request(conn_t *c)
{
    long k = (long)(xs(&c->rng) % (uint64_t)keyspace);
    c->is_get = (double)(xs(&c->rng) % 1000000) / 1e6 >= set_ratio;
    if (c->is_get)
        c->olen = (size_t)snprintf(c->out, sizeof c->out, "get %s%08ld\r\n", prefix, k);
    else {
        int n = snprintf(c->out, sizeof c->out, "set %s%08ld 0 0 %ld\r\n", prefix, k, vlen);
        memcpy(c->out + n, value, (size_t)vlen);
        memcpy(c->out + n + vlen, "\r\n", 2);
        c->olen = (size_t)n + (size_t)vlen + 2;
    }
    c->ooff = 0;
    c->ilen = 0;
}

static int send_some(conn_t *c)
{
    while (c->ooff < c->olen) {
        ssize_t n = send(c->fd, c->out + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN)
                return 0;
            return -1;
        }
        c->ooff += (size_t)n;
    }
    return 0;
}

/* 1 = complete response (ok), 0 = need more, -1 = protocol error,
 * 2 = complete get miss. */
static int parse(conn_t *c)
{
    char *p = c->in, *end = c->in + c->ilen;
    if (!c->is_get) {
        char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!nl)
            return 0;
        return (nl - p == 6 && !memcmp(p, "STORED", 6)) ? 1 : -1;
    }
    int values = 0;
    for (;;) {
        char *nl = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!nl)
            return 0;
        if (nl - p == 3 && !memcmp(p, "END", 3))
            return values ? 1 : 2;
        if (nl - p > 6 && !memcmp(p, "VALUE ", 6)) {
            /* VALUE <key> <flags> <bytes> [<cas>] */
            char tmp[300];
            size_t l = (size_t)(nl - p) < sizeof tmp - 1 ? (size_t)(nl - p) : sizeof tmp - 1;
            memcpy(tmp, p, l);
            tmp[l] = 0;
            char key[256];
            unsigned flags;
            long bytes;
            if (sscanf(tmp, "VALUE %255s %u %ld", key, &flags, &bytes) != 3 || bytes < 0)
                return -1;
            if (end - (nl + 2) < bytes + 2)
                return 0;
            p = nl + 2 + bytes + 2;
            values++;
            continue;
        }
        return -1;
    }
}

static void *run(void *arg)
{
    worker_t *w = arg;
    int ep = epoll_create1(0);
    conn_t *cs = calloc((size_t)w->count, sizeof *cs);
    for (int i = 0; i < w->count; i++) {
        conn_t *c = &cs[i];
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, host, &sa.sin_addr);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
            perror("connect");
            exit(1);
        }
        c->rng = 0x9E3779B97F4A7C15ull * (uint64_t)(w->first + i + 1);
        c->icap = 4096;
        c->in = malloc(c->icap);
        build_request(c);
        c->t0 = now_us();
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    struct epoll_event evs[64];
    int alive = w->count;
    while (phase < 2 && alive > 0) {
        int n = epoll_wait(ep, evs, 64, 100);
        for (int e = 0; e < n; e++) {
            conn_t *c = evs[e].data.ptr;
            if (c->fd < 0)
                continue;
            if (evs[e].events & (EPOLLERR | EPOLLHUP) && !(evs[e].events & EPOLLIN))
                goto dead;
            if (evs[e].events & EPOLLOUT) {
                if (send_some(c) < 0)
                    goto dead;
                if (c->ooff == c->olen) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[e].events & EPOLLIN) {
                for (;;) {
                    if (c->icap - c->ilen < 2048) {
                        c->icap *= 2;
                        c->in = realloc(c->in, c->icap);
                    }
                    ssize_t r = recv(c->fd, c->in + c->ilen, c->icap - c->ilen, 0);
                    if (r == 0)
                        goto dead;
                    if (r < 0) {
                        if (errno == EAGAIN)
                            break;
                        goto dead;
                    }
                    c->ilen += (size_t)r;
                }
                int st = parse(c);
                if (st == 0)
                    continue;
                uint64_t lat = now_us() - c->t0;
                if (phase == 1) {
                    w->ops++;
                    if (c->is_get)
                        w->gets++;
                    else
                        w->sets++;
                    if (st == 2)
                        w->misses++;
                    if (st < 0) {
                        w->errors++;
                        if (w->errors <= 3) {
                            size_t l = c->ilen < 120 ? c->ilen : 120;
                            fprintf(stderr, "loadgen: bad reply to %.*s: %.*s\n",
                                    (int)strcspn(c->out, "\r"), c->out, (int)l, c->in);
                        }
                    }
                    w->hist[lat < HIST_US ? lat : HIST_US - 1]++;
                    w->sum_us += lat;
                    if (lat > w->max_us)
                        w->max_us = lat;
                }
                build_request(c);
                c->t0 = now_us();
                if (send_some(c) < 0)
                    goto dead;
                if (c->ooff < c->olen) {
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            continue;
        dead:
            fprintf(stderr, "loadgen: connection lost (%s)\n", strerror(errno));
            close(c->fd);
            c->fd = -1;
            alive--;
            w->dead++;
        }
    }
    for (int i = 0; i < w->count; i++)
        if (cs[i].fd >= 0)
            close(cs[i].fd);
    close(ep);
    return NULL;
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "h:p:c:T:t:W:k:P:s:v:")) != -1) {
        switch (o) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = atoi(optarg); break;
        case 'T': nthreads = atoi(optarg); break;
        case 't': seconds = atoi(optarg); break;
        case 'W': warmup = atoi(optarg); break;
        case 'k': keyspace = atol(optarg); break;
        case 'P': prefix = optarg; break;
        case 's': set_ratio = atof(optarg); break;
        case 'v': vlen = atol(optarg); break;
        default:
            fprintf(stderr, "usage: loadgen -p PORT [-h H] [-c C] [-T T] [-t S] [-W S] "
                            "[-k KEYS] [-P PREFIX] [-s SETRATIO] [-v VLEN]\n");
            return 1;
        }
    }
    if (!port || nconns < 1 || nthreads < 1 || keyspace < 1 || vlen < 1 || vlen > 400) {
        fprintf(stderr, "loadgen: bad arguments\n");
        return 1;
    }
    if (nthreads > nconns)
        nthreads = nconns;
    value = malloc((size_t)vlen);
    for (long i = 0; i < vlen; i++)
        value[i] = (char)('a' + i % 26);
    worker_t *ws = calloc((size_t)nthreads, sizeof *ws);
    int given = 0;
    for (int t = 0; t < nthreads; t++) {
        ws[t].first = given;
        ws[t].count = nconns / nthreads + (t < nconns % nthreads);
        given += ws[t].count;
        ws[t].hist = calloc(HIST_US, sizeof(uint32_t));
        pthread_create(&ws[t].th, NULL, run, &ws[t]);
    }
    sleep((unsigned)warmup);
    uint64_t t0 = now_us();
    phase = 1;
    usleep((useconds_t)seconds * 1000000u);
    phase = 2;
    double el = (double)(now_us() - t0) / 1e6;
    uint64_t ops = 0, gets = 0, sets = 0, misses = 0, errors = 0, sum = 0, mx = 0;
    int dead = 0;
    uint32_t *h = calloc(HIST_US, sizeof(uint32_t));
    for (int t = 0; t < nthreads; t++) {
        pthread_join(ws[t].th, NULL);
        ops += ws[t].ops;
        gets += ws[t].gets;
        sets += ws[t].sets;
        misses += ws[t].misses;
        errors += ws[t].errors;
        sum += ws[t].sum_us;
        dead += ws[t].dead;
        if (ws[t].max_us > mx)
            mx = ws[t].max_us;
        for (int i = 0; i < HIST_US; i++)
            h[i] += ws[t].hist[i];
    }
    double q[3] = {0.5, 0.99, 0.999};
    long qv[3] = {-1, -1, -1};
    uint64_t acc = 0;
    for (int i = 0, j = 0; i < HIST_US && j < 3; i++) {
        acc += h[i];
        while (j < 3 && ops && (double)acc >= q[j] * (double)ops)
            qv[j++] = i;
    }
    printf("RESULT ops=%llu seconds=%.2f ops_per_s=%.1f gets=%llu sets=%llu misses=%llu "
           "errors=%llu dead_conns=%d avg_us=%.1f p50_us=%ld p99_us=%ld p999_us=%ld max_us=%llu\n",
           (unsigned long long)ops, el, (double)ops / el, (unsigned long long)gets,
           (unsigned long long)sets, (unsigned long long)misses, (unsigned long long)errors,
           dead, ops ? (double)sum / (double)ops : 0.0, qv[0], qv[1], qv[2],
           (unsigned long long)mx);
    return 0;
}
