#!/usr/bin/env bash
# bench/bench-join.sh - the time a fourth node takes to join a 3-node
# cluster holding BENCH_KEYS keys (1M), and client throughput / p50 / p99
# during the join beside before it, in one run (bench/bench_join.py says
# how).  Needs bin/quorumkvd and bin/quorumkv-bench: run 'make' first.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in "${QKV_BIN:-bin/quorumkvd}" "${QKV_BENCH:-bin/quorumkv-bench}"; do
  [ -x "$b" ] || { echo "bench: $b missing: run 'make' first" >&2; exit 1; }
done
exec /usr/bin/python3 bench/bench_join.py
