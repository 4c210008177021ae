"""quorumkv-cli against a real 3-node cluster: output, --json, exit codes
(0 done/found, 1 not found, 2 usage, 3 cluster or connection error), the
prompt on a pipe and on a terminal."""

import json
import os
import pty
import select
import subprocess
import time

import pytest

from clientlib import QKV_CLI, run_tool, supports_vget
from clusterlib import free_ports
from quorumlib import start_converged


def cli(node, *args, stdin=None):
    return run_tool([QKV_CLI, "-h", "127.0.0.1:%d" % node.client_port] + list(args), stdin=stdin)


@pytest.fixture
def three(cluster):
    nodes, _ = start_converged(cluster, 3)
    return nodes


@pytest.mark.timeout(90)
def test_write_commands_and_exit_codes(three):
    n1 = three[0]
    assert cli(n1, "set", "cli:k", "hello world")[:2] == (0, "STORED\n")
    assert cli(n1, "set", "cli:n", "41", "--flags", "7", "--ttl", "3600")[0] == 0
    assert cli(n1, "incr", "cli:n")[:2] == (0, "42\n")
    assert cli(n1, "incr", "cli:n", "8")[:2] == (0, "50\n")
    assert cli(n1, "incr", "cli:none")[0] == 1
    assert cli(n1, "touch", "cli:n", "100")[:2] == (0, "TOUCHED\n")
    assert cli(n1, "delete", "cli:n")[:2] == (0, "DELETED\n")
    assert cli(n1, "delete", "cli:n")[:2] == (1, "NOT_FOUND\n")
    rc, out, _ = cli(n1, "--json", "delete", "cli:n")
    assert rc == 1 and json.loads(out)["result"] == "NOT_FOUND"
    # value from stdin, binary-safe
    assert cli(n1, "set", "cli:bin", "-", stdin=b"a\r\nb\x00c")[0] == 0
    with three[1].conn() as c:
        assert c.cmd("get cli:k") == "VALUE cli:k 0 11"
        assert c.readline() == "hello world"
    # incr of a non-number: the server refused the request (usage class)
    rc, _, err = cli(n1, "incr", "cli:k")
    assert rc == 2 and "non-numeric" in err


@pytest.mark.timeout(90)
def test_read_commands(three):
    n1 = three[0]
    if not supports_vget(n1):
        pytest.skip("the server answers ERROR to vget: the vget/ctx= extension has not landed")
    assert cli(n1, "set", "cli:r", "value one")[0] == 0
    assert cli(n1, "get", "cli:r")[:2] == (0, "value one\n")
    rc, out, err = cli(n1, "get", "cli:missing")
    assert rc == 1 and out == "" and "not found" in err
    rc, out, _ = cli(n1, "--json", "get", "cli:r")
    doc = json.loads(out)
    assert rc == 0 and doc["found"] and doc["value"] == "value one" and doc["siblings"] == 1
    rc, out, _ = cli(n1, "--json", "get", "cli:missing")
    assert rc == 1 and json.loads(out)["found"] is False
    # two siblings through the context option, then a merge written back
    assert cli(n1, "set", "cli:s", "a")[0] == 0
    assert cli(n1, "set", "cli:s", "b", "--context", "[]")[0] == 0
    rc, out, _ = cli(n1, "--json", "-r", "all", "siblings", "cli:s")
    doc = json.loads(out)
    assert rc == 0 and sorted(v["value"] for v in doc["versions"] if not v["deleted"]) == ["a", "b"]
    rc, out, _ = cli(n1, "-r", "all", "siblings", "cli:s")
    assert rc == 0 and "STATE" in out and out.count(" live ") == 2 and "context: [" in out
    assert cli(n1, "set", "cli:s", "ab", "--context", doc["context"])[0] == 0
    rc, out, _ = cli(n1, "-r", "all", "get", "cli:s")
    assert (rc, out) == (0, "ab\n")


