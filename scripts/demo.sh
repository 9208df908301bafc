#!/usr/bin/env bash
# Builds the binaries and runs the main job on the example configuration.
# This is the README's run command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build

cmake --preset release -DSCGI_BUILD_TESTS=OFF >/dev/null
cmake --build --preset release -j "$(nproc)"

echo "== Checking the example configurations" >&2
build/bin/scgi-manager --check --config deploy/examples/scgi.toml
build/bin/scgi-proxy --check --config deploy/examples/proxy.toml
