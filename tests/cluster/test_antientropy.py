"""Anti-entropy (issue 9) across real quorumkvd processes, with read repair
(cluster.read_repair = false) and hinted handoff off, so that only the
Merkle exchanges can bring a replica back:

  - a node misses 1000 writes and a delete while it is down; nobody reads
    afterwards; once it is back, exchanges alone bring it every write and
    the tombstone, byte for byte the same objects as the others hold;
  - a replica whose data directory was wiped is rebuilt;
  - no tombstone is purged while one replica of its range is down; once it
    is back it gets the tombstone, every replica purges it, and the key
    stays deleted everywhere;
  - exchange messages for a range the node does not hold, from another
    ring, or that do not fit the tree shape are refused, counted, and
    change nothing.

Small rings (8 vnodes: 24 ranges for 3 nodes) and a 100 ms exchange
interval keep a full rotation over every (range, peer) pair to a few
seconds.  Every wait polls with a deadline (hang guards, not performance
goals: performance is measured by bench/bench-antientropy.sh).
"""

import ctypes
import os
import shutil
import time

import pytest

from clusterlib import all_full_view, describe, wait_for
from quorumlib import (lget, live_values, qconn, restart, stat_int, stop_graceful, wait_all_up,
                       wait_seen)
from test_peer_input import FrameReader, envelope, mp, mp_decode, peer_connect, REQUEST

REPAIR_LIMIT = 60.0   # s: hang guard for a repair by exchanges alone
CONVERGE = 20.0

AE = {
    "cluster.vnodes": 8,
    "cluster.read_repair": "false",
    "handoff.enabled": "false",
    "antientropy.interval_ms": 100,
    "antientropy.max_keys_per_s": 100000,
    "antientropy.max_bytes_per_s": 100000000,
}


def result(fmt, *args):
    print("RESULT " + (fmt % args if args else fmt))


def ring_lines(node):
    with node.conn() as c:
        return c.lines("ring")


def start(cluster, count, extra=None):
    settings = dict(AE)
    settings.update(extra or {})
    nodes, _ = cluster.start(count, settings=settings)
    wait_for(lambda: all_full_view(nodes) and all(ring_lines(n) == ring_lines(nodes[0]) for n in nodes)
             and len(ring_lines(nodes[0])) == 8 * count,
             CONVERGE, "%d nodes to converge" % count, lambda: describe(nodes))
    return nodes


def aae_lines(node):
    """[(start, end, peer, state, last, repaired)] from the `aae` command."""
    with node.conn() as c:
        rows = c.lines("aae")
    out = []
    for row in rows:
        f = row.split(" ")
        assert len(f) == 6 and f[4].startswith("last=") and f[5].startswith("repaired="), \
            "%s: bad aae line %r" % (node.name, row)
        assert f[3] in ("in-sync", "differs", "unknown"), "%s: bad aae state in %r" % (node.name, row)
        out.append((int(f[0]), int(f[1]), f[2], f[3], f[4][5:], int(f[5][9:])))
    return out


def lget_all(node, keys):
    """{key: [(vv, ts, state, data)...]} of node's local replica, one connection."""
    out = {}
    with qconn(node) as c:
        for k in keys:
            out[k] = [(b["vv"], b["ts"], b["state"], b["data"]) for b in c.lget(k)]
    return out


def in_sync_everywhere(nodes):
    for n in nodes:
        st = n.stats()
        if int(st["ranges_in_sync"]) != int(st["ranges_total"]):
            return False
    return True


# --------------------------------------------------------------------------
# a node misses 1000 writes and a delete
# --------------------------------------------------------------------------

