#!/usr/bin/env bash
# bench/stale-reads.sh - how often a read returns a value older than the
# newest write acknowledged before the read began, per (R, W), on a 3-node
# cluster (n=3) while one node is killed (-9) and restarted in a loop.
#
#   bench/stale-reads.sh          (after make: bin/quorumkvd, bin/quorumkv-bench)
#
# One fresh cluster; for each (R,W) in BENCH_STALE_RW (default "1,1 1,2 2,2")
# one bin/quorumkv-bench run of BENCH_STALE_SECONDS: BENCH_STALE_KEYS keys
# (preloaded), 30% writes, 16 clients.  Each write stores "<seq>:..." with a
# per-key sequence number and the tool writes each key from one client at a
# time, so "newest acknowledged" is exact; a read that returns a smaller
# seq, or nothing, is stale (bin/quorumkv-bench --help).  Clients go through
# libquorumkv (token-aware, seeded with all three nodes) when the servers
# have `vget`, else through the text protocol with r=/w= options, spread
# over the three nodes and failing over to the next one.  Meanwhile node b3
# is killed with SIGKILL, left down BENCH_STALE_DOWN seconds, restarted,
# left up BENCH_STALE_UP seconds, and so on.  With R + W > N a stale read
# needs a sloppy-quorum write (hinted to a substitute while b3 was down) or
# a read whose quorum was completed by the restarted node before repair;
# with R + W <= N they are expected all the time.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SECS=${BENCH_STALE_SECONDS:-20}
KEYS=${BENCH_STALE_KEYS:-2000}
RW_LIST=${BENCH_STALE_RW:-"1,1 1,2 2,2"}
DOWN=${BENCH_STALE_DOWN:-2}
UP=${BENCH_STALE_UP:-3}
QKV_BIN=${QKV_BIN:-$ROOT/bin/quorumkvd}
QKV_BENCH=${QKV_BENCH:-$ROOT/bin/quorumkv-bench}
PY=/usr/bin/python3
LIB=$ROOT/bench/benchlib.py
CLIB=$ROOT/bench/clusterlib.py
. bench/lib.sh
[ -x "$QKV_BIN" ] && [ -x "$QKV_BENCH" ] || die "run 'make' first ($QKV_BIN, $QKV_BENCH)"
bench_init qkv-stale

read -r -a PORTS < <("$PY" "$LIB" freeports 6)
NODE_PID=() NODE_PORT=()
start_node() { # i (1..3)
  local i=$1 cport=${PORTS[$((2 * $1 - 2))]} pport=${PORTS[$((2 * $1 - 1))]}
  mkdir -p "$TMP/b$i"
  cat >"$TMP/b$i.ini" <<EOF
[node]
name = b$i
host = 127.0.0.1
client_port = $cport
peer_port = $pport
data_dir = $TMP/b$i
log_level = warn
[cluster]
seeds = 127.0.0.1:${PORTS[1]}
n = 3
r = 2
w = 2
EOF
  "$QKV_BIN" -c "$TMP/b$i.ini" >>"$TMP/b$i.log" 2>&1 &
  NODE_PID[$i]=$!; PIDS+=($!); NODE_PORT[$i]=$cport
  wait_port "${NODE_PID[$i]}" "$cport" "$TMP/b$i.log" 30
}
for i in 1 2 3; do start_node $i; done
"$PY" "$CLIB" wait_members 3 60 "${NODE_PORT[1]}" "${NODE_PORT[2]}" "${NODE_PORT[3]}" >/dev/null ||
  die "the cluster never converged"
SERVERS="127.0.0.1:${NODE_PORT[1]},127.0.0.1:${NODE_PORT[2]},127.0.0.1:${NODE_PORT[3]}"
PROTO=$("$PY" -c 'import socket,sys
s=socket.create_connection(("127.0.0.1",int(sys.argv[1])),5); s.sendall(b"vget stale:probe\r\n")
b=b""
while not (b.endswith(b"END\r\n") or b == b"ERROR\r\n"): b+=s.recv(4096)
print("memcached" if b == b"ERROR\r\n" else "qkv")' "${NODE_PORT[1]}")
echo "== stale reads: 3 nodes, b3 killed -9 for ${DOWN}s then up ${UP}s in a loop; $KEYS keys, 30% writes,"
echo "   16 clients, ${SECS}s per (R,W); client path: $PROTO; $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"

ROWS=()
for rw in $RW_LIST; do
  R=${rw%,*} W=${rw#*,}
  out=$TMP/stale-r${R}w${W}
  # a key space of its own per setting: values of an earlier run never count
  cmd="$QKV_BENCH --protocol $PROTO -s $SERVERS -k $KEYS --key-prefix stale-r${R}w${W}: --preload -W 0.3 -t 16 -d $SECS --warmup 0 -r $R -w $W --timeout-ms 1000 --no-progress --json $out.json"
  $cmd >"$out.txt" 2>&1 &
  bp=$!; PIDS+=($bp)
  restarts=0
  sleep 1
  while kill -0 "$bp" 2>/dev/null; do
    kill -9 "${NODE_PID[3]}" 2>/dev/null || true
    wait "${NODE_PID[3]}" 2>/dev/null || true
    forget_pid "${NODE_PID[3]}"
    for _ in $(seq $((DOWN * 10))); do kill -0 "$bp" 2>/dev/null || break; sleep 0.1; done
    start_node 3
    restarts=$((restarts + 1))
    for _ in $(seq $((UP * 10))); do kill -0 "$bp" 2>/dev/null || break; sleep 0.1; done
  done
  rc=0; wait "$bp" || rc=$?; forget_pid "$bp"
  [ $rc -eq 0 ] || { tail -5 "$out.txt" >&2; die "quorumkv-bench failed (R=$R W=$W)"; }
  row=$("$PY" - "$out.json" "$R" "$W" "$restarts" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
st, e = r["stale"], r["errors"]
kinds = ", ".join("%s %d" % (k, v) for k, v in e.items() if k != "total" and v) or "none"
print("| %s, %s | %s | %s | %s | %s | %.3f%% | %s | %s |" % (
    sys.argv[2], sys.argv[3], "{:,}".format(int(r["ops_per_s"])), "{:,}".format(r["reads"]),
    "{:,}".format(st["checked"]), "{:,}".format(st["stale"]), 100 * st["fraction"], kinds, sys.argv[4]))
EOF
)
  echo "$row"
  ROWS+=("$row")
done

echo
echo "================ summary (paste into README) ================"
echo "Stale reads ($(date -u +%Y-%m-%d), quorumkv $(git rev-parse --short HEAD 2>/dev/null || echo ?), $(nproc) CPUs, loopback; bench/stale-reads.sh):"
echo "3 nodes (n=3), b3 killed -9 and restarted in a loop (${DOWN}s down, ${UP}s up), $KEYS preloaded keys,"
echo "30% writes, 16 clients through $PROTO, ${SECS}s per setting."
echo
echo "| R, W | ops/s | reads | checked | stale | stale fraction | errors | restarts |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "Command per setting: ${cmd//$TMP/\$TMP} (with -r R -w W)"
echo "=============================================================="
