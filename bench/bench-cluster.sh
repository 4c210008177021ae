#!/usr/bin/env bash
# bench/bench-cluster.sh - a 3-node quorumkvd cluster (n=3) against memcached,
# through plain text-protocol clients and through libquorumkv.
#
#   bench/bench-cluster.sh          (from the repository root or anywhere;
#                                    needs bin/quorumkvd and bin/quorumkv-bench:
#                                    run 'make' first)
#
# One memcached and, for each (R,W) in BENCH_RW (default "1,1 2,2 3,3"), a
# FRESH 3-node cluster on 127.0.0.1 (free ports, temp data dirs, R and W set
# as the cluster.r / cluster.w defaults in every node's INI, so the text
# clients send exactly what they send memcached).  Each node is waited for
# until its `members` lists all three nodes `up`.  Both targets get the same
# BENCH_PRELOAD keys (bench/benchlib.py load, through node b1 for the
# cluster; a sample is then read back through b2 and b3).  Every run is one
# bin/quorumkv-bench process with BENCH_CONNS closed-loop clients (one
# request in flight each), 90% get / 10% set over the preloaded keys,
# 100-byte values:
#
#   memcached      --protocol memcached, every client on memcached's port
#   cluster text   --protocol memcached -s b1,b2,b3: client i on node i mod 3,
#                  as plain memcached clients spread over the nodes
#   cluster lib    --protocol qkv -s b1: libquorumkv, token-aware (each
#                  request straight to the first live replica of its key)
#
# and, beside the uniform mix, a hot-key run on the cluster through each
# client path: every request a write to one of BENCH_HOT_KEYS keys, half
# incr and half set (--hot-keys --incr-ratio 0.5 -W 1), which shows the cost
# of running the read-modify-writes of one key one at a time at its owner.
# Runs alternate targets (BENCH_RUNS of each per setting); medians, ratio to
# the memcached runs of the same setting.  Any error reply (e.g. SERVER_ERROR
# from a failed quorum) fails the run and is reported, except SERVER_ERROR
# busy (admission control, docs/overload.md), which is counted and reported.
# After each bulk load the bench waits until the nodes are quiet (the
# replicas' backlog of a W=1 load, compactions).
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10]  seconds per run       BENCH_RUNS [3]  runs per target and setting
#   BENCH_CONNS [16]    client connections (threads) per run
#   BENCH_PRELOAD [100000] keys preloaded     BENCH_LOAD_CONNS [4] connections of the loader
#   BENCH_RW ["1,1 2,2 3,3"] the (R,W) settings, one fresh cluster each
#   BENCH_HOT_KEYS [10] hot keys (0 skips the hot-key runs)
#   QKV_BIN [bin/quorumkvd]  QKV_BENCH [bin/quorumkv-bench]  MEMCACHED [/usr/bin/memcached]
#   BENCH_KEEP=1 keeps the temp dir (logs, tool outputs); it is also kept
#   when the bench fails (BENCH_KEEP=0: never)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNS:-16}
HOT_KEYS=${BENCH_HOT_KEYS:-10}
PRELOAD=${BENCH_PRELOAD:-100000}
LOAD_CONNS=${BENCH_LOAD_CONNS:-4}
RW_LIST=${BENCH_RW:-"1,1 2,2 3,3"}
QKV_BIN=${QKV_BIN:-$ROOT/bin/quorumkvd}
QKV_BENCH=${QKV_BENCH:-$ROOT/bin/quorumkv-bench}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
PY=/usr/bin/python3
LIB=$ROOT/bench/benchlib.py
CLIB=$ROOT/bench/clusterlib.py
NODES=3
VALUE_SIZE=100
SET_RATIO=0.1
T_START=$(date +%s)

. "$(dirname "$0")/lib.sh"

[ -x "$MEMCACHED" ] || die "$MEMCACHED missing (apt-get install memcached)"
[ -x "$PY" ] || die "$PY missing"
[ -x "$QKV_BIN" ] || die "$QKV_BIN missing: run 'make' first"
[ -x "$QKV_BENCH" ] || die "$QKV_BENCH missing: run 'make' first"
[ "$CONNS" -ge $NODES ] || die "BENCH_CONNS must be at least $NODES"
for rw in $RW_LIST; do
  case "$rw" in [1-3],[1-3]) ;; *) die "BENCH_RW: bad setting '$rw' (want R,W with 1 <= R,W <= 3)" ;; esac
done

bench_init qkv-bench-cluster
CMDS=()
NOTES=()      # expected oddities, printed in the summary

# ------------------------------------------------------------------ memcached

