//! The daemon's store on sled: one tree per kind of record, big-endian keys (see `keys`) so range
//! scans answer queries, multi-tree transactions for atomic commits and checkpoints, and a
//! `flush` (an fsync of sled's log) before any mutating method returns. Multi-step writes (a
//! commit's event numbering, a checkpoint's retention) are serialised by one writer lock; reads
//! take no lock.

use super::keys;
use super::{
    CheckpointMeta, Event, MetricPoint, Result, RunFilter, Store, StoreConfig, StoreError, WriteOp,
    check_metric_json, chunk_count, evicted_epochs,
};
use crate::model::{ExperimentId, ExperimentRecord, RunId, RunRecord};
use serde::de::DeserializeOwned;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const NEXT_RUN: &[u8] = b"next_run_id";
const NEXT_EXPERIMENT: &[u8] = b"next_experiment_id";

/// A `Store` in a sled database directory.
pub struct SledStore {
    path: PathBuf,
    config: StoreConfig,
    db: sled::Db,
    meta: Tree,
    experiments: Tree,
    runs: Tree,
    by_experiment: Tree,
    by_state: Tree,
    by_user: Tree,
    events: Tree,
    metrics: Tree,
    checkpoints: Tree,
    chunks: Tree,
    writer: Mutex<()>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

fn decode<T: DeserializeOwned>(
    op: &'static str,
    tree: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        op,
        key: keys::describe(tree, key),
        reason: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(
    op: &'static str,
    what: impl Fn() -> String,
    v: &T,
) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|source| StoreError::Encode {
        op,
        what: what(),
        source,
    })
}

impl SledStore {
    /// Open (or create) the database in directory `path`.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let err = |source| StoreError::Sled {
            op: "open",
            path: path.clone(),
            source,
        };
        let db = sled::Config::new().path(&path).open().map_err(err)?;
        let tree = |name: &str| db.open_tree(name).map_err(err);
        let store = Self {
            meta: tree("meta")?,
            experiments: tree("experiments")?,
            runs: tree("runs")?,
            by_experiment: tree("runs_by_experiment")?,
            by_state: tree("runs_by_state")?,
            by_user: tree("runs_by_user")?,
            events: tree("events")?,
            metrics: tree("metrics")?,
            checkpoints: tree("checkpoints")?,
            chunks: tree("checkpoint_chunks")?,
            db,
            path,
            config,
            writer: Mutex::new(()),
        };
        tracing::info!(path = %store.path.display(), "opened the sled store");
        Ok(store)
    }

    fn err(&self, op: &'static str) -> impl Fn(sled::Error) -> StoreError + '_ {
        move |source| StoreError::Sled {
            op,
            path: self.path.clone(),
            source,
        }
    }

    fn tx_err(&self, op: &'static str) -> impl Fn(TransactionError<StoreError>) -> StoreError + '_ {
        move |e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(source) => StoreError::Sled {
                op,
                path: self.path.clone(),
                source,
            },
        }
    }

    /// The writer lock; its guard protects no data, so a poisoned lock is still usable.
    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn durable(&self, op: &'static str) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(self.err(op))
    }

    fn next_id(&self, op: &'static str, key: &[u8]) -> Result<u64> {
        let _w = self.write_lock();
        let last = match self.meta.get(key).map_err(self.err(op))? {
            None => 0,
            Some(v) => keys::trailing_u64(&v)
                .filter(|_| v.len() == 8)
                .ok_or_else(|| StoreError::Corrupt {
                    op,
                    key: format!("meta/{}", String::from_utf8_lossy(key)),
                    reason: format!("expected an 8-byte counter, found {} bytes", v.len()),
                })?,
        };
        let next = last + 1;
        self.meta
            .insert(key, &keys::id(next))
            .map_err(self.err(op))?;
        self.durable(op)?;
        Ok(next)
    }

    fn run_exists(&self, op: &'static str, run: RunId) -> Result<()> {
        if self
            .runs
            .contains_key(keys::id(run.0))
            .map_err(self.err(op))?
        {
            Ok(())
        } else {
            Err(StoreError::NotFound {
                op,
                what: format!("run {run}"),
            })
        }
    }

    fn next_event_seq(&self, op: &'static str, run: RunId) -> Result<u64> {
        match self.events.scan_prefix(keys::id(run.0)).next_back() {
            None => Ok(0),
            Some(entry) => {
                let (k, _) = entry.map_err(self.err(op))?;
                keys::trailing_u64(&k)
                    .map(|s| s + 1)
                    .ok_or_else(|| StoreError::Corrupt {
                        op,
                        key: keys::describe("events", &k),
                        reason: "malformed event key".into(),
                    })
            }
        }
    }

    fn read_run(&self, op: &'static str, id: u64) -> Result<Option<RunRecord>> {
        let key = keys::id(id);
        match self.runs.get(key).map_err(self.err(op))? {
            Some(v) => decode(op, "runs", &key, &v).map(Some),
            None => Ok(None),
        }
    }
}