@pytest.mark.timeout(150)
def test_missed_writes_and_delete_brought_back_by_exchanges_alone(cluster):
    n1, n2, n3 = nodes = start(cluster, 3)
    with qconn(n1) as c:
        assert c.set("doomed", b"old value", "w=all") == "STORED"
    n3.kill9()
    wait_seen([n1, n2], n3.name, "down", nodes)

    keys = ["ae-%04d" % i for i in range(1000)]
    with qconn(n1) as c1, qconn(n2) as c2:
        for i, k in enumerate(keys):
            c = c1 if i % 2 else c2
            assert c.set(k, ("v:" + k).encode(), "w=2") == "STORED"
        c1.send("delete doomed w=2")
        assert c1.readline() == "DELETED"
    assert lget(n1, "doomed")[0]["state"] == "deleted"

    restart(n3)
    wait_all_up(nodes)
    t0 = time.monotonic()
    # nobody reads: only exchanges can bring n3 the keys
    wait_for(lambda: stat_int(n3, "curr_items") == 1000 and
             [b["state"] for b in lget(n3, "doomed")] == ["deleted"],
             REPAIR_LIMIT, "n3 to hold the 1000 keys and the tombstone",
             lambda: "n3 curr_items=%s doomed=%r exchanges=%r keys_repaired_aae=%r" % (
                 n3.stats()["curr_items"], lget(n3, "doomed"),
                 [n.stats()["exchanges"] for n in nodes],
                 [n.stats()["keys_repaired_aae"] for n in nodes]))
    t_repair = time.monotonic() - t0

    want = lget_all(n1, keys + ["doomed"])
    got = lget_all(n3, keys + ["doomed"])
    differ = [k for k in want if want[k] != got[k]]
    assert not differ, "n3 differs from n1 on %d keys, e.g. %s: %r vs %r" % (
        len(differ), differ[0], got[differ[0]], want[differ[0]])
    assert lget_all(n2, keys + ["doomed"]) == want, "n2 differs from n1"

    st = {n.name: n.stats() for n in nodes}
    assert all(int(s["read_repairs"]) == 0 for s in st.values()), "read repair ran"
    assert all(int(s["hints_stored"]) == 0 for s in st.values()), "hints were stored"
    assert int(st["n3"]["keys_repaired_aae"]) >= 1001, st["n3"]["keys_repaired_aae"]
    exchanged = sum(int(s["exchanges"]) for s in st.values())
    # the ranges end up in sync with every replica, and `aae` says so
    wait_for(lambda: in_sync_everywhere(nodes), REPAIR_LIMIT, "every range in sync everywhere",
             lambda: repr([(n.name, n.stats()["ranges_in_sync"], n.stats()["ranges_total"])
                           for n in nodes]))
    lines = aae_lines(n3)
    assert len(lines) == int(n3.stats()["ranges_total"]) == 24
    assert {ln[2] for ln in lines} <= {"n1", "n2"}
    assert all(int(ln[4]) >= 0 for ln in lines)
    sent = sum(int(n.stats()["aae_bytes_sent"]) for n in nodes)
    result("aae missed=1000+delete repaired in %.1fs by %d exchanges, keys_repaired_aae=%s, "
           "aae_bytes_sent=%d", t_repair, exchanged, st["n3"]["keys_repaired_aae"], sent)


