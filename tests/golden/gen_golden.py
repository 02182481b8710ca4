#!/usr/bin/python3
"""Golden cases for `snnwb grad`, from an independent PyTorch reference.

Run with Debian's python3-torch and numpy (no pip):

    /usr/bin/python3 tests/golden/gen_golden.py

It rewrites tests/golden/cases/ (every case folder and MANIFEST.txt).  The
reference is computed in float64 from the float32 weights and inputs that are
written to the case.  A case is redrawn (next seed) until

  * every membrane value u of every lif layer (nested ones in residual blocks
    too) and step is at least MARGIN away
    from vth (and, for the rectangle surrogate, from vth +- width/2), so a
    float32 implementation makes the same spike decisions and sees the same
    surrogate branch;
  * every lif layer fires at a rate in [RATE_LO, RATE_HI];
  * ws layers keep N*var(W[o]) clearly away from eps (the max() switch);
  * every parameter gradient is non-zero;
  * where T > 1, the bptt and sltt gradients differ (so the case tells the
    methods apart), and
  * the same computation in float32 (torch) agrees with the float64 one to
    F32_CHECK times the largest reference value of each array (ten times
    tighter than the C test's 1e-4), so the case is not ill-conditioned.

Self-checks (assertions, not redraws): sltt_k over all steps equals sltt;
at T = 1 bptt equals sltt; sltt backpropagated step by step equals sltt
backpropagated as one graph.
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "cases")

MARGIN = 2e-3
RATE_LO, RATE_HI = 0.05, 0.60
F32_CHECK = 1e-5
WS_MARGIN = 0.02
METHOD_DIFF = 1e-3  # bptt and sltt gradients must differ by this much (T > 1)  # relative distance of N*var from eps

torch.set_num_threads(1)


# ---------------------------------------------------------------- the model

def fill_defaults(layer):
    """The layer object with every default spelled out."""
    d = dict(layer)
    t = d["type"]
    if t in ("linear", "conv"):
        d.setdefault("bias", True)
        ws = d.get("ws", False)
        if ws is True:
            ws = {}
        if isinstance(ws, dict):
            ws = {"gamma": float(ws.get("gamma", 1.0)), "eps": float(ws.get("eps", 1e-4))}
        d["ws"] = ws
        if t == "conv":
            d.setdefault("stride", 1)
            d.setdefault("pad", 0)
    elif t == "avgpool":
        d.setdefault("stride", d["k"])
        d.setdefault("pad", 0)
    elif t == "bn_step":
        d.setdefault("eps", 1e-5)
        d.setdefault("momentum", 0.1)
    elif t == "lif":
        d.setdefault("tau", 1.1)
        d.setdefault("vth", 1.0)
        d.setdefault("reset", "soft")
        d.setdefault("surrogate", "triangle")
        d.setdefault("width", d["vth"])
        d.setdefault("alpha", {"sigmoid": 4.0, "atan": 2.0}.get(d["surrogate"], 0.0))
        d.setdefault("detach_reset", False)
    elif t in ("flatten", "global_avgpool"):
        pass
    elif t == "scale":
        d["value"] = float(d["value"])
    elif t == "residual":
        for part in ("pre", "main", "shortcut"):
            d[part] = list(d.get(part) or [])
        d.setdefault("shortcut_from", "pre" if d["pre"] else "input")
        d["alpha"] = float(d.get("alpha", 1.0))
        d.setdefault("skipinit", False)
    else:
        raise ValueError("layer type %r is not used by the golden cases" % t)
    return d


def walk(layers, prefix=""):
    """(path, layer with defaults) for every layer, nested blocks included, in
    forward order; a top-level layer's path is its index ("3"), a nested one's
    continues it ("3.main.0")."""
    for i, raw in enumerate(layers):
        l = fill_defaults(raw)
        path = "%s%d" % (prefix, i)
        yield path, l
        if l["type"] == "residual":
            for part in ("pre", "main", "shortcut"):
                yield from walk(l[part], "%s.%s." % (path, part))


def param_specs(model):
    """[(name, shape, trainable)] in layer order."""
    out = []
    for i, l in walk(model["layers"]):
        if l["type"] == "linear":
            out.append(("%s.weight" % i, (l["out"], l["in"]), True))
            if l["bias"]:
                out.append(("%s.bias" % i, (l["out"],), True))
            if l["ws"]:
                out.append(("%s.gain" % i, (l["out"],), True))
        elif l["type"] == "conv":
            out.append(("%s.weight" % i, (l["out_ch"], l["in_ch"], l["k"], l["k"]), True))
            if l["bias"]:
                out.append(("%s.bias" % i, (l["out_ch"],), True))
            if l["ws"]:
                out.append(("%s.gain" % i, (l["out_ch"],), True))
        elif l["type"] == "bn_step":
            n = l["num_features"]
            out += [("%s.weight" % i, (n,), True), ("%s.bias" % i, (n,), True),
                    ("%s.running_mean" % i, (n,), False), ("%s.running_var" % i, (n,), False)]
        elif l["type"] == "residual" and l["skipinit"]:
            out.append(("%s.skipinit_gain" % i, (1,), True))
    return out


class Spike(torch.autograd.Function):
    """Heaviside (spike when u >= vth) forward, surrogate derivative backward."""

    @staticmethod
    def forward(ctx, u, vth, kind, width, alpha):
        ctx.save_for_backward(u)
        ctx.cfg = (vth, kind, width, alpha)
        return (u >= vth).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        vth, kind, g, a = ctx.cfg
        x = u - vth
        if kind == "rectangle":
            d = (x.abs() < g / 2).to(u.dtype) / g
        elif kind == "triangle":
            d = torch.clamp(g - x.abs(), min=0.0) / (g * g)
        elif kind == "sigmoid":
            s = torch.sigmoid(a * x)
            d = a * s * (1 - s)
        elif kind == "atan":
            d = a / (2 * (1 + (math.pi / 2 * a * x) ** 2))
        else:
            raise ValueError(kind)
        return grad * d, None, None, None, None


def standardised(w, gain, ws):
    """Scaled weight standardisation of w (out, ...) over each row's fan-in."""
    rows = w.reshape(w.shape[0], -1)
    n = rows.shape[1]
    mean = rows.mean(dim=1, keepdim=True)
    var = ((rows - mean) ** 2).mean(dim=1, keepdim=True)       # population variance
    denom = torch.sqrt(torch.clamp(n * var, min=ws["eps"]))
    scale = ws["gamma"] * gain.reshape(-1, 1) / denom
    return ((rows - mean) * scale).reshape(w.shape)


