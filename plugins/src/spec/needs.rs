//! A resolved run's plugins against what they need of its model ([`crate::registry::Needs`]):
//! a loss designed for a cosine classifier (LDAM), for several experts (RIDE, SADE) or for
//! the embeddings of augmented views and class centers (BCL), or for a second sampler stream and
//! BBN's two branches (BBN) is refused at submission, naming the classifier to add and the
//! presets that do, instead of training something else in a worker; so is a stage 2 that trains
//! a cosine head (GCL's) after a linear one. The requirements are declared with the plugins, so no plugin
//! name is matched here.

use super::resolve::SECOND_SAMPLER_KEY;
use super::{AGGREGATION_KEY, PresetBook, ResolvedRun, Result, invalid};
use crate::models::BackboneKind;
use crate::registry::{Kind, Registry};
use crate::stage2::Stage2Plan;

impl ResolvedRun {
    pub(super) fn check_needs(
        &self,
        origin: &str,
        registry: &Registry,
        presets: &PresetBook,
    ) -> Result<()> {
        if self.model.experts != 1 || self.model.bilateral {
            let kind = BackboneKind::parse(&self.model.backbone)
                .ok_or_else(|| invalid(origin, "model.backbone", "unknown backbone"))?;
            kind.with_experts(self.model.experts)
                .and_then(|k| k.with_bilateral(self.model.bilateral))
                .map_err(|e| invalid(origin, Kind::Classifier.spec_key(), e.to_string()))?;
        }
        self.check_aggregation(origin, registry)?;
        // A stage 2 that trains the stage-1 head with a cosine-head loss (GCL's classifier
        // stage) needs that head too.
        if let Some(s2) = &self.stage2 {
            let needs = registry
                .needs(Kind::Stage2, &s2.name)
                .map_err(|e| invalid(origin, Kind::Stage2.spec_key(), e.to_string()))?;
            if needs.cosine_head && self.model.head != "cosine" {
                return Err(invalid(
                    origin,
                    Kind::Stage2.spec_key(),
                    format!(
                        "`{}` trains the stage-1 cosine classifier: add `[module] classifier = \
                         {{ name = \"cosine\", scale = 1.0 }}`",
                        s2.name
                    ),
                ));
            }
        }
        let name = &self.loss.plugin;
        let needs = registry
            .needs(Kind::Loss, name)
            .map_err(|e| invalid(origin, Kind::Loss.spec_key(), e.to_string()))?;
        let using = || {
            let names: Vec<&str> = presets
                .all()
                .filter(|p| p.rebalance.loss.as_ref().is_some_and(|l| l.name == *name))
                .map(|p| p.name.as_str())
                .collect();
            if names.is_empty() {
                String::new()
            } else {
                format!(", or use the preset {}", names.join(" / "))
            }
        };
        if needs.cosine_head && self.model.head != "cosine" {
            return Err(invalid(
                origin,
                Kind::Loss.spec_key(),
                format!(
                    "`{name}` needs the cosine classifier it was designed with: add `[module] \
                     classifier = {{ name = \"cosine\", scale = 1.0 }}` (the scale s is the \
                     loss' own){}",
                    using()
                ),
            ));
        }
        if let Some((lo, hi)) = needs.experts {
            let e = self.model.experts;
            if !(lo..=hi).contains(&e) {
                let want = if lo == hi {
                    format!("{lo}")
                } else {
                    format!("{lo} to {hi}")
                };
                return Err(invalid(
                    origin,
                    Kind::Loss.spec_key(),
                    format!(
                        "`{name}` trains {want} experts and the model has {e}: add `[module] \
                         classifier = {{ name = \"experts\", experts = {lo} }}`{}",
                        using()
                    ),
                ));
            }
        }
        let contrast = self.model.contrast;
        if let Some((lo, hi)) = needs.views {
            let have = contrast.map_or(0, |c| c.views);
            if !(lo..=hi).contains(&have) || (needs.centers && !contrast.is_some_and(|c| c.centers))
            {
                return Err(invalid(
                    origin,
                    Kind::Loss.spec_key(),
                    format!(
                        "`{name}` compares the embeddings of {lo} augmented views{} and the model has {}: add `[module] classifier = {{ name = \"contrastive\", \
                         views = {lo} }}`{}",
                        if needs.centers {
                            " with class centers"
                        } else {
                            ""
                        },
                        match contrast {
                            None => "no projection head".to_string(),
                            Some(c) if needs.centers && !c.centers => {
                                "no class-center head".to_string()
                            }
                            Some(c) => format!("{} views", c.views),
                        },
                        using()
                    ),
                ));
            }
        }
        self.check_streams(
            origin,
            registry,
            needs.second_stream,
            needs.bilateral,
            &using(),
        )
    }

