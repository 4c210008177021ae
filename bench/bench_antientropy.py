#!/usr/bin/python3
"""bench/bench_antientropy.py - what anti-entropy costs and what it repairs,
on a 3-node quorumkvd cluster (n=3) holding BENCH_KEYS keys.  Run by
bench/bench-antientropy.sh (`make bench`), which builds the load tool.

Measured, in this order, on one cluster:
  1. the load of BENCH_KEYS keys of 100 bytes through node b1 (time);
  2. a full exchange round with no difference (every node exchanges every
     (range, peer) pair once): bytes, so the cost of comparing is known;
  3. for each D in BENCH_DIFFS: node b3 is cut off (`debug peer_drop`), D
     keys are overwritten through b1 (w=2; hinted handoff and read repair
     are off, so nothing else repairs b3), b3 is reconnected and nobody
     reads: time until b3 holds all D new values (`lget`, local only), and
     the exchange bytes sent by all nodes meanwhile;
  4. b3 restarted (SIGTERM): the time its trees take to build from a scan of
     its store, from its log, and the trees' memory (`stats`);
  5. client throughput with anti-entropy on and off in the same run: the
     three nodes are restarted with antientropy.enabled true or false,
     alternating, BENCH_RUNS times each; bin/quorumkv-bench through
     libquorumkv, 90% get / 10% set over the loaded keys, 16 clients.
     "on" runs exchange every BENCH_AE_INTERVAL_MS (100 ms by default: a
     hundred times the default rate, so the exchanges' cost is visible).

Environment: BENCH_KEYS [1000000], BENCH_DIFFS ["100 1000"], BENCH_SECONDS
[10], BENCH_RUNS [3], BENCH_CONNS [16], BENCH_AE_INTERVAL_MS [100],
BENCH_LOAD_CONNS [4], QKV_BIN [bin/quorumkvd], QKV_BENCH
[bin/quorumkv-bench], BENCH_KEEP=1 keeps the temp dir.
"""
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import clusterlib  # noqa: E402

PY = "/usr/bin/python3"
KEYS = int(os.environ.get("BENCH_KEYS", 1000000))
DIFFS = [int(x) for x in os.environ.get("BENCH_DIFFS", "100 1000").split()]
SECS = int(os.environ.get("BENCH_SECONDS", 10))
RUNS = int(os.environ.get("BENCH_RUNS", 3))
CONNS = int(os.environ.get("BENCH_CONNS", 16))
AE_MS = int(os.environ.get("BENCH_AE_INTERVAL_MS", 100))
LOAD_CONNS = int(os.environ.get("BENCH_LOAD_CONNS", 4))
QKV_BIN = os.environ.get("QKV_BIN", os.path.join(ROOT, "bin", "quorumkvd"))
QKV_BENCH = os.environ.get("QKV_BENCH", os.path.join(ROOT, "bin", "quorumkv-bench"))
PREFIX = "pre:"
PROCS = []


def log(msg):
    print(msg, flush=True)


def die(msg):
    raise SystemExit("bench: " + msg)


def free_ports(n):
    out = subprocess.check_output([PY, os.path.join(HERE, "benchlib.py"), "freeports", str(n)])
    return [int(x) for x in out.split()]


def wait_for(cond, timeout, what):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            die("timed out after %ds waiting for %s" % (timeout, what))
        time.sleep(0.1)


# ---------------------------------------------------------------- nodes

