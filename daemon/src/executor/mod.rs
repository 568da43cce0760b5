//! Executors do the I/O the scheduler decided on (STYLE.md: policies decide, executors act).
//! `process` runs each attempt as a local child process; what the children print and how they
//! end flows back as `ExecEvent`s, which `pump` hands to the core (a channel rather than a
//! reference back to the daemon, so the executor knows nothing of the core's locks). `slurm`
//! submits each attempt as a Slurm batch job instead.

mod process;
pub mod slurm;
mod tokens;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

pub use process::{ProcessConfig, ProcessExecutor, visible_devices};
pub use tokens::{WORKER_TOKEN_ENV, WorkerTokens};

use crate::core::{Daemon, ProcessExit, STDERR_TAIL_BYTES};
use crate::model::RunId;
use crate::store::LogStream;

/// Log lines written to the store per commit at most.
const LOG_BATCH: usize = 256;

/// What an executor observed.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecEvent {
    /// A line a worker printed (or the executor wrote about it).
    Output {
        run: RunId,
        stream: LogStream,
        line: String,
    },
    /// An attempt's process ended (after its last output line).
    Exited {
        run: RunId,
        attempt: u32,
        exit: ProcessExit,
    },
}

/// The last lines of a worker's stderr, at most `STDERR_TAIL_BYTES` in all.
#[derive(Debug, Clone, Default)]
pub struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    pub fn push(&self, line: &str) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push_back(line.to_string());
            while lines.iter().map(|l| l.len() + 1).sum::<usize>() > STDERR_TAIL_BYTES
                && lines.len() > 1
            {
                lines.pop_front();
            }
        }
    }

    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

/// Feeds executor events to the core until every sender is gone: output lines in batches
/// (one store commit per batch), exits one by one (they may retry or fail a run). The core
/// calls wait for the store's flush, so they run on the blocking pool, not on this task's
/// runtime worker.
pub async fn pump(mut events: mpsc::UnboundedReceiver<ExecEvent>, daemon: Arc<Daemon>) {
    let mut batch = Vec::new();
    while let Some(first) = events.recv().await {
        let mut next = Some(first);
        while let Some(event) = next.take() {
            match event {
                ExecEvent::Output { run, stream, line } => {
                    batch.push((run, stream, line));
                    if batch.len() < LOG_BATCH {
                        next = events.try_recv().ok();
                    }
                }
                ExecEvent::Exited { run, attempt, exit } => {
                    flush(&daemon, &mut batch).await;
                    let core = daemon.clone();
                    let exited = tokio::task::spawn_blocking(move || {
                        core.worker_exited(run, attempt, &exit)
                    })
                    .await;
                    match exited {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!(run_id = %run, attempt, error = %e, "recording a worker's exit failed")
                        }
                        Err(e) => {
                            tracing::error!(run_id = %run, attempt, error = %e, "recording a worker's exit panicked")
                        }
                    }
                    next = events.try_recv().ok();
                }
            }
        }
        flush(&daemon, &mut batch).await;
    }
}

async fn flush(daemon: &Arc<Daemon>, batch: &mut Vec<(RunId, LogStream, String)>) {
    if batch.is_empty() {
        return;
    }
    let lines = std::mem::take(batch);
    let n = lines.len();
    let core = daemon.clone();
    match tokio::task::spawn_blocking(move || core.append_logs(&lines)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, lines = n, "storing worker output failed"),
        Err(e) => tracing::error!(error = %e, lines = n, "storing worker output panicked"),
    }
}
