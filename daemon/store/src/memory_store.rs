//! The in-memory `Store` for unit tests of the scheduler and the services: ordered maps behind
//! one lock, with the same indexes, validation, numbering and retention as the sled store (the
//! shared suite in `tests/` holds both to the same behaviour). Nothing survives a drop.

use super::{
    CheckpointMeta, Event, MetricPoint, Result, RunFilter, Store, StoreConfig, StoreError, Ticket,
    WriteOp, check_epoch_doc, chunk_count, evicted_epochs,
};
use cauda_model::{ExperimentId, ExperimentRecord, RunId, RunRecord};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

/// A checkpoint's meta entry and its chunks.
type StoredCheckpoint = (CheckpointMeta, Vec<Vec<u8>>);

#[derive(Default)]
struct Inner {
    last_run: u64,
    last_experiment: u64,
    experiments: BTreeMap<ExperimentId, ExperimentRecord>,
    runs: BTreeMap<RunId, RunRecord>,
    by_experiment: BTreeSet<(ExperimentId, RunId)>,
    by_state: BTreeSet<(u8, RunId)>,
    by_user: BTreeSet<(String, RunId)>,
    events: BTreeMap<(RunId, u64), Event>,
    metrics: BTreeMap<(RunId, u32), (u8, Vec<u8>)>,
    checkpoints: BTreeMap<(RunId, u32), StoredCheckpoint>,
}

impl Inner {
    fn next_seq(&self, run: RunId) -> u64 {
        self.events
            .range((run, 0)..=(run, u64::MAX))
            .next_back()
            .map_or(0, |((_, s), _)| s + 1)
    }

    fn require_run(&self, op: &'static str, run: RunId) -> Result<()> {
        if self.runs.contains_key(&run) {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                op,
                what: format!("run {run}"),
            })
        }
    }

    fn put_run(&mut self, run: &RunRecord) {
        if let Some(old) = self.runs.get(&run.id) {
            self.by_experiment.remove(&(old.experiment, old.id));
            self.by_state
                .remove(&(super::keys::state_byte(old.state), old.id));
            self.by_user.remove(&(old.user.clone(), old.id));
        }
        self.by_experiment.insert((run.experiment, run.id));
        self.by_state
            .insert((super::keys::state_byte(run.state), run.id));
        self.by_user.insert((run.user.clone(), run.id));
        self.runs.insert(run.id, run.clone());
    }
}

/// A `Store` in memory.
pub struct MemoryStore {
    config: StoreConfig,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(StoreConfig::default())
    }
}

impl MemoryStore {
    pub fn new(config: StoreConfig) -> Self {
        Self {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self, op: &'static str) -> Result<MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| StoreError::Poisoned { op })
    }

    /// `commit`: nothing to flush, so applied is durable.
    fn commit_now(&self, ops: &[WriteOp]) -> Result<Vec<u64>> {
        const OP: &str = "commit";
        let mut inner = self.lock(OP)?;
        // Validate the whole batch before touching anything: all or nothing.
        let mut put: BTreeSet<RunId> = BTreeSet::new();
        for op in ops {
            match op {
                WriteOp::PutRun(r) => {
                    put.insert(r.id);
                }
                WriteOp::AppendEvent(run, _)
                    if !put.contains(run) && !inner.runs.contains_key(run) =>
                {
                    return Err(StoreError::NotFound {
                        op: OP,
                        what: format!("run {run}"),
                    });
                }
                WriteOp::AppendEvent(..) | WriteOp::PutExperiment(_) => {}
            }
        }
        let mut seqs: HashMap<RunId, u64> = HashMap::new();
        let mut appended = Vec::new();
        for op in ops {
            match op {
                WriteOp::PutExperiment(e) => {
                    inner.experiments.insert(e.id, e.clone());
                }
                WriteOp::PutRun(r) => inner.put_run(r),
                WriteOp::AppendEvent(run, event) => {
                    let seq = seqs
                        .get(run)
                        .copied()
                        .unwrap_or_else(|| inner.next_seq(*run));
                    seqs.insert(*run, seq + 1);
                    inner.events.insert((*run, seq), event.bounded());
                    appended.push(seq);
                }
            }
        }
        Ok(appended)
    }
}

fn ids_after(after: Option<u64>) -> Option<u64> {
    after.map_or(Some(0), |a| a.checked_add(1))
}

impl Store for MemoryStore {
    fn next_run_id(&self) -> Result<RunId> {
        let mut inner = self.lock("next_run_id")?;
        inner.last_run += 1;
        Ok(RunId(inner.last_run))
    }

