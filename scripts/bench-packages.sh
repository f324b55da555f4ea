#!/usr/bin/env bash
# Install the Debian packages the peer benchmarks (bench/peers/) use, if they are missing.
# Celery and Dramatiq run against Debian's redis-server. Each benchmark starts its own
# server on a free port (no persistence) as a child process and stops it afterwards, so
# the system service that the package enables is stopped and disabled here.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

# The package starts redis on port 6379 where an init system lets it (a Docker image's
# policy-rc.d does not): stop and disable it, so no stray server keeps running.
if [[ " ${need[*]} " == *" redis-server "* ]]; then
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
  else
    $sudo service redis-server stop >/dev/null 2>&1 || true
    $sudo update-rc.d redis-server disable >/dev/null 2>&1 || true
  fi
fi
