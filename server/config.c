/*
 * config.c - INI parsing (inih) and validation for quorumkvd.
 *
 * One table, config_keys[], names every key with its type, range and field;
 * the inih callback looks the key up, converts and range-checks the value
 * and records the first error with its line number.  Duplicate keys are
 * errors too (a silently ignored duplicate is how operators lose an
 * afternoon).  After parsing, cross-key rules are checked (r, w <= n; the
 * required keys are present).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_type { K_STR, K_INT, K_U64, K_BOOL, K_DOUBLE, K_LOGLEVEL, K_SEEDS, K_HOST };

typedef struct config_key {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset; /* into config_t */
    size_t size;   /* for strings: buffer size */
    double min, max;
} config_key_t;

#define F(field) offsetof(config_t, field), sizeof(((config_t *)0)->field)

static const config_key_t config_keys[] = {
    {"node", "name", K_STR, F(name), 1, 0},
    {"node", "host", K_HOST, F(host), 1, 0},
    {"node", "client_port", K_INT, F(client_port), 1, 65535},
    {"node", "peer_port", K_INT, F(peer_port), 1, 65535},
    {"node", "data_dir", K_STR, F(data_dir), 1, 0},
    {"node", "log_level", K_LOGLEVEL, F(log_level), 0, 0},
    {"node", "max_value_bytes", K_U64, F(max_value_bytes), 1, 128.0 * 1024 * 1024},
    {"node", "max_connections", K_INT, F(max_connections), 1, 1000000},
    {"node", "cluster_secret", K_STR, F(cluster_secret), 1, 0},
    {"cluster", "seeds", K_SEEDS, 0, 0, 0, 0},
    {"cluster", "n", K_INT, F(n), 1, 16},
    {"cluster", "r", K_INT, F(r), 1, 16},
    {"cluster", "w", K_INT, F(w), 1, 16},
    {"cluster", "vnodes", K_INT, F(vnodes), 1, 4096},
    {"cluster", "request_timeout_ms", K_INT, F(request_timeout_ms), 1, 600000},
    {"cluster", "read_repair_chance", K_DOUBLE, F(read_repair_chance), 0, 1},
    {"cluster", "speculative_retry_ms", K_INT, F(speculative_retry_ms), 0, 600000},
    {"cluster", "max_siblings", K_INT, F(max_siblings), 1, 1000},
    {"cluster", "max_vv_entries", K_INT, F(max_vv_entries), 1, 1000},
    {"cluster", "read_repair", K_BOOL, F(read_repair), 0, 0},
    {"server", "queue_timeout_ms", K_INT, F(queue_timeout_ms), 0, 600000},
    {"server", "max_inflight", K_INT, F(max_inflight), 1, 1000000},
    {"gossip", "interval_ms", K_INT, F(gossip_interval_ms), 10, 60000},
    {"gossip", "phi_threshold", K_DOUBLE, F(phi_threshold), 0.5, 100},
    {"handoff", "enabled", K_BOOL, F(handoff_enabled), 0, 0},
    {"handoff", "max_hints_per_node", K_INT, F(max_hints_per_node), 1, 100000000},
    {"handoff", "rate_per_s", K_INT, F(hint_rate_per_s), 1, 1000000},
    {"handoff", "hint_ttl_s", K_INT, F(hint_ttl_s), 1, 30 * 86400},
    {"antientropy", "enabled", K_BOOL, F(ae_enabled), 0, 0},
    {"antientropy", "interval_ms", K_INT, F(ae_interval_ms), 100, 86400000},
    {"antientropy", "max_keys_per_s", K_INT, F(ae_max_keys_per_s), 1, 100000000},
    {"antientropy", "max_bytes_per_s", K_U64, F(ae_max_bytes_per_s), 4096, 1e12},
    {"transfer", "max_bytes_per_s", K_U64, F(xfer_max_bytes_per_s), 4096, 1e12},
    {"storage", "sync", K_BOOL, F(storage_sync), 0, 0},
    {"storage", "cache_mb", K_INT, F(cache_mb), 1, 65536},
    {"storage", "object_cache_mb", K_INT, F(object_cache_mb), 0, 65536},
    {"storage", "tombstone_grace_s", K_INT, F(tombstone_grace_s), 0, 3650 * 86400},
    {"debug", "fault_injection", K_BOOL, F(fault_injection), 0, 0},
};
#define NKEYS (sizeof(config_keys) / sizeof(config_keys[0]))

