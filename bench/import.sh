#!/usr/bin/env bash
# `garde import` of a generated spreadsheet (unique e-mails, names, phones, dates, amounts,
# ';' and decimal commas) into a fresh durable vault, beside raw SQLite in the same run: one
# row per transaction with synchronous=FULL (the one-flush-per-write limit), and a bulk insert
# of the same row count in one transaction (the disk's ceiling without crypto or indexes).
#
#   bench/import.sh [--rows 100000] [--rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=100000 ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
BUILD=${BUILD_DIR:-build}
WORK=$(mktemp -d /tmp/garde-bench-import.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

python3 - "$WORK/clients.csv" "$ROWS" <<'PY'
import random, sys
random.seed(1)
first = ["Hélène", "Robert", "Zoë", "Jean-Pierre", "Catherine", "Ana", "Li", "Noël"]
with open(sys.argv[1], "w", encoding="utf-8", newline="") as f:
    f.write("First name;Last name;Email;Phone;Birth date;Postal code;City;Customer number;Total spend\r\n")
    for i in range(int(sys.argv[2])):
        f.write(f"{random.choice(first)};Nom{i};client{i}@example.org;06{i % 100000000:08d};"
                f"{random.randint(1, 28):02d}/{random.randint(1, 12):02d}/{random.randint(1940, 2005)};"
                f"{random.randint(1000, 95999):05d};Paris;C-{i};"
                + f"{random.randint(0, 99999) / 100:.2f}".replace(".", ",") + "\r\n")
PY

for r in $(seq "$ROUNDS"); do
  rm -rf "$WORK/data"
  "$BUILD/garde" init --data-dir "$WORK/data" --policies policies > /dev/null
  start=$(date +%s.%N)
  "$BUILD/garde" import "$WORK/clients.csv" --mapping policies/imports/spreadsheet.yaml \
    --data-dir "$WORK/data" --policies policies --report "$WORK/report.csv" > "$WORK/out" || { cat "$WORK/out"; grep -v ",created," "$WORK/report.csv" | head -5; exit 1; }
  secs=$(python3 -c "print($(date +%s.%N) - $start)")
  echo "RESULT garde_import rows=$ROWS seconds=$secs rows_per_s=$(python3 -c "print(round($ROWS / $secs))")"
  python3 - "$WORK/raw.db" "$ROWS" <<'PY'
import os, sqlite3, sys, time
path, rows = sys.argv[1], int(sys.argv[2])
for suffix in ("", "-wal", "-shm"):
    if os.path.exists(path + suffix): os.remove(path + suffix)
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE t(id TEXT PRIMARY KEY, v BLOB)")
n = min(rows, 3000)
t = time.time()
for i in range(n):
    db.execute("BEGIN"); db.execute("INSERT INTO t VALUES(?, ?)", (f"a{i}", os.urandom(200))); db.execute("COMMIT")
one = n / (time.time() - t)
t = time.time()
db.execute("BEGIN")
db.executemany("INSERT INTO t VALUES(?, ?)", ((f"b{i}", os.urandom(200)) for i in range(rows)))
db.execute("COMMIT")
bulk = rows / (time.time() - t)
print(f"RESULT sqlite_one_row_per_commit rows_per_s={one:.0f}")
print(f"RESULT sqlite_bulk rows_per_s={bulk:.0f}")
PY
done
