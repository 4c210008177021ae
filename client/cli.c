/*
 * cli.c - quorumkv-cli: the command-line client, built on libquorumkv.
 *
 *   quorumkv-cli [-h host:port] [--json] [-r LEVEL] [-w LEVEL] [-t MS] COMMAND [ARGS]
 *   quorumkv-cli [-h host:port]            interactive prompt (libedit: editing, history)
 *
 * Organisation: main() parses the global options and connects; run_cmd()
 * dispatches one command (from argv or from a prompt line) to one cmd_*
 * function, which prints a table (default) or one JSON document (--json)
 * on stdout and returns the exit code: 0 done/found, 1 not found, 2 usage,
 * 3 cluster or connection error.  Errors go to stderr as one line.
 * Cluster views (status, ring, members, stats) come from qkv_admin(); what
 * a server does not report shows as "-" (null in JSON).
 */
#include <editline/readline.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "quorumkv.h"

#define EXIT_DONE 0
#define EXIT_NOTFOUND 1
#define EXIT_USAGE 2
#define EXIT_CLUSTER 3
#define MAX_ARGS 64
#define MAX_COLS 12

static const char *host = "127.0.0.1:11211";
static bool json;
static qkv_opts_t ropts = QKV_OPTS_INIT, wopts = QKV_OPTS_INIT;
static qkv_client_t *cl;

static const char usage_text[] =
    "usage: quorumkv-cli [-h host:port[,host:port...]] [--json] [-r LEVEL] [-w LEVEL]\n"
    "                    [-t TIMEOUT_MS] [COMMAND [ARGS...]]\n"
    "\n"
    "Without a command: an interactive prompt (line editing, history in\n"
    "~/.quorumkv_cli_history).\n"
    "\n"
    "Commands:\n"
    "  get KEY                   the newest value (exit 1 if not found)\n"
    "  siblings KEY              every version of KEY, tombstones included, and its context\n"
    "  set KEY VALUE [--flags N] [--ttl S] [--context CTX]   (VALUE '-' reads stdin)\n"
    "  delete KEY [--context CTX]                            (exit 1 if not found)\n"
    "  incr KEY [DELTA]          add DELTA (default 1) to a counter\n"
    "  touch KEY TTL             set a new expiry\n"
    "  status                    every node: state, ring share, keys, data, hints, anti-entropy\n"
    "  ring                      token ranges and their replicas\n"
    "  members                   nodes as the cluster sees them\n"
    "  stats [NODE]              STAT lines of one node (default: the -h node)\n"
    "  transfers [NODE]          ranges the node is moving (join, leave, remove)\n"
    "\n"
    "Options:\n"
    "  -h host:port   a node's client address [127.0.0.1:11211]; several: comma-separated\n"
    "  --json         one JSON document per command on stdout\n"
    "  -r, -w LEVEL   read / write level: one, quorum, all or a number [the cluster's]\n"
    "  -t MS          request timeout in milliseconds [3000]\n"
    "  --help, --version\n"
    "\n"
    "Exit status: 0 done or found, 1 not found, 2 usage, 3 cluster or connection error.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("quorumkv-cli: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (--help for usage)\n", stderr);
    return EXIT_USAGE;
}

/* Report a library error; the exit code it maps to. */
static int lib_error(const char *what, int rc, char *err)
{
    fprintf(stderr, "quorumkv-cli: %s: %s\n", what, err ? err : qkv_strerror(rc));
    qkv_free(err);
    return rc == QKV_ERR_ARG || rc == QKV_ERR_CLIENT || rc == QKV_ERR_NOT_NUMBER ? EXIT_USAGE
                                                                                 : EXIT_CLUSTER;
}

/* ---- output helpers ---- */

static void json_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': fputs("\\\"", stdout); break;
        case '\\': fputs("\\\\", stdout); break;
        case '\n': fputs("\\n", stdout); break;
        case '\r': fputs("\\r", stdout); break;
        case '\t': fputs("\\t", stdout); break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                printf("\\u%04x", ch);
            else
                putchar(ch);
        }
    }
    putchar('"');
}

static void json_cstr(const char *s)
{
    if (s)
        json_str(s, strlen(s));
    else
        fputs("null", stdout);
}

/* Valid UTF-8 (so it can be a JSON string as it is). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
        if (k == 9 || i + k >= n + (k == 0))
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* A value in JSON: "value" when it is UTF-8 text, else "value_base64". */
static void json_value(const char *v, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (utf8_ok((const unsigned char *)v, n)) {
        fputs("\"value\": ", stdout);
        json_str(v, n);
        return;
    }
    fputs("\"value_base64\": \"", stdout);
    const unsigned char *p = (const unsigned char *)v;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t x = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        putchar(b64[x >> 18 & 63]);
        putchar(b64[x >> 12 & 63]);
        putchar(i + 1 < n ? b64[x >> 6 & 63] : '=');
        putchar(i + 2 < n ? b64[x & 63] : '=');
    }
    putchar('"');
}

