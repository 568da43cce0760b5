//! An embedder's engine: what it refuses, its fingerprint, and which stored runs it trains.

use std::sync::Arc;

use cauda_plugins::losses::{CrossEntropy, Loss};
use cauda_plugins::registry::{BuildContext, Factory, Params, PluginDecl, RegistryError};
use cauda_plugins::spec::Preset;

use super::*;

const ORIGIN: &str = "my-plugins 0.2.0";

fn decl() -> PluginDecl {
    PluginDecl::new("mine", "a test loss", "none", vec![])
}

fn ce(_: &Params, _: &BuildContext) -> Result<Arc<dyn Loss>, RegistryError> {
    Ok(Arc::new(
        CrossEntropy::new().map_err(|e| RegistryError::build("mine", e))?,
    ))
}

fn extended() -> Registry {
    let mut registry = builtin_registry();
    registry
        .register_extension(ORIGIN, decl(), Factory::Loss(ce))
        .unwrap();
    registry
}

fn preset(loss: &str) -> Preset {
    let text =
        format!("name = \"mine-method\"\ndoc = \"a test\"\n[rebalance]\nloss = \"{loss}\"\n");
    Preset::parse("mine.toml", &text).unwrap()
}

#[test]
fn the_builtin_engine_is_cauda_s_fingerprint() {
    let engine = Engine::builtin();
    assert_eq!(engine.fingerprint(), engine_fingerprint());
    assert!(engine.extensions().is_empty());
    assert!(engine.trains(&engine_fingerprint()));
    assert!(engine.trains(COMMAND_ENGINE));
    assert!(!engine.trains("cauda-plugins 0.1.0 recipe 1"));
    assert!(!engine.trains(""));
    assert!(!engine.trains(&format!("{} + {ORIGIN}", engine_fingerprint())));
}

#[test]
fn an_extended_engine_names_its_crates_and_trains_their_runs_and_cauda_s() {
    let mut presets = PresetBook::builtin();
    presets.add("mine.toml", preset("mine")).unwrap();
    let engine = Engine::new(extended(), presets).unwrap();
    let mine = format!("{} + {ORIGIN}", engine_fingerprint());
    assert_eq!(engine.fingerprint(), mine);
    assert!(engine.trains(&mine));
    assert!(engine.trains(&engine_fingerprint()), "cauda's own runs too");
    assert!(!engine.trains(&format!("{} + my-plugins 0.1.0", engine_fingerprint())));
    assert!(!engine.trains(&format!("cauda-plugins 0.0.0 recipe 0 + {ORIGIN}")));

    // A run's label names the crates its plugins come from, and only those.
    let text = "name = \"x\"\nmethod = \"mine-method\"\n[data]\nformat = \"digits\"\n";
    let spec = ExperimentSpec::parse("x.toml", text).unwrap();
    let run = spec
        .resolve("x.toml", engine.presets(), engine.registry())
        .unwrap();
    assert_eq!(run_engine(&run), mine);
    let spec = ExperimentSpec::parse("x.toml", &text.replace("mine-method", "ce")).unwrap();
    let run = spec
        .resolve("x.toml", engine.presets(), engine.registry())
        .unwrap();
    assert_eq!(run_engine(&run), engine_fingerprint());
}

#[test]
fn a_plugin_outside_cauda_without_its_crate_s_name_is_refused() {
    let mut registry = builtin_registry();
    registry.register(decl(), Factory::Loss(ce)).unwrap();
    let err = Engine::new(registry, PresetBook::builtin()).unwrap_err();
    assert!(
        matches!(err, EngineError::Unnamed { name: "mine", .. }),
        "{err}"
    );
    assert!(err.to_string().contains("register_extension"), "{err}");
}

#[test]
fn a_preset_naming_a_plugin_the_engine_lacks_is_refused() {
    let mut presets = PresetBook::builtin();
    presets.add("mine.toml", preset("absent")).unwrap();
    let err = Engine::new(extended(), presets).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("mine-method") && text.contains("unknown Loss plugin `absent`"),
        "{text}"
    );
}
