"""Admission control under overload (issue 13, items 1 and 2; server/admit.h).

A request that cannot start within server.queue_timeout_ms of its arrival,
or beyond server.max_inflight requests in flight, is answered
`SERVER_ERROR busy` at once without being run; replica requests from peers
past the per-turn bound get a busy answer that the peer's coordinator counts
as a failed replica (never a wait for its deadline); `stats` counts every
refusal by reason; a flood of frames from one peer is bounded and counted.

The slow work is made deterministic with `debug read_stall on` (a replica
that leaves reads from peers unanswered) and r=all, so a read takes exactly
cluster.request_timeout_ms.  Time bounds are far above what the behaviour
needs and far below what its absence would take; nothing here measures
throughput.
"""

import socket
import subprocess
import time

import pytest

from clusterlib import QKV_BIN, ClusterNode, wait_for
from quorumlib import qconn, start_converged, stat_int, stat_sum
from test_peer_input import REQUEST, RESPONSE, FrameReader, envelope, mp, mp_decode, peer_connect

BUSY = "SERVER_ERROR busy"
MSG_REPLICA_GET = 5
EBUSY = 16


def send_raw(node, data, timeout=20.0):
    c = qconn(node, timeout=timeout)
    c.sock.sendall(data)
    return c


@pytest.mark.timeout(90)
def test_pipelined_requests_that_waited_too_long_are_shed(cluster):
    """Requests pipelined behind a slow one are read while it runs; once it
    is answered (after request_timeout_ms) they have waited longer than
    queue_timeout_ms and are answered busy at once, a set's data block is
    swallowed, and commands exempt from admission still run."""
    nodes, _ = start_converged(cluster, 3, settings={"cluster.request_timeout_ms": 800,
                                                     "server.queue_timeout_ms": 100})
    n1, n3 = nodes[0], nodes[2]
    assert n3.cmd("debug read_stall on") == "OK"
    shed0 = stat_int(n1, "shed_queue_timeout")
    gets = 10
    pipeline = b"".join(b"get slow%d r=all\r\n" % i for i in range(gets))
    pipeline += b"set pipelined 0 0 5\r\nhello\r\nversion\r\n"
    t0 = time.monotonic()
    c = send_raw(n1, pipeline)
    try:
        first = c.readline()
        assert first.startswith("SERVER_ERROR quorum not reached"), first
        replies = [c.readline() for _ in range(gets)]   # gets 2..10 and the set
        version = c.readline()
    finally:
        c.close()
    elapsed = time.monotonic() - t0
    assert n3.cmd("debug read_stall off") == "OK"
    assert replies == [BUSY] * gets, replies
    assert version.startswith("VERSION "), version
    # without shedding: ten reads of 0.8 s each, one after the other
    assert elapsed < 4.0, "shed requests took %.1fs" % elapsed
    assert stat_int(n1, "shed_queue_timeout") - shed0 == gets
    # nothing shed was run: the set never happened
    with qconn(n1) as q:
        assert q.get("pipelined", "r=all") == {}
        # and the node serves normally right after
        assert q.set("after", b"ok") == "STORED"
        assert q.get("after") == {"after": b"ok"}


@pytest.mark.timeout(90)
def test_idle_connection_is_not_a_standing_queue(cluster):
    """A connection that sat idle (its last request answered long ago) gets
    the full queue_timeout_ms for a request that waits behind a slow one:
    only a queue that has not been empty for queue_timeout_ms is held to
    the 5 ms bound (admit.h), and an idle connection's queue was empty
    until its new bytes arrived, however long ago the node last looked.
    (It was taken for a standing queue: every request that waited more
    than 5 ms behind another after an idle spell was refused busy.)"""
    nodes, _ = start_converged(cluster, 3, settings={"cluster.request_timeout_ms": 40,
                                                     "server.queue_timeout_ms": 1000})
    n1, n3 = nodes[0], nodes[2]
    with qconn(n1) as q:
        assert q.set("fast", b"v", "w=all") == "STORED"
    assert n3.cmd("debug read_stall on") == "OK"
    try:
        shed0 = stat_int(n1, "shed_queue_timeout")
        c = qconn(n1, timeout=10.0)
        try:
            for _ in range(3):
                assert c.get("fast", "r=1") == {"fast": b"v"}
                time.sleep(1.5)  # idle: longer than queue_timeout_ms
                # the slow read takes request_timeout_ms (40 ms): the get
                # behind it waits that long, over 5 ms, under 1000 ms
                c.sock.sendall(b"get slow r=all\r\nget fast r=1\r\n")
                first = c.readline()
                assert first.startswith("SERVER_ERROR quorum not reached"), first
                second = c.readline()
                assert second != BUSY, "a request behind a slow one on an idle connection was shed"
                assert second == "VALUE fast 0 1", second
                assert c.readexact(3) == b"v\r\n"
                assert c.readline() == "END"
        finally:
            c.close()
        assert stat_int(n1, "shed_queue_timeout") == shed0
    finally:
        assert n3.cmd("debug read_stall off") == "OK"