/* A human-readable value: printable bytes as they are, others escaped. */
static void human_value(FILE *f, const char *v, size_t n, size_t max)
{
    size_t shown = n < max ? n : max;
    for (size_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch >= 0x20 && ch != 0x7f)
            fputc(ch, f);
        else
            fprintf(f, "\\x%02x", ch);
    }
    if (shown < n)
        fprintf(f, "... (%zu bytes)", n);
}

/* A table: rows of cells, printed with columns padded to their widest. */
typedef struct table {
    size_t ncols, nrows, cap;
    char **cells; /* nrows * ncols, malloc()ed */
} table_t;

static void table_row(table_t *t, ...)
{
    va_list ap;
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        char **c = realloc(t->cells, t->cap * t->ncols * sizeof(*c));
        if (!c)
            return;
        t->cells = c;
    }
    va_start(ap, t);
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = va_arg(ap, const char *);
        t->cells[t->nrows * t->ncols + i] = strdup(s ? s : "-");
    }
    va_end(ap);
    t->nrows++;
}

static void table_print(table_t *t)
{
    size_t w[MAX_COLS] = {0};
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * t->ncols + i];
            size_t l = s ? strlen(s) : 1;
            if (l > w[i])
                w[i] = l;
        }
    for (size_t r = 0; r < t->nrows; r++) {
        for (size_t i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * t->ncols + i];
            if (i + 1 < t->ncols)
                printf("%-*s  ", (int)w[i], s ? s : "-");
            else
                printf("%s\n", s ? s : "-");
        }
    }
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

static void fmt_time(int64_t ts_us, char *buf, size_t cap)
{
    time_t s = (time_t)(ts_us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%06lld", (long long)(ts_us % 1000000));
}

static void fmt_bytes(uint64_t b, char *buf, size_t cap)
{
    if (b < 1024)
        snprintf(buf, cap, "%" PRIu64 " B", b);
    else if (b < 1024 * 1024)
        snprintf(buf, cap, "%.1f KiB", (double)b / 1024);
    else if (b < 1024ull * 1024 * 1024)
        snprintf(buf, cap, "%.1f MiB", (double)b / (1024 * 1024));
    else
        snprintf(buf, cap, "%.2f GiB", (double)b / (1024.0 * 1024 * 1024));
}

/* ---- parsing replies of qkv_admin ---- */

/* Split a reply into lines in place; returns the count (at most max). */
static size_t split_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;
    for (char *p = text; *p && n < max;) {
        char *e = strchr(p, '\n');
        lines[n++] = p;
        if (!e)
            break;
        *e = '\0';
        p = e + 1;
    }
    return n;
}

