#!/usr/bin/env python3
"""Per-tensor gradient accuracy of a cauda lockstep record: for stage-1 step K, cauda's gradient
(recovered from its SGD update: g = (w_{k-1} - w_k) / lr - momentum * buf_{k-1} - wd * w_{k-1})
and float32 PyTorch's gradient at cauda's weights, each against float64 PyTorch's.

Usage: lockstep_grads.py RUN_DIR K [K ...]   (RUN_DIR as for bench/lockstep.py; SGD runs)

This is how docs/RESULTS.md's "Lockstep" table of flex's BatchNorm-net gradient errors was made.
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import lockstep as L  # noqa: E402


def main():
    run, ks = pathlib.Path(sys.argv[1]), [int(a) for a in sys.argv[2:]]
    ls = run / "lockstep"
    cfg = json.loads((run / "config.json").read_text())
    index = json.loads((ls / "lockstep.json").read_text())
    counts = index["class_counts"]
    shape = tuple(load_file(str(ls / "eval.safetensors"))["x"].shape[1:])
    steps = [s for s in index["steps"] if s["stage"] == 1]
    weights = [load_file(str(ls / "stage1_init.safetensors"))]
    for k in range(len(steps)):
        t = load_file(str(ls / f"stage1_step{k}.safetensors"))
        weights.append({n[6:]: v for n, v in t.items() if n.startswith("after.")})
    opt = cfg["train"]["optimizer"]
    for k in ks:
        s, t = steps[k], load_file(str(ls / f"stage1_step{k}.safetensors"))
        prev, nxt = weights[k], weights[k + 1]
        grads = {}
        for dt in (torch.float32, torch.float64):
            m = L.replica(cfg, shape, len(counts), None, 1, prev, dt)
            m.train()
            plan = L.ref.stage1_plan(cfg, counts)
            mixed = (t["labels_b"], t["lam"].to(dt)) if "labels_b" in t else None
            h = m.backbone(t["x"].to(dt))
            plan["loss"].batch(m.head(h), t["labels"], mixed, s["epoch"], h).backward()
            grads[dt] = {n: p.grad.double() for n, p in m.named_parameters()}
        print(f"step {k}: relative error against float64 PyTorch (cauda | PyTorch float32)")
        for n, g64 in grads[torch.float64].items():
            buf = (prev[n].double() - nxt[n].double()) / s["lr"]
            if k > 0:
                buf = buf - opt["momentum"] * (weights[k - 1][n].double() - prev[n].double()) \
                    / steps[k - 1]["lr"]
            g = buf - opt["weight_decay"] * prev[n].double()
            print(f"  {n:42s} {L.rel_err(g, g64):.2e} | {L.rel_err(grads[torch.float32][n], g64):.2e}")


if __name__ == "__main__":
    main()
