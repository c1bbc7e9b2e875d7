#!/usr/bin/env bash
# Durable creates (POST /v1/subjects, every commit fsynced) with the WAL copied into the
# database by garde's checkpointer thread (db_checkpoint_frames, the default) against SQLite's
# own checkpoint in the committing writer (db_checkpoint_frames = 0), rounds interleaved, beside
# raw SQLite committing one 200-byte row per transaction (synchronous=FULL), the
# one-fsync-per-write limit, measured in the same rounds. wrk 2 threads × 64 connections.
# --against BINARY adds a round of another garde binary (the code before a change) to each.
#
#   bench/durable_writes.sh [--subjects 20000] [--duration 10] [--rounds 3] [--against BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS=20000 DURATION=10 ROUNDS=3 AGAINST=
while [ $# -gt 0 ]; do
  case "$1" in
    --subjects) SUBJECTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --against) AGAINST=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
PORT=18291
. bench/sqlite_node.sh

declare -A RESULTS
round_of() {  # name, checkpoint frames[, binary]: a fresh copy of the seeded vault, one wrk round
  local name=$1 frames=$2 binary=${3:-$BUILD/garde}
  GARDE_DB_CHECKPOINT_FRAMES=$frames start_sqlite_node "$binary"
  local line
  line=$(wrk -t2 -c64 -d"${DURATION}s" -s bench/post_subject.lua "http://127.0.0.1:$PORT" | grep '^RESULT')
  stop_sqlite_node
  echo "round $r $name: $line"
  RESULTS[$name]="${RESULTS[$name]:-} $line"
}
for r in $(seq "$ROUNDS"); do
  round_of checkpointer 4096
  round_of sqlite_checkpoint 0
  [ -z "$AGAINST" ] || round_of against 4096 "$AGAINST"
  line=$(python3 - "$WORK/raw.db" <<'PY'
import os, sqlite3, sys, time
path = sys.argv[1]
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix): os.remove(path + suffix)
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v BLOB)")
n, t = 3000, time.time()
for i in range(n):
    db.execute("BEGIN"); db.execute("INSERT INTO t VALUES(?, ?)", (f"a{i}", os.urandom(200))); db.execute("COMMIT")
print(f"RESULT rps={n / (time.time() - t):.0f}")
PY
)
  echo "round $r sqlite_one_row_per_commit: $line"
  RESULTS[raw]="${RESULTS[raw]:-} $line"
done

field() { tr ' ' '\n' | grep "^$1=" | cut -d= -f2 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
echo "median of $ROUNDS rounds: req/s, p50 ms, p99 ms"
for name in checkpointer sqlite_checkpoint ${AGAINST:+against}; do
  echo "$name: $(field rps <<< "${RESULTS[$name]}") req/s, p50 $(field p50_ms <<< "${RESULTS[$name]}"), p99 $(field p99_ms <<< "${RESULTS[$name]}")"
done
echo "sqlite_one_row_per_commit: $(field rps <<< "${RESULTS[raw]}") commits/s"
