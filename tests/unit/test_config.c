/*
 * test_config.c - unit tests of server/config.c (cmocka): INI files written
 * into a mkdtemp directory (removed afterwards) are loaded with
 * config_load(), plus the shipped conf files.
 *
 * Defaults are checked three ways: against the numbers documented in
 * conf/quorumkv.ini (which promises "every other key shows its default"),
 * against config_defaults(), and through a minimal file.  Errors are checked
 * for what an operator sees: -1 and a message "FILE:LINE: ..." naming the
 * offending line, or "FILE: ..." when no line applies.
 *
 * Tests named test_bug_* reproduce bugs reported against server/config.c
 * that are not fixed yet; they skip (visibly) unless QKV_KNOWN_BUGS=1.
 */
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../server/config.h"

#define MINIMAL "[node]\nname = n1\ndata_dir = /var/lib/qkv\n"

typedef struct fixture {
    char dir[64];        /* mkdtemp, removed in teardown */
    char path[128];      /* the INI file written by write_ini() */
    char err[1024];
    config_t cfg;
} fixture_t;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/qkv-test-config-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/test.ini", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void write_ini(fixture_t *f, const char *text)
{
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static void load_ok(fixture_t *f, const char *text)
{
    write_ini(f, text);
    f->err[0] = '\0';
    if (config_load(&f->cfg, f->path, f->err, sizeof(f->err)) != 0)
        fail_msg("config_load failed: %s\n--- file:\n%s", f->err, text);
}

/* Loading text fails; the message starts with "FILE:LINE: " (line > 0) or
 * "FILE: " (line 0) and contains want. */
static void load_err(fixture_t *f, const char *text, int line, const char *want)
{
    char prefix[256];

    write_ini(f, text);
    f->err[0] = '\0';
    if (config_load(&f->cfg, f->path, f->err, sizeof(f->err)) != -1)
        fail_msg("config_load accepted:\n%s", text);
    if (line > 0)
        snprintf(prefix, sizeof(prefix), "%s:%d: ", f->path, line);
    else
        snprintf(prefix, sizeof(prefix), "%s: ", f->path);
    if (strncmp(f->err, prefix, strlen(prefix)) != 0 || strstr(f->err, want) == NULL)
        fail_msg("message \"%s\", want prefix \"%s\" and \"%s\"\n--- file:\n%s", f->err,
                 prefix, want, text);
    assert_null(strchr(f->err, '\n')); /* one line */
}

/* Every field except name, data_dir and seeds equals the defaults. */
static void assert_default_tunables(const config_t *c)
{
    config_t d;

    config_defaults(&d);
    assert_string_equal(c->host, d.host);
    assert_int_equal(c->client_port, d.client_port);
    assert_int_equal(c->peer_port, d.peer_port);
    assert_int_equal(c->log_level, d.log_level);
    assert_true(c->max_value_bytes == d.max_value_bytes);
    assert_int_equal(c->max_connections, d.max_connections);
    assert_int_equal(c->n, d.n);
    assert_int_equal(c->r, d.r);
    assert_int_equal(c->w, d.w);
    assert_int_equal(c->vnodes, d.vnodes);
    assert_int_equal(c->request_timeout_ms, d.request_timeout_ms);
    assert_int_equal(c->max_siblings, d.max_siblings);
    assert_int_equal(c->max_vv_entries, d.max_vv_entries);
    assert_int_equal(c->gossip_interval_ms, d.gossip_interval_ms);
    assert_true(c->phi_threshold == d.phi_threshold);
    assert_int_equal(c->handoff_enabled, d.handoff_enabled);
    assert_int_equal(c->ae_enabled, d.ae_enabled);
    assert_int_equal(c->ae_interval_ms, d.ae_interval_ms);
    assert_int_equal(c->ae_max_keys_per_s, d.ae_max_keys_per_s);
    assert_true(c->ae_max_bytes_per_s == d.ae_max_bytes_per_s);
    assert_true(c->xfer_max_bytes_per_s == d.xfer_max_bytes_per_s);
    assert_int_equal(c->read_repair, d.read_repair);
    assert_int_equal(c->storage_sync, d.storage_sync);
    assert_int_equal(c->cache_mb, d.cache_mb);
    assert_int_equal(c->tombstone_grace_s, d.tombstone_grace_s);
}


/* The repository's conf/NAME, found from the working directory (make runs
 * tests from the root), next to this source file (__FILE__ as make passes
 * it), or next to the binary (build[-asan]/tests/test_config). */
static void repo_conf(char *out, size_t cap, const char *name)
{
    const char *slash = strrchr(__FILE__, '/');
    char exe[PATH_MAX];
    ssize_t n;

    snprintf(out, cap, "conf/%s", name);
    if (access(out, R_OK) == 0)
        return;
    snprintf(out, cap, "../../conf/%s", name);
    if (access(out, R_OK) == 0)
        return;
    snprintf(out, cap, "%.*s/../../conf/%s", slash ? (int)(slash - __FILE__) : 1,
             slash ? __FILE__ : ".", name);
    if (access(out, R_OK) == 0)
        return;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        snprintf(out, cap, "%.*s/../../conf/%s", slash ? (int)(slash - exe) : 1,
                 slash ? exe : ".", name);
        if (access(out, R_OK) == 0)
            return;
    }
    fail_msg("cannot find conf/%s from the cwd, %s or the binary", name, __FILE__);
}

