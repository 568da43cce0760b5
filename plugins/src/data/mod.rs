//! In-memory image data sets (u8 pixels + labels) and their loaders; every loader reports which
//! file, which byte offset and what it expected when a file is missing or malformed.
//!
//! Loaders: [`idx`] (MNIST / Fashion-MNIST), [`cifar`] (CIFAR-10/100 binary, or torchvision's
//! pickles via [`cifar_pickle`]), [`folder`]
//! (`train/<class>/*.png` trees, cached after the first decode), [`digits`] (scikit-learn's 8x8
//! digits, embedded), [`synthetic`] (seeded, for fast tests). [`source`] dispatches by format,
//! [`longtail`] builds the field's long-tailed training splits from a balanced training set,
//! [`split_file`] reads a published split instead, and [`normalize`] names the normalization.
//! The large benchmarks' split files (ImageNet-LT/Places-LT lists, iNaturalist's JSON) are read
//! by [`split_list`] and loaded by [`list_set`] as [`file_set`]s that stay on disk; [`images`]
//! is either kind, as the training loop sees a split.

pub mod cifar;
pub mod cifar_pickle;
pub mod digits;
pub mod file_set;
pub mod folder;
mod folder_cache;
pub mod idx;
pub mod images;
pub mod list_set;
pub mod longtail;
pub mod normalize;
pub mod pickle;
mod read;
mod selection;
pub(crate) mod shuffle;
pub mod source;
pub mod split_file;
pub mod split_list;
pub mod synthetic;

use std::path::PathBuf;

pub use file_set::FileSet;
pub use images::Images;
pub use longtail::{LongTailError, LtConfig, LtProfile, LtSplit};
pub use normalize::Normalization;
pub use source::{DataFormat, DataSource};
pub use split_file::{LoadedSplit, SplitSelection, read_split_file};
pub use synthetic::SyntheticConfig;

/// Errors of the data layer. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: at byte {offset}: {message}")]
    Malformed {
        path: PathBuf,
        offset: u64,
        message: String,
    },
    /// A line of a text file (a split list), 1-based.
    #[error("{path}: line {line}: {message}")]
    AtLine {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    /// A split file (`data.split_file`) that cannot be used; `key` is where in it.
    #[error("{path}: {key}: {message}")]
    SplitFile {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// A long-tailed split could not be built from the given configuration.
    #[error(transparent)]
    LongTail(#[from] LongTailError),
}

pub type Result<T> = std::result::Result<T, DataError>;

/// A set of images stored contiguously as u8, each image `channels x height x width` (CHW).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSet {
    /// `len() * channels * height * width` bytes, image after image, CHW order.
    pub pixels: Vec<u8>,
    /// One label per image, `< num_classes`.
    pub labels: Vec<u32>,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Class names, in label order (`num_classes = class_names.len()`).
    pub class_names: Vec<String>,
}

/// A data set's train and test parts (the test part is the balanced evaluation set).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainTest {
    pub train: ImageSet,
    pub test: ImageSet,
}

impl ImageSet {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes (`class_names.len()`), including classes with no image in this set.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Bytes per image: `channels * height * width` (saturating: [`ImageSet::validate`]
    /// refuses a geometry whose product overflows).
    pub fn image_len(&self) -> usize {
        self.channels
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }

    /// The CHW bytes of image `i`.
    ///
    /// # Panics
    /// When `i >= len()`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.image_len();
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Images per class, indexed by label (length `num_classes()`).
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.num_classes()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(l as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// The images at `indices`, in that order (repeats allowed); same classes and geometry.
    ///
    /// # Panics
    /// When an index is `>= len()`, like slice indexing.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let n = self.image_len();
        let mut pixels = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            pixels.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        ImageSet {
            pixels,
            labels,
            channels: self.channels,
            height: self.height,
            width: self.width,
            class_names: self.class_names.clone(),
        }
    }

    /// Checks the invariants: pixel buffer length matches, every label `< num_classes()`.
    pub fn validate(&self) -> Result<()> {
        let image_len = self
            .channels
            .checked_mul(self.height)
            .and_then(|p| p.checked_mul(self.width))
            .ok_or_else(|| {
                DataError::Invalid(format!(
                    "image size {}x{}x{} overflows",
                    self.channels, self.height, self.width
                ))
            })?;
        let expected = self.len().checked_mul(image_len);
        if expected != Some(self.pixels.len()) {
            return Err(DataError::Invalid(format!(
                "image set holds {} pixel bytes, expected {} images x {}x{}x{}",
                self.pixels.len(),
                self.len(),
                self.channels,
                self.height,
                self.width
            )));
        }
        if let Some((i, &l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l as usize >= self.num_classes())
        {
            return Err(DataError::Invalid(format!(
                "image {i} has label {l}, but the set has only {} classes",
                self.num_classes()
            )));
        }
        Ok(())
    }
}

/// Class names `"0"`, `"1"`, ... for data sets that carry none.
pub(crate) fn numbered_classes(n: usize) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ImageSet {
        ImageSet {
            pixels: (0u8..12).collect(),
            labels: vec![0, 2, 2],
            channels: 1,
            height: 2,
            width: 2,
            class_names: numbered_classes(3),
        }
    }

    #[test]
    fn helpers_index_images_and_count_classes() {
        let s = tiny();
        assert_eq!(s.len(), 3);
        assert_eq!(s.num_classes(), 3);
        assert_eq!(s.image(1), &[4, 5, 6, 7]);
        assert_eq!(s.class_counts(), vec![1, 0, 2]);
        let sub = s.subset(&[2, 0]);
        assert_eq!(sub.labels, vec![2, 0]);
        assert_eq!(sub.pixels, vec![8, 9, 10, 11, 0, 1, 2, 3]);
        assert!(sub.validate().is_ok());
    }

    #[test]
    fn validate_rejects_bad_label_and_length() {
        let mut s = tiny();
        s.labels[0] = 3;
        assert!(s.validate().unwrap_err().to_string().contains("label 3"));
        let mut s = tiny();
        s.pixels.pop();
        assert!(s.validate().is_err());
    }
}
