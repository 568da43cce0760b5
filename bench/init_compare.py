#!/usr/bin/env python3
"""Compare two sets of initial models of the same network, e.g. cauda's against PyTorch's
(docs/RESULTS.md, BBN): each set a folder of `seed<k>.safetensors` state dicts under
bench/reference.py's names (cauda's `stage1_init.safetensors` of a lockstep record, or
`--torch-inits N` here, which writes reference.py's own initial models of seeds 0..N-1 as
reference.py's `main` draws them: `torch.manual_seed(seed)`, then the model).

What it prints, each as mean ± standard error over the models of a set:
- per random tensor: mean, standard deviation, min, max, excess kurtosis of its values;
- branch to branch (a bilateral model): the correlation of each `branches.0` tensor with its
  `branches.1` twin;
- any two random tensors of a model: the largest |z| (z = r sqrt(n)) of the correlation of
  their first n values (one RNG stream read twice would show here);
- within a tensor: |z| of the lag-k autocorrelation of its flattened values, k in 1, 2, 3, 9,
  64, 128, 144, 288; the head's two halves (the f_c and f_r columns) against each other;
- functional, with `--run RUN_DIR` (a run folder with config.json and split.json): on eight
  fixed batches of 64 training images in train mode, the initial loss of the conventional
  branch's logits, both branches' feature norms and dead (zero) fraction, the logits' spread,
  the softmax's top probability, and the gradient norms of backbone and head.

Usage: init_compare.py A_DIR B_DIR [--run RUN_DIR]
       init_compare.py --torch-inits N OUT_DIR --run RUN_DIR [--first K]
"""
import argparse
import glob
import importlib.util
import itertools
import json
import math
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("reference", HERE / "reference.py")
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)
LAGS = (1, 2, 3, 9, 64, 128, 144, 288)


def load_dir(d):
    files = glob.glob(f"{d}/seed*.safetensors")
    files.sort(key=lambda f: int(pathlib.Path(f).stem[4:]))
    return [load_file(f) for f in files]


def ms(xs):
    xs = np.asarray(xs, dtype=np.float64)
    return f"{xs.mean():+.4f}±{xs.std() / math.sqrt(len(xs)):.4f}"


