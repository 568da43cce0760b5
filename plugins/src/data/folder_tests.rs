//! Image-folder loader tests on PNG trees written to a tempdir.

use super::*;

fn rgb(path: &Path, w: u32, h: u32, seed: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let buf: Vec<u8> = (0..w * h * 3).map(|i| seed.wrapping_add(i as u8)).collect();
    image::save_buffer(path, &buf, w, h, image::ExtendedColorType::Rgb8).unwrap();
}

fn gray(path: &Path, w: u32, h: u32, seed: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let buf: Vec<u8> = (0..w * h).map(|i| seed.wrapping_add(i as u8)).collect();
    image::save_buffer(path, &buf, w, h, image::ExtendedColorType::L8).unwrap();
}

/// train: cat (2), dog (1); test: cat (1), dog (1); all 3x2 RGB.
fn tree(root: &Path) {
    rgb(&root.join("train/dog/a.png"), 3, 2, 100);
    rgb(&root.join("train/cat/b.png"), 3, 2, 10);
    rgb(&root.join("train/cat/a.PNG"), 3, 2, 0);
    rgb(&root.join("test/cat/x.png"), 3, 2, 50);
    rgb(&root.join("test/dog/y.png"), 3, 2, 60);
    std::fs::write(root.join("train/cat/notes.txt"), "ignored").unwrap();
}

#[test]
fn loads_rgb_as_chw_with_sorted_classes() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let tt = load_dir(dir.path()).unwrap();
    assert_eq!(tt.train.class_names, vec!["cat", "dog"]);
    assert_eq!(tt.train.labels, vec![0, 0, 1]);
    assert_eq!(tt.test.labels, vec![0, 1]);
    assert_eq!(
        (tt.train.channels, tt.train.height, tt.train.width),
        (3, 2, 3)
    );
    // a.PNG: HWC bytes 0..18 -> red plane 0,3,6,..., green 1,4,..., blue 2,5,...
    let want: Vec<u8> = (0..3)
        .flat_map(|c| (0..6).map(move |p| (p * 3 + c) as u8))
        .collect();
    assert_eq!(tt.train.image(0), want.as_slice());
    tt.train.validate().unwrap();
    assert!(dir.path().join(CACHE_FILE).is_file());
}

#[test]
fn second_load_reads_the_cache_and_changes_invalidate_it() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let first = load_dir(dir.path()).unwrap();
    // Alter the last pixel byte in the cache: a cache hit must return it.
    let cache = dir.path().join(CACHE_FILE);
    let mut bytes = std::fs::read(&cache).unwrap();
    *bytes.last_mut().unwrap() ^= 0xff;
    std::fs::write(&cache, &bytes).unwrap();
    let second = load_dir(dir.path()).unwrap();
    assert_eq!(second.train, first.train);
    assert_ne!(second.test.pixels, first.test.pixels);
    // A new file changes the key: decoded again.
    rgb(&dir.path().join("train/dog/c.png"), 3, 2, 7);
    let third = load_dir(dir.path()).unwrap();
    assert_eq!(third.train.len(), 4);
    assert_eq!(third.test, first.test);
    // A truncated cache is ignored (warned about) and rewritten.
    std::fs::write(&cache, &bytes[..60]).unwrap();
    assert_eq!(load_dir(dir.path()).unwrap(), third);
}

#[test]
fn cache_dir_holds_the_cache_instead_of_root() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    tree(dir.path());
    let tt = load_dir_with(dir.path(), Some(cache.path())).unwrap();
    assert!(!dir.path().join(CACHE_FILE).exists());
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1);
    assert_eq!(load_dir_with(dir.path(), Some(cache.path())).unwrap(), tt);
}

#[test]
fn all_gray_gives_one_channel_mixed_gives_rgb() {
    let dir = tempfile::tempdir().unwrap();
    gray(&dir.path().join("train/0/a.png"), 2, 2, 1);
    gray(&dir.path().join("test/0/a.png"), 2, 2, 5);
    let tt = load_dir(dir.path()).unwrap();
    assert_eq!(tt.train.channels, 1);
    assert_eq!(tt.train.image(0), &[1, 2, 3, 4]);

    rgb(&dir.path().join("train/0/b.png"), 2, 2, 0);
    let tt = load_dir(dir.path()).unwrap();
    assert_eq!(tt.train.channels, 3);
    assert_eq!(tt.train.image(0), &[1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]);
}

#[test]
fn size_mismatch_names_the_first_differing_file() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    rgb(&dir.path().join("test/dog/z.png"), 4, 2, 0);
    let err = load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("z.png") && err.contains("expected 3x2") && err.contains("4x2"),
        "{err}"
    );
}

#[test]
fn class_mismatch_and_undecodable_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    rgb(&dir.path().join("test/emu/q.png"), 3, 2, 0);
    let err = load_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("emu"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    std::fs::write(dir.path().join("train/dog/bad.jpg"), b"not a jpeg").unwrap();
    let err = load_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("bad.jpg"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    assert!(
        load_dir(empty.path())
            .unwrap_err()
            .to_string()
            .contains("train")
    );
}

/// A PNG header claiming 100000x100000 pixels is refused by the size limit before the decoder
/// allocates ~30 GB; files that are not PNG or JPEG are refused naming the file.
#[test]
fn decode_limits_and_formats() {
    fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut h = flate2::Crc::new();
        h.update(kind);
        h.update(data);
        c.extend_from_slice(&h.sum().to_be_bytes());
        c
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(chunk(b"IHDR", &ihdr));
    png.extend(chunk(b"IEND", &[]));
    let err = decode_image(Path::new("bomb.png"), &png)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bomb.png") && err.to_lowercase().contains("limit"),
        "{err}"
    );

    let err = decode_image(Path::new("a.png"), b"GIF89a....")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.png") && err.contains("PNG or JPEG"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    rgb(&dir.path().join("ok.png"), 3, 2, 7);
    let bytes = std::fs::read(dir.path().join("ok.png")).unwrap();
    let img = decode_image(Path::new("ok.png"), &bytes).unwrap();
    assert_eq!((img.width(), img.height()), (3, 2));
}

/// The cache parser refuses what it cannot trust and never panics on a short or lying file.
#[test]
fn cache_bytes_are_checked() {
    assert!(parse_cache(Path::new("c"), b"short").unwrap().is_none());
    let mut bytes = b"CAUDAFC1".to_vec();
    bytes.extend([0u8; 32]);
    bytes.extend([0xff; 24]);
    assert!(parse_cache(Path::new("c"), &bytes).is_err());
}

/// Regression (found by the `image` fuzz target): a cache file declaring 0 images of
/// 2^32-1 x 2^32-1 x 2^32-1 pixels made `ImageSet::validate` overflow (a worker panic on a file
/// planted in a data set's folder). The fuzzer's input is in fuzz/corpus/image/.
#[test]
fn cache_with_overflowing_geometry_is_an_error() {
    let mut bytes = b"CAUDAFC1".to_vec();
    bytes.extend([0u8; 32]);
    for _ in 0..2 {
        bytes.extend([0xff; 12]); // channels, height, width
        bytes.extend(0u32.to_le_bytes()); // classes
        bytes.extend(0u64.to_le_bytes()); // images
    }
    let err = parse_cache(Path::new("c"), &bytes).unwrap_err().to_string();
    assert!(err.contains("overflows"), "{err}");
    let crash = include_bytes!("../../../fuzz/corpus/image/crash-cache-geometry-overflow");
    assert!(parse_cache(Path::new("c"), crash).is_err());
}
