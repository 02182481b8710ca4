#!/usr/bin/python3
"""Writes the residual/VGG preset models, their experiments and the parameter
counts the C test compares with.

    /usr/bin/python3 models/gen_presets.py

Needs Debian's python3-torch (no pip).  For every preset it

  * writes models/NAME.json (format of docs/formats.md);
  * builds the same network a second, independent way from torch.nn modules
    (Conv2d, BatchNorm2d, Linear, a per-channel ws gain of shape (out,) and a
    1-element skipinit gain), runs one forward pass on a zero batch to check
    the output shape, and counts its trainable parameters (BN running
    statistics excluded);
  * checks that count against one derived from the JSON alone (a shape walk
    of the model file), and
  * writes tests/golden/preset_params.json {name: count}.

Deterministic: the same files byte for byte on every run.
"""
import json
import math
import os
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GAMMA = 2.74      # the spike scale of sWS networks (OTTT / SLTT)
NF_ALPHA = 0.2

torch.set_num_threads(4)


# ------------------------------------------------------------ JSON layers

def conv(i, o, k, **kw):
    return dict({"type": "conv", "in_ch": i, "out_ch": o, "k": k}, **kw)


def lin(i, o, **kw):
    return dict({"type": "linear", "in": i, "out": o}, **kw)


def bn(n):
    return {"type": "bn_step", "num_features": n}


def lif():
    return {"type": "lif"}


def scale(v):
    return {"type": "scale", "value": v}


def dropout(p):
    return {"type": "dropout", "p": p}


def avgpool(k, stride=None, pad=None):
    d = {"type": "avgpool", "k": k}
    if stride is not None:
        d["stride"] = stride
    if pad is not None:
        d["pad"] = pad
    return d


GAP = {"type": "global_avgpool"}
FLAT = {"type": "flatten"}


# ---------------------------------------------------------- torch modules

class WSConv(nn.Conv2d):
    """sWS conv as in docs/formats.md: gain (out,), population variance,
    sqrt(max(N var, eps)), gamma 1."""

    def __init__(self, i, o, k, stride=1, pad=0, bias=True, eps=1e-4):
        super().__init__(i, o, k, stride=stride, padding=pad, bias=bias)
        self.gain = nn.Parameter(torch.ones(o))
        self.eps = eps

    def forward(self, x):
        w = self.weight.reshape(self.out_channels, -1)
        mean = w.mean(1, keepdim=True)
        var = ((w - mean) ** 2).mean(1, keepdim=True)
        w = (w - mean) * self.gain[:, None] / torch.sqrt(torch.clamp(w.shape[1] * var, min=self.eps))
        return F.conv2d(x, w.reshape(self.weight.shape), self.bias, self.stride, self.padding)


class Spike(nn.Module):
    """One step of a LIF layer from rest (u = x): enough for shape checks."""

    def forward(self, x):
        return (x >= 1.0).to(x.dtype)


class Scale(nn.Module):
    def __init__(self, v):
        super().__init__()
        self.v = v

    def forward(self, x):
        return self.v * x


class PreActBlock(nn.Module):
    """SLTT repo PreActBlock (no conv bias, as the preset spec asks; no dropout)."""

    def __init__(self, i, o, stride):
        super().__init__()
        self.bn1, self.sn1 = nn.BatchNorm2d(i), Spike()
        self.conv1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.bn2, self.sn2 = nn.BatchNorm2d(o), Spike()
        self.conv2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.shortcut = (nn.Conv2d(i, o, 1, stride, bias=False) if stride != 1 or i != o
                         else nn.Identity())

    def forward(self, x):
        x = self.sn1(self.bn1(x))
        return self.conv2(self.sn2(self.bn2(self.conv1(x)))) + self.shortcut(x)


