#!/usr/bin/env python3
"""Paired tables of bench/arms.sh's output: cauda minus PyTorch, the init's and the draws' shares.

Usage: arms_stats.py OUT_DIR   (every OUT_DIR/seed<k> with all three of cauda's summary,
reference.json and ref_cinit.json; the replay arms when present). Top-1 in points, mean ±
standard error over seeds.
"""
import json
import pathlib
import sys

import numpy as np


def top1(path):
    return 100 * json.loads(path.read_text())["last"]["test_top1"]


def main():
    out = pathlib.Path(sys.argv[1])
    rows, replays = [], []
    for d in sorted(out.glob("seed*"), key=lambda p: int(p.name[4:])):
        try:
            rows.append([top1(d / "summary.json"), top1(d / "reference.json"),
                         top1(d / "ref_cinit.json")])
        except (FileNotFoundError, KeyError, json.JSONDecodeError):
            continue
        arms = [d / f"replay_{a}.json" for a in ("cauda_cauda_cauda", "cauda_cauda_torch",
                                                  "cauda_torch_cauda")]
        if all(a.exists() for a in arms):
            replays.append(rows[-1] + [top1(a) for a in arms])
    if len(rows) < 2:
        sys.exit("arms_stats.py: fewer than two finished seeds")
    a = np.array(rows)

    def line(name, x):
        se = x.std(ddof=1) / np.sqrt(len(x))
        print(f"| {name} | {x.mean():+.2f} ± {se:.2f} |")

    print(f"\n| | paired over {len(a)} seeds (top-1, points) |\n|---|---|")
    line("cauda - PyTorch", a[:, 0] - a[:, 1])
    line("cauda - PyTorch from cauda's init (the draws' effect)", a[:, 0] - a[:, 2])
    line("PyTorch from cauda's init - PyTorch (the init's effect)", a[:, 2] - a[:, 1])
    print(f"\nmeans: cauda {a[:, 0].mean():.1f}, PyTorch {a[:, 1].mean():.1f}; cauda ahead on "
          f"{int((a[:, 0] > a[:, 1]).sum())}/{len(a)}; SD of a paired difference "
          f"{(a[:, 0] - a[:, 1]).std(ddof=1):.1f}")
    if len(replays) >= 2:
        r = np.array(replays)
        print(f"\n| | paired over {len(r)} seeds (top-1, points) |\n|---|---|")
        line("PyTorch on all of cauda's draws (ccc) - cauda", r[:, 3] - r[:, 0])
        line("ccc - cauda's init with torch's order and crops (ctt)", r[:, 3] - r[:, 2])
        line("ccc - torch's crops instead of cauda's (cct)", r[:, 3] - r[:, 4])
        line("ccc - torch's order instead of cauda's (ctc)", r[:, 3] - r[:, 5])


if __name__ == "__main__":
    main()
