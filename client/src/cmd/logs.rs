//! `cauda logs RUN [-f]`: a run's log lines, replayed from the start (WatchRun with only log
//! events); `-f` keeps following until the run ends.

use cauda_proto::v1::{RunEventKind, WatchRunRequest, run_event};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::parse_run_id;
use crate::output::log_line_text;

/// Arguments of `cauda logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run (`r-12` or `12`).
    #[arg(value_parser = parse_run_id)]
    pub run: u64,
    /// Keep printing new lines until the run ends.
    #[arg(short, long)]
    pub follow: bool,
}

/// Runs `cauda logs`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut client = connect(addr).await?;
    let mut stream = client
        .watch_run(WatchRunRequest {
            run_id: args.run,
            from_seq: 0,
            kinds: vec![RunEventKind::Log as i32],
            replay_only: !args.follow,
        })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    while let Some(event) = stream
        .message()
        .await
        .map_err(|s| CliError::from_status(addr, s))?
    {
        if let Some(run_event::Event::Log(line)) = event.event {
            super::emit(&format!("{}\n", log_line_text(&line)))?;
        }
    }
    Ok(())
}
