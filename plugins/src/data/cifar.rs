//! CIFAR-10 and CIFAR-100 in Krizhevsky's binary format (3x32x32 images stored as 1024 red,
//! 1024 green, 1024 blue bytes, row-major: already CHW).
//!
//! CIFAR-10 (`data_batch_1.bin` .. `data_batch_5.bin`, `test_batch.bin`): records of one label
//! byte and 3072 pixel bytes; names from `batches.meta.txt`. CIFAR-100 (`train.bin`, `test.bin`):
//! records of a coarse and a fine label byte and 3072 pixel bytes; the fine label (100 classes)
//! is used; names from `fine_label_names.txt`. Which one a directory holds is detected from the
//! files present; missing name files give numbered classes. A directory without binary batches
//! may hold torchvision's pickled format instead (`cifar_pickle.rs`).

use std::path::Path;

use super::read::{read_file, read_file_limited};
use super::{DataError, ImageSet, Result, TrainTest, numbered_classes};

const PIXELS: usize = 3 * 32 * 32;

/// Largest class-names file read (100 names of a few words need ~1 KB).
pub const MAX_NAMES_BYTES: u64 = 64 * 1024;

/// The two layouts this loader knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CifarKind {
    Cifar10,
    Cifar100,
}

impl CifarKind {
    /// Bytes before the pixels of each record.
    fn label_bytes(self) -> usize {
        match self {
            Self::Cifar10 => 1,
            Self::Cifar100 => 2,
        }
    }

    pub fn num_classes(self) -> usize {
        match self {
            Self::Cifar10 => 10,
            Self::Cifar100 => 100,
        }
    }

    fn names_file(self) -> &'static str {
        match self {
            Self::Cifar10 => "batches.meta.txt",
            Self::Cifar100 => "fine_label_names.txt",
        }
    }
}

/// Which CIFAR variant `dir` holds, from the files present.
pub fn detect(dir: &Path) -> Result<CifarKind> {
    if dir.join("data_batch_1.bin").is_file() {
        Ok(CifarKind::Cifar10)
    } else if dir.join("train.bin").is_file() {
        Ok(CifarKind::Cifar100)
    } else {
        Err(DataError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "expected CIFAR-10 (data_batch_1.bin .. data_batch_5.bin, test_batch.bin) or \
                 CIFAR-100 (train.bin, test.bin) binary files, or torchvision's pickles \
                 (cifar-10-batches-py/ with data_batch_1 .. 5, test_batch; cifar-100-python/ \
                 with train, test, meta)",
            ),
        })
    }
}

/// Loads a CIFAR-10 or CIFAR-100 binary directory, or torchvision's pickled folder.
pub fn load_dir(dir: &Path) -> Result<TrainTest> {
    let kind = match (detect(dir), super::cifar_pickle::find(dir)) {
        (Ok(kind), _) => kind,
        (Err(_), Some((folder, kind))) => return super::cifar_pickle::load_dir(&folder, kind),
        (Err(e), None) => return Err(e),
    };
    let (train_files, test_files): (Vec<String>, Vec<String>) = match kind {
        CifarKind::Cifar10 => (
            (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            vec!["test_batch.bin".into()],
        ),
        CifarKind::Cifar100 => (vec!["train.bin".into()], vec!["test.bin".into()]),
    };
    let class_names = read_names(dir, kind)?;
    let load = |files: &[String]| -> Result<ImageSet> {
        let mut set = empty_set(&class_names);
        for f in files {
            read_records(&dir.join(f), kind, &mut set)?;
        }
        Ok(set)
    };
    let out = TrainTest {
        train: load(&train_files)?,
        test: load(&test_files)?,
    };
    tracing::info!(dir = %dir.display(), ?kind, train = out.train.len(), test = out.test.len(), "loaded CIFAR data set");
    Ok(out)
}

/// An empty set of 3x32x32 images with these classes, for a loader to fill.
pub(crate) fn empty_set(class_names: &[String]) -> ImageSet {
    ImageSet {
        pixels: Vec::new(),
        labels: Vec::new(),
        channels: 3,
        height: 32,
        width: 32,
        class_names: class_names.to_vec(),
    }
}

/// Appends the records of one binary batch file to `set`.
pub fn read_records(path: &Path, kind: CifarKind, set: &mut ImageSet) -> Result<()> {
    parse_records(path, &read_file(path)?, kind, set)
}

/// [`read_records`] over a batch file's bytes already in memory; `path` names them in errors.
/// The fuzz target `cifar` calls this.
pub fn parse_records(path: &Path, bytes: &[u8], kind: CifarKind, set: &mut ImageSet) -> Result<()> {
    let record = kind.label_bytes() + PIXELS;
    let whole = bytes.len() / record * record;
    if whole != bytes.len() {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            offset: whole as u64,
            message: format!(
                "partial record: the file length {} is not a multiple of the {record}-byte record \
                 ({} label byte(s) + {PIXELS} pixels)",
                bytes.len(),
                kind.label_bytes()
            ),
        });
    }
    set.pixels.reserve(whole / record * PIXELS);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        let label = rec[kind.label_bytes() - 1];
        if usize::from(label) >= kind.num_classes() {
            return Err(DataError::Malformed {
                path: path.to_path_buf(),
                offset: (i * record + kind.label_bytes() - 1) as u64,
                message: format!(
                    "expected a label below {}, found {label}",
                    kind.num_classes()
                ),
            });
        }
        set.labels.push(u32::from(label));
        set.pixels.extend_from_slice(&rec[kind.label_bytes()..]);
    }
    Ok(())
}