    fn next_experiment_id(&self) -> Result<ExperimentId> {
        let mut inner = self.lock("next_experiment_id")?;
        inner.last_experiment += 1;
        Ok(ExperimentId(inner.last_experiment))
    }

    fn commit_applied(&self, ops: &[WriteOp]) -> Result<(Vec<u64>, Ticket)> {
        Ok((self.commit_now(ops)?, Ticket::default()))
    }

    fn wait_durable(&self, _ticket: Ticket) -> Result<()> {
        Ok(())
    }

    fn commit(&self, ops: &[WriteOp]) -> Result<Vec<u64>> {
        self.commit_now(ops)
    }

    fn get_experiment(&self, id: ExperimentId) -> Result<Option<ExperimentRecord>> {
        Ok(self.lock("get_experiment")?.experiments.get(&id).cloned())
    }

    fn list_experiments(
        &self,
        after: Option<ExperimentId>,
        limit: Option<usize>,
    ) -> Result<Vec<ExperimentRecord>> {
        let inner = self.lock("list_experiments")?;
        let Some(start) = ids_after(after.map(|a| a.0)) else {
            return Ok(Vec::new());
        };
        let it = inner
            .experiments
            .range(ExperimentId(start)..)
            .map(|(_, e)| e.clone());
        Ok(it.take(limit.unwrap_or(usize::MAX)).collect())
    }

