//! IDX loader tests: small files written to a tempdir (valid, gzipped, and each malformed case),
//! plus the installed Fashion-MNIST checked against `tests/fixtures/datasets.json`.

use super::*;
use std::io::Write;

fn images(n: u32, h: u32, w: u32, fill: impl Fn(usize) -> u8) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [IMAGES_MAGIC, n, h, w] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend((0..(n * h * w) as usize).map(fill));
    b
}

fn labels(ls: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [LABELS_MAGIC, ls.len() as u32] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(ls);
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8], gz: bool) {
    if gz {
        let f = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
        let mut e = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
    } else {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A valid 3-train / 2-test data set of 2x3 images.
fn valid(dir: &Path, gz: bool) {
    write(
        dir,
        "train-images-idx3-ubyte",
        &images(3, 2, 3, |i| i as u8),
        gz,
    );
    write(dir, "train-labels-idx1-ubyte", &labels(&[1, 0, 9]), gz);
    write(
        dir,
        "t10k-images-idx3-ubyte",
        &images(2, 2, 3, |i| 100 + i as u8),
        gz,
    );
    write(dir, "t10k-labels-idx1-ubyte", &labels(&[3, 3]), gz);
}

fn malformed(err: DataError) -> (PathBuf, u64, String) {
    match err {
        DataError::Malformed {
            path,
            offset,
            message,
        } => (path, offset, message),
        other => panic!("expected Malformed, got {other}"),
    }
}

#[test]
fn loads_raw_and_gzipped() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        valid(dir.path(), gz);
        let tt = load_dir(dir.path()).unwrap();
        assert_eq!((tt.train.len(), tt.test.len()), (3, 2));
        assert_eq!(
            (tt.train.channels, tt.train.height, tt.train.width),
            (1, 2, 3)
        );
        assert_eq!(tt.train.labels, vec![1, 0, 9]);
        assert_eq!(tt.train.image(1), &[6, 7, 8, 9, 10, 11]);
        assert_eq!(tt.test.image(0), &[100, 101, 102, 103, 104, 105]);
        assert_eq!(tt.train.class_names[9], "9");
        tt.train.validate().unwrap();
    }
}

#[test]
fn fashion_directory_gets_fashion_names() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("Fashion-MNIST");
    std::fs::create_dir(&dir).unwrap();
    valid(&dir, false);
    let tt = load_dir(&dir).unwrap();
    assert_eq!(tt.train.class_names[0], "T-shirt/top");
    assert_eq!(tt.test.class_names[9], "Ankle boot");
}

#[test]
fn bad_magic_names_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    valid(dir.path(), false);
    let mut bytes = labels(&[1, 0, 9]);
    bytes[3] = 0x03;
    write(dir.path(), "train-labels-idx1-ubyte", &bytes, false);
    let (path, offset, msg) = malformed(load_dir(dir.path()).unwrap_err());
    assert!(path.ends_with("train-labels-idx1-ubyte"));
    assert_eq!(offset, 0);
    assert!(
        msg.contains("0x00000801") && msg.contains("0x00000803"),
        "{msg}"
    );
}

#[test]
fn truncated_pixels_report_where_the_file_ends() {
    for gz in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        valid(dir.path(), gz);
        let mut bytes = images(2, 2, 3, |_| 7);
        bytes.truncate(16 + 10);
        write(dir.path(), "t10k-images-idx3-ubyte", &bytes, gz);
        let err = load_dir(dir.path()).unwrap_err();
        let text = err.to_string();
        let (path, offset, msg) = malformed(err);
        assert!(path.to_string_lossy().contains("t10k-images-idx3-ubyte"));
        assert_eq!(offset, 26);
        assert!(
            msg.contains("truncated") && msg.contains("12 bytes"),
            "{msg}"
        );
        assert_eq!(text.contains("decompressed"), gz);
    }
}

#[test]
fn truncated_header() {
    let dir = tempfile::tempdir().unwrap();
    valid(dir.path(), false);
    write(
        dir.path(),
        "train-images-idx3-ubyte",
        &images(1, 1, 1, |_| 0)[..6],
        false,
    );
    let (_, offset, msg) = malformed(load_dir(dir.path()).unwrap_err());
    assert_eq!(offset, 6);
    assert!(msg.contains("image count"), "{msg}");
}

#[test]
fn count_mismatch_between_images_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    valid(dir.path(), false);
    write(
        dir.path(),
        "train-labels-idx1-ubyte",
        &labels(&[1, 0]),
        false,
    );
    let (path, offset, msg) = malformed(load_dir(dir.path()).unwrap_err());
    assert!(path.ends_with("train-labels-idx1-ubyte"));
    assert_eq!(offset, 4);
    assert!(msg.contains("expected 3 labels"), "{msg}");
}

