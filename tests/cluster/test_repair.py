"""Replica repair across real quorumkvd processes, one mechanism at a time:
read repair alone (handoff and anti-entropy off), hinted handoff alone
(anti-entropy off; hints survive a graceful restart of their holders), and
siblings from writes on two sides of a partition, collapsed by a later set.

Partitions use the fault switch (`debug peer_drop on|off`, [debug]
fault_injection = true in clusterlib's INI).  Every wait polls with a
deadline; repair is sent after the reply, so its effect is polled for too.
RESULT lines give timings and counts.
"""

import time

import pytest

from clusterlib import describe, sees, wait_for
from quorumlib import (live_values, lget, peer_drop, qconn, restart, start_converged,
                       stat_int, stop_graceful, wait_all_up, wait_seen)

REPAIR_LIMIT = 15.0      # s: hang guard for a repair to land
HANDOFF_LIMIT = 30.0     # s: hang guard for 300 hints to be delivered


def result(fmt, *args):
    print("RESULT " + (fmt % args if args else fmt))


def cut_and_wait(nodes, cut):
    """Cut `cut` off (peer_drop on) and wait until both sides see the split."""
    rest = [n for n in nodes if n is not cut]
    t0 = time.monotonic()
    peer_drop(cut, True)
    for n in rest:
        wait_seen([n], cut.name, "down", nodes)
        wait_seen([cut], n.name, "down", nodes)
    return rest, time.monotonic() - t0


def heal_and_wait(nodes, cut):
    t0 = time.monotonic()
    peer_drop(cut, False)
    wait_all_up(nodes)
    return time.monotonic() - t0


# --------------------------------------------------------------------------
# 5: read repair alone
# --------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_read_repair_alone(cluster):
    nodes, _ = start_converged(cluster, 3, {"handoff.enabled": "false",
                                            "antientropy.enabled": "false"})
    n1, n2, n3 = nodes
    _, t_cut = cut_and_wait(nodes, n3)
    with qconn(n1) as c:
        assert c.set("rr", b"repair-me", "w=2") == "STORED"
    assert lget(n3, "rr") == [], "cut-off node got the write"
    t_heal = heal_and_wait(nodes, n3)

    sib = lget(n3, "rr")
    assert sib == [], "with handoff and anti-entropy off, n3 got the key before any read: %r" % sib
    rr0 = stat_int(n1, "read_repairs")
    with qconn(n1) as c:
        assert c.get("rr", "r=all") == {"rr": b"repair-me"}
    t0 = time.monotonic()
    wait_for(lambda: live_values(n3, "rr") == [b"repair-me"], REPAIR_LIMIT,
             "read repair to bring rr to n3", lambda: repr(lget(n3, "rr")))
    t_repair = time.monotonic() - t0
    rr1 = stat_int(n1, "read_repairs")
    assert rr1 > rr0, "n1 read_repairs %d -> %d after repairing n3" % (rr0, rr1)
    # the repaired replica is the same version as the others
    vvs = {n.name: [b["vv"] for b in lget(n, "rr")] for n in nodes}
    assert vvs["n1"] == vvs["n2"] == vvs["n3"], "replicas differ after read repair: %r" % vvs
    result("read_repair cut_detect=%.2fs heal=%.2fs repair_visible=%.1fms read_repairs=%d->%d",
           t_cut, t_heal, t_repair * 1000, rr0, rr1)


# --------------------------------------------------------------------------
# 6: hinted handoff alone, hints durable across a graceful restart
# --------------------------------------------------------------------------

HINT_KEYS = 300


def pending(nodes):
    return {n.name: stat_int(n, "hints_pending") for n in nodes}


def missing_on(node, keys):
    """Keys whose expected value is not a live sibling in node's replica
    (one connection, pipelined in batches)."""
    missing = []
    with qconn(node) as c:
        for i in range(0, len(keys), 50):
            batch = keys[i:i + 50]
            for k in batch:
                c.send("lget %s" % k)
            for k in batch:
                blocks = c._blocks("lget %s" % k)
                if ("v:" + k).encode() not in [b["data"] for b in blocks if b["state"] == "live"]:
                    missing.append(k)
    return missing


