"""Explicit causal contexts across a cluster: `vget` returns every sibling
and the context, and a write with `ctx=` supersedes exactly what that
context covers (the client library's read-merge-write-back in one round
trip each way).  A context that names versions nobody has must not hide a
real write.

Three quorumkvd processes, n=3 r=2 w=2, hinted handoff and anti-entropy
off where a test cuts a node off (so only what the test does moves data).
"""

import re

import pytest

from clusterlib import wait_for
from quorumlib import QConn, ReplyError, lget, peer_drop, qconn, start_converged, wait_all_up, wait_seen


def vget(c, key, opts=""):
    """([(flags, data, ts, state)], context text) of a vget."""
    line = "vget %s%s" % (key, (" " + opts) if opts else "")
    c.send(line)
    sibs = []
    while True:
        ln = c.readline()
        if ln.startswith("CONTEXT "):
            ctx = ln[len("CONTEXT "):]
            assert c.readline() == "END"
            return sibs, ctx
        f = ln.split(" ")
        if f[0] != "VALUE" or len(f) != 6:
            raise ReplyError(ln, line)
        data = c.readexact(int(f[3]) + 2)[:-2]
        sibs.append((int(f[2]), data, int(f[4]), f[5]))


def set_ctx(c, key, value, ctx, opts=""):
    c.send("set %s 0 0 %d ctx=%s%s" % (key, len(value), ctx, (" " + opts) if opts else ""), value)
    return c.readline()


def live(sibs):
    return sorted(d for _, d, _, st in sibs if st == "live")


@pytest.mark.timeout(60)
def test_vget_then_write_back_supersedes_exactly_the_context(cluster):
    nodes, _ = start_converged(cluster, 3)
    n1, n2, n3 = nodes
    with qconn(n1) as c:
        assert c.set("doc", b"a", "w=all") == "STORED"
    with qconn(n2) as c:  # an empty context supersedes nothing: a sibling
        assert set_ctx(c, "doc", b"b", "[]", "w=all") == "STORED"
    with qconn(n3) as c:
        sibs, ctx = vget(c, "doc", "r=all")
        assert live(sibs) == [b"a", b"b"], sibs
        assert ctx != "[]"
        # a third writer the reader has not seen
        assert set_ctx(c, "doc", b"c", "[]", "w=all") == "STORED"
    with qconn(n1) as c:
        # the application merged a and b and writes back with their context
        assert set_ctx(c, "doc", b"a+b", ctx, "w=all") == "STORED"
        sibs, ctx2 = vget(c, "doc", "r=all")
    assert live(sibs) == [b"a+b", b"c"], "write-back should supersede a and b, not c: %r" % sibs
    with qconn(n2) as c:
        assert c.cmd("delete doc ctx=%s w=all" % ctx2) == "DELETED"
        assert c.get("doc", "r=all") == {}
        sibs, _ = vget(c, "doc", "r=all")
    assert [st for _, _, _, st in sibs] == ["deleted"], sibs
    # the r=all reads repaired every replica: all hold the same bytes
    views = lambda: [[(b["vv"], b["ts"], b["state"], b["data"]) for b in lget(n, "doc")] for n in nodes]
    wait_for(lambda: all(v == views()[0] for v in views()), 10.0, "replicas identical", lambda: repr(views()))


def actor_of(node, key):
    """The one actor in key's vector on node (key written once, there)."""
    sib = lget(node, key)
    m = re.match(r"^\[([0-9a-f]{16}):(\d+)\]$", sib[0]["vv"])
    assert m, "expected one vector entry, got %r" % sib[0]["vv"]
    return m.group(1), int(m.group(2))


@pytest.mark.timeout(90)
def test_made_up_context_hides_no_concurrent_write(cluster):
    nodes, _ = start_converged(cluster, 3, {"handoff.enabled": "false",
                                            "antientropy.enabled": "false"})
    n1, n2, n3 = nodes
    with qconn(n3) as c:  # coordinated by n3 (an owner): n3's actor names it
        assert c.set("acct", b"v0", "w=all") == "STORED"
    actor, counter = actor_of(n3, "acct")

    peer_drop(n3, True)
    for n in (n1, n2):
        wait_seen([n], n3.name, "down", nodes)
    wait_seen([n3], n1.name, "down", nodes)
    try:
        with qconn(n3) as c:  # n3 alone: a write the others have not seen
            assert c.set("acct", b"from-n3", "w=1") == "STORED"
        with qconn(n1) as c:
            # a context claiming far more of n3's writes than exist
            made_up = "[%s:%d]" % (actor, counter + 1000000)
            assert set_ctx(c, "acct", b"from-n1", made_up, "w=2") == "STORED"
    finally:
        peer_drop(n3, False)
    wait_all_up(nodes)
    with qconn(n2) as c:
        sibs = c.siblings("acct", "r=all")
    values = sorted(s["data"] for s in sibs)
    assert values == [b"from-n1", b"from-n3"], \
        "the made-up context hid n3's concurrent write: siblings %r" % values
