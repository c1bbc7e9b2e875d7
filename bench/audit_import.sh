#!/usr/bin/env bash
# Whether a PostgreSQL node's audit import keeps pace with the reads it logs: one node (strict
# reads), DURATION seconds of consent checks (wrk, 2 threads × 64 connections; every check is an
# audit entry), then the audit log's row count every half second until it holds them all (two
# minutes at most). Prints the checks answered, the entries logged when the load ended and how
# long the log took to catch up after it. Several binaries are compared one after the other,
# each on a fresh database. Run beside a server of Debian's package:
#
#   tests/postgres/with_postgres.sh bench/audit_import.sh [--duration 10] [--subjects 5000]
#       [GARDE_BINARY...]                                  (default: build/garde)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10 SUBJECTS=5000 BINARIES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --subjects) SUBJECTS=$2; shift 2 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) BINARIES+=("$(realpath "$1")"); shift ;;
  esac
done
[ ${#BINARIES[@]} -gt 0 ] || BINARIES=("$(realpath "${BUILD_DIR:-build}/garde")")
PORT=18297
. bench/pg_node.sh

n=0
for garde in "${BINARIES[@]}"; do
  n=$((n + 1))
  start_pg_node "$garde" audit_$n
  count() { psql -At "$uri" -c "SELECT count(*) FROM audit_log"; }
  before=$(count)
  out=$(GARDE_KEY=$key GARDE_IDS=$ids wrk -t2 -c64 -d"${DURATION}"s \
    -s bench/consent_check.lua http://127.0.0.1:$PORT)
  ended=$(date +%s.%N)
  at_end=$(count)
  checks=$(sed -nE 's/^ *([0-9]+) requests in .*/\1/p' <<< "$out")
  # Every check is one entry: wait for them all (two minutes at most).
  now=$at_end
  for _ in $(seq 240); do
    [ $((now - before)) -ge "$checks" ] && break
    sleep 0.5
    now=$(count)
  done
  caught=$(date +%s.%N)
  printf '%s: %s\n  %d checks; %d logged when the load ended; %d after %.1f s more\n' \
    "$garde" "$(grep RESULT <<< "$out")" "$checks" $((at_end - before)) $((now - before)) \
    "$(echo "$caught - $ended" | bc)"
  kill "$GARDE_PID"; wait "$GARDE_PID" 2>/dev/null || true; GARDE_PID=
done
