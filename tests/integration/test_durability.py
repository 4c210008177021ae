"""quorumkvd keeps what it acknowledged across restarts, stops cleanly on
signals, and refuses a bad config with a message naming the line."""

import os
import random
import re
import signal
import subprocess
import time

import pytest

from conftest import QKV_BIN, only_quorumkv, require_daemon, wait_for

pytestmark = only_quorumkv


def write_keys(node, count, seed):
    rng = random.Random(seed)
    data = {}
    with node.conn() as c:
        for i in range(count):
            k = "dur-%d-%d" % (seed, i)
            v = rng.randbytes(rng.randrange(0, 3000))
            flags = rng.randrange(2**32)
            assert c.set(k, v, flags=flags) == b"STORED", k
            data[k] = (flags, v)
    return data


def check_keys(node, data, deleted=()):
    with node.conn(timeout=10) as c:
        keys = list(data)
        for i in range(0, len(keys), 50):
            batch = keys[i:i + 50]
            got = {k: (f, v) for k, f, v, _ in c.get_multi(*batch)}
            missing = [k for k in batch if k not in got and k not in deleted]
            assert not missing, "acknowledged keys lost after restart: %s" % missing[:10]
            wrong = [k for k in batch if k in got and k not in deleted and got[k] != data[k]]
            assert not wrong, "keys with wrong value/flags after restart: %s" % wrong[:10]
            resurrected = [k for k in batch if k in got and k in deleted]
            assert not resurrected, "deleted keys came back after restart: %s" % resurrected[:10]


@pytest.mark.parametrize("how", ["kill9", "sigterm", "sigint"])
def test_acknowledged_writes_survive_restart(node_factory, how):
    node = node_factory()
    data = write_keys(node, 300, seed=1)
    if how == "kill9":
        node.kill9()
    else:
        sig = signal.SIGTERM if how == "sigterm" else signal.SIGINT
        assert node.stop(sig) == 0, "clean shutdown must exit 0"
    node.start()
    check_keys(node, data)
    # and it keeps working on the old data
    with node.conn() as c:
        k = next(iter(data))
        assert c.store("append", k, b"+more") == b"STORED"
        assert c.get(k) == data[k][1] + b"+more"


@pytest.mark.parametrize("how", ["kill9", "sigterm"])
def test_deletes_and_overwrites_survive_restart(node_factory, how):
    node = node_factory()
    data = write_keys(node, 100, seed=2)
    deleted = set(list(data)[::3])
    with node.conn() as c:
        for k in deleted:
            assert c.cmd("delete %s" % k) == b"DELETED"
        for k in list(data)[1::3]:
            assert c.set(k, b"new-" + k.encode(), flags=1) == b"STORED"
            data[k] = (1, b"new-" + k.encode())
        c.set("counter", b"10")
        assert c.cmd("incr counter 32") == b"42"
    if how == "kill9":
        node.kill9()
    else:
        assert node.stop() == 0
    node.start()
    check_keys(node, data, deleted)
    with node.conn() as c:
        assert c.get("counter") == b"42"


def test_two_restarts_in_a_row(node_factory):
    node = node_factory()
    data = write_keys(node, 50, seed=3)
    node.kill9()
    node.start()
    more = write_keys(node, 50, seed=4)
    assert node.stop() == 0
    node.start()
    check_keys(node, {**data, **more})


def test_cas_unique_does_not_repeat_across_restart(node_factory):
    # a client holding a unique from before a restart must not overwrite a
    # newer value written after it
    node = node_factory()
    with node.conn() as c:
        c.set("ck", b"v1")
        _, _, u1 = c.gets("ck")
        assert c.set("ck", b"v2") == b"STORED"
    node.kill9()
    node.start()
    with node.conn() as c:
        assert c.get("ck") == b"v2"
        assert c.store("cas", "ck", b"stale", cas=u1) == b"EXISTS"
        assert c.get("ck") == b"v2"


