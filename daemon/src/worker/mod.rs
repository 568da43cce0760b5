//! The worker side of one attempt (`caudad work`): register with the daemon's `Worker` service,
//! fetch the checkpoint to resume from, train with the engine's own `train` path (or run a
//! command run's program: `command`), stream every epoch and checkpoint back, heartbeat
//! meanwhile, and finish. Stale attempts (fenced by the daemon) stop at once without writing
//! anything. The plugins are the worker binary's own engine (`caudad`'s, or an embedder's: the
//! daemon spawns its own binary), which must have every crate outside cauda the run names.

mod client;
mod command;
mod summary;

use std::time::Duration;

use cauda_plugins::registry::Registry;
use cauda_plugins::spec::ResolvedRun;
use cauda_plugins::train::{self, Checkpoint, EpochRecord, EventSink, TrainError};

use crate::run_config::RunConfig;

pub use client::WorkerRpc;
pub use command::{REPORT_FD, RUN_ROOT_ENV};

/// What `caudad work` is told on its command line.
#[derive(Debug, Clone)]
pub struct WorkerArgs {
    /// The daemon's address, e.g. `http://127.0.0.1:50051`.
    pub daemon_url: String,
    pub run: u64,
    pub attempt: u32,
    /// How long calls keep retrying while the daemon is unreachable before the worker gives up.
    pub patience: Duration,
    /// The attempt's bearer token (from `CAUDA_WORKER_TOKEN`), sent with every call.
    pub token: Option<String>,
    /// The CA (PEM) an `https://` daemon's certificate is verified with (else system roots).
    pub ca_cert: Option<std::path::PathBuf>,
    /// The name the daemon's certificate is checked against (else the URL's host).
    pub tls_server_name: Option<String>,
}

/// Why a worker stopped without training to the end.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The daemon says this attempt is not current (cancelled, retried, daemon restarted).
    #[error("run r-{run} attempt {attempt} was stopped by the daemon: {reason}")]
    Stopped {
        run: u64,
        attempt: u32,
        reason: String,
    },
    #[error("the daemon at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the daemon refused a call: {0}")]
    Refused(String),
    /// The run's config could not be read back, or its hash differs.
    #[error("run r-{run}: {reason}")]
    BadConfig { run: u64, reason: String },
    /// Training failed; the daemon was told (Finish with the failure).
    #[error("training failed: {0}")]
    Train(#[from] TrainError),
    #[error("the checkpoint to resume from is unreadable: {0}")]
    Checkpoint(#[from] cauda_plugins::train::CheckpointError),
    /// A command run's program failed; the daemon was told (Finish with the reason).
    #[error("{0}")]
    Command(String),
}

impl WorkerError {
    /// The process exit code: 3 stopped by the daemon, 4 daemon unreachable, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Stopped { .. } => 3,
            Self::Unreachable { .. } => 4,
            _ => 1,
        }
    }
}

/// Runs one attempt to its end, building its plugins from `registry`.
pub fn run(args: &WorkerArgs, registry: &Registry) -> Result<(), WorkerError> {
    let rpc = WorkerRpc::connect(args)?;
    let start = rpc.register()?;
    rpc.start_heartbeat(Duration::from_millis(u64::from(
        start.heartbeat_interval_ms.max(100),
    )));
    let config = RunConfig::from_json(&format!("r-{} config", args.run), &start.config_json)
        .map_err(|reason| WorkerError::BadConfig {
            run: args.run,
            reason,
        })?;
    let hash = config.config_hash();
    if hash != start.config_hash {
        return Err(WorkerError::BadConfig {
            run: args.run,
            reason: format!(
                "config hash {hash} of the received config differs from the stored {}",
                start.config_hash
            ),
        });
    }
    let run = match config {
        RunConfig::Engine(run) => run,
        RunConfig::Command(run) => return command::run(args, &rpc, &start, &run),
    };
    let resume = match &start.resume {
        Some(_) => Some(Checkpoint::from_bytes(&rpc.fetch_checkpoint()?)?),
        None => None,
    };
    // A stage-2 run starting from its stage-1 run's checkpoint: its own metrics begin with that
    // stage's epochs, so they are contiguous from epoch 1 (resent epochs are duplicates).
    if let (Some(meta), Some(ck)) = (&start.resume, &resume)
        && meta.run_id != args.run
    {
        for record in &ck.header.history {
            rpc.report_epoch(record, None)?;
        }
    }
    let total = train::epochs_total(&run, registry);
    println!(
        "run {} ({}) attempt {}: {} epochs, CUDA_VISIBLE_DEVICES={:?}, resuming after epoch {}",
        start.run_name,
        run.method,
        args.attempt,
        total,
        std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_default(),
        resume
            .as_ref()
            .map_or(0, |c| c.header.history.last().map_or(0, |r| r.epoch))
    );
    let outcome = train_run(&run, registry, resume, &rpc, total);
    match outcome {
        Ok(summary) => {
            let json = summary::summary_json(&summary)?;
            println!("finished: test top-1 {:.4}", summary.last.test_top1);
            rpc.finish(Ok(json))
        }
        Err(WorkerError::Train(e)) => {
            // A sink error carries an RPC failure: the daemon is gone or fenced us; say so
            // rather than report a training failure.
            if let Some(stop) = rpc.take_stop() {
                return Err(stop);
            }
            eprintln!("training failed: {e}");
            rpc.finish(Err(e.to_string()))?;
            Err(WorkerError::Train(e))
        }
        Err(e) => Err(e),
    }
}

