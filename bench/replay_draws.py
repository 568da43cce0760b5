#!/usr/bin/env python3
"""Trains bench/reference.py's PyTorch model on a cauda run's split, taking each source of randomness
(initial weights, sample order, crops and flips) from cauda's record or from PyTorch's own draws.

Usage: replay_draws.py RUN_DIR [--init cauda|torch] [--order cauda|torch] [--crops cauda|torch]
                       [--threads N] [--out FILE]

RUN_DIR is what `caudad train SPEC --out RUN_DIR --lockstep RUN_DIR/lockstep --lockstep-steps 1
--lockstep-draws` wrote: cauda's initial weights, the full first step (pixels) and, for every
step, the training-set index of each image and its crop `[dx, dy, flip]` (a few MB per run).
The batches are rebuilt from the data set (u8 images, crop, normalization) and checked against
the recorded pixels of the fully recorded steps before training starts, so "cauda" below means
exactly what cauda drew.

- `--init cauda`: start from cauda's initial weights; `torch`: PyTorch's init for the run's seed.
- `--order cauda`: cauda's batches in cauda's order; `torch`: `torch.randperm` per epoch.
- `--crops cauda`: the crop cauda drew for the same position in the epoch (step, slot);
  `torch`: torch's own draws (reference.py's `crop_flip`).

With all three `torch` the run is reference.py's own run, number for number (same RNG calls in
the same order), which the script checks when RUN_DIR has reference.json. With all three
`cauda` it is `replay_full.py`'s replay. Swapping one factor at a time over many seeds says
which one carries a gap between cauda and PyTorch (docs/RESULTS.md, "The lockstep issue's own
case"). One-stage runs with the instance sampler and without batch mixing only.
"""
import argparse
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference as ref  # noqa: E402


def crop_at(x, pad, crops):
    """Zero-pad u8 images [B, C, H, W], crop at the given (dx, dy), flip where asked."""
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dx, dy, flip = crops[:, 0], crops[:, 1], crops[:, 2].bool()
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :]
    out = padded[torch.arange(b)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]
    return torch.where(flip[:, None, None, None], out.flip(-1), out)


def load_record(ls):
    index = json.loads((ls / "lockstep.json").read_text())
    if len(index["stages"]) != 1:
        sys.exit("replay_draws.py: one-stage runs only")
    steps = []
    for s in index["steps"]:
        t = load_file(str(ls / f"stage1_step{s['step']}.safetensors"))
        if "labels_b" in t:
            sys.exit("replay_draws.py: runs with batch mixing are not supported")
        if "index" not in t:
            sys.exit("replay_draws.py: the record has no draws (record with --lockstep-draws)")
        steps.append((s, t))
    return index, steps


def check_rebuild(steps, d, pad):
    """The fully recorded steps' pixels equal the batches rebuilt from their draws."""
    x_all, y_all = d["train"]
    checked = 0
    for s, t in steps:
        if "x" not in t:
            continue
        xb = x_all[t["index"]]
        if pad is not None:
            xb = crop_at(xb, pad, t["crop"])
        xb = ref.normalize(xb, d)
        err = float((xb - t["x"]).abs().max())
        if err > 1e-5 or not torch.equal(y_all[t["index"]], t["labels"]):
            sys.exit(f"replay_draws.py: step {s['step']}: the batch rebuilt from its draws differs "
                     f"from the recorded pixels (max abs {err:.3g}) or labels")
        checked += 1
    if checked == 0:
        sys.exit("replay_draws.py: no fully recorded step to check the rebuild against")
    return checked


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=pathlib.Path)
    for f in ("init", "order", "crops"):
        ap.add_argument(f"--{f}", choices=("cauda", "torch"), default="cauda")
    ap.add_argument("--record", type=pathlib.Path, help="lockstep folder (default RUN_DIR/lockstep)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=pathlib.Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    run = args.run_dir
    ls = args.record or run / "lockstep"
    cfg = json.loads((run / "config.json").read_text())
    split = json.loads((run / "split.json").read_text())
    if cfg.get("stage2") or cfg.get("mixer") or cfg["sampler"]["plugin"] != "instance":
        sys.exit("replay_draws.py: one-stage, unmixed, instance-sampled runs only")
    index, steps = load_record(ls)
    # reference.py's order of RNG use: seed, data, model init, then per epoch order and crops.
    torch.manual_seed(cfg["train"]["seed"])
    d = ref.load_run_data(cfg, split)
    pad = cfg["pad"] if cfg["crop_flip"] else None
    checked = check_rebuild(steps, d, pad)
    counts = d["counts"]
    shape = tuple(d["train"][0].shape[1:])
    model = ref.Classifier(cfg["model"], shape, d["classes"])
    if args.init == "cauda":
        model.load_state_dict(load_file(str(ls / "stage1_init.safetensors")))
    plan = ref.stage1_plan(cfg, counts)
    optim = ref.make_optimizer(plan["opt"], list(model.parameters()), plan["weight_decay"])
    x_all, y_all = d["train"]
    bs = cfg["train"]["batch_size"]
    by_epoch = {}
    for s, t in steps:
        by_epoch.setdefault(s["epoch"], []).append(t)
    if sorted(by_epoch) != list(range(plan["epochs"])):
        sys.exit("replay_draws.py: the record does not cover every epoch (record with "
                 "--lockstep-draws)")
    losses = []
    for epoch in range(plan["epochs"]):
        lr = ref.learning_rate(plan["opt"]["lr"], plan["schedule"], epoch, plan["epochs"])
        for g in optim.param_groups:
            g["lr"] = lr
        model.train()
        recorded = by_epoch[epoch]
        if args.order == "cauda":
            batches = [t["index"] for t in recorded]
        else:
            order = ref.epoch_order(plan["sampler"], y_all, d["classes"], epoch, plan["epochs"])
            batches = [order[i : i + bs] for i in range(0, len(order), bs)]
        if [len(b) for b in batches] != [len(t["index"]) for t in recorded]:
            sys.exit(f"replay_draws.py: epoch {epoch}: batch sizes differ from the record")
        total = 0.0
        for k, idx in enumerate(batches):
            xb, yb = x_all[idx], y_all[idx]
            if pad is not None:
                xb = crop_at(xb, pad, recorded[k]["crop"]) if args.crops == "cauda" \
                    else ref.crop_flip(xb, pad)
            xb = ref.normalize(xb, d)
            total += float(ref.train_step(model, optim, plan, xb, yb, None, epoch))
        losses.append(total / len(batches))
    last = ref.evaluate(model, model.head, d, cfg, ref.posthoc_shift(cfg, counts))
    out = {"run": str(run), "init": args.init, "order": args.order, "crops": args.crops,
           "seed": cfg["train"]["seed"], "checked_steps": checked, "last": last,
           "train_loss": losses}
    refj = run / "reference.json"
    if (args.init, args.order, args.crops) == ("torch",) * 3 and refj.exists():
        theirs = json.loads(refj.read_text())["last"]["test_top1"]
        out["matches_reference"] = abs(theirs - last["test_top1"]) < 1e-9
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("init", "order", "crops", "seed", "matches_reference")
                      if k in out} | {"test_top1": last["test_top1"]}))


if __name__ == "__main__":
    main()
