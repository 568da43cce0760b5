//! In-memory image data sets (u8 pixels + labels) and their loaders; every loader reports which
//! file, which byte offset and what it expected when a file is missing or malformed.

use std::path::PathBuf;

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
    #[error("{0}")]
    Invalid(String),
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
