//! The scheduling pass: the policy decides (`scheduler::schedule`, local packing or a cluster's
//! placement), the store records every start and pending reason, and only once the starts are
//! durable does the executor act.

use std::collections::BTreeMap;

use super::daemon::Pending;
use super::daemon::state_event;
use super::{CoreError, Daemon, Result};
use crate::model::{RunId, RunRecord, RunState};
use crate::scheduler::{PendingRun, SchedulerInput, Usage, schedule};
use crate::store::{Event, EventKind, RunBrief, RunFilter, WriteOp};

impl Daemon {
    /// Asks the policy what to start now; records starts and pending reasons, then launches.
    pub fn schedule(&self) -> Result<()> {
        let _guard = self.lock()?;
        self.schedule_locked()
    }

    /// A scheduling pass under the write lock. It reads the runs' briefs (not their configs),
    /// commits every start, waits for ONE flush covering them all, then launches. The pending
    /// reasons it gives the others replace the previous pass's in memory (`Daemon::reasons`):
    /// derived state, recomputed by every pass, never written to the store.
    pub(super) fn schedule_locked(&self) -> Result<()> {
        self.schedule_owed
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let now = self.clock.now();
        let running = self.store.list_run_briefs(&RunFilter {
            state: Some(RunState::Running),
            ..RunFilter::default()
        })?;
        let queued = self.store.list_run_briefs(&RunFilter {
            state: Some(RunState::Queued),
            ..RunFilter::default()
        })?;
        let mut input = SchedulerInput {
            now,
            inventory: self.settings.inventory.clone(),
            config: self.settings.scheduler,
            gpu_quota: self.gpu_quota(),
            ..SchedulerInput::default()
        };
        for run in &running {
            input.allocations.insert(run.id, run.grants.clone());
            input
                .usage
                .entry(run.user.clone())
                .or_default()
                .add(Usage::of_grants(&run.grants));
        }
        for run in &queued {
            let ready = match run.depends_on {
                // Its brief holds the state: no config decoded per dependent run.
                Some(dep) => self
                    .store
                    .get_run_brief(dep)?
                    .is_some_and(|d| d.state == RunState::Succeeded),
                None => true,
            };
            input.pending.push(PendingRun {
                id: run.id,
                user: run.user.clone(),
                priority: run.priority,
                submitted_at: run.submitted_at,
                request: run.request.clone(),
                ready,
                depends_on: run.depends_on,
            });
        }
        let decision = schedule(self.executor.placement(), &input);
        let mut by_id: BTreeMap<RunId, RunBrief> = queued.into_iter().map(|r| (r.id, r)).collect();
        let mut started: Vec<(RunRecord, Pending)> = Vec::new();
        // A failed start stops the pass, but the starts applied before it are still launched.
        let mut failed = None;
        for (id, grants) in decision.starts {
            if by_id.remove(&id).is_none() {
                continue;
            }
            match self.apply_start(id, grants, now) {
                Ok(Some(start)) => started.push(start),
                Ok(None) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        // One flush for every start (the last ticket covers the earlier ones), then launch.
        if let Some(last) = started.last().map(|(_, p)| p.ticket) {
            self.store.wait_durable(last)?;
        }
        for (run, pending) in started {
            self.settle(pending)?;
            tracing::info!(run_id = %run.id, attempt = run.attempt, "run started");
            if run.attempt == 1 {
                let waited = now.saturating_sub(run.submitted_at);
                self.recorder
                    .dispatched(std::time::Duration::from_millis(waited));
            }
            self.saw(run.id, run.attempt);
            self.executor.launch(&run);
        }
        if let Some(e) = failed {
            return Err(e);
        }
        // Why the others wait: derived, so kept in memory (see `Daemon::reasons`). Stored, it
        // rewrote every queued run whose "N runs ahead" changed, record, brief and indexes,
        // on every pass: 32M of a 200-submission burst's 85M instructions under the lock.
        let reasons = decision
            .reasons
            .into_iter()
            .filter(|(id, _)| by_id.contains_key(id))
            .collect();
        *self
            .reasons
            .lock()
            .map_err(|_| CoreError::Internal("the reasons lock was poisoned".into()))? = reasons;
        Ok(())
    }

    /// Applies the start of queued run `id` on `grants` (state, attempt + 1, its `launch` and
    /// `running` events); `None` when the run is gone.
    fn apply_start(
        &self,
        id: RunId,
        grants: Vec<crate::model::Grant>,
        now: crate::model::Millis,
    ) -> Result<Option<(RunRecord, Pending)>> {
        let Some(mut run) = self.store.get_run(id)? else {
            return Ok(None);
        };
        run.state = RunState::Running;
        run.attempt += 1;
        run.started_at = Some(now);
        run.pending_reason = None;
        run.grants = grants;
        let devices = run.grants.iter().map(|g| g.device.clone()).collect();
        let to_running = state_event(now, Some(RunState::Queued), RunState::Running, None);
        let launch = Event {
            at: now,
            kind: EventKind::Launch {
                attempt: run.attempt,
                devices,
                grants: run.grants.clone(),
            },
        };
        let pending = self.commit_applied(&[
            WriteOp::PutRun(run.clone()),
            WriteOp::AppendEvent(id, launch),
            WriteOp::AppendEvent(id, to_running),
        ])?;
        Ok(Some((run, pending)))
    }
}