start_memcached() {
  MC_PORT=$("$PY" "$LIB" freeports 1)
  MC_LOG=$TMP/memcached.log
  MC_CMD="$MEMCACHED ${MC_USER[*]} -p $MC_PORT -U 0 -l 127.0.0.1 -m 1024 -t 4 -c 4096"
  $MC_CMD >"$MC_LOG" 2>&1 &
  MC_PID=$!; PIDS+=("$MC_PID")
  wait_port "$MC_PID" "$MC_PORT" "$MC_LOG" 10
  "$PY" "$LIB" probe "$MC_PORT" 5 >/dev/null || { show_log "$MC_LOG"; die "memcached never served set+get"; }
}

# ------------------------------------------------------------------ cluster

# start_cluster R W TAG -> NODE_PID[] NODE_PORT[] NODE_LOG[] NODE_DIR
start_cluster() {
  local r=$1 w=$2 tag=$3 i ports
  NODE_DIR=$TMP/cluster-$tag
  read -r -a ports < <("$PY" "$LIB" freeports $((2 * NODES)))
  NODE_PID=(); NODE_PORT=(); NODE_LOG=()
  local seed_peer=${ports[1]}
  for i in $(seq $NODES); do
    local cport=${ports[$((2 * i - 2))]} pport=${ports[$((2 * i - 1))]} dir=$NODE_DIR/b$i
    mkdir -p "$dir"
    cat >"$NODE_DIR/b$i.ini" <<EOF
[node]
name = b$i
host = 127.0.0.1
client_port = $cport
peer_port = $pport
data_dir = $dir
log_level = warn
[cluster]
seeds = 127.0.0.1:$seed_peer
n = 3
r = $r
w = $w
EOF
    "$QKV_BIN" -c "$NODE_DIR/b$i.ini" >"$NODE_DIR/b$i.log" 2>&1 &
    NODE_PID+=($!); PIDS+=($!); NODE_PORT+=("$cport"); NODE_LOG+=("$NODE_DIR/b$i.log")
  done
  for i in $(seq 0 $((NODES - 1))); do
    wait_port "${NODE_PID[$i]}" "${NODE_PORT[$i]}" "${NODE_LOG[$i]}" 30
  done
  local t0=$(date +%s.%N) out
  if ! out=$("$PY" "$CLIB" wait_members $NODES 60 "${NODE_PORT[@]}"); then
    for i in $(seq 0 $((NODES - 1))); do
      kill -0 "${NODE_PID[$i]}" 2>/dev/null || died "${NODE_PID[$i]}" "b$((i + 1))" "${NODE_LOG[$i]}"
      show_log "${NODE_LOG[$i]}" 10
    done
    die "cluster R=$r W=$w never converged"
  fi
  local id; id=$(bin_id)
  [ "$id" = "$BIN_ID" ] || PROBLEMS+=("$QKV_BIN changed during the bench: cluster R=$r W=$w ran $id, the first one $BIN_ID")
  echo "cluster R=$r W=$w: $QKV_BIN ($id)"
  echo "cluster R=$r W=$w: nodes b1..b$NODES pids ${NODE_PID[*]} client ports ${NODE_PORT[*]};" \
       "all $NODES up on every node after $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}")s"
  echo "$out" | head -n 1 | sed 's/^/    members via /'
}

check_cluster() { # label: report nodes that died; returns 1 if any did
  local i bad=0
  for i in $(seq 0 $((NODES - 1))); do
    [ -n "${NODE_PID[$i]}" ] || continue
    if ! kill -0 "${NODE_PID[$i]}" 2>/dev/null; then
      echo "!! $1:" >&2
      died "${NODE_PID[$i]}" "node b$((i + 1)) ($CUR_LABEL)" "${NODE_LOG[$i]}"
      NODE_PID[$i]=""
      bad=1
    fi
  done
  return $bad
}

