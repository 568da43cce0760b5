//! The daemon's store on sled: one tree per kind of record, big-endian keys (see `keys`) so range
//! scans answer queries, multi-tree transactions for atomic commits and checkpoints, and a
//! `flush` (an fsync of sled's log) before any mutating method returns, shared by every writer
//! that waits at the same time (group commit, `group_flush`; the writer lock is never held
//! across it). Multi-step writes (a commit's event numbering, a checkpoint's retention) are
//! serialised by one writer lock; reads take no lock. This file holds the database, its helpers and the one `impl Store`; the
//! batched writes, the listings, the metrics and the checkpoints live in `sled_commit`,
//! `sled_queries`, `sled_metrics` and `sled_checkpoints`.
//!
//! A full disk: sled keeps the first failed log write as a sticky error and refuses every later
//! write until the database is reopened (reads still work). The store maps it to
//! `StoreError::DiskFull`, remembers that the database is stuck, and on the next write, once
//! the filesystem has its reserve free again, reopens it in place (sled recovers its log up to
//! the last durable write: every acknowledged write is kept). See `space` for the preflight.

use super::group_flush::GroupFlush;
use super::keys;
use super::space::{DiskSpace, is_disk_full};
use super::spans;
use super::{
    CheckpointMeta, EpochWrite, Event, MetricPoint, Result, RunBrief, RunFilter, Store,
    StoreConfig, StoreError, Ticket, WriteOp,
};
use cauda_model::{ExperimentId, ExperimentRecord, RunId, RunRecord};
use serde::de::DeserializeOwned;
use sled::Tree;
use sled::transaction::TransactionError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

const NEXT_RUN: &[u8] = b"next_run_id";
const NEXT_EXPERIMENT: &[u8] = b"next_experiment_id";
/// How long a reopen waits for in-flight reads of the stuck database to finish.
const REOPEN_WAIT: Duration = Duration::from_secs(5);

/// One open sled database and its trees (replaced whole when the store is reopened).
pub(super) struct Trees {
    pub(super) db: sled::Db,
    pub(super) meta: Tree,
    pub(super) experiments: Tree,
    pub(super) runs: Tree,
    /// `RunBrief` of every run, keyed like `runs` and written with it (listings read these).
    pub(super) briefs: Tree,
    pub(super) by_experiment: Tree,
    pub(super) by_state: Tree,
    pub(super) by_user: Tree,
    pub(super) events: Tree,
    pub(super) metrics: Tree,
    pub(super) checkpoints: Tree,
    pub(super) chunks: Tree,
}

/// How long opening waits for a database's file lock while another store still holds it: sled
/// lets the lock go only when the last of its background threads drops the database, a moment
/// after the store is dropped (a daemon restarting in the same process, a test reopening).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether sled failed to open because another handle holds the database's file lock.
fn lock_busy(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

impl Trees {
    fn open(path: &Path) -> std::result::Result<Self, sled::Error> {
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match sled::Config::new().path(path).open() {
                Err(e) if lock_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        Ok(Self {
            meta: db.open_tree("meta")?,
            experiments: db.open_tree("experiments")?,
            runs: db.open_tree("runs")?,
            briefs: db.open_tree("run_briefs")?,
            by_experiment: db.open_tree("runs_by_experiment")?,
            by_state: db.open_tree("runs_by_state")?,
            by_user: db.open_tree("runs_by_user")?,
            events: db.open_tree("events")?,
            metrics: db.open_tree("metrics")?,
            checkpoints: db.open_tree("checkpoints")?,
            chunks: db.open_tree("checkpoint_chunks")?,
            db,
        })
    }
}

/// A `Store` in a sled database directory.
pub struct SledStore {
    pub(super) path: PathBuf,
    pub(super) config: StoreConfig,
    /// The open database; `None` only after a reopen failed (retried on the next write).
    trees: RwLock<Option<Arc<Trees>>>,
    /// Set when sled reported a full disk: its writes stay refused until it is reopened.
    stuck: AtomicBool,
    space: DiskSpace,
    pub(super) writer: Mutex<()>,
    /// Group commit: which writes are durable, and the flush writers share.
    group: GroupFlush,
    /// Reported epochs waiting for the next batch (`sled_ingest`).
    pub(super) ingest: super::sled_ingest::IngestQueue,
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
    let corrupt = |reason: String| StoreError::Corrupt {
        op,
        key: keys::describe(tree, key),
        reason,
    };
    if is_compact(bytes) {
        return rmp_serde::from_slice(bytes).map_err(|e| corrupt(e.to_string()));
    }
    serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))
}

