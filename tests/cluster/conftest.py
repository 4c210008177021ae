"""Cluster test harness: real quorumkvd processes on free ports in temp dirs.

Each test gets a `cluster` factory (ClusterFactory) that writes one INI file
per node, starts the daemons, and kills every process it started, by PID, in
the fixture teardown (also when the test fails or times out).  Every wait
polls with a deadline (wait_for), every socket read has a timeout, and every
test phase runs under a SIGALRM limit (no pytest-timeout plugin assumed).

Timings: tests call the `timing` fixture, timing(label, seconds, goal=None);
it prints a "TIMING <label> <seconds>" line at once (visible with -s) and
again in the terminal summary at the end of the run, so the numbers survive
pytest's output capture.

The machinery (free ports, deadline polling, the text client, nodes, the
cluster factory, predicates on `members` and `ring`) lives in clusterlib.py
so test modules can import it; this file holds only hooks and fixtures.

Run:  cd tests/cluster && /usr/bin/python3 -m pytest -q -p no:cacheprovider
      (QKV_BIN=/path/to/quorumkvd to test another build, e.g. a copy taken
      while others rebuild bin/)
"""

import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clusterlib import QKV_BIN, ClusterFactory  # noqa: E402

DEFAULT_TEST_TIMEOUT = 60    # seconds per test phase (setup/call/teardown)

# --------------------------------------------------------------------------
# Per-test time limit (SIGALRM; same scheme as tests/integration)
# --------------------------------------------------------------------------


class TestTimeout(Exception):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "timeout(seconds): per-phase time limit for this test")


def _with_alarm(item, phase):
    m = item.get_closest_marker("timeout")
    limit = int(m.args[0]) if m else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TestTimeout("%s %s exceeded %ds" % (item.nodeid, phase, limit))

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(limit)
    return old


def _phase(item, phase):
    old = _with_alarm(item, phase)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _phase(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _phase(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield from _phase(item, "teardown")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _test_failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


# --------------------------------------------------------------------------
# Timings
# --------------------------------------------------------------------------

TIMINGS = []   # (label, seconds, goal or None)


@pytest.fixture
def timing():
    def record(label, seconds, goal=None):
        TIMINGS.append((label, seconds, goal))
        note = "" if goal is None else "  (goal < %.1fs: %s)" % (goal, "met" if seconds < goal else "MISSED")
        print("TIMING %s %.3f%s" % (label, seconds, note))
    return record


def pytest_terminal_summary(terminalreporter):
    if not TIMINGS:
        return
    terminalreporter.section("cluster timings")
    for label, seconds, goal in TIMINGS:
        note = "" if goal is None else "  (goal < %.1fs: %s)" % (goal, "met" if seconds < goal else "MISSED")
        terminalreporter.write_line("TIMING %s %.3f%s" % (label, seconds, note))


@pytest.fixture
def cluster(tmp_path, request):
    if not (os.path.isfile(QKV_BIN) and os.access(QKV_BIN, os.X_OK)):
        pytest.fail("quorumkvd not found at %s (run make, or set QKV_BIN)" % QKV_BIN, pytrace=False)
    f = ClusterFactory(tmp_path)
    try:
        yield f
    finally:
        died = [n.name for n in f.nodes if n.proc is not None and not n.alive()
                and n.proc.returncode != -signal.SIGKILL and not n.expect_exit]
        f.cleanup(_test_failed(request) or bool(died))
        if died and not _test_failed(request):
            pytest.fail("node(s) %s exited on their own during the test" % ", ".join(died), pytrace=False)
