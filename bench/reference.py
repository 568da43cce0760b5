#!/usr/bin/env python3
"""PyTorch reference implementation of cauda's training recipes, for side-by-side comparison.

Usage: reference.py RUN_DIR [--threads 2] [--out FILE]

RUN_DIR is what `caudad train SPEC --out RUN_DIR` (or `--split-only`) wrote: `config.json` (the
fully resolved run) and `split.json` (the long-tailed training indices and the normalization).
This script trains the same recipe on exactly those images with PyTorch and writes
`RUN_DIR/reference.json` (or FILE) with the same metrics as cauda's `summary.json` `last` record:
top-1, per-class accuracy and many/medium/few-shot accuracy on the full balanced test set.

What must be exact is the data: the training images are `train_part[split.train_indices]`, and the
test set is the data set's own test part (digits, IDX, or CIFAR: binary batches or torchvision's
pickles). For the embedded digits the train/test split is cauda's
own (a ChaCha8 per-class shuffle, `plugins/src/data/digits.rs`); it is ported here bit for bit and
checked by recomputing cauda's long-tailed split (same shuffle) and comparing it with split.json.
Everything random during training (initialization, batch order, class draws, crops, mixing
factors) uses torch's generator seeded with the run's seed: agreement with cauda is statistical.

The recipe follows plugins/src/{models,losses,samplers,augment,train}: see the comment of each
function for the Rust file it mirrors.
"""
import argparse
import gzip
import json
import math
import pathlib
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

REPO = pathlib.Path(__file__).resolve().parents[1]
M32 = 0xFFFF_FFFF
M64 = 0xFFFF_FFFF_FFFF_FFFF

# --------------------------------------------------------------------------------------------
# ChaCha8 + Fisher-Yates + Lemire: plugins/src/data/shuffle.rs (rand_chacha 0.9, rand_core 0.9).
# --------------------------------------------------------------------------------------------


def _rotl(x, n):
    return ((x << n) | (x >> (32 - n))) & M32


class ChaCha8:
    """rand_chacha's ChaCha8Rng: `seed_from_u64(seed)` then `set_stream(stream)`, read by u64."""

    def __init__(self, seed, stream):
        state = seed & M64
        key = []
        for _ in range(8):  # rand_core's seed_from_u64: PCG32 output words
            state = (state * 6364136223846793005 + 11634580027462260723) & M64
            xorshifted = (((state >> 18) ^ state) >> 27) & M32
            rot = state >> 59
            key.append(((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & M32)
        self.key = key
        self.stream = stream & M64
        self.counter = 0
        self.buf = []
        self.index = 64

    def _block(self, counter):
        init = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574, *self.key,
                counter & M32, counter >> 32, self.stream & M32, self.stream >> 32]
        x = list(init)

        def qr(a, b, c, d):
            x[a] = (x[a] + x[b]) & M32
            x[d] = _rotl(x[d] ^ x[a], 16)
            x[c] = (x[c] + x[d]) & M32
            x[b] = _rotl(x[b] ^ x[c], 12)
            x[a] = (x[a] + x[b]) & M32
            x[d] = _rotl(x[d] ^ x[a], 8)
            x[c] = (x[c] + x[d]) & M32
            x[b] = _rotl(x[b] ^ x[c], 7)

        for _ in range(4):  # 8 rounds = 4 double rounds
            qr(0, 4, 8, 12), qr(1, 5, 9, 13), qr(2, 6, 10, 14), qr(3, 7, 11, 15)
            qr(0, 5, 10, 15), qr(1, 6, 11, 12), qr(2, 7, 8, 13), qr(3, 4, 9, 14)
        return [(a + b) & M32 for a, b in zip(x, init)]

    def next_u64(self):
        # Reads stay 2-aligned (only u64s are drawn), so a u64 never straddles a refill.
        if self.index >= 64:
            self.buf = []
            for k in range(4):
                self.buf += self._block(self.counter + k)
            self.counter += 4
            self.index = 0
        lo, hi = self.buf[self.index], self.buf[self.index + 1]
        self.index += 2
        return lo | (hi << 32)


def _below(rng, n):
    threshold = ((-n) & M64) % n
    while True:
        m = rng.next_u64() * n
        if (m & M64) >= threshold:
            return m >> 64


def cauda_shuffle(items, seed, stream):
    items = list(items)
    rng = ChaCha8(seed, stream)
    for i in range(len(items) - 1, 0, -1):
        j = _below(rng, i + 1)
        items[i], items[j] = items[j], items[i]
    return items


# --------------------------------------------------------------------------------------------
# Data: plugins/src/data/{digits,idx,longtail}.rs
# --------------------------------------------------------------------------------------------

DIGITS_SPLIT_SEED = 0x00D1_9175


def load_digits():
    """cauda's embedded digits and its fixed 80/20 per-class split (355 test, 1442 train)."""
    raw = np.loadtxt(gzip.open(REPO / "plugins/assets/digits.csv.gz", "rt"), delimiter=",")
    px = ((raw[:, :-1].astype(np.int64) * 255 + 8) // 16).astype(np.uint8).reshape(-1, 1, 8, 8)
    labels = raw[:, -1].astype(np.int64)
    is_test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = cauda_shuffle(np.flatnonzero(labels == c).tolist(), DIGITS_SPLIT_SEED, c)
        is_test[idx[: len(idx) // 5]] = True
    return (px[~is_test], labels[~is_test]), (px[is_test], labels[is_test])


def _idx_file(folder, name):
    raw = folder / name
    path = raw if raw.is_file() else folder / (name + ".gz")
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _idx_array(data):
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_idx(folder):
    folder = pathlib.Path(folder)
    out = []
    for part in ("train", "t10k"):
        x = _idx_array(_idx_file(folder, f"{part}-images-idx3-ubyte"))
        y = _idx_array(_idx_file(folder, f"{part}-labels-idx1-ubyte")).astype(np.int64)
        out.append((x[:, None, :, :].copy(), y))
    return out[0], out[1]


def hold_out(shuffled, selected, v):
    """plugins/src/data/longtail.rs hold_out: per class, `v` validation images among those not
    selected (in shuffled order); a class short of them gives the rest from the end of its
    selection. Returns per-class (train, val) lists."""
    train, vals = [], []
    for c, (all_, sel) in enumerate(zip(shuffled, selected)):
        if len(all_) <= v:
            sys.exit(f"reference.py: class {c} has {len(all_)} images, val_per_class = {v}")
        taken = set(sel)
        held = [i for i in all_ if i not in taken][:v]
        short = v - len(held)
        if short:
            held += sel[len(sel) - short:]
            sel = sel[:len(sel) - short]
        train.append(list(sel))
        vals.append(held)
    return train, vals


def long_tail_indices(labels, classes, data):
    """cauda's long_tail_split (exp/step profile, cap, val hold-out from unselected images),
    for checking split.json."""
    imb = data.get("imbalance") or {"profile": "exp", "ratio": 1.0}
    seed = data.get("split_seed", 0)
    shuffled = [cauda_shuffle(np.flatnonzero(labels == c).tolist(), seed, c)
                for c in range(classes)]
    cap = data.get("max_per_class")
    pools = [s if cap is None else s[:cap] for s in shuffled]
    n_max = max(len(p) for p in pools)
    inv = 1.0 / imb["ratio"]
    if imb["profile"] == "exp":
        targets = [n_max] if classes == 1 else [
            math.floor(n_max * inv ** (i / (classes - 1))) for i in range(classes)]
    else:
        minority = min(math.floor(imb.get("step_fraction", 0.5) * classes + 1e-9), classes)
        targets = [n_max if i < classes - minority else math.floor(n_max * inv)
                   for i in range(classes)]
    selected = [p[: min(t, len(p))] for p, t in zip(pools, targets)]
    train, vals = hold_out(shuffled, selected, data.get("val_per_class", 0))
    return [i for t in train for i in t], [i for v in vals for i in v]


def _cifar_pickle(path, labels_key):
    import pickle
    with open(path, "rb") as f:
        d = pickle.load(f, encoding="bytes")
    return np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32), \
        np.asarray(d[labels_key], dtype=np.int64)


def load_cifar(folder):
    """plugins/src/data/{cifar,cifar_pickle}.rs: the binary batches, or torchvision's pickles
    (`cifar-10-batches-py/`, `cifar-100-python/`, the folder itself or under it). Returns
    ((train_x, train_y), (test_x, test_y)), classes."""
    folder = pathlib.Path(folder)

    def binary(files, label_bytes):
        rec = np.concatenate([np.fromfile(folder / f, dtype=np.uint8) for f in files])
        rec = rec.reshape(-1, label_bytes + 3072)
        return rec[:, label_bytes:].reshape(-1, 3, 32, 32).copy(), \
            rec[:, label_bytes - 1].astype(np.int64)

    if (folder / "data_batch_1.bin").is_file():
        return (binary([f"data_batch_{i}.bin" for i in range(1, 6)], 1),
                binary(["test_batch.bin"], 1)), 10
    if (folder / "train.bin").is_file():
        return (binary(["train.bin"], 2), binary(["test.bin"], 2)), 100
    for d in (folder, folder / "cifar-10-batches-py", folder / "cifar-100-python"):
        if (d / "data_batch_1").is_file():
            parts = [_cifar_pickle(d / f"data_batch_{i}", b"labels") for i in range(1, 6)]
            train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
            return (train, _cifar_pickle(d / "test_batch", b"labels")), 10
        if (d / "train").is_file() and (d / "meta").is_file():
            return (_cifar_pickle(d / "train", b"fine_labels"),
                    _cifar_pickle(d / "test", b"fine_labels")), 100
    sys.exit(f"reference.py: no CIFAR binary batches or torchvision pickles in {folder}")


def split_file_indices(labels, classes, data):
    """plugins/src/data/split_file.rs: the file's per-class selection (ranks within the class
    in data-set order, or absolute indices) and the hold-out from unselected images."""
    sel = json.loads(pathlib.Path(data["split_file"]).read_text())
    by_class = [np.flatnonzero(labels == c).tolist() for c in range(classes)]
    if "ranks" in sel:
        selected = [[by_class[c][r] for r in ranks] for c, ranks in enumerate(sel["ranks"])]
    else:
        selected = [list(ix) for ix in sel["indices"]]
    seed = data.get("split_seed", 0)
    shuffled = [cauda_shuffle(by_class[c], seed, c) for c in range(classes)]
    train, vals = hold_out(shuffled, selected, data.get("val_per_class", 0))
    return [i for t in train for i in t], [i for v in vals for i in v]


# data.normalize's named constants: plugins/src/data/normalize.rs (Cao et al.'s cifar_train.py).
NORMALIZE = {"cifar10": ([0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]),
             "cifar100": ([0.5071, 0.4865, 0.4409], [0.2673, 0.2564, 0.2762])}


def load_run_data(cfg, split):
    data = cfg["data"]
    fmt = data["format"]
    if fmt == "digits":
        (trx, try_), (tex, tey) = load_digits()
    elif fmt == "idx":
        (trx, try_), (tex, tey) = load_idx(data["path"])
    elif fmt == "cifar":
        ((trx, try_), (tex, tey)), cifar_classes = load_cifar(data["path"])
    else:
        sys.exit(f"reference.py: data format {fmt!r} is not supported (digits, idx, cifar)")
    classes = int(max(try_.max(), tey.max()) + 1)
    classes = max(classes, 10) if fmt == "idx" else classes
    classes = cifar_classes if fmt == "cifar" else classes
    # Check the split (this also checks the ChaCha8 port the digits' test split depends on).
    if not data.get("balanced_variant", False):
        if data.get("split_file"):
            train_idx, val_idx = split_file_indices(try_, classes, data)
        else:
            train_idx, val_idx = long_tail_indices(try_, classes, data)
        if train_idx != split["train_indices"] or val_idx != split["val_indices"]:
            sys.exit("reference.py: recomputed long-tailed split differs from split.json")
    tri = np.asarray(split["train_indices"], dtype=np.int64)
    vai = np.asarray(split["val_indices"], dtype=np.int64)
    counts = np.bincount(try_[tri], minlength=classes).tolist()
    if counts != split["class_counts"]:
        sys.exit(f"reference.py: class counts {counts} differ from split.json")
    norm = data.get("normalize", "fit")
    if norm == "fit":
        x = trx[tri].astype(np.float64) / 255.0
        mean = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).mean(1)
        std = x.transpose(1, 0, 2, 3).reshape(x.shape[1], -1).std(1)
    else:
        mean, std = NORMALIZE[norm] if isinstance(norm, str) else (norm["mean"], norm["std"])
    if not (np.allclose(mean, split["mean"], atol=1e-5) and np.allclose(std, split["std"], atol=1e-5)):
        sys.exit(f"reference.py: normalization ({norm}) {mean} {std} differs from split.json")
    return {
        "train": (torch.from_numpy(trx[tri]), torch.from_numpy(try_[tri])),
        "val": (torch.from_numpy(trx[vai]), torch.from_numpy(try_[vai])) if len(vai) else None,
        "test": (torch.from_numpy(tex), torch.from_numpy(tey)),
        "classes": classes,
        "counts": counts,
        "mean": torch.tensor(split["mean"]).view(1, -1, 1, 1),
        "std": torch.tensor(split["std"]).view(1, -1, 1, 1),
        "test_pixel_sum": int(tex.astype(np.int64).sum()),
    }


# --------------------------------------------------------------------------------------------
# Models: plugins/src/models/{backbone,resnet,head}.rs
# --------------------------------------------------------------------------------------------


class Mlp(nn.Module):
    def __init__(self, c, h, w):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(c * h * w, 256), nn.Linear(256, 128)
        self.dim = 128

    def forward(self, x):
        return F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))


