//! The presets folder: every `*.toml` in it is a method preset, and the daemon resolves specs
//! against its engine's presets (cauda's own, or its embedder's: `Engine`) plus these, reloaded when a file changes. A broken file (parse
//! or plugin error, or a name another preset has) is reported, in the log and in a `.error`
//! file beside it, and the previous good version of its preset is kept; a deleted file removes
//! its preset.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use cauda_plugins::spec::{ExperimentSpec, Preset};

use super::dropped::{
    Problem, Text, candidates, ensure_dir, is_candidate, read_bounded, write_report,
};
use super::settle::Settle;
use super::{FolderError, QUIET};
use crate::core::Daemon;
use crate::engine::Engine;

/// A small spec each new preset is resolved with, so a preset naming an unknown plugin or a
/// parameter out of range is refused when it is loaded, not when a run names it.
// On a CIFAR ResNet, which every preset can train (the expert presets split its last stages).
const PROBE: &str =
    "name = \"preset-check\"\n[data]\nformat = \"digits\"\n[model]\nbackbone = \"resnet8\"\n";

/// The presets folder and the last good preset of each of its files.
pub struct Presets {
    dir: PathBuf,
    daemon: Arc<Daemon>,
    /// The daemon's plugins and presets, which the folder's presets add to.
    engine: Engine,
    probe: Option<ExperimentSpec>,
    /// By file name.
    good: BTreeMap<String, Preset>,
    settle: Settle,
}

