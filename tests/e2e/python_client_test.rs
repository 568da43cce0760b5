//! The Python client (python/, docs/PYTHON.md) against this build: installs the package from the
//! checkout into the venv `.ci/run` builds (which holds grpcio, grpcio-tools, pandas and pytest
//! besides PyTorch), which regenerates its protobuf modules from proto/, then runs its pytest
//! suite. That suite starts real `caudad serve` processes from `CAUDAD_BIN` (this build's) and
//! compares the client's metrics and reports with what `CAUDA_CLI_BIN` (this build's `cauda`)
//! prints. A venv without those packages is a skip that says so, a failure under
//! `CAUDA_REQUIRE_ALL`, which pytest's own skips (no openssl for the TLS test) obey as well.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// The suite takes about 15 s on 2 cores; the bound is for a loaded CI machine.
const LIMIT: Duration = Duration::from_secs(300);

/// Runs `python args...` in `dir` to its end within `LIMIT`, its stdout and stderr together in a
/// file (a pipe could fill up and stall the child while `output_within` polls).
fn run_python(
    python: &Path,
    dir: &Path,
    args: &[&str],
    envs: &[(&str, &Path)],
) -> (Output, String) {
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut cmd = Command::new(python);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.reopen().expect("reopen log"))
        .stderr(log.reopen().expect("reopen log"))
        .env_remove("CAUDA_ADDR")
        .env_remove("CAUDA_TOKEN")
        .env_remove("CAUDA_CA_CERT");
    for (key, value) in envs {
        cmd.env(key, value);
    }
    let child = cmd.spawn().expect("start python");
    let out = output_within(child, LIMIT, &format!("python {args:?}"));
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    (out, text)
}

#[test]
fn the_python_client_passes_its_tests_against_this_build() {
    let Some(python) = torch_python() else { return };
    let Some(cli) = cauda_bin() else { return };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let (probe, text) = run_python(
        python,
        &root,
        &["-c", "import grpc, grpc_tools, pandas, pytest"],
        &[],
    );
    if !require(
        probe.status.success(),
        &format!(
            "{TORCH_PYTHON} lacks grpcio, grpcio-tools, pandas or pytest: {}",
            text.trim()
        ),
        "bash .ci/run installs them",
    ) {
        return;
    }

    // Rebuilt every time (about 2 s): pip regenerates the protobuf modules from proto/, so the
    // suite never runs a stale copy (python/tests/test_package.py checks that too).
    let (install, text) = run_python(
        python,
        &root,
        &[
            "-m",
            "pip",
            "install",
            "-q",
            "--no-build-isolation",
            "--no-deps",
            "./python",
        ],
        &[],
    );
    assert!(install.status.success(), "pip install ./python:\n{text}");

    let caudad = common::caudad_bin();
    let (pytest, text) = run_python(
        python,
        &root,
        &[
            "-m",
            "pytest",
            "python/tests",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        &[
            ("CAUDAD_BIN", caudad.as_path()),
            ("CAUDA_CLI_BIN", cli.as_path()),
        ],
    );
    println!("{text}");
    assert!(
        pytest.status.success(),
        "pytest python/tests failed:\n{text}"
    );
}
