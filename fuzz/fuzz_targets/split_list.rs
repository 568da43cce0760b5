//! Split-file bytes -> the list parser (ImageNet-LT / Places-LT `relative/path label` lines) and
//! the iNaturalist JSON parser, as a worker reads `data.train_list` and friends.
#![no_main]

use std::path::{Component, Path};

use cauda_plugins::data::split_list::{parse_inat, parse_list};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("fuzz-list");
    for entries in [
        parse_list(origin, data).ok(),
        parse_inat(origin, data).ok().map(|s| s.entries),
    ]
    .into_iter()
    .flatten()
    {
        assert!(!entries.is_empty());
        for e in entries {
            // Whatever a list says, its paths stay under the data root.
            assert!(e.path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)));
        }
    }
});
