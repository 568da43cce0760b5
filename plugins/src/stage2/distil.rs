//! Knowledge distillation from a teacher run (Hinton et al. 2015; in long-tailed learning LFME,
//! Xiang et al. ECCV 2020, and DiVE, He et al. ICCV 2021; the survey's transfer-learning
//! sub-family, Sec. 3.2.1): the shared stage 1 is the teacher, a plain run of the method's own
//! recipe that the daemon trains once as its own run; stage 2 trains a freshly initialized
//! student of the same architecture, every parameter trainable, with the run's own sampler,
//! augmentation, optimizer, schedule and epochs, under
//! `(1 - alpha) L_task + alpha T^2 KL(softmax(z_t / T) || softmax(z_s / T))`
//! ([`crate::losses::Distillation`]), the teacher frozen in evaluation mode (BatchNorm with its
//! running statistics, no gradient).
//!
//! Defaults are DiVE's (zhangyongshun/BagofTricks-LT `DiVEKLD`: T = 3, alpha = 0.5); LFME's
//! ImageNet-LT config uses T = 2 with the hard and soft terms weighted 1 : 1.
//! Left out: DiVE's power flattening of the teacher's distribution (`POWER_NORM`, off by
//! default there) and LFME's several experts and self-paced schedules (one teacher here).

use std::sync::Arc;

use super::{DistilPlan, Stage2Method, Stage2Plan};
use crate::losses::{Distillation, Loss, LossError};
use crate::registry::Params;

#[derive(Debug, Clone)]
pub struct Distil {
    alpha: f64,
    temperature: f64,
}

impl Distil {
    pub fn from_params(p: &Params) -> Self {
        Self {
            alpha: p.get("alpha"),
            temperature: p.get("temperature"),
        }
    }
}

impl Stage2Method for Distil {
    /// The teacher is the plain run of the same recipe: shared with that method's own run.
    fn shares_stage1(&self) -> bool {
        true
    }

    fn plan(&self) -> Stage2Plan {
        Stage2Plan::Distil(DistilPlan {
            alpha: self.alpha,
            temperature: self.temperature,
        })
    }
}

impl DistilPlan {
    /// The student's loss: the run's own loss `task` inside the distillation term.
    pub fn loss(&self, task: Arc<dyn Loss>) -> Result<Arc<dyn Loss>, LossError> {
        Ok(Arc::new(Distillation::new(
            task,
            self.alpha,
            self.temperature,
        )?))
    }
}
