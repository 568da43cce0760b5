//! The field's split files for the large benchmarks, read strictly: ImageNet-LT's and
//! Places-LT's lists (`ImageNet_LT_train.txt`: one `relative/path label` per line, Liu et al.
//! 2019) and iNaturalist 2018's JSON (COCO-style `images`, `annotations`, `categories`). Both give
//! a list of (image path under the data root, label). The long-tailed profile is already in the
//! training list; nothing is re-sampled. Every error names the file, the line (or JSON entry) and
//! what was expected; inputs are bounded (file size, line length, entries) before they are used.

use crate::hex::ToHex;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::read::io_error;
use super::{DataError, Result};

/// Largest split file read (iNaturalist 2018's train JSON is ~200 MB).
pub const MAX_LIST_BYTES: u64 = 1 << 30;
/// Longest line of a list file.
pub const MAX_LINE_BYTES: usize = 4096;
/// Most entries of one split (iNaturalist 2018's train split has 437,513).
pub const MAX_ENTRIES: usize = 10_000_000;
/// Most classes (iNaturalist 2018 has 8,142).
pub const MAX_CLASSES: u32 = 100_000;

/// One image of a split: its path relative to the data root, its label, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub path: PathBuf,
    pub label: u32,
    /// 1-based line of a list file, or 1-based index in the JSON's `images`.
    pub line: usize,
}

fn bad(file: &Path, line: usize, message: impl Into<String>) -> DataError {
    DataError::AtLine {
        path: file.to_path_buf(),
        line,
        message: message.into(),
    }
}

/// A split file's bytes, refused beyond [`MAX_LIST_BYTES`] before reading.
pub fn read_bounded(file: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(file).map_err(|e| io_error(file, e))?;
    if meta.len() > MAX_LIST_BYTES {
        return Err(DataError::Invalid(format!(
            "{}: {} bytes; a split file may have at most {MAX_LIST_BYTES}",
            file.display(),
            meta.len()
        )));
    }
    std::fs::read(file).map_err(|e| io_error(file, e))
}

/// A relative path that stays under the root: no absolute path, no `..`, not empty.
fn relative(file: &Path, line: usize, text: &str) -> Result<PathBuf> {
    let path = PathBuf::from(text);
    let ok = !text.is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok {
        return Err(bad(
            file,
            line,
            format!("`{text}` must be a path under the data root (relative, no `..`)"),
        ));
    }
    Ok(path)
}

/// Reads a list file: `relative/path label` per line (blank lines skipped). Duplicate paths are
/// refused, naming both lines.
pub fn read_list(file: &Path) -> Result<Vec<ListEntry>> {
    parse_list(file, &read_bounded(file)?)
}

