//! Long-tailed training splits read from a file (`data.split_file`) instead of cut by cauda's
//! own profile, so a run trains on exactly the images a paper's code selected: the shipped
//! files under `plugins/assets/splits/` are Cao et al.'s `IMBALANCECIFAR10/100` selections
//! (`bench/fixtures/cifar_lt_splits.py`).
//!
//! The file is JSON: `{"version": 1, "description": "...", "num_classes": C, "ranks": [[...],
//! ...]}` or the same with `"indices"`. Per class (in label order), `indices` lists absolute
//! indices into the data set's training part; `ranks` lists positions among that class's
//! training images in data-set order (rank `r` of class `c` is the `r`-th image labelled `c`).
//! Ranks do not depend on where the classes' images sit in the data set, only on each class's
//! order, so a file of ranks made without the data (Cao's selection is a permutation per class
//! drawn by `np.random.shuffle`) is exact for the standard CIFAR files. The order within a
//! class is kept. The validation hold-out (`val_per_class`) comes from the class's unselected
//! images (`longtail.rs`, step 5), and the balanced variant draws the same total equally.
//!
//! A file is bounded ([`MAX_SPLIT_FILE_BYTES`], [`MAX_SPLIT_CLASSES`]) and every error names
//! the file, the key (`ranks[3][17]`) and what is allowed. Its SHA-256 is pinned in the run's
//! `data.split_file_sha256` at submission, so the run's identity (its config hash) is the
//! file's content, and a file changed after submission is refused when the run starts.

use crate::hex::ToHex;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::longtail::{LtSplit, shuffled_classes};
use super::read::read_file_limited;
use super::selection::{assemble, balanced_from, hold_out};
use super::{DataError, Result};

/// Largest split file read (CIFAR's 50,000 indices take ~300 KB).
pub const MAX_SPLIT_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Largest class count a split file may declare.
pub const MAX_SPLIT_CLASSES: usize = 100_000;

/// The file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitSelection {
    /// Format version: 1.
    pub version: u32,
    /// What the selection reproduces (free text).
    #[serde(default)]
    pub description: String,
    pub num_classes: usize,
    /// Per class, positions among the class's training images in data-set order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranks: Option<Vec<Vec<usize>>>,
    /// Per class, indices into the training part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indices: Option<Vec<Vec<usize>>>,
}

/// A split file read and checked for structure, with the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedSplit {
    pub path: PathBuf,
    pub selection: SplitSelection,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

fn bad(path: &Path, key: impl Into<String>, message: impl Into<String>) -> DataError {
    DataError::SplitFile {
        path: path.to_path_buf(),
        key: key.into(),
        message: message.into(),
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).to_hex()
}

/// Reads and checks the split file at `path` (bounded).
pub fn read_split_file(path: &Path) -> Result<LoadedSplit> {
    parse_split_file(path, &read_file_limited(path, MAX_SPLIT_FILE_BYTES)?)
}

/// [`read_split_file`] over bytes already in memory; `path` names them in errors.
pub fn parse_split_file(path: &Path, bytes: &[u8]) -> Result<LoadedSplit> {
    if bytes.len() as u64 > MAX_SPLIT_FILE_BYTES {
        return Err(bad(
            path,
            "(file)",
            format!(
                "{} bytes; allowed at most {MAX_SPLIT_FILE_BYTES}",
                bytes.len()
            ),
        ));
    }
    let selection: SplitSelection = serde_json::from_slice(bytes).map_err(|e| {
        bad(
            path,
            format!("line {} column {}", e.line(), e.column()),
            format!("not a split file: {e}"),
        )
    })?;
    let s = &selection;
    if s.version != 1 {
        return Err(bad(path, "version", format!("{}; allowed: 1", s.version)));
    }
    if !(1..=MAX_SPLIT_CLASSES).contains(&s.num_classes) {
        return Err(bad(
            path,
            "num_classes",
            format!("{}; allowed 1 ..= {MAX_SPLIT_CLASSES}", s.num_classes),
        ));
    }
    let (key, lists) = match (&s.ranks, &s.indices) {
        (Some(r), None) => ("ranks", r),
        (None, Some(i)) => ("indices", i),
        _ => {
            return Err(bad(
                path,
                "ranks/indices",
                "give exactly one of `ranks` and `indices`",
            ));
        }
    };
    if lists.len() != s.num_classes {
        return Err(bad(
            path,
            key,
            format!(
                "{} per-class lists, but num_classes = {}; give one list per class",
                lists.len(),
                s.num_classes
            ),
        ));
    }
    for (c, list) in lists.iter().enumerate() {
        if list.is_empty() {
            return Err(bad(
                path,
                format!("{key}[{c}]"),
                "empty; every class needs at least one training image",
            ));
        }
        let mut seen = HashSet::with_capacity(list.len());
        if let Some((j, v)) = list.iter().enumerate().find(|(_, v)| !seen.insert(**v)) {
            return Err(bad(
                path,
                format!("{key}[{c}][{j}]"),
                format!("{v} is listed twice in class {c}"),
            ));
        }
    }
    Ok(LoadedSplit {
        path: path.to_path_buf(),
        selection,
        sha256: sha256_hex(bytes),
    })
}

