//! `cauda cancel RUN | --experiment E`: cancels one run or every unfinished run of an
//! experiment and says which were cancelled and which had already finished.

use cauda_proto::v1::{CancelRunRequest, cancel_run_request::Target};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::{parse_experiment_id, parse_run_id, run_label};

/// Arguments of `cauda cancel`.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false, id = "target")]
pub struct Args {
    /// The run to cancel (`r-12` or `12`).
    #[arg(value_parser = parse_run_id, group = "target")]
    pub run: Option<u64>,
    /// Cancel every unfinished run of this experiment (`e-3` or `3`).
    #[arg(long, short, value_parser = parse_experiment_id, group = "target")]
    pub experiment: Option<u64>,
    /// Why; stored with the runs and shown in their logs.
    #[arg(long)]
    pub reason: Option<String>,
}

fn labels(ids: &[u64]) -> String {
    ids.iter()
        .map(|&id| run_label(id))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `cauda cancel`.
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
        .cancel_run(CancelRunRequest {
            target: Some(target),
            reason: args.reason,
        })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    let mut text = String::new();
    if reply.cancelled_run_ids.is_empty() {
        text.push_str("cancelled nothing\n");
    } else {
        text.push_str(&format!("cancelled {}\n", labels(&reply.cancelled_run_ids)));
    }
    if !reply.already_finished_run_ids.is_empty() {
        text.push_str(&format!(
            "already finished {}\n",
            labels(&reply.already_finished_run_ids)
        ));
    }
    super::emit(&text)
}
