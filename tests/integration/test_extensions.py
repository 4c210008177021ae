"""quorumkv's own commands and options (PROTOCOL.md section 3): lget, vget,
r=/w=/ctx= tokens, consistency.  Not memcached features, so skipped for that
target."""

import re
import time

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


# ---------------------------------------------------------------- issue 8, quorumkv's side

JUNK = b"bogus12"   # a data block that answers ERROR if it is read as a command


def _swallowed(c):
    """The data block after a rejected storage line was not read as a command."""
    line = c.cmd("version")
    assert line.startswith(b"VERSION "), "data block read as a command: %r" % line


@pytest.mark.parametrize("opt,reply", [
    (b"w=0", b"CLIENT_ERROR bad consistency level"),
    (b"w=bogus", b"CLIENT_ERROR bad consistency level"),
    (b"w=17", b"CLIENT_ERROR bad consistency level"),
    (b"r=x w=all", b"CLIENT_ERROR bad consistency level"),
    (b"w=5", b"CLIENT_ERROR consistency level exceeds replication factor n=1"),
    (b"ctx=[zz]", b"CLIENT_ERROR bad context"),
    (b"bogus", b"ERROR"),
])
def test_storage_command_rejected_for_an_option_swallows_its_data(conn, key, opt, reply):
    # issue 8 item 6: "set x 0 0 1 w=0" answered the error and then read
    # the data line as a command
    k = key()
    assert conn.set(k, b"old") == b"STORED"
    conn.send(b"set %s 0 0 %d %s\r\n%s\r\n" % (k.encode(), len(JUNK), opt, JUNK))
    assert conn.readline() == reply
    _swallowed(conn)
    conn.send(b"set %s 0 0 %d %s noreply\r\n%s\r\n" % (k.encode(), len(JUNK), opt, JUNK))
    if reply == b"ERROR":
        assert conn.readline() == reply   # a wrong count is answered even with noreply
    _swallowed(conn)
    assert conn.get(k) == b"old"


@pytest.mark.parametrize("verb", ["add", "replace", "append", "prepend", "cas"])
def test_every_storage_command_swallows_after_a_bad_option(conn, key, verb):
    k = key()
    cas = b" 1" if verb == "cas" else b""
    conn.send(b"%s %s 0 0 %d%s W=none\r\n%s\r\n" % (verb.encode(), k.encode(), len(JUNK), cas, JUNK))
    assert conn.readline() == b"CLIENT_ERROR bad consistency level"
    _swallowed(conn)
    conn.send(b"%s %s 0 0 %d%s ctx=[]\r\n%s\r\n" % (verb.encode(), k.encode(), len(JUNK), cas, JUNK))
    assert conn.readline() == b"CLIENT_ERROR ctx= is only valid on set and delete"
    _swallowed(conn)


def test_level_names_and_keys_in_any_case(conn, key):
    # issue 8 item 7: "W=ALL" answered ERROR
    k = key()
    assert conn.set(k, b"v", extra=b"W=ALL") == b"STORED"
    conn.send(b"get %s R=One\r\n" % k.encode())
    assert conn.read_values() == [(k, 0, b"v", None)]
    assert conn.set(k, b"w", extra=b"w=QUORUM") == b"STORED"
    assert conn.cmd("delete %s W=1" % k) == b"DELETED"


def test_consistency_with_one_level_sets_both(server):
    with server.conn() as c:
        assert c.cmd("consistency one") == b"OK"
        assert c.cmd("consistency") == b"CONSISTENCY r=one w=one"
        assert c.cmd("consistency ALL") == b"OK"
        assert c.cmd("consistency") == b"CONSISTENCY r=all w=all"
        assert c.cmd("consistency R=1 W=Quorum") == b"OK"
        assert c.cmd("consistency") == b"CONSISTENCY r=1 w=quorum"
        assert c.cmd("consistency quorum w=one") == b"OK"
        assert c.cmd("consistency") == b"CONSISTENCY r=quorum w=one"
        assert c.cmd("consistency bogus") == b"CLIENT_ERROR bad consistency level"
        assert c.cmd("consistency one all") == b"CLIENT_ERROR bad consistency level"
        assert c.cmd("consistency 2") == b"CLIENT_ERROR consistency level exceeds replication factor n=1"
        assert c.cmd("consistency") == b"CONSISTENCY r=quorum w=one"


