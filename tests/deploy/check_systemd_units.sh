#!/usr/bin/env bash
# Checks deploy/systemd/*.service with systemd's own tools:
#  - `systemd-analyze verify`: the units parse, every directive is known, the
#    binaries they run exist and are executable. verify only warns about an
#    unknown directive (exit 0), so any output at all fails this check too.
#  - `systemd-analyze security --offline`: the sandbox is as tight as claimed
#    (an overall exposure at or below the given level, 0-100).
# verify checks the binaries the Exec lines run, so the units are copied with
# /usr/bin/scgi-* and scgictl pointed at the built binaries; nothing else is
# changed.
# Usage: check_systemd_units.sh UNIT_DIR MANAGER_BIN PROXY_BIN SCGICTL_BIN MANAGER_MAX_EXPOSURE PROXY_MAX_EXPOSURE
set -euo pipefail

unit_dir=$1 manager_bin=$2 proxy_bin=$3 scgictl_bin=$4 manager_max=$5 proxy_max=$6
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for unit in scgi-manager.service scgi-proxy.service; do
  [ -f "$unit_dir/$unit" ] || { echo "FAIL: $unit_dir/$unit is missing"; exit 1; }
  sed -e "s#/usr/bin/scgi-manager\\b#$manager_bin#g" -e "s#/usr/bin/scgi-proxy\\b#$proxy_bin#g" \
    -e "s#/usr/bin/scgictl\\b#$scgictl_bin#g" "$unit_dir/$unit" > "$work/$unit"
done
# The substitution must have happened, or verify would check /usr/bin.
grep -q "^ExecStart=$manager_bin " "$work/scgi-manager.service"
grep -q "^ExecStart=$proxy_bin " "$work/scgi-proxy.service"
grep -q "^ExecReload=$scgictl_bin " "$work/scgi-manager.service"

status=0
for unit in scgi-manager.service scgi-proxy.service; do
  set +e
  output=$(cd "$work" && systemd-analyze verify --man=no "./$unit" 2>&1)
  code=$?
  set -e
  if [ $code -ne 0 ] || [ -n "$output" ]; then
    echo "FAIL: systemd-analyze verify $unit (exit $code):"
    echo "$output"
    status=1
  else
    echo "ok: systemd-analyze verify $unit: no error, no warning"
  fi
done

# What the units promise (issue 6): started as a plain process that tells
# systemd when it serves (issue 16: Type=notify, sd_notify), /run/scgi for
# the manager's control socket, a dedicated user. Reloaded with nothing from
# outside the package and the essential packages (issue 15: /bin/kill is
# procps'): the manager through scgictl, which fails the reload on a bad file;
# the proxy checked, then sent SIGHUP by sh's own kill.
require() {
  local unit=$1 line=$2
  if grep -qxF "$line" "$work/$unit"; then
    echo "ok: $unit has $line"
  else
    echo "FAIL: $unit lacks the line $line"
    status=1
  fi
}
for unit in scgi-manager.service scgi-proxy.service; do
  require "$unit" 'Type=notify'
  require "$unit" 'KillMode=mixed'
  require "$unit" 'NoNewPrivileges=yes'
  require "$unit" 'ProtectSystem=strict'
  require "$unit" 'ProtectHome=yes'
  require "$unit" 'PrivateTmp=yes'
done
require scgi-manager.service 'RuntimeDirectory=scgi'
require scgi-manager.service "ExecReload=$scgictl_bin --config /etc/scgi/scgi.toml reload"
require scgi-proxy.service "ExecReload=$proxy_bin --check --config /etc/scgi/proxy.toml"
# shellcheck disable=SC2016  # $$MAINPID is systemd's, literally in the unit
require scgi-proxy.service 'ExecReload=/bin/sh -c '\''kill -HUP "$$MAINPID"'\'
require scgi-proxy.service 'User=scgi'
# Descriptors for full queues (issue 12): the manager raises its soft limit
# itself and gives workers the soft one back; the proxy may not call setrlimit.
require scgi-manager.service 'LimitNOFILE=1024:524288'
require scgi-proxy.service 'LimitNOFILE=524288'

check_exposure() {
  local unit=$1 limit=$2 summary
  summary=$(cd "$work" && { systemd-analyze security --offline=yes "./$unit" 2>&1 | grep 'Overall exposure level' || true; })
  if (cd "$work" && systemd-analyze security --offline=yes --threshold="$limit" "./$unit" >/dev/null 2>&1); then
    echo "ok: $unit ${summary#*: } (limit $limit/100)"
  else
    echo "FAIL: $unit is more exposed than $limit/100: ${summary:-no summary}"
    status=1
  fi
}
check_exposure scgi-manager.service "$manager_max"
check_exposure scgi-proxy.service "$proxy_max"
exit $status
