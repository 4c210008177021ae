"""Untrusted input on the peer port never takes a node down.

The peer protocol (common/frame.h): a 4-byte big-endian payload length, then
one msgpack array [version=1, type, kind, req_id, ttl_ms, body].  A
malformed or oversized frame must close that connection only and count in
`stats` peer_bad_frames; a well-framed message with a bad body must be
ignored and count in gossip_bad_messages.

Each case runs against n1 (the seed) of a fresh converged 3-node cluster.
After it: n1's process is still running, it answers `version`, its
`members` still lists every node up, the other nodes still list n1 up, and
the counter that applies went up.
"""

import random
import socket
import struct
import time

import pytest

from clusterlib import IO_TIMEOUT, all_full_view, describe, full_view, wait_for

# --------------------------------------------------------------------------
# A minimal msgpack encoder (python3-msgpack is not assumed)
# --------------------------------------------------------------------------


def mp(obj):
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 128:
            return bytes([obj])
        if 0 <= obj < 1 << 64:
            return b"\xcf" + struct.pack(">Q", obj)
        if -32 <= obj < 0:
            return struct.pack(">b", obj)
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, str):
        b = obj.encode()
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xdb" + struct.pack(">I", len(b))) + b
    if isinstance(obj, bytes):
        return b"\xc6" + struct.pack(">I", len(obj)) + obj
    if isinstance(obj, (list, tuple)):
        head = bytes([0x90 | len(obj)]) if len(obj) < 16 else b"\xdd" + struct.pack(">I", len(obj))
        return head + b"".join(mp(x) for x in obj)
    raise TypeError(obj)


def mp_decode(buf, off=0):
    """(object, next offset) for the subset of msgpack the replies use:
    nil, bool, ints, str, bin, arrays."""
    b = buf[off]
    off += 1
    if b <= 0x7f:
        return b, off
    if b >= 0xe0:
        return b - 256, off
    if 0x90 <= b <= 0x9f:
        out = []
        for _ in range(b & 0x0f):
            x, off = mp_decode(buf, off)
            out.append(x)
        return out, off
    if 0xa0 <= b <= 0xbf:
        n = b & 0x1f
        return buf[off:off + n].decode("latin1"), off + n
    fixed = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q", 0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q"}
    if b in fixed:
        n = struct.calcsize(fixed[b])
        return struct.unpack(fixed[b], buf[off:off + n])[0], off + n
    if b in (0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6):
        ln = {0xd9: 1, 0xc4: 1, 0xda: 2, 0xc5: 2, 0xdb: 4, 0xc6: 4}[b]
        n = int.from_bytes(buf[off:off + ln], "big")
        off += ln
        data = buf[off:off + n]
        return (data.decode("latin1") if b >= 0xd9 else data), off + n
    if b == 0xdc or b == 0xdd:
        ln = 2 if b == 0xdc else 4
        cnt = int.from_bytes(buf[off:off + ln], "big")
        off += ln
        out = []
        for _ in range(cnt):
            x, off = mp_decode(buf, off)
            out.append(x)
        return out, off
    if b in (0xc0, 0xc2, 0xc3):
        return {0xc0: None, 0xc2: False, 0xc3: True}[b], off
    raise AssertionError("unexpected msgpack byte 0x%02x in a reply" % b)


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


MSG_PING, MSG_GOSSIP_SYN, MSG_GOSSIP_ACK, MSG_GOSSIP_ACK2 = 1, 2, 3, 4
REQUEST, RESPONSE, ONEWAY = 0, 1, 2


def envelope(type_, kind, req_id, body_bytes, version=1, ttl=1000):
    """A frame whose envelope is well-formed and whose body is raw msgpack."""
    return frame(b"\x96" + mp(version) + mp(type_) + mp(kind) + mp(req_id) + mp(ttl) + body_bytes)


# --------------------------------------------------------------------------
# Peer connection helpers
# --------------------------------------------------------------------------

def peer_connect(node):
    s = socket.create_connection(("127.0.0.1", node.peer_port), timeout=IO_TIMEOUT)
    s.settimeout(IO_TIMEOUT)
    return s


