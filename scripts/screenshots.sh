#!/usr/bin/env bash
# Screenshots of the workbench for the documentation: each trains a few
# iterations under a virtual X server, then saves a PNG of the whole window
# to docs/screenshots/. With Fashion-MNIST installed, the class walk-through
# also plays and saves its walkthrough-*.png and walkthrough-raster.svg.
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
  # The class walk-through (docs/walkthrough.md): a conv network assembled
  # in the editor, BPTT against SLTT, the gradient view and a what-if tau.
  xvfb-run -a -s "-screen 0 1600x1000x24" "$app" --walkthrough "$out" --iterations 150
fi
ls -l "$out"
