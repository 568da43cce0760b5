//! Cancellation: one run or every unfinished run of an experiment, refused whole when the actor
//! may not cancel one of them; devices are free at once and the queue is scheduled again.

use super::daemon::state_event;
use super::recorder::ExitCause;
use super::{CoreError, Daemon, Result};
use crate::model::{Actor, ExperimentId, RunId, RunState};
use crate::store::{RunFilter, WriteOp};

/// Which runs a cancellation targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelTarget {
    Run(RunId),
    Experiment(ExperimentId),
}

/// What a cancellation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CancelOutcome {
    pub cancelled: Vec<RunId>,
    pub already_finished: Vec<RunId>,
}

impl Daemon {
    /// Cancels one run or every unfinished run of an experiment; finished runs are left as
    /// they are. Devices are free at once; then the queue is scheduled again.
    pub fn cancel(&self, target: CancelTarget, reason: Option<String>) -> Result<CancelOutcome> {
        self.cancel_as(&Actor::unchecked(), target, reason)
    }

    /// `cancel` on behalf of `actor`: every run it would cancel must be the actor's own unless
    /// the actor is an admin (`NotOwner` otherwise, and nothing is cancelled).
    pub fn cancel_as(
        &self,
        actor: &Actor,
        target: CancelTarget,
        reason: Option<String>,
    ) -> Result<CancelOutcome> {
        let _guard = self.lock()?;
        let runs = match target {
            CancelTarget::Run(id) => {
                vec![self.store.get_run(id)?.ok_or(CoreError::RunNotFound(id))?]
            }
            CancelTarget::Experiment(id) => {
                self.store
                    .get_experiment(id)?
                    .ok_or(CoreError::ExperimentNotFound(id))?;
                self.store.list_runs(&RunFilter {
                    experiment: Some(id),
                    ..RunFilter::default()
                })?
            }
        };
        if let Some(run) = runs.iter().find(|r| !actor.may_act_for(&r.user)) {
            return Err(CoreError::NotOwner {
                run: run.id,
                owner: run.user.clone(),
                actor: actor.name.clone(),
            });
        }
        let now = self.clock.now();
        let mut outcome = CancelOutcome::default();
        let mut ops = Vec::new();
        let mut stopped = Vec::new();
        for mut run in runs {
            if run.state.is_terminal() {
                outcome.already_finished.push(run.id);
                continue;
            }
            let from = run.state;
            run.state = RunState::Cancelled;
            run.finished_at = Some(now);
            run.pending_reason = None;
            run.grants.clear();
            outcome.cancelled.push(run.id);
            ops.push(WriteOp::AppendEvent(
                run.id,
                state_event(now, Some(from), RunState::Cancelled, reason.clone()),
            ));
            if from == RunState::Running {
                stopped.push(run.clone());
            }
            ops.push(WriteOp::PutRun(run));
        }
        if !ops.is_empty() {
            self.commit(&ops)?;
        }
        for run in &stopped {
            self.executor.cancel(run);
            self.recorder.attempt_ended(ExitCause::Cancelled);
        }
        self.end_dependents(&outcome.cancelled, RunState::Cancelled)?;
        tracing::info!(cancelled = outcome.cancelled.len(), "runs cancelled");
        self.schedule_locked()?;
        Ok(outcome)
    }
}
