//! MiSLAS (Zhong et al., "Improving Calibration for Long-Tailed Recognition", CVPR 2021;
//! dvlab-research/MiSLAS `train_stage2.py` and its CIFAR configs): stage 1 with mixup (the
//! preset's), stage 2 keeps the stage-1 classifier and trains it, with learnable per-class
//! weight scaling on its logits, under label-aware smoothing on class-balanced batches, the
//! classifier at half the scales' learning rate.
//!
//! Left out: the "shift learning" of BatchNorm statistics in stage 2 (`shift_bn`), which the
//! CIFAR configs switch off; here the backbone stays frozen in evaluation mode.

use super::{HeadPlan, Stage2Method, Stage2Plan, TrainPlan};
use crate::registry::{Params, PluginRef};

#[derive(Debug, Clone)]
pub struct Mislas(Params);

impl Mislas {
    pub fn from_params(p: &Params) -> Self {
        Self(p.clone())
    }
}

impl Stage2Method for Mislas {
    /// Stage 1 is the plain run (mixup comes from the run's own `augment.batch`).
    fn shares_stage1(&self) -> bool {
        true
    }

    fn plan(&self) -> Stage2Plan {
        let p = &self.0;
        let mut sampler = PluginRef::named("class-aware");
        sampler.params.insert(
            "per_visit".into(),
            toml::Value::Integer(p.get("per_visit") as i64),
        );
        let mut las = PluginRef::named("label-aware-smoothing");
        for key in ["smooth_head", "smooth_tail"] {
            las.params
                .insert(key.into(), toml::Value::Float(p.get(key)));
        }
        Stage2Plan::Train(TrainPlan {
            epochs: p.get("epochs") as usize,
            lr: p.get("lr"),
            weight_decay: Some(p.get("weight_decay")),
            head: HeadPlan::KeepWithScales,
            sampler,
            loss: las,
            mixer: None,
            max_norm_thresh: None,
            head_lr_factor: p.get("lr_factor"),
        })
    }
}
