"""quorumkv's own commands and options (PROTOCOL.md section 3): lget, r=/w=
tokens, consistency.  Not memcached features, so skipped for that target."""

import re

import pytest

from conftest import only_quorumkv

pytestmark = only_quorumkv

SIBLING_RE = re.compile(rb"SIBLING (\S+) (\d+(?:\.\d+)?) (live|deleted)")


def lget(c, k):
    """[(vv, timestamp, state, flags, data, token)] from `lget k`."""
    c.send(b"lget %s\r\n" % k.encode())
    out = []
    while True:
        line = c.readline()
        if line == b"END":
            return out
        m = SIBLING_RE.fullmatch(line)
        assert m, "expected SIBLING or END, got %r" % line
        head = c.readline()
        parts = head.split(b" ")
        assert len(parts) == 5 and parts[0] == b"VALUE" and parts[1] == k.encode(), \
            "expected 'VALUE %s <flags> <bytes> <token>', got %r" % (k, head)
        data = c.read_exact(int(parts[3]) + 2)
        assert data.endswith(b"\r\n")
        out.append((m.group(1), float(m.group(2)), m.group(3), int(parts[2]), data[:-2], int(parts[4])))


def test_lget_after_set(conn, key):
    k = key()
    assert conn.set(k, b"hello", flags=12) == b"STORED"
    sibs = lget(conn, k)
    assert len(sibs) == 1, sibs
    vv, ts, state, flags, data, token = sibs[0]
    assert (state, flags, data) == (b"live", 12, b"hello")


def test_lget_after_overwrite_shows_one_newer_sibling(conn, key):
    k = key()
    conn.set(k, b"one")
    (vv1, ts1, _, _, _, _), = lget(conn, k)
    conn.set(k, b"two")
    sibs = lget(conn, k)
    assert len(sibs) == 1, "a write that saw the old version must supersede it: %r" % sibs
    vv2, ts2, state, _, data, _ = sibs[0]
    assert (state, data) == (b"live", b"two")
    assert vv2 != vv1
    assert ts2 >= ts1


def test_lget_after_delete_shows_tombstone(conn, key):
    k = key()
    conn.set(k, b"hello")
    (vv1, ts1, _, _, _, _), = lget(conn, k)
    assert conn.cmd("delete %s" % k) == b"DELETED"
    conn.send(b"lget %s\r\n" % k.encode())
    line = conn.readline()
    m = SIBLING_RE.fullmatch(line)
    assert m and m.group(3) == b"deleted", line
    head = conn.readline()
    assert re.fullmatch(rb"VALUE %s \d+ 0 \d+" % re.escape(k.encode()), head), head
    assert conn.readline() == b""          # the empty data block
    assert conn.readline() == b"END"
    assert m.group(1) != vv1
    assert conn.get(k) is None


def test_lget_missing_key_is_just_end(conn, key):
    assert conn.cmd("lget %s" % key()) == b"END"


def test_version_reply(conn):
    assert conn.cmd("version").startswith(b"VERSION ")


def test_per_request_levels(conn, key):
    k = key()
    assert conn.set(k, b"hello", extra=b"w=all") == b"STORED"
    for level in ("one", "quorum", "all", "1"):
        conn.send(b"get %s r=%s\r\n" % (k.encode(), level.encode()))
        assert conn.read_values() == [(k, 0, b"hello", None)], level
    assert conn.cmd("delete %s w=one" % k) == b"DELETED"
    assert conn.get(k) is None


def test_consistency_command(server):
    with server.conn() as c:
        assert c.cmd("consistency r=one w=all") == b"OK"
        assert c.cmd("consistency") == b"CONSISTENCY r=one w=all"
