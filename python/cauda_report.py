"""Report to cauda from a program run as a command run (docs/COMMAND_RUNS.md), stdlib only.

cauda starts the program with ``CAUDA_REPORT_FD`` (a file descriptor, 3) and
``CAUDA_CHECKPOINT_DIR`` in its environment. Each call below writes one line of the
versioned JSON protocol to that descriptor. Outside cauda (no ``CAUDA_REPORT_FD``) the lines
go nowhere, so the same script runs by hand unchanged.

    from cauda_report import Reporter

    rep = Reporter(class_counts=train_counts)       # counts per class of the training set
    start = rep.resume_epoch()                      # 0, or the epoch the checkpoint holds
    for epoch in range(start + 1, epochs + 1):
        loss = train_one_epoch()
        rep.epoch(epoch, train_loss=loss, lr=lr, test_top1=acc, per_class=accs, ece=0.05)
        rep.save_checkpoint("model.pt", torch_bytes)  # atomic: write then rename
        rep.checkpoint(epoch)                         # cauda stores the directory now
"""

from __future__ import annotations

import json
import math
import os
from typing import IO, Optional, Sequence

PROTOCOL_VERSION = 1


class Reporter:
    """Writes report lines to cauda's descriptor; a no-op outside cauda."""

    def __init__(self, class_counts: Optional[Sequence[int]] = None) -> None:
        self.class_counts = list(class_counts) if class_counts is not None else None
        fd = os.environ.get("CAUDA_REPORT_FD")
        self._out: Optional[IO[str]] = None
        if fd is not None:
            self._out = os.fdopen(int(fd), "w", buffering=1, encoding="utf-8", closefd=False)
        self.checkpoint_dir = os.environ.get("CAUDA_CHECKPOINT_DIR") or os.path.join(
            os.getcwd(), "checkpoint"
        )

    @property
    def under_cauda(self) -> bool:
        return self._out is not None

    def resume_epoch(self) -> int:
        """The epoch of the checkpoint cauda restored into ``checkpoint_dir`` (0: none)."""
        return int(os.environ.get("CAUDA_RESUME_EPOCH", "0") or 0)

    def epoch(
        self,
        epoch: int,
        train_loss: float,
        lr: Optional[float] = None,
        test_top1: Optional[float] = None,
        per_class: Optional[Sequence[Optional[float]]] = None,
        val_top1: Optional[float] = None,
        images_per_sec: Optional[float] = None,
        stage: Optional[int] = None,
        **metrics: float,
    ) -> None:
        """One epoch; accuracies are fractions in [0, 1]; extra keyword scalars are metrics."""
        line: dict[str, object] = {
            "v": PROTOCOL_VERSION,
            "type": "epoch",
            "epoch": int(epoch),
            "train_loss": float(train_loss),
        }
        optional = {
            "lr": lr,
            "test_top1": test_top1,
            "val_top1": val_top1,
            "images_per_sec": images_per_sec,
        }
        line.update({k: float(v) for k, v in optional.items() if v is not None})
        if stage is not None:
            line["stage"] = int(stage)
        if per_class is not None:
            line["per_class"] = [None if a is None or math.isnan(a) else float(a) for a in per_class]
            if self.class_counts is not None:
                line["class_counts"] = [int(c) for c in self.class_counts]
        if metrics:
            line["metrics"] = {k: float(v) for k, v in metrics.items()}
        self._write(line)

    def save_checkpoint(self, name: str, data: bytes) -> str:
        """Writes ``data`` to ``checkpoint_dir/name`` atomically (a temporary file, then a
        rename), so that cauda never stores half a file. Returns the path."""
        path = os.path.join(self.checkpoint_dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Beside the directory, not in it: a checkpoint stored meanwhile never holds it.
        parent = os.path.dirname(os.path.abspath(self.checkpoint_dir))
        tmp = os.path.join(parent, ".cauda-tmp-" + name.replace(os.sep, "_"))
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    def checkpoint(self, epoch: int) -> None:
        """Tells cauda the checkpoint directory is complete after ``epoch``; cauda stores it
        before it reads the next line, and restores it before a retry or a resume."""
        self._write({"v": PROTOCOL_VERSION, "type": "checkpoint", "epoch": int(epoch)})

    def _write(self, line: dict[str, object]) -> None:
        if self._out is not None:
            self._out.write(json.dumps(line, allow_nan=False, separators=(",", ":")) + "\n")