# --------------------------------------------------------------------------
# exchanges while clients write the same keys
# --------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_exchanges_converge_under_concurrent_writes(cluster):
    """Four clients (two through n1, two through n2) write ten shared keys
    with w=1 while n3 is cut off and after it is back; exchanges run all
    along, merging objects the clients keep changing; twenty other keys are
    written once while n3 is cut off.  Once the writers stop, exchanges make
    the three replicas byte-identical (lget), n3 gets the twenty keys, and
    every shared key still has a live value written by one of the clients."""
    import threading
    n1, n2, n3 = nodes = start(cluster, 3)
    keys = ["cc-%d" % i for i in range(10)]
    cut_keys = ["cut-%d" % i for i in range(20)]
    stop = threading.Event()
    last = {}
    errors = []

    def writer(node, t):
        try:
            with qconn(node) as c:
                i = 0
                while not stop.is_set():
                    k = keys[i % len(keys)]
                    v = ("%d:%d" % (t, i)).encode()
                    r = c.set(k, v, "w=1")
                    if r == "STORED":
                        last[(t, k)] = v
                    i += 1
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=writer, args=(n, t)) for t, n in enumerate([n1, n1, n2, n2])]
    for th in threads:
        th.start()
    try:
        time.sleep(0.5)
        assert n3.cmd("debug peer_drop on") == "OK"
        wait_seen([n1, n2], n3.name, "down", nodes)
        with qconn(n1) as c:  # keys nobody writes again: only exchanges bring them to n3
            for k in cut_keys:
                assert c.set(k, b"while-cut", "w=2") == "STORED"
        time.sleep(1.0)
        assert n3.cmd("debug peer_drop off") == "OK"
        wait_all_up(nodes)
        time.sleep(1.0)
    finally:
        stop.set()
        for th in threads:
            th.join(10)
    assert not errors, errors
    assert last, "no write was acknowledged"

    def identical():
        views = [lget_all(n, keys + cut_keys) for n in nodes]
        return views[0] == views[1] == views[2]

    wait_for(identical, REPAIR_LIMIT, "the three replicas to hold the same objects",
             lambda: repr({n.name: lget_all(n, keys[:1]) for n in nodes}))
    final = lget_all(n1, keys)
    for k in keys:
        live = {d for (_, _, state, d) in final[k] if state == "live"}
        # concurrent sets through two coordinators may stay siblings (at
        # most one per client); each is a value some client wrote to k
        assert 1 <= len(live) <= 4, "%s: %r" % (k, live)
        for d in live:
            t, i = (int(x) for x in d.split(b":"))
            assert 0 <= t < 4 and keys[i % len(keys)] == k, "%s holds %r" % (k, d)
    assert all(live_values(n3, k) == [b"while-cut"] for k in cut_keys)
    assert stat_int(n3, "keys_repaired_aae") >= len(cut_keys)


# --------------------------------------------------------------------------
# a wiped replica is rebuilt
# --------------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_wiped_replica_rebuilt(cluster):
    n1, n2, n3 = nodes = start(cluster, 3)
    keys = ["wipe-%03d" % i for i in range(500)]
    with qconn(n2) as c:
        for k in keys:
            assert c.set(k, ("w:" + k).encode(), "w=all") == "STORED"
        c.send("delete %s w=all" % keys[0])
        assert c.readline() == "DELETED"
    stop_graceful(n3)
    shutil.rmtree(n3.data_dir)
    assert not os.path.exists(n3.data_dir)
    restart(n3)
    wait_all_up(nodes)
    t0 = time.monotonic()
    wait_for(lambda: stat_int(n3, "curr_items") == 499, REPAIR_LIMIT,
             "the wiped n3 to be rebuilt with 499 keys",
             lambda: "n3 curr_items=%s" % n3.stats()["curr_items"])
    t_rebuild = time.monotonic() - t0
    want = lget_all(n1, keys)
    assert lget_all(n3, keys) == want, "the rebuilt n3 differs from n1"
    assert [b["state"] for b in lget(n3, keys[0])] == ["deleted"]
    result("aae wiped replica rebuilt (499 keys + 1 tombstone) in %.1fs", t_rebuild)


# --------------------------------------------------------------------------
# tombstone GC never purges while a replica is down
# --------------------------------------------------------------------------

def full_rotations(node, since, count):
    """node ran `count` rounds of exchanges (every pair) after `since`."""
    st = node.stats()
    return int(st["exchanges"]) - since >= count * 2 * int(st["ranges_total"])


