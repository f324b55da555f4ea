#!/usr/bin/env bash
# Install the Debian packages the tests and `taskstream dev` use, if they are missing.
# Java 17 and Maven fetch and run the Kafka broker; kcat is the raw consumer that
# the end-to-end tests read task-events with, as a non-Python user would.
set -euo pipefail
need=()
# promtool checks the services' /metrics and deploy/prometheus; Debian ships it in the
# prometheus package, whose server is stopped again at the end of this script.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn  >/dev/null 2>&1 || need+=(maven)
command -v kcat >/dev/null 2>&1 || need+=(kcat)
# Debian's chromium renders the dashboard, headless, in tests/e2e/test_dashboard.py.
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ "${#need[@]}" -eq 0 ]; then
  exit 0
fi
echo "installing Debian packages: ${need[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

# The prometheus package (installed above for promtool) enables and starts its server where
# an init system lets it (a Docker image's policy-rc.d does not): stop and disable it, so no
# stray Prometheus holds port 9090.
if [[ " ${need[*]} " == *" prometheus "* ]]; then
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  else
    $sudo service prometheus stop >/dev/null 2>&1 || true
    $sudo update-rc.d prometheus disable >/dev/null 2>&1 || true
  fi
fi
