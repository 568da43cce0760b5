//! MNIST-family IDX files (LeCun's format: big-endian magic `0x0000_08_0D` = unsigned bytes with
//! `D` dimensions, then `D` big-endian u32 sizes, then the data), raw or gzipped.
//!
//! A directory holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
//! `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each optionally suffixed `.gz` (the raw
//! file wins when both exist). IDX carries no class count: the classes are `0..=max label` seen in
//! either split, at least 10 (the MNIST family); they are named after Fashion-MNIST's classes when
//! the directory name contains "fashion" and there are 10, else "0", "1", ...

use std::io::Cursor;
use std::path::{Path, PathBuf};

use super::read::{MAX_BYTES, TrackedReader};
use super::{DataError, ImageSet, Result, TrainTest, numbered_classes};

/// Magic of an unsigned-byte, 3-dimensional IDX file (images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic of an unsigned-byte, 1-dimensional IDX file (labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// Largest image height or width accepted (MNIST's are 28): a header claiming more is refused
/// before the model is sized from it.
pub const MAX_SIDE: u64 = 8192;

/// Fashion-MNIST's class names (Xiao, Rasul & Vollgraf, 2017), in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Loads the train and test splits of an IDX directory.
pub fn load_dir(dir: &Path) -> Result<TrainTest> {
    let (train_px, h, w) = read_images(&find(dir, "train-images-idx3-ubyte")?)?;
    let train_labels = read_labels(
        &find(dir, "train-labels-idx1-ubyte")?,
        train_px.len() / (h * w).max(1),
    )?;
    let test_images = find(dir, "t10k-images-idx3-ubyte")?;
    let (test_px, th, tw) = read_images(&test_images)?;
    if (th, tw) != (h, w) {
        return Err(DataError::Malformed {
            path: test_images,
            offset: 8,
            message: format!("expected images of {h}x{w} like the training set, found {th}x{tw}"),
        });
    }
    let test_labels = read_labels(
        &find(dir, "t10k-labels-idx1-ubyte")?,
        test_px.len() / (h * w).max(1),
    )?;
    let max_label = train_labels
        .iter()
        .chain(&test_labels)
        .copied()
        .max()
        .unwrap_or(0);
    let classes = (max_label as usize + 1).max(10);
    let fashion = dir
        .file_name()
        .is_some_and(|n| n.to_string_lossy().to_lowercase().contains("fashion"));
    let class_names = if fashion && classes == 10 {
        FASHION_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        numbered_classes(classes)
    };
    let set = |pixels, labels| ImageSet {
        pixels,
        labels,
        channels: 1,
        height: h,
        width: w,
        class_names: class_names.clone(),
    };
    let out = TrainTest {
        train: set(train_px, train_labels),
        test: set(test_px, test_labels),
    };
    tracing::info!(dir = %dir.display(), train = out.train.len(), test = out.test.len(), "loaded IDX data set");
    Ok(out)
}

/// `dir/name` when present, else `dir/name.gz`, else an error naming both.
fn find(dir: &Path, name: &str) -> Result<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Ok(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    Err(DataError::Io {
        path: raw,
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("expected {name} or {name}.gz in this IDX directory"),
        ),
    })
}

fn read_magic(r: &mut TrackedReader, want: u32, what: &str) -> Result<()> {
    let magic = r.read_u32_be("magic number")?;
    if magic != want {
        return Err(r.malformed(
            0,
            format!("expected {what} magic 0x{want:08x}, found 0x{magic:08x}"),
        ));
    }
    Ok(())
}

/// Reads an images file: returns the pixels (n*h*w bytes), height and width.
pub fn read_images(path: &Path) -> Result<(Vec<u8>, usize, usize)> {
    images_from(TrackedReader::open(path)?)
}

/// [`read_images`] over bytes already in memory (gzipped when `gz`); `origin` names them in
/// errors. The fuzz target `idx` calls this.
pub fn parse_images(origin: &Path, bytes: &[u8], gz: bool) -> Result<(Vec<u8>, usize, usize)> {
    images_from(TrackedReader::new(origin, Cursor::new(bytes.to_vec()), gz))
}

/// [`read_labels`] over bytes already in memory (gzipped when `gz`).
pub fn parse_labels(origin: &Path, bytes: &[u8], gz: bool, expected: usize) -> Result<Vec<u32>> {
    labels_from(
        TrackedReader::new(origin, Cursor::new(bytes.to_vec()), gz),
        expected,
    )
}

fn images_from(mut r: TrackedReader) -> Result<(Vec<u8>, usize, usize)> {
    read_magic(&mut r, IMAGES_MAGIC, "IDX images (ubyte, 3 dims)")?;
    let n = r.read_u32_be("image count")? as u64;
    let h = r.read_u32_be("row count")? as u64;
    let w = r.read_u32_be("column count")? as u64;
    if h == 0 || w == 0 || h > MAX_SIDE || w > MAX_SIDE {
        return Err(r.malformed(
            8,
            format!("image size {h}x{w} is outside the limit of 1 to {MAX_SIDE} pixels per side"),
        ));
    }
    // Each factor is < 2^32, so the product may overflow u64: check before allocating.
    let total = match n.checked_mul(h).and_then(|x| x.checked_mul(w)) {
        Some(t) if t <= MAX_BYTES => t,
        _ => {
            return Err(r.malformed(
                4,
                format!(
                    "header claims {n} images of {h}x{w}, more than the limit of {MAX_BYTES} bytes"
                ),
            ));
        }
    };
    let pixels = r.read_exact_vec(total, "pixel data")?;
    r.expect_eof()?;
    Ok((pixels, h as usize, w as usize))
}

/// Reads a labels file that must hold exactly `expected` labels (the images file's count).
pub fn read_labels(path: &Path, expected: usize) -> Result<Vec<u32>> {
    labels_from(TrackedReader::open(path)?, expected)
}

fn labels_from(mut r: TrackedReader, expected: usize) -> Result<Vec<u32>> {
    read_magic(&mut r, LABELS_MAGIC, "IDX labels (ubyte, 1 dim)")?;
    let n = r.read_u32_be("label count")? as usize;
    if n != expected {
        return Err(r.malformed(
            4,
            format!("expected {expected} labels (the images file's count), header says {n}"),
        ));
    }
    let bytes = r.read_exact_vec(n as u64, "labels")?;
    r.expect_eof()?;
    Ok(bytes.into_iter().map(u32::from).collect())
}

#[cfg(test)]
#[path = "idx_tests.rs"]
mod tests;
