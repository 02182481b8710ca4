#!/usr/bin/python3
"""snnwb export: the exported PyTorch code against the C core.

For every golden case and for the presets mlp, conv-small, vgg11-bn,
resnet18-w16 and nf-resnet34 (at 3x32x32), the exported `train.py --grad`
is run on the same weights and batch as `snnwb grad`: spikes must be equal
and every other array (loss, o, v, gradients) within 1e-4 of its largest
value (a gradient that is zero but for rounding, such as that of a bias
before bn_step, must stay below 1e-5 of the network's largest gradient).  Weights must round-trip bit for bit (C -> load_npz -> save_npz ->
C).  The exported mlp-small trains 10 iterations of SLTT-K as `snnwb train`
does (the same weights within 1e-5); then it trains 10 iterations on 2048 Fashion-MNIST
samples under torchrun with 2 processes (gloo) and with 1: the weights must
agree within 1e-5, and `snnwb eval` must read the result; the same for a
network with bn_step (4 iterations, running statistics included).

Reports itself skipped (exit 77) when this Python has no torch.
"""
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

try:
    import numpy as np
    import torch
except ImportError as e:
    print("SKIP: %s has no %s" % (sys.executable, e.name))
    sys.exit(77)

ROOT = os.environ.get("SNN_SOURCE_ROOT", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SNNWB = os.environ.get("SNNWB", os.path.join(ROOT, "build", "app", "snnwb"))
CASES = os.path.join(ROOT, "tests", "golden", "cases")
TOL = 1e-4
MARGIN = 1e-5          # presets: inputs whose membrane potentials come this close to vth are redrawn
FMNIST = "/usr/share/datasets/fashion-mnist"
torch.set_num_threads(int(os.environ.get("SNNWB_THREADS", "1")))
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        print("FAIL: " + what, flush=True)


def snnwb(*args):
    r = subprocess.run([SNNWB] + [str(a) for a in args], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("snnwb %s: %s" % (" ".join(map(str, args)), r.stderr.strip()))
    return r.stdout


_loaded = [0]


def load_export(d):
    """The exported train.py (and its model.py) as a fresh module."""
    sys.modules.pop("model", None)
    _loaded[0] += 1
    spec = importlib.util.spec_from_file_location("exported_train_%d" % _loaded[0], os.path.join(d, "train.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.path.remove(d)
    mod.model = sys.modules["model"]
    return mod


def compare(name, ours, theirs):
    """theirs (torch) against ours (snnwb grad)."""
    check(set(ours.files) == set(theirs.files),
          "%s: keys differ: %s" % (name, sorted(set(ours.files) ^ set(theirs.files))))
    worst = 0.0
    # a gradient that is zero but for rounding (a bias before bn_step) is
    # compared as zero: both below 1e-5 of the network's largest gradient
    floor = 1e-5 * max(float(np.abs(ours[k]).max()) for k in ours.files if k.startswith("grad."))
    for k in ours.files:
        if k not in theirs.files:
            continue
        a, b = ours[k], theirs[k]
        if a.shape != b.shape:
            check(False, "%s: %s has shape %s, snnwb grad's %s" % (name, k, b.shape, a.shape))
            continue
        if k.startswith("spikes."):
            check(np.array_equal(a, b), "%s: %s: %d spikes differ" % (name, k, int((a != b).sum())))
            continue
        scale = float(np.abs(a).max())
        d = float(np.abs(a.astype(np.float64) - b).max())
        if k.startswith("grad.") and scale < floor:
            check(float(np.abs(b).max()) < floor, "%s: %s is %.3g, snnwb grad's below %.3g"
                  % (name, k, float(np.abs(b).max()), floor))
            continue
        rel = d / scale if scale > 0 else d
        worst = max(worst, rel)
        check(rel <= TOL, "%s: %s differs by %.3g of its largest value (%.3g; %.3g apart)" % (name, k, rel, scale, d))
    return worst


def run_grad(mod, d, x, y, args, tag):
    """snnwb grad and the exported --grad on the same batch; returns (ours, theirs)."""
    common = ["--input", x, "--labels", y, "--method", args["method"], "--T", args["T"]]
    if args.get("k_steps"):
        common += ["--k-steps", ",".join(map(str, args["k_steps"]))]
    common += ["--lambda", args.get("lambda", 0.0), "--mse-target", args.get("mse_target", 1.0)]
    common = [str(c) for c in common]
    ours, theirs = os.path.join(d, tag + ".c.npz"), os.path.join(d, tag + ".torch.npz")
    snnwb("grad", "--model", os.path.join(d, "model.json"), "--weights", os.path.join(d, "weights.npz"),
          "--out", ours, "--force", *common)
    mod.main(["--grad", "--out", theirs, "--force", "--weights", os.path.join(d, "weights.npz")] + common)
    return np.load(ours), np.load(theirs)


def check_roundtrip(mod, d, name):
    """C's weights.npz -> load_npz -> save_npz: the same bytes per array, and
    snnwb reads the file PyTorch wrote back to the same weights."""
    net = mod.build_model()
    src = os.path.join(d, "weights.npz")
    mod.load_npz(net, src)
    back = os.path.join(d, "torch-weights.npz")
    mod.save_npz(net, back)
    a, b = np.load(src), np.load(back)
    check(sorted(a.files) == sorted(b.files), "%s: round trip changes the names" % name)
    for k in a.files:
        check(a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(),
              "%s: %s changes in the round trip" % (name, k))
    again = os.path.join(d, "again")
    snnwb("export", "--model", os.path.join(d, "model.json"), "--weights", back, "--out", again)
    c = np.load(os.path.join(again, "weights.npz"))
    for k in a.files:
        check(a[k].tobytes() == c[k].tobytes(), "%s: %s changes when snnwb reads PyTorch's file" % (name, k))


def golden_cases(work):
    names = [n for n in open(os.path.join(CASES, "MANIFEST.txt")).read().split() if n]
    exported = {}
    worst = 0.0
    for n in names:
        c = os.path.join(CASES, n)
        key = hashlib.sha1(open(os.path.join(c, "model.json"), "rb").read()
                           + open(os.path.join(c, "weights.npz"), "rb").read()).hexdigest()
        if key not in exported:
            d = os.path.join(work, "golden-" + n)
            snnwb("export", "--model", os.path.join(c, "model.json"), "--weights", os.path.join(c, "weights.npz"),
                  "--out", d)
            mod = load_export(d)
            check_roundtrip(mod, d, n)
            exported[key] = (d, mod)
        d, mod = exported[key]
        args = json.load(open(os.path.join(c, "args.json")))
        ours, theirs = run_grad(mod, d, os.path.join(c, "input.npy"), os.path.join(c, "labels.npy"), args, n)
        worst = max(worst, compare(n, ours, theirs))
        # and against the independent reference the golden cases hold
        exp = np.load(os.path.join(c, "expected.npz"))
        for k in exp.files:
            if k.startswith("spikes."):
                check(np.array_equal(exp[k], theirs[k]), "%s: %s differs from the golden case" % (n, k))
    print("golden: %d cases, %d exports; largest difference %.2g of the largest value"
          % (len(names), len(exported), worst), flush=True)


# (vgg11-bn at batch 2: at 4, none of ten draws keeps its hundreds of
# thousands of membrane potentials MARGIN clear of the threshold)
PRESETS = [("mlp", None, 4), ("conv-small", None, 4), ("vgg11-bn", None, 2), ("resnet18-w16", None, 2),
           ("nf-resnet34", [3, 32, 32], 2)]
METHODS = [{"method": "bptt"}, {"method": "sltt"}, {"method": "sltt_k", "k_steps": [1]}]


def lif_margin(mod, d, x, T):
    """The smallest |u - vth| of every LIF layer (nested ones too) in a
    float64 forward pass of the exported network in training mode."""
    net = mod.build_model()
    mod.load_npz(net, os.path.join(d, "weights.npz"))
    net.double()
    lifs = [m for m in net.modules() if isinstance(m, mod.model.LIF)]
    for l in lifs:
        l.record = []
    with torch.no_grad():
        net(torch.from_numpy(x).double(), T, training=True, rng=mod.model.SnnRng(0))
    m = min(float((torch.stack([u for u, _ in l.record]) - l.vth).abs().min()) for l in lifs)
    rate = np.mean([float(torch.stack([s for _, s in l.record]).mean()) for l in lifs])
    return m, rate


def presets(work):
    T = 2
    for name, shape, B in PRESETS:
        model = json.load(open(os.path.join(ROOT, "models", name + ".json")))
        if shape:
            model["input_shape"] = shape
        mpath = os.path.join(work, name + ".json")
        json.dump(model, open(mpath, "w"))
        d = os.path.join(work, "preset-" + name)
        snnwb("export", "--model", mpath, "--out", d)
        mod = load_export(d)
        check_roundtrip(mod, d, name)
        rng = np.random.default_rng(7)
        # an input scale at which the network fires (at its default initialisation),
        # then a draw whose membrane potentials keep clear of the threshold
        for gain in (1, 2, 4, 8, 16, 32, 64):
            x = (gain * rng.uniform(0.0, 1.0, [B] + model["input_shape"])).astype(np.float32)
            margin, rate = lif_margin(mod, d, x, T)
            if rate >= 0.02:
                break
        # (the draw with the widest margin is kept should none reach MARGIN)
        best = (margin, rate, x)
        for attempt in range(10):
            if best[0] > MARGIN:
                break
            x = (gain * rng.uniform(0.0, 1.0, [B] + model["input_shape"])).astype(np.float32)
            margin, rate = lif_margin(mod, d, x, T)
            if margin > best[0]:
                best = (margin, rate, x)
        margin, rate, x = best
        y = rng.integers(0, model["num_classes"], B).astype(np.int64)
        xp, yp = os.path.join(d, "x.npy"), os.path.join(d, "y.npy")
        np.save(xp, x)
        np.save(yp, y)
        worst = 0.0
        for m in METHODS:
            args = dict(m, T=T, **{"lambda": 0.05, "mse_target": "onehot"})
            ours, theirs = run_grad(mod, d, xp, yp, args, m["method"])
            worst = max(worst, compare("%s %s" % (name, m["method"]), ours, theirs))
        print("%s: input scale %d, B %d, T %d, margin to vth %.2g, spike rate %.3f; largest difference %.2g of the largest value"
              % (name, gain, B, T, margin, rate, worst), flush=True)


def torchrun(d, nproc, out, extra):
    # --redirects 1 --tee 1: torch 1.13's launcher fails on Python 3.11 with the default (0)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--redirects", "1", "--tee", "1",
           "--nproc_per_node=%d" % nproc,
           os.path.join(d, "train.py"), "--out", out, "--device", "cpu"] + extra
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stderr[-3000:]))
    return r.stdout


def distributed(work):
    if not os.path.exists(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")):
        print("distributed: skipped, no Fashion-MNIST in %s" % FMNIST)
        return
    d = os.path.join(work, "mlp-small")
    snnwb("export", "mlp-small", "train_subset=2048", "test_subset=512", "--out", d)
    t0 = time.time()
    one, two = os.path.join(work, "run1"), os.path.join(work, "run2")
    torchrun(d, 1, one, ["--iters", "10"])
    torchrun(d, 2, two, ["--iters", "10"])
    a, b, s = np.load(os.path.join(one, "weights.npz")), np.load(os.path.join(two, "weights.npz")), \
        np.load(os.path.join(d, "weights.npz"))
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a.files)
    moved = min(float(np.abs(a[k] - s[k]).max()) for k in a.files)
    check(worst <= 1e-5, "torchrun: 2 processes differ from 1 by %.3g" % worst)
    check(moved > 1e-3, "torchrun: training did not move the weights (%.3g)" % moved)
    out = snnwb("eval", os.path.join(two, "experiment.json"), "--weights", os.path.join(two, "weights.npz"))
    acc1 = float(out.split("test accuracy")[1].split("%")[0])
    csv = open(os.path.join(two, "metrics.csv")).read().splitlines()
    acc2 = float(csv[1].split(",")[3]) * 100
    check(abs(acc1 - acc2) < 0.5, "snnwb eval gives %.2f%%, train.py %.2f%%" % (acc1, acc2))
    bn_synced(work)
    print("distributed: 10 iterations, 2 processes vs 1: largest weight difference %.2g (weights moved %.2g); "
          "snnwb eval %.2f%%, train.py %.2f%% (%.0f s)" % (worst, moved, acc1, acc2, time.time() - t0), flush=True)


def refusals(work):
    """Nothing the user has is replaced; bad weights are named."""
    d = os.path.join(work, "refuse")
    snnwb("export", "mlp-small", "--out", d)
    before = open(os.path.join(d, "model.py")).read()
    r = subprocess.run([SNNWB, "export", "conv-small", "--out", d], capture_output=True, text=True)
    check(r.returncode == 2 and "already exists" in r.stderr and os.path.join(d, "model.py") in r.stderr,
          "export into a used folder: rc %d, %r" % (r.returncode, r.stderr))
    check(open(os.path.join(d, "model.py")).read() == before, "export replaced model.py")
    bad = os.path.join(work, "bad.npz")
    np.savez(bad, **{"0.weight": np.zeros((3, 3), np.float32)})
    r = subprocess.run([SNNWB, "export", "mlp-small", "--weights", bad, "--out", os.path.join(work, "bad")],
                       capture_output=True, text=True)
    check(r.returncode == 2 and bad in r.stderr and "0.weight" in r.stderr,
          "export with wrong weights: rc %d, %r" % (r.returncode, r.stderr))
    print("refusals: checked", flush=True)


def frames(work):
    """snnwb frames writes a sequence dataset that the exported train.py
    trains on; snnwb eval reads the result."""
    d, f, run = os.path.join(work, "tm"), os.path.join(work, "tm-frames"), os.path.join(work, "tm-run")
    over = ["train_subset=128", "test_subset=64", "batch_size=32", "method=bptt"]
    snnwb("export", "temporal-mlp", *over, "--out", d)
    snnwb("frames", "temporal-mlp", *over, "--out", f)
    x = np.load(os.path.join(f, "train_x.npy"))
    T = json.load(open(os.path.join(d, "experiment.json")))["T"]
    check(x.shape == (128, T, 32) and x.dtype == np.float32, "frames: train_x has shape %s" % (x.shape,))
    r = subprocess.run([sys.executable, os.path.join(d, "train.py"), "--frames", f, "--out", run, "--device", "cpu",
                        "--epochs", "2"],
                       capture_output=True, text=True)
    check(r.returncode == 0, "train.py --frames: %s" % r.stderr[-2000:])
    if r.returncode == 0:
        out = snnwb("eval", os.path.join(run, "experiment.json"), "--weights", os.path.join(run, "weights.npz"))
        acc = float(open(os.path.join(run, "metrics.csv")).read().splitlines()[-1].split(",")[3]) * 100
        ours = float(out.split("test accuracy")[1].split("%")[0])
        check(abs(acc - ours) < 0.5, "frames: snnwb eval %.2f%%, train.py %.2f%%" % (ours, acc))
        print("frames: temporal-mlp, 2 epochs of 4 iterations of BPTT on sequences; snnwb eval %.2f%%, train.py %.2f%%"
              % (ours, acc), flush=True)


def bn_synced(work):
    """bn_step under torchrun: the statistics of the whole batch, so 2
    processes give the weights and running statistics of 1."""
    e = {"name": "mlp-bn", "dataset": {"name": "fashion-mnist", "train_subset": 512, "test_subset": 256},
         "T": 3, "method": "sltt", "batch_size": 64, "epochs": 1, "seed": 7,
         "model": {"input_shape": [784], "num_classes": 10,
                   "layers": [{"type": "linear", "in": 784, "out": 64, "bias": False},
                              {"type": "bn_step", "num_features": 64}, {"type": "lif"},
                              {"type": "linear", "in": 64, "out": 10}]}}
    path = os.path.join(work, "mlp-bn.json")
    json.dump(e, open(path, "w"))
    d = os.path.join(work, "mlp-bn")
    snnwb("export", path, "--out", d)
    one, two = os.path.join(work, "bn1"), os.path.join(work, "bn2")
    torchrun(d, 1, one, ["--iters", "4"])
    torchrun(d, 2, two, ["--iters", "4"])
    a, b = np.load(os.path.join(one, "weights.npz")), np.load(os.path.join(two, "weights.npz"))
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a.files)
    check(worst <= 1e-5, "torchrun with bn_step: 2 processes differ from 1 by %.3g" % worst)
    print("distributed: bn_step, 4 iterations, 2 processes vs 1: largest difference %.2g "
          "(weights and running statistics)" % worst, flush=True)


