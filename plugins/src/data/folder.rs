//! Image-folder data sets: `ROOT/{train,test}/<class>/*.{png,jpg,jpeg}`, the layout most custom
//! long-tailed collections arrive in. Classes are the `train` sub-folder names, sorted; `test`
//! must have the same class folders. Images are decoded once with the `image` crate to RGB (or to
//! one gray channel when every image is 8-bit grayscale), must all share one size, and are cached
//! in `ROOT/.cauda-cache-v1.bin` (or a cache directory) keyed by the file list, sizes and mtimes,
//! so the next load reads one file instead of decoding thousands.

use crate::hex::ToHex;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use image::{ColorType, DynamicImage, GenericImageView, ImageFormat, ImageReader, Limits};
use sha2::{Digest, Sha256};

use super::folder_cache;
use super::read::{io_error, read_file_limited};
use super::{DataError, ImageSet, Result, TrainTest};

/// File name of the cache written inside the data set's root.
pub const CACHE_FILE: &str = ".cauda-cache-v1.bin";

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Largest image file read, in bytes (a data set's images are small; a 4096x4096 PNG is ~50 MB).
pub const MAX_IMAGE_FILE_BYTES: u64 = 64 << 20;
/// Largest width or height of an image, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 8192;
/// Most memory the decoder may allocate for one image, in bytes.
pub const MAX_IMAGE_ALLOC: u64 = 256 << 20;

/// Loads `root`, caching the decoded pixels in `root/.cauda-cache-v1.bin`.
pub fn load_dir(root: &Path) -> Result<TrainTest> {
    load_dir_with(root, None)
}

/// Loads `root`; the cache goes to `cache_dir` (one file per root) when given, else into `root`.
pub fn load_dir_with(root: &Path, cache_dir: Option<&Path>) -> Result<TrainTest> {
    let train_dir = root.join("train");
    let classes = list_dirs(&train_dir)?;
    if classes.is_empty() {
        return Err(DataError::Invalid(format!(
            "{}: expected one sub-folder per class, found none",
            train_dir.display()
        )));
    }
    let test_dir = root.join("test");
    let test_classes = list_dirs(&test_dir)?;
    if test_classes != classes {
        return Err(DataError::Invalid(format!(
            "{}: the class folders {test_classes:?} differ from those of {} {classes:?}",
            test_dir.display(),
            train_dir.display()
        )));
    }
    let train_files = list_files(&train_dir, &classes)?;
    let test_files = list_files(&test_dir, &classes)?;
    let key = cache_key(root, &classes, &train_files, &test_files)?;
    let cache_path = match cache_dir {
        Some(dir) => dir.join(format!("cauda-cache-v1-{}.bin", root_tag(root))),
        None => root.join(CACHE_FILE),
    };
    match folder_cache::read(&cache_path, &key) {
        Ok(Some(tt)) => {
            tracing::debug!(cache = %cache_path.display(), "image folder cache hit");
            return Ok(tt);
        }
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "ignoring unreadable image folder cache"),
    }
    let tt = decode_all(&classes, &train_files, &test_files)?;
    if let Err(e) = folder_cache::write(&cache_path, &key, &tt) {
        tracing::warn!(error = %e, "could not write the image folder cache");
    }
    tracing::info!(root = %root.display(), train = tt.train.len(), test = tt.test.len(), "decoded image folder");
    Ok(tt)
}

/// Sorted names of the non-hidden sub-directories of `dir`.
fn list_dirs(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let entry = entry.map_err(|e| io_error(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// `(path, label)` of every image under `dir/<class>`, classes in order, files sorted by name.
fn list_files(dir: &Path, classes: &[String]) -> Result<Vec<(PathBuf, u32)>> {
    let mut out = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        let class_dir = dir.join(class);
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&class_dir).map_err(|e| io_error(&class_dir, e))? {
            let path = entry.map_err(|e| io_error(&class_dir, e))?.path();
            let image_ext = path
                .extension()
                .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)));
            if image_ext && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        out.extend(files.into_iter().map(|p| (p, label as u32)));
    }
    Ok(out)
}

/// SHA-256 over the class names and every file's path, size and mtime.
fn cache_key(
    root: &Path,
    classes: &[String],
    train: &[(PathBuf, u32)],
    test: &[(PathBuf, u32)],
) -> Result<[u8; 32]> {
    let mut h = Sha256::new();
    h.update(b"cauda-folder-v1\0");
    for c in classes {
        h.update(c.as_bytes());
        h.update([0]);
    }
    for (split, files) in [("train", train), ("test", test)] {
        h.update(split.as_bytes());
        h.update((files.len() as u64).to_le_bytes());
        for (path, _) in files {
            let meta = std::fs::metadata(path).map_err(|e| io_error(path, e))?;
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            let rel = path.strip_prefix(root).unwrap_or(path);
            h.update(rel.to_string_lossy().as_bytes());
            h.update([0]);
            h.update(meta.len().to_le_bytes());
            h.update(mtime.to_le_bytes());
        }
    }
    Ok(h.finalize().into())
}