static size_t split_words(char *s, char **w, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(s, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
        w[n++] = t;
    return n;
}

/* The value of STAT name in a stats reply (text), or NULL; static buffer. */
static const char *stat_of(const char *text, const char *name)
{
    static char val[128];
    char pat[80];
    if (!text)
        return NULL;
    snprintf(pat, sizeof(pat), "STAT %s ", name);
    size_t pl = strlen(pat);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, pat, pl)) {
            const char *e = strchr(p + pl, '\n');
            size_t l = e ? (size_t)(e - p - pl) : strlen(p + pl);
            if (l >= sizeof(val))
                l = sizeof(val) - 1;
            memcpy(val, p + pl, l);
            val[l] = '\0';
            return val;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

typedef struct member {
    char *name, *client, *peer, *state;
} member_t;

/* Parse `members`; the strings point into text. */
static size_t parse_members(char *text, member_t *m, size_t max)
{
    char *lines[1024];
    size_t nl = split_lines(text, lines, 1024), n = 0;
    for (size_t i = 0; i < nl && n < max; i++) {
        char *w[8];
        if (split_words(lines[i], w, 8) < 4)
            continue;
        m[n++] = (member_t){w[0], w[1], w[2], w[3]};
    }
    return n;
}

/* ---- commands ---- */

static int need_args(int argc, int min, int max, const char *usage)
{
    if (argc < min || argc > max)
        return usage_error("usage: %s", usage);
    return 0;
}

static int cmd_get(int argc, char **argv, bool all)
{
    char *err = NULL;
    qkv_result_t *r = NULL;
    int rc = need_args(argc, 2, 2, all ? "siblings KEY" : "get KEY");
    if (rc)
        return rc;
    const char *key = argv[1];
    rc = qkv_get(cl, &ropts, key, strlen(key), &r, &err);
    if (rc < 0)
        return lib_error(all ? "siblings" : "get", rc, err);
    const qkv_sibling_t *nw = qkv_result_newest(r);
    int code = nw ? EXIT_DONE : EXIT_NOTFOUND;
    if (json) {
        printf("{\"key\": ");
        json_cstr(key);
        printf(", \"found\": %s", nw ? "true" : "false");
        if (!all && nw) {
            printf(", ");
            json_value(nw->value, nw->len);
            printf(", \"flags\": %u, \"ts_us\": %lld", nw->flags, (long long)nw->ts_us);
        }
        printf(", \"siblings\": %zu, \"context\": ", all ? qkv_result_count(r) : qkv_result_live(r));
        json_cstr(qkv_result_context(r));
        if (all) {
            printf(", \"versions\": [");
            for (size_t i = 0; i < qkv_result_count(r); i++) {
                const qkv_sibling_t *s = qkv_result_sibling(r, i);
                printf("%s{", i ? ", " : "");
                json_value(s->value, s->len);
                printf(", \"flags\": %u, \"ts_us\": %lld, \"deleted\": %s}", s->flags,
                       (long long)s->ts_us, s->deleted ? "true" : "false");
            }
            printf("]");
        }
        printf("}\n");
    } else if (!all) {
        if (nw) {
            fwrite(nw->value, 1, nw->len, stdout);
            if (nw->len == 0 || nw->value[nw->len - 1] != '\n')
                putchar('\n');
            if (qkv_result_live(r) > 1)
                fprintf(stderr, "(%zu siblings: `siblings %s` shows them all)\n",
                        qkv_result_live(r), key);
        } else {
            fprintf(stderr, "(not found)\n");
        }
    } else {
        table_t t = {.ncols = 6};
        table_row(&t, "#", "STATE", "FLAGS", "WRITTEN (UTC)", "BYTES", "VALUE");
        for (size_t i = 0; i < qkv_result_count(r); i++) {
            const qkv_sibling_t *s = qkv_result_sibling(r, i);
            char idx[24], fl[16], when[48], len[24], *val = NULL;
            size_t vl = 0;
            FILE *m = open_memstream(&val, &vl);
            if (m) {
                human_value(m, s->value, s->len, 60);
                fclose(m);
            }
            snprintf(idx, sizeof(idx), "%zu", i + 1);
            snprintf(fl, sizeof(fl), "%u", s->flags);
            fmt_time(s->ts_us, when, sizeof(when));
            snprintf(len, sizeof(len), "%zu", s->len);
            table_row(&t, idx, s->deleted ? "deleted" : "live", fl, when, len,
                      s->deleted ? "" : (val ? val : ""));
            free(val);
        }
        if (qkv_result_count(r) > 0)
            table_print(&t);
        else {
            table_print(&t);
            printf("(no versions: the key was never written)\n");
        }
        printf("context: %s\n", qkv_result_context(r));
    }
    qkv_result_free(r);
    return code;
}

/* Read all of stdin into a malloc()ed buffer. */
static char *read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
        if (n == cap) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) {
                free(b);
                return NULL;
            }
            b = nb;
        }
    }
    *len = n;
    return b;
}

/* Options after the positional arguments: --flags N --ttl S --context C. */
static int write_opts(int argc, char **argv, int first, uint32_t *flags, int64_t *ttl,
                      const char **ctx)
{
    for (int i = first; i < argc; i++) {
        char *end;
        if (i + 1 >= argc)
            return usage_error("option %s needs a value", argv[i]);
        if (!strcmp(argv[i], "--flags") && flags) {
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end || v > UINT32_MAX)
                return usage_error("--flags wants a number 0..4294967295");
            *flags = (uint32_t)v;
        } else if (!strcmp(argv[i], "--ttl") && ttl) {
            *ttl = strtoll(argv[++i], &end, 10);
            if (*end)
                return usage_error("--ttl wants seconds");
        } else if (!strcmp(argv[i], "--context") && ctx) {
            *ctx = argv[++i];
        } else {
            return usage_error("unknown option %s", argv[i]);
        }
    }
    return 0;
}

static int print_done(const char *cmd, const char *key, const char *result, int code)
{
    if (json) {
        printf("{\"command\": \"%s\", \"key\": ", cmd);
        json_cstr(key);
        printf(", \"result\": \"%s\"}\n", result);
    } else {
        printf("%s\n", result);
    }
    return code;
}

