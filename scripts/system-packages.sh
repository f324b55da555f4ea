#!/usr/bin/env bash
# Install the Debian packages the tests and `taskstream dev` use, if they are missing.
# Java 17 and Maven fetch and run the Kafka broker; kcat is the raw consumer that
# the end-to-end tests read task-events with, as a non-Python user would.
set -euo pipefail
need=()
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
