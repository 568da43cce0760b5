//! The Slurm executor's one driver task: it runs launch and cancel commands in the order the
//! core gave them (a cancel never overtakes its launch), and every poll interval takes one
//! `squeue` snapshot, follows the jobs' logs and acts on `reconcile`'s verdict through the
//! core (which persists each change before the poller cancels anything).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::reconcile::{Action, OurJob, reconcile};
use super::sbatch::{batch_script, job_name, parse_job_name, sbatch_args};
use super::{Command, SlurmExecutor, cli};
use crate::core::{Daemon, ProcessExit};
use crate::executor::WORKER_TOKEN_ENV;
use crate::model::{BatchJob, RunId, RunRecord, RunState};
use crate::store::{LogStream, RunFilter};

pub(super) struct Poller {
    exec: SlurmExecutor,
    daemon: Arc<Daemon>,
    /// Jobs this poller saw running (a job's first RUNNING poll is a sign of life).
    seen_running: HashSet<u64>,
}

impl Poller {
    pub(super) fn new(exec: SlurmExecutor, daemon: Arc<Daemon>) -> Self {
        Self {
            exec,
            daemon,
            seen_running: HashSet::new(),
        }
    }

    pub(super) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        self.admit_kept_tokens();
        let every = Duration::from_millis(self.exec.settings.config.poll_interval_ms);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                first = commands.recv() => {
                    let Some(first) = first else { return };
                    let mut batch = vec![first];
                    while let Ok(next) = commands.try_recv() {
                        batch.push(next);
                    }
                    self.run_commands(batch).await;
                }
                _ = ticks.tick() => {
                    if let Err(e) = self.poll().await {
                        tracing::warn!(error = %e, "slurm poll failed; retrying next interval");
                        self.daemon.recorder().cluster_poll_failed();
                    }
                }
            }
        }
    }

    /// The runs kept running at start-up: their workers' tokens work again.
    fn admit_kept_tokens(&self) {
        for run in self.running() {
            if let Some(job) = &run.batch_job
                && job.attempt == run.attempt
                && let Some(hash) = &job.token_sha256
            {
                self.exec.tokens.admit_hash(hash, run.id, run.attempt);
            }
        }
    }

    fn running(&self) -> Vec<RunRecord> {
        self.daemon
            .list_runs(&RunFilter {
                state: Some(RunState::Running),
                ..RunFilter::default()
            })
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "listing running runs failed");
                Vec::new()
            })
    }

    async fn run_commands(&mut self, batch: Vec<Command>) {
        let launches = batch.iter().any(|c| matches!(c, Command::Launch(_)));
        // One snapshot for every launch of the batch: a job already named for its attempt
        // (the daemon died after sbatch) is adopted, not submitted twice.
        let existing = if launches {
            match cli::squeue().await {
                Ok(jobs) => Some(jobs),
                Err(e) => {
                    tracing::warn!(error = %e, "squeue before sbatch failed");
                    None
                }
            }
        } else {
            None
        };
        for command in batch {
            match command {
                Command::Launch(run) => self.launch(&run, existing.as_deref()).await,
                Command::Cancel { run, attempt } => {
                    let name = job_name(&self.exec.settings.config.job_name_prefix, run, attempt);
                    if let Err(e) = cli::scancel_name(&name).await {
                        tracing::error!(run_id = %run, attempt, error = %e, "scancel failed");
                    }
                }
            }
        }
    }

    async fn launch(&mut self, run: &RunRecord, existing: Option<&[super::Job]>) {
        let settings = self.exec.settings.clone();
        let name = job_name(&settings.config.job_name_prefix, run.id, run.attempt);
        let log = settings.log_path(run.id, run.attempt);
        let Some(existing) = existing else {
            // Without a snapshot a submission could duplicate a job: the attempt is lost
            // instead, and retried.
            self.lost(
                run.id,
                run.attempt,
                "squeue failed before sbatch".into(),
                String::new(),
            );
            return;
        };
        if let Some(job) = existing.iter().find(|j| j.name == name && j.active()) {
            tracing::info!(run_id = %run.id, attempt = run.attempt, job = job.id, "adopting the existing slurm job");
            self.exec.tails().follow(job.id, run.id, log, false);
            self.record(run.id, run.attempt, job.id, None);
            return;
        }
        let token = self.exec.tokens.issue(run.id, run.attempt);
        let args = sbatch_args(&settings.config, run, &log);
        let script = batch_script(
            &settings.caudad,
            &settings.daemon_url,
            run.id,
            run.attempt,
            settings.config.worker_patience_secs,
        );
        let env: Vec<(&str, &str)> = settings
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([(WORKER_TOKEN_ENV, token.as_str())])
            .collect();
        match cli::sbatch(&args, &script, &env).await {
            Ok(id) => {
                tracing::info!(run_id = %run.id, attempt = run.attempt, job = id, "submitted to slurm");
                self.exec.tails().follow(id, run.id, log, true);
                let hash = crate::store::sha256_hex(token.as_bytes());
                self.record(run.id, run.attempt, id, Some(hash));
            }
            Err(e) => {
                self.exec.tokens.revoke(run.id, run.attempt);
                self.lost(
                    run.id,
                    run.attempt,
                    format!("sbatch failed: {e}"),
                    String::new(),
                );
            }
        }
    }

    fn record(&self, run: RunId, attempt: u32, id: u64, token_sha256: Option<String>) {
        let job = BatchJob {
            id,
            attempt,
            state: "SUBMITTED".into(),
            reason: None,
            token_sha256,
        };
        if let Err(e) = self.daemon.record_batch_job(run, attempt, job) {
            tracing::error!(run_id = %run, attempt, error = %e, "recording the slurm job failed");
        }
    }

    /// The attempt's worker is gone without finishing: the core's retry path.
    fn lost(&self, run: RunId, attempt: u32, why: String, log_tail: String) {
        self.exec.tokens.revoke(run, attempt);
        let exit = ProcessExit {
            code: None,
            signal: None,
            stderr_tail: join_tail(&log_tail, &why),
        };
        if let Err(e) = self.daemon.worker_exited(run, attempt, &exit) {
            tracing::error!(run_id = %run, attempt, error = %e, "recording a lost slurm job failed");
        }
    }

    async fn poll(&mut self) -> Result<(), cli::SlurmError> {
        let prefix = self.exec.settings.config.job_name_prefix.clone();
        // The snapshot before the runs: every job in it was submitted after its attempt was
        // stored, so a job no running attempt owns is truly stale.
        let jobs: Vec<OurJob> = cli::squeue()
            .await?
            .into_iter()
            .filter_map(|job| {
                let (run, attempt) = parse_job_name(&prefix, &job.name)?;
                Some(OurJob { run, attempt, job })
            })
            .collect();
        let running = self.running();
        let lines = self.exec.tails().read_all();
        self.store_lines(lines);
        // Jobs an earlier daemon launched: follow their logs from now on.
        for run in &running {
            if let Some(j) = jobs
                .iter()
                .find(|j| j.run == run.id && j.attempt == run.attempt && j.job.active())
            {
                let path = self.exec.settings.log_path(run.id, run.attempt);
                // `follow` keeps a log it already follows as it is.
                self.exec.tails().follow(j.job.id, run.id, path, false);
            }
        }
        for action in reconcile(&running, &jobs, &self.seen_running) {
            self.act(action).await;
        }
        for j in &jobs {
            if j.job.phase() == super::Phase::Running {
                self.seen_running.insert(j.job.id);
            }
        }
        // Logs of jobs that are over (or gone) are read to their end and dropped.
        let active: HashSet<u64> = jobs
            .iter()
            .filter(|j| j.job.active())
            .map(|j| j.job.id)
            .collect();
        let followed = self.exec.tails().jobs();
        for id in followed {
            if !active.contains(&id) {
                let (lines, _) = self.exec.tails().finish(id);
                self.store_lines(lines);
            }
        }
        self.seen_running.retain(|id| active.contains(id));
        tracing::debug!(jobs = jobs.len(), active = active.len(), followed = ?self.exec.tails().jobs(), "slurm poll");
        Ok(())
    }

    async fn act(&mut self, action: Action) {
        match action {
            Action::Alive { run, attempt } => self.daemon.mark_alive(run, attempt),
            Action::Record { run, job } => {
                let attempt = job.attempt;
                if let Err(e) = self.daemon.record_batch_job(run, attempt, job) {
                    tracing::error!(run_id = %run, attempt, error = %e, "recording a slurm job state failed");
                }
            }
            Action::Requeue {
                run,
                attempt,
                job,
                why,
            } => {
                // Stored first (the run is queued again), then the job is cancelled.
                self.exec.tokens.revoke(run, attempt);
                match self.daemon.requeue_attempt(run, attempt, &why) {
                    Ok(_) => {
                        let (lines, _) = self.exec.tails().finish(job);
                        self.store_lines(lines);
                        if let Err(e) = cli::scancel_id(job).await {
                            tracing::error!(job, error = %e, "scancel of a requeued job failed");
                        }
                    }
                    Err(e) => tracing::error!(run_id = %run, error = %e, "requeueing failed"),
                }
            }
            Action::Ended {
                run,
                attempt,
                job,
                code,
                signal,
                why,
            } => {
                let (lines, tail) = self.exec.tails().finish(job);
                self.store_lines(lines);
                self.exec.tokens.revoke(run, attempt);
                let exit = ProcessExit {
                    code,
                    signal,
                    stderr_tail: join_tail(&tail, &why),
                };
                if let Err(e) = self.daemon.worker_exited(run, attempt, &exit) {
                    tracing::error!(run_id = %run, attempt, error = %e, "recording a slurm job's end failed");
                }
            }
            Action::Cancel { job, why } => {
                tracing::info!(job, %why, "cancelling a stale slurm job");
                if let Err(e) = cli::scancel_id(job).await {
                    tracing::error!(job, error = %e, "scancel failed");
                }
            }
        }
    }

    fn store_lines(&self, lines: Vec<(RunId, String)>) {
        if lines.is_empty() {
            return;
        }
        let lines: Vec<_> = lines
            .into_iter()
            .map(|(run, line)| (run, LogStream::Stdout, line))
            .collect();
        if let Err(e) = self.daemon.append_logs(&lines) {
            tracing::error!(error = %e, "storing slurm job output failed");
        }
    }
}

/// The log's last lines, then why the attempt ended.
fn join_tail(tail: &str, why: &str) -> String {
    if tail.trim().is_empty() {
        why.to_string()
    } else {
        format!("{}\n{why}", tail.trim_end())
    }
}
