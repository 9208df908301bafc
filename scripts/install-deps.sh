#!/usr/bin/env bash
# Installs the Debian 12 packages a task needs, only those that are missing.
# Usage: scripts/install-deps.sh build|test|fuzz|demo|docs ...   (runs apt-get as root, or through sudo)
set -euo pipefail

# libsystemd-dev: both daemons tell systemd when they are ready (sd_notify).
build=(g++ cmake ninja-build pkg-config libasio-dev libtomlplusplus-dev prometheus-cpp-dev
       libcli11-dev libfmt-dev nlohmann-json3-dev libc-ares-dev libsystemd-dev)
# Tests start real peers: nginx, Apache and lighttpd as front ends, curl as
# their client, Prometheus (promtool, and a real server for the dashboard's
# queries), dnsmasq as the DNS server that discovery follows, systemd's
# systemd-analyze for the units, python3-yaml for the Kubernetes manifests,
# the sample workers' runtimes (python3; perl with libscgi-perl), third-party
# SCGI servers run as pools (uWSGI with its python3, psgi and rack plugins;
# ruby-rack, which the rack plugin needs to read a config.ru; libscgi-perl),
# and debootstrap with systemd-nspawn to install the package into a Debian 12
# booted under systemd.
test=(catch2 nginx-light apache2 lighttpd curl prometheus dnsmasq systemd dpkg-dev
      python3 python3-yaml libscgi-perl uwsgi-core uwsgi-plugin-python3 uwsgi-plugin-psgi
      uwsgi-plugin-rack-ruby3.1 ruby-rack debootstrap systemd-container)
fuzz=(clang libclang-rt-14-dev)
# The demo runs a pool of the Python sample worker.
demo=(python3)
# docs/dashboard.png is drawn from real query results with matplotlib.
docs=(python3 python3-matplotlib)

wanted=()
for group in "$@"; do
  case "$group" in
    build) wanted+=("${build[@]}") ;;
    test) wanted+=("${build[@]}" "${test[@]}") ;;
    fuzz) wanted+=("${build[@]}" "${fuzz[@]}") ;;
    demo) wanted+=("${build[@]}" "${demo[@]}") ;;
    docs) wanted+=("${build[@]}" "${test[@]}" "${docs[@]}") ;;
    *) echo "install-deps: unknown group '$group' (build, test, fuzz, demo, docs)" >&2; exit 2 ;;
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
