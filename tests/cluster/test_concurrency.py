"""Many clients on one key at once (issue 7): read-modify-writes are atomic
as in memcached, conditional writes have one winner, and concurrent writes
leave replicas that converge byte for byte.

Three quorumkvd processes, n=3 r=2 w=2.  Every client is a thread with its
own connection; a barrier releases them together so their requests really
overlap.  What is checked is what a memcached user would check: 8 clients x
40 `incr ctr 1` answer exactly the numbers 1..320 and leave 320; 8 clients
appending unique tokens leave every acknowledged token exactly once; of 6
clients racing `cas` with one token exactly one gets STORED.  Through one
node, through every node, and with a non-coordinating replica killed (kill
-9) in the middle: nothing acknowledged is lost.
"""

import threading
import time

import pytest

from clusterlib import describe, wait_for
from quorumlib import QConn, lget, qconn, restart, start_converged, stat_int, wait_all_up

CLIENTS = 8
OPS = 40
IO_TIMEOUT = 10.0


def result(fmt, *args):
    print("RESULT " + (fmt % args if args else fmt))


def run_clients(nodes_for, fn, count=CLIENTS):
    """Run fn(client_index, conn) in count threads, client i connected to
    nodes_for(i), all released together.  Returns the list of fn's results
    (an exception raised by a client fails the test)."""
    barrier = threading.Barrier(count)
    out = [None] * count
    errors = []

    def body(i):
        try:
            with QConn(nodes_for(i).client_port, timeout=IO_TIMEOUT) as c:
                barrier.wait(IO_TIMEOUT)
                out[i] = fn(i, c)
        except BaseException as e:  # reported below, with the client's index
            errors.append((i, e))
            barrier.abort()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(IO_TIMEOUT * (OPS + 2))
    assert not any(t.is_alive() for t in threads), "a client thread did not finish"
    assert not errors, "client %d failed: %r" % errors[0]
    return out


def key_first_owned_by(nodes, node, prefix):
    """A key whose first live owner is node: a read-modify-write sent to
    node is not forwarded (coord_forwarded does not move)."""
    with qconn(node) as c:
        for i in range(500):
            key = "%s-%d" % (prefix, i)
            before = stat_int(node, "coord_forwarded")
            assert c.cmd("incr %s 1" % key) == "NOT_FOUND"
            if stat_int(node, "coord_forwarded") == before:
                return key
    raise AssertionError("no key among 500 has %s as its first owner\n%s" % (node.name, describe(nodes)))


def assert_one_sibling(nodes, key, want):
    with qconn(nodes[0]) as c:
        sibs = c.siblings(key, "r=all")
    assert [s["data"] for s in sibs] == [want], \
        "%s: after the run, siblings r=all shows %r" % (key, [s["data"][:80] for s in sibs])


# --------------------------------------------------------------------------
# incr: N concurrent increments add N
# --------------------------------------------------------------------------

def incr_clients(key, ops=OPS):
    def fn(i, c):
        got = []
        for _ in range(ops):
            reply = c.cmd("incr %s 1" % key)
            assert reply.isdigit(), "client %d: incr answered %r" % (i, reply)
            got.append(int(reply))
        return got
    return fn


@pytest.mark.timeout(120)
@pytest.mark.parametrize("via", ["one_node", "every_node"])
def test_concurrent_incr_adds_up(cluster, via):
    nodes, _ = start_converged(cluster, 3)
    key = "ctr-" + via
    with qconn(nodes[0]) as c:
        assert c.set(key, b"0", "w=all") == "STORED"
    t0 = time.monotonic()
    pick = (lambda i: nodes[0]) if via == "one_node" else (lambda i: nodes[i % 3])
    replies = [n for got in run_clients(pick, incr_clients(key)) for n in got]
    elapsed = time.monotonic() - t0
    total = CLIENTS * OPS
    # every increment answered a distinct number: none was applied twice
    # or to a stale value
    assert sorted(replies) == list(range(1, total + 1)), \
        "incr replies are not exactly 1..%d: %d distinct of %d, max %d" % (
            total, len(set(replies)), len(replies), max(replies))
    for n in nodes:
        with qconn(n) as c:
            assert c.get(key, "r=all") == {key: str(total).encode()}
    assert_one_sibling(nodes, key, str(total).encode())
    waits = sum(stat_int(n, "coord_key_waits") for n in nodes)
    result("concurrency incr via=%s clients=%d ops=%d final=%d time=%.2fs key_waits=%d",
           via, CLIENTS, total, total, elapsed, waits)


# --------------------------------------------------------------------------
# append: every acknowledged token is in the value, once
# --------------------------------------------------------------------------

def token(i, j):
    return "c%d.%d;" % (i, j)


def append_clients(key, ops=OPS):
    def fn(i, c):
        acked = []
        for j in range(ops):
            t = token(i, j)
            c.send("append %s 0 0 %d" % (key, len(t)), t.encode())
            reply = c.readline()
            assert reply == "STORED", "client %d: append answered %r" % (i, reply)
            acked.append(t)
        return acked
    return fn