typedef struct parse_ctx {
    config_t *cfg;
    FILE *f;
    char *err;     /* the first error's message, without "path:line: " */
    size_t errlen;
    int line;      /* lines read so far: the line inih is working on */
    int err_line;  /* where the first error was found */
    bool seen[NKEYS];
    bool failed;
} parse_ctx_t;

static void fail_at(parse_ctx_t *pc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_at(parse_ctx_t *pc, const char *fmt, ...)
{
    if (pc->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pc->err, pc->errlen, fmt, ap);
    va_end(ap);
    pc->failed = true;
    pc->err_line = pc->line;
}

static bool known_section(const char *name, size_t len)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(config_keys[i].section) == len && !memcmp(config_keys[i].section, name, len))
            return true;
    return false;
}

/* inih's line reader: we read the lines ourselves so that every message can
 * name its line, an over-long line is an error rather than two half lines,
 * leading blanks never turn a key into a continuation of the previous
 * value, and an unknown [section] is reported even when it holds no key. */
static char *read_line(char *str, int num, void *stream)
{
    parse_ctx_t *pc = stream;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, pc->f);
    if (n < 0) {
        free(line);
        return NULL;
    }
    pc->line++;
    size_t len = (size_t)n;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    char *p = line;
    while (len && (*p == ' ' || *p == '\t')) {
        p++;
        len--;
    }
    if (len + 2 > (size_t)num) {
        fail_at(pc, "line longer than %d bytes", num - 2);
        free(line);
        return NULL; /* stop here: inih sees the end of the file */
    }
    if (len && *p == '[') {
        char *close = memchr(p, ']', len);
        if (close && !known_section(p + 1, (size_t)(close - p - 1))) {
            fail_at(pc, "unknown section [%.*s]", (int)(close - p - 1), p + 1);
            free(line);
            return NULL;
        }
    }
    memcpy(str, p, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    free(line);
    return str;
}

void config_defaults(config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
    cfg->client_port = 11211;
    cfg->peer_port = 7946;
    cfg->log_level = LOG_INFO;
    cfg->max_value_bytes = 1024 * 1024;
    cfg->max_connections = 4096;
    cfg->n = 3;
    cfg->r = 2;
    cfg->w = 2;
    cfg->vnodes = 64;
    cfg->request_timeout_ms = 1000;
    cfg->read_repair_chance = 0.1;
    cfg->speculative_retry_ms = 10;
    cfg->max_siblings = 16;
    cfg->max_vv_entries = 32;
    cfg->read_repair = true;
    cfg->queue_timeout_ms = 100;
    cfg->max_inflight = 1024;
    cfg->gossip_interval_ms = 200;
    cfg->phi_threshold = 8.0;
    cfg->handoff_enabled = true;
    cfg->max_hints_per_node = 1000000;
    cfg->hint_rate_per_s = 5000;
    cfg->hint_ttl_s = 10800;
    cfg->ae_enabled = true;
    cfg->ae_interval_ms = 10000;
    cfg->ae_max_keys_per_s = 2000;
    cfg->ae_max_bytes_per_s = 10u << 20;
    cfg->xfer_max_bytes_per_s = 32u << 20;
    cfg->tombstone_grace_s = 86400;
    cfg->storage_sync = false;
    cfg->cache_mb = 8;
    cfg->object_cache_mb = 64;
}

static int parse_long(const char *v, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0')
        return -1;
    *out = x;
    return 0;
}

int config_parse_seeds(config_t *cfg, const char *value, char *err, size_t errlen)
{
    char buf[4096];
    if (strlen(value) >= sizeof(buf)) {
        snprintf(err, errlen, "seed list too long");
        return -1;
    }
    snprintf(buf, sizeof(buf), "%s", value);
    cfg->nseeds = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok))
            tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok == '\0')
            continue;
        char *colon = strrchr(tok, ':');
        long port;
        if (!colon || colon == tok || parse_long(colon + 1, &port) || port < 1 || port > 65535) {
            snprintf(err, errlen, "bad seed '%s' (expected host:port)", tok);
            return -1;
        }
        if (cfg->nseeds == CONFIG_MAX_SEEDS) {
            snprintf(err, errlen, "more than %d seeds", CONFIG_MAX_SEEDS);
            return -1;
        }
        *colon = '\0';
        if (strlen(tok) >= CONFIG_HOST_MAX) {
            snprintf(err, errlen, "seed host too long");
            return -1;
        }
        config_addr_t *a = &cfg->seeds[cfg->nseeds++];
        snprintf(a->host, sizeof(a->host), "%s", tok);
        a->port = (int)port;
    }
    return 0;
}

