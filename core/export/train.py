#!/usr/bin/env python3
"""Training of an experiment exported by SNN Workbench (snnwb export).

    python3 train.py [--out DIR] [--data DIR] [--frames DIR] [--epochs N]
    torchrun --nproc_per_node=N train.py ...      (data parallel; gloo on CPU, nccl on GPU)
    python3 train.py --grad --input X.npy --labels Y.npy --method bptt|sltt|sltt_k --T N
                     [--k-steps 0,3] [--lambda L] [--mse-target VALUE|onehot] --out G.npz

BPTT, SLTT and SLTT-K run as SNN Workbench's core runs them: the loss of
Eq. 14/S13, SLTT's backward pass after each step without the temporal
route, SLTT-K's K steps drawn per iteration, and every random draw (data
order, K steps, dropout masks, augmentation) from the same generator and
seeds.  The run folder gets metrics.csv, weights.npz and experiment.json in
SNN Workbench's formats (snnwb eval and the workbench open it).
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import F32, BNStep, SnnRng, build_model, f32, load_npz, save_npz  # noqa: E402


def fail(msg):
    sys.stderr.write("train.py: %s\n" % msg)
    sys.exit(2)


# ------------------------------------------------------------- the batch


class Config:
    """What one batch needs: method, T, K, lambda and the MSE target."""

    def __init__(self, method, T, K=1, lam=0.0, target=1.0):
        if method not in ("bptt", "sltt", "sltt_k"):
            fail("the method must be bptt, sltt or sltt_k, not %r" % method)
        self.method, self.T, self.K = method, int(T), int(K)
        self.lam = f32(lam)
        self.onehot = target == "onehot"
        self.target = 1.0 if self.onehot else f32(target)


def step_loss(cfg, o, y, total):
    """(1 - lambda) CE + lambda MSE of one step, summed over this process's
    samples and divided by the whole batch (total), so that the processes'
    losses and gradients add up to those of the batch."""
    ce = F.cross_entropy(o, y, reduction="sum") / total
    if cfg.onehot:
        tgt = F.one_hot(y, o.shape[1]).to(o.dtype)
    else:
        tgt = torch.full_like(o, cfg.target)
    mse = ((o - tgt) ** 2).sum() / (total * o.shape[1])
    return (1 - cfg.lam) * ce + cfg.lam * mse


def choose_steps(cfg, rng, k_steps=None):
    """All steps for BPTT/SLTT; for SLTT-K the given ones or the first K of
    a permutation drawn from rng (as the core draws them)."""
    if cfg.method != "sltt_k":
        return set(range(cfg.T))
    if k_steps is not None:
        return set(k_steps)
    return set(rng.permutation(cfg.T)[:min(cfg.K, cfg.T)])


def train_batch(net, cfg, x, y, rng, total, rows, sequence, k_steps=None, timing=None):
    """Forward and backward of one batch; gradients accumulate.  x: this
    process's rows of the batch, (B, ...) static or (T, B, ...).  Returns
    (loss summed over this process's share, o (T, B, C), steps backpropagated)."""
    bp = choose_steps(cfg, rng, k_steps)
    bptt = cfg.method == "bptt"
    net.begin_sequence(total, True, rng, rows=rows, temporal=bptt, T=cfg.T, hold=not bptt)
    outs, loss, graph = [], 0.0, None
    t0 = time.perf_counter()
    back = 0.0
    for t in range(cfg.T):
        xt = x[t] if sequence else x
        with torch.set_grad_enabled(t in bp):
            o = net.step(xt, static=not sequence)
            lt = step_loss(cfg, o, y, total) / cfg.T
        outs.append(o.detach())
        loss += float(lt.detach())
        if t not in bp:
            continue
        if bptt:
            graph = lt if graph is None else graph + lt
        else:
            b0 = time.perf_counter()
            lt.backward()
            back += time.perf_counter() - b0
    b0 = time.perf_counter()
    if graph is not None:
        graph.backward()
    net.end_sequence()
    back += time.perf_counter() - b0
    if timing is not None:
        timing[0] += (time.perf_counter() - t0 - back) * 1000
        timing[1] += back * 1000
    return loss, torch.stack(outs), sorted(bp)


def count_correct(o, y):
    return int((o.sum(dim=0).argmax(dim=1) == y).sum())


# ------------------------------------------------------------- --grad


def grad_main(a):
    if os.path.exists(a.out) and not a.force:
        fail("%s: already exists; not overwriting it (use --force)" % a.out)
    net = build_model()
    load_npz(net, a.weights)
    x = torch.from_numpy(np.load(a.input).astype(np.float32))
    y = torch.from_numpy(np.load(a.labels).astype(np.int64))
    nd = len(net.input_shape)
    sequence = x.dim() == nd + 2
    if tuple(x.shape[-nd:]) != net.input_shape or x.dim() not in (nd + 1, nd + 2):
        fail("%s: input of shape %s does not fit the model's input %s" % (a.input, tuple(x.shape), net.input_shape))
    if sequence and x.shape[0] != a.T:
        fail("%s: the sequence has %d steps but --T is %d" % (a.input, x.shape[0], a.T))
    B = x.shape[1] if sequence else x.shape[0]
    k_steps = None
    if a.method == "sltt_k":
        if not a.k_steps:
            fail("--method sltt_k needs --k-steps")
        k_steps = [int(s) for s in a.k_steps.split(",")]
        if len(set(k_steps)) != len(k_steps) or not all(0 <= s < a.T for s in k_steps):
            fail("--k-steps: must be distinct steps in 0..%d" % (a.T - 1))
    cfg = Config(a.method, a.T, len(k_steps or []), a.lam, a.mse_target)
    rec = {}
    for name, l in net.lif_layers():
        rec[name] = l.record = []
    net.zero_grad(set_to_none=True)
    loss, o, _ = train_batch(net, cfg, x, y, SnnRng(a.seed), B, None, sequence, k_steps)
    out = {"loss": np.array(loss, np.float32), "o": o.numpy().astype(np.float32)}
    for name, p in net.named_parameters():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        out["grad." + name] = g.numpy().astype(np.float32)
    for name, r in rec.items():
        out["spikes." + name] = torch.stack([s for _, s in r]).numpy().astype(np.float32)
        out["v." + name] = torch.stack([u for u, _ in r]).numpy().astype(np.float32)
    np.savez(a.out, **out)


# ------------------------------------------------------------- datasets


class Dataset:
    """x: (N, ...) static samples or (N, T, ...) sequences, float32; y: int64."""

    def __init__(self, x, y, seq_T=0):
        self.x, self.y, self.seq_T = x, y, seq_T

    def __len__(self):
        return len(self.y)

    def gather(self, idx):
        """Samples idx as the network takes them: (B, ...) or (T, B, ...)."""
        x = self.x[idx]
        if self.seq_T:
            x = np.ascontiguousarray(np.swapaxes(x, 0, 1))
        return x, self.y[idx]


def idx_file(path):
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path += ".gz"
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        fail("%s: %s" % (path, e.strerror))
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if raw[2] != 8 or data.size != int(np.prod(dims)):
        fail("%s: not an IDX file of unsigned bytes of shape %s" % (path, dims))
    return data.reshape(dims)


def load_mnist(folder, train):
    stem = "train" if train else "t10k"
    x = idx_file(os.path.join(folder, "%s-images-idx3-ubyte" % stem))
    y = idx_file(os.path.join(folder, "%s-labels-idx1-ubyte" % stem))
    return x.reshape(len(x), 1, x.shape[1], x.shape[2]).astype(np.float32) / F32(255.0), y.astype(np.int64)


CIFAR_NORM = {10: ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
              100: ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))}


