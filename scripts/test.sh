#!/usr/bin/env bash
# Builds everything and runs the whole test suite: the optimised build, then
# the same tests under AddressSanitizer + UndefinedBehaviorSanitizer.
# This is the README's test command, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test

jobs=$(nproc)
for preset in release asan; do
  echo "== $preset build" >&2
  cmake --preset "$preset" -DSCGI_BUILD_TESTS=ON >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  ctest --preset "$preset" -j "$jobs"
done
