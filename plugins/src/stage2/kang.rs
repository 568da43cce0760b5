//! Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition", ICLR
//! 2020 (facebookresearch/classifier-balancing): classifier re-training (cRT), learnable weight
//! scaling (LWS) and tau-normalization, all on the frozen stage-1 backbone.

use super::{HeadPlan, Stage2Method, Stage2Plan, TrainPlan};
use crate::registry::{Params, PluginRef};

/// The authors' stage 2: class-aware sampling (4 images a class visit) and plain CE.
fn kang_plan(p: &Params, head: HeadPlan) -> TrainPlan {
    TrainPlan {
        epochs: p.get("epochs") as usize,
        lr: p.get("lr"),
        weight_decay: None,
        head,
        sampler: PluginRef::named("class-aware"),
        loss: PluginRef::named("ce"),
        mixer: None,
        max_norm_thresh: None,
        head_lr_factor: 1.0,
    }
}

/// cRT (a re-initialized classifier) or LWS (per-class scales of the frozen classifier), both
/// trained on the frozen backbone with the authors' stage-2 recipe; they differ only in the head.
#[derive(Debug, Clone)]
pub struct KangRetrain {
    params: Params,
    head: HeadPlan,
}

impl KangRetrain {
    /// cRT: a re-initialized classifier.
    pub fn crt(p: &Params) -> Self {
        Self {
            params: p.clone(),
            head: HeadPlan::Reinit,
        }
    }

    /// LWS: learnable per-class scales of the frozen stage-1 classifier.
    pub fn lws(p: &Params) -> Self {
        Self {
            params: p.clone(),
            head: HeadPlan::LwsScales,
        }
    }
}

impl Stage2Method for KangRetrain {
    fn shares_stage1(&self) -> bool {
        true
    }
    fn plan(&self) -> Stage2Plan {
        Stage2Plan::Train(kang_plan(&self.params, self.head))
    }
}

/// Tau-normalization: `w_c / ||w_c||^tau`, no training.
#[derive(Debug, Clone)]
pub struct TauNorm {
    tau: f32,
}

impl TauNorm {
    pub fn from_params(p: &Params) -> Self {
        Self {
            tau: p.get("tau") as f32,
        }
    }
}

impl Stage2Method for TauNorm {
    fn shares_stage1(&self) -> bool {
        true
    }
    fn plan(&self) -> Stage2Plan {
        Stage2Plan::TauNorm { tau: self.tau }
    }
}
