//! What the daemon does on its own clock: at start-up it requeues the runs the previous daemon
//! left running (they resume from their latest checkpoint as a new attempt) and fails the queued
//! runs of another engine (`engines`); every tick it fails (or retries) attempts that stopped
//! showing signs of life, then schedules again.

use super::daemon::state_event;
use super::endings::Ending;
use super::recorder::ExitCause;
use super::{Daemon, Result};
use crate::model::{Millis, RunId, RunState};
use crate::store::{RunFilter, WriteOp};

impl Daemon {
    /// At start-up: every run left running by the previous daemon goes back to the queue
    /// (keeping its place: priority, then submission time) and resumes from its latest
    /// checkpoint as a new attempt. Queued runs resolved for another engine fail with the reason
    /// (`engines`). Finished runs are not touched. Returns the requeued runs.
    pub fn recover(&self) -> Result<Vec<RunId>> {
        self.recover_keeping(&std::collections::HashSet::new())
    }

    /// `recover`, except the attempts in `keep` stay running: a cluster (Slurm) still holds
    /// their jobs and their workers reconnect (their sign-of-life clock starts now).
    pub fn recover_keeping(
        &self,
        keep: &std::collections::HashSet<(RunId, u32)>,
    ) -> Result<Vec<RunId>> {
        let _guard = self.lock()?;
        let running = self.store.list_runs(&RunFilter {
            state: Some(RunState::Running),
            ..RunFilter::default()
        })?;
        let now = self.clock.now();
        let mut ops = Vec::new();
        let mut ids = Vec::new();
        for mut run in running {
            if keep.contains(&(run.id, run.attempt)) {
                self.saw(run.id, run.attempt);
                continue;
            }
            let why = format!(
                "the daemon restarted during attempt {}; resumes from its latest checkpoint",
                run.attempt
            );
            run.state = RunState::Queued;
            run.grants.clear();
            run.pending_reason = Some(why.clone());
            ids.push(run.id);
            ops.push(WriteOp::AppendEvent(
                run.id,
                state_event(now, Some(RunState::Running), RunState::Queued, Some(why)),
            ));
            ops.push(WriteOp::PutRun(run));
        }
        if !ops.is_empty() {
            self.commit(&ops)?;
            tracing::info!(runs = ids.len(), "requeued the runs of the previous daemon");
        }
        let failed = self.fail_other_engines()?;
        ids.retain(|id| !failed.contains(id));
        self.schedule_locked()?;
        Ok(ids)
    }

    /// Fails (or retries) attempts that showed no sign of life for `timeout_ms`, asks the
    /// executor to stop their processes, then schedules (holds and backfill depend on time).
    pub fn tick(&self, timeout_ms: Millis) -> Result<()> {
        let _guard = self.lock()?;
        let now = self.clock.now();
        let running = self.store.list_runs(&RunFilter {
            state: Some(RunState::Running),
            ..RunFilter::default()
        })?;
        for run in running {
            let key = (run.id, run.attempt);
            let last = self
                .last_seen
                .lock()
                .ok()
                .and_then(|seen| seen.get(&key).copied());
            let last = match last {
                Some(t) => t,
                None => {
                    // A run launched by an earlier daemon process: its clock starts now.
                    self.saw(run.id, run.attempt);
                    continue;
                }
            };
            if now.saturating_sub(last) > timeout_ms {
                let message = format!(
                    "worker of attempt {} sent no heartbeat for {} s",
                    run.attempt,
                    now.saturating_sub(last) / 1000
                );
                self.executor.cancel(&run);
                if let Ok(mut seen) = self.last_seen.lock() {
                    seen.remove(&key);
                }
                self.end_attempt(run, Ending::Failed(message), ExitCause::LostHeartbeat)?;
            }
        }
        self.schedule_locked()
    }
}