/// A metrics or events entry of `tree` that does not read as a single item or a span (`spans`).
pub(super) fn corrupt_entry(
    op: &'static str,
    tree: &str,
    key: &[u8],
) -> impl FnOnce(spans::Malformed) -> StoreError {
    let key = keys::describe(tree, key);
    move |reason| StoreError::Corrupt { op, key, reason }
}

/// Whether a stored value is MessagePack: a map's first byte (fixmap, map 16, map 32; briefs
/// from session 15 on, fields by name) or an array's (fixarray, array 16, array 32;
/// `encode_compact`'s briefs, fields by position), neither of which starts a JSON text.
fn is_compact(bytes: &[u8]) -> bool {
    matches!(
        bytes.first(),
        Some(0x80..=0x8f | 0xde | 0xdf | 0x90..=0x9f | 0xdc | 0xdd)
    )
}

/// MessagePack with fields by position, for values read far more often than written: the run
/// briefs, which every `ls` page and every scheduling pass decode by the thousand (JSON was a
/// third of a listing's time; field names were half of what was left, and three quarters of
/// the bytes). A struct read this way takes its fields in declaration order, and a field
/// missing at the end takes its `#[serde(default)]`: so a stored struct only ever gets new
/// fields appended, with a default (`brief.rs` says so; a test pins it). `decode` reads every
/// form stored before: JSON, and MessagePack by name.
pub(super) fn encode_compact<T: serde::Serialize>(
    op: &'static str,
    what: impl Fn() -> String,
    v: &T,
) -> Result<Vec<u8>> {
    rmp_serde::to_vec(v).map_err(|source| StoreError::Encode {
        op,
        what: what(),
        source: Box::new(source),
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
        source: Box::new(source),
    })
}