def check_tokens(value, acked):
    """Problems with value as a concatenation holding every acked token once."""
    parts = [p + ";" for p in value.decode().split(";") if p and p != "start"]
    problems = []
    seen = {}
    for p in parts:
        seen[p] = seen.get(p, 0) + 1
    for t in acked:
        if seen.get(t, 0) != 1:
            problems.append("%s present %d times" % (t, seen.get(t, 0)))
    return problems


@pytest.mark.timeout(120)
@pytest.mark.parametrize("via", ["one_node", "every_node"])
def test_concurrent_append_keeps_every_token(cluster, via):
    nodes, _ = start_converged(cluster, 3)
    key = "log-" + via
    with qconn(nodes[0]) as c:
        assert c.set(key, b"start;", "w=all") == "STORED"
    pick = (lambda i: nodes[0]) if via == "one_node" else (lambda i: nodes[i % 3])
    acked = [t for got in run_clients(pick, append_clients(key)) for t in got]
    assert len(acked) == CLIENTS * OPS
    with qconn(nodes[1]) as c:
        value = c.get(key, "r=all")[key]
    problems = check_tokens(value, acked)
    assert not problems, "%d of %d appended tokens wrong (first 10): %s" % (
        len(problems), len(acked), problems[:10])
    assert value.startswith(b"start;")
    assert_one_sibling(nodes, key, value)
    result("concurrency append via=%s tokens=%d all_present_once=yes bytes=%d", via, len(acked), len(value))


# --------------------------------------------------------------------------
# cas: one winner per token
# --------------------------------------------------------------------------

@pytest.mark.timeout(120)
@pytest.mark.parametrize("via", ["one_node", "every_node"])
def test_cas_race_has_one_winner(cluster, via):
    nodes, _ = start_converged(cluster, 3)
    racers, rounds = 6, 10
    key = "casrace-" + via
    with qconn(nodes[0]) as c:
        assert c.set(key, b"round-0", "w=all") == "STORED"
    pick = (lambda i: nodes[0]) if via == "one_node" else (lambda i: nodes[i % 3])
    barrier = threading.Barrier(racers)
    outcome = [[None] * racers for _ in range(rounds)]

    def fn(i, c):
        for r in range(rounds):
            c.send("gets %s r=all" % key)
            blocks = c._blocks("gets")
            assert len(blocks) == 1, "client %d round %d: gets returned %r" % (i, r, blocks)
            tok = blocks[0]["token"]
            barrier.wait(IO_TIMEOUT)  # everyone holds this round's token
            v = ("r%d-by-%d" % (r + 1, i)).encode()
            c.send("cas %s 0 0 %d %s" % (key, len(v), tok), v)
            outcome[r][i] = c.readline()
            barrier.wait(IO_TIMEOUT)  # the round is over before the next gets
        return None

    run_clients(pick, fn, count=racers)
    for r in range(rounds):
        stored = [i for i in range(racers) if outcome[r][i] == "STORED"]
        others = set(outcome[r][i] for i in range(racers) if outcome[r][i] != "STORED")
        assert len(stored) == 1, "round %d: %d cas got STORED with one token: %r" % (
            r, len(stored), outcome[r])
        assert others <= {"EXISTS"}, "round %d: losers answered %r" % (r, others)
    with qconn(nodes[2]) as c:
        final = c.get(key, "r=all")[key]
    assert final.startswith(b"r%d-by-" % rounds), final
    result("concurrency cas via=%s racers=%d rounds=%d winners_per_round=1", via, racers, rounds)


# --------------------------------------------------------------------------
# concurrent sets through two nodes: replicas converge byte for byte
# --------------------------------------------------------------------------

def replica_views(nodes, key):
    return [[(b["vv"], b["ts"], b["state"], b["flags"], b["token"], b["data"]) for b in lget(n, key)]
            for n in nodes]


@pytest.mark.timeout(120)
def test_concurrent_writes_through_two_nodes_converge(cluster):
    """Half the clients set, half append, to the same 5 keys through n1 and
    n2; after one r=all read of each key every replica holds the same
    object, byte for byte (lget: vector, timestamps, flags, values)."""
    nodes, _ = start_converged(cluster, 3)
    keys = ["shared-%d" % k for k in range(5)]
    with qconn(nodes[0]) as c:
        for key in keys:
            assert c.set(key, b"init;", "w=all") == "STORED"
    set_values = {b"init;"}

    def fn(i, c):
        for j in range(OPS):
            key = keys[j % len(keys)]
            if i % 2 == 0:
                v = ("set-%d-%d;" % (i, j)).encode()
                set_values.add(v)
                reply = c.set(key, v, flags=i)
            else:
                t = token(i, j)
                c.send("append %s 0 0 %d" % (key, len(t)), t.encode())
                reply = c.readline()
            assert reply == "STORED", "client %d: answered %r" % (i, reply)
        return None

    run_clients(lambda i: nodes[i % 2], fn)
    for key in keys:
        with qconn(nodes[2]) as c:
            got = c.get(key, "r=all")[key]
        head = got.split(b";")[0] + b";"
        assert head in set_values, "%s reads %r, which starts with no value anybody set" % (key, got[:60])
        # the r=all read repairs every replica that differs from the merge;
        # the repair is sent after the reply, so wait for it to land
        wait_for(lambda: all(v == replica_views(nodes, key)[0] for v in replica_views(nodes, key)),
                 10.0, "%s: lget identical on every replica" % key,
                 lambda: "\n".join("%s: %r" % (n.name, v) for n, v in zip(nodes, replica_views(nodes, key))))
        assert replica_views(nodes, key)[0], "%s: no replica holds it" % key
    result("concurrency set+append via=n1,n2 clients=%d keys=%d replicas_identical=yes", CLIENTS, len(keys))


