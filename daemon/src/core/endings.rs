//! How an attempt ends: the worker's `Finish`, or its process's exit without one (or a lost
//! worker); a success stores the summary, a failure is retried from the latest checkpoint while
//! `max_retries` allows, an out-of-memory death is requeued once with more memory (`oom`), and
//! the run's devices are freed in the same commit.

use super::daemon::state_event;
use super::oom::{self, OomDecision, OomInput};
use super::recorder::ExitCause;
use super::{Daemon, Result};
use crate::model::{RunId, RunRecord, RunState};
use crate::store::{Event, EventKind, LogStream, WriteOp};
use cauda_plugins::train::RunSummary;

/// Most bytes of a worker's stderr quoted in a failed run's error.
pub const STDERR_TAIL_BYTES: usize = 2048;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The run trained to the end, with the engine's summary.
    Succeeded(Box<RunSummary>),
    /// The attempt failed (an engine error, a dead or lost worker); retried if allowed.
    Failed(String),
    /// The attempt died of GPU out-of-memory: requeued once with a larger reservation, not
    /// counted as a retry (`oom`); a CPU run's out-of-memory is an ordinary failure.
    OutOfMemory(String),
}

/// How a worker process ended, as the executor saw it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProcessExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    /// The last lines of its stderr (at most `STDERR_TAIL_BYTES`).
    pub stderr_tail: String,
}

impl ProcessExit {
    /// "exit code 3" / "killed by signal 9".
    pub fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s}"),
            (None, None) => "ended without a status".to_string(),
        }
    }
}

impl Daemon {
    /// The worker's report of how its attempt ended.
    pub fn finish(&self, id: RunId, attempt: u32, ending: Ending) -> Result<()> {
        let _guard = self.lock()?;
        let run = self.fence(id, attempt)?;
        let unread: Vec<_> = self
            .executor
            .unread_output(id)
            .into_iter()
            .map(|line| (id, LogStream::Stdout, line))
            .collect();
        self.append_logs(&unread)?;
        let cause = match &ending {
            Ending::Succeeded(_) => ExitCause::Succeeded,
            Ending::Failed(_) => ExitCause::Failed,
            Ending::OutOfMemory(_) => ExitCause::Oom,
        };
        self.end_attempt(run, ending, cause)?;
        self.schedule_locked()
    }

    /// The executor's report that an attempt's process ended. An attempt that had not
    /// finished (a crash, a kill) fails with the exit status and stderr tail, and is retried
    /// when allowed; otherwise only the exit is recorded.
    pub fn worker_exited(&self, id: RunId, attempt: u32, exit: &ProcessExit) -> Result<()> {
        let _guard = self.lock()?;
        if let Ok(mut seen) = self.last_seen.lock() {
            seen.remove(&(id, attempt));
        }
        let Some(run) = self.store.get_run(id)? else {
            return Ok(());
        };
        self.commit(&[WriteOp::AppendEvent(
            id,
            Event {
                at: self.clock.now(),
                kind: EventKind::Exit {
                    attempt,
                    code: exit.code,
                    signal: exit.signal,
                },
            },
        )])?;
        if run.state == RunState::Running && run.attempt == attempt {
            let mut message = format!("worker of attempt {attempt} died: {}", exit.describe());
            if !exit.stderr_tail.trim().is_empty() {
                message.push_str("; stderr ends with:\n");
                message.push_str(exit.stderr_tail.trim_end());
            }
            let (ending, cause) = if super::oom::looks_like_oom(&exit.stderr_tail) {
                (Ending::OutOfMemory(message), ExitCause::Oom)
            } else if exit.signal.is_some() {
                (Ending::Failed(message), ExitCause::Killed)
            } else {
                (Ending::Failed(message), ExitCause::Failed)
            };
            self.end_attempt(run, ending, cause)?;
            self.schedule_locked()?;
        }
        Ok(())
    }

