//! The training loop the daemon's workers and `caudad train` run: prepare the long-tailed split,
//! build the model and the run's plugins from the registry, train stage 1, then the decoupled
//! stage 2 or post-hoc classifier transform, reporting every epoch and checkpointing as it goes.

mod batches;
mod checkpoint;
mod decoupled;
mod evaluate;
mod prepare;
mod record;
mod schedule;
mod stage;

pub use batches::{Batch, EpochPlan, Normalizer, for_each_batch};
pub use checkpoint::{Checkpoint, CheckpointError, CheckpointHeader};
pub use prepare::{Prepared, SplitFile, prepare};
pub use record::{EpochRecord, EvalRecord, RunSummary, TauSweep};
pub use schedule::{build_optimizer, learning_rate};

use burn::tensor::Device;
use sha2::{Digest, Sha256};

use crate::registry::Registry;
use crate::spec::ResolvedRun;

/// Errors of a training run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Model(#[from] crate::models::ModelError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Loss(#[from] crate::losses::LossError),
    #[error(transparent)]
    Augment(#[from] crate::augment::AugmentError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error("model or optimizer record: {0}")]
    Record(String),
    #[error("checkpoint belongs to another config (hash {found}, this run is {expected})")]
    ForeignCheckpoint { found: String, expected: String },
    #[error("reporting: {0}")]
    Sink(String),
}

/// Where a run's progress goes: stdout JSON lines for `caudad train`, the daemon for workers.
pub trait EventSink {
    fn on_epoch(&mut self, record: &EpochRecord) -> Result<(), TrainError>;
    fn on_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), TrainError>;
}

/// What every stage of a run shares.
pub struct Context<'a> {
    pub run: &'a ResolvedRun,
    pub data: &'a Prepared,
    pub registry: &'a Registry,
    /// Autodiff device for training.
    pub device: Device,
    /// The plain device for evaluation.
    pub eval_device: Device,
    pub config_hash: String,
    /// `tau log pi` subtracted from logits at evaluation (post-hoc logit adjustment).
    pub posthoc_shift: Option<Vec<f32>>,
}

/// Hash of a resolved run: the identity of its config (sha256 of its canonical JSON).
pub fn config_hash(run: &ResolvedRun) -> String {
    let digest = Sha256::digest(run.to_json().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs a whole training run, resuming from `resume` when given.
pub fn train(
    run: &ResolvedRun,
    data: &Prepared,
    registry: &Registry,
    device: &Device,
    resume: Option<Checkpoint>,
    sink: &mut dyn EventSink,
) -> Result<RunSummary, TrainError> {
    device.seed(run.train.seed);
    let posthoc_shift = run
        .posthoc
        .as_ref()
        .map(|p| evaluate::log_prior_shift(&data.class_counts, p.get("tau") as f32));
    let ctx = Context {
        run,
        data,
        registry,
        device: device.clone().autodiff(),
        eval_device: device.clone(),
        config_hash: config_hash(run),
        posthoc_shift,
    };
    if let Some(ck) = &resume
        && ck.header.config_hash != ctx.config_hash
    {
        return Err(TrainError::ForeignCheckpoint {
            found: ck.header.config_hash.clone(),
            expected: ctx.config_hash.clone(),
        });
    }
    decoupled::run_all(&ctx, resume, sink)
}