static int set_value(parse_ctx_t *pc, const config_key_t *k, const char *v, char *why,
                     size_t whylen)
{
    char *field = (char *)pc->cfg + k->offset;
    long l;
    switch (k->type) {
    case K_STR:
    case K_HOST:
        if (*v == '\0') {
            snprintf(why, whylen, "empty value");
            return -1;
        }
        if (strlen(v) >= k->size) {
            snprintf(why, whylen, "value longer than %zu bytes", k->size - 1);
            return -1;
        }
        if (k->type == K_HOST || (k->offset == offsetof(config_t, name))) {
            for (const char *p = v; *p; p++)
                if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p) || *p == ',') {
                    snprintf(why, whylen, "'%s' may not contain spaces, commas or control characters", v);
                    return -1;
                }
        }
        memcpy(field, v, strlen(v) + 1);
        return 0;
    case K_INT:
        if (parse_long(v, &l) || l < (long)k->min || l > (long)k->max) {
            snprintf(why, whylen, "'%s' is not an integer in %.0f..%.0f", v, k->min, k->max);
            return -1;
        }
        *(int *)field = (int)l;
        return 0;
    case K_U64: {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end || *v == '-' || x < k->min || (double)x > k->max) {
            snprintf(why, whylen, "'%s' is not an integer in %.0f..%.0f", v, k->min, k->max);
            return -1;
        }
        *(uint64_t *)field = x;
        return 0;
    }
    case K_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
            *(bool *)field = true;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
            *(bool *)field = false;
        else {
            snprintf(why, whylen, "'%s' is not a boolean (true/false)", v);
            return -1;
        }
        return 0;
    case K_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(v, &end);
        if (errno || end == v || *end || !(d >= k->min && d <= k->max)) {
            snprintf(why, whylen, "'%s' is not a number in %g..%g", v, k->min, k->max);
            return -1;
        }
        *(double *)field = d;
        return 0;
    }
    case K_LOGLEVEL: {
        static const char *lv[] = {"debug", "info", "warn", "error"};
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, lv[i])) {
                *(enum log_level *)field = (enum log_level)i;
                return 0;
            }
        snprintf(why, whylen, "'%s' is not one of debug, info, warn, error", v);
        return -1;
    }
    case K_SEEDS:
        return config_parse_seeds(pc->cfg, v, why, whylen);
    }
    return -1;
}

/* inih calls this per key, right after read_line() read its line. */
static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx_t *pc = user;
    if (pc->failed)
        return 0;
    char why[512];
    if (!name)
        return 1;
    for (size_t i = 0; i < NKEYS; i++) {
        const config_key_t *k = &config_keys[i];
        if (strcmp(k->section, section) || strcmp(k->name, name))
            continue;
        if (pc->seen[i]) {
            fail_at(pc, "duplicate key %s.%s", section, name);
            return 0;
        }
        pc->seen[i] = true;
        if (set_value(pc, k, value, why, sizeof(why))) {
            fail_at(pc, "bad value for %s.%s: %s", section, name, why);
            return 0;
        }
        return 1;
    }
    fail_at(pc, "unknown key %s%s%s", section, *section ? "." : "", name);
    return 0;
}

int config_load(config_t *cfg, const char *path, char *err, size_t errlen)
{
    config_defaults(cfg);
    parse_ctx_t pc = {.cfg = cfg};
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char why[1024] = "";
    pc.err = why;
    pc.errlen = sizeof(why);
    pc.f = f;
    int rc = ini_parse_stream(read_line, &pc, on_entry, &pc);
    fclose(f);
    /* inih returns the line of the first error it saw (a syntax error, or
     * our handler refusing a key); ours may have come first or later */
    if (pc.failed && (rc <= 0 || rc >= pc.err_line)) {
        snprintf(err, errlen, "%s:%d: %s", path, pc.err_line, why);
        return -1;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: syntax error (expected [section] or key = value)", path, rc);
        return -1;
    }
    if (cfg->name[0] == '\0') {
        snprintf(err, errlen, "%s: missing required key node.name", path);
        return -1;
    }
    if (cfg->data_dir[0] == '\0') {
        snprintf(err, errlen, "%s: missing required key node.data_dir", path);
        return -1;
    }
    if (cfg->r > cfg->n || cfg->w > cfg->n) {
        snprintf(err, errlen, "%s: cluster.r (%d) and cluster.w (%d) must not exceed cluster.n (%d)",
                 path, cfg->r, cfg->w, cfg->n);
        return -1;
    }
    if (cfg->client_port == cfg->peer_port) {
        snprintf(err, errlen, "%s: node.client_port and node.peer_port must differ", path);
        return -1;
    }
    return 0;
}
