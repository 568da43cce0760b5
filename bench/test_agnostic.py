"""SADE's test-agnostic table (forward/backward long-tailed test sets at imbalance 50 to 2, and
the uniform one) for the runs `bench/compare.sh` left in WORK_DIR, cauda's (summary.json) and
PyTorch's (reference.json) side by side, mean over seeds, in %.

Usage: python bench/test_agnostic.py WORK_DIR [DATA]     (DATA default: fmnist)

Each value is the per-class test accuracies weighted by rho^(-i/(C-1)) for the i-th most frequent
training class (reversed backward): what `cauda report --table test-agnostic` shows for a daemon's
runs (cauda-plugins `metrics::test_agnostic`, checked against SADE's own test-set construction
by `bench/fixtures/metrics.py`). Re-typed here so both implementations' runs are read the same way.

A run with SADE's test-time aggregation (`test_time_aggregation` in its summary.json /
reference.json: the preset sade) gets a second row, `aggregated`: its top-1 on each shifted set
after learning the experts' weights there (both implementations draw the same sets from the seed),
and a third, `weights`, the mean learned weights per set (expert 1/2/3).
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


def aggregated(files: list[pathlib.Path]) -> tuple[list[float], list[str]] | None:
    docs = [json.loads(f.read_text()) for f in files]
    if not docs or not all(d.get("test_time_aggregation") for d in docs):
        return None
    top1 = [[] for _ in DISTS]
    weights = [[] for _ in DISTS]
    for d in docs:
        for i, a in enumerate(d["test_time_aggregation"]):
            top1[i].append(a["top1"])
            weights[i].append(a["weights"])
    mean_w = ["/".join(f"{statistics.mean(w[e] for w in ws):.2f}" for e in range(len(ws[0])))
              for ws in weights]
    return [statistics.mean(c) * 100 for c in top1], mean_w


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
                agg = aggregated(files)
                if agg:
                    cells = " | ".join(f"{v:.1f}" for v in agg[0])
                    print(f"| {method.name}, aggregated | {impl} | {len(files)} | {cells} |")
                    print(f"| {method.name}, weights | {impl} | {len(files)} | {' | '.join(agg[1])} |")


if __name__ == "__main__":
    main()