def test_http_requests_are_counted(fresh_server):
    with fresh_server.conn() as c:
        assert int(c.stats()["http_requests_refused"]) == 0
    for _ in range(2):
        with fresh_server.conn() as h:
            h.send(b"GET / HTTP/1.1\r\n\r\n")
            try:
                assert h.read_until_closed() == b""
            except ConnectionResetError:
                pass
    with fresh_server.conn() as c:
        assert int(c.stats()["http_requests_refused"]) == 2


def test_long_get_line_takes_options_before_its_keys(conn, key):
    # a get line over 64 KiB is executed as it arrives, so its levels must
    # be known before the first key goes out
    keys = ["lo-%d" % i for i in range(12000)]
    assert conn.set(keys[5], b"v") == b"STORED"
    conn.send(("get r=one " + " ".join(keys)).encode() + b"\r\n")
    assert conn.read_values(timeout=30) == [(keys[5], 0, b"v", None)]
    conn.send(("get " + " ".join(keys) + " r=one").encode() + b"\r\n")
    vals = []
    while True:
        line = conn.readline(timeout=30)
        if not line.startswith(b"VALUE "):
            break
        vals.append(conn.read_exact(int(line.split(b" ")[3]) + 2))
    assert line == b"CLIENT_ERROR in a get line over 64 KiB, r= and w= must come before the keys"
    assert conn.cmd("version").startswith(b"VERSION ")
    conn.send(("get r=9 " + " ".join(keys)).encode() + b"\r\n")
    assert conn.readline(timeout=30) == b"CLIENT_ERROR consistency level exceeds replication factor n=1"
    assert conn.cmd("version").startswith(b"VERSION ")


# ---------------------------------------------------------------- vget and ctx=

VGET_RE = re.compile(rb"VALUE (\S+) (\d+) (\d+) (\d+) (live|deleted)")
VC_RE = re.compile(rb"\[(?:[0-9a-f]{16}:[1-9][0-9]*(?:,[0-9a-f]{16}:[1-9][0-9]*)*)?\]")


def vget(c, k, extra=b""):
    """([(flags, data, ts_us, state)], context) from `vget k`."""
    c.send(b"vget %s%s\r\n" % (k.encode(), extra))
    sibs = []
    while True:
        line = c.readline()
        if line.startswith(b"CONTEXT "):
            ctx = line[len(b"CONTEXT "):]
            assert VC_RE.fullmatch(ctx), "bad CONTEXT line %r" % line
            assert c.readline() == b"END"
            return sibs, ctx
        m = VGET_RE.fullmatch(line)
        assert m and m.group(1) == k.encode(), "expected VALUE or CONTEXT, got %r" % line
        data = c.read_exact(int(m.group(3)) + 2)
        assert data.endswith(b"\r\n")
        sibs.append((int(m.group(2)), data[:-2], int(m.group(4)), m.group(5)))


def test_vget_after_set(conn, key):
    k = key()
    before = int(time.time() * 1e6)
    assert conn.set(k, b"hello\r\nworld", flags=9) == b"STORED"
    after = int(time.time() * 1e6)
    sibs, ctx = vget(conn, k)
    assert len(sibs) == 1, sibs
    flags, data, ts, state = sibs[0]
    assert (flags, data, state) == (9, b"hello\r\nworld", b"live")
    assert before - 1000000 <= ts <= after + 1000000, "write time %d not near now" % ts
    assert ctx != b"[]"
    assert vget(conn, k, b" r=one") == (sibs, ctx)


def test_vget_missing_key_is_empty_context(conn, key):
    assert vget(conn, key()) == ([], b"[]")


def test_vget_after_delete_shows_the_tombstone(conn, key):
    k = key()
    assert conn.set(k, b"v") == b"STORED"
    _, ctx1 = vget(conn, k)
    assert conn.cmd("delete %s" % k) == b"DELETED"
    sibs, ctx2 = vget(conn, k)
    assert [(s[1], s[3]) for s in sibs] == [(b"", b"deleted")]
    assert ctx2 != ctx1


