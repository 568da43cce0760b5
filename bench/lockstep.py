#!/usr/bin/env python3
"""Replays cauda's lockstep record in PyTorch and compares every number, step by step.

Usage: lockstep.py RUN_DIR [RUN_DIR ...] [--rtol 1e-4] [--json]

RUN_DIR is what `caudad train SPEC --out RUN_DIR --lockstep RUN_DIR/lockstep` wrote:
`config.json` (the resolved run) and `lockstep/` (plugins/src/train/lockstep.rs documents its
files). For each recorded stage this script builds bench/reference.py's PyTorch model for the
run, loads the stage's initial weights, checks that the same parameters are trainable, and then,
for every recorded step, feeds the very batch cauda's model saw (pixels after sampling, crop/flip,
mixing and normalization; labels and mixing targets; BBN's second-stream batch, `x2`, `labels2`)
through reference.py's loss and optimizer,
and compares the learning rate, the loss and every tensor after the step (parameters and
BatchNorm running statistics) with cauda's (kd's stage 2 with the teacher's logits of each batch
recomputed from the recorded teacher, `stage2_teacher.safetensors`). Finally it evaluates cauda's final model on the
recorded test images, with reference.py's post-hoc adjustment and tau-normalization, and compares
the logits.

Two checks per step, both against PyTorch in float64 (so that float32 rounding of either side
is not mistaken for the reference):
- the one-step check: from cauda's own weights before the step (and its momentum, recovered as
  (w_{k-1} - w_k) / lr_k), one PyTorch step must land on cauda's weights after it within
  `rtol` (1e-4) relative, every tensor, or within 10x of PyTorch float32's own one step where
  that is itself off float64 by more than rtol / 10 (an ill-conditioned step); BatchNorm shifts
  (beta) within 1e-2 (see BN_SHIFT_RTOL);
- the trajectory check: PyTorch's own run from the same start over the same batches; every
  tensor and the loss within `rtol`, or within 10x float32 PyTorch's own distance from float64.
  For BatchNorm nets the trajectory amplifies rounding (see BN_TRAJECTORY_RTOL) and the
  one-step check is the exact one.
Exit status 1 when anything disagrees, naming the step and the tensor.
"""
import argparse
import importlib.util
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file

HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("reference", HERE / "reference.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)


class Mismatch(Exception):
    pass


def rel_err(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / max(float(b.norm()), 1e-12))


def close(a, b, rtol):
    a, b = a.double(), b.double()
    return float((a - b).norm()) <= rtol * float(b.norm()) + 1e-6 * max(b.numel(), 1) ** 0.5


def load_state(model, tensors, prefix=""):
    """Loads cauda's tensors (PyTorch names) into `model`; every key must match both ways."""
    state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise Mismatch(f"state names differ: missing {missing}, unexpected {unexpected}")
    for k, v in state.items():
        if tuple(own[k].shape) != tuple(v.shape):
            raise Mismatch(f"{k}: shape {tuple(v.shape)} in cauda, {tuple(own[k].shape)} in torch")
    model.load_state_dict(state)


# The post-hoc stage 2s: nothing trains; the final evaluation checks the transform.
POST_HOC = ("tau-norm", "ncm", "knn")


def replica(cfg, shape, classes, s2, n, init, dtype):
    """reference.py's model for stage `n`, loaded with the stage's initial tensors, in `dtype`."""
    model = ref.Classifier(cfg["model"], shape, classes)
    if n == 2 and s2["name"] not in POST_HOC:
        ref.stage2_model(model, s2, classes)
    load_state(model, init)
    return model.to(dtype)


# A BatchNorm shift (beta) of the layers before the first down-sampling block gets, on some
# batches, 1e-4 .. 1e-3 off float64 in cauda's step, where PyTorch float32 (with its fused or a
# composed BatchNorm) stays near 1e-7, while every other tensor of the step agrees within 2e-5.
# It happens on flex and, more rarely, on libtorch through burn-tch (PyTorch's own kernels), so
# it lives in what both share (the graph Burn differentiates), not in flex's kernels; what is
# ruled out is in docs/RESULTS.md, "Lockstep". The shifts alone get this one-step tolerance; a
# wrong formula (a missing term, a sign) is off by far more.
BN_SHIFT_RTOL = 1e-2
# Along the trajectory of a BatchNorm net any float32 rounding grows in early training (PyTorch
# float32 itself drifts from float64 by 1e-7 -> 5e-2 in eight steps on some seeds), on every
# backend, so there the one-step check is the exact one and the trajectory's tolerance is wide.
BN_TRAJECTORY_RTOL = 0.05


def bn_shifts(state):
    """The BatchNorm shifts (beta) of a state dict: the biases beside a running mean."""
    return {k[: -len("running_mean")] + "bias" for k in state if k.endswith(".running_mean")}


def judge(ours, theirs, exact, rtol, where, name, report):
    """cauda's tensor `ours` against torch float64 `exact`, given torch float32 `theirs`.

    Agreement: cauda is as close to the float64 trajectory as float32 PyTorch is (within 10x),
    or within `rtol` of it. A tensor whose value is the small difference of large terms (a
    BatchNorm bias gradient summed over thousands of pixels) has a float32 error far above
    1e-4 in both implementations; a semantic difference stays far above PyTorch's own."""
    e_c = rel_err(ours, exact)
    e_t = rel_err(theirs, exact)
    report["worst"] = max(report["worst"], e_c)
    report["worst_torch32"] = max(report.get("worst_torch32", 0.0), e_t)
    if e_c > rtol and e_c > 10 * e_t:
        raise Mismatch(f"{where}: {name} differs from float64 PyTorch by {e_c:.3g} "
                       f"(float32 PyTorch: {e_t:.3g}; tolerance {rtol:g} or 10x PyTorch's)")


def stage_plan(cfg, shape, counts, n, model, ls, dtype):
    """reference.py's recipe of stage `n` for `model`; kd's stage 2 gets its teacher from the
    record (`stage2_teacher.safetensors`), frozen, in `dtype`."""
    if n == 1:
        return ref.stage1_plan(cfg, counts)
    plan = ref.stage2_plan(cfg, counts, model)
    if "kd" in plan:
        teacher = ref.Classifier(cfg["model"], shape, len(counts))
        load_state(teacher, load_file(str(ls / "stage2_teacher.safetensors")))
        plan["teacher"] = ref.frozen_teacher(teacher.to(dtype))
    return plan


def one_step(cfg, shape, classes, s2, n, counts, state, buffers, t, lr, s, dtype, ls, key):
    """PyTorch's state after one step in `dtype` from `state` (and momentum `buffers`)."""
    model = replica(cfg, shape, classes, s2, n, state, dtype)
    plan = stage_plan(cfg, shape, counts, n, model, ls, dtype)
    named = dict(model.named_parameters())
    optim = ref.make_optimizer(plan["opt"], ref.param_groups(model, plan), plan["weight_decay"])
    if buffers is not None and plan["opt"]["momentum"] > 0:
        for name in sorted(named):
            if named[name].requires_grad:
                optim.state[named[name]]["momentum_buffer"] = buffers[name].to(dtype).clone()
    ref.set_lr(optim, lr)
    model.train()
    if plan.get("frozen_backbone"):
        model.backbone.eval()
    mixed = (t["labels_b"], t["lam"].to(dtype)) if "labels_b" in t else None
    ref.train_step(model, optim, plan, t["x"].to(dtype), t["labels"], mixed, s["epoch"], key,
                   second_stream(t, dtype))
    return model.state_dict()


def second_stream(t, dtype):
    """The second sampler stream's batch cauda drew beside the step's (BBN), if any."""
    return (t["x2"].to(dtype), t["labels2"]) if "x2" in t else None


def one_step_check(cfg, shape, classes, s2, n, counts, prev, prefix, buffers, t, lr, s, rtol,
                   where, report, ls, key):
    """One step from cauda's own weights before the step (and its momentum, recovered from its
    last two weights: w_{k-1} - w_k = lr_k buf_k for SGD), in float64 and in float32, compared
    with cauda's weights after it. Unlike the trajectory, this cannot compound rounding across
    steps: it isolates the step's math (forward, loss, backward, weight decay, momentum).

    A tensor agrees when it is within `rtol` of float64, or, where PyTorch's own float32 step
    is itself further than rtol / 10 from float64 (an ill-conditioned step: docs/RESULTS.md,
    "Lockstep"), within 10x PyTorch float32's distance. A wrong formula is off by far more.
    BatchNorm shifts get BN_SHIFT_RTOL."""
    state = {k[len(prefix):]: v for k, v in prev.items() if k.startswith(prefix)}
    exact64 = one_step(cfg, shape, classes, s2, n, counts, state, buffers, t, lr, s,
                       torch.float64, ls, key)
    torch32 = one_step(cfg, shape, classes, s2, n, counts, state, buffers, t, lr, s,
                       torch.float32, ls, key)
    shifts = bn_shifts(exact64)
    for name, exact in exact64.items():
        if name.endswith("num_batches_tracked"):
            continue
        ours = t["after." + name].double()
        base = state[name].double()
        e = rel_err(ours, exact)
        e_t = rel_err(torch32[name], exact)
        report["worst_one_step"] = max(report.get("worst_one_step", 0.0), e)
        report["worst_one_step_torch32"] = max(report.get("worst_one_step_torch32", 0.0), e_t)
        tol = BN_SHIFT_RTOL if name in shifts else rtol
        if e > tol and e > 10 * e_t:
            d_ours, d_exact = ours - base, exact - base
            raise Mismatch(f"{where}: one step from cauda's weights: {name} differs from float64 "
                           f"by {e:.3g} (its update by {rel_err(d_ours, d_exact):.3g}; float32 "
                           f"PyTorch by {e_t:.3g}; tolerance {tol:g} or 10x PyTorch's)")


def replay(run_dir, rtol, drift):
    cfg = json.loads((run_dir / "config.json").read_text())
    ls = run_dir / "lockstep"
    index = json.loads((ls / "lockstep.json").read_text())
    counts = index["class_counts"]
    classes = len(counts)
    report = {"run": str(run_dir), "method": cfg["method"], "backbone": cfg["model"]["backbone"],
              "device": index.get("device", "?"),
              "steps": 0, "stages": [], "worst": 0.0}
    ev = load_file(str(ls / "eval.safetensors"))
    shape = tuple(ev["x"].shape[1:])
    s2 = cfg.get("stage2")
    dtypes = (torch.float32, torch.float64)
    for stage in index["stages"]:
        n = stage["stage"]
        init = load_file(str(ls / f"stage{n}_init.safetensors"))
        models = [replica(cfg, shape, classes, s2, n, init, dt) for dt in dtypes]
        report["stages"].append(n)
        if n == 2 and s2["name"] in POST_HOC:
            continue  # nothing trains; the evaluation below checks the transform
        plans = [stage_plan(cfg, shape, counts, n, m, ls, dt) for m, dt in zip(models, dtypes)]
        ours = sorted(name for name, p in models[0].named_parameters() if p.requires_grad)
        if ours != sorted(stage["trainable"]):
            raise Mismatch(f"stage {n}: trainable parameters differ: cauda {stage['trainable']}, "
                           f"torch {ours}")
        optims = [ref.make_optimizer(pl["opt"], ref.param_groups(m, pl), pl["weight_decay"])
                  for m, pl in zip(models, plans)]
        for m, pl in zip(models, plans):
            m.train()
            if pl.get("frozen_backbone"):
                m.backbone.eval()
        # Steps with pixels and weights (a record made with --lockstep-draws has draws-only ones after).
        steps = [s for s in index["steps"] if s["stage"] == n and s.get("full", True)]
        # Weight balancing's MaxNorm projects weights after the step but not the momentum, so
        # its momentum cannot be recovered from consecutive weights: trajectory check only.
        one_step = plans[0]["max_norm"] is None
        # A BatchNorm net's trajectory gets the wide tolerance (see BN_TRAJECTORY_RTOL).
        traj = BN_TRAJECTORY_RTOL if bn_shifts(models[0].state_dict()) else rtol * drift
        buffers, t_prev = None, None
        for k, s in enumerate(steps):
            if s["step"] != k:
                raise Mismatch(f"stage {n}: steps are not consecutive from the start ({s['step']})")
            where = f"stage {n} step {k} (epoch {s['epoch']})"
            plan = plans[0]
            lr = ref.learning_rate(plan["opt"]["lr"], plan["schedule"], s["epoch"], plan["epochs"])
            if abs(lr - s["lr"]) > 1e-9 * max(abs(lr), 1e-12):
                raise Mismatch(f"{where}: learning rate {s['lr']} in cauda, {lr} in torch")
            t = load_file(str(ls / f"stage{n}_step{k}.safetensors"))
            # The batch's draw key (losses/draws.rs): its index within its epoch.
            in_epoch = sum(1 for p in steps[:k] if p["epoch"] == s["epoch"])
            key = ref.step_key(cfg["train"]["seed"], n, s["epoch"], in_epoch)
            losses = []
            for m, o, pl, dt in zip(models, optims, plans, dtypes):
                ref.set_lr(o, lr)
                mixed = (t["labels_b"], t["lam"].to(dt)) if "labels_b" in t else None
                losses.append(ref.train_step(m, o, pl, t["x"].to(dt), t["labels"], mixed,
                                             s["epoch"], key, second_stream(t, dt)))
            judge(t["loss"].double()[0], losses[0].double(), losses[1], traj, where, "loss",
                  report)
            sd32, sd64 = models[0].state_dict(), models[1].state_dict()
            for name, exact in sd64.items():
                if name.endswith("num_batches_tracked"):
                    continue
                judge(t["after." + name], sd32[name], exact, traj, where, name, report)
            if one_step and plan["opt"]["name"] == "sgd":
                prev = init if k == 0 else t_prev
                prev_prefix = "" if k == 0 else "after."
                one_step_check(cfg, shape, classes, s2, n, counts, prev, prev_prefix, buffers,
                               t, lr, s, rtol, where, report, ls, key)
                buffers = {name: (prev[prev_prefix + name].double()
                                  - t["after." + name].double())
                           / (lr * ref.lr_factor(plan, name))
                           for name in stage["trainable"]}
            t_prev = t
            report["steps"] += 1
    # Evaluation: cauda's final model (or, for tau-norm, stage 1's model and torch's transform).
    model = ref.Classifier(cfg["model"], shape, classes)
    head = None  # the model's own head, or kNN's vote
    if s2 and s2["name"] == "tau-norm":
        load_state(model, load_file(str(ls / "stage2_init.safetensors")))
        model.head = model.head.tau_normalized(index["tau"])
    elif s2 and s2["name"] == "ncm":
        # NCM from stage 1's model, its features of the whole training split recomputed here.
        load_state(model, load_file(str(ls / "stage2_init.safetensors")))
        split = json.loads((run_dir / "split.json").read_text())
        d = ref.load_run_data(cfg, split)
        model.head = ref.ncm_head(model, d, s2["params"]["values"]["scale"])
    elif s2 and s2["name"] == "knn":
        # kNN over stage 1's features of the whole training split, recomputed here.
        load_state(model, load_file(str(ls / "stage2_init.safetensors")))
        split = json.loads((run_dir / "split.json").read_text())
        d = ref.load_run_data(cfg, split)
        v = s2["params"]["values"]
        head = ref.knn_head(model, d, int(v["k"]), v["temperature"])
    else:
        if s2:
            ref.stage2_model(model, s2, classes)
        load_state(model, ev, "model.")
    model.eval()
    with torch.no_grad():
        z = (head or model.head)(model.backbone(ev["x"]))
        shift = ref.posthoc_shift(cfg, counts)
        if shift is not None:
            z = z - shift
    err = rel_err(z, ev["logits"])
    report["eval_logits_err"] = err
    if not close(z, ev["logits"], rtol):
        raise Mismatch(f"evaluation: logits differ (relative error {err:.3g})")
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", type=pathlib.Path, nargs="+")
    ap.add_argument("--rtol", type=float, default=1e-4)
    ap.add_argument("--drift", type=float, default=1.0,
                    help="multiplies the tolerance of the multi-step trajectory check")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    failed = 0
    for d in args.run_dirs:
        try:
            r = replay(d, args.rtol, args.drift)
            print(json.dumps({"ok": True, **r}))
        except (Mismatch, FileNotFoundError, KeyError) as e:
            failed += 1
            print(json.dumps({"ok": False, "run": str(d), "error": f"{type(e).__name__}: {e}"}))
    print(f"lockstep: {len(args.run_dirs) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
