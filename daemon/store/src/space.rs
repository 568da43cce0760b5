//! Free disk space under the store: a full disk must give callers a clear error, never a crash
//! or a poisoned database. Two defences: a preflight (`DiskSpace::check`) refuses bulky or new
//! work (checkpoint uploads, submissions) while the filesystem has less than a reserve free, so
//! the small writes that finish running work (metrics, events, state changes) still fit; and
//! `is_disk_full` recognises sled's "no space left" (ENOSPC/EDQUOT, which sled keeps as a sticky
//! error until the database is reopened) so the store can answer `StoreError::DiskFull`.

use std::io;
use std::path::{Path, PathBuf};

use super::{Result, StoreError};

/// The free-space policy of one store directory.
#[derive(Debug, Clone)]
pub struct DiskSpace {
    dir: PathBuf,
    reserve: u64,
}

const MIB: f64 = (1u64 << 20) as f64;

impl DiskSpace {
    /// A policy for the filesystem holding `dir`, keeping `reserve` bytes free.
    pub fn new(dir: &Path, reserve: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            reserve,
        }
    }

    /// The bytes unprivileged writers may still use on the filesystem of the directory (`None`
    /// when statvfs fails: the check is then skipped and sled's own error is the last word).
    pub fn free_bytes(&self) -> Option<u64> {
        match nix::sys::statvfs::statvfs(&self.dir) {
            Ok(s) => Some(s.blocks_available().saturating_mul(s.fragment_size())),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "statvfs failed; free-space check skipped");
                None
            }
        }
    }

    /// `DiskFull` unless `needed` bytes fit with the reserve still free afterwards.
    pub fn check(&self, op: &'static str, needed: u64, what: &str) -> Result<()> {
        let Some(free) = self.free_bytes() else {
            return Ok(());
        };
        if free >= needed.saturating_add(self.reserve) {
            return Ok(());
        }
        let detail = format!(
            "{:.1} MiB free; {what} needs {:.1} MiB beyond the {:.1} MiB kept free (min_free_disk_mb)",
            free as f64 / MIB,
            needed as f64 / MIB,
            self.reserve as f64 / MIB,
        );
        tracing::warn!(dir = %self.dir.display(), op, "refused: {detail}");
        Err(StoreError::DiskFull {
            op,
            path: self.dir.clone(),
            detail,
        })
    }
}

/// Whether sled failed because the filesystem is full (or the quota is spent). sled keeps the
/// first I/O error of its log writer and returns a copy of it (same kind, no errno) from every
/// later write, so the kind is checked as well as the errno.
pub fn is_disk_full(err: &sled::Error) -> bool {
    match err {
        sled::Error::Io(e) => io_is_full(e),
        _ => false,
    }
}

/// Whether an I/O error says the filesystem is full or the quota spent.
pub fn io_is_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error().is_some_and(|n| {
        n == nix::errno::Errno::ENOSPC as i32 || n == nix::errno::Errno::EDQUOT as i32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_errors_are_recognised_with_and_without_errno() {
        let raw = io::Error::from_raw_os_error(nix::errno::Errno::ENOSPC as i32);
        assert!(is_disk_full(&sled::Error::Io(raw)));
        // sled's copy of its sticky error keeps the kind, not the errno.
        let copied = io::Error::new(io::ErrorKind::StorageFull, "Os { code: 28 }");
        assert!(is_disk_full(&sled::Error::Io(copied)));
        let other = io::Error::from_raw_os_error(nix::errno::Errno::EACCES as i32);
        assert!(!is_disk_full(&sled::Error::Io(other)));
        assert!(!is_disk_full(&sled::Error::Unsupported("x".into())));
    }

    #[test]
    fn the_reserve_is_kept_free_and_the_error_says_how_much() {
        let dir = tempfile::tempdir().unwrap();
        let free = DiskSpace::new(dir.path(), 0).free_bytes().expect("statvfs");
        assert!(DiskSpace::new(dir.path(), 0).check("t", 1, "x").is_ok());
        let err = DiskSpace::new(dir.path(), free)
            .check("put_checkpoint", 8 << 20, "a checkpoint of 8.0 MiB")
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::DiskFull { .. }), "{text}");
        assert!(text.contains("min_free_disk_mb"), "{text}");
        assert!(text.contains(&dir.path().display().to_string()), "{text}");
    }
}
