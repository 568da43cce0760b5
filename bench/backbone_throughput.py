"""Training-step throughput of the ImageNet backbones, cauda (flex, CPU) against PyTorch on this
machine's CPU, side by side: forward + cross-entropy + backward on one random batch of
BATCHx3xSIZExSIZE, 1000 classes, one untimed warm-up step, then STEPS timed ones (no optimizer
step on either side). cauda's side is plugins/examples/backbone_throughput.rs, built and run
here with cargo; PyTorch's uses bench/fixtures/imagenet_backbones.py's torchvision definitions.
Both sides get the same number of threads (rayon's pool, torch.set_num_threads).

Usage: backbone_throughput.py [--size 112] [--batch 8] [--steps 3] [--threads N] [names...]
Prints the machine's load first (a concurrent build makes every figure meaningless), then one
row per backbone: ms per step and images/s for each side, and cauda / PyTorch in images/s.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fixtures"))
from imagenet_backbones import NETWORKS  # noqa: E402  (one definition of the networks)

CLASSES = 1000


def torch_side(name, size, batch, steps):
    torch.manual_seed(0)
    model = NETWORKS[name](CLASSES).train()
    x = torch.randn(batch, 3, size, size)
    y = torch.tensor([i * 37 % CLASSES for i in range(batch)])

    def step():
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.item()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    secs = (time.perf_counter() - start) / steps
    return {"ms_per_step": secs * 1e3, "images_per_sec": batch / secs}


def cauda_side(names, size, batch, steps, threads):
    root = os.path.dirname(HERE)
    example = ["--example", "backbone_throughput", "-p", "cauda-plugins", "--release"]
    subprocess.run(["cargo", "build", "-q", *example], cwd=root, check=True)
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    args = ["--size", str(size), "--batch", str(batch), "--steps", str(steps), *names]
    out = subprocess.run(
        ["cargo", "run", "-q", *example, "--", *args],
        cwd=root, env=env, check=True, capture_output=True, text=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {r["model"]: r for r in rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("names", nargs="*", default=list(NETWORKS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}  {os.cpu_count()} cores  "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}  threads={args.threads}  "
        f"batch {args.batch} x 3x{args.size}x{args.size}, {args.steps} timed steps, torch {torch.__version__}"
    )
    cauda = cauda_side(args.names, args.size, args.batch, args.steps, args.threads)
    header = f"{'backbone':<17} {'cauda ms/step':>13} {'img/s':>7} {'PyTorch ms/step':>15} {'img/s':>7} {'cauda/PyTorch':>13}"
    print(header)
    for name in args.names:
        t = torch_side(name, args.size, args.batch, args.steps)
        c = cauda[name]
        ratio = c["images_per_sec"] / t["images_per_sec"]
        print(
            f"{name:<17} {c['ms_per_step']:>13.0f} {c['images_per_sec']:>7.2f} "
            f"{t['ms_per_step']:>15.0f} {t['images_per_sec']:>7.2f} {ratio:>12.2f}x"
        )
        print(json.dumps({"model": name, "cauda": c, "torch": t, "ratio": ratio}), file=sys.stderr)


if __name__ == "__main__":
    main()
