//! The daemon's persistence layer: one `Store` trait for experiments, runs (with indexes by
//! experiment, state and user), per-run events, per-epoch metrics and chunked checkpoints, with a
//! sled implementation for the daemon and an in-memory one for unit tests. Both keep the same
//! semantics (one shared test suite runs against both).
//!
//! Write-ahead: every mutating method is durable (flushed) before it returns, so the daemon acts
//! on a state change only once it would survive a crash. `commit_applied` and `wait_durable`
//! split that in two so that writers can share flushes (group commit, `group_flush`): a write
//! applied but not yet durable may be read, but nobody acts on it or acknowledges it.

mod brief;
mod group_flush;
pub mod handoff;
mod keys;
mod memory_store;
mod sled_checkpoints;
mod sled_commit;
mod sled_delete;
mod sled_ingest;
mod sled_metrics;
mod sled_queries;
mod sled_store;
pub mod space;
mod spans;
#[cfg(test)]
mod tests;

pub use brief::RunBrief;
pub use memory_store::MemoryStore;
pub use sled_store::SledStore;
pub use space::DiskSpace;

use cauda_model::{DeviceId, ExperimentId, ExperimentRecord, Millis, RunId, RunRecord, RunState};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Checkpoint bytes are stored in chunks of this size (1 MiB), the unit `GetCheckpoint` streams.
pub const CHUNK_SIZE: usize = 1 << 20;
/// A log line longer than this (4 KiB) is cut, on a character boundary, before it is stored.
pub const MAX_LOG_LINE: usize = 4096;

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What can go wrong in the store. Every variant names the operation; sled errors name the
/// database path; a record that cannot be decoded names its key (never a panic).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {op}: sled database at {}: {source}", path.display())]
    Sled {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("store {op}: corrupt record under key {key}: {reason}")]
    Corrupt {
        op: &'static str,
        key: String,
        reason: String,
    },
    #[error("store {op}: {what} not found")]
    NotFound { op: &'static str, what: String },
    #[error("store {op}: invalid input: {reason}")]
    Invalid { op: &'static str, reason: String },
    #[error("store {op}: cannot encode {what}: {source}")]
    Encode {
        op: &'static str,
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("store append_metrics: cannot encode epoch {epoch}: {source}")]
    EncodeEpoch {
        epoch: usize,
        #[source]
        source: cauda_model::EpochCodecError,
    },
    #[error("store {op}: the in-memory store's lock was poisoned by a panicking thread")]
    Poisoned { op: &'static str },
    /// The filesystem of the store is full (or below the configured reserve): nothing of this
    /// write was stored; earlier acknowledged writes are intact. Retry once space is freed.
    #[error("store {op}: no space left on device for {}: {detail}", path.display())]
    DiskFull {
        op: &'static str,
        path: PathBuf,
        detail: String,
    },
}

/// Settings of a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// How many of a run's most recent checkpoints (by epoch) are kept, besides the best one.
    /// At least 1 (0 is read as 1: the latest checkpoint is always kept).
    pub keep_checkpoints: usize,
    /// Bytes the store keeps free on its filesystem: checkpoints and new submissions are
    /// refused with `DiskFull` below it, so that running work can still record its end.
    pub min_free_bytes: u64,
}

/// The default `min_free_bytes` (256 MiB; `min_free_disk_mb` in caudad.toml).
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 << 20;

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            keep_checkpoints: 2,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
        }
    }
}

/// Which runs `list_runs` returns; every field set narrows the result. Results are ordered by
/// run id; `after` (exclusive) and `limit` page through them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub experiment: Option<ExperimentId>,
    pub state: Option<RunState>,
    pub user: Option<String>,
    pub limit: Option<usize>,
    pub after: Option<RunId>,
}

impl RunFilter {
    /// Whether `run` passes every filter set (not the paging fields).
    pub fn matches(&self, run: &RunRecord) -> bool {
        self.matches_fields(run.id, run.experiment, run.state, &run.user)
    }

    /// `matches` for a run known by the fields the filter reads (a `RunBrief`).
    pub fn matches_fields(
        &self,
        id: RunId,
        experiment: ExperimentId,
        state: RunState,
        user: &str,
    ) -> bool {
        self.experiment.is_none_or(|e| experiment == e)
            && self.state.is_none_or(|s| state == s)
            && self.user.as_deref().is_none_or(|u| user == u)
            && self.after.is_none_or(|a| id > a)
    }
}

/// A write's place in the store's order (`Store::commit_applied`): once `Store::wait_durable`
/// returns for a ticket, that write and every write applied before it survive a crash. The
/// in-memory store has nothing to flush; its tickets are all 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub u64);

