"""The client against a real daemon training real runs: a two-seed grid submitted as a dict,
followed through its events to the end, its metrics and its report, each compared with what the
``cauda`` CLI prints for the same daemon, so the Python numbers are the CLI's numbers."""

from __future__ import annotations

import csv
import io
import math
import statistics
import subprocess
from pathlib import Path

import pytest

from cauda_client import (
    REPORT_COLUMNS,
    Client,
    EpochEvent,
    LogEvent,
    RunState,
    RunsFailed,
    StateEvent,
)
from conftest import Daemon, tiny_spec

EPOCHS = 3
LIMIT_S = 60.0


def cli_csv(cli: Path, daemon: Daemon, *args: str) -> list[dict[str, str]]:
    """The rows of a CSV the CLI prints, keyed by its header."""
    out = subprocess.run(
        [str(cli), "--addr", daemon.url, *args], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, f"cauda {args}: {out.stderr}"
    return list(csv.DictReader(io.StringIO(out.stdout)))


def same(cell: str, value: object) -> bool:
    """Whether a CLI CSV cell holds exactly ``value`` (empty for NaN)."""
    if isinstance(value, bool):
        return cell == str(value).lower()
    if isinstance(value, float):
        return (cell == "" and math.isnan(value)) or (cell != "" and float(cell) == value)
    if isinstance(value, int):
        return int(cell) == value
    return cell == value


def test_a_grid_trains_and_its_events_metrics_and_report_match_the_cli(
    daemon: Daemon, cauda_cli: Path
) -> None:
    client = Client(daemon.url)
    spec = tiny_spec(
        "py-grid",
        EPOCHS,
        report={"relative_accuracy": True},
        sweep={"train.seed": [1, 2]},
    )
    submitted = client.submit(spec)
    assert submitted.experiment_id > 0
    names = [r.name for r in submitted.runs]
    assert "py-grid/train.seed=1" in names and "py-grid/train.seed=2" in names, names
    assert len(names) == 4, f"two points and their two balanced references: {names}"

    # Follow the first point live: replayed and live events, in seq order, ending at the end.
    first = submitted.runs[0].run_id
    events = list(client.watch(first))
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)), seqs
    states = [e.to_state for e in events if isinstance(e, StateEvent)]
    assert states[0] == RunState.QUEUED and RunState.RUNNING in states, states
    assert states[-1] == RunState.SUCCEEDED and events[-1] == next(
        e for e in events if isinstance(e, StateEvent) and e.to_state == RunState.SUCCEEDED
    ), "the stream ends with the terminal state change"
    epochs = [e.metrics.epoch for e in events if isinstance(e, EpochEvent)]
    assert epochs == list(range(1, EPOCHS + 1)), epochs
    # The daemon's own lines about the launch come before the end; the worker's last stdout
    # lines may be stored just after it, so none of those is asserted here.
    assert any(isinstance(e, LogEvent) and e.stream == "daemon" for e in events), events
    only_states = list(client.watch(first, kinds=["state"], follow=False))
    assert [e.seq for e in only_states] == [e.seq for e in events if isinstance(e, StateEvent)]

    exp = client.wait(submitted.experiment_id, timeout=LIMIT_S, poll=0.2)
    assert exp.done and all(r.state == RunState.SUCCEEDED for r in exp.runs), exp
    listed = client.runs(experiment=f"e-{exp.experiment_id}", state="succeeded")
    assert sorted(r.run_id for r in listed) == sorted(submitted.run_ids)
    assert client.runs(experiment=exp.experiment_id, state=[RunState.FAILED]) == []

    # Metrics: the same epochs and numbers as `cauda metrics R --format csv`.
    frame = client.metrics_frame(f"r-{first}")
    rows = cli_csv(cauda_cli, daemon, "metrics", str(first), "--format", "csv")
    assert list(frame.columns) == list(rows[0].keys())
    assert len(frame) == len(rows) == EPOCHS
    for i, row in enumerate(rows):
        for col, cell in row.items():
            value = frame.iloc[i][col]
            assert same(cell, int(value) if col in ("stage", "epoch") else float(value)), (i, col, cell, value)
    run = client.run(first)
    assert run.summary is not None and run.config is not None and run.epochs_done == EPOCHS

    # The report: the CLI's columns and numbers, and the seeds' mean and std of their metrics.
    report = client.report(exp.experiment_id)
    assert list(report.columns) == list(REPORT_COLUMNS)
    cli_rows = cli_csv(cauda_cli, daemon, "report", f"e-{exp.experiment_id}", "--format", "csv")
    assert list(cli_rows[0].keys()) == list(REPORT_COLUMNS)
    assert len(report) == len(cli_rows) == 1
    for i, cli_row in enumerate(cli_rows):
        for col in REPORT_COLUMNS:
            value = report.iloc[i][col]
            value = value.item() if hasattr(value, "item") else value
            assert same(cli_row[col], value), (col, cli_row[col], value)
    point = report.iloc[0].to_dict()
    assert (point["method"], point["ratio"], point["seeds"], point["succeeded"]) == ("ce", 10.0, 2, 2)
    finals = [client.metrics(r).epochs[-1].test_top1 for r in exp.point_run_ids]
    assert all(f is not None for f in finals)
    tops = [float(f) for f in finals if f is not None]
    assert point["top1_mean"] == pytest.approx(statistics.mean(tops), abs=1e-6)
    assert point["top1_std"] == pytest.approx(statistics.stdev(tops), abs=1e-6)
    assert 0 < point["relative_accuracy"] == pytest.approx(point["a_t"] / max(point["a_v"], point["a_b"]))
    assert report.attrs["experiment_id"] == exp.experiment_id and report.attrs["name"] == "py-grid"


def test_cancelling_a_running_run_ends_it_and_wait_reports_it(daemon: Daemon) -> None:
    client = Client(daemon.url)
    submitted = client.submit(tiny_spec("py-cancel", 5000), priority=5)
    run = submitted.runs[0].run_id
    # Leaving the watch early (at RUNNING) cancels the stream; the run goes on.
    for event in client.watch(run, kinds=["state"]):
        if isinstance(event, StateEvent) and event.to_state == RunState.RUNNING:
            break
    assert client.run(run).state == RunState.RUNNING
    done = client.cancel(f"r-{run}", reason="py test")
    assert done.cancelled == (run,) and done.already_finished == ()
    with pytest.raises(RunsFailed) as failed:
        client.wait(submitted.experiment_id, timeout=LIMIT_S, poll=0.2)
    assert failed.value.runs == [(run, "py-cancel", "cancelled")]
    again = client.cancel_experiment(submitted.experiment_id)
    assert again.cancelled == () and again.already_finished == (run,)
    last = list(client.watch(run, follow=False))[-1]
    assert isinstance(last, StateEvent) and last.to_state == RunState.CANCELLED
    assert last.reason is not None and "py test" in last.reason, last
