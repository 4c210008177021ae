#!/usr/bin/python3
"""Helpers for bench/bench-memcached.sh (stdlib only, run with /usr/bin/python3).

Subcommands:
  freeports N                     print N distinct free TCP ports on 127.0.0.1
  probe PORT DEADLINE_S           set+get round trip until it works (server ready)
  load PORT N PREFIX CONNS        pipelined `set ... noreply` of N keys of 100 bytes
                                  over CONNS connections, then a `get` round trip
                                  per connection; prints one JSON line
  verify PORT N PREFIX SAMPLE     get SAMPLE random keys of those N, check values
  memaslap FILE                   parse one memaslap output; prints one JSON line
  qkvbench FILE                   parse one quorumkv-bench --json summary; prints one JSON line
  summary TARGETS_JSON RUN_FILES... aggregate runs (median), print the table

The value of key i is a deterministic 100-byte slice of a seeded random
alphanumeric table, so values are not trivially compressible (LevelDB's
snappy would otherwise shrink the on-disk size) and reads can be verified.
"""
import json
import os
import random
import re
import selectors
import socket
import statistics
import sys
import time

HOST = "127.0.0.1"
VALUE_LEN = 100
_TABLE = None


def table():
    global _TABLE
    if _TABLE is None:
        alnum = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
        rnd = random.Random(20240601)
        _TABLE = bytes(rnd.choices(alnum, k=1 << 20))
    return _TABLE


def key_of(prefix, i):
    return b"%s%08d" % (prefix, i)


def value_of(i):
    t = table()
    off = (i * 2654435761) % (len(t) - VALUE_LEN)
    return t[off:off + VALUE_LEN]


def die(msg):
    print("benchlib: " + msg, file=sys.stderr)
    sys.exit(1)


# ---------------------------------------------------------------- ports

def cmd_freeports(n):
    socks, ports = [], []
    for _ in range(int(n)):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    print(" ".join(map(str, ports)))


# ---------------------------------------------------------------- tiny client

class Conn:
    def __init__(self, port, timeout=10.0):
        self.s = socket.create_connection((HOST, int(port)), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise ConnectionError("server closed the connection")
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def set(self, k, v):
        self.s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v))
        return self.line()

    def get(self, k):
        """value bytes, None for a miss; raises on a protocol error."""
        self.s.sendall(b"get %s\r\n" % k)
        ln = self.line()
        if ln == b"END":
            return None
        p = ln.split()
        if len(p) < 4 or p[0] != b"VALUE" or p[1] != k:
            raise ValueError("unexpected reply to get: %r" % ln[:200])
        v = self.exact(int(p[3]) + 2)[:-2]
        # A Dynamo store may return siblings as several VALUE lines.
        while True:
            ln = self.line()
            if ln == b"END":
                return v
            p = ln.split()
            if p and p[0] == b"VALUE":
                self.exact(int(p[3]) + 2)
                continue
            raise ValueError("unexpected line in get reply: %r" % ln[:200])

    def close(self):
        self.s.close()


def cmd_probe(port, deadline_s):
    end = time.monotonic() + float(deadline_s)
    last = "never connected"
    while time.monotonic() < end:
        try:
            c = Conn(port, timeout=2.0)
            r = c.set(b"bench:probe", b"ok")
            if r != b"STORED":
                last = "set -> %r" % r
            else:
                v = c.get(b"bench:probe")
                if v == b"ok":
                    c.close()
                    print("ready")
                    return
                last = "get -> %r" % (v,)
            c.close()
        except (OSError, ValueError) as e:
            last = "%s: %s" % (type(e).__name__, e)
        time.sleep(0.1)
    die("port %s not ready within %ss (last: %s)" % (port, deadline_s, last))


# ---------------------------------------------------------------- bulk loader

