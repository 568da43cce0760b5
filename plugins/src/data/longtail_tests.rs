//! Tests of the long-tailed split against the numpy reference counts in
//! `tests/fixtures/longtail.json` (written by `bench/fixtures/longtail.py`).

use super::*;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/longtail.json"
));

/// `per_class` images of each of `classes` classes, interleaved (label = index mod classes).
fn balanced_labels(classes: usize, per_class: usize) -> Vec<u32> {
    (0..classes * per_class)
        .map(|i| (i % classes) as u32)
        .collect()
}

fn cfg(profile: LtProfile, ratio: f64, seed: u64) -> LtConfig {
    LtConfig {
        profile,
        ratio,
        split_seed: seed,
        ..LtConfig::exp(ratio, seed)
    }
}

#[test]
fn counts_match_numpy_fixture() {
    let fixture: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 18);
    for case in cases {
        let classes = case["classes"].as_u64().unwrap() as usize;
        let n_max = case["n_max"].as_u64().unwrap() as usize;
        let mut c = cfg(
            if case["profile"] == "exp" {
                LtProfile::Exp
            } else {
                LtProfile::Step
            },
            case["ratio"].as_f64().unwrap(),
            0,
        );
        if let Some(mu) = case["step_fraction"].as_f64() {
            c.step_fraction = mu;
        }
        let want: Vec<usize> = case["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let split = long_tail_split(&balanced_labels(classes, n_max), classes, &c).unwrap();
        assert_eq!(split.class_counts, want, "{case}");
        assert_eq!(
            split.train_indices.len() as u64,
            case["total"].as_u64().unwrap()
        );
    }
}

#[test]
fn cifar_lt_sizes() {
    for (classes, per_class, want) in [
        (10, 5000, [12_406, 13_996, 20_431]),
        (100, 500, [10_847, 12_608, 19_573]),
    ] {
        let labels = balanced_labels(classes, per_class);
        for (ratio, want) in [100.0, 50.0, 10.0].into_iter().zip(want) {
            let split = long_tail_split(&labels, classes, &LtConfig::exp(ratio, 1)).unwrap();
            assert_eq!(split.train_indices.len(), want, "C={classes} ratio={ratio}");
            assert_eq!(split.class_counts[0], per_class);
            assert_eq!(split.class_counts[classes - 1], per_class / ratio as usize);
        }
    }
}

#[test]
fn step_profile_counts() {
    let split = long_tail_split(
        &balanced_labels(10, 5000),
        10,
        &cfg(LtProfile::Step, 100.0, 0),
    )
    .unwrap();
    assert_eq!(split.class_counts, [vec![5000; 5], vec![50; 5]].concat());
    assert_eq!(split.train_indices.len(), 25_250);
}

#[test]
fn indices_are_of_their_class_in_class_order() {
    let labels = balanced_labels(5, 40);
    let split = long_tail_split(&labels, 5, &cfg(LtProfile::Exp, 10.0, 3)).unwrap();
    let mut pos = 0;
    for (class, &k) in split.class_counts.iter().enumerate() {
        for &i in &split.train_indices[pos..pos + k] {
            assert_eq!(labels[i] as usize, class);
        }
        pos += k;
    }
    let unique: HashSet<_> = split.train_indices.iter().collect();
    assert_eq!(unique.len(), split.train_indices.len());
}

#[test]
fn same_seed_same_hash_other_seed_other_indices() {
    let labels = balanced_labels(10, 500);
    let a = long_tail_split(&labels, 10, &cfg(LtProfile::Exp, 10.0, 42)).unwrap();
    let b = long_tail_split(&labels, 10, &cfg(LtProfile::Exp, 10.0, 42)).unwrap();
    let c = long_tail_split(&labels, 10, &cfg(LtProfile::Exp, 10.0, 43)).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.hash.len(), 64);
    assert_eq!(a.class_counts, c.class_counts);
    assert_ne!(a.train_indices, c.train_indices);
    assert_ne!(a.hash, c.hash);
}

#[test]
fn hash_is_sha256_of_le_indices() {
    let labels = vec![0, 1, 0, 1];
    let split = long_tail_split(&labels, 2, &LtConfig::exp(1.0, 0)).unwrap();
    let mut h = Sha256::new();
    for &i in split.train_indices.iter().chain(&split.val_indices) {
        h.update((i as u64).to_le_bytes());
    }
    let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(split.hash, want);
}

