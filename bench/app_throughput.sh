#!/bin/sh
# Training throughput inside the workbench against `snnwb train` on the same
# experiment and method, in iterations per second of training: both leave
# out the test evaluation at each epoch's end (snnwb train's ms/iter; the
# workbench's training clock). The workbench runs under Xvfb unless a
# display is there, with its drawing, probes and analysis on.
#
#   bench/app_throughput.sh [PRESET] [METHOD] [EPOCHS]    (vgg-events sltt 3)
#
# BUILD names the build folder (build).
set -eu
preset=${1:-vgg-events}
method=${2:-sltt}
epochs=${3:-3}
build=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$build/app/snnwb" train "$preset" "method=$method" "epochs=$epochs" --out "$tmp/cli" -q > "$tmp/cli.txt"
# "..., batch 32, 2000 train / 500 test samples, ..." -> iterations per epoch
per_epoch=$(sed -n 's/.*batch \([0-9]*\), \([0-9]*\) train.*/\2 \1/p' "$tmp/cli.txt" | awk '{print int(($1 + $2 - 1) / $2)}')
cli=$(awk -F, 'NR > 1 { ms += $5; n++ } END { printf "%.2f", 1000 * n / ms }' "$tmp/cli/metrics.csv")
iters=$((per_epoch * epochs))

# No accessibility bus under Xvfb; a screen the whole window fits on.
export GTK_A11Y=none NO_AT_BRIDGE=1
run_app () {
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then "$@"; else xvfb-run -a -s "-screen 0 1600x1000x24" "$@"; fi
}
# The workbench's first run trains with SLTT; a method named here applies
# to the command line only, so compare like with like.
run_app "$build/ui/snn-workbench" --preset "$preset" --screenshot "$tmp/app.png" --iterations "$iters" \
  > "$tmp/app.txt" 2>&1
app=$(sed -n 's/^Training throughput: \([0-9.]*\) iterations.*/\1/p' "$tmp/app.txt")
if [ -z "$app" ]; then
  echo "the workbench did not report its throughput:" >&2
  cat "$tmp/app.txt" >&2
  exit 1
fi
echo "$preset, $method, $iters iterations ($epochs epochs of $per_epoch)"
echo "snnwb train:  $cli iterations/s"
echo "workbench:    $app iterations/s"
awk -v a="$app" -v c="$cli" 'BEGIN { printf "ratio:        %.2f\n", a / c }'
