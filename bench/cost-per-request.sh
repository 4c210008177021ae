#!/usr/bin/env bash
# bench/cost-per-request.sh - CPU cost of one request, quorumkvd against
# memcached: instructions and cycles per request from `perf stat -p` over the
# same load (bin/quorumkv-bench --protocol memcached, 90/10 get/set, 100-byte
# values, 16 connections,
# BENCH_SECONDS per run, BENCH_RUNS runs each, alternating), plus system
# calls and CPU time per request (perf's software events, always there).
# linux-perf is installed if missing.
#
# Where the machine has no hardware counters (a VM whose `perf stat -e
# instructions true` says <not supported>), instructions come from
# callgrind instead: each server runs under valgrind, is loaded, then its
# counters are zeroed (callgrind_control -z) before BENCH_CG_OPS (20000)
# measured requests and dumped (-d) after them (after one unmeasured pass
# of the same load, so caches are warm), so start-up and preload are
# not counted (its timers, gossip and the crawler, are: a few percent;
# more than natively, since the server runs ~50x slower under callgrind
# and its timers do not).  Then both servers run natively for system calls
# and CPU time per request (perf's software events).  Callgrind counts user-space instructions only (perf counts the
# kernel's too), so the two kinds of figures are not comparable with each
# other; quorumkvd against memcached within one kind is.
#
#   bench/cost-per-request.sh          (after make: needs bin/quorumkvd, bin/quorumkv-bench)
#   BENCH_CG_KEEP=/tmp/prof bench/cost-per-request.sh   also keeps the last callgrind
#       profile of each server as /tmp/prof.quorumkvd and /tmp/prof.memcached
#       (read them with callgrind_annotate --inclusive=yes)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${BENCH_SECONDS:-4}
RUNS=${BENCH_RUNS:-2}
PY=/usr/bin/python3
. bench/lib.sh
command -v perf >/dev/null || apt-get install -y -qq linux-perf >/dev/null
HW=1
perf stat -e instructions true 2>&1 | grep -q "not supported" && HW=0
if [ "$HW" = 0 ]; then
  command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
fi
CG_OPS=${BENCH_CG_OPS:-20000}
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
if [ "$HW" = 0 ]; then
  # Under valgrind, memcached
  # may set its open-files limit only to valgrind's own hard limit exactly
  # (it sets soft = hard = -c), so -c is that number.
  VG_NOFILE=$(valgrind --tool=none sh -c 'ulimit -Hn' 2>/dev/null | tail -1)
  CG="valgrind --tool=callgrind --callgrind-out-file=$TMP/cg.%p"
  $CG bin/quorumkvd -c "$TMP/node.ini" 2>"$TMP/qkv.log" & QPID=$!; PIDS+=($QPID)
  $CG /usr/bin/memcached "${MC_USER[@]}" -p "$MP" -U 0 -l 127.0.0.1 -m 1024 -t 4 -c "$VG_NOFILE" 2>"$TMP/mc.log" & MPID=$!
  PIDS+=($MPID)
  wait_port "$QPID" "$QP" "$TMP/qkv.log" 60
  wait_port "$MPID" "$MP" "$TMP/mc.log" 60
  for port in $QP $MP; do $PY bench/benchlib.py load "$port" 20000 pre: 4 >/dev/null; done
  # One unmeasured pass of the same load first: what is measured is the
  # steady state (caches warm), not the first touch of each key.
  for port in $QP $MP; do
    bin/quorumkv-bench --protocol memcached -s "127.0.0.1:$port" -t 16 -n "$CG_OPS" --warmup 0 -k 20000 \
      --key-prefix pre: -W 0.1 -v 100 --no-progress --no-stale-check >/dev/null
  done
  cg_measure() { # pid port label
    callgrind_control -z "$1" >/dev/null 2>&1
    bin/quorumkv-bench --protocol memcached -s "127.0.0.1:$2" -t 16 -n "$CG_OPS" --warmup 0 -k 20000 \
      --key-prefix pre: -W 0.1 -v 100 --no-progress --no-stale-check --json "$TMP/run.json" >/dev/null
    rm -f "$TMP"/cg."$1".[0-9]*
    callgrind_control -d "$1" >/dev/null 2>&1
    local f ops ir
    f=$(ls -t "$TMP"/cg."$1".* | head -1)
    [ -n "${BENCH_CG_KEEP:-}" ] && cp "$f" "$BENCH_CG_KEEP.$3"
    ops=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops"])' "$TMP/run.json")
    ir=$(awk '/^summary:/ {print $2}' "$f")
    printf '%-10s requests %7d   user-space instructions/request (callgrind) %7d\n' "$3" "$ops" $((ir / ops))
  }
  for _ in $(seq "$RUNS"); do
    cg_measure "$QPID" "$QP" quorumkvd
    cg_measure "$MPID" "$MP" memcached
  done
  # then the same servers natively, for what callgrind cannot see: system
  # calls (the kernel's share) and CPU time per request
  kill "$QPID" "$MPID"
  wait "$QPID" "$MPID" 2>/dev/null || true
  forget_pid "$QPID"
  forget_pid "$MPID"
  rm -rf "$TMP/data"
