//! Skips that say so: a test whose tool is missing (the `cauda` binary, Slurm, PyTorch, root for
//! a tmpfs) prints `skipped: <test>: <why> (<how to get it>)` and passes, so a laptop without
//! Slurm can still run the suite; where `CAUDA_REQUIRE_ALL` is set (CI's `.ci/run` sets it) the
//! same line fails the test, so a broken install cannot pass as green. Every skip of the daemon's
//! tests goes through `skip`.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Set (to anything), this turns every skip into a failure.
pub const REQUIRE_ALL: &str = "CAUDA_REQUIRE_ALL";

/// The PyTorch venv `.ci/run` builds (torch, numpy, safetensors).
pub const TORCH_PYTHON: &str = "/var/cache/cauda/venv/bin/python";

/// `true` when `present`; else `skip(why, how)` and `false` (the caller returns).
pub fn require(present: bool, why: &str, how: &str) -> bool {
    if !present {
        skip(why, how);
    }
    present
}

/// Skips the running test, whose caller then returns: prints `skipped: <test>: <why> (<how>)`,
/// or fails the test with that line when `CAUDA_REQUIRE_ALL` is set.
pub fn skip(why: &str, how: &str) {
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a test");
    let line = format!("skipped: {test}: {why} ({how})");
    assert!(
        std::env::var_os(REQUIRE_ALL).is_none(),
        "{REQUIRE_ALL} is set: {line}"
    );
    // Straight to stderr, not `eprintln!`: libtest hides a passing test's printed output, and a
    // skip should be seen in a plain `cargo test`.
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The `caudad` binary of this build. The daemon's own benches get it from cargo
/// (`CARGO_BIN_EXE_caudad`); the end-to-end suite, another package, finds it where cargo puts a
/// workspace's binaries: `target/<profile>/`, the parent of the test's `deps/`. `cargo test
/// --workspace` builds it; a missing one fails the test with how to build it (never a skip:
/// nothing here can run without it).
pub fn caudad_bin() -> PathBuf {
    if let Some(bin) = option_env!("CARGO_BIN_EXE_caudad") {
        return PathBuf::from(bin);
    }
    workspace_bin("caudad", "cargo build -p caudad -p cauda")
}

/// `caudad-seql`, the daemon binary of the example crate that extends cauda
/// (`examples/custom-plugin/`), found as `caudad_bin` finds `caudad`.
pub fn caudad_seql_bin() -> PathBuf {
    workspace_bin("caudad-seql", "cargo build -p cauda-custom-plugin")
}

/// The workspace's binary `name` beside this test (a missing one fails with `build`).
fn workspace_bin(name: &str, build: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let mut dir = exe.parent().expect("the test's folder").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(name);
    assert!(
        bin.is_file(),
        "the {name} binary is not built at {}: `{build}` (`cargo test --workspace` builds it)",
        bin.display()
    );
    bin
}

/// The `cauda` client binary next to `caudad`; `None` (after `require`) when it is not built, as
/// under `cargo test -p cauda-e2e` alone on a clean target dir.
pub fn cauda_bin() -> Option<PathBuf> {
    let cli = caudad_bin().with_file_name("cauda");
    require(
        cli.is_file(),
        &format!("the cauda binary is not built at {}", cli.display()),
        "cargo build -p cauda, or cargo test --workspace",
    )
    .then_some(cli)
}

/// The PyTorch venv's python; `None` (after `require`) when the venv is absent.
pub fn torch_python() -> Option<&'static Path> {
    let python = Path::new(TORCH_PYTHON);
    require(
        python.is_file(),
        &format!("no PyTorch venv at {TORCH_PYTHON}"),
        "bash .ci/run builds it",
    )
    .then_some(python)
}
