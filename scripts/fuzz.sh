#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz, one after another, for SECONDS
# each (60 by default), under ASan and UBSan, and prints a table: runs,
# executions, coverage and findings. Findings (crash-, leak-, timeout-,
# oom- files) land in build-fuzz/fuzz-findings/TARGET/; once fixed, a
# finding goes to tests/fuzz/regressions/TARGET/, which the test suite replays.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET ...]
set -uo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
SNN_FUZZING=1 ./scripts/bootstrap.sh --deps-only || exit 1
if [ ! -f build-fuzz/build.ninja ]; then
  CC=clang meson setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
    -Dgui=disabled --buildtype=debugoptimized >/dev/null || exit 1
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(npy npz model-json experiment-json idx cifar aedat3 aedat2 nmnist frame-cache)
fi
ninja -C build-fuzz "${targets[@]/#/tests/fuzz/fuzz-}" >/dev/null || exit 1

# One thread: the readers do not use more, and spinning OpenMP workers would
# only take time from the fuzzer.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 SNNWB_THREADS=1
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
found=0
rows=()
for t in "${targets[@]}"; do
  corpus=build-fuzz/fuzz-corpus/$t
  findings=build-fuzz/fuzz-findings/$t
  mkdir -p "$corpus" "$findings"
  log=build-fuzz/fuzz-$t.log
  # The working corpus grows across runs; the committed seeds stay as they are.
  build-fuzz/tests/fuzz/fuzz-$t -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" "tests/fuzz/corpus/$t" >"$log" 2>&1
  rc=$?
  execs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | awk '{print $2}')
  rate=$(awk '/stat::average_exec_per_sec/ {print $NF}' "$log" | tail -1)
  n=$(find "$findings" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  [ "$rc" -ne 0 ] && [ "$n" -eq 0 ] && n="rc=$rc"
  [ "$n" != 0 ] && found=1
  rows+=("$(printf '%-16s %8ss %12s %10s %8s %s' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$n")")
  echo "$t: ${execs:-?} executions, coverage ${cov:-?}, findings $n" >&2
done
printf '%-16s %9s %12s %10s %8s %s\n' target time executions exec/s coverage findings
printf '%s\n' "${rows[@]}"
exit $found
