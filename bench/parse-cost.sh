#!/usr/bin/env bash
# bench/parse-cost.sh - instructions per line that mc_parse() spends on a
# `get pre:NNNNN` line and on a `set pre:NNNNN 0 0 100` line, counted by
# callgrind over PARSE_LINES (1000000) lines of each (bench/parse-cost.c).
# Needs valgrind; builds build/bench/parse-cost.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${PARSE_LINES:-1000000}
BIN=${PARSE_BIN:-build/bench/parse-cost}
[ -n "${PARSE_BIN:-}" ] || make --no-print-directory -s "$BIN"
for shape in get set; do
  ir=$(valgrind --tool=callgrind --toggle-collect=mc_parse --callgrind-out-file=/dev/null \
         "$BIN" "$shape" "$N" 2>&1 | sed -n 's/.*Collected : *\([0-9]*\).*/\1/p')
  awk -v s="$shape" -v ir="$ir" -v n="$N" 'BEGIN { printf "%s: %.1f instructions per line (%d over %d lines)\n", s, ir / n, ir, n }'
done
