//! `cauda checkpoint RUN --out FILE`: downloads a stored checkpoint (GetCheckpoint stream),
//! checks its size and SHA-256 against the meta chunk, and only then renames the temporary
//! file onto FILE, so FILE is never a partial or corrupt checkpoint.

use std::path::PathBuf;

use cauda_proto::v1::{CheckpointChoice, GetCheckpointRequest};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::{parse_run_id, run_label};

/// Arguments of `cauda checkpoint`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run (`r-12` or `12`).
    #[arg(value_parser = parse_run_id)]
    pub run: u64,
    /// Where to write the checkpoint.
    #[arg(long, short)]
    pub out: PathBuf,
    /// The checkpoint kept as best instead of the latest.
    #[arg(long, conflicts_with = "epoch")]
    pub best: bool,
    /// The checkpoint of exactly this epoch.
    #[arg(long)]
    pub epoch: Option<u32>,
}

/// Runs `cauda checkpoint`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut client = connect(addr).await?;
    let choice = if args.best {
        CheckpointChoice::Best
    } else {
        CheckpointChoice::Latest
    };
    let mut stream = client
        .get_checkpoint(GetCheckpointRequest {
            run_id: args.run,
            choice: choice as i32,
            epoch: args.epoch,
        })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    let meta = crate::download::save(addr, &mut stream, &args.out).await?;
    super::emit(&format!(
        "wrote {} ({} bytes, {} epoch {} attempt {}, sha256 {})\n",
        args.out.display(),
        meta.total_bytes,
        run_label(meta.run_id),
        meta.epoch,
        meta.attempt,
        meta.sha256
    ))
}