class LoadConn:
    """One non-blocking connection streaming `set <k> 0 0 100 noreply`."""

    BATCH = 512

    def __init__(self, port, prefix, ids):
        self.sock = socket.create_connection((HOST, int(port)), timeout=10)
        self.sock.setblocking(False)
        self.prefix = prefix
        self.ids = ids          # range of key indexes this connection sets
        self.pos = 0
        self.out = b""
        self.inb = b""
        self.final_sent = False
        self.done = False
        self.stored = 0         # STORED lines although we asked noreply
        self.errors = []        # any other line
        self.final_key = key_of(prefix, ids[-1]) if len(ids) else b"bench:none"
        self.final_ok = None
        self._want_data = -1    # bytes of a VALUE payload still expected

    def refill(self):
        if self.pos < len(self.ids):
            parts = []
            for i in self.ids[self.pos:self.pos + self.BATCH]:
                parts.append(b"set %s 0 0 %d noreply\r\n%s\r\n"
                             % (key_of(self.prefix, i), VALUE_LEN, value_of(i)))
            self.pos += self.BATCH
            self.out = b"".join(parts)
        elif not self.final_sent:
            self.out = b"get %s\r\n" % self.final_key
            self.final_sent = True

    def on_write(self):
        if not self.out:
            self.refill()
        if self.out:
            n = self.sock.send(self.out)
            self.out = self.out[n:]

    def on_read(self):
        d = self.sock.recv(262144)
        if not d:
            raise ConnectionError("server closed a load connection")
        self.inb += d
        while True:
            if self._want_data >= 0:
                if len(self.inb) < self._want_data + 2:
                    return
                v = self.inb[:self._want_data]
                self.inb = self.inb[self._want_data + 2:]
                self._want_data = -1
                if self.final_ok is None:
                    self.final_ok = (v == value_of(self.ids[-1]))
                continue
            if b"\r\n" not in self.inb:
                return
            ln, self.inb = self.inb.split(b"\r\n", 1)
            if ln == b"STORED":
                self.stored += 1
            elif ln.startswith(b"VALUE ") and self.final_sent:
                self._want_data = int(ln.split()[3])
            elif ln == b"END" and self.final_sent:
                if self.final_ok is None:
                    self.final_ok = False   # final key missing
                self.done = True
            elif ln == b"SERVER_ERROR busy" and self.final_sent:
                # the check waited too long behind the sets (admission
                # control, server.queue_timeout_ms): ask again
                self.final_sent = False
            else:
                if len(self.errors) < 5:
                    self.errors.append(ln[:200].decode("latin-1"))
                else:
                    self.errors.append("")

    def wants_write(self):
        return bool(self.out) or self.pos < len(self.ids) or not self.final_sent


def cmd_load(port, n, prefix, conns, deadline_s=600):
    n, conns = int(n), int(conns)
    prefix = prefix.encode()
    table()
    chunks = [range(i, n, conns) for i in range(conns)]
    try:
        cs = [LoadConn(port, prefix, ids) for ids in chunks if len(ids)]
    except OSError as e:
        die("load: cannot connect to port %s: %s" % (port, e))
    sel = selectors.DefaultSelector()
    for c in cs:
        sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    t0 = time.monotonic()
    end = t0 + float(deadline_s)
    try:
        _load_loop(sel, cs, end, deadline_s)
    except (OSError, ValueError) as e:
        done = sum(min(c.pos, len(c.ids)) for c in cs)
        die("load failed after ~%d of %d keys were sent: %s: %s" % (done, n, type(e).__name__, e))
    dt = time.monotonic() - t0
    for c in cs:
        c.sock.close()
    errs = [e for c in cs for e in c.errors]
    res = {
        "keys": n, "conns": len(cs), "seconds": round(dt, 2),
        "sets_per_s": round(n / dt) if dt > 0 else 0,
        "stored_replies": sum(c.stored for c in cs),
        "error_lines": len(errs), "first_errors": [e for e in errs if e][:5],
        "final_get_ok": all(c.final_ok for c in cs),
    }
    print(json.dumps(res))


def _load_loop(sel, cs, end, deadline_s):
    pending = len(cs)
    while pending:
        if time.monotonic() > end:
            die("load did not finish within %ss" % deadline_s)
        for keyobj, ev in sel.select(timeout=1.0):
            c = keyobj.data
            if ev & selectors.EVENT_READ:
                c.on_read()
                if c.done:
                    sel.unregister(c.sock)
                    pending -= 1
                    continue
                if c.wants_write() and not ev & selectors.EVENT_WRITE:
                    sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            if ev & selectors.EVENT_WRITE:
                c.on_write()
                if not c.wants_write():
                    sel.modify(c.sock, selectors.EVENT_READ, c)


