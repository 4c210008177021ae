"""Cluster test library: free ports, deadline polling, a text-protocol
client with bounded reads, quorumkvd nodes and a factory for clusters, plus
predicates on what the nodes report (members, ring).  Used by conftest.py
and the tests in this folder; holds no pytest hooks.
"""

import os
import random
import re
import signal
import socket
import subprocess
import time


HERE = os.path.dirname(os.path.abspath(__file__))
QKV_BIN = os.path.abspath(os.environ.get("QKV_BIN") or os.path.join(HERE, "..", "..", "bin", "quorumkvd"))

VNODES = 64
READY_TIMEOUT = 15.0         # seconds for a daemon to accept connections
IO_TIMEOUT = 5.0             # seconds for any one reply
POLL = 0.02                  # seconds between polls


# --------------------------------------------------------------------------
# Ports, polling
# --------------------------------------------------------------------------

def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_handed_out = set()


def free_ports(count):
    """count distinct TCP ports that were free on 127.0.0.1 a moment ago.

    They are chosen outside the kernel's ephemeral range, so no outgoing
    connection (of these daemons, of this harness or of anything else on the
    machine) can take one between now and the daemon's bind(); an ephemeral
    port from bind(0) was seen taken that way ("Address already in use").
    A port is handed out at most once per session."""
    lo, hi = _ephemeral_range()
    pool = range(10000, lo) if lo - 10000 >= 1000 else range(hi + 1, 65536)
    rng = random.SystemRandom()
    socks = []
    try:
        for _ in range(50 * count):
            if len(socks) == count:
                break
            port = rng.choice(pool)
            if port in _handed_out:
                continue
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))   # no SO_REUSEADDR: TIME_WAIT counts as taken
            except OSError:
                s.close()
                continue
            socks.append(s)
        if len(socks) < count:
            raise AssertionError("could not find %d free TCP ports in %s" % (count, pool))
        ports = [s.getsockname()[1] for s in socks]
        _handed_out.update(ports)
        return ports
    finally:
        for s in socks:
            s.close()


