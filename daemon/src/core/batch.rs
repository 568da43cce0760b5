//! Attempts held by a cluster's batch scheduler (Slurm): the scheduler's `Placement::Cluster`
//! dispatches every ready run at once (the cluster queues and places them); the core records the cluster's job for each attempt, keeps
//! pending jobs alive past the heartbeat timeout, and sends an attempt the cluster requeued or
//! preempted back to the queue as a new attempt without counting a failure.

use super::daemon::state_event;
use super::{CoreError, Daemon, Result};
use crate::model::{BatchJob, RunId, RunState};
use crate::store::{LogStream, WriteOp};

impl Daemon {
    /// Records the batch job of `attempt` (its id on submission, its state and reason on every
    /// change); a log line tells the run's user the job id. `false` (and nothing stored) when
    /// the attempt is no longer the run's running attempt or nothing changed.
    pub fn record_batch_job(&self, id: RunId, attempt: u32, job: BatchJob) -> Result<bool> {
        let _guard = self.lock()?;
        let mut run = self.store.get_run(id)?.ok_or(CoreError::RunNotFound(id))?;
        if run.state != RunState::Running || run.attempt != attempt || job.attempt != attempt {
            return Ok(false);
        }
        let mut job = job;
        if let Some(old) = &run.batch_job
            && old.id == job.id
            && old.attempt == attempt
        {
            if job.token_sha256.is_none() {
                job.token_sha256 = old.token_sha256.clone();
            }
            if **old == job {
                return Ok(false);
            }
        }
        let new_job = run
            .batch_job
            .as_ref()
            .is_none_or(|old| old.id != job.id || old.attempt != attempt);
        let line = format!("attempt {attempt}: slurm job {}", job.id);
        run.batch_job = Some(Box::new(job));
        self.commit(&[WriteOp::PutRun(run)])?;
        if new_job {
            self.append_logs(&[(id, LogStream::Daemon, line)])?;
        }
        Ok(true)
    }

    /// A sign of life of an attempt seen from outside its worker (its job pends or starts).
    pub fn mark_alive(&self, id: RunId, attempt: u32) {
        self.saw(id, attempt);
    }

    /// The cluster requeued or preempted the job of `attempt`: the run goes back to the queue
    /// (not a failure) and resumes from its latest checkpoint as a new attempt. `false` when
    /// the attempt is no longer the run's running attempt.
    pub fn requeue_attempt(&self, id: RunId, attempt: u32, why: &str) -> Result<bool> {
        let _guard = self.lock()?;
        let Some(mut run) = self.store.get_run(id)? else {
            return Ok(false);
        };
        if run.state != RunState::Running || run.attempt != attempt {
            return Ok(false);
        }
        if let Ok(mut seen) = self.last_seen.lock() {
            seen.remove(&(id, attempt));
        }
        let why = format!("{why}; attempt {attempt} resumes from its latest checkpoint");
        run.state = RunState::Queued;
        run.grants.clear();
        run.pending_reason = Some(why.clone());
        let now = self.clock.now();
        let event = state_event(now, Some(RunState::Running), RunState::Queued, Some(why));
        self.commit(&[WriteOp::AppendEvent(id, event), WriteOp::PutRun(run)])?;
        tracing::info!(run_id = %id, attempt, "attempt requeued by the cluster");
        self.schedule_locked()?;
        Ok(true)
    }
}
