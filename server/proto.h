/*
 * proto.h - parser for one command line of the memcached text protocol and
 * quorumkv's extensions (PROTOCOL.md §3).
 *
 * Pure: no I/O, no allocation.  mc_parse() splits a line (without its
 * "\r\n") on spaces in place and fills an mc_request_t whose key pointers
 * point into that line, so the line must outlive the request.  Keys are
 * checked here (1..250 bytes, no control characters), numbers are checked
 * with memcached's rules, and trailing `r=LEVEL` / `w=LEVEL` / `ctx=VECTOR`
 * tokens (the option names in any case) are options, never keys.  The
 * result code says which memcached error line to send, req->noreply whether
 * to send it, and req->swallow whether a data block follows that must be
 * discarded.
 *
 * A get/gets/gat/gats line may be longer than the connection holds
 * (memcached reads multi-gets of any length): the connection then parses it
 * a token at a time with mc_get_prefix() and mc_get_arg(), which apply the
 * same rules as mc_parse().
 */
#ifndef QKV_PROTO_H
#define QKV_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/textproto.h" /* consistency levels, shared with the client */

#define MC_KEY_MAX 250

enum mc_cmd {
    MC_GET, MC_GETS, MC_GAT, MC_GATS,
    MC_SET, MC_ADD, MC_REPLACE, MC_APPEND, MC_PREPEND, MC_CAS,
    MC_DELETE, MC_INCR, MC_DECR, MC_TOUCH,
    MC_FLUSH_ALL, MC_STATS, MC_VERSION, MC_VERBOSITY, MC_QUIT,
    MC_LGET, MC_SIBLINGS, MC_CONSISTENCY, MC_RING, MC_MEMBERS, MC_LEAVE, MC_REMOVE, MC_TRANSFERS, MC_DEBUG,
    MC_VGET, MC_AAE,
};

enum mc_parse_rc {
    MC_OK = 0,
    MC_ERR_UNKNOWN,     /* "ERROR" */
    MC_ERR_FORMAT,      /* "CLIENT_ERROR bad command line format" */
    MC_ERR_DELTA,       /* "CLIENT_ERROR invalid numeric delta argument" */
    MC_ERR_EXPTIME,     /* "CLIENT_ERROR invalid exptime argument" */
    MC_ERR_LEVEL,       /* "CLIENT_ERROR bad consistency level" */
    MC_ERR_TOO_LARGE,   /* storage command whose length is over the limit:
                           "SERVER_ERROR object too large for cache" */
    MC_ERR_DELETE_USAGE, /* delete with a second argument other than 0 */
    MC_ERR_CTX,         /* "CLIENT_ERROR bad context" (ctx= given twice; the
                           connection also sends it when vc_parse fails) */
    MC_ERR_CTX_CMD,     /* ctx= on a command other than set and delete */
    MC_ERR_HTTP,        /* an HTTP request line (an unknown command whose last
                           token starts with "HTTP/"): memcached closes the
                           connection without a reply */
};

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
    /* On MC_OK: the command carries noreply.  On an error: true exactly when
     * memcached sends no error line (the line ends in noreply and the error
     * is not a wrong argument count, which is always "ERROR"). */
    bool noreply;
    /* Storage commands: the line announced a valid data block (key, flags,
     * exptime, length and cas unique are well formed), so bytes + 2 bytes
     * follow; on an error return they must be read and discarded.  Errors
     * in memcached's own fields leave it false, as memcached does not
     * swallow then. */
    bool swallow;
    mc_level_t r, w;  /* MC_LEVEL_DEFAULT unless given */
    const char *ctx;  /* set/delete: the text after "ctx=" (not NUL-terminated,
                         points into the line), or NULL; vc_parse() it */
    size_t ctx_len;
    const char *arg;  /* stats subcommand, debug switch, remove's node name, or NULL;
                         points to argbuf */
    const char *arg2; /* debug: on|off */
    char argbuf[2][64]; /* NUL-terminated copies of those words (a node name fits) */
} mc_request_t;

/* Parse line[0..len) (no "\r\n"; it is modified in place).  keys/maxkeys is
 * the caller's array for key pointers; more keys than maxkeys is
 * MC_ERR_FORMAT.  max_value is the largest data block a storage command may
 * announce.  On every return req->noreply and req->swallow are meaningful
 * (see mc_request_t), and req->bytes when req->swallow is set. */
enum mc_parse_rc mc_parse(char *line, size_t len, mc_request_t *req, mc_key_t *keys,
                          size_t maxkeys, uint64_t max_value);

/* The start of a retrieval line: when line[0..len) begins (after spaces)
 * with "get ", "gets ", "gat " or "gats ", set *cmd and return the length
 * of that prefix; else 0. */
size_t mc_get_prefix(const char *line, size_t len, enum mc_cmd *cmd);

enum mc_get_arg { MC_ARG_KEY, MC_ARG_OPTION, MC_ARG_EXPTIME };
/* One argument token p[0..len) of a retrieval line (req->cmd set), taken
 * in order: an option (applied to req), gat's exptime (the first token that
 * is not an option; *have_exp tracks it) or a key.  *kind says which; the
 * result is MC_OK or the error the token gives. */
enum mc_parse_rc mc_get_arg(mc_request_t *req, const char *p, size_t len, bool *have_exp,
                            enum mc_get_arg *kind);

/* The memcached reply line (with "\r\n") for a parse error ("" for
 * MC_ERR_HTTP, which gets none). */
const char *mc_parse_error_line(enum mc_parse_rc rc);

#endif
