/* textproto.c - the shared words of the text protocol (see textproto.h). */
#include "textproto.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Level names are case-insensitive (`W=ALL`). */
static int word_ieq(const char *s, size_t len, const char *w)
{
    size_t n = strlen(w);
    return len == n && strncasecmp(s, w, n) == 0;
}

int mc_parse_level(const char *s, size_t len, mc_level_t *lv)
{
    uint64_t v = 0;
    size_t i;
    if (word_ieq(s, len, "one")) {
        *lv = (mc_level_t){MC_LEVEL_ONE, 1};
        return 0;
    }
    if (word_ieq(s, len, "quorum")) {
        *lv = (mc_level_t){MC_LEVEL_QUORUM, 0};
        return 0;
    }
    if (word_ieq(s, len, "all")) {
        *lv = (mc_level_t){MC_LEVEL_ALL, 0};
        return 0;
    }
    /* memcached's number rule: digits only, no sign, no overflow */
    if (len == 0 || len > 20)
        return -1;
    for (i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v < 1 || v > MC_LEVEL_NUM_MAX)
        return -1;
    *lv = (mc_level_t){MC_LEVEL_NUM, (int)v};
    return 0;
}

int mc_level_resolve(mc_level_t lv, int n, int dflt)
{
    int q;
    switch (lv.kind) {
    case MC_LEVEL_DEFAULT: q = dflt; break;
    case MC_LEVEL_ONE: q = 1; break;
    case MC_LEVEL_QUORUM: q = n / 2 + 1; break;
    case MC_LEVEL_ALL: q = n; break;
    default: q = lv.num; break;
    }
    return (q < 1 || q > n) ? -1 : q;
}

const char *mc_level_str(mc_level_t lv, char *buf, size_t cap)
{
    switch (lv.kind) {
    case MC_LEVEL_ONE: return "one";
    case MC_LEVEL_QUORUM: return "quorum";
    case MC_LEVEL_ALL: return "all";
    case MC_LEVEL_NUM: snprintf(buf, cap, "%d", lv.num); return buf;
    default: return "default";
    }
}

/* One table for both directions, so a word is spelled once. */
static const struct {
    enum kv_result r;
    const char *line; /* with "\r\n" */
} results[] = {
    {KV_STORED, "STORED\r\n"},
    {KV_NOT_STORED, "NOT_STORED\r\n"},
    {KV_EXISTS, "EXISTS\r\n"},
    {KV_NOT_FOUND, "NOT_FOUND\r\n"},
    {KV_DELETED, "DELETED\r\n"},
    {KV_TOUCHED, "TOUCHED\r\n"},
    {KV_NON_NUMERIC, "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
    {KV_NOMEM, "SERVER_ERROR out of memory storing object\r\n"},
};

const char *kv_result_line(enum kv_result r)
{
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
        if (results[i].r == r)
            return results[i].line;
    return "SERVER_ERROR internal\r\n";
}

int kv_result_parse(const char *line, size_t len)
{
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
        size_t n = strlen(results[i].line) - 2;
        if (len == n && memcmp(line, results[i].line, n) == 0)
            return (int)results[i].r;
    }
    return -1;
}
