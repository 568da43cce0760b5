//! The worker's side of one attempt as the core sees it: it registers (and learns what to
//! resume from), heartbeats and sends its log lines. Every call names (run, attempt) and is
//! fenced: only the run's current running attempt writes. Its epochs are `ingest`, its
//! checkpoints `checkpoints`, and how it ends `endings`.

use super::{CoreError, Daemon, Result};
use crate::model::{RunId, RunRecord, RunState};
use crate::store::{CheckpointMeta, Event, EventKind, LogStream, RunBrief, WriteOp};

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
}
