/*
 * quorumkv-bench.c - the project's load tool.
 *
 * Drives a quorumkv cluster through libquorumkv (token-aware: each request
 * goes straight to a replica of its key), or any memcached text-protocol
 * server with --protocol memcached (thread i talks to server i mod count,
 * as a plain client would, failing over to the next one in the list),
 * with the same workload either way, so
 * comparisons use one tool and one load.
 *
 * Model: --threads closed-loop clients, one request in flight each (the
 * library is blocking; in memcached mode each thread has one connection).
 * A run is: optional preload (every key once), --warmup seconds unmeasured,
 * then --duration seconds or --ops operations measured.  Latency goes into
 * an HDR-style log-linear histogram per thread (1 us resolution below 128
 * us, then 128 sub-buckets per power of two: under 1% error), merged once
 * a second for the progress line and the --csv series.
 *
 * Stale reads: a write stores "<seq>:" + filler, seq counting the writes
 * of that key; a read that returns a seq below the newest one acknowledged
 * before the read began (or no value at all) is stale.  For that to be
 * exact the tool writes each key from one thread at a time (a striped
 * lock; --no-stale-check removes it).
 *
 * Hot keys: --hot-keys N sends every write to one of N keys, an incr with
 * probability --incr-ratio, else a set of a number, so the cost of the
 * per-key serialisation of read-modify-writes shows.
 *
 * Open loop: --rate OPS schedules requests at fixed intervals (OPS per
 * second over all threads, thread i taking every threads-th slot) whatever
 * the replies do, and measures each request's latency from its intended
 * send time, so time spent queued anywhere (in the tool, the socket, the
 * server) counts and is never hidden by a slow reply holding the next
 * request back (coordinated omission).  With --protocol memcached each
 * thread pipelines on its one connection: a sender writes every request
 * when its time comes, replies are matched in order; a request unanswered
 * --timeout-ms after its intended time fails the connection's outstanding
 * requests as timeouts and reconnects.  Through the library (blocking) a
 * thread sends its next slot when it is free, late if it must; the lateness
 * counts in the latency, as wrk2 does, but no more than --threads requests
 * are ever in flight, so overload tests use the memcached protocol.  The
 * measured window is the requests whose intended time falls in the
 * --duration seconds after the warm-up; latency percentiles are of the
 * successful requests, errors (by kind, "busy" apart) have their own.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../client/quorumkv.h"

/* ---- histogram ---- */

#define SUB_BITS 7
#define HIST_N 2048                      /* covers up to 2^36 us */
#define HIST_CAP ((UINT64_C(1) << 36) - 1)

static int hist_index(uint64_t v)
{
    if (v > HIST_CAP)
        v = HIST_CAP;
    if (v < (1u << SUB_BITS))
        return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - SUB_BITS + 1;
    return (shift << (SUB_BITS - 1)) + (int)(v >> shift);
}

/* The largest value that lands in bucket i (what HDR reports). */
static uint64_t hist_value(int i)
{
    if (i < (1 << SUB_BITS))
        return (uint64_t)i;
    int shift = i / (1 << (SUB_BITS - 1)) - 1;
    uint64_t m = (uint64_t)(i - shift * (1 << (SUB_BITS - 1)));
    return (m << shift) + ((UINT64_C(1) << shift) - 1);
}

static uint64_t hist_pct(const uint64_t *h, uint64_t total, double q)
{
    if (total == 0)
        return 0;
    uint64_t want = (uint64_t)ceil(q * (double)total), acc = 0;
    if (want == 0)
        want = 1;
    for (int i = 0; i < HIST_N; i++) {
        acc += h[i];
        if (acc >= want)
            return hist_value(i);
    }
    return hist_value(HIST_N - 1);
}

/* ---- options ---- */

enum proto { P_QKV, P_MEMCACHED };
enum dist { D_UNIFORM, D_ZIPF };
enum ekind { E_TIMEOUT, E_CONN, E_QUORUM, E_BUSY, E_SERVER, E_CLIENT, E_PROTO, E_OTHER, E_KINDS };
static const char *const ekind_name[E_KINDS] = {"timeout", "connection", "quorum", "busy",
                                                "server", "client", "protocol", "other"};

static struct {
    char *servers;
    enum proto proto;
    long keys;
    const char *prefix;
    long vsize;
    double write_ratio;
    enum dist dist;
    double theta;
    int threads, conns;
    double duration, warmup;
    long ops;
    bool preload;
    int r, w;
    const char *rname, *wname;
    int timeout_ms;
    long hot_keys;
    double incr_ratio;
    const char *json, *csv;
    int progress; /* -1 auto */
    bool stale_check;
    uint64_t seed;
    double rate; /* --rate: open loop, ops/s over all threads; 0 closed loop */
} opt = {
    .servers = "127.0.0.1:11211", .proto = P_QKV, .keys = 100000, .prefix = "bench:",
    .vsize = 100, .write_ratio = 0.1, .dist = D_UNIFORM, .theta = 0.99, .threads = 16,
    .duration = 10, .warmup = 1, .timeout_ms = 3000, .incr_ratio = 0.5, .progress = -1,
    .stale_check = true, .seed = 1,
};

static const char usage_text[] =
    "usage: quorumkv-bench [options]\n"
    "  -s, --servers LIST     host:port,... seeds of a cluster, or memcached servers [127.0.0.1:11211]\n"
    "      --protocol P       qkv (libquorumkv, token-aware) or memcached (plain text protocol) [qkv]\n"
    "  -k, --keys N           key space: PREFIX%08d for 0 <= i < N [100000]\n"
    "      --key-prefix P     [bench:]\n"
    "  -v, --value-size N     value bytes [100]\n"
    "  -W, --write-ratio F    fraction of writes (sets) [0.1]\n"
    "      --dist D           uniform or zipfian [uniform]   --zipf-theta F [0.99]\n"
    "  -t, --threads N        closed-loop clients, one request in flight each [16]\n"
    "      --rate OPS         open loop: OPS requests/s on a fixed schedule whatever the replies,\n"
    "                         latency from each request's intended send time; memcached protocol:\n"
    "                         pipelined on --threads connections; reports goodput (successes/s)\n"
    "  -c, --conns N          qkv: pooled connections kept per node [threads]\n"
    "  -d, --duration S       measured seconds [10]    -n, --ops N  measured operations instead\n"
    "      --warmup S         unmeasured seconds first [1]\n"
    "      --preload          write every key once before the run\n"
    "  -r, -w LEVEL           read / write level per op: one, quorum, all, 1..16 [server default]\n"
    "                         (memcached protocol: sent as quorumkv's r=/w= options)\n"
    "      --timeout-ms MS    per request [3000]\n"
    "      --hot-keys N       every write hits one of N keys: incr or set of a number\n"
    "      --incr-ratio F     share of incr among those writes [0.5]\n"
    "      --json FILE        write the summary as JSON ('-': stdout)\n"
    "      --csv FILE         write a per-second series\n"
    "      --progress, --no-progress   live line once a second [on a terminal]\n"
    "      --no-stale-check   do not serialise writes per key nor count stale reads\n"
    "      --seed N           random seed [1]\n"
    "      --help, --version\n";

/* ---- shared run state ---- */

