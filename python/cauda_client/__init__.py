"""cauda-client: Python access to caudad, the cauda experiment daemon.

Submit long-tailed learning experiments (TOML text or a dict), follow their runs as an iterator
of typed events, read epoch metrics, and get an experiment's report as a pandas DataFrame in
the survey's layout, over the daemon's gRPC API (proto/cauda/v1/cauda.proto). See
docs/PYTHON.md.
"""

from .client import Client
from .errors import (
    CaudaError,
    ConfigError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RunsFailed,
    ServerError,
    SpecRejected,
    Unauthenticated,
    Unreachable,
    WaitTimeout,
)
from .frames import METRICS_COLUMNS, REPORT_COLUMNS
from .models import (
    Cancelled,
    Epoch,
    EpochEvent,
    Event,
    Experiment,
    Grant,
    LogEvent,
    Metrics,
    Run,
    RunBrief,
    RunState,
    StateEvent,
    Submitted,
    SubmittedRun,
    WhoAmI,
)
from .toml_writer import dumps as to_toml

__all__ = [
    "METRICS_COLUMNS",
    "REPORT_COLUMNS",
    "Cancelled",
    "CaudaError",
    "Client",
    "ConfigError",
    "Epoch",
    "EpochEvent",
    "Event",
    "Experiment",
    "FailedPrecondition",
    "Grant",
    "InvalidArgument",
    "LogEvent",
    "Metrics",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Run",
    "RunBrief",
    "RunState",
    "RunsFailed",
    "ServerError",
    "SpecRejected",
    "StateEvent",
    "Submitted",
    "SubmittedRun",
    "Unauthenticated",
    "Unreachable",
    "WaitTimeout",
    "WhoAmI",
    "to_toml",
]