static int cmd_set(int argc, char **argv)
{
    uint32_t flags = 0;
    int64_t ttl = 0;
    const char *ctx = NULL;
    char *err = NULL, *buf = NULL;
    if (argc < 3)
        return usage_error("usage: set KEY VALUE [--flags N] [--ttl S] [--context CTX]");
    int rc = write_opts(argc, argv, 3, &flags, &ttl, &ctx);
    if (rc)
        return rc;
    const char *val = argv[2];
    size_t vlen = strlen(val);
    if (!strcmp(val, "-")) {
        if (!(buf = read_stdin(&vlen)))
            return lib_error("set", QKV_ERR_NOMEM, NULL);
        val = buf;
    }
    qkv_opts_t o = wopts;
    o.context = ctx;
    rc = qkv_set(cl, &o, argv[1], strlen(argv[1]), val, vlen, flags, ttl, &err);
    free(buf);
    if (rc < 0)
        return lib_error("set", rc, err);
    return print_done("set", argv[1], "STORED", EXIT_DONE);
}

static int cmd_delete(int argc, char **argv)
{
    const char *ctx = NULL;
    char *err = NULL;
    if (argc < 2)
        return usage_error("usage: delete KEY [--context CTX]");
    int rc = write_opts(argc, argv, 2, NULL, NULL, &ctx);
    if (rc)
        return rc;
    qkv_opts_t o = wopts;
    o.context = ctx;
    rc = qkv_delete(cl, &o, argv[1], strlen(argv[1]), &err);
    if (rc < 0)
        return lib_error("delete", rc, err);
    return rc == QKV_NOT_FOUND ? print_done("delete", argv[1], "NOT_FOUND", EXIT_NOTFOUND)
                               : print_done("delete", argv[1], "DELETED", EXIT_DONE);
}

static int cmd_incr(int argc, char **argv)
{
    char *err = NULL, *end;
    uint64_t delta = 1, v = 0;
    int rc = need_args(argc, 2, 3, "incr KEY [DELTA]");
    if (rc)
        return rc;
    if (argc == 3) {
        errno = 0;
        delta = strtoull(argv[2], &end, 10);
        if (errno || *end || argv[2][0] == '-')
            return usage_error("DELTA must be a non-negative number");
    }
    rc = qkv_incr(cl, &wopts, argv[1], strlen(argv[1]), delta, &v, &err);
    if (rc < 0)
        return lib_error("incr", rc, err);
    if (rc == QKV_NOT_FOUND)
        return print_done("incr", argv[1], "NOT_FOUND", EXIT_NOTFOUND);
    if (json) {
        printf("{\"command\": \"incr\", \"key\": ");
        json_cstr(argv[1]);
        printf(", \"value\": %" PRIu64 "}\n", v);
    } else {
        printf("%" PRIu64 "\n", v);
    }
    return EXIT_DONE;
}

static int cmd_touch(int argc, char **argv)
{
    char *err = NULL, *end;
    int rc = need_args(argc, 3, 3, "touch KEY TTL");
    if (rc)
        return rc;
    long long ttl = strtoll(argv[2], &end, 10);
    if (*end)
        return usage_error("TTL must be a number of seconds");
    rc = qkv_touch(cl, &wopts, argv[1], strlen(argv[1]), ttl, &err);
    if (rc < 0)
        return lib_error("touch", rc, err);
    return rc == QKV_NOT_FOUND ? print_done("touch", argv[1], "NOT_FOUND", EXIT_NOTFOUND)
                               : print_done("touch", argv[1], "TOUCHED", EXIT_DONE);
}

static int cmd_members(int argc, char **argv)
{
    char *err = NULL, *text = NULL;
    member_t m[1024];
    (void)argv;
    if (argc != 1)
        return usage_error("usage: members");
    int rc = qkv_admin(cl, NULL, "members", &text, &err);
    if (rc < 0)
        return lib_error("members", rc, err);
    char *copy = strdup(text);
    size_t n = copy ? parse_members(copy, m, 1024) : 0;
    if (json) {
        printf("{\"members\": [");
        char *lines[1024];
        size_t nl = split_lines(text, lines, 1024);
        for (size_t i = 0, k = 0; i < nl; i++) {
            char *w[8];
            size_t nw = split_words(lines[i], w, 8);
            if (nw < 4)
                continue;
            printf("%s{\"name\": ", k++ ? ", " : "");
            json_cstr(w[0]);
            printf(", \"address\": ");
            json_cstr(w[1]);
            printf(", \"peer\": ");
            json_cstr(w[2]);
            printf(", \"state\": ");
            json_cstr(w[3]);
            for (size_t j = 4; j < nw; j++) {
                char *eq = strchr(w[j], '=');
                if (eq && (!strncmp(w[j], "phi=", 4) || !strncmp(w[j], "hb=", 3)))
                    printf(", \"%.*s\": %s", (int)(eq - w[j]), w[j], eq + 1);
            }
            printf("}");
        }
        printf("]}\n");
    } else {
        table_t t = {.ncols = 6};
        table_row(&t, "NAME", "ADDRESS", "PEER", "STATE", "PHI", "HEARTBEAT");
        char *lines[1024];
        size_t nl = split_lines(text, lines, 1024);
        for (size_t i = 0; i < nl; i++) {
            char *w[8];
            size_t nw = split_words(lines[i], w, 8);
            if (nw < 4)
                continue;
            const char *phi = NULL, *hb = NULL;
            for (size_t j = 4; j < nw; j++) {
                if (!strncmp(w[j], "phi=", 4))
                    phi = w[j] + 4;
                if (!strncmp(w[j], "hb=", 3))
                    hb = w[j] + 3;
            }
            table_row(&t, w[0], w[1], w[2], w[3], phi, hb);
        }
        table_print(&t);
    }
    (void)n;
    free(copy);
    qkv_free(text);
    return EXIT_DONE;
}

