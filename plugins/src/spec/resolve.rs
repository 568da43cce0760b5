//! From a spec to a fully resolved run: the preset's parts overridden by the spec's sections,
//! every plugin reference validated by the registry (defaults filled in), every value range
//! checked. The resolved run is what gets stored with the run and hashed.

use serde::{Deserialize, Serialize};

use super::{
    AggregationSwitch, DataFormat, DataSection, ExperimentSpec, MetricsSection, ModelSection,
    PresetBook, ResourcesSection, Result, TestTimeAggregation, TrainSection, invalid,
};
use crate::models::BackboneKind;
use crate::models::HeadKind;
use crate::registry::{Kind, Params, PluginRef, Registry};

/// A decoupled second stage (or post-hoc classifier transform).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage2Spec {
    pub name: String,
    pub params: Params,
}

/// One run, fully resolved: every plugin validated with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedRun {
    pub name: String,
    pub method: String,
    pub data: DataSection,
    pub model: ModelSection,
    pub train: TrainSection,
    pub sampler: Params,
    /// `rebalance.second_sampler`: the sampler of a second stream beside each batch (BBN);
    /// absent, and not hashed, without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_sampler: Option<Params>,
    pub loss: Params,
    pub drw: Option<Params>,
    pub posthoc: Option<Params>,
    pub crop_flip: bool,
    pub pad: usize,
    /// `augment.color_jitter` (split-file data sets only); absent, and not hashed, when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color_jitter: Option<f32>,
    pub mixer: Option<Params>,
    pub stage2: Option<Stage2Spec>,
    pub metrics: MetricsSection,
    pub resources: ResourcesSection,
    /// The engine this run was resolved for (`train::engine_fingerprint()`), part of its config
    /// hash so no other engine's result is reused for it; empty (and not written) in runs
    /// stored before fingerprints, so their hashes are unchanged.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub engine: String,
    /// Which hold-out rule selected the validation images, where there are some
    /// (`val_per_class > 0`): 2 = from the images the split did not select (docs/SPEC.md). Part
    /// of the config hash, so runs cut by the earlier rule (hold-out first) are never reused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout_rule: Option<u32>,
    /// Which network `resnet8/20/32` name: 2 = Cao et al.'s option A with Kaiming-normal init
    /// ([`BackboneKind::BACKBONE_RULE`]); absent on those names = a run stored before the
    /// rename, whose network was option B (now `resnet*b`). Part of the config hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone_rule: Option<u32>,
    /// The crates outside cauda whose plugins this run uses, as `name version`, sorted
    /// (`Registry::register_extension`): part of the config hash, so a result trained with
    /// another version of such a crate is never reused; empty (and not written) for runs of
    /// cauda's own plugins, whose hashes are unchanged by it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    /// `evaluation.test_time_aggregation`: SADE's test-time self-supervised aggregation of the
    /// experts after the final evaluation, with its settings; absent, and not hashed, when off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_time_aggregation: Option<TestTimeAggregation>,
}

/// The spec key of the second sampler stream.
pub const SECOND_SAMPLER_KEY: &str = "rebalance.second_sampler";

/// The current [`ResolvedRun::holdout_rule`].
pub const HOLDOUT_RULE: u32 = 2;

