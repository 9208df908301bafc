#!/usr/bin/env bash
# Installs the Debian 12 packages a task needs, only those that are missing.
# Usage: scripts/install-deps.sh build|test|fuzz|demo ...   (runs apt-get as root, or through sudo)
set -euo pipefail

build=(g++ cmake ninja-build pkg-config libasio-dev libtomlplusplus-dev prometheus-cpp-dev
       libcli11-dev libfmt-dev nlohmann-json3-dev)
# Tests start real peers: nginx as the front end, curl as its client,
# promtool (in Debian's prometheus package) to lint a real scrape, and the
# sample workers' runtimes (python3; perl with libscgi-perl for hello.pl).
test=(catch2 nginx-light curl prometheus python3 libscgi-perl)
fuzz=(clang libclang-rt-14-dev)
# The demo runs a pool of the Python sample worker.
demo=(python3)

wanted=()
for group in "$@"; do
  case "$group" in
    build) wanted+=("${build[@]}") ;;
    test) wanted+=("${build[@]}" "${test[@]}") ;;
    fuzz) wanted+=("${build[@]}" "${fuzz[@]}") ;;
    demo) wanted+=("${build[@]}" "${demo[@]}") ;;
    *) echo "install-deps: unknown group '$group' (build, test, fuzz, demo)" >&2; exit 2 ;;
  esac
done

missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing missing Debian packages: ${missing[*]}" >&2
as_root=()
[ "$(id -u)" -eq 0 ] || as_root=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
