//! Submission: parse and resolve a spec with the engine's own validation (every grid point,
//! and its balanced references when `[report]` asks), plan the runs it needs (`plan`), then
//! store the experiment and its new runs in one commit and schedule. The ids, the commit and the
//! scheduling pass are applied under the write lock; the flush that makes them durable comes
//! after it is released, shared with every submission (and report) waiting at the same time,
//! and the caller is answered only once it returned (group commit).

use std::collections::HashMap;

use cauda_plugins::spec::{ExperimentSpec, ResolvedRun, expand_sweep};

use crate::command::is_command_spec;
use crate::run_config::RunConfig;
use cauda_plugins::train::Backend;

use super::plan::PointInput;
use super::submit_group::Prepared;
use super::{CoreError, Daemon, Result, Submitted};
use crate::model::{RunId, RunState};
use crate::store::RunFilter;

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
        let (submitted, pending) = self.submit_grouped(Prepared {
            name,
            points,
            spec_text: spec_text.to_string(),
            user: user.to_string(),
            priority,
            now: self.clock.now(),
        })?;
        self.settle(pending)?;
        tracing::info!(experiment = %submitted.experiment, runs = submitted.runs.len(), reused = submitted.reused.len(), "experiment submitted");
        Ok(submitted)
    }

    /// Stored runs a new experiment may reuse, by config hash: queued, running or succeeded
    /// (the latest of each hash); read once, then `commit` keeps the index current.
    pub(super) fn reusable_runs(&self) -> Result<HashMap<String, RunId>> {
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
