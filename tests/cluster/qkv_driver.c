/*
 * qkv_driver.c - drives libquorumkv for tests/cluster/test_client.py.
 *
 * Reads one command per line on stdin, runs it through the library and
 * prints one JSON object per line on stdout, so the Python test can start
 * and kill nodes between calls.  Tokens are separated by spaces; values are
 * single tokens ("-" is the empty value).  Options: level=LEVEL (as
 * qkv_level_parse, or raw=N to pass the integer N unchecked), timeout=MS,
 * ctx=CONTEXT.
 *
 *   connect SEEDS [timeout=MS] [refresh=MS]   close
 *   set KEY VALUE [opts]     get KEY [opts]     mget K1,K2,... [opts]
 *   delete KEY [opts]        touch KEY EXPTIME [opts]   incr KEY DELTA [opts]
 *   load N PREFIX [opts]     (sets PREFIX0..PREFIXN-1 = "v<i>")
 *   readall N PREFIX [opts]  (gets them; counts found / missing / errors)
 *   replicas KEY             admin NODE|- COMMAND
 *   badargs                  (NULLs, bad keys, bad levels: checked here)
 *
 * Every reply has "rc" (the library's return code) and "err" (its message
 * or null).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../client/client_internal.h"
#include "../../client/quorumkv.h"

static qkv_client_t *cl;

static void json_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void end_reply(int rc, char *err)
{
    printf("\"rc\": %d, \"err\": ", rc);
    if (err)
        json_str(err, strlen(err));
    else
        printf("null");
    printf("}\n");
    fflush(stdout);
    qkv_free(err);
}

static void print_result(const qkv_result_t *r)
{
    if (!r) {
        printf("null");
        return;
    }
    printf("{\"live\": %zu, \"context\": ", qkv_result_live(r));
    json_str(qkv_result_context(r), strlen(qkv_result_context(r)));
    const qkv_sibling_t *nw = qkv_result_newest(r);
    printf(", \"newest\": ");
    if (nw)
        json_str(nw->value, nw->len);
    else
        printf("null");
    printf(", \"siblings\": [");
    for (size_t i = 0; i < qkv_result_count(r); i++) {
        const qkv_sibling_t *s = qkv_result_sibling(r, i);
        printf("%s{\"value\": ", i ? ", " : "");
        json_str(s->value, s->len);
        printf(", \"flags\": %u, \"ts_us\": %lld, \"deleted\": %s}", s->flags, (long long)s->ts_us,
               s->deleted ? "true" : "false");
    }
    printf("]}");
}

/* Options from tokens tok[first..n). */
static int parse_opts(char **tok, int n, int first, qkv_opts_t *o)
{
    *o = (qkv_opts_t)QKV_OPTS_INIT;
    for (int i = first; i < n; i++) {
        if (!strncmp(tok[i], "level=", 6)) {
            if (qkv_level_parse(tok[i] + 6, &o->level) < 0)
                return -1;
        } else if (!strncmp(tok[i], "raw=", 4)) {
            o->level = atoi(tok[i] + 4);
        } else if (!strncmp(tok[i], "timeout=", 8)) {
            o->timeout_ms = atoi(tok[i] + 8);
        } else if (!strncmp(tok[i], "ctx=", 4)) {
            o->context = tok[i] + 4;
        } else {
            return -1;
        }
    }
    return 0;
}

