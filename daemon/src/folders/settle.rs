//! Waiting for a file to settle: a file is taken only once its size and modification time have
//! stayed the same for [`QUIET`](super::QUIET), so a spec still being written (by `cp`, an
//! editor, a slow network copy) is never read half. Works the same on every `notify` backend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// What a file looked like: `None` when it does not exist.
type Look = Option<(u64, Option<SystemTime>)>;

fn look(path: &Path) -> Look {
    std::fs::metadata(path)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .map(|m| (m.len(), m.modified().ok()))
}

/// Files seen changing, each with how it looked and since when.
#[derive(Debug)]
pub(super) struct Settle {
    quiet: Duration,
    pending: BTreeMap<PathBuf, (Look, Instant)>,
}

impl Settle {
    pub(super) fn new(quiet: Duration) -> Self {
        Self {
            quiet,
            pending: BTreeMap::new(),
        }
    }

    /// Something happened to `path` at `now`.
    pub(super) fn note(&mut self, path: &Path, now: Instant) {
        let seen = look(path);
        match self.pending.get_mut(path) {
            Some((was, since)) if *was != seen => {
                *was = seen;
                *since = now;
            }
            Some(_) => {}
            None => {
                self.pending.insert(path.to_path_buf(), (seen, now));
            }
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The files that have not changed for the quiet period by `now`, sorted by path, with
    /// whether each exists; they are forgotten (a later change notes them again).
    pub(super) fn take_settled(&mut self, now: Instant) -> Vec<(PathBuf, bool)> {
        let mut settled = Vec::new();
        for (path, (was, since)) in &mut self.pending {
            let seen = look(path);
            if seen != *was {
                *was = seen;
                *since = now;
            } else if now.saturating_duration_since(*since) >= self.quiet {
                settled.push((path.clone(), seen.is_some()));
            }
        }
        for (path, _) in &settled {
            self.pending.remove(path);
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_settled_only_after_a_quiet_period_without_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "name = ").expect("write");
        let mut settle = Settle::new(Duration::from_millis(200));
        let t0 = Instant::now();
        settle.note(&path, t0);
        assert!(
            settle
                .take_settled(t0 + Duration::from_millis(100))
                .is_empty()
        );
        // The writer goes on: the quiet period starts again from this look.
        std::fs::write(&path, "name = \"x\"\n").expect("write");
        let t1 = t0 + Duration::from_millis(150);
        assert!(settle.take_settled(t1).is_empty());
        assert!(
            settle
                .take_settled(t0 + Duration::from_millis(300))
                .is_empty()
        );
        let settled = settle.take_settled(t1 + Duration::from_millis(200));
        assert_eq!(settled, vec![(path.clone(), true)]);
        assert!(settle.is_empty());
    }

    #[test]
    fn a_deleted_file_settles_as_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gone.toml");
        let mut settle = Settle::new(Duration::from_millis(200));
        let t0 = Instant::now();
        settle.note(&path, t0);
        settle.note(&path, t0 + Duration::from_millis(100));
        let settled = settle.take_settled(t0 + Duration::from_millis(200));
        assert_eq!(settled, vec![(path, false)]);
    }
}
