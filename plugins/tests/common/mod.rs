//! What the engine's integration tests share: the project's PyTorch venv (`.ci/run` builds it),
//! found or skipped with a printed reason, and a failure where `CAUDA_REQUIRE_ALL` is set (as
//! in CI), so a missing tool cannot pass as green.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::path::Path;

/// The venv's python.
pub const VENV_PYTHON: &str = "/var/cache/cauda/venv/bin/python";

/// The venv's python, or `None` after printing why `what` is skipped (a failure under
/// `CAUDA_REQUIRE_ALL`).
pub fn venv_python(what: &str) -> Option<&'static str> {
    if Path::new(VENV_PYTHON).is_file() {
        return Some(VENV_PYTHON);
    }
    let why = format!("no PyTorch venv at {VENV_PYTHON} (bash .ci/run builds it)");
    assert!(
        std::env::var_os("CAUDA_REQUIRE_ALL").is_none(),
        "CAUDA_REQUIRE_ALL is set and {what} cannot run: {why}"
    );
    println!("skipped: {what}: {why}");
    None
}
