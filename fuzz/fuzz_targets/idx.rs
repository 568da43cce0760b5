//! IDX bytes -> the images parser, then the labels parser (raw and, when the bytes start with
//! gzip's magic, gzipped), as `caudad work` reads an MNIST-family directory.
#![no_main]

use std::path::Path;

use cauda_plugins::data::idx::{parse_images, parse_labels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz-idx");
    let gz = data.starts_with(&[0x1f, 0x8b]);
    if let Ok((pixels, h, w)) = parse_images(origin, data, gz) {
        assert_eq!(pixels.len() % (h * w), 0, "whole images");
    }
    // The count the labels header claims (raw files), so the fuzzer reaches the labels' body.
    let expected = data
        .get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    if let Ok(labels) = parse_labels(origin, data, gz, expected) {
        assert_eq!(labels.len(), expected);
    }
});
