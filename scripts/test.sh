#!/usr/bin/env bash
# Builds everything and runs the whole test suite: the optimised build, then
# the same tests under AddressSanitizer + UndefinedBehaviorSanitizer, then
# under ThreadSanitizer. This is the README's test command, and what CI runs.
# Each phase prints how long it took ("== tsan build: 412s"), so that the
# run's cost can be followed (CI has 2 cores and 30 minutes for all of it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test

jobs=$(nproc)
started=$SECONDS
timings=()

# Runs "$@" as the phase named $1 and records its elapsed time.
phase() {
  local name=$1 begin=$SECONDS
  shift
  echo "== $name" >&2
  "$@"
  timings+=("$name: $((SECONDS - begin))s")
  [ "$name" = "tsan tests" ] || echo "== $name: $((SECONDS - begin))s (total $((SECONDS - started))s)" >&2
}

for preset in release asan tsan; do
  phase "$preset configure" cmake --preset "$preset" -DSCGI_BUILD_TESTS=ON >/dev/null
  phase "$preset build" cmake --build --preset "$preset" -j "$jobs"
  # The run ends with CTest's summary line: the times so far go before the last tests.
  [ "$preset" = tsan ] && printf '== %s\n' "${timings[@]}" "total before tsan tests: $((SECONDS - started))s" >&2
  phase "$preset tests" ctest --preset "$preset" -j "$jobs"
done
