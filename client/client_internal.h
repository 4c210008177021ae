/*
 * client_internal.h - what the files of libquorumkv share, and what the
 * client's own tests reach into (never installed, never included by
 * applications).
 *
 *   io.c      one connection: non-blocking socket, every wait bounded by a
 *             deadline (poll), every reply line and value bounded
 *   topo.c    the cluster as the client sees it: members and ring parsed
 *             from the text replies, a key's preference list
 *   result.c  qkv_result_t and the `vget` reply parser
 *   client.c  the public API: node pools, routing, failover, refresh thread
 *
 * Errors inside the library are QKV_ERR_* codes plus a message written
 * into a caller's `char err[QKV_ERRLEN]`; the public functions turn them
 * into *errptr.
 */
#ifndef QKV_CLIENT_INTERNAL_H
#define QKV_CLIENT_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "quorumkv.h"

#define QKV_ERRLEN 256
#define QKV_LINE_MAX (64 * 1024)  /* longest reply line accepted (the server's own bound) */
#define QKV_NAME_MAX 255          /* node name bytes */
#define QKV_MAX_NODES 1024        /* members the client tracks */
#define QKV_MAX_RANGES (1u << 20) /* ring lines accepted */
#define QKV_MAX_N 32              /* replicas per range */
#define QKV_MAX_SIBLINGS 4096     /* siblings in one vget reply */
#define QKV_MGET_MAX 4096         /* keys in one qkv_mget */

/* Monotonic milliseconds. */
int64_t client_now_ms(void);

/* A decimal 0..UINT64_MAX of exactly len digits (no sign, no spaces). */
bool client_parse_u64(const char *t, size_t len, uint64_t *out);

/* printf into err (QKV_ERRLEN bytes) and return code, for one-line error
 * paths. */
int client_fail(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- io.c: one connection ---- */

typedef struct qconn {
    int fd;
    char *buf;          /* input: unread bytes are buf[start, end) */
    size_t cap, start, end;
} qconn_t;

/* Resolve "host:port" (IPv4 or a name) into *sa; 0 or QKV_ERR_ARG. */
int qaddr_parse(const char *hostport, struct sockaddr_in *sa, char *err);

/* Connect (non-blocking, TCP_NODELAY) before deadline_ms.  Returns 0 and
 * *out (free with qconn_close), QKV_ERR_CONN, QKV_ERR_TIMEOUT or
 * QKV_ERR_NOMEM. */
int qconn_open(const struct sockaddr_in *sa, int64_t deadline_ms, qconn_t **out, char *err);
void qconn_close(qconn_t *c);
/* An idle pooled connection may be reused: the peer has not closed it and
 * sent nothing unasked. */
bool qconn_reusable(qconn_t *c);
/* Send all of iov (at most QCONN_MAX_IOV pieces) before deadline_ms; 0,
 * QKV_ERR_CONN or QKV_ERR_TIMEOUT. */
#define QCONN_MAX_IOV 16
int qconn_send(qconn_t *c, const struct iovec *iov, int iovcnt, int64_t deadline_ms, char *err);
/* Next reply line (without "\r\n", NUL-terminated in place) before the
 * deadline; the pointer is valid until the next read.  A line longer than
 * QKV_LINE_MAX is QKV_ERR_PROTO. */
int qconn_line(qconn_t *c, int64_t deadline_ms, char **line, size_t *len, char *err);
/* The next n bytes (n <= the caller's bound), valid until the next read. */
int qconn_bytes(qconn_t *c, size_t n, int64_t deadline_ms, char **p, char *err);
/* Bytes received and not yet read (a clean connection has none). */
size_t qconn_pending(const qconn_t *c);

/* ---- topo.c: members and ring ---- */

enum qnode_state { QNODE_UP = 0, QNODE_DOWN, QNODE_JOINING, QNODE_LEAVING, QNODE_GONE };

/* One member parsed from a `members` line. */
typedef struct qmember {
    char name[QKV_NAME_MAX + 1];
    char addr[QKV_NAME_MAX + 8];  /* host:client_port */
    enum qnode_state state;
} qmember_t;

/* Parse a `members` reply body (lines joined by '\n', END excluded).
 * *out is malloc()ed (caller frees).  0, QKV_ERR_PROTO or QKV_ERR_NOMEM. */
int topo_parse_members(const char *text, qmember_t **out, size_t *n, char *err);

/* The ring as parsed from `ring`: range i is (start_i, ends[i]]; ends[] is
 * ascending and range 0 wraps (its start is the last end).  Node indices in
 * lists refer to `names`. */
typedef struct qring {
    size_t nranges;
    uint64_t *ends;
    uint32_t n;          /* entries per list (the longest preference list) */
    uint16_t *lists;     /* nranges * n node indices; QRING_NONE pads a short list */
    size_t nnames;
    char **names;        /* distinct node names in order of appearance */
} qring_t;

#define QRING_NONE UINT16_MAX

/* Parse a `ring` reply body; checks that the ranges tile the ring (each
 * start is the previous end, ends ascending).  *out is the caller's (free
 * with topo_ring_free).  0, QKV_ERR_PROTO or QKV_ERR_NOMEM. */
int topo_parse_ring(const char *text, qring_t **out, char *err);
void topo_ring_free(qring_t *r);
/* Index of the range holding position pos: the first end >= pos, else 0
 * (ring/ring.c's ring_range_of, on the parsed ends). */
size_t topo_range_of(const qring_t *r, uint64_t pos);
/* Position of a key on the ring (common/hash.c, as the servers). */
uint64_t topo_key_position(const void *key, size_t len);

/* ---- result.c ---- */

struct qkv_result {
    size_t nsib, cap;
    qkv_sibling_t *sib;
    char *context;
};

/* Read one `vget` reply (VALUE ... lines, CONTEXT, END) for key; *out is
 * the caller's.  Error replies become their QKV_ERR_* code. */
int result_read_vget(qconn_t *c, const char *key, size_t klen, size_t max_value,
                     int64_t deadline_ms, qkv_result_t **out, char *err);

/* Map a SERVER_ERROR / CLIENT_ERROR / ERROR line to its code and message. */
int reply_error(const char *line, size_t len, const char *what, char *err);

/* ---- client.c (for tests) ---- */

/* The client's current ring and members, for qkv_replicas and tests. */
int client_owner_names(qkv_client_t *c, const char *key, size_t klen, char *buf, size_t cap);

#endif