class LeNet(nn.Module):
    def __init__(self, c, h, w):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5, padding=2)
        self.fc1 = nn.Linear(16 * (h // 4) * (w // 4), 120)
        self.fc2 = nn.Linear(120, 84)
        self.dim = 84

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc2(F.relu(self.fc1(x.flatten(1)))))


def kaiming_normal_(module):
    """Cao et al.'s `_weights_init` (kaidic/LDAM-DRW models/resnet_cifar.py): kaiming_normal_
    (fan_in, gain sqrt(2)) on every Conv2d and Linear weight; biases keep PyTorch's default."""
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(module.weight)


class BasicBlock(nn.Module):
    """plugins/src/models/resnet.rs BasicBlock. Option A (the field's ResNets, `resnet8/20/32`):
    a parameter-free shortcut `F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4))`.
    Option B (`resnet8b/20b/32b`): a 1x1 conv + BatchNorm projection."""

    def __init__(self, cin, cout, stride, option):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut, self.pad = None, 0
        if stride != 1 or cin != cout:
            if option == "A":
                # (planes - in_planes) // 2 as RIDE's and SADE's expert ResNets; Cao's
                # planes // 4 where a block doubles the width.
                self.pad = (cout - cin) // 2
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                              nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.shortcut is not None:
            short = self.shortcut(x)
        elif self.pad:
            short = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0)
        else:
            short = x
        return F.relu(out + short)


class ResNet(nn.Module):
    def __init__(self, c, blocks, option):
        super().__init__()
        self.stem = nn.Conv2d(c, 16, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for stage, cout in enumerate([16, 32, 64]):
            for b in range(blocks):
                layers.append(BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1, option))
                cin = cout
        self.blocks = nn.Sequential(*layers)
        self.dim = 64
        if option == "A":
            self.apply(kaiming_normal_)

    def forward(self, x):
        return self.blocks(F.relu(self.stem_bn(self.stem(x)))).mean(dim=(2, 3))


