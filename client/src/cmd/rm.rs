//! `cauda rm RUN | --experiment E`: deletes finished runs (records, metrics, logs,
//! checkpoints) or a whole experiment, and says what went. The daemon refuses, naming why,
//! another user's runs, unfinished runs, and runs that others depend on or reuse.

use cauda_proto::v1::{DeleteRunRequest, delete_run_request::Target};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::{parse_experiment_id, parse_run_id, run_label};

/// Arguments of `cauda rm`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false, id = "target")]
pub struct Args {
    /// The finished run to delete (`r-12` or `12`).
    #[arg(value_parser = parse_run_id, group = "target")]
    pub run: Option<u64>,
    /// Delete this experiment and every run it created (`e-3` or `3`).
    #[arg(long, short, value_parser = parse_experiment_id, group = "target")]
    pub experiment: Option<u64>,
}

/// Runs `cauda rm`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let target = match (args.run, args.experiment) {
        (Some(run), None) => Target::RunId(run),
        (None, Some(exp)) => Target::ExperimentId(exp),
        _ => {
            return Err(CliError::Usage(
                "give either a run or --experiment, not both".into(),
            ));
        }
    };
    let mut client = connect(addr).await?;
    let reply = client
        .delete_run(DeleteRunRequest {
            target: Some(target),
        })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    let runs: Vec<String> = reply
        .deleted_run_ids
        .iter()
        .map(|&id| run_label(id))
        .collect();
    let mut text = if runs.is_empty() {
        "deleted no runs\n".to_string()
    } else {
        format!("deleted {}\n", runs.join(", "))
    };
    for id in &reply.deleted_experiment_ids {
        text.push_str(&format!("deleted experiment e-{id}\n"));
    }
    super::emit(&text)
}
