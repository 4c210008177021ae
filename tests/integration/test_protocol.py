"""The memcached 1.6 text protocol as PROTOCOL.md section 3 promises it.

Every expected reply here was checked against memcached 1.6.18
(QKV_TARGET=memcached), so a difference from it is a quorumkv bug.
"""

import os
import random
import re
import time

import pytest

from conftest import IS_MEMCACHED, MAX_VALUE_BYTES, ConnectionClosed, only_quorumkv, wait_for

U64_MAX = 2**64 - 1


# ---------------------------------------------------------------- storage

def test_set_then_get_returns_exact_reply(conn, key):
    k = key()
    assert conn.set(k, b"hello", flags=7) == b"STORED"
    conn.send(b"get %s\r\n" % k.encode())
    assert conn.readline() == b"VALUE %s 7 5" % k.encode()
    assert conn.readline() == b"hello"
    assert conn.readline() == b"END"


def test_get_missing_key_is_just_end(conn, key):
    assert conn.cmd("get %s" % key()) == b"END"


def test_set_overwrites(conn, key):
    k = key()
    assert conn.set(k, b"one") == b"STORED"
    assert conn.set(k, b"second", flags=3) == b"STORED"
    assert conn.get_multi(k) == [(k, 3, b"second", None)]


def test_empty_value(conn, key):
    k = key()
    assert conn.set(k, b"") == b"STORED"
    conn.send(b"get %s\r\n" % k.encode())
    assert conn.readline() == b"VALUE %s 0 0" % k.encode()
    assert conn.readline() == b""
    assert conn.readline() == b"END"


@pytest.mark.parametrize("flags", [0, 1, 65535, 65536, 2**31, 2**32 - 1])
def test_flags_round_trip(conn, key, flags):
    k = key()
    assert conn.set(k, b"v", flags=flags) == b"STORED"
    assert conn.get_multi(k) == [(k, flags, b"v", None)]


def test_add_only_when_missing(conn, key):
    k = key()
    assert conn.store("add", k, b"first") == b"STORED"
    assert conn.store("add", k, b"second") == b"NOT_STORED"
    assert conn.get(k) == b"first"


def test_replace_only_when_present(conn, key):
    k = key()
    assert conn.store("replace", k, b"x") == b"NOT_STORED"
    assert conn.get(k) is None
    assert conn.set(k, b"old", flags=1) == b"STORED"
    assert conn.store("replace", k, b"new", flags=5) == b"STORED"
    assert conn.get_multi(k) == [(k, 5, b"new", None)]


def test_append_prepend(conn, key):
    k = key()
    assert conn.store("append", k, b"x") == b"NOT_STORED"
    assert conn.store("prepend", k, b"x") == b"NOT_STORED"
    assert conn.get(k) is None
    assert conn.set(k, b"mid", flags=5) == b"STORED"
    assert conn.store("append", k, b"-end", flags=9) == b"STORED"
    assert conn.store("prepend", k, b"start-", flags=9) == b"STORED"
    # memcached ignores the flags given to append/prepend: the item keeps its own
    assert conn.get_multi(k) == [(k, 5, b"start-mid-end", None)]


# ---------------------------------------------------------------- cas / gets

def test_cas(conn, key):
    k = key()
    assert conn.set(k, b"v1") == b"STORED"
    v, flags, unique = conn.gets(k)
    assert v == b"v1"
    assert conn.store("cas", k, b"v2", cas=unique) == b"STORED"
    assert conn.get(k) == b"v2"
    # the old unique is stale now
    assert conn.store("cas", k, b"v3", cas=unique) == b"EXISTS"
    assert conn.get(k) == b"v2"
    _, _, unique2 = conn.gets(k)
    assert unique2 != unique
    bogus = (unique2 + 12345) % 2**64 or 1
    assert conn.store("cas", k, b"v4", cas=bogus) == b"EXISTS"
    assert conn.store("cas", k, b"v5", cas=unique2) == b"STORED"
    assert conn.get(k) == b"v5"


def test_cas_on_missing_key_is_not_found(conn, key):
    k = key()
    assert conn.store("cas", k, b"v", cas=1) == b"NOT_FOUND"
    assert conn.get(k) is None


def test_cas_on_deleted_key_is_not_found(conn, key):
    k = key()
    conn.set(k, b"v")
    _, _, unique = conn.gets(k)
    assert conn.cmd("delete %s" % k) == b"DELETED"
    assert conn.store("cas", k, b"v2", cas=unique) == b"NOT_FOUND"


