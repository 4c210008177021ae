"""libquorumkv against a real 3-node cluster, through tests/cluster/qkv_driver.c.

What a user of the library relies on: round trips at every consistency
level, siblings and the context write-back, multi-get, token-aware routing
(no coordinator has to forward), failover when the node the client talks
to dies, timeouts, and refusal of bad arguments.  Tests that read go
through the server's `vget`; they are skipped, with the reason, only when
the server answers ERROR to it (a server from before the extension).
"""

import os
import signal

import pytest

from clientlib import QKV_EXAMPLE, Driver, seeds, supports_vget
from clusterlib import wait_for
from quorumlib import start_converged, stat_sum


@pytest.fixture
def driver():
    d = Driver()
    try:
        yield d
    finally:
        d.close()


def need_vget(node):
    if not supports_vget(node):
        pytest.skip("the server answers ERROR to vget: the vget/ctx= extension has not landed")


def ok(reply):
    assert reply["rc"] == 0, reply
    return reply


@pytest.mark.timeout(90)
def test_round_trip_at_each_level(cluster, driver):
    nodes, _ = start_converged(cluster, 3)
    ok(driver.call("connect %s" % seeds(nodes[:1])))
    for level in ("one", "quorum", "all", "1", "2", "3"):
        ok(driver.call("set lvl:%s value-%s level=%s" % (level, level, level)))
        assert driver.call("incr lvl:%s 1 level=%s" % (level, level))["rc"] == -9  # not a number
        ok(driver.call("set cnt:%s 41 level=%s" % (level, level)))
        assert ok(driver.call("incr cnt:%s 1 level=%s" % (level, level)))["value"] == 42
        ok(driver.call("touch cnt:%s 3600 level=%s" % (level, level)))
        ok(driver.call("delete cnt:%s level=%s" % (level, level)))
        assert driver.call("delete cnt:%s level=%s" % (level, level))["rc"] == 1      # not found
        assert driver.call("touch cnt:%s 5 level=%s" % (level, level))["rc"] == 1
        assert driver.call("incr cnt:%s 1 level=%s" % (level, level))["rc"] == 1
    # what was written is on the replicas: a plain client reads it from any node
    with nodes[2].conn() as c:
        assert c.cmd("get lvl:all") == "VALUE lvl:all 0 9"
    need_vget(nodes[0])
    for level in ("one", "quorum", "all", "1", "2", "3"):
        r = ok(driver.call("get lvl:%s level=%s" % (level, level)))["result"]
        assert r["live"] == 1 and r["newest"] == "value-%s" % level, r
        gone = ok(driver.call("get cnt:%s level=%s" % (level, level)))["result"]
        assert gone["live"] == 0, gone           # deleted: a tombstone at most
    never = ok(driver.call("get never:written"))["result"]
    assert never["live"] == 0 and never["siblings"] == [] and never["context"] == "[]"
    # a level above n=3 is the server's CLIENT_ERROR
    assert driver.call("set lvl:x v raw=4")["rc"] == -8


@pytest.mark.timeout(90)
def test_siblings_and_context_write_back(cluster, driver):
    nodes, _ = start_converged(cluster, 3)
    need_vget(nodes[0])
    ok(driver.call("connect %s" % seeds(nodes)))
    ok(driver.call("set cart apple level=all"))
    # a write under the empty context supersedes nothing: a sibling
    ok(driver.call("set cart pear level=all ctx=[]"))
    r = ok(driver.call("get cart level=all"))["result"]
    assert sorted(s["value"] for s in r["siblings"] if not s["deleted"]) == ["apple", "pear"], r
    assert r["context"] not in ("", "[]")
    # merge and write back with the read's context: one version remains
    ok(driver.call("set cart apple,pear level=all ctx=%s" % r["context"]))
    r2 = ok(driver.call("get cart level=all"))["result"]
    assert [s["value"] for s in r2["siblings"] if not s["deleted"]] == ["apple,pear"], r2
    # a write with a stale context (the first read's) does not remove the merge
    ok(driver.call("set cart stale level=all ctx=%s" % r["context"]))
    r3 = ok(driver.call("get cart level=all"))["result"]
    assert sorted(s["value"] for s in r3["siblings"] if not s["deleted"]) == ["apple,pear", "stale"]
    # delete with the latest context removes everything it saw
    ok(driver.call("delete cart level=all ctx=%s" % r3["context"]))
    assert ok(driver.call("get cart level=all"))["result"]["live"] == 0
    # a context that is not one is the server's CLIENT_ERROR
    assert driver.call("set cart x ctx=[nonsense]")["rc"] == -8