impl ExperimentSpec {
    /// Parses a spec (bounded in size); `origin` names the file in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        super::parse_bounded(origin, text)
    }

    /// Resolves a spec without a `[sweep]` into one run.
    pub fn resolve(
        &self,
        origin: &str,
        presets: &PresetBook,
        registry: &Registry,
    ) -> Result<ResolvedRun> {
        if !self.sweep.is_empty() {
            return Err(invalid(
                origin,
                "sweep",
                "expand the grid first (one run per grid point)",
            ));
        }
        let preset = presets.get(&self.method).ok_or_else(|| {
            invalid(
                origin,
                "method",
                format!(
                    "unknown preset `{}`; allowed: {}",
                    self.method,
                    presets.names().join(", ")
                ),
            )
        })?;
        let pick = |spec: &Option<PluginRef>, preset: &Option<PluginRef>| {
            spec.clone().or_else(|| preset.clone())
        };
        let check = |kind: Kind, p: &PluginRef| -> Result<Params> {
            registry
                .validate(kind, p)
                .map_err(|e| invalid(origin, kind.spec_key(), e.to_string()))
        };

        let sampler = pick(&self.rebalance.sampler, &preset.rebalance.sampler)
            .unwrap_or_else(|| PluginRef::named("instance"));
        let second_sampler = pick(
            &self.rebalance.second_sampler,
            &preset.rebalance.second_sampler,
        );
        let loss = pick(&self.rebalance.loss, &preset.rebalance.loss)
            .unwrap_or_else(|| PluginRef::named("ce"));
        let drw = pick(&self.rebalance.drw, &preset.rebalance.drw);
        let posthoc = pick(&self.rebalance.posthoc, &preset.rebalance.posthoc);
        let mixer = pick(&self.augment.batch, &preset.augment.batch);
        let classifier = pick(&self.module.classifier, &preset.module.classifier);
        let stage2 = pick(&self.module.stage2, &preset.module.stage2);
        // The spec's switch, whole, over the preset's (as a plugin reference is).
        let aggregation = self
            .evaluation
            .test_time_aggregation
            .as_ref()
            .or(preset.evaluation.test_time_aggregation.as_ref())
            .and_then(AggregationSwitch::settings)
            .cloned();

        let mut model = self.model.clone();
        if let Some(c) = &classifier {
            let p = check(Kind::Classifier, c)?;
            let head = registry
                .classifier(&p)
                .map_err(|e| invalid(origin, Kind::Classifier.spec_key(), e.to_string()))?;
            (model.head, model.head_scale) = match head.head {
                HeadKind::Cosine { scale } => ("cosine".into(), scale),
                HeadKind::Linear => ("linear".into(), model.head_scale),
            };
            model.experts = head.experts;
            model.contrast = head.contrast;
            model.bilateral = head.bilateral;
        }
        let stage2 = match stage2 {
            Some(s) => {
                let params = check(Kind::Stage2, &s)?;
                // Built once here so a factory's refusal is the spec's error, not the worker's.
                registry
                    .stage2(&params)
                    .map_err(|e| invalid(origin, Kind::Stage2.spec_key(), e.to_string()))?;
                Some(Stage2Spec {
                    name: s.name,
                    params,
                })
            }
            None => None,
        };
        let is_small = matches!(self.data.format, DataFormat::Digits | DataFormat::Synthetic);
        let mut run = ResolvedRun {
            name: self.name.clone(),
            method: self.method.clone(),
            data: self.data.clone(),
            model,
            train: self.train.clone(),
            sampler: check(Kind::Sampler, &sampler)?,
            second_sampler: second_sampler
                .map(|s| {
                    registry
                        .validate(Kind::Sampler, &s)
                        .map_err(|e| invalid(origin, SECOND_SAMPLER_KEY, e.to_string()))
                })
                .transpose()?,
            loss: check(Kind::Loss, &loss)?,
            drw: drw.map(|d| check(Kind::LossSchedule, &d)).transpose()?,
            posthoc: posthoc.map(|p| check(Kind::PostHoc, &p)).transpose()?,
            crop_flip: self
                .augment
                .crop_flip
                .or(preset.augment.crop_flip)
                .unwrap_or(!is_small),
            pad: self.augment.pad.or(preset.augment.pad).unwrap_or(4),
            color_jitter: self.augment.color_jitter.or(preset.augment.color_jitter),
            mixer: mixer.map(|m| check(Kind::Mixer, &m)).transpose()?,
            stage2,
            metrics: self.metrics.clone(),
            resources: self.resources.clone(),
            engine: crate::train::engine_fingerprint(),
            holdout_rule: (self.data.val_per_class > 0).then_some(HOLDOUT_RULE),
            backbone_rule: BackboneKind::rule_of(&self.model.backbone),
            extensions: Vec::new(),
            test_time_aggregation: aggregation,
        };
        run.extensions = extensions_used(&run, classifier.as_ref(), registry);
        run.check_ranges(origin, self.augment.pad.is_some())?;
        run.check_needs(origin, registry, presets)?;
        Ok(run)
    }
}

