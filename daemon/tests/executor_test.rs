//! The process executor on its own, with stand-in worker programs (shell scripts): a worker that
//! ignores SIGTERM is killed with SIGKILL after the grace period, output lines are captured (long
//! ones cut), the stderr tail reaches the exit report, a launch is idempotent per (run, attempt),
//! and a program that cannot start is reported as an exit, not a panic.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use caudad::core::Executor;
use caudad::executor::{ExecEvent, ProcessConfig, ProcessExecutor};
use caudad::model::{DeviceId, ExperimentId, Grant, ResourceRequest, RunId, RunRecord, RunState};
use caudad::store::{LogStream, MAX_LOG_LINE};
use tokio::sync::mpsc::UnboundedReceiver;

fn script(dir: &Path, body: &str) -> std::path::PathBuf {
    let path = dir.join("worker.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn run(id: u64, gpus: &[u32]) -> RunRecord {
    RunRecord {
        id: RunId(id),
        experiment: ExperimentId(1),
        name: format!("r{id}"),
        user: "t".into(),
        config_json: "{}".into(),
        config_hash: String::new(),
        engine: String::new(),
        state: RunState::Running,
        priority: 0,
        submitted_at: 0,
        started_at: None,
        finished_at: None,
        attempt: 1,
        max_retries: 0,
        failures: 0,
        request: ResourceRequest::default(),
        grants: gpus
            .iter()
            .map(|&g| Grant {
                device: DeviceId::Gpu(g),
                share: 1.0,
                mem_mb: None,
            })
            .collect(),
        pending_reason: None,
        error: None,
        depends_on: None,
        summary: None,
        coordinates: Vec::new(),
        facts: None,
        gpu_memory: Default::default(),
        batch_job: None,
    }
}

fn executor(
    program: std::path::PathBuf,
    grace_ms: u64,
) -> (ProcessExecutor, UnboundedReceiver<ExecEvent>) {
    ProcessExecutor::new(
        ProcessConfig {
            program,
            daemon_url: "http://127.0.0.1:1".into(),
            grace: Duration::from_millis(grace_ms),
            env: Vec::new(),
        },
        tokio::runtime::Handle::current(),
    )
}

/// Collects events until the exit of (run, attempt 1); bounded by `limit`.
async fn until_exit(rx: &mut UnboundedReceiver<ExecEvent>, limit: Duration) -> Vec<ExecEvent> {
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let event = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the worker exits in time")
            .expect("events");
        let done = matches!(event, ExecEvent::Exited { .. });
        out.push(event);
        if done {
            return out;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_ignoring_sigterm_is_killed_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let program = script(
        dir.path(),
        "trap '' TERM\necho ready\nsleep 30 & wait; sleep 30",
    );
    let (exec, mut rx) = executor(program, 300);
    let r = run(1, &[]);
    exec.launch(&r);
    exec.launch(&r);
    assert_eq!(
        exec.children().len(),
        1,
        "a launch is idempotent per (run, attempt)"
    );
    // Wait for the script to be running (its first line), then cancel.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            ExecEvent::Output { line, .. } if line == "ready" => break,
            _ => {}
        }
    }
    let started = std::time::Instant::now();
    exec.cancel(&r);
    let events = until_exit(&mut rx, Duration::from_secs(10)).await;
    let Some(ExecEvent::Exited { exit, .. }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!(
        exit.signal,
        Some(9),
        "SIGTERM was ignored, SIGKILL ended it: {exit:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the grace period"
    );
    assert!(exec.children().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_captured_cut_and_the_stderr_tail_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(MAX_LOG_LINE + 100);
    let body = format!(
        "echo \"gpus=$CUDA_VISIBLE_DEVICES order=$CUDA_DEVICE_ORDER args=$*\"\necho {long}\necho oops >&2\necho 'last words' >&2\nexit 3"
    );
    let (exec, mut rx) = executor(script(dir.path(), &body), 1000);
    exec.launch(&run(7, &[2, 0]));
    let events = until_exit(&mut rx, Duration::from_secs(10)).await;
    let lines: Vec<(LogStream, String)> = events
        .iter()
        .filter_map(|e| match e {
            ExecEvent::Output { stream, line, .. } => Some((*stream, line.clone())),
            ExecEvent::Exited { .. } => None,
        })
        .collect();
    assert!(lines[0].0 == LogStream::Daemon && lines[0].1.contains("started worker pid"));
    let stdout: Vec<&String> = lines
        .iter()
        .filter(|l| l.0 == LogStream::Stdout)
        .map(|l| &l.1)
        .collect();
    assert_eq!(
        stdout[0],
        "gpus=2,0 order=PCI_BUS_ID args=work --daemon http://127.0.0.1:1 --run 7 --attempt 1"
    );
    assert_eq!(stdout[1].len(), MAX_LOG_LINE + " [cut]".len());
    assert!(stdout[1].ends_with(" [cut]"));
    let Some(ExecEvent::Exited { run, attempt, exit }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!((*run, *attempt), (RunId(7), 1));
    assert_eq!(exit.code, Some(3));
    assert_eq!(exit.stderr_tail, "oops\nlast words");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_cannot_start_is_reported_as_an_exit() {
    let (exec, mut rx) = executor("/nonexistent/caudad".into(), 1000);
    exec.launch(&run(3, &[]));
    let events = until_exit(&mut rx, Duration::from_secs(5)).await;
    let Some(ExecEvent::Exited { exit, .. }) = events.last() else {
        panic!("{events:?}")
    };
    assert_eq!((exit.code, exit.signal), (None, None));
    assert!(exit.stderr_tail.contains("/nonexistent/caudad"), "{exit:?}");
}
