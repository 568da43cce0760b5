//! `cauda show RUN`: one run in full, including why it is pending and which devices it holds.

use crate::connect::{connect, fetch_run};
use crate::exit::CliError;
use crate::ids::parse_run_id;
use crate::output::run_details;

/// Arguments of `cauda show`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run (`r-12` or `12`).
    #[arg(value_parser = parse_run_id)]
    pub run: u64,
    /// Print the run as JSON instead of text: the `Run` message in the proto3 JSON mapping
    /// (the resolved config and the summary as JSON text in `config_json`, `summary_json`).
    #[arg(long)]
    pub json: bool,
}

/// Runs `cauda show`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut client = connect(addr).await?;
    let run = fetch_run(&mut client, addr, args.run).await?;
    if args.json {
        return super::emit_json(&run);
    }
    super::emit(&run_details(&run))
}
