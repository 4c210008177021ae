/*
 * server.h - the daemon's one server struct and the functions the server's
 * files share.
 *
 * One libevent loop, single-threaded (like memcached's worker or redis):
 *
 *   client socket --> conn (conn.c: line/data state machine, backpressure)
 *                       |  mc_parse (proto.c)
 *                       v
 *                     node_* (node.c: memcached semantics on the local
 *                       |     replica via kv.c, item accounting, flush,
 *                       |     the crawler that reclaims dead items)
 *                       v
 *                     store (storage/: LevelDB)
 *
 * The server struct is the only global (server_main in main.c points at it
 * for the signal handlers); every function takes it explicitly so the
 * server's files link into unit tests.
 */
#ifndef QKV_SERVER_H
#define QKV_SERVER_H

#include <event2/event.h>
#include <event2/listener.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "../storage/store.h"
#include "admit.h"
#include "cluster.h"
#include "config.h"
#include "proto.h"

/* Counters reported by `stats`; names follow memcached where one exists. */
typedef struct server_stats {
    uint64_t total_connections, rejected_connections;
    uint64_t cmd_get, cmd_set, cmd_flush, cmd_touch;
    uint64_t get_hits, get_misses, get_expired, get_flushed;
    uint64_t delete_hits, delete_misses;
    uint64_t incr_hits, incr_misses, decr_hits, decr_misses;
    uint64_t cas_hits, cas_misses, cas_badval;
    uint64_t touch_hits, touch_misses;
    uint64_t bytes_read, bytes_written;
    uint64_t total_items;
    uint64_t expired_unfetched, reclaimed, crawler_runs, crawler_idle;
    uint64_t siblings_pruned, vv_entries_pruned;
    uint64_t store_errors;
    uint64_t http_requests_refused; /* HTTP request lines: closed unanswered, as memcached does */
    int64_t curr_items; /* keys whose winner is a live value */
    int64_t bytes;      /* key + winner value bytes of those keys */
} server_stats_t;

struct conn;
TAILQ_HEAD(conn_list, conn);

typedef struct server {
    config_t cfg;
    struct event_base *base;
    struct evconnlistener *listener;
    store_t *store;
    struct ocache *ocache;  /* decoded objects in front of store (node.c); NULL = off */
    uint64_t node_id;       /* this replica's actor in version vectors (node.c load_actor) */
    uint64_t dot_next;      /* the next dot counter this replica mints (node_write) */
    uint64_t dot_lease;     /* counters below it are reserved in metadata */
    int64_t flush_us;       /* items written at or before this are flushed, once now >= it */
    uint64_t write_seq;     /* bumped by every write of the local replica (node.c) */
    int64_t started;        /* unix seconds */
    server_stats_t stats;
    cluster_t cluster;      /* transport, gossip, ring */
    struct handoff *handoff; /* hints for replicas that are down (handoff.c) */
    struct aae *aae;        /* anti-entropy trees (aae.c); NULL when disabled */
    struct xfer *xfer;      /* membership changes and range transfers (transfer.c) */
    struct coord_stats {
        uint64_t reads, writes, forwarded, quorum_failures, read_repairs, replica_errors;
        uint64_t speculative_reads; /* extra replicas asked because one was slow */
        uint64_t key_waits;         /* writes that queued behind another write of their key */
        uint64_t key_wait_timeouts; /* ... and gave up waiting (request_timeout_ms) */
        uint64_t pending_writes;    /* copies sent to future owners during a join or leave */
    } coord;
    struct coord_state *coordq; /* per-key write queues (coord.c) */
    admit_t admit;          /* admission control: in flight, refusals (admit.c) */
    struct conn_list conns; /* every open connection */
    int curr_conns;
    struct event *sig_int, *sig_term, *crawler;
    struct event *reaper;   /* frees closed connections outside their callbacks */
    struct conn_list dead;
    struct ticket *tickets; /* conn.c's spare request tickets (a free list) */
    int ntickets;           /* on it; -1 once connections are closed (no more kept) */
    mc_key_t *keybuf;       /* parse scratch for multi-key commands */
    size_t keybuf_cap;
    uint8_t crawl_cursor[MC_KEY_MAX + 1];
    size_t crawl_cursor_len;
    int64_t expiring_records; /* stored records with a live sibling that has an exptime */
    enum { CRAWL_FLUSH_NONE, CRAWL_FLUSH_DUE, CRAWL_FLUSH_PASS } crawl_flush; /* node.c */
    void *crawl_keys;       /* crawler scratch: keys to reclaim this slice */
    size_t *crawl_lens;
    bool stopping;
} server_t;

/* conn.c */
int conn_listen(server_t *srv, char *err, size_t errlen);
void conn_close_all(server_t *srv);

/* node.c: open storage, load counters and flush time; close. */
int node_open(server_t *srv, char *err, size_t errlen);
void node_close(server_t *srv);
void node_start_crawler(server_t *srv);

/* Wall clock helpers (one place, so tests could fake them). */
int64_t node_now_us(void);

#endif