def send_tolerant(s, data):
    """sendall, but a node that already closed on us is not an error."""
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def closed_by_peer(s, timeout=IO_TIMEOUT):
    """True if the node closes this connection within timeout (EOF or RST),
    False if it is still open at the deadline.  Discards anything received."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        s.settimeout(left)
        try:
            if not s.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


class FrameReader:
    """Frames from a peer socket, buffered (one recv may hold several);
    every read bounded by a deadline."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def read(self, timeout=IO_TIMEOUT):
        """The next frame's payload bytes."""
        deadline = time.monotonic() + timeout
        need = 4
        while True:
            if len(self.buf) >= 4:
                plen = struct.unpack(">I", self.buf[:4])[0]
                assert plen < 1 << 20, "reply frame of %d bytes" % plen
                need = 4 + plen
                if len(self.buf) >= need:
                    payload, self.buf = self.buf[4:need], self.buf[need:]
                    return payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete frame within %.1fs (have %r, need %d bytes)"
                                     % (timeout, self.buf[:64], need))
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("node closed the peer connection (have %r)" % self.buf[:64])
            self.buf += chunk


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------

def _random_bytes():
    # seeded, so every run sends the same bytes; the first byte is non-zero
    # (checked below), so the length prefix is >= 16 MiB: over any frame limit
    data = random.Random(20240611).randbytes(65536)
    assert data[0] != 0
    return data


# name -> (bytes to send, close_after_send, expect: "bad_frame" | "none")
#   bad_frame: the node must close the connection and count peer_bad_frames
#   none: incomplete input; we close; nothing required but survival
CASES = {
    "a_random_bytes": (_random_bytes(), False, "bad_frame"),
    "b_length_ffffffff": (b"\xff\xff\xff\xff" + b"x" * 64, False, "bad_frame"),
    "b_length_ffffffff_alone": (b"\xff\xff\xff\xff", False, "bad_frame"),
    "c_garbage_msgpack_c1": (frame(b"\xc1" * 32), False, "bad_frame"),
    "c_garbage_random_payload": (frame(random.Random(7).randbytes(200)), False, "bad_frame"),
    "c_array_claims_4G_items": (frame(b"\xdd\xff\xff\xff\xff\x00"), False, "bad_frame"),
    "c_map_claims_4G_pairs": (frame(b"\xdf\xff\xff\xff\xff\x00\x00"), False, "bad_frame"),
    "c_str_claims_4G_bytes": (frame(b"\xdb\xff\xff\xff\xffabc"), False, "bad_frame"),
    "c_nested_100k_deep": (frame(b"\x91" * 100000 + b"\x00"), False, "bad_frame"),
    "c_valid_msgpack_not_an_envelope": (frame(mp("hello")), False, "bad_frame"),
    "c_envelope_wrong_version": (envelope(MSG_PING, REQUEST, 1, mp("x"), version=99), False, "bad_frame"),
    "c_envelope_trailing_bytes": (frame(mp([1, MSG_PING, REQUEST, 1, 1000, "x"]) + b"\x00"), False, "bad_frame"),
    "c_zero_length": (b"\x00\x00\x00\x00", False, "bad_frame"),
    "d_truncated_payload_then_close": (frame(mp([1, MSG_PING, REQUEST, 1, 1000, "n1"]))[:9], True, "none"),
    "d_truncated_header_then_close": (b"\x00\x00", True, "none"),
    "d_big_length_partial_then_close": (struct.pack(">I", 1 << 20) + b"\x00" * 1000, True, "none"),
}


def stat(node, key):
    return int(node.stats()[key])


def assert_healthy(target, nodes):
    assert target.alive(), "%s died (exit %s); log:\n%s" % (target.name, target.proc.returncode, target.log_tail())
    reply = target.cmd("version")
    assert reply.startswith("VERSION "), "version answered %r" % reply
    assert full_view(target, nodes), "%s's members no longer shows everyone up:\n%s" % (
        target.name, describe(nodes))
    assert all_full_view(nodes), "the cluster no longer agrees everyone is up:\n" + describe(nodes)


@pytest.fixture
def converged3(cluster):
    nodes, _ = cluster.start(3)
    wait_for(lambda: all_full_view(nodes), 15, "3 nodes to converge", lambda: describe(nodes))
    return nodes


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_peer_input_does_not_crash(converged3, case):
    nodes = converged3
    target = nodes[0]
    data, close_after, expect = CASES[case]
    bad0 = stat(target, "peer_bad_frames")

    s = peer_connect(target)
    try:
        send_tolerant(s, data)
        if close_after:
            s.close()
        else:
            assert closed_by_peer(s), "%s kept the connection open after %s" % (target.name, case)
    finally:
        s.close()

    if expect == "bad_frame":
        wait_for(lambda: stat(target, "peer_bad_frames") > bad0, 5,
                 "peer_bad_frames to count %s" % case)
    assert_healthy(target, nodes)
    assert stat(target, "peer_bad_frames") >= bad0


