#!/usr/bin/env bash
# bench/bench-table.sh - issue 12's table in one run: memcached beside
# quorumkvd as 1 node and as 3 nodes at (R,W) = (1,1), (2,2), (3,3), each at
# 4 and 16 connections: throughput, p50 and p99, and the ratio to memcached
# measured in the same round; then CPU per request on one node
# (bench/cost-per-request.sh), and the floor under one replica round trip on
# this machine (bench/loopback-rtt.c).
#
#   bench/bench-table.sh        (after make; `make bench` runs it first)
#
# One memcached (-t 4) for the whole run; each quorumkvd setting is a FRESH
# node or cluster on 127.0.0.1 (free ports, temp data dirs; 1 node: n=r=w=1;
# 3 nodes: n=3 and R, W as the nodes' cluster.r / cluster.w, so text
# clients send exactly what they send memcached), preloaded with
# BENCH_PRELOAD keys (bench/benchlib.py load).  Every run is one
# bin/quorumkv-bench --protocol memcached process: C closed-loop
# connections (one request in flight each), 90% get / 10% set over the
# preloaded keys, 100-byte values; on a cluster client i talks to node
# i mod 3 (plain memcached clients spread over the nodes).  For each setting
# and connection count, BENCH_RUNS rounds of (memcached run, quorumkvd run)
# alternate; the table shows medians and the ratio of the medians.  Any
# error reply fails the run and is reported, except SERVER_ERROR busy
# (admission control), which is printed with the run.
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10]  BENCH_RUNS [3]  BENCH_CONNS_LIST ["4 16"]
#   BENCH_PRELOAD [100000]  BENCH_SETTINGS ["1:1,1 3:1,1 3:2,2 3:3,3"] (nodes:R,W)
#   BENCH_COST [1]: 0 skips cost-per-request.sh
#   QKV_BIN [bin/quorumkvd]  QKV_BENCH [bin/quorumkv-bench]  MEMCACHED [/usr/bin/memcached]
#   BENCH_KEEP=1 keeps the temp dir (logs, tool outputs)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-3}
CONNS_LIST=${BENCH_CONNS_LIST:-"4 16"}
PRELOAD=${BENCH_PRELOAD:-100000}
SETTINGS=${BENCH_SETTINGS:-"1:1,1 3:1,1 3:2,2 3:3,3"}
QKV_BIN=${QKV_BIN:-$ROOT/bin/quorumkvd}
QKV_BENCH=${QKV_BENCH:-$ROOT/bin/quorumkv-bench}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
PY=/usr/bin/python3
LIB=$ROOT/bench/benchlib.py
CLIB=$ROOT/bench/clusterlib.py
T_START=$(date +%s)

. "$(dirname "$0")/lib.sh"
[ -x "$MEMCACHED" ] || die "$MEMCACHED missing (apt-get install memcached)"
[ -x "$QKV_BIN" ] || die "$QKV_BIN missing: run 'make' first"
[ -x "$QKV_BENCH" ] || die "$QKV_BENCH missing: run 'make' first"
for s in $SETTINGS; do
  case "$s" in 1:1,1|3:[1-3],[1-3]) ;; *) die "BENCH_SETTINGS: bad setting '$s' (1:1,1 or 3:R,W)" ;; esac
done
bench_init qkv-bench-table

echo "== quorumkv table bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, Linux $(uname -r)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "   load average before start: $LOAD_BEFORE; ${SECS}s x $RUNS runs per target, setting and connection count"

# the floor under one replica round trip on this machine (bench/loopback-rtt.c)
RTT_BIN=$ROOT/build/bench/loopback-rtt
[ -x "$RTT_BIN" ] || make -s -C "$ROOT" build/bench/loopback-rtt >/dev/null || die "cannot build $RTT_BIN"
RTT=$("$RTT_BIN" 20000) || die "$RTT_BIN failed"
echo "$RTT (two processes, one message at a time: each wakes its receiver)"

