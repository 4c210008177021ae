/*
 * quorumkv.h - libquorumkv, the C client of a quorumkv cluster.
 *
 * Link with -lquorumkv -lxxhash -lpthread (static: lib/libquorumkv.a, or
 * shared: lib/libquorumkv.so; both export only qkv_* symbols).
 *
 * What it does.  qkv_connect() takes a list of seed addresses (client
 * ports), learns the cluster's members and ring from one of them and keeps
 * that view fresh: a background thread re-reads `members` and `stats`
 * every qkv_config_t.refresh_ms and re-reads `ring` when the cluster's
 * ring_epoch changes; a connection error wakes it at once.  Each request is
 * sent straight to a live replica of its key, hashed exactly as the servers
 * hash it (xxh3-64 of the key bytes): the first live owner in the key's
 * preference list, so no server has to forward it.  Each node has a pool of
 * connections; a connection error fails over to the next replica.
 *
 * Conventions (as LevelDB's c.h):
 *
 * (1) Opaque handles only (qkv_client_t, qkv_result_t); the value structs
 *     below (qkv_config_t, qkv_opts_t, qkv_sibling_t) are plain data.
 *
 * (2) Keys and values are (pointer, length) pairs, binary-safe for values.
 *     A key is 1..QKV_KEY_MAX bytes with no byte <= 0x20 and no 0x7f (the
 *     memcached rule; the server enforces the same).
 *
 * (3) Errors.  Every call that can fail returns an int: 0 when it did what
 *     was asked, QKV_NOT_FOUND (positive) when the key does not exist,
 *     which is a result and not an error, or a negative QKV_ERR_* code.  It
 *     also takes `char **errptr` as the last argument, which may be NULL.
 *     If not NULL, *errptr must be NULL or a string malloc()ed by this
 *     library on entry; on failure the library frees the old string and
 *     stores a new malloc()ed message there (free it with qkv_free()); on
 *     success *errptr is left unchanged.  No call aborts or exits the
 *     process, and none raises signals (SIGPIPE is suppressed per send).
 *
 * (4) Ownership.  Every buffer the library returns is the caller's, to be
 *     released with the function named where it is returned (qkv_free,
 *     qkv_result_free).  Pointers obtained from a qkv_result_t (siblings,
 *     their values, the context) belong to that result and are valid until
 *     qkv_result_free().  Pointers the caller passes in (keys, values,
 *     options, the context string) are only read during the call.
 *
 * (5) Threads.  A qkv_client_t may be shared by any number of threads: all
 *     calls on it are thread-safe, and concurrent requests use separate
 *     pooled connections.  qkv_close() must not race with other calls on
 *     the same client.  A qkv_result_t is not synchronised: one thread at a
 *     time.  The client starts one background thread (topology refresh);
 *     it does not survive fork(): use a client only in the process that
 *     connected it.
 *
 * (6) Retries.  A request is sent to another replica after a connection
 *     error only when that is safe: always when the connection could not be
 *     made (nothing was sent), and for reads (qkv_get, qkv_mget) also after
 *     the request was sent (a lost reply, a timeout, a garbled reply), at
 *     most qkv_config_t.max_retries times.  A write whose reply was lost is
 *     never repeated (a repeated set would add a version; a repeated incr
 *     would count twice): it fails with the error, and the write may or may
 *     not have been applied, as with any Dynamo-style store.  Everything a
 *     request does, failover included, ends by its timeout.
 */
#ifndef QUORUMKV_H
#define QUORUMKV_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stddef.h>
#include <stdint.h>

#define QKV_VERSION_STRING "0.1.0"

/* ---- return codes ---- */

#define QKV_OK 0
#define QKV_NOT_FOUND 1          /* the key does not exist (a result) */
#define QKV_ERR_ARG (-1)         /* bad argument: NULL, bad key, bad level, bad context */
#define QKV_ERR_NOMEM (-2)       /* out of memory */
#define QKV_ERR_CONN (-3)        /* no replica could be reached, or a connection broke */
#define QKV_ERR_TIMEOUT (-4)     /* no complete answer within the request's timeout */
#define QKV_ERR_PROTO (-5)       /* the server's reply was not the protocol (or unknown command) */
#define QKV_ERR_QUORUM (-6)      /* SERVER_ERROR quorum not reached: too few replicas answered */
#define QKV_ERR_SERVER (-7)      /* another SERVER_ERROR (storage failure, busy, value too large) */
#define QKV_ERR_CLIENT (-8)      /* the server refused the request: CLIENT_ERROR (bad context,
                                    level above the replication factor) */