def load_cifar(folder, classes, train):
    sub = "cifar-10-batches-bin" if classes == 10 else "cifar-100-binary"
    if os.path.isdir(os.path.join(folder, sub)):
        folder = os.path.join(folder, sub)
    if classes == 10:
        files = ["data_batch_%d.bin" % i for i in range(1, 6)] if train else ["test_batch.bin"]
    else:
        files = ["train.bin" if train else "test.bin"]
    head = 1 if classes == 10 else 2
    xs, ys = [], []
    for f in files:
        p = os.path.join(folder, f)
        if not os.path.exists(p):
            fail("%s: missing (CIFAR-%d binary version)" % (p, classes))
        raw = np.fromfile(p, np.uint8)
        if raw.size % (head + 3072):
            fail("%s: not a whole number of records" % p)
        rec = raw.reshape(-1, head + 3072)
        ys.append(rec[:, head - 1].astype(np.int64))
        xs.append(rec[:, head:].reshape(-1, 3, 32, 32))
    return np.concatenate(xs).astype(np.float32) / F32(255.0), np.concatenate(ys)


def subset(x, y, n, seed):
    """The first n of a permutation drawn from SnnRng(seed), as the core takes subsets."""
    perm = SnnRng(seed).permutation(len(y))[:n]
    return x[perm], y[perm]


