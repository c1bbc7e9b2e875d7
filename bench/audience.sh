#!/usr/bin/env bash
# Audience benchmark (issue: consent): "women in postal codes 75xxx who spent more than 500 in
# the last 30 days" who may be e-mailed, over a seeded population, through the real HTTP API.
# Prints the wall time of each call (first = cold, right after the service starts), the
# audience size, the service's own split of each call (index refresh / evaluation), then the
# issue's baseline measured in the same run: merely reading three encrypted fields of as many
# rows from a plain SQLite table and decrypting them on two threads.
#
#   bench/audience.sh [--subjects 1000000] [--calls 5] [--reuse DIR] [--keep-os-cache]
# --keep-os-cache: the first call starts with an empty service but the database file already
# in the kernel's page cache (a restart); by default that cache is dropped too (a reboot).
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS=1000000 CALLS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --subjects) SUBJECTS=$2; shift 2 ;;
    --calls) CALLS=$2; shift 2 ;;
    --reuse) REUSE=$2; shift 2 ;;
    --keep-os-cache) KEEP_OS_CACHE=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BUILD=${BUILD_DIR:-build}
GARDE=$BUILD/garde
WORK=$(mktemp -d /tmp/garde-audience.XXXXXX)
PORT=18183
cleanup() { kill "${GARDE_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

DATA=${REUSE:-$WORK}
if [ ! -f "$DATA/data/keyring.json" ]; then
  echo "== setup: $SUBJECTS subjects (60 % consenting to e-mail marketing) in $DATA"
  mkdir -p "$DATA"
  "$GARDE" init --data-dir "$DATA/data" --policies policies > /dev/null
  "$GARDE" apikey create --data-dir "$DATA/data" --policies policies \
    --name campaigns --role marketing --activity marketing_email | tail -1 > "$DATA/marketing_key"
  start=$(date +%s)
  "$BUILD/bench/garde_bench_seed" --data-dir "$DATA/data" --policies policies \
    --count "$SUBJECTS" --ids "$DATA/ids.txt" --consent-share 0.6
  echo "seeded in $(( $(date +%s) - start )) s"
fi
KEY=$(cat "$DATA/marketing_key")
if [ -z "${KEEP_OS_CACHE:-}" ]; then
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true  # cold: no file pages cached
else
  cat "$DATA"/data/garde.db > /dev/null  # restart: the file is in the page cache
fi
GARDE_LOG_LEVEL=info "$GARDE" serve --data-dir "$DATA/data" --policies policies \
  --listen 127.0.0.1:$PORT > "$WORK/serve.out" 2> "$WORK/serve.err" &
GARDE_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break; sleep 0.1; done

BODY='{"activity":"marketing_email","purpose":"marketing.email","channel":"email",
 "where":{"all":[{"field":"gender","eq":"F"},{"field":"postal_code","prefix":"75"},
                 {"field":"spend_30d","gt":500}]},"fields":["email","first_name"]}'
echo "== POST /v1/audiences over $(wc -l < "$DATA/ids.txt") subjects, $CALLS calls"
for i in $(seq "$CALLS"); do
  out=$(curl -s -o "$WORK/audience.ndjson" -D "$WORK/headers" -w '%{http_code} %{time_total}' \
    -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' --data-binary "$BODY" \
    "http://127.0.0.1:$PORT/v1/audiences")
  count=$(grep -i '^x-audience-count' "$WORK/headers" | tr -d '\r' | awk '{print $2}')
  echo "  call $i: RESULT status=${out% *} seconds=${out#* } count=$count lines=$(wc -l < "$WORK/audience.ndjson")"
done
grep -E "\"audience (built|snapshot)" "$WORK/serve.err" | sed -E "s/.*\"msg\":\"([^\"]*)\".*\"(subjects|error)\"/  service: \1: \2/" || true
echo "  service RSS after the calls: $(awk '/VmRSS/ {print int($2/1024)}' /proc/$GARDE_PID/status) MiB"
kill "$GARDE_PID"; wait "$GARDE_PID" 2>/dev/null || true; GARDE_PID=
echo "== baseline: decrypt three fields of $SUBJECTS rows from SQLite, two threads"
"$BUILD/bench/garde_bench_decrypt_baseline" --db "$DATA/baseline.db" --rows "$SUBJECTS" --runs 3