#[test]
fn trailing_bytes_and_absurd_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    valid(dir.path(), false);
    let mut bytes = labels(&[1, 0, 9]);
    bytes.push(0);
    write(dir.path(), "train-labels-idx1-ubyte", &bytes, false);
    let (_, offset, msg) = malformed(load_dir(dir.path()).unwrap_err());
    assert_eq!((offset, msg.contains("trailing")), (11, true));

    let dir = tempfile::tempdir().unwrap();
    valid(dir.path(), false);
    let mut bytes = images(1, 1, 1, |_| 0);
    bytes[4..16].copy_from_slice(&[0xff; 12]);
    write(dir.path(), "train-images-idx3-ubyte", &bytes, false);
    let (_, _, msg) = malformed(load_dir(dir.path()).unwrap_err());
    assert!(msg.contains("limit"), "{msg}");
}

#[test]
fn test_size_must_match_train_size() {
    let dir = tempfile::tempdir().unwrap();
    valid(dir.path(), false);
    write(
        dir.path(),
        "t10k-images-idx3-ubyte",
        &images(2, 3, 2, |_| 0),
        false,
    );
    let (_, _, msg) = malformed(load_dir(dir.path()).unwrap_err());
    assert!(msg.contains("2x3") && msg.contains("3x2"), "{msg}");
}

#[test]
fn missing_file_names_both_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let msg = load_dir(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("train-images-idx3-ubyte.gz"), "{msg}");
}

#[test]
fn real_fashion_mnist_matches_numpy() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    if !dir.join("train-images-idx3-ubyte.gz").exists()
        && !dir.join("train-images-idx3-ubyte").exists()
    {
        let why = format!(
            "Fashion-MNIST is not installed at {} (apt-get install dataset-fashion-mnist)",
            dir.display()
        );
        assert!(
            std::env::var_os("CAUDA_REQUIRE_ALL").is_none(),
            "CAUDA_REQUIRE_ALL is set: {why}"
        );
        println!("skipped: {why}");
        return;
    }
    let fixture: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/datasets.json"
    )))
    .unwrap();
    let want = &fixture["fashion_mnist"];
    let tt = load_dir(dir).unwrap();
    assert_eq!((tt.train.len(), tt.test.len()), (60_000, 10_000));
    assert_eq!(
        (tt.train.channels, tt.train.height, tt.train.width),
        (1, 28, 28)
    );
    assert_eq!(tt.train.class_names[9], "Ankle boot");
    let counts: Vec<u64> = tt.train.class_counts().iter().map(|&c| c as u64).collect();
    assert_eq!(serde_json::json!(counts), want["train_class_counts"]);
    let sum = |s: &ImageSet| s.pixels.iter().map(|&p| u64::from(p)).sum::<u64>();
    assert_eq!(sum(&tt.train), want["train_pixel_sum"].as_u64().unwrap());
    assert_eq!(sum(&tt.test), want["test_pixel_sum"].as_u64().unwrap());
    assert_eq!(
        serde_json::json!(tt.train.labels[..10]),
        want["train_first_labels"]
    );
    assert_eq!(
        serde_json::json!(tt.test.labels[..10]),
        want["test_first_labels"]
    );
}

/// Regression: a header claiming 0 images of 2^32-1 x 2^32-1 pixels passed the byte limit (0
/// bytes) and gave an image set whose image size overflows when the model is sized from it.
#[test]
fn zero_images_of_absurd_size_are_refused() {
    let mut bytes = images(0, 1, 1, |_| 0);
    bytes[8..16].copy_from_slice(&[0xff; 8]);
    let (path, offset, msg) = malformed(parse_images(Path::new("x"), &bytes, false).unwrap_err());
    assert_eq!((path, offset), (PathBuf::from("x"), 8));
    assert!(
        msg.contains("4294967295x4294967295") && msg.contains("8192"),
        "{msg}"
    );
    let mut bytes = images(1, 1, 1, |_| 0);
    bytes[8..12].copy_from_slice(&(MAX_SIDE as u32 + 1).to_be_bytes());
    assert!(parse_images(Path::new("x"), &bytes, false).is_err());
}

#[test]
fn byte_entry_points_read_what_the_files_hold() {
    let bytes = images(2, 2, 3, |i| i as u8);
    let (px, h, w) = parse_images(Path::new("mem"), &bytes, false).unwrap();
    assert_eq!((px.len(), h, w), (12, 2, 3));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&labels(&[3, 1])).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(
        parse_labels(Path::new("mem.gz"), &gz, true, 2).unwrap(),
        vec![3, 1]
    );
    let err = parse_labels(Path::new("mem.gz"), &gz[..10], true, 2).unwrap_err();
    assert!(err.to_string().contains("mem.gz"), "{err}");
}
