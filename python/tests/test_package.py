"""The package under test is what this checkout builds: the imported ``cauda_client`` has the
checkout's modules (a stale ``pip install`` fails here, not later in a confusing way), its
generated protobuf modules match ``proto/`` as it is now, and the installed copy carries what
typed users need (``py.typed`` and the messages' ``.pyi``)."""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

import cauda_client
from cauda_client._pb import cauda_pb2, common_pb2
from conftest import require
from google.protobuf import descriptor_pb2

PYTHON_DIR = Path(__file__).resolve().parent.parent
SOURCE = PYTHON_DIR / "cauda_client"
PROTO_DIR = PYTHON_DIR.parent / "proto"
REINSTALL = "pip install --no-build-isolation ./python"


def test_the_imported_package_is_this_checkouts() -> None:
    installed = Path(cauda_client.__file__).parent
    for module in sorted(SOURCE.glob("*.py")):
        copy = installed / module.name
        assert copy.is_file(), f"{copy} is missing: {REINSTALL}"
        assert copy.read_bytes() == module.read_bytes(), f"{copy} is stale: {REINSTALL}"
    assert (installed / "py.typed").is_file()
    for name in ("cauda_pb2", "common_pb2"):
        assert (installed / "_pb" / f"{name}.pyi").is_file(), f"{name}.pyi is not installed"


def test_the_generated_modules_match_the_protos_as_they_are() -> None:
    require(importlib.util.find_spec("grpc_tools") is not None, "no grpcio-tools", "pip install grpcio-tools")
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "set.pb"
        args = ["protoc", f"-I{PROTO_DIR}", f"--descriptor_set_out={out}",
                "cauda/v1/common.proto", "cauda/v1/cauda.proto"]
        assert protoc.main(args) == 0
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    now = {f.name: _text(f) for f in files}
    for module in (common_pb2, cauda_pb2):
        built = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        assert _text(built) == now[built.name], (
            f"{built.name} changed since cauda_client was built: {REINSTALL}"
        )


def _text(file: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """A descriptor as text without json_name, which the generated modules leave out."""
    return [line for line in str(file).splitlines() if "json_name:" not in line]
