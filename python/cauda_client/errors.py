"""What a call of cauda's API can fail with, as one exception hierarchy.

The daemon's gRPC status codes carry meaning (the proto's header lists them): NOT_FOUND for an
unknown run or experiment, INVALID_ARGUMENT with a ``SpecError`` in the status details for a
rejected spec, UNAVAILABLE for a daemon that is down or shutting down. A script should tell
"the daemon is down" from "the spec is wrong" without parsing messages, as the CLI's exit codes
do, so every ``grpc.RpcError`` is turned into one of these classes by :func:`from_rpc_error`, and
a rejected spec names its key, reason and line as attributes.
"""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError

from ._pb import cauda_pb2

# The trailer tonic sends a status's details in (the daemon puts an encoded SpecError there).
_DETAILS_KEY = "grpc-status-details-bin"


class CaudaError(Exception):
    """Any failure of the client: a bad argument, an unreachable daemon or an error status.

    ``code`` is the gRPC status code when the daemon answered with one, else ``None``.
    """

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ConfigError(CaudaError, ValueError):
    """The client was given something it cannot use: an address, a CA file, a token, an id or
    a spec value that cannot be sent."""


class Unreachable(CaudaError):
    """No connection to the daemon (refused, timed out, TLS not verified) or UNAVAILABLE."""


class NotFound(CaudaError):
    """NOT_FOUND: an unknown run, experiment or checkpoint."""


class InvalidArgument(CaudaError):
    """INVALID_ARGUMENT without a spec error: a request the daemon refuses as malformed."""


class SpecRejected(InvalidArgument):
    """The daemon rejected a spec: ``key`` is the offending dotted key (e.g.
    ``train.optimizer.lr``; empty when the text is not TOML at all), ``reason`` says what is
    wrong, ``line`` is the 1-based line of the spec text when known."""

    def __init__(self, message: str, key: str, reason: str, line: int | None) -> None:
        super().__init__(message, grpc.StatusCode.INVALID_ARGUMENT)
        self.key = key
        self.reason = reason
        self.line = line


class Unauthenticated(CaudaError):
    """UNAUTHENTICATED: no token, or one the daemon does not know."""


class PermissionDenied(CaudaError):
    """PERMISSION_DENIED: the token's user may not do this (e.g. cancel another user's run)."""


class FailedPrecondition(CaudaError):
    """FAILED_PRECONDITION: the target is in the wrong state (e.g. deleting an unfinished run)."""


class ResourceExhausted(CaudaError):
    """RESOURCE_EXHAUSTED: a request over the size limit, or the daemon's disk is full."""


class ServerError(CaudaError):
    """Any other status, or a reply that breaks the protocol."""


class RunsFailed(CaudaError):
    """Some runs an experiment waited for ended FAILED or CANCELLED; ``runs`` names them as
    ``(run_id, name, state)``."""

    def __init__(self, message: str, runs: list[tuple[int, str, str]]) -> None:
        super().__init__(message)
        self.runs = runs


class WaitTimeout(CaudaError, TimeoutError):
    """A wait ran past its timeout before every run was finished."""


_BY_CODE: dict[grpc.StatusCode, type[CaudaError]] = {
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.UNAVAILABLE: Unreachable,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
}


def spec_error_of(error: grpc.RpcError) -> cauda_pb2.SpecError | None:
    """The ``SpecError`` in an INVALID_ARGUMENT status's details; ``None`` for any other status
    (another code, no details, details that do not decode)."""
    if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
        return None
    for item in error.trailing_metadata() or ():
        value = item.value
        if item.key == _DETAILS_KEY and isinstance(value, bytes) and value:
            try:
                return cauda_pb2.SpecError.FromString(value)
            except DecodeError:
                return None
    return None


def from_rpc_error(error: grpc.RpcError, address: str) -> CaudaError:
    """The exception for a failed call to the daemon at ``address``."""
    code = error.code()
    details = error.details() or code.name
    spec = spec_error_of(error)
    if spec is not None:
        line = spec.line if spec.HasField("line") else None
        return SpecRejected(f"spec rejected: {details}", spec.key, spec.reason, line)
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unreachable(f"cannot reach the daemon at {address}: {details}", code)
    cls = _BY_CODE.get(code, ServerError)
    return cls(f"{code.name}: {details}", code)
