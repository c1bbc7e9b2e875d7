#!/usr/bin/env bash
# Memory under sustained mixed load (customer-file issue, §5: RSS at 1M subjects after 10
# minutes ≤ 400 MiB and flat): a vault of SUBJECTS seeded subjects (60 % consenting to e-mail
# marketing), one `garde serve`, then DURATION seconds of wrk (2 threads × 64 connections,
# bench/mixed.lua: consent checks, reads, consent events, creates) with an audience call
# every minute; garde's VmRSS sampled every 30 s (just after each audience, and between), and
# every 5 s beside. Prints the 30-second samples, the request rates, the RSS at the end against
# the sample half-way (flat: the second half grows little), and the median and largest of the
# 5-second samples of the second half (a 30-second sample may catch an audience's answer).
#
#   bench/rss.sh [--subjects 1000000] [--duration 600] [--reuse DIR]
# --reuse DIR keeps the seeded vault there (seeding 1M subjects takes minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS=1000000 DURATION=600
while [ $# -gt 0 ]; do
  case "$1" in
    --subjects) SUBJECTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --reuse) REUSE=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BUILD=${BUILD_DIR:-build}
GARDE=$BUILD/garde
WORK=$(mktemp -d /tmp/garde-rss.XXXXXX)
PORT=18184
cleanup() {
  kill "${GARDE_PID:-}" "${WRK_PID:-}" "${SAMPLER_PID:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

DATA=${REUSE:-$WORK}
if [ ! -f "$DATA/garde.db.seeded" ]; then
  echo "== setup: $SUBJECTS subjects in $DATA"
  rm -rf "$DATA/data"
  mkdir -p "$DATA"
  "$GARDE" init --data-dir "$DATA/data" --policies policies > /dev/null
  "$GARDE" apikey create --data-dir "$DATA/data" --policies policies \
    --name bench --role operator --activity customer_management | tail -1 > "$DATA/key"
  "$GARDE" apikey create --data-dir "$DATA/data" --policies policies \
    --name campaigns --role marketing --activity marketing_email | tail -1 > "$DATA/marketing_key"
  start=$(date +%s)
  "$BUILD/bench/garde_bench_seed" --data-dir "$DATA/data" --policies policies \
    --count "$SUBJECTS" --ids "$DATA/ids.txt" --consent-share 0.6 > /dev/null
  echo "seeded in $(( $(date +%s) - start )) s"
  for f in garde.db audit.db tombstones.log; do
    if [ -f "$DATA/data/$f" ]; then cp "$DATA/data/$f" "$DATA/$f.seeded"; fi
  done
else
  # Every run starts from the same vault: the writes of the last run are gone, and so are
  # the "no"s its tombstone log kept (else the start re-applies them all).
  rm -f "$DATA/data/"{garde.db-wal,garde.db-shm,audit.db-wal,audit.db-shm,tombstones.log}
  rm -f "$DATA/data/audience.snapshot"
  for f in garde.db audit.db tombstones.log; do
    if [ -f "$DATA/$f.seeded" ]; then cp "$DATA/$f.seeded" "$DATA/data/$f"; fi
  done
fi
export GARDE_KEY=$(cat "$DATA/key")
export GARDE_IDS=$DATA/ids.txt
MARKETING_KEY=$(cat "$DATA/marketing_key")

cat "$DATA/data/garde.db" > /dev/null  # in the OS page cache, as on a running server
GARDE_LOG_LEVEL=info "$GARDE" serve --data-dir "$DATA/data" --policies policies \
  --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$((PORT + 1)) \
  > "$WORK/serve.out" 2> "$WORK/serve.err" &
GARDE_PID=$!
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break
  sleep 0.1
done
rss() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$GARDE_PID/status"; }
echo "== ready: RSS $(rss) MiB"

AUDIENCE='{"activity":"marketing_email","purpose":"marketing.email","channel":"email",
 "where":{"all":[{"field":"postal_code","prefix":"75"}]},"fields":["email"]}'
wrk -t2 -c64 -d"${DURATION}"s -s bench/mixed.lua "http://127.0.0.1:$PORT" > "$WORK/wrk.out" &
WRK_PID=$!
(
  start=$(date +%s)
  while sleep 5; do echo "$(($(date +%s) - start)) $(rss)"; done
) > "$WORK/fine" &
SAMPLER_PID=$!
samples=()
for t in $(seq 30 30 "$DURATION"); do
  sleep 30
  if [ $((t % 60)) -eq 0 ]; then
    code=$(curl -s -o /dev/null -D "$WORK/audience.headers" \
      -w '%{http_code} in %{time_total} s, %{size_download} bytes' \
      -H "Authorization: Bearer $MARKETING_KEY" \
      -H 'Content-Type: application/json' --data-binary "$AUDIENCE" \
      "http://127.0.0.1:$PORT/v1/audiences")
    code="$code, $(tr -d '\r' < "$WORK/audience.headers" | awk -F': ' 'tolower($1) == "x-audience-count" {print $2}') members"
  else
    code=-
  fi
  samples+=("$(rss)")
  echo "t=${t}s RSS ${samples[-1]} MiB (audience: $code)"
done
wait "$WRK_PID" || true
WRK_PID=
kill "$SAMPLER_PID" 2>/dev/null || true
wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=
# What holds the memory at the end, and what each audience spent catching up or rebuilding.
curl -s "http://127.0.0.1:$((PORT + 1))/metrics" |
  grep -E '^(process_resident_memory_bytes|garde_kept_subjects|garde_kept_bytes|garde_audience_index_bytes|garde_sqlite_cache_bytes)' || true
grep '"audience built"' "$WORK/serve.err" | sed 's/.*"subjects"/audience: "subjects"/' || true
grep -E "RESULT|Requests/sec|Non-2xx" "$WORK/wrk.out" || cat "$WORK/wrk.out"
half=${samples[$(( ${#samples[@]} / 2 ))]}
max=$(printf '%s\n' "${samples[@]}" | sort -n | tail -1)
fine=$(awk -v from=$((DURATION / 2)) '$1 >= from && $2 != "" {print $2}' "$WORK/fine" | sort -n)
fine_median=$(echo "$fine" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
echo "RESULT rss_end_mib=${samples[-1]} rss_half_mib=$half rss_max_mib=$max" \
  "rss_5s_second_half_median_mib=$fine_median rss_5s_second_half_max_mib=$(echo "$fine" | tail -1)" \
  "subjects=$(wc -l < "$GARDE_IDS")"