static _Atomic int phase;          /* 0 warm-up, 1 measured, 2 stop */
static uint64_t open_start, open_from, open_to; /* --rate: schedule start, measured window */
static _Atomic long op_tickets;    /* measured ops started, for --ops */
static _Atomic uint64_t *acked;    /* per key: newest seq acknowledged */
static _Atomic uint64_t *nextseq;  /* per key: last seq handed out */
static pthread_mutex_t wlocks[1024];
static qkv_client_t *client;
static char *filler;
static double zeta_n, zeta_2, zipf_alpha, zipf_eta;

typedef struct stats {
    _Atomic uint64_t h[HIST_N];
    _Atomic uint64_t eh[HIST_N]; /* --rate: latency of the failed requests */
    _Atomic uint64_t sent;       /* --rate: measured requests sent */
    _Atomic uint64_t ops, reads, writes, incrs, misses, stale, checked, max_us, sum_us;
    _Atomic uint64_t err[E_KINDS];
} stats_t;

typedef struct worker {
    pthread_t th;
    int id;
    uint64_t rng;
    stats_t st;
    /* memcached mode */
    int fd;
    char *buf;
    size_t cap, start, end;
    char first_err[160];
} worker_t;

static worker_t *workers;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t rnd(uint64_t *s)
{
    /* splitmix64: cheap, good enough for choosing keys */
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static double rnd01(uint64_t *s)
{
    return (double)(rnd(s) >> 11) / 9007199254740992.0;
}

/* YCSB's zipfian generator (Gray et al.), scrambled so that the popular
 * keys spread over the ring instead of sitting in one place. */
static void zipf_init(void)
{
    for (long i = 1; i <= opt.keys; i++)
        zeta_n += 1.0 / pow((double)i, opt.theta);
    zeta_2 = 1.0 + 1.0 / pow(2.0, opt.theta);
    zipf_alpha = 1.0 / (1.0 - opt.theta);
    zipf_eta = (1.0 - pow(2.0 / (double)opt.keys, 1.0 - opt.theta)) / (1.0 - zeta_2 / zeta_n);
}

static long pick_key(uint64_t *s)
{
    if (opt.dist == D_UNIFORM)
        return (long)(rnd(s) % (uint64_t)opt.keys);
    double u = rnd01(s), uz = u * zeta_n;
    long rank;
    if (uz < 1.0)
        rank = 0;
    else if (uz < zeta_2)
        rank = 1;
    else
        rank = (long)((double)opt.keys * pow(zipf_eta * u - zipf_eta + 1.0, zipf_alpha));
    if (rank >= opt.keys)
        rank = opt.keys - 1;
    uint64_t x = (uint64_t)rank + 1;
    return (long)(rnd(&x) % (uint64_t)opt.keys);
}

static void bump(_Atomic uint64_t *a, uint64_t by)
{
    /* one writer per counter: a relaxed load and store, no locked op */
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

static uint64_t rd(const _Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* ---- memcached-protocol backend: one blocking connection per thread ---- */

static struct sockaddr_in addrs[64];
static int naddr;

/* (Re)connect: the thread's own server first, then the others, as a plain
 * client with a server list fails over. */
static int mc_connect(worker_t *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    w->start = w->end = 0;
    for (int k = 0; k < naddr; k++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (fd < 0)
            return -1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct timeval tv = {opt.timeout_ms / 1000, (opt.timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&addrs[(w->id + k) % naddr], sizeof(addrs[0])) == 0) {
            w->fd = fd;
            return 0;
        }
        close(fd);
    }
    /* nobody answers: do not spin on refused connects */
    struct timespec pause = {0, 10 * 1000000L};
    nanosleep(&pause, NULL);
    return -1;
}

/* Ensure n bytes are buffered: 0, or the error kind. */
static int mc_need(worker_t *w, size_t n)
{
    if (w->start > 0 && w->cap - w->start < n + 1) {
        memmove(w->buf, w->buf + w->start, w->end - w->start);
        w->end -= w->start;
        w->start = 0;
    }
    if (w->cap < n + 1) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < n + 1)
            cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b)
            return E_OTHER;
        w->buf = b;
        w->cap = cap;
    }
    while (w->end - w->start < n) {
        ssize_t r = recv(w->fd, w->buf + w->end, w->cap - w->end, 0);
        if (r > 0)
            w->end += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? E_TIMEOUT : E_CONN;
    }
    return 0;
}

/* Next line (without \r\n) in *line; 0 or the error kind. */
static int mc_line(worker_t *w, char **line, size_t *len)
{
    size_t scanned = 0;
    for (;;) {
        size_t avail = w->end - w->start;
        char *p = avail > scanned ? memchr(w->buf + w->start + scanned, '\n', avail - scanned) : NULL;
        if (p && p > w->buf + w->start && p[-1] == '\r') {
            *line = w->buf + w->start;
            *len = (size_t)(p - *line) - 1;
            w->start += *len + 2;
            return 0;
        }
        if (p)
            return E_PROTO;
        scanned = w->end - w->start;
        if (scanned > 65536)
            return E_PROTO;
        int rc = mc_need(w, scanned + 1);
        if (rc)
            return rc;
    }
}

