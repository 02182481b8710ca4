#!/usr/bin/python3
"""Times the same networks, methods and T in PyTorch and in `snnwb bench`,
in one session on the same CPU, and prints ours / PyTorch per row together
with the bytes each holds for backward.

Run from the repository root after building:
    /usr/bin/python3 bench/compare_torch.py [--nets mlp,conv-small,vgg-bench] [--T 6] [--rounds 3]

With --rounds N, the two take turns N times (all of ours, then all of
PyTorch's); each row's ratio is the median of the rounds' own ratios, so
that a slow or fast spell of a shared machine falls on both sides of one.

PyTorch runs with 2 threads and OMP_WAIT_POLICY=PASSIVE; both programs use
the same OpenBLAS kernel (OPENBLAS_CORETYPE is set for both when unset).
"""
import argparse
import csv
import io
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# snnwb runs with the environment it was given (plus the shared kernel
# choice); the OpenMP settings below are PyTorch's alone.
ORIGINAL_ENV = dict(os.environ)


def set_env_before_torch():
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    if "OPENBLAS_CORETYPE" not in os.environ:
        flags = open("/proc/cpuinfo").read()
        if all(f in flags for f in ("avx512f", "avx512bw", "avx512vl", "avx512dq")):
            os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"
        elif "avx2" in flags and "fma" in flags:
            os.environ["OPENBLAS_CORETYPE"] = "Haswell"


set_env_before_torch()
import torch  # noqa: E402  (the environment must be set first)

torch.set_num_threads(2)


class Triangle(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.clamp(1.0 - x.abs(), min=0.0)


class LIF(torch.nn.Module):
    """Soft reset, tau 1.1, vth 1, triangle surrogate; detach_v cuts the
    temporal route as SLTT does."""

    def __init__(self):
        super().__init__()
        self.v = None
        self.detach_v = False

    def forward(self, x):
        lam = 1.0 - 1.0 / 1.1
        v = 0.0 if self.v is None else (self.v.detach() if self.detach_v else self.v)
        u = lam * v + x
        s = Triangle.apply(u - 1.0)
        self.v = u - s
        return s


def build(model_path):
    spec = json.load(open(model_path))
    layers = []
    for L in spec["layers"]:
        t = L["type"]
        if t == "linear":
            layers.append(torch.nn.Linear(L["in"], L["out"]))
        elif t == "conv":
            layers.append(torch.nn.Conv2d(L["in_ch"], L["out_ch"], L["k"], L.get("stride", 1), L.get("pad", 0)))
        elif t == "lif":
            layers.append(LIF())
        elif t == "avgpool":
            layers.append(torch.nn.AvgPool2d(L["k"], L.get("stride", L["k"])))
        elif t == "flatten":
            layers.append(torch.nn.Flatten())
        else:
            raise SystemExit(f"{model_path}: layer type {t} is not in this benchmark")
    return torch.nn.Sequential(*layers), spec


def reset(net, detach):
    for m in net:
        if isinstance(m, LIF):
            m.v = None
            m.detach_v = detach


class SavedBytes:
    """Bytes of tensors saved for backward, each storage counted once."""

    def __init__(self):
        self.seen = set()
        self.bytes = 0

    def pack(self, t):
        key = (t.data_ptr(), t.numel(), t.dtype)
        if key not in self.seen:
            self.seen.add(key)
            self.bytes += t.numel() * t.element_size()
        return t

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self.pack, lambda t: t)


def sgd_step(net, opt, x, y, method, T, K, measure=False):
    opt.zero_grad(set_to_none=False)
    reset(net, method != "bptt")
    peak = 0
    if method == "bptt":
        sb = SavedBytes()
        with sb.hooks():
            loss = sum(torch.nn.functional.cross_entropy(net(x), y) for _ in range(T)) / T
        loss.backward()
        peak = sb.bytes
    else:
        steps = set(range(T)) if method == "sltt" else set(torch.randperm(T)[:K].tolist())
        for t in range(T):
            if t in steps:
                sb = SavedBytes()
                with sb.hooks():
                    loss = torch.nn.functional.cross_entropy(net(x), y) / T
                loss.backward()
                peak = max(peak, sb.bytes)
            else:
                with torch.no_grad():
                    net(x)
    opt.step()
    return peak


