#!/usr/bin/python3
"""Helpers for bench/bench-cluster.sh (stdlib only, run with /usr/bin/python3).

Subcommands:
  members PORT                    print the `members` reply of one node
  wait_members N DEADLINE_S PORT...
                                  poll `members` on every PORT until each lists
                                  exactly N nodes, all in state `up`; prints the
                                  last reply of each node, exit 1 on timeout
  combine OUTFILE...              merge the outputs of several bench/loadgen
                                  processes run in parallel (one per node) into
                                  one JSON line: ops/s summed, p50/p99/p99.9/max
                                  = the max over the processes (loadgen prints
                                  no histogram), avg ops-weighted, errors,
                                  dead connections and misses summed, the first
                                  "bad reply" lines of loadgen's stderr kept
  table RESULTS_JSON              print the per-setting table (see bench-cluster.sh)

Every loadgen output file is expected to hold loadgen's stdout and stderr.
"""
import json
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


def parse_one(path):
    txt = open(path, "rb").read().decode("latin-1")
    res = {}
    m = re.search(r"^RESULT (.*)$", txt, re.M)
    if m:
        for kv in m.group(1).split():
            k, v = kv.split("=", 1)
            res[k] = float(v) if "." in v else int(v)
    bad = [ln for ln in txt.splitlines() if ln.startswith("loadgen:")]
    return res, bad


def cmd_combine(*paths):
    parts = [parse_one(p) for p in paths]
    out = {"ok": False, "procs": len(parts)}
    bad_lines = [b for _, bl in parts for b in bl]
    out["stderr"] = bad_lines[:6]
    out["server_error_lines"] = sum("SERVER_ERROR" in b for b in bad_lines)
    if any(not r for r, _ in parts):
        out["error"] = "%d of %d loadgen processes printed no RESULT line" % (
            sum(not r for r, _ in parts), len(parts))
        print(json.dumps(out))
        return
    rs = [r for r, _ in parts]
    ops = sum(r["ops"] for r in rs)
    out.update(
        ops=ops,
        tps=int(sum(r["ops_per_s"] for r in rs)),
        per_proc_tps=[int(r["ops_per_s"]) for r in rs],
        gets=sum(r["gets"] for r in rs), sets=sum(r["sets"] for r in rs),
        misses=sum(r["misses"] for r in rs), errors=sum(r["errors"] for r in rs),
        dead_conns=sum(r["dead_conns"] for r in rs),
        p50_us=max(r["p50_us"] for r in rs), p99_us=max(r["p99_us"] for r in rs),
        p999_us=max(r["p999_us"] for r in rs), max_us=max(r["max_us"] for r in rs),
        per_proc_p50=[r["p50_us"] for r in rs], per_proc_p99=[r["p99_us"] for r in rs],
        avg_us=round(sum(r["avg_us"] * r["ops"] for r in rs) / ops, 1) if ops else None,
    )
    out["ok"] = ops > 0 and out["errors"] == 0 and out["dead_conns"] == 0
    print(json.dumps(out))


def fmt(x, nd=0):
    if x is None:
        return "-"
    return ("{:,.%df}" % nd).format(x)


def cmd_table(results_json):
    """RESULTS_JSON: {"settings": [{"label": "R=1 W=1", "mc": [files], "qkv": [files]}, ...]}"""
    cfg = json.load(open(results_json))
    lines = []
    hdr = "%-22s %5s %13s %8s %8s %8s  %-8s %s" % (
        "target", "runs", "median ops/s", "p50 us", "p99 us", "avg us", "vs mc", "per-run ops/s")
    lines.append(hdr)
    bad = 0
    for st in cfg["settings"]:
        med = {}
        for slot, label in (("mc", "  memcached"), ("qkv", "  quorumkvd x3")):
            runs = []
            for f in st[slot]:
                try:
                    runs.append(json.load(open(f)))
                except (OSError, ValueError):
                    runs.append({"ok": False})
            good = [r for r in runs if r.get("ok")]

            def m(k):
                vals = [r[k] for r in good if r.get(k) is not None]
                return statistics.median(vals) if vals else None
            med[slot] = {k: m(k) for k in ("tps", "p50_us", "p99_us", "avg_us")}
            per = ", ".join(fmt(r.get("tps")) if r.get("ok") else "FAILED" for r in runs)
            ratio = ""
            if slot == "qkv" and med["mc"]["tps"] and med["qkv"]["tps"]:
                ratio = "%.3f" % (med["qkv"]["tps"] / med["mc"]["tps"])
            if slot == "mc":
                lines.append("%s (n=3):" % st["label"])
            lines.append("%-22s %2d/%-2d %13s %8s %8s %8s  %-8s %s" % (
                label, len(good), len(runs), fmt(med[slot]["tps"]), fmt(med[slot]["p50_us"]),
                fmt(med[slot]["p99_us"]), fmt(med[slot]["avg_us"], 1), ratio, per))
            bad += len(runs) - len(good)
        st["median"] = med
    print("\n".join(lines))
    sys.exit(1 if bad else 0)


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    fn = {"members": cmd_members, "wait_members": cmd_wait_members,
          "combine": cmd_combine, "table": cmd_table}.get(cmd)
    if fn is None:
        die("unknown subcommand " + cmd)
    fn(*args)


if __name__ == "__main__":
    main(sys.argv)
