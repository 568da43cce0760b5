//! What a loss sees of one training step, and the one entry point the training loop calls.
//! Most losses are per-sample (`l(z_i, y_i)`) and are reduced by [`combine`]; a loss whose value
//! is not a mean of per-sample terms (LADE's per-class estimate over the batch, a contrastive
//! loss over features, a distillation term with a teacher) computes the whole batch itself in
//! [`Loss::whole_batch`] from the [`Step`].

use burn::tensor::{Int, Tensor};

use super::Loss;
use super::combine::{Mixup, combine_drawn};
use super::draws::StepDraws;
use super::error::Result;

/// One training step as a loss sees it. New fields are added as methods need them (features,
/// expert logits, the teacher's logits of distillation); a loss reads what it needs.
#[derive(Debug, Clone)]
pub struct Step {
    /// The model's logits `[N, C]`.
    pub logits: Tensor<2>,
    /// The backbone's features `[N, D]` the logits were computed from, where the training path
    /// has them (the loop always does).
    pub features: Option<Tensor<2>>,
    /// Each expert's logits `[E, N, C]` when the model has several experts (RIDE, SADE); then
    /// `logits` is their mean, the model's output.
    pub experts: Option<Tensor<3>>,
    /// Each sample's own label `[N]`.
    pub labels: Tensor<1, Int>,
    /// The partner labels and mixing weights when the batch was mixed.
    pub mix: Option<Mixup>,
    /// 0-based epoch of the stage.
    pub epoch: usize,
    /// 0-based optimizer step of the stage in this process: it restarts at 0 when a run resumes
    /// from a checkpoint, so nothing that must survive a resume may be keyed on it (per-batch
    /// randomness uses `draws`, keyed on the epoch and the batch within it).
    pub step: usize,
    /// A frozen teacher's logits `[N, C]` for the same images (no gradient), in a stage that
    /// distils one (`module.stage2 = "kd"`); `None` elsewhere.
    pub teacher: Option<Tensor<2>>,
    /// Unit-norm embeddings `[V, N, P]` of every view of the images from the model's projection
    /// head (`module.classifier = "contrastive"`): view 0 is the classification view `logits`
    /// come from, views 1.. are the augmented views a contrastive loss compares (BCL); `None`
    /// for a model without the head.
    pub embeddings: Option<Tensor<3>>,
    /// Unit-norm class centers `[C, P]`: the classifier's weights through the model's
    /// class-center head (BCL's `head_fc`), where the model has it.
    pub centers: Option<Tensor<2>>,
    /// The key a stochastic loss (GCL) draws this step's noise from, and the batch row this
    /// tensor's row 0 is (default: key 0, row 0).
    pub draws: StepDraws,
    /// The stage's second sampler stream (`rebalance.second_sampler`), when it has one: its
    /// batch's logits and labels (BBN's re-balancing branch).
    pub second: Option<SecondStream>,
}

/// A batch of the second sampler stream as a loss sees it: its images' logits `[N, C]` through
/// the model, and their labels `[N]`. For a bilateral model (BBN) the main stream's `logits`
/// are its conventional branch's `W (2 f_c) + b` and these its re-balancing branch's
/// `W (2 f_r) + b` (the head on the branch's features doubled, the other branch's slot zero),
/// so `alpha z + (1 - alpha) z'` is BBN's mixed output `W 2[alpha f_c, (1 - alpha) f_r] + b`;
/// for any other model, the model's logits of the second batch.
#[derive(Debug, Clone)]
pub struct SecondStream {
    pub logits: Tensor<2>,
    pub labels: Tensor<1, Int>,
}

impl Step {
    /// A step of `logits` and `labels` alone (no features, experts, mixing, teacher or
    /// embeddings) at `epoch` and `step`: what a loss sees of a plain batch.
    pub fn plain(logits: Tensor<2>, labels: Tensor<1, Int>, epoch: usize, step: usize) -> Self {
        Self {
            logits,
            features: None,
            experts: None,
            labels,
            mix: None,
            epoch,
            step,
            teacher: None,
            embeddings: None,
            centers: None,
            draws: StepDraws::default(),
            second: None,
        }
    }
}

/// The scalar training loss (shape `[1]`) of one step: the loss' own whole-batch value when it
/// has one, else [`combine`] of its per-sample values and class weights.
pub fn step_loss(loss: &dyn Loss, step: Step) -> Result<Tensor<1>> {
    if let Some(value) = loss.whole_batch(&step) {
        return value;
    }
    let Step {
        logits,
        labels,
        mix,
        epoch,
        draws,
        ..
    } = step;
    combine_drawn(loss, logits, labels, mix, epoch, draws)
}
