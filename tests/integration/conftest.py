"""Integration test harness: real servers on free ports, a raw text-protocol
client, and a per-test time limit.

Targets (environment):
  QKV_TARGET=quorumkv (default)  start bin/quorumkvd (QKV_BIN overrides the path)
  QKV_TARGET=memcached           start /usr/bin/memcached 1.6 instead, to check
                                 that the expected replies are memcached's own

Every wait polls with a deadline, every socket read has a timeout, and every
test runs under a SIGALRM limit (no pytest-timeout plugin is assumed), so the
suite finishes in bounded time even against a hung server.  Every process a
fixture starts is killed by PID in its teardown.
"""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.environ.get("QKV_TARGET", "quorumkv").strip().lower()
IS_MEMCACHED = TARGET == "memcached"
QKV_BIN = os.path.abspath(os.environ.get("QKV_BIN") or os.path.join(HERE, "..", "..", "bin", "quorumkvd"))
MEMCACHED_BIN = os.environ.get("MEMCACHED_BIN", "/usr/bin/memcached")

MAX_VALUE_BYTES = 1048576          # node.max_value_bytes default; memcached -I 1m
READY_TIMEOUT = 15.0               # seconds for a server to accept connections
IO_TIMEOUT = 5.0                   # seconds for any one reply
DEFAULT_TEST_TIMEOUT = 60          # seconds per test phase (setup/call/teardown)

if TARGET not in ("quorumkv", "memcached"):
    raise pytest.UsageError("QKV_TARGET must be quorumkv or memcached, not %r" % TARGET)

only_quorumkv = pytest.mark.skipif(IS_MEMCACHED, reason="quorumkv-only (not a memcached feature)")


# --------------------------------------------------------------------------
# Per-test time limit
# --------------------------------------------------------------------------

