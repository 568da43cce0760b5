//! `cauda export RUN --format safetensors|burn --out FILE`: streams a run's weights from the
//! daemon (ExportRun), checks their size and SHA-256 against the meta chunk, and only then
//! renames the temporary file onto FILE. safetensors files load with
//! `safetensors.torch.load_file` into `bench/reference.py`'s model (names in docs/EXPORT.md).

use std::path::PathBuf;

use cauda_proto::v1::{CheckpointChoice, ExportFormat, ExportRunRequest};

use crate::connect::connect;
use crate::exit::CliError;
use crate::ids::{parse_run_id, run_label};

/// The formats `cauda export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// safetensors with PyTorch's tensor names and layouts.
    Safetensors,
    /// Burn's own record bytes (burnpack).
    Burn,
}

/// Arguments of `cauda export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The run (`r-12` or `12`).
    #[arg(value_parser = parse_run_id)]
    pub run: u64,
    /// The file format.
    #[arg(long, value_enum)]
    pub format: Format,
    /// Where to write the weights.
    #[arg(long, short)]
    pub out: PathBuf,
    /// The checkpoint kept as best instead of the latest.
    #[arg(long, conflicts_with = "epoch")]
    pub best: bool,
    /// The checkpoint of exactly this epoch.
    #[arg(long)]
    pub epoch: Option<u32>,
}

/// Runs `cauda export`.
pub async fn run(addr: &str, args: Args) -> Result<(), CliError> {
    let mut client = connect(addr).await?;
    let choice = if args.best {
        CheckpointChoice::Best
    } else {
        CheckpointChoice::Latest
    };
    let format = match args.format {
        Format::Safetensors => ExportFormat::Safetensors,
        Format::Burn => ExportFormat::Burn,
    };
    let mut stream = client
        .export_run(ExportRunRequest {
            run_id: args.run,
            format: format as i32,
            choice: choice as i32,
            epoch: args.epoch,
        })
        .await
        .map_err(|s| CliError::from_status(addr, s))?
        .into_inner();
    let meta = crate::download::save(addr, &mut stream, &args.out).await?;
    let tau = meta
        .tau
        .map(|t| format!(", classifier tau-normalized with tau {t}"))
        .unwrap_or_default();
    super::emit(&format!(
        "wrote {} ({} bytes of {}, {} epoch {}, sha256 {}{tau})\n",
        args.out.display(),
        meta.total_bytes,
        match args.format {
            Format::Safetensors => "safetensors",
            Format::Burn => "burn record",
        },
        run_label(meta.run_id),
        meta.epoch,
        meta.sha256
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn arguments_parse_and_best_conflicts_with_epoch() {
        let cli =
            Cli::try_parse_from(["x", "r-4", "--format", "safetensors", "--out", "m.st"]).unwrap();
        assert_eq!((cli.args.run, cli.args.format), (4, Format::Safetensors));
        assert!(Cli::try_parse_from(["x", "4", "--format", "onnx", "-o", "m"]).is_err());
        assert!(Cli::try_parse_from(["x", "4", "--format", "burn", "-o", "m"]).is_ok());
        assert!(
            Cli::try_parse_from([
                "x", "4", "--format", "burn", "-o", "m", "--best", "--epoch", "2"
            ])
            .is_err()
        );
    }
}
