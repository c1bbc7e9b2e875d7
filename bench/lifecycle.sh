#!/usr/bin/env bash
# Data-lifecycle benchmarks (issue: the data lifecycle), over a seeded vault, through the real
# binary: an online backup and a retention sweep while reads are served at a fixed rate
# (their p99 against the idle p99 measured in the same run), a sweep that erases every
# subject, and webhook dispatch of the erasures to a local receiver (garde_bench_bare, the
# bare Poco server, whose own capacity is measured alongside). Prints every round, then a
# table of medians.
#
#   bench/lifecycle.sh [--subjects 1000000] [--rate 2000] [--duration 15] [--rounds 3] [--reuse DIR]
#                      [--reads-only]   (the backup and sweep rounds alone)
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS=1000000 RATE=2000 DURATION=15 ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --subjects) SUBJECTS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --reuse) REUSE=$2; shift 2 ;;
    --reads-only) READS_ONLY=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BUILD=${BUILD_DIR:-build}
GARDE=$BUILD/garde
WORK=$(mktemp -d /tmp/garde-lifecycle.XXXXXX)
PORT=18191 RECEIVER_PORT=18192
cleanup() { kill "${GARDE_PID:-}" "${RECEIVER_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

DATA=${REUSE:-$WORK}
if [ ! -f "$DATA/data/keyring.json" ]; then
  echo "== setup: $SUBJECTS subjects in $DATA"
  mkdir -p "$DATA"
  "$GARDE" init --data-dir "$DATA/data" --policies policies > /dev/null
  "$GARDE" apikey create --data-dir "$DATA/data" --policies policies \
    --name bench --role operator --activity customer_management | tail -1 > "$DATA/key"
  start=$(date +%s)
  "$BUILD/bench/garde_bench_seed" --data-dir "$DATA/data" --policies policies \
    --count "$SUBJECTS" --ids "$DATA/ids.txt" --threads 2
  echo "seeded in $(( $(date +%s) - start )) s"
  cp "$DATA/data/garde.db" "$DATA/garde.db.seeded"
  cp "$DATA/data/audit.db" "$DATA/audit.db.seeded"
else
  # The erasing sweep of the last run destroyed the vault: start from the seeded one.
  for f in garde.db audit.db; do
    cp "$DATA/$f.seeded" "$DATA/data/$f"
    rm -f "$DATA/data/$f-wal" "$DATA/data/$f-shm"
  done
  : > "$DATA/data/tombstones.log"
  rm -rf "$DATA/data/backups"
fi
KEY=$(cat "$DATA/key")
CFG=(--data-dir "$DATA/data" --policies policies)
cat "$DATA/data/garde.db" > /dev/null  # in the page cache, as on a running server

"$BUILD/bench/garde_bench_bare" 127.0.0.1:$RECEIVER_PORT > "$WORK/receiver.out" 2>&1 &
RECEIVER_PID=$!
cat > "$WORK/webhooks.yaml" <<EOF
endpoints:
  - id: bench
    url: http://127.0.0.1:$RECEIVER_PORT/hooks
    recipient: CRM hosting provider
    events: [subject.erased]
    secrets: ["whsec_$(head -c 32 /dev/urandom | base64)"]
EOF

start_garde() {  # extra flags
  GARDE_LOG_LEVEL=warn "$GARDE" serve "${CFG[@]}" --listen 127.0.0.1:$PORT \
    --retention-interval none "$@" > "$WORK/serve.out" 2> "$WORK/serve.err" &
  GARDE_PID=$!
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && return
    sleep 0.1
  done
  echo "garde did not start" >&2; cat "$WORK/serve.err" >&2; exit 1
}
stop_garde() { kill "$GARDE_PID"; wait "$GARDE_PID" 2>/dev/null || true; }

reads() {  # name: GET /v1/subjects/{id} at $RATE for $DURATION s; appends its RESULT line
  local line
  line=$(GARDE_IDS=$DATA/ids.txt "$BUILD/bench/garde_bench_rate" --port $PORT --rate "$RATE" \
    --duration "$DURATION" --connections 32 --threads 1 --path '/v1/subjects/{id}' \
    --header "Authorization: Bearer $KEY" --header "X-Purpose: customer_management" \
    | grep '^RESULT')
  echo "  $1: $line"
  echo "$1 $line" >> "$WORK/results"
}
# Runs "$@" back to back while reads() measures; each run's wall time goes to results.
during() {  # name, command...
  local name=$1; shift
  ( end=$(( $(date +%s) + DURATION ))
    while [ "$(date +%s)" -lt "$end" ]; do
      t0=$(date +%s.%N)
      "$@" > /dev/null 2>> "$WORK/during.err"
      echo "$name seconds=$(echo "$(date +%s.%N) - $t0" | bc)" >> "$WORK/results"
    done ) &
  local job=$!
  reads "reads_during_$name"
  wait $job
}

start_garde
echo "== reads at $RATE/s: idle, during back-to-back online backups, during retention sweeps ($ROUNDS x ${DURATION}s)"
for r in $(seq "$ROUNDS"); do
  reads idle
  during backup "$GARDE" backup "${CFG[@]}" --backup-keep-last 1 --backup-keep-daily 0 \
    --backup-keep-weekly 0 --backup-keep-monthly 0
  during sweep "$GARDE" retention run "${CFG[@]}"
done
grep -E '^(backup|sweep) ' "$WORK/results" | sed 's/^/  /'
BACKUP_BYTES=$(stat -c %s "$DATA"/data/backups/*.gbak | tail -1)
stop_garde
ERASE_S=0 WEBHOOK_RATE=0 RECEIVER_RPS=0 DEAD=0
if [ -z "${READS_ONLY:-}" ]; then

echo "== a sweep ten years and a day on: every period, the invoices' too, has run out"
t0=$(date +%s.%N)
GARDE_TEST_CLOCK_OFFSET=$(( 10 * 366 * 86400 + 86400 )) "$GARDE" retention run "${CFG[@]}" --json \
  > "$WORK/erase.json"
ERASE_S=$(echo "$(date +%s.%N) - $t0" | bc)
echo "  erased in $ERASE_S s: $(python3 -c "import json; r=json.load(open('$WORK/erase.json'))['report']; print(r['subjects_erased'], 'subjects erased')")"

echo "== webhook dispatch of the erasures to a local receiver"
TOTAL=$(sqlite3 "$DATA/data/garde.db" "SELECT COUNT(*) FROM outbox WHERE topic='subject.erased'")
start_garde --webhooks-file "$WORK/webhooks.yaml"
delivered() { sqlite3 "$DATA/data/garde.db" "SELECT COUNT(*) FROM webhook_deliveries WHERE status='delivered'" 2>/dev/null || echo 0; }
t0=$(date +%s.%N)
for _ in $(seq 600); do
  sleep 0.5
  c=$(delivered)
  [ "$c" -ge "$TOTAL" ] && break
done
t=$(date +%s.%N)
echo "  $c of $TOTAL delivered in $(echo "$t - $t0" | bc) s (fan-out included)"
WEBHOOK_RATE=$(echo "$c / ($t - $t0)" | bc)
DEAD=$(sqlite3 "$DATA/data/garde.db" "SELECT COUNT(*) FROM webhook_deliveries WHERE status<>'delivered' AND attempts>0")
stop_garde
# The receiver's own capacity, with the same keep-alive POSTs from wrk.
cat > "$WORK/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = string.rep("x", 260)
wrk.headers["Content-Type"] = "application/json"
EOF
RECEIVER_RPS=$(wrk -t1 -c1 -d5s -s "$WORK/post.lua" "http://127.0.0.1:$RECEIVER_PORT/hooks" \
  | awk '/Requests\/sec/ {print int($2)}')
fi

python3 - "$WORK/results" "$SUBJECTS" "$ERASE_S" "$WEBHOOK_RATE" "$RECEIVER_RPS" "$BACKUP_BYTES" "$DEAD" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rest = line.split(" ", 1)
    rows.setdefault(name, []).append(dict(re.findall(r"(\w+)=([\d.]+)", rest)))
med = lambda n, k: statistics.median(float(r[k]) for r in rows[n])
idle = med("idle", "p99_ms")
print()
print(f"| measure ({sys.argv[2]} subjects, medians) | value | target |")
print("|---|---|---|")
print(f"| GET p99 idle at the fixed rate, ms (baseline) | {idle:.2f} (rounds: {', '.join(r['p99_ms'] for r in rows['idle'])}) | baseline |")
print(f"| online backup, wall time, s | {med('backup', 'seconds'):.1f} ({len(rows['backup'])} backups) | <= 30 |")
print(f"| backup file, MiB | {int(sys.argv[6]) / 2**20:.0f} | report |")
b = med("reads_during_backup", "p99_ms")
print(f"| GET p99 during backups, ms / ratio to idle | {b:.2f} / {b / idle:.2f} | ratio <= 2 |")
print(f"| retention sweep, nothing due, wall time, s | {med('sweep', 'seconds'):.1f} ({len(rows['sweep'])} sweeps) | <= 60 |")
w = med("reads_during_sweep", "p99_ms")
print(f"| GET p99 during sweeps, ms / ratio to idle | {w:.2f} / {w / idle:.2f} | ratio <= 2 |")
print(f"| retention sweep erasing every subject (keys shredded, tombstones), s | {float(sys.argv[3]):.1f} | <= 60 |")
print(f"| webhook dispatch of every erasure, events/s (signing, one keep-alive connection) | {sys.argv[4]} | >= 5000 |")
print(f"| the receiver alone (bare Poco, wrk, 1 connection), req/s | {sys.argv[5]} | baseline |")
print(f"| webhook deliveries failed | {sys.argv[7]} | 0 |")
# "errors" are connections the service closed after keep_alive_timeout idle (at this low rate
# the generator reuses its most recent connections); a request on one is still due and timed.
errs = sum(int(r.get("non2xx", 0)) + int(r.get("unanswered", 0))
           for n in ("idle", "reads_during_backup", "reads_during_sweep") for r in rows[n])
print(f"| non-2xx or unanswered reads | {errs} | 0 |")
PY