/// [`read_list`] of bytes already read; `file` names them in errors.
pub fn parse_list(file: &Path, bytes: &[u8]) -> Result<Vec<ListEntry>> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| DataError::Invalid(format!("{}: not UTF-8 text ({e})", file.display())))?;
    let mut out = Vec::new();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.len() > MAX_LINE_BYTES {
            return Err(bad(
                file,
                line,
                format!("{} bytes; the limit is {MAX_LINE_BYTES}", raw.len()),
            ));
        }
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        // The path may hold spaces: the label is the last field.
        let (path, label) = trimmed
            .rsplit_once(char::is_whitespace)
            .ok_or_else(|| bad(file, line, "expected `relative/path label`"))?;
        let path = path.trim_end();
        let label: u32 = label.parse().map_err(|_| {
            bad(
                file,
                line,
                format!("label `{label}` is not a non-negative integer"),
            )
        })?;
        if label >= MAX_CLASSES {
            return Err(bad(
                file,
                line,
                format!(
                    "label {label} is out of range; allowed 0 ..= {}",
                    MAX_CLASSES - 1
                ),
            ));
        }
        if let Some(first) = seen.insert(path, line) {
            return Err(bad(
                file,
                line,
                format!("`{path}` is listed twice (first at line {first})"),
            ));
        }
        if out.len() == MAX_ENTRIES {
            return Err(bad(file, line, format!("more than {MAX_ENTRIES} entries")));
        }
        out.push(ListEntry {
            path: relative(file, line, path)?,
            label,
            line,
        });
    }
    if out.is_empty() {
        return Err(DataError::Invalid(format!(
            "{}: no entries (expected `relative/path label` per line)",
            file.display()
        )));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct InatFile {
    images: Vec<InatImage>,
    #[serde(default)]
    annotations: Vec<InatAnnotation>,
    categories: Vec<InatCategory>,
}

#[derive(Deserialize)]
struct InatImage {
    id: u64,
    file_name: String,
}

#[derive(Deserialize)]
struct InatAnnotation {
    image_id: u64,
    category_id: u64,
}

#[derive(Deserialize)]
struct InatCategory {
    id: u64,
    #[serde(default)]
    name: Option<String>,
}

/// An iNaturalist-style split: its entries (`line` = 1-based index in `images`) and its class
/// names, indexed by label (category ids are labels, 0-based and dense as in iNat 2018).
#[derive(Debug, Clone, PartialEq)]
pub struct InatSplit {
    pub entries: Vec<ListEntry>,
    pub class_names: Vec<String>,
}

/// Reads an iNaturalist 2018 JSON: every image needs exactly one annotation whose category is
/// listed; ids and file names are unique. A test JSON without annotations is refused (its
/// labels are unknown).
pub fn read_inat(file: &Path) -> Result<InatSplit> {
    parse_inat(file, &read_bounded(file)?)
}

/// [`read_inat`] of bytes already read; `file` names them in errors.
pub fn parse_inat(file: &Path, bytes: &[u8]) -> Result<InatSplit> {
    let parsed: InatFile = serde_json::from_slice(bytes)
        .map_err(|e| bad(file, e.line(), format!("not an iNaturalist JSON: {e}")))?;
    if parsed.images.len() > MAX_ENTRIES || parsed.categories.len() > MAX_CLASSES as usize {
        return Err(DataError::Invalid(format!(
            "{}: more than {MAX_ENTRIES} images or {MAX_CLASSES} categories",
            file.display()
        )));
    }
    let entry = |what: &str, i: usize, message: String| {
        DataError::Invalid(format!("{}: {what}[{i}]: {message}", file.display()))
    };
    let classes = parsed.categories.len();
    let mut class_names = vec![None; classes];
    for (i, c) in parsed.categories.iter().enumerate() {
        let slot = usize::try_from(c.id)
            .ok()
            .and_then(|id| class_names.get_mut(id))
            .ok_or_else(|| {
                entry(
                    "categories",
                    i,
                    format!(
                        "id {} is not below the {classes} categories (ids are labels 0 .. n-1)",
                        c.id
                    ),
                )
            })?;
        if slot.is_some() {
            return Err(entry("categories", i, format!("id {} appears twice", c.id)));
        }
        *slot = Some(c.name.clone().unwrap_or_else(|| c.id.to_string()));
    }
    let mut label_of: HashMap<u64, u32> = HashMap::with_capacity(parsed.annotations.len());
    for (i, a) in parsed.annotations.iter().enumerate() {
        if a.category_id as usize >= classes {
            return Err(entry(
                "annotations",
                i,
                format!(
                    "category_id {} is not a listed category (0 .. {})",
                    a.category_id,
                    classes.saturating_sub(1)
                ),
            ));
        }
        if label_of.insert(a.image_id, a.category_id as u32).is_some() {
            return Err(entry(
                "annotations",
                i,
                format!("image {} has a second annotation", a.image_id),
            ));
        }
    }
    let mut ids = HashMap::with_capacity(parsed.images.len());
    let mut names = HashMap::with_capacity(parsed.images.len());
    let mut entries = Vec::with_capacity(parsed.images.len());
    for (i, img) in parsed.images.iter().enumerate() {
        if ids.insert(img.id, i).is_some() {
            return Err(entry("images", i, format!("id {} appears twice", img.id)));
        }
        if let Some(first) = names.insert(img.file_name.as_str(), i) {
            return Err(entry(
                "images",
                i,
                format!(
                    "`{}` is listed twice (first at images[{first}])",
                    img.file_name
                ),
            ));
        }
        let label = *label_of
            .get(&img.id)
            .ok_or_else(|| entry("images", i, format!("image {} has no annotation", img.id)))?;
        entries.push(ListEntry {
            path: relative(file, i + 1, &img.file_name)?,
            label,
            line: i + 1,
        });
    }
    if let Some(a) = parsed
        .annotations
        .iter()
        .position(|a| !ids.contains_key(&a.image_id))
    {
        return Err(entry(
            "annotations",
            a,
            format!(
                "image_id {} is not in `images`",
                parsed.annotations[a].image_id
            ),
        ));
    }
    if entries.is_empty() {
        return Err(DataError::Invalid(format!("{}: no images", file.display())));
    }
    Ok(InatSplit {
        entries,
        class_names: class_names
            .into_iter()
            .enumerate()
            .map(|(i, n)| n.unwrap_or_else(|| i.to_string()))
            .collect(),
    })
}

/// The SHA-256 that pins a run's split lists (`data.lists_sha256`): over each file's key
/// (`data.train_list`, ...), length and bytes, in the order given.
pub fn lists_digest(files: &[(&str, &[u8])]) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    for (key, bytes) in files {
        hasher.update(key.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    hasher.finalize().to_hex()
}

/// A pinned lists digest must be `actual`, the lists' digest now.
pub fn check_lists_pin(pinned: Option<&str>, actual: &str) -> Result<()> {
    match pinned {
        Some(want) if want != actual => Err(DataError::Invalid(format!(
            "data.lists_sha256: the split lists' SHA-256 is {actual}, but the run pinned \
             {want}: a list changed since the run was submitted (or the pin is wrong)"
        ))),
        _ => Ok(()),
    }
}

/// Checks that every label of `entries` (read from `file`) is below `num_classes` (the
/// training list's), naming the first that is not.
pub fn check_labels(file: &Path, entries: &[ListEntry], num_classes: usize) -> Result<()> {
    match entries.iter().find(|e| e.label as usize >= num_classes) {
        Some(e) => Err(bad(
            file,
            e.line,
            format!(
                "label {} is out of range: the training list has {num_classes} classes (0 ..= {})",
                e.label,
                num_classes.saturating_sub(1)
            ),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
#[path = "split_list_tests.rs"]
mod tests;