def step_loss(o, y, lam, target):
    ce = F.cross_entropy(o, y)  # mean over the batch
    if target == "onehot":
        tgt = F.one_hot(y, o.shape[1]).to(o.dtype)
    else:
        tgt = torch.full_like(o, float(target))
    mse = ((o - tgt) ** 2).mean()
    return (1 - lam) * ce + lam * mse


def run(model, weights, X, Y, method, T, k_steps=None, lam=0.0, target=1.0,
        dtype=torch.float64, one_graph=False, want_grad=True):
    """Forward all T steps; backward per `method`.  Returns a dict of numpy
    arrays: loss, o, grad.<name>, spikes.<i>, v.<i> (u before reset)."""
    P = {}
    for name, _, trainable in param_specs(model):
        P[name] = torch.tensor(np.asarray(weights[name], np.float32), dtype=dtype,
                               requires_grad=trainable and want_grad)
    x_all = torch.tensor(np.asarray(X, np.float32), dtype=dtype)
    y = torch.tensor(np.asarray(Y, np.int64))
    sequence = x_all.dim() == len(model["input_shape"]) + 2
    if sequence:
        assert x_all.shape[0] == T
    if method == "bptt":
        bp = set(range(T))
    elif method == "sltt":
        bp = set(range(T))
    elif method == "sltt_k":
        bp = set(k_steps)
    else:
        raise ValueError(method)

    v = {}
    rec_s = {i: [] for i, l in walk(model["layers"]) if l["type"] == "lif"}
    rec_u = {i: [] for i in rec_s}

    def forward(seq, prefix, h):
        for j, raw in enumerate(seq):
            l = fill_defaults(raw)
            i = "%s%d" % (prefix, j)
            typ = l["type"]
            if typ in ("linear", "conv"):
                w = P["%s.weight" % i]
                if l["ws"]:
                    w = standardised(w, P["%s.gain" % i], l["ws"])
                b = P["%s.bias" % i] if l["bias"] else None
                if typ == "linear":
                    h = h @ w.t()
                    if b is not None:
                        h = h + b
                else:
                    h = F.conv2d(h, w, b, stride=l["stride"], padding=l["pad"])
            elif typ == "avgpool":
                # zero padding, divisor always k*k
                h = F.avg_pool2d(h, l["k"], l["stride"], padding=l["pad"], count_include_pad=True)
            elif typ == "global_avgpool":
                h = h.mean(dim=(2, 3), keepdim=True)
            elif typ == "scale":
                h = l["value"] * h
            elif typ == "flatten":
                h = h.reshape(h.shape[0], -1)
            elif typ == "residual":
                p = forward(l["pre"], i + ".pre.", h)
                m = forward(l["main"], i + ".main.", p)
                src = p if l["shortcut_from"] == "pre" else h
                sc = forward(l["shortcut"], i + ".shortcut.", src)
                if l["skipinit"]:
                    m = (l["alpha"] * P["%s.skipinit_gain" % i]) * m
                elif l["alpha"] != 1.0:
                    m = l["alpha"] * m
                assert m.shape == sc.shape, (i, m.shape, sc.shape)
                h = m + sc
            elif typ == "bn_step":
                dims = (0,) if h.dim() == 2 else (0, 2, 3)
                shape = (1, -1) if h.dim() == 2 else (1, -1, 1, 1)
                mean = h.mean(dim=dims, keepdim=True)
                var = ((h - mean) ** 2).mean(dim=dims, keepdim=True)  # biased
                h = (h - mean) / torch.sqrt(var + l["eps"])
                h = h * P["%s.weight" % i].reshape(shape) + P["%s.bias" % i].reshape(shape)
            elif typ == "lif":
                leak = 1.0 - 1.0 / l["tau"]
                if i in v:
                    prev = v[i] if method == "bptt" else v[i].detach()
                    u = leak * prev + h
                else:
                    u = h  # v[0] = 0
                s = Spike.apply(u, l["vth"], l["surrogate"], l["width"], l["alpha"])
                sr = s.detach() if l["detach_reset"] else s
                if l["reset"] == "soft":
                    v[i] = u - l["vth"] * sr
                else:
                    v[i] = u * (1 - sr)
                rec_u[i].append(u.detach().clone())
                rec_s[i].append(s.detach().clone())
                h = s
            else:
                raise ValueError(typ)
        return h

    outs = []
    total = 0.0
    graph_loss = None
    for t in range(T):
        h = x_all[t] if sequence else x_all
        h = forward(model["layers"], "", h)
        outs.append(h.detach().clone())
        lt = step_loss(h, y, lam, target) / T
        total += float(lt.detach())
        if not want_grad or t not in bp:
            continue
        if method == "bptt" or one_graph:
            graph_loss = lt if graph_loss is None else graph_loss + lt
        else:
            lt.backward()
    if want_grad and graph_loss is not None:
        graph_loss.backward()

    res = {"loss": np.array(total, np.float64), "o": torch.stack(outs).numpy()}
    if want_grad:
        for name, _, trainable in param_specs(model):
            if trainable:
                g = P[name].grad
                res["grad." + name] = (np.zeros(P[name].shape) if g is None else g.numpy()).astype(np.float64)
    for i in rec_s:  # nested lif layers too ("spikes.3.main.2"); write_case keeps top-level ones
        res["spikes.%s" % i] = torch.stack(rec_s[i]).numpy().astype(np.float64)
        res["v.%s" % i] = torch.stack(rec_u[i]).numpy().astype(np.float64)
    return res