/* A range's width as a fraction of the ring. */
static double range_share(uint64_t start, uint64_t end, size_t nranges)
{
    if (start == end)
        return nranges == 1 ? 1.0 : 0.0;
    return (double)(end - start) / 18446744073709551616.0;
}

static int cmd_ring(int argc, char **argv)
{
    char *err = NULL, *text = NULL;
    (void)argv;
    if (argc != 1)
        return usage_error("usage: ring");
    int rc = qkv_admin(cl, NULL, "ring", &text, &err);
    if (rc < 0)
        return lib_error("ring", rc, err);
    size_t cap = 1;
    for (char *p = text; *p; p++)
        cap += *p == '\n';
    char **lines = malloc(cap * sizeof(*lines));
    size_t nl = lines ? split_lines(text, lines, cap) : 0;
    table_t t = {.ncols = 4};
    if (json)
        printf("{\"ranges\": [");
    else
        table_row(&t, "START", "END", "SHARE", "REPLICAS");
    for (size_t i = 0; i < nl; i++) {
        char *w[4];
        if (split_words(lines[i], w, 4) != 3)
            continue;
        uint64_t s = strtoull(w[0], NULL, 10), e = strtoull(w[1], NULL, 10);
        char share[32];
        snprintf(share, sizeof(share), "%.3f%%", 100 * range_share(s, e, nl));
        if (json) {
            printf("%s{\"start\": %s, \"end\": %s, \"replicas\": [", i ? ", " : "", w[0], w[1]);
            int k = 0;
            for (char *save = NULL, *nm = strtok_r(w[2], ",", &save); nm; nm = strtok_r(NULL, ",", &save)) {
                printf("%s", k++ ? ", " : "");
                json_cstr(nm);
            }
            printf("]}");
        } else {
            table_row(&t, w[0], w[1], share, w[2]);
        }
    }
    if (json)
        printf("]}\n");
    else {
        table_print(&t);
        printf("(%zu ranges)\n", nl);
    }
    free(lines);
    qkv_free(text);
    return EXIT_DONE;
}

/* The member whose client address is the -h address, or NULL. */
static const char *node_of_host(member_t *m, size_t n)
{
    char first[300];
    snprintf(first, sizeof(first), "%s", host);
    char *comma = strchr(first, ',');
    if (comma)
        *comma = '\0';
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m[i].client, first))
            return m[i].name;
    return NULL;
}

static int cmd_stats(int argc, char **argv)
{
    char *err = NULL, *text = NULL, *mtext = NULL;
    member_t m[1024];
    size_t nm = 0;
    if (argc > 2)
        return usage_error("usage: stats [NODE]");
    const char *node = argc == 2 ? argv[1] : NULL;
    if (!node && qkv_admin(cl, NULL, "members", &mtext, NULL) == 0) {
        nm = parse_members(mtext, m, 1024);
        node = node_of_host(m, nm);
    }
    int rc = qkv_admin(cl, node, "stats", &text, &err);
    if (rc < 0) {
        qkv_free(mtext);
        return lib_error("stats", rc, err);
    }
    char *lines[4096];
    size_t nl = split_lines(text, lines, 4096);
    table_t t = {.ncols = 2};
    if (json) {
        printf("{\"node\": ");
        json_cstr(node);
        printf(", \"stats\": {");
    } else {
        table_row(&t, "STAT", "VALUE");
    }
    for (size_t i = 0, k = 0; i < nl; i++) {
        char *w[3];
        char *sp1 = strchr(lines[i], ' ');
        if (!sp1 || strncmp(lines[i], "STAT ", 5))
            continue;
        char *sp2 = strchr(sp1 + 1, ' ');
        if (!sp2)
            continue;
        *sp2 = '\0';
        w[1] = sp1 + 1;
        w[2] = sp2 + 1;
        if (json) {
            printf("%s", k++ ? ", " : "");
            json_cstr(w[1]);
            printf(": ");
            char *end;
            strtod(w[2], &end);
            if (*w[2] && !*end && w[2][0] != '+' && strspn(w[2], "0123456789.-") == strlen(w[2]))
                printf("%s", w[2]);
            else
                json_cstr(w[2]);
        } else {
            table_row(&t, w[1], w[2]);
        }
    }
    if (json)
        printf("}}\n");
    else {
        if (node)
            printf("node %s\n", node);
        table_print(&t);
    }
    qkv_free(text);
    qkv_free(mtext);
    return EXIT_DONE;
}