@pytest.mark.timeout(90)
def test_requests_beyond_max_inflight_are_refused_at_once(cluster):
    nodes, _ = start_converged(cluster, 3, settings={"cluster.request_timeout_ms": 3000,
                                                     "server.max_inflight": 2})
    n1, n3 = nodes[0], nodes[2]
    assert n3.cmd("debug read_stall on") == "OK"
    shed0 = stat_int(n1, "shed_inflight")
    slow = []
    try:
        for i in range(2):
            slow.append(send_raw(n1, b"get held%d r=all\r\n" % i))
        wait_for(lambda: stat_int(n1, "inflight") == 2, 5, "two requests in flight on n1")
        t0 = time.monotonic()
        c = send_raw(n1, b"get third r=all\r\nversion\r\n")
        try:
            assert c.readline() == BUSY
            assert c.readline().startswith("VERSION ")
        finally:
            c.close()
        refused_after = time.monotonic() - t0
        # the two held ones are still waiting for their 3 s deadline
        for s in slow:
            s.sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.sock.recv(1, socket.MSG_PEEK)
            s.sock.setblocking(True)
        assert refused_after < 1.5, "busy answer took %.1fs" % refused_after
        for s in slow:
            assert s.readline().startswith("SERVER_ERROR quorum not reached")
    finally:
        for s in slow:
            s.close()
        n3.cmd("debug read_stall off")
    assert stat_int(n1, "shed_inflight") - shed0 == 1
    st = n1.stats()
    assert int(st["inflight"]) == 0 and int(st["inflight_peak"]) >= 2
    with qconn(n1) as q:
        assert q.set("k", b"v", "w=all") == "STORED"
        assert q.get("k", "r=all") == {"k": b"v"}


@pytest.mark.timeout(90)
def test_busy_replica_counts_as_failed_and_never_hangs(cluster):
    """A multi-get's window sends 32 replica reads to each peer in one
    write; with max_inflight = 1 each peer serves one per loop turn and
    answers the rest busy.  The coordinator counts those as failed replicas
    and, at r=all, answers the quorum error at once instead of waiting for
    the 5 s deadline."""
    nodes, _ = start_converged(cluster, 3, settings={"cluster.request_timeout_ms": 5000,
                                                     "server.max_inflight": 1,
                                                     "cluster.speculative_retry_ms": 0})
    n1 = nodes[0]
    keys = ["k%02d" % i for i in range(32)]
    busy0 = stat_int(n1, "coord_replica_busy")
    shed0 = stat_sum(nodes[1:], "shed_replica")
    t0 = time.monotonic()
    with qconn(n1, timeout=20.0) as c:
        c.send("get %s r=all" % " ".join(keys))
        line = c.readline()
    elapsed = time.monotonic() - t0
    assert line.startswith("SERVER_ERROR quorum not reached"), line
    assert elapsed < 2.5, "a busy replica was waited for (%.1fs)" % elapsed
    assert stat_int(n1, "coord_replica_busy") > busy0
    assert stat_sum(nodes[1:], "shed_replica") > shed0
    assert stat_int(n1, "replica_errors") == 0     # busy is not an error
    # one request per turn is within the bound: the cluster serves normally
    with qconn(n1) as c:
        assert c.set("one", b"1", "w=all") == "STORED"
        assert c.get("one", "r=all") == {"one": b"1"}


@pytest.mark.timeout(90)
def test_forwarded_write_beyond_max_inflight_is_busy(cluster):
    """An incr runs at its key's first owner; one sent to another node is
    forwarded there (COORD_WRITE).  With max_inflight = 1 and n2 busy with
    one slow read, the incrs whose first owner is n2 are refused by n2
    (shed_forwarded) and their client gets SERVER_ERROR busy at once; the
    others run."""
    nodes, _ = start_converged(cluster, 3, settings={"cluster.request_timeout_ms": 3000,
                                                     "server.max_inflight": 1})
    n1, n2, n3 = nodes
    assert n3.cmd("debug read_stall on") == "OK"
    held = send_raw(n2, b"get held r=all\r\n")
    replies = []
    try:
        wait_for(lambda: stat_int(n2, "inflight") == 1, 5, "a request in flight on n2")
        t0 = time.monotonic()
        for i in range(20):
            with qconn(n1, timeout=20.0) as c:
                replies.append(c.cmd("incr fwd%d 1" % i))
        elapsed = time.monotonic() - t0
        assert held.readline().startswith("SERVER_ERROR quorum not reached")
    finally:
        held.close()
        n3.cmd("debug read_stall off")
    busy = replies.count(BUSY)
    assert busy > 0, replies
    assert all(r in (BUSY, "NOT_FOUND") for r in replies), replies
    assert stat_int(n2, "shed_forwarded") == busy
    assert elapsed < 2.5, "refused writes waited (%.1fs)" % elapsed
    with qconn(n1) as c:
        assert c.set("fwd-after", b"1") == "STORED"
        for i in range(20):
            assert c.cmd("incr fwd%d 1" % i) == "NOT_FOUND"


