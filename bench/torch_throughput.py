"""PyTorch side of the training-throughput benchmark (plugins/benches/throughput.rs is cauda's):
the same LeNet and ResNet-32 as plugins/src/models, batch 128, SGD momentum 0.9 + weight decay,
timed two ways on this machine's CPU:

- loop: a DataLoader over u8 images (balanced synthetic set, same sizes as cauda's bench) whose
  batches are gathered, crop+flipped (ResNet) and normalized per channel, then the usual
  zero_grad / forward / cross_entropy / backward / step, the loss summed on the device and read
  once per epoch; images/s of every epoch but the first;
- bare: the same step on one pre-built float batch (another model), blocks of steps ended by
  loss.item(), one block after each of the loop's epochs so the two alternate.

Prints one JSON line per measurement (read by bench/throughput.sh) and a summary on stderr.
Usage: torch_throughput.py [--scale S] [--threads T] [lenet] [resnet32]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import LeNet, ResNet  # noqa: E402  (one definition of the models)

BATCH = 128
CLASSES = 10
# name -> (shape, crop_flip, batches per epoch/block, warm-up steps, rounds): as in throughput.rs.
CASES = {
    "lenet": ((1, 28, 28), False, 40, 10, 10),
    "resnet32": ((3, 32, 32), True, 5, 3, 4),
}
PAD = 4


def build(name, shape):
    """The same backbones as the accuracy comparison (reference.py mirrors plugins/src/models),
    with a linear head."""
    c, h, w = shape
    backbone = LeNet(c, h, w) if name == "lenet" else ResNet(c, 5, "A")  # resnet32
    return nn.Sequential(backbone, nn.Linear(backbone.dim, CLASSES))


class BatchSet(torch.utils.data.Dataset):
    """u8 images served a batch at a time (the DataLoader's sampler yields lists of indices):
    gather, crop+flip with zero padding, then (x / 255 - mean_c) / std_c, as train/batches.rs."""

    def __init__(self, pixels, labels, crop_flip, seed):
        self.pixels, self.labels, self.crop_flip = pixels, labels, crop_flip
        x = pixels.astype(np.float64) / 255.0
        self.mean = torch.tensor(x.mean(axis=(0, 2, 3)), dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.tensor(x.std(axis=(0, 2, 3)), dtype=torch.float32).view(1, -1, 1, 1)
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        imgs = self.pixels[idx]
        if self.crop_flip:
            n, _, h, w = imgs.shape
            padded = np.pad(imgs, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)))
            d = self.rng.integers(0, 2 * PAD + 1, size=(n, 2))
            flip = self.rng.random(n) < 0.5
            out = np.empty_like(imgs)
            for i in range(n):
                crop = padded[i, :, d[i, 1]:d[i, 1] + h, d[i, 0]:d[i, 0] + w]
                out[i] = crop[:, :, ::-1] if flip[i] else crop
            imgs = out
        x = (torch.from_numpy(imgs).float().div_(255.0) - self.mean) / self.std
        return x, torch.from_numpy(self.labels[idx])


def synthetic(shape, per_class, seed=0):
    rng = np.random.default_rng(seed)
    protos = rng.integers(0, 256, size=(CLASSES,) + shape)
    labels = np.arange(per_class * CLASSES) % CLASSES
    noise = rng.normal(0, 32, size=(len(labels),) + shape)
    pixels = np.clip(protos[labels] + noise, 0, 255).astype(np.uint8)
    return pixels, labels.astype(np.int64)


def optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)


def interleaved(name, rounds, bare):
    """The loop for rounds + 1 epochs on a fresh model, one bare block after every epoch.
    Returns images/s of the epochs after the first, of the bare blocks, and per-epoch paired
    ratios loop / bare (bare averaged over the blocks just before and after that epoch)."""
    shape, crop_flip, batches, _, _ = CASES[name]
    pixels, labels = synthetic(shape, batches * BATCH // CLASSES)
    data = BatchSet(pixels, labels, crop_flip, seed=0)
    sampler = torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(data), BATCH, drop_last=False)
    loader = torch.utils.data.DataLoader(data, sampler=sampler, batch_size=None, num_workers=0)
    torch.manual_seed(0)
    model = build(name, shape)
    opt = optimizer(model)
    epochs, bare_ips = [], []
    for _ in range(rounds + 1):
        model.train()
        started = time.perf_counter()
        seen, loss_sum = 0, torch.zeros(())
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach()
            seen += len(y)
        loss_sum.item()
        epochs.append(seen / (time.perf_counter() - started))
        bare_ips.append(bare.block())
    paired = [epochs[i] / ((bare_ips[i - 1] + bare_ips[i]) / 2) for i in range(1, len(epochs))]
    return epochs[1:], bare_ips, paired


class Bare:
    """The step alone on one pre-built batch, timed in blocks ended by loss.item()."""

    def __init__(self, name):
        shape, _, self.batches, warmup, _ = CASES[name]
        torch.manual_seed(0)
        self.model = build(name, shape)
        self.model.train()
        self.opt = optimizer(self.model)
        self.x = torch.rand((BATCH,) + shape) * 2 - 1
        self.y = torch.arange(BATCH) % CLASSES
        self.block(warmup)

    def block(self, steps=None):
        steps = steps or self.batches
        started = time.perf_counter()
        for _ in range(steps):
            loss = F.cross_entropy(self.model(self.x), self.y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        loss.item()
        return steps * BATCH / (time.perf_counter() - started)


def emit(model, what, samples):
    med = float(np.median(samples))
    print(json.dumps({"side": "torch", "model": model, "what": what, "images_per_sec": med, "samples": samples}))
    print(f"torch {model:9} {what:12} {med:9.1f} images/s  (samples {[round(s, 1) for s in samples]})", file=sys.stderr)
    return med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies the number of rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("cases", nargs="*", default=list(CASES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads", file=sys.stderr)
    for name in args.cases:
        rounds = max(1, round(CASES[name][4] * args.scale))
        looped, bare, paired = interleaved(name, rounds, Bare(name))
        b = emit(name, "bare", bare)
        l = emit(name, "loop", looped)
        ratio = float(np.median(paired))
        print(json.dumps({"side": "torch", "model": name, "what": "paired", "loop_over_bare": ratio, "samples": paired}))
        print(f"torch {name:9} loop/bare {l / b:.3f} (paired {ratio:.3f}, overhead {(1 / ratio - 1) * 100:+.1f}%)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
