#!/usr/bin/python3
"""bench/bench_overload.py - a 3-node quorumkvd cluster (n=3, R=W=2) under
open-loop overload (issue 13): does it stay useful when offered more than
it can do?  Run by bench/bench-overload.sh (`make bench`).

  1. BENCH_KEYS keys of 100 bytes are loaded through node b1.
  2. Capacity: BENCH_RUNS closed-loop runs of BENCH_SECONDS s, BENCH_CONNS
     text-protocol clients spread over the three nodes (one request in
     flight each), 90% get / 10% set: capacity = the median ops/s, the
     normal p99 = the median p99.
  3. For each factor F in BENCH_FACTORS (1.5 and 3): an open-loop flood of
     F x capacity requests/s for BENCH_FLOOD_SECONDS s, same mix, pipelined
     on BENCH_CONNS connections spread over the nodes (`quorumkv-bench
     --rate`: requests leave on a fixed schedule whatever the replies, and
     latency counts from each request's intended send time, so queueing is
     never hidden).  Measured: goodput (successful requests/s) against the
     capacity, the p99 of the successes against queue_timeout_ms + the
     normal p99, errors by kind (busy apart), each node's shed counters by
     reason, the largest RSS of each daemon during the flood (sampled every
     0.2 s) against its RSS before, whether every daemon is still running,
     and the recovery: the time from the end of the flood's schedule until
     BENCH_PROBES requests in a row (a get then a set, round robin over
     the nodes, one at a time) all succeed, each within 10 x the normal p99
     (at least 10 ms).

Every node runs with the defaults (server.queue_timeout_ms = 100,
server.max_inflight = 1024).  The flood tool's --timeout-ms is 2000: a
request unanswered 2 s after its intended send time is a timeout.

Environment: BENCH_KEYS [100000], BENCH_SECONDS [10], BENCH_RUNS [3],
BENCH_CONNS [16], BENCH_FACTORS ["1.5 3"], BENCH_FLOOD_SECONDS [30],
BENCH_PROBES [100], QKV_BIN [bin/quorumkvd], QKV_BENCH [bin/quorumkv-bench],
BENCH_KEEP=1 keeps the temp dir.
"""
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import bench_antientropy as ae  # noqa: E402  (the node class)

PY = "/usr/bin/python3"
KEYS = int(os.environ.get("BENCH_KEYS", 100000))
SECS = float(os.environ.get("BENCH_SECONDS", 10))
RUNS = int(os.environ.get("BENCH_RUNS", 3))
CONNS = int(os.environ.get("BENCH_CONNS", 16))
FACTORS = [float(x) for x in os.environ.get("BENCH_FACTORS", "1.5 3").split()]
FLOOD_SECS = float(os.environ.get("BENCH_FLOOD_SECONDS", 30))
PROBES = int(os.environ.get("BENCH_PROBES", 100))
QKV_BIN = os.environ.get("QKV_BIN", os.path.join(ROOT, "bin", "quorumkvd"))
QKV_BENCH = os.environ.get("QKV_BENCH", os.path.join(ROOT, "bin", "quorumkv-bench"))
PREFIX = "pre:"
QUEUE_TIMEOUT_MS = 100   # the default, which the nodes run with
FLOOD_TIMEOUT_MS = 2000
WARMUP = 1.0
PROCS = []
SHED = ("shed_queue_timeout", "shed_inflight", "shed_forwarded", "shed_replica",
        "coord_replica_busy", "background_deferred")


log, die, wait_for = ae.log, ae.die, ae.wait_for


class Node(ae.Node):
    """A node of this bench (the anti-entropy bench's, with its own INI:
    r=w=2; b1..b3 found the cluster, each listing b1 and itself)."""

    def __init__(self, tmp, i, cport, pport, seed_peer):
        ae.Node.__init__(self, tmp, i, (cport, pport), seed_peer)

    def start(self):
        with open(self.ini, "w") as f:
            f.write("[node]\nname = %s\nhost = 127.0.0.1\nclient_port = %d\npeer_port = %d\n"
                    "data_dir = %s\nlog_level = warn\n[cluster]\nseeds = 127.0.0.1:%d,127.0.0.1:%d\n"
                    "n = 3\nr = 2\nw = 2\n" % (self.name, self.cport, self.pport, self.dir,
                                               self.seed_peer, self.pport))
        self.proc = subprocess.Popen([QKV_BIN, "-c", self.ini], stdin=subprocess.DEVNULL,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        PROCS.append(self.proc)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def lines(self, line):
        return self.cmd_lines(line)


members_up = ae.members_up


def servers(nodes):
    return ",".join("127.0.0.1:%d" % n.cport for n in nodes)


def load_cmd(nodes, out, extra):
    """The one command line of the load tool (closed loop, or open with
    --rate in extra)."""
    return [QKV_BENCH, "--protocol", "memcached", "-s", servers(nodes), "-t", str(CONNS),
            "--warmup", str(WARMUP), "-k", str(KEYS), "--key-prefix", PREFIX, "-W", "0.1",
            "-v", "100", "--no-progress", "--no-stale-check", "--json", out] + extra


def run_tool(nodes, out, extra, limit):
    cmd = load_cmd(nodes, out, extra)
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                        timeout=limit).returncode
    if rc != 0:
        die("the load tool failed (exit %d): %s" % (rc, " ".join(cmd)))
    with open(out) as f:
        return json.load(f)


