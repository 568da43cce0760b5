//! A data set given by split files (`format = "list"` or `"inat"`): the training, optional
//! validation and test splits are each a list of images under the data root with their labels
//! ([`split_list`]). Images of any size are decoded on all cores, resized so the shorter side is
//! `image_size / 0.875` (256 for 224, torchvision's evaluation resize) and center-cropped to
//! `image_size`, and held in memory as RGB. Class counts come from the training list. A missing
//! image or an unreadable one is an error naming its list file and line.

use std::path::{Path, PathBuf};

use image::imageops::{FilterType, crop_imm, resize};
use sha2::{Digest, Sha256};

use super::folder::{MAX_IMAGE_FILE_BYTES, decode_image};
use super::read::read_file_limited;
use super::split_list::{
    ListEntry, check_labels, check_lists_pin, lists_digest, parse_inat, parse_list, read_bounded,
};
use super::{DataError, ImageSet, Result, TrainTest, numbered_classes};

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
/// images kept in memory.
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

/// The loaded splits and a hash of what defines them (split files' bytes and the image size).
#[derive(Debug, Clone)]
pub struct LoadedLists {
    pub data: TrainTest,
    pub val: Option<ImageSet>,
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

    /// Reads the split files, checks every label against the training list's classes, and
    /// decodes every image.
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
        let decode = |list: &Path, entries: &[ListEntry]| {
            self.decode_set(&self.file(list), entries, &class_names)
        };
        let data = TrainTest {
            train: decode(&self.train, &train)?,
            test: decode(&self.test, &test)?,
        };
        let val = match val {
            Some((v, entries)) => Some(decode(&v, &entries)?),
            None => None,
        };
        Ok(LoadedLists {
            data,
            val,
            hash: Sha256::digest(format!("{:?} {} {digest}", self.format, self.image_size))
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        })
    }

    /// Decodes a split's images on every core into one RGB set of `image_size` squares.
    fn decode_set(&self, list: &Path, entries: &[ListEntry], names: &[String]) -> Result<ImageSet> {
        let side = self.image_size;
        let image_len = 3 * side * side;
        let mut pixels = vec![0u8; entries.len() * image_len];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per = entries.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            let workers: Vec<_> = pixels
                .chunks_mut(per * image_len)
                .zip(entries.chunks(per))
                .map(|(out, chunk)| {
                    s.spawn(move || -> Result<()> {
                        for (slot, entry) in out.chunks_mut(image_len).zip(chunk) {
                            slot.copy_from_slice(&self.decode_one(list, entry)?);
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(DataError::Invalid("a decoding thread panicked".into()))
                    })
                })
                .collect::<Result<Vec<()>>>()
        })?;
        let set = ImageSet {
            pixels,
            labels: entries.iter().map(|e| e.label).collect(),
            channels: 3,
            height: side,
            width: side,
            class_names: names.to_vec(),
        };
        set.validate()?;
        Ok(set)
    }

    /// One image: read (bounded), decode, resize the shorter side to `image_size / 0.875`,
    /// center-crop `image_size`; CHW bytes.
    fn decode_one(&self, list: &Path, entry: &ListEntry) -> Result<Vec<u8>> {
        let path = self.root.join(&entry.path);
        let at = |message: String| DataError::AtLine {
            path: list.to_path_buf(),
            line: entry.line,
            message,
        };
        if !path.is_file() {
            return Err(at(format!(
                "image `{}` is not a file under {}",
                entry.path.display(),
                self.root.display()
            )));
        }
        let bytes =
            read_file_limited(&path, MAX_IMAGE_FILE_BYTES).map_err(|e| at(e.to_string()))?;
        let rgb = decode_image(&path, &bytes)
            .map_err(|e| at(e.to_string()))?
            .to_rgb8();
        let side = self.image_size as u32;
        let short = (f64::from(side) / 0.875).round() as u32;
        let (w, h) = rgb.dimensions();
        let (nw, nh) = if w <= h {
            (
                short,
                ((u64::from(h) * u64::from(short)) / u64::from(w).max(1)).max(1) as u32,
            )
        } else {
            (
                ((u64::from(w) * u64::from(short)) / u64::from(h).max(1)).max(1) as u32,
                short,
            )
        };
        let resized = resize(&rgb, nw, nh, FilterType::Triangle);
        let (x, y) = ((nw - side) / 2, (nh - side) / 2);
        let cropped = crop_imm(&resized, x, y, side, side).to_image();
        let n = (side * side) as usize;
        let mut chw = vec![0u8; 3 * n];
        for (i, p) in cropped.pixels().enumerate() {
            for c in 0..3 {
                chw[c * n + i] = p.0[c];
            }
        }
        Ok(chw)
    }
}

#[cfg(test)]
#[path = "list_set_tests.rs"]
mod tests;