def test_item_count_survives_restart_and_crawler_reclaims_expired(node_factory):
    # the start-up scan counts every stored item, and the crawler walks all
    # of them (several slices, in token order) and reclaims the expired ones
    # without anybody reading them
    node = node_factory()
    with node.conn() as c:
        for i in range(700):
            assert c.set("cr-live-%d" % i, b"x" * 10) == b"STORED"
        for i in range(700):
            assert c.set("cr-exp-%d" % i, b"y" * 10, exptime=2) == b"STORED"
    assert node.stop() == 0
    node.start()
    with node.conn() as c:
        assert int(c.stats()["curr_items"]) == 1400
        runs0 = int(c.stats()["crawler_runs"])
        wait_for(lambda: int(c.stats()["curr_items"]) == 700, timeout=15, interval=0.2,
                 what="the crawler to reclaim 700 expired items")
        st = c.stats()
        assert int(st["reclaimed"]) == 700
        wait_for(lambda: int(c.stats()["crawler_runs"]) >= runs0 + 1, timeout=10, interval=0.1,
                 what="a full crawler pass")
        assert c.get("cr-live-123") == b"x" * 10
        assert c.get("cr-exp-123") is None


def test_crawler_idles_until_something_can_expire(node_factory):
    # with no exptime stored and no flush_all waiting for its pass the
    # crawler walks nothing (crawler_idle grows, no pass completes); one key
    # with an exptime sets it walking, and once that key is reclaimed (or
    # overwritten without an exptime) it idles again, mid-pass
    node = node_factory()
    with node.conn() as c:
        for i in range(300):
            assert c.set("idle-%d" % i, b"v") == b"STORED"
        idle0 = int(c.stats()["crawler_idle"])
        runs0 = int(c.stats()["crawler_runs"])
        wait_for(lambda: int(c.stats()["crawler_idle"]) >= idle0 + 8, timeout=10, interval=0.1,
                 what="idle crawler slices")
        assert int(c.stats()["crawler_runs"]) == runs0
        assert c.set("idle-exp", b"e", exptime=1) == b"STORED"
        wait_for(lambda: int(c.stats()["reclaimed"]) == 1, timeout=15, interval=0.1,
                 what="the crawler to reclaim the expired key")
        assert int(c.stats()["curr_items"]) == 300
        idle1 = int(c.stats()["crawler_idle"])
        wait_for(lambda: int(c.stats()["crawler_idle"]) >= idle1 + 8, timeout=10, interval=0.1,
                 what="the crawler idle again once nothing can expire")
        # an overwrite without exptime also ends the key's claim on the crawler
        assert c.set("idle-exp2", b"e", exptime=1000) == b"STORED"
        assert c.set("idle-exp2", b"f") == b"STORED"
        runs1 = int(c.stats()["crawler_runs"])
        idle1 = int(c.stats()["crawler_idle"])
        wait_for(lambda: int(c.stats()["crawler_idle"]) >= idle1 + 8, timeout=10, interval=0.1,
                 what="the crawler idle again")
        assert int(c.stats()["crawler_runs"]) == runs1
        assert c.get("idle-exp2") == b"f"


def test_crawler_reclaims_flushed_items_without_reads(node_factory):
    # flush_all (at once, and delayed) gives the crawler one pass even when
    # no key has an exptime: the flushed items leave curr_items unread
    node = node_factory()
    with node.conn() as c:
        for i in range(200):
            assert c.set("fl-%d" % i, b"v") == b"STORED"
        assert c.cmd("flush_all") == b"OK"
        wait_for(lambda: int(c.stats()["curr_items"]) == 0, timeout=15, interval=0.1,
                 what="the crawler to reclaim 200 flushed items")
        assert int(c.stats()["reclaimed"]) == 200
        for i in range(100):
            assert c.set("fl2-%d" % i, b"v") == b"STORED"
        assert c.cmd("flush_all 2") == b"OK"
        time.sleep(1)
        assert int(c.stats()["curr_items"]) == 100  # not yet
        wait_for(lambda: int(c.stats()["curr_items"]) == 0, timeout=15, interval=0.1,
                 what="the crawler to reclaim the items of a delayed flush")
        assert int(c.stats()["reclaimed"]) == 300
        assert c.get("fl2-7") is None


def test_antientropy_trees_built_at_startup(node_factory):
    # a lone node holds every range of its ring (64 vnodes): at start-up it
    # builds one Merkle tree per range by scanning the stored keys
    node = node_factory()
    with node.conn() as c:
        for i in range(300):
            assert c.set("ae-%d" % i, b"v") == b"STORED"
    assert node.stop() == 0
    node.start()

    def built():
        with open(node.log_path, "rb") as f:
            return re.findall(rb"aae: (\d+) trees built, (\d+) keys", f.read())

    wait_for(lambda: built(), timeout=10, interval=0.1, what="the anti-entropy tree build")
    assert built()[-1] == (b"64", b"300")


