//! CIFAR-10 and CIFAR-100 in torchvision's on-disk format, the Python pickles of the original
//! `cifar-10-python.tar.gz` / `cifar-100-python.tar.gz` that the papers' code loads
//! (`torchvision.datasets.CIFAR10/100`):
//!
//! * `cifar-10-batches-py/`: `data_batch_1` .. `data_batch_5`, `test_batch` (dicts with
//!   `b'data'`, a `uint8` numpy array N x 3072 in CHW order, and `b'labels'`, a list of ints),
//!   `batches.meta` (`b'label_names'`);
//! * `cifar-100-python/`: `train`, `test` (`b'data'`, `b'fine_labels'`), `meta`
//!   (`b'fine_label_names'`).
//!
//! The images are in the same order as in the binary batches (`cifar.rs`), so split files and
//! seeds select the same images either way. `data.path` may name the folder itself or its parent
//! (torchvision's `root`). Files are read under [`MAX_PICKLE_BYTES`] and parsed by `pickle/`.

use std::path::{Path, PathBuf};

use super::cifar::CifarKind;
use super::pickle::{self, Value};
use super::read::read_file_limited;
use super::{DataError, ImageSet, Result, TrainTest, numbered_classes};

/// Largest pickle file read (CIFAR-100's `train` is ~155 MB).
pub const MAX_PICKLE_BYTES: u64 = 512 * 1024 * 1024;
/// Largest meta file read.
pub const MAX_META_BYTES: u64 = 1024 * 1024;

const PIXELS: usize = 3 * 32 * 32;

/// The torchvision folder `dir` is or holds, and which variant it is.
pub fn find(dir: &Path) -> Option<(PathBuf, CifarKind)> {
    let is_10 = |d: &Path| d.join("data_batch_1").is_file();
    let is_100 = |d: &Path| d.join("train").is_file() && d.join("meta").is_file();
    for d in [
        dir.to_path_buf(),
        dir.join("cifar-10-batches-py"),
        dir.join("cifar-100-python"),
    ] {
        if is_10(&d) {
            return Some((d, CifarKind::Cifar10));
        }
        if is_100(&d) {
            return Some((d, CifarKind::Cifar100));
        }
    }
    None
}

/// Loads a torchvision CIFAR folder of kind `kind`.
pub fn load_dir(dir: &Path, kind: CifarKind) -> Result<TrainTest> {
    let (train_files, test_file, meta) = match kind {
        CifarKind::Cifar10 => (
            (1..=5).map(|i| format!("data_batch_{i}")).collect(),
            "test_batch",
            "batches.meta",
        ),
        CifarKind::Cifar100 => (vec!["train".to_string()], "test", "meta"),
    };
    let meta_path = dir.join(meta);
    let class_names = if meta_path.is_file() {
        parse_meta(
            &meta_path,
            &read_file_limited(&meta_path, MAX_META_BYTES)?,
            kind,
        )?
    } else {
        numbered_classes(kind.num_classes())
    };
    let empty = || super::cifar::empty_set(&class_names);
    let mut train = empty();
    for f in &train_files {
        let path = dir.join(f);
        parse_batch(
            &path,
            &read_file_limited(&path, MAX_PICKLE_BYTES)?,
            kind,
            &mut train,
        )?;
    }
    let mut test = empty();
    let path = dir.join(test_file);
    parse_batch(
        &path,
        &read_file_limited(&path, MAX_PICKLE_BYTES)?,
        kind,
        &mut test,
    )?;
    tracing::info!(dir = %dir.display(), ?kind, train = train.len(), test = test.len(), "loaded CIFAR pickles");
    Ok(TrainTest { train, test })
}

fn malformed(path: &Path, offset: usize, message: impl Into<String>) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        offset: offset as u64,
        message: message.into(),
    }
}

fn unpickle(path: &Path, bytes: &[u8]) -> Result<Value> {
    pickle::load(bytes).map_err(|e| malformed(path, e.offset, e.message))
}

/// Appends the images and labels of one pickled batch (`bytes`, read from `path`) to `set`.
/// The fuzz target `cifar_pickle` calls this.
pub fn parse_batch(path: &Path, bytes: &[u8], kind: CifarKind, set: &mut ImageSet) -> Result<()> {
    let top = unpickle(path, bytes)?;
    let labels_key = match kind {
        CifarKind::Cifar10 => "labels",
        CifarKind::Cifar100 => "fine_labels",
    };
    let expected = format!(
        "expected a dict with b'data' (a uint8 numpy array of N x {PIXELS}) and b'{labels_key}' \
         (a list of N ints)"
    );
    let (Some(data), Some(labels)) = (top.get("data"), top.get(labels_key)) else {
        return Err(malformed(path, 0, expected));
    };
    let Value::Array { shape, dtype, data } = data else {
        return Err(malformed(
            path,
            0,
            format!("b'data' is not a numpy array; {expected}"),
        ));
    };
    if !matches!(dtype.as_str(), "u1" | "|u1" | "uint8") {
        return Err(malformed(
            path,
            0,
            format!("b'data' has dtype {dtype}, expected uint8 (u1)"),
        ));
    }
    let n = match shape.as_slice() {
        [n, p] if *p == PIXELS => *n,
        other => {
            return Err(malformed(
                path,
                0,
                format!("b'data' has shape {other:?}, expected [N, {PIXELS}]"),
            ));
        }
    };
    let pixels = data.as_bytes().unwrap_or_default();
    if Some(pixels.len()) != n.checked_mul(PIXELS) {
        return Err(malformed(
            path,
            0,
            format!(
                "b'data' holds {} bytes, expected {n} x {PIXELS}",
                pixels.len()
            ),
        ));
    }
    let Value::List(items, _) = labels else {
        return Err(malformed(
            path,
            0,
            format!("b'{labels_key}' is not a list; {expected}"),
        ));
    };
    if items.len() != n {
        return Err(malformed(
            path,
            0,
            format!("{} labels for {n} images", items.len()),
        ));
    }
    let classes = kind.num_classes();
    let mut labels = Vec::with_capacity(n);
    for (i, l) in items.iter().enumerate() {
        match l.as_ref() {
            Value::Int(v) if (0..classes as i64).contains(v) => labels.push(*v as u32),
            other => {
                return Err(malformed(
                    path,
                    0,
                    format!("b'{labels_key}'[{i}] is {other:?}, expected an int below {classes}"),
                ));
            }
        }
    }
    set.pixels.extend_from_slice(pixels);
    set.labels.extend(labels);
    Ok(())
}

/// Class names from `batches.meta` (`b'label_names'`) or `meta` (`b'fine_label_names'`).
pub fn parse_meta(path: &Path, bytes: &[u8], kind: CifarKind) -> Result<Vec<String>> {
    let key = match kind {
        CifarKind::Cifar10 => "label_names",
        CifarKind::Cifar100 => "fine_label_names",
    };
    let top = unpickle(path, bytes)?;
    let Some(Value::List(items, _)) = top.get(key) else {
        return Err(malformed(
            path,
            0,
            format!("expected a dict with b'{key}', a list of names"),
        ));
    };
    let names: Option<Vec<String>> = items
        .iter()
        .map(|v| {
            v.as_bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        })
        .collect();
    match names {
        Some(names) if names.len() == kind.num_classes() => Ok(names),
        _ => Err(malformed(
            path,
            0,
            format!("b'{key}' must hold {} names (strings)", kind.num_classes()),
        )),
    }
}