/* ---- defaults ---- */

/* The numbers conf/quorumkv.ini documents as defaults. */
static void test_defaults_documented(void **state)
{
    config_t d;

    (void)state;
    config_defaults(&d);
    assert_string_equal(d.name, "");
    assert_string_equal(d.data_dir, "");
    assert_string_equal(d.host, "127.0.0.1");
    assert_int_equal(d.client_port, 11211);
    assert_int_equal(d.peer_port, 7946);
    assert_int_equal(d.log_level, LOG_INFO);
    assert_true(d.max_value_bytes == 1048576);
    assert_int_equal(d.max_connections, 4096);
    assert_int_equal(d.nseeds, 0);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.r, 2);
    assert_int_equal(d.w, 2);
    assert_int_equal(d.vnodes, 64);
    assert_int_equal(d.request_timeout_ms, 1000);
    assert_int_equal(d.max_siblings, 16);
    assert_int_equal(d.max_vv_entries, 32);
    assert_int_equal(d.gossip_interval_ms, 200);
    assert_true(d.phi_threshold == 8.0);
    assert_true(d.handoff_enabled);
    assert_true(d.ae_enabled);
    assert_int_equal(d.ae_interval_ms, 10000);
    assert_int_equal(d.ae_max_keys_per_s, 2000);
    assert_true(d.ae_max_bytes_per_s == 10485760);
    assert_true(d.xfer_max_bytes_per_s == 33554432);
    assert_true(d.read_repair);
    assert_false(d.storage_sync);
    assert_int_equal(d.cache_mb, 8);
    assert_int_equal(d.tombstone_grace_s, 86400);
}

static void test_minimal_config(void **state)
{
    fixture_t *f = *state;

    load_ok(f, MINIMAL);
    assert_string_equal(f->cfg.name, "n1");
    assert_string_equal(f->cfg.data_dir, "/var/lib/qkv");
    assert_int_equal(f->cfg.nseeds, 0);
    assert_default_tunables(&f->cfg);

    /* comments, blank lines, no spaces around '=', inline comments */
    load_ok(f, "; top comment\n# another\n\n[node]\nname=n2 ; inline\n\ndata_dir = d  \n");
    assert_string_equal(f->cfg.name, "n2");
    assert_string_equal(f->cfg.data_dir, "d");
    assert_default_tunables(&f->cfg);
}

/* A second load starts from the defaults, not from the previous file. */
static void test_load_resets_to_defaults(void **state)
{
    fixture_t *f = *state;

    load_ok(f, MINIMAL "[cluster]\nvnodes = 7\nseeds = a:1\nn = 5\n");
    assert_int_equal(f->cfg.vnodes, 7);
    assert_int_equal(f->cfg.n, 5);
    load_ok(f, MINIMAL);
    assert_int_equal(f->cfg.nseeds, 0);
    assert_default_tunables(&f->cfg);
}