MC_PORT=$("$PY" "$LIB" freeports 1)
MC_LOG=$TMP/memcached.log
MC_CMD="$MEMCACHED ${MC_USER[*]} -p $MC_PORT -U 0 -l 127.0.0.1 -m 1024 -t 4 -c 4096"
$MC_CMD >"$MC_LOG" 2>&1 &
MC_PID=$!; PIDS+=("$MC_PID")
wait_port "$MC_PID" "$MC_PORT" "$MC_LOG" 10
res=$("$PY" "$LIB" load "$MC_PORT" "$PRELOAD" pre: 4) || die "preload into memcached failed"
echo "memcached $($MEMCACHED -V | awk '{print $2}') port $MC_PORT; preload: $res"

# start_nodes NODES R W TAG -> NODE_PID[] NODE_PORT[] NODE_LOG[]
start_nodes() {
  local nodes=$1 r=$2 w=$3 tag=$4 i ports
  read -r -a ports < <("$PY" "$LIB" freeports $((2 * nodes)))
  NODE_PID=(); NODE_PORT=(); NODE_LOG=()
  for i in $(seq "$nodes"); do
    local dir=$TMP/$tag/b$i
    mkdir -p "$dir"
    cat >"$TMP/$tag/b$i.ini" <<EOF
[node]
name = b$i
client_port = ${ports[$((2 * i - 2))]}
peer_port = ${ports[$((2 * i - 1))]}
data_dir = $dir
log_level = warn
[cluster]
seeds = 127.0.0.1:${ports[1]}
n = $nodes
r = $r
w = $w
EOF
    "$QKV_BIN" -c "$TMP/$tag/b$i.ini" >"$TMP/$tag/b$i.log" 2>&1 &
    NODE_PID+=($!); PIDS+=($!); NODE_PORT+=("${ports[$((2 * i - 2))]}"); NODE_LOG+=("$TMP/$tag/b$i.log")
  done
  for i in $(seq 0 $((nodes - 1))); do wait_port "${NODE_PID[$i]}" "${NODE_PORT[$i]}" "${NODE_LOG[$i]}" 30; done
  "$PY" "$CLIB" wait_members "$nodes" 60 "${NODE_PORT[@]}" >/dev/null || die "$tag never converged"
}

stop_nodes() {
  local i
  for i in "${!NODE_PID[@]}"; do stop_server "${NODE_PID[$i]}" "node b$((i + 1))" "${NODE_LOG[$i]}"; done
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$TMP"/*/b[0-9]*/
}

# run_load OUT SERVERS CONNS -> OUT.json (benchlib qkvbench summary)
run_load() {
  local out=$1 rc=0
  LAST_CMD="$QKV_BENCH --protocol memcached -s $2 -t $3 -d $SECS --warmup 1 -k $PRELOAD --key-prefix pre: -W 0.1 -v 100 --no-progress --no-stale-check --json $out.raw.json"
  timeout -k 5 $((SECS + 60)) $LAST_CMD >"$out.txt" 2>&1 || rc=$?
  "$PY" "$LIB" qkvbench "$out.raw.json" >"$out.json" 2>/dev/null || echo '{"ok": false}' >"$out.json"
  if [ $rc -ne 0 ] || ! grep -q '"ok": true' "$out.json"; then
    PROBLEMS+=("$(basename "$out"): exit $rc; $(tr -d '\r' <"$out.txt" | grep -m1 'errors' | cut -c1-160)")
  fi
}

