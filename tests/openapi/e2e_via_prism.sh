#!/usr/bin/env bash
# Runs end-to-end suites with Prism's validating proxy (@stoplight/prism-cli) judging every
# exchange: the harness (tests/e2e/garde_process.cc) sends each request to the test's garde,
# then the same request to one Prism, whose upstream (relay.mjs) answers with garde's very
# answer; a response Prism finds at odds with api/openapi.json fails the test. Request
# violations are expected where tests send bad input.
#   tests/openapi/e2e_via_prism.sh build/tests/garde_e2e_tests 'Suite.*:Other.*'
set -euo pipefail
E2E=$1
FILTER=${2:-*}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d /tmp/garde-e2e-prism.XXXXXX)
trap 'kill ${RELAY:-} ${PRISM:-} 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
: > "$WORK/relay"
node "$HERE/relay.mjs" > "$WORK/relay" 2>&1 &
RELAY=$!
for _ in $(seq 100); do
  RPORT=$(sed -n 's/^relay listening \([0-9]*\)$/\1/p' "$WORK/relay")
  [ -n "$RPORT" ] && break
  sleep 0.1
done
[ -n "$RPORT" ] || { cat "$WORK/relay"; exit 1; }
# Prism takes a port number: one found free may be bound by another process before Prism
# binds it, so a Prism that exits without listening is started again on another.
for _ in 1 2 3; do
  PPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  : > "$WORK/prism"
  NO_COLOR=1 "$HERE/node_modules/.bin/prism" proxy "$HERE/../../api/openapi.json" \
    "http://127.0.0.1:$RPORT" -p "$PPORT" -h 127.0.0.1 > "$WORK/prism" 2>&1 &
  PRISM=$!
  for _ in $(seq 300); do
    grep -q "Prism is listening" "$WORK/prism" && break
    kill -0 "$PRISM" 2>/dev/null || break
    sleep 0.1
  done
  grep -q "Prism is listening" "$WORK/prism" && break
  kill "$PRISM" 2>/dev/null || true
  wait "$PRISM" 2>/dev/null || true
done
grep -q "Prism is listening" "$WORK/prism" || { cat "$WORK/prism"; exit 1; }
GARDE_E2E_PRISM_PORT=$PPORT "$E2E" --gtest_filter="$FILTER"