@pytest.mark.timeout(120)
def test_hinted_handoff_alone_durable_hints(cluster):
    nodes, _ = start_converged(cluster, 3, {"antientropy.enabled": "false"})
    n1, n2, n3 = nodes
    n3.kill9()
    t0 = time.monotonic()
    wait_seen([n1, n2], n3.name, "down", nodes)
    t_detect = time.monotonic() - t0

    keys = ["hh-%03d" % i for i in range(HINT_KEYS)]
    t0 = time.monotonic()
    with qconn(n1) as c1, qconn(n2) as c2:
        for i, k in enumerate(keys):
            c = c1 if i % 2 == 0 else c2
            reply = c.set(k, ("v:" + k).encode(), "w=2")
            assert reply == "STORED", "set %s w=2 via %s with n3 down: %r" % (k, "n1" if i % 2 == 0 else "n2", reply)
    t_writes = time.monotonic() - t0
    assert missing_on(n1, keys) == [] and missing_on(n2, keys) == [], "a live replica lacks a key"

    before = pending([n1, n2])
    stored = {n.name: stat_int(n, "hints_stored") for n in (n1, n2)}
    holders = [n for n in (n1, n2) if before[n.name] > 0]
    assert holders, "no hints pending after %d writes with n3 down: %r" % (HINT_KEYS, before)
    assert sum(before.values()) >= HINT_KEYS, \
        "%d writes missed n3 but only %d hints are pending: %r" % (HINT_KEYS, sum(before.values()), before)
    result("handoff detect=%.2fs writes=%d in %.2fs hints_pending=%r hints_stored=%r",
           t_detect, HINT_KEYS, t_writes, before, stored)

    # durability: restart each holder gracefully, one at a time
    for h in holders:
        other = n2 if h is n1 else n1
        stop_graceful(h)
        restart(h)
        wait_for(lambda: sees(h, other.name, "up") and sees(other, h.name, "up"), 20,
                 "%s and %s to see each other up after the restart" % (h.name, other.name),
                 lambda: describe(nodes))
        after = stat_int(h, "hints_pending")
        assert after == before[h.name], \
            "%s: hints_pending %d before SIGTERM, %d after the restart" % (h.name, before[h.name], after)
    assert n3.proc.poll() is not None, "n3 should still be down"
    result("handoff hints_pending after graceful restart of %s: %r",
           ",".join(h.name for h in holders), pending([n1, n2]))

    t0 = time.monotonic()
    restart(n3)
    last = {}

    def delivered():
        last["missing"] = missing_on(n3, keys)
        if last["missing"]:
            return False
        last["pending"] = pending(nodes)
        return all(v == 0 for v in last["pending"].values())

    wait_for(delivered, HANDOFF_LIMIT, "all %d hinted keys on n3 and no hints pending" % HINT_KEYS,
             lambda: "missing on n3: %d (e.g. %s); hints_pending: %r\n%s" % (
                 len(last.get("missing", [])), last.get("missing", [])[:5], pending(nodes), describe(nodes)))
    t_deliver = time.monotonic() - t0
    deliv = {n.name: stat_int(n, "hints_delivered") for n in nodes}
    dropped = {n.name: stat_int(n, "hints_dropped") for n in nodes}
    assert sum(dropped.values()) == 0, "hints dropped: %r" % dropped
    assert sum(deliv.values()) >= HINT_KEYS, "only %r hints delivered for %d keys" % (deliv, HINT_KEYS)
    result("handoff delivered all %d keys to n3 %.2fs after its restart; hints_delivered=%r hints_dropped=%r",
           HINT_KEYS, t_deliver, deliv, dropped)


# --------------------------------------------------------------------------
# 7: siblings from a partition, collapsed by a later set
# --------------------------------------------------------------------------

@pytest.mark.timeout(90)
def test_partition_siblings_then_set_collapses(cluster):
    nodes, _ = start_converged(cluster, 3)
    n1, n2, n3 = nodes
    _, t_cut = cut_and_wait(nodes, n3)
    with qconn(n1) as c:
        assert c.set("sk", b"from-n1", "w=1") == "STORED"
    with qconn(n3) as c:
        assert c.set("sk", b"from-n3-later", "w=1") == "STORED"
    assert live_values(n3, "sk") == [b"from-n3-later"], "n3 got n1's write through the cut"
    t_heal = heal_and_wait(nodes, n3)

    both = sorted([b"from-n1", b"from-n3-later"])
    t0 = time.monotonic()
    for n in nodes:
        def seen(n=n):
            with qconn(n) as c:
                return sorted(b["data"] for b in c.siblings("sk", "r=all")) == both
        wait_for(seen, REPAIR_LIMIT, "siblings sk r=all via %s to show both values" % n.name,
                 lambda: "\n".join("%s lget: %r" % (m.name, lget(m, "sk")) for m in nodes))
    t_sib = time.monotonic() - t0
    for n in nodes:
        with qconn(n) as c:
            got = c.get("sk")
        assert got == {"sk": b"from-n3-later"}, "get sk via %s: %r (want the newer write, n3's)" % (n.name, got)

    # every replica holds both siblings (hints and read repair) before the
    # set, so whichever node coordinates it has both in its context
    t0 = time.monotonic()
    wait_for(lambda: all(sorted(live_values(n, "sk")) == both for n in nodes), REPAIR_LIMIT,
             "every replica to hold both siblings",
             lambda: "\n".join("%s lget: %r" % (m.name, lget(m, "sk")) for m in nodes))

    t_local_both = time.monotonic() - t0

    with qconn(n2) as c:
        assert c.set("sk", b"merged") == "STORED"
        sib = c.siblings("sk", "r=all")
    assert [b["data"] for b in sib] == [b"merged"], "siblings after a set: %r" % sib
    t0 = time.monotonic()
    wait_for(lambda: all(live_values(n, "sk") == [b"merged"] for n in nodes), REPAIR_LIMIT,
             "every replica to hold exactly one live sibling, the set's value",
             lambda: "\n".join("%s lget: %r" % (m.name, lget(m, "sk")) for m in nodes))
    t_collapse = time.monotonic() - t0
    total = {n.name: len(lget(n, "sk")) for n in nodes}
    result("siblings cut_detect=%.2fs heal=%.2fs both_visible_r_all=%.2fs both_in_every_lget=%.2fs "
           "collapse_everywhere=%.1fms stored_siblings_after=%r",
           t_cut, t_heal, t_sib, t_local_both, t_collapse * 1000, total)