    /// Ends the running attempt of `run` (`close_attempt`), then counts its `cause`.
    pub(super) fn end_attempt(
        &self,
        run: RunRecord,
        ending: Ending,
        cause: ExitCause,
    ) -> Result<()> {
        self.close_attempt(run, ending)?;
        self.recorder.attempt_ended(cause);
        Ok(())
    }

    /// Ends the running attempt of `run`: success, a retry from the latest checkpoint, or
    /// failure once `max_retries` retries are spent. Devices are freed in the same commit.
    fn close_attempt(&self, mut run: RunRecord, ending: Ending) -> Result<()> {
        let now = self.clock.now();
        let attempt = run.attempt;
        // A second out-of-memory (or one on whole GPUs) fails at once: a retry would die the same way.
        let mut may_retry = true;
        let ending = match ending {
            Ending::OutOfMemory(message) => match self.out_of_memory(&run) {
                OomDecision::NotGpu => Ending::Failed(message),
                OomDecision::Requeue {
                    request,
                    source,
                    reason,
                } => {
                    run.grants.clear();
                    run.request = request;
                    run.gpu_memory.source = Some(source);
                    run.gpu_memory.oom_requeued = true;
                    let why = format!("attempt {attempt} {reason}");
                    run.error = Some(message);
                    run.pending_reason = Some(why.clone());
                    run.state = RunState::Queued;
                    tracing::info!(run_id = %run.id, attempt, "out of GPU memory: requeued once");
                    let event =
                        state_event(now, Some(RunState::Running), RunState::Queued, Some(why));
                    let id = run.id;
                    return self.commit(&[WriteOp::PutRun(run), WriteOp::AppendEvent(id, event)]);
                }
                OomDecision::Fail { reason } => {
                    may_retry = false;
                    Ending::Failed(format!("attempt {attempt} {reason}: {message}"))
                }
            },
            other => other,
        };
        run.grants.clear();
        // A run of another engine is refused by every worker of this one: no retry (`engines`).
        may_retry &= self.engine.trains(&run.engine);
        let (to, reason) = match ending {
            Ending::Succeeded(summary) => {
                run.summary = Some(summary);
                run.finished_at = Some(now);
                run.error = None;
                (RunState::Succeeded, None)
            }
            Ending::Failed(message) if may_retry && run.failures < run.max_retries => {
                run.failures += 1;
                let why = format!(
                    "attempt {attempt} failed ({}); retry {} of {} from the latest checkpoint",
                    first_line(&message),
                    run.failures,
                    run.max_retries
                );
                run.error = Some(message);
                run.pending_reason = Some(why.clone());
                (RunState::Queued, Some(why))
            }
            Ending::Failed(message) | Ending::OutOfMemory(message) => {
                run.finished_at = Some(now);
                run.error = Some(message.clone());
                (RunState::Failed, Some(message))
            }
        };
        run.state = to;
        tracing::info!(run_id = %run.id, attempt, state = ?to, "attempt ended");
        let event = state_event(now, Some(RunState::Running), to, reason);
        let id = run.id;
        self.commit(&[WriteOp::PutRun(run), WriteOp::AppendEvent(id, event)])?;
        if to == RunState::Failed {
            self.end_dependents(&[id], RunState::Failed)?;
        }
        Ok(())
    }
}

impl Daemon {
    /// What to do with `run`, whose running attempt died of out-of-memory (`oom::decide`).
    fn out_of_memory(&self, run: &RunRecord) -> OomDecision {
        let largest_gpu_mb = self
            .settings
            .inventory
            .devices()
            .iter()
            .filter_map(|d| d.mem_mb)
            .max();
        oom::decide(&OomInput {
            request: &run.request,
            reserved_mb: run.grants.iter().filter_map(|g| g.mem_mb).max(),
            peak_mb: run.gpu_memory.peak_mb,
            largest_gpu_mb,
            already_requeued: run.gpu_memory.oom_requeued,
        })
    }
}

fn first_line(message: &str) -> &str {
    message.lines().next().unwrap_or(message)
}