/* `aae` of one node summarised: "in-sync", "differs (k of n ranges)", or
 * NULL when the node does not report it. */
static const char *aae_state(const char *node, char *buf, size_t cap)
{
    char *text = NULL;
    if (qkv_admin(cl, node, "aae", &text, NULL) < 0)
        return NULL;
    size_t n = 0, differ = 0;
    for (char *p = text; p && *p;) {
        n++;
        char *e = strchr(p, '\n');
        if (e)
            *e = '\0';
        if (strstr(p, " differs"))
            differ++;
        p = e ? e + 1 : NULL;
    }
    qkv_free(text);
    if (n == 0)
        return NULL;
    if (differ == 0)
        snprintf(buf, cap, "in-sync");
    else
        snprintf(buf, cap, "differs (%zu of %zu ranges)", differ, n);
    return buf;
}

static int cmd_status(int argc, char **argv)
{
    char *err = NULL, *mtext = NULL, *rtext = NULL;
    member_t m[1024];
    (void)argv;
    if (argc != 1)
        return usage_error("usage: status");
    int rc = qkv_admin(cl, NULL, "members", &mtext, &err);
    if (rc < 0)
        return lib_error("status", rc, err);
    rc = qkv_admin(cl, NULL, "ring", &rtext, &err);
    if (rc < 0) {
        qkv_free(mtext);
        return lib_error("status", rc, err);
    }
    size_t nm = parse_members(mtext, m, 1024);
    double *prim = calloc(nm ? nm : 1, sizeof(double)), *repl = calloc(nm ? nm : 1, sizeof(double));
    size_t cap = 1;
    for (char *p = rtext; *p; p++)
        cap += *p == '\n';
    char **lines = malloc(cap * sizeof(*lines));
    size_t nl = lines ? split_lines(rtext, lines, cap) : 0;
    for (size_t i = 0; prim && repl && i < nl; i++) {
        char *w[4];
        if (split_words(lines[i], w, 4) != 3)
            continue;
        double share = range_share(strtoull(w[0], NULL, 10), strtoull(w[1], NULL, 10), nl);
        int k = 0;
        for (char *save = NULL, *nm2 = strtok_r(w[2], ",", &save); nm2; nm2 = strtok_r(NULL, ",", &save), k++)
            for (size_t j = 0; j < nm; j++)
                if (!strcmp(m[j].name, nm2)) {
                    if (k == 0)
                        prim[j] += share;
                    repl[j] += share;
                }
    }
    table_t t = {.ncols = 10};
    if (json)
        printf("{\"nodes\": [");
    else
        table_row(&t, "NODE", "ADDRESS", "STATE", "OWNS", "REPLICAS", "KEYS", "DATA", "DISK",
                  "HINTS", "ANTI-ENTROPY");
    for (size_t j = 0; j < nm; j++) {
        char *stext = NULL, owns[16], rep[16], data[32], disk[32], aaebuf[64];
        const char *keys = NULL, *hints = NULL, *aae = NULL, *bytes_s = NULL, *disk_s = NULL;
        char keys_c[32] = "", hints_c[32] = "", bytes_c[32] = "", disk_c[32] = "";
        bool up = strcmp(m[j].state, "down") != 0;
        if (up && qkv_admin(cl, m[j].name, "stats", &stext, NULL) == 0) {
            /* copy: stat_of returns a static buffer */
            if ((keys = stat_of(stext, "curr_items")))
                keys = strcpy(keys_c, keys);
            if ((hints = stat_of(stext, "hints_pending")))
                hints = strcpy(hints_c, hints);
            if ((bytes_s = stat_of(stext, "bytes")))
                bytes_s = strcpy(bytes_c, bytes_s);
            if ((disk_s = stat_of(stext, "disk_bytes")))
                disk_s = strcpy(disk_c, disk_s);
            aae = aae_state(m[j].name, aaebuf, sizeof(aaebuf));
        }
        snprintf(owns, sizeof(owns), "%.1f%%", prim ? 100 * prim[j] : 0.0);
        snprintf(rep, sizeof(rep), "%.1f%%", repl ? 100 * repl[j] : 0.0);
        if (bytes_s)
            fmt_bytes(strtoull(bytes_s, NULL, 10), data, sizeof(data));
        if (disk_s)
            fmt_bytes(strtoull(disk_s, NULL, 10), disk, sizeof(disk));
        if (json) {
            printf("%s{\"name\": ", j ? ", " : "");
            json_cstr(m[j].name);
            printf(", \"address\": ");
            json_cstr(m[j].client);
            printf(", \"state\": ");
            json_cstr(m[j].state);
            printf(", \"owns\": %.6f, \"replicas\": %.6f, \"keys\": %s, \"data_bytes\": %s, "
                   "\"disk_bytes\": %s, \"hints_pending\": %s, \"anti_entropy\": ",
                   prim ? prim[j] : 0.0, repl ? repl[j] : 0.0, keys ? keys : "null",
                   bytes_s ? bytes_s : "null", disk_s ? disk_s : "null", hints ? hints : "null");
            json_cstr(aae);
            printf("}");
        } else {
            table_row(&t, m[j].name, m[j].client, m[j].state, owns, rep, keys,
                      bytes_s ? data : NULL, disk_s ? disk : NULL, hints, aae);
        }
        qkv_free(stext);
    }
    if (json)
        printf("]}\n");
    else
        table_print(&t);
    free(prim);
    free(repl);
    free(lines);
    qkv_free(mtext);
    qkv_free(rtext);
    return EXIT_DONE;
}

