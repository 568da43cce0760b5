//! A data set given by split files (`format = "list"` or `"inat"`): the training, optional
//! validation and test splits are each a list of images under the data root with their labels
//! ([`split_list`]). The images stay on disk ([`FileSet`]): the input pipeline decodes and
//! transforms them batch by batch (`train::stream`). Class counts come from the training list. A
//! missing image is an error naming its list file and line when the run starts; an unreadable
//! one, when a batch reaches it.

use crate::hex::ToHex;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::file_set::FileSet;
use super::split_list::{
    ListEntry, check_labels, check_lists_pin, lists_digest, parse_inat, parse_list, read_bounded,
};
use super::{DataError, Result, numbered_classes};

/// The largest `image_size`.
pub const MAX_IMAGE_SIZE: usize = 1024;

/// Which split-file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// `relative/path label` lines (ImageNet-LT, Places-LT).
    Text,
    /// iNaturalist 2018 JSON.
    Inat,
}

/// What to load: the root the paths are under, the split files, and the side of the square
/// crops the model sees.
#[derive(Debug, Clone)]
pub struct ListSource {
    pub format: ListFormat,
    pub root: PathBuf,
    pub train: PathBuf,
    pub val: Option<PathBuf>,
    pub test: PathBuf,
    pub image_size: usize,
    /// The run's `data.lists_sha256`: the lists must still have this digest.
    pub pinned: Option<String>,
}

/// The splits and a hash of what defines them (split files' bytes and the image size).
#[derive(Debug, Clone)]
pub struct LoadedLists {
    pub train: FileSet,
    pub val: Option<FileSet>,
    pub test: FileSet,
    pub hash: String,
}

impl ListSource {
    /// A split file's path: as given when absolute, else under the root.
    fn file(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    /// Reads the split files, checks every label against the training list's classes and that
    /// every image file exists.
    pub fn load(&self) -> Result<LoadedLists> {
        if !(8..=MAX_IMAGE_SIZE).contains(&self.image_size) {
            return Err(DataError::Invalid(format!(
                "data.image_size: {} is out of range; allowed 8 ..= {MAX_IMAGE_SIZE}",
                self.image_size
            )));
        }
        // Each split file is read once: its bytes are pinned, hashed and parsed.
        let files: Vec<(&str, &Path)> = [
            ("data.train_list", Some(&self.train)),
            ("data.val_list", self.val.as_ref()),
            ("data.test_list", Some(&self.test)),
        ]
        .into_iter()
        .filter_map(|(key, p)| p.map(|p| (key, p.as_path())))
        .collect();
        let bytes = files
            .iter()
            .map(|(_, p)| read_bounded(&self.file(p)))
            .collect::<Result<Vec<_>>>()?;
        let parts: Vec<(&str, &[u8])> = files
            .iter()
            .zip(&bytes)
            .map(|((key, _), b)| (*key, b.as_slice()))
            .collect();
        let digest = lists_digest(&parts);
        check_lists_pin(self.pinned.as_deref(), &digest)?;
        // `files` is (train, [val], test): train first, test last.
        let parse = |at: usize| -> Result<(Vec<ListEntry>, Option<Vec<String>>)> {
            let (file, bytes) = (self.file(files[at].1), &bytes[at]);
            Ok(match self.format {
                ListFormat::Text => (parse_list(&file, bytes)?, None),
                ListFormat::Inat => {
                    let split = parse_inat(&file, bytes)?;
                    (split.entries, Some(split.class_names))
                }
            })
        };
        let (train, names) = parse(0)?;
        let class_names = match names {
            Some(n) => n,
            None => numbered_classes(
                train
                    .iter()
                    .map(|e| e.label as usize + 1)
                    .max()
                    .unwrap_or(0),
            ),
        };
        let classes = class_names.len();
        let (test, _) = parse(files.len() - 1)?;
        check_labels(&self.file(&self.test), &test, classes)?;
        let val = match &self.val {
            Some(v) => {
                let (entries, _) = parse(1)?;
                check_labels(&self.file(v), &entries, classes)?;
                Some((v.clone(), entries))
            }
            None => None,
        };
        let set = |list: &Path, entries: Vec<ListEntry>| -> Result<FileSet> {
            let set = FileSet::new(
                &self.root,
                &self.file(list),
                entries,
                class_names.clone(),
                self.image_size,
            );
            set.check_files()?;
            Ok(set)
        };
        let train = set(&self.train, train)?;
        let test = set(&self.test, test)?;
        let val = match val {
            Some((v, entries)) => Some(set(&v, entries)?),
            None => None,
        };
        Ok(LoadedLists {
            train,
            val,
            test,
            hash: Sha256::digest(format!("{:?} {} {digest}", self.format, self.image_size))
                .to_hex(),
        })
    }
}

#[cfg(test)]
#[path = "list_set_tests.rs"]
mod tests;
