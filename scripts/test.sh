#!/usr/bin/env bash
# Set-up, build and every test suite (GUI tests under a virtual X server).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
if command -v xvfb-run >/dev/null && [ -z "${DISPLAY:-}" ]; then
  exec xvfb-run -a -s "-screen 0 1600x1000x24" meson test -C build --print-errorlogs "$@"
fi
exec meson test -C build --print-errorlogs "$@"
