//! The plugin registry: every method of the survey's three families is a named factory with
//! typed, range-checked parameters and defaults. The registry validates a spec's plugin
//! references (unknown names or keys are errors naming the allowed ones), builds the plugin
//! objects for a run, and describes itself for `cauda plugins`.

mod builtin;
mod params;

pub use builtin::{build_loss, build_mixer, builtin_registry, validated};
pub use params::{ParamKind, ParamSpec, Params, PluginRef};

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::augment::BatchMixer;
use crate::losses::Loss;
use crate::samplers::Sampler;

/// The survey's three families (plus the schedule/post-hoc helpers of re-balancing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Class re-balancing: re-sampling.
    Sampler,
    /// Class re-balancing: re-weighting and logit adjustment losses.
    Loss,
    /// Class re-balancing: loss schedules (DRW) and post-hoc logit adjustment.
    Rebalance,
    /// Information augmentation.
    Augment,
    /// Module improvement: classifiers and decoupled stage-2 methods.
    Module,
}

/// What a factory needs to know about the run it builds a plugin for.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// Training images per class of the (long-tailed) training set.
    pub class_counts: Vec<usize>,
    /// Epochs of the stage being built for.
    pub epochs: usize,
}

/// A built plugin.
#[derive(Debug, Clone)]
pub enum Built {
    Sampler(Arc<dyn Sampler>),
    Loss(Arc<dyn Loss>),
    Mixer(Arc<dyn BatchMixer>),
    /// Module-improvement and re-balancing helpers whose behaviour lives in the training loop;
    /// they carry their validated parameters.
    Params(Params),
}

type Factory = fn(&Params, &BuildContext) -> Result<Built, RegistryError>;

/// Self-description of one plugin, for `ListPlugins` / `cauda plugins`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: &'static str,
    pub family: Family,
    pub doc: &'static str,
    pub paper: &'static str,
    pub params: Vec<ParamSpec>,
}

struct Entry {
    info: PluginInfo,
    factory: Factory,
}

/// Errors of plugin lookup, validation and construction.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("plugin `{name}` is registered twice")]
    Duplicate { name: String },
    #[error("unknown {family:?} plugin `{name}`; allowed: {allowed}")]
    Unknown {
        family: Family,
        name: String,
        allowed: String,
    },
    #[error("{plugin}: unknown parameter `{key}`; allowed: {allowed}")]
    UnknownParam {
        plugin: String,
        key: String,
        allowed: String,
    },
    #[error("{plugin}.{key}: {message}")]
    BadParam {
        plugin: String,
        key: String,
        message: String,
    },
    #[error("{plugin}: {message}")]
    Build { plugin: String, message: String },
}

/// Named factories, one namespace per family.
#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<(Family, &'static str), Entry>,
}

impl Registry {
    /// Registers a plugin; a second registration of the same (family, name) is an error.
    pub fn register(&mut self, info: PluginInfo, factory: Factory) -> Result<(), RegistryError> {
        let key = (info.family, info.name);
        if self.entries.contains_key(&key) {
            return Err(RegistryError::Duplicate {
                name: info.name.to_string(),
            });
        }
        self.entries.insert(key, Entry { info, factory });
        Ok(())
    }

    /// All plugins, ordered by family then name.
    pub fn describe(&self) -> Vec<PluginInfo> {
        self.entries.values().map(|e| e.info.clone()).collect()
    }

    fn entry(&self, family: Family, name: &str) -> Result<&Entry, RegistryError> {
        let found = self
            .entries
            .iter()
            .find(|((f, n), _)| *f == family && *n == name);
        found.map(|(_, e)| e).ok_or_else(|| RegistryError::Unknown {
            family,
            name: name.to_string(),
            allowed: self.names(family).join(", "),
        })
    }

    /// The names registered in one family.
    pub fn names(&self, family: Family) -> Vec<&'static str> {
        self.entries
            .keys()
            .filter(|(f, _)| *f == family)
            .map(|(_, n)| *n)
            .collect()
    }

    /// Checks a reference's name and parameters, filling in defaults.
    pub fn validate(&self, family: Family, plugin: &PluginRef) -> Result<Params, RegistryError> {
        let entry = self.entry(family, &plugin.name)?;
        Params::validate(entry.info.name, &entry.info.params, &plugin.params)
    }

    /// Builds a plugin from already validated parameters.
    pub fn build_params(
        &self,
        family: Family,
        params: &Params,
        ctx: &BuildContext,
    ) -> Result<Built, RegistryError> {
        (self.entry(family, &params.plugin)?.factory)(params, ctx)
    }

    /// Validates and builds a plugin for a run.
    pub fn build(
        &self,
        family: Family,
        plugin: &PluginRef,
        ctx: &BuildContext,
    ) -> Result<Built, RegistryError> {
        let params = self.validate(family, plugin)?;
        (self.entry(family, &plugin.name)?.factory)(&params, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registering_a_name_twice_is_an_error() {
        let mut r = Registry::default();
        let info = || PluginInfo {
            name: "x",
            family: Family::Module,
            doc: "",
            paper: "",
            params: vec![],
        };
        let f: Factory = |p, _| Ok(Built::Params(p.clone()));
        r.register(info(), f).unwrap();
        assert!(matches!(
            r.register(info(), f),
            Err(RegistryError::Duplicate { .. })
        ));
    }

    #[test]
    fn unknown_names_and_keys_list_what_is_allowed() {
        let r = builtin_registry();
        let err = r
            .validate(Family::Loss, &PluginRef::named("focl"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("focal") && err.contains("ldam"), "{err}");
        let mut bad = PluginRef::named("focal");
        bad.params.insert("gama".into(), toml::Value::Float(2.0));
        let err = r.validate(Family::Loss, &bad).unwrap_err().to_string();
        assert!(err.contains("gama") && err.contains("gamma"), "{err}");
    }

    #[test]
    fn out_of_range_parameters_are_rejected_and_defaults_filled() {
        let r = builtin_registry();
        let mut bad = PluginRef::named("class-balanced");
        bad.params.insert("beta".into(), toml::Value::Float(1.5));
        let err = r.validate(Family::Loss, &bad).unwrap_err().to_string();
        assert!(err.contains("class-balanced.beta"), "{err}");
        let ok = r.validate(Family::Loss, &PluginRef::named("ldam")).unwrap();
        assert_eq!(ok.get("s"), 30.0);
        assert_eq!(ok.get("max_m"), 0.5);
    }

    #[test]
    fn every_builtin_describes_itself() {
        for p in builtin_registry().describe() {
            assert!(
                !p.doc.is_empty() && !p.paper.is_empty(),
                "{} lacks doc/paper",
                p.name
            );
        }
    }
}