# --------------------------------------------------------------------------
# kill -9 of a replica that does not coordinate, in the middle of the run
# --------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_concurrent_rmw_survive_kill9_of_a_replica(cluster):
    nodes, _ = start_converged(cluster, 3, {"storage.sync": "false"})
    n1, n2, n3 = nodes
    ctr = key_first_owned_by(nodes, n1, "kctr")
    log = key_first_owned_by(nodes, n1, "klog")
    with qconn(n1) as c:
        assert c.set(ctr, b"0", "w=all") == "STORED"
        assert c.set(log, b"start;", "w=all") == "STORED"
    half = threading.Event()     # half the planned operations are done: kill now
    killed = threading.Event()
    done_ops = [0]
    lock = threading.Lock()

    def fn(i, c):
        """Until OPS operations are done AND OPS // 2 of them after the kill."""
        acked_n, acked_t, failed = [], [], 0
        j = after = 0
        while j < OPS or after < OPS // 2:
            if killed.is_set():
                after += 1
            if i % 2 == 0:
                reply = c.cmd("incr %s 1" % ctr)
                if reply.isdigit():
                    acked_n.append(int(reply))
                else:
                    failed += 1
            else:
                t = token(i, j)
                c.send("append %s 0 0 %d" % (log, len(t)), t.encode())
                reply = c.readline()
                if reply == "STORED":
                    acked_t.append(t)
                else:
                    failed += 1
            j += 1
            with lock:
                done_ops[0] += 1
                if done_ops[0] == CLIENTS * OPS // 2:
                    half.set()
        return acked_n, acked_t, failed

    killer_error = []

    def killer():
        try:
            half.wait(60)
            n3.kill9()
            killed.set()
        except BaseException as e:
            killer_error.append(e)

    k = threading.Thread(target=killer, daemon=True)
    k.start()
    out = run_clients(lambda i: n1 if i < CLIENTS // 2 else n2, fn)
    k.join(70)
    assert not killer_error, killer_error
    assert killed.is_set() and not n3.alive(), "n3 was not killed during the run"
    acked_n = [x for a, _, _ in out for x in a]
    acked_t = [x for _, a, _ in out for x in a]
    failed = sum(f for _, _, f in out)
    assert acked_n and acked_t
    assert len(set(acked_n)) == len(acked_n), "an incr number was answered twice"

    def check(via, r):
        with qconn(via) as c:
            got = c.get([ctr, log], r)
        final = int(got[ctr])
        # every acknowledged increment is in the counter; failed ones may
        # or may not have been applied (as in Dynamo), never more than tried
        assert final >= len(acked_n) and final >= max(acked_n), \
            "%s: counter %d < %d acknowledged increments (max answered %d)" % (
                via.name, final, len(acked_n), max(acked_n))
        assert final <= len(acked_n) + failed
        problems = check_tokens(got[log], acked_t)
        assert not problems, "%s: %d acknowledged tokens wrong: %s" % (via.name, len(problems), problems[:10])
        return final

    final = check(n1, "r=2")
    check(n2, "r=2")
    restart(n3)
    wait_all_up(nodes)
    assert check(n3, "r=all") == final
    assert_one_sibling(nodes, ctr, str(final).encode())
    result("concurrency kill9 incr_acked=%d appends_acked=%d failed=%d counter=%d",
           len(acked_n), len(acked_t), failed, final)


# --------------------------------------------------------------------------
# bad input: a cas token naming a version nobody had
# --------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_cas_with_a_made_up_token_changes_nothing(cluster):
    nodes, _ = start_converged(cluster, 3)
    with qconn(nodes[0]) as c:
        assert c.set("real", b"v1", "w=all") == "STORED"
        c.send("gets real r=all")
        real_token = int(c._blocks("gets")[0]["token"])
    for n in nodes:
        with qconn(n) as c:
            for tok in (1, real_token + 1, real_token ^ (1 << 63), 2 ** 64 - 1):
                c.send("cas real 0 0 3 %d" % tok, b"bad")
                assert c.readline() == "EXISTS", "%s: cas with token %d" % (n.name, tok)
                c.send("cas missing-key 0 0 3 %d" % tok, b"bad")
                assert c.readline() == "NOT_FOUND"
            assert c.get("real", "r=all") == {"real": b"v1"}
    for n in nodes:
        assert [b["data"] for b in lget(n, "real")] == [b"v1"]
    # the real token still works (nothing above changed the key's version)
    with qconn(nodes[1]) as c:
        c.send("cas real 0 0 2 %d" % real_token, b"v2")
        assert c.readline() == "STORED"
