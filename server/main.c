/*
 * main.c - quorumkvd: command line, configuration, start-up and shutdown.
 *
 * Start-up order: config, storage (node_open), client listener, cluster
 * (peer port, gossip), hints, anti-entropy trees (built in the background),
 * crawler, signals, then the event loop.  SIGTERM/SIGINT stop the loop;
 * shutdown closes connections, the anti-entropy trees (their storage
 * snapshot), then storage (LevelDB flushes and closes), and frees
 * everything so ASan's leak check stays clean.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "../common/log.h"
#include "../common/version.h"
#include "aae.h"
#include "coord.h"
#include "handoff.h"
#include "node.h"
#include "server.h"
#include "transfer.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: quorumkvd -c FILE.ini\n"
            "\n"
            "  -c, --config FILE   configuration (see conf/quorumkv.ini for every key)\n"
            "  -h, --help          this text\n"
            "  -v, --version       print the version\n"
            "\n"
            "quorumkvd serves memcached's text protocol on node.client_port and stores\n"
            "its data in LevelDB under node.data_dir.  SIGTERM or SIGINT stop it cleanly.\n");
}

/* Room for node.max_connections client sockets plus peers and LevelDB's
 * files: raise the soft descriptor limit as far as the hard one allows, as
 * memcached does for -c. */
static void raise_fd_limit(int max_connections)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t)max_connections + 1024;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        log_warn("open files limited to %llu: fewer than node.max_connections = %d clients "
                 "can connect", (unsigned long long)rl.rlim_cur, max_connections);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    server_t *srv = arg;
    log_info("signal %d: shutting down", (int)sig);
    srv->stopping = true;
    event_base_loopexit(srv->base, NULL);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 'v'},
                                         {NULL, 0, NULL, 0}};
    const char *cfgpath = NULL;
    int ch;
    while ((ch = getopt_long(argc, argv, "c:hv", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': cfgpath = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'v': printf("quorumkvd %s\n", QKV_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!cfgpath || optind != argc) {
        usage(stderr);
        return 2;
    }

    static server_t srv; /* the one server; static storage keeps it off the stack */
    char err[1200];
    if (config_load(&srv.cfg, cfgpath, err, sizeof(err)) < 0) {
        fprintf(stderr, "quorumkvd: %s\n", err);
        return 1;
    }
    log_set_level(srv.cfg.log_level);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(srv.cfg.max_connections);
    srv.started = time(NULL);

    int rc = 1;
    srv.base = event_base_new();
    if (!srv.base) {
        fprintf(stderr, "quorumkvd: cannot create event loop\n");
        return 1;
    }
    if (node_open(&srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "quorumkvd: %s\n", err);
        goto out_base;
    }
    if (conn_listen(&srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "quorumkvd: %s\n", err);
        goto out_conn;
    }
    if (coord_open(&srv, err, sizeof(err)) < 0 ||
        cluster_open(&srv, &srv.cluster, err, sizeof(err)) < 0 ||
        handoff_open(&srv, err, sizeof(err)) < 0 || aae_open(&srv, err, sizeof(err)) < 0 ||
        xfer_open(&srv, err, sizeof(err)) < 0) {
        fprintf(stderr, "quorumkvd: %s\n", err);
        goto out_conn;
    }
    node_start_crawler(&srv);
    srv.sig_int = evsignal_new(srv.base, SIGINT, on_signal, &srv);
    srv.sig_term = evsignal_new(srv.base, SIGTERM, on_signal, &srv);
    if (!srv.sig_int || !srv.sig_term || evsignal_add(srv.sig_int, NULL) ||
        evsignal_add(srv.sig_term, NULL)) {
        fprintf(stderr, "quorumkvd: cannot install signal handlers\n");
        goto out_sig;
    }
    log_info("quorumkvd %s node %s serving memcached protocol on %s:%d", QKV_VERSION,
             srv.cfg.name, srv.cfg.host, srv.cfg.client_port);
    event_base_dispatch(srv.base);
    log_info("stopped; closing storage");
    rc = srv.cluster.refused ? 1 : 0;
out_sig:
    if (srv.sig_int)
        event_free(srv.sig_int);
    if (srv.sig_term)
        event_free(srv.sig_term);
out_conn:
    /* clients first (their pending requests detach), then the transport
     * (cancels what is in flight), then hints and storage */
    conn_close_all(&srv);
    aae_close(&srv);
    cluster_close(&srv.cluster); /* fails transfer requests in flight: before xfer_close */
    xfer_close(&srv);
    coord_close(&srv);
    admit_close(&srv);
    handoff_close(&srv);
    node_close(&srv);
out_base:
    event_base_free(srv.base);
    libevent_global_shutdown();
    return rc;
}