/// Stage a run's put in a commit: drop its old index entries, write the new ones and the record.
fn stage_put_run(
    (runs, by_exp, by_state, by_user): (
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
        &TransactionalTree,
    ),
    run: &RunRecord,
    bytes: &[u8],
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    const OP: &str = "commit";
    let key = keys::id(run.id.0);
    if let Some(old) = runs.get(key)? {
        let old: RunRecord =
            decode(OP, "runs", &key, &old).map_err(ConflictableTransactionError::Abort)?;
        by_exp.remove(&keys::pair(old.experiment.0, old.id.0))?;
        by_state.remove(&keys::state_run(old.state, old.id))?;
        by_user.remove(keys::user_run(&old.user, old.id))?;
    }
    by_exp.insert(&keys::pair(run.experiment.0, run.id.0), &[])?;
    by_state.insert(&keys::state_run(run.state, run.id), &[])?;
    by_user.insert(keys::user_run(&run.user, run.id), &[])?;
    runs.insert(&key, bytes)?;
    Ok(())
}

/// A commit's op with its value encoded (and its event's sequence number) before the transaction.
enum Staged<'a> {
    Experiment(u64, Vec<u8>),
    Run(&'a RunRecord, Vec<u8>),
    Event(RunId, u64, Vec<u8>),
}

impl Store for SledStore {
    fn next_run_id(&self) -> Result<RunId> {
        self.next_id("next_run_id", NEXT_RUN).map(RunId)
    }

    fn next_experiment_id(&self) -> Result<ExperimentId> {
        self.next_id("next_experiment_id", NEXT_EXPERIMENT)
            .map(ExperimentId)
    }

    fn commit(&self, ops: &[WriteOp]) -> Result<Vec<u64>> {
        const OP: &str = "commit";
        let _w = self.write_lock();
        let mut seqs: HashMap<RunId, u64> = HashMap::new();
        let mut staged = Vec::with_capacity(ops.len());
        for op in ops {
            staged.push(match op {
                WriteOp::PutExperiment(e) => {
                    Staged::Experiment(e.id.0, encode(OP, || format!("experiment {}", e.id), e)?)
                }
                WriteOp::PutRun(r) => Staged::Run(r, encode(OP, || format!("run {}", r.id), r)?),
                WriteOp::AppendEvent(run, event) => {
                    let seq = match seqs.get(run) {
                        Some(s) => *s,
                        None => self.next_event_seq(OP, *run)?,
                    };
                    seqs.insert(*run, seq + 1);
                    Staged::Event(
                        *run,
                        seq,
                        encode(OP, || format!("event of run {run}"), &event.bounded())?,
                    )
                }
            });
        }
        let trees = (
            &self.experiments,
            &self.runs,
            &self.by_experiment,
            &self.by_state,
            &self.by_user,
            &self.events,
        );
        let appended = trees
            .transaction(|(experiments, runs, by_exp, by_state, by_user, events)| {
                let mut appended = Vec::new();
                for op in &staged {
                    match op {
                        Staged::Experiment(id, bytes) => {
                            experiments.insert(&keys::id(*id), bytes.as_slice())?;
                        }
                        Staged::Run(run, bytes) => {
                            stage_put_run((runs, by_exp, by_state, by_user), run, bytes)?
                        }
                        Staged::Event(run, seq, bytes) => {
                            // Sees the runs put earlier in this same transaction.
                            if runs.get(keys::id(run.0))?.is_none() {
                                return Err(ConflictableTransactionError::Abort(
                                    StoreError::NotFound {
                                        op: OP,
                                        what: format!("run {run}"),
                                    },
                                ));
                            }
                            events.insert(&keys::pair(run.0, *seq), bytes.as_slice())?;
                            appended.push(*seq);
                        }
                    }
                }
                Ok(appended)
            })
            .map_err(self.tx_err(OP))?;
        self.durable(OP)?;
        Ok(appended)
    }

    fn get_experiment(&self, id: ExperimentId) -> Result<Option<ExperimentRecord>> {
        const OP: &str = "get_experiment";
        let key = keys::id(id.0);
        match self.experiments.get(key).map_err(self.err(OP))? {
            Some(v) => decode(OP, "experiments", &key, &v).map(Some),
            None => Ok(None),
        }
    }

