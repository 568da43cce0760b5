//! `cauda submit FILE [--wait]`: sends a spec file to the daemon, prints the experiment and its
//! runs, and with `--wait` polls the experiment until every run is finished.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cauda_proto::v1::{GetExperimentRequest, RunState, SubmitExperimentRequest};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::{experiment_label, run_label};
use crate::output::{is_terminal, state_name};

/// Largest spec file accepted (256 KiB); larger ones are refused before anything is sent.
pub const MAX_SPEC_BYTES: u64 = 256 * 1024;

/// How often `--wait` asks the daemon for the experiment's state.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// Arguments of `cauda submit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The experiment spec, a TOML file (see `examples/`).
    pub file: PathBuf,
    /// Wait until every run is finished; exit 0 only if all succeeded (1 otherwise).
    #[arg(long)]
    pub wait: bool,
    /// Account the runs to this user instead of the spec's.
    #[arg(long)]
    pub user: Option<String>,
    /// Priority of the runs instead of the spec's (higher runs earlier).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i32>,
    /// Only validate and expand the spec; store and queue nothing.
    #[arg(long, conflicts_with = "wait")]
    pub validate_only: bool,
}

/// Reads a spec file, refusing files over [`MAX_SPEC_BYTES`] and text that is not UTF-8.
pub fn read_spec(path: &Path) -> Result<String, CliError> {
    let io = |source| CliError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_SPEC_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SPEC_BYTES {
        return Err(CliError::Usage(format!(
            "{}: larger than {} KiB, not a spec",
            path.display(),
            MAX_SPEC_BYTES / 1024
        )));
    }
    String::from_utf8(bytes)
        .map_err(|_| CliError::Usage(format!("{}: not UTF-8 text", path.display())))
}

/// Runs `cauda submit`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let spec_toml = read_spec(&args.file)?;
    let source_name = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let mut client = connect(addr).await?;
    let reply = client
        .submit_experiment(SubmitExperimentRequest {
            spec_toml,
            source_name,
            user: args.user,
            priority: args.priority,
            validate_only: args.validate_only,
        })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    let mut text = if args.validate_only {
        format!("spec is valid: {} runs\n", reply.runs.len())
    } else {
        let reused = reply.runs.iter().filter(|r| r.reused).count();
        let mut head = format!(
            "experiment {}: {} runs",
            experiment_label(reply.experiment_id),
            reply.runs.len() - reused
        );
        if reused > 0 {
            head.push_str(&format!(", {reused} reused (already trained or queued)"));
        }
        head + "\n"
    };
    for r in &reply.runs {
        if args.validate_only {
            text.push_str(&format!("  {}\n", r.name));
        } else if r.reused {
            text.push_str(&format!(
                "  {}  {}  (reused)\n",
                run_label(r.run_id),
                r.name
            ));
        } else {
            text.push_str(&format!("  {}  {}\n", run_label(r.run_id), r.name));
        }
    }
    super::emit(&text)?;
    if !args.wait {
        return Ok(());
    }
    let mut last = String::new();
    loop {
        let exp = client
            .get_experiment(GetExperimentRequest {
                experiment_id: reply.experiment_id,
            })
            .await
            .map_err(|s| CliError::from_status(addr, s))?
            .into_inner()
            .experiment
            .ok_or_else(|| CliError::BadReply("GetExperiment returned no experiment".into()))?;
        let c = exp.counts.unwrap_or_default();
        let line = format!(
            "{}: {} queued, {} running, {} succeeded, {} failed, {} cancelled",
            experiment_label(exp.experiment_id),
            c.queued,
            c.running,
            c.succeeded,
            c.failed,
            c.cancelled
        );
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        if !exp.runs.is_empty() && exp.runs.iter().all(|r| is_terminal(r.state)) {
            let bad: Vec<String> = exp
                .runs
                .iter()
                .filter(|r| r.state != RunState::Succeeded as i32)
                .map(|r| {
                    format!(
                        "{} {} ({})",
                        run_label(r.run_id),
                        r.name,
                        state_name(r.state)
                    )
                })
                .collect();
            if bad.is_empty() {
                return Ok(());
            }
            return Err(CliError::RunsFailed(format!(
                "{} of {} runs did not succeed: {}",
                bad.len(),
                exp.runs.len(),
                bad.join(", ")
            )));
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}