stop_cluster() {
  local i
  for i in $(seq 0 $((NODES - 1))); do
    [ -n "${NODE_PID[$i]}" ] && kill "${NODE_PID[$i]}" 2>/dev/null || true
  done
  for i in $(seq 0 $((NODES - 1))); do
    [ -n "${NODE_PID[$i]}" ] && stop_server "${NODE_PID[$i]}" "node b$((i + 1)) ($CUR_LABEL)" "${NODE_LOG[$i]}"
  done
  local i n
  for i in $(seq 0 $((NODES - 1))); do
    n=$(wc -l <"${NODE_LOG[$i]}")
    if [ "$n" -gt 0 ]; then
      echo "note: node b$((i + 1)) ($CUR_LABEL) logged $n line(s) at log_level=warn; first 3 and last 2:"
      { head -n 3 "${NODE_LOG[$i]}"; [ "$n" -gt 5 ] && echo "..." && tail -n 2 "${NODE_LOG[$i]}"; } | cut -c1-200 | sed 's/^/    /'
    fi
  done
  [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$NODE_DIR"/b[0-9]*/
}

# ------------------------------------------------------------------ load tool

# run_load OUT SERVERS PROTOCOL [extra args] -> OUT.txt (tool output), OUT.json
run_load() {
  local out=$1 servers=$2 proto=$3 rc=0; shift 3
  local cmd="$QKV_BENCH --protocol $proto -s $servers -t $CONNS -d $SECS --warmup 1 -k $PRELOAD --key-prefix pre: -W $SET_RATIO -v $VALUE_SIZE --no-progress --no-stale-check --json $out.raw.json $*"
  LAST_LOAD_CMD=$cmd
  timeout -k 5 $((SECS + 60)) $cmd >"$out.txt" 2>&1 || rc=$?
  "$PY" "$LIB" qkvbench "$out.raw.json" >"$out.json"
  return $rc
}

run_line() { # json -> one human line
  "$PY" - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda k: "-" if r.get(k) is None else "{:,}".format(r[k])
print("%s ops/s  p50 %s us  p99 %s us  avg %s us  misses %s errors %s (busy %s)" % (
    f("tps"), f("total_p50_us"), f("total_p99_us"), f("total_avg_us"), f("misses"), f("error_count"),
    f("busy_count")))
EOF
}

# ------------------------------------------------------------------ header

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
QKV_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
bin_id() { echo "sha256 $(sha256sum "$QKV_BIN" | cut -c1-12), built $(date -u -r "$QKV_BIN" '+%H:%M:%S UTC')"; }
BIN_ID=$(bin_id)   # the binary may be rebuilt while we run: each cluster logs its own
MC_VER=$($MEMCACHED -V | awk '{print $2}')
echo "== quorumkv cluster bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ${CPU_MODEL:+($CPU_MODEL)}, Linux $(uname -r)"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "   load average before start: $LOAD_BEFORE"
echo "   bin/quorumkv-bench, $CONNS connections per run, ${SECS}s x $RUNS runs"
echo "   per target and setting, settings (R,W): $RW_LIST; temp dir $TMP"

# ------------------------------------------------------------------ memcached

start_memcached
CMDS+=("memcached: $MC_CMD")
res=$("$PY" "$LIB" load "$MC_PORT" "$PRELOAD" pre: "$LOAD_CONNS") || die "preload into memcached failed"
echo "memcached $MC_VER pid $MC_PID port $MC_PORT; preload: $res"
case "$res" in *'"error_lines": 0,'*'"final_get_ok": true'*) ;;
  *) PROBLEMS+=("preload into memcached: errors or final get failed: $res") ;; esac
CMDS+=("preload:   $PY bench/benchlib.py load PORT $PRELOAD pre: $LOAD_CONNS   (cluster: PORT = b1; then verify PORT_b2/PORT_b3 $PRELOAD pre: 500)")

# ------------------------------------------------------------------ settings