/// The origins of the plugins outside cauda that `run` (and its classifier reference, which
/// resolves into the model section) names, sorted and once each.
fn extensions_used(
    run: &ResolvedRun,
    classifier: Option<&PluginRef>,
    registry: &Registry,
) -> Vec<String> {
    let named = [
        (Kind::Sampler, Some(run.sampler.plugin.as_str())),
        (
            Kind::Sampler,
            run.second_sampler.as_ref().map(|p| p.plugin.as_str()),
        ),
        (Kind::Loss, Some(run.loss.plugin.as_str())),
        (
            Kind::LossSchedule,
            run.drw.as_ref().map(|p| p.plugin.as_str()),
        ),
        (
            Kind::PostHoc,
            run.posthoc.as_ref().map(|p| p.plugin.as_str()),
        ),
        (Kind::Mixer, run.mixer.as_ref().map(|p| p.plugin.as_str())),
        (Kind::Classifier, classifier.map(|c| c.name.as_str())),
        (Kind::Stage2, run.stage2.as_ref().map(|s| s.name.as_str())),
    ];
    let origins: std::collections::BTreeSet<&str> = named
        .into_iter()
        .filter_map(|(kind, name)| registry.origin(kind, name?))
        .collect();
    origins.into_iter().map(str::to_string).collect()
}

