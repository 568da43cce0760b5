//! Submission: parse and resolve a spec with the engine's own validation (every grid point,
//! and its balanced references when `[report]` asks), plan the runs it needs (`plan`), then
//! store the experiment and its new runs in one commit and schedule.

use std::collections::HashMap;

use cauda_plugins::spec::{ExperimentSpec, expand_sweep};

use super::daemon::state_event;
use super::plan::{PlanRef, PointInput, plan};
use super::{CoreError, Daemon, Result, Submitted};
use crate::model::{ExperimentRecord, PointRecord, ResourceRequest, RunId, RunRecord, RunState};
use crate::store::{RunFilter, WriteOp};

impl Daemon {
    /// Parses a spec (bounded in size), expands its grid and resolves every point with the
    /// engine's own validation, with its balanced references when `[report]` asks for them.
    fn resolve(&self, origin: &str, spec_text: &str) -> Result<(ExperimentSpec, Vec<PointInput>)> {
        let spec = ExperimentSpec::parse(origin, spec_text)?;
        let presets = self
            .presets
            .read()
            .map_err(|_| CoreError::Internal("the presets lock was poisoned".into()))?;
        let mut points = Vec::new();
        for point in expand_sweep(origin, &spec)? {
            let run = point.resolve(origin, &presets, &self.registry)?;
            let references = if spec.report.relative_accuracy && !point.data.balanced_variant {
                let (ce, own) = balanced_references(&point);
                Some((
                    ce.resolve(origin, &presets, &self.registry)?,
                    own.resolve(origin, &presets, &self.registry)?,
                ))
            } else {
                None
            };
            points.push(PointInput {
                name: run.name.clone(),
                run,
                references,
            });
        }
        drop(presets);
        Ok((spec, points))
    }

    /// Validates a spec as `submit` does and returns its run names, storing nothing.
    pub fn validate(&self, origin: &str, spec_text: &str) -> Result<Vec<String>> {
        let (_, points) = self.resolve(origin, spec_text)?;
        Ok(points.into_iter().map(|p| p.name).collect())
    }

    /// Validates `spec_text` (parse, expand the grid, resolve every run as the engine would),
    /// plans the runs it needs (stage-1 runs of decoupled methods, balanced references, reuse
    /// of identical runs), then stores the experiment and its new queued runs in one commit and
    /// schedules. Nothing is stored when any run is invalid. `priority` overrides the spec's
    /// `[resources] priority`.
    pub fn submit(
        &self,
        origin: &str,
        spec_text: &str,
        user: &str,
        priority: Option<i32>,
    ) -> Result<Submitted> {
        let (spec, points) = self.resolve(origin, spec_text)?;
        let now = self.clock.now();
        let _guard = self.lock()?;
        let plan = {
            let mut reusable = self
                .reusable
                .lock()
                .map_err(|_| CoreError::Internal("the reuse index lock was poisoned".into()))?;
            if reusable.is_none() {
                *reusable = Some(self.reusable_runs()?);
            }
            plan(points, reusable.as_ref().unwrap_or(&HashMap::new()))
        };
        let experiment = self.store.next_experiment_id()?;
        let mut ids = Vec::with_capacity(plan.new.len());
        for _ in &plan.new {
            ids.push(self.store.next_run_id()?);
        }
        let id_of = |r: PlanRef| match r {
            PlanRef::Stored(id) => id,
            PlanRef::New(i) => ids[i],
        };
        let mut ops = Vec::with_capacity(1 + 2 * plan.new.len());
        let mut runs = Vec::with_capacity(plan.new.len());
        for (new, &id) in plan.new.iter().zip(&ids) {
            let request = ResourceRequest {
                gpus: u32::try_from(new.run.resources.gpus).unwrap_or(u32::MAX),
                gpu_share: new.run.resources.gpu_share,
                gpu_mem_mb: None,
            };
            let record = RunRecord {
                id,
                experiment,
                name: new.name.clone(),
                user: user.to_string(),
                config_json: new.run.to_json(),
                config_hash: new.config_hash.clone(),
                state: RunState::Queued,
                priority: priority.unwrap_or(new.run.resources.priority),
                submitted_at: now,
                started_at: None,
                finished_at: None,
                attempt: 0,
                max_retries: self.settings.max_retries,
                failures: 0,
                request,
                grants: Vec::new(),
                pending_reason: None,
                error: None,
                depends_on: new.depends_on.map(id_of),
                summary_json: None,
                batch_job: None,
            };
            runs.push((id, record.name.clone()));
            ops.push(WriteOp::PutRun(record));
            ops.push(WriteOp::AppendEvent(
                id,
                state_event(now, None, RunState::Queued, None),
            ));
        }
        let mut reused = Vec::with_capacity(plan.reused.len());
        for &id in &plan.reused {
            let run = self.store.get_run(id)?.ok_or(CoreError::RunNotFound(id))?;
            reused.push((id, run.name));
        }
        let points = plan
            .points
            .iter()
            .map(|p| PointRecord {
                name: p.name.clone(),
                run: id_of(p.run),
                references: p.references.map(|(a, b)| (id_of(a), id_of(b))),
            })
            .collect();
        ops.insert(
            0,
            WriteOp::PutExperiment(ExperimentRecord {
                id: experiment,
                name: spec.name.clone(),
                user: user.to_string(),
                spec_text: spec_text.to_string(),
                submitted_at: now,
                runs: ids.iter().chain(&plan.reused).copied().collect(),
                points,
            }),
        );
        self.commit(&ops)?;
        tracing::info!(experiment = %experiment, runs = runs.len(), reused = reused.len(), "experiment submitted");
        self.schedule_locked()?;
        Ok(Submitted {
            experiment,
            runs,
            reused,
        })
    }

    /// Stored runs a new experiment may reuse, by config hash: queued, running or succeeded
    /// (the latest of each hash); read once, then `commit` keeps the index current.
    fn reusable_runs(&self) -> Result<HashMap<String, RunId>> {
        let mut out = HashMap::new();
        for state in [RunState::Queued, RunState::Running, RunState::Succeeded] {
            for run in self.store.list_runs(&RunFilter {
                state: Some(state),
                ..RunFilter::default()
            })? {
                out.insert(run.config_hash, run.id);
            }
        }
        Ok(out)
    }
}

/// The balanced references of a grid point (Zhang et al. survey, Sec. 4.1): plain cross-entropy
/// (no re-balancing, augmentation mixer or module improvement) and the method itself, both on
/// the balanced variant of the point's training set (same size, equal per class).
fn balanced_references(point: &ExperimentSpec) -> (ExperimentSpec, ExperimentSpec) {
    let mut own = point.clone();
    own.data.balanced_variant = true;
    let mut ce = own.clone();
    ce.method = "ce".into();
    ce.rebalance = Default::default();
    ce.augment.batch = None;
    ce.module = Default::default();
    (ce, own)
}
