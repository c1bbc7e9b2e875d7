#!/usr/bin/env bash
# What one request costs the SQLite node, from /proc: user and system CPU, voluntary context
# switches (threads waking one another: the hand-over to a worker, a group commit's followers)
# and bytes written (WAL, checkpoints and answers), each divided by the requests answered over
# one wrk round (2 threads × 64 connections) per operation, on a fresh copy of one seeded vault.
#
#   bench/per_request.sh [--ops "post_consent consent_check"] [--subjects 20000]
#       [--duration 10] [--rounds 2]
set -euo pipefail
cd "$(dirname "$0")/.."
OPS="post_consent consent_check" SUBJECTS=20000 DURATION=10 ROUNDS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --ops) OPS=$2; shift 2 ;;
    --subjects) SUBJECTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PORT=18299
. bench/sqlite_node.sh

# utime stime (clock ticks), voluntary switches of every thread, bytes written (wchar).
sample() {
  local fields
  read -ra fields <<< "$(sed -E 's/^.*\) //' "/proc/$1/stat")"
  echo "${fields[11]} ${fields[12]}" \
    "$(cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt_switches/ {n += $2} END {print n}')" \
    "$(awk '/^wchar/ {print $2}' "/proc/$1/io")"
}
hz=$(getconf CLK_TCK)
printf '%-6s %-16s %8s %8s %8s %12s %14s\n' round op "req/s" "user µs" "sys µs" "switches" \
  "bytes written"
for round in $(seq "$ROUNDS"); do
  for op in $OPS; do
    start_sqlite_node "$BUILD/garde"
    before=($(sample "$GARDE_PID"))
    line=$(wrk -t2 -c64 -d"${DURATION}s" -s "bench/$op.lua" "http://127.0.0.1:$PORT" | grep '^RESULT')
    after=($(sample "$GARDE_PID"))
    stop_sqlite_node
    rps=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<< "$line")
    awk -v r="$round" -v op="$op" -v rps="$rps" -v n=$(( rps * DURATION )) -v hz="$hz" \
      -v u=$(( after[0] - before[0] )) -v s=$(( after[1] - before[1] )) \
      -v c=$(( after[2] - before[2] )) -v w=$(( after[3] - before[3] )) 'BEGIN {
        n = n > 0 ? n : 1
        printf "%-6s %-16s %8d %8.1f %8.1f %12.1f %14.0f\n", r, op, rps, u * 1e6 / hz / n,
          s * 1e6 / hz / n, c / n, w / n }'
  done
done