# ------------------------------------------------------------ case drawing

def lin(i, o, **kw):
    return dict({"type": "linear", "in": i, "out": o}, **kw)


def conv(i, o, k, **kw):
    return dict({"type": "conv", "in_ch": i, "out_ch": o, "k": k}, **kw)


def lif(**kw):
    return dict({"type": "lif"}, **kw)


def bn(n, **kw):
    return dict({"type": "bn_step", "num_features": n}, **kw)


def scale(value):
    return {"type": "scale", "value": value}


def residual(main, pre=None, shortcut=None, **kw):
    d = {"type": "residual"}
    if pre is not None:
        d["pre"] = pre
    d["main"] = main
    if shortcut is not None:
        d["shortcut"] = shortcut
    d.update(kw)
    return d


POOL2 = {"type": "avgpool", "k": 2}
FLAT = {"type": "flatten"}
GAP = {"type": "global_avgpool"}
NF_ALPHA = 0.2
NF_GAMMA = 2.74

BPTT, SLTT = ("bptt", None), ("sltt", None)


def K(*steps):
    return ("sltt_k", list(steps))


# Each network is drawn once and run under every listed method; cases are
# named <net>_<method>.
NETS = [
    dict(name="mlp_triangle", desc="MLP, triangle surrogate, soft reset, static input, CE only",
         input_shape=[8], classes=4, B=3, T=5, input="static_normal", lam=0.0, target=1.0,
         layers=[lin(8, 12), lif(), lin(12, 4)],
         methods=[BPTT, SLTT, K(0, 3)]),
    dict(name="mlp_rectangle", desc="MLP, rectangle surrogate (default width), tau 1.5, CE + MSE to 1.0",
         input_shape=[6], classes=3, B=4, T=4, input="static_uniform", lam=0.05, target=1.0,
         layers=[lin(6, 10), lif(surrogate="rectangle", tau=1.5), lin(10, 3)],
         methods=[BPTT, SLTT, K(2)]),
    dict(name="mlp_sigmoid_hard", desc="MLP, sigmoid surrogate (alpha 4), hard reset, MSE to one-hot",
         input_shape=[8], classes=4, B=3, T=5, input="static_normal", lam=0.05, target="onehot",
         layers=[lin(8, 10), lif(surrogate="sigmoid", reset="hard"), lin(10, 4)],
         methods=[BPTT, SLTT]),
    dict(name="mlp_atan_detach", desc="MLP, atan surrogate (alpha 2), soft reset with detach_reset, T 6",
         input_shape=[7], classes=3, B=3, T=6, input="static_normal", lam=0.0, target=1.0,
         layers=[lin(7, 10), lif(surrogate="atan", detach_reset=True), lin(10, 3)],
         methods=[BPTT, SLTT]),
    dict(name="mlp2_rect_tau2", desc="two LIF layers, rectangle, tau 2.0, hard reset + detach_reset, "
                                     "bias-free hidden linear, MSE to one-hot",
         input_shape=[6], classes=3, B=3, T=5, input="static_normal", lam=0.05, target="onehot",
         layers=[lin(6, 10), lif(surrogate="rectangle", reset="hard", tau=2.0, detach_reset=True),
                 lin(10, 8, bias=False), lif(surrogate="rectangle", tau=2.0), lin(8, 3)],
         methods=[BPTT, SLTT]),
    dict(name="mlp_bn", desc="linear -> bn_step -> lif twice (eps/momentum given on the second), B 4",
         input_shape=[6], classes=3, B=4, T=4, input="static_normal", lam=0.05, target=1.0,
         layers=[lin(6, 10, bias=False), bn(10), lif(), lin(10, 8, bias=False),
                 bn(8, eps=1e-3, momentum=0.2), lif(surrogate="sigmoid"), lin(8, 3)],
         methods=[BPTT, SLTT, K(2)]),
    dict(name="mlp_ws", desc="ws on linear: default (true), {gamma 1.5, eps 0.3} with some rows clamped "
                             "by eps, {gamma 0.8} on the readout; atan hard reset",
         input_shape=[6], classes=3, B=3, T=5, input="static_normal", lam=0.0, target=1.0,
         layers=[lin(6, 10, ws=True), lif(), lin(10, 8, ws={"gamma": 1.5, "eps": 0.3}),
                 lif(surrogate="atan", reset="hard"), lin(8, 3, ws={"gamma": 0.8})],
         ws_clamp=[2],
         methods=[BPTT, SLTT]),
    dict(name="mlp_vth05", desc="vth 0.5: triangle with width 0.8 + hard reset, then rectangle with "
                                "default width (= vth); MSE to 0.5",
         input_shape=[6], classes=3, B=3, T=4, input="static_normal", lam=0.05, target=0.5,
         layers=[lin(6, 10), lif(vth=0.5, width=0.8, reset="hard"), lin(10, 8),
                 lif(vth=0.5, surrogate="rectangle"), lin(8, 3)],
         methods=[BPTT, SLTT]),
    dict(name="seq_mlp", desc="sequence input (T,B,F), sigmoid alpha 2.5 and atan alpha 3 tau 1.5",
         input_shape=[5], classes=4, B=3, T=6, input="seq_normal", lam=0.0, target=1.0,
         layers=[lin(5, 10), lif(surrogate="sigmoid", alpha=2.5), lin(10, 8),
                 lif(surrogate="atan", alpha=3.0, tau=1.5), lin(8, 4)],
         methods=[BPTT, SLTT, K(1, 4)]),
    dict(name="seq_binary", desc="binary event sequence, triangle, tau 2.0, hard reset, lambda 0.3 MSE to 0.5",
         input_shape=[8], classes=3, B=4, T=4, input="seq_binary", lam=0.3, target=0.5,
         layers=[lin(8, 12), lif(tau=2.0, reset="hard"), lin(12, 3)],
         methods=[BPTT, SLTT]),
    dict(name="conv_bn", desc="1x6x6: conv k3 pad1 (no bias) -> bn_step -> lif -> avgpool 2 -> conv -> lif "
                              "-> flatten -> linear",
         input_shape=[1, 6, 6], classes=3, B=2, T=4, input="static_uniform", lam=0.05, target=1.0,
         layers=[conv(1, 3, 3, pad=1, bias=False), bn(3), lif(), POOL2, conv(3, 4, 3, pad=1), lif(),
                 FLAT, lin(36, 3)],
         methods=[BPTT, SLTT, K(2)]),
    dict(name="conv_ws", desc="2x8x8: ws conv (default) -> rectangle lif -> avgpool -> ws conv "
                              "{gamma 2, eps 1e-3} pad 0 -> lif -> flatten -> linear; MSE to one-hot",
         input_shape=[2, 8, 8], classes=3, B=2, T=5, input="static_uniform", lam=0.05, target="onehot",
         layers=[conv(2, 3, 3, pad=1, ws=True), lif(surrogate="rectangle"), POOL2,
                 conv(3, 4, 3, ws={"gamma": 2.0, "eps": 1e-3}), lif(), FLAT, lin(16, 3)],
         methods=[BPTT, SLTT, K(0, 3)]),
    dict(name="conv_t1", desc="T 1 conv net, atan then sigmoid",
         input_shape=[1, 6, 6], classes=3, B=3, T=1, input="static_uniform", lam=0.0, target=1.0,
         layers=[conv(1, 2, 3, pad=1), lif(surrogate="atan"), POOL2, conv(2, 3, 3, pad=1),
                 lif(surrogate="sigmoid"), FLAT, lin(27, 3)],
         methods=[BPTT, SLTT]),
    dict(name="conv_seq", desc="sequence input (T,B,C,H,W), conv stride 2 pad 1, sigmoid, hard reset "
                               "+ detach_reset",
         input_shape=[1, 6, 6], classes=3, B=2, T=4, input="seq_normal", lam=0.05, target=1.0,
         layers=[conv(1, 3, 3, stride=2, pad=1), lif(surrogate="sigmoid", reset="hard", detach_reset=True),
                 FLAT, lin(27, 3)],
         methods=[BPTT, SLTT]),
    dict(name="conv_pool_stride", desc="1x7x7: conv k3 pad0 -> rectangle lif (hard, tau 2.0) -> avgpool k3 "
                                       "stride 2 -> flatten -> linear; T 6, MSE to one-hot",
         input_shape=[1, 7, 7], classes=3, B=2, T=6, input="static_uniform", lam=0.05, target="onehot",
         layers=[conv(1, 3, 3), lif(surrogate="rectangle", reset="hard", tau=2.0),
                 {"type": "avgpool", "k": 3, "stride": 2}, FLAT, lin(12, 3)],
         methods=[BPTT, SLTT]),
    # ---- residual blocks, scale, global_avgpool, avgpool pad (appended: the
    # seeds of the networks above depend on their index and must not move)
    dict(name="conv_scale_pad", desc="2x7x7: conv -> scale 0.6 -> lif -> scale 2.74 -> avgpool k3 stride 2 "
                                     "pad 1 -> conv -> sigmoid lif -> avgpool k2 pad 1 -> flatten -> linear",
         input_shape=[2, 7, 7], classes=3, B=2, T=4, input="static_uniform", lam=0.05, target=1.0,
         layers=[conv(2, 3, 3, pad=1), scale(0.6), lif(), scale(NF_GAMMA),
                 {"type": "avgpool", "k": 3, "stride": 2, "pad": 1}, conv(3, 4, 3, pad=1),
                 lif(surrogate="sigmoid"), {"type": "avgpool", "k": 2, "pad": 1}, FLAT, lin(36, 3)],
         methods=[BPTT, SLTT]),
    dict(name="res_preact", desc="2x6x6: conv stem (no bias) -> pre-activation block, identity shortcut "
                                 "(shortcut and shortcut_from left to their defaults) -> pre-activation "
                                 "block, stride 2, 1x1 conv shortcut from \"pre\" -> bn_step -> lif -> "
                                 "global_avgpool -> flatten -> linear",
         input_shape=[2, 6, 6], classes=3, B=2, T=4, input="static_uniform", lam=0.05, target=1.0,
         layers=[conv(2, 4, 3, pad=1, bias=False),
                 residual(pre=[bn(4), lif()],
                          main=[conv(4, 4, 3, pad=1, bias=False), bn(4), lif(), conv(4, 4, 3, pad=1, bias=False)]),
                 residual(pre=[bn(4), lif()],
                          main=[conv(4, 6, 3, stride=2, pad=1, bias=False), bn(6), lif(),
                                conv(6, 6, 3, pad=1, bias=False)],
                          shortcut=[conv(4, 6, 1, stride=2, bias=False)], shortcut_from="pre"),
                 bn(6), lif(), GAP, FLAT, lin(6, 3)],
         methods=[BPTT, SLTT, K(0, 2)]),
    dict(name="res_nf", desc="2x8x8: ws conv stem -> avgpool k3 stride 2 pad 1 -> NF block (beta 1, identity "
                             "shortcut from \"input\") -> NF block (beta sqrt(1.04), stride 2, ws 1x1 shortcut "
                             "from \"pre\"); alpha 0.2, skipinit with non-zero gains -> global_avgpool -> "
                             "flatten -> linear",
         input_shape=[2, 8, 8], classes=3, B=2, T=4, input="static_uniform", lam=0.05, target=1.0,
         layers=[conv(2, 4, 3, pad=1, ws=True),
                 {"type": "avgpool", "k": 3, "stride": 2, "pad": 1},
                 residual(pre=[scale(1.0), lif(), scale(NF_GAMMA)],
                          main=[conv(4, 4, 3, pad=1, ws=True), lif(), scale(NF_GAMMA),
                                conv(4, 4, 3, pad=1, ws=True)],
                          shortcut=[], shortcut_from="input", alpha=NF_ALPHA, skipinit=True),
                 residual(pre=[scale(1.0 / math.sqrt(1.0 + NF_ALPHA ** 2)), lif(), scale(NF_GAMMA)],
                          main=[conv(4, 8, 3, stride=2, pad=1, ws=True), lif(), scale(NF_GAMMA),
                                conv(8, 8, 3, pad=1, ws=True)],
                          shortcut=[conv(4, 8, 1, stride=2, ws=True)], shortcut_from="pre",
                          alpha=NF_ALPHA, skipinit=True),
                 GAP, FLAT, lin(8, 3)],
         # the lif at the head of a block's pre list: scale the stem, and the
         # first block's last conv, which feeds the second block's stream
         tune={"2.pre.1": ["0"], "3.pre.1": ["2.main.3"]},
         methods=[BPTT, SLTT]),
]