#define QKV_ERR_NOT_NUMBER (-9)  /* qkv_incr on a value that is not a decimal number */

/* A static English description of a code; never NULL. */
const char *qkv_strerror(int code);

/* Free a string the library allocated (error messages, qkv_admin replies).
 * NULL is a no-op. */
void qkv_free(void *p);

/* ---- limits ---- */

#define QKV_KEY_MAX 250          /* bytes in a key */
#define QKV_CONTEXT_MAX 16384    /* bytes in a causal context string */

/* ---- consistency levels ----
 * A level is how many replicas must answer: QKV_LEVEL_ONE, _QUORUM, _ALL,
 * a count 1..16, or QKV_LEVEL_DEFAULT (the client's configured default,
 * else the cluster's cluster.r / cluster.w). */
#define QKV_LEVEL_DEFAULT 0
#define QKV_LEVEL_ONE (-1)
#define QKV_LEVEL_QUORUM (-2)
#define QKV_LEVEL_ALL (-3)
#define QKV_LEVEL_MAX 16

/* Parse "one", "quorum", "all" (any case) or "1".."16" into *level.
 * Returns 0, or QKV_ERR_ARG (level untouched). */
int qkv_level_parse(const char *s, int *level);

/* ---- client ---- */

typedef struct qkv_client qkv_client_t;

/* Client-wide settings.  Fill with qkv_config_init(), then change fields;
 * a NULL config means every default. */
typedef struct qkv_config {
    int timeout_ms;          /* default per-request deadline, failover included [2000] */
    int connect_timeout_ms;  /* one TCP connect [500] */
    int max_idle_per_node;   /* idle connections kept in each node's pool [16] */
    int max_retries;         /* further replicas a read may try after a failure [2] */
    int refresh_ms;          /* topology check period, 100..60000 [1000] */
    int read_level;          /* used for QKV_LEVEL_DEFAULT reads [QKV_LEVEL_DEFAULT] */
    int write_level;         /* used for QKV_LEVEL_DEFAULT writes [QKV_LEVEL_DEFAULT] */
    size_t max_value_bytes;  /* larger values in a reply are a protocol error [64 MiB] */
} qkv_config_t;

void qkv_config_init(qkv_config_t *cfg);

/* qkv_connect - connect to the cluster that `seeds` belong to.
 *
 * seeds: comma-separated "host:port" client addresses (IPv4 or names), at
 * least one; they are tried in order until one answers `members`, `ring`
 * and `stats`.  Returns a new client (release with qkv_close()), or NULL
 * with *errptr set: QKV_ERR_ARG-class problems (empty or malformed seeds,
 * bad config) or no seed reachable within cfg->timeout_ms each. */
qkv_client_t *qkv_connect(const char *seeds, const qkv_config_t *cfg, char **errptr);

/* qkv_close - stop the refresh thread, close every connection, free the
 * client.  NULL is a no-op. */
void qkv_close(qkv_client_t *c);

/* ---- per-request options ----
 * Zero-initialise (QKV_OPTS_INIT or memset) and set what you need; NULL
 * options mean all defaults. */
typedef struct qkv_opts {
    int level;            /* R for reads, W for writes (see levels above) */
    int timeout_ms;       /* 0: the client's timeout_ms */
    const char *context;  /* qkv_set / qkv_delete only: a context from
                             qkv_result_context(); the write then supersedes
                             exactly the siblings that read saw.  NULL: the
                             server's own context (plain overwrite). */
} qkv_opts_t;

#define QKV_OPTS_INIT {QKV_LEVEL_DEFAULT, 0, NULL}

/* ---- results of reads ---- */

