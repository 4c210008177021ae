#!/usr/bin/python3
"""Helpers for bench/bench-cluster.sh (stdlib only, run with /usr/bin/python3).

Subcommands:
  members PORT                    print the `members` reply of one node
  wait_members N DEADLINE_S PORT...
                                  poll `members` on every PORT until each lists
                                  exactly N nodes, all in state `up`; prints the
                                  last reply of each node, exit 1 on timeout
  table RESULTS_JSON              print the per-setting table (see bench-cluster.sh)
                                  from the runs' summaries (bench/benchlib.py qkvbench)
  grid RESULTS_TSV                print bench-table.sh's markdown table from lines
                                  "setting<TAB>conns<TAB>mc|qkv<TAB>summary.json"
  wait_quiet LIMIT_S PID...       wait until the PIDs use under 5% of a CPU over 2 s
                                  (after a bulk load); prints {"waited_s", "quiet"}
"""
import json
import os
import re
import socket
import statistics
import sys
import time

HOST = "127.0.0.1"


def die(msg):
    print("clusterlib: " + msg, file=sys.stderr)
    sys.exit(1)


def members(port, timeout=2.0):
    """[(name, client, peer, state), ...] from one node's `members` reply."""
    s = socket.create_connection((HOST, int(port)), timeout=timeout)
    try:
        s.sendall(b"members\r\n")
        buf = b""
        while not (buf == b"END\r\n" or buf.endswith(b"\r\nEND\r\n")):
            d = s.recv(65536)
            if not d:
                raise ConnectionError("connection closed before END (got %r)" % buf[-200:])
            buf += d
            if buf.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")) and buf.endswith(b"\r\n"):
                raise ValueError("members -> %r" % buf.strip())
    finally:
        s.close()
    rows = []
    for ln in buf.decode("latin-1").split("\r\n"):
        if not ln or ln == "END":
            continue
        p = ln.split()
        if len(p) < 4:
            raise ValueError("bad members line %r" % ln)
        rows.append((p[0], p[1], p[2], p[3], ln))
    return rows


def cmd_members(port):
    for r in members(port):
        print(r[4])


def cmd_wait_members(n, deadline_s, *ports):
    n = int(n)
    end = time.monotonic() + float(deadline_s)
    last = {}
    while True:
        ready = True
        for p in ports:
            try:
                rows = members(p)
                last[p] = [r[4] for r in rows]
                if len(rows) != n or any(r[3] != "up" for r in rows):
                    ready = False
            except (OSError, ValueError) as e:
                last[p] = ["%s: %s" % (type(e).__name__, e)]
                ready = False
        if ready:
            for p in ports:
                print("port %s: %s" % (p, " | ".join(last[p])))
            return
        if time.monotonic() > end:
            for p in ports:
                print("port %s: %s" % (p, " | ".join(last.get(p, ["no reply"]))), file=sys.stderr)
            die("cluster not all-up (%d nodes) on every node within %ss" % (n, deadline_s))
        time.sleep(0.1)


def fmt(x, nd=0):
    if x is None:
        return "-"
    return ("{:,.%df}" % nd).format(x)


LABELS = {"mc": "memcached", "text": "cluster text", "lib": "cluster lib",
          "hottext": "hot keys, text", "hotlib": "hot keys, lib"}