def load_datasets(e, data_dir, frames_dir):
    ds = e["dataset"]
    kind, seed = ds["name"], int(e["seed"])
    if frames_dir or kind not in ("fashion-mnist", "mnist", "cifar10", "cifar100"):
        if not frames_dir:
            fail("the %s dataset comes from frames that `snnwb frames EXPERIMENT --out DIR` writes: "
                 "pass --frames DIR" % kind)
        out = []
        for split in ("train", "test"):
            x = np.load(os.path.join(frames_dir, "%s_x.npy" % split)).astype(np.float32)
            y = np.load(os.path.join(frames_dir, "%s_y.npy" % split)).astype(np.int64)
            seq = x.shape[1] if x.ndim == 2 + len(e["model"]["input_shape"]) else 0
            out.append(Dataset(x, y, seq))
        return out
    folder = data_dir or ds.get("path") or ("/usr/share/datasets/fashion-mnist" if kind == "fashion-mnist" else None)
    if not folder:
        fail("%s needs the folder of its files: pass --data DIR" % kind)
    if kind.startswith("cifar"):
        classes = 100 if kind == "cifar100" else 10
        splits = [load_cifar(folder, classes, tr) for tr in (True, False)]
        if ds.get("normalize", True):
            mean, std = (np.array(v, np.float32).reshape(1, 3, 1, 1) for v in CIFAR_NORM[classes])
            splits = [((x - mean) * (F32(1.0) / std), y) for x, y in splits]
    else:
        splits = [load_mnist(folder, tr) for tr in (True, False)]
        if ds.get("normalize", True):
            xd = splits[0][0].astype(np.float64)
            m = xd.mean()
            s = F32(np.sqrt(((xd - m) ** 2).mean()))
            del xd
            inv = F32(1.0) / (s if s > 0 else F32(1.0))
            splits = [((x - F32(m)) * inv, y) for x, y in splits]
    out = []
    for (x, y), n, off in zip(splits, (ds.get("train_subset", 0), ds.get("test_subset", 0)), (11, 13)):
        if 0 < n < len(y):
            x, y = subset(x, y, n, seed + off)
        shape = tuple(e["model"]["input_shape"])
        out.append(Dataset(np.ascontiguousarray(x.reshape((len(y),) + shape), np.float32), y))
    return out


# --------------------------------------------------------- augmentation


