/*
 * io.c - one client connection (see client_internal.h).
 *
 * Sockets are non-blocking; every wait is a poll() bounded by the
 * request's absolute deadline, so a server that never answers costs at
 * most the timeout and a server that closes mid-reply is an error at once.
 * Input goes into one growable buffer: lines and value blocks are handed
 * out as pointers into it, valid until the next read.  Nothing grows
 * without a bound: a line is at most QKV_LINE_MAX bytes, a value block the
 * caller's bound.
 */
#include "client_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int client_fail(char *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        va_start(ap, fmt);
        vsnprintf(err, QKV_ERRLEN, fmt, ap);
        va_end(ap);
    }
    return code;
}

int qaddr_parse(const char *hostport, struct sockaddr_in *sa, char *err)
{
    char host[QKV_NAME_MAX + 1];
    const char *colon = strrchr(hostport, ':');
    char *end;
    long port;
    size_t hl;

    if (!colon || colon == hostport)
        return client_fail(err, QKV_ERR_ARG, "address '%.64s' is not host:port", hostport);
    hl = (size_t)(colon - hostport);
    if (hl >= sizeof(host))
        return client_fail(err, QKV_ERR_ARG, "host name too long in '%.64s'", hostport);
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno || *end != '\0' || end == colon + 1 || port < 1 || port > 65535)
        return client_fail(err, QKV_ERR_ARG, "bad port in address '%.64s'", hostport);
    memcpy(host, hostport, hl);
    host[hl] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &sa->sin_addr) == 1)
        return 0;
    /* a name: IPv4 only, as the servers listen on IPv4 */
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai)
        return client_fail(err, QKV_ERR_ARG, "cannot resolve '%s': %s", host, gai_strerror(rc));
    sa->sin_addr = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
    freeaddrinfo(ai);
    return 0;
}

/* Milliseconds left until deadline, for poll(); 0 once it passed. */
static int left_ms(int64_t deadline_ms)
{
    int64_t left = deadline_ms - client_now_ms();
    if (left <= 0)
        return 0;
    return left > 600000 ? 600000 : (int)left;
}

/* Wait for events on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int ms = left_ms(deadline_ms);
        if (ms == 0)
            return 0;
        int rc = poll(&p, 1, ms);
        if (rc > 0)
            return 1;
        if (rc == 0)
            continue; /* recheck the clock: poll may return a little early */
        if (errno != EINTR)
            return -1;
    }
}

int qconn_open(const struct sockaddr_in *sa, int64_t deadline_ms, qconn_t **out, char *err)
{
    char addr[64];
    int fd, one = 1, soerr = 0;
    socklen_t sl = sizeof(soerr);
    qconn_t *c;

    inet_ntop(AF_INET, &sa->sin_addr, addr, sizeof(addr));
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return client_fail(err, QKV_ERR_CONN, "socket: %s", strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            close(fd);
            return client_fail(err, QKV_ERR_CONN, "connect %s:%u: %s", addr, ntohs(sa->sin_port),
                               strerror(e));
        }
        int w = wait_fd(fd, POLLOUT, deadline_ms);
        if (w <= 0) {
            close(fd);
            return w == 0 ? client_fail(err, QKV_ERR_TIMEOUT, "connect %s:%u: timed out", addr,
                                        ntohs(sa->sin_port))
                          : client_fail(err, QKV_ERR_CONN, "connect %s:%u: poll failed", addr,
                                        ntohs(sa->sin_port));
        }
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
            close(fd);
            return client_fail(err, QKV_ERR_CONN, "connect %s:%u: %s", addr, ntohs(sa->sin_port),
                               strerror(soerr ? soerr : errno));
        }
    }
    c = calloc(1, sizeof(*c));
    if (!c || !(c->buf = malloc(16384))) {
        free(c);
        close(fd);
        return client_fail(err, QKV_ERR_NOMEM, "out of memory");
    }
    c->fd = fd;
    c->cap = 16384;
    *out = c;
    return 0;
}

void qconn_close(qconn_t *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c->buf);
    free(c);
}

