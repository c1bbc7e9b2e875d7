#!/usr/bin/env bash
# How long `garde serve` takes to answer /healthz on an existing data directory, and what of
# tombstones.log the start re-checked. Each round starts the service twice: once with the
# vault's mark of the log forgotten (every line checked, as every start did before the marks:
# the baseline, in the same run) and once from the mark that start left. Prints each start's
# seconds and its `tombstone log checked` line, then the medians.
#
#   bench/start.sh --data DIR [--rounds 3]
# DIR: a data directory a `garde serve` has run on (bench/rss.sh leaves one with a
# tombstones.log of a few minutes of withdrawals at a million subjects). Its vault is changed:
# the starts apply what the log holds.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "${DATA:-}" ] || { echo "usage: bench/start.sh --data DIR [--rounds N]" >&2; exit 2; }
GARDE=${BUILD_DIR:-build}/garde
PORT=18193
WORK=$(mktemp -d /tmp/garde-start.XXXXXX)
cleanup() { kill "${GARDE_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "log: $(wc -l < "$DATA/tombstones.log" 2>/dev/null || echo 0) lines," \
  "$(stat -c %s "$DATA/tombstones.log" 2>/dev/null || echo 0) bytes"
cat "$DATA/garde.db" "$DATA/tombstones.log" > /dev/null 2>&1 || true  # a restart: cache warm

# Seconds until /healthz answers; the start's tombstone line goes to $WORK/checked.
start_once() {
  local began ended
  began=$(date +%s.%N)
  GARDE_LOG_LEVEL=info "$GARDE" serve --data-dir "$DATA" --policies policies \
    --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$((PORT + 1)) \
    > "$WORK/serve.out" 2> "$WORK/serve.err" &
  GARDE_PID=$!
  for _ in $(seq 1200); do
    curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break
    sleep 0.02
  done
  ended=$(date +%s.%N)
  grep -o '"tombstone log checked"[^}]*' "$WORK/serve.err" > "$WORK/checked" || true
  kill "$GARDE_PID"
  wait "$GARDE_PID" || true
  GARDE_PID=
  echo "$ended - $began" | bc
}

median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

for round in $(seq "$ROUNDS"); do
  sqlite3 "$DATA/garde.db" "DELETE FROM tombstone_log_marks"
  whole=$(start_once)
  echo "round $round, every line: $whole s  $(cat "$WORK/checked")"
  echo "$whole" >> "$WORK/whole"
  marked=$(start_once)
  echo "round $round, from the mark: $marked s  $(cat "$WORK/checked")"
  echo "$marked" >> "$WORK/marked"
done
echo "median: every line $(median < "$WORK/whole") s, from the mark $(median < "$WORK/marked") s"
