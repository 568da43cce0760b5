//! Submission: parse and resolve a spec with the engine's own validation (every grid point,
//! and its balanced references when `[report]` asks), plan the runs it needs (`plan`), then
//! store the experiment and its new runs in one commit and schedule. The ids, the commit and the
//! scheduling pass are applied under the write lock; the flush that makes them durable comes
//! after it is released, shared with every submission (and report) waiting at the same time,
//! and the caller is answered only once it returned (group commit).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use cauda_plugins::spec::{ExperimentSpec, ResolvedRun, expand_sweep};

use crate::command::is_command_spec;
use crate::run_config::RunConfig;
use cauda_plugins::train::Backend;

use super::daemon::state_event;
use super::plan::{PlanRef, PointInput, plan};
use super::{CoreError, Daemon, Result, Submitted};
use crate::model::{
    ExperimentRecord, GpuMemoryNote, PointRecord, ResourceRequest, RunId, RunRecord, RunState,
};
use crate::store::{RunFilter, WriteOp};

impl Daemon {
    /// Parses a spec (bounded in size), expands its grid and resolves every point with the
    /// engine's own validation, with its balanced references when `[report]` asks for them.
    /// Returns the experiment's name and its points, each run with its config hash (computed
    /// here, before `submit` takes the write lock). A spec with `[command]` describes command
    /// runs (`crate::command`), refused unless `[commands]` enables them.
    fn resolve(&self, origin: &str, spec_text: &str) -> Result<(String, Vec<PointInput>)> {
        if is_command_spec(spec_text) {
            return self.resolve_commands(origin, spec_text);
        }
        let spec = ExperimentSpec::parse(origin, spec_text)?;
        let presets = self
            .presets
            .read()
            .map_err(|_| CoreError::Internal("the presets lock was poisoned".into()))?;
        let mut points = Vec::new();
        for point in expand_sweep(origin, &spec)? {
            let mut run = point
                .spec
                .resolve(origin, &presets, self.engine.registry())?;
            self.settle_backend(spec_text, &mut run)?;
            self.check_paths(&run)?;
            self.pin_split_file(&mut run)?;
            self.pin_pretrained(&mut run)?;
            let references = if spec.report.relative_accuracy && !point.spec.data.balanced_variant {
                let (ce, own) = balanced_references(&point.spec);
                let (mut ce, mut own) = (
                    ce.resolve(origin, &presets, self.engine.registry())?,
                    own.resolve(origin, &presets, self.engine.registry())?,
                );
                self.settle_backend(spec_text, &mut ce)?;
                self.settle_backend(spec_text, &mut own)?;
                // The same split file and pretrained weights as the run's, pinned once.
                for reference in [&mut ce, &mut own] {
                    reference
                        .data
                        .split_file_sha256
                        .clone_from(&run.data.split_file_sha256);
                    reference
                        .model
                        .pretrained_sha256
                        .clone_from(&run.model.pretrained_sha256);
                }
                Some((RunConfig::from(ce).into(), RunConfig::from(own).into()))
            } else {
                None
            };
            points.push(PointInput {
                name: run.name.clone(),
                coordinates: point.coordinates,
                run: RunConfig::from(run).into(),
                references,
            });
        }
        drop(presets);
        Ok((spec.name, points))
    }

    /// The points of a command-run spec (docs/COMMAND_RUNS.md).
    fn resolve_commands(&self, origin: &str, spec_text: &str) -> Result<(String, Vec<PointInput>)> {
        if !self.settings.commands.enabled {
            return Err(CoreError::InvalidSpec {
                key: "command".into(),
                reason: "command runs are disabled on this daemon; an operator enables them \
                         with `[commands] enabled = true` in caudad.toml (docs/COMMAND_RUNS.md)"
                    .into(),
                line: spec_text
                    .lines()
                    .position(|l| l.trim() == "[command]")
                    .and_then(|i| u32::try_from(i + 1).ok()),
            });
        }
        let (name, _, points) = crate::command::expand(origin, spec_text)?;
        Ok((
            name,
            points
                .into_iter()
                .map(|p| PointInput {
                    name: p.run.name.clone(),
                    coordinates: p.coordinates,
                    run: RunConfig::from(p.run).into(),
                    references: p
                        .references
                        .map(|(ce, own)| (RunConfig::from(ce).into(), RunConfig::from(own).into())),
                })
                .collect(),
        ))
    }

    /// The backends built into this caudad and the one GPU runs default to (`ListPlugins`).
    pub fn backends(&self) -> (Vec<Backend>, Backend) {
        (
            Backend::built(),
            Backend::choose(None, true, self.settings.gpu_backend),
        )
    }