def init_weights(model, rng, net):
    layers = dict(walk(model["layers"]))
    w = {}
    for name, shape, _ in param_specs(model):
        i, p = name.rsplit(".", 1)
        l = layers[i]
        if l["type"] == "residual":  # skipinit_gain: non-zero, so the main path matters
            a = rng.uniform(*net.get("skipinit_range", (0.8, 1.6)), shape)
        elif l["type"] in ("linear", "conv"):
            fan_in = int(np.prod(model_weight_shape(l)[1:]))
            bound = 1.0 / math.sqrt(fan_in)
            if p == "weight":
                a = rng.uniform(-bound, bound, shape)
                if l["ws"]:  # ws ignores a row's scale except through eps
                    a *= np.exp(rng.uniform(-0.7, 0.7, (shape[0],) + (1,) * (len(shape) - 1)))
            elif p == "bias":
                a = rng.uniform(-bound, bound, shape)
            else:  # gain
                a = rng.uniform(0.8, 1.2, shape)
        else:  # bn_step
            a = {"weight": lambda: rng.uniform(0.8, 1.2, shape),
                 "bias": lambda: rng.uniform(-0.2, 0.2, shape),
                 # never used in training mode: random, so that a mix-up shows
                 "running_mean": lambda: rng.uniform(-0.5, 0.5, shape),
                 "running_var": lambda: rng.uniform(0.5, 2.0, shape)}[p]()
        w[name] = a.astype(np.float64)
    return w


