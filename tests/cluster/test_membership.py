"""Membership and ring across real quorumkvd processes.

Every cluster here is seeded only through n1 (n1 lists itself as its seed,
every other node lists n1's peer port), with gossip.interval_ms = 200 and
gossip.phi_threshold = 8.  Times are measured with time.monotonic() from the
moment the event happened (processes launched, kill -9 reaped, fault switch
answered OK) to the first poll at which the condition held on every node,
so they include up to one poll round (~20 ms plus the queries) of slack.
Goals from the brief are reported beside each TIMING line; assertions use
generous limits and only guard against hangs.
"""

import time

import pytest

from clusterlib import (POLL, all_full_view, all_see, describe, full_view, ring_problem,
                        rings_agree, sees, time_until, wait_for)

CONVERGE_LIMIT = 15.0   # s: hang guard for discovery/rejoin
DETECT_GOAL = 5.0       # s: failure detection goal
DETECT_LIMIT = 15.0     # s: hang guard for failure detection
JOIN_GOAL = 2.0         # s: a new node visible everywhere
JOIN_UP_GOAL = 5.0      # s: a new (empty) cluster node up everywhere: it joins (settle
                        # time request_timeout_ms + 5 gossip rounds, then its transfers)
STABLE_WINDOW = 1.0     # s: a converged view must not flap for this long


def names_of(nodes):
    return [n.name for n in nodes]


def converge(nodes, t0, label, timing, goal=None):
    """Wait until every node lists every node up and every ring agrees;
    record both times (from t0) and return them."""
    names = names_of(nodes)
    t_members = time_until(lambda: all_full_view(nodes), t0, CONVERGE_LIMIT,
                           "every node to list %s up" % names, lambda: describe(nodes))
    timing(label + "_members", t_members, goal)
    t_ring = time_until(lambda: rings_agree(nodes, names), t0, CONVERGE_LIMIT,
                        "identical rings over %s on every node" % names,
                        lambda: describe(nodes, names, ring=True))
    timing(label + "_ring", t_ring, goal)
    return t_members, t_ring


def check_ring_and_stats(nodes):
    """The converged state, asserted with precise messages."""
    names = names_of(nodes)
    rings = {n.name: n.ring() for n in nodes}
    for name, r in rings.items():
        assert ring_problem(r, names) is None, "%s: %s" % (name, ring_problem(r, names))
    first = nodes[0].name
    for name, r in rings.items():
        assert r == rings[first], "ring of %s differs from ring of %s" % (name, first)
    for n in nodes:
        s = n.stats()
        assert int(s["cluster_members"]) == len(nodes), (n.name, s["cluster_members"])
        assert int(s["ring_nodes"]) == len(nodes), (n.name, s["ring_nodes"])
        assert int(s["ring_size"]) == 64 * len(nodes), (n.name, s["ring_size"])
        assert int(s["peer_bad_frames"]) == 0, (n.name, s["peer_bad_frames"])


def assert_stays_converged(nodes, window=STABLE_WINDOW):
    """Observation window (not synchronisation): for `window` seconds every
    poll must still show every node up everywhere (no failure-detector
    flapping on a healthy, idle cluster)."""
    end = time.monotonic() + window
    while time.monotonic() < end:
        assert all_full_view(nodes), "view flapped on a healthy cluster:\n" + describe(nodes)
        time.sleep(POLL * 5)


# --------------------------------------------------------------------------
# 1, 2: discovery through one seed
# --------------------------------------------------------------------------

@pytest.mark.timeout(40)
@pytest.mark.parametrize("size", [3, 5])
def test_discovery_through_one_seed(cluster, timing, size):
    nodes, t0 = cluster.start(size)
    converge(nodes, t0, "discovery_%d_nodes" % size, timing)
    check_ring_and_stats(nodes)
    assert_stays_converged(nodes)


# --------------------------------------------------------------------------
# 3: kill -9, detection, restart
# --------------------------------------------------------------------------

@pytest.mark.timeout(90)
@pytest.mark.parametrize("size,victim", [(3, "n3"), (3, "n1"), (5, "n5"), (5, "n1")],
                         ids=["3nodes-kill-n3", "3nodes-kill-seed-n1", "5nodes-kill-n5",
                              "5nodes-kill-seed-n1"])
def test_kill9_detected_and_restart_rejoins(cluster, timing, size, victim):
    nodes, t0 = cluster.start(size)
    converge(nodes, t0, "kill9_setup_%d_nodes" % size, lambda *a: None)
    dead = next(n for n in nodes if n.name == victim)
    others = [n for n in nodes if n is not dead]
    label = "%dnodes_%s" % (size, victim)

    dead.kill9()
    t_kill = time.monotonic()
    t_down = time_until(lambda: all_see(others, victim, "down"), t_kill, DETECT_LIMIT,
                        "every other node to mark %s down" % victim, lambda: describe(others))
    timing("kill9_detect_%s" % label, t_down, DETECT_GOAL)
    # the survivors still see each other up
    for o in others:
        view = o.members()
        for p in others:
            assert view[p.name]["state"] == "up", "%s sees %s %s after %s died:\n%s" % (
                o.name, p.name, view[p.name]["state"], victim, describe(others))

    # restart: same ports, same data_dir, same config
    dead.launch()
    t_start = time.monotonic()
    dead.wait_ready()
    t_up = time_until(lambda: all_full_view(nodes), t_start, CONVERGE_LIMIT,
                      "%s up again on every node (and seeing everyone up)" % victim,
                      lambda: describe(nodes))
    timing("restart_rejoin_%s" % label, t_up)
    wait_for(lambda: rings_agree(nodes, names_of(nodes)), CONVERGE_LIMIT,
             "identical rings after the restart", lambda: describe(nodes, names_of(nodes), ring=True))
    check_ring_and_stats(nodes)


