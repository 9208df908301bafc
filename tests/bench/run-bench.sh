#!/usr/bin/env bash
# Benchmarks scgi-proxy against no proxy, HAProxy and nginx over the same 4
# sample workers, and measures its memory with idle connections and its
# instructions per request. Prints a Markdown report (for the README's
# performance section) and writes it to --out.
#
#   tests/bench/run-bench.sh [--mode all|throughput|idle|instructions[,...]]
#                            [--duration 10s] [--runs 3] [--out FILE]
#                            [--build-dir DIR] [--connections 16] [--keep-state]
#
# Installs what is missing (haproxy, libnginx-mod-stream, valgrind) with apt-get,
# builds scgi-proxy, scgi-sample-worker and scgi-load with the release preset
# (build/) unless --build-dir names another build tree, raises `ulimit -n`,
# then runs tests/bench/proxy_bench.py, which starts every process, records
# its PID and stops it by that PID. The EXIT trap here stops whatever is left.
# Every option not listed is passed on to proxy_bench.py (see its --help).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
targets=(scgi-proxy scgi-sample-worker scgi-load)

mode=all
build_dir=""
keep_state=0
passed=()
usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode=${2:?--mode needs a value}; passed+=("$1" "$2"); shift 2 ;;
    --build-dir) build_dir=${2:?--build-dir needs a directory}; shift 2 ;;
    --keep-state) keep_state=1; shift ;;
    -h|--help) usage; exit 0 ;;
    --*=*) passed+=("$1"); shift ;;
    --*) passed+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    *) echo "run-bench: unexpected argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# ---- Debian packages, only those missing ----
wanted=(python3 haproxy libnginx-mod-stream)
case ",$mode," in *,all,*|*,instructions,*) wanted+=(valgrind) ;; esac
missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run-bench: installing ${missing[*]}" >&2
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  export DEBIAN_FRONTEND=noninteractive
  "${as_root[@]}" apt-get update -q
  "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Packages may bring a system service (haproxy.service, nginx.service): we never
# use or touch them; every daemon here runs in the foreground on its own config.

# ---- The binaries ----
if [ -z "$build_dir" ]; then
  (cd "$repo" && cmake --preset release && cmake --build --preset release --target "${targets[@]}")
  bin_dir="$repo/build/bin"
else
  build_dir=$(cd "$build_dir" && pwd)
  if [ -f "$build_dir/CMakeCache.txt" ]; then
    cmake --build "$build_dir" --target "${targets[@]}"
  fi
  bin_dir="$build_dir/bin"
fi
for t in "${targets[@]}"; do
  [ -x "$bin_dir/$t" ] || { echo "run-bench: $bin_dir/$t is missing" >&2; exit 1; }
done

# ---- Limits: 10,000 idle connections need as many descriptors in the proxy and here ----
want_fds=65536
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want_fds" ]; then
  ulimit -Hn "$want_fds" 2>/dev/null || want_fds=$hard
fi
ulimit -Sn "$want_fds"

# ---- Run, and stop everything on the way out ----
state_dir=$(mktemp -d "${TMPDIR:-/tmp}/scgi-bench.XXXXXX")
bench_pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  # What proxy_bench.py started and could not stop itself (it lists live PIDs here).
  if [ -s "$state_dir/pids" ]; then
    while read -r pid; do
      if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; fi
    done <"$state_dir/pids"
    sleep 1
    while read -r pid; do
      if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    done <"$state_dir/pids"
  fi
  if [ "$keep_state" -eq 1 ] || [ "$status" -ne 0 ]; then
    echo "run-bench: logs and configurations kept in $state_dir" >&2
  else
    rm -rf "$state_dir"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "run-bench: $(uptime)" >&2
python3 "$here/proxy_bench.py" --bin-dir "$bin_dir" --state-dir "$state_dir" "${passed[@]}" &
bench_pid=$!
wait "$bench_pid"
