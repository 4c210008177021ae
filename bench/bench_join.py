#!/usr/bin/python3
"""bench/bench_join.py - the cost of a join: how long a fourth node takes to
join a 3-node cluster (n=3, r=w=2) holding BENCH_KEYS keys, and what clients
see meanwhile.  Run by bench/bench-join.sh (`make bench`).

Steps, on one cluster:
  1. three founding nodes b1..b3; BENCH_KEYS keys of 100 bytes loaded
     through b1 (bench/benchlib.py load), then every node waited for until
     it holds them all and the nodes are quiet (under 5% CPU over 2 s:
     LevelDB's compactions and the tree builds after the load are done);
  2. "before": bin/quorumkv-bench through libquorumkv (token-aware), 90% get
     / 10% set over the loaded keys, BENCH_CONNS clients, BENCH_WINDOW
     seconds, BENCH_RUNS times;
  3. b4 is started (a fresh data dir, seeds = b1: it joins); from its start
     until `members` shows it up on all four nodes the same load runs in
     windows of BENCH_WINDOW seconds, back to back ("during": each window
     that ended before the join did; a window that outlived the join is
     counted as "during" too, since most of it was);
  4. then the time until the old owners have dropped what they no longer
     replicate (every node's curr_items back to its share).

Printed: the join time (start of b4 to up everywhere) and the transfer time
inside it (the settle wait excluded), keys and bytes b4 pulled, and the
client throughput, p50 and p99 during the join beside before it (medians of
the windows), and the errors the clients saw by kind (busy answers of
admission control are reported; any other error fails the bench).

Environment: BENCH_KEYS [1000000], BENCH_WINDOW [5], BENCH_RUNS [3],
BENCH_CONNS [16], BENCH_LOAD_CONNS [4], QKV_BIN [bin/quorumkvd],
QKV_BENCH [bin/quorumkv-bench], BENCH_KEEP=1 keeps the temp dir.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_antientropy as ae  # noqa: E402  (nodes, load tool, waits)
import clusterlib  # noqa: E402

KEYS = int(os.environ.get("BENCH_KEYS", 1000000))
WINDOW = int(os.environ.get("BENCH_WINDOW", 5))
RUNS = int(os.environ.get("BENCH_RUNS", 3))
ae.KEYS = KEYS
log, die, wait_for = ae.log, ae.die, ae.wait_for


class JoinNode(ae.Node):
    """A node of this bench: founding (b1..b3 list all three as seeds) or
    joining (b4: seeds b1 only)."""

    def __init__(self, tmp, i, ports, seeds):
        ae.Node.__init__(self, tmp, i, ports, seeds[0])
        self.seeds = seeds

    def write_ini(self, ae_on=True):
        with open(self.ini, "w") as f:
            f.write("""[node]
