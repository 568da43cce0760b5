//! Decoupled second stages (module improvement, survey Sec. 3.3.4): after stage 1 learns the
//! representation, a stage-2 method re-trains or re-scales the classifier. Each method is a
//! registry plugin ([`crate::registry::Kind::Stage2`]) that says what it does as a
//! [`Stage2Plan`]; the training loop carries out the plan, matching on it exhaustively, so a
//! new method is a new file here and a registry entry, not a string match in the loop.
//! Distillation ([`Distil`]) uses the same seam with the stage-1 model as its teacher.

mod disalign;
mod distil;
mod gcl;
mod kang;
mod knn;
mod mislas;
mod ncm;
mod weight_balancing;

pub use disalign::DisAlign;
pub use distil::Distil;
pub use gcl::GclClassifier;
pub use kang::{KangRetrain, TauNorm};
pub use knn::{Knn, KnnError, KnnVote};
pub use mislas::Mislas;
pub use ncm::Ncm;
pub use weight_balancing::WeightBalancing;

use crate::registry::PluginRef;

/// What happens to the stage-1 classifier head when stage 2 starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPlan {
    /// A freshly initialized head of the same kind, trained (cRT).
    Reinit,
    /// The stage-1 head, frozen, with trainable per-class scales (LWS).
    LwsScales,
    /// The stage-1 head, trained further (weight balancing).
    Keep,
    /// The stage-1 head, trained further, and trainable per-class scales on its logits (MiSLAS).
    KeepWithScales,
    /// The stage-1 head, frozen, with DisAlign's trainable calibration of its logits
    /// ([`crate::models::Head::with_disalign`]).
    DisAlign,
}

/// A stage 2 that trains part of the model on the frozen backbone.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainPlan {
    pub epochs: usize,
    /// The learning rate (cosine schedule, no warm-up).
    pub lr: f64,
    /// Weight decay of stage 2; `None` keeps the run's.
    pub weight_decay: Option<f64>,
    pub head: HeadPlan,
    /// The stage's sampler and loss, validated and built through the registry.
    pub sampler: PluginRef,
    pub loss: PluginRef,
    /// The stage's batch mixer (`augment.batch`), validated and built through the registry;
    /// `None` for none (GCL's classifier stage mixes, as its stage 1 does).
    pub mixer: Option<PluginRef>,
    /// MaxNorm after every step, with the radius relative to the head's row norms at the
    /// start of stage 2 (`min + thresh (max - min)`; weight balancing).
    pub max_norm_thresh: Option<f32>,
    /// The head's weight and bias learn at `lr x head_lr_factor`, every other trainable tensor
    /// at `lr` (MiSLAS: 0.5 for the classifier, 1 for the LWS scales); 1 for one rate.
    pub head_lr_factor: f64,
}

/// A stage 2 that distils the stage-1 model (the teacher, frozen) into a freshly initialized
/// student trained with the run's own recipe (sampler, loss, augmentation, optimizer, schedule,
/// epochs), its loss wrapped by [`crate::losses::Distillation`].
#[derive(Debug, Clone, PartialEq)]
pub struct DistilPlan {
    /// Weight of the soft (teacher) term; the run's loss gets `1 - alpha`.
    pub alpha: f64,
    /// Softmax temperature T of both distributions.
    pub temperature: f64,
}

/// What a stage-2 method does.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage2Plan {
    /// Train for more epochs.
    Train(TrainPlan),
    /// Tau-normalize the classifier post hoc, `tau` chosen on the validation split when there is
    /// one (grid 0..=2 by 0.1), else this one.
    TauNorm { tau: f32 },
    /// Replace the classifier post hoc by the class means of the L2-normalized training
    /// features, as a cosine classifier with this scale.
    NearestClassMean { scale: f32 },
    /// Train a new model from scratch against the stage-1 model's logits (distillation).
    Distil(DistilPlan),
    /// Classify post hoc by the weighted vote of the `k` training images whose L2-normalized
    /// features are most cosine-similar (weights `exp(s / temperature)`): [`KnnVote`].
    NearestNeighbours { k: usize, temperature: f32 },
}

impl Stage2Plan {
    /// The epochs stage 2 trains, for a run of `run_epochs` stage-1 epochs (0 post hoc).
    pub fn epochs(&self, run_epochs: usize) -> usize {
        match self {
            Stage2Plan::Train(tp) => tp.epochs,
            Stage2Plan::Distil(_) => run_epochs,
            Stage2Plan::TauNorm { .. }
            | Stage2Plan::NearestClassMean { .. }
            | Stage2Plan::NearestNeighbours { .. } => 0,
        }
    }
}

/// A decoupled second stage.
pub trait Stage2Method: Send + Sync + std::fmt::Debug {
    /// Whether stage 1 is the run without its stage 2 (so methods that share it train it once:
    /// the daemon plans it as its own run and each stage 2 starts from its final checkpoint).
    /// False when the method changes stage 1 (weight balancing's weight decay).
    fn shares_stage1(&self) -> bool;

    /// Stage 1's weight decay when the method sets it (else the run's).
    fn stage1_weight_decay(&self) -> Option<f64> {
        None
    }

    /// What stage 2 does.
    fn plan(&self) -> Stage2Plan;
}
