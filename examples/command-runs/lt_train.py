"""A plain PyTorch long-tailed training script, the kind a lab already has, run by cauda as a
command run (docs/COMMAND_RUNS.md; examples/command-runs/fmnist-lt.toml).

Fashion-MNIST (IDX files) cut to an exponential profile (Cao et al. 2019: class i keeps
n_max * ratio^(-i / (C - 1)) images, the first in file order), an MLP trained with SGD and
cross-entropy or Balanced Softmax (Ren et al. 2020: logits + log prior), and per-class test
accuracy every epoch. It reports through ``cauda_report`` and keeps model + optimizer in the
checkpoint directory after every epoch, so a killed run resumes where its checkpoint was.
Nothing here knows cauda beyond those calls; run by hand it trains the same way.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
from cauda_report import Reporter  # noqa: E402


def read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    dims = magic & 0xFF
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(root: str, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    def find(name: str) -> str:
        for candidate in (name, name + ".gz"):
            if os.path.exists(os.path.join(root, candidate)):
                return os.path.join(root, candidate)
        raise SystemExit(f"{root}: no {name}[.gz]")

    x = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    return x, y


def long_tailed(y: np.ndarray, n_max: int, ratio: float, classes: int) -> np.ndarray:
    """Indices of an exp-profile subset: the first n_i images of class i in file order."""
    keep = []
    for c in range(classes):
        n = int(n_max * ratio ** (-c / (classes - 1)))
        keep.extend(np.nonzero(y == c)[0][:n].tolist())
    return np.array(sorted(keep))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="folder of Fashion-MNIST's IDX files")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ratio", type=float, default=10.0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--loss", choices=["ce", "balanced-softmax"], default="ce")
    p.add_argument("--balanced", default="false", help="train on the balanced variant")
    p.add_argument("--n-max", type=int, default=6000)
    p.add_argument("--test-per-class", type=int, default=300)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--min-epoch-seconds", type=float, default=0.0, help="pace epochs (to watch a run live)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    x, y = load(args.data, "train")
    classes = int(y.max()) + 1
    idx = long_tailed(y, args.n_max, args.ratio, classes)
    counts = np.bincount(y[idx], minlength=classes)
    if args.balanced == "true":
        # The balanced variant: the same number of images, equal per class.
        per = len(idx) // classes
        idx = np.array(sorted(i for c in range(classes) for i in np.nonzero(y == c)[0][:per]))
        counts = np.bincount(y[idx], minlength=classes)
    xt, yt = load(args.data, "t10k")
    test = np.array(sorted(i for c in range(classes) for i in np.nonzero(yt == c)[0][: args.test_per_class]))

    to_tensor = lambda a: torch.tensor(a.reshape(len(a), -1), dtype=torch.float32) / 255.0  # noqa: E731
    train_x, train_y = to_tensor(x[idx]), torch.tensor(y[idx], dtype=torch.long)
    test_x, test_y = to_tensor(xt[test]), torch.tensor(yt[test], dtype=torch.long)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, classes))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
    log_prior = torch.log(torch.tensor(counts, dtype=torch.float32) / counts.sum())

    rep = Reporter(class_counts=counts.tolist())
    start = rep.resume_epoch()
    ckpt = os.path.join(rep.checkpoint_dir, "state.pt")
    if start and os.path.exists(ckpt):
        state = torch.load(ckpt)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        torch.set_rng_state(state["rng"])
        print(f"resumed from the checkpoint of epoch {state['epoch']}", flush=True)
        start = state["epoch"]
    print(f"pid {os.getpid()}: {len(idx)} training images, counts {counts.tolist()}", flush=True)

    for epoch in range(start + 1, args.epochs + 1):
        began = time.time()
        model.train()
        order = torch.randperm(len(train_y))
        total, seen = 0.0, 0
        for b in range(0, len(order), 128):
            i = order[b : b + 128]
            logits = model(train_x[i])
            if args.loss == "balanced-softmax":
                logits = logits + log_prior
            loss = F.cross_entropy(logits, train_y[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(i)
            seen += len(i)
        model.eval()
        with torch.no_grad():
            pred = model(test_x).argmax(1)
        per_class = [float((pred[test_y == c] == c).float().mean()) for c in range(classes)]
        top1 = float((pred == test_y).float().mean())
        rep.epoch(
            epoch,
            train_loss=total / seen,
            lr=args.lr,
            test_top1=top1,
            per_class=per_class,
            images_per_sec=seen / max(time.time() - began, 1e-9),
            grad_steps=float((seen + 127) // 128),
        )
        buf = io.BytesIO()
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch}, buf)
        rep.save_checkpoint("state.pt", buf.getvalue())
        rep.checkpoint(epoch)
        print(f"epoch {epoch}/{args.epochs} loss {total / seen:.4f} top1 {top1:.4f}", flush=True)
        time.sleep(max(0.0, args.min_epoch_seconds - (time.time() - began)))


if __name__ == "__main__":
    main()
