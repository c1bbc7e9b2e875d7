#!/usr/bin/env bash
# Root keys on a PKCS#11 token (SoftHSM2) against the file keyring: GET /v1/subjects/{id} with
# the data-key cache warm, both deployments serving the same seeded vault, rounds interleaved
# (one server at a time, so each has the machine); then the token's own unwrap rates, cache
# cold and warm (Google Benchmark, bench/token_bench.cc).
#
#   bench/keys.sh [--subjects 20000] [--duration 10] [--rounds 3]
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
BUILD=${BUILD_DIR:-build}
GARDE=$BUILD/garde
WORK=$(mktemp -d /tmp/garde-bench-keys.XXXXXX)
PORT=18191
cleanup() { kill "${PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

# The token: SoftHSM2's file store in the work directory, the PIN in a 0600 file.
mkdir -p "$WORK/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$WORK/tokens" > "$WORK/softhsm2.conf"
export SOFTHSM2_CONF=$WORK/softhsm2.conf
(umask 077; echo 135792 > "$WORK/pin")
softhsm2-util --init-token --free --label garde-bench --pin 135792 --so-pin 24681357 > /dev/null
TOKEN=(--pkcs11-module softhsm2 --pkcs11-token garde-bench --pkcs11-pin-file "$WORK/pin")

echo "== setup: $SUBJECTS subjects, file keyring"
"$GARDE" init --data-dir "$WORK/file" --policies policies > /dev/null
"$GARDE" apikey create --data-dir "$WORK/file" --policies policies \
  --name bench --role operator --activity customer_management | tail -1 > "$WORK/key"
"$BUILD/bench/garde_bench_seed" --data-dir "$WORK/file" --policies policies \
  --count "$SUBJECTS" --ids "$WORK/ids.txt"
cp -a "$WORK/file" "$WORK/token"
start=$(date +%s.%N)
"$GARDE" keys migrate --to pkcs11 --data-dir "$WORK/token" --policies policies \
  --keyring-watch-seconds 1 "${TOKEN[@]}" > /dev/null
MIGRATE_S=$(python3 -c "print(round($(date +%s.%N) - $start, 1))")
echo "== migrated to the token, re-wrapping $SUBJECTS data keys through it: ${MIGRATE_S} s" \
  "(of which 3 s wait for a running service to notice the new keyring)"
export GARDE_KEY=$(cat "$WORK/key") GARDE_IDS=$WORK/ids.txt

serve() {  # dir, extra flags...
  local dir=$1; shift
  GARDE_LOG_LEVEL=warn "$GARDE" serve --data-dir "$dir" --policies policies \
    --listen 127.0.0.1:$PORT "$@" > "$WORK/serve.out" 2> "$WORK/serve.err" &
  PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break; sleep 0.1; done
}
stop() { kill "$PID"; wait "$PID" 2>/dev/null || true; PID=; }
WRK="wrk -t2 -c64 -d${DURATION}s"
: > "$WORK/results"
for r in $(seq "$ROUNDS"); do
  for source in file token; do
    if [ $source = token ]; then serve "$WORK/token" "${TOKEN[@]}"; else serve "$WORK/file"; fi
    # Warm: every subject read once (the token's data-key cache, the kept records).
    wrk -t2 -c64 -d3s -s bench/get_subject.lua "http://127.0.0.1:$PORT" > /dev/null
    line=$($WRK -s bench/get_subject.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
    echo "  round $r $source: $line"
    echo "$source $line" >> "$WORK/results"
    stop
  done
done

python3 - "$WORK/results" "$SUBJECTS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, _, *kv = line.split()
    rows.setdefault(name, []).append(dict(x.split("=") for x in kv))
def med(name, key): return statistics.median(float(r[key]) for r in rows[name])
f, t = med("file", "rps"), med("token", "rps")
ratios = [float(b["rps"]) / float(a["rps"]) for a, b in zip(rows["file"], rows["token"])]
print(f"| GET /v1/subjects/{{id}} ({sys.argv[2]} subjects, median of {len(rows['file'])} rounds) | file keyring | PKCS#11 token, cache warm |")
print("| --- | --- | --- |")
print(f"| req/s | {f:.0f} | {t:.0f} |")
print(f"| p99, ms | {med('file', 'p99_ms'):.2f} | {med('token', 'p99_ms'):.2f} |")
print(f"| ratio token / file (per round: {', '.join(f'{r:.2f}' for r in ratios)}) | | **{t / f:.2f}** (target >= 0.9) |")
PY

echo "== the token's unwraps (SoftHSM2), cache cold and warm"
"$BUILD/bench/garde_bench_token" --module softhsm2 --token garde-bench --pin-file "$WORK/pin" \
  --benchmark_min_time=2 2>/dev/null | grep -E "^BM_|^Benchmark|^---"