def augment_images(x, rng, mean=None, std=None, pad=4, cutout_p=0.5):
    """Random crop with zero padding, random-erasing cutout, horizontal flip,
    per sample in order (B, C, H, W), in place, drawing as the core draws."""
    B, C, H, W = x.shape

    def value(c, v):
        return F32(v) if mean is None else (F32(v) - F32(mean[c])) / F32(std[c])

    for b in range(B):
        img = x[b]
        dy = rng.below(2 * pad + 1) - pad
        dx = rng.below(2 * pad + 1) - pad
        src = img.copy()
        for c in range(C):
            img[c] = value(c, 0.0)
        ys, yd = slice(max(dy, 0), H + min(dy, 0)), slice(max(-dy, 0), H + min(-dy, 0))
        xs, xd = slice(max(dx, 0), W + min(dx, 0)), slice(max(-dx, 0), W + min(-dx, 0))
        img[:, yd, xd] = src[:, ys, xs]
        if rng.uniform() < cutout_p:
            for _ in range(10):
                area = float(F32(F32(rng.uniform_range(0.02, 0.4)) * F32(H)) * F32(W))
                ratio = float(F32(rng.uniform_range(0.4, 2.5)))
                h, w = int(np.sqrt(area * ratio)), int(np.sqrt(area / ratio))
                if h <= 0 or w <= 0 or h >= H or w >= W:
                    continue
                top, left = rng.below(H - h + 1), rng.below(W - w + 1)
                v = F32(rng.below(256)) / F32(255.0)
                for c in range(C):
                    img[c, top:top + h, left:left + w] = value(c, v)
                break
        if rng.below(2):
            img[:] = img[:, :, ::-1].copy()


def augment_frames(x, rng, max_roll=5):
    """Event frames (T, B, C, H, W): a flip and a roll of up to max_roll
    pixels per sample, the same for all its frames."""
    for b in range(x.shape[1]):
        flip = rng.below(2)
        dy = rng.below(2 * max_roll + 1) - max_roll
        dx = rng.below(2 * max_roll + 1) - max_roll
        if not flip and dx == 0 and dy == 0:
            continue
        a = np.roll(x[:, b], dy, axis=-2)
        if flip:
            a = a[..., ::-1]
        x[:, b] = np.roll(a, dx, axis=-1)


# --------------------------------------------------------------- training


class World:
    """This process's place among torchrun's (one process: rank 0 of 1)."""

    def __init__(self, device):
        self.size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda", local) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.size > 1:
            dist.init_process_group("nccl" if cuda else "gloo")
            BNStep.sync = True  # bn_step: the statistics of the whole batch

    def rows(self, n):
        """This process's rows [lo, hi) of a batch of n."""
        return n * self.rank // self.size, n * (self.rank + 1) // self.size

    def sum_(self, t):
        if self.size > 1:
            dist.all_reduce(t)
        return t

    def sum_grads(self, params):
        if self.size == 1:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        dist.all_reduce(flat)
        i = 0
        for p in params:
            n = p.numel()
            p.grad = flat[i:i + n].view_as(p).clone()
            i += n


def peak_rss():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def evaluate(net, ds, T, B, world):
    """Test accuracy in evaluation mode, the test set shared out among processes."""
    lo, hi = world.rows(len(ds))
    correct = 0
    with torch.no_grad():
        for start in range(lo, hi, B):
            idx = np.arange(start, min(start + B, hi))
            x, y = ds.gather(idx)
            x, y = torch.from_numpy(x).to(world.device), torch.from_numpy(y).to(world.device)
            net.begin_sequence(len(idx), False)
            o = torch.stack([net.step(x[t] if ds.seq_T else x, static=not ds.seq_T) for t in range(T)])
            correct += count_correct(o, y)
    c = world.sum_(torch.tensor([float(correct)], device=world.device))
    return float(c[0]) / max(len(ds), 1)


def make_optimizer(e, params):
    o = e["optimizer"]
    if o.get("type", "sgd") == "adam":
        return torch.optim.Adam(params, lr=o["lr"], betas=(o.get("beta1", 0.9), o.get("beta2", 0.999)),
                                eps=o.get("eps", 1e-8), weight_decay=o.get("weight_decay", 0.0))
    return torch.optim.SGD(params, lr=o["lr"], momentum=o.get("momentum", 0.9),
                           weight_decay=o.get("weight_decay", 0.0))