/* One version of a key.  A tombstone (deleted != 0) has no value (len 0). */
typedef struct qkv_sibling {
    const char *value;    /* len bytes, plus a NUL after them for convenience */
    size_t len;
    uint32_t flags;       /* memcached client flags */
    int64_t ts_us;        /* write time, microseconds since the epoch (coordinator clock) */
    int deleted;          /* 1: a tombstone */
} qkv_sibling_t;

typedef struct qkv_result qkv_result_t;

/* Every sibling the replicas returned, tombstones included. */
size_t qkv_result_count(const qkv_result_t *r);
/* Sibling i (0 <= i < count), or NULL. */
const qkv_sibling_t *qkv_result_sibling(const qkv_result_t *r, size_t i);
/* Number of live (not deleted) siblings: 0 means the key is not found. */
size_t qkv_result_live(const qkv_result_t *r);
/* The live sibling a memcached `get` would show (newest ts_us), or NULL. */
const qkv_sibling_t *qkv_result_newest(const qkv_result_t *r);
/* The causal context of this read, "[]" for a key never written; pass it
 * in qkv_opts_t.context to write back a merge of the siblings. */
const char *qkv_result_context(const qkv_result_t *r);
/* Release a result and everything it points to.  NULL is a no-op. */
void qkv_result_free(qkv_result_t *r);

/* ---- requests ---- */

/* qkv_get - read every sibling of a key (level = R).
 * Returns 0 and *out = a new result (also when the key does not exist:
 * qkv_result_live() is then 0), or a negative code with *out = NULL. */
int qkv_get(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
            qkv_result_t **out, char **errptr);

/* qkv_mget - qkv_get of n keys (n <= 4096), grouped per node and pipelined:
 * one round trip per node.  out[i] receives key i's result or NULL;
 * codes (may be NULL) receives each key's code (0 or negative).  Returns 0
 * when every key was answered, else the first key's error code (the other
 * keys' results are still filled in). */
int qkv_mget(qkv_client_t *c, const qkv_opts_t *o, size_t n, const char *const *keys,
             const size_t *klens, qkv_result_t **out, int *codes, char **errptr);

/* qkv_set - store a value (level = W); with o->context, superseding exactly
 * the siblings of that read.  exptime follows memcached: 0 never, up to 30
 * days relative seconds, beyond an absolute unix time, negative expired.
 * Returns 0 when W replicas stored it. */
int qkv_set(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
            const void *value, size_t vlen, uint32_t flags, int64_t exptime, char **errptr);

/* qkv_delete - write a tombstone (level = W).  Returns 0, or QKV_NOT_FOUND
 * when no live value existed. */
int qkv_delete(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
               char **errptr);

/* qkv_touch - set a new expiry time (level = W).  Returns 0 or
 * QKV_NOT_FOUND.  Sent to the key's first live owner (read-modify-write). */
int qkv_touch(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
              int64_t exptime, char **errptr);

/* qkv_incr - add delta to a decimal counter (level = W), wrapping at 2^64;
 * *value (may be NULL) receives the new value.  Returns 0, QKV_NOT_FOUND,
 * or QKV_ERR_NOT_NUMBER.  Sent to the key's first live owner, never
 * repeated after it was sent. */
int qkv_incr(qkv_client_t *c, const qkv_opts_t *o, const char *key, size_t klen,
             uint64_t delta, uint64_t *value, char **errptr);

/* ---- cluster information ---- */

/* qkv_admin - one operator command to one node and its reply.
 *
 * command: "stats", "members", "ring", "aae" or "transfers" (others are
 * QKV_ERR_ARG).
 * node: a member's name, or NULL for any live node.  On success *reply is a
 * malloc()ed string (free with qkv_free()): the reply's lines before END,
 * each ending in '\n'.  A server that does not know the command gives
 * QKV_ERR_PROTO. */
int qkv_admin(qkv_client_t *c, const char *node, const char *command, char **reply,
              char **errptr);

/* qkv_replicas - the key's preference list as the client sees it, comma-
 * separated node names in preference order ("n2,n3,n1"), written to buf
 * (cap bytes including the NUL).  Returns the number of replicas, or
 * QKV_ERR_ARG (bad key, or buf too small). */
int qkv_replicas(qkv_client_t *c, const char *key, size_t klen, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