def wait_for(cond, timeout, what="condition", explain=None, interval=POLL):
    """Poll cond() until it returns a truthy value, which is returned.  At the
    deadline raise AssertionError naming what was awaited and, if given,
    explain()'s description of the last state seen."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            msg = "timed out after %.1fs waiting for %s" % (timeout, what)
            if explain is not None:
                msg += "\nlast state:\n%s" % explain()
            raise AssertionError(msg)
        time.sleep(interval)


def time_until(cond, t0, timeout, what, explain=None):
    """Seconds from t0 (a time.monotonic() value) until cond() first held."""
    wait_for(cond, timeout - (time.monotonic() - t0), what, explain)
    return time.monotonic() - t0


def port_accepts(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# Text-protocol client (every read bounded by a deadline)
# --------------------------------------------------------------------------

class Conn:
    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT):
        self.timeout = timeout
        self.buf = bytearray()
        self.sock = socket.create_connection((host, port), timeout=timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def readline(self):
        deadline = time.monotonic() + self.timeout
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line.decode("latin1")
            if len(self.buf) > (4 << 20):
                raise AssertionError("reply line longer than 4 MB")
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply line within %.1fs (have %r)"
                                     % (self.timeout, bytes(self.buf[:200])))
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the connection (have %r)" % bytes(self.buf[:200]))
            self.buf += chunk

    def cmd(self, line):
        """One command, its one-line reply."""
        self.sock.sendall(line.encode() + b"\r\n")
        return self.readline()

    def lines(self, line):
        """One command whose reply is lines up to END (END excluded)."""
        self.sock.sendall(line.encode() + b"\r\n")
        out = []
        while True:
            ln = self.readline()
            if ln == "END":
                return out
            if ln.startswith(("ERROR", "CLIENT_ERROR", "SERVER_ERROR")):
                raise AssertionError("%r answered %r" % (line, ln))
            out.append(ln)


# --------------------------------------------------------------------------
# Nodes
# --------------------------------------------------------------------------

class ClusterNode:
    """One quorumkvd: its INI, data dir and log live in workdir.  Ports are
    fixed at creation so a restart reuses them (and the data dir)."""

    host = "127.0.0.1"

    def __init__(self, workdir, name, seed=None, fault_injection=True, settings=None,
                 founding=False):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = name
        self.client_port, self.peer_port = free_ports(2)
        self.data_dir = os.path.join(self.workdir, "data")
        self.conf_path = os.path.join(self.workdir, "node.ini")
        self.log_path = os.path.join(self.workdir, "node.log")
        self.seed = seed              # the ClusterNode to seed through; None: itself
        # a founding node lists itself among its seeds, so it starts up at
        # once; any other new node joins: it pulls its ranges first
        self.founding = founding or seed is None
        self.fault_injection = fault_injection
        self.settings = dict(settings or {})
        self.proc = None
        self._logf = None
        self.expect_exit = False      # a test that makes it exit (leave, a refused join) sets it

    # ---- config ----

    def conf_text(self):
        seeds = [self.seed.peer_port if self.seed else self.peer_port]
        if self.founding and self.peer_port not in seeds:
            seeds.append(self.peer_port)
        sections = {
            "node": {"name": self.name, "host": self.host, "client_port": self.client_port,
                     "peer_port": self.peer_port, "data_dir": self.data_dir, "log_level": "info"},
            "cluster": {"seeds": ",".join("127.0.0.1:%d" % p for p in seeds),
                        "n": 3, "r": 2, "w": 2},
            "gossip": {"interval_ms": 200, "phi_threshold": 8},
        }
        if self.fault_injection:
            sections["debug"] = {"fault_injection": "true"}
        for k, v in self.settings.items():
            sec, key = k.split(".", 1)
            sections.setdefault(sec, {})[key] = v
        out = []
        for sec, kv in sections.items():
            out.append("[%s]" % sec)
            out.extend("%s = %s" % (k, v) for k, v in kv.items())
        return "\n".join(out) + "\n"

    # ---- process ----

    def launch(self):
        """Start the process; does not wait for it to be ready."""
        assert not self.alive(), "%s already running" % self.name
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text())
        self._close_log()
        self._logf = open(self.log_path, "ab")
        self._logf.write(b"\n==== start %s\n" % self.name.encode())
        self._logf.flush()
        self.proc = subprocess.Popen([QKV_BIN, "-c", self.conf_path], stdin=subprocess.DEVNULL,
                                     stdout=self._logf, stderr=self._logf, cwd=self.workdir)
        return self

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("%s exited with %s before accepting connections; log:\n%s"
                                     % (self.name, self.proc.returncode, self.log_tail()))
            if port_accepts(self.client_port):
                return self
            if time.monotonic() >= deadline:
                raise AssertionError("%s did not accept connections within %.0fs; log:\n%s"
                                     % (self.name, timeout, self.log_tail()))
            time.sleep(POLL)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        """SIGKILL by PID and reap; returns once the process is gone."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def cleanup(self):
        """Teardown: the process is gone afterwards, whatever happened.
        SIGTERM first (a clean shutdown lets a sanitizer build report leaks),
        SIGKILL if that does not end it.  Returns the sanitizer report found
        in the node's log, or None."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc is None or self.proc.poll() is not None:
                break
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()
        return sanitizer_report(self.log_path)

    def _close_log(self):
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def bind_failed(self):
        """The last run exited because a port was taken."""
        if self.alive():
            return False
        try:
            with open(self.log_path, "rb") as f:
                last = f.read().rsplit(b"==== start", 1)[-1]
        except OSError:
            return False
        return b"Address already in use" in last

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    # ---- client commands ----

    def conn(self, timeout=IO_TIMEOUT):
        return Conn(self.client_port, timeout=timeout)

    def cmd(self, line):
        with self.conn() as c:
            return c.cmd(line)

    def cmd_lines(self, line):
        """The lines of a multi-line reply up to END (END not included)."""
        with self.conn() as c:
            return c.lines(line)

    def members(self):
        """{name: {'client': 'h:p', 'peer': 'h:p', 'state': s, 'phi': f, 'hb': n}}"""
        with self.conn() as c:
            rows = c.lines("members")
        out = {}
        for row in rows:
            f = row.split(" ")
            assert len(f) in (6, 7) and f[4].startswith("phi=") and f[5].startswith("hb="), \
                "%s: bad members line %r" % (self.name, row)
            assert len(f) == 6 or re.match(r"transfer=\d+%$", f[6]), \
                "%s: bad members line %r" % (self.name, row)
            assert f[3] in ("up", "down", "joining", "leaving"), "%s: bad state in %r" % (self.name, row)
            assert f[0] not in out, "%s: member %s listed twice" % (self.name, f[0])
            out[f[0]] = {"client": f[1], "peer": f[2], "state": f[3],
                         "phi": float(f[4][4:]), "hb": int(f[5][3:])}
        return out

    def ring(self):
        """[(start, end, [names...]), ...] in the node's order."""
        with self.conn() as c:
            rows = c.lines("ring")
        out = []
        for row in rows:
            f = row.split(" ")
            assert len(f) == 3, "%s: bad ring line %r" % (self.name, row)
            out.append((int(f[0]), int(f[1]), f[2].split(",")))
        return out

    def stats(self):
        with self.conn() as c:
            rows = c.lines("stats")
        out = {}
        for row in rows:
            parts = row.split(" ", 2)
            assert parts[0] == "STAT" and len(parts) == 3, "bad stats line %r" % row
            out[parts[1]] = parts[2]
        return out


