//! The plugin registry: every method of the survey's three families is a named factory with
//! typed, range-checked parameters and defaults. The registry is the only way to build a plugin:
//! it validates a spec's plugin references (unknown names or keys are errors naming the allowed
//! ones), builds the plugin objects for a run through each plugin's own factory, and describes
//! itself for `cauda plugins`. A crate outside cauda adds its plugins with
//! [`Registry::register_extension`] on top of [`builtin_registry`], naming itself, so every run
//! that uses one of them carries that name in its identity (`ResolvedRun::extensions`; see
//! `examples/custom-plugin/`).

mod builtin;
mod params;

pub use builtin::builtin_registry;
pub use params::{ParamKind, ParamSpec, Params, PluginRef};

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::augment::BatchMixer;
use crate::losses::Loss;
use crate::models::{ContrastDesign, HeadKind};

/// What a classifier plugin builds: the head, how many experts share the backbone's trunk
/// (1: a plain model; RIDE and SADE: several, [`crate::models::ExpertResNet`]), and the heads
/// and augmented views of contrastive representation learning (BCL: [`ContrastDesign`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassifierDesign {
    pub head: HeadKind,
    pub experts: usize,
    pub contrast: Option<ContrastDesign>,
    /// BBN's two branches ([`crate::models::BilateralResNet`]).
    pub bilateral: bool,
}

impl From<HeadKind> for ClassifierDesign {
    fn from(head: HeadKind) -> Self {
        Self {
            head,
            experts: 1,
            contrast: None,
            bilateral: false,
        }
    }
}
use crate::samplers::Sampler;
use crate::stage2::Stage2Method;

/// The survey's three families (plus the schedule/post-hoc helpers of re-balancing): what
/// `cauda plugins` groups plugins by.
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

/// What a plugin builds, i.e. which slot of a spec it fills. Names are unique within a kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `rebalance.sampler`: a [`Sampler`].
    Sampler,
    /// `rebalance.loss`: a [`Loss`].
    Loss,
    /// `rebalance.drw`: a schedule wrapping the run's loss.
    LossSchedule,
    /// `rebalance.posthoc`: a logit shift subtracted at evaluation.
    PostHoc,
    /// `augment.batch`: a [`BatchMixer`].
    Mixer,
    /// `module.classifier`: the head the model is built with.
    Classifier,
    /// `module.stage2`: a [`Stage2Method`].
    Stage2,
}

impl Kind {
    /// The survey family a plugin of this kind belongs to.
    pub fn family(self) -> Family {
        match self {
            Kind::Sampler => Family::Sampler,
            Kind::Loss => Family::Loss,
            Kind::LossSchedule | Kind::PostHoc => Family::Rebalance,
            Kind::Mixer => Family::Augment,
            Kind::Classifier | Kind::Stage2 => Family::Module,
        }
    }

    /// The spec key a plugin of this kind is named under.
    pub fn spec_key(self) -> &'static str {
        match self {
            Kind::Sampler => "rebalance.sampler",
            Kind::Loss => "rebalance.loss",
            Kind::LossSchedule => "rebalance.drw",
            Kind::PostHoc => "rebalance.posthoc",
            Kind::Mixer => "augment.batch",
            Kind::Classifier => "module.classifier",
            Kind::Stage2 => "module.stage2",
        }
    }
}

/// What a factory needs to know about the run it builds a plugin for.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// Training images per class of the (long-tailed) training set.
    pub class_counts: Vec<usize>,
    /// Epochs of the stage being built for.
    pub epochs: usize,
}

