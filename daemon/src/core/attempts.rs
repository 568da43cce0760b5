//! The life of one attempt as the core sees it: a worker registers, heartbeats, reports epochs,
//! logs and checkpoints, and finishes; its process exits; a lost or failed attempt is retried
//! from the latest checkpoint or fails the run (recovery after a restart is in `recovery`).
//! Every call names (run, attempt) and is fenced: only the run's current running attempt writes.

use super::daemon::state_event;
use super::oom::{self, OomDecision, OomInput};
use super::recorder::ExitCause;
use super::{CoreError, Daemon, Result};
use crate::model::{RunId, RunRecord, RunState, StoredEpoch};
use crate::store::{CheckpointMeta, Event, EventKind, LogStream, RunBrief, WriteOp};
use cauda_plugins::train::RunSummary;

/// Most bytes of a worker's stderr quoted in a failed run's error.
pub const STDERR_TAIL_BYTES: usize = 2048;

/// What a registering worker receives.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerStart {
    pub name: String,
    pub config_json: String,
    pub config_hash: String,
    /// The checkpoint to resume from (the run's latest, from any attempt).
    pub resume: Option<CheckpointMeta>,
    /// The last epoch whose metrics are stored (0 when none).
    pub epochs_done: u32,
}

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
    /// The run if `attempt` is its current, running attempt: NOT_FOUND for an unknown run,
    /// `StaleAttempt` for any other attempt or a run that is no longer running.
    pub(super) fn fence(&self, id: RunId, attempt: u32) -> Result<RunRecord> {
        let run = self.store.get_run(id)?.ok_or(CoreError::RunNotFound(id))?;
        if run.attempt != attempt || run.state != RunState::Running {
            return Err(CoreError::StaleAttempt {
                run: id,
                attempt,
                current: run.attempt,
                state: run.state,
            });
        }
        Ok(run)
    }

    /// `fence` reading only the run's brief: for the calls that need no config (heartbeats,
    /// reports, logs, checkpoints), so they do not decode a config of several KB each time.
    pub(super) fn fence_brief(&self, id: RunId, attempt: u32) -> Result<RunBrief> {
        let run = self
            .store
            .get_run_brief(id)?
            .ok_or(CoreError::RunNotFound(id))?;
        if run.attempt != attempt || run.state != RunState::Running {
            return Err(CoreError::StaleAttempt {
                run: id,
                attempt,
                current: run.attempt,
                state: run.state,
            });
        }
        Ok(run)
    }

    /// Records a sign of life of an attempt.
    pub(super) fn saw(&self, id: RunId, attempt: u32) {
        let now = self.clock.now();
        if let Ok(mut seen) = self.last_seen.lock() {
            seen.insert((id, attempt), now);
        }
    }

    /// A worker's first call: the run's config and where to resume.
    pub fn register_worker(
        &self,
        id: RunId,
        attempt: u32,
        pid: u32,
        host: &str,
    ) -> Result<WorkerStart> {
        let run = self.fence(id, attempt)?;
        self.saw(id, attempt);
        let resume = self.resume_meta(&run)?;
        let epochs_done = self.store.last_epoch(id)?;
        let line = match &resume {
            Some(c) if c.run != id => format!(
                "attempt {attempt}: worker pid {pid} on {host} registered; starting from the final checkpoint of its stage-1 run {} (epoch {})",
                c.run, c.epoch
            ),
            Some(c) => format!(
                "attempt {attempt}: worker pid {pid} on {host} registered; resuming after epoch {} (checkpoint of attempt {})",
                c.epoch, c.attempt
            ),
            None => format!("attempt {attempt}: worker pid {pid} on {host} registered"),
        };
        self.append_logs(&[(id, LogStream::Daemon, line)])?;
        Ok(WorkerStart {
            name: run.name,
            config_json: run.config_json,
            config_hash: run.config_hash,
            resume,
            epochs_done,
        })
    }

    /// A heartbeat: `true` tells the worker to stop (its run was cancelled or moved on).
    pub fn heartbeat(&self, id: RunId, attempt: u32) -> Result<bool> {
        match self.fence_brief(id, attempt) {
            Ok(_) => {
                self.saw(id, attempt);
                Ok(false)
            }
            Err(CoreError::StaleAttempt { .. }) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Appends log lines (each cut to `MAX_LOG_LINE` bytes) to their runs' logs, in one commit.
    pub fn append_logs(&self, lines: &[(RunId, LogStream, String)]) -> Result<()> {
        let now = self.clock.now();
        let ops: Vec<WriteOp> = lines
            .iter()
            .map(|(id, stream, line)| {
                WriteOp::AppendEvent(
                    *id,
                    Event {
                        at: now,
                        kind: EventKind::Log {
                            stream: *stream,
                            line: line.clone(),
                        },
                    }
                    .bounded(),
                )
            })
            .collect();
        if !ops.is_empty() {
            self.commit(&ops)?;
        }
        Ok(())
    }

    /// Log lines a worker sent itself (fenced, unlike the lines its process printed).
    pub fn report_logs(
        &self,
        id: RunId,
        attempt: u32,
        lines: &[(LogStream, String)],
    ) -> Result<()> {
        self.fence_brief(id, attempt)?;
        self.saw(id, attempt);
        let lines: Vec<_> = lines.iter().map(|(s, l)| (id, *s, l.clone())).collect();
        self.append_logs(&lines)
    }

    /// Stores an uploaded checkpoint after checking its digest; `true` when the same checkpoint
    /// (epoch and digest) was already stored. The best flag follows the stored metrics: the
    /// checkpoint is best when its epoch has the highest evaluated top-1 so far.
    pub fn store_checkpoint(
        &self,
        id: RunId,
        attempt: u32,
        epoch: u32,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<bool> {
        self.fence_brief(id, attempt)?;
        self.saw(id, attempt);
        let digest = crate::store::sha256_hex(bytes);
        if !sha256.eq_ignore_ascii_case(&digest) {
            return Err(CoreError::CorruptUpload {
                run: id,
                reason: format!(
                    "checkpoint of epoch {epoch}: sha256 {digest} of the {} bytes received, {sha256} announced",
                    bytes.len()
                ),
            });
        }
        if self
            .store
            .list_checkpoints(id)?
            .iter()
            .any(|m| m.epoch == epoch && m.sha256 == digest)
        {
            return Ok(true);
        }
        let is_best = self.is_best_epoch(id, epoch)?;
        self.store
            .put_checkpoint(id, attempt, epoch, bytes, is_best)?;
        Ok(false)
    }

    /// Whether `epoch` has the highest evaluated test top-1 of the run's stored metrics.
    fn is_best_epoch(&self, id: RunId, epoch: u32) -> Result<bool> {
        let mut mine = None;
        let mut others = Vec::new();
        for point in self.store.metrics(id)? {
            let stored = StoredEpoch::decode(&point.json).map_err(|e| {
                CoreError::Internal(format!(
                    "run {id} epoch {}: stored metrics unreadable: {e}",
                    point.epoch
                ))
            })?;
            let top1 = stored.record.eval.map(|e| e.test_top1);
            if point.epoch == epoch {
                mine = top1;
            } else {
                others.extend(top1);
            }
        }
        Ok(mine.is_some_and(|mine| others.iter().all(|&other| other <= mine)))
    }

    /// The checkpoint a registered worker resumes from, with its bytes.
    pub fn resume_checkpoint(
        &self,
        id: RunId,
        attempt: u32,
    ) -> Result<Option<(CheckpointMeta, Vec<u8>)>> {
        let run = self.fence(id, attempt)?;
        match self.resume_meta(&run)? {
            Some(meta) => Ok(self.store.checkpoint(meta.run, meta.epoch)?),
            None => Ok(None),
        }
    }

    /// Where an attempt starts: the run's latest checkpoint, else (a stage-2 run) the final
    /// checkpoint of the run it depends on, else nothing.
    fn resume_meta(&self, run: &RunRecord) -> Result<Option<CheckpointMeta>> {
        if let Some(own) = self.store.list_checkpoints(run.id)?.into_iter().last() {
            return Ok(Some(own));
        }
        match run.depends_on {
            Some(dep) => Ok(self.store.list_checkpoints(dep)?.into_iter().last()),
            None => Ok(None),
        }
    }

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
        may_retry &= super::engines::is_current_engine(&run.engine);
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
            self.end_dependents(id, RunState::Failed)?;
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
