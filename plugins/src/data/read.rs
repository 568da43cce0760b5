//! Bounded file reading shared by the binary loaders: open (gzip-aware), read exact byte counts
//! and turn short reads into `Malformed` errors that name the file and the offset.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::{DataError, Result};

/// Largest payload any single data file may claim (refused before allocating).
pub(crate) const MAX_BYTES: u64 = 1 << 31;

/// A sequential reader over a raw or gzipped file that tracks its (decompressed) offset.
pub(crate) struct TrackedReader {
    path: PathBuf,
    inner: Box<dyn Read>,
    offset: u64,
    gz: bool,
}

impl TrackedReader {
    /// Opens `path`; names ending in `.gz` are decompressed on the fly.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| io_error(path, source))?;
        let gz = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
        Ok(Self::new(path, BufReader::new(file), gz))
    }

    /// Reads `inner` (gzip-decompressed when `gz`); `path` names the source in errors.
    pub(crate) fn new(path: &Path, inner: impl Read + 'static, gz: bool) -> Self {
        let inner: Box<dyn Read> = if gz {
            Box::new(flate2::read::GzDecoder::new(inner))
        } else {
            Box::new(inner)
        };
        Self {
            path: path.to_path_buf(),
            inner,
            offset: 0,
            gz,
        }
    }

    /// A `Malformed` error at the current offset (marked as decompressed for `.gz` files).
    pub(crate) fn malformed(&self, offset: u64, message: impl Into<String>) -> DataError {
        let mut message = message.into();
        if self.gz {
            message.push_str(" (offset in the decompressed stream)");
        }
        DataError::Malformed {
            path: self.path.clone(),
            offset,
            message,
        }
    }

    /// Reads exactly `n` bytes (`n <= MAX_BYTES`), or fails naming what `what` was expected.
    pub(crate) fn read_exact_vec(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if n > MAX_BYTES {
            return Err(self.malformed(
                self.offset,
                format!("{what}: {n} bytes claimed, more than the limit of {MAX_BYTES}"),
            ));
        }
        let start = self.offset;
        let mut buf = Vec::with_capacity(n as usize);
        let got = (&mut self.inner)
            .take(n)
            .read_to_end(&mut buf)
            .map_err(|source| io_error(&self.path, source))? as u64;
        self.offset += got;
        if got < n {
            return Err(self.malformed(
                start + got,
                format!("truncated: expected {n} bytes of {what} from byte {start}, the file ends after {got}"),
            ));
        }
        Ok(buf)
    }

    /// Reads a big-endian u32 (`what` names the field in errors).
    pub(crate) fn read_u32_be(&mut self, what: &str) -> Result<u32> {
        let b = self.read_exact_vec(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Fails when any byte follows the expected end of the file.
    pub(crate) fn expect_eof(&mut self) -> Result<()> {
        let mut probe = [0u8; 1];
        let n = self
            .inner
            .read(&mut probe)
            .map_err(|source| io_error(&self.path, source))?;
        if n > 0 {
            return Err(self.malformed(self.offset, "expected end of file, found trailing bytes"));
        }
        Ok(())
    }
}

pub(crate) fn io_error(path: &Path, source: std::io::Error) -> DataError {
    DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a whole (small or bounded) file, refusing files larger than [`MAX_BYTES`].
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    read_file_limited(path, MAX_BYTES)
}

/// Reads a whole file of at most `limit` bytes; a larger one is refused before reading, and a
/// file that grows while it is read is refused too (the read stops at `limit + 1` bytes).
pub(crate) fn read_file_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let too_big = |len: u64| DataError::Malformed {
        path: path.to_path_buf(),
        offset: 0,
        message: format!("file of {len} bytes exceeds the limit of {limit}"),
    };
    let file = File::open(path).map_err(|source| io_error(path, source))?;
    let len = file
        .metadata()
        .map_err(|source| io_error(path, source))?
        .len();
    if len > limit {
        return Err(too_big(len));
    }
    let mut buf = Vec::with_capacity(len as usize);
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|source| io_error(path, source))?;
    if buf.len() as u64 > limit {
        return Err(too_big(buf.len() as u64));
    }
    Ok(buf)
}
