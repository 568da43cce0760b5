//! Extending cauda without forking it. This crate depends on cauda's crates as any other would,
//! adds a loss cauda does not ship (the softmax equalization loss, [`SoftmaxEql`]) through the
//! public registry, adds a method preset that uses it (`seql`, `presets/seql.toml`), and builds
//! its own daemon binary, `caudad-seql`, which serves, lists and trains both
//! (`src/bin/caudad-seql.rs`: `caudad::cli::main_with(engine()?)`).
//!
//! The loss implements `cauda_plugins::losses::Loss`; its factory receives validated parameters
//! and the run's class counts. It is registered with `Registry::register_extension` under
//! [`ORIGIN`], this crate's name and version, which every run that uses it carries in its
//! identity: bump the version when the loss's numbers change, and stored results of the old
//! one are not reused.

mod seql_loss;

pub use seql_loss::{NAME as SEQL, SoftmaxEql};

use cauda_plugins::registry::{Factory, Registry, RegistryError, builtin_registry};
use cauda_plugins::spec::{Preset, PresetBook, SpecError};
use caudad::engine::{Engine, EngineError};

/// This crate as the runs that use its plugins name it.
pub const ORIGIN: &str = concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION"));

/// The `seql` preset: the loss with the threshold used in the examples.
const SEQL_PRESET: (&str, &str) = ("presets/seql.toml", include_str!("../presets/seql.toml"));

/// Why this crate's plugins cannot be set up (a bug in this crate, found at start-up).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Preset(#[from] SpecError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// cauda's plugins plus this crate's.
pub fn registry() -> Result<Registry, Error> {
    let mut registry = builtin_registry();
    registry.register_extension(ORIGIN, seql_loss::decl(), Factory::Loss(seql_loss::build))?;
    Ok(registry)
}

/// cauda's presets plus this crate's.
pub fn presets() -> Result<PresetBook, Error> {
    let mut book = PresetBook::builtin();
    let (origin, text) = SEQL_PRESET;
    book.add(origin, Preset::parse(origin, text)?)?;
    Ok(book)
}

/// What `caudad-seql` serves.
pub fn engine() -> Result<Engine, Error> {
    Ok(Engine::new(registry()?, presets()?)?)
}
