"""Helpers for the client-side tests (test_client*.py, test_cli.py,
test_bench.py): where the built tools are, the libquorumkv test driver
(tests/cluster/qkv_driver.c) as a Python object, a check for the server's
`vget` extension, and a tiny fake server for bad-input tests.

Every read from a child process is bounded by a deadline; every process
started here is killed by PID in close().
"""

import json
import os
import select
import socket
import subprocess
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def _tool(env, default):
    return os.path.abspath(os.environ.get(env) or os.path.join(ROOT, default))


QKV_CLI = _tool("QKV_CLI", "bin/quorumkv-cli")
QKV_BENCH = _tool("QKV_BENCH", "bin/quorumkv-bench")
QKV_DRIVER = _tool("QKV_DRIVER", "build/tests/qkv_driver")
QKV_LIBDIR = _tool("QKV_LIBDIR", "lib")
QKV_EXAMPLE = _tool("QKV_EXAMPLE", "build/client/examples/merge")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def seeds(nodes):
    return ",".join("127.0.0.1:%d" % n.client_port for n in nodes)


class Driver:
    """One qkv_driver process: call(line) sends a command, returns its JSON."""

    def __init__(self, timeout=30.0):
        if not os.access(QKV_DRIVER, os.X_OK):
            raise AssertionError("%s not built (make %s)" % (QKV_DRIVER, os.path.relpath(QKV_DRIVER, ROOT)))
        self.timeout = timeout
        self.proc = subprocess.Popen([QKV_DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.buf = b""

    def call(self, line, timeout=None):
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("driver gave no answer to %r within %.0fs" % (line, timeout or self.timeout))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("driver exited (status %s) on %r; stderr:\n%s"
                                         % (self.proc.wait(), line, self.proc.stderr.read().decode()[-3000:]))
                self.buf += chunk
        out, self.buf = self.buf.split(b"\n", 1)
        return json.loads(out)

    def close(self):
        """Stop the driver; raise if a sanitizer reported anything."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read().decode("utf-8", "replace")
        for m in SANITIZER_MARKERS:
            if m in err:
                raise AssertionError("sanitizer report from qkv_driver:\n" + err[-4000:])
        return err


def supports_vget(node):
    """The server knows `vget` (the extension the library reads with).
    Answers False only when it says ERROR, the reply of an unknown command."""
    with node.conn() as c:
        line = c.cmd("vget qkv:probe")
        if line == "ERROR":
            return False
        while line != "END":
            line = c.readline()
    return True


def run_tool(args, timeout=60, stdin=None):
    """Run a tool to completion: (exit status, stdout, stderr)."""
    p = subprocess.run(args, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    for m in SANITIZER_MARKERS:
        assert m not in err, "sanitizer report from %s:\n%s" % (args[0], err[-4000:])
    return p.returncode, out, err


# --------------------------------------------------------------------------
# A fake quorumkv node that answers the topology commands correctly and
# misbehaves on data commands.
# --------------------------------------------------------------------------

class FakeServer:
    """Listens on 127.0.0.1:port.  `members`, `ring` and `stats` describe a
    one-node cluster (itself).  Any other command gets `mode`:
      garbage  a line that is not the protocol
      close    half a reply, then the connection is closed
      silent   nothing, ever (the connection stays open)
      longline 100 KB without a newline
      badvalue a VALUE line announcing 2^40 bytes
    With topology="garbage" even `members` gets garbage."""

    def __init__(self, port, mode, topology="ok"):
        self.port, self.mode, self.topology = port, mode, topology
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(16)
        self.stop = False
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.lsock.settimeout(0.2)
        while not self.stop:
            try:
                s, _ = self.lsock.accept()
            except OSError:
                continue
            self.conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        buf = b""
        s.settimeout(0.2)
        try:
            while not self.stop:
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    continue
                if not d:
                    return
                buf += d
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if not self._answer(s, line.decode("latin1")):
                        return
        except OSError:
            return

    def _answer(self, s, line):
        cmd = line.split(" ")[0]
        if cmd in ("members", "ring", "stats") and self.topology == "ok":
            if cmd == "members":
                s.sendall(b"fake 127.0.0.1:%d 127.0.0.1:1 up phi=0.00 hb=1\r\nEND\r\n" % self.port)
            elif cmd == "ring":
                s.sendall(b"5 5 fake\r\nEND\r\n")
            else:
                s.sendall(b"STAT ring_epoch 1\r\nEND\r\n")
            return True
        key = line.split(" ")[1].encode() if " " in line else b"k"
        if self.mode == "garbage" or self.topology == "garbage":
            s.sendall(b"HELLO I AM NOT A DATABASE\r\n")
        elif self.mode == "close":
            # vget: inside the data block; anything else: inside a line
            s.sendall(b"VALUE %s 0 10 1 live\r\nabc" % key if cmd == "vget" else b"STO")
            s.close()
            return False
        elif self.mode == "longline":
            s.sendall(b"x" * 100000)
        elif self.mode == "badvalue":
            s.sendall(b"VALUE %s 0 1099511627776 1 live\r\n" % key)
        # silent: nothing
        return True

    def close(self):
        self.stop = True
        for s in self.conns:
            try:
                s.close()
            except OSError:
                pass
        self.lsock.close()
        self.thread.join(5)
