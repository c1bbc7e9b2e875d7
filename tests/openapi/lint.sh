#!/usr/bin/env bash
# Fetches GET /openapi.json from a real `garde serve` and lints it with Redocly's CLI
# (@redocly/cli, recommended rules): any error fails; warnings are printed.
#   tests/openapi/lint.sh path/to/garde
set -euo pipefail
GARDE=$1
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/garde-openapi.XXXXXX)
trap 'kill "${PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$GARDE" init --data-dir "$WORK/data" > /dev/null
# The files exist before the background job opens them: the first look must not fail.
: > "$WORK/out"
: > "$WORK/err"
"$GARDE" serve --data-dir "$WORK/data" --listen 127.0.0.1:0 > "$WORK/out" 2> "$WORK/err" &
PID=$!
for _ in $(seq 200); do
  PORT=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$WORK/out" || true)
  [ -n "$PORT" ] && break
  sleep 0.1
done
[ -n "$PORT" ] || { cat "$WORK/err"; exit 1; }
curl -sf "http://127.0.0.1:$PORT/openapi.json" > "$WORK/openapi.json"
cd "$HERE"
REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
  node_modules/.bin/redocly lint "$WORK/openapi.json" --format=summary
