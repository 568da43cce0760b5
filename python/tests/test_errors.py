"""How the client fails: a rejected spec names its key and line, an unknown id is NotFound, a
daemon that is not there is Unreachable within the connect timeout, and what cannot be sent (a
bad address, a CA file that is not PEM, a malformed id, a token with a space) is refused before
anything is dialed."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from cauda_client import (
    Client,
    ConfigError,
    InvalidArgument,
    NotFound,
    SpecRejected,
    Unreachable,
    to_toml,
)
from cauda_client._connect import resolve_token, target
from cauda_client._ids import experiment_id, run_id
from conftest import Daemon, tiny_spec


def test_a_rejected_spec_names_its_key_and_nothing_is_stored(daemon: Daemon) -> None:
    client = Client(daemon.url)
    before = len(client.runs())
    spec = tiny_spec("py-bad")
    spec["train"]["optimizer"]["lr"] = -0.1  # type: ignore[index]
    with pytest.raises(SpecRejected) as err:
        client.submit(spec)
    assert err.value.key == "train.optimizer.lr", err.value
    assert "-0.1" in err.value.reason and "train.optimizer.lr" in str(err.value)
    assert isinstance(err.value, InvalidArgument)
    assert len(client.runs()) == before

    text = 'name = "py-bad"\nmethod = "ce"\n[data\nformat = "digits"\n'
    with pytest.raises(SpecRejected) as err:
        client.submit(text)
    assert (err.value.key, err.value.line) == ("", 3), err.value

    # validate_only checks a spec and stores nothing.
    checked = client.submit(tiny_spec("py-valid"), validate_only=True)
    assert checked.experiment_id == 0 and [r.name for r in checked.runs] == ["py-valid"]
    assert len(client.runs()) == before


def test_a_spec_file_is_read_and_named(daemon: Daemon, tmp_path: Path) -> None:
    client = Client(daemon.url)
    path = tmp_path / "broken.toml"
    spec = tiny_spec("py-file")
    spec["model"] = {"backbone": "no-such-net"}
    path.write_text(to_toml(spec), encoding="utf-8")
    with pytest.raises(SpecRejected) as err:
        client.submit(path)
    assert err.value.key == "model.backbone" and "no-such-net" in err.value.reason, err.value
    with pytest.raises(ConfigError, match="not-there.toml"):
        client.submit(tmp_path / "not-there.toml")


def test_unknown_ids_are_not_found(daemon: Daemon) -> None:
    client = Client(daemon.url)
    with pytest.raises(NotFound, match="r-999999"):
        client.run("r-999999")
    with pytest.raises(NotFound):
        client.report(999999)
    with pytest.raises(NotFound):
        list(client.watch(999999))


def test_a_closed_port_is_unreachable_within_the_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(Unreachable, match=f"127.0.0.1:{port}"):
        Client(f"http://127.0.0.1:{port}", connect_timeout=1.0)
    assert time.monotonic() - start < 5


def test_ids_parse_like_the_cli() -> None:
    assert [run_id(12), run_id("12"), run_id("r-12"), run_id(" R-12 ")] == [12] * 4
    assert experiment_id("e-3") == 3
    for bad in ["e-3", "0", "-1", "r-", "12x", "", True, 0, 2**64, 1.5]:
        with pytest.raises(ConfigError):
            run_id(bad)  # type: ignore[arg-type]


def test_addresses_and_ca_files_are_checked_before_dialing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert target("http://127.0.0.1:50051", None, None).hostport == "127.0.0.1:50051"
    assert target("127.0.0.1:7", None, None).tls is False
    assert target("https://lab.example:443/", None, None).tls is True
    for bad in ["ftp://x:1", "http://", "http://x:notaport", "http://x:1/path"]:
        with pytest.raises(ConfigError):
            target(bad, None, None)
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello")
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        target("https://x:1", not_pem, None)
    with pytest.raises(ConfigError, match="not https"):
        target("http://x:1", not_pem, None)
    with pytest.raises(ConfigError):
        target("https://x:1", tmp_path / "missing.pem", None)
    # $CAUDA_CA_CERT is used for https:// and ignored for http://, as by the CLI.
    monkeypatch.setenv("CAUDA_CA_CERT", str(not_pem))
    assert target("http://x:1", None, None).ca_pem is None
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        target("https://x:1", None, None)


def test_tokens_come_from_the_argument_the_environment_or_cauda_login(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    addr = "http://127.0.0.1:50051"
    assert resolve_token(None, addr) is None
    stored = tmp_path / "config" / "cauda" / "credentials"
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps({addr: "t-stored"}))
    assert resolve_token(None, addr + "/") == "t-stored"
    monkeypatch.setenv("CAUDA_TOKEN", " t-env \n")
    assert resolve_token(None, addr) == "t-env"
    assert resolve_token("t-arg", addr) == "t-arg"
    with pytest.raises(ConfigError, match="printable ASCII"):
        resolve_token("t x", addr)
    stored.write_text("not json")
    monkeypatch.delenv("CAUDA_TOKEN")
    with pytest.raises(ConfigError, match="credentials"):
        resolve_token(None, addr)