SETTINGS_JSON=$TMP/settings.json
echo '{"settings": [' >"$SETTINGS_JSON"
FAILED_RUNS=0
TOTAL_ERRORS=0
ERR_SUMMARY=()
first_setting=1
for rw in $RW_LIST; do
  R=${rw%,*} W=${rw#*,}
  CUR_LABEL="R=$R W=$W"
  tag="r${R}w${W}"
  echo
  echo "== setting $CUR_LABEL (n=3): fresh cluster"
  start_cluster "$R" "$W" "$tag"
  if ! res=$("$PY" "$LIB" load "${NODE_PORT[0]}" "$PRELOAD" pre: "$LOAD_CONNS"); then
    check_cluster "preload" || true
    die "preload of $PRELOAD keys into the cluster ($CUR_LABEL) failed"
  fi
  echo "preload via b1: $res"
  case "$res" in *'"error_lines": 0,'*'"final_get_ok": true'*) ;;
    *) PROBLEMS+=("$CUR_LABEL preload: errors or final get failed: $res") ;; esac
  # a W=1 bulk load leaves the replicas a backlog (and every node its
  # compactions): measure the cluster, not the load's tail
  echo "after the preload: $("$PY" "$CLIB" wait_quiet 120 "${NODE_PID[@]}")"
  # With R+W <= N a read right after a W=1 (noreply) load may reach a replica
  # the write has not reached yet: misses are then expected for a moment, so
  # the read-back is repeated (up to 5 s) and only lasting misses are problems.
  for i in 1 2; do
    for try in $(seq 6); do
      ver=$("$PY" "$LIB" verify "${NODE_PORT[$i]}" "$PRELOAD" pre: 500) || { check_cluster "verify" || true; die "read-back via b$((i + 1)) failed"; }
      echo "read-back via b$((i + 1)): $ver"
      case "$ver" in *'"miss": 0, "wrong": 0'*) break ;; esac
      if [ $((R + W)) -gt $NODES ] || [ "$try" = 6 ]; then
        PROBLEMS+=("$CUR_LABEL read-back via b$((i + 1)) (try $try): $ver"); break
      fi
      NOTES+=("$CUR_LABEL: read-back via b$((i + 1)) right after the preload: $(echo "$ver" | sed 's/.*"ok": \([0-9]*\), "miss": \([0-9]*\).*/\2 of 500 missed/') (R+W <= N, replication still in flight); retried after 1 s")
      sleep 1
    done
  done
  HAVE_VGET=$("$PY" -c 'import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),5); s.sendall(b"vget bench:probe\r\n")
b=b""
while not (b.endswith(b"END\r\n") or b == b"ERROR\r\n"): b+=s.recv(4096)
print(0 if b == b"ERROR\r\n" else 1)' "${NODE_PORT[0]}")
  SLOTS="mc text lib"
  [ "$HAVE_VGET" = 1 ] || { SLOTS="mc text"; NOTES+=("$CUR_LABEL: the servers answer ERROR to vget, so the library path (which reads with vget) ran only the write-only hot-key runs"); }
  [ "$HOT_KEYS" -gt 0 ] && SLOTS="$SLOTS hottext hotlib"
  declare -A FILES=()
  set_err=0 set_busy=0 set_misses=0
  ALL_NODES=$(printf '127.0.0.1:%s,' "${NODE_PORT[@]}"); ALL_NODES=${ALL_NODES%,}
  for run in $(seq "$RUNS"); do
    for slot in $SLOTS; do
      pre=$TMP/run-$tag-$slot-$run
      hot="--hot-keys $HOT_KEYS --incr-ratio 0.5 -W 1"
      case $slot in
        mc)      pids=("$MC_PID"); label=memcached; args=("127.0.0.1:$MC_PORT" memcached) ;;
        text)    pids=("${NODE_PID[@]}"); label="cluster text"; args=("$ALL_NODES" memcached) ;;
        lib)     pids=("${NODE_PID[@]}"); label="cluster lib"; args=("127.0.0.1:${NODE_PORT[0]}" qkv) ;;
        hottext) pids=("${NODE_PID[@]}"); label="hot text"; args=("$ALL_NODES" memcached $hot) ;;
        hotlib)  pids=("${NODE_PID[@]}"); label="hot lib"; args=("127.0.0.1:${NODE_PORT[0]}" qkv $hot) ;;
      esac
      FILES[$slot]+="$pre.json "
      c0=$(cpu_ticks "${pids[@]}")
      rc=0; run_load "$pre" "${args[@]}" || rc=$?
      c1=$(cpu_ticks "${pids[@]}")
      cpu=$(awk "BEGIN { printf \"%.0f\", 100 * ($c1 - $c0) / $HZ / $SECS }")
      printf 'run %d/%d %-13s %s  server CPU %s%%\n' "$run" "$RUNS" "$label:" "$(run_line "$pre.json")" "$cpu"
      read -r ok errs miss busy < <("$PY" -c 'import json,sys; r=json.load(open(sys.argv[1])); print(int(r.get("ok", False)), r.get("error_count", -1), r.get("misses", -1), r.get("busy_count", 0))' "$pre.json")
      if [ $slot != mc ]; then set_err=$((set_err + (errs > 0 ? errs : 0))); set_busy=$((set_busy + busy)); set_misses=$((set_misses + (miss > 0 ? miss : 0))); fi
      if [ "$rc" -ne 0 ] || [ "$ok" != 1 ]; then
        FAILED_RUNS=$((FAILED_RUNS + 1))
        echo "!! run $run on $label ($CUR_LABEL): quorumkv-bench exit status $rc, errors $errs" >&2
        tail -n 4 "$pre.txt" | sed 's/^/    /' >&2 || true
        PROBLEMS+=("$CUR_LABEL run $run on $label: exit $rc, $errs errors; $(tr -d '\r' <"$pre.txt" | grep -m1 'errors:' | cut -c1-160)")
      fi
      if [ $slot = mc ]; then
        kill -0 "$MC_PID" 2>/dev/null || { died "$MC_PID" memcached "$MC_LOG"; die "memcached died"; }
      elif ! check_cluster "during run $run"; then
        die "a cluster node died ($CUR_LABEL); see above"
      fi
    done
  done
  TOTAL_ERRORS=$((TOTAL_ERRORS + set_err))
  ERR_SUMMARY+=("$CUR_LABEL: $set_err error replies ($set_busy of them SERVER_ERROR busy, which do not fail a run), $set_misses get misses")
  [ $first_setting = 1 ] || echo ',' >>"$SETTINGS_JSON"
  first_setting=0
  for k in $SLOTS; do echo "$k ${FILES[$k]}"; done | "$PY" -c 'import json,sys