/// 16 hex digits naming `root` (canonicalised when possible) inside a shared cache directory.
fn root_tag(root: &Path) -> String {
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    Sha256::digest(canonical.to_string_lossy().as_bytes())[..8].to_hex()
}

/// One decoded image: gray (1 byte per pixel) or RGB (3, interleaved), as the file stores it.
struct Decoded {
    gray: bool,
    bytes: Vec<u8>,
}

fn decode_all(
    classes: &[String],
    train: &[(PathBuf, u32)],
    test: &[(PathBuf, u32)],
) -> Result<TrainTest> {
    let mut size: Option<(u32, u32, PathBuf)> = None;
    let mut decode = |files: &[(PathBuf, u32)]| -> Result<Vec<Decoded>> {
        files
            .iter()
            .map(|(path, _)| {
                let img = decode_image(path, &read_file_limited(path, MAX_IMAGE_FILE_BYTES)?)?;
                let dims = img.dimensions();
                match size {
                    None => size = Some((dims.0, dims.1, path.clone())),
                    Some((w, h, ref first)) if (w, h) != dims => {
                        return Err(DataError::Malformed {
                            path: path.clone(),
                            offset: 0,
                            message: format!(
                                "expected {w}x{h} pixels like {}, found {}x{}",
                                first.display(),
                                dims.0,
                                dims.1
                            ),
                        });
                    }
                    Some(_) => {}
                }
                Ok(to_decoded(img))
            })
            .collect()
    };
    let train_px = decode(train)?;
    let test_px = decode(test)?;
    let (w, h) = size.map_or((0, 0), |(w, h, _)| (w as usize, h as usize));
    let gray = train_px.iter().chain(&test_px).all(|d| d.gray);
    let channels = if gray { 1 } else { 3 };
    let set = |decoded: Vec<Decoded>, files: &[(PathBuf, u32)]| {
        let mut pixels = Vec::with_capacity(decoded.len() * channels * h * w);
        for d in decoded {
            if gray {
                pixels.extend_from_slice(&d.bytes);
            } else if d.gray {
                for _ in 0..3 {
                    pixels.extend_from_slice(&d.bytes);
                }
            } else {
                for c in 0..3 {
                    pixels.extend(d.bytes.iter().skip(c).step_by(3));
                }
            }
        }
        ImageSet {
            pixels,
            labels: files.iter().map(|&(_, l)| l).collect(),
            channels,
            height: h,
            width: w,
            class_names: classes.to_vec(),
        }
    };
    Ok(TrainTest {
        train: set(train_px, train),
        test: set(test_px, test),
    })
}

/// Decodes one PNG or JPEG file's bytes (the format is sniffed from the content), refusing
/// images wider or taller than [`MAX_IMAGE_SIDE`] or needing more than [`MAX_IMAGE_ALLOC`]
/// bytes before allocating them. `path` names the file in errors. The fuzz target `image`
/// calls this.
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<DynamicImage> {
    let malformed = |message: String| DataError::Malformed {
        path: path.to_path_buf(),
        offset: 0,
        message,
    };
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| malformed(format!("expected a PNG or JPEG image: {e}")))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        other => {
            return Err(malformed(format!(
                "expected a PNG or JPEG image, found {}",
                other.map_or("an unknown format".to_string(), |f| format!("{f:?}"))
            )));
        }
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    reader
        .decode()
        .map_err(|e| malformed(format!("expected a PNG or JPEG image: {e}")))
}

fn to_decoded(img: DynamicImage) -> Decoded {
    if img.color() == ColorType::L8 {
        Decoded {
            gray: true,
            bytes: img.into_luma8().into_raw(),
        }
    } else {
        Decoded {
            gray: false,
            bytes: img.into_rgb8().into_raw(),
        }
    }
}

/// Reads an image-folder cache file's bytes whatever key they were written for (the loader
/// checks the key; this is the parser the fuzz target `image` exercises). `None` when the
/// bytes are not a cache file.
pub fn parse_cache(path: &Path, bytes: &[u8]) -> Result<Option<TrainTest>> {
    folder_cache::parse(path, bytes, None)
}

#[cfg(test)]
#[path = "folder_tests.rs"]
mod tests;
