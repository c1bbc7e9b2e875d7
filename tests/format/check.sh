#!/usr/bin/env bash
# Fails when a C++ source of the repository is not as clang-format (.clang-format) writes it,
# naming each place. Fix with: git ls-files '*.cc' '*.h' | xargs clang-format -i
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v clang-format > /dev/null || { echo "clang-format is not installed" >&2; exit 2; }
files=$(git ls-files '*.cc' '*.h')
[ -n "$files" ] || { echo "no sources found (not a git checkout?)" >&2; exit 2; }
echo "$files" | xargs clang-format --dry-run -Werror
echo "$(echo "$files" | wc -l) sources formatted as .clang-format says"