static void test_repo_configs_load(void **state)
{
    static const char *const nodes[] = {"node1.ini", "node2.ini", "node3.ini"};
    fixture_t *f = *state;
    char path[PATH_MAX];
    int ports[6];

    repo_conf(path, sizeof(path), "quorumkv.ini");
    if (config_load(&f->cfg, path, f->err, sizeof(f->err)) != 0)
        fail_msg("%s", f->err);
    /* "every other key shows its default": the file and the code agree */
    assert_string_equal(f->cfg.name, "node1");
    assert_string_equal(f->cfg.data_dir, "data/node1");
    assert_int_equal(f->cfg.nseeds, 1);
    assert_string_equal(f->cfg.seeds[0].host, "127.0.0.1");
    assert_int_equal(f->cfg.seeds[0].port, 7946);
    assert_default_tunables(&f->cfg);

    for (int i = 0; i < 3; i++) {
        char want[16];
        repo_conf(path, sizeof(path), nodes[i]);
        if (config_load(&f->cfg, path, f->err, sizeof(f->err)) != 0)
            fail_msg("%s", f->err);
        snprintf(want, sizeof(want), "node%d", i + 1);
        assert_string_equal(f->cfg.name, want);
        assert_non_null(strstr(f->cfg.data_dir, want));
        /* the founding nodes list all three (themselves included) */
        assert_int_equal(f->cfg.nseeds, 3);
        assert_int_equal(f->cfg.seeds[i].port, f->cfg.peer_port);
        assert_int_equal(f->cfg.n, 3);
        ports[2 * i] = f->cfg.client_port;
        ports[2 * i + 1] = f->cfg.peer_port;
    }
    for (int i = 0; i < 6; i++) /* three nodes on one host: all ports differ */
        for (int j = 0; j < i; j++)
            assert_int_not_equal(ports[i], ports[j]);
    /* node4 joins: its seeds do not name it, its ports are its own */
    repo_conf(path, sizeof(path), "node4.ini");
    if (config_load(&f->cfg, path, f->err, sizeof(f->err)) != 0)
        fail_msg("%s", f->err);
    assert_string_equal(f->cfg.name, "node4");
    assert_int_equal(f->cfg.nseeds, 1);
    assert_int_not_equal(f->cfg.seeds[0].port, f->cfg.peer_port);
    for (int i = 0; i < 6; i++)
        assert_int_not_equal(f->cfg.client_port, ports[i]);
}

/* ---- every key ---- */

