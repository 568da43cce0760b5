//! What a run trains, read once from its stored config into a type: the engine's resolved recipe
//! or a command run. The daemon, its planner, its report and the worker ask this type for the
//! run's identity, labels and resources instead of reading JSON by key.

use cauda_plugins::registry::Registry;
use cauda_plugins::spec::{ResolvedRun, ResourcesSection};
use cauda_plugins::train::{config_hash, epochs_total, stage1_run};

use crate::command::{COMMAND_ENGINE, CommandRun};

/// A run's stored config.
#[derive(Debug, Clone, PartialEq)]
pub enum RunConfig {
    Engine(Box<ResolvedRun>),
    Command(Box<CommandRun>),
}

impl RunConfig {
    /// Reads a stored config (`RunRecord::config_json`); a command run is the one with a
    /// `command` table. `origin` names the source in errors.
    pub fn from_json(origin: &str, json: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("{origin}: {e}"))?;
        if value
            .get("command")
            .is_some_and(serde_json::Value::is_object)
        {
            serde_json::from_value(value)
                .map(|c| Self::Command(Box::new(c)))
                .map_err(|e| format!("{origin}: command run: {e}"))
        } else {
            // Read from the value already parsed (a run's JSON is read once; ListRuns does this
            // for every run it lists).
            serde_json::from_value(value)
                .map(|r| Self::Engine(Box::new(r)))
                .map_err(|e| format!("{origin}: config_json: {e}"))
        }
    }

    /// The JSON stored with the run (and sent to its worker).
    pub fn to_json(&self) -> String {
        match self {
            Self::Engine(r) => r.to_json(),
            Self::Command(c) => serde_json::to_string(c).unwrap_or_default(),
        }
    }

    /// The run's identity: runs of one hash are one run (reused, not trained again).
    pub fn config_hash(&self) -> String {
        match self {
            Self::Engine(r) => config_hash(r),
            Self::Command(c) => c.config_hash(),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Engine(r) => &r.name,
            Self::Command(c) => &c.name,
        }
    }

    pub fn set_name(&mut self, name: &str) {
        match self {
            Self::Engine(r) => r.name = name.to_string(),
            Self::Command(c) => c.name = name.to_string(),
        }
    }

    /// The method (an engine preset, or a command run's label).
    pub fn method(&self) -> &str {
        match self {
            Self::Engine(r) => &r.method,
            Self::Command(c) => &c.method,
        }
    }

    /// The imbalance ratio the run trains at, when it has one.
    pub fn ratio(&self) -> Option<f64> {
        match self {
            Self::Engine(r) => r.data.imbalance.as_ref().map(|i| i.ratio),
            Self::Command(c) => c.ratio(),
        }
    }

    pub fn seed(&self) -> u64 {
        match self {
            Self::Engine(r) => r.train.seed,
            Self::Command(c) => c.seed(),
        }
    }

    /// Epochs over every stage, as the stage-2 plugin's plan says (0 when a command run does
    /// not say).
    pub fn epochs_total(&self, registry: &Registry) -> usize {
        match self {
            Self::Engine(r) => epochs_total(r, registry),
            Self::Command(c) => c.epochs(),
        }
    }

    pub fn resources(&self) -> &ResourcesSection {
        match self {
            Self::Engine(r) => &r.resources,
            Self::Command(c) => &c.resources,
        }
    }

    /// The engine the run was resolved for, as stored with it ([`crate::engine::run_engine`]:
    /// the fingerprint and the crates outside cauda whose plugins it uses), or
    /// [`COMMAND_ENGINE`].
    pub fn engine(&self) -> String {
        match self {
            Self::Engine(r) => crate::engine::run_engine(r),
            Self::Command(_) => COMMAND_ENGINE.to_string(),
        }
    }

    /// A decoupled method's stage-2 run trains after this stage-1 run (the registry's stage-2
    /// plugin says whether its stage 1 is shared).
    pub fn stage1(&self, registry: &Registry) -> Option<Self> {
        match self {
            Self::Engine(r) => stage1_run(r, registry).map(|s| Self::Engine(Box::new(s))),
            Self::Command(_) => None,
        }
    }

    /// What listings and plots show of it, recorded with the run at submission.
    pub fn facts(&self, registry: &Registry) -> crate::model::RunFacts {
        crate::model::RunFacts {
            method: self.method().to_string(),
            imbalance_ratio: self.ratio(),
            seed: self.seed(),
            balanced_reference: self.is_balanced_reference(),
            epochs_total: u32::try_from(self.epochs_total(registry)).unwrap_or(u32::MAX),
        }
    }

    /// A balanced reference run (`data.balanced_variant`), which relative accuracy compares
    /// against.
    pub fn is_balanced_reference(&self) -> bool {
        match self {
            Self::Engine(r) => r.data.balanced_variant,
            Self::Command(c) => c.balanced(),
        }
    }

    pub fn is_stage2(&self) -> bool {
        matches!(self, Self::Engine(r) if r.stage2.is_some())
    }
}

impl From<ResolvedRun> for RunConfig {
    fn from(run: ResolvedRun) -> Self {
        Self::Engine(Box::new(run))
    }
}

impl From<CommandRun> for RunConfig {
    fn from(run: CommandRun) -> Self {
        Self::Command(Box::new(run))
    }
}