def cmd_verify(port, n, prefix, sample):
    n, sample = int(n), int(sample)
    prefix = prefix.encode()
    rnd = random.Random(7)
    idx = sorted(rnd.sample(range(n), min(sample, n)))
    try:
        c = Conn(port)
    except OSError as e:
        die("verify: cannot connect to port %s: %s" % (port, e))
    ok = miss = bad = 0
    first_bad = []
    for i in idx:
        try:
            v = c.get(key_of(prefix, i))
        except (OSError, ValueError) as e:
            die("verify: get %s failed after %d keys: %s: %s" % (
                key_of(prefix, i).decode(), ok + miss + bad, type(e).__name__, e))
        if v is None:
            miss += 1
            if len(first_bad) < 3:
                first_bad.append("%s: miss" % key_of(prefix, i).decode())
        elif v != value_of(i):
            bad += 1
            if len(first_bad) < 3:
                first_bad.append("%s: wrong value %r" % (key_of(prefix, i).decode(), v[:40]))
        else:
            ok += 1
    c.close()
    print(json.dumps({"checked": len(idx), "ok": ok, "miss": miss, "wrong": bad,
                      "first_bad": first_bad}))


# ---------------------------------------------------------------- parsers

def log2_percentile(dist, q):
    """memaslap's Log2 Dist: bucket i counts latencies in (2^(i-1), 2^i] us.
    Returns the q-quantile, interpolated linearly inside its bucket."""
    total = sum(dist.values())
    if total == 0:
        return None
    target = q * total
    acc = 0
    for i in sorted(dist):
        cnt = dist[i]
        if cnt and acc + cnt >= target:
            lo = 0 if i == 0 else 2 ** (i - 1)
            hi = 2 ** i
            return lo + (hi - lo) * (target - acc) / cnt
        acc += cnt
    return float(2 ** max(dist))


def parse_memaslap(path):
    txt = open(path, "rb").read().decode("latin-1")
    res = {"ok": False}
    m = re.search(r"Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)", txt)
    if m:
        res.update(run_s=float(m.group(1)), ops=int(m.group(2)), tps=int(m.group(3)))
    for k in ("cmd_get", "cmd_set", "get_misses"):
        m = re.search(r"^%s: (\d+)" % k, txt, re.M)
        if m:
            res[k] = int(m.group(1))
    # final per-type blocks: "<Name> Statistics (N events)" ... "Log2 Dist:" rows
    for name in ("Get", "Set", "Total"):
        m = re.search(r"^%s Statistics \((\d+) events\)\n(.*?)\n\n" % name, txt, re.M | re.S)
        if not m:
            continue
        block = m.group(2)
        avg = re.search(r"Avg:\s+(\d+)", block)
        mx = re.search(r"Max:\s+(\d+)", block)
        dist = {}
        seen_dist = False
        for ln in block.splitlines():
            if "Log2 Dist" in ln:
                seen_dist = True
                continue
            mm = re.match(r"\s*(\d+):((?:\s+\d+)+)\s*$", ln)
            if seen_dist and mm:
                base = int(mm.group(1))
                for j, c in enumerate(mm.group(2).split()):
                    dist[base + j] = int(c)
        pre = name.lower()
        res[pre + "_events"] = int(m.group(1))
        if avg:
            res[pre + "_avg_us"] = int(avg.group(1))
        if mx:
            res[pre + "_max_us"] = int(mx.group(1))
        if dist:
            res[pre + "_p50_us"] = round(log2_percentile(dist, 0.50), 1)
            res[pre + "_p99_us"] = round(log2_percentile(dist, 0.99), 1)
    # memaslap counts a rejected set (CLIENT_ERROR) as an op and only gets
    # keys whose set it believes succeeded, so a server rejecting its keys
    # shows up as ~0 gets: not a valid run.
    sane_mix = res.get("cmd_get", 0) > 0.5 * res.get("ops", 0)
    res["ok"] = bool(res.get("ops")) and "total_p50_us" in res and sane_mix
    if res.get("ops") and not sane_mix:
        res["error"] = "no get mix (%s gets of %s ops): server rejected memaslap's sets" % (
            res.get("cmd_get"), res.get("ops"))
    print(json.dumps(res))


