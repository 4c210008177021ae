/*
 * config.h - the daemon's configuration, read from an INI file.
 *
 * Every key of PROTOCOL.md §2 plus the daemon's own limits.  Parsing is
 * table-driven (config.c): each key has a type and a range; an unknown
 * section or key, a duplicate key, or a value out of range is an error that
 * names the file and line.  Defaults are applied first, so a config needs
 * only node.name and node.data_dir.
 */
#ifndef QKV_CONFIG_H
#define QKV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/log.h"

#define CONFIG_MAX_SEEDS 64
#define CONFIG_NAME_MAX 64
#define CONFIG_HOST_MAX 256

typedef struct config_addr {
    char host[CONFIG_HOST_MAX];
    int port;
} config_addr_t;

typedef struct config {
    /* [node] */
    char name[CONFIG_NAME_MAX];
    char host[CONFIG_HOST_MAX];
    int client_port;
    int peer_port;
    char data_dir[4096];
    enum log_level log_level;
    uint64_t max_value_bytes;
    int max_connections;
    char cluster_secret[256]; /* "" = peer frames unauthenticated */
    /* [cluster] */
    config_addr_t seeds[CONFIG_MAX_SEEDS];
    int nseeds;
    int n, r, w;
    int vnodes;
    int request_timeout_ms;
    double read_repair_chance; /* fraction of reads that ask all N and repair */
    int speculative_retry_ms;  /* back up a slow read replica after this (0: never) */
    int max_siblings;
    int max_vv_entries;
    bool read_repair;          /* false: no read repair at all (tests) */
    /* [server] admission control (admit.h) */
    int queue_timeout_ms; /* a request that cannot start this soon after it arrived: busy (0: off) */
    int max_inflight;     /* requests coordinated at once; replica requests served per loop turn */
    /* [gossip] */
    int gossip_interval_ms;
    double phi_threshold;
    /* [handoff] */
    bool handoff_enabled;
    int max_hints_per_node;
    int hint_rate_per_s;
    int hint_ttl_s;
    /* [antientropy] */
    bool ae_enabled;
    int ae_interval_ms;
    int ae_max_keys_per_s;        /* objects pushed or pulled per second */
    uint64_t ae_max_bytes_per_s;  /* exchange bytes sent + received per second */
    uint64_t xfer_max_bytes_per_s; /* range transfer bytes this node moves per second */
    /* [storage] */
    bool storage_sync;
    int cache_mb;
    int object_cache_mb; /* decoded-object cache in front of LevelDB; 0 = off */
    int tombstone_grace_s;
    /* [debug] */
    bool fault_injection; /* allow the `debug` client command (tests only) */
} config_t;

/* Fill *cfg with every default. */
void config_defaults(config_t *cfg);

/* Read path into *cfg (defaults first).  Returns 0, or -1 with a one-line
 * reason "path:line: what is wrong" (or "path: ..." when no line applies)
 * in err. */
int config_load(config_t *cfg, const char *path, char *err, size_t errlen);

/* Parse "host:port[,host:port...]" into cfg->seeds.  0 or -1 with err. */
int config_parse_seeds(config_t *cfg, const char *value, char *err, size_t errlen);

#endif
