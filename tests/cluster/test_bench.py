"""quorumkv-bench: short runs against a real cluster through both paths
(libquorumkv and the memcached text protocol); the JSON summary and the CSV
series are parsed and checked against what the servers counted."""

import csv
import json

import pytest

from clientlib import QKV_BENCH, run_tool, seeds, supports_vget
from clusterlib import free_ports
from quorumlib import start_converged, stat_sum

BASE = ["--keys", "500", "--warmup", "0", "--threads", "4", "--no-progress", "--timeout-ms", "3000"]


def bench(*args, timeout=120):
    return run_tool([QKV_BENCH] + BASE + list(args), timeout=timeout)


def summary(path):
    with open(path) as f:
        return json.load(f)


@pytest.fixture
def three(cluster):
    nodes, _ = start_converged(cluster, 3)
    return nodes


@pytest.mark.timeout(120)
def test_memcached_protocol_run(three, tmp_path):
    js = tmp_path / "s.json"
    before = stat_sum(three, "cmd_set")
    rc, out, err = bench("--protocol", "memcached", "-s", seeds(three), "--preload", "--ops", "3000",
                         "-W", "0.2", "--json", str(js), "-r", "quorum", "-w", "all")
    assert rc == 0, err
    s = summary(js)
    assert s["ok"] and s["protocol"] == "memcached" and s["ops"] >= 3000
    assert s["reads"] + s["writes"] == s["ops"] and s["writes"] > 0 and s["reads"] > 0
    assert s["errors"]["total"] == 0, s
    assert s["misses"] == 0                          # every key was preloaded
    lat = s["latency_us"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"]
    # R=quorum, W=all: no read may be stale; every read was checked
    assert s["stale"]["checked"] == s["reads"] and s["stale"]["stale"] == 0
    # the servers saw the preload and the measured sets (at least)
    assert stat_sum(three, "cmd_set") - before >= 500 + s["writes"]
    assert "ops/s" in out and "p99" in out


@pytest.mark.timeout(120)
def test_library_run_with_duration_and_csv(three, tmp_path):
    js, cs = tmp_path / "l.json", tmp_path / "l.csv"
    reads = supports_vget(three[0])
    ratio = "0.3" if reads else "1"                  # without vget the library cannot read
    fwd = stat_sum(three, "coord_forwarded")
    rc, out, err = bench("-s", seeds(three[:1]), "--preload", "--duration", "2.5", "-W", ratio,
                         "--json", str(js), "--csv", str(cs), "-w", "quorum", "-r", "quorum")
    assert rc == 0, err
    s = summary(js)
    assert s["ok"] and s["protocol"] == "qkv" and s["ops"] > 0 and s["errors"]["total"] == 0, s
    assert 2.0 < s["seconds"] < 10
    rows = list(csv.DictReader(open(cs)))
    assert len(rows) >= 2 and sum(int(r["ops"]) for r in rows) <= s["ops"]
    assert stat_sum(three, "coord_forwarded") == fwd   # token-aware: nothing forwarded
    if reads:
        assert s["reads"] > 0 and s["stale"]["stale"] == 0


@pytest.mark.timeout(120)
def test_hot_keys(three, tmp_path):
    js = tmp_path / "h.json"
    proto = [] if supports_vget(three[0]) else ["--protocol", "memcached"]
    rc, out, err = bench(*proto, "-s", seeds(three), "--hot-keys", "10", "--incr-ratio", "0.5",
                         "-W", "1", "--ops", "2000", "--threads", "8", "--json", str(js))
    assert rc == 0, err
    s = summary(js)
    assert s["hot_keys"] == 10 and s["incrs"] > 0 and s["writes"] > 0, s
    assert s["incrs"] + s["writes"] == s["ops"] and s["errors"]["total"] == 0, s
    # every write went to the ten hot keys: each is a number now
    with three[0].conn() as c:
        for i in range(10):
            assert c.cmd("get bench:hot:%d" % i).startswith("VALUE")
            assert c.readline().isdigit()
            assert c.readline() == "END"


@pytest.mark.timeout(60)
def test_errors_and_usage(three, tmp_path):
    assert run_tool([QKV_BENCH, "--help"])[0] == 0
    assert run_tool([QKV_BENCH, "--protocol", "http"])[0] == 2
    assert run_tool([QKV_BENCH, "--write-ratio", "2"])[0] == 2
    assert run_tool([QKV_BENCH, "-r", "most"])[0] == 2
    port = free_ports(1)[0]
    rc, _, err = run_tool([QKV_BENCH, "-s", "127.0.0.1:%d" % port, "--ops", "10"])
    assert rc == 1 and "cannot connect" in err
    # a level above n=3: every request refused, counted by kind, the run completes
    js = tmp_path / "e.json"
    rc, _, err = bench("--protocol", "memcached", "-s", seeds(three), "-w", "4", "-W", "1",
                       "--ops", "200", "--json", str(js))
    assert rc == 0, err
    s = summary(js)
    assert s["errors"]["client"] == s["ops"] == s["errors"]["total"], s


@pytest.mark.timeout(120)
def test_open_loop_rate(three, tmp_path):
    """--rate sends on a fixed schedule: rate x duration requests in the
    measured window through either path, each answered and counted once."""
    reads = supports_vget(three[0])
    for proto, ratio in ((["--protocol", "memcached"], "0.2"), ([], "0.2" if reads else "1")):
        js = tmp_path / "o.json"
        rc, out, err = bench(*proto, "-s", seeds(three), "--preload", "--rate", "400",
                             "--duration", "1.5", "-W", ratio, "--json", str(js))
        assert rc == 0, err
        s = summary(js)
        assert s["mode"] == "open" and s["rate"] == 400, s
        assert s["sent"] == 600 and s["ops"] == 600, s
        assert s["successes"] == s["ops"] - s["errors"]["total"] > 0, s
        # on a busy machine a request may be shed, never fail otherwise
        assert s["errors"]["total"] == s["errors"]["busy"], s
        assert s["goodput"] == pytest.approx(s["successes"] / 1.5, rel=0.01)
        assert "open loop: 400 ops/s offered, 600 sent" in out, out


def test_open_loop_usage(three):
    assert run_tool([QKV_BENCH, "--rate", "0"])[0] == 2
    assert run_tool([QKV_BENCH, "--rate", "fast"])[0] == 2
    rc, _, err = run_tool([QKV_BENCH, "--rate", "100", "--ops", "10"])
    assert rc == 2 and "--duration" in err
