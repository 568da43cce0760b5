//! Data roots: a spec names files the daemon's workers will open, so a submitted spec may only
//! name paths that resolve (symlinks followed) to a location under a configured root
//! (`data_roots` in caudad.toml). Checked at submission, before anything is stored, and again by
//! the worker just before it opens the data (a symlink swapped after submission is caught).

use std::path::{Component, Path, PathBuf};

use cauda_plugins::spec::ResolvedRun;

use super::{CoreError, Daemon, Result};

/// The environment variable through which the executor hands the roots to `caudad work`
/// (a JSON list of paths).
pub const DATA_ROOTS_ENV: &str = "CAUDA_DATA_ROOTS";

/// The folders a spec's data paths must resolve under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataRoots {
    roots: Vec<PathBuf>,
}

/// Why a path is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error(
        "{key}: {path:?} is relative; give an absolute path under one of the data roots {roots}"
    )]
    Relative {
        key: String,
        path: PathBuf,
        roots: String,
    },
    #[error("{key}: {path:?} contains `..`, which is not allowed; allowed roots: {roots}")]
    DotDot {
        key: String,
        path: PathBuf,
        roots: String,
    },
    #[error(
        "{key}: {path:?} resolves to {resolved:?}, outside the data roots {roots} \
         (set data_roots in caudad.toml to allow more)"
    )]
    Outside {
        key: String,
        path: PathBuf,
        resolved: PathBuf,
        roots: String,
    },
    #[error("{key}: {path:?} cannot be resolved: {reason}")]
    Unresolvable {
        key: String,
        path: PathBuf,
        reason: String,
    },
}

impl DataRoots {
    /// Roots as configured (absolute; the config checks that).
    pub fn new(roots: Vec<PathBuf>) -> Self {
        Self { roots }
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    fn shown(&self) -> String {
        let list: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
        format!("[{}]", list.join(", "))
    }

    /// Resolves `path` (symlinks followed; components that do not exist yet are kept as
    /// written) and returns where it leads when that is under a root. `key` names the spec key
    /// in errors.
    pub fn check(&self, key: &str, path: &Path) -> std::result::Result<PathBuf, PathError> {
        if !path.is_absolute() {
            return Err(PathError::Relative {
                key: key.into(),
                path: path.into(),
                roots: self.shown(),
            });
        }
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(PathError::DotDot {
                key: key.into(),
                path: path.into(),
                roots: self.shown(),
            });
        }
        let resolved = resolve(path).map_err(|e| PathError::Unresolvable {
            key: key.into(),
            path: path.into(),
            reason: e.to_string(),
        })?;
        let inside = self.roots.iter().any(|root| {
            let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
            resolved.starts_with(&root)
        });
        if !inside {
            return Err(PathError::Outside {
                key: key.into(),
                path: path.into(),
                resolved,
                roots: self.shown(),
            });
        }
        Ok(resolved)
    }

    /// Checks every file path of a resolved run: `data.path`, `data.split_file` and
    /// `model.pretrained`.
    pub fn check_run(&self, run: &ResolvedRun) -> std::result::Result<(), PathError> {
        if let Some(path) = &run.data.path {
            self.check("data.path", path)?;
        }
        if let Some(path) = &run.data.split_file {
            self.check("data.split_file", path)?;
        }
        if let Some(path) = &run.model.pretrained {
            self.check("model.pretrained", path)?;
        }
        for (key, path) in run.data.list_files() {
            self.check(key, &path)?;
        }
        Ok(())
    }

    /// The roots as the executor passes them to workers (JSON).
    pub fn to_env(&self) -> String {
        serde_json::to_string(&self.roots).unwrap_or_else(|_| "[]".into())
    }

    /// The roots a worker was given in [`DATA_ROOTS_ENV`]; `None` when it was given none (a
    /// worker not started by a daemon's executor). A malformed value is an error.
    pub fn from_env() -> std::result::Result<Option<Self>, String> {
        match std::env::var(DATA_ROOTS_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(e) => Err(format!("{DATA_ROOTS_ENV}: {e}")),
            Ok(text) => serde_json::from_str::<Vec<PathBuf>>(&text)
                .map(|roots| Some(Self::new(roots)))
                .map_err(|e| format!("{DATA_ROOTS_ENV}: expected a JSON list of paths: {e}")),
        }
    }
}

/// `path` with its longest existing prefix canonicalized (symlinks followed) and the rest, which
/// does not exist (yet), appended as written. `path` is absolute and has no `..`.
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(mut resolved) => {
                for part in rest.iter().rev() {
                    resolved.push(part);
                }
                return Ok(resolved);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(name) = existing.file_name().map(|n| n.to_os_string()) else {
                    return Err(e);
                };
                rest.push(name);
                if !existing.pop() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

impl From<PathError> for CoreError {
    fn from(err: PathError) -> Self {
        let key = match &err {
            PathError::Relative { key, .. }
            | PathError::DotDot { key, .. }
            | PathError::Outside { key, .. }
            | PathError::Unresolvable { key, .. } => key.clone(),
        };
        let reason = err.to_string();
        let reason = reason
            .strip_prefix(&format!("{key}: "))
            .map_or(reason.clone(), str::to_string);
        CoreError::InvalidSpec {
            key,
            reason,
            line: None,
        }
    }
}

impl Daemon {
    /// Restricts the data paths of submitted specs to `roots` (the node sets the configured
    /// ones; a bare core, as in unit tests, checks nothing until this is called).
    pub fn set_data_roots(&self, roots: DataRoots) -> Result<()> {
        *self
            .data_roots
            .write()
            .map_err(|_| CoreError::Internal("the data roots lock was poisoned".into()))? =
            Some(roots);
        Ok(())
    }

    /// Checks a resolved run's paths against the data roots, when some are set.
    pub(super) fn check_paths(&self, run: &ResolvedRun) -> Result<()> {
        let roots = self
            .data_roots
            .read()
            .map_err(|_| CoreError::Internal("the data roots lock was poisoned".into()))?;
        if let Some(roots) = roots.as_ref() {
            roots.check_run(run)?;
        }
        Ok(())
    }

    /// Pins a run's split file (after [`Daemon::check_paths`]): its SHA-256 goes into the
    /// resolved run, so the run's config hash covers the file's content (docs/SPEC.md).
    pub(super) fn pin_split_file(&self, run: &mut ResolvedRun) -> Result<()> {
        run.data
            .pin_split_file()
            .map_err(|e| CoreError::InvalidSpec {
                key: "data.split_file".into(),
                reason: e.to_string(),
                line: None,
            })
    }

    /// Pins a run's pretrained weights (after [`Daemon::check_paths`]): their SHA-256 goes into
    /// the resolved run, so the run's config hash covers the weights (docs/SPEC.md).
    pub(super) fn pin_pretrained(&self, run: &mut ResolvedRun) -> Result<()> {
        run.model
            .pin_pretrained()
            .map_err(|e| CoreError::InvalidSpec {
                key: "model.pretrained".into(),
                reason: e.to_string(),
                line: None,
            })
    }
}

#[cfg(test)]
#[path = "paths_test.rs"]
mod tests;
