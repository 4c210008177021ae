"""Hostile and heavy clients: one bad connection must never hurt another, and
the server must neither hang, crash nor grow without bound."""

import errno
import random
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Conn, ConnectionClosed, wait_for


def drain_nonblocking(sock):
    """Discard whatever the server has sent; False once it closed the socket."""
    while True:
        try:
            data = sock.recv(1 << 16, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except (ConnectionResetError, BrokenPipeError):
            return False
        if not data:
            return False


def send_bounded(sock, data, timeout):
    """Send as much of data as the server takes within timeout (it may stop
    reading or close); returns the number of bytes sent."""
    sock.setblocking(False)
    sent, deadline = 0, time.monotonic() + timeout
    try:
        while sent < len(data):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            _, w, _ = select.select([], [sock], [], min(left, 0.2))
            if not w:
                if not drain_nonblocking(sock):
                    break
                continue
            try:
                sent += sock.send(data[sent:sent + 65536])
            except BlockingIOError:
                continue
            except (ConnectionResetError, BrokenPipeError):
                break
            if not drain_nonblocking(sock):
                break
    finally:
        sock.setblocking(True)
    return sent


def junk_chunks(rng):
    words = [b"get", b"set", b"gets", b"cas", b"incr", b"delete", b"stats", b"touch", b"gat",
             b"0", b"1", b"-1", b"99999999999999999999", b"noreply", b"\x00", b"\xff\xfe",
             b"VALUE", b"r=all", b"w=7", b"lget", b"siblings"]
    for i in range(300):
        kind = rng.randrange(4)
        if kind == 0:       # raw bytes, NULs included
            yield rng.randbytes(rng.randrange(1, 4096))
        elif kind == 1:     # token soup lines (never 'quit', never a huge declared length that parses)
            yield b" ".join(rng.choice(words) for _ in range(rng.randrange(1, 12))) + rng.choice([b"\r\n", b"\n", b"\r", b""])
        elif kind == 2:     # NUL-heavy
            yield b"\x00" * rng.randrange(1, 2000) + b"\r\n"
        else:               # junk with line breaks sprinkled in
            yield b"\r\n".join(rng.randbytes(rng.randrange(0, 300)) for _ in range(rng.randrange(1, 20)))
    yield b"x" * (1 << 20)  # a 1 MB line without a newline


def test_junk_on_one_connection_does_not_hurt_another(fresh_server):
    rng = random.Random(20240613)
    good = fresh_server.conn()
    bad = fresh_server.conn()
    reconnects = 0
    try:
        for i, chunk in enumerate(junk_chunks(rng)):
            send_bounded(bad.sock, chunk, timeout=2.0)
            if not drain_nonblocking(bad.sock):
                bad.close()
                reconnects += 1
                bad = fresh_server.conn()
            if i % 10 == 0:
                k = "good-%d" % i
                assert good.set(k, b"value-%d" % i) == b"STORED"
                assert good.get(k) == b"value-%d" % i
                assert fresh_server.alive(), "server died on junk (chunk %d)" % i
        assert good.cmd("version").startswith(b"VERSION ")
        assert fresh_server.alive()
        # new connections are still served too
        with fresh_server.conn() as c:
            assert c.get("good-0") == b"value-0"
    finally:
        good.close()
        bad.close()


def _error_or_close(c):
    """The server answers with an error line or closes: never a hang."""
    try:
        line = c.readline(timeout=5)
    except (ConnectionClosed, ConnectionResetError, BrokenPipeError):
        return "closed"
    assert line.split(b" ")[0] in (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"), line[:200]
    return "error"


def test_overlong_command_line_with_newline(fresh_server):
    with fresh_server.conn() as c:
        line = b"set " + b"k" * 65536 + b" 0 0 1\r\na\r\n"
        try:
            c.send(line)
        except (ConnectionResetError, BrokenPipeError):
            pass
        _error_or_close(c)
    assert fresh_server.alive()
    with fresh_server.conn() as c:
        assert c.cmd("version").startswith(b"VERSION ")


def test_one_megabyte_line_without_newline(fresh_server):
    with fresh_server.conn() as c:
        # (memcached waits for the rest of an over-long *get* line; any other
        # command line over its limit is an error)
        sent = send_bounded(c.sock, b"set " + b"k" * (1 << 20), timeout=5)
        assert sent > 0
        _error_or_close(c)
    assert fresh_server.alive()
    with fresh_server.conn() as c:
        assert c.cmd("version").startswith(b"VERSION ")


@pytest.mark.parametrize("cut", [1, 899, 900, 901, 1800, 3000])
def test_commands_cut_anywhere_across_reads(fresh_server, cut):
    # a first read of a turn is small (server/conn.c: CONN_READ_FIRST) and
    # the rest follows in bigger ones: lines and data blocks that arrive in
    # pieces, with a pause between, cross the read and buffer boundaries
    # anywhere and are answered exactly as if sent at once
    keys = [b"cut-%04d-%s" % (i, b"k" * 40) for i in range(60)]
    stream = b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, 300 + i, b"v" * (300 + i))
                      for i, k in enumerate(keys))
    stream += b"get " + b" ".join(keys) + b"\r\n" + b"get " + keys[7] + b"\r\n"
    with fresh_server.conn() as c:
        for off in range(0, len(stream), cut):
            c.send(stream[off:off + cut])
            if off // cut % 7 == 0:
                time.sleep(0.002)
        for _ in keys:
            assert c.readline() == b"STORED"
        for i, k in enumerate(keys + [keys[7]]):
            n = 300 + (i if i < len(keys) else 7)
            if i == len(keys):
                assert c.readline() == b"END"
            assert c.readline() == b"VALUE %s 0 %d" % (k, n)
            assert c.read_exact(n + 2) == b"v" * n + b"\r\n"
        assert c.readline() == b"END"


