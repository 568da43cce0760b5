//! The daemon's read path: runs, experiments, metrics, events, checkpoints, devices and
//! plugins, each failing with a typed not-found for an unknown id. A read shows only durable
//! state: it first waits for every write already applied to be flushed (`settled`), so nothing
//! a client saw can be taken back by a crash (a report applied but not yet flushed is visible
//! to sled's readers; a kill -9 in that window would lose it and a retry would store another).
//! The one exception is a store that cannot flush at all (a full disk): reads still answer.

use cauda_plugins::registry::PluginInfo;
use cauda_plugins::train::RunSummary;

use super::{CoreError, Daemon, Result};
use crate::gpu::{self, GpuStats};
use crate::model::{DeviceId, ExperimentId, ExperimentRecord, Grant, RunId, RunRecord, RunState};
use crate::scheduler::DeviceInfo;
use crate::store::{CheckpointMeta, Event, MetricPoint, RunBrief, RunFilter};

/// Which stored checkpoint of a run to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointChoice {
    Latest,
    Best,
    Epoch(u32),
}

/// A run placed on a device.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedRun {
    pub run: RunId,
    pub name: String,
    pub grant: Grant,
}

/// One device of the inventory with the runs on it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceView {
    pub info: DeviceInfo,
    pub runs: Vec<PlacedRun>,
    /// The share still free, in [0, 1].
    pub free_share: f64,
    /// The device comes from the config's override list rather than discovery.
    pub from_override: bool,
    /// Live memory and utilization (discovered GPUs only; `None` when NVML does not answer).
    pub stats: Option<GpuStats>,
}

impl DeviceView {
    /// GPU memory in MiB reserved by the runs on it (their grants' `mem_mb`), `None` when none
    /// reserves any.
    pub fn reserved_mb(&self) -> Option<u64> {
        self.runs
            .iter()
            .filter_map(|p| p.grant.mem_mb)
            .reduce(u64::saturating_add)
    }
}

impl Daemon {
    /// Waits until every write applied so far is durable (at once when none waits for a flush;
    /// else at most the flush under way and one more). Never call it under the daemon's lock.
    /// When the store cannot flush (a full disk), the read goes on from what the store holds:
    /// the daemon keeps answering reads, and the writes that could not be flushed were
    /// acknowledged to nobody (their callers got the error).
    fn settled(&self) {
        if let Err(e) = self.store.wait_durable(self.store.newest_ticket()) {
            tracing::debug!(error = %e, "a read goes on before the pending writes are durable");
        }
    }

    /// Shows each queued run's reason as the last scheduling pass gave it (`Daemon::reasons`);
    /// a run the passes have not explained yet keeps its stored one (why it was requeued).
    fn explain<'a>(
        &self,
        runs: impl IntoIterator<Item = (RunId, RunState, &'a mut Option<String>)>,
    ) -> Result<()> {
        let reasons = self
            .reasons
            .lock()
            .map_err(|_| CoreError::Internal("the reasons lock was poisoned".into()))?;
        for (id, state, reason) in runs {
            if state == RunState::Queued
                && let Some(why) = reasons.get(&id)
            {
                *reason = Some(why.clone());
            }
        }
        Ok(())
    }

    /// One run.
    pub fn get_run(&self, id: RunId) -> Result<RunRecord> {
        self.settled();
        let mut run = self.store.get_run(id)?.ok_or(CoreError::RunNotFound(id))?;
        self.explain([(run.id, run.state, &mut run.pending_reason)])?;
        Ok(run)
    }