@pytest.mark.timeout(60)
def test_flood_of_replica_requests_from_one_peer_is_bounded(cluster):
    """Bad input: 2000 replica reads from one peer in one burst.  Every one
    is answered (served or busy), the busy ones are counted, and the node
    stays healthy."""
    nodes, _ = start_converged(cluster, 3, settings={"server.max_inflight": 8})
    target = nodes[0]
    total = 2000
    shed0 = stat_int(target, "shed_replica")
    body = mp([b"flood-key", ""])
    s = peer_connect(target)
    served = busy = 0
    try:
        s.sendall(b"".join(envelope(MSG_REPLICA_GET, REQUEST, 5000 + i, body)
                           for i in range(total)))
        reader = FrameReader(s)
        seen = set()
        while len(seen) < total:
            obj, _ = mp_decode(reader.read(10.0))
            if not (isinstance(obj, list) and len(obj) == 6 and obj[1] == MSG_REPLICA_GET):
                continue
            assert obj[2] == RESPONSE and 5000 <= obj[3] < 5000 + total, obj
            seen.add(obj[3])
            code = obj[5][0]
            if code == -EBUSY:
                busy += 1
            else:
                assert code == 1, obj   # missing: the key was never written
                served += 1
    finally:
        s.close()
    assert busy > 0 and served > 0, (busy, served)
    assert stat_int(target, "shed_replica") - shed0 == busy
    assert target.alive() and target.cmd("version").startswith("VERSION ")
    assert stat_int(target, "peer_bad_frames") == 0
    with qconn(target) as c:
        assert c.set("after-flood", b"x") == "STORED"


def run_with_conf(tmp_path, extra):
    node = ClusterNode(tmp_path / "cfg", "cfg")
    text = node.conf_text() + extra
    with open(node.conf_path, "w") as f:
        f.write(text)
    lineno = len(text.splitlines())
    r = subprocess.run([QKV_BIN, "-c", node.conf_path], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=20)
    return lineno, r


@pytest.mark.parametrize("line", ["max_inflight = 0", "max_inflight = many",
                                  "queue_timeout_ms = -1", "queue_timeout_ms = 1e3",
                                  "queue_timeout_ms = 600001"])
def test_bad_admission_config_names_the_line(tmp_path, line):
    lineno, r = run_with_conf(tmp_path, "[server]\n%s\n" % line)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode != 0, "accepted %r" % line
    assert ("node.ini:%d:" % lineno) in err and line.split()[0] in err, err
    assert len(err.strip().splitlines()) == 1, err


def test_stats_list_admission_counters(cluster):
    nodes, _ = cluster.start(1, settings={"server.queue_timeout_ms": 0,
                                          "server.max_inflight": 5})
    st = nodes[0].stats()
    for key in ("shed_queue_timeout", "shed_inflight", "shed_forwarded", "shed_replica",
                "coord_replica_busy", "background_deferred", "inflight", "inflight_peak"):
        assert key in st, key


@pytest.mark.timeout(90)
def test_open_loop_bench_counts_busy_apart(cluster, tmp_path):
    """quorumkv-bench --rate against a node whose reads all wait out their
    deadline (r=all, a stalled replica): requests keep leaving on schedule,
    the ones queued behind a slow read are answered busy at once (counted
    apart from the quorum errors), and every one is accounted for."""
    from clientlib import QKV_BENCH, run_tool, seeds
    nodes, _ = start_converged(cluster, 3, settings={"cluster.request_timeout_ms": 300})
    assert nodes[2].cmd("debug read_stall on") == "OK"
    js = tmp_path / "b.json"
    try:
        rc, out, err = run_tool([QKV_BENCH, "--protocol", "memcached", "-s", seeds(nodes[:1]),
                                 "-t", "1", "--warmup", "0", "-k", "100", "-W", "0", "-r", "all",
                                 "--rate", "200", "--duration", "1", "--no-progress",
                                 "--json", str(js)], timeout=60)
    finally:
        nodes[2].cmd("debug read_stall off")
    assert rc == 0, err
    import json
    s = json.load(open(js))
    e = s["errors"]
    assert s["sent"] == s["ops"] == 200, s
    assert e["quorum"] > 0 and e["busy"] > 0 and e["quorum"] + e["busy"] == e["total"] == 200, s
    assert s["successes"] == 0 and s["goodput"] == 0
    # a shed request waits at most for the slow one ahead of it (0.3 s)
    assert s["error_latency_us"]["p99"] < 2000000, s
    assert stat_int(nodes[0], "shed_queue_timeout") == e["busy"]