static int mc_send(worker_t *w, struct iovec *iov, int n)
{
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    ssize_t s = sendmsg(w->fd, &mh, MSG_NOSIGNAL);
    if (s == (ssize_t)total)
        return 0;
    if (s < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return E_TIMEOUT;
    return E_CONN; /* a short send of a small request: treat the connection as lost */
}

static int line_error(const char *l, size_t len)
{
    if (len >= 17 && !memcmp(l, "SERVER_ERROR busy", 17))
        return E_BUSY;
    if (len >= 13 && !memcmp(l, "SERVER_ERROR ", 13))
        return memmem(l, len, "quorum not reached", 18) ? E_QUORUM : E_SERVER;
    if (len >= 13 && !memcmp(l, "CLIENT_ERROR ", 13))
        return E_CLIENT;
    return E_PROTO;
}

static char *lvl_r = "", *lvl_w = "";

/* get: *found, *seq (0 when the value carries none); 0 or the error kind. */
static int mc_get(worker_t *w, const char *key, size_t kl, bool *found, uint64_t *seq)
{
    struct iovec iov[4] = {{"get ", 4}, {(void *)key, kl}, {lvl_r, strlen(lvl_r)}, {"\r\n", 2}};
    int rc = mc_send(w, iov, 4);
    char *l;
    size_t len;
    *found = false;
    *seq = 0;
    if (rc)
        return rc;
    for (;;) {
        if ((rc = mc_line(w, &l, &len)))
            return rc;
        if (len == 3 && !memcmp(l, "END", 3))
            return 0;
        if (len > 6 && !memcmp(l, "VALUE ", 6)) {
            char tmp[400];
            unsigned flags;
            long bytes;
            snprintf(tmp, sizeof(tmp), "%.*s", (int)(len < 399 ? len : 399), l);
            char *sp = strchr(tmp + 6, ' ');
            if (!sp || sscanf(sp, " %u %ld", &flags, &bytes) != 2 || bytes < 0 || bytes > (64 << 20))
                return E_PROTO;
            if ((rc = mc_need(w, (size_t)bytes + 2)))
                return rc;
            const char *v = w->buf + w->start;
            uint64_t s = 0;
            long i = 0;
            for (; i < bytes && v[i] >= '0' && v[i] <= '9' && i < 20; i++)
                s = s * 10 + (uint64_t)(v[i] - '0');
            if (i < bytes && v[i] == ':' && s > *seq)
                *seq = s;
            w->start += (size_t)bytes + 2;
            *found = true;
            continue;
        }
        return line_error(l, len);
    }
}

static int mc_store(worker_t *w, const char *cmd, const char *key, size_t kl, const char *val,
                    size_t vl, bool *notfound, uint64_t *number)
{
    char head[64];
    char *l;
    size_t len;
    bool incr = !strcmp(cmd, "incr");
    if (incr)
        snprintf(head, sizeof(head), " 1");
    else
        snprintf(head, sizeof(head), " 0 0 %zu", vl);
    struct iovec iov[8] = {{(void *)cmd, strlen(cmd)}, {" ", 1}, {(void *)key, kl},
                           {head, strlen(head)}, {lvl_w, strlen(lvl_w)}, {"\r\n", 2},
                           {(void *)val, vl}, {"\r\n", 2}};
    int rc = mc_send(w, iov, incr ? 6 : 8);
    *notfound = false;
    if (rc || (rc = mc_line(w, &l, &len)))
        return rc;
    if (!incr && len == 6 && !memcmp(l, "STORED", 6))
        return 0;
    if (incr && len == 9 && !memcmp(l, "NOT_FOUND", 9)) {
        *notfound = true;
        return 0;
    }
    if (incr && len > 0 && len <= 20 && strspn(l, "0123456789") >= len) {
        *number = strtoull(l, NULL, 10);
        return 0;
    }
    return line_error(l, len);
}

/* ---- one operation ---- */

static int qkv_kind_msg(int rc, const char *err);

static int qkv_kind(int rc)
{
    switch (rc) {
    case QKV_ERR_TIMEOUT: return E_TIMEOUT;
    case QKV_ERR_CONN: return E_CONN;
    case QKV_ERR_QUORUM: return E_QUORUM;
    case QKV_ERR_SERVER: return E_SERVER;
    case QKV_ERR_CLIENT: case QKV_ERR_NOT_NUMBER: return E_CLIENT;
    case QKV_ERR_PROTO: return E_PROTO;
    default: return E_OTHER;
    }
}

/* "SERVER_ERROR busy" comes back as QKV_ERR_SERVER with the line in err. */
static int qkv_kind_msg(int rc, const char *err)
{
    int kind = qkv_kind(rc);
    return kind == E_SERVER && err && strstr(err, "SERVER_ERROR busy") ? E_BUSY : kind;
}

/* A value carrying seq: "<seq>:" then filler up to the value size. */
static size_t make_value(char *v, uint64_t seq)
{
    int n = snprintf(v, 32, "%llu:", (unsigned long long)seq);
    size_t len = (size_t)opt.vsize > (size_t)n ? (size_t)opt.vsize : (size_t)n;
    memcpy(v + n, filler, len - (size_t)n);
    return len;
}

static void note_error(worker_t *w, int kind, const char *msg)
{
    bump(&w->st.err[kind], 1);
    if (!w->first_err[0])
        snprintf(w->first_err, sizeof(w->first_err), "%s: %s", ekind_name[kind], msg ? msg : "");
}

static qkv_opts_t r_opts = QKV_OPTS_INIT, w_opts = QKV_OPTS_INIT;

/* get of key k (index, or -1 for a hot key); returns the error kind or -1. */
static int do_read(worker_t *w, const char *key, size_t kl, long k, bool *found, uint64_t *seq)
{
    *found = false;
    *seq = 0;
    if (opt.proto == P_MEMCACHED) {
        int rc = mc_get(w, key, kl, found, seq);
        return rc ? rc : -1;
    }
    qkv_result_t *res = NULL;
    char *err = NULL;
    int rc = qkv_get(client, &r_opts, key, kl, &res, &err);
    (void)k;
    if (rc < 0) {
        int kind = qkv_kind_msg(rc, err);
        if (!w->first_err[0] && err)
            snprintf(w->first_err, sizeof(w->first_err), "%s: %s", ekind_name[kind], err);
        qkv_free(err);
        return kind;
    }
    for (size_t i = 0; i < qkv_result_count(res); i++) {
        /* an application would merge the siblings: the newest seq counts */
        const qkv_sibling_t *s = qkv_result_sibling(res, i);
        if (s->deleted)
            continue;
        *found = true;
        uint64_t x = 0;
        size_t j = 0;
        for (; j < s->len && j < 20 && s->value[j] >= '0' && s->value[j] <= '9'; j++)
            x = x * 10 + (uint64_t)(s->value[j] - '0');
        if (j < s->len && s->value[j] == ':' && x > *seq)
            *seq = x;
    }
    qkv_result_free(res);
    return -1;
}

static int do_write(worker_t *w, const char *cmd, const char *key, size_t kl, const char *val,
                    size_t vl, bool *notfound)
{
    uint64_t number;
    *notfound = false;
    if (opt.proto == P_MEMCACHED) {
        int rc = mc_store(w, cmd, key, kl, val, vl, notfound, &number);
        return rc ? rc : -1;
    }
    char *err = NULL;
    int rc = cmd[0] == 'i' ? qkv_incr(client, &w_opts, key, kl, 1, &number, &err)
                           : qkv_set(client, &w_opts, key, kl, val, vl, 0, 0, &err);
    if (rc < 0) {
        int kind = qkv_kind_msg(rc, err);
        if (!w->first_err[0] && err)
            snprintf(w->first_err, sizeof(w->first_err), "%s: %s", ekind_name[kind], err);
        qkv_free(err);
        return kind;
    }
    *notfound = rc == QKV_NOT_FOUND;
    return -1;
}

/* One finished measured request.  Closed loop: every request's latency in
 * h.  Open loop: successes in h, failures in eh. */
static void record(worker_t *w, uint64_t lat, bool failed)
{
    if (opt.rate > 0 && failed) {
        bump(&w->st.eh[hist_index(lat)], 1);
        bump(&w->st.ops, 1);
        return;
    }
    bump(&w->st.h[hist_index(lat)], 1);
    bump(&w->st.ops, 1);
    bump(&w->st.sum_us, lat);
    if (lat > rd(&w->st.max_us))
        atomic_store_explicit(&w->st.max_us, lat, memory_order_relaxed);
}

/* intended: --rate's scheduled send time (latency counts from it), or 0
 * in the closed loop (from now; measured while the run's phase is, or,
 * with --ops, when the op drew one of the measured tickets: the phase may
 * end while a ticket holder is about to start, and its op still counts). */
static void one_op(worker_t *w, char *value, uint64_t intended, bool ticket)
{
    char key[300];
    bool write = rnd01(&w->rng) < opt.write_ratio;
    bool hot = write && opt.hot_keys > 0;
    long k = hot ? (long)(rnd(&w->rng) % (uint64_t)opt.hot_keys) : pick_key(&w->rng);
    size_t kl = hot ? (size_t)snprintf(key, sizeof(key), "%shot:%ld", opt.prefix, k)
                    : (size_t)snprintf(key, sizeof(key), "%s%08ld", opt.prefix, k);
    bool measured = intended ? intended >= open_from
                    : opt.ops > 0 ? ticket
                                  : atomic_load_explicit(&phase, memory_order_relaxed) == 1;
    int kind = -1;
    bool flag = false;
    uint64_t t0, lat;

    if (!write) {
        uint64_t need = opt.stale_check ? atomic_load(&acked[k]) : 0, seq;
        t0 = intended ? intended : now_us();
        kind = do_read(w, key, kl, k, &flag, &seq);
        lat = now_us() - t0;
        if (measured) {
            bump(&w->st.reads, 1);
            if (kind < 0 && !flag)
                bump(&w->st.misses, 1);
            if (kind < 0 && need > 0) {
                bump(&w->st.checked, 1);
                if (seq < need)
                    bump(&w->st.stale, 1);
            }
        }
    } else if (hot) {
        bool incr = rnd01(&w->rng) < opt.incr_ratio;
        t0 = intended ? intended : now_us();
        kind = do_write(w, incr ? "incr" : "set", key, kl, "1", 1, &flag);
        lat = now_us() - t0;
        if (measured) {
            bump(incr ? &w->st.incrs : &w->st.writes, 1);
            if (kind < 0 && flag)
                bump(&w->st.misses, 1);
        }
    } else {
        pthread_mutex_t *lk = opt.stale_check ? &wlocks[k % 1024] : NULL;
        if (lk)
            pthread_mutex_lock(lk);
        uint64_t seq = atomic_fetch_add(&nextseq[k], 1) + 1;
        size_t vl = make_value(value, seq);
        t0 = intended ? intended : now_us();
        kind = do_write(w, "set", key, kl, value, vl, &flag);
        lat = now_us() - t0;
        if (kind < 0 && opt.stale_check)
            atomic_store(&acked[k], seq); /* writes of k are serialised: seq is the newest */
        if (lk)
            pthread_mutex_unlock(lk);
        if (measured)
            bump(&w->st.writes, 1);
    }
    if (kind >= 0 && opt.proto == P_MEMCACHED && (kind == E_CONN || kind == E_TIMEOUT || kind == E_PROTO))
        mc_connect(w); /* the connection's state is unknown: a fresh one */
    if (!measured)
        return;
    if (kind >= 0)
        note_error(w, kind, NULL);
    record(w, lat, kind >= 0);
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    char *value = malloc((size_t)opt.vsize + 32);
    if (!value)
        return NULL;
    while (atomic_load(&phase) < 2) {
        bool ticket = false;
        if (opt.ops > 0 && atomic_load(&phase) == 1) {
            if (atomic_fetch_add(&op_tickets, 1) >= opt.ops) {
                atomic_store(&phase, 2);
                break;
            }
            ticket = true;
        }
        one_op(w, value, 0, ticket);
    }
    free(value);
    return NULL;
}

/* ---- open loop (--rate) ---- */

static double open_gap_us; /* 1e6 / rate */
#define OPEN_BATCH_US 500  /* a pipelining thread wakes at most this often to send */

/* The intended send time of thread w's k-th request. */
static uint64_t open_slot(const worker_t *w, uint64_t k)
{
    return open_start + (uint64_t)(((double)k * opt.threads + w->id) * open_gap_us);
}

static void sleep_until(uint64_t t)
{
    uint64_t now = now_us();
    if (t <= now)
        return;
    struct timespec ts = {(time_t)((t - now) / 1000000), (long)((t - now) % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

/* Through the library: each thread takes its slots in turn, sending late
 * when the previous request took longer than the gap. */
static void *open_qkv_main(void *arg)
{
    worker_t *w = arg;
    char *value = malloc((size_t)opt.vsize + 32);
    if (!value)
        return NULL;
    for (uint64_t k = 0;; k++) {
        uint64_t t = open_slot(w, k);
        if (t >= open_to)
            break;
        sleep_until(t);
        if (t >= open_from)
            bump(&w->st.sent, 1);
        one_op(w, value, t, false);
    }
    free(value);
    return NULL;
}

/* Pipelined memcached connection: requests waiting for their reply, in
 * send order. */
enum { OP_GET, OP_SET, OP_INCR };
typedef struct pend {
    uint64_t t;    /* intended send time */
    uint8_t op;
    bool measured;
} pend_t;

typedef struct pipe_state {
    pend_t *q;
    size_t qcap, qhead, qn;
    char *ob;      /* requests not written yet */
    size_t olen, ocap, ooff;
} pipe_state_t;

static int ob_add(pipe_state_t *p, const void *d, size_t n)
{
    if (p->olen + n > p->ocap) {
        size_t cap = p->ocap ? p->ocap : 65536;
        while (cap < p->olen + n)
            cap *= 2;
        char *b = realloc(p->ob, cap);
        if (!b)
            return -1;
        p->ob = b;
        p->ocap = cap;
    }
    memcpy(p->ob + p->olen, d, n);
    p->olen += n;
    return 0;
}

static int q_push(pipe_state_t *p, pend_t e)
{
    if (p->qn == p->qcap) {
        size_t cap = p->qcap ? p->qcap * 2 : 1024;
        pend_t *q = malloc(cap * sizeof(*q));
        if (!q)
            return -1;
        for (size_t i = 0; i < p->qn; i++)
            q[i] = p->q[(p->qhead + i) % p->qcap];
        free(p->q);
        p->q = q;
        p->qcap = cap;
        p->qhead = 0;
    }
    p->q[(p->qhead + p->qn) % p->qcap] = e;
    p->qn++;
    return 0;
}

/* Build the request of one scheduled slot into the output. */
static int open_enqueue(worker_t *w, pipe_state_t *p, uint64_t t, char *value)
{
    char key[300], head[400];
    bool write = rnd01(&w->rng) < opt.write_ratio;
    bool hot = write && opt.hot_keys > 0;
    long k = hot ? (long)(rnd(&w->rng) % (uint64_t)opt.hot_keys) : pick_key(&w->rng);
    int kl = hot ? snprintf(key, sizeof(key), "%shot:%ld", opt.prefix, k)
                 : snprintf(key, sizeof(key), "%s%08ld", opt.prefix, k);
    pend_t e = {.t = t, .op = OP_GET, .measured = t >= open_from};
    int n, rc;
    if (!write) {
        n = snprintf(head, sizeof(head), "get %.*s%s\r\n", kl, key, lvl_r);
        rc = ob_add(p, head, (size_t)n);
    } else if (hot && rnd01(&w->rng) < opt.incr_ratio) {
        e.op = OP_INCR;
        n = snprintf(head, sizeof(head), "incr %.*s 1%s\r\n", kl, key, lvl_w);
        rc = ob_add(p, head, (size_t)n);
    } else {
        e.op = OP_SET;
        size_t vl = hot ? 1 : make_value(value, 0);
        n = snprintf(head, sizeof(head), "set %.*s 0 0 %zu%s\r\n", kl, key, vl, lvl_w);
        rc = ob_add(p, head, (size_t)n) | ob_add(p, hot ? "1" : value, vl) | ob_add(p, "\r\n", 2);
    }
    if (rc || q_push(p, e))
        return -1;
    if (e.measured)
        bump(&w->st.sent, 1);
    return 0;
}

/* Room for n more bytes at the end of w's read buffer: 0 or -1. */
static int rbuf_room(worker_t *w, size_t n)
{
    if (w->start > 0 && w->cap - w->end < n) {
        memmove(w->buf, w->buf + w->start, w->end - w->start);
        w->end -= w->start;
        w->start = 0;
    }
    if (w->cap - w->end < n) {
        size_t cap = w->cap ? w->cap * 2 : 131072;
        while (cap - w->end < n)
            cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b)
            return -1;
        w->buf = b;
        w->cap = cap;
    }
    return 0;
}

/* The end of the line starting at off in w's read buffer, or -1. */
static long line_end(const worker_t *w, size_t off)
{
    const char *b = w->buf + off, *nl = memchr(b, '\n', w->end - off);
    return nl ? (long)(nl - w->buf) : -1;
}

/* One complete reply to op at the head of w's read buffer: 1 (consumed;
 * *kind -1 or the error kind, *miss), 0 when more bytes are needed. */
static int open_reply(worker_t *w, uint8_t op, int *kind, bool *miss)
{
    size_t off = w->start;
    *kind = -1;
    *miss = false;
    bool found = false;
    for (;;) {
        long e = line_end(w, off);
        if (e < 0)
            return w->end - off > 65536 ? (*kind = E_PROTO, w->start = w->end, 1) : 0;
        const char *l = w->buf + off;
        size_t len = (size_t)e - off;
        if (len && l[len - 1] == '\r')
            len--;
        size_t next = (size_t)e + 1;
        if (op == OP_GET && len > 6 && !memcmp(l, "VALUE ", 6)) {
            long bytes = -1;
            const char *sp = memchr(l + 6, ' ', len - 6); /* after the key */
            if (sp)
                sp = memchr(sp + 1, ' ', len - (size_t)(sp + 1 - l)); /* after the flags */
            if (sp)
                bytes = strtol(sp + 1, NULL, 10);
            if (bytes < 0 || bytes > (64 << 20)) {
                *kind = E_PROTO;
                w->start = w->end;
                return 1;
            }
            if (w->end - next < (size_t)bytes + 2)
                return 0;
            off = next + (size_t)bytes + 2;
            found = true;
            continue;
        }
        w->start = next;
        if (op == OP_GET && len == 3 && !memcmp(l, "END", 3))
            *miss = !found;
        else if (op == OP_SET && len == 6 && !memcmp(l, "STORED", 6))
            ;
        else if (op == OP_INCR && len == 9 && !memcmp(l, "NOT_FOUND", 9))
            *miss = true;
        else if (op == OP_INCR && len > 0 && len <= 20 && strspn(l, "0123456789") >= len)
            ;
        else
            *kind = line_error(l, len);
        return 1;
    }
}

static void open_done(worker_t *w, const pend_t *e, uint64_t now, int kind, bool miss)
{
    if (!e->measured)
        return;
    bump(e->op == OP_GET ? &w->st.reads : e->op == OP_INCR ? &w->st.incrs : &w->st.writes, 1);
    if (kind < 0 && miss)
        bump(&w->st.misses, 1);
    if (kind >= 0)
        note_error(w, kind, NULL);
    record(w, now > e->t ? now - e->t : 0, kind >= 0);
}

/* The connection failed or its oldest request timed out: every request
 * still outstanding fails with kind; a fresh connection. */
static void open_reset(worker_t *w, pipe_state_t *p, int kind)
{
    uint64_t now = now_us();
    for (size_t i = 0; i < p->qn; i++)
        open_done(w, &p->q[(p->qhead + i) % p->qcap], now, kind, false);
    p->qn = p->qhead = 0;
    p->olen = p->ooff = 0;
    if (mc_connect(w) == 0)
        fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
}

static void *open_mc_main(void *arg)
{
    worker_t *w = arg;
    pipe_state_t p = {0};
    char *value = malloc((size_t)opt.vsize + 32);
    uint64_t timeout = (uint64_t)opt.timeout_ms * 1000, k = 0;
    bool sending = true;
    if (!value || w->fd < 0)
        goto out;
    fcntl(w->fd, F_SETFL, fcntl(w->fd, F_GETFL) | O_NONBLOCK);
    for (;;) {
        uint64_t now = now_us();
        while (sending) {
            uint64_t t = open_slot(w, k);
            if (t >= open_to) {
                sending = false;
                break;
            }
            if (t > now)
                break;
            if (open_enqueue(w, &p, t, value) < 0) {
                note_error(w, E_OTHER, "out of memory");
                goto out;
            }
            k++;
        }
        if (!sending && p.qn == 0)
            break;
        if (p.qn && now - p.q[p.qhead].t > timeout) {
            open_reset(w, &p, E_TIMEOUT);
            continue;
        }
        while (p.ooff < p.olen && w->fd >= 0) {
            ssize_t n = send(w->fd, p.ob + p.ooff, p.olen - p.ooff, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                p.ooff += (size_t)n;
            } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                break;
            } else if (!(n < 0 && errno == EINTR)) {
                open_reset(w, &p, E_CONN);
                break;
            }
        }
        if (p.ooff == p.olen)
            p.ooff = p.olen = 0;
        if (w->fd < 0) { /* no server to reconnect to: the outstanding failed */
            if (!sending)
                break;
            open_reset(w, &p, E_CONN);
            continue;
        }
        /* wait for a reply, the socket, or the next slot; slots closer
         * together than OPEN_BATCH_US leave in one send (their latency
         * still counts from their own intended times) */
        uint64_t wake = sending ? open_slot(w, k) : now + 10000;
        if (sending && wake < now + OPEN_BATCH_US)
            wake = now + OPEN_BATCH_US;
        if (p.qn && p.q[p.qhead].t + timeout + 1 < wake)
            wake = p.q[p.qhead].t + timeout + 1;
        uint64_t dt = wake > now ? wake - now : 0;
        struct timespec ts = {(time_t)(dt / 1000000), (long)(dt % 1000000) * 1000};
        struct pollfd pfd = {w->fd, (short)(POLLIN | (p.olen > p.ooff ? POLLOUT : 0)), 0};
        int pr = ppoll(&pfd, 1, &ts, NULL);
        if (pr <= 0 || !(pfd.revents & (POLLIN | POLLERR | POLLHUP)))
            continue;
        if (rbuf_room(w, 65536) < 0) {
            note_error(w, E_OTHER, "out of memory");
            goto out;
        }
        ssize_t n = recv(w->fd, w->buf + w->end, w->cap - w->end, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            open_reset(w, &p, E_CONN);
            continue;
        }
        if (n > 0)
            w->end += (size_t)n;
        now = now_us();
        while (p.qn) {
            int kind;
            bool miss;
            pend_t *e = &p.q[p.qhead];
            if (open_reply(w, e->op, &kind, &miss) == 0)
                break;
            open_done(w, e, now, kind, miss);
            p.qhead = (p.qhead + 1) % p.qcap;
            p.qn--;
            if (kind == E_PROTO) { /* out of step: start again */
                open_reset(w, &p, E_PROTO);
                break;
            }
        }
        if (w->start == w->end)
            w->start = w->end = 0;
    }
out:
    free(value);
    free(p.q);
    free(p.ob);
    return NULL;
}

/* Preload: thread i sets keys i, i+T, ...; hot keys get "0". */
static void *preload_main(void *arg)
{
    worker_t *w = arg;
    char key[300], *value = malloc((size_t)opt.vsize + 32);
    bool nf;
    if (!value)
        return NULL;
    for (long k = w->id; k < opt.keys; k += opt.threads) {
        size_t kl = (size_t)snprintf(key, sizeof(key), "%s%08ld", opt.prefix, k);
        uint64_t seq = atomic_fetch_add(&nextseq[k], 1) + 1;
        size_t vl = make_value(value, seq);
        int kind = do_write(w, "set", key, kl, value, vl, &nf);
        if (kind < 0)
            atomic_store(&acked[k], seq);
        else {
            note_error(w, kind, "preload");
            if (opt.proto == P_MEMCACHED)
                mc_connect(w);
        }
    }
    for (long k = w->id; k < opt.hot_keys; k += opt.threads) {
        size_t kl = (size_t)snprintf(key, sizeof(key), "%shot:%ld", opt.prefix, k);
        do_write(w, "set", key, kl, "0", 1, &nf);
    }
    free(value);
    return NULL;
}

/* ---- reporting ---- */

typedef struct totals {
    uint64_t h[HIST_N], eh[HIST_N], sent;
    uint64_t ops, reads, writes, incrs, misses, stale, checked, max_us, sum_us, err[E_KINDS], errors;
} totals_t;

static void collect(totals_t *t)
{
    memset(t, 0, sizeof(*t));
    for (int i = 0; i < opt.threads; i++) {
        stats_t *s = &workers[i].st;
        for (int b = 0; b < HIST_N; b++) {
            t->h[b] += rd(&s->h[b]);
            t->eh[b] += rd(&s->eh[b]);
        }
        t->sent += rd(&s->sent);
        t->ops += rd(&s->ops);
        t->reads += rd(&s->reads);
        t->writes += rd(&s->writes);
        t->incrs += rd(&s->incrs);
        t->misses += rd(&s->misses);
        t->stale += rd(&s->stale);
        t->checked += rd(&s->checked);
        t->sum_us += rd(&s->sum_us);
        if (rd(&s->max_us) > t->max_us)
            t->max_us = rd(&s->max_us);
        for (int e = 0; e < E_KINDS; e++) {
            t->err[e] += rd(&s->err[e]);
            t->errors += rd(&s->err[e]);
        }
    }
}

/* Requests whose latency is in h: all (closed loop) or the successes. */
static uint64_t hcount(const totals_t *t)
{
    return opt.rate > 0 ? t->ops - t->errors : t->ops;
}

static uint64_t ehmax(const totals_t *t)
{
    for (int b = HIST_N - 1; b >= 0; b--)
        if (t->eh[b])
            return hist_value(b);
    return 0;
}

static void print_json(FILE *f, const totals_t *t, double secs)
{
    fprintf(f, "{\"ok\": true, \"protocol\": \"%s\", \"servers\": \"%s\", \"threads\": %d, "
               "\"conns\": %d, \"keys\": %ld, \"value_size\": %ld, \"write_ratio\": %.4f, "
               "\"dist\": \"%s\", \"r\": \"%s\", \"w\": \"%s\", \"hot_keys\": %ld, "
               "\"incr_ratio\": %.4f, \"seconds\": %.3f, \"ops\": %llu, \"ops_per_s\": %.1f, "
               "\"reads\": %llu, \"writes\": %llu, \"incrs\": %llu, \"misses\": %llu, ",
            opt.proto == P_QKV ? "qkv" : "memcached", opt.servers, opt.threads, opt.conns, opt.keys,
            opt.vsize, opt.write_ratio, opt.dist == D_ZIPF ? "zipfian" : "uniform",
            opt.rname ? opt.rname : "default", opt.wname ? opt.wname : "default", opt.hot_keys,
            opt.hot_keys ? opt.incr_ratio : 0.0, secs, (unsigned long long)t->ops,
            secs > 0 ? (double)t->ops / secs : 0.0, (unsigned long long)t->reads,
            (unsigned long long)t->writes, (unsigned long long)t->incrs,
            (unsigned long long)t->misses);
    uint64_t hn = hcount(t), en = t->ops - hn;
    fprintf(f, "\"mode\": \"%s\", \"rate\": %.1f, \"sent\": %llu, \"successes\": %llu, "
               "\"goodput\": %.1f, \"error_latency_us\": {\"p50\": %llu, \"p99\": %llu, "
               "\"max\": %llu}, ",
            opt.rate > 0 ? "open" : "closed", opt.rate,
            (unsigned long long)(opt.rate > 0 ? t->sent : t->ops),
            (unsigned long long)(t->ops - t->errors),
            secs > 0 ? (double)(t->ops - t->errors) / secs : 0.0,
            (unsigned long long)hist_pct(t->eh, en, 0.5), (unsigned long long)hist_pct(t->eh, en, 0.99),
            (unsigned long long)ehmax(t));
    fprintf(f, "\"latency_us\": {\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"p999\": %llu, "
               "\"max\": %llu, \"mean\": %.1f}, ",
            (unsigned long long)hist_pct(t->h, hn, 0.50),
            (unsigned long long)hist_pct(t->h, hn, 0.90),
            (unsigned long long)hist_pct(t->h, hn, 0.99),
            (unsigned long long)hist_pct(t->h, hn, 0.999), (unsigned long long)t->max_us,
            hn ? (double)t->sum_us / (double)hn : 0.0);
    fprintf(f, "\"errors\": {\"total\": %llu", (unsigned long long)t->errors);
    for (int e = 0; e < E_KINDS; e++)
        fprintf(f, ", \"%s\": %llu", ekind_name[e], (unsigned long long)t->err[e]);
    const char *first = "";
    for (int i = 0; i < opt.threads && !first[0]; i++)
        first = workers[i].first_err;
    fprintf(f, "}, \"first_error\": \"");
    for (const char *p = first; *p; p++)
        fprintf(f, (*p == '"' || *p == '\\') ? "\\%c" : ((unsigned char)*p < 0x20 ? "?" : "%c"), *p);
    fprintf(f, "\", \"stale\": {\"enabled\": %s, \"checked\": %llu, \"stale\": %llu, "
               "\"fraction\": %.6f}}\n",
            opt.stale_check ? "true" : "false", (unsigned long long)t->checked,
            (unsigned long long)t->stale, t->checked ? (double)t->stale / (double)t->checked : 0.0);
}

static void print_human(FILE *o, const totals_t *t, double secs)
{
    fprintf(o, "quorumkv-bench: %s on %s, %d threads, %ld keys (%s), %ld-byte values, %.0f%% writes",
           opt.proto == P_QKV ? "libquorumkv (token-aware)" : "memcached text protocol",
           opt.servers, opt.threads, opt.keys, opt.dist == D_ZIPF ? "zipfian" : "uniform", opt.vsize,
           100 * opt.write_ratio);
    if (opt.hot_keys)
        fprintf(o, " on %ld hot keys (%.0f%% incr)", opt.hot_keys, 100 * opt.incr_ratio);
    fprintf(o, ", R=%s W=%s\n", opt.rname ? opt.rname : "default", opt.wname ? opt.wname : "default");
    fprintf(o, "  %llu ops in %.2f s: %.1f ops/s (reads %llu, sets %llu, incrs %llu, misses %llu)\n",
           (unsigned long long)t->ops, secs, secs > 0 ? (double)t->ops / secs : 0.0,
           (unsigned long long)t->reads, (unsigned long long)t->writes,
           (unsigned long long)t->incrs, (unsigned long long)t->misses);
    uint64_t hn = hcount(t), en = t->ops - hn;
    if (opt.rate > 0)
        fprintf(o, "  open loop: %.0f ops/s offered, %llu sent, %llu answered, goodput %.1f ops/s "
                   "(successes)\n",
                opt.rate, (unsigned long long)t->sent, (unsigned long long)t->ops,
                secs > 0 ? (double)hn / secs : 0.0);
    fprintf(o, "  latency us%s: p50 %llu  p90 %llu  p99 %llu  p99.9 %llu  max %llu  mean %.1f\n",
           opt.rate > 0 ? " (successes, from intended send time)" : "",
           (unsigned long long)hist_pct(t->h, hn, 0.50),
           (unsigned long long)hist_pct(t->h, hn, 0.90),
           (unsigned long long)hist_pct(t->h, hn, 0.99),
           (unsigned long long)hist_pct(t->h, hn, 0.999), (unsigned long long)t->max_us,
           hn ? (double)t->sum_us / (double)hn : 0.0);
    if (opt.rate > 0 && en)
        fprintf(o, "  latency us (errors): p50 %llu  p99 %llu  max %llu\n",
                (unsigned long long)hist_pct(t->eh, en, 0.5),
                (unsigned long long)hist_pct(t->eh, en, 0.99), (unsigned long long)ehmax(t));
    fprintf(o, "  errors: %llu", (unsigned long long)t->errors);
    for (int e = 0; e < E_KINDS; e++)
        if (t->err[e])
            fprintf(o, "  %s %llu", ekind_name[e], (unsigned long long)t->err[e]);
    for (int i = 0; i < opt.threads; i++)
        if (workers[i].first_err[0]) {
            fprintf(o, "  (first: %s)", workers[i].first_err);
            break;
        }
    fprintf(o, "\n");
    if (opt.stale_check)
        fprintf(o, "  stale reads: %llu of %llu checked (%.4f%%)\n", (unsigned long long)t->stale,
               (unsigned long long)t->checked,
               t->checked ? 100.0 * (double)t->stale / (double)t->checked : 0.0);
}

/* ---- main ---- */

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage(const char *fmt, ...)
{
    va_list ap;
    fputs("quorumkv-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (--help for usage)\n", stderr);
    return 2;
}

static bool num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static int parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"servers", 1, 0, 's'}, {"protocol", 1, 0, 'P'}, {"keys", 1, 0, 'k'},
        {"key-prefix", 1, 0, 'K'}, {"value-size", 1, 0, 'v'}, {"write-ratio", 1, 0, 'W'},
        {"dist", 1, 0, 'D'}, {"zipf-theta", 1, 0, 'Z'}, {"threads", 1, 0, 't'},
        {"conns", 1, 0, 'c'}, {"duration", 1, 0, 'd'}, {"ops", 1, 0, 'n'},
        {"warmup", 1, 0, 'u'}, {"preload", 0, 0, 'L'}, {"timeout-ms", 1, 0, 'T'},
        {"hot-keys", 1, 0, 'H'}, {"incr-ratio", 1, 0, 'I'}, {"json", 1, 0, 'j'},
        {"csv", 1, 0, 'C'}, {"progress", 0, 0, 'p'}, {"no-progress", 0, 0, 'q'},
        {"no-stale-check", 0, 0, 'S'}, {"seed", 1, 0, 'e'}, {"help", 0, 0, 'h'},
        {"version", 0, 0, 'V'}, {"rate", 1, 0, 'R'}, {0, 0, 0, 0}};
    int c;
    double x;
    while ((c = getopt_long(argc, argv, "s:k:v:W:t:c:d:n:r:w:", lo, NULL)) != -1) {
        switch (c) {
        case 's': opt.servers = optarg; break;
        case 'P':
            if (!strcmp(optarg, "qkv"))
                opt.proto = P_QKV;
            else if (!strcmp(optarg, "memcached"))
                opt.proto = P_MEMCACHED;
            else
                return usage("--protocol is qkv or memcached");
            break;
        case 'k': if (!num(optarg, 1, 1e9, &x)) return usage("bad --keys"); opt.keys = (long)x; break;
        case 'K': if (strlen(optarg) > 200) return usage("--key-prefix too long"); opt.prefix = optarg; break;
        case 'v': if (!num(optarg, 1, 1 << 24, &x)) return usage("bad --value-size"); opt.vsize = (long)x; break;
        case 'W': if (!num(optarg, 0, 1, &opt.write_ratio)) return usage("--write-ratio is 0..1"); break;
        case 'D':
            if (!strcmp(optarg, "uniform"))
                opt.dist = D_UNIFORM;
            else if (!strcmp(optarg, "zipfian") || !strcmp(optarg, "zipf"))
                opt.dist = D_ZIPF;
            else
                return usage("--dist is uniform or zipfian");
            break;
        case 'Z': if (!num(optarg, 0.01, 0.999, &opt.theta)) return usage("--zipf-theta is 0.01..0.999"); break;
        case 't': if (!num(optarg, 1, 4096, &x)) return usage("bad --threads"); opt.threads = (int)x; break;
        case 'c': if (!num(optarg, 1, 4096, &x)) return usage("bad --conns"); opt.conns = (int)x; break;
        case 'd': if (!num(optarg, 0.1, 1e6, &opt.duration)) return usage("bad --duration"); break;
        case 'n': if (!num(optarg, 1, 1e15, &x)) return usage("bad --ops"); opt.ops = (long)x; break;
        case 'u': if (!num(optarg, 0, 3600, &opt.warmup)) return usage("bad --warmup"); break;
        case 'L': opt.preload = true; break;
        case 'R': if (!num(optarg, 0.1, 1e8, &opt.rate)) return usage("bad --rate (ops/s, > 0)"); break;
        case 'T': if (!num(optarg, 1, 3600000, &x)) return usage("bad --timeout-ms"); opt.timeout_ms = (int)x; break;
        case 'H': if (!num(optarg, 1, 1e7, &x)) return usage("bad --hot-keys"); opt.hot_keys = (long)x; break;
        case 'I': if (!num(optarg, 0, 1, &opt.incr_ratio)) return usage("--incr-ratio is 0..1"); break;
        case 'j': opt.json = optarg; break;
        case 'C': opt.csv = optarg; break;
        case 'p': opt.progress = 1; break;
        case 'q': opt.progress = 0; break;
        case 'S': opt.stale_check = false; break;
        case 'e': opt.seed = strtoull(optarg, NULL, 10); break;
        case 'r':
        case 'w': {
            int lv;
            if (qkv_level_parse(optarg, &lv) < 0)
                return usage("bad level '%s' (one, quorum, all or 1..16)", optarg);
            if (c == 'r') {
                opt.r = lv;
                opt.rname = optarg;
            } else {
                opt.w = lv;
                opt.wname = optarg;
            }
            break;
        }
        case 'h': fputs(usage_text, stdout); exit(0);
        case 'V': printf("quorumkv-bench %s\n", QKV_VERSION_STRING); exit(0);
        default: return usage("bad option");
        }
    }
    if (optind < argc)
        return usage("unexpected argument '%s'", argv[optind]);
    if (opt.conns == 0)
        opt.conns = opt.threads;
    if (opt.rate > 0 && opt.ops > 0)
        return usage("--rate runs for --duration, not --ops");
    if (opt.rate > 0 && opt.proto == P_MEMCACHED)
        opt.stale_check = false; /* pipelined: no per-key order to check against */
    if (opt.vsize < 21)
        opt.stale_check = false; /* "<seq>:" needs room */
    return 0;
}

