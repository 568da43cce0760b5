//! Runs the real `cauda` binary: its help, its errors without a daemon, and its completion
//! scripts. Tests against a live daemon live with the daemon's integration tests.

use std::process::{Command, Output};

fn cauda(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cauda"))
        .args(args)
        .env_remove("CAUDA_ADDR")
        .output()
        .expect("the cauda binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_lists_every_command_and_the_exit_codes() {
    let out = cauda(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for command in [
        "submit",
        "ls",
        "show",
        "watch",
        "logs",
        "cancel",
        "metrics",
        "plugins",
        "devices",
        "checkpoint",
        "completions",
    ] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(command)),
            "`{command}` missing from --help:\n{text}"
        );
    }
    assert!(text.contains("Exit codes:"), "{text}");
    assert!(text.contains("CAUDA_ADDR"), "{text}");
}

#[test]
fn an_unreachable_daemon_is_one_line_naming_the_address_and_exit_3() {
    let out = cauda(&["ls", "--addr", "http://127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(3), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("cauda: cannot reach the daemon at http://127.0.0.1:1: "),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn the_address_also_comes_from_the_environment() {
    let out = Command::new(env!("CARGO_BIN_EXE_cauda"))
        .args(["devices"])
        .env("CAUDA_ADDR", "http://127.0.0.1:1")
        .output()
        .expect("the cauda binary runs");
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("http://127.0.0.1:1"));
}

#[test]
fn submitting_a_missing_file_exits_2_naming_it() {
    let out = cauda(&[
        "submit",
        "/definitely/not/here/spec.toml",
        "--addr",
        "http://127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("/definitely/not/here/spec.toml"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn a_malformed_id_is_a_usage_error() {
    let out = cauda(&["show", "e-3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("run id"), "{}", stderr(&out));
}

#[test]
fn cancel_needs_a_run_or_an_experiment_but_not_both() {
    assert_eq!(cauda(&["cancel"]).status.code(), Some(2));
    assert_eq!(
        cauda(&["cancel", "r-1", "--experiment", "e-1"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn completions_bash_prints_a_script() {
    let out = cauda(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("_cauda()"), "{text}");
    assert!(text.contains("complete"), "{text}");
    assert!(text.contains("checkpoint"), "{text}");
}
