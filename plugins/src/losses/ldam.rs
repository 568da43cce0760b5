//! LDAM: a label-distribution-aware margin that asks for larger margins on rarer classes, applied to
//! the cosine logits of a normalized classifier head.

use burn::tensor::{Int, Tensor};

use super::Loss;
use super::class_stats::{check_param, validate_counts};
use super::cross_entropy::ce_per_sample;
use super::error::Result;

/// Label-Distribution-Aware Margin loss (Cao et al., "Learning Imbalanced Datasets with
/// Label-Distribution-Aware Margin Loss", NeurIPS 2019, Eq. 13; reference code kaidic/LDAM-DRW):
///
/// `m_c = K / n_c^{1/4}` with `K` chosen so `max_c m_c = max_m`,
/// `l(z, y) = CE(s * (z - m_y e_y), y) = -log( exp(s(z_y - m_y)) / (exp(s(z_y - m_y)) + sum_{j != y} exp(s z_j)) )`.
///
/// Contract (as in the reference code): the logits given to the loss are the *un-scaled* cosine outputs
/// `z_j = cos(w_j, x)` in [-1, 1] of a normalized head ([`Loss::wants_cosine_head`] is true), and the
/// scale `s` is applied inside the loss. Do not scale the head's output by `s` as well. Predict with
/// `argmax_j z_j` (the margin and scale are training-only).
#[derive(Debug, Clone)]
pub struct Ldam {
    margins: Vec<f32>,
    s: f64,
}

impl Ldam {
    /// The reference code's largest margin.
    pub const DEFAULT_MAX_M: f64 = 0.5;
    /// The reference code's logit scale.
    pub const DEFAULT_S: f64 = 30.0;

    /// Builds the margins from the per-class training counts (all > 0); `max_m >= 0`, `s > 0`.
    pub fn new(counts: &[usize], max_m: f64, s: f64) -> Result<Self> {
        const NAME: &str = "ldam";
        let counts = validate_counts(NAME, counts)?;
        let max_m = check_param(NAME, "max_m", max_m, "max_m >= 0", |m| m >= 0.0)?;
        let s = check_param(NAME, "s", s, "s > 0", |s| s > 0.0)?;
        let raw: Vec<f64> = counts.iter().map(|n| n.powf(-0.25)).collect();
        let largest = raw.iter().copied().fold(0.0, f64::max);
        let margins = raw.iter().map(|m| (m * max_m / largest) as f32).collect();
        Ok(Self { margins, s })
    }

    /// The per-class margins `m_c`.
    pub fn margins(&self) -> &[f32] {
        &self.margins
    }
}

impl Loss for Ldam {
    fn per_sample(&self, logits: Tensor<2>, labels: Tensor<1, Int>) -> Tensor<1> {
        let [_, c] = logits.dims();
        let device = logits.device();
        let target = labels.clone().one_hot::<2>(c).float();
        let margin_row = Tensor::<1>::from_floats(self.margins.as_slice(), &device).reshape([1, c]);
        let shifted = logits - target * margin_row;
        ce_per_sample(shifted.mul_scalar(self.s), labels)
    }

    fn wants_cosine_head(&self) -> bool {
        true
    }

    fn num_classes(&self) -> Option<usize> {
        Some(self.margins.len())
    }
}
