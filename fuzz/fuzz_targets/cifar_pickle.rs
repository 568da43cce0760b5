//! Pickled CIFAR batch bytes (torchvision's `cifar-10-batches-py` / `cifar-100-python` files)
//! -> the bounded pickle reader and the batch and meta parsers, as `caudad work` reads such a
//! folder; what parses must be a valid image set. Split files (JSON) go through the same
//! target's second half: `parse_split_file`, then the selection against a small label set.
#![no_main]

use std::path::Path;

use cauda_plugins::data::ImageSet;
use cauda_plugins::data::cifar::CifarKind;
use cauda_plugins::data::cifar_pickle::{parse_batch, parse_meta};
use cauda_plugins::data::split_file::{parse_split_file, split_from_file};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz-cifar-pickle");
    for kind in [CifarKind::Cifar10, CifarKind::Cifar100] {
        let mut set = ImageSet {
            pixels: Vec::new(),
            labels: Vec::new(),
            channels: 3,
            height: 32,
            width: 32,
            class_names: (0..kind.num_classes()).map(|i| i.to_string()).collect(),
        };
        if parse_batch(origin, data, kind, &mut set).is_ok() {
            set.validate().expect("a parsed batch is a valid image set");
        }
        let _ = parse_meta(origin, data, kind);
    }
    if let Ok(file) = parse_split_file(origin, data) {
        let labels: Vec<u32> = (0..40).map(|i| i % 4).collect();
        if let Ok(split) = split_from_file(&file, &labels, 4, 2, 0, false) {
            assert!(split.train_indices.iter().all(|&i| i < labels.len()));
            let unique: std::collections::HashSet<_> =
                split.train_indices.iter().chain(&split.val_indices).collect();
            assert_eq!(unique.len(), split.train_indices.len() + split.val_indices.len());
        }
    }
});