class TestTimeout(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-phase time limit for this test")


def _limit(item):
    m = item.get_closest_marker("timeout")
    return int(m.args[0]) if m else DEFAULT_TEST_TIMEOUT


def _with_alarm(item, phase):
    limit = _limit(item)

    def on_alarm(signum, frame):
        raise TestTimeout("%s %s exceeded %ds" % (item.nodeid, phase, limit))

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    return old


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    old = _with_alarm(item, "setup")
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    old = _with_alarm(item, "call")
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    old = _with_alarm(item, "teardown")
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _test_failed(request):
    node = request.node
    for when in ("setup", "call"):
        rep = getattr(node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


# --------------------------------------------------------------------------
# Ports, polling
# --------------------------------------------------------------------------

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def check_sanitizer_log(path):
    """Fail when a sanitizer (ASan, LSan, UBSan) reported anything in path."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except (OSError, TypeError):
        return
    for marker in SANITIZER_MARKERS:
        i = text.find(marker)
        if i >= 0:
            raise AssertionError("sanitizer report in %s:\n%s" % (path, text[max(0, i - 200):i + 3000]))


def free_ports(count=1):
    """count distinct TCP ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port():
    return free_ports(1)[0]


def wait_for(cond, timeout, interval=0.02, what="condition"):
    """Poll cond() until it returns a truthy value or timeout passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def port_accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# Raw text-protocol client
# --------------------------------------------------------------------------

class ConnectionClosed(Exception):
    pass


class Conn:
    """One TCP connection speaking the memcached text protocol, byte-exact.

    Every read has a deadline (IO_TIMEOUT unless given), so a missing reply is
    a socket.timeout, never a hang."""

    def __init__(self, host, port, timeout=IO_TIMEOUT, rcvbuf=None):
        self.timeout = timeout
        self.buf = bytearray()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect((host, port))
        self.sock = s

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete reply within %.1fs (have %r)" % (self.timeout, bytes(self.buf[:200])))
        self.sock.settimeout(left)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionClosed("server closed the connection (have %r)" % bytes(self.buf[:200]))
        self.buf += chunk

    def readline(self, timeout=None):
        """One reply line without its \\r\\n."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > (4 << 20):
                raise AssertionError("reply line longer than 4 MB: %r..." % bytes(self.buf[:100]))
            self._fill(deadline)

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def cmd(self, line):
        """Send one command line, return its one-line reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.readline()

    def store(self, verb, key, value, flags=0, exptime=0, cas=None, noreply=False, extra=b""):
        if isinstance(key, str):
            key = key.encode()
        if isinstance(value, str):
            value = value.encode()
        parts = [verb.encode(), key, b"%d" % flags, b"%d" % exptime, b"%d" % len(value)]
        if cas is not None:
            parts.append(b"%d" % cas)
        if noreply:
            parts.append(b"noreply")
        if extra:
            parts.append(extra)
        self.send(b" ".join(parts) + b"\r\n" + value + b"\r\n")
        return None if noreply else self.readline()

    def set(self, key, value, flags=0, exptime=0, **kw):
        return self.store("set", key, value, flags, exptime, **kw)

    def read_values(self, timeout=None):
        """Read VALUE blocks up to END: list of (key, flags, data, cas|None)."""
        out = []
        while True:
            line = self.readline(timeout)
            if line == b"END":
                return out
            parts = line.split(b" ")
            if parts[0] != b"VALUE" or len(parts) not in (4, 5):
                raise AssertionError("expected VALUE or END, got %r" % line)
            n = int(parts[3])
            data = self.read_exact(n + 2, timeout)
            if data[-2:] != b"\r\n":
                raise AssertionError("data block of %r not terminated by \\r\\n" % parts[1])
            cas = int(parts[4]) if len(parts) == 5 else None
            out.append((parts[1].decode("latin1"), int(parts[2]), data[:-2], cas))

    def get_multi(self, *keys, verb="get"):
        self.send(verb.encode() + b" " + b" ".join(k.encode() if isinstance(k, str) else k for k in keys) + b"\r\n")
        return self.read_values()

    def get(self, key):
        """The value of key or None."""
        vals = self.get_multi(key)
        assert len(vals) <= 1, vals
        return vals[0][2] if vals else None

    def gets(self, key):
        """(value, flags, cas) of key or None."""
        vals = self.get_multi(key, verb="gets")
        assert len(vals) <= 1, vals
        if not vals:
            return None
        assert vals[0][3] is not None, "gets reply without a cas unique"
        return vals[0][2], vals[0][1], vals[0][3]

    def stats(self, arg=None):
        self.send(b"stats" + (b" " + arg.encode() if arg else b"") + b"\r\n")
        out = {}
        while True:
            line = self.readline()
            if line == b"END":
                return out
            parts = line.decode("latin1").split(" ", 2)
            assert parts[0] == "STAT" and len(parts) == 3, "bad stats line %r" % line
            out[parts[1]] = parts[2]

    def read_until_closed(self, timeout=None):
        """Everything the server sends until it closes (raises on timeout)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                self._fill(deadline)
            except ConnectionClosed:
                return bytes(self.buf)


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------

def read_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


class Server:
    """A server process on 127.0.0.1 with a log file; subclasses say how to start it."""

    host = "127.0.0.1"

    def __init__(self, workdir):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.proc = None
        self.port = None
        self.log_path = os.path.join(self.workdir, "server.log")
        self._logf = None

    # subclasses
    def argv(self):
        raise NotImplementedError

    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._logf = open(self.log_path, "ab")
        self._logf.write(b"\n==== start %s\n" % " ".join(self.argv()).encode())
        self._logf.flush()
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._logf,
                                     stderr=self._logf, cwd=self.workdir)
        if wait:
            self.wait_ready()
        return self

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("server exited with %s before accepting connections; log:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            if port_accepts(self.host, self.port):
                return
            if time.monotonic() >= deadline:
                raise AssertionError("server did not accept connections on port %d within %.0fs; log:\n%s"
                                     % (self.port, timeout, self.log_tail()))
            time.sleep(0.02)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal the server and wait for it; returns its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("server did not exit within %.0fs of signal %d; log:\n%s"
                                     % (timeout, sig, self.log_tail()))
        self._close_log()
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def restart(self, wait=True):
        if self.alive():
            self.stop()
        return self.start(wait)

    def cleanup(self):
        """Fixture teardown: the process is gone afterwards, whatever happened.

        A clean SIGTERM first, so that a sanitizer build (make SANITIZE=address
        test) reports leaks; any sanitizer report in the log fails the test."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()
        check_sanitizer_log(self.log_path)

    def _close_log(self):
        if self._logf is not None:
            self._logf.close()
            self._logf = None

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"

    def rss_kb(self):
        return read_rss_kb(self.pid)

    def conn(self, **kw):
        return Conn(self.host, self.port, **kw)


class MemcachedServer(Server):
    def __init__(self, workdir, **_ignored):
        super().__init__(workdir)
        self.port = free_port()

    def argv(self):
        a = [MEMCACHED_BIN, "-p", str(self.port), "-U", "0", "-l", "127.0.0.1", "-m", "64", "-I", "1m"]
        if os.geteuid() == 0:
            a += ["-u", "root"]   # memcached refuses to run as root otherwise
        return a


class Node(Server):
    """One quorumkvd node: its ini file and data dir live in workdir."""

    def __init__(self, workdir, name="n1", settings=None, binary=None):
        super().__init__(workdir)
        self.binary = binary or QKV_BIN
        self.name = name
        self.port, self.peer_port = free_ports(2)
        self.data_dir = os.path.join(self.workdir, "data")
        self.conf_path = os.path.join(self.workdir, "conf.ini")
        self.settings = dict(settings or {})
        self.write_conf()

    def conf_text(self):
        sections = {
            "node": {"name": self.name, "host": "127.0.0.1", "client_port": self.port,
                     "peer_port": self.peer_port, "data_dir": self.data_dir},
            "cluster": {"seeds": "127.0.0.1:%d" % self.peer_port, "n": 1, "r": 1, "w": 1},
        }
        for k, v in self.settings.items():
            sec, key = k.split(".", 1)
            sections.setdefault(sec, {})[key] = v
        out = []
        for sec, kv in sections.items():
            out.append("[%s]" % sec)
            for k, v in kv.items():
                if isinstance(v, bool):
                    v = "true" if v else "false"
                out.append("%s = %s" % (k, v))
        return "\n".join(out) + "\n"

    def write_conf(self):
        with open(self.conf_path, "w") as f:
            f.write(self.conf_text())

    def argv(self):
        return [self.binary, "-c", self.conf_path]


def require_daemon():
    if not (os.path.isfile(QKV_BIN) and os.access(QKV_BIN, os.X_OK)):
        pytest.fail("quorumkvd not found at %s (run make, or set QKV_BIN)" % QKV_BIN, pytrace=False)


def make_server(workdir, **settings):
    """A started server of the selected target.  settings are quorumkv ini
    keys as 'section.key' (ignored for memcached)."""
    if IS_MEMCACHED:
        srv = MemcachedServer(workdir)
    else:
        require_daemon()
        srv = Node(workdir, settings={k.replace("__", "."): v for k, v in settings.items()})
    try:
        srv.start()
    except BaseException:
        srv.cleanup()
        raise
    return srv


def _teardown(srv, request):
    try:
        if _test_failed(request):
            state = "running" if srv.alive() else "exited with %s" % srv.proc.returncode
            print("\n---- server (%s) log tail (%s) ----\n%s" % (state, srv.log_path, srv.log_tail()))
    finally:
        srv.cleanup()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    srv = make_server(tmp_path_factory.mktemp("srv"))
    yield srv
    srv.cleanup()


@pytest.fixture
def server(shared_server, request):
    """One server shared by a test module (tests use their own keys).  If it
    dies during a test, that test errors with its exit status and log, and the
    next test gets a restarted server."""
    if not shared_server.alive():
        shared_server.start()
    yield shared_server
    failed = _test_failed(request)
    if failed or not shared_server.alive():
        state = "running" if shared_server.alive() else "exited with %s" % shared_server.proc.returncode
        print("\n---- server (%s) log tail (%s) ----\n%s" % (state, shared_server.log_path, shared_server.log_tail()))
    if not shared_server.alive():
        code = shared_server.proc.returncode
        shared_server.cleanup()
        pytest.fail("server died during this test (exit status %s)" % code, pytrace=False)


@pytest.fixture
def fresh_server(tmp_path, request):
    """A server of its own for a test that changes global state (flush_all, stats)."""
    srv = make_server(tmp_path / "srv")
    yield srv
    _teardown(srv, request)


@pytest.fixture
def node_factory(tmp_path, request):
    """Start quorumkvd nodes with given settings; all are killed afterwards."""
    require_daemon()
    nodes = []

    def make(start=True, name="n1", **settings):
        n = Node(tmp_path / ("node%d" % len(nodes)), name=name,
                 settings={k.replace("__", "."): v for k, v in settings.items()})
        nodes.append(n)
        if start:
            n.start()
        return n

    yield make
    failed = _test_failed(request)
    for n in nodes:
        if failed:
            print("\n---- log tail of %s ----\n%s" % (n.log_path, n.log_tail()))
        n.cleanup()


@pytest.fixture
def conn(server):
    c = server.conn()
    yield c
    c.close()


_key_seq = [0]


@pytest.fixture
def key(request):
    """Unique key factory: key() -> 'test_name-<n>'."""
    base = re.sub(r"[^A-Za-z0-9_.:-]", "_", request.node.name)[:150]

    def make(suffix=""):
        _key_seq[0] += 1
        return "%s-%d%s" % (base, _key_seq[0], suffix)

    return make
