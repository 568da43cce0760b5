"""The client's own types for what the daemon returns: frozen dataclasses and enums, not protobuf
messages, so that code using the client is typed, prints readably, compares by value and does
not depend on the generated modules (whose ``optional`` fields need ``HasField`` calls and whose
times are raw milliseconds). Each ``*_from_proto`` function is the one place a message becomes
its dataclass; the JSON fields of the API (``config_json``, ``summary_json``, ``raw_json``) are
decoded into dicts.
"""

from __future__ import annotations

import datetime
import enum
import json
from decimal import ROUND_HALF_UP, Decimal
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._pb import cauda_pb2, common_pb2


class RunState(enum.Enum):
    """Where a run is in its life (common.proto's ``RunState``)."""

    QUEUED = common_pb2.RUN_STATE_QUEUED
    RUNNING = common_pb2.RUN_STATE_RUNNING
    SUCCEEDED = common_pb2.RUN_STATE_SUCCEEDED
    FAILED = common_pb2.RUN_STATE_FAILED
    CANCELLED = common_pb2.RUN_STATE_CANCELLED

    @property
    def terminal(self) -> bool:
        """True for SUCCEEDED, FAILED and CANCELLED, which a run never leaves."""
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)

    @classmethod
    def parse(cls, value: RunState | str) -> RunState:
        """A state from itself or its name in any case (``"succeeded"``, as the CLI prints)."""
        if isinstance(value, RunState):
            return value
        try:
            return cls[value.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"`{value}` is not a run state (one of {names})") from None

    def __str__(self) -> str:
        return self.name.lower()


def _state(number: int) -> RunState | None:
    """The state of a proto enum number; ``None`` for UNSPECIFIED (never sent) or a newer one."""
    try:
        return RunState(number)
    except ValueError:
        return None


def _time(ms: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)


def _f32(value: float) -> float:
    """A proto ``float`` as the shortest decimal that reads back as the same float32 (what the
    CLI and the engine's JSON print: ``0.9583333``, not ``0.9583333134651184``).

    Where two decimals of that length are equally near the float32 (41944.5625 lies halfway
    between 41944.562 and 41944.563), Rust prints the upper one and NumPy the even one; this
    takes Rust's, so a number here is the CLI's number digit for digit."""
    x = np.float32(value)
    shortest = str(x)
    if not np.isfinite(x):
        return float(shortest)
    digits = Decimal(shortest)
    exponent = digits.as_tuple().exponent
    assert isinstance(exponent, int), "a finite decimal has an integer exponent"
    upper = Decimal(float(x)).quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_UP)
    if upper != digits and np.float32(float(upper)) == x:
        return float(upper)
    return float(shortest)


def _json(text: str) -> dict[str, Any] | None:
    value = json.loads(text) if text else None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class SubmittedRun:
    """One run a submission created or reuses."""

    run_id: int
    name: str
    reused: bool


@dataclass(frozen=True)
class Submitted:
    """What a submission created: the experiment (0 when only validated) and its runs."""

    experiment_id: int
    runs: tuple[SubmittedRun, ...]

    @property
    def run_ids(self) -> list[int]:
        return [r.run_id for r in self.runs]


@dataclass(frozen=True)
class Grant:
    """A device, or a share of one, held by a run."""

    device_id: str
    share: float
    mem_mb: int | None


@dataclass(frozen=True)
class Run:
    """One run; ``config`` and ``summary`` are None unless fetched in full (``Client.run``)."""

    run_id: int
    experiment_id: int
    name: str
    user: str
    state: RunState | None
    priority: int
    attempt: int
    max_retries: int
    grants: tuple[Grant, ...]
    pending_reason: str | None
    error: str | None
    depends_on: int | None
    config_hash: str
    config: dict[str, Any] | None
    summary: dict[str, Any] | None
    submitted_at: datetime.datetime
    started_at: datetime.datetime | None
    finished_at: datetime.datetime | None
    epochs_done: int
    epochs_total: int
    engine: str
    older_engine: bool


def _opt(msg: Any, field: str) -> Any:
    return getattr(msg, field) if msg.HasField(field) else None


def grant_from_proto(g: common_pb2.Grant) -> Grant:
    return Grant(g.device_id, g.share, _opt(g, "mem_mb"))


def run_from_proto(r: cauda_pb2.Run) -> Run:
    started, finished = _opt(r, "started_at_ms"), _opt(r, "finished_at_ms")
    return Run(
        run_id=r.run_id,
        experiment_id=r.experiment_id,
        name=r.name,
        user=r.user,
        state=_state(r.state),
        priority=r.priority,
        attempt=r.attempt,
        max_retries=r.max_retries,
        grants=tuple(grant_from_proto(g) for g in r.grants),
        pending_reason=_opt(r, "pending_reason"),
        error=_opt(r, "error"),
        depends_on=_opt(r, "depends_on"),
        config_hash=r.config_hash,
        config=_json(r.config_json),
        summary=_json(r.summary_json),
        submitted_at=_time(r.submitted_at_ms),
        started_at=None if started is None else _time(started),
        finished_at=None if finished is None else _time(finished),
        epochs_done=r.epochs_done,
        epochs_total=r.epochs_total,
        engine=r.engine,
        older_engine=r.older_engine,
    )


