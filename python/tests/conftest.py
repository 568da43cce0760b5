"""The harness of the client's tests: a real ``caudad serve`` (the binary in ``$CAUDAD_BIN``) on
127.0.0.1 port 0 in a temporary folder, configured and read the way the daemon's own Rust tests
do it (tests/e2e/common/mod.rs): a caudad.toml written next to a data dir, the address taken
from the ``caudad listening on`` line of its stderr, and at the end the daemon and its worker
processes (which run in their own process groups) killed.

A missing tool (``$CAUDAD_BIN``, ``$CAUDA_CLI_BIN``, openssl) skips the tests that need it with
the reason printed; under ``CAUDA_REQUIRE_ALL`` (set by CI) it fails them instead, so a broken
install cannot pass as green.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REQUIRE_ALL = "CAUDA_REQUIRE_ALL"
STARTUP_LIMIT_S = 30.0


def require(present: bool, why: str, how: str) -> None:
    """Skips the calling test (or fails it under ``CAUDA_REQUIRE_ALL``) unless ``present``."""
    if present:
        return
    line = f"{why} ({how})"
    if os.environ.get(REQUIRE_ALL):
        pytest.fail(f"{REQUIRE_ALL} is set: {line}", pytrace=False)
    print(f"skipped: {line}")
    pytest.skip(line)


def _binary(env: str, what: str) -> Path:
    value = os.environ.get(env, "")
    require(bool(value), f"${env} is not set", f"point it at the {what} binary")
    path = Path(value)
    require(path.is_file() and os.access(path, os.X_OK), f"${env}={value} is not an executable", f"build {what}")
    return path


@pytest.fixture(scope="session")
def caudad_bin() -> Path:
    """The ``caudad`` binary under test (``$CAUDAD_BIN``)."""
    return _binary("CAUDAD_BIN", "caudad")


@pytest.fixture(scope="session")
def cauda_cli() -> Path:
    """The ``cauda`` CLI the client's answers are compared with (``$CAUDA_CLI_BIN``)."""
    return _binary("CAUDA_CLI_BIN", "cauda")


class Daemon:
    """A running ``caudad serve``; ``url`` is ``http://127.0.0.1:PORT``."""

    def __init__(self, binary: Path, folder: Path, config: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "caudad.toml").write_text(config, encoding="utf-8")
        self.stderr: list[str] = []
        self.port = -1
        self.proc = subprocess.Popen(
            [str(binary), "serve", "--listen", "127.0.0.1:0", "--config", str(folder / "caudad.toml"),
             "--data-dir", str(folder / "data")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, args=(lines,), daemon=True).start()
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError(f"caudad printed no address: {self.stderr[-20:]}")
            if line.startswith("caudad listening on "):
                self.hostport = line.removeprefix("caudad listening on ").strip()
                break
        self.port = int(self.hostport.rsplit(":", 1)[1])
        self.url = f"http://{self.hostport}"

    def _drain(self, lines: queue.Queue[str | None]) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))
            lines.put(line)
        lines.put(None)

    def workers(self) -> list[int]:
        """The pids of the ``caudad work`` processes dialing this daemon's port (from /proc)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            text = [a.decode(errors="replace") for a in args]
            if len(text) > 2 and text[1] == "work" and "--daemon" in text[:-1]:
                dialed = text[text.index("--daemon") + 1]
                if dialed.rstrip("/").endswith(f":{self.port}"):
                    pids.append(int(entry.name))
        return pids

    def stop(self) -> None:
        """SIGTERM, SIGKILL after 5 s, then SIGKILL to any worker left."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.workers():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def start_daemon(binary: Path, folder: Path, config: str) -> Daemon:
    return Daemon(binary, folder, config)


@pytest.fixture(scope="session")
def daemon(caudad_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One plain daemon (no auth, no TLS, 2 CPU slots) shared by the tests that need no other."""
    d = Daemon(caudad_bin, tmp_path_factory.mktemp("caudad"), 'devices = ["cpu:2"]\n')
    yield d
    d.stop()


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test reads the caller's address, token, CA or stored credentials by accident."""
    for name in ("CAUDA_ADDR", "CAUDA_TOKEN", "CAUDA_CA_CERT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("HOME", str(tmp_path))


def tiny_spec(name: str, epochs: int = 2, **extra: object) -> dict[str, object]:
    """The daemon tests' tiny real run (an MLP on the embedded digits made long-tailed) as a
    dict, with ``extra`` top-level tables merged in."""
    spec: dict[str, object] = {
        "name": name,
        "method": "ce",
        "data": {"format": "digits", "imbalance": {"profile": "exp", "ratio": 10}},
        "model": {"backbone": "mlp"},
        "train": {
            "epochs": epochs,
            "batch_size": 64,
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        },
    }
    spec.update(extra)
    return spec


def have(tool: str) -> bool:
    return shutil.which(tool) is not None