    /// SADE's test-time aggregation weighs the experts of the model's final head: it needs
    /// several, and a head that the run's final evaluation uses (not NCM's class means, which
    /// replace the experts' classifiers by one, nor kNN's vote).
    fn check_aggregation(&self, origin: &str, registry: &Registry) -> Result<()> {
        let Some(settings) = &self.test_time_aggregation else {
            return Ok(());
        };
        let experts = self.model.experts;
        if experts < 2 {
            return Err(invalid(
                origin,
                AGGREGATION_KEY,
                format!(
                    "SADE's test-time aggregation learns how to weigh a model's experts and the model has {experts}: add `[module] classifier = {{ name = \"experts\", experts = 3 }}` (on resnet8/20/32), or use the preset sade"
                ),
            ));
        }
        if let Some(s2) = &self.stage2 {
            let plan = registry
                .stage2(&s2.params)
                .map_err(|e| invalid(origin, Kind::Stage2.spec_key(), e.to_string()))?
                .plan();
            if matches!(
                plan,
                Stage2Plan::NearestClassMean { .. } | Stage2Plan::NearestNeighbours { .. }
            ) {
                return Err(invalid(
                    origin,
                    AGGREGATION_KEY,
                    format!(
                        "`{}` replaces the experts' classifiers, so there are no experts to weigh at test time: remove one of the two",
                        s2.name
                    ),
                ));
            }
        }
        settings.check(origin, experts)
    }

    /// A second sampler stream exactly when a plugin takes it, and the bilateral model exactly
    /// with a loss that mixes its branches: a stream or branch nothing reads would be a config
    /// key silently ignored, a loss without them trains something else.
    fn check_streams(
        &self,
        origin: &str,
        registry: &Registry,
        loss_stream: bool,
        loss_bilateral: bool,
        using: &str,
    ) -> Result<()> {
        let name = &self.loss.plugin;
        let mixer_stream = match &self.mixer {
            Some(m) => {
                registry
                    .needs(Kind::Mixer, &m.plugin)
                    .map_err(|e| invalid(origin, Kind::Mixer.spec_key(), e.to_string()))?
                    .second_stream
            }
            None => false,
        };
        match (&self.second_sampler, loss_stream || mixer_stream) {
            (None, true) => {
                let who = if loss_stream {
                    format!("`{name}`")
                } else {
                    format!(
                        "`{}`",
                        self.mixer.as_ref().map_or("", |m| m.plugin.as_str())
                    )
                };
                return Err(invalid(
                    origin,
                    SECOND_SAMPLER_KEY,
                    format!(
                        "{who} trains on a second sampler stream beside each batch and the run \
                         has none: add `[rebalance] second_sampler` (BBN's is \"reversed\", \
                         CMO's \"class-balanced\"){using}"
                    ),
                ));
            }
            (Some(s), false) => {
                return Err(invalid(
                    origin,
                    SECOND_SAMPLER_KEY,
                    format!(
                        "`{}` would draw a second stream that neither the loss `{name}` nor the \
                         mixer reads: remove it, or use a plugin that takes it (bbn, cmo)",
                        s.plugin
                    ),
                ));
            }
            _ => {}
        }
        if loss_bilateral && !self.model.bilateral {
            return Err(invalid(
                origin,
                Kind::Loss.spec_key(),
                format!(
                    "`{name}` mixes the two branches of BBN's bilateral model and the model has \
                     one: add `[module] classifier = \"bilateral\"`{using}"
                ),
            ));
        }
        if self.model.bilateral && !loss_bilateral {
            return Err(invalid(
                origin,
                Kind::Classifier.spec_key(),
                format!(
                    "the bilateral classifier's two branches are trained by a loss that mixes \
                     them, and `{name}` does not: use `[rebalance] loss = \"bbn\"` (the preset bbn)"
                ),
            ));
        }
        Ok(())
    }
}
