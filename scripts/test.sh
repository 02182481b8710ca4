#!/usr/bin/env bash
# Set-up, build and every test suite (GUI tests under a virtual X server).
# --sanitize: the same suites built into build-asan/ with AddressSanitizer
# and UndefinedBehaviorSanitizer; any report fails the suite that made it.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh || exit 1
builddir=build
extra=()
if [ "${1:-}" = "--sanitize" ]; then
  shift
  builddir=build-asan
  if [ ! -f build-asan/build.ninja ]; then
    meson setup build-asan --buildtype=debugoptimized -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || exit 1
  fi
  ninja -C build-asan || exit 1
  # fontconfig keeps its caches for the life of the process: its own leaks, not ours.
  export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_odr_violation=0"
  # The workbench draws with Cairo; where Mesa is installed, GTK would still
  # probe EGL when it opens the display, and Mesa's driver leaks a buffer
  # there (from a library it has unloaded, so no suppression can name it).
  export GDK_DEBUG=gl-disable
  export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1"
  extra=(--timeout-multiplier 4)
fi
runner=()
if command -v xvfb-run >/dev/null && [ -z "${DISPLAY:-}" ]; then
  runner=(xvfb-run -a -s "-screen 0 1600x1000x24")
fi
log=$(mktemp)
"${runner[@]}" meson test -C "$builddir" --print-errorlogs "${extra[@]}" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
ok=$(awk '/^Ok:/ {print $2}' "$log")
fail=$(awk '/^Fail:/ {print $2}' "$log")
timeout=$(awk '/^Timeout:/ {print $2}' "$log")
skipped=$(awk '/^Skipped:/ {print $2}' "$log")
rm -f "$log"
echo "suites ($builddir): ${ok:-0} passed, $(( ${fail:-0} + ${timeout:-0} )) failed, ${skipped:-0} skipped"
exit "$rc"
