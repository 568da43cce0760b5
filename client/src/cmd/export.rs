//! `cauda export RUN --format safetensors|burn --out FILE`: streams a run's weights from the
//! daemon (ExportRun), checks their size and SHA-256 against the meta chunk, and only then
//! renames the temporary file onto FILE. safetensors files load with
//! `safetensors.torch.load_file` into `bench/reference.py`'s model (names in docs/EXPORT.md).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use cauda_proto::v1::{
    CheckpointChoice, ExportChunk, ExportFormat, ExportMeta, ExportRunRequest, export_chunk::Part,
};
use sha2::{Digest, Sha256};

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

/// Checks received bytes against the meta chunk.
pub fn verify(meta: &ExportMeta, received: u64, sha256_hex: &str) -> Result<(), CliError> {
    if received != meta.total_bytes {
        return Err(CliError::BadReply(format!(
            "export is {received} bytes, the daemon announced {}",
            meta.total_bytes
        )));
    }
    if !sha256_hex.eq_ignore_ascii_case(&meta.sha256) {
        return Err(CliError::BadReply(format!(
            "export SHA-256 is {sha256_hex}, the daemon announced {}",
            meta.sha256
        )));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The temporary file beside `out` that receives the bytes.
fn partial_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    out.with_file_name(format!(".{name}.partial-{}", std::process::id()))
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
    let tmp = partial_path(&args.out);
    let meta = match receive(addr, &mut stream, &tmp).await {
        Ok(meta) => meta,
        Err(err) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(err);
        }
    };
    std::fs::rename(&tmp, &args.out).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Io {
            path: args.out.clone(),
            source,
        }
    })?;
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

/// Streams the chunks into `tmp`, hashing as it goes; returns the verified meta.
async fn receive(
    addr: &str,
    stream: &mut tonic::Streaming<ExportChunk>,
    tmp: &Path,
) -> Result<ExportMeta, CliError> {
    let io = |source| CliError::Io {
        path: tmp.to_path_buf(),
        source,
    };
    let status = |s| CliError::from_status(addr, s);
    let meta = match stream.message().await.map_err(status)?.and_then(|c| c.part) {
        Some(Part::Meta(meta)) => meta,
        _ => {
            return Err(CliError::BadReply(
                "export stream did not start with its meta chunk".into(),
            ));
        }
    };
    let mut file = File::create(tmp).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.message().await.map_err(status)? {
        match chunk.part {
            Some(Part::Data(data)) => {
                received += data.len() as u64;
                if received > meta.total_bytes {
                    return Err(CliError::BadReply(format!(
                        "export stream exceeds the announced {} bytes",
                        meta.total_bytes
                    )));
                }
                hasher.update(&data);
                file.write_all(&data).map_err(io)?;
            }
            Some(Part::Meta(_)) => {
                return Err(CliError::BadReply(
                    "export stream sent a second meta chunk".into(),
                ));
            }
            None => {}
        }
    }
    file.sync_all().map_err(io)?;
    verify(&meta, received, &hex(&hasher.finalize()))?;
    Ok(meta)
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

    #[test]
    fn verify_refuses_size_or_digest_mismatch() {
        let meta = ExportMeta {
            total_bytes: 3,
            sha256: hex(&Sha256::digest(b"abc")),
            ..Default::default()
        };
        assert!(verify(&meta, 3, &hex(&Sha256::digest(b"abc"))).is_ok());
        assert_eq!(verify(&meta, 2, &meta.sha256).unwrap_err().exit_code(), 6);
        assert!(verify(&meta, 3, &hex(&Sha256::digest(b"abd"))).is_err());
    }
}
