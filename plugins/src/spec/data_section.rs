//! The checks of `[data]` that need more than a range: the normalization's constants against
//! the format's channel count, a split file's companions, and pinning the split file's
//! content (its SHA-256) into the run, which makes the file's content part of the config hash.

use super::{DataFormat, DataSection, Result, invalid};
use crate::data::split_file::read_split_file;
use crate::data::{DataError, Normalization};

/// The channel count a format's images have, where the format alone says it.
pub fn format_channels(format: DataFormat, data: &DataSection) -> Option<usize> {
    match format {
        DataFormat::Cifar => Some(3),
        DataFormat::Idx | DataFormat::Digits => Some(1),
        DataFormat::Synthetic => data.synthetic.as_ref().map(|s| s.channels),
        DataFormat::Folder => None,
    }
}

impl DataSection {
    /// Checks `normalize`, `split_file` and `split_file_sha256`; `origin` names the spec.
    pub(super) fn check(&self, origin: &str) -> Result<()> {
        if let Err(message) = self.normalize.check(format_channels(self.format, self)) {
            return Err(invalid(
                origin,
                "data.normalize",
                format!("{message} (allowed: {})", Normalization::ALLOWED),
            ));
        }
        if self.split_file.is_some() {
            for (set, key) in [
                (self.imbalance.is_some(), "data.imbalance"),
                (self.max_per_class.is_some(), "data.max_per_class"),
            ] {
                if set {
                    return Err(invalid(
                        origin,
                        key,
                        "the split file (data.split_file) selects the training images; remove \
                         this key or the split file",
                    ));
                }
            }
        } else if self.split_file_sha256.is_some() {
            return Err(invalid(
                origin,
                "data.split_file_sha256",
                "pins a split file; set data.split_file too",
            ));
        }
        if let Some(h) = &self.split_file_sha256
            && !(h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        {
            return Err(invalid(
                origin,
                "data.split_file_sha256",
                format!("`{h}`; allowed: 64 lowercase hex digits (the file's SHA-256)"),
            ));
        }
        Ok(())
    }

    /// Reads the split file (bounded, checked for structure) and records its SHA-256 in
    /// `split_file_sha256`; a hash given in the spec must be the file's. Called at submission
    /// after the path passed the data roots, and by `caudad train`. No split file: no-op.
    pub fn pin_split_file(&mut self) -> std::result::Result<(), DataError> {
        let Some(path) = &self.split_file else {
            return Ok(());
        };
        let file = read_split_file(path)?;
        check_pin(self.split_file_sha256.as_deref(), &file.sha256, path)?;
        self.split_file_sha256 = Some(file.sha256);
        Ok(())
    }
}

/// A pinned hash must be the file's.
pub(crate) fn check_pin(
    pinned: Option<&str>,
    actual: &str,
    path: &std::path::Path,
) -> std::result::Result<(), DataError> {
    match pinned {
        Some(want) if want != actual => Err(DataError::SplitFile {
            path: path.to_path_buf(),
            key: "(sha256)".into(),
            message: format!(
                "the file's SHA-256 is {actual}, but data.split_file_sha256 is {want}: the file \
                 changed since the run was submitted (or the pin is wrong)"
            ),
        }),
        _ => Ok(()),
    }
}