impl std::fmt::Debug for Presets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presets")
            .field("dir", &self.dir)
            .field("good", &self.good.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Presets {
    /// Creates the folder if missing, loads every preset in it and hands the book to `daemon`.
    pub fn open(dir: &Path, daemon: Arc<Daemon>) -> Result<Self, FolderError> {
        ensure_dir(dir)?;
        let dir = dir.canonicalize().map_err(|source| FolderError::Create {
            path: dir.to_path_buf(),
            source,
        })?;
        let probe = ExperimentSpec::parse("preset check", PROBE)
            .inspect_err(|e| tracing::error!(error = %e, "the preset check spec is invalid"))
            .ok();
        let mut presets = Self {
            dir,
            engine: daemon.engine().clone(),
            daemon,
            probe,
            good: BTreeMap::new(),
            settle: Settle::new(QUIET),
        };
        match candidates(&presets.dir) {
            Ok(files) => {
                let cleared: Vec<_> = files
                    .iter()
                    .filter_map(|f| presets.apply(f, true))
                    .collect();
                presets.publish();
                cleared.iter().for_each(|e| remove_error(e));
            }
            Err(e) => {
                tracing::error!(dir = %presets.dir.display(), error = %e, "reading the presets folder");
                presets.publish();
            }
        }
        Ok(presets)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether files are waiting to settle.
    pub fn busy(&self) -> bool {
        !self.settle.is_empty()
    }

    /// Something happened to `path` (a candidate file of the folder).
    pub fn note(&mut self, path: &Path, now: Instant) {
        if is_candidate(path)
            && let Some(name) = path.file_name()
        {
            self.settle.note(&self.dir.join(name), now);
        }
    }

    /// Notes every file of the folder and every file a preset came from (after lost events).
    pub fn rescan(&mut self, now: Instant) {
        match candidates(&self.dir) {
            Ok(files) => files.iter().for_each(|f| self.settle.note(f, now)),
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "reading the presets folder");
            }
        }
        let known: Vec<PathBuf> = self.good.keys().map(|f| self.dir.join(f)).collect();
        known.iter().for_each(|f| self.settle.note(f, now));
    }

    /// Re-reads the settled files and, if any, hands the new book to the daemon.
    pub fn poll(&mut self, now: Instant) {
        let settled = self.settle.take_settled(now);
        if settled.is_empty() {
            return;
        }
        let cleared: Vec<_> = settled
            .iter()
            .filter_map(|(path, exists)| self.apply(path, *exists))
            .collect();
        self.publish();
        // Only now: once a `.error` is gone, the fixed preset is live.
        cleared.iter().for_each(|e| remove_error(e));
    }

    /// Reloads one file: its new preset, or a report and the previous version kept. Returns
    /// the file's stale `.error` to remove once the new book is published.
    fn apply(&mut self, path: &Path, exists: bool) -> Option<PathBuf> {
        let name = path.file_name().and_then(|n| n.to_str())?.to_string();
        let origin = format!("presets/{name}");
        let error_file = self.dir.join(format!("{name}.error"));
        let text = if exists {
            match read_bounded(path) {
                Ok((text, _)) => Some(text),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "reading a preset file; keeping its previous version");
                    return None;
                }
            }
        } else {
            None
        };
        let checked = match text {
            None => {
                if let Some(gone) = self.good.remove(&name) {
                    tracing::info!(file = %origin, preset = %gone.name, "preset file removed");
                }
                return Some(error_file);
            }
            Some(Text::Refused(problem)) => Err(problem),
            Some(Text::Ok(text)) => self.check(&name, &origin, &text),
        };
        match checked {
            Ok(preset) => {
                tracing::info!(file = %origin, preset = %preset.name, "preset loaded");
                self.good.insert(name, preset);
                Some(error_file)
            }
            Err(problem) => {
                let report = problem.render(&origin);
                let kept = self.good.get(&name).map(|p| p.name.as_str());
                tracing::error!(
                    file = %origin, reason = %report.lines().next().unwrap_or_default(),
                    kept = ?kept, "broken preset file; its previous version (if any) is kept"
                );
                if let Err(e) = write_report(&error_file, &report) {
                    tracing::error!(path = %error_file.display(), error = %e, "writing a preset .error file");
                }
                None
            }
        }
    }

    /// Parses a preset and checks it as a run would use it.
    fn check(&self, file: &str, origin: &str, text: &str) -> Result<Preset, Problem> {
        let preset = Preset::parse(origin, text).map_err(Problem::of_spec)?;
        let taken = |reason: String| Problem {
            key: "name".into(),
            line: None,
            reason,
        };
        if self.engine.presets().get(&preset.name).is_some() {
            return Err(taken(format!(
                "preset `{}` is built in; choose another name",
                preset.name
            )));
        }
        if let Some((other, _)) = self
            .good
            .iter()
            .find(|(f, p)| f.as_str() != file && p.name == preset.name)
        {
            return Err(taken(format!(
                "preset `{}` is already defined by presets/{other}",
                preset.name
            )));
        }
        if let Some(probe) = &self.probe {
            let mut book = self.engine.presets().clone();
            book.add(origin, preset.clone()).map_err(Problem::of_spec)?;
            let mut spec = probe.clone();
            spec.method.clone_from(&preset.name);
            spec.resolve(origin, &book, self.engine.registry())
                .map_err(Problem::of_spec)?;
        }
        Ok(preset)
    }

    /// The engine's presets plus the folder's good ones, handed to the daemon.
    fn publish(&self) {
        let mut book = self.engine.presets().clone();
        for (file, preset) in &self.good {
            if let Err(e) = book.add(&format!("presets/{file}"), preset.clone()) {
                tracing::error!(error = %e, "preset left out");
            }
        }
        match self.daemon.set_presets(book) {
            Ok(()) => tracing::debug!(user_presets = self.good.len(), "presets published"),
            Err(e) => tracing::error!(error = %e, "publishing the presets"),
        }
    }
}

/// Removes a stale `.error` file; a missing one is fine.
fn remove_error(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "removing a preset .error file")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{DaemonSettings, NoopExecutor, SystemClock};
    use crate::store::MemoryStore;

    #[test]
    fn every_builtin_preset_passes_the_load_check_under_another_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = Arc::new(Daemon::new(
            Arc::new(MemoryStore::default()),
            DaemonSettings::default(),
            Arc::new(SystemClock),
            Arc::new(NoopExecutor),
        ));
        let presets = Presets::open(dir.path(), daemon).expect("open");
        assert!(presets.probe.is_some());
        for builtin in presets.engine.presets().all() {
            let mut copy = builtin.clone();
            copy.name = format!("my-{}", builtin.name);
            let text = toml::to_string(&copy).expect("toml");
            let checked = presets.check("copy.toml", "presets/copy.toml", &text);
            assert!(checked.is_ok(), "{}: {checked:?}", builtin.name);
        }
    }
}
