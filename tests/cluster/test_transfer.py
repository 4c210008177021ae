"""Membership changes with data transfer (docs/membership.md): a node joins
a cluster that holds data, one leaves, a dead one is removed, a join
survives a kill -9 of the joining node, and a second change during a change
is refused.  Every test runs a steady writer at W=2 through the cluster and
then checks what a user would: every acknowledged write reads back with
r=all, every key is held by exactly N nodes (nobody keeps data it does not
own, nobody lacks data it owns), and the new node holds its share.
"""

import re
import shutil
import threading
import time

import pytest

from clusterlib import ClusterNode, describe, wait_for
from quorumlib import qconn, stat_int, wait_all_up
from test_peer_input import REQUEST, RESPONSE, FrameReader, envelope, mp, mp_decode, peer_connect

MSG_XFER_PULL = 16
STALE_EPOCH = 2

N = 2
SETTINGS = {"cluster.n": N, "cluster.r": 2, "cluster.w": 2,
            "antientropy.interval_ms": 2000}
KEYS = 10000
CHANGE_LIMIT = 90.0   # s: a join or leave of 10k keys on a busy 2-core machine
CLEAN_LIMIT = 60.0    # s: old owners hand over and drop what they no longer own
# Share of the keys the new node must hold: its exact share of the ring
# (from `ring`: the width of the ranges it replicates) within 10% either
# way.  10k uniformly hashed keys give a standard deviation of about 1% of
# that share, so 10% fails only on a real fault.
SHARE_TOLERANCE = 0.10


def load(node, keys, value_of, batch=500):
    """Pipelined sets (w=2) of keys through node; every one must end
    STORED.  A deep pipeline runs one set at a time and may outwait
    server.queue_timeout_ms on a slow (sanitizer) build: a `SERVER_ERROR
    busy` answer is the node's "not now" and its set is sent again, as a
    client would; any other answer fails."""
    with qconn(node, timeout=30.0) as c:
        todo = list(keys)
        for _ in range(20):
            busy = []
            for i in range(0, len(todo), batch):
                chunk = todo[i:i + batch]
                c.sock.sendall(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k.encode(), len(value_of(k)),
                                                                          value_of(k)) for k in chunk))
                for k in chunk:
                    ln = c.readline()
                    if ln == "SERVER_ERROR busy":
                        busy.append(k)
                    else:
                        assert ln == "STORED", "set %s answered %r" % (k, ln)
            if not busy:
                return
            todo = busy
            time.sleep(0.2)
        raise AssertionError("%d sets still answered busy after 20 rounds" % len(todo))


