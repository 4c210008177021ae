/*
 * textproto.h - the words of the text protocol that the server and the
 * client library both speak: consistency levels (`r=LEVEL`, `w=LEVEL`) and
 * the reply lines of commands that change a key.
 *
 * Pure: no I/O, no allocation.  The server formats with mc_level_str() and
 * kv_result_line(); the client parses the same words back with
 * mc_parse_level() and kv_result_parse(), so the two can never disagree on
 * a spelling.
 */
#ifndef QKV_TEXTPROTO_H
#define QKV_TEXTPROTO_H

#include <stddef.h>

/* A consistency level: ONE, QUORUM, ALL, or an explicit count. */
enum mc_level_kind { MC_LEVEL_DEFAULT = 0, MC_LEVEL_ONE, MC_LEVEL_QUORUM, MC_LEVEL_ALL, MC_LEVEL_NUM };
typedef struct mc_level {
    enum mc_level_kind kind;
    int num; /* for MC_LEVEL_NUM, >= 1 */
} mc_level_t;

#define MC_LEVEL_NUM_MAX 16

/* Parse "one", "quorum", "all" (in any case) or 1..16 into *lv; 0 or -1. */
int mc_parse_level(const char *s, size_t len, mc_level_t *lv);
/* Resolve a level against replication factor n and the default: the number
 * of replies needed, or -1 when out of range (0 or > n). */
int mc_level_resolve(mc_level_t lv, int n, int dflt);
/* Text of a level for replies ("one", "quorum", "all" or the number). */
const char *mc_level_str(mc_level_t lv, char *buf, size_t cap);

/* The outcome of a command that changes a key. */
enum kv_result {
    KV_STORED, KV_NOT_STORED, KV_EXISTS, KV_NOT_FOUND, KV_DELETED, KV_TOUCHED,
    KV_NUMBER,      /* incr/decr: reply the new value */
    KV_NON_NUMERIC, /* incr/decr on a value that is not a number */
    KV_NOMEM,
};

/* Reply line for a result ("STORED\r\n" ...); KV_NUMBER is formatted by the
 * caller. */
const char *kv_result_line(enum kv_result r);

/* The result a reply line (without "\r\n") names, or -1 when it names none
 * (an error line, a number, anything else). */
int kv_result_parse(const char *line, size_t len);

#endif