#[test]
fn validation_is_balanced_and_disjoint_from_train() {
    let labels = balanced_labels(10, 500);
    let mut c = cfg(LtProfile::Exp, 100.0, 7);
    c.val_per_class = 20;
    let split = long_tail_split(&labels, 10, &c).unwrap();
    assert_eq!(split.val_indices.len(), 200);
    for class in 0..10 {
        let vals = &split.val_indices[class * 20..(class + 1) * 20];
        assert!(vals.iter().all(|&i| labels[i] as usize == class));
    }
    let train: HashSet<_> = split.train_indices.iter().collect();
    assert!(split.val_indices.iter().all(|i| !train.contains(i)));
    // The profile is the protocol's (n_max = 500: 500 * 0.01 = 5 at the tail); only the head
    // class, which selects all its 500 images, gives its 20 validation images from its own.
    let protocol = long_tail_split(&labels, 10, &cfg(LtProfile::Exp, 100.0, 7)).unwrap();
    assert_eq!(split.class_counts[0], 480);
    assert_eq!(split.class_counts[1..], protocol.class_counts[1..]);
    assert_eq!(split.class_counts[9], 5);
    // Classes with enough unselected images train on exactly the protocol's images.
    let n0 = protocol.class_counts[0];
    assert_eq!(split.train_indices[480..], protocol.train_indices[n0..]);
    // The head class's shortfall comes from the end of its selection.
    assert_eq!(
        split.val_indices[..20],
        protocol.train_indices[480..500],
        "the head's hold-out is the last 20 of its shuffled selection"
    );
}

#[test]
fn cap_limits_n_max() {
    let mut c = cfg(LtProfile::Exp, 10.0, 0);
    c.max_per_class = Some(100);
    let split = long_tail_split(&balanced_labels(4, 300), 4, &c).unwrap();
    // floor(100 * 0.1^(i/3)) = 100, 46, 21, 10
    assert_eq!(split.class_counts, vec![100, 46, 21, 10]);
}

#[test]
fn balanced_variant_matches_lt_total_with_equal_classes() {
    let labels = balanced_labels(10, 5000);
    let mut c = cfg(LtProfile::Exp, 100.0, 5);
    c.val_per_class = 10;
    let lt = long_tail_split(&labels, 10, &c).unwrap();
    let bal = balanced_variant(&labels, 10, &c).unwrap();
    let total = lt.train_indices.len();
    assert_eq!(bal.train_indices.len(), total);
    let base = total / 10;
    for (class, &k) in bal.class_counts.iter().enumerate() {
        assert_eq!(k, base + usize::from(class < total % 10));
    }
    assert_eq!(bal.val_indices, lt.val_indices);
    // Both draw from the same shuffled lists: the LT tail class is a prefix of the balanced one.
    let tail_lt = &lt.train_indices[total - lt.class_counts[9]..];
    let tail_bal = &bal.train_indices[bal.train_indices.len() - bal.class_counts[9]..];
    assert_eq!(tail_lt, &tail_bal[..tail_lt.len()]);
}

#[test]
fn errors_name_the_key() {
    let labels = balanced_labels(3, 5);
    let err = long_tail_split(&labels, 3, &LtConfig::exp(0.5, 0)).unwrap_err();
    assert!(err.to_string().contains("ratio"), "{err}");
    let mut c = LtConfig::exp(2.0, 0);
    c.val_per_class = 5;
    let err = long_tail_split(&labels, 3, &c).unwrap_err();
    assert_eq!(
        err,
        LongTailError::TooFewImages {
            class: 0,
            available: 5,
            val_per_class: 5
        }
    );
    assert!(err.to_string().contains("val_per_class"));
    let mut c = cfg(LtProfile::Step, 2.0, 0);
    c.step_fraction = 1.5;
    assert!(
        long_tail_split(&labels, 3, &c)
            .unwrap_err()
            .to_string()
            .contains("step_fraction")
    );
    let err = long_tail_split(&[0, 3], 3, &LtConfig::exp(2.0, 0)).unwrap_err();
    assert!(matches!(
        err,
        LongTailError::Label {
            index: 1,
            label: 3,
            ..
        }
    ));
}

#[test]
fn config_deserializes_with_defaults() {
    let c: LtConfig = toml::from_str("profile = \"step\"\nratio = 10.0\n").unwrap();
    assert_eq!(c.profile, LtProfile::Step);
    assert_eq!(c.step_fraction, 0.5);
    assert_eq!(c.max_per_class, None);
    assert!(toml::from_str::<LtConfig>("profile = \"exp\"\nratio = 1.0\nratoi = 2").is_err());
}
