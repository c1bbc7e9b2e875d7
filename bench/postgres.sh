#!/usr/bin/env bash
# One node on SQLite against one node on PostgreSQL (read_consistency strict, the default, and
# eventual), and against PostgreSQL nodes behind HAProxy (one node, then two; and the eventual
# node alone, "haproxy_eventual"), same run, rounds interleaved: a subject read, a consent
# check, a durable create (wrk, 2 threads, 64 connections). Prints every round and the medians
# with each one's ratio to the SQLite node. Run beside a server of Debian's package:
#
#   tests/postgres/with_postgres.sh bench/postgres.sh [--subjects 20000] [--duration 10] [--rounds 3]
#       [--ops "get_subject consent_check post_subject"]   (any bench/*.lua: post_consent...)
#       [--haproxy-mode http|tcp]   (tcp: HAProxy forwards connections, not requests; its health
#                                    checks still ask /readyz)
#       [--targets "sqlite postgresql haproxy1 …"]   (a subset, in this order; sqlite first)
#       [--cpu]   (also the CPU each process spent a request: the target's garde nodes, the
#                  PostgreSQL server's processes, HAProxy; and garde's and the server's in the
#                  3 s after — the audit import of what was just read)
#       [--statements]   (at the end, the server's costliest statements and its WAL totals;
#                         start it with PG_EXTRA="-c shared_preload_libraries=pg_stat_statements")
# Before each measurement it waits (30 s at most) for the machine to be 70 % idle, so that a
# round does not pay for the audit entries the previous one left to import.
set -euo pipefail
cd "$(dirname "$0")/.."
SUBJECTS=20000 DURATION=10 ROUNDS=3 OPS="get_subject consent_check post_subject" HAPROXY_MODE=http
CPU= STATEMENTS= TARGETS=(sqlite postgresql pg_eventual haproxy1 haproxy2 haproxy_eventual)
while [ $# -gt 0 ]; do
  case "$1" in
    --subjects) SUBJECTS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --ops) OPS=$2; shift 2 ;;
    --haproxy-mode) HAPROXY_MODE=$2; shift 2 ;;
    --targets) read -ra TARGETS <<< "$2"; shift 2 ;;
    --cpu) CPU=1; shift ;;
    --statements) STATEMENTS=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case "$HAPROXY_MODE" in http|tcp) ;; *) echo "--haproxy-mode http or tcp" >&2; exit 2 ;; esac
[ "${TARGETS[0]:-}" = sqlite ] || { echo "--targets starts with sqlite (the ratios' base)" >&2; exit 2; }
for t in "${TARGETS[@]}"; do
  case "$t" in sqlite|postgresql|pg_eventual|haproxy1|haproxy2|haproxy_eventual) ;;
    *) echo "unknown target $t" >&2; exit 2 ;; esac
done
if [ -z "${GARDE_TEST_POSTGRES:-}" ]; then
  echo "run beside a server: tests/postgres/with_postgres.sh bench/postgres.sh" >&2
  exit 2
