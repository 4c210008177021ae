"""Reads ask R replicas, not all N (issue 12, item 1): this node's own
replica first, the others in preference-list order, a slow replica backed
up by the next one after cluster.speculative_retry_ms, and a
cluster.read_repair_chance fraction of reads asking all N and repairing.

Three quorumkvd processes, n=3; hinted handoff and anti-entropy off, so
only reads move data between replicas here.
"""

import time

import pytest

from clusterlib import wait_for
from quorumlib import lget, live_values, peer_drop, qconn, start_converged, stat_int, wait_all_up, wait_seen

QUIET = {"handoff.enabled": "false", "antientropy.enabled": "false"}


def peer_gets(node):
    """REPLICA_GET-and-other frames this node has sent so far."""
    return stat_int(node, "peer_frames_out")


def stale_n3(nodes, key, value):
    """Leave n3 without key: cut it off, write through n1 with w=2, heal."""
    n1, _, n3 = nodes
    peer_drop(n3, True)
    wait_seen([n1, nodes[1]], n3.name, "down", nodes)
    try:
        with qconn(n1) as c:
            assert c.set(key, value, "w=2") == "STORED"
    finally:
        peer_drop(n3, False)
    wait_all_up(nodes)
    assert lget(n3, key) == []


@pytest.mark.timeout(60)
def test_read_repair_chance_1_repairs_on_every_read(cluster):
    nodes, _ = start_converged(cluster, 3, dict(QUIET, **{"cluster.read_repair_chance": "1"}))
    stale_n3(nodes, "rr1", b"fresh")
    # an r=1 read on n2, which holds the key: at chance 1 it still asks all
    with qconn(nodes[1]) as c:
        assert c.get("rr1", "r=1") == {"rr1": b"fresh"}
    wait_for(lambda: live_values(nodes[2], "rr1") == [b"fresh"], 10.0,
             "an r=1 read at read_repair_chance=1 to repair n3")


@pytest.mark.timeout(60)
def test_read_repair_chance_0_reads_only_r_replicas(cluster):
    nodes, _ = start_converged(cluster, 3, dict(QUIET, **{"cluster.read_repair_chance": "0"}))
    n1, n2, n3 = nodes
    stale_n3(nodes, "rr0", b"fresh")
    rr = stat_int(n2, "read_repairs")
    out = peer_gets(n2)
    with qconn(n2) as c:
        for _ in range(20):  # r=1 on an owner: its own replica, no message
            assert c.get("rr0", "r=1") == {"rr0": b"fresh"}
    assert peer_gets(n2) - out < 20, "r=1 reads on an owner sent peer frames"
    with qconn(n3) as c:  # n3's own replica is stale: r=1 there says so
        assert c.get("rr0", "r=1") == {}
    assert stat_int(n2, "read_repairs") == rr
    assert lget(n3, "rr0") == [], "a read at read_repair_chance=0 repaired n3"
    # r=2 through n3: its own (stale) replica and one other; the merge is
    # fresh, and the stale replica that was asked is repaired
    with qconn(n3) as c:
        assert c.get("rr0", "r=2") == {"rr0": b"fresh"}
    wait_for(lambda: live_values(n3, "rr0") == [b"fresh"], 10.0, "n3 repaired by the r=2 read it coordinated")


@pytest.mark.timeout(60)
def test_slow_replica_is_backed_up_by_speculative_retry(cluster):
    nodes, _ = start_converged(cluster, 3, dict(QUIET, **{"cluster.read_repair_chance": "0",
                                                          "cluster.speculative_retry_ms": "20",
                                                          "cluster.request_timeout_ms": "5000"}))
    n1, n2, n3 = nodes
    keys = ["spec-%d" % i for i in range(40)]
    with qconn(n1) as c:
        for k in keys:
            assert c.set(k, k.encode(), "w=all") == "STORED"
    spec0 = stat_int(n1, "coord_speculative_reads")
    # n3 stays up (gossip goes on) but leaves replica reads unanswered.
    # Reads through n1 at r=2 that asked n3 second must not wait for the
    # 5 s deadline: the next replica is asked after 20 ms.
    assert n3.cmd("debug read_stall on") == "OK"
    try:
        t0 = time.monotonic()
        with qconn(n1, timeout=20.0) as c:
            for k in keys:
                assert c.get(k, "r=2") == {k: k.encode()}
        elapsed = time.monotonic() - t0
    finally:
        assert n3.cmd("debug read_stall off") == "OK"
    spec = stat_int(n1, "coord_speculative_reads") - spec0
    print("RESULT speculative reads=%d of %d elapsed=%.2fs" % (spec, len(keys), elapsed))
    assert spec > 0, "no read was backed up although n3 answered none"


@pytest.mark.timeout(90)
def test_multi_get_mixing_local_and_remote_keys_answers_in_order(cluster):
    # n=2 of 3 nodes: through n1 at r=1 some keys are n1's own (answered at
    # once from its replica, without a copy) and some are not (asked of a
    # peer); the VALUE blocks still come in the line's order, each with its
    # own value, misses left out, and the same in windows of many keys
    nodes, _ = cluster.start(3, settings=dict(QUIET, **{"cluster.n": "2", "cluster.r": "1",
                                                       "cluster.w": "2"}))
    wait_all_up(nodes)
    n1 = nodes[0]
    keys = ["mix-%03d" % i for i in range(150)]
    with qconn(nodes[1]) as c:
        for i, k in enumerate(keys):
            if i % 5 != 3:  # every fifth key stays missing
                assert c.set(k, b"value-%d-" % i + b"x" * (i * 7)) == "STORED"
    local0 = peer_gets(n1)
    with qconn(n1) as c:
        for opts in ("", "r=1"):
            line = "get %s%s" % (" ".join(keys), (" " + opts) if opts else "")
            c.send(line)
            blocks = c._blocks(line)
            want = [k for i, k in enumerate(keys) if i % 5 != 3]
            assert [b["key"] for b in blocks] == want
            for b in blocks:
                i = int(b["key"][4:])
                assert b["data"] == b"value-%d-" % i + b"x" * (i * 7)
    sent = peer_gets(n1) - local0
    # some keys were n1's own (no frame) and some were not (a frame each)
    assert 0 < sent < 2 * len(keys), sent