def test_antientropy_disabled_builds_no_trees(node_factory):
    node = node_factory(antientropy__enabled="false")
    with node.conn() as c:
        assert c.set("k", b"v") == b"STORED"
    assert node.stop() == 0
    with open(node.log_path, "rb") as f:
        assert b"aae:" not in f.read()


# ---------------------------------------------------------------- command line and config

def run_daemon(args, timeout=10):
    require_daemon()
    return subprocess.run([QKV_BIN] + args, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def test_version():
    r = run_daemon(["--version"])
    assert r.returncode == 0
    assert re.fullmatch(rb"quorumkvd \S+\n?", r.stdout), r.stdout


def test_help():
    r = run_daemon(["--help"])
    assert r.returncode == 0
    assert b"-c" in r.stdout + r.stderr


def test_unknown_option_fails():
    r = run_daemon(["--no-such-option"])
    assert r.returncode != 0
    assert r.stderr.strip()


def test_missing_config_file_fails(tmp_path):
    path = str(tmp_path / "nope.ini")
    r = run_daemon(["-c", path])
    assert r.returncode != 0
    assert b"nope.ini" in r.stderr


def bad_conf(node_factory, mutate):
    """Start a node whose conf text is mutate(lines); return (lineno of the
    mutated line or None, CompletedProcess)."""
    node = node_factory(start=False)
    lines = node.conf_text().splitlines()
    lineno = mutate(lines)
    with open(node.conf_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return node, lineno, run_daemon(["-c", node.conf_path])


def _assert_names_line(node, lineno, r):
    assert r.returncode != 0, "daemon accepted a bad config"
    err = r.stderr.decode("utf-8", "replace")
    assert re.search(r"conf\.ini:%d\b" % lineno, err), \
        "stderr should name conf.ini:%d, got: %r" % (lineno, err)
    assert len(err.strip().splitlines()) == 1, "expected a one-line message, got: %r" % err


def _replace(key, value):
    def mutate(lines):
        for i, l in enumerate(lines):
            if l.split("=")[0].strip() == key:
                lines[i] = "%s = %s" % (key, value)
                return i + 1
        raise AssertionError("no %s line" % key)
    return mutate


def _insert_after(section, text):
    def mutate(lines):
        i = lines.index("[%s]" % section)
        lines.insert(i + 1, text)
        return i + 2
    return mutate


@pytest.mark.parametrize("mutate,why", [
    (_replace("client_port", "abc"), "port"),
    (_replace("client_port", "70000"), "port"),
    (_replace("n", "zero"), "n"),
    (_insert_after("node", "no_such_key = 1"), "no_such_key"),
    (_insert_after("cluster", "vnodes = -5"), "vnodes"),
    (_insert_after("cluster", "request_timeout_ms = soon"), "request_timeout_ms"),
    (_insert_after("node", "log_level = loud"), "log_level"),
])
def test_bad_config_names_the_line(node_factory, mutate, why):
    node, lineno, r = bad_conf(node_factory, mutate)
    _assert_names_line(node, lineno, r)
    assert why.encode() in r.stderr, r.stderr


def test_bad_boolean_names_the_line(node_factory):
    def mutate(lines):
        lines += ["[storage]", "sync = maybe"]
        return len(lines)
    node, lineno, r = bad_conf(node_factory, mutate)
    _assert_names_line(node, lineno, r)


def test_unknown_section_names_the_line(node_factory):
    def mutate(lines):
        lines += ["[bogus]", "x = 1"]
        return len(lines)
    node, lineno, r = bad_conf(node_factory, mutate)
    assert r.returncode != 0
    err = r.stderr.decode("utf-8", "replace")
    assert re.search(r"conf\.ini:(%d|%d)\b" % (lineno - 1, lineno), err), err


def test_missing_node_name(node_factory):
    def mutate(lines):
        i = next(i for i, l in enumerate(lines) if l.startswith("name "))
        del lines[i]
        return None
    node, _, r = bad_conf(node_factory, mutate)
    assert r.returncode != 0
    assert b"name" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_valid_optional_keys_are_accepted(node_factory):
    node = node_factory(**{
        "node.max_value_bytes": 1048576, "node.max_connections": 1000, "node.log_level": "warn",
        "cluster.vnodes": 16, "cluster.request_timeout_ms": 500, "gossip.interval_ms": 100,
        "gossip.phi_threshold": 8, "handoff.enabled": "true", "antientropy.enabled": "false",
        "antientropy.interval_ms": 5000, "storage.sync": "true", "storage.cache_mb": 8,
    })
    with node.conn() as c:
        assert c.set("k", b"v") == b"STORED"
        assert c.get("k") == b"v"
    assert node.stop() == 0


def test_max_value_bytes_is_honoured(node_factory):
    node = node_factory(**{"node.max_value_bytes": 1000})
    with node.conn() as c:
        assert c.set("ok", b"x" * 1000) == b"STORED"
        assert c.set("big", b"x" * 1001) == b"SERVER_ERROR object too large for cache"
        assert c.get("big") is None
        assert c.cmd("version").startswith(b"VERSION ")


def test_object_cache_never_serves_what_the_store_no_longer_holds(node_factory):
    # the cache of decoded objects (storage.object_cache_mb) sits in front of
    # every read: each local write must replace what it holds, and expiry,
    # flush_all, deletes and read-modify-writes must look the same through
    # it as through LevelDB; then a restart (empty cache) must agree
    node = node_factory()
    with node.conn() as c:
        st0 = c.stats()
        assert int(st0["object_cache_limit"]) == 64 << 20
        assert c.set("oc-a", b"one") == b"STORED"
        assert c.get("oc-a") == b"one"
        assert c.get("oc-a") == b"one"
        assert c.set("oc-a", b"two") == b"STORED"
        assert c.get("oc-a") == b"two"
        assert c.store("append", "oc-a", b"+x") == b"STORED"
        assert c.get("oc-a") == b"two+x"
        assert c.set("oc-n", b"5") == b"STORED"
        assert c.get("oc-n") == b"5"
        assert c.cmd("incr oc-n 7") == b"12"
        assert c.get("oc-n") == b"12"
        assert c.get("oc-gone") is None          # cached as absent ...
        assert c.set("oc-gone", b"here") == b"STORED"
        assert c.get("oc-gone") == b"here"        # ... until written
        assert c.cmd("delete oc-gone") == b"DELETED"
        assert c.get("oc-gone") is None
        assert c.set("oc-exp", b"short", exptime=1) == b"STORED"
        assert c.get("oc-exp") == b"short"
        wait_for(lambda: c.get("oc-exp") is None, timeout=5, interval=0.1,
                 what="a cached item to expire")
        st = c.stats()
        assert int(st["object_cache_hits"]) > int(st0["object_cache_hits"])
        assert int(st["object_cache_invalidations"]) > int(st0["object_cache_invalidations"])
        assert int(st["object_cache_items"]) >= 1
        assert int(st["object_cache_bytes"]) > 0
        assert c.cmd("flush_all") == b"OK"
        assert c.get("oc-a") is None
        assert c.get("oc-n") is None
        assert c.set("oc-after", b"new") == b"STORED"
    assert node.stop() == 0
    node.start()
    with node.conn() as c:
        assert c.get("oc-a") is None
        assert c.get("oc-after") == b"new"
        assert int(c.stats()["object_cache_hits"]) == 0


def test_object_cache_off_and_tiny(node_factory):
    # 0 turns the cache off; a cache far smaller than the data evicts and
    # still answers every read right
    off = node_factory(storage__object_cache_mb=0)
    with off.conn() as c:
        assert c.set("k", b"v") == b"STORED"
        assert c.get("k") == b"v"
        st = c.stats()
        assert int(st["object_cache_limit"]) == 0
        assert int(st["object_cache_items"]) == 0
    tiny = node_factory(name="n2", storage__object_cache_mb=1)
    with tiny.conn(timeout=10) as c:
        for i in range(3000):
            assert c.set("t-%d" % i, b"%d" % i * 100) == b"STORED"
        for i in range(3000):
            assert c.get("t-%d" % i) == b"%d" % i * 100
        st = c.stats()
        assert int(st["object_cache_evictions"]) > 0
        assert int(st["object_cache_bytes"]) <= 1 << 20