/// What a factory returns.
pub type Built<T> = Result<T, RegistryError>;
pub type SamplerFactory = fn(&Params, &BuildContext) -> Built<Arc<dyn Sampler>>;
pub type LossFactory = fn(&Params, &BuildContext) -> Built<Arc<dyn Loss>>;
pub type LossScheduleFactory = fn(&Params, &BuildContext, Arc<dyn Loss>) -> Built<Arc<dyn Loss>>;
pub type PostHocFactory = fn(&Params, &BuildContext) -> Built<Vec<f32>>;
pub type MixerFactory = fn(&Params, &BuildContext) -> Built<Arc<dyn BatchMixer>>;
pub type ClassifierFactory = fn(&Params) -> Built<ClassifierDesign>;
pub type Stage2Factory = fn(&Params) -> Built<Arc<dyn Stage2Method>>;

/// A plugin's factory, typed by what it builds: the only constructors of plugins.
#[derive(Clone, Copy)]
pub enum Factory {
    Sampler(SamplerFactory),
    Loss(LossFactory),
    /// Wraps the run's loss (DRW).
    LossSchedule(LossScheduleFactory),
    /// The per-class logit shift subtracted at evaluation.
    PostHoc(PostHocFactory),
    Mixer(MixerFactory),
    /// The head the model is built with (resolved into the run's `model` section).
    Classifier(ClassifierFactory),
    Stage2(Stage2Factory),
}

impl Factory {
    pub fn kind(&self) -> Kind {
        match self {
            Factory::Sampler(_) => Kind::Sampler,
            Factory::Loss(_) => Kind::Loss,
            Factory::LossSchedule(_) => Kind::LossSchedule,
            Factory::PostHoc(_) => Kind::PostHoc,
            Factory::Mixer(_) => Kind::Mixer,
            Factory::Classifier(_) => Kind::Classifier,
            Factory::Stage2(_) => Kind::Stage2,
        }
    }
}

/// A plugin as its author declares it ([`PluginDecl::new`], then [`PluginDecl::needing`]).
#[derive(Debug, Clone)]
pub struct PluginDecl {
    pub name: &'static str,
    /// One line: what it computes.
    pub doc: &'static str,
    /// The paper it comes from.
    pub paper: &'static str,
    pub params: Vec<ParamSpec>,
    /// What the run's model must be for this plugin to apply (checked when a spec resolves).
    pub needs: Needs,
}

impl PluginDecl {
    pub fn new(
        name: &'static str,
        doc: &'static str,
        paper: &'static str,
        params: Vec<ParamSpec>,
    ) -> Self {
        Self {
            name,
            doc,
            paper,
            params,
            needs: Needs::default(),
        }
    }

    /// The same plugin with requirements on the run's model.
    pub fn needing(mut self, needs: Needs) -> Self {
        self.needs = needs;
        self
    }
}

/// What a plugin requires of the run's model, so a spec that cannot work is refused when it
/// resolves, with the reason, rather than failing (or silently training something else) in a
/// worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    /// A cosine classifier (LDAM keeps its scale inside the loss).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cosine_head: bool,
    /// A model with this many experts, inclusive (RIDE, SADE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experts: Option<(usize, usize)>,
    /// Embeddings of this many augmented views besides the classification view, inclusive,
    /// from a projection head (the `contrastive` classifier; BCL: 2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub views: Option<(usize, usize)>,
    /// Class centers from the classifier's weights (BCL's class-complement).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub centers: bool,
    /// A second sampler stream beside the main batch (`rebalance.second_sampler`; BBN's
    /// re-balancing branch reads [`crate::losses::Step::second`]).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub second_stream: bool,
    /// BBN's bilateral model (the `bilateral` classifier), whose branches the loss mixes.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bilateral: bool,
}

/// Self-description of one plugin, for `ListPlugins` / `cauda plugins`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: &'static str,
    pub family: Family,
    pub kind: Kind,
    pub doc: &'static str,
    pub paper: &'static str,
    pub params: Vec<ParamSpec>,
    #[serde(skip_serializing_if = "is_default")]
    pub needs: Needs,
    /// The crate outside cauda that registered it (`name version`), `None` for cauda's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<&'static str>,
}

struct Entry {
    info: PluginInfo,
    factory: Factory,
}