@pytest.mark.timeout(150)
def test_no_tombstone_purged_while_a_replica_is_down(cluster):
    grace = 1
    n1, n2, n3 = nodes = start(cluster, 3, {"storage.tombstone_grace_s": grace})
    keys = ["gc-%02d" % i for i in range(40)]
    with qconn(n1) as c:
        for k in keys:
            assert c.set(k, b"live", "w=all") == "STORED"
    n3.kill9()
    wait_seen([n1, n2], n3.name, "down", nodes)
    with qconn(n1) as c:
        for k in keys:
            c.send("delete %s w=2" % k)
            assert c.readline() == "DELETED"
    time.sleep(grace + 0.5)  # the tombstones come of age (not a timing assertion)
    # give GC every chance: two full rotations of n1's and n2's exchanges
    base = {n.name: stat_int(n, "exchanges") for n in (n1, n2)}
    for n in (n1, n2):
        wait_for(lambda: full_rotations(n, base[n.name], 2), REPAIR_LIMIT,
                 "%s to run two rounds of exchanges" % n.name)
    purged = {n.name: stat_int(n, "tombstones_purged") for n in (n1, n2)}
    assert purged == {"n1": 0, "n2": 0}, "tombstones purged with n3 down: %r" % purged
    for n in (n1, n2):
        states = {k: [b["state"] for b in v] for k, v in
                  ((k, lget(n, k)) for k in keys)}
        assert all(s == ["deleted"] for s in states.values()), "%s: %r" % (n.name, states)
    passes = {n.name: stat_int(n, "aae_gc_passes") for n in (n1, n2)}

    # n3 comes back with the old live values: it gets the tombstones, then
    # every replica agrees and they are purged everywhere
    restart(n3)
    wait_all_up(nodes)

    def purged_everywhere():
        return all(lget(n, k) == [] for n in nodes for k in keys)

    wait_for(purged_everywhere, REPAIR_LIMIT, "the tombstones to be purged on every replica",
             lambda: repr({n.name: (n.stats()["tombstones_purged"],
                                    [b["state"] for b in lget(n, keys[0])]) for n in nodes}))
    total = sum(stat_int(n, "tombstones_purged") for n in nodes)
    assert total == 3 * len(keys), "purged %d records, expected %d" % (total, 3 * len(keys))
    # never resurrected: a quorum read through every node finds nothing
    for n in nodes:
        with qconn(n) as c:
            assert c.get(keys, "r=all") == {}, "%s resurrected a purged key" % n.name
    # and it stays so after more exchanges
    base = stat_int(n1, "exchanges")
    wait_for(lambda: full_rotations(n1, base, 1), REPAIR_LIMIT, "one more round of exchanges")
    assert purged_everywhere()
    result("aae gc: 0 purged while n3 was down (gc passes %r); %d records purged once it was back",
           passes, total)


# --------------------------------------------------------------------------
# bad exchange messages
# --------------------------------------------------------------------------

MSG_AAE_ROOT, MSG_AAE_LEAVES, MSG_AAE_KEYS, MSG_AAE_SYNC = 9, 10, 11, 12
MSG_AAE_GC_CHECK, MSG_AAE_GC_PURGE = 13, 14


def ask(node, type_, body, req_id=4321):
    """Send one request on a raw peer connection; its decoded answer body."""
    s = peer_connect(node)
    try:
        s.sendall(envelope(type_, REQUEST, req_id, mp(body)))
        reader = FrameReader(s)
        while True:
            obj, _ = mp_decode(reader.read())
            if obj[3] == req_id:
                return obj[5]
    finally:
        s.close()


def u64(x):
    return x & ((1 << 64) - 1)


_xxh = ctypes.CDLL("libxxhash.so.0").XXH3_64bits
_xxh.restype = ctypes.c_uint64
_xxh.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def token(key):
    """A key's ring position: XXH3-64 of its bytes (ring.h)."""
    return _xxh(key, len(key))


def in_range(tok, start, end):
    return start < tok <= end if start < end else (tok > start or tok <= end)


# a stored object (storage/object.h): format byte 1, then
# [[[node, counter, ts]], [[node, counter, flags, expiry, ts, tomb, value]]]
VALID_OBJECT = b"\x01" + mp([[[7, 1, 1]], [[7, 1, 0, 0, 1, False, b"x"]]])