def model_weight_shape(l):
    if l["type"] == "linear":
        return (l["out"], l["in"])
    return (l["out_ch"], l["in_ch"], l["k"], l["k"])


def affine_group(path, l):
    """The parameters that scale the output of an affine layer."""
    if l["type"] == "bn_step":
        return ["%s.weight" % path, "%s.bias" % path]
    names = ["%s.gain" % path] if l["ws"] else ["%s.weight" % path]
    if l["bias"]:
        names.append("%s.bias" % path)
    return names


def scaled_group(model, lif_path, net):
    """Parameters that set the input scale of lif layer `lif_path`: the
    closest affine layer before it in its own layer list, or the layers that
    net["tune"] names for it (a lif at the head of a block's list)."""
    layers = dict(walk(model["layers"]))
    if lif_path in net.get("tune", {}):
        return [k for q in net["tune"][lif_path] for k in affine_group(q, layers[q])]
    prefix, _, idx = lif_path.rpartition(".")
    prefix = prefix + "." if prefix else ""
    for j in range(int(idx) - 1, -1, -1):
        q = "%s%d" % (prefix, j)
        if layers[q]["type"] in ("bn_step", "linear", "conv"):
            return affine_group(q, layers[q])
    raise ValueError("no affine layer before lif %s" % lif_path)