fi
bin/quorumkvd -c "$TMP/node.ini" 2>"$TMP/qkv.log" & QPID=$!; PIDS+=($QPID)
/usr/bin/memcached "${MC_USER[@]}" -p "$MP" -U 0 -l 127.0.0.1 -m 1024 -t 4 2>"$TMP/mc.log" & MPID=$!
PIDS+=($MPID)
wait_port "$QPID" "$QP" "$TMP/qkv.log" 10
wait_port "$MPID" "$MP" "$TMP/mc.log" 10
for port in $QP $MP; do $PY bench/benchlib.py load "$port" 100000 pre: 4 >/dev/null; done
measure() { # pid port label
  local ev=raw_syscalls:sys_enter,task-clock
  [ "$HW" = 1 ] && ev=instructions,cycles,$ev
  perf stat -e "$ev" -p "$1" -o "$TMP/perf.$3" -- sleep $((SECS + 1)) >/dev/null 2>&1 &
  local sp=$!
  sleep 0.2
  local r ops ins cyc sys tc
  bin/quorumkv-bench --protocol memcached -s "127.0.0.1:$2" -t 16 -d "$SECS" --warmup 0 -k 100000 \
    --key-prefix pre: -W 0.1 -v 100 --no-progress --no-stale-check --json "$TMP/run.json" >/dev/null
  wait $sp || true
  ops=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops"])' "$TMP/run.json")
  ins=$(awk '/instructions/ {gsub(",","",$1); print $1}' "$TMP/perf.$3")
  cyc=$(awk '/cycles/ {gsub(",","",$1); print $1}' "$TMP/perf.$3")
  sys=$(awk '/raw_syscalls/ {gsub(",","",$1); print $1}' "$TMP/perf.$3")
  tc=$(awk '/task-clock/ {gsub(",","",$1); print $1}' "$TMP/perf.$3")
  local per
  per="syscalls/request $(awk -v a="$sys" -v b="$ops" 'BEGIN {printf "%.2f", a / b}')   cpu us/request $(awk -v a="$tc" -v b="$ops" 'BEGIN {printf "%.1f", a * 1000 / b}')"
  if [ "$HW" = 1 ]; then
    printf '%-10s ops/s %8d   instructions/request %7d   cycles/request %7d   %s\n' \
      "$3" $((ops / SECS)) $((ins / ops)) $((cyc / ops)) "$per"
  else
    printf '%-10s ops/s %8d   %s\n' "$3" $((ops / SECS)) "$per"
  fi
}
for _ in $(seq "$RUNS"); do
  measure "$QPID" "$QP" quorumkvd
  measure "$MPID" "$MP" memcached
done
