//! The training loop the daemon's workers and `caudad train` run: prepare the long-tailed split,
//! build the model and the run's plugins from the registry, train stage 1, then the decoupled
//! stage 2 or post-hoc classifier transform, reporting every epoch and checkpointing as it goes.

mod aggregation;
mod batches;
mod checkpoint;
mod decoupled;
pub mod device;
mod evaluate;
mod fingerprint;
mod identity;
mod lockstep;
pub mod parallel;
mod prepare;
mod record;
mod schedule;
mod stage;
pub mod stream;
mod teacher;
mod test_time;

pub use batches::{Batch, EpochPlan, Normalizer, Stream, for_each_batch};
pub use checkpoint::{Checkpoint, CheckpointError, CheckpointHeader};
pub use device::{
    Backend, DeviceError, Placement, build_device, host_device, run_device, run_devices,
};
pub use evaluate::log_prior_shift;
pub use fingerprint::{RECIPE_VERSION, engine_fingerprint};
pub use identity::{canonical_json, config_hash};
pub use lockstep::{LockstepConfig, LockstepIndex, StageEntry, StepEntry};
pub use prepare::{Prepared, SplitFile, prepare};
pub use record::{
    AggregatedDistribution, ConfusionRecord, EpochRecord, EvalRecord, MAX_CONFUSION_CLASSES,
    RunSummary, TauSweep,
};
pub use schedule::{build_optimizer, learning_rate};
pub use teacher::Teacher;

use burn::tensor::Device;

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
    #[error(
        "checkpoint belongs to another config or engine (hash {found}, this run is {expected})"
    )]
    ForeignCheckpoint { found: String, expected: String },
    /// The run was resolved for other engine code: training it here would store this engine's
    /// result under that engine's identity.
    #[error(
        "the run was resolved for engine `{found}`, this is `{current}`: resubmit it to train it with this engine"
    )]
    OtherEngine { found: String, current: String },
    /// A stage-2 checkpoint of a distillation run without the teacher it distils from.
    #[error(
        "the stage-2 checkpoint of `{method}` holds no teacher model; a distillation stage \
         writes its teacher into every checkpoint, so this one was not written by it"
    )]
    NoTeacher { method: String },
    #[error("reporting: {0}")]
    Sink(String),
    /// The second sampler stream's epoch is not as long as the main one's (each batch gets a
    /// second batch of the same size).
    #[error(
        "the second sampler `{sampler}` drew {second} images for an epoch of {main}: \
         rebalance.second_sampler must draw one image per image of the main order \
         (reversed, class-balanced, square-root, progressively-balanced or instance do)"
    )]
    StreamLength {
        sampler: String,
        main: usize,
        second: usize,
    },
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error(transparent)]
    Knn(#[from] crate::stage2::KnnError),
    /// SADE's test-time aggregation could not run (`evaluation.test_time_aggregation`).
    #[error("test-time aggregation: {0}")]
    Aggregation(String),
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
    /// Autodiff device for training (data-parallel replica 0's).
    pub device: Device,
    /// Every autodiff device of a data-parallel run, `device` first; just `device` otherwise.
    pub devices: Vec<Device>,
    /// The plain device for evaluation.
    pub eval_device: Device,
    pub config_hash: String,
    /// `tau log pi` subtracted from logits at evaluation (post-hoc logit adjustment).
    pub posthoc_shift: Option<Vec<f32>>,
    /// The lockstep record, when asked for (`bench/lockstep.py` replays it in PyTorch).
    pub lockstep: Option<std::sync::Mutex<lockstep::Recorder>>,
}

/// The stage-1 run of a decoupled method whose first stage does not depend on its second (cRT,
/// LWS, tau-norm; Kang et al. ICLR 2020; [`crate::stage2::Stage2Method::shares_stage1`]): the
/// same run without its stage 2. Several such methods share one stage-1 run (same
/// `config_hash`), and each stage 2 starts from its final checkpoint. `None` for other runs
/// (weight balancing changes its stage 1, so it stays whole), and for a stage 2 the registry
/// does not know.
pub fn stage1_run(run: &ResolvedRun, registry: &Registry) -> Option<ResolvedRun> {
    let stage2 = run.stage2.as_ref()?;
    let method = registry.stage2(&stage2.params).ok()?;
    if !method.shares_stage1() {
        return None;
    }
    let mut first = run.clone();
    first.stage2 = None;
    // A label only (not part of the hash): what `cauda ls` shows for a shared stage 1.
    first.method = format!("{}:stage1", run.method);
    Some(first)
}

/// The epochs a run trains over both stages (the daemon's progress): stage 1's, plus what its
/// stage 2's plan trains (a stage 2 the registry does not know adds none).
pub fn epochs_total(run: &ResolvedRun, registry: &Registry) -> usize {
    let stage2 = run
        .stage2
        .as_ref()
        .and_then(|s| registry.stage2(&s.params).ok())
        .map_or(0, |m| m.plan().epochs(run.train.epochs));
    run.train.epochs + stage2
}

