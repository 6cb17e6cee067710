#!/usr/bin/env bash
# Checks the Prometheus rule files and runs their unit tests.
#   deploy/prometheus/test.sh            (from anywhere)
# Needs promtool (Debian/Ubuntu: apt-get install prometheus; or
# go install github.com/prometheus/prometheus/cmd/promtool@latest).
# Set PROMTOOL to use a specific binary. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")"

promtool=${PROMTOOL:-promtool}
if ! command -v "$promtool" >/dev/null 2>&1; then
  echo "promtool not found: install it (apt-get install prometheus) or set PROMTOOL" >&2
  exit 127
fi

"$promtool" --version 2>&1 | head -n 1
"$promtool" check rules recording_rules.yml alerts.yml
"$promtool" test rules tests/*.yml
