"""The client of caudad's public ``Cauda`` service: one object per daemon connection whose
methods are the calls a notebook or script needs (submit, list, watch, metrics, report, cancel,
wait), taking ids as the CLI prints them and returning :mod:`~cauda_client.models` dataclasses
or DataFrames. Every call carries ``authorization: Bearer <token>`` when there is a token, and
every failure is raised as a :mod:`~cauda_client.errors` class. The calls are made on the
service descriptor generated from proto/cauda/v1/cauda.proto, so a renamed method or message
fails at construction, not halfway through a script.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pandas as pd
from google.protobuf.message import Message

from . import _connect, frames
from ._ids import ExperimentId, RunId, experiment_id, run_id
from ._pb import cauda_pb2
from .errors import ConfigError, RunsFailed, ServerError, Unreachable, WaitTimeout, from_rpc_error
from .models import (
    Cancelled,
    Event,
    Experiment,
    Metrics,
    Run,
    RunState,
    Submitted,
    SubmittedRun,
    WhoAmI,
    epoch_from_proto,
    event_from_proto,
    experiment_from_proto,
    run_from_proto,
)
from .toml_writer import dumps

# The largest spec text sent, as the CLI's `submit` (client/src/cmd/submit.rs).
MAX_SPEC_BYTES = 256 * 1024
_SERVICE = cauda_pb2.DESCRIPTOR.services_by_name["Cauda"]
_KINDS = {
    "state": cauda_pb2.RUN_EVENT_KIND_STATE,
    "epoch": cauda_pb2.RUN_EVENT_KIND_EPOCH,
    "log": cauda_pb2.RUN_EVENT_KIND_LOG,
}
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)


def _path(name: str, request: type[Message], response: type[Message]) -> str:
    """``/cauda.v1.Cauda/<name>``, checked against the generated service descriptor."""
    method = _SERVICE.methods_by_name[name]
    if (method.input_type.full_name, method.output_type.full_name) != (
        request.DESCRIPTOR.full_name,
        response.DESCRIPTOR.full_name,
    ):
        raise TypeError(f"{name} does not take {request.__name__} and return {response.__name__}")
    return f"/{_SERVICE.full_name}/{method.name}"


class Client:
    """A connection to caudad.

    ``address`` is ``http://HOST:PORT`` or ``https://HOST:PORT`` (default ``$CAUDA_ADDR``, else
    ``http://127.0.0.1:50051``); ``token`` defaults to ``$CAUDA_TOKEN``, else the token ``cauda
    login`` stored; ``ca_cert`` (default ``$CAUDA_CA_CERT``) is the PEM file an ``https://``
    daemon's certificate is verified with, ``server_name`` the name to verify when the address
    is an IP. The constructor waits up to ``connect_timeout`` seconds for the connection and
    raises :class:`Unreachable` without one; ``timeout`` bounds each unary call.
    """

    def __init__(
        self,
        address: str | None = None,
        token: str | None = None,
        ca_cert: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
        *,
        connect_timeout: float = 5.0,
        timeout: float | None = 60.0,
    ) -> None:
        self.address = _connect.resolve_address(address)
        self._target = _connect.target(self.address, ca_cert, server_name)
        token = _connect.resolve_token(token, self.address)
        self._metadata = () if token is None else (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        self._channel = _connect.open_channel(self._target)
        try:
            grpc.channel_ready_future(self._channel).result(timeout=connect_timeout)
        except grpc.FutureTimeoutError:
            self._channel.close()
            hint = (
                " (is the certificate signed by the CA given, and does it name the host?)"
                if self._target.tls
                else ""
            )
            raise Unreachable(
                f"cannot reach the daemon at {self.address}: no connection within "
                f"{connect_timeout:g} s{hint}"
            ) from None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.address!r})"

    def close(self) -> None:
        """Closes the connection; calls after it fail."""
        self._channel.close()

    def _unary(self, name: str, request: Req, response: type[Resp]) -> Resp:
        call: grpc.UnaryUnaryMultiCallable[Req, Resp] = self._channel.unary_unary(
            _path(name, type(request), response),
            request_serializer=type(request).SerializeToString,
            response_deserializer=response.FromString,
        )
        try:
            return call(request, timeout=self._timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e, self.address) from None

    def whoami(self) -> WhoAmI:
        """Who the token belongs to (``anonymous`` on a daemon without ``[auth]``)."""
        r = self._unary("WhoAmI", cauda_pb2.WhoAmIRequest(), cauda_pb2.WhoAmIResponse)
        return WhoAmI(r.user, r.admin, r.auth_enabled)

    def submit(
        self,
        spec: str | Mapping[str, Any] | os.PathLike[str],
        *,
        priority: int | None = None,
        user: str | None = None,
        validate_only: bool = False,
        source_name: str | None = None,
    ) -> Submitted:
        """Submits a spec: TOML text, a dict (written as TOML), or a path to a spec file.
        Raises :class:`SpecRejected` naming the key when the daemon refuses it."""
        if isinstance(spec, os.PathLike):
            path = Path(spec)
            source_name = source_name or path.name
            text = _read_spec(path)
        elif isinstance(spec, str):
            text = spec
        elif isinstance(spec, Mapping):
            text = dumps(spec)
        else:
            raise ConfigError(f"a spec is TOML text, a dict or a path, got {type(spec).__name__}")
        if len(text.encode("utf-8")) > MAX_SPEC_BYTES:
            raise ConfigError(f"the spec is larger than {MAX_SPEC_BYTES // 1024} KiB")
        request = cauda_pb2.SubmitExperimentRequest(
            spec_toml=text, validate_only=validate_only
        )
        for field, value in (("source_name", source_name), ("user", user), ("priority", priority)):
            if value is not None:
                setattr(request, field, value)
        r = self._unary("SubmitExperiment", request, cauda_pb2.SubmitExperimentResponse)
        return Submitted(
            r.experiment_id, tuple(SubmittedRun(x.run_id, x.name, x.reused) for x in r.runs)
        )

    def experiment(self, experiment: ExperimentId) -> Experiment:
        """One experiment with its spec and the states of its runs."""
        request = cauda_pb2.GetExperimentRequest(experiment_id=experiment_id(experiment))
        r = self._unary("GetExperiment", request, cauda_pb2.GetExperimentResponse)
        if not r.HasField("experiment"):
            raise ServerError("GetExperiment returned no experiment")
        return experiment_from_proto(r.experiment)

    def runs(
        self,
        experiment: ExperimentId | None = None,
        state: RunState | str | Iterable[RunState | str] | None = None,
        user: str | None = None,
        *,
        full: bool = False,
    ) -> list[Run]:
        """The runs matching every filter given, by run id, over all pages; ``full`` also
        fetches each run's config and summary."""
        states = [] if state is None else [state] if isinstance(state, (str, RunState)) else state
        request = cauda_pb2.ListRunsRequest(
            states=[RunState.parse(s).value for s in states],
            page_size=1000,
            view=cauda_pb2.RUN_VIEW_FULL if full else cauda_pb2.RUN_VIEW_BASIC,
        )
        if experiment is not None:
            request.experiment_id = experiment_id(experiment)
        if user is not None:
            request.user = user
        out: list[Run] = []
        while True:
            page = self._unary("ListRuns", request, cauda_pb2.ListRunsResponse)
            out.extend(run_from_proto(r) for r in page.runs)
            if not page.next_page_token:
                return out
            if page.next_page_token == request.page_token:
                raise ServerError("ListRuns returned the same page token twice")
            request.page_token = page.next_page_token

    def run(self, run: RunId) -> Run:
        """One run in full, with its config and (once succeeded) its summary."""
        r = self._unary("GetRun", cauda_pb2.GetRunRequest(run_id=run_id(run)), cauda_pb2.GetRunResponse)
        if not r.HasField("run"):
            raise ServerError("GetRun returned no run")
        return run_from_proto(r.run)

    def watch(
        self,
        run: RunId,
        *,
        from_seq: int = 0,
        kinds: Iterable[str] | None = None,
        follow: bool = True,
    ) -> Iterator[Event]:
        """The run's events: the stored ones from ``from_seq`` on, then (with ``follow``) live
        ones until the event that ends the run. ``kinds`` picks among ``"state"``, ``"epoch"``
        and ``"log"``. Closing the iterator early cancels the stream."""
        try:
            kind_numbers = [_KINDS[k] for k in kinds or ()]
        except KeyError as e:
            raise ConfigError(f"unknown event kind {e.args[0]!r} (one of {', '.join(_KINDS)})") from None
        request = cauda_pb2.WatchRunRequest(
            run_id=run_id(run), from_seq=from_seq, kinds=kind_numbers, replay_only=not follow
        )
        stream: grpc.UnaryStreamMultiCallable[cauda_pb2.WatchRunRequest, cauda_pb2.RunEvent]
        stream = self._channel.unary_stream(
            _path("WatchRun", cauda_pb2.WatchRunRequest, cauda_pb2.RunEvent),
            request_serializer=cauda_pb2.WatchRunRequest.SerializeToString,
            response_deserializer=cauda_pb2.RunEvent.FromString,
        )
        return self._events(stream(request, metadata=self._metadata))

    def _events(self, call: Any) -> Iterator[Event]:
        try:
            for message in call:
                event = event_from_proto(message)
                if event is not None:
                    yield event
        except grpc.RpcError as e:
            raise from_rpc_error(e, self.address) from None
        finally:
            call.cancel()

    def metrics(self, run: RunId) -> Metrics:
        """Every stored epoch of the run, in order, and its summary once it succeeded."""
        request = cauda_pb2.GetMetricsRequest(run_id=run_id(run))
        r = self._unary("GetMetrics", request, cauda_pb2.GetMetricsResponse)
        summary = json.loads(r.summary_json) if r.summary_json else None
        return Metrics(tuple(epoch_from_proto(e) for e in r.epochs), summary)

    def metrics_frame(self, run: RunId) -> pd.DataFrame:
        """The run's epochs as a DataFrame (the columns of ``cauda metrics R --format csv``)."""
        return frames.metrics_frame(self.metrics(run).epochs)

    def report(self, experiment: ExperimentId, *, current_engine_only: bool = False) -> pd.DataFrame:
        """The experiment's report in the survey's layout, one row per configuration with the
        seeds folded in: the columns and numbers of ``cauda report E --format csv``."""
        request = cauda_pb2.GetReportRequest(experiment_id=experiment_id(experiment))
        r = self._unary("GetReport", request, cauda_pb2.GetReportResponse)
        return frames.report_frame(r, current_engine_only)

    def cancel(self, run: RunId, reason: str | None = None) -> Cancelled:
        """Cancels one run (a finished one is left as it is and listed as already finished)."""
        request = cauda_pb2.CancelRunRequest(run_id=run_id(run), reason=reason)
        return self._cancel(request)

    def cancel_experiment(self, experiment: ExperimentId, reason: str | None = None) -> Cancelled:
        """Cancels every unfinished run of an experiment."""
        request = cauda_pb2.CancelRunRequest(experiment_id=experiment_id(experiment), reason=reason)
        return self._cancel(request)

    def _cancel(self, request: cauda_pb2.CancelRunRequest) -> Cancelled:
        r = self._unary("CancelRun", request, cauda_pb2.CancelRunResponse)
        return Cancelled(tuple(r.cancelled_run_ids), tuple(r.already_finished_run_ids))

    def wait(
        self,
        experiment: ExperimentId,
        *,
        timeout: float | None = None,
        poll: float = 1.0,
        check: bool = True,
        on_change: Callable[[Experiment], None] | None = None,
    ) -> Experiment:
        """Polls the experiment until every run is finished and returns it. With ``check``,
        raises :class:`RunsFailed` when some run did not succeed; past ``timeout`` seconds,
        :class:`WaitTimeout`. ``on_change`` is called whenever the state counts change."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last: dict[RunState, int] | None = None
        while True:
            exp = self.experiment(experiment)
            if on_change is not None and exp.counts() != last:
                on_change(exp)
            last = exp.counts()
            if exp.done:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"e-{exp.experiment_id}: not finished after {timeout:g} s: {_counts(exp)}")
            time.sleep(poll)
        bad = [(r.run_id, r.name, str(r.state)) for r in exp.runs if r.state != RunState.SUCCEEDED]
        if check and bad:
            names = ", ".join(f"r-{i} {n} ({s})" for i, n, s in bad)
            raise RunsFailed(f"{len(bad)} of {len(exp.runs)} runs did not succeed: {names}", bad)
        return exp


def _counts(exp: Experiment) -> str:
    return ", ".join(f"{n} {s}" for s, n in exp.counts().items())


def _read_spec(path: Path) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_SPEC_BYTES // 1024} KiB, not a spec")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