print(json.dumps({"label": sys.argv[1], "targets": [[l.split()[0], l.split()[1:]] for l in sys.stdin if l.strip()]}))' "$CUR_LABEL" >>"$SETTINGS_JSON"
  unset FILES
  CMDS+=("cluster $CUR_LABEL: $QKV_BIN -c \$TMP/cluster-$tag/b{1,2,3}.ini   (INI b1: $(sed 's/$/;/' "$NODE_DIR/b1.ini" | tr '\n' ' ' | sed "s#$TMP#\$TMP#g"))")
  stop_cluster
done
echo ']}' >>"$SETTINGS_JSON"
CMDS+=("load:      ${LAST_LOAD_CMD//$TMP/\$TMP}   (-s and --protocol per target: memcached's port / b1,b2,b3 memcached / b1 qkv; hot runs add --hot-keys $HOT_KEYS --incr-ratio 0.5 -W 1)")
stop_server "$MC_PID" memcached "$MC_LOG"

# ------------------------------------------------------------------ summary

echo
TABLE=$("$PY" "$CLIB" table "$SETTINGS_JSON") || true
echo "$TABLE"
ELAPSED=$(( $(date +%s) - T_START ))

echo
echo "================ summary (paste into README) ================"
echo "Cluster benchmark ($(date -u +%Y-%m-%d), quorumkv $QKV_REV (bin/quorumkvd $BIN_ID), $(nproc) CPUs${CPU_MODEL:+ $CPU_MODEL}, Linux $(uname -r);"
echo "  clients, 3 quorumkvd nodes and memcached share the machine over loopback):"
echo "  bin/quorumkv-bench, $(awk "BEGIN{print 100-100*$SET_RATIO}")/$(awk "BEGIN{print 100*$SET_RATIO}") get/set over $PRELOAD preloaded keys, $VALUE_SIZE-byte values,"
echo "  $CONNS closed-loop connections per run: text = memcached text protocol spread over the 3 nodes,"
echo "  lib = libquorumkv through b1 (token-aware); hot = every request a write to $HOT_KEYS keys, half incr"
echo "  half set; $RUNS x ${SECS}s runs per target and setting, alternating, medians shown."
echo "  quorumkvd: n=3, R/W = cluster defaults, a fresh cluster per setting, LevelDB, log_level=warn;"
echo "  memcached $MC_VER -t 4 -m 1024 (one instance for all settings). 'vs mc' = median ops/s ratio."
echo
echo "$TABLE" | sed 's/^/  /'
echo
echo "  load tool errors (SERVER_ERROR etc.) on the cluster: $TOTAL_ERRORS in total ($(IFS=';'; echo "${ERR_SUMMARY[*]}" | sed 's/;/; /g'))"
echo
echo "  load average: $LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after (other processes share the $(nproc) CPUs)"
for n in "${NOTES[@]}"; do echo "  note: $n"; done
echo
echo "Commands (ports chosen at run time; total wall time ${ELAPSED}s):"
echo "  bench/bench-cluster.sh   (BENCH_SECONDS=$SECS BENCH_RUNS=$RUNS BENCH_CONNS=$CONNS BENCH_PRELOAD=$PRELOAD BENCH_RW=\"$RW_LIST\" BENCH_HOT_KEYS=$HOT_KEYS)"
for c in "${CMDS[@]}"; do echo "  ${c//$TMP/\$TMP}"; done
echo "=============================================================="
if [ ${#PROBLEMS[@]} -gt 0 ]; then
  echo "bench: WARNING: ${#PROBLEMS[@]} problem(s):" >&2
  for p in "${PROBLEMS[@]}"; do echo "  - $p" >&2; done
fi
if [ "$FAILED_RUNS" -gt 0 ]; then
  echo "bench: WARNING: $FAILED_RUNS run(s) failed; medians use the successful runs only" >&2
  exit 1
fi
[ ${#PROBLEMS[@]} -eq 0 ]
