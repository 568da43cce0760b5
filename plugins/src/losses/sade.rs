//! SADE's skill-diverse experts: three experts over one trunk learn the same labels under three
//! label distributions (the long-tailed one, a uniform one and an inversely long-tailed one),
//! each by cross-entropy on logits shifted by its own log prior ratio, so the mean of their
//! logits serves a test distribution of any skew (Zhang et al., "Self-Supervised Aggregation of
//! Diverse Experts for Test-Agnostic Long-Tailed Recognition", NeurIPS 2022).

use burn::tensor::{Int, Tensor};

use super::class_stats::{check_param, validate_counts};
use super::cross_entropy::{add_class_offsets, ce_per_sample};
use super::error::{LossError, Result};
use super::{Loss, Step};

const NAME: &str = "sade";

/// The diverse-expert loss (reference code Vanint/SADE-AgnosticLT `DiverseExpertLoss`):
///
/// `L = CE(z_1, y) + CE(z_2 + log(pi + 1e-9), y) + CE(z_3 + log(pi + 1e-9) - tau log(pi~ + 1e-9), y)`
///
/// for the three experts' logits `z_e`, the training prior `pi_c = n_c / sum_k n_k` and its
/// inverse `pi~`: the class of rank `r` (ascending prior) gets the prior of the class of rank
/// `C - 1 - r` (`inverse_prior`; ties ranked by class index, a stable sort). Expert 1 fits the
/// long-tailed training distribution, expert 2 (balanced softmax) a uniform one and expert 3,
/// with `tau = 2` (the papers' value), an inversely long-tailed one. The model predicts with the
/// mean of the experts' logits (SADE's test-time aggregation, which learns other weights on
/// unlabeled test data, is not part of training). A mixed batch is refused, as the reference
/// trains without mixing.
#[derive(Debug, Clone)]
pub struct Sade {
    /// Per expert, the offset added to its logits.
    offsets: [Vec<f32>; 3],
}

impl Sade {
    /// The papers' inverse-distribution strength.
    pub const DEFAULT_TAU: f64 = 2.0;

    /// From the per-class training counts (all > 0) and `tau >= 0`.
    pub fn new(counts: &[usize], tau: f64) -> Result<Self> {
        let counts = validate_counts(NAME, counts)?;
        let tau = check_param(NAME, "tau", tau, "tau >= 0", |t| t >= 0.0)?;
        // The reference's prior is float64 numpy cast to float32; its log is taken in float32.
        let total: f64 = counts.iter().sum();
        let prior: Vec<f32> = counts.iter().map(|&n| (n / total) as f32).collect();
        let inverse = inverse_prior(&prior);
        let log = |p: f32| (p + 1e-9).ln();
        let balanced: Vec<f32> = prior.iter().map(|&p| log(p)).collect();
        let inverted = prior
            .iter()
            .zip(&inverse)
            .map(|(&p, &q)| log(p) - tau as f32 * log(q))
            .collect();
        Ok(Self {
            offsets: [vec![0.0; prior.len()], balanced, inverted],
        })
    }

    /// The three experts' logit offsets (0; `log pi`; `log pi - tau log pi~`).
    pub fn offsets(&self) -> &[Vec<f32>; 3] {
        &self.offsets
    }
}

/// The prior of the class of mirrored rank: sort ascending (stable), class of rank `r` takes the
/// value at rank `C - 1 - r`.
pub(crate) fn inverse_prior(prior: &[f32]) -> Vec<f32> {
    let mut order: Vec<usize> = (0..prior.len()).collect();
    order.sort_by(|&a, &b| prior[a].total_cmp(&prior[b]));
    let c = prior.len();
    let mut inverse = vec![0.0; c];
    for (rank, &class) in order.iter().enumerate() {
        inverse[class] = prior[order[c - 1 - rank]];
    }
    inverse
}

impl Loss for Sade {
    /// Without experts (a plain model) SADE is the cross-entropy of its first expert.
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        ce_per_sample(logits, labels)
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.offsets[0].len())
    }

    fn whole_batch(&self, step: &Step) -> Option<Result<Tensor<1>>> {
        Some(self.experts_loss(step))
    }
}

impl Sade {
    fn experts_loss(&self, step: &Step) -> Result<Tensor<1>> {
        let experts = expert_logits(NAME, step, 3, self.offsets[0].len())?;
        let mut total: Option<Tensor<1>> = None;
        for (e, offsets) in self.offsets.iter().enumerate() {
            let z = expert(&experts, e);
            let ce = ce_per_sample(add_class_offsets(z, offsets), step.labels.clone()).mean();
            total = Some(match total {
                Some(t) => t + ce,
                None => ce,
            });
        }
        Ok(total.expect("three experts"))
    }
}

/// The step's expert logits `[E, N, C]`, checked against the loss: `want` experts (or at least
/// 2 when `want` is 0) and `classes` classes, and one label per image (RIDE and SADE train
/// without mixing, as their references do).
pub(crate) fn expert_logits(
    loss: &'static str,
    step: &Step,
    want: usize,
    classes: usize,
) -> Result<Tensor<3>> {
    if step.mix.is_some() {
        return Err(LossError::Unsupported {
            loss,
            message: "its experts learn from one label per image: remove `augment.batch` \
                      (mixup/cutmix/remix)",
        });
    }
    let Some(z) = step.experts.clone() else {
        return Err(LossError::Unsupported {
            loss,
            message: "it trains several experts and the model has one: add `[module] \
                      classifier = { name = \"experts\" }`",
        });
    };
    let [e, n, c] = z.dims();
    if (want > 0 && e != want) || e < 2 {
        return Err(LossError::ClassMismatch {
            what: "the model's experts",
            expected: want.max(2),
            got: e,
        });
    }
    if n != step.labels.dims()[0] {
        return Err(LossError::BatchMismatch {
            what: "labels",
            expected: n,
            got: step.labels.dims()[0],
        });
    }
    if c != classes {
        return Err(LossError::ClassMismatch {
            what: "the loss' class counts",
            expected: c,
            got: classes,
        });
    }
    Ok(z)
}

/// Expert `e`'s logits `[N, C]` of `[E, N, C]`.
pub(crate) fn expert(z: &Tensor<3>, e: usize) -> Tensor<2> {
    let [_, n, c] = z.dims();
    z.clone().narrow(0, e, 1).reshape([n, c])
}
