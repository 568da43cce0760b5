"""Reports and metrics as pandas DataFrames, in the layouts the ``cauda`` CLI's CSV uses.

``cauda report E --format csv`` is the survey's layout (Zhang et al.): one row per method and
imbalance ratio with the seeds folded in (top-1 mean and sample std), many/medium/few-shot
top-1, relative accuracy A_r = A_t / max(A_v, A_b) with its parts, throughput and hours. Its
columns are the fields of the proto's ``ReportRow`` in ``.proto`` order; :data:`REPORT_COLUMNS`
is that list, in that order, so a notebook and a script over the CLI's CSV read the same table with
the same numbers: accuracies are fractions, a value the daemon leaves out is NaN, ``engines`` is
the distinct engine fingerprints joined by ``"; "`` as in the CSV, and ``coordinates`` the row's
grid coordinates as ``key=value`` joined the same way. The frame's ``attrs`` hold
the experiment's id, name and the daemon's engine. :data:`METRICS_COLUMNS` likewise follows
``cauda metrics R --format csv``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from ._pb import cauda_pb2
from .models import Epoch

# ReportRow's fields in .proto order, as `cauda report --format csv` writes them (its columns
# come from the same descriptor), so a field added to the proto is a column in both.
REPORT_COLUMNS: tuple[str, ...] = tuple(f.name for f in cauda_pb2.ReportRow.DESCRIPTOR.fields)

_INTS = ("runs", "succeeded", "failed", "seeds")
_FLOATS = ("hours", "gpu_hours")
_TEXTS = ("label", "method", "engines", "coordinates")
_BOOLS = ("older_engine", "test_agnostic_aggregated")
# The ReportRow fields that are `optional double` (NaN when absent): every other column.
_OPTIONAL_FLOATS = tuple(
    c for c in REPORT_COLUMNS if c not in (*_INTS, *_FLOATS, *_TEXTS, *_BOOLS)
)

METRICS_COLUMNS: tuple[str, ...] = (
    "stage",
    "epoch",
    "train_loss",
    "lr",
    "images_per_sec",
    "test_top1",
    "many",
    "medium",
    "few",
    "val_top1",
)


def report_row(row: cauda_pb2.ReportRow) -> dict[str, Any]:
    """One row of the report as a dict of :data:`REPORT_COLUMNS`."""
    out: dict[str, Any] = {}
    for name in REPORT_COLUMNS:
        if name in _OPTIONAL_FLOATS:
            out[name] = getattr(row, name) if row.HasField(name) else math.nan
        elif name == "engines":
            out[name] = "; ".join(row.engines)
        elif name == "coordinates":
            out[name] = "; ".join(f"{c.key}={c.value}" for c in row.coordinates)
        else:
            out[name] = getattr(row, name)
    return out


def report_frame(report: cauda_pb2.GetReportResponse, current_engine_only: bool = False) -> pd.DataFrame:
    """The report's rows in grid order; with ``current_engine_only`` without the rows an older
    engine trained (``cauda report --engine current``)."""
    rows = [report_row(r) for r in report.rows if not (current_engine_only and r.older_engine)]
    frame = pd.DataFrame.from_records(rows, columns=list(REPORT_COLUMNS))
    for name in _OPTIONAL_FLOATS + _FLOATS:
        frame[name] = frame[name].astype("float64")
    for name in _INTS:
        frame[name] = frame[name].astype("int64")
    for name in _TEXTS:
        frame[name] = frame[name].astype(object)
    for name in _BOOLS:
        frame[name] = frame[name].astype(bool)
    frame.attrs.update(
        experiment_id=report.experiment_id, name=report.name, engine=report.engine
    )
    return frame


def metrics_frame(epochs: Iterable[Epoch]) -> pd.DataFrame:
    """One row per epoch with :data:`METRICS_COLUMNS`; NaN where an epoch did not evaluate."""
    nan = math.nan
    rows = [
        {
            "stage": e.stage,
            "epoch": e.epoch,
            "train_loss": e.train_loss,
            "lr": e.lr,
            "images_per_sec": e.images_per_sec,
            "test_top1": nan if e.test_top1 is None else e.test_top1,
            "many": nan if e.many is None else e.many,
            "medium": nan if e.medium is None else e.medium,
            "few": nan if e.few is None else e.few,
            "val_top1": nan if e.val_top1 is None else e.val_top1,
        }
        for e in epochs
    ]
    frame = pd.DataFrame.from_records(rows, columns=list(METRICS_COLUMNS))
    for name in METRICS_COLUMNS:
        frame[name] = frame[name].astype("int64" if name in ("stage", "epoch") else "float64")
    return frame
