//! A run without its bulky fields: what `ls` and every scheduling pass read. A stored run
//! carries its whole resolved config (and, once finished, its summary) as JSON of several KB;
//! decoding that for each of 10,000 runs to print a table of names and states was most of the
//! cost of a listing. The sled store keeps a brief of every run in a tree of its own, written in
//! the same transaction as the run.

use serde::{Deserialize, Serialize};

use cauda_model::{
    BatchJob, ExperimentId, GpuMemoryNote, Grant, Millis, ResourceRequest, RunFacts, RunId,
    RunRecord, RunState,
};
use cauda_plugins::spec::Coordinate;

/// A `RunRecord` less `config_json` and `summary_json`.
///
/// Stored as MessagePack by position (`encode_compact`): the order of the fields here (and in
/// the structs inside) is the stored layout. Add a field only at the end, with
/// `#[serde(default)]`; never reorder, remove or retype one (`tests::sled_only` pins this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunBrief {
    pub id: RunId,
    pub experiment: ExperimentId,
    pub name: String,
    pub user: String,
    pub config_hash: String,
    #[serde(default)]
    pub engine: String,
    pub state: RunState,
    pub priority: i32,
    pub submitted_at: Millis,
    pub started_at: Option<Millis>,
    pub finished_at: Option<Millis>,
    pub attempt: u32,
    pub max_retries: u32,
    #[serde(default)]
    pub failures: u32,
    pub request: ResourceRequest,
    pub grants: Vec<Grant>,
    pub pending_reason: Option<String>,
    pub error: Option<String>,
    pub depends_on: Option<RunId>,
    /// `RunRecord::facts` (with the epoch total) and `coordinates`.
    #[serde(default)]
    pub facts: Option<RunFacts>,
    #[serde(default)]
    pub coordinates: Vec<Coordinate>,
    #[serde(default)]
    pub gpu_memory: Box<GpuMemoryNote>,
    #[serde(default)]
    pub batch_job: Option<Box<BatchJob>>,
}

impl RunBrief {
    /// The brief of a run.
    pub fn of(r: &RunRecord) -> Self {
        Self {
            id: r.id,
            experiment: r.experiment,
            name: r.name.clone(),
            user: r.user.clone(),
            config_hash: r.config_hash.clone(),
            engine: r.engine.clone(),
            state: r.state,
            priority: r.priority,
            submitted_at: r.submitted_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            attempt: r.attempt,
            max_retries: r.max_retries,
            failures: r.failures,
            request: r.request.clone(),
            grants: r.grants.clone(),
            pending_reason: r.pending_reason.clone(),
            error: r.error.clone(),
            depends_on: r.depends_on,
            facts: r.facts.clone(),
            coordinates: r.coordinates.clone(),
            gpu_memory: r.gpu_memory.clone(),
            batch_job: r.batch_job.clone(),
        }
    }
}