bool qconn_reusable(qconn_t *c)
{
    char b;
    if (c->start != c->end)
        return false;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    /* 0: the server closed it (restarted, idle timeout); > 0: bytes nobody
     * asked for, so replies would be out of step */
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

size_t qconn_pending(const qconn_t *c)
{
    return c->end - c->start;
}

int qconn_send(qconn_t *c, const struct iovec *iov_in, int iovcnt, int64_t deadline_ms, char *err)
{
    struct iovec iov[QCONN_MAX_IOV];
    int n = iovcnt, first = 0;
    if (iovcnt < 0 || iovcnt > QCONN_MAX_IOV)
        return client_fail(err, QKV_ERR_ARG, "send: %d pieces (at most %d)", iovcnt, QCONN_MAX_IOV);
    memcpy(iov, iov_in, (size_t)n * sizeof(*iov));
    while (first < n) {
        struct msghdr mh = {.msg_iov = iov + first, .msg_iovlen = (size_t)(n - first)};
        ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return client_fail(err, QKV_ERR_CONN, "send: %s", strerror(errno));
            int r = wait_fd(c->fd, POLLOUT, deadline_ms);
            if (r == 0)
                return client_fail(err, QKV_ERR_TIMEOUT, "send: timed out");
            if (r < 0)
                return client_fail(err, QKV_ERR_CONN, "send: poll failed");
            continue;
        }
        size_t done = (size_t)w;
        while (first < n && done >= iov[first].iov_len) {
            done -= iov[first].iov_len;
            first++;
        }
        if (first < n) {
            iov[first].iov_base = (char *)iov[first].iov_base + done;
            iov[first].iov_len -= done;
        }
    }
    return 0;
}

/* Make room for at least `want` unread bytes in the buffer. */
static int reserve(qconn_t *c, size_t want, char *err)
{
    if (c->start > 0 && (c->start == c->end || c->cap - c->start < want)) {
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    if (c->cap >= want + 1)
        return 0;
    size_t cap = c->cap;
    while (cap < want + 1)
        cap *= 2;
    char *b = realloc(c->buf, cap);
    if (!b)
        return client_fail(err, QKV_ERR_NOMEM, "out of memory for a %zu-byte reply", want);
    c->buf = b;
    c->cap = cap;
    return 0;
}

/* Receive more bytes (at least one) before the deadline. */
static int fill(qconn_t *c, int64_t deadline_ms, char *err)
{
    if (c->cap - c->end < 512 && reserve(c, c->end - c->start + 4096, err) < 0)
        return QKV_ERR_NOMEM;
    /* wait first: fill() runs when the buffer holds no complete answer, so
     * a recv before the poll would almost always be a wasted EAGAIN */
    for (;;) {
        int w = wait_fd(c->fd, POLLIN, deadline_ms);
        if (w == 0)
            return client_fail(err, QKV_ERR_TIMEOUT, "no reply within the timeout");
        if (w < 0)
            return client_fail(err, QKV_ERR_CONN, "recv: poll failed");
        ssize_t r = recv(c->fd, c->buf + c->end, c->cap - c->end, 0);
        if (r > 0) {
            c->end += (size_t)r;
            return 0;
        }
        if (r == 0)
            return client_fail(err, QKV_ERR_CONN, "the server closed the connection mid-reply");
        if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return client_fail(err, QKV_ERR_CONN, "recv: %s", strerror(errno));
    }
}

int qconn_line(qconn_t *c, int64_t deadline_ms, char **line, size_t *len, char *err)
{
    size_t scanned = 0;
    for (;;) {
        size_t avail = c->end - c->start;
        char *p = avail > scanned ? memchr(c->buf + c->start + scanned, '\n', avail - scanned)
                                  : NULL;
        if (p) {
            size_t l = (size_t)(p - (c->buf + c->start));
            if (l == 0 || p[-1] != '\r')
                return client_fail(err, QKV_ERR_PROTO, "reply line not ended by \\r\\n");
            *line = c->buf + c->start;
            *len = l - 1;
            (*line)[l - 1] = '\0';
            c->start += l + 1;
            return 0;
        }
        if (avail > QKV_LINE_MAX)
            return client_fail(err, QKV_ERR_PROTO, "reply line longer than %d bytes", QKV_LINE_MAX);
        scanned = avail;
        /* keep the line at the front so growing preserves it */
        int rc = reserve(c, avail + 4096, err);
        if (rc < 0)
            return rc;
        if ((rc = fill(c, deadline_ms, err)) < 0)
            return rc;
    }
}

int qconn_bytes(qconn_t *c, size_t n, int64_t deadline_ms, char **p, char *err)
{
    int rc = reserve(c, n, err);
    if (rc < 0)
        return rc;
    while (c->end - c->start < n)
        if ((rc = fill(c, deadline_ms, err)) < 0)
            return rc;
    *p = c->buf + c->start;
    c->start += n;
    return 0;
}