def corr(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    den = float(a.norm() * b.norm())
    return float(a @ b) / den if den > 0 else 0.0


def kurtosis(v):
    v = v - v.mean()
    m2 = float((v * v).mean())
    return float((v ** 4).mean()) / (m2 * m2) - 3 if m2 > 0 else 0.0


def random_tensors(state):
    """The tensors drawn at random (not BatchNorm's constants, not buffers)."""
    return [n for n, v in state.items() if v.dtype == torch.float32 and v.numel() > 1
            and len(v.unique()) > 1]


def static(sets):
    names = sorted(random_tensors(sets[0][1][0]))
    print("per tensor: mean, std, min, max, excess kurtosis")
    for n in names:
        for tag, s in sets:
            vs = [m[n].double().flatten() for m in s]
            cols = [ms([float(v.mean()) for v in vs]), ms([float(v.std()) for v in vs]),
                    ms([float(v.min()) for v in vs]), ms([float(v.max()) for v in vs]),
                    ms([kurtosis(v) for v in vs])]
            print(f"  {n:36s} {tag:6s} " + " ".join(cols))
    print("branch to branch: correlation of each branches.0 tensor with its branches.1 twin")
    for n in names:
        if ".branches.0." in n:
            twin = n.replace(".branches.0.", ".branches.1.")
            for tag, s in sets:
                print(f"  {n:36s} {tag:6s} r {ms([corr(m[n], m[twin]) for m in s])}")
    print("any two random tensors: largest |z| of the correlation of their first values")
    for tag, s in sets:
        worst = []
        for m in s:
            zs = [0.0]
            for x, y in itertools.combinations(names, 2):
                k = min(m[x].numel(), m[y].numel())
                if k >= 8:
                    zs.append(abs(corr(m[x].flatten()[:k], m[y].flatten()[:k])) * math.sqrt(k))
            worst.append(max(zs))
        print(f"  {tag:6s} mean {np.mean(worst):.2f}, largest {max(worst):.2f}")
    print("within a tensor: mean |z| of lag autocorrelations (about 0.80 for independent values)")
    for n in names:
        for tag, s in sets:
            zs = []
            for m in s:
                v = m[n].double().flatten()
                v = v - v.mean()
                zs += [abs(float(v[:-k] @ v[k:] / (v @ v))) * math.sqrt(len(v) - k)
                       for k in LAGS if k < len(v) - 8]
            print(f"  {n:36s} {tag:6s} {np.mean(zs):.3f} (largest {max(zs):.2f})")
    if "head.weight" in names:
        for tag, s in sets:
            w = [m["head.weight"] for m in s]
            half = w[0].shape[1] // 2
            zs = [corr(x[:, :half], x[:, half:]) * math.sqrt(x.numel() // 2) for x in w]
            print(f"  head halves {tag:6s} z {ms(zs)}")


def functional(sets, run):
    cfg = json.loads((run / "config.json").read_text())
    split = json.loads((run / "split.json").read_text())
    d = ref.load_run_data(cfg, split)
    x_all, y_all = d["train"]
    g = torch.Generator().manual_seed(123)
    batches = [torch.randperm(len(y_all), generator=g)[:64] for _ in range(8)]
    print(f"functional, on 8 batches of 64 of the {len(y_all)} training images (train mode)")
    rows = {}
    for tag, s in sets:
        per = []
        for state in s:
            m = ref.Classifier(cfg["model"], tuple(x_all.shape[1:]), d["classes"])
            m.load_state_dict(state)
            m.train()
            acc = {k: [] for k in ("loss", "|f_c|", "|f_r|", "dead_c", "dead_r", "std z",
                                   "max p", "|g| backbone", "|g| head")}
            for idx in batches:
                xb, yb = ref.normalize(x_all[idx], d), y_all[idx]
                fc, fr = m.backbone.branch(xb, 0), m.backbone.branch(xb, 1)
                z = m.head(2 * torch.cat([fc, torch.zeros_like(fr)], 1))
                loss = F.cross_entropy(z, yb)
                m.zero_grad()
                loss.backward()
                with torch.no_grad():
                    gb = sum(float(p.grad.norm()) ** 2 for n, p in m.named_parameters()
                             if n.startswith("backbone") and p.grad is not None) ** 0.5
                    for k, v in (("loss", loss), ("|f_c|", fc.norm(dim=1).mean()),
                                 ("|f_r|", fr.norm(dim=1).mean()),
                                 ("dead_c", (fc == 0).float().mean()),
                                 ("dead_r", (fr == 0).float().mean()), ("std z", z.std()),
                                 ("max p", F.softmax(z, 1).max(1).values.mean()),
                                 ("|g| backbone", gb), ("|g| head", m.head.weight.grad.norm())):
                        acc[k].append(float(v))
            per.append({k: np.mean(v) for k, v in acc.items()})
        rows[tag] = per
    for k in rows[sets[0][0]][0]:
        print(f"  {k:14s} " + "  ".join(f"{tag} {ms([r[k] for r in rows[tag]])}"
                                          for tag, _ in sets))


def torch_inits(n, out, run, first):
    cfg = json.loads((run / "config.json").read_text())
    split = json.loads((run / "split.json").read_text())
    d = ref.load_run_data(cfg, split)
    out.mkdir(parents=True, exist_ok=True)
    for seed in range(first, first + n):
        torch.manual_seed(seed)
        m = ref.Classifier(cfg["model"], tuple(d["train"][0].shape[1:]), d["classes"])
        save_file({k: v.contiguous() for k, v in m.state_dict().items()},
                  str(out / f"seed{seed}.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", type=pathlib.Path)
    ap.add_argument("--run", type=pathlib.Path)
    ap.add_argument("--torch-inits", type=int, metavar="N")
    ap.add_argument("--first", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.torch_inits:
        torch_inits(args.torch_inits, args.dirs[0], args.run, args.first)
        return
    sets = [(p.name, load_dir(p)) for p in args.dirs]
    print(", ".join(f"{tag}: {len(s)} models" for tag, s in sets))
    static(sets)
    if args.run:
        functional(sets, args.run)


if __name__ == "__main__":
    main()
