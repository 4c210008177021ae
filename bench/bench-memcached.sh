#!/usr/bin/env bash
# bench/bench-memcached.sh - quorumkvd (one node, n=r=w=1) against memcached.
#
#   make bench                      (builds bin/quorumkvd, then runs this)
#   bench/bench-memcached.sh        (from the repository root or anywhere)
#
# 1. Throughput/latency: one memcached and one quorumkvd on free 127.0.0.1
#    ports, each preloaded with BENCH_PRELOAD keys, then driven by the same
#    load tool (ASCII protocol, 90% get / 10% set over the preloaded keys,
#    100-byte values, BENCH_CONNS connections), BENCH_RUNS runs each,
#    alternating memcached, ours, memcached, ours, ...; medians and the ratio.
#
#    The tool is bin/quorumkv-bench --protocol memcached (the project's one
#    load tool; the same binary drives the cluster through libquorumkv), not
#    Debian's memcaslap: memcaslap's keys carry raw control bytes (0x10, 0x15...),
#    which memcached tolerates but quorumkvd rejects, as protocol.txt allows
#    ("CLIENT_ERROR bad command line format"), and memcaslap does not check
#    replies, so it "measures" a stream of rejected sets and no gets at all.
#    memcslap has no get/set mix.  BENCH_TOOL=memaslap still runs memcaslap
#    (runs whose output shows no gets are marked FAILED).
# 2. Memory: BENCH_MEM_KEYS keys of 100 bytes loaded into a FRESH quorumkvd
#    (pipelined `set ... noreply`, then a `get` round trip per connection),
#    a sample read back, then VmRSS and the size of data_dir (memcached, same
#    load, as a reference).
#
# Environment (defaults in brackets):
#   BENCH_SECONDS [10]  seconds per run        BENCH_RUNS [3]  runs per target
#   BENCH_CONNS [16]    client connections     BENCH_THREADS [2] client threads (memaslap only)
#   BENCH_PRELOAD [100000] keys preloaded before the runs
#   BENCH_MEM_KEYS [1000000] keys for the memory test (0 skips it)
#   BENCH_LOAD_CONNS [4] connections of the bulk loader
#   BENCH_TOOL [qkvbench] bin/quorumkv-bench: one thread per connection,
#                closed loop, one request in flight each, every reply
#                checked, percentiles from an HDR-style histogram (< 1%
#                error); or "memaslap" (memcaslap, see above)
#   BENCH_OURS [quorumkvd] or "memcached": a second memcached in our slot, to
#                check the harness itself
#   QKV_BIN [bin/quorumkvd]   BENCH_KEEP=1 keeps the temp dir (logs, tool
#                outputs); it is also kept when the bench fails (BENCH_KEEP=0: never)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNS:-16}
THREADS=${BENCH_THREADS:-2}
PRELOAD=${BENCH_PRELOAD:-100000}
MEM_KEYS=${BENCH_MEM_KEYS:-1000000}
LOAD_CONNS=${BENCH_LOAD_CONNS:-4}
TOOL=${BENCH_TOOL:-qkvbench}
QKV_BENCH=${QKV_BENCH:-$ROOT/bin/quorumkv-bench}
[ "$TOOL" = qkvbench ] && THREADS=$CONNS   # one thread per connection
OURS=${BENCH_OURS:-quorumkvd}
QKV_BIN=${QKV_BIN:-$ROOT/bin/quorumkvd}
MEMCACHED=${MEMCACHED:-/usr/bin/memcached}
MEMASLAP=${MEMASLAP:-/usr/bin/memcaslap}
PY=/usr/bin/python3
LIB=$ROOT/bench/benchlib.py
VALUE_SIZE=100
KEY_SIZE=32          # memaslap key length (16..250)
SET_RATIO=0.1

. "$(dirname "$0")/lib.sh"

