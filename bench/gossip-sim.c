/*
 * gossip-sim.c - gossip at scale, by simulation (make bench-gossip).
 *
 * For 20, 100 and 1000 nodes and each scheme (gossip's three tools, our
 * default; the digest exchange alone, as Cassandra gossips), runs the scale
 * scenario of tests/sim/gossip_sim.h: a converged cluster in one process,
 * seeded, 5% of frames lost, every frame packed by the daemon's codec; the
 * quiet gossip bytes per node per second; then the rounds (200 ms each)
 * until every live node knows of a join, a leave and a failure.
 *
 *   usage: gossip-sim [-n NODES] [-s SEED] [-l LOSS] [-m rumor|digest]
 *   (without -n: the table for 20, 100 and 1000 nodes, both schemes)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/sim/gossip_sim.h"

static const char *rounds(char *buf, size_t cap, double r)
{
    if (r < 0)
        snprintf(buf, cap, "never");
    else
        snprintf(buf, cap, "%.1f", r);
    return buf;
}

static void print_row(const gsim_scale_t *sc, double cpu)
{
    double lg = log2((double)sc->nodes);
    char j[16], l[16], f[16];

    printf("| %5d | %-11s | %4s | %5s | %7s | %13.1f | %14.1f | %16.1f | %18.0f | %11.0f |\n",
           sc->nodes, sc->mode == GOSSIP_MODE_RUMOR ? "three tools" : "digest only",
           rounds(j, sizeof(j), sc->join_rounds), rounds(l, sizeof(l), sc->leave_rounds),
           rounds(f, sizeof(f), sc->fail_rounds), sc->join_rounds / lg,
           sc->leave_rounds / lg, sc->fail_rounds / lg, sc->quiet_bps, sc->event_bps);
    fflush(stdout);
    if (sc->quiet.bad || sc->events.bad || sc->quiet.refused || sc->events.refused)
        fprintf(stderr, "  %d nodes: %llu frames did not decode, %llu messages refused\n",
                sc->nodes, (unsigned long long)(sc->quiet.bad + sc->events.bad),
                (unsigned long long)(sc->quiet.refused + sc->events.refused));
    if (getenv("GSIM_VERBOSE") != NULL) {
        for (int k = 0; k < GSIM_TYPES; k++)
            if (sc->quiet.frames_by_type[k] > 0)
                fprintf(stderr, "  quiet, frame type %d: %.1f frames and %.0f bytes per node per s\n",
                        k, (double)sc->quiet.frames_by_type[k] / sc->nodes / 10,
                        (double)sc->quiet.bytes_by_type[k] / sc->nodes / 20);
        fprintf(stderr, "  %.1f s of CPU\n", cpu);
    }
}

int main(int argc, char **argv)
{
    int sizes[3] = {20, 100, 1000}, nsizes = 3, only_mode = -1;
    uint64_t seed = 13;
    double loss = 0.05;
    int64_t warmup_ms = 0;

    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc)
            goto usage;
        if (!strcmp(argv[i], "-n")) {
            sizes[0] = atoi(argv[i + 1]);
            nsizes = 1;
        } else if (!strcmp(argv[i], "-s")) {
            seed = strtoull(argv[i + 1], NULL, 10);
        } else if (!strcmp(argv[i], "-l")) {
            loss = atof(argv[i + 1]);
        } else if (!strcmp(argv[i], "-w")) {
            warmup_ms = atoll(argv[i + 1]);
        } else if (!strcmp(argv[i], "-m")) {
            only_mode = !strcmp(argv[i + 1], "digest") ? GOSSIP_MODE_DIGEST : GOSSIP_MODE_RUMOR;
        } else {
            goto usage;
        }
    }
    printf("gossip simulation (bench/gossip-sim.c): seed %llu, %.0f%% of frames lost, a round "
           "every 200 ms;\njoin, leave, failure: rounds until every live node knows; bytes = "
           "peer frames as the daemon\nbuilds them, sent per node per second (no HMAC trailer, "
           "no TCP/IP headers)\n\n",
           (unsigned long long)seed, loss * 100);
    printf("| nodes | scheme      | join | leave | failure | join / log2 n | leave / log2 n "
           "| failure / log2 n | bytes/node/s quiet | with events |\n");
    printf("| ----: | ----------- | ---: | ----: | ------: | ------------: | -------------: "
           "| ---------------: | -----------------: | ----------: |\n");
    for (int k = 0; k < nsizes; k++)
        for (uint32_t mode = 0; mode < 2; mode++) {
            gsim_scale_t sc = {.nodes = sizes[k], .mode = mode, .seed = seed, .loss = loss,
                               .warmup_ms = warmup_ms};
            clock_t c0 = clock();

            if (only_mode >= 0 && (uint32_t)only_mode != mode)
                continue;
            if (!gsim_scale_run(&sc)) {
                fprintf(stderr, "gossip-sim: cannot simulate %d nodes\n", sizes[k]);
                return 1;
            }
            print_row(&sc, (double)(clock() - c0) / CLOCKS_PER_SEC);
        }
    return 0;
usage:
    fprintf(stderr, "usage: gossip-sim [-n NODES (4..1023)] [-s SEED] [-l LOSS] [-m rumor|digest]\n");
    return 2;
}
