#!/usr/bin/env bash
# Screenshots of the workbench for the documentation: each trains a few
# iterations under a virtual X server, then saves a PNG of the whole window
# to docs/screenshots/. The in-app class walk-through then plays its steps
# in a 1280x720 window and saves docs/walkthrough.md's walkthrough-*.png
# (with Fashion-MNIST installed, on the class-conv experiment).
set -euo pipefail
cd "$(dirname "$0")/.."

test -d build || meson setup build
ninja -C build ui/snn-workbench

out=docs/screenshots
mkdir -p "$out"
app=build/ui/snn-workbench

# No session bus or accessibility bus under Xvfb; the cairo renderer keeps
# software rendering from competing with training for the CPU.
export GTK_A11Y=none NO_AT_BRIDGE=1
export GSK_RENDERER="${GSK_RENDERER:-cairo}"

shoot () {
  local name=$1
  shift
  xvfb-run -a -s "-screen 0 1600x1000x24" "$app" --screenshot "$out/$name.png" "$@"
}

shoot training --preset temporal-mlp --iterations 250
shoot settings --preset temporal-mlp --iterations 120 --panel settings
shoot compare --preset temporal-mlp --iterations 200 --runs 3
if [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] ||
   [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte ]; then
  shoot fashion-mnist --preset mlp-small --iterations 80
fi
# Each step's button, then its picture; every run of a step trains
# ${WALK_ITERATIONS:-60} iterations.
rm -f "$out"/walkthrough-*
xvfb-run -a -s "-screen 0 1280x720x24" "$app" --walkthrough "$out" --iterations "${WALK_ITERATIONS:-60}"
ls -l "$out"