int main(int argc, char **argv)
{
    int rc = parse_args(argc, argv);
    char *err = NULL;
    FILE *csv = NULL;
    if (rc)
        return rc;
    if (opt.progress < 0)
        opt.progress = isatty(2);
    filler = malloc((size_t)opt.vsize + 1);
    acked = calloc((size_t)opt.keys, sizeof(*acked));
    nextseq = calloc((size_t)opt.keys, sizeof(*nextseq));
    workers = calloc((size_t)opt.threads, sizeof(*workers));
    if (!filler || !acked || !nextseq || !workers) {
        fprintf(stderr, "quorumkv-bench: out of memory\n");
        return 1;
    }
    for (long i = 0; i < opt.vsize; i++)
        filler[i] = (char)('a' + i % 26);
    for (int i = 0; i < 1024; i++)
        pthread_mutex_init(&wlocks[i], NULL);
    if (opt.dist == D_ZIPF)
        zipf_init();
    r_opts.level = opt.r;
    w_opts.level = opt.w;
    r_opts.timeout_ms = w_opts.timeout_ms = opt.timeout_ms;
    if (opt.csv && !(csv = fopen(opt.csv, "w"))) {
        fprintf(stderr, "quorumkv-bench: cannot write %s: %s\n", opt.csv, strerror(errno));
        return 1;
    }

    if (opt.proto == P_QKV) {
        qkv_config_t cfg;
        qkv_config_init(&cfg);
        cfg.timeout_ms = opt.timeout_ms;
        cfg.max_idle_per_node = opt.conns;
        client = qkv_connect(opt.servers, &cfg, &err);
        if (!client) {
            fprintf(stderr, "quorumkv-bench: cannot connect to %s: %s\n", opt.servers, err);
            qkv_free(err);
            return 1;
        }
    } else {
        static char rbuf[32], wbuf[32];
        if (opt.rname)
            snprintf(lvl_r = rbuf, sizeof(rbuf), " r=%s", opt.rname);
        if (opt.wname)
            snprintf(lvl_w = wbuf, sizeof(wbuf), " w=%s", opt.wname);
    }
    /* memcached: thread i on server i mod count */
    char *list = strdup(opt.servers), *save = NULL;
    for (char *s = strtok_r(list, ",", &save); s && naddr < 64; s = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(s, ':');
        memset(&addrs[naddr], 0, sizeof(addrs[naddr]));
        addrs[naddr].sin_family = AF_INET;
        if (!colon || inet_pton(AF_INET, (*colon = '\0', s), &addrs[naddr].sin_addr) != 1 ||
            atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535) {
            if (opt.proto == P_MEMCACHED) {
                free(list);
                return usage("--servers wants IPv4 host:port,... for --protocol memcached");
            }
            continue;
        }
        addrs[naddr++].sin_port = htons((uint16_t)atoi(colon + 1));
    }
    free(list);
    for (int i = 0; i < opt.threads; i++) {
        worker_t *w = &workers[i];
        w->id = i;
        w->fd = -1;
        w->rng = opt.seed * 1000003u + (uint64_t)i * 7919u + 1;
        if (opt.proto == P_MEMCACHED) {
            if (mc_connect(w) < 0) {
                fprintf(stderr, "quorumkv-bench: cannot connect to any of %s: %s\n", opt.servers,
                        strerror(errno));
                return 1;
            }
        }
    }

    if (opt.preload || opt.hot_keys) {
        uint64_t t0 = now_us();
        for (int i = 0; i < opt.threads; i++)
            pthread_create(&workers[i].th, NULL, preload_main, &workers[i]);
        for (int i = 0; i < opt.threads; i++)
            pthread_join(workers[i].th, NULL);
        totals_t pt;
        collect(&pt);
        if (opt.progress || pt.errors)
            fprintf(stderr, "preload: %ld keys in %.1f s, %llu errors\n", opt.preload ? opt.keys : 0,
                    (double)(now_us() - t0) / 1e6, (unsigned long long)pt.errors);
        for (int i = 0; i < opt.threads; i++) {
            memset(&workers[i].st, 0, sizeof(workers[i].st));
            workers[i].first_err[0] = '\0';
        }
    }

    void *(*run)(void *) = worker_main;
    if (opt.rate > 0) {
        run = opt.proto == P_MEMCACHED ? open_mc_main : open_qkv_main;
        open_gap_us = 1e6 / opt.rate;
        open_start = now_us() + 20000; /* every thread running by then */
        open_from = open_start + (uint64_t)(opt.warmup * 1e6);
        open_to = open_from + (uint64_t)(opt.duration * 1e6);
    }
    for (int i = 0; i < opt.threads; i++)
        pthread_create(&workers[i].th, NULL, run, &workers[i]);
    struct timespec tick = {0, 50 * 1000000L};
    uint64_t start = opt.rate > 0 ? open_start : now_us(), mstart = 0, last = 0;
    int sec = 0;
    totals_t *prev = calloc(1, sizeof(totals_t)), *cur = calloc(1, sizeof(totals_t));
    if (csv)
        fprintf(csv, "second,ops,ops_per_s,reads,writes,incrs,errors,p50_us,p99_us,max_us\n");
    while (atomic_load(&phase) < 2) {
        nanosleep(&tick, NULL);
        uint64_t now = now_us();
        if (atomic_load(&phase) == 0 && now >= start && now - start >= (uint64_t)(opt.warmup * 1e6)) {
            atomic_store(&phase, 1);
            mstart = last = now;
        }
        if (atomic_load(&phase) != 1)
            continue;
        if (opt.ops == 0 && now - mstart >= (uint64_t)(opt.duration * 1e6))
            atomic_store(&phase, 2);
        if (now - last >= 1000000 && prev && cur) {
            collect(cur);
            sec++;
            uint64_t dh[HIST_N], dops = cur->ops - prev->ops, dmax = 0;
            for (int b = 0; b < HIST_N; b++) {
                dh[b] = cur->h[b] - prev->h[b];
                if (dh[b])
                    dmax = hist_value(b);
            }
            double dt = (double)(now - last) / 1e6;
            if (csv)
                fprintf(csv, "%d,%llu,%.1f,%llu,%llu,%llu,%llu,%llu,%llu,%llu\n", sec,
                        (unsigned long long)dops, (double)dops / dt,
                        (unsigned long long)(cur->reads - prev->reads),
                        (unsigned long long)(cur->writes - prev->writes),
                        (unsigned long long)(cur->incrs - prev->incrs),
                        (unsigned long long)(cur->errors - prev->errors),
                        (unsigned long long)hist_pct(dh, dops, 0.5),
                        (unsigned long long)hist_pct(dh, dops, 0.99), (unsigned long long)dmax);
            if (opt.progress)
                fprintf(stderr, "[%4ds] %10.0f ops/s  errors %llu  p99 so far %llu us\n", sec,
                        (double)dops / dt, (unsigned long long)cur->errors,
                        (unsigned long long)hist_pct(cur->h, cur->ops, 0.99));
            totals_t *t = prev;
            prev = cur;
            cur = t;
            last = now;
        }
    }
    uint64_t mend = now_us();
    for (int i = 0; i < opt.threads; i++)
        pthread_join(workers[i].th, NULL);
    double secs = mstart ? (double)(mend - mstart) / 1e6 : 0.0;
    if (opt.rate > 0)
        secs = opt.duration; /* the window of intended send times */
    totals_t *t = cur ? cur : prev;
    if (t) {
        collect(t);
        print_human(opt.json && !strcmp(opt.json, "-") ? stderr : stdout, t, secs);
        if (opt.json) {
            FILE *f = strcmp(opt.json, "-") ? fopen(opt.json, "w") : stdout;
            if (!f)
                fprintf(stderr, "quorumkv-bench: cannot write %s: %s\n", opt.json, strerror(errno));
            else {
                print_json(f, t, secs);
                if (f != stdout)
                    fclose(f);
            }
        }
    }
    if (csv)
        fclose(csv);
    for (int i = 0; i < opt.threads; i++) {
        if (workers[i].fd >= 0)
            close(workers[i].fd);
        free(workers[i].buf);
    }
    free(prev);
    free(cur);
    free(workers);
    free(acked);
    free(nextseq);
    free(filler);
    qkv_close(client);
    return 0;
}
