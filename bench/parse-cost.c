/*
 * parse-cost.c - instructions mc_parse() (server/proto.c) spends on the two
 * line shapes of the 90% get / 10% set load: `get pre:NNNNN` and
 * `set pre:NNNNN 0 0 100`.  It parses N lines of one shape (argv[1]: get or
 * set; argv[2]: N, default 1000000), each copied into a buffer that goes on
 * with "\r\n" as the connection's does, and prints a checksum so the
 * compiler cannot drop the work.  Count only mc_parse() with callgrind:
 *
 *   make build/bench/parse-cost
 *   valgrind --tool=callgrind --toggle-collect=mc_parse \
 *       --callgrind-out-file=/dev/null build/bench/parse-cost get 1000000
 *
 * and divide the "Collected" total by N.  bench/parse-cost.sh does both
 * shapes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../server/proto.h"

int main(int argc, char **argv)
{
    const char *shape = argc > 1 ? argv[1] : "get";
    long n = argc > 2 ? atol(argv[2]) : 1000000;
    bool set = strcmp(shape, "set") == 0;
    if ((!set && strcmp(shape, "get") != 0) || n <= 0) {
        fprintf(stderr, "usage: parse-cost get|set [lines]\n");
        return 2;
    }
    static mc_key_t keys[128];
    char buf[64];
    unsigned long sum = 0;
    for (long i = 0; i < n; i++) {
        int len = set ? snprintf(buf, sizeof(buf), "set pre:%05ld 0 0 100\r\n", i % 100000)
                      : snprintf(buf, sizeof(buf), "get pre:%05ld\r\n", i % 100000);
        mc_request_t req;
        enum mc_parse_rc rc = mc_parse(buf, (size_t)len - 2, &req, keys, 128, 1024 * 1024);
        sum += (unsigned long)rc + req.nkeys + keys[0].len + (unsigned long)req.bytes;
    }
    printf("%s x %ld: checksum %lu\n", shape, n, sum);
    return 0;
}