/// Errors of plugin lookup, validation and construction.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{kind:?} plugin `{name}` is registered twice")]
    Duplicate { kind: Kind, name: String },
    #[error("plugin `{name}` has no doc line or no paper: `cauda plugins` shows both")]
    Undocumented { name: String },
    #[error(
        "plugin `{name}`: its origin `{origin}` must name the crate and its version, e.g. \
         `my-plugins 0.1.0`, without `+`"
    )]
    BadOrigin { name: String, origin: String },
    #[error("unknown {kind:?} plugin `{name}`; allowed: {allowed}")]
    Unknown {
        kind: Kind,
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

impl RegistryError {
    /// A factory's failure to build `plugin` from valid parameters.
    pub fn build(plugin: &str, e: impl std::fmt::Display) -> Self {
        Self::Build {
            plugin: plugin.to_string(),
            message: e.to_string(),
        }
    }
}

/// Named factories, one namespace per [`Kind`].
#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<(Kind, &'static str), Entry>,
}

impl Registry {
    /// Registers one of cauda's own plugins. A second registration of the same name for the
    /// same kind, or a plugin without a doc line or paper, is an error. A crate outside cauda
    /// uses [`Registry::register_extension`].
    pub fn register(&mut self, decl: PluginDecl, factory: Factory) -> Result<(), RegistryError> {
        self.insert(decl, factory, None)
    }

    /// Registers a plugin of a crate outside cauda, `origin` naming that crate and its version
    /// (`concat!(env!("CARGO_PKG_NAME"), " ", env!("CARGO_PKG_VERSION"))`): every run that uses
    /// the plugin carries `origin` in its identity (`ResolvedRun::extensions`), so results of
    /// another version of the crate are never reused for it. Bump the version whenever the
    /// plugin's computation changes. The rules of [`Registry::register`] apply.
    pub fn register_extension(
        &mut self,
        origin: &'static str,
        decl: PluginDecl,
        factory: Factory,
    ) -> Result<(), RegistryError> {
        if origin.trim().is_empty() || origin.trim() != origin || origin.contains('+') {
            return Err(RegistryError::BadOrigin {
                name: decl.name.to_string(),
                origin: origin.to_string(),
            });
        }
        self.insert(decl, factory, Some(origin))
    }

    fn insert(
        &mut self,
        decl: PluginDecl,
        factory: Factory,
        origin: Option<&'static str>,
    ) -> Result<(), RegistryError> {
        let kind = factory.kind();
        let key = (kind, decl.name);
        if self.entries.contains_key(&key) {
            return Err(RegistryError::Duplicate {
                kind,
                name: decl.name.to_string(),
            });
        }
        if decl.doc.trim().is_empty() || decl.paper.trim().is_empty() {
            return Err(RegistryError::Undocumented {
                name: decl.name.to_string(),
            });
        }
        let info = PluginInfo {
            name: decl.name,
            family: kind.family(),
            kind,
            doc: decl.doc,
            paper: decl.paper,
            params: decl.params,
            needs: decl.needs,
            origin,
        };
        self.entries.insert(key, Entry { info, factory });
        Ok(())
    }