def fidelity(work):
    """train.py against snnwb train: mlp-small under SLTT-K (K steps drawn
    from the core's generator), one epoch of 10 iterations on 640
    Fashion-MNIST samples, the same weights after it."""
    if not os.path.exists(os.path.join(FMNIST, "train-images-idx3-ubyte.gz")):
        print("fidelity: skipped, no Fashion-MNIST in %s" % FMNIST)
        return
    over = ["train_subset=640", "test_subset=256", "method=sltt_k", "K=2"]
    d, c, t = os.path.join(work, "fid"), os.path.join(work, "fid-c"), os.path.join(work, "fid-t")
    snnwb("export", "mlp-small", *over, "--out", d)
    snnwb("train", "mlp-small", *over, "--out", c, "-q")
    r = subprocess.run([sys.executable, os.path.join(d, "train.py"), "--out", t, "--device", "cpu"],
                       capture_output=True, text=True)
    check(r.returncode == 0, "train.py: %s" % r.stderr[-2000:])
    if r.returncode:
        return
    a, b = np.load(os.path.join(c, "weights.npz")), np.load(os.path.join(t, "weights.npz"))
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a.files)
    check(worst <= 1e-5, "train.py and snnwb train differ by %.3g after 10 iterations" % worst)
    accs = [float(open(os.path.join(x, "metrics.csv")).read().splitlines()[-1].split(",")[3]) * 100 for x in (c, t)]
    print("fidelity: mlp-small, SLTT-K, 10 iterations: largest weight difference to snnwb train %.2g; "
          "test accuracy %.2f%% (snnwb) and %.2f%% (train.py)" % (worst, accs[0], accs[1]), flush=True)


def main():
    work = tempfile.mkdtemp(prefix="snnwb-export-")
    t0 = time.time()
    try:
        parts = sys.argv[1:] or ["golden", "presets", "refusals", "frames", "fidelity", "distributed"]
        for part in parts:
            {"golden": golden_cases, "presets": presets, "refusals": refusals, "frames": frames,
             "fidelity": fidelity, "distributed": distributed}[part](work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("%.0f s" % (time.time() - t0))
    if failures:
        print("%d failures" % len(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
