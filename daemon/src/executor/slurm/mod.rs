//! The Slurm executor: every attempt of a run is one `sbatch` job named
//! `<prefix>-<run>-<attempt>` that runs `caudad work` on a compute node, which dials back to the
//! daemon's worker service (metrics and checkpoints flow exactly as for local runs). Slurm
//! places and queues the jobs; the scheduling policy dispatches every ready run at once (`Placement::Cluster`).
//! `launch` and `cancel` only queue commands: one driver task (`poller`) runs them in order and
//! polls `squeue` once per interval for all jobs (see docs/SLURM.md).

mod cli;
mod config;
mod log_tail;
mod poller;
mod reconcile;
mod sbatch;
mod squeue;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

pub use cli::SlurmError;
pub use config::SlurmConfig;
pub use reconcile::{Action, OurJob, reconcile};
pub use sbatch::{batch_script, gres, job_name, parse_job_name, sbatch_args};
pub use squeue::{Job, Phase, parse as parse_squeue};

use super::WorkerTokens;
use crate::core::{Daemon, Executor};
use crate::model::{RunId, RunRecord};
use log_tail::LogTails;

/// The Slurm executor's resolved settings.
#[derive(Debug, Clone)]
pub struct SlurmSettings {
    pub config: SlurmConfig,
    /// The `caudad` binary the jobs run.
    pub caudad: PathBuf,
    /// The daemon's address as workers dial it.
    pub daemon_url: String,
    /// Where the jobs' output files go.
    pub log_dir: PathBuf,
    /// Variables every job gets beside its token (the daemon's CA and TLS name, the data
    /// roots): `--export=ALL` carries them from sbatch's environment into the job.
    pub env: Vec<(String, String)>,
}

impl SlurmSettings {
    /// The output file of `(run, attempt)`'s job.
    pub fn log_path(&self, run: RunId, attempt: u32) -> PathBuf {
        self.log_dir.join(format!(
            "{}.log",
            job_name(&self.config.job_name_prefix, run, attempt)
        ))
    }
}

/// What the driver task is asked to do, in order.
#[derive(Debug)]
enum Command {
    Launch(Box<RunRecord>),
    Cancel { run: RunId, attempt: u32 },
}

/// Submits attempts to Slurm (through the driver task) and hands out their worker tokens.
#[derive(Clone)]
pub struct SlurmExecutor {
    settings: Arc<SlurmSettings>,
    commands: mpsc::UnboundedSender<Command>,
    tokens: WorkerTokens,
    /// The jobs' followed output files: read by the poller each interval, and for one run by
    /// the core when its worker finishes (`unread_output`).
    tails: Arc<Mutex<LogTails>>,
}

/// The driver's end of the executor, until `start` gets the daemon.
pub struct SlurmDriver {
    commands: mpsc::UnboundedReceiver<Command>,
    executor: SlurmExecutor,
}

impl std::fmt::Debug for SlurmExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlurmExecutor")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SlurmExecutor {
    /// An executor whose commands wait for the returned driver to be started.
    pub fn new(settings: SlurmSettings) -> Result<(Self, SlurmDriver), SlurmError> {
        std::fs::create_dir_all(&settings.log_dir).map_err(|source| SlurmError::Output {
            command: "sbatch",
            message: format!(
                "creating the job log folder {}: {source}",
                settings.log_dir.display()
            ),
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let executor = Self {
            settings: Arc::new(settings),
            commands: tx,
            tokens: WorkerTokens::default(),
            tails: Arc::default(),
        };
        let driver = SlurmDriver {
            commands: rx,
            executor: executor.clone(),
        };
        Ok((executor, driver))
    }

    /// The tokens this executor hands its workers (for the gRPC worker gate).
    pub fn tokens(&self) -> WorkerTokens {
        self.tokens.clone()
    }

    pub fn settings(&self) -> &SlurmSettings {
        &self.settings
    }

    /// The followed logs (never held across an await or a call into the core).
    fn tails(&self) -> MutexGuard<'_, LogTails> {
        self.tails
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// At start-up, before the daemon recovers: the (run, attempt)s whose jobs Slurm still
    /// queues or runs (never requeued), whose runs stay running. Their workers' tokens are
    /// admitted again by `SlurmDriver::start`. An unreachable Slurm is an error: recovering
    /// without knowing would launch those attempts twice.
    pub async fn live_attempts(&self) -> Result<HashSet<(RunId, u32)>, SlurmError> {
        let prefix = &self.settings.config.job_name_prefix;
        Ok(cli::squeue()
            .await?
            .into_iter()
            .filter(|j| j.active() && j.restarts == 0)
            .filter_map(|j| parse_job_name(prefix, &j.name))
            .collect())
    }
}

impl SlurmDriver {
    /// Starts the driver task on the current runtime: it admits the tokens of the attempts
    /// kept running, then runs commands and polls until the executor is dropped.
    pub fn start(self, daemon: Arc<Daemon>) {
        let task = poller::Poller::new(self.executor, daemon);
        tokio::spawn(task.run(self.commands));
    }
}

impl Executor for SlurmExecutor {
    fn launch(&self, run: &RunRecord) {
        if self
            .commands
            .send(Command::Launch(Box::new(run.clone())))
            .is_err()
        {
            tracing::error!(run_id = %run.id, "the slurm driver is gone; launch dropped");
        }
    }

    fn unread_output(&self, run: RunId) -> Vec<String> {
        self.tails().read_run(run)
    }

    fn cancel(&self, run: &RunRecord) {
        self.tokens.revoke(run.id, run.attempt);
        let _ = self.commands.send(Command::Cancel {
            run: run.id,
            attempt: run.attempt,
        });
    }

    fn placement(&self) -> crate::scheduler::Placement {
        crate::scheduler::Placement::Cluster
    }
}