def cmd_table(results_json):
    """RESULTS_JSON: {"settings": [{"label": "R=1 W=1", "targets": [[slot, [files]], ...]}, ...]}"""
    cfg = json.load(open(results_json))
    lines = []
    hdr = "%-22s %5s %13s %8s %8s %8s  %-8s %s" % (
        "target", "runs", "median ops/s", "p50 us", "p99 us", "avg us", "vs mc", "per-run ops/s")
    lines.append(hdr)
    bad = 0
    for st in cfg["settings"]:
        lines.append("%s (n=3):" % st["label"])
        med = {}
        for slot, files in st["targets"]:
            runs = []
            for f in files:
                try:
                    runs.append(json.load(open(f)))
                except (OSError, ValueError):
                    runs.append({"ok": False})
            good = [r for r in runs if r.get("ok")]

            def m(k):
                vals = [r[k] for r in good if r.get(k) is not None]
                return statistics.median(vals) if vals else None
            med[slot] = {k: m(k) for k in ("tps", "total_p50_us", "total_p99_us", "total_avg_us")}
            per = ", ".join(fmt(r.get("tps")) if r.get("ok") else "FAILED" for r in runs)
            ratio = ""
            if slot != "mc" and med.get("mc", {}).get("tps") and med[slot]["tps"]:
                ratio = "%.3f" % (med[slot]["tps"] / med["mc"]["tps"])
            lines.append("%-22s %2d/%-2d %13s %8s %8s %8s  %-8s %s" % (
                "  " + LABELS.get(slot, slot), len(good), len(runs), fmt(med[slot]["tps"]),
                fmt(med[slot]["total_p50_us"]), fmt(med[slot]["total_p99_us"]),
                fmt(med[slot]["total_avg_us"], 1), ratio, per))
            bad += len(runs) - len(good)
    print("\n".join(lines))
    sys.exit(1 if bad else 0)


def cmd_grid(results_tsv):
    """One markdown row per (setting, connections): medians of the runs of
    memcached and of quorumkvd taken in the same rounds, and their ratio."""
    groups, order = {}, []
    for ln in open(results_tsv):
        setting, conns, target, path = ln.rstrip("\n").split("\t")
        key = (setting, int(conns))
        if key not in groups:
            groups[key] = {"mc": [], "qkv": []}
            order.append(key)
        try:
            r = json.load(open(path))
        except (OSError, ValueError):
            r = {"ok": False}
        groups[key][target].append(r)

    def med(runs, k):
        vals = [r[k] for r in runs if r.get("ok") and r.get(k) is not None]
        return statistics.median(vals) if vals else None

    print("| quorumkvd | conns | memcached ops/s | p50 us | p99 us | quorumkvd ops/s | p50 us | p99 us "
          "| vs memcached | runs ok |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    bad = 0
    for key in order:
        g = groups[key]
        mt, qt = med(g["mc"], "tps"), med(g["qkv"], "tps")
        ok = sum(1 for r in g["mc"] + g["qkv"] if r.get("ok"))
        bad += len(g["mc"]) + len(g["qkv"]) - ok
        ratio = "%.2f" % (qt / mt) if mt and qt else "-"
        print("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %d/%d |" % (
            key[0], key[1], fmt(mt), fmt(med(g["mc"], "total_p50_us")),
            fmt(med(g["mc"], "total_p99_us")), fmt(qt), fmt(med(g["qkv"], "total_p50_us")),
            fmt(med(g["qkv"], "total_p99_us")), ratio, ok, len(g["mc"]) + len(g["qkv"])))
    sys.exit(1 if bad else 0)


def cpu_s(pid):
    """utime + stime of process pid so far, seconds (0 once it is gone)."""
    try:
        with open("/proc/%s/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def wait_quiet(pids, limit_s):
    """Wait (at most limit_s) until the processes use under 5% of a CPU
    together over 2 s: the replication backlog, compactions and tree
    builds that follow a bulk load are over, so a run does not measure
    them.  Returns (quiet, seconds waited)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < float(limit_s):
        c0 = sum(cpu_s(p) for p in pids)
        time.sleep(2)
        if sum(cpu_s(p) for p in pids) - c0 < 0.1:
            return True, time.monotonic() - t0
    return False, time.monotonic() - t0


def cmd_wait_quiet(limit_s, *pids):
    quiet, waited = wait_quiet(pids, limit_s)
    print(json.dumps({"waited_s": round(waited, 1), "quiet": quiet}))


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    fn = {"members": cmd_members, "wait_members": cmd_wait_members,
          "table": cmd_table, "grid": cmd_grid, "wait_quiet": cmd_wait_quiet}.get(cmd)
    if fn is None:
        die("unknown subcommand " + cmd)
    fn(*args)


if __name__ == "__main__":
    main(sys.argv)
