//! Image-folder inputs: one PNG/JPEG file's bytes -> the decoder the folder loader uses (format
//! sniffed, size limits on), and the same bytes as the folder's decoded-pixel cache file.
#![no_main]

use std::path::Path;

use cauda_plugins::data::folder::{decode_image, parse_cache};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz-image");
    if let Ok(img) = decode_image(origin, data) {
        let _ = img.into_rgb8();
    }
    if let Ok(Some(tt)) = parse_cache(origin, data) {
        tt.train
            .validate()
            .expect("a parsed cache holds a valid train set");
        tt.test
            .validate()
            .expect("a parsed cache holds a valid test set");
    }
});
