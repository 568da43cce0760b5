//! The plugins and method presets a daemon serves. `caudad` serves cauda's own
//! ([`Engine::builtin`]); a crate that extends cauda without forking it builds its own daemon
//! binary, `cli::main_with(Engine::new(its_registry, its_presets)?)`, and that binary serves,
//! lists and trains its plugins (`examples/custom-plugin/`).
//!
//! The engine is handed down explicitly (the core, the presets folder, `caudad work`,
//! `caudad train`, `caudad plugins`), never read from a process global: the workers the daemon
//! spawns are its own binary (`current_exe`), whose `main` builds the same engine again.
//!
//! Identity: a crate registers its plugins with `Registry::register_extension`, naming itself
//! and its version, and every run that uses one of them carries that name in its resolved
//! config (`ResolvedRun::extensions`, part of the config hash) and in its stored engine label
//! ([`run_engine`], e.g. `cauda-plugins 0.1.0 recipe 4 + my-plugins 0.2.0`). A run of cauda's
//! own plugins keeps the plain fingerprint on any daemon: its numbers do not depend on what
//! else is registered, so stock and extended daemons reuse each other's results for it. A
//! daemon trains a run only when it has the run's fingerprint and every crate it names
//! ([`Engine::trains`]); other runs are handled as runs of another engine (`core::engines`).

use std::collections::BTreeSet;
use std::sync::Arc;

use cauda_plugins::registry::{Kind, Registry, builtin_registry};
use cauda_plugins::spec::{ExperimentSpec, PresetBook, ResolvedRun, SpecError};
use cauda_plugins::train::engine_fingerprint;

use crate::command::COMMAND_ENGINE;

/// Joins a fingerprint and the crates outside cauda in an engine label.
const JOIN: &str = " + ";

/// A small spec every preset is resolved with when an engine is made, so a preset naming a
/// plugin the registry lacks is refused at start-up, not when a run names it.
// On a CIFAR ResNet, which every preset can train (the expert presets split its last stages).
const PROBE: &str =
    "name = \"preset-check\"\n[data]\nformat = \"digits\"\n[model]\nbackbone = \"resnet8\"\n";

/// Why an embedder's plugins cannot make an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "{kind:?} plugin `{name}` is not one of cauda's own but was registered with \
         `Registry::register`: register it with `Registry::register_extension`, naming your \
         crate and its version, so the runs that use it carry that name in their identity"
    )]
    Unnamed { kind: Kind, name: &'static str },
    #[error("preset `{preset}` does not resolve against this engine's plugins: {source}")]
    Preset {
        preset: String,
        #[source]
        source: SpecError,
    },
}

/// The plugin registry and the method presets a daemon serves (cheap to clone).
#[derive(Clone)]
pub struct Engine {
    registry: Arc<Registry>,
    presets: PresetBook,
    /// The registry's crates outside cauda and cauda's fingerprint, computed once: `trains`
    /// is asked for every run a listing shows (it walked the whole registry each time).
    extensions: Arc<BTreeSet<&'static str>>,
    own_fingerprint: Arc<str>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("fingerprint", &self.fingerprint())
            .field("presets", &self.presets.names())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// cauda's own plugins and presets: what `caudad` serves.
    pub fn builtin() -> Self {
        Self::assemble(builtin_registry(), PresetBook::builtin())
    }

    fn assemble(registry: Registry, presets: PresetBook) -> Self {
        Self {
            extensions: Arc::new(registry.extensions()),
            own_fingerprint: engine_fingerprint().into(),
            registry: Arc::new(registry),
            presets,
        }
    }

    /// An embedder's engine: `registry` is `builtin_registry()` plus its plugins (each
    /// registered with `Registry::register_extension`), `presets` `PresetBook::builtin()` plus
    /// its presets. Refused: a plugin outside cauda's own registered without its crate's name,
    /// and a preset that does not resolve against `registry`.
    pub fn new(registry: Registry, presets: PresetBook) -> Result<Self, EngineError> {
        let own = builtin_registry();
        for plugin in registry.describe() {
            let is_own = own.names(plugin.kind).contains(&plugin.name);
            if plugin.origin.is_none() && !is_own {
                return Err(EngineError::Unnamed {
                    kind: plugin.kind,
                    name: plugin.name,
                });
            }
        }
        let probe =
            ExperimentSpec::parse("preset check", PROBE).map_err(|source| EngineError::Preset {
                preset: "(the check spec)".into(),
                source,
            })?;
        for name in presets.names() {
            let mut spec = probe.clone();
            spec.method = name.to_string();
            spec.resolve(&format!("preset {name}"), &presets, &registry)
                .map_err(|source| EngineError::Preset {
                    preset: name.to_string(),
                    source,
                })?;
        }
        Ok(Self::assemble(registry, presets))
    }

    /// The plugins: what specs are validated against, workers build from, `cauda plugins` lists.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The method presets before any presets folder's.
    pub fn presets(&self) -> &PresetBook {
        &self.presets
    }

    /// The crates outside cauda whose plugins this engine has (`name version`).
    pub fn extensions(&self) -> BTreeSet<&'static str> {
        (*self.extensions).clone()
    }

    /// This engine in words: cauda's fingerprint, then each crate outside cauda, e.g.
    /// `cauda-plugins 0.1.0 recipe 4 + my-plugins 0.2.0` (just the fingerprint for `caudad`).
    pub fn fingerprint(&self) -> String {
        fingerprint_of(&self.registry)
    }

    /// Whether this engine trains runs stored with the engine label `engine` ([`run_engine`]):
    /// cauda's fingerprint and crates outside cauda that it has, or a command run (whose
    /// program computes its numbers, so any daemon runs it).
    pub fn trains(&self, engine: &str) -> bool {
        if engine == COMMAND_ENGINE {
            return true;
        }
        let mut parts = engine.split(JOIN);
        parts.next() == Some(&*self.own_fingerprint)
            && parts.all(|crate_| self.extensions.contains(crate_))
    }
}

/// The fingerprint of an engine with `registry`'s plugins ([`Engine::fingerprint`]).
pub fn fingerprint_of(registry: &Registry) -> String {
    std::iter::once(engine_fingerprint())
        .chain(registry.extensions().into_iter().map(str::to_string))
        .collect::<Vec<_>>()
        .join(JOIN)
}

/// The engine label stored with a run (`RunRecord::engine`): the fingerprint it was resolved
/// for, then each crate outside cauda whose plugins it uses.
pub fn run_engine(run: &ResolvedRun) -> String {
    std::iter::once(run.engine.as_str())
        .chain(run.extensions.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(JOIN)
}

#[cfg(test)]
#[path = "engine_test.rs"]
mod tests;