/// Runs a whole training run, resuming from `resume` when given. A run resolved for another
/// engine (`ResolvedRun::engine`) is refused.
pub fn train(
    run: &ResolvedRun,
    data: &Prepared,
    registry: &Registry,
    device: &Device,
    resume: Option<Checkpoint>,
    sink: &mut dyn EventSink,
) -> Result<RunSummary, TrainError> {
    train_on(
        run,
        data,
        registry,
        std::slice::from_ref(device),
        resume,
        sink,
    )
}

/// [`train`] data-parallel on `devices` (the first evaluates and holds the model; see
/// [`parallel`]); one device trains as [`train`].
pub fn train_on(
    run: &ResolvedRun,
    data: &Prepared,
    registry: &Registry,
    devices: &[Device],
    resume: Option<Checkpoint>,
    sink: &mut dyn EventSink,
) -> Result<RunSummary, TrainError> {
    let Some(first) = devices.first() else {
        return Err(TrainError::Record("no device to train on".into()));
    };
    let extra: Vec<Device> = devices[1..].iter().map(|d| d.clone().autodiff()).collect();
    train_inner(run, data, registry, first, &extra, resume, sink, None)
}

/// [`train`], writing the lockstep record of its first steps when `lockstep` is given (a fresh
/// run only: a resumed run's first steps are not its stages' first steps).
pub fn train_recorded(
    run: &ResolvedRun,
    data: &Prepared,
    registry: &Registry,
    device: &Device,
    resume: Option<Checkpoint>,
    sink: &mut dyn EventSink,
    lockstep: Option<&LockstepConfig>,
) -> Result<RunSummary, TrainError> {
    train_inner(run, data, registry, device, &[], resume, sink, lockstep)
}

#[allow(clippy::too_many_arguments)]
fn train_inner(
    run: &ResolvedRun,
    data: &Prepared,
    registry: &Registry,
    device: &Device,
    replicas: &[Device],
    resume: Option<Checkpoint>,
    sink: &mut dyn EventSink,
    lockstep: Option<&LockstepConfig>,
) -> Result<RunSummary, TrainError> {
    identity::check_engine(run)?;
    // Seeded where the weights are drawn (`decoupled::run_all`), under a process-wide lock.
    if lockstep.is_some() && resume.is_some() {
        return Err(TrainError::Sink(
            "a lockstep record needs a fresh run, not a resumed one".into(),
        ));
    }
    let hash = config_hash(run);
    let lockstep = lockstep
        .map(|cfg| lockstep::Recorder::new(cfg, &hash, &data.class_counts, device))
        .transpose()?
        .map(std::sync::Mutex::new);
    let build = crate::registry::BuildContext {
        class_counts: data.class_counts.clone(),
        epochs: run.train.epochs,
    };
    let posthoc_shift = run
        .posthoc
        .as_ref()
        .map(|p| registry.posthoc(p, &build))
        .transpose()?;
    let ctx = Context {
        run,
        data,
        registry,
        device: device.clone().autodiff(),
        devices: std::iter::once(device.clone().autodiff())
            .chain(replicas.iter().cloned())
            .collect(),
        eval_device: device.clone(),
        config_hash: hash,
        posthoc_shift,
        lockstep,
    };
    // A checkpoint of this run, or the final stage-1 checkpoint of its stage-1 run.
    let from_stage1 = |ck: &Checkpoint| {
        ck.header.stage == 1
            && ck.header.epochs_done == run.train.epochs
            && stage1_run(run, registry)
                .is_some_and(|first| config_hash(&first) == ck.header.config_hash)
    };
    if let Some(ck) = &resume
        && ck.header.config_hash != ctx.config_hash
        && !from_stage1(ck)
    {
        return Err(TrainError::ForeignCheckpoint {
            found: ck.header.config_hash.clone(),
            expected: ctx.config_hash.clone(),
        });
    }
    let summary = decoupled::run_all(&ctx, resume, sink)?;
    if let Some(rec) = &ctx.lockstep {
        rec.lock()
            .map_err(|_| TrainError::Sink("lockstep recorder poisoned".into()))?
            .finish()?;
    }
    Ok(summary)
}

impl Context<'_> {
    /// Runs `f` on the lockstep recorder when there is one.
    pub(crate) fn record(
        &self,
        f: impl FnOnce(&mut lockstep::Recorder) -> Result<(), TrainError>,
    ) -> Result<(), TrainError> {
        match &self.lockstep {
            None => Ok(()),
            Some(m) => f(&mut *m
                .lock()
                .map_err(|_| TrainError::Sink("lockstep recorder poisoned".into()))?),
        }
    }

    /// Whether the next step is recorded.
    pub(crate) fn records_step(&self) -> bool {
        self.lockstep
            .as_ref()
            .and_then(|m| m.lock().ok().map(|r| r.wants_step()))
            .unwrap_or(false)
    }
}