static void test_every_key_read_back(void **state)
{
    fixture_t *f = *state;

    load_ok(f, "[node]\n"
               "name = alpha-1\n"
               "host = 10.1.2.3\n"
               "client_port = 21211\n"
               "peer_port = 17946\n"
               "data_dir = /srv/qkv data\n"
               "log_level = debug\n"
               "max_value_bytes = 134217728\n"
               "max_connections = 1000000\n"
               "[cluster]\n"
               "seeds = 10.0.0.1:7000, 10.0.0.2:7001,host-c:65535\n"
               "n = 5\n"
               "r = 1\n"
               "w = 5\n"
               "vnodes = 4096\n"
               "request_timeout_ms = 250\n"
               "max_siblings = 3\n"
               "max_vv_entries = 1000\n"
               "[gossip]\n"
               "interval_ms = 10\n"
               "phi_threshold = 12.5\n"
               "[handoff]\n"
               "enabled = false\n"
               "[antientropy]\n"
               "enabled = no\n"
               "interval_ms = 86400000\n"
               "[transfer]\n"
               "max_bytes_per_s = 4096\n"
               "[storage]\n"
               "sync = true\n"
               "cache_mb = 65536\n");
    assert_string_equal(f->cfg.name, "alpha-1");
    assert_string_equal(f->cfg.host, "10.1.2.3");
    assert_int_equal(f->cfg.client_port, 21211);
    assert_int_equal(f->cfg.peer_port, 17946);
    assert_string_equal(f->cfg.data_dir, "/srv/qkv data");
    assert_int_equal(f->cfg.log_level, LOG_DEBUG);
    assert_true(f->cfg.max_value_bytes == 134217728);
    assert_int_equal(f->cfg.max_connections, 1000000);
    assert_int_equal(f->cfg.nseeds, 3);
    assert_string_equal(f->cfg.seeds[0].host, "10.0.0.1");
    assert_int_equal(f->cfg.seeds[0].port, 7000);
    assert_string_equal(f->cfg.seeds[1].host, "10.0.0.2");
    assert_int_equal(f->cfg.seeds[1].port, 7001);
    assert_string_equal(f->cfg.seeds[2].host, "host-c");
    assert_int_equal(f->cfg.seeds[2].port, 65535);
    assert_int_equal(f->cfg.n, 5);
    assert_int_equal(f->cfg.r, 1);
    assert_int_equal(f->cfg.w, 5);
    assert_int_equal(f->cfg.vnodes, 4096);
    assert_int_equal(f->cfg.request_timeout_ms, 250);
    assert_int_equal(f->cfg.max_siblings, 3);
    assert_int_equal(f->cfg.max_vv_entries, 1000);
    assert_int_equal(f->cfg.gossip_interval_ms, 10);
    assert_true(f->cfg.phi_threshold == 12.5);
    assert_false(f->cfg.handoff_enabled);
    assert_false(f->cfg.ae_enabled);
    assert_true(f->cfg.xfer_max_bytes_per_s == 4096);
    assert_int_equal(f->cfg.ae_interval_ms, 86400000);
    assert_true(f->cfg.storage_sync);
    assert_int_equal(f->cfg.cache_mb, 65536);

    /* the lower bounds are accepted too */
    load_ok(f, MINIMAL "client_port = 1\npeer_port = 65535\nmax_value_bytes = 1\n"
                       "[cluster]\nn = 1\nr = 1\nw = 1\nvnodes = 1\n"
                       "[gossip]\nphi_threshold = 0.5\n"
                       "[antientropy]\ninterval_ms = 100\n");
    assert_int_equal(f->cfg.client_port, 1);
    assert_int_equal(f->cfg.peer_port, 65535);
    assert_true(f->cfg.max_value_bytes == 1);
    assert_int_equal(f->cfg.n, 1);
    assert_true(f->cfg.phi_threshold == 0.5);
    assert_int_equal(f->cfg.ae_interval_ms, 100);
}

static void test_booleans_and_log_levels(void **state)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    static const enum log_level want[] = {LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR};
    fixture_t *f = *state;
    char text[256];

    for (int i = 0; i < 4; i++) {
        snprintf(text, sizeof(text), MINIMAL "[storage]\nsync = %s\n[handoff]\nenabled = %s\n",
                 yes[i], no[i]);
        load_ok(f, text);
        assert_true(f->cfg.storage_sync);
        assert_false(f->cfg.handoff_enabled);
        snprintf(text, sizeof(text), MINIMAL "log_level = %s\n", levels[i]);
        load_ok(f, text);
        assert_int_equal(f->cfg.log_level, want[i]);
    }
}

/* ---- errors ---- */

static void test_unknown_keys(void **state)
{
    fixture_t *f = *state;

    load_err(f, MINIMAL "bogus = 1\n", 4, "unknown key node.bogus");
    load_err(f, MINIMAL "[cluster]\nn = 3\nreplicas = 3\n", 6, "unknown key cluster.replicas");
    /* a known key in an unknown section */
    load_err(f, MINIMAL "[nodes]\nname = x\n", 4, "unknown section [nodes]");
    load_err(f, MINIMAL "[bogus]\n", 4, "unknown section [bogus]");
    /* an indented key is a key, not a continuation of the line above */
    load_ok(f, "[node]\n  name = n1\n  data_dir = d\n");
    /* a known key in the wrong section */
    load_err(f, MINIMAL "[gossip]\nn = 3\n", 5, "unknown key gossip.n");
    /* before any section */
    load_err(f, "name = x\n" MINIMAL, 1, "unknown key name");
    /* keys are case-sensitive */
    load_err(f, MINIMAL "VNODES = 8\n", 4, "unknown key node.VNODES");
}

