# Sourced by the SQLite benchmarks that serve copies of one seeded vault: sets BUILD and WORK (a
# directory removed at exit, with the node stopped); seeds WORK/seeded with SUBJECTS subjects and
# an operator key (GARDE_KEY and GARDE_IDS exported for the wrk scripts). PORT is the caller's.
#
#   start_sqlite_node GARDE    # a fresh copy of the vault served on PORT; sets GARDE_PID
#   stop_sqlite_node

BUILD=${BUILD_DIR:-build}
WORK=$(mktemp -d /tmp/garde-bench-sqlite.XXXXXX)
cleanup() { kill "${GARDE_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "== setup: $SUBJECTS subjects"
"$BUILD/garde" init --data-dir "$WORK/seeded" --policies policies > /dev/null
"$BUILD/garde" apikey create --data-dir "$WORK/seeded" --policies policies \
  --name bench --role operator --activity customer_management | tail -1 > "$WORK/key"
"$BUILD/bench/garde_bench_seed" --data-dir "$WORK/seeded" --policies policies \
  --count "$SUBJECTS" --ids "$WORK/ids.txt" > /dev/null
export GARDE_KEY=$(cat "$WORK/key") GARDE_IDS=$WORK/ids.txt

start_sqlite_node() {  # variables set on the call (GARDE_DB_CHECKPOINT_FRAMES=0 …) reach garde
  rm -rf "$WORK/data" && cp -a "$WORK/seeded" "$WORK/data"
  GARDE_LOG_LEVEL=warn "$1" serve --data-dir "$WORK/data" --policies policies \
    --listen 127.0.0.1:$PORT > "$WORK/serve.out" 2> "$WORK/serve.err" &
  GARDE_PID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" > /dev/null && break; sleep 0.1; done
  kill -0 "$GARDE_PID" || { cat "$WORK/serve.err" >&2; exit 1; }
}

stop_sqlite_node() {
  kill "$GARDE_PID"
  wait "$GARDE_PID" 2>/dev/null || true
}