/// One write of an atomic `Store::commit`.
// A run record is the common write and lives a few microseconds in a short Vec per commit, so
// its variant stays unboxed (boxing would add an allocation to every state change).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    PutExperiment(ExperimentRecord),
    /// Insert or replace a run, keeping the indexes consistent with its new state.
    PutRun(RunRecord),
    /// Append an event to a run that exists, or that an earlier op of the same batch puts.
    AppendEvent(RunId, Event),
}

/// One entry of a run's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: Millis,
    pub kind: EventKind,
}

/// What happened to a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A state change; `from` is `None` when the run is created.
    State {
        from: Option<RunState>,
        to: RunState,
        reason: Option<String>,
    },
    /// A line a worker wrote (cut to `MAX_LOG_LINE` bytes when stored).
    Log { stream: LogStream, line: String },
    /// An attempt was launched on these devices (stored just before its change to Running).
    Launch {
        attempt: u32,
        devices: Vec<DeviceId>,
        /// The grants behind `devices`, with their shares.
        #[serde(default)]
        grants: Vec<cauda_model::Grant>,
    },
    /// An epoch's metrics were stored (read them with `Store::metrics`).
    Epoch { epoch: u32, stage: u8, attempt: u32 },
    /// An attempt's process ended.
    Exit {
        attempt: u32,
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogStream {
    Stdout,
    Stderr,
    /// Written by the daemon itself about the run.
    Daemon,
}

impl Event {
    /// The event as stored: a log line cut to at most `MAX_LOG_LINE` bytes on a char boundary.
    pub fn bounded(&self) -> Event {
        let mut event = self.clone();
        if let EventKind::Log { line, .. } = &mut event.kind
            && line.len() > MAX_LOG_LINE
        {
            let mut end = MAX_LOG_LINE;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
        }
        event
    }
}

/// One epoch's metrics of a run, as the worker reported them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricPoint {
    pub epoch: u32,
    /// The training stage (1, or 2 for a decoupled second stage).
    pub stage: u8,
    /// The epoch in its stored encoding (`cauda_model::StoredEpoch::decode` reads it).
    pub doc: Vec<u8>,
}

/// One epoch of `Store::append_metrics_with_events`: its encoded metrics and its `Epoch` event.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochWrite {
    pub epoch: u32,
    /// The training stage (1, or 2 for a decoupled second stage).
    pub stage: u8,
    pub doc: EpochDoc,
    pub event: Event,
}

/// A reported epoch in its stored encoding (`cauda_model::StoredEpoch`), valid by
/// construction: encoded here from the typed record, or checked once when it comes as bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochDoc(Vec<u8>);

impl EpochDoc {
    /// The stored form of `record`, reported by `attempt`.
    pub fn encode(attempt: u32, record: &cauda_plugins::train::EpochRecord) -> Result<Self> {
        cauda_model::StoredEpoch::encode_parts(attempt, record)
            .map(Self)
            .map_err(|source| StoreError::EncodeEpoch {
                epoch: record.epoch,
                source,
            })
    }