class ExpertResNet(nn.Module):
    """plugins/src/models/experts.rs: RIDE's / SADE's `ResNet_s` (reduce_dimension): shared stem
    and first stage, then per expert its own 24- and 48-map stages; features side by side."""

    def __init__(self, c, blocks, option, experts):
        super().__init__()
        self.stem = nn.Conv2d(c, 16, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        self.trunk = nn.Sequential(*[BasicBlock(16, 16, 1, option) for _ in range(blocks)])
        branches = []
        for _ in range(experts):
            layers, cin = [], 16
            for cout in (24, 48):
                for b in range(blocks):
                    layers.append(BasicBlock(cin, cout, 2 if b == 0 else 1, option))
                    cin = cout
            branch = nn.Module()
            branch.blocks = nn.Sequential(*layers)
            branches.append(branch)
        self.branches = nn.ModuleList(branches)
        self.experts, self.dim = experts, 48
        if option == "A":
            self.apply(kaiming_normal_)

    def forward(self, x):
        x = self.trunk(F.relu(self.stem_bn(self.stem(x))))
        return torch.cat([b.blocks(x).mean(dim=(2, 3)) for b in self.branches], 1)


class BilateralResNet(nn.Module):
    """plugins/src/models/bilateral.rs: BBN's `BBN_ResNet_Cifar` (Megvii-Nanjing/BBN,
    lib/backbone/resnet_cifar.py): the CIFAR ResNet's blocks shared but its last one, which the
    conventional (`cb_block`) and re-balancing (`rb_block`) branches each have; `branch(x, b)`
    is its `forward(x, feature_cb=True)` / `feature_rb=True` pooled, `forward` both branches'
    pooled features of the same images side by side."""

    def __init__(self, c, blocks, option):
        super().__init__()
        self.stem = nn.Conv2d(c, 16, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(16)
        specs, cin = [], 16
        for stage, cout in enumerate([16, 32, 64]):
            for b in range(blocks):
                specs.append((cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.trunk = nn.Sequential(*[BasicBlock(*sp, option) for sp in specs[:-1]])
        self.branches = nn.ModuleList([BasicBlock(*specs[-1], option) for _ in range(2)])
        self.dim = 128
        if option == "A":
            self.apply(kaiming_normal_)

    def shared(self, x):
        return self.trunk(F.relu(self.stem_bn(self.stem(x))))

    def branch(self, x, b):
        return self.branches[b](self.shared(x)).mean(dim=(2, 3))

    def forward(self, x):
        t = self.shared(x)
        return torch.cat([b(t).mean(dim=(2, 3)) for b in self.branches], 1)


# name -> (blocks per stage, shortcut option): plugins/src/models/backbone.rs RESNETS.
RESNETS = {"resnet8": (1, "A"), "resnet20": (3, "A"), "resnet32": (5, "A"),
           "resnet8b": (1, "B"), "resnet20b": (3, "B"), "resnet32b": (5, "B")}


class Head(nn.Module):
    """Linear `W f + b`, or cosine `s normalize(f) normalize(W)^T`; optional LWS scales.

    `init="kaiming"` (the head of the option-A ResNets, models/head.rs HeadInit::KaimingNormal):
    a linear weight kaiming_normal_ as Cao's `_weights_init`, a cosine weight's rows U(-1, 1)
    scaled to unit norm as Cao's NormedLinear. Otherwise nn.Linear's default U(+-1/sqrt(dim))."""

    def __init__(self, dim, classes, cosine_scale=0.0, init="torch", experts=1):
        super().__init__()
        self.experts = experts
        classes = classes * experts
        bound = 1.0 / math.sqrt(dim)
        if init == "kaiming" and cosine_scale <= 0:
            w = torch.empty(classes, dim).normal_(0.0, math.sqrt(2.0 / dim))
        elif init == "kaiming":
            w = F.normalize(torch.empty(classes, dim).uniform_(-1.0, 1.0), dim=1)
        else:
            w = torch.empty(classes, dim).uniform_(-bound, bound)
        self.weight = nn.Parameter(w)
        self.bias = (nn.Parameter(torch.empty(classes).uniform_(-bound, bound))
                     if cosine_scale <= 0 else None)
        self.scales = None
        self.cosine_scale = cosine_scale

    def expert_logits(self, f):
        """[E, N, C]: expert e's classifier (rows e*C..) on features e*D.. (RIDE's
        `_separate_part`: linears[e](feat_e) * s)."""
        e = self.experts
        d = self.weight.shape[1]
        c = self.weight.shape[0] // e
        zs = []
        for i in range(e):
            fi, wi = f[:, i * d:(i + 1) * d], self.weight[i * c:(i + 1) * c]
            if self.cosine_scale > 0:
                z = F.normalize(fi, dim=1) @ F.normalize(wi, dim=1).t() * self.cosine_scale
            else:
                z = fi @ wi.t() + self.bias[i * c:(i + 1) * c]
            if self.scales is not None:
                z = z * self.scales
            zs.append(z)
        return torch.stack(zs)

    def forward(self, f):
        if getattr(self, "experts", 1) > 1:
            return self.expert_logits(f).mean(0)
        if self.cosine_scale > 0:
            z = F.normalize(f, dim=1) @ F.normalize(self.weight, dim=1).t() * self.cosine_scale
        else:
            z = f @ self.weight.t()
        if self.bias is not None:
            z = z + self.bias
        if self.scales is not None:
            z = z * self.scales
        if getattr(self, "logit_scale", None) is not None:
            # cvpods DisAlignLinear / DisAlignNormalizedLinear (feat_norm): the confidence
            # sigma = sigmoid(v . x + b) gates a class-wise magnitude and offset.
            x = F.normalize(f, dim=1) if self.cosine_scale > 0 else f
            sigma = torch.sigmoid(x @ self.confidence_weight.t() + self.confidence_bias)
            z = (1 + sigma * self.logit_scale) * z + sigma * self.logit_bias
        return z

    def with_disalign(self):
        """Adds DisAlignLinear's calibration, initialized as its __init__: logit_scale 1,
        logit_bias 0, confidence_layer weight 0.1 and nn.Linear's default bias."""
        c, d = self.weight.shape
        bound = 1.0 / math.sqrt(d)
        self.logit_scale = nn.Parameter(torch.ones(c))
        self.logit_bias = nn.Parameter(torch.zeros(c))
        self.confidence_weight = nn.Parameter(torch.full((1, d), 0.1))
        self.confidence_bias = nn.Parameter(torch.empty(1).uniform_(-bound, bound))
        return self

    def tau_normalized(self, tau):
        h = Head.__new__(Head)
        nn.Module.__init__(h)
        w = self.weight.detach()
        h.weight = nn.Parameter(w / w.norm(dim=1, keepdim=True).clamp_min(1e-12) ** tau)
        h.bias, h.scales, h.cosine_scale = None, self.scales, self.cosine_scale
        h.experts = getattr(self, "experts", 1)
        return h

    def max_norm_(self, t):
        with torch.no_grad():
            norms = self.weight.norm(dim=1, keepdim=True).clamp_min(1e-12)
            self.weight.mul_((t / norms).clamp_max(1.0))


class Mlp2(nn.Module):
    """models/contrast.rs Mlp2: Linear(d, d) - BatchNorm1d(d) - ReLU - Linear(d, p), as BCL's
    `BCLModel.head` and `head_fc` (FlamieZhu/Balanced-Contrastive-Learning models/resnext.py)."""

    def __init__(self, d, p):
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(d, d), nn.BatchNorm1d(d), nn.Linear(d, p)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


class ContrastHeads(nn.Module):
    """models/contrast.rs: the projection head on every view's features and, optionally, the
    class-center head on the classifier's weights; both unit-norm (BCLModel.forward's
    F.normalize(head(feat)) and F.normalize(head_fc(fc.weight.T)))."""

    def __init__(self, d, design):
        super().__init__()
        self.views = design["views"]
        self.projection = Mlp2(d, design["dim"])
        self.centers = Mlp2(d, design["dim"]) if design["centers"] else None

    def embeddings(self, h, views):
        e = F.normalize(self.projection(h), dim=1)
        return e.view(views, h.shape[0] // views, -1)

    def class_centers(self, w):
        return F.normalize(self.centers(w), dim=1) if self.centers is not None else None


class Classifier(nn.Module):
    def __init__(self, model_cfg, shape, classes):
        super().__init__()
        c, h, w = shape
        name = model_cfg["backbone"]
        if name == "mlp":
            self.backbone = Mlp(c, h, w)
        elif name == "lenet":
            self.backbone = LeNet(c, h, w)
        elif name in RESNETS and model_cfg.get("bilateral", False):
            self.backbone = BilateralResNet(c, *RESNETS[name])
        elif name in RESNETS and model_cfg.get("experts", 1) > 1:
            self.backbone = ExpertResNet(c, *RESNETS[name], model_cfg["experts"])
        elif name in RESNETS:
            self.backbone = ResNet(c, *RESNETS[name])
        else:
            sys.exit(f"reference.py: unknown backbone {name}")
        scale = model_cfg["head_scale"] if model_cfg["head"] == "cosine" else 0.0
        init = "kaiming" if RESNETS.get(name, (0, "B"))[1] == "A" else "torch"
        if model_cfg.get("bilateral", False):
            init = "torch"  # BBN's classifier is an nn.Linear outside `_weights_init`
        self.head = Head(self.backbone.dim, classes, scale, init, model_cfg.get("experts", 1))
        design = model_cfg.get("contrast")
        self.contrast = ContrastHeads(self.backbone.dim, design) if design else None

    def forward(self, x):
        return self.head(self.backbone(x))


# --------------------------------------------------------------------------------------------
# Losses: plugins/src/losses/*.rs (per-sample value + class weights; combine.rs reduces)
# --------------------------------------------------------------------------------------------


def normalize_to_c(w):
    w = np.asarray(w, dtype=np.float64)
    return w * len(w) / w.sum()


def effective_number_weights(counts, beta):
    n = np.asarray(counts, dtype=np.float64)
    return normalize_to_c((1 - beta) / (1 - beta ** n))


def bal_scl(centers, views, y, classes, temperature):
    """BalSCL.forward (loss/contrastive.py) for any number of views [V', N, P]: anchors are
    every view of every image, columns every view and the C centers; each column's exp is
    divided by its class's count among the columns (minus 1 for the anchor's own class)."""
    v, n, _ = views.shape
    targets = torch.cat([y.repeat(v), torch.arange(classes)]).view(-1, 1)
    count = torch.eye(classes, dtype=views.dtype)[targets[:, 0]].sum(0)
    mask = torch.eq(targets[: v * n], targets.T).to(views.dtype)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(v * n).view(-1, 1), 0)
    mask = mask * logits_mask
    feats = torch.cat([views.reshape(v * n, -1), centers], 0)
    logits = feats[: v * n].mm(feats.T) / temperature
    logits = logits - logits.max(1, keepdim=True)[0].detach()
    exp_logits = torch.exp(logits) * logits_mask
    per_ins_weight = count[targets[:, 0]].view(1, -1).expand_as(mask) - mask
    log_prob = logits - torch.log(exp_logits.div(per_ins_weight).sum(1, keepdim=True))
    return -((mask * log_prob).sum(1) / mask.sum(1)).mean()


MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    """splitmix64's output function (losses/draws.rs `mix`), on a Python int or a uint64 array."""
    if isinstance(z, int):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def step_key(seed, stage, epoch, batch):
    """The draw key of a batch (losses/draws.rs `step_key`)."""
    at = ((epoch << 32) | batch) + 1
    return mix64((seed ^ (stage << 56) ^ mix64(at & MASK64)) & MASK64)


def standard_normals(key, term, rows, classes, first_row=0):
    """[rows, classes] standard normals of losses/draws.rs `normal_block` (float64)."""
    r = np.arange(first_row, first_row + rows, dtype=np.uint64)[:, None]
    c = np.arange(classes, dtype=np.uint64)[None, :]
    counter = (np.uint64(term) << np.uint64(62)) | (r << np.uint64(24)) | c
    with np.errstate(over="ignore"):
        x = mix64(np.uint64(key) ^ (counter * np.uint64(GOLDEN)))
    u1 = ((x >> np.uint64(32)).astype(np.float64) + 0.5) / 4294967296.0
    u2 = ((x & np.uint64(0xFFFFFFFF)).astype(np.float64) + 0.5) / 4294967296.0
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def gcl_noise(key, term, rows, classes):
    """GCL's |clamp(N(0, 1/3), -1, 1)| from the key (losses/gcl.rs `Gcl::noise`), float32."""
    g = standard_normals(key, term, rows, classes)
    return np.abs(np.clip(g / 3.0, -1.0, 1.0)).astype(np.float32)


class Loss:
    """A per-sample loss and its class weights per epoch (None = all 1)."""

    def __init__(self, params, counts, drw, epochs):
        self.name = params["plugin"]
        self.epochs = epochs
        self.p = params["values"]
        n = np.asarray(counts, dtype=np.float64)
        self.log_prior = torch.tensor(np.log(n / n.sum()), dtype=torch.float32)
        self.log_counts = torch.tensor(np.log(n), dtype=torch.float32)
        self.weights = None
        if self.name == "weighted-ce":
            self.weights = normalize_to_c(1.0 / n)
        elif self.name == "class-balanced":
            self.weights = effective_number_weights(counts, self.p["beta"])
        elif self.name == "grw":
            # cvpods GRWCrossEntropyLoss: (1 / (n / sum n))^exp_scale, scaled to sum C.
            self.weights = normalize_to_c((n.sum() / n) ** self.p["rho"])
        if self.name == "ldam":
            m = n ** -0.25
            self.margins = torch.tensor(m * self.p["max_m"] / m.max(), dtype=torch.float32)
        if self.name == "vs":
            # orparask/VS-Loss VSLoss: Delta = (1/n)^gamma / min(...), iota = tau log pi.
            t = (1.0 / n) ** self.p["gamma"]
            self.vs_delta = torch.tensor(t / t.min(), dtype=torch.float32)
            self.vs_iota = torch.tensor(self.p["tau"] * np.log(n / n.sum()), dtype=torch.float32)
        if self.name == "gcl":
            # Keke921/GCLLoss GCLLoss: cloud a_c = log n_max - log n_c, scaled by
            # noise_mul / max a (0 when every class is as frequent: the code divides 0 by 0).
            a = np.log(n).max() - np.log(n)
            cloud = self.p["noise_mul"] * a / a.max() if a.max() > 0 else np.zeros_like(a)
            self.gcl_cloud = torch.tensor(cloud, dtype=torch.float32)
        if self.name == "lade":
            # hyperconnect/LADE LADELoss: the training prior (and its log with 1e-9), uniform target.
            self.lade_prior = torch.tensor(n / n.sum(), dtype=torch.float32)
        if self.name == "ride":
            # frank-xwang/RIDE-LongTailRecognition RIDELoss: LDAM margins in s-scaled units, CB
            # weights and per-class diversity temperatures from reweight_start on.
            m = n ** -0.25
            self.margins = torch.tensor(m * self.p["max_m"] / m.max(), dtype=torch.float32)
            start = self.p["reweight_start"]
            self.ride_start = math.floor(start * epochs) if start < 1 else None
            self.ride_weights = torch.tensor(
                effective_number_weights(counts, self.p["beta"]), dtype=torch.float32)
            r = self.p["reweight_factor"]
            t = len(n) * (n / n.sum()) * r + 1 - r
            self.ride_temps = torch.tensor(t / t.max(), dtype=torch.float32)
        if self.name == "sade":
            # Vanint/SADE-AgnosticLT DiverseExpertLoss: float32 prior; the inverse prior mirrors
            # the ascending ranks (ties by class: a stable sort).
            prior = torch.tensor(n / n.sum()).float()
            value, idx0 = torch.sort(prior, stable=True)
            inverse = value.index_select(0, len(n) - 1 - torch.sort(idx0, stable=True)[1])
            lp = torch.log(prior + 1e-9)
            self.sade_offsets = [torch.zeros_like(prior), lp,
                                 lp - self.p["tau"] * torch.log(inverse + 1e-9)]
        if self.name == "label-aware-smoothing":
            # dvlab-research/MiSLAS LabelAwareSmoothing, concave shape (all head when balanced).
            h, tl, n1, nk = self.p["smooth_head"], self.p["smooth_tail"], n.max(), n.min()
            eps = (tl + (h - tl) * np.sin((n - nk) * np.pi / (2 * (n1 - nk)))
                   if n1 > nk else np.full(len(n), h))
            self.las = torch.tensor(eps, dtype=torch.float32)
        if self.name == "influence-balanced":
            # pseulki/IB-Loss cifar_train.py: plain CE before start_ib_epoch, then IBLoss with
            # per_cls_weights = 1/n scaled to sum C.
            self.ib_start = math.floor(self.p["start_fraction"] * epochs)
            self.ib_weights = torch.tensor(normalize_to_c(1.0 / n), dtype=torch.float32)
        if self.name == "bcl":
            # FlamieZhu/Balanced-Contrastive-Learning LogitAdjust (tau log prior, float32 here
            # as cauda's offsets are) and BalSCL (temperature).
            self.la_offsets = torch.tensor(self.p["tau"] * np.log(n / n.sum()),
                                           dtype=torch.float32)
        self.drw_start, self.drw_weights = None, None
        if drw is not None:
            self.drw_start = math.floor(drw["values"]["start_fraction"] * epochs)
            self.drw_weights = effective_number_weights(counts, drw["values"]["beta"])

    def class_weights(self, epoch):
        w = self.weights
        if self.drw_start is not None and epoch >= self.drw_start:
            w = self.drw_weights
        return None if w is None else torch.tensor(w, dtype=torch.float32)

    def per_sample(self, z, y):
        name, p = self.name, self.p
        if name in ("ce", "weighted-ce", "grw") or (name == "class-balanced" and p["gamma"] == 0):
            return F.cross_entropy(z, y, reduction="none")
        if name == "focal" or name == "class-balanced":
            logp = F.log_softmax(z, 1).gather(1, y[:, None])[:, 0]
            return -((1 - logp.exp()) ** p["gamma"]) * logp
        if name == "ldam":
            shifted = z - F.one_hot(y, z.shape[1]).float() * self.margins
            return F.cross_entropy(p["s"] * shifted, y, reduction="none")
        if name == "balanced-softmax":
            return F.cross_entropy(z + self.log_counts, y, reduction="none")
        if name == "logit-adjusted":
            return F.cross_entropy(z + p["tau"] * self.log_prior, y, reduction="none")
        if name == "vs":
            return F.cross_entropy(z / self.vs_delta.to(z.dtype) + self.vs_iota.to(z.dtype), y,
                                   reduction="none")
        if name == "lade":
            return F.cross_entropy(z + self.log_prior.to(z.dtype), y, reduction="none")
        if name == "influence-balanced":
            return F.cross_entropy(z, y, reduction="none")
        if name == "label-aware-smoothing":
            logp = F.log_softmax(z, 1)
            eps = self.las.to(z.dtype)[y]
            return (1 - eps) * -logp.gather(1, y[:, None])[:, 0] + eps * -logp.mean(1)
        sys.exit(f"reference.py: unknown loss {name}")

    def per_sample_at(self, z, y, key, term):
        """per_sample of one evaluation in a step: GCL draws its noise from the step's key
        (losses/draws.rs); every other loss is deterministic."""
        if self.name != "gcl":
            return self.per_sample(z, y)
        p = self.p
        noise = torch.from_numpy(gcl_noise(key, term, z.shape[0], z.shape[1])).to(z.dtype)
        onehot = F.one_hot(y, z.shape[1]).to(z.dtype)
        out = z - self.gcl_cloud.to(z.dtype) * noise - p["m"] * onehot
        ce = F.cross_entropy(p["s"] * out, y, reduction="none")
        if p["gamma"] > 0:  # GCLLoss(train_cls=True): focal_loss with p.detach()
            ce = (1 - torch.exp(-ce.detach())) ** p["gamma"] * ce
        return ce

    def lade_regularizer(self, z, y):
        """LADELoss.forward (remine_lower_bound over the batch, weighted by the prior)."""
        c = z.shape[1]
        prior = self.lade_prior.to(z.dtype)
        member = (y[None, :] == torch.arange(c)[:, None])  # C x N
        first = (z.T * member).sum(-1) / (member.sum(-1).to(z.dtype) + 1e-8)
        spread = (z - torch.log(prior + 1e-9) + math.log(1.0 / c + 1e-9)).T
        second = torch.logsumexp(spread, -1) - math.log(z.shape[0])
        estim = first - second - self.p["lambda"] * second ** 2
        return -(estim * prior).sum()

    def bcl_batch(self, z, e, centers, y):
        """BCL: alpha LogitAdjust(z, y) + beta BalSCL(centers, views 1.., y) (losses/bcl.rs),
        `e` the unit-norm embeddings [V, N, P] of every view, view 0 the classification view."""
        ce = F.cross_entropy(z + self.la_offsets.to(z.dtype), y)
        scl = bal_scl(centers, e[1:], y, len(self.la_offsets), self.p["temperature"])
        return self.p["alpha"] * ce + self.p["beta"] * scl

    def bbn_batch(self, fc, feature_a, feature_b, label_a, label_b, epoch):
        """Megvii-Nanjing/BBN lib/core/combiner.py `bbn_mix` after the two feature extractions,
        with its 1-based epoch (epoch + 1) and div_epoch the stage's epochs."""
        l = 1 - ((epoch + 1 - 1) / self.epochs) ** 2  # parabolic decay
        mixed_feature = 2 * torch.cat((l * feature_a, (1 - l) * feature_b), dim=1)
        output = fc(mixed_feature)
        return l * F.cross_entropy(output, label_a) + (1 - l) * F.cross_entropy(output, label_b)

    def experts_batch(self, zs, y, epoch):
        """RIDE and SADE over the experts' logits zs [E, N, C] (sums over experts)."""
        total = 0
        if self.name == "sade":
            for e in range(3):
                total = total + F.cross_entropy(zs[e] + self.sade_offsets[e].to(zs.dtype), y)
            return total
        s = self.p["s"]
        on = self.ride_start is not None and epoch >= self.ride_start
        w = self.ride_weights.to(zs.dtype) if on else None
        temp = (self.p["base_temperature"] * self.ride_temps.to(zs.dtype)).view(1, -1) if on \
            else self.p["base_temperature"]
        t_mean = temp.mean().item() if on else temp
        with torch.no_grad():
            target = F.softmax(zs.mean(0) / temp, 1)
        margin = F.one_hot(y, zs.shape[2]).to(zs.dtype) * self.margins.to(zs.dtype) * s
        for e in range(zs.shape[0]):
            total = total + F.cross_entropy(zs[e] - margin, y, weight=w)
            kl = F.kl_div(F.log_softmax(zs[e] / temp, 1), target, reduction="batchmean")
            total = total + self.p["diversity_factor"] * t_mean * t_mean * kl
        return total

    def batch(self, z, ya, mixed, epoch, h=None, experts=None, key=0):
        """combine.rs: sum(lam w_a l_a + (1-lam) w_b l_b) / sum(lam w_a + (1-lam) w_b);
        LADE: its prior CE plus alpha times its per-class regularizer over the batch; IB: CE
        divided by each sample's influence ||softmax(z) - e_y||_1 ||h||_1 (h: features)."""
        if self.name in ("ride", "sade"):
            if mixed is not None or experts is None:
                sys.exit(f"reference.py: {self.name} takes no mixed batch and needs experts")
            return self.experts_batch(experts, ya, epoch)
        if self.name == "influence-balanced" and epoch >= self.ib_start:
            if mixed is not None:
                sys.exit("reference.py: influence-balanced takes no mixed batch")
            grads = torch.abs(F.softmax(z, 1) - F.one_hot(ya, z.shape[1]).to(z.dtype)).sum(1)
            ib = self.p["alpha"] / (grads * torch.abs(h).sum(1) + 0.001)
            ce = F.cross_entropy(z, ya, reduction="none", weight=self.ib_weights.to(z.dtype))
            return (ce * ib).mean()
        if self.name == "influence-balanced":
            return F.cross_entropy(z, ya)
        if self.name == "lade":
            if mixed is not None:
                sys.exit("reference.py: lade takes no mixed batch")
            return self.per_sample(z, ya).mean() + self.p["alpha"] * self.lade_regularizer(z, ya)
        w = self.class_weights(epoch)
        la = self.per_sample_at(z, ya, key, 0)
        if mixed is None:
            return la.mean() if w is None else (w[ya] * la).sum() / w[ya].sum()
        yb, lam = mixed
        lb = self.per_sample_at(z, yb, key, 1)
        sa, sb = lam, 1 - lam
        if w is not None:
            sa, sb = sa * w[ya], sb * w[yb]
        return (sa * la + sb * lb).sum() / (sa + sb).sum()


# --------------------------------------------------------------------------------------------
# Samplers, input pipeline, mixing: plugins/src/samplers, train/batches.rs, augment/
# --------------------------------------------------------------------------------------------


def class_aware_order(labels, classes, per_visit=4):
    """Kang et al.'s ClassAwareSampler (data/ClassAwareSampler.py): max n_c x C draws; classes in
    random cycles, `per_visit` images of each visited class from its own random cycle. As in
    samplers/class_aware.rs the cycles start afresh every epoch."""
    members = [torch.nonzero(labels == c)[:, 0].tolist() for c in range(classes)]
    nonempty = [c for c in range(classes) if members[c]]
    total = max(len(m) for m in members) * len(nonempty)

    def cycle(items):
        while True:
            perm = torch.randperm(len(items)).tolist()
            for i in perm:
                yield items[i]

    class_iter = cycle(nonempty)
    image_iters = {c: cycle(members[c]) for c in nonempty}
    out = []
    while len(out) < total:
        c = next(class_iter)
        for _ in range(min(per_visit, total - len(out))):
            out.append(next(image_iters[c]))
    return torch.tensor(out, dtype=torch.long)


def epoch_order(name, labels, classes, epoch, epochs, per_visit=4):
    n = len(labels)
    if name == "instance":
        return torch.randperm(n)
    if name == "class-aware":
        return class_aware_order(labels, classes, per_visit)
    counts = torch.bincount(labels, minlength=classes).double()
    ib, cb = counts / counts.sum(), (counts > 0).double() / (counts > 0).sum()
    if name == "class-balanced":
        p = cb
    elif name == "square-root":
        p = counts.sqrt() / counts.sqrt().sum()
    elif name == "progressively-balanced":
        t = min(epoch / epochs, 1.0) if epochs else 1.0
        p = (1 - t) * ib + t * cb
    elif name == "reversed":
        # BBN's get_weight: w_c = max_num / n_c, drawn in proportion (0 for an empty class).
        w = torch.where(counts > 0, counts.max() / counts.clamp_min(1), torch.zeros_like(counts))
        p = w / w.sum()
    else:
        sys.exit(f"reference.py: unknown sampler {name}")
    drawn = torch.multinomial(p, n, replacement=True)
    members = [torch.nonzero(labels == c)[:, 0] for c in range(classes)]
    out = torch.empty(n, dtype=torch.long)
    for c in range(classes):
        sel = drawn == c
        k = int(sel.sum())
        if k:
            out[sel] = members[c][torch.randint(len(members[c]), (k,))]
    return out


def crop_flip(x, pad):
    """Zero-pad the u8 images, crop back at a random offset in 0..=2pad, flip with p = 0.5."""
    b, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (b,))
    dx = torch.randint(0, 2 * pad + 1, (b,))
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    flip = torch.rand(b) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def mix(mixer, x, y, counts):
    """mixup / cutmix / remix on a normalized batch; returns x, (labels_b, lam per sample)."""
    p = mixer["values"]
    lam = float(torch.distributions.Beta(p["alpha"], p["alpha"]).sample())
    perm = torch.randperm(len(y))
    yb = y[perm]
    lam_vec = torch.full((len(y),), lam)
    if mixer["plugin"] == "cutmix":
        _, _, h, w = x.shape
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        rat = math.sqrt(1 - lam)
        hh, hw = int(h * rat) // 2, int(w * rat) // 2
        y0, y1, x0, x1 = max(cy - hh, 0), min(cy + hh, h), max(cx - hw, 0), min(cx + hw, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam_vec = torch.full((len(y),), 1 - (y1 - y0) * (x1 - x0) / (h * w))
    else:
        x = lam * x + (1 - lam) * x[perm]
        if mixer["plugin"] == "remix":
            n = torch.tensor(counts, dtype=torch.float64)
            ratio = n[y] / n[yb]
            lam_vec = torch.where((ratio >= p["kappa"]) & (lam < p["tau"]), 0.0,
                                  torch.where((ratio <= 1 / p["kappa"]) & (1 - lam < p["tau"]),
                                              1.0, lam)).float()
    return x, (yb, lam_vec)


def cmo_mix(p, x, y, second, epoch, epochs):
    """naver-ai/cmo cifar_train.py: in epochs start_data_aug < epoch < epochs - end_data_aug,
    with probability mixup_prob, a box (rand_bbox, lam ~ Beta) of the second batch's images
    pasted into the batch, the labels weighted by the exact kept area (augment/cmo.rs)."""
    if not (p["start_data_aug"] < epoch < epochs - p["end_data_aug"]):
        return x, None
    if second is None:
        sys.exit("reference.py: cmo needs the second sampler stream")
    # Its np.random draws (rand, beta, randint x2), from torch's generator as mix() draws.
    if float(torch.rand(())) >= p["prob"]:
        return x, None
    x2, y2 = second
    lam = float(torch.distributions.Beta(p["alpha"], p["alpha"]).sample())
    h, w = x.shape[2], x.shape[3]
    cut_rat = math.sqrt(1. - lam)
    cut_h, cut_w = int(h * cut_rat), int(w * cut_rat)
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    y0, y1 = min(max(cy - cut_h // 2, 0), h), min(max(cy + cut_h // 2, 0), h)
    x0, x1 = min(max(cx - cut_w // 2, 0), w), min(max(cx + cut_w // 2, 0), w)
    x = x.clone()
    x[:, :, y0:y1, x0:x1] = x2[:, :, y0:y1, x0:x1]
    lam = 1 - ((y1 - y0) * (x1 - x0) / (h * w))
    return x, (y2, torch.full((len(y),), lam, dtype=torch.float32))


def learning_rate(base, sched, epoch, epochs):
    """train/schedule.rs."""
    warm = sched["warmup_epochs"]
    if epoch < warm:
        return base * (epoch + 1) / warm
    if sched["name"] == "step":
        return base * sched["gamma"] ** sum(1 for m in sched["milestones"] if m <= epoch)
    if sched["name"] == "cosine":
        total = max(epochs - warm, 1)
        return base * 0.5 * (1 + math.cos(math.pi * (epoch - warm) / total))
    return base


HEAD_TENSORS = ("head.weight", "head.bias")


def lr_factor(plan, name):
    """The learning-rate factor of parameter `name` (MiSLAS: the classifier at lr_factor)."""
    return plan.get("head_lr_factor", 1.0) if name in HEAD_TENSORS else 1.0


def param_groups(model, plan):
    """The trainable parameters, in groups by learning-rate factor (stage.rs
    step_with_head_factor): one list when every tensor learns at the stage's rate."""
    named = [(k, q) for k, q in sorted(model.named_parameters()) if q.requires_grad]
    f = plan.get("head_lr_factor", 1.0)
    if f == 1.0:
        return [q for _, q in named]
    return [{"params": [q for k, q in named if k not in HEAD_TENSORS], "lr_factor": 1.0},
            {"params": [q for k, q in named if k in HEAD_TENSORS], "lr_factor": f}]


def set_lr(optim, lr):
    for g in optim.param_groups:
        g["lr"] = lr * g.get("lr_factor", 1.0)


def make_optimizer(opt, params, weight_decay):
    if opt["name"] == "adam":
        return torch.optim.Adam(params, lr=opt["lr"], betas=(opt["beta1"], opt["beta2"]),
                                eps=opt["eps"], weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=opt["lr"], momentum=opt["momentum"], dampening=0,
                           nesterov=opt["nesterov"] and opt["momentum"] > 0,
                           weight_decay=weight_decay)


# --------------------------------------------------------------------------------------------
# Training and evaluation: train/{stage,decoupled,evaluate}.rs, metrics/
# --------------------------------------------------------------------------------------------


def normalize(x_u8, d):
    return (x_u8.float() / 255.0 - d["mean"]) / d["std"]


def run_stage(model, d, cfg, st, losses=None):
    """One stage: st has epochs, sampler, loss, mixer, opt (spec), weight_decay, schedule, max_norm.
    Appends each epoch's mean training loss to `losses` (cauda's `train_loss`) when given."""
    x_all, y_all = d["train"]
    optim = make_optimizer(st["opt"], param_groups(model, st), st["weight_decay"])
    bs = cfg["train"]["batch_size"]
    pad = cfg["pad"] if cfg["crop_flip"] else None
    for epoch in range(st["epochs"]):
        lr = learning_rate(st["opt"]["lr"], st["schedule"], epoch, st["epochs"])
        set_lr(optim, lr)
        model.train()
        if st.get("frozen_backbone"):
            model.backbone.eval()  # frozen BatchNorm keeps its running statistics
        order = epoch_order(st["sampler"], y_all, d["classes"], epoch, st["epochs"],
                            st.get("per_visit", 4))
        # The second sampler stream (BBN's re-balancing branch, CMO's pasted images): a batch
        # beside each batch.
        order2 = (epoch_order(st["second_sampler"], y_all, d["classes"], epoch, st["epochs"])
                  if st.get("second_sampler") else None)
        total, batches = 0.0, 0
        for start in range(0, len(order), bs):
            idx = order[start : start + bs]
            x0, yb = x_all[idx], y_all[idx]
            xb = normalize(crop_flip(x0, pad) if pad is not None else x0, d)
            second = None
            if order2 is not None:
                idx2 = order2[start : start + bs]
                x2 = x_all[idx2]
                second = (normalize(crop_flip(x2, pad) if pad is not None else x2, d),
                          y_all[idx2])
            mixed = None
            if st["mixer"] is not None and st["mixer"]["plugin"] == "cmo":
                xb, mixed = cmo_mix(st["mixer"]["values"], xb, yb, second, epoch, st["epochs"])
                second = None  # the pasted images go no further
            elif st["mixer"] is not None:
                xb, mixed = mix(st["mixer"], xb, yb, d["counts"])
            # A contrastive model's further views: each image cropped and flipped again.
            views = [normalize(crop_flip(x0, pad) if pad is not None else x0, d)
                     for _ in range(views_of(model) - 1)]
            if views:
                xb = torch.cat([xb] + views)
            key = step_key(cfg["train"]["seed"], st["stage"], epoch, batches)
            total += float(train_step(model, optim, st, xb, yb, mixed, epoch, key, second))
            batches += 1
        if losses is not None:
            losses.append(total / max(batches, 1))


def views_of(model):
    """Views of each image in a training batch (models/mod.rs Classifier::batch_views)."""
    contrast = getattr(model, "contrast", None)
    return 1 if contrast is None else 1 + contrast.views


def frozen_teacher(model):
    """kd's teacher: evaluation mode (BatchNorm's running statistics), no gradients."""
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)
    return model


def distillation(task, z, zt, alpha, t):
    """Hinton et al.'s distillation around the task loss: (1 - alpha) task + alpha T^2
    KL(softmax(zt / T) || softmax(z / T)), the KL a mean over the batch (losses/distillation.rs)."""
    kl = F.kl_div(F.log_softmax(z / t, 1), F.log_softmax(zt / t, 1), reduction="batchmean",
                  log_target=True)
    return (1 - alpha) * task + alpha * t * t * kl


def train_step(model, optim, st, xb, yb, mixed, epoch, key=0, second=None):
    """One optimizer step on a ready batch (train/stage.rs, parallel.rs batch_loss); returns the
    loss. A contrastive model's batch is its views one after the other [V x N, ...]: all pass
    the backbone (and the projection head's BatchNorm) at once, the logits are view 0's. BBN's
    bilateral model takes the second stream's batch `second = (x2, y2)`: the main batch through
    its conventional branch, then the second through its re-balancing branch, as bbn_mix."""
    n = len(yb)
    if isinstance(model.backbone, BilateralResNet):
        if second is None or mixed is not None or st["loss"].name != "bbn":
            sys.exit("reference.py: the bilateral model trains with bbn on a second stream, "
                     "unmixed")
        loss = st["loss"].bbn_batch(model.head, model.backbone.branch(xb, 0),
                                    model.backbone.branch(second[0], 1), yb, second[1], epoch)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return loss.detach()
    h = model.backbone(xb)
    contrast = getattr(model, "contrast", None)
    if contrast is not None:
        e = contrast.embeddings(h, xb.shape[0] // n)
        centers = contrast.class_centers(model.head.weight)
        h = h[:n]
    experts = model.head.expert_logits(h) if getattr(model.head, "experts", 1) > 1 else None
    z = experts.mean(0) if experts is not None else model.head(h)
    if contrast is not None:
        if mixed is not None or centers is None:
            sys.exit("reference.py: bcl takes no mixed batch and needs the class centers")
        loss = st["loss"].bcl_batch(z, e, centers, yb)
    else:
        loss = st["loss"].batch(z, yb, mixed, epoch, h, experts, key)
    if st.get("kd") is not None:
        with torch.no_grad():
            zt = st["teacher"](xb[:n])
        loss = distillation(loss, z, zt, *st["kd"])
    optim.zero_grad(set_to_none=True)
    loss.backward()
    optim.step()
    if st["max_norm"] is not None:
        model.head.max_norm_(st["max_norm"])
    return loss.detach()


@torch.no_grad()
def features(model, split, d):
    model.eval()
    x, _ = split
    return torch.cat([model.backbone(normalize(x[i : i + 1024], d)) for i in range(0, len(x), 1024)])


def score(z, labels, counts, metrics_cfg):
    pred = z.argmax(1)
    classes = len(counts)
    per_class = []
    for c in range(classes):
        m = labels == c
        per_class.append(float((pred[m] == c).float().mean()) if m.any() else None)
    groups = {"many": [], "medium": [], "few": []}
    for acc, n in zip(per_class, counts):
        if acc is None:
            continue
        if n > metrics_cfg["many_threshold"]:
            groups["many"].append(acc)
        elif n < metrics_cfg["few_threshold"]:
            groups["few"].append(acc)
        else:
            groups["medium"].append(acc)
    out = {"test_top1": float((pred == labels).float().mean())}
    out.update({k: (sum(v) / len(v) if v else None) for k, v in groups.items()})
    out["per_class"] = per_class
    return out


def evaluate(model, head, d, cfg, shift):
    out = {}
    for name in ("test", "val"):
        if d[name] is None:
            continue
        with torch.no_grad():
            z = head(features(model, d[name], d))
        if shift is not None:
            z = z - shift
        out[name] = score(z, d[name][1], d["counts"], cfg["metrics"])
    rec = out["test"]
    if "val" in out:
        rec["val_top1"] = out["val"]["test_top1"]
    return rec


def stage1_plan(cfg, counts):
    """Stage 1's recipe (train/decoupled.rs run_all): weight balancing changes its weight decay
    and adds MaxNorm."""
    epochs = cfg["train"]["epochs"]
    s2 = cfg.get("stage2")
    wb = s2["params"]["values"] if s2 and s2["name"] == "weight-balancing" else None
    opt = cfg["train"]["optimizer"]
    return {
        "stage": 1,
        "epochs": epochs,
        "sampler": cfg["sampler"]["plugin"],
        "second_sampler": (cfg.get("second_sampler") or {}).get("plugin"),
        "loss": Loss(cfg["loss"], counts, cfg.get("drw"), epochs),
        "mixer": cfg.get("mixer"),
        "opt": opt,
        "weight_decay": wb["stage1_weight_decay"] if wb else opt["weight_decay"],
        "schedule": cfg["train"]["schedule"],
        "max_norm": None,  # weight balancing's MaxNorm is stage 2's only
    }


def relative_max_norm(head, thresh):
    """Alshammari et al.'s MaxNorm_via_PGD radius: min + thresh (max - min) of the row norms."""
    norms = head.weight.detach().norm(dim=1)
    return float(norms.min() + thresh * (norms.max() - norms.min()))


def stage2_plan(cfg, counts, model):
    """The second stage of cRT, LWS and weight balancing (train/decoupled.rs stage2_setup), for
    `model` as stage 2 starts (weight balancing's MaxNorm radius comes from its classifier)."""
    s2 = cfg["stage2"]
    p = s2["params"]["values"]
    opt = cfg["train"]["optimizer"]
    if s2["name"] == "mislas":
        # dvlab-research/MiSLAS train_stage2.py: classifier (lr x lr_factor) and LWS (lr) under
        # LabelAwareSmoothing, ClassAwareSampler(train_dataset) batches, cosine to 0.
        las = {"plugin": "label-aware-smoothing",
               "values": {"smooth_head": p["smooth_head"], "smooth_tail": p["smooth_tail"]}}
        return {
            "stage": 2,
            "epochs": int(p["epochs"]),
            "sampler": "class-aware",
            "per_visit": int(p["per_visit"]),
            "loss": Loss(las, counts, None, int(p["epochs"])),
            "mixer": None,
            "opt": dict(opt, lr=p["lr"]),
            "weight_decay": p["weight_decay"],
            "schedule": {"name": "cosine", "warmup_epochs": 0, "milestones": [], "gamma": 0.1},
            "max_norm": None,
            "frozen_backbone": True,
            "head_lr_factor": p["lr_factor"],
        }
    if s2["name"] == "kd":
        # Distillation: the student trains with the run's own recipe (train/decoupled.rs's
        # Distil branch reuses stage 1's setup); the teacher is attached by the caller.
        return dict(stage1_plan(cfg, counts), kd=(p["alpha"], p["temperature"]), teacher=None,
                    stage=2)
    if s2["name"] == "disalign":
        # Megvii-BaseDetection/DisAlign classification config: backbone and classifier frozen,
        # the calibration trained with GRWCrossEntropyLoss(exp_scale=rho) on the run's sampling.
        grw = {"plugin": "grw", "values": {"rho": p["rho"]}}
        return {
            "stage": 2,
            "epochs": int(p["epochs"]),
            "sampler": "instance",
            "loss": Loss(grw, counts, None, int(p["epochs"])),
            "mixer": None,
            "opt": dict(opt, lr=p["lr"]),
            "weight_decay": p["weight_decay"],
            "schedule": {"name": "cosine", "warmup_epochs": 0, "milestones": [], "gamma": 0.1},
            "max_norm": None,
            "frozen_backbone": True,
        }
    if s2["name"] == "gcl-classifier":
        # Keke921/GCLLoss cifar_train_classifier.py: the stage-1 classifier on the frozen
        # backbone, BalancedRS (a uniform class, then a uniform image), mixup,
        # GCLLoss(m, s, noise_mul, train_cls=True, gamma), the run's weight decay, cosine.
        gcl = {"plugin": "gcl", "values": {k: p[k] for k in ("m", "s", "noise_mul", "gamma")}}
        mixer = ({"plugin": "mixup", "values": {"alpha": p["mixup_alpha"]}}
                 if p["mixup_alpha"] > 0 else None)
        return {
            "stage": 2,
            "epochs": int(p["epochs"]),
            "sampler": "class-balanced",
            "loss": Loss(gcl, counts, None, int(p["epochs"])),
            "mixer": mixer,
            "opt": dict(opt, lr=p["lr"]),
            "weight_decay": opt["weight_decay"],
            "schedule": {"name": "cosine", "warmup_epochs": 0, "milestones": [], "gamma": 0.1},
            "max_norm": None,
            "frozen_backbone": True,
        }
    wbal = s2["name"] == "weight-balancing"
    cb = {"plugin": "class-balanced", "values": {"beta": 0.9999, "gamma": 0.0}}
    return {
        "stage": 2,
        "epochs": int(p["epochs"]),
        "sampler": "instance" if wbal else "class-aware",
        "loss": Loss(cb if wbal else {"plugin": "ce", "values": {}}, counts, None, int(p["epochs"])),
        "mixer": None,
        "opt": dict(opt, lr=p["lr"]),
        "weight_decay": p["weight_decay"] if wbal else opt["weight_decay"],
        "schedule": {"name": "cosine", "warmup_epochs": 0, "milestones": [], "gamma": 0.1},
        "max_norm": relative_max_norm(model.head, p["thresh"]) if wbal else None,
        "frozen_backbone": True,
    }


def stage2_model(model, s2, classes):
    """Freezes the backbone; cRT re-initializes the head, LWS adds per-class scales to the
    frozen head, MiSLAS to the trained one. kd's student is a whole new model of the same
    architecture (see `train`): nothing changes here."""
    if s2["name"] == "kd":
        return
    for q in model.backbone.parameters():
        q.requires_grad_(False)
    if s2["name"] == "crt":
        model.head = Head(model.backbone.dim, classes, model.head.cosine_scale, "torch",
                          model.head.experts)
    elif s2["name"] == "lws":
        for q in model.head.parameters():
            q.requires_grad_(False)
        model.head.scales = nn.Parameter(torch.ones(classes))
    elif s2["name"] == "mislas":
        model.head.scales = nn.Parameter(torch.ones(classes))  # the classifier keeps training
    elif s2["name"] == "disalign":
        for q in model.head.parameters():
            q.requires_grad_(False)
        model.head.with_disalign()


@torch.no_grad()
def ncm_head(model, d, scale):
    """Kang et al.'s NCM (classifier-balancing KNNClassifier, feat_type 'l2n', dist 'cos'): the
    class means of the L2-normalized training features (eval mode, no augmentation) as a cosine
    classifier."""
    f = features(model, d["train"], d).double()
    f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
    y = d["train"][1]
    means = torch.stack([f[y == c].mean(0) for c in range(d["classes"])])
    head = Head(f.shape[1], d["classes"], scale)
    head.weight = nn.Parameter(means.float())
    return head


def knn_scores(train_f, train_y, query_f, classes, k, temperature):
    """Wu et al.'s weighted kNN vote (dino eval_knn.py knn_classifier) in float64 numpy:
    cosine similarities of L2-normalized features, the k largest (ties to the earlier training
    image), score_c = sum exp(s / T) over those of class c; returns ln(score / sum score),
    floored at ln 1e-30 (stage2/knn.rs)."""
    t = np.asarray(train_f, dtype=np.float64)
    q = np.asarray(query_f, dtype=np.float64)
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    sims = q @ t.T
    n = len(t)
    k = min(k, n)
    out = np.zeros((len(q), classes))
    for i, row in enumerate(sims):
        top = np.lexsort((np.arange(n), -row))[:k]
        score = np.zeros(classes)
        np.add.at(score, np.asarray(train_y)[top], np.exp(row[top] / temperature))
        out[i] = np.log(np.maximum(score / score.sum(), 1e-30))
    return out


@torch.no_grad()
def knn_head(model, d, k, temperature):
    """The kNN classifier over the model's training features (eval mode, no augmentation), as
    a function of features."""
    f = features(model, d["train"], d).double().numpy()
    y = d["train"][1].numpy()
    return lambda q: torch.from_numpy(
        knn_scores(f, y, q.double().numpy(), d["classes"], k, temperature)).float()


# --------------------------------------------------------------------------------------------
# SADE's test-time self-supervised aggregation: plugins/src/train/test_time.rs,
# plugins/src/metrics/test_agnostic.rs (ShiftedTestSets)
# --------------------------------------------------------------------------------------------

SHIFTED_SETS_KEY = 0x5ADE_7E57_0000_0001
TEST_AGNOSTIC = ([("forward", r) for r in (50, 25, 10, 5, 2)] + [("uniform", 1)]
                 + [("backward", r) for r in (2, 5, 10, 25, 50)])


def shifted_sets(labels, classes, train_counts, seed):
    """The eleven shifted test sets, as cauda draws them: each class's test images in the order
    of cauda's ChaCha8 shuffle (stream = class, seed ^ SHIFTED_SETS_KEY), of which the set keeps
    `int(n_max * (1/r)^(p/(C-1)))` (SADE's get_img_num_per_cls), p the class's position in the
    long tail (training count rank, ties by index; reversed backward). Exact, so both
    implementations adapt on and score the same images."""
    labels = [int(v) for v in labels]
    members = [cauda_shuffle([i for i, v in enumerate(labels) if v == c],
                             (seed ^ SHIFTED_SETS_KEY) & M64, c) for c in range(classes)]
    n_max = max(len(m) for m in members)
    rank = sorted(range(classes), key=lambda c: (-train_counts[c], c))
    last = classes - 1
    out = []
    for kind, ratio in TEST_AGNOSTIC:
        keep = [n_max] * classes
        if kind != "uniform" and classes > 1:
            for r, c in enumerate(rank):
                p = r if kind == "forward" else last - r
                keep[c] = int(n_max * (1.0 / ratio) ** (p / last))
        name = "uniform" if kind == "uniform" else f"{kind}-{ratio}"
        out.append((name, sorted(i for c in range(classes) for i in members[c][:min(keep[c], len(members[c]))])))
    return out


def test_time_aggregation(model, d, cfg, shift):
    """Vanint/SADE-AgnosticLT test_training_cifar.py on each shifted set, transductively (the set
    adapts on its own unlabeled images, as the paper states it): w = 1/E, SGD on
    -mean cos(softmax(sum_e softmax(w)_e z_e(view 0)), softmax(... view 1)), torch's own crop and
    flip draws for the two views of each batch (the run's pad, as cauda's views), shuffled
    batches, the early stop on weights rounded to two decimals; then top-1 on the set."""
    s = cfg["test_time_aggregation"]
    x, y = d["test"]
    classes, counts = d["classes"], d["counts"]
    model.eval()
    for q in model.parameters():
        q.requires_grad_(False)

    def experts_of(xb):
        z = model.head.expert_logits(model.backbone(normalize(xb, d))).permute(1, 0, 2)
        return z if shift is None else z - shift
    with torch.no_grad():
        clean = torch.cat([experts_of(x[i:i + 1024]) for i in range(0, len(x), 1024)])
    experts = clean.shape[1]
    cos = torch.nn.CosineSimilarity(dim=1, eps=1e-6)
    out = []
    for name, subset in shifted_sets(y.tolist(), classes, counts, cfg["train"]["seed"]):
        idx = torch.tensor(subset, dtype=torch.long)
        w = torch.nn.Parameter(torch.full((experts,), 1 / experts))
        opt = torch.optim.SGD([w], lr=s["lr"], momentum=s["momentum"],
                              weight_decay=s["weight_decay"], nesterov=s["nesterov"])
        epochs = 0
        for _ in range(s["epochs"]):
            for b in idx[torch.randperm(len(idx))].split(s["batch_size"]):
                with torch.no_grad():
                    z0 = experts_of(crop_flip(x[b], cfg["pad"]))
                    z1 = experts_of(crop_flip(x[b], cfg["pad"]))
                a = F.softmax(w, dim=0)
                p0 = F.softmax((a[None, :, None] * z0).sum(1), dim=1)
                p1 = F.softmax((a[None, :, None] * z1).sum(1), dim=1)
                loss = -cos(p0, p1).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            epochs += 1
            if (np.round(F.softmax(w.detach(), dim=0).numpy(), 2) < s["min_weight"]).any():
                break
        a = F.softmax(w.detach(), dim=0)
        z = clean[idx]
        rec = score((a[None, :, None] * z).sum(1), y[idx], counts, cfg["metrics"])
        mean = score(z.mean(1), y[idx], counts, cfg["metrics"])
        out.append({"distribution": name, "weights": a.tolist(), "epochs": epochs,
                    "images": len(subset), "top1": rec["test_top1"],
                    "mean_top1": mean["test_top1"], "many": rec["many"],
                    "medium": rec["medium"], "few": rec["few"]})
    return out


def posthoc_shift(cfg, counts):
    if not cfg.get("posthoc"):
        return None
    n = torch.tensor(counts, dtype=torch.float64)
    return (cfg["posthoc"]["values"]["tau"] * torch.log(n / n.sum())).float()


def train(cfg, d, init=None):
    shape = tuple(d["train"][0].shape[1:])
    classes, counts = d["classes"], d["counts"]
    s2 = cfg.get("stage2")
    model = Classifier(cfg["model"], shape, classes)
    if init is not None:  # initial weights from a file (e.g. cauda's lockstep stage1_init)
        from safetensors.torch import load_file
        model.load_state_dict(load_file(str(init)))
    losses = []
    run_stage(model, d, cfg, stage1_plan(cfg, counts), losses)
    shift = posthoc_shift(cfg, counts)
    tau_sweep = None
    head = None
    if s2 and s2["name"] == "ncm":
        model.head = ncm_head(model, d, s2["params"]["values"]["scale"])
    elif s2 and s2["name"] == "knn":
        v = s2["params"]["values"]
        head = knn_head(model, d, int(v["k"]), v["temperature"])
    elif s2 and s2["name"] == "kd":
        # The stage-1 model is the frozen teacher of a new student (torch's init, its RNG
        # continuing from stage 1).
        teacher = frozen_teacher(model)
        model = Classifier(cfg["model"], shape, classes)
        st = stage2_plan(cfg, counts, model)
        st["teacher"] = teacher
        run_stage(model, d, cfg, st, losses)
    elif s2 and s2["name"] not in ("tau-norm", "knn"):
        stage2_model(model, s2, classes)
        run_stage(model, d, cfg, stage2_plan(cfg, counts, model), losses)
    elif s2:  # tau-norm, chosen on validation when there is a validation split
        taus = [i / 10 for i in range(21)]
        sweep = [evaluate(model, model.head.tau_normalized(t), d, cfg, shift) for t in taus]
        if d["val"] is not None:
            vals = [r["val_top1"] for r in sweep]
            chosen = taus[max(range(len(taus)), key=lambda i: (vals[i], -i))]
        else:
            chosen = s2["params"]["values"]["tau"]
        tau_sweep = {"taus": taus, "test_top1": [r["test_top1"] for r in sweep], "chosen": chosen}
        model.head = model.head.tau_normalized(chosen)
    last = evaluate(model, head or model.head, d, cfg, shift)
    aggregation = (test_time_aggregation(model, d, cfg, shift)
                   if cfg.get("test_time_aggregation") else None)
    return last, tau_sweep, losses, aggregation


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=pathlib.Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=pathlib.Path)
    ap.add_argument("--init", type=pathlib.Path,
                    help="start from these weights (safetensors, PyTorch names) instead of torch's init")
    args = ap.parse_args()
    started = time.time()
    torch.set_num_threads(args.threads)
    cfg = json.loads((args.run_dir / "config.json").read_text())
    split = json.loads((args.run_dir / "split.json").read_text())
    torch.manual_seed(cfg["train"]["seed"])
    d = load_run_data(cfg, split)
    last, tau_sweep, losses, aggregation = train(cfg, d, args.init)
    out = {
        "implementation": f"pytorch {torch.__version__}",
        "method": cfg["method"],
        "seed": cfg["train"]["seed"],
        "split_hash": split["split_hash"],
        "class_counts": d["counts"],
        "test_pixel_sum": d["test_pixel_sum"],
        "last": last,
        "tau_sweep": tau_sweep,
        "test_time_aggregation": aggregation,
        "train_loss": losses,
        "wall_s": time.time() - started,
    }
    path = args.out or args.run_dir / "reference.json"
    path.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("method", "seed", "last", "wall_s")}))


if __name__ == "__main__":
    main()