    /// The crate that registered a plugin with [`Registry::register_extension`]; `None` for
    /// cauda's own plugins and for unknown names.
    pub fn origin(&self, kind: Kind, name: &str) -> Option<&'static str> {
        self.entry(kind, name).ok().and_then(|e| e.info.origin)
    }

    /// Every crate outside cauda that registered plugins here.
    pub fn extensions(&self) -> BTreeSet<&'static str> {
        self.entries
            .values()
            .filter_map(|e| e.info.origin)
            .collect()
    }

    /// All plugins, ordered by kind then name.
    pub fn describe(&self) -> Vec<PluginInfo> {
        self.entries.values().map(|e| e.info.clone()).collect()
    }

    /// What plugin `name` of `kind` requires of the run's model.
    pub fn needs(&self, kind: Kind, name: &str) -> Result<Needs, RegistryError> {
        Ok(self.entry(kind, name)?.info.needs)
    }

    fn entry(&self, kind: Kind, name: &str) -> Result<&Entry, RegistryError> {
        let found = self
            .entries
            .iter()
            .find(|((k, n), _)| *k == kind && *n == name);
        found.map(|(_, e)| e).ok_or_else(|| RegistryError::Unknown {
            kind,
            name: name.to_string(),
            allowed: self.names(kind).join(", "),
        })
    }

    /// The names registered for one kind.
    pub fn names(&self, kind: Kind) -> Vec<&'static str> {
        self.entries
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| *n)
            .collect()
    }

    /// Checks a reference's name and parameters, filling in defaults.
    pub fn validate(&self, kind: Kind, plugin: &PluginRef) -> Result<Params, RegistryError> {
        let entry = self.entry(kind, &plugin.name)?;
        Params::validate(entry.info.name, &entry.info.params, &plugin.params)
    }

    /// Validated parameters of a plugin with some values set.
    pub fn validated(
        &self,
        kind: Kind,
        name: &str,
        values: &[(&str, f64)],
    ) -> Result<Params, RegistryError> {
        let mut p = PluginRef::named(name);
        for (k, v) in values {
            p.params.insert(k.to_string(), toml::Value::Float(*v));
        }
        self.validate(kind, &p)
    }

    fn factory(&self, kind: Kind, params: &Params) -> Result<Factory, RegistryError> {
        Ok(self.entry(kind, &params.plugin)?.factory)
    }

    pub fn sampler(
        &self,
        p: &Params,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Sampler>, RegistryError> {
        match self.factory(Kind::Sampler, p)? {
            Factory::Sampler(f) => f(p, ctx),
            _ => Err(mismatch(p, Kind::Sampler)),
        }
    }

    /// The run's loss, wrapped by its loss schedule (DRW) when it has one.
    pub fn loss(
        &self,
        p: &Params,
        schedule: Option<&Params>,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn Loss>, RegistryError> {
        let base = match self.factory(Kind::Loss, p)? {
            Factory::Loss(f) => f(p, ctx)?,
            _ => return Err(mismatch(p, Kind::Loss)),
        };
        let Some(s) = schedule else {
            return Ok(base);
        };
        match self.factory(Kind::LossSchedule, s)? {
            Factory::LossSchedule(f) => f(s, ctx, base),
            _ => Err(mismatch(s, Kind::LossSchedule)),
        }
    }

    pub fn posthoc(&self, p: &Params, ctx: &BuildContext) -> Result<Vec<f32>, RegistryError> {
        match self.factory(Kind::PostHoc, p)? {
            Factory::PostHoc(f) => f(p, ctx),
            _ => Err(mismatch(p, Kind::PostHoc)),
        }
    }

    pub fn mixer(
        &self,
        p: &Params,
        ctx: &BuildContext,
    ) -> Result<Arc<dyn BatchMixer>, RegistryError> {
        match self.factory(Kind::Mixer, p)? {
            Factory::Mixer(f) => f(p, ctx),
            _ => Err(mismatch(p, Kind::Mixer)),
        }
    }

    pub fn classifier(&self, p: &Params) -> Result<ClassifierDesign, RegistryError> {
        match self.factory(Kind::Classifier, p)? {
            Factory::Classifier(f) => f(p),
            _ => Err(mismatch(p, Kind::Classifier)),
        }
    }

    pub fn stage2(&self, p: &Params) -> Result<Arc<dyn Stage2Method>, RegistryError> {
        match self.factory(Kind::Stage2, p)? {
            Factory::Stage2(f) => f(p),
            _ => Err(mismatch(p, Kind::Stage2)),
        }
    }
}

/// An entry found under `kind` whose factory builds another kind: impossible through
/// [`Registry::register`], which files every factory under its own kind.
fn mismatch(p: &Params, kind: Kind) -> RegistryError {
    RegistryError::build(&p.plugin, format!("is not a {kind:?} plugin"))
}

#[cfg(test)]
mod tests;

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
