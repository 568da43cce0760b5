//! The files the folders act on: which names count, reading one without trusting its size,
//! and the `.error` report written beside a refused one.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use cauda_plugins::spec::{MAX_SPEC_BYTES, SpecError};

use super::FolderError;
use crate::core::CoreError;

/// A file the folders act on: `*.toml`, not hidden (`.x.toml` is how editors and careful
/// writers stage a file before renaming it in).
pub(super) fn is_candidate(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.starts_with('.') && n.len() > ".toml".len() && n.ends_with(".toml"))
}

/// The `*.toml` candidates in `dir` (files, or links to files), sorted by name.
pub(super) fn candidates(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if is_candidate(&path) && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Why a dropped file was refused, as written to its `.error` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The dotted key at fault; empty for a syntax or size error.
    pub key: String,
    pub line: Option<u32>,
    pub reason: String,
}

impl Problem {
    fn whole(reason: String) -> Self {
        Self {
            key: String::new(),
            line: None,
            reason,
        }
    }

    /// The spec's fault, or `None` when the error is the daemon's (store, lock).
    pub(super) fn of_core(err: CoreError) -> Result<Self, CoreError> {
        match err {
            CoreError::InvalidSpec { key, reason, line } => Ok(Self { key, line, reason }),
            other => Err(other),
        }
    }

    pub(super) fn of_spec(err: SpecError) -> Self {
        match Self::of_core(err.into()) {
            Ok(p) => p,
            Err(other) => Self::whole(other.to_string()),
        }
    }

    /// One summary line naming `origin`, then the key, line and reason on their own lines.
    pub fn render(&self, origin: &str) -> String {
        let mut out = if self.key.is_empty() {
            format!("{origin}: {}\n", self.reason)
        } else {
            format!("{origin}: {}: {}\n", self.key, self.reason)
        };
        if !self.key.is_empty() {
            out.push_str(&format!("key: {}\n", self.key));
        }
        if let Some(line) = self.line {
            out.push_str(&format!("line: {line}\n"));
        }
        out.push_str(&format!("reason: {}\n", self.reason));
        out
    }
}

/// A file's text, read without ever holding more than [`MAX_SPEC_BYTES`] + 1 bytes of it.
pub(super) enum Text {
    Ok(String),
    Refused(Problem),
}

pub(super) fn read_bounded(path: &Path) -> std::io::Result<(Text, std::fs::Metadata)> {
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let limit = MAX_SPEC_BYTES as u64;
    let too_large = |size: u64| {
        Text::Refused(Problem::whole(format!(
            "spec is {size} bytes; the limit is {limit}"
        )))
    };
    if meta.len() > limit {
        return Ok((too_large(meta.len()), meta));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok((too_large(bytes.len() as u64), meta));
    }
    let text = match String::from_utf8(bytes) {
        Ok(t) => Text::Ok(t),
        Err(_) => Text::Refused(Problem::whole("the file is not UTF-8 text".into())),
    };
    Ok((text, meta))
}

/// Creates `dir` if missing.
pub(super) fn ensure_dir(dir: &Path) -> Result<(), FolderError> {
    std::fs::create_dir_all(dir).map_err(|source| FolderError::Create {
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes an `.error` report whole: to a hidden file first, renamed into place, so whoever
/// sees the file sees all of it.
pub(super) fn write_report(path: &Path, report: &str) -> std::io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("report");
    let staged = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&staged, report)?;
    std::fs::rename(&staged, path)
}
