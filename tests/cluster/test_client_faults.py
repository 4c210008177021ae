"""libquorumkv against a server that misbehaves (clientlib.FakeServer):
garbage replies, a connection closed mid-reply, no reply at all, an endless
line, an absurd value length.  Each must give its error code within the
request's timeout: never a hang (the per-test alarm would catch one), never
a crash, and no leak under ASan (Driver.close() checks the sanitizer
output).
"""

import pytest

from clientlib import Driver, FakeServer
from clusterlib import free_ports

CASES = [
    # mode, expected code of a read, of a write
    ("garbage", -5, -5),     # QKV_ERR_PROTO
    ("close", -3, -3),       # QKV_ERR_CONN
    ("silent", -4, -4),      # QKV_ERR_TIMEOUT
    ("longline", -5, -5),
    ("badvalue", -5, -5),
]


@pytest.fixture
def driver():
    d = Driver()
    try:
        yield d
    finally:
        d.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode,read_rc,write_rc", CASES)
def test_bad_server_gives_an_error_code(driver, mode, read_rc, write_rc):
    port = free_ports(1)[0]
    fake = FakeServer(port, mode)
    try:
        r = driver.call("connect 127.0.0.1:%d timeout=500" % port)
        assert r["rc"] == 0, r
        r = driver.call("get some:key timeout=500")
        assert r["rc"] == read_rc and r["result"] is None, r
        assert r["err"], r
        r = driver.call("set some:key value timeout=500")
        assert r["rc"] == write_rc, r
        r = driver.call("incr some:key 1 timeout=500")
        assert r["rc"] == write_rc, r
        r = driver.call("mget a,b,c timeout=500")
        assert r["codes"] == [read_rc] * 3 and r["results"] == [None] * 3, r
        r = driver.call("admin - stats")          # the healthy part still works
        assert r["rc"] == 0 and "ring_epoch" in r["reply"], r
    finally:
        fake.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["garbage", "silent", "close"])
def test_connect_to_a_bad_server_fails_cleanly(driver, mode):
    port = free_ports(1)[0]
    fake = FakeServer(port, mode, topology="garbage" if mode == "garbage" else "broken")
    try:
        r = driver.call("connect 127.0.0.1:%d timeout=500" % port)
        assert r["rc"] != 0 and r["err"], r
        r = driver.call("get k")
        assert r["rc"] == -1 and "not connected" in r["err"], r
    finally:
        fake.close()