def test_gets_unique_changes_after_each_modification(conn, key):
    k = key()
    seen = []

    def unique():
        r = conn.gets(k)
        assert r is not None
        seen.append(r[2])

    assert conn.set(k, b"1") == b"STORED"
    unique()
    assert conn.set(k, b"2") == b"STORED"
    unique()
    assert conn.store("append", k, b"0") == b"STORED"
    unique()
    assert conn.store("prepend", k, b"1") == b"STORED"
    unique()
    assert conn.cmd("incr %s 1" % k) == b"121"
    unique()
    assert conn.cmd("decr %s 1" % k) == b"120"
    unique()
    assert conn.store("replace", k, b"9") == b"STORED"
    unique()
    assert conn.store("cas", k, b"8", cas=seen[-1]) == b"STORED"
    unique()
    assert len(set(seen)) == len(seen), "a modification kept the same cas unique: %r" % seen


def test_gets_unique_is_stable_without_modification(conn, key):
    k = key()
    conn.set(k, b"v")
    assert conn.gets(k)[2] == conn.gets(k)[2]


def test_gets_uniques_differ_between_items(conn, key):
    # issue 8 (1): two keys each written once returned the same unique, so
    # clients that use uniques as version ids took one item for another
    keys = [key() for _ in range(20)]
    for k in keys:
        assert conn.set(k, b"same value") == b"STORED"
    first = {k: conn.gets(k)[2] for k in keys}
    assert len(set(first.values())) == len(keys), "uniques repeat across items: %r" % first
    # stable while unchanged, also when fetched together
    got = {v[0]: v[3] for v in conn.get_multi(*keys, verb="gets")}
    assert got == first
    # one item's unique does not pass for another's
    assert conn.store("cas", keys[0], b"x", cas=first[keys[1]]) == b"EXISTS"
    assert conn.store("cas", keys[0], b"x", cas=first[keys[0]]) == b"STORED"


def test_gets_multiple_keys(conn, key):
    k1, k2, k3 = key(), key(), key()
    conn.set(k1, b"a", flags=1)
    conn.set(k3, b"ccc", flags=3)
    vals = conn.get_multi(k1, k2, k3, verb="gets")
    assert [(v[0], v[1], v[2]) for v in vals] == [(k1, 1, b"a"), (k3, 3, b"ccc")]
    assert all(isinstance(v[3], int) for v in vals)


# ---------------------------------------------------------------- delete

def test_delete(conn, key):
    k = key()
    conn.set(k, b"v")
    assert conn.cmd("delete %s" % k) == b"DELETED"
    assert conn.get(k) is None
    assert conn.cmd("delete %s" % k) == b"NOT_FOUND"
    assert conn.cmd("delete %s" % key()) == b"NOT_FOUND"


def test_delete_with_time_argument_is_rejected(conn, key):
    k = key()
    conn.set(k, b"v")
    assert conn.cmd("delete %s 5" % k).startswith(b"CLIENT_ERROR bad command line format")
    assert conn.get(k) == b"v"


def test_set_after_delete(conn, key):
    k = key()
    conn.set(k, b"v")
    conn.cmd("delete %s" % k)
    assert conn.store("add", k, b"again") == b"STORED"
    assert conn.get(k) == b"again"


# ---------------------------------------------------------------- incr / decr

def test_incr_decr(conn, key):
    k = key()
    conn.set(k, b"10", flags=4)
    assert conn.cmd("incr %s 5" % k) == b"15"
    assert conn.cmd("decr %s 3" % k) == b"12"
    assert conn.cmd("incr %s 0" % k) == b"12"
    assert conn.cmd("incr %s 88" % k) == b"100"
    assert conn.get_multi(k) == [(k, 4, b"100", None)]


def test_decr_floors_at_zero(conn, key):
    k = key()
    conn.set(k, b"5")
    assert conn.cmd("decr %s 10" % k) == b"0"
    assert conn.cmd("decr %s 1" % k) == b"0"
    assert conn.get(k) == b"0"


def test_decr_shorter_number_reads_back(conn, key):
    k = key()
    conn.set(k, b"10")
    assert conn.cmd("decr %s 1" % k) == b"9"
    # protocol.txt: the stored number MAY be space-padded at the end
    assert conn.get(k).rstrip(b" ") == b"9"


def test_incr_wraps_at_2_64(conn, key):
    k = key()
    conn.set(k, b"%d" % (U64_MAX - 1))
    assert conn.cmd("incr %s 1" % k) == b"%d" % U64_MAX
    assert conn.cmd("incr %s 1" % k) == b"0"
    assert conn.get(k).rstrip(b" ") == b"0"
    assert conn.cmd("incr %s 5" % k) == b"5"
    conn.set(k, b"10")
    assert conn.cmd("incr %s %d" % (k, U64_MAX)) == b"9"