[ -x "$MEMCACHED" ] || die "$MEMCACHED missing (apt-get install memcached)"
[ -x "$PY" ] || die "$PY missing"
case "$TOOL" in
  memaslap) [ -x "$MEMASLAP" ] || die "$MEMASLAP missing (apt-get install libmemcached-tools)" ;;
  qkvbench) [ -x "$QKV_BENCH" ] || die "$QKV_BENCH missing: run 'make' first" ;;
  *) die "BENCH_TOOL must be memaslap or qkvbench" ;;
esac
case "$OURS" in
  quorumkvd) [ -x "$QKV_BIN" ] || die "$QKV_BIN missing: run 'make' first (or BENCH_OURS=memcached)" ;;
  memcached) ;;
  *) die "BENCH_OURS must be quorumkvd or memcached" ;;
esac
if [ "$TOOL" = memaslap ] && [ $((CONNS % THREADS)) -ne 0 ]; then
  die "memaslap wants BENCH_CONNS ($CONNS) to be a multiple of BENCH_THREADS ($THREADS)"
fi

bench_init qkv-bench
CMDS=()   # every command line that produced a number, for the summary

# ------------------------------------------------------------------ servers

wait_ready() { # pid port log deadline_s
  local deadline=$(( $(date +%s) + $4 ))
  wait_port "$@"
  # accepting is not enough for a store that must join its ring: one
  # set+get round trip must succeed, with what is left of the deadline
  local left=$(( deadline - $(date +%s) )); [ $left -ge 2 ] || left=2
  "$PY" "$LIB" probe "$2" "$left" >/dev/null || { show_log "$3"; die "port $2 never served set+get"; }
}

