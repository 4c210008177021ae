# bench/lib.sh - shell helpers the benchmark scripts share (sourced, not run).
#
# bench_init PREFIX makes $TMP, arms a trap that stops every process in
# PIDS (SIGTERM, then SIGKILL) and removes $TMP (kept with BENCH_KEEP=1, or
# after a failure unless BENCH_KEEP=0).  PROBLEMS collects what went wrong
# for the script's summary.

die() { echo "bench: $*" >&2; exit 1; }

bench_init() { # prefix
  TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  PIDS=()
  PROBLEMS=()
  MC_USER=()
  [ "$(id -u)" -eq 0 ] && MC_USER=(-u root)   # memcached refuses root without -u
  HZ=$(getconf CLK_TCK)
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

bench_cleanup() {
  local rc=$? pid
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if [ "${BENCH_KEEP:-0}" = 1 ] || { [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "${BENCH_KEEP:-}" != 0 ]; }; then
    echo "bench: temp dir kept: $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit $rc
}

forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}

show_log() { # file [lines]
  echo "---- last lines of $1:" >&2
  tail -n "${2:-30}" "$1" >&2 2>/dev/null || true
  echo "----" >&2
}

died() { # pid label log: report how a server process ended
  local rc=0 sig=""
  wait "$1" 2>/dev/null || rc=$?
  [ $rc -gt 128 ] && sig=" = SIG$(kill -l $((rc - 128)) 2>/dev/null)"
  echo "!! $2 (pid $1) DIED: exit status $rc$sig" >&2
  show_log "$3"
  PROBLEMS+=("$2 died: exit status $rc$sig (log: $(tail -n 1 "$3" 2>/dev/null))")
  forget_pid "$1"
}

stop_server() { # pid label log: SIGTERM, then SIGKILL after 5 s
  local rc=0
  kill "$1" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$1" 2>/dev/null; then
    echo "!! $2 ignored SIGTERM for 5 s; SIGKILL" >&2
    kill -9 "$1" 2>/dev/null || true
  fi
  wait "$1" 2>/dev/null || rc=$?
  forget_pid "$1"
  # 143 = ended by the SIGTERM itself (default action), as memcached is
  if [ $rc -ne 0 ] && [ $rc -ne 143 ]; then
    local sig=""; [ $rc -gt 128 ] && sig=" (SIG$(kill -l $((rc - 128))))"
    echo "!! $2 exited with status $rc$sig after SIGTERM" >&2
    tail -n 5 "$3" 2>/dev/null | sed 's/^/    /' >&2
    PROBLEMS+=("$2: exit status $rc$sig after SIGTERM")
  fi
}

wait_port() { # pid port log deadline_s
  local pid=$1 port=$2 log=$3 deadline=$(( $(date +%s) + $4 ))
  while ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_log "$log"; die "server pid $pid exited before accepting on port $port"
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { show_log "$log"; die "port $port not accepting after $4 s"; }
    sleep 0.05
  done
}

cpu_ticks() { # pid... -> summed utime+stime in clock ticks
  local t=0 p v
  for p in "$@"; do
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    t=$((t + v))
  done
  echo $t
}
