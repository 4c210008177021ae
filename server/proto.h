/*
 * proto.h - parser for one command line of the memcached text protocol and
 * quorumkv's extensions (PROTOCOL.md §3).
 *
 * Pure: no I/O, no allocation.  mc_parse() splits a line (without its
 * "\r\n") on spaces in place and fills an mc_request_t whose key pointers
 * point into that line, so the line must outlive the request.  Keys are
 * checked here (1..250 bytes, no control characters), numbers are checked
 * with memcached's rules, and trailing `r=LEVEL` / `w=LEVEL` tokens are
 * taken as per-request consistency options, never as keys.  The result code
 * says which memcached error line to send.
 */
#ifndef QKV_PROTO_H
#define QKV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_KEY_MAX 250

enum mc_cmd {
    MC_GET, MC_GETS, MC_GAT, MC_GATS,
    MC_SET, MC_ADD, MC_REPLACE, MC_APPEND, MC_PREPEND, MC_CAS,
    MC_DELETE, MC_INCR, MC_DECR, MC_TOUCH,
    MC_FLUSH_ALL, MC_STATS, MC_VERSION, MC_VERBOSITY, MC_QUIT,
    MC_LGET, MC_SIBLINGS, MC_CONSISTENCY, MC_RING, MC_MEMBERS, MC_LEAVE, MC_DEBUG,
};

enum mc_parse_rc {
    MC_OK = 0,
    MC_ERR_UNKNOWN,     /* "ERROR" */
    MC_ERR_FORMAT,      /* "CLIENT_ERROR bad command line format" */
    MC_ERR_DELTA,       /* "CLIENT_ERROR invalid numeric delta argument" */
    MC_ERR_EXPTIME,     /* "CLIENT_ERROR invalid exptime argument" */
    MC_ERR_LEVEL,       /* "CLIENT_ERROR bad consistency level" */
    MC_ERR_TOO_LARGE,   /* storage command whose length is over the limit:
                           "SERVER_ERROR object too large for cache", and
                           the data block (req->bytes + 2) must be swallowed */
};

/* A consistency level: ONE, QUORUM, ALL, or an explicit count. */
enum mc_level_kind { MC_LEVEL_DEFAULT = 0, MC_LEVEL_ONE, MC_LEVEL_QUORUM, MC_LEVEL_ALL, MC_LEVEL_NUM };
typedef struct mc_level {
    enum mc_level_kind kind;
    int num; /* for MC_LEVEL_NUM, >= 1 */
} mc_level_t;

typedef struct mc_key {
    const char *ptr;
    size_t len;
} mc_key_t;

typedef struct mc_request {
    enum mc_cmd cmd;
    mc_key_t *keys;   /* caller's array */
    size_t nkeys;
    uint32_t flags;
    int64_t exptime;  /* as sent: relative seconds, absolute unix time, or negative */
    int64_t bytes;    /* storage commands: length of the data block */
    uint64_t cas;     /* cas unique */
    uint64_t delta;   /* incr/decr */
    int64_t delay;    /* flush_all (0..UINT32_MAX, memcached exptime rules), verbosity */
    bool has_delay;
    bool noreply;
    mc_level_t r, w;  /* MC_LEVEL_DEFAULT unless given */
    const char *arg;  /* stats subcommand, debug switch, or NULL; points to argbuf */
    const char *arg2; /* debug: on|off */
    char argbuf[2][32]; /* NUL-terminated copies of those words */
} mc_request_t;

/* Parse line[0..len) (no "\r\n"; it is modified in place).  keys/maxkeys is
 * the caller's array for key pointers; more keys than maxkeys is
 * MC_ERR_FORMAT.  max_value is the largest data block a storage command may
 * announce.  On MC_ERR_TOO_LARGE req->bytes and req->noreply are set. */
enum mc_parse_rc mc_parse(char *line, size_t len, mc_request_t *req, mc_key_t *keys,
                          size_t maxkeys, uint64_t max_value);

/* Parse "one", "quorum", "all" or 1..16 into *lv; 0 or -1. */
int mc_parse_level(const char *s, size_t len, mc_level_t *lv);
/* Resolve a level against replication factor n and the default: the number
 * of replies needed, or -1 when out of range (0 or > n). */
int mc_level_resolve(mc_level_t lv, int n, int dflt);
/* Text of a level for replies ("one", "quorum", "all" or the number). */
const char *mc_level_str(mc_level_t lv, char *buf, size_t cap);

/* The memcached reply line (with "\r\n") for a parse error. */
const char *mc_parse_error_line(enum mc_parse_rc rc);

#endif
