#!/usr/bin/env bash
# Two garde binaries (say, before and after a change) against one PostgreSQL node each, runs
# alternated: each run a fresh database seeded with the same subjects, one node of the binary
# (read_consistency strict, the default), ROUNDS wrk rounds (2 threads × 64 connections) of one
# operation. Prints every round and each binary's median. Run beside a server of Debian's
# package:
#
#   tests/postgres/with_postgres.sh bench/postgres_binaries.sh OLD_GARDE NEW_GARDE
#       [--op consent_check|get_subject|post_subject] [--subjects 5000] [--duration 8]
#       [--rounds 2] [--runs 2] [--seeders OLD_SEED NEW_SEED]
#
# --seeders: each binary's own build of bench/garde_bench_seed, when the two binaries' schemas
# differ (a node refuses a database migrated past what it knows).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
BINARIES=("$(realpath "$1")" "$(realpath "$2")")
shift 2
OP=consent_check SUBJECTS=5000 DURATION=8 ROUNDS=2 RUNS=2 SEEDERS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --op) OP=$2; shift 2 ;;
    --subjects) SUBJECTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --seeders) SEEDERS=("$(realpath "$2")" "$(realpath "$3")"); shift 3 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PORT=18293
. bench/pg_node.sh

declare -A FIGURES
n=0
for run in $(seq "$RUNS"); do
  for b in 0 1; do
    garde=${BINARIES[$b]}
    n=$((n + 1))
    start_pg_node "$garde" bench_$n "${SEEDERS[$b]:-}"
    for round in $(seq "$ROUNDS"); do
      line=$(GARDE_KEY=$key GARDE_IDS=$ids wrk -t2 -c64 -d"${DURATION}"s \
        -s "bench/$OP.lua" http://127.0.0.1:$PORT | grep RESULT)
      echo "run $run binary $b ($garde) round $round: $line"
      FIGURES[$b]+="$(sed -E 's/.*rps=([0-9]+).*/\1/' <<< "$line") "
    done
    kill "$GARDE_PID"; wait "$GARDE_PID" 2>/dev/null || true; GARDE_PID=
  done
done
median() {
  tr ' ' '\n' | grep . | sort -n |
    awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'
}
for b in 0 1; do
  figures=${FIGURES[$b]% }
  echo "binary $b ${BINARIES[$b]}: $OP median $(median <<< "$figures") req/s ($figures)"
done
