//! Spec text -> parse -> expand the grid -> resolve every point against the built-in presets and
//! registry, as the daemon's submission does; each resolved run must survive the JSON round
//! trip a worker makes with the same config hash. Also parses the text as a user preset.
#![no_main]

use std::sync::LazyLock;

use cauda_plugins::registry::{Registry, builtin_registry};
use cauda_plugins::spec::{ExperimentSpec, Preset, PresetBook, ResolvedRun, expand_sweep};
use cauda_plugins::train::config_hash;
use libfuzzer_sys::fuzz_target;

static PRESETS: LazyLock<PresetBook> = LazyLock::new(PresetBook::builtin);
static REGISTRY: LazyLock<Registry> = LazyLock::new(builtin_registry);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Preset::parse("fuzz preset", text);
    let Ok(spec) = ExperimentSpec::parse("fuzz", text) else {
        return;
    };
    let Ok(points) = expand_sweep("fuzz", &spec) else {
        return;
    };
    for point in points.iter().take(64) {
        let Ok(run) = point.spec.resolve("fuzz", &PRESETS, &REGISTRY) else {
            continue;
        };
        let back = ResolvedRun::from_json("fuzz", &run.to_json())
            .expect("a resolved run reads back from its own JSON");
        assert_eq!(
            config_hash(&back),
            config_hash(&run),
            "the worker would see another config hash"
        );
    }
});