/* `transfers [NODE]`: the ranges a node is moving (one node's view: ask the
 * joining or leaving node), as the server lists them. */
static int cmd_transfers(int argc, char **argv)
{
    char *err = NULL, *text = NULL;
    if (argc > 2)
        return usage_error("usage: transfers [NODE]");
    int rc = qkv_admin(cl, argc == 2 ? argv[1] : NULL, "transfers", &text, &err);
    if (rc < 0)
        return lib_error("transfers", rc, err);
    char *lines[4096];
    size_t nl = split_lines(text, lines, 4096);
    table_t t = {.ncols = 8};
    if (json)
        printf("{\"transfers\": [");
    else
        table_row(&t, "START", "END", "FROM", "TO", "KEYS", "BYTES", "RATE", "ETA");
    for (size_t i = 0, k = 0; i < nl; i++) {
        char *w[8];
        if (split_words(lines[i], w, 8) != 8)
            continue;
        if (json) {
            printf("%s{\"start\": %s, \"end\": %s, \"from\": ", k++ ? ", " : "", w[0], w[1]);
            json_cstr(w[2]);
            printf(", \"to\": ");
            json_cstr(w[3]);
            printf(", \"keys\": ");
            json_cstr(w[4]);
            printf(", \"bytes\": %s, \"rate\": ", w[5]);
            json_cstr(w[6]);
            printf(", \"eta\": ");
            json_cstr(w[7]);
            printf("}");
        } else {
            table_row(&t, w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]);
        }
    }
    if (json)
        printf("]}\n");
    else
        table_print(&t);
    qkv_free(text);
    return EXIT_DONE;
}

static const char *const commands[] = {"get", "siblings", "set", "delete", "incr",
                                       "touch", "status", "ring", "members", "stats",
                                       "transfers"};

static bool known_command(const char *c)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(c, commands[i]))
            return true;
    return false;
}

static int run_cmd(int argc, char **argv)
{
    const char *c = argv[0];
    if (!strcmp(c, "get"))
        return cmd_get(argc, argv, false);
    if (!strcmp(c, "siblings"))
        return cmd_get(argc, argv, true);
    if (!strcmp(c, "set"))
        return cmd_set(argc, argv);
    if (!strcmp(c, "delete"))
        return cmd_delete(argc, argv);
    if (!strcmp(c, "incr"))
        return cmd_incr(argc, argv);
    if (!strcmp(c, "touch"))
        return cmd_touch(argc, argv);
    if (!strcmp(c, "status"))
        return cmd_status(argc, argv);
    if (!strcmp(c, "ring"))
        return cmd_ring(argc, argv);
    if (!strcmp(c, "members"))
        return cmd_members(argc, argv);
    if (!strcmp(c, "stats"))
        return cmd_stats(argc, argv);
    if (!strcmp(c, "transfers"))
        return cmd_transfers(argc, argv);
    return usage_error("unknown command '%s'", c);
}

