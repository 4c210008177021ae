#!/usr/bin/env bash
# bench/bench-overload.sh - a 3-node cluster under open-loop overload: its
# closed-loop capacity, then floods of 1.5x and 3x that for 30 s each
# (bin/quorumkv-bench --rate): goodput, p99 of the successes, errors by kind,
# shed requests by reason, daemon memory, recovery after the flood.  Runs
# bench/bench_overload.py, whose header says what is measured and which
# environment variables it reads (BENCH_KEYS, BENCH_SECONDS, BENCH_RUNS,
# BENCH_CONNS, BENCH_FACTORS, BENCH_FLOOD_SECONDS, BENCH_PROBES, QKV_BIN,
# QKV_BENCH, BENCH_KEEP).
#
#   bench/bench-overload.sh       (needs bin/quorumkvd and bin/quorumkv-bench: run 'make')
set -euo pipefail
cd "$(dirname "$0")/.."
for b in "${QKV_BIN:-bin/quorumkvd}" "${QKV_BENCH:-bin/quorumkv-bench}"; do
  [ -x "$b" ] || { echo "bench: $b missing: run 'make' first" >&2; exit 1; }
done
exec /usr/bin/python3 bench/bench_overload.py