def parse_qkvbench(path):
    """quorumkv-bench's --json summary, in the fields the summary uses."""
    res = {"ok": False}
    try:
        r = json.load(open(path))
    except (OSError, ValueError) as e:
        res["error"] = "no summary: %s" % e
        print(json.dumps(res))
        return
    lat = r.get("latency_us", {})
    errs = r.get("errors", {})
    res.update(r)
    res.update(tps=int(r.get("ops_per_s", 0)), total_p50_us=lat.get("p50"),
               total_p99_us=lat.get("p99"), total_p999_us=lat.get("p999"),
               total_max_us=lat.get("max"), total_avg_us=lat.get("mean"),
               get_misses=r.get("misses"), error_count=errs.get("total", 0),
               busy_count=errs.get("busy", 0))
    # SERVER_ERROR busy is admission control answering at once instead of
    # late (docs/overload.md): counted and reported, it does not fail a
    # run; any other error does
    res["ok"] = r.get("ops", 0) > 0 and errs.get("total", 1) - errs.get("busy", 0) == 0
    print(json.dumps(res))


# ---------------------------------------------------------------- summary

def fmt(x, nd=0):
    if x is None:
        return "-"
    return ("{:,.%df}" % nd).format(x)


def cmd_summary(targets_json, files):
    """files are <target>:<run>:<json file> triples."""
    targets = json.loads(targets_json)       # [[slot, label], ...]
    runs = {slot: [] for slot, _ in targets}
    for f in files:
        slot, _run, path = f.split(":", 2)
        try:
            runs[slot].append(json.load(open(path)))
        except (OSError, ValueError):
            runs[slot].append({"ok": False})
    med = {}
    out = []
    out.append("%-28s %5s %14s %10s %10s %10s   %s" % (
        "target", "runs", "median ops/s", "p50 us", "p99 us", "avg us", "per-run ops/s"))
    for slot, label in targets:
        good = [r for r in runs[slot] if r.get("ok")]

        def m(k):
            vals = [r[k] for r in good if r.get(k) is not None]
            return statistics.median(vals) if vals else None
        med[slot] = {"tps": m("tps"), "p50": m("total_p50_us"), "p99": m("total_p99_us"),
                     "avg": m("total_avg_us")}
        per = ", ".join(fmt(r.get("tps")) if r.get("ok") else "FAILED" for r in runs[slot])
        out.append("%-28s %2d/%-2d %14s %10s %10s %10s   %s" % (
            label, len(good), len(runs[slot]), fmt(med[slot]["tps"]),
            fmt(med[slot]["p50"], 1), fmt(med[slot]["p99"], 1), fmt(med[slot]["avg"]), per))
    a, b = targets[0][0], targets[1][0]
    if med[a]["tps"] and med[b]["tps"]:
        out.append("ratio %s/%s of median ops/s: %.3f" % (
            targets[1][1], targets[0][1], med[b]["tps"] / med[a]["tps"]))
        if med[a]["p50"] and med[b]["p50"]:
            out.append("ratio of median p50 latency: %.2fx, of median p99: %.2fx" % (
                med[b]["p50"] / med[a]["p50"], med[b]["p99"] / med[a]["p99"]))
    else:
        out.append("ratio: n/a (a target has no successful run)")
    print("\n".join(out))
    return 0 if all(med[s]["tps"] for s, _ in targets) else 1


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "freeports":
        cmd_freeports(*args)
    elif cmd == "probe":
        cmd_probe(*args)
    elif cmd == "load":
        cmd_load(*args)
    elif cmd == "verify":
        cmd_verify(*args)
    elif cmd == "memaslap":
        parse_memaslap(*args)
    elif cmd == "qkvbench":
        parse_qkvbench(*args)
    elif cmd == "summary":
        sys.exit(cmd_summary(args[0], args[1:]))
    else:
        die("unknown subcommand " + cmd)


if __name__ == "__main__":
    main(sys.argv)