    fn list_experiments(
        &self,
        after: Option<ExperimentId>,
        limit: Option<usize>,
    ) -> Result<Vec<ExperimentRecord>> {
        const OP: &str = "list_experiments";
        let Some(start) = after.map_or(Some(0), |a| a.0.checked_add(1)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in self.experiments.range(keys::id(start)..) {
            if limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let (k, v) = entry.map_err(self.err(OP))?;
            out.push(decode(OP, "experiments", &k, &v)?);
        }
        Ok(out)
    }

    fn get_run(&self, id: RunId) -> Result<Option<RunRecord>> {
        self.read_run("get_run", id.0)
    }

    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        const OP: &str = "list_runs";
        let Some(start) = filter.after.map_or(Some(0), |a| a.0.checked_add(1)) else {
            return Ok(Vec::new());
        };
        let (from, to) = (RunId(start), RunId(u64::MAX));
        // The most selective index the filter allows; `None` walks the runs themselves.
        let (tree, iter) = if let Some(e) = filter.experiment {
            (
                "runs_by_experiment",
                self.by_experiment
                    .range(keys::pair(e.0, from.0)..=keys::pair(e.0, to.0)),
            )
        } else if let Some(s) = filter.state {
            (
                "runs_by_state",
                self.by_state
                    .range(keys::state_run(s, from)..=keys::state_run(s, to)),
            )
        } else if let Some(u) = &filter.user {
            (
                "runs_by_user",
                self.by_user
                    .range(keys::user_run(u, from)..=keys::user_run(u, to)),
            )
        } else {
            ("runs", self.runs.range(keys::id(start)..))
        };
        let mut out = Vec::new();
        for entry in iter {
            if filter.limit.is_some_and(|l| out.len() >= l) {
                break;
            }
            let (k, v) = entry.map_err(self.err(OP))?;
            let run: RunRecord = if tree == "runs" {
                decode(OP, tree, &k, &v)?
            } else {
                let id = keys::trailing_u64(&k).ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    key: keys::describe(tree, &k),
                    reason: "malformed index key".into(),
                })?;
                self.read_run(OP, id)?.ok_or_else(|| StoreError::Corrupt {
                    op: OP,
                    key: keys::describe(tree, &k),
                    reason: format!("index entry for run {id}, which is not stored"),
                })?
            };
            // A concurrent put may have moved the run since the index was read.
            if filter.matches(&run) {
                out.push(run);
            }
        }
        Ok(out)
    }

    fn events(&self, run: RunId, from_seq: u64) -> Result<Vec<(u64, Event)>> {
        const OP: &str = "events";
        let mut out = Vec::new();
        for entry in self
            .events
            .range(keys::pair(run.0, from_seq)..=keys::pair(run.0, u64::MAX))
        {
            let (k, v) = entry.map_err(self.err(OP))?;
            let seq = keys::trailing_u64(&k).unwrap_or_default();
            out.push((seq, decode(OP, "events", &k, &v)?));
        }
        Ok(out)
    }

    fn append_metric(&self, run: RunId, epoch: u32, stage: u8, json: &[u8]) -> Result<bool> {
        const OP: &str = "append_metric";
        check_metric_json(json)?;
        self.run_exists(OP, run)?;
        let mut value = Vec::with_capacity(json.len() + 1);
        value.push(stage);
        value.extend_from_slice(json);
        let swapped = self
            .metrics
            .compare_and_swap(
                keys::run_epoch(run, epoch),
                None as Option<&[u8]>,
                Some(value),
            )
            .map_err(self.err(OP))?;
        self.durable(OP)?;
        Ok(swapped.is_ok())
    }

    fn metrics(&self, run: RunId) -> Result<Vec<MetricPoint>> {
        const OP: &str = "metrics";
        let mut out = Vec::new();
        for entry in self.metrics.scan_prefix(keys::id(run.0)) {
            let (k, v) = entry.map_err(self.err(OP))?;
            match (keys::u32_at(&k, 8), v.split_first()) {
                (Some(epoch), Some((&stage, json))) => out.push(MetricPoint {
                    epoch,
                    stage,
                    json: json.to_vec(),
                }),
                _ => {
                    return Err(StoreError::Corrupt {
                        op: OP,
                        key: keys::describe("metrics", &k),
                        reason: "malformed metric key or empty value".into(),
                    });
                }
            }
        }
        Ok(out)
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
        let _w = self.write_lock();
        self.run_exists(OP, run)?;
        let meta = CheckpointMeta {
            run,
            attempt,
            epoch,
            size: bytes.len() as u64,
            chunks: chunk_count(OP, bytes.len())?,
            is_best,
            sha256: super::sha256_hex(bytes),
        };
        let meta_bytes = encode(OP, || format!("checkpoint meta of run {run}"), &meta)?;
        let mut metas = self.list_checkpoints(run)?;
        let replaced = metas
            .iter()
            .position(|m| m.epoch == epoch)
            .map(|i| metas.remove(i));
        let at = metas.partition_point(|m| m.epoch < epoch);
        metas.insert(at, meta.clone());
        let evicted: Vec<&CheckpointMeta> = {
            let gone = evicted_epochs(&metas, self.config.keep_checkpoints, epoch);
            metas.iter().filter(|m| gone.contains(&m.epoch)).collect()
        };
        let stale_chunks = replaced.map_or(0, |m| m.chunks);
        (&self.checkpoints, &self.chunks)
            .transaction(|(metas_tx, chunks_tx)| {
                for (i, part) in bytes.chunks(super::CHUNK_SIZE).enumerate() {
                    chunks_tx.insert(&keys::chunk(run, epoch, i as u32), part)?;
                }
                for i in meta.chunks..stale_chunks {
                    chunks_tx.remove(&keys::chunk(run, epoch, i))?;
                }
                for old in &evicted {
                    metas_tx.remove(&keys::run_epoch(run, old.epoch))?;
                    for i in 0..old.chunks {
                        chunks_tx.remove(&keys::chunk(run, old.epoch, i))?;
                    }
                }
                // The meta entry makes the checkpoint visible: written last.
                metas_tx.insert(&keys::run_epoch(run, epoch), meta_bytes.as_slice())?;
                Ok::<_, ConflictableTransactionError<StoreError>>(())
            })
            .map_err(self.tx_err(OP))?;
        self.durable(OP)?;
        tracing::debug!(run_id = %run, epoch, size = meta.size, evicted = evicted.len(), "stored a checkpoint");
        Ok(meta)
    }

    fn list_checkpoints(&self, run: RunId) -> Result<Vec<CheckpointMeta>> {
        const OP: &str = "list_checkpoints";
        let mut out = Vec::new();
        for entry in self.checkpoints.scan_prefix(keys::id(run.0)) {
            let (k, v) = entry.map_err(self.err(OP))?;
            out.push(decode(OP, "checkpoints", &k, &v)?);
        }
        Ok(out)
    }

    fn checkpoint_chunk(&self, run: RunId, epoch: u32, index: u32) -> Result<Option<Vec<u8>>> {
        const OP: &str = "checkpoint_chunk";
        if !self
            .checkpoints
            .contains_key(keys::run_epoch(run, epoch))
            .map_err(self.err(OP))?
        {
            return Ok(None);
        }
        Ok(self
            .chunks
            .get(keys::chunk(run, epoch, index))
            .map_err(self.err(OP))?
            .map(|v| v.to_vec()))
    }

    fn checkpoint(&self, run: RunId, epoch: u32) -> Result<Option<(CheckpointMeta, Vec<u8>)>> {
        const OP: &str = "checkpoint";
        // Under the writer lock so that no retention sweep drops chunks while they are read.
        let _w = self.write_lock();
        let key = keys::run_epoch(run, epoch);
        let Some(v) = self.checkpoints.get(key).map_err(self.err(OP))? else {
            return Ok(None);
        };
        let meta: CheckpointMeta = decode(OP, "checkpoints", &key, &v)?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
        for i in 0..meta.chunks {
            let part = self
                .chunks
                .get(keys::chunk(run, epoch, i))
                .map_err(self.err(OP))?;
            let part = part.ok_or_else(|| StoreError::Corrupt {
                op: OP,
                key: format!("checkpoint_chunks/run {}/epoch {epoch}/chunk {i}", run.0),
                reason: format!("chunk missing from a checkpoint of {} chunks", meta.chunks),
            })?;
            bytes.extend_from_slice(&part);
        }
        if bytes.len() as u64 != meta.size {
            return Err(StoreError::Corrupt {
                op: OP,
                key: keys::describe("checkpoints", &key),
                reason: format!(
                    "chunks hold {} bytes, the meta entry says {}",
                    bytes.len(),
                    meta.size
                ),
            });
        }
        Ok(Some((meta, bytes)))
    }

    fn flush(&self) -> Result<()> {
        self.durable("flush")
    }
}
