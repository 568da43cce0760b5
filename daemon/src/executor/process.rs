//! The local process executor: each attempt of a run is a child process (`caudad work`) that
//! sees only its devices (`CUDA_VISIBLE_DEVICES`), whose output lines become the run's log and
//! whose exit status reaches the core. Cancel sends SIGTERM, then SIGKILL after a grace period.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::{ExecEvent, StderrTail, WORKER_TOKEN_ENV, WorkerTokens};
use crate::core::{Executor, ProcessExit};
use crate::model::{DeviceId, RunId, RunRecord};
use crate::store::{LogStream, MAX_LOG_LINE};

/// How long output is still read after a worker exited.
const READ_AFTER_EXIT: Duration = Duration::from_secs(2);

/// How the executor starts workers.
#[derive(Debug, Clone)]
pub struct ProcessConfig {
    /// The `caudad` binary whose `work` command runs an attempt.
    pub program: PathBuf,
    /// The daemon's address as workers dial it (`http://127.0.0.1:PORT`).
    pub daemon_url: String,
    /// Time between SIGTERM and SIGKILL on cancel.
    pub grace: Duration,
    /// Extra environment for every worker (e.g. `RUST_LOG`).
    pub env: Vec<(String, String)>,
}

/// Starts and stops worker processes; reports their output and exits as `ExecEvent`s.
#[derive(Clone)]
pub struct ProcessExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    config: ProcessConfig,
    handle: tokio::runtime::Handle,
    /// Live children by (run, attempt): their pids.
    children: Mutex<HashMap<(RunId, u32), u32>>,
    /// The live attempts' worker tokens (hashed).
    tokens: WorkerTokens,
    events: mpsc::UnboundedSender<ExecEvent>,
}

impl std::fmt::Debug for ProcessExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessExecutor")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl ProcessExecutor {
    /// An executor spawning on `handle`'s runtime; its events go to the returned receiver
    /// (feed them to `super::pump`).
    pub fn new(
        config: ProcessConfig,
        handle: tokio::runtime::Handle,
    ) -> (Self, mpsc::UnboundedReceiver<ExecEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let inner = Inner {
            config,
            handle,
            children: Mutex::new(HashMap::new()),
            tokens: WorkerTokens::default(),
            events,
        };
        (
            Self {
                inner: Arc::new(inner),
            },
            rx,
        )
    }

    /// Sends SIGTERM to every live worker (the daemon is shutting down; the next daemon
    /// requeues their runs).
    pub fn stop_all(&self) {
        for ((run, attempt), pid) in self.children() {
            tracing::info!(run_id = %run, attempt, pid, "stopping worker for shutdown");
            signal(pid, Signal::SIGTERM);
        }
    }

    /// The tokens this executor hands its workers (for the gRPC worker gate).
    pub fn tokens(&self) -> WorkerTokens {
        self.inner.tokens.clone()
    }

    /// The pids of the live workers, by (run, attempt).
    pub fn children(&self) -> HashMap<(RunId, u32), u32> {
        self.inner
            .children
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }
}

