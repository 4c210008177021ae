"""node.cluster_secret: nodes that share it form a cluster; a node with
another secret never gets in, and a forged gossip frame without the
secret's HMAC is refused (before, one forged ACK2 frame put a phantom node
on every ring).  Timings poll with deadlines."""

import hashlib
import hmac
import socket
import struct
import time

import pytest

from clusterlib import IO_TIMEOUT, wait_for
from quorumlib import start_converged
from test_peer_input import MSG_GOSSIP_ACK2, ONEWAY, envelope, mp

SECRET = "correct horse battery staple"


def signed(frame_bytes, secret):
    """frame_bytes (length + payload) re-framed with the HMAC trailer."""
    payload = frame_bytes[4:]
    head = struct.pack(">I", len(payload) + 32)
    key = hashlib.sha256(secret.encode()).digest()
    return head + payload + hmac.new(key, head + payload, hashlib.sha256).digest()


def forged_ack2(name):
    # [name, host, client_port, peer_port, generation, version, status,
    #  heartbeat] (server/msg.h)
    entry = [name, "127.0.0.1", 1, 9, int(time.time() * 1000), 1000000, 1, 0]
    return envelope(MSG_GOSSIP_ACK2, ONEWAY, 0, mp([entry]))


def send_raw(node, data):
    s = socket.create_connection(("127.0.0.1", node.peer_port), timeout=IO_TIMEOUT)
    try:
        s.sendall(data)
        time.sleep(0.05)
    finally:
        s.close()


def members(node):
    return set(node.members())


@pytest.mark.timeout(90)
def test_secret_keeps_outsiders_and_forgeries_out(cluster):
    nodes, t_conv = start_converged(cluster, 3, settings={"node.cluster_secret": SECRET})
    n1 = nodes[0]
    print("RESULT secret 3 nodes converged in %.2fs" % t_conv)

    # a node with the wrong secret, seeded through n1, never gets in
    intruder = cluster.node(name="intruder", settings={"node.cluster_secret": "guess"})
    intruder.launch()
    intruder.wait_ready()
    bad0 = int(n1.stats()["peer_bad_frames"])
    wait_for(lambda: int(intruder.stats()["gossip_rounds"]) >= 15, 20,
             "the intruder to gossip for 15 rounds")
    assert "intruder" not in members(n1)
    assert set(intruder.members()) == {"intruder"}
    assert int(n1.stats()["peer_bad_frames"]) > bad0

    # an unsigned forged ACK2 is refused; a signed one with the right
    # secret is accepted (proving the forgery is well formed)
    bad1 = int(n1.stats()["peer_bad_frames"])
    send_raw(n1, forged_ack2("phantom"))
    wait_for(lambda: int(n1.stats()["peer_bad_frames"]) > bad1, 10, "the forgery to be refused")
    send_raw(n1, signed(forged_ack2("phantom"), "guess"))
    wait_for(lambda: int(n1.stats()["peer_bad_frames"]) > bad1 + 1, 10,
             "the frame signed with the wrong secret to be refused")
    assert "phantom" not in members(n1)
    assert int(n1.stats()["ring_nodes"]) == 3
    send_raw(n1, signed(forged_ack2("insider"), SECRET))
    wait_for(lambda: "insider" in members(n1), 10, "a correctly signed entry to be applied")
    for n in nodes:
        assert n.alive()