/* ---- interactive prompt ---- */

/* Split a prompt line into words: spaces separate, "..." and '...' quote,
 * backslash escapes the next byte (also \n, \r, \t, \xHH inside quotes).
 * Words are written into buf.  Returns the count, or -1 on an open quote. */
static int shell_split(const char *line, char *buf, char **argv, int max)
{
    int n = 0;
    const char *p = line;
    char *o = buf;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || n == max)
            return n;
        argv[n++] = o;
        char q = 0;
        while (*p && (q || (*p != ' ' && *p != '\t'))) {
            if (!q && (*p == '"' || *p == '\'')) {
                q = *p++;
                continue;
            }
            if (q && *p == q) {
                q = 0;
                p++;
                continue;
            }
            if (*p == '\\' && p[1] && q != '\'') {
                p++;
                switch (*p) {
                case 'n': *o++ = '\n'; break;
                case 'r': *o++ = '\r'; break;
                case 't': *o++ = '\t'; break;
                default: *o++ = *p;
                }
                p++;
                continue;
            }
            *o++ = *p++;
        }
        if (q)
            return -1;
        *o++ = '\0';
    }
}

static int interactive(void)
{
    char hist[4096] = "", prompt[300];
    const char *home = getenv("HOME");
    bool tty = isatty(0);
    if (home)
        snprintf(hist, sizeof(hist), "%s/.quorumkv_cli_history", home);
    snprintf(prompt, sizeof(prompt), "quorumkv %s> ", host);
    if (tty) {
        using_history();
        stifle_history(1000);
        if (hist[0])
            read_history(hist);
        printf("quorumkv-cli %s connected to %s; 'help' for commands, 'quit' to leave\n",
               QKV_VERSION_STRING, host);
    }
    for (;;) {
        char *line = NULL;
        if (tty) {
            line = readline(prompt);
        } else {
            size_t cap = 0;
            if (getline(&line, &cap, stdin) < 0) {
                free(line);
                line = NULL;
            } else {
                line[strcspn(line, "\r\n")] = '\0';
            }
        }
        if (!line)
            break;
        char *buf = malloc(strlen(line) + 1);
        char *argv[MAX_ARGS];
        int argc = buf ? shell_split(line, buf, argv, MAX_ARGS) : 0;
        if (tty && argc > 0)
            add_history(line);
        if (argc < 0)
            fprintf(stderr, "quorumkv-cli: unterminated quote\n");
        else if (argc > 0 && (!strcmp(argv[0], "quit") || !strcmp(argv[0], "exit"))) {
            free(buf);
            free(line);
            break;
        } else if (argc > 0 && !strcmp(argv[0], "help"))
            fputs(usage_text, stdout);
        else if (argc > 0)
            run_cmd(argc, argv);
        fflush(stdout);
        free(buf);
        free(line);
    }
    if (tty && hist[0])
        write_history(hist);
    return EXIT_DONE;
}

int main(int argc, char **argv)
{
    int i = 1, rc;
    char *err = NULL;
    qkv_config_t cfg;
    qkv_config_init(&cfg);

    for (; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return EXIT_DONE;
        }
        if (!strcmp(a, "--version")) {
            printf("quorumkv-cli %s\n", QKV_VERSION_STRING);
            return EXIT_DONE;
        }
        if (!strcmp(a, "--json")) {
            json = true;
            continue;
        }
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (i + 1 >= argc)
            return usage_error("option %s needs a value", a);
        if (!strcmp(a, "-h") || !strcmp(a, "--host")) {
            host = argv[++i];
        } else if (!strcmp(a, "-r") || !strcmp(a, "-w")) {
            int lv;
            if (qkv_level_parse(argv[++i], &lv) < 0)
                return usage_error("bad level '%s' (one, quorum, all or 1..16)", argv[i]);
            (a[1] == 'r' ? &ropts : &wopts)->level = lv;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--timeout")) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 3600000)
                return usage_error("bad timeout '%s' (milliseconds)", argv[i]);
            cfg.timeout_ms = (int)t;
        } else {
            return usage_error("unknown option %s", a);
        }
    }
    if (i < argc && !known_command(argv[i]))
        return usage_error("unknown command '%s'", argv[i]);
    cl = qkv_connect(host, &cfg, &err);
    if (!cl) {
        fprintf(stderr, "quorumkv-cli: cannot connect to %s: %s\n", host, err ? err : "?");
        qkv_free(err);
        return EXIT_CLUSTER;
    }
    rc = i < argc ? run_cmd(argc - i, argv + i) : interactive();
    qkv_close(cl);
    return rc;
}
