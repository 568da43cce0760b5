//! Loading a split-file data set: images of varying sizes and formats through the evaluation
//! transform to one square, labels and class counts from the lists, the validation list as its
//! own set, a missing image named by its list file and line when the set is loaded, a broken
//! one when it is decoded.

use std::path::Path;

use image::{Rgb, RgbImage};

use super::*;

/// An image of `w x h` whose left half is `a` and right half `b`.
fn save(root: &Path, rel: &str, w: u32, h: u32, a: [u8; 3], b: [u8; 3]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_fn(w, h, |x, _| if x < w / 2 { Rgb(a) } else { Rgb(b) })
        .save(&path)
        .unwrap();
}

fn source(root: &Path, val: bool) -> ListSource {
    ListSource {
        format: ListFormat::Text,
        root: root.to_path_buf(),
        train: "train.txt".into(),
        val: val.then(|| "val.txt".into()),
        test: root.join("test.txt"),
        image_size: 16,
        pinned: None,
    }
}

#[test]
fn images_of_any_size_become_one_square_geometry() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let red = [200, 10, 10];
    save(root, "train/0/a.png", 40, 30, red, red);
    save(root, "train/0/b.jpg", 17, 90, red, red);
    save(root, "train/1/c.png", 64, 64, [0, 0, 255], [0, 255, 0]);
    save(root, "test/2/d.png", 20, 20, red, red);
    save(root, "val/1/e.png", 33, 21, red, red);
    std::fs::write(
        root.join("train.txt"),
        "train/0/a.png 0\ntrain/0/b.jpg 0\ntrain/1/c.png 2\n",
    )
    .unwrap();
    std::fs::write(root.join("test.txt"), "test/2/d.png 2\n").unwrap();
    std::fs::write(root.join("val.txt"), "val/1/e.png 1\n").unwrap();
    let loaded = source(root, true).load().unwrap();
    let train = loaded.train.head(3).unwrap();
    let train = &train;
    assert_eq!((train.channels, train.height, train.width), (3, 16, 16));
    assert_eq!(train.labels, [0, 0, 2]);
    assert_eq!(
        train.class_counts(),
        [2, 0, 1],
        "classes come from the training list"
    );
    assert_eq!(loaded.test.class_names.len(), 3);
    assert_eq!(loaded.val.as_ref().unwrap().labels, [1]);
    // A solid image stays its colour (the PNG exactly; the JPEG within its compression).
    let a = train.image(0);
    assert!(
        a[..256].iter().all(|&v| v.abs_diff(200) <= 1)
            && a[256..512].iter().all(|&v| v.abs_diff(10) <= 1)
    );
    let b = train.image(1);
    assert!(
        b[..256].iter().all(|&v| v.abs_diff(200) < 12),
        "{:?}",
        &b[..16]
    );
    // The centre crop of a left-blue/right-green square keeps both halves.
    let c = train.image(2);
    let (blue, green) = (&c[512..768], &c[256..512]);
    assert_eq!((blue[0], green[0]), (255, 0), "left column is blue");
    assert_eq!((blue[15], green[15]), (0, 255), "right column is green");
    // The hash covers the lists' bytes and the size.
    let again = source(root, true).load().unwrap();
    assert_eq!(again.hash, loaded.hash);
    let mut bigger = source(root, true);
    bigger.image_size = 24;
    assert_ne!(bigger.load().unwrap().hash, loaded.hash);
}

#[test]
fn a_missing_or_broken_image_is_named_by_its_list_line() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    save(root, "train/a.png", 20, 20, [1, 2, 3], [1, 2, 3]);
    std::fs::write(
        root.join("train.txt"),
        "train/a.png 0\ntrain/missing.png 1\n",
    )
    .unwrap();
    std::fs::write(root.join("test.txt"), "train/a.png 0\n").unwrap();
    let err = source(root, false).load().unwrap_err().to_string();
    assert!(
        err.contains("train.txt") && err.contains("line 2") && err.contains("train/missing.png"),
        "{err}"
    );
    std::fs::write(root.join("train/missing.png"), b"not a png").unwrap();
    let loaded = source(root, false).load().unwrap();
    assert!(loaded.train.eval_image(0).is_ok());
    let err = loaded.train.eval_image(1).unwrap_err().to_string();
    assert!(err.contains("train.txt") && err.contains("line 2"), "{err}");
    // A test label the training list does not have.
    std::fs::write(root.join("train.txt"), "train/a.png 0\n").unwrap();
    std::fs::write(root.join("test.txt"), "train/a.png 4\n").unwrap();
    let err = source(root, false).load().unwrap_err().to_string();
    assert!(
        err.contains("test.txt") && err.contains("label 4 is out of range"),
        "{err}"
    );
    let mut tiny = source(root, false);
    tiny.image_size = 4;
    assert!(tiny.load().unwrap_err().to_string().contains("image_size"));
}