def test_vget_errors(conn, key):
    assert conn.cmd("vget") == b"ERROR"
    assert conn.cmd("vget a b") == b"ERROR"
    assert conn.cmd("vget %s r=0" % key()) == b"CLIENT_ERROR bad consistency level"
    assert conn.cmd("vget %s r=all ctx=[]" % key()) == b"CLIENT_ERROR ctx= is only valid on set and delete"


def test_write_back_with_the_context_from_vget(conn, key):
    k = key()
    assert conn.set(k, b"one") == b"STORED"
    sibs, ctx = vget(conn, k)
    assert [s[1] for s in sibs] == [b"one"]
    assert conn.set(k, b"two", extra=b"ctx=" + ctx) == b"STORED"
    assert conn.get(k) == b"two"
    assert conn.cmd("delete %s ctx=[]" % key()) == b"NOT_FOUND"
    assert conn.cmd("delete %s ctx=[]" % k) in (b"DELETED", b"NOT_FOUND")
    conn.send(b"set %s 0 0 5 ctx=%s noreply\r\nthree\r\n" % (k.encode(), ctx))
    assert conn.cmd("version").startswith(b"VERSION ")


def _vc(entries, big=False):
    """A well-formed vector text; big: 20-digit counters, the longest form."""
    return b"[" + b",".join(b"%016x:%d" % (0x1000 + i, (2**64 - 1 - i) if big else i + 1)
                            for i in range(entries)) + b"]"


@pytest.mark.parametrize("bad", [b"", b"[", b"]", b"[]x", b"[zz]", b"[00000000000000aa]",
                                 b"[00000000000000aa:0]", b"[00000000000000aa:x]",
                                 b"[000000000000000a:1]x", b"[00000000000000bb:1,00000000000000aa:1]",
                                 b"[00000000000000aa:1,00000000000000aa:2]",
                                 b"[00000000000000aa:18446744073709551616]", _vc(1001)])
def test_bad_context_is_refused_and_its_data_swallowed(conn, key, bad):
    k = key()
    assert conn.set(k, b"old") == b"STORED"
    conn.send(b"set %s 0 0 %d ctx=%s\r\n%s\r\n" % (k.encode(), len(JUNK), bad, JUNK))
    assert conn.readline() == b"CLIENT_ERROR bad context"
    _swallowed(conn)
    assert conn.cmd(b"delete %s ctx=%s" % (k.encode(), bad)) == b"CLIENT_ERROR bad context"
    conn.send(b"delete %s ctx=%s noreply\r\n" % (k.encode(), bad))
    assert conn.get(k) == b"old"


def test_too_large_set_with_a_bad_context_is_a_bad_context(conn, key):
    # the context is checked first: the set is refused whole, the old value stays
    k = key()
    assert conn.set(k, b"old") == b"STORED"
    size = 1048577
    conn.send(b"set %s 0 0 %d ctx=[zz]\r\n" % (k.encode(), size) + b"\r\n" * (size // 2) + b"x\r\n")
    assert conn.readline() == b"CLIENT_ERROR bad context"
    _swallowed(conn)
    assert conn.get(k) == b"old"


def test_ctx_only_on_set_and_delete(conn, key):
    k = key()
    assert conn.set(k, b"1") == b"STORED"
    for line in ("get %s ctx=[]", "gets %s ctx=[]", "gat 10 %s ctx=[]", "incr %s 1 ctx=[]",
                 "touch %s 10 ctx=[]", "siblings %s ctx=[]", "lget %s ctx=[]"):
        assert conn.cmd(line % k) == b"CLIENT_ERROR ctx= is only valid on set and delete", line
    assert conn.cmd("delete %s ctx=[] ctx=[]" % k) == b"CLIENT_ERROR bad context"
    assert conn.get(k) == b"1"


def test_storage_line_with_a_64_entry_context(conn, key):
    # a client library writes back the context it read: 64 entries are
    # ~2.5 KB on the command line, which must fit the storage-line bound
    k = key()
    ctx = _vc(64, big=True)
    assert len(ctx) > 2400
    assert conn.set(k, b"v", extra=b"ctx=" + ctx + b" w=one") == b"STORED"
    assert conn.get(k) == b"v"
