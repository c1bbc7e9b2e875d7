#!/usr/bin/env bash
# One node on SQLite against one node on PostgreSQL, same run, rounds interleaved: a subject
# read, a consent check, a durable create (wrk, 2 threads, 64 connections). Prints every round
# and the medians with the PostgreSQL/SQLite ratio. Run beside a server of Debian's package:
#
#   tests/postgres/with_postgres.sh bench/postgres.sh [--subjects 20000] [--duration 10] [--rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS=20000 DURATION=10 ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --subjects) SUBJECTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [ -z "${GARDE_TEST_POSTGRES:-}" ]; then
  echo "run beside a server: tests/postgres/with_postgres.sh bench/postgres.sh" >&2
  exit 2
fi
BUILD=${BUILD_DIR:-build}
GARDE=$BUILD/garde
WORK=$(mktemp -d /tmp/garde-bench-pg.XXXXXX)
cleanup() { kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

psql -q "postgresql:///postgres?host=$GARDE_TEST_POSTGRES&user=garde" -c "CREATE DATABASE bench"
PG_URI="postgresql:///bench?host=$GARDE_TEST_POSTGRES&user=garde"
declare -A PORT=([sqlite]=18281 [postgresql]=18282)

for backend in sqlite postgresql; do
  dir=$WORK/$backend
  db=()
  [ "$backend" = postgresql ] && db=(--database "$PG_URI")
  "$GARDE" init --data-dir "$dir" --policies policies "${db[@]}" > /dev/null
  "$GARDE" apikey create --data-dir "$dir" --policies policies "${db[@]}" \
    --name bench --role operator --activity customer_management | tail -1 > "$WORK/$backend.key"
  start=$(date +%s)
  "$BUILD/bench/garde_bench_seed" --data-dir "$dir" --policies policies "${db[@]}" \
    --count "$SUBJECTS" --ids "$WORK/$backend.ids" > /dev/null
  echo "== $backend: $SUBJECTS subjects seeded in $(( $(date +%s) - start )) s"
  GARDE_LOG_LEVEL=warn "$GARDE" serve --data-dir "$dir" --policies policies "${db[@]}" \
    --listen 127.0.0.1:${PORT[$backend]} > "$WORK/$backend.out" 2> "$WORK/$backend.err" &
  echo $! > "$WORK/$backend.pid"
done
for backend in sqlite postgresql; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:${PORT[$backend]}/readyz" > /dev/null && break
    sleep 0.1
  done
done

declare -A RESULTS
for round in $(seq "$ROUNDS"); do
  for op in get_subject consent_check post_subject; do
    for backend in sqlite postgresql; do
      line=$(GARDE_KEY=$(cat "$WORK/$backend.key") GARDE_IDS=$WORK/$backend.ids \
        wrk -t2 -c64 -d"${DURATION}s" -s "bench/$op.lua" "http://127.0.0.1:${PORT[$backend]}" \
        | grep '^RESULT')
      echo "round $round $op $backend: $line"
      rps=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<< "$line")
      RESULTS[$op.$backend]="${RESULTS[$op.$backend]:-} $rps"
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
printf '%-14s %12s %12s %8s\n' operation "sqlite r/s" "pg r/s" "pg/sqlite"
for op in get_subject consent_check post_subject; do
  s=$(median <<< "${RESULTS[$op.sqlite]}")
  p=$(median <<< "${RESULTS[$op.postgresql]}")
  printf '%-14s %12s %12s %8.2f\n' "$op" "$s" "$p" "$(awk -v p="$p" -v s="$s" 'BEGIN {print p / s}')"
done
