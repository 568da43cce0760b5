#!/usr/bin/env python3
"""Replays a whole cauda run in PyTorch from its lockstep record and scores both final models.

Usage: replay_full.py RUN_DIR [--float64]

RUN_DIR is what `caudad train SPEC --out RUN_DIR --lockstep RUN_DIR/lockstep --lockstep-steps 0`
wrote (every step of a one-stage run; ~1 MB per LeNet step). From cauda's initial weights,
PyTorch (bench/reference.py's model, loss and optimizer) takes every recorded step on cauda's
batch (pixels after sampling, crop/flip and normalization; mixing targets) at cauda's learning
rate, then evaluates its final model and cauda's final weights on the run's test set. When the
two accuracies agree while PyTorch's own run (reference.py, its own init and batches) does not,
the difference is in what cauda draws, not in how it trains (docs/RESULTS.md, "The lockstep
issue's own case").
"""
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import lockstep as L  # noqa: E402
import reference as ref  # noqa: E402


def main():
    run = pathlib.Path(sys.argv[1])
    dt = torch.float64 if "--float64" in sys.argv[2:] else torch.float32
    torch.set_num_threads(1)
    ls = run / "lockstep"
    cfg = json.loads((run / "config.json").read_text())
    split = json.loads((run / "split.json").read_text())
    index = json.loads((ls / "lockstep.json").read_text())
    if len(index["stages"]) != 1:
        sys.exit("replay_full.py: one-stage runs only")
    counts = index["class_counts"]
    d = ref.load_run_data(cfg, split)
    shape = tuple(d["train"][0].shape[1:])
    init = load_file(str(ls / "stage1_init.safetensors"))
    model = L.replica(cfg, shape, len(counts), None, 1, init, dt)
    plan = ref.stage1_plan(cfg, counts)
    optim = ref.make_optimizer(plan["opt"], list(model.parameters()), plan["weight_decay"])
    model.train()
    last = None
    for k, s in enumerate(index["steps"]):
        t = load_file(str(ls / f"stage1_step{k}.safetensors"))
        for g in optim.param_groups:
            g["lr"] = s["lr"]
        mixed = (t["labels_b"], t["lam"].to(dt)) if "labels_b" in t else None
        ref.train_step(model, optim, plan, t["x"].to(dt), t["labels"], mixed, s["epoch"])
        last = t
    model = model.float()
    shift = ref.posthoc_shift(cfg, counts)
    theirs = ref.evaluate(model, model.head, d, cfg, shift)["test_top1"]
    cauda = ref.Classifier(cfg["model"], shape, len(counts))
    L.load_state(cauda, {n[len("after."):]: v for n, v in last.items() if n.startswith("after.")})
    ours = ref.evaluate(cauda, cauda.head, d, cfg, shift)["test_top1"]
    print(json.dumps({"run": str(run), "steps": len(index["steps"]), "torch_replay_top1": theirs,
                      "cauda_top1": ours}))


if __name__ == "__main__":
    main()