    /// Settles a run's training backend: its spec's, else the default where it is placed
    /// (`flex` on a CPU slot, `[backends] gpu` on a GPU), stored with the run so its worker
    /// builds that device. A backend this caudad was not built with is rejected (docs/GPU.md).
    fn settle_backend(&self, spec_text: &str, run: &mut ResolvedRun) -> Result<()> {
        let backend = Backend::choose(
            run.resources.backend,
            run.resources.wants_gpu(),
            self.settings.gpu_backend,
        );
        backend
            .check_built("caudad")
            .map_err(|e| CoreError::InvalidSpec {
                key: "resources.backend".into(),
                reason: e.to_string(),
                line: spec_text
                    .lines()
                    .position(|l| {
                        // `backend = ...` in [resources], or `"resources.backend" = [...]` in [sweep].
                        let l = l.trim_start();
                        !l.starts_with('#')
                            && l.split('=').next().is_some_and(|k| k.contains("backend"))
                    })
                    .and_then(|i| u32::try_from(i + 1).ok()),
            })?;
        run.resources.backend = Some(backend);
        Ok(())
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
        let (name, points) = self.resolve(origin, spec_text)?;
        if points
            .iter()
            .any(|p| matches!(p.run.run, RunConfig::Command(_)))
        {
            self.settings.commands.check_user(user)?;
        }
        let now = self.clock.now();
        self.submits_waiting.fetch_add(1, Ordering::SeqCst);
        let guard = self.lock();
        self.submits_waiting.fetch_sub(1, Ordering::SeqCst);
        let guard = guard?;
        // Declared after the lock's guard, so dropped first, still under the lock.
        let owed = OwedPass(self);
        let plan = {
            let mut reusable = self
                .reusable
                .lock()
                .map_err(|_| CoreError::Internal("the reuse index lock was poisoned".into()))?;
            if reusable.is_none() {
                *reusable = Some(self.reusable_runs()?);
            }
            plan(
                points,
                reusable.as_ref().unwrap_or(&HashMap::new()),
                self.engine.registry(),
            )
        };
        self.check_queued_quota(user, plan.new.len())?;
        // Taken without a flush of their own: durable with the commit below (see `Store`).
        let experiment = self.store.next_experiment_id()?;
        let ids = self.store.next_run_ids(plan.new.len())?;
        let id_of = |r: PlanRef| match r {
            PlanRef::Stored(id) => id,
            PlanRef::New(i) => ids[i],
        };
        let mut ops = Vec::with_capacity(1 + 2 * plan.new.len());
        let mut runs = Vec::with_capacity(plan.new.len());
        for (new, &id) in plan.new.iter().zip(&ids) {
            let resources = new.run.resources();
            let (request, source) = self.reservation(
                ResourceRequest {
                    gpus: u32::try_from(resources.gpus).unwrap_or(u32::MAX),
                    gpu_share: resources.gpu_share,
                    gpu_mem_mb: resources.gpu_mem_mb,
                },
                &new.config_hash,
            )?;
            let record = RunRecord {
                id,
                experiment,
                name: new.name.clone(),
                coordinates: new.coordinates.clone(),
                user: user.to_string(),
                config_json: new.run.to_json(),
                facts: Some(new.run.facts(self.engine.registry())),
                config_hash: new.config_hash.clone(),
                engine: new.run.engine(),
                state: RunState::Queued,
                priority: priority.unwrap_or(resources.priority),
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
                summary: None,
                gpu_memory: Box::new(GpuMemoryNote {
                    source,
                    ..GpuMemoryNote::default()
                }),
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
                coordinates: p.coordinates.clone(),
                run: id_of(p.run),
                references: p.references.map(|(a, b)| (id_of(a), id_of(b))),
            })
            .collect();
        ops.insert(
            0,
            WriteOp::PutExperiment(ExperimentRecord {
                id: experiment,
                name: name.clone(),
                user: user.to_string(),
                spec_text: spec_text.to_string(),
                submitted_at: now,
                runs: ids.iter().chain(&plan.reused).copied().collect(),
                points,
            }),
        );
        let mut pending = self.commit_applied(&ops)?;
        // A burst of submissions schedules once. While another submission waits for the lock,
        // this one leaves the pass to it: this one's runs are applied, so that pass sees them
        // (`OwedPass` runs it should that submission fail first). The last one schedules all.
        if self.submits_waiting.load(Ordering::SeqCst) == 0 {
            self.schedule_locked()?;
        } else {
            self.schedule_owed.store(true, Ordering::SeqCst);
        }
        drop(owed);
        // Everything applied so far: the submission and the pass's pending reasons.
        pending.ticket = pending.ticket.max(self.store.newest_ticket());
        drop(guard);
        self.settle(pending)?;
        tracing::info!(experiment = %experiment, runs = runs.len(), reused = reused.len(), "experiment submitted");
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

/// A scheduling pass a submission left to the next one in a burst (`Daemon::schedule_owed`):
/// when a submission holding the lock ends, with no other waiting, it runs the pass if one is
/// still owed, even when the submission failed, so no applied run waits for the ticker.
struct OwedPass<'a>(&'a Daemon);

impl Drop for OwedPass<'_> {
    fn drop(&mut self) {
        let d = self.0;
        if d.submits_waiting.load(Ordering::SeqCst) == 0
            && d.schedule_owed.load(Ordering::SeqCst)
            && let Err(e) = d.schedule_locked()
        {
            tracing::error!(error = %e, "the scheduling pass a submission owed failed");
        }
    }
}
