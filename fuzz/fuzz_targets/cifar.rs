//! CIFAR binary batch bytes -> the record parser for both layouts, and the names-file parser,
//! as `caudad work` reads a CIFAR-10/100 directory; what parses must be a valid image set.
#![no_main]

use std::path::Path;

use cauda_plugins::data::ImageSet;
use cauda_plugins::data::cifar::{CifarKind, parse_names, parse_records};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz-cifar");
    for kind in [CifarKind::Cifar10, CifarKind::Cifar100] {
        let mut set = ImageSet {
            pixels: Vec::new(),
            labels: Vec::new(),
            channels: 3,
            height: 32,
            width: 32,
            class_names: (0..kind.num_classes()).map(|i| i.to_string()).collect(),
        };
        if parse_records(origin, data, kind, &mut set).is_ok() {
            set.validate().expect("a parsed batch is a valid image set");
        }
        let _ = parse_names(origin, data.to_vec(), kind);
    }
});