def f32(w):
    return {k: np.asarray(v, np.float32) for k, v in w.items()}


def draw_input(net, rng):
    shape = [net["B"]] + net["input_shape"]
    kind = net["input"]
    if kind.startswith("seq"):
        shape = [net["T"]] + shape
    if kind.endswith("normal"):
        x = rng.normal(0.0, 1.0, shape)
    elif kind.endswith("uniform"):
        x = rng.uniform(0.0, 1.0, shape)
    elif kind.endswith("binary"):
        x = (rng.uniform(0.0, 1.0, shape) < 0.3).astype(np.float64)
    return x.astype(np.float32)


def forward_only(model, w, X, Y, net):
    return run(model, f32(w), X, Y, "bptt", net["T"], lam=net["lam"], target=net["target"], want_grad=False)


def tune(model, w, X, Y, net, rng):
    """Scale each lif layer's input so that it fires at a rate near a random
    target in [0.15, 0.35]."""
    grid = 2.0 ** (np.arange(-16, 29) / 4.0)
    for i, l in walk(model["layers"]):
        if l["type"] != "lif":
            continue
        goal = rng.uniform(0.15, 0.35)
        group = scaled_group(model, i, net)
        base = {k: w[k].copy() for k in group}
        best = None
        for s in grid:
            for k in group:
                w[k] = base[k] * s
            rate = forward_only(model, w, X, Y, net)["spikes.%s" % i].mean()
            if best is None or abs(rate - goal) < best[0]:
                best = (abs(rate - goal), s)
        for k in group:
            w[k] = base[k] * best[1]
    return w