name = %s
host = 127.0.0.1
client_port = %d
peer_port = %d
data_dir = %s
log_level = info
[cluster]
seeds = %s
n = 3
r = 2
w = 2
""" % (self.name, self.cport, self.pport, self.dir,
                ",".join("127.0.0.1:%d" % p for p in self.seeds)))


def states(node):
    return {r.split()[0]: r.split()[3] for r in node.cmd_lines("members")}


def wait_quiet(nodes, limit=120):
    """clusterlib.wait_quiet over the nodes: "before" is not measured
    against the compactions and tree builds that follow a bulk load."""
    return clusterlib.wait_quiet([n.proc.pid for n in nodes], limit)[0]


def sheds(nodes):
    """Requests each node refused busy, by reason (admit.h)."""
    keys = ("shed_queue_timeout", "shed_inflight", "shed_forwarded", "shed_replica",
            "coord_replica_busy")
    out = {}
    for n in nodes:
        st = n.stats()
        out[n.name] = {k[5:] if k.startswith("shed_") else k: int(st[k]) for k in keys
                       if int(st.get(k, 0))}
    return out


def run_window(nodes):
    """One window of the load; errors by kind kept beside the totals."""
    out = os.path.join(ae.TMP, "load.json")
    r = ae.run_load(nodes, WINDOW)
    kinds = json.load(open(out)).get("errors", {})
    r["kinds"] = {k: v for k, v in kinds.items() if k != "total" and v}
    return r


def summary(runs):
    return {"tps": round(statistics.median(r["tps"] for r in runs)),
            "p50_us": round(statistics.median(r["p50_us"] for r in runs)),
            "p99_us": round(statistics.median(r["p99_us"] for r in runs)),
            "errors": sum(r["errors"] for r in runs), "windows": len(runs),
            "error_kinds": {k: sum(r["kinds"].get(k, 0) for r in runs)
                            for k in sorted({k for r in runs for k in r["kinds"]})}}


def main():
    for b in (ae.QKV_BIN, ae.QKV_BENCH):
        if not os.access(b, os.X_OK):
            die("%s missing: run make" % b)
    ae.TMP = tempfile.mkdtemp(prefix="qkv-bench-join.")
    rev = subprocess.run(["git", "-C", ae.ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    log("== join bench: %s, quorumkv %s, %d CPUs, load average %s" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), rev, os.cpu_count(),
        open("/proc/loadavg").read().split()[:3]))
    ports = ae.free_ports(8)
    founders = [ports[1], ports[3], ports[5]]
    nodes = [JoinNode(ae.TMP, i + 1, ports[2 * i:2 * i + 2], founders) for i in range(3)]
    b4 = JoinNode(ae.TMP, 4, ports[6:8], [ports[1]])
    out = {"keys": KEYS}
    ok = False
    try:
        for n in nodes:
            n.start()
        wait_for(lambda: ae.members_up(nodes), 60, "b1..b3 up")
        t0 = time.monotonic()
        res = json.loads(subprocess.check_output(
            [ae.PY, os.path.join(HERE, "benchlib.py"), "load", str(nodes[0].cport), str(KEYS),
             ae.PREFIX, os.environ.get("BENCH_LOAD_CONNS", "4"), "3600"]))
        if res["error_lines"] or not res["final_get_ok"]:
            die("load failed: %r" % res)
        wait_for(lambda: all(n.stat("curr_items") >= KEYS for n in nodes), 600,
                 "every node to hold the keys")
        log("load: %d keys in %.1fs through b1" % (KEYS, time.monotonic() - t0))
        t0 = time.monotonic()
        quiet = wait_quiet(nodes)
        log("nodes %s after %.0fs (compactions, tree builds)" % ("quiet" if quiet else "still busy",
                                                              time.monotonic() - t0))
        before = [run_window(nodes) for _ in range(RUNS)]
        out["before"] = summary(before)
        log("before the join: %s" % out["before"])
        log("  shed so far: %s" % sheds(nodes))

        t_start = time.monotonic()
        b4.start()
        during = []
        t_up = None
        while t_up is None:
            during.append(run_window(nodes))
            if all(states(n).get("b4") == "up" for n in nodes + [b4]):
                t_up = time.monotonic()
            if time.monotonic() - t_start > 3600:
                die("b4 did not come up within an hour")
        # the exact moment from b4's log (the windows are coarse)
        text = b4.new_log()
        out["join_s"] = round(t_up - t_start, 1)
        for ln in text.splitlines():
            if "join complete" in ln:
                out["join_log"] = ln.split("] ", 1)[1]
        st = b4.stats()
        out["pulled_keys"] = int(st["transfer_keys_in"])
        out["pulled_bytes"] = int(st["transfer_bytes_in"])
        out["during"] = summary(during)
        log("join: b4 up everywhere %.1fs after its start (%s)" % (out["join_s"], out.get("join_log")))
        log("during the join (%d windows of %ds): %s" % (len(during), WINDOW, out["during"]))
        log("  shed so far: %s" % sheds(nodes + [b4]))
        t_clean = time.monotonic()
        want = 3 * KEYS  # n = 3 copies of every key, over four nodes once cleaned up
        wait_for(lambda: sum(n.stat("curr_items") for n in nodes + [b4]) <= want * 1.001, 1800,
                 "the old owners to drop what they no longer replicate")
        out["cleanup_s"] = round(time.monotonic() - t_clean, 1)
        out["dropped"] = sum(n.stat("transfer_keys_dropped") for n in nodes)
        log("cleanup: %d keys dropped by the old owners within %.1fs after the join" % (
            out["dropped"], out["cleanup_s"]))
        after = [run_window(nodes + [b4]) for _ in range(RUNS)]
        out["after"] = summary(after)
        ok = True
    finally:
        for n in nodes + [b4]:
            n.stop()
        if ok and os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(ae.TMP, ignore_errors=True)
        else:
            log("temp dir kept: %s" % ae.TMP)
    b, d, a = out["before"], out["during"], out["after"]
    log("")
    log("RESULT join of a 4th node to 3 nodes (n=3) holding %s keys: up everywhere in %.1f s; "
        "it pulled %s keys, %s bytes" % ("{:,}".format(KEYS), out["join_s"],
                                         "{:,}".format(out["pulled_keys"]),
                                         "{:,}".format(out["pulled_bytes"])))
    log("RESULT clients (%d, 90/10 get/set, libquorumkv):" % ae.CONNS)
    log("| phase | ops/s | p50 us | p99 us | errors |")
    log("| --- | --- | --- | --- | --- |")
    for name, r in (("before", b), ("during the join", d), ("after (4 nodes)", a)):
        kinds = ", ".join("%s %d" % kv for kv in r["error_kinds"].items()) or "0"
        log("| %s | %s | %s | %s | %s |" % (name, "{:,}".format(r["tps"]), r["p50_us"], r["p99_us"],
                                           kinds))
    log("RESULT during/before throughput %.2f, p99 %.2fx; cleanup %.1f s after the join" % (
        d["tps"] / max(b["tps"], 1), d["p99_us"] / max(b["p99_us"], 1), out["cleanup_s"]))
    log("Commands: bench/bench-join.sh (BENCH_KEYS=%d BENCH_WINDOW=%d BENCH_RUNS=%d BENCH_CONNS=%d)"
        % (KEYS, WINDOW, RUNS, ae.CONNS))
    log("JSON " + json.dumps(out))
    # busy answers are admission control at work (docs/overload.md): counted
    # and shown above; anything else is a failure
    bad = [k for r in (b, d, a) for k in r["error_kinds"] if k != "busy"]
    if bad:
        die("clients saw errors: %s" % sorted(set(bad)))


if __name__ == "__main__":
    main()