/// Class names from the variant's names file (non-empty lines), or numbers when it is absent.
fn read_names(dir: &Path, kind: CifarKind) -> Result<Vec<String>> {
    let path = dir.join(kind.names_file());
    if !path.is_file() {
        return Ok(numbered_classes(kind.num_classes()));
    }
    parse_names(&path, read_file_limited(&path, MAX_NAMES_BYTES)?, kind)
}

/// Class names from a names file's bytes (non-empty lines, exactly the variant's class count).
pub fn parse_names(path: &Path, bytes: Vec<u8>, kind: CifarKind) -> Result<Vec<String>> {
    let text = String::from_utf8(bytes).map_err(|e| DataError::Malformed {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to() as u64,
        message: "expected UTF-8 text".into(),
    })?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != kind.num_classes() {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            offset: 0,
            message: format!(
                "expected {} class names, one per line, found {}",
                kind.num_classes(),
                names.len()
            ),
        });
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(prefix: &[u8], fill: u8) -> Vec<u8> {
        let mut r = prefix.to_vec();
        r.extend(std::iter::repeat_n(fill, PIXELS));
        r
    }

    fn cifar10(dir: &Path) {
        for i in 1..=5u8 {
            let mut b = record(&[i], i);
            b.extend(record(&[0], 200));
            std::fs::write(dir.join(format!("data_batch_{i}.bin")), b).unwrap();
        }
        std::fs::write(dir.join("test_batch.bin"), record(&[9], 9)).unwrap();
    }

    #[test]
    fn loads_cifar10_with_names() {
        let dir = tempfile::tempdir().unwrap();
        cifar10(dir.path());
        let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
        std::fs::write(dir.path().join("batches.meta.txt"), names).unwrap();
        let tt = load_dir(dir.path()).unwrap();
        assert_eq!((tt.train.len(), tt.test.len()), (10, 1));
        assert_eq!(tt.train.labels, vec![1, 0, 2, 0, 3, 0, 4, 0, 5, 0]);
        assert!(tt.train.image(2).iter().all(|&p| p == 2));
        assert_eq!(tt.train.class_names[9], "truck");
        assert_eq!(tt.test.labels, vec![9]);
        tt.train.validate().unwrap();
    }

    #[test]
    fn loads_cifar100_fine_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = record(&[3, 77], 1);
        b.extend(record(&[19, 99], 2));
        std::fs::write(dir.path().join("train.bin"), b).unwrap();
        std::fs::write(dir.path().join("test.bin"), record(&[0, 5], 3)).unwrap();
        let tt = load_dir(dir.path()).unwrap();
        assert_eq!(tt.train.labels, vec![77, 99]);
        assert_eq!(tt.train.num_classes(), 100);
        assert_eq!(tt.test.labels, vec![5]);
        assert_eq!(tt.train.class_names[77], "77");
    }

    #[test]
    fn partial_record_names_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        cifar10(dir.path());
        let mut b = record(&[1], 1);
        b.extend_from_slice(&[1, 2, 3]);
        std::fs::write(dir.path().join("data_batch_3.bin"), b).unwrap();
        match load_dir(dir.path()).unwrap_err() {
            DataError::Malformed {
                path,
                offset,
                message,
            } => {
                assert!(path.ends_with("data_batch_3.bin"));
                assert_eq!(offset, 3073);
                assert!(message.contains("3073-byte record"), "{message}");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn bad_label_missing_batch_and_wrong_names_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        cifar10(dir.path());
        std::fs::write(dir.path().join("test_batch.bin"), record(&[10], 0)).unwrap();
        assert!(
            load_dir(dir.path())
                .unwrap_err()
                .to_string()
                .contains("below 10, found 10")
        );

        let dir = tempfile::tempdir().unwrap();
        cifar10(dir.path());
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
        assert!(
            load_dir(dir.path())
                .unwrap_err()
                .to_string()
                .contains("data_batch_4.bin")
        );

        let dir = tempfile::tempdir().unwrap();
        cifar10(dir.path());
        std::fs::write(dir.path().join("batches.meta.txt"), "a\nb\n").unwrap();
        assert!(
            load_dir(dir.path())
                .unwrap_err()
                .to_string()
                .contains("expected 10 class names")
        );

        let empty = tempfile::tempdir().unwrap();
        assert!(
            load_dir(empty.path())
                .unwrap_err()
                .to_string()
                .contains("train.bin")
        );
    }
}