static void test_bad_values(void **state)
{
    static const struct {
        const char *line;
        const char *want;
    } bad[] = {
        {"[cluster]\nn = abc", "bad value for cluster.n"},
        {"[cluster]\nn = 3x", "bad value for cluster.n"},
        {"[cluster]\nn = 3.0", "bad value for cluster.n"},
        {"[cluster]\nn = 0x10", "bad value for cluster.n"},
        {"[cluster]\nvnodes =", "bad value for cluster.vnodes"},
        {"[cluster]\nn = 17", "bad value for cluster.n"},
        {"[cluster]\nn = 99999999999999999999", "bad value for cluster.n"},
        {"[node]\nclient_port = 0", "bad value for node.client_port"},
        {"[node]\nclient_port = 65536", "bad value for node.client_port"},
        {"[node]\npeer_port = 70000", "bad value for node.peer_port"},
        {"[node]\npeer_port = -1", "bad value for node.peer_port"},
        {"[node]\nmax_value_bytes = 0", "bad value for node.max_value_bytes"},
        {"[node]\nmax_value_bytes = -1", "bad value for node.max_value_bytes"},
        {"[node]\nmax_value_bytes = 134217729", "bad value for node.max_value_bytes"},
        {"[node]\nlog_level = verbose", "bad value for node.log_level"},
        {"[node]\nlog_level = INFO", "bad value for node.log_level"},
        {"[node]\nhost = 10.0.0.1,10.0.0.2", "bad value for node.host"},
        {"[node]\nhost =", "bad value for node.host"},
        {"[handoff]\nenabled = maybe", "bad value for handoff.enabled"},
        {"[storage]\nsync = TRUE", "bad value for storage.sync"},
        {"[storage]\nsync = 2", "bad value for storage.sync"},
        {"[gossip]\nphi_threshold = abc", "bad value for gossip.phi_threshold"},
        {"[gossip]\nphi_threshold = 0.4", "bad value for gossip.phi_threshold"},
        {"[gossip]\nphi_threshold = nan", "bad value for gossip.phi_threshold"},
        {"[gossip]\nphi_threshold = inf", "bad value for gossip.phi_threshold"},
        {"[gossip]\ninterval_ms = 9", "bad value for gossip.interval_ms"},
        {"[antientropy]\ninterval_ms = 86400001", "bad value for antientropy.interval_ms"},
        {"[storage]\ncache_mb = 65537", "bad value for storage.cache_mb"},
        {"[cluster]\nseeds = localhost", "bad seed 'localhost'"},
        {"[cluster]\nseeds = :7946", "bad seed ':7946'"},
        {"[cluster]\nseeds = a:1,b:0", "bad seed 'b:0'"},
        {"[cluster]\nseeds = a:65536", "bad seed"},
        {"[cluster]\nseeds = a:port", "bad seed"},
        {"[cluster]\nseeds = a:", "bad seed"},
    };
    fixture_t *f = *state;
    char text[512];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* comment and blank lines before it count: the bad line is line 6 */
        snprintf(text, sizeof(text), MINIMAL "; comment\n%s\n[storage]\ncache_mb = 8\n",
                 bad[i].line);
        load_err(f, text, 6, bad[i].want);
    }
}

static void test_name_and_lengths(void **state)
{
    fixture_t *f = *state;
    char text[512], name[CONFIG_NAME_MAX + 1];

    load_err(f, "[node]\nname = a b\ndata_dir = d\n", 2, "bad value for node.name");
    load_err(f, "[node]\nname = a,b\ndata_dir = d\n", 2, "bad value for node.name");
    load_err(f, "[node]\nname =\ndata_dir = d\n", 2, "empty value");
    load_err(f, "[node]\nname = a\ndata_dir =\n", 3, "empty value");
    memset(name, 'x', sizeof(name) - 1);
    name[CONFIG_NAME_MAX] = '\0'; /* one byte over */
    snprintf(text, sizeof(text), "[node]\ndata_dir = d\nname = %s\n", name);
    load_err(f, text, 3, "longer than 63 bytes");
    name[CONFIG_NAME_MAX - 1] = '\0'; /* exactly the limit */
    snprintf(text, sizeof(text), "[node]\ndata_dir = d\nname = %s\n", name);
    load_ok(f, text);
    assert_string_equal(f->cfg.name, name);
}