/* badargs: every call the header says must fail with QKV_ERR_ARG. */
static void badargs(void)
{
    char *err = NULL, big[QKV_KEY_MAX + 2], buf[64];
    qkv_result_t *r = (qkv_result_t *)1;
    int failed = 0, checks = 0, lv;
    qkv_opts_t o = QKV_OPTS_INIT;
    uint64_t v;
    memset(big, 'k', sizeof(big));
    printf("{\"failures\": [");
#define CHECK(expr)                                                                     \
    do {                                                                                \
        int rc_ = (expr);                                                               \
        checks++;                                                                       \
        if (rc_ != QKV_ERR_ARG) {                                                       \
            printf("%s\"%s -> %d\"", failed ? ", " : "", #expr, rc_);                  \
            failed++;                                                                   \
        }                                                                               \
    } while (0)
    CHECK(qkv_get(NULL, NULL, "k", 1, &r, &err));
    CHECK(r == NULL ? QKV_ERR_ARG : 0); /* *out cleared on failure */
    CHECK(qkv_get(cl, NULL, NULL, 1, &r, &err));
    CHECK(qkv_get(cl, NULL, "k", 1, NULL, &err));
    CHECK(qkv_get(cl, NULL, "", 0, &r, &err));
    CHECK(qkv_get(cl, NULL, big, QKV_KEY_MAX + 1, &r, &err));
    CHECK(qkv_get(cl, NULL, "a b", 3, &r, &err));
    CHECK(qkv_get(cl, NULL, "a\nb", 3, &r, &err));
    CHECK(qkv_set(cl, NULL, big, QKV_KEY_MAX + 1, "v", 1, 0, 0, &err));
    CHECK(qkv_set(cl, NULL, "k", 1, NULL, 5, 0, 0, &err));
    CHECK(qkv_set(NULL, NULL, "k", 1, "v", 1, 0, 0, &err));
    o.level = 17;
    CHECK(qkv_set(cl, &o, "k", 1, "v", 1, 0, 0, &err));
    o.level = -4;
    CHECK(qkv_get(cl, &o, "k", 1, &r, &err));
    o.level = 0;
    o.context = "[has space]";
    CHECK(qkv_set(cl, &o, "k", 1, "v", 1, 0, 0, &err));
    o.context = "";
    CHECK(qkv_delete(cl, &o, "k", 1, &err));
    o.context = "[]";
    CHECK(qkv_incr(cl, &o, "k", 1, 1, &v, &err)); /* incr takes no context */
    CHECK(qkv_touch(cl, &o, "k", 1, 10, &err));
    o.context = NULL;
    CHECK(qkv_delete(NULL, NULL, "k", 1, &err));
    CHECK(qkv_touch(cl, NULL, NULL, 0, 1, &err));
    CHECK(qkv_incr(cl, NULL, "", 0, 1, NULL, &err));
    CHECK(qkv_mget(cl, NULL, 1, NULL, NULL, NULL, NULL, &err));
    CHECK(qkv_level_parse("most", &lv));
    CHECK(qkv_level_parse("0", &lv));
    CHECK(qkv_level_parse("17", &lv));
    CHECK(qkv_level_parse(NULL, &lv));
    CHECK(qkv_admin(cl, NULL, "flush_all", NULL, &err));
    CHECK(qkv_replicas(cl, "k", 1, buf, 2));
    CHECK(qkv_connect(NULL, NULL, &err) == NULL ? QKV_ERR_ARG : 0);
    CHECK(qkv_connect("nonsense", NULL, &err) == NULL ? QKV_ERR_ARG : 0);
    CHECK(qkv_connect("127.0.0.1:99999", NULL, &err) == NULL ? QKV_ERR_ARG : 0);
    /* errptr may be NULL, and a message is there after a failure */
    CHECK(qkv_get(cl, NULL, "", 0, &r, NULL));
    checks++;
    if (!err || !*err) {
        printf("%s\"no message in errptr\"", failed ? ", " : "");
        failed++;
    }
    /* valid levels parse */
    checks++;
    if (qkv_level_parse("QUORUM", &lv) != 0 || lv != QKV_LEVEL_QUORUM ||
        qkv_level_parse("2", &lv) != 0 || lv != 2) {
        printf("%s\"valid levels refused\"", failed ? ", " : "");
        failed++;
    }
#undef CHECK
    printf("], \"checks\": %d, ", checks);
    end_reply(failed ? -1 : 0, err);
}

static void run_line(char *line)
{
    char *tok[64], *save = NULL, *err = NULL;
    int n = 0, rc;
    qkv_opts_t o;
    for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 64; t = strtok_r(NULL, " \t\r\n", &save))
        tok[n++] = t;
    if (n == 0)
        return;
    const char *cmd = tok[0];
    if (!strcmp(cmd, "connect") && n >= 2) {
        qkv_config_t cfg;
        qkv_config_init(&cfg);
        for (int i = 2; i < n; i++) {
            if (!strncmp(tok[i], "timeout=", 8))
                cfg.timeout_ms = atoi(tok[i] + 8);
            else if (!strncmp(tok[i], "refresh=", 8))
                cfg.refresh_ms = atoi(tok[i] + 8);
        }
        qkv_close(cl);
        cl = qkv_connect(tok[1], &cfg, &err);
        printf("{");
        end_reply(cl ? 0 : -1, err);
        return;
    }
    if (!strcmp(cmd, "close")) {
        qkv_close(cl);
        cl = NULL;
        printf("{");
        end_reply(0, NULL);
        return;
    }
    if (!strcmp(cmd, "badargs")) {
        badargs();
        return;
    }
    printf("{");
    if (!cl) {
        end_reply(QKV_ERR_ARG, strdup("not connected"));
        return;
    }
    if (!strcmp(cmd, "set") && n >= 3 && parse_opts(tok, n, 3, &o) == 0) {
        const char *v = strcmp(tok[2], "-") ? tok[2] : "";
        rc = qkv_set(cl, &o, tok[1], strlen(tok[1]), v, strlen(v), 0, 0, &err);
    } else if (!strcmp(cmd, "get") && n >= 2 && parse_opts(tok, n, 2, &o) == 0) {
        qkv_result_t *r = NULL;
        rc = qkv_get(cl, &o, tok[1], strlen(tok[1]), &r, &err);
        printf("\"result\": ");
        print_result(r);
        printf(", ");
        qkv_result_free(r);
    } else if (!strcmp(cmd, "mget") && n >= 2 && parse_opts(tok, n, 2, &o) == 0) {
        const char *keys[QKV_MGET_MAX];
        size_t kl[QKV_MGET_MAX], nk = 0;
        qkv_result_t *res[QKV_MGET_MAX];
        int codes[QKV_MGET_MAX];
        char *save2 = NULL;
        for (char *k = strtok_r(tok[1], ",", &save2); k && nk < QKV_MGET_MAX; k = strtok_r(NULL, ",", &save2)) {
            keys[nk] = k;
            kl[nk++] = strlen(k);
        }
        rc = qkv_mget(cl, &o, nk, keys, kl, res, codes, &err);
        printf("\"codes\": [");
        for (size_t i = 0; i < nk; i++)
            printf("%s%d", i ? ", " : "", codes[i]);
        printf("], \"results\": [");
        for (size_t i = 0; i < nk; i++) {
            printf("%s", i ? ", " : "");
            print_result(res[i]);
            qkv_result_free(res[i]);
        }
        printf("], ");
    } else if (!strcmp(cmd, "delete") && n >= 2 && parse_opts(tok, n, 2, &o) == 0) {
        rc = qkv_delete(cl, &o, tok[1], strlen(tok[1]), &err);
    } else if (!strcmp(cmd, "touch") && n >= 3 && parse_opts(tok, n, 3, &o) == 0) {
        rc = qkv_touch(cl, &o, tok[1], strlen(tok[1]), atoll(tok[2]), &err);
    } else if (!strcmp(cmd, "incr") && n >= 3 && parse_opts(tok, n, 3, &o) == 0) {
        uint64_t v = 0;
        rc = qkv_incr(cl, &o, tok[1], strlen(tok[1]), strtoull(tok[2], NULL, 10), &v, &err);
        printf("\"value\": %llu, ", (unsigned long long)v);
    } else if ((!strcmp(cmd, "load") || !strcmp(cmd, "readall")) && n >= 3 &&
               parse_opts(tok, n, 3, &o) == 0) {
        long count = atol(tok[1]), ok = 0, missing = 0, errors = 0;
        int first = 0;
        char key[300], val[32], *first_err = NULL;
        for (long i = 0; i < count; i++) {
            int kl = snprintf(key, sizeof(key), "%s%ld", tok[2], i);
            int vl = snprintf(val, sizeof(val), "v%ld", i);
            qkv_result_t *r = NULL;
            if (cmd[0] == 'l') {
                rc = qkv_set(cl, &o, key, (size_t)kl, val, (size_t)vl, 0, 0, &err);
            } else {
                rc = qkv_get(cl, &o, key, (size_t)kl, &r, &err);
                const qkv_sibling_t *s = qkv_result_newest(r);
                if (rc == 0 && !s)
                    missing++;
                else if (rc == 0 && (s->len != (size_t)vl || memcmp(s->value, val, (size_t)vl)))
                    rc = QKV_ERR_PROTO; /* wrong value */
                qkv_result_free(r);
            }
            if (rc == 0)
                ok++;
            else if (rc < 0 && errors++ == 0) {
                first = rc;
                first_err = err; /* keep the first message */
                err = NULL;
            }
            qkv_free(err);
            err = NULL;
        }
        err = first_err;
        ok -= missing;
        printf("\"ok\": %ld, \"missing\": %ld, \"errors\": %ld, ", ok, missing, errors);
        rc = first;
    } else if (!strcmp(cmd, "replicas") && n == 2) {
        char buf[4096];
        rc = qkv_replicas(cl, tok[1], strlen(tok[1]), buf, sizeof(buf));
        printf("\"replicas\": ");
        json_str(buf, rc >= 0 ? strlen(buf) : 0);
        printf(", ");
    } else if (!strcmp(cmd, "admin") && n == 3) {
        char *reply = NULL;
        rc = qkv_admin(cl, strcmp(tok[1], "-") ? tok[1] : NULL, tok[2], &reply, &err);
        printf("\"reply\": ");
        if (reply)
            json_str(reply, strlen(reply));
        else
            printf("null");
        printf(", ");
        qkv_free(reply);
    } else {
        rc = QKV_ERR_ARG;
        err = strdup("driver: bad command");
    }
    end_reply(rc, err);
}

int main(void)
{
    char line[65536];
    while (fgets(line, sizeof(line), stdin))
        run_line(line);
    qkv_close(cl);
    return 0;
}