/// `CUDA_VISIBLE_DEVICES` for a run's grants: its GPU indices, or empty (no GPU) for CPU runs.
pub fn visible_devices(run: &RunRecord) -> String {
    run.grants
        .iter()
        .filter_map(|g| match g.device {
            DeviceId::Gpu(i) => Some(i.to_string()),
            DeviceId::Cpu(_) => None,
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Executor for ProcessExecutor {
    fn launch(&self, run: &RunRecord) {
        let key = (run.id, run.attempt);
        let inner = self.inner.clone();
        let Ok(mut children) = inner.children.lock() else {
            return;
        };
        if children.contains_key(&key) {
            tracing::debug!(run_id = %run.id, attempt = run.attempt, "already launched");
            return;
        }
        let config = &inner.config;
        let mut cmd = Command::new(&config.program);
        cmd.arg("work")
            .arg("--daemon")
            .arg(&config.daemon_url)
            .arg("--run")
            .arg(run.id.0.to_string())
            .arg("--attempt")
            .arg(run.attempt.to_string())
            .env("CUDA_VISIBLE_DEVICES", visible_devices(run))
            // NVML numbers GPUs in PCI bus order; make CUDA number them the same way.
            .env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            .env("CAUDA_RUN_ID", run.id.to_string())
            .env("CAUDA_ATTEMPT", run.attempt.to_string())
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .env(WORKER_TOKEN_ENV, inner.tokens.issue(run.id, run.attempt))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: cancel signals reach whatever the worker started too, and
            // a Ctrl-C meant for the daemon's terminal does not (shutdown stops workers itself).
            .process_group(0)
            .kill_on_drop(false);
        let cpu_slots = run
            .grants
            .iter()
            .filter(|g| matches!(g.device, DeviceId::Cpu(_)))
            .count();
        if cpu_slots > 0 && std::env::var_os("RAYON_NUM_THREADS").is_none() {
            // A CPU slot is one core's worth of threads: runs side by side must not fight.
            cmd.env("RAYON_NUM_THREADS", cpu_slots.to_string());
        }
        let _enter = inner.handle.enter();
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                inner.tokens.revoke(run.id, run.attempt);
                let exit = ProcessExit {
                    code: None,
                    signal: None,
                    stderr_tail: format!("cannot start {}: {e}", config.program.display()),
                };
                let _ = inner.events.send(ExecEvent::Exited {
                    run: run.id,
                    attempt: run.attempt,
                    exit,
                });
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        children.insert(key, pid);
        drop(children);
        tracing::info!(run_id = %run.id, attempt = run.attempt, pid, devices = %visible_devices(run), "worker started");
        let line = format!(
            "attempt {}: started worker pid {pid} (CUDA_VISIBLE_DEVICES={:?})",
            run.attempt,
            visible_devices(run)
        );
        let _ = inner.events.send(ExecEvent::Output {
            run: run.id,
            stream: LogStream::Daemon,
            line,
        });
        inner.handle.spawn(supervise(inner.clone(), key, child));
    }

    fn cancel(&self, run: &RunRecord) {
        let key = (run.id, run.attempt);
        let Some(pid) = self
            .inner
            .children
            .lock()
            .ok()
            .and_then(|c| c.get(&key).copied())
        else {
            return;
        };
        tracing::info!(run_id = %run.id, attempt = run.attempt, pid, "stopping worker (SIGTERM)");
        signal(pid, Signal::SIGTERM);
        let inner = self.inner.clone();
        let grace = inner.config.grace;
        self.inner.handle.spawn(async move {
            tokio::time::sleep(grace).await;
            let alive = inner
                .children
                .lock()
                .ok()
                .is_some_and(|c| c.get(&key) == Some(&pid));
            if alive {
                tracing::warn!(pid, "worker outlived its grace period; SIGKILL");
                signal(pid, Signal::SIGKILL);
            }
        });
    }
}

/// Signals the worker's whole process group (the worker leads it).
fn signal(pid: u32, sig: Signal) {
    if let Ok(raw) = i32::try_from(pid)
        && raw > 0
        && let Err(e) = kill(Pid::from_raw(-raw), sig)
    {
        tracing::debug!(pid, error = %e, "signal not delivered (the worker had exited)");
    }
}

/// Reads the child's output into the run's log, waits for it, then reports its exit.
async fn supervise(inner: Arc<Inner>, key: (RunId, u32), mut child: tokio::process::Child) {
    let (run, attempt) = key;
    let tail = StderrTail::default();
    let out = child.stdout.take().map(|s| {
        tokio::spawn(forward(
            s,
            run,
            LogStream::Stdout,
            inner.events.clone(),
            None,
        ))
    });
    let err = child.stderr.take().map(|s| {
        tokio::spawn(forward(
            s,
            run,
            LogStream::Stderr,
            inner.events.clone(),
            Some(tail.clone()),
        ))
    });
    let status = child.wait().await;
    // A process the worker left behind may hold its pipes open: read what is there, briefly.
    for mut reader in [out, err].into_iter().flatten() {
        if tokio::time::timeout(READ_AFTER_EXIT, &mut reader)
            .await
            .is_err()
        {
            reader.abort();
        }
    }
    if let Ok(mut children) = inner.children.lock() {
        children.remove(&key);
    }
    inner.tokens.revoke(run, attempt);
    let exit = match status {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            ProcessExit {
                code: status.code(),
                signal: status.signal(),
                stderr_tail: tail.text(),
            }
        }
        Err(e) => ProcessExit {
            code: None,
            signal: None,
            stderr_tail: format!("waiting for the worker failed: {e}"),
        },
    };
    tracing::info!(run_id = %run, attempt, status = %exit.describe(), "worker exited");
    let _ = inner.events.send(ExecEvent::Exited { run, attempt, exit });
}

/// Forwards lines (each cut to `MAX_LOG_LINE` bytes; a longer line's rest is dropped).
async fn forward(
    stream: impl AsyncRead + Unpin,
    run: RunId,
    kind: LogStream,
    events: mpsc::UnboundedSender<ExecEvent>,
    tail: Option<StderrTail>,
) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        let mut overflow = false;
        let done = loop {
            let buf = match reader.fill_buf().await {
                Ok(buf) => buf,
                Err(_) => break true,
            };
            if buf.is_empty() {
                break true;
            }
            let (take, end) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i, Some(i + 1)),
                None => (buf.len(), None),
            };
            let room = MAX_LOG_LINE.saturating_sub(line.len());
            overflow |= take > room;
            line.extend_from_slice(&buf[..take.min(room)]);
            let consumed = end.unwrap_or(buf.len());
            reader.consume(consumed);
            if end.is_some() {
                break false;
            }
        };
        if !line.is_empty() || !done {
            let mut text = String::from_utf8_lossy(&line).into_owned();
            if overflow {
                text.push_str(" [cut]");
            }
            if let Some(tail) = &tail {
                tail.push(&text);
            }
            let _ = events.send(ExecEvent::Output {
                run,
                stream: kind,
                line: text,
            });
        }
        if done {
            return;
        }
    }
}