static void test_duplicate_key(void **state)
{
    fixture_t *f = *state;

    load_err(f, MINIMAL "[cluster]\nn = 3\nr = 1\nn = 3\n", 7, "duplicate key cluster.n");
    /* the same section opened twice still holds each key once */
    load_err(f, MINIMAL "[cluster]\nn = 3\n[node]\nname = n2\n", 7, "duplicate key node.name");
    /* the same key name in two sections is not a duplicate */
    load_ok(f, MINIMAL "[handoff]\nenabled = true\n[antientropy]\nenabled = true\n");
}

static void test_required_and_cross_key(void **state)
{
    fixture_t *f = *state;

    load_err(f, "[node]\ndata_dir = d\n", 0, "missing required key node.name");
    load_err(f, "[node]\nname = n\n", 0, "missing required key node.data_dir");
    load_err(f, "", 0, "missing required key node.name");
    load_err(f, MINIMAL "[cluster]\nn = 1\n", 0, "must not exceed cluster.n");
    load_err(f, MINIMAL "[cluster]\nn = 2\nr = 1\nw = 3\n", 0, "must not exceed cluster.n");
    load_err(f, MINIMAL "[cluster]\nn = 4\nr = 5\nw = 1\n", 0, "must not exceed cluster.n");
    load_err(f, MINIMAL "client_port = 7946\n", 0, "client_port and node.peer_port must differ");
    load_ok(f, MINIMAL "[cluster]\nn = 2\nr = 2\nw = 2\n");
}

static void test_syntax_error(void **state)
{
    fixture_t *f = *state;

    load_err(f, "[node]\nname n1\ndata_dir = d\n", 2, "syntax error");
    load_err(f, MINIMAL "[cluster\n", 4, "syntax error");
    load_err(f, MINIMAL "just words\n", 4, "syntax error");
}

static void test_unreadable_file(void **state)
{
    fixture_t *f = *state;
    char path[160];

    snprintf(path, sizeof(path), "%s/missing.ini", f->dir);
    assert_int_equal(config_load(&f->cfg, path, f->err, sizeof(f->err)), -1);
    assert_true(strncmp(f->err, path, strlen(path)) == 0);
    assert_non_null(strstr(f->err, "cannot open"));
    assert_non_null(strstr(f->err, "No such file"));
    /* a small err buffer is truncated, not overrun */
    char small[8];
    memset(small, 'z', sizeof(small));
    assert_int_equal(config_load(&f->cfg, path, small, 6), -1);
    assert_int_equal(strlen(small), 5);
    assert_int_equal(small[6], 'z');
}

/* ---- seeds ---- */

