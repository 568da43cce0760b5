//! The long-tailed losses of the survey "Deep Long-Tailed Learning: A Survey" (Zhang et al., TPAMI 2023),
//! Sec. 3.1 class re-balancing, on Burn tensors: one file per loss, one [`Loss`] trait the trainer calls,
//! and one batch reduction, [`combine`], that applies class weights and mixup targets the same way for all.
//!
//! Division of labour: a loss gives the *unweighted* per-sample value `l(z_i, y)` ([`Loss::per_sample`])
//! and, optionally, per-class weights `w_c` for the current epoch ([`Loss::class_weights`]); [`combine`]
//! forms the weighted mean. Losses that need the training distribution are built from the per-class
//! training counts `n_c` and validate every parameter with a [`LossError`] naming it and its range.

mod balanced_softmax;
mod bbn;
mod bcl;
mod class_balanced;
mod class_stats;
mod combine;
mod cross_entropy;
mod distillation;
mod draws;
mod drw;
mod error;
mod focal;
mod gcl;
mod grw;
mod influence_balanced;
mod label_aware_smoothing;
mod lade;
mod ldam;
mod logit_adjusted;
mod posthoc;
mod ride;
mod sade;
mod step;
mod vs;
mod weighted_ce;

#[cfg(test)]
mod bbn_fixture_tests;
#[cfg(test)]
mod bcl_fixture_tests;
#[cfg(test)]
mod behaviour_tests;
#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod gcl_fixture_tests;
#[cfg(test)]
mod method_fixture_tests;

use burn::tensor::{Int, Tensor};

pub use balanced_softmax::BalancedSoftmax;
pub use bbn::Bbn;
pub use bcl::{Bcl, BclParams};
pub use class_balanced::{ClassBalanced, ClassBalancedBase};
pub use class_stats::log_prior;
pub use combine::{Mixup, combine, combine_drawn};
pub use cross_entropy::CrossEntropy;
pub use distillation::Distillation;
pub use draws::{StepDraws, normal_block, standard_normal, step_key};
pub use drw::Drw;
pub use error::{LossError, Result};
pub use focal::Focal;
pub use gcl::Gcl;
pub use grw::GeneralizedReweight;
pub use influence_balanced::InfluenceBalanced;
pub use label_aware_smoothing::LabelAwareSmoothing;
pub use lade::Lade;
pub use ldam::Ldam;
pub use logit_adjusted::LogitAdjusted;
pub use posthoc::posthoc_adjust;
pub use ride::{Ride, RideParams};
pub use sade::Sade;
pub use step::{SecondStream, Step, step_loss};
pub use vs::VectorScaling;
pub use weighted_ce::WeightedCe;

/// A classification loss for long-tailed training.
///
/// Contract: `per_sample` is unweighted and differentiable in the logits; class weights are applied
/// only by [`combine`], so a loss never weights twice. A loss that is not a mean of per-sample
/// terms overrides [`Loss::whole_batch`]; the training loop calls [`step_loss`]. A loss that
/// keeps state across steps (a queue, a moving average) holds it behind interior mutability
/// (a `Mutex`): data-parallel shards call one loss from several threads at once.
pub trait Loss: Send + Sync + std::fmt::Debug {
    /// Unweighted per-sample loss l_i for logits [N, C] and hard labels [N] -> [N].
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1>;

    /// The per-sample loss of one evaluation in a training step: `draws` is the step's key
    /// and `term` which of its evaluations this is (0: the labels, 1: a mixed batch's partner
    /// labels). A loss that draws noise (GCL) overrides it; every other loss is deterministic
    /// and this is [`Loss::per_sample`]. A loss that wraps another forwards it.
    fn per_sample_drawn(
        &self,
        logits: Tensor<2>,
        labels: Tensor<1, Int>,
        _draws: StepDraws,
        _term: usize,
    ) -> Tensor<1> {
        self.per_sample(logits, labels)
    }

    /// Per-class weights w_c applied by `combine` at this epoch (None = all 1). Used by re-weighting and DRW.
    fn class_weights(&self, _epoch: usize) -> Option<Vec<f32>> {
        None
    }

    /// Whether the model must use a cosine (normalized) head, e.g. LDAM's s*cos.
    fn wants_cosine_head(&self) -> bool {
        false
    }

    /// The number of classes C this loss was built for (from its class counts), or None when the loss
    /// works for any C. [`combine`] checks it against the logits so a mismatch is an error, not a panic.
    fn num_classes(&self) -> Option<usize> {
        None
    }

    /// The whole batch's loss when it is not [`combine`] of per-sample values (None: it is).
    fn whole_batch(&self, _step: &Step) -> Option<Result<Tensor<1>>> {
        None
    }
}
