#!/usr/bin/env bash
# bench/bench-antientropy.sh - anti-entropy on a 3-node cluster: the bytes and
# time of the exchanges that repair D differing keys among BENCH_KEYS, the
# tree memory and build time, and client throughput with anti-entropy on and
# off in the same run.  Builds the load tool (bench/loadgen.c) and runs
# bench/bench_antientropy.py, whose header says what is measured and which
# environment variables it reads (BENCH_KEYS, BENCH_DIFFS, BENCH_SECONDS,
# BENCH_RUNS, BENCH_CONNS, BENCH_AE_INTERVAL_MS, QKV_BIN, BENCH_KEEP).
#
#   bench/bench-antientropy.sh       (needs bin/quorumkvd: run 'make' first)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "${QKV_BIN:-bin/quorumkvd}" ] || { echo "bench: ${QKV_BIN:-bin/quorumkvd} missing: run 'make' first" >&2; exit 1; }
BUILD=$(mktemp -d /tmp/qkv-bench-loadgen.XXXXXX)
trap 'rm -rf "$BUILD"' EXIT
cc -O2 -Wall -pthread -o "$BUILD/loadgen" bench/loadgen.c
LOADGEN=$BUILD/loadgen /usr/bin/python3 bench/bench_antientropy.py
