#!/usr/bin/env bash
# Two garde binaries (say, before and after a change) against one PostgreSQL node each, runs
# alternated: each run a fresh database seeded with the same subjects, one node of the binary
# (read_consistency strict, the default), ROUNDS wrk rounds (2 threads × 64 connections) of one
# operation. Prints every round and each binary's median. Run beside a server of Debian's
# package:
#
#   tests/postgres/with_postgres.sh bench/postgres_binaries.sh OLD_GARDE NEW_GARDE
#       [--op consent_check|get_subject|post_subject] [--subjects 5000] [--duration 8]
#       [--rounds 2] [--runs 2]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
BINARIES=("$(realpath "$1")" "$(realpath "$2")")
shift 2
OP=consent_check SUBJECTS=5000 DURATION=8 ROUNDS=2 RUNS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --op) OP=$2; shift 2 ;;
    --subjects) SUBJECTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "${GARDE_TEST_POSTGRES:-}" ]; then
  echo "run under tests/postgres/with_postgres.sh" >&2
  exit 2
fi
BUILD=${BUILD_DIR:-build}
WORK=$(mktemp -d /tmp/garde-bench-binaries.XXXXXX)
PORT=18293
cleanup() { kill "${GARDE_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
admin="postgresql:///postgres?host=$GARDE_TEST_POSTGRES&user=garde"

declare -A FIGURES
n=0
for run in $(seq "$RUNS"); do
  for b in 0 1; do
    garde=${BINARIES[$b]}
    n=$((n + 1))
    uri="postgresql:///bench_$n?host=$GARDE_TEST_POSTGRES&user=garde"
    psql -q "$admin" -c "CREATE DATABASE bench_$n"
    dir=$WORK/data_$n
    "$garde" init --data-dir "$dir" --policies policies --database "$uri" > /dev/null
    key=$("$garde" apikey create --data-dir "$dir" --policies policies --database "$uri" \
      --name bench --role operator --activity customer_management | tail -1)
    "$BUILD/bench/garde_bench_seed" --data-dir "$dir" --policies policies --database "$uri" \
      --count "$SUBJECTS" --ids "$WORK/ids_$n" > /dev/null 2>&1
    GARDE_LOG_LEVEL=warn "$garde" serve --data-dir "$dir" --policies policies --database "$uri" \
      --listen 127.0.0.1:$PORT > "$WORK/serve.out" 2> "$WORK/serve.err" &
    GARDE_PID=$!
    for _ in $(seq 100); do
      curl -sf http://127.0.0.1:$PORT/healthz > /dev/null && break
      sleep 0.1
    done
    sleep 3  # the seeding's audit entries imported
    for round in $(seq "$ROUNDS"); do
      line=$(GARDE_KEY=$key GARDE_IDS=$WORK/ids_$n wrk -t2 -c64 -d"${DURATION}"s \
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