def lr_at(e, it, total):
    o = e["optimizer"]
    if o.get("schedule", "cosine") != "cosine" or total <= 0:
        return o["lr"]
    return 0.5 * o["lr"] * (1.0 + np.cos(np.pi * min(it, total) / total))


def run_dir(out, name, lead):
    if out:
        d = out
    else:
        d = os.path.join("runs", "%s-%s" % (name, time.strftime("%Y%m%d-%H%M%S")))
        i = 2
        while os.path.exists(d):
            d = os.path.join("runs", "%s-%s-%d" % (name, time.strftime("%Y%m%d-%H%M%S"), i))
            i += 1
    for f in ("metrics.csv", "weights.npz", "experiment.json") if lead else ():
        if os.path.exists(os.path.join(d, f)):
            fail("%s: already exists; not overwriting it" % os.path.join(d, f))
    return d


CSV_HEADER = ("epoch,train_loss,train_acc,test_acc,ms_per_iter,forward_ms,backward_ms,"
              "peak_held_bytes,process_peak_bytes,seconds\n")


def train_main(a):
    path = a.experiment or os.path.join(HERE, "experiment.json")
    if not os.path.exists(path):
        fail("%s: missing; export from an experiment (snnwb export EXPERIMENT) or pass --experiment FILE" % path)
    with open(path) as f:
        e = json.load(f)
    if a.epochs:
        e["epochs"] = a.epochs
    world = World(a.device)
    lead = world.rank == 0
    train, test = load_datasets(e, a.data, a.frames)
    net = build_model().to(world.device)
    load_npz(net, a.weights)
    net.to(world.device)
    params = [p for p in net.parameters()]
    opt = make_optimizer(e, params)
    cfg = Config(e["method"], e["T"], e.get("K", 1), e["loss"].get("lambda", 0.0), e["loss"].get("mse_target", 1.0))
    seed, B, epochs = int(e["seed"]), int(e["batch_size"]), int(e["epochs"])
    data_rng, train_rng, aug_rng = SnnRng(seed + 1), SnnRng(seed + 2), SnnRng(seed + 3)
    iters = (len(train) + B - 1) // B
    total = iters * epochs
    d = run_dir(a.out, e.get("name", "experiment"), lead)
    if lead:
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "experiment.json"), "w") as f:
            json.dump(e, f, indent=2)
        print("%s: %s, T=%d, batch %d over %d process%s, %d train / %d test samples, on %s; writing %s"
              % (e.get("name"), cfg.method, cfg.T, B, world.size, "es" if world.size > 1 else "", len(train),
                 len(test), world.device, d), flush=True)
    csv = CSV_HEADER
    aug = e["dataset"].get("augment", False) and train.x.ndim - (1 if train.seq_T else 0) == 4
    cifar = e["dataset"]["name"] in ("cifar10", "cifar100") and e["dataset"].get("normalize", True)
    norm = CIFAR_NORM[100 if e["dataset"]["name"] == "cifar100" else 10] if cifar else (None, None)
    it_global = 0
    for epoch in range(epochs):
        order = data_rng.permutation(len(train))
        sums = np.zeros(3)  # loss, correct, count
        timing = [0.0, 0.0]
        t_start = time.perf_counter()
        n_it = 0
        for it in range(iters):
            if a.iters and it_global >= a.iters:
                break
            idx = order[it * B:(it + 1) * B]
            n = len(idx)
            x, y = train.gather(np.array(idx))
            if aug:
                if train.seq_T:
                    augment_frames(x, aug_rng)
                else:
                    augment_images(x, aug_rng, *norm)
            lo, hi = world.rows(n)
            x = x[:, lo:hi] if train.seq_T else x[lo:hi]
            xt = torch.from_numpy(np.ascontiguousarray(x)).to(world.device)
            yt = torch.from_numpy(y[lo:hi]).to(world.device)
            lr = lr_at(e, it_global, total)
            for g in opt.param_groups:
                g["lr"] = lr
            opt.zero_grad(set_to_none=False)
            loss, o, _ = train_batch(net, cfg, xt, yt, train_rng, n, (lo, hi), bool(train.seq_T), timing=timing)
            world.sum_grads(params)
            stats = world.sum_(torch.tensor([loss, float(count_correct(o, yt))], dtype=torch.float64,
                                            device=world.device))
            if not np.isfinite(float(stats[0])):
                fail("epoch %d, iteration %d: the loss is not finite: training diverged "
                     "(try a smaller learning rate)" % (epoch + 1, it + 1))
            opt.step()
            sums += [float(stats[0]), float(stats[1]), n]
            n_it += 1
            it_global += 1
            if lead and sys.stderr.isatty() and it % 5 == 0:
                sys.stderr.write("\r  epoch %d %d/%d  loss %.4f" % (epoch + 1, it + 1, iters, float(stats[0])))
        seconds = time.perf_counter() - t_start
        acc = evaluate(net, test, cfg.T, B, world)
        n_it = max(n_it, 1)
        held = torch.cuda.max_memory_allocated(world.device) if world.device.type == "cuda" else 0
        row = (epoch + 1, sums[0] / n_it, sums[1] / max(sums[2], 1), acc, seconds * 1000 / n_it,
               timing[0] / n_it, timing[1] / n_it, held, peak_rss(), seconds)
        csv += "%d,%.6f,%.6f,%.6f,%.4f,%.4f,%.4f,%d,%d,%.3f\n" % row
        if lead:
            if sys.stderr.isatty():
                sys.stderr.write("\r\033[K")
            print("epoch %d/%d  train loss %.4f  train acc %.2f%%  test acc %.2f%%  %.2f ms/iter  %.1f s"
                  % (epoch + 1, epochs, row[1], 100 * row[2], 100 * acc, row[4], seconds), flush=True)
            with open(os.path.join(d, "metrics.csv"), "w") as f:
                f.write(csv)
            save_npz(net, os.path.join(d, "weights.npz"))
        if a.iters and it_global >= a.iters:
            break
    if world.size > 1:
        dist.barrier()
        dist.destroy_process_group()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grad", action="store_true", help="gradients of one batch (as snnwb grad), no update")
    p.add_argument("--weights", default=os.path.join(HERE, "weights.npz"), help="initial weights [weights.npz]")
    p.add_argument("--out", help="run folder (training) or G.npz (--grad)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    g = p.add_argument_group("training")
    g.add_argument("--experiment", help="experiment file [experiment.json next to train.py]")
    g.add_argument("--data", help="folder of the dataset's files (IDX or CIFAR binary)")
    g.add_argument("--frames", help="folder written by `snnwb frames` (event and synthetic datasets)")
    g.add_argument("--epochs", type=int, help="override the experiment's epochs")
    g.add_argument("--iters", type=int, default=0, help="stop after this many iterations")
    g = p.add_argument_group("--grad")
    g.add_argument("--input", help="X.npy: float32 (B, ...) static or (T, B, ...)")
    g.add_argument("--labels", help="Y.npy: integer (B,)")
    g.add_argument("--method", choices=("bptt", "sltt", "sltt_k"))
    g.add_argument("--T", type=int)
    g.add_argument("--k-steps", help="steps backpropagated by sltt_k, e.g. 0,3")
    g.add_argument("--lambda", dest="lam", type=float, default=0.0)
    g.add_argument("--mse-target", default="1.0")
    g.add_argument("--seed", type=int, default=0, help="seed of dropout masks [0]")
    g.add_argument("--force", action="store_true", help="replace OUT if it exists")
    a = p.parse_args(argv)
    if a.grad:
        if not (a.input and a.labels and a.method and a.T and a.T >= 1 and a.out):
            fail("--grad needs --input, --labels, --method, --T (>= 1) and --out")
        grad_main(a)
    else:
        train_main(a)


if __name__ == "__main__":
    main()