fi
BUILD=${BUILD_DIR:-build}
GARDE=$BUILD/garde
WORK=$(mktemp -d /tmp/garde-bench-pg.XXXXXX)
cleanup() { kill $(cat "$WORK"/*.pid 2>/dev/null) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

psql -q "postgresql:///postgres?host=$GARDE_TEST_POSTGRES&user=garde" -c "CREATE DATABASE bench"
PG_URI="postgresql:///bench?host=$GARDE_TEST_POSTGRES&user=garde"
[ -z "$STATEMENTS" ] || psql -q "$PG_URI" -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"
declare -A PORT=([sqlite]=18281 [postgresql]=18282)

for backend in sqlite postgresql; do
  dir=$WORK/$backend
  db=()
  [ "$backend" = postgresql ] && db=(--database "$PG_URI")
  "$GARDE" init --data-dir "$dir" --policies policies "${db[@]}" > /dev/null
  "$GARDE" apikey create --data-dir "$dir" --policies policies "${db[@]}" \
    --name bench --role operator --activity customer_management | tail -1 > "$WORK/$backend.key"
  start=$(date +%s)
  "$BUILD/bench/garde_bench_seed" --data-dir "$dir" --policies policies "${db[@]}" \
    --count "$SUBJECTS" --ids "$WORK/$backend.ids" > /dev/null
  echo "== $backend: $SUBJECTS subjects seeded in $(( $(date +%s) - start )) s"
  GARDE_LOG_LEVEL=warn "$GARDE" serve --data-dir "$dir" --policies policies "${db[@]}" \
    --listen 127.0.0.1:${PORT[$backend]} > "$WORK/$backend.out" 2> "$WORK/$backend.err" &
  echo $! > "$WORK/$backend.pid"
done
# A second node of the PostgreSQL deployment (its own data directory, the same keyring), and
# HAProxy in front: "haproxy1" routes to the first node alone, "haproxy2" to both.
mkdir -m 700 "$WORK/postgresql2"
cp "$WORK/postgresql/keyring.json" "$WORK/postgresql2/"
cp "$WORK/postgresql.key" "$WORK/haproxy1.key"; cp "$WORK/postgresql.ids" "$WORK/haproxy1.ids"
cp "$WORK/postgresql.key" "$WORK/haproxy2.key"; cp "$WORK/postgresql.ids" "$WORK/haproxy2.ids"
GARDE_LOG_LEVEL=warn "$GARDE" serve --data-dir "$WORK/postgresql2" --policies policies \
  --database "$PG_URI" --listen 127.0.0.1:18283 > "$WORK/postgresql2.out" 2> "$WORK/postgresql2.err" &
echo $! > "$WORK/postgresql2.pid"
# The same deployment once more with read_consistency = eventual (no confirming query).
mkdir -m 700 "$WORK/pg_eventual"
cp "$WORK/postgresql/keyring.json" "$WORK/pg_eventual/"
cp "$WORK/postgresql.key" "$WORK/pg_eventual.key"; cp "$WORK/postgresql.ids" "$WORK/pg_eventual.ids"
PORT[pg_eventual]=18286
GARDE_LOG_LEVEL=warn "$GARDE" serve --data-dir "$WORK/pg_eventual" --policies policies \
  --database "$PG_URI" --read-consistency eventual --listen 127.0.0.1:${PORT[pg_eventual]} \
  > "$WORK/pg_eventual.out" 2> "$WORK/pg_eventual.err" &
echo $! > "$WORK/pg_eventual.pid"
PORT[haproxy1]=18284
PORT[haproxy2]=18285
PORT[haproxy_eventual]=18287
cp "$WORK/postgresql.key" "$WORK/haproxy_eventual.key"
cp "$WORK/postgresql.ids" "$WORK/haproxy_eventual.ids"
cat > "$WORK/haproxy.cfg" <<CFG
global
  maxconn 4096
defaults
  mode $HAPROXY_MODE
  timeout connect 1s
  timeout client 60s
  timeout server 60s
$([ "$HAPROXY_MODE" = http ] && echo "  option http-keep-alive" || true)
frontend one
  bind 127.0.0.1:${PORT[haproxy1]}
  default_backend one
frontend two
  bind 127.0.0.1:${PORT[haproxy2]}
  default_backend two
frontend eventual
  bind 127.0.0.1:${PORT[haproxy_eventual]}
  default_backend eventual
backend one
  option httpchk GET /readyz
  server node1 127.0.0.1:${PORT[postgresql]} check
backend two
  balance roundrobin
  option httpchk GET /readyz
  server node1 127.0.0.1:${PORT[postgresql]} check
  server node2 127.0.0.1:18283 check
backend eventual
  option httpchk GET /readyz
  server node1 127.0.0.1:${PORT[pg_eventual]} check
CFG
/usr/sbin/haproxy -f "$WORK/haproxy.cfg" -db > "$WORK/haproxy.out" 2>&1 &
echo $! > "$WORK/haproxy.pid"

for backend in "${TARGETS[@]}"; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:${PORT[$backend]}/readyz" > /dev/null && break
    sleep 0.1
  done
done

# Waits until the machine has been at least 70 % idle over one second (30 s at most).
settle() {
  for _ in $(seq 30); do
    local a b
    a=($(head -1 /proc/stat)); sleep 1; b=($(head -1 /proc/stat))
    local total=0 idle=$(( b[4] - a[4] ))
    for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
    [ "$total" -gt 0 ] && [ $(( idle * 100 / total )) -ge 70 ] && return
  done
  return 0  # measured anyway
}

# User + system clock ticks of the given processes, and who serves each target.
ticks() {
  local total=0 p fields
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] || continue
    read -ra fields <<< "$(sed -E 's/^.*\) //' "/proc/$p/stat")"
    total=$(( total + fields[11] + fields[12] ))
  done
  echo "$total"
}
declare -A NODES=([sqlite]=sqlite [postgresql]=postgresql [pg_eventual]=pg_eventual
  [haproxy1]=postgresql [haproxy2]="postgresql postgresql2" [haproxy_eventual]=pg_eventual)
HZ=$(getconf CLK_TCK)

declare -A RESULTS
for round in $(seq "$ROUNDS"); do
  for op in $OPS; do
    for backend in "${TARGETS[@]}"; do
      settle
      if [ -n "$CPU" ]; then
        garde_pids=() proxy_pid=
        for node in ${NODES[$backend]}; do garde_pids+=("$(cat "$WORK/$node.pid")"); done
        [[ $backend == haproxy* ]] && proxy_pid=$(cat "$WORK/haproxy.pid")
        server_pids=$(pgrep -u postgres -d' ' postgres || true)
        g0=$(ticks "${garde_pids[@]}") p0=$(ticks $server_pids) h0=$(ticks $proxy_pid)
      fi
      line=$(GARDE_KEY=$(cat "$WORK/$backend.key") GARDE_IDS=$WORK/$backend.ids \
        wrk -t2 -c64 -d"${DURATION}s" -s "bench/$op.lua" "http://127.0.0.1:${PORT[$backend]}" \
        | grep '^RESULT')
      rps=$(sed -E 's/.*rps=([0-9]+).*/\1/' <<< "$line")
      if [ -n "$CPU" ]; then
        g1=$(ticks "${garde_pids[@]}") p1=$(ticks $server_pids) h1=$(ticks $proxy_pid)
        sleep 3
        g2=$(ticks "${garde_pids[@]}") p2=$(ticks $server_pids)
        n=$(( rps * DURATION ))
        line+=$(awk -v n=$(( n > 0 ? n : 1 )) -v hz="$HZ" -v g=$(( g1 - g0 )) -v p=$(( p1 - p0 )) \
          -v h=$(( h1 - h0 )) -v ga=$(( g2 - g1 )) -v pa=$(( p2 - p1 )) 'BEGIN {
            u = 1e6 / hz / n
            printf " cpu_us: garde=%.1f postgresql=%.1f haproxy=%.1f after: garde=%.1f postgresql=%.1f",
              g * u, p * u, h * u, ga * u, pa * u }')
      fi
      echo "round $round $op $backend: $line"
      RESULTS[$op.$backend]="${RESULTS[$op.$backend]:-} $rps"
    done
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo
printf '%-14s' operation
for backend in "${TARGETS[@]}"; do printf ' %12s' "$backend r/s"; done
for backend in "${TARGETS[@]:1}"; do printf ' %14s' "$backend/sqlite"; done
echo
for op in $OPS; do
  s=$(median <<< "${RESULTS[$op.sqlite]}")
  printf '%-14s' "$op"
  for backend in "${TARGETS[@]}"; do printf ' %12s' "$(median <<< "${RESULTS[$op.$backend]}")"; done
  for backend in "${TARGETS[@]:1}"; do
    p=$(median <<< "${RESULTS[$op.$backend]}")
    printf ' %14.2f' "$(awk -v p="$p" -v s="$s" 'BEGIN {print p / s}')"
  done
  echo
done
if [ -n "$STATEMENTS" ]; then
  psql -q "$PG_URI" -c "SELECT calls, rows, round(total_exec_time::numeric) AS ms,
    round((total_exec_time / calls)::numeric * 1000, 1) AS us_a_call, left(query, 90) AS statement
    FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15"
  psql -q "$PG_URI" -c "SELECT wal_records, wal_fpi, wal_bytes FROM pg_stat_wal"
fi
