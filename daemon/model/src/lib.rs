//! The daemon's domain model: experiments, runs, their states and resource requests, as the store
//! persists them and the scheduler reasons about them. No protobuf here: the gRPC layer converts.

use cauda_plugins::spec::Coordinate;
use cauda_plugins::train::{EpochRecord, RunSummary};
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (an injected clock supplies them in tests).
pub type Millis = u64;

/// A run's id, unique within a daemon's store, ordered by submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunId(pub u64);

/// An experiment's id (one submitted spec, possibly a grid of runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExperimentId(pub u64);

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r-{}", self.0)
    }
}

impl std::fmt::Display for ExperimentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "e-{}", self.0)
    }
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for devices (or for the run it depends on).
    Queued,
    /// A worker process is (or is being) started for the current attempt.
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    /// A terminal state is never left: a finished run is never run again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// What a run asks of the machine.
///
/// Stored by position inside a run's brief (`cauda-store`'s `brief.rs`): append fields only,
/// each with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ResourceRequest {
    /// Whole GPUs, all on one host; 0 = a CPU slot.
    pub gpus: u32,
    /// A share of one GPU (0, 1], when `gpus == 0` and the run fits on part of a GPU.
    pub gpu_share: Option<f64>,
    /// Estimated GPU memory in MiB, for packing.
    pub gpu_mem_mb: Option<u64>,
}

/// A device as the inventory names it: `cpu:N` or `gpu:N`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DeviceId {
    Cpu(u32),
    Gpu(u32),
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceId::Cpu(i) => write!(f, "cpu:{i}"),
            DeviceId::Gpu(i) => write!(f, "gpu:{i}"),
        }
    }
}

/// A device (or a share of one) given to a run.
///
/// Stored by position inside a run's brief (`cauda-store`'s `brief.rs`): append fields only,
/// each with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub device: DeviceId,
    /// 1.0 for a whole device.
    pub share: f64,
    pub mem_mb: Option<u64>,
}

/// Who asks the core to act: an authenticated user, or the daemon's own callers (no auth
/// configured, the inbox folder), which act as an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    /// May act on anyone's runs.
    pub admin: bool,
}

impl Actor {
    /// The caller when no authentication is configured: may act on every run.
    pub fn unchecked() -> Self {
        Self {
            name: "anonymous".into(),
            admin: true,
        }
    }

    /// Whether this actor may change runs owned by `owner`.
    pub fn may_act_for(&self, owner: &str) -> bool {
        self.admin || self.name == owner
    }
}

/// One run as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: RunId,
    pub experiment: ExperimentId,
    /// The grid point's name, e.g. `fmnist-lt/method=crt,train.seed=1`.
    pub name: String,
    /// The grid coordinates of the point that created it (its stage-1 and balanced reference
    /// runs carry their point's); empty for a spec without `[sweep]` and for runs stored before
    /// coordinates were.
    #[serde(default)]
    pub coordinates: Vec<Coordinate>,
    pub user: String,
    /// The fully resolved run (`ResolvedRun` as JSON) and its sha256.
    pub config_json: String,
    pub config_hash: String,
    /// The engine fingerprint its config was resolved for (the config's `engine`, e.g.
    /// `cauda-plugins 0.1.0 recipe 2`); empty for runs stored before fingerprints.
    #[serde(default)]
    pub engine: String,
    pub state: RunState,
    pub priority: i32,
    pub submitted_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    /// Attempt number of the current or last launch (0 before the first).
    pub attempt: u32,
    pub max_retries: u32,
    /// Failed attempts so far that were retried (a daemon restart is not a failure).
    #[serde(default)]
    pub failures: u32,
    pub request: ResourceRequest,
    pub grants: Vec<Grant>,
    /// Why a queued run is not running, in words.
    pub pending_reason: Option<String>,
    /// Why a failed run failed (exit status, stderr tail, ...).
    pub error: Option<String>,
    /// A run this one waits for (a decoupled stage 2 on its stage 1).
    pub depends_on: Option<RunId>,
    /// The engine's final summary once it succeeded, decoded where it arrived (the worker's
    /// `Finish`); stored as its JSON text under `summary_json`, as before it was typed.
    #[serde(rename = "summary_json", with = "summary_text", default)]
    pub summary: Option<Box<RunSummary>>,
    /// What its config says that listings and plots show, recorded at submission so that they
    /// need not parse the config (`None` for runs stored before it was recorded).
    #[serde(default)]
    pub facts: Option<RunFacts>,
    /// Where its GPU memory reservation came from, its measured peak, its out-of-memory requeue
    /// (boxed: rarely set, and it keeps `WriteOp::PutRun` small).
    #[serde(default)]
    pub gpu_memory: Box<GpuMemoryNote>,
    /// The cluster batch job (Slurm) of the current or last attempt, under the Slurm executor.
    #[serde(default)]
    pub batch_job: Option<Box<BatchJob>>,
}

/// A run's GPU memory story (`core::peak`, `core::oom`): where `request.gpu_mem_mb` came from,
/// what its worker measured, and whether it was requeued after running out of memory.
///
/// Stored by position inside a run's brief (`cauda-store`'s `brief.rs`): append fields only,
/// each with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GpuMemoryNote {
    /// Where `request.gpu_mem_mb` came from, in words (`None`: not reserved, or declared before
    /// this was recorded).
    #[serde(default)]
    pub source: Option<String>,
    /// The peak GPU memory in MiB its worker measured in the first epoch of an attempt.
    #[serde(default)]
    pub peak_mb: Option<u64>,
    /// Requeued once after dying of GPU out-of-memory (a second time fails the run).
    #[serde(default)]
    pub oom_requeued: bool,
}

