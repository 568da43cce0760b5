"""Where the client connects and with what, resolved the way the ``cauda`` CLI does
(client/src/connect.rs, credentials.rs), so one environment serves both: the address from the
argument, else ``$CAUDA_ADDR``, else ``http://127.0.0.1:50051``; the token from the argument,
else ``$CAUDA_TOKEN``, else the one ``cauda login`` stored for the address; an ``https://``
daemon verified with the CA file from the argument or ``$CAUDA_CA_CERT``, else the system's
roots. Every mistake (an unknown scheme, a CA file that is not PEM, a token that cannot travel
in a header) is a :class:`ConfigError` raised before anything is sent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import grpc

from .errors import ConfigError

ADDR_ENV = "CAUDA_ADDR"
TOKEN_ENV = "CAUDA_TOKEN"
CA_CERT_ENV = "CAUDA_CA_CERT"
DEFAULT_ADDR = "http://127.0.0.1:50051"
# The largest reply decoded, as the CLI's: a long run's GetMetrics outgrows gRPC's 4 MiB default.
MAX_REPLY_BYTES = 256 << 20


@dataclass(frozen=True)
class Target:
    """A resolved connection: the address as given, gRPC's ``host:port``, and TLS settings."""

    address: str
    hostport: str
    tls: bool
    ca_pem: bytes | None
    server_name: str | None


def resolve_address(address: str | None) -> str:
    return (address or os.environ.get(ADDR_ENV) or DEFAULT_ADDR).strip()


def target(address: str, ca_cert: str | os.PathLike[str] | None, server_name: str | None) -> Target:
    """Parses ``http://host:port`` / ``https://host:port`` (a bare ``host:port`` is plaintext, as
    ``http://``) and reads the CA file. An explicit ``ca_cert`` with a plaintext address is an
    error (the CA would silently go unused); ``$CAUDA_CA_CERT`` then is ignored, as by the CLI."""
    text = address if "://" in address else f"http://{address}"
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"{address}: the address must start with http:// or https://")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as e:
        raise ConfigError(f"{address}: {e}") from None
    if not host or parts.path not in ("", "/") or parts.query or parts.username:
        raise ConfigError(f"{address}: expected http(s)://HOST:PORT")
    tls = parts.scheme == "https"
    port = port or (443 if tls else 80)
    hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if not tls:
        if ca_cert is not None:
            raise ConfigError(f"a CA certificate was given but {address} is not https://")
        if server_name is not None:
            raise ConfigError(f"server_name was given but {address} is not https://")
        return Target(address, hostport, False, None, None)
    path = ca_cert if ca_cert is not None else os.environ.get(CA_CERT_ENV) or None
    pem = None if path is None else read_ca(Path(path))
    return Target(address, hostport, True, pem, server_name)


def read_ca(path: Path) -> bytes:
    try:
        pem = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise ConfigError(
            f"{path}: not a PEM certificate (ca_cert / ${CA_CERT_ENV} takes the CA's PEM file)"
        )
    return pem


def credentials_path() -> Path | None:
    """``$XDG_CONFIG_HOME/cauda/credentials``, else ``~/.config/cauda/credentials``."""
    base = os.environ.get("XDG_CONFIG_HOME") or (
        os.path.join(os.environ["HOME"], ".config") if os.environ.get("HOME") else None
    )
    return None if base is None else Path(base) / "cauda" / "credentials"


def stored_token(address: str) -> str | None:
    """The token ``cauda login`` stored for ``address`` (keyed without trailing slashes)."""
    path = credentials_path()
    if path is None or not path.is_file():
        return None
    try:
        tokens = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: not a credentials file ({e}); run `cauda login` again") from None
    token = tokens.get(address.strip().rstrip("/")) if isinstance(tokens, dict) else None
    return token if isinstance(token, str) else None


def resolve_token(token: str | None, address: str) -> str | None:
    """The bearer token calls carry (trimmed; None when empty): the argument, else
    ``$CAUDA_TOKEN``, else the stored one."""
    source = "token"
    if token is None:
        token, source = os.environ.get(TOKEN_ENV), f"${TOKEN_ENV}"
    if token is None or not token.strip():
        token, source = stored_token(address), "the credentials file"
    if token is None or not token.strip():
        return None
    token = token.strip()
    if not all(0x21 <= ord(c) <= 0x7E for c in token):
        raise ConfigError(f"{source}: a token is printable ASCII without spaces")
    return token


def open_channel(t: Target) -> grpc.Channel:
    """A channel to the target (lazy: nothing is dialed until the first call)."""
    options: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", MAX_REPLY_BYTES),
    ]
    if not t.tls:
        return grpc.insecure_channel(t.hostport, options=options)
    if t.server_name is not None:
        options.append(("grpc.ssl_target_name_override", t.server_name))
        options.append(("grpc.default_authority", t.server_name))
    credentials = grpc.ssl_channel_credentials(root_certificates=t.ca_pem)
    return grpc.secure_channel(t.hostport, credentials, options=options)
