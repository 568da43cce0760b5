#!/usr/bin/env python3
"""Loads a cauda safetensors export into bench/reference.py's model and compares its logits with
the ones cauda computed for the same inputs.

Usage: export_check.py MODEL.safetensors CASE.json [--tol 1e-4]

MODEL.safetensors is what `cauda export RUN --format safetensors` wrote; its metadata names the
recipe (`cauda.backbone`, `cauda.head`, `cauda.head_scale`). CASE.json holds `shape` [N, C, H, W],
`inputs` (normalized, row-major), `classes` and cauda's `logits` [N, classes] (the engine's
`export::CheckCase`). The state dict is loaded with `strict=True`, so a missing, extra or
misshaped tensor fails the check. Prints one JSON line with `max_abs_diff` and exits 1 when it
is not below --tol.
"""
import argparse
import json
import pathlib
import sys

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import reference  # noqa: E402


def model_for(path, shape):
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    state = load_file(str(path))
    cfg = {
        "backbone": meta["cauda.backbone"],
        "head": meta["cauda.head"],
        "head_scale": float(meta.get("cauda.head_scale", "0")),
    }
    classes = state["head.weight"].shape[0]
    model = reference.Classifier(cfg, tuple(shape[1:]), classes)
    # The head's optional parts follow the stage the weights come from, as reference.py does:
    # LWS adds learnable per-class scales; tau-normalization drops the bias.
    if "head.scales" in state:
        model.head.scales = nn.Parameter(torch.ones(classes))
    if "head.bias" not in state:
        model.head.bias = None
    model.load_state_dict(state, strict=True)
    return model.eval(), meta


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", type=pathlib.Path)
    ap.add_argument("case", type=pathlib.Path)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    case = json.loads(args.case.read_text())
    shape = case["shape"]
    model, meta = model_for(args.model, shape)
    x = torch.tensor(case["inputs"], dtype=torch.float32).view(*shape)
    want = torch.tensor(case["logits"], dtype=torch.float32).view(shape[0], case["classes"])
    with torch.no_grad():
        got = model(x)
    diff = float((got - want).abs().max())
    agree = float((got.argmax(1) == want.argmax(1)).float().mean())
    print(json.dumps({"backbone": meta.get("cauda.backbone"), "head": meta.get("cauda.head"),
                      "n": shape[0], "max_abs_diff": diff, "argmax_agreement": agree,
                      "max_abs_logit": float(want.abs().max())}))
    sys.exit(0 if diff < args.tol else 1)


if __name__ == "__main__":
    main()
