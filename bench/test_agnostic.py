"""SADE's test-agnostic table (forward/backward long-tailed test sets at imbalance 50 to 2, and
the uniform one) for the runs `bench/compare.sh` left in WORK_DIR, cauda's (summary.json) and
PyTorch's (reference.json) side by side, mean over seeds, in %.

Usage: python bench/test_agnostic.py WORK_DIR [DATA]     (DATA default: fmnist)

Each value is the per-class test accuracies weighted by rho^(-i/(C-1)) for the i-th most frequent
training class (reversed backward): what `cauda report --table test-agnostic` shows for a daemon's
runs (cauda-plugins `metrics::test_agnostic`, checked against SADE's own test-set construction
by `bench/fixtures/metrics.py`). Re-typed here so both implementations' runs are read the same way.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import sys

DISTS = [("fwd", r) for r in (50, 25, 10, 5, 2)] + [("uni", 1)] + [("bwd", r) for r in (2, 5, 10, 25, 50)]


def shifted(per_class: list[float | None], counts: list[int], kind: str, ratio: float) -> float:
    classes = len(counts)
    order = sorted(range(classes), key=lambda c: (-counts[c], c))
    weights = [1.0] * classes
    if kind != "uni" and classes > 1:
        for rank, c in enumerate(order):
            position = rank if kind == "fwd" else classes - 1 - rank
            weights[c] = ratio ** (-position / (classes - 1))
    pairs = [(a, w) for a, w in zip(per_class, weights) if a is not None]
    return sum(a * w for a, w in pairs) / sum(w for _, w in pairs)


def row(files: list[pathlib.Path]) -> list[float]:
    cols = [[] for _ in DISTS]
    for f in files:
        doc = json.loads(f.read_text())
        per_class, counts = doc["last"]["per_class"], doc["class_counts"]
        for i, (kind, ratio) in enumerate(DISTS):
            cols[i].append(shifted(per_class, counts, kind, ratio))
    return [statistics.mean(c) * 100 for c in cols]


def main() -> None:
    work = pathlib.Path(sys.argv[1])
    data = sys.argv[2] if len(sys.argv) > 2 else "fmnist"
    heads = [f"{k}-{r}" if k != "uni" else "uniform" for k, r in DISTS]
    print("| method | impl | seeds | " + " | ".join(heads) + " |")
    print("|---|---|---|" + "---|" * len(heads))
    for method in sorted(p for p in (work / data).iterdir() if p.is_dir()):
        seeds = sorted(method.glob("seed*"))
        for impl, name in (("cauda", "summary.json"), ("PyTorch", "reference.json")):
            files = [s / name for s in seeds if (s / name).is_file()]
            if files:
                cells = " | ".join(f"{v:.1f}" for v in row(files))
                print(f"| {method.name} | {impl} | {len(files)} | {cells} |")


if __name__ == "__main__":
    main()
