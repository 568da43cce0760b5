//! The shipped CIFAR-LT split files against Cao et al.'s protocol, rank and index files mapped
//! through labels, the hold-out, and every refusal naming the file, the key and the index.

use std::collections::HashSet;
use std::path::Path;

use super::*;
use crate::data::longtail::{LtConfig, target_counts};

fn shipped(name: &str) -> LoadedSplit {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/splits")
        .join(name);
    read_split_file(&path).unwrap()
}

/// CIFAR-like labels: `per_class` images of each class, classes interleaved (image i has
/// label i mod C), so ranks and absolute indices differ.
fn interleaved(classes: usize, per_class: usize) -> Vec<u32> {
    (0..classes * per_class)
        .map(|i| (i % classes) as u32)
        .collect()
}

fn parse(text: &str) -> Result<LoadedSplit> {
    parse_split_file(Path::new("s.json"), text.as_bytes())
}

#[test]
fn shipped_cifar_lt_files_have_caos_sizes_and_first_ranks() {
    // (file, classes, images per class, ratio, total, first ranks of class 0, of the last class)
    type Case = (
        &'static str,
        usize,
        usize,
        f64,
        usize,
        [usize; 5],
        [usize; 5],
    );
    let cases: [Case; 2] = [
        (
            "cifar10-lt-r100.json",
            10,
            5000,
            100.0,
            12_406,
            [398, 3833, 4836, 4572, 636],
            [2204, 3816, 2206, 2507, 1926],
        ),
        (
            "cifar100-lt-r100.json",
            100,
            500,
            100.0,
            10_847,
            [90, 254, 283, 445, 461],
            [348, 153, 363, 361, 299],
        ),
    ];
    for (name, classes, n, ratio, total, first, last) in cases {
        let f = shipped(name);
        let ranks = f.selection.ranks.as_ref().unwrap();
        let counts: Vec<usize> = ranks.iter().map(Vec::len).collect();
        // The profile is the one cauda's exp profile computes from n_max = 5000 / 500.
        let want = target_counts(&LtConfig::exp(ratio, 0), n, classes).unwrap();
        assert_eq!(counts, want, "{name}");
        assert_eq!(counts.iter().sum::<usize>(), total, "{name}");
        assert_eq!(ranks[0][..5], first, "{name}");
        assert_eq!(ranks[classes - 1][..5], last, "{name}");
        let split = split_from_file(&f, &interleaved(classes, n), classes, 0, 0, false).unwrap();
        assert_eq!(split.class_counts, want);
        // Rank r of class c is the r-th image labelled c: index r * C + c here.
        assert_eq!(split.train_indices[0], first[0] * classes);
    }
    for (name, total) in [
        ("cifar10-lt-r10.json", 20_431),
        ("cifar10-lt-r50.json", 13_996),
        ("cifar100-lt-r10.json", 19_573),
        ("cifar100-lt-r50.json", 12_608),
    ] {
        let f = shipped(name);
        let n: usize = f
            .selection
            .ranks
            .as_ref()
            .unwrap()
            .iter()
            .map(Vec::len)
            .sum();
        assert_eq!(n, total, "{name}");
    }
}

