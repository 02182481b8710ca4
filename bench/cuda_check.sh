#!/bin/sh
# The CUDA backend on a GPU machine, in one run: build with CUDA, the op
# tests and the golden cases on the GPU, snnwb bench for vgg-bench, vgg11-bn
# and resnet18 at T = 6 (BPTT, SLTT, SLTT-K) against the cuBLAS SGEMM
# ceiling, device memory at T = 1 and 16, and one epoch of conv-small on the
# GPU against the CPU. Writes REPORT_DIR/report.md and the raw outputs.
#
#   bench/cuda_check.sh REPORT_DIR
#
# Environment: BUILD (build folder, default build-cuda), JOBS (default: all
# cores), FMNIST (Fashion-MNIST folder; default the system one; without it
# the accuracy check is reported as not run). Made to finish in under eight
# minutes on one H200 with 16 cores.
set -u
[ $# -eq 1 ] || { echo "usage: $0 REPORT_DIR" >&2; exit 2; }
OUT=$1
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.." || exit 2
BUILD=${BUILD:-build-cuda}
JOBS=${JOBS:-$(nproc)}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
REPORT=$OUT/report.md
SNNWB=$BUILD/app/snnwb
status=0
t_start=$(date +%s)

say () { printf '%s\n' "$*" >> "$REPORT"; }
fail () { say "**FAILED:** $*"; status=1; }
# Runs a step under a time limit, its output kept in OUT/NAME.log.
step () {
  name=$1 limit=$2; shift 2
  t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  say "- \`$*\`: exit $rc in $(( $(date +%s) - t0 )) s (log: $name.log)"
  return $rc
}

: > "$REPORT"
say "# CUDA check, $(date -u '+%Y-%m-%d %H:%M UTC')"
say ""
say "Machine: $(nproc) cores; $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
say "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
nvcc=$(command -v nvcc || echo "${CUDA_PATH:-/usr/local/cuda}/bin/nvcc")
say "nvcc: $("$nvcc" --version 2>/dev/null | tail -1 || echo 'not found')"
say ""
say "## Build"
if [ -d "$BUILD" ]; then
  step setup 120 meson setup --reconfigure "$BUILD" -Dcuda=enabled -Dgui=disabled --buildtype=release
else
  step setup 120 meson setup "$BUILD" -Dcuda=enabled -Dgui=disabled --buildtype=release
fi || { fail "meson setup (see setup.log)"; exit 1; }
step build 300 ninja -C "$BUILD" -j "$JOBS" || { fail "build (see build.log)"; exit 1; }
step version 30 "$SNNWB" --version
say '```'; cat "$OUT/version.log" >> "$REPORT"; say '```'

say ""
say "## Op tests and golden cases on the GPU"
# A skipped CUDA case means no device was usable: here that is a failure.
for t in test-backend-ops test-golden; do
  step "$t" 120 env SNN_SOURCE_ROOT="$PWD" SNNWB_THREADS="$JOBS" "$BUILD/tests/$t" || fail "$t"
  ok=$(grep -c '^ok .*/cuda/' "$OUT/$t.log"); skip=$(grep -c '^ok .*/cuda/.*# SKIP' "$OUT/$t.log")
  notok=$(grep -c '^not ok\|Bail out' "$OUT/$t.log")
  say "  - $t: $((ok - skip)) cuda cases passed, $skip skipped, $notok failed"
  [ "$skip" -eq 0 ] && [ "$ok" -gt 0 ] || fail "$t: the CUDA cases did not all run"
done
grep -m3 'FATAL\|differs' "$OUT"/test-*.log >> "$REPORT" 2>/dev/null

say ""
say "## Speed: snnwb bench --backend cuda, T = 6"
step bench 240 env SNNWB_THREADS="$JOBS" "$SNNWB" bench --backend cuda --net vgg-bench,vgg11-bn,resnet18 --T 6 \
  --methods bptt,sltt,sltt_k --steps 10 --warmup 3 --csv "$OUT/bench.csv" || fail "bench"
say '```'; cat "$OUT/bench.log" >> "$REPORT"; say '```'
# vgg11-bn's best method against the ceiling measured in the same run.
share=$(awk -F, '$1 == "vgg11-bn" { if ($10 > m) m = $10 } END { printf "%.3f", m }' "$OUT/bench.csv" 2>/dev/null)
say "vgg11-bn: largest share of the SGEMM ceiling: $share (wanted >= 0.40)"
awk -v s="${share:-0}" 'BEGIN { exit !(s >= 0.40) }' || fail "vgg11-bn below 40 % of the SGEMM ceiling"
step bench-cpu 120 env SNNWB_THREADS="$JOBS" "$SNNWB" bench --backend cpu --net vgg-bench --T 6 --methods sltt \
  --steps 3 --warmup 1 --csv "$OUT/bench-cpu.csv"
cpu_ms=$(awk -F, 'NR == 2 { print $6 }' "$OUT/bench-cpu.csv" 2>/dev/null)
gpu_ms=$(awk -F, '$1 == "vgg-bench" && $2 == "sltt" { print $6 }' "$OUT/bench.csv" 2>/dev/null)
say "vgg-bench SLTT step: CPU ($JOBS threads) ${cpu_ms:-?} ms, GPU ${gpu_ms:-?} ms"

say ""
say "## Device memory at T = 1 and 16 (vgg11-bn)"
step memory 150 env SNNWB_THREADS="$JOBS" "$SNNWB" bench --backend cuda --net vgg11-bn --T 1,16 --methods bptt,sltt \
  --steps 2 --warmup 1 --csv "$OUT/memory.csv" || fail "memory bench"
say '```'; cut -d, -f1-3,12,14 "$OUT/memory.csv" >> "$REPORT" 2>/dev/null; say '```'
# column 14: device_peak_bytes
awk -F, 'NR > 1 { p[$2 "," $3] = $14 }
  END { s = p["sltt,16"] / p["sltt,1"]; b = p["bptt,16"] / p["bptt,1"];
        printf "SLTT T16/T1 %.2f, BPTT T16/T1 %.2f\n", s, b; exit !(s < 1.15 && b > 1.5) }' "$OUT/memory.csv" \
  > "$OUT/memory-ratio.txt" 2>&1
mem_rc=$?
say "$(cat "$OUT/memory-ratio.txt") (wanted: SLTT flat, under 1.15; BPTT growing, over 1.5)"
[ $mem_rc -eq 0 ] || fail "device memory: SLTT not flat in T or BPTT not growing"

say ""
say "## One epoch of conv-small: GPU against CPU"
if [ -d "$FMNIST" ]; then
  rm -rf "$OUT/run-cuda" "$OUT/run-cpu"
  step train-cuda 120 "$SNNWB" train conv-small --backend cuda dataset_path="$FMNIST" --quiet --out "$OUT/run-cuda" \
    || fail "train on cuda"
  step train-cpu 150 env SNNWB_THREADS="$JOBS" "$SNNWB" train conv-small --backend cpu dataset_path="$FMNIST" --quiet \
    --out "$OUT/run-cpu" || fail "train on cpu"
  acc_gpu=$(awk -F, 'END { print 100 * $4 }' "$OUT/run-cuda/metrics.csv" 2>/dev/null)
  acc_cpu=$(awk -F, 'END { print 100 * $4 }' "$OUT/run-cpu/metrics.csv" 2>/dev/null)
  ms_gpu=$(awk -F, 'END { print $5 }' "$OUT/run-cuda/metrics.csv" 2>/dev/null)
  ms_cpu=$(awk -F, 'END { print $5 }' "$OUT/run-cpu/metrics.csv" 2>/dev/null)
  say "test accuracy: GPU ${acc_gpu:-?} %, CPU ${acc_cpu:-?} % (wanted within 0.5 points); ms/iter GPU ${ms_gpu:-?}, CPU ${ms_cpu:-?}"
  awk -v a="${acc_gpu:-0}" -v b="${acc_cpu:-100}" 'BEGIN { d = a - b; exit !(d < 0.5 && d > -0.5) }' \
    || fail "conv-small accuracy differs by 0.5 points or more"
else
  say "not run: no Fashion-MNIST at $FMNIST (set FMNIST=folder)"
fi

say ""
say "Total: $(( $(date +%s) - t_start )) s; result: $([ $status -eq 0 ] && echo 'all checks passed' || echo 'some checks FAILED')"
echo "report: $REPORT"
exit $status