    /// `bytes`, once they read as a stored epoch.
    pub fn parse(op: &'static str, bytes: Vec<u8>) -> Result<Self> {
        check_epoch_doc(op, &bytes)?;
        Ok(Self(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What the store knows of one stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub run: RunId,
    pub attempt: u32,
    pub epoch: u32,
    /// Total bytes.
    pub size: u64,
    /// Number of `CHUNK_SIZE` chunks.
    pub chunks: u32,
    pub is_best: bool,
    /// SHA-256 of the bytes, 64 lowercase hex digits (computed by the store when written).
    #[serde(default)]
    pub sha256: String,
}

/// The persistence layer. Methods are synchronous and may wait for a flush, so async code calls
/// them off its runtime's workers (`spawn_blocking`); each mutating one is durable before it
/// returns, except `commit_applied`, whose durability `wait_durable` waits for.
pub trait Store: Send + Sync {
    /// A fresh run id (from 1 up). Taking it writes no flush of its own: the counter becomes
    /// durable with the next durable write (flushes cover the log in order), so an id that any
    /// durable record holds, or that a caller was told after a durable write, is never handed
    /// out again, even across restarts; an id taken by a write that never became durable may be.
    fn next_run_id(&self) -> Result<RunId>;
    /// A fresh experiment id (from 1 up), under the same rule as `next_run_id`.
    fn next_experiment_id(&self) -> Result<ExperimentId>;
    /// `n` fresh run ids, consecutive in the sled store (one counter write for a whole grid).
    fn next_run_ids(&self, n: usize) -> Result<Vec<RunId>> {
        (0..n).map(|_| self.next_run_id()).collect()
    }

    /// Apply all of `ops` or none of them, durably. Returns the sequence numbers of the
    /// appended events, in the order of the `AppendEvent` ops.
    fn commit(&self, ops: &[WriteOp]) -> Result<Vec<u64>> {
        let (seqs, ticket) = self.commit_applied(ops)?;
        self.wait_durable(ticket)?;
        Ok(seqs)
    }

    /// `commit` up to the point where it is applied: readers see it when this returns, but it
    /// is durable only once `wait_durable(ticket)` has returned (nobody may act on it or
    /// acknowledge it before). Lets callers release their locks before the flush and share it.
    fn commit_applied(&self, ops: &[WriteOp]) -> Result<(Vec<u64>, Ticket)>;

    /// Returns once the write of `ticket`, and every write applied before it, is durable; one
    /// flush serves every writer waiting when it starts (group commit).
    fn wait_durable(&self, ticket: Ticket) -> Result<()>;

    /// The newest write applied so far: `wait_durable` of it makes everything applied durable.
    fn newest_ticket(&self) -> Ticket {
        Ticket::default()
    }

    fn get_experiment(&self, id: ExperimentId) -> Result<Option<ExperimentRecord>>;
    /// Experiments ordered by id, those after `after` (exclusive), at most `limit`.
    fn list_experiments(
        &self,
        after: Option<ExperimentId>,
        limit: Option<usize>,
    ) -> Result<Vec<ExperimentRecord>>;
    fn get_run(&self, id: RunId) -> Result<Option<RunRecord>>;
    /// One run's brief (no config or summary to decode: the hot paths' fence reads it).
    fn get_run_brief(&self, id: RunId) -> Result<Option<RunBrief>> {
        Ok(self.get_run(id)?.as_ref().map(RunBrief::of))
    }
    /// Runs passing `filter`, ordered by id; an index answers the experiment, state or user filter.
    fn list_runs(&self, filter: &RunFilter) -> Result<Vec<RunRecord>>;
    /// `list_runs` without the bulky fields (config and summary JSON): what a listing or a
    /// scheduling pass reads. The sled store keeps them in a tree of their own.
    fn list_run_briefs(&self, filter: &RunFilter) -> Result<Vec<RunBrief>> {
        Ok(self.list_runs(filter)?.iter().map(RunBrief::of).collect())
    }
    /// How many runs are in `state`, without reading them (for monitoring).
    fn count_runs(&self, state: RunState) -> Result<u64> {
        let runs = self.list_runs(&RunFilter {
            state: Some(state),
            ..RunFilter::default()
        })?;
        Ok(runs.len() as u64)
    }
    /// A run's events with sequence number `>= from_seq` (sequence numbers count from 0).
    fn events(&self, run: RunId, from_seq: u64) -> Result<Vec<(u64, Event)>>;

    /// Store an epoch's metrics once: `false` (and nothing written) when that epoch of that run
    /// is already stored (a restarted worker may resend). `doc` must read as a `StoredEpoch`.
    fn append_metric(&self, run: RunId, epoch: u32, stage: u8, doc: &[u8]) -> Result<bool>;
    /// `append_metric` and `append_event` as ONE durable write, so that a reported epoch and its
    /// `EventKind::Epoch` event cost one flush: both are stored iff that epoch of that run is not
    /// stored yet. Returns the event's sequence number (numbered with the run's other events),
    /// or `None`, with nothing written, for a duplicate. `doc` must read as a `StoredEpoch`.
    fn append_metric_with_event(
        &self,
        run: RunId,
        epoch: u32,
        stage: u8,
        doc: &[u8],
        event: &Event,
    ) -> Result<Option<u64>>;
    /// `append_metric_with_event` for several epochs of one run at once (a worker's batch),
    /// all stored in one durable write: per epoch, its event's sequence number, or `None` for
    /// an epoch already stored (idempotent per (run, epoch)). Every doc is valid by its type.
    fn append_metrics_with_events(
        &self,
        run: RunId,
        points: &[EpochWrite],
    ) -> Result<Vec<Option<u64>>> {
        points
            .iter()
            .map(|p| {
                self.append_metric_with_event(run, p.epoch, p.stage, p.doc.as_bytes(), &p.event)
            })
            .collect()
    }
    /// A run's metrics in epoch order.
    fn metrics(&self, run: RunId) -> Result<Vec<MetricPoint>>;

    /// The highest stored epoch of a run (0 when none).
    fn last_epoch(&self, run: RunId) -> Result<u32> {
        Ok(self.metrics(run)?.last().map_or(0, |m| m.epoch))
    }

    /// One epoch's metrics of a run, when stored.
    fn metric(&self, run: RunId, epoch: u32) -> Result<Option<MetricPoint>> {
        Ok(self.metrics(run)?.into_iter().find(|m| m.epoch == epoch))
    }

    /// Store a checkpoint (replacing one of the same epoch), then drop all but the run's last
    /// `keep_checkpoints` checkpoints by epoch, its best (the highest epoch stored with
    /// `is_best`) and the one just written (kept even when older epochs exist, as after a retry
    /// that resumed from an earlier checkpoint). The checkpoint is visible only once all its
    /// chunks are written.
    fn put_checkpoint(
        &self,
        run: RunId,
        attempt: u32,
        epoch: u32,
        bytes: &[u8],
        is_best: bool,
    ) -> Result<CheckpointMeta>;
    /// The run's stored checkpoints, by epoch.
    fn list_checkpoints(&self, run: RunId) -> Result<Vec<CheckpointMeta>>;
    /// One chunk of a stored checkpoint (for streaming without loading it whole).
    fn checkpoint_chunk(&self, run: RunId, epoch: u32, index: u32) -> Result<Option<Vec<u8>>>;
    /// A stored checkpoint and its bytes.
    fn checkpoint(&self, run: RunId, epoch: u32) -> Result<Option<(CheckpointMeta, Vec<u8>)>>;

    /// Make every earlier write durable (mutating methods already do so before returning).
    fn flush(&self) -> Result<()>;

    /// Removes a run and everything stored under it (record, index entries, events, metrics,
    /// checkpoints) at once; false when there was no such run. Experiments are not touched.
    fn delete_run(&self, run: RunId) -> Result<bool>;

    /// Removes an experiment's record (not its runs); false when there was none.
    fn delete_experiment(&self, id: ExperimentId) -> Result<bool>;

    /// Insert or replace one experiment.
    fn put_experiment(&self, experiment: &ExperimentRecord) -> Result<()> {
        self.commit(&[WriteOp::PutExperiment(experiment.clone())])
            .map(|_| ())
    }

    /// Insert or replace one run (its indexes follow its new experiment, state and user).
    fn put_run(&self, run: &RunRecord) -> Result<()> {
        self.commit(&[WriteOp::PutRun(run.clone())]).map(|_| ())
    }

    /// Append an event to an existing run's log; returns its sequence number.
    fn append_event(&self, run: RunId, event: &Event) -> Result<u64> {
        let seqs = self.commit(&[WriteOp::AppendEvent(run, event.clone())])?;
        seqs.first().copied().ok_or(StoreError::Invalid {
            op: "append_event",
            reason: "commit returned no sequence number".into(),
        })
    }

    /// The checkpoint with the highest epoch.
    fn latest_checkpoint(&self, run: RunId) -> Result<Option<(CheckpointMeta, Vec<u8>)>> {
        match self.list_checkpoints(run)?.last() {
            Some(meta) => self.checkpoint(run, meta.epoch),
            None => Ok(None),
        }
    }

    /// The best checkpoint (highest epoch stored with `is_best`).
    fn best_checkpoint(&self, run: RunId) -> Result<Option<(CheckpointMeta, Vec<u8>)>> {
        match self.list_checkpoints(run)?.iter().rev().find(|m| m.is_best) {
            Some(meta) => self.checkpoint(run, meta.epoch),
            None => Ok(None),
        }
    }
}

/// The epochs to drop once `metas` (one run's checkpoints, sorted by epoch, the one of epoch
/// `written` included) are stored: all but the last `keep`, the best and the one just written.
pub(crate) fn evicted_epochs(metas: &[CheckpointMeta], keep: usize, written: u32) -> Vec<u32> {
    let keep = keep.max(1);
    let best = metas.iter().rev().find(|m| m.is_best).map(|m| m.epoch);
    let cut = metas.len().saturating_sub(keep);
    metas[..cut]
        .iter()
        .map(|m| m.epoch)
        .filter(|&e| Some(e) != best && e != written)
        .collect()
}

/// Reject metrics that are not a stored epoch (`cauda_model::StoredEpoch`).
pub(crate) fn check_epoch_doc(op: &'static str, doc: &[u8]) -> Result<()> {
    cauda_model::StoredEpoch::decode(doc)
        .map(|_| ())
        .map_err(|e| StoreError::Invalid {
            op,
            reason: format!("metrics are not a stored epoch: {e}"),
        })
}

/// SHA-256 of `bytes` as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    cauda_plugins::hex::ToHex::to_hex(&sha2::Sha256::digest(bytes)[..])
}

/// The chunk count of a checkpoint of `len` bytes.
pub(crate) fn chunk_count(op: &'static str, len: usize) -> Result<u32> {
    u32::try_from(len.div_ceil(CHUNK_SIZE)).map_err(|_| StoreError::Invalid {
        op,
        reason: format!("checkpoint of {len} bytes is too large"),
    })
}