impl SledStore {
    /// Open (or create) the database in directory `path`.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let trees = Trees::open(&path).map_err(|source| StoreError::Sled {
            op: "open",
            path: path.clone(),
            source,
        })?;
        let store = Self {
            trees: RwLock::new(Some(Arc::new(trees))),
            stuck: AtomicBool::new(false),
            space: DiskSpace::new(&path, config.min_free_bytes),
            path,
            config,
            writer: Mutex::new(()),
            group: GroupFlush::default(),
            ingest: Default::default(),
        };
        store.build_briefs()?;
        tracing::info!(path = %store.path.display(), "opened the sled store");
        Ok(store)
    }

    /// The open database (a cheap handle; hold it for one operation only).
    pub(super) fn t(&self) -> Result<Arc<Trees>> {
        let slot = self.trees.read().unwrap_or_else(|p| p.into_inner());
        slot.clone().ok_or_else(|| StoreError::DiskFull {
            op: "open",
            path: self.path.clone(),
            detail: "the database is closed after running out of space and could not be \
                     reopened yet; it is retried on the next write"
                .into(),
        })
    }

    /// Maps a sled error; a full disk becomes `DiskFull` and marks the database stuck.
    pub(super) fn err(&self, op: &'static str) -> impl Fn(sled::Error) -> StoreError + '_ {
        move |source| self.classify(op, source)
    }

    fn classify(&self, op: &'static str, source: sled::Error) -> StoreError {
        if is_disk_full(&source) {
            if !self.stuck.swap(true, Ordering::SeqCst) {
                tracing::error!(path = %self.path.display(), op, error = %source,
                    "the disk is full: writes are refused until space is freed");
            }
            return StoreError::DiskFull {
                op,
                path: self.path.clone(),
                detail: source.to_string(),
            };
        }
        StoreError::Sled {
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
            TransactionError::Storage(source) => self.classify(op, source),
        }
    }

    /// The writer lock; its guard protects no data, so a poisoned lock is still usable.
    pub(super) fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Called under the writer lock before a write. `preflight` is the bytes a bulky or new
    /// piece of work needs beyond the reserve (`None`: a small write that may use the reserve).
    /// A database stuck on a full disk is reopened first, once the reserve is free again.
    pub(super) fn writable(&self, op: &'static str, preflight: Option<(u64, &str)>) -> Result<()> {
        if self.stuck.load(Ordering::SeqCst) {
            self.space.check(op, 0, "reopening the store")?;
            self.reopen(op)?;
        }
        match preflight {
            Some((needed, what)) => self.space.check(op, needed, what),
            None => Ok(()),
        }
    }

    /// Closes the stuck database and opens it again (sled replays its log to the last durable
    /// write). Runs under the writer lock, so no write is in flight; reads wait on `trees`.
    fn reopen(&self, op: &'static str) -> Result<()> {
        let mut slot = self.trees.write().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = slot.take() {
            let deadline = Instant::now() + REOPEN_WAIT;
            // Reads that took a handle before the write lock finish first.
            while Arc::strong_count(&old) > 1 {
                if Instant::now() > deadline {
                    *slot = Some(old);
                    return Err(StoreError::DiskFull {
                        op,
                        path: self.path.clone(),
                        detail: "the database is busy; its reopen after a full disk is retried \
                                 on the next write"
                            .into(),
                    });
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(old);
        }
        // sled's background writers may hold its file lock for a moment after the drop.
        let deadline = Instant::now() + REOPEN_WAIT;
        let trees = loop {
            match Trees::open(&self.path) {
                Ok(trees) => break trees,
                Err(e) if Instant::now() < deadline && !is_disk_full(&e) => {
                    tracing::debug!(error = %e, "reopening the store: retrying");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(self.classify(op, e)),
            }
        };
        *slot = Some(Arc::new(trees));
        // Writes applied to the old database but never flushed are gone with it.
        self.group.discard_unflushed();
        self.stuck.store(false, Ordering::SeqCst);
        tracing::warn!(path = %self.path.display(), "space is back: reopened the store");
        Ok(())
    }

    /// Flushes sled's log now, alone (group writers use `applied` and `wait_for`).
    fn flush_now(&self, op: &'static str) -> Result<()> {
        self.t()?.db.flush().map(|_| ()).map_err(self.err(op))
    }

    /// A ticket for a write that has just been applied (call it once the write returned).
    pub(super) fn applied(&self) -> Ticket {
        self.group.applied()
    }

    /// Waits until `ticket` is durable, flushing as the leader of a group when needed. Never
    /// call it under the writer lock: the point is that writers apply while a flush runs.
    pub(super) fn wait_for(&self, op: &'static str, ticket: Ticket) -> Result<()> {
        let lost = || StoreError::DiskFull {
            op,
            path: self.path.clone(),
            detail: "the write was applied but the database was reopened (after a full disk) \
                     before it was flushed, so it was not stored"
                .into(),
        };
        self.group.wait(ticket, || self.flush_now(op), lost)
    }

    /// `applied` then `wait_for`: the write just applied is durable when this returns.
    pub(super) fn durable(&self, op: &'static str) -> Result<()> {
        let ticket = self.applied();
        self.wait_for(op, ticket)
    }

    /// How many flushes of the log the store has run (group commit's figure).
    pub fn flushes(&self) -> u64 {
        self.group.flushes()
    }

    /// Writes the brief of every run when the briefs tree was never built (a database from
    /// before briefs); a marker in `meta` says it is complete, so a crash midway rebuilds it.
    fn build_briefs(&self) -> Result<()> {
        const OP: &str = "open";
        const BUILT: &[u8] = b"run_briefs_built";
        let t = self.t()?;
        if t.meta.contains_key(BUILT).map_err(self.err(OP))? {
            return Ok(());
        }
        t.briefs.clear().map_err(self.err(OP))?;
        let mut n = 0u64;
        for entry in t.runs.iter() {
            let (k, v) = entry.map_err(self.err(OP))?;
            let run: RunRecord = decode(OP, "runs", &k, &v)?;
            let brief = encode_compact(
                OP,
                || format!("brief of run {}", run.id),
                &RunBrief::of(&run),
            )?;
            t.briefs.insert(k, brief).map_err(self.err(OP))?;
            n += 1;
        }
        t.meta.insert(BUILT, &[1u8]).map_err(self.err(OP))?;
        drop(t);
        self.flush_now(OP)?;
        if n > 0 {
            tracing::info!(runs = n, "wrote the brief of every stored run (once)");
        }
        Ok(())
    }

    fn next_id(&self, op: &'static str, key: &[u8], n: u64) -> Result<u64> {
        let _w = self.write_lock();
        self.writable(op, None)?;
        let t = self.t()?;
        let last = match t.meta.get(key).map_err(self.err(op))? {
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
        // No flush of its own: durable with the write that uses the id (see `next_run_id`).
        t.meta
            .insert(key, &keys::id(last + n))
            .map_err(self.err(op))?;
        Ok(next)
    }

    pub(super) fn run_exists(&self, op: &'static str, run: RunId) -> Result<()> {
        if self
            .t()?
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

    /// The seq after a run's last event: past the last entry of its prefix (no scan).
    pub(super) fn next_event_seq(&self, op: &'static str, run: RunId) -> Result<u64> {
        let last = self.t()?.events.scan_prefix(keys::id(run.0)).next_back();
        match last {
            None => Ok(0),
            Some(entry) => {
                let (k, v) = entry.map_err(self.err(op))?;
                let (_, last) =
                    spans::event_range(&k, &v).map_err(corrupt_entry(op, "events", &k))?;
                Ok(last + 1)
            }
        }
    }

    /// A run's events from `from_seq`: from the entry holding it (a span may start before it).
    fn read_events(&self, run: RunId, from_seq: u64) -> Result<Vec<(u64, Event)>> {
        const OP: &str = "events";
        let t = self.t()?;
        let (first, holding) = (keys::pair(run.0, 0), keys::event_span(run, from_seq));
        let mut start = keys::pair(run.0, from_seq).to_vec();
        if let Some(entry) = t.events.range(&first[..]..=&holding[..]).next_back() {
            let (k, v) = entry.map_err(self.err(OP))?;
            let (_, last) = spans::event_range(&k, &v).map_err(corrupt_entry(OP, "events", &k))?;
            if last >= from_seq {
                start = k.to_vec();
            }
        }
        let end = keys::event_span(run, u64::MAX);
        let mut out = Vec::new();
        for entry in t.events.range(&start[..]..=&end[..]) {
            let (k, v) = entry.map_err(self.err(OP))?;
            let (first, items) = spans::events(&k, &v).map_err(corrupt_entry(OP, "events", &k))?;
            for (seq, json) in (first..).zip(items) {
                if seq >= from_seq {
                    out.push((seq, decode(OP, "events", &k, json)?));
                }
            }
        }
        Ok(out)
    }
}

impl Store for SledStore {
    fn next_run_id(&self) -> Result<RunId> {
        self.next_id("next_run_id", NEXT_RUN, 1).map(RunId)
    }

    fn next_experiment_id(&self) -> Result<ExperimentId> {
        self.next_id("next_experiment_id", NEXT_EXPERIMENT, 1)
            .map(ExperimentId)
    }

    fn next_run_ids(&self, n: usize) -> Result<Vec<RunId>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let first = self.next_id("next_run_id", NEXT_RUN, n as u64)?;
        Ok((first..first + n as u64).map(RunId).collect())
    }

    fn commit_applied(&self, ops: &[WriteOp]) -> Result<(Vec<u64>, Ticket)> {
        self.commit_ops(ops)
    }

    fn wait_durable(&self, ticket: Ticket) -> Result<()> {
        self.wait_for("commit", ticket)
    }

    fn newest_ticket(&self) -> Ticket {
        self.group.newest()
    }

    fn get_experiment(&self, id: ExperimentId) -> Result<Option<ExperimentRecord>> {
        const OP: &str = "get_experiment";
        let key = keys::id(id.0);
        let found = self.t()?.experiments.get(key).map_err(self.err(OP))?;
        match found {
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

    fn get_run_brief(&self, id: RunId) -> Result<Option<RunBrief>> {
        const OP: &str = "get_run_brief";
        let key = keys::id(id.0);
        match self.t()?.briefs.get(key).map_err(self.err(OP))? {
            Some(v) => decode(OP, "run_briefs", &key, &v).map(Some),
            None => Ok(None),
        }
    }

    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>> {
        self.read_runs(filter)
    }

    fn list_run_briefs(&self, filter: &RunFilter) -> Result<Vec<RunBrief>> {
        self.read_run_briefs(filter)
    }

    fn count_runs(&self, state: cauda_model::RunState) -> Result<u64> {
        let t = self.t()?;
        let mut n = 0;
        for entry in t.by_state.scan_prefix([keys::state_byte(state)]) {
            entry.map_err(self.err("count_runs"))?;
            n += 1;
        }
        Ok(n)
    }

    fn events(&self, run: RunId, from_seq: u64) -> Result<Vec<(u64, Event)>> {
        self.read_events(run, from_seq)
    }

    fn append_metric(&self, run: RunId, epoch: u32, stage: u8, doc: &[u8]) -> Result<bool> {
        self.store_metric(run, epoch, stage, doc)
    }

    fn append_metric_with_event(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        doc: &[u8],
        event: &Event,
    ) -> Result<Option<u64>> {
        self.store_metric_with_event(run, epoch, stage, doc, event)
    }

    fn append_metrics_with_events(
        &self,
        run: RunId,
        points: &[EpochWrite],
    ) -> Result<Vec<Option<u64>>> {
        self.store_metrics_with_events(run, points)
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
