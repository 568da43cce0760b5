//! Slurm's command-line tools as the executor calls them (`sbatch`, `squeue --json`,
//! `scancel`): each call bounded in time and in output size, its failure a typed error that
//! names the command and quotes Slurm's own message.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::squeue::{self, Job};

/// How long one Slurm command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of `squeue --json` output read (a busy cluster's queue).
const MAX_SQUEUE_BYTES: usize = 256 * 1024 * 1024;
/// Most bytes of a failing command's stderr quoted.
const MAX_STDERR_QUOTED: usize = 1024;

/// Why a Slurm command failed.
#[derive(Debug, thiserror::Error)]
pub enum SlurmError {
    #[error("cannot run {command}: {source} (is Slurm installed and on PATH?)")]
    Spawn {
        command: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{command} took longer than {} s", COMMAND_TIMEOUT.as_secs())]
    Timeout { command: &'static str },
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        command: &'static str,
        status: String,
        stderr: String,
    },
    #[error("{command}: {message}")]
    Output {
        command: &'static str,
        message: String,
    },
}

/// Runs `program args`, feeding `stdin`, with `env` added; its stdout on success.
async fn run(
    command: &'static str,
    args: &[String],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> Result<String, SlurmError> {
    let mut cmd = Command::new(command);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|source| SlurmError::Spawn { command, source })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let text = text.to_string();
        // Written while the output is read, so a large script cannot deadlock the pipes.
        tokio::spawn(async move {
            let _ = pipe.write_all(text.as_bytes()).await;
        });
    }
    let output = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| SlurmError::Timeout { command })?
        .map_err(|source| SlurmError::Spawn { command, source })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let cut = stderr
            .char_indices()
            .nth(MAX_STDERR_QUOTED)
            .map_or(stderr, |(i, _)| &stderr[..i]);
        return Err(SlurmError::Failed {
            command,
            status: output.status.to_string(),
            stderr: cut.to_string(),
        });
    }
    if output.stdout.len() > MAX_SQUEUE_BYTES {
        return Err(SlurmError::Output {
            command,
            message: format!(
                "{} bytes of output; the limit is {MAX_SQUEUE_BYTES}",
                output.stdout.len()
            ),
        });
    }
    String::from_utf8(output.stdout).map_err(|_| SlurmError::Output {
        command,
        message: "output is not UTF-8".into(),
    })
}

/// Every job squeue knows of this user (`--me`; queued, running and recently ended).
pub async fn squeue() -> Result<Vec<Job>, SlurmError> {
    let text = run("squeue", &["--json".into(), "--me".into()], None, &[]).await?;
    squeue::parse(&text).map_err(|message| SlurmError::Output {
        command: "squeue",
        message,
    })
}

/// Submits `script` with `args`; the job id.
pub async fn sbatch(
    args: &[String],
    script: &str,
    env: &[(&str, &str)],
) -> Result<u64, SlurmError> {
    let out = run("sbatch", args, Some(script), env).await?;
    super::sbatch::parse_submitted(&out).map_err(|message| SlurmError::Output {
        command: "sbatch",
        message,
    })
}

/// Cancels a job by id (a job that already ended is not an error).
pub async fn scancel_id(job: u64) -> Result<(), SlurmError> {
    run("scancel", &[job.to_string()], None, &[])
        .await
        .map(drop)
}

/// Cancels this user's jobs named `name`.
pub async fn scancel_name(name: &str) -> Result<(), SlurmError> {
    run(
        "scancel",
        &["--me".into(), format!("--name={name}")],
        None,
        &[],
    )
    .await
    .map(drop)
}