# --------------------------------------------------------------------------
# 4: a late joiner
# --------------------------------------------------------------------------

@pytest.mark.timeout(40)
def test_fourth_node_joins(cluster, timing):
    nodes, t0 = cluster.start(3)
    converge(nodes, t0, "join_setup", lambda *a: None)
    new, t_launch = cluster.start(1)
    allnodes = nodes + new
    converge(allnodes, t_launch, "join_4th_node", timing, JOIN_UP_GOAL)
    check_ring_and_stats(allnodes)
    assert_stays_converged(allnodes)


# --------------------------------------------------------------------------
# 5: the fault switch
# --------------------------------------------------------------------------

def peer_drop(node, on):
    """Flip node's fault switch (documented form, no trailing space)."""
    line = "debug peer_drop %s" % ("on" if on else "off")
    reply = node.cmd(line)
    assert reply == "OK", "%r answered %r" % (line, reply)


@pytest.mark.timeout(30)
def test_debug_peer_drop_last_token_not_terminated(cluster):
    """Regression: "debug peer_drop on" (as documented, no trailing space)
    answered "CLIENT_ERROR usage: debug peer_drop on|off": mc_parse() left
    the line's last token without a NUL and conn.c strcmp()ed it (fixed in
    05d62ad).  With a trailing space it must work too."""
    node = cluster.node()
    node.launch().wait_ready()
    assert node.cmd("debug peer_drop on") == "OK"
    assert node.cmd("debug peer_drop off") == "OK"
    assert node.cmd("debug peer_drop on ") == "OK"
    assert node.cmd("debug peer_drop off ") == "OK"


@pytest.mark.timeout(90)
def test_peer_drop_cuts_and_restores(cluster, timing):
    nodes, t0 = cluster.start(3)
    converge(nodes, t0, "peer_drop_setup", lambda *a: None)
    cut = nodes[2]
    others = nodes[:2]

    assert cut.cmd("debug peer_drop maybe").startswith("CLIENT_ERROR"), "bad argument accepted"
    assert cut.cmd("debug something on").startswith("CLIENT_ERROR"), "bad subcommand accepted"
    assert all_full_view(nodes), "a rejected debug command changed something:\n" + describe(nodes)

    peer_drop(cut, True)
    t_on = time.monotonic()
    t_down = time_until(lambda: all_see(others, cut.name, "down"), t_on, DETECT_LIMIT,
                        "every other node to mark %s down" % cut.name, lambda: describe(nodes))
    timing("peer_drop_on_detect", t_down, DETECT_GOAL)
    # a cut is symmetric: the cut node hears nobody either
    t_down_inside = time_until(lambda: all(sees(cut, o.name, "down") for o in others), t_on,
                               DETECT_LIMIT, "%s to mark every other node down" % cut.name,
                               lambda: describe(nodes))
    timing("peer_drop_on_cut_node_sees_others_down", t_down_inside, DETECT_GOAL)
    for o in others:   # the two healthy nodes still see each other up
        for p in others:
            assert sees(o, p.name, "up"), describe(nodes)
    assert int(cut.stats()["peer_dropped"]) > 0, "peer_dropped did not count the cut traffic"

    peer_drop(cut, False)
    t_off = time.monotonic()
    t_up = time_until(lambda: all_full_view(nodes), t_off, CONVERGE_LIMIT,
                      "%s up again everywhere after peer_drop off" % cut.name, lambda: describe(nodes))
    timing("peer_drop_off_recover", t_up)
    wait_for(lambda: rings_agree(nodes, names_of(nodes)), CONVERGE_LIMIT,
             "identical rings after the cut healed", lambda: describe(nodes, names_of(nodes), ring=True))


@pytest.mark.timeout(30)
def test_peer_drop_refused_without_fault_injection(cluster):
    node = cluster.node(fault_injection=False)   # no [debug] section: the default
    node.launch().wait_ready()
    for line in ("debug peer_drop on", "debug peer_drop off", "debug peer_drop on ",
                 "debug peer_drop off "):
        reply = node.cmd(line)
        assert reply.startswith("CLIENT_ERROR "), "%r answered %r" % (line, reply)
    assert node.cmd("version").startswith("VERSION ")
    assert int(node.stats()["peer_dropped"]) == 0
    assert full_view(node, [node]), describe([node])
