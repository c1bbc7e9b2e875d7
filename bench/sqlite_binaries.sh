#!/usr/bin/env bash
# Two garde binaries (say, before and after a change) on the embedded SQLite store, rounds
# alternated: each round a fresh copy of one seeded vault, one `garde serve` of the binary, one
# wrk round (2 threads × 64 connections) of one operation. Prints every round and each binary's
# medians (req/s, p50, p99).
#
#   bench/sqlite_binaries.sh OLD_GARDE NEW_GARDE
#       [--op post_subject|post_consent|consent_check|get_subject] [--subjects 20000]
#       [--duration 10] [--rounds 5]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,9p' "$0" >&2; exit 2; }
BINARIES=("$(realpath "$1")" "$(realpath "$2")")
shift 2
OP=post_subject SUBJECTS=20000 DURATION=10 ROUNDS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --op) OP=$2; shift 2 ;;
    --subjects) SUBJECTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PORT=18294
. bench/sqlite_node.sh

declare -A FIGURES
for round in $(seq "$ROUNDS"); do
  for b in 0 1; do
    start_sqlite_node "${BINARIES[$b]}"
    line=$(wrk -t2 -c64 -d"${DURATION}s" -s "bench/$OP.lua" "http://127.0.0.1:$PORT" | grep '^RESULT')
    stop_sqlite_node
    echo "round $round binary $b (${BINARIES[$b]}): $line"
    FIGURES[$b]="${FIGURES[$b]:-} $line"
  done
done

field() { tr ' ' '\n' | grep "^$1=" | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "$OP, median of $ROUNDS rounds: req/s, p50 ms, p99 ms"
for b in 0 1; do
  f=${FIGURES[$b]}
  echo "binary $b (${BINARIES[$b]}): $(field rps <<< "$f") req/s, p50 $(field p50_ms <<< "$f"), p99 $(field p99_ms <<< "$f")"
done
