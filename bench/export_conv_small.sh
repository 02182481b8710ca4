#!/usr/bin/env bash
# The exported PyTorch training against snnwb train: conv-small, one epoch
# of Fashion-MNIST each, the same experiment, seed and starting weights.
# Prints both test accuracies and times; fails when they are more than one
# point apart.  Usage: bench/export_conv_small.sh [EXPERIMENT] (default conv-small)
set -euo pipefail
cd "$(dirname "$0")/.."
exp=${1:-conv-small}
snnwb=${SNNWB:-build/app/snnwb}
py=${PYTHON:-/usr/bin/python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$snnwb" export "$exp" --out "$work/export" >/dev/null
t0=$(date +%s.%N)
"$snnwb" train "$exp" --out "$work/c" -q >/dev/null
t1=$(date +%s.%N)
"$py" "$work/export/train.py" --out "$work/t" --device cpu >/dev/null
t2=$(date +%s.%N)
"$py" - "$work" "$t0" "$t1" "$t2" "$exp" <<'PY'
import sys
work, t0, t1, t2, exp = sys.argv[1], *map(float, sys.argv[2:5]), sys.argv[5]
acc = lambda d: float(open("%s/%s/metrics.csv" % (work, d)).read().splitlines()[-1].split(",")[3]) * 100
c, t = acc("c"), acc("t")
print("%-28s %10s %8s" % (exp + ", 1 epoch", "test acc", "seconds"))
print("%-28s %9.2f%% %8.1f" % ("snnwb train", c, t1 - t0))
print("%-28s %9.2f%% %8.1f" % ("exported train.py (torch)", t, t2 - t1))
print("difference %.2f points (at most 1)" % (t - c))
sys.exit(0 if abs(t - c) <= 1.0 else 1)
PY