rss_kb() { awk -v k="${2:-VmRSS:}" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# start_memcached NAME -> sets SRV_PID SRV_PORT SRV_LOG SRV_CMD
start_memcached() {
  local name=$1 port
  port=$("$PY" "$LIB" freeports 1)
  SRV_LOG=$TMP/$name.log
  SRV_CMD="$MEMCACHED ${MC_USER[*]} -p $port -U 0 -l 127.0.0.1 -m 1024 -t 4 -c 4096"
  $SRV_CMD >"$SRV_LOG" 2>&1 &
  SRV_PID=$!; PIDS+=("$SRV_PID"); SRV_PORT=$port
  wait_ready "$SRV_PID" "$SRV_PORT" "$SRV_LOG" 10
}

# start_qkv NAME -> sets SRV_PID SRV_PORT SRV_LOG SRV_CMD SRV_DATA
start_qkv() {
  local name=$1 dir=$TMP/$1 ports cport pport
  mkdir -p "$dir/data"
  read -r cport pport < <("$PY" "$LIB" freeports 2)
  cat >"$dir/node.ini" <<EOF
[node]
name = bench1
host = 127.0.0.1
client_port = $cport
peer_port = $pport
data_dir = $dir/data
log_level = warn
[cluster]
seeds = 127.0.0.1:$pport
n = 1
r = 1
w = 1
EOF
  SRV_LOG=$dir/quorumkvd.log
  SRV_CMD="$QKV_BIN -c $dir/node.ini"
  $SRV_CMD >"$SRV_LOG" 2>&1 &
  SRV_PID=$!; PIDS+=("$SRV_PID"); SRV_PORT=$cport; SRV_DATA=$dir/data
  wait_ready "$SRV_PID" "$SRV_PORT" "$SRV_LOG" 30
}

start_target() { # slot(memcached|ours) name
  if [ "$1" = ours ] && [ "$OURS" = quorumkvd ]; then start_qkv "$2"; else start_memcached "$2"; fi
}


# ------------------------------------------------------------------ load tool

if [ "$TOOL" = memaslap ]; then
  MS_CFG=$TMP/memaslap.cnf
  cat >"$MS_CFG" <<EOF
key
$KEY_SIZE $KEY_SIZE 1
value
$VALUE_SIZE $VALUE_SIZE 1
cmd
0 $SET_RATIO
1 0.9
EOF
  TOOL_DESC="memcaslap ($(dpkg-query -W -f='libmemcached-tools ${Version}' libmemcached-tools 2>/dev/null || echo libmemcached-tools)), ASCII protocol, $KEY_SIZE-byte keys"
  LAT_NOTE="p50/p99 interpolated inside memaslap's log2 latency buckets (resolution 2x)"
else
  TOOL_DESC="bin/quorumkv-bench --protocol memcached (a thread per connection, closed loop), 12-byte keys over the $PRELOAD preloaded keys"
  LAT_NOTE="percentiles from an HDR-style histogram (under 1% error)"
fi

run_tool() { # port outfile -> exit status of the tool
  local port=$1 out=$2 cmd
  if [ "$TOOL" = memaslap ]; then
    cmd="$MEMASLAP -s 127.0.0.1:$port -F $MS_CFG -T $THREADS -c $CONNS -t ${SECS}s -S ${SECS}s"
  else
    cmd="$QKV_BENCH --protocol memcached -s 127.0.0.1:$port -t $CONNS -d $SECS --warmup 1 -k $PRELOAD --key-prefix pre: -W $SET_RATIO -v $VALUE_SIZE --no-progress --no-stale-check --json $out.json"
  fi
  LAST_TOOL_CMD=$cmd
  timeout -k 5 $((SECS + 30)) $cmd >"$out" 2>&1
}

# ------------------------------------------------------------------ header

CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
QKV_REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
OURS_LABEL=$([ "$OURS" = quorumkvd ] && echo quorumkvd || echo "memcached#2 (harness check)")
echo "== quorumkv bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs ${CPU_MODEL:+($CPU_MODEL)}, Linux $(uname -r)"
echo "   load average before start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   tool: $TOOL_DESC; ${SECS}s x $RUNS runs per target, $CONNS conns / $THREADS client threads,"
echo "   $(awk "BEGIN{print 100-100*$SET_RATIO}")% get / $(awk "BEGIN{print 100*$SET_RATIO}")% set, $VALUE_SIZE-byte values; temp dir $TMP"
[ "$OURS" = quorumkvd ] || echo "   NOTE: BENCH_OURS=$OURS - the 'ours' slot is a second memcached, NOT quorumkvd"

# ------------------------------------------------------------------ phase 1

echo
echo "== phase 1: throughput and latency"
start_target memcached mc;  MC_PID=$SRV_PID;  MC_PORT=$SRV_PORT;  MC_LOG=$SRV_LOG;  CMDS+=("memcached:  $SRV_CMD")
start_target ours ours;     OUR_PID=$SRV_PID; OUR_PORT=$SRV_PORT; OUR_LOG=$SRV_LOG; CMDS+=("ours:       $SRV_CMD")
[ "$OURS" = quorumkvd ] && CMDS+=("ours INI:   $(sed 's/$/;/' "$TMP/ours/node.ini" | tr '\n' ' ')")
echo "memcached pid $MC_PID port $MC_PORT; $OURS_LABEL pid $OUR_PID port $OUR_PORT"

for slot in memcached ours; do
  if [ $slot = memcached ]; then pid=$MC_PID; port=$MC_PORT; log=$MC_LOG; label=memcached
  else pid=$OUR_PID; port=$OUR_PORT; log=$OUR_LOG; label=$OURS_LABEL; fi
  if ! res=$("$PY" "$LIB" load "$port" "$PRELOAD" pre: "$LOAD_CONNS"); then
    kill -0 "$pid" 2>/dev/null || died "$pid" "$label" "$log"
    die "preload of $PRELOAD keys into $label failed"
  fi
  echo "preload $label: $res"
  case "$res" in *'"error_lines": 0,'*'"final_get_ok": true'*) ;;
    *) echo "!! preload into $label: server sent errors or the final get failed" >&2 ;; esac
done
CMDS+=("preload:    $PY bench/benchlib.py load PORT $PRELOAD pre: $LOAD_CONNS")