@pytest.mark.timeout(30)
def test_ping_positive_control(converged3):
    """Proves the framing used above is right: a well-formed PING request on
    a raw peer connection is answered with a PING response carrying the
    same req_id and the node's name."""
    target = converged3[0]
    s = peer_connect(target)
    try:
        s.sendall(envelope(MSG_PING, REQUEST, 4242, mp("prober")))
        payload = FrameReader(s).read()
    finally:
        s.close()
    obj, end = mp_decode(payload)
    assert end == len(payload), "trailing bytes in the reply frame %r" % payload
    assert isinstance(obj, list) and len(obj) == 6, obj
    version, type_, kind, req_id, ttl, body = obj
    assert (version, type_, kind, req_id) == (1, MSG_PING, RESPONSE, 4242), obj
    assert body == target.name, obj
    assert stat(target, "peer_bad_frames") == 0


MSG_REPLICA_GET, MSG_REPLICA_PUT, MSG_COORD_WRITE, MSG_FLUSH = 5, 6, 7, 8
MSG_GOSSIP_MAIL = 15
PROBE_ID = 777777

# Well-framed messages whose body is wrong.  Each is sent, then a PING
# request on the same connection: its answer proves the node read past the
# bad message and kept the connection (answers to the bad request itself, an
# error status, are skipped).  Gossip bodies must also count in
# gossip_bad_messages, as server/cluster.c documents.
BAD_BODIES = {
    "syn_body_not_array": envelope(MSG_GOSSIP_SYN, REQUEST, 1, mp(17)),
    "syn_digest_wrong_types": envelope(MSG_GOSSIP_SYN, REQUEST, 2, mp([[1, "x", "y"]])),
    "syn_too_many_digests": envelope(MSG_GOSSIP_SYN, REQUEST, 3,
                                     mp([["m%d" % i, 1, 1] for i in range(1100)])),
    "syn_as_oneway": envelope(MSG_GOSSIP_SYN, ONEWAY, 0, mp([])),
    "ack2_entry_short": envelope(MSG_GOSSIP_ACK2, ONEWAY, 0, mp([["evil", "127.0.0.1", 1]])),
    "ack2_entry_port_0": envelope(MSG_GOSSIP_ACK2, ONEWAY, 0,
                                  mp([["evil", "127.0.0.1", 0, 0, 1, 1, 1]])),
    "ack2_entry_bad_status": envelope(MSG_GOSSIP_ACK2, ONEWAY, 0,
                                      mp([["evil", "127.0.0.1", 1, 2, 1, 1, 99]])),
    "ack2_name_with_space": envelope(MSG_GOSSIP_ACK2, ONEWAY, 0,
                                     mp([["ev il", "127.0.0.1", 1, 2, 1, 1, 1]])),
    "ack2_name_too_long": envelope(MSG_GOSSIP_ACK2, ONEWAY, 0,
                                   mp([["e" * 300, "127.0.0.1", 1, 2, 1, 1, 1]])),
    "unknown_type_99": envelope(99, REQUEST, 5, mp(None)),
    "unknown_type_255_oneway": envelope(255, ONEWAY, 0, mp([1, 2, 3])),
    "replica_get_not_array": envelope(MSG_REPLICA_GET, REQUEST, 6, mp("k")),
    "replica_get_empty_key": envelope(MSG_REPLICA_GET, REQUEST, 7, mp([b"", ""])),
    "replica_get_key_too_long": envelope(MSG_REPLICA_GET, REQUEST, 8, mp([b"k" * 5000, ""])),
    "replica_put_garbage_object": envelope(MSG_REPLICA_PUT, REQUEST, 9,
                                           mp([b"k", "", random.Random(3).randbytes(300)])),
    "replica_put_object_not_bin": envelope(MSG_REPLICA_PUT, REQUEST, 10, mp([b"k", "", 12])),
    "coord_write_short": envelope(MSG_COORD_WRITE, REQUEST, 11, mp([b"k", 1])),
    "coord_write_bad_cmd_and_quorum": envelope(MSG_COORD_WRITE, REQUEST, 12,
                                               mp([b"k", 9999, 0, 0, b"v", 0, 0, 0, 1000])),
    "flush_wrong_type": envelope(MSG_FLUSH, REQUEST, 13, mp(["soon"])),
    "replica_get_as_response": envelope(MSG_REPLICA_GET, RESPONSE, 14, mp(None)),
    # The bodies of issue 13 (server/msg.h), well-formed msgpack of
    # the right shape with one bad item each: gossip/ refuses them whole.
    "syn_rumor_unknown_kind": envelope(MSG_GOSSIP_SYN, REQUEST, 15, mp(
        [["evil", 5, 0, 1], 0, 1, 0, [], [], [[7, ["x", 5, 0, 0]]]])),
    "syn_too_many_rumors": envelope(MSG_GOSSIP_SYN, REQUEST, 16, mp(
        [["evil", 5, 0, 1], 0, 1, 0, [], [], [[1, ["x%d" % i, 5, 0, 0]] for i in range(9)]])),
    "syn_too_many_heartbeats": envelope(MSG_GOSSIP_SYN, REQUEST, 17, mp(
        [["evil", 5, 0, 1], 0, 1, 0, [], [["x%d" % i, 5, 0, 0] for i in range(9)], []])),
    "syn_buckets_not_power_of_2": envelope(MSG_GOSSIP_SYN, REQUEST, 18, mp(
        [["evil", 5, 0, 1], 0, 3, 0, [], [], []])),
    "syn_sender_generation_0": envelope(MSG_GOSSIP_SYN, REQUEST, 19, mp(
        [["evil", 0, 0, 1], 0, 1, 0, [], [], []])),
    "syn_entry_rumor_port_0": envelope(MSG_GOSSIP_SYN, REQUEST, 20, mp(
        [["evil", 5, 0, 1], 0, 1, 0, [], [], [[0, ["evil", "127.0.0.1", 1, 0, 5, 0, 1, 0]]]])),
    "ack2_entry8_port_0": envelope(MSG_GOSSIP_ACK2, ONEWAY, 0,
                                   mp([["evil", "127.0.0.1", 1, 0, 5, 0, 1, 0]])),
    "mail_entry_short": envelope(MSG_GOSSIP_MAIL, REQUEST, 21, mp(["evil", "127.0.0.1", 1])),
    "mail_host_not_ipv4": envelope(MSG_GOSSIP_MAIL, REQUEST, 22,
                                   mp(["evil", "example.com", 1, 2, 5, 0, 1, 0])),
    "mail_as_oneway": envelope(MSG_GOSSIP_MAIL, ONEWAY, 0,
                               mp(["evil", "127.0.0.1", 1, 2, 5, 0, 1, 0])),
}
GOSSIP_CASES = {k for k in BAD_BODIES if k.startswith(("syn_", "ack2_", "mail_"))}