def probe_recovery(nodes, normal_p99_us, t_end):
    """Seconds from t_end (the end of the flood's schedule) until PROBES
    requests in a row succeed, each within 10 x the normal p99."""
    bound = max(0.010, 10 * normal_p99_us / 1e6)
    conns = [benchlib.Conn(n.cport, timeout=5) for n in nodes]
    ok, first_ok, i = 0, None, 0
    deadline = time.monotonic() + 60
    try:
        while ok < PROBES:
            if time.monotonic() > deadline:
                die("the cluster did not serve normally within 60 s of the flood")
            c = conns[i % len(conns)]
            key = benchlib.key_of(PREFIX.encode(), i % KEYS)
            t0 = time.monotonic()
            if i % 2 == 0:
                c.s.sendall(b"get " + key + b"\r\n")
                good = True
                while True:
                    ln = c.line()
                    if ln == b"END":
                        break
                    if ln.startswith(b"VALUE "):
                        c.exact(int(ln.split()[3]) + 2)
                        continue
                    good = False
                    break
            else:
                c.s.sendall(b"set " + key + b" 0 0 5\r\nprobe\r\n")
                good = c.line() == b"STORED"
            t1 = time.monotonic()
            i += 1
            if good and t1 - t0 <= bound:
                if ok == 0:
                    first_ok = t0
                ok += 1
            else:
                ok = 0
    finally:
        for c in conns:
            c.close()
    return max(0.0, first_ok - t_end)


def flood(nodes, factor, capacity, normal_p99, base_rss):
    rate = factor * capacity
    out = os.path.join(TMP, "flood-%g.json" % factor)
    before = [n.stats() for n in nodes]
    peak = [0] * len(nodes)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            for i, n in enumerate(nodes):
                peak[i] = max(peak[i], n.rss_kb())
            stop.wait(0.2)

    th = threading.Thread(target=sample)
    th.start()
    cpu0 = [n.cpu_s() for n in nodes]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        r = run_tool(nodes, out, ["--rate", "%.0f" % rate, "-d", "%g" % FLOOD_SECS,
                                  "--timeout-ms", str(FLOOD_TIMEOUT_MS)],
                     FLOOD_SECS + 120)
    finally:
        stop.set()
        th.join()
    t_end = t0 + 0.02 + WARMUP + FLOOD_SECS    # the tool's last scheduled send
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = {"servers": round(sum(n.cpu_s() for n in nodes) - sum(cpu0), 1),
           "tool": round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 1),
           "wall": round(wall, 1)}
    alive = all(n.alive() for n in nodes)
    if not alive:
        die("a node died during the %gx flood" % factor)
    recovery = probe_recovery(nodes, normal_p99, t_end)
    after = [n.stats() for n in nodes]
    shed = {k: sum(int(a[k]) - int(b[k]) for a, b in zip(after, before)) for k in SHED}
    p99 = r["latency_us"]["p99"]
    res = {
        "factor": factor, "rate": round(rate), "seconds": FLOOD_SECS, "sent": r["sent"],
        "goodput": round(r["goodput"]), "goodput_vs_capacity": round(r["goodput"] / capacity, 3),
        "p50_us": r["latency_us"]["p50"], "p99_us": p99, "max_us": r["latency_us"]["max"],
        "p99_bound_us": QUEUE_TIMEOUT_MS * 1000 + normal_p99,
        "errors": {k: v for k, v in r["errors"].items() if v},
        "error_p50_us": r["error_latency_us"]["p50"], "error_p99_us": r["error_latency_us"]["p99"],
        "shed": shed, "rss_before_kb": base_rss, "rss_max_kb": peak,
        "all_alive": alive, "recovery_s": round(recovery, 3), "cpu_s": cpu,
    }
    res["goodput_ok"] = res["goodput_vs_capacity"] >= 0.9
    res["p99_ok"] = p99 <= res["p99_bound_us"]
    res["recovery_ok"] = recovery <= 1.0
    return res


