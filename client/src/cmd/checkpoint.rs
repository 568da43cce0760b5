//! `cauda checkpoint RUN --out FILE`: downloads a stored checkpoint (GetCheckpoint stream),
//! checks its size and SHA-256 against the meta chunk, and only then renames the temporary
//! file onto FILE, so FILE is never a partial or corrupt checkpoint.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use cauda_proto::v1::{
    CheckpointChoice, CheckpointMeta, GetCheckpointRequest, checkpoint_chunk::Part,
};
use sha2::{Digest, Sha256};

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

/// Checks a received checkpoint against its meta chunk.
pub fn verify(meta: &CheckpointMeta, received: u64, sha256_hex: &str) -> Result<(), CliError> {
    if received != meta.total_bytes {
        return Err(CliError::BadReply(format!(
            "checkpoint is {received} bytes, the daemon announced {}",
            meta.total_bytes
        )));
    }
    if !sha256_hex.eq_ignore_ascii_case(&meta.sha256) {
        return Err(CliError::BadReply(format!(
            "checkpoint SHA-256 is {sha256_hex}, the daemon announced {}",
            meta.sha256
        )));
    }
    Ok(())
}

/// Lowercase hex of a digest.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The temporary file beside `out` that receives the bytes.
fn partial_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "checkpoint".into());
    out.with_file_name(format!(".{name}.partial-{}", std::process::id()))
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
    let tmp = partial_path(&args.out);
    let result = receive(addr, &mut stream, &tmp).await;
    let meta = match result {
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

/// Streams the chunks into `tmp`, hashing as it goes; returns the verified meta.
async fn receive(
    addr: &str,
    stream: &mut tonic::Streaming<cauda_proto::v1::CheckpointChunk>,
    tmp: &Path,
) -> Result<CheckpointMeta, CliError> {
    let io = |source| CliError::Io {
        path: tmp.to_path_buf(),
        source,
    };
    let status = |s| CliError::from_status(addr, s);
    let meta = match stream.message().await.map_err(status)?.and_then(|c| c.part) {
        Some(Part::Meta(meta)) => meta,
        _ => {
            return Err(CliError::BadReply(
                "checkpoint stream did not start with its meta chunk".into(),
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
                        "checkpoint stream exceeds the announced {} bytes",
                        meta.total_bytes
                    )));
                }
                hasher.update(&data);
                file.write_all(&data).map_err(io)?;
            }
            Some(Part::Meta(_)) => {
                return Err(CliError::BadReply(
                    "checkpoint stream sent a second meta chunk".into(),
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

    fn meta_of(bytes: &[u8]) -> CheckpointMeta {
        CheckpointMeta {
            total_bytes: bytes.len() as u64,
            sha256: hex(&Sha256::digest(bytes)),
            ..Default::default()
        }
    }

    #[test]
    fn sha256_hex_matches_the_known_digest() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn verify_accepts_a_match_and_refuses_size_or_digest_mismatch() {
        let meta = meta_of(b"checkpoint bytes");
        let good = hex(&Sha256::digest(b"checkpoint bytes"));
        assert!(verify(&meta, 16, &good).is_ok());
        let err = verify(&meta, 15, &good).unwrap_err();
        assert_eq!(err.exit_code(), 6);
        let bad = hex(&Sha256::digest(b"checkpoint bytez"));
        assert!(
            verify(&meta, 16, &bad)
                .unwrap_err()
                .to_string()
                .contains("SHA-256")
        );
    }

    #[test]
    fn the_partial_file_sits_beside_the_output() {
        let p = partial_path(Path::new("/tmp/x/model.ckpt"));
        assert_eq!(p.parent(), Some(Path::new("/tmp/x")));
        assert!(
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".model.ckpt.partial-"))
        );
    }
}