    fn get_run(&self, id: RunId) -> Result<Option<RunRecord>> {
        Ok(self.lock("get_run")?.runs.get(&id).cloned())
    }

    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        let inner = self.lock("list_runs")?;
        let Some(start) = ids_after(filter.after.map(|a| a.0)) else {
            return Ok(Vec::new());
        };
        let (from, to) = (RunId(start), RunId(u64::MAX));
        let ids: Box<dyn Iterator<Item = RunId>> = if let Some(e) = filter.experiment {
            Box::new(
                inner
                    .by_experiment
                    .range((e, from)..=(e, to))
                    .map(|(_, r)| *r),
            )
        } else if let Some(s) = filter.state {
            let s = super::keys::state_byte(s);
            Box::new(inner.by_state.range((s, from)..=(s, to)).map(|(_, r)| *r))
        } else if let Some(u) = &filter.user {
            Box::new(
                inner
                    .by_user
                    .range((u.clone(), from)..=(u.clone(), to))
                    .map(|(_, r)| *r),
            )
        } else {
            Box::new(inner.runs.range(from..).map(|(r, _)| *r))
        };
        let runs = ids
            .filter_map(|id| inner.runs.get(&id))
            .filter(|r| filter.matches(r));
        Ok(runs
            .take(filter.limit.unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    fn events(&self, run: RunId, from_seq: u64) -> Result<Vec<(u64, Event)>> {
        let inner = self.lock("events")?;
        let it = inner.events.range((run, from_seq)..=(run, u64::MAX));
        Ok(it.map(|((_, s), e)| (*s, e.clone())).collect())
    }

    fn append_metric(&self, run: RunId, epoch: u32, stage: u8, doc: &[u8]) -> Result<bool> {
        const OP: &str = "append_metric";
        check_epoch_doc(OP, doc)?;
        let mut inner = self.lock(OP)?;
        inner.require_run(OP, run)?;
        if inner.metrics.contains_key(&(run, epoch)) {
            return Ok(false);
        }
        inner.metrics.insert((run, epoch), (stage, doc.to_vec()));
        Ok(true)
    }

    fn append_metric_with_event(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        doc: &[u8],
        event: &Event,
    ) -> Result<Option<u64>> {
        const OP: &str = "append_metric_with_event";
        check_epoch_doc(OP, doc)?;
        let mut inner = self.lock(OP)?;
        inner.require_run(OP, run)?;
        if inner.metrics.contains_key(&(run, epoch)) {
            return Ok(None);
        }
        inner.metrics.insert((run, epoch), (stage, doc.to_vec()));
        let seq = inner.next_seq(run);
        inner.events.insert((run, seq), event.bounded());
        Ok(Some(seq))
    }

    fn metrics(&self, run: RunId) -> Result<Vec<MetricPoint>> {
        let inner = self.lock("metrics")?;
        let it = inner.metrics.range((run, 0)..=(run, u32::MAX));
        Ok(it
            .map(|((_, epoch), (stage, doc))| MetricPoint {
                epoch: *epoch,
                stage: *stage,
                doc: doc.clone(),
            })
            .collect())
    }

    fn put_checkpoint(
        &self,
        run: RunId,
        attempt: u32,
        epoch: u32,
        bytes: &[u8],
        is_best: bool,
    ) -> Result<CheckpointMeta> {
        const OP: &str = "put_checkpoint";
        let mut inner = self.lock(OP)?;
        inner.require_run(OP, run)?;
        let meta = CheckpointMeta {
            run,
            attempt,
            epoch,
            size: bytes.len() as u64,
            chunks: chunk_count(OP, bytes.len())?,
            is_best,
            sha256: super::sha256_hex(bytes),
        };
        let parts = bytes
            .chunks(super::CHUNK_SIZE)
            .map(<[u8]>::to_vec)
            .collect();
        inner
            .checkpoints
            .insert((run, epoch), (meta.clone(), parts));
        let metas: Vec<CheckpointMeta> = inner
            .checkpoints
            .range((run, 0)..=(run, u32::MAX))
            .map(|(_, (m, _))| m.clone())
            .collect();
        for gone in evicted_epochs(&metas, self.config.keep_checkpoints, epoch) {
            inner.checkpoints.remove(&(run, gone));
        }
        Ok(meta)
    }

    fn list_checkpoints(&self, run: RunId) -> Result<Vec<CheckpointMeta>> {
        let inner = self.lock("list_checkpoints")?;
        Ok(inner
            .checkpoints
            .range((run, 0)..=(run, u32::MAX))
            .map(|(_, (m, _))| m.clone())
            .collect())
    }

    fn checkpoint_chunk(&self, run: RunId, epoch: u32, index: u32) -> Result<Option<Vec<u8>>> {
        let inner = self.lock("checkpoint_chunk")?;
        let found = inner.checkpoints.get(&(run, epoch));
        Ok(found.and_then(|(_, parts)| parts.get(index as usize).cloned()))
    }

    fn checkpoint(&self, run: RunId, epoch: u32) -> Result<Option<(CheckpointMeta, Vec<u8>)>> {
        let inner = self.lock("checkpoint")?;
        Ok(inner
            .checkpoints
            .get(&(run, epoch))
            .map(|(m, parts)| (m.clone(), parts.concat())))
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn delete_run(&self, run: RunId) -> Result<bool> {
        let mut inner = self.lock("delete_run")?;
        let Some(old) = inner.runs.remove(&run) else {
            return Ok(false);
        };
        inner.by_experiment.remove(&(old.experiment, run));
        inner
            .by_state
            .remove(&(super::keys::state_byte(old.state), run));
        inner.by_user.remove(&(old.user, run));
        inner.events.retain(|(r, _), _| *r != run);
        inner.metrics.retain(|(r, _), _| *r != run);
        inner.checkpoints.retain(|(r, _), _| *r != run);
        Ok(true)
    }

    fn delete_experiment(&self, id: ExperimentId) -> Result<bool> {
        let mut inner = self.lock("delete_experiment")?;
        Ok(inner.experiments.remove(&id).is_some())
    }
}
