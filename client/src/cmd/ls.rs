//! `cauda ls`: lists runs, filtered by experiment, state and user, following every page.

use cauda_proto::v1::{ListRunsRequest, RunState, RunView};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::parse_experiment_id;
use crate::output::{RUN_HEADERS, run_row, table};

/// A run state as typed on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum StateArg {
    /// Waiting for devices or a dependency.
    Queued,
    /// Training.
    Running,
    /// Finished.
    Succeeded,
    /// Failed after its last attempt.
    Failed,
    /// Cancelled by a user.
    Cancelled,
}

impl From<StateArg> for RunState {
    fn from(s: StateArg) -> RunState {
        match s {
            StateArg::Queued => RunState::Queued,
            StateArg::Running => RunState::Running,
            StateArg::Succeeded => RunState::Succeeded,
            StateArg::Failed => RunState::Failed,
            StateArg::Cancelled => RunState::Cancelled,
        }
    }
}

/// Arguments of `cauda ls`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only runs of this experiment (`e-3` or `3`).
    #[arg(long, short, value_parser = parse_experiment_id)]
    pub experiment: Option<u64>,
    /// Only runs in these states (repeat or separate with commas).
    #[arg(long, short, value_enum, value_delimiter = ',')]
    pub state: Vec<StateArg>,
    /// Only runs of this user.
    #[arg(long, short)]
    pub user: Option<String>,
    /// Print a JSON array of `Run` messages (proto3 JSON mapping) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `cauda ls`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut client = connect(addr).await?;
    let mut runs = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_runs(ListRunsRequest {
                experiment_id: args.experiment,
                states: args
                    .state
                    .iter()
                    .map(|&s| RunState::from(s) as i32)
                    .collect(),
                user: args.user.clone(),
                page_size: 1000,
                page_token: page_token.clone(),
                view: RunView::Basic as i32,
            })
            .await
            .map_err(|s| CliError::from_status(addr, s))?
            .into_inner();
        runs.extend(page.runs);
        if page.next_page_token.is_empty() {
            break;
        }
        if page.next_page_token == page_token {
            return Err(CliError::BadReply(
                "ListRuns returned the same page token twice".into(),
            ));
        }
        page_token = page.next_page_token;
    }
    if args.json {
        return super::emit_json(&runs);
    }
    let rows: Vec<Vec<String>> = runs.iter().map(run_row).collect();
    super::emit(&table(&RUN_HEADERS, &rows))
}