def test_incr_accepts_leading_zeros_and_max_delta(conn, key):
    k = key()
    conn.set(k, b"007")
    assert conn.cmd("incr %s 1" % k) == b"8"
    conn.set(k, b"0")
    assert conn.cmd("incr %s %d" % (k, U64_MAX)) == b"%d" % U64_MAX


def test_incr_missing_is_not_found(conn, key):
    k = key()
    assert conn.cmd("incr %s 1" % k) == b"NOT_FOUND"
    assert conn.cmd("decr %s 1" % k) == b"NOT_FOUND"
    assert conn.get(k) is None


@pytest.mark.parametrize("value", [b"abc", b"12abc", b"-1", b"1.5", b"18446744073709551616"])
def test_incr_non_numeric_value(conn, key, value):
    k = key()
    conn.set(k, value)
    assert conn.cmd("incr %s 1" % k) == b"CLIENT_ERROR cannot increment or decrement non-numeric value"
    assert conn.cmd("decr %s 1" % k) == b"CLIENT_ERROR cannot increment or decrement non-numeric value"
    assert conn.get(k) == value


@pytest.mark.parametrize("delta", ["x", "-1", "1.5", "18446744073709551616", "1x"])
def test_incr_invalid_delta(conn, key, delta):
    k = key()
    conn.set(k, b"1")
    assert conn.cmd("incr %s %s" % (k, delta)) == b"CLIENT_ERROR invalid numeric delta argument"
    assert conn.cmd("decr %s %s" % (k, delta)) == b"CLIENT_ERROR invalid numeric delta argument"
    assert conn.get(k) == b"1"


# ---------------------------------------------------------------- noreply

def test_noreply_on_every_storage_command(conn, key):
    k, c, n, d = key(), key(), key(), key()
    conn.set(c, b"c0")
    _, _, unique = conn.gets(c)
    conn.set(d, b"gone")
    pipeline = [
        b"set %s 1 0 3 noreply\r\nabc\r\n" % k.encode(),
        b"add %s 0 0 1 noreply\r\nX\r\n" % k.encode(),          # NOT_STORED, silently
        b"replace %s 2 0 3 noreply\r\nbcd\r\n" % k.encode(),
        b"append %s 0 0 2 noreply\r\nef\r\n" % k.encode(),
        b"prepend %s 0 0 2 noreply\r\n01\r\n" % k.encode(),
        b"cas %s 0 0 2 %d noreply\r\nc1\r\n" % (c.encode(), unique),
        b"cas %s 0 0 2 %d noreply\r\nc2\r\n" % (c.encode(), unique),  # EXISTS, silently
        b"set %s 0 0 2 noreply\r\n10\r\n" % n.encode(),
        b"incr %s 5 noreply\r\n" % n.encode(),
        b"decr %s 3 noreply\r\n" % n.encode(),
        b"touch %s 100 noreply\r\n" % n.encode(),
        b"delete %s noreply\r\n" % d.encode(),
        b"delete %s noreply\r\n" % d.encode(),                      # NOT_FOUND, silently
        b"get %s %s %s %s\r\n" % (k.encode(), c.encode(), n.encode(), d.encode()),
    ]
    conn.send(b"".join(pipeline))
    vals = conn.read_values()
    assert [(v[0], v[1], v[2].rstrip(b" ") if v[0] == n else v[2]) for v in vals] == \
        [(k, 2, b"01bcdef"), (c, 0, b"c1"), (n, 0, b"12")]
    assert conn.cmd("version").startswith(b"VERSION ")


# ---------------------------------------------------------------- expiry

def test_negative_exptime_is_immediately_expired(conn, key):
    k = key()
    assert conn.set(k, b"v", exptime=-1) == b"STORED"
    assert conn.get(k) is None
    # and it does not count as present for add
    assert conn.store("add", k, b"w") == b"STORED"
    assert conn.get(k) == b"w"


def test_absolute_exptime(conn, key):
    future, past = key(), key()
    now = int(time.time())
    assert conn.set(future, b"f", exptime=now + 3600) == b"STORED"
    assert conn.set(past, b"p", exptime=now - 10) == b"STORED"
    assert conn.get(future) == b"f"
    assert conn.get(past) is None


def test_exptime_30_days_is_relative_above_is_absolute(conn, key):
    rel, absolute = key(), key()
    assert conn.set(rel, b"r", exptime=30 * 24 * 3600) == b"STORED"
    # 30 days + 1 s is a unix time in January 1970: long expired
    assert conn.set(absolute, b"a", exptime=30 * 24 * 3600 + 1) == b"STORED"
    assert conn.get(rel) == b"r"
    assert conn.get(absolute) is None


