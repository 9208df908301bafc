#!/usr/bin/env bash
# The main job, as a demo: 4 sample SCGI workers behind scgi-proxy, with
# Prometheus metrics, a short load run through it, then it keeps serving until
# Ctrl-C. This is the README's run command. `--once` stops after the load run.
set -euo pipefail
cd "$(dirname "$0")/.."
once=false
[ "${1:-}" = "--once" ] && once=true

scripts/install-deps.sh build
cmake --preset release -DSCGI_BUILD_TESTS=OFF >/dev/null
cmake --build --preset release -j "$(nproc)" \
  --target scgi-proxy scgi-manager scgi-sample-worker scgi-load
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

backends=()
for i in 1 2 3 4; do
  worker_port=$((port + 1000 + i))
  "$bin/scgi-sample-worker" --port "$worker_port" --name "worker-$i" >"$state/worker-$i.log" 2>&1 &
  pids+=($!)
  backends+=("\"127.0.0.1:$worker_port\"")
done
cat >"$state/demo.toml" <<TOML
[proxy]
access_log = "$state/access.log"

[metrics]
listen = "127.0.0.1:$metrics_port"

[[pool]]
name = "demo"
listen = "127.0.0.1:$port"
backends = [$(IFS=,; echo "${backends[*]}")]
concurrency = 1
TOML
for i in 1 2 3 4; do wait_for_port 127.0.0.1 $((port + 1000 + i)); done
"$bin/scgi-proxy" --config "$state/demo.toml" 2>"$state/proxy.log" &
pids+=($!)
wait_for_port 127.0.0.1 "$port"

echo "== 3 s of load through the proxy: 98 % fast requests, 2 % that take 20 ms" >&2
"$bin/scgi-load" --connect "127.0.0.1:$port" --connections 16 --duration 3s \
  --mix "98:/fast;2:/slow?sleep_ms=20"

echo "== A few of the metrics at http://127.0.0.1:$metrics_port/metrics" >&2
exec 3<>"/dev/tcp/127.0.0.1/$metrics_port"
printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
grep -E '^scgi_(requests_total|requests_in_flight|queue_length|backend_up)' <&3 || true
exec 3<&-

$once && exit 0
cat >&2 <<TEXT

scgi-proxy is serving pool "demo" on 127.0.0.1:$port (4 workers), metrics on
http://127.0.0.1:$metrics_port/metrics. Try:
  $bin/scgi-load --connect 127.0.0.1:$port --connections 8 --duration 5s
  tail -f $state/access.log
or put nginx in front (location / { include scgi_params; scgi_pass 127.0.0.1:$port; }).
Ctrl-C stops everything.
TEXT
wait "${pids[-1]}"
