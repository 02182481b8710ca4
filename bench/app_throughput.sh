#!/bin/sh
# Training throughput inside the workbench against `snnwb train` on the same
# experiment and method, in iterations per second of training: both leave
# out the test evaluation at each epoch's end (snnwb train's ms/iter; the
# workbench's training clock). The workbench runs under Xvfb unless a
# display is there, with its drawing, probes and analysis on. The two take
# turns ROUNDS times, and each round's workbench rate is divided by its own
# command-line rate, so that a slow or fast spell of a shared machine falls
# on both sides of a ratio; the median ratio is reported.
#
#   bench/app_throughput.sh [PRESET] [METHOD] [EPOCHS]    (vgg-events sltt 3)
#
# BUILD names the build folder (build); ROUNDS (3) the number of turns.
set -eu
preset=${1:-vgg-events}
method=${2:-sltt}
epochs=${3:-3}
build=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rounds=${ROUNDS:-3}

cli_once () {
  rm -rf "$tmp/cli"
  "$build/app/snnwb" train "$preset" "method=$method" "epochs=$epochs" --out "$tmp/cli" -q > "$tmp/cli.txt"
  awk -F, 'NR > 1 { ms += $5; n++ } END { printf "%.2f", 1000 * n / ms }' "$tmp/cli/metrics.csv"
}
cli=$(cli_once)
# "..., batch 32, 2000 train / 500 test samples, ..." -> iterations per epoch
per_epoch=$(sed -n 's/.*batch \([0-9]*\), \([0-9]*\) train.*/\2 \1/p' "$tmp/cli.txt" | awk '{print int(($1 + $2 - 1) / $2)}')
iters=$((per_epoch * epochs))
# The experiment as the command line ran it (epochs and method included),
# for the workbench to open.
cp "$tmp/cli/experiment.json" "$tmp/experiment.json"

# No accessibility bus under Xvfb; a screen the whole window fits on.
export GTK_A11Y=none NO_AT_BRIDGE=1
run_app () {
  if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then "$@"; else xvfb-run -a -s "-screen 0 1600x1000x24" "$@"; fi
}
# The workbench's first run trains with SLTT whatever the file says, so
# name SLTT to compare like with like.
app_once () {
  run_app "$build/ui/snn-workbench" --preset "$tmp/experiment.json" --screenshot "$tmp/app.png" --iterations "$iters" \
    > "$tmp/app.txt" 2>&1
  rate=$(sed -n 's/^Training throughput: \([0-9.]*\) iterations.*/\1/p' "$tmp/app.txt")
  if [ -z "$rate" ]; then
    echo "the workbench did not report its throughput:" >&2
    cat "$tmp/app.txt" >&2
    exit 1
  fi
  echo "$rate"
}
median () {
  tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
clis="$cli"
app=$(app_once)
apps="$app"
ratios=$(awk -v a="$app" -v c="$cli" 'BEGIN { printf "%.2f", a / c }')
i=1
while [ "$i" -lt "$rounds" ]; do
  cli=$(cli_once)
  app=$(app_once)
  clis="$clis $cli"
  apps="$apps $app"
  ratios="$ratios $(awk -v a="$app" -v c="$cli" 'BEGIN { printf "%.2f", a / c }')"
  i=$((i + 1))
done
cli=$(echo "$clis" | median)
app=$(echo "$apps" | median)
ratio=$(echo "$ratios" | median)
echo "$preset, $method, $iters iterations ($epochs epochs of $per_epoch)"
echo "snnwb train:  $cli iterations/s (median of $clis)"
echo "workbench:    $app iterations/s (median of $apps)"
echo "ratio:        $ratio (median of $ratios, round by round)"