def test_relative_exptime_touch_and_gat(conn, key):
    plain, touched, gat_k, forever = key(), key(), key(), key()
    later = key()
    for k in (plain, touched, gat_k, forever):
        assert conn.set(k, b"v-" + k.encode(), exptime=1) == b"STORED"
    assert conn.set(later, b"later", exptime=4) == b"STORED"
    assert conn.cmd("touch %s 100" % touched) == b"TOUCHED"
    assert conn.cmd("touch %s 0" % forever) == b"TOUCHED"
    assert conn.get_multi(gat_k, verb="gat 100") == [(gat_k, 0, b"v-" + gat_k.encode(), None)]
    assert conn.get(plain) == b"v-" + plain.encode()
    # memcached's clock ticks once a second: expiry "1" happens within ~2 s
    wait_for(lambda: conn.get(plain) is None, timeout=5, interval=0.1, what="1-second item to expire")
    assert conn.get(later) == b"later", "a 4-second item expired together with a 1-second one"
    assert conn.get(touched) == b"v-" + touched.encode()
    assert conn.get(gat_k) == b"v-" + gat_k.encode()
    assert conn.get(forever) == b"v-" + forever.encode()


def test_touch(conn, key):
    k = key()
    assert conn.cmd("touch %s 10" % k) == b"NOT_FOUND"
    conn.set(k, b"v")
    assert conn.cmd("touch %s 10" % k) == b"TOUCHED"
    assert conn.get(k) == b"v"
    assert conn.cmd("touch %s -1" % k) == b"TOUCHED"
    assert conn.get(k) is None


def test_gat_and_gats(conn, key):
    k, miss = key(), key()
    conn.set(k, b"val", flags=3)
    conn.send(b"gat 100 %s %s\r\n" % (k.encode(), miss.encode()))
    assert conn.readline() == b"VALUE %s 3 3" % k.encode()
    assert conn.readline() == b"val"
    assert conn.readline() == b"END"
    vals = conn.get_multi(k, miss, verb="gats 100")
    assert len(vals) == 1 and vals[0][:3] == (k, 3, b"val")
    assert vals[0][3] == conn.gets(k)[2]
    assert conn.get_multi(miss, verb="gat 100") == []


def test_gat_negative_returns_value_then_expires(conn, key):
    k = key()
    conn.set(k, b"v")
    assert conn.get_multi(k, verb="gat -1") == [(k, 0, b"v", None)]
    assert conn.get(k) is None


# ---------------------------------------------------------------- flush_all

def test_flush_all(fresh_server):
    with fresh_server.conn() as c:
        for i in range(20):
            assert c.set("fk%d" % i, b"v%d" % i) == b"STORED"
        assert c.cmd("flush_all") == b"OK"
        assert c.get_multi(*["fk%d" % i for i in range(20)]) == []
        assert c.store("add", "fk0", b"new") == b"STORED"
        assert c.get("fk0") == b"new"
        assert c.cmd("flush_all 0") == b"OK"
        assert c.get("fk0") is None
        c.set("fk1", b"x")
        c.send(b"flush_all noreply\r\n")
        assert c.cmd("version").startswith(b"VERSION ")
        assert c.get("fk1") is None
        assert c.cmd("flush_all bogus").startswith(b"CLIENT_ERROR")


def test_flush_all_with_delay(fresh_server):
    with fresh_server.conn() as c:
        assert c.set("dk", b"v") == b"STORED"
        t0 = time.monotonic()
        assert c.cmd("flush_all 3") == b"OK"
        assert c.get("dk") == b"v"     # not yet
        wait_for(lambda: c.get("dk") is None, timeout=8, interval=0.1, what="delayed flush")
        # memcached's clock has 1 s granularity: "3" fires after 2..3 s
        assert time.monotonic() - t0 >= 1.0, "flush_all 3 flushed at once"


def test_flush_all_with_delay_noreply(fresh_server):
    with fresh_server.conn() as c:
        assert c.set("dk", b"v") == b"STORED"
        c.send(b"flush_all 3 noreply\r\n")
        assert c.get("dk") == b"v"
        wait_for(lambda: c.get("dk") is None, timeout=8, interval=0.1, what="delayed flush")


# ---------------------------------------------------------------- stats, version, verbosity, quit

REQUIRED_STATS = ["pid", "uptime", "version", "curr_connections", "total_connections", "cmd_get",
                  "cmd_set", "get_hits", "get_misses", "curr_items", "bytes"]


def test_stats_fields(fresh_server):
    with fresh_server.conn() as c:
        st = c.stats()
        missing = [f for f in REQUIRED_STATS if f not in st]
        assert not missing, "stats lacks %s" % missing
        assert int(st["pid"]) == fresh_server.pid
        assert int(st["uptime"]) >= 0
        assert c.cmd("version") == b"VERSION " + st["version"].encode()
        for f in REQUIRED_STATS:
            if f != "version":
                assert re.fullmatch(r"\d+", st[f]), "%s = %r" % (f, st[f])
        assert int(st["curr_connections"]) >= 1