@pytest.mark.timeout(90)
def test_example_merges_siblings(cluster):
    import subprocess
    nodes, _ = start_converged(cluster, 3)
    need_vget(nodes[0])
    exe = QKV_EXAMPLE
    d = Driver()
    try:
        ok(d.call("connect %s" % seeds(nodes)))
        ok(d.call("set basket a level=all"))
        ok(d.call("set basket b level=all ctx=[]"))       # two siblings
    finally:
        d.close()
    out = subprocess.run([exe, seeds(nodes[1:2]), "basket", "c"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=30)
    assert out.returncode == 0, out.stderr
    assert b"(merged 2 sibling(s))" in out.stdout, out.stdout
    with nodes[0].conn() as c:
        rows = c.lines("siblings basket r=all")
    values = [r for r in rows if not r.startswith("VALUE")]
    assert len(values) == 1 and sorted(values[0].split(",")) == ["a", "b", "c"], rows


@pytest.mark.timeout(90)
def test_mget_every_key_one_round_trip_per_node(cluster, driver):
    nodes, _ = start_converged(cluster, 3)
    need_vget(nodes[0])
    ok(driver.call("connect %s" % seeds(nodes[:1])))
    ok(driver.call("load 200 mg: level=all"))
    keys = ["mg:%d" % i for i in range(200)] + ["mg:missing"]
    r = ok(driver.call("mget %s level=quorum" % ",".join(keys)))
    assert r["codes"] == [0] * len(keys)
    for i in range(200):
        assert r["results"][i]["newest"] == "v%d" % i
    assert r["results"][200]["live"] == 0


@pytest.mark.timeout(120)
def test_token_aware_requests_need_no_forward(cluster, driver):
    nodes, _ = start_converged(cluster, 3)
    ok(driver.call("connect %s" % seeds(nodes[:1])))
    before = stat_sum(nodes, "coord_forwarded")
    r = ok(driver.call("load 300 route: level=quorum"))
    assert r["ok"] == 300
    ok(driver.call("load 50 routeincr: level=one"))
    for i in range(50):
        ok(driver.call("delete routeincr:%d" % i))
    # every write reached a replica of its key: no coordinator forwarded one
    assert stat_sum(nodes, "coord_forwarded") == before
    # the client's preference lists name the three members (with n=3 of 3
    # nodes every node replicates every key; the 4-node test below shows
    # that the forward counter does move for a plain client)
    names = {n.name for n in nodes}
    for i in range(20):
        reps = driver.call("replicas route:%d" % i)
        assert reps["rc"] == 3 and set(reps["replicas"].split(",")) == names, reps
    if supports_vget(nodes[0]):
        assert ok(driver.call("readall 300 route: level=one"))["ok"] == 300
        assert stat_sum(nodes, "coord_forwarded") == before


@pytest.mark.timeout(120)
def test_forwarding_avoided_with_more_nodes_than_replicas(cluster, driver):
    """With 4 nodes and n=3 a quarter of the keys are not on any given node:
    a plain client through one node makes it forward writes, the library
    does not."""
    nodes, _ = start_converged(cluster, 4)
    ok(driver.call("connect %s" % seeds(nodes[:1])))
    base = stat_sum(nodes, "coord_forwarded")
    with nodes[0].conn() as c:
        for i in range(40):
            assert c.cmd("set plain:%d 0 0 1\r\nx" % i) == "STORED"
    plain = stat_sum(nodes, "coord_forwarded") - base
    assert plain > 0, "a plain client through one node never caused a forward: the counter is not a test"
    base = stat_sum(nodes, "coord_forwarded")
    r = ok(driver.call("load 200 aware: level=quorum"))
    assert r["ok"] == 200
    for i in range(30):
        assert driver.call("incr aware:%d 1" % i)["rc"] == -9   # "v<i>": not a number, but routed
    assert stat_sum(nodes, "coord_forwarded") == base


@pytest.mark.timeout(120)
def test_failover_when_the_node_it_talks_to_dies(cluster, driver):
    nodes, _ = start_converged(cluster, 3)
    ok(driver.call("connect %s timeout=3000" % seeds(nodes[:1])))   # knows only n1 as a seed
    ok(driver.call("load 100 fo: level=all"))
    # the first owner of fo:0 is where the client sends it; kill that one
    first = driver.call("replicas fo:0")["replicas"].split(",")[0]
    victim = next(n for n in nodes if n.name == first)
    victim.kill9()
    live = [n for n in nodes if n is not victim]
    # writes: the dead node refuses the connection, nothing was sent, the
    # next replica takes them
    r = driver.call("load 100 fo2: level=one")
    assert r["ok"] == 100, r
    ok(driver.call("set fo:0 after-kill level=quorum"))
    if victim is nodes[0]:
        # the seed itself is gone: the client still knows the others
        ok(driver.call("set fo:seedless x level=one"))
    if supports_vget(live[0]):
        r = driver.call("readall 100 fo2: level=one")
        assert r["ok"] == 100, r
        res = ok(driver.call("get fo:0 level=quorum"))["result"]
        assert res["newest"] == "after-kill", res


@pytest.mark.timeout(120)
def test_timeouts(cluster, driver):
    nodes, _ = start_converged(cluster, 3)
    ok(driver.call("connect %s" % seeds(nodes)))
    first = driver.call("replicas to:0")["replicas"].split(",")[0]
    victim = next(n for n in nodes if n.name == first)
    os.kill(victim.pid, signal.SIGSTOP)        # accepts connections, answers nothing
    try:
        # a write is never repeated once sent: it times out
        r = driver.call("set to:0 x timeout=400")
        assert r["rc"] == -4, r
        if supports_vget(next(n for n in nodes if n is not victim)):
            # a read fails over to the next replica within its timeout
            ok(driver.call("get to:0 level=one timeout=3000"))
    finally:
        os.kill(victim.pid, signal.SIGCONT)


@pytest.mark.timeout(60)
def test_bad_arguments(cluster, driver):
    nodes, _ = start_converged(cluster, 3)
    ok(driver.call("connect %s" % seeds(nodes[:1])))
    r = driver.call("badargs")
    assert r["failures"] == [] and r["checks"] >= 30, r
    # unknown levels never reach the wire
    assert driver.call("set k v raw=17")["rc"] == -1
    assert driver.call("set k v raw=-9")["rc"] == -1
    assert driver.call("set k v level=most")["rc"] == -1      # the driver's parse fails
    # an oversized key is refused by the library, the connection stays usable
    assert driver.call("set %s v" % ("k" * 251))["rc"] == -1
    ok(driver.call("set k%s v" % ("k" * 249)))
    # no seed answers: a connection error, not a hang
    from clusterlib import free_ports
    port = free_ports(1)[0]
    r = driver.call("connect 127.0.0.1:%d timeout=500" % port)
    assert r["rc"] != 0 and "refused" in r["err"], r


@pytest.mark.timeout(120)
def test_learns_a_new_node_from_the_ring_epoch(cluster, driver):
    nodes, _ = start_converged(cluster, 3)
    ok(driver.call("connect %s refresh=200" % seeds(nodes[:1])))
    keys = ["epoch:%d" % i for i in range(64)]

    def owners():
        return {k: driver.call("replicas %s" % k)["replicas"].split(",") for k in keys}
    assert all("n4" not in o for o in owners().values())
    n4 = cluster.node()
    n4.launch()
    n4.wait_ready()
    # the ring changes (new epoch): the client re-reads it and routes to n4
    wait_for(lambda: any("n4" in o for o in owners().values()), 30,
             "the client to place keys on the new node n4")
    wait_for(lambda: stat_sum(nodes + [n4], "ring_nodes") == 16, 30, "every node to see 4 ring nodes")
    fwd = stat_sum(nodes + [n4], "coord_forwarded")
    assert ok(driver.call("load 200 epoch: level=quorum"))["ok"] == 200
    assert stat_sum(nodes + [n4], "coord_forwarded") == fwd
