//! Alshammari et al., "Long-Tailed Recognition via Weight Balancing", CVPR 2022 (their released
//! code, demo1/demo2): stage 1 with a tuned, strong weight decay; stage 2 re-trains the
//! classifier (weight and bias) with the class-balanced loss, weight decay and MaxNorm.

use super::{HeadPlan, Stage2Method, Stage2Plan, TrainPlan};
use crate::registry::{Params, PluginRef};

#[derive(Debug, Clone)]
pub struct WeightBalancing(Params);

impl WeightBalancing {
    pub fn from_params(p: &Params) -> Self {
        Self(p.clone())
    }
}

impl Stage2Method for WeightBalancing {
    /// Stage 1 has its own weight decay, so it is not the plain run's.
    fn shares_stage1(&self) -> bool {
        false
    }
    fn stage1_weight_decay(&self) -> Option<f64> {
        Some(self.0.get("stage1_weight_decay"))
    }
    fn plan(&self) -> Stage2Plan {
        let p = &self.0;
        let mut cb = PluginRef::named("class-balanced");
        cb.params.insert("gamma".into(), toml::Value::Float(0.0));
        Stage2Plan::Train(TrainPlan {
            epochs: p.get("epochs") as usize,
            lr: p.get("lr"),
            weight_decay: Some(p.get("weight_decay")),
            head: HeadPlan::Keep,
            sampler: PluginRef::named("instance"),
            loss: cb,
            mixer: None,
            max_norm_thresh: Some(p.get("thresh") as f32),
            head_lr_factor: 1.0,
        })
    }
}
