#!/usr/bin/env bash
# bench/cost-per-write.sh - what one replicated write costs a 3-node
# cluster (n=3, R=W=2): user-space instructions and heap allocations
# (malloc + calloc + realloc calls) per `set`, summed over the three nodes,
# from callgrind (deterministic, so it shows what a change to the write path
# saves on a machine too busy or too virtual for hardware counters).
#
# The three nodes run under valgrind --tool=callgrind; BENCH_CG_KEYS keys
# are preloaded through b1 and one unmeasured pass of the load runs first;
# then the counters of all three are zeroed (callgrind_control -z),
# BENCH_CG_OPS sets of 100-byte values (bin/quorumkv-bench --protocol
# memcached -W 1, 16 clients spread over the nodes: each node coordinates a
# third and is a replica of the rest) run, and the counters are dumped (-d).
# Timers (gossip, crawler, anti-entropy) are counted too, a few percent
# under callgrind's slowdown.
#
#   bench/cost-per-write.sh     (after make)
#   BENCH_CG_WRITES=0 bench/cost-per-write.sh   the same for gets (R=2)
#   BENCH_CG_KEEP=/tmp/w bench/cost-per-write.sh   also keeps the profiles
#       as /tmp/w.b1 .. /tmp/w.b3 (callgrind_annotate --inclusive=yes)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
. bench/lib.sh
command -v valgrind >/dev/null || apt-get install -y -qq valgrind >/dev/null
OPS=${BENCH_CG_OPS:-6000}
MIX=${BENCH_CG_WRITES:-1}   # fraction of sets (-W); 0 measures gets instead
KEYS=${BENCH_CG_KEYS:-5000}
bench_init qkv-cost-write
read -r -a P < <($PY bench/benchlib.py freeports 6)
CG="valgrind --tool=callgrind --callgrind-out-file=$TMP/cg.%p"
NPID=()
for i in 1 2 3; do
  cat > "$TMP/b$i.ini" <<INI
[node]
name = b$i
client_port = ${P[$((2 * i - 2))]}
peer_port = ${P[$((2 * i - 1))]}
data_dir = $TMP/data$i
log_level = warn
[cluster]
seeds = 127.0.0.1:${P[1]}
n = 3
r = 2
w = 2
request_timeout_ms = 5000
INI
  $CG bin/quorumkvd -c "$TMP/b$i.ini" 2>"$TMP/b$i.log" & NPID+=($!); PIDS+=($!)
done
for i in 1 2 3; do wait_port "${NPID[$((i - 1))]}" "${P[$((2 * i - 2))]}" "$TMP/b$i.log" 60; done
$PY bench/clusterlib.py wait_members 3 120 "${P[0]}" "${P[2]}" "${P[4]}" >/dev/null
$PY bench/benchlib.py load "${P[0]}" "$KEYS" pre: 4 >/dev/null
SRV="127.0.0.1:${P[0]},127.0.0.1:${P[2]},127.0.0.1:${P[4]}"
run() { # ops
  bin/quorumkv-bench --protocol memcached -s "$SRV" -t 16 -n "$1" --warmup 0 -k "$KEYS" \
    --key-prefix pre: -W "$MIX" -v 100 --no-progress --no-stale-check --json "$TMP/run.json" >/dev/null
}
run "$OPS"
for p in "${NPID[@]}"; do callgrind_control -z "$p" >/dev/null 2>&1; done
run "$OPS"
for p in "${NPID[@]}"; do rm -f "$TMP"/cg."$p".[0-9]*; callgrind_control -d "$p" >/dev/null 2>&1; done
files=()
for i in 1 2 3; do
  f=$(ls -t "$TMP"/cg."${NPID[$((i - 1))]}".* | head -1)
  files+=("$f")
  [ -n "${BENCH_CG_KEEP:-}" ] && cp "$f" "$BENCH_CG_KEEP.b$i"
done
ops=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["ops"])' "$TMP/run.json")
$PY - "$ops" "$MIX" "${files[@]}" <<'EOF'
import re, sys
ops, mix = int(sys.argv[1]), sys.argv[2]
ALLOC = ("malloc", "calloc", "realloc")
ir = allocs = 0
for path in sys.argv[3:]:
    names, caller, callee = {}, None, None
    for line in open(path, errors="replace"):
        if line.startswith("summary:"):
            ir += int(line.split()[1])
        m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3).strip()
            if m.group(1) == "cfn":
                callee = names.get(m.group(2))
            else:
                caller, callee = names.get(m.group(2)), None
            continue
        # calls into the allocator from outside it (realloc(NULL) calling
        # malloc is one allocation, not two)
        if line.startswith("calls=") and callee in ALLOC and caller not in ALLOC:
            allocs += int(line[6:].split()[0])
what = "sets" if mix == "1" else "requests (%s sets)" % mix
print("3 nodes, n=3 R=W=2, %d %s of 100 bytes: user-space instructions/request (callgrind, "
      "all nodes) %d   heap allocations/request %.1f" % (ops, what, ir // ops, allocs / ops))
EOF
