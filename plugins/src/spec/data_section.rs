//! The checks of `[data]` that need more than a range: the normalization's constants against
//! the format's channel count, a split file's companions, and pinning the split file's
//! content (its SHA-256) into the run, which makes the file's content part of the config hash.

use super::{DataFormat, DataSection, Result, invalid};
use crate::data::split_file::read_split_file;
use crate::data::split_list;
use crate::data::{DataError, Normalization};

/// The channel count a format's images have, where the format alone says it.
pub fn format_channels(format: DataFormat, data: &DataSection) -> Option<usize> {
    match format {
        DataFormat::Cifar => Some(3),
        DataFormat::Idx | DataFormat::Digits => Some(1),
        DataFormat::Synthetic => data.synthetic.as_ref().map(|s| s.channels),
        DataFormat::Folder => None,
        DataFormat::List | DataFormat::Inat => Some(3),
    }
}

impl DataSection {
    /// Checks `normalize`, `split_file` and `split_file_sha256`; `origin` names the spec.
    pub(super) fn check(&self, origin: &str) -> Result<()> {
        self.check_lists(origin)?;
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
            && !super::is_sha256_hex(h)
        {
            return Err(invalid(
                origin,
                "data.split_file_sha256",
                format!("`{h}`; allowed: 64 lowercase hex digits (the file's SHA-256)"),
            ));
        }
        Ok(())
    }

    /// The split files of a `list` / `inat` data set as they will be opened (relative ones
    /// under `path`), with their keys: what the daemon checks against its data roots.
    pub fn list_files(&self) -> Vec<(&'static str, std::path::PathBuf)> {
        let root = self.path.clone().unwrap_or_default();
        [
            ("data.train_list", &self.train_list),
            ("data.val_list", &self.val_list),
            ("data.test_list", &self.test_list),
        ]
        .into_iter()
        .filter_map(|(key, p)| {
            p.as_ref().map(|p| {
                (
                    key,
                    if p.is_absolute() {
                        p.clone()
                    } else {
                        root.join(p)
                    },
                )
            })
        })
        .collect()
    }

    /// The `list` / `inat` keys: the split files and the image size where they apply, and none
    /// of the keys that re-sample a training set (the lists are the split).
    fn check_lists(&self, origin: &str) -> Result<()> {
        let bad = |key: &str, message: String| Err(invalid(origin, key, message));
        if !self.format.is_list() {
            for (set, key) in [
                (self.train_list.is_some(), "data.train_list"),
                (self.val_list.is_some(), "data.val_list"),
                (self.test_list.is_some(), "data.test_list"),
                (self.image_size.is_some(), "data.image_size"),
                (self.lists_sha256.is_some(), "data.lists_sha256"),
            ] {
                if set {
                    return bad(key, "applies to format = \"list\" or \"inat\" only".into());
                }
            }
            return Ok(());
        }
        for (set, key) in [
            (self.train_list.is_some(), "data.train_list"),
            (self.test_list.is_some(), "data.test_list"),
        ] {
            if !set {
                return bad(
                    key,
                    "required for format = \"list\" / \"inat\" (a split file under data.path)"
                        .into(),
                );
            }
        }
        for (set, key) in [
            (self.imbalance.is_some(), "data.imbalance"),
            (self.max_per_class.is_some(), "data.max_per_class"),
            (self.split_file.is_some(), "data.split_file"),
            (self.balanced_variant, "data.balanced_variant"),
            (self.val_per_class > 0, "data.val_per_class"),
        ] {
            if set {
                return bad(
                    key,
                    "the split files are the split (the training list is already long-tailed; \
                     data.val_list is the validation set): remove this key"
                        .into(),
                );
            }
        }
        if let Some(h) = &self.lists_sha256
            && !super::is_sha256_hex(h)
        {
            return bad(
                "data.lists_sha256",
                format!("`{h}`; allowed: 64 lowercase hex digits (the lists' SHA-256)"),
            );
        }
        if let Some(size) = self.image_size
            && !(8..=crate::data::list_set::MAX_IMAGE_SIZE).contains(&size)
        {
            return bad(
                "data.image_size",
                format!(
                    "{size} is out of range; allowed 8 ..= {}",
                    crate::data::list_set::MAX_IMAGE_SIZE
                ),
            );
        }
        Ok(())
    }

    /// Reads the split file (bounded, checked for structure) and records its SHA-256 in
    /// `split_file_sha256`; a hash given in the spec must be the file's. Called at submission
    /// after the path passed the data roots, and by `caudad train`. No split file: no-op.
    pub fn pin_split_file(&mut self) -> std::result::Result<(), DataError> {
        self.pin_lists()?;
        let Some(path) = &self.split_file else {
            return Ok(());
        };
        let file = read_split_file(path)?;
        check_pin(self.split_file_sha256.as_deref(), &file.sha256, path)?;
        self.split_file_sha256 = Some(file.sha256);
        Ok(())
    }
}

impl DataSection {
    /// The SHA-256 over the split lists' bytes, each preceded by its key (`None` without lists).
    pub fn lists_digest(&self) -> std::result::Result<Option<String>, DataError> {
        let files = self.list_files();
        if files.is_empty() {
            return Ok(None);
        }
        let bytes = files
            .iter()
            .map(|(_, path)| split_list::read_bounded(path))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let parts: Vec<(&str, &[u8])> = files
            .iter()
            .zip(&bytes)
            .map(|((key, _), b)| (*key, b.as_slice()))
            .collect();
        Ok(Some(split_list::lists_digest(&parts)))
    }

    /// Records the lists' SHA-256 in `lists_sha256`; a hash already there must be theirs.
    fn pin_lists(&mut self) -> std::result::Result<(), DataError> {
        let Some(actual) = self.lists_digest()? else {
            return Ok(());
        };
        self.check_lists_pin(&actual)?;
        self.lists_sha256 = Some(actual);
        Ok(())
    }

    /// A pinned `lists_sha256` must be `actual`, the lists' digest now.
    pub fn check_lists_pin(&self, actual: &str) -> std::result::Result<(), DataError> {
        split_list::check_lists_pin(self.lists_sha256.as_deref(), actual)
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
