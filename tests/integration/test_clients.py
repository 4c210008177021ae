"""Real memcached clients against the target: pymemcache and libmemcached's
command-line tools (Debian names: memccp, memccat, memcrm, memcflush, memcslap)."""

import os
import shutil
import subprocess

import pytest
from pymemcache.client.base import Client

TOOLS_TIMEOUT = 30


@pytest.fixture
def client(server):
    c = Client((server.host, server.port), connect_timeout=5, timeout=5, default_noreply=False)
    yield c
    c.close()


def test_pymemcache_set_get_delete(client, key):
    k = key()
    assert client.set(k, b"value") is True
    assert client.get(k) == b"value"
    assert client.delete(k) is True
    assert client.get(k) is None
    assert client.get(k, default=b"dflt") == b"dflt"


def test_pymemcache_add_replace_append_prepend(client, key):
    k = key()
    assert client.add(k, b"a") is True
    assert client.add(k, b"b") is False
    assert client.replace(k, b"m") is True
    assert client.replace(key(), b"x") is False
    assert client.append(k, b"z") is True
    assert client.prepend(k, b"a") is True
    assert client.get(k) == b"amz"


def test_pymemcache_incr_decr(client, key):
    k = key()
    assert client.incr(k, 1) is None
    client.set(k, b"10")
    assert client.incr(k, 5) == 15
    assert client.decr(k, 20) == 0
    assert client.incr(k, 2**64 - 1) == 2**64 - 1
    assert client.incr(k, 1) == 0


def test_pymemcache_gets_cas(client, key):
    k = key()
    assert client.cas(k, b"x", b"1") is None            # missing
    client.set(k, b"v1")
    v, unique = client.gets(k)
    assert v == b"v1"
    assert client.cas(k, b"v2", unique) is True
    assert client.cas(k, b"v3", unique) is False         # stale
    assert client.get(k) == b"v2"


def test_pymemcache_get_many(client, key):
    ks = [key() for _ in range(20)]
    assert client.set_many({k: k.encode() for k in ks[::2]}) == []
    got = client.get_many(ks)
    assert got == {k: k.encode() for k in ks[::2]}


def test_pymemcache_touch_and_expiry(client, key):
    k = key()
    assert client.touch(k, 10) is False
    client.set(k, b"v", expire=100)
    assert client.touch(k, 0) is True
    assert client.get(k) == b"v"
    assert client.touch(k, -1) is True
    assert client.get(k) is None


def test_pymemcache_binary_and_large_values(client, key):
    k = key()
    v = bytes(range(256)) * 3000
    assert client.set(k, v) is True
    assert client.get(k) == v


def test_pymemcache_stats_and_version(client):
    st = client.stats()
    assert b"pid" in st or "pid" in st
    assert client.version()


def test_pymemcache_noreply(server, key):
    k = key()
    c = Client((server.host, server.port), connect_timeout=5, timeout=5)   # noreply by default
    try:
        for i in range(100):
            c.set(k, b"%d" % i)
        assert c.get(k) == b"99"
    finally:
        c.close()


# ---------------------------------------------------------------- libmemcached tools

def tool(name):
    path = shutil.which(name)
    if not path:
        pytest.skip("%s not installed (Debian package libmemcached-tools)" % name)
    return path


def run_tool(name, server, *args):
    return subprocess.run([tool(name), "--servers=%s:%d" % (server.host, server.port)] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=TOOLS_TIMEOUT)


def test_memccp_then_memccat(server, tmp_path):
    data = os.urandom(50000)
    path = tmp_path / "qkv-memccp.bin"
    path.write_bytes(data)
    r = run_tool("memccp", server, str(path))
    assert r.returncode == 0, r.stderr
    r = run_tool("memccat", server, "qkv-memccp.bin")
    assert r.returncode == 0, r.stderr
    assert r.stdout == data + b"\n"       # memccat adds a newline
    r = run_tool("memcrm", server, "qkv-memccp.bin")
    assert r.returncode == 0, r.stderr
    r = run_tool("memccat", server, "qkv-memccp.bin")
    assert r.returncode != 0
    with server.conn() as c:
        assert c.get("qkv-memccp.bin") is None


def test_memcflush(fresh_server, tmp_path):
    with fresh_server.conn() as c:
        c.set("flushme", b"v")
    r = run_tool("memcflush", fresh_server)
    assert r.returncode == 0, r.stderr
    with fresh_server.conn() as c:
        assert c.get("flushme") is None


@pytest.mark.parametrize("test", ["set", "get", "mget"])
def test_memcslap(fresh_server, test):
    with fresh_server.conn() as c:
        s0 = c.stats()
    r = run_tool("memcslap", fresh_server, "--concurrency=4", "--execute-number=200", "--test=%s" % test)
    assert r.returncode == 0, (r.stdout + r.stderr)[-2000:]
    assert fresh_server.alive()
    with fresh_server.conn() as c:
        s1 = c.stats()
        assert c.cmd("version").startswith(b"VERSION ")
    sets = int(s1["cmd_set"]) - int(s0["cmd_set"])
    gets = int(s1["cmd_get"]) - int(s0["cmd_get"])
    hits = int(s1["get_hits"]) - int(s0["get_hits"])
    if test == "set":
        assert sets >= 800
    else:
        assert sets >= 200
        assert gets >= 800
        assert hits >= 800, "memcslap's reads missed the keys it had just written"