RESULTS=$TMP/results.txt
: >"$RESULTS"
for s in $SETTINGS; do
  nodes=${s%%:*} rw=${s#*:}; R=${rw%,*} W=${rw#*,}
  if [ "$nodes" = 1 ]; then label="1 node"; else label="3 nodes R=$R W=$W"; fi
  tag="s${nodes}r${R}w${W}"
  echo; echo "== $label: fresh"
  start_nodes "$nodes" "$R" "$W" "$tag"
  res=$("$PY" "$LIB" load "${NODE_PORT[0]}" "$PRELOAD" pre: 4) || die "preload into $label failed"
  echo "preload via b1: $res"
  # a W=1 bulk load leaves the replicas a backlog (and every node its
  # compactions): measure the cluster, not the load's tail
  echo "after the preload: $("$PY" "$CLIB" wait_quiet 120 "${NODE_PID[@]}")"
  SRV=$(printf '127.0.0.1:%s,' "${NODE_PORT[@]}"); SRV=${SRV%,}
  CMDS_NODE="$QKV_BIN -c \$TMP/$tag/b{1..$nodes}.ini   (b1: $(sed 's/$/;/' "$TMP/$tag/b1.ini" | tr '\n' ' ' | sed "s#$TMP#\$TMP#g"))"
  for c in $CONNS_LIST; do
    for run in $(seq "$RUNS"); do
      for target in mc qkv; do
        out=$TMP/$tag-c$c-$target-$run
        if [ $target = mc ]; then run_load "$out" "127.0.0.1:$MC_PORT" "$c"; else run_load "$out" "$SRV" "$c"; fi
        printf '%s\t%s\t%s\t%s\n' "$label" "$c" "$target" "$out.json" >>"$RESULTS"
        printf 'run %d/%d %-20s %2d conns %-9s %s\n' "$run" "$RUNS" "$label" "$c" "$target" \
          "$("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%s ops/s p50 %s us p99 %s us errors %s (busy %s)" % (r.get("tps"), r.get("total_p50_us"), r.get("total_p99_us"), r.get("error_count"), r.get("busy_count")))' "$out.json")"
      done
      for i in "${!NODE_PID[@]}"; do
        kill -0 "${NODE_PID[$i]}" 2>/dev/null || { died "${NODE_PID[$i]}" "b$((i + 1)) ($label)" "${NODE_LOG[$i]}"; die "a node died"; }
      done
    done
  done
  echo "$label: $CMDS_NODE" >>"$TMP/cmds.txt"
  stop_nodes
done
stop_server "$MC_PID" memcached "$MC_LOG"

TABLE=$("$PY" "$CLIB" grid "$RESULTS")
COST=""
if [ "${BENCH_COST:-1}" = 1 ]; then
  echo; echo "== CPU per request, one node (bench/cost-per-request.sh)"
  COST=$(BENCH_RUNS=1 bench/cost-per-request.sh 2>&1) || PROBLEMS+=("cost-per-request.sh failed")
  echo "$COST"
fi

echo
echo "================ summary (paste into README) ================"
echo "Table bench ($(date -u +%Y-%m-%d), quorumkv $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, Linux $(uname -r);"
echo "  load average $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after; clients, servers and memcached share the CPUs):"
echo
echo "$TABLE"
echo
echo "The floor under one replica round trip: $RTT"
echo "  (build/bench/loopback-rtt 20000: two processes over loopback TCP, the echo side in epoll)"
[ -n "$COST" ] && { echo; echo "CPU per request, one node, 16 connections (bench/cost-per-request.sh):"; echo "$COST" | sed 's/^/  /'; }
echo
echo "Commands (ports chosen at run time; total ${SECS}s x $RUNS runs; wall time $(( $(date +%s) - T_START ))s):"
echo "  bench/bench-table.sh   (BENCH_SECONDS=$SECS BENCH_RUNS=$RUNS BENCH_CONNS_LIST=\"$CONNS_LIST\" BENCH_PRELOAD=$PRELOAD)"
echo "  memcached: $MC_CMD"
echo "  preload:   $PY bench/benchlib.py load PORT $PRELOAD pre: 4   (quorumkvd: PORT = b1)"
sed 's/^/  /' "$TMP/cmds.txt"
echo "  load:      ${LAST_CMD//$TMP/\$TMP}   (-s: memcached's port, or b1[,b2,b3]; -t: 4 or 16)"
echo "=============================================================="
if [ ${#PROBLEMS[@]} -gt 0 ]; then
  echo "bench: WARNING: ${#PROBLEMS[@]} problem(s):" >&2
  for p in "${PROBLEMS[@]}"; do echo "  - $p" >&2; done
  exit 1
fi
