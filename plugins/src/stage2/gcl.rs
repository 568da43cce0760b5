//! GCL's classifier stage (Li et al., "Long-Tailed Visual Recognition via Gaussian Clouded
//! Logit Adjustment", CVPR 2022; Keke921/GCLLoss `cifar_train_classifier.py`): after stage 1
//! with the GCL loss, the stage-1 cosine classifier is trained further on the frozen backbone
//! (evaluation mode) with class-balanced re-sampling (`BalancedRS`: a uniform class, then a
//! uniform image of it), mixup, and the GCL loss with a margin and a focal factor
//! (`GCLLoss(m=0.1, s=20, noise_mul=0.5, train_cls=True, gamma=1)`), 30 epochs of SGD whose
//! rate is `0.01 lr_max (1 + cos(pi e / E))` per epoch: cauda's cosine schedule from 0.02.
//!
//! Left out: nothing of the CIFAR script's recipe; its learnable weight scaling (`lws_model`) is
//! commented out there.

use super::{HeadPlan, Stage2Method, Stage2Plan, TrainPlan};
use crate::registry::{Params, PluginRef};

#[derive(Debug, Clone)]
pub struct GclClassifier(Params);

impl GclClassifier {
    pub fn from_params(p: &Params) -> Self {
        Self(p.clone())
    }
}

impl Stage2Method for GclClassifier {
    /// Stage 1 is the plain run (its GCL loss, mixup and cosine classifier are the preset's).
    fn shares_stage1(&self) -> bool {
        true
    }

    fn plan(&self) -> Stage2Plan {
        let p = &self.0;
        let mut gcl = PluginRef::named("gcl");
        for key in ["m", "s", "noise_mul", "gamma"] {
            gcl.params
                .insert(key.into(), toml::Value::Float(p.get(key)));
        }
        let mixer = (p.get("mixup_alpha") > 0.0).then(|| {
            let mut m = PluginRef::named("mixup");
            m.params
                .insert("alpha".into(), toml::Value::Float(p.get("mixup_alpha")));
            m
        });
        Stage2Plan::Train(TrainPlan {
            epochs: p.get("epochs") as usize,
            lr: p.get("lr"),
            weight_decay: None,
            head: HeadPlan::Keep,
            sampler: PluginRef::named("class-balanced"),
            loss: gcl,
            mixer,
            max_norm_thresh: None,
            head_lr_factor: 1.0,
        })
    }
}