class PreActResNet18(nn.Module):
    def __init__(self, widths, classes=10, in_ch=3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False)
        blocks, c = [], widths[0]
        for s, w in enumerate(widths):
            for b in range(2):
                blocks.append(PreActBlock(c, w, 2 if (s > 0 and b == 0) else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.bn, self.sn = nn.BatchNorm2d(c), Spike()
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.blocks(self.conv1(x))
        x = F.avg_pool2d(self.sn(self.bn(x)), 4)
        return self.fc(torch.flatten(x, 1))


class NFBlock(nn.Module):
    """SLTT repo NF BasicBlock (expansion 1) or Bottleneck (expansion 4)."""

    def __init__(self, i, planes, stride, downsample, beta, bottleneck):
        super().__init__()
        self.beta = beta
        self.sn = Spike()
        out = planes * (4 if bottleneck else 1)
        if bottleneck:
            self.convs = nn.ModuleList([WSConv(i, planes, 1), WSConv(planes, planes, 3, stride, 1),
                                        WSConv(planes, out, 1)])
        else:
            self.convs = nn.ModuleList([WSConv(i, planes, 3, stride, 1), WSConv(planes, out, 3, 1, 1)])
        self.downsample = WSConv(i, out, 1, stride) if downsample else None
        self.skipinit_gain = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        p = self.sn(x / self.beta) * GAMMA
        identity = self.downsample(p) if self.downsample is not None else x
        m = self.convs[0](p)
        for c in self.convs[1:]:
            m = c(self.sn(m) * GAMMA)
        return m * self.skipinit_gain * NF_ALPHA + identity


class NFResNet(nn.Module):
    def __init__(self, layers, bottleneck, classes=1000):
        super().__init__()
        self.stem = WSConv(3, 64, 7, 2, 3)
        exp = 4 if bottleneck else 1
        blocks, c, var = [], 64, 1.0
        for s, (planes, n) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if s == 0 else 2
            down = stride != 1 or c != planes * exp
            blocks.append(NFBlock(c, planes, stride, down, math.sqrt(var), bottleneck))
            c = planes * exp
            var = 1.0 + NF_ALPHA ** 2 if down else var + NF_ALPHA ** 2
            for _ in range(1, n):
                blocks.append(NFBlock(c, planes, 1, False, math.sqrt(var), bottleneck))
                var += NF_ALPHA ** 2
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.avg_pool2d(self.stem(x), 3, 2, 1, count_include_pad=True)
        x = self.blocks(x).mean(dim=(2, 3))
        return self.fc(x)


class VGG11(nn.Module):
    def __init__(self, cfg, ws, classes, in_ch):
        super().__init__()
        mods, c = [], in_ch
        for v in cfg:
            if v == "M":
                mods.append(nn.AvgPool2d(2))
            elif ws:
                mods += [WSConv(c, v, 3, 1, 1), Spike(), Scale(GAMMA)]
                c = v
            else:
                mods += [nn.Conv2d(c, v, 3, 1, 1), nn.BatchNorm2d(v), Spike(), nn.Dropout(0.1)]
                c = v
        self.features = nn.Sequential(*mods)
        self.ws = ws
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.features(x)
        x = x.mean(dim=(2, 3)) if self.ws else torch.flatten(x, 1)
        return self.fc(x)


# ------------------------------------------------------------ the presets

VGG11_BN = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
VGG11_WS = [64, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512]


def vgg11_bn_layers():
    layers, c = [], 3
    for v in VGG11_BN:
        if v == "M":
            layers.append(avgpool(2))
        else:
            layers += [conv(c, v, 3, pad=1), bn(v), lif(), dropout(0.1)]
            c = v
    return layers + [FLAT, lin(512, 10)]


def vgg11_ws_layers(in_ch):
    layers, c = [], in_ch
    for v in VGG11_WS:
        if v == "M":
            layers.append(avgpool(2))
        else:
            layers += [conv(c, v, 3, pad=1, ws=True), lif(), scale(GAMMA)]
            c = v
    return layers + [GAP, FLAT, lin(512, 10)]


def preact_block(i, o, stride):
    d = OrderedDict(type="residual")
    d["pre"] = [bn(i), lif()]
    d["main"] = [conv(i, o, 3, stride=stride, pad=1, bias=False), bn(o), lif(),
                 conv(o, o, 3, pad=1, bias=False)]
    d["shortcut"] = [conv(i, o, 1, stride=stride, bias=False)] if (stride != 1 or i != o) else []
    d["shortcut_from"] = "pre"
    return d


def resnet18_layers(widths):
    layers, c = [conv(3, widths[0], 3, pad=1, bias=False)], widths[0]
    for s, w in enumerate(widths):
        for b in range(2):
            layers.append(preact_block(c, w, 2 if (s > 0 and b == 0) else 1))
            c = w
    return layers + [bn(c), lif(), avgpool(4), FLAT, lin(c, 10)]


def nf_block(i, planes, stride, down, beta, bottleneck):
    out = planes * (4 if bottleneck else 1)
    d = OrderedDict(type="residual")
    d["pre"] = [scale(1.0 / beta), lif(), scale(GAMMA)]
    if bottleneck:
        d["main"] = [conv(i, planes, 1, ws=True), lif(), scale(GAMMA),
                     conv(planes, planes, 3, stride=stride, pad=1, ws=True), lif(), scale(GAMMA),
                     conv(planes, out, 1, ws=True)]
    else:
        d["main"] = [conv(i, planes, 3, stride=stride, pad=1, ws=True), lif(), scale(GAMMA),
                     conv(planes, out, 3, pad=1, ws=True)]
    if down:
        d["shortcut"] = [conv(i, out, 1, stride=stride, ws=True)]
        d["shortcut_from"] = "pre"
    else:
        d["shortcut"] = []
        d["shortcut_from"] = "input"
    d["alpha"] = NF_ALPHA
    d["skipinit"] = True
    return d


def nf_resnet_layers(depths, bottleneck):
    layers = [conv(3, 64, 7, stride=2, pad=3, ws=True), avgpool(3, stride=2, pad=1)]
    exp = 4 if bottleneck else 1
    c, var = 64, 1.0
    for s, (planes, n) in enumerate(zip((64, 128, 256, 512), depths)):
        stride = 1 if s == 0 else 2
        down = stride != 1 or c != planes * exp
        layers.append(nf_block(c, planes, stride, down, math.sqrt(var), bottleneck))
        c = planes * exp
        var = 1.0 + NF_ALPHA ** 2 if down else var + NF_ALPHA ** 2
        for _ in range(1, n):
            layers.append(nf_block(c, planes, 1, False, math.sqrt(var), bottleneck))
            var += NF_ALPHA ** 2
    return layers + [GAP, FLAT, lin(c, 1000)]


PRESETS = [
    ("vgg11-bn",
     "VGG-11 with per-step BN for 3x32x32 (SLTT appendix H.3): [64,M][128,M][256,256,M][512,512,M][512,512,M], "
     "each conv 3x3 pad 1 (bias) -> bn_step -> lif -> dropout 0.1, M = avgpool 2. The two hidden FC layers are "
     "removed (H.3) and, as the 32x32 input leaves a 512x1x1 map after five pools, the head is flatten -> "
     "linear 512->10 (the SLTT repo's AdaptiveAvgPool(7,7) head is for larger inputs).",
     [3, 32, 32], 10, vgg11_bn_layers, lambda: VGG11(VGG11_BN, False, 10, 3)),
    ("vgg11-ws",
     "VGG-11 (WS) as in OTTT, used by SLTT for DVS data: [64,128,M,256,256,M,512,512,M,512,512], each sWS conv "
     "3x3 pad 1 (bias, learnable gain) -> lif -> x2.74, M = avgpool 2, then global_avgpool -> flatten -> linear "
     "512->10. Input 2x48x48: two-polarity CIFAR10-DVS frames resized to 48 as in the SLTT repo.",
     [2, 48, 48], 10, lambda: vgg11_ws_layers(2), lambda: VGG11(VGG11_WS, True, 10, 2)),
    ("resnet18",
     "Pre-activation ResNet-18 (SLTT appendix H.3) for 3x32x32: conv 3x3 64 (no bias), 4 stages x 2 blocks of "
     "64-128-256-512 channels (stride 2 at stages 2-4). Block: pre bn_step -> lif; main conv 3x3 (no bias) -> "
     "bn_step -> lif -> conv 3x3 (no bias); shortcut identity on the pre spikes, or conv 1x1 stride 2 (no bias) "
     "when the shape changes. Head bn_step -> lif -> avgpool 4 -> flatten -> linear 512->10. The repo's "
     "dropout (0 on CIFAR) is left out.",
     [3, 32, 32], 10, lambda: resnet18_layers([64, 128, 256, 512]),
     lambda: PreActResNet18([64, 128, 256, 512])),
    ("resnet18-w16",
     "The pre-activation ResNet-18 of the resnet18 preset at a quarter of the width (16-32-64-128 channels), "
     "small enough to train here.",
     [3, 32, 32], 10, lambda: resnet18_layers([16, 32, 64, 128]),
     lambda: PreActResNet18([16, 32, 64, 128])),
    ("nf-resnet34",
     "NF-ResNet-34 for ImageNet (SLTT repo spiking_nfresnet34): sWS conv 7x7 stride 2 pad 3 -> avgpool 3 "
     "stride 2 pad 1 -> basic NF blocks [3,4,6,3] (x/beta -> lif -> x2.74; conv -> lif -> x2.74 -> conv; "
     "alpha 0.2, skipinit gain; sWS 1x1 shortcut on the pre output in downsampling blocks) -> global_avgpool -> "
     "flatten -> linear 512->1000. Definable and shape-checked; too big to train here.",
     [3, 224, 224], 1000, lambda: nf_resnet_layers([3, 4, 6, 3], False),
     lambda: NFResNet([3, 4, 6, 3], False)),
    ("nf-resnet50",
     "NF-ResNet-50 for ImageNet (SLTT repo spiking_nfresnet50): as nf-resnet34 with bottleneck blocks "
     "(1x1 -> lif -> x2.74 -> 3x3 stride s -> lif -> x2.74 -> 1x1, expansion 4) [3,4,6,3] -> linear "
     "2048->1000. Definable and shape-checked; too big to train here.",
     [3, 224, 224], 1000, lambda: nf_resnet_layers([3, 4, 6, 3], True),
     lambda: NFResNet([3, 4, 6, 3], True)),
    ("nf-resnet101",
     "NF-ResNet-101 for ImageNet (SLTT repo spiking_nfresnet101): bottleneck NF blocks [3,4,23,3] -> linear "
     "2048->1000. Definable and shape-checked; too big to train here.",
     [3, 224, 224], 1000, lambda: nf_resnet_layers([3, 4, 23, 3], True),
     lambda: NFResNet([3, 4, 23, 3], True)),
]

EXPERIMENTS = {
    "vgg11-bn": "sltt",
    "resnet18-w16": "sltt",
}


# ------------------------------------------- shape walk of the JSON model

def json_walk(layers, shape):
    """(output shape, trainable parameter count) of a layer list."""
    n = 0
    for l in layers:
        t = l["type"]
        if t == "conv":
            c, h, w = shape
            assert c == l["in_ch"], (l, shape)
            k, s, p = l["k"], l.get("stride", 1), l.get("pad", 0)
            shape = (l["out_ch"], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
            n += l["out_ch"] * l["in_ch"] * k * k
            n += l["out_ch"] * (l.get("bias", True) + bool(l.get("ws", False)))
        elif t == "linear":
            assert shape == (l["in"],), (l, shape)
            shape = (l["out"],)
            n += l["out"] * l["in"] + l["out"] * (l.get("bias", True) + bool(l.get("ws", False)))
        elif t == "bn_step":
            assert shape[0] == l["num_features"], (l, shape)
            n += 2 * l["num_features"]
        elif t == "avgpool":
            c, h, w = shape
            k, s, p = l["k"], l.get("stride", l["k"]), l.get("pad", 0)
            shape = (c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)
        elif t == "global_avgpool":
            shape = (shape[0], 1, 1)
        elif t == "flatten":
            shape = (math.prod(shape),)
        elif t == "residual":
            p, np_ = json_walk(l.get("pre", []), shape)
            m, nm = json_walk(l["main"], p)
            src = p if l.get("shortcut_from", "pre" if l.get("pre") else "input") == "pre" else shape
            sc, ns = json_walk(l.get("shortcut", []), src)
            assert m == sc, (m, sc)
            n += np_ + nm + ns + (1 if l.get("skipinit", False) else 0)
            shape = m
        elif t in ("lif", "scale", "dropout"):
            pass
        else:
            raise ValueError(t)
    return shape, n


# ------------------------------------------------------------- writing

def dump_layer(l, indent):
    if l["type"] != "residual":
        return " " * indent + json.dumps(l)
    pad = " " * indent
    lines = [pad + "{"]
    items = list(l.items())
    for j, (k, v) in enumerate(items):
        comma = "," if j + 1 < len(items) else ""
        if isinstance(v, list):
            if not v:
                lines.append('%s  "%s": []%s' % (pad, k, comma))
                continue
            lines.append('%s  "%s": [' % (pad, k))
            lines.append(",\n".join(dump_layer(x, indent + 4) for x in v))
            lines.append("%s  ]%s" % (pad, comma))
        else:
            lines.append('%s  "%s": %s%s' % (pad, k, json.dumps(v), comma))
    lines.append(pad + "}")
    return "\n".join(lines)


def dump_model(name, desc, input_shape, classes, layers):
    out = ["{",
           '  "name": %s,' % json.dumps(name),
           '  "description": %s,' % json.dumps(desc),
           '  "input_shape": %s,' % json.dumps(input_shape),
           '  "num_classes": %d,' % classes,
           '  "layers": [',
           ",\n".join(dump_layer(l, 4) for l in layers),
           "  ]",
           "}"]
    return "\n".join(out) + "\n"


def experiment(name, method):
    return OrderedDict([
        ("name", name),
        ("model", name),
        ("dataset", OrderedDict([("name", "cifar10"), ("path", ""), ("train_subset", 0),
                                 ("test_subset", 0), ("normalize", True)])),
        ("T", 4),
        ("method", method),
        ("K", 2),
        ("loss", OrderedDict([("lambda", 0.05), ("mse_target", 1.0)])),
        ("optimizer", OrderedDict([("type", "sgd"), ("lr", 0.1), ("momentum", 0.9),
                                   ("weight_decay", 5e-5), ("schedule", "cosine")])),
        ("batch_size", 32),
        ("epochs", 1),
        ("seed", 2022),
    ])


def dump_experiment(e):
    lines = ["{"]
    items = list(e.items())
    for j, (k, v) in enumerate(items):
        lines.append('  "%s": %s%s' % (k, json.dumps(v), "," if j + 1 < len(items) else ""))
    return "\n".join(lines + ["}"]) + "\n"


def main():
    counts = OrderedDict()
    for name, desc, input_shape, classes, make_layers, make_torch in PRESETS:
        layers = make_layers()
        out_shape, n_json = json_walk(layers, tuple(input_shape))
        assert out_shape == (classes,), (name, out_shape)
        torch.manual_seed(0)
        net = make_torch().eval()
        n_torch = sum(p.numel() for p in net.parameters() if p.requires_grad)
        with torch.no_grad():
            y = net(torch.zeros([1] + input_shape))
        assert tuple(y.shape) == (1, classes), (name, y.shape)
        assert n_torch == n_json, (name, n_torch, n_json)
        counts[name] = n_torch
        text = dump_model(name, desc, input_shape, classes, layers)
        json.loads(text)
        with open(os.path.join(HERE, name + ".json"), "w") as f:
            f.write(text)
        if name in EXPERIMENTS:
            with open(os.path.join(HERE, name + ".experiment.json"), "w") as f:
                f.write(dump_experiment(experiment(name, EXPERIMENTS[name])))
        print("%-14s %11d trainable parameters, %d top-level layers" % (name, n_torch, len(layers)))
    with open(os.path.join(ROOT, "tests", "golden", "preset_params.json"), "w") as f:
        json.dump(counts, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