def test_many_connections_each_set_and_get(fresh_server):
    count = 500
    conns = []
    try:
        for i in range(count):
            conns.append(fresh_server.conn(timeout=15))

        def work(i):
            c = conns[i]
            k = "conn-%d" % i
            v = b"v" * (i % 100) + b"%d" % i
            assert c.set(k, v) == b"STORED"
            assert c.get(k) == v
            return True

        with ThreadPoolExecutor(max_workers=50) as ex:
            assert all(ex.map(work, range(count), timeout=60))
        st = conns[0].stats()
        assert int(st["curr_connections"]) >= count
        # the key of every connection is readable from any other
        assert conns[-1].get("conn-0") == b"0"
        assert conns[0].get("conn-%d" % (count - 1)) == b"v" * ((count - 1) % 100) + b"%d" % (count - 1)
    finally:
        for c in conns:
            c.close()
    assert fresh_server.alive()


@pytest.mark.timeout(90)
def test_slow_reader_does_not_blow_up_memory(fresh_server):
    big = random.Random(7).randbytes(1000 * 1000)
    with fresh_server.conn() as c:
        assert c.set("big", big) == b"STORED"
        assert c.get("big") == big
    rss_before = fresh_server.rss_kb()

    # ask for ~600 MB of replies and read none of them
    slow = Conn(fresh_server.host, fresh_server.port, rcvbuf=4096)
    try:
        sent = 0
        req = b"get big\r\n" * 600
        slow.sock.setblocking(False)
        deadline = time.monotonic() + 5
        while sent < len(req) and time.monotonic() < deadline:
            _, w, _ = select.select([], [slow.sock], [], 0.2)
            if w:
                try:
                    sent += slow.sock.send(req[sent:])
                except BlockingIOError:
                    pass
        slow.sock.setblocking(True)

        peak = rss_before
        t_end = time.monotonic() + 3
        while time.monotonic() < t_end:
            peak = max(peak, fresh_server.rss_kb())
            time.sleep(0.1)

        # others are still served meanwhile, big values included
        with fresh_server.conn(timeout=10) as c:
            assert c.set("other", b"fine") == b"STORED"
            assert c.get("other") == b"fine"
            assert c.get("big") == big
        peak = max(peak, fresh_server.rss_kb())
        grown_mb = (peak - rss_before) / 1024
        assert grown_mb < 200, "RSS grew by %.0f MB for one slow reader (sent %d get requests)" % (grown_mb, sent // 9)
    finally:
        slow.close()
    assert fresh_server.alive()
    with fresh_server.conn() as c:
        assert c.cmd("version").startswith(b"VERSION ")


def test_client_disconnecting_mid_value_is_harmless(fresh_server):
    for i in range(20):
        s = socket.create_connection((fresh_server.host, fresh_server.port), timeout=5)
        s.sendall(b"set half%d 0 0 100000\r\n" % i + b"x" * 5000)
        s.close()
    with fresh_server.conn() as c:
        assert c.get_multi(*["half%d" % i for i in range(20)]) == []
        assert c.cmd("version").startswith(b"VERSION ")
    assert fresh_server.alive()