RUN_FILES=()
OURS_DEAD=0
FAILED_RUNS=0
for i in $(seq "$RUNS"); do
  for slot in memcached ours; do
    if [ $slot = memcached ]; then pid=$MC_PID; port=$MC_PORT; log=$MC_LOG; label=memcached
    else pid=$OUR_PID; port=$OUR_PORT; log=$OUR_LOG; label=$OURS_LABEL; fi
    out=$TMP/run-$slot-$i.txt json=$TMP/run-$slot-$i.json
    RUN_FILES+=("$slot:$i:$json")
    if [ $slot = ours ] && [ $OURS_DEAD = 1 ]; then
      echo '{"ok": false}' >"$json"; FAILED_RUNS=$((FAILED_RUNS + 1)); continue
    fi
    c0=$(cpu_ticks "$pid")
    rc=0; run_tool "$port" "$out" || rc=$?
    c1=$(cpu_ticks "$pid")
    if [ "$TOOL" = qkvbench ]; then "$PY" "$LIB" qkvbench "$out.json" >"$json"; else "$PY" "$LIB" "$TOOL" "$out" >"$json"; fi
    cpu=$(awk "BEGIN { printf \"%.0f\", 100 * ($c1 - $c0) / $HZ / $SECS }")
    line=$("$PY" - "$json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
f = lambda k: "-" if r.get(k) is None else "{:,}".format(r[k])
print("%s ops/s  p50 %s us  p99 %s us  avg %s us  get_misses %s" % (
    f("tps"), f("total_p50_us"), f("total_p99_us"), f("total_avg_us"),
    f("get_misses") if "get_misses" in r else f("misses")))
EOF
)
    printf 'run %d/%d %-28s %s  server CPU %s%%\n' "$i" "$RUNS" "$label:" "$line" "$cpu"
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "!! during run $i:" >&2
      died "$pid" "$label" "$log"; [ $slot = ours ] && OURS_DEAD=1
      [ $slot = memcached ] && die "memcached died"
    fi
    if [ $rc -ne 0 ] || ! grep -q '"ok": true' "$json"; then
      echo "!! run $i on $label: tool exit status $rc; its output (tail):" >&2
      tail -n 15 "$out" | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' >&2
      FAILED_RUNS=$((FAILED_RUNS + 1))
      if [ $slot = ours ] && [ "$TOOL" = memaslap ] && kill -0 "$pid" 2>/dev/null; then
        echo "   hint: memaslap keys contain control bytes (0x10, 0x15...) that quorumkvd rejects with CLIENT_ERROR; BENCH_TOOL=qkvbench uses plain ASCII keys" >&2
      fi
    fi
  done