@pytest.mark.timeout(90)
def test_bad_exchange_messages_refused_and_change_nothing(cluster):
    n1, n2, n3 = nodes = start(cluster, 3)
    wait_for(lambda: int(n1.stats()["aae_trees_built"]) == 24, CONVERGE, "n1's trees to be built")
    ring = int(n1.stats()["aae_ring_id"])
    start_, end = [(s, e) for s, e, _ in (ln.split(" ") for ln in ring_lines(n1))][3]
    start_, end = int(start_), int(end)

    # positive control: a held range on the same ring is answered
    ans = ask(n1, MSG_AAE_ROOT, [ring, start_, end, 0])
    assert ans[0] == 0 and len(ans) == 3, ans

    items0 = n1.stats()["curr_items"]
    cases = {
        "other ring": (MSG_AAE_ROOT, [u64(ring + 1), start_, end, 0], -116),   # -ESTALE
        "range not held": (MSG_AAE_ROOT, [ring, u64(start_ + 1), end, 0], -2),  # -ENOENT
        "segment past the tree": (MSG_AAE_KEYS, [ring, start_, end, [1024]], -22),
        "segments not ascending": (MSG_AAE_KEYS, [ring, start_, end, [5, 3]], -22),
        "branch past the tree": (MSG_AAE_LEAVES, [ring, start_, end, [32]], -22),
        "too many branches": (MSG_AAE_LEAVES, [ring, start_, end, list(range(33))], -22),
        "root body too short": (MSG_AAE_ROOT, [ring, start_, end], -22),
        "sync garbage object": (MSG_AAE_SYNC, [ring, start_, end, [[b"k", b"\x01\x02"]]], -22),
        "gc check empty list": (MSG_AAE_GC_CHECK, [ring, start_, end, []], -22),
    }
    # a key outside the range in a SYNC with a valid object: refused before
    # anything is merged (the key that is inside goes nowhere either)
    inside = next(k for k in (b"in-%d" % i for i in range(100000)) if in_range(token(k), start_, end))
    outside = next(k for k in (b"out-%d" % i for i in range(100))
                   if not in_range(token(k), start_, end))
    cases["key outside the range"] = (
        MSG_AAE_SYNC, [ring, start_, end, [[inside, VALID_OBJECT], [outside, VALID_OBJECT]]], -34)
    with qconn(n1) as c:
        assert c.set("outsider", b"x", "w=all") == "STORED"
    for name, (type_, body, code) in sorted(cases.items()):
        before = stat_int(n1, "aae_refused")
        ans = ask(n1, type_, body)
        assert ans == [code], "%s: answered %r, expected [%d]" % (name, ans, code)
        assert stat_int(n1, "aae_refused") == before + 1, "%s was not counted" % name
    assert n1.stats()["curr_items"] == str(int(items0) + 1)
    assert lget(n1, inside.decode()) == [] and lget(n1, outside.decode()) == []
    # positive control of the object: the same SYNC without the outsider
    # merges (the answer is the object as n1 stores it: our encoding is not
    # the canonical one, so it differs from what we sent)
    ans = ask(n1, MSG_AAE_SYNC, [ring, start_, end, [[inside, VALID_OBJECT]]])
    assert ans[0] == 0 and len(ans[1]) == 1 and ans[1][0][0] == inside, ans
    assert [b["data"] for b in lget(n1, inside.decode())] == [b"x"]
    # a purge request for a live key on another ring: refused, key kept
    ans = ask(n1, MSG_AAE_GC_PURGE, [u64(ring + 1), start_, end, [[b"outsider", 1]]])
    assert ans == [-116], ans
    assert [b["state"] for b in lget(n1, "outsider")] == ["live"]
    assert n1.alive() and all_full_view(nodes)
    assert stat_int(n1, "peer_bad_frames") == 0