impl LoadedSplit {
    /// The selected training indices per class, checked against the training `labels`: the
    /// class count, every index or rank in range and of its class.
    pub fn selected(&self, labels: &[u32], num_classes: usize) -> Result<Vec<Vec<usize>>> {
        let path = self.path.as_path();
        let s = &self.selection;
        if s.num_classes != num_classes {
            return Err(bad(
                path,
                "num_classes",
                format!(
                    "{}, but the data set has {num_classes} classes",
                    s.num_classes
                ),
            ));
        }
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); num_classes];
        for (i, &l) in labels.iter().enumerate() {
            if let Some(list) = by_class.get_mut(l as usize) {
                list.push(i);
            }
        }
        if let Some(ranks) = &s.ranks {
            return ranks
                .iter()
                .enumerate()
                .map(|(c, list)| {
                    list.iter()
                        .enumerate()
                        .map(|(j, &r)| {
                            by_class[c].get(r).copied().ok_or_else(|| {
                                bad(
                                    path,
                                    format!("ranks[{c}][{j}]"),
                                    format!(
                                        "rank {r} is out of range; class {c} has {} training \
                                         images (allowed 0 ..= {})",
                                        by_class[c].len(),
                                        by_class[c].len().saturating_sub(1)
                                    ),
                                )
                            })
                        })
                        .collect()
                })
                .collect();
        }
        let indices = s.indices.as_deref().unwrap_or_default();
        for (c, list) in indices.iter().enumerate() {
            for (j, &i) in list.iter().enumerate() {
                match labels.get(i) {
                    None => {
                        return Err(bad(
                            path,
                            format!("indices[{c}][{j}]"),
                            format!(
                                "index {i} is out of range; the training part has {} images",
                                labels.len()
                            ),
                        ));
                    }
                    Some(&l) if l as usize != c => {
                        return Err(bad(
                            path,
                            format!("indices[{c}][{j}]"),
                            format!("image {i} has label {l}, not {c}"),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(indices.to_vec())
    }
}

/// The training split `file` selects from the training `labels`, with `val_per_class` images
/// per class held out (from the unselected ones, shuffled by `split_seed`), or its balanced
/// variant when `balanced`.
pub fn split_from_file(
    file: &LoadedSplit,
    labels: &[u32],
    num_classes: usize,
    val_per_class: usize,
    split_seed: u64,
    balanced: bool,
) -> Result<LtSplit> {
    let selected = file.selected(labels, num_classes)?;
    let shuffled = shuffled_classes(labels, num_classes, split_seed)?;
    let (train, val) = hold_out(&shuffled, selected, val_per_class)?;
    if !balanced {
        return Ok(assemble((train, val)));
    }
    let pools: Vec<&[usize]> = shuffled.iter().map(Vec::as_slice).collect();
    Ok(assemble(balanced_from(&pools, &train, val)?))
}

#[cfg(test)]
#[path = "split_file_tests.rs"]
mod tests;