class ClusterFactory:
    """Makes nodes n1, n2, ... in tmp_path, all seeded through n1's peer port
    (n1 seeds itself).  Remembers every node for teardown."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.nodes = []

    def node(self, name=None, seed_first=True, **kw):
        name = name or "n%d" % (len(self.nodes) + 1)
        seed = self.nodes[0] if (seed_first and self.nodes) else None
        n = ClusterNode(self.tmp_path / name, name, seed=seed, **kw)
        self.nodes.append(n)
        return n

    def start(self, count, **kw):
        """Create and launch count nodes (n1 first), wait until each accepts
        client connections; returns (nodes, monotonic time of the last launch).
        The nodes of the first batch found the cluster (they list themselves
        as seeds and start up); later ones join (unless founding=True).
        If a node could not bind its ports (taken since they were chosen),
        the whole batch is killed and relaunched on new ports (twice at most)."""
        kw.setdefault("founding", not self.nodes)
        made = [self.node(**kw) for _ in range(count)]
        for attempt in range(3):
            for n in made:
                n.launch()
            t_launched = time.monotonic()
            try:
                for n in made:
                    n.wait_ready()
                return made, t_launched
            except AssertionError:
                if attempt == 2 or not any(n.bind_failed() for n in made):
                    raise
                for n in made:
                    n.kill9()
                    n.client_port, n.peer_port = free_ports(2)
        raise AssertionError("unreachable")

    def cleanup(self, failed):
        for n in self.nodes:
            if failed:
                state = "running" if n.alive() else "exited with %s" % (n.proc.returncode if n.proc else None)
                print("\n---- %s (%s) log tail (%s) ----\n%s" % (n.name, state, n.log_path, n.log_tail()))
        reports = [(n.name, r) for n in self.nodes for r in [n.cleanup()] if r]
        if reports:
            raise AssertionError("sanitizer report in %s's log:\n%s" % reports[0])




SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_report(path):
    """The first ASan/LSan/UBSan report in a daemon's log, or None."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return None
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            return text[max(0, i - 200):i + 3000]
    return None


# --------------------------------------------------------------------------
# What the nodes report
# --------------------------------------------------------------------------

def sees(observer, name, state):
    """observer's `members` lists name in state."""
    m = observer.members().get(name)
    return m is not None and m["state"] == state


def all_see(observers, name, state):
    return all(sees(o, name, state) for o in observers)


def full_view(node, nodes):
    """node's `members` lists exactly nodes, all up, with their addresses."""
    view = node.members()
    if set(view) != {n.name for n in nodes}:
        return False
    for n in nodes:
        m = view[n.name]
        if m["state"] != "up":
            return False
        assert m["client"] == "127.0.0.1:%d" % n.client_port, \
            "%s lists %s with client address %s" % (node.name, n.name, m["client"])
        assert m["peer"] == "127.0.0.1:%d" % n.peer_port, \
            "%s lists %s with peer address %s" % (node.name, n.name, m["peer"])
    return True


def all_full_view(nodes):
    return all(full_view(n, nodes) for n in nodes)


def ring_problem(ring, names):
    """None if ring is a well-formed ring over exactly names, else why not."""
    names = set(names)
    k = len(names)
    if len(ring) != VNODES * k:
        return "%d ranges, expected %d" % (len(ring), VNODES * k)
    seen = set()
    for i, (start, end, plist) in enumerate(ring):
        if len(plist) != min(3, k) or len(set(plist)) != len(plist):
            return "range %d has preference list %s: want %d distinct names" % (i, plist, min(3, k))
        if not set(plist) <= names:
            return "range %d lists unknown nodes %s" % (i, sorted(set(plist) - names))
        # ranges tile the ring: each starts where the previous one ends
        nxt = ring[(i + 1) % len(ring)][0]
        if end != nxt:
            return "range %d ends at %d but the next starts at %d" % (i, end, nxt)
        seen.update(plist)
    if seen != names:
        return "nodes %s own no range" % sorted(names - seen)
    return None


def rings_agree(nodes, names):
    """Every node's ring is well-formed over names and all are identical."""
    rings = [n.ring() for n in nodes]
    if any(ring_problem(r, names) for r in rings):
        return False
    return all(r == rings[0] for r in rings[1:])


def describe(nodes, names=None, ring=False):
    """A multi-line picture of every live node's view, for failure messages."""
    out = []
    for n in nodes:
        if not n.alive():
            out.append("%s: not running" % n.name)
            continue
        try:
            view = n.members()
            out.append("%s members: %s" % (n.name, ", ".join(
                "%s=%s(phi=%.2f,hb=%d)" % (k, v["state"], v["phi"], v["hb"]) for k, v in sorted(view.items()))))
            if ring:
                r = n.ring()
                out.append("%s ring: %s" % (n.name, ring_problem(r, names) or "ok, %d ranges" % len(r)))
        except (OSError, AssertionError) as e:
            out.append("%s: query failed: %s" % (n.name, e))
    return "\n".join(out)