done
LAST_TOOL_CMD=${LAST_TOOL_CMD//$OUR_PORT/PORT}
CMDS+=("load tool:  ${LAST_TOOL_CMD//$MC_PORT/PORT}")
[ "$TOOL" = memaslap ] && CMDS+=("memaslap -F: $(grep -v '^$' "$MS_CFG" | tr '\n' ' ')")

echo
SUMMARY_TP=$("$PY" "$LIB" summary "[[\"memcached\",\"memcached\"],[\"ours\",\"$OURS_LABEL\"]]" "${RUN_FILES[@]}") || true
echo "$SUMMARY_TP"
if [ -s "$OUR_LOG" ]; then
  echo "note: $OURS_LABEL wrote $(wc -l <"$OUR_LOG") log lines during phase 1 (first 5):"
  head -n 5 "$OUR_LOG" | sed 's/^/    /'
fi
stop_server "$MC_PID" memcached "$MC_LOG"
kill -0 "$OUR_PID" 2>/dev/null && stop_server "$OUR_PID" "$OURS_LABEL" "$OUR_LOG"

# ------------------------------------------------------------------ phase 2

SUMMARY_MEM=""
if [ "$MEM_KEYS" -gt 0 ]; then
  echo
  echo "== phase 2: memory with $MEM_KEYS keys x $VALUE_SIZE bytes (fresh servers)"
  for slot in ours memcached; do
    start_target $slot "mem-$slot"
    pid=$SRV_PID; port=$SRV_PORT
    label=$([ $slot = memcached ] && echo memcached || echo "$OURS_LABEL")
    rss0=$(rss_kb "$pid")
    if ! res=$("$PY" "$LIB" load "$port" "$MEM_KEYS" key: "$LOAD_CONNS"); then
      if kill -0 "$pid" 2>/dev/null; then show_log "$SRV_LOG"; else died "$pid" "$label" "$SRV_LOG"; fi
      die "bulk load of $MEM_KEYS keys into $label failed"
    fi
    echo "load $label: $res"
    if ! ver=$("$PY" "$LIB" verify "$port" "$MEM_KEYS" key: 1000); then
      if kill -0 "$pid" 2>/dev/null; then show_log "$SRV_LOG"; else died "$pid" "$label" "$SRV_LOG"; fi
      die "read-back from $label failed"
    fi
    echo "read-back $label: $ver"
    kill -0 "$pid" 2>/dev/null || { died "$pid" "$label" "$SRV_LOG"; die "$label died after the load"; }
    rss=$(rss_kb "$pid"); hwm=$(rss_kb "$pid" VmHWM:)
    mb() { awk "BEGIN { printf \"%.1f\", $1 / 1024 }"; }
    line="$label: VmRSS $(mb "$rss") MB (idle before load $(mb "$rss0") MB, peak VmHWM $(mb "$hwm") MB)"
    rate=$(echo "$res" | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print("{:,} sets/s".format(r["sets_per_s"]))')
    ok=$(echo "$ver" | "$PY" -c 'import json,sys; r=json.load(sys.stdin); print("%d/%d" % (r["ok"], r["checked"]))')
    if [ $slot = ours ] && [ "$OURS" = quorumkvd ]; then
      sync
      disk=$(du -sk "$SRV_DATA" | awk '{print $1}')
      files=$(find "$SRV_DATA" -type f | wc -l)
      line="$line, data_dir $(mb "$disk") MB on disk ($files files)"
    fi
    line="$line; load $rate pipelined; sample read back ok $ok"
    echo "$line"
    SUMMARY_MEM+="$line"$'\n'
    stop_server "$pid" "$label" "$SRV_LOG"
  done
  CMDS+=("mem load:   $PY bench/benchlib.py load PORT $MEM_KEYS key: $LOAD_CONNS   (then: verify PORT $MEM_KEYS key: 1000)")
fi

# ------------------------------------------------------------------ summary

echo
echo "================ summary (paste into README) ================"
echo "Benchmark ($(date -u +%Y-%m-%d), quorumkv $QKV_REV, $(nproc) CPUs${CPU_MODEL:+ $CPU_MODEL}, Linux $(uname -r); clients and servers share the machine):"
echo "  $TOOL_DESC, $(awk "BEGIN{print 100-100*$SET_RATIO}")/$(awk "BEGIN{print 100*$SET_RATIO}") get/set, $VALUE_SIZE-byte values,"
echo "  $CONNS connections, $THREADS client threads, $RUNS x ${SECS}s runs per target alternating, medians shown;"
echo "  memcached $($MEMCACHED -V | awk '{print $2}') with -t 4 -m 1024; quorumkvd one node, n=r=w=1 (LevelDB); $LAT_NOTE."
echo
echo "$SUMMARY_TP" | sed 's/^/  /'
if [ -n "$SUMMARY_MEM" ]; then
  echo
  echo "  Memory after $MEM_KEYS keys x $VALUE_SIZE B (fresh server each):"
  printf '%s' "$SUMMARY_MEM" | sed 's/^/    /'
fi
echo
echo "Commands (ports chosen at run time):"
echo "  bench/bench-memcached.sh   (BENCH_SECONDS=$SECS BENCH_RUNS=$RUNS BENCH_CONNS=$CONNS BENCH_THREADS=$THREADS BENCH_TOOL=$TOOL BENCH_OURS=$OURS)"
for c in "${CMDS[@]}"; do echo "  ${c//$TMP/\$TMP}"; done
echo "=============================================================="
if [ ${#PROBLEMS[@]} -gt 0 ]; then
  echo "bench: WARNING: ${PROBLEMS[*]}" >&2
fi
if [ "$FAILED_RUNS" -gt 0 ]; then
  echo "bench: WARNING: $FAILED_RUNS run(s) failed (see the '!!' lines above); medians use the successful runs only" >&2
  exit 1
fi
