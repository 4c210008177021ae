#!/usr/bin/env bash
# Start conf/node1.ini .. node3.ini in the foreground; Ctrl-C (or SIGTERM)
# stops all three cleanly (each gets SIGTERM and is waited for).
set -u
cd "$(dirname "$0")/.."
pids=()
stop() {
  trap - INT TERM
  echo "run-cluster: stopping ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null
  wait "${pids[@]}" 2>/dev/null
  exit 0
}
trap stop INT TERM
for i in 1 2 3; do
  bin/quorumkvd -c conf/node$i.ini &
  pids+=($!)
done
echo "run-cluster: node1 127.0.0.1:11211, node2 :11212, node3 :11213 (pids ${pids[*]}); Ctrl-C stops"
# A node that exits (or is killed to try failure handling) leaves the
# others running; Ctrl-C stops whatever is left.
while kill -0 "${pids[@]}" 2>/dev/null || pgrep -P $$ quorumkvd >/dev/null; do
  wait -n 2>/dev/null || sleep 1
done
stop