impl ResolvedRun {
    fn check_ranges(&self, origin: &str, pad_given: bool) -> Result<()> {
        let bad = |key: &str, msg: String| Err(invalid(origin, key, msg));
        if self.name.is_empty() || self.name.len() > 128 {
            return bad("name", "must be 1 to 128 characters".into());
        }
        let d = &self.data;
        if matches!(
            d.format,
            DataFormat::Idx
                | DataFormat::Cifar
                | DataFormat::Folder
                | DataFormat::List
                | DataFormat::Inat
        ) && d.path.is_none()
        {
            return bad(
                "data.path",
                format!("required for format {:?}", d.format).to_lowercase(),
            );
        }
        if let Some(imb) = &d.imbalance {
            if !(imb.ratio >= 1.0 && imb.ratio <= 1e6) {
                return bad(
                    "data.imbalance.ratio",
                    format!("{} is out of range; allowed 1 ..= 1000000", imb.ratio),
                );
            }
            if let Some(f) = imb.step_fraction
                && !(f > 0.0 && f < 1.0)
            {
                return bad(
                    "data.imbalance.step_fraction",
                    format!("{f} is out of range; allowed 0 < f < 1"),
                );
            }
        }
        if let Some(syn) = &d.synthetic
            && !(syn.noise.is_finite() && (0.0..=1000.0).contains(&syn.noise))
        {
            return bad(
                "data.synthetic.noise",
                format!("{} is out of range; allowed 0 ..= 1000", syn.noise),
            );
        }
        if d.max_per_class == Some(0) {
            return bad("data.max_per_class", "must be at least 1".into());
        }
        d.check(origin)?;
        if BackboneKind::parse(&self.model.backbone).is_none() {
            return bad(
                "model.backbone",
                format!(
                    "unknown `{}`; allowed: {}",
                    self.model.backbone,
                    BackboneKind::NAMES.join(", ")
                ),
            );
        }
        self.model.check(origin)?;
        if !["linear", "cosine"].contains(&self.model.head.as_str()) {
            return bad(
                "model.head",
                format!("unknown `{}`; allowed: linear, cosine", self.model.head),
            );
        }
        if !(self.model.head_scale > 0.0 && self.model.head_scale <= 1000.0) {
            return bad(
                "model.head_scale",
                format!(
                    "{} is out of range; allowed 0 < s <= 1000",
                    self.model.head_scale
                ),
            );
        }
        if self.data.format.is_list() && pad_given {
            return bad(
                "augment.pad",
                "split-file data sets (format list or inat) crop with RandomResizedCrop, not \
                 padding: remove the key"
                    .into(),
            );
        }
        if let Some(s) = self.color_jitter {
            if !d.format.is_list() {
                return bad(
                    "augment.color_jitter",
                    "applies to split-file data sets (format list or inat) only".into(),
                );
            }
            if !(s > 0.0 && s <= 1.0) {
                return bad(
                    "augment.color_jitter",
                    format!("{s} is out of range; allowed 0 < s <= 1"),
                );
            }
        }
        let t = &self.train;
        if !(1..=10_000).contains(&t.epochs) {
            return bad(
                "train.epochs",
                format!("{} is out of range; allowed 1 ..= 10000", t.epochs),
            );
        }
        if !(1..=65_536).contains(&t.batch_size) {
            return bad(
                "train.batch_size",
                format!("{} is out of range; allowed 1 ..= 65536", t.batch_size),
            );
        }
        if t.eval_every == 0 {
            return bad("train.eval_every", "must be at least 1".into());
        }
        let o = &t.optimizer;
        if !["sgd", "adam"].contains(&o.name.as_str()) {
            return bad(
                "train.optimizer.name",
                format!("unknown `{}`; allowed: sgd, adam", o.name),
            );
        }
        if !(o.lr > 0.0 && o.lr <= 10.0) {
            return bad(
                "train.optimizer.lr",
                format!("{} is out of range; allowed 0 < lr <= 10", o.lr),
            );
        }
        if !(0.0..1.0).contains(&o.momentum) || !(0.0..=1.0).contains(&o.weight_decay) {
            return bad(
                "train.optimizer",
                "momentum must be in [0, 1) and weight_decay in [0, 1]".into(),
            );
        }
        if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
            return bad(
                "train.optimizer",
                "beta1 and beta2 must be in [0, 1)".into(),
            );
        }
        // Finite: an infinite value is stored as JSON `null`, which the worker cannot read back.
        if !(o.eps > 0.0 && o.eps <= 1.0) {
            return bad(
                "train.optimizer.eps",
                format!("{} is out of range; allowed 0 < eps <= 1", o.eps),
            );
        }
        let s = &t.schedule;
        if !["constant", "step", "cosine"].contains(&s.name.as_str()) {
            return bad(
                "train.schedule.name",
                format!("unknown `{}`; allowed: constant, step, cosine", s.name),
            );
        }
        if s.warmup_epochs >= t.epochs && s.warmup_epochs > 0 {
            return bad(
                "train.schedule.warmup_epochs",
                format!("must be less than train.epochs ({})", t.epochs),
            );
        }
        if !(s.gamma > 0.0 && s.gamma <= 1.0) {
            return bad(
                "train.schedule.gamma",
                format!("{} is out of range; allowed 0 < gamma <= 1", s.gamma),
            );
        }
        if self.metrics.few_threshold > self.metrics.many_threshold {
            return bad(
                "metrics.few_threshold",
                "must not exceed metrics.many_threshold".into(),
            );
        }
        self.resources.check(origin)?;
        Ok(())
    }

    /// The backbone this run trains, reading a run stored before the ResNets were renamed
    /// (`resnet32` without [`ResolvedRun::backbone_rule`]) as the option-B net it trained.
    pub fn backbone_kind(&self) -> Option<BackboneKind> {
        BackboneKind::parse_with_rule(&self.model.backbone, self.backbone_rule)?
            .with_experts(self.model.experts)
            .and_then(|k| k.with_bilateral(self.model.bilateral))
            .ok()
    }

    /// The resolved run as canonical JSON (stored with the run and hashed).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a resolved run back from `to_json`'s output (a worker receives its run this way).
    /// `origin` names the source in errors. The caller checks the config hash, which proves
    /// that nothing was lost on the way.
    pub fn from_json(origin: &str, json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| invalid(origin, "config_json", e.to_string()))
    }
}
