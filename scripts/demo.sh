#!/usr/bin/env bash
# The main job, as a demo: scgi-manager supervising a pool of 4 sample SCGI
# workers and a pool of 2 Python workers, balancing each behind its own
# address, with Prometheus metrics and the control socket. A short load run
# goes through it while one worker is killed (and replaced), then
# `scgictl status` shows the pools, and it keeps serving until Ctrl-C.
# This is the README's run command. `--once` stops after the status.
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[ "${1:-}" = "--once" ] && once=true

scripts/install-deps.sh demo
cmake --preset release -DSCGI_BUILD_TESTS=OFF >/dev/null
cmake --build --preset release -j "$(nproc)" \
  --target scgi-proxy scgi-manager scgictl scgi-sample-worker scgi-load
bin=build/bin

echo "== Checking the example configurations" >&2
"$bin/scgi-manager" --check --config deploy/examples/scgi.toml
"$bin/scgi-proxy" --check --config deploy/examples/proxy.toml

# Ports of the demo; override with SCGI_DEMO_PORT / SCGI_DEMO_METRICS_PORT.
port=${SCGI_DEMO_PORT:-4000}
metrics_port=${SCGI_DEMO_METRICS_PORT:-9100}
state=$(mktemp -d /tmp/scgi-demo.XXXXXX)
pids=()
stop_all() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$state"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

wait_for_port() {  # host port: up to 10 s
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1:$2 after 10 s; see the logs in $state" >&2
  return 1
}

cat >"$state/scgi.toml" <<TOML
[manager]
control_socket = "$state/scgi.sock"
log_dir = "$state/logs"

[proxy]
access_log = "$state/access.log"

[metrics]
listen = "127.0.0.1:$metrics_port"

[[pool]]
name = "demo"
listen = "127.0.0.1:$port"
command = ["$PWD/$bin/scgi-sample-worker"]
workers = 4
# The demo's workers run as whoever runs it; under root that takes this.
allow_root = true
max_requests = 5000

[[pool]]
name = "python"
listen = "127.0.0.1:$((port + 1))"
command = ["python3", "$PWD/deploy/examples/workers/hello.py"]
workers = 2
env = { PATH = "/usr/local/bin:/usr/bin:/bin" }
allow_root = true
TOML
"$bin/scgi-manager" --config "$state/scgi.toml" 2>"$state/manager.log" &
manager=$!
pids+=($manager)
wait_for_port 127.0.0.1 "$port"
wait_for_port 127.0.0.1 $((port + 1))
ctl=("$bin/scgictl" --socket "$state/scgi.sock")
for _ in $(seq 100); do  # every worker ready, up to 10 s
  [ "$("${ctl[@]}" --json status 2>/dev/null | grep -o '"state":"ready"' | wc -l)" -ge 6 ] && break
  sleep 0.1
done

echo "== 3 s of load through pool demo: 98 % fast requests, 2 % that take 20 ms;" >&2
echo "   one worker is killed with SIGKILL after 1 s and replaced by the manager" >&2
"$bin/scgi-load" --connect "127.0.0.1:$port" --connections 16 --duration 3s \
  --mix "98:/fast;2:/slow?sleep_ms=20" &
load=$!
sleep 1
victim=$("${ctl[@]}" --json status demo | grep -o '"pid":[1-9][0-9]*' | head -n 1 | cut -d: -f2 || true)
[ -n "$victim" ] && kill -KILL "$victim"
wait "$load"
echo "== 200 requests to pool python" >&2
"$bin/scgi-load" --connect "127.0.0.1:$((port + 1))" --connections 4 --requests 200 |
  grep -E '^(requests|throughput)'
sleep 0.5

echo "== scgictl status" >&2
"${ctl[@]}" status

echo "== A few of the metrics at http://127.0.0.1:$metrics_port/metrics" >&2
exec 3<>"/dev/tcp/127.0.0.1/$metrics_port"
printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
grep -E '^scgi_(requests_total|workers|worker_restarts_total)[{]' <&3 | grep -v ' 0$' || true
exec 3<&-

$once && exit 0
cat >&2 <<TEXT

scgi-manager is serving pool "demo" on 127.0.0.1:$port (4 sample workers) and
pool "python" on 127.0.0.1:$((port + 1)) (2 Python workers); metrics on
http://127.0.0.1:$metrics_port/metrics. Try:
  $bin/scgi-load --connect 127.0.0.1:$port --connections 8 --duration 5s
  ${ctl[*]} status
  tail -f $state/logs/python.log $state/access.log
or put nginx in front (location / { include scgi_params; scgi_pass 127.0.0.1:$port; }).
Ctrl-C stops everything.
TEXT
wait "$manager"