/// A cluster batch job (Slurm) holding one attempt of a run, as last polled.
///
/// Stored by position inside a run's brief (`cauda-store`'s `brief.rs`): append fields only,
/// each with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchJob {
    /// The scheduler's job id.
    pub id: u64,
    /// The attempt the job runs.
    pub attempt: u32,
    /// The scheduler's state, e.g. `PENDING`, `RUNNING` (empty before the first poll).
    pub state: String,
    /// Why it waits, in the scheduler's words (`Resources`, `Priority`, ...).
    pub reason: Option<String>,
    /// SHA-256 of the attempt's worker token, so a restarted daemon still admits its worker.
    pub token_sha256: Option<String>,
}

/// What a run's config says that listings and plots show (method, ratio, seed, whether it is a
/// balanced reference, its epochs), read from the config once, at submission.
///
/// Stored by position inside a run's brief (`cauda-store`'s `brief.rs`): append fields only,
/// each with `#[serde(default)]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunFacts {
    /// The method (an engine preset, or a command run's label).
    pub method: String,
    /// The imbalance ratio it trains at, when it has one.
    pub imbalance_ratio: Option<f64>,
    pub seed: u64,
    /// A balanced reference run (`data.balanced_variant`).
    pub balanced_reference: bool,
    /// Epochs over every stage.
    pub epochs_total: u32,
}

/// One submitted spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRecord {
    pub id: ExperimentId,
    pub name: String,
    pub user: String,
    pub spec_text: String,
    pub submitted_at: Millis,
    /// Every run the experiment needs: those it created, then the stored ones it reuses.
    pub runs: Vec<RunId>,
    /// Its grid points in order: the rows of its report.
    #[serde(default)]
    pub points: Vec<PointRecord>,
}

/// One grid point of an experiment: the run that answers it and, with relative accuracy, its
/// balanced references (plain CE, the method itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointRecord {
    pub name: String,
    /// Its coordinates in the spec's grid (`method`, `data.imbalance.ratio`, `train.seed`, ...):
    /// what the report groups by. Empty without `[sweep]`; experiments stored before
    /// coordinates were have them read from `name` when loaded ([`PointRecord::grid_coordinates`]).
    #[serde(default)]
    pub coordinates: Vec<Coordinate>,
    pub run: RunId,
    pub references: Option<(RunId, RunId)>,
}

impl PointRecord {
    /// Its grid coordinates. An experiment stored before coordinates were stored has only the
    /// point's name (`name/key=value,...`), so its coordinates are read back from the name: the
    /// one place a name is taken apart, and only for such records.
    pub fn grid_coordinates(&self) -> Vec<Coordinate> {
        if !self.coordinates.is_empty() {
            return self.coordinates.clone();
        }
        let Some((_, labels)) = self.name.rsplit_once('/') else {
            return Vec::new();
        };
        labels
            .split(',')
            .filter_map(|label| label.split_once('='))
            .map(|(key, value)| Coordinate {
                key: key.to_string(),
                value: value.to_string(),
            })
            .collect()
    }
}

/// One epoch's metrics as stored: the engine's record and the attempt that reported it.
///
/// Stored as MessagePack, the pair `[attempt, record]` with the record a map keyed by field
/// name (so a field added later with a default still reads). Reported epochs are the daemon's
/// busiest write, and JSON cost more than the store's own transaction: formatting and parsing
/// a hundred per-class floats was most of an epoch's CPU (docs/RESULTS.md, session 15).
/// Points stored before were JSON (the record's keys and an `attempt` key); they start with `{`,
/// which no MessagePack array does, and still read. The JSON form remains what clients see
/// (`to_json`, the wire's `raw_json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEpoch {
    /// The attempt that reported it (0 for records stored before attempts were).
    #[serde(default)]
    pub attempt: u32,
    #[serde(flatten)]
    pub record: EpochRecord,
}

/// A stored epoch that cannot be encoded or read back.
#[derive(Debug, thiserror::Error)]
pub enum EpochCodecError {
    #[error("stored epoch (JSON): {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored epoch (MessagePack): {0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("stored epoch (MessagePack): {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

impl StoredEpoch {
    /// Reads a stored metric point's bytes, in either stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self, EpochCodecError> {
        if bytes.first() == Some(&b'{') {
            return Ok(serde_json::from_slice(bytes)?);
        }
        let (attempt, record): (u32, EpochRecord) = rmp_serde::from_slice(bytes)?;
        Ok(Self { attempt, record })
    }

    /// The bytes to store.
    pub fn encode(&self) -> Result<Vec<u8>, EpochCodecError> {
        Self::encode_parts(self.attempt, &self.record)
    }

    /// The bytes to store for `record` reported by `attempt`, without building the pair.
    pub fn encode_parts(attempt: u32, record: &EpochRecord) -> Result<Vec<u8>, EpochCodecError> {
        Ok(rmp_serde::to_vec_named(&(attempt, record))?)
    }

    /// The JSON clients see: the record's keys and `attempt`.
    pub fn to_json(&self) -> Result<String, EpochCodecError> {
        Ok(serde_json::to_string(self)?)
    }
}

/// A run's summary in its stored form: the summary's JSON as a string field of the run's JSON
/// (the form runs were stored in before the field was typed, so old stores read unchanged).
mod summary_text {
    use cauda_plugins::train::RunSummary;
    use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(
        summary: &Option<Box<RunSummary>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        summary
            .as_ref()
            .map(|s| serde_json::to_string(s).map_err(serde::ser::Error::custom))
            .transpose()?
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Box<RunSummary>>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                serde_json::from_str(&text)
                    .map(Box::new)
                    .map_err(|e| D::Error::custom(format!("summary_json: {e}")))
            })
            .transpose()
    }
}