    /// Runs passing `filter`, ordered by id.
    pub fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.settled();
        let mut runs = self.store.list_runs(filter)?;
        self.explain(
            runs.iter_mut()
                .map(|r| (r.id, r.state, &mut r.pending_reason)),
        )?;
        Ok(runs)
    }

    /// `list_runs` without configs and summaries (a listing's basic view, `store::RunBrief`).
    pub fn list_run_briefs(&self, filter: &RunFilter) -> Result<Vec<RunBrief>> {
        self.settled();
        let mut runs = self.store.list_run_briefs(filter)?;
        self.explain(
            runs.iter_mut()
                .map(|r| (r.id, r.state, &mut r.pending_reason)),
        )?;
        Ok(runs)
    }

    /// One experiment and its runs in grid order.
    pub fn get_experiment(&self, id: ExperimentId) -> Result<(ExperimentRecord, Vec<RunRecord>)> {
        self.settled();
        let experiment = self
            .store
            .get_experiment(id)?
            .ok_or(CoreError::ExperimentNotFound(id))?;
        // Its own runs and the stored ones it reuses.
        let mut runs = Vec::with_capacity(experiment.runs.len());
        for run in &experiment.runs {
            runs.push(
                self.store
                    .get_run(*run)?
                    .ok_or(CoreError::RunNotFound(*run))?,
            );
        }
        self.explain(
            runs.iter_mut()
                .map(|r| (r.id, r.state, &mut r.pending_reason)),
        )?;
        Ok((experiment, runs))
    }

    /// A run's stored epoch metrics and its summary once it succeeded.
    pub fn metrics(&self, id: RunId) -> Result<(Vec<MetricPoint>, Option<Box<RunSummary>>)> {
        let run = self.get_run(id)?;
        Ok((self.store.metrics(id)?, run.summary))
    }

    /// The last epoch whose metrics are stored (0 when none), without reading them.
    pub fn epochs_done(&self, id: RunId) -> Result<u32> {
        self.settled();
        Ok(self.store.last_epoch(id)?)
    }

    /// One stored epoch of a run (`None` when not stored), without reading the others.
    pub fn metric_point(&self, id: RunId, epoch: u32) -> Result<Option<MetricPoint>> {
        self.settled();
        Ok(self.store.metric(id, epoch)?)
    }

    /// The stage an epoch of a run belongs to, from its stored metrics (1 when unknown).
    pub fn stage_of(&self, id: RunId, epoch: u32) -> u32 {
        self.metric_point(id, epoch)
            .ok()
            .flatten()
            .map_or(1, |p| u32::from(p.stage))
    }

    /// A run's stored events with store sequence number `>= from_seq` (counted from 0).
    pub fn events(&self, id: RunId, from_seq: u64) -> Result<Vec<(u64, Event)>> {
        self.get_run(id)?;
        Ok(self.store.events(id, from_seq)?)
    }

    /// The inventory with the grants of the running runs, and live figures of discovered GPUs
    /// (an override's GPUs may be fake, so NVML is not asked about them).
    pub fn devices(&self) -> Result<Vec<DeviceView>> {
        let from_override = self.settings.inventory.from_override();
        let running = self.store.list_runs(&RunFilter {
            state: Some(RunState::Running),
            ..RunFilter::default()
        })?;
        let views = self
            .settings
            .inventory
            .devices()
            .iter()
            .map(|info| {
                let runs: Vec<PlacedRun> = running
                    .iter()
                    .flat_map(|r| {
                        r.grants
                            .iter()
                            .filter(|g| g.device == info.id)
                            .map(|g| PlacedRun {
                                run: r.id,
                                name: r.name.clone(),
                                grant: g.clone(),
                            })
                    })
                    .collect();
                let used: f64 = runs.iter().map(|p| p.grant.share).sum();
                let stats = match info.id {
                    DeviceId::Gpu(index) if !from_override => gpu::stats(index),
                    _ => None,
                };
                DeviceView {
                    info: info.clone(),
                    runs,
                    free_share: (1.0 - used).clamp(0.0, 1.0),
                    from_override,
                    stats,
                }
            })
            .collect();
        Ok(views)
    }

    /// The plugin registry describing itself.
    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.engine.registry().describe()
    }

    /// The method presets a spec may name (built-in and from preset folders).
    pub fn presets(&self) -> Result<Vec<cauda_plugins::spec::Preset>> {
        let book = self
            .presets
            .read()
            .map_err(|_| CoreError::Internal("the preset lock was poisoned".into()))?;
        Ok(book.all().cloned().collect())
    }

    /// The metadata of the chosen stored checkpoint of a run.
    pub fn checkpoint_meta(&self, id: RunId, choice: CheckpointChoice) -> Result<CheckpointMeta> {
        self.get_run(id)?;
        let metas = self.store.list_checkpoints(id)?;
        let found = match choice {
            CheckpointChoice::Latest => metas.last(),
            CheckpointChoice::Best => metas.iter().rev().find(|m| m.is_best),
            CheckpointChoice::Epoch(e) => metas.iter().find(|m| m.epoch == e),
        };
        found
            .cloned()
            .ok_or(CoreError::CheckpointNotFound { run: id })
    }

    /// One chunk of a stored checkpoint; not-found when it was evicted meanwhile.
    pub fn checkpoint_chunk(&self, meta: &CheckpointMeta, index: u32) -> Result<Vec<u8>> {
        self.store
            .checkpoint_chunk(meta.run, meta.epoch, index)?
            .ok_or(CoreError::CheckpointNotFound { run: meta.run })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::{DaemonSettings, NoopExecutor, SystemClock};
    use crate::scheduler::Inventory;
    use crate::store::{EventKind, LogStream, SledStore, Store, StoreConfig, WriteOp};

    const SPEC: &str = "name = \"t\"\nmethod = \"ce\"\n[data]\nformat = \"digits\"\n\
                        [model]\nbackbone = \"mlp\"\n[train]\nepochs = 3\n";

    /// The chaos test's failure, made deterministic: a write applied but not yet flushed is
    /// visible to sled's readers, so a read that did not wait could show a client what a kill -9
    /// then takes back. Every client read flushes it first.
    #[test]
    fn reads_show_only_durable_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Arc::new(SledStore::open(dir.path().join("db"), StoreConfig::default()).unwrap());
        let settings = DaemonSettings {
            inventory: Inventory::from_spec(&["cpu:1".to_string()]).unwrap(),
            ..DaemonSettings::default()
        };
        let d = Daemon::new(
            store.clone(),
            settings,
            Arc::new(SystemClock),
            Arc::new(NoopExecutor),
        );
        let submitted = d.submit("t", SPEC, "ada", None).unwrap();
        let (run, experiment) = (submitted.runs[0].0, submitted.experiment);
        type Read<'a> = Box<dyn Fn() -> Result<()> + 'a>;
        let reads: [(&str, Read); 7] = [
            ("get_run", Box::new(|| d.get_run(run).map(drop))),
            (
                "list_runs",
                Box::new(|| d.list_runs(&RunFilter::default()).map(drop)),
            ),
            (
                "list_run_briefs",
                Box::new(|| d.list_run_briefs(&RunFilter::default()).map(drop)),
            ),
            (
                "get_experiment",
                Box::new(|| d.get_experiment(experiment).map(drop)),
            ),
            ("metrics", Box::new(|| d.metrics(run).map(drop))),
            ("epochs_done", Box::new(|| d.epochs_done(run).map(drop))),
            ("events", Box::new(|| d.events(run, 0).map(drop))),
        ];
        for (name, read) in reads {
            let log = Event {
                at: 0,
                kind: EventKind::Log {
                    stream: LogStream::Stdout,
                    line: name.into(),
                },
            };
            let (_, ticket) = store
                .commit_applied(&[WriteOp::AppendEvent(run, log)])
                .unwrap();
            let before = store.flushes();
            read().unwrap();
            assert!(
                store.flushes() > before,
                "{name} returned before the applied write was flushed"
            );
            // Now durable: waiting for it flushes nothing more.
            let after = store.flushes();
            store.wait_durable(ticket).unwrap();
            assert_eq!(store.flushes(), after, "{name}");
        }
    }
}