class Node:
    def __init__(self, tmp, i, ports, seed_peer):
        self.name = "b%d" % i
        self.cport, self.pport = ports
        self.seed_peer = seed_peer
        self.dir = os.path.join(tmp, self.name)
        self.ini = self.dir + ".ini"
        self.log = self.dir + ".log"
        self.proc = None

    def write_ini(self, ae):
        with open(self.ini, "w") as f:
            f.write("""[node]
name = %s
host = 127.0.0.1
client_port = %d
peer_port = %d
data_dir = %s
log_level = info
[cluster]
seeds = 127.0.0.1:%d
n = 3
read_repair = false
[handoff]
enabled = false
[antientropy]
enabled = %s
interval_ms = %d
[debug]
fault_injection = true
""" % (self.name, self.cport, self.pport, self.dir, self.seed_peer, "true" if ae else "false", AE_MS))

    def start(self, ae=True):
        self.write_ini(ae)
        self.log_offset = os.path.getsize(self.log) if os.path.exists(self.log) else 0
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen([QKV_BIN, "-c", self.ini], stdin=subprocess.DEVNULL,
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        PROCS.append(self.proc)
        wait_for(lambda: self.accepts() or self.proc.poll() is not None, 120, "%s to listen" % self.name)
        if self.proc.poll() is not None:
            die("%s exited: %s" % (self.name, open(self.log).read()[-2000:]))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def accepts(self):
        try:
            socket.create_connection(("127.0.0.1", self.cport), timeout=0.5).close()
            return True
        except OSError:
            return False

    def cmd_lines(self, line):
        c = benchlib.Conn(self.cport, timeout=30)
        c.s.sendall(line.encode() + b"\r\n")
        out = []
        while True:
            ln = c.line().decode("latin-1")
            if ln == "END":
                break
            if ln.startswith(("ERROR", "CLIENT_ERROR", "SERVER_ERROR")):
                die("%s: %r answered %r" % (self.name, line, ln))
            out.append(ln)
        c.close()
        return out

    def stats(self):
        return {p[1]: p[2] for p in (ln.split(" ", 2) for ln in self.cmd_lines("stats"))}

    def stat(self, k):
        return int(self.stats()[k])

    def cmd(self, line):
        c = benchlib.Conn(self.cport, timeout=30)
        c.s.sendall(line.encode() + b"\r\n")
        r = c.line().decode()
        c.close()
        return r

    def cpu_s(self):
        """utime + stime of the process so far, seconds (0 once it is gone)."""
        return clusterlib.cpu_s(self.proc.pid)

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        return int(ln.split()[1])
        except OSError:
            pass
        return 0

    def new_log(self):
        with open(self.log, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode("utf-8", "replace")


def members_up(nodes):
    for n in nodes:
        rows = n.cmd_lines("members")
        if len(rows) != len(nodes) or any(r.split()[3] != "up" for r in rows):
            return False
    return True


def trees_built(nodes):
    return all(n.stat("aae_trees_built") == n.stat("ranges_total") > 0 for n in nodes)


def all_in_sync(nodes):
    for n in nodes:
        st = n.stats()
        if st["ranges_in_sync"] != st["ranges_total"]:
            return False
    return True


def total(nodes, k):
    return sum(n.stat(k) for n in nodes)


# ---------------------------------------------------------------- the load tool (one place)

def load_cmd(nodes, seconds, out):
    return [QKV_BENCH, "--protocol", "qkv", "-s", ",".join("127.0.0.1:%d" % n.cport for n in nodes),
            "-t", str(CONNS), "-d", str(seconds), "--warmup", "1", "-k", str(KEYS),
            "--key-prefix", PREFIX, "-W", "0.1", "-v", "100", "--no-progress", "--no-stale-check",
            "--json", out]


def run_load(nodes, seconds):
    """BENCH_CONNS closed-loop clients of bin/quorumkv-bench through
    libquorumkv (token-aware: each request goes to a replica of its key),
    90% get / 10% set over the loaded keys: {tps, p50_us, p99_us, errors}."""
    out = os.path.join(TMP, "load.json")
    cmd = load_cmd(nodes, seconds, out)
    rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                        timeout=seconds + 120).returncode
    r = json.load(open(out))
    if rc != 0 or not r.get("ok"):
        die("the load tool failed (exit %d): %r" % (rc, r))
    return {"tps": round(r["ops_per_s"]), "p50_us": r["latency_us"]["p50"],
            "p99_us": r["latency_us"]["p99"], "errors": r["errors"]["total"]}


LOAD_CMD = ("bin/quorumkv-bench --protocol qkv -s HOST:PORT1,HOST:PORT2,HOST:PORT3 -t %d -d %d "
            "--warmup 1 -k %d --key-prefix %s -W 0.1 -v 100 --no-progress --no-stale-check "
            "--json FILE" % (CONNS, SECS, KEYS, PREFIX))


# ---------------------------------------------------------------- steps

def exchanges_round(nodes):
    """Wait until every node ran one full round of exchanges (each of its
    (range, peer) pairs once) from now; (seconds, bytes sent by all)."""
    x0 = {n.name: n.stat("exchanges") + n.stat("exchanges_failed") for n in nodes}
    pairs = {n.name: 2 * n.stat("ranges_total") for n in nodes}
    b0, t0 = total(nodes, "aae_bytes_sent"), time.monotonic()
    wait_for(lambda: all(n.stat("exchanges") + n.stat("exchanges_failed") - x0[n.name] >= pairs[n.name]
                         for n in nodes), 3600, "a full exchange round")
    return time.monotonic() - t0, total(nodes, "aae_bytes_sent") - b0


def diff_keys(d):
    step = max(1, KEYS // d)
    return [benchlib.key_of(PREFIX.encode(), i * step).decode() for i in range(d)]


def repair_run(nodes, d, tag):
    b1, b2, b3 = nodes
    keys = diff_keys(d)
    assert b3.cmd("debug peer_drop on") == "OK"
    wait_for(lambda: all(r.split()[3] == "down" for r in b1.cmd_lines("members") if r.startswith("b3 ")),
             60, "b3 to be seen down")
    c = benchlib.Conn(b1.cport, timeout=30)
    want = {}
    for k in keys:
        v = ("%s-%s" % (tag, k)).encode()
        want[k] = v
        c.s.sendall(b"set %s 0 0 %d w=2\r\n%s\r\n" % (k.encode(), len(v), v))
        r = c.line()
        if r != b"STORED":
            die("set %s through b1 with b3 cut off: %r" % (k, r))
    c.close()
    assert b3.cmd("debug peer_drop off") == "OK"
    wait_for(lambda: members_up(nodes), 60, "b3 to be back up")
    t0 = time.monotonic()
    bytes0 = total(nodes, "aae_bytes_sent")
    rep0 = b3.stat("keys_repaired_aae")

    def repaired():
        c = benchlib.Conn(b3.cport, timeout=30)
        try:
            for k in keys:
                c.s.sendall(b"lget %s\r\n" % k.encode())
                vals = []
                while True:
                    ln = c.line()
                    if ln == b"END":
                        break
                    if ln.startswith(b"VALUE"):
                        vals.append(c.exact(int(ln.split()[3]) + 2)[:-2])
                if want[k] not in vals:
                    return False
            return True
        finally:
            c.close()

    wait_for(repaired, 3600, "b3 to get the %d keys back" % d)
    t_rep = time.monotonic() - t0
    bytes_rep = total(nodes, "aae_bytes_sent") - bytes0
    wait_for(lambda: all_in_sync(nodes), 3600, "every range in sync")
    return {"diffs": d, "seconds": round(t_rep, 1), "bytes": bytes_rep,
            "keys_repaired_b3": b3.stat("keys_repaired_aae") - rep0,
            "bytes_until_in_sync": total(nodes, "aae_bytes_sent") - bytes0}


def build_time(node):
    """Restart node; seconds from the trees' layout to 'trees built' in its
    log, and the keys they hold."""
    node.stop()
    node.start(ae=True)
    wait_for(lambda: trees_built([node]), 600, "%s's trees to be built" % node.name)
    text = node.new_log()
    ts = lambda ln: time.mktime(time.strptime(ln[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + ln[19:23])
    lay = [ln for ln in text.splitlines() if re.search(r"aae: \d+ of \d+ ranges held", ln)]
    built = [ln for ln in text.splitlines() if re.search(r"aae: \d+ trees built, \d+ keys", ln)]
    if not lay or not built:
        die("no tree build lines in %s's log" % node.name)
    keys = int(re.search(r"trees built, (\d+) keys", built[-1]).group(1))
    return {"build_s": round(ts(built[-1]) - ts(lay[-1]), 2), "keys": keys}


def start_all(nodes, ae):
    for n in nodes:
        n.start(ae=ae)
    wait_for(lambda: members_up(nodes), 120, "the cluster to converge")
    if ae:
        wait_for(lambda: trees_built(nodes), 600, "the trees to be built")


def stop_all(nodes):
    for n in nodes:
        n.stop()


def main():
    global TMP
    if not os.access(QKV_BENCH, os.X_OK):
        die("%s missing: run make" % QKV_BENCH)
    if not os.access(QKV_BIN, os.X_OK):
        die("%s missing: run make" % QKV_BIN)
    TMP = tempfile.mkdtemp(prefix="qkv-bench-aae.")
    t_all = time.monotonic()
    rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True).stdout.strip()
    log("== anti-entropy bench: %s, quorumkv %s, %d CPUs, load average %s" % (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), rev, os.cpu_count(),
        open("/proc/loadavg").read().split()[:3]))
    ports = free_ports(6)
    nodes = [Node(TMP, i + 1, ports[2 * i:2 * i + 2], ports[1]) for i in range(3)]
    out = {"keys": KEYS}
    try:
        start_all(nodes, True)
        log("cluster up: b1..b3 client ports %s, temp dir %s" % ([n.cport for n in nodes], TMP))
        t0 = time.monotonic()
        res = json.loads(subprocess.check_output(
            [PY, os.path.join(HERE, "benchlib.py"), "load", str(nodes[0].cport), str(KEYS), PREFIX,
             str(LOAD_CONNS), "3600"]))
        out["load_s"] = round(time.monotonic() - t0, 1)
        log("load: %d keys in %.1fs through b1 (%s)" % (KEYS, out["load_s"], res))
        if res["error_lines"] or not res["final_get_ok"]:
            die("load failed: %r" % res)
        # every write reached all three (w=2 acks, the third follows): wait
        # until each node counts them all
        wait_for(lambda: all(n.stat("curr_items") >= KEYS for n in nodes), 600, "every node to hold the keys")
        t0 = time.monotonic()
        wait_for(lambda: all_in_sync(nodes), 3600, "every range in sync after the load")
        log("in sync on every node %.1fs after the load" % (time.monotonic() - t0))
        secs, b = exchanges_round(nodes)
        out["round_no_diff"] = {"seconds": round(secs, 1), "bytes": b}
        log("a full exchange round with no difference: %d bytes sent by the 3 nodes in %.1fs" % (b, secs))
        out["repairs"] = []
        for d in DIFFS:
            r = repair_run(nodes, d, "d%d" % d)
            out["repairs"].append(r)
            log("%d keys differing on b3: repaired in %.1fs, %d bytes sent meanwhile by the 3 nodes "
                "(%d until every range was in sync), keys_repaired_aae on b3 +%d" % (
                    d, r["seconds"], r["bytes"], r["bytes_until_in_sync"], r["keys_repaired_b3"]))
        st = nodes[2].stats()
        out["tree_bytes"] = int(st["aae_tree_bytes"])
        out["ranges"] = int(st["ranges_total"])
        out["build"] = build_time(nodes[2])
        log("b3 restarted: %d trees (%d bytes) built from %d keys in %.2fs" % (
            out["ranges"], out["tree_bytes"], out["build"]["keys"], out["build"]["build_s"]))
        # throughput, on and off alternating
        runs = {"on": [], "off": []}
        rss = {"on": [], "off": []}
        cpu = {"on": [], "off": []}
        for run in range(RUNS):
            for mode in ("on", "off"):
                stop_all(nodes)
                start_all(nodes, mode == "on")
                x0 = total(nodes, "exchanges")
                c0 = sum(n.cpu_s() for n in nodes)
                r = run_load(nodes, SECS)
                cpu_us = (sum(n.cpu_s() for n in nodes) - c0) * 1e6 / max(r["tps"] * SECS, 1)
                cpu[mode].append(round(cpu_us, 1))
                xd = total(nodes, "exchanges") - x0
                runs[mode].append(r["tps"])
                rss[mode].append(sum(n.rss_kb() for n in nodes))
                log("run %d/%d anti-entropy %-3s: %s ops/s (p50 %s us, p99 %s us, errors %s), "
                    "server CPU %.1f us per request, exchanges during the run: %s" % (
                        run + 1, RUNS, mode, "{:,}".format(r["tps"]), r.get("p50_us"), r.get("p99_us"),
                        r.get("errors"), cpu_us, xd if mode == "on" else "-"))
        out["tps"] = runs
        out["rss_kb"] = rss
        out["cpu_us_per_req"] = cpu
        med_on, med_off = statistics.median(runs["on"]), statistics.median(runs["off"])
        out["ratio"] = round(med_on / med_off, 3) if med_off else None
    finally:
        stop_all(nodes)
        for p in PROCS:
            if p.poll() is None:
                p.kill()
        if os.environ.get("BENCH_KEEP") == "1":
            log("temp dir kept: %s" % TMP)
        else:
            shutil.rmtree(TMP, ignore_errors=True)

    log("")
    log("================ summary (paste into README) ================")
    log("Anti-entropy benchmark (%s, quorumkv %s, %d CPUs shared by the 3 nodes and the load tool):" % (
        time.strftime("%Y-%m-%d", time.gmtime()), rev, os.cpu_count()))
    log("  3 nodes, n=3, 64 vnodes (192 ranges each), %d keys of 100 bytes, exchange every %d ms," % (KEYS, AE_MS))
    log("  hinted handoff and read repair off.  Load of the keys: %.0fs." % out["load_s"])
    log("")
    log("| differing keys on b3 | repaired in | exchange bytes meanwhile (3 nodes) | keys_repaired_aae |")
    log("| --- | --- | --- | --- |")
    rnd = out["round_no_diff"]
    log("| 0 (a full round) | %.1f s | %s | 0 |" % (rnd["seconds"], "{:,}".format(rnd["bytes"])))
    for r in out["repairs"]:
        log("| %d | %.1f s | %s | %d |" % (r["diffs"], r["seconds"], "{:,}".format(r["bytes"]),
                                          r["keys_repaired_b3"]))
    log("")
    log("  trees: %d x %d bytes = %s bytes per node; build at start from %d keys: %.2f s" % (
        out["ranges"], out["tree_bytes"] // max(out["ranges"], 1), "{:,}".format(out["tree_bytes"]),
        out["build"]["keys"], out["build"]["build_s"]))
    log("  throughput (ops/s, 90/10 get/set, %d clients, %d x %ds, alternating): anti-entropy on %s, off %s;"
        % (CONNS, RUNS, SECS, " / ".join("{:,}".format(x) for x in runs["on"]),
           " / ".join("{:,}".format(x) for x in runs["off"])))
    log("  median on/off = %.3f; CPU of the 3 nodes per request (us): on %s, off %s (medians %.1f / %.1f);" % (
        out["ratio"], " / ".join(map(str, cpu["on"])), " / ".join(map(str, cpu["off"])),
        statistics.median(cpu["on"]), statistics.median(cpu["off"])))
    log("  resident memory of the 3 nodes, median: on %d MB, off %d MB" % (
        statistics.median(rss["on"]) // 1024, statistics.median(rss["off"]) // 1024))
    log("  total wall time %.0fs" % (time.monotonic() - t_all))
    log("Commands: bench/bench-antientropy.sh (BENCH_KEYS=%d BENCH_DIFFS=\"%s\" BENCH_SECONDS=%d BENCH_RUNS=%d "
        "BENCH_AE_INTERVAL_MS=%d); load tool: %s" % (KEYS, " ".join(map(str, DIFFS)), SECS, RUNS, AE_MS, LOAD_CMD))
    log("JSON " + json.dumps(out))


if __name__ == "__main__":
    main()
