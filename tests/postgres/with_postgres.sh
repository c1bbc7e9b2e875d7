#!/usr/bin/env bash
# Runs a command beside a fresh PostgreSQL server of Debian's package: initdb in a temporary
# directory, a Unix socket there (no TCP port), trust authentication for user "garde", torn down
# when the command ends. The command finds the socket directory in GARDE_TEST_POSTGRES and
# creates the databases it needs (one per test).
#
#   tests/postgres/with_postgres.sh build/tests/garde_e2e_tests
#   PG_EXTRA="-c shared_preload_libraries=pg_stat_statements" tests/postgres/with_postgres.sh ...
#                                             (more server settings, for a measurement)
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "with_postgres.sh: PostgreSQL is not installed (apt-get install postgresql)" >&2
  exit 2
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/garde-pg.XXXXXX")
chmod 0755 "$dir"
as_server=()
if [ "$(id -u)" -eq 0 ]; then
  # The server refuses to run as root: Debian's package made the postgres user.
  chown postgres: "$dir"
  as_server=(runuser -u postgres --)
fi

stop() {
  "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT

"${as_server[@]}" "$bin/initdb" -D "$dir/data" --no-locale -E UTF8 -A trust -U garde >/dev/null
# fsync stays on: the tests' durability claims are PostgreSQL's real ones. After a crash the
# server syncs its data directory before recovery: file by file (the default) that took more
# than 50 s for a suite's thousands of files on a busy disk; one syncfs(2) does the same.
settings="-k $dir -c listen_addresses= -c max_connections=400 -c shared_buffers=64MB"
settings+=" -c recovery_init_sync_method=syncfs ${PG_EXTRA:-}"
"${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$settings" \
  start >/dev/null

# For fault tests: stop, crash (immediate: no checkpoint, WAL buffers not written) and start
# the same server (tests/postgres/test_database.h).
printf '%s\n' "$(printf '%q ' "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop)" \
  > "$dir/stop"
printf '%s\n' \
  "$(printf '%q ' "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop)" \
  > "$dir/crash"
# A start after a crash recovers first: given longer than the first start.
printf '%s\n' "$(printf '%q ' "${as_server[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
  -w -t 180 -o "$settings" start)" > "$dir/start"

export GARDE_TEST_POSTGRES="$dir"
status=0
"$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- PostgreSQL server log (last 40 lines) ---" >&2
  tail -40 "$dir/server.log" >&2 || true
fi
exit "$status"