def test_stats_counters_move(fresh_server):
    with fresh_server.conn() as c:
        s0 = c.stats()
        for i in range(3):
            assert c.set("sk%d" % i, b"x" * 100) == b"STORED"
        s1 = c.stats()
        assert int(s1["cmd_set"]) - int(s0["cmd_set"]) == 3
        assert int(s1["curr_items"]) - int(s0["curr_items"]) == 3
        assert int(s1["bytes"]) > int(s0["bytes"])

        assert len(c.get_multi("sk0", "sk1", "nope1", "sk2", "nope2")) == 3
        s2 = c.stats()
        assert int(s2["cmd_get"]) - int(s1["cmd_get"]) == 5
        assert int(s2["get_hits"]) - int(s1["get_hits"]) == 3
        assert int(s2["get_misses"]) - int(s1["get_misses"]) == 2

        assert c.cmd("delete sk0") == b"DELETED"
        s3 = c.stats()
        assert int(s3["curr_items"]) - int(s0["curr_items"]) == 2
        assert int(s3["bytes"]) < int(s2["bytes"])

        t0 = int(s3["total_connections"])
        with fresh_server.conn() as c2:
            assert c2.cmd("version").startswith(b"VERSION ")
            s4 = c.stats()
            assert int(s4["total_connections"]) == t0 + 1
            assert int(s4["curr_connections"]) == int(s3["curr_connections"]) + 1
        wait_for(lambda: int(c.stats()["curr_connections"]) == int(s3["curr_connections"]),
                 timeout=5, what="curr_connections to drop after a close")


def test_stats_uptime_advances(fresh_server):
    with fresh_server.conn() as c:
        u0 = int(c.stats()["uptime"])
        wait_for(lambda: int(c.stats()["uptime"]) > u0, timeout=5, interval=0.2, what="uptime to advance")


def test_version(conn):
    line = conn.cmd("version")
    assert re.fullmatch(rb"VERSION \S+", line), line
    if IS_MEMCACHED:
        assert line == b"VERSION 1.6.18"


def test_verbosity(conn):
    assert conn.cmd("verbosity 1") == b"OK"
    assert conn.cmd("verbosity 0") == b"OK"
    conn.send(b"verbosity 1 noreply\r\n")
    assert conn.cmd("verbosity 0").startswith(b"OK")


def test_quit_closes_without_reply(server):
    with server.conn() as c:
        c.send(b"quit\r\n")
        assert c.read_until_closed() == b""


def test_quit_after_pipelined_commands(server, key):
    k = key()
    with server.conn() as c:
        c.send(b"set %s 0 0 1\r\nv\r\nget %s\r\nquit\r\nget %s\r\n" % (k.encode(), k.encode(), k.encode()))
        assert c.read_until_closed() == b"STORED\r\nVALUE %s 0 1\r\nv\r\nEND\r\n" % k.encode()


# ---------------------------------------------------------------- errors

def test_unknown_command_is_error_and_connection_lives(conn, key):
    assert conn.cmd("bogus") == b"ERROR"
    assert conn.cmd("GET foo") == b"ERROR"      # commands are case-sensitive
    k = key()
    assert conn.set(k, b"ok") == b"STORED"
    assert conn.get(k) == b"ok"


def test_commands_with_missing_arguments_are_error(conn):
    for line in ("get", "gets", "incr", "incr k", "touch k", "set k 0 0", "cas k 0 0 1", "gat", "verbosity"):
        assert conn.cmd(line) == b"ERROR", line
    assert conn.cmd("version").startswith(b"VERSION ")


def test_bad_data_chunk(server, key):
    k = key()
    with server.conn() as c:
        c.send(b"set %s 0 0 1\r\nab\r\n" % k.encode())
        assert c.readline() == b"CLIENT_ERROR bad data chunk"
    with server.conn() as c:
        assert c.get(k) is None
        # a data block longer than declared must not be stored either
        c.send(b"set %s 0 0 3\r\nabcdef\r\n" % k.encode())
        assert c.readline() == b"CLIENT_ERROR bad data chunk"
    with server.conn() as c:
        assert c.get(k) is None


@pytest.mark.parametrize("line", [b"set k 0 0 x", b"set k 0 0 -1", b"set k x 0 1", b"set k 0 x 1",
                                  b"set k -1 0 1", b"cas k 0 0 1 x"])
def test_bad_command_line_format(conn, line):
    assert conn.cmd(line) == b"CLIENT_ERROR bad command line format"
    # the data block (if the server reads it as a command) may give ERROR; the connection lives
    assert conn.cmd("version").startswith(b"VERSION ")