def main():
    global TMP
    for b in (QKV_BIN, QKV_BENCH):
        if not os.access(b, os.X_OK):
            die("%s missing: run 'make' first" % b)
    TMP = tempfile.mkdtemp(prefix="qkv-bench-overload.")
    ok = False
    try:
        ports = benchlib_ports(6)
        nodes = [Node(TMP, i + 1, ports[2 * i], ports[2 * i + 1], ports[1]) for i in range(3)]
        for n in nodes:
            n.start()
        wait_for(lambda: all(n.accepts() or not n.alive() for n in nodes), 60, "nodes to listen")
        if not all(n.alive() for n in nodes):
            die("a node exited at start; logs in %s" % TMP)
        wait_for(lambda: members_up(nodes), 60, "every node to see all three up")
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        log("bench-overload: 3 nodes (n=3, R=W=2, queue_timeout_ms=%d, max_inflight=1024), "
            "commit %s, load average %s" % (QUEUE_TIMEOUT_MS, rev or "?",
                                            " ".join(open("/proc/loadavg").read().split()[:3])))
        t0 = time.monotonic()
        out = subprocess.run([PY, os.path.join(HERE, "benchlib.py"), "load", str(nodes[0].cport),
                              str(KEYS), PREFIX, "4"], capture_output=True, text=True, timeout=900)
        if out.returncode != 0:
            die("load failed: %s" % out.stderr.strip())
        log("loaded %d keys in %.1f s" % (KEYS, time.monotonic() - t0))

        caps, p99s, cap_cpu = [], [], []
        for i in range(RUNS):
            c0 = sum(n.cpu_s() for n in nodes)
            u0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            w0 = time.monotonic()
            r = run_tool(nodes, os.path.join(TMP, "cap%d.json" % i), ["-d", "%g" % SECS], SECS + 120)
            u1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cap_cpu.append({"servers": round(sum(n.cpu_s() for n in nodes) - c0, 1),
                            "tool": round(u1.ru_utime + u1.ru_stime - u0.ru_utime - u0.ru_stime, 1),
                            "wall": round(time.monotonic() - w0, 1)})
            if r["errors"]["total"]:
                die("errors in a capacity run: %r" % r["errors"])
            caps.append(r["ops_per_s"])
            p99s.append(r["latency_us"]["p99"])
            log("capacity run %d: %.0f ops/s, p99 %d us; CPU s %s" % (i + 1, r["ops_per_s"],
                                                                 r["latency_us"]["p99"], cap_cpu[-1]))
        capacity, normal_p99 = statistics.median(caps), statistics.median(p99s)
        log("capacity %.0f ops/s (median of %d), normal p99 %d us" % (capacity, RUNS, normal_p99))
        log("load tool: " + " ".join(load_cmd(nodes, "FILE", ["-d", "%g" % SECS])))

        results = []
        for f in FACTORS:
            base_rss = [n.rss_kb() for n in nodes]
            r = flood(nodes, f, capacity, normal_p99, base_rss)
            results.append(r)
            log("flood %gx (%d ops/s for %g s): goodput %d ops/s = %.2f of capacity [%s]; "
                "p99 of successes %d us (bound %d) [%s]; errors %s; error p99 %d us; "
                "shed %s; RSS KB before %s max %s; recovery %.3f s [%s]; CPU s %s"
                % (f, r["rate"], FLOOD_SECS, r["goodput"], r["goodput_vs_capacity"],
                   "ok" if r["goodput_ok"] else "BELOW 0.9", r["p99_us"], r["p99_bound_us"],
                   "ok" if r["p99_ok"] else "OVER", r["errors"], r["error_p99_us"], r["shed"],
                   r["rss_before_kb"], r["rss_max_kb"], r["recovery_s"],
                   "ok" if r["recovery_ok"] else "SLOW", r["cpu_s"]))
        log("flood tool: " + " ".join(load_cmd(nodes, "FILE", ["--rate", "RATE", "-d", "%g" % FLOOD_SECS,
                                                               "--timeout-ms", str(FLOOD_TIMEOUT_MS)])))
        log("JSON " + json.dumps({"capacity": round(capacity), "capacity_runs": caps,
                                  "capacity_cpu_s": cap_cpu,
                                  "normal_p99_us": normal_p99, "floods": results}))
        ok = True
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in PROCS:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if os.environ.get("BENCH_KEEP") == "1" or not ok:
            log("temp dir kept: %s" % TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)


def benchlib_ports(n):
    out = subprocess.check_output([PY, os.path.join(HERE, "benchlib.py"), "freeports", str(n)])
    return [int(x) for x in out.split()]


if __name__ == "__main__":
    main()
