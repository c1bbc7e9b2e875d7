#!/bin/sh
# The systemd unit judged by systemd's own tools: `systemd-analyze verify` must have nothing
# to say (directives, ExecStart), and `systemd-analyze security --offline` must rate its
# exposure 2.0 or better ("OK"). Usage: check_unit.sh UNIT GARDE_BINARY
set -eu
unit=$1
garde=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/bin/garde#$garde#" "$unit" > "$tmp/garde.service"
said=$(systemd-analyze verify "$tmp/garde.service" 2>&1) || { echo "$said"; exit 1; }
if [ -n "$said" ]; then
  echo "systemd-analyze verify: $said"
  exit 1
fi
if ! systemd-analyze security --offline=yes --threshold=20 "$tmp/garde.service" > "$tmp/security.txt" 2>&1; then
  cat "$tmp/security.txt"
  exit 1
fi
grep "Overall exposure level" "$tmp/security.txt"