def value_of(key, size=40):
    v = ("%s=" % key).encode()
    return (v * (size // len(v) + 1))[:size]


class Writer:
    """Writes new keys w:<i> one after the other, round robin through the
    given nodes, at W=2; remembers what was acknowledged and every error
    reply (a client error fails the test)."""

    def __init__(self, nodes, prefix="w"):
        self.nodes = list(nodes)
        self.prefix = prefix
        self.acked = {}
        self.errors = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        conns = [qconn(n, timeout=10.0) for n in self.nodes]
        i = 0
        try:
            while not self.stop.is_set():
                key = "%s:%d" % (self.prefix, i)
                val = value_of(key)
                c = conns[i % len(conns)]
                try:
                    reply = c.set(key, val)
                except Exception as e:  # noqa: BLE001 - any failure is a client error
                    reply = "EXCEPTION %r" % e
                if reply == "STORED":
                    self.acked[key] = val
                else:
                    self.errors.append((key, reply))
                i += 1
                time.sleep(0.002)
        finally:
            for c in conns:
                c.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.thread.join(30)


def read_all(node, keys, batch=100):
    """{key: data} read with r=all through node."""
    out = {}
    with qconn(node, timeout=30.0) as c:
        for i in range(0, len(keys), batch):
            out.update(c.get(keys[i:i + batch], "r=all"))
    return out


def holders(nodes, keys, batch=500):
    """{key: set of node names whose local replica has a live value}."""
    out = {k: set() for k in keys}
    for n in nodes:
        with qconn(n, timeout=30.0) as c:
            for i in range(0, len(keys), batch):
                chunk = keys[i:i + batch]
                c.sock.sendall(b"".join(b"lget %s\r\n" % k.encode() for k in chunk))
                for k in chunk:
                    blocks = c._blocks("lget %s" % k)
                    if any(b["state"] == "live" for b in blocks):
                        out[k].add(n.name)
    return out


def misplaced(nodes, keys):
    """Keys not held by exactly N of nodes: {key: holders}."""
    h = holders(nodes, keys)
    return {k: v for k, v in h.items() if len(v) != N}


def ring_share(node, name):
    """Fraction of the ring whose preference list includes name."""
    total = 0
    for start, end, owners in node.ring():
        width = (end - start) % (1 << 64)
        if width == 0 and start == end:
            width = 1 << 64 if len(node.ring()) == 1 else 0
        if name in owners:
            total += width
    return total / float(1 << 64)


def members_state(node):
    return {k: v["state"] for k, v in node.members().items()}


def check_data(nodes, keys, acked):
    """Every acknowledged value reads back with r=all, every key is on
    exactly N nodes (once the old owners have handed over and dropped)."""
    got = read_all(nodes[0], keys)
    lost = [k for k in keys if got.get(k) != acked[k]]
    assert not lost, "%d acknowledged writes do not read back, e.g. %s" % (len(lost), lost[:5])
    wait_for(lambda: not misplaced(nodes, keys), CLEAN_LIMIT,
             "every key to be held by exactly %d nodes" % N,
             lambda: "misplaced: %s\n%s" % (list(misplaced(nodes, keys).items())[:5],
                                            describe(nodes)))


def wait_up_everywhere(nodes, name, limit=CHANGE_LIMIT):
    wait_for(lambda: all(members_state(n).get(name) == "up" for n in nodes), limit,
             "%s to be up on every node" % name, lambda: describe(nodes))


def start_n2(cluster, count):
    """count founding nodes at N=2, once every one sees every one up."""
    nodes, _ = cluster.start(count, settings=SETTINGS)
    wait_all_up(nodes)
    return nodes, None


@pytest.fixture
def three(cluster):
    nodes, _ = start_n2(cluster, 3)
    return nodes


def preload(node):
    keys = ["k:%d" % i for i in range(KEYS)]
    load(node, keys, value_of)
    return keys, {k: value_of(k) for k in keys}


@pytest.mark.timeout(240)
def test_fourth_node_joins_with_its_share(cluster, three):
    keys, acked = preload(three[0])
    with Writer(three) as w:
        time.sleep(0.5)
        n4 = cluster.node(settings=SETTINGS)
        n4.launch()
        n4.wait_ready()
        # it enters as joining: in the members, not yet in the ring
        wait_for(lambda: members_state(three[0]).get("n4") == "joining", 10,
                 "n4 to be seen joining")
        assert all("n4" not in owners for _, _, owners in three[0].ring())
        wait_up_everywhere(three + [n4], "n4")
        time.sleep(1.0)
    assert not w.errors, "client errors during the join: %s" % w.errors[:5]
    assert len(w.acked) > 50, "the writer made no progress: %d writes" % len(w.acked)
    allkeys = keys + sorted(w.acked)
    acked.update(w.acked)
    nodes = three + [n4]
    assert any("n4" in owners for _, _, owners in n4.ring())
    check_data(nodes, allkeys, acked)
    # n4 holds its share of the ring's keys
    share = ring_share(three[0], "n4")
    held = sum(1 for v in holders([n4], allkeys).values() if v)
    expect = share * len(allkeys)
    assert abs(held - expect) <= SHARE_TOLERANCE * expect, \
        "n4 holds %d keys, its share of the ring is %.3f (%d keys)" % (held, share, expect)
    assert stat_int(n4, "transfer_keys_in") > 0
    assert stat_sum_dropped(three) > 0, "the old owners dropped nothing"
    assert stat_int(n4, "membership_epoch") > stat_int(three[0], "membership_epoch") - 1
    log = open(n4.log_path).read()
    assert "join complete" in log
    assert_old_epoch_refused(three[0])


def assert_old_epoch_refused(node):
    """A transfer request naming a ring epoch older than node's is refused
    (MSG_CODE_STALE_EPOCH) and counted; one of the current epoch is served."""
    epoch = stat_int(node, "membership_epoch")
    assert epoch >= 1, "the join did not advance the membership epoch"
    before = stat_int(node, "transfer_stale_epoch")
    s = peer_connect(node)
    try:
        for req_id, ep in ((77, epoch - 1), (78, epoch)):
            body = mp([ep, 0, (1 << 64) - 1, 0, None, 4096])
            s.sendall(envelope(MSG_XFER_PULL, REQUEST, req_id, body))
            reader = FrameReader(s)
            for _ in range(100):
                obj, _ = mp_decode(reader.read(5.0))
                if obj[1] == MSG_XFER_PULL and obj[3] == req_id:
                    break
            assert obj[2] == RESPONSE
            if ep < epoch:
                assert obj[5] == [STALE_EPOCH], obj[5]
            else:
                assert obj[5][0] == 0 and len(obj[5]) == 4 and len(obj[5][3]) >= 1, obj[5][:3]
    finally:
        s.close()
    assert stat_int(node, "transfer_stale_epoch") == before + 1


def stat_sum_dropped(nodes):
    return sum(stat_int(n, "transfer_keys_dropped") for n in nodes)


@pytest.mark.timeout(240)
def test_leave_hands_over_and_exits_0(cluster):
    nodes, _ = start_n2(cluster, 4)
    keys, acked = preload(nodes[0])
    n4 = nodes[3]
    rest = nodes[:3]
    with Writer(rest) as w:
        time.sleep(0.5)
        n4.expect_exit = True
        assert n4.cmd("leave") == "OK"
        # clients keep being served by the leaving node meanwhile
        with qconn(n4) as c:
            assert c.set("during:leave", b"x") == "STORED"
        acked["during:leave"] = b"x"
        rc = n4.proc.wait(CHANGE_LIMIT)
        assert rc == 0, "n4 exited %s after leave; log:\n%s" % (rc, n4.log_tail())
        wait_for(lambda: all("n4" not in n.members() for n in rest), 20,
                 "n4 to be gone from every member list", lambda: describe(rest))
        time.sleep(1.0)
    assert not w.errors, "client errors during the leave: %s" % w.errors[:5]
    acked.update(w.acked)
    allkeys = keys + sorted(w.acked) + ["during:leave"]
    assert all("n4" not in owners for _, _, owners in rest[0].ring())
    check_data(rest, allkeys, acked)
    log = open(n4.log_path).read()
    assert "leave complete" in log


@pytest.mark.timeout(240)
def test_remove_of_a_killed_node_restores_n_copies(cluster):
    nodes, _ = start_n2(cluster, 4)
    keys, acked = preload(nodes[0])
    n1, n4 = nodes[0], nodes[3]
    rest = nodes[:3]
    # bad input first: nothing changes
    assert n1.cmd("remove n2").startswith("CLIENT_ERROR n2 is alive")
    assert n1.cmd("remove nosuch").startswith("CLIENT_ERROR no member named nosuch")
    assert n1.cmd("remove n1").startswith("CLIENT_ERROR")
    assert n1.cmd("remove").startswith("ERROR")
    n4.kill9()
    wait_for(lambda: all(members_state(n).get("n4") == "down" for n in rest), 20,
             "n4 to be seen down", lambda: describe(rest))
    assert misplaced(rest, keys), "with n4 dead some keys must have one copy"
    with Writer(rest) as w:
        assert n1.cmd("remove n4") == "OK"
        wait_for(lambda: all("n4" not in n.members() for n in rest), 20,
                 "n4 to be gone from every member list", lambda: describe(rest))
        assert n1.cmd("remove n4").startswith("CLIENT_ERROR no member named n4")
        wait_for(lambda: all(stat_int(n, "transfers_active") == 0 for n in rest) and
                 all("transfer=" not in " ".join(n.cmd_lines("members")) for n in rest),
                 CHANGE_LIMIT, "the re-replication to end", lambda: describe(rest))
        time.sleep(0.5)
    assert not w.errors, "client errors during the remove: %s" % w.errors[:5]
    acked.update(w.acked)
    allkeys = keys + sorted(w.acked)
    assert all("n4" not in owners for _, _, owners in n1.ring())
    check_data(rest, allkeys, acked)
    assert sum(stat_int(n, "transfer_keys_in") for n in rest) > 0
    # the removed node's old data may not come back: it refuses to start...
    n4.expect_exit = True
    n4.launch()
    assert n4.proc.wait(20) == 1
    assert "was removed from the cluster" in open(n4.log_path).read()
    assert "n4" not in n1.members()
    # ...also the next time, without asking anyone
    n4.launch()
    assert n4.proc.wait(20) == 1
    assert "left the cluster (or was removed)" in open(n4.log_path).read()
    # with a wiped data directory it joins as a new node
    shutil.rmtree(n4.data_dir)
    n4.expect_exit = False
    n4.launch()
    n4.wait_ready()
    wait_up_everywhere(rest + [n4], "n4")
    assert "joining instead of founding" in open(n4.log_path).read() or \
        stat_int(n4, "transfer_keys_in") > 0


@pytest.mark.timeout(300)
def test_join_resumes_after_kill9_and_one_change_at_a_time(cluster, three):
    """A slow join (throttled to 300 KB/s): while it runs a second change
    is refused; the joining node is killed -9 mid-way, restarts, resumes
    from its cursors (it does not pull everything again) and comes up."""
    keys = ["big:%d" % i for i in range(4000)]
    load(three[0], keys, lambda k: value_of(k, 1000))
    acked = {k: value_of(k, 1000) for k in keys}
    slow = dict(SETTINGS, **{"transfer.max_bytes_per_s": 300000})
    n4 = cluster.node(settings=slow)
    n4.launch()
    n4.wait_ready()
    wait_for(lambda: stat_int(n4, "transfer_keys_in") >= 300, 60, "n4 to pull some keys",
             lambda: describe(three + [n4]))
    # one change at a time
    reply = three[1].cmd("leave")
    assert reply.startswith("SERVER_ERROR") and "n4 is joining" in reply, reply
    assert n4.cmd("leave").startswith("SERVER_ERROR n4 is joining")
    lines = n4.cmd_lines("transfers")
    assert lines, "transfers lists nothing while n4 joins"
    for ln in lines:
        assert re.match(r"^\d+ \d+ n\d n4 \d+/\d+ \d+ \d+/s eta=(\d+|\?)$", ln), ln
    assert re.search(r"joining .*transfer=\d+%", " ".join(three[0].cmd_lines("members")))
    before = stat_int(n4, "transfer_keys_in")
    n4.kill9()
    n4.launch()
    n4.wait_ready()
    wait_up_everywhere(three + [n4], "n4")
    after = stat_int(n4, "transfer_keys_in")
    share = ring_share(three[0], "n4") * len(keys)
    assert after < share - before / 2, \
        "after the restart n4 pulled %d keys of its %d: it started over" % (after, share)
    resumed = re.findall(r"pulling \d+ ranges \((\d+) already done\)", open(n4.log_path).read())
    assert len(resumed) == 2 and int(resumed[1]) > 0, \
        "the restarted join did not resume finished ranges: %s" % resumed
    nodes = three + [n4]
    check_data(nodes, keys, acked)


@pytest.mark.timeout(60)
def test_bad_changes_are_refused(cluster):
    solo, _ = start_n2(cluster, 1)
    assert solo[0].cmd("leave").startswith("SERVER_ERROR n1 is the only node")
    assert solo[0].cmd("transfers") == "END"
    n2 = cluster.node(settings=SETTINGS)
    n2.launch()
    n2.wait_ready()
    wait_up_everywhere([solo[0], n2], "n2", 30)
    # a join with the name of a live node is refused and changes nothing
    impostor = ClusterNode(cluster.tmp_path / "impostor", "n2", seed=solo[0], settings=SETTINGS)
    cluster.nodes.append(impostor)
    impostor.expect_exit = True
    impostor.launch()
    rc = impostor.proc.wait(20)
    assert rc == 1, "the impostor exited %s" % rc
    assert "in use by a live node" in open(impostor.log_path).read()
    m = solo[0].members()
    assert m["n2"]["state"] == "up" and m["n2"]["peer"] == "127.0.0.1:%d" % n2.peer_port
