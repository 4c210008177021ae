#!/usr/bin/env bash
# bench/cost-per-request.sh - CPU cost of one request, quorumkvd against
# memcached: instructions and cycles per request from `perf stat -p` over the
# same load (bin/quorumkv-bench --protocol memcached, 90/10 get/set, 100-byte
# values, 16 connections,
# BENCH_SECONDS per run, BENCH_RUNS runs each, alternating).  Hardware
# counters must be available (`perf stat -e instructions true` shows a count);
# linux-perf is installed if missing.
#
#   bench/cost-per-request.sh          (after make: needs bin/quorumkvd, bin/quorumkv-bench)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECONDS:-4}
RUNS=${BENCH_RUNS:-2}
PY=/usr/bin/python3
. bench/lib.sh
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
bench_init qkv-cost
read -r QP PP MP < <($PY -c 'import socket
s=[socket.socket() for _ in range(3)]
[x.bind(("127.0.0.1",0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
cat > "$TMP/node.ini" <<INI
[node]
name = cost1
client_port = $QP
peer_port = $PP
data_dir = $TMP/data
log_level = warn
[cluster]
seeds = 127.0.0.1:$PP
n = 1
r = 1
w = 1
INI
bin/quorumkvd -c "$TMP/node.ini" 2>"$TMP/qkv.log" & QPID=$!; PIDS+=($QPID)
/usr/bin/memcached "${MC_USER[@]}" -p "$MP" -U 0 -l 127.0.0.1 -m 1024 -t 4 2>"$TMP/mc.log" & MPID=$!
PIDS+=($MPID)
wait_port "$QPID" "$QP" "$TMP/qkv.log" 10
wait_port "$MPID" "$MP" "$TMP/mc.log" 10
for port in $QP $MP; do $PY bench/benchlib.py load "$port" 100000 pre: 4 >/dev/null; done
measure() { # pid port label
  perf stat -e instructions,cycles -p "$1" -o "$TMP/perf.$3" -- sleep $((SECS + 1)) >/dev/null 2>&1 &
  local sp=$!
  sleep 0.2
  local r ops ins cyc
  bin/quorumkv-bench --protocol memcached -s "127.0.0.1:$2" -t 16 -d "$SECS" --warmup 0 -k 100000 \
    --key-prefix pre: -W 0.1 -v 100 --no-progress --no-stale-check --json "$TMP/run.json" >/dev/null
  wait $sp || true
  ops=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops"])' "$TMP/run.json")
  ins=$(awk '/instructions/ {gsub(",","",$1); print $1}' "$TMP/perf.$3")
  cyc=$(awk '/cycles/ {gsub(",","",$1); print $1}' "$TMP/perf.$3")
  printf '%-10s ops/s %8d   instructions/request %7d   cycles/request %7d\n' \
    "$3" $((ops / SECS)) $((ins / ops)) $((cyc / ops))
}
for _ in $(seq "$RUNS"); do
  measure "$QPID" "$QP" quorumkvd
  measure "$MPID" "$MP" memcached
done