def problems(model, w, fwd, net):
    """Reasons to redraw the case, from the forward pass (float64)."""
    out = []
    for i, l in walk(model["layers"]):  # nested lif and ws layers too
        if l["type"] == "lif":
            u = fwd["v.%s" % i]
            x = np.abs(u - l["vth"])
            if x.min() <= MARGIN:
                out.append("lif %s: |u - vth| = %.2g" % (i, x.min()))
            if l["surrogate"] == "rectangle" and np.abs(x - l["width"] / 2).min() <= MARGIN:
                out.append("lif %s: u at the rectangle's edge" % i)
            rate = fwd["spikes.%s" % i].mean()
            if not RATE_LO <= rate <= RATE_HI:
                out.append("lif %s: rate %.3f" % (i, rate))
        if l["type"] in ("linear", "conv") and l["ws"]:
            rows = np.asarray(w["%s.weight" % i], np.float32).astype(np.float64).reshape(
                model_weight_shape(l)[0], -1)
            nvar = rows.shape[1] * rows.var(axis=1)
            rel = np.abs(nvar - l["ws"]["eps"]) / l["ws"]["eps"]
            if rel.min() <= WS_MARGIN:
                out.append("ws %s: N*var close to eps" % i)
            if i in [str(c) for c in net.get("ws_clamp", [])]:
                below = (nvar < l["ws"]["eps"]).sum()
                if not 0 < below < len(nvar):
                    out.append("ws %s: %d of %d rows clamped" % (i, below, len(nvar)))
    return out


def compare(a, b):
    """Largest |a - b| relative to max|b| over every array of b."""
    worst = 0.0
    for k in b:
        scale = np.abs(b[k]).max()
        d = np.abs(a[k] - b[k]).max()
        worst = max(worst, d / scale if scale > 0 else (0.0 if d == 0 else np.inf))
    return worst


def grad_problems(model, w, X, Y, net, method, k_steps, ref):
    out = []
    for k, g in ref.items():
        if k.startswith("grad.") and np.abs(g).max() == 0:
            out.append("%s %s: zero gradient" % (method, k))
    r32 = run(model, f32(w), X, Y, method, net["T"], k_steps, net["lam"], net["target"], dtype=torch.float32)
    r32 = {k: np.asarray(v, np.float64) for k, v in r32.items()}
    for k in ref:
        if k.startswith("spikes.") and not np.array_equal(r32[k], ref[k]):
            out.append("%s %s: float32 spikes differ" % (method, k))
    bad = compare(r32, ref)
    if bad > F32_CHECK:
        out.append("%s: float32 differs from float64 by %.2g of the largest value" % (method, bad))
    return out


def self_checks(model, w, X, Y, net, results):
    T = net["T"]
    args = (model, f32(w), X, Y)
    kw = dict(lam=net["lam"], target=net["target"])
    sltt = results.get("sltt") or run(*args, "sltt", T, **kw)
    all_k = run(*args, "sltt_k", T, list(range(T)), **kw)
    assert compare(all_k, sltt) <= 1e-12, "sltt_k over all steps != sltt"
    one = run(*args, "sltt", T, one_graph=True, **kw)
    assert compare(one, sltt) <= 1e-12, "sltt per step != sltt as one graph"
    bptt = results.get("bptt") or run(*args, "bptt", T, **kw)
    if T == 1:
        assert compare(bptt, sltt) <= 1e-12, "T = 1: bptt != sltt"
    # the forward pass is the same under every method
    for k in sltt:
        if not k.startswith("grad."):
            assert np.array_equal(sltt[k], bptt[k]), k


