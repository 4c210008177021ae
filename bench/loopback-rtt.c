/*
 * loopback-rtt.c - the floor under one replica round trip on this machine:
 * a message over loopback TCP to another process that waits in epoll (as a
 * quorumkvd node does), echoed back, one at a time, so both sides sleep
 * between messages and every message wakes its receiver.  An R=2 read or
 * W=2 write pays one such round trip (coordinator -> replica ->
 * coordinator) on top of the client's own; bench/bench-table.sh prints the
 * figure beside the table.
 *
 *   make build/bench/loopback-rtt && build/bench/loopback-rtt [ROUND_TRIPS]
 *
 * Prints "loopback round trip: N/s, p50 X us, p99 Y us".  Exit 1 when a
 * socket call fails; the echo child exits when the socket closes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_BYTES 32 /* about a REPLICA_GET frame's head */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The replica's side: epoll, read, echo, until the other side closes. */
static void echo_loop(int ls)
{
    int one = 1, s = accept(ls, NULL, NULL), ep = epoll_create1(0);
    if (s < 0 || ep < 0)
        _exit(1);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event e = {.events = EPOLLIN, .data.fd = s};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &e) < 0)
        _exit(1);
    char buf[256];
    for (;;) {
        struct epoll_event ev;
        if (epoll_wait(ep, &ev, 1, -1) < 1)
            continue;
        ssize_t n = recv(s, buf, sizeof(buf), 0);
        if (n <= 0 || send(s, buf, (size_t)n, MSG_NOSIGNAL) != n)
            _exit(0);
    }
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    if (n < 100) {
        fprintf(stderr, "usage: loopback-rtt [ROUND_TRIPS >= 100]\n");
        return 2;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &alen) < 0) {
        perror("loopback-rtt: listen");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("loopback-rtt: fork");
        return 1;
    }
    if (child == 0)
        echo_loop(ls);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    double *rtt = malloc((size_t)n * sizeof(*rtt));
    if (c < 0 || !rtt || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0) {
        perror("loopback-rtt: connect");
        return 1;
    }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char buf[256];
    memset(buf, 'x', sizeof(buf));
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        double s = now_s();
        if (send(c, buf, MSG_BYTES, MSG_NOSIGNAL) != MSG_BYTES) {
            perror("loopback-rtt: send");
            return 1;
        }
        for (int got = 0; got < MSG_BYTES;) {
            ssize_t r = recv(c, buf, sizeof(buf), 0);
            if (r <= 0) {
                perror("loopback-rtt: recv");
                return 1;
            }
            got += (int)r;
        }
        rtt[i] = now_s() - s;
    }
    double secs = now_s() - t0;
    close(c);
    waitpid(child, NULL, 0);
    qsort(rtt, (size_t)n, sizeof(*rtt), cmp_double);
    printf("loopback round trip: %.0f/s, p50 %.1f us, p99 %.1f us\n", n / secs,
           rtt[n / 2] * 1e6, rtt[(size_t)n * 99 / 100] * 1e6);
    free(rtt);
    return 0;
}
