"""The built libquorumkv as an application links it: both forms export
only the public qkv_* API, and a program compiled against
client/quorumkv.h links and runs with the shared library."""

import os
import subprocess

import pytest

from clientlib import QKV_LIBDIR, ROOT, run_tool, seeds
from quorumlib import start_converged


def declared():
    """The qkv_* functions client/quorumkv.h declares."""
    import re
    with open(os.path.join(ROOT, "client", "quorumkv.h")) as f:
        return set(re.findall(r"\b(qkv_[a-z0-9_]+)\s*\(", f.read()))


def exported(path, dynamic):
    args = ["nm", "--defined-only", "-g"] + (["-D"] if dynamic else []) + [path]
    out = subprocess.run(args, stdout=subprocess.PIPE, check=True, timeout=30).stdout.decode()
    return {ln.split()[-1] for ln in out.splitlines() if len(ln.split()) == 3}


@pytest.mark.parametrize("name,dynamic", [("libquorumkv.so", True), ("libquorumkv.a", False)])
def test_only_the_public_api_is_exported(name, dynamic):
    syms = exported(os.path.join(QKV_LIBDIR, name), dynamic)
    # ASan builds add the sanitizer's own interface symbols to the .so
    ours = {s for s in syms if not s.startswith(("__asan", "__ubsan", "__sanitizer", "__lsan"))}
    assert {"qkv_connect", "qkv_get", "qkv_set", "qkv_mget", "qkv_close"} <= ours
    assert {s for s in ours if not s.startswith("qkv_")} == set()
    # and no internal helper under the public prefix: only what the header declares
    assert ours - declared() == set(), "exported but not in quorumkv.h: %s" % sorted(ours - declared())


@pytest.mark.timeout(90)
def test_a_program_links_the_shared_library(cluster, tmp_path):
    if os.path.basename(os.path.dirname(QKV_LIBDIR)).startswith("build-asan"):
        pytest.skip("the sanitizer build's .so needs the ASan runtime preloaded")
    nodes, _ = start_converged(cluster, 3)
    exe = tmp_path / "merge"
    subprocess.run(["cc", "-I", os.path.join(ROOT, "client"), "-o", str(exe),
                    os.path.join(ROOT, "client", "examples", "merge.c"),
                    "-L", QKV_LIBDIR, "-lquorumkv", "-Wl,-rpath," + QKV_LIBDIR],
                   check=True, timeout=60)
    rc, out, err = run_tool([str(exe), seeds(nodes[:1]), "shared:lib", "word"])
    assert rc == 0, err
    assert out.startswith("shared:lib: word (merged 0 sibling(s))"), out