fn train_run(
    run: &ResolvedRun,
    registry: &Registry,
    resume: Option<Checkpoint>,
    rpc: &WorkerRpc,
    total: usize,
) -> Result<train::RunSummary, WorkerError> {
    check_extensions(run, registry)?;
    check_data_roots(run)?;
    let data = train::prepare(&run.data).map_err(TrainError::from)?;
    // The daemon stored the run's backend at submission (its spec's or the default there).
    let (backend, devices) = train::run_devices(&run.resources, None).map_err(TrainError::from)?;
    println!(
        "backend {backend} on {:?}{}",
        train::Placement::of(&run.resources),
        match devices.len() {
            1 => String::new(),
            n => format!(", data-parallel over {n} devices"),
        }
    );
    let mut sink = RpcSink {
        rpc,
        total,
        measured: false,
    };
    Ok(train::train_on(
        run, &data, registry, &devices, resume, &mut sink,
    )?)
}

/// Refuses a run that uses plugins of a crate outside cauda this worker lacks, or has in
/// another version: its result would be stored under the identity of code it did not run.
/// (The engine checks cauda's own fingerprint itself.)
fn check_extensions(run: &ResolvedRun, registry: &Registry) -> Result<(), TrainError> {
    let here = registry.extensions();
    if run.extensions.iter().all(|e| here.contains(e.as_str())) {
        return Ok(());
    }
    Err(TrainError::OtherEngine {
        found: crate::engine::run_engine(run),
        current: crate::engine::fingerprint_of(registry),
    })
}

/// Checks the run's data paths against the roots the daemon gave this worker, just before the
/// data is opened: a symlink swapped since submission is refused (a training failure the
/// daemon records, naming the key and the roots).
fn check_data_roots(run: &ResolvedRun) -> Result<(), TrainError> {
    let refuse =
        |message: String| TrainError::from(cauda_plugins::data::DataError::Invalid(message));
    if let Some(roots) = crate::core::DataRoots::from_env().map_err(refuse)? {
        roots.check_run(run).map_err(|e| refuse(e.to_string()))?;
    }
    Ok(())
}

/// The engine's event sink over the worker API: every epoch and checkpoint is stored by the
/// daemon before training goes on.
struct RpcSink<'a> {
    rpc: &'a WorkerRpc,
    total: usize,
    /// The peak GPU memory was measured (after the first epoch this attempt trained).
    measured: bool,
}

impl EventSink for RpcSink<'_> {
    fn on_epoch(&mut self, record: &EpochRecord) -> Result<(), TrainError> {
        let top1 = record
            .eval
            .as_ref()
            .map(|e| format!(" top1 {:.4}", e.test_top1))
            .unwrap_or_default();
        println!(
            "epoch {}/{} stage {} loss {:.4}{top1} ({:.0} img/s)",
            record.epoch, self.total, record.stage, record.train_loss, record.images_per_sec
        );
        let peak = if self.measured {
            None
        } else {
            self.measured = true;
            crate::gpu::own_peak_mb()
        };
        if let Some(mb) = peak {
            println!("peak GPU memory {mb} MiB after epoch {}", record.epoch);
        }
        self.rpc
            .report_epoch(record, peak)
            .map_err(|e| TrainError::Sink(e.to_string()))
    }

    fn on_checkpoint(&mut self, checkpoint: &Checkpoint) -> Result<(), TrainError> {
        let epoch = checkpoint.header.history.last().map_or(0, |r| r.epoch);
        self.rpc
            .upload_checkpoint(epoch, &checkpoint.to_bytes())
            .map_err(|e| TrainError::Sink(e.to_string()))
    }
}
