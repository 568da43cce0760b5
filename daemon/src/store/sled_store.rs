//! The daemon's store on sled: one tree per kind of record, big-endian keys (see `keys`) so range
//! scans answer queries, multi-tree transactions for atomic commits and checkpoints, and a
//! `flush` (an fsync of sled's log) before any mutating method returns. Multi-step writes (a
//! commit's event numbering, a checkpoint's retention) are serialised by one writer lock; reads
//! take no lock. This file holds the database, its helpers and the one `impl Store`; the
//! batched writes, the listings, the metrics and the checkpoints live in `sled_commit`,
//! `sled_queries`, `sled_metrics` and `sled_checkpoints`.

use super::keys;
use super::{
    CheckpointMeta, Event, MetricPoint, Result, RunFilter, Store, StoreConfig, StoreError, WriteOp,
};
use crate::model::{ExperimentId, ExperimentRecord, RunId, RunRecord};
use serde::de::DeserializeOwned;
use sled::Tree;
use sled::transaction::TransactionError;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

const NEXT_RUN: &[u8] = b"next_run_id";
const NEXT_EXPERIMENT: &[u8] = b"next_experiment_id";

/// A `Store` in a sled database directory.
pub struct SledStore {
    pub(super) path: PathBuf,
    pub(super) config: StoreConfig,
    pub(super) db: sled::Db,
    pub(super) meta: Tree,
    pub(super) experiments: Tree,
    pub(super) runs: Tree,
    pub(super) by_experiment: Tree,
    pub(super) by_state: Tree,
    pub(super) by_user: Tree,
    pub(super) events: Tree,
    pub(super) metrics: Tree,
    pub(super) checkpoints: Tree,
    pub(super) chunks: Tree,
    pub(super) writer: Mutex<()>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .finish()
    }
}

pub(super) fn decode<T: DeserializeOwned>(
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

pub(super) fn encode<T: serde::Serialize>(
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

    pub(super) fn err(&self, op: &'static str) -> impl Fn(sled::Error) -> StoreError + '_ {
        move |source| StoreError::Sled {
            op,
            path: self.path.clone(),
            source,
        }
    }

    pub(super) fn tx_err(
        &self,
        op: &'static str,
    ) -> impl Fn(TransactionError<StoreError>) -> StoreError + '_ {
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
    pub(super) fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn durable(&self, op: &'static str) -> Result<()> {
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

    pub(super) fn run_exists(&self, op: &'static str, run: RunId) -> Result<()> {
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

    pub(super) fn next_event_seq(&self, op: &'static str, run: RunId) -> Result<u64> {
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
        self.commit_ops(ops)
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
        self.read_experiments(after, limit)
    }

    fn get_run(&self, id: RunId) -> Result<Option<RunRecord>> {
        self.read_run("get_run", id.0)
    }

    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.read_runs(filter)
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
        self.store_metric(run, epoch, stage, json)
    }

    fn append_metric_with_event(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        json: &[u8],
        event: &Event,
    ) -> Result<Option<u64>> {
        self.store_metric_with_event(run, epoch, stage, json, event)
    }

    fn metrics(&self, run: RunId) -> Result<Vec<MetricPoint>> {
        self.read_metrics(run)
    }

    fn metric(&self, run: RunId, epoch: u32) -> Result<Option<MetricPoint>> {
        self.read_metric(run, epoch)
    }

    fn last_epoch(&self, run: RunId) -> Result<u32> {
        self.read_last_epoch(run)
    }

    fn put_checkpoint(
        &self,
        run: RunId,
        attempt: u32,
        epoch: u32,
        bytes: &[u8],
        is_best: bool,
    ) -> Result<CheckpointMeta> {
        self.write_checkpoint(run, attempt, epoch, bytes, is_best)
    }

    fn list_checkpoints(&self, run: RunId) -> Result<Vec<CheckpointMeta>> {
        self.read_checkpoint_metas(run)
    }

    fn checkpoint_chunk(&self, run: RunId, epoch: u32, index: u32) -> Result<Option<Vec<u8>>> {
        self.read_checkpoint_chunk(run, epoch, index)
    }

    fn checkpoint(&self, run: RunId, epoch: u32) -> Result<Option<(CheckpointMeta, Vec<u8>)>> {
        self.read_checkpoint(run, epoch)
    }

    fn flush(&self) -> Result<()> {
        self.durable("flush")
    }

    fn delete_run(&self, run: RunId) -> Result<bool> {
        self.delete_run_all(run)
    }

    fn delete_experiment(&self, id: ExperimentId) -> Result<bool> {
        self.delete_experiment_record(id)
    }
}
