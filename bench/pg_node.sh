# Sourced by the PostgreSQL benchmarks: one garde node on a fresh database of the server
# tests/postgres/with_postgres.sh started. Sourcing it checks that server is there and sets
# BUILD and WORK (a directory removed at exit, with the node stopped); PORT and SUBJECTS are
# the caller's.
#
#   start_pg_node GARDE NAME [SEED]  # database NAME, seeded with SUBJECTS subjects (by SEED,
#                              # default the build's garde_bench_seed: one of GARDE's schema);
#                              # sets uri, key, ids (the seeded subjects' ids file) and
#                              # GARDE_PID (serving on PORT once it returns)

if [ -z "${GARDE_TEST_POSTGRES:-}" ]; then
  echo "run under tests/postgres/with_postgres.sh" >&2
  exit 2
fi
BUILD=${BUILD_DIR:-build}
WORK=$(mktemp -d /tmp/garde-bench-pg.XXXXXX)
cleanup() { kill "${GARDE_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_pg_node() {
  local garde=$1 name=$2 seed=${3:-}
  [ -n "$seed" ] || seed=$BUILD/bench/garde_bench_seed
  local admin="postgresql:///postgres?host=$GARDE_TEST_POSTGRES&user=garde"
  uri="postgresql:///$name?host=$GARDE_TEST_POSTGRES&user=garde"
  psql -q "$admin" -c "CREATE DATABASE $name"
  local dir=$WORK/data_$name
  "$garde" init --data-dir "$dir" --policies policies --database "$uri" > /dev/null
  key=$("$garde" apikey create --data-dir "$dir" --policies policies --database "$uri" \
    --name bench --role operator --activity customer_management | tail -1)
  ids=$WORK/ids_$name
  "$seed" --data-dir "$dir" --policies policies --database "$uri" \
    --count "$SUBJECTS" --ids "$ids" > /dev/null 2>&1
  GARDE_LOG_LEVEL=warn "$garde" serve --data-dir "$dir" --policies policies --database "$uri" \
    --listen 127.0.0.1:$PORT > "$WORK/serve.out" 2> "$WORK/serve.err" &
  GARDE_PID=$!
  for _ in $(seq 100); do
    curl -sf http://127.0.0.1:$PORT/healthz > /dev/null && break
    sleep 0.1
  done
  sleep 3  # the seeding's audit entries logged
}
