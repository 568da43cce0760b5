"""Authentication and TLS against real daemons: with ``[auth]`` a call needs a known bearer
token (from the argument, ``$CAUDA_TOKEN`` or the credentials ``cauda login`` writes) and the
runs belong to its user; with ``[tls]`` (a CA and a certificate for ``localhost`` made here with
the openssl CLI) the client verifies the daemon with the CA, checks the host name, and is
refused without the CA, with another CA, or over plaintext."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cauda_client import Client, PermissionDenied, RunState, Unauthenticated, Unreachable
from conftest import Daemon, have, require, start_daemon, tiny_spec

LIMIT_S = 60.0


def token_hash(caudad: Path, token: str) -> str:
    """``caudad hash-token``'s answer, checked against SHA-256 computed here."""
    out = subprocess.run(
        [str(caudad), "hash-token"], input=token, capture_output=True, text=True, timeout=10
    )
    assert out.returncode == 0, out.stderr
    digest = out.stdout.strip()
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    return digest


def users(caudad: Path) -> str:
    """ada ("t-ada") and root ("t-root", admin)."""
    entries = ", ".join(
        f'{{ name = "{name}", token_sha256 = "{token_hash(caudad, "t-" + name)}", admin = {str(admin).lower()} }}'
        for name, admin in (("ada", False), ("root", True))
    )
    return f"[auth]\nusers = [{entries}]\n"


@pytest.fixture(scope="module")
def auth_daemon(caudad_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = start_daemon(caudad_bin, tmp_path_factory.mktemp("auth"), 'devices = ["cpu:2"]\n' + users(caudad_bin))
    yield d
    d.stop()


def test_calls_need_a_known_token_and_runs_belong_to_its_user(
    auth_daemon: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = auth_daemon.url
    with pytest.raises(Unauthenticated):
        Client(url).runs()
    with pytest.raises(Unauthenticated):
        Client(url, token="t-eve").whoami()

    ada = Client(url, token="t-ada")
    me = ada.whoami()
    assert (me.user, me.admin, me.auth_enabled) == ("ada", False, True)
    with pytest.raises(PermissionDenied):
        ada.submit(tiny_spec("py-auth", 1), user="root")
    submitted = ada.submit(tiny_spec("py-auth", 1))
    exp = ada.wait(submitted.experiment_id, timeout=LIMIT_S, poll=0.2)
    assert [r.state for r in exp.runs] == [RunState.SUCCEEDED]
    assert ada.run(submitted.runs[0].run_id).user == "ada"

    # $CAUDA_TOKEN, then the file `cauda login` writes (keyed by address).
    monkeypatch.setenv("CAUDA_TOKEN", "t-root")
    assert Client(url).whoami().user == "root"
    monkeypatch.delenv("CAUDA_TOKEN")
    stored = tmp_path / "config" / "cauda" / "credentials"
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps({url: "t-ada"}))
    assert Client(url + "/").whoami().user == "ada"


def make_pki(folder: Path) -> dict[str, Path]:
    """A CA, a certificate for localhost signed by it, and an unrelated CA (openssl CLI)."""
    def run(*args: str) -> None:
        out = subprocess.run(["openssl", *args], cwd=folder, capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, f"openssl {args}: {out.stderr}"

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for ca in ("ca", "other-ca"):
        run("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
            "-subj", f"/CN=cauda {ca}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    return {name: folder / f"{name}.pem" for name in ("ca", "other-ca", "server")} | {
        "key": folder / "server.key"
    }


def test_a_tls_daemon_is_verified_with_its_ca_and_refused_otherwise(
    caudad_bin: Path, tmp_path: Path
) -> None:
    require(have("openssl"), "no openssl CLI to make the test certificates", "apt-get install openssl")
    pki = make_pki(tmp_path)
    config = (
        'devices = ["cpu:1"]\n'
        + users(caudad_bin)
        + f'[tls]\ncert = "{pki["server"]}"\nkey = "{pki["key"]}"\nca = "{pki["ca"]}"\n'
        + 'server_name = "localhost"\n'
    )
    daemon = start_daemon(caudad_bin, tmp_path / "tls", config)
    try:
        port = daemon.port
        by_name = Client(f"https://localhost:{port}", token="t-ada", ca_cert=pki["ca"])
        assert by_name.whoami().user == "ada"
        by_ip = Client(f"https://127.0.0.1:{port}", token="t-ada", ca_cert=str(pki["ca"]), server_name="localhost")
        assert by_ip.runs() == []
        for ca in (None, pki["other-ca"]):
            with pytest.raises(Unreachable, match="certificate"):
                Client(f"https://localhost:{port}", token="t-ada", ca_cert=ca, connect_timeout=1.5)
        # The certificate names localhost, not 127.0.0.1.
        with pytest.raises(Unreachable):
            Client(f"https://127.0.0.1:{port}", token="t-ada", ca_cert=pki["ca"], connect_timeout=1.5)
        # Plaintext on the TLS port gets no answer.
        with pytest.raises(Unreachable):
            Client(f"http://127.0.0.1:{port}", token="t-ada", connect_timeout=1.5).whoami()
    finally:
        daemon.stop()
