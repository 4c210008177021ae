"""Helpers for the quorum, repair and fault tests: a text-protocol client
that reads data blocks (get, siblings, lget), cluster start-up that waits
for a converged view and ring, failure-detector waits, and a graceful
(SIGTERM) restart.  Built on clusterlib; holds no pytest hooks.
"""

import os
import signal
import socket
import time

from clusterlib import Conn, all_full_view, describe, rings_agree, sees, wait_for

CONVERGE_LIMIT = 20.0     # s: start-up / rejoin hang guard
DETECT_LIMIT = 15.0       # s: failure detection hang guard
STOP_LIMIT = 15.0         # s: SIGTERM to exit


class ReplyError(Exception):
    """The server answered ERROR / CLIENT_ERROR / SERVER_ERROR (or something
    unexpected); .line is that reply line."""

    def __init__(self, line, request=""):
        Exception.__init__(self, "%r answered %r" % (request, line))
        self.line = line


def is_error(line):
    return line.startswith(("ERROR", "CLIENT_ERROR", "SERVER_ERROR"))


class QConn(Conn):
    """Conn plus value-carrying commands.  Values are bytes."""

    def readexact(self, n):
        deadline = time.monotonic() + self.timeout
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("data block of %d bytes not complete within %.1fs" % (n, self.timeout))
            self.sock.settimeout(left)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the connection in a data block")
            self.buf += chunk
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def send(self, line, data=None):
        msg = line.encode() + b"\r\n"
        if data is not None:
            msg += data + b"\r\n"
        self.sock.sendall(msg)

    def set(self, key, value, opts="", flags=0, exptime=0):
        """The reply line (STORED, SERVER_ERROR ..., ...)."""
        if isinstance(value, str):
            value = value.encode()
        line = "set %s %d %d %d%s" % (key, flags, exptime, len(value), (" " + opts) if opts else "")
        self.send(line, value)
        return self.readline()

    def _blocks(self, request):
        """Read VALUE blocks (optionally preceded by SIBLING lines) up to END.
        [{'key','flags','data','token', and for lget 'vv','ts','state'}]."""
        out = []
        pending = None
        while True:
            ln = self.readline()
            if ln == "END":
                if pending is not None:
                    raise ReplyError("SIBLING line without VALUE: %r" % pending, request)
                return out
            if is_error(ln):
                raise ReplyError(ln, request)
            f = ln.split(" ")
            if f[0] == "SIBLING" and len(f) == 4:
                pending = {"vv": f[1], "ts": int(f[2]), "state": f[3]}
                continue
            if f[0] != "VALUE" or len(f) not in (4, 5):
                raise ReplyError("unexpected line %r" % ln, request)
            data = self.readexact(int(f[3]) + 2)
            if data[-2:] != b"\r\n":
                raise ReplyError("data block not terminated by CRLF", request)
            blk = {"key": f[1], "flags": int(f[2]), "data": data[:-2],
                   "token": f[4] if len(f) == 5 else None}
            if pending is not None:
                blk.update(pending)
                pending = None
            out.append(blk)

    def get(self, keys, opts=""):
        """{key: data} for the keys found; raises ReplyError on an error reply."""
        if isinstance(keys, str):
            keys = [keys]
        line = "get %s%s" % (" ".join(keys), (" " + opts) if opts else "")
        self.send(line)
        blocks = self._blocks(line)
        out = {}
        for b in blocks:
            if b["key"] in out:
                raise ReplyError("key %s returned twice" % b["key"], line)
            out[b["key"]] = b["data"]
        return out

    def get_reply(self, key, opts=""):
        """For error checks: the first reply line of a single-key get
        (the rest of a successful reply is consumed)."""
        line = "get %s%s" % (key, (" " + opts) if opts else "")
        self.send(line)
        ln = self.readline()
        if is_error(ln) or ln == "END":
            return ln
        f = ln.split(" ")
        self.readexact(int(f[3]) + 2)
        rest = self.readline()
        assert rest == "END", "%r: after the value got %r" % (line, rest)
        return ln

    def siblings(self, key, opts=""):
        line = "siblings %s%s" % (key, (" " + opts) if opts else "")
        self.send(line)
        return self._blocks(line)

    def lget(self, key):
        line = "lget %s" % key
        self.send(line)
        blocks = self._blocks(line)
        for b in blocks:
            if "state" not in b:
                raise ReplyError("lget VALUE without SIBLING line", line)
        return blocks


def qconn(node, timeout=5.0):
    return QConn(node.client_port, timeout=timeout)


def lget(node, key):
    with qconn(node) as c:
        return c.lget(key)


def live_values(node, key):
    """The data of every live sibling in node's local replica."""
    return [b["data"] for b in lget(node, key) if b["state"] == "live"]


def stat_int(node, name):
    return int(node.stats()[name])


def stat_sum(nodes, name):
    return sum(stat_int(n, name) for n in nodes if n.alive())


# --------------------------------------------------------------------------
# Cluster life cycle
# --------------------------------------------------------------------------

def converged(nodes):
    return all_full_view(nodes) and rings_agree(nodes, [n.name for n in nodes])


def start_converged(cluster, count, settings=None, timeout=CONVERGE_LIMIT):
    """Start count nodes with extra INI settings ({'section.key': value}) and
    wait until each lists all up and all rings agree.  Returns (nodes, secs)."""
    nodes, t0 = cluster.start(count, settings=settings or {})
    wait_for(lambda: converged(nodes), timeout, "%d nodes to converge" % count,
             lambda: describe(nodes, [n.name for n in nodes], ring=True))
    return nodes, time.monotonic() - t0


def wait_seen(observers, name, state, everything, timeout=DETECT_LIMIT):
    wait_for(lambda: all(sees(o, name, state) for o in observers), timeout,
             "%s to be seen %s by %s" % (name, state, [o.name for o in observers]),
             lambda: describe(everything))


def wait_all_up(nodes, timeout=CONVERGE_LIMIT):
    wait_for(lambda: all_full_view(nodes), timeout, "every node to see every node up",
             lambda: describe(nodes))


def peer_drop(node, on):
    line = "debug peer_drop %s" % ("on" if on else "off")
    reply = node.cmd(line)
    assert reply == "OK", "%s: %r answered %r" % (node.name, line, reply)


def stop_graceful(node, timeout=STOP_LIMIT):
    """SIGTERM by PID, wait for a clean exit (status 0)."""
    os.kill(node.pid, signal.SIGTERM)
    rc = node.proc.wait(timeout)
    assert rc == 0, "%s exited with %s after SIGTERM; log:\n%s" % (node.name, rc, node.log_tail())


def restart(node):
    """Start again with the same ports, config and data dir; wait until it
    accepts connections."""
    node.launch()
    node.wait_ready()
    return node
