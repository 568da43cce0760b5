//! The on-disk cache of a decoded image folder: magic, the 32-byte key of the file list, then
//! both splits (geometry, class names, u32 LE labels, pixels). A cache whose magic or key differs
//! is ignored; one that is malformed is an error naming the offset (the caller re-decodes).

use std::path::Path;

use super::read::{io_error, read_file};
use super::{DataError, ImageSet, Result, TrainTest};

const MAGIC: &[u8; 8] = b"CAUDAFC1";

/// The cached data set when `path` exists and was written for `key`; `None` when absent or stale.
pub(crate) fn read(path: &Path, key: &[u8; 32]) -> Result<Option<TrainTest>> {
    if !path.is_file() {
        return Ok(None);
    }
    parse(path, &read_file(path)?, Some(key))
}

/// Parses a cache file's bytes; `None` when the magic differs or the key is not `key` (any
/// key when `None`).
pub(crate) fn parse(
    path: &Path,
    bytes: &[u8],
    key: Option<&[u8; 32]>,
) -> Result<Option<TrainTest>> {
    if bytes.len() < 40 || &bytes[..8] != MAGIC || key.is_some_and(|k| bytes[8..40] != k[..]) {
        return Ok(None);
    }
    let mut cur = Cursor {
        path,
        bytes,
        pos: 40,
    };
    let train = cur.image_set()?;
    let test = cur.image_set()?;
    if cur.pos != bytes.len() {
        return Err(cur.malformed("expected end of cache file, found trailing bytes"));
    }
    Ok(Some(TrainTest { train, test }))
}

/// Writes the cache atomically (temporary file, then rename).
pub(crate) fn write(path: &Path, key: &[u8; 32], tt: &TrainTest) -> Result<()> {
    let mut out = Vec::with_capacity(64 + tt.train.pixels.len() + tt.test.pixels.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(key);
    for set in [&tt.train, &tt.test] {
        for v in [set.channels, set.height, set.width, set.class_names.len()] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        out.extend_from_slice(&(set.len() as u64).to_le_bytes());
        for name in &set.class_names {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        for &l in &set.labels {
            out.extend_from_slice(&l.to_le_bytes());
        }
        out.extend_from_slice(&set.pixels);
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, &out).map_err(|e| io_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, e))
}

struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn malformed(&self, message: &str) -> DataError {
        DataError::Malformed {
            path: self.path.to_path_buf(),
            offset: self.pos as u64,
            message: message.to_string(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.malformed(&format!("truncated: expected {n} bytes of {what}")))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<usize> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn image_set(&mut self) -> Result<ImageSet> {
        let channels = self.u32("channels")?;
        let height = self.u32("height")?;
        let width = self.u32("width")?;
        let classes = self.u32("class count")?;
        let b = self.take(8, "image count")?;
        let n = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as usize;
        let mut class_names = Vec::with_capacity(classes.min(1 << 16));
        for _ in 0..classes {
            let len = self.u32("class name length")?;
            let name = self.take(len, "class name")?.to_vec();
            class_names.push(
                String::from_utf8(name)
                    .map_err(|_| self.malformed("expected a UTF-8 class name"))?,
            );
        }
        let label_bytes = n.saturating_mul(4);
        let labels = self
            .take(label_bytes, "labels")?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let px = n
            .checked_mul(channels)
            .and_then(|x| x.checked_mul(height))
            .and_then(|x| x.checked_mul(width))
            .unwrap_or(usize::MAX);
        let pixels = self.take(px, "pixels")?.to_vec();
        let set = ImageSet {
            pixels,
            labels,
            channels,
            height,
            width,
            class_names,
        };
        set.validate().map_err(|e| self.malformed(&e.to_string()))?;
        Ok(set)
    }
}