def torch_row(model_path, method, T, K, batch, steps, warmup):
    torch.manual_seed(0)
    net, spec = build(model_path)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, *spec["input_shape"])
    y = torch.arange(batch) % spec["num_classes"]
    times, peak = [], 0
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        peak = max(peak, sgd_step(net, opt, x, y, method, T, K))
        if i >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times), peak


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", default="mlp,conv-small,vgg-bench")
    ap.add_argument("--T", default="6")
    ap.add_argument("--methods", default="bptt,bptt_stored,sltt,sltt_k")
    ap.add_argument("--K", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--snnwb", default=os.path.join(ROOT, "build", "app", "snnwb"))
    ap.add_argument("--rounds", type=int, default=1, help="turns of ours and PyTorch's; median ratio per row")
    args = ap.parse_args()

    rounds = []
    for rnd in range(max(1, args.rounds)):
        ours = run_ours(args)
        # bptt_stored is our BPTT without recomputing: the same PyTorch row as bptt.
        torch_rows = {}
        for r in ours:
            T, K, B = int(r["T"]), int(r["K"]), int(r["batch"])
            path = os.path.join(ROOT, "models", r["net"] + ".json")
            tm = "bptt" if r["method"] == "bptt_stored" else r["method"]
            key = (r["net"], tm, T, K, B)
            if key not in torch_rows:
                torch_rows[key] = torch_row(path, tm, T, K, B, args.steps, args.warmup)
            r["torch"] = torch_rows[key]
        rounds.append(ours)
        if args.rounds > 1:
            print(f"round {rnd + 1} of {args.rounds} done", file=sys.stderr, flush=True)

    print(f"\nPyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(auto)')}\n")
    hdr = f"{'net':<11} {'method':<11} {'T':>2} {'ours ms':>8} {'torch ms':>9} {'ratio':>6} " \
          f"{'ours held':>11} {'torch saved':>12} {'ratio':>6} {'ours arena':>11}"
    print(hdr)
    print("-" * len(hdr))
    for i, r in enumerate(rounds[0]):
        T, K = int(r["T"]), int(r["K"])
        rows = [rnd[i] for rnd in rounds]
        o_ms = statistics.median(float(x["median_ms"]) for x in rows)
        med = statistics.median(x["torch"][0] for x in rows)
        ratio = statistics.median(float(x["median_ms"]) / x["torch"][0] for x in rows)
        saved = r["torch"][2]
        o_held, o_arena = int(r["held_bytes"]), int(r["arena_bytes"])
        name = f"sltt_k{K}" if r["method"] == "sltt_k" else r["method"]
        print(f"{r['net']:<11} {name:<11} {T:>2} {o_ms:>8.2f} {med:>9.2f} {ratio:>6.2f} "
              f"{o_held / 2**20:>9.2f}Mi {saved / 2**20:>10.2f}Mi {o_held / max(saved, 1):>6.2f} "
              f"{o_arena / 2**20:>9.2f}Mi", flush=True)


def run_ours(args):
    """One `snnwb bench` run over every row; its table is printed as it goes."""
    tmp = f"/tmp/snnwb-bench-{os.getpid()}.csv"
    cmd = [args.snnwb, "bench", "--net", args.nets, "--T", args.T, "--methods", args.methods, "--K", str(args.K),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--csv", tmp]
    print("$ " + " ".join(cmd[1:]).replace(tmp, "FILE"), flush=True)
    env = dict(ORIGINAL_ENV)
    if "OPENBLAS_CORETYPE" in os.environ:
        env["OPENBLAS_CORETYPE"] = os.environ["OPENBLAS_CORETYPE"]
    subprocess.run(cmd, check=True, env=env)
    with open(tmp) as f:
        ours = list(csv.DictReader(f))
    os.unlink(tmp)
    return ours


if __name__ == "__main__":
    main()