@dataclass(frozen=True)
class RunBrief:
    """A run of an experiment, in brief."""

    run_id: int
    name: str
    state: RunState | None


@dataclass(frozen=True)
class Experiment:
    """One submitted spec and the states of its runs."""

    experiment_id: int
    name: str
    user: str
    spec_toml: str
    submitted_at: datetime.datetime
    runs: tuple[RunBrief, ...]
    point_run_ids: tuple[int, ...]

    @property
    def done(self) -> bool:
        """Every run is in a terminal state."""
        return bool(self.runs) and all(r.state is not None and r.state.terminal for r in self.runs)

    def counts(self) -> dict[RunState, int]:
        """How many runs are in each state."""
        out = {s: 0 for s in RunState}
        for r in self.runs:
            if r.state is not None:
                out[r.state] += 1
        return out


def experiment_from_proto(e: cauda_pb2.Experiment) -> Experiment:
    return Experiment(
        experiment_id=e.experiment_id,
        name=e.name,
        user=e.user,
        spec_toml=e.spec_toml,
        submitted_at=_time(e.submitted_at_ms),
        runs=tuple(RunBrief(r.run_id, r.name, _state(r.state)) for r in e.runs),
        point_run_ids=tuple(e.point_run_ids),
    )


@dataclass(frozen=True)
class Epoch:
    """What one epoch reported. The eval fields are None on epochs without an evaluation (and
    a shot group is None when no class falls in it); ``per_class`` holds NaN for a class without
    test images. ``raw`` is the engine's record, the source of truth for keys added later."""

    stage: int
    epoch: int
    attempt: int
    train_loss: float
    lr: float
    images_per_sec: float
    test_top1: float | None
    many: float | None
    medium: float | None
    few: float | None
    val_top1: float | None
    per_class: tuple[float, ...]
    raw: dict[str, Any]


def epoch_from_proto(m: common_pb2.EpochMetrics) -> Epoch:
    ev = m.eval if m.HasField("eval") else None

    def opt(field: str) -> float | None:
        return None if ev is None or not ev.HasField(field) else _f32(getattr(ev, field))

    return Epoch(
        stage=m.stage,
        epoch=m.epoch,
        attempt=m.attempt,
        train_loss=_f32(m.train_loss),
        lr=m.lr,
        images_per_sec=_f32(m.images_per_sec),
        test_top1=None if ev is None else _f32(ev.test_top1),
        many=opt("many"),
        medium=opt("medium"),
        few=opt("few"),
        val_top1=opt("val_top1"),
        per_class=() if ev is None else tuple(_f32(v) for v in ev.per_class),
        raw=_json(m.raw_json) or {},
    )


@dataclass(frozen=True)
class Metrics:
    """A run's stored epochs in order, and its summary once it succeeded."""

    epochs: tuple[Epoch, ...]
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class StateEvent:
    """The run went from ``from_state`` to ``to_state``; ``reason`` is the pending reason, the
    error or the cancel reason; ``grants`` are the devices given with RUNNING."""

    seq: int
    at: datetime.datetime
    attempt: int
    from_state: RunState | None
    to_state: RunState | None
    reason: str | None
    grants: tuple[Grant, ...]


@dataclass(frozen=True)
class EpochEvent:
    """An epoch finished and its metrics are stored."""

    seq: int
    at: datetime.datetime
    attempt: int
    metrics: Epoch


@dataclass(frozen=True)
class LogEvent:
    """The run (or the daemon about it) logged a line; ``stream`` is stdout, stderr or daemon."""

    seq: int
    at: datetime.datetime
    attempt: int
    stream: str
    line: str


Event = StateEvent | EpochEvent | LogEvent

_STREAMS = {
    common_pb2.LOG_STREAM_STDOUT: "stdout",
    common_pb2.LOG_STREAM_STDERR: "stderr",
    common_pb2.LOG_STREAM_DAEMON: "daemon",
}


def event_from_proto(e: cauda_pb2.RunEvent) -> Event | None:
    """The event, or None for a kind this client does not know (a newer daemon's)."""
    at = _time(e.at_ms)
    kind = e.WhichOneof("event")
    if kind == "state":
        s = e.state
        reason = s.reason if s.HasField("reason") else None
        grants = tuple(grant_from_proto(g) for g in s.grants)
        return StateEvent(
            e.seq, at, e.attempt, _state(getattr(s, "from")), _state(s.to), reason, grants
        )
    if kind == "epoch":
        return EpochEvent(e.seq, at, e.attempt, epoch_from_proto(e.epoch))
    if kind == "log":
        return LogEvent(e.seq, at, e.attempt, _STREAMS.get(e.log.stream, "unknown"), e.log.line)
    return None


@dataclass(frozen=True)
class Cancelled:
    """What a cancellation did."""

    cancelled: tuple[int, ...]
    already_finished: tuple[int, ...]


@dataclass(frozen=True)
class WhoAmI:
    """The caller as the daemon knows it from the token."""

    user: str
    admin: bool
    auth_enabled: bool