def test_key_of_250_bytes_is_fine(conn):
    k = "k" * 249 + str(random.randrange(10))
    assert conn.set(k, b"long key") == b"STORED"
    assert conn.get_multi(k) == [(k, 0, b"long key", None)]
    assert conn.cmd("delete %s" % k) == b"DELETED"


def _resync(c):
    """After an error whose data block a server may read as a command (memcached
    does: that gives an extra ERROR), check that the connection still works."""
    c.send(b"version\r\n")
    for _ in range(3):
        line = c.readline()
        if line.startswith(b"VERSION "):
            return
        assert line == b"ERROR", line
    raise AssertionError("no VERSION reply after error")


def test_key_longer_than_250_bytes(conn):
    k = "k" * 251
    assert conn.set(k, b"v") == b"CLIENT_ERROR bad command line format"
    _resync(conn)
    assert conn.cmd("get %s" % k) == b"CLIENT_ERROR bad command line format"
    assert conn.cmd("get ok %s" % k) == b"CLIENT_ERROR bad command line format"
    assert conn.cmd("delete %s" % k) == b"CLIENT_ERROR bad command line format"
    assert conn.cmd("incr %s 1" % k) == b"CLIENT_ERROR bad command line format"
    assert conn.cmd("touch %s 1" % k) == b"CLIENT_ERROR bad command line format"
    _resync(conn)