def await_ping_reply(s, req_id, timeout=IO_TIMEOUT):
    """Read frames until the PING response to req_id; returns its body."""
    deadline = time.monotonic() + timeout
    reader = FrameReader(s)
    for _ in range(100):
        payload = reader.read(max(0.05, deadline - time.monotonic()))
        obj, _end = mp_decode(payload)
        if isinstance(obj, list) and len(obj) == 6 and obj[1] == MSG_PING and obj[3] == req_id:
            assert obj[2] == RESPONSE, obj
            return obj[5]
    raise AssertionError("no PING reply among 100 frames")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_message_body_is_ignored(converged3, case):
    nodes = converged3
    target = nodes[0]
    bad0 = stat(target, "gossip_bad_messages")
    s = peer_connect(target)
    try:
        s.sendall(BAD_BODIES[case])
        s.sendall(envelope(MSG_PING, REQUEST, PROBE_ID, mp("prober")))
        assert await_ping_reply(s, PROBE_ID) == target.name
    finally:
        s.close()
    if case in GOSSIP_CASES:
        wait_for(lambda: stat(target, "gossip_bad_messages") > bad0, 5,
                 "gossip_bad_messages to count %s" % case)
    assert_healthy(target, nodes)
    names = set(target.members())
    assert names == {n.name for n in nodes}, "a rejected message added members: %s" % sorted(names)
    assert stat(target, "peer_bad_frames") == 0, "a well-framed message counted as a bad frame"


@pytest.mark.timeout(30)
def test_gossip_flood_from_one_peer_is_throttled(converged3):
    """Issue 13: a peer sending SYNs as fast as it can (well-formed ones,
    from a sender that is not a member) gets a bounded number answered; the
    rest are refused and counted in gossip_throttled, and the node stays
    healthy and adds nobody."""
    nodes = converged3
    target = nodes[0]
    throttled0 = stat(target, "gossip_throttled")
    syn = mp([["flooder", 5, 0, 1], 0, 1, 0, [], [], []])
    s = peer_connect(target)
    try:
        s.sendall(b"".join(envelope(MSG_GOSSIP_SYN, REQUEST, 1000 + i, syn) for i in range(500)))
        s.sendall(envelope(MSG_PING, REQUEST, PROBE_ID, mp("prober")))
        assert await_ping_reply(s, PROBE_ID) == target.name
    finally:
        s.close()
    wait_for(lambda: stat(target, "gossip_throttled") >= throttled0 + 400, 5,
             "gossip_throttled to count the flood")
    assert_healthy(target, nodes)
    assert set(target.members()) == {n.name for n in nodes}
    assert stat(target, "peer_bad_frames") == 0