static void test_parse_seeds(void **state)
{
    fixture_t *f = *state;
    config_t *c = &f->cfg;
    char list[CONFIG_MAX_SEEDS * 16 + 32], host[CONFIG_HOST_MAX + 8];
    size_t off = 0;

    config_defaults(c);
    assert_int_equal(config_parse_seeds(c, " a:1 ,, b.example:2,[::1]:3, ", f->err,
                                        sizeof(f->err)), 0);
    assert_int_equal(c->nseeds, 3);
    assert_string_equal(c->seeds[0].host, "a");
    assert_int_equal(c->seeds[0].port, 1);
    assert_string_equal(c->seeds[1].host, "b.example");
    assert_int_equal(c->seeds[1].port, 2);
    assert_string_equal(c->seeds[2].host, "[::1]"); /* split at the last colon */
    assert_int_equal(c->seeds[2].port, 3);
    /* a new list replaces the old one */
    assert_int_equal(config_parse_seeds(c, "z:9", f->err, sizeof(f->err)), 0);
    assert_int_equal(c->nseeds, 1);
    assert_string_equal(c->seeds[0].host, "z");
    assert_int_equal(config_parse_seeds(c, "", f->err, sizeof(f->err)), 0);
    assert_int_equal(c->nseeds, 0);

    static const char *const bad[] = {"a", "a:0", "a:65536", "a:-1", "a:1x", ":1",
                                      "a:1,b", "a: 1 2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f->err[0] = '\0';
        if (config_parse_seeds(c, bad[i], f->err, sizeof(f->err)) != -1)
            fail_msg("seeds \"%s\" accepted", bad[i]);
        assert_non_null(strstr(f->err, "bad seed"));
    }

    /* CONFIG_MAX_SEEDS fit, one more does not */
    for (int i = 0; i < CONFIG_MAX_SEEDS; i++)
        off += (size_t)snprintf(list + off, sizeof(list) - off, "%sh%d:%d", i ? "," : "", i,
                                i + 1);
    assert_int_equal(config_parse_seeds(c, list, f->err, sizeof(f->err)), 0);
    assert_int_equal(c->nseeds, CONFIG_MAX_SEEDS);
    assert_string_equal(c->seeds[CONFIG_MAX_SEEDS - 1].host, "h63");
    assert_int_equal(c->seeds[CONFIG_MAX_SEEDS - 1].port, CONFIG_MAX_SEEDS);
    snprintf(list + off, sizeof(list) - off, ",extra:1");
    assert_int_equal(config_parse_seeds(c, list, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, "more than 64 seeds"));

    /* host length: CONFIG_HOST_MAX - 1 fits, CONFIG_HOST_MAX does not */
    memset(host, 'h', CONFIG_HOST_MAX - 1);
    snprintf(host + CONFIG_HOST_MAX - 1, 8, ":5");
    assert_int_equal(config_parse_seeds(c, host, f->err, sizeof(f->err)), 0);
    assert_int_equal(strlen(c->seeds[0].host), CONFIG_HOST_MAX - 1);
    memset(host, 'h', CONFIG_HOST_MAX);
    snprintf(host + CONFIG_HOST_MAX, 8, ":5");
    assert_int_equal(config_parse_seeds(c, host, f->err, sizeof(f->err)), -1);
    assert_non_null(strstr(f->err, "too long"));
}

/* ---- regressions ---- */

/* A line longer than inih's INI_MAX_LINE (200 in Debian's libinih) is split:
 * a 300-byte data_dir was reported as "FILE:4: syntax error" for a 3-line
 * file, though config.h allows data_dir up to 4095 bytes. */
static void test_bug_long_line(void **state)
{
    fixture_t *f = *state;
    char dir[301], text[512];

    memset(dir, 'd', sizeof(dir) - 1);
    dir[0] = '/';
    dir[sizeof(dir) - 1] = '\0';
    snprintf(text, sizeof(text), "[node]\nname = n\ndata_dir = %s\n", dir);
    write_ini(f, text);
    if (config_load(&f->cfg, f->path, f->err, sizeof(f->err)) == 0) {
        assert_string_equal(f->cfg.data_dir, dir);
    } else {
        char prefix[256];
        snprintf(prefix, sizeof(prefix), "%s:3: ", f->path);
        if (strncmp(f->err, prefix, strlen(prefix)) != 0)
            fail_msg("long data_dir: \"%s\", want it read or an error on line 3", f->err);
    }
}

/* With a syntax error on line 2 and an unknown key on line 4, the message
 * was "FILE:2: unknown key node.bogus": inih (INI_STOP_ON_FIRST_ERROR 0)
 * returns the first error's line, the handler keeps the later message. */
static void test_bug_error_line_matches_message(void **state)
{
    fixture_t *f = *state;

    write_ini(f, "[node]\nname n1\ndata_dir = d\nbogus = 1\n");
    assert_int_equal(config_load(&f->cfg, f->path, f->err, sizeof(f->err)), -1);
    if (strstr(f->err, "unknown key"))
        assert_non_null(strstr(f->err, ".ini:4: "));
    else
        assert_non_null(strstr(f->err, ".ini:2: syntax error"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_documented),
        cmocka_unit_test_setup_teardown(test_minimal_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_resets_to_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repo_configs_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_key_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_booleans_and_log_levels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_and_lengths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_and_cross_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_seeds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bug_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bug_error_line_matches_message, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
