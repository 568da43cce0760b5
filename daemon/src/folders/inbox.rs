//! The inbox: a spec file dropped into the folder is submitted as its owner, then moved to
//! `submitted/` (the experiment id is logged) or to `rejected/` with a `.error` file beside it
//! that names the key, line and reason. An I/O or store error leaves the file where it is, for
//! its next event or the next start.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use super::dropped::{
    Problem, Text, candidates, ensure_dir, is_candidate, read_bounded, write_report,
};
use super::settle::Settle;
use super::{FolderError, QUIET};
use crate::core::Daemon;
use crate::model::ExperimentId;

/// Where submitted spec files go, under the inbox.
pub const SUBMITTED: &str = "submitted";
/// Where refused spec files go (with `<name>.error`), under the inbox.
pub const REJECTED: &str = "rejected";
/// The user of a submission whose file's owner cannot be named.
const FALLBACK_USER: &str = "inbox";

/// What became of one inbox file.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Submitted as `experiment`; the file is now at `moved_to` (or, when that move failed,
    /// logged, still in the inbox and never submitted again by this daemon).
    Submitted {
        experiment: ExperimentId,
        moved_to: PathBuf,
    },
    /// Refused; the file is now at `moved_to`, its `.error` beside it.
    Rejected { problem: Problem, moved_to: PathBuf },
    /// Left where it is (gone, or an I/O or store error, logged).
    Left,
}

/// The inbox folder and the files in it waiting to settle.
#[derive(Debug)]
pub struct Inbox {
    dir: PathBuf,
    daemon: Arc<Daemon>,
    settle: Settle,
    /// Files submitted whose move failed: never submitted twice while this daemon runs.
    stuck: HashSet<PathBuf>,
}

impl Inbox {
    /// Creates the inbox with its `submitted/` and `rejected/` folders if missing.
    pub fn open(dir: &Path, daemon: Arc<Daemon>) -> Result<Self, FolderError> {
        ensure_dir(dir)?;
        let dir = dir.canonicalize().map_err(|source| FolderError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
        ensure_dir(&dir.join(SUBMITTED))?;
        ensure_dir(&dir.join(REJECTED))?;
        Ok(Self {
            dir,
            daemon,
            settle: Settle::new(QUIET),
            stuck: HashSet::new(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether files are waiting to settle.
    pub fn busy(&self) -> bool {
        !self.settle.is_empty()
    }

    /// Something happened to `path` (a candidate file of the inbox).
    pub fn note(&mut self, path: &Path, now: Instant) {
        if let Some(name) = path.file_name() {
            self.settle.note(&self.dir.join(name), now);
        }
    }

    /// Notes every candidate file of the inbox (at start, or after lost events).
    pub fn rescan(&mut self, now: Instant) {
        match candidates(&self.dir) {
            Ok(files) => files.iter().for_each(|f| self.settle.note(f, now)),
            Err(e) => tracing::error!(dir = %self.dir.display(), error = %e, "reading the inbox"),
        }
    }

    /// Takes every settled file, in name order.
    pub fn poll(&mut self, now: Instant) {
        for (path, exists) in self.settle.take_settled(now) {
            if exists {
                self.take(&path);
            }
        }
    }

    /// Submits one file and moves it; never panics, never submits a file twice.
    pub fn take(&mut self, path: &Path) -> Outcome {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            return Outcome::Left;
        };
        if !is_candidate(path) || self.stuck.contains(path) {
            return Outcome::Left;
        }
        // A link could make the daemon read (and echo in a `.error`) a file its dropper cannot.
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => {
                tracing::warn!(path = %path.display(), "not a plain file (a link?); left in the inbox");
                return Outcome::Left;
            }
            Err(_) => return Outcome::Left,
        }
        let origin = format!("inbox/{name}");
        let (text, meta) = match read_bounded(path) {
            Ok(read) => read,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Left,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "reading an inbox file");
                return Outcome::Left;
            }
        };
        let text = match text {
            Text::Ok(text) => text,
            Text::Refused(problem) => return self.reject(path, name, &origin, problem),
        };
        let user = owner_name(&meta).unwrap_or_else(|| FALLBACK_USER.to_string());
        match self.daemon.submit(&origin, &text, &user, None) {
            Ok(submitted) => {
                let experiment = submitted.experiment;
                let dest = self.free_name(name, experiment);
                if let Err(e) = std::fs::rename(path, &dest) {
                    tracing::error!(
                        path = %path.display(), error = %e, experiment = %experiment,
                        "submitted, but could not move the file to submitted/; it stays and is not submitted again"
                    );
                    self.stuck.insert(path.to_path_buf());
                } else {
                    tracing::info!(
                        file = %origin, experiment = %experiment, runs = submitted.runs.len(),
                        user = %user, "inbox spec submitted"
                    );
                }
                Outcome::Submitted {
                    experiment,
                    moved_to: dest,
                }
            }
            Err(err) => match Problem::of_core(err) {
                Ok(problem) => self.reject(path, name, &origin, problem),
                Err(err) => {
                    tracing::error!(file = %origin, error = %err, "submitting an inbox spec; left for its next event");
                    Outcome::Left
                }
            },
        }
    }

    /// Writes `rejected/<name>.error` first, then moves the file beside it.
    fn reject(&self, path: &Path, name: &str, origin: &str, problem: Problem) -> Outcome {
        let rejected = self.dir.join(REJECTED);
        let dest = rejected.join(name);
        let error_file = rejected.join(format!("{name}.error"));
        let report = problem.render(origin);
        if let Err(e) = write_report(&error_file, &report) {
            tracing::error!(path = %error_file.display(), error = %e, "writing an inbox .error file");
            return Outcome::Left;
        }
        if let Err(e) = std::fs::rename(path, &dest) {
            tracing::error!(path = %path.display(), error = %e, "moving a rejected inbox file");
            return Outcome::Left;
        }
        tracing::warn!(file = %origin, error = %report.lines().next().unwrap_or_default(), "inbox spec rejected");
        Outcome::Rejected {
            problem,
            moved_to: dest,
        }
    }

    /// `submitted/<name>`, or `submitted/<stem>.<experiment>.toml` when that is taken (then
    /// with a counter, should even that be taken).
    fn free_name(&self, name: &str, experiment: ExperimentId) -> PathBuf {
        let dir = self.dir.join(SUBMITTED);
        let plain = dir.join(name);
        if !plain.exists() {
            return plain;
        }
        let stem = name.strip_suffix(".toml").unwrap_or(name);
        let tagged = dir.join(format!("{stem}.{experiment}.toml"));
        if !tagged.exists() {
            return tagged;
        }
        (1u32..10_000)
            .map(|n| dir.join(format!("{stem}.{experiment}.{n}.toml")))
            .find(|p| !p.exists())
            .unwrap_or(tagged)
    }
}

/// The name of the file's owner, looked up in `/etc/passwd` (no NSS: a user only a directory
/// service knows gets the fallback).
#[cfg(unix)]
fn owner_name(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    user_of(meta.uid(), &passwd)
}

#[cfg(not(unix))]
fn owner_name(_meta: &std::fs::Metadata) -> Option<String> {
    None
}

/// The user name of `uid` in `passwd(5)` text.
fn user_of(uid: u32, passwd: &str) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_named_from_passwd_lines() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\n# comment\nada:x:1000:1000::/home/ada:/bin/sh\n";
        assert_eq!(user_of(1000, passwd).as_deref(), Some("ada"));
        assert_eq!(user_of(0, passwd).as_deref(), Some("root"));
        assert_eq!(user_of(7, passwd), None);
    }
}
