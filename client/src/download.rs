//! Saving a verified byte stream to a file, for `cauda checkpoint` and `cauda export`: the
//! daemon sends a meta chunk (size and SHA-256) then data chunks; the bytes go to a temporary
//! file beside the output, hashed as they come, and only a complete, matching file is renamed
//! onto the output, so it is never partial or corrupt.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use cauda_proto::hex;
use cauda_proto::v1::{CheckpointChunk, CheckpointMeta, ExportChunk, ExportMeta};
use sha2::{Digest, Sha256};

use crate::exit::CliError;

/// One message of a chunked stream.
pub enum Piece<M> {
    Meta(M),
    Data(Vec<u8>),
    Empty,
}

/// A message type of a chunked stream (`CheckpointChunk`, `ExportChunk`).
pub trait Chunk {
    type Meta;
    /// What the stream is, for error messages ("checkpoint", "export").
    const WHAT: &'static str;
    fn piece(self) -> Piece<Self::Meta>;
    /// The size and SHA-256 (hex) the meta chunk announces.
    fn announced(meta: &Self::Meta) -> (u64, &str);
}

impl Chunk for CheckpointChunk {
    type Meta = CheckpointMeta;
    const WHAT: &'static str = "checkpoint";
    fn piece(self) -> Piece<CheckpointMeta> {
        use cauda_proto::v1::checkpoint_chunk::Part;
        match self.part {
            Some(Part::Meta(m)) => Piece::Meta(m),
            Some(Part::Data(d)) => Piece::Data(d),
            None => Piece::Empty,
        }
    }
    fn announced(meta: &CheckpointMeta) -> (u64, &str) {
        (meta.total_bytes, &meta.sha256)
    }
}

impl Chunk for ExportChunk {
    type Meta = ExportMeta;
    const WHAT: &'static str = "export";
    fn piece(self) -> Piece<ExportMeta> {
        use cauda_proto::v1::export_chunk::Part;
        match self.part {
            Some(Part::Meta(m)) => Piece::Meta(m),
            Some(Part::Data(d)) => Piece::Data(d),
            None => Piece::Empty,
        }
    }
    fn announced(meta: &ExportMeta) -> (u64, &str) {
        (meta.total_bytes, &meta.sha256)
    }
}

/// Receives the whole stream into `out` (via a temporary file); returns the meta chunk.
pub async fn save<C: Chunk>(
    addr: &str,
    stream: &mut tonic::Streaming<C>,
    out: &Path,
) -> Result<C::Meta, CliError> {
    let tmp = partial_path(out, C::WHAT);
    let meta = match receive(addr, stream, &tmp).await {
        Ok(meta) => meta,
        Err(err) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(err);
        }
    };
    std::fs::rename(&tmp, out).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Io {
            path: out.to_path_buf(),
            source,
        }
    })?;
    Ok(meta)
}

async fn receive<C: Chunk>(
    addr: &str,
    stream: &mut tonic::Streaming<C>,
    tmp: &Path,
) -> Result<C::Meta, CliError> {
    let what = C::WHAT;
    let io = |source| CliError::Io {
        path: tmp.to_path_buf(),
        source,
    };
    let status = |s| CliError::from_status(addr, s);
    let meta = match stream.message().await.map_err(status)?.map(Chunk::piece) {
        Some(Piece::Meta(meta)) => meta,
        _ => {
            return Err(CliError::BadReply(format!(
                "{what} stream did not start with its meta chunk"
            )));
        }
    };
    let (total, sha256) = C::announced(&meta);
    let mut file = File::create(tmp).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    while let Some(chunk) = stream.message().await.map_err(status)? {
        match chunk.piece() {
            Piece::Data(data) => {
                received += data.len() as u64;
                if received > total {
                    return Err(CliError::BadReply(format!(
                        "{what} stream exceeds the announced {total} bytes"
                    )));
                }
                hasher.update(&data);
                file.write_all(&data).map_err(io)?;
            }
            Piece::Meta(_) => {
                return Err(CliError::BadReply(format!(
                    "{what} stream sent a second meta chunk"
                )));
            }
            Piece::Empty => {}
        }
    }
    file.sync_all().map_err(io)?;
    verify(what, total, sha256, received, &hex(&hasher.finalize()))?;
    Ok(meta)
}

/// Checks received bytes against what the meta chunk announced.
pub fn verify(
    what: &str,
    total: u64,
    sha256: &str,
    received: u64,
    digest: &str,
) -> Result<(), CliError> {
    if received != total {
        return Err(CliError::BadReply(format!(
            "{what} is {received} bytes, the daemon announced {total}"
        )));
    }
    if !digest.eq_ignore_ascii_case(sha256) {
        return Err(CliError::BadReply(format!(
            "{what} SHA-256 is {digest}, the daemon announced {sha256}"
        )));
    }
    Ok(())
}

/// The temporary file beside `out` that receives the bytes.
fn partial_path(out: &Path, what: &str) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| what.into());
    out.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let good = hex(&Sha256::digest(b"checkpoint bytes"));
        assert!(verify("checkpoint", 16, &good, 16, &good).is_ok());
        let err = verify("checkpoint", 16, &good, 15, &good).unwrap_err();
        assert_eq!(err.exit_code(), 6);
        let bad = hex(&Sha256::digest(b"checkpoint bytez"));
        let err = verify("export", 16, &good, 16, &bad)
            .unwrap_err()
            .to_string();
        assert!(err.contains("export SHA-256"), "{err}");
    }

    #[test]
    fn the_partial_file_sits_beside_the_output() {
        let p = partial_path(Path::new("/tmp/x/model.ckpt"), "checkpoint");
        assert_eq!(p.parent(), Some(Path::new("/tmp/x")));
        assert!(
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".model.ckpt.partial-"))
        );
    }
}