@pytest.mark.timeout(90)
def test_cluster_views(three):
    n2 = three[1]
    rc, out, _ = cli(n2, "--json", "status")
    assert rc == 0
    nodes = json.loads(out)["nodes"]
    assert sorted(n["name"] for n in nodes) == sorted(n.name for n in three)
    for n in nodes:
        assert n["state"] == "up" and n["keys"] is not None and n["hints_pending"] == 0
        assert n["disk_bytes"] > 0                       # the store's files (LevelDB log at least)
        assert n["anti_entropy"] is not None             # from the `aae` command
        assert abs(n["replicas"] - 1.0) < 1e-6          # n=3 of 3 nodes: every node holds everything
    assert abs(sum(n["owns"] for n in nodes) - 1.0) < 1e-6
    rc, out, _ = cli(n2, "status")
    assert rc == 0 and out.splitlines()[0].split()[:4] == ["NODE", "ADDRESS", "STATE", "OWNS"]
    assert len(out.splitlines()) == 4
    rc, out, _ = cli(n2, "--json", "members")
    assert rc == 0 and {m["state"] for m in json.loads(out)["members"]} == {"up"}
    rc, out, _ = cli(n2, "--json", "ring")
    ranges = json.loads(out)["ranges"]
    assert rc == 0 and len(ranges) == 3 * 64 and all(len(r["replicas"]) == 3 for r in ranges)
    rc, out, _ = cli(n2, "ring")
    assert rc == 0 and out.strip().endswith("(192 ranges)")
    rc, out, _ = cli(n2, "--json", "stats")
    doc = json.loads(out)
    assert rc == 0 and doc["node"] == n2.name and doc["stats"]["pid"] == n2.pid
    rc, out, _ = cli(n2, "stats", three[2].name)
    assert rc == 0 and "node %s" % three[2].name in out and "ring_epoch" in out


@pytest.mark.timeout(60)
def test_usage_and_connection_errors(three):
    n1 = three[0]
    assert run_tool([QKV_CLI, "--help"])[0] == 0
    rc, out, _ = run_tool([QKV_CLI, "--version"])
    assert rc == 0 and out.startswith("quorumkv-cli ")
    assert cli(n1, "frobnicate")[0] == 2
    assert cli(n1, "get")[0] == 2
    assert cli(n1, "set", "k")[0] == 2
    assert cli(n1, "-r", "most", "get", "k")[0] == 2
    assert cli(n1, "set", "k", "v", "--ttl")[0] == 2
    assert cli(n1, "set", "bad key", "v")[0] == 2        # the library refuses the key
    port = free_ports(1)[0]
    rc, _, err = run_tool([QKV_CLI, "-h", "127.0.0.1:%d" % port, "members"])
    assert rc == 3 and "cannot connect" in err


@pytest.mark.timeout(60)
def test_prompt_on_a_pipe(three):
    rc, out, _ = cli(three[0], stdin=b'set "cli:p" "two words"\nincr cli:pc\nmembers\nquit\n')
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "STORED" and "NAME" in lines[2], out


@pytest.mark.timeout(60)
def test_prompt_on_a_terminal(three, tmp_path):
    """libedit's prompt: a command typed, its answer, quit; history saved."""
    master, slave = pty.openpty()
    env = dict(os.environ, HOME=str(tmp_path), TERM="dumb")
    p = subprocess.Popen([QKV_CLI, "-h", "127.0.0.1:%d" % three[0].client_port], stdin=slave,
                         stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    got = b""

    def read_until(token, limit=20):
        nonlocal got
        deadline = time.monotonic() + limit
        while token not in got:
            left = deadline - time.monotonic()
            assert left > 0, "no %r from the prompt; screen: %r" % (token, got[-500:])
            r, _, _ = select.select([master], [], [], left)
            if r:
                try:
                    got += os.read(master, 4096)
                except OSError:
                    break
    try:
        read_until(b"> ")
        os.write(master, b"set cli:tty yes\r")
        read_until(b"STORED")
        os.write(master, b"quit\r")
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    # libedit writes spaces as \\040
    assert "set\\040cli:tty\\040yes" in (tmp_path / ".quorumkv_cli_history").read_text()
