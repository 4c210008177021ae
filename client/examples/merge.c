/*
 * merge.c - libquorumkv example: a set of words kept under one key, safe
 * against concurrent writers.
 *
 *   merge SEEDS KEY WORD      e.g.  merge 127.0.0.1:11211 cart:42 apple
 *
 * Read every sibling of KEY (concurrent writes on two sides of a partition,
 * or two clients at once, leave several), merge them (the union of their
 * comma-separated words), add WORD, and write the result back with the
 * read's context, so the write replaces exactly the siblings it merged: one
 * round trip, no lost update.  Prints the merged set.
 *
 * Build: cc -Iclient merge.c lib/libquorumkv.a -lxxhash -pthread
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quorumkv.h"

/* Append the words of [s, s+len) to set (a ",a,b," string) if absent. */
static void add_words(char *set, size_t cap, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t b = i;
        while (i < len && s[i] != ',')
            i++;
        if (i > b) {
            char word[256];
            size_t wl = i - b < 250 ? i - b : 250;
            snprintf(word, sizeof(word), ",%.*s,", (int)wl, s + b);
            if (!strstr(set, word) && strlen(set) + wl + 2 < cap)
                strcat(set, word + 1); /* set always ends with ',' */
        }
        i++;
    }
}

int main(int argc, char **argv)
{
    char *err = NULL, set[4096] = ",";
    qkv_result_t *res = NULL;
    int rc;

    if (argc != 4) {
        fprintf(stderr, "usage: %s SEEDS KEY WORD\n", argv[0]);
        return 2;
    }
    qkv_client_t *c = qkv_connect(argv[1], NULL, &err);
    if (!c) {
        fprintf(stderr, "connect: %s\n", err);
        qkv_free(err);
        return 3;
    }
    const char *key = argv[2];
    qkv_opts_t ro = QKV_OPTS_INIT;
    ro.level = QKV_LEVEL_QUORUM;
    rc = qkv_get(c, &ro, key, strlen(key), &res, &err);
    if (rc < 0)
        goto fail;
    for (size_t i = 0; i < qkv_result_count(res); i++) {
        const qkv_sibling_t *s = qkv_result_sibling(res, i);
        if (!s->deleted)
            add_words(set, sizeof(set), s->value, s->len);
    }
    add_words(set, sizeof(set), argv[3], strlen(argv[3]));
    const char *value = set + 1; /* without the leading ',' */
    qkv_opts_t wo = QKV_OPTS_INIT;
    wo.level = QKV_LEVEL_QUORUM;
    wo.context = qkv_result_context(res); /* supersede exactly what we merged */
    rc = qkv_set(c, &wo, key, strlen(key), value, strlen(value) - 1, 0, 0, &err);
    if (rc < 0)
        goto fail;
    printf("%s: %.*s (merged %zu sibling(s))\n", key, (int)(strlen(value) - 1), value,
           qkv_result_live(res));
    qkv_result_free(res);
    qkv_close(c);
    return 0;
fail:
    fprintf(stderr, "%s: %s\n", qkv_strerror(rc), err);
    qkv_free(err);
    qkv_result_free(res);
    qkv_close(c);
    return 3;
}
