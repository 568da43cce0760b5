//! Deleting finished runs, or a whole experiment, on behalf of a user: the record, events,
//! metrics and checkpoints go from the store. The rules, checked before anything is written
//! (all or nothing): only the owner or an admin deletes; only finished runs (cancel first);
//! never a run another run still needs (a stage 2 built on it) or another experiment reuses
//! (it is one of its grid points or references) — the refusal names them. A run deleted alone
//! leaves its own experiment without that point (an experiment left with no runs goes too).
//! Experiment records are rewritten before runs are removed, so a crash in between leaves at
//! worst an unlisted run, never an experiment pointing at nothing.

use std::collections::HashSet;

use super::cancel::CancelTarget;
use super::{CoreError, Daemon, Result};
use crate::model::{Actor, ExperimentId, RunId, RunRecord};
use crate::store::RunFilter;

/// What a deletion removed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteOutcome {
    pub runs: Vec<RunId>,
    pub experiments: Vec<ExperimentId>,
}

impl Daemon {
    /// Deletes one finished run or every run of an experiment (and its record) for `actor`.
    pub fn delete_as(&self, actor: &Actor, target: CancelTarget) -> Result<DeleteOutcome> {
        let _guard = self.lock()?;
        let (runs, whole) = match target {
            CancelTarget::Run(id) => {
                let run = self.store.get_run(id)?.ok_or(CoreError::RunNotFound(id))?;
                (vec![run], None)
            }
            CancelTarget::Experiment(id) => {
                let experiment = self
                    .store
                    .get_experiment(id)?
                    .ok_or(CoreError::ExperimentNotFound(id))?;
                if !actor.may_act_for(&experiment.user) {
                    return Err(CoreError::ExperimentNotOwned {
                        experiment: id,
                        owner: experiment.user,
                        actor: actor.name.clone(),
                    });
                }
                let own = self.store.list_runs(&RunFilter {
                    experiment: Some(id),
                    ..RunFilter::default()
                })?;
                (own, Some(id))
            }
        };
        self.check_deletable(actor, &runs, whole)?;
        let doomed: HashSet<RunId> = runs.iter().map(|r| r.id).collect();
        let mut outcome = DeleteOutcome::default();
        match whole {
            Some(id) => {
                if self.store.delete_experiment(id)? {
                    outcome.experiments.push(id);
                }
            }
            None => {
                for run in &runs {
                    if let Some(gone) = self.forget_point(run)? {
                        outcome.experiments.push(gone);
                    }
                }
            }
        }
        for run in &runs {
            if self.store.delete_run(run.id)? {
                outcome.runs.push(run.id);
            }
        }
        // The reuse index may name a deleted run: rebuild it from the store on next use.
        match self.reusable.lock() {
            Ok(mut index) => *index = None,
            Err(_) => {
                return Err(CoreError::Internal(
                    "the reuse index lock was poisoned".into(),
                ));
            }
        }
        tracing::info!(actor = %actor.name, runs = ?doomed, experiments = ?outcome.experiments, "deleted");
        Ok(outcome)
    }

    /// Refuses the deletion unless every run is the actor's (or the actor is an admin), is
    /// finished, and is needed by no run or experiment that stays.
    fn check_deletable(
        &self,
        actor: &Actor,
        runs: &[RunRecord],
        whole: Option<ExperimentId>,
    ) -> Result<()> {
        if let Some(run) = runs.iter().find(|r| !actor.may_act_for(&r.user)) {
            return Err(CoreError::NotOwner {
                run: run.id,
                owner: run.user.clone(),
                actor: actor.name.clone(),
            });
        }
        if let Some(run) = runs.iter().find(|r| !r.state.is_terminal()) {
            return Err(CoreError::NotDeletable {
                run: run.id,
                reason: format!(
                    "it is {:?}; only finished runs are deleted (cancel it first: `cauda cancel {}`)",
                    run.state, run.id
                ),
            });
        }
        let doomed: HashSet<RunId> = runs.iter().map(|r| r.id).collect();
        let dependents: Vec<RunRecord> = self
            .store
            .list_runs(&RunFilter::default())?
            .into_iter()
            .filter(|r| !doomed.contains(&r.id))
            .filter(|r| r.depends_on.is_some_and(|p| doomed.contains(&p)))
            .collect();
        if let Some(child) = dependents.first() {
            let parent = child.depends_on.unwrap_or(child.id);
            return Err(CoreError::NotDeletable {
                run: parent,
                reason: format!(
                    "{} depends on it (a second stage); delete {} first",
                    names(&dependents),
                    if dependents.len() == 1 {
                        "that"
                    } else {
                        "those"
                    }
                ),
            });
        }
        let by_id = |id: RunId| runs.iter().find(|r| r.id == id);
        for experiment in self.store.list_experiments(None, None)? {
            if Some(experiment.id) == whole {
                continue;
            }
            let reused = experiment
                .runs
                .iter()
                .filter_map(|id| by_id(*id))
                .find(|r| r.experiment != experiment.id);
            if let Some(run) = reused {
                return Err(CoreError::NotDeletable {
                    run: run.id,
                    reason: format!(
                        "experiment {} reuses it; delete that experiment first",
                        experiment.id
                    ),
                });
            }
        }
        Ok(())
    }

    /// Drops `run` from its own experiment's record (its grid point, and any point's reference
    /// to it); deletes the record when no run is left. Returns the experiment if deleted.
    fn forget_point(&self, run: &RunRecord) -> Result<Option<ExperimentId>> {
        let Some(mut experiment) = self.store.get_experiment(run.experiment)? else {
            return Ok(None);
        };
        experiment.runs.retain(|r| *r != run.id);
        experiment.points.retain(|p| p.run != run.id);
        for point in &mut experiment.points {
            if point
                .references
                .is_some_and(|(a, b)| a == run.id || b == run.id)
            {
                point.references = None;
            }
        }
        if experiment.runs.is_empty() {
            self.store.delete_experiment(experiment.id)?;
            return Ok(Some(experiment.id));
        }
        self.store.put_experiment(&experiment)?;
        Ok(None)
    }
}

/// "r-4, r-7".
fn names(runs: &[RunRecord]) -> String {
    runs.iter()
        .map(|r| r.id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
