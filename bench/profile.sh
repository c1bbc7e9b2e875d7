#!/usr/bin/env bash
# Where one operation's CPU goes, or where its threads wait: `perf record` of the SQLite node for
# a few seconds in the middle of a wrk round (2 threads × 64 connections) on a fresh copy of one
# seeded vault, then the shares by library and the top symbols (--what cpu), or the number of
# times a thread was switched out a request, how and where (--what switches: the sched_switch
# tracepoint, its user-space stack). Needs perf (Debian: linux-perf) and the right to trace the
# node (root, or kernel.perf_event_paranoid ≤ 1).
#
#   bench/profile.sh [--op post_consent] [--what cpu|switches] [--subjects 20000] [--seconds 6]
set -euo pipefail
cd "$(dirname "$0")/.."
OP=post_consent WHAT=cpu SUBJECTS=20000 SECONDS_RECORDED=6
while [ $# -gt 0 ]; do
  case "$1" in
    --op) OP=$2; shift 2 ;;
    --what) WHAT=$2; shift 2 ;;
    --subjects) SUBJECTS=$2; shift 2 ;;
    --seconds) SECONDS_RECORDED=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
command -v perf > /dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 2; }
PORT=18298
. bench/sqlite_node.sh

start_sqlite_node "$BUILD/garde"
DATA=$WORK/perf.data
case "$WHAT" in
  cpu) EVENT=(-F 999 -g --call-graph dwarf,16384) ;;
  switches) EVENT=(-e sched:sched_switch -g --call-graph dwarf,8192) ;;
  *) echo "--what cpu or switches" >&2; exit 2 ;;
esac
wrk -t2 -c64 -d$(( SECONDS_RECORDED + 6 ))s -s "bench/$OP.lua" "http://127.0.0.1:$PORT" \
  > "$WORK/wrk.out" &
WRK=$!
sleep 3
perf record "${EVENT[@]}" -p "$GARDE_PID" -o "$DATA" -- sleep "$SECONDS_RECORDED" \
  2> "$WORK/perf.err" > /dev/null || { cat "$WORK/perf.err" >&2; kill "$WRK"; exit 1; }
wait "$WRK"
stop_sqlite_node
grep '^RESULT' "$WORK/wrk.out"
rps=$(sed -nE 's/^RESULT rps=([0-9]+).*/\1/p' "$WORK/wrk.out")

if [ "$WHAT" = cpu ]; then
  echo "== share of the node's CPU by library"
  perf report -i "$DATA" --no-children --sort dso --stdio -g none 2> /dev/null | grep '%' | head -8
  echo "== symbols, with what they call (children), over 2 %"
  perf report -i "$DATA" --children --sort symbol --stdio -g none 2> /dev/null |
    awk '/%/ && $1+0 >= 2 && !/inlined/' | cut -c1-140 | head -60
else
  # Each switch by its first user-space frame past the futex (how: a condition variable, a
  # mutex taken again after a wake, a preemption in a signal …) and its first frame in garde
  # (where; Work is a worker waiting for a request). The tracepoint counts every switch, the
  # involuntary ones too.
  echo "== a thread was switched out, per request: how, in which garde frame"
  perf script -i "$DATA" -F comm,ip,sym 2> /dev/null | awk -v n="$(( rps * SECONDS_RECORDED ))" '
    NF == 1 { if (where != "") count[comm " " how " in " where]++; comm = $1; where = how = ""; next }
    how == "" && $1 ~ /^[0-9a-f]+$/ && $1 !~ /^ffffffff/ && $2 !~ /futex/ { how = $2 }
    where == "" && $1 ~ /^[0-9a-f]+$/ && ($2 ~ /^garde::/ || $2 == "Work") { where = $2 }
    END {
      if (where != "") count[comm " " how " in " where]++
      for (k in count) printf "%6.2f  %s\n", count[k] / (n > 0 ? n : 1), k
    }' | sort -rn | head -15
fi