@pytest.mark.parametrize("size", [MAX_VALUE_BYTES + 1, 2 * MAX_VALUE_BYTES])
def test_too_large_value_is_rejected_and_swallowed(conn, key, size):
    k = key()
    conn.set(k, b"previous")
    payload = b"set %s 0 0 %d\r\n" % (k.encode(), size) + (b"\r\n" * (size // 2 + 1))[:size] + b"\r\n"
    assert conn.cmd(payload[:-2]) == b"SERVER_ERROR object too large for cache"
    # the data ("\r\n" repeated: would be many ERRORs if parsed as commands) is swallowed
    assert conn.get(k) is None   # memcached drops the old item
    assert conn.set(k, b"small") == b"STORED"
    assert conn.get(k) == b"small"


# ---------------------------------------------------------------- binary safety, sizes

def test_value_with_crlf_and_every_byte(conn, key):
    k = key()
    values = [b"\r\n", b"a\r\nb\r\nEND\r\n", b"END", b"\r\nVALUE x 0 1\r\n", bytes(range(256)) * 4, b"\x00" * 10]
    for v in values:
        assert conn.set(k, v) == b"STORED"
        assert conn.get(k) == v


def test_one_megabyte_value(conn, key):
    k = key()
    v = random.Random(1).randbytes(1000 * 1000)
    assert conn.set(k, v, flags=42) == b"STORED"
    assert conn.get_multi(k) == [(k, 42, v, None)]


def test_value_just_under_limit(conn, key):
    k = key()
    size = MAX_VALUE_BYTES - 100 - len(k)    # memcached counts key and item header too
    v = os.urandom(size)
    assert conn.set(k, v) == b"STORED"
    assert conn.get(k) == v


# ---------------------------------------------------------------- pipelining, multi-get

def test_200_pipelined_commands_replies_in_order(conn, key):
    base = key()
    out, expect = [], []
    for i in range(50):
        k = ("%s-%d" % (base, i)).encode()
        out.append(b"set %s %d 0 %d\r\n%s\r\n" % (k, i, len(b"%d" % i), b"%d" % i))
        expect.append(b"STORED\r\n")
        out.append(b"incr %s 1000\r\n" % k)
        expect.append(b"%d\r\n" % (i + 1000))
        out.append(b"get %s %s-missing\r\n" % (k, k))
        v = b"%d" % (i + 1000)
        expect.append(b"VALUE %s %d %d\r\n%s\r\nEND\r\n" % (k, i, len(v), v))
        out.append(b"delete %s\r\n" % k if i % 2 else b"add %s 0 0 1\r\nx\r\n" % k)
        expect.append(b"DELETED\r\n" if i % 2 else b"NOT_STORED\r\n")
    assert len(out) == 200
    conn.send(b"".join(out))
    want = b"".join(expect)
    got = conn.read_exact(len(want), timeout=15)
    assert got == want
    assert conn.cmd("version").startswith(b"VERSION ")


def test_multi_get_hits_and_misses_in_request_order(conn, key):
    keys = [key() for _ in range(10)]
    for i, k in enumerate(keys):
        if i % 2 == 0:
            assert conn.set(k, b"v%d" % i, flags=i) == b"STORED"
    vals = conn.get_multi(*reversed(keys))
    assert vals == [(k, i, b"v%d" % i, None) for i, k in reversed(list(enumerate(keys))) if i % 2 == 0]


def test_get_same_key_twice_returns_it_twice(conn, key):
    k = key()
    conn.set(k, b"v")
    assert [v[0] for v in conn.get_multi(k, k)] == [k, k]


def test_bare_newline_line_endings(conn, key):
    # what nc/telnet users send
    k = key()
    conn.set(k, b"v")
    conn.send(b"get %s\n" % k.encode())
    assert conn.read_values() == [(k, 0, b"v", None)]
    conn.send(b"version\n")
    assert conn.readline().startswith(b"VERSION ")


def test_multi_get_of_100_long_keys(conn, key):
    # a 20 KB command line, as pymemcache's get_many builds it
    base = key()
    keys = [(base + "-%d-" % i).ljust(200, "x") for i in range(100)]
    for k in keys[::3]:
        assert conn.set(k, k[:20].encode()) == b"STORED"
    vals = conn.get_multi(*keys)
    assert [(v[0], v[2]) for v in vals] == [(k, k[:20].encode()) for k in keys[::3]]


# ---------------------------------------------------------------- issue 8 (memcached conformance)

def _too_large(conn, verb, k, noreply=False, cas=None):
    size = MAX_VALUE_BYTES + 1
    line = b"%s %s 0 0 %d" % (verb.encode(), k.encode(), size)
    if cas is not None:
        line += b" %d" % cas
    if noreply:
        line += b" noreply"
    conn.send(line + b"\r\n" + b"x" * size + b"\r\n")


def test_too_large_set_removes_the_old_value(conn, key):
    # issue 8 item 2: memcached unlinks the item a too-large set meant to
    # replace, so no reader goes on seeing the value the client replaced
    k = key()
    assert conn.set(k, b"previous") == b"STORED"
    _too_large(conn, "set", k)
    assert conn.readline() == b"SERVER_ERROR object too large for cache"
    assert conn.get(k) is None
    # noreply: no reply at all, and the old value is gone all the same
    assert conn.set(k, b"previous") == b"STORED"
    _too_large(conn, "set", k, noreply=True)
    assert conn.cmd("version").startswith(b"VERSION ")
    assert conn.get(k) is None
    # on a missing key it is the same one line
    _too_large(conn, "set", key())
    assert conn.readline() == b"SERVER_ERROR object too large for cache"


@pytest.mark.parametrize("verb", ["add", "replace", "append", "prepend", "cas"])
def test_too_large_non_set_update_keeps_the_old_value(conn, key, verb):
    # memcached unlinks for set only (process_update_command: comm == NREAD_SET)
    k = key()
    assert conn.set(k, b"previous") == b"STORED"
    unique = conn.gets(k)[2]
    _too_large(conn, verb, k, cas=unique if verb == "cas" else None)
    assert conn.readline() == b"SERVER_ERROR object too large for cache"
    assert conn.get(k) == b"previous"
    _too_large(conn, verb, k, noreply=True, cas=unique if verb == "cas" else None)
    assert conn.get(k) == b"previous"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("verb", ["get", "gets"])
def test_get_line_of_18000_keys_answers_every_key(conn, verb):
    # issue 8 item 3: a ~190 KB multi-get line answered "CLIENT_ERROR line
    # too long"; memcached answers every key of a get line of any length
    keys = ["ml-%s-%d" % (verb, i) for i in range(18000)]
    hits = keys[::997] + [keys[-1]]
    for k in hits:
        assert conn.set(k, k.encode(), flags=7) == b"STORED"
    line = (verb + " " + " ".join(keys)).encode() + b"\r\n"
    assert len(line) > 180000
    # in pieces of an odd size, so keys and the line end are split across reads
    for i in range(0, len(line), 7001):
        conn.send(line[i:i + 7001])
    vals = conn.read_values(timeout=30)
    assert [(v[0], v[1], v[2]) for v in vals] == [(k, 7, k.encode()) for k in hits]
    assert all((v[3] is not None) == (verb == "gets") for v in vals)
    assert conn.cmd("version").startswith(b"VERSION ")
    st = conn.stats()
    assert int(st["get_misses"]) >= len(keys) - len(hits)


@only_quorumkv
@pytest.mark.timeout(120)
@pytest.mark.parametrize("verb", ["gat", "gats"])
def test_gat_line_of_18000_keys_answers_every_key(conn, verb):
    # memcached 1.6.18 only reads get/gets lines past 2 KB without a newline
    # and closes the connection on a long gat; quorumkv streams all four
    keys = ["ml-%s-%d" % (verb, i) for i in range(18000)]
    hits = keys[::997] + [keys[-1]]
    control = "ml-%s-control" % verb
    for k in hits + [control]:
        assert conn.set(k, k.encode(), exptime=3) == b"STORED"
    conn.send((verb + " 1000 " + " ".join(keys)).encode() + b"\r\n")
    vals = conn.read_values(timeout=30)
    assert [(v[0], v[2]) for v in vals] == [(k, k.encode()) for k in hits]
    # the touch took: once the untouched control key expired, they are still there
    wait_for(lambda: conn.get(control) is None, timeout=10, interval=0.1, what="control key to expire")
    assert conn.get_multi(hits[0], hits[-1]) == [(k, 0, k.encode(), None) for k in (hits[0], hits[-1])]


def test_long_get_line_with_a_bad_key_ends_in_client_error(conn):
    # memcached answers just the error; quorumkv may already have sent the
    # values of the keys before the bad one (the line is never held whole),
    # but the reply ends in the same error and the connection stays in step
    keys = ["bk-%d" % i for i in range(18000)]
    assert conn.set(keys[3], b"v") == b"STORED"
    conn.send(("get " + " ".join(keys) + " " + "y" * 251 + " more keys after").encode() + b"\r\n")
    while True:
        line = conn.readline(timeout=30)
        if line.startswith(b"VALUE "):
            conn.read_exact(int(line.split(b" ")[3]) + 2)
            continue
        assert line == b"CLIENT_ERROR bad command line format"
        break
    assert conn.cmd("version").startswith(b"VERSION ")


def test_malformed_commands_with_noreply_are_silent(conn, key):
    # issue 8 item 4: memcached looks for a last "noreply" before it checks
    # the arguments, so these get no reply at all (checked against 1.6.18)
    k = key()
    assert conn.set(k, b"kept") == b"STORED"
    lines = ["delete %s 10 noreply", "delete %s noreply noreply", "set %s 0 0 noreply",
             "set %s x 0 1 noreply", "set %s 0 0 -1 noreply", "cas %s 0 0 1 noreply",
             "cas %s 0 0 1 x noreply", "incr %s noreply", "incr %s x noreply", "decr %s -1 noreply",
             "touch %s noreply", "touch %s x noreply", "incr %s 1 noreply",
             "delete " + "k" * 251 + " noreply%.0s"]
    conn.send("".join(l % k + "\r\n" for l in lines).encode() +
              b"verbosity noreply\r\nverbosity x noreply\r\nflush_all x noreply\r\n")
    assert conn.cmd("version").startswith(b"VERSION ")
    assert conn.get(k) == b"kept"


def test_wrong_argument_count_is_error_even_with_noreply(conn, key):
    # memcached's dispatcher counts the arguments before noreply is known
    k = key()
    assert conn.cmd("set %s 0 noreply" % k) == b"ERROR"
    assert conn.cmd("delete %s 0 0 noreply" % k) == b"ERROR"
    assert conn.cmd("incr noreply") == b"ERROR"
    assert conn.cmd("version").startswith(b"VERSION ")


def test_delete_with_nonzero_time_gives_memcached_usage_error(conn, key):
    k = key()
    assert conn.set(k, b"v") == b"STORED"
    usage = b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]"
    assert conn.cmd("delete %s 10" % k) == usage
    assert conn.cmd("delete %s noreply 0" % k) == usage   # noreply counts only last
    assert conn.cmd("delete %s 0 0" % k) == usage
    assert conn.get(k) == b"v"
    assert conn.cmd("delete %s 0" % k) == b"DELETED"


def test_bad_data_chunk_with_noreply_is_silent(conn, key):
    k = key()
    conn.send(b"set %s 0 0 1 noreply\r\nab\r\n" % k.encode())
    # "ab\r" was the block; the "\n" left over is an empty command
    assert conn.readline() == b"ERROR"
    assert conn.cmd("version").startswith(b"VERSION ")
    assert conn.get(k) is None


def _closed_without_reply(c):
    try:
        return c.read_until_closed() == b""
    except (ConnectionResetError, BrokenPipeError):
        return True   # closed with our unread request bytes: an RST


@pytest.mark.parametrize("line", [b"GET / HTTP/1.0", b"PUT /a/b HTTP/1.1", b"DELETE HTTP/1.1",
                                  b"HEAD / HTTP/1.1", b"POST /submit HTTP/1.1"])
def test_http_request_closes_the_connection_without_reply(server, line):
    # issue 8 item 5: memcached closes, unanswered, a connection whose
    # command is unknown and ends in an HTTP/ token
    with server.conn() as c:
        c.send(line + b"\r\nHost: localhost\r\n\r\n")
        assert _closed_without_reply(c)
    with server.conn() as c:
        assert c.cmd("version").startswith(b"VERSION ")
        # a known command stays that command: keys that look like HTTP
        assert c.cmd("get / HTTP/1.0") == b"END"
        assert c.cmd("bogus HTTP/1.0 x") == b"ERROR"