#[test]
fn indices_files_keep_their_order_and_the_hold_out_uses_unselected_images() {
    let labels = interleaved(2, 6); // class 0: 0,2,..,10; class 1: 1,3,..,11
    let f = parse(r#"{"version": 1, "num_classes": 2, "indices": [[10, 0, 2, 4, 6, 8], [3]]}"#)
        .unwrap();
    let split = split_from_file(&f, &labels, 2, 2, 9, false).unwrap();
    // Class 0 selected all 6: its 2 validation images come from the end of its selection.
    assert_eq!(split.class_counts, vec![4, 1]);
    assert_eq!(split.train_indices, vec![10, 0, 2, 4, 3]);
    assert_eq!(split.val_indices[..2], [6, 8]);
    // Class 1 has 5 unselected images: the hold-out comes from them.
    let val1: HashSet<usize> = split.val_indices[2..].iter().copied().collect();
    assert_eq!(val1.len(), 2);
    assert!(val1.iter().all(|&i| i % 2 == 1 && i != 3));
    // The balanced variant: the same total (5), equal per class, the same validation images.
    let bal = split_from_file(&f, &labels, 2, 2, 9, true).unwrap();
    assert_eq!(bal.class_counts, vec![3, 2]);
    assert_eq!(bal.val_indices, split.val_indices);
    let val: HashSet<usize> = bal.val_indices.iter().copied().collect();
    assert!(bal.train_indices.iter().all(|i| !val.contains(i)));
}

#[test]
fn bad_files_are_refused_naming_file_key_and_index() {
    let labels = interleaved(2, 3);
    let err = |text: &str| -> String {
        match parse(text).and_then(|f| split_from_file(&f, &labels, 2, 0, 0, false)) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    };
    let cases = [
        (
            r#"{"version": 1, "num_classes": 2, "ranks": [[0], [3]]}"#,
            "s.json: ranks[1][0]: rank 3 is out of range; class 1 has 3",
        ),
        (
            r#"{"version": 1, "num_classes": 2, "indices": [[0], [6]]}"#,
            "indices[1][0]: index 6 is out of range; the training part has 6",
        ),
        (
            r#"{"version": 1, "num_classes": 2, "indices": [[0, 2], [4]]}"#,
            "indices[1][0]: image 4 has label 0, not 1",
        ),
        (
            r#"{"version": 1, "num_classes": 2, "ranks": [[0, 1, 0], [1]]}"#,
            "ranks[0][2]: 0 is listed twice in class 0",
        ),
        (
            r#"{"version": 1, "num_classes": 3, "ranks": [[0], [1], [0]]}"#,
            "num_classes: 3, but the data set has 2",
        ),
        (
            r#"{"version": 1, "num_classes": 2, "ranks": [[0]]}"#,
            "ranks: 1 per-class lists, but num_classes = 2",
        ),
        (
            r#"{"version": 1, "num_classes": 2, "ranks": [[0], []]}"#,
            "ranks[1]: empty",
        ),
        (
            r#"{"version": 1, "num_classes": 2}"#,
            "give exactly one of `ranks` and `indices`",
        ),
        (
            r#"{"version": 2, "num_classes": 2, "ranks": [[0], [0]]}"#,
            "version: 2; allowed: 1",
        ),
        (
            r#"{"version": 1, "num_classes": 2, "ranks": [[0], [0]], "seed": 3}"#,
            "unknown field `seed`",
        ),
        (
            "{\"version\": 1,\n \"num_classes\": -2}",
            "s.json: line 2 column",
        ),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(got.contains(want), "{text}\n  gave: {got}\n  want: {want}");
    }
    let big = vec![b' '; MAX_SPLIT_FILE_BYTES as usize + 1];
    let got = parse_split_file(Path::new("big.json"), &big)
        .unwrap_err()
        .to_string();
    assert!(got.contains("allowed at most"), "{got}");
}

#[test]
fn a_file_larger_than_the_bound_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.json");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(MAX_SPLIT_FILE_BYTES + 1).unwrap();
    let err = read_split_file(&path).unwrap_err().to_string();
    assert!(
        err.contains("huge.json") && err.contains("exceeds the limit"),
        "{err}"
    );
}

#[test]
fn the_hash_is_the_files_content() {
    let a = parse(r#"{"version": 1, "num_classes": 2, "ranks": [[0], [1]]}"#).unwrap();
    let b = parse(r#"{"version": 1, "num_classes": 2, "ranks": [[0], [2]]}"#).unwrap();
    assert_ne!(a.sha256, b.sha256);
    assert_eq!(
        a.sha256,
        sha256_hex(br#"{"version": 1, "num_classes": 2, "ranks": [[0], [1]]}"#)
    );
    assert_eq!(a.sha256.len(), 64);
}
