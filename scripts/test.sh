#!/usr/bin/env bash
# Set-up, build and every test suite (GUI tests under a virtual X server).
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh || exit 1
runner=()
if command -v xvfb-run >/dev/null && [ -z "${DISPLAY:-}" ]; then
  runner=(xvfb-run -a -s "-screen 0 1600x1000x24")
fi
log=$(mktemp)
"${runner[@]}" meson test -C build --print-errorlogs "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
ok=$(awk '/^Ok:/ {print $2}' "$log")
fail=$(awk '/^Fail:/ {print $2}' "$log")
timeout=$(awk '/^Timeout:/ {print $2}' "$log")
skipped=$(awk '/^Skipped:/ {print $2}' "$log")
rm -f "$log"
echo "suites: ${ok:-0} passed, $(( ${fail:-0} + ${timeout:-0} )) failed, ${skipped:-0} skipped"
exit "$rc"
