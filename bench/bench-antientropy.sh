#!/usr/bin/env bash
# bench/bench-antientropy.sh - anti-entropy on a 3-node cluster: the bytes and
# time of the exchanges that repair D differing keys among BENCH_KEYS, the
# tree memory and build time, and client throughput with anti-entropy on and
# off in the same run.  Runs bench/bench_antientropy.py, whose header says
# what is measured and which environment variables it reads (BENCH_KEYS,
# BENCH_DIFFS, BENCH_SECONDS, BENCH_RUNS, BENCH_CONNS, BENCH_AE_INTERVAL_MS,
# QKV_BIN, QKV_BENCH, BENCH_KEEP).  The load tool is bin/quorumkv-bench.
#
#   bench/bench-antientropy.sh       (needs bin/quorumkvd and bin/quorumkv-bench: run 'make')
set -euo pipefail
cd "$(dirname "$0")/.."
for b in "${QKV_BIN:-bin/quorumkvd}" "${QKV_BENCH:-bin/quorumkv-bench}"; do
  [ -x "$b" ] || { echo "bench: $b missing: run 'make' first" >&2; exit 1; }
done
exec /usr/bin/python3 bench/bench_antientropy.py