def method_tag(method, k_steps):
    return method if method != "sltt_k" else "sltt_k" + "".join(map(str, k_steps))


def draw_net(index, net):
    model = {"input_shape": net["input_shape"], "num_classes": net["classes"], "layers": net["layers"]}
    for attempt in range(200):
        seed = 1000 * (index + 1) + attempt
        rng = np.random.default_rng(seed)
        X = draw_input(net, rng)
        Y = rng.integers(0, net["classes"], net["B"]).astype(np.int64)
        w = tune(model, init_weights(model, rng, net), X, Y, net, rng)
        w = {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}
        fwd = forward_only(model, w, X, Y, net)
        why = problems(model, w, fwd, net)
        results = {}
        for method, k_steps in net["methods"]:
            if why:
                break
            ref = run(model, f32(w), X, Y, method, net["T"], k_steps, net["lam"], net["target"])
            why += grad_problems(model, w, X, Y, net, method, k_steps, ref)
            results[method_tag(method, k_steps)] = ref
        if not why and net["T"] > 1 and "bptt" in results and "sltt" in results:
            grads = lambda r: {k: v for k, v in r.items() if k.startswith("grad.")}
            d = compare(grads(results["sltt"]), grads(results["bptt"]))
            if d < METHOD_DIFF:
                why.append("bptt and sltt gradients differ by only %.2g" % d)
        if why:
            print("  %s seed %d redrawn: %s" % (net["name"], seed, "; ".join(why[:3])))
            continue
        self_checks(model, w, X, Y, net, results)
        return model, f32(w), X, Y, results, seed
    sys.exit("%s: no acceptable draw in 200 seeds" % net["name"])


def write_case(name, model, w, X, Y, net, method, k_steps, ref):
    d = os.path.join(CASES, name)
    os.makedirs(d)
    with open(os.path.join(d, "model.json"), "w") as f:
        json.dump(model, f, indent=1)
        f.write("\n")
    np.savez(os.path.join(d, "weights.npz"), **{k: np.ascontiguousarray(v, np.float32) for k, v in w.items()})
    np.save(os.path.join(d, "input.npy"), np.ascontiguousarray(X, np.float32))
    np.save(os.path.join(d, "labels.npy"), np.ascontiguousarray(Y, np.int64))
    args = {"method": method, "T": net["T"]}
    if method == "sltt_k":
        args["k_steps"] = list(k_steps)
    args["lambda"] = net["lam"]
    args["mse_target"] = net["target"]
    with open(os.path.join(d, "args.json"), "w") as f:
        json.dump(args, f)
        f.write("\n")
    exp = {}
    for k, v in ref.items():
        if k.startswith(("spikes.", "v.")) and not k.split(".", 1)[1].isdigit():
            continue  # snnwb grad writes spikes/v of top-level lif layers only
        exp[k] = np.ascontiguousarray(v, np.float32)
    exp["loss"] = np.array(np.float32(ref["loss"]))
    np.savez(os.path.join(d, "expected.npz"), **exp)


def main():
    if os.path.isdir(CASES):
        shutil.rmtree(CASES)
    os.makedirs(CASES)
    names = []
    for index, net in enumerate(NETS):
        model, w, X, Y, results, seed = draw_net(index, net)
        rates = ", ".join("%.2f" % results["bptt"][k].mean() for k in sorted(results["bptt"]) if k.startswith("spikes."))
        print("%s: seed %d, spike rates %s, loss %.4f" % (net["name"], seed, rates, results["bptt"]["loss"]))
        for tag in results:
            if tag != "bptt":
                d = compare({k: v for k, v in results[tag].items() if k.startswith("grad.")},
                            {k: v for k, v in results["bptt"].items() if k.startswith("grad.")})
                print("    %s vs bptt: gradients differ by %.3g of the largest" % (tag, d))
        for method, k_steps in net["methods"]:
            tag = method_tag(method, k_steps)
            name = "%s_%s" % (net["name"], tag)
            write_case(name, model, w, X, Y, net, method, k_steps, results[tag])
            names.append(name)
    with open(os.path.join(CASES, "MANIFEST.txt"), "w") as f:
        f.write("\n".join(names) + "\n")
    print("%d cases in %s" % (len(names), CASES))


if __name__ == "__main__":
    main()
