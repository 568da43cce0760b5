//! A split of image files that stays on disk: the list's entries (path, label, line) under a
//! root, decoded one image at a time when a batch needs it, so ImageNet-LT's 115.8k training
//! images or iNaturalist's 437.5k never sit in memory. A file that cannot be read or decoded is
//! an error naming the split file and its line.

use std::path::{Path, PathBuf};

use super::folder::{MAX_IMAGE_FILE_BYTES, decode_image};
use super::read::read_file_limited;
use super::split_list::ListEntry;
use super::{DataError, ImageSet, Result};
use crate::augment::imagenet::eval_transform;
use crate::augment::resample::Rgb;

/// One split's images on disk, delivered as `side x side` RGB crops.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSet {
    /// The folder the entries' paths are under.
    pub root: PathBuf,
    /// The split file, named in errors.
    pub list: PathBuf,
    pub entries: Vec<ListEntry>,
    /// One label per entry.
    pub labels: Vec<u32>,
    /// Class names in label order (of the training list).
    pub class_names: Vec<String>,
    /// Side of the square crops the model sees.
    pub side: usize,
}

impl FileSet {
    pub fn new(
        root: &Path,
        list: &Path,
        entries: Vec<ListEntry>,
        class_names: Vec<String>,
        side: usize,
    ) -> Self {
        Self {
            root: root.to_path_buf(),
            list: list.to_path_buf(),
            labels: entries.iter().map(|e| e.label).collect(),
            entries,
            class_names,
            side,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn at(&self, i: usize, message: String) -> DataError {
        DataError::AtLine {
            path: self.list.clone(),
            line: self.entries[i].line,
            message,
        }
    }

    /// Fails on the first entry whose file does not exist (a stat per entry: cheap next to a
    /// decode, and it stops a run at its start rather than mid-epoch).
    pub fn check_files(&self) -> Result<()> {
        for (i, e) in self.entries.iter().enumerate() {
            if !self.root.join(&e.path).is_file() {
                return Err(self.at(
                    i,
                    format!(
                        "image `{}` is not a file under {}",
                        e.path.display(),
                        self.root.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Entry `i`'s image, read (bounded) and decoded to RGB at its own size.
    pub fn read(&self, i: usize) -> Result<Rgb> {
        let path = self.root.join(&self.entries[i].path);
        let bytes = read_file_limited(&path, MAX_IMAGE_FILE_BYTES)
            .map_err(|e| self.at(i, e.to_string()))?;
        let rgb = decode_image(&path, &bytes)
            .map_err(|e| self.at(i, e.to_string()))?
            .into_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        Ok(Rgb {
            width: w,
            height: h,
            pixels: rgb.into_raw(),
        })
    }

    /// Entry `i` through the evaluation transform (resize + center crop), as CHW bytes.
    pub fn eval_image(&self, i: usize) -> Result<Vec<u8>> {
        Ok(eval_transform(&self.read(i)?, self.side).to_chw())
    }

    /// The first `n` images through the evaluation transform, in memory.
    pub fn head(&self, n: usize) -> Result<ImageSet> {
        let n = n.min(self.len());
        let mut pixels = Vec::with_capacity(n * 3 * self.side * self.side);
        for i in 0..n {
            pixels.extend(self.eval_image(i)?);
        }
        Ok(ImageSet {
            pixels,
            labels: self.labels[..n].to_vec(),
            channels: 3,
            height: self.side,
            width: self.side,
            class_names: self.class_names.clone(),
        })
    }
}
